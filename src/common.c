#define _GNU_SOURCE
#include "common.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static _Thread_local char last_error[1024];
int calm_quiet = 0;

int calm_error(const char *fmt, ...) {
    char buf[sizeof last_error]; /* an argument may be calm_last_error() itself */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    memcpy(last_error, buf, sizeof buf);
    return -1;
}

const char *calm_last_error(void) { return last_error[0] ? last_error : "unknown error"; }

void calm_die(const char *file, int line, const char *hint, const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "calm: error at %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (hint) fprintf(stderr, "HINT: %s\n", hint);
    exit(1);
}

void *calm_xmalloc(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) calm_die(file, line, "reduce batch size, sequence length or model size", "out of memory allocating %zu bytes", n);
    return p;
}

void *calm_xcalloc(size_t n, size_t size, const char *file, int line) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) calm_die(file, line, "reduce batch size, sequence length or model size", "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *calm_xrealloc(void *p, size_t n, const char *file, int line) {
    void *q = realloc(p, n ? n : 1);
    if (!q) calm_die(file, line, "reduce batch size, sequence length or model size", "out of memory reallocating %zu bytes", n);
    return q;
}

char *calm_xstrdup(const char *s, const char *file, int line) {
    size_t n = strlen(s) + 1;
    char *p = calm_xmalloc(n, file, line);
    memcpy(p, s, n);
    return p;
}

float *calm_alloc_floats(size_t n, const char *file, int line) {
    void *p = NULL;
    size_t bytes = (n ? n : 1) * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, bytes) != 0)
        calm_die(file, line, "reduce batch size, sequence length or model size", "out of memory allocating %zu floats", n);
    memset(p, 0, bytes);
    return p;
}

void calm_log(const char *fmt, ...) {
    if (calm_quiet) return;
    va_list ap;
    fputs("calm: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

double calm_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

uint64_t calm_hash64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void rng_seed(Rng *r, uint64_t seed, uint64_t stream) { r->state = calm_hash64(seed ^ calm_hash64(stream + 1)); }

uint64_t rng_u64(Rng *r) {
    r->state += 0x9e3779b97f4a7c15ULL;
    return calm_hash64(r->state);
}

float rng_uniform(Rng *r) { return (float)(rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

float rng_normal(Rng *r) {
    /* Box-Muller; u1 in (0, 1] so log is finite. */
    float u1 = ((float)(rng_u64(r) >> 40) + 1.0f) * (1.0f / 16777216.0f);
    float u2 = rng_uniform(r);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}

int calm_read_file(const char *path, char **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return calm_error("%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = xrealloc(buf, cap *= 2);
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return calm_error("%s: read error", path);
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}

static int fsync_dir_of(const char *path) {
    char *copy = xstrdup(path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    if (fd < 0) return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

int calm_write_atomic(const char *path, const void *const *bufs, const size_t *lens, int n) {
    size_t plen = strlen(path);
    char *tmp = xmalloc(plen + 32);
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        int r = calm_error("%s: cannot create temp file %s: %s", path, tmp, strerror(errno));
        free(tmp);
        return r;
    }
    for (int i = 0; i < n; i++) {
        const char *p = bufs[i];
        size_t left = lens[i];
        while (left > 0) {
            ssize_t w = write(fd, p, left);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                int e = errno;
                close(fd);
                unlink(tmp);
                free(tmp);
                return calm_error("%s: write failed: %s", path, strerror(e));
            }
            p += w;
            left -= (size_t)w;
        }
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        free(tmp);
        return calm_error("%s: fsync/close failed: %s", path, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        calm_error("%s: rename from %s failed: %s", path, tmp, strerror(e));
        free(tmp);
        return -1;
    }
    free(tmp);
    fsync_dir_of(path);
    return 0;
}

int calm_mkdirs(const char *path) {
    char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            *s = '/';
            int r = calm_error("%s: cannot create directory: %s", p, strerror(e));
            free(p);
            return r;
        }
        *s = '/';
    }
    int r = 0;
    if (mkdir(p, 0755) != 0 && errno != EEXIST) r = calm_error("%s: cannot create directory: %s", p, strerror(errno));
    struct stat st;
    if (r == 0 && (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))) r = calm_error("%s: exists and is not a directory", p);
    free(p);
    return r;
}

char *calm_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *s = xmalloc(a + b + 2);
    memcpy(s, dir, a);
    size_t k = a;
    if (a > 0 && dir[a - 1] != '/') s[k++] = '/';
    memcpy(s + k, name, b + 1);
    return s;
}

int calm_write_json(const char *path, const cJSON *root) {
    char *text = cJSON_Print(root);
    if (!text) calm_fatal("free memory", "out of memory printing %s", path);
    const void *bufs[2] = {text, "\n"};
    size_t lens[2] = {strlen(text), 1};
    int r = calm_write_atomic(path, bufs, lens, 2);
    cJSON_free(text);
    return r;
}
