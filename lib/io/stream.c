/* stream.c — reading and writing l2 feature streams (schemas/l2fs.md). */
#include "io/stream.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- header ------------------------------------------------------------------ */

static int kind_char_ok(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'; }

const char *l2_stream_header_parse(const unsigned char *b, L2StreamHeader *h)
{
	if (memcmp(b, L2FS_MAGIC, 4) != 0) return "not an l2 feature stream (bad magic: expected \"L2FS\")";
	memset(h, 0, sizeof *h);
	h->version = l2_le16(b + 4);
	h->dtype = l2_le16(b + 6);
	h->dim = l2_le32(b + 8);
	h->flags = l2_le32(b + 12);
	h->count = l2_le64(b + 16);
	memcpy(h->kind, b + 24, 24);
	h->kind[24] = 0;
	h->k = l2_le32(b + 48);
	if (h->version != L2FS_VERSION) return "unsupported stream version (this l2 reads version 1)";
	if (h->dtype != L2_DTYPE_F32 && h->dtype != L2_DTYPE_F16) return "unknown element type (expected 1 = f32 or 2 = f16)";
	if (h->dim == 0 || h->dim > L2FS_MAX_DIM) return "invalid dimension (expected 1..1048576)";
	if (h->flags & ~L2FS_KNOWN_FLAGS) return "unknown flags set (written by a newer l2?)";
	size_t n = strnlen(h->kind, 24);
	if (n == 0) return "empty kind";
	for (size_t i = 0; i < 24; i++)
		if (i < n ? !kind_char_ok(b[24 + i]) : b[24 + i] != 0) return "malformed kind field";
	int nb = !strcmp(h->kind, L2_KIND_NEIGHBORS);
	if (nb && (h->k == 0 || h->k > L2FS_MAX_K)) return "neighbors stream with invalid k (expected 1..65536)";
	if (!nb && h->k != 0) return "k set on a stream that is not of kind neighbors";
	for (int i = 52; i < 64; i++)
		if (b[i]) return "reserved header bytes are not zero (written by a newer l2?)";
	return NULL;
}

void l2_stream_header_pack(const L2StreamHeader *h, unsigned char *b)
{
	memset(b, 0, L2FS_HEADER_SIZE);
	memcpy(b, L2FS_MAGIC, 4);
	l2_put_le16(b + 4, h->version ? h->version : L2FS_VERSION);
	l2_put_le16(b + 6, h->dtype);
	l2_put_le32(b + 8, h->dim);
	l2_put_le32(b + 12, h->flags);
	l2_put_le64(b + 16, h->count);
	size_t n = strnlen(h->kind, 24);
	memcpy(b + 24, h->kind, n);
	l2_put_le32(b + 48, h->k);
}

/* ---- reader --------------------------------------------------------------------- */

struct L2StreamReader {
	FILE *f;
	char *name;
	L2StreamHeader h, first;
	uint64_t in_segment, total, segments;
	int normalized, eof;
	/* record buffers */
	char *key;
	size_t key_cap;
	float *vec;
	unsigned char *raw; /* dim * elem-size scratch for conversion */
	/* neighbors */
	char **nkey;
	size_t *nkey_cap;
	uint32_t *nkey_len;
	float *nscore, *nvec;
	size_t nvec_cap; /* floats allocated in nvec: grown as neighbours arrive */
	L2Held held; /* from open to close (util.h): the file */
};

static void read_header_rest(L2StreamReader *r, const unsigned char first4[4])
{
	unsigned char b[L2FS_HEADER_SIZE];
	memcpy(b, first4, 4);
	size_t got = fread(b + 4, 1, L2FS_HEADER_SIZE - 4, r->f);
	if (got < L2FS_HEADER_SIZE - 4) {
		if (ferror(r->f)) l2_die_errno("%s: reading stream header", r->name);
		l2_die("%s: truncated input: stream header needs %d bytes, only %zu left", r->name, L2FS_HEADER_SIZE,
		       got + 4);
	}
	L2StreamHeader h;
	const char *err = l2_stream_header_parse(b, &h);
	if (err) l2_die("%s: %s", r->name, err);
	if (r->segments) {
		if (strcmp(h.kind, r->first.kind) || h.dim != r->first.dim || h.k != r->first.k)
		{
			char ka[24] = "", kb[24] = "";
			if (r->first.k) snprintf(ka, sizeof ka, " k %u", r->first.k);
			if (h.k) snprintf(kb, sizeof kb, " k %u", h.k);
			l2_die("%s: concatenated segment %llu does not match the first: expected %s dim %u%s, got %s dim %u%s",
			       r->name, (unsigned long long)r->segments + 1, r->first.kind, r->first.dim, ka, h.kind, h.dim,
			       kb);
		}
	} else
		r->first = h;
	if (!(h.flags & L2FS_NORMALIZED)) r->normalized = 0;
	r->h = h;
	r->segments++;
	r->in_segment = 0;
}

static void stream_release(void *r) { l2_stream_close(r); }

L2StreamReader *l2_stream_open_fp(FILE *f, const char *name)
{
	L2StreamReader *r = l2_calloc(1, sizeof *r);
	l2_hold(&r->held, stream_release, r);
	r->f = f;
	r->name = l2_strdup(name);
	r->normalized = 1;
	unsigned char m[4];
	size_t got = fread(m, 1, 4, f);
	if (got == 0 && ferror(f)) l2_die_errno("%s", name); /* closed (EBADF), a directory (EISDIR) ... */
	if (got == 0) l2_die("%s: empty input, expected an l2 feature stream", name);
	if (got < 4) l2_die("%s: truncated input: stream header needs 64 bytes, only %zu left", name, got);
	read_header_rest(r, m);
	uint32_t d = r->h.dim;
	r->vec = l2_malloc(l2_mul_size(d, sizeof(float)));
	r->raw = l2_malloc(l2_mul_size(d, 4));
	if (r->h.k) {
		uint32_t k = r->h.k;
		r->nkey = l2_calloc(k, sizeof *r->nkey);
		r->nkey_cap = l2_calloc(k, sizeof *r->nkey_cap);
		r->nkey_len = l2_calloc(k, sizeof *r->nkey_len);
		r->nscore = l2_calloc(k, sizeof(float));
		/* nvec (k x dim floats, up to 256 GiB by the header's limits) is
		 * allocated as the neighbours' bytes arrive, not on the header's word */
	}
	return r;
}

L2StreamReader *l2_stream_open(const char *path)
{
	FILE *f = l2_fopen_read(path);
	return l2_stream_open_fp(f, strcmp(path, "-") ? path : "standard input");
}

const L2StreamHeader *l2_stream_header(const L2StreamReader *r) { return &r->first; }
const char *l2_stream_name(const L2StreamReader *r) { return r->name; }
uint64_t l2_stream_records_read(const L2StreamReader *r) { return r->total; }
int l2_stream_normalized(const L2StreamReader *r) { return r->normalized; }

void l2_stream_expect(const L2StreamReader *r, const char *kind, uint32_t dim)
{
	const L2StreamHeader *h = &r->first;
	if ((kind && strcmp(kind, h->kind)) || (dim && dim != h->dim)) {
		if (dim) l2_die("%s: expected %s dim %u, got %s dim %u", r->name, kind ? kind : h->kind, dim, h->kind, h->dim);
		l2_die("%s: expected a %s stream, got %s dim %u", r->name, kind, h->kind, h->dim);
	}
}

static void read_key(L2StreamReader *r, uint32_t len, char **buf, size_t *cap, const char *what)
{
	if (len > L2FS_MAX_KEY)
		l2_die("%s: corrupt stream: %s length %u exceeds the 1 MiB limit (record %llu)", r->name, what, len,
		       (unsigned long long)r->total + 1);
	if (*cap < (size_t)len + 1) {
		*cap = (size_t)len + 1 > 64 ? (size_t)len + 1 : 64;
		*buf = l2_realloc(*buf, *cap);
	}
	l2_read_exact(r->f, *buf, len, r->name, what);
	(*buf)[len] = 0;
	if (memchr(*buf, 0, len)) l2_die("%s: corrupt stream: %s contains a NUL byte (record %llu)", r->name, what,
					(unsigned long long)r->total + 1);
}

static void read_vec(L2StreamReader *r, float *out, const char *what)
{
	uint32_t d = r->h.dim;
	if (r->h.dtype == L2_DTYPE_F32) {
		l2_read_exact(r->f, r->raw, (size_t)d * 4, r->name, what);
		for (uint32_t i = 0; i < d; i++) {
			uint32_t u = l2_le32(r->raw + 4 * i);
			memcpy(out + i, &u, 4);
		}
	} else {
		l2_read_exact(r->f, r->raw, (size_t)d * 2, r->name, what);
		for (uint32_t i = 0; i < d; i++) out[i] = l2_half_to_float(l2_le16(r->raw + 2 * i));
	}
}

const char *l2_vec_problem(const float *v, uint32_t d, int normalized, char *buf, size_t n)
{
	double ss = 0;
	for (uint32_t i = 0; i < d; i++) {
		if (!isfinite(v[i])) {
			snprintf(buf, n, "value %u is %s", i, isnan(v[i]) ? "NaN" : "infinite");
			return buf;
		}
		ss += (double)v[i] * v[i];
	}
	if (normalized && fabs(sqrt(ss) - 1) > L2FS_NORM_TOLERANCE) {
		snprintf(buf, n, "flagged normalized, but its norm is %.6g", sqrt(ss));
		return buf;
	}
	return NULL;
}

/* A record's vectors must be finite, and of unit norm in a segment flagged
 * NORMALIZED: a reader can only take anything else as damage (a search
 * would rank by a cosine of 10.8, a generator draw black images). */
static void check_vec(L2StreamReader *r, const float *v, const char *key, const char *what)
{
	char msg[96], k[80];
	if (l2_vec_problem(v, r->h.dim, (r->h.flags & L2FS_NORMALIZED) != 0, msg, sizeof msg))
		l2_die("%s: record %llu ('%s'): %s: %s", r->name, (unsigned long long)r->total + 1,
		       l2_escape(k, sizeof k, key, strlen(key)), what, msg);
}

static uint32_t read_u32(L2StreamReader *r, const char *what)
{
	unsigned char b[4];
	l2_read_exact(r->f, b, 4, r->name, what);
	return l2_le32(b);
}

int l2_stream_next(L2StreamReader *r, L2Record *rec)
{
	if (r->eof) return 0;
	unsigned char b[4];
	uint32_t key_len;
	for (;;) {
		int counted = r->h.count != L2FS_UNTIL_END;
		size_t got = fread(b, 1, 4, r->f);
		if (got == 0) {
			if (ferror(r->f)) l2_die_errno("%s: read error", r->name);
			if (counted && r->in_segment < r->h.count)
				l2_die("%s: truncated input: header promised %llu records, stream ended after %llu",
				       r->name, (unsigned long long)r->h.count, (unsigned long long)r->in_segment);
			r->eof = 1;
			return 0;
		}
		if (got < 4) l2_die("%s: truncated input: record %llu is cut short", r->name, (unsigned long long)r->total + 1);
		if (!memcmp(b, L2FS_MAGIC, 4) && (!counted || r->in_segment == r->h.count)) {
			if (counted && r->in_segment < r->h.count)
				l2_die("%s: truncated segment: header promised %llu records, got %llu", r->name,
				       (unsigned long long)r->h.count, (unsigned long long)r->in_segment);
			read_header_rest(r, b);
			continue;
		}
		if (counted && r->in_segment == r->h.count)
			l2_die("%s: unexpected data after the %llu records the header promised (expected end of input or another header)",
			       r->name, (unsigned long long)r->h.count);
		key_len = l2_le32(b);
		break;
	}
	read_key(r, key_len, &r->key, &r->key_cap, "record key");
	read_vec(r, r->vec, "record vector");
	check_vec(r, r->vec, r->key, "vector");
	memset(rec, 0, sizeof *rec);
	rec->key = r->key;
	rec->key_len = key_len;
	rec->vec = r->vec;
	if (r->h.k) {
		uint32_t d = r->h.dim;
		for (uint32_t j = 0; j < r->h.k; j++) {
			uint32_t nl = read_u32(r, "neighbor key length");
			read_key(r, nl, &r->nkey[j], &r->nkey_cap[j], "neighbor key");
			r->nkey_len[j] = nl;
			uint32_t s = read_u32(r, "neighbor score");
			memcpy(&r->nscore[j], &s, 4);
			if ((size_t)(j + 1) * d > r->nvec_cap) {
				size_t cap = r->nvec_cap ? 2 * r->nvec_cap : d;
				if (cap > (size_t)r->h.k * d) cap = (size_t)r->h.k * d;
				r->nvec = l2_realloc(r->nvec, l2_mul_size(cap, sizeof(float)));
				r->nvec_cap = cap;
			}
			read_vec(r, r->nvec + (size_t)j * d, "neighbor vector");
			if (!isfinite(r->nscore[j])) {
				char k[80];
				l2_die("%s: record %llu ('%s'): the score of neighbour %u is not finite", r->name,
				       (unsigned long long)r->total + 1, l2_escape(k, sizeof k, r->key, key_len), j + 1);
			}
			char what[40];
			snprintf(what, sizeof what, "neighbour %u", j + 1);
			check_vec(r, r->nvec + (size_t)j * d, r->key, what);
		}
		rec->k = r->h.k;
		rec->nkey = (const char *const *)r->nkey;
		rec->nkey_len = r->nkey_len;
		rec->nscore = r->nscore;
		rec->nvec = r->nvec;
	}
	r->in_segment++;
	r->total++;
	return 1;
}

void l2_stream_close(L2StreamReader *r)
{
	if (!r) return;
	l2_unhold(&r->held);
	if (r->f != stdin) fclose(r->f);
	if (r->nkey)
		for (uint32_t j = 0; j < r->first.k; j++) free(r->nkey[j]);
	free(r->nkey);
	free(r->nkey_cap);
	free(r->nkey_len);
	free(r->nscore);
	free(r->nvec);
	free(r->key);
	free(r->vec);
	free(r->raw);
	free(r->name);
	free(r);
}

/* ---- writer ---------------------------------------------------------------------- */

struct L2StreamWriter {
	L2OFile *o;
	L2StreamHeader h;
	uint64_t written;
	unsigned char *raw;
};

L2StreamWriter *l2_stream_create_dtype(const char *path, const char *kind, uint32_t dim, uint32_t flags,
				       uint32_t k, uint64_t count, uint16_t dtype)
{
	L2StreamWriter *w = l2_calloc(1, sizeof *w);
	w->h.version = L2FS_VERSION;
	w->h.dtype = dtype;
	w->h.dim = dim;
	w->h.flags = flags;
	w->h.count = count;
	w->h.k = k;
	snprintf(w->h.kind, sizeof w->h.kind, "%s", kind);
	unsigned char b[L2FS_HEADER_SIZE];
	l2_stream_header_pack(&w->h, b);
	L2StreamHeader check;
	const char *err = l2_stream_header_parse(b, &check);
	if (err) l2_die("%s: cannot write a stream of kind '%s' dim %u: %s", path, kind, dim, err);
	w->o = l2_ofile_open(path, 1);
	w->raw = l2_malloc(l2_mul_size(dim, 4));
	l2_ofile_write(w->o, b, sizeof b);
	return w;
}

L2StreamWriter *l2_stream_create(const char *path, const char *kind, uint32_t dim, uint32_t flags, uint32_t k,
				 uint64_t count)
{
	return l2_stream_create_dtype(path, kind, dim, flags, k, count, L2_DTYPE_F32);
}

static void write_u32(L2StreamWriter *w, uint32_t v)
{
	unsigned char b[4];
	l2_put_le32(b, v);
	l2_ofile_write(w->o, b, 4);
}

static void write_vec(L2StreamWriter *w, const float *v)
{
	uint32_t d = w->h.dim;
	if (w->h.dtype == L2_DTYPE_F32) {
		for (uint32_t i = 0; i < d; i++) {
			uint32_t u;
			memcpy(&u, v + i, 4);
			l2_put_le32(w->raw + 4 * i, u);
		}
		l2_ofile_write(w->o, w->raw, (size_t)d * 4);
	} else {
		for (uint32_t i = 0; i < d; i++) l2_put_le16(w->raw + 2 * i, l2_float_to_half(v[i]));
		l2_ofile_write(w->o, w->raw, (size_t)d * 2);
	}
}

static void write_key(L2StreamWriter *w, const char *key, uint32_t len)
{
	if (len > L2FS_MAX_KEY) l2_die("%s: key of %u bytes exceeds the 1 MiB limit", l2_ofile_path(w->o), len);
	if (memchr(key, 0, len)) l2_die("%s: key contains a NUL byte", l2_ofile_path(w->o));
	write_u32(w, len);
	l2_ofile_write(w->o, key, len);
}

static void count_record(L2StreamWriter *w)
{
	if (w->h.count != L2FS_UNTIL_END && w->written >= w->h.count)
		l2_die("internal error: more records than the %llu announced in the header", (unsigned long long)w->h.count);
	w->written++;
}

/* What readers refuse is not written either: the message names the record
 * the tool was about to write. */
static void check_out(L2StreamWriter *w, const float *v, const char *key, size_t key_len, const char *what)
{
	char msg[96], k[80];
	if (l2_vec_problem(v, w->h.dim, (w->h.flags & L2FS_NORMALIZED) != 0, msg, sizeof msg))
		l2_die("%s: record %llu ('%s'): %s: %s", l2_ofile_path(w->o), (unsigned long long)w->written + 1,
		       l2_escape(k, sizeof k, key, key_len), what, msg);
}

void l2_stream_write_len(L2StreamWriter *w, const char *key, uint32_t key_len, const float *vec)
{
	if (w->h.k) l2_die("internal error: plain record written to a neighbors stream");
	check_out(w, vec, key, key_len, "vector");
	count_record(w);
	write_key(w, key, key_len);
	write_vec(w, vec);
}

void l2_stream_write(L2StreamWriter *w, const char *key, const float *vec)
{
	l2_stream_write_len(w, key, (uint32_t)strlen(key), vec);
}

void l2_stream_write_neighbors(L2StreamWriter *w, const char *key, const float *qvec, uint32_t k,
			       const char *const *nkeys, const float *scores, const float *nvecs)
{
	if (k != w->h.k) l2_die("internal error: %u neighbours written to a stream with k = %u", k, w->h.k);
	check_out(w, qvec, key, strlen(key), "vector");
	for (uint32_t j = 0; j < k; j++) {
		char what[40];
		snprintf(what, sizeof what, "neighbour %u", j + 1);
		if (!isfinite(scores[j])) {
			char kq[80];
			l2_die("%s: record %llu ('%s'): the score of %s is not finite", l2_ofile_path(w->o),
			       (unsigned long long)w->written + 1, l2_escape(kq, sizeof kq, key, strlen(key)), what);
		}
		check_out(w, nvecs + (size_t)j * w->h.dim, key, strlen(key), what);
	}
	count_record(w);
	write_key(w, key, (uint32_t)strlen(key));
	write_vec(w, qvec);
	for (uint32_t j = 0; j < k; j++) {
		write_key(w, nkeys[j], (uint32_t)strlen(nkeys[j]));
		uint32_t s;
		memcpy(&s, &scores[j], 4);
		write_u32(w, s);
		write_vec(w, nvecs + (size_t)j * w->h.dim);
	}
}

uint64_t l2_stream_records_written(const L2StreamWriter *w) { return w->written; }

void l2_stream_writer_close(L2StreamWriter *w)
{
	if (w->h.count != L2FS_UNTIL_END && w->written != w->h.count)
		l2_die("internal error: header announced %llu records, %llu written", (unsigned long long)w->h.count,
		       (unsigned long long)w->written);
	l2_ofile_commit(w->o);
	free(w->raw);
	free(w);
}
