/* augment.h — differentiable augmentation for data-efficient GAN training
 * (DiffAugment, Zhao et al. 2020): the same random transform T is applied to
 * every image D sees, real or generated, in D's and G's steps, and G's
 * gradient flows back through T.  With a few hundred training images D
 * otherwise memorises the reals and its feedback to G collapses.
 *
 *   int policy = l2_augment_parse("color,translation,cutout", bad, sizeof bad);
 *   L2AugParams p[B];
 *   for (b ...) { l2_train_rng(&r, seed, step, PHASE, pos[b]); l2_augment_draw(&r, R, R, &p[b]); }
 *   AdTensor *y = l2_augment_apply(g, x, policy, p);      x, y [B, C, H, W]
 *
 * The transforms, in this order, with per-sample parameters (DiffAugment's
 * ranges; images in [-1, 1]):
 *   color        brightness  x + (u - 0.5),
 *                saturation  (x - mean_c x) 2u + mean_c x   (mean over channels, per pixel),
 *                contrast    (x - mean x) (u + 0.5) + mean x (mean over the image);
 *   translation  a shift of whole pixels in [-s, s] on each axis, s = round(H / 8),
 *                zero fill (ad_translate);
 *   cutout       a square of side round(H / 2) (round(W / 2)) set to 0, its corner
 *                uniform so that the square's centre covers the image.
 * color and cutout are compositions of ad's elementwise ops, translation is
 * ad_translate: all exact, all checked by finite differences in float64
 * (tests/c/test_augment.c) and against a PyTorch float64 transcription
 * (tests/ref/make_augment.py). */
#ifndef L2_AUGMENT_H
#define L2_AUGMENT_H

#include <stddef.h>

#include "core/rng.h"
#include "nn/ad.h"

enum { L2_AUG_COLOR = 1, L2_AUG_TRANSLATION = 2, L2_AUG_CUTOUT = 4 };

/* One sample's draws (all of them, whatever the policy). */
typedef struct {
	double brightness, saturation, contrast; /* added; factor; factor */
	int ty, tx;                              /* translation: y[i, j] = x[i + ty, j + tx] */
	int cy, cx;                              /* cutout square's top-left corner (may be < 0) */
} L2AugParams;

/* "color,translation,cutout" (any subset, any order, comma-separated; "none"
 * or "" = 0) -> a mask of L2_AUG_*; -1 on an unknown name, copied to bad. */
int l2_augment_parse(const char *spec, char *bad, size_t badlen);
/* The canonical spelling ("color,translation,cutout" order; "none"). */
void l2_augment_str(int policy, char *buf, size_t len);
/* Sample's parameters for H x W images from its stream: brightness,
 * saturation, contrast, ty, tx, cy, cx in that order. */
void l2_augment_draw(L2Rng *r, int H, int W, L2AugParams *p);
/* T(x) for x[N, C, H, W] with p[N]; x itself when policy is 0. */
AdTensor *l2_augment_apply(AdGraph *g, AdTensor *x, int policy, const L2AugParams *p);

#endif
