/* cli.h: a small, strict option parser shared by every subcommand.
 * `--name value` or `--name=value`; flags take no value. Unknown options, a
 * missing or malformed value and out-of-range numbers are errors (exit 2).
 * `--help` prints the usage built from the table and exits 0. */
#ifndef CALM_CLI_H
#define CALM_CLI_H

#include <stdio.h>

typedef enum { OPT_INT, OPT_LONG, OPT_FLOAT, OPT_STR, OPT_FLAG } OptType;

typedef struct {
    const char *name; /* without the leading dashes */
    OptType type;
    void *dst;        /* int*, long*, float*, const char**, int* (flag) */
    const char *help;
    double min, max;  /* numeric range, inclusive; min > max: unchecked */
} Opt;

#define OPT_END {0, 0, 0, 0, 0, 0}

typedef struct {
    const char *command;  /* "calm train" */
    const char *synopsis; /* "[options] FILE..." */
    const char *about;    /* one paragraph */
    const Opt *opts;
    int min_pos, max_pos; /* positional argument count limits (max < 0: unlimited) */
} Command;

/* Parse argv[1..argc) (argv[0] is the subcommand name). Positional arguments
 * are compacted into argv[1..npos] and returned in pos. On error prints the
 * message and a pointer to --help, and exits 2. */
void cli_parse(const Command *cmd, int argc, char **argv, char ***pos, int *npos);
void cli_usage(const Command *cmd, FILE *out);

/* Exit after a library error: print calm_last_error() and exit(1). */
void cli_fail(const char *what);

#endif
