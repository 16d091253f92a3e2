/* common.h: errors, checked allocation, logging and timing, which every
 * file of calm uses. The rest of what used to live here has its own header:
 * rng.h (random numbers), files.h (reading and atomic writing), sha256.h.
 *
 * Error convention (as in SQLite): a library function that can fail on bad
 * input returns 0 on success and -1 on failure, after recording a message with
 * calm_error(). The message names the file and what is wrong; the CLI prints
 * calm_last_error() and exits non-zero. Running out of memory is not bad input:
 * xmalloc() dies with file:line and a hint.
 */
#ifndef CALM_COMMON_H
#define CALM_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#if defined(__GNUC__)
#define CALM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define CALM_NORETURN __attribute__((noreturn))
#else
#define CALM_PRINTF(a, b)
#define CALM_NORETURN
#endif

/* Record an error message (printf-style); always returns -1 so that
 * `return calm_error(...)` reads naturally. The message is per thread. */
int calm_error(const char *fmt, ...) CALM_PRINTF(1, 2);
const char *calm_last_error(void);

/* Print "calm: error at file:line: message" and a HINT line, then exit(1). */
CALM_NORETURN void calm_die(const char *file, int line, const char *hint, const char *fmt, ...)
    CALM_PRINTF(4, 5);
#define calm_fatal(hint, ...) calm_die(__FILE__, __LINE__, hint, __VA_ARGS__)

void *calm_xmalloc(size_t n, const char *file, int line);
void *calm_xcalloc(size_t n, size_t size, const char *file, int line);
void *calm_xrealloc(void *p, size_t n, const char *file, int line);
char *calm_xstrdup(const char *s, const char *file, int line);
#define xmalloc(n) calm_xmalloc((n), __FILE__, __LINE__)
#define xcalloc(n, s) calm_xcalloc((n), (s), __FILE__, __LINE__)
#define xrealloc(p, n) calm_xrealloc((p), (n), __FILE__, __LINE__)
#define xstrdup(s) calm_xstrdup((s), __FILE__, __LINE__)
/* 64-byte aligned, zeroed; free with free(). */
float *calm_alloc_floats(size_t n, const char *file, int line);
#define xalloc_floats(n) calm_alloc_floats((n), __FILE__, __LINE__)

/* Zeroed floats straight from the kernel (anonymous mmap, page-aligned):
 * a page costs memory only once written, so a process that uses a part of a
 * large vector (a pipeline rank's share of the composition, its optimizer
 * state) pays for that part. Free with calm_unmap_floats(p, n). */
float *calm_map_floats(size_t n, const char *file, int line);
#define xmap_floats(n) calm_map_floats((n), __FILE__, __LINE__)
void calm_unmap_floats(float *p, size_t n);

/* Informational log line on stderr ("calm: ..."), suppressed by calm_quiet. */
extern int calm_quiet;
void calm_log(const char *fmt, ...) CALM_PRINTF(1, 2);

/* Monotonic wall-clock seconds. */
double calm_now(void);

#endif
