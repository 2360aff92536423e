/* lock.h — one writer at a time.
 *
 * Every l2 program that writes something other programs read over time (a
 * dataset build, a feature set, an index, a training run) first takes the
 * lock of its target: an exclusive flock(2) on a small lock file.  The
 * kernel drops the lock when the holder ends, however it ends (kill -9,
 * power loss), so a lock never needs breaking by hand; a second writer is
 * refused with a message naming the holder's pid instead of racing it.
 *
 * The lock file holds "l2-lock pid N" and is removed when released (or when
 * the holder dies through l2_die); one left by a killed writer is taken over
 * by the next.  A file at the lock's path that is not an l2 lock file is
 * never written to or removed: taking the lock fails instead.
 *
 * Lock files: TARGET.lock beside a target that is renamed into place (a
 * dataset build, an index), DIR/NAME.lock inside a directory that stays
 * (a feature sub-database of a store, a training run directory). */
#ifndef L2_LOCK_H
#define L2_LOCK_H

typedef struct L2Lock L2Lock;

/* Take the lock file LOCKPATH for ACTIVITY on TARGET ("a build of
 * emoji.lmdb").  When another process holds it, dies with
 * "TARGET: ACTIVITY is running (pid N); wait for it to end, or stop it". */
L2Lock *l2_lock_take(const char *lockpath, const char *target, const char *activity);
/* The same without dying: NULL when held, with *holder = the holder's pid
 * (0 when unknown). */
L2Lock *l2_lock_try(const char *lockpath, long *holder);
/* Is LOCKPATH held by a live process?  Returns its pid, -1 when held by one
 * whose pid is unknown, 0 when free or missing. */
long l2_lock_holder(const char *lockpath);
/* Release: the file is removed, then the lock dropped.  NULL is fine. */
void l2_lock_release(L2Lock *l);

#endif
