/* bench_vae.c — l2's side of bench_vae.sh: the full-size KL-f8 autoencoder
 * and TAESD (lib/models/vae.c) with random weights, encoder and decoder at a
 * given image size, timed on batches already in memory.
 *
 *   bench_vae write DIR
 *       DIR/kl.safetensors (SD's KL-f8, seed 1) and DIR/taesd.safetensors
 *       (seed 2), diffusers layout, f16: the weights bench_vae.py rebuilds
 *       from the same generator (tests/ref/make_vae.py)
 *   bench_vae run FILE encode|decode SIZE BATCH REPS THREADS PREFIX
 *       one warm-up call, then REPS timed calls of BATCH images of SIZE x
 *       SIZE; writes PREFIX_in.npy and PREFIX_out.npy (the input and the
 *       first call's output, for bench_vae.py's parity check) and prints
 *       "images_per_s W images_per_cpu_s C gflop_per_image G" (medians) */
#include "models/vae.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "core/rng.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static double cpu(void)
{
	struct rusage u;
	getrusage(RUSAGE_SELF, &u);
	return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	if (argc == 3 && !strcmp(argv[1], "write")) {
		char p[1024];
		L2VaeConfig kl = l2_vae_default_config(L2_VAE_KL), tae = l2_vae_default_config(L2_VAE_TAESD);
		snprintf(p, sizeof p, "%s/kl.safetensors", argv[2]);
		l2_vae_write_random(p, &kl, L2_VAE_LAYOUT_DIFFUSERS, L2_VAE_BOTH, L2_ST_F16, 1);
		snprintf(p, sizeof p, "%s/taesd.safetensors", argv[2]);
		l2_vae_write_random(p, &tae, L2_VAE_LAYOUT_DIFFUSERS, L2_VAE_BOTH, L2_ST_F16, 2);
		return 0;
	}
	if (argc != 9 || strcmp(argv[1], "run")) {
		fprintf(stderr, "usage: bench_vae write DIR | bench_vae run FILE encode|decode SIZE BATCH REPS THREADS PREFIX\n");
		return 2;
	}
	int enc = !strcmp(argv[3], "encode"), S = atoi(argv[4]), B = atoi(argv[5]), R = atoi(argv[6]);
	l2_threads = atoi(argv[7]);
	const char *prefix = argv[8];
	L2VaeOptions o = {.halves = enc ? L2_VAE_ENCODER : L2_VAE_DECODER};
	L2Vae *v = l2_vae_load(argv[2], &o);
	int f = l2_vae_factor(v), L = l2_vae_config(v)->latent, s = S / f;
	size_t nin = enc ? (size_t)B * 3 * S * S : (size_t)B * L * s * s, nout = enc ? (size_t)B * L * s * s : (size_t)B * 3 * S * S;
	float *in = l2_malloc(nin * sizeof(float)), *out = l2_malloc(nout * sizeof(float));
	L2Rng r;
	l2_rng_init(&r, 7, 0);
	if (enc) l2_rng_fill_uniform(&r, in, nin, -1, 1);
	else l2_rng_fill_normal(&r, in, nin, 0, 1);
	double t = l2_now();
	if (enc) l2_vae_encode(v, in, B, S, S, NULL, out);
	else l2_vae_decode(v, in, B, s, s, out);
	fprintf(stderr, "bench_vae: %s %s %dx%d x %d: warm-up %.2f s\n", argv[2], argv[3], S, S, B, l2_now() - t);
	char p[1024];
	size_t shi[4] = {(size_t)B, enc ? 3 : (size_t)L, enc ? (size_t)S : (size_t)s, enc ? (size_t)S : (size_t)s};
	size_t sho[4] = {(size_t)B, enc ? (size_t)L : 3, enc ? (size_t)s : (size_t)S, enc ? (size_t)s : (size_t)S};
	snprintf(p, sizeof p, "%s_in.npy", prefix);
	l2_npy_write(p, in, 0, 4, shi);
	snprintf(p, sizeof p, "%s_out.npy", prefix);
	l2_npy_write(p, out, 0, 4, sho);
	double wall[64], cpus[64];
	if (R > 64) R = 64;
	for (int i = 0; i < R; i++) {
		double t0 = l2_now(), c0 = cpu();
		if (enc) l2_vae_encode(v, in, B, S, S, NULL, out);
		else l2_vae_decode(v, in, B, s, s, out);
		wall[i] = B / (l2_now() - t0);
		cpus[i] = B / (cpu() - c0);
	}
	qsort(wall, (size_t)R, sizeof *wall, cmp);
	qsort(cpus, (size_t)R, sizeof *cpus, cmp);
	printf("images_per_s %.4f images_per_cpu_s %.4f gflop_per_image %.3f\n", wall[R / 2], cpus[R / 2],
	       l2_vae_flops(v, enc ? L2_VAE_ENCODER : L2_VAE_DECODER, S, S) / 1e9);
	free(in), free(out);
	l2_vae_free(v);
	return 0;
}
