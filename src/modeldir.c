/* modeldir.c: model directories (config.json + model.safetensors) and the
 * trainer state file. See modeldir.h for the layout. */
#include "src/files.h"
#include "src/modeldir.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/common.h"

int model_save_dir(const Model *m, const char *dir) {
    /* a frozen model's matrices are not in params_memory: it was loaded to be used, not saved */
    if (m->frozen) calm_fatal("save a model loaded with model_load_dir (F32)", "model_save_dir on a frozen model");
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

/* ---- loading ----
 * A part opens only the files that hold its tensors: model.safetensors, or
 * the shards model.safetensors.index.json maps its tensor names to. */

typedef struct {
    StFile *files;
    int n;
} WeightFiles;

static void weight_files_free(void *p) {
    WeightFiles *w = p;
    if (!w) return;
    for (int i = 0; i < w->n; i++) st_close(&w->files[i]);
    free(w->files);
    free(w);
}

/* The file of w named path, opening it if it is new. */
static int open_file(WeightFiles *w, const char *path, int *which) {
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->files[i].path, path) == 0) return *which = i, 0;
    w->files = xrealloc(w->files, ((size_t)w->n + 1) * sizeof *w->files);
    if (st_open(&w->files[w->n], path) != 0) return -1;
    *which = w->n++;
    return 0;
}

/* Why a table tensor cannot be found; an untied model's lm_head is the one
 * users trip on, so say why it is wanted. */
static int missing(const char *where, const char *name) {
    if (strcmp(name, "lm_head.weight") == 0)
        return calm_error("%s: tensor lm_head.weight not found (config.json has tie_word_embeddings false)", where);
    return calm_error("%s: tensor %s not found", where, name);
}

/* file_of[k]: index into w of the file holding table entry k. */
static int open_sharded(WeightFiles *w, const char *dir, const char *index, const ParamInfo *pi, int n, int *file_of) {
    cJSON *root = calm_read_json(index);
    if (!root) return -1;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    int r = cJSON_IsObject(map) ? 0 : calm_error("%s: no \"weight_map\" object", index);
    for (int k = 0; r == 0 && k < n; k++) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(map, pi[k].name);
        if (!f) {
            r = missing(index, pi[k].name);
        } else if (!cJSON_IsString(f) || !*f->valuestring || strchr(f->valuestring, '/')) {
            r = calm_error("%s: weight_map entry of %s is not a file name in %s", index, pi[k].name, dir);
        } else {
            char *path = calm_path_join(dir, f->valuestring);
            if (access(path, F_OK) != 0)
                r = calm_error("%s: shard %s (holding %s) not found", index, path, pi[k].name);
            else r = open_file(w, path, &file_of[k]);
            free(path);
        }
    }
    cJSON_Delete(root);
    return r;
}

static int open_weight_files(WeightFiles *w, const char *dir, const ParamInfo *pi, int n, int *file_of) {
    char *single = calm_path_join(dir, CALM_WEIGHTS_FILE);
    char *index = calm_path_join(dir, CALM_WEIGHTS_INDEX_FILE);
    int r = 0, which = 0;
    if (access(single, F_OK) == 0) {
        r = open_file(w, single, &which);
        for (int k = 0; k < n; k++) file_of[k] = which;
    } else if (access(index, F_OK) == 0) {
        r = open_sharded(w, dir, index, pi, n, file_of);
    } else {
        r = calm_error("%s: neither %s nor %s", dir, CALM_WEIGHTS_FILE, CALM_WEIGHTS_INDEX_FILE);
    }
    free(single);
    free(index);
    return r;
}

/* A frozen model's matrix, used in place: its dtype must be one the
 * products read and its data aligned for it. */
static int map_tensor(Model *m, int k, const StFile *f) {
    const ParamInfo *p = &m->param_info[k];
    const StTensor *t = st_find(f, p->name);
    WmDtype d = WM_F32;
    if (t->dtype == ST_BF16) d = WM_BF16;
    else if (t->dtype == ST_F16) d = WM_F16;
    else if (t->dtype != ST_F32)
        return calm_error("%s: tensor %s is %s; a frozen model reads F32, BF16 or F16 weights", f->path, p->name,
                          st_dtype_name(t->dtype));
    const uint8_t *data = f->map + f->data_start + t->begin;
    if ((uintptr_t)data % wm_dtype_size(d) != 0)
        return calm_error("%s: tensor %s is not %zu-byte aligned in the file, so it cannot be used in place", f->path,
                          p->name, wm_dtype_size(d));
    model_map_tensor(m, k, data, d);
    return 0;
}

/* Fill (or map) every tensor of m's table from the file that holds it. */
static int read_params(Model *m, WeightFiles *w, const int *file_of, ModelLoadOpts *o) {
    int n = 0;
    const ParamInfo *pi = model_param_table(m, &n);
    for (int k = 0; k < n; k++) {
        const StFile *f = &w->files[file_of[k]];
        const StTensor *t = st_find(f, pi[k].name);
        if (!t) return missing(f->path, pi[k].name);
        int r = st_check_shape(f, pi[k].name, pi[k].shape, pi[k].ndim);
        if (r == 0 && pi[k].mapped) r = map_tensor(m, k, f);
        else if (r == 0) r = st_read_f32(f, pi[k].name, pi[k].shape, pi[k].ndim, m->params_memory + pi[k].offset);
        if (r != 0) return -1;
        o->tensors_read++;
    }
    return 0;
}

int model_load_dir(Model *m, const char *dir) {
    ModelLoadOpts o = {.l1 = -1, .head = 1};
    return model_load_dir_opts(m, dir, &o);
}

int model_load_dir_frozen(Model *m, const char *dir) {
    ModelLoadOpts o = {.l1 = -1, .head = 1, .frozen = 1};
    return model_load_dir_opts(m, dir, &o);
}

int model_load_dir_part(Model *m, const char *dir, int l0, int l1, int head) {
    ModelLoadOpts o = {.l0 = l0, .l1 = l1, .head = head};
    return model_load_dir_opts(m, dir, &o);
}

int model_load_dir_opts(Model *m, const char *dir, ModelLoadOpts *o) {
    char *cpath = calm_path_join(dir, CALM_CONFIG_FILE);
    ModelConfig cfg;
    o->files_opened = o->tensors_read = 0;
    int r = model_config_load(&cfg, cpath);
    free(cpath);
    if (r != 0) return -1;
    int l1 = o->l1 < 0 ? cfg.n_layers : o->l1;
    r = o->frozen ? model_init_frozen_part(m, &cfg, o->l0, l1, o->head) : model_init_part(m, &cfg, o->l0, l1, o->head);
    if (r != 0) return calm_error("%s: %s", dir, calm_last_error());
    WeightFiles *w = xcalloc(1, sizeof *w);
    int *file_of = xcalloc((size_t)m->n_param_tensors + 1, sizeof(int));
    r = open_weight_files(w, dir, m->param_info, m->n_param_tensors, file_of);
    o->files_opened = w->n;
    if (r == 0) r = read_params(m, w, file_of, o);
    free(file_of);
    if (r == 0 && o->frozen) { /* the mapped matrices live as long as the model */
        m->storage = w;
        m->storage_free = weight_files_free;
    } else {
        weight_files_free(w);
    }
    if (r != 0) model_free(m);
    return r;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int model_weight_files(const char *dir, char ***paths, int *n) {
    char *single = calm_path_join(dir, CALM_WEIGHTS_FILE);
    *n = 0;
    *paths = NULL;
    if (access(single, F_OK) == 0) {
        *paths = xmalloc(sizeof(char *));
        (*paths)[(*n)++] = single;
        return 0;
    }
    free(single);
    char *index = calm_path_join(dir, CALM_WEIGHTS_INDEX_FILE);
    cJSON *root = calm_read_json(index);
    const cJSON *map = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL, *e;
    if (!cJSON_IsObject(map)) {
        if (root) calm_error("%s: no \"weight_map\" object", index);
        cJSON_Delete(root);
        free(index);
        return -1;
    }
    char **names = xcalloc((size_t)cJSON_GetArraySize(map) + 1, sizeof(char *));
    int k = 0;
    cJSON_ArrayForEach(e, map) if (cJSON_IsString(e)) names[k++] = e->valuestring;
    qsort(names, (size_t)k, sizeof *names, cmp_str);
    *paths = xcalloc((size_t)k + 1, sizeof(char *));
    (*paths)[(*n)++] = index;
    for (int i = 0; i < k; i++)
        if (i == 0 || strcmp(names[i], names[i - 1]) != 0) (*paths)[(*n)++] = calm_path_join(dir, names[i]);
    free(names);
    cJSON_Delete(root);
    return 0;
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
