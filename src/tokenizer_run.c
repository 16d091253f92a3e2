/* tokenizer_run.c: encoding and decoding with a loaded tokenizer.json.
 *
 * Encoding, as the reference does it: split the text on added tokens
 * (longest match, leftmost first); normalize each other section on its own
 * (so Llama-2's Prepend("\u2581") applies to every section); cut it into
 * pre-tokens; BPE-encode each; fuse runs of unknown tokens. Decoding runs
 * the decoder steps over the token strings. */
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "src/common.h"
#include "src/tokenizer_hf.h"
#include "src/utf8.h"

/* The byte offset of the first invalid UTF-8 sequence, or n. */
static size_t utf8_invalid_at(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        if (end - p >= 8) { /* ASCII fast path */
            uint64_t x;
            memcpy(&x, p, 8);
            if (!(x & 0x8080808080808080ull)) {
                p += 8;
                continue;
            }
        }
        uint32_t cp;
        int len = utf8_next(p, end, &cp);
        /* utf8_next leaves overlong forms and surrogates to its callers */
        if (cp == UTF8_INVALID || (cp >= 0xd800 && cp < 0xe000) || cp > 0x10ffff ||
            (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
            return (size_t)(p - (const unsigned char *)s);
        p += len;
    }
    return n;
}

/* ------------------------------------------------------------ normalizer */

static size_t replace_all(char *out, const char *s, size_t n, const char *a, size_t alen, const char *b, size_t blen) {
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (i + alen <= n && s[i] == a[0] && memcmp(s + i, a, alen) == 0) {
            memcpy(out + k, b, blen);
            k += blen;
            i += alen;
        } else {
            out[k++] = s[i++];
        }
    }
    return k;
}

/* Code points below U+0300 are all NFC already and compose with nothing
 * before them; their UTF-8 never has a byte >= 0xCC. */
static int may_need_nfc(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0xcc) return 1;
    return 0;
}

/* One normalizer step from *s into the workspace buffer that *s is not in
 * (*cur: 0 or 1, or -1 for the caller's text); *s, *n and *cur follow. */
static int normalize_step(const HfTok *h, HfWork *w, const NormStep *st, int *cur, const char **s, size_t *n) {
    int which = *cur == 0;
    char *out;
    size_t k;
    if (st->kind == NORM_PREPEND) {
        out = hf_work_buf(w, which, *n + st->alen);
        memcpy(out, st->a, st->alen);
        memcpy(out + st->alen, *s, *n);
        k = *n + st->alen;
    } else if (st->kind == NORM_REPLACE) {
        size_t most = st->blen > st->alen ? *n / st->alen * st->blen + *n : *n;
        out = hf_work_buf(w, which, most);
        k = replace_all(out, *s, *n, st->a, st->alen, st->b, st->blen);
    } else {
        if (!may_need_nfc(*s, *n)) return 0;
        utf8proc_uint8_t *nfc;
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)*s, (utf8proc_ssize_t)*n, &nfc,
                                          UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (r < 0) return calm_error("%s: NFC of the text failed: %s", h->path, utf8proc_errmsg(r));
        out = hf_work_buf(w, which, (size_t)r);
        memcpy(out, nfc, (size_t)r);
        free(nfc);
        k = (size_t)r;
    }
    *s = out;
    *n = k;
    *cur = which;
    return 0;
}

/* --------------------------------------------------------- pre-tokenizer */

typedef struct {
    const char *text; /* the section's text, after any rewriting step */
    size_t len;
    Span *sp;
    size_t n;
    int which; /* the workspace span array sp lives in */
} Pieces;

static void emit(HfWork *w, Pieces *out, size_t off, size_t len) {
    if (len == 0) return;
    out->sp = hf_work_spans(w, out->which, out->n + 1);
    out->sp[out->n++] = (Span){(uint32_t)off, (uint32_t)len};
}

/* Regex matches and the text between them become pieces (Removed: only
 * the text between). Each piece is matched on its own, as the reference
 * does, so lookarounds never see past it. */
static int split_regex(const HfTok *h, HfWork *w, const PreStep *st, Span in, Pieces *out) {
    PCRE2_SPTR subject = (PCRE2_SPTR)out->text + in.off;
    PCRE2_SIZE pos = 0, prev = 0;
    pcre2_match_data *md = hf_work_match(w);
    while (pos < in.len) {
        int rc = pcre2_match(st->re, subject, in.len, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return calm_error("%s: pre-tokenizer regex failed on the text: %s", h->path, (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[0] > prev) emit(w, out, in.off + prev, ov[0] - prev);
        prev = ov[0];
        if (ov[1] == ov[0]) { /* an empty match: step over one character */
            uint32_t cp;
            pos = ov[0] + (PCRE2_SIZE)utf8_next(subject + ov[0], subject + in.len, &cp);
            continue;
        }
        if (!st->removed) emit(w, out, in.off + ov[0], ov[1] - ov[0]);
        prev = pos = ov[1];
    }
    if (prev < in.len) emit(w, out, in.off + prev, in.len - prev);
    return 0;
}

/* Runs of digits (or each digit) apart from the rest. */
static void split_digits(HfWork *w, int individual, Span in, Pieces *out) {
    const char *s = out->text + in.off;
    size_t start = 0;
    for (size_t i = 0; i < in.len; i++) {
        int digit = s[i] >= '0' && s[i] <= '9';
        int prev_digit = i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9';
        if (i > start && (digit != prev_digit || (digit && individual))) {
            emit(w, out, in.off + start, i - start);
            start = i;
        }
    }
    emit(w, out, in.off + start, in.len - start);
}

/* Cut before each `mark` (MergedWithNext); with after_other, only before a
 * mark that follows some other character. */
static void split_before(HfWork *w, const char *mark, size_t mlen, int after_other, Span in, Pieces *out) {
    const char *s = out->text + in.off;
    size_t start = 0;
    for (size_t i = 1; i + mlen <= in.len; i++) {
        if (s[i] != mark[0] || memcmp(s + i, mark, mlen) != 0) continue;
        if (after_other && i >= mlen && memcmp(s + i - mlen, mark, mlen) == 0) continue;
        emit(w, out, in.off + start, i - start);
        start = i;
    }
    emit(w, out, in.off + start, in.len - start);
}

/* Metaspace and ByteLevel's add_prefix_space rewrite the section's text
 * (they come first, so there is one piece). */
static void rewrite_text(HfWork *w, const PreStep *st, int at_start, Pieces *p) {
    char *out;
    size_t k = 0;
    if (st->kind == PRE_BYTELEVEL) {
        if (p->len > 0 && p->text[0] == ' ') return;
        out = hf_work_buf(w, 2, p->len + 1);
        out[k++] = ' ';
        memcpy(out + k, p->text, p->len);
        k += p->len;
    } else {
        out = hf_work_buf(w, 2, p->len * st->repl_len + st->repl_len);
        int starts = p->len >= st->repl_len && memcmp(p->text, st->repl, st->repl_len) == 0;
        if (!starts && (st->prepend == 2 || (st->prepend == 1 && at_start))) {
            memcpy(out, st->repl, st->repl_len);
            k = st->repl_len;
        }
        k += replace_all(out + k, p->text, p->len, " ", 1, st->repl, st->repl_len);
    }
    p->text = out;
    p->len = k;
    p->sp[0] = (Span){0, (uint32_t)k};
}

static int pre_tokenize(const HfTok *h, HfWork *w, int at_start, Pieces *p) {
    p->which = 0;
    p->sp = hf_work_spans(w, 0, 1);
    p->sp[0] = (Span){0, (uint32_t)p->len};
    p->n = 1;
    for (int i = 0; i < h->n_pre; i++) {
        const PreStep *st = &h->pre[i];
        if (st->kind == PRE_METASPACE || (st->kind == PRE_BYTELEVEL && st->prepend)) rewrite_text(w, st, at_start, p);
        if (st->kind == PRE_BYTELEVEL && !st->re) continue;
        Pieces out = {p->text, p->len, NULL, 0, !p->which};
        for (size_t k = 0; k < p->n; k++) {
            if (st->kind == PRE_DIGITS) split_digits(w, st->individual, p->sp[k], &out);
            else if (st->kind == PRE_METASPACE && st->split) split_before(w, st->repl, st->repl_len, 0, p->sp[k], &out);
            else if (st->kind == PRE_METASPACE) emit(w, &out, p->sp[k].off, p->sp[k].len);
            else if (split_regex(h, w, st, p->sp[k], &out) != 0) return -1;
        }
        *p = out;
    }
    return 0;
}

/* ------------------------------------------------------------- encoding */

/* JavaScript's String.trim whitespace, for added tokens' lstrip / rstrip. */
static int js_space_at(const char *s, size_t n, size_t i, int backwards, size_t *len) {
    static const uint32_t wide[] = {0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff};
    const unsigned char *p = (const unsigned char *)s;
    size_t at = i;
    if (backwards) /* step back to the start of the character before i */
        for (at = i - 1; at > 0 && (p[at] & 0xc0) == 0x80; at--) {}
    uint32_t cp;
    *len = (size_t)utf8_next(p + at, p + n, &cp);
    if (cp == ' ' || (cp >= '\t' && cp <= '\r') || (cp >= 0x2000 && cp <= 0x200a)) return 1;
    for (size_t k = 0; k < sizeof wide / sizeof *wide; k++)
        if (cp == wide[k]) return 1;
    return 0;
}

static void fuse_unknown(const HfTok *h, TokIds *out, size_t start) {
    size_t k = start;
    for (size_t i = start; i < out->n; i++)
        if (!(out->v[i] == h->unk_id && k > start && out->v[k - 1] == h->unk_id)) out->v[k++] = out->v[i];
    out->n = k;
}

static int encode_section(const HfTok *h, HfWork *w, const char *s, size_t n, int at_start, TokIds *out) {
    if (n == 0) return 0; /* before the normalizer: Prepend would make something of nothing */
    int cur = -1;
    for (int i = 0; i < h->n_norm; i++)
        if (normalize_step(h, w, &h->norm[i], &cur, &s, &n) != 0) return -1;
    if (n == 0) return 0;
    Pieces p = {s, n, NULL, 0, 0};
    if (pre_tokenize(h, w, at_start, &p) != 0) return -1;
    size_t start = out->n;
    for (size_t k = 0; k < p.n; k++) {
        const char *word = p.text + p.sp[k].off;
        if (h->split_metaspace && h->n_pre == 0) {
            Pieces cut = {p.text, p.len, NULL, 0, 1};
            split_before(w, "\xe2\x96\x81", 3, 1, p.sp[k], &cut);
            for (size_t c = 0; c < cut.n; c++)
                if (hf_encode_word(h, w, p.text + cut.sp[c].off, cut.sp[c].len, out) != 0) return -1;
        } else if (hf_encode_word(h, w, word, p.sp[k].len, out) != 0) {
            return -1;
        }
    }
    if (h->fuse_unk && h->unk_id >= 0) fuse_unknown(h, out, start);
    return 0;
}

/* The longest added token at s[i], or -1. */
static int added_at(const HfTok *h, const char *s, size_t n, size_t i) {
    int node = 0, best = -1;
    for (size_t j = i; j < n; j++) {
        int c = h->trie[node].child;
        while (c >= 0 && h->trie[c].byte != (unsigned char)s[j]) c = h->trie[c].sibling;
        if (c < 0) break;
        node = c;
        if (h->trie[node].added >= 0) best = h->trie[node].added;
    }
    return best;
}

int hf_encode(const HfTok *h, const char *text, size_t n, int add_special, TokIds *out) {
    size_t bad = utf8_invalid_at(text, n);
    if (bad < n) return calm_error("%s: the text is not valid UTF-8 at byte %zu", h->path, bad);
    HfWork *w = hf_work(h);
    if (add_special)
        for (int i = 0; i < h->n_prefix; i++) tok_ids_push(out, h->prefix[i]);
    size_t start = 0, i = 0;
    while (i < n) {
        int a = h->added_first[(unsigned char)text[i]] ? added_at(h, text, n, i) : -1;
        if (a < 0) {
            i++;
            continue;
        }
        const Added *t = &h->added[a];
        size_t end = i, len;
        while (t->lstrip && end > start && js_space_at(text, n, end, 1, &len)) end -= len;
        if (encode_section(h, w, text + start, end - start, start == 0, out) != 0) return -1;
        tok_ids_push(out, t->id);
        i += t->len;
        while (t->rstrip && i < n && js_space_at(text, n, i, 0, &len)) i += len;
        start = i;
    }
    if (encode_section(h, w, text + start, n - start, start == 0, out) != 0) return -1;
    if (add_special)
        for (int k = 0; k < h->n_suffix; k++) tok_ids_push(out, h->suffix[k]);
    return 0;
}

/* ------------------------------------------------------------- decoding */

/* Token strings, as the decoder steps pass them on. */
typedef struct {
    char *buf;
    size_t len, cap;
    Span *t;
    size_t n, tcap;
} Strs;

static void strs_add(Strs *s, const char *p, size_t n, int join) {
    if (s->len + n > s->cap) {
        s->cap = 2 * (s->len + n) + 256;
        s->buf = xrealloc(s->buf, s->cap);
    }
    memcpy(s->buf + s->len, p, n);
    if (join && s->n > 0) {
        s->t[s->n - 1].len += (uint32_t)n;
    } else {
        if (s->n == s->tcap) s->t = xrealloc(s->t, (s->tcap = 2 * s->tcap + 16) * sizeof *s->t);
        s->t[s->n++] = (Span){(uint32_t)s->len, (uint32_t)n};
    }
    s->len += n;
}

static int hex_byte(const char *p, size_t n) {
    if (n != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        int c = p[i], d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = 16 * v + d;
    }
    return v;
}

/* One decoder step over every token string. */
static void decode_step(const DecStep *st, const Strs *in, Strs *out) {
    int prev_byte = 0;
    for (size_t i = 0; i < in->n; i++) {
        const char *p = in->buf + in->t[i].off;
        size_t n = in->t[i].len;
        if (st->kind == DEC_REPLACE || st->kind == DEC_METASPACE) {
            const char *to = st->kind == DEC_REPLACE ? st->b : " ";
            size_t tolen = st->kind == DEC_REPLACE ? st->blen : 1;
            char *tmp = xmalloc(n / st->alen * tolen + n + 1);
            size_t k = replace_all(tmp, p, n, st->a, st->alen, to, tolen);
            size_t cut = st->kind == DEC_METASPACE && st->start && i == 0 && k > 0 && tmp[0] == ' ';
            strs_add(out, tmp + cut, k - cut, 0);
            free(tmp);
        } else if (st->kind == DEC_BYTEFALLBACK) {
            int b = hex_byte(p, n);
            char c = (char)b;
            if (b >= 0) strs_add(out, &c, 1, prev_byte);
            else strs_add(out, p, n, 0);
            prev_byte = b >= 0;
        } else if (st->kind == DEC_FUSE) {
            strs_add(out, p, n, i > 0);
        } else if (st->kind == DEC_STRIP) {
            for (int k = 0; k < st->start && n >= st->alen && memcmp(p, st->a, st->alen) == 0; k++) p += st->alen, n -= st->alen;
            for (int k = 0; k < st->stop && n >= st->alen && memcmp(p + n - st->alen, st->a, st->alen) == 0; k++) n -= st->alen;
            strs_add(out, p, n, 0);
        } else { /* DEC_BYTELEVEL: byte-level vocabularies already hold raw bytes */
            strs_add(out, p, n, 0);
        }
    }
}

int hf_decode(const HfTok *h, const int *ids, size_t n, int skip_special, char **text, size_t *len) {
    Strs cur = {0};
    for (size_t i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || id >= h->vocab_size || h->vocab.len[id] == HF_NO_TOKEN) {
            free(cur.buf);
            free(cur.t);
            return calm_error("%s: token id %d is not in the vocabulary (%d ids)", h->path, id, h->vocab_size);
        }
        if (skip_special && h->special[id]) continue;
        strs_add(&cur, h->vocab.bytes + h->vocab.off[id], h->vocab.len[id], 0);
    }
    for (int k = 0; k < h->n_dec; k++) {
        Strs next = {0};
        decode_step(&h->dec[k], &cur, &next);
        free(cur.buf);
        free(cur.t);
        cur = next;
    }
    /* no decoder: the reference joins the tokens with spaces */
    char *s = xmalloc(cur.len + cur.n + 1);
    size_t k = 0;
    for (size_t i = 0; i < cur.n; i++) {
        if (h->n_dec == 0 && i > 0) s[k++] = ' ';
        memcpy(s + k, cur.buf + cur.t[i].off, cur.t[i].len);
        k += cur.t[i].len;
    }
    s[k] = 0;
    free(cur.buf);
    free(cur.t);
    *text = s;
    *len = k;
    return 0;
}
