/* test_safetensors.c — the reader against files written by
 * tests/ref/make_safetensors.py (values bit-exact, header order, metadata,
 * unaligned data), every malformed-file error path (in a forked child, so
 * l2_die's exit can be observed), shape checks, and writer round trips,
 * including byte-identity with the reference layout. */
#include "check.h"
#include "check_child.h"
#include "io/safetensors.h"
#include "core/util.h"

#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/l2-test-st-XXXXXX";
static char ref[512];

static const char *refpath(const char *name)
{
	static char buf[4][1300];
	static int k;
	char *b = buf[k++ & 3];
	snprintf(b, sizeof buf[0], "%s/%s", ref, name);
	return b;
}

static void *read_all(const char *path, size_t *n)
{
	return l2_read_file(path, n);
}

static void open_path(const void *a) { l2_st_close(l2_st_open(a)); }

static void test_basic_values(void)
{
	L2Safetensors *st = l2_st_open(refpath("basic.safetensors"));
	size_t len;
	char *names = read_all(refpath("basic_names.txt"), &len);
	int i = 0;
	for (char *line = strtok(names, "\n"); line; line = strtok(NULL, "\n"), i++) {
		char name[128], dt[16], shape[128] = "";
		CHECK(sscanf(line, "%127[^\t]\t%15[^\t]\t%127[^\n]", name, dt, shape) >= 2);
		const L2Tensor *t = l2_st_tensor(st, i);
		CHECK(t != NULL);
		if (!t) break;
		CHECK_MSG(!strcmp(t->name, name), "tensor %d: %s, expected %s (header order)", i, t->name, name);
		CHECK(l2_st_find(st, name) == t);
		CHECK(!strcmp(l2_st_dtype_name(t->dtype), dt));
		char got[128] = "";
		for (int d = 0; d < t->ndim; d++)
			snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? "," : "", (long long)t->shape[d]);
		CHECK_MSG(!strcmp(got, shape), "%s: shape %s, expected %s", name, got, shape);
		char ep[256];
		snprintf(ep, sizeof ep, "basic_expected/%s.f32", name);
		size_t elen;
		float *want = read_all(refpath(ep), &elen);
		CHECK(elen == t->nelem * 4);
		float *out = l2_malloc(t->nelem * 4 + 4);
		l2_st_to_f32(st, t, out);
		CHECK_MSG(!memcmp(out, want, elen), "%s: values differ from numpy's", name);
		free(out);
		free(want);
	}
	CHECK(i == l2_st_count(st));
	CHECK(i == 10);
	CHECK(l2_st_find(st, "nope") == NULL);
	CHECK(l2_st_find(st, "__metadata__") == NULL);
	CHECK(l2_st_metadata(st, "format") && !strcmp(l2_st_metadata(st, "format"), "pt"));
	CHECK(l2_st_metadata(st, "note") && !strcmp(l2_st_metadata(st, "note"), "grüße, 猫"));
	CHECK(l2_st_metadata(st, "missing") == NULL);
	const L2Tensor *s = l2_st_find(st, "logit_scale");
	CHECK(s && s->ndim == 0 && s->nelem == 1);
	const L2Tensor *e = l2_st_find(st, "empty");
	CHECK(e && e->nelem == 0 && e->ndim == 2);
	free(names);
	l2_st_close(st);
}

static void test_load_f32(void)
{
	L2Safetensors *st = l2_st_open(refpath("basic.safetensors"));
	int64_t sh[2] = {3, 5}, any[2] = {-1, 5};
	float *a = l2_st_load_f32(st, "layer.0.weight", 2, sh);
	float *b = l2_st_load_f32(st, "layer.0.weight", 2, any);
	size_t n;
	float *want = read_all(refpath("basic_expected/layer.0.weight.f32"), &n);
	CHECK(n == 60 && !memcmp(a, want, n) && !memcmp(b, want, n));
	float into[12];
	int64_t hs[2] = {4, 3};
	l2_st_load_f32_into(st, "layer.0.bias_f16", 2, hs, into);
	float *wh = read_all(refpath("basic_expected/layer.0.bias_f16.f32"), &n);
	CHECK(!memcmp(into, wh, sizeof into));
	CHECK(into[0] == 65504.0f && into[3] == 5.9604645e-08f && isinf(into[4]) && signbit(into[5]));
	free(a);
	free(b);
	free(want);
	free(wh);
	l2_st_close(st);
}

static void load_wrong_shape(const void *a)
{
	(void)a;
	L2Safetensors *st = l2_st_open(refpath("basic.safetensors"));
	int64_t sh[2] = {5, 3};
	l2_st_load_f32(st, "layer.0.weight", 2, sh);
}
static void load_wrong_ndim(const void *a)
{
	(void)a;
	L2Safetensors *st = l2_st_open(refpath("basic.safetensors"));
	int64_t sh[1] = {7};
	l2_st_load_f32(st, "proj.f64", 1, sh);
}
static void load_missing(const void *a)
{
	(void)a;
	L2Safetensors *st = l2_st_open(refpath("basic.safetensors"));
	int64_t sh[1] = {7};
	l2_st_load_f32(st, "visual.proj", 1, sh);
}

static void test_shape_errors(void)
{
	char err[4096];
	int rc = check_child(load_wrong_shape, NULL, err, sizeof err);
	CHECK(rc == 1);
	CHECK_MSG(strstr(err, "basic.safetensors: tensor layer.0.weight: expected shape (5, 3), got (3, 5)"), "%s", err);
	rc = check_child(load_wrong_ndim, NULL, err, sizeof err);
	CHECK(rc == 1);
	CHECK_MSG(strstr(err, "tensor proj.f64: expected shape (7,), got (6,)"), "%s", err);
	rc = check_child(load_missing, NULL, err, sizeof err);
	CHECK(rc == 1);
	CHECK_MSG(strstr(err, "basic.safetensors: missing tensor visual.proj"), "%s", err);
	rc = check_child(open_path, "/nonexistent/x.safetensors", err, sizeof err);
	CHECK(rc == 1 && strstr(err, "/nonexistent/x.safetensors: No such file"));
	rc = check_child(open_path, dir, err, sizeof err);
	CHECK(rc == 1 && strstr(err, "is a directory"));
}

static void test_unaligned(void)
{
	L2Safetensors *st = l2_st_open(refpath("unaligned.safetensors"));
	CHECK(l2_st_count(st) == 2);
	const L2Tensor *x = l2_st_tensor(st, 0), *y = l2_st_tensor(st, 1);
	CHECK(((uintptr_t)x->data & 3) != 0); /* the point of this file */
	float ox[7], oy[5];
	l2_st_to_f32(st, x, ox);
	l2_st_to_f32(st, y, oy);
	size_t n;
	float *wx = read_all(refpath("unaligned_x.f32"), &n), *wy = read_all(refpath("unaligned_y.f32"), &n);
	CHECK(!memcmp(ox, wx, sizeof ox));
	CHECK(!memcmp(oy, wy, sizeof oy));
	free(wx);
	free(wy);
	l2_st_close(st);
}

static void test_corrupt(void)
{
	size_t len;
	char *list = read_all(refpath("corrupt.txt"), &len);
	int n = 0;
	for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n")) {
		char *tab = strchr(line, '\t');
		if (!tab) continue;
		*tab = 0;
		char path[700], err[4096];
		snprintf(path, sizeof path, "corrupt/%s", line);
		const char *p = refpath(path);
		int rc = check_child(open_path, p, err, sizeof err);
		CHECK_MSG(rc == 1, "%s: exit %d (%s)", line, rc, err);
		CHECK_MSG(strstr(err, tab + 1) != NULL, "%s: message \"%s\" lacks \"%s\"", line, err, tab + 1);
		CHECK_MSG(strstr(err, line) != NULL, "%s: message does not name the file: %s", line, err);
		CHECK_MSG(strchr(err, '\n') == err + strlen(err) - 1, "%s: not one line: %s", line, err);
		n++;
	}
	CHECK(n >= 20);
	free(list);
}

/* Re-writing the reference file's tensors with our writer gives the same bytes. */
static void test_writer_matches_reference(void)
{
	L2Safetensors *st = l2_st_open(refpath("basic.safetensors"));
	L2StWriter *w = l2_st_writer_new();
	l2_st_writer_meta(w, "format", "pt");
	l2_st_writer_meta(w, "note", "grüße, 猫");
	l2_st_writer_meta(w, "source", "make_safetensors.py");
	for (int i = 0; i < l2_st_count(st); i++) {
		const L2Tensor *t = l2_st_tensor(st, i);
		l2_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data);
	}
	char path[256];
	snprintf(path, sizeof path, "%s/re.safetensors", dir);
	l2_st_writer_write(w, path);
	l2_st_writer_free(w);
	size_t a, b;
	char *x = read_all(path, &a), *y = read_all(refpath("basic.safetensors"), &b);
	CHECK(a == b && !memcmp(x, y, a));
	free(x);
	free(y);
	l2_st_close(st);
}

static void test_roundtrip(void)
{
	enum { R = 33, C = 17 };
	float *w1 = l2_malloc(R * C * 4), b1[C];
	for (int i = 0; i < R * C; i++) w1[i] = (float)check_normal();
	for (int i = 0; i < C; i++) b1[i] = (float)check_normal();
	uint16_t h[9];
	for (int i = 0; i < 9; i++) h[i] = l2_float_to_half((float)check_normal());
	L2StWriter *w = l2_st_writer_new();
	int64_t s1[2] = {R, C}, s2[1] = {C}, s3[3] = {1, 3, 3};
	l2_st_writer_add_f32(w, "z.weight", 2, s1, w1);
	l2_st_writer_add_f32(w, "a.bias", 1, s2, b1);
	l2_st_writer_add(w, "m.half", L2_ST_F16, 3, s3, h);
	l2_st_writer_meta(w, "step", "1200");
	l2_st_writer_meta(w, "step", "1300"); /* replaces */
	char path[256];
	snprintf(path, sizeof path, "%s/rt.safetensors", dir);
	l2_st_writer_write(w, path);
	l2_st_writer_free(w);
	L2Safetensors *st = l2_st_open(path);
	CHECK(l2_st_count(st) == 3);
	CHECK(!strcmp(l2_st_tensor(st, 0)->name, "z.weight")); /* insertion order, not sorted */
	CHECK(!strcmp(l2_st_tensor(st, 2)->name, "m.half"));
	CHECK(!strcmp(l2_st_metadata(st, "step"), "1300"));
	float *g1 = l2_st_load_f32(st, "z.weight", 2, s1), *g2 = l2_st_load_f32(st, "a.bias", 1, s2);
	CHECK(!memcmp(g1, w1, R * C * 4));
	CHECK(!memcmp(g2, b1, C * 4));
	float g3[9];
	l2_st_load_f32_into(st, "m.half", 3, s3, g3);
	for (int i = 0; i < 9; i++) CHECK(g3[i] == l2_half_to_float(h[i]));
	/* header length is a multiple of 8, data 8-aligned in the file */
	size_t n;
	unsigned char *raw = read_all(path, &n);
	CHECK(l2_le64(raw) % 8 == 0);
	CHECK(raw[8 + l2_le64(raw) - 1] == ' ' || raw[8 + l2_le64(raw) - 1] == '}');
	CHECK(n == 8 + l2_le64(raw) + R * C * 4 + C * 4 + 18);
	free(raw);
	free(g1);
	free(g2);
	free(w1);
	l2_st_close(st);
}

static void write_dup(const void *a)
{
	(void)a;
	L2StWriter *w = l2_st_writer_new();
	float x = 1;
	int64_t s = 1;
	l2_st_writer_add_f32(w, "x", 1, &s, &x);
	l2_st_writer_add_f32(w, "x", 1, &s, &x);
}
static void write_unwritable(const void *a)
{
	(void)a;
	L2StWriter *w = l2_st_writer_new();
	float x = 1;
	int64_t s = 1;
	l2_st_writer_add_f32(w, "x", 1, &s, &x);
	l2_st_writer_write(w, "/nonexistent/dir/w.safetensors");
}

static void test_writer_errors(void)
{
	char err[4096];
	CHECK(check_child(write_dup, NULL, err, sizeof err) == 1);
	CHECK_MSG(strstr(err, "tensor x added twice"), "%s", err);
	CHECK(check_child(write_unwritable, NULL, err, sizeof err) == 1);
	CHECK_MSG(strstr(err, "/nonexistent/dir/w.safetensors"), "%s", err);
	/* an empty file set: no tensors at all is still a valid file */
	L2StWriter *w = l2_st_writer_new();
	char path[256];
	snprintf(path, sizeof path, "%s/none.safetensors", dir);
	l2_st_writer_write(w, path);
	l2_st_writer_free(w);
	L2Safetensors *st = l2_st_open(path);
	CHECK(l2_st_count(st) == 0);
	l2_st_close(st);
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	const char *root = getenv("L2_ROOT");
	snprintf(ref, sizeof ref, "%s/tests/ref/safetensors", root ? root : ".");
	if (!mkdtemp(dir)) return 1;
	RUN(test_basic_values);
	RUN(test_load_f32);
	RUN(test_shape_errors);
	RUN(test_unaligned);
	RUN(test_corrupt);
	RUN(test_writer_matches_reference);
	RUN(test_roundtrip);
	RUN(test_writer_errors);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd)) return 1;
	return check_done();
}
