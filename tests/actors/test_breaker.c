/* Placeholder until the breaker module lands: reports "skipped". */
int main(void) { return 77; }
