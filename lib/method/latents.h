/* latents.h — a dataset's images as VAE latents: encoded once, stored as a
 * feature set, described well enough that a latent diffusion model trained
 * on them can refuse the wrong decoder later; and latents back to images.
 *
 *   L2Vae *vae = l2_vae_load("diffusion_pytorch_model.safetensors", &(L2VaeOptions){.halves = L2_VAE_ENCODER});
 *   L2LatentsOptions o;  l2_latents_defaults(&o);  o.resolution = 64;
 *   l2_latents_encode(ds, vae, &o, &info);     // feature set "latent", 4 x 8 x 8 per image
 *   ...
 *   l2_latents_info(ds, "latent", &info);      // the trainer: shape, scale, mean, std, VAE identity
 *   l2_latents_check_vae(&info, dec, L2_VAE_DECODER, "l2-sample --vae");   // the sampler
 *   l2_latents_write_grid(dec, z, n, info.h, info.w, 8, "grid.png");
 *
 * Storage (schemas/dataset.md): feature set NAME of kind "vae-latent",
 * keyed by image path, dim = channels x h x w float32 values in (channel, y,
 * x) order, the latents the VAE's encode gives ((raw - shift) x scale).
 * Meta feat.NAME.latent holds the description, one JSON object:
 *   vae_sha256   SHA-256 of the VAE file (two, joined by ",", for taesd.py's pair)
 *   vae_files    the file names (informational)
 *   vae_kind     "kl" or "taesd"; scale, shift: the scaling the latents carry
 *   resolution   the image side encoded (images as the generators' trainers
 *                see them: composited over the dataset background, resized
 *                on the short side, centre-cropped; lib/method/train_data.h)
 *   shape        [channels, h, w]
 *   posterior    "mean" or "sample" (KL: mean + exp(logvar / 2) eps, eps
 *                from the seed and the FNV-1a hash of the image key)
 *   seed         the sampling seed
 *   complete     false while encoding; true when every image is there
 *   count, mean, std, channel_mean, channel_std
 *                over every stored latent (written when complete): the
 *                data statistics a diffusion model needs (sigma_data). */
#ifndef L2_LATENTS_H
#define L2_LATENTS_H

#include <stdint.h>

#include "io/image.h"
#include "method/dataset.h"
#include "models/vae.h"

#define L2_LATENT_KIND "vae-latent"
#define L2_LATENTS_MAX_CHANNELS 64

typedef struct {
	char vae_sha256[132];
	char vae_files[256];
	char vae_kind[8];
	double scale, shift;
	int resolution, channels, h, w;
	int sampled;
	uint64_t seed;
	int complete;
	uint64_t count;
	double mean, std;
	double channel_mean[L2_LATENTS_MAX_CHANNELS], channel_std[L2_LATENTS_MAX_CHANNELS];
} L2LatentInfo;

typedef struct {
	const char *name; /* feature set (default "latent") */
	int resolution;   /* image side, a multiple of the VAE's factor (default 64) */
	L2Split split;    /* images to encode (default all) */
	int sample;       /* KL: a posterior sample instead of the mean */
	uint64_t seed;
	int batch;        /* images per forward pass (default 8) */
	int resume;       /* continue a feature set made with the same VAE and settings */
} L2LatentsOptions;

void l2_latents_defaults(L2LatentsOptions *o);

/* The description as one JSON object (malloc'd) and back: what a latent
 * diffusion model copies into its own metadata, so that sampling can check
 * its VAE without the dataset.  parse returns 0, or -1 with a reason in err. */
char *l2_latents_info_json(const L2LatentInfo *info);
int l2_latents_info_parse(const char *json, L2LatentInfo *info, char *err, size_t errlen);

/* 1 and *info when feature set NAME holds latents; 0 when it does not
 * exist; dies when it exists but is not a latent set or its description is
 * corrupt. */
int l2_latents_info(L2Dataset *ds, const char *name, L2LatentInfo *info);

/* Encode the images of o->split that the feature set lacks (all, unless
 * resuming), commit after every batch, then compute the statistics and mark
 * the description complete.  Dies when the set exists and o->resume is not
 * given, or when resuming with another VAE or settings.  Progress on
 * stderr (l2_progress_*).  Returns the number of images encoded now; *info
 * (may be NULL) gets the final description. */
uint64_t l2_latents_encode(L2Dataset *ds, const L2Vae *vae, const L2LatentsOptions *o, L2LatentInfo *info);

/* The latents of n images (keys) from feature set NAME described by info:
 * [n, channels x h x w] (malloc'd).  Dies naming the first image without one
 * ("... run l2-encode-latents --resume"). */
float *l2_latents_gather(L2Dataset *ds, const char *name, const L2LatentInfo *info, char *const *keys, int n);

/* Die ("WHAT: ...") unless VAE can take the `half` of latents described by
 * info: the identity covers the file it takes that half from, and latent
 * channels, factor and scaling agree. */
void l2_latents_check_vae(const L2LatentInfo *info, const L2Vae *vae, int half, const char *what);

/* Decode n latents z (n, L, h, w) into RGB 8-bit images (h f x w f),
 * [-1, 1] mapped to [0, 255] with clipping; out[i] to be freed with
 * l2_image_free. */
void l2_latents_to_images(const L2Vae *vae, const float *z, int n, int h, int w, L2Image *out);
/* ... tiled into a PNG grid of `cols` columns (2 px white gaps), written
 * atomically. */
void l2_latents_write_grid(const L2Vae *vae, const float *z, int n, int h, int w, int cols, const char *path);

#endif
