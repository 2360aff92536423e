/* clip_train.c — CLIP as forward code for training (see clip_train.h). */
#include "models/clip_train.h"
#include "nn/ad_dist.h"
#include "core/rng.h"
#include "core/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int l2_cliptr_heads_for(int width) { return width / 64 > 0 ? width / 64 : 1; }

const char *l2_cliptr_check(const L2ClipTrainConfig *c)
{
	static char msg[200];
	if (c->res < 1 || c->patch < 1 || c->res % c->patch)
		return snprintf(msg, sizeof msg, "--resolution %d is not a multiple of --patch %d", c->res, c->patch), msg;
	if (c->width < 1 || c->layers < 1 || c->twidth < 1 || c->tlayers < 1 || c->embed < 1 || c->context < 2 || c->vocab < 3)
		return "sizes must be positive (context at least 2)";
	if (c->heads != l2_cliptr_heads_for(c->width) || c->width % c->heads)
		return snprintf(msg, sizeof msg, "--heads must be width/64 = %d (the encoders infer it that way)",
				l2_cliptr_heads_for(c->width)), msg;
	if (c->theads != l2_cliptr_heads_for(c->twidth) || c->twidth % c->theads)
		return snprintf(msg, sizeof msg, "--text-heads must be text-width/64 = %d (the encoders infer it that way)",
				l2_cliptr_heads_for(c->twidth)), msg;
	return NULL;
}

static AdTensor *add_param(L2ClipTrain *m, const char *name, int ndim, const int *shape)
{
	m->p = l2_realloc(m->p, (m->np + 1) * sizeof *m->p);
	return m->p[m->np++] = ad_param_new(name, ndim, shape);
}

static void fill(AdTensor *t, L2Rng *r, double std, double mean)
{
	/* as l2_rng_fill_normal, written out so the file also builds with adr = double */
	for (size_t i = 0; i < t->n; i++) t->v[i] = (adr)(std == 0 ? mean : mean + std * l2_rng_normal(r));
}

static void add_tower(L2ClipTrain *m, L2Rng *r, const char *pre, int W, int L)
{
	char nm[200];
	double attn_std = pow(W, -0.5), proj_std = pow(W, -0.5) * pow(2.0 * L, -0.5), fc_std = pow(2.0 * W, -0.5);
	for (int l = 0; l < L; l++) {
#define P(suffix, nd, std, mean, ...) \
	snprintf(nm, sizeof nm, "%stransformer.resblocks.%d.%s", pre, l, suffix); \
	fill(add_param(m, nm, nd, (int[]){__VA_ARGS__}), r, std, mean)
		P("ln_1.weight", 1, 0, 1, W);
		P("ln_1.bias", 1, 0, 0, W);
		P("attn.in_proj_weight", 2, attn_std, 0, 3 * W, W);
		P("attn.in_proj_bias", 1, 0, 0, 3 * W);
		P("attn.out_proj.weight", 2, proj_std, 0, W, W);
		P("attn.out_proj.bias", 1, 0, 0, W);
		P("ln_2.weight", 1, 0, 1, W);
		P("ln_2.bias", 1, 0, 0, W);
		P("mlp.c_fc.weight", 2, fc_std, 0, 4 * W, W);
		P("mlp.c_fc.bias", 1, 0, 0, 4 * W);
		P("mlp.c_proj.weight", 2, proj_std, 0, W, 4 * W);
		P("mlp.c_proj.bias", 1, 0, 0, W);
#undef P
	}
}

L2ClipTrain *l2_cliptr_new(const L2ClipTrainConfig *c, uint64_t seed)
{
	const char *bad = l2_cliptr_check(c);
	if (bad) l2_die("%s", bad);
	L2ClipTrain *m = l2_calloc(1, sizeof *m);
	m->c = *c;
	L2Rng r;
	l2_rng_init(&r, seed, 0x636c6970);
	int W = c->width, g = c->res / c->patch, TW = c->twidth;
	double vs = pow(W, -0.5);
	fill(add_param(m, "visual.class_embedding", 1, (int[]){W}), &r, vs, 0);
	fill(add_param(m, "visual.positional_embedding", 2, (int[]){g * g + 1, W}), &r, vs, 0);
	fill(add_param(m, "visual.proj", 2, (int[]){W, c->embed}), &r, vs, 0);
	fill(add_param(m, "visual.conv1.weight", 4, (int[]){W, 3, c->patch, c->patch}), &r,
	     pow(3.0 * c->patch * c->patch, -0.5), 0);
	fill(add_param(m, "visual.ln_pre.weight", 1, (int[]){W}), &r, 0, 1);
	fill(add_param(m, "visual.ln_pre.bias", 1, (int[]){W}), &r, 0, 0);
	add_tower(m, &r, "visual.", W, c->layers);
	fill(add_param(m, "visual.ln_post.weight", 1, (int[]){W}), &r, 0, 1);
	fill(add_param(m, "visual.ln_post.bias", 1, (int[]){W}), &r, 0, 0);
	fill(add_param(m, "token_embedding.weight", 2, (int[]){c->vocab, TW}), &r, 0.02, 0);
	fill(add_param(m, "positional_embedding", 2, (int[]){c->context, TW}), &r, 0.01, 0);
	add_tower(m, &r, "", TW, c->tlayers);
	fill(add_param(m, "ln_final.weight", 1, (int[]){TW}), &r, 0, 1);
	fill(add_param(m, "ln_final.bias", 1, (int[]){TW}), &r, 0, 0);
	fill(add_param(m, "text_projection", 2, (int[]){TW, c->embed}), &r, pow(TW, -0.5), 0);
	m->logit_scale = add_param(m, "logit_scale", 1, (int[]){1});
	m->logit_scale->v[0] = (adr)log(1 / 0.07);
	return m;
}

void l2_cliptr_free(L2ClipTrain *m)
{
	if (!m) return;
	for (int i = 0; i < m->np; i++) ad_param_free(m->p[i]);
	free(m->p);
	free(m);
}

AdTensor *l2_cliptr_param(const L2ClipTrain *m, const char *name)
{
	for (int i = 0; i < m->np; i++)
		if (!strcmp(m->p[i]->name, name)) return m->p[i];
	l2_die("clip_train: no parameter %s", name);
}

static AdTensor *P_(const L2ClipTrain *m, const char *pre, int l, const char *suffix)
{
	char nm[200];
	snprintf(nm, sizeof nm, "%stransformer.resblocks.%d.%s", pre, l, suffix);
	return l2_cliptr_param(m, nm);
}

/* OpenAI ResidualAttentionBlock: x + attn(ln_1 x), then + mlp(ln_2 x). */
static AdTensor *block(AdGraph *g, const L2ClipTrain *m, const char *pre, int l, AdTensor *x, int H, int causal)
{
	int B = x->shape[0], T = x->shape[1], W = x->shape[2], D = W / H;
	AdTensor *h = ad_layernorm(g, x, P_(m, pre, l, "ln_1.weight"), P_(m, pre, l, "ln_1.bias"), 1e-5);
	AdTensor *qkv = ad_linear(g, h, P_(m, pre, l, "attn.in_proj_weight"), P_(m, pre, l, "attn.in_proj_bias"));
	/* [B, T, 3, H, D] -> [3, B, H, T, D] */
	AdTensor *q5 = ad_permute(g, ad_reshape(g, qkv, 5, (int[]){B, T, 3, H, D}), (int[]){2, 0, 3, 1, 4});
	AdTensor *q = ad_reshape(g, ad_slice(g, q5, 0, 0, 1), 4, (int[]){B, H, T, D});
	AdTensor *k = ad_reshape(g, ad_slice(g, q5, 0, 1, 1), 4, (int[]){B, H, T, D});
	AdTensor *v = ad_reshape(g, ad_slice(g, q5, 0, 2, 1), 4, (int[]){B, H, T, D});
	AdTensor *a = ad_attention(g, q, k, v, causal);
	a = ad_reshape(g, ad_permute(g, a, (int[]){0, 2, 1, 3}), 3, (int[]){B, T, W});
	x = ad_add(g, x, ad_linear(g, a, P_(m, pre, l, "attn.out_proj.weight"), P_(m, pre, l, "attn.out_proj.bias")));
	h = ad_layernorm(g, x, P_(m, pre, l, "ln_2.weight"), P_(m, pre, l, "ln_2.bias"), 1e-5);
	h = ad_quick_gelu(g, ad_linear(g, h, P_(m, pre, l, "mlp.c_fc.weight"), P_(m, pre, l, "mlp.c_fc.bias")));
	return ad_add(g, x, ad_linear(g, h, P_(m, pre, l, "mlp.c_proj.weight"), P_(m, pre, l, "mlp.c_proj.bias")));
}

AdTensor *l2_cliptr_encode_image(AdGraph *g, L2ClipTrain *m, AdTensor *px)
{
	const L2ClipTrainConfig *c = &m->c;
	int B = px->shape[0], W = c->width, gr = c->res / c->patch, T = gr * gr + 1;
	if (px->ndim != 4 || px->shape[1] != 3 || px->shape[2] != c->res || px->shape[3] != c->res)
		l2_die("clip_train: images must be [B, 3, %d, %d]", c->res, c->res);
	AdTensor *x = ad_conv2d(g, px, l2_cliptr_param(m, "visual.conv1.weight"), NULL, c->patch, 0, 1);
	x = ad_transpose(g, ad_reshape(g, x, 3, (int[]){B, W, gr * gr}), 1, 2); /* [B, g*g, W] */
	AdTensor *cls = ad_expand(g, ad_reshape(g, l2_cliptr_param(m, "visual.class_embedding"), 3, (int[]){1, 1, W}), 3,
				  (int[]){B, 1, W});
	AdTensor *parts[2] = {cls, x};
	x = ad_concat(g, parts, 2, 1);
	x = ad_add(g, x, l2_cliptr_param(m, "visual.positional_embedding"));
	x = ad_layernorm(g, x, l2_cliptr_param(m, "visual.ln_pre.weight"), l2_cliptr_param(m, "visual.ln_pre.bias"), 1e-5);
	(void)T;
	for (int l = 0; l < c->layers; l++) x = block(g, m, "visual.", l, x, c->heads, 0);
	x = ad_reshape(g, ad_slice(g, x, 1, 0, 1), 2, (int[]){B, W});
	x = ad_layernorm(g, x, l2_cliptr_param(m, "visual.ln_post.weight"), l2_cliptr_param(m, "visual.ln_post.bias"), 1e-5);
	return ad_matmul(g, x, l2_cliptr_param(m, "visual.proj"), 0, 0);
}

AdTensor *l2_cliptr_encode_text(AdGraph *g, L2ClipTrain *m, const int32_t *tokens, int B)
{
	const L2ClipTrainConfig *c = &m->c;
	int C = c->context, W = c->twidth, T = 1;
	int *eot = ad_scratch(g, B * sizeof(int));
	for (int b = 0; b < B; b++) {
		int best = 0;
		for (int t = 1; t < C; t++)
			if (tokens[b * C + t] > tokens[b * C + best]) best = t;
		eot[b] = best;
		if (best + 1 > T) T = best + 1;
	}
	int *ids = ad_scratch(g, (size_t)B * T * sizeof(int));
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++) {
			int v = tokens[b * C + t];
			if (v < 0 || v >= c->vocab) l2_die("clip_train: token id %d outside the vocabulary of %d", v, c->vocab);
			ids[b * T + t] = v;
		}
	AdTensor *x = ad_reshape(g, ad_embedding(g, l2_cliptr_param(m, "token_embedding.weight"), ids, B * T), 3,
				 (int[]){B, T, W});
	AdTensor *pos = l2_cliptr_param(m, "positional_embedding");
	x = ad_add(g, x, T == C ? pos : ad_slice(g, pos, 0, 0, T));
	for (int l = 0; l < c->tlayers; l++) x = block(g, m, "", l, x, c->theads, 1);
	/* pool first, then ln_final: the norm is per position */
	int *rows = ad_scratch(g, B * sizeof(int));
	for (int b = 0; b < B; b++) rows[b] = b * T + eot[b];
	x = ad_embedding(g, ad_reshape(g, x, 2, (int[]){B * T, W}), rows, B);
	x = ad_layernorm(g, x, l2_cliptr_param(m, "ln_final.weight"), l2_cliptr_param(m, "ln_final.bias"), 1e-5);
	return ad_matmul(g, x, l2_cliptr_param(m, "text_projection"), 0, 0);
}

AdTensor *l2_cliptr_loss(AdGraph *g, L2ClipTrain *m, AdTensor *img, AdTensor *txt)
{
	int B = img->shape[0];
	AdTensor *a = ad_normalize(g, img, 1e-12), *b = ad_normalize(g, txt, 1e-12);
	AdTensor *logits = ad_mul(g, ad_matmul(g, a, b, 0, 1), ad_exp(g, m->logit_scale));
	int *lab = ad_scratch(g, B * sizeof(int));
	for (int i = 0; i < B; i++) lab[i] = i;
	AdTensor *l1 = ad_cross_entropy(g, logits, lab);
	AdTensor *l2 = ad_cross_entropy(g, ad_transpose(g, logits, 0, 1), lab);
	return ad_scale(g, ad_add(g, l1, l2), 0.5);
}

void l2_cliptr_clamp(L2ClipTrain *m)
{
	adr *s = m->logit_scale->v;
	if (s[0] < 0) s[0] = 0;
	if (s[0] > (adr)log(100.0)) s[0] = (adr)log(100.0);
}

double l2_cliptr_grads(AdGraph *g, L2ClipTrain *m, const L2Dist *d, const adr *px, const int32_t *tok, int Bl)
{
	const L2ClipTrainConfig *c = &m->c;
	ad_graph_reset(g);
	AdTensor *X = ad_input(g, 4, (int[]){Bl, 3, c->res, c->res}, px);
	AdTensor *fi = l2_cliptr_encode_image(g, m, X), *ft = l2_cliptr_encode_text(g, m, tok, Bl);
	AdTensor *loss = l2_cliptr_loss(g, m, ad_allgather_rows(g, d, fi), ad_allgather_rows(g, d, ft));
	ad_zero_grads(m->p, m->np);
	ad_backward(g, loss);
	if (d->size > 1) {
		/* the logit scale is used after the gather: its gradient is the
		 * whole batch's on every rank already */
		unsigned char *rep = l2_calloc((size_t)m->np, 1);
		for (int i = 0; i < m->np; i++) rep[i] = m->p[i] == m->logit_scale;
		ad_dist_sum_grads(d, m->p, m->np, rep);
		free(rep);
	}
	return loss->v[0];
}

static double tower_flops(int B, int T, int W, int L)
{
	/* qkv 3W^2, out W^2, mlp 8W^2 per token; attention 2 T W per token */
	return (double)L * B * T * (12.0 * W * W + 2.0 * T * W);
}

double l2_cliptr_flops(const L2ClipTrainConfig *c, int B, int T)
{
	int g = c->res / c->patch;
	double f = tower_flops(B, g * g + 1, c->width, c->layers) + (double)B * g * g * c->width * 3 * c->patch * c->patch;
	f += tower_flops(B, T, c->twidth, c->tlayers);
	f += (double)B * (c->width + c->twidth) * c->embed + (double)B * B * c->embed;
	return 2 * f; /* multiply-adds -> flops */
}

#ifndef L2_AD_DOUBLE
#include "models/clip.h"
#include "io/safetensors.h"

L2ClipTrain *l2_cliptr_load_image_tower(const char *path)
{
	L2Clip *c = l2_clip_load(path, L2_CLIP_VISION | L2_CLIP_TEXT);
	const L2ClipConfig *cc = l2_clip_config(c);
	if (l2_clip_layout(c) != L2_CLIP_LAYOUT_OPENAI) l2_die("%s: --clip for training needs OpenAI key names", path);
	L2ClipTrainConfig tc = {.res = cc->res, .patch = cc->patch, .width = cc->width, .layers = cc->layers,
				.heads = cc->heads, .context = cc->context, .vocab = cc->vocab, .twidth = cc->twidth,
				.tlayers = cc->tlayers, .theads = cc->theads, .embed = cc->embed};
	l2_clip_free(c);
	const char *bad = l2_cliptr_check(&tc);
	if (bad) l2_die("%s: %s", path, bad);
	L2ClipTrain *m = l2_cliptr_new(&tc, 0);
	L2Safetensors *st = l2_st_open(path);
	int n = 0;
	for (int i = 0; i < m->np; i++) {
		if (strncmp(m->p[i]->name, "visual.", 7)) continue;
		int64_t sh[AD_MAXDIM];
		for (int k = 0; k < m->p[i]->ndim; k++) sh[k] = m->p[i]->shape[k];
		l2_st_load_f32_into(st, m->p[i]->name, m->p[i]->ndim, sh, m->p[i]->v);
		n++;
	}
	l2_st_close(st);
	if (!n) l2_die("%s: no visual.* tensors", path);
	return m;
}
#endif
