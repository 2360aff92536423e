/* npz.c — NumPy .npz archives (npz.h): zip files whose members are .npy
 * arrays, stored (np.savez) or deflated (np.savez_compressed).  The reader
 * walks the central directory, zip64 records and extra fields included
 * (numpy asks zipfile for zip64 local headers), and checks every CRC.  The
 * writer writes plain zip (members < 4 GiB). */
#include "io/npz.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u

typedef struct {
	const unsigned char *buf;
	size_t len;
	const char *path;
} Zip;

static void need(const Zip *z, uint64_t off, uint64_t n, const char *what)
{
	if (off > z->len || n > z->len - off) l2_die("%s: corrupt .npz (zip) archive: %s out of bounds", z->path, what);
}

/* Locate the central directory: *off, *count. */
static void central_dir(const Zip *z, uint64_t *off, uint64_t *count)
{
	if (z->len < 22) l2_die("%s: not a .npz archive (too short for a zip file)", z->path);
	size_t lo = z->len > 22 + 65535 ? z->len - 22 - 65535 : 0, e = z->len - 22 + 1;
	const unsigned char *p = NULL;
	while (e-- > lo)
		if (l2_le32(z->buf + e) == SIG_EOCD) { p = z->buf + e; break; }
	if (!p) {
		if (z->len >= 4 && l2_le32(z->buf) == SIG_LOCAL)
			l2_die("%s: truncated .npz archive (no end of central directory)", z->path);
		l2_die("%s: not a .npz archive (no zip end record)", z->path);
	}
	*count = l2_le16(p + 10);
	uint64_t size = l2_le32(p + 12);
	*off = l2_le32(p + 16);
	if ((*count == 0xffff || *off == 0xffffffffu || size == 0xffffffffu) && e >= 20 &&
	    l2_le32(z->buf + e - 20) == SIG_LOC64) {
		uint64_t o64 = l2_le64(z->buf + e - 20 + 8);
		need(z, o64, 56, "zip64 end record");
		if (l2_le32(z->buf + o64) != SIG_EOCD64) l2_die("%s: corrupt .npz archive (bad zip64 end record)", z->path);
		*count = l2_le64(z->buf + o64 + 32);
		*off = l2_le64(z->buf + o64 + 48);
	}
}

/* Read one member (decompressed, CRC checked) into a malloc'd buffer. */
static unsigned char *member_data(const Zip *z, const unsigned char *c, size_t *out_len, const char *mname)
{
	unsigned method = l2_le16(c + 10), flags = l2_le16(c + 8);
	uint32_t crc = l2_le32(c + 16);
	uint64_t csize = l2_le32(c + 20), usize = l2_le32(c + 24), loff = l2_le32(c + 42);
	unsigned nlen = l2_le16(c + 28), xlen = l2_le16(c + 30);
	/* zip64 extra: the fields that overflowed, in the order usize, csize, offset */
	const unsigned char *x = c + 46 + nlen, *xe = x + xlen;
	while (x + 4 <= xe) {
		unsigned id = l2_le16(x), sz = l2_le16(x + 2);
		const unsigned char *v = x + 4;
		if (v + sz > xe) break;
		if (id == 0x0001) {
			const unsigned char *q = v;
			if (usize == 0xffffffffu && q + 8 <= v + sz) usize = l2_le64(q), q += 8;
			if (csize == 0xffffffffu && q + 8 <= v + sz) csize = l2_le64(q), q += 8;
			if (loff == 0xffffffffu && q + 8 <= v + sz) loff = l2_le64(q), q += 8;
		}
		x = v + sz;
	}
	if (flags & 1) l2_die("%s: member %s is encrypted", z->path, mname);
	need(z, loff, 30, "local header");
	const unsigned char *l = z->buf + loff;
	if (l2_le32(l) != SIG_LOCAL) l2_die("%s: corrupt .npz archive (bad local header of %s)", z->path, mname);
	uint64_t doff = loff + 30 + l2_le16(l + 26) + l2_le16(l + 28);
	need(z, doff, csize, "member data");
	/* the sizes are the archive's word: check them against the bytes there
	 * before allocating (deflate expands at most 1032:1) */
	if (method != 0 && method != 8)
		l2_die("%s: member %s uses zip compression method %u (only stored and deflated are read)", z->path, mname, method);
	if (method == 0 && csize != usize)
		l2_die("%s: corrupt .npz archive (stored member %s changes size)", z->path, mname);
	if (method == 8 && usize / 1032 > csize + 1)
		l2_die("%s: corrupt .npz archive (member %s claims %llu bytes from %llu compressed)", z->path, mname,
		       (unsigned long long)usize, (unsigned long long)csize);
	if (usize > ((uint64_t)1 << 40)) l2_die("%s: member %s is implausibly large", z->path, mname);
	unsigned char *out = l2_malloc(usize ? (size_t)usize : 1);
	if (method == 0) {
		memcpy(out, z->buf + doff, (size_t)usize);
	} else {
		z_stream s;
		memset(&s, 0, sizeof s);
		if (inflateInit2(&s, -MAX_WBITS) != Z_OK) l2_die("%s: zlib inflateInit failed", z->path);
		s.next_in = (unsigned char *)(z->buf + doff);
		s.next_out = out;
		uint64_t in_left = csize, out_left = usize;
		int rc;
		do { /* feed zlib's 32-bit counters in pieces */
			if (!s.avail_in) {
				s.avail_in = in_left > (1u << 30) ? 1u << 30 : (unsigned)in_left;
				in_left -= s.avail_in;
			}
			if (!s.avail_out) {
				s.avail_out = out_left > (1u << 30) ? 1u << 30 : (unsigned)out_left;
				out_left -= s.avail_out;
			}
			rc = inflate(&s, Z_NO_FLUSH);
		} while (rc == Z_OK);
		uint64_t out_done = s.total_out;
		inflateEnd(&s);
		if (rc != Z_STREAM_END || out_done != usize)
			l2_die("%s: corrupt .npz archive (member %s does not inflate)", z->path, mname);
	}
	uLong cc = crc32(0L, Z_NULL, 0);
	for (uint64_t o = 0; o < usize; o += 1u << 30) {
		uint64_t n = usize - o > (1u << 30) ? 1u << 30 : usize - o;
		cc = crc32(cc, out + o, (uInt)n);
	}
	if ((uint32_t)cc != crc) l2_die("%s: corrupt .npz archive (CRC mismatch in %s)", z->path, mname);
	*out_len = (size_t)usize;
	return out;
}

int l2_npz_read(const char *path, const char *name, L2Npy *a)
{
	size_t len;
	unsigned char *buf = (unsigned char *)l2_read_file(path, &len);
	Zip z = {buf, len, path};
	uint64_t off, count;
	central_dir(&z, &off, &count);
	char want[512];
	snprintf(want, sizeof want, "%s.npy", name);
	size_t wl = strlen(want);
	int found = 0;
	for (uint64_t i = 0; i < count; i++) {
		need(&z, off, 46, "central directory");
		const unsigned char *c = buf + off;
		if (l2_le32(c) != SIG_CENTRAL) l2_die("%s: corrupt .npz archive (bad central directory entry)", path);
		unsigned nlen = l2_le16(c + 28), xlen = l2_le16(c + 30), clen = l2_le16(c + 32);
		need(&z, off + 46, (uint64_t)nlen + xlen + clen, "central directory entry");
		if (nlen == wl && !memcmp(c + 46, want, wl)) {
			size_t mlen;
			unsigned char *data = member_data(&z, c, &mlen, want);
			char label[1024];
			snprintf(label, sizeof label, "%s: member %s", path, want);
			l2_npy_parse(data, mlen, label, a);
			free(data);
			found = 1;
			break;
		}
		off += 46 + (uint64_t)nlen + xlen + clen;
	}
	free(buf);
	return found;
}

/* ---- writer ------------------------------------------------------------------------- */

void l2_npz_write(const char *path, const L2NpzMember *m, int n, int compress)
{
	L2OFile *o = l2_ofile_open(path, 1);
	unsigned char *cdir = NULL;
	size_t cdlen = 0;
	uint64_t off = 0;
	for (int i = 0; i < n; i++) {
		size_t ulen, clen;
		unsigned char *raw = l2_npy_serialize(m[i].data, m[i].is_f64, m[i].ndim, m[i].shape, &ulen);
		unsigned char *data = raw;
		uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), raw, (uInt)ulen);
		if (ulen >= 0xffffffffu) l2_die("%s: member %s too large for a plain zip archive", path, m[i].name);
		if (compress) {
			z_stream s;
			memset(&s, 0, sizeof s);
			if (deflateInit2(&s, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
				l2_die("zlib deflateInit failed");
			size_t bound = deflateBound(&s, (uLong)ulen);
			data = l2_malloc(bound);
			s.next_in = raw;
			s.avail_in = (uInt)ulen;
			s.next_out = data;
			s.avail_out = (uInt)bound;
			if (deflate(&s, Z_FINISH) != Z_STREAM_END) l2_die("zlib deflate failed");
			clen = s.total_out;
			deflateEnd(&s);
		} else {
			clen = ulen;
		}
		char fname[512];
		snprintf(fname, sizeof fname, "%s.npy", m[i].name);
		size_t nl = strlen(fname);
		unsigned method = compress ? 8 : 0;
		unsigned char lh[30];
		l2_put_le32(lh, SIG_LOCAL);
		l2_put_le16(lh + 4, 20);
		l2_put_le16(lh + 6, 0);
		l2_put_le16(lh + 8, (uint16_t)method);
		l2_put_le16(lh + 10, 0);      /* time 00:00 */
		l2_put_le16(lh + 12, 0x21);   /* date 1980-01-01 */
		l2_put_le32(lh + 14, crc);
		l2_put_le32(lh + 18, (uint32_t)clen);
		l2_put_le32(lh + 22, (uint32_t)ulen);
		l2_put_le16(lh + 26, (uint16_t)nl);
		l2_put_le16(lh + 28, 0);
		if (off > 0xffffffffu - 30) l2_die("%s: archive too large for a plain zip archive", path);
		l2_ofile_write(o, lh, 30);
		l2_ofile_write(o, fname, nl);
		l2_ofile_write(o, data, clen);
		cdir = l2_realloc(cdir, cdlen + 46 + nl);
		unsigned char *c = cdir + cdlen;
		l2_put_le32(c, SIG_CENTRAL);
		l2_put_le16(c + 4, 20);
		l2_put_le16(c + 6, 20);
		memcpy(c + 8, lh + 6, 24); /* flags .. name length, as in the local header */
		l2_put_le16(c + 30, 0);
		l2_put_le16(c + 32, 0);
		l2_put_le16(c + 34, 0);
		l2_put_le16(c + 36, 0);
		l2_put_le32(c + 38, 0644u << 16);
		l2_put_le32(c + 42, (uint32_t)off);
		memcpy(c + 46, fname, nl);
		cdlen += 46 + nl;
		off += 30 + nl + clen;
		if (data != raw) free(data);
		free(raw);
	}
	if (off > 0xffffffffu) l2_die("%s: archive too large for a plain zip archive", path);
	l2_ofile_write(o, cdir, cdlen);
	unsigned char e[22];
	l2_put_le32(e, SIG_EOCD);
	l2_put_le16(e + 4, 0);
	l2_put_le16(e + 6, 0);
	l2_put_le16(e + 8, (uint16_t)n);
	l2_put_le16(e + 10, (uint16_t)n);
	l2_put_le32(e + 12, (uint32_t)cdlen);
	l2_put_le32(e + 16, (uint32_t)off);
	l2_put_le16(e + 20, 0);
	l2_ofile_write(o, e, 22);
	free(cdir);
	l2_ofile_commit(o);
}
