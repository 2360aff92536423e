/* safetensors.c — reader (mmap, every offset bounds-checked) and atomic
 * writer for the safetensors weight format.  Layout and the rules checked
 * here: schemas/safetensors.md.  The JSON header is parsed with jansson. */
#include "io/safetensors.h"
#include "core/mapguard.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The reference implementation refuses headers above 100 MB. */
#define ST_MAX_HEADER 100000000ull
#define ST_MAX_DIMS 8

/* Every dtype the reference knows, so that files holding tensors l2 does
 * not use (int8, float8, ...) still open; they map to L2_ST_OTHER. */
static const struct { const char *name; int code; int size; } dtypes[] = {
	{"F32", L2_ST_F32, 4},   {"F16", L2_ST_F16, 2},     {"BF16", L2_ST_BF16, 2},   {"F64", L2_ST_F64, 8},
	{"I64", L2_ST_I64, 8},   {"I32", L2_ST_I32, 4},     {"U8", L2_ST_U8, 1},       {"BOOL", L2_ST_BOOL, 1},
	{"I8", L2_ST_OTHER, 1},  {"I16", L2_ST_OTHER, 2},   {"U16", L2_ST_OTHER, 2},   {"U32", L2_ST_OTHER, 4},
	{"U64", L2_ST_OTHER, 8}, {"F8_E4M3", L2_ST_OTHER, 1}, {"F8_E5M2", L2_ST_OTHER, 1},
};

static const char *dtype_name(int code)
{
	for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
		if (dtypes[i].code == code) return dtypes[i].name;
	return "?";
}

static int dtype_size(int code)
{
	for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
		if (dtypes[i].code == code) return dtypes[i].size;
	return 0;
}

typedef struct {
	char *key, *value;
} MetaEntry;

struct L2Safetensors {
	char *path;
	unsigned char *base; /* whole file (mapped, or read when not mappable) */
	size_t size;
	int mapped;
	int guard; /* core/mapguard handle of the map (a file cut short while in use) */
	int n;
	L2Tensor *t;   /* (n) in header order */
	int *sorted;   /* (n) indices sorted by name, for l2_st_find */
	int nmeta;
	MetaEntry *meta;
	json_t *root; /* while parsing */
	L2Held held;  /* from open to close (util.h): the mapping */
};

/* Close FD and die with errno's message. */
L2_NORETURN static void close_die_errno(int fd, const char *what, const char *path)
{
	int e = errno;
	close(fd);
	errno = e;
	l2_die_errno("%s%s", path, what);
}

static void load_file(L2Safetensors *st)
{
	int fd = open(st->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) l2_die_errno("%s", st->path);
	struct stat sb;
	if (fstat(fd, &sb) != 0) close_die_errno(fd, "", st->path);
	if (S_ISDIR(sb.st_mode)) {
		close(fd);
		l2_die("%s: is a directory, expected a .safetensors file", st->path);
	}
	if (S_ISREG(sb.st_mode)) {
		st->size = (size_t)sb.st_size;
		if (st->size > 0) {
			void *m = mmap(NULL, st->size, PROT_READ, MAP_PRIVATE, fd, 0);
			if (m == MAP_FAILED) close_die_errno(fd, ": cannot map file", st->path);
			st->base = m;
			st->mapped = 1;
			st->guard = l2_mapguard_add(m, st->size, st->path);
		}
	} else { /* a pipe or process substitution: read it whole */
		size_t cap = 1 << 16;
		st->base = l2_malloc(cap);
		for (;;) {
			if (st->size == cap) st->base = l2_realloc(st->base, cap *= 2);
			ssize_t r = read(fd, st->base + st->size, cap - st->size);
			if (r < 0 && errno == EINTR) continue;
			if (r < 0) close_die_errno(fd, "", st->path);
			if (r == 0) break;
			st->size += (size_t)r;
		}
	}
	close(fd);
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
	size_t o = 0;
	o += (size_t)snprintf(buf + o, n - o, "(");
	for (int i = 0; i < ndim && o < n; i++) {
		if (shape[i] < 0) o += (size_t)snprintf(buf + o, n - o, "%s*", i ? ", " : "");
		else o += (size_t)snprintf(buf + o, n - o, "%s%" PRId64, i ? ", " : "", shape[i]);
	}
	if (o < n) snprintf(buf + o, n - o, ndim == 1 ? ",)" : ")");
}

/* A JSON integer >= 0 (jansson keeps integers as json_int_t). */
static int get_uint(json_t *v, uint64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0) return 0;
	*out = (uint64_t)json_integer_value(v);
	return 1;
}

static const char *parse_tensor(L2Safetensors *st, json_t *info, L2Tensor *t, uint64_t *span,
				size_t data_len)
{
	static char why[256];
	if (!json_is_object(info)) return "expected an object {dtype, shape, data_offsets}";
	const char *k;
	json_t *v;
	json_object_foreach(info, k, v)
	if (strcmp(k, "dtype") && strcmp(k, "shape") && strcmp(k, "data_offsets")) {
		char q[80];
		snprintf(why, sizeof why, "unknown field \"%s\"", l2_escape(q, sizeof q, k, strlen(k)));
		return why;
	}
	json_t *dt = json_object_get(info, "dtype"), *sh = json_object_get(info, "shape"),
	       *off = json_object_get(info, "data_offsets");
	if (!json_is_string(dt)) return "missing or non-string \"dtype\"";
	if (!json_is_array(sh)) return "missing or non-array \"shape\"";
	if (!json_is_array(off) || json_array_size(off) != 2) return "\"data_offsets\" must be [begin, end]";
	int code = -1, esize = 0;
	for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
		if (!strcmp(json_string_value(dt), dtypes[i].name)) { code = dtypes[i].code; esize = dtypes[i].size; }
	if (code < 0) {
		char q[48];
		snprintf(why, sizeof why, "unknown dtype \"%s\"",
			 l2_escape(q, sizeof q, json_string_value(dt), strlen(json_string_value(dt))));
		return why;
	}
	if (json_array_size(sh) > ST_MAX_DIMS) {
		snprintf(why, sizeof why, "%zu dimensions (at most %d supported)", json_array_size(sh), ST_MAX_DIMS);
		return why;
	}
	t->dtype = code;
	t->ndim = (int)json_array_size(sh);
	uint64_t nelem = 1;
	int overflow = 0;
	for (int i = 0; i < t->ndim; i++) {
		uint64_t d;
		if (!get_uint(json_array_get(sh, (size_t)i), &d)) return "shape entries must be integers >= 0";
		t->shape[i] = (int64_t)d;
		if (d && nelem > UINT64_MAX / d) overflow = 1;
		nelem *= d;
	}
	uint64_t b, e;
	if (!get_uint(json_array_get(off, 0), &b) || !get_uint(json_array_get(off, 1), &e))
		return "data_offsets must be integers >= 0";
	if (b > e) {
		snprintf(why, sizeof why, "data_offsets [%" PRIu64 ", %" PRIu64 "] end before they begin", b, e);
		return why;
	}
	if (e > data_len) {
		snprintf(why, sizeof why, "data_offsets [%" PRIu64 ", %" PRIu64 "] outside the data area (%zu bytes)", b, e,
			 data_len);
		return why;
	}
	char s[160];
	shape_str(s, sizeof s, t->ndim, t->shape);
	if (overflow || nelem > UINT64_MAX / (uint64_t)esize) {
		snprintf(why, sizeof why, "shape %s has too many elements", s);
		return why;
	}
	if (nelem * (uint64_t)esize != e - b) {
		snprintf(why, sizeof why,
			 "data_offsets [%" PRIu64 ", %" PRIu64 "] span %" PRIu64 " bytes, but %s %s needs %" PRIu64, b, e,
			 e - b, json_string_value(dt), s, nelem * (uint64_t)esize);
		return why;
	}
	t->nelem = (size_t)nelem;
	t->data = st->base + (st->size - data_len) + b;
	span[0] = b;
	span[1] = e;
	return NULL;
}

static L2Safetensors *cmp_st; /* qsort context (single-threaded open) */
static uint64_t (*cmp_span)[2];
static int by_name(const void *a, const void *b)
{
	return strcmp(cmp_st->t[*(const int *)a].name, cmp_st->t[*(const int *)b].name);
}
static int by_offset(const void *a, const void *b)
{
	uint64_t x = cmp_span[*(const int *)a][0], y = cmp_span[*(const int *)b][0];
	if (x != y) return x < y ? -1 : 1;
	x = cmp_span[*(const int *)a][1];
	y = cmp_span[*(const int *)b][1];
	return x < y ? -1 : x > y;
}

static void st_release(void *st) { l2_st_close(st); }

L2Safetensors *l2_st_open(const char *path)
{
	L2Safetensors *st = l2_calloc(1, sizeof *st);
	l2_hold(&st->held, st_release, st);
	st->path = l2_strdup(path);
	load_file(st);
	if (st->size < 8) l2_die("%s: truncated safetensors file (%zu bytes, the header length alone is 8)", path, st->size);
	uint64_t hlen = l2_le64(st->base);
	if (hlen > ST_MAX_HEADER)
		l2_die("%s: header length %" PRIu64 " is implausible (limit %llu; not a safetensors file?)", path, hlen,
		       ST_MAX_HEADER);
	if (hlen > st->size - 8)
		l2_die("%s: header length %" PRIu64 " runs past the end of the file (%zu bytes; truncated?)", path, hlen,
		       st->size);
	if (hlen < 2 || st->base[8] != '{') l2_die("%s: header is not a JSON object (not a safetensors file?)", path);
	json_error_t err;
	json_t *root = st->root = json_loadb((const char *)st->base + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &err);
	char q[200], q2[200];
	if (!root)
		l2_die("%s: bad JSON header: %s (line %d, column %d)", path, l2_escape(q, sizeof q, err.text, strlen(err.text)),
		       err.line, err.column);
	if (!json_is_object(root)) l2_die("%s: header is not a JSON object", path);
	size_t data_len = st->size - 8 - (size_t)hlen;

	size_t cap = json_object_size(root);
	st->t = l2_calloc(cap ? cap : 1, sizeof *st->t);
	uint64_t(*span)[2] = l2_calloc(cap ? cap : 1, sizeof *span);
	cmp_span = span; /* (also keeps it reachable if we die) */
	const char *name;
	json_t *v;
	json_object_foreach(root, name, v)
	{
		if (!strcmp(name, "__metadata__")) {
			if (!json_is_object(v)) l2_die("%s: __metadata__ must be an object of strings", path);
			st->meta = l2_calloc(json_object_size(v) + 1, sizeof *st->meta);
			const char *mk;
			json_t *mv;
			json_object_foreach(v, mk, mv)
			{
				if (!json_is_string(mv))
					l2_die("%s: __metadata__ entry \"%s\": value must be a string", path,
					       l2_escape(q, sizeof q, mk, strlen(mk)));
				st->meta[st->nmeta].key = l2_strdup(mk);
				st->meta[st->nmeta].value = l2_strdup(json_string_value(mv));
				st->nmeta++;
			}
			continue;
		}
		L2Tensor *t = &st->t[st->n];
		const char *why = parse_tensor(st, v, t, span[st->n], data_len);
		if (why) l2_die("%s: tensor %s: %s", path, l2_escape(q, sizeof q, name, strlen(name)), why);
		t->name = l2_strdup(name);
		st->n++;
	}
	json_decref(root);
	st->root = NULL;

	/* no two tensors may share bytes */
	int *ord = l2_malloc((size_t)(st->n ? st->n : 1) * sizeof *ord);
	for (int i = 0; i < st->n; i++) ord[i] = i;
	cmp_span = span;
	qsort(ord, (size_t)st->n, sizeof *ord, by_offset);
	uint64_t end = 0;
	int last = -1;
	for (int i = 0; i < st->n; i++) {
		int j = ord[i];
		if (span[j][1] == span[j][0]) continue; /* empty tensors occupy nothing */
		if (last >= 0 && span[j][0] < end)
			l2_die("%s: tensors %s and %s overlap (data_offsets [%" PRIu64 ", %" PRIu64 "] and [%" PRIu64 ", %" PRIu64
			       "])",
			       path, l2_escape(q, sizeof q, st->t[last].name, strlen(st->t[last].name)),
			       l2_escape(q2, sizeof q2, st->t[j].name, strlen(st->t[j].name)), span[last][0], span[last][1],
			       span[j][0], span[j][1]);
		end = span[j][1];
		last = j;
	}
	free(ord);
	free(span);

	st->sorted = l2_malloc((size_t)(st->n ? st->n : 1) * sizeof *st->sorted);
	for (int i = 0; i < st->n; i++) st->sorted[i] = i;
	cmp_st = st;
	qsort(st->sorted, (size_t)st->n, sizeof *st->sorted, by_name);
	return st;
}

void l2_st_close(L2Safetensors *st)
{
	if (!st) return;
	l2_unhold(&st->held);
	if (st->root) json_decref(st->root); /* released after a die while parsing */
	if (st->mapped) {
		l2_mapguard_remove(st->guard);
		munmap(st->base, st->size);
	}
	else free(st->base);
	for (int i = 0; i < st->n; i++) free((char *)st->t[i].name);
	for (int i = 0; i < st->nmeta; i++) { free(st->meta[i].key); free(st->meta[i].value); }
	free(st->meta);
	free(st->t);
	free(st->sorted);
	free(st->path);
	free(st);
}

const char *l2_st_path(const L2Safetensors *st) { return st->path; }
int l2_st_count(const L2Safetensors *st) { return st->n; }

const L2Tensor *l2_st_tensor(const L2Safetensors *st, int i)
{
	return i >= 0 && i < st->n ? &st->t[i] : NULL;
}

const L2Tensor *l2_st_find(const L2Safetensors *st, const char *name)
{
	int lo = 0, hi = st->n - 1;
	while (lo <= hi) {
		int mid = (lo + hi) / 2, c = strcmp(name, st->t[st->sorted[mid]].name);
		if (!c) return &st->t[st->sorted[mid]];
		if (c < 0) hi = mid - 1;
		else lo = mid + 1;
	}
	return NULL;
}

const char *l2_st_metadata(const L2Safetensors *st, const char *key)
{
	for (int i = 0; i < st->nmeta; i++)
		if (!strcmp(st->meta[i].key, key)) return st->meta[i].value;
	return NULL;
}

const char *l2_st_dtype_name(int dtype) { return dtype_name(dtype); }

/* Element loads go through memcpy: tensor data need not be aligned. */
void l2_st_to_f32(const L2Safetensors *st, const L2Tensor *t, float *out)
{
	const unsigned char *p = t->data;
	size_t n = t->nelem;
	switch (t->dtype) {
	case L2_ST_F32: memcpy(out, p, n * sizeof(float)); break;
	case L2_ST_F16:
		for (size_t i = 0; i < n; i++) out[i] = l2_half_to_float(l2_le16(p + 2 * i));
		break;
	case L2_ST_BF16:
		for (size_t i = 0; i < n; i++) out[i] = l2_bf16_to_float(l2_le16(p + 2 * i));
		break;
	case L2_ST_F64:
		for (size_t i = 0; i < n; i++) {
			double d;
			memcpy(&d, p + 8 * i, 8);
			out[i] = (float)d;
		}
		break;
	case L2_ST_I64:
		for (size_t i = 0; i < n; i++) out[i] = (float)(int64_t)l2_le64(p + 8 * i);
		break;
	case L2_ST_I32:
		for (size_t i = 0; i < n; i++) out[i] = (float)(int32_t)l2_le32(p + 4 * i);
		break;
	case L2_ST_U8:
	case L2_ST_BOOL:
		for (size_t i = 0; i < n; i++) out[i] = (float)p[i];
		break;
	default:
		{
			char q[200];
			l2_die("%s: tensor %s: its dtype cannot be converted to float32", st ? st->path : "safetensors",
			       l2_escape(q, sizeof q, t->name, strlen(t->name)));
		}
	}
}

static const L2Tensor *find_checked(const L2Safetensors *st, const char *name, int ndim, const int64_t *shape)
{
	const L2Tensor *t = l2_st_find(st, name);
	if (!t) l2_die("%s: missing tensor %s", st->path, name);
	int ok = t->ndim == ndim;
	for (int i = 0; ok && i < ndim; i++)
		if (shape[i] >= 0 && shape[i] != t->shape[i]) ok = 0;
	if (!ok) {
		char want[160], got[160];
		shape_str(want, sizeof want, ndim, shape);
		shape_str(got, sizeof got, t->ndim, t->shape);
		l2_die("%s: tensor %s: expected shape %s, got %s", st->path, name, want, got);
	}
	if (t->dtype == L2_ST_OTHER)
		l2_die("%s: tensor %s: dtype cannot be converted to float32", st->path, name);
	return t;
}

float *l2_st_load_f32(const L2Safetensors *st, const char *name, int ndim, const int64_t *shape)
{
	const L2Tensor *t = find_checked(st, name, ndim, shape);
	float *out = l2_malloc(l2_mul_size(t->nelem, sizeof(float)));
	l2_st_to_f32(st, t, out);
	return out;
}

void l2_st_load_f32_into(const L2Safetensors *st, const char *name, int ndim, const int64_t *shape, float *out)
{
	const L2Tensor *t = find_checked(st, name, ndim, shape);
	l2_st_to_f32(st, t, out);
}

/* ---- writer ------------------------------------------------------------- */

typedef struct {
	char *name;
	int dtype, ndim;
	int64_t shape[ST_MAX_DIMS];
	size_t nbytes;
	const void *data;
} WEntry;

struct L2StWriter {
	WEntry *e;
	int n, cap;
	MetaEntry *meta;
	int nmeta, metacap;
};

L2StWriter *l2_st_writer_new(void) { return l2_calloc(1, sizeof(L2StWriter)); }

void l2_st_writer_add(L2StWriter *w, const char *name, int dtype, int ndim, const int64_t *shape, const void *data)
{
	if (!name || !*name || !strcmp(name, "__metadata__")) l2_die("safetensors writer: invalid tensor name \"%s\"", name ? name : "");
	if (dtype == L2_ST_OTHER || dtype_size(dtype) == 0) l2_die("safetensors writer: tensor %s: unsupported dtype", name);
	if (ndim < 0 || ndim > ST_MAX_DIMS) l2_die("safetensors writer: tensor %s: %d dimensions", name, ndim);
	for (int i = 0; i < w->n; i++)
		if (!strcmp(w->e[i].name, name)) l2_die("safetensors writer: tensor %s added twice", name);
	if (w->n == w->cap) w->e = l2_realloc(w->e, (size_t)(w->cap = w->cap ? 2 * w->cap : 16) * sizeof *w->e);
	WEntry *e = &w->e[w->n++];
	memset(e, 0, sizeof *e);
	e->name = l2_strdup(name);
	e->dtype = dtype;
	e->ndim = ndim;
	size_t nelem = 1;
	for (int i = 0; i < ndim; i++) {
		if (shape[i] < 0) l2_die("safetensors writer: tensor %s: negative dimension", name);
		e->shape[i] = shape[i];
		nelem = l2_mul_size(nelem, (size_t)shape[i]);
	}
	e->nbytes = l2_mul_size(nelem, (size_t)dtype_size(dtype));
	e->data = data;
}

void l2_st_writer_add_f32(L2StWriter *w, const char *name, int ndim, const int64_t *shape, const float *data)
{
	l2_st_writer_add(w, name, L2_ST_F32, ndim, shape, data);
}

void l2_st_writer_meta(L2StWriter *w, const char *key, const char *value)
{
	for (int i = 0; i < w->nmeta; i++)
		if (!strcmp(w->meta[i].key, key)) {
			free(w->meta[i].value);
			w->meta[i].value = l2_strdup(value);
			return;
		}
	if (w->nmeta == w->metacap)
		w->meta = l2_realloc(w->meta, (size_t)(w->metacap = w->metacap ? 2 * w->metacap : 8) * sizeof *w->meta);
	w->meta[w->nmeta].key = l2_strdup(key);
	w->meta[w->nmeta].value = l2_strdup(value);
	w->nmeta++;
}

/* The header as the reference writes it: compact JSON, __metadata__ first,
 * tensors in order, padded with spaces to a multiple of 8 bytes. */
static char *writer_header(const L2StWriter *w, size_t *len)
{
	json_t *root = json_object();
	if (w->nmeta) {
		json_t *m = json_object();
		for (int i = 0; i < w->nmeta; i++) json_object_set_new(m, w->meta[i].key, json_string(w->meta[i].value));
		json_object_set_new(root, "__metadata__", m);
	}
	uint64_t off = 0;
	for (int i = 0; i < w->n; i++) {
		const WEntry *e = &w->e[i];
		json_t *info = json_object(), *sh = json_array(), *of = json_array();
		json_object_set_new(info, "dtype", json_string(dtype_name(e->dtype)));
		for (int j = 0; j < e->ndim; j++) json_array_append_new(sh, json_integer(e->shape[j]));
		json_object_set_new(info, "shape", sh);
		json_array_append_new(of, json_integer((json_int_t)off));
		off += e->nbytes;
		json_array_append_new(of, json_integer((json_int_t)off));
		json_object_set_new(info, "data_offsets", of);
		json_object_set_new(root, e->name, info);
	}
	char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (!s) l2_die("safetensors writer: cannot encode header (invalid UTF-8 in a name?)");
	size_t n = strlen(s), pad = (8 - n % 8) % 8;
	char *h = l2_malloc(n + pad);
	memcpy(h, s, n);
	memset(h + n, ' ', pad);
	free(s);
	*len = n + pad;
	return h;
}

void l2_st_writer_write(L2StWriter *w, const char *path)
{
	size_t hlen;
	char *h = writer_header(w, &hlen);
	L2OFile *o = l2_ofile_open(path, 1);
	unsigned char n8[8];
	l2_put_le64(n8, hlen);
	l2_ofile_write(o, n8, 8);
	l2_ofile_write(o, h, hlen);
	for (int i = 0; i < w->n; i++) l2_ofile_write(o, w->e[i].data, w->e[i].nbytes);
	l2_ofile_commit(o);
	free(h);
}

void l2_st_writer_free(L2StWriter *w)
{
	if (!w) return;
	for (int i = 0; i < w->n; i++) free(w->e[i].name);
	for (int i = 0; i < w->nmeta; i++) { free(w->meta[i].key); free(w->meta[i].value); }
	free(w->e);
	free(w->meta);
	free(w);
}
