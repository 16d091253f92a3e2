/* test_generate.c: KV-cache decoding equals full recomputation, and the
 * sampler's greedy / top-k / temperature behaviour. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "src/blas.h"
#include "src/model.h"
#include "src/rng.h"
#include "src/sample.h"
#include "testutil.h"
#include "src/tokenizer.h"

static void make_model(Model *m, int n_kv) {
    ModelConfig c;
    model_config_sized(&c, 32, 3, 4, n_kv, 48, TOK_VOCAB_DEFAULT, 64);
    assert_int_equal(model_init(m, &c), 0);
    model_init_random(m, 5);
    /* unit-scale weights so logits are far from uniform and argmax is stable */
    for (size_t i = 0; i < m->num_params; i++) m->params_memory[i] *= 25.0f;
    for (int k = 0; k < m->n_param_tensors; k++)
        if (m->param_info[k].ndim == 1)
            for (size_t i = 0; i < m->param_info[k].numel; i++) m->params_memory[m->param_info[k].offset + i] = 1.0f;
}

/* Logits of every position from the cache equal those of one full forward.
 * Both run the same layer code with the same summation order per row except
 * inside BLIS (one row vs many), so agreement is to fp32 rounding: 1e-4
 * relative to the largest logit. */
static void check_cache_equals_forward(int n_kv) {
    Model m;
    make_model(&m, n_kv);
    const int T = 20;
    int tok[20];
    for (int t = 0; t < T; t++) tok[t] = t == 0 ? TOK_BOS : (int)((t * 37) % 256);
    model_forward(&m, tok, NULL, NULL, 1, T, NULL, NULL);
    const int V = m.cfg.vocab_size;
    float *full = xmalloc((size_t)T * V * sizeof(float));
    memcpy(full, m.acts.logits, (size_t)T * V * sizeof(float));
    KVCache kc;
    kvcache_init(&kc, &m.cfg, 1, T);
    for (int t = 0; t < T; t++) {
        const float *lg = model_decode_step(&m, &kc, NULL, &tok[t], 1);
        float mx = 0;
        for (int v = 0; v < V; v++) mx = fmaxf(mx, fabsf(full[(size_t)t * V + v]));
        double r = tu_close_ratio(lg, full + (size_t)t * V, (size_t)V, 1e-4 * mx, 0.0);
        if (r > 1.0) fail_msg("position %d: cached logits differ from the full forward (ratio %.3g)", t, r);
    }
    kvcache_free(&kc);
    free(full);
    model_free(&m);
}

static void test_cache_mha(void **state) { check_cache_equals_forward(4); }
static void test_cache_gqa(void **state) { check_cache_equals_forward(2); }

/* Greedy generation picks, at every step, the argmax of a full forward over
 * the sequence so far, and stops at EOS or max_new. */
static void test_greedy_equals_recompute(void **state) {
    Model m;
    make_model(&m, 2);
    int prompt[3] = {TOK_BOS, 'a', 'b'}, out[16];
    int n = generate(&m, prompt, 3, 16, 0.0f, 0, 1, out);
    assert_true(n >= 1 && n <= 16);
    int seq[32];
    memcpy(seq, prompt, sizeof prompt);
    for (int i = 0; i < n; i++) {
        int T = 3 + i;
        memcpy(seq + 3, out, (size_t)i * sizeof(int));
        model_forward(&m, seq, NULL, NULL, 1, T, NULL, NULL);
        const float *lg = m.acts.logits + (size_t)(T - 1) * m.cfg.vocab_size;
        int best = 0;
        for (int v = 1; v < TOK_N_SPECIAL; v++)
            if (lg[v] > lg[best]) best = v;
        assert_int_equal(out[i], best);
    }
    if (n < 16) assert_int_equal(out[n - 1], TOK_EOS);
    model_free(&m);
}

/* Several prompts decoded in lockstep (generate_batch) give each the ids it
 * gets alone, greedy and sampled (sequence i draws from its own stream i, so
 * the lone run is the same batch with only sequence i given a prompt), and a
 * stop id ends a sequence right after it is generated. */
static void test_batch_equals_single(void **state) {
    Model m;
    make_model(&m, 2);
    static const int prompts[4][6] = {
        {TOK_BOS, 'a', 'b'}, {TOK_BOS, 'x', 'y', 'z', 'w', 'v'}, {TOK_BOS}, {TOK_BOS, 'q', 'r', 's'}};
    static const int n_prompt[4] = {3, 6, 1, 4}, max_new[4] = {12, 5, 40, 20};
    for (int sampled = 0; sampled < 2; sampled++) {
        const GenOpts o = {sampled ? 1.0f : 0.0f, sampled ? 20 : 0, 7, -1, TOK_N_SPECIAL, TOK_EOS};
        int alone[4][64], n_alone[4], together[4][64];
        GenSeq seqs[4];
        for (int p = 0; p < 4; p++) {
            for (int q = 0; q < 4; q++) seqs[q] = (GenSeq){prompts[q], q == p ? n_prompt[q] : 0, max_new[q], alone[q], 0};
            generate_batch(&m, seqs, 4, &o);
            n_alone[p] = seqs[p].n_out;
        }
        for (int p = 0; p < 4; p++) seqs[p] = (GenSeq){prompts[p], n_prompt[p], max_new[p], together[p], 0};
        generate_batch(&m, seqs, 4, &o);
        for (int p = 0; p < 4; p++) {
            assert_int_equal(seqs[p].n_out, n_alone[p]);
            assert_true(n_alone[p] >= 1);
            for (int i = 0; i < n_alone[p]; i++) assert_int_equal(together[p][i], alone[p][i]);
        }
    }
    /* a stop id: the first greedy id of prompt 0, so that sequence ends at once */
    int out[16], first;
    generate(&m, prompts[0], 3, 1, 0.0f, 0, 1, &first);
    GenSeq s = {prompts[0], 3, 16, out, 0};
    const GenOpts stop = {0.0f, 0, 1, first, TOK_N_SPECIAL, TOK_EOS};
    generate_batch(&m, &s, 1, &stop);
    assert_int_equal(s.n_out, 1);
    assert_int_equal(out[0], first);
    model_free(&m);
}

static void test_sampler(void **state) {
    float lg[6] = {0.0f, 3.0f, 1.0f, 2.5f, -1.0f, 9.0f};
    Rng r;
    rng_seed(&r, 3, 0);
    /* greedy ignores ids at or past n_valid */
    assert_int_equal(sample_token(lg, 5, 0.0f, 0, &r), 1);
    assert_int_equal(sample_token(lg, 6, 0.0f, 0, &r), 5);
    /* top-k 2 only ever returns the two best valid ids */
    int seen[6] = {0};
    for (int i = 0; i < 2000; i++) seen[sample_token(lg, 5, 1.0f, 2, &r)]++;
    assert_int_equal(seen[0] + seen[2] + seen[4] + seen[5], 0);
    /* with temperature 1 the ratio follows exp(3 - 2.5) ~ 1.65 */
    double ratio = (double)seen[1] / seen[3];
    if (fabs(ratio - exp(0.5)) > 0.2) fail_msg("top-2 sampling ratio %.3f, expected %.3f", ratio, exp(0.5));
    /* a tiny temperature is greedy in practice */
    for (int i = 0; i < 100; i++) assert_int_equal(sample_token(lg, 5, 1e-3f, 0, &r), 1);
}

int main(void) {
    calm_quiet = 1;
    calm_blas_init(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_mha),
        cmocka_unit_test(test_cache_gqa),
        cmocka_unit_test(test_greedy_equals_recompute),
        cmocka_unit_test(test_batch_equals_single),
        cmocka_unit_test(test_sampler),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
