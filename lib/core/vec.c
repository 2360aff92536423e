/* vec.c — unit-length rows (see vec.h for why there are two roundings). */
#include "core/vec.h"

#include <math.h>

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
