/* vec.h — rows of floats: scaling to unit length, halves to floats.
 *
 * Two roundings of the same operation, both kept because files and runs depend on them bit
 * for bit.  Each sums squares in double; they differ in the last step:
 *   l2_normalize_rows        x *= (float)(1 / sqrt(s))   two roundings, a multiply per element;
 *   l2_normalize_rows_exact  x = (float)(x / sqrt(s))     one rounding (the nearest float).
 * They agree to 1 ulp and differ in roughly 30% of the elements (tests/c/test_vec.c).  For the method that is
 * noise far below anything measured; it matters only for reproducibility: every stored
 * feature (l2-encode-images, l2-encode-text, l2-cat --normalize, the index, pseudo features)
 * was normalised with the first, and the generators' conditions (method/train_data, l2-sample,
 * l2-train-gan's CLIP-feature FD) with the second, so a resumed run, a sample or a rebuilt
 * file gives the same bytes as before. */
#ifndef L2_VEC_H
#define L2_VEC_H

#include <stddef.h>
#include <stdint.h>

/* Scale each row of x (n, d) to unit L2 norm (rows of norm 0 stay 0). */
void l2_normalize_rows(float *x, size_t n, size_t d);
/* The same, each element rounded once from the exact quotient. */
void l2_normalize_rows_exact(float *x, size_t n, size_t d);

/* n IEEE halves to floats (the values of l2_half_to_float; F16C when compiled for it). */
void l2_half_to_float_row(const uint16_t *h, float *f, size_t n);

#endif
