/* npy.h — NumPy .npy arrays (format 1.0/2.0/3.0); .npz archives of them are
 * io/npz.h.  Only what l2 exchanges: little-endian float32 / float64 arrays
 * in C order. */
#ifndef L2_NPY_H
#define L2_NPY_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
	int ndim;
	size_t shape[8];
	int is_f64;   /* element type as stored: 0 = <f4, 1 = <f8 */
	void *data;   /* (prod shape) elements of the stored type */
} L2Npy;

/* Read a .npy file; dies with "PATH: ..." on anything it cannot read. */
void l2_npy_read(const char *path, L2Npy *a);
/* Parse from memory (`name` for messages). */
void l2_npy_parse(const unsigned char *buf, size_t len, const char *name, L2Npy *a);
size_t l2_npy_count(const L2Npy *a);
void l2_npy_free(L2Npy *a);

/* Serialise to memory (malloc'd); *len gets the size. */
unsigned char *l2_npy_serialize(const void *data, int is_f64, int ndim, const size_t *shape, size_t *len);
/* Write a .npy atomically ("-" = stdout). */
void l2_npy_write(const char *path, const void *data, int is_f64, int ndim, const size_t *shape);


#endif
