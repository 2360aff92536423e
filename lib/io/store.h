/* store.h — LMDB stores: datasets (images, captions, features by key) and
 * indexes.  Layout of each kind of store: schemas/store.md.
 *
 * A store is an LMDB environment directory with named sub-databases.
 * Writers batch puts into transactions of `batch` records and commit; when
 * the map is full it is grown and the batch replayed, so callers never see
 * MDB_MAP_FULL.  A writer killed mid-way loses only its uncommitted batch.
 * Readers open read-only and may run beside a writer.
 *
 * Open a given store at most once per process (LMDB's locks are
 * per-process), do not carry an open store across fork(), and use one
 * store handle from one thread at a time. */
#ifndef L2_STORE_H
#define L2_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct L2Store L2Store;

enum { L2_STORE_RDONLY = 0, L2_STORE_WRITE = 1, L2_STORE_CREATE = 3 };

/* Open the store at PATH (a directory).  L2_STORE_CREATE creates it when
 * missing.  Dies with "PATH: ..." when it is not a store or is corrupt. */
L2Store *l2_store_open(const char *path, int mode);
/* 1 when PATH is a folder (not a link) holding nothing but perhaps LMDB's
 * lock.mdb: what a creator killed before its first write leaves. */
int l2_store_dir_unstarted(const char *path);
/* Commit the pending batch (writers) and close. */
void l2_store_close(L2Store *s);
const char *l2_store_path(const L2Store *s);

/* Records per write transaction (default 1000); entries of "meta" ride
 * along uncounted. */
void l2_store_set_batch(L2Store *s, size_t n);
/* Put key -> value into sub-database DB (created on first use by writers).
 * Overwrites an existing key unless no_overwrite; returns 0 if stored, 1 if
 * the key existed and no_overwrite was set. */
int l2_store_put(L2Store *s, const char *db, const void *key, size_t klen, const void *val, size_t vlen,
		 int no_overwrite);
/* Commit pending puts now (a durable checkpoint for resumable writers). */
void l2_store_commit(L2Store *s);
/* Begin the write transaction now, if none is open.  What is read from
 * here to the next commit is what that commit builds on, so a check of
 * meta and the writes it allows (a feature sub-database's description and
 * its first batch) are one atomic step against every other writer. */
void l2_store_begin(L2Store *s);
/* Delete a key; returns 1 if it was there. */
int l2_store_del(L2Store *s, const char *db, const void *key, size_t klen);

/* Look up; returns 1 and a malloc'd copy (*val, *vlen) when found, else 0.
 * Writers see their own uncommitted puts. */
int l2_store_get(L2Store *s, const char *db, const void *key, size_t klen, void **val, size_t *vlen);
/* Number of records in DB (0 if DB does not exist). */
uint64_t l2_store_count(L2Store *s, const char *db);

/* Iterate DB in key order: callback returns non-zero to stop.  Pointers
 * are valid only during the callback. */
typedef int (*L2StoreIterFn)(void *ctx, const void *key, size_t klen, const void *val, size_t vlen);
void l2_store_iter(L2Store *s, const char *db, L2StoreIterFn fn, void *ctx);

/* Names of the sub-databases, sorted; malloc'd NULL-terminated array of
 * malloc'd strings (free each and the array). */
size_t l2_store_dbs(L2Store *s, char ***names);
/* Longest key LMDB accepts (511 bytes); longer or empty keys are errors. */
size_t l2_store_max_key(const L2Store *s);
/* Map size for writers opened from now on (default 1 GiB, or
 * $L2_STORE_MAPSIZE); the map doubles whenever it fills. */
void l2_store_set_initial_mapsize(size_t bytes);
uint64_t l2_store_mapsize(L2Store *s);

/* One writer per sub-database: take DB's writer lock (core/lock.h; the
 * file STORE/DB.lock) until l2_store_close, or die with "STORE: ACTIVITY is
 * running (pid N); ...".  Every tool that fills a feature sub-database
 * takes it first.  Writers only. */
void l2_store_lock_db(L2Store *s, const char *db, const char *activity);
/* The pid of the process holding DB's writer lock; -1 when held by one whose
 * pid is unknown; 0 when no writer holds it. */
long l2_store_db_writer(L2Store *s, const char *db);

/* String metadata in the "meta" sub-database. */
void l2_store_set_meta(L2Store *s, const char *key, const char *value);
/* malloc'd string or NULL. */
char *l2_store_get_meta(L2Store *s, const char *key);
/* What kind of store this is (meta "kind": "dataset", "index", "features")
 * and the version of that kind's layout (meta "version").  Every store has
 * meta "format" = "l2-store", written when it is created; opening an LMDB
 * environment without it fails.  expect_kind dies with "PATH: expected a
 * dataset store, got a index store" (or a version it does not know). */
void l2_store_set_kind(L2Store *s, const char *kind, int version);
void l2_store_expect_kind(L2Store *s, const char *kind, int max_version);

#endif
