/* fuzz_npy.c — NumPy .npy arrays and .npz archives (lib/io/npy.h).
 *
 * An input starting with the .npy magic is parsed from memory; anything
 * else is taken for an .npz archive, written to a scratch file and read
 * the way l2-fid reads statistics (members "mu" and "sigma", then
 * "arr_0").  An accepted array must survive a round trip: serialised with
 * l2_npy_serialize and parsed again, it has the same type, shape and bytes. */
#include "fuzz.h"
#include "io/npz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void roundtrip(const L2Npy *a)
{
	size_t len;
	unsigned char *b = l2_npy_serialize(a->data, a->is_f64, a->ndim, a->shape, &len);
	L2Npy c;
	l2_npy_parse(b, len, "round trip", &c);
	size_t n = l2_npy_count(a) * (a->is_f64 ? 8 : 4);
	if (c.is_f64 != a->is_f64 || c.ndim != a->ndim || memcmp(c.shape, a->shape, sizeof a->shape) ||
	    (n && memcmp(c.data, a->data, n))) {
		fprintf(stderr, "fuzz_npy: round trip changed the array\n");
		abort();
	}
	l2_npy_free(&c);
	free(b);
}

static void fuzz_one(const uint8_t *data, size_t size)
{
	L2Npy a;
	if (size >= 6 && !memcmp(data, "\x93NUMPY", 6)) {
		l2_npy_parse(data, size, "fuzz input", &a);
		roundtrip(&a);
		l2_npy_free(&a);
		return;
	}
	const char *path = l2_fuzz_write_file("input.npz", data, size);
	static const char *const members[] = {"mu", "sigma", "arr_0"};
	for (int i = 0; i < 3; i++)
		if (l2_npz_read(path, members[i], &a)) {
			roundtrip(&a);
			l2_npy_free(&a);
		}
}

L2_FUZZ_TARGET(fuzz_one)
