/* model_write.c: a random-weight model directory written tensor by tensor
 * (modeldir.h, model_write_random), for models larger than memory. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/common.h"
#include "src/files.h"
#include "src/modeldir.h"
#include "src/rng.h"

/* Elements generated and converted per write: 4 MB of F32 at a time. */
#define CHUNK ((size_t)1 << 20)

static StDtype st_dtype_of(WmDtype d) { return d == WM_BF16 ? ST_BF16 : d == WM_F16 ? ST_F16 : ST_F32; }

/* Table entry k as model_init_random fills it: normal(0, 0.02) from stream
 * (seed, k) for matrices, 1 for norm gains, 0 for biases. */
static int write_tensor(StStream *s, const ParamInfo *p, int k, WmDtype d, uint64_t seed, float *buf, void *out) {
    Rng r;
    rng_seed(&r, seed, (uint64_t)k);
    size_t len = strlen(p->name);
    float fill = len > 5 && strcmp(p->name + len - 5, ".bias") == 0 ? 0.0f : 1.0f;
    for (size_t i = 0; i < p->numel; i += CHUNK) {
        size_t n = p->numel - i < CHUNK ? p->numel - i : CHUNK;
        for (size_t j = 0; j < n; j++) buf[j] = p->ndim == 2 ? 0.02f * rng_normal(&r) : fill;
        wm_from_f32(out, buf, d, n);
        if (st_stream_write(s, out, n * wm_dtype_size(d)) != 0) return -1;
    }
    return 0;
}

/* Tensors [k0, k1) of the table into one file. */
static int write_file(const char *path, const ParamInfo *pi, int k0, int k1, WmDtype d, uint64_t seed) {
    StSpec *specs = xcalloc((size_t)(k1 - k0), sizeof *specs);
    for (int k = k0; k < k1; k++)
        specs[k - k0] = (StSpec){pi[k].name, st_dtype_of(d), pi[k].ndim, {pi[k].shape[0], pi[k].shape[1]}};
    static const char *const keys[] = {"format"}, *const values[] = {"pt"};
    StStream s;
    int r = st_stream_open(&s, path, specs, k1 - k0, keys, values, 1);
    float *buf = xmalloc(CHUNK * sizeof(float));
    void *out = xmalloc(CHUNK * sizeof(float));
    for (int k = k0; r == 0 && k < k1; k++) r = write_tensor(&s, &pi[k], k, d, seed, buf, out);
    if (r == 0) r = st_stream_close(&s);
    free(buf);
    free(out);
    free(specs);
    return r;
}

/* first[i]: the first tensor of shard i; tensors fill a shard in table order
 * until the next would pass max_bytes (a tensor larger than that gets a
 * shard of its own), as transformers' save_pretrained shards. */
static int plan_shards(const ParamInfo *pi, int n, size_t esize, uint64_t max_bytes, int *first) {
    int shards = 0;
    uint64_t used = 0;
    for (int k = 0; k < n; k++) {
        uint64_t b = pi[k].numel * esize;
        if (k == 0 || (max_bytes && used + b > max_bytes)) {
            first[shards++] = k;
            used = 0;
        }
        used += b;
    }
    first[shards] = n;
    return shards;
}

static int write_index(const char *dir, const ParamInfo *pi, int n, const int *first, int shards, size_t esize) {
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(root, "metadata");
    uint64_t total = 0;
    for (int k = 0; k < n; k++) total += pi[k].numel * esize;
    cJSON_AddNumberToObject(meta, "total_size", (double)total);
    cJSON *map = cJSON_AddObjectToObject(root, "weight_map");
    char name[64];
    for (int i = 0; i < shards; i++) {
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", i + 1, shards);
        for (int k = first[i]; k < first[i + 1]; k++) cJSON_AddStringToObject(map, pi[k].name, name);
    }
    char *path = calm_path_join(dir, CALM_WEIGHTS_INDEX_FILE);
    int r = calm_write_json(path, root);
    free(path);
    cJSON_Delete(root);
    return r;
}

static const char *torch_dtype(WmDtype d) { return d == WM_BF16 ? "bfloat16" : d == WM_F16 ? "float16" : "float32"; }

int model_write_random(const ModelConfig *cfg, const char *dir, WmDtype dtype, uint64_t shard_bytes, uint64_t seed) {
    if (model_config_validate(cfg, dir) != 0 || calm_mkdirs(dir) != 0) return -1;
    int n;
    ParamInfo *pi = model_table_new(cfg, &n);
    int *first = xcalloc((size_t)n + 1, sizeof(int));
    const size_t esize = wm_dtype_size(dtype);
    int shards = plan_shards(pi, n, esize, shard_bytes, first), r = 0;
    char name[64];
    for (int i = 0; r == 0 && i < shards; i++) {
        if (shards == 1) snprintf(name, sizeof name, "%s", CALM_WEIGHTS_FILE);
        else snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", i + 1, shards);
        char *path = calm_path_join(dir, name);
        calm_log("writing %s (%d tensors)", path, first[i + 1] - first[i]);
        r = write_file(path, pi, first[i], first[i + 1], dtype, seed);
        free(path);
    }
    if (r == 0 && shards > 1) r = write_index(dir, pi, n, first, shards, esize);
    /* The loader prefers model.safetensors over an index: drop whichever
     * layout an earlier model in this directory left. config.json comes
     * last, so a directory that has one is complete. */
    char *stale = calm_path_join(dir, shards > 1 ? CALM_WEIGHTS_FILE : CALM_WEIGHTS_INDEX_FILE);
    if (r == 0) unlink(stale);
    free(stale);
    char *cpath = calm_path_join(dir, CALM_CONFIG_FILE);
    if (r == 0) r = model_config_save_dtype(cfg, cpath, torch_dtype(dtype));
    free(cpath);
    free(first);
    free(pi);
    return r;
}
