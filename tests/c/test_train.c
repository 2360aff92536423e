/* test_train.c — the trainers' shared pieces: lib/nn/train (the batcher's
 * order, epoch wrap and resume; per-sample streams; paths; the ETA) and
 * lib/method/train_data on a small dataset made here (feature-set sizes,
 * the paired subset's size, nesting and independence of order, paired-only,
 * the test split, images in [-1, 1] over the background, flips and the
 * gaussian / mixed conditions), log.tsv written and read back to a step. */
#include "check.h"
#include "nn/train.h"
#include "method/train_data.h"
#include "io/image.h"
#include "core/util.h"
#include "core/vec.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/l2-test-train-XXXXXX";

static void test_batcher(void)
{
	int n = 10, B = 4;
	L2DataPos at = {0, 0};
	L2Batcher b;
	l2_batcher_init(&b, n, 5, &at);
	int perm[10];
	/* epochs of 10 with batches of 4: two batches, the tail of 2 skipped */
	for (int e = 0; e < 3; e++) {
		l2_rng_epoch_perm(perm, n, 5, (uint64_t)e);
		for (int k = 0; k < 2; k++) {
			const int *idx = l2_batcher_next(&b, B);
			CHECK(at.epoch == (uint64_t)e && at.pos == (uint64_t)(k + 1) * B);
			CHECK(!memcmp(idx, perm + k * B, B * sizeof(int)));
		}
	}
	/* a fresh batcher at a saved position continues the same order */
	L2DataPos at2 = {1, 4};
	L2Batcher c;
	l2_batcher_init(&c, n, 5, &at2);
	L2DataPos at3 = {0, 0};
	L2Batcher d;
	l2_batcher_init(&d, n, 5, &at3);
	for (int s = 0; s < 3; s++) l2_batcher_next(&d, B);
	for (int s = 0; s < 5; s++) {
		const int *x = l2_batcher_next(&c, B), *y = l2_batcher_next(&d, B);
		CHECK(!memcmp(x, y, B * sizeof(int)) && at2.epoch == at3.epoch && at2.pos == at3.pos);
	}
	/* B = n: one batch per epoch, every index once */
	L2DataPos at4 = {0, 0};
	L2Batcher f;
	l2_batcher_init(&f, n, 9, &at4);
	for (int e = 0; e < 2; e++) {
		const int *idx = l2_batcher_next(&f, n);
		int seen[10] = {0};
		for (int i = 0; i < n; i++) seen[idx[i]]++;
		int ok = 1;
		for (int i = 0; i < n; i++) ok &= seen[i] == 1;
		CHECK(ok && at4.epoch == (uint64_t)e);
	}
	l2_batcher_free(&b), l2_batcher_free(&c), l2_batcher_free(&d), l2_batcher_free(&f);
}

static void test_sample_rng(void)
{
	/* the same four numbers give the same stream; changing any one of them
	 * gives another */
	L2Rng a, b;
	l2_train_rng(&a, 7, 12, 1, 3);
	l2_train_rng(&b, 7, 12, 1, 3);
	CHECK(l2_rng_u64(&a) == l2_rng_u64(&b));
	uint64_t first[5];
	int64_t steps[5] = {12, 13, 12, 12, 12};
	int phases[5] = {1, 1, 2, 1, 1};
	uint64_t pos[5] = {3, 3, 3, 4, 3}, seeds[5] = {7, 7, 7, 7, 8};
	for (int i = 0; i < 5; i++) {
		l2_train_rng(&a, seeds[i], steps[i], phases[i], pos[i]);
		first[i] = l2_rng_u64(&a);
	}
	int distinct = 1;
	for (int i = 0; i < 5; i++)
		for (int j = i + 1; j < 5; j++) distinct &= first[i] != first[j];
	CHECK(distinct);
	/* streams of neighbouring samples are uncorrelated: mean of products */
	double s = 0;
	int n = 2000;
	for (int i = 0; i < n; i++) {
		l2_train_rng(&a, 1, 0, 0, (uint64_t)i);
		l2_train_rng(&b, 1, 0, 0, (uint64_t)i + 1);
		s += l2_rng_normal(&a) * l2_rng_normal(&b);
	}
	CHECK_MSG(fabs(s / n) < 4 / sqrt(n), "correlation %g", s / n);
}

static void test_paths_eta(void)
{
	char *p = l2_train_path("run", "G.safetensors"), *q = l2_train_sibling("a/clip.safetensors", ".state");
	char *r = l2_train_sibling("model.bin", ".state");
	CHECK(!strcmp(p, "run/G.safetensors") && !strcmp(q, "a/clip.state") && !strcmp(r, "model.bin.state"));
	free(p), free(q), free(r);
	char e[32];
	l2_train_eta(59.6, e, sizeof e);
	CHECK(!strcmp(e, "1:00"));
	l2_train_eta(3725, e, sizeof e);
	CHECK(!strcmp(e, "1:02:05"));
	l2_train_eta(-1, e, sizeof e);
	CHECK(!strcmp(e, "0:00"));
	CHECK(l2_cond_parse("mixed") == L2_COND_MIXED && l2_cond_parse("Text") == -1);
	for (int k = 0; k <= L2_COND_MIXED; k++) CHECK(l2_cond_parse(l2_cond_name(k)) == k);
}

static void test_tsv(void)
{
	static const char *names[3] = {"loss", "fd", "rate"}, *fmt[3] = {"%.6f", "%.6f", "%.2f"};
	L2TrainTsv t, r;
	l2_train_tsv_init(&t, 3, names, fmt);
	for (int s = 1; s <= 4; s++) l2_train_tsv_add(&t, 10 * s, (double[]){1.0 / s, s % 2 ? NAN : 0.5 * s, 100 + s});
	char path[300], png[300];
	snprintf(path, sizeof path, "%s/log.tsv", dir);
	snprintf(png, sizeof png, "%s/loss.png", dir);
	l2_train_tsv_write(&t, path);
	size_t n;
	char *txt = l2_read_file(path, &n);
	CHECK(!strncmp(txt, "step\tloss\tfd\trate\n10\t1.000000\tnan\t101.00\n20\t0.500000\t1.000000\t102.00\n", 60));
	free(txt);
	/* back up to step 30 (a resumed run at step 30 continues from there) */
	l2_train_tsv_init(&r, 3, names, fmt);
	l2_train_tsv_read(&r, path, 30);
	CHECK(r.n == 3 && r.rows[2 * 4] == 30 && fabs(r.rows[2 * 4 + 1] - 1.0 / 3) < 1e-6 && isnan(r.rows[2 * 4 + 2]));
	l2_train_tsv_plot(&t, png, "losses", (int[]){0, 1}, 2);
	L2Image im;
	char err[128];
	CHECK(l2_image_load(png, &im, err, sizeof err) == 0 && im.w == 640 && im.h >= 320);
	l2_image_free(&im);
	l2_train_tsv_free(&t), l2_train_tsv_free(&r);
}

/* ---- train_data on a dataset of 12 train + 4 test images ------------------------ */

enum { NIMG = 16, D = 6 };
static char dspath[300];

static void vec_for(int i, int which, float *v)
{
	for (int k = 0; k < D; k++) v[k] = (float)(sin(1.3 * i + 0.7 * k + which) + (k == i % D ? 2 : 0));
}

static void make_dataset(void)
{
	snprintf(dspath, sizeof dspath, "%s/ds.lmdb", dir);
	L2Dataset *ds = l2_dataset_open(dspath, L2_STORE_CREATE);
	L2FeatureInfo fi = {.kind = "text-feature", .dim = D}, fp = {.kind = "pseudo-text-feature", .dim = D};
	L2FeatureInfo fm = {.kind = "image-feature", .dim = D}, f8 = {.kind = "text-feature", .dim = 8};
	l2_dataset_feature_declare(ds, "caption", &fi);
	l2_dataset_feature_declare(ds, "pseudo", &fp);
	l2_dataset_feature_declare(ds, "image", &fm);
	l2_dataset_feature_declare(ds, "cap8", &f8);
	char path[300];
	snprintf(path, sizeof path, "%s/p.png", dir);
	for (int i = 0; i < NIMG; i++) {
		/* 6x4 RGBA: an opaque colour ramp on the left, transparent right column */
		L2Image img;
		l2_image_alloc(&img, 6, 4, L2_MODE_RGBA);
		for (int y = 0; y < 4; y++)
			for (int x = 0; x < 6; x++) {
				uint8_t *q = img.data + ((size_t)y * 6 + x) * 4;
				q[0] = (uint8_t)(10 * i + 20 * x), q[1] = (uint8_t)(40 * y), q[2] = (uint8_t)(255 - 9 * i), q[3] = x == 5 ? 0 : 255;
			}
		l2_image_save_png(path, &img);
		l2_image_free(&img);
		size_t len;
		char *bytes = l2_read_file(path, &len);
		char key[32], cap[32];
		snprintf(key, sizeof key, "img/%02d.png", i);
		l2_dataset_put_image(ds, key, bytes, len, i < 12 ? L2_SPLIT_TRAIN : L2_SPLIT_TEST, NULL);
		free(bytes);
		float v[D];
		if (i != 3) { /* image 3 has no caption */
			snprintf(cap, sizeof cap, "caption %d", i);
			l2_dataset_add_caption(ds, key, cap);
			vec_for(i, 0, v);
			l2_dataset_put_feature(ds, "caption", cap, v);
		}
		if (i != 5) { /* image 5 has no pseudo feature */
			vec_for(i, 1, v);
			l2_dataset_put_feature(ds, "pseudo", key, v);
		}
		vec_for(i, 2, v);
		l2_dataset_put_feature(ds, "image", key, v);
	}
	l2_store_set_meta(l2_dataset_store(ds), "background", "ffffff");
	l2_dataset_finish(ds);
	l2_dataset_close(ds);
}

static int is_unit(const float *v, int d)
{
	double s = 0;
	for (int k = 0; k < d; k++) s += (double)v[k] * v[k];
	return fabs(s - 1) < 1e-5;
}

static void test_train_data(void)
{
	make_dataset();
	L2Dataset *ds = l2_dataset_open(dspath, L2_STORE_RDONLY);
	L2TrainDataOptions o;
	l2_train_data_defaults(&o);
	o.res = 4, o.seed = 11;
	CHECK(l2_train_data_dim(ds, &o, 1) == D);

	/* pseudo, pairs 0.25: round(0.25 * 12) = 3 paired; image 5 (no pseudo) dropped */
	o.pairs = 0.25;
	L2TrainData tr;
	int drop = 0;
	l2_train_data_load(ds, &o, L2_SPLIT_TRAIN, D, &tr, &drop);
	int np = l2_train_data_npaired(&tr);
	CHECK_MSG(np == 3, "paired %d", np);
	int five_paired = 0;
	for (int i = 0; i < tr.n; i++)
		if (!strcmp(tr.keys[i], "img/05.png")) five_paired = tr.paired[i];
	CHECK(tr.n + drop == 12 && drop == (five_paired ? 0 : 1));
	int ok = 1;
	for (int i = 0; i < tr.n; i++) ok &= is_unit(tr.cond + (size_t)i * D, D);
	CHECK(ok);
	/* a paired image's condition is its caption's feature; an unpaired one its pseudo feature */
	for (int i = 0; i < tr.n; i++) {
		int k = atoi(tr.keys[i] + 4);
		float v[D];
		vec_for(k, tr.paired[i] ? 0 : 1, v);
		l2_normalize_rows_exact(v, 1, (size_t)D);
		ok &= !memcmp(v, tr.cond + (size_t)i * D, sizeof v);
		ok &= !tr.paired[i] || k != 3;
	}
	CHECK(ok);
	/* pixels: composited over white, in [-1, 1]; the transparent column is white */
	int R = 4;
	ok = 1;
	for (int i = 0; i < tr.n; i++)
		for (size_t k = 0; k < (size_t)3 * R * R; k++) ok &= tr.px[(size_t)i * 3 * R * R + k] >= -1 && tr.px[(size_t)i * 3 * R * R + k] <= 1;
	CHECK(ok);

	/* the subset grows nested with the fraction */
	L2TrainDataOptions o2 = o;
	o2.pairs = 0.5;
	L2TrainData t2;
	int drop2 = 0;
	l2_train_data_load(ds, &o2, L2_SPLIT_TRAIN, D, &t2, &drop2);
	CHECK(l2_train_data_npaired(&t2) == 6);
	ok = 1;
	for (int i = 0; i < tr.n; i++)
		for (int j = 0; j < t2.n; j++)
			if (!strcmp(tr.keys[i], t2.keys[j]) && tr.paired[i]) ok &= t2.paired[j];
	CHECK(ok);
	l2_train_data_free(&t2);

	/* paired-only keeps just the subset */
	o2 = o, o2.paired_only = 1;
	drop2 = 0;
	l2_train_data_load(ds, &o2, L2_SPLIT_TRAIN, D, &t2, &drop2);
	CHECK(t2.n == 3 && drop2 == 9 && l2_train_data_npaired(&t2) == 3);
	l2_train_data_free(&t2);

	/* test split: every captioned image, paired with its caption */
	drop2 = 0;
	l2_train_data_load(ds, &o, L2_SPLIT_TEST, D, &t2, &drop2);
	CHECK(t2.n == 4 && l2_train_data_npaired(&t2) == 4 && t2.caption[0] && !strcmp(t2.caption[0], "caption 12"));
	l2_train_data_free(&t2);

	/* flips mirror the image; the same stream gives the same sample */
	float x[48], y[48], h[D], h2[D];
	int i0 = 0;
	while (tr.paired[i0]) i0++;
	int flipped = 0, plain = 0;
	for (int t = 0; t < 20; t++) {
		L2Rng r;
		l2_train_rng(&r, 1, t, 0, 0);
		l2_train_data_sample(&tr, &o, i0, 1, &r, x, h);
		const float *src = tr.px + (size_t)i0 * 48;
		if (!memcmp(x, src, sizeof x)) plain++;
		else {
			int m = 1;
			for (int c = 0; c < 3; c++)
				for (int yy = 0; yy < R; yy++)
					for (int xx = 0; xx < R; xx++) m &= x[(c * R + yy) * R + xx] == src[(c * R + yy) * R + R - 1 - xx];
			flipped += m;
		}
		l2_train_rng(&r, 1, t, 0, 0);
		l2_train_data_sample(&tr, &o, i0, 1, &r, y, h2);
		CHECK(!memcmp(x, y, sizeof x) && !memcmp(h, h2, sizeof h));
	}
	CHECK_MSG(flipped + plain == 20 && flipped > 2 && plain > 2, "flipped %d plain %d", flipped, plain);
	l2_train_data_free(&tr);

	/* gaussian: unit, near the image feature for small xi, random per draw */
	o2 = o, o2.cond = L2_COND_GAUSSIAN, o2.pairs = 0, o2.xi = 0.1;
	drop2 = 0;
	l2_train_data_load(ds, &o2, L2_SPLIT_TRAIN, D, &t2, &drop2);
	CHECK(t2.n == 12 && drop2 == 0 && t2.img);
	L2Rng r;
	l2_rng_init(&r, 3, 0);
	l2_train_data_cond(&t2, &o2, 2, &r, h);
	l2_train_data_cond(&t2, &o2, 2, &r, h2);
	double dot = 0;
	for (int k = 0; k < D; k++) dot += (double)h[k] * t2.img[2 * D + k];
	CHECK(is_unit(h, D) && memcmp(h, h2, sizeof h) && dot > 0.99 && dot < 1);
	l2_train_data_free(&t2);

	/* mixed: pseudo or gaussian, about half each */
	o2 = o, o2.cond = L2_COND_MIXED, o2.pairs = 0;
	drop2 = 0;
	l2_train_data_load(ds, &o2, L2_SPLIT_TRAIN, D, &t2, &drop2);
	CHECK(t2.n == 11 && drop2 == 1); /* image 5 has no pseudo feature */
	int pseudo = 0;
	for (int t = 0; t < 200; t++) {
		l2_train_data_cond(&t2, &o2, 0, &r, h);
		pseudo += !memcmp(h, t2.cond, sizeof h);
	}
	CHECK_MSG(pseudo > 70 && pseudo < 130, "pseudo %d of 200", pseudo);
	l2_train_data_free(&t2);
	l2_dataset_close(ds);
}

int main(void)
{
	if (!mkdtemp(dir)) return 1;
	RUN(test_batcher);
	RUN(test_sample_rng);
	RUN(test_paths_eta);
	RUN(test_tsv);
	RUN(test_train_data);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd)) return 1;
	return check_done();
}
