/* utf8.h: decoding one UTF-8 character, for code that counts characters
 * (chrF's n-grams, script detection). */
#ifndef CALM_UTF8_H
#define CALM_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define UTF8_INVALID 0xffffffffu

/* The character at p (p < end): returns the bytes it takes (1-4) and sets
 * *cp; a byte that does not start a complete, well-formed sequence takes 1
 * byte and gives UTF8_INVALID. Overlong forms and surrogates are not
 * rejected: calm only counts characters, it never re-encodes them. */
static inline int utf8_next(const unsigned char *p, const unsigned char *end, uint32_t *cp) {
    uint32_t c = p[0];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || end - p < len) {
        *cp = UTF8_INVALID;
        return 1;
    }
    if (len > 1) {
        c &= 0x7fu >> len;
        for (int j = 1; j < len; j++) {
            if ((p[j] & 0xc0) != 0x80) {
                *cp = UTF8_INVALID;
                return 1;
            }
            c = (c << 6) | (p[j] & 0x3f);
        }
    }
    *cp = c;
    return len;
}

#endif
