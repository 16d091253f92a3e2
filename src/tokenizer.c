#include "src/tokenizer.h"

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

/* ---- the handle (byte tokenizer only until tokenizer_hf.c lands) ---- */
#include <stdlib.h>
#include <string.h>

#include "src/common.h"
#include "src/files.h"

struct Tokenizer {
    int hf;
};

void tok_ids_free(TokIds *ids) {
    free(ids->v);
    memset(ids, 0, sizeof *ids);
}

static void ids_reserve(TokIds *ids, size_t extra) {
    if (ids->n + extra <= ids->cap) return;
    size_t cap = ids->cap ? ids->cap : 64;
    while (cap < ids->n + extra) cap *= 2;
    ids->v = xrealloc(ids->v, cap * sizeof(int));
    ids->cap = cap;
}

Tokenizer *tokenizer_bytes(void) { return xcalloc(1, sizeof(Tokenizer)); }

Tokenizer *tokenizer_load(const char *dir) {
    char *path = calm_path_join(dir, TOK_FILE);
    FILE *f = fopen(path, "rb");
    if (f) {
        fclose(f);
        calm_error("%s: Hugging Face tokenizers are not supported yet", path);
        free(path);
        return NULL;
    }
    free(path);
    return tokenizer_bytes();
}

void tokenizer_free(Tokenizer *t) { free(t); }
const char *tokenizer_id(const Tokenizer *t) { return TOK_ID; }
int tokenizer_vocab_size(const Tokenizer *t) { return TOK_N_SPECIAL; }
int tokenizer_bos(const Tokenizer *t) { return TOK_BOS; }
int tokenizer_eos(const Tokenizer *t) { return TOK_EOS; }
int tokenizer_is_special(const Tokenizer *t, int id) { return id >= 256; }

int tokenizer_encode(const Tokenizer *t, const char *text, size_t n, int add_special, TokIds *out) {
    ids_reserve(out, n + 2);
    out->n += tok_encode(out->v + out->n, (const unsigned char *)text, n, add_special, 0);
    return 0;
}

int tokenizer_decode(const Tokenizer *t, const int *ids, size_t n, int skip_special, char **text, size_t *len) {
    *text = xmalloc(n + 1);
    *len = tok_decode((unsigned char *)*text, ids, n);
    (*text)[*len] = 0;
    return 0;
}

static void push_id(TokIds *out, int id) {
    if (id < 0) return; /* the tokenizer has no such token */
    ids_reserve(out, 1);
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
