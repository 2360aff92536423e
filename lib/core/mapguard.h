/* mapguard.h — a message, not a signal, when a memory-mapped file fails.
 *
 * LMDB stores and safetensors files are read through mmap.  A read of a
 * mapped page that the file no longer backs (a data.mdb cut short by an
 * interrupted copy, a weight file truncated while in use) raises SIGBUS; a
 * damaged LMDB page can send a read anywhere in the map.  Mapped regions
 * registered here are recognised by the fault's address: the program prints
 * "PROGRAM: WHAT: corrupt or truncated (reading its memory map failed)",
 * removes its uncommitted output files and exits 1.  Faults elsewhere keep
 * their usual behaviour (the default action, or the handler that was there
 * before, such as AddressSanitizer's).
 *
 * The registry has a fixed size and is updated without locks: register and
 * remove from one thread (opening and closing files is single-threaded in
 * every l2 program), reads of the regions may come from any thread. */
#ifndef L2_MAPGUARD_H
#define L2_MAPGUARD_H

#include <stddef.h>

/* Register [addr, addr + len) as the map of WHAT (a path; copied, at most
 * 255 bytes kept).  Returns a handle for the calls below; -1 when the
 * registry is full (the region is then simply unguarded). */
int l2_mapguard_add(const void *addr, size_t len, const char *what);
/* The same for a map made by a library that does not say where it put it
 * (LMDB): the region is the process's map of FILE, found in
 * /proc/self/maps; -1 when there is none. */
int l2_mapguard_add_file(const char *file, const char *what);
/* The region moved or changed size (an LMDB map that grew). */
void l2_mapguard_move(int handle, const void *addr, size_t len);
/* Look up the map of FILE again (after the library re-mapped it). */
void l2_mapguard_refresh(int handle);
/* Forget a region (before munmap); -1 is ignored. */
void l2_mapguard_remove(int handle);

#endif
