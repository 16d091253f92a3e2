/* bench.c: `calm bench` — figures, not a timed test. Measures sgemm at the
 * BLIS kernels chosen, then forward+backward+AdamW throughput of a model in
 * full training and in frozen (input-gradient-only) mode, and model FLOP/s as
 * a fraction of the measured sgemm rate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/blas.h"
#include "cli/options.h"
#include "src/compose.h"
#include "src/common.h"
#include "src/model.h"
#include "src/optim.h"
#include "src/rng.h"
#include "src/tokenizer.h"

static double bench_sgemm(int M, int N, int K, int reps) {
    float *a = xalloc_floats((size_t)M * K), *b = xalloc_floats((size_t)N * K), *c = xalloc_floats((size_t)M * N);
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)(i % 13) * 1e-2f;
    for (size_t i = 0; i < (size_t)N * K; i++) b[i] = (float)(i % 7) * 1e-2f;
    sgemm(0, 1, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N); /* warm-up: packing buffers, threads */
    double t = calm_now();
    for (int r = 0; r < reps; r++) sgemm(0, 1, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
    t = calm_now() - t;
    free(a);
    free(b);
    free(c);
    return 2.0 * M * N * K * reps / t / 1e9;
}

typedef struct {
    double tokens_per_s, gflops, step_ms;
} StepRate;

/* Random bytes as inputs and targets (every token weighted 1). */
static void random_batch(int *tok, int *tgt, size_t N) {
    Rng r;
    rng_seed(&r, 7, 0);
    for (size_t i = 0; i < N; i++) tok[i] = (int)(rng_u64(&r) % 256), tgt[i] = (int)(rng_u64(&r) % 256);
}

static StepRate bench_steps(Model *m, int B, int T, GradMode mode, int warmup, int steps) {
    size_t N = (size_t)B * T;
    int *tok = xmalloc(N * sizeof(int)), *tgt = xmalloc(N * sizeof(int));
    random_batch(tok, tgt, N);
    OptimConfig o;
    optim_config_default(&o);
    float *am = NULL, *av = NULL;
    if (mode == GRAD_FULL) {
        model_alloc_grads(m);
        am = xalloc_floats(m->num_params);
        av = xalloc_floats(m->num_params);
    }
    double t0 = 0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) t0 = calm_now();
        model_zero_grads(m);
        model_forward(m, tok, tgt, NULL, B, T, NULL, NULL);
        model_backward(m, tgt, NULL, mode, 0, NULL, NULL);
        if (mode == GRAD_FULL)
            adamw_update(m->params_memory, m->grads_memory, am, av, m->num_params, s + 1, 1e-6f, &o, 0.0f);
    }
    double dt = (calm_now() - t0) / steps;
    StepRate rate = {N / dt, model_flops_per_step(&m->cfg, B, T, mode) / dt / 1e9, dt * 1e3};
    free(tok);
    free(tgt);
    free(am);
    free(av);
    return rate;
}

/* The composition benchmark of docs/performance.md: anchor = the model above,
 * augment = d256 L8 h4 ff704, connections 3:3,7:7. */
static void bench_compose(Model *mb, int B, int T, int warmup, int steps, double peak, double full_step_ms) {
    ModelConfig ca;
    model_config_sized(&ca, 256, 8, 4, 4, 704, mb->cfg.vocab_size, mb->cfg.max_seq_len);
    Model ma;
    if (model_init(&ma, &ca) != 0) cli_fail("bench");
    model_init_random(&ma, 2);
    ComposeConfig cc = {0};
    if (compose_parse_connections("3:3,7:7", &cc) != 0) cli_fail("bench");
    Composer c;
    if (compose_init(&c, &ma, mb, &cc) != 0) cli_fail("bench");
    compose_init_random(&c, 3);
    size_t N = (size_t)B * T;
    int *tok = xmalloc(N * sizeof(int)), *tgt = xmalloc(N * sizeof(int));
    random_batch(tok, tgt, N);
    OptimConfig o;
    optim_config_default(&o);
    float *am = xalloc_floats(c.num_params), *av = xalloc_floats(c.num_params);
    /* phase times (ms per step): forward (mA trunk + mB with the connections), backward, optimizer */
    double t0 = 0, t_fwd = 0, t_bwd = 0, t_opt = 0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) t0 = calm_now(), t_fwd = t_bwd = t_opt = 0;
        double t = calm_now();
        compose_zero_grads(&c);
        compose_forward(&c, tok, tgt, NULL, B, T);
        double t1 = calm_now();
        compose_backward(&c, tgt, NULL);
        double t2 = calm_now();
        adamw_update(c.params, c.grads, am, av, c.num_params, s + 1, 1e-6f, &o, 0.0f);
        t_fwd += t1 - t, t_bwd += t2 - t1, t_opt += calm_now() - t2;
    }
    double dt = (calm_now() - t0) / steps, gf = compose_flops_per_step(&c, B, T) / dt / 1e9;
    printf("calm mode=compose tokens_per_s=%.1f step_ms=%.1f model_gflops=%.1f of_sgemm_peak=%.2f "
           "compose_over_finetune=%.2f trainable=%zu\n",
           N / dt, dt * 1e3, gf, gf / peak, dt * 1e3 / full_step_ms, c.num_params);
    /* mA's share of the forward: its trunk alone, timed apart */
    double ta = calm_now();
    for (int s = 0; s < steps; s++) model_forward_trunk(&ma, tok, B, T, c.a_max + 1, NULL, NULL);
    ta = (calm_now() - ta) / steps;
    printf("calm compose_phases_ms augment_forward=%.1f anchor_forward_with_connections=%.1f "
           "anchor_backward_with_connections=%.1f optimizer=%.1f\n",
           ta * 1e3, (t_fwd / steps - ta) * 1e3, t_bwd / steps * 1e3, t_opt / steps * 1e3);
    free(am);
    free(av);
    free(tok);
    free(tgt);
    compose_free(&c);
    model_free(&ma);
}

int cmd_bench(int argc, char **argv) {
    int dim = 512, layers = 8, heads = 8, kv_heads = 0, ffn = 1408, vocab = TOK_VOCAB_DEFAULT, B = 8, T = 256;
    int steps = 5, warmup = 2, threads = 0, compose = 0;
    const Opt opts[] = {{"dim", OPT_INT, &dim, "hidden size", 2, 65536},
                        {"layers", OPT_INT, &layers, "layers", 1, 4096},
                        {"heads", OPT_INT, &heads, "attention heads", 1, 4096},
                        {"kv-heads", OPT_INT, &kv_heads, "key/value heads (0: = heads)", 0, 4096},
                        {"ffn", OPT_INT, &ffn, "MLP width", 1, 1 << 20},
                        {"vocab", OPT_INT, &vocab, "vocabulary", TOK_N_SPECIAL, 1 << 20},
                        {"batch", OPT_INT, &B, "batch rows", 1, 1 << 16},
                        {"seq-len", OPT_INT, &T, "sequence length", 1, 1 << 16},
                        {"steps", OPT_INT, &steps, "timed steps", 1, 1 << 20},
                        {"warmup", OPT_INT, &warmup, "untimed steps first", 0, 1 << 20},
                        {"threads", OPT_INT, &threads, "threads (0: cores available)", 0, 4096},
                        {"compose", OPT_FLAG, &compose, "also a composition step (augment d256 L8 h4 ff704, "
                                                        "connections 3:3,7:7) against full fine-tuning", 0, 0},
                        OPT_END};
    const Command cmd = {"calm bench", "[options]",
                         "Print sgemm GFLOP/s at the chosen BLIS kernels and training-step throughput "
                         "(tokens/s, model GFLOP/s, fraction of the sgemm rate) in full and frozen mode. "
                         "Defaults are the benchmark config of docs/performance.md.",
                         opts, 0, 0};
    char **pos;
    int npos;
    cli_parse(&cmd, argc, argv, &pos, &npos);
    if (dim % heads) {
        fprintf(stderr, "calm bench: --dim %d is not divisible by --heads %d\n", dim, heads);
        return 2;
    }
    calm_blas_init(threads);
    int N = B * T;
    double g1 = bench_sgemm(N, ffn, dim, 10), g2 = bench_sgemm(N, dim, ffn, 10), g3 = bench_sgemm(2048, 2048, 2048, 3);
    double peak = g1 > g2 ? g1 : g2;
    peak = g3 > peak ? g3 : peak;
    printf("blis arch=%s threads=%d\n", calm_blas_arch(), calm_threads());
    printf("sgemm %dx%dx%d gflops=%.1f\n", N, ffn, dim, g1);
    printf("sgemm %dx%dx%d gflops=%.1f\n", N, dim, ffn, g2);
    printf("sgemm 2048x2048x2048 gflops=%.1f\n", g3);

    ModelConfig c;
    model_config_sized(&c, dim, layers, heads, kv_heads, ffn, vocab, T > 1024 ? T : 1024);
    Model m;
    if (model_init(&m, &c) != 0) cli_fail("bench");
    model_init_random(&m, 1);
    printf("model params=%zu batch=%dx%d flops_per_token_full=%.3g\n", m.num_params, B, T,
           model_flops_per_step(&c, B, T, GRAD_FULL) / N);
    const char *names[2] = {"full", "frozen"};
    double full_ms = 0;
    for (int mode = 0; mode < 2; mode++) {
        StepRate r = bench_steps(&m, B, T, (GradMode)mode, warmup, steps);
        printf("calm mode=%s tokens_per_s=%.1f step_ms=%.1f model_gflops=%.1f of_sgemm_peak=%.2f\n", names[mode],
               r.tokens_per_s, r.step_ms, r.gflops, r.gflops / peak);
        if (mode == GRAD_FULL) full_ms = r.step_ms;
    }
    if (compose) bench_compose(&m, B, T, warmup, steps, peak, full_ms);
    model_free(&m);
    return 0;
}
