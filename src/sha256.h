/* sha256.h: SHA-256 (FIPS 180-4) of a file, for checksums of models,
 * checkpoints and data (sha256.c). */
#ifndef CALM_SHA256_H
#define CALM_SHA256_H

/* SHA-256 of a file as 64 lowercase hex digits plus NUL. */
int calm_sha256_file(const char *path, char out_hex[65]);
/* SHA-256 of the files' contents one after the other. */
int calm_sha256_files(const char *const *paths, int n, char out_hex[65]);

#endif
