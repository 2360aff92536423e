/* gan_eval.h — image-quality measures taken while a GAN trains: the FID Inception-v3
 * (lib/models/inception.h) on images held in memory, computed exactly as l2-fid computes it on
 * the same images saved as PNG files, and the Frechet distance of two feature sets. */
#ifndef L2_GAN_EVAL_H
#define L2_GAN_EVAL_H

#include "models/inception.h"

/* FID Inception-v3 from a safetensors file with pytorch-fid's key names; dies with a
 * one-line error naming the file and the missing or misshapen tensor. */
L2Inception *l2_gan_inception_open(const char *path);

/* 2048-d pool3 features of n images img[n, 3, R, R] in [-1, 1]: each image is first
 * quantised to 8 bits exactly as l2_image_from_chw() writes it into a PNG, then taken
 * through l2-fid's path (to [0, 1], bilinear 299x299 with align_corners=False).
 * feat: [n, 2048].  Uses OpenBLAS's threads; frees the calling thread's network buffers
 * before returning. */
void l2_gan_inception_features(const L2Inception *net, const float *img, int n, int R, float *feat);

/* Frechet distance (float64, as l2_fid_frechet) between the feature sets a[na, d] and b[nb, d]. */
double l2_gan_frechet(const float *a, int na, const float *b, int nb, int d);

#endif
