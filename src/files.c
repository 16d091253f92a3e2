/* files.c: reading and atomic writing (files.h). */
#define _GNU_SOURCE
#include "src/files.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/common.h"

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

int calm_atomic_open(AtomicFile *f, const char *path) {
    size_t plen = strlen(path);
    f->path = xstrdup(path);
    f->tmp = xmalloc(plen + 32);
    snprintf(f->tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (f->fd >= 0) return 0;
    int r = calm_error("%s: cannot create temp file %s: %s", path, f->tmp, strerror(errno));
    free(f->path);
    free(f->tmp);
    f->path = f->tmp = NULL;
    return r;
}

void calm_atomic_abort(AtomicFile *f) {
    if (f->fd >= 0) close(f->fd);
    if (f->tmp) unlink(f->tmp);
    free(f->tmp);
    free(f->path);
    f->fd = -1;
    f->tmp = f->path = NULL;
}

int calm_atomic_write(AtomicFile *f, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(f->fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int r = calm_error("%s: write failed: %s", f->path, strerror(errno));
            calm_atomic_abort(f);
            return r;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int calm_atomic_commit(AtomicFile *f) {
    int fd = f->fd;
    f->fd = -1;
    if (fsync(fd) != 0 || close(fd) != 0) {
        int r = calm_error("%s: fsync/close failed: %s", f->path, strerror(errno));
        calm_atomic_abort(f);
        return r;
    }
    if (rename(f->tmp, f->path) != 0) {
        int r = calm_error("%s: rename from %s failed: %s", f->path, f->tmp, strerror(errno));
        calm_atomic_abort(f);
        return r;
    }
    fsync_dir_of(f->path);
    free(f->tmp);
    free(f->path);
    f->tmp = f->path = NULL;
    return 0;
}

int calm_write_atomic(const char *path, const void *const *bufs, const size_t *lens, int n) {
    AtomicFile f;
    if (calm_atomic_open(&f, path) != 0) return -1;
    for (int i = 0; i < n; i++)
        if (calm_atomic_write(&f, bufs[i], lens[i]) != 0) return -1;
    return calm_atomic_commit(&f);
}

cJSON *calm_read_json(const char *path) {
    char *text;
    size_t len;
    if (calm_read_file(path, &text, &len) != 0) return NULL;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root) calm_error("%s: not valid JSON", path);
    return root;
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

int calm_write_npy_f32(const char *path, const float *data, long rows, long cols) {
    /* magic, version 1.0, header length, then a Python dict literal padded
     * with spaces and ended by a newline so the data starts 64-aligned */
    char head[128];
    int n = snprintf(head + 10, sizeof head - 10, "{'descr': '<f4', 'fortran_order': False, 'shape': (%ld, %ld), }",
                     rows, cols);
    int total = (10 + n + 1 + 63) / 64 * 64;
    memset(head + 10 + n, ' ', (size_t)(total - 10 - n));
    head[total - 1] = '\n';
    memcpy(head, "\x93NUMPY\x01\x00", 8);
    head[8] = (char)((total - 10) & 0xff);
    head[9] = (char)((total - 10) >> 8);
    const void *bufs[2] = {head, data};
    size_t lens[2] = {(size_t)total, (size_t)rows * (size_t)cols * sizeof(float)};
    return calm_write_atomic(path, bufs, lens, 2);
}
