/* test_stream.c — feature stream writer/reader round trips, f16, neighbors,
 * header validation. */
#include "check.h"
#include "io/stream.h"

#include <unistd.h>

static char dir[] = "/tmp/l2-test-stream-XXXXXX";

static void test_roundtrip_f32(void)
{
	char path[256];
	snprintf(path, sizeof path, "%s/a.l2f", dir);
	enum { N = 37, D = 19 };
	float x[N][D];
	for (int i = 0; i < N; i++)
		for (int j = 0; j < D; j++) x[i][j] = (float)check_normal();
	L2StreamWriter *w = l2_stream_create(path, L2_KIND_TEXT, D, 0, 0, L2FS_UNTIL_END);
	char key[32];
	for (int i = 0; i < N; i++) { snprintf(key, sizeof key, "caption %d", i); l2_stream_write(w, key, x[i]); }
	l2_stream_writer_close(w);
	L2StreamReader *r = l2_stream_open(path);
	l2_stream_expect(r, L2_KIND_TEXT, D);
	L2Record rec;
	int n = 0;
	while (l2_stream_next(r, &rec)) {
		snprintf(key, sizeof key, "caption %d", n);
		CHECK(!strcmp(rec.key, key));
		CHECK(!memcmp(rec.vec, x[n], sizeof x[n]));
		n++;
	}
	CHECK(n == N);
	l2_stream_close(r);
}

static void test_f16(void)
{
	char path[256];
	snprintf(path, sizeof path, "%s/h.l2f", dir);
	float v[5] = {1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 0.333333f}, want[5] = {1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 0.33325195f};
	L2StreamWriter *w = l2_stream_create_dtype(path, L2_KIND_IMAGE, 5, 0, 0, 1, L2_DTYPE_F16);
	l2_stream_write(w, "k", v);
	l2_stream_writer_close(w);
	L2StreamReader *r = l2_stream_open(path);
	L2Record rec;
	CHECK(l2_stream_next(r, &rec));
	for (int i = 0; i < 5; i++) CHECK_CLOSE(rec.vec[i], want[i], 0, 1e-6);
	CHECK(!l2_stream_next(r, &rec));
	l2_stream_close(r);
	/* half conversion: every finite half maps back to itself */
	int bad = 0;
	for (uint32_t h = 0; h < 65536; h++) {
		if ((h & 0x7c00) == 0x7c00) continue;
		if (l2_float_to_half(l2_half_to_float((uint16_t)h)) != h) bad++;
	}
	CHECK(bad == 0);
}

static void test_neighbors(void)
{
	char path[256];
	snprintf(path, sizeof path, "%s/n.l2f", dir);
	enum { D = 8, K = 3 };
	float q[D], nv[K * D], sc[K] = {0.9f, 0.5f, 0.1f};
	for (int i = 0; i < D; i++) q[i] = (float)check_normal();
	for (int i = 0; i < K * D; i++) nv[i] = (float)check_normal();
	const char *keys[K] = {"a dog", "a cat", ""};
	L2StreamWriter *w = l2_stream_create(path, L2_KIND_NEIGHBORS, D, 0, K, L2FS_UNTIL_END);
	l2_stream_write_neighbors(w, "img/1.png", q, K, keys, sc, nv);
	l2_stream_write_neighbors(w, "img/2.png", q, K, keys, sc, nv);
	l2_stream_writer_close(w);
	L2StreamReader *r = l2_stream_open(path);
	CHECK(l2_stream_header(r)->k == K);
	L2Record rec;
	int n = 0;
	while (l2_stream_next(r, &rec)) {
		CHECK(rec.k == K);
		CHECK(!strcmp(rec.nkey[1], "a cat"));
		CHECK(rec.nkey_len[2] == 0);
		CHECK(!memcmp(rec.nvec, nv, sizeof nv));
		CHECK(!memcmp(rec.nscore, sc, sizeof sc));
		n++;
	}
	CHECK(n == 2);
	l2_stream_close(r);
}

static void test_header_validation(void)
{
	L2StreamHeader h = {.version = 1, .dtype = L2_DTYPE_F32, .dim = 4, .count = 2, .kind = "text-feature"}, g;
	unsigned char b[64];
	l2_stream_header_pack(&h, b);
	CHECK(l2_stream_header_parse(b, &g) == NULL);
	CHECK(g.dim == 4 && g.count == 2 && !strcmp(g.kind, "text-feature"));
	b[60] = 1;
	CHECK(l2_stream_header_parse(b, &g) != NULL);
	b[60] = 0;
	b[6] = 9;
	CHECK(l2_stream_header_parse(b, &g) != NULL);
	b[6] = 1;
	b[24] = 'X'; /* upper case is not a kind */
	CHECK(l2_stream_header_parse(b, &g) != NULL);
	h.k = 3;
	l2_stream_header_pack(&h, b);
	CHECK(l2_stream_header_parse(b, &g) != NULL); /* k on non-neighbors */
}

int main(void)
{
	if (!mkdtemp(dir)) return 1;
	RUN(test_roundtrip_f32);
	RUN(test_f16);
	RUN(test_neighbors);
	RUN(test_header_validation);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd)) {}
	return check_done();
}
