/* layers.h: forward/backward pairs over flat float buffers.
 *
 * Conventions (as in llm.c): outputs first, then buffers saved for backward,
 * then inputs, weights, dimensions. Backward functions ACCUMULATE (+=) into
 * every gradient they write; zeroing is the caller's single explicit step.
 * A NULL gradient pointer means "not wanted": frozen weights pass NULL for
 * dweight and the weight-gradient work is skipped entirely.
 * Dimension letters are those of model.h. Matrices are row-major; Linear
 * weights use the PyTorch layout [out, in].
 */
#ifndef CALM_LAYERS_H
#define CALM_LAYERS_H

#include <stddef.h>

/* out[N,C] = wte[tokens[n], :] */
void embedding_forward(float *out, const int *tokens, const float *wte, int N, int C);
void embedding_backward(float *dwte, const float *dout, const int *tokens, int N, int C);

/* out = inp * rsqrt(mean(inp^2) + eps) * weight, per row of C. */
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps);
void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                      const float *rstd, int N, int C);

/* out[N,OUT] = inp[N,IN] weight[OUT,IN]^T (+ bias[OUT]). */
void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int IN, int OUT);
void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int IN, int OUT);

/* Rotary embedding, HF rotate_half convention, in place on x[B,T,NH,HS].
 * cos/sin are [T, HS/2] tables for the positions of the T rows (pass the table
 * offset by pos0 for decoding). */
void rope_tables(float *cos_t, float *sin_t, int T, int HS, float theta);
/* The same from the HS/2 inverse frequencies (angle pos * inv_freq[i]). */
void rope_tables_freq(float *cos_t, float *sin_t, int T, int half, const double *inv_freq);
void rope_forward(float *x, const float *cos_t, const float *sin_t, int B, int T, int NH, int HS);
void rope_backward(float *dx, const float *cos_t, const float *sin_t, int B, int T, int NH, int HS);

/* Causal multi-head attention with grouped KV heads. q [B,T,NH,HS],
 * k, v [B,T,NKV,HS]; query head h reads kv head h / (NH/NKV).
 * probs [B,NH,T,T] is saved for backward; out [B,T,NH,HS]. */
void attention_forward(float *out, float *probs, const float *q, const float *k, const float *v, int B, int T,
                       int NH, int NKV, int HS);
/* scratch: [B,NH,T,T]. */
void attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout, const float *q,
                        const float *k, const float *v, const float *probs, int B, int T, int NH, int NKV, int HS);
/* One new query row of one head over cached positions 0..pos (KV-cache
 * decoding): o[HS] = softmax(q k_j^T scale) v_j, where k_j = k[j*stride] and
 * v_j = v[j*stride]; sc [pos+1] is scratch. */
void attention_decode_row(float *o, float *sc, const float *q, const float *k, const float *v, int pos, int HS,
                          size_t stride, float scale);

/* out = silu(gate) * up, elementwise over n. */
void swiglu_forward(float *out, const float *gate, const float *up, long n);
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, long n);

/* Cross-entropy over logits [N,V] against targets [N]; weights [N] (NULL = 1).
 * losses[n] = weight * -log softmax(logits[n])[target]. Returns
 * sum(losses) / sum(weights) (0 if the weights sum to 0). */
float crossentropy_forward(float *losses, const float *logits, const int *targets, const float *weights, int N,
                           int V);
/* dlogits += scale * weight[n] * (softmax(logits[n]) - onehot(target)),
 * with scale = 1 / sum(weights) for the mean loss. */
void crossentropy_backward(float *dlogits, const float *logits, const int *targets, const float *weights,
                           float scale, int N, int V);

#endif
