/* fuzz_safetensors.c — safetensors headers and tensor tables
 * (lib/io/safetensors.h), and the model loaders' checks on top of them.
 *
 * The input is a whole .safetensors file (written to the scratch directory:
 * the reader maps files).  An accepted file must be consistent: every tensor
 * found by its own name, element counts equal to the shape's product, data
 * inside the file; small tensors are converted to float32 (every dtype) and
 * loaded by shape.  Then the loaders a tool would use on such a file run on
 * it, as far as they are cheap:
 *   - CLIP (lib/models/clip.h), either layout, the towers the file has;
 *   - the GAN generator (lib/models/gan.h): the config in the metadata, and
 *     the whole generator when the config is small — a large config would
 *     allocate and initialise the network before its shapes are checked
 *     (the audit's P13), which is a matter for the loader, not for fuzzing;
 *   - l2_ckpt_load_weights (lib/nn/ckpt.h) of two parameters "a" (2, 3) and
 *     "b" (4,), for files carrying l2.checksum (the fuzz build does not
 *     enforce the checksum, so the shape checks behind it are reached). */
#include "fuzz.h"
#include "io/safetensors.h"
#include "models/clip.h"
#include "models/gan.h"
#include "nn/ckpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *what, const char *name)
{
	fprintf(stderr, "fuzz_safetensors: %s (tensor %s)\n", what, name);
	abort();
}

static void check_tensors(const L2Safetensors *st)
{
	int n = l2_st_count(st);
	for (int i = 0; i < n; i++) {
		const L2Tensor *t = l2_st_tensor(st, i);
		if (l2_st_find(st, t->name) != t) fail("l2_st_find does not find a tensor by its name", t->name);
		if (t->ndim < 0 || t->ndim > 8) fail("ndim out of range", t->name);
		size_t ne = 1;
		int64_t shape[8];
		for (int d = 0; d < t->ndim; d++) {
			ne *= (size_t)t->shape[d];
			shape[d] = -1;
		}
		if (ne != t->nelem) fail("nelem is not the product of the shape", t->name);
		if (t->nelem > (1 << 16) || t->dtype == L2_ST_OTHER) continue;
		float *v = malloc((t->nelem ? t->nelem : 1) * sizeof(float));
		l2_st_to_f32(st, t, v);
		free(v);
		free(l2_st_load_f32(st, t->name, t->ndim, shape));
	}
	const char *keys[] = {"l2.model", "l2.checksum", "l2.kind", "l2.gan.config", "format"};
	for (int i = 0; i < 5; i++) {
		const char *v = l2_st_metadata(st, keys[i]);
		if (v) (void)strlen(v);
	}
}

static int small_gan(const L2GanConfig *c)
{
	return c->res <= 16 && c->cdim <= 64 && c->zdim <= 64 && c->wdim <= 64 && c->map_layers <= 4 && c->cbase <= 512 &&
	       c->cmax <= 32 && c->chid <= 64;
}

static void fuzz_one(const uint8_t *data, size_t size)
{
	const char *path = l2_fuzz_write_file("input.safetensors", data, size);
	L2Safetensors *st = l2_st_open(path);
	check_tensors(st);
	int vision = l2_st_find(st, "visual.conv1.weight") || l2_st_find(st, "vision_model.embeddings.patch_embedding.weight");
	int text = l2_st_find(st, "token_embedding.weight") || l2_st_find(st, "text_model.embeddings.token_embedding.weight");
	int gan = l2_st_metadata(st, "l2.gan.config") != NULL;
	int ckpt = l2_st_metadata(st, "l2.checksum") != NULL;
	l2_st_close(st);

	if (vision || text) {
		L2Clip *m = l2_clip_load(path, (vision ? L2_CLIP_VISION : 0) | (text ? L2_CLIP_TEXT : 0));
		l2_clip_free(m);
	} else if (gan) {
		L2GanConfig c;
		char net[16];
		l2_gan_read_config(path, &c, net, sizeof net);
		if (small_gan(&c) && net[0] == 'G') l2_gan_g_free(l2_gan_g_load(path));
	} else if (ckpt) {
		AdTensor *p[2] = {ad_param_new("a", 2, (int[]){2, 3}), ad_param_new("b", 1, (int[]){4})};
		l2_ckpt_load_weights(path, p, 2);
		ad_param_free(p[0]);
		ad_param_free(p[1]);
	}
}

L2_FUZZ_TARGET(fuzz_one)
