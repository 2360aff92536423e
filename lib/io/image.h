/* image.h — images as PIL sees them: the type and its conversions, loading and saving,
 * and the transforms CLIP and the FID network are fed through, each bit-exact with
 * PIL 9.4 / torchvision.
 *
 * Images are decoded into the mode PIL's Image.open() gives them (so that
 * resampling "in the image's own mode" matches PIL), and converted to RGB
 * exactly as PIL's convert('RGB') does.  All 8-bit images are row-major,
 * interleaved channels.
 *
 * Three layers, one file each (plus the codecs image_png.c, image_jpeg.c and the
 * resampling kernels image_resample.c), each using only those above it:
 *   the type        image.c             modes, copies, RGB conversions, CHW tensors, grids
 *   files           image_load.c        decoding by content, PNG writing, directory walks
 *   transforms      image_transforms.c  PIL resizes, torchvision crops, CLIP preprocessing */
#ifndef L2_IMAGE_H
#define L2_IMAGE_H

/* Image files over this size are refused before they are read (a path to
 * /dev/zero, a runaway file); decoders check pixel counts separately. */
#define L2_IMAGE_MAX_FILE ((uint64_t)1 << 30)

#include <stddef.h>
#include <stdint.h>

/* ---- the type (image.c) ------------------------------------------------------ */

typedef enum {
	L2_MODE_L,     /* grey, 1 channel */
	L2_MODE_LA,    /* grey + alpha */
	L2_MODE_RGB,
	L2_MODE_RGBA,
	L2_MODE_P,     /* palette indices, palette[] holds RGBA entries */
	L2_MODE_I16,   /* 16-bit grey (PIL "I;16"); data16 */
	L2_MODE_CMYK,  /* JPEG CMYK as PIL decodes it */
	L2_MODE_1,     /* PIL "1" (1-bit grey PNG): 1 channel, values 0 or 255 */
} L2ImageMode;

typedef struct {
	int w, h, channels;   /* channels of data (P: 1, I16: 1) */
	L2ImageMode mode;
	uint8_t *data;        /* (h, w, channels), 8-bit modes */
	uint16_t *data16;     /* (h, w), L2_MODE_I16 only */
	uint8_t palette[256 * 4];
	int palette_len;
	/* Transparency that is not an alpha channel: P with a tRNS chunk (PIL "P" +
	 * info['transparency']), or a 1/L/I16/RGB PNG with a tRNS colour key, given in
	 * trns_color in the decoded sample scale (8-bit; 16-bit for I16; a 16-bit RGB key
	 * reduced to its high bytes like the pixels).  PIL keeps the key in
	 * info['transparency'] and convert('RGB') ignores it; only l2_image_to_rgb_over
	 * uses it. */
	int has_trns;
	uint16_t trns_color[3];
} L2Image;

/* Allocate an 8-bit image of the mode (a P image gets PIL's grey-ramp palette). */
void l2_image_alloc(L2Image *img, int w, int h, L2ImageMode mode);
void l2_image_free(L2Image *img);
/* Deep copy (out is allocated). */
void l2_image_copy(const L2Image *in, L2Image *out);
/* PIL's name of the mode ("L", "LA", "RGB", "RGBA", "P", "I", "CMYK", "1"). */
const char *l2_image_mode_name(L2ImageMode mode);

/* PIL Image.convert('RGB'): alpha dropped, palette looked up, grey copied,
 * CMYK converted as PIL does, I;16 clipped as PIL does. */
void l2_image_to_rgb(const L2Image *in, L2Image *out);
/* Alpha composited over a background colour instead (for transparent sets). */
void l2_image_to_rgb_over(const L2Image *in, const uint8_t bg[3], L2Image *out);
/*   Each channel is (c * a + bg * (255 - a) + 127) / 255 in integers: the
 *   exact product rounded to nearest (x / 255 is never a tie).  Alpha comes
 *   from LA/RGBA, from a palette's tRNS entries, or is 0 on a tRNS colour
 *   key; images without alpha come out as l2_image_to_rgb gives them. */

/* RGB 8-bit -> float (3, H, W) in [0, 1]. */
void l2_image_rgb_to_chw(const L2Image *rgb, float *out);
/* float (3, H, W) in [lo, hi] -> RGB 8-bit (round, clip). */
void l2_image_from_chw(const float *chw, int w, int h, float lo, float hi, L2Image *out);
/*   v = (x - lo) * (255 / (hi - lo)) in float, then (uint8)(v + 0.5) clipped
 *   to 0..255 (NaN -> 0): for [0, 1] this is torchvision's save_image. */
/* Tile n RGB images (all w x h) into a grid of `cols` columns with `pad`
 * pixels of background between them (and around the border, as
 * torchvision's make_grid: width pad + cols * (w + pad)).  Other modes are
 * converted with l2_image_to_rgb. */
void l2_image_grid(const L2Image *imgs, int n, int cols, int pad, const uint8_t bg[3], L2Image *out);

/* ---- files (image_load.c; PNG writing in image_png.c) --------------------------- */

/* Decode a PNG or JPEG (detected by content).  Returns 0, or -1 with a
 * one-line reason in err ("corrupt PNG: ...", "not a PNG or JPEG file"). */
int l2_image_load(const char *path, L2Image *img, char *err, size_t errlen);
int l2_image_load_mem(const unsigned char *buf, size_t len, L2Image *img, char *err, size_t errlen);
/* The bytes of a file ("-" = stdin) as they are, malloc'd, for decoding later or storing.
 * Returns 0, or -1 with the reason in err ("No such file or directory", "is a directory"). */
int l2_image_read_file(const char *path, unsigned char **buf, size_t *len, char *err, size_t errlen);

/* Encode RGB or RGBA 8-bit as PNG, atomically ("-" = stdout). */
void l2_image_save_png(const char *path, const L2Image *img);

/* Is PATH's name an image we read (.png .jpg .jpeg, any case)? */
int l2_image_path_ok(const char *path);
/* Walk DIR recursively; image paths relative to DIR, sorted bytewise.
 * Returns the count; *paths is a malloc'd array of malloc'd strings.
 * Non-image files are skipped (and counted in *skipped when non-NULL). */
size_t l2_image_list_dir(const char *dir, char ***paths, size_t *skipped);
/* What a walk left out, by reason. */
typedef struct {
	size_t not_images;      /* names that are not .png/.jpg/.jpeg */
	size_t special;         /* image names that are FIFOs, devices, sockets or dangling links */
	size_t unreadable_dirs; /* subdirectories that could not be listed (keep_going) */
} L2ImageWalk;
/* The same, reporting what was left out in *w; with keep_going an
 * unreadable subdirectory is skipped with a warning instead of ending the
 * program (DIR itself must be readable). */
size_t l2_image_walk(const char *dir, char ***paths, L2ImageWalk *w, int keep_going);
/* "N files that are not .png/.jpg/.jpeg, M image names that are not
 * regular files (FIFOs, devices, dangling links), K unreadable
 * directories", leaving out the zero parts; "" when nothing was left out. */
void l2_image_walk_describe(const L2ImageWalk *w, char *buf, size_t n);

/* ---- transforms (image_transforms.c, image_resample.c) ---------------------------- */

/* PIL Image.resize((w, h), BICUBIC) in the image's own mode, bit-exact:
 * two separable fixed-point passes, kernel widened when downscaling,
 * RGBA/LA premultiplied while resampling, P resampled with NEAREST. */
void l2_image_resize_bicubic_pil(const L2Image *in, int w, int h, L2Image *out);
/* Image.resize((w, h), NEAREST) as PIL does it (ImagingScaleAffine,
 * accumulated double coordinates); any mode. */
void l2_image_resize_nearest_pil(const L2Image *in, int w, int h, L2Image *out);
/* Image.resize((w, h), BICUBIC).crop((x, y, x + cw, y + ch)), computing
 * only the cropped pixels when the window lies inside (same values). */
void l2_image_resize_crop_pil(const L2Image *in, int w, int h, int x, int y, int cw, int ch, L2Image *out);
/* torch.nn.functional.interpolate(mode='bilinear', align_corners=False,
 * antialias=False) on float (C, H, W). */
void l2_image_resize_bilinear_f32(const float *in, int c, int h, int w, float *out, int oh, int ow);

/* Image.crop((x, y, x + w, y + h)) in the image's own mode; parts outside
 * the image are zero (as PIL's crop fills them). */
void l2_image_crop(const L2Image *in, int x, int y, int w, int h, L2Image *out);
/* torchvision Resize(size) on a PIL image: short side to `size`, the long
 * side int(size * long / short) as torchvision computes it. */
void l2_image_resize_short_side(const L2Image *in, int size, L2Image *out);
/* torchvision CenterCrop((h, w)) on a PIL image (rounding as torchvision). */
void l2_image_center_crop(const L2Image *in, int w, int h, L2Image *out);

/* CLIP's whole preprocessing of one file: resize short side to res
 * (bicubic, own mode), centre crop, RGB (or alpha over bg when bg != NULL),
 * [0,1], (x - mean) / std.  out: (3, res, res).  Returns 0 or -1 + err. */
int l2_clip_preprocess(const char *path, int res, const uint8_t *bg, float *out, char *err, size_t errlen);
/* The same from an image already decoded. */
void l2_clip_preprocess_image(const L2Image *img, int res, const uint8_t *bg, float *out);
/* CLIP's Normalize mean and std (float32 as torch holds them). */
extern const float L2_CLIP_MEAN[3], L2_CLIP_STD[3];

#endif
