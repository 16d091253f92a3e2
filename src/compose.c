/* compose.c: see compose.h. */
#define _GNU_SOURCE
#include "src/compose.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <sys/stat.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/files.h"
#include "src/modeldir.h"
#include "src/common.h"
#include "src/fastexp.h"
#include "src/layers.h"
#include "src/rng.h"
#include "src/safetensors.h"
#include "src/sample.h"
#include "src/sha256.h"
#include "src/tokenizer.h"

/* -------------------------------------------------------------- wiring */

int compose_default_connections(const ModelConfig *A, const ModelConfig *B, ComposeConfig *cfg) {
    int as[COMPOSE_MAX_CONN], k = 0;
    for (int a = 3; a < A->n_layers && k < COMPOSE_MAX_CONN; a += 4) as[k++] = a;
    if (k == 0) as[k++] = A->n_layers - 1;
    if (k > B->n_layers) k = B->n_layers; /* never two connections into one anchor block */
    cfg->n_conn = k;
    for (int i = 0; i < k; i++) {
        cfg->conn[i].a = as[i];
        cfg->conn[i].b = (int)lround((double)(i + 1) * B->n_layers / k) - 1;
    }
    return 0;
}

int compose_parse_connections(const char *s, ComposeConfig *cfg) {
    cfg->n_conn = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10);
        if (end == p || *end != ':') return calm_error("--connections '%s': expected A:B pairs like 3:5,7:11", s);
        p = end + 1;
        long b = strtol(p, &end, 10);
        if (end == p || (*end && *end != ',')) return calm_error("--connections '%s': expected A:B pairs like 3:5,7:11", s);
        if (a < 0 || b < 0 || a > INT_MAX || b > INT_MAX) return calm_error("--connections '%s': negative layer index", s);
        if (cfg->n_conn == COMPOSE_MAX_CONN) return calm_error("--connections: at most %d connections", COMPOSE_MAX_CONN);
        cfg->conn[cfg->n_conn].a = (int)a;
        cfg->conn[cfg->n_conn].b = (int)b;
        cfg->n_conn++;
        p = end;
        if (*p == ',' && !*++p) return calm_error("--connections '%s': trailing comma", s);
    }
    if (cfg->n_conn == 0) return calm_error("--connections: empty list");
    return 0;
}

int compose_connections(ComposeConfig *cfg, const char *spec, int heads, const ModelConfig *A, const ModelConfig *B) {
    memset(cfg, 0, sizeof *cfg);
    if (spec ? compose_parse_connections(spec, cfg) : compose_default_connections(A, B, cfg)) return -1;
    cfg->n_heads = heads;
    return 0;
}

void compose_format_connections(const Connection *conn, int n, char *buf, size_t cap) {
    size_t k = 0;
    if (cap) buf[0] = 0;
    for (int i = 0; i < n && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%d:%d", i ? "," : "", conn[i].a, conn[i].b);
}

/* ------------------------------------------------------------ parameters */

int compose_init(Composer *c, Model *A, Model *B, const ComposeConfig *cfg) {
    if (compose_init_configs(c, &A->cfg, &B->cfg, cfg) != 0) return -1;
    c->A = A;
    c->B = B;
    return 0;
}

int compose_init_configs(Composer *c, const ModelConfig *ca, const ModelConfig *cb, const ComposeConfig *cfg) {
    memset(c, 0, sizeof *c);
    if (ca->vocab_size != cb->vocab_size)
        return calm_error("models have different vocabularies: augment %d, anchor %d (a composition feeds the "
                          "same ids to both: one tokenizer, the same vocab_size)",
                          ca->vocab_size, cb->vocab_size);
    if (ca->bos_id != cb->bos_id || ca->eos_id != cb->eos_id)
        return calm_error("models use different special tokens (BOS %d/%d, EOS %d/%d): not the same tokenizer",
                          ca->bos_id, cb->bos_id, ca->eos_id, cb->eos_id);
    if (cfg->n_conn < 1 || cfg->n_conn > COMPOSE_MAX_CONN)
        return calm_error("a composition needs 1..%d connections, got %d", COMPOSE_MAX_CONN, cfg->n_conn);
    for (int i = 0; i < cfg->n_conn; i++) {
        const Connection *k = &cfg->conn[i];
        if (k->a < 0 || k->a >= ca->n_layers)
            return calm_error("connection %d:%d: augment layer %d out of range (the augmenting model has layers 0..%d)",
                              k->a, k->b, k->a, ca->n_layers - 1);
        if (k->b < 0 || k->b >= cb->n_layers)
            return calm_error("connection %d:%d: anchor layer %d out of range (the anchor has layers 0..%d)", k->a,
                              k->b, k->b, cb->n_layers - 1);
        for (int j = 0; j < i; j++)
            if (cfg->conn[j].b > k->b)
                return calm_error("connections must be in order of anchor layer (%d:%d comes after %d:%d)", k->a,
                                  k->b, cfg->conn[j].a, cfg->conn[j].b);
    }
    int H = cfg->n_heads > 0 ? cfg->n_heads : cb->n_heads;
    if (cb->dim % H) return calm_error("cross-attention heads %d do not divide the anchor width %d", H, cb->dim);
    c->cfg = *cfg;
    c->cfg.n_heads = H;
    c->dA = ca->dim;
    c->dB = cb->dim;
    c->H = H;
    c->HS = cb->dim / H;
    c->a_max = 0;
    c->b_min = INT_MAX;
    for (int i = 0; i < cfg->n_conn; i++) {
        if (cfg->conn[i].a > c->a_max) c->a_max = cfg->conn[i].a;
        if (cfg->conn[i].b < c->b_min) c->b_min = cfg->conn[i].b;
    }

    const int n = cfg->n_conn;
    const size_t dA = c->dA, dB = c->dB;
    c->n_info = 6 * n;
    c->info = xcalloc((size_t)c->n_info, sizeof(ParamInfo));
    static const char *names[6] = {"proj.weight", "proj.bias", "q_proj.weight", "k_proj.weight", "v_proj.weight",
                                   "o_proj.weight"};
    size_t off = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 6; j++) {
            ParamInfo *p = &c->info[6 * i + j];
            snprintf(p->name, sizeof p->name, "calm.connections.%d.%s", i, names[j]);
            p->ndim = j == 1 ? 1 : 2;
            p->shape[0] = (int64_t)dB;
            p->shape[1] = j == 0 ? (int64_t)dA : j == 1 ? 0 : (int64_t)dB;
            p->numel = j == 0 ? dB * dA : j == 1 ? dB : dB * dB;
            p->offset = off;
            off += p->numel;
        }
    c->num_params = off;
    c->params = xmap_floats(off);
    c->grads = xmap_floats(off);
    c->p = xcalloc((size_t)n, sizeof(ConnParams));
    c->g = xcalloc((size_t)n, sizeof(ConnParams));
    for (int i = 0; i < n; i++) {
        float **pp[6] = {&c->p[i].proj_w, &c->p[i].proj_b, &c->p[i].wq, &c->p[i].wk, &c->p[i].wv, &c->p[i].wo};
        float **gg[6] = {&c->g[i].proj_w, &c->g[i].proj_b, &c->g[i].wq, &c->g[i].wk, &c->g[i].wv, &c->g[i].wo};
        for (int j = 0; j < 6; j++) {
            *pp[j] = c->params + c->info[6 * i + j].offset;
            *gg[j] = c->grads + c->info[6 * i + j].offset;
        }
    }
    c->acts = xcalloc((size_t)n, sizeof(ConnActs));
    return 0;
}

/* Tensor k is one this process works on. */
static int is_own(const Composer *c, int k) {
    if (!c->own) return 1;
    for (int j = 0; j < c->n_own; j++)
        if (c->own[j].offset == c->info[k].offset) return 1;
    return 0;
}

void compose_init_random(Composer *c, uint64_t seed) {
    for (int k = 0; k < c->n_info; k++) {
        if (!is_own(c, k)) continue;
        const ParamInfo *p = &c->info[k];
        float *w = c->params + p->offset;
        int is_o = strstr(p->name, "o_proj") != NULL;
        if (p->ndim == 1 || is_o) {
            memset(w, 0, p->numel * sizeof(float)); /* o_proj = 0: step 0 is exactly mB */
            continue;
        }
        Rng r;
        rng_seed(&r, seed, 1000 + (uint64_t)k);
        float std = 1.0f / sqrtf((float)p->shape[1]);
        for (size_t i = 0; i < p->numel; i++) w[i] = std * rng_normal(&r);
    }
}

void compose_set_proj(Composer *c, int i, const double *w, const double *b) {
    const double *src[2] = {w, b};
    for (int j = 0; j < 2; j++) { /* info[6 i]: proj.weight, info[6 i + 1]: proj.bias */
        int k = 6 * i + j;
        if (!is_own(c, k)) continue;
        float *dst = c->params + c->info[k].offset;
        for (size_t e = 0; e < c->info[k].numel; e++) dst[e] = (float)src[j][e];
    }
}

void compose_free(Composer *c) {
    calm_unmap_floats(c->params, c->num_params);
    calm_unmap_floats(c->grads, c->num_params);
    free(c->p);
    free(c->g);
    free(c->info);
    free(c->acts);
    free(c->mem);
    memset(c, 0, sizeof *c);
}

void compose_zero_grads(Composer *c) {
    if (!c->own) {
        memset(c->grads, 0, c->num_params * sizeof(float));
        return;
    }
    for (int j = 0; j < c->n_own; j++) memset(c->grads + c->own[j].offset, 0, c->own[j].numel * sizeof(float));
}

size_t compose_conn_acts_floats(const Composer *c, int Bsz, int T) {
    const size_t N = (size_t)Bsz * T;
    return 5 * N * c->dB + (size_t)Bsz * c->H * T * T; /* hB, q, k, v, att, probs */
}

void compose_conn_acts_bind(const Composer *c, ConnActs *a, float *mem, int Bsz, int T) {
    const size_t ND = (size_t)Bsz * T * c->dB;
    a->hB = mem, mem += ND;
    a->q = mem, mem += ND;
    a->k = mem, mem += ND;
    a->v = mem, mem += ND;
    a->att = mem, mem += ND;
    a->probs = mem;
}

size_t compose_scratch_floats(const Composer *c, int Bsz, int T) {
    const size_t N = (size_t)Bsz * T;
    return 5 * N * c->dB + (size_t)Bsz * c->H * T * T; /* backward: datt, dq, dk, dv, dP, dprobs */
}

static void ensure_acts(Composer *c, int Bsz, int T) {
    if (c->mem && c->cap_B == Bsz && c->cap_T == T) return;
    free(c->mem);
    const size_t per = compose_conn_acts_floats(c, Bsz, T), ND = (size_t)Bsz * T * c->dB;
    c->mem = xalloc_floats((per + ND) * c->cfg.n_conn + compose_scratch_floats(c, Bsz, T));
    float *p = c->mem;
    for (int i = 0; i < c->cfg.n_conn; i++) {
        compose_conn_acts_bind(c, &c->acts[i], p, Bsz, T);
        p += per;
        c->acts[i].P = p;
        p += ND;
    }
    c->scratch = p;
    c->cap_B = Bsz;
    c->cap_T = T;
}

/* ------------------------------------------------- one connection's pieces */

void compose_proj_forward(const Composer *c, int i, float *P, const float *hA, int N) {
    linear_forward(P, hA, c->p[i].proj_w, c->p[i].proj_b, N, c->dA, c->dB);
}

void compose_proj_backward(Composer *c, int i, const float *dP, const float *hA, int N) {
    linear_backward(NULL, c->g[i].proj_w, c->g[i].proj_b, dP, hA, c->p[i].proj_w, N, c->dA, c->dB);
}

void compose_xattn_forward(const Composer *c, int i, ConnActs *a, float *resid, int Bsz, int T, float *scratch) {
    const int N = Bsz * T, dB = c->dB;
    const ConnParams *w = &c->p[i];
    float *out = scratch;
    memcpy(a->hB, resid, (size_t)N * dB * sizeof(float));
    linear_forward(a->q, a->hB, w->wq, NULL, N, dB, dB);
    linear_forward(a->k, a->P, w->wk, NULL, N, dB, dB);
    linear_forward(a->v, a->P, w->wv, NULL, N, dB, dB);
    attention_forward(a->att, a->probs, a->q, a->k, a->v, Bsz, T, c->H, c->H, c->HS);
    linear_forward(out, a->att, w->wo, NULL, N, dB, dB);
#pragma omp parallel for
    for (size_t j = 0; j < (size_t)N * dB; j++) resid[j] += out[j];
}

/* Whether dL/d(stream) must flow back through connection i's queries. Not
 * for the first connection (in forward order) at the lowest connected layer:
 * the anchor backward stops there, so nothing reads that gradient. */
static int query_path_needed(const Composer *c, int i) {
    if (c->cfg.conn[i].b != c->b_min) return 1;
    for (int j = 0; j < i; j++)
        if (c->cfg.conn[j].b == c->b_min) return 1;
    return 0;
}

void compose_xattn_backward(Composer *c, int i, const ConnActs *a, float *dresid, float *dP, int Bsz, int T,
                            float *scratch) {
    const int N = Bsz * T, dB = c->dB;
    const size_t ND = (size_t)N * dB;
    const ConnParams *w = &c->p[i];
    const ConnParams *g = &c->g[i];
    float *datt = scratch, *dq = datt + ND, *dk = dq + ND, *dv = dk + ND, *dprobs = dv + ND;
    memset(datt, 0, ND * sizeof(float));
    linear_backward(datt, g->wo, NULL, dresid, a->att, w->wo, N, dB, dB);
    memset(dq, 0, 3 * ND * sizeof(float));
    attention_backward(dq, dk, dv, dprobs, datt, a->q, a->k, a->v, a->probs, Bsz, T, c->H, c->H, c->HS);
    linear_backward(query_path_needed(c, i) ? dresid : NULL, g->wq, NULL, dq, a->hB, w->wq, N, dB, dB);
    memset(dP, 0, ND * sizeof(float));
    linear_backward(dP, g->wk, NULL, dk, a->P, w->wk, N, dB, dB);
    linear_backward(dP, g->wv, NULL, dv, a->P, w->wv, N, dB, dB);
}

/* ---------------------------------------------------------------- forward */

static const float *augment_stream(const Composer *c, int i) {
    const size_t N = (size_t)c->Bsz * c->T;
    return c->A->acts.resid + (size_t)(c->cfg.conn[i].a + 1) * N * c->dA;
}

static void forward_hook(void *ctx, int layer, float *resid, int Bsz, int T) {
    Composer *c = ctx;
    for (int i = 0; i < c->cfg.n_conn; i++) {
        if (c->cfg.conn[i].b != layer) continue;
        compose_proj_forward(c, i, c->acts[i].P, augment_stream(c, i), Bsz * T);
        compose_xattn_forward(c, i, &c->acts[i], resid, Bsz, T, c->scratch);
    }
}

float compose_forward(Composer *c, const int *tokens, const int *targets, const float *weights, int Bsz, int T) {
    ensure_acts(c, Bsz, T);
    c->Bsz = Bsz;
    c->T = T;
    model_forward_trunk(c->A, tokens, Bsz, T, c->a_max + 1, NULL, NULL);
    return model_forward(c->B, tokens, targets, weights, Bsz, T, forward_hook, c);
}

/* --------------------------------------------------------------- backward */

/* dresid = dL/d(stream after the addition). Accumulates the connection's
 * parameter gradients and adds the path through the queries to dresid. */
static void backward_hook(void *ctx, int layer, float *dresid, int Bsz, int T) {
    Composer *c = ctx;
    const size_t ND = (size_t)Bsz * T * c->dB;
    float *dP = c->scratch + 4 * ND + (size_t)Bsz * c->H * T * T; /* after datt, dq, dk, dv, dprobs */
    for (int i = c->cfg.n_conn - 1; i >= 0; i--) {
        if (c->cfg.conn[i].b != layer) continue;
        compose_xattn_backward(c, i, &c->acts[i], dresid, dP, Bsz, T, c->scratch);
        compose_proj_backward(c, i, dP, augment_stream(c, i), Bsz * T);
    }
}

void compose_backward(Composer *c, const int *targets, const float *weights) {
    model_backward(c->B, targets, weights, GRAD_INPUT, c->b_min + 1, backward_hook, c);
}

double compose_flops_per_step(const Composer *c, int Bsz, int T) {
    return compose_flops(c, &c->A->cfg, &c->B->cfg, Bsz, T);
}

double compose_flops(const Composer *c, const ModelConfig *ca, const ModelConfig *cb, int Bsz, int T) {
    const double N = (double)Bsz * T, dA = c->dA, dB = c->dB;
    double att_a, att_b;
    double mm_a = model_block_flops(ca, Bsz, T, &att_a), mm_b = model_block_flops(cb, Bsz, T, &att_b);
    double head = 2.0 * N * dB * cb->vocab_size;
    double f = (c->a_max + 1) * (mm_a + att_a);                     /* mA forward, connected part */
    f += cb->n_layers * (mm_b + att_b) + head;                      /* mB forward */
    f += (cb->n_layers - c->b_min - 1) * (mm_b + 2.0 * att_b) + head; /* mB input-gradient backward */
    double proj = 2.0 * N * dA * dB, sq = 2.0 * N * dB * dB;
    double xatt = 2.0 * 2.0 * Bsz * c->H * ((double)T * (T + 1) / 2.0) * c->HS;
    /* per connection: forward; weight gradients of all five matrices; input
     * gradients through o, k, v (not into mA) and q (where needed);
     * attention backward 2x */
    for (int i = 0; i < c->cfg.n_conn; i++)
        f += (proj + 4 * sq + xatt) + (proj + 4 * sq) + (3 + query_path_needed(c, i)) * sq + 2.0 * xatt;
    return f;
}

/* ------------------------------------------------------------ directories */

/* Hashing a multi-gigabyte checkpoint takes a while, and a run asks for the
 * same model's hash at its start and at every save: remember each file's
 * hash with its identity (device, inode, size, modification time). */
typedef struct {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    char hex[65];
} HashMemo;
static HashMemo hash_memo[8];
static int hash_memo_n;

static int file_hash(const char *path, char hex[65]) {
    struct stat st;
    if (stat(path, &st) != 0) return calm_error("%s: cannot open: %s", path, strerror(errno));
    for (int i = 0; i < hash_memo_n; i++) {
        const HashMemo *m = &hash_memo[i];
        if (m->dev == st.st_dev && m->ino == st.st_ino && m->size == st.st_size &&
            m->mtime.tv_sec == st.st_mtim.tv_sec && m->mtime.tv_nsec == st.st_mtim.tv_nsec) {
            memcpy(hex, m->hex, 65);
            return 0;
        }
    }
    if (calm_sha256_file(path, hex) != 0) return -1;
    HashMemo *m = &hash_memo[hash_memo_n < 8 ? hash_memo_n++ : (int)(st.st_ino % 8)];
    *m = (HashMemo){st.st_dev, st.st_ino, st.st_size, st.st_mtim, {0}};
    memcpy(m->hex, hex, 65);
    return 0;
}

/* Several files (a sharded checkpoint's index and shards): the sha256 of
 * the lines "NAME HEX" of each file's own hash. */
static int files_hash(char **paths, int n, char hex[65]) {
    size_t len = 0, cap = 0;
    char *lines = NULL;
    int r = 0;
    for (int i = 0; i < n && r == 0; i++) {
        char h[65];
        r = file_hash(paths[i], h);
        const char *name = strrchr(paths[i], '/') ? strrchr(paths[i], '/') + 1 : paths[i];
        size_t need = strlen(name) + 67;
        if (len + need + 1 > cap) lines = xrealloc(lines, cap = 2 * (len + need + 1));
        if (r == 0) len += (size_t)snprintf(lines + len, cap - len, "%s %s\n", name, h);
    }
    if (r == 0) calm_sha256_hex(lines, len, hex);
    free(lines);
    return r;
}

int compose_model_hash(const char *model_dir, char hex[65]) {
    char **paths;
    int n;
    if (model_weight_files(model_dir, &paths, &n) != 0) return -1;
    int r = n == 1 ? file_hash(paths[0], hex) : files_hash(paths, n, hex);
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
    return r;
}

int compose_save_dir(const Composer *c, const char *dir, const char *anchor_dir, const char *augment_dir) {
    char ha[65], hb[65];
    if (compose_model_hash(anchor_dir, hb) != 0 || compose_model_hash(augment_dir, ha) != 0) return -1;
    if (calm_mkdirs(dir) != 0) return -1;
    char ra[PATH_MAX], rb[PATH_MAX];
    if (!realpath(anchor_dir, rb) || !realpath(augment_dir, ra))
        return calm_error("cannot resolve the model paths %s / %s", anchor_dir, augment_dir);

    StWriteTensor *t = xcalloc((size_t)c->n_info, sizeof(StWriteTensor));
    for (int k = 0; k < c->n_info; k++) {
        t[k].name = c->info[k].name;
        t[k].data = c->params + c->info[k].offset;
        t[k].ndim = c->info[k].ndim;
        t[k].shape[0] = c->info[k].shape[0];
        t[k].shape[1] = c->info[k].shape[1];
    }
    char *wpath = calm_path_join(dir, CALM_COMPOSE_WEIGHTS);
    const char *mk[] = {"format"}, *mv[] = {"pt"};
    int r = st_write_f32(wpath, t, c->n_info, mk, mv, 1);
    free(wpath);
    free(t);
    if (r != 0) return -1;

    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", "calm-composition");
    cJSON_AddNumberToObject(root, "version", 1);
    cJSON *an = cJSON_AddObjectToObject(root, "anchor");
    cJSON_AddStringToObject(an, "path", rb);
    cJSON_AddStringToObject(an, "sha256", hb);
    cJSON *au = cJSON_AddObjectToObject(root, "augment");
    cJSON_AddStringToObject(au, "path", ra);
    cJSON_AddStringToObject(au, "sha256", ha);
    cJSON *cs = cJSON_AddArrayToObject(root, "connections");
    for (int i = 0; i < c->cfg.n_conn; i++) {
        int pair[2] = {c->cfg.conn[i].a, c->cfg.conn[i].b};
        cJSON_AddItemToArray(cs, cJSON_CreateIntArray(pair, 2));
    }
    cJSON_AddNumberToObject(root, "heads", c->H);
    cJSON_AddNumberToObject(root, "augment_dim", c->dA);
    cJSON_AddNumberToObject(root, "anchor_dim", c->dB);
    Tokenizer *tok = tokenizer_load(anchor_dir); /* both models share it (compose_tokenizer) */
    if (!tok) {
        cJSON_Delete(root);
        return -1;
    }
    cJSON_AddStringToObject(root, "tokenizer", tokenizer_id(tok));
    tokenizer_free(tok);
    char *cpath = calm_path_join(dir, CALM_COMPOSE_CONFIG);
    r = calm_write_json(cpath, root);
    cJSON_Delete(root);
    free(cpath);
    return r;
}

static const char *json_str(const cJSON *o, const char *key) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

/* The model recorded for role ("anchor" / "augment") must hash as recorded;
 * path overrides the recorded path (NULL: use it). *used gets the path. */
static int check_model(const cJSON *root, const char *role, const char *cpath, const char *path, const char **used) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, role);
    const char *rec = json_str(o, "path"), *sha = json_str(o, "sha256");
    if (!rec || !sha) return calm_error("%s: \"%s\" needs \"path\" and \"sha256\" strings", cpath, role);
    if (!path) path = rec;
    char hex[65];
    if (compose_model_hash(path, hex) != 0) return calm_error("%s: %s model: %s", cpath, role, calm_last_error());
    if (strcmp(hex, sha) != 0)
        return calm_error("%s: the %s model at %s is not the one this composition was trained with "
                          "(sha256 %s, expected %s): it has changed since",
                          cpath, role, path, hex, sha);
    *used = path;
    return 0;
}

static int load_checked_model(Model *m, const cJSON *root, const char *role, const char *cpath) {
    const char *path;
    if (check_model(root, role, cpath, NULL, &path) != 0) return -1;
    return model_load_dir_frozen(m, path); /* only composed, never trained */
}

int compose_verify_models(const char *dir, const char *anchor_dir, const char *augment_dir) {
    char *cpath = calm_path_join(dir, CALM_COMPOSE_CONFIG);
    const char *used;
    cJSON *root = calm_read_json(cpath);
    int r = !root || check_model(root, "anchor", cpath, anchor_dir, &used) != 0 ||
                    check_model(root, "augment", cpath, augment_dir, &used) != 0
                ? -1
                : 0;
    cJSON_Delete(root);
    free(cpath);
    return r;
}

Tokenizer *compose_tokenizer(const char *anchor_dir, const char *augment_dir) {
    Tokenizer *b = tokenizer_load(anchor_dir);
    if (!b) return NULL;
    Tokenizer *a = tokenizer_load(augment_dir);
    if (!a) {
        tokenizer_free(b);
        return NULL;
    }
    int same = strcmp(tokenizer_id(a), tokenizer_id(b)) == 0;
    if (!same)
        calm_error("the models use different tokenizers: anchor %s has %s, augment %s has %s; a composition feeds "
                   "the same ids to both, so they must share one",
                   anchor_dir, tokenizer_id(b), augment_dir, tokenizer_id(a));
    tokenizer_free(a);
    if (same) return b;
    tokenizer_free(b);
    return NULL;
}

Tokenizer *compose_load_tokenizer(const char *dir) {
    char *cpath = calm_path_join(dir, CALM_COMPOSE_CONFIG);
    cJSON *root = calm_read_json(cpath);
    Tokenizer *t = NULL;
    if (root) {
        const char *b = json_str(cJSON_GetObjectItemCaseSensitive(root, "anchor"), "path");
        const char *a = json_str(cJSON_GetObjectItemCaseSensitive(root, "augment"), "path");
        if (!a || !b)
            calm_error("%s: \"anchor\" and \"augment\" need \"path\" strings", cpath);
        else
            t = compose_tokenizer(b, a);
    }
    cJSON_Delete(root);
    free(cpath);
    return t;
}

int compose_load_weights(Composer *c, const char *dir) {
    char *wpath = calm_path_join(dir, CALM_COMPOSE_WEIGHTS);
    StFile f;
    int r = st_open(&f, wpath);
    free(wpath);
    if (r != 0) return -1;
    if (f.n_tensors != c->n_info)
        r = calm_error("%s: %d tensors, but %d connections need %d", f.path, f.n_tensors, c->cfg.n_conn, c->n_info);
    for (int k = 0; r == 0 && k < c->n_info; k++)
        r = st_read_f32(&f, c->info[k].name, c->info[k].shape, c->info[k].ndim, c->params + c->info[k].offset);
    st_close(&f);
    return r;
}

int compose_load_dir(Composer *c, const char *dir, Model *A, Model *B) {
    char *cpath = calm_path_join(dir, CALM_COMPOSE_CONFIG);
    int r = -1;
    cJSON *root = calm_read_json(cpath);
    if (!root) goto out_path;
    const char *fmt = json_str(root, "format");
    if (!fmt || strcmp(fmt, "calm-composition") != 0) {
        calm_error("%s: \"format\" is not \"calm-composition\"", cpath);
        goto out;
    }
    ComposeConfig cfg = {0};
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(root, "connections"), *e;
    if (!cJSON_IsArray(cs)) {
        calm_error("%s: \"connections\" must be a list of [a, b] pairs", cpath);
        goto out;
    }
    cJSON_ArrayForEach(e, cs) {
        if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2 || !cJSON_IsNumber(cJSON_GetArrayItem(e, 0)) ||
            !cJSON_IsNumber(cJSON_GetArrayItem(e, 1)) || cfg.n_conn == COMPOSE_MAX_CONN) {
            calm_error("%s: \"connections\" must be a list of at most %d [a, b] pairs", cpath, COMPOSE_MAX_CONN);
            goto out;
        }
        cfg.conn[cfg.n_conn].a = cJSON_GetArrayItem(e, 0)->valueint;
        cfg.conn[cfg.n_conn].b = cJSON_GetArrayItem(e, 1)->valueint;
        cfg.n_conn++;
    }
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(root, "heads");
    cfg.n_heads = cJSON_IsNumber(h) ? h->valueint : 0;
    if (load_checked_model(B, root, "anchor", cpath) != 0) goto out;
    if (load_checked_model(A, root, "augment", cpath) != 0) {
        model_free(B);
        goto out;
    }
    if (compose_init(c, A, B, &cfg) != 0) {
        calm_error("%s: %s", cpath, calm_last_error());
        goto out_models;
    }
    r = compose_load_weights(c, dir);
    if (r != 0) compose_free(c);
out_models:
    if (r != 0) {
        model_free(A);
        model_free(B);
    }
out:
    cJSON_Delete(root);
out_path:
    free(cpath);
    return r;
}
