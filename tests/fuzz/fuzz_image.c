/* fuzz_image.c — PNG and JPEG decoding (lib/io/image.h) and what l2 does
 * with a decoded image: PIL's mode conversions to RGB, alpha composited
 * over a background, and, for small images, CLIP's preprocessing, the
 * resamplers and crops, pytorch-fid's bilinear resize and a PNG round trip.
 *
 * A refused file must come with a one-line reason.  An accepted one must be
 * consistent (size, channels of its mode), convert to RGB of the same size,
 * preprocess to finite values, and read back from l2_image_save_png with
 * the same pixels. */
#include "fuzz.h"
#include "io/image.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_image: %s\n", what);
	abort();
}

static int mode_channels(L2ImageMode m)
{
	return m == L2_MODE_LA ? 2 : m == L2_MODE_RGB ? 3 : m == L2_MODE_RGBA || m == L2_MODE_CMYK ? 4 : 1;
}

static void check_rgb(const L2Image *in, const L2Image *rgb)
{
	if (rgb->mode != L2_MODE_RGB || rgb->channels != 3 || rgb->w != in->w || rgb->h != in->h)
		fail("an RGB conversion changed the size or is not RGB");
}

/* Everything l2 does with small images; sizes and the background come from
 * the input's last bytes, so the fuzzer can steer them. */
static void transforms(const L2Image *img, const uint8_t *data, size_t size)
{
	uint8_t p = data[size - 1], q = data[size - 2];
	int w2 = 1 + p % 40, h2 = 1 + q % 40, res = 4 + (p ^ q) % 29;
	const uint8_t bg[3] = {p, q, (uint8_t)(p + q)};
	L2Image t;
	l2_image_resize_bicubic_pil(img, w2, h2, &t);
	if (t.w != w2 || t.h != h2 || t.mode != img->mode) fail("bicubic resize gave the wrong size or mode");
	l2_image_free(&t);
	l2_image_resize_nearest_pil(img, h2, w2, &t);
	l2_image_free(&t);
	l2_image_resize_short_side(img, res, &t);
	L2Image c;
	l2_image_center_crop(&t, res, res, &c);
	l2_image_free(&t);
	l2_image_free(&c);
	l2_image_crop(img, -(int)(p % 5), (int)(q % 7), w2, h2, &t);
	l2_image_free(&t);
	l2_image_resize_crop_pil(img, w2 + 3, h2 + 2, p % 4, q % 3, w2, h2, &t);
	l2_image_free(&t);

	float *x = malloc(sizeof(float) * 3 * (size_t)res * res);
	for (int withbg = 0; withbg < 2; withbg++) {
		l2_clip_preprocess_image(img, res, withbg ? bg : NULL, x);
		for (size_t i = 0; i < 3 * (size_t)res * res; i++)
			if (!isfinite(x[i])) fail("CLIP preprocessing gave a non-finite value");
	}
	free(x);

	L2Image rgb, back;
	l2_image_to_rgb(img, &rgb);
	float *chw = malloc(sizeof(float) * 3 * (size_t)img->w * img->h), *small = malloc(sizeof(float) * 3 * 7 * 5);
	l2_image_rgb_to_chw(&rgb, chw);
	l2_image_resize_bilinear_f32(chw, 3, img->h, img->w, small, 7, 5);
	free(chw);
	free(small);

	const char *path = l2_fuzz_write_file("roundtrip.png", "", 0);
	l2_image_save_png(path, &rgb);
	char err[256];
	if (l2_image_load(path, &back, err, sizeof err) != 0) fail("a PNG l2 wrote does not load");
	if (back.mode != L2_MODE_RGB || back.w != rgb.w || back.h != rgb.h ||
	    memcmp(back.data, rgb.data, (size_t)rgb.w * rgb.h * 3))
		fail("PNG round trip changed the pixels");
	l2_image_free(&back);
	l2_image_free(&rgb);
}

/* The pixel count a PNG's IHDR or a JPEG's SOF declares (0: none found).
 * libjpeg finds a marker after any bytes that are not one (it warns and
 * skips them), so the JPEG case takes the largest SOF anywhere in the
 * file instead of walking the segments: a walk that stopped at the first
 * stray byte let 143 bytes of junk before an SOF of 2085x65000 through,
 * a 39-second decode under ASan (tests/fuzz/regress/image/). */
static uint64_t declared_pixels(const uint8_t *d, size_t n)
{
	if (n >= 24 && !memcmp(d, "\x89PNG", 4))
		return (uint64_t)((uint32_t)d[16] << 24 | (uint32_t)d[17] << 16 | (uint32_t)d[18] << 8 | d[19]) *
		       ((uint32_t)d[20] << 24 | (uint32_t)d[21] << 16 | (uint32_t)d[22] << 8 | d[23]);
	uint64_t most = 0;
	for (size_t i = 0; i + 8 < n; i++) {
		uint8_t m = d[i + 1];
		if (d[i] != 0xFF || m < 0xC0 || m > 0xCF || m == 0xC4 || m == 0xC8 || m == 0xCC) continue;
		uint64_t px = (uint64_t)(d[i + 5] << 8 | d[i + 6]) * (d[i + 7] << 8 | d[i + 8]);
		if (px > most) most = px;
	}
	return most;
}

/* Images that are large but within the decoders' limit (PIL's 179 M
 * pixels) take seconds to decode in full from a few hundred bytes, as in
 * PIL: legal, and a waste of fuzzing time.  The limit itself stays in reach
 * (above it the decoders refuse before allocating). */
#define FUZZ_MAX_PIXELS (1ull << 22)
#define DECODER_MAX_PIXELS (2ull * (1024ull * 1024 * 1024 / 4 / 3))

static void fuzz_one(const uint8_t *data, size_t size)
{
	L2Image img;
	char err[256];
	uint64_t px = declared_pixels(data, size);
	if (px > FUZZ_MAX_PIXELS && px <= DECODER_MAX_PIXELS) return;
	if (l2_image_load_mem(data, size, &img, err, sizeof err) != 0) {
		if (!err[0] || strchr(err, '\n')) fail("a refused image needs a one-line reason");
		l2_fuzz_refuse();
		return;
	}
	if (img.w <= 0 || img.h <= 0 || img.channels != mode_channels(img.mode) ||
	    (img.mode == L2_MODE_I16 ? !img.data16 : !img.data))
		fail("a decoded image is inconsistent");
	L2Image rgb, over;
	l2_image_to_rgb(&img, &rgb);
	check_rgb(&img, &rgb);
	const uint8_t bg[3] = {255, 0, 128};
	l2_image_to_rgb_over(&img, bg, &over);
	check_rgb(&img, &over);
	l2_image_free(&rgb);
	l2_image_free(&over);
	if ((size_t)img.w * img.h <= 128 * 128 && size >= 2) transforms(&img, data, size);
	l2_image_free(&img);
}

L2_FUZZ_TARGET(fuzz_one)
