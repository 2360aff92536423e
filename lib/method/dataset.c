/* dataset.c — l2 datasets over lib/io/store.h (layout: schemas/dataset.md). */
#include "method/dataset.h"

#include "core/hash.h"
#include "core/util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

struct L2Dataset {
	L2Store *st;
	int writable;
	/* feature-set info of the last name used (puts come in long runs) */
	char feat_name[40];
	L2FeatureInfo feat;
	int feat_valid;
	int bg_known, has_bg;
	uint8_t bg[3];
};

static const char *DB_IMAGES = "images", *DB_CAPTIONS = "captions", *DB_SPLIT = "split", *DB_GROUPS = "groups",
		  *DB_ATTRS = "attrs", *DB_CORPUS = "corpus";

L2Dataset *l2_dataset_open(const char *path, int mode)
{
	int existed = l2_is_dir(path);
	L2Store *st = l2_store_open(path, mode);
	L2Dataset *ds = l2_calloc(1, sizeof *ds);
	ds->st = st;
	ds->writable = mode != L2_STORE_RDONLY;
	char *kind = l2_store_get_meta(st, "kind");
	if (!kind && mode == L2_STORE_CREATE && (!existed || l2_store_count(st, DB_IMAGES) == 0)) {
		l2_store_set_kind(st, "dataset", 1);
		l2_store_set_meta(st, "state", "building");
		l2_store_commit(st);
	} else {
		l2_store_expect_kind(st, "dataset", 1);
	}
	free(kind);
	return ds;
}

void l2_dataset_close(L2Dataset *ds)
{
	if (!ds) return;
	l2_store_close(ds->st);
	free(ds);
}

L2Store *l2_dataset_store(L2Dataset *ds) { return ds->st; }
const char *l2_dataset_path(const L2Dataset *ds) { return l2_store_path(ds->st); }

int l2_split_parse(const char *s)
{
	if (!strcmp(s, "train")) return L2_SPLIT_TRAIN;
	if (!strcmp(s, "test")) return L2_SPLIT_TEST;
	if (!strcmp(s, "all")) return L2_SPLIT_ALL;
	return -1;
}

const char *l2_split_name(L2Split s) { return s == L2_SPLIT_TRAIN ? "train" : s == L2_SPLIT_TEST ? "test" : "all"; }

L2Split l2_split_for(const char *group, double test_fraction, uint64_t seed)
{
	uint64_t x = l2_mix64(l2_fnv1a64_str(L2_FNV_INIT, group) ^ seed);
	double u = (double)(x >> 11) * 0x1p-53;
	return u < test_fraction ? L2_SPLIT_TEST : L2_SPLIT_TRAIN;
}

/* ---- reading ---------------------------------------------------------------- */

typedef struct {
	L2Split want;
	char **v;
	size_t n, cap;
	const char *path;
} KeysCtx;

static L2Split split_value(const char *path, const void *key, size_t klen, const void *val, size_t vlen)
{
	if (vlen == 5 && !memcmp(val, "train", 5)) return L2_SPLIT_TRAIN;
	if (vlen == 4 && !memcmp(val, "test", 4)) return L2_SPLIT_TEST;
	char q[256];
	l2_die("%s: corrupt split record for '%s'", path, l2_escape(q, sizeof q, key, klen));
}

static int keys_cb(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	KeysCtx *c = ctx;
	L2Split s = split_value(c->path, key, klen, val, vlen);
	if (c->want != L2_SPLIT_ALL && s != c->want) return 0;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 256;
		c->v = l2_realloc(c->v, c->cap * sizeof *c->v);
	}
	char *k = l2_malloc(klen + 1);
	memcpy(k, key, klen);
	k[klen] = 0;
	c->v[c->n++] = k;
	return 0;
}

size_t l2_dataset_keys(L2Dataset *ds, L2Split split, char ***keys)
{
	KeysCtx c = {split, NULL, 0, 0, l2_store_path(ds->st)};
	l2_store_iter(ds->st, DB_SPLIT, keys_cb, &c);
	*keys = c.v ? c.v : l2_malloc(sizeof(char *));
	return c.n;
}

void l2_dataset_free_strings(char **v, size_t n)
{
	if (!v) return;
	for (size_t i = 0; i < n; i++) free(v[i]);
	free(v);
}

typedef struct {
	uint64_t n[3];
	const char *path;
} CountCtx;

static int count_cb(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	CountCtx *c = ctx;
	c->n[split_value(c->path, key, klen, val, vlen)]++;
	c->n[0]++;
	return 0;
}

uint64_t l2_dataset_count(L2Dataset *ds, L2Split split)
{
	if (split == L2_SPLIT_ALL) return l2_store_count(ds->st, DB_SPLIT);
	CountCtx c = {{0, 0, 0}, l2_store_path(ds->st)};
	l2_store_iter(ds->st, DB_SPLIT, count_cb, &c);
	return c.n[split];
}

int l2_dataset_split_of(L2Dataset *ds, const char *key)
{
	void *v;
	size_t vl;
	if (!l2_store_get(ds->st, DB_SPLIT, key, strlen(key), &v, &vl)) return -1;
	int s = split_value(l2_store_path(ds->st), key, strlen(key), v, vl);
	free(v);
	return s;
}

int l2_dataset_image_bytes(L2Dataset *ds, const char *key, unsigned char **buf, size_t *len)
{
	void *v;
	if (!l2_store_get(ds->st, DB_IMAGES, key, strlen(key), &v, len)) return 0;
	*buf = v;
	return 1;
}

int l2_dataset_image(L2Dataset *ds, const char *key, L2Image *img, char *err, size_t errlen)
{
	unsigned char *buf;
	size_t len;
	if (!l2_dataset_image_bytes(ds, key, &buf, &len)) {
		snprintf(err, errlen, "%s: not in the dataset", key);
		return -1;
	}
	char e[256];
	int rc = l2_image_load_mem(buf, len, img, e, sizeof e);
	free(buf);
	if (rc) snprintf(err, errlen, "%s: %s", key, e);
	return rc;
}

int l2_dataset_background(L2Dataset *ds, uint8_t bg[3])
{
	if (!ds->bg_known) {
		char *s = l2_store_get_meta(ds->st, "background");
		ds->bg_known = 1;
		if (s) {
			unsigned r, g, b;
			char q[64];
			if (strlen(s) != 6 || sscanf(s, "%2x%2x%2x", &r, &g, &b) != 3)
				l2_die("%s: meta background '%s' is not RRGGBB hex", l2_store_path(ds->st),
				       l2_escape(q, sizeof q, s, strlen(s)));
			ds->bg[0] = (uint8_t)r, ds->bg[1] = (uint8_t)g, ds->bg[2] = (uint8_t)b;
			ds->has_bg = 1;
			free(s);
		}
	}
	if (ds->has_bg) memcpy(bg, ds->bg, 3);
	return ds->has_bg;
}

int l2_dataset_image_rgb(L2Dataset *ds, const char *key, L2Image *rgb, char *err, size_t errlen)
{
	L2Image img;
	if (l2_dataset_image(ds, key, &img, err, errlen)) return -1;
	uint8_t bg[3];
	if (l2_dataset_background(ds, bg)) l2_image_to_rgb_over(&img, bg, rgb);
	else l2_image_to_rgb(&img, rgb);
	l2_image_free(&img);
	return 0;
}

/* Split a LF-joined value into malloc'd strings. */
static size_t split_lines(const char *v, size_t vl, char ***out)
{
	size_t n = 1;
	for (size_t i = 0; i < vl; i++) n += v[i] == '\n';
	char **r = l2_malloc(n * sizeof *r);
	size_t k = 0, s = 0;
	for (size_t i = 0; i <= vl; i++)
		if (i == vl || v[i] == '\n') {
			r[k] = l2_malloc(i - s + 1);
			memcpy(r[k], v + s, i - s);
			r[k][i - s] = 0;
			k++;
			s = i + 1;
		}
	*out = r;
	return k;
}

size_t l2_dataset_captions(L2Dataset *ds, const char *key, char ***caps)
{
	void *v;
	size_t vl;
	int found = l2_store_get(ds->st, DB_CAPTIONS, key, strlen(key), &v, &vl);
	if (!found || vl == 0) {
		if (found) free(v); /* an empty record: no captions */
		*caps = l2_malloc(sizeof(char *));
		return 0;
	}
	size_t n = split_lines(v, vl, caps);
	free(v);
	return n;
}

static int str_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

size_t l2_dataset_unique_captions(L2Dataset *ds, L2Split split, char ***out)
{
	char **keys;
	size_t n = l2_dataset_keys(ds, split, &keys), m = 0, cap = 0;
	char **v = NULL;
	for (size_t i = 0; i < n; i++) {
		char **caps;
		size_t nc = l2_dataset_captions(ds, keys[i], &caps);
		for (size_t j = 0; j < nc; j++) {
			if (m == cap) {
				cap = cap ? cap * 2 : 1024;
				v = l2_realloc(v, cap * sizeof *v);
			}
			v[m++] = caps[j];
		}
		free(caps);
	}
	l2_dataset_free_strings(keys, n);
	if (m) qsort(v, m, sizeof *v, str_cmp);
	size_t u = 0;
	for (size_t i = 0; i < m; i++) {
		if (u && !strcmp(v[u - 1], v[i])) free(v[i]);
		else v[u++] = v[i];
	}
	*out = v;
	return u;
}

char *l2_dataset_attr(L2Dataset *ds, const char *key, const char *name)
{
	void *v;
	size_t vl;
	if (!l2_store_get(ds->st, DB_ATTRS, key, strlen(key), &v, &vl)) return NULL;
	char **lines;
	size_t n = split_lines(v, vl, &lines), nl = strlen(name);
	char *r = NULL;
	for (size_t i = 0; i < n && !r; i++)
		if (!strncmp(lines[i], name, nl) && lines[i][nl] == '\t') r = l2_strdup(lines[i] + nl + 1);
	l2_dataset_free_strings(lines, n);
	free(v);
	return r;
}

/* ---- features ------------------------------------------------------------------- */

int l2_feature_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n < 1 || n > 32) return 0;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)name[i]) || isdigit((unsigned char)name[i]) || name[i] == '_' || name[i] == '-'))
			return 0;
	return 1;
}

static char *feat_meta(L2Dataset *ds, const char *name, const char *field)
{
	char k[80];
	snprintf(k, sizeof k, "feat.%s.%s", name, field);
	return l2_store_get_meta(ds->st, k);
}

int l2_dataset_feature_info(L2Dataset *ds, const char *name, L2FeatureInfo *info)
{
	if (ds->feat_valid && !strcmp(ds->feat_name, name)) {
		*info = ds->feat;
		return 1;
	}
	if (!l2_feature_name_ok(name)) l2_die("invalid feature-set name '%s' (expected [a-z0-9_-]{1,32})", name);
	char *kind = feat_meta(ds, name, "kind");
	if (!kind) return 0;
	char *dim = feat_meta(ds, name, "dim"), *dt = feat_meta(ds, name, "dtype"), *nz = feat_meta(ds, name, "normalized");
	const char *path = l2_store_path(ds->st);
	memset(info, 0, sizeof *info);
	if (strlen(kind) > 24) l2_die("%s: corrupt meta feat.%s.kind", path, name);
	strcpy(info->kind, kind);
	char *end;
	unsigned long d = dim ? strtoul(dim, &end, 10) : 0;
	if (!dim || *end || d == 0 || d > (1u << 20)) l2_die("%s: corrupt or missing meta feat.%s.dim", path, name);
	info->dim = (uint32_t)d;
	char q[64];
	if (dt && strcmp(dt, "f32") && strcmp(dt, "f16"))
		l2_die("%s: meta feat.%s.dtype '%s' unknown", path, name, l2_escape(q, sizeof q, dt, strlen(dt)));
	info->f16 = dt && !strcmp(dt, "f16");
	info->normalized = nz && !strcmp(nz, "1");
	char *cp = feat_meta(ds, name, "complete");
	info->complete = !cp || strcmp(cp, "0"); /* sets written before completeness was recorded count as complete */
	free(cp);
	free(kind), free(dim), free(dt), free(nz);
	snprintf(ds->feat_name, sizeof ds->feat_name, "%s", name);
	ds->feat = *info;
	ds->feat_valid = 1;
	return 1;
}

void l2_dataset_feature_declare(L2Dataset *ds, const char *name, const L2FeatureInfo *info)
{
	if (!l2_feature_name_ok(name)) l2_die("invalid feature-set name '%s' (expected [a-z0-9_-]{1,32})", name);
	L2FeatureInfo have;
	const char *path = l2_store_path(ds->st);
	if (l2_dataset_feature_info(ds, name, &have)) {
		if (strcmp(have.kind, info->kind) || have.dim != info->dim) {
			char q[128];
			l2_die("%s: feature set '%s' holds %s dim %u, not %s dim %u", path, name,
			       l2_escape(q, sizeof q, have.kind, strlen(have.kind)), have.dim, info->kind, info->dim);
		}
		if (have.normalized && !info->normalized) {
			char k[80];
			snprintf(k, sizeof k, "feat.%s.normalized", name);
			l2_store_set_meta(ds->st, k, "0");
			ds->feat.normalized = 0;
		}
		return;
	}
	char k[80], v[32];
	snprintf(k, sizeof k, "feat.%s.kind", name);
	l2_store_set_meta(ds->st, k, info->kind);
	snprintf(k, sizeof k, "feat.%s.dim", name);
	snprintf(v, sizeof v, "%u", info->dim);
	l2_store_set_meta(ds->st, k, v);
	snprintf(k, sizeof k, "feat.%s.dtype", name);
	l2_store_set_meta(ds->st, k, info->f16 ? "f16" : "f32");
	snprintf(k, sizeof k, "feat.%s.normalized", name);
	l2_store_set_meta(ds->st, k, info->normalized ? "1" : "0");
	ds->feat_valid = 0;
}

static void feat_db(const char *name, char *db, size_t n) { snprintf(db, n, "feat.%s", name); }

static void set_feat_meta(L2Dataset *ds, const char *name, const char *field, const char *value)
{
	char k[80];
	snprintf(k, sizeof k, "feat.%s.%s", name, field);
	l2_store_set_meta(ds->st, k, value);
	ds->feat_valid = 0;
}

void l2_dataset_feature_begin(L2Dataset *ds, const char *name, const L2FeatureInfo *info)
{
	if (!l2_feature_name_ok(name)) l2_die("invalid feature-set name '%s' (expected [a-z0-9_-]{1,32})", name);
	char db[48], activity[80];
	feat_db(name, db, sizeof db);
	snprintf(activity, sizeof activity, "a write into feature set '%s'", name);
	l2_store_lock_db(ds->st, db, activity);
	l2_store_begin(ds->st); /* the check and the first batch: one transaction */
	ds->feat_valid = 0;     /* read the description inside it */
	l2_dataset_feature_declare(ds, name, info);
	set_feat_meta(ds, name, "complete", "0");
}

void l2_dataset_feature_begin_encoded(L2Dataset *ds, const char *name, const char *kind, uint32_t dim, int normalized,
				      const char *model)
{
	L2FeatureInfo fi = {.dim = dim, .normalized = normalized};
	snprintf(fi.kind, sizeof fi.kind, "%s", kind);
	l2_dataset_feature_begin(ds, name, &fi);
	const char *base = strrchr(model, '/');
	l2_dataset_set_feature_meta(ds, name, "model", base ? base + 1 : model);
}

void l2_dataset_feature_end(L2Dataset *ds, const char *name, int normalized)
{
	L2FeatureInfo fi;
	if (!l2_dataset_feature_info(ds, name, &fi)) l2_die("%s: feature set '%s' is not declared", l2_store_path(ds->st), name);
	if (fi.normalized && !normalized) set_feat_meta(ds, name, "normalized", "0");
	set_feat_meta(ds, name, "complete", "1");
	l2_store_commit(ds->st);
}

void l2_dataset_feature_need_complete(L2Dataset *ds, const char *name, const char *override)
{
	L2FeatureInfo fi;
	const char *path = l2_store_path(ds->st);
	char db[48];
	feat_db(name, db, sizeof db);
	int have = l2_dataset_feature_info(ds, name, &fi);
	if (have && fi.complete) return;
	long pid = l2_store_db_writer(ds->st, db);
	if (!have && !pid) l2_die("%s: no feature set '%s'", path, name);
	unsigned long long n = (unsigned long long)l2_store_count(ds->st, db);
	if (pid) {
		char who[32] = "another process";
		if (pid > 0) snprintf(who, sizeof who, "pid %ld", pid);
		l2_die("%s: feature set '%s' is being written (%s; %llu vectors so far); wait for it to end, or pass "
		       "%s to use what is there", path, name, who, n, override);
	}
	l2_die("%s: feature set '%s' is incomplete (%llu vectors): the write that filled it was interrupted; rerun it "
	       "to complete it, or pass %s to use what is there", path, name, n, override);
}

void l2_dataset_put_feature(L2Dataset *ds, const char *name, const char *key, const float *vec)
{
	L2FeatureInfo fi;
	if (!l2_dataset_feature_info(ds, name, &fi))
		l2_die("%s: feature set '%s' is not declared", l2_store_path(ds->st), name);
	size_t kl = strlen(key);
	if (kl == 0 || kl > L2_DATASET_MAX_KEY)
		l2_die("%s: feature key of %zu bytes (1 to %d allowed)", l2_store_path(ds->st), kl, L2_DATASET_MAX_KEY);
	char db[48];
	feat_db(name, db, sizeof db);
	if (fi.f16) {
		unsigned char *b = l2_malloc((size_t)fi.dim * 2);
		for (uint32_t i = 0; i < fi.dim; i++) l2_put_le16(b + 2 * i, l2_float_to_half(vec[i]));
		l2_store_put(ds->st, db, key, kl, b, (size_t)fi.dim * 2, 0);
		free(b);
	} else {
		/* little-endian host (the project's assumption): floats as they are */
		l2_store_put(ds->st, db, key, kl, vec, (size_t)fi.dim * 4, 0);
	}
}

int l2_dataset_get_feature(L2Dataset *ds, const char *name, const char *key, float *vec)
{
	L2FeatureInfo fi;
	if (!l2_dataset_feature_info(ds, name, &fi)) l2_die("%s: no feature set '%s'", l2_store_path(ds->st), name);
	char db[48];
	feat_db(name, db, sizeof db);
	void *v;
	size_t vl;
	if (!l2_store_get(ds->st, db, key, strlen(key), &v, &vl)) return 0;
	size_t want = (size_t)fi.dim * (fi.f16 ? 2 : 4);
	if (vl != want) {
		char q[256];
		l2_die("%s: feature '%s' of '%s' has %zu bytes, expected %zu", l2_store_path(ds->st), name,
		       l2_escape(q, sizeof q, key, strlen(key)), vl, want);
	}
	if (fi.f16)
		for (uint32_t i = 0; i < fi.dim; i++) vec[i] = l2_half_to_float(l2_le16((unsigned char *)v + 2 * i));
	else memcpy(vec, v, want);
	free(v);
	return 1;
}

static void feature_field_check(const char *name, const char *field)
{
	if (!l2_feature_name_ok(name)) l2_die("invalid feature-set name '%s' (expected [a-z0-9_-]{1,32})", name);
	size_t n = strlen(field);
	int ok = n > 0 && n < 32 && strcmp(field, "kind") && strcmp(field, "dim") && strcmp(field, "dtype") && strcmp(field, "normalized");
	for (size_t i = 0; ok && i < n; i++) ok = islower((unsigned char)field[i]) || field[i] == '_';
	if (!ok) l2_die("feature set '%s': '%s' is not a description field", name, field);
}

char *l2_dataset_feature_meta(L2Dataset *ds, const char *name, const char *field)
{
	feature_field_check(name, field);
	return feat_meta(ds, name, field);
}

void l2_dataset_set_feature_meta(L2Dataset *ds, const char *name, const char *field, const char *value)
{
	feature_field_check(name, field);
	char k[80];
	snprintf(k, sizeof k, "feat.%s.%s", name, field);
	l2_store_set_meta(ds->st, k, value);
}

uint64_t l2_dataset_feature_count(L2Dataset *ds, const char *name)
{
	char db[48];
	feat_db(name, db, sizeof db);
	return l2_store_count(ds->st, db);
}

/* ---- building --------------------------------------------------------------------- */

size_t l2_caption_clean(char *s)
{
	size_t o = 0;
	int space = 1; /* drop leading spaces */
	for (size_t i = 0; s[i]; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f || c == ' ') {
			if (!space) s[o++] = ' ';
			space = 1;
		} else {
			s[o++] = (char)c;
			space = 0;
		}
	}
	while (o && s[o - 1] == ' ') o--;
	s[o] = 0;
	return o;
}

static void need_writer(L2Dataset *ds)
{
	if (!ds->writable) l2_die("%s: dataset opened read-only", l2_store_path(ds->st));
}

int l2_dataset_has_image(L2Dataset *ds, const char *key)
{
	void *v;
	size_t vl;
	if (!l2_store_get(ds->st, DB_SPLIT, key, strlen(key), &v, &vl)) return 0;
	free(v);
	return 1;
}

int l2_dataset_put_image(L2Dataset *ds, const char *key, const void *bytes, size_t len, L2Split split,
			 const char *group)
{
	need_writer(ds);
	size_t kl = strlen(key);
	if (kl == 0 || kl > L2_DATASET_MAX_KEY)
		l2_die("%s: image path of %zu bytes (1 to %d allowed): %.80s...", l2_store_path(ds->st), kl,
		       L2_DATASET_MAX_KEY, key);
	if (split != L2_SPLIT_TRAIN && split != L2_SPLIT_TEST) l2_die("l2_dataset_put_image: bad split");
	if (l2_dataset_has_image(ds, key)) return 0;
	/* images before split: a reader of `split` always finds the image */
	l2_store_put(ds->st, DB_IMAGES, key, kl, bytes, len, 0);
	if (group && strcmp(group, key)) l2_store_put(ds->st, DB_GROUPS, key, kl, group, strlen(group), 0);
	const char *sv = l2_split_name(split);
	l2_store_put(ds->st, DB_SPLIT, key, kl, sv, strlen(sv), 0);
	return 1;
}

int l2_dataset_add_caption(L2Dataset *ds, const char *key, const char *caption)
{
	need_writer(ds);
	char *c = l2_strdup(caption);
	size_t cl = l2_caption_clean(c);
	if (!cl) {
		free(c);
		return 0;
	}
	size_t kl = strlen(key);
	void *v;
	size_t vl;
	int added = 1;
	if (l2_store_get(ds->st, DB_CAPTIONS, key, kl, &v, &vl)) {
		/* already there? compare line by line */
		const char *p = v, *end = (const char *)v + vl;
		while (p <= end) {
			const char *e = memchr(p, '\n', (size_t)(end - p));
			if (!e) e = end;
			if ((size_t)(e - p) == cl && !memcmp(p, c, cl)) {
				added = 0;
				break;
			}
			p = e + 1;
		}
		if (added) {
			char *nv = l2_malloc(vl + 1 + cl);
			memcpy(nv, v, vl);
			nv[vl] = '\n';
			memcpy(nv + vl + 1, c, cl);
			l2_store_put(ds->st, DB_CAPTIONS, key, kl, nv, vl + 1 + cl, 0);
			free(nv);
		}
		free(v);
	} else {
		l2_store_put(ds->st, DB_CAPTIONS, key, kl, c, cl, 0);
	}
	free(c);
	return added;
}

void l2_dataset_set_attr(L2Dataset *ds, const char *key, const char *name, const char *value)
{
	need_writer(ds);
	size_t kl = strlen(key), nl = strlen(name);
	void *v;
	size_t vl;
	char *out = NULL;
	size_t ol = 0;
	if (l2_store_get(ds->st, DB_ATTRS, key, kl, &v, &vl)) {
		char **lines;
		size_t n = split_lines(v, vl, &lines);
		out = l2_malloc(vl + 1);
		for (size_t i = 0; i < n; i++) {
			if (!strncmp(lines[i], name, nl) && lines[i][nl] == '\t') continue;
			size_t ll = strlen(lines[i]);
			if (ol) out[ol++] = '\n';
			memcpy(out + ol, lines[i], ll);
			ol += ll;
		}
		l2_dataset_free_strings(lines, n);
		free(v);
	}
	char *val = l2_strdup(value);
	l2_caption_clean(val); /* no LF or TAB inside a value */
	size_t need = ol + 1 + nl + 1 + strlen(val);
	out = l2_realloc(out, need + 1);
	if (ol) out[ol++] = '\n';
	memcpy(out + ol, name, nl);
	ol += nl;
	out[ol++] = '\t';
	memcpy(out + ol, val, strlen(val));
	ol += strlen(val);
	l2_store_put(ds->st, DB_ATTRS, key, kl, out, ol, 0);
	free(out);
	free(val);
}

int l2_dataset_add_corpus(L2Dataset *ds, const char *text, const char *source)
{
	need_writer(ds);
	char *c = l2_strdup(text);
	size_t cl = l2_caption_clean(c);
	int r;
	if (cl == 0 || cl > L2_DATASET_MAX_KEY) r = -1;
	else r = l2_store_put(ds->st, DB_CORPUS, c, cl, source, strlen(source), 1) == 0;
	free(c);
	return r;
}

void l2_dataset_finish(L2Dataset *ds)
{
	need_writer(ds);
	CountCtx c = {{0, 0, 0}, l2_store_path(ds->st)};
	l2_store_iter(ds->st, DB_SPLIT, count_cb, &c);
	char v[32];
	snprintf(v, sizeof v, "%llu", (unsigned long long)c.n[0]);
	l2_store_set_meta(ds->st, "images", v);
	snprintf(v, sizeof v, "%llu", (unsigned long long)c.n[L2_SPLIT_TRAIN]);
	l2_store_set_meta(ds->st, "train", v);
	snprintf(v, sizeof v, "%llu", (unsigned long long)c.n[L2_SPLIT_TEST]);
	l2_store_set_meta(ds->st, "test", v);
	snprintf(v, sizeof v, "%llu", (unsigned long long)l2_store_count(ds->st, DB_CAPTIONS));
	l2_store_set_meta(ds->st, "captions", v);
	snprintf(v, sizeof v, "%llu", (unsigned long long)l2_store_count(ds->st, DB_CORPUS));
	l2_store_set_meta(ds->st, "corpus", v);
	l2_store_set_meta(ds->st, "state", "complete");
	l2_store_commit(ds->st);
}
