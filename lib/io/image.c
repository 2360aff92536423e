/* image.c — loading (format by content), PIL's mode conversions, torchvision's
 * centre crop and short-side resize, CLIP's preprocessing, tensors, grids and
 * directory walking.  Codecs: image_png.c, image_jpeg.c; resampling:
 * resample.c. */
#include "io/image_priv.h"
#include "core/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* CLIP's Normalize constants, as torch holds them: the Python doubles
 * rounded to float32 (not the decimal rounded straight to float). */
const float L2_CLIP_MEAN[3] = {(float)0.48145466, (float)0.4578275, (float)0.40821073};
const float L2_CLIP_STD[3] = {(float)0.26862954, (float)0.26130258, (float)0.27577711};

static int mode_channels(L2ImageMode m)
{
	switch (m) {
	case L2_MODE_LA: return 2;
	case L2_MODE_RGB: return 3;
	case L2_MODE_RGBA: case L2_MODE_CMYK: return 4;
	default: return 1;
	}
}

const char *l2_image_mode_name(L2ImageMode m)
{
	static const char *names[] = {"L", "LA", "RGB", "RGBA", "P", "I", "CMYK", "1"};
	return (unsigned)m < sizeof names / sizeof *names ? names[m] : "?";
}

void l2_image_alloc(L2Image *img, int w, int h, L2ImageMode mode)
{
	memset(img, 0, sizeof *img);
	img->w = w;
	img->h = h;
	img->mode = mode;
	img->channels = mode_channels(mode);
	size_t n = l2_mul_size(l2_mul_size((size_t)(w > 0 ? w : 0), (size_t)(h > 0 ? h : 0)), (size_t)img->channels);
	if (mode == L2_MODE_I16)
		img->data16 = l2_malloc(n * sizeof(uint16_t) + 1);
	else
		img->data = l2_malloc(n + 1);
	if (mode == L2_MODE_P) l2_image_palette_ramp(img);
}

void l2_image_free(L2Image *img)
{
	free(img->data);
	free(img->data16);
	img->data = NULL;
	img->data16 = NULL;
}

void l2_image_palette_ramp(L2Image *img)
{
	for (int i = 0; i < 256; i++) {
		img->palette[4 * i] = img->palette[4 * i + 1] = img->palette[4 * i + 2] = (uint8_t)i;
		img->palette[4 * i + 3] = 255;
	}
}

/* Everything but the pixels. */
static void copy_meta(const L2Image *in, L2Image *out)
{
	memcpy(out->palette, in->palette, sizeof out->palette);
	out->palette_len = in->palette_len;
	out->has_trns = in->has_trns;
	memcpy(out->trns_color, in->trns_color, sizeof out->trns_color);
}

void l2_image_copy(const L2Image *in, L2Image *out)
{
	l2_image_alloc(out, in->w, in->h, in->mode);
	copy_meta(in, out);
	size_t n = (size_t)in->w * in->h * in->channels;
	if (in->mode == L2_MODE_I16) memcpy(out->data16, in->data16, n * sizeof(uint16_t));
	else memcpy(out->data, in->data, n);
}

/* ---- loading ------------------------------------------------------------------ */

int l2_image_load_mem(const unsigned char *buf, size_t len, L2Image *img, char *err, size_t errlen)
{
	memset(img, 0, sizeof *img);
	if (errlen) err[0] = 0;
	if (len == 0) {
		snprintf(err, errlen, "empty file");
		return -1;
	}
	if (len >= 8 && !memcmp(buf, "\x89PNG\r\n\x1a\n", 8)) return l2_image_png_decode(buf, len, img, err, errlen);
	if (len >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF) return l2_image_jpeg_decode(buf, len, img, err, errlen);
	snprintf(err, errlen, "not a PNG or JPEG file");
	return -1;
}

int l2_image_read_file(const char *path, unsigned char **out, size_t *outlen, char *err, size_t errlen)
{
	int fd = !strcmp(path, "-") ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st)) memset(&st, 0, sizeof st);
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		snprintf(err, errlen, "is a directory");
		return -1;
	}
	size_t cap = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size + 1 : 1 << 16, len = 0;
	unsigned char *buf = l2_malloc(cap);
	for (;;) {
		if (len == cap) buf = l2_realloc(buf, cap *= 2);
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR) continue;
		if (r < 0) {
			snprintf(err, errlen, "%s", strerror(errno));
			free(buf);
			if (fd != STDIN_FILENO) close(fd);
			return -1;
		}
		if (r == 0) break;
		len += (size_t)r;
	}
	if (fd != STDIN_FILENO) close(fd);
	*out = buf;
	*outlen = len;
	return 0;
}

int l2_image_load(const char *path, L2Image *img, char *err, size_t errlen)
{
	memset(img, 0, sizeof *img);
	unsigned char *buf;
	size_t len;
	if (l2_image_read_file(path, &buf, &len, err, errlen)) return -1;
	int rc = l2_image_load_mem(buf, len, img, err, errlen);
	free(buf);
	return rc;
}

/* ---- conversions (PIL 9.4 Convert.c) -------------------------------------------- */

/* PIL's MULDIV255: a * b / 255 rounded, with shifts. */
static inline unsigned muldiv255(unsigned a, unsigned b)
{
	unsigned t = a * b + 128;
	return ((t >> 8) + t) >> 8;
}

static inline uint8_t clip8i(int v) { return (uint8_t)(v <= 0 ? 0 : v < 256 ? v : 255); }

void l2_image_to_rgb(const L2Image *in, L2Image *out)
{
	L2Image o;
	l2_image_alloc(&o, in->w, in->h, L2_MODE_RGB);
	size_t n = (size_t)in->w * in->h;
	uint8_t *d = o.data;
	const uint8_t *s = in->data;
	switch (in->mode) {
	case L2_MODE_L: case L2_MODE_1:
		for (size_t i = 0; i < n; i++) d[3 * i] = d[3 * i + 1] = d[3 * i + 2] = s[i];
		break;
	case L2_MODE_LA:
		for (size_t i = 0; i < n; i++) d[3 * i] = d[3 * i + 1] = d[3 * i + 2] = s[2 * i];
		break;
	case L2_MODE_RGB:
		memcpy(d, s, 3 * n);
		break;
	case L2_MODE_RGBA:
		for (size_t i = 0; i < n; i++) memcpy(d + 3 * i, s + 4 * i, 3);
		break;
	case L2_MODE_P:
		for (size_t i = 0; i < n; i++) memcpy(d + 3 * i, in->palette + 4 * s[i], 3);
		break;
	case L2_MODE_I16: /* i2rgb: clip to 0..255 */
		for (size_t i = 0; i < n; i++) d[3 * i] = d[3 * i + 1] = d[3 * i + 2] = (uint8_t)(in->data16[i] > 255 ? 255 : in->data16[i]);
		break;
	case L2_MODE_CMYK: /* cmyk2rgb */
		for (size_t i = 0; i < n; i++) {
			int nk = 255 - s[4 * i + 3];
			for (int c = 0; c < 3; c++) d[3 * i + c] = clip8i(nk - (int)muldiv255(s[4 * i + c], (unsigned)nk));
		}
		break;
	}
	*out = o;
}

void l2_image_to_rgb_over(const L2Image *in, const uint8_t bg[3], L2Image *out)
{
	l2_image_to_rgb(in, out);
	size_t n = (size_t)in->w * in->h;
	int keyed = in->has_trns && (in->mode == L2_MODE_L || in->mode == L2_MODE_1 || in->mode == L2_MODE_RGB || in->mode == L2_MODE_I16);
	if (!(in->mode == L2_MODE_LA || in->mode == L2_MODE_RGBA || (in->mode == L2_MODE_P && in->has_trns) || keyed)) return;
	uint8_t *d = out->data;
	for (size_t i = 0; i < n; i++) {
		unsigned a;
		switch (in->mode) {
		case L2_MODE_LA: a = in->data[2 * i + 1]; break;
		case L2_MODE_RGBA: a = in->data[4 * i + 3]; break;
		case L2_MODE_P: a = in->palette[4 * in->data[i] + 3]; break;
		case L2_MODE_RGB:
			a = in->data[3 * i] == in->trns_color[0] && in->data[3 * i + 1] == in->trns_color[1] &&
			    in->data[3 * i + 2] == in->trns_color[2] ? 0 : 255;
			break;
		case L2_MODE_I16: a = in->data16[i] == in->trns_color[0] ? 0 : 255; break;
		default: a = in->data[i] == in->trns_color[0] ? 0 : 255; break;
		}
		if (a == 255) continue;
		for (int c = 0; c < 3; c++) d[3 * i + c] = (uint8_t)((d[3 * i + c] * a + bg[c] * (255 - a) + 127) / 255);
	}
}

/* ---- geometry (torchvision on PIL images) ------------------------------------------- */

void l2_image_crop(const L2Image *in, int x0, int y0, int w, int h, L2Image *out)
{
	L2Image o;
	l2_image_alloc(&o, w, h, in->mode);
	copy_meta(in, &o);
	int c = in->channels;
	size_t es = in->mode == L2_MODE_I16 ? 2 : 1;
	unsigned char *od = in->mode == L2_MODE_I16 ? (unsigned char *)o.data16 : o.data;
	const unsigned char *id = in->mode == L2_MODE_I16 ? (const unsigned char *)in->data16 : in->data;
	memset(od, 0, (size_t)w * h * c * es);
	int xa = x0 < 0 ? 0 : x0, xb = x0 + w > in->w ? in->w : x0 + w;
	for (int y = 0; y < h; y++) {
		int sy = y0 + y;
		if (sy < 0 || sy >= in->h || xb <= xa) continue;
		memcpy(od + ((size_t)y * w + (xa - x0)) * c * es, id + ((size_t)sy * in->w + xa) * c * es, (size_t)(xb - xa) * c * es);
	}
	*out = o;
}

/* Python's int(round(d / 2.0)) for d >= 0: halves go to the even neighbour. */
static int round_half_even_div2(int d)
{
	int k = d / 2;
	if (d % 2 == 0) return k;
	return k % 2 == 0 ? k : k + 1;
}

/* torchvision CenterCrop's window for an (iw, ih) image: the crop origin,
 * negative where it pads with zeros (left/top get the smaller half). */
static void center_crop_origin(int iw, int ih, int w, int h, int *left, int *top)
{
	int l = 0, t = 0;
	if (w > iw || h > ih) {
		int pl = w > iw ? (w - iw) / 2 : 0, pt = h > ih ? (h - ih) / 2 : 0;
		int pr = w > iw ? (w - iw + 1) / 2 : 0, pb = h > ih ? (h - ih + 1) / 2 : 0;
		l = -pl;
		t = -pt;
		iw += pl + pr;
		ih += pt + pb;
	}
	*left = l + round_half_even_div2(iw - w);
	*top = t + round_half_even_div2(ih - h);
}

void l2_image_center_crop(const L2Image *in, int w, int h, L2Image *out)
{
	int left, top;
	center_crop_origin(in->w, in->h, w, h, &left, &top);
	l2_image_crop(in, left, top, w, h, out);
}

/* torchvision Resize(size)'s output size. */
static void short_side_size(int w, int h, int size, int *nw, int *nh)
{
	int sh = w <= h ? w : h, lg = w <= h ? h : w;
	int nlong = (int)((double)size * (double)lg / (double)sh); /* int(size * long / short) */
	*nw = w <= h ? size : nlong;
	*nh = w <= h ? nlong : size;
}

void l2_image_resize_short_side(const L2Image *in, int size, L2Image *out)
{
	int nw, nh;
	short_side_size(in->w, in->h, size, &nw, &nh);
	if (nw == in->w && nh == in->h) {
		l2_image_copy(in, out);
		return;
	}
	l2_image_resize_bicubic_pil(in, nw, nh, out);
}

/* ---- CLIP ------------------------------------------------------------------------ */

void l2_clip_preprocess_image(const L2Image *img, int res, const uint8_t *bg, float *out)
{
	/* Resize(res) then CenterCrop(res), computing only the crop */
	L2Image c, rgb;
	int nw, nh, left, top;
	short_side_size(img->w, img->h, res, &nw, &nh);
	center_crop_origin(nw, nh, res, res, &left, &top);
	if (nw == img->w && nh == img->h) l2_image_crop(img, left, top, res, res, &c);
	else l2_image_resize_crop_pil(img, nw, nh, left, top, res, res, &c);
	if (bg) l2_image_to_rgb_over(&c, bg, &rgb);
	else l2_image_to_rgb(&c, &rgb);
	l2_image_free(&c);
	size_t n = (size_t)res * res;
	for (int ch = 0; ch < 3; ch++) {
		float m = L2_CLIP_MEAN[ch], s = L2_CLIP_STD[ch];
		for (size_t i = 0; i < n; i++) {
			float v = (float)rgb.data[3 * i + ch] / 255.0f; /* ToTensor */
			out[ch * n + i] = (v - m) / s;                  /* Normalize */
		}
	}
	l2_image_free(&rgb);
}

int l2_clip_preprocess(const char *path, int res, const uint8_t *bg, float *out, char *err, size_t errlen)
{
	L2Image img;
	if (l2_image_load(path, &img, err, errlen)) return -1;
	l2_clip_preprocess_image(&img, res, bg, out);
	l2_image_free(&img);
	return 0;
}

/* ---- tensors --------------------------------------------------------------------- */

void l2_image_rgb_to_chw(const L2Image *rgb, float *out)
{
	size_t n = (size_t)rgb->w * rgb->h;
	for (int c = 0; c < 3; c++)
		for (size_t i = 0; i < n; i++) out[c * n + i] = (float)rgb->data[3 * i + c] / 255.0f;
}

void l2_image_from_chw(const float *chw, int w, int h, float lo, float hi, L2Image *out)
{
	l2_image_alloc(out, w, h, L2_MODE_RGB);
	size_t n = (size_t)w * h;
	float scale = 255.0f / (hi - lo);
	for (int c = 0; c < 3; c++)
		for (size_t i = 0; i < n; i++) {
			float v = (chw[c * n + i] - lo) * scale;
			/* round half up, clip; NaN -> 0 */
			out->data[3 * i + c] = !(v > 0) ? 0 : v >= 255 ? 255 : (uint8_t)(v + 0.5f);
		}
}

void l2_image_grid(const L2Image *imgs, int n, int cols, int pad, const uint8_t bg[3], L2Image *out)
{
	if (n <= 0 || cols <= 0) {
		l2_image_alloc(out, 0, 0, L2_MODE_RGB);
		return;
	}
	if (cols > n) cols = n;
	int rows = (n + cols - 1) / cols, w = imgs[0].w, h = imgs[0].h;
	int W = pad + cols * (w + pad), H = pad + rows * (h + pad);
	l2_image_alloc(out, W, H, L2_MODE_RGB);
	for (size_t i = 0; i < (size_t)W * H; i++) memcpy(out->data + 3 * i, bg, 3);
	for (int k = 0; k < n; k++) {
		const L2Image *im = &imgs[k];
		L2Image conv = {0};
		if (im->mode != L2_MODE_RGB) {
			l2_image_to_rgb(im, &conv);
			im = &conv;
		}
		if (im->w != w || im->h != h) l2_die("image grid: image %d is %dx%d, expected %dx%d", k, im->w, im->h, w, h);
		int ox = pad + (k % cols) * (w + pad), oy = pad + (k / cols) * (h + pad);
		for (int y = 0; y < h; y++)
			memcpy(out->data + ((size_t)(oy + y) * W + ox) * 3, im->data + (size_t)y * w * 3, (size_t)w * 3);
		l2_image_free(&conv);
	}
}

/* ---- files --------------------------------------------------------------------------- */

int l2_image_path_ok(const char *path)
{
	const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
	if (!dot || (slash && dot < slash)) return 0;
	return !strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg");
}

typedef struct {
	char **v;
	size_t n, cap, skipped;
	dev_t dev[64];
	ino_t ino[64];
	int depth;
} Walk;

static void walk_dir(Walk *wk, const char *root, const char *rel)
{
	char *full;
	if (*rel) {
		full = l2_malloc(strlen(root) + strlen(rel) + 2);
		sprintf(full, "%s/%s", root, rel);
	} else {
		full = l2_strdup(root);
	}
	DIR *d = opendir(full);
	if (!d) l2_die("%s: %s", full, strerror(errno));
	struct stat st;
	if (fstat(dirfd(d), &st)) l2_die("%s: %s", full, strerror(errno));
	/* a symlink back to an ancestor would loop forever: skip it */
	for (int i = 0; i < wk->depth; i++)
		if (wk->dev[i] == st.st_dev && wk->ino[i] == st.st_ino) {
			closedir(d);
			free(full);
			return;
		}
	if (wk->depth >= 64) l2_die("%s: directories nested too deeply", full);
	wk->dev[wk->depth] = st.st_dev;
	wk->ino[wk->depth] = st.st_ino;
	wk->depth++;
	struct dirent *e;
	while ((errno = 0, e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
		char *r = l2_malloc(strlen(rel) + strlen(e->d_name) + 2);
		if (*rel) sprintf(r, "%s/%s", rel, e->d_name);
		else strcpy(r, e->d_name);
		char *p = l2_malloc(strlen(full) + strlen(e->d_name) + 2);
		sprintf(p, "%s/%s", full, e->d_name);
		struct stat es;
		int ok = stat(p, &es) == 0; /* follows symlinks; dangling ones count as skipped */
		free(p);
		if (ok && S_ISDIR(es.st_mode)) {
			walk_dir(wk, root, r);
			free(r);
		} else if (ok && S_ISREG(es.st_mode) && l2_image_path_ok(r)) {
			if (wk->n == wk->cap) wk->v = l2_realloc(wk->v, (wk->cap = wk->cap ? 2 * wk->cap : 64) * sizeof *wk->v);
			wk->v[wk->n++] = r;
		} else {
			wk->skipped++;
			free(r);
		}
	}
	if (errno) l2_die("%s: %s", full, strerror(errno));
	wk->depth--;
	closedir(d);
	free(full);
}

static int cmp_bytes(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

size_t l2_image_list_dir(const char *dir, char ***paths, size_t *skipped)
{
	Walk wk = {0};
	walk_dir(&wk, dir, "");
	if (wk.n) qsort(wk.v, wk.n, sizeof *wk.v, cmp_bytes);
	*paths = wk.v;
	if (skipped) *skipped = wk.skipped;
	return wk.n;
}
