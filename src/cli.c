#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static const char *type_metavar(OptType t) {
    switch (t) {
    case OPT_INT:
    case OPT_LONG: return "N";
    case OPT_FLOAT: return "X";
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
        case OPT_STR:
            if (*(const char **)o->dst) fprintf(out, " (default %s)", *(const char **)o->dst);
            break;
        default: break;
        }
        fputc('\n', out);
    }
    fprintf(out, "  %-24s %s\n", "--help", "show this help");
}

static void usage_error(const Command *cmd, const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "%s: ", cmd->command);
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\nTry '%s --help'.\n", cmd->command);
    exit(2);
}

static void set_value(const Command *cmd, const Opt *o, const char *val) {
    char *end;
    errno = 0;
    if (o->type == OPT_STR) {
        *(const char **)o->dst = val;
        return;
    }
    double x;
    if (o->type == OPT_FLOAT) {
        x = strtod(val, &end);
        if (end == val || *end || errno || !isfinite(x)) usage_error(cmd, "--%s: '%s' is not a number", o->name, val);
    } else {
        long long v = strtoll(val, &end, 10);
        if (end == val || *end || errno) usage_error(cmd, "--%s: '%s' is not an integer", o->name, val);
        if (o->type == OPT_INT && (v < -2147483647LL || v > 2147483647LL))
            usage_error(cmd, "--%s: '%s' is out of range", o->name, val);
        x = (double)v;
        if (o->type == OPT_INT) *(int *)o->dst = (int)v;
        else *(long *)o->dst = (long)v;
    }
    if (o->min <= o->max && (x < o->min || x > o->max)) {
        char range[96];
        snprintf(range, sizeof range, "%s (allowed %g..%g)", val, o->min, o->max);
        usage_error(cmd, "--%s: %s is out of range", o->name, range);
    }
    if (o->type == OPT_FLOAT) *(float *)o->dst = (float)x;
}

void cli_parse(const Command *cmd, int argc, char **argv, char ***pos, int *npos) {
    /* Positional arguments are compacted into argv[1..n]: slot n is never
     * ahead of the argument being read, so nothing is overwritten unread. */
    char **p = argv + 1;
    int n = 0, only_pos = 0;
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
            exit(0);
        }
        if (a[1] != '-') usage_error(cmd, "unknown option '%s'%s", a, "");
        char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const Opt *o = NULL;
        for (const Opt *q = cmd->opts; q && q->name; q++)
            if (strlen(q->name) == len && strncmp(q->name, name, len) == 0) o = q;
        if (!o) usage_error(cmd, "unknown option '%s'%s", a, "");
        if (o->type == OPT_FLAG) {
            if (eq) usage_error(cmd, "--%s takes no value%s", o->name, "");
            *(int *)o->dst = 1;
            continue;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (i + 1 >= argc) usage_error(cmd, "--%s needs a value%s", o->name, "");
            val = argv[++i];
            /* `--resume --data X` would make "--data" the value: a value that
             * looks like an option must be given as --name=value */
            if (val[0] == '-' && val[1] == '-') {
                char msg[256];
                snprintf(msg, sizeof msg, "--%s needs a value, got the option '%s' (write --%s=VALUE if the value "
                         "starts with --)", o->name, val, o->name);
                usage_error(cmd, "%s%s", msg, "");
            }
        }
        set_value(cmd, o, val);
    }
    if (n < cmd->min_pos) usage_error(cmd, "missing argument: expected %s%s", cmd->synopsis, "");
    if (cmd->max_pos >= 0 && n > cmd->max_pos) usage_error(cmd, "unexpected argument '%s'%s", p[cmd->max_pos], "");
    *pos = p;
    *npos = n;
}

void cli_fail(const char *what) {
    fflush(stdout);
    if (what) fprintf(stderr, "calm: %s: %s\n", what, calm_last_error());
    else fprintf(stderr, "calm: %s\n", calm_last_error());
    exit(1);
}
