/* tokenizer.c: calm's byte tokenizer, and the handle that puts it and a
 * Hugging Face tokenizer.json (tokenizer_hf*.c) behind one interface. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/common.h"
#include "src/files.h"
#include "src/sha256.h"
#include "src/tokenizer.h"
#include "src/tokenizer_hf.h"

size_t tok_encode(int *out, const unsigned char *bytes, size_t n, int add_bos, int add_eos) {
    size_t k = 0;
    if (add_bos) out[k++] = TOK_BOS;
    for (size_t i = 0; i < n; i++) out[k++] = bytes[i];
    if (add_eos) out[k++] = TOK_EOS;
    return k;
}

size_t tok_decode(unsigned char *out, const int *ids, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < 256) out[k++] = (unsigned char)ids[i];
    return k;
}

void tok_ids_reserve(TokIds *ids, size_t n) {
    if (n <= ids->cap) return;
    ids->cap = n < 2 * ids->cap ? 2 * ids->cap : n + 64;
    ids->v = xrealloc(ids->v, ids->cap * sizeof *ids->v);
}

void tok_ids_free(TokIds *ids) {
    free(ids->v);
    *ids = (TokIds){0};
}

/* ------------------------------------------------------------ the handle */

struct Tokenizer {
    HfTok *hf; /* NULL: the byte tokenizer */
    char id[TOK_ID_MAX];
};

Tokenizer *tokenizer_bytes(void) {
    Tokenizer *t = xcalloc(1, sizeof *t);
    snprintf(t->id, sizeof t->id, "%s", TOK_ID);
    return t;
}

/* A directory without tokenizer.json: calm's byte tokenizer, unless the
 * directory has tokenizer files calm cannot read (a SentencePiece
 * tokenizer.model, or a tokenizer_config.json whose tokenizer.json is
 * missing), which would otherwise pass silently as bytes. */
static Tokenizer *load_without_json(const char *dir) {
    static const char *const other[] = {"tokenizer.model", "tokenizer_config.json"};
    for (size_t i = 0; i < sizeof other / sizeof *other; i++) {
        char *p = calm_path_join(dir, other[i]);
        int has = access(p, F_OK) == 0;
        free(p);
        if (has) {
            calm_error("%s: has %s but no %s; calm reads Hugging Face tokenizers from %s (save one with "
                       "transformers' AutoTokenizer.save_pretrained)",
                       dir, other[i], TOK_FILE, TOK_FILE);
            return NULL;
        }
    }
    return tokenizer_bytes();
}

Tokenizer *tokenizer_load(const char *dir) {
    char *path = calm_path_join(dir, TOK_FILE);
    if (access(path, F_OK) != 0) {
        free(path);
        return load_without_json(dir);
    }
    char hex[65];
    Tokenizer *t = NULL;
    HfTok *hf = calm_sha256_file(path, hex) == 0 ? hf_load(dir, path) : NULL;
    if (hf) {
        t = xcalloc(1, sizeof *t);
        t->hf = hf;
        /* BOS and EOS come from tokenizer_config.json / config.json, and a
         * base and an instruct model share tokenizer.json but not EOS */
        snprintf(t->id, sizeof t->id, "sha256:%s bos=%d eos=%d", hex, hf->bos, hf->eos);
    }
    free(path);
    return t;
}

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    hf_free(t->hf);
    free(t);
}

const char *tokenizer_id(const Tokenizer *t) { return t->id; }
int tokenizer_vocab_size(const Tokenizer *t) { return t->hf ? t->hf->vocab_size : TOK_N_SPECIAL; }
int tokenizer_bos(const Tokenizer *t) { return t->hf ? t->hf->bos : TOK_BOS; }
int tokenizer_eos(const Tokenizer *t) { return t->hf ? t->hf->eos : TOK_EOS; }

int tokenizer_is_special(const Tokenizer *t, int id) {
    if (id < 0 || id >= tokenizer_vocab_size(t)) return 0;
    return t->hf ? t->hf->special[id] : id >= 256;
}

int tokenizer_encode(const Tokenizer *t, const char *text, size_t n, int add_special, TokIds *out) {
    if (t->hf) return hf_encode(t->hf, text, n, add_special, out);
    tok_ids_reserve(out, out->n + n + 1);
    out->n += tok_encode(out->v + out->n, (const unsigned char *)text, n, add_special, 0);
    return 0;
}

/* The byte tokenizer's special ids have no text: they are dropped whether
 * or not skip_special asks for it. */
int tokenizer_decode(const Tokenizer *t, const int *ids, size_t n, int skip_special, char **text, size_t *len) {
    if (t->hf) return hf_decode(t->hf, ids, n, skip_special, text, len);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= TOK_N_SPECIAL)
            return calm_error("byte tokenizer: token id %d is not in the vocabulary (%d ids)", ids[i], TOK_N_SPECIAL);
    unsigned char *s = xmalloc(n + 1);
    *len = tok_decode(s, ids, n);
    s[*len] = 0;
    *text = (char *)s;
    return 0;
}

/* ---------------------------------------- documents and task examples */

static void push_id(TokIds *out, int id) {
    if (id < 0) return; /* the tokenizer has no such token */
    tok_ids_reserve(out, out->n + 1);
    out->v[out->n++] = id;
}

int tokenizer_encode_doc(const Tokenizer *t, const char *text, size_t n, TokIds *out) {
    size_t at = out->n;
    push_id(out, tokenizer_bos(t));
    if (tokenizer_encode(t, text, n, 0, out) != 0) {
        out->n = at;
        return -1;
    }
    push_id(out, tokenizer_eos(t));
    return 0;
}

void tokenizer_frame_ids(const Tokenizer *t, const int *ids, size_t n, TokIds *out) {
    push_id(out, tokenizer_bos(t));
    tok_ids_reserve(out, out->n + n);
    memcpy(out->v + out->n, ids, n * sizeof *ids);
    out->n += n;
    push_id(out, tokenizer_eos(t));
}

int tokenizer_encode_prompt(const Tokenizer *t, const char *text, size_t n, TokIds *out) {
    size_t at = out->n;
    push_id(out, tokenizer_bos(t));
    if (tokenizer_encode(t, text, n, 0, out) == 0) return 0;
    out->n = at;
    return -1;
}

int tokenizer_encode_task(const Tokenizer *t, const char *prompt, size_t np, const char *target, size_t nt,
                          TokIds *out, size_t *n_prompt) {
    size_t at = out->n;
    push_id(out, tokenizer_bos(t));
    if (tokenizer_encode(t, prompt, np, 0, out) != 0) goto fail;
    *n_prompt = out->n - at;
    if (tokenizer_encode(t, target, nt, 0, out) != 0) goto fail;
    push_id(out, tokenizer_eos(t));
    return 0;
fail:
    out->n = at;
    return -1;
}

/* ------------------------------------------------------------- files */

int tokenizer_copy_files(const char *from_dir, const char *to_dir) {
    static const char *const names[] = TOK_FILES;
    int r = 0;
    for (size_t i = 0; i < sizeof names / sizeof *names && r == 0; i++) {
        char *src = calm_path_join(from_dir, names[i]), *dst = calm_path_join(to_dir, names[i]);
        char *data;
        size_t len;
        if (access(src, F_OK) == 0) {
            r = calm_read_file(src, &data, &len);
            if (r == 0) {
                const void *bufs[] = {data};
                r = calm_write_atomic(dst, bufs, &len, 1);
                free(data);
            }
        }
        free(src);
        free(dst);
    }
    return r;
}
