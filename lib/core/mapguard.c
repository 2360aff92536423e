/* mapguard.c — SIGBUS/SIGSEGV inside a registered file map becomes a
 * one-line error (mapguard.h). */
#include "core/mapguard.h"
#include "core/util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define GUARD_SLOTS 64

typedef struct {
	volatile uintptr_t lo, hi; /* hi == 0: free slot */
	char what[256];
	char *file; /* resolved path, for l2_mapguard_refresh */
} Region;

static Region regions[GUARD_SLOTS];
static struct sigaction old_bus, old_segv;
static int installed;

static void put(char *buf, size_t cap, size_t *n, const char *s)
{
	while (*s && *n + 1 < cap) buf[(*n)++] = *s++;
}

static void on_fault(int sig, siginfo_t *si, void *ctx)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	for (int i = 0; i < GUARD_SLOTS; i++) {
		uintptr_t lo = regions[i].lo, hi = regions[i].hi;
		if (hi && a >= lo && a < hi) {
			/* async-signal-safe from here: write, unlink, _exit */
			char msg[512];
			size_t n = 0;
			put(msg, sizeof msg, &n, l2_progname());
			put(msg, sizeof msg, &n, ": ");
			put(msg, sizeof msg, &n, regions[i].what);
			put(msg, sizeof msg, &n, ": corrupt or truncated (reading its memory map failed");
			put(msg, sizeof msg, &n, sig == SIGBUS ? ": the file is shorter than its content says)\n" :
								 ": a damaged page points outside it)\n");
			ssize_t w = write(STDERR_FILENO, msg, n);
			(void)w;
			l2_ofile_cleanup_all();
			_exit(L2_EXIT_FAIL);
		}
	}
	/* not ours: what was there before */
	const struct sigaction *old = sig == SIGBUS ? &old_bus : &old_segv;
	if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction) {
		old->sa_sigaction(sig, si, ctx);
		return;
	}
	if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
		old->sa_handler(sig);
		return;
	}
	/* default action: returning re-executes the faulting access */
	signal(sig, SIG_DFL);
}

static void install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old_bus);
	sigaction(SIGSEGV, &sa, &old_segv);
	installed = 1;
}

int l2_mapguard_add(const void *addr, size_t len, const char *what)
{
	if (!installed) install();
	for (int i = 0; i < GUARD_SLOTS; i++) {
		if (regions[i].hi) continue;
		snprintf(regions[i].what, sizeof regions[i].what, "%s", what);
		regions[i].lo = (uintptr_t)addr;
		regions[i].hi = (uintptr_t)addr + len;
		return i;
	}
	return -1;
}

/* The span of the process's maps of the file at PATH (resolved), from
 * /proc/self/maps; 0 when it has none. */
static int find_map(const char *path, uintptr_t *lo, uintptr_t *hi)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f) return 0;
	char line[4608];
	int found = 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long a, b;
		int off = 0;
		if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &a, &b, &off) < 2 || !off) continue;
		char *name = line + off;
		name[strcspn(name, "\n")] = 0;
		if (strcmp(name, path)) continue;
		if (!found || a < *lo) *lo = a;
		if (!found || b > *hi) *hi = b;
		found = 1;
	}
	fclose(f);
	return found;
}

int l2_mapguard_add_file(const char *file, const char *what)
{
	char *real = realpath(file, NULL);
	uintptr_t lo, hi;
	if (!real || !find_map(real, &lo, &hi)) {
		free(real);
		return -1;
	}
	int h = l2_mapguard_add((const void *)lo, hi - lo, what);
	if (h < 0) free(real);
	else regions[h].file = real;
	return h;
}

void l2_mapguard_refresh(int h)
{
	if (h < 0 || h >= GUARD_SLOTS || !regions[h].file) return;
	uintptr_t lo, hi;
	if (find_map(regions[h].file, &lo, &hi)) l2_mapguard_move(h, (const void *)lo, hi - lo);
	else regions[h].hi = 0;
}

void l2_mapguard_move(int h, const void *addr, size_t len)
{
	if (h < 0 || h >= GUARD_SLOTS) return;
	regions[h].hi = 0; /* never a window where the old range covers a new map */
	regions[h].lo = (uintptr_t)addr;
	regions[h].hi = (uintptr_t)addr + len;
}

void l2_mapguard_remove(int h)
{
	if (h < 0 || h >= GUARD_SLOTS) return;
	regions[h].hi = 0;
	free(regions[h].file);
	regions[h].file = NULL;
}
