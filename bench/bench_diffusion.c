/* bench_diffusion.c — l2's side of bench/bench_diffusion.sh for the denoiser itself
 * (the tools' start-up, data loading and files left out, as bench_diffusion.py leaves
 * them out): the same modes and output lines as the Python script.
 *
 *   bench_diffusion forward PRESET B REPS THREADS   the loaded model's forward (NFE x img/s)
 *   bench_diffusion train PRESET B REPS THREADS     training steps (lib/method/diffusion_train)
 *   bench_diffusion sample PRESET B REPS THREADS    DPM-Solver++(2M), 16 steps, CFG 2 (lib/models/sampler):
 *                                                  B images per run, end to end
 *   bench_diffusion peak N                          1-thread SGEMM GFLOP/s
 * Each prints "<mode> <units/s wall> <units/CPU-s> <GFLOP per unit>": medians over REPS
 * after one untimed repetition. */
#include "models/diffusion.h"
#include "method/diffusion_train.h"
#include "core/rng.h"
#include "core/util.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double cpu_now(void)
{
	struct rusage r;
	getrusage(RUSAGE_SELF, &r);
	return r.ru_utime.tv_sec + r.ru_stime.tv_sec + 1e-6 * (r.ru_utime.tv_usec + r.ru_stime.tv_usec);
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof *v, cmpd);
	return v[n / 2];
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	if (argc >= 3 && !strcmp(argv[1], "peak")) {
		int n = atoi(argv[2]);
		openblas_set_num_threads(1);
		float *a = l2_malloc((size_t)n * n * sizeof(float)), *c = l2_malloc((size_t)n * n * sizeof(float));
		for (size_t i = 0; i < (size_t)n * n; i++) a[i] = (float)(i % 7) * 0.1f;
		double t[5];
		for (int r = 0; r < 5; r++) {
			double t0 = l2_now();
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, a, n, 0, c, n);
			t[r] = l2_now() - t0;
		}
		printf("peak %.1f\n", 2.0 * n * n * n / median(t, 5) * 1e-9);
		return 0;
	}
	if (argc != 6) {
		fprintf(stderr, "usage: bench_diffusion forward|train PRESET B REPS THREADS | peak N\n");
		return 2;
	}
	const char *mode = argv[1], *preset = argv[2];
	int B = atoi(argv[3]), reps = atoi(argv[4]);
	l2_threads = atoi(argv[5]);
	openblas_set_num_threads(l2_threads);
	L2DiffusionConfig c;
	if (l2_diffusion_preset(preset, 32, 512, &c)) l2_die("unknown preset %s", preset);
	L2Diffusion *net = l2_diffusion_new(&c, 1);
	int np, nt;
	AdTensor **p = l2_diffusion_params(net, &np, &nt);
	for (int i = 0; i < np; i++)
		if (!strcmp(p[i]->name, "out.gain")) p[i]->v[0] = 0.5f;
	size_t chw = (size_t)3 * 32 * 32;
	float *x = l2_malloc(B * chw * sizeof(float)), *out = l2_malloc(B * chw * sizeof(float));
	float *cond = l2_calloc((size_t)B * 512, sizeof(float));
	double *sigma = l2_malloc(B * sizeof(double));
	L2Rng r;
	l2_rng_init(&r, 7, 0);
	for (int b = 0; b < B; b++) {
		double s = 0;
		for (int k = 0; k < 512; k++) cond[b * 512 + k] = (float)l2_rng_normal(&r), s += cond[b * 512 + k] * cond[b * 512 + k];
		for (int k = 0; k < 512; k++) cond[b * 512 + k] = b % 10 ? (float)(cond[b * 512 + k] / sqrt(s)) : 0;
	}
	double *tw = l2_malloc((reps + 1) * sizeof(double)), *tc = l2_malloc((reps + 1) * sizeof(double));
	double gflop = 0;
	if (!strcmp(mode, "forward")) {
		L2DiffusionModel *m = l2_diffusion_model_from(net);
		gflop = 2 * l2_diffusion_flops(&c) * 1e-9;
		for (int k = 0; k <= reps; k++) {
			for (size_t i = 0; i < B * chw; i++) x[i] = (float)(2 * l2_rng_normal(&r));
			for (int b = 0; b < B; b++) sigma[b] = exp(-1.2 + 1.2 * l2_rng_normal(&r));
			double t0 = l2_now(), c0 = cpu_now();
			l2_diffusion_model_denoise(m, x, sigma, cond, B, out);
			tw[k] = l2_now() - t0, tc[k] = cpu_now() - c0;
		}
		l2_diffusion_model_free(m);
	} else if (!strcmp(mode, "train")) {
		gflop = 3 * 2 * l2_diffusion_flops(&c) * 1e-9;
		L2DiffusionTrainer *t = l2_diffusion_trainer_new(net, &(L2DiffusionTrainConfig){
			.lr = 4e-3, .lr_warmup = 0, .lr_ref = 0, .batch = B, .seed = 1, .ema_std = {0.05, 0.10}, .nema = 2,
			.cond_drop = 0.1, .weighting = {L2_DIFF_W_UNCERTAINTY, 0}});
		float *img = l2_malloc(B * chw * sizeof(float));
		for (int k = 0; k <= reps; k++) {
			for (size_t i = 0; i < B * chw; i++) img[i] = (float)(2 * l2_rng_uniform(&r) - 1);
			double t0 = l2_now(), c0 = cpu_now();
			L2DiffusionStepStats st;
			l2_diffusion_train_step(t, img, cond, &st);
			tw[k] = l2_now() - t0, tc[k] = cpu_now() - c0;
		}
		free(img);
		l2_diffusion_trainer_free(t);
	} else if (!strcmp(mode, "sample")) {
		L2DiffusionModel *m = l2_diffusion_model_from(net);
		L2DiffusionNet dn;
		l2_diffusion_net_init(&dn, m, NULL, cond, B);
		L2SampleConfig sc;
		l2_sample_config_defaults(&sc);
		sc.steps = 16, sc.guidance.w = 2, sc.batch = B;
		int *ci = l2_malloc(B * sizeof(int));
		for (int b = 0; b < B; b++) ci[b] = b;
		gflop = 2 * 2 * 16 * l2_diffusion_flops(&c) * 1e-9;
		for (int k = 0; k <= reps; k++) {
			sc.seed = (uint64_t)k;
			double t0 = l2_now(), c0 = cpu_now();
			l2_sample_images(&sc, l2_diffusion_net, &dn, B, chw, ci, NULL, out, NULL, NULL, NULL);
			tw[k] = l2_now() - t0, tc[k] = cpu_now() - c0;
		}
		free(ci);
		l2_diffusion_net_free(&dn);
		l2_diffusion_model_free(m);
	} else
		l2_die("unknown mode %s", mode);
	double w = median(tw + 1, reps), cs = median(tc + 1, reps);
	printf("%s %.3f %.3f %.4f\n", mode, B / w, B / cs, gflop);
	free(tw), free(tc), free(x), free(out), free(cond), free(sigma);
	l2_diffusion_free(net);
	return 0;
}
