/* latents.c — VAE latents of a dataset's images as a feature set, and
 * latents back to images (see latents.h). */
#include "method/latents.h"

#include "method/train_data.h"
#include "io/store.h"
#include "core/util.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void l2_latents_defaults(L2LatentsOptions *o)
{
	memset(o, 0, sizeof *o);
	o->name = "latent";
	o->resolution = 64;
	o->split = L2_SPLIT_ALL;
	o->batch = 8;
}

/* ---- the description ------------------------------------------------------------ */

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

char *l2_latents_info_json(const L2LatentInfo *in)
{
	json_t *j = json_object(), *shape = json_array();
	json_object_set_new(j, "vae_sha256", json_string(in->vae_sha256));
	json_object_set_new(j, "vae_files", json_string(in->vae_files));
	json_object_set_new(j, "vae_kind", json_string(in->vae_kind));
	json_object_set_new(j, "scale", json_real(in->scale));
	json_object_set_new(j, "shift", json_real(in->shift));
	json_object_set_new(j, "resolution", json_integer(in->resolution));
	json_array_append_new(shape, json_integer(in->channels));
	json_array_append_new(shape, json_integer(in->h));
	json_array_append_new(shape, json_integer(in->w));
	json_object_set_new(j, "shape", shape);
	json_object_set_new(j, "posterior", json_string(in->sampled ? "sample" : "mean"));
	json_object_set_new(j, "seed", json_integer((json_int_t)in->seed));
	json_object_set_new(j, "complete", json_boolean(in->complete));
	if (in->complete) {
		json_t *cm = json_array(), *cs = json_array();
		for (int c = 0; c < in->channels; c++) {
			json_array_append_new(cm, json_real(in->channel_mean[c]));
			json_array_append_new(cs, json_real(in->channel_std[c]));
		}
		json_object_set_new(j, "count", json_integer((json_int_t)in->count));
		json_object_set_new(j, "mean", json_real(in->mean));
		json_object_set_new(j, "std", json_real(in->std));
		json_object_set_new(j, "channel_mean", cm);
		json_object_set_new(j, "channel_std", cs);
	}
	char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
	json_decref(j);
	return s;
}

static int bad(char *err, size_t n, const char *what)
{
	snprintf(err, n, "%s missing or wrong", what);
	return -1;
}

int l2_latents_info_parse(const char *js, L2LatentInfo *in, char *err, size_t n)
{
	json_error_t je;
	json_t *j = json_loads(js, 0, &je), *v;
	memset(in, 0, sizeof *in);
	if (!j || !json_is_object(j)) {
		json_decref(j);
		snprintf(err, n, "not a JSON object");
		return -1;
	}
	int rc = 0;
#define NEED(cond, what) if (!(cond)) { rc = bad(err, n, what); goto out; }
	v = json_object_get(j, "vae_sha256");
	NEED(json_is_string(v) && json_string_length(v) < sizeof in->vae_sha256 && json_string_length(v) >= 64, "vae_sha256");
	snprintf(in->vae_sha256, sizeof in->vae_sha256, "%s", json_string_value(v));
	v = json_object_get(j, "vae_files");
	if (json_is_string(v)) snprintf(in->vae_files, sizeof in->vae_files, "%s", json_string_value(v));
	v = json_object_get(j, "vae_kind");
	NEED(json_is_string(v) && json_string_length(v) < sizeof in->vae_kind, "vae_kind");
	snprintf(in->vae_kind, sizeof in->vae_kind, "%s", json_string_value(v));
	v = json_object_get(j, "scale");
	NEED(json_is_number(v) && json_number_value(v) > 0, "scale");
	in->scale = json_number_value(v);
	v = json_object_get(j, "shift");
	NEED(json_is_number(v), "shift");
	in->shift = json_number_value(v);
	v = json_object_get(j, "resolution");
	NEED(json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) < 1 << 20, "resolution");
	in->resolution = (int)json_integer_value(v);
	v = json_object_get(j, "shape");
	NEED(json_is_array(v) && json_array_size(v) == 3, "shape");
	in->channels = (int)json_integer_value(json_array_get(v, 0));
	in->h = (int)json_integer_value(json_array_get(v, 1));
	in->w = (int)json_integer_value(json_array_get(v, 2));
	NEED(in->channels >= 1 && in->channels <= L2_LATENTS_MAX_CHANNELS && in->h >= 1 && in->w >= 1 && in->h < 1 << 16 &&
		     in->w < 1 << 16, "shape");
	const char *post = json_string_value(json_object_get(j, "posterior"));
	NEED(post && (!strcmp(post, "mean") || !strcmp(post, "sample")), "posterior");
	in->sampled = !strcmp(post, "sample");
	in->seed = (uint64_t)json_integer_value(json_object_get(j, "seed"));
	in->complete = json_is_true(json_object_get(j, "complete"));
	if (in->complete) {
		json_t *cm = json_object_get(j, "channel_mean"), *cs = json_object_get(j, "channel_std");
		NEED(json_is_array(cm) && json_is_array(cs) && (int)json_array_size(cm) == in->channels &&
			     (int)json_array_size(cs) == in->channels, "channel_mean / channel_std");
		for (int c = 0; c < in->channels; c++) {
			in->channel_mean[c] = json_number_value(json_array_get(cm, c));
			in->channel_std[c] = json_number_value(json_array_get(cs, c));
		}
		NEED(json_is_integer(json_object_get(j, "count")) && json_is_number(json_object_get(j, "mean")) &&
			     json_is_number(json_object_get(j, "std")), "count / mean / std");
		in->count = (uint64_t)json_integer_value(json_object_get(j, "count"));
		in->mean = json_number_value(json_object_get(j, "mean"));
		in->std = json_number_value(json_object_get(j, "std"));
	}
#undef NEED
out:
	json_decref(j);
	return rc;
}

static void write_info(L2Dataset *ds, const char *name, const L2LatentInfo *in)
{
	char *s = l2_latents_info_json(in);
	l2_dataset_set_feature_meta(ds, name, "latent", s);
	free(s);
}

int l2_latents_info(L2Dataset *ds, const char *name, L2LatentInfo *in)
{
	L2FeatureInfo fi;
	if (!l2_dataset_feature_info(ds, name, &fi)) return 0;
	const char *path = l2_dataset_path(ds);
	if (strcmp(fi.kind, L2_LATENT_KIND))
		l2_die("%s: feature set '%s' holds %s, not VAE latents (%s)", path, name, fi.kind, L2_LATENT_KIND);
	char *s = l2_dataset_feature_meta(ds, name, "latent"), err[160];
	if (!s) l2_die("%s: feature set '%s': meta feat.%s.latent (the description of the latents) missing", path, name, name);
	int rc = l2_latents_info_parse(s, in, err, sizeof err);
	free(s);
	if (rc) l2_die("%s: meta feat.%s.latent: %s", path, name, err);
	if ((uint64_t)in->channels * in->h * in->w != fi.dim)
		l2_die("%s: meta feat.%s.latent: shape [%d, %d, %d] does not make the set's %u values", path, name, in->channels,
		       in->h, in->w, fi.dim);
	return 1;
}

/* ---- encoding ----------------------------------------------------------------------- */

static uint64_t fnv1a64(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

/* what this run would write, for a new set or to compare with a resumed one */
static void planned_info(const L2Vae *vae, const L2LatentsOptions *o, L2LatentInfo *in)
{
	const L2VaeConfig *c = l2_vae_config(vae);
	int f = l2_vae_factor(vae);
	memset(in, 0, sizeof *in);
	snprintf(in->vae_sha256, sizeof in->vae_sha256, "%s", l2_vae_identity(vae));
	snprintf(in->vae_kind, sizeof in->vae_kind, "%s", l2_vae_kind_name(c->kind));
	in->scale = c->scale;
	in->shift = c->shift;
	in->resolution = o->resolution;
	in->channels = c->latent;
	in->h = in->w = o->resolution / f;
	in->sampled = o->sample;
	in->seed = o->sample ? o->seed : 0;
	for (int i = 0; i < 2 && l2_vae_file(vae, i); i++)
		snprintf(in->vae_files + strlen(in->vae_files), sizeof in->vae_files - strlen(in->vae_files), "%s%s", i ? "," : "",
			 base_name(l2_vae_file(vae, i)));
}

static void check_resume(L2Dataset *ds, const char *name, const L2LatentInfo *have, const L2LatentInfo *want, const L2Vae *vae)
{
	const char *path = l2_dataset_path(ds);
	char why[512];
	if (!l2_vae_identity_matches(vae, have->vae_sha256, L2_VAE_ENCODER, why, sizeof why))
		l2_die("%s: feature set '%s' was made with another VAE: %s", path, name, why);
	if (have->resolution != want->resolution || have->channels != want->channels || have->h != want->h || have->w != want->w)
		l2_die("%s: feature set '%s' holds %dx%d images as [%d, %d, %d] latents, not %dx%d as [%d, %d, %d]", path, name,
		       have->resolution, have->resolution, have->channels, have->h, have->w, want->resolution, want->resolution,
		       want->channels, want->h, want->w);
	if (have->sampled != want->sampled || have->seed != want->seed)
		l2_die("%s: feature set '%s' holds posterior %s latents (seed %llu), not %s (seed %llu)", path, name,
		       have->sampled ? "sample" : "mean", (unsigned long long)have->seed, want->sampled ? "sample" : "mean",
		       (unsigned long long)want->seed);
	if (have->scale != want->scale || have->shift != want->shift)
		l2_die("%s: feature set '%s' holds latents scaled by %g (shift %g), not %g (shift %g)", path, name, have->scale,
		       have->shift, want->scale, want->shift);
}

/* count, mean and std over every stored latent, in double */
static void statistics(L2Dataset *ds, const char *name, L2LatentInfo *in)
{
	char **keys;
	size_t nk = l2_dataset_keys(ds, L2_SPLIT_ALL, &keys);
	size_t per = (size_t)in->h * in->w, dim = per * in->channels;
	float *v = l2_malloc(dim * sizeof(float));
	double s[L2_LATENTS_MAX_CHANNELS] = {0}, q[L2_LATENTS_MAX_CHANNELS] = {0};
	in->count = 0;
	for (size_t i = 0; i < nk; i++) {
		if (!l2_dataset_get_feature(ds, name, keys[i], v)) continue;
		in->count++;
		for (int c = 0; c < in->channels; c++)
			for (size_t k = 0; k < per; k++) {
				double x = v[c * per + k];
				s[c] += x, q[c] += x * x;
			}
	}
	double S = 0, Q = 0, n = (double)in->count * per;
	for (int c = 0; c < in->channels; c++) {
		S += s[c], Q += q[c];
		in->channel_mean[c] = n > 0 ? s[c] / n : 0;
		in->channel_std[c] = n > 0 ? sqrt(fmax(q[c] / n - in->channel_mean[c] * in->channel_mean[c], 0)) : 0;
	}
	n *= in->channels;
	in->mean = n > 0 ? S / n : 0;
	in->std = n > 0 ? sqrt(fmax(Q / n - in->mean * in->mean, 0)) : 0;
	free(v);
	l2_dataset_free_strings(keys, nk);
}

uint64_t l2_latents_encode(L2Dataset *ds, const L2Vae *vae, const L2LatentsOptions *o, L2LatentInfo *info)
{
	const char *path = l2_dataset_path(ds), *name = o->name;
	const L2VaeConfig *c = l2_vae_config(vae);
	int f = l2_vae_factor(vae), R = o->resolution, B = o->batch > 0 ? o->batch : 8;
	if (!(l2_vae_halves(vae) & L2_VAE_ENCODER)) l2_die("%s: the VAE has no encoder loaded", path);
	if (R < f || R % f) l2_die("%s: resolution %d is not a positive multiple of the VAE's factor %d", path, R, f);
	if (o->sample && c->kind != L2_VAE_KL) l2_die("%s: TAESD has no posterior to sample from: encode the mean", path);
	if (c->latent > L2_LATENTS_MAX_CHANNELS) l2_die("%s: %d latent channels (at most %d)", path, c->latent, L2_LATENTS_MAX_CHANNELS);
	L2LatentInfo want, have;
	planned_info(vae, o, &want);
	size_t dim = (size_t)want.channels * want.h * want.w;
	int exists = l2_latents_info(ds, name, &have);
	if (exists && !o->resume)
		l2_die("%s: feature set '%s' exists (--resume continues it; --name picks another)", path, name);
	if (exists) {
		check_resume(ds, name, &have, &want, vae);
		snprintf(want.vae_files, sizeof want.vae_files, "%s", have.vae_files);
	}
	/* one writer per set (its lock), and the set marked incomplete until the last latent is in */
	L2FeatureInfo fi = {.dim = (uint32_t)dim};
	snprintf(fi.kind, sizeof fi.kind, "%s", L2_LATENT_KIND);
	l2_dataset_feature_begin(ds, name, &fi);
	if (!exists) write_info(ds, name, &want);
	l2_store_commit(l2_dataset_store(ds));

	char **keys;
	size_t nk = l2_dataset_keys(ds, o->split, &keys), ntodo = 0;
	float *probe = l2_malloc(dim * sizeof(float));
	char **todo = l2_malloc((nk ? nk : 1) * sizeof *todo);
	for (size_t i = 0; i < nk; i++)
		if (!l2_dataset_get_feature(ds, name, keys[i], probe)) todo[ntodo++] = keys[i];
	free(probe);
	L2Progress prog;
	l2_progress_start(&prog, "latents", "img", ntodo);
	float *px = l2_malloc(l2_mul_size((size_t)B * 3 * R * R, sizeof(float)));
	float *z = l2_malloc(l2_mul_size((size_t)B * dim, sizeof(float)));
	uint64_t *streams = l2_malloc((size_t)B * sizeof *streams);
	for (size_t i0 = 0; i0 < ntodo; i0 += (size_t)B) {
		int nb = ntodo - i0 < (size_t)B ? (int)(ntodo - i0) : B;
		for (int b = 0; b < nb; b++) {
			l2_train_data_image(ds, todo[i0 + b], R, px + (size_t)b * 3 * R * R);
			streams[b] = fnv1a64(todo[i0 + b]);
		}
		L2VaeSample smp = {o->seed, streams};
		l2_vae_encode(vae, px, nb, R, R, o->sample ? &smp : NULL, z);
		for (int b = 0; b < nb; b++) {
			for (size_t k = 0; k < dim; k++)
				if (!isfinite(z[(size_t)b * dim + k]))
					l2_die("%s: %s: the VAE gave a non-finite latent (are these the right weights?)", path, todo[i0 + b]);
			l2_dataset_put_feature(ds, name, todo[i0 + b], z + (size_t)b * dim);
		}
		l2_store_commit(l2_dataset_store(ds)); /* what is committed, --resume keeps */
		l2_progress_add(&prog, (uint64_t)nb);
	}
	l2_progress_end(&prog);
	free(px), free(z), free(streams), free(todo);
	l2_dataset_free_strings(keys, nk);

	want.complete = 1;
	statistics(ds, name, &want);
	write_info(ds, name, &want);
	l2_dataset_feature_end(ds, name, 0); /* commits */
	if (info) *info = want;
	return ntodo;
}

float *l2_latents_gather(L2Dataset *ds, const char *name, const L2LatentInfo *info, char *const *keys, int n)
{
	size_t dim = (size_t)info->channels * info->h * info->w;
	float *z = l2_malloc(l2_mul_size((size_t)(n > 0 ? n : 1), dim * sizeof(float)));
	for (int i = 0; i < n; i++)
		if (!l2_dataset_get_feature(ds, name, keys[i], z + (size_t)i * dim))
			l2_die("%s: image %s has no latent in feature set '%s' (run l2-encode-latents --resume)", l2_dataset_path(ds),
			       keys[i], name);
	return z;
}

/* ---- checks and decoding ---------------------------------------------------------------- */

void l2_latents_check_vae(const L2LatentInfo *in, const L2Vae *vae, int half, const char *what)
{
	const L2VaeConfig *c = l2_vae_config(vae);
	char why[512];
	if (!l2_vae_identity_matches(vae, in->vae_sha256, half, why, sizeof why)) l2_die("%s: %s", what, why);
	if (c->latent != in->channels || in->resolution != in->h * l2_vae_factor(vae))
		l2_die("%s: the VAE makes %d-channel latents at 1/%d of the image size, not [%d, %d, %d] of %dx%d images", what,
		       c->latent, l2_vae_factor(vae), in->channels, in->h, in->w, in->resolution, in->resolution);
	if (c->scale != in->scale || c->shift != in->shift)
		l2_die("%s: the VAE scales latents by %g (shift %g), the latents were made with %g (shift %g): --vae-scale?", what,
		       c->scale, c->shift, in->scale, in->shift);
}

void l2_latents_to_images(const L2Vae *vae, const float *z, int n, int h, int w, L2Image *out)
{
	int f = l2_vae_factor(vae), L = l2_vae_config(vae)->latent, H = h * f, W = w * f, B = 4;
	size_t per = (size_t)L * h * w, img = (size_t)3 * H * W;
	float *x = l2_malloc(l2_mul_size((size_t)B * img, sizeof(float)));
	for (int i0 = 0; i0 < n; i0 += B) {
		int nb = n - i0 < B ? n - i0 : B;
		l2_vae_decode(vae, z + (size_t)i0 * per, nb, h, w, x);
		for (int b = 0; b < nb; b++) l2_image_from_chw(x + (size_t)b * img, W, H, -1.0f, 1.0f, &out[i0 + b]);
	}
	free(x);
}

void l2_latents_write_grid(const L2Vae *vae, const float *z, int n, int h, int w, int cols, const char *path)
{
	if (n < 1) l2_die("%s: no latents to decode", path);
	L2Image *im = l2_calloc((size_t)n, sizeof *im), grid;
	l2_latents_to_images(vae, z, n, h, w, im);
	static const uint8_t white[3] = {255, 255, 255};
	l2_image_grid(im, n, cols, 2, white, &grid);
	l2_image_save_png(path, &grid);
	for (int i = 0; i < n; i++) l2_image_free(&im[i]);
	free(im);
	l2_image_free(&grid);
}
