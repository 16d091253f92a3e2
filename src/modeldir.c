/* modeldir.c: model directories (config.json + model.safetensors) and the
 * trainer state file. See modeldir.h for the layout. */
#include "src/files.h"
#include "src/modeldir.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/common.h"

int model_save_dir(const Model *m, const char *dir) {
    if (calm_mkdirs(dir) != 0) return -1;
    int n = 0;
    const ParamInfo *pi = model_param_table(m, &n);
    StWriteTensor *ts = xcalloc((size_t)n + 1, sizeof *ts);
    for (int i = 0; i < n; i++) {
        ts[i].name = pi[i].name;
        ts[i].data = m->params_memory + pi[i].offset;
        ts[i].ndim = pi[i].ndim;
        for (int d = 0; d < pi[i].ndim; d++) ts[i].shape[d] = pi[i].shape[d];
    }
    /* transformers expects format "pt" in safetensors metadata. */
    static const char *const keys[] = {"format"}, *const values[] = {"pt"};
    char *wpath = calm_path_join(dir, CALM_WEIGHTS_FILE);
    char *cpath = calm_path_join(dir, CALM_CONFIG_FILE);
    /* Weights first: a directory gains its config.json last, so a fresh
     * directory that has one is complete. */
    int r = st_write_f32(wpath, ts, n, keys, values, 1);
    if (r == 0) r = model_config_save(&m->cfg, cpath);
    free(wpath);
    free(cpath);
    free(ts);
    return r;
}

/* Fill every parameter of m from f. */
static int read_params(Model *m, const StFile *f) {
    int n = 0;
    const ParamInfo *pi = model_param_table(m, &n);
    for (int i = 0; i < n; i++) {
        /* Only an untied model lists lm_head; say why it is wanted. */
        if (strcmp(pi[i].name, "lm_head.weight") == 0 && !st_find(f, pi[i].name))
            return calm_error("%s: tensor lm_head.weight not found (config.json has tie_word_embeddings false)",
                              f->path);
        if (st_read_f32(f, pi[i].name, pi[i].shape, pi[i].ndim, m->params_memory + pi[i].offset) != 0)
            return -1;
    }
    return 0;
}

int model_load_dir(Model *m, const char *dir) { return model_load_dir_part(m, dir, 0, -1, 1); }

int model_load_dir_part(Model *m, const char *dir, int l0, int l1, int head) {
    char *cpath = calm_path_join(dir, CALM_CONFIG_FILE);
    char *wpath = calm_path_join(dir, CALM_WEIGHTS_FILE);
    char *index = calm_path_join(dir, CALM_WEIGHTS_FILE ".index.json");
    ModelConfig cfg;
    int r = model_config_load(&cfg, cpath);
    if (r == 0 && access(wpath, F_OK) != 0 && access(index, F_OK) == 0)
        r = calm_error("%s: sharded checkpoints are not supported; save the model as a single %s", index,
                       CALM_WEIGHTS_FILE);
    int inited = 0;
    if (r == 0) {
        memset(m, 0, sizeof *m);
        r = model_init_part(m, &cfg, l0, l1 < 0 ? cfg.n_layers : l1, head);
        if (r != 0) calm_error("%s: %s", dir, calm_last_error());
        inited = r == 0;
    }
    if (r == 0) {
        StFile f;
        r = st_open(&f, wpath);
        if (r == 0) {
            r = read_params(m, &f);
            st_close(&f);
        }
    }
    if (r != 0 && inited) model_free(m);
    free(cpath);
    free(wpath);
    free(index);
    return r;
}

int trainer_state_save(const char *path, const float *adam_m, const float *adam_v, size_t n,
                       const char *const *keys, const char *const *values, int n_meta) {
    StWriteTensor ts[2] = {
        {.name = "adam.m", .data = adam_m, .ndim = 1, .shape = {(int64_t)n}},
        {.name = "adam.v", .data = adam_v, .ndim = 1, .shape = {(int64_t)n}},
    };
    return st_write_f32(path, ts, 2, keys, values, n_meta);
}

int trainer_state_load(const char *path, float *adam_m, float *adam_v, size_t n, StFile *f_out) {
    StFile f;
    if (st_open(&f, path) != 0) return -1;
    int64_t shape[1] = {(int64_t)n};
    int r = st_read_f32(&f, "adam.m", shape, 1, adam_m);
    if (r == 0) r = st_read_f32(&f, "adam.v", shape, 1, adam_v);
    if (r == 0 && f_out) *f_out = f;
    else st_close(&f);
    return r;
}
