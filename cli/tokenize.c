/* tokenize.c: `calm tokenize`: text -> token ids -> text with a model
 * directory's tokenizer (tokenizer.json, else calm's byte tokenizer), for
 * checking a tokenizer against other implementations and timing it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "src/common.h"
#include "src/files.h"
#include "src/tokenizer.h"

/* All of a stream, NUL-terminated. */
static int read_stream(FILE *f, const char *name, char **data, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n + 1 == cap) buf = xrealloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        free(buf);
        return calm_error("%s: read failed: %s", name, strerror(errno));
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}

static void print_ids(const TokIds *ids) {
    char num[16];
    for (size_t i = 0; i < ids->n; i++) {
        int k = snprintf(num, sizeof num, i ? " %d" : "%d", ids->v[i]);
        fwrite(num, 1, (size_t)k, stdout);
    }
    fputc('\n', stdout);
}

static int encode_one(const Tokenizer *t, const char *text, size_t len, int special) {
    TokIds ids = {0};
    int rc = tokenizer_encode(t, text, len, special, &ids);
    if (rc == 0) print_ids(&ids);
    tok_ids_free(&ids);
    return rc;
}

/* A line of whitespace-separated ids. */
static int parse_ids(const char *s, TokIds *ids) {
    for (;;) {
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
        if (!*s) return 0;
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > 0x7fffffff || (*end && !strchr(" \t\r\n", *end)))
            return calm_error("stdin: \"%.20s\" is not a token id", s);
        if (ids->n == ids->cap) {
            ids->cap = 2 * ids->cap + 256;
            ids->v = xrealloc(ids->v, ids->cap * sizeof *ids->v);
        }
        ids->v[ids->n++] = (int)v;
        s = end;
    }
}

static int decode_stdin(const Tokenizer *t, int keep_special) {
    char *line, *text = NULL;
    size_t len, tlen;
    TokIds ids = {0};
    int rc = read_stream(stdin, "stdin", &line, &len);
    if (rc == 0) rc = parse_ids(line, &ids);
    if (rc == 0) rc = tokenizer_decode(t, ids.v, ids.n, !keep_special, &text, &tlen);
    if (rc == 0) fwrite(text, 1, tlen, stdout);
    free(text);
    free(line);
    tok_ids_free(&ids);
    return rc;
}

/* Encode the text `repeat` times on this thread: MB/s and tokens/s. The
 * first pass counts too (it fills the word cache, as a real run does). */
static int bench(const Tokenizer *t, const char *model, const char *text, size_t len, int repeat, int special) {
    TokIds ids = {0};
    size_t tokens = 0;
    double t0 = calm_now();
    for (int r = 0; r < repeat; r++) {
        ids.n = 0;
        if (tokenizer_encode(t, text, len, special, &ids) != 0) {
            tok_ids_free(&ids);
            return -1;
        }
        tokens += ids.n;
    }
    double s = calm_now() - t0;
    printf("calm %s: %.2f MB/s, %.0f tokens/s (%zu bytes x %d in %.2f s)\n", model, len * (double)repeat / s / 1e6,
           tokens / s, len, repeat, s);
    tok_ids_free(&ids);
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL;
    int decode = 0, no_special = 0, keep_special = 0, do_bench = 0, repeat = 10;
    const Opt opts[] = {
        {"model", OPT_STR, &model, "model directory: its tokenizer.json, else calm's byte tokenizer", 1, 0},
        {"decode", OPT_FLAG, &decode, "read a line of ids on stdin and print their text", 0, 0},
        {"no-special", OPT_FLAG, &no_special, "encode without the special tokens the model adds (BOS)", 0, 0},
        {"keep-special", OPT_FLAG, &keep_special, "decode special tokens too (default: dropped)", 0, 0},
        {"bench", OPT_FLAG, &do_bench, "encode stdin --repeat times on one thread; print MB/s and tokens/s", 0, 0},
        {"repeat", OPT_INT, &repeat, "passes over the text for --bench", 1, 1 << 20},
        OPT_END};
    const Command cmd = {
        "calm tokenize", "--model DIR [--decode | --bench] [options] [FILE...]",
        "Encode UTF-8 text with a model's tokenizer: stdin (or each FILE) becomes one line of space-separated "
        "token ids, with the special tokens the model's configuration adds (BOS for Llama-2 and calm's byte "
        "tokenizer) unless --no-special. With --decode, a line of ids on stdin becomes text; special tokens are "
        "dropped unless --keep-special. Decoding inverts encoding, decode(encode(x)) == x, except where the "
        "tokenizer itself loses something: an NFC normalizer (Qwen) and, for SentencePiece (Llama-2), U+2581 in "
        "the text and the space it puts after each added token. The tokenizer is "
        "DIR/tokenizer.json (byte-level BPE as in Llama-3, Qwen, GPT-2; SentencePiece BPE as in Llama-2, "
        "Mistral) with DIR/tokenizer_config.json and DIR/config.json for BOS and EOS; without "
        "tokenizer.json it is calm's byte tokenizer.",
        opts, 0, -1};
    char **pos;
    int npos;
    cli_parse(&cmd, argc, argv, &pos, &npos);
    if (!model) return cli_usage_error(&cmd, "--model is required");
    if (decode && (do_bench || npos > 0)) return cli_usage_error(&cmd, "--decode reads stdin and does not go with --bench or files");
    if (do_bench && npos > 0) return cli_usage_error(&cmd, "--bench reads stdin");
    Tokenizer *t = tokenizer_load(model);
    if (!t) return cli_error("tokenize");
    int rc = 0;
    char *text = NULL;
    size_t len;
    if (decode) {
        rc = decode_stdin(t, keep_special);
    } else if (npos == 0) {
        rc = read_stream(stdin, "stdin", &text, &len);
        if (rc == 0) rc = do_bench ? bench(t, model, text, len, repeat, !no_special) : encode_one(t, text, len, !no_special);
    }
    for (int i = 0; i < npos && rc == 0; i++, free(text), text = NULL) {
        rc = calm_read_file(pos[i], &text, &len);
        if (rc == 0) rc = encode_one(t, text, len, !no_special);
    }
    free(text);
    tokenizer_free(t);
    return rc == 0 ? 0 : cli_error("tokenize");
}
