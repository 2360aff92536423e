/* test_generate.c — lib/method/generate: generator kinds from the weights'
 * metadata, and that a diffusion image depends on nothing but its number and
 * the seed: not on the batch it is sampled in, the range a call covers, or
 * the thread count (the loaded model evaluates images one at a time, so
 * every image takes the same arithmetic), for every sampler, with guidance,
 * an interval and autoguidance.
 *
 *   test_generate --write-diffusion PATH RES CDIM SEED
 *       a random-weight tiny diffusion model (output gain 0.5, so the network
 *       matters) for the BATS tests of l2-sample */
#include "check.h"
#include "core/util.h"
#include "method/generate.h"
#include "models/diffusion.h"
#include "models/gan.h"
#include "models/sampler.h"

#include <unistd.h>

static char tmpdir[256];

/* tiny: 8 channels x [1, 2], one block, attention at 8x8 */
static void write_diffusion(const char *path, int res, int cdim, uint64_t seed)
{
	L2DiffusionConfig c;
	l2_diffusion_preset("tiny", res, cdim, &c);
	c.channels = 8, c.nlevels = 2;
	const char *bad = l2_diffusion_check(&c);
	if (bad) l2_die("diffusion config: %s", bad);
	L2Diffusion *m = l2_diffusion_new(&c, seed);
	int n, nt;
	AdTensor **p = l2_diffusion_params(m, &n, &nt);
	for (int i = 0; i < n; i++)
		if (!strcmp(p[i]->name, "out.gain")) p[i]->v[0] = 0.5f;
	l2_diffusion_save(path, m, "pseudo", "none", 0);
	l2_diffusion_free(m);
}

static void path_in(char *out, size_t len, const char *name) { snprintf(out, len, "%s/%s", tmpdir, name); }

static void test_generator_kind(void)
{
	char d[512], g[512];
	path_in(d, sizeof d, "d.safetensors");
	path_in(g, sizeof g, "g.safetensors");
	write_diffusion(d, 8, 6, 1);
	L2GanConfig gc = {.res = 8, .cdim = 6, .zdim = 4, .wdim = 4, .map_layers = 1, .cbase = 64, .cmax = 8, .chid = 4};
	CHECK(l2_gan_check(&gc) == NULL);
	L2GanG *G = l2_gan_g_new(&gc, 3);
	int n;
	AdTensor **p = l2_gan_g_params(G, &n);
	l2_gan_save(g, p, n, &gc, "G_ema", 0);
	CHECK(l2_generator_kind(d) == L2_GEN_DIFFUSION && l2_generator_kind(g) == L2_GEN_GAN);
	CHECK(!strcmp(l2_generator_kind_name(L2_GEN_DIFFUSION), "diffusion") && !strcmp(l2_generator_kind_name(L2_GEN_GAN), "GAN"));
	/* the GAN path: a range of images equals the same images of the whole run */
	L2Conditions c = {.n = 3, .dim = 6};
	c.h = malloc(3 * 6 * sizeof(float));
	for (int i = 0; i < 18; i++) c.h[i] = (float)check_normal();
	size_t e = 3 * 8 * 8;
	float *all = malloc(6 * e * sizeof(float)), *part = malloc(3 * e * sizeof(float));
	l2_generate_gan(G, &c, 2, 9, 0.8, 0, 6, all);
	l2_generate_gan(G, &c, 2, 9, 0.8, 2, 3, part);
	CHECK(!memcmp(all + 2 * e, part, 3 * e * sizeof(float)));
	free(all), free(part), free(c.h);
	l2_gan_g_free(G);
	unlink(d), unlink(g);
}

static void test_diffusion_images_independent(void)
{
	char d[512], gd[512];
	path_in(d, sizeof d, "d.safetensors");
	path_in(gd, sizeof gd, "guide.safetensors");
	write_diffusion(d, 8, 6, 1);
	write_diffusion(gd, 8, 6, 2);
	/* the worker count is fixed at a model's first call: one model per thread count */
	int keep = l2_threads;
	l2_threads = 1;
	L2DiffusionModel *m1 = l2_diffusion_load(d), *g1 = l2_diffusion_load(gd);
	float dummy[3 * 64], out[3 * 64];
	double sig = 1;
	l2_diffusion_model_denoise(m1, dummy, &sig, NULL, 1, out);
	l2_diffusion_model_denoise(g1, dummy, &sig, NULL, 1, out);
	l2_threads = 2;
	L2DiffusionModel *m2 = l2_diffusion_load(d), *g2 = l2_diffusion_load(gd);
	L2Conditions c = {.n = 3, .dim = 6};
	c.h = malloc(3 * 6 * sizeof(float));
	for (int i = 0; i < 18; i++) c.h[i] = (float)check_normal();
	enum { n = 4, total = 12 };
	size_t e = 3 * 8 * 8;
	float *a = malloc(total * e * sizeof(float)), *b = malloc(total * e * sizeof(float));
	for (int s = 0; s < L2_SAMPLER_COUNT; s++)
		for (int guided = 0; guided < 3; guided++) {
			L2SampleConfig sc;
			l2_sample_config_defaults(&sc);
			sc.sampler.kind = s, sc.sampler.churn = 3, sc.steps = 5, sc.seed = 11;
			sc.guidance.w = guided ? 2 : 1;
			if (guided == 1) sc.guidance.lo = 0.5, sc.guidance.hi = 30;
			sc.guidance.autoguide = guided == 2;
			sc.batch = total;
			L2SampleStats st = {0};
			l2_generate_diffusion(m2, guided == 2 ? g2 : NULL, &sc, &c, n, 0, total, a, NULL, NULL, &st);
			CHECK(st.images == total && st.nfe == l2_sampler_nfe(&sc.sampler, 5));
			/* batch 5, one thread, in two calls over ranges 0..6 and 7..11 */
			sc.batch = 5;
			l2_generate_diffusion(m1, guided == 2 ? g1 : NULL, &sc, &c, n, 0, 7, b, NULL, NULL, NULL);
			l2_generate_diffusion(m1, guided == 2 ? g1 : NULL, &sc, &c, n, 7, 5, b + 7 * e, NULL, NULL, NULL);
			double md = 0;
			for (size_t j = 0; j < total * e; j++) md = fmax(md, fabs(a[j] - b[j]));
			CHECK_MSG(md == 0, "%s guided %d: batch 12 x 2 threads vs batch 5 x 1 thread differ by %g",
				  l2_sampler_name(s), guided, md);
			/* the images are not all alike: conditions and streams matter */
			CHECK(memcmp(a, a + e, e * sizeof(float)) && memcmp(a, a + n * e, e * sizeof(float)));
		}
	free(a), free(b), free(c.h);
	l2_diffusion_model_free(m1), l2_diffusion_model_free(m2);
	l2_diffusion_model_free(g1), l2_diffusion_model_free(g2);
	l2_threads = keep;
	unlink(d), unlink(gd);
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	if (argc == 6 && !strcmp(argv[1], "--write-diffusion")) {
		write_diffusion(argv[2], (int)l2_parse_long(argv[3], "RES", 4, 1024),
				(int)l2_parse_long(argv[4], "CDIM", 0, 65536), l2_parse_u64(argv[5], "SEED"));
		return 0;
	}
	snprintf(tmpdir, sizeof tmpdir, "%s/l2-test-generate-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir)) return 1;
	RUN(test_generator_kind);
	RUN(test_diffusion_images_independent);
	rmdir(tmpdir);
	return check_done();
}
