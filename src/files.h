/* files.h: reading whole files, writing atomically (temp file, fsync,
 * rename), directories and paths. Errors follow common.h. */
#ifndef CALM_FILES_H
#define CALM_FILES_H

#include <stddef.h>

/* Read a whole file into a malloc'd buffer (NUL-terminated; *len excludes the NUL). */
int calm_read_file(const char *path, char **data, size_t *len);

/* Write n buffers back to back to path atomically: a temp file in the same
 * directory, fsync, rename over path, fsync the directory. On failure the old
 * file (if any) is untouched and the temp file is removed. */
int calm_write_atomic(const char *path, const void *const *bufs, const size_t *lens, int n);
/* The same, streamed: open a temp file beside path, write to it, commit
 * (fsync, rename over path, fsync the directory). A failed write or commit
 * removes the temp file itself; abort gives up on a file still open. */
typedef struct {
    int fd;
    char *path, *tmp;
} AtomicFile;
int calm_atomic_open(AtomicFile *f, const char *path);
int calm_atomic_write(AtomicFile *f, const void *buf, size_t len);
int calm_atomic_commit(AtomicFile *f);
void calm_atomic_abort(AtomicFile *f);
/* Write a cJSON document (indented, with a final newline) atomically; the
 * caller keeps and deletes root. */
struct cJSON;
int calm_write_json(const char *path, const struct cJSON *root);

/* Read and parse a JSON file; NULL after calm_error ("PATH: cannot open",
 * "PATH: not valid JSON"). The caller deletes the result. */
struct cJSON *calm_read_json(const char *path);

/* mkdir -p; 0 on success or if it exists as a directory. */
int calm_mkdirs(const char *path);

/* Join dir and name into a malloc'd string. */
char *calm_path_join(const char *dir, const char *name);

/* A float32 matrix [rows, cols], row-major, as a NumPy .npy file (format
 * 1.0, little-endian '<f4'), written atomically. */
int calm_write_npy_f32(const char *path, const float *data, long rows, long cols);

#endif
