/* chrf.c: chrF (see chrf.h). n-grams are compared exactly: each side's
 * n-grams are sorted and the two sorted lists merged, counting matches. */
#include "src/chrf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "src/common.h"
#include "src/utf8.h"

static int is_space(uint32_t c) {
    return c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
           c == 0x3000;
}

/* Decode UTF-8 into code points, dropping whitespace; a byte that does not
 * start a valid sequence is one character of its own (0x110000 + byte). */
static size_t decode(uint32_t *out, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    size_t k = 0;
    while (p < end) {
        uint32_t c;
        unsigned char first = *p;
        p += utf8_next(p, end, &c);
        if (c == UTF8_INVALID) out[k++] = 0x110000u + first;
        else if (!is_space(c)) out[k++] = c;
    }
    return k;
}

typedef struct {
    uint32_t c[CHRF_ORDER];
} Gram;

static int gram_cmp(const void *a, const void *b) { return memcmp(a, b, sizeof(Gram)); }

/* The n-grams of text[0..len) in sorted order, unused positions zero. */
static size_t grams(Gram *g, const uint32_t *text, size_t len, int n) {
    if (len < (size_t)n) return 0;
    size_t m = len - (size_t)n + 1;
    memset(g, 0, m * sizeof(Gram));
    for (size_t i = 0; i < m; i++) memcpy(g[i].c, text + i, (size_t)n * sizeof(uint32_t));
    qsort(g, m, sizeof(Gram), gram_cmp);
    return m;
}

void chrf_add(ChrfStats *s, const char *hyp, size_t hyp_len, const char *ref, size_t ref_len) {
    uint32_t *h = xmalloc((hyp_len + 1) * sizeof(uint32_t)), *r = xmalloc((ref_len + 1) * sizeof(uint32_t));
    size_t nh = decode(h, hyp, hyp_len), nr = decode(r, ref, ref_len);
    Gram *gh = xmalloc((nh + 1) * sizeof(Gram)), *gr = xmalloc((nr + 1) * sizeof(Gram));
    for (int n = 1; n <= CHRF_ORDER; n++) {
        size_t a = grams(gh, h, nh, n), b = grams(gr, r, nr, n), i = 0, j = 0, match = 0;
        while (i < a && j < b) { /* merge: equal n-grams pair up one for one */
            int c = gram_cmp(&gh[i], &gr[j]);
            if (c == 0) match++, i++, j++;
            else if (c < 0) i++;
            else j++;
        }
        s->hyp[n - 1] += (double)a;
        s->ref[n - 1] += (double)b;
        s->match[n - 1] += (double)match;
    }
    free(gh);
    free(gr);
    free(h);
    free(r);
}

double chrf_score(const ChrfStats *s) {
    double p = 0.0, r = 0.0;
    int eff = 0;
    for (int n = 0; n < CHRF_ORDER; n++) {
        if (s->hyp[n] <= 0 || s->ref[n] <= 0) continue;
        p += s->match[n] / s->hyp[n];
        r += s->match[n] / s->ref[n];
        eff++;
    }
    if (eff == 0) return 0.0;
    p /= eff;
    r /= eff;
    if (p + r <= 0.0) return 0.0;
    const double b2 = CHRF_BETA * CHRF_BETA;
    return 100.0 * (1.0 + b2) * p * r / (b2 * p + r);
}
