/* image_resample.c — PIL's Image.resize (BICUBIC and NEAREST) bit for bit, and
 * torch's bilinear interpolate (align_corners=False) bit for bit as its
 * x86-64 CPU kernel computes it (see bilinear_axis).
 *
 * Written from the published behaviour of Pillow 9.4 (libImaging/Resample.c,
 * Geometry.c, Image.resize), which is what Debian 12's python3-pil runs:
 *  - coefficients per output pixel in double: centre (x + 0.5) * scale, the
 *    bicubic (a = -0.5) support 2 widened by the scale when downscaling,
 *    window [int(centre - support + 0.5), int(centre + support + 0.5)) clipped
 *    to the image, weights normalised by their sum;
 *  - for 8-bit images the weights become fixed point with 22 fraction bits
 *    (rounded away from zero), each pass accumulates from 1 << 21 in int and
 *    clips (sum >> 22) to 0..255;
 *  - the horizontal pass runs first, only on the rows the vertical pass will
 *    read; a pass whose size does not change is skipped, an unchanged size
 *    is a copy;
 *  - RGBA and LA are premultiplied (MULDIV255) before and unpremultiplied
 *    (255 * c / a, clipped; a = 0 or 255 untouched) after;
 *  - P and 1 use NEAREST: source index int(x0) with x0 = scale / 2 advanced
 *    by repeated addition of scale in double;
 *  - I (16-bit grey) resamples in double with PIL's ROUND_UP between and
 *    after the passes; the 32-bit result is clipped to 0..65535 to fit
 *    data16 (convert('RGB') clips to 0..255 afterwards, so nothing that
 *    reaches RGB changes). */
#include "io/image_priv.h"
#include "core/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2)

static double bicubic(double x)
{
	const double a = -0.5;
	if (x < 0.0) x = -x;
	if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
	if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
	return 0.0;
}

typedef struct {
	int ksize;
	int *bounds;  /* (out, 2): first input index, count */
	double *kk;   /* (out, ksize) */
	int32_t *ik;  /* (out, ksize) fixed point */
} Coeffs;

static void precompute(int in_size, int out_size, Coeffs *c)
{
	/* box = (0, in_size) as PIL's float box */
	double scale = (double)(float)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
	double support = 2.0 * filterscale;
	int ksize = (int)ceil(support) * 2 + 1;
	c->ksize = ksize;
	c->bounds = l2_malloc(l2_mul_size((size_t)out_size, 2 * sizeof(int)));
	c->kk = l2_malloc(l2_mul_size(l2_mul_size((size_t)out_size, (size_t)ksize), sizeof(double)));
	c->ik = l2_malloc(l2_mul_size(l2_mul_size((size_t)out_size, (size_t)ksize), sizeof(int32_t)));
	for (int xx = 0; xx < out_size; xx++) {
		double center = 0.0 + (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
		int xmin = (int)(center - support + 0.5), xmax;
		if (xmin < 0) xmin = 0;
		xmax = (int)(center + support + 0.5);
		if (xmax > in_size) xmax = in_size;
		xmax -= xmin;
		double *k = c->kk + (size_t)xx * ksize;
		int x;
		for (x = 0; x < xmax; x++) {
			double w = bicubic((x + xmin - center + 0.5) * ss);
			k[x] = w;
			ww += w;
		}
		for (x = 0; x < xmax; x++)
			if (ww != 0.0) k[x] /= ww;
		for (; x < ksize; x++) k[x] = 0;
		c->bounds[2 * xx] = xmin;
		c->bounds[2 * xx + 1] = xmax;
	}
	for (size_t i = 0; i < (size_t)out_size * ksize; i++) {
		double v = c->kk[i];
		c->ik[i] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS)) : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
	}
}

static void coeffs_free(Coeffs *c)
{
	free(c->bounds);
	free(c->kk);
	free(c->ik);
}

static inline uint8_t clip8(int v)
{
	v >>= PRECISION_BITS; /* arithmetic shift, as PIL's table index */
	return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* 8-bit, nch interleaved channels.  in: (rows of in_w), rows y0.. of it.
 * Inlined per channel count so that the inner loop is unrolled. */
static inline __attribute__((always_inline)) void horiz_8_n(const uint8_t *in, int in_w, const int nch, int y0, int rows,
							     uint8_t *out, int out_w, const Coeffs *c)
{
	for (int yy = 0; yy < rows; yy++) {
		const uint8_t *src = in + (size_t)(yy + y0) * in_w * nch;
		uint8_t *dst = out + (size_t)yy * out_w * nch;
		for (int xx = 0; xx < out_w; xx++) {
			int xmin = c->bounds[2 * xx], xmax = c->bounds[2 * xx + 1];
			const int32_t *k = c->ik + (size_t)xx * c->ksize;
			const uint8_t *s = src + (size_t)xmin * nch;
			int ss[4] = {1 << (PRECISION_BITS - 1), 1 << (PRECISION_BITS - 1), 1 << (PRECISION_BITS - 1), 1 << (PRECISION_BITS - 1)};
			for (int x = 0; x < xmax; x++)
				for (int ch = 0; ch < nch; ch++) ss[ch] += s[x * nch + ch] * k[x];
			for (int ch = 0; ch < nch; ch++) dst[xx * nch + ch] = clip8(ss[ch]);
		}
	}
}

static void horiz_8(const uint8_t *in, int in_w, int nch, int y0, int rows, uint8_t *out, int out_w, const Coeffs *c)
{
	switch (nch) {
	case 1: horiz_8_n(in, in_w, 1, y0, rows, out, out_w, c); break;
	case 2: horiz_8_n(in, in_w, 2, y0, rows, out, out_w, c); break;
	case 3: horiz_8_n(in, in_w, 3, y0, rows, out, out_w, c); break;
	default: horiz_8_n(in, in_w, 4, y0, rows, out, out_w, c); break;
	}
}

/* in: rows of in_stride bytes, the first w * nch of each used. */
static void vert_8(const uint8_t *in, size_t in_stride, int w, int nch, uint8_t *out, int out_h, const Coeffs *c, int shift)
{
	size_t stride = (size_t)w * nch;
	int *ss = l2_malloc(stride * sizeof(int) + 1);
	for (int yy = 0; yy < out_h; yy++) {
		int ymin = c->bounds[2 * yy] - shift, ymax = c->bounds[2 * yy + 1];
		const int32_t *k = c->ik + (size_t)yy * c->ksize;
		for (size_t i = 0; i < stride; i++) ss[i] = 1 << (PRECISION_BITS - 1);
		/* row by row: the same integer sums in the same order per pixel */
		for (int y = 0; y < ymax; y++) {
			const uint8_t *s = in + (size_t)(y + ymin) * in_stride;
			int32_t kv = k[y];
			for (size_t i = 0; i < stride; i++) ss[i] += s[i] * kv;
		}
		uint8_t *dst = out + (size_t)yy * stride;
		for (size_t i = 0; i < stride; i++) dst[i] = clip8(ss[i]);
	}
	free(ss);
}

/* PIL's ROUND_UP for the 32-bit passes. */
static inline int32_t round_up(double f) { return (int32_t)(f >= 0.0 ? f + 0.5F : f - 0.5F); }

static void horiz_32(const int32_t *in, int in_w, int y0, int rows, int32_t *out, int out_w, const Coeffs *c)
{
	for (int yy = 0; yy < rows; yy++) {
		const int32_t *src = in + (size_t)(yy + y0) * in_w;
		for (int xx = 0; xx < out_w; xx++) {
			int xmin = c->bounds[2 * xx], xmax = c->bounds[2 * xx + 1];
			const double *k = c->kk + (size_t)xx * c->ksize;
			double ss = 0.0;
			for (int x = 0; x < xmax; x++) ss += src[x + xmin] * k[x];
			out[(size_t)yy * out_w + xx] = round_up(ss);
		}
	}
}

static void vert_32(const int32_t *in, int w, int32_t *out, int out_h, const Coeffs *c, int shift)
{
	for (int yy = 0; yy < out_h; yy++) {
		int ymin = c->bounds[2 * yy] - shift, ymax = c->bounds[2 * yy + 1];
		const double *k = c->kk + (size_t)yy * c->ksize;
		for (int xx = 0; xx < w; xx++) {
			double ss = 0.0;
			for (int y = 0; y < ymax; y++) ss += in[(size_t)(y + ymin) * w + xx] * k[y];
			out[(size_t)yy * w + xx] = round_up(ss);
		}
	}
}

/* A view of coefficients starting at output index `first`. */
static Coeffs coeffs_from(const Coeffs *c, int first)
{
	Coeffs v = *c;
	v.bounds += 2 * first;
	v.kk += (size_t)first * c->ksize;
	v.ik += (size_t)first * c->ksize;
	return v;
}

/* ImagingResampleInner for 8-bit data, computing only the window
 * (wx, wy, ww, wh) of the (ow, oh) result.  Every output pixel's value does
 * not depend on which others are computed, so the window is exact. */
static void resample_8(const uint8_t *in, int iw, int ih, int nch, uint8_t *out, int ow, int oh, int wx, int wy, int ww, int wh)
{
	int need_h = ow != iw, need_v = oh != ih;
	Coeffs ch, cv;
	precompute(iw, ow, &ch);
	precompute(ih, oh, &cv);
	Coeffs hv = coeffs_from(&ch, wx), vv = coeffs_from(&cv, wy);
	int yfirst = vv.bounds[0], ylast = vv.bounds[2 * wh - 2] + vv.bounds[2 * wh - 1];
	size_t istride = (size_t)iw * nch;
	if (need_h && need_v) {
		uint8_t *tmp = l2_malloc(l2_mul_size(l2_mul_size((size_t)ww, (size_t)(ylast - yfirst)), (size_t)nch) + 1);
		horiz_8(in, iw, nch, yfirst, ylast - yfirst, tmp, ww, &hv);
		vert_8(tmp, (size_t)ww * nch, ww, nch, out, wh, &vv, yfirst);
		free(tmp);
	} else if (need_h) {
		/* PIL crops to rows [yfirst, ylast): all of them at an unchanged height */
		horiz_8(in, iw, nch, wy, wh, out, ww, &hv);
	} else if (need_v) {
		vert_8(in + (size_t)wx * nch, istride, ww, nch, out, wh, &vv, 0);
	} else {
		for (int y = 0; y < wh; y++) memcpy(out + (size_t)y * ww * nch, in + (size_t)(y + wy) * istride + (size_t)wx * nch, (size_t)ww * nch);
	}
	coeffs_free(&ch);
	coeffs_free(&cv);
}

static void resample_32(const int32_t *in, int iw, int ih, int32_t *out, int ow, int oh)
{
	int need_h = ow != iw, need_v = oh != ih;
	Coeffs ch, cv;
	precompute(iw, ow, &ch);
	precompute(ih, oh, &cv);
	int yfirst = cv.bounds[0], ylast = cv.bounds[2 * oh - 2] + cv.bounds[2 * oh - 1];
	if (need_h && need_v) {
		int32_t *tmp = l2_malloc(l2_mul_size(l2_mul_size((size_t)ow, (size_t)(ylast - yfirst)), sizeof(int32_t)) + 1);
		horiz_32(in, iw, yfirst, ylast - yfirst, tmp, ow, &ch);
		vert_32(tmp, ow, out, oh, &cv, yfirst);
		free(tmp);
	} else if (need_h) {
		horiz_32(in, iw, 0, ih, out, ow, &ch);
	} else if (need_v) {
		vert_32(in, iw, out, oh, &cv, 0);
	} else {
		memcpy(out, in, (size_t)iw * ih * sizeof(int32_t));
	}
	coeffs_free(&ch);
	coeffs_free(&cv);
}

static inline unsigned muldiv255(unsigned a, unsigned b)
{
	unsigned t = a * b + 128;
	return ((t >> 8) + t) >> 8;
}

void l2_image_resize_nearest_pil(const L2Image *in, int w, int h, L2Image *out)
{
	L2Image o;
	l2_image_alloc(&o, w, h, in->mode);
	memcpy(o.palette, in->palette, sizeof o.palette);
	o.palette_len = in->palette_len;
	o.has_trns = in->has_trns;
	memcpy(o.trns_color, in->trns_color, sizeof o.trns_color);
	if (w == in->w && h == in->h) { /* PIL: crop, i.e. a copy */
		l2_image_free(&o);
		l2_image_copy(in, out);
		return;
	}
	int nch = in->channels;
	size_t es = in->mode == L2_MODE_I16 ? 2 : 1, px = nch * es;
	const unsigned char *id = in->mode == L2_MODE_I16 ? (const unsigned char *)in->data16 : in->data;
	unsigned char *od = in->mode == L2_MODE_I16 ? (unsigned char *)o.data16 : o.data;
	memset(od, 0, (size_t)w * h * px);
	/* ImagingScaleAffine: a[0] = (double)(float box width) / w, positions
	 * accumulated by repeated addition from a[0] / 2. */
	double a0 = (double)(float)in->w / w, a4 = (double)(float)in->h / h;
	int *xin = l2_malloc(sizeof(int) * (size_t)w);
	int xmin = w, xmax = 0;
	double xo = 0.0 + a0 * 0.5, yo = 0.0 + a4 * 0.5;
	for (int x = 0; x < w; x++) {
		int xi = xo < 0.0 ? -1 : (int)xo;
		if (xi >= 0 && xi < in->w) {
			xmax = x + 1;
			if (x < xmin) xmin = x;
			xin[x] = xi;
		}
		xo += a0;
	}
	for (int y = 0; y < h; y++) {
		int yi = yo < 0.0 ? -1 : (int)yo;
		if (yi >= 0 && yi < in->h) {
			const unsigned char *s = id + (size_t)yi * in->w * px;
			unsigned char *d = od + (size_t)y * w * px;
			for (int x = xmin; x < xmax; x++) memcpy(d + x * px, s + xin[x] * px, px);
		}
		yo += a4;
	}
	free(xin);
	*out = o;
}

/* Image.resize((w, h), BICUBIC).crop((wx, wy, wx + ww, wy + wh)) with the
 * window inside the result, computed over the window only. */
static void resize_window(const L2Image *in, int w, int h, int wx, int wy, int ww, int wh, L2Image *out)
{
	L2Image o;
	l2_image_alloc(&o, ww, wh, in->mode);
	memcpy(o.palette, in->palette, sizeof o.palette);
	o.palette_len = in->palette_len;
	o.has_trns = in->has_trns;
	memcpy(o.trns_color, in->trns_color, sizeof o.trns_color);
	size_t n = (size_t)in->w * in->h, on = (size_t)ww * wh;
	if (in->mode == L2_MODE_RGBA || in->mode == L2_MODE_LA) {
		int nch = in->channels, na = nch - 1;
		uint8_t *pre = l2_malloc(n * nch + 1);
		for (size_t i = 0; i < n; i++) { /* rgbA2rgba / lA2la */
			const uint8_t *s = in->data + i * nch;
			unsigned a = s[na];
			for (int c = 0; c < na; c++) pre[i * nch + c] = (uint8_t)muldiv255(s[c], a);
			pre[i * nch + na] = (uint8_t)a;
		}
		resample_8(pre, in->w, in->h, nch, o.data, w, h, wx, wy, ww, wh);
		free(pre);
		for (size_t i = 0; i < on; i++) { /* rgba2rgbA / la2lA */
			uint8_t *d = o.data + i * nch;
			unsigned a = d[na];
			if (a == 255 || a == 0) continue;
			for (int c = 0; c < na; c++) {
				unsigned v = 255u * d[c] / a;
				d[c] = (uint8_t)(v < 256 ? v : 255);
			}
		}
	} else {
		resample_8(in->data, in->w, in->h, in->channels, o.data, w, h, wx, wy, ww, wh);
	}
	*out = o;
}

void l2_image_resize_bicubic_pil(const L2Image *in, int w, int h, L2Image *out)
{
	if (w < 1 || h < 1) l2_die("resize: height and width must be > 0 (got %dx%d)", w, h);
	if (w == in->w && h == in->h) {
		l2_image_copy(in, out);
		return;
	}
	if (in->mode == L2_MODE_P || in->mode == L2_MODE_1) {
		l2_image_resize_nearest_pil(in, w, h, out);
		return;
	}
	if (in->mode != L2_MODE_I16) {
		resize_window(in, w, h, 0, 0, w, h, out);
		return;
	}
	L2Image o;
	l2_image_alloc(&o, w, h, in->mode);
	o.has_trns = in->has_trns;
	memcpy(o.trns_color, in->trns_color, sizeof o.trns_color);
	size_t n = (size_t)in->w * in->h, on = (size_t)w * h;
	int32_t *a = l2_malloc(n * sizeof(int32_t) + 1), *b = l2_malloc(on * sizeof(int32_t) + 1);
	for (size_t i = 0; i < n; i++) a[i] = in->data16[i];
	resample_32(a, in->w, in->h, b, w, h);
	for (size_t i = 0; i < on; i++) o.data16[i] = (uint16_t)(b[i] < 0 ? 0 : b[i] > 65535 ? 65535 : b[i]);
	free(a);
	free(b);
	*out = o;
}

void l2_image_resize_crop_pil(const L2Image *in, int w, int h, int x, int y, int cw, int ch, L2Image *out)
{
	if (w < 1 || h < 1) l2_die("resize: height and width must be > 0 (got %dx%d)", w, h);
	int inside = x >= 0 && y >= 0 && cw >= 1 && ch >= 1 && x + cw <= w && y + ch <= h;
	if (inside && !(w == in->w && h == in->h) && in->mode != L2_MODE_P && in->mode != L2_MODE_1 && in->mode != L2_MODE_I16) {
		resize_window(in, w, h, x, y, cw, ch, out);
		return;
	}
	L2Image r;
	l2_image_resize_bicubic_pil(in, w, h, &r);
	l2_image_crop(&r, x, y, cw, ch, out);
	l2_image_free(&r);
}

/* ---- torch bilinear ------------------------------------------------------------------ */

/* torch's source index and weights (align_corners=False), as its CPU kernel
 * computes them (matched bit for bit against torch 1.13 on x86-64): scale =
 * (float)in / out; the source position scale * (o + 0.5) - 0.5 and its
 * fraction carried exactly (here in double, where both are exact), clamped
 * at 0; lambda1 = (float)fraction, lambda0 = 1.0f - lambda1.  An unchanged
 * size is a copy. */
static void bilinear_axis(int in_size, int out_size, int *i0, int *i1, float *l0, float *l1)
{
	float scale = (float)in_size / (float)out_size;
	for (int o = 0; o < out_size; o++) {
		if (in_size == out_size) {
			i0[o] = i1[o] = o;
			l0[o] = 1.0f;
			l1[o] = 0.0f;
			continue;
		}
		double src = (double)scale * ((double)o + 0.5) - 0.5;
		if (src < 0) src = 0;
		int a = (int)src;
		i0[o] = a;
		i1[o] = a + (a < in_size - 1 ? 1 : 0);
		double l = src - a;
		l1[o] = (float)(l < 0 ? 0 : l > 1 ? 1 : l);
		l0[o] = 1.0f - l1[o];
	}
}

void l2_image_resize_bilinear_f32(const float *in, int c, int h, int w, float *out, int oh, int ow)
{
	int *y0 = l2_malloc(sizeof(int) * (size_t)oh), *y1 = l2_malloc(sizeof(int) * (size_t)oh);
	int *x0 = l2_malloc(sizeof(int) * (size_t)ow), *x1 = l2_malloc(sizeof(int) * (size_t)ow);
	float *hl0 = l2_malloc(sizeof(float) * (size_t)oh), *hl1 = l2_malloc(sizeof(float) * (size_t)oh);
	float *wl0 = l2_malloc(sizeof(float) * (size_t)ow), *wl1 = l2_malloc(sizeof(float) * (size_t)ow);
	bilinear_axis(h, oh, y0, y1, hl0, hl1);
	bilinear_axis(w, ow, x0, x1, wl0, wl1);
	for (int ch = 0; ch < c; ch++) {
		const float *src = in + (size_t)ch * h * w;
		float *dst = out + (size_t)ch * oh * ow;
		for (int y = 0; y < oh; y++) {
			const float *r0 = src + (size_t)y0[y] * w, *r1 = src + (size_t)y1[y] * w;
			float a = hl0[y], b = hl1[y];
			for (int x = 0; x < ow; x++) {
				/* torch's AVX2 kernel fuses v0 * w0 + v1 * w1 into
				 * fma(v0, w0, v1 * w1), width first, then height */
				float t0 = fmaf(r0[x0[x]], wl0[x], r0[x1[x]] * wl1[x]);
				float t1 = fmaf(r1[x0[x]], wl0[x], r1[x1[x]] * wl1[x]);
				dst[(size_t)y * ow + x] = fmaf(t0, a, t1 * b);
			}
		}
	}
	free(y0), free(y1), free(x0), free(x1), free(hl0), free(hl1), free(wl0), free(wl1);
}
