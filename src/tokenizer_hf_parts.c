/* tokenizer_hf_parts.c: the parts of a tokenizer.json around its model, and
 * the model directory's special-token configuration. Each part type calm
 * does not implement is an error naming it (see tokenizer_hf.c for why). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/common.h"
#include "src/files.h"
#include "src/tokenizer_hf_parts.h"

/* GPT-2's pre-tokenizer regex (ByteLevel with use_regex). */
static const char GPT2_REGEX[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char METASPACE[] = "\xe2\x96\x81"; /* U+2581 */

const char *hf_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int hf_bool(const cJSON *o, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static int hf_int(const cJSON *o, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valueint : dflt;
}

/* Visit j, or each element of j's `list` when j is a Sequence. */
typedef int (*PartFn)(HfTok *h, const cJSON *part, const char *type);
static int each_part(HfTok *h, const cJSON *j, const char *list, const char *what, PartFn fn) {
    if (!j || cJSON_IsNull(j)) return 0;
    const char *type = hf_str(j, "type");
    if (!type) return calm_error("%s: %s has no type", h->path, what);
    if (strcmp(type, "Sequence") != 0) return fn(h, j, type);
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, list);
    if (!cJSON_IsArray(items)) return calm_error("%s: %s Sequence has no %s list", h->path, what, list);
    const cJSON *e;
    cJSON_ArrayForEach(e, items) if (each_part(h, e, list, what, fn) != 0) return -1;
    return 0;
}

/* A Replace step (normalizer or decoder): {"pattern": {"String": from},
 * "content": to} into *from and *to; a Regex pattern is not supported. */
static int replace_part(const HfTok *h, const cJSON *j, const char *what, char **from, char **to) {
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(j, "pattern");
    const char *a = hf_str(pat, "String"), *b = hf_str(j, "content");
    if (!a) return calm_error("%s: %s Replace: only a {\"String\": ...} pattern is supported", h->path, what);
    if (!*a || !b) return calm_error("%s: %s Replace needs a pattern and a content", h->path, what);
    *from = xstrdup(a);
    *to = xstrdup(b);
    return 0;
}

/* ------------------------------------------------------------ normalizer */

static int norm_part(HfTok *h, const cJSON *j, const char *type) {
    NormStep s = {0};
    if (strcmp(type, "Prepend") == 0) {
        s.kind = NORM_PREPEND;
        const char *p = hf_str(j, "prepend");
        if (!p) return calm_error("%s: normalizer Prepend has no prepend string", h->path);
        s.a = xstrdup(p);
    } else if (strcmp(type, "Replace") == 0) {
        s.kind = NORM_REPLACE;
        if (replace_part(h, j, "normalizer", &s.a, &s.b) != 0) return -1;
    } else if (strcmp(type, "NFC") == 0) {
        s.kind = NORM_NFC;
    } else {
        return calm_error("%s: normalizer type \"%s\" is not supported (calm has Sequence, Prepend, Replace, NFC)",
                          h->path, type);
    }
    s.alen = s.a ? strlen(s.a) : 0;
    s.blen = s.b ? strlen(s.b) : 0;
    h->norm = xrealloc(h->norm, (size_t)(h->n_norm + 1) * sizeof *h->norm);
    h->norm[h->n_norm++] = s;
    return 0;
}

int hf_parse_norm(HfTok *h, const cJSON *j) { return each_part(h, j, "normalizers", "normalizer", norm_part); }

/* --------------------------------------------------------- pre-tokenizer */

static int compile_regex(const HfTok *h, const char *pat, uint32_t flags, pcre2_code **out) {
    int err;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | flags, &err, &at, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return calm_error("%s: pre-tokenizer regex /%s/ is not supported: %s (at offset %zu)", h->path, pat,
                          (const char *)msg, (size_t)at);
    }
    /* JIT is an optimisation: where it is unavailable pcre2_match interprets */
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    *out = re;
    return 0;
}

static int pre_split(HfTok *h, const cJSON *j, PreStep *s) {
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(j, "pattern");
    const char *regex = hf_str(pat, "Regex"), *literal = hf_str(pat, "String");
    const char *behavior = hf_str(j, "behavior");
    if (hf_bool(j, "invert", 0)) return calm_error("%s: pre-tokenizer Split with invert is not supported", h->path);
    if (!behavior || (strcmp(behavior, "Isolated") != 0 && strcmp(behavior, "Removed") != 0))
        return calm_error("%s: pre-tokenizer Split behavior \"%s\" is not supported (calm has Isolated, Removed)",
                          h->path, behavior ? behavior : "(none)");
    if (!regex && !literal) return calm_error("%s: pre-tokenizer Split has no Regex or String pattern", h->path);
    s->kind = PRE_SPLIT;
    s->removed = strcmp(behavior, "Removed") == 0;
    return compile_regex(h, regex ? regex : literal, regex ? 0 : PCRE2_LITERAL, &s->re);
}

static int pre_metaspace(HfTok *h, const cJSON *j, PreStep *s) {
    const char *repl = hf_str(j, "replacement"), *scheme = hf_str(j, "prepend_scheme");
    s->kind = PRE_METASPACE;
    s->repl = xstrdup(repl ? repl : METASPACE);
    s->repl_len = strlen(s->repl);
    s->split = hf_bool(j, "split", 1);
    /* tokenizers >= 0.15 write prepend_scheme; older files add_prefix_space */
    if (!scheme) s->prepend = hf_bool(j, "add_prefix_space", 1) ? 2 : 0;
    else if (strcmp(scheme, "always") == 0) s->prepend = 2;
    else if (strcmp(scheme, "first") == 0) s->prepend = 1;
    else if (strcmp(scheme, "never") == 0) s->prepend = 0;
    else return calm_error("%s: pre-tokenizer Metaspace prepend_scheme \"%s\" is not supported", h->path, scheme);
    return s->repl_len ? 0 : calm_error("%s: pre-tokenizer Metaspace has an empty replacement", h->path);
}

static int pre_part(HfTok *h, const cJSON *j, const char *type) {
    PreStep s = {0};
    int rc;
    if (strcmp(type, "Split") == 0) {
        rc = pre_split(h, j, &s);
    } else if (strcmp(type, "ByteLevel") == 0) {
        s.kind = PRE_BYTELEVEL;
        s.prepend = hf_bool(j, "add_prefix_space", 0);
        rc = hf_bool(j, "use_regex", 1) ? compile_regex(h, GPT2_REGEX, 0, &s.re) : 0;
    } else if (strcmp(type, "Digits") == 0) {
        s.kind = PRE_DIGITS;
        s.individual = hf_bool(j, "individual_digits", 0);
        rc = 0;
    } else if (strcmp(type, "Metaspace") == 0) {
        rc = pre_metaspace(h, j, &s);
    } else {
        return calm_error("%s: pre-tokenizer type \"%s\" is not supported (calm has Sequence, Split, ByteLevel, "
                          "Digits, Metaspace)", h->path, type);
    }
    h->pre = xrealloc(h->pre, (size_t)(h->n_pre + 1) * sizeof *h->pre);
    h->pre[h->n_pre++] = s;
    if (rc == 0 && (s.kind == PRE_METASPACE || (s.kind == PRE_BYTELEVEL && s.prepend)) && h->n_pre > 1)
        rc = calm_error("%s: pre-tokenizer %s is supported only as the first one", h->path, type);
    return rc;
}

int hf_parse_pre(HfTok *h, const cJSON *j) { return each_part(h, j, "pretokenizers", "pre_tokenizer", pre_part); }

/* --------------------------------------------------------------- decoder */

static int dec_part(HfTok *h, const cJSON *j, const char *type) {
    DecStep s = {0};
    if (strcmp(type, "ByteLevel") == 0) {
        s.kind = DEC_BYTELEVEL;
    } else if (strcmp(type, "Replace") == 0) {
        s.kind = DEC_REPLACE;
        if (replace_part(h, j, "decoder", &s.a, &s.b) != 0) return -1;
    } else if (strcmp(type, "ByteFallback") == 0) {
        s.kind = DEC_BYTEFALLBACK;
    } else if (strcmp(type, "Fuse") == 0) {
        s.kind = DEC_FUSE;
    } else if (strcmp(type, "Strip") == 0) {
        const char *c = hf_str(j, "content");
        s.kind = DEC_STRIP;
        s.a = xstrdup(c ? c : " ");
        s.start = hf_int(j, "start", 0);
        s.stop = hf_int(j, "stop", 0);
    } else if (strcmp(type, "Metaspace") == 0) {
        const char *repl = hf_str(j, "replacement"), *scheme = hf_str(j, "prepend_scheme");
        s.kind = DEC_METASPACE;
        s.a = xstrdup(repl ? repl : METASPACE);
        s.start = scheme ? strcmp(scheme, "never") != 0 : hf_bool(j, "add_prefix_space", 1);
    } else {
        return calm_error("%s: decoder type \"%s\" is not supported (calm has Sequence, ByteLevel, Replace, "
                          "ByteFallback, Fuse, Strip, Metaspace)", h->path, type);
    }
    if ((s.kind == DEC_BYTELEVEL) != h->byte_level) {
        free(s.a);
        free(s.b);
        return calm_error("%s: decoder %s with %s pre-tokenizer is not supported", h->path, type,
                          h->byte_level ? "a ByteLevel" : "a non-ByteLevel");
    }
    s.alen = s.a ? strlen(s.a) : 0;
    s.blen = s.b ? strlen(s.b) : 0;
    h->dec = xrealloc(h->dec, (size_t)(h->n_dec + 1) * sizeof *h->dec);
    h->dec[h->n_dec++] = s;
    return 0;
}

int hf_parse_dec(HfTok *h, const cJSON *j) { return each_part(h, j, "decoders", "decoder", dec_part); }

/* ---------------------------------------------------------- added tokens */

static int token_id(const HfTok *h, const char *s) {
    for (int i = h->n_added - 1; i >= 0; i--)
        if (strcmp(h->added[i].content, s) == 0) return h->added[i].id;
    return h->byte_level ? -1 : vocab_find(&h->vocab, s, strlen(s));
}

static int trie_child(HfTok *h, int node, unsigned char byte) {
    for (int c = h->trie[node].child; c >= 0; c = h->trie[c].sibling)
        if (h->trie[c].byte == byte) return c;
    h->trie = xrealloc(h->trie, (size_t)(h->n_trie + 1) * sizeof *h->trie);
    h->trie[h->n_trie] = (TrieNode){-1, h->trie[node].child, -1, byte};
    h->trie[node].child = h->n_trie;
    return h->n_trie++;
}

/* A later added token with the same content replaces an earlier one. */
void hf_build_trie(HfTok *h) {
    h->trie = xmalloc(sizeof *h->trie);
    h->trie[0] = (TrieNode){-1, -1, -1, 0};
    h->n_trie = 1;
    for (int i = 0; i < h->n_added; i++) {
        int node = 0;
        for (size_t k = 0; k < h->added[i].len; k++) node = trie_child(h, node, (unsigned char)h->added[i].content[k]);
        h->trie[node].added = i;
        h->added_first[(unsigned char)h->added[i].content[0]] = 1;
    }
}

/* -------------------------------------------------------- post-processor */

/* A template item's special token: its ids from special_tokens, else the token itself. */
static int template_token(HfTok *h, const cJSON *specials, const char *name, int before) {
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(specials, name), "ids");
    int one = token_id(h, name), n = cJSON_IsArray(ids) ? cJSON_GetArraySize(ids) : 1;
    if (!cJSON_IsArray(ids) && one < 0)
        return calm_error("%s: post_processor names special token \"%s\", which is not a token", h->path, name);
    int **list = before ? &h->prefix : &h->suffix, *count = before ? &h->n_prefix : &h->n_suffix;
    *list = xrealloc(*list, (size_t)(*count + n) * sizeof **list);
    if (!cJSON_IsArray(ids)) {
        (*list)[(*count)++] = one;
        return 0;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, ids) {
        if (!cJSON_IsNumber(e) || e->valueint < 0 || e->valueint >= h->vocab_size)
            return calm_error("%s: post_processor special token \"%s\" has an id outside the vocabulary", h->path, name);
        (*list)[(*count)++] = e->valueint;
    }
    return 0;
}

static int post_part(HfTok *h, const cJSON *j, const char *type) {
    if (strcmp(type, "ByteLevel") == 0) return 0; /* only offsets: nothing for ids */
    if (strcmp(type, "TemplateProcessing") != 0)
        return calm_error("%s: post_processor type \"%s\" is not supported (calm has Sequence, ByteLevel, "
                          "TemplateProcessing)", h->path, type);
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(j, "single"), *e;
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(j, "special_tokens");
    if (!cJSON_IsArray(single)) return calm_error("%s: post_processor TemplateProcessing has no single template", h->path);
    h->has_template = 1;
    int before = 1;
    cJSON_ArrayForEach(e, single) {
        const cJSON *tok = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
        if (cJSON_GetObjectItemCaseSensitive(e, "Sequence")) before = 0;
        else if (!hf_str(tok, "id")) return calm_error("%s: post_processor template item is neither Sequence nor SpecialToken", h->path);
        else if (template_token(h, specials, hf_str(tok, "id"), before) != 0) return -1;
    }
    return 0;
}

int hf_parse_post(HfTok *h, const cJSON *j) { return each_part(h, j, "processors", "post_processor", post_part); }

/* --------------------------------------------------------------- configs */

#define UNSET (-2) /* h->bos / h->eos not named by tokenizer_config.json */

/* tokenizer_config.json names a token as a string or as an AddedToken
 * object ({"__type": "AddedToken", "content": ...}); null says there is
 * none. UNSET when the key is absent. */
static int config_token(HfTok *h, const cJSON *cfg, const char *key, const char *file, int *id) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    const char *s = cJSON_IsString(v) ? v->valuestring : hf_str(v, "content");
    *id = !v ? UNSET : -1;
    if (!s) return 0;
    *id = token_id(h, s);
    return *id < 0 ? calm_error("%s: %s \"%s\" is not a token of the tokenizer", file, key, s) : 0;
}

/* config.json's bos_token_id / eos_token_id: a number or a list (the first). */
static int config_id(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsArray(v)) v = v->child;
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

static cJSON *optional_json(const char *dir, const char *name, char **path, int *rc) {
    *path = calm_path_join(dir, name);
    *rc = 0;
    if (access(*path, F_OK) != 0) return NULL;
    cJSON *j = calm_read_json(*path);
    if (!j) *rc = -1;
    return j;
}

static int read_tokenizer_config(HfTok *h, const cJSON *cfg, const char *path, int *add_bos, int *add_eos) {
    int pad;
    if (config_token(h, cfg, "bos_token", path, &h->bos) != 0 || config_token(h, cfg, "eos_token", path, &h->eos) != 0 ||
        config_token(h, cfg, "pad_token", path, &pad) != 0)
        return -1;
    if (pad >= 0) h->special[pad] = 1;
    *add_bos = hf_bool(cfg, "add_bos_token", 0);
    *add_eos = hf_bool(cfg, "add_eos_token", 0);
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(cfg, "additional_special_tokens")) {
        const char *s = cJSON_IsString(e) ? e->valuestring : hf_str(e, "content");
        int id = s ? token_id(h, s) : -1;
        if (id >= 0) h->special[id] = 1;
    }
    return 0;
}

/* BOS and EOS from tokenizer_config.json, else from config.json. */
static int read_special(HfTok *h, const char *dir, int *add_bos, int *add_eos) {
    char *path;
    int rc;
    h->bos = h->eos = UNSET;
    cJSON *cfg = optional_json(dir, "tokenizer_config.json", &path, &rc);
    if (cfg) rc = read_tokenizer_config(h, cfg, path, add_bos, add_eos);
    cJSON_Delete(cfg);
    free(path);
    if (rc != 0) return -1;
    cfg = optional_json(dir, "config.json", &path, &rc);
    if (h->bos == UNSET) h->bos = config_id(cfg, "bos_token_id");
    if (h->eos == UNSET) h->eos = config_id(cfg, "eos_token_id");
    cJSON_Delete(cfg);
    if (rc == 0 && (h->bos >= h->vocab_size || h->eos >= h->vocab_size))
        rc = calm_error("%s: bos or eos token id (%d, %d) is outside the vocabulary of %d", path, h->bos, h->eos,
                        h->vocab_size);
    free(path);
    return rc;
}

/* The template (when tokenizer.json has one) says which special tokens
 * encoding adds, as in the reference; otherwise add_bos_token /
 * add_eos_token of tokenizer_config.json. */
int hf_load_configs(HfTok *h, const char *dir) {
    h->special = xcalloc((size_t)h->vocab_size, 1);
    for (int i = 0; i < h->n_added; i++) h->special[h->added[i].id] |= (unsigned char)h->added[i].special;
    int add_bos = 0, add_eos = 0;
    if (read_special(h, dir, &add_bos, &add_eos) != 0) return -1;
    if (h->bos >= 0) h->special[h->bos] = 1;
    if (h->eos >= 0) h->special[h->eos] = 1;
    if (h->has_template) return 0;
    if ((add_bos && h->bos < 0) || (add_eos && h->eos < 0))
        return calm_error("%s/tokenizer_config.json: add_%s_token is true but the model has no such token", dir,
                          add_bos && h->bos < 0 ? "bos" : "eos");
    if (add_bos) h->prefix = xmalloc(sizeof(int)), h->prefix[h->n_prefix++] = h->bos;
    if (add_eos) h->suffix = xmalloc(sizeof(int)), h->suffix[h->n_suffix++] = h->eos;
    return 0;
}

void hf_free_parts(HfTok *h) {
    for (int i = 0; i < h->n_norm; i++) free(h->norm[i].a), free(h->norm[i].b);
    for (int i = 0; i < h->n_pre; i++) pcre2_code_free(h->pre[i].re), free(h->pre[i].repl);
    for (int i = 0; i < h->n_dec; i++) free(h->dec[i].a), free(h->dec[i].b);
    free(h->norm);
    free(h->pre);
    free(h->dec);
}
