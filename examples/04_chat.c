/* Placeholder: the chat example is being written. */
int main(void) { return 0; }
