/* test_tokenizer.c: the Tokenizer handle on calm's byte tokenizer and on two
 * hand-made tokenizer.json files (byte-level BPE and SentencePiece BPE)
 * whose encodings can be worked out by hand, and the errors for files calm
 * cannot read. tests/tokenizer/check.sh compares the real Llama-2, Llama-3
 * and Qwen3 tokenizers with the JavaScript reference. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/files.h"
#include "src/sha256.h"
#include "src/tokenizer.h"
#include "testutil.h"

/* Byte-level BPE over "a b c" and the space (GPT-2's stand-in U+0120):
 * "a b" is merged first, so "abc" becomes ab+c -> abc, not a+bc. */
static const char BYTE_BPE[] =
    "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 7, \"content\": \"<|end|>\", \"special\": true}],"
    " \"normalizer\": null,"
    " \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true},"
    " \"post_processor\": {\"type\": \"ByteLevel\"},"
    " \"decoder\": {\"type\": \"ByteLevel\"},"
    " \"model\": {\"type\": \"BPE\", \"unk_token\": null,"
    "   \"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"\\u0120\": 3, \"ab\": 4, \"abc\": 5, \"\\u0120ab\": 6, \"bc\": 8},"
    "   \"merges\": [\"a b\", [\"ab\", \"c\"], \"\\u0120 ab\", \"b c\"]}}";

static char *tok_dir(void **state, const char *json) {
    char *dir = *state;
    tu_write_file(dir, "tokenizer.json", json);
    return dir;
}

static void assert_ids(const Tokenizer *t, const char *text, int special, const int *want, size_t n) {
    TokIds ids = {0};
    assert_int_equal(tokenizer_encode(t, text, strlen(text), special, &ids), 0);
    assert_int_equal(ids.n, n);
    for (size_t i = 0; i < n; i++) assert_int_equal(ids.v[i], want[i]);
    tok_ids_free(&ids);
}

static void assert_text(const Tokenizer *t, const int *ids, size_t n, int skip, const char *want) {
    char *text;
    size_t len;
    assert_int_equal(tokenizer_decode(t, ids, n, skip, &text, &len), 0);
    assert_int_equal(len, strlen(want));
    assert_string_equal(text, want);
    free(text);
}

static void test_bytes_handle(void **state) {
    Tokenizer *t = tokenizer_load(*state); /* no tokenizer.json: the byte tokenizer */
    assert_non_null(t);
    assert_string_equal(tokenizer_id(t), TOK_ID);
    assert_int_equal(tokenizer_vocab_size(t), TOK_N_SPECIAL);
    assert_int_equal(tokenizer_bos(t), TOK_BOS);
    assert_int_equal(tokenizer_eos(t), TOK_EOS);
    assert_true(tokenizer_is_special(t, TOK_PAD));
    assert_false(tokenizer_is_special(t, 'a'));
    assert_ids(t, "hi", 1, (const int[]){TOK_BOS, 'h', 'i'}, 3);
    assert_ids(t, "hi", 0, (const int[]){'h', 'i'}, 2);
    assert_text(t, (const int[]){TOK_BOS, 'h', 'i', TOK_EOS}, 4, 1, "hi");
    char *text;
    size_t len;
    assert_int_equal(tokenizer_decode(t, (const int[]){'h', TOK_N_SPECIAL}, 2, 1, &text, &len), -1);
    assert_error_contains("not in the vocabulary");
    tokenizer_free(t);
}

static void test_byte_level_bpe(void **state) {
    char *dir = tok_dir(state, BYTE_BPE);
    Tokenizer *t = tokenizer_load(dir);
    assert_non_null(t);
    assert_int_equal(tokenizer_vocab_size(t), 9);
    assert_ids(t, "abc ab", 1, (const int[]){5, 6}, 2); /* no template, no add_bos_token: nothing added */
    assert_ids(t, "cab", 0, (const int[]){2, 4}, 2);
    assert_ids(t, "ab<|end|>c", 0, (const int[]){4, 7, 2}, 3);
    assert_true(tokenizer_is_special(t, 7));
    assert_text(t, (const int[]){5, 6, 7, 8}, 4, 0, "abc ab<|end|>bc");
    assert_text(t, (const int[]){5, 6, 7, 8}, 4, 1, "abc abbc");
    /* the id names the exact file and the special tokens around a document (none here) */
    char *path = calm_path_join(dir, "tokenizer.json"), hex[65], want[TOK_ID_MAX];
    assert_int_equal(calm_sha256_file(path, hex), 0);
    snprintf(want, sizeof want, "sha256:%s bos=-1 eos=-1", hex);
    assert_string_equal(tokenizer_id(t), want);
    free(path);
    /* a byte the vocabulary lacks, in a model without unk_token */
    TokIds ids = {0};
    assert_int_equal(tokenizer_encode(t, "d", 1, 0, &ids), -1);
    assert_error_contains("has no token");
    assert_int_equal(tokenizer_encode(t, "\xff", 1, 0, &ids), -1);
    assert_error_contains("not valid UTF-8");
    tok_ids_free(&ids);
    tokenizer_free(t);
}

/* BOS from tokenizer_config.json (an AddedToken object), added because of
 * add_bos_token; EOS from config.json's list. */
static void test_special_config(void **state) {
    char *dir = tok_dir(state, BYTE_BPE);
    tu_write_file(dir, "tokenizer_config.json",
                  "{\"add_bos_token\": true, \"bos_token\": {\"__type\": \"AddedToken\", \"content\": \"<|end|>\"}}");
    tu_write_file(dir, "config.json", "{\"eos_token_id\": [7, 8]}");
    Tokenizer *t = tokenizer_load(dir);
    assert_non_null(t);
    assert_int_equal(tokenizer_bos(t), 7);
    assert_int_equal(tokenizer_eos(t), 7);
    assert_ids(t, "ab", 1, (const int[]){7, 4}, 2);
    assert_ids(t, "ab", 0, (const int[]){4}, 1);
    tokenizer_free(t);
    tu_write_file(dir, "tokenizer_config.json", "{\"bos_token\": \"<nope>\"}");
    assert_null(tokenizer_load(dir));
    assert_error_contains("bos_token \"<nope>\" is not a token");
}

/* SentencePiece-style BPE as Llama-2 writes it: "\u2581" before each
 * section and for each space, <0xNN> byte fallback, <s> from the template. */
static char *sentencepiece_json(void) {
    size_t cap = 32768, n = 0;
    char *s = xmalloc(cap);
    n += (size_t)snprintf(s + n, cap - n,
        "{\"added_tokens\": [{\"id\": 0, \"content\": \"<unk>\", \"special\": true},"
        " {\"id\": 1, \"content\": \"<s>\", \"special\": true}, {\"id\": 2, \"content\": \"</s>\", \"special\": true}],"
        " \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", \"prepend\": \"\\u2581\"},"
        "   {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\\u2581\"}]},"
        " \"pre_tokenizer\": null,"
        " \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}},"
        "   {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [1]}}},"
        " \"decoder\": {\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": {\"String\": \"\\u2581\"}, \"content\": \" \"},"
        "   {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}, {\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 0}]},"
        " \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"fuse_unk\": true, \"byte_fallback\": true, \"vocab\": {"
        "\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2");
    for (int b = 0; b < 256; b++) n += (size_t)snprintf(s + n, cap - n, ", \"<0x%02X>\": %d", b, 3 + b);
    snprintf(s + n, cap - n,
             ", \"\\u2581\": 259, \"h\": 260, \"i\": 261, \"\\u2581h\": 262, \"\\u2581hi\": 263, \"hi\": 264},"
             " \"merges\": [\"\\u2581 h\", \"\\u2581h i\", \"h i\"]}}");
    return s;
}

static void test_sentencepiece_bpe(void **state) {
    char *json = sentencepiece_json();
    Tokenizer *t = tokenizer_load(tok_dir(state, json));
    free(json);
    assert_non_null(t);
    assert_int_equal(tokenizer_bos(t), -1); /* no tokenizer_config.json or config.json */
    assert_ids(t, "hi hi", 1, (const int[]){1, 263, 263}, 3);
    assert_ids(t, " hi", 0, (const int[]){259, 263}, 2);
    /* é is not in the vocabulary: its two bytes */
    assert_ids(t, "h\xc3\xa9", 0, (const int[]){262, 3 + 0xc3, 3 + 0xa9}, 3);
    /* each section between added tokens gets its own "\u2581" */
    assert_ids(t, "hi</s>hi", 0, (const int[]){263, 2, 263}, 3);
    assert_text(t, (const int[]){1, 263, 263}, 3, 1, "hi hi");
    assert_text(t, (const int[]){259, 263}, 2, 1, " hi");
    assert_text(t, (const int[]){262, 3 + 0xc3, 3 + 0xa9}, 3, 1, "h\xc3\xa9");
    assert_text(t, (const int[]){1, 263}, 2, 0, "<s> hi");
    tokenizer_free(t);
}

/* Each file must fail to load with a message holding `phrase`. */
static void assert_refused(void **state, const char *json, const char *phrase) {
    assert_null(tokenizer_load(tok_dir(state, json)));
    assert_error_contains("tokenizer.json");
    assert_error_contains(phrase);
}

/* BYTE_BPE with one piece replaced. */
static char *variant(const char *from, const char *to) {
    const char *at = strstr(BYTE_BPE, from);
    assert_non_null(at);
    size_t head = (size_t)(at - BYTE_BPE);
    char *s = xmalloc(strlen(BYTE_BPE) + strlen(to) + 1);
    memcpy(s, BYTE_BPE, head);
    strcpy(s + head, to);
    strcat(s, at + strlen(from));
    return s;
}

static void test_bad_files(void **state) {
    char truncated[sizeof BYTE_BPE];
    memcpy(truncated, BYTE_BPE, sizeof BYTE_BPE / 2);
    truncated[sizeof BYTE_BPE / 2] = 0;
    assert_refused(state, truncated, "not valid JSON");
    static const char *cases[][3] = {
        {"\"type\": \"BPE\"", "\"type\": \"WordPiece\"", "model.type \"WordPiece\" is not supported"},
        {"\"normalizer\": null", "\"normalizer\": {\"type\": \"Lowercase\"}", "normalizer type \"Lowercase\""},
        {"\"b c\"]", "\"b z\"]", "merge 3 \"b z\""},
        {"{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}",
         "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(?<x\"}, \"behavior\": \"Isolated\"}", "regex"},
        {"{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}",
         "{\"type\": \"Whitespace\"}", "pre-tokenizer type \"Whitespace\""},
        {"\"decoder\": {\"type\": \"ByteLevel\"}", "\"decoder\": {\"type\": \"WordPiece\"}", "decoder type \"WordPiece\""},
        {"\"post_processor\": {\"type\": \"ByteLevel\"}", "\"post_processor\": {\"type\": \"BertProcessing\"}",
         "post_processor type \"BertProcessing\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *json = variant(cases[i][0], cases[i][1]);
        assert_refused(state, json, cases[i][2]);
        free(json);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bytes_handle, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_byte_level_bpe, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_special_config, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_sentencepiece_bpe, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_bad_files, tu_setup_tmpdir, tu_teardown_tmpdir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
