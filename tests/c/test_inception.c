/* test_inception.c — lib/nn/conv.c against direct float64 loops, and the FID
 * Inception-v3 (lib/models/inception.c) against PyTorch features made by
 * tests/ref/make_fid.py from the same seeded weights and images; features of in-memory
 * images equal to those of the same images through PNG files. */
#include "check.h"
#include "nn/conv.h"
#include "models/inception.h"
#include "io/npy.h"
#include "io/image.h"
#include "core/rng.h"
#include "core/util.h"

#include <stdint.h>
#include <unistd.h>

#define REF "tests/ref/fid/"

static float *rand_array(size_t n, double scale)
{
	float *a = l2_malloc(n * sizeof(float));
	for (size_t i = 0; i < n; i++) a[i] = (float)(check_normal() * scale);
	return a;
}

/* direct convolution in float64 on (C, B, H, W) */
static void conv_ref(const L2Conv *c, const float *x, int B, int H, int W, double *y, int relu)
{
	int Ho = l2_conv_out_size(H, c->kh, c->sh, c->ph), Wo = l2_conv_out_size(W, c->kw, c->sw, c->pw);
	for (int o = 0; o < c->cout; o++)
		for (int b = 0; b < B; b++)
			for (int oy = 0; oy < Ho; oy++)
				for (int ox = 0; ox < Wo; ox++) {
					double s = c->b[o];
					for (int i = 0; i < c->cin; i++)
						for (int ky = 0; ky < c->kh; ky++)
							for (int kx = 0; kx < c->kw; kx++) {
								int iy = oy * c->sh - c->ph + ky, ix = ox * c->sw - c->pw + kx;
								if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
								s += (double)c->w[((o * c->cin + i) * c->kh + ky) * c->kw + kx] *
								     x[(((size_t)i * B + b) * H + iy) * W + ix];
							}
					if (relu && s < 0) s = 0;
					y[(((size_t)o * B + b) * Ho + oy) * Wo + ox] = s;
				}
}

static void test_conv_shapes(void)
{
	/* cin cout kh kw sh sw ph pw, B H W */
	static const int cfg[][11] = {
		{3, 5, 3, 3, 2, 2, 0, 0, 2, 11, 9},  {4, 6, 1, 1, 1, 1, 0, 0, 3, 7, 5}, {5, 7, 1, 7, 1, 1, 0, 3, 2, 9, 10},
		{5, 4, 7, 1, 1, 1, 3, 0, 2, 10, 9}, {6, 3, 5, 5, 1, 1, 2, 2, 1, 8, 8}, {3, 8, 3, 3, 1, 1, 1, 1, 2, 6, 7},
		{4, 4, 3, 3, 2, 2, 0, 0, 3, 17, 17}, {2, 3, 1, 3, 1, 1, 0, 1, 2, 5, 4},
		/* the direct 3x3 path (cin <= 32, cout % 8 == 0): tiles of 16 columns with tails */
		{5, 16, 3, 3, 1, 1, 0, 0, 2, 21, 19}, {32, 32, 3, 3, 1, 1, 1, 1, 1, 9, 37}, {7, 8, 3, 3, 1, 1, 1, 1, 3, 4, 16},
		/* K >= 4096: im2col in blocks of 256 columns that end inside rows and images */
		{600, 3, 7, 1, 1, 1, 3, 0, 2, 13, 11}, {600, 3, 1, 7, 1, 1, 0, 3, 2, 13, 11},
		{456, 3, 3, 3, 1, 1, 1, 1, 2, 13, 11}, {456, 2, 3, 3, 2, 2, 0, 0, 3, 25, 23},
	};
	for (size_t t = 0; t < sizeof cfg / sizeof cfg[0]; t++) {
		const int *g = cfg[t];
		L2Conv c = {g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], NULL, NULL};
		int B = g[8], H = g[9], W = g[10];
		/* weights ~ 1 / sqrt(fan-in): outputs of size ~1 whatever K */
		c.w = rand_array((size_t)c.cout * c.cin * c.kh * c.kw, 1.5 / sqrt((double)c.cin * c.kh * c.kw));
		c.b = rand_array((size_t)c.cout, 0.3);
		float *x = rand_array((size_t)c.cin * B * H * W, 1);
		int Ho = l2_conv_out_size(H, c.kh, c.sh, c.ph), Wo = l2_conv_out_size(W, c.kw, c.sw, c.pw);
		size_t n = (size_t)c.cout * B * Ho * Wo;
		float *y = l2_malloc(n * sizeof(float));
		double *r = l2_malloc(n * sizeof(double));
		for (int relu = 0; relu < 2; relu++) {
			l2_conv2d(&c, x, B, H, W, y, relu);
			conv_ref(&c, x, B, H, W, r, relu);
			CHECK_MSG(CHECK_ARRAY_CLOSE_D(y, r, n, 1e-5, 1e-5), "config %zu relu %d", t, relu);
		}
		free(c.w), free(c.b), free(x), free(y), free(r);
	}
}

static void test_fold_bn(void)
{
	L2Conv c = {3, 4, 3, 3, 1, 1, 1, 1, NULL, NULL};
	c.w = rand_array(4 * 3 * 9, 0.5);
	c.b = l2_calloc(4, sizeof(float));
	float g[4] = {0.7f, 1.3f, 1.0f, 0.2f}, be[4] = {0.1f, -0.2f, 0.0f, 0.5f}, mu[4] = {0.3f, -0.1f, 0.2f, 0},
	      var[4] = {1.5f, 0.5f, 2.0f, 0.9f};
	int B = 2, H = 5, W = 6;
	float *x = rand_array(3 * B * H * W, 1);
	double *r = l2_malloc(4 * B * H * W * sizeof(double));
	conv_ref(&c, x, B, H, W, r, 0);
	for (int o = 0; o < 4; o++)
		for (int i = 0; i < B * H * W; i++) {
			double *v = &r[o * B * H * W + i];
			*v = (*v - mu[o]) / sqrt((double)var[o] + 0.001) * g[o] + be[o];
		}
	l2_conv_fold_bn(&c, g, be, mu, var, 0.001f);
	float *y = l2_malloc(4 * B * H * W * sizeof(float));
	l2_conv2d(&c, x, B, H, W, y, 0);
	CHECK_ARRAY_CLOSE_D(y, r, (size_t)4 * B * H * W, 1e-5, 1e-5);
	free(c.w), free(c.b), free(x), free(r), free(y);
}

/* pools on planes of H x W against direct float64 loops */
static void pools_case(int H, int W)
{
	size_t planes = 3;
	float *x = rand_array(planes * H * W, 1);
	/* k s p is_max count_include_pad */
	static const int cfg[][5] = {{3, 2, 0, 1, 0}, {3, 1, 1, 1, 0}, {3, 1, 1, 0, 0}, {3, 1, 1, 0, 1}, {2, 2, 1, 0, 1},
				     {2, 2, 1, 1, 0}, {3, 2, 1, 0, 0}};
	for (size_t t = 0; t < sizeof cfg / sizeof cfg[0]; t++) {
		int k = cfg[t][0], s = cfg[t][1], p = cfg[t][2], is_max = cfg[t][3], incl = cfg[t][4];
		if (H + 2 * p < k || W + 2 * p < k) continue;
		int Ho = l2_conv_out_size(H, k, s, p), Wo = l2_conv_out_size(W, k, s, p);
		float *y = l2_malloc(planes * Ho * Wo * sizeof(float));
		if (is_max) l2_maxpool2d(x, planes, H, W, k, s, p, y);
		else l2_avgpool2d(x, planes, H, W, k, s, p, incl, y);
		for (size_t pl = 0; pl < planes; pl++)
			for (int oy = 0; oy < Ho; oy++)
				for (int ox = 0; ox < Wo; ox++) {
					double m = -INFINITY, sum = 0;
					int cnt = 0;
					for (int ky = 0; ky < k; ky++)
						for (int kx = 0; kx < k; kx++) {
							int iy = oy * s - p + ky, ix = ox * s - p + kx;
							if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
							double v = x[(pl * H + iy) * W + ix];
							m = v > m ? v : m;
							sum += v;
							cnt++;
						}
					/* PyTorch's count_include_pad window: clipped to the padded image */
					int y0 = oy * s - p, x0 = ox * s - p;
					int pool = ((y0 + k > H + p ? H + p : y0 + k) - y0) * ((x0 + k > W + p ? W + p : x0 + k) - x0);
					double want = is_max ? m : sum / (incl ? pool : cnt);
					CHECK_CLOSE(y[(pl * Ho + oy) * Wo + ox], want, 1e-6, 1e-6);
				}
		free(y);
	}
	/* a NaN wins its max windows (PyTorch's rule), in the vector part and the tail */
	x[W + 3] = NAN;
	x[2 * W - 1] = NAN;
	int Ho = l2_conv_out_size(H, 3, 1, 1), Wo = l2_conv_out_size(W, 3, 1, 1);
	float *y = l2_malloc(planes * Ho * Wo * sizeof(float));
	l2_maxpool2d(x, planes, H, W, 3, 1, 1, y);
	for (int oy = 0; oy < Ho; oy++)
		for (int ox = 0; ox < Wo; ox++) {
			int near = oy <= 2 && ((ox >= 2 && ox <= 4) || ox >= W - 2);
			CHECK_MSG((isnan(y[oy * Wo + ox]) != 0) == near, "%dx%d: NaN at %d,%d", H, W, oy, ox);
		}
	free(y);
	free(x);
}

static void test_pools(void)
{
	pools_case(7, 6);   /* scalar code only */
	pools_case(11, 19); /* 8-float vectors and a tail */
	pools_case(2, 9);
	float *x = rand_array(42, 1);
	float g[6];
	l2_global_avgpool(x, 3, 2, 1, 7, g); /* (C=3, B=2, 1 x 7) -> (2, 3) */
	for (int c = 0; c < 3; c++)
		for (int b = 0; b < 2; b++) {
			double s = 0;
			for (int i = 0; i < 7; i++) s += x[(c * 2 + b) * 7 + i];
			CHECK_CLOSE(g[b * 3 + c], s / 7, 1e-7, 1e-6);
		}
	free(x);
}

/* the state dict names and shapes are PyTorch's (tests/ref/fid/params.txt) */
static void test_param_names(void)
{
	size_t len;
	char *txt = l2_read_file(REF "params.txt", &len);
	int n = l2_inception_param_count(), seen = 0;
	char *save = NULL;
	for (char *line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char want[128];
		snprintf(want, sizeof want, "%s", line);
		char *sp = strchr(want, ' ');
		CHECK(sp != NULL);
		if (!sp) break;
		*sp = 0;
		int found = 0;
		for (int i = 0; i < n; i++) {
			int nd;
			int64_t sh[4];
			const char *name = l2_inception_param_name(i, &nd, sh);
			if (strcmp(name, want)) continue;
			char s[64] = "";
			for (int d = 0; d < nd; d++)
				snprintf(s + strlen(s), sizeof s - strlen(s), "%s%lld", d ? "x" : "", (long long)sh[d]);
			CHECK_MSG(!strcmp(s, sp + 1), "%s: shape %s, PyTorch has %s", want, s, sp + 1);
			found = 1;
		}
		CHECK_MSG(found, "PyTorch parameter %s missing", want);
		seen++;
	}
	CHECK_MSG(seen == n, "PyTorch has %d parameters, l2 %d", seen, n);
	free(txt);
}

/* the two seeded images of make_fid.py, (2, 3, 299, 299) in [0, 1] */
#define PHI 0x9e3779b97f4a7c15ull
static float *seeded_images(void)
{
	const int S = L2_INCEPTION_SIZE;
	size_t n = (size_t)3 * S * S;
	float *x = l2_malloc(2 * n * sizeof(float));
	uint64_t h = 0xcbf29ce484222325ull;
	for (const char *s = "image"; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	for (int img = 0; img < 2; img++)
		for (size_t j = 0; j < n; j++) {
			uint64_t z = (h ^ (uint64_t)img) + (uint64_t)(j + 1) * PHI;
			z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
			z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
			z ^= z >> 31;
			float v = (float)(z >> 40) * 0x1p-23f - 1.0f;
			uint8_t u = (uint8_t)(((double)v + 1.0) * 127.5);
			x[img * n + j] = (float)u / 255.0f;
		}
	return x;
}

static void test_inception_parity(void)
{
	L2Inception *net = l2_inception_random(1);
	float *x = seeded_images();
	static const int dims[] = {64, 192, 768, 2048};
	for (int k = 0; k < 4; k++) {
		char path[128];
		snprintf(path, sizeof path, REF "inception_feat%d.npy", dims[k]);
		L2Npy ref;
		l2_npy_read(path, &ref);
		CHECK(ref.ndim == 2 && ref.shape[0] == 2 && ref.shape[1] == (size_t)dims[k] && !ref.is_f64);
		float *f = l2_malloc(2 * (size_t)dims[k] * sizeof(float));
		l2_inception_forward(net, x, 2, dims[k], f);
		/* relative 1e-4 on features of typical size ~1 */
		CHECK_MSG(CHECK_ARRAY_CLOSE_F(f, (const float *)ref.data, 2 * (size_t)dims[k], 1e-5, 1e-4), "dims %d", dims[k]);
		double worst = 0, worst_abs = 0, d2 = 0, r2 = 0;
		for (size_t i = 0; i < 2 * (size_t)dims[k]; i++) {
			double r = ((const float *)ref.data)[i], e = fabs(f[i] - r) / (fabs(r) + 1e-2);
			if (e > worst) worst = e;
			if (fabs(f[i] - r) > worst_abs) worst_abs = fabs(f[i] - r);
			d2 += (f[i] - r) * (f[i] - r), r2 += r * r;
		}
		printf("# dims %d: max |l2 - torch| %.3g, max |l2 - torch| / (|torch| + 0.01) %.3g, ||l2 - torch|| / ||torch|| %.3g\n",
		       dims[k], worst_abs, worst, sqrt(d2 / r2));
		if (dims[k] == 2048) { /* a batch of one gives the same features */
			float one[2048];
			l2_inception_forward(net, x + (size_t)3 * 299 * 299, 1, 2048, one);
			CHECK_ARRAY_CLOSE_F(one, f + 2048, 2048, 1e-6, 1e-5);
		}
		free(f);
		l2_npy_free(&ref);
	}
	free(x);
	l2_inception_free(net);
}

/* the generator depends on the seed, and only on it */
static void test_random_seed(void)
{
	float a[32], b[32], c[32];
	float *full = l2_malloc(864 * sizeof(float)); /* Conv2d_1a_3x3.conv.weight; compare 32 */
	l2_inception_random_param(1, 0, full);
	memcpy(a, full, sizeof a);
	l2_inception_random_param(1, 0, full);
	memcpy(b, full, sizeof b);
	l2_inception_random_param(2, 0, full);
	memcpy(c, full, sizeof c);
	free(full);
	CHECK(!memcmp(a, b, sizeof a));
	CHECK(memcmp(a, c, sizeof a));
	double bound = sqrt(6.0 / 27);
	for (int i = 0; i < 32; i++) CHECK(fabs(a[i]) <= bound && a[i] != 0);
}

static void test_flops(void)
{
	double f = l2_inception_flops(2048);
	printf("# FID Inception: %.3f GFLOP per image (2048-d)\n", f / 1e9);
	CHECK(f > 11.0e9 && f < 11.6e9);
	CHECK(l2_inception_flops(64) < l2_inception_flops(192));
	CHECK(l2_inception_flops(192) < l2_inception_flops(768));
	CHECK(l2_inception_flops(768) < f);
}

/* Inception features of in-memory generator images equal l2-fid's features of the same
 * images written as PNG files and read back (the path a user takes with l2-sample |
 * l2-fid), bit for bit. */
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
	l2_inception_features_chw(net, img, N, R, got);

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

int main(void)
{
	RUN(test_conv_shapes);
	RUN(test_fold_bn);
	RUN(test_pools);
	RUN(test_param_names);
	RUN(test_random_seed);
	RUN(test_flops);
	RUN(test_inception_parity);
	RUN(test_features_match_png_path);
	return check_done();
}
