/* Temporary entry point; replaced by the CLI. */
#include <stdio.h>
int main(void) { fputs("calm: CLI under construction\n", stderr); return 1; }
