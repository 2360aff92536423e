/* image_prep — time l2's image input paths over a list of files, for
 * bench/bench_image.sh:
 *
 *   cc -O2 -Ilib bench/image_prep.c build/libl2.a -lpng -ljpeg -lz -lm -o image_prep
 *   image_prep clip RES FILE...   decode + CLIP preprocessing (resize, crop, RGB, normalise)
 *   image_prep fid FILE...        decode + RGB + [0,1] CHW + bilinear 299x299
 *   image_prep decode FILE...     decode only
 * Prints images per CPU-second on stdout (best of 3 passes, one thread;
 * CPU time, so that a shared machine does not skew it). */
#include "io/image.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	if (argc < 3) {
		fprintf(stderr, "usage: image_prep clip RES FILE... | fid FILE... | decode FILE...\n");
		return 2;
	}
	const char *what = argv[1];
	int first = 2, res = 224;
	if (!strcmp(what, "clip")) res = atoi(argv[2]), first = 3;
	float *x = malloc(sizeof(float) * 3 * 299 * 299 * 8), *y = malloc(sizeof(float) * 3 * 299 * 299);
	double best = 0;
	double sink = 0;
	for (int pass = 0; pass < 3; pass++) {
		clock_t t0 = clock();
		for (int i = first; i < argc; i++) {
			L2Image img, rgb;
			char err[256];
			if (l2_image_load(argv[i], &img, err, sizeof err)) l2_die("%s: %s", argv[i], err);
			if (!strcmp(what, "clip")) {
				l2_clip_preprocess_image(&img, res, NULL, y);
				sink += y[0];
			} else if (!strcmp(what, "fid")) {
				l2_image_to_rgb(&img, &rgb);
				float *in = (size_t)rgb.w * rgb.h <= (size_t)299 * 299 * 8 ? x : malloc(sizeof(float) * 3 * rgb.w * rgb.h);
				l2_image_rgb_to_chw(&rgb, in);
				l2_image_resize_bilinear_f32(in, 3, rgb.h, rgb.w, y, 299, 299);
				sink += y[0];
				if (in != x) free(in);
				l2_image_free(&rgb);
			}
			l2_image_free(&img);
		}
		double rate = (argc - first) / ((double)(clock() - t0) / CLOCKS_PER_SEC);
		if (rate > best) best = rate;
	}
	printf("%.1f\n", best + 0 * sink);
	free(x);
	free(y);
	return 0;
}
