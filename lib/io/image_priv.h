/* image_priv.h — what lib/io/image*.c and lib/io/resample.c share internally:
 * the codecs behind l2_image_load_mem and the "PIL refuses it" size limit. */
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

#endif
