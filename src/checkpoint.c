/* checkpoint.c: run checkpoints; see checkpoint.h for the layout and the protocol. */
#define _GNU_SOURCE
#include "src/checkpoint.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/common.h"
#include "src/files.h"
#include "src/rng.h"
#include "src/safetensors.h"

#define PART_PREFIX "part-"
#define PART_SUFFIX ".safetensors"

void ckpt_step_name(long step, char *buf, size_t n) { snprintf(buf, n, "step-%08ld", step); }

static long coll_max(const CkptConfig *c, long x) { return c->comm.max ? c->comm.max(c->comm.ctx, x) : x; }
static long coll_sum(const CkptConfig *c, long x) { return c->comm.sum ? c->comm.sum(c->comm.ctx, x) : x; }

/* 64-bit checksum of a byte range, fed 4 bytes at a time so that a sequence
 * of float arrays gives the same value fed array by array (writing) or as
 * one range (the data area, reading). Detects any flipped byte with
 * probability 1 - 2^-64. */
static uint64_t checksum_update(uint64_t h, const void *data, size_t n) {
    const uint8_t *p = data;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint32_t w;
        memcpy(&w, p + i, 4);
        h = calm_hash64(h ^ w) + 0x9e3779b97f4a7c15ULL;
    }
    for (; i < n; i++) h = calm_hash64(h ^ (0x100u | p[i]));
    return h;
}

/* ------------------------------------------------------------ directories */

static int remove_dir_files(const char *dir, int and_dir) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : calm_error("%s: cannot open directory: %s", dir, strerror(errno));
    struct dirent *e;
    int r = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *p = calm_path_join(dir, e->d_name);
        if (unlink(p) != 0 && errno != ENOENT) r = calm_error("%s: cannot remove: %s", p, strerror(errno));
        free(p);
    }
    closedir(d);
    if (r == 0 && and_dir && rmdir(dir) != 0 && errno != ENOENT)
        r = calm_error("%s: cannot remove directory: %s", dir, strerror(errno));
    return r;
}

/* DONE of a step directory, parsed; NULL when absent or damaged. */
static cJSON *read_done(const char *sdir) {
    char *path = calm_path_join(sdir, CKPT_DONE);
    cJSON *j = calm_read_json(path);
    if (j) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "format");
        if (!cJSON_IsString(f) || strcmp(f->valuestring, "calm-checkpoint") != 0 ||
            !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "step")) ||
            !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "parts"))) {
            cJSON_Delete(j);
            j = NULL;
        }
    }
    free(path);
    return j;
}

typedef struct {
    long step;
    int complete;
} StepDir;

static int cmp_step_desc(const void *a, const void *b) {
    long x = ((const StepDir *)a)->step, y = ((const StepDir *)b)->step;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Step directories of dir, newest first. */
static int list_steps(const char *dir, StepDir **out) {
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        if (strncmp(e->d_name, "step-", 5) != 0) continue;
        long step = strtol(e->d_name + 5, &end, 10);
        if (*end || end == e->d_name + 5 || step < 0) continue;
        if (n == cap) *out = xrealloc(*out, (size_t)(cap = cap ? 2 * cap : 16) * sizeof(StepDir));
        char *sdir = calm_path_join(dir, e->d_name);
        cJSON *j = read_done(sdir);
        (*out)[n].step = step;
        (*out)[n].complete = j != NULL;
        cJSON_Delete(j);
        free(sdir);
        n++;
    }
    closedir(d);
    if (n > 1) qsort(*out, (size_t)n, sizeof(StepDir), cmp_step_desc);
    return n;
}

/* Keep the newest `keep` complete checkpoints; drop incomplete ones older than `newest`. */
static void prune(const CkptConfig *c, long newest) {
    StepDir *st;
    int n = list_steps(c->dir, &st), kept = 0;
    for (int i = 0; i < n; i++) {
        int drop = st[i].complete ? ++kept > c->keep : st[i].step < newest;
        if (!drop) continue;
        char name[32];
        ckpt_step_name(st[i].step, name, sizeof name);
        char *sdir = calm_path_join(c->dir, name);
        if (remove_dir_files(sdir, 1) != 0) calm_log("warning: pruning checkpoints: %s", calm_last_error());
        free(sdir);
    }
    free(st);
}

/* ------------------------------------------------------------------ write */

static int write_part(const CkptConfig *c, const Trainable *t, const TrainState *s, const char *sdir) {
    const int n = t->n_table;
    StWriteTensor *w = xcalloc((size_t)3 * n + 1, sizeof(StWriteTensor));
    char **names = xcalloc((size_t)3 * n + 1, sizeof(char *));
    uint64_t h = 0;
    for (int k = 0; k < n; k++) {
        const ParamInfo *p = &t->table[k];
        const float *src[3] = {t->params + p->offset, s->adam_m + p->offset, s->adam_v + p->offset};
        static const char *suffix[3] = {"", "#adam_m", "#adam_v"};
        for (int j = 0; j < 3; j++) {
            StWriteTensor *x = &w[3 * k + j];
            size_t len = strlen(p->name) + 16;
            names[3 * k + j] = xmalloc(len);
            snprintf(names[3 * k + j], len, "%s%s", p->name, suffix[j]);
            x->name = names[3 * k + j];
            x->data = src[j];
            x->ndim = p->ndim;
            x->shape[0] = p->shape[0];
            x->shape[1] = p->shape[1];
            h = checksum_update(h, src[j], p->numel * sizeof(float)); /* the data area, in file order */
        }
    }
    char step[32], seed[32], sum[32], part[16];
    snprintf(step, sizeof step, "%ld", s->step);
    snprintf(seed, sizeof seed, "%" PRIu64, c->seed);
    snprintf(sum, sizeof sum, "%016" PRIx64, h);
    snprintf(part, sizeof part, "%d", c->part);
    const char *keys[] = {"format", "step", "seed", "part", "checksum"};
    const char *vals[] = {"calm-checkpoint-part", step, seed, part, sum};
    char fname[64];
    snprintf(fname, sizeof fname, PART_PREFIX "%05d" PART_SUFFIX, c->part);
    char *path = calm_path_join(sdir, fname);
    int r = st_write_f32(path, w, 3 * n, keys, vals, 5);
    free(path);
    for (int k = 0; k < 3 * n; k++) free(names[k]);
    free(names);
    free(w);
    return r;
}

static int write_done(const CkptConfig *c, const char *sdir, long step, long parts) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "format", "calm-checkpoint");
    cJSON_AddNumberToObject(j, "version", 1);
    cJSON_AddNumberToObject(j, "step", (double)step);
    char seed[32];
    snprintf(seed, sizeof seed, "%" PRIu64, c->seed);
    cJSON_AddStringToObject(j, "seed", seed);
    cJSON_AddNumberToObject(j, "parts", (double)parts);
    cJSON *cfg = cJSON_Parse(c->config_json ? c->config_json : "{}");
    cJSON_AddItemToObject(j, "config", cfg ? cfg : cJSON_CreateObject());
    cJSON *hyp = cJSON_Parse(c->hyper_json ? c->hyper_json : "{}");
    cJSON_AddItemToObject(j, "hyper", hyp ? hyp : cJSON_CreateObject());
    cJSON_AddStringToObject(j, "layout", c->layout ? c->layout : "");
    char *path = calm_path_join(sdir, CKPT_DONE);
    int r = calm_write_json(path, j);
    cJSON_Delete(j);
    free(path);
    return r;
}

int ckpt_write(const CkptConfig *c, const Trainable *t, const TrainState *s) {
    char name[32];
    ckpt_step_name(s->step, name, sizeof name);
    char *sdir = calm_path_join(c->dir, name);
    int err = 0;
    if (c->is_main) /* an earlier, interrupted write of this step may have left files */
        err = calm_mkdirs(sdir) != 0 || remove_dir_files(sdir, 0) != 0;
    if (coll_max(c, err)) {
        if (!err) calm_error("checkpoint %s: the main process could not prepare the directory", sdir);
        free(sdir);
        return -1;
    }
    err = c->writes ? write_part(c, t, s, sdir) != 0 : 0;
    long parts = coll_sum(c, c->writes && !err);
    if (coll_max(c, err)) {
        if (!err) calm_error("checkpoint %s: another process could not write its part", sdir);
        free(sdir);
        return -1;
    }
    /* Fault injection for the crash tests: widen the window between the
     * parts and DONE so that a SIGKILL lands in it often. */
    const char *delay = getenv("CALM_TEST_CKPT_DELAY_MS");
    if (delay && atoi(delay) > 0) usleep((useconds_t)atoi(delay) * 1000);
    if (c->is_main) {
        err = write_done(c, sdir, s->step, parts) != 0;
        if (!err) prune(c, s->step);
    }
    if (coll_max(c, err)) {
        if (!err) calm_error("checkpoint %s: the main process could not complete it", sdir);
        free(sdir);
        return -1;
    }
    free(sdir);
    return 0;
}

/* ----------------------------------------------------------------- resume */

/* Differences between the checkpoint's configuration and this run's, as
 * "key: checkpoint X, this run Y; ..." (empty when they agree). */
static void config_diff(const cJSON *old, const cJSON *now, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = 0;
    const cJSON *e;
    for (int pass = 0; pass < 2; pass++) {
        const cJSON *a = pass ? now : old, *b = pass ? old : now;
        cJSON_ArrayForEach(e, a) {
            const cJSON *o = cJSON_GetObjectItemCaseSensitive(b, e->string);
            if (pass && o) continue; /* both present: compared in pass 0 */
            char *x = cJSON_PrintUnformatted(e), *y = o ? cJSON_PrintUnformatted(o) : xstrdup("(none)");
            if (strcmp(x, y) != 0 && len < n)
                len += (size_t)snprintf(buf + len, n - len, "%s%s: checkpoint %s, this run %s", len ? "; " : "",
                                        e->string, pass ? y : x, pass ? x : y);
            free(x);
            free(y);
        }
    }
}

static int part_file(const struct dirent *e) {
    size_t n = strlen(e->d_name), ls = strlen(PART_SUFFIX);
    return strncmp(e->d_name, PART_PREFIX, strlen(PART_PREFIX)) == 0 && n > ls &&
           strcmp(e->d_name + n - ls, PART_SUFFIX) == 0;
}

/* Load this process's tensors from step directory sdir. */
static int load_step(const Trainable *t, TrainState *s, const char *sdir, long step, long parts) {
    DIR *d = opendir(sdir);
    if (!d) return calm_error("%s: cannot open: %s", sdir, strerror(errno));
    StFile *f = NULL;
    int nf = 0, r = 0;
    struct dirent *e;
    while (r == 0 && (e = readdir(d))) {
        if (!part_file(e)) continue;
        f = xrealloc(f, (size_t)(nf + 1) * sizeof(StFile));
        char *path = calm_path_join(sdir, e->d_name);
        r = st_open(&f[nf], path);
        free(path);
        if (r) break;
        StFile *p = &f[nf++];
        const char *sum = st_meta(p, "checksum"), *st = st_meta(p, "step");
        char hex[32];
        snprintf(hex, sizeof hex, "%016" PRIx64, checksum_update(0, p->map + p->data_start, p->size - p->data_start));
        if (!sum || strcmp(sum, hex) != 0)
            r = calm_error("%s: checksum mismatch (file damaged)", p->path);
        else if (!st || strtol(st, NULL, 10) != step)
            r = calm_error("%s: belongs to step %s, not %ld", p->path, st ? st : "?", step);
    }
    closedir(d);
    if (r == 0 && nf != parts) r = calm_error("%s: %d part files, DONE records %ld", sdir, nf, parts);
    for (int k = 0; r == 0 && k < t->n_table; k++) {
        const ParamInfo *p = &t->table[k];
        char name[128];
        int which = -1;
        for (int i = 0; i < nf && which < 0; i++)
            if (st_find(&f[i], p->name)) which = i;
        if (which < 0) {
            r = calm_error("%s: tensor %s is in no part", sdir, p->name);
            break;
        }
        float *dst[3] = {t->params + p->offset, s->adam_m + p->offset, s->adam_v + p->offset};
        static const char *suffix[3] = {"", "#adam_m", "#adam_v"};
        for (int j = 0; r == 0 && j < 3; j++) {
            snprintf(name, sizeof name, "%s%s", p->name, suffix[j]);
            r = st_read_f32(&f[which], name, p->shape, p->ndim, dst[j]);
        }
    }
    for (int i = 0; i < nf; i++) st_close(&f[i]);
    free(f);
    return r;
}

/* Try step directory sdir on every process: 1 loaded, 0 unusable (every
 * process agrees), -1 incompatible configuration. */
static int try_step(const CkptConfig *c, const Trainable *t, TrainState *s, const char *sdir) {
    cJSON *done = read_done(sdir);
    if (!done) {
        calm_error("%s: no complete checkpoint here (%s missing or damaged)", sdir, CKPT_DONE);
        coll_max(c, 1);
        return 0;
    }
    cJSON *now = cJSON_Parse(c->config_json ? c->config_json : "{}");
    char diff[2048], hdiff[1024];
    config_diff(cJSON_GetObjectItemCaseSensitive(done, "config"), now, diff, sizeof diff);
    cJSON_Delete(now);
    now = cJSON_Parse(c->hyper_json ? c->hyper_json : "{}");
    config_diff(cJSON_GetObjectItemCaseSensitive(done, "hyper"), now, hdiff, sizeof hdiff);
    cJSON_Delete(now);
    long step = (long)cJSON_GetObjectItemCaseSensitive(done, "step")->valuedouble;
    long parts = (long)cJSON_GetObjectItemCaseSensitive(done, "parts")->valuedouble;
    cJSON_Delete(done);
    if (diff[0]) { /* every process reads the same DONE: all refuse together */
        return calm_error("%s was written by a run with another configuration (%s): use another "
                          "--checkpoint-dir, or the configuration it was written with",
                          sdir, diff);
    }
    int bad = load_step(t, s, sdir, step, parts) != 0;
    if (bad) fprintf(stderr, "calm: checkpoint unusable: %s\n", calm_last_error());
    if (coll_max(c, bad)) {
        if (!bad) calm_error("%s: damaged on another process", sdir);
        return 0;
    }
    s->step = step;
    if (hdiff[0]) calm_log("resuming %s with changed settings (%s): not an exact continuation", sdir, hdiff);
    return 1;
}

int ckpt_resume(const CkptConfig *c, const Trainable *t, TrainState *s, const char *which) {
    if (strcmp(which, "auto") != 0) {
        int r = try_step(c, t, s, which);
        return r == 1 ? 1 : r == 0 ? calm_error("--resume %s: %s", which, calm_last_error()) : -1;
    }
    if (c->is_main && calm_mkdirs(c->dir) != 0) return -1; /* a missing directory is created */
    StepDir *st;
    int n = list_steps(c->dir, &st), tried = 0;
    for (int i = 0; i < n; i++) {
        if (!st[i].complete) continue;
        char name[32];
        ckpt_step_name(st[i].step, name, sizeof name);
        char *sdir = calm_path_join(c->dir, name);
        int r = try_step(c, t, s, sdir);
        free(sdir);
        tried++;
        if (r != 0) {
            free(st);
            return r;
        }
        calm_log("checkpoint step %ld is damaged; trying an older one", st[i].step);
    }
    free(st);
    if (tried) return calm_error("%s: all %d complete checkpoints are damaged", c->dir, tried);
    return 0;
}
