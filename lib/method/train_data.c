/* train_data.c — images and conditions for the generators' trainers (see train_data.h). */
#include "method/train_data.h"
#include "nn/ckpt.h"
#include "nn/train.h"
#include "io/image.h"
#include "core/util.h"
#include "core/vec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *cond_names[] = {"text", "pseudo", "gaussian", "mixed"};

const char *l2_cond_name(L2CondMode c) { return c >= 0 && c <= L2_COND_MIXED ? cond_names[c] : "?"; }

int l2_cond_parse(const char *s)
{
	for (int k = 0; k <= L2_COND_MIXED; k++)
		if (!strcmp(s, cond_names[k])) return k;
	return -1;
}

void l2_train_data_defaults(L2TrainDataOptions *o)
{
	memset(o, 0, sizeof *o);
	o->cond = L2_COND_PSEUDO;
	o->cap_feat = "caption", o->pseudo_feat = "pseudo", o->img_feat = "image";
	o->xi = 3;
	o->res = 32;
}

int l2_train_data_option(int c, const char *arg, L2UsageFn usage, L2TrainDataOptions *o)
{
	switch (c) {
	case L2_OPT_COND: {
		int k = l2_cond_parse(arg);
		if (k < 0) l2_usage_error(usage, "--cond must be text, pseudo, gaussian or mixed, not '%s'", arg);
		o->cond = (L2CondMode)k;
		return 1;
	}
	case L2_OPT_PAIRS_FRACTION: o->pairs = l2_parse_double(arg, "--pairs-fraction"); return 1;
	case L2_OPT_PAIRED_ONLY: o->paired_only = 1; return 1;
	case L2_OPT_ALLOW_INCOMPLETE: o->allow_incomplete = 1; return 1;
	case L2_OPT_CAPTION_FEATURE: o->cap_feat = arg; return 1;
	case L2_OPT_PSEUDO_FEATURE: o->pseudo_feat = arg; return 1;
	case L2_OPT_IMAGE_FEATURE: o->img_feat = arg; return 1;
	case L2_OPT_XI: o->xi = l2_parse_double(arg, "--xi"); return 1;
	default: return 0;
	}
}

void l2_train_data_options_check(L2TrainDataOptions *o, L2UsageFn usage)
{
	if (!(o->pairs >= 0 && o->pairs <= 1)) l2_usage_error(usage, "--pairs-fraction must be in [0, 1]");
	if (o->cond == L2_COND_TEXT) o->pairs = 1;
}

void l2_train_data_image(L2Dataset *ds, const char *key, int R, float *px)
{
	L2Image img, rgb, a, b;
	uint8_t bg[3];
	char err[512];
	if (l2_dataset_image(ds, key, &img, err, sizeof err)) l2_die("%s: %s", l2_dataset_path(ds), err);
	if (l2_dataset_background(ds, bg)) l2_image_to_rgb_over(&img, bg, &rgb);
	else l2_image_to_rgb(&img, &rgb);
	l2_image_resize_short_side(&rgb, R, &a);
	l2_image_center_crop(&a, R, R, &b);
	l2_image_rgb_to_chw(&b, px);
	for (int k = 0; k < 3 * R * R; k++) px[k] = px[k] * 2 - 1;
	l2_image_free(&img), l2_image_free(&rgb), l2_image_free(&a), l2_image_free(&b);
}

static int feat_dim(L2Dataset *ds, const L2TrainDataOptions *o, const char *name, int need, const char *why)
{
	L2FeatureInfo fi;
	if (!l2_dataset_feature_info(ds, name, &fi)) {
		if (need) l2_die("%s: no feature set '%s' (%s)", l2_dataset_path(ds), name, why);
		return 0;
	}
	if (!o->allow_incomplete) l2_dataset_feature_need_complete(ds, name, "--allow-incomplete");
	return (int)fi.dim;
}

static int uses_pseudo(const L2TrainDataOptions *o) { return o->cond == L2_COND_PSEUDO || o->cond == L2_COND_MIXED; }
static int uses_image(const L2TrainDataOptions *o) { return o->cond == L2_COND_GAUSSIAN || o->cond == L2_COND_MIXED; }

int l2_train_data_dim(L2Dataset *ds, const L2TrainDataOptions *o, int want_captions)
{
	const char *used[3] = {o->pairs > 0 || o->cond == L2_COND_TEXT || want_captions ? o->cap_feat : NULL, uses_pseudo(o) ? o->pseudo_feat : NULL,
			       uses_image(o) ? o->img_feat : NULL};
	static const char *why[3] = {"caption features", "pseudo text features", "image features"};
	if (o->paired_only) used[1] = used[2] = NULL;
	int dim = 0;
	const char *dname = NULL;
	for (int k = 0; k < 3; k++) {
		if (!used[k]) continue;
		int d = feat_dim(ds, o, used[k], 1, why[k]);
		if (dim && d != dim)
			l2_die("%s: feature sets '%s' (%d) and '%s' (%d) differ in size", l2_dataset_path(ds), dname, dim, used[k], d);
		dim = d, dname = used[k];
	}
	/* text mode with no caption features declared */
	if (!dim) dim = feat_dim(ds, o, o->cap_feat, 1, "caption features");
	return dim;
}

/* The paired subset's order: FNV-1a of the key from a seeded basis, then a
 * xorshift-multiply finaliser. */
static uint64_t key_hash(const char *k, uint64_t seed)
{
	uint64_t h = l2_fnv1a64(L2_FNV_INIT ^ seed, k, strlen(k));
	h ^= h >> 31;
	h *= 0x7fb5d329728ea185ull;
	return h ^ (h >> 27);
}

static int cmp_rank(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

void l2_train_data_load(L2Dataset *ds, const L2TrainDataOptions *o, L2Split split, int dim, L2TrainData *d,
			int *dropped)
{
	char **keys;
	size_t nk = l2_dataset_keys(ds, split, &keys), n1 = nk ? nk : 1;
	int R = o->res;
	memset(d, 0, sizeof *d);
	d->dim = dim, d->R = R;
	int test = split == L2_SPLIT_TEST;
	int need_img = !test && uses_image(o), need_pseudo = !test && uses_pseudo(o);
	/* caption features of another size (a set not in use) count as absent */
	int has_cap = feat_dim(ds, o, o->cap_feat, 0, "") == dim;
	float *capf = l2_malloc(l2_mul_size(n1, dim * sizeof(float)));
	unsigned char *hascap = l2_calloc(n1, 1);
	char **prim = l2_calloc(n1, sizeof(char *));
	for (size_t i = 0; i < nk; i++) {
		char **caps;
		size_t nc = l2_dataset_captions(ds, keys[i], &caps);
		if (nc) {
			prim[i] = l2_strdup(caps[0]);
			if (has_cap && l2_dataset_get_feature(ds, o->cap_feat, caps[0], capf + i * dim)) hascap[i] = 1;
		}
		l2_dataset_free_strings(caps, nc);
	}
	/* the paired subset: the round(P n) captioned images of lowest key hash */
	unsigned char *pair = l2_calloc(n1, 1);
	if (!test) {
		double pairs = o->cond == L2_COND_TEXT ? 1 : o->pairs;
		uint64_t *rank = l2_malloc(n1 * 2 * sizeof(uint64_t));
		size_t ncap = 0;
		for (size_t i = 0; i < nk; i++)
			if (hascap[i]) rank[2 * ncap] = key_hash(keys[i], o->seed), rank[2 * ncap + 1] = i, ncap++;
		qsort(rank, ncap, 2 * sizeof(uint64_t), cmp_rank);
		size_t want = (size_t)floor(pairs * nk + 0.5);
		if (pairs > 0 && want == 0) want = 1;
		if (want > ncap) {
			if (pairs < 1)
				l2_warn("%s: only %zu of %zu training images have a caption feature: %zu paired", l2_dataset_path(ds),
					ncap, nk, ncap);
			want = ncap;
		}
		for (size_t k = 0; k < want; k++) pair[rank[2 * k + 1]] = 1;
		free(rank);
	}
	d->px = l2_malloc(l2_mul_size(n1, (size_t)3 * R * R * sizeof(float)));
	d->cond = l2_malloc(l2_mul_size(n1, dim * sizeof(float)));
	if (need_img) d->img = l2_malloc(l2_mul_size(n1, dim * sizeof(float)));
	d->paired = l2_calloc(n1, 1);
	d->keys = l2_calloc(n1, sizeof(char *));
	d->caption = l2_calloc(n1, sizeof(char *));
	for (size_t i = 0; i < nk; i++) {
		int n = d->n;
		float *c = d->cond + (size_t)n * dim;
		if (test || pair[i]) {
			if (!hascap[i]) {
				(*dropped)++;
				continue;
			}
			memcpy(c, capf + i * dim, dim * sizeof(float));
			d->paired[n] = 1;
		} else {
			if (o->paired_only) {
				(*dropped)++;
				continue;
			}
			int ok = 1;
			if (need_pseudo && !l2_dataset_get_feature(ds, o->pseudo_feat, keys[i], c)) ok = 0;
			if (need_img && !l2_dataset_get_feature(ds, o->img_feat, keys[i], d->img + (size_t)n * dim)) ok = 0;
			if (!ok) {
				(*dropped)++;
				continue;
			}
			if (!need_pseudo) memcpy(c, d->img + (size_t)n * dim, dim * sizeof(float));
			if (need_img) l2_normalize_rows_exact(d->img + (size_t)n * dim, 1, (size_t)dim);
		}
		l2_normalize_rows_exact(c, 1, (size_t)dim);
		l2_train_data_image(ds, keys[i], R, d->px + (size_t)n * 3 * R * R);
		d->keys[n] = l2_strdup(keys[i]);
		d->caption[n] = prim[i] ? l2_strdup(prim[i]) : NULL;
		d->n++;
	}
	for (size_t i = 0; i < nk; i++) free(prim[i]);
	free(prim), free(capf), free(hascap), free(pair);
	l2_dataset_free_strings(keys, nk);
}

void l2_train_data_free(L2TrainData *d)
{
	for (int i = 0; i < d->n; i++) free(d->keys[i]), free(d->caption[i]);
	free(d->keys), free(d->caption), free(d->px), free(d->cond), free(d->img), free(d->paired);
	memset(d, 0, sizeof *d);
}

int l2_train_data_npaired(const L2TrainData *d)
{
	int n = 0;
	for (int i = 0; i < d->n; i++) n += d->paired[i];
	return n;
}

void l2_train_data_cond(const L2TrainData *d, const L2TrainDataOptions *o, int i, L2Rng *r, float *out)
{
	int dim = d->dim;
	int gauss = !d->paired[i] &&
		    (o->cond == L2_COND_GAUSSIAN || (o->cond == L2_COND_MIXED && l2_rng_uniform(r) < 0.5));
	if (!gauss) {
		memcpy(out, d->cond + (size_t)i * dim, dim * sizeof(float));
		return;
	}
	/* Lafite's Gaussian pseudo feature: normalize(f_hat + xi * eps_hat) */
	double s = 0;
	for (int k = 0; k < dim; k++) out[k] = (float)l2_rng_normal(r), s += (double)out[k] * out[k];
	s = sqrt(s);
	for (int k = 0; k < dim; k++) out[k] = (float)(d->img[(size_t)i * dim + k] + o->xi * out[k] / s);
	l2_normalize_rows_exact(out, 1, (size_t)dim);
}

void l2_train_data_sample(const L2TrainData *d, const L2TrainDataOptions *o, int i, int xflip, L2Rng *r, float *x,
			  float *h)
{
	int R = d->R;
	size_t isz = (size_t)3 * R * R;
	const float *src = d->px + (size_t)i * isz;
	if (xflip && l2_rng_uniform(r) < 0.5) {
		for (int ch = 0; ch < 3; ch++)
			for (int y = 0; y < R; y++)
				for (int k = 0; k < R; k++) x[(ch * R + y) * R + k] = src[(ch * R + y) * R + R - 1 - k];
	} else memcpy(x, src, isz * sizeof(float));
	l2_train_data_cond(d, o, i, r, h);
}

void l2_train_data_batch(const L2TrainData *d, const L2TrainDataOptions *o, const int *idx, int B, int xflip,
			 uint64_t seed, int64_t step, int phase, float *x, float *h)
{
	size_t isz = (size_t)3 * d->R * d->R;
	for (int b = 0; b < B; b++) {
		L2Rng r;
		l2_train_rng(&r, seed, step, phase, (uint64_t)b);
		l2_train_data_sample(d, o, idx[b], xflip, &r, x + b * isz, h + (size_t)b * d->dim);
	}
}
