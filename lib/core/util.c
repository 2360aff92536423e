/* util.c — diagnostics, memory, atomic output files, option parsing,
 * progress.  See util.h for the policy. */
#include "core/util.h"
#include "core/device.h"
#include "core/parallel.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

static char progname[96] = "l2";
int l2_quiet = 0;
int l2_threads = 1;
int l2_threads_given = 0;
int l2_progress_flag = 0;
L2Device l2_device = L2_DEVICE_CPU;

/* ---- atomic output files --------------------------------------------------- */

struct L2OFile {
	FILE *fp;
	char *path, *tmp; /* tmp NULL for stdout */
	int binary;
	L2OFile *next;
	L2Held held; /* from open to commit or abort (see "catching l2_die") */
};
static L2OFile *open_files; /* uncommitted, removed at exit */

void l2_ofile_cleanup_all(void)
{
	for (L2OFile *o = open_files; o; o = o->next)
		if (o->tmp) unlink(o->tmp);
}

static void on_signal(int sig)
{
	/* unlink is async-signal-safe; the list is only appended to before
	 * writes start, so walking it here is fine. */
	for (L2OFile *o = open_files; o; o = o->next)
		if (o->tmp) unlink(o->tmp);
	signal(sig, SIG_DFL);
	raise(sig);
}

static char **saved_argv;
static int saved_argc;

void l2_init(int argc, char **argv)
{
	const char *argv0 = argc > 0 ? argv[0] : NULL;
	saved_argv = argv;
	saved_argc = argc;
	opterr = 0; /* we print our own, naming the program without its path */
	const char *b = argv0 ? strrchr(argv0, '/') : NULL;
	b = b ? b + 1 : (argv0 ? argv0 : "l2");
	snprintf(progname, sizeof progname, "%s", b);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	l2_threads = n > 0 ? (int)n : 1;
	const char *env = getenv("L2_THREADS");
	if (env && atoi(env) > 0) l2_threads = atoi(env);
	l2_blas_threads(l2_threads);
	atexit(l2_ofile_cleanup_all);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	signal(SIGPIPE, on_signal);
}

const char *l2_progname(void) { return progname; }
void l2_set_progname(const char *name) { snprintf(progname, sizeof progname, "%s", name); }

static void (*abort_hook)(int code);
void l2_set_abort_hook(void (*fn)(int code)) { abort_hook = fn; }

static void vmsg(const char *prefix, const char *fmt, va_list ap, int err)
{
	char buf[4096];
	vsnprintf(buf, sizeof buf, fmt, ap);
	if (err)
		fprintf(stderr, "%s: %s%s: %s\n", progname, prefix, buf, strerror(err));
	else
		fprintf(stderr, "%s: %s%s\n", progname, prefix, buf);
}

/* Error exits leave through die_exit: uncommitted output files are removed
 * and stdout is flushed, but atexit handlers are skipped — a dying tool's
 * live allocations are not leaks, and LeakSanitizer (make test SAN=1) would
 * otherwise report every one of them. */
static void (*cleanups[16])(void);
static int ncleanups;

void l2_cleanup_register(void (*fn)(void))
{
	if (ncleanups == 16) l2_die("internal error: too many clean-up handlers");
	cleanups[ncleanups++] = fn;
	atexit(fn);
}

static L2_NORETURN void die_exit(void)
{
	for (int i = ncleanups - 1; i >= 0; i--) cleanups[i]();
	l2_ofile_cleanup_all();
	fflush(stdout);
	fflush(stderr);
	if (abort_hook) abort_hook(L2_EXIT_FAIL);
	_exit(L2_EXIT_FAIL);
}

/* ---- catching l2_die (util.h) ---------------------------------------------- */

static _Thread_local L2DieHook die_hook;

void l2_set_die_hook(L2DieHook hook) { die_hook = hook; }

static L2Held *held_head; /* newest first */
static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;

void l2_hold(L2Held *h, void (*release)(void *obj), void *obj)
{
	h->release = release;
	h->obj = obj;
	pthread_mutex_lock(&held_lock);
	h->prev = NULL;
	h->next = held_head;
	if (held_head) held_head->prev = h;
	held_head = h;
	pthread_mutex_unlock(&held_lock);
}

void l2_unhold(L2Held *h)
{
	pthread_mutex_lock(&held_lock);
	if (h->prev || held_head == h) {
		if (h->prev) h->prev->next = h->next;
		else held_head = h->next;
		if (h->next) h->next->prev = h->prev;
	}
	h->prev = h->next = NULL;
	pthread_mutex_unlock(&held_lock);
}

int l2_release_held(void)
{
	for (int n = 0;; n++) {
		pthread_mutex_lock(&held_lock);
		L2Held *h = held_head;
		pthread_mutex_unlock(&held_lock);
		if (!h) return n;
		void (*release)(void *) = h->release;
		void *obj = h->obj;
		l2_unhold(h); /* first: release may free the node */
		release(obj);
	}
}

static L2_NORETURN void die_msg(const char *fmt, va_list ap, int err)
{
	if (!die_hook) {
		vmsg("", fmt, ap, err);
		die_exit();
	}
	char buf[4096];
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	if (err && n >= 0 && (size_t)n < sizeof buf) snprintf(buf + n, sizeof buf - (size_t)n, ": %s", strerror(err));
	die_hook(buf); /* normally does not return */
	fprintf(stderr, "%s: %s\n", progname, buf);
	die_exit();
}

void l2_die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	die_msg(fmt, ap, 0);
}

void l2_die_errno(const char *fmt, ...)
{
	int e = errno;
	va_list ap;
	va_start(ap, fmt);
	die_msg(fmt, ap, e ? e : EIO);
}

void l2_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg("warning: ", fmt, ap, 0);
	va_end(ap);
}

void l2_info(const char *fmt, ...)
{
	if (l2_quiet) return;
	va_list ap;
	va_start(ap, fmt);
	vmsg("", fmt, ap, 0);
	va_end(ap);
}

/* ---- memory ------------------------------------------------------------------ */

void *l2_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) l2_die("out of memory (asked for %zu bytes)", n);
	return p;
}

void *l2_calloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);
	if (!p) l2_die("out of memory (asked for %zu x %zu bytes)", n, sz);
	return p;
}

void *l2_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q) l2_die("out of memory (asked for %zu bytes)", n);
	return q;
}

char *l2_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = l2_malloc(n);
	memcpy(d, s, n);
	return d;
}

void *l2_malloc_aligned(size_t n)
{
	void *p = NULL;
	if (posix_memalign(&p, 64, n ? (n + 63) / 64 * 64 : 64) != 0)
		l2_die("out of memory (asked for %zu aligned bytes)", n);
	return p;
}

void l2_free_aligned(void *p) { free(p); }

size_t l2_mul_size(size_t n, size_t m)
{
	if (m && n > SIZE_MAX / m) l2_die("size overflow (%zu x %zu)", n, m);
	return n * m;
}

char *l2_escape(char *buf, size_t cap, const void *s, size_t n)
{
	const unsigned char *p = s;
	size_t o = 0;
	if (!cap) return buf;
	for (size_t i = 0; i < n; i++) {
		int esc = p[i] < 0x20 || p[i] == 0x7f;
		if (o + (esc ? 4 : 1) + 4 > cap) { /* room for "..." and the NUL */
			snprintf(buf + o, cap - o, "...");
			return buf;
		}
		if (esc) o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", p[i]);
		else buf[o++] = (char)p[i];
	}
	buf[o] = 0;
	return buf;
}

void l2_put_tsv_field(FILE *f, const void *s, size_t n)
{
	const char *p = s;
	for (size_t i = 0; i < n; i++) switch (p[i]) {
		case '\\': fputs("\\\\", f); break;
		case '\t': fputs("\\t", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case 0: fputs("\\0", f); break;
		default: fputc(p[i], f);
		}
}

/* ---- files ---------------------------------------------------------------------- */

FILE *l2_fopen_read(const char *path)
{
	if (!strcmp(path, "-")) return stdin;
	if (l2_is_dir(path)) l2_die("%s: is a directory, expected a file", path);
	FILE *f = fopen(path, "rb");
	if (!f) l2_die_errno("%s", path);
	return f;
}

void l2_read_exact(FILE *f, void *buf, size_t n, const char *path, const char *what)
{
	size_t got = n ? fread(buf, 1, n, f) : 0;
	if (got != n) {
		if (ferror(f)) l2_die_errno("%s: reading %s", path, what);
		l2_die("%s: truncated input: %s needs %zu bytes, only %zu left", path, what, n, got);
	}
}

char *l2_read_file(const char *path, size_t *len)
{
	FILE *f = l2_fopen_read(path);
	size_t cap = 1 << 16, n = 0;
	char *buf = l2_malloc(cap);
	for (;;) {
		if (n + 1 >= cap) buf = l2_realloc(buf, cap *= 2);
		size_t r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0) break;
	}
	if (ferror(f)) l2_die_errno("%s", path);
	if (f != stdin) fclose(f);
	buf[n] = 0;
	if (len) *len = n;
	return buf;
}

size_t l2_read_lines(const char *path, char ***out)
{
	FILE *f = l2_fopen_read(path);
	char **v = NULL;
	size_t n = 0, cap = 0;
	char *line = NULL;
	size_t lcap = 0;
	ssize_t len;
	while ((len = getline(&line, &lcap, f)) >= 0) {
		if ((size_t)len != strlen(line)) {
			if (f != stdin) fclose(f); /* not left open when a harness catches the die */
			l2_die("%s: line %zu contains a NUL byte", path, n + 1);
		}
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			v = l2_realloc(v, cap * sizeof *v);
		}
		v[n++] = l2_strdup(line);
	}
	if (ferror(f)) l2_die_errno("%s", path);
	free(line);
	if (f != stdin) fclose(f);
	*out = v;
	return n;
}

void l2_free_lines(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++) free(v[i]);
	free(v);
}

static int isatty_path(const char *path)
{
	int fd = open(path, O_WRONLY | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) return 0;
	int t = isatty(fd);
	close(fd);
	return t;
}

static void unlink_from_list(L2OFile *o);

/* l2_ofile_abort, and the release of an output a harness's caught die
 * left open: o may be partly set up, or half committed. */
static void ofile_release(void *p)
{
	L2OFile *o = p;
	l2_unhold(&o->held);
	if (o->fp && o->fp != stdout) fclose(o->fp);
	if (o->tmp) {
		unlink(o->tmp);
		unlink_from_list(o);
		free(o->tmp);
	}
	free(o->path);
	free(o);
}

L2OFile *l2_ofile_open(const char *path, int binary)
{
	L2OFile *o = l2_calloc(1, sizeof *o);
	l2_hold(&o->held, ofile_release, o);
	o->binary = binary;
	o->path = l2_strdup(path);
	if (!strcmp(path, "-")) {
		if (binary && isatty(STDOUT_FILENO))
			l2_die("refusing to write binary output to a terminal (redirect it, or use -o FILE)");
		o->fp = stdout;
		return o;
	}
	if (l2_is_dir(path)) l2_die("%s: is a directory, expected an output file", path);
	struct stat st;
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		/* a device or FIFO (/dev/null, a named pipe): write straight to it */
		if (binary && isatty_path(path))
			l2_die("%s: refusing to write binary output to a terminal", path);
		o->fp = fopen(path, "wb");
		if (!o->fp) l2_die_errno("%s", path);
		return o;
	}
	char *tmp = l2_tmp_template(path);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		free(tmp);
		l2_die_errno("%s: cannot create output file", path);
	}
	o->tmp = tmp; /* ours to remove from here on */
	o->next = open_files;
	open_files = o;
	fchmod(fd, 0644 & ~0);
	o->fp = fdopen(fd, "wb");
	if (!o->fp) {
		int e = errno;
		close(fd);
		errno = e;
		l2_die_errno("%s", path);
	}
	return o;
}

FILE *l2_ofile_fp(L2OFile *o) { return o->fp; }
const char *l2_ofile_path(L2OFile *o) { return o->path; }

void l2_ofile_write(L2OFile *o, const void *buf, size_t n)
{
	if (n && fwrite(buf, 1, n, o->fp) != n) {
		if (errno == EPIPE) exit(L2_EXIT_FAIL);
		l2_die_errno("%s: write failed", strcmp(o->path, "-") ? o->path : "standard output");
	}
}

static void unlink_from_list(L2OFile *o)
{
	for (L2OFile **pp = &open_files; *pp; pp = &(*pp)->next)
		if (*pp == o) { *pp = o->next; break; }
}

void l2_ofile_commit(L2OFile *o)
{
	if (!o->tmp) {
		if (fflush(o->fp) != 0 || ferror(o->fp)) {
			if (errno == EPIPE) exit(L2_EXIT_FAIL);
			l2_die_errno("%s: write failed", strcmp(o->path, "-") ? o->path : "standard output");
		}
		FILE *fp = o->fp;
		o->fp = NULL;
		if (fp != stdout && fclose(fp) != 0) l2_die_errno("%s: write failed", o->path);
		l2_unhold(&o->held);
		free(o->path);
		free(o);
		return;
	}
	if (fflush(o->fp) != 0 || ferror(o->fp) || fsync(fileno(o->fp)) != 0)
		l2_die_errno("%s: write failed", o->path);
	FILE *fp = o->fp;
	o->fp = NULL;
	if (fclose(fp) != 0) l2_die_errno("%s: write failed", o->path);
	if (rename(o->tmp, o->path) != 0) l2_die_errno("%s: cannot rename temporary file into place", o->path);
	l2_unhold(&o->held);
	unlink_from_list(o);
	l2_tmp_remove_stale(o->path); /* what an earlier, killed writer of PATH left */
	free(o->tmp);
	free(o->path);
	free(o);
}

void l2_ofile_abort(L2OFile *o) { ofile_release(o); }

int l2_is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int l2_file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

char *l2_exe_path(const char *rel)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0) return NULL;
	exe[n] = 0;
	char *slash = strrchr(exe, '/');
	size_t dl = slash ? (size_t)(slash - exe) + 1 : 0;
	char *p = l2_malloc(dl + strlen(rel) + 1);
	memcpy(p, exe, dl);
	strcpy(p + dl, rel);
	return p;
}

int l2_disk_full(const char *path)
{
	struct statvfs v;
	if (statvfs(path, &v) != 0) { /* not made yet: its folder */
		char *dir = l2_strdup(path), *slash = strrchr(dir, '/');
		if (slash == dir) slash[1] = 0;
		else if (slash) *slash = 0;
		else strcpy(dir, ".");
		int rc = statvfs(dir, &v);
		free(dir);
		if (rc != 0) return 0;
	}
	/* "full": less than a few pages left for an unprivileged writer (what
	 * a failed multi-page commit leaves), or no inodes */
	return (uint64_t)v.f_bavail * v.f_frsize < ((uint64_t)1 << 20) || (v.f_files && v.f_favail == 0);
}

/* This host's name as it goes into temporary names: [A-Za-z0-9-] only. */
static const char *tmp_host(void)
{
	static char host[64];
	if (!host[0]) {
		char h[64] = "";
		if (gethostname(h, sizeof h - 1) != 0 || !h[0]) strcpy(h, "host");
		h[sizeof h - 1] = 0;
		for (char *c = h; *c; c++)
			if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-'))
				*c = '-';
		memcpy(host, h, sizeof host);
	}
	return host;
}

char *l2_tmp_template(const char *path)
{
	size_t n = strlen(path) + 100;
	char *t = l2_malloc(n);
	snprintf(t, n, "%s.tmp.%s.%ld.XXXXXX", path, tmp_host(), (long)getpid());
	return t;
}

void l2_tmp_remove_stale_at(int dirfd, const char *base)
{
	char prefix[4096];
	int pl = snprintf(prefix, sizeof prefix, "%s.tmp.%s.", base, tmp_host());
	if (pl <= 0 || (size_t)pl >= sizeof prefix) return;
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0) close(fd);
		return;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, prefix, (size_t)pl)) continue;
		/* PID '.' six characters, nothing more */
		const char *p = e->d_name + pl;
		char *end;
		long pid = strtol(p, &end, 10);
		if (end == p || pid <= 0 || *end != '.' || strlen(end + 1) != 6) continue;
		if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
		struct stat st;
		if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
		if (S_ISREG(st.st_mode)) unlinkat(dirfd, e->d_name, 0);
		else if (S_ISDIR(st.st_mode)) {
			/* a store or index being made (LMDB's two files); anything
			 * else in it keeps the folder */
			int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) continue;
			unlinkat(sub, "data.mdb", 0);
			unlinkat(sub, "lock.mdb", 0);
			close(sub);
			unlinkat(dirfd, e->d_name, AT_REMOVEDIR);
		}
	}
	closedir(d);
}

void l2_tmp_remove_stale(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash ? l2_strdup(path) : l2_strdup(".");
	if (slash) dir[slash == path ? 1 : slash - path] = 0;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0) return;
	l2_tmp_remove_stale_at(fd, slash ? slash + 1 : path);
	close(fd);
}

void l2_mkdir_p(const char *path)
{
	char *p = l2_strdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/') continue;
		*s = 0;
		if (mkdir(p, 0755) != 0 && errno != EEXIST) l2_die_errno("%s: cannot create directory", p);
		*s = '/';
	}
	if (mkdir(p, 0755) != 0 && errno != EEXIST) l2_die_errno("%s: cannot create directory", p);
	if (!l2_is_dir(p)) l2_die("%s: exists and is not a directory", p);
	free(p);
}

/* ---- numbers ------------------------------------------------------------------ */

long l2_parse_long(const char *s, const char *optname, long min, long max)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		l2_die("invalid value for %s: '%s' (expected an integer in %ld..%ld)", optname, s, min, max);
	return v;
}

uint64_t l2_parse_u64(const char *s, const char *optname)
{
	char *end;
	errno = 0;
	if (*s == '-') l2_die("invalid value for %s: '%s' (expected a non-negative integer)", optname, s);
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end)
		l2_die("invalid value for %s: '%s' (expected a non-negative integer)", optname, s);
	return v;
}

double l2_parse_double(const char *s, const char *optname)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v))
		l2_die("invalid value for %s: '%s' (expected a number)", optname, s);
	return v;
}

int l2_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *e = p + len;
	while (p < e) {
		uint32_t c = *p;
		int n = c < 0x80 ? 0 : c >= 0xC2 && c < 0xE0 ? 1 : c >= 0xE0 && c < 0xF0 ? 2 : c >= 0xF0 && c < 0xF5 ? 3 : -1;
		if (n < 0 || e - p <= n) return 0;
		if (n) c &= 0x3Fu >> n;
		for (int i = 1; i <= n; i++) {
			if ((p[i] & 0xC0) != 0x80) return 0;
			c = c << 6 | (p[i] & 0x3F);
		}
		if ((n == 2 && c < 0x800) || (n == 3 && (c < 0x10000 || c > 0x10FFFF)) || (c >= 0xD800 && c <= 0xDFFF))
			return 0;
		p += n + 1;
	}
	return 1;
}

long l2_first_nonfinite(const float *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(v[i])) return (long)i;
	return -1;
}

float l2_half_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023, bits;
	if (exp == 0) {
		if (man == 0) bits = sign;
		else { /* subnormal: normalise */
			int e = -1;
			do { e++; man <<= 1; } while (!(man & 1024));
			bits = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 1023) << 13;
		}
	} else if (exp == 31) bits = sign | 0x7f800000u | man << 13;
	else bits = sign | (exp + 112) << 23 | man << 13;
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

uint16_t l2_float_to_half(float f)
{
	/* round-to-nearest-even, as numpy and torch do */
	uint32_t x;
	memcpy(&x, &f, 4);
	uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7fffffff;
	if (ax >= 0x7f800000) return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000 ? 0x200 : 0));
	if (ax >= 0x477ff000) return (uint16_t)(sign | 0x7c00); /* overflow to inf */
	if (ax < 0x38800000) { /* subnormal or zero in half */
		float a;
		memcpy(&a, &ax, 4);
		/* scale so the half subnormal unit is 1, then round to even */
		float r = a * 16777216.0f; /* 2^24 */
		uint32_t m = (uint32_t)r;
		float frac = r - (float)m;
		if (frac > 0.5f || (frac == 0.5f && (m & 1))) m++;
		return (uint16_t)(sign | m);
	}
	uint32_t e = ((ax >> 23) - 112) << 10, m = (ax >> 13) & 1023;
	uint32_t h = e | m, rest = ax & 0x1fff;
	if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
	return (uint16_t)(sign | h);
}

float l2_bf16_to_float(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

double l2_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- command line ----------------------------------------------------------------- */

void l2_usage_error(L2UsageFn usage, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg("", fmt, ap, 0);
	va_end(ap);
	if (usage) {
		fprintf(stderr, "\n");
		usage(stderr);
	}
	if (abort_hook) {
		fflush(stderr);
		abort_hook(L2_EXIT_USAGE);
	}
	exit(L2_EXIT_USAGE);
}

void l2_rgb_option(const char *arg, const char *optname, L2UsageFn usage, uint8_t rgb[3])
{
	const char *p = arg;
	for (int i = 0; i < 3; i++) {
		char *e;
		errno = 0;
		long x = strtol(p, &e, 10);
		if (e == p || errno || x < 0 || x > 255 || (i < 2 && *e != ',') || (i == 2 && *e) || !isdigit((unsigned char)*p))
			l2_usage_error(usage, "invalid value for %s: '%s' (expected R,G,B with 0..255)", optname, arg);
		rgb[i] = (uint8_t)x;
		p = e + 1;
	}
}

int l2_common_option(int c, const char *arg, L2UsageFn usage)
{
	switch (c) {
	case 'h':
		usage(stdout);
		exit(L2_EXIT_OK);
	case L2_OPT_VERSION:
		printf("%s (l2) %s\n", progname, L2_VERSION);
		exit(L2_EXIT_OK);
	case L2_OPT_THREADS:
		l2_threads = (int)l2_parse_long(arg, "--threads", 1, 1024);
		l2_blas_threads(l2_threads);
		l2_threads_given = 1;
		return 1;
	case L2_OPT_PROGRESS:
		l2_progress_flag = 1;
		return 1;
	case L2_OPT_QUIET:
		l2_quiet = 1;
		return 1;
	case L2_OPT_DEVICE:
		if (!strcmp(arg, "cpu")) l2_device = L2_DEVICE_CPU;
		else if (!strcmp(arg, "cuda")) {
			if (!l2_cuda_built())
				l2_die("--device cuda is unavailable: this l2 was built without CUDA (rebuild with nvcc installed, CUDA=1)");
			if (!l2_cuda_available())
				l2_die("--device cuda: no usable CUDA device found (%s)", l2_cuda_status());
			l2_device = L2_DEVICE_CUDA;
		} else
			l2_usage_error(usage, "invalid value for --device: '%s' (expected cpu or cuda)", arg);
		return 1;
	case '?': {
		const char *a = optind > 0 && optind <= saved_argc ? saved_argv[optind - 1] : "?";
		if (optopt && strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", optopt) && optopt != 'h')
			l2_usage_error(usage, "option -%c: unknown, or missing its argument", optopt);
		l2_usage_error(usage, "option '%s': unknown, or missing its argument", a);
	}
	}
	return 0;
}

/* ---- progress --------------------------------------------------------------------- */

static void fmt_time(char *buf, size_t n, double s)
{
	if (!isfinite(s) || s < 0) { snprintf(buf, n, "--:--"); return; }
	long t = (long)(s + 0.5);
	if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
	else snprintf(buf, n, "%02ld:%02ld", t / 60, t % 60);
}

static void progress_draw(L2Progress *p, int final)
{
	double now = l2_now(), el = now - p->t0;
	int tty = isatty(STDERR_FILENO);
	const char *lead = tty ? "\r" : "", *tail = final || !tty ? "\n" : "\033[K";
	double rate = el > 0 ? p->done / el : 0;
	char eta[32], elapsed[32];
	fmt_time(elapsed, sizeof elapsed, el);
	if (p->total) {
		fmt_time(eta, sizeof eta, rate > 0 ? (p->total - p->done) / rate : NAN);
		fprintf(stderr, "%s%s: %s: %llu/%llu %s  %.1f %s/s  %s  ETA %s%s", lead, progname, p->what,
			(unsigned long long)p->done, (unsigned long long)p->total, p->unit, rate, p->unit,
			elapsed, final ? "00:00" : eta, tail);
	} else
		fprintf(stderr, "%s%s: %s: %llu %s  %.1f %s/s  %s%s", lead, progname, p->what,
			(unsigned long long)p->done, p->unit, rate, p->unit, elapsed, tail);
	p->drawn = 1;
	p->last = now;
}

void l2_progress_start(L2Progress *p, const char *what, const char *unit, uint64_t total)
{
	memset(p, 0, sizeof *p);
	p->what = what;
	p->unit = unit;
	p->total = total;
	p->t0 = p->last = l2_now();
	p->enabled = !l2_quiet && (l2_progress_flag || isatty(STDERR_FILENO));
}

void l2_progress_add(L2Progress *p, uint64_t n)
{
	p->done += n;
	if (p->enabled && l2_now() - p->last >= (isatty(STDERR_FILENO) ? 0.25 : 2.0)) progress_draw(p, 0);
}

void l2_progress_end(L2Progress *p)
{
	if (p->enabled) progress_draw(p, 1);
}
