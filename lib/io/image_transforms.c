/* image_transforms.c — torchvision's transforms on PIL images (Resize to a short side,
 * CenterCrop, crops) and CLIP's whole preprocessing, on the PIL-exact resampling of
 * image_resample.c. */
#include "io/image_priv.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

/* CLIP's Normalize constants, as torch holds them: the Python doubles
 * rounded to float32 (not the decimal rounded straight to float). */
const float L2_CLIP_MEAN[3] = {(float)0.48145466, (float)0.4578275, (float)0.40821073};
const float L2_CLIP_STD[3] = {(float)0.26862954, (float)0.26130258, (float)0.27577711};

/* ---- geometry (torchvision on PIL images) ------------------------------------------- */

void l2_image_crop(const L2Image *in, int x0, int y0, int w, int h, L2Image *out)
{
	L2Image o;
	l2_image_alloc(&o, w, h, in->mode);
	l2_image_copy_meta(in, &o);
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
