/* test_torch_real.c: a checkpoint shaped like a real Llama 3 release, written by
 * tests/torch_ref/make_real_fixture.py (BF16 in 3 shards with an index,
 * rope_scaling llama3, attention_bias, head_dim 16 != 48/4, tied embeddings,
 * eos_token_id a list, bos/pad null), loaded frozen: the logits must match
 * torch's (F32 math on the BF16 weights) to |calm - ref| <= 3e-5 max|ref| +
 * 1e-4 |ref| (torch's own F32-vs-F64 difference is ~2e-6 max|ref|). Pipeline
 * stages load only their shards and tensors, and compute what the whole model
 * does over their blocks. $CALM_REAL_FIXTURE_DIR holds the fixture (ctest). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/common.h"
#include "src/files.h"
#include "src/modeldir.h"
#include "src/safetensors.h"
#include "testutil.h"

static char *model_dir(void) {
    const char *root = getenv("CALM_REAL_FIXTURE_DIR");
    if (!root)
        fail_msg("CALM_REAL_FIXTURE_DIR is not set. HINT: run through ctest (ctest -R torch_real), which "
                 "generates the fixture first");
    return calm_path_join(root, "model");
}

/* tokens [T] and logits [T, V] of ref.safetensors. */
static int read_ref(int **tokens, float **logits, int V) {
    char *path = calm_path_join(getenv("CALM_REAL_FIXTURE_DIR"), "ref.safetensors");
    StFile f;
    if (st_open(&f, path) != 0) fail_msg("%s", calm_last_error());
    const StTensor *t = st_find(&f, "tokens");
    assert_non_null(t);
    int T = (int)t->shape[0];
    int64_t st[1] = {T}, sl[2] = {T, V};
    float *tf = xmalloc((size_t)T * sizeof(float));
    *logits = xmalloc((size_t)T * V * sizeof(float));
    assert_int_equal(st_read_f32(&f, "tokens", st, 1, tf), 0);
    assert_int_equal(st_read_f32(&f, "logits", sl, 2, *logits), 0);
    *tokens = xmalloc((size_t)T * sizeof(int));
    for (int i = 0; i < T; i++) (*tokens)[i] = (int)tf[i];
    free(tf);
    st_close(&f);
    free(path);
    return T;
}

static void test_logits(void **state) {
    (void)state;
    char *dir = model_dir();
    Model m;
    if (model_load_dir_frozen(&m, dir) != 0) fail_msg("%s", calm_last_error());
    assert_true(m.cfg.rope_llama3 && m.cfg.attention_bias && m.cfg.tie_embeddings && m.cfg.head_dim == 16);
    assert_int_equal(m.cfg.n_eos, 2);
    assert_int_equal(m.cfg.eos_id, 257);
    assert_true(m.weights.embed.dtype == WM_BF16 && m.weights.lm_head.data == m.weights.embed.data);
    int *tok;
    float *ref;
    const int V = m.cfg.vocab_size, T = read_ref(&tok, &ref, V);
    model_forward(&m, tok, NULL, NULL, 1, T, NULL, NULL);
    double r = tu_report_close("real", "logits", m.acts.logits, ref, (size_t)T * V, 3e-5, 1e-4);
    assert_true(r <= 1.0);
    free(tok);
    free(ref);
    model_free(&m);
    free(dir);
}

/* Each stage of a 3-stage pipeline: the tensors it holds, the shards that
 * hold them (embedding + block 0 | block 1 | block 2 + norm, the tied head
 * also needing the embedding's shard), and its output equal to the whole
 * model's residual stream at its last block. */
static void test_stages(void **state) {
    (void)state;
    char *dir = model_dir();
    Model whole;
    if (model_load_dir_frozen(&whole, dir) != 0) fail_msg("%s", calm_last_error());
    int *tok;
    float *ref;
    const int T = read_ref(&tok, &ref, whole.cfg.vocab_size), C = whole.cfg.dim;
    model_forward(&whole, tok, NULL, NULL, 1, T, NULL, NULL);
    const struct {
        int l0, l1, head, tensors, files;
    } stage[] = {{0, 1, 0, 1 + 13, 1}, {1, 2, 0, 13, 1}, {2, 3, 1, 13 + 2, 2}};
    for (int s = 0; s < 3; s++) {
        Model p;
        ModelLoadOpts o = {.l0 = stage[s].l0, .l1 = stage[s].l1, .head = stage[s].head, .frozen = 1};
        if (model_load_dir_opts(&p, dir, &o) != 0) fail_msg("%s", calm_last_error());
        assert_int_equal(o.tensors_read, stage[s].tensors);
        assert_int_equal(o.files_opened, stage[s].files);
        float *in = model_part_input(&p, 1, T);
        memcpy(in, whole.acts.resid + (size_t)stage[s].l0 * T * C, (size_t)T * C * sizeof(float));
        model_forward_part(&p, tok, NULL, NULL, 1, T, NULL, NULL);
        assert_memory_equal(model_part_output(&p), whole.acts.resid + (size_t)stage[s].l1 * T * C,
                            (size_t)T * C * sizeof(float));
        if (stage[s].head) assert_memory_equal(p.acts.logits, whole.acts.logits, (size_t)T * whole.cfg.vocab_size * 4);
        model_free(&p);
    }
    free(tok);
    free(ref);
    model_free(&whole);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_logits), cmocka_unit_test(test_stages)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
