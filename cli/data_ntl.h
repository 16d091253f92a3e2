/* data_ntl.h: what the two halves of `calm data ntl` share: data_ntl.c reads
 * the packages and splits every language, ntl_write.c writes the stores and
 * the evaluation files. Private to cli/. */
#ifndef CALM_CLI_DATA_NTL_H
#define CALM_CLI_DATA_NTL_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "src/corpus.h"

/* quran-json's languages and their UDHR codes; English, the target of every
 * translation pair, first. */
typedef struct {
    const char *quran, *udhr;
} QuranLang;
#define N_QURAN 11
#define QURAN_EN 0
extern const QuranLang quran_langs[N_QURAN];
#define PAIR_SEP "\n=> "

typedef struct {
    char **doc;
    int n, cap;
    size_t bytes;
} Docs;

void docs_add(Docs *d, const char *text);
void docs_free(Docs *d);

typedef struct {
    UdhrDecl decl;
    int quran;     /* index into quran_langs, -1: none */
    int high, dc_unseen;
    const char *script;
    Docs train, held;
} Lang;

typedef struct {
    const char *out, *udhr, *quran, *high;
    int every, first_held, seq_len, translate, bpb_verses, max_pair, n_langs, n_verses;
    float dc_fraction, dc_high, dc_pairs, dc_unseen;
    long seed;
    /* state */
    Lang *lang;
    int n;
    Verses verses[N_QURAN];
    uint64_t *held_set; /* hashes of every held-out text (open addressing, 0 = empty) */
    size_t held_cap;
    long dropped;
} Ntl;

/* FNV-1a 64 of a text, finalised; never 0. */
uint64_t text_hash(const char *s);
/* The text is held out (its hash is in the held-out set). */
int held_contains(const Ntl *x, const char *text);
/* Verse i (0-based) is held out. */
int verse_held(const Ntl *x, int i);

/* The three stores under DIR/stores; the evaluation files and languages.json
 * in DIR. Both record what they wrote in manifest. */
int ntl_stores(Ntl *x, const char *dir, const char *cmdline, cJSON *manifest);
int ntl_write(Ntl *x, const char *dir, cJSON *manifest);

#endif
