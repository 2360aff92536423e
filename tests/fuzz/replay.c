/* replay.c — feed files to a fuzz harness without libFuzzer: the part of
 * tests/fuzz that `make test` runs (gcc, and gcc + ASan/UBSan with SAN=1).
 *
 *   replay-NAME [-v] PATH...     each file is one input; a directory stands
 *                                for the files in it (not recursive)
 *
 * Inputs run in this process one after another, as libFuzzer runs them, in
 * name order.  Prints "replay-NAME: N inputs (A accepted, R refused)" and
 * exits 0; a crash, a sanitizer report or a hang (more than L2_FUZZ_TIMEOUT
 * seconds on one input, default 60) names the input on stderr and ends the
 * process with the signal or the sanitizer's exit status.  -v prints why
 * each refused input was refused. */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REPLAY_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(REPLAY_ASAN)
#define REPLAY_ASAN 1
#endif
#ifdef REPLAY_ASAN
void __sanitizer_set_death_callback(void (*callback)(void));
/* As libFuzzer's -malloc_limit_mb (tests/fuzz/run.sh): an allocation above
 * 2 GiB from an input of a few KiB is a size taken on the input's word. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "max_allocation_size_mb=2048"; }
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *current; /* the input running now */

static void say_current(const char *what)
{
	if (!current) return;
	/* async-signal-safe: write(2) only */
	const char *parts[] = {"replay: input ", current, " ", what, "\n"};
	for (int i = 0; i < 5; i++)
		if (write(STDERR_FILENO, parts[i], strlen(parts[i])) < 0) break;
}

static void on_signal(int sig)
{
	say_current(sig == SIGALRM ? "hung (L2_FUZZ_TIMEOUT)" : "crashed");
	signal(sig, SIG_DFL);
	raise(sig == SIGALRM ? SIGABRT : sig);
}

#ifdef REPLAY_ASAN
static void on_death(void) { say_current("failed (sanitizer report above)"); }
#endif

static size_t ran, refused;
static int timeout_s = 60;

static void run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	size_t cap = 1 << 16, n = 0;
	uint8_t *buf = malloc(cap);
	for (;;) {
		if (n == cap) buf = realloc(buf, cap *= 2);
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0) break;
	}
	fclose(f);
	/* exactly n bytes, so that ASan sees a read past the input's end */
	uint8_t *exact = malloc(n ? n : 1);
	memcpy(exact, buf, n);
	free(buf);
	current = path;
	alarm((unsigned)timeout_s);
	LLVMFuzzerTestOneInput(exact, n);
	alarm(0);
	current = NULL;
	free(exact);
	ran++;
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

int main(int argc, char **argv)
{
	const char *me = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	int first = 1;
	if (argc > 1 && !strcmp(argv[1], "-v")) {
		setenv("L2_FUZZ_VERBOSE", "1", 1);
		first = 2;
	}
	if (first >= argc) {
		fprintf(stderr, "usage: %s [-v] FILE|DIR...\n", me);
		return 2;
	}
	const char *t = getenv("L2_FUZZ_TIMEOUT");
	if (t && atoi(t) > 0) timeout_s = atoi(t);
	signal(SIGALRM, on_signal);
	signal(SIGABRT, on_signal);
#ifdef REPLAY_ASAN
	__sanitizer_set_death_callback(on_death);
#else
	signal(SIGSEGV, on_signal);
	signal(SIGBUS, on_signal);
	signal(SIGFPE, on_signal);
	signal(SIGILL, on_signal);
#endif
	for (int i = first; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "%s: %s: %s\n", me, argv[i], strerror(errno));
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			run_file(argv[i]);
			continue;
		}
		struct dirent **e;
		int n = scandir(argv[i], &e, NULL, by_name);
		if (n < 0) {
			fprintf(stderr, "%s: %s: %s\n", me, argv[i], strerror(errno));
			return 1;
		}
		for (int j = 0; j < n; j++) {
			char path[4096];
			snprintf(path, sizeof path, "%s/%s", argv[i], e[j]->d_name);
			if (e[j]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode)) run_file(path);
			free(e[j]);
		}
		free(e);
	}
	refused = l2_fuzz_refused();
	printf("%s: %zu inputs (%zu accepted, %zu refused)\n", me, ran, ran - refused, refused);
	return 0;
}
