/* options.c: the option parser (options.h). */
#include "cli/options.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *type_metavar(OptType t) {
    switch (t) {
    case OPT_INT:
    case OPT_LONG: return "N";
    case OPT_FLOAT:
    case OPT_DOUBLE: return "X";
    case OPT_SIZE: return "BYTES";
    case OPT_STR: return "S";
    default: return "";
    }
}

void cli_usage(const Command *cmd, FILE *out) {
    fprintf(out, "usage: %s %s\n\n%s\n\noptions:\n", cmd->command, cmd->synopsis, cmd->about);
    for (const Opt *o = cmd->opts; o && o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "--%s %s", o->name, type_metavar(o->type));
        fprintf(out, "  %-24s %s", left, o->help);
        switch (o->type) { /* show the default, which is whatever dst holds now */
        case OPT_INT: fprintf(out, " (default %d)", *(int *)o->dst); break;
        case OPT_LONG: fprintf(out, " (default %ld)", *(long *)o->dst); break;
        case OPT_FLOAT: fprintf(out, " (default %g)", *(float *)o->dst); break;
        case OPT_DOUBLE: fprintf(out, " (default %g)", *(double *)o->dst); break;
        case OPT_SIZE: fprintf(out, " (default %lluK)", (unsigned long long)(*(uint64_t *)o->dst >> 10)); break;
        case OPT_STR:
            if (*(const char **)o->dst) fprintf(out, " (default %s)", *(const char **)o->dst);
            break;
        default: break;
        }
        fputc('\n', out);
    }
    fprintf(out, "  %-24s %s\n", "--help", "show this help");
}

int cli_usage_error(const Command *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s: ", cmd->command);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help'.\n", cmd->command);
    return 2;
}

/* Bytes with an optional K, M, G or T suffix (and an optional B or iB). */
static int parse_size(const char *s, uint64_t *out) {
    char *end;
    if (!*s || *s == '-') return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return -1;
    int shift = 0;
    if (*end) {
        const char *units = "KMGT", *u = strchr(units, *end);
        if (!u || (end[1] && strcmp(end + 1, "iB") != 0 && strcmp(end + 1, "B") != 0)) return -1;
        shift = 10 * (int)(u - units + 1);
    }
    if (v > (UINT64_MAX >> shift)) return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

static int set_value(const Command *cmd, const Opt *o, const char *val) {
    char *end;
    errno = 0;
    double x;
    switch (o->type) {
    case OPT_STR: *(const char **)o->dst = val; return 0;
    case OPT_SIZE: {
        uint64_t v;
        if (parse_size(val, &v)) return cli_usage_error(cmd, "--%s: '%s' is not a byte count like 64M", o->name, val);
        *(uint64_t *)o->dst = v;
        x = (double)v;
        break;
    }
    case OPT_FLOAT:
    case OPT_DOUBLE:
        x = strtod(val, &end);
        if (end == val || *end || errno || !isfinite(x)) return cli_usage_error(cmd, "--%s: '%s' is not a number", o->name, val);
        break;
    default: {
        long long v = strtoll(val, &end, 10);
        if (end == val || *end || errno) return cli_usage_error(cmd, "--%s: '%s' is not an integer", o->name, val);
        if (o->type == OPT_INT && (v < -2147483647LL || v > 2147483647LL))
            return cli_usage_error(cmd, "--%s: '%s' is out of range", o->name, val);
        x = (double)v;
        if (o->type == OPT_INT) *(int *)o->dst = (int)v;
        else *(long *)o->dst = (long)v;
    }
    }
    if (o->min <= o->max && (x < o->min || x > o->max))
        return cli_usage_error(cmd, "--%s: %s is out of range (allowed %g..%g)", o->name, val, o->min, o->max);
    if (o->type == OPT_FLOAT) *(float *)o->dst = (float)x;
    if (o->type == OPT_DOUBLE) *(double *)o->dst = x;
    return 0;
}

int cli_parse_args(const Command *cmd, int argc, char **argv, char ***pos, int *npos) {
    /* Positional arguments are compacted into argv[1..n]: slot n is never
     * ahead of the argument being read, so nothing is overwritten unread. */
    char **p = argv + 1;
    int n = 0, only_pos = 0;
    *pos = p;
    *npos = 0;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == 0) {
            p[n++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli_usage(cmd, stdout);
            return CLI_HELP;
        }
        if (a[1] != '-') return cli_usage_error(cmd, "unknown option '%s'", a);
        char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const Opt *o = NULL;
        for (const Opt *q = cmd->opts; q && q->name; q++)
            if (strlen(q->name) == len && strncmp(q->name, name, len) == 0) o = q;
        if (!o) return cli_usage_error(cmd, "unknown option '%.*s'", (int)(len + 2), a);
        if (o->type == OPT_FLAG) {
            if (eq) return cli_usage_error(cmd, "--%s takes no value", o->name);
            *(int *)o->dst = 1;
            continue;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (i + 1 >= argc) return cli_usage_error(cmd, "--%s needs a value", o->name);
            val = argv[++i];
            /* `--resume --data X` would make "--data" the value: a value that
             * looks like an option must be given as --name=value */
            if (val[0] == '-' && val[1] == '-')
                return cli_usage_error(cmd, "--%s needs a value, got the option '%s' (write --%s=VALUE if the value "
                                       "starts with --)", o->name, val, o->name);
        }
        int rc = set_value(cmd, o, val);
        if (rc) return rc;
    }
    if (n < cmd->min_pos) return cli_usage_error(cmd, "missing argument: expected %s", cmd->synopsis);
    if (cmd->max_pos >= 0 && n > cmd->max_pos) return cli_usage_error(cmd, "unexpected argument '%s'", p[cmd->max_pos]);
    *npos = n;
    return 0;
}

void cli_parse(const Command *cmd, int argc, char **argv, char ***pos, int *npos) {
    int rc = cli_parse_args(cmd, argc, argv, pos, npos);
    if (rc) exit(rc == CLI_HELP ? 0 : rc);
}

static void group_usage(const CommandGroup *g, FILE *out) {
    fprintf(out, "usage: %s <command> [options]\n\n%s\n\ncommands:\n", g->command, g->about);
    for (int i = 0; i < g->n; i++) fprintf(out, "  %-10s %s\n", g->subs[i].name, g->subs[i].help);
    fprintf(out, "\n'%s <command> --help' describes each command.\n", g->command);
}

const Subcommand *cli_subcommand(const CommandGroup *g, int argc, char **argv, int *status) {
    *status = 2;
    if (argc < 2) {
        group_usage(g, stderr);
        return NULL;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        group_usage(g, stdout);
        *status = 0;
        return NULL;
    }
    for (int i = 0; i < g->n; i++)
        if (!strcmp(name, g->subs[i].name)) return &g->subs[i];
    fprintf(stderr, "%s: unknown command '%s'\n\n", g->command, name);
    group_usage(g, stderr);
    return NULL;
}

char *cli_command_line(const char *prefix, int argc, char **argv) {
    size_t cap = strlen(prefix) + 1;
    for (int i = 0; i < argc; i++) cap += strlen(argv[i]) * 4 + 3;
    char *s = xmalloc(cap), *p = s;
    p += sprintf(p, "%s", prefix);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int plain = *a != 0;
        for (const char *q = a; *q && plain; q++)
            plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%", *q) != NULL;
        *p++ = ' ';
        if (plain) {
            p += sprintf(p, "%s", a);
            continue;
        }
        *p++ = '\'';
        for (const char *q = a; *q; q++) p += *q == '\'' ? sprintf(p, "'\\''") : sprintf(p, "%c", *q);
        *p++ = '\'';
    }
    *p = 0;
    return s;
}

int cli_error(const char *what) {
    fflush(stdout);
    if (what) fprintf(stderr, "calm: %s: %s\n", what, calm_last_error());
    else fprintf(stderr, "calm: %s\n", calm_last_error());
    return 1;
}

void cli_fail(const char *what) { exit(cli_error(what)); }
