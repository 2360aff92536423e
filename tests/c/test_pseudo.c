/* test_pseudo.c — lib/pseudo: the contrastive objective and its gradient
 * (central finite differences in float64), float vs double agreement, the
 * retrieval combine, Adam against a hand-written reference, the Gaussian
 * baseline, the counter-based generator, and that optimisation raises
 * in-batch accuracy over retrieval alone on synthetic modality-gap features. */
#include "check.h"
#include "io/npy.h"
#include "method/pseudo.h"
#include "io/stream.h"
#include "core/parallel.h"
#include "core/util.h"

static double *rand_d(size_t n)
{
	double *x = malloc(n * sizeof *x);
	for (size_t i = 0; i < n; i++) x[i] = check_normal();
	return x;
}

static void unit_rows_d(double *x, int n, int d)
{
	for (int i = 0; i < n; i++) {
		double s = 0;
		for (int j = 0; j < d; j++) s += x[i * d + j] * x[i * d + j];
		for (int j = 0; j < d; j++) x[i * d + j] /= sqrt(s);
	}
}

/* float64 reference objective, written directly from METHOD.md §3 */
static double ref_loss(const double *h, const double *fn, const double *h0, int B, int D, double tau, double lambda)
{
	double L = 0;
	for (int i = 0; i < B; i++) {
		double nh = 0;
		for (int d = 0; d < D; d++) nh += h[i * D + d] * h[i * D + d];
		nh = sqrt(nh);
		double s[64], mx = -1e300, z = 0;
		for (int j = 0; j < B; j++) {
			double c = 0, nf = 0;
			for (int d = 0; d < D; d++) c += h[i * D + d] * fn[j * D + d], nf += fn[j * D + d] * fn[j * D + d];
			s[j] = c / (nh * sqrt(nf)) / tau;
			if (s[j] > mx) mx = s[j];
		}
		for (int j = 0; j < B; j++) z += exp(s[j] - mx);
		L -= s[i] - mx - log(z);
	}
	L /= B;
	double p = 0;
	for (int e = 0; e < B * D; e++) p += (h[e] - h0[e]) * (h[e] - h0[e]);
	return L + lambda * p / B;
}

static void test_gradient_finite_differences(void)
{
	const int cases[][2] = {{1, 3}, {2, 5}, {7, 11}, {16, 8}, {5, 33}};
	const double taus[] = {0.07, 0.5, 1.0}, lambdas[] = {0.0, 0.3, 2.0};
	for (int c = 0; c < 5; c++) {
		int B = cases[c][0], D = cases[c][1];
		for (int t = 0; t < 3; t++) {
			double *h = rand_d((size_t)B * D), *fn = rand_d((size_t)B * D), *h0 = rand_d((size_t)B * D);
			for (int e = 0; e < B * D; e++) h[e] *= 0.5 + check_uniform(); /* not unit: raw h */
			unit_rows_d(fn, B, D);
			unit_rows_d(h0, B, D);
			double *g = malloc((size_t)B * D * sizeof *g), *w = malloc(l2_pseudo_work_size(B, D) * sizeof(double));
			double L = l2_pseudo_loss_d(h, fn, h0, B, D, taus[t], lambdas[t], g, w);
			CHECK_CLOSE(L, ref_loss(h, fn, h0, B, D, taus[t], lambdas[t]), 1e-12, 1e-12);
			double worst = 0, gmax = 0;
			for (int e = 0; e < B * D; e++) {
				double keep = h[e], eps = 1e-6 * fmax(1, fabs(keep));
				h[e] = keep + eps;
				double lp = l2_pseudo_loss_d(h, fn, h0, B, D, taus[t], lambdas[t], NULL, w);
				h[e] = keep - eps;
				double lm = l2_pseudo_loss_d(h, fn, h0, B, D, taus[t], lambdas[t], NULL, w);
				h[e] = keep;
				double fd = (lp - lm) / (2 * eps);
				worst = fmax(worst, fabs(fd - g[e]));
				gmax = fmax(gmax, fabs(fd));
				CHECK_CLOSE(g[e], fd, 1e-8, 1e-6);
			}
			/* central differences with eps 1e-6 are good to about 1e-9 here */
			CHECK_MSG(worst <= 1e-7 * gmax, "B=%d D=%d tau=%g: worst gradient error %g of max %g", B, D, taus[t],
				  worst, gmax);
			free(h), free(fn), free(h0), free(g), free(w);
		}
	}
}

static void test_float_matches_double(void)
{
	int B = 37, D = 64;
	double *h = rand_d((size_t)B * D), *fn = rand_d((size_t)B * D), *h0 = rand_d((size_t)B * D);
	unit_rows_d(fn, B, D);
	unit_rows_d(h0, B, D);
	float *hf = malloc(B * D * sizeof *hf), *ff = malloc(B * D * sizeof *ff), *h0f = malloc(B * D * sizeof *h0f);
	double *hd = malloc(B * D * sizeof *hd), *fd = malloc(B * D * sizeof *fd), *h0d = malloc(B * D * sizeof *h0d);
	for (int e = 0; e < B * D; e++) {
		hf[e] = (float)h[e], ff[e] = (float)fn[e], h0f[e] = (float)h0[e];
		hd[e] = hf[e], fd[e] = ff[e], h0d[e] = h0f[e];
	}
	float *gf = malloc(B * D * sizeof *gf), *wf = malloc(l2_pseudo_work_size(B, D) * sizeof(float));
	double *gd = malloc(B * D * sizeof *gd), *wd = malloc(l2_pseudo_work_size(B, D) * sizeof(double));
	double Lf = l2_pseudo_loss_f(hf, ff, h0f, B, D, 0.1, 0.5, gf, wf);
	double Ld = l2_pseudo_loss_d(hd, fd, h0d, B, D, 0.1, 0.5, gd, wd);
	CHECK_CLOSE(Lf, Ld, 1e-5, 1e-5);
	double gmax = 0;
	for (int e = 0; e < B * D; e++) gmax = fmax(gmax, fabs(gd[e]));
	CHECK_ARRAY_CLOSE_D(gf, gd, (size_t)B * D, 1e-5 * gmax, 1e-4);
	/* whole optimisation, float vs double */
	L2PseudoOptions o;
	l2_pseudo_defaults(&o);
	o.steps = 10;
	o.tau = 0.1;
	float *of = malloc(B * D * sizeof *of), *owf = malloc(l2_pseudo_opt_work_size(B, D) * sizeof(float));
	double *od = malloc(B * D * sizeof *od), *owd = malloc(l2_pseudo_opt_work_size(B, D) * sizeof(double));
	l2_pseudo_optimize_f(of, ff, h0f, B, D, &o, owf, NULL, NULL);
	l2_pseudo_optimize_d(od, fd, h0d, B, D, &o, owd, NULL, NULL);
	CHECK_ARRAY_CLOSE_D(of, od, (size_t)B * D, 2e-5, 1e-4);
	free(h), free(fn), free(h0), free(hf), free(ff), free(h0f), free(hd), free(fd), free(h0d);
	free(gf), free(wf), free(gd), free(wd), free(of), free(owf), free(od), free(owd);
}

/* Adam by hand (torch.optim.Adam's update) on the reference objective's gradient */
static void test_adam_reference(void)
{
	int B = 6, D = 9, steps = 7;
	double *fn = rand_d(B * D), *h0 = rand_d(B * D);
	unit_rows_d(fn, B, D);
	unit_rows_d(h0, B, D);
	L2PseudoOptions o;
	l2_pseudo_defaults(&o);
	o.steps = steps, o.lr = 0.05, o.tau = 0.2, o.lambda = 0.7;
	double *out = malloc(B * D * sizeof *out), *w = malloc(l2_pseudo_opt_work_size(B, D) * sizeof(double));
	double L0, L1;
	l2_pseudo_optimize_d(out, fn, h0, B, D, &o, w, &L0, &L1);
	double h[54], m[54] = {0}, v[54] = {0}, g[54], gw[2000];
	memcpy(h, h0, sizeof h);
	for (int s = 1; s <= steps; s++) {
		l2_pseudo_loss_d(h, fn, h0, B, D, o.tau, o.lambda, g, gw);
		for (int e = 0; e < B * D; e++) {
			m[e] = 0.9 * m[e] + 0.1 * g[e];
			v[e] = 0.999 * v[e] + 0.001 * g[e] * g[e];
			double mh = m[e] / (1 - pow(0.9, s)), vh = v[e] / (1 - pow(0.999, s));
			h[e] -= o.lr * mh / (sqrt(vh) + 1e-8);
		}
	}
	CHECK_CLOSE(L1, ref_loss(h, fn, h0, B, D, o.tau, o.lambda), 1e-12, 1e-10);
	CHECK(L1 < L0);
	unit_rows_d(h, B, D);
	double worst = 0;
	for (int e = 0; e < B * D; e++) worst = fmax(worst, fabs(out[e] - h[e]));
	CHECK_MSG(worst < 1e-10, "Adam differs from the reference by %g", worst);
	free(fn), free(h0), free(out), free(w);
}

static void test_combine(void)
{
	int K = 4, D = 7;
	float t[28], s[4] = {0.41f, 0.38f, 0.30f, 0.12f}, h[7];
	for (int e = 0; e < K * D; e++) t[e] = (float)check_normal();
	double temps[] = {0.01, 0.1, 1.0};
	for (int c = 0; c < 3; c++) {
		l2_pseudo_combine(s, t, K, D, temps[c], h);
		double w[4], z = 0, acc[7] = {0}, n = 0;
		for (int j = 0; j < K; j++) z += w[j] = exp(s[j] / temps[c]);
		for (int j = 0; j < K; j++) {
			double nt = 0;
			for (int d = 0; d < D; d++) nt += (double)t[j * D + d] * t[j * D + d];
			for (int d = 0; d < D; d++) acc[d] += w[j] / z * t[j * D + d] / sqrt(nt);
		}
		for (int d = 0; d < D; d++) n += acc[d] * acc[d];
		for (int d = 0; d < D; d++) acc[d] /= sqrt(n);
		CHECK_ARRAY_CLOSE_D(h, acc, (size_t)D, 1e-7, 1e-6);
	}
	/* K = 1: the nearest caption itself, normalised */
	l2_pseudo_combine(s, t, 1, D, 0.05, h);
	double n = 0, r[7];
	for (int d = 0; d < D; d++) n += (double)t[d] * t[d];
	for (int d = 0; d < D; d++) r[d] = t[d] / sqrt(n);
	CHECK_ARRAY_CLOSE_D(h, r, (size_t)D, 1e-7, 1e-6);
}

static void test_gaussian(void)
{
	int D = 512, N = 200;
	float f[512], out[512], out2[512];
	double mean_cos = 0;
	for (int i = 0; i < N; i++) {
		double nf = 0;
		for (int d = 0; d < D; d++) {
			f[d] = (float)(3 * check_normal());
			nf += (double)f[d] * f[d];
		}
		l2_pseudo_gaussian(f, D, 3.0, 42, (uint64_t)i, out);
		double c = 0, no = 0;
		for (int d = 0; d < D; d++) c += (double)out[d] * f[d], no += (double)out[d] * out[d];
		CHECK_CLOSE(no, 1.0, 1e-6, 0);
		mean_cos += c / sqrt(nf) / N;
		l2_pseudo_gaussian(f, D, 3.0, 42, (uint64_t)i, out2);
		CHECK(!memcmp(out, out2, sizeof out));
	}
	/* normalize(f^ + 3 eps^): cos with f is about 1/sqrt(10) = 0.316 */
	CHECK_CLOSE(mean_cos, 1 / sqrt(10.0), 0.01, 0);
	/* xi = 0 gives f itself; another seed gives other noise */
	l2_pseudo_gaussian(f, D, 0.0, 1, 0, out);
	double nf = 0;
	for (int d = 0; d < D; d++) nf += (double)f[d] * f[d];
	for (int d = 0; d < D; d++) CHECK_CLOSE(out[d], f[d] / sqrt(nf), 1e-7, 1e-6);
	l2_pseudo_gaussian(f, D, 3.0, 1, 0, out);
	l2_pseudo_gaussian(f, D, 3.0, 2, 0, out2);
	CHECK(memcmp(out, out2, sizeof out) != 0);
	/* in batches, a record's noise is keyed by its key: the same record gives
	 * the same bytes wherever it stands, and other keys give other noise */
	L2PseudoOptions o;
	l2_pseudo_defaults(&o);
	o.mode = L2_PSEUDO_GAUSSIAN, o.batch = 3, o.seed = 9;
	L2PseudoBatch *b1 = l2_pseudo_batch_new(&o, D, 0), *b2 = l2_pseudo_batch_new(&o, D, 0);
	const char *keys[] = {"a.png", "b.png", "c.png"};
	float g[3][512];
	for (int i = 0; i < 3; i++)
		for (int d = 0; d < D; d++) g[i][d] = (float)check_normal();
	for (int i = 0; i < 3; i++) {
		L2Record r1 = {.key = keys[i], .key_len = (uint32_t)strlen(keys[i]), .vec = g[i]};
		L2Record r2 = {.key = keys[2 - i], .key_len = (uint32_t)strlen(keys[2 - i]), .vec = g[2 - i]};
		l2_pseudo_batch_add(b1, &r1);
		l2_pseudo_batch_add(b2, &r2);
	}
	l2_pseudo_batch_process(b1);
	l2_pseudo_batch_process(b2);
	for (int i = 0; i < 3; i++) {
		CHECK(!memcmp(b1->h + (size_t)i * D, b2->h + (size_t)(2 - i) * D, (size_t)D * sizeof(float)));
		l2_pseudo_gaussian(g[i], D, o.xi, 9, l2_pseudo_key_stream(keys[i], strlen(keys[i])), out);
		CHECK_ARRAY_CLOSE_F(b1->h + (size_t)i * D, out, (size_t)D, 1e-6, 1e-5); /* f normalised first */
	}
	l2_pseudo_batch_free(b1);
	l2_pseudo_batch_free(b2);
}

static void test_normal_generator(void)
{
	int n = 200000;
	double s = 0, s2 = 0, s4 = 0;
	for (int i = 0; i < n; i++) {
		double x = l2_pseudo_normal(7, 3, (uint64_t)i);
		s += x, s2 += x * x, s4 += x * x * x * x;
	}
	CHECK_CLOSE(s / n, 0, 0.01, 0);
	CHECK_CLOSE(s2 / n, 1, 0.02, 0);
	CHECK_CLOSE(s4 / n, 3, 0.1, 0);
	CHECK(l2_pseudo_normal(7, 3, 5) == l2_pseudo_normal(7, 3, 5));
	CHECK(l2_pseudo_normal(7, 3, 5) != l2_pseudo_normal(7, 4, 5));
}

/* synthetic modality gap: pairs at cos ~0.3; retrieval then optimisation
 * raises in-batch accuracy and brings h closer to the held-out true caption */
static void test_optimisation_helps(void)
{
	int N = 512, M = 4096, D = 128, K = 8, C = 64;
	float *f = malloc((size_t)N * D * 4), *ts = malloc((size_t)N * D * 4), *cp = malloc((size_t)M * D * 4);
	l2_pseudo_synthetic(N, M, D, C, 5, f, ts, cp);
	double pc = 0;
	for (int i = 0; i < N; i++)
		for (int d = 0; d < D; d++) pc += (double)f[i * D + d] * ts[i * D + d] / N;
	CHECK_MSG(pc > 0.25 && pc < 0.35, "pair cosine %g, expected about 0.3", pc);
	int *idx = malloc((size_t)N * K * sizeof *idx);
	float *sc = malloc((size_t)N * K * 4), *t = malloc((size_t)N * K * D * 4);
	l2_pseudo_topk(f, N, cp, M, D, K, idx, sc);
	for (int i = 0; i < N * K; i++) memcpy(t + (size_t)i * D, cp + (size_t)idx[i] * D, D * 4);
	for (int i = 1; i < K; i++) CHECK(sc[i - 1] >= sc[i]);
	L2PseudoOptions o;
	l2_pseudo_defaults(&o);
	o.batch = 128;
	L2PseudoBatch *b = l2_pseudo_batch_new(&o, D, K);
	L2PseudoStats before = {0}, after = {0};
	double ct0 = 0, ct1 = 0;
	for (int i = 0; i < N; i++) {
		char key[16];
		snprintf(key, sizeof key, "%d", i);
		L2Record r = {.key = key, .key_len = (uint32_t)strlen(key), .vec = f + (size_t)i * D, .k = K,
			      .nscore = sc + (size_t)i * K, .nvec = t + (size_t)i * K * D};
		l2_pseudo_batch_add(b, &r);
		if (b->n == o.batch) {
			l2_pseudo_batch_process(b);
			before.n += b->before.n, before.correct += b->before.correct;
			after.n += b->after.n, after.correct += b->after.correct;
			CHECK(b->loss1 < b->loss0);
			for (int j = 0; j < b->n; j++)
				for (int d = 0; d < D; d++) {
					int g = i - b->n + 1 + j; /* the batch holds records i-n+1..i */
					ct0 += (double)b->h0[j * D + d] * ts[(size_t)g * D + d] / N;
					ct1 += (double)b->h[j * D + d] * ts[(size_t)g * D + d] / N;
				}
			l2_pseudo_batch_clear(b);
		}
	}
	double a0 = before.correct / before.n, a1 = after.correct / after.n;
	printf("# synthetic: in-batch acc %.3f -> %.3f, cos(h, true caption) %.3f -> %.3f\n", a0, a1, ct0, ct1);
	CHECK_MSG(a1 > a0 + 0.1, "accuracy %g -> %g", a0, a1);
	CHECK_MSG(ct1 > ct0, "cos to true caption %g -> %g", ct0, ct1);
	l2_pseudo_batch_free(b);
	free(f), free(ts), free(cp), free(idx), free(sc), free(t);
}

/* tests/ref/make_pseudo.py: torch autograd + torch.optim.Adam in float64.
 * The double path must agree to rounding; the float path (what the tool
 * runs) to float32 accuracy. */
static void test_torch_goldens(void)
{
	const char *dir = "tests/ref/pseudo";
	char path[256], name[64];
	snprintf(path, sizeof path, "%s/cases.txt", dir);
	FILE *cf = fopen(path, "r");
	CHECK_MSG(cf != NULL, "%s missing (run from the repository root)", path);
	if (!cf) return;
	int k, steps, batch, ncase = 0;
	double tr, tau, lambda, lr;
	while (fscanf(cf, "%63s %d %lf %lf %lf %d %lf %d", name, &k, &tr, &tau, &lambda, &steps, &lr, &batch) == 8) {
		ncase++;
		L2Npy ref, rl;
		snprintf(path, sizeof path, "%s/%s.npy", dir, name);
		l2_npy_read(path, &ref);
		snprintf(path, sizeof path, "%s/%s.loss.npy", dir, name);
		l2_npy_read(path, &rl);
		CHECK(ref.is_f64 && ref.ndim == 2);
		int N = (int)ref.shape[0], D = (int)ref.shape[1];
		const double *want = ref.data, *wl = rl.data;
		L2PseudoOptions o;
		l2_pseudo_defaults(&o);
		o.k = k, o.retrieval_temp = tr, o.tau = tau, o.lambda = lambda, o.steps = steps, o.lr = lr, o.batch = batch;
		snprintf(path, sizeof path, "%s/neighbors.l2f", dir);
		L2StreamReader *r = l2_stream_open(path);
		L2PseudoBatch *b = l2_pseudo_batch_new(&o, D, k);
		float *got = malloc((size_t)N * D * sizeof *got);
		double *fd = malloc((size_t)N * D * sizeof *fd), *h0d = malloc((size_t)N * D * sizeof *h0d);
		L2Record rec;
		int n = 0, more = 1, nb = 0;
		while (more) {
			more = l2_stream_next(r, &rec);
			if (more) {
				l2_pseudo_batch_add(b, &rec);
				/* the double path's inputs: the float32 features, in double */
				double sc[8], mx = -1e300, z = 0;
				for (int j = 0; j < k; j++) mx = fmax(mx, rec.nscore[j] / tr);
				for (int j = 0; j < k; j++) z += sc[j] = exp(rec.nscore[j] / tr - mx);
				double nf = 0, nh = 0;
				for (int d = 0; d < D; d++) nf += (double)rec.vec[d] * rec.vec[d];
				for (int d = 0; d < D; d++) fd[(size_t)n * D + d] = rec.vec[d] / sqrt(nf), h0d[(size_t)n * D + d] = 0;
				for (int j = 0; j < k; j++) {
					const float *t = rec.nvec + (size_t)j * D;
					double nt = 0;
					for (int d = 0; d < D; d++) nt += (double)t[d] * t[d];
					for (int d = 0; d < D; d++) h0d[(size_t)n * D + d] += sc[j] / z * t[d] / sqrt(nt);
				}
				for (int d = 0; d < D; d++) nh += h0d[(size_t)n * D + d] * h0d[(size_t)n * D + d];
				for (int d = 0; d < D; d++) h0d[(size_t)n * D + d] /= sqrt(nh);
				n++;
			}
			if (b->n == batch || (!more && b->n)) {
				l2_pseudo_batch_process(b);
				size_t first = (size_t)n - (size_t)b->n; /* the batch's first record */
				memcpy(got + first * D, b->h, (size_t)b->n * D * sizeof(float));
				CHECK_CLOSE(b->loss0, wl[2 * nb], 1e-5, 1e-5);
				CHECK_CLOSE(b->loss1, wl[2 * nb + 1], 1e-5, 1e-5);
				/* double path on the same batch */
				int B = b->n;
				double *hd = malloc((size_t)B * D * sizeof *hd),
				       *w = malloc(l2_pseudo_opt_work_size(B, D) * sizeof(double)), l0, l1;
				l2_pseudo_optimize_d(hd, fd + first * D, h0d + first * D, B, D, &o, w, &l0, &l1);
				CHECK_CLOSE(l0, wl[2 * nb], 1e-12, 1e-12);
				CHECK_CLOSE(l1, wl[2 * nb + 1], 1e-12, 1e-12);
				double worst = 0;
				for (size_t e = 0; e < (size_t)B * D; e++)
					worst = fmax(worst, fabs(hd[e] - want[first * D + e]));
				CHECK_MSG(worst < 1e-12, "%s batch %d: double path differs from torch by %g", name, nb, worst);
				free(hd), free(w);
				nb++;
				l2_pseudo_batch_clear(b);
			}
		}
		CHECK(n == N && 2 * nb == (int)l2_npy_count(&rl));
		CHECK_ARRAY_CLOSE_D(got, want, (size_t)N * D, 2e-6, 0); /* measured: 5e-7 */
		l2_stream_close(r);
		l2_pseudo_batch_free(b);
		free(got), free(fd), free(h0d);
		l2_npy_free(&ref);
		l2_npy_free(&rl);
	}
	fclose(cf);
	CHECK(ncase == 4);
}

/* Whole batches in parallel, each single-threaded: the same bytes for any
 * thread count.  (OpenBLAS's own threading is not bit-stable: 1 vs 2 BLAS
 * threads differ in the last bits, which is why the tool does not use it.) */
static void test_threads_deterministic(void)
{
	int N = 1000, D = 512, K = 4;
	float *f = malloc((size_t)N * D * 4), *t = malloc((size_t)N * K * D * 4), sc[4] = {0.4f, 0.35f, 0.3f, 0.2f};
	for (size_t e = 0; e < (size_t)N * D; e++) f[e] = (float)check_normal();
	for (size_t e = 0; e < (size_t)N * K * D; e++) t[e] = (float)check_normal();
	L2PseudoOptions o;
	l2_pseudo_defaults(&o);
	o.steps = 3;
	o.batch = 300;
	float *out[3];
	l2_blas_threads(1);
	for (int run = 0; run < 3; run++) {
		int thr = run + 1, nb = 0;
		L2PseudoBatch *b[4];
		size_t first[4] = {0};
		for (int i = 0; i < 4; i++) b[i] = l2_pseudo_batch_new(&o, D, K);
		for (int i = 0; i < N; i++) {
			if (b[nb]->n == o.batch) nb++;
			if (b[nb]->n == 0) first[nb] = (size_t)i;
			L2Record r = {.key = "k", .key_len = 1, .vec = f + (size_t)i * D, .k = K, .nscore = sc,
				      .nvec = t + (size_t)i * K * D};
			l2_pseudo_batch_add(b[nb], &r);
		}
		l2_pseudo_batches_process(b, nb + 1, thr);
		out[run] = malloc((size_t)N * D * 4);
		for (int i = 0; i <= nb; i++) {
			memcpy(out[run] + first[i] * D, b[i]->h, (size_t)b[i]->n * D * 4);
			l2_pseudo_batch_free(b[i]);
		}
		for (int i = nb + 1; i < 4; i++) l2_pseudo_batch_free(b[i]);
	}
	CHECK(!memcmp(out[0], out[1], (size_t)N * D * 4));
	CHECK(!memcmp(out[0], out[2], (size_t)N * D * 4));
	for (int run = 0; run < 3; run++) free(out[run]);
	free(f), free(t);
}

static void test_modes_parse(void)
{
	CHECK(l2_pseudo_mode_parse("optimize") == L2_PSEUDO_OPTIMIZE);
	CHECK(l2_pseudo_mode_parse("retrieve") == L2_PSEUDO_RETRIEVE);
	CHECK(l2_pseudo_mode_parse("gaussian") == L2_PSEUDO_GAUSSIAN);
	CHECK(l2_pseudo_mode_parse("x") == -1);
	CHECK(!strcmp(l2_pseudo_mode_name(L2_PSEUDO_GAUSSIAN), "gaussian"));
}

int main(void)
{
	RUN(test_gradient_finite_differences);
	RUN(test_float_matches_double);
	RUN(test_adam_reference);
	RUN(test_combine);
	RUN(test_gaussian);
	RUN(test_normal_generator);
	RUN(test_optimisation_helps);
	RUN(test_torch_goldens);
	RUN(test_threads_deterministic);
	RUN(test_modes_parse);
	return check_done();
}
