/* test_mapguard.c — a read past the end of a mapped file that was cut
 * short becomes a one-line error naming it (lib/core/mapguard.h); faults
 * elsewhere stay signals. */
#include "check.h"
#include "core/mapguard.h"
#include "core/util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* Run fn in a child with stderr captured; returns the wait status. */
static int in_child(void (*fn)(const char *), const char *file, char *err, size_t errlen)
{
	int p[2];
	if (pipe(p)) return -1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], STDERR_FILENO);
		close(p[0]);
		fn(file);
		_exit(0);
	}
	close(p[1]);
	size_t n = 0;
	ssize_t r;
	while (n + 1 < errlen && (r = read(p[0], err + n, errlen - 1 - n)) > 0) n += (size_t)r;
	err[n] = 0;
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	return st;
}

static char *map_three_pages(const char *file, int *fd)
{
	*fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0644);
	char page[4096];
	memset(page, 7, sizeof page);
	for (int i = 0; i < 3; i++)
		if (write(*fd, page, sizeof page) != (ssize_t)sizeof page) return NULL;
	char *m = mmap(NULL, 3 * 4096, PROT_READ, MAP_SHARED, *fd, 0);
	return m == MAP_FAILED ? NULL : m;
}

static volatile char sink;

static void read_cut_guarded(const char *file)
{
	int fd;
	char *m = map_three_pages(file, &fd);
	if (!m) _exit(3);
	l2_mapguard_add(m, 3 * 4096, "guarded.bin");
	if (ftruncate(fd, 4096)) _exit(4);
	sink = m[2 * 4096 + 5]; /* beyond the file's new end */
	_exit(5);
}

static void read_cut_by_file(const char *file)
{
	int fd;
	char *m = map_three_pages(file, &fd);
	if (!m) _exit(3);
	if (l2_mapguard_add_file(file, "found-by-name") < 0) _exit(6);
	if (ftruncate(fd, 4096)) _exit(4);
	sink = m[2 * 4096 + 5];
	_exit(5);
}

static void read_cut_removed(const char *file)
{
	int fd;
	char *m = map_three_pages(file, &fd);
	if (!m) _exit(3);
	int h = l2_mapguard_add(m, 3 * 4096, "removed.bin");
	l2_mapguard_remove(h);
	if (ftruncate(fd, 4096)) _exit(4);
	sink = m[2 * 4096 + 5];
	_exit(5);
}

static char tmpfile_path[64];

static void test_guarded_fault_is_a_message(void)
{
	char err[1024];
	int st = in_child(read_cut_guarded, tmpfile_path, err, sizeof err);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %#x", st);
	CHECK_MSG(strstr(err, ": guarded.bin: corrupt or truncated (") != NULL, "stderr: %s", err);
}

static void test_map_found_by_file_name(void)
{
	char err[1024];
	int st = in_child(read_cut_by_file, tmpfile_path, err, sizeof err);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %#x", st);
	CHECK_MSG(strstr(err, ": found-by-name: corrupt or truncated (") != NULL, "stderr: %s", err);
}

static void test_unguarded_fault_stays_a_signal(void)
{
	char err[1024];
	int st = in_child(read_cut_removed, tmpfile_path, err, sizeof err);
	CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS, "status %#x, stderr: %s", st, err);
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	snprintf(tmpfile_path, sizeof tmpfile_path, "/tmp/l2-test-mapguard-%d", (int)getpid());
	RUN(test_guarded_fault_is_a_message);
	RUN(test_map_found_by_file_name);
	/* AddressSanitizer reports a SIGBUS as its own error (exit 99): the
	 * "stays a signal" behaviour is only checked without it */
#if !defined(__SANITIZE_ADDRESS__)
	RUN(test_unguarded_fault_stays_a_signal);
#endif
	unlink(tmpfile_path);
	return check_done();
}
