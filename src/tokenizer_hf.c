/* tokenizer_hf.c: loading a Hugging Face tokenizer.json (with the model's
 * tokenizer_config.json and config.json for its BOS and EOS).
 *
 * Only what calm implements is accepted: a BPE model, and the normalizer,
 * pre-tokenizer, post-processor and decoder parts that byte-level BPE
 * (Llama-3, Qwen, GPT-2, SmolLM) and SentencePiece-style BPE (Llama-2,
 * TinyLlama, Mistral) use. Anything else is refused with the file and the
 * part named: a tokenizer that silently encodes differently from the one
 * the model was trained with would only show up as a worse loss. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "src/common.h"
#include "src/files.h"
#include "src/tokenizer_hf.h"
#include "src/tokenizer_hf_parts.h"
#include "src/utf8.h"

/* A byte-level vocabulary string as the raw bytes it stands for; -1 when a
 * character is not one of GPT-2's 256 stand-ins. out has room for n bytes. */
static long stand_ins_to_bytes(const char *s, size_t n, char *out) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    long k = 0;
    while (p < end) {
        uint32_t cp;
        p += utf8_next(p, end, &cp);
        int b = cp == UTF8_INVALID ? -1 : hf_unicode_to_byte(cp);
        if (b < 0) return -1;
        out[k++] = (char)b;
    }
    return k;
}

/* A vocabulary string as the model matches it: raw bytes for byte-level
 * models (a string that is not made of stand-ins is kept as it is: no text
 * can produce it, but decoding still shows it). */
static size_t model_string(const HfTok *h, const char *s, char *out) {
    size_t n = strlen(s);
    long k = h->byte_level ? stand_ins_to_bytes(s, n, out) : -1;
    if (k >= 0) return (size_t)k;
    memcpy(out, s, n);
    return n;
}

static int max_id(const cJSON *vocab, const cJSON *added) {
    int m = -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) if (cJSON_IsNumber(e) && e->valueint > m) m = e->valueint;
    cJSON_ArrayForEach(e, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (cJSON_IsNumber(id) && id->valueint > m) m = id->valueint;
    }
    return m;
}

static int load_vocab(HfTok *h, const cJSON *vocab, const cJSON *added) {
    if (!cJSON_IsObject(vocab) || !vocab->child) return calm_error("%s: model.vocab is missing or empty", h->path);
    if (added && !cJSON_IsArray(added)) return calm_error("%s: added_tokens is not an array", h->path);
    int top = max_id(vocab, added);
    if (top >= (1 << 30)) return calm_error("%s: token id %d is too large", h->path, top);
    vocab_init(&h->vocab, top + 1);
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e) || e->valueint < 0 || e->valuedouble != e->valueint)
            return calm_error("%s: model.vocab[\"%s\"] is not a token id", h->path, e->string);
        int id = e->valueint;
        if (h->vocab.len[id] != HF_NO_TOKEN)
            return calm_error("%s: model.vocab gives id %d to two tokens", h->path, id);
        char *buf = xmalloc(strlen(e->string) + 1);
        vocab_set(&h->vocab, id, buf, model_string(h, e->string, buf));
        free(buf);
    }
    vocab_index(&h->vocab);
    h->vocab_size = top + 1;
    return 0;
}

/* "a b" (tokenizers before 0.20) or ["a", "b"]. */
static int merge_parts(const HfTok *h, const cJSON *m, int rank, const char **a, const char **b, char **owned) {
    *owned = NULL;
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
        cJSON_IsString(m->child->next)) {
        *a = m->child->valuestring;
        *b = m->child->next->valuestring;
        return 0;
    }
    const char *sp = cJSON_IsString(m) ? strchr(m->valuestring, ' ') : NULL;
    if (!sp || strchr(sp + 1, ' '))
        return calm_error("%s: model.merges[%d] is neither \"a b\" nor [\"a\", \"b\"]", h->path, rank);
    *owned = xstrdup(m->valuestring);
    (*owned)[sp - m->valuestring] = 0;
    *a = *owned;
    *b = *owned + (sp - m->valuestring) + 1;
    return 0;
}

static int load_merges(HfTok *h, const cJSON *merges) {
    if (!cJSON_IsArray(merges)) return calm_error("%s: model.merges is missing", h->path);
    int n = cJSON_GetArraySize(merges), rank = 0;
    pairs_init(&h->merges, (size_t)n);
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        const char *a = NULL, *b = NULL;
        char *owned;
        if (merge_parts(h, m, rank, &a, &b, &owned) != 0) return -1;
        size_t la = strlen(a), lb = strlen(b);
        char *buf = xmalloc(la + lb + 1);
        size_t na = model_string(h, a, buf);
        int left = vocab_find(&h->vocab, buf, na);
        size_t nb = model_string(h, b, buf + na);
        int right = vocab_find(&h->vocab, buf + na, nb);
        int merged = vocab_find(&h->vocab, buf, na + nb);
        free(buf);
        if (left < 0 || right < 0 || merged < 0) {
            const char *what = left < 0 ? a : right < 0 ? b : "their concatenation";
            calm_error("%s: merge %d \"%s %s\" names a token the vocabulary lacks (%s)", h->path, rank, a, b, what);
            free(owned);
            return -1;
        }
        free(owned);
        pairs_put(&h->merges, left, right, (uint32_t)rank++, merged);
    }
    return 0;
}

static int load_model(HfTok *h, const cJSON *model, const cJSON *added) {
    const char *type = hf_str(model, "type");
    if (!cJSON_IsObject(model)) return calm_error("%s: no \"model\" object", h->path);
    if (!type || strcmp(type, "BPE") != 0)
        return calm_error("%s: model.type \"%s\" is not supported (calm reads BPE tokenizers)", h->path,
                          type ? type : "(none)");
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble != 0)
        return calm_error("%s: model.dropout is not supported", h->path);
    const char *affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const char *s = hf_str(model, affixes[i]);
        if (s && *s) return calm_error("%s: model.%s \"%s\" is not supported", h->path, affixes[i], s);
    }
    if (load_vocab(h, cJSON_GetObjectItemCaseSensitive(model, "vocab"), added) != 0) return -1;
    if (load_merges(h, cJSON_GetObjectItemCaseSensitive(model, "merges")) != 0) return -1;
    h->byte_fallback = hf_bool(model, "byte_fallback", 0);
    h->fuse_unk = hf_bool(model, "fuse_unk", 0);
    h->ignore_merges = hf_bool(model, "ignore_merges", 0);
    const char *unk = hf_str(model, "unk_token");
    h->unk_id = unk ? vocab_find(&h->vocab, unk, strlen(unk)) : -1;
    if (unk && h->unk_id < 0) return calm_error("%s: model.unk_token \"%s\" is not in the vocabulary", h->path, unk);
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        char raw = (char)b;
        h->byte_id[b] = h->byte_level ? vocab_find(&h->vocab, &raw, 1) : vocab_find(&h->vocab, name, strlen(name));
    }
    return 0;
}

/* Whether a word may be cut before each U+2581 that follows another
 * character: true when no vocabulary token holds such a pair, since a merge
 * across the cut would make one. SentencePiece models encode a whole
 * section as one word; cut into words, it is merged in small pieces and
 * most of them come from the word cache. */
static int metaspace_cuttable(const HfTok *h) {
    static const char mark[] = "\xe2\x96\x81";
    for (int id = 0; id < h->vocab.n_ids; id++) {
        if (h->vocab.len[id] == HF_NO_TOKEN) continue;
        const char *s = h->vocab.bytes + h->vocab.off[id], *end = s + h->vocab.len[id];
        for (const char *p = s + 1; p + 3 <= end; p++)
            if (memcmp(p, mark, 3) == 0 && (p - s < 3 || memcmp(p - 3, mark, 3) != 0)) return 0;
    }
    return 1;
}

static int load_added(HfTok *h, const cJSON *added) {
    h->n_added = cJSON_GetArraySize(added);
    h->added = xcalloc((size_t)h->n_added + 1, sizeof *h->added);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, added) {
        const char *content = hf_str(e, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (!content || !*content || !cJSON_IsNumber(id) || id->valueint < 0)
            return calm_error("%s: added_tokens[%d] lacks a content or an id", h->path, i);
        /* single_word and normalized are not used by the reference either:
         * added tokens match the raw text wherever they occur */
        Added *a = &h->added[i++];
        a->content = xstrdup(content);
        a->len = strlen(content);
        a->id = id->valueint;
        a->special = hf_bool(e, "special", 0);
        a->lstrip = hf_bool(e, "lstrip", 0);
        a->rstrip = hf_bool(e, "rstrip", 0);
        vocab_set(&h->vocab, a->id, a->content, a->len); /* for decoding; not matched by BPE */
    }
    hf_build_trie(h);
    return 0;
}

/* tokenizer.json's parts, in the order the pipeline runs them. */
static int load_parts(HfTok *h, const cJSON *root) {
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (hf_parse_pre(h, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer")) != 0) return -1;
    for (int i = 0; i < h->n_pre; i++) h->byte_level |= h->pre[i].kind == PRE_BYTELEVEL;
    if (load_model(h, cJSON_GetObjectItemCaseSensitive(root, "model"), added) != 0) return -1;
    if (load_added(h, added) != 0) return -1;
    if (hf_parse_norm(h, cJSON_GetObjectItemCaseSensitive(root, "normalizer")) != 0) return -1;
    if (hf_parse_post(h, cJSON_GetObjectItemCaseSensitive(root, "post_processor")) != 0) return -1;
    if (hf_parse_dec(h, cJSON_GetObjectItemCaseSensitive(root, "decoder")) != 0) return -1;
    h->split_metaspace = !h->byte_level && metaspace_cuttable(h);
    return 0;
}

HfTok *hf_load(const char *dir, const char *path) {
    HfTok *h = xcalloc(1, sizeof *h);
    h->path = xstrdup(path);
    h->bos = h->eos = h->unk_id = -1;
    if (pthread_key_create(&h->work_key, hf_work_free) != 0) {
        calm_error("%s: cannot create a thread-local key (too many tokenizers loaded)", path);
        free(h->path);
        free(h);
        return NULL;
    }
    cJSON *root = calm_read_json(path);
    int rc = root ? 0 : -1;
    if (rc == 0 && !cJSON_IsObject(root)) rc = calm_error("%s: not a JSON object", path);
    if (rc == 0) rc = load_parts(h, root);
    if (rc == 0) rc = hf_load_configs(h, dir);
    cJSON_Delete(root);
    if (rc != 0) {
        hf_free(h);
        return NULL;
    }
    return h;
}

void hf_free(HfTok *h) {
    if (!h) return;
    hf_work_free(pthread_getspecific(h->work_key));
    pthread_key_delete(h->work_key);
    vocab_free(&h->vocab);
    pairs_free(&h->merges);
    hf_free_parts(h);
    for (int i = 0; i < h->n_added; i++) free(h->added[i].content);
    free(h->added);
    free(h->trie);
    free(h->prefix);
    free(h->suffix);
    free(h->special);
    free(h->path);
    free(h);
}
