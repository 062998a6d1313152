/* Placeholder until the chat example lands: reports "skipped". */
int main(void) { return 77; }
