/* image.c — the image type (image.h): modes, allocation and copies, PIL's mode
 * conversions, float CHW tensors and grids.  The layers above: codecs (image_png.c,
 * image_jpeg.c), loading and directory walking (image_load.c), transforms
 * (image_transforms.c, image_resample.c). */
#include "io/image_priv.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

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

void l2_image_copy_meta(const L2Image *in, L2Image *out)
{
	memcpy(out->palette, in->palette, sizeof out->palette);
	out->palette_len = in->palette_len;
	out->has_trns = in->has_trns;
	memcpy(out->trns_color, in->trns_color, sizeof out->trns_color);
}

void l2_image_copy(const L2Image *in, L2Image *out)
{
	l2_image_alloc(out, in->w, in->h, in->mode);
	l2_image_copy_meta(in, out);
	size_t n = (size_t)in->w * in->h * in->channels;
	if (in->mode == L2_MODE_I16) memcpy(out->data16, in->data16, n * sizeof(uint16_t));
	else memcpy(out->data, in->data, n);
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
