/* Placeholder until the registry module lands: reports "skipped". */
int main(void) { return 77; }
