#define _GNU_SOURCE
#include "src/common.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

float *calm_map_floats(size_t n, const char *file, int line) {
    size_t bytes = (n ? n : 1) * sizeof(float);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        calm_die(file, line, "reduce the model or composition size", "out of memory mapping %zu floats", n);
    return p;
}

void calm_unmap_floats(float *p, size_t n) {
    if (p) munmap(p, (n ? n : 1) * sizeof(float));
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
