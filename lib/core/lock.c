/* lock.c — writer locks on lock files (lock.h). */
#include "core/lock.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOCK_MAGIC "l2-lock pid "

struct L2Lock {
	char *path;
	int fd;
	dev_t dev;
	ino_t ino;
	L2Lock *next;
	L2Held hold; /* a fuzz harness that catches l2_die releases it (util.h) */
};

static L2Lock *held; /* removed by the clean-up when the holder dies */
static int cleanup_registered;

/* Remove the lock file if it is still ours (not one that replaced it). */
static void unlink_if_ours(const L2Lock *l)
{
	struct stat st;
	if (stat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino) unlink(l->path);
}

static void release_all(void)
{
	for (L2Lock *l = held; l; l = l->next) unlink_if_ours(l);
}

/* The holder's pid from the file's content: >0 pid, 0 empty (just made),
 * -1 not an l2 lock file. */
static long read_holder(int fd)
{
	char buf[64];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	if (n <= 0) return 0;
	buf[n] = 0;
	if (strncmp(buf, LOCK_MAGIC, strlen(LOCK_MAGIC))) return -1;
	long pid = strtol(buf + strlen(LOCK_MAGIC), NULL, 10);
	return pid > 0 ? pid : 0;
}

static int open_lock_file(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		if (errno == ELOOP) l2_die("%s: is a symbolic link, not an l2 lock file (remove it if it is not yours)", path);
		l2_die_errno("%s: cannot create lock file", path);
	}
	struct stat st;
	if (fstat(fd, &st) != 0) l2_die_errno("%s", path);
	if (!S_ISREG(st.st_mode) || read_holder(fd) < 0)
		l2_die("%s: exists and is not an l2 lock file (remove it if it is not yours)", path);
	return fd;
}

static void lock_release_held(void *l) { l2_lock_release(l); }

L2Lock *l2_lock_try(const char *path, long *holder)
{
	if (holder) *holder = 0;
	for (int attempt = 0;; attempt++) {
		int fd = open_lock_file(path);
		if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
			if (errno != EWOULDBLOCK) l2_die_errno("%s: cannot lock", path);
			long pid = read_holder(fd);
			close(fd);
			/* l2_lock_holder probes with a brief shared lock: retry
			 * a little before calling the lock taken */
			if (attempt < 5) {
				nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
				continue;
			}
			if (holder) *holder = pid > 0 ? pid : 0;
			return NULL;
		}
		/* the file may have been removed (released) between open and
		 * flock: then this lock guards nothing; start again */
		struct stat a, b;
		if (fstat(fd, &a) != 0) l2_die_errno("%s", path);
		if (stat(path, &b) != 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
			close(fd);
			continue;
		}
		char text[64];
		int n = snprintf(text, sizeof text, LOCK_MAGIC "%ld\n", (long)getpid());
		if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)n, 0) != n) l2_die_errno("%s: cannot write lock file", path);
		L2Lock *l = l2_calloc(1, sizeof *l);
		l->path = l2_strdup(path);
		l->fd = fd;
		l->dev = a.st_dev;
		l->ino = a.st_ino;
		l->next = held;
		held = l;
		l2_hold(&l->hold, lock_release_held, l);
		if (!cleanup_registered) {
			l2_cleanup_register(release_all);
			cleanup_registered = 1;
		}
		return l;
	}
}

L2Lock *l2_lock_take(const char *path, const char *target, const char *activity)
{
	long pid;
	L2Lock *l = l2_lock_try(path, &pid);
	if (l) return l;
	if (pid > 0) l2_die("%s: %s is running (pid %ld); wait for it to end, or stop it", target, activity, pid);
	l2_die("%s: %s is running (lock %s is held); wait for it to end, or stop it", target, activity, path);
}

long l2_lock_holder(const char *path)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) return 0;
	long pid = 0;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) flock(fd, LOCK_UN);
	else if (errno == EWOULDBLOCK) pid = read_holder(fd) > 0 ? read_holder(fd) : -1;
	close(fd);
	return pid;
}

void l2_lock_release(L2Lock *l)
{
	if (!l) return;
	l2_unhold(&l->hold);
	for (L2Lock **pp = &held; *pp; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	unlink_if_ours(l);
	close(l->fd);
	free(l->path);
	free(l);
}
