/* store.c — LMDB stores (store.h; conventions: schemas/store.md).
 *
 * Writers keep one write transaction open and commit it every `batch`
 * records (or 64 MiB of pending data).  Every put/del of the open
 * transaction is also logged in memory, so that when LMDB reports
 * MDB_MAP_FULL the transaction can be aborted, the map doubled and the batch
 * replayed: callers never see a full map.  Readers use a short read-only
 * transaction per call and adopt a map another process grew
 * (MDB_MAP_RESIZED).  LMDB's commits are atomic, so a writer killed at any
 * point leaves every committed batch intact. */
#include "io/store.h"
#include "core/lock.h"
#include "core/mapguard.h"
#include "core/util.h"

#include <dirent.h>
#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define STORE_FORMAT "l2-store"
#define STORE_MAXDBS 256
#define STORE_DEFAULT_MAPSIZE ((size_t)1 << 30)
#define STORE_BATCH_BYTES ((size_t)64 << 20)
#define STORE_MIN_PAGE 4096 /* LMDB pages are the OS page size, at least 4 KiB */

static size_t initial_mapsize; /* 0: STORE_DEFAULT_MAPSIZE or $L2_STORE_MAPSIZE */

typedef struct {
	char *name;
	MDB_dbi dbi;
	int open;  /* handle valid */
	int fresh; /* opened in the current write transaction (closed if it aborts) */
} Dbi;

typedef struct {
	int db; /* index into dbis */
	int del;
	unsigned flags;
	void *key, *val;
	size_t klen, vlen;
} Op;

struct L2Store {
	char *path;
	MDB_env *env;
	int mode;
	MDB_txn *wtxn;
	size_t batch, pending_bytes;
	size_t pending_records; /* puts/dels outside "meta": what `batch` counts */
	Op *log;
	size_t nlog, logcap;
	Dbi *dbis;
	int ndbi, dbicap;
	size_t maxkey;
	L2Held held; /* from open to close (util.h): the environment */
	int guard;   /* core/mapguard handle of the map */
	L2Lock **locks; /* writer locks of sub-databases, released with the store */
	int nlocks;
};

L2_NORETURN static void mdb_die(const L2Store *s, const char *what, int rc)
{
	if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID)
		l2_die("%s: corrupt store: %s: %s", s->path, what, mdb_strerror(rc));
	if (rc == EIO && l2_disk_full(s->path)) rc = ENOSPC; /* LMDB's word for a short write */
	l2_die("%s: %s: %s", s->path, what, mdb_strerror(rc));
}

void l2_store_set_initial_mapsize(size_t bytes) { initial_mapsize = bytes; }

static size_t want_mapsize(void)
{
	if (initial_mapsize) return initial_mapsize;
	const char *e = getenv("L2_STORE_MAPSIZE");
	if (e && *e) {
		char *end;
		unsigned long long v = strtoull(e, &end, 10);
		if (*end == 0 && v >= 4096) return (size_t)v;
	}
	return STORE_DEFAULT_MAPSIZE;
}

static size_t env_mapsize(const L2Store *s)
{
	MDB_envinfo info;
	mdb_env_info(s->env, &info);
	return info.me_mapsize;
}

uint64_t l2_store_mapsize(L2Store *s) { return env_mapsize(s); }

/* Tell core/mapguard where the map is now (it moves when it grows), so a
 * fault reading it names the store instead of killing the tool with SIGBUS. */
static void guard_map(L2Store *s)
{
	if (s->guard >= 0) {
		l2_mapguard_refresh(s->guard);
		return;
	}
	size_t n = strlen(s->path) + 16;
	char *data = l2_malloc(n);
	snprintf(data, n, "%s/data.mdb", s->path);
	s->guard = l2_mapguard_add_file(data, s->path);
	free(data);
}

/* ---- transactions ------------------------------------------------------- */

static void begin_write(L2Store *s)
{
	if (s->wtxn) return;
	for (;;) {
		int rc = mdb_txn_begin(s->env, NULL, 0, &s->wtxn);
		if (rc == MDB_MAP_RESIZED) {
			if ((rc = mdb_env_set_mapsize(s->env, 0))) mdb_die(s, "cannot adopt the grown map", rc);
			guard_map(s);
			continue;
		}
		if (rc) mdb_die(s, "cannot begin a write transaction", rc);
		return;
	}
}

/* Readers' transaction: writers read through their open one (they see
 * their own uncommitted puts). */
static MDB_txn *begin_read(L2Store *s)
{
	if (s->wtxn) return s->wtxn;
	MDB_txn *t;
	for (;;) {
		int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t);
		if (rc == MDB_MAP_RESIZED) {
			if ((rc = mdb_env_set_mapsize(s->env, 0))) mdb_die(s, "cannot adopt the grown map", rc);
			guard_map(s);
			continue;
		}
		if (rc) mdb_die(s, "cannot begin a read transaction", rc);
		return t;
	}
}

/* Committing (not aborting) a read-only transaction keeps the database
 * handles it opened. */
static void end_read(L2Store *s, MDB_txn *t)
{
	if (t != s->wtxn) mdb_txn_commit(t);
}

static void forget_fresh(L2Store *s)
{
	for (int i = 0; i < s->ndbi; i++)
		if (s->dbis[i].fresh) s->dbis[i].open = s->dbis[i].fresh = 0;
}

static int dbi_index(L2Store *s, const char *name)
{
	for (int i = 0; i < s->ndbi; i++)
		if (!strcmp(s->dbis[i].name, name)) return i;
	if (s->ndbi == s->dbicap)
		s->dbis = l2_realloc(s->dbis, (size_t)(s->dbicap = s->dbicap ? 2 * s->dbicap : 8) * sizeof *s->dbis);
	Dbi *d = &s->dbis[s->ndbi];
	memset(d, 0, sizeof *d);
	d->name = l2_strdup(name);
	return s->ndbi++;
}

/* The handle of sub-db i in txn t; -1 when it does not exist (and create
 * is not set). */
static int get_dbi(L2Store *s, MDB_txn *t, int i, int create, MDB_dbi *out)
{
	Dbi *d = &s->dbis[i];
	if (!d->open) {
		int rc = mdb_dbi_open(t, d->name, create ? MDB_CREATE : 0, &d->dbi);
		if (rc == MDB_NOTFOUND) return -1;
		char q[128];
		if (rc == MDB_INCOMPATIBLE)
			l2_die("%s: \"%s\" is not a sub-database of this store", s->path,
			       l2_escape(q, sizeof q, d->name, strlen(d->name)));
		if (rc == MDB_DBS_FULL) l2_die("%s: too many sub-databases (at most %d)", s->path, STORE_MAXDBS);
		if (rc) mdb_die(s, d->name, rc);
		d->open = 1;
		d->fresh = t == s->wtxn;
	}
	*out = d->dbi;
	return 0;
}

static void check_db_name(const L2Store *s, const char *db)
{
	if (!db || !*db) l2_die("%s: empty sub-database name", s->path);
}

static void check_key(const L2Store *s, const char *db, const void *key, size_t klen)
{
	if (klen == 0) l2_die("%s: %s: empty key (LMDB keys are 1 to %zu bytes)", s->path, db, s->maxkey);
	if (klen > s->maxkey) {
		char q[64];
		l2_die("%s: %s: key \"%s\" is %zu bytes; LMDB keys are at most %zu", s->path, db,
		       l2_escape(q, sizeof q, key, klen), klen, s->maxkey);
	}
}

/* Apply one operation inside the write transaction; returns the LMDB code
 * (0, MDB_KEYEXIST, MDB_NOTFOUND for a missing delete, MDB_MAP_FULL ...). */
static int apply(L2Store *s, const Op *op)
{
	MDB_dbi dbi;
	if (get_dbi(s, s->wtxn, op->db, !op->del, &dbi) < 0) return MDB_NOTFOUND;
	MDB_val k = {op->klen, op->key}, v = {op->vlen, op->val};
	if (op->del) return mdb_del(s->wtxn, dbi, &k, NULL);
	return mdb_put(s->wtxn, dbi, &k, &v, op->flags);
}

/* The map is full: drop the transaction (if still open), double the map. */
static void grow(L2Store *s)
{
	if (s->wtxn) mdb_txn_abort(s->wtxn);
	s->wtxn = NULL;
	forget_fresh(s);
	size_t now = env_mapsize(s), next = now * 2;
	int rc = mdb_env_set_mapsize(s->env, next);
	if (rc) mdb_die(s, "cannot grow the map", rc);
	guard_map(s);
}

/* Replay the logged batch into a new transaction, growing again if needed. */
static void replay(L2Store *s)
{
	for (;;) {
		begin_write(s);
		int full = 0;
		for (size_t i = 0; i < s->nlog && !full; i++) {
			int rc = apply(s, &s->log[i]);
			if (rc == MDB_MAP_FULL) full = 1;
			else if (rc && rc != MDB_KEYEXIST && rc != MDB_NOTFOUND) mdb_die(s, "replaying a batch", rc);
		}
		if (!full) return;
		grow(s);
	}
}

static void clear_log(L2Store *s)
{
	for (size_t i = 0; i < s->nlog; i++) free(s->log[i].key);
	s->nlog = 0;
	s->pending_records = 0;
	s->pending_bytes = 0;
}

void l2_store_commit(L2Store *s)
{
	while (s->wtxn) {
		int rc = mdb_txn_commit(s->wtxn); /* frees the transaction, also on failure */
		s->wtxn = NULL;
		if (rc == MDB_MAP_FULL) {
			grow(s);
			replay(s);
			continue;
		}
		if (rc) {
			forget_fresh(s);
			mdb_die(s, "commit failed", rc);
		}
		for (int i = 0; i < s->ndbi; i++) s->dbis[i].fresh = 0;
	}
	clear_log(s);
}

void l2_store_begin(L2Store *s)
{
	if (s->mode == L2_STORE_RDONLY) l2_die("%s: store opened read-only", s->path);
	begin_write(s);
}

static int write_op(L2Store *s, const char *db, int del, unsigned flags, const void *key, size_t klen, const void *val,
		    size_t vlen)
{
	if (s->mode == L2_STORE_RDONLY) l2_die("%s: store opened read-only", s->path);
	check_db_name(s, db);
	check_key(s, db, key, klen);
	Op op = {dbi_index(s, db), del, flags, (void *)key, (void *)val, klen, vlen};
	begin_write(s);
	int rc;
	while ((rc = apply(s, &op)) == MDB_MAP_FULL) {
		grow(s);
		replay(s);
	}
	if (rc == MDB_KEYEXIST || rc == MDB_NOTFOUND) return 1;
	if (rc == MDB_BAD_VALSIZE) l2_die("%s: %s: key or value too large for LMDB", s->path, db);
	if (rc) mdb_die(s, db, rc);
	/* log a copy for replay (key and value in one allocation) */
	if (s->nlog == s->logcap) s->log = l2_realloc(s->log, (s->logcap = s->logcap ? 2 * s->logcap : 256) * sizeof *s->log);
	Op *l = &s->log[s->nlog++];
	*l = op;
	l->key = l2_malloc(klen + vlen);
	memcpy(l->key, key, klen);
	l->val = (char *)l->key + klen;
	if (vlen) memcpy(l->val, val, vlen);
	s->pending_bytes += klen + vlen;
	/* meta entries ride along with the records they describe */
	if (strcmp(db, "meta")) s->pending_records++;
	if (s->pending_records >= s->batch || s->pending_bytes >= STORE_BATCH_BYTES) l2_store_commit(s);
	return 0;
}

int l2_store_put(L2Store *s, const char *db, const void *key, size_t klen, const void *val, size_t vlen,
		 int no_overwrite)
{
	return write_op(s, db, 0, no_overwrite ? MDB_NOOVERWRITE : 0, key, klen, val, vlen);
}

int l2_store_del(L2Store *s, const char *db, const void *key, size_t klen)
{
	return write_op(s, db, 1, 0, key, klen, NULL, 0) == 0;
}

/* ---- reading -------------------------------------------------------------- */

int l2_store_get(L2Store *s, const char *db, const void *key, size_t klen, void **val, size_t *vlen)
{
	check_db_name(s, db);
	if (klen == 0 || klen > s->maxkey) return 0;
	int i = dbi_index(s, db);
	MDB_txn *t = begin_read(s);
	MDB_dbi dbi;
	int found = 0;
	if (get_dbi(s, t, i, 0, &dbi) == 0) {
		MDB_val k = {klen, (void *)key}, v;
		int rc = mdb_get(t, dbi, &k, &v);
		if (rc == 0) {
			found = 1;
			*val = l2_malloc(v.mv_size + 1);
			memcpy(*val, v.mv_data, v.mv_size);
			((char *)*val)[v.mv_size] = 0; /* handy for strings */
			if (vlen) *vlen = v.mv_size;
		} else if (rc != MDB_NOTFOUND) {
			mdb_die(s, db, rc);
		}
	}
	end_read(s, t);
	return found;
}

uint64_t l2_store_count(L2Store *s, const char *db)
{
	check_db_name(s, db);
	int i = dbi_index(s, db);
	MDB_txn *t = begin_read(s);
	MDB_dbi dbi;
	uint64_t n = 0;
	if (get_dbi(s, t, i, 0, &dbi) == 0) {
		MDB_stat st;
		int rc = mdb_stat(t, dbi, &st);
		if (rc) mdb_die(s, db, rc);
		n = st.ms_entries;
	}
	end_read(s, t);
	return n;
}

void l2_store_iter(L2Store *s, const char *db, L2StoreIterFn fn, void *ctx)
{
	check_db_name(s, db);
	int i = dbi_index(s, db);
	MDB_txn *t = begin_read(s);
	MDB_dbi dbi;
	if (get_dbi(s, t, i, 0, &dbi) == 0) {
		MDB_cursor *c;
		int rc = mdb_cursor_open(t, dbi, &c);
		if (rc) mdb_die(s, db, rc);
		MDB_val k, v;
		for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
			if (fn(ctx, k.mv_data, k.mv_size, v.mv_data, v.mv_size)) break;
		if (rc && rc != MDB_NOTFOUND) mdb_die(s, db, rc);
		mdb_cursor_close(c);
	}
	end_read(s, t);
}

size_t l2_store_dbs(L2Store *s, char ***names)
{
	MDB_txn *t = begin_read(s);
	MDB_dbi main_dbi;
	int rc = mdb_dbi_open(t, NULL, 0, &main_dbi);
	if (rc) mdb_die(s, "main database", rc);
	MDB_cursor *c;
	if ((rc = mdb_cursor_open(t, main_dbi, &c))) mdb_die(s, "main database", rc);
	size_t n = 0, cap = 8;
	char **v = l2_malloc(cap * sizeof *v);
	MDB_val k, d;
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		if (n + 1 == cap) v = l2_realloc(v, (cap *= 2) * sizeof *v);
		v[n] = l2_malloc(k.mv_size + 1);
		memcpy(v[n], k.mv_data, k.mv_size);
		v[n][k.mv_size] = 0;
		n++;
	}
	if (rc && rc != MDB_NOTFOUND) mdb_die(s, "main database", rc);
	mdb_cursor_close(c);
	end_read(s, t);
	v[n] = NULL;
	*names = v;
	return n;
}

size_t l2_store_max_key(const L2Store *s) { return s->maxkey; }

/* ---- writer locks ------------------------------------------------------------ */

/* STORE/DB.lock, with every byte of DB outside [A-Za-z0-9._-] as %XX so
 * that no sub-database name reaches outside the store's directory. */
static char *db_lock_path(const L2Store *s, const char *db)
{
	size_t n = strlen(s->path) + 3 * strlen(db) + 8;
	char *p = l2_malloc(n), *o = p + snprintf(p, n, "%s/", s->path);
	for (const unsigned char *c = (const unsigned char *)db; *c; c++) {
		if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
		    *c == '_' || *c == '-')
			*o++ = (char)*c;
		else
			o += sprintf(o, "%%%02X", *c);
	}
	strcpy(o, ".lock");
	return p;
}

void l2_store_lock_db(L2Store *s, const char *db, const char *activity)
{
	if (s->mode == L2_STORE_RDONLY) l2_die("%s: store opened read-only", s->path);
	check_db_name(s, db);
	char *lp = db_lock_path(s, db);
	L2Lock *l = l2_lock_take(lp, s->path, activity);
	free(lp);
	s->locks = l2_realloc(s->locks, (size_t)(s->nlocks + 1) * sizeof *s->locks);
	s->locks[s->nlocks++] = l;
}

long l2_store_db_writer(L2Store *s, const char *db)
{
	char *lp = db_lock_path(s, db);
	long pid = l2_lock_holder(lp);
	free(lp);
	return pid;
}

/* ---- meta ------------------------------------------------------------------- */

void l2_store_set_meta(L2Store *s, const char *key, const char *value)
{
	l2_store_put(s, "meta", key, strlen(key), value, strlen(value), 0);
}

char *l2_store_get_meta(L2Store *s, const char *key)
{
	void *v;
	if (!l2_store_get(s, "meta", key, strlen(key), &v, NULL)) return NULL;
	return v; /* NUL-terminated by l2_store_get */
}

void l2_store_set_kind(L2Store *s, const char *kind, int version)
{
	char v[16];
	snprintf(v, sizeof v, "%d", version);
	l2_store_set_meta(s, "kind", kind);
	l2_store_set_meta(s, "version", v);
}

void l2_store_expect_kind(L2Store *s, const char *kind, int max_version)
{
	char *k = l2_store_get_meta(s, "kind"), *v = l2_store_get_meta(s, "version"), *f = l2_store_get_meta(s, "format");
	/* an index's "kind" is the kind of its vectors, not of the store */
	if (f && !strcmp(f, "l2-index")) l2_die("%s: expected a %s store, got an index (l2-build-index)", s->path, kind);
	free(f);
	if (!k) l2_die("%s: expected a %s store, got a store of no kind (meta has no \"kind\")", s->path, kind);
	char q[64];
	if (strcmp(k, kind)) l2_die("%s: expected a %s store, got a %s store", s->path, kind, l2_escape(q, sizeof q, k, strlen(k)));
	long ver = v ? strtol(v, NULL, 10) : 0;
	if (ver < 1 || ver > max_version)
		l2_die("%s: %s store version %s is not one this l2 reads (1 to %d)", s->path, kind,
		       v ? l2_escape(q, sizeof q, v, strlen(v)) : "(none)", max_version);
	free(k);
	free(v);
}

/* ---- open / close --------------------------------------------------------------- */

/* A data.mdb shorter than the pages its newest meta page says are in use
 * (an interrupted copy, a sync tool that wrote part of it) would fault on
 * the first read past its end: refuse it before any read.  Pages are
 * written before the meta page that refers to them, so a writer running
 * beside this reader never makes a sound file look short. */
static void check_not_truncated(L2Store *s)
{
	MDB_envinfo info;
	MDB_stat st;
	mdb_env_info(s->env, &info);
	int rc = mdb_env_stat(s->env, &st);
	if (rc) mdb_die(s, "cannot read the store's header", rc);
	size_t n = strlen(s->path) + 16;
	char *data = l2_malloc(n);
	snprintf(data, n, "%s/data.mdb", s->path);
	struct stat fs;
	if (stat(data, &fs) != 0) l2_die_errno("%s", data);
	free(data);
	uint64_t need = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	if (need > (uint64_t)fs.st_size)
		l2_die("%s: corrupt or truncated store: data.mdb is %llu bytes, its pages reach %llu", s->path,
		       (unsigned long long)fs.st_size, (unsigned long long)need);
}

int l2_store_dir_unstarted(const char *path)
{
	struct stat st;
	if (lstat(path, &st) || !S_ISDIR(st.st_mode)) return 0;
	DIR *d = opendir(path);
	if (!d) return 0;
	struct dirent *e;
	int empty = 1;
	/* LMDB makes lock.mdb before data.mdb: a lock file alone holds no data */
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "lock.mdb")) { empty = 0; break; }
	closedir(d);
	return empty;
}

/* Close without committing: l2_store_close after its commit, and the
 * release of a store held when a harness caught a die (util.h).  A read
 * transaction the die skipped needs no abort: closing the environment
 * clears this process's reader slots, and its memory is the harness's to
 * free. */
static void store_release(void *p)
{
	L2Store *s = p;
	l2_unhold(&s->held);
	if (s->wtxn) mdb_txn_abort(s->wtxn);
	l2_mapguard_remove(s->guard);
	if (s->env) mdb_env_close(s->env);
	for (int i = 0; i < s->nlocks; i++) l2_lock_release(s->locks[i]);
	free(s->locks);
	for (int i = 0; i < s->ndbi; i++) free(s->dbis[i].name);
	clear_log(s);
	free(s->log);
	free(s->dbis);
	free(s->path);
	free(s);
}

L2Store *l2_store_open(const char *path, int mode)
{
	if (mode != L2_STORE_RDONLY && mode != L2_STORE_WRITE && mode != L2_STORE_CREATE)
		l2_die("%s: invalid store open mode %d", path, mode);
	L2Store *s = l2_calloc(1, sizeof *s);
	l2_hold(&s->held, store_release, s);
	s->guard = -1;
	s->path = l2_strdup(path);
	s->mode = mode;
	s->batch = 1000;
	int fresh = 0;
	struct stat st;
	if (stat(path, &st) != 0) {
		if (errno != ENOENT || mode != L2_STORE_CREATE) l2_die_errno("%s", path);
		l2_mkdir_p(path);
		fresh = 1;
	} else if (!S_ISDIR(st.st_mode)) {
		l2_die("%s: not a store (a store is a directory; this is a file)", path);
	} else {
		size_t n = strlen(path) + 16;
		char *data = l2_malloc(n);
		snprintf(data, n, "%s/data.mdb", path);
		struct stat ds;
		if (stat(data, &ds) != 0) {
			if (errno != ENOENT) l2_die_errno("%s", data);
			if (mode == L2_STORE_CREATE && l2_store_dir_unstarted(path)) fresh = 1;
			else l2_die("%s: not a store (no data.mdb in this directory)", path);
		} else if (!S_ISREG(ds.st_mode)) {
			l2_die("%s: not a store (data.mdb is not a regular file)", path);
		} else if (ds.st_size == 0 && mode == L2_STORE_CREATE) {
			fresh = 1; /* a creator killed before LMDB wrote its first page: nothing to lose */
		} else if (ds.st_size < 2 * STORE_MIN_PAGE) {
			/* LMDB's two meta pages come first; a writer would silently
			 * start a new environment over what is left */
			l2_die("%s: corrupt or truncated store: data.mdb is %lld bytes, less than its two header pages",
			       path, (long long)ds.st_size);
		}
		free(data);
	}
	int rc = mdb_env_create(&s->env);
	if (rc) mdb_die(s, "cannot create an LMDB environment", rc);
	mdb_env_set_maxdbs(s->env, STORE_MAXDBS);
	/* Writers start from the configured map; LMDB raises it to what the
	 * data already uses, and the map doubles from there when it fills. */
	if (mode != L2_STORE_RDONLY && (rc = mdb_env_set_mapsize(s->env, want_mapsize())))
		mdb_die(s, "cannot size the map", rc);
	unsigned flags = MDB_NOTLS | (mode == L2_STORE_RDONLY ? MDB_RDONLY : 0);
	rc = mdb_env_open(s->env, path, flags, 0644);
	if ((rc == EACCES || rc == EROFS) && mode == L2_STORE_RDONLY) {
		/* a read-only directory: no lock file can be made; read without
		 * one (safe while no writer runs, which such a store cannot have) */
		mdb_env_close(s->env);
		s->env = NULL;
		if ((rc = mdb_env_create(&s->env))) mdb_die(s, "cannot create an LMDB environment", rc);
		mdb_env_set_maxdbs(s->env, STORE_MAXDBS);
		rc = mdb_env_open(s->env, path, flags | MDB_NOLOCK, 0644);
	}
	if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH || rc == EINVAL)
		l2_die("%s: not a store, or corrupt (data.mdb: %s)", path, mdb_strerror(rc));
	if (rc == EACCES || rc == EROFS || rc == ENOENT) l2_die("%s: cannot open store: %s", path, strerror(rc));
	if (rc) mdb_die(s, "cannot open store", rc);
	s->maxkey = (size_t)mdb_env_get_maxkeysize(s->env);
	if (mode != L2_STORE_RDONLY) {
		int dead;
		mdb_reader_check(s->env, &dead); /* free slots of readers that died */
	} else if ((rc = mdb_env_set_mapsize(s->env, 0))) {
		mdb_die(s, "cannot map the store", rc);
	}
	check_not_truncated(s);
	guard_map(s);

	char *format = l2_store_get_meta(s, "format");
	int empty = 0;
	if (!format && !fresh) {
		/* a creator killed before its first commit leaves an empty env */
		char **dbs;
		size_t n = l2_store_dbs(s, &dbs);
		for (size_t i = 0; i < n; i++) free(dbs[i]);
		free(dbs);
		empty = n == 0;
		if (mode == L2_STORE_CREATE) fresh = empty;
	}
	if (fresh && !format) {
		l2_store_set_meta(s, "format", STORE_FORMAT);
		l2_store_commit(s);
	} else if (!format && empty) {
		l2_die("%s: not an l2 store yet: an LMDB environment with nothing committed (its creation was stopped "
		       "before the first commit; the writer that made it starts again from nothing)", path);
	} else if (!format) {
		l2_die("%s: not an l2 store (LMDB environment without meta \"format\")", path);
	} else if (strncmp(format, "l2-", 3)) {
		/* "l2-store", or a kind with its own format name ("l2-index") */
		char q[64];
		l2_die("%s: not an l2 store (meta format \"%s\", expected \"%s\")", path,
		       l2_escape(q, sizeof q, format, strlen(format)), STORE_FORMAT);
	}
	free(format);
	return s;
}

void l2_store_close(L2Store *s)
{
	if (!s) return;
	if (s->wtxn) l2_store_commit(s);
	store_release(s);
}

const char *l2_store_path(const L2Store *s) { return s->path; }

void l2_store_set_batch(L2Store *s, size_t n) { s->batch = n ? n : 1; }
