/* check_child.h — tests of paths that die (l2_die exits the process) run them in a forked child
 * and look at its exit status and message.  One copy, so that every such test drains the
 * child's stderr the same way and tells LeakSanitizer that a child dying on purpose leaks
 * nothing worth reporting. */
#ifndef L2_CHECK_CHILD_H
#define L2_CHECK_CHILD_H

#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

extern void __lsan_disable(void) __attribute__((weak));

/* Run fn(arg) in a child with its stderr captured into err (NUL-terminated, cut to errlen, the
 * rest drained); returns its exit status, 128 + the signal when a signal ended it, -1 when
 * the pipe cannot be made. */
static inline int check_child(void (*fn)(const void *), const void *arg, char *err, size_t errlen)
{
	int p[2];
	if (pipe(p)) return -1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		dup2(p[1], 2);
		if (__lsan_disable) __lsan_disable();
		fn(arg);
		_exit(0);
	}
	close(p[1]);
	size_t n = 0;
	ssize_t r;
	char sink[4096];
	while ((r = n + 1 < errlen ? read(p[0], err + n, errlen - 1 - n) : read(p[0], sink, sizeof sink)) > 0)
		if (n + 1 < errlen) n += (size_t)r;
	err[n] = 0;
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#endif
