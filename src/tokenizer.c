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
