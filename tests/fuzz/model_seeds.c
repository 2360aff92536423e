/* model_seeds.c — write the model-file seeds of fuzz_safetensors and
 * fuzz_ckpt with l2's own writers, so that the fuzzers start from files
 * the loaders accept: tiny CLIPs (both layouts, f32 and f16), a tiny GAN
 * generator, checkpoint weights and a training state of the two parameters
 * the harnesses expect.  Run by tests/fuzz/seeds.py:
 *     model-seeds CORPUS_DIR        (writes CORPUS_DIR/{safetensors,ckpt}/seed-*) */
#include "core/util.h"
#include "models/clip.h"
#include "models/gan.h"
#include "nn/ckpt.h"

#include <stdio.h>
#include <string.h>

static char path[4096];

static const char *at(const char *dir, const char *harness, const char *name)
{
	snprintf(path, sizeof path, "%s/%s/seed-%s", dir, harness, name);
	return path;
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	if (argc != 2) l2_die("usage: model-seeds CORPUS_DIR");
	const char *dir = argv[1];
	/* width 8 (one head), one layer, 2x2 patches of a 4x4 image; text
	 * context 4 over a vocabulary of 10 */
	L2ClipConfig c = {8, 1, 1, 2, 4, 4, 8, 1, 1, 4, 10, 4};
	l2_clip_write_random(at(dir, "safetensors", "clip-openai-f32"), &c, L2_CLIP_LAYOUT_OPENAI, 0, 1);
	l2_clip_write_random(at(dir, "safetensors", "clip-hf-f16"), &c, L2_CLIP_LAYOUT_HF, 1, 2);
	L2ClipConfig v = c;
	v.twidth = 0;
	l2_clip_write_random(at(dir, "safetensors", "clip-vision-only"), &v, L2_CLIP_LAYOUT_OPENAI, 0, 3);

	L2GanConfig g = {.res = 4, .cdim = 4, .zdim = 4, .wdim = 4, .map_layers = 1, .cbase = 8, .cmax = 2, .chid = 4};
	L2GanG *G = l2_gan_g_new(&g, 1);
	int n;
	AdTensor **p = l2_gan_g_params(G, &n);
	l2_gan_save(at(dir, "safetensors", "gan-g"), p, n, &g, "G_ema", 7);
	l2_gan_g_free(G);

	AdTensor *q[2] = {ad_param_new("a", 2, (int[]){2, 3}), ad_param_new("b", 1, (int[]){4})};
	for (int i = 0; i < 2; i++)
		for (size_t j = 0; j < q[i]->n; j++) q[i]->v[j] = (float)(j + 1) / (float)(i + 2);
	const char *meta[] = {"l2.model", "fuzz", NULL};
	l2_ckpt_save_weights(at(dir, "safetensors", "ckpt-weights"), q, 2, meta);
	L2Adam *opt = l2_adam_new(q, 2, 0.9, 0.999, 1e-8, 0);
	L2Ema *ema = l2_ema_new(q, 2);
	opt->t = 3;
	L2TrainState s = {.step = 3, .data = {1, 2}};
	snprintf(s.config, sizeof s.config, "lr=0.001 batch=4");
	L2CkptGroup grp = {.name = "net", .p = q, .n = 2, .adam = opt, .nema = 1, .ema = {ema}};
	l2_ckpt_save_state(at(dir, "ckpt", "state"), &s, &grp, 1);
	grp.nema = 0;
	l2_ckpt_save_state(at(dir, "ckpt", "state-no-ema"), &s, &grp, 1);
	l2_ema_free(ema);
	l2_adam_free(opt);
	ad_param_free(q[0]);
	ad_param_free(q[1]);
	return 0;
}
