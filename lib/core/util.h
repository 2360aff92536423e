/* util.h — what every l2 program shares: errors, memory, command-line
 * conventions, atomic output files, progress lines.
 *
 * Error policy: library code that meets bad input or a failing system call
 * calls l2_die(), which prints "PROGRAM: message" on stderr and exits 1.
 * Output files are written through l2_ofile_*: they live under a temporary
 * name until committed, and an atexit handler removes every uncommitted one,
 * so a failed run never leaves a half-written file behind.
 */
#ifndef L2_UTIL_H
#define L2_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <getopt.h>

#define L2_VERSION "0.1.0"

/* exit codes */
#define L2_EXIT_OK 0
#define L2_EXIT_FAIL 1
#define L2_EXIT_USAGE 2

#if defined(__GNUC__)
#define L2_NORETURN __attribute__((noreturn))
#define L2_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define L2_NORETURN
#define L2_PRINTF(a, b)
#endif

/* ---- program identity and diagnostics ---------------------------------- */

/* Call first in main(): remembers the program name (basename of argv[0])
 * and argv (for option messages), sets up threads and output clean-up. */
void l2_init(int argc, char **argv);
const char *l2_progname(void);

/* "PROGRAM: message\n" on stderr, then exit(1). */
L2_NORETURN void l2_die(const char *fmt, ...) L2_PRINTF(1, 2);
/* Same, with ": strerror(errno)" appended. */
L2_NORETURN void l2_die_errno(const char *fmt, ...) L2_PRINTF(1, 2);
/* "PROGRAM: warning: message\n" on stderr. */
void l2_warn(const char *fmt, ...) L2_PRINTF(1, 2);
/* The name messages start with (l2_init sets the program's; lib/core/dist
 * adds the rank). */
void l2_set_progname(const char *name);
/* Called instead of exiting by l2_die (code 1) and usage errors (code 2),
 * after the clean-up handlers; it must not return.  lib/core/dist sets
 * MPI_Abort here so one rank's error ends every rank.  NULL: exit. */
void l2_set_abort_hook(void (*fn)(int code));

/* Informational line on stderr ("PROGRAM: message"), unless --quiet. */
void l2_info(const char *fmt, ...) L2_PRINTF(1, 2);
extern int l2_quiet;

/* ---- catching l2_die (fuzz harnesses) -------------------------------------
 *
 * A fuzz harness feeds a parser millions of inputs in one process, and most
 * of them are bad input: l2_die has to hand control back to the harness
 * instead of ending the process.  Only harnesses do this (tests/fuzz/fuzz.c):
 * they install a die hook, which l2_die calls with its message (no program
 * name, no newline) and which longjmps back to the harness.  Tools never
 * install one; for them l2_die behaves exactly as described above.
 *
 * The jump skips every frame between the harness and l2_die, and with them
 * their clean-up: frees, fcloses, munmaps, LMDB transaction aborts.  So:
 *   - memory: the harness frees each block allocated during the input and
 *     still live (it sees every malloc and free through the sanitizer's
 *     allocator hooks);
 *   - everything else a module keeps across a call that can die — an open
 *     file, a mapping, an LMDB environment or transaction — is *held*:
 *     registered with l2_hold() when acquired and l2_unhold() when released
 *     normally.  After a caught die the harness calls l2_release_held(),
 *     which releases them newest first.  The held list also keeps such
 *     objects reachable, so LeakSanitizer does not report what a dying tool
 *     still holds.
 *   - locks: no lock may be held across a call that can die (a skipped
 *     unlock would deadlock the next input); none is today.
 * The hook is per thread: a die on another thread ends the process as usual.
 * An L2Held node must outlive the frames a die can skip: embed it in the
 * object it holds (or allocate it), never on the stack of a function that
 * calls something that can die. */
typedef void (*L2DieHook)(const char *msg);
/* Install (NULL: remove) this thread's die hook.  A hook that returns lets
 * l2_die print and exit as usual. */
void l2_set_die_hook(L2DieHook hook);

typedef struct L2Held {
	struct L2Held *prev, *next;
	void (*release)(void *obj); /* must not die; may call l2_unhold */
	void *obj;
} L2Held;
void l2_hold(L2Held *h, void (*release)(void *obj), void *obj);
/* A node never held (zero-initialised) or already unheld is fine. */
void l2_unhold(L2Held *h);
/* Release everything held, newest first (harnesses, after a caught die);
 * returns how many objects it released. */
int l2_release_held(void);

/* ---- memory -------------------------------------------------------------- */

void *l2_malloc(size_t n);            /* dies on failure; n == 0 is fine */
void *l2_calloc(size_t n, size_t sz); /* dies on failure or overflow */
void *l2_realloc(void *p, size_t n);
char *l2_strdup(const char *s);
/* 64-byte aligned, for SIMD/BLAS buffers; free with l2_free_aligned. */
void *l2_malloc_aligned(size_t n);
void l2_free_aligned(void *p);
/* n * m, dying on overflow. */
size_t l2_mul_size(size_t n, size_t m);

/* ---- files ---------------------------------------------------------------- */

/* Open for reading; "-" means stdin.  Dies with "PROGRAM: PATH: reason". */
FILE *l2_fopen_read(const char *path);
/* Read exactly n bytes or die naming `what` ("PATH: truncated ..."). */
void l2_read_exact(FILE *f, void *buf, size_t n, const char *path, const char *what);
/* Read a whole file into memory (NUL-terminated); *len gets the size. */
char *l2_read_file(const char *path, size_t *len);
/* The lines of a text file ("-" = stdin), LF or CRLF, as a malloc'd array of malloc'd
 * strings without their line ends; returns the count.  Dies on a NUL byte in a line. */
size_t l2_read_lines(const char *path, char ***lines);
void l2_free_lines(char **lines, size_t n);

/* Atomic output.  l2_ofile_open("-") returns stdout after refusing a
 * terminal when `binary` is set; any other path is written to a temporary
 * sibling and renamed over PATH by l2_ofile_commit(). */
typedef struct L2OFile L2OFile;
L2OFile *l2_ofile_open(const char *path, int binary);
FILE *l2_ofile_fp(L2OFile *o);
const char *l2_ofile_path(L2OFile *o);
void l2_ofile_write(L2OFile *o, const void *buf, size_t n); /* dies on error */
/* Flush, fsync, close, rename; frees o.  Dies (and removes the temp file)
 * on any write error, e.g. a full disk. */
void l2_ofile_commit(L2OFile *o);
/* Remove the temporary file without committing; frees o. */
void l2_ofile_abort(L2OFile *o);
/* Remove every uncommitted temporary file now (also runs at exit). */
void l2_ofile_cleanup_all(void);
/* Run fn at exit, normal or through l2_die (which skips atexit handlers);
 * fn must be safe to call more than once.  At most 16. */
void l2_cleanup_register(void (*fn)(void));

/* Temporary siblings: an output is written to "PATH.tmp.HOST.PID.XXXXXX"
 * and renamed over PATH.  l2_tmp_template returns that name (malloc'd; the
 * XXXXXX for mkstemp).  A writer killed before its rename leaves one behind;
 * l2_tmp_remove_stale removes those of PATH (or of BASE in directory dirfd)
 * written on this host by a process that no longer exists — nothing else:
 * not another host's (a shared filesystem), not a live writer's, not a
 * file of any other name.  A directory of that name (an index being built)
 * loses its LMDB files (data.mdb, lock.mdb) and is removed when that
 * empties it. */
char *l2_tmp_template(const char *path);
void l2_tmp_remove_stale(const char *path);
void l2_tmp_remove_stale_at(int dirfd, const char *base);

/* Make a directory and its parents (mkdir -p); dies on failure. */
void l2_mkdir_p(const char *path);
int l2_is_dir(const char *path);
int l2_file_exists(const char *path);
/* REL resolved against the directory of the running program
 * (/proc/self/exe): l2_exe_path("../share/l2/x") is PREFIX/share/l2/x for
 * PREFIX/bin/l2-tool, installed or in the build tree.  Malloc'd; NULL when
 * the program's path cannot be read. */
char *l2_exe_path(const char *rel);
/* Is the filesystem holding PATH (a file or directory) out of space?  LMDB
 * turns a short write at a full disk into EIO; callers that get EIO ask this
 * to report "No space left on device" instead. */
int l2_disk_full(const char *path);

/* ---- numbers and strings ---------------------------------------------------- */

/* Strict parsers for option values: die with "invalid value for --NAME". */
long l2_parse_long(const char *s, const char *optname, long min, long max);
double l2_parse_double(const char *s, const char *optname);
uint64_t l2_parse_u64(const char *s, const char *optname);

/* Is S (len bytes) strict UTF-8 (no overlongs, no surrogates, nothing over
 * U+10FFFF: what Python's decoder and l2's tokenizer accept)? */
int l2_utf8_valid(const char *s, size_t len);

/* Index of the first NaN or infinity in v (n values), or -1 when all are
 * finite. */
long l2_first_nonfinite(const float *v, size_t n);

/* IEEE half <-> float, and bfloat16 -> float. */
float l2_half_to_float(uint16_t h);
uint16_t l2_float_to_half(float f);
float l2_bf16_to_float(uint16_t h);

/* Little-endian loads/stores (the project is little-endian on disk). */
static inline uint16_t l2_le16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t l2_le32(const unsigned char *p) {
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t l2_le64(const unsigned char *p) {
	return (uint64_t)l2_le32(p) | (uint64_t)l2_le32(p + 4) << 32;
}
static inline void l2_put_le16(unsigned char *p, uint16_t v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static inline void l2_put_le32(unsigned char *p, uint32_t v) {
	p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24);
}
static inline void l2_put_le64(unsigned char *p, uint64_t v) {
	l2_put_le32(p, (uint32_t)v); l2_put_le32(p + 4, (uint32_t)(v >> 32));
}

/* Bytes from an input, fit for a one-line message: control bytes (newlines
 * included) and DEL written as \xNN, cut with "..." to fit cap; returns
 * buf.  Use it whenever a message quotes a name or value read from a file. */
char *l2_escape(char *buf, size_t cap, const void *s, size_t n);
/* N bytes as one field of a TSV line: backslash, tab, newline, CR and NUL written as \\, \t, \n,
 * \r and \0, so that keys and values of any bytes keep lines and columns (l2-cat, l2-retrieve,
 * l2-store's text output). */
void l2_put_tsv_field(FILE *f, const void *s, size_t n);

/* Wall clock in seconds (monotonic). */
double l2_now(void);

/* ---- command line ------------------------------------------------------------ */

/* Options every tool takes.  Put L2_COMMON_LONGOPTS in the getopt_long table
 * and pass each option to l2_common_option() first; it returns 1 when it
 * handled it.  `usage` prints the tool's help to the stream it is given. */
enum { L2_OPT_VERSION = 0x1000, L2_OPT_THREADS, L2_OPT_PROGRESS, L2_OPT_QUIET, L2_OPT_DEVICE, L2_OPT_SHARD,
       L2_OPT_COMMON_END };
#define L2_COMMON_LONGOPTS \
	{"help", no_argument, 0, 'h'}, {"version", no_argument, 0, L2_OPT_VERSION}, \
	{"threads", required_argument, 0, L2_OPT_THREADS}, {"progress", no_argument, 0, L2_OPT_PROGRESS}, \
	{"quiet", no_argument, 0, L2_OPT_QUIET}
/* Tools that can run on a GPU add L2_DEVICE_LONGOPT (--device cpu|cuda); map
 * stages add L2_SHARD_LONGOPT (core/shard.h). */
#define L2_DEVICE_LONGOPT {"device", required_argument, 0, L2_OPT_DEVICE}

typedef void (*L2UsageFn)(FILE *);
int l2_common_option(int c, const char *arg, L2UsageFn usage);
/* Unknown option or bad arguments: usage on stderr, exit 2. */
L2_NORETURN void l2_usage_error(L2UsageFn usage, const char *fmt, ...) L2_PRINTF(2, 3);
/* A colour option (--background R,G,B): three decimal bytes, else a usage error naming OPTNAME. */
void l2_rgb_option(const char *arg, const char *optname, L2UsageFn usage, uint8_t rgb[3]);

/* Settings the common options control. */
extern int l2_threads;        /* --threads, default: online CPUs */
extern int l2_threads_given;  /* set by --threads */
extern int l2_progress_flag;  /* --progress given */
typedef enum { L2_DEVICE_CPU = 0, L2_DEVICE_CUDA = 1 } L2Device;
extern L2Device l2_device;    /* --device; cuda only when built and present */

/* ---- progress ------------------------------------------------------------------ */

/* A progress line on stderr ("what: n/total  rate/s  ETA"), redrawn at most
 * a few times a second, shown only when stderr is a terminal or --progress. */
typedef struct {
	const char *what, *unit;
	uint64_t done, total; /* total 0 = unknown */
	double t0, last;
	int enabled, drawn;
} L2Progress;
void l2_progress_start(L2Progress *p, const char *what, const char *unit, uint64_t total);
void l2_progress_add(L2Progress *p, uint64_t n);
void l2_progress_end(L2Progress *p);

#endif
