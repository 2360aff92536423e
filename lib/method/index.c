/* index.c — the index on disk: an LMDB environment of keys, vector blocks, IVF lists and
 * metadata (schemas/index.md), its writer and its reader.  API and guarantees: index.h;
 * the search kernels: index_search.c; the IVF training: kmeans.c.
 *
 * The index talks to LMDB itself rather than through io/store.h; index.h says why. */
#include "method/index.h"
#include "method/index_search.h"
#include "io/stream.h"
#include "core/hash.h"
#include "core/mapguard.h"
#include "core/rng.h"
#include "core/util.h"
#include "core/vec.h"

#include <errno.h>
#include <lmdb.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define LIST_CHUNK 4096u /* ids per IVF list value */
#define NORM_TOL 2e-3  /* unit norm, allowing f16-rounded input */

/* ---- small helpers ------------------------------------------------------------ */

static void put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (unsigned char)v;
}
static uint64_t get_be64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++) v = v << 8 | p[i];
	return v;
}
static void put_be32(unsigned char *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8) p[i] = (unsigned char)v;
}
static uint32_t get_be32(const unsigned char *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* ---- the LMDB store ----------------------------------------------------------------- */

#define DB_META "meta"
#define DB_VECTORS "vectors"
#define DB_KEYS "keys"
#define DB_HASH "hash"
#define DB_CENTROIDS "ivf_centroids"
#define DB_LISTS "ivf_lists"
#define INDEX_FORMAT "l2-index"

static size_t writer_map; /* the map a writer got (for MDB_MAP_FULL's message) */

static void mdb_ok(int rc, const char *path, const char *what)
{
	if (rc == EIO && l2_disk_full(path)) rc = ENOSPC; /* LMDB's word for a short write */
	if (rc == MDB_MAP_FULL)
		l2_die("%s: %s: the index outgrew its %.1f GiB memory map, all that the address-space limit (ulimit -v) "
		       "leaves it", path, what, (double)writer_map / (1 << 30));
	if (rc) l2_die("%s: %s: %s", path, what, mdb_strerror(rc));
}

static char *meta_get(MDB_txn *txn, MDB_dbi dbi, const char *name)
{
	MDB_val k = {strlen(name), (void *)name}, v;
	if (mdb_get(txn, dbi, &k, &v)) return NULL;
	char *s = l2_malloc(v.mv_size + 1);
	memcpy(s, v.mv_data, v.mv_size);
	s[v.mv_size] = 0;
	return s;
}
static void meta_put(MDB_txn *txn, MDB_dbi dbi, const char *path, const char *name, const char *value)
{
	MDB_val k = {strlen(name), (void *)name}, v = {strlen(value), (void *)value};
	mdb_ok(mdb_put(txn, dbi, &k, &v, 0), path, "writing metadata");
}
static uint64_t meta_u64(MDB_txn *txn, MDB_dbi dbi, const char *path, const char *name, uint64_t max)
{
	char *s = meta_get(txn, dbi, name), *end;
	if (!s) l2_die("%s: corrupt index: metadata '%s' missing", path, name);
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	char q[64];
	if (!*s || *end || errno || v > max)
		l2_die("%s: corrupt index: metadata %s = '%s'", path, name, l2_escape(q, sizeof q, s, strlen(s)));
	free(s);
	return v;
}

/* Open an environment; read-only falls back to no locking on a read-only
 * directory. */
static MDB_env *env_open(const char *path, int rdonly, int nosync)
{
	MDB_env *env;
	mdb_ok(mdb_env_create(&env), path, "lmdb");
	mdb_env_set_maxdbs(env, 8);
	if (!rdonly) {
		/* A build is one transaction, so its map cannot grow midway: take a
		 * large one (it costs only address space; the file grows as
		 * written), but no more than half of what an address-space limit
		 * (ulimit -v, common on batch systems) allows, and less again
		 * while the system refuses it. */
		size_t size = (size_t)1 << 40;
		struct rlimit rl;
		if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / 2 < size)
			size = (size_t)(rl.rlim_cur / 2);
		if (size < ((size_t)64 << 20)) size = (size_t)64 << 20;
		int rc = 0;
		for (;;) {
			mdb_env_set_mapsize(env, size);
			rc = mdb_env_open(env, path, nosync ? MDB_NOSYNC : 0, 0644);
			if (rc != ENOMEM || size <= ((size_t)64 << 20)) break;
			mdb_env_close(env);
			mdb_ok(mdb_env_create(&env), path, "lmdb");
			mdb_env_set_maxdbs(env, 8);
			size /= 2;
		}
		if (rc) {
			mdb_env_close(env);
			l2_die("%s: cannot open index for writing: %s", path, mdb_strerror(rc));
		}
		writer_map = size;
		return env;
	}
	/* Readers map the file as it is, not the map size its writer recorded
	 * (1 TiB for indexes built before this was so): LMDB takes the larger
	 * of what is set here and the pages in use. */
	char f[4096];
	struct stat st;
	snprintf(f, sizeof f, "%s/data.mdb", path);
	mdb_env_set_mapsize(env, !stat(f, &st) && st.st_size > 0 ? (size_t)st.st_size : (size_t)1 << 20);
	int rc = mdb_env_open(env, path, MDB_RDONLY, 0644);
	if (rc == EACCES || rc == EROFS) {
		mdb_env_close(env);
		mdb_ok(mdb_env_create(&env), path, "lmdb");
		mdb_env_set_maxdbs(env, 8);
		mdb_env_set_mapsize(env, !stat(f, &st) && st.st_size > 0 ? (size_t)st.st_size : (size_t)1 << 20);
		rc = mdb_env_open(env, path, MDB_RDONLY | MDB_NOLOCK, 0644);
	}
	if (rc) {
		mdb_env_close(env);
		if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH)
			l2_die("%s: not an l2 index (not an LMDB store, or corrupt)", path);
		l2_die("%s: cannot open index: %s", path, mdb_strerror(rc));
	}
	return env;
}

/* Before LMDB maps data.mdb: a store must be a directory holding it, and a
 * file cut short would fault on access rather than fail cleanly. */
static void check_store_files(const char *path)
{
	struct stat st;
	if (stat(path, &st)) l2_die_errno("%s", path);
	if (!S_ISDIR(st.st_mode)) l2_die("%s: not an l2 index (an index is a directory)", path);
	char *f = l2_malloc(strlen(path) + 16);
	sprintf(f, "%s/data.mdb", path);
	if (stat(f, &st)) l2_die("%s: not an l2 index (no data.mdb)", path);
	if (st.st_size < 2 * 4096) l2_die("%s: corrupt index: data.mdb is truncated", path);
	free(f);
}
/* ... and returns the core/mapguard handle of its map, so that a damaged
 * page that sends a read past the file's end names the index instead of
 * killing the program with SIGBUS. */
static int check_not_truncated(MDB_env *env, const char *path)
{
	MDB_envinfo info;
	MDB_stat st;
	mdb_env_info(env, &info);
	mdb_env_stat(env, &st);
	char *f = l2_malloc(strlen(path) + 16);
	sprintf(f, "%s/data.mdb", path);
	struct stat fs;
	if (stat(f, &fs)) l2_die_errno("%s", f);
	if ((uint64_t)(info.me_last_pgno + 1) * st.ms_psize > (uint64_t)fs.st_size)
		l2_die("%s: corrupt index: data.mdb is truncated (%llu bytes, pages up to %llu)", path,
		       (unsigned long long)fs.st_size, (unsigned long long)(info.me_last_pgno + 1) * st.ms_psize);
	sprintf(f, "%s/data.mdb", path);
	int guard = l2_mapguard_add_file(f, path);
	free(f);
	return guard;
}

/* the CLIP-space kinds an index holds and answers */
static int clip_kind(const char *k)
{
	return !strcmp(k, L2_KIND_TEXT) || !strcmp(k, L2_KIND_IMAGE) || !strcmp(k, L2_KIND_PSEUDO);
}

/* ---- writer ------------------------------------------------------------------------- */

struct L2IndexWriter {
	char *path, *dir; /* dir: where the env is (a temp sibling when creating) */
	int creating;
	L2IndexBuildOptions o;
	MDB_env *env;
	int guard; /* core/mapguard handle of env's map */
	MDB_txn *txn;
	MDB_dbi meta, vectors, keys, hash, cent_db, lists_db;
	char kind[32];
	uint32_t dim;
	int f16;
	L2Metric metric;
	int input_normalized;
	uint64_t count, added, dups;
	/* the block being filled: rows [block_no * BLOCK, count) */
	void *blockbuf;
	uint64_t block_no;
	uint32_t fill;
	int block_exists; /* block_no is already stored (a partial block) */
	float *row;
	/* IVF kept up to date while appending (when not retraining) */
	uint32_t nlist;
	float *cent;
	uint32_t *list_chunks; /* (nlist) chunks stored per list */
	int retrain;
	uint64_t assigned; /* rows [0, assigned) are in lists */
	float *S;
};

static char *tmp_dir_path; /* for clean-up on exit or signal */
static void (*prev_handler[32])(int);

static void remove_tmp_dir(void)
{
	if (!tmp_dir_path) return;
	char buf[4096];
	snprintf(buf, sizeof buf, "%s/data.mdb", tmp_dir_path);
	unlink(buf);
	snprintf(buf, sizeof buf, "%s/lock.mdb", tmp_dir_path);
	unlink(buf);
	rmdir(tmp_dir_path);
}
static void on_signal(int sig)
{
	remove_tmp_dir();
	signal(sig, prev_handler[sig] == SIG_ERR ? SIG_DFL : prev_handler[sig]);
	raise(sig);
}

void l2_index_build_options_init(L2IndexBuildOptions *o)
{
	memset(o, 0, sizeof *o);
	o->metric = -1;
	o->ivf_iters = 10;
	o->ivf_init = L2_KMEANS_PLUSPLUS;
	o->seed = 1;
}

/* Refuse any other l2 store (a dataset given as -o) by what it is. */
static void expect_index_format(MDB_txn *txn, MDB_dbi meta, const char *path)
{
	char *fmt = meta_get(txn, meta, "format");
	if (fmt && !strcmp(fmt, INDEX_FORMAT)) {
		free(fmt);
		return;
	}
	char *kind = fmt ? meta_get(txn, meta, "kind") : NULL;
	char qk[64], qf[64];
	if (kind)
		l2_die("%s: not an l2 index: it is an l2 %s store (format '%s')", path, l2_escape(qk, sizeof qk, kind, strlen(kind)),
		       l2_escape(qf, sizeof qf, fmt, strlen(fmt)));
	l2_die("%s: not an l2 index (format '%s')", path, fmt ? l2_escape(qf, sizeof qf, fmt, strlen(fmt)) : "?");
}

static MDB_dbi dbi_open(MDB_txn *txn, const char *path, const char *name, unsigned flags)
{
	MDB_dbi d;
	int rc = mdb_dbi_open(txn, name, flags, &d);
	if (rc == MDB_NOTFOUND) l2_die("%s: corrupt index: database '%s' missing", path, name);
	if (rc == MDB_INCOMPATIBLE) l2_die("%s: corrupt index: database '%s' has the wrong flags", path, name);
	mdb_ok(rc, path, name);
	return d;
}

static size_t elem_size(int f16) { return f16 ? 2 : 4; }

/* Load what appending needs of an existing IVF: centroids and the number of
 * chunks of each list. */
static void writer_load_ivf(L2IndexWriter *w)
{
	MDB_val k, v;
	unsigned char kb[4];
	put_be32(kb, 0);
	k = (MDB_val){4, kb};
	if (mdb_get(w->txn, w->cent_db, &k, &v) || v.mv_size != (size_t)w->nlist * w->dim * 4)
		l2_die("%s: corrupt index: IVF centroids missing or the wrong size", w->path);
	w->cent = l2_malloc_aligned(v.mv_size);
	memcpy(w->cent, v.mv_data, v.mv_size);
	w->list_chunks = l2_calloc(w->nlist, sizeof(uint32_t));
	MDB_cursor *cur;
	mdb_ok(mdb_cursor_open(w->txn, w->lists_db, &cur), w->path, "ivf lists");
	int rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); !rc; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8) l2_die("%s: corrupt index: bad IVF list key", w->path);
		uint32_t l = get_be32(k.mv_data), c = get_be32((unsigned char *)k.mv_data + 4);
		if (l >= w->nlist) l2_die("%s: corrupt index: IVF list %u of %u", w->path, l, w->nlist);
		if (c + 1 > w->list_chunks[l]) w->list_chunks[l] = c + 1;
	}
	mdb_cursor_close(cur);
}

L2IndexWriter *l2_index_writer_open(const char *path, const L2IndexBuildOptions *o, const char *kind, uint32_t dim,
				    int input_normalized)
{
	L2IndexWriter *w = l2_calloc(1, sizeof *w);
	w->path = l2_strdup(path);
	w->o = *o;
	w->input_normalized = input_normalized;
	if (!clip_kind(kind))
		l2_die("%s: cannot index a %s stream (expected text-feature, image-feature or pseudo-text-feature)", path,
		       kind);
	struct stat st;
	if (!stat(path, &st)) {
		if (!S_ISDIR(st.st_mode)) l2_die("%s: exists and is not an index directory", path);
		check_store_files(path);
		w->dir = l2_strdup(path);
	} else {
		if (errno != ENOENT) l2_die_errno("%s", path);
		w->creating = 1;
		/* PATH.tmp.HOST.PID.XXXXXX: what a killed build leaves is removed
		 * by the next one that succeeds (l2_tmp_remove_stale) */
		w->dir = l2_tmp_template(path);
		if (!mkdtemp(w->dir)) l2_die_errno("%s", path);
		chmod(w->dir, 0755);
		tmp_dir_path = w->dir;
		l2_cleanup_register(remove_tmp_dir);
		int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
		for (int i = 0; i < 4; i++) prev_handler[sigs[i]] = signal(sigs[i], on_signal);
	}
	w->env = env_open(w->dir, 0, w->creating);
	w->guard = w->creating ? -1 : check_not_truncated(w->env, path);
	mdb_ok(mdb_txn_begin(w->env, NULL, 0, &w->txn), path, "starting a transaction");
	unsigned cf = w->creating ? MDB_CREATE : 0;
	if (!w->creating) {
		int rc = mdb_dbi_open(w->txn, DB_META, 0, &w->meta);
		if (rc == MDB_NOTFOUND) l2_die("%s: not an l2 index (no metadata)", path);
		mdb_ok(rc, path, "metadata");
		expect_index_format(w->txn, w->meta, path);
	} else w->meta = dbi_open(w->txn, path, DB_META, cf);
	w->vectors = dbi_open(w->txn, path, DB_VECTORS, cf);
	w->keys = dbi_open(w->txn, path, DB_KEYS, cf);
	w->hash = dbi_open(w->txn, path, DB_HASH, cf | MDB_DUPSORT);
	w->cent_db = dbi_open(w->txn, path, DB_CENTROIDS, MDB_CREATE);
	w->lists_db = dbi_open(w->txn, path, DB_LISTS, MDB_CREATE);
	w->dim = dim;
	if (w->creating) {
		snprintf(w->kind, sizeof w->kind, "%s", kind);
		w->f16 = o->f16;
		w->metric = o->metric == L2_METRIC_IP ? L2_METRIC_IP : L2_METRIC_COS;
		w->retrain = o->ivf_nlist > 0;
	} else {
		if (meta_u64(w->txn, w->meta, path, "version", 1000) != L2_INDEX_VERSION)
			l2_die("%s: unsupported index version", path);
		char *ik = meta_get(w->txn, w->meta, "kind");
		if (!ik) l2_die("%s: corrupt index: metadata 'kind' missing", path);
		if (strcmp(ik, kind)) l2_die("%s: the index holds %s vectors, the stream is %s", path, ik, kind);
		snprintf(w->kind, sizeof w->kind, "%s", ik);
		free(ik);
		uint32_t idim = (uint32_t)meta_u64(w->txn, w->meta, path, "dim", L2FS_MAX_DIM);
		if (idim != dim) l2_die("%s: the index has dimension %u, the stream %u", path, idim, dim);
		char *dt = meta_get(w->txn, w->meta, "dtype"), *me = meta_get(w->txn, w->meta, "metric");
		if (!dt || (strcmp(dt, "f32") && strcmp(dt, "f16"))) l2_die("%s: corrupt index: bad dtype", path);
		if (!me || (strcmp(me, "cos") && strcmp(me, "ip"))) l2_die("%s: corrupt index: bad metric", path);
		w->f16 = !strcmp(dt, "f16");
		w->metric = !strcmp(me, "ip") ? L2_METRIC_IP : L2_METRIC_COS;
		if (o->f16 && !w->f16) l2_die("%s: the index stores f32 vectors; --f16 applies only to a new index", path);
		if (o->metric >= 0 && (L2Metric)o->metric != w->metric)
			l2_die("%s: the index has metric %s; --metric %s applies only to a new index", path, me,
			       o->metric == L2_METRIC_IP ? "ip" : "cos");
		free(dt);
		free(me);
		w->count = meta_u64(w->txn, w->meta, path, "count", UINT64_MAX / 2);
		if (meta_u64(w->txn, w->meta, path, "block_rows", UINT32_MAX) != L2_INDEX_BLOCK)
			l2_die("%s: unsupported index block size", path);
		w->nlist = (uint32_t)meta_u64(w->txn, w->meta, path, "ivf_nlist", UINT32_MAX);
		w->retrain = o->ivf_nlist > 0 && o->ivf_nlist != w->nlist;
		if (w->nlist && !w->retrain) writer_load_ivf(w);
	}
	if (w->metric == L2_METRIC_COS && !input_normalized && !o->normalize)
		l2_die("%s: the stream is not flagged unit-norm, and the index holds cosine (unit-norm) vectors: "
		       "use --normalize to scale rows%s",
		       path, w->creating ? ", or --metric ip to index raw inner products" : "");
	w->assigned = w->count;
	size_t es = elem_size(w->f16);
	w->blockbuf = l2_malloc_aligned(l2_mul_size(l2_mul_size(L2_INDEX_BLOCK, dim), es));
	w->row = l2_malloc(dim * sizeof(float));
	w->block_no = w->count / L2_INDEX_BLOCK;
	w->fill = (uint32_t)(w->count % L2_INDEX_BLOCK);
	if (w->fill) { /* continue the partial last block */
		unsigned char kb[8];
		put_be64(kb, w->block_no);
		MDB_val k = {8, kb}, v;
		if (mdb_get(w->txn, w->vectors, &k, &v) || v.mv_size != (size_t)w->fill * dim * es)
			l2_die("%s: corrupt index: last vector block missing or the wrong size", path);
		memcpy(w->blockbuf, v.mv_data, v.mv_size);
		w->block_exists = 1;
	}
	return w;
}

uint64_t l2_index_writer_added(const L2IndexWriter *w) { return w->added; }
uint64_t l2_index_writer_duplicates(const L2IndexWriter *w) { return w->dups; }
uint64_t l2_index_writer_count(const L2IndexWriter *w) { return w->count; }

/* Put ids into list l, extending its last chunk. */
static void list_append(L2IndexWriter *w, uint32_t l, const uint64_t *ids, size_t n)
{
	unsigned char kb[8], *buf = l2_malloc((LIST_CHUNK) * 8);
	uint32_t c = w->list_chunks[l] ? w->list_chunks[l] - 1 : 0;
	size_t have = 0;
	put_be32(kb, l);
	put_be32(kb + 4, c);
	MDB_val k = {8, kb}, v;
	if (w->list_chunks[l]) {
		if (mdb_get(w->txn, w->lists_db, &k, &v) || v.mv_size % 8 || v.mv_size > LIST_CHUNK * 8)
			l2_die("%s: corrupt index: IVF list %u", w->path, l);
		have = v.mv_size / 8;
		memcpy(buf, v.mv_data, v.mv_size);
	}
	while (n) {
		if (have == LIST_CHUNK) {
			c++;
			have = 0;
		}
		size_t m = LIST_CHUNK - have < n ? LIST_CHUNK - have : n;
		for (size_t i = 0; i < m; i++) l2_put_le64(buf + (have + i) * 8, ids[i]);
		have += m, ids += m, n -= m;
		put_be32(kb + 4, c);
		v = (MDB_val){have * 8, buf};
		mdb_ok(mdb_put(w->txn, w->lists_db, &k, &v, 0), w->path, "writing IVF lists");
	}
	w->list_chunks[l] = c + 1;
	free(buf);
}

/* Assign buffered rows [assigned, count) of the current block to lists. */
static void writer_assign_pending(L2IndexWriter *w)
{
	if (!w->nlist || w->retrain || w->assigned == w->count) return;
	size_t d = w->dim, n = w->count - w->assigned, r0 = w->assigned - w->block_no * L2_INDEX_BLOCK;
	float *X = l2_malloc(l2_mul_size(n, d * sizeof(float)));
	for (size_t r = 0; r < n; r++) {
		if (w->f16) l2_half_to_float_row((uint16_t *)w->blockbuf + (r0 + r) * d, X + r * d, d);
		else memcpy(X + r * d, (float *)w->blockbuf + (r0 + r) * d, d * sizeof(float));
	}
	if (!w->S) w->S = l2_malloc(l2_mul_size((size_t)4096 * w->nlist, sizeof(float)));
	uint32_t *as = l2_malloc(n * sizeof(uint32_t));
	l2_kmeans_assign(X, n, d, w->cent, w->nlist, as, w->S);
	uint64_t *ids = l2_malloc(n * sizeof(uint64_t));
	for (size_t i = 0; i < n;) { /* rows grouped by list, in id order */
		uint32_t l = as[i];
		if (l == UINT32_MAX) { i++; continue; }
		size_t m = 0;
		for (size_t j = i; j < n; j++)
			if (as[j] == l) ids[m++] = w->assigned + j, as[j] = UINT32_MAX;
		list_append(w, l, ids, m);
		i++;
	}
	free(ids);
	free(as);
	free(X);
	w->assigned = w->count;
}

static void writer_flush_block(L2IndexWriter *w)
{
	if (!w->fill) return;
	writer_assign_pending(w);
	unsigned char kb[8];
	put_be64(kb, w->block_no);
	MDB_val k = {8, kb}, v = {(size_t)w->fill * w->dim * elem_size(w->f16), w->blockbuf};
	mdb_ok(mdb_put(w->txn, w->vectors, &k, &v, w->block_exists ? 0 : MDB_APPEND), w->path, "writing vectors");
	w->block_exists = 1;
	if (w->fill == L2_INDEX_BLOCK) {
		w->block_no++;
		w->fill = 0;
		w->block_exists = 0;
	}
}

int l2_index_writer_add(L2IndexWriter *w, const char *key, uint32_t key_len, const float *vec)
{
	size_t d = w->dim;
	double s = 0;
	for (size_t j = 0; j < d; j++) {
		if (!isfinite(vec[j])) l2_die("%s: the vector of \"%.60s\" is not finite", w->path, key);
		s += (double)vec[j] * vec[j];
	}
	memcpy(w->row, vec, d * sizeof(float));
	if (w->o.normalize) {
		if (s == 0) l2_die("%s: the vector of \"%.60s\" is zero and cannot be normalised", w->path, key);
		l2_normalize_rows(w->row, 1, d);
	} else if (w->metric == L2_METRIC_COS && fabs(sqrt(s) - 1) > NORM_TOL)
		l2_die("%s: the vector of \"%.60s\" has norm %.6g, not 1 (use --normalize)", w->path, key, sqrt(s));

	/* FNV-1a 64: the key hash of the "hash" database (schemas/index.md) */
	uint64_t h = l2_fnv1a64(L2_FNV_INIT, key, key_len), id = w->count;
	unsigned char hb[8], ib[8];
	put_be64(hb, h);
	put_be64(ib, id);
	MDB_val hk = {8, hb}, hv;
	MDB_cursor *cur;
	mdb_ok(mdb_cursor_open(w->txn, w->hash, &cur), w->path, "hash");
	int rc;
	for (rc = mdb_cursor_get(cur, &hk, &hv, MDB_SET_KEY); !rc; rc = mdb_cursor_get(cur, &hk, &hv, MDB_NEXT_DUP)) {
		MDB_val kk = {8, hv.mv_data}, kv;
		if (hv.mv_size != 8 || mdb_get(w->txn, w->keys, &kk, &kv)) l2_die("%s: corrupt index: hash entry", w->path);
		if (kv.mv_size == (size_t)key_len + 1 && !memcmp(kv.mv_data, key, key_len)) {
			mdb_cursor_close(cur);
			w->dups++;
			return 1;
		}
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND) mdb_ok(rc, w->path, "hash");
	hk = (MDB_val){8, hb};
	MDB_val ik = {8, ib}, kv = {(size_t)key_len + 1, NULL};
	/* MDB_RESERVE: LMDB gives the space, the key and its NUL go straight in */
	mdb_ok(mdb_put(w->txn, w->keys, &ik, &kv, MDB_APPEND | MDB_RESERVE), w->path, "writing keys");
	memcpy(kv.mv_data, key, key_len);
	((char *)kv.mv_data)[key_len] = 0;
	hv = (MDB_val){8, ib};
	mdb_ok(mdb_put(w->txn, w->hash, &hk, &hv, 0), w->path, "writing keys");

	if (w->f16) {
		uint16_t *dst = (uint16_t *)w->blockbuf + (size_t)w->fill * d;
		for (size_t j = 0; j < d; j++) dst[j] = l2_float_to_half(w->row[j]);
	} else memcpy((float *)w->blockbuf + (size_t)w->fill * d, w->row, d * sizeof(float));
	w->fill++;
	w->count++;
	w->added++;
	if (w->fill == L2_INDEX_BLOCK) writer_flush_block(w);
	return 0;
}

/* Gather rows of the index (ids ascending) as f32 into out. */
static const void *writer_block(L2IndexWriter *w, uint64_t b)
{
	unsigned char kb[8];
	put_be64(kb, b);
	MDB_val k = {8, kb}, v;
	uint64_t rows = w->count - b * L2_INDEX_BLOCK < L2_INDEX_BLOCK ? w->count - b * L2_INDEX_BLOCK : L2_INDEX_BLOCK;
	if (mdb_get(w->txn, w->vectors, &k, &v) || v.mv_size != rows * w->dim * elem_size(w->f16))
		l2_die("%s: corrupt index: vector block %llu", w->path, (unsigned long long)b);
	return v.mv_data;
}

static void writer_train_ivf(L2IndexWriter *w)
{
	uint32_t nlist = w->o.ivf_nlist;
	size_t d = w->dim, n = w->count;
	if (nlist > n) l2_die("%s: --ivf %u: more lists than the %zu rows of the index", w->path, nlist, n);
	size_t m = w->o.ivf_sample ? w->o.ivf_sample : (size_t)nlist * 256;
	if (m > n) m = n;
	if (m < nlist) m = nlist;
	l2_info("%s: training %u IVF lists on %zu rows", w->path, nlist, m);
	/* selection sampling: m of n rows, in order */
	float *X = l2_malloc_aligned(l2_mul_size(l2_mul_size(m, d), sizeof(float)));
	L2Rng rng; /* keyed as indexes have always been sampled (see method/kmeans.c) */
	l2_rng_init_key(&rng, w->o.seed ^ 0x73616d706c65ull); /* "sample" */
	size_t got = 0;
	const void *blk = NULL;
	uint64_t cur_b = UINT64_MAX;
	for (uint64_t i = 0; i < n && got < m; i++) {
		if (l2_rng_uniform(&rng) * (double)(n - i) >= (double)(m - got)) continue;
		uint64_t b = i / L2_INDEX_BLOCK, r = i % L2_INDEX_BLOCK;
		if (b != cur_b) blk = writer_block(w, b), cur_b = b;
		if (w->f16) l2_half_to_float_row((const uint16_t *)blk + r * d, X + got * d, d);
		else memcpy(X + got * d, (const float *)blk + r * d, d * sizeof(float));
		got++;
	}
	w->nlist = nlist;
	free(w->cent);
	w->cent = l2_malloc_aligned(l2_mul_size((size_t)nlist * d, sizeof(float)));
	l2_kmeans(X, got, d, nlist, w->o.ivf_iters, w->o.ivf_init, w->o.seed, w->cent, NULL);
	l2_free_aligned(X);

	/* every row to its list */
	uint32_t *as = l2_malloc(l2_mul_size(n, sizeof(uint32_t)));
	float *S = l2_malloc(l2_mul_size((size_t)4096 * nlist, sizeof(float)));
	float *conv = w->f16 ? l2_malloc(l2_mul_size((size_t)L2_INDEX_BLOCK * d, sizeof(float))) : NULL;
	L2Progress prog;
	l2_progress_start(&prog, "assigning rows to lists", "rows", n);
	if (!w->o.progress) prog.enabled = 0;
	for (uint64_t b = 0; b * L2_INDEX_BLOCK < n; b++) {
		size_t rows = n - b * L2_INDEX_BLOCK < L2_INDEX_BLOCK ? n - b * L2_INDEX_BLOCK : L2_INDEX_BLOCK;
		const void *p = writer_block(w, b);
		const float *Xb = p;
		if (w->f16) {
			for (size_t r = 0; r < rows; r++) l2_half_to_float_row((const uint16_t *)p + r * d, conv + r * d, d);
			Xb = conv;
		}
		l2_kmeans_assign(Xb, rows, d, w->cent, nlist, as + b * L2_INDEX_BLOCK, S);
		l2_progress_add(&prog, rows);
	}
	l2_progress_end(&prog);
	free(S);
	free(conv);
	/* counting sort into lists; ids ascending within each */
	uint64_t *off = l2_calloc((size_t)nlist + 1, sizeof(uint64_t));
	for (size_t i = 0; i < n; i++) off[as[i] + 1]++;
	for (uint32_t l = 0; l < nlist; l++) off[l + 1] += off[l];
	uint64_t *ids = l2_malloc(l2_mul_size(n, sizeof(uint64_t)));
	uint64_t *pos = l2_malloc(((size_t)nlist + 1) * sizeof(uint64_t));
	memcpy(pos, off, ((size_t)nlist + 1) * sizeof(uint64_t));
	for (size_t i = 0; i < n; i++) ids[pos[as[i]]++] = i;
	free(pos);
	free(as);
	mdb_ok(mdb_drop(w->txn, w->lists_db, 0), w->path, "clearing IVF lists");
	mdb_ok(mdb_drop(w->txn, w->cent_db, 0), w->path, "clearing IVF centroids");
	unsigned char kb[8], *buf = l2_malloc(LIST_CHUNK * 8);
	free(w->list_chunks);
	w->list_chunks = l2_calloc(nlist, sizeof(uint32_t));
	for (uint32_t l = 0; l < nlist; l++) {
		put_be32(kb, l);
		for (uint64_t c = 0, i = off[l]; i < off[l + 1]; c++) {
			size_t m2 = off[l + 1] - i < LIST_CHUNK ? off[l + 1] - i : LIST_CHUNK;
			for (size_t j = 0; j < m2; j++) l2_put_le64(buf + j * 8, ids[i + j]);
			put_be32(kb + 4, (uint32_t)c);
			MDB_val k = {8, kb}, v = {m2 * 8, buf};
			mdb_ok(mdb_put(w->txn, w->lists_db, &k, &v, MDB_APPEND), w->path, "writing IVF lists");
			i += m2;
			w->list_chunks[l] = (uint32_t)c + 1;
		}
	}
	free(buf);
	free(ids);
	free(off);
	put_be32(kb, 0);
	MDB_val k = {4, kb}, v = {(size_t)nlist * d * sizeof(float), w->cent};
	mdb_ok(mdb_put(w->txn, w->cent_db, &k, &v, 0), w->path, "writing IVF centroids");
	w->retrain = 0;
	w->assigned = n;
}

void l2_index_writer_close(L2IndexWriter *w)
{
	writer_flush_block(w);
	if (w->creating && w->count == 0) l2_die("%s: no records to index", w->path);
	if (w->retrain) writer_train_ivf(w);
	char buf[64];
	meta_put(w->txn, w->meta, w->path, "format", INDEX_FORMAT);
	snprintf(buf, sizeof buf, "%d", L2_INDEX_VERSION);
	meta_put(w->txn, w->meta, w->path, "version", buf);
	meta_put(w->txn, w->meta, w->path, "kind", w->kind);
	snprintf(buf, sizeof buf, "%u", w->dim);
	meta_put(w->txn, w->meta, w->path, "dim", buf);
	meta_put(w->txn, w->meta, w->path, "dtype", w->f16 ? "f16" : "f32");
	meta_put(w->txn, w->meta, w->path, "metric", w->metric == L2_METRIC_IP ? "ip" : "cos");
	snprintf(buf, sizeof buf, "%llu", (unsigned long long)w->count);
	meta_put(w->txn, w->meta, w->path, "count", buf);
	snprintf(buf, sizeof buf, "%u", L2_INDEX_BLOCK);
	meta_put(w->txn, w->meta, w->path, "block_rows", buf);
	snprintf(buf, sizeof buf, "%u", w->nlist);
	meta_put(w->txn, w->meta, w->path, "ivf_nlist", buf);
	meta_put(w->txn, w->meta, w->path, "l2_version", L2_VERSION);
	int rc = mdb_txn_commit(w->txn);
	w->txn = NULL;
	mdb_ok(rc, w->path, "committing");
	if (w->creating) mdb_ok(mdb_env_sync(w->env, 1), w->path, "syncing");
	l2_mapguard_remove(w->guard);
	mdb_env_close(w->env);
	if (w->creating) {
		char lock[4096];
		snprintf(lock, sizeof lock, "%s/lock.mdb", w->dir);
		unlink(lock); /* recreated by the next opener */
		if (rename(w->dir, w->path)) {
			int e = errno;
			remove_tmp_dir();
			if (e == ENOTEMPTY || e == EEXIST)
				l2_die("%s: another build created this index meanwhile; this build's rows are not in it (run it "
				       "again to append them)", w->path);
			errno = e;
			l2_die_errno("%s", w->path);
		}
		tmp_dir_path = NULL;
		l2_tmp_remove_stale(w->path);
	}
	l2_free_aligned(w->blockbuf);
	l2_free_aligned(w->cent);
	free(w->list_chunks);
	free(w->S);
	free(w->row);
	free(w->dir);
	free(w->path);
	free(w);
}

/* ---- reader --------------------------------------------------------------------------- */

struct L2Index {
	char *path;
	MDB_env *env;
	int guard; /* core/mapguard handle of env's map */
	MDB_txn *txn;
	MDB_dbi meta, keys;
	char kind[32];
	L2Metric metric;
	L2IndexRows R;
	uint32_t nlist;
	float *cent;
	uint64_t *list_off, *list_ids;
	L2Held held; /* from open to close (util.h): the environment */
};

/* Map the pages in now, when the index fits comfortably in memory: a search
 * would otherwise take a page fault per 4 KiB (or 64 KiB) on its first pass. */
static void prefault_map(MDB_env *env)
{
	MDB_envinfo info;
	MDB_stat st;
	mdb_env_info(env, &info);
	mdb_env_stat(env, &st);
	size_t used = (size_t)(info.me_last_pgno + 1) * st.ms_psize;
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	if (pages <= 0 || psz <= 0 || used > (size_t)pages * (size_t)psz / 2) return;
#ifdef MADV_POPULATE_READ
	if (!madvise(info.me_mapaddr, used, MADV_POPULATE_READ)) return;
#endif
	madvise(info.me_mapaddr, used, MADV_WILLNEED);
}

/* Also what a harness releases after catching a die in l2_index_open: the
 * struct may be partly filled (a cursor the die skipped is memory only). */
static void index_release(void *ix) { l2_index_close(ix); }

L2Index *l2_index_open(const char *path)
{
	check_store_files(path);
	L2Index *ix = l2_calloc(1, sizeof *ix);
	l2_hold(&ix->held, index_release, ix);
	ix->guard = -1;
	ix->path = l2_strdup(path);
	ix->env = env_open(path, 1, 0);
	ix->guard = check_not_truncated(ix->env, path);
	mdb_ok(mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &ix->txn), path, "starting a transaction");
	int rc = mdb_dbi_open(ix->txn, DB_META, 0, &ix->meta);
	if (rc == MDB_NOTFOUND) l2_die("%s: not an l2 index (no metadata)", path);
	if (rc) l2_die("%s: not an l2 index (or corrupt): %s", path, mdb_strerror(rc));
	expect_index_format(ix->txn, ix->meta, path);
	if (meta_u64(ix->txn, ix->meta, path, "version", 1000) != L2_INDEX_VERSION)
		l2_die("%s: unsupported index version (this l2 reads version %d)", path, L2_INDEX_VERSION);
	char *kind = meta_get(ix->txn, ix->meta, "kind"), *dt = meta_get(ix->txn, ix->meta, "dtype"),
	     *me = meta_get(ix->txn, ix->meta, "metric");
	if (!kind || !clip_kind(kind)) l2_die("%s: corrupt index: bad kind", path);
	if (!dt || (strcmp(dt, "f32") && strcmp(dt, "f16"))) l2_die("%s: corrupt index: bad dtype", path);
	if (!me || (strcmp(me, "cos") && strcmp(me, "ip"))) l2_die("%s: corrupt index: bad metric", path);
	snprintf(ix->kind, sizeof ix->kind, "%s", kind);
	L2IndexRows *R = &ix->R;
	R->f16 = !strcmp(dt, "f16");
	ix->metric = !strcmp(me, "ip") ? L2_METRIC_IP : L2_METRIC_COS;
	R->max_norm = ix->metric == L2_METRIC_COS ? 1 + 2 * NORM_TOL : 0;
	free(kind);
	free(dt);
	free(me);
	R->d = meta_u64(ix->txn, ix->meta, path, "dim", L2FS_MAX_DIM);
	if (!R->d) l2_die("%s: corrupt index: dimension 0", path);
	R->count = meta_u64(ix->txn, ix->meta, path, "count", UINT64_MAX / 2);
	if (meta_u64(ix->txn, ix->meta, path, "block_rows", UINT32_MAX) != L2_INDEX_BLOCK)
		l2_die("%s: unsupported index block size", path);
	ix->nlist = (uint32_t)meta_u64(ix->txn, ix->meta, path, "ivf_nlist", UINT32_MAX);
	if (R->count == 0) l2_die("%s: the index is empty", path);
	MDB_dbi vec = dbi_open(ix->txn, path, DB_VECTORS, 0);
	ix->keys = dbi_open(ix->txn, path, DB_KEYS, 0);
	MDB_stat st;
	mdb_ok(mdb_stat(ix->txn, ix->keys, &st), path, "keys");
	if (st.ms_entries != R->count)
		l2_die("%s: corrupt index: %llu keys for %llu rows", path, (unsigned long long)st.ms_entries,
		       (unsigned long long)R->count);
	/* every block's mapped address, checking numbering and sizes */
	R->stride = L2_INDEX_BLOCK;
	R->nblocks = (R->count + L2_INDEX_BLOCK - 1) / L2_INDEX_BLOCK;
	R->blk = l2_malloc(R->nblocks * sizeof(void *));
	R->blk_rows = l2_malloc(R->nblocks * sizeof(uint32_t));
	size_t es = elem_size(R->f16);
	MDB_cursor *cur;
	MDB_val k, v;
	mdb_ok(mdb_cursor_open(ix->txn, vec, &cur), path, "vectors");
	size_t b = 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); !rc; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), b++) {
		uint64_t rows = R->count - b * L2_INDEX_BLOCK < L2_INDEX_BLOCK ? R->count - b * L2_INDEX_BLOCK : L2_INDEX_BLOCK;
		if (b >= R->nblocks || k.mv_size != 8 || get_be64(k.mv_data) != b || v.mv_size != rows * R->d * es)
			l2_die("%s: corrupt index: vector block %zu", path, b);
		R->blk[b] = v.mv_data;
		R->blk_rows[b] = (uint32_t)rows;
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND) mdb_ok(rc, path, "reading vectors");
	if (b != R->nblocks) l2_die("%s: corrupt index: %zu vector blocks for %llu rows", path, b, (unsigned long long)R->count);
	prefault_map(ix->env);
	if (ix->nlist) {
		if (ix->nlist > R->count) l2_die("%s: corrupt index: %u IVF lists for %llu rows", path, ix->nlist, (unsigned long long)R->count);
		MDB_dbi cdb = dbi_open(ix->txn, path, DB_CENTROIDS, 0), ldb = dbi_open(ix->txn, path, DB_LISTS, 0);
		unsigned char kb[4];
		put_be32(kb, 0);
		k = (MDB_val){4, kb};
		if (mdb_get(ix->txn, cdb, &k, &v) || v.mv_size != (size_t)ix->nlist * R->d * 4)
			l2_die("%s: corrupt index: IVF centroids missing or the wrong size", path);
		ix->cent = l2_malloc_aligned(v.mv_size);
		memcpy(ix->cent, v.mv_data, v.mv_size);
		ix->list_off = l2_calloc((size_t)ix->nlist + 1, sizeof(uint64_t));
		ix->list_ids = l2_malloc(l2_mul_size(R->count, sizeof(uint64_t)));
		unsigned char *seen = l2_calloc(R->count, 1);
		uint64_t n = 0;
		uint32_t prev_l = 0, prev_c = 0;
		int first = 1;
		mdb_ok(mdb_cursor_open(ix->txn, ldb, &cur), path, "ivf lists");
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); !rc; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			if (k.mv_size != 8 || v.mv_size % 8 || !v.mv_size) l2_die("%s: corrupt index: bad IVF list entry", path);
			uint32_t l = get_be32(k.mv_data), c = get_be32((unsigned char *)k.mv_data + 4);
			if (l >= ix->nlist || (first ? c != 0 : (l == prev_l ? c != prev_c + 1 : c != 0)))
				l2_die("%s: corrupt index: IVF list %u chunk %u out of sequence", path, l, c);
			first = 0, prev_l = l, prev_c = c;
			for (size_t j = 0; j < v.mv_size / 8; j++) {
				uint64_t id = l2_le64((unsigned char *)v.mv_data + j * 8);
				if (id >= R->count || seen[id] || n >= R->count)
					l2_die("%s: corrupt index: IVF list %u holds a bad row id", path, l);
				seen[id] = 1;
				ix->list_ids[n++] = id;
			}
			ix->list_off[l + 1] = n;
		}
		mdb_cursor_close(cur);
		free(seen);
		if (rc != MDB_NOTFOUND) mdb_ok(rc, path, "reading IVF lists");
		if (n != R->count) l2_die("%s: corrupt index: IVF lists hold %llu of %llu rows", path, (unsigned long long)n, (unsigned long long)R->count);
		for (uint32_t l = 0; l < ix->nlist; l++)
			if (ix->list_off[l + 1] < ix->list_off[l]) ix->list_off[l + 1] = ix->list_off[l]; /* empty lists */
	}
	return ix;
}

void l2_index_close(L2Index *ix)
{
	if (!ix) return;
	l2_unhold(&ix->held);
	if (ix->txn) mdb_txn_abort(ix->txn);
	l2_mapguard_remove(ix->guard);
	if (ix->env) mdb_env_close(ix->env);
	free(ix->R.blk);
	free(ix->R.blk_rows);
	l2_free_aligned(ix->cent);
	free(ix->list_off);
	free(ix->list_ids);
	free(ix->path);
	free(ix);
}

const char *l2_index_path(const L2Index *ix) { return ix->path; }
uint32_t l2_index_dim(const L2Index *ix) { return (uint32_t)ix->R.d; }
uint64_t l2_index_count(const L2Index *ix) { return ix->R.count; }
const char *l2_index_kind(const L2Index *ix) { return ix->kind; }
L2Metric l2_index_metric(const L2Index *ix) { return ix->metric; }
int l2_index_is_f16(const L2Index *ix) { return ix->R.f16; }
uint32_t l2_index_nlist(const L2Index *ix) { return ix->nlist; }

void l2_index_search(L2Index *ix, const float *q, size_t nq, uint32_t k, uint32_t nprobe, uint64_t *ids,
		     float *scores)
{
	if (k < 1 || k > ix->R.count)
		l2_die("%s: k = %u, but the index holds %llu rows", ix->path, k, (unsigned long long)ix->R.count);
	if (!nprobe) l2_index_search_exact(&ix->R, q, nq, k, ids, scores);
	else {
		if (!ix->nlist) l2_die("%s: --nprobe needs an IVF index (build it with --ivf NLIST)", ix->path);
		l2_index_search_ivf(&ix->R, ix->cent, ix->nlist, ix->list_off, ix->list_ids, q, nq, k, nprobe, ids, scores);
	}
}

const char *l2_index_key(L2Index *ix, uint64_t id, uint32_t *len)
{
	unsigned char kb[8];
	put_be64(kb, id);
	MDB_val k = {8, kb}, v;
	if (id >= ix->R.count || mdb_get(ix->txn, ix->keys, &k, &v) || !v.mv_size ||
	    ((const char *)v.mv_data)[v.mv_size - 1] != 0)
		l2_die("%s: corrupt index: key of row %llu", ix->path, (unsigned long long)id);
	if (len) *len = (uint32_t)(v.mv_size - 1);
	return v.mv_data;
}

void l2_index_vector(L2Index *ix, uint64_t id, float *out)
{
	if (id >= ix->R.count) l2_die("internal error: row %llu of %llu", (unsigned long long)id, (unsigned long long)ix->R.count);
	l2_index_row_to_float(&ix->R, id, out);
}

void l2_index_each_meta(L2Index *ix, void (*fn)(void *ctx, const char *name, const char *value), void *ctx)
{
	MDB_cursor *cur;
	MDB_val k, v;
	mdb_ok(mdb_cursor_open(ix->txn, ix->meta, &cur), ix->path, "metadata");
	for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); !rc; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		char *name = l2_malloc(k.mv_size + 1), *val = l2_malloc(v.mv_size + 1);
		memcpy(name, k.mv_data, k.mv_size);
		name[k.mv_size] = 0;
		memcpy(val, v.mv_data, v.mv_size);
		val[v.mv_size] = 0;
		fn(ctx, name, val);
		free(name);
		free(val);
	}
	mdb_cursor_close(cur);
}
