/* npy.c — NumPy .npy read/write (see npy.h; format described in
 * numpy/lib/format.py: magic, version, header length, a Python dict literal
 * padded to 64 bytes, raw data). */
#include "io/npy.h"
#include "core/util.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

size_t l2_npy_count(const L2Npy *a)
{
	size_t n = 1;
	for (int i = 0; i < a->ndim; i++) n = l2_mul_size(n, a->shape[i]);
	return n;
}

void l2_npy_free(L2Npy *a)
{
	free(a->data);
	a->data = NULL;
}

/* Find 'key': in the dict text and return a pointer just after the colon. */
static const char *dict_value(const char *d, const char *key)
{
	char pat[32];
	snprintf(pat, sizeof pat, "'%s'", key);
	const char *p = strstr(d, pat);
	if (!p) return NULL;
	p += strlen(pat);
	while (*p == ' ') p++;
	if (*p != ':') return NULL;
	p++;
	while (*p == ' ') p++;
	return p;
}

void l2_npy_parse(const unsigned char *buf, size_t len, const char *name, L2Npy *a)
{
	memset(a, 0, sizeof *a);
	if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) l2_die("%s: not a NumPy .npy file (bad magic)", name);
	int major = buf[6];
	size_t hlen, off;
	if (major == 1) { hlen = l2_le16(buf + 8); off = 10; }
	else if (major == 2 || major == 3) {
		if (len < 12) l2_die("%s: truncated .npy header", name);
		hlen = l2_le32(buf + 8); off = 12;
	} else l2_die("%s: unsupported .npy format version %d", name, major);
	if (hlen > len - off) l2_die("%s: truncated .npy header", name);
	char *d = l2_malloc(hlen + 1);
	memcpy(d, buf + off, hlen);
	d[hlen] = 0;
	const char *v = dict_value(d, "descr");
	if (!v) l2_die("%s: .npy header has no 'descr'", name);
	if (!strncmp(v, "'<f4'", 5)) a->is_f64 = 0;
	else if (!strncmp(v, "'<f8'", 5)) a->is_f64 = 1;
	else {
		size_t n = strcspn(v, ",}");
		char q[64];
		l2_die("%s: unsupported .npy element type %s (expected float32 '<f4' or float64 '<f8')", name,
		       l2_escape(q, sizeof q, v, n));
	}
	v = dict_value(d, "fortran_order");
	if (!v) l2_die("%s: .npy header has no 'fortran_order'", name);
	if (!strncmp(v, "True", 4)) l2_die("%s: Fortran-ordered .npy arrays are not supported (save with np.ascontiguousarray)", name);
	v = dict_value(d, "shape");
	if (!v || *v != '(') l2_die("%s: .npy header has no 'shape'", name);
	v++;
	for (;;) {
		while (*v == ' ' || *v == ',') v++;
		if (*v == ')') break;
		char *end;
		if (*v == '-') l2_die("%s: malformed .npy shape: a negative dimension", name);
		errno = 0;
		unsigned long long s = strtoull(v, &end, 10);
		if (end == v || a->ndim == 8) l2_die("%s: malformed .npy shape", name);
		if (errno == ERANGE || s > SIZE_MAX) l2_die("%s: malformed .npy shape: a dimension too large", name);
		a->shape[a->ndim++] = (size_t)s;
		v = end;
		while (*v == 'L') v++;
	}
	free(d);
	size_t n = 1, es = a->is_f64 ? 8 : 4, bytes;
	for (int i = 0; i < a->ndim; i++)
		if (a->shape[i] && n > SIZE_MAX / a->shape[i]) l2_die("%s: .npy shape too large to exist", name);
		else n *= a->shape[i];
	if (n > SIZE_MAX / es) l2_die("%s: .npy shape too large to exist", name);
	bytes = n * es;
	off += hlen;
	if (len - off < bytes)
		l2_die("%s: truncated .npy data: shape needs %zu bytes, file has %zu", name, bytes, len - off);
	a->data = l2_malloc(bytes);
	memcpy(a->data, buf + off, bytes); /* little-endian host */
}

void l2_npy_read(const char *path, L2Npy *a)
{
	size_t len;
	char *buf = l2_read_file(path, &len);
	l2_npy_parse((unsigned char *)buf, len, path, a);
	free(buf);
}

unsigned char *l2_npy_serialize(const void *data, int is_f64, int ndim, const size_t *shape, size_t *len)
{
	char dict[512], sh[256] = "";
	size_t n = 1, o = 0;
	for (int i = 0; i < ndim; i++) {
		o += (size_t)snprintf(sh + o, sizeof sh - o, "%zu,%s", shape[i], ndim > 1 && i < ndim - 1 ? " " : "");
		n = l2_mul_size(n, shape[i]);
	}
	if (ndim > 1) sh[o - 1] = 0; /* "(3, 4)" not "(3, 4,)"; 1-d keeps "(3,)" */
	int dl = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
			  is_f64 ? "<f8" : "<f4", sh);
	size_t total = 10 + (size_t)dl + 1, pad = (64 - total % 64) % 64, hlen = (size_t)dl + pad + 1;
	size_t bytes = l2_mul_size(n, is_f64 ? 8 : 4);
	unsigned char *b = l2_malloc(10 + hlen + bytes);
	memcpy(b, "\x93NUMPY\x01\x00", 8);
	l2_put_le16(b + 8, (uint16_t)hlen);
	memcpy(b + 10, dict, (size_t)dl);
	memset(b + 10 + dl, ' ', pad);
	b[10 + hlen - 1] = '\n';
	memcpy(b + 10 + hlen, data, bytes);
	*len = 10 + hlen + bytes;
	return b;
}

void l2_npy_write(const char *path, const void *data, int is_f64, int ndim, const size_t *shape)
{
	size_t len;
	unsigned char *b = l2_npy_serialize(data, is_f64, ndim, shape, &len);
	L2OFile *o = l2_ofile_open(path, 1);
	l2_ofile_write(o, b, len);
	l2_ofile_commit(o);
	free(b);
}
