/* stream.h — l2 feature streams (format: schemas/l2fs.md).
 *
 * A stream is one or more segments; each segment is a 64-byte header and
 * keyed records.  Readers treat concatenated segments as one stream as long
 * as kind and dimension agree.  Every reader function dies with a message
 * naming the file and the problem on malformed input.
 *
 * Typical use:
 *     L2StreamReader *r = l2_stream_open("-");
 *     l2_stream_expect(r, L2_KIND_IMAGE, 0);   // 0: any dimension
 *     L2Record rec;
 *     while (l2_stream_next(r, &rec)) use(rec.key, rec.vec);
 *     l2_stream_close(r);
 */
#ifndef L2_STREAM_H
#define L2_STREAM_H

#include <stdint.h>
#include <stdio.h>
#include "core/util.h"

#define L2FS_MAGIC "L2FS"
#define L2FS_VERSION 1
#define L2FS_HEADER_SIZE 64
#define L2FS_UNTIL_END UINT64_MAX
#define L2FS_MAX_KEY (1u << 20) /* keys longer than 1 MiB are corrupt input */
#define L2FS_MAX_DIM (1u << 20)
#define L2FS_MAX_K 65536

enum { L2_DTYPE_F32 = 1, L2_DTYPE_F16 = 2 };
enum { L2FS_NORMALIZED = 1u << 0 }; /* every vector has unit L2 norm */
#define L2FS_KNOWN_FLAGS (L2FS_NORMALIZED)

#define L2_KIND_IMAGE "image-feature"
#define L2_KIND_TEXT "text-feature"
#define L2_KIND_PSEUDO "pseudo-text-feature"
#define L2_KIND_NEIGHBORS "neighbors"

typedef struct {
	uint16_t version, dtype;
	uint32_t dim, flags;
	uint64_t count; /* records in this segment, or L2FS_UNTIL_END */
	char kind[25];  /* NUL-terminated */
	uint32_t k;     /* neighbours per record (kind "neighbors"), else 0 */
} L2StreamHeader;

/* One record as read.  Pointers belong to the reader and stay valid until
 * the next l2_stream_next() call. */
typedef struct {
	const char *key;      /* NUL-terminated UTF-8 (keys contain no NUL) */
	uint32_t key_len;
	const float *vec;     /* (dim) — the query feature for "neighbors" */
	/* "neighbors" only: */
	uint32_t k;
	const char *const *nkey; /* (k) neighbour keys */
	const uint32_t *nkey_len; /* (k) */
	const float *nscore;  /* (k) similarity scores, best first */
	const float *nvec;    /* (k, dim) neighbour features */
} L2Record;

typedef struct L2StreamReader L2StreamReader;

/* Open PATH ("-" = stdin) and read the first header.  Input with no header
 * at all (empty) is an error. */
L2StreamReader *l2_stream_open(const char *path);
/* Same over an already open FILE; `name` is used in messages. */
L2StreamReader *l2_stream_open_fp(FILE *f, const char *name);
const L2StreamHeader *l2_stream_header(const L2StreamReader *r);
const char *l2_stream_name(const L2StreamReader *r);
/* Die unless the stream has this kind (NULL: any) and dimension (0: any).
 * The message names what was expected and what came. */
void l2_stream_expect(const L2StreamReader *r, const char *kind, uint32_t dim);
/* Next record; 0 at the end of the stream.  Follows into concatenated
 * segments, checking that kind, dimension and k agree. */
int l2_stream_next(L2StreamReader *r, L2Record *rec);
/* Records read so far (all segments). */
uint64_t l2_stream_records_read(const L2StreamReader *r);
/* 1 if every segment read so far carried L2FS_NORMALIZED. */
int l2_stream_normalized(const L2StreamReader *r);
void l2_stream_close(L2StreamReader *r);

/* Parse/serialise a header (64 bytes).  parse returns NULL on success or a
 * static message describing what is wrong. */
const char *l2_stream_header_parse(const unsigned char *buf, L2StreamHeader *h);
void l2_stream_header_pack(const L2StreamHeader *h, unsigned char *buf);

typedef struct L2StreamWriter L2StreamWriter;

/* Create PATH ("-" = stdout, refused on a terminal) and write the header.
 * Files appear atomically at l2_stream_writer_close().  count may be
 * L2FS_UNTIL_END; if it is a number, exactly that many records must follow. */
L2StreamWriter *l2_stream_create(const char *path, const char *kind, uint32_t dim, uint32_t flags,
				 uint32_t k, uint64_t count);
/* Same, with f16 storage (values are rounded to half precision). */
L2StreamWriter *l2_stream_create_dtype(const char *path, const char *kind, uint32_t dim, uint32_t flags,
				       uint32_t k, uint64_t count, uint16_t dtype);
void l2_stream_write(L2StreamWriter *w, const char *key, const float *vec);
void l2_stream_write_len(L2StreamWriter *w, const char *key, uint32_t key_len, const float *vec);
/* "neighbors": query key and feature, then k neighbours (keys, scores,
 * features (k, dim)). */
void l2_stream_write_neighbors(L2StreamWriter *w, const char *key, const float *qvec, uint32_t k,
			       const char *const *nkeys, const float *scores, const float *nvecs);
uint64_t l2_stream_records_written(const L2StreamWriter *w);
void l2_stream_writer_close(L2StreamWriter *w);

/* Vectors of a NORMALIZED stream have norm 1 within this (float16 rounding
 * moves it by ~1e-3). */
#define L2FS_NORM_TOLERANCE 1e-2
/* NULL when v (d) is finite (and of unit norm when normalized), else what
 * is wrong, written into buf ("value 3 is NaN", "flagged normalized, but
 * its norm is 33.9").  Readers refuse such records, and writers refuse to
 * write them, naming the record. */
const char *l2_vec_problem(const float *v, uint32_t d, int normalized, char *buf, size_t n);

#endif
