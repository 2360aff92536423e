/* image_priv.h — what lib/io/image*.c share internally: the codecs behind
 * l2_image_load_mem, the "PIL refuses it" size limit, and two helpers of the
 * image type. */
#ifndef L2_IMAGE_PRIV_H
#define L2_IMAGE_PRIV_H

#include "io/image.h"

/* PIL raises DecompressionBombError above 2 * MAX_IMAGE_PIXELS
 * (2 * int(1024 * 1024 * 1024 // 4 // 3) pixels); we refuse the same. */
#define L2_IMAGE_MAX_PIXELS (2ull * (1024ull * 1024 * 1024 / 4 / 3))

int l2_image_png_decode(const unsigned char *buf, size_t len, L2Image *img, char *err, size_t errlen);
int l2_image_jpeg_decode(const unsigned char *buf, size_t len, L2Image *img, char *err, size_t errlen);

/* The palette PIL gives a P image before PLTE is applied: a grey ramp,
 * opaque (entries past a short PLTE keep these values). */
void l2_image_palette_ramp(L2Image *img);
/* Everything of in but the pixels (palette, transparency) into out. */
void l2_image_copy_meta(const L2Image *in, L2Image *out);

#endif
