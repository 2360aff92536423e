/* gan_eval.c — Inception FID of in-memory GAN images (see gan_eval.h). */
#include <stdlib.h>
#include <string.h>

#include "method/fid.h"
#include "models/gan_eval.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "core/util.h"

L2Inception *l2_gan_inception_open(const char *path)
{
	L2Safetensors *st = l2_st_open(path);
	L2Inception *net = l2_inception_load(l2_inception_st_get, st);
	l2_st_close(st);
	return net;
}

enum { BATCH = 8 };

void l2_gan_inception_features(const L2Inception *net, const float *img, int n, int R, float *feat)
{
	const int S = L2_INCEPTION_SIZE;
	const size_t per = (size_t)3 * S * S, isz = (size_t)3 * R * R;
	float *x = l2_malloc_aligned(BATCH * per * sizeof(float)), *chw = l2_malloc(isz * sizeof(float));
	for (int i0 = 0; i0 < n; i0 += BATCH) {
		int b = n - i0 < BATCH ? n - i0 : BATCH;
		for (int k = 0; k < b; k++) {
			/* the 8-bit image a PNG of it would hold, then l2-fid's decode path */
			L2Image rgb;
			l2_image_from_chw(img + (size_t)(i0 + k) * isz, R, R, -1, 1, &rgb);
			l2_image_rgb_to_chw(&rgb, chw);
			l2_image_free(&rgb);
			if (R == S) memcpy(x + k * per, chw, per * sizeof(float));
			else l2_image_resize_bilinear_f32(chw, 3, R, R, x + k * per, S, S);
		}
		l2_inception_forward(net, x, b, 2048, feat + (size_t)i0 * 2048);
	}
	l2_inception_thread_cleanup();
	l2_free_aligned(x);
	free(chw);
}

double l2_gan_frechet(const float *a, int na, const float *b, int nb, int d)
{
	L2FidStats s1, s2;
	l2_fid_stats_init(&s1, d), l2_fid_stats_init(&s2, d);
	l2_fid_stats_add(&s1, a, (size_t)na), l2_fid_stats_add(&s2, b, (size_t)nb);
	double *mu1 = l2_malloc((size_t)d * sizeof(double)), *mu2 = l2_malloc((size_t)d * sizeof(double));
	double *S1 = l2_malloc((size_t)d * d * sizeof(double)), *S2 = l2_malloc((size_t)d * d * sizeof(double));
	l2_fid_stats_finish(&s1, mu1, S1), l2_fid_stats_finish(&s2, mu2, S2);
	double fd = l2_fid_frechet(mu1, S1, mu2, S2, d).fid;
	l2_fid_stats_free(&s1), l2_fid_stats_free(&s2);
	free(mu1), free(mu2), free(S1), free(S2);
	return fd;
}
