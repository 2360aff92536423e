/* test_store.c — LMDB store: put/get/iter/count/overwrite/no_overwrite/del,
 * meta and kinds, map growth from a tiny map (with batch replay), a reader
 * process beside a writer that grows the map, kill -9 of a writer mid-way
 * (every committed batch intact, a resumed writer completes), and the
 * error paths (not a store, corrupt, wrong kind), each in a forked child. */
#include "check.h"
#include "check_child.h"
#include "io/store.h"
#include "core/util.h"

#include <lmdb.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/l2-test-store-XXXXXX";

static const char *tmp(const char *name)
{
	static char buf[4][300];
	static int k;
	char *b = buf[k++ & 3];
	snprintf(b, sizeof buf[0], "%s/%s", dir, name);
	return b;
}

/* Deterministic value of record i: a "feature" of 1..64 floats. */
static size_t make_value(uint64_t i, float *v)
{
	uint64_t z = i * 0x9e3779b97f4a7c15ull + 12345;
	size_t n = 1 + (size_t)(z % 64);
	for (size_t j = 0; j < n; j++) {
		z ^= z >> 29;
		z *= 0xbf58476d1ce4e5b9ull;
		v[j] = (float)((double)(z >> 11) / 9007199254740992.0 - 0.5);
	}
	return n * sizeof(float);
}

static int check_record(L2Store *s, const char *db, uint64_t i)
{
	char key[32];
	float want[64];
	snprintf(key, sizeof key, "img/%07llu.png", (unsigned long long)i);
	size_t wl = make_value(i, want);
	void *v;
	size_t vl;
	if (!l2_store_get(s, db, key, strlen(key), &v, &vl)) return 0;
	int ok = vl == wl && !memcmp(v, want, wl);
	free(v);
	return ok;
}

static int put_record(L2Store *s, const char *db, uint64_t i, int no_overwrite)
{
	char key[32];
	float v[64];
	snprintf(key, sizeof key, "img/%07llu.png", (unsigned long long)i);
	size_t vl = make_value(i, v);
	return l2_store_put(s, db, key, strlen(key), v, vl, no_overwrite);
}

typedef struct {
	int n;
	char last[64];
	int ordered;
} IterCtx;

static int iter_fn(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	IterCtx *c = ctx;
	char k[64];
	snprintf(k, sizeof k, "%.*s", (int)klen, (const char *)key);
	if (c->n && strcmp(c->last, k) >= 0) c->ordered = 0;
	memcpy(c->last, k, sizeof k);
	c->n++;
	return 0;
}

static int stop_fn(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	return ++*(int *)ctx == 5;
}

static void test_basic(void)
{
	L2Store *s = l2_store_open(tmp("basic"), L2_STORE_CREATE);
	CHECK(!strcmp(l2_store_path(s), tmp("basic")));
	char *f = l2_store_get_meta(s, "format");
	CHECK(f && !strcmp(f, "l2-store"));
	free(f);
	l2_store_set_batch(s, 7);
	/* insert in a scrambled order; iteration comes back sorted */
	for (uint64_t i = 0; i < 100; i++) CHECK(put_record(s, "feat", (i * 37) % 100, 0) == 0);
	CHECK(l2_store_count(s, "feat") == 100);
	for (uint64_t i = 0; i < 100; i++) CHECK(check_record(s, "feat", i));
	/* overwrite / no_overwrite */
	CHECK(l2_store_put(s, "feat", "img/0000005.png", 15, "xyz", 3, 1) == 1);
	CHECK(check_record(s, "feat", 5));
	CHECK(l2_store_put(s, "feat", "img/0000005.png", 15, "xyz", 3, 0) == 0);
	void *v;
	size_t vl;
	CHECK(l2_store_get(s, "feat", "img/0000005.png", 15, &v, &vl) && vl == 3 && !memcmp(v, "xyz", 3));
	free(v);
	CHECK(l2_store_count(s, "feat") == 100);
	/* delete */
	CHECK(l2_store_del(s, "feat", "img/0000005.png", 15) == 1);
	CHECK(l2_store_del(s, "feat", "img/0000005.png", 15) == 0);
	CHECK(l2_store_del(s, "nosuchdb", "k", 1) == 0);
	CHECK(!l2_store_get(s, "feat", "img/0000005.png", 15, &v, &vl));
	CHECK(l2_store_count(s, "feat") == 99);
	/* absent db, absent key, zero-length value */
	CHECK(l2_store_count(s, "nothing") == 0);
	CHECK(!l2_store_get(s, "nothing", "k", 1, &v, &vl));
	CHECK(l2_store_put(s, "other", "empty", 5, "", 0, 0) == 0);
	CHECK(l2_store_get(s, "other", "empty", 5, &v, &vl) && vl == 0);
	free(v);
	/* meta and kind */
	l2_store_set_kind(s, "features", 1);
	l2_store_set_meta(s, "feat.dim", "64");
	l2_store_set_meta(s, "note", "grüße");
	l2_store_close(s);

	s = l2_store_open(tmp("basic"), L2_STORE_RDONLY);
	CHECK(l2_store_count(s, "feat") == 99);
	for (uint64_t i = 0; i < 100; i++) CHECK(check_record(s, "feat", i) == (i != 5));
	IterCtx c = {0, "", 1};
	l2_store_iter(s, "feat", iter_fn, &c);
	CHECK(c.n == 99 && c.ordered);
	int stop = 0;
	l2_store_iter(s, "feat", stop_fn, &stop);
	CHECK(stop == 5);
	c.n = 0;
	l2_store_iter(s, "absent", iter_fn, &c);
	CHECK(c.n == 0);
	char *m = l2_store_get_meta(s, "note");
	CHECK(m && !strcmp(m, "grüße"));
	free(m);
	CHECK(l2_store_get_meta(s, "absent") == NULL);
	l2_store_expect_kind(s, "features", 1);
	char **dbs;
	size_t n = l2_store_dbs(s, &dbs);
	CHECK(n == 3 && !strcmp(dbs[0], "feat") && !strcmp(dbs[1], "meta") && !strcmp(dbs[2], "other") && !dbs[3]);
	for (size_t i = 0; i < n; i++) free(dbs[i]);
	free(dbs);
	CHECK(l2_store_max_key(s) == 511);
	l2_store_close(s);
}

/* Puts stay visible to the writer before their commit; a reopen after an
 * explicit commit sees them. */
static void test_uncommitted_visibility(void)
{
	L2Store *s = l2_store_open(tmp("vis"), L2_STORE_CREATE);
	l2_store_set_batch(s, 1000000);
	for (uint64_t i = 0; i < 10; i++) put_record(s, "d", i, 0);
	CHECK(l2_store_count(s, "d") == 10);
	CHECK(check_record(s, "d", 3));
	IterCtx c = {0, "", 1};
	l2_store_iter(s, "d", iter_fn, &c);
	CHECK(c.n == 10);
	l2_store_commit(s);
	l2_store_commit(s); /* nothing pending: no-op */
	put_record(s, "d", 10, 0);
	l2_store_close(s); /* commits */
	s = l2_store_open(tmp("vis"), L2_STORE_RDONLY);
	CHECK(l2_store_count(s, "d") == 11);
	l2_store_close(s);
}

static void test_map_growth(void)
{
	l2_store_set_initial_mapsize(64 << 10); /* 16 pages: full almost at once */
	L2Store *s = l2_store_open(tmp("grow"), L2_STORE_CREATE);
	uint64_t m0 = l2_store_mapsize(s);
	CHECK(m0 == 64 << 10);
	l2_store_set_batch(s, 500);
	enum { N = 20000 };
	for (uint64_t i = 0; i < N; i++) put_record(s, "g", i, 0);
	/* and a single value larger than the whole initial map */
	size_t big = 1 << 20;
	char *b = l2_malloc(big);
	for (size_t i = 0; i < big; i++) b[i] = (char)(i * 7);
	l2_store_put(s, "big", "blob", 4, b, big, 0);
	uint64_t m1 = l2_store_mapsize(s);
	CHECK_MSG(m1 >= 32 * m0, "map grew from %llu to %llu only", (unsigned long long)m0, (unsigned long long)m1);
	l2_store_close(s);
	l2_store_set_initial_mapsize(0);
	s = l2_store_open(tmp("grow"), L2_STORE_RDONLY);
	CHECK(l2_store_count(s, "g") == N);
	int bad = 0;
	for (uint64_t i = 0; i < N; i++) bad += !check_record(s, "g", i);
	CHECK(bad == 0);
	void *v;
	size_t vl;
	CHECK(l2_store_get(s, "big", "blob", 4, &v, &vl) && vl == big && !memcmp(v, b, big));
	free(v);
	free(b);
	l2_store_close(s);
}

/* A reader process polls while the writer commits batches and grows the
 * map: it must only ever see whole batches, in order, with correct values,
 * and adopt the grown map without error. */
static void test_reader_beside_writer(void)
{
	enum { N = 12000, B = 400 };
	l2_store_set_initial_mapsize(64 << 10);
	L2Store *s = l2_store_open(tmp("rw"), L2_STORE_CREATE);
	l2_store_close(s);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		L2Store *r = l2_store_open(tmp("rw"), L2_STORE_RDONLY);
		uint64_t last = 0, seen = 0;
		double t0 = l2_now();
		int distinct = 0;
		while (last < N && l2_now() - t0 < 60) {
			uint64_t n = l2_store_count(r, "d");
			if (n % B) _exit(3);    /* a partial batch became visible */
			if (n < last) _exit(4); /* went backwards */
			if (n > last) distinct++;
			last = n;
			if (n && !check_record(r, "d", n - 1)) _exit(5);
			if (n && !check_record(r, "d", (seen++ * 7919) % n)) _exit(6);
		}
		l2_store_close(r);
		_exit(last == N ? (distinct > 1 ? 0 : 7) : 8);
	}
	s = l2_store_open(tmp("rw"), L2_STORE_WRITE);
	l2_store_set_batch(s, B);
	for (uint64_t i = 0; i < N; i++) {
		put_record(s, "d", i, 0);
		if (i % 2000 == 0) usleep(2000); /* let the reader look in between */
	}
	uint64_t grown = l2_store_mapsize(s);
	l2_store_close(s);
	l2_store_set_initial_mapsize(0);
	int st;
	waitpid(pid, &st, 0);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "reader exited with %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	CHECK(grown > 64 << 10);
}

/* kill -9 a writer mid-way; everything it committed is there, nothing
 * else; a resumed writer that skips present keys completes the set. */
static void test_kill9_resume(void)
{
	enum { N = 200000, B = 250 };
	int p[2];
	CHECK(pipe(p) == 0);
	l2_store_set_initial_mapsize(256 << 10); /* growth happens while being killed, too */
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		L2Store *s = l2_store_open(tmp("k9"), L2_STORE_CREATE);
		l2_store_set_kind(s, "features", 1);
		l2_store_commit(s); /* so that batches hold B records each */
		l2_store_set_batch(s, B);
		for (uint64_t i = 0; i < N; i++) {
			put_record(s, "d", i, 1);
			if ((i + 1) % B == 0 && write(p[1], "c", 1) != 1) _exit(9); /* a batch committed */
		}
		l2_store_close(s);
		_exit(0);
	}
	close(p[1]);
	char c;
	int commits = 0;
	while (commits < 20 && read(p[0], &c, 1) == 1) commits++;
	usleep(3000);
	kill(pid, SIGKILL);
	int st;
	waitpid(pid, &st, 0);
	close(p[0]);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	l2_store_set_initial_mapsize(0);

	L2Store *s = l2_store_open(tmp("k9"), L2_STORE_WRITE);
	uint64_t n = l2_store_count(s, "d");
	CHECK_MSG(n >= 20 * B && n < N && n % B == 0, "after kill: %llu records", (unsigned long long)n);
	uint64_t bad = 0;
	for (uint64_t i = 0; i < n; i++) bad += !check_record(s, "d", i);
	CHECK(bad == 0);
	void *v;
	size_t vl;
	char key[32];
	snprintf(key, sizeof key, "img/%07llu.png", (unsigned long long)n);
	CHECK(!l2_store_get(s, "d", key, strlen(key), &v, &vl)); /* nothing past the last commit */
	l2_store_expect_kind(s, "features", 1);
	/* resume */
	l2_store_set_batch(s, 5000);
	uint64_t skipped = 0, total = n + 30000;
	for (uint64_t i = 0; i < total; i++) skipped += put_record(s, "d", i, 1) == 1;
	CHECK(skipped == n);
	l2_store_close(s);
	s = l2_store_open(tmp("k9"), L2_STORE_RDONLY);
	CHECK(l2_store_count(s, "d") == total);
	bad = 0;
	for (uint64_t i = 0; i < total; i++) bad += !check_record(s, "d", i);
	CHECK(bad == 0);
	l2_store_close(s);
}

static void open_ro(const void *a) { l2_store_close(l2_store_open(a, L2_STORE_RDONLY)); }
static void open_create(const void *a) { l2_store_close(l2_store_open(a, L2_STORE_CREATE)); }
static void expect_dataset(const void *a)
{
	L2Store *s = l2_store_open(a, L2_STORE_RDONLY);
	l2_store_expect_kind(s, "dataset", 1);
}
static void put_readonly(const void *a)
{
	L2Store *s = l2_store_open(a, L2_STORE_RDONLY);
	l2_store_put(s, "x", "k", 1, "v", 1, 0);
}
static void put_long_key(const void *a)
{
	L2Store *s = l2_store_open(a, L2_STORE_WRITE);
	char k[600];
	memset(k, 'a', sizeof k);
	l2_store_put(s, "x", k, sizeof k, "v", 1, 0);
}
static void put_empty_key(const void *a)
{
	L2Store *s = l2_store_open(a, L2_STORE_WRITE);
	l2_store_put(s, "x", "", 0, "v", 1, 0);
}

static void expect_error(void (*fn)(const void *), const char *arg, const char *part)
{
	char err[4096];
	int rc = check_child(fn, arg, err, sizeof err);
	CHECK_MSG(rc == 1, "%s: exit %d, stderr: %s", arg, rc, err);
	CHECK_MSG(strstr(err, part) != NULL, "%s: \"%s\" lacks \"%s\"", arg, err, part);
	CHECK_MSG(strstr(err, arg) != NULL, "message does not name %s: %s", arg, err);
}

static void test_errors(void)
{
	expect_error(open_ro, tmp("missing"), "No such file or directory");
	FILE *f = fopen(tmp("plainfile"), "w");
	fputs("hello", f);
	fclose(f);
	expect_error(open_ro, tmp("plainfile"), "not a store (a store is a directory");
	expect_error(open_create, tmp("plainfile"), "not a store (a store is a directory");
	mkdir(tmp("emptydir"), 0755);
	expect_error(open_ro, tmp("emptydir"), "not a store (no data.mdb");
	mkdir(tmp("photos"), 0755);
	f = fopen(tmp("photos/a.png"), "w");
	fclose(f);
	expect_error(open_create, tmp("photos"), "not a store (no data.mdb"); /* never litter a full directory */
	/* garbage data.mdb */
	mkdir(tmp("garbage"), 0755);
	f = fopen(tmp("garbage/data.mdb"), "w");
	for (int i = 0; i < 20000; i++) fputc((int)(check_rand_u64() & 255), f);
	fclose(f);
	expect_error(open_ro, tmp("garbage"), "not a store, or corrupt");
	/* a valid LMDB environment that l2 did not make */
	mkdir(tmp("foreign"), 0755);
	MDB_env *env;
	MDB_txn *t;
	MDB_dbi dbi;
	mdb_env_create(&env);
	mdb_env_open(env, tmp("foreign"), 0, 0644);
	mdb_txn_begin(env, NULL, 0, &t);
	mdb_dbi_open(t, NULL, 0, &dbi);
	MDB_val k = {3, "abc"}, v = {3, "def"};
	mdb_put(t, dbi, &k, &v, 0);
	mdb_txn_commit(t);
	mdb_env_close(env);
	expect_error(open_ro, tmp("foreign"), "not an l2 store");
	expect_error(open_create, tmp("foreign"), "not an l2 store");
	/* kinds */
	L2Store *s = l2_store_open(tmp("idx"), L2_STORE_CREATE);
	l2_store_set_kind(s, "index", 1);
	l2_store_close(s);
	expect_error(expect_dataset, tmp("idx"), "expected a dataset store, got a index store");
	s = l2_store_open(tmp("nokind"), L2_STORE_CREATE);
	l2_store_close(s);
	expect_error(expect_dataset, tmp("nokind"), "no kind");
	s = l2_store_open(tmp("future"), L2_STORE_CREATE);
	l2_store_set_kind(s, "dataset", 7);
	l2_store_close(s);
	expect_error(expect_dataset, tmp("future"), "version 7");
	expect_error(put_readonly, tmp("idx"), "read-only");
	expect_error(put_long_key, tmp("idx"), "LMDB keys are at most 511");
	expect_error(put_empty_key, tmp("idx"), "empty key");
	/* an empty directory is created into; a store left empty by a creator
	 * killed before its first commit is taken over */
	s = l2_store_open(tmp("emptydir"), L2_STORE_CREATE);
	l2_store_close(s);
	s = l2_store_open(tmp("emptydir"), L2_STORE_RDONLY);
	l2_store_close(s);
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	if (!mkdtemp(dir)) return 1;
	RUN(test_basic);
	RUN(test_uncommitted_visibility);
	RUN(test_map_growth);
	RUN(test_reader_beside_writer);
	RUN(test_kill9_resume);
	RUN(test_errors);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd)) return 1;
	return check_done();
}
