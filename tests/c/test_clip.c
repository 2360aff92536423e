/* test_clip.c — CLIP encoders (lib/models/clip.c) and kernels (lib/nn/nn.c) against
 * the PyTorch float64 reference of tests/ref/make_clip.py.
 *
 * The reference model's weights are rebuilt here from the shared generator
 * (l2_clip_write_random) in both key layouts — OpenAI in f16, Hugging Face in
 * f32 — and both must give the golden features to 1e-4.
 *
 *   test_clip                     run the tests
 *   test_clip --write-models DIR  write DIR/openai.safetensors, DIR/hf.safetensors
 *                                 (the tiny reference model) for the BATS tests */
#include "check.h"
#include "models/clip.h"
#include "nn/nn.h"
#include "io/stream.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "core/parallel.h"
#include "core/util.h"
#include "core/vec.h"

#include <stdint.h>
#include <unistd.h>


#define REF "tests/ref/clip/"

static char tmpdir[256];

static const L2ClipConfig tiny = {.width = 128, .layers = 2, .patch = 8, .res = 32, .embed = 48,
				  .twidth = 128, .tlayers = 2, .context = 77, .vocab = 49408, .tembed = 48};
static const uint64_t tiny_seed = 1234;

static void write_models(const char *dir)
{
	char p[512];
	snprintf(p, sizeof p, "%s/openai.safetensors", dir);
	l2_clip_write_random(p, &tiny, L2_CLIP_LAYOUT_OPENAI, 1, tiny_seed);
	snprintf(p, sizeof p, "%s/hf.safetensors", dir);
	l2_clip_write_random(p, &tiny, L2_CLIP_LAYOUT_HF, 0, tiny_seed);
}

static float *read_npy(const char *path, size_t *rows, size_t *cols)
{
	L2Npy a;
	l2_npy_read(path, &a);
	*rows = a.shape[0];
	*cols = l2_npy_count(&a) / a.shape[0];
	return a.data;
}

/* token id lines of text_ids.txt -> (n, 77) zero padded */
static int32_t *read_ids(int *n)
{
	size_t len;
	char *s = l2_read_file(REF "text_ids.txt", &len);
	int32_t *ids = l2_calloc(64 * 77, sizeof(int32_t));
	int r = 0, c = 0;
	for (char *p = s; *p;) {
		if (*p == '\n') { r++; c = 0; p++; continue; }
		if (*p == ' ') { p++; continue; }
		long v = strtol(p, &p, 10);
		if (r < 64 && c < 77) ids[r * 77 + c++] = (int32_t)v;
	}
	free(s);
	*n = r;
	return ids;
}

static void test_generator_exact_in_f16(void)
{
	float v[4096];
	l2_clip_random_values("visual.conv1.weight", 1, 3, v, 4096);
	int bad = 0, neg = 0;
	for (int i = 0; i < 4096; i++) {
		if (l2_half_to_float(l2_float_to_half(v[i])) != v[i] || v[i] == 0) bad++;
		if (v[i] < 0) neg++;
	}
	CHECK(bad == 0);
	CHECK(neg > 1800 && neg < 2300);
	l2_clip_random_values("ln", 1, -1, v, 4096);
	for (int i = 0; i < 4096; i++) CHECK(v[i] >= 0.75f && v[i] < 1.25f && l2_half_to_float(l2_float_to_half(v[i])) == v[i]);
}

static void check_config(const L2ClipConfig *c)
{
	CHECK(c->width == 128 && c->layers == 2 && c->heads == 2 && c->patch == 8 && c->res == 32 && c->embed == 48);
	CHECK(c->twidth == 128 && c->tlayers == 2 && c->theads == 2 && c->context == 77 && c->vocab == 49408 &&
	      c->tembed == 48);
}

static void images_layout(const char *file)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", tmpdir, file);
	L2Clip *m = l2_clip_load(p, L2_CLIP_VISION | L2_CLIP_TEXT);
	check_config(l2_clip_config(m));
	size_t n, px_len, nf, e;
	float *px = read_npy(REF "pixels.npy", &n, &px_len);
	float *ref = read_npy(REF "image_features.npy", &nf, &e);
	CHECK(n == nf && px_len == 3 * 32 * 32 && e == 48);
	float *out = l2_malloc(n * e * sizeof(float));
	l2_clip_encode_images(m, px, (int)n, out);
	l2_normalize_rows(out, n, e);
	CHECK_ARRAY_CLOSE_F(out, ref, n * e, 1e-4, 0);
	/* one at a time gives the same as the batch */
	float one[48];
	for (size_t i = 0; i < n; i++) {
		l2_clip_encode_images(m, px + i * px_len, 1, one);
		l2_normalize_rows(one, 1, e);
		CHECK_ARRAY_CLOSE_F(one, out + i * e, e, 1e-6, 0);
	}
	free(out);
	free(px);
	free(ref);
	l2_clip_free(m);
}

static void test_images_openai_f16(void) { images_layout("openai.safetensors"); }
static void test_images_hf_f32(void) { images_layout("hf.safetensors"); }

static void texts_layout(const char *file)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", tmpdir, file);
	L2Clip *m = l2_clip_load(p, L2_CLIP_TEXT);
	CHECK(l2_clip_config(m)->width == 0);
	int n;
	int32_t *ids = read_ids(&n);
	size_t nf, e;
	float *ref = read_npy(REF "text_features.npy", &nf, &e);
	CHECK((size_t)n == nf && e == 48);
	float *out = l2_malloc((size_t)n * e * sizeof(float));
	l2_clip_encode_text(m, ids, n, out);
	l2_normalize_rows(out, (size_t)n, e);
	CHECK_ARRAY_CLOSE_F(out, ref, (size_t)n * e, 1e-4, 0);
	/* each text alone (computed only to its own length) agrees with the batch */
	float one[48];
	for (int i = 0; i < n; i++) {
		l2_clip_encode_text(m, ids + (size_t)i * 77, 1, one);
		l2_normalize_rows(one, 1, e);
		CHECK_ARRAY_CLOSE_F(one, out + (size_t)i * e, e, 2e-6, 0);
	}
	free(out);
	free(ref);
	free(ids);
	l2_clip_free(m);
}

static void test_texts_openai_f16(void) { texts_layout("openai.safetensors"); }
static void test_texts_hf_f32(void) { texts_layout("hf.safetensors"); }

static void test_threads_agree(void)
{
	char p[512];
	snprintf(p, sizeof p, "%s/openai.safetensors", tmpdir);
	L2Clip *m = l2_clip_load(p, L2_CLIP_VISION);
	size_t n, len;
	float *px = read_npy(REF "pixels.npy", &n, &len);
	float a[4 * 48], b[4 * 48], c[4 * 48];
	int saved = l2_threads;
	l2_threads = 1;
	l2_clip_encode_images(m, px, 4, a);
	l2_threads = 3;
	l2_clip_encode_images(m, px, 4, b);
	l2_threads = saved;
	/* 3 threads run images {0}, {1}, {2, 3} on their own: the same as
	 * those batches on one thread, bit for bit */
	int blas_was = l2_blas_threads(1);
	l2_clip_encode_images_serial(m, px, 1, c);
	l2_clip_encode_images_serial(m, px + len, 1, c + 48);
	l2_clip_encode_images_serial(m, px + 2 * len, 2, c + 2 * 48);
	l2_blas_threads(blas_was);
	CHECK(memcmp(b, c, sizeof b) == 0);
	/* and the same as one batch of 4 up to OpenBLAS's rounding, which
	 * depends on the number of rows of a product */
	CHECK_ARRAY_CLOSE_F(b, a, 4 * 48, 1e-6, 1e-6);
	free(px);
	l2_clip_free(m);
}

/* float64 reference of the attention core */
static void test_attention_vs_double(void)
{
	int nb = 2, s = 7, d = 12, heads = 3, dh = 4;
	float qkv[2 * 7 * 36], out[2 * 7 * 12];
	for (int i = 0; i < 2 * 7 * 36; i++) qkv[i] = (float)check_normal();
	for (int causal = 0; causal < 2; causal++) {
		l2_nn_attention(qkv, nb, s, d, heads, causal, out);
		double ref[2 * 7 * 12];
		for (int b = 0; b < nb; b++)
			for (int h = 0; h < heads; h++)
				for (int i = 0; i < s; i++) {
					double sc[7], mx = -1e300, sum = 0;
					int nj = causal ? i + 1 : s;
					for (int j = 0; j < nj; j++) {
						double t = 0;
						for (int e = 0; e < dh; e++)
							t += (double)qkv[(b * s + i) * 36 + h * dh + e] * qkv[(b * s + j) * 36 + 12 + h * dh + e];
						sc[j] = t / 2.0;
						if (sc[j] > mx) mx = sc[j];
					}
					for (int j = 0; j < nj; j++) sum += sc[j] = exp(sc[j] - mx);
					for (int e = 0; e < dh; e++) {
						double o = 0;
						for (int j = 0; j < nj; j++) o += sc[j] * qkv[(b * s + j) * 36 + 24 + h * dh + e];
						ref[(b * s + i) * 12 + h * dh + e] = o / sum;
					}
				}
		CHECK_ARRAY_CLOSE_D(out, ref, 2 * 7 * 12, 1e-6, 1e-5);
	}
}

static void test_layer_norm_vs_double(void)
{
	int n = 5, d = 33;
	float x[5 * 33], g[33], b[33], y[5 * 33];
	for (int i = 0; i < n * d; i++) x[i] = (float)(3 + 2 * check_normal());
	for (int j = 0; j < d; j++) { g[j] = (float)check_normal(); b[j] = (float)check_normal(); }
	l2_nn_layer_norm(x, n, d, g, b, 1e-5f, y);
	double ref[5 * 33];
	for (int i = 0; i < n; i++) {
		double m = 0, v = 0;
		for (int j = 0; j < d; j++) m += x[i * d + j];
		m /= d;
		for (int j = 0; j < d; j++) v += (x[i * d + j] - m) * (x[i * d + j] - m);
		v /= d;
		for (int j = 0; j < d; j++) ref[i * d + j] = (x[i * d + j] - m) / sqrt(v + 1e-5) * g[j] + b[j];
	}
	CHECK_ARRAY_CLOSE_D(y, ref, (size_t)n * d, 1e-5, 1e-5);
	float q[4] = {-3, -0.5f, 0.25f, 4};
	l2_nn_quick_gelu(q, 4);
	double qr[4] = {-3 / (1 + exp(5.106)), -0.5 / (1 + exp(0.851)), 0.25 / (1 + exp(-0.4255)), 4 / (1 + exp(-6.808))};
	CHECK_ARRAY_CLOSE_D(q, qr, 4, 1e-7, 1e-6);
}

static void test_linear_vs_double(void)
{
	int n = 6, in = 19, out = 11;
	float x[6 * 19], w[11 * 19], b[11], y[6 * 11];
	for (int i = 0; i < n * in; i++) x[i] = (float)check_normal();
	for (int i = 0; i < out * in; i++) w[i] = (float)check_normal();
	for (int i = 0; i < out; i++) b[i] = (float)check_normal();
	l2_nn_linear(x, in, n, in, w, b, out, y, out);
	double ref[6 * 11];
	for (int i = 0; i < n; i++)
		for (int o = 0; o < out; o++) {
			double s = b[o];
			for (int k = 0; k < in; k++) s += (double)x[i * in + k] * w[o * in + k];
			ref[i * out + o] = s;
		}
	CHECK_ARRAY_CLOSE_D(y, ref, (size_t)n * out, 1e-5, 1e-5);
	l2_nn_linear_add(x, n, in, w, b, out, y);
	for (int i = 0; i < n * out; i++) ref[i] *= 2;
	CHECK_ARRAY_CLOSE_D(y, ref, (size_t)n * out, 1e-5, 1e-5);
}

/* float64 attention core for one layout (qkv (nb*s, 3d), out (nb*s, d)) */
static void attention_double(const float *qkv, int nb, int s, int d, int heads, int causal, double *ref)
{
	int dh = d / heads;
	double *sc = l2_malloc((size_t)s * sizeof(double));
	for (int b = 0; b < nb; b++)
		for (int h = 0; h < heads; h++)
			for (int i = 0; i < s; i++) {
				double mx = -1e300, sum = 0;
				int nj = causal ? i + 1 : s;
				for (int j = 0; j < nj; j++) {
					double t = 0;
					for (int e = 0; e < dh; e++)
						t += (double)qkv[(size_t)(b * s + i) * 3 * d + h * dh + e] *
						     qkv[(size_t)(b * s + j) * 3 * d + d + h * dh + e];
					sc[j] = t / sqrt((double)dh);
					if (sc[j] > mx) mx = sc[j];
				}
				for (int j = 0; j < nj; j++) sum += sc[j] = exp(sc[j] - mx);
				for (int e = 0; e < dh; e++) {
					double o = 0;
					for (int j = 0; j < nj; j++) o += sc[j] * qkv[(size_t)(b * s + j) * 3 * d + 2 * d + h * dh + e];
					ref[(size_t)(b * s + i) * d + h * dh + e] = o / sum;
				}
			}
	free(sc);
}

/* the vectorised attention: sequence lengths and head widths on and off
 * the vector width, causal or not, any range of (sequence, head) pairs */
static void test_attention_range_vs_double(void)
{
	const int cases[][4] = {{2, 7, 12, 3}, {3, 50, 128, 2}, {2, 17, 40, 1}, {1, 33, 96, 1}, {2, 16, 64, 2}};
	for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
		int nb = cases[c][0], s = cases[c][1], d = cases[c][2], heads = cases[c][3];
		size_t nq = (size_t)nb * s * 3 * d, no = (size_t)nb * s * d;
		float *qkv = l2_malloc(nq * sizeof(float)), *out = l2_malloc(no * sizeof(float));
		double *ref = l2_malloc(no * sizeof(double));
		for (size_t i = 0; i < nq; i++) qkv[i] = (float)check_normal();
		for (int causal = 0; causal < 2; causal++) {
			attention_double(qkv, nb, s, d, heads, causal, ref);
			for (size_t i = 0; i < no; i++) out[i] = NAN;
			size_t items = (size_t)nb * heads, mid = items / 2;
			l2_nn_attention_range(qkv, s, d, heads, causal, out, 0, mid);
			l2_nn_attention_range(qkv, s, d, heads, causal, out, mid, items);
			CHECK_ARRAY_CLOSE_D(out, ref, no, 1e-5, 1e-5);
		}
		free(qkv);
		free(out);
		free(ref);
	}
}

static void test_serial_kernels_vs_double(void)
{
	const int ds[] = {33, 768, 16, 5};
	for (size_t c = 0; c < sizeof ds / sizeof *ds; c++) {
		int n = 3, d = ds[c];
		float *x = l2_malloc((size_t)n * d * sizeof(float)), *y = l2_malloc((size_t)n * d * sizeof(float));
		float *g = l2_malloc((size_t)d * sizeof(float)), *b = l2_malloc((size_t)d * sizeof(float));
		double *ref = l2_malloc((size_t)n * d * sizeof(double));
		for (int i = 0; i < n * d; i++) x[i] = (float)(3 + 2 * check_normal());
		for (int j = 0; j < d; j++) {
			g[j] = (float)check_normal();
			b[j] = (float)check_normal();
		}
		for (int i = 0; i < n; i++) {
			double m = 0, v = 0;
			for (int j = 0; j < d; j++) m += x[i * d + j];
			m /= d;
			for (int j = 0; j < d; j++) v += (x[i * d + j] - m) * (x[i * d + j] - m);
			v /= d;
			for (int j = 0; j < d; j++) ref[i * d + j] = (x[i * d + j] - m) / sqrt(v + 1e-5) * g[j] + b[j];
		}
		l2_nn_layer_norm_serial(x, n, d, g, b, 1e-5f, y);
		CHECK_ARRAY_CLOSE_D(y, ref, (size_t)n * d, 1e-5, 1e-5);
		l2_nn_layer_norm_serial(x, n, d, g, b, 1e-5f, x); /* in place */
		CHECK_ARRAY_CLOSE_D(x, ref, (size_t)n * d, 1e-5, 1e-5);
		free(x);
		free(y);
		free(g);
		free(b);
		free(ref);
	}
	/* QuickGELU over a wide range (exp clamped at both ends), odd length */
	enum { N = 157 };
	float q[N];
	double qr[N];
	for (int i = 0; i < N; i++) {
		q[i] = i < 6 ? (float[]){-200, -60, -51.5f, 0, 51.5f, 200}[i] : (float)(6 * check_normal());
		qr[i] = q[i] / (1 + exp((double)(-1.702f * q[i]))); /* the argument as float computes it */
	}
	l2_nn_quick_gelu_serial(q, N);
	CHECK_ARRAY_CLOSE_D(q, qr, N, 1e-30, 3e-7);
}

/* a model with only a text tower refuses images, and the loader infers
 * heads = width / 64 (min 1) for odd sizes */
static void test_small_odd_model(void)
{
	L2ClipConfig c = {.width = 40, .layers = 1, .patch = 4, .res = 12, .embed = 8,
			  .twidth = 96, .tlayers = 3, .context = 9, .vocab = 20, .tembed = 8};
	char p[512];
	snprintf(p, sizeof p, "%s/odd.safetensors", tmpdir);
	l2_clip_write_random(p, &c, L2_CLIP_LAYOUT_HF, 0, 5);
	L2Clip *m = l2_clip_load(p, L2_CLIP_VISION | L2_CLIP_TEXT);
	const L2ClipConfig *g = l2_clip_config(m);
	CHECK(g->width == 40 && g->heads == 1 && g->res == 12 && g->patch == 4 && g->layers == 1);
	CHECK(g->twidth == 96 && g->theads == 1 && g->tlayers == 3 && g->context == 9 && g->vocab == 20);
	int32_t ids[2 * 9] = {18, 3, 4, 19, 0, 0, 0, 0, 0, 18, 5, 6, 7, 8, 9, 10, 11, 19};
	float f[16];
	l2_clip_encode_text(m, ids, 2, f);
	for (int i = 0; i < 16; i++) CHECK(isfinite(f[i]));
	float px[2 * 3 * 144];
	for (int i = 0; i < 2 * 3 * 144; i++) px[i] = (float)check_normal();
	l2_clip_encode_images(m, px, 2, f);
	for (int i = 0; i < 16; i++) CHECK(isfinite(f[i]));
	l2_clip_free(m);
	unlink(p);
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	if (argc == 3 && !strcmp(argv[1], "--write-models")) {
		write_models(argv[2]);
		return 0;
	}
	snprintf(tmpdir, sizeof tmpdir, "%s/l2-test-clip-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir)) return 1;
	write_models(tmpdir);
	RUN(test_generator_exact_in_f16);
	RUN(test_linear_vs_double);
	RUN(test_layer_norm_vs_double);
	RUN(test_attention_vs_double);
	RUN(test_attention_range_vs_double);
	RUN(test_serial_kernels_vs_double);
	RUN(test_images_openai_f16);
	RUN(test_images_hf_f32);
	RUN(test_texts_openai_f16);
	RUN(test_texts_hf_f32);
	RUN(test_threads_agree);
	RUN(test_small_odd_model);
	char p[512];
	snprintf(p, sizeof p, "%s/openai.safetensors", tmpdir);
	unlink(p);
	snprintf(p, sizeof p, "%s/hf.safetensors", tmpdir);
	unlink(p);
	rmdir(tmpdir);
	return check_done();
}
