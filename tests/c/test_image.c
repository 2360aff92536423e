/* test_image.c — image decoding, PIL-exact conversions and resampling,
 * torchvision crop/resize, CLIP preprocessing and torch bilinear against the
 * references of tests/ref/make_image.py (tests/ref/image/cases.txt); error
 * paths (corrupt, truncated, non-image, missing files, byte flips); PNG
 * encoding round trips, grids, tensors and directory walking. */
#include "check.h"
#include "io/image.h"
#include "core/sha256.h"
#include "core/util.h"

#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define FIXDIR "tests/fixtures/images/"
#define REFDIR "tests/ref/image/"

/* ---- the cases file ------------------------------------------------------------ */

typedef struct {
	char op[16], fix[64], ref[96];
	int a[6], na;
	char mode[8];
} Case;

static Case *cases;
static int ncases;

static void load_cases(void)
{
	FILE *f = fopen(REFDIR "cases.txt", "r");
	if (!f) {
		printf("# cannot open " REFDIR "cases.txt (run from the repository root)\n");
		return;
	}
	char line[512];
	while (fgets(line, sizeof line, f)) {
		if (line[0] == '#' || line[0] == '\n') continue;
		Case c = {0};
		char *tok[12];
		int nt = 0;
		for (char *t = strtok(line, " \t\n"); t && nt < 12; t = strtok(NULL, " \t\n")) tok[nt++] = t;
		if (nt < 2) continue;
		snprintf(c.op, sizeof c.op, "%s", tok[0]);
		snprintf(c.fix, sizeof c.fix, "%s", tok[1]);
		int first = 2;
		if (!strcmp(c.op, "load")) {
			snprintf(c.mode, sizeof c.mode, "%s", tok[2]);
			first = 3;
		}
		for (int i = first; i < nt - 1 && c.na < 6; i++) c.a[c.na++] = atoi(tok[i]);
		if (strcmp(c.op, "bad")) snprintf(c.ref, sizeof c.ref, "%s", tok[nt - 1]);
		cases = realloc(cases, sizeof *cases * (ncases + 1));
		cases[ncases++] = c;
	}
	fclose(f);
}

/* make_image.py's synth(): a larger image from an integer formula. */
static void synth_image(const char *spec, L2Image *img)
{
	char mode[8] = "";
	int w = 0, h = 0;
	sscanf(spec, "synth:%7[A-Z]:%dx%d", mode, &w, &h);
	L2ImageMode m = !strcmp(mode, "L") ? L2_MODE_L : !strcmp(mode, "LA") ? L2_MODE_LA : !strcmp(mode, "RGB") ? L2_MODE_RGB : L2_MODE_RGBA;
	l2_image_alloc(img, w, h, m);
	int nch = img->channels;
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++)
			for (int c = 0; c < nch; c++) {
				uint32_t hs = ((uint32_t)x * 73856093u) ^ ((uint32_t)y * 19349663u) ^ ((uint32_t)c * 83492791u);
				hs = (hs ^ (hs >> 13)) * 0x5BD1E995u;
				hs ^= hs >> 15;
				int noise = (int)(hs >> 24), v;
				if ((m == L2_MODE_LA || m == L2_MODE_RGBA) && c == nch - 1) {
					v = y < h / 4 ? 255 : y < h / 3 ? 0 : noise;
				} else {
					int smooth = (x * 255 / (w - 1) * (c + 1) + y * 255 / (h - 1) * (3 - c)) / 4;
					int band = (x / 9 + y / 13 + c) % 4 == 0 ? 255 - smooth : smooth;
					v = (band * 3 + noise) / 4;
				}
				img->data[((size_t)y * w + x) * nch + c] = (uint8_t)v;
			}
}

/* Decoded fixtures, cached. */
static struct { char name[64]; L2Image img; } cache[128];
static int ncache;

static const L2Image *fixture(const char *name)
{
	for (int i = 0; i < ncache; i++)
		if (!strcmp(cache[i].name, name)) return &cache[i].img;
	char path[256], err[256];
	snprintf(path, sizeof path, FIXDIR "%s", name);
	L2Image img;
	if (!strncmp(name, "synth:", 6)) {
		synth_image(name, &img);
	} else if (l2_image_load(path, &img, err, sizeof err)) {
		printf("# %s: %s\n", name, err);
		return NULL;
	}
	snprintf(cache[ncache].name, sizeof cache[ncache].name, "%s", name);
	cache[ncache].img = img;
	return &cache[ncache++].img;
}

static unsigned char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	unsigned char *b = malloc((size_t)n + 1);
	*len = fread(b, 1, (size_t)n, f);
	fclose(f);
	return b;
}

/* Compare bytes with a reference file or checksum; 1 when equal. */
static int same_as_ref(const Case *c, const void *data, size_t n)
{
	if (!strncmp(c->ref, "sha256:", 7)) {
		char hex[65];
		l2_sha256_hex(data, n, hex);
		if (strcmp(hex, c->ref + 7)) {
			printf("# %s %s %d %d: checksum differs\n", c->op, c->fix, c->a[0], c->a[1]);
			return 0;
		}
		return 1;
	}
	char path[256];
	snprintf(path, sizeof path, REFDIR "%s", c->ref);
	size_t len;
	unsigned char *r = read_all(path, &len);
	if (!r) {
		printf("# missing %s\n", path);
		return 0;
	}
	int ok = len == n && !memcmp(r, data, n);
	if (!ok) {
		size_t i = 0;
		while (i < n && i < len && r[i] == ((const unsigned char *)data)[i]) i++;
		printf("# %s %s: %zu bytes vs reference %zu; first difference at %zu (%d vs %d)\n", c->op, c->fix, n, len, i,
		       i < n ? ((const unsigned char *)data)[i] : -1, i < len ? r[i] : -1);
	}
	free(r);
	return ok;
}

static size_t img_bytes(const L2Image *im) { return (size_t)im->w * im->h * im->channels * (im->mode == L2_MODE_I16 ? 2 : 1); }
static const void *img_data(const L2Image *im) { return im->mode == L2_MODE_I16 ? (const void *)im->data16 : (const void *)im->data; }

static int run_op(const char *op)
{
	int n = 0;
	for (int i = 0; i < ncases; i++) {
		Case *c = &cases[i];
		if (strcmp(c->op, op)) continue;
		n++;
		if (!strcmp(op, "bad")) {
			char path[256], err[256] = "";
			snprintf(path, sizeof path, FIXDIR "%s", c->fix);
			L2Image img;
			int rc = l2_image_load(path, &img, err, sizeof err);
			CHECK_MSG(rc == -1, "%s: accepted a file PIL refuses", c->fix);
			CHECK_MSG(err[0] && !strchr(err, '\n'), "%s: no one-line reason", c->fix);
			if (rc == 0) l2_image_free(&img);
			continue;
		}
		const L2Image *im = fixture(c->fix);
		CHECK_MSG(im != NULL, "%s: not decoded", c->fix);
		if (!im) continue;
		L2Image out = {0};
		if (!strcmp(op, "load")) {
			CHECK_MSG(!strcmp(l2_image_mode_name(im->mode), c->mode), "%s: mode %s, PIL %s", c->fix, l2_image_mode_name(im->mode), c->mode);
			CHECK_MSG(im->w == c->a[0] && im->h == c->a[1], "%s: size %dx%d", c->fix, im->w, im->h);
			CHECK(same_as_ref(c, img_data(im), img_bytes(im)));
			continue;
		} else if (!strcmp(op, "rgb")) {
			l2_image_to_rgb(im, &out);
		} else if (!strcmp(op, "resize")) {
			l2_image_resize_bicubic_pil(im, c->a[0], c->a[1], &out);
		} else if (!strcmp(op, "short")) {
			l2_image_resize_short_side(im, c->a[0], &out);
			CHECK_MSG(out.w == c->a[1] && out.h == c->a[2], "%s: short %d gave %dx%d", c->fix, c->a[0], out.w, out.h);
		} else if (!strcmp(op, "crop")) {
			l2_image_center_crop(im, c->a[0], c->a[1], &out);
		} else if (!strcmp(op, "over")) {
			uint8_t bg[3] = {(uint8_t)c->a[0], (uint8_t)c->a[1], (uint8_t)c->a[2]};
			l2_image_to_rgb_over(im, bg, &out);
		} else if (!strcmp(op, "clip")) {
			int res = c->a[0];
			float *x = malloc(sizeof(float) * 3 * res * res);
			l2_clip_preprocess_image(im, res, NULL, x);
			CHECK_MSG(same_as_ref(c, x, sizeof(float) * 3 * res * res), "clip %s %d", c->fix, res);
			free(x);
			continue;
		} else if (!strcmp(op, "bilinh")) {
			int oh = c->a[0], ow = c->a[1];
			float *x = malloc(sizeof(float) * 3 * im->w * im->h), *y = malloc(sizeof(float) * 3 * oh * ow);
			l2_image_rgb_to_chw(im, x);
			l2_image_resize_bilinear_f32(x, 3, im->h, im->w, y, oh, ow);
			CHECK_MSG(same_as_ref(c, y, sizeof(float) * 3 * oh * ow), "bilinear %s %dx%d: not bit-exact", c->fix, oh, ow);
			free(x), free(y);
			continue;
		} else if (!strcmp(op, "bilin") || !strcmp(op, "bilins")) {
			int oh = c->a[0], ow = c->a[1];
			L2Image rgb;
			l2_image_to_rgb(im, &rgb);
			float *x = malloc(sizeof(float) * 3 * rgb.w * rgb.h), *y = malloc(sizeof(float) * 3 * oh * ow);
			l2_image_rgb_to_chw(&rgb, x);
			l2_image_resize_bilinear_f32(x, 3, rgb.h, rgb.w, y, oh, ow);
			char path[256];
			snprintf(path, sizeof path, REFDIR "%s", c->ref);
			size_t len;
			unsigned char *r = read_all(path, &len);
			CHECK_MSG(r != NULL, "missing %s", path);
			if (r && !strcmp(op, "bilin")) {
				CHECK(len == sizeof(float) * 3 * oh * ow);
				if (len == sizeof(float) * 3 * oh * ow) {
					CHECK_ARRAY_CLOSE_F(y, (const float *)r, (size_t)3 * oh * ow, 1e-7, 1e-6);
					CHECK_MSG(!memcmp(y, r, len), "bilinear %s %dx%d: not bit-exact", c->fix, oh, ow);
				}
			} else if (r) {
				size_t m = len / 8;
				float *got = malloc(sizeof(float) * m), *want = malloc(sizeof(float) * m);
				for (size_t k = 0; k < m; k++) {
					uint32_t idx;
					memcpy(&idx, r + 8 * k, 4);
					memcpy(&want[k], r + 8 * k + 4, 4);
					got[k] = idx < (uint32_t)(3 * oh * ow) ? y[idx] : NAN;
				}
				CHECK_ARRAY_CLOSE_F(got, want, m, 1e-7, 1e-6);
				CHECK_MSG(!memcmp(got, want, m * sizeof(float)), "bilinear %s %dx%d: not bit-exact", c->fix, oh, ow);
				free(got), free(want);
			}
			free(r), free(x), free(y);
			l2_image_free(&rgb);
			continue;
		}
		CHECK_MSG(same_as_ref(c, img_data(&out), img_bytes(&out)), "%s %s %d %d (mode %s, %dx%d)", op, c->fix, c->a[0], c->a[1],
			  l2_image_mode_name(im->mode), out.w, out.h);
		l2_image_free(&out);
	}
	return n;
}

#define GOLDEN_TEST(name, op, min)                                           \
	static void name(void)                                                \
	{                                                                     \
		int n = run_op(op);                                           \
		printf("# %d '%s' cases\n", n, op);                           \
		CHECK(n >= (min));                                            \
	}
GOLDEN_TEST(test_decode_modes_as_pil, "load", 40)
GOLDEN_TEST(test_convert_rgb_as_pil, "rgb", 30)
GOLDEN_TEST(test_resize_bicubic_as_pil, "resize", 180)
GOLDEN_TEST(test_resize_short_side_as_torchvision, "short", 90)
GOLDEN_TEST(test_center_crop_as_torchvision, "crop", 120)
GOLDEN_TEST(test_clip_preprocess_as_torchvision, "clip", 90)
GOLDEN_TEST(test_alpha_over, "over", 6)
GOLDEN_TEST(test_bilinear_as_torch, "bilin", 3)
GOLDEN_TEST(test_bilinear_sampled_as_torch, "bilins", 10)
GOLDEN_TEST(test_bilinear_299_as_torch, "bilinh", 1)
GOLDEN_TEST(test_refuses_what_pil_refuses, "bad", 8)

/* ---- error paths ------------------------------------------------------------------ */

static void test_errors(void)
{
	L2Image img;
	char err[256];
	CHECK(l2_image_load("tests/fixtures/images/does-not-exist.png", &img, err, sizeof err) == -1);
	CHECK(strstr(err, "No such file") != NULL);
	CHECK(l2_image_load("tests/fixtures/images", &img, err, sizeof err) == -1);
	CHECK(l2_image_load_mem((const unsigned char *)"", 0, &img, err, sizeof err) == -1);
	CHECK(!strcmp(err, "empty file"));
	CHECK(l2_image_load_mem((const unsigned char *)"GIF89a......", 12, &img, err, sizeof err) == -1);
	CHECK(!strcmp(err, "not a PNG or JPEG file"));
	/* content decides, not the name */
	CHECK(l2_image_load(FIXDIR "notimage.txt", &img, err, sizeof err) == -1);
	size_t len;
	unsigned char *b = read_all(FIXDIR "jrgb.jpg", &len);
	CHECK(b && l2_image_load_mem(b, len, &img, err, sizeof err) == 0);
	if (b) l2_image_free(&img);
	free(b);
	/* "-" reads standard input */
	if (freopen(FIXDIR "p8t.png", "rb", stdin)) {
		CHECK(l2_image_load("-", &img, err, sizeof err) == 0 && img.mode == L2_MODE_P && img.w == 50);
		l2_image_free(&img);
	}
	b = read_all(FIXDIR "bad_trunc.png", &len);
	CHECK(b && l2_image_load_mem(b, len, &img, err, sizeof err) == -1 && !strcmp(err, "truncated PNG file"));
	free(b);
	b = read_all(FIXDIR "bad_trunc.jpg", &len);
	CHECK(b && l2_image_load_mem(b, len, &img, err, sizeof err) == -1 && !strcmp(err, "truncated JPEG file"));
	free(b);
}

/* PIL's decompression-bomb limit (2 * MAX_IMAGE_PIXELS) is refused before
 * any pixel memory is touched. */
static void test_bomb(void)
{
	unsigned char png[8 + 25 + 12 + 12];
	memcpy(png, "\x89PNG\r\n\x1a\n", 8);
	unsigned char ihdr[17] = {'I', 'H', 'D', 'R', 0, 0, 0x4e, 0x20, 0, 0, 0x4e, 0x20, 8, 2, 0, 0, 0}; /* 20000 x 20000 RGB */
	memcpy(png + 8, "\0\0\0\x0d", 4);
	memcpy(png + 12, ihdr, 17);
	unsigned long c = crc32(0L, ihdr, 17);
	unsigned char be[4] = {(unsigned char)(c >> 24), (unsigned char)(c >> 16), (unsigned char)(c >> 8), (unsigned char)c};
	memcpy(png + 29, be, 4);
	memcpy(png + 33, "\0\0\0\0IDAT\x35\xaf\x06\x1e", 12);
	memcpy(png + 45, "\0\0\0\0IEND\xae\x42\x60\x82", 12);
	L2Image img;
	char err[256] = "";
	CHECK(l2_image_load_mem(png, sizeof png, &img, err, sizeof err) == -1);
	CHECK_MSG(strstr(err, "too large") != NULL, "got: %s", err);
	/* the same header at 100 x 100 decodes up to the missing image data */
	png[14] = 0, png[15] = 100, png[18] = 0, png[19] = 100;
	c = crc32(0L, png + 12, 17);
	png[29] = (unsigned char)(c >> 24), png[30] = (unsigned char)(c >> 16), png[31] = (unsigned char)(c >> 8), png[32] = (unsigned char)c;
	CHECK(l2_image_load_mem(png, sizeof png, &img, err, sizeof err) == -1);
	CHECK_MSG(strstr(err, "too large") == NULL && err[0], "got: %s", err);
}

/* Every prefix of a PNG and of a (progressive) JPEG is refused cleanly, and
 * random byte flips never crash (run this under ASan). */
static void test_truncations_and_flips(void)
{
	const char *files[] = {FIXDIR "rgba8.png", FIXDIR "p4.png", FIXDIR "g4i.png", FIXDIR "jprog.jpg", FIXDIR "jrgb444.jpg", FIXDIR "jcmyk.jpg"};
	for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
		size_t len;
		unsigned char *b = read_all(files[f], &len);
		CHECK(b != NULL);
		if (!b) continue;
		L2Image img;
		char err[256];
		int accepted = 0;
		for (size_t cut = 0; cut < len; cut += 1 + cut / 40) {
			unsigned char *p = malloc(cut + 1);
			memcpy(p, b, cut);
			if (l2_image_load_mem(p, cut, &img, err, sizeof err) == 0) {
				accepted++;
				l2_image_free(&img);
			} else {
				CHECK(err[0] != 0);
			}
			free(p);
		}
		/* PNGs: the IEND chunk is not needed (PIL does not need it either) */
		CHECK_MSG(accepted <= 1, "%s: %d truncated versions accepted", files[f], accepted);
		unsigned char *p = malloc(len);
		for (int k = 0; k < 300; k++) {
			memcpy(p, b, len);
			for (int j = 0; j < 1 + k % 4; j++) p[check_rand_u64() % len] ^= (unsigned char)(1 + check_rand_u64() % 255);
			if (l2_image_load_mem(p, len, &img, err, sizeof err) == 0) l2_image_free(&img);
		}
		free(p);
		free(b);
	}
}

/* ---- encoding, tensors, grids --------------------------------------------------------- */

static char tmpdir[] = "/tmp/l2-test-image-XXXXXX";

static void test_png_roundtrip(void)
{
	L2ImageMode modes[] = {L2_MODE_L, L2_MODE_LA, L2_MODE_RGB, L2_MODE_RGBA};
	for (int m = 0; m < 4; m++) {
		L2Image a, b;
		l2_image_alloc(&a, 29 + m, 17, modes[m]);
		for (size_t i = 0; i < (size_t)a.w * a.h * a.channels; i++) a.data[i] = (uint8_t)check_rand_u64();
		char path[256], err[256];
		snprintf(path, sizeof path, "%s/rt%d.png", tmpdir, m);
		l2_image_save_png(path, &a);
		CHECK(l2_image_load(path, &b, err, sizeof err) == 0);
		CHECK(b.mode == modes[m] && b.w == a.w && b.h == a.h);
		CHECK(b.mode == a.mode && !memcmp(a.data, b.data, (size_t)a.w * a.h * a.channels));
		l2_image_free(&a);
		l2_image_free(&b);
	}
	/* other modes are written as their RGB */
	const L2Image *p = fixture("p8t.png");
	CHECK(p != NULL);
	if (p) {
		L2Image rgb, b;
		char path[256], err[256];
		snprintf(path, sizeof path, "%s/p.png", tmpdir);
		l2_image_save_png(path, p);
		l2_image_to_rgb(p, &rgb);
		CHECK(l2_image_load(path, &b, err, sizeof err) == 0 && b.mode == L2_MODE_RGB);
		CHECK(!memcmp(rgb.data, b.data, (size_t)rgb.w * rgb.h * 3));
		l2_image_free(&rgb);
		l2_image_free(&b);
	}
}

static void test_tensors(void)
{
	const L2Image *im = fixture("rgb8.png");
	CHECK(im != NULL);
	if (!im) return;
	size_t n = (size_t)im->w * im->h;
	float *x = malloc(sizeof(float) * 3 * n);
	l2_image_rgb_to_chw(im, x);
	CHECK(x[0] == im->data[0] / 255.0f && x[n] == im->data[1] / 255.0f && x[2 * n + 1] == im->data[5] / 255.0f);
	L2Image back;
	l2_image_from_chw(x, im->w, im->h, 0.0f, 1.0f, &back);
	CHECK(!memcmp(back.data, im->data, 3 * n));
	l2_image_free(&back);
	/* [-1, 1] range, rounding and clipping */
	for (size_t i = 0; i < 3 * n; i++) x[i] = x[i] * 2 - 1;
	x[0] = -3.0f, x[1] = 7.0f, x[2] = NAN;
	l2_image_from_chw(x, im->w, im->h, -1.0f, 1.0f, &back);
	CHECK(back.data[0] == 0 && back.data[3] == 255 && back.data[6] == 0);
	CHECK(!memcmp(back.data + 9 * 3, im->data + 9 * 3, 3 * n - 27));
	l2_image_free(&back);
	free(x);
	/* the CLIP constants as torch holds them */
	CHECK(L2_CLIP_MEAN[0] == (float)0.48145466 && L2_CLIP_STD[2] == (float)0.27577711);
}

static void test_grid(void)
{
	L2Image ims[5], g;
	for (int k = 0; k < 5; k++) {
		l2_image_alloc(&ims[k], 4, 3, L2_MODE_RGB);
		memset(ims[k].data, 10 * (k + 1), 36);
	}
	uint8_t bg[3] = {1, 2, 3};
	l2_image_grid(ims, 5, 2, 1, bg, &g);
	CHECK(g.w == 1 + 2 * 5 && g.h == 1 + 3 * 4);
	CHECK(g.data[0] == 1 && g.data[1] == 2 && g.data[2] == 3);
	CHECK(g.data[(1 * g.w + 1) * 3] == 10);          /* image 0 */
	CHECK(g.data[(1 * g.w + 6) * 3] == 20);          /* image 1 */
	CHECK(g.data[(9 * g.w + 1) * 3] == 50);          /* image 4 */
	CHECK(g.data[(9 * g.w + 6) * 3 + 2] == 3);       /* empty cell */
	l2_image_free(&g);
	for (int k = 0; k < 5; k++) l2_image_free(&ims[k]);
}

/* ---- file names and directories ---------------------------------------------------------- */

static void touch(const char *rel)
{
	char p[512];
	snprintf(p, sizeof p, "%s/tree/%s", tmpdir, rel);
	FILE *f = fopen(p, "w");
	if (f) fclose(f);
}

static void test_list_dir(void)
{
	CHECK(l2_image_path_ok("a.png") && l2_image_path_ok("x/B.JPG") && l2_image_path_ok("c.Jpeg"));
	CHECK(!l2_image_path_ok("a.gif") && !l2_image_path_ok("png") && !l2_image_path_ok("x.png/y") && !l2_image_path_ok("a.png.txt"));
	char p[512], q[512];
	snprintf(p, sizeof p, "%s/tree/sub/deeper", tmpdir);
	l2_mkdir_p(p);
	snprintf(p, sizeof p, "%s/tree/a.b", tmpdir);
	l2_mkdir_p(p);
	touch("b.png");
	touch("a.png");
	touch("A.JPG");
	touch("a.b/z.jpeg");
	touch("sub/x.jpg");
	touch("sub/deeper/y.png");
	touch("notes.txt");
	touch("sub/readme");
	/* a symlink loop back to the root, and a dangling one */
	snprintf(p, sizeof p, "%s/tree/sub/loop", tmpdir);
	snprintf(q, sizeof q, "%s/tree", tmpdir);
	CHECK(symlink(q, p) == 0);
	snprintf(p, sizeof p, "%s/tree/dangling.png", tmpdir);
	CHECK(symlink("/nonexistent/l2", p) == 0);
	char **v;
	size_t skipped = 0;
	size_t n = l2_image_list_dir(q, &v, &skipped);
	const char *want[] = {"A.JPG", "a.b/z.jpeg", "a.png", "b.png", "sub/deeper/y.png", "sub/x.jpg"};
	CHECK(n == 6);
	for (size_t i = 0; i < n && i < 6; i++) CHECK_MSG(!strcmp(v[i], want[i]), "entry %zu: %s, expected %s", i, v[i], want[i]);
	CHECK(skipped == 3);
	for (size_t i = 0; i < n; i++) free(v[i]);
	free(v);
}

/* resize_crop computes only a window; it must equal resize then crop, for
 * every mode, one-axis resizes and windows that stick out (zero fill). */
static void test_resize_crop_window(void)
{
	const char *fx[] = {"rgba8b.png", "ga8.png", "jcmyk.jpg", "g8.png", "rgb8i.png", "p8t.png", "g16.png", "g1.png"};
	int bad = 0, n = 0;
	for (size_t f = 0; f < sizeof fx / sizeof *fx; f++) {
		const L2Image *im = fixture(fx[f]);
		CHECK(im != NULL);
		if (!im) continue;
		for (int k = 0; k < 40; k++) {
			int w = k % 5 == 0 ? im->w : 1 + (int)(check_rand_u64() % 90);
			int h = k % 7 == 0 ? im->h : 1 + (int)(check_rand_u64() % 90);
			int x = (int)(check_rand_u64() % (unsigned)w) - (k % 9 == 0 ? 3 : 0), y = (int)(check_rand_u64() % (unsigned)h);
			int cw = 1 + (int)(check_rand_u64() % (unsigned)(w - (x > 0 ? x : 0) + (k % 11 == 0 ? 4 : 0)));
			int ch = 1 + (int)(check_rand_u64() % (unsigned)(h - y));
			L2Image a, r, b;
			l2_image_resize_crop_pil(im, w, h, x, y, cw, ch, &a);
			l2_image_resize_bicubic_pil(im, w, h, &r);
			l2_image_crop(&r, x, y, cw, ch, &b);
			n++;
			if (a.w != b.w || a.h != b.h || a.mode != b.mode || memcmp(img_data(&a), img_data(&b), img_bytes(&a))) {
				if (bad++ < 5) printf("# %s: resize %dx%d crop (%d,%d) %dx%d differs\n", fx[f], w, h, x, y, cw, ch);
			}
			l2_image_free(&a), l2_image_free(&r), l2_image_free(&b);
		}
	}
	CHECK(bad == 0);
	CHECK(n == 320);
}

/* ---- the file-level CLIP entry point and a timing note --------------------------------------- */

static void test_clip_file_api(void)
{
	float *x = malloc(sizeof(float) * 3 * 16 * 16), *y = malloc(sizeof(float) * 3 * 16 * 16);
	char err[256];
	CHECK(l2_clip_preprocess(FIXDIR "rgba8b.png", 16, NULL, x, err, sizeof err) == 0);
	const L2Image *im = fixture("rgba8b.png");
	if (im) {
		l2_clip_preprocess_image(im, 16, NULL, y);
		CHECK(!memcmp(x, y, sizeof(float) * 3 * 16 * 16));
	}
	uint8_t bg[3] = {255, 255, 255};
	CHECK(l2_clip_preprocess(FIXDIR "rgba8b.png", 16, bg, y, err, sizeof err) == 0);
	CHECK(memcmp(x, y, sizeof(float) * 3 * 16 * 16) != 0);
	CHECK(l2_clip_preprocess(FIXDIR "bad_trunc.jpg", 16, NULL, x, err, sizeof err) == -1);
	free(x);
	free(y);
}

static void test_speed_note(void)
{
	/* 640x480 RGB -> CLIP 224 input: report the rate (not a pass/fail gate) */
	L2Image im;
	l2_image_alloc(&im, 640, 480, L2_MODE_RGB);
	for (size_t i = 0; i < (size_t)640 * 480 * 3; i++) im.data[i] = (uint8_t)(i * 7 + (i >> 9));
	float *x = malloc(sizeof(float) * 3 * 224 * 224);
	double t0 = l2_now();
	clock_t c0 = clock();
	int n = 0;
	while (l2_now() - t0 < 0.3 || n < 3) {
		l2_clip_preprocess_image(&im, 224, NULL, x);
		n++;
	}
	printf("# clip preprocess 640x480 -> 224: %.2f ms CPU per image (%.2f ms wall)\n",
	       1e3 * (double)(clock() - c0) / CLOCKS_PER_SEC / n, 1e3 * (l2_now() - t0) / n);
	CHECK(n > 0);
	free(x);
	l2_image_free(&im);
}

int main(void)
{
	if (!mkdtemp(tmpdir)) return 1;
	load_cases();
	RUN(test_decode_modes_as_pil);
	RUN(test_convert_rgb_as_pil);
	RUN(test_resize_bicubic_as_pil);
	RUN(test_resize_short_side_as_torchvision);
	RUN(test_center_crop_as_torchvision);
	RUN(test_clip_preprocess_as_torchvision);
	RUN(test_alpha_over);
	RUN(test_bilinear_as_torch);
	RUN(test_bilinear_sampled_as_torch);
	RUN(test_bilinear_299_as_torch);
	RUN(test_refuses_what_pil_refuses);
	RUN(test_errors);
	RUN(test_bomb);
	RUN(test_truncations_and_flips);
	RUN(test_png_roundtrip);
	RUN(test_tensors);
	RUN(test_grid);
	RUN(test_list_dir);
	RUN(test_resize_crop_window);
	RUN(test_clip_file_api);
	RUN(test_speed_note);
	for (int i = 0; i < ncache; i++) l2_image_free(&cache[i].img);
	free(cases);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd)) {}
	return check_done();
}
