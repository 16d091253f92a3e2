/* test_chrf.c: chrF against hand-worked examples and against the figures
 * sacreBLEU prints for the examples of the Hugging Face chrF metric card. */
#include <math.h>
#include <string.h>

#include "src/chrf.h"
#include "testutil.h"

static double score1(const char *hyp, const char *ref) {
    ChrfStats s;
    memset(&s, 0, sizeof s);
    chrf_add(&s, hyp, strlen(hyp), ref, strlen(ref));
    return chrf_score(&s);
}

#define assert_near(x, want) \
    do { \
        double x_ = (x), w_ = (want); \
        if (fabs(x_ - w_) > 1e-9 * (1.0 + fabs(w_))) fail_msg("%s = %.12f, expected %.12f", #x, x_, w_); \
    } while (0)

/* By hand:
 * - "abc" vs "abd": 1-grams 2 of 3 match, 2-grams 1 of 2, 3-grams 0 of 1;
 *   orders 4-6 have no n-grams, so the effective order is 3 and
 *   P = R = (2/3 + 1/2 + 0) / 3 = 7/18: chrF = 38.888...
 * - "ab" vs "abcd": P = (1 + 1)/2 = 1, R = (2/4 + 1/3)/2 = 5/12;
 *   F2 = 5 P R / (4 P + R) = (25/12) / (53/12) = 25/53.
 * - whitespace is removed before counting: "a b\tc" equals "abc".
 * - characters are code points, not bytes: "ñé" vs "ñe" has 1-grams 1 of 2 and
 *   2-grams 0 of 1: P = R = 1/4 (bytewise it would share the 2-byte prefix). */
static void test_hand_worked(void **state) {
    assert_near(score1("abc", "abd"), 100.0 * 7.0 / 18.0);
    assert_near(score1("ab", "abcd"), 100.0 * 25.0 / 53.0);
    assert_near(score1("a b\tc", "abc"), 100.0);
    assert_near(score1("ñé", "ñe"), 25.0);
    assert_near(score1("same words", "same words"), 100.0);
    assert_near(score1("", "abc"), 0.0);   /* no effective order */
    assert_near(score1("xyz", "abc"), 0.0); /* nothing matches */
    /* repeated n-grams match at most as often as the reference has them:
     * "aaaa" vs "aa": 1-grams min(4,2) = 2 of 4 (P) and of 2 (R); 2-grams 1 of 3
     * and of 1; 3-grams and longer only in the hypothesis. P = (1/2 + 1/3)/2 =
     * 5/12, R = (1 + 1)/2 = 1: F2 = 5 (5/12) / (4 (5/12) + 1) = 25/32. */
    assert_near(score1("aaaa", "aa"), 100.0 * 25.0 / 32.0);
    /* a byte that is not UTF-8 is one character of its own, equal only to itself */
    assert_near(score1("a\xff" "b", "a\xff" "b"), 100.0);
    assert_near(score1("\xff", "\xfe"), 0.0);
    assert_near(score1("\xc3", "\xc3\xa9"), 0.0); /* a truncated sequence is not the character */
}

/* Corpus level: statistics are summed over sentences before the score, so
 * the corpus score is not the mean of sentence scores. Figures from the
 * Hugging Face metric card for chrF (sacreBLEU 2, char_order 6, word_order
 * 0, beta 2). */
static void test_sacrebleu_examples(void **state) {
    assert_near(score1("The relationship between Obama and Netanyahu is not exactly friendly.",
                       "The ties between Obama and Netanyahu are not particularly friendly."),
                61.576379378113785);
    const char *hyp[2] = {"The relationship between cats and dogs is not exactly friendly.",
                          "a good bookshop is just a genteel black hole that knows how to read."};
    const char *ref[2] = {"The relationship between dogs and cats is not exactly friendly.",
                          "A good bookshop is just a genteel Black Hole that knows how to read."};
    ChrfStats s;
    memset(&s, 0, sizeof s);
    for (int i = 0; i < 2; i++) chrf_add(&s, hyp[i], strlen(hyp[i]), ref[i], strlen(ref[i]));
    assert_near(chrf_score(&s), 84.64214891738334);
    double mean = (score1(hyp[0], ref[0]) + score1(hyp[1], ref[1])) / 2;
    assert_true(fabs(mean - chrf_score(&s)) > 1e-6);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_worked),
        cmocka_unit_test(test_sacrebleu_examples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
