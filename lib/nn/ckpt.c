/* ckpt.c — weights and training-state files (see ckpt.h). */
#include "nn/ckpt.h"
#include "io/safetensors.h"
#include "core/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t l2_fnv1a64(uint64_t h, const void *buf, size_t n)
{
	const unsigned char *p = buf;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static void shape64(const AdTensor *t, int64_t *s)
{
	for (int i = 0; i < t->ndim; i++) s[i] = t->shape[i];
}

typedef struct {
	const char *name;
	const float *data;
	int ndim;
	int64_t shape[AD_MAXDIM];
} Entry;

/* l2_st_open lists tensors sorted by name: the checksum follows that order. */
static int by_name(const void *a, const void *b) { return strcmp(((const Entry *)a)->name, ((const Entry *)b)->name); }

static uint64_t entries_checksum(Entry *e, int n)
{
	Entry *s = l2_malloc(n * sizeof *s);
	memcpy(s, e, n * sizeof *s);
	qsort(s, n, sizeof *s, by_name);
	uint64_t h = L2_FNV_INIT;
	for (int i = 0; i < n; i++) {
		size_t ne = 1;
		for (int d = 0; d < s[i].ndim; d++) ne *= (size_t)s[i].shape[d];
		h = l2_fnv1a64(h, s[i].name, strlen(s[i].name));
		h = l2_fnv1a64(h, s[i].data, ne * 4);
	}
	free(s);
	return h;
}

static void write_entries(const char *path, Entry *e, int n, const char *const *meta, const char *const *meta2)
{
	L2StWriter *w = l2_st_writer_new();
	for (int i = 0; i < n; i++) l2_st_writer_add_f32(w, e[i].name, e[i].ndim, e[i].shape, e[i].data);
	for (int k = 0; meta && meta[k]; k += 2) l2_st_writer_meta(w, meta[k], meta[k + 1]);
	for (int k = 0; meta2 && meta2[k]; k += 2) l2_st_writer_meta(w, meta2[k], meta2[k + 1]);
	char sum[32];
	snprintf(sum, sizeof sum, "%016" PRIx64, entries_checksum(e, n));
	l2_st_writer_meta(w, "l2.checksum", sum);
	l2_st_writer_write(w, path);
	l2_st_writer_free(w);
}

/* Checksum over all tensors of an open file, in name order (as written). */
static uint64_t file_checksum(const L2Safetensors *st)
{
	int n = l2_st_count(st);
	Entry *e = l2_calloc(n ? n : 1, sizeof *e);
	for (int i = 0; i < n; i++) {
		const L2Tensor *t = l2_st_tensor(st, i);
		e[i].name = t->name;
		e[i].data = t->data;
		e[i].ndim = 1;
		e[i].shape[0] = (int64_t)t->nelem;
	}
	uint64_t h = entries_checksum(e, n);
	free(e);
	return h;
}

static void check_file(const L2Safetensors *st, const char *path)
{
	const char *sum = l2_st_metadata(st, "l2.checksum");
	if (!sum) l2_die("%s: no l2.checksum in the metadata (not written by l2?)", path);
	for (int i = 0; i < l2_st_count(st); i++)
		if (l2_st_tensor(st, i)->dtype != L2_ST_F32)
			l2_die("%s: tensor %s is not float32", path, l2_st_tensor(st, i)->name);
	char got[32];
	snprintf(got, sizeof got, "%016" PRIx64, file_checksum(st));
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION /* fuzz builds: reach the checks behind it */
	if (strcmp(got, sum)) l2_die("%s: checksum mismatch: the checkpoint is corrupt", path);
#endif
}

void l2_ckpt_save_weights(const char *path, AdTensor **p, int n, const char *const *meta)
{
	Entry *e = l2_calloc(n, sizeof *e);
	for (int i = 0; i < n; i++) {
		if (!p[i]->name) l2_die("l2_ckpt_save_weights: parameter %d has no name", i);
		e[i] = (Entry){p[i]->name, p[i]->v, p[i]->ndim, {0}};
		shape64(p[i], e[i].shape);
	}
	write_entries(path, e, n, meta, NULL);
	free(e);
}

static void load_into(const L2Safetensors *st, const char *name, AdTensor *t, const float *fallback_unused)
{
	int64_t s[AD_MAXDIM];
	shape64(t, s);
	l2_st_load_f32_into(st, name, t->ndim, s, t->v);
}

void l2_ckpt_load_weights(const char *path, AdTensor **p, int n)
{
	L2Safetensors *st = l2_st_open(path);
	if (l2_st_metadata(st, "l2.checksum")) check_file(st, path);
	for (int i = 0; i < n; i++) load_into(st, p[i]->name, p[i], NULL);
	l2_st_close(st);
}

void l2_ckpt_save_state(const char *path, const L2TrainState *s, AdTensor **p, int n, const L2Adam *opt,
			const L2Ema *ema)
{
	int ne = n * (1 + (opt ? 2 : 0) + (ema ? 1 : 0)), k = 0;
	Entry *e = l2_calloc(ne, sizeof *e);
	char **names = l2_calloc(ne, sizeof *names);
	for (int i = 0; i < n; i++) {
		static const char *pre[] = {"param.", "adam_m.", "adam_v.", "ema."};
		const float *src[4] = {p[i]->v, opt ? opt->m[i] : NULL, opt ? opt->v[i] : NULL, ema ? ema->w[i] : NULL};
		for (int j = 0; j < 4; j++) {
			if (!src[j]) continue;
			size_t len = strlen(pre[j]) + strlen(p[i]->name) + 1;
			names[k] = l2_malloc(len);
			snprintf(names[k], len, "%s%s", pre[j], p[i]->name);
			e[k] = (Entry){names[k], src[j], p[i]->ndim, {0}};
			shape64(p[i], e[k].shape);
			k++;
		}
	}
	char step[32], t[32], key[32], ctr[32], ep[32], pos[32];
	snprintf(step, sizeof step, "%" PRId64, s->step);
	snprintf(t, sizeof t, "%" PRId64, opt ? opt->t : 0);
	snprintf(key, sizeof key, "%" PRIu64, s->rng.key);
	snprintf(ctr, sizeof ctr, "%" PRIu64, s->rng.ctr);
	snprintf(ep, sizeof ep, "%" PRIu64, s->data.epoch);
	snprintf(pos, sizeof pos, "%" PRIu64, s->data.pos);
	const char *meta[] = {"l2.kind", "train-state", "step", step, "adam_t", t, "rng_key", key, "rng_ctr", ctr,
			      "data_epoch", ep, "data_pos", pos, "config", s->config, NULL};
	write_entries(path, e, k, meta, NULL);
	for (int i = 0; i < k; i++) free(names[i]);
	free(names);
	free(e);
}

static uint64_t meta_u64(const L2Safetensors *st, const char *path, const char *key)
{
	const char *v = l2_st_metadata(st, key);
	char *end;
	if (!v || !*v) l2_die("%s: training state lacks '%s'", path, key);
	unsigned long long x = strtoull(v, &end, 10);
	if (*end) l2_die("%s: training state has a bad '%s': %s", path, key, v);
	return x;
}

void l2_ckpt_load_state(const char *path, L2TrainState *s, AdTensor **p, int n, L2Adam *opt, L2Ema *ema)
{
	L2Safetensors *st = l2_st_open(path);
	const char *kind = l2_st_metadata(st, "l2.kind");
	if (!kind || strcmp(kind, "train-state")) l2_die("%s: not an l2 training state", path);
	check_file(st, path);
	memset(s, 0, sizeof *s);
	s->step = (int64_t)meta_u64(st, path, "step");
	s->rng.key = meta_u64(st, path, "rng_key");
	s->rng.ctr = meta_u64(st, path, "rng_ctr");
	s->data.epoch = meta_u64(st, path, "data_epoch");
	s->data.pos = meta_u64(st, path, "data_pos");
	const char *cfg = l2_st_metadata(st, "config");
	snprintf(s->config, sizeof s->config, "%s", cfg ? cfg : "");
	char name[600];
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof name, "param.%s", p[i]->name);
		load_into(st, name, p[i], NULL);
		if (opt) {
			int64_t sh[AD_MAXDIM];
			shape64(p[i], sh);
			snprintf(name, sizeof name, "adam_m.%s", p[i]->name);
			l2_st_load_f32_into(st, name, p[i]->ndim, sh, opt->m[i]);
			snprintf(name, sizeof name, "adam_v.%s", p[i]->name);
			l2_st_load_f32_into(st, name, p[i]->ndim, sh, opt->v[i]);
		}
		if (ema) {
			int64_t sh[AD_MAXDIM];
			shape64(p[i], sh);
			snprintf(name, sizeof name, "ema.%s", p[i]->name);
			l2_st_load_f32_into(st, name, p[i]->ndim, sh, ema->w[i]);
		}
	}
	if (opt) opt->t = (int64_t)meta_u64(st, path, "adam_t");
	l2_st_close(st);
}
