/* pseudo_synth — synthetic modality-gap features for l2-optimize-pseudo:
 * neighbors streams for benchmarks, the parameter sweep that chose the
 * defaults, and an SGEMM rate probe.  Built by bench/bench_pseudo.sh:
 *
 *   cc -O2 -Ilib bench/pseudo_synth.c build/libl2.a -lopenblas -lm -o pseudo_synth
 *   pseudo_synth neighbors N M D K CONCEPTS SEED [TOTAL] > nb.l2f
 *        N images, exact top-K among M corpus captions; with TOTAL, the N
 *        records are repeated (new keys) until TOTAL records are written
 *   pseudo_synth tune N M D CONCEPTS SEED     the sweep, as Markdown tables
 *   pseudo_synth grid N M D CONCEPTS SEED     second stage: tau x lambda x steps around the best
 *   pseudo_synth sgemm B D                    GFLOP/s of the B x B x D sgemm pair
 *   pseudo_synth streams N M D CONCEPTS SEED IMG.l2f TXT.l2f
 *        plain feature streams, as the CLIP encoders write them: N image
 *        features (keys img0000000.png ...) and a corpus of M caption features
 *        (keys "caption 0" ...); the first n images are the same for any N >= n
 *        (bench/bench_scale.sh)
 *
 * Data model: lib/method/pseudo.c l2_pseudo_synthetic (pair cosine about 0.3). */
#include "method/pseudo.h"
#include "io/stream.h"
#include "core/util.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	int N, M, D, K;
	float *f, *ts, *cp, *sc, *t; /* images, true captions, corpus, scores (N,K), neighbours (N,K,D) */
	int *idx;
} Data;

static void make_data(Data *x, int N, int M, int D, int K, int C, uint64_t seed)
{
	x->N = N, x->M = M, x->D = D, x->K = K;
	x->f = l2_malloc((size_t)N * D * 4);
	x->ts = l2_malloc((size_t)N * D * 4);
	x->cp = l2_malloc((size_t)M * D * 4);
	x->sc = l2_malloc((size_t)N * K * 4);
	x->idx = l2_malloc((size_t)N * K * sizeof(int));
	x->t = l2_malloc((size_t)N * K * D * 4);
	l2_pseudo_synthetic(N, M, D, C, seed, x->f, x->ts, x->cp);
	l2_pseudo_topk(x->f, N, x->cp, M, D, K, x->idx, x->sc);
	for (size_t i = 0; i < (size_t)N * K; i++) memcpy(x->t + i * D, x->cp + (size_t)x->idx[i] * D, (size_t)D * 4);
}

static void cmd_neighbors(int argc, char **argv)
{
	if (argc < 8) l2_die("usage: pseudo_synth neighbors N M D K CONCEPTS SEED [TOTAL]");
	int N = atoi(argv[2]), M = atoi(argv[3]), D = atoi(argv[4]), K = atoi(argv[5]), C = atoi(argv[6]);
	uint64_t seed = strtoull(argv[7], 0, 10);
	long long total = argc > 8 ? atoll(argv[8]) : N;
	Data x;
	make_data(&x, N, M, D, K, C, seed);
	L2StreamWriter *w = l2_stream_create("-", L2_KIND_NEIGHBORS, (uint32_t)D, L2FS_NORMALIZED, (uint32_t)K,
					     (uint64_t)total);
	char key[64], **nk = l2_malloc((size_t)K * sizeof *nk);
	for (int j = 0; j < K; j++) nk[j] = l2_malloc(32);
	for (long long r = 0; r < total; r++) {
		int i = (int)(r % N);
		snprintf(key, sizeof key, "img%06lld.png", r);
		for (int j = 0; j < K; j++) snprintf(nk[j], 32, "caption %d", x.idx[(size_t)i * K + j]);
		l2_stream_write_neighbors(w, key, x.f + (size_t)i * D, (uint32_t)K, (const char *const *)nk,
					  x.sc + (size_t)i * K, x.t + (size_t)i * K * D);
	}
	l2_stream_writer_close(w);
}

/* ---- the sweep ------------------------------------------------------------------------ */

typedef struct {
	double acc_img, acc_cap, cos_img, cos_txt, cos_true, secs;
} Score;

/* run one setting over all N images in batches; score h against the images
 * (in-batch acc), the held-out true captions (cosine, in-batch caption acc)
 * and the nearest retrieved caption */
static Score run(const Data *x, const L2PseudoOptions *o)
{
	Score s = {0};
	int D = x->D, Kk = o->k;
	L2PseudoBatch *b = l2_pseudo_batch_new(o, D, Kk);
	float *tsb = l2_malloc((size_t)o->batch * D * 4);
	double t0 = l2_now();
	for (int i = 0; i <= x->N; i++) {
		if (i < x->N) {
			L2Record r = {.key = "k", .key_len = 1, .vec = x->f + (size_t)i * D, .k = (uint32_t)Kk,
				      .nscore = x->sc + (size_t)i * x->K, .nvec = x->t + (size_t)i * x->K * D};
			l2_pseudo_batch_add(b, &r);
		}
		if (b->n == o->batch || (i == x->N && b->n)) {
			l2_pseudo_batch_process(b);
			s.acc_img += b->after.correct;
			s.cos_img += b->after.cos_img;
			s.cos_txt += b->after.cos_txt;
			size_t first = (size_t)(i < x->N ? i + 1 : i) - (size_t)b->n; /* the batch's first record */
			memcpy(tsb, x->ts + first * D, (size_t)b->n * D * 4);
			L2PseudoStats c = {0};
			l2_pseudo_stats_add(&c, b->h, tsb, NULL, b->n, 0, D);
			s.acc_cap += c.correct;
			s.cos_true += c.cos_img;
			l2_pseudo_batch_clear(b);
		}
	}
	s.secs = l2_now() - t0;
	s.acc_img /= x->N, s.acc_cap /= x->N, s.cos_img /= x->N, s.cos_txt /= x->N, s.cos_true /= x->N;
	l2_pseudo_batch_free(b);
	free(tsb);
	return s;
}

static void row(const char *what, const Data *x, const L2PseudoOptions *o)
{
	Score s = run(x, o);
	printf("| %s | %d | %g | %g | %g | %d | %g | %d | %.3f | %.3f | %.3f | %.3f | %.3f | %.0f |\n", what, o->k,
	       o->retrieval_temp, o->tau, o->lambda, o->steps, o->lr, o->batch, s.cos_true, s.acc_cap, s.acc_img,
	       s.cos_img, s.cos_txt, x->N / s.secs);
	fflush(stdout);
}

static void cmd_tune(int argc, char **argv)
{
	if (argc < 7) l2_die("usage: pseudo_synth tune N M D CONCEPTS SEED");
	int N = atoi(argv[2]), M = atoi(argv[3]), D = atoi(argv[4]), C = atoi(argv[5]);
	uint64_t seed = strtoull(argv[6], 0, 10);
	Data x;
	make_data(&x, N, M, D, 32, C, seed);
	double pc = 0;
	for (size_t e = 0; e < (size_t)N * D; e++) pc += (double)x.f[e] * x.ts[e];
	printf("Synthetic data: %d images, %d corpus captions, D = %d, %d concepts, seed %llu; "
	       "mean cos(image, its own caption) = %.3f.\n\n",
	       N, M, D, C, (unsigned long long)seed, pc / N);
	printf("| setting | k | T_r | tau | lambda | steps | lr | batch | cos(h, true caption) | caption acc | image acc | "
	       "cos(h, image) | cos(h, nearest text) | img/s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
	L2PseudoOptions d, o;
	l2_pseudo_defaults(&d);
	o = d;
	o.mode = L2_PSEUDO_GAUSSIAN;
	o.k = 1;
	row("gaussian xi=3 (Lafite)", &x, &o);
	o.xi = 1;
	row("gaussian xi=1", &x, &o);
	/* retrieval only: k and T_r */
	int ks[] = {1, 4, 8, 16, 32};
	double trs[] = {0.01, 0.03, 0.1};
	for (int a = 0; a < 5; a++)
		for (int c = 0; c < 3; c++) {
			if (ks[a] == 1 && c) continue;
			o = d, o.mode = L2_PSEUDO_RETRIEVE, o.k = ks[a], o.retrieval_temp = trs[c];
			row("retrieve", &x, &o);
		}
	o = d;
	row("**optimize (defaults)**", &x, &o);
	double taus[] = {0.02, 0.05, 0.1, 0.2}, lams[] = {0, 0.1, 0.5, 2, 8}, lrs[] = {0.003, 0.01, 0.03};
	int steps[] = {5, 10, 20, 50}, bats[] = {64, 256, 1024};
	for (int i = 0; i < 4; i++) if (taus[i] != d.tau) { o = d, o.tau = taus[i]; row("optimize", &x, &o); }
	for (int i = 0; i < 5; i++) if (lams[i] != d.lambda) { o = d, o.lambda = lams[i]; row("optimize", &x, &o); }
	for (int i = 0; i < 4; i++) if (steps[i] != d.steps) { o = d, o.steps = steps[i]; row("optimize", &x, &o); }
	for (int i = 0; i < 3; i++) if (lrs[i] != d.lr) { o = d, o.lr = lrs[i]; row("optimize", &x, &o); }
	for (int i = 0; i < 3; i++) if (bats[i] != d.batch) { o = d, o.batch = bats[i]; row("optimize", &x, &o); }
	for (int a = 0; a < 5; a++) if (ks[a] != d.k) { o = d, o.k = ks[a]; row("optimize", &x, &o); }
	for (int c = 0; c < 3; c++) if (trs[c] != d.retrieval_temp) { o = d, o.retrieval_temp = trs[c]; row("optimize", &x, &o); }
}

/* second stage: a product of value lists around the best region of the
 * sweep; lists come from the environment (GRID_K="8 16" GRID_TAU=... GRID_LAMBDA=
 * GRID_STEPS= GRID_LR= GRID_BATCH= GRID_TR=), each defaulting to the default value */
static int list(const char *env, double def, double *v)
{
	const char *s = getenv(env);
	if (!s || !*s) { v[0] = def; return 1; }
	int n = 0;
	char *end;
	while (n < 16) {
		double x = strtod(s, &end);
		if (end == s) break;
		v[n++] = x;
		s = end;
	}
	return n ? n : (v[0] = def, 1);
}

static void cmd_grid(int argc, char **argv)
{
	if (argc < 7) l2_die("usage: pseudo_synth grid N M D CONCEPTS SEED");
	int N = atoi(argv[2]), M = atoi(argv[3]), D = atoi(argv[4]), C = atoi(argv[5]);
	Data x;
	make_data(&x, N, M, D, 32, C, strtoull(argv[6], 0, 10));
	printf("| setting | k | T_r | tau | lambda | steps | lr | batch | cos(h, true caption) | caption acc | image acc | "
	       "cos(h, image) | cos(h, nearest text) | img/s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
	L2PseudoOptions d, o;
	l2_pseudo_defaults(&d);
	double K[16], TR[16], TAU[16], LAM[16], ST[16], LR[16], BA[16];
	int nk = list("GRID_K", d.k, K), ntr = list("GRID_TR", d.retrieval_temp, TR), nt = list("GRID_TAU", d.tau, TAU),
	    nl = list("GRID_LAMBDA", d.lambda, LAM), ns = list("GRID_STEPS", d.steps, ST), nr = list("GRID_LR", d.lr, LR),
	    nb = list("GRID_BATCH", d.batch, BA);
	for (int a = 0; a < nk; a++)
		for (int b = 0; b < ntr; b++) {
			o = d, o.mode = L2_PSEUDO_RETRIEVE, o.k = (int)K[a], o.retrieval_temp = TR[b];
			row("retrieve", &x, &o);
			o.mode = L2_PSEUDO_OPTIMIZE;
			for (int t = 0; t < nt; t++)
				for (int l = 0; l < nl; l++)
					for (int s = 0; s < ns; s++)
						for (int r = 0; r < nr; r++)
							for (int q = 0; q < nb; q++) {
								o.tau = TAU[t], o.lambda = LAM[l], o.steps = (int)ST[s];
								o.lr = LR[r], o.batch = (int)BA[q];
								row("optimize", &x, &o);
							}
		}
}

static void cmd_sgemm(int argc, char **argv)
{
	if (argc < 4) l2_die("usage: pseudo_synth sgemm B D");
	int B = atoi(argv[2]), D = atoi(argv[3]);
	float *a = l2_malloc((size_t)B * D * 4), *f = l2_malloc((size_t)B * D * 4), *s = l2_malloc((size_t)B * B * 4),
	      *g = l2_malloc((size_t)B * D * 4);
	for (size_t e = 0; e < (size_t)B * D; e++) a[e] = (float)l2_pseudo_normal(1, 1, e), f[e] = (float)l2_pseudo_normal(1, 2, e);
	double best = 0;
	for (int rep = 0; rep < 5; rep++) {
		int iters = 0;
		double t0 = l2_now(), t;
		do {
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, B, D, 1.0f, a, D, f, D, 0.0f, s, B);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, D, B, 1.0f, s, B, f, D, 0.0f, g, D);
			iters++;
		} while ((t = l2_now() - t0) < 0.2);
		double gf = 4.0 * B * B * D * iters / t / 1e9;
		if (gf > best) best = gf;
	}
	printf("%.2f\n", best);
}

static void cmd_streams(int argc, char **argv)
{
	if (argc < 9) l2_die("usage: pseudo_synth streams N M D CONCEPTS SEED IMG.l2f TXT.l2f");
	int N = atoi(argv[2]), M = atoi(argv[3]), D = atoi(argv[4]), C = atoi(argv[5]);
	uint64_t seed = strtoull(argv[6], 0, 10);
	float *f = l2_malloc(l2_mul_size((size_t)N * D, 4)), *ts = l2_malloc(l2_mul_size((size_t)N * D, 4));
	float *cp = l2_malloc(l2_mul_size((size_t)(M ? M : 1) * D, 4));
	l2_pseudo_synthetic(N, M, D, C, seed, f, ts, cp);
	char key[64];
	L2StreamWriter *w = l2_stream_create(argv[7], L2_KIND_IMAGE, (uint32_t)D, L2FS_NORMALIZED, 0, L2FS_UNTIL_END);
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof key, "img%07d.png", i);
		l2_stream_write(w, key, f + (size_t)i * D);
	}
	l2_stream_writer_close(w);
	w = l2_stream_create(argv[8], L2_KIND_TEXT, (uint32_t)D, L2FS_NORMALIZED, 0, L2FS_UNTIL_END);
	for (int i = 0; i < M; i++) {
		snprintf(key, sizeof key, "caption %d", i);
		l2_stream_write(w, key, cp + (size_t)i * D);
	}
	l2_stream_writer_close(w);
	free(f), free(ts), free(cp);
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "neighbors")) cmd_neighbors(argc, argv);
	else if (argc >= 2 && !strcmp(argv[1], "tune")) cmd_tune(argc, argv);
	else if (argc >= 2 && !strcmp(argv[1], "sgemm")) cmd_sgemm(argc, argv);
	else if (argc >= 2 && !strcmp(argv[1], "grid")) cmd_grid(argc, argv);
	else if (argc >= 2 && !strcmp(argv[1], "streams")) cmd_streams(argc, argv);
	else l2_die("usage: pseudo_synth neighbors|tune|sgemm|grid|streams ...");
	return 0;
}
