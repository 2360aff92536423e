/* test_dataset.c — the dataset store (schemas/dataset.md): caption cleaning,
 * the split rule against values from an independent Python implementation,
 * images/captions/attrs/corpus/features round trips, key order, f16
 * features, alpha over the background, counts after finish; the builder
 * (a new source through its API, resuming a build that stopped part way). */
#include "check.h"
#include "method/dataset.h"
#include "method/dataset_build.h"
#include "core/util.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/l2-test-dataset-XXXXXX";

static void test_caption_clean(void)
{
	const char *in[] = {"  a  cat\t on\r\na mat  ", "plain", "\t\n ", "x\x01y", "é  ü"};
	const char *want[] = {"a cat on a mat", "plain", "", "x y", "é ü"};
	for (int i = 0; i < 5; i++) {
		char *s = l2_strdup(in[i]);
		size_t n = l2_caption_clean(s);
		CHECK_MSG(!strcmp(s, want[i]), "clean(%d) = '%s'", i, s);
		CHECK(n == strlen(want[i]));
		free(s);
	}
}

/* u values from tests written in Python (fnv1a64, splitmix64 finaliser). */
static void test_split_rule(void)
{
	struct { const char *k; uint64_t seed; double u; } v[] = {
		{"1f600.png", 0, 0.18148670957635904},
		{"a/b.jpg", 7, 0.56546712551762002},
		{"", 0, 0.95767342524205612},
		{"\xc3\xbc.png", 123456789012345ull, 0.70510995384779318},
	};
	for (int i = 0; i < 4; i++) {
		CHECK(l2_split_for(v[i].k, v[i].u + 1e-12, v[i].seed) == L2_SPLIT_TEST);
		CHECK(l2_split_for(v[i].k, v[i].u - 1e-12, v[i].seed) == L2_SPLIT_TRAIN);
	}
	CHECK(l2_split_for("x", 0, 1) == L2_SPLIT_TRAIN);
	CHECK(l2_split_for("x", 1, 1) == L2_SPLIT_TEST);
	/* the share is the fraction in expectation: 20000 keys, within 4 sigma */
	int n = 20000, t = 0;
	char k[32];
	for (int i = 0; i < n; i++) {
		snprintf(k, sizeof k, "img/%05d.png", i);
		t += l2_split_for(k, 0.1, 3) == L2_SPLIT_TEST;
	}
	CHECK_MSG(abs(t - 2000) < 4 * 43, "test share %d of %d", t, n);
	CHECK(l2_split_parse("train") == L2_SPLIT_TRAIN && l2_split_parse("test") == L2_SPLIT_TEST);
	CHECK(l2_split_parse("all") == L2_SPLIT_ALL && l2_split_parse("Test") == -1);
}

/* A small RGBA PNG: transparent left half, opaque red right half. */
static unsigned char *make_png(size_t *len, int w, int h)
{
	L2Image img;
	l2_image_alloc(&img, w, h, L2_MODE_RGBA);
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			uint8_t *p = img.data + ((size_t)y * w + x) * 4;
			p[0] = 200, p[1] = (uint8_t)(x * 7), p[2] = (uint8_t)(y * 5), p[3] = x < w / 2 ? 0 : 255;
		}
	char path[256];
	snprintf(path, sizeof path, "%s/p.png", dir);
	l2_image_save_png(path, &img);
	l2_image_free(&img);
	unsigned char *b = (unsigned char *)l2_read_file(path, len);
	unlink(path);
	return b;
}

static void test_build_and_read(void)
{
	char path[256];
	snprintf(path, sizeof path, "%s/ds.lmdb", dir);
	size_t plen;
	unsigned char *png = make_png(&plen, 8, 6);
	L2Dataset *ds = l2_dataset_open(path, L2_STORE_CREATE);
	const char *keys[] = {"b/2.png", "a.png", "b/1.png", "c.png"};
	L2Split sp[] = {L2_SPLIT_TRAIN, L2_SPLIT_TEST, L2_SPLIT_TRAIN, L2_SPLIT_TEST};
	for (int i = 0; i < 4; i++) CHECK(l2_dataset_put_image(ds, keys[i], png, plen, sp[i], i == 2 ? "b/2.png" : NULL) == 1);
	CHECK(l2_dataset_put_image(ds, "a.png", "zz", 2, L2_SPLIT_TRAIN, NULL) == 0); /* unchanged */
	CHECK(l2_dataset_add_caption(ds, "a.png", "  a red  square ") == 1);
	CHECK(l2_dataset_add_caption(ds, "a.png", "half transparent") == 1);
	CHECK(l2_dataset_add_caption(ds, "a.png", "a red square") == 0);
	CHECK(l2_dataset_add_caption(ds, "a.png", " \t ") == 0);
	CHECK(l2_dataset_add_caption(ds, "b/1.png", "one") == 1);
	l2_dataset_set_attr(ds, "a.png", "category", "Shapes");
	l2_dataset_set_attr(ds, "a.png", "colour", "red");
	l2_dataset_set_attr(ds, "a.png", "category", "Squares\tand more");
	CHECK(l2_dataset_add_corpus(ds, "a red square", "caption") == 1);
	CHECK(l2_dataset_add_corpus(ds, "a  red square ", "extra") == 0);
	CHECK(l2_dataset_add_corpus(ds, "", "extra") == -1);
	char big[600];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = 0;
	CHECK(l2_dataset_add_corpus(ds, big, "extra") == -1);
	CHECK(l2_dataset_add_corpus(ds, "something else", "wordnet") == 1);
	l2_store_set_meta(l2_dataset_store(ds), "background", "0000ff");
	l2_dataset_finish(ds);
	l2_dataset_close(ds);

	ds = l2_dataset_open(path, L2_STORE_RDONLY);
	char **k;
	size_t n = l2_dataset_keys(ds, L2_SPLIT_ALL, &k);
	CHECK(n == 4);
	if (n == 4) CHECK(!strcmp(k[0], "a.png") && !strcmp(k[1], "b/1.png") && !strcmp(k[2], "b/2.png") && !strcmp(k[3], "c.png"));
	l2_dataset_free_strings(k, n);
	n = l2_dataset_keys(ds, L2_SPLIT_TEST, &k);
	CHECK(n == 2 && !strcmp(k[0], "a.png") && !strcmp(k[1], "c.png"));
	l2_dataset_free_strings(k, n);
	CHECK(l2_dataset_count(ds, L2_SPLIT_TRAIN) == 2 && l2_dataset_count(ds, L2_SPLIT_ALL) == 4);
	CHECK(l2_dataset_split_of(ds, "b/1.png") == L2_SPLIT_TRAIN && l2_dataset_split_of(ds, "nope") == -1);

	char **caps;
	n = l2_dataset_captions(ds, "a.png", &caps);
	CHECK(n == 2 && !strcmp(caps[0], "a red square") && !strcmp(caps[1], "half transparent"));
	l2_dataset_free_strings(caps, n);
	n = l2_dataset_captions(ds, "c.png", &caps);
	CHECK(n == 0);
	l2_dataset_free_strings(caps, n);

	char *a = l2_dataset_attr(ds, "a.png", "category");
	CHECK(a && !strcmp(a, "Squares and more"));
	free(a);
	a = l2_dataset_attr(ds, "a.png", "colour");
	CHECK(a && !strcmp(a, "red"));
	free(a);
	CHECK(l2_dataset_attr(ds, "a.png", "size") == NULL && l2_dataset_attr(ds, "c.png", "colour") == NULL);

	unsigned char *b;
	size_t bl;
	CHECK(l2_dataset_image_bytes(ds, "a.png", &b, &bl) == 1 && bl == plen && !memcmp(b, png, plen));
	free(b);
	L2Image img, rgb;
	char err[256];
	CHECK(l2_dataset_image(ds, "b/2.png", &img, err, sizeof err) == 0 && img.w == 8 && img.h == 6 &&
	      img.mode == L2_MODE_RGBA);
	l2_image_free(&img);
	CHECK(l2_dataset_image(ds, "zzz.png", &img, err, sizeof err) == -1 && strstr(err, "not in the dataset"));
	CHECK(l2_dataset_image_rgb(ds, "a.png", &rgb, err, sizeof err) == 0);
	CHECK(rgb.channels == 3);
	/* transparent pixel -> the background, opaque pixel -> itself */
	CHECK(rgb.data[0] == 0 && rgb.data[1] == 0 && rgb.data[2] == 255);
	uint8_t *p = rgb.data + (size_t)7 * 3;
	CHECK(p[0] == 200 && p[1] == 49 && p[2] == 0);
	l2_image_free(&rgb);

	L2Store *st = l2_dataset_store(ds);
	char *m = l2_store_get_meta(st, "state");
	CHECK(m && !strcmp(m, "complete"));
	free(m);
	m = l2_store_get_meta(st, "corpus");
	CHECK(m && !strcmp(m, "2"));
	free(m);
	m = l2_store_get_meta(st, "captions");
	CHECK(m && !strcmp(m, "2"));
	free(m);
	void *g;
	size_t gl;
	CHECK(l2_store_get(st, "groups", "b/1.png", 7, &g, &gl) == 1 && gl == 7 && !memcmp(g, "b/2.png", 7));
	free(g);
	CHECK(l2_store_get(st, "groups", "a.png", 5, &g, &gl) == 0);
	l2_dataset_close(ds);
	free(png);
}

static void test_features(void)
{
	char path[256];
	snprintf(path, sizeof path, "%s/f.lmdb", dir);
	L2Dataset *ds = l2_dataset_open(path, L2_STORE_CREATE);
	enum { D = 13 };
	float v[3][D], got[D];
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < D; j++) v[i][j] = (float)check_normal();
	L2FeatureInfo fi = {"image-feature", D, 1, 0, 1};
	L2FeatureInfo hi = {"text-feature", D, 0, 1, 1};
	CHECK(l2_feature_name_ok("pseudo-retrieve") && !l2_feature_name_ok("Pseudo") && !l2_feature_name_ok("") &&
	      !l2_feature_name_ok("a.b"));
	l2_dataset_feature_declare(ds, "image", &fi);
	l2_dataset_feature_declare(ds, "caption", &hi);
	l2_dataset_feature_declare(ds, "image", &fi); /* same again: fine */
	for (int i = 0; i < 3; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%d", i);
		l2_dataset_put_feature(ds, "image", k, v[i]);
		l2_dataset_put_feature(ds, "caption", k, v[i]);
	}
	l2_dataset_close(ds);
	ds = l2_dataset_open(path, L2_STORE_RDONLY);
	L2FeatureInfo r;
	CHECK(l2_dataset_feature_info(ds, "image", &r) && r.dim == D && r.normalized && !r.f16 &&
	      !strcmp(r.kind, "image-feature"));
	CHECK(l2_dataset_feature_info(ds, "caption", &r) && r.f16 && !r.normalized && !strcmp(r.kind, "text-feature"));
	CHECK(!l2_dataset_feature_info(ds, "pseudo", &r));
	CHECK(l2_dataset_get_feature(ds, "image", "k1", got) && !memcmp(got, v[1], sizeof got));
	CHECK(l2_dataset_get_feature(ds, "caption", "k2", got));
	for (int j = 0; j < D; j++) CHECK(got[j] == l2_half_to_float(l2_float_to_half(v[2][j])));
	CHECK(!l2_dataset_get_feature(ds, "image", "k9", got));
	CHECK(l2_dataset_feature_count(ds, "image") == 3 && l2_dataset_feature_count(ds, "pseudo") == 0);
	l2_dataset_close(ds);
}

/* A feature set is incomplete from the first batch of a write to its end:
 * an interrupted write (here: closed without l2_dataset_feature_end) shows,
 * and the lock file is gone once the writer closes. */
static void test_feature_completeness(void)
{
	char path[256], lock[300];
	snprintf(path, sizeof path, "%s/c.lmdb", dir);
	snprintf(lock, sizeof lock, "%s/feat.img.lock", path);
	enum { D = 7 };
	float v[D];
	for (int j = 0; j < D; j++) v[j] = (float)check_normal();
	L2FeatureInfo fi = {"image-feature", D, 0, 0, 1}, r;
	L2Dataset *ds = l2_dataset_open(path, L2_STORE_CREATE);
	l2_dataset_feature_begin(ds, "img", &fi);
	CHECK(l2_file_exists(lock));
	l2_dataset_put_feature(ds, "img", "a", v);
	l2_dataset_close(ds);
	CHECK(!l2_file_exists(lock));
	ds = l2_dataset_open(path, L2_STORE_RDONLY);
	CHECK(l2_dataset_feature_info(ds, "img", &r) && !r.complete && l2_dataset_feature_count(ds, "img") == 1);
	l2_dataset_close(ds);
	ds = l2_dataset_open(path, L2_STORE_WRITE);
	l2_dataset_feature_begin(ds, "img", &fi);
	l2_dataset_put_feature(ds, "img", "b", v);
	l2_dataset_feature_end(ds, "img", 0);
	l2_dataset_close(ds);
	ds = l2_dataset_open(path, L2_STORE_RDONLY);
	CHECK(l2_dataset_feature_info(ds, "img", &r) && r.complete && l2_dataset_feature_count(ds, "img") == 2);
	l2_dataset_feature_need_complete(ds, "img", "--allow-incomplete"); /* returns */
	l2_dataset_close(ds);
}

/* A source written with the builder: PNGs under root, two captions each; a
 * build stopped after 3 images (never finished) resumes to the same dataset. */
static void build_some(const char *out, const char *root, int upto, int finish, L2BuildOptions *o)
{
	L2DatasetBuild *b = l2_dataset_build_open(out, o, "test-source 1", root);
	char rel[32], cap[64];
	for (int i = 0; i < upto; i++) {
		snprintf(rel, sizeof rel, "i%d.png", i);
		if (l2_dataset_build_image(b, root, rel, i == 4 ? "i3.png" : NULL) < 0) continue;
		snprintf(cap, sizeof cap, "picture  number %d", i);
		l2_dataset_build_caption(b, rel, cap);
		l2_dataset_build_caption(b, rel, "a picture");
		l2_dataset_build_tick(b);
	}
	if (finish) l2_dataset_build_finish(b);
	else {
		L2BuildCounts *n = l2_dataset_build_counts(b);
		CHECK(n->added == 3 && n->kept == 0 && n->captions_added == 6 && n->corpus_added == 4);
		l2_store_commit(l2_dataset_store(l2_dataset_build_dataset(b)));
		l2_dataset_close(l2_dataset_build_dataset(b)); /* then the caller's child exits: no finish */
	}
}

static void test_builder_and_resume(void)
{
	char root[256], out[256], path[300];
	snprintf(root, sizeof root, "%s/src", dir);
	l2_mkdir_p(root);
	for (int i = 0; i < 6; i++) {
		size_t len;
		unsigned char *png = make_png(&len, 4 + i, 3);
		snprintf(path, sizeof path, "%s/i%d.png", root, i);
		FILE *f = fopen(path, "wb");
		CHECK(f && fwrite(png, 1, len, f) == len);
		if (f) fclose(f);
		free(png);
	}
	snprintf(path, sizeof path, "%s/i5.png", root);
	FILE *f = fopen(path, "wb"); /* a corrupt one */
	if (f) fputs("\x89PNG\r\n\x1a\nnot really", f), fclose(f);
	L2BuildOptions o;
	l2_build_defaults(&o);
	o.test_fraction = 0.5;
	o.seed = 2; /* splits i0..i4: test train test train, and i4 alone would be test */
	o.checkpoint = 2;
	o.skip_bad = 1;
	snprintf(out, sizeof out, "%s/built.lmdb", dir);
	fflush(stdout);
	pid_t pid = fork(); /* a build killed after 3 images: a child that never finishes */
	if (pid == 0) {
		build_some(out, root, 3, 0, &o);
		_exit(check_test_failed);
	}
	int status = -1;
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	snprintf(path, sizeof path, "%s.partial", out);
	CHECK(l2_file_exists(path) && !l2_file_exists(out));
	o.resume = 1;
	build_some(out, root, 6, 1, &o);
	CHECK(!l2_file_exists(path) && l2_file_exists(out));
	L2Dataset *ds = l2_dataset_open(out, L2_STORE_RDONLY);
	CHECK(l2_dataset_count(ds, L2_SPLIT_ALL) == 5); /* i5 left out as bad */
	CHECK(l2_dataset_count(ds, L2_SPLIT_TEST) == 2);
	CHECK(l2_dataset_split_of(ds, "i4.png") == L2_SPLIT_TRAIN); /* its group's side */
	for (int i = 0; i < 5; i++) {
		char rel[32];
		snprintf(rel, sizeof rel, "i%d.png", i);
		CHECK(l2_dataset_split_of(ds, rel) == (int)l2_split_for(i == 4 ? "i3.png" : rel, 0.5, 2));
		char **caps;
		size_t nc = l2_dataset_captions(ds, rel, &caps);
		CHECK(nc == 2 && !strcmp(caps[1], "a picture") && !strncmp(caps[0], "picture number ", 15));
		l2_dataset_free_strings(caps, nc);
	}
	char *v = l2_store_get_meta(l2_dataset_store(ds), "source");
	CHECK(v && !strcmp(v, "test-source 1"));
	free(v);
	CHECK(l2_store_count(l2_dataset_store(ds), "corpus") == 6);
	l2_dataset_close(ds);
}

int main(void)
{
	if (!mkdtemp(dir)) return 1;
	RUN(test_caption_clean);
	RUN(test_split_rule);
	RUN(test_build_and_read);
	RUN(test_features);
	RUN(test_feature_completeness);
	RUN(test_builder_and_resume);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd)) return 1;
	return check_done();
}
