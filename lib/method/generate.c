/* generate.c — conditions, generator kinds and the GAN's sampling loop for
 * l2-sample (see generate.h). */
#include "method/generate.h"

#include "core/rng.h"
#include "core/util.h"
#include "core/vec.h"
#include "io/safetensors.h"
#include "io/stream.h"
#include "method/index.h"
#include "models/clip.h"
#include "text/clip_tokenizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- conditions ---------------------------------------------------------- */

void l2_conditions_from_stream(L2Conditions *c, const char *path, int dim, const char *model)
{
	memset(c, 0, sizeof *c);
	c->dim = dim;
	L2StreamReader *r = l2_stream_open(path);
	const L2StreamHeader *hd = l2_stream_header(r);
	if (strcmp(hd->kind, "text-feature") && strcmp(hd->kind, "pseudo-text-feature") && strcmp(hd->kind, "image-feature"))
		l2_die("%s: a '%s' stream; l2-sample wants text-feature or pseudo-text-feature vectors", l2_stream_name(r), hd->kind);
	if ((int)hd->dim != dim)
		l2_die("%s: %u-dimensional features; %s was trained on %d", l2_stream_name(r), hd->dim, model, dim);
	int cap = 16;
	c->h = l2_malloc((size_t)cap * dim * sizeof(float));
	c->label = l2_malloc(cap * sizeof(char *));
	L2Record rec;
	while (l2_stream_next(r, &rec)) {
		if (c->n == cap) {
			cap *= 2;
			c->h = l2_realloc(c->h, (size_t)cap * dim * sizeof(float));
			c->label = l2_realloc(c->label, cap * sizeof(char *));
		}
		memcpy(c->h + (size_t)c->n * dim, rec.vec, dim * sizeof(float));
		l2_normalize_rows_exact(c->h + (size_t)c->n * dim, 1, (size_t)dim);
		c->label[c->n++] = l2_strdup(rec.key);
	}
	if (!c->n) l2_die("%s: no conditions", l2_stream_name(r));
	l2_stream_close(r);
}

char **l2_prompts_read(const char *path, int *n)
{
	size_t len;
	char *buf = l2_read_file(path, &len);
	int cap = 16, k = 0;
	char **p = l2_malloc(cap * sizeof(char *));
	for (char *s = buf, *e; s < buf + len; s = e + 1) {
		e = memchr(s, '\n', buf + len - s);
		if (!e) e = buf + len;
		*e = 0;
		if (e > s && e[-1] == '\r') e[-1] = 0;
		if (!*s) continue;
		if (k == cap) cap *= 2, p = l2_realloc(p, cap * sizeof(char *));
		p[k++] = l2_strdup(s);
	}
	free(buf);
	if (!k) l2_die("%s: no prompts", path);
	*n = k;
	return p;
}

void l2_conditions_from_prompts(L2Conditions *c, char *const *text, int n, const char *clip, const char *vocab, int dim,
				const char *model, const char *source)
{
	memset(c, 0, sizeof *c);
	c->n = n, c->dim = dim;
	c->h = l2_malloc((size_t)n * dim * sizeof(float));
	c->label = l2_malloc(n * sizeof(char *));
	for (int i = 0; i < n; i++) c->label[i] = l2_strdup(text[i]);
	L2Clip *m = l2_clip_load(clip, L2_CLIP_TEXT);
	const L2ClipConfig *cc = l2_clip_config(m);
	if (cc->tembed != dim) l2_die("%s: text features have %d dimensions; %s was trained on %d", clip, cc->tembed, model, dim);
	L2Tokenizer *tok = l2_clip_tokenizer(m, clip, vocab, NULL); /* found, loaded, size-checked */
	int32_t *ids = l2_malloc((size_t)cc->context * sizeof(int32_t));
	for (int i = 0; i < n; i++) {
		if (l2_tok_tokenize(tok, text[i], strlen(text[i]), cc->context, ids) < 0)
			l2_die("%s: prompt '%s' is not valid UTF-8", source, text[i]);
		l2_clip_encode_text(m, ids, 1, c->h + (size_t)i * dim);
		l2_normalize_rows_exact(c->h + (size_t)i * dim, 1, (size_t)dim);
	}
	free(ids);
	l2_tok_free(tok);
	l2_clip_free(m);
}

void l2_conditions_retrieve(L2Conditions *c, const char *index, int k_want, double alpha)
{
	int dim = c->dim, nc = c->n;
	L2Index *ix = l2_index_open(index);
	if ((int)l2_index_dim(ix) != dim) l2_die("%s: %u-dimensional index; the conditions have %d", index, l2_index_dim(ix), dim);
	uint32_t k = (uint32_t)k_want;
	if (k > l2_index_count(ix)) k = (uint32_t)l2_index_count(ix);
	uint64_t *ids = l2_malloc((size_t)nc * k * sizeof(uint64_t));
	float *sc = l2_malloc((size_t)nc * k * sizeof(float)), *v = l2_malloc(dim * sizeof(float));
	double *mean = l2_malloc(dim * sizeof(double));
	l2_index_search(ix, c->h, nc, k, 0, ids, sc);
	for (int i = 0; i < nc; i++) {
		memset(mean, 0, dim * sizeof(double));
		for (uint32_t j = 0; j < k; j++) {
			l2_index_vector(ix, ids[(size_t)i * k + j], v);
			l2_normalize_rows_exact(v, 1, (size_t)dim);
			for (int d = 0; d < dim; d++) mean[d] += v[d] / k;
		}
		float *hi = c->h + (size_t)i * dim;
		for (int d = 0; d < dim; d++) hi[d] = (float)((1 - alpha) * hi[d] + alpha * mean[d]);
		l2_normalize_rows_exact(hi, 1, (size_t)dim);
	}
	free(ids), free(sc), free(v), free(mean);
	l2_index_close(ix);
}

void l2_conditions_free(L2Conditions *c)
{
	for (int i = 0; i < c->n; i++) free(c->label[i]);
	free(c->label), free(c->h);
	memset(c, 0, sizeof *c);
}

/* ---- generators ---------------------------------------------------------- */

L2GenKind l2_generator_kind(const char *path)
{
	L2Safetensors *st = l2_st_open(path);
	const char *kind = l2_st_metadata(st, "l2.kind"), *model = l2_st_metadata(st, "l2.model");
	L2GenKind k;
	if (kind && !strcmp(kind, "diffusion")) k = L2_GEN_DIFFUSION;
	else if (model && !strcmp(model, "lafite-gan")) k = L2_GEN_GAN;
	else if (kind) {
		char q[128];
		l2_die("%s: an l2 '%s' file, not a generator (l2-train-gan or l2-train-diffusion weights)", path,
		       l2_escape(q, sizeof q, kind, strlen(kind)));
	}
	else l2_die("%s: not an l2 generator (no l2-train-gan or l2-train-diffusion metadata)", path);
	l2_st_close(st);
	return k;
}

const char *l2_generator_kind_name(L2GenKind k) { return k == L2_GEN_DIFFUSION ? "diffusion" : "GAN"; }

void l2_generate_gan(L2GanG *G, const L2Conditions *c, int n, uint64_t seed, double psi, int first, int count,
		     float *out)
{
	const L2GanConfig *gc = l2_gan_g_config(G);
	size_t e = (size_t)3 * gc->res * gc->res;
	AdGraph *g = ad_graph_new();
	ad_graph_set_grad(g, 0);
	float *z = l2_malloc((size_t)gc->zdim * sizeof(float));
	for (int k = first; k < first + count; k++) {
		int i = k / n;
		L2Rng r;
		l2_rng_init(&r, seed, (uint64_t)k);
		l2_rng_fill_normal(&r, z, gc->zdim, 0, 1);
		ad_graph_reset(g);
		AdTensor *Z = ad_input(g, 2, (int[]){1, gc->zdim}, z);
		AdTensor *H = ad_input(g, 2, (int[]){1, c->dim}, c->h + (size_t)i * c->dim);
		AdTensor *x = l2_gan_g_forward(g, G, Z, H, psi, &r, 0);
		memcpy(out + (size_t)(k - first) * e, x->v, e * sizeof(float));
	}
	free(z);
	ad_graph_free(g);
}

/* ---- diffusion ----------------------------------------------------------- */

void l2_generate_guide_check(const char *model_path, const L2DiffusionModel *m, const char *guide_path,
			     const L2DiffusionModel *guide)
{
	const L2DiffusionConfig *a = l2_diffusion_model_config(m), *b = l2_diffusion_model_config(guide);
	if (a->res != b->res || a->cimg != b->cimg || a->patch != b->patch)
		l2_die("%s: the guide model draws %dx%dx%d images; %s draws %dx%dx%d", guide_path, b->cimg, b->res, b->res,
		       model_path, a->cimg, a->res, a->res);
	if (a->cdim != b->cdim)
		l2_die("%s: the guide model takes %d-dimensional conditions; %s takes %d", guide_path, b->cdim, model_path,
		       a->cdim);
}

/* on_x0 of a range: image numbers of the whole run, not of the call */
typedef struct {
	L2X0Fn fn;
	void *ctx;
	int base;
} X0Shift;

static void x0_shift(void *ctx, int step, double sigma, int first, int n, size_t e, const double *x0)
{
	X0Shift *s = ctx;
	s->fn(s->ctx, step, sigma, s->base + first, n, e, x0);
}

void l2_generate_diffusion(L2DiffusionModel *m, L2DiffusionModel *guide, const L2SampleConfig *sc,
			   const L2Conditions *c, int n, int first, int count, float *out, L2X0Fn on_x0, void *x0_ctx,
			   L2SampleStats *stats)
{
	const L2DiffusionConfig *dc = l2_diffusion_model_config(m);
	if (dc->cdim != c->dim) l2_die("diffusion: %d-dimensional conditions for a model of %d", c->dim, dc->cdim);
	size_t e = (size_t)dc->cimg * dc->res * dc->res;
	int *cond = l2_malloc((size_t)count * sizeof(int));
	uint64_t *stream = l2_malloc((size_t)count * sizeof(uint64_t));
	for (int k = 0; k < count; k++) cond[k] = (first + k) / n, stream[k] = (uint64_t)(first + k);
	L2DiffusionNet net;
	l2_diffusion_net_init(&net, m, guide, c->h, c->n);
	X0Shift xs = {on_x0, x0_ctx, first};
	l2_sample_images(sc, l2_diffusion_net, &net, count, e, cond, stream, out, on_x0 ? x0_shift : NULL, &xs, stats);
	l2_diffusion_net_free(&net);
	free(cond), free(stream);
}
