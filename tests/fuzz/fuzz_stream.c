/* fuzz_stream.c — l2 feature streams (lib/io/stream.h), every kind,
 * neighbors included, concatenated segments included.
 *
 * The input is a stream as it would arrive on a pipe.  Every record is read
 * (each field touched), and an accepted stream must survive a round trip:
 * written back with the stream writer (as float32) and read again, it gives
 * the same keys, neighbour keys, scores and vector bits. */
#include "fuzz.h"
#include "io/stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static FILE *open_input(const uint8_t *data, size_t size)
{
	/* fmemopen refuses an empty buffer */
	FILE *f = size ? fmemopen((void *)data, size, "rb") : fopen("/dev/null", "rb");
	if (!f) {
		perror("fmemopen");
		abort();
	}
	return f;
}

static void fail(const char *what, uint64_t rec)
{
	fprintf(stderr, "fuzz_stream: round trip changed %s of record %llu\n", what, (unsigned long long)rec);
	abort();
}

static int same_floats(const float *a, const float *b, size_t n) { return !memcmp(a, b, n * sizeof(float)); }

static void fuzz_one(const uint8_t *data, size_t size)
{
	L2StreamReader *r = l2_stream_open_fp(open_input(data, size), "fuzz input");
	const L2StreamHeader *h = l2_stream_header(r);
	l2_stream_expect(r, h->kind, h->dim);
	const char *rt = l2_fuzz_write_file("roundtrip.l2f", "", 0);
	L2StreamWriter *w = l2_stream_create(rt, h->kind, h->dim, 0, h->k, L2FS_UNTIL_END);
	L2Record rec;
	volatile float sink = 0;
	(void)sink;
	while (l2_stream_next(r, &rec)) {
		sink += rec.vec[0] + rec.vec[h->dim - 1] + (float)strlen(rec.key);
		if (rec.k) {
			for (uint32_t j = 0; j < rec.k; j++)
				sink += rec.nscore[j] + rec.nvec[(size_t)j * h->dim] + (float)strlen(rec.nkey[j]);
			l2_stream_write_neighbors(w, rec.key, rec.vec, rec.k, rec.nkey, rec.nscore, rec.nvec);
		} else {
			l2_stream_write_len(w, rec.key, rec.key_len, rec.vec);
		}
	}
	uint64_t n = l2_stream_records_read(r);
	uint32_t dim = h->dim;
	l2_stream_close(r);
	l2_stream_writer_close(w);

	/* read both again side by side */
	L2StreamReader *a = l2_stream_open_fp(open_input(data, size), "fuzz input");
	L2StreamReader *b = l2_stream_open(rt);
	L2Record x, y;
	uint64_t i = 0;
	for (;; i++) {
		int ga = l2_stream_next(a, &x), gb = l2_stream_next(b, &y);
		if (ga != gb) fail("the record count", i + 1);
		if (!ga) break;
		if (x.key_len != y.key_len || memcmp(x.key, y.key, x.key_len)) fail("the key", i + 1);
		if (!same_floats(x.vec, y.vec, dim)) fail("the vector", i + 1);
		if (x.k != y.k) fail("k", i + 1);
		for (uint32_t j = 0; j < x.k; j++) {
			if (x.nkey_len[j] != y.nkey_len[j] || memcmp(x.nkey[j], y.nkey[j], x.nkey_len[j]))
				fail("a neighbour key", i + 1);
			if (memcmp(&x.nscore[j], &y.nscore[j], sizeof(float))) fail("a score", i + 1);
		}
		if (x.k && !same_floats(x.nvec, y.nvec, (size_t)x.k * dim)) fail("a neighbour vector", i + 1);
	}
	if (i != n) fail("the record count", i);
	l2_stream_close(a);
	l2_stream_close(b);
}

L2_FUZZ_TARGET(fuzz_one)
