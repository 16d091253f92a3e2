/* eval.c: `calm eval` on a model (--model) or a composition (--calm): loss
 * on text files, bits per byte per language (--docs), exact-match accuracy,
 * chrF or target bits per byte on a task (--task). */
#define _GNU_SOURCE /* qsort_r */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "src/blas.h"
#include "src/chrf.h"
#include "src/common.h"
#include "src/files.h"
#include "src/sample.h"
#include "src/textdata.h"
#include "src/tokenizer.h"

/* One JSON Lines record of a task or document file. */
typedef struct {
    char *lang;             /* "" when the record names none */
    char *prompt, *target;  /* task */
    char *text;             /* document */
} Rec;

typedef struct {
    Rec *r;
    long n;
} Recs;

static void recs_free(Recs *rs) {
    for (long i = 0; i < rs->n; i++) {
        free(rs->r[i].lang);
        free(rs->r[i].prompt);
        free(rs->r[i].target);
        free(rs->r[i].text);
    }
    free(rs->r);
    memset(rs, 0, sizeof *rs);
}

static char *json_string_dup(const cJSON *o, const char *key) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(x) ? xstrdup(x->valuestring) : NULL;
}

/* Read {"prompt", "target"[, "lang"]} (task) or {"text"[, "lang"]} (docs)
 * records; blank lines are skipped; at most limit records (0: all). */
static int recs_read(Recs *rs, const char *path, int task, long limit) {
    memset(rs, 0, sizeof *rs);
    FILE *f = fopen(path, "r");
    if (!f) return calm_error("%s: cannot open", path);
    char *line = NULL;
    size_t cap = 0, room = 0;
    long lineno = 0;
    int rc = 0;
    while (getline(&line, &cap, f) > 0 && (limit <= 0 || rs->n < limit)) {
        lineno++;
        if (line[strspn(line, " \t\r\n")] == 0) continue;
        cJSON *o = cJSON_Parse(line);
        Rec r = {0};
        if (o) {
            r.lang = json_string_dup(o, "lang");
            if (task) r.prompt = json_string_dup(o, "prompt"), r.target = json_string_dup(o, "target");
            else r.text = json_string_dup(o, "text");
        }
        int ok = o && (task ? r.prompt && r.target : r.text != NULL) &&
                 (r.lang || !cJSON_GetObjectItemCaseSensitive(o, "lang"));
        cJSON_Delete(o);
        if (!r.lang) r.lang = xstrdup("");
        if ((size_t)rs->n == room) rs->r = xrealloc(rs->r, (room = room ? 2 * room : 256) * sizeof(Rec));
        rs->r[rs->n++] = r;
        if (!ok) {
            rc = calm_error("%s:%ld: expected a JSON object with string fields %s (and optionally \"lang\")", path,
                            lineno, task ? "\"prompt\" and \"target\"" : "\"text\"");
            break;
        }
    }
    free(line);
    fclose(f);
    if (rc == 0 && rs->n == 0) rc = calm_error("%s: no records", path);
    if (rc) recs_free(rs);
    return rc;
}

/* Per-language accumulators, in order of first appearance. */
typedef struct {
    char **name;
    double (*v)[4];
    int n;
} LangSums;

/* The index of lang's sums, added (zeroed) on first use. */
static int lang_index(LangSums *ls, const char *lang) {
    for (int i = 0; i < ls->n; i++)
        if (!strcmp(ls->name[i], lang)) return i;
    ls->name = xrealloc(ls->name, (size_t)(ls->n + 1) * sizeof(char *));
    ls->v = xrealloc(ls->v, (size_t)(ls->n + 1) * sizeof *ls->v);
    ls->name[ls->n] = xstrdup(lang);
    memset(ls->v[ls->n], 0, sizeof *ls->v);
    return ls->n++;
}

static void lang_sums_free(LangSums *ls) {
    for (int i = 0; i < ls->n; i++) free(ls->name[i]);
    free(ls->name);
    free(ls->v);
}

/* Bits per byte of each language's documents: every document is scored on
 * its own as BOS bytes EOS, in windows of T targets that cover each target
 * once; bits per byte = the summed loss of all targets (the bytes and the
 * closing EOS) in bits over the document's UTF-8 bytes. */
static cJSON *eval_docs(Runner *r, const Recs *rs, int T, int B) {
    TextData *docs = xcalloc((size_t)rs->n, sizeof(TextData));
    long n_win = 0;
    for (long i = 0; i < rs->n; i++) {
        if (textdata_add(&docs[i], r->tok, rs->r[i].text, strlen(rs->r[i].text)) != 0)
            calm_fatal(NULL, "document %ld: %s", i + 1, calm_last_error());
        n_win += textdata_eval_windows(&docs[i], T);
    }
    long (*win)[2] = xmalloc((size_t)n_win * sizeof *win); /* (document, window) */
    for (long i = 0, k = 0; i < rs->n; i++)
        for (long w = 0; w < textdata_eval_windows(&docs[i], T); w++) win[k][0] = i, win[k][1] = w, k++;
    int *tok = xmalloc((size_t)B * T * sizeof(int)), *tgt = xmalloc((size_t)B * T * sizeof(int));
    float *wt = xmalloc((size_t)B * T * sizeof(float));
    double *bits = xcalloc((size_t)rs->n, sizeof(double));
    double t0 = calm_now(), last = t0;
    for (long w0 = 0; w0 < n_win; w0 += B) {
        int b = (int)(n_win - w0 < B ? n_win - w0 : B);
        for (int i = 0; i < b; i++)
            textdata_eval_window(&docs[win[w0 + i][0]], win[w0 + i][1], T, tok + (size_t)i * T, tgt + (size_t)i * T,
                                 wt + (size_t)i * T);
        runner_forward(r, tok, tgt, wt, b, T);
        const float *losses = runner_losses(r);
        for (int i = 0; i < b; i++)
            for (int t = 0; t < T; t++) bits[win[w0 + i][0]] += losses[(size_t)i * T + t] / log(2.0);
        if (calm_now() - last > 10.0) {
            last = calm_now();
            calm_log("eval: %ld of %ld windows, %.0f s", w0 + b, n_win, last - t0);
        }
    }
    LangSums ls = {0};
    double all_bits = 0, all_bytes = 0;
    for (long i = 0; i < rs->n; i++) {
        int li = lang_index(&ls, rs->r[i].lang); /* may move ls.v */
        double *s = ls.v[li], bytes = (double)strlen(rs->r[i].text);
        s[0] += 1, s[1] += bytes, s[2] += bits[i];
        all_bits += bits[i], all_bytes += bytes;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "docs", (double)rs->n);
    cJSON_AddNumberToObject(root, "bytes", all_bytes);
    cJSON_AddNumberToObject(root, "bits_per_byte", all_bytes > 0 ? all_bits / all_bytes : 0.0);
    cJSON *langs = cJSON_AddObjectToObject(root, "langs");
    for (int i = 0; i < ls.n; i++) {
        cJSON *l = cJSON_AddObjectToObject(langs, ls.name[i]);
        cJSON_AddNumberToObject(l, "docs", ls.v[i][0]);
        cJSON_AddNumberToObject(l, "bytes", ls.v[i][1]);
        cJSON_AddNumberToObject(l, "bits_per_byte", ls.v[i][1] > 0 ? ls.v[i][2] / ls.v[i][1] : 0.0);
    }
    lang_sums_free(&ls);
    for (long i = 0; i < rs->n; i++) textdata_free(&docs[i]);
    free(docs);
    free(win);
    free(tok);
    free(tgt);
    free(wt);
    free(bits);
    return root;
}

typedef struct {
    int chrf;        /* 0: exact match */
    int max_new;     /* chrf: ids generated at most per example */
    int B;           /* sequences decoded together */
    const char *outputs; /* write every example's output here as JSON Lines (NULL: no) */
} TaskOpts;

/* The id a lone newline encodes to, which ends a chrF answer; -1 when it is
 * not one token (the answer is then cut at its first newline after decoding). */
static int newline_id(const Tokenizer *t) {
    TokIds ids = {0};
    int id = tokenizer_encode(t, "\n", 1, 0, &ids) == 0 && ids.n == 1 ? ids.v[0] : -1;
    tok_ids_free(&ids);
    return id;
}

static int by_prompt_length(const void *a, const void *b, void *ctx) {
    const int *n = ctx;
    int x = *(const int *)a, y = *(const int *)b;
    return n[x] != n[y] ? (n[x] < n[y] ? -1 : 1) : (x < y ? -1 : x > y);
}

/* Greedy answers to {prompt, target} records, decoded B at a time in
 * lockstep (prompts sorted by length so a batch's rows finish together).
 * exact: the answer must be the target bytes, then EOS. chrf: the answer
 * ends at EOS or a newline and is scored with chrF against the target. */
static int eval_task(Runner *r, const Recs *rs, const TaskOpts *o, cJSON **out) {
    const long n = rs->n;
    int **ids = xcalloc((size_t)n, sizeof(int *)), *np = xcalloc((size_t)n, sizeof(int)),
        *order = xcalloc((size_t)n, sizeof(int));
    int **gen = xcalloc((size_t)n, sizeof(int *)), *ngen = xcalloc((size_t)n, sizeof(int));
    int rc = 0;
    /* the answer's expected ids (exact) or at most max_new of them (chrf) */
    int *n_target = xcalloc((size_t)n, sizeof(int));
    for (long i = 0; i < n && rc == 0; i++) {
        size_t pl = strlen(rs->r[i].prompt), tl = strlen(rs->r[i].target), plen;
        TokIds t = {0};
        if (tokenizer_encode_task(r->tok, rs->r[i].prompt, pl, rs->r[i].target, tl, &t, &plen) != 0) {
            rc = calm_error("example %ld: %s", i + 1, calm_last_error());
            break;
        }
        ids[i] = t.v;
        np[i] = (int)plen;
        n_target[i] = (int)(t.n - plen);
        int want = o->chrf ? o->max_new : n_target[i];
        if (o->chrf && np[i] + want > runner_max_context(r)) want = runner_max_context(r) - np[i];
        if (want < 1 || (!o->chrf && np[i] + want > runner_max_context(r)))
            rc = calm_error("example %ld: prompt + target (%zu tokens) exceed the model's context of %d", i + 1,
                            (size_t)np[i] + n_target[i], runner_max_context(r));
        gen[i] = xmalloc((size_t)(want > 0 ? want : 1) * sizeof(int));
        ngen[i] = want;
        order[i] = (int)i;
    }
    const GenOpts go = {0.0f, 0, 0, o->chrf ? newline_id(r->tok) : -1, tokenizer_vocab_size(r->tok),
                        tokenizer_eos(r->tok)};
    if (rc == 0) {
        qsort_r(order, (size_t)n, sizeof(int), by_prompt_length, np);
        GenSeq *seqs = xmalloc((size_t)o->B * sizeof(GenSeq));
        double t0 = calm_now(), last = t0;
        for (long b0 = 0; b0 < n; b0 += o->B) {
            int b = (int)(n - b0 < o->B ? n - b0 : o->B);
            for (int k = 0; k < b; k++) {
                int i = order[b0 + k];
                seqs[k] = (GenSeq){ids[i], np[i], ngen[i], gen[i], 0};
            }
            runner_generate_batch(r, seqs, b, &go);
            for (int k = 0; k < b; k++) ngen[order[b0 + k]] = seqs[k].n_out;
            if (calm_now() - last > 10.0) {
                last = calm_now();
                calm_log("eval: %ld of %ld examples, %.0f s", b0 + b, n, last - t0);
            }
        }
        free(seqs);
    }
    LangSums ls = {0};
    ChrfStats all, *per = NULL;
    memset(&all, 0, sizeof all);
    long correct = 0;
    char *obuf = NULL;
    size_t olen = 0, ocap = 0;
    for (long i = 0; i < n && rc == 0; i++) {
        const char *t = rs->r[i].target;
        size_t tl = strlen(t);
        int k = ngen[i], ended = k > 0 && generate_ends(runner_config(r), &go, gen[i][k - 1]);
        if (ended) k--; /* the end mark: EOS, or the newline of a chrF answer */
        char *text;
        size_t len;
        if (tokenizer_decode(r->tok, gen[i], (size_t)k, 1, &text, &len) != 0) {
            rc = -1;
            break;
        }
        if (o->chrf) { /* the answer is the first line */
            char *nl = memchr(text, '\n', len);
            if (nl) *nl = 0, len = (size_t)(nl - text);
        }
        int li = lang_index(&ls, rs->r[i].lang);
        double *s = ls.v[li];
        s[0] += 1;
        if (o->chrf) {
            if (s[0] == 1) { /* a new language */
                per = xrealloc(per, (size_t)ls.n * sizeof(ChrfStats));
                memset(&per[li], 0, sizeof(ChrfStats));
            }
            chrf_add(&per[li], (const char *)text, len, t, tl);
            chrf_add(&all, (const char *)text, len, t, tl);
        } else {
            int ok = ended && len == tl && !memcmp(text, t, tl);
            correct += ok;
            s[1] += ok;
        }
        if (o->outputs) {
            cJSON *j = cJSON_CreateObject();
            if (rs->r[i].lang[0]) cJSON_AddStringToObject(j, "lang", rs->r[i].lang);
            cJSON_AddStringToObject(j, "prompt", rs->r[i].prompt);
            cJSON_AddStringToObject(j, "target", t);
            cJSON_AddStringToObject(j, "output", (const char *)text); /* cJSON escapes; invalid UTF-8 passes through */
            char *line = cJSON_PrintUnformatted(j);
            size_t ll = strlen(line);
            if (olen + ll + 1 > ocap) obuf = xrealloc(obuf, ocap = 2 * (olen + ll + 1));
            memcpy(obuf + olen, line, ll);
            obuf[olen + ll] = '\n';
            olen += ll + 1;
            cJSON_free(line);
            cJSON_Delete(j);
        }
        free(text);
    }
    if (rc == 0 && o->outputs) {
        const void *bufs[] = {obuf ? obuf : ""};
        if (calm_write_atomic(o->outputs, bufs, &olen, 1) != 0) rc = -1;
    }
    free(obuf);
    if (rc == 0) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddNumberToObject(root, "examples", (double)n);
        if (o->chrf) cJSON_AddNumberToObject(root, "chrf", chrf_score(&all));
        else {
            cJSON_AddNumberToObject(root, "correct", (double)correct);
            cJSON_AddNumberToObject(root, "accuracy", (double)correct / (double)n);
        }
        if (ls.n > 1 || (ls.n == 1 && ls.name[0][0])) {
            cJSON *langs = cJSON_AddObjectToObject(root, "langs");
            for (int i = 0; i < ls.n; i++) {
                cJSON *l = cJSON_AddObjectToObject(langs, ls.name[i]);
                cJSON_AddNumberToObject(l, "examples", ls.v[i][0]);
                if (o->chrf) cJSON_AddNumberToObject(l, "chrf", chrf_score(&per[i]));
                else cJSON_AddNumberToObject(l, "accuracy", ls.v[i][1] / ls.v[i][0]);
            }
        }
        *out = root;
    }
    lang_sums_free(&ls);
    free(per);
    for (long i = 0; i < n; i++) free(ids[i]), free(gen[i]);
    free(ids);
    free(gen);
    free(np);
    free(ngen);
    free(n_target);
    free(order);
    return rc;
}

/* Teacher-forced bits per byte of each target given its prompt: records
 * BOS prompt target EOS, batched by length, loss on the target and EOS,
 * divided by the target's bytes. */
static int eval_task_bpb(Runner *r, const Recs *rs, int B, cJSON **out) {
    const long n = rs->n;
    int *len = xmalloc((size_t)n * sizeof(int)), *np = xmalloc((size_t)n * sizeof(int)),
        *order = xmalloc((size_t)n * sizeof(int));
    TokIds *enc = xcalloc((size_t)n, sizeof(TokIds));
    for (long i = 0; i < n; i++) {
        size_t plen;
        if (tokenizer_encode_task(r->tok, rs->r[i].prompt, strlen(rs->r[i].prompt), rs->r[i].target,
                                  strlen(rs->r[i].target), &enc[i], &plen) != 0)
            calm_fatal(NULL, "example %ld: %s", i + 1, calm_last_error());
        np[i] = (int)plen;
        len[i] = (int)enc[i].n;
        order[i] = (int)i;
        if (len[i] - 1 > runner_max_context(r) || !rs->r[i].target[0]) { /* len - 1 positions are fed */
            for (long j = 0; j < n; j++) tok_ids_free(&enc[j]);
            free(enc), free(len), free(np), free(order);
            return calm_error("example %ld: %s", i + 1,
                              rs->r[i].target[0] ? "prompt + target exceed the model's context" : "empty target");
        }
    }
    qsort_r(order, (size_t)n, sizeof(int), by_prompt_length, len);
    /* batch lengths rounded up to 32 positions: few distinct shapes, so the
     * model's activations are not reallocated for every batch */
    int Tmax = (len[order[n - 1]] - 1 + 31) / 32 * 32;
    if (Tmax > runner_max_context(r)) Tmax = runner_max_context(r);
    int *tok = xmalloc((size_t)B * Tmax * sizeof(int)), *tgt = xmalloc((size_t)B * Tmax * sizeof(int));
    float *w = xmalloc((size_t)B * Tmax * sizeof(float));
    double *bits = xcalloc((size_t)n, sizeof(double));
    for (long b0 = 0; b0 < n; b0 += B) {
        int b = (int)(n - b0 < B ? n - b0 : B), T = (len[order[b0 + b - 1]] - 1 + 31) / 32 * 32;
        if (T > Tmax) T = Tmax;
        for (int k = 0; k < b; k++) {
            const int *ids = enc[order[b0 + k]].v, m = len[order[b0 + k]];
            for (int t = 0; t < T; t++) {
                size_t at = (size_t)k * T + t;
                tok[at] = t < m - 1 ? ids[t] : TOK_PAD;
                tgt[at] = t < m - 1 ? ids[t + 1] : TOK_PAD;
                w[at] = t + 1 >= np[order[b0 + k]] && t < m - 1 ? 1.0f : 0.0f;
            }
        }
        runner_forward(r, tok, tgt, w, b, T);
        const float *losses = runner_losses(r);
        for (int k = 0; k < b; k++)
            for (int t = 0; t < T; t++) bits[order[b0 + k]] += losses[(size_t)k * T + t] / log(2.0);
    }
    LangSums ls = {0};
    double all_bits = 0, all_bytes = 0;
    for (long i = 0; i < n; i++) {
        int li = lang_index(&ls, rs->r[i].lang); /* may move ls.v */
        double *s = ls.v[li], bytes = (double)strlen(rs->r[i].target);
        s[0] += 1, s[1] += bytes, s[2] += bits[i];
        all_bits += bits[i], all_bytes += bytes;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "examples", (double)n);
    cJSON_AddNumberToObject(root, "target_bits_per_byte", all_bits / all_bytes);
    if (ls.n > 1 || ls.name[0][0]) {
        cJSON *langs = cJSON_AddObjectToObject(root, "langs");
        for (int i = 0; i < ls.n; i++) {
            cJSON *l = cJSON_AddObjectToObject(langs, ls.name[i]);
            cJSON_AddNumberToObject(l, "examples", ls.v[i][0]);
            cJSON_AddNumberToObject(l, "target_bits_per_byte", ls.v[i][2] / ls.v[i][1]);
        }
    }
    *out = root;
    lang_sums_free(&ls);
    for (long i = 0; i < n; i++) tok_ids_free(&enc[i]);
    free(enc), free(len), free(np), free(order), free(tok), free(tgt), free(w), free(bits);
    return 0;
}

/* Loss over text files, each one document, in windows that cover every
 * token once. */
static cJSON *eval_text(Runner *r, char **files, int nfiles, int T, int B) {
    TextData d;
    if (textdata_load(&d, r->tok, (const char *const *)files, nfiles) != 0) return NULL;
    long nw = textdata_eval_windows(&d, T);
    int *tok = xmalloc((size_t)B * T * sizeof(int)), *tgt = xmalloc((size_t)B * T * sizeof(int));
    float *w = xmalloc((size_t)B * T * sizeof(float));
    double loss_sum = 0, count = 0;
    for (long w0 = 0; w0 < nw; w0 += B) {
        int b = (int)(nw - w0 < B ? nw - w0 : B);
        for (int i = 0; i < b; i++)
            textdata_eval_window(&d, w0 + i, T, tok + (size_t)i * T, tgt + (size_t)i * T, w + (size_t)i * T);
        runner_forward(r, tok, tgt, w, b, T);
        const float *losses = runner_losses(r);
        for (size_t i = 0; i < (size_t)b * T; i++) {
            loss_sum += losses[i];
            count += w[i];
        }
    }
    double loss = loss_sum / count;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "tokens", count);
    cJSON_AddNumberToObject(root, "loss", loss);
    cJSON_AddNumberToObject(root, "bits_per_token", loss / log(2.0));
    cJSON_AddNumberToObject(root, "perplexity", exp(loss));
    free(tok);
    free(tgt);
    free(w);
    textdata_free(&d);
    return root;
}

int cmd_eval(int argc, char **argv) {
    const char *model_dir = NULL, *calm_dir = NULL, *task = NULL, *docs = NULL, *metric = "exact", *out = NULL,
               *outputs = NULL;
    int T = 256, B = 16, threads = 0, max_new = 256;
    long limit = 0;
    const Opt opts[] = {
        {"model", OPT_STR, &model_dir, "model directory", 1, 0},
        {"calm", OPT_STR, &calm_dir, "composition directory (instead of --model)", 1, 0},
        {"task", OPT_STR, &task, "JSON Lines {prompt, target[, lang]}: score greedy answers (--metric)", 1, 0},
        {"metric", OPT_STR, &metric,
         "--task: exact (the answer is the target, then EOS), chrf (chrF2 of the answer up to EOS or a newline) or "
         "bpb (teacher-forced bits per target byte)",
         1, 0},
        {"max-new", OPT_INT, &max_new,
         "--metric chrf: tokens generated at most (the same for every example: the reference sets no budget)", 1,
         1 << 20},
        {"outputs", OPT_STR, &outputs, "--task: write every answer as JSON Lines {lang, prompt, target, output}", 1, 0},
        {"docs", OPT_STR, &docs, "JSON Lines {text[, lang]}: bits per byte of each language's documents", 1, 0},
        {"limit", OPT_LONG, &limit, "--task, --docs: use at most N records (0: all)", 0, 1e12},
        {"seq-len", OPT_INT, &T, "window length for text and --docs", 1, 1 << 20},
        {"batch", OPT_INT, &B, "windows per forward pass, or sequences decoded together", 1, 1 << 20},
        {"out", OPT_STR, &out, "write the JSON result to this file (atomically) instead of stdout", 1, 0},
        {"threads", OPT_INT, &threads, "threads (0: cores available)", 0, 4096},
        OPT_END};
    const Command cmd = {"calm eval", "(--model DIR | --calm DIR) (--task FILE | --docs FILE | TEXT_FILE...)",
                         "Score a model or composition; the result is one JSON object. Text files: loss (nats/token), "
                         "bits per token and perplexity over windows that cover every token once. --docs: bits per "
                         "byte per language, each document scored on its own. --task: exact-match accuracy or chrF "
                         "of greedy answers, per language when records name one; --batch answers are decoded "
                         "together with KV caches.",
                         opts, 0, -1};
    char **files;
    int nfiles;
    cli_parse(&cmd, argc, argv, &files, &nfiles);
    if ((task != NULL) + (docs != NULL) + (nfiles > 0) != 1) {
        fprintf(stderr, "calm eval: give one of --task FILE, --docs FILE or text files\nTry 'calm eval --help'.\n");
        return 2;
    }
    if (strcmp(metric, "exact") && strcmp(metric, "chrf") && strcmp(metric, "bpb")) {
        fprintf(stderr, "calm eval: --metric '%s': use exact, chrf or bpb\n", metric);
        return 2;
    }
    if (outputs && (!task || !strcmp(metric, "bpb"))) {
        fprintf(stderr, "calm eval: --outputs needs --task with --metric exact or chrf\n");
        return 2;
    }
    calm_blas_init(threads);
    Runner r;
    runner_load(&r, "calm eval", model_dir, calm_dir);
    if (T > runner_max_context(&r)) T = runner_max_context(&r);
    cJSON *result = NULL;
    Recs rs = {0};
    if (task || docs) {
        if (recs_read(&rs, task ? task : docs, task != NULL, limit) != 0) cli_fail("eval");
    }
    if (docs) {
        result = eval_docs(&r, &rs, T, B);
    } else if (task) {
        TaskOpts to = {!strcmp(metric, "chrf"), max_new, B, outputs};
        int rc = !strcmp(metric, "bpb") ? eval_task_bpb(&r, &rs, B, &result) : eval_task(&r, &rs, &to, &result);
        if (rc != 0) cli_fail("eval");
    } else {
        result = eval_text(&r, files, nfiles, T, B);
        if (!result) cli_fail("eval");
    }
    if (out) {
        if (calm_write_json(out, result) != 0) cli_fail("eval");
    } else {
        char *text = cJSON_PrintUnformatted(result);
        printf("%s\n", text);
        cJSON_free(text);
    }
    cJSON_Delete(result);
    recs_free(&rs);
    runner_free(&r);
    return 0;
}

