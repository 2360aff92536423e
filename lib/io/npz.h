/* npz.h — NumPy .npz archives: zip files of .npy members (io/npy.h), stored
 * (np.savez) or deflated (np.savez_compressed).  pytorch-fid's statistics
 * files (mu, sigma) are read and written this way by l2-fid. */
#ifndef L2_NPZ_H
#define L2_NPZ_H

#include "io/npy.h"

/* Read the member NAME (without ".npy") of PATH into *a; returns 0 if PATH has
 * no such member.  Dies "PATH: ..." on a damaged archive (CRCs are checked). */
int l2_npz_read(const char *path, const char *name, L2Npy *a);

/* Write an .npz of n arrays atomically; compress = 1 deflates the members
 * (np.savez_compressed).  Members must be under 4 GiB (plain zip). */
typedef struct { const char *name; const void *data; int is_f64; int ndim; size_t shape[8]; } L2NpzMember;
void l2_npz_write(const char *path, const L2NpzMember *m, int n, int compress);

#endif
