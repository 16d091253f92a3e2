/* chrf.h: chrF, the character n-gram F-score of a translation against its
 * reference (Popović 2015, "chrF: character n-gram F-score for automatic MT
 * evaluation"), as computed by sacreBLEU 1.x:
 *   - characters are Unicode code points of the UTF-8 text, with every
 *     whitespace character removed first;
 *   - for n = 1..6, the n-gram counts of hypothesis and reference, and the
 *     matches (the sum over n-grams of the smaller of the two counts), are
 *     summed over all sentences of the corpus;
 *   - precision P_n = matches / hypothesis n-grams and recall R_n = matches /
 *     reference n-grams are averaged over the orders n at which both sides
 *     have n-grams (the effective order);
 *   - chrF_beta = (1 + beta^2) P R / (beta^2 P + R), on a 0-100 scale, beta = 2
 *     (recall weighs twice as much as precision).
 * A sentence-level score is the same over a corpus of one sentence. */
#ifndef CALM_CHRF_H
#define CALM_CHRF_H

#include <stddef.h>

#define CHRF_ORDER 6
#define CHRF_BETA 2.0

typedef struct {
    double hyp[CHRF_ORDER], ref[CHRF_ORDER], match[CHRF_ORDER];
} ChrfStats;

/* Add one sentence pair (UTF-8; invalid bytes count as one character each). */
void chrf_add(ChrfStats *s, const char *hyp, size_t hyp_len, const char *ref, size_t ref_len);
/* The score of everything added, 0..100 (0 when no order is effective). */
double chrf_score(const ChrfStats *s);

#endif
