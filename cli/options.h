/* options.h: the one option parser of every `calm` command, shard commands
 * included. `--name value` or `--name=value`; flags take no value. Unknown
 * options, a missing or malformed value and out-of-range numbers are usage
 * errors (status 2); `--help` prints the usage built from the table. */
#ifndef CALM_CLI_OPTIONS_H
#define CALM_CLI_OPTIONS_H

#include <stdio.h>

#include "src/common.h"

typedef enum {
    OPT_INT,    /* int */
    OPT_LONG,   /* long */
    OPT_FLOAT,  /* float */
    OPT_DOUBLE, /* double */
    OPT_SIZE,   /* uint64_t bytes, with an optional K, M, G or T suffix (powers of 1024) */
    OPT_STR,    /* const char * */
    OPT_FLAG    /* int, set to 1 */
} OptType;

typedef struct {
    const char *name; /* without the leading dashes */
    OptType type;
    void *dst;
    const char *help;
    double min, max;  /* numeric range, inclusive; min > max: unchecked */
} Opt;

#define OPT_END {0, 0, 0, 0, 0, 0}

typedef struct {
    const char *command;  /* "calm train" */
    const char *synopsis; /* "[options] FILE..." */
    const char *about;    /* what it does: one or more paragraphs */
    const Opt *opts;
    int min_pos, max_pos; /* positional argument count limits (max < 0: unlimited) */
} Command;

/* cli_parse_args's status after --help: the usage is on stdout. */
#define CLI_HELP (-1)

/* Parse argv[1..argc) (argv[0] is the command's name). Positional arguments
 * are compacted into argv[1..npos] and returned in pos. Returns 0, CLI_HELP,
 * or 2 after printing a usage error: for commands that return their status
 * (the shard commands run inside tests). */
int cli_parse_args(const Command *cmd, int argc, char **argv, char ***pos, int *npos);
/* The same, exiting with status 0 after --help and 2 after a usage error. */
void cli_parse(const Command *cmd, int argc, char **argv, char ***pos, int *npos);
void cli_usage(const Command *cmd, FILE *out);

/* Print "COMMAND: MESSAGE" and a pointer to --help on stderr; returns 2. */
int cli_usage_error(const Command *cmd, const char *fmt, ...) CALM_PRINTF(2, 3);

/* A command with commands of its own: calm, calm shard, calm data. */
typedef struct {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] = name; returns the exit status */
    const char *help;
    int distributed; /* calm's own: meaningful under mpirun with more than one rank */
} Subcommand;

typedef struct {
    const char *command; /* "calm shard" */
    const char *about;   /* one line */
    const Subcommand *subs;
    int n;
} CommandGroup;

/* The subcommand argv[1] names, or NULL when there is none to run: after
 * --help (usage on stdout, *status 0) or a missing or unknown name (usage
 * on stderr, *status 2). */
const Subcommand *cli_subcommand(const CommandGroup *g, int argc, char **argv, int *status);

/* PREFIX ARGV... as a shell would take it back (quoted where needed), for
 * the record a command writes of how it was run; malloc'd. */
char *cli_command_line(const char *prefix, int argc, char **argv);

/* A library error (calm_last_error()) as "calm: WHAT: MESSAGE" on stderr;
 * cli_error returns 1, cli_fail exits 1. */
int cli_error(const char *what);
CALM_NORETURN void cli_fail(const char *what);

#endif
