/* vec.c — unit-length rows (see vec.h for why there are two roundings). */
#include "core/vec.h"
#include "core/util.h"

#include <math.h>
#if defined(__F16C__)
#include <immintrin.h>
#endif

void l2_half_to_float_row(const uint16_t *h, float *f, size_t n)
{
	size_t j = 0;
#ifdef __F16C__
	for (; j + 8 <= n; j += 8) _mm256_storeu_ps(f + j, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + j))));
#endif
	for (; j < n; j++) f[j] = l2_half_to_float(h[j]);
}

void l2_normalize_rows(float *x, size_t n, size_t d)
{
	for (size_t i = 0; i < n; i++) {
		float *r = x + i * d;
		double s = 0;
		for (size_t j = 0; j < d; j++) s += (double)r[j] * r[j];
		if (s > 0) {
			float inv = (float)(1.0 / sqrt(s));
			for (size_t j = 0; j < d; j++) r[j] *= inv;
		}
	}
}

void l2_normalize_rows_exact(float *x, size_t n, size_t d)
{
	for (size_t i = 0; i < n; i++) {
		float *r = x + i * d;
		double s = 0;
		for (size_t j = 0; j < d; j++) s += (double)r[j] * r[j];
		s = sqrt(s);
		if (s > 0)
			for (size_t j = 0; j < d; j++) r[j] = (float)(r[j] / s);
	}
}
