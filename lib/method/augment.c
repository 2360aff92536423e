/* augment.c — DiffAugment's colour, translation and cutout (see augment.h). */
#include "method/augment.h"
#include "core/util.h"

#include <string.h>

static const struct {
	const char *name;
	int bit;
} names[] = {{"color", L2_AUG_COLOR}, {"translation", L2_AUG_TRANSLATION}, {"cutout", L2_AUG_CUTOUT}};

int l2_augment_parse(const char *spec, char *bad, size_t badlen)
{
	if (!strcmp(spec, "none") || !*spec) return 0;
	int policy = 0;
	const char *s = spec;
	for (;;) {
		size_t len = strcspn(s, ",");
		int bit = 0;
		for (size_t i = 0; i < sizeof names / sizeof *names; i++)
			if (strlen(names[i].name) == len && !strncmp(s, names[i].name, len)) bit = names[i].bit;
		if (!bit) {
			snprintf(bad, badlen, "%.*s", (int)len, s);
			return -1;
		}
		policy |= bit;
		if (!s[len]) break;
		s += len + 1;
	}
	return policy;
}

void l2_augment_str(int policy, char *buf, size_t len)
{
	size_t at = 0;
	buf[0] = 0;
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (policy & names[i].bit && at < len)
			at += (size_t)snprintf(buf + at, len - at, "%s%s", at ? "," : "", names[i].name);
	if (!at) snprintf(buf, len, "none");
}

static int translation_range(int n) { return (int)(n * 0.125 + 0.5); }
static int cutout_side(int n) { return (int)(n * 0.5 + 0.5); }

void l2_augment_draw(L2Rng *r, int H, int W, L2AugParams *p)
{
	p->brightness = l2_rng_uniform(r) - 0.5;
	p->saturation = 2 * l2_rng_uniform(r);
	p->contrast = l2_rng_uniform(r) + 0.5;
	int sy = translation_range(H), sx = translation_range(W);
	p->ty = (int)l2_rng_below(r, (uint64_t)(2 * sy + 1)) - sy;
	p->tx = (int)l2_rng_below(r, (uint64_t)(2 * sx + 1)) - sx;
	/* the square's centre anywhere on the image (one more place for an
	 * even side, as DiffAugment) */
	int ch = cutout_side(H), cw = cutout_side(W);
	p->cy = (int)l2_rng_below(r, (uint64_t)(H + 1 - ch % 2)) - ch / 2;
	p->cx = (int)l2_rng_below(r, (uint64_t)(W + 1 - cw % 2)) - cw / 2;
}

/* Per-sample constants [N, 1, 1, 1]. */
static AdTensor *per_sample(AdGraph *g, int N)
{
	return ad_tensor(g, 4, (int[]){N, 1, 1, 1});
}

/* (x - m) k + m, m broadcast over what it was averaged over */
static AdTensor *about_mean(AdGraph *g, AdTensor *x, AdTensor *m, AdTensor *k)
{
	return ad_add(g, ad_mul(g, ad_sub(g, x, m), k), m);
}

AdTensor *l2_augment_apply(AdGraph *g, AdTensor *x, int policy, const L2AugParams *p)
{
	if (x->ndim != 4) l2_die("l2_augment_apply: images must be [N, C, H, W]");
	int N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
	if (policy & L2_AUG_COLOR) {
		AdTensor *kb = per_sample(g, N), *ks = per_sample(g, N), *kc = per_sample(g, N);
		for (int n = 0; n < N; n++)
			kb->v[n] = (adr)p[n].brightness, ks->v[n] = (adr)p[n].saturation, kc->v[n] = (adr)p[n].contrast;
		x = ad_add(g, x, kb);
		x = about_mean(g, x, ad_mean(g, x, 1, 1), ks);
		AdTensor *m = ad_reshape(g, ad_mean(g, ad_reshape(g, x, 2, (int[]){N, C * H * W}), 1, 1), 4, (int[]){N, 1, 1, 1});
		x = about_mean(g, x, m, kc);
	}
	if (policy & L2_AUG_TRANSLATION) {
		int *s = ad_scratch(g, (size_t)2 * N * sizeof(int));
		for (int n = 0; n < N; n++) s[2 * n] = p[n].ty, s[2 * n + 1] = p[n].tx;
		x = ad_translate(g, x, s);
	}
	if (policy & L2_AUG_CUTOUT) {
		int ch = cutout_side(H), cw = cutout_side(W);
		AdTensor *mask = ad_tensor(g, 4, (int[]){N, 1, H, W});
		for (int n = 0; n < N; n++)
			for (int i = 0; i < H; i++)
				for (int j = 0; j < W; j++) {
					int in = i >= p[n].cy && i < p[n].cy + ch && j >= p[n].cx && j < p[n].cx + cw;
					mask->v[((size_t)n * H + i) * W + j] = in ? 0 : 1;
				}
		x = ad_mul(g, x, mask);
	}
	return x;
}
