/* compose.h: CALM composition of a frozen augmenting model mA into a frozen
 * anchor mB (Bansal et al. 2024).
 *
 * For connection i = (a, b): P = proj(hA) with hA = mA's residual stream after
 * block a ([N, dA] -> [N, dB], with bias); then multi-head cross-attention
 * with queries from hB, mB's residual stream after block b, and keys/values
 * from P; its output o_proj(att) is added to hB before block b+1:
 *     hB <- hB + Wo attn(Wq hB, Wk P, Wv P)
 * Attention is causal (anchor position t reads mA positions <= t), so no
 * future token leaks through mA in teacher-forced training. Wo starts at zero:
 * at step 0 the composition computes exactly mB.
 *
 * Training touches only these parameters: mB is back-propagated for input
 * gradients only (GRAD_INPUT) and only down to its lowest connected block;
 * mA runs forward only, and only up to its highest connected block.
 */
#ifndef CALM_COMPOSE_H
#define CALM_COMPOSE_H

#include <stdint.h>

#include "src/model.h"
#include "src/sample.h"

#define COMPOSE_MAX_CONN 64

typedef struct {
    int a, b; /* mA block a feeds mB after block b (0-based) */
} Connection;

typedef struct {
    int n_conn;
    Connection conn[COMPOSE_MAX_CONN];
    int n_heads; /* cross-attention heads; 0 = mB's heads */
} ComposeConfig;

typedef struct {
    float *proj_w; /* [dB, dA] */
    float *proj_b; /* [dB] */
    float *wq, *wk, *wv, *wo; /* [dB, dB] */
} ConnParams;

typedef struct {
    float *hB;  /* [N, dB] mB stream after block b, before the addition */
    float *P;   /* [N, dB] projection of mA's stream */
    float *q, *k, *v, *att; /* [N, dB] */
    float *probs; /* [B, H, T, T] */
} ConnActs;

typedef struct {
    ComposeConfig cfg;
    Model *A, *B; /* borrowed, frozen */
    int dA, dB, H, HS;
    size_t num_params;
    float *params, *grads; /* [num_params] each (xmap_floats: untouched pages cost nothing) */
    ConnParams *p, *g;
    ParamInfo *info;
    int n_info;
    /* The tensors this process works on (NULL: all). A pipeline rank uses
     * only its share: initialising and zeroing leave the rest untouched, so
     * its memory follows its share rather than the whole composition. */
    const ParamInfo *own;
    int n_own;
    /* activations for (Bsz, T) */
    int Bsz, T, cap_B, cap_T;
    ConnActs *acts;
    float *scratch; /* backward: d_att, dq, dk, dv, dP, dprobs */
    float *mem;
    /* during a forward */
    int a_max, b_min;
} Composer;

/* The connections of a run; the one place that parses them and applies
 * the defaults: spec "3:5,7:11" (--connections), or NULL for the default
 * (compose_default_connections); heads: cross-attention heads (0: mB's). */
int compose_connections(ComposeConfig *cfg, const char *spec, int heads, const ModelConfig *A, const ModelConfig *B);
/* Every 4th mA block (a = 3, 7, 11, ...; at least the last one), paired in
 * order with as many mB blocks spaced uniformly and ending at NB-1. */
int compose_default_connections(const ModelConfig *A, const ModelConfig *B, ComposeConfig *cfg);
/* "3:5,7:11" -> connections; -1 with a message on a malformed list. */
int compose_parse_connections(const char *s, ComposeConfig *cfg);
/* n connections as "3:5,7:11" into buf (truncated to cap). */
void compose_format_connections(const Connection *conn, int n, char *buf, size_t cap);

/* Check the pair of models and the connections; allocate parameters (zero). */
int compose_init(Composer *c, Model *A, Model *B, const ComposeConfig *cfg);
/* The same from the two models' configurations alone (c->A, c->B stay NULL):
 * for ranks that hold only part of a model, and for saving. */
int compose_init_configs(Composer *c, const ModelConfig *ca, const ModelConfig *cb, const ComposeConfig *cfg);
/* proj, q, k, v: normal(0, 1/sqrt(fan_in)); o_proj: 0; proj bias: 0. Each
 * tensor from its own stream, so a process initialising only its own tensors
 * gets the values the whole composition would. */
void compose_init_random(Composer *c, uint64_t seed);
/* Connection i's projection from a fit (calm compose --init-proj lstsq):
 * weight [dB, dA] row-major and bias [dB], rounded to float. A process that
 * does not own the projection (a pipeline's anchor stage) leaves it alone. */
void compose_set_proj(Composer *c, int i, const double *w, const double *b);
void compose_free(Composer *c);

/* Forward of the composed model on tokens [Bsz, T]; returns the mean weighted
 * loss when targets are given (logits in c->B->acts.logits). */
float compose_forward(Composer *c, const int *tokens, const int *targets, const float *weights, int Bsz, int T);
/* Gradients of the last forward's loss w.r.t. the composition parameters
 * (accumulated into c->grads). */
void compose_backward(Composer *c, const int *targets, const float *weights);
void compose_zero_grads(Composer *c);

/* One connection i in pieces, shared by compose_forward/backward and the
 * pipeline stages (mpi/), so both compute the same arithmetic.
 * proj: P = hA Wp^T + bp ([N, dA] -> [N, dB]); its backward accumulates the
 * projection's gradients from dP. xattn: the anchor side; a->P must hold P;
 * adds Wo attn(Wq resid, Wk P, Wv P) to resid ([Bsz*T, dB]) and saves what
 * backward needs in a (bound with compose_conn_acts_bind). Its backward
 * accumulates q, k, v, o gradients, adds the query path to dresid (except
 * where the anchor backward ends: the first connection at its lowest
 * connected layer) and writes dL/dP to dP. scratch: compose_scratch_floats floats. */
size_t compose_conn_acts_floats(const Composer *c, int Bsz, int T); /* everything but P */
void compose_conn_acts_bind(const Composer *c, ConnActs *a, float *mem, int Bsz, int T);
size_t compose_scratch_floats(const Composer *c, int Bsz, int T);
void compose_proj_forward(const Composer *c, int i, float *P, const float *hA, int N);
void compose_proj_backward(Composer *c, int i, const float *dP, const float *hA, int N);
void compose_xattn_forward(const Composer *c, int i, ConnActs *a, float *resid, int Bsz, int T, float *scratch);
void compose_xattn_backward(Composer *c, int i, const ConnActs *a, float *dresid, float *dP, int Bsz, int T,
                            float *scratch);

/* Model FLOPs of one training step (compose_forward + compose_backward). */
double compose_flops_per_step(const Composer *c, int Bsz, int T);
/* The same from the two configurations (a composer built without models). */
double compose_flops(const Composer *c, const ModelConfig *ca, const ModelConfig *cb, int Bsz, int T);

/* Greedy / sampled generation with KV caches for both models and a growing
 * cross-attention cache per connection; equals full recomputation.
 * compose_generate_batch decodes many sequences in lockstep (sample.h). */
long compose_generate_batch(Composer *c, GenSeq *seqs, int n, const GenOpts *o);
int compose_generate(Composer *c, const int *prompt, int n_prompt, int max_new, float temperature, int top_k,
                     uint64_t seed, int *out);

/* Composition directory: calm_config.json + calm.safetensors. */
#define CALM_COMPOSE_CONFIG "calm_config.json"
#define CALM_COMPOSE_WEIGHTS "calm.safetensors"
int compose_save_dir(const Composer *c, const char *dir, const char *anchor_dir, const char *augment_dir);
/* Reads dir/calm_config.json, loads both models from the paths it names
 * (after checking their sha256), builds the composer and loads its weights.
 * A and B are owned by the caller afterwards (model_free). */
int compose_load_dir(Composer *c, const char *dir, Model *A, Model *B);
/* Check that dir's calm_config.json records these two model directories
 * weights (sha256), e.g. before resuming training into dir. */
int compose_verify_models(const char *dir, const char *anchor_dir, const char *augment_dir);
/* Read dir/calm.safetensors into an initialised composer (names and shapes
 * must match its connections). */
int compose_load_weights(Composer *c, const char *dir);
/* The tokenizer both models share: the anchor's (tokenizer_load), after
 * checking that the augmenting model's is the same one; an error names both
 * directories and tokenizers when they differ. */
struct Tokenizer *compose_tokenizer(const char *anchor_dir, const char *augment_dir);
/* The same for a composition directory (the models its config records). */
struct Tokenizer *compose_load_tokenizer(const char *dir);
/* sha256 of a model directory's weights: of model.safetensors, or for a
 * sharded checkpoint (model.safetensors.index.json) of the lines "FILE HEX"
 * of its files. A file's hash is remembered for the process while its
 * identity and modification time stay the same. */
int compose_model_hash(const char *model_dir, char hex[65]);

#endif
