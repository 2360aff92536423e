/* ckpt.c — weights and training-state files (see ckpt.h). */
#include "nn/ckpt.h"
#include "io/safetensors.h"
#include "core/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
		if (l2_st_tensor(st, i)->dtype != L2_ST_F32) {
			const char *name = l2_st_tensor(st, i)->name;
			char q[128];
			l2_die("%s: tensor %s is not float32", path, l2_escape(q, sizeof q, name, strlen(name)));
		}
	char got[32];
	snprintf(got, sizeof got, "%016" PRIx64, file_checksum(st));
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION /* fuzz builds: reach the checks behind it */
	if (strcmp(got, sum)) l2_die("%s: checksum mismatch: the checkpoint is corrupt", path);
#endif
}

int l2_ckpt_verify(const L2Safetensors *st, const char *path)
{
	if (!l2_st_metadata(st, "l2.checksum")) return 0;
	check_file(st, path);
	return 1;
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

static void check_groups(const L2CkptGroup *g, int ng)
{
	for (int k = 0; k < ng; k++) {
		if (g[k].adam && (g[k].adam->n != g[k].n || g[k].adam->p[0] != g[k].p[0]))
			l2_die("checkpoint group %s: the optimizer is not over its parameters", g[k].name);
		if (g[k].nema < 0 || g[k].nema > L2_CKPT_MAX_EMA) l2_die("checkpoint group %s: %d EMAs", g[k].name, g[k].nema);
		for (int e = 0; e < g[k].nema; e++)
			if (g[k].ema[e]->n != g[k].n) l2_die("checkpoint group %s: an EMA is not over its parameters", g[k].name);
	}
}

static const char *ema_name(const L2CkptGroup *g, int e) { return g->ema_name[e] ? g->ema_name[e] : "ema"; }

/* The tensors of the groups: for each parameter, its value, Adam moments and
 * EMAs under "GROUP.KIND.NAME"; names[] receives the malloc'd names. */
static int group_entries(const L2CkptGroup *g, int ng, Entry **out, char ***names_out)
{
	int ne = 0;
	for (int k = 0; k < ng; k++) ne += g[k].n * (1 + (g[k].adam ? 2 : 0) + g[k].nema);
	Entry *e = l2_calloc(ne ? ne : 1, sizeof *e);
	char **names = l2_calloc(ne ? ne : 1, sizeof *names);
	int m = 0;
	for (int k = 0; k < ng; k++)
		for (int i = 0; i < g[k].n; i++) {
			const char *kind[2 + 2 + L2_CKPT_MAX_EMA];
			const float *src[2 + 2 + L2_CKPT_MAX_EMA];
			int nk = 0;
			kind[nk] = "param", src[nk++] = g[k].p[i]->v;
			if (g[k].adam) {
				kind[nk] = "adam_m", src[nk++] = g[k].adam->m[i];
				kind[nk] = "adam_v", src[nk++] = g[k].adam->v[i];
			}
			for (int j = 0; j < g[k].nema; j++) kind[nk] = ema_name(&g[k], j), src[nk++] = g[k].ema[j]->w[i];
			for (int j = 0; j < nk; j++) {
				size_t len = strlen(g[k].name) + strlen(kind[j]) + strlen(g[k].p[i]->name) + 3;
				names[m] = l2_malloc(len);
				snprintf(names[m], len, "%s.%s.%s", g[k].name, kind[j], g[k].p[i]->name);
				e[m] = (Entry){names[m], src[j], g[k].p[i]->ndim, {0}};
				shape64(g[k].p[i], e[m].shape);
				m++;
			}
		}
	*out = e, *names_out = names;
	return m;
}

void l2_ckpt_save_state(const char *path, const L2TrainState *s, const L2CkptGroup *g, int ng)
{
	check_groups(g, ng);
	Entry *e;
	char **names;
	int ne = group_entries(g, ng, &e, &names);
	/* metadata: fixed keys, then NAME.adam_t per group with an optimizer */
	const char **meta = l2_calloc(2 * (6 + ng) + 1, sizeof *meta);
	char (*num)[32] = l2_calloc(4 + ng, sizeof *num), (*key)[96] = l2_calloc(ng ? ng : 1, sizeof *key);
	snprintf(num[0], 32, "%d", L2_CKPT_STATE_VERSION);
	snprintf(num[1], 32, "%" PRId64, s->step);
	snprintf(num[2], 32, "%" PRIu64, s->data.epoch);
	snprintf(num[3], 32, "%" PRIu64, s->data.pos);
	int m = 0;
	const char *fixed[] = {"l2.kind", "train-state", "l2.state_version", num[0], "step", num[1], "data_epoch", num[2],
			       "data_pos", num[3], "config", s->config};
	for (int i = 0; i < 12; i++) meta[m++] = fixed[i];
	for (int k = 0; k < ng; k++) {
		if (!g[k].adam) continue;
		snprintf(key[k], sizeof key[k], "%s.adam_t", g[k].name);
		snprintf(num[4 + k], 32, "%" PRId64, g[k].adam->t);
		meta[m++] = key[k], meta[m++] = num[4 + k];
	}
	meta[m] = NULL;
	write_entries(path, e, ne, meta, NULL);
	for (int i = 0; i < ne; i++) free(names[i]);
	free(names), free(e), free(meta), free(num), free(key);
}

static uint64_t meta_u64(const L2Safetensors *st, const char *path, const char *key)
{
	const char *v = l2_st_metadata(st, key);
	char *end;
	if (!v || !*v) l2_die("%s: training state lacks '%s'", path, key);
	unsigned long long x = strtoull(v, &end, 10);
	char q[64];
	if (*end) l2_die("%s: training state has a bad '%s': %s", path, key, l2_escape(q, sizeof q, v, strlen(v)));
	return x;
}

void l2_ckpt_load_state(const char *path, L2TrainState *s, const L2CkptGroup *g, int ng)
{
	check_groups(g, ng);
	L2Safetensors *st = l2_st_open(path);
	const char *kind = l2_st_metadata(st, "l2.kind");
	if (!kind || strcmp(kind, "train-state")) l2_die("%s: not an l2 training state", path);
	const char *ver = l2_st_metadata(st, "l2.state_version");
	if (!ver || strcmp(ver, "2")) { /* version 1 had none: one Adam, an RNG stream, tensors param.NAME */
		char q[64];
		l2_die("%s: a training state of format %s; this l2 reads format %d (finish that run with the l2 that "
		       "started it, or start it again without --resume)",
		       path, ver ? l2_escape(q, sizeof q, ver, strlen(ver)) : "1", L2_CKPT_STATE_VERSION);
	}
	check_file(st, path);
	memset(s, 0, sizeof *s);
	s->step = (int64_t)meta_u64(st, path, "step");
	s->data.epoch = meta_u64(st, path, "data_epoch");
	s->data.pos = meta_u64(st, path, "data_pos");
	const char *cfg = l2_st_metadata(st, "config");
	snprintf(s->config, sizeof s->config, "%s", cfg ? cfg : "");
	Entry *e;
	char **names;
	int ne = group_entries(g, ng, &e, &names);
	for (int i = 0; i < ne; i++) {
		l2_st_load_f32_into(st, e[i].name, e[i].ndim, e[i].shape, (float *)e[i].data);
		free(names[i]);
	}
	free(names), free(e);
	for (int k = 0; k < ng; k++) {
		if (!g[k].adam) continue;
		char key[96];
		snprintf(key, sizeof key, "%s.adam_t", g[k].name);
		g[k].adam->t = (int64_t)meta_u64(st, path, key);
	}
	l2_st_close(st);
}
