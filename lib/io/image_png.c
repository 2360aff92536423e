/* image_png.c — PNG decoding into PIL's modes, and PNG encoding (libpng).
 *
 * What PIL 9.4's PngImagePlugin gives, and so what we give:
 *   grey 1 bit -> "1" (0/255); grey 2/4/8 bit -> "L" (bits replicated, x85 /
 *   x17); grey 16 -> "I" (we store uint16); grey+alpha 8 -> "LA"; grey+alpha
 *   16 -> "RGBA" (L,L,L,A from the high bytes: rawmode LA;16B); RGB 16 and
 *   RGBA 16 -> 8-bit modes from the high byte of each sample (truncation, no
 *   rounding); palette 1/2/4/8 -> "P" with indices; tRNS is never turned into
 *   alpha (PIL keeps it in info['transparency']), we keep it in has_trns.
 * PIL checks the CRC of every chunk before the first IDAT and not the IDAT
 * ones; we do the same (libpng told to use data with bad CRCs, our own scan
 * checks the chunks before IDAT).  A file that ends early is refused, as PIL
 * refuses it ("image file is truncated").  Palette indices past a short PLTE
 * show PIL's grey ramp; data after the image (IEND) is never needed. */
#include "io/image_priv.h"
#include "core/util.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct {
	const unsigned char *buf;
	size_t len, pos;
	int truncated;
	char *err;
	size_t errlen;
	/* freed on error (longjmp safe: only reached through this struct) */
	unsigned char *raw;
	png_bytep *rows;
} PngSrc;

static void png_err_fn(png_structp png, png_const_charp msg)
{
	PngSrc *s = png_get_error_ptr(png);
	if (s->truncated)
		snprintf(s->err, s->errlen, "truncated PNG file");
	else
		snprintf(s->err, s->errlen, "corrupt PNG: %s", msg);
	png_longjmp(png, 1);
}

static void png_warn_fn(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static void png_read_fn(png_structp png, png_bytep out, png_size_t n)
{
	PngSrc *s = png_get_io_ptr(png);
	if (n > s->len - s->pos) {
		s->truncated = 1;
		png_error(png, "truncated");
	}
	memcpy(out, s->buf + s->pos, n);
	s->pos += n;
}

static uint32_t be32(const unsigned char *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* PIL's chunk CRC policy: every chunk before the first IDAT is checked. */
static int check_crcs_before_idat(const unsigned char *buf, size_t len, char *err, size_t errlen)
{
	size_t p = 8;
	while (p + 8 <= len) {
		uint32_t n = be32(buf + p);
		if (!memcmp(buf + p + 4, "IDAT", 4)) return 0;
		if (n > len || p + 12 + (size_t)n > len) return 0; /* libpng reports truncation */
		uLong c = crc32(0L, buf + p + 4, (uInt)(n + 4));
		if (c != be32(buf + p + 8 + n)) {
			char t[5];
			for (int i = 0; i < 4; i++) t[i] = buf[p + 4 + i] > 32 && buf[p + 4 + i] < 127 ? (char)buf[p + 4 + i] : '?';
			t[4] = 0;
			snprintf(err, errlen, "corrupt PNG: bad CRC in %s chunk", t);
			return -1;
		}
		p += 12 + (size_t)n;
	}
	return 0;
}

int l2_image_png_decode(const unsigned char *buf, size_t len, L2Image *img, char *err, size_t errlen)
{
	memset(img, 0, sizeof *img);
	if (check_crcs_before_idat(buf, len, err, errlen)) return -1;
	PngSrc src = {buf, len, 0, 0, err, errlen, NULL, NULL};
	png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_err_fn, png_warn_fn);
	if (!png) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	png_infop info = png_create_info_struct(png);
	if (!info || setjmp(png_jmpbuf(png))) {
		png_destroy_read_struct(&png, info ? &info : NULL, NULL);
		free(src.raw);
		free(src.rows);
		l2_image_free(img);
		if (!err[0]) snprintf(err, errlen, "corrupt PNG");
		return -1;
	}
	png_set_read_fn(png, &src, png_read_fn);
	png_set_crc_action(png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
	png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
	png_read_info(png, info);
	png_uint_32 w, h;
	int depth, ctype, ilace;
	png_get_IHDR(png, info, &w, &h, &depth, &ctype, &ilace, NULL, NULL);
	if ((unsigned long long)w * h > L2_IMAGE_MAX_PIXELS) {
		snprintf(src.err, errlen, "image too large (%ux%u pixels; decompression bomb?)", (unsigned)w, (unsigned)h);
		png_longjmp(png, 1);
	}
	int is_palette = ctype == PNG_COLOR_TYPE_PALETTE;
	if (depth < 8) {
		if (is_palette) png_set_packing(png);
		else png_set_expand_gray_1_2_4_to_8(png);
	}
	png_set_interlace_handling(png);
	png_read_update_info(png, info);
	size_t rowbytes = png_get_rowbytes(png, info);
	/* The mode PIL gives (see the header comment). */
	L2ImageMode mode;
	switch (ctype) {
	case PNG_COLOR_TYPE_GRAY: mode = depth == 1 ? L2_MODE_1 : depth == 16 ? L2_MODE_I16 : L2_MODE_L; break;
	case PNG_COLOR_TYPE_GRAY_ALPHA: mode = depth == 16 ? L2_MODE_RGBA : L2_MODE_LA; break;
	case PNG_COLOR_TYPE_RGB: mode = L2_MODE_RGB; break;
	case PNG_COLOR_TYPE_RGB_ALPHA: mode = L2_MODE_RGBA; break;
	default: mode = L2_MODE_P; break;
	}
	l2_image_alloc(img, (int)w, (int)h, mode);
	int direct = depth <= 8; /* libpng's rows are already our layout */
	src.rows = malloc(sizeof(png_bytep) * (h ? h : 1));
	if (!direct) src.raw = malloc(rowbytes * h + 1);
	if (!src.rows || (!direct && !src.raw)) {
		snprintf(src.err, errlen, "out of memory");
		png_longjmp(png, 1);
	}
	if (direct && rowbytes != (size_t)w * img->channels) {
		snprintf(src.err, errlen, "unexpected row size");
		png_longjmp(png, 1);
	}
	for (png_uint_32 y = 0; y < h; y++) src.rows[y] = direct ? img->data + y * rowbytes : src.raw + y * rowbytes;
	png_read_image(png, src.rows);

	if (direct) {
		/* done */
	} else if (mode == L2_MODE_I16) {
		for (png_uint_32 y = 0; y < h; y++)
			for (png_uint_32 x = 0; x < w; x++)
				img->data16[(size_t)y * w + x] = (uint16_t)(src.rows[y][2 * x] << 8 | src.rows[y][2 * x + 1]);
	} else if (depth == 16) {
		/* high bytes only, as PIL's RGB;16B / RGBA;16B / LA;16B unpackers */
		int sc = ctype == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : ctype == PNG_COLOR_TYPE_RGB ? 3 : 4;
		for (png_uint_32 y = 0; y < h; y++) {
			const unsigned char *r = src.rows[y];
			uint8_t *o = img->data + (size_t)y * w * img->channels;
			for (png_uint_32 x = 0; x < w; x++, r += 2 * sc, o += img->channels) {
				if (sc == 2) o[0] = o[1] = o[2] = r[0], o[3] = r[2];
				else for (int c = 0; c < sc; c++) o[c] = r[2 * c];
			}
		}
	}

	/* palette and transparency */
	if (is_palette) {
		png_colorp pal;
		int npal = 0;
		l2_image_palette_ramp(img);
		if (png_get_PLTE(png, info, &pal, &npal)) {
			for (int i = 0; i < npal && i < 256; i++) {
				img->palette[4 * i] = pal[i].red;
				img->palette[4 * i + 1] = pal[i].green;
				img->palette[4 * i + 2] = pal[i].blue;
			}
			img->palette_len = npal;
		}
	}
	png_bytep trns_a;
	int ntrns;
	png_color_16p trns_c;
	if (png_get_tRNS(png, info, &trns_a, &ntrns, &trns_c)) {
		img->has_trns = 1;
		if (is_palette) {
			for (int i = 0; i < ntrns && i < 256; i++) img->palette[4 * i + 3] = trns_a[i];
		} else if (ctype == PNG_COLOR_TYPE_GRAY) {
			unsigned v = trns_c->gray, maxv = (1u << depth) - 1;
			img->trns_color[0] = img->trns_color[1] = img->trns_color[2] =
				(uint16_t)(depth == 16 ? v : depth == 8 ? v : (v & maxv) * 255 / maxv);
		} else if (ctype == PNG_COLOR_TYPE_RGB) {
			unsigned sh = depth == 16 ? 8 : 0;
			img->trns_color[0] = (uint16_t)(trns_c->red >> sh);
			img->trns_color[1] = (uint16_t)(trns_c->green >> sh);
			img->trns_color[2] = (uint16_t)(trns_c->blue >> sh);
		} else {
			img->has_trns = 0;
		}
	}
	png_destroy_read_struct(&png, &info, NULL);
	free(src.raw);
	free(src.rows);
	return 0;
}

/* ---- encoding --------------------------------------------------------------- */

typedef struct {
	L2OFile *o;
} PngDst;

static void png_write_fn(png_structp png, png_bytep data, png_size_t n)
{
	PngDst *d = png_get_io_ptr(png);
	l2_ofile_write(d->o, data, n);
}

static void png_flush_fn(png_structp png) { (void)png; }

static void png_werr_fn(png_structp png, png_const_charp msg)
{
	PngDst *d = png_get_error_ptr(png);
	l2_die("%s: cannot encode PNG: %s", l2_ofile_path(d->o), msg);
}

void l2_image_save_png(const char *path, const L2Image *img)
{
	L2Image conv = {0};
	const L2Image *src = img;
	int ctype;
	switch (img->mode) {
	case L2_MODE_L: ctype = PNG_COLOR_TYPE_GRAY; break;
	case L2_MODE_LA: ctype = PNG_COLOR_TYPE_GRAY_ALPHA; break;
	case L2_MODE_RGB: ctype = PNG_COLOR_TYPE_RGB; break;
	case L2_MODE_RGBA: ctype = PNG_COLOR_TYPE_RGB_ALPHA; break;
	default:
		l2_image_to_rgb(img, &conv);
		src = &conv;
		ctype = PNG_COLOR_TYPE_RGB;
	}
	PngDst d = {l2_ofile_open(path, 1)};
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &d, png_werr_fn, png_warn_fn);
	png_infop info = png ? png_create_info_struct(png) : NULL;
	if (!info) l2_die("%s: out of memory", path);
	png_set_write_fn(png, &d, png_write_fn, png_flush_fn);
	png_set_IHDR(png, info, (png_uint_32)src->w, (png_uint_32)src->h, 8, ctype, PNG_INTERLACE_NONE,
		     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_write_info(png, info);
	for (int y = 0; y < src->h; y++) png_write_row(png, src->data + (size_t)y * src->w * src->channels);
	png_write_end(png, info);
	png_destroy_write_struct(&png, &info);
	l2_ofile_commit(d.o);
	l2_image_free(&conv);
}
