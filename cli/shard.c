/* shard.c: `calm shard build|info|verify|bench`. Exit codes: 0 ok,
 * 1 failure (the message names the file or key), 2 usage error. The commands
 * return their status instead of exiting: tests run them in process. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "shards/shards.h"
#include "src/common.h"
#include "src/files.h"
#include "src/tokenizer.h"

/* cli_parse_args's status as the command's: --help is success. */
static int parsed(int rc) { return rc == CLI_HELP ? 0 : rc; }

/* ---- build ------------------------------------------------------------------ */

typedef enum { FMT_AUTO, FMT_TEXT, FMT_JSONL } InputFormat;

typedef struct {
    ShardBuilder *b;
    InputFormat format;
    int docs_per_file;
    uint64_t lines; /* non-blank lines (or whole files) read */
} BuildCtx;

/* Prefix the recorded error with "path:line: ". */
static int at_line(const char *path, uint64_t line) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", calm_last_error());
    if (line) return calm_error("%s:%llu: %s", path, (unsigned long long)line, msg);
    return calm_error("%s: %s", path, msg);
}

static int is_jsonl(const BuildCtx *c, const char *path) {
    if (c->format != FMT_AUTO) return c->format == FMT_JSONL;
    const char *dot = strrchr(path, '.');
    return dot && (strcmp(dot, ".jsonl") == 0 || strcmp(dot, ".ndjson") == 0 || strcmp(dot, ".json") == 0);
}

static int jsonl_line(BuildCtx *c, char *line, size_t len, const char *lang) {
    cJSON *o = cJSON_ParseWithLength(line, len);
    int rc = 0;
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "lang");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(o, "text");
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(o, "prompt");
    const cJSON *target = cJSON_GetObjectItemCaseSensitive(o, "target");
    if (!o) rc = calm_error("invalid JSON");
    else if (!cJSON_IsObject(o)) rc = calm_error("not a JSON object");
    else if (l && !cJSON_IsString(l)) rc = calm_error("\"lang\" must be a string");
    else if (cJSON_IsString(text))
        rc = shard_builder_add_text(c->b, l ? l->valuestring : lang, text->valuestring, strlen(text->valuestring));
    else if (cJSON_IsString(prompt) && cJSON_IsString(target))
        rc = shard_builder_add_task(c->b, l ? l->valuestring : lang, prompt->valuestring, strlen(prompt->valuestring),
                                    target->valuestring, strlen(target->valuestring));
    else rc = calm_error("expected {\"text\": \"...\"} or {\"prompt\": \"...\", \"target\": \"...\"}");
    cJSON_Delete(o);
    return rc;
}

static int build_file(BuildCtx *c, const char *path, const char *lang) {
    int jsonl = is_jsonl(c, path);
    if (!jsonl && c->docs_per_file) {
        char *data;
        size_t len;
        if (calm_read_file(path, &data, &len)) return -1;
        int rc = shard_builder_add_text(c->b, lang, data, len);
        c->lines += len > 0;
        free(data);
        return rc ? at_line(path, 0) : 0;
    }
    FILE *f = fopen(path, "rb");
    if (!f) return calm_error("%s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    uint64_t no = 0;
    int rc = 0;
    while (!rc && (len = getline(&line, &cap, f)) >= 0) {
        no++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        c->lines++;
        if (jsonl) {
            size_t k = 0;
            while (k < (size_t)len && (line[k] == ' ' || line[k] == '\t')) k++;
            if (k == (size_t)len) continue;
            rc = jsonl_line(c, line, (size_t)len, lang);
        } else {
            rc = shard_builder_add_text(c->b, lang, line, (size_t)len);
        }
        if (rc) at_line(path, no);
    }
    if (!rc && ferror(f)) rc = calm_error("%s: read error", path);
    free(line);
    fclose(f);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A directory of per-language files: CODE[.ext], read in name order. */
static int build_dir(BuildCtx *c, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return calm_error("%s: cannot open directory: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) names = xrealloc(names, (cap = cap * 2 + 16) * sizeof *names);
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        char *path = calm_path_join(dir, names[i]);
        struct stat st;
        char lang[256];
        snprintf(lang, sizeof lang, "%s", names[i]);
        char *dot = strchr(lang, '.');
        if (dot) *dot = 0;
        if (stat(path, &st) != 0) rc = calm_error("%s: %s", path, strerror(errno));
        else if (S_ISDIR(st.st_mode)) calm_log("%s: skipping a directory inside a per-language directory", path);
        else rc = build_file(c, path, lang);
        free(path);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

typedef struct {
    const char *out, *lang, *format, *docs, *tokenizer;
    int seq_len, vocab, batch, quiet;
    double val;
    uint64_t map;
} BuildArgs;

static int check_build_args(const Command *cmd, const BuildArgs *a) {
    if (!a->out) return cli_usage_error(cmd, "--out DIR is required");
    if (!shard_lang_code_ok(a->lang))
        return cli_usage_error(cmd, "--lang '%s': a language code is 1 to %d characters of A-Z a-z 0-9 _ -", a->lang,
                               SHARD_LANG_MAX);
    if (!(a->val < 1)) return cli_usage_error(cmd, "--val-fraction %g outside [0, 1)", a->val);
    if (a->vocab > 0 && a->vocab < TOK_N_SPECIAL)
        return cli_usage_error(cmd, "--vocab %d: a vocabulary holds at least the %d ids of the byte tokenizer",
                               a->vocab, TOK_N_SPECIAL);
    if (strcmp(a->format, "auto") && strcmp(a->format, "text") && strcmp(a->format, "jsonl"))
        return cli_usage_error(cmd, "--format '%s' (expected auto, text or jsonl)", a->format);
    if (strcmp(a->docs, "line") && strcmp(a->docs, "file"))
        return cli_usage_error(cmd, "--docs '%s' (expected line or file)", a->docs);
    return 0;
}

static void print_built(const char *out, double seconds) {
    ShardStore *s;
    if (shard_store_open(&s, out)) return;
    const ShardInfo *in = shard_store_info(s);
    uint64_t samples[2] = {0, 0}, tokens = 0;
    for (int i = 0; i < in->n_langs; i++) {
        samples[0] += in->langs[i].samples[0];
        samples[1] += in->langs[i].samples[1];
        tokens += in->langs[i].tokens[0] + in->langs[i].tokens[1];
    }
    char size[32];
    printf("built %s: %s records, %d language%s, %llu train + %llu val samples, %llu tokens, %s, %.2f s\n", out,
           shard_kind_name(in->kind), in->n_langs, in->n_langs == 1 ? "" : "s", (unsigned long long)samples[0],
           (unsigned long long)samples[1], (unsigned long long)tokens,
           shard_fmt_bytes(size, sizeof size, (double)in->file_bytes), seconds);
    shard_store_close(s);
}

static int run_build(const BuildArgs *a, char **inputs, int n_inputs, const char *command) {
    for (int i = 0; i < n_inputs; i++) { /* every input must exist before anything is created */
        struct stat st;
        if (stat(inputs[i], &st) != 0) return calm_error("%s: %s", inputs[i], strerror(errno));
    }
    BuildCtx c = {0};
    c.format = strcmp(a->format, "text") == 0 ? FMT_TEXT : strcmp(a->format, "jsonl") == 0 ? FMT_JSONL : FMT_AUTO;
    c.docs_per_file = strcmp(a->docs, "file") == 0;
    ShardBuildOpts bo;
    shard_build_opts_default(&bo);
    Tokenizer *tok = NULL;
    if (a->tokenizer && !(tok = tokenizer_load(a->tokenizer))) return -1;
    bo.tokenizer = tok;
    bo.seq_len = a->seq_len;
    /* a model's tokenizer: its vocabulary unless --vocab pads it further */
    bo.vocab_size = a->vocab > 0 ? a->vocab : tok ? tokenizer_vocab_size(tok) : TOK_VOCAB_DEFAULT;
    if (tok) calm_log("tokenizer: %s (%s), %d ids", a->tokenizer, tokenizer_id(tok), tokenizer_vocab_size(tok));
    bo.val_fraction = a->val;
    bo.map_size = (size_t)a->map;
    bo.batch_records = a->batch;
    bo.command = command;
    if (shard_builder_open(&c.b, a->out, &bo)) {
        tokenizer_free(tok);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n_inputs && !rc; i++) {
        struct stat st;
        rc = stat(inputs[i], &st) != 0 ? calm_error("%s: %s", inputs[i], strerror(errno))
             : S_ISDIR(st.st_mode)     ? build_dir(&c, inputs[i])
                                       : build_file(&c, inputs[i], a->lang);
    }
    if (!rc && c.lines == 0)
        rc = calm_error("%s%s: no documents (empty input)", inputs[0], n_inputs > 1 ? " and the other inputs" : "");
    if (!rc) rc = shard_builder_finish(c.b);
    if (rc) shard_builder_discard(c.b); /* a failed build leaves nothing behind */
    else shard_builder_free(c.b);
    tokenizer_free(tok);
    return rc;
}

static int shard_build(int argc, char **argv) {
    BuildArgs a = {NULL, "und", "auto", "line", NULL, 256, 0, 8192, 0, 0.0, (uint64_t)64 << 20};
    const Opt opts[] = {
        {"out", OPT_STR, &a.out, "store directory to create (must not hold a store)", 1, 0},
        {"lang", OPT_STR, &a.lang, "language of inputs that name none; A-Z a-z 0-9 _ -", 1, 0},
        {"seq-len", OPT_INT, &a.seq_len, "training sequence length T; lm records hold T+1 tokens", 1, 1 << 20},
        {"val-fraction", OPT_DOUBLE, &a.val, "share of each language's documents held out in the val split, [0, 1)",
         0, 1},
        {"format", OPT_STR, &a.format, "auto, text or jsonl (auto: .jsonl, .ndjson and .json are JSON Lines)", 1, 0},
        {"docs", OPT_STR, &a.docs, "plain text documents: line or file", 1, 0},
        {"tokenizer", OPT_STR, &a.tokenizer,
         "model directory whose tokenizer.json tokenizes the text (default: calm's byte tokenizer)", 1, 0},
        {"vocab", OPT_INT, &a.vocab,
         "vocabulary size recorded in the store (0: the tokenizer's, 320 for bytes); above 65535 ids are stored "
         "as uint32",
         0, 1 << 30},
        {"map-size", OPT_SIZE, &a.map, "initial LMDB map size, doubled whenever it fills", 65536, 1e18},
        {"batch-records", OPT_INT, &a.batch, "records per write transaction", 1, 1 << 30},
        {"quiet", OPT_FLAG, &a.quiet, "no progress lines", 1, 0},
        OPT_END};
    const Command cmd = {
        "calm shard build", "--out DIR [options] INPUT...",
        "Tokenize INPUTs into a shard store (an LMDB directory) for `calm train --data DIR`.\n\n"
        "inputs:\n"
        "  FILE            plain text, one document per line (blank lines skipped), or per file with --docs file\n"
        "  FILE.jsonl      JSON Lines: {\"text\": ..., \"lang\": ...} documents, or\n"
        "                  {\"prompt\": ..., \"target\": ..., \"lang\": ...} task examples (loss on the target)\n"
        "  DIR             one file per language: the language is the file name up to its first dot\n"
        "                  (de.txt, sw.jsonl); files are read in name order",
        opts, 1, -1};
    char *command = cli_command_line("calm shard", argc, argv); /* before parsing reorders argv */
    char **inputs;
    int n_inputs, rc = cli_parse_args(&cmd, argc, argv, &inputs, &n_inputs);
    if (rc == 0 && (rc = check_build_args(&cmd, &a)) == 0) {
        int was_quiet = calm_quiet;
        calm_quiet = calm_quiet || a.quiet;
        double t0 = calm_now();
        if (run_build(&a, inputs, n_inputs, command)) rc = cli_error("shard build");
        else print_built(a.out, calm_now() - t0);
        calm_quiet = was_quiet;
    }
    free(command);
    return parsed(rc);
}

/* ---- info / verify ------------------------------------------------------- */

static void info_json(const ShardInfo *in, const char *dir, const double *p) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "dir", dir);
    cJSON_AddNumberToObject(o, "version", in->version);
    cJSON_AddStringToObject(o, "tokenizer", in->tokenizer);
    cJSON_AddNumberToObject(o, "vocab_size", in->vocab_size);
    cJSON_AddNumberToObject(o, "token_bytes", in->token_bytes);
    cJSON_AddStringToObject(o, "kind", shard_kind_name(in->kind));
    cJSON_AddNumberToObject(o, "seq_len", in->seq_len);
    cJSON_AddNumberToObject(o, "val_fraction", in->val_fraction);
    cJSON_AddStringToObject(o, "created_by", in->created_by);
    cJSON_AddStringToObject(o, "created_at", in->created_at);
    cJSON_AddNumberToObject(o, "file_bytes", (double)in->file_bytes);
    cJSON *langs = cJSON_AddArrayToObject(o, "languages");
    for (int i = 0; i < in->n_langs; i++) {
        const ShardLang *L = &in->langs[i];
        cJSON *l = cJSON_CreateObject();
        cJSON_AddStringToObject(l, "code", L->code);
        for (int s = 0; s < SHARD_N_SPLITS; s++) {
            cJSON *sp = cJSON_AddObjectToObject(l, shard_split_name((ShardSplit)s));
            cJSON_AddNumberToObject(sp, "docs", (double)L->docs[s]);
            cJSON_AddNumberToObject(sp, "samples", (double)L->samples[s]);
            cJSON_AddNumberToObject(sp, "tokens", (double)L->tokens[s]);
        }
        cJSON_AddNumberToObject(l, "share", p[i]);
        cJSON_AddItemToArray(langs, l);
    }
    char *text = cJSON_Print(o);
    puts(text);
    free(text);
    cJSON_Delete(o);
}

static void info_table(const ShardInfo *in, const char *dir, const double *p, double alpha) {
    char size[32];
    uint64_t tot[3][SHARD_N_SPLITS] = {{0}};
    for (int i = 0; i < in->n_langs; i++)
        for (int s = 0; s < SHARD_N_SPLITS; s++) {
            tot[0][s] += in->langs[i].docs[s];
            tot[1][s] += in->langs[i].samples[s];
            tot[2][s] += in->langs[i].tokens[s];
        }
    uint64_t all_tokens = tot[2][0] + tot[2][1];
    printf("store       %s\n", dir);
    printf("format      calm-shards v%d: %s records, seq_len %d, uint%d tokens, CRC-32C per record\n", in->version,
           shard_kind_name(in->kind), in->seq_len, 8 * in->token_bytes);
    printf("tokenizer   %s, vocab %d (uint%d ids)\n", in->tokenizer, in->vocab_size, 8 * in->token_bytes);
    printf("created     %s by: %s\n", in->created_at, in->created_by);
    printf("size        data.mdb %s (%.2f bytes/token)\n", shard_fmt_bytes(size, sizeof size, (double)in->file_bytes),
           all_tokens ? (double)in->file_bytes / (double)all_tokens : 0.0);
    printf("val         %.4g of documents held out\n", in->val_fraction);
    printf("languages   %d (p = mixing share at alpha %g)\n\n", in->n_langs, alpha);
    printf("%6s  %-12s %10s %12s %14s %10s %10s %12s %8s\n", "id", "lang", "docs", "train samp", "train tokens",
           "val docs", "val samp", "val tokens", "p");
    for (int i = 0; i < in->n_langs; i++) {
        const ShardLang *L = &in->langs[i];
        printf("%6d  %-12s %10llu %12llu %14llu %10llu %10llu %12llu %8.5f\n", i, L->code,
               (unsigned long long)L->docs[0], (unsigned long long)L->samples[0], (unsigned long long)L->tokens[0],
               (unsigned long long)L->docs[1], (unsigned long long)L->samples[1], (unsigned long long)L->tokens[1],
               p[i]);
    }
    printf("%6s  %-12s %10llu %12llu %14llu %10llu %10llu %12llu %8.5f\n", "", "total", (unsigned long long)tot[0][0],
           (unsigned long long)tot[1][0], (unsigned long long)tot[2][0], (unsigned long long)tot[0][1],
           (unsigned long long)tot[1][1], (unsigned long long)tot[2][1], 1.0);
}

static int shard_info(int argc, char **argv) {
    double alpha = 0.3;
    int json = 0;
    const Opt opts[] = {{"alpha", OPT_DOUBLE, &alpha, "mixing exponent for the p(train) column", 0, 1e9},
                        {"json", OPT_FLAG, &json, "print one JSON object instead of a table", 1, 0},
                        OPT_END};
    const Command cmd = {"calm shard info", "DIR [options]",
                         "Format, tokenizer, and per-language documents, samples and tokens of each split, with the "
                         "mixing share p(L) ~ n_L^alpha each language gets in training.",
                         opts, 1, 1};
    char **dir;
    int n, rc = cli_parse_args(&cmd, argc, argv, &dir, &n);
    if (rc) return parsed(rc);
    ShardStore *s;
    if (shard_store_open(&s, dir[0])) return cli_error("shard info");
    const ShardInfo *in = shard_store_info(s);
    uint64_t *ns = xcalloc((size_t)in->n_langs + 1, sizeof *ns);
    double *p = xcalloc((size_t)in->n_langs + 1, sizeof *p);
    for (int i = 0; i < in->n_langs; i++) ns[i] = in->langs[i].samples[SHARD_TRAIN];
    shard_mix_shares(ns, in->n_langs, alpha, p); /* a complete store always has train samples */
    if (json) info_json(in, shard_store_dir(s), p);
    else info_table(in, shard_store_dir(s), p, alpha);
    free(ns);
    free(p);
    shard_store_close(s);
    return 0;
}

static int shard_verify(int argc, char **argv) {
    const Opt opts[] = {OPT_END};
    const Command cmd = {"calm shard verify", "DIR",
                         "Read every record of both splits and check its header, length, checksum, token range and "
                         "the per-language counts in meta. Reports the first bad key and exits 1 if any check fails.",
                         opts, 1, 1};
    char **dir;
    int n, rc = cli_parse_args(&cmd, argc, argv, &dir, &n);
    if (rc) return parsed(rc);
    ShardStore *s;
    if (shard_store_open(&s, dir[0])) return cli_error("shard verify");
    uint64_t records, tokens;
    double t0 = calm_now();
    if (shard_store_verify(s, &records, &tokens)) rc = cli_error("shard verify");
    else
        printf("%s: ok: %llu records, %llu tokens, every checksum matches (%.2f s)\n", shard_store_dir(s),
               (unsigned long long)records, (unsigned long long)tokens, calm_now() - t0);
    shard_store_close(s);
    return rc;
}

/* ---- bench ---------------------------------------------------------------- */

static double thread_cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Wall-clock and CPU-time rates: on a shared machine the CPU-time rate is
 * what the process does with a core to itself. */
static int bench_mode(ShardStore *s, const ShardLoaderOpts *o, const char *name, int B, int T, double seconds) {
    ShardLoader *l;
    if (shard_loader_open(&l, s, o)) return -1;
    int *tok = xmalloc((size_t)B * T * sizeof *tok), *tgt = xmalloc((size_t)B * T * sizeof *tgt);
    float *w = xmalloc((size_t)B * T * sizeof *w);
    int64_t step = 0;
    double t0 = calm_now(), c0 = thread_cpu_seconds(), t = 0;
    int rc = 0;
    do {
        for (int i = 0; i < 256 && !rc; i++) rc = shard_loader_batch(l, step++, 0, 1, B, T, tok, tgt, w);
        t = calm_now() - t0;
    } while (!rc && t < seconds);
    double cpu = thread_cpu_seconds() - c0;
    if (!rc) {
        double tokens = (double)step * B * T;
        printf("%-24s %8lld batches %6.2f s: %7.1f M tokens/s wall, %7.1f M tokens/s CPU (%.2f us/batch CPU)%s\n",
               name, (long long)step, t, tokens / t / 1e6, tokens / cpu / 1e6, 1e6 * cpu / (double)step,
               tokens / cpu >= 100e6 ? "" : "  [below the 100M target]");
    }
    shard_loader_close(l);
    free(tok);
    free(tgt);
    free(w);
    return rc;
}

static int shard_bench(int argc, char **argv) {
    int B = 8, T = 0;
    double seconds = 2, alpha = 0.3;
    long seed = 0;
    const char *split_name = "train", *langs = NULL;
    const Opt opts[] = {{"batch", OPT_INT, &B, "rows per batch", 1, 1 << 20},
                        {"seq-len", OPT_INT, &T, "tokens per row (0: min(256, the store's seq_len))", 0, 1 << 20},
                        {"seconds", OPT_DOUBLE, &seconds, "time per mode, in (0, 3600)", 1e-9, 3600},
                        {"split", OPT_STR, &split_name, "train or val", 1, 0},
                        {"alpha", OPT_DOUBLE, &alpha, "mixing exponent", 0, 1e9},
                        {"seed", OPT_LONG, &seed, "shuffling seed", 0, 9e18},
                        {"lang", OPT_STR, &langs, "comma-separated languages to mix (default all)", 1, 0},
                        OPT_END};
    const Command cmd = {"calm shard bench", "DIR [options]",
                         "Batch assembly throughput of one thread (tokens/s): records located, read from the memory "
                         "map, checksummed and widened into tokens/targets/weights, first in id order (sequential), "
                         "then shuffled, then shuffled without checksums. The store is read once first so that the "
                         "page cache is warm. Rates are given per wall-clock second and per CPU second (the rate with "
                         "a core to itself, on a shared machine).",
                         opts, 1, 1};
    char **dir;
    int n, rc = cli_parse_args(&cmd, argc, argv, &dir, &n);
    if (rc) return parsed(rc);
    ShardSplit split;
    if (shard_split_parse(split_name, &split)) return cli_usage_error(&cmd, "%s", calm_last_error());
    ShardStore *s;
    if (shard_store_open(&s, dir[0])) return cli_error("shard bench");
    const ShardInfo *in = shard_store_info(s);
    if (T == 0) T = in->seq_len < 256 ? in->seq_len : 256;
    if (T > in->seq_len) {
        int seq_len = in->seq_len;
        shard_store_close(s);
        return cli_usage_error(&cmd, "--seq-len %d exceeds the store's seq_len %d", T, seq_len);
    }
    uint64_t bytes = 0;
    double t0 = calm_now();
    char size[32];
    if (shard_store_warm(s, split, &bytes)) {
        shard_store_close(s);
        return cli_error("shard bench");
    }
    printf("store %s: %s, %d languages, seq_len %d; warm-up read %s in %.2f s\n", shard_store_dir(s),
           shard_kind_name(in->kind), in->n_langs, in->seq_len, shard_fmt_bytes(size, sizeof size, (double)bytes),
           calm_now() - t0);
    double load[1] = {0};
    getloadavg(load, 1);
    printf("batch B=%d T=%d, one thread; load average %.2f on %ld cores\n", B, T, load[0], sysconf(_SC_NPROCESSORS_ONLN));
    ShardLoaderOpts o;
    shard_loader_opts_default(&o);
    o.split = split;
    o.alpha = alpha;
    o.seed = (uint64_t)seed;
    o.langs = langs;
    o.shuffle = 0;
    rc = bench_mode(s, &o, "sequential", B, T, seconds);
    o.shuffle = 1;
    if (!rc) rc = bench_mode(s, &o, "shuffled", B, T, seconds);
    o.verify = 0;
    if (!rc) rc = bench_mode(s, &o, "shuffled, no checksums", B, T, seconds);
    rc = rc ? cli_error("shard bench") : 0;
    shard_store_close(s);
    return rc;
}

/* ---- dispatch ------------------------------------------------------------- */

static const Subcommand shard_commands[] = {
    {"build", shard_build, "tokenize text / JSON Lines / per-language directories into a store", 0},
    {"info", shard_info, "format, languages and counts of a store", 0},
    {"verify", shard_verify, "check every record's checksum; report the first bad key", 0},
    {"bench", shard_bench, "batch assembly throughput (tokens/s)", 0},
};

int cmd_shard(int argc, char **argv) {
    const CommandGroup g = {"calm shard", "Tokenized training data in LMDB stores (docs/shards.md).", shard_commands,
                            (int)(sizeof shard_commands / sizeof *shard_commands)};
    int status;
    const Subcommand *s = cli_subcommand(&g, argc, argv, &status);
    return s ? s->run(argc - 1, argv + 1) : status;
}
