/* model.h: a Llama-style decoder (HF LlamaForCausalLM compatible).
 *
 * Dimension letters, fixed across calm:
 *   B batch, T time (sequence length), C model width (hidden_size),
 *   NH query heads, NKV key/value heads, HS head size, F MLP width
 *   (intermediate_size), L layers, V vocabulary, N = B*T rows.
 *
 * Memory: one flat allocation each for parameters, gradients and activations;
 * structs of pointers index into them, so checkpoints, all-reduce and tests see
 * contiguous ranges. Parameter order inside the flat buffer follows
 * model_param_table().
 */
#ifndef CALM_MODEL_H
#define CALM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "src/config.h"
#include "src/wmat.h"

/* Float views of the parameters held in the flat buffer (params_memory) and
 * of their gradients. A matrix of a frozen model lives in its mapped file,
 * not in the buffer: its pointer here is NULL (read it through ModelWeights). */
typedef struct {
    float *attn_norm; /* [C]        input_layernorm.weight */
    float *wq;        /* [NH*HS, C] self_attn.q_proj.weight */
    float *wk;        /* [NKV*HS,C] self_attn.k_proj.weight */
    float *wv;        /* [NKV*HS,C] self_attn.v_proj.weight */
    float *wo;        /* [C, NH*HS] self_attn.o_proj.weight */
    float *bq, *bk, *bv, *bo; /* self_attn.{q,k,v,o}_proj.bias; NULL without attention_bias */
    float *mlp_norm;  /* [C]        post_attention_layernorm.weight */
    float *w_gate;    /* [F, C]     mlp.gate_proj.weight */
    float *w_up;      /* [F, C]     mlp.up_proj.weight */
    float *w_down;    /* [C, F]     mlp.down_proj.weight */
} LayerParams;

typedef struct {
    float *embed;       /* [V, C] model.embed_tokens.weight */
    LayerParams *layers; /* [L] */
    float *norm;        /* [C] model.norm.weight */
    float *lm_head;     /* [V, C] lm_head.weight; == embed when tied */
} ModelParams;

/* What the forward, the input-gradient backward and decoding read: every
 * matrix typed (F32 in the flat buffer, or F32/BF16/F16 in a mapped file);
 * norm gains and biases are always F32 in the flat buffer. */
typedef struct {
    const float *attn_norm, *mlp_norm;
    WMat wq, wk, wv, wo, w_gate, w_up, w_down;
    const float *bq, *bk, *bv, *bo; /* NULL without attention_bias */
} LayerWeights;

typedef struct {
    WMat embed;
    LayerWeights *layers; /* [L] */
    const float *norm;
    WMat lm_head; /* == embed when tied */
} ModelWeights;

/* One entry per parameter tensor, in flat-buffer order. */
typedef struct {
    char name[96]; /* HF tensor name */
    int ndim;
    int64_t shape[2];
    size_t offset; /* in floats, into the flat buffer (unused when mapped) */
    size_t numel;
    int mapped;        /* frozen model's matrix: read in place from data, not in the buffer */
    WmDtype dtype;     /* of data, when mapped */
    const void *data;  /* when mapped; set by model_map_tensor */
} ParamInfo;

/* Saved-for-backward activations of one block. */
typedef struct {
    float *ln1, *ln1_rstd;  /* [N,C], [N] */
    float *q, *k, *v;        /* [N,NH*HS] after RoPE, [N,NKV*HS] after RoPE, [N,NKV*HS] */
    float *probs;            /* [B,NH,T,T] attention probabilities */
    float *att;              /* [N,NH*HS] attention output before o_proj */
    float *mid;              /* [N,C] residual stream after attention: resid[l] + o_proj(att) */
    float *ln2, *ln2_rstd;   /* [N,C], [N] */
    float *gate, *up, *act;  /* [N,F]: gate_proj, up_proj, silu(gate)*up */
} BlockActs;

typedef struct {
    int B, T;            /* capacity this buffer was sized for */
    float *resid;        /* [L+1, N, C]: resid[0] embeddings, resid[l+1] output of block l */
    BlockActs *blocks;   /* [L] */
    float *lnf, *lnf_rstd; /* [N,C], [N] */
    float *logits;       /* [N,V] */
    float *losses;       /* [N] per-token loss */
    /* backward scratch */
    float *dresid;       /* [N,C] gradient flowing down the residual stream */
    float *dx, *dq, *dk, *dv, *datt, *dprobs, *dgate, *dup, *dact, *dln; /* per-block scratch */
    float *dlogits;      /* [N,V] */
    float *memory;
    size_t numel;
} Activations;

/* Gradient modes. FULL computes parameter gradients; INPUT is the frozen-weights
 * mode: only gradients with respect to the residual stream are propagated (no
 * weight-gradient GEMMs at all), which is what composition training needs. */
typedef enum { GRAD_FULL = 0, GRAD_INPUT = 1 } GradMode;

/* Called after block `layer` has written resid[layer+1] (forward), or when the
 * gradient with respect to resid[layer+1] is complete (backward). A hook may
 * modify the buffer in place (composition adds its cross-attention output in
 * forward, and its contribution to the gradient in backward). */
typedef void (*ResidHook)(void *ctx, int layer, float *resid, int B, int T);

typedef struct {
    ModelConfig cfg;
    /* The part of the model held here (a pipeline stage holds a slice):
     * blocks l0..l1-1, the embedding when l0 == 0 (or when tied and the head
     * is held), the final norm and LM head when has_head. A whole model has
     * l0 = 0, l1 = L, has_head = 1. Block indices stay absolute. */
    int l0, l1, has_head;
    /* Frozen (model_init_frozen_part): matrices are read in place from mapped
     * files (model_map_tensor), the buffer holds only norms and biases, and
     * there are no gradients: GRAD_INPUT only. */
    int frozen;
    size_t num_params;   /* floats in params_memory */
    float *params_memory;
    ModelParams params;
    ModelWeights weights; /* the typed view the math reads */
    void *storage;       /* what keeps mapped tensors alive; released by storage_free */
    void (*storage_free)(void *storage);
    ParamInfo *param_info;
    int n_param_tensors;
    float *grads_memory; /* NULL until model_alloc_grads */
    ModelParams grads;
    Activations acts;    /* sized on first forward, grown as needed */
    float *rope_cos, *rope_sin; /* [max_seq_len, HS/2] */
    /* last forward */
    int B, T;
    const int *tokens;   /* borrowed from the caller until backward */
    int has_targets;
    float mean_loss;
} Model;

int model_init(Model *m, const ModelConfig *cfg); /* allocates parameters (zeroed) */
/* Only blocks l0..l1-1 (and the embedding if l0 == 0, the head if head;
 * head needs l1 == L): parameters, table and activations of that part. */
int model_init_part(Model *m, const ModelConfig *cfg, int l0, int l1, int head);
/* A frozen part: the table marks every matrix mapped and the buffer holds
 * only the 1-D tensors; the caller gives each matrix's data with
 * model_map_tensor before the first forward. */
int model_init_frozen_part(Model *m, const ModelConfig *cfg, int l0, int l1, int head);
/* Tensor k of the table (a mapped one) reads from data in dtype; data must
 * outlive the model (hand its owner to m->storage). */
void model_map_tensor(Model *m, int k, const void *data, WmDtype dtype);
/* Elements of every tensor held, mapped ones included (num_params counts
 * only the flat buffer). */
size_t model_param_count(const Model *m);
/* normal(0, 0.02) matrices, norm gains 1, biases 0; each tensor from its own
 * stream (seed, k), k its index in the whole model's table. */
void model_init_random(Model *m, uint64_t seed);
/* The whole model's parameter table (names, shapes, offsets as model_init
 * lays them out) without allocating the parameters; free() it. */
ParamInfo *model_table_new(const ModelConfig *cfg, int *n);
void model_free(Model *m);
void model_alloc_grads(Model *m);
void model_zero_grads(Model *m);

/* Forward over tokens [B,T]. If targets is non-NULL computes the cross-entropy
 * loss, weighted per token by weights [B,T] (NULL = all ones; 0 drops a token),
 * and returns the weighted mean; otherwise returns 0 and only fills logits.
 * hook (may be NULL) runs after every block. */
float model_forward(Model *m, const int *tokens, const int *targets, const float *weights, int B, int T,
                    ResidHook hook, void *hook_ctx);

/* Forward of the embedding and blocks 0..n_blocks-1 only (no head, no loss):
 * fills acts.resid[0..n_blocks], calling hook (may be NULL) after each block.
 * What a frozen augmenting model needs. */
void model_forward_trunk(Model *m, const int *tokens, int B, int T, int n_blocks, ResidHook hook, void *hook_ctx);

/* ---- a part of the model (pipeline stage) ----
 * model_part_input: sizes the activations for [B, T] and returns resid[l0],
 * where a part without the embedding expects its input before
 * model_forward_part. model_forward_part runs the embedding (if held), blocks
 * l0..l1-1 (hook after each) and, if the head is held, logits and loss
 * (returned; else 0). Its output is resid[l1] (model_part_output). */
float *model_part_input(Model *m, int B, int T);
/* Several micro-batches in flight each keep their own Activations: swap
 * them into m->acts around a forward / backward; free them with this. */
void model_acts_free(Activations *a);
float *model_part_output(Model *m);
float model_forward_part(Model *m, const int *tokens, const int *targets, const float *weights, int B, int T,
                         ResidHook hook, void *hook_ctx);
/* Backward through the part. With the head, starts from the loss, scaling
 * every token's gradient by grad_scale (< 0: 1 / sum of weights, the mean;
 * 0: no gradient);
 * without it, acts.dresid must hold dL/d resid[l1] on entry. Blocks from
 * l1-1 down to max(l0, stop_layer); hook(l) as in model_backward for the
 * layers of this part (l >= l0). On return acts.dresid = dL/d resid[max(l0,
 * stop_layer)]. */
void model_backward_part(Model *m, const int *targets, const float *weights, float grad_scale, GradMode mode,
                         int stop_layer, ResidHook hook, void *hook_ctx);

/* Backward of the last forward's loss (its targets and weights). Accumulates
 * into m->grads in GRAD_FULL mode. stop_layer: propagate down to (and
 * including) block stop_layer only; 0 = whole model (embedding gradient too,
 * in FULL mode). After the call m->acts.dresid holds dL/d resid[stop_layer].
 * hook(layer l) runs when dL/d resid[l+1] is complete, for l = L-1 down to
 * max(stop_layer - 1, 0), before block l is back-propagated. */
void model_backward(Model *m, const int *targets, const float *weights, GradMode mode, int stop_layer,
                    ResidHook hook, void *hook_ctx);

/* Floats of a part's activations for [B, T] (what model_forward_part
 * allocates): blocks l0..l1-1, the head's when head. */
size_t model_acts_floats(const ModelConfig *c, int l0, int l1, int head, int B, int T);

/* Parameter table (names in HF convention). When tied, lm_head is not listed. */
const ParamInfo *model_param_table(const Model *m, int *n);

/* FLOPs for one forward+backward over B*T tokens (matmuls + attention),
 * counting a multiply-add as 2. mode INPUT omits the weight-gradient GEMMs. */
double model_flops_per_step(const ModelConfig *c, int B, int T, GradMode mode);
/* Forward FLOPs of one block: matmuls (returned) and causal attention (*att). */
double model_block_flops(const ModelConfig *c, int B, int T, double *att);

/* ---- inference with a KV cache ----
 * A cache holds n_seq sequences decoded in lockstep: each call feeds one token
 * to each of a chosen subset of them, all at the common position len, so the
 * projections of every fed row run as one matrix product. */
typedef struct {
    int n_seq, max_T, len;
    float *k, *v; /* [L, n_seq, max_T, NKV*HS] after RoPE */
    /* scratch for up to n_seq rows */
    float *x, *xb, *q, *knew, *vnew, *att, *hb, *hb2, *rstd, *scores, *logits;
} KVCache;

void kvcache_init(KVCache *c, const ModelConfig *cfg, int n_seq, int max_T);
void kvcache_free(KVCache *c);
/* Feed tokens[r] to sequence seqs[r] (seqs NULL: sequence r), r < n <= n_seq,
 * at position c->len; append their K/V, advance len and return logits [n, V]
 * (pointer into the cache's scratch). Sequences not fed keep a hole at this
 * position and must not be fed again. */
float *model_decode_step(Model *m, KVCache *c, const int *seqs, const int *tokens, int n);
/* The same through blocks 0..n_blocks-1 only (returns NULL when that stops
 * short of the head), calling hook(l, x, n, 1) with the residual rows after
 * each block, as model_forward's hook does with B = n, T = 1. */
float *model_decode_step_ex(Model *m, KVCache *c, const int *seqs, const int *tokens, int n, int n_blocks,
                            ResidHook hook, void *hook_ctx);

#endif
