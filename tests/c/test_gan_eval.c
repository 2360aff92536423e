/* test_gan_eval.c — lib/models/gan_eval.c: Inception features of in-memory GAN images equal
 * l2-fid's features of the same images written as PNG files and read back (the path a
 * user takes with l2-sample | l2-fid), bit for bit; the Frechet distance helper on
 * sets with a known distance. */
#include <unistd.h>

#include "check.h"
#include "models/gan_eval.h"
#include "io/image.h"
#include "core/rng.h"
#include "core/util.h"

static void test_features_match_png_path(void)
{
	enum { N = 3, R = 24 };
	const int S = L2_INCEPTION_SIZE;
	const size_t isz = (size_t)3 * R * R, per = (size_t)3 * S * S;
	L2Inception *net = l2_inception_random(11);
	float *img = l2_malloc(N * isz * sizeof(float));
	L2Rng r;
	l2_rng_init(&r, 5, 0);
	/* a little beyond [-1, 1] too: the 8-bit quantisation must clip as the PNG does */
	for (size_t i = 0; i < N * isz; i++) img[i] = (float)(l2_rng_uniform(&r) * 2.2 - 1.1);
	float *got = l2_malloc(N * 2048 * sizeof(float)), *want = l2_malloc(N * 2048 * sizeof(float));
	l2_gan_inception_features(net, img, N, R, got);

	char dir[] = "/tmp/l2-test-gan-eval-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	float *x = l2_malloc_aligned(N * per * sizeof(float)), *chw = l2_malloc(isz * sizeof(float));
	for (int k = 0; k < N; k++) {
		char path[128], err[256];
		snprintf(path, sizeof path, "%s/%d.png", dir, k);
		L2Image a, b, rgb;
		l2_image_from_chw(img + k * isz, R, R, -1, 1, &a);
		l2_image_save_png(path, &a);
		CHECK(l2_image_load(path, &b, err, sizeof err) == 0);
		l2_image_to_rgb(&b, &rgb);
		l2_image_rgb_to_chw(&rgb, chw);
		l2_image_resize_bilinear_f32(chw, 3, R, R, x + k * per, S, S);
		l2_image_free(&a), l2_image_free(&b), l2_image_free(&rgb);
		unlink(path);
	}
	rmdir(dir);
	l2_inception_forward(net, x, N, 2048, want);
	l2_inception_thread_cleanup();
	CHECK(memcmp(got, want, N * 2048 * sizeof(float)) == 0);
	double norm = 0;
	for (int i = 0; i < N * 2048; i++) norm += got[i] * got[i];
	CHECK(norm > 0 && isfinite(norm));
	l2_free_aligned(x);
	free(chw), free(img), free(got), free(want);
	l2_inception_free(net);
}

static void test_frechet_known(void)
{
	/* equal covariances: FD = |mu1 - mu2|^2 exactly */
	enum { N = 300, D = 6 };
	float *a = l2_malloc(N * D * sizeof(float)), *b = l2_malloc(N * D * sizeof(float));
	L2Rng r;
	l2_rng_init(&r, 9, 0);
	l2_rng_fill_normal(&r, a, N * D, 0, 1);
	double shift2 = 0;
	for (int j = 0; j < D; j++) shift2 += (0.25 * (j + 1)) * (0.25 * (j + 1));
	for (int i = 0; i < N; i++)
		for (int j = 0; j < D; j++) b[i * D + j] = a[i * D + j] + 0.25f * (j + 1);
	CHECK_CLOSE(l2_gan_frechet(a, N, b, N, D), shift2, 1e-9, 1e-6);
	CHECK_CLOSE(l2_gan_frechet(a, N, a, N, D), 0, 1e-9, 0);
	free(a), free(b);
}

int main(void)
{
	RUN(test_features_match_png_path);
	RUN(test_frechet_known);
	return check_done();
}
