/* image_jpeg.c — JPEG decoding into PIL's modes (libjpeg-turbo).
 *
 * PIL 9.4 (JpegImagePlugin + JpegDecode.c) decodes with libjpeg's defaults
 * (ISLOW DCT, fancy upsampling, libjpeg's own guess of the colour space from
 * the JFIF/Adobe markers), and maps 1/3/4 components to L/RGB/CMYK.  For 4
 * components it always uses rawmode "CMYK;I" ("assume adobe conventions"):
 * the CMYK it stores is 255 minus libjpeg's output, with or without an Adobe
 * marker; YCCK is turned into CMYK by libjpeg first.  We do exactly that, with
 * the same library, so the samples are identical.
 *
 * Errors: libjpeg's error_exit is replaced by a longjmp that returns -1 with
 * libjpeg's one-line message.  Warnings are never printed (PIL silences them
 * too) and "corrupt data" warnings are tolerated as PIL tolerates them, but a
 * file that ends before its end-of-image marker (libjpeg's "premature end"
 * warning, after which it would pad with grey) is refused: PIL refuses those
 * ("image file is truncated"), including files that lack only the EOI.
 * EXIF orientation is not applied (Image.open does not apply it either);
 * 12-bit JPEGs are refused (PIL: "cannot handle 12-bit layers"). */
#include "io/image_priv.h"
#include "core/util.h"

#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <jpeglib.h>
#include <jerror.h>

typedef struct {
	struct jpeg_error_mgr pub;
	jmp_buf jb;
	int eof;       /* premature end of data seen */
	char msg[JMSG_LENGTH_MAX];
} JpegErr;

static void jpeg_error_exit_fn(j_common_ptr cinfo)
{
	JpegErr *e = (JpegErr *)cinfo->err;
	cinfo->err->format_message(cinfo, e->msg);
	longjmp(e->jb, 1);
}

static void jpeg_emit_fn(j_common_ptr cinfo, int level)
{
	JpegErr *e = (JpegErr *)cinfo->err;
	if (level < 0) {
		if (cinfo->err->msg_code == JWRN_JPEG_EOF) e->eof = 1;
		cinfo->err->num_warnings++;
	}
}

static void jpeg_output_fn(j_common_ptr cinfo) { (void)cinfo; }

int l2_image_jpeg_decode(const unsigned char *buf, size_t len, L2Image *img, char *err, size_t errlen)
{
	struct jpeg_decompress_struct cinfo;
	JpegErr jerr;
	memset(img, 0, sizeof *img);
	memset(&jerr, 0, sizeof jerr);
	cinfo.err = jpeg_std_error(&jerr.pub);
	jerr.pub.error_exit = jpeg_error_exit_fn;
	jerr.pub.emit_message = jpeg_emit_fn;
	jerr.pub.output_message = jpeg_output_fn;
	if (setjmp(jerr.jb)) {
		jpeg_destroy_decompress(&cinfo);
		l2_image_free(img);
		if (jerr.eof)
			snprintf(err, errlen, "truncated JPEG file");
		else if (jerr.msg[0])
			snprintf(err, errlen, "corrupt JPEG: %s", jerr.msg);
		return -1;
	}
	jpeg_create_decompress(&cinfo);
	jpeg_mem_src(&cinfo, buf, (unsigned long)len);
	jpeg_read_header(&cinfo, TRUE);
	if (jerr.eof) longjmp(jerr.jb, 1);
	L2ImageMode mode;
	switch (cinfo.num_components) {
	case 1: mode = L2_MODE_L; cinfo.out_color_space = JCS_GRAYSCALE; break;
	case 3: mode = L2_MODE_RGB; cinfo.out_color_space = JCS_RGB; break;
	case 4: mode = L2_MODE_CMYK; cinfo.out_color_space = JCS_CMYK; break;
	default:
		snprintf(jerr.msg, sizeof jerr.msg, "cannot handle %d-layer images", cinfo.num_components);
		longjmp(jerr.jb, 1);
	}
	if ((unsigned long long)cinfo.image_width * cinfo.image_height > L2_IMAGE_MAX_PIXELS) {
		snprintf(jerr.msg, sizeof jerr.msg, "image too large (%ux%u pixels; decompression bomb?)",
			 (unsigned)cinfo.image_width, (unsigned)cinfo.image_height);
		longjmp(jerr.jb, 1);
	}
	jpeg_start_decompress(&cinfo);
	if (jerr.eof) longjmp(jerr.jb, 1);
	if ((int)cinfo.output_components != (mode == L2_MODE_L ? 1 : mode == L2_MODE_RGB ? 3 : 4)) {
		snprintf(jerr.msg, sizeof jerr.msg, "unexpected colour conversion");
		longjmp(jerr.jb, 1);
	}
	l2_image_alloc(img, (int)cinfo.output_width, (int)cinfo.output_height, mode);
	size_t stride = (size_t)img->w * img->channels;
	while (cinfo.output_scanline < cinfo.output_height) {
		JSAMPROW row = img->data + cinfo.output_scanline * stride;
		jpeg_read_scanlines(&cinfo, &row, 1);
		if (jerr.eof) longjmp(jerr.jb, 1);
	}
	if (mode == L2_MODE_CMYK) /* PIL's rawmode CMYK;I */
		for (size_t i = 0; i < stride * img->h; i++) img->data[i] = (uint8_t)(255 - img->data[i]);
	/* Reading the end-of-image marker; a file that lacks it is truncated. */
	jpeg_finish_decompress(&cinfo);
	if (jerr.eof) longjmp(jerr.jb, 1);
	jpeg_destroy_decompress(&cinfo);
	return 0;
}
