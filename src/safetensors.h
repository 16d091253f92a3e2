/* safetensors.h: read and write the safetensors format (Hugging Face).
 *
 * Layout: 8-byte little-endian header length N, N bytes of JSON header
 *   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"key": "value", ...}}
 * then the data; offsets are relative to the end of the header.
 * st_open validates everything before anyone reads a tensor: header length
 * within the file, JSON well formed, known dtypes, offsets inside the data
 * area, byte counts that match shape x dtype size. */
#ifndef CALM_SAFETENSORS_H
#define CALM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "src/files.h"

#define ST_MAX_DIMS 8

typedef enum { ST_F32 = 0, ST_F16, ST_BF16, ST_F64, ST_I32, ST_I64, ST_U8, ST_I8, ST_BOOL } StDtype;

typedef struct {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t begin, end; /* byte offsets into the data area */
} StTensor;

typedef struct {
    char *path;
    uint8_t *map; /* whole file, mmap'd read-only */
    size_t size;
    size_t data_start; /* 8 + header length */
    StTensor *tensors;
    int n_tensors;
    char **meta_keys, **meta_values; /* __metadata__ */
    int n_meta;
} StFile;

int st_open(StFile *f, const char *path);
void st_close(StFile *f);
const StTensor *st_find(const StFile *f, const char *name);
const char *st_meta(const StFile *f, const char *key); /* NULL if absent */
const char *st_dtype_name(StDtype d);
size_t st_dtype_size(StDtype d);

/* 0 if tensor `name` exists with exactly shape[0..ndim), else -1 after an
 * error naming the file and tensor. */
int st_check_shape(const StFile *f, const char *name, const int64_t *shape, int ndim);
/* Read tensor `name` into out as float32, converting F16/BF16/F64. Fails with
 * a message naming the file and tensor if it is missing, or if its shape is not
 * exactly shape[0..ndim). */
int st_read_f32(const StFile *f, const char *name, const int64_t *shape, int ndim, float *out);

typedef struct {
    const char *name;
    const float *data;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
} StWriteTensor;

/* Write tensors as F32 (with optional __metadata__ key/value pairs) to path,
 * atomically (temp file, fsync, rename). Tensors are stored in the given
 * order, 64-byte aligned header. */
int st_write_f32(const char *path, const StWriteTensor *tensors, int n, const char *const *meta_keys,
                 const char *const *meta_values, int n_meta);

/* A file written tensor by tensor, never holding more than the caller's
 * chunk: the header is written from the specs, then each tensor's bytes in
 * the given order (any number of st_stream_write calls), then
 * st_stream_close checks that every announced byte came and commits the
 * file atomically. On any failure the temp file is gone and nothing was
 * written at path. */
typedef struct {
    const char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
} StSpec;

typedef struct {
    AtomicFile file;
    uint64_t left; /* data bytes still announced */
} StStream;

int st_stream_open(StStream *s, const char *path, const StSpec *specs, int n, const char *const *meta_keys,
                   const char *const *meta_values, int n_meta);
int st_stream_write(StStream *s, const void *data, size_t bytes);
int st_stream_close(StStream *s);
void st_stream_abort(StStream *s); /* give up on an open stream */

#endif
