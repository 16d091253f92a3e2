/* safetensors.c: reader (mmap + full validation up front) and F32 writer.
 *
 * The reader trusts nothing in the file: every size and offset in the header
 * is checked against the file size before st_open returns, so st_read_f32 can
 * index the mapping without further bounds checks. All reads of tensor data go
 * through memcpy, because a foreign writer need not align tensors. */
#define _GNU_SOURCE
#include "src/files.h"
#include "src/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/common.h"
#include "src/wmat.h"

/* The format is little-endian and the data is copied to and from host floats
 * with memcpy; a big-endian port would need byte swaps in both directions. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

/* Integers in the header arrive as JSON numbers (doubles in cJSON); above
 * 2^53 they are no longer exact, and no real file comes near that. */
#define ST_MAX_JSON_INT 9007199254740992.0

/* Header size limit, as in the reference implementation (100 MB): a larger
 * value is far more likely a corrupt length than a real header. */
#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

static const char *const dtype_names[] = {"F32", "F16", "BF16", "F64", "I32", "I64", "U8", "I8", "BOOL"};
static const size_t dtype_sizes[] = {4, 2, 2, 8, 4, 8, 1, 1, 1};
#define ST_N_DTYPES ((int)(sizeof dtype_names / sizeof dtype_names[0]))

const char *st_dtype_name(StDtype d) { return (int)d >= 0 && (int)d < ST_N_DTYPES ? dtype_names[d] : "?"; }

size_t st_dtype_size(StDtype d) { return (int)d >= 0 && (int)d < ST_N_DTYPES ? dtype_sizes[d] : 0; }

static int dtype_from_name(const char *s, StDtype *out) {
    for (int i = 0; i < ST_N_DTYPES; i++) {
        if (strcmp(s, dtype_names[i]) == 0) {
            *out = (StDtype)i;
            return 0;
        }
    }
    return -1;
}

/* "[64, 32]" into buf (for error messages). */
static const char *shape_str(char *buf, size_t cap, const int64_t *shape, int ndim) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, cap - k, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
    return buf;
}

/* ---- reading ---- */

/* A JSON number that is a whole number in [0, 2^53]. */
static int json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= ST_MAX_JSON_INT) || d != (double)(uint64_t)d) return -1;
    *out = (uint64_t)d;
    return 0;
}

static int parse_metadata(StFile *f, const cJSON *meta) {
    if (cJSON_IsNull(meta)) return 0;
    if (!cJSON_IsObject(meta)) return calm_error("%s: __metadata__ is not a JSON object", f->path);
    int n = cJSON_GetArraySize(meta);
    f->meta_keys = xcalloc((size_t)n + 1, sizeof(char *));
    f->meta_values = xcalloc((size_t)n + 1, sizeof(char *));
    for (const cJSON *kv = meta->child; kv; kv = kv->next) {
        if (!cJSON_IsString(kv))
            return calm_error("%s: __metadata__ value for key %s is not a string", f->path, kv->string);
        f->meta_keys[f->n_meta] = xstrdup(kv->string);
        f->meta_values[f->n_meta] = xstrdup(kv->valuestring);
        f->n_meta++;
    }
    return 0;
}

/* Fill t from one header entry and check it against the data area. */
static int parse_tensor(const StFile *f, const cJSON *e, StTensor *t) {
    const char *name = e->string;
    if (!cJSON_IsObject(e)) return calm_error("%s: tensor %s: header entry is not a JSON object", f->path, name);

    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (!cJSON_IsString(jd)) return calm_error("%s: tensor %s: dtype missing or not a string", f->path, name);
    if (dtype_from_name(jd->valuestring, &t->dtype) != 0)
        return calm_error("%s: tensor %s: unknown dtype \"%s\"", f->path, name, jd->valuestring);

    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (!cJSON_IsArray(js)) return calm_error("%s: tensor %s: shape missing or not an array", f->path, name);
    int ndim = cJSON_GetArraySize(js);
    if (ndim > ST_MAX_DIMS)
        return calm_error("%s: tensor %s: %d dimensions, at most %d supported", f->path, name, ndim, ST_MAX_DIMS);
    t->ndim = 0;
    uint64_t numel = 1;
    for (const cJSON *d = js->child; d; d = d->next) {
        uint64_t v;
        if (json_uint(d, &v) != 0)
            return calm_error("%s: tensor %s: shape entries must be non-negative integers", f->path, name);
        if (__builtin_mul_overflow(numel, v, &numel))
            return calm_error("%s: tensor %s: shape is too large", f->path, name);
        t->shape[t->ndim++] = (int64_t)v;
    }
    uint64_t bytes;
    if (__builtin_mul_overflow(numel, (uint64_t)st_dtype_size(t->dtype), &bytes))
        return calm_error("%s: tensor %s: shape is too large", f->path, name);

    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 || json_uint(jo->child, &t->begin) != 0 ||
        json_uint(jo->child->next, &t->end) != 0)
        return calm_error("%s: tensor %s: data_offsets must be [begin, end] with non-negative integers", f->path,
                          name);
    uint64_t data_size = f->size - f->data_start;
    if (t->begin > t->end)
        return calm_error("%s: tensor %s: data_offsets [%" PRIu64 ", %" PRIu64 "] end before they begin", f->path,
                          name, t->begin, t->end);
    if (t->end > data_size)
        return calm_error("%s: tensor %s: data_offsets [%" PRIu64 ", %" PRIu64 "] past end of data (%" PRIu64
                          " bytes; file truncated?)",
                          f->path, name, t->begin, t->end, data_size);
    if (t->end - t->begin != bytes) {
        char sb[200];
        return calm_error("%s: tensor %s: data_offsets span %" PRIu64 " bytes but shape %s x %s needs %" PRIu64,
                          f->path, name, t->end - t->begin, shape_str(sb, sizeof sb, t->shape, t->ndim),
                          dtype_names[t->dtype], bytes);
    }
    t->name = xstrdup(name);
    return 0;
}

static int cmp_name_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* cJSON keeps duplicate keys; a file that names a tensor twice is ambiguous. */
static int check_unique_names(const StFile *f) {
    if (f->n_tensors < 2) return 0;
    const char **names = xmalloc((size_t)f->n_tensors * sizeof *names);
    for (int i = 0; i < f->n_tensors; i++) names[i] = f->tensors[i].name;
    qsort(names, (size_t)f->n_tensors, sizeof *names, cmp_name_ptr);
    int r = 0;
    for (int i = 1; i < f->n_tensors && r == 0; i++)
        if (strcmp(names[i - 1], names[i]) == 0) r = calm_error("%s: tensor %s appears twice", f->path, names[i]);
    free(names);
    return r;
}

static int parse_header(StFile *f, const char *json, size_t len) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        /* on failure cJSON points end at the offending byte */
        size_t at = end ? (size_t)(end - json) : 0;
        return calm_error("%s: bad header JSON (error near byte %zu of %zu)", f->path, at, len);
    }
    int r = 0;
    /* The spec allows the header to be padded with spaces; anything else
     * after the object means the length or the JSON is wrong. */
    for (const char *p = end; p < json + len && r == 0; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            r = calm_error("%s: bad header JSON (trailing bytes after the object at byte %zu)", f->path,
                           (size_t)(p - json));
    if (r == 0 && !cJSON_IsObject(root)) r = calm_error("%s: bad header JSON (not an object)", f->path);
    if (r == 0) {
        f->tensors = xcalloc((size_t)cJSON_GetArraySize(root) + 1, sizeof(StTensor));
        for (const cJSON *e = root->child; e && r == 0; e = e->next) {
            if (strcmp(e->string, "__metadata__") == 0) {
                if (f->meta_keys) r = calm_error("%s: __metadata__ appears twice", f->path);
                else r = parse_metadata(f, e);
            } else {
                r = parse_tensor(f, e, &f->tensors[f->n_tensors]);
                if (r == 0) f->n_tensors++;
            }
        }
    }
    if (r == 0) r = check_unique_names(f);
    cJSON_Delete(root);
    return r;
}

/* Map the whole file read-only into f->map / f->size. */
static int map_file(StFile *f) {
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return calm_error("%s: cannot open: %s", f->path, strerror(errno));
    struct stat sb;
    int r = 0;
    if (fstat(fd, &sb) != 0) r = calm_error("%s: cannot stat: %s", f->path, strerror(errno));
    else if (!S_ISREG(sb.st_mode)) r = calm_error("%s: not a regular file", f->path);
    else if (sb.st_size < 8)
        r = calm_error("%s: file too small to be safetensors (%lld bytes, need at least 8)", f->path,
                       (long long)sb.st_size);
    if (r == 0) {
        void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            r = calm_error("%s: mmap failed: %s", f->path, strerror(errno));
        } else {
            f->map = map;
            f->size = (size_t)sb.st_size;
        }
    }
    /* The mapping keeps the inode alive; writers replace files by rename
     * (calm_write_atomic), so a reader never sees one shrink under it. */
    close(fd);
    return r;
}

int st_open(StFile *f, const char *path) {
    memset(f, 0, sizeof *f);
    f->path = xstrdup(path);
    if (map_file(f) != 0) goto fail;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | f->map[i];
    if (n > f->size - 8) {
        calm_error("%s: header length %" PRIu64 " past end of file (size %zu)", path, n, f->size);
        goto fail;
    }
    if (n > ST_MAX_HEADER) {
        calm_error("%s: header length %" PRIu64 " exceeds the %" PRIu64 "-byte limit", path, n, ST_MAX_HEADER);
        goto fail;
    }
    f->data_start = 8 + (size_t)n;
    if (parse_header(f, (const char *)f->map + 8, (size_t)n) != 0) goto fail;
    return 0;
fail:
    st_close(f);
    return -1;
}

void st_close(StFile *f) {
    if (f->map) munmap(f->map, f->size);
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    /* parse_metadata may stop half way: free up to the first NULL. */
    for (int i = 0; f->meta_keys && f->meta_keys[i]; i++) free(f->meta_keys[i]);
    for (int i = 0; f->meta_values && f->meta_values[i]; i++) free(f->meta_values[i]);
    free(f->meta_keys);
    free(f->meta_values);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const StTensor *st_find(const StFile *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *st_meta(const StFile *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

int st_check_shape(const StFile *f, const char *name, const int64_t *shape, int ndim) {
    const StTensor *t = st_find(f, name);
    if (!t) return calm_error("%s: tensor %s not found", f->path, name);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char have[200], want[200];
        return calm_error("%s: tensor %s has shape %s, expected %s", f->path, name,
                          shape_str(have, sizeof have, t->shape, t->ndim), shape_str(want, sizeof want, shape, ndim));
    }
    return 0;
}

int st_read_f32(const StFile *f, const char *name, const int64_t *shape, int ndim, float *out) {
    if (st_check_shape(f, name, shape, ndim) != 0) return -1;
    const StTensor *t = st_find(f, name);
    const uint8_t *src = f->map + f->data_start + t->begin;
    size_t n = (size_t)((t->end - t->begin) / st_dtype_size(t->dtype));
    switch (t->dtype) {
    case ST_F32:
        memcpy(out, src, n * sizeof(float));
        return 0;
    case ST_F16:
    case ST_BF16: {
        /* through an aligned bounce buffer: the mapping may not be */
        uint16_t buf[4096];
        for (size_t i = 0; i < n; i += 4096) {
            size_t k = n - i < 4096 ? n - i : 4096;
            memcpy(buf, src + 2 * i, 2 * k);
            wm_to_f32(out + i, buf, t->dtype == ST_F16 ? WM_F16 : WM_BF16, k);
        }
        return 0;
    }
    case ST_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            out[i] = (float)d;
        }
        return 0;
    default:
        return calm_error("%s: tensor %s has integer dtype %s; only F32, F16, BF16 and F64 can be read as float",
                          f->path, name, st_dtype_name(t->dtype));
    }
}

/* ---- writing ---- */

static cJSON *json_uint_raw(uint64_t v) {
    /* Raw text rather than a cJSON number: cJSON prints large doubles in
     * exponent form, which strict readers (serde u64) reject. */
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return cJSON_CreateRaw(buf);
}

/* bytes[i]: data size of specs[i]; names unique and usable. */
static int check_specs(const char *path, const StSpec *ts, int n, uint64_t *bytes) {
    for (int i = 0; i < n; i++) {
        const StSpec *t = &ts[i];
        if (!t->name || !*t->name || strcmp(t->name, "__metadata__") == 0)
            return calm_error("%s: tensor %d has an empty or reserved name", path, i);
        if (t->ndim < 0 || t->ndim > ST_MAX_DIMS)
            return calm_error("%s: tensor %s: %d dimensions, at most %d supported", path, t->name, t->ndim,
                              ST_MAX_DIMS);
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0) return calm_error("%s: tensor %s: negative dimension", path, t->name);
            if (__builtin_mul_overflow(numel, (uint64_t)t->shape[d], &numel) || numel > SIZE_MAX / 8)
                return calm_error("%s: tensor %s: shape is too large", path, t->name);
        }
        bytes[i] = numel * st_dtype_size(t->dtype);
        for (int j = 0; j < i; j++)
            if (strcmp(ts[j].name, t->name) == 0) return calm_error("%s: tensor %s given twice", path, t->name);
    }
    return 0;
}

/* The JSON header, unpadded; NULL only if cJSON runs out of memory. */
static char *build_header(const StSpec *ts, const uint64_t *bytes, int n, const char *const *meta_keys,
                          const char *const *meta_values, int n_meta) {
    cJSON *root = cJSON_CreateObject();
    if (n_meta > 0) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; i < n_meta; i++) cJSON_AddStringToObject(meta, meta_keys[i], meta_values[i]);
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(root, ts[i].name);
        cJSON_AddStringToObject(e, "dtype", st_dtype_name(ts[i].dtype));
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < ts[i].ndim; d++) cJSON_AddItemToArray(shape, json_uint_raw((uint64_t)ts[i].shape[d]));
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(offs, json_uint_raw(off));
        cJSON_AddItemToArray(offs, json_uint_raw(off + bytes[i]));
        off += bytes[i];
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

int st_stream_open(StStream *s, const char *path, const StSpec *specs, int n, const char *const *meta_keys,
                   const char *const *meta_values, int n_meta) {
    memset(s, 0, sizeof *s);
    s->file.fd = -1; /* nothing to close if we return before the file exists */
    for (int i = 0; i < n_meta; i++)
        if (!meta_keys[i] || !meta_values[i]) return calm_error("%s: metadata entry %d is NULL", path, i);
    uint64_t *bytes = xcalloc((size_t)n + 1, sizeof *bytes);
    if (check_specs(path, specs, n, bytes) != 0) {
        free(bytes);
        return -1;
    }
    for (int i = 0; i < n; i++) s->left += bytes[i];
    char *json = build_header(specs, bytes, n, meta_keys, meta_values, n_meta);
    free(bytes);
    if (!json) calm_fatal("free memory", "out of memory building the safetensors header for %s", path);

    /* Pad with spaces so the data area starts 64-byte aligned: tensors can
     * then be used in place from a mapping (a frozen model does), and
     * offsets stay aligned as long as tensors are whole 64-byte multiples
     * or of one dtype. */
    size_t len = strlen(json);
    size_t padded = len + (64 - (8 + len) % 64) % 64;
    char *header = xmalloc(padded);
    memcpy(header, json, len);
    memset(header + len, ' ', padded - len);
    cJSON_free(json);
    uint8_t lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    int r = calm_atomic_open(&s->file, path);
    if (r == 0) r = calm_atomic_write(&s->file, lenbuf, sizeof lenbuf);
    if (r == 0) r = calm_atomic_write(&s->file, header, padded);
    free(header);
    return r;
}

int st_stream_write(StStream *s, const void *data, size_t bytes) {
    if (bytes > s->left) {
        int r = calm_error("%s: %zu bytes more than the header announces", s->file.path, bytes - (size_t)s->left);
        calm_atomic_abort(&s->file);
        return r;
    }
    s->left -= bytes;
    return calm_atomic_write(&s->file, data, bytes);
}

int st_stream_close(StStream *s) {
    if (s->left) {
        int r = calm_error("%s: %llu bytes of tensor data missing", s->file.path, (unsigned long long)s->left);
        calm_atomic_abort(&s->file);
        return r;
    }
    return calm_atomic_commit(&s->file);
}

void st_stream_abort(StStream *s) { calm_atomic_abort(&s->file); }

int st_write_f32(const char *path, const StWriteTensor *tensors, int n, const char *const *meta_keys,
                 const char *const *meta_values, int n_meta) {
    StSpec *specs = xcalloc((size_t)n + 1, sizeof *specs);
    for (int i = 0; i < n; i++) {
        specs[i] = (StSpec){tensors[i].name, ST_F32, tensors[i].ndim, {0}};
        memcpy(specs[i].shape, tensors[i].shape, sizeof specs[i].shape);
    }
    StStream s;
    int r = st_stream_open(&s, path, specs, n, meta_keys, meta_values, n_meta);
    /* The data goes straight from the caller's memory to the file, never
     * through a copy the size of the model. */
    for (int i = 0; r == 0 && i < n; i++) {
        size_t numel = 1;
        for (int d = 0; d < tensors[i].ndim; d++) numel *= (size_t)tensors[i].shape[d];
        if (numel > 0 && !tensors[i].data) {
            r = calm_error("%s: tensor %s: no data", path, tensors[i].name);
            st_stream_abort(&s);
        } else {
            r = st_stream_write(&s, tensors[i].data, numel * sizeof(float));
        }
    }
    if (r == 0) r = st_stream_close(&s);
    free(specs);
    return r;
}
