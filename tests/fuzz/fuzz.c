/* fuzz.c — running one fuzz input with l2_die caught (fuzz.h).
 *
 * The die hook longjmps back to l2_fuzz_run, skipping the frames between
 * (lib/core/util.h, "catching l2_die").  What those frames would have
 * released is released here instead:
 *   - objects the library holds (open files, mappings, LMDB environments):
 *     l2_release_held();
 *   - memory: under ASan (libFuzzer builds and SAN=1 replays) the allocator
 *     hooks record every block allocated during the input in a ledger and
 *     strike it off when it is freed; after a caught die each block still
 *     in the ledger is freed.  Without ASan (the plain gcc replay) a refused
 *     input's memory is left allocated: nothing checks leaks there, and the
 *     replay is a few hundred inputs.
 * After every input: no file descriptor may be left open, and an accepted
 * input must leave nothing held. */
#include "fuzz.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(FUZZ_ASAN)
#define FUZZ_ASAN 1
#endif

/* ---- the allocation ledger (ASan builds) ------------------------------------------
 * An open-addressing table of the blocks allocated during the current input:
 * a slot belongs to the input when its generation is the input's, and holds
 * a live pointer or TOMB (freed since).  It lives in its own mapping, since
 * the hooks run inside malloc and may not call it. */
#ifdef FUZZ_ASAN
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
					      void (*free_hook)(const volatile void *));

#define LEDGER_BITS 18
#define LEDGER_SLOTS ((size_t)1 << LEDGER_BITS)
#define LEDGER_MAX (LEDGER_SLOTS / 2) /* slots one input may use, tombstones included */
#define TOMB ((uintptr_t)1)

typedef struct {
	uintptr_t p;
	uint32_t gen;
} Slot;

static Slot *slots;
static uint32_t *touched; /* (LEDGER_MAX) slots the input took, for the sweep */
static size_t ntouched;
static uint32_t gen = 1;
static _Thread_local int record_alloc, record_free; /* the harness thread only */
static int overflowed;

static size_t slot_of(uintptr_t p) { return (size_t)(((uint64_t)p >> 4) * 0x9E3779B97F4A7C15ull >> (64 - LEDGER_BITS)); }

static void on_malloc(const volatile void *ptr, size_t size)
{
	(void)size;
	if (!record_alloc || !ptr) return;
	uintptr_t p = (uintptr_t)ptr;
	/* p is not in the table (it was free until now): take the first
	 * tombstone or empty slot of its probe sequence */
	for (size_t i = slot_of(p);; i = (i + 1) & (LEDGER_SLOTS - 1)) {
		Slot *s = &slots[i];
		if (s->gen != gen) {
			if (ntouched == LEDGER_MAX) {
				overflowed = 1;
				return;
			}
			touched[ntouched++] = (uint32_t)i;
			s->gen = gen;
			s->p = p;
			return;
		}
		if (s->p == TOMB) {
			s->p = p;
			return;
		}
	}
}

static void on_free(const volatile void *ptr)
{
	if (!record_free || !ptr) return;
	uintptr_t p = (uintptr_t)ptr;
	for (size_t i = slot_of(p);; i = (i + 1) & (LEDGER_SLOTS - 1)) {
		Slot *s = &slots[i];
		if (s->gen != gen) return; /* allocated before the input began */
		if (s->p == p) {
			s->p = TOMB;
			return;
		}
	}
}

static void ledger_init(void)
{
	slots = mmap(NULL, LEDGER_SLOTS * sizeof *slots, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	touched = mmap(NULL, LEDGER_MAX * sizeof *touched, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (slots == MAP_FAILED || touched == MAP_FAILED) {
		fprintf(stderr, "l2 fuzz: cannot map the allocation ledger\n");
		abort();
	}
	__sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
}

static void ledger_begin(void)
{
	if (++gen == 0) { /* wrapped: forget every old generation */
		memset(slots, 0, LEDGER_SLOTS * sizeof *slots);
		gen = 1;
	}
	ntouched = 0;
	overflowed = 0;
	record_alloc = record_free = 1;
}

/* After a caught die: stop recording new blocks, but keep striking off
 * the ones the release of held objects frees. */
static void ledger_pause(void) { record_alloc = 0; }

/* Free every block of the input still live. */
static void ledger_sweep(void)
{
	record_alloc = record_free = 0;
	if (overflowed) {
		fprintf(stderr, "l2 fuzz: more than %zu allocations in one input; the ledger cannot free them\n",
			(size_t)LEDGER_MAX);
		abort();
	}
	for (size_t i = 0; i < ntouched; i++) {
		Slot *s = &slots[touched[i]];
		if (s->gen == gen && s->p != TOMB) {
			void *p = (void *)s->p;
			s->p = TOMB;
			free(p);
		}
	}
}

static void ledger_end(void) { record_alloc = record_free = 0; }

/* Allocations the harness's own machinery keeps across inputs (the LMDB
 * builder) are not the input's: not recorded, never swept. */
static int ledger_hold_off(void)
{
	int r = record_alloc;
	record_alloc = 0;
	return r;
}
static void ledger_resume(int r) { record_alloc = r; }
#else
static void ledger_init(void) {}
static void ledger_begin(void) {}
static void ledger_pause(void) {}
static void ledger_sweep(void) {}
static void ledger_end(void) {}
static int ledger_hold_off(void) { return 0; }
static void ledger_resume(int r) { (void)r; }
#endif

/* ---- scratch files ------------------------------------------------------------------ */

static char scratch[256];

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

void l2_fuzz_remove(const char *path) { nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

static void remove_scratch(void)
{
	if (scratch[0]) l2_fuzz_remove(scratch);
}

const char *l2_fuzz_scratch(void)
{
	if (!scratch[0]) {
		const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
		snprintf(scratch, sizeof scratch, "%s/l2-%s-%ld", base, program_invocation_short_name, (long)getpid());
		l2_fuzz_remove(scratch); /* a leftover of a crashed run with our pid */
		if (mkdir(scratch, 0700) != 0) {
			perror(scratch);
			abort();
		}
		atexit(remove_scratch);
	}
	return scratch;
}

const char *l2_fuzz_write_file(const char *name, const void *data, size_t size)
{
	static char path[512];
	snprintf(path, sizeof path, "%s/%s", l2_fuzz_scratch(), name);
	FILE *f = fopen(path, "wb");
	if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
		perror(path);
		abort();
	}
	return path;
}

/* ---- structured inputs ---------------------------------------------------------------- */

const uint8_t *l2_fuzz_bytes(L2FuzzInput *in, size_t n, size_t *len)
{
	if (n > in->n) n = in->n;
	const uint8_t *p = in->p;
	in->p += n;
	in->n -= n;
	*len = n;
	return p;
}

uint8_t l2_fuzz_u8(L2FuzzInput *in)
{
	size_t n;
	const uint8_t *p = l2_fuzz_bytes(in, 1, &n);
	return n ? p[0] : 0;
}

/* Little-endian; the reads are sequenced (in one expression the order of
 * the two calls would be the compiler's choice). */
uint16_t l2_fuzz_u16(L2FuzzInput *in)
{
	uint16_t lo = l2_fuzz_u8(in);
	return (uint16_t)(lo | l2_fuzz_u8(in) << 8);
}

uint32_t l2_fuzz_u32(L2FuzzInput *in)
{
	uint32_t lo = l2_fuzz_u16(in);
	return lo | (uint32_t)l2_fuzz_u16(in) << 16;
}

/* ---- LMDB environments from inputs --------------------------------------------------------- */

static void mdb_check(int rc, const char *what)
{
	if (rc) {
		fprintf(stderr, "l2 fuzz: building the input's LMDB: %s: %s\n", what, mdb_strerror(rc));
		abort();
	}
}

/* One writable environment for the whole run, emptied and refilled for each
 * input, then copied (mdb_env_copy: the pages as they are) to DIR, where
 * the reader under test opens it as a store of its own.  Opening a writable
 * environment allocates about 3 MB of page lists, which under ASan means a
 * fresh mapping, its shadow, and a quarantined free at close: when every
 * input opened one, that was most of an input's time (24 ms of 30 in the
 * store harness).  The copy holds the same records whatever came before;
 * only which pages hold them depends on the history, which l2's readers
 * never see (they read through LMDB).  The map starts at 4 MiB and doubles
 * when an input needs more. */
static MDB_env *build_env;
static MDB_dbi build_dbi[32];
static const char *const *build_dbs;
static int build_ndbs;
static unsigned build_dupsort;
static size_t build_map = (size_t)4 << 20;

void l2_fuzz_lmdb_init(const char *const *dbs, int ndbs, unsigned dupsort)
{
	if (build_env) mdb_env_close(build_env);
	char dir[512];
	snprintf(dir, sizeof dir, "%s/lmdb-builder", l2_fuzz_scratch());
	l2_fuzz_remove(dir);
	if (mkdir(dir, 0700) != 0) {
		perror(dir);
		abort();
	}
	MDB_txn *txn;
	mdb_check(mdb_env_create(&build_env), "create");
	mdb_env_set_maxdbs(build_env, 32);
	mdb_env_set_mapsize(build_env, build_map);
	mdb_check(mdb_env_open(build_env, dir, MDB_NOSYNC, 0644), "open");
	mdb_check(mdb_txn_begin(build_env, NULL, 0, &txn), "begin");
	for (int i = 0; i < ndbs && i < 32; i++)
		mdb_check(mdb_dbi_open(txn, dbs[i], MDB_CREATE | (dupsort >> i & 1 ? MDB_DUPSORT : 0), &build_dbi[i]), dbs[i]);
	mdb_check(mdb_txn_commit(txn), "commit");
	build_dbs = dbs, build_ndbs = ndbs, build_dupsort = dupsort;
}

/* The records of in into the emptied databases; MDB_MAP_FULL (nothing
 * written) when the map is too small for them. */
static int build_fill(int ndbs, L2FuzzInput *in)
{
	MDB_txn *txn;
	mdb_check(mdb_txn_begin(build_env, NULL, 0, &txn), "begin");
	for (int i = 0; i < ndbs && i < 32; i++) mdb_check(mdb_drop(txn, build_dbi[i], 0), "empty");
	while (in->n) {
		int db = l2_fuzz_u8(in) % ndbs;
		size_t kl, vl;
		const uint8_t *k = l2_fuzz_bytes(in, l2_fuzz_u8(in), &kl);
		const uint8_t *v = l2_fuzz_bytes(in, l2_fuzz_u16(in), &vl);
		MDB_val key = {kl, (void *)k}, val = {vl, (void *)v};
		int rc = mdb_put(txn, build_dbi[db], &key, &val, 0);
		if (rc == MDB_MAP_FULL) {
			mdb_txn_abort(txn);
			return rc;
		}
		if (rc && rc != MDB_BAD_VALSIZE) mdb_check(rc, "put");
	}
	int rc = mdb_txn_commit(txn);
	if (rc != MDB_MAP_FULL) mdb_check(rc, "commit");
	return rc;
}

void l2_fuzz_lmdb(const char *dir, const char *const *dbs, int ndbs, unsigned dupsort, L2FuzzInput *in)
{
	if (!build_env || build_dbs != dbs || build_ndbs != ndbs || build_dupsort != dupsort) {
		fprintf(stderr, "l2 fuzz: l2_fuzz_lmdb without l2_fuzz_lmdb_init of the same databases in the harness's init\n");
		abort();
	}
	/* LMDB keeps some of what a write allocates (freed pages, for reuse) */
	int rec = ledger_hold_off();
	L2FuzzInput start = *in;
	while (build_fill(ndbs, in) == MDB_MAP_FULL) {
		*in = start;
		build_map *= 2;
		mdb_check(mdb_env_set_mapsize(build_env, build_map), "grow the map");
	}
	l2_fuzz_remove(dir);
	if (mkdir(dir, 0700) != 0) {
		perror(dir);
		abort();
	}
	mdb_check(mdb_env_copy(build_env, dir), "copy");
	ledger_resume(rec);
}

/* ---- running one input ------------------------------------------------------------------ */

static jmp_buf catch_point;
static volatile int catching;
static int verbose;
static size_t nrefused;

static int soft_refused;
static void (*on_refusal)(void);

void l2_fuzz_on_refusal(void (*fn)(void)) { on_refusal = fn; }

size_t l2_fuzz_refused(void) { return nrefused; }
void l2_fuzz_refuse(void) { soft_refused = 1; }

static void on_die(const char *msg)
{
	if (!*msg || strchr(msg, '\n')) {
		fprintf(stderr, "l2 fuzz: an error message must be one line, got \"%s\"\n", msg);
		abort();
	}
	if (verbose) fprintf(stderr, "refused: %s\n", msg);
	if (!catching) {
		fprintf(stderr, "l2 fuzz: died outside an input (harness set-up): %s\n", msg);
		abort();
	}
	catching = 0;
	longjmp(catch_point, 1);
}

/* The lowest free descriptor: a descriptor an input leaves open takes it. */
static int lowest_free_fd(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) close(fd);
	return fd;
}

int l2_fuzz_run(L2FuzzBody body, void (*init)(void), const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		ready = 1;
		setenv("L2_THREADS", "1", 1); /* the die hook and ledger are per thread */
		char *argv[] = {"l2-fuzz", NULL};
		l2_init(1, argv);
		l2_quiet = 1;
		const char *v = getenv("L2_FUZZ_VERBOSE");
		verbose = v && *v && strcmp(v, "0");
		l2_fuzz_scratch();
		ledger_init();
		l2_set_die_hook(on_die);
		if (init) init();
	}
	int fd0 = lowest_free_fd();
	volatile int died = 0;
	ledger_begin();
	if (setjmp(catch_point) == 0) {
		catching = 1;
		body(data, size);
		catching = 0;
		ledger_end();
		int n = l2_release_held();
		if (n) {
			fprintf(stderr, "l2 fuzz: an accepted input left %d object(s) open (a missing close)\n", n);
			abort();
		}
	} else {
		died = 1;
		nrefused++;
		ledger_pause();
		l2_release_held();
		if (on_refusal) on_refusal();
		ledger_sweep();
	}
	if (!died && soft_refused) nrefused++;
	soft_refused = 0;
	int fd1 = lowest_free_fd();
	if (fd1 != fd0) {
		fprintf(stderr, "l2 fuzz: file descriptor %d left open by an input that was %s\n", fd0,
			died ? "refused" : "accepted");
		abort();
	}
	return died;
}
