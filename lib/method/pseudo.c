/* pseudo.c — Lafite2 pseudo text features: retrieval combine, contrastive
 * latent optimisation with Adam, Lafite's Gaussian baseline, diagnostics,
 * batches, and synthetic modality-gap features (see pseudo.h).
 *
 * The objective, its gradient and the Adam loop are written once below the
 * "precision template" line and compiled twice by including this file into
 * itself: once with T = float (sgemm; what the tool runs) and once with
 * T = double (dgemm; what the finite-difference test checks). */
#ifndef PSEUDO_T

#include "method/pseudo.h"
#include "core/hash.h"
#include "core/parallel.h"
#include "core/util.h"
#include "core/vec.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

void l2_pseudo_defaults(L2PseudoOptions *o)
{
	memset(o, 0, sizeof *o);
	o->mode = L2_PSEUDO_OPTIMIZE;
	o->k = L2_PSEUDO_DEF_K;
	o->retrieval_temp = L2_PSEUDO_DEF_TR;
	o->tau = L2_PSEUDO_DEF_TAU;
	o->lambda = L2_PSEUDO_DEF_LAMBDA;
	o->steps = L2_PSEUDO_DEF_STEPS;
	o->lr = L2_PSEUDO_DEF_LR;
	o->batch = L2_PSEUDO_DEF_BATCH;
	o->xi = L2_PSEUDO_DEF_XI;
	o->seed = 0;
}

static const char *mode_names[] = {"optimize", "retrieve", "gaussian"};

const char *l2_pseudo_mode_name(L2PseudoMode m) { return mode_names[m]; }

int l2_pseudo_mode_parse(const char *s)
{
	for (int i = 0; i < 3; i++)
		if (!strcmp(s, mode_names[i])) return i;
	return -1;
}

/* ---- counter-based random numbers ------------------------------------------ */

/* SplitMix64's step as a pure function of z (l2_splitmix64 without the state) */
static inline uint64_t mix64(uint64_t z) { return l2_mix64(z + L2_GOLDEN); }

/* uniform in (0, 1): never 0, so log() is finite */
static inline double uniform01(uint64_t seed, uint64_t stream, uint64_t counter)
{
	uint64_t z = mix64(seed ^ mix64(stream ^ mix64(counter)));
	return ((z >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

double l2_pseudo_normal(uint64_t seed, uint64_t stream, uint64_t counter)
{
	/* Box–Muller on two draws of their own counters */
	double u = uniform01(seed, stream, 2 * counter), v = uniform01(seed, stream, 2 * counter + 1);
	return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* eps: (D) scratch */
static void gaussian_into(const float *f, int D, double xi, uint64_t seed, uint64_t stream, float *out, double *eps)
{
	double nf = 0, ne = 0;
	for (int d = 0; d < D; d++) {
		eps[d] = l2_pseudo_normal(seed, stream, (uint64_t)d);
		ne += eps[d] * eps[d];
		nf += (double)f[d] * f[d];
	}
	double sc = ne > 0 ? xi * sqrt(nf) / sqrt(ne) : 0, nn = 0;
	for (int d = 0; d < D; d++) {
		eps[d] = f[d] + sc * eps[d];
		nn += eps[d] * eps[d];
	}
	double inv = nn > 0 ? 1 / sqrt(nn) : 0;
	for (int d = 0; d < D; d++) out[d] = (float)(eps[d] * inv);
}

void l2_pseudo_gaussian(const float *f, int D, double xi, uint64_t seed, uint64_t stream, float *out)
{
	double *eps = l2_malloc((size_t)D * sizeof *eps);
	gaussian_into(f, D, xi, seed, stream, out, eps);
	free(eps);
}

uint64_t l2_pseudo_key_stream(const char *key, size_t len)
{
	return l2_fnv1a64(L2_FNV_INIT, key, len);
}

/* ---- retrieval combine ---------------------------------------------------------- */

/* acc: (D) scratch */
static void combine_into(const float *score, const float *t, int K, int D, double temp, float *h0, double *acc)
{
	double mx = -INFINITY, z = 0;
	memset(acc, 0, (size_t)D * sizeof *acc);
	for (int j = 0; j < K; j++)
		if (score[j] / temp > mx) mx = score[j] / temp;
	for (int j = 0; j < K; j++) z += exp(score[j] / temp - mx);
	for (int j = 0; j < K; j++) {
		const float *tj = t + (size_t)j * D;
		double n = 0;
		for (int d = 0; d < D; d++) n += (double)tj[d] * tj[d];
		double w = exp(score[j] / temp - mx) / z * (n > 0 ? 1 / sqrt(n) : 0);
		for (int d = 0; d < D; d++) acc[d] += w * tj[d];
	}
	double n = 0;
	for (int d = 0; d < D; d++) n += acc[d] * acc[d];
	double inv = n > 0 ? 1 / sqrt(n) : 0;
	for (int d = 0; d < D; d++) h0[d] = (float)(acc[d] * inv);
}

void l2_pseudo_combine(const float *score, const float *t, int K, int D, double temp, float *h0)
{
	double *acc = l2_malloc((size_t)D * sizeof *acc);
	combine_into(score, t, K, D, temp, h0, acc);
	free(acc);
}

/* ---- objective, gradient, Adam (both precisions) --------------------------------- */

size_t l2_pseudo_work_size(int B, int D) { return (size_t)B * D * 2 + (size_t)B * B + (size_t)B; }
size_t l2_pseudo_opt_work_size(int B, int D) { return l2_pseudo_work_size(B, D) + (size_t)B * D * 3; }

#define PSEUDO_T float
#define PSEUDO_SUF(name) name##_f
#define PSEUDO_GEMM cblas_sgemm
#define PSEUDO_EXP expf
#define PSEUDO_LOG logf
#define PSEUDO_SQRT sqrtf
#include "method/pseudo.c"
#undef PSEUDO_T
#undef PSEUDO_SUF
#undef PSEUDO_GEMM
#undef PSEUDO_EXP
#undef PSEUDO_LOG
#undef PSEUDO_SQRT

#define PSEUDO_T double
#define PSEUDO_SUF(name) name##_d
#define PSEUDO_GEMM cblas_dgemm
#define PSEUDO_EXP exp
#define PSEUDO_LOG log
#define PSEUDO_SQRT sqrt
#include "method/pseudo.c"
#undef PSEUDO_T
#undef PSEUDO_SUF
#undef PSEUDO_GEMM
#undef PSEUDO_EXP
#undef PSEUDO_LOG
#undef PSEUDO_SQRT

/* ---- diagnostics -------------------------------------------------------------------- */

/* u: (B, D), sim: (B, B) scratch */
static void stats_into(L2PseudoStats *s, const float *h, const float *fn, const float *t, int B, int K, int D, float *u,
		       float *sim)
{
	memcpy(u, h, (size_t)B * D * sizeof *u);
	l2_normalize_rows(u, B, D);
	/* sim (B, B) = u fn^T */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, B, D, 1.0f, u, D, fn, D, 0.0f, sim, B);
	for (int i = 0; i < B; i++) {
		const float *ui = u + (size_t)i * D;
		double ci = 0;
		for (int d = 0; d < D; d++) ci += (double)ui[d] * fn[(size_t)i * D + d];
		s->cos_img += ci;
		int ok = 1;
		for (int j = 0; j < B && ok; j++)
			if (j != i && sim[(size_t)i * B + j] >= sim[(size_t)i * B + i]) ok = 0;
		s->correct += ok;
		if (K > 0) {
			double best = -INFINITY;
			for (int j = 0; j < K; j++) {
				const float *tj = t + ((size_t)i * K + j) * D;
				double c = 0;
				for (int d = 0; d < D; d++) c += (double)ui[d] * tj[d];
				if (c > best) best = c;
			}
			s->cos_txt += best;
			s->has_txt = 1;
		}
	}
	s->n += B;
}

void l2_pseudo_stats_add(L2PseudoStats *s, const float *h, const float *fn, const float *t, int B, int K, int D)
{
	if (B <= 0) return;
	float *u = l2_malloc(l2_mul_size(l2_mul_size((size_t)B, D), sizeof *u));
	float *sim = l2_malloc(l2_mul_size(l2_mul_size((size_t)B, B), sizeof *sim));
	stats_into(s, h, fn, t, B, K, D, u, sim);
	free(u);
	free(sim);
}

/* ---- batches ---------------------------------------------------------------------------- */

L2PseudoBatch *l2_pseudo_batch_new(const L2PseudoOptions *o, int D, int K)
{
	L2PseudoBatch *b = l2_calloc(1, sizeof *b);
	b->opt = *o;
	b->D = D;
	b->K = K;
	size_t B = (size_t)o->batch, BD = l2_mul_size(B, (size_t)D);
	b->key = l2_calloc(B, sizeof *b->key);
	b->f = l2_malloc_aligned(BD * sizeof(float));
	b->h0 = l2_malloc_aligned(BD * sizeof(float));
	b->h = l2_malloc_aligned(BD * sizeof(float));
	if (K > 0) {
		b->score = l2_malloc(l2_mul_size(B, (size_t)K) * sizeof(float));
		b->t = l2_malloc_aligned(l2_mul_size(BD, (size_t)K) * sizeof(float));
	}
	if (o->mode == L2_PSEUDO_OPTIMIZE)
		b->work = l2_malloc_aligned(l2_pseudo_opt_work_size(o->batch, D) * sizeof(float));
	/* scratch of the diagnostics (u, sim) and of combine/gaussian, made once:
	 * per-batch allocations of this size cost page faults every batch */
	b->scratch = l2_malloc_aligned((BD + l2_mul_size(B, B)) * sizeof(float));
	b->dscratch = l2_malloc_aligned((size_t)D * sizeof(double));
	return b;
}

void l2_pseudo_batch_add(L2PseudoBatch *b, const L2Record *rec)
{
	if (b->n >= b->opt.batch) l2_die("internal: pseudo batch overflow");
	size_t i = (size_t)b->n, D = (size_t)b->D;
	b->key[i] = l2_malloc(rec->key_len + 1);
	memcpy(b->key[i], rec->key, rec->key_len + 1);
	memcpy(b->f + i * D, rec->vec, D * sizeof(float));
	l2_normalize_rows(b->f + i * D, 1, D);
	if (b->K > 0) {
		memcpy(b->score + i * b->K, rec->nscore, (size_t)b->K * sizeof(float));
		memcpy(b->t + i * b->K * D, rec->nvec, (size_t)b->K * D * sizeof(float));
		l2_normalize_rows(b->t + i * b->K * D, (size_t)b->K, D);
	}
	b->n++;
}

void l2_pseudo_batch_process(L2PseudoBatch *b)
{
	int B = b->n, D = b->D, K = b->K;
	size_t BD = (size_t)B * D;
	memset(&b->before, 0, sizeof b->before);
	memset(&b->after, 0, sizeof b->after);
	b->loss0 = b->loss1 = NAN;
	if (B == 0) return;
	if (b->opt.mode == L2_PSEUDO_GAUSSIAN) {
		for (int i = 0; i < B; i++)
			gaussian_into(b->f + (size_t)i * D, D, b->opt.xi, b->opt.seed,
				      l2_pseudo_key_stream(b->key[i], strlen(b->key[i])), b->h + (size_t)i * D, b->dscratch);
		stats_into(&b->before, b->h, b->f, b->t, B, K, D, b->scratch, b->scratch + BD);
		b->after = b->before;
		return;
	}
	for (int i = 0; i < B; i++)
		combine_into(b->score + (size_t)i * K, b->t + (size_t)i * K * D, K, D, b->opt.retrieval_temp,
			     b->h0 + (size_t)i * D, b->dscratch);
	stats_into(&b->before, b->h0, b->f, b->t, B, K, D, b->scratch, b->scratch + BD);
	memcpy(b->h, b->h0, BD * sizeof(float));
	if (b->opt.mode == L2_PSEUDO_OPTIMIZE) {
		l2_pseudo_optimize_f(b->h, b->f, b->h0, B, D, &b->opt, b->work, &b->loss0, &b->loss1);
		stats_into(&b->after, b->h, b->f, b->t, B, K, D, b->scratch, b->scratch + BD);
	} else {
		b->after = b->before;
	}
}

typedef struct {
	L2PseudoBatch **b;
	int n, next;
	pthread_mutex_t mu;
} BatchQueue;

static void batch_worker(void *arg, int worker)
{
	BatchQueue *q = arg;
	for (;;) {
		pthread_mutex_lock(&q->mu);
		int i = q->next++;
		pthread_mutex_unlock(&q->mu);
		if (i >= q->n) return;
		l2_pseudo_batch_process(q->b[i]);
	}
}

void l2_pseudo_batches_process(L2PseudoBatch **b, int n, int threads)
{
	if (threads > n) threads = n;
	if (threads <= 1) {
		for (int i = 0; i < n; i++) l2_pseudo_batch_process(b[i]);
		return;
	}
	BatchQueue q = {.b = b, .n = n, .next = 0};
	pthread_mutex_init(&q.mu, NULL);
	l2_parallel_workers(threads, batch_worker, &q);
	pthread_mutex_destroy(&q.mu);
}

void l2_pseudo_batch_clear(L2PseudoBatch *b)
{
	for (int i = 0; i < b->n; i++) {
		free(b->key[i]);
		b->key[i] = NULL;
	}
	b->n = 0;
}

void l2_pseudo_batch_free(L2PseudoBatch *b)
{
	if (!b) return;
	l2_pseudo_batch_clear(b);
	free(b->key);
	l2_free_aligned(b->f);
	l2_free_aligned(b->h0);
	l2_free_aligned(b->h);
	free(b->score);
	l2_free_aligned(b->t);
	l2_free_aligned(b->work);
	l2_free_aligned(b->scratch);
	l2_free_aligned(b->dscratch);
	free(b);
}

/* ---- synthetic modality-gap features ------------------------------------------------------ */

/* unit random direction from the counter generator */
static void rand_unit(double *v, int D, uint64_t seed, uint64_t stream)
{
	double n = 0;
	for (int d = 0; d < D; d++) {
		v[d] = l2_pseudo_normal(seed, stream, (uint64_t)d);
		n += v[d] * v[d];
	}
	for (int d = 0; d < D; d++) v[d] /= sqrt(n);
}

/* Noise and gap norms relative to a unit semantic vector: a pair's cosine is
 * about 1 / (1 + NOISE^2 + GAP^2) = 0.30; unrelated captions share the text
 * gap and so sit at about GAP^2 / (1 + NOISE^2 + GAP^2) = 0.30 from each other. */
#define SYN_SPREAD 1.0 /* within-concept variation of the semantics */
#define SYN_NOISE 1.15
#define SYN_GAP 1.0

static void synth_item(int D, int concepts, uint64_t seed, uint64_t item, const double *cent, const double *gimg,
		       const double *gtxt, float *f, float *t, double *tmp, double *s)
{
	int c = (int)(mix64(seed ^ mix64(item ^ 0xc0ffee)) % (uint64_t)concepts);
	rand_unit(tmp, D, seed, 4 * item + 1000003);
	double n = 0;
	for (int d = 0; d < D; d++) {
		s[d] = cent[(size_t)c * D + d] + SYN_SPREAD * tmp[d];
		n += s[d] * s[d];
	}
	for (int d = 0; d < D; d++) s[d] /= sqrt(n);
	for (int pass = 0; pass < 2; pass++) {
		float *out = pass ? t : f;
		if (!out) continue;
		const double *g = pass ? gtxt : gimg;
		rand_unit(tmp, D, seed, 4 * item + 1000004 + (uint64_t)pass);
		for (int d = 0; d < D; d++) out[d] = (float)(s[d] + SYN_NOISE * tmp[d] + SYN_GAP * g[d]);
		l2_normalize_rows(out, 1, (size_t)D);
	}
}

void l2_pseudo_synthetic(int n, int m, int D, int concepts, uint64_t seed, float *f, float *tstar, float *corpus)
{
	double *cent = l2_malloc(l2_mul_size((size_t)concepts, (size_t)D) * sizeof *cent);
	double *gimg = l2_malloc((size_t)D * sizeof(double)), *gtxt = l2_malloc((size_t)D * sizeof(double));
	double *tmp = l2_malloc((size_t)D * sizeof(double)), *s = l2_malloc((size_t)D * sizeof(double));
	for (int c = 0; c < concepts; c++) rand_unit(cent + (size_t)c * D, D, seed, (uint64_t)c + 10);
	rand_unit(gimg, D, seed, 1);
	rand_unit(gtxt, D, seed, 2);
	for (int i = 0; i < n; i++)
		synth_item(D, concepts, seed, (uint64_t)i, cent, gimg, gtxt, f + (size_t)i * D,
			   tstar ? tstar + (size_t)i * D : NULL, tmp, s);
	for (int i = 0; i < m; i++)
		synth_item(D, concepts, seed, (uint64_t)n + (uint64_t)i, cent, gimg, gtxt, NULL, corpus + (size_t)i * D,
			   tmp, s);
	free(cent);
	free(gimg);
	free(gtxt);
	free(tmp);
	free(s);
}

void l2_pseudo_topk(const float *q, int n, const float *c, int m, int D, int K, int *idx, float *score)
{
	const int QB = 256;
	float *sim = l2_malloc(l2_mul_size((size_t)QB, (size_t)m) * sizeof *sim);
	for (int q0 = 0; q0 < n; q0 += QB) {
		int nb = n - q0 < QB ? n - q0 : QB;
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, m, D, 1.0f, q + (size_t)q0 * D, D, c, D, 0.0f,
			    sim, m);
		for (int i = 0; i < nb; i++) {
			int *ix = idx + (size_t)(q0 + i) * K;
			float *sc = score + (size_t)(q0 + i) * K;
			int have = 0;
			for (int j = 0; j < m; j++) {
				float v = sim[(size_t)i * m + j];
				if (have == K && v <= sc[K - 1]) continue;
				int p = have < K ? have++ : K - 1;
				while (p > 0 && sc[p - 1] < v) {
					sc[p] = sc[p - 1];
					ix[p] = ix[p - 1];
					p--;
				}
				sc[p] = v;
				ix[p] = j;
			}
		}
	}
	free(sim);
}

#else /* ---- precision template: T = PSEUDO_T ---------------------------------------- */

/* L and dL/dh for raw h (B, D).  With u_i = h_i / |h_i| and
 * S_ij = u_i . fn_j / tau, P = softmax rows of S:
 *   dL/du_i = (1/(B tau)) sum_j (P_ij - [i == j]) fn_j          (one GEMM)
 *   dL/dh_i = (dL/du_i - (dL/du_i . u_i) u_i) / |h_i| + 2 lambda/B (h_i - h0_i)
 * work: U (B, D), S (B, B), G (B, D), norms (B). */
double PSEUDO_SUF(l2_pseudo_loss)(const PSEUDO_T *h, const PSEUDO_T *fn, const PSEUDO_T *h0, int B, int D,
				  double tau, double lambda, PSEUDO_T *grad, PSEUDO_T *work)
{
	typedef PSEUDO_T T;
	size_t BD = (size_t)B * D;
	T *U = work, *S = U + BD, *G = S + (size_t)B * B, *nrm = G + BD;
	for (int i = 0; i < B; i++) {
		const T *hi = h + (size_t)i * D;
		T *ui = U + (size_t)i * D;
		double n2 = 0;
		for (int d = 0; d < D; d++) n2 += (double)hi[d] * hi[d];
		T n = (T)sqrt(n2), inv = n > 0 ? (T)1 / n : 0;
		nrm[i] = n;
		for (int d = 0; d < D; d++) ui[d] = hi[d] * inv;
	}
	/* S (B, B) = U fn^T / tau */
	PSEUDO_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, B, B, D, (T)(1.0 / tau), U, D, fn, D, (T)0, S, B);
	double loss = 0;
	T coef = (T)(1.0 / (B * tau));
	for (int i = 0; i < B; i++) {
		T *si = S + (size_t)i * B;
		T mx = si[0];
		for (int j = 1; j < B; j++)
			if (si[j] > mx) mx = si[j];
		T z = 0;
		for (int j = 0; j < B; j++) {
			si[j] = PSEUDO_EXP(si[j] - mx);
			z += si[j];
		}
		/* -log P_ii = log z - (S_ii - mx); si[i] holds exp(S_ii - mx) */
		loss += (double)PSEUDO_LOG(z) - (double)PSEUDO_LOG(si[i]);
		if (grad) {
			T iz = 1 / z;
			for (int j = 0; j < B; j++) si[j] = si[j] * iz * coef;
			si[i] -= coef;
		}
	}
	loss /= B;
	double prox = 0;
	for (size_t e = 0; e < BD; e++) {
		double dv = (double)h[e] - h0[e];
		prox += dv * dv;
	}
	loss += lambda * prox / B;
	if (!grad) return loss;
	/* G (B, D) = S fn : dL/du */
	PSEUDO_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, D, B, (T)1, S, B, fn, D, (T)0, G, D);
	T pc = (T)(2.0 * lambda / B);
	for (int i = 0; i < B; i++) {
		const T *ui = U + (size_t)i * D, *gi = G + (size_t)i * D, *hi = h + (size_t)i * D,
			*h0i = h0 + (size_t)i * D;
		T *oi = grad + (size_t)i * D;
		T dot = 0;
		for (int d = 0; d < D; d++) dot += gi[d] * ui[d];
		T inv = nrm[i] > 0 ? (T)1 / nrm[i] : 0;
		for (int d = 0; d < D; d++) oi[d] = (gi[d] - dot * ui[d]) * inv + pc * (hi[d] - h0i[d]);
	}
	return loss;
}

void PSEUDO_SUF(l2_pseudo_optimize)(PSEUDO_T *h, const PSEUDO_T *fn, const PSEUDO_T *h0, int B, int D,
				    const L2PseudoOptions *o, PSEUDO_T *work, double *loss0, double *loss1)
{
	typedef PSEUDO_T T;
	size_t BD = (size_t)B * D;
	T *m = work + l2_pseudo_work_size(B, D), *v = m + BD, *g = v + BD;
	const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
	memcpy(h, h0, BD * sizeof(T));
	memset(m, 0, BD * sizeof(T));
	memset(v, 0, BD * sizeof(T));
	double l = 0;
	for (int s = 1; s <= o->steps; s++) {
		l = PSEUDO_SUF(l2_pseudo_loss)(h, fn, h0, B, D, o->tau, o->lambda, g, work);
		if (s == 1 && loss0) *loss0 = l;
		/* torch.optim.Adam: h -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps) */
		double bc1 = 1 - pow(b1, s), bc2 = 1 - pow(b2, s);
		T step = (T)(o->lr / bc1), sb2 = (T)sqrt(bc2);
		for (size_t e = 0; e < BD; e++) {
			m[e] = (T)b1 * m[e] + (T)(1 - b1) * g[e];
			v[e] = (T)b2 * v[e] + (T)(1 - b2) * g[e] * g[e];
			h[e] -= step * m[e] / (PSEUDO_SQRT(v[e]) / sb2 + (T)eps);
		}
	}
	if (loss1 || (loss0 && o->steps == 0)) {
		l = PSEUDO_SUF(l2_pseudo_loss)(h, fn, h0, B, D, o->tau, o->lambda, NULL, work);
		if (loss0 && o->steps == 0) *loss0 = l;
		if (loss1) *loss1 = l;
	}
	for (int i = 0; i < B; i++) {
		T *hi = h + (size_t)i * D;
		double n2 = 0;
		for (int d = 0; d < D; d++) n2 += (double)hi[d] * hi[d];
		T inv = n2 > 0 ? (T)(1 / sqrt(n2)) : 0;
		for (int d = 0; d < D; d++) hi[d] *= inv;
	}
}

#endif
