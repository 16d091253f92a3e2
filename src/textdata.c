#include "src/files.h"
#include "src/rng.h"
#include "src/textdata.h"

#include <stdlib.h>
#include <string.h>

#include "src/common.h"
#include "src/tokenizer.h"

int textdata_add(TextData *d, const Tokenizer *t, const char *text, size_t n) {
    TokIds ids = {d->tokens, d->n, d->cap};
    int rc = tokenizer_encode_doc(t, text, n, &ids);
    d->tokens = ids.v;
    d->n = ids.n;
    d->cap = ids.cap;
    return rc;
}

int textdata_load(TextData *d, const Tokenizer *t, const char *const *paths, int n_paths) {
    memset(d, 0, sizeof *d);
    for (int i = 0; i < n_paths; i++) {
        char *buf;
        size_t len;
        if (calm_read_file(paths[i], &buf, &len) != 0) {
            textdata_free(d);
            return -1;
        }
        if (len == 0) {
            free(buf);
            textdata_free(d);
            return calm_error("%s: empty file", paths[i]);
        }
        int rc = textdata_add(d, t, buf, len);
        free(buf);
        if (rc != 0) {
            textdata_free(d);
            return calm_error("%s: %s", paths[i], calm_last_error());
        }
    }
    return 0;
}

void textdata_free(TextData *d) {
    free(d->tokens);
    memset(d, 0, sizeof *d);
}

void textdata_batch(const TextData *d, uint64_t seed, long step, int row0, int B, int T, int *tokens, int *targets,
                    float *weights) {
    size_t span = d->n - (size_t)T; /* valid starts: 0 .. n-T-1 */
    for (int b = 0; b < B; b++) {
        uint64_t h = calm_hash64(seed ^ calm_hash64((uint64_t)step * 0x100000001b3ULL + (uint64_t)(row0 + b)));
        size_t start = (size_t)(h % span);
        for (int t = 0; t < T; t++) {
            tokens[(size_t)b * T + t] = d->tokens[start + t];
            targets[(size_t)b * T + t] = d->tokens[start + t + 1];
            weights[(size_t)b * T + t] = 1.0f;
        }
    }
}

long textdata_eval_windows(const TextData *d, int T) { return d->n < 2 ? 0 : (long)((d->n - 1 + T - 1) / T); }

void textdata_eval_window(const TextData *d, long w, int T, int *tokens, int *targets, float *weights) {
    size_t base = (size_t)w * T;
    for (int t = 0; t < T; t++) {
        size_t i = base + t;
        int ok = i + 1 < d->n;
        tokens[t] = ok ? d->tokens[i] : TOK_PAD;
        targets[t] = ok ? d->tokens[i + 1] : TOK_PAD;
        weights[t] = ok ? 1.0f : 0.0f;
    }
}
