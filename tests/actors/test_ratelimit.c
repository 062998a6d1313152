/* Placeholder until the ratelimit module lands: reports "skipped". */
int main(void) { return 77; }
