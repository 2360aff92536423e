/* vae.h — the image autoencoders of latent diffusion, inference on CPU:
 * Stable Diffusion's KL autoencoder ("KL-f8": diffusers AutoencoderKL, the
 * original LDM first_stage_model) and TAESD (madebyollin/taesd, diffusers
 * AutoencoderTiny), encoder and decoder each.
 *
 * Architectures (written from diffusers' autoencoder_kl.py / vae.py, LDM's
 * diffusionmodules/model.py and taesd.py; tests/ref/make_vae.py transcribes
 * them in PyTorch):
 *   KL:    conv_in; per level `layers` ResNet blocks (GroupNorm(groups,
 *          eps 1e-6) + SiLU + 3x3 conv, twice; 1x1 shortcut when the width
 *          changes) and, except at the last level, a stride-2 3x3 conv after
 *          zero padding (0, 1, 0, 1); mid block ResNet, single-head pixel
 *          self-attention, ResNet; GroupNorm, SiLU, conv_out (2 x latent),
 *          quant_conv 1x1 -> mean | log-variance (clamped to [-30, 20]).
 *          Decoder: post_quant_conv, conv_in, mid block, per level
 *          `layers + 1` ResNets and nearest x2 upsampling + 3x3 conv,
 *          GroupNorm, SiLU, conv_out.  Spatial factor 2^(levels - 1): 8
 *          for SD's [128, 256, 512, 512].
 *   TAESD: 3x3 convs of one width; blocks conv-ReLU-conv-ReLU-conv + skip,
 *          ReLU; encoder on [0, 1] images, stride-2 bias-free convs between
 *          stages; decoder tanh(z / 3) * 3 first, nearest x2 + bias-free conv
 *          between stages, output on [0, 1].  SD-compatible raw latents.
 *
 * Images are (B, 3, H, W) in [-1, 1] (diffusers' convention; TAESD's [0, 1]
 * is mapped inside); H and W multiples of the factor.  Latents are the
 * diffusion model's: (B, latent, H / f, W / f) = (raw - shift) * scale, with
 * scale 0.18215 for KL (SD 1.x/2.x) and 1 for TAESD unless the file's
 * metadata config (`__metadata__["config"]`: diffusers' config.json, keys
 * scaling_factor, shift_factor, norm_num_groups) or the caller says
 * otherwise.
 *
 * Weights: safetensors in both key layouts people have — diffusers names
 * (`encoder.down_blocks.0.resnets.0.norm1.weight`, attention `to_q` or the
 * older `query`; TAESD `encoder.layers.N.*` / `decoder.layers.N.*`) and the
 * original ones (LDM `encoder.down.0.block.0.norm1.weight`,
 * `encoder.mid.attn_1.q.weight` as a 1x1 conv, optionally under
 * `first_stage_model.` as in a whole SD checkpoint; taesd.py's
 * `taesd_encoder` / `taesd_decoder` files with sequential indices).  One
 * converter table in vae_weights.c maps names; every size is read from the
 * tensor shapes; f32, f16 and bf16 load; every missing or misshapen tensor
 * is an error naming the file and the key.
 *
 * Element type: `cnnr` (lib/nn/conv.h) is float; tests/c/test_vae_double.c
 * compiles this module with L2_CNN_DOUBLE to check it in double. */
#ifndef L2_VAE_H
#define L2_VAE_H

#include <stddef.h>
#include <stdint.h>

#include "nn/conv.h"

#define L2_VAE_MAX_LEVELS 8
#define L2_VAE_KL_SCALE 0.18215 /* SD 1.x / 2.x; SDXL's VAE says 0.13025 in its config */

typedef enum { L2_VAE_KL = 1, L2_VAE_TAESD = 2 } L2VaeKind;
enum { L2_VAE_ENCODER = 1, L2_VAE_DECODER = 2, L2_VAE_BOTH = 3 };
/* Key layouts: diffusers, or the original one (LDM for KL; taesd.py's
 * separate encoder / decoder files for TAESD). */
enum { L2_VAE_LAYOUT_DIFFUSERS = 0, L2_VAE_LAYOUT_ORIGINAL = 1 };

typedef struct {
	L2VaeKind kind;
	int levels;                                  /* KL: widths; TAESD: stages */
	int ch[L2_VAE_MAX_LEVELS];                   /* KL block_out_channels; TAESD: the width in ch[0] */
	int layers;                                  /* KL ResNets per encoder level (decoder: layers + 1) */
	int enc_blocks[L2_VAE_MAX_LEVELS];           /* TAESD blocks per encoder stage */
	int dec_blocks[L2_VAE_MAX_LEVELS];           /* TAESD blocks per decoder stage */
	int latent;                                  /* latent channels */
	int groups;                                  /* KL GroupNorm groups */
	double scale, shift;                         /* latent = (raw - shift) * scale */
} L2VaeConfig;

typedef struct L2Vae L2Vae;

typedef struct {
	int halves;          /* L2_VAE_ENCODER | L2_VAE_DECODER to load; 0: every half the files hold */
	int latent_channels; /* refuse a VAE with another latent size; 0: any */
	double scale;        /* > 0: this scaling factor, whatever the file says */
	int shapes_only;     /* check every key and shape, load no values (the VAE cannot run) */
} L2VaeOptions;

/* Load from SPEC: one safetensors file, or "ENCODER_FILE,DECODER_FILE" (two
 * files that together hold both halves, as taesd.py's taesd_encoder /
 * taesd_decoder; a SPEC naming an existing file is always one file).  opt
 * may be NULL.  Dies with "PATH: ..." naming the key for a file that is not
 * such a VAE (a U-Net, a CLIP model, a truncated file), lacks a half asked
 * for, or has another latent size than opt->latent_channels. */
L2Vae *l2_vae_load(const char *spec, const L2VaeOptions *opt);
void l2_vae_free(L2Vae *v);
const L2VaeConfig *l2_vae_config(const L2Vae *v);
/* The halves loaded (L2_VAE_ENCODER | L2_VAE_DECODER). */
int l2_vae_halves(const L2Vae *v);
/* Spatial factor between images and latents (8 for KL-f8 and TAESD). */
int l2_vae_factor(const L2Vae *v);
/* "kl" or "taesd". */
const char *l2_vae_kind_name(L2VaeKind kind);
/* The layout the file(s) used (L2_VAE_LAYOUT_*). */
int l2_vae_layout(const L2Vae *v);
/* Path of file i (0 or 1) of SPEC, or NULL. */
const char *l2_vae_file(const L2Vae *v, int i);

/* The VAE's identity: the SHA-256 (hex) of its file, or of its two files
 * joined by ',' in SPEC order (computed on first use). */
const char *l2_vae_identity(const L2Vae *v);
/* Does a recorded identity (one or two hashes joined by ',') cover the
 * file(s) this VAE takes `half` from?  Encoding with half ENCODER then
 * decoding with a file holding only the decoder matches when both files'
 * hashes were recorded.  Returns 1, or 0 with a one-line reason in why. */
int l2_vae_identity_matches(const L2Vae *v, const char *recorded, int half, char *why, size_t whylen);

/* Encode B images x (B, 3, H, W) in [-1, 1] into latents z (B, latent,
 * H / f, W / f).  sample NULL: the posterior mean (KL) or the encoder output
 * (TAESD).  Otherwise (KL only) z = mean + exp(logvar / 2) * eps with eps of
 * image b drawn by l2_rng_normal from l2_rng_init(seed, streams[b]) in
 * (channel, y, x) order; dies for TAESD, which has no posterior. */
typedef struct {
	uint64_t seed;
	const uint64_t *streams; /* one per image */
} L2VaeSample;
void l2_vae_encode(const L2Vae *v, const cnnr *x, int B, int H, int W, const L2VaeSample *sample, cnnr *z);
/* KL: the unscaled posterior, mean and clamped log-variance (B, latent, h, w). */
void l2_vae_encode_moments(const L2Vae *v, const cnnr *x, int B, int H, int W, cnnr *mean, cnnr *logvar);
/* Decode latents z (B, latent, h, w) into images x (B, 3, h f, w f) in
 * [-1, 1] (not clamped: the decoder may overshoot slightly). */
void l2_vae_decode(const L2Vae *v, const cnnr *z, int B, int h, int w, cnnr *x);

/* Multiply-adds x 2 of one image through a half at H x W (image size). */
double l2_vae_flops(const L2Vae *v, int half, int H, int W);

/* Free the calling thread's scratch buffers (conv.c's im2col buffer). */
void l2_vae_thread_cleanup(void);

/* ---- random weights (tests and benchmarks) ------------------------------------------ */

/* The parameters of a configuration in the diffusers layout (the canonical
 * names the generator and the converter start from), in module order. */
int l2_vae_param_count(const L2VaeConfig *cfg, int halves);
/* Name and shape (ndim 1, 2 or 4) of parameter i; NULL past the end. */
const char *l2_vae_param_name(const L2VaeConfig *cfg, int halves, int i, int *ndim, int64_t shape[4]);

/* The generator: n values of the tensor NAME (diffusers layout) of this
 * shape under seed.  With h = fnv1a64(NAME) ^ seed and
 * z_i = splitmix64_mix(h + (i + 1) * 0x9e3779b97f4a7c15):
 *   ndim >= 2 (conv / linear weight): ((z_i >> 56) * 2 - 255) / 256 * 2^-e,
 *             e = floor(0.5 * log2(fan_in / 3) + 0.5), fan_in = shape[1] * ...;
 *   a 1-d ".weight" (GroupNorm gain): (96 + (z_i >> 58)) / 128;
 *   a 1-d ".bias": ((z_i >> 56) * 2 - 255) / 4096.
 * Every value has at most 8 significant bits: exact in f16 and bf16, so a
 * network written in any dtype and layout is the same network
 * (tests/ref/make_vae.py computes the same values). */
void l2_vae_random_values(const char *name, uint64_t seed, int ndim, const int64_t *shape, float *out);

/* Write a random-weight VAE of configuration cfg to PATH: the halves asked
 * for, in a layout (TAESD's original layout holds one half per file), as
 * dtype L2_ST_F32, L2_ST_F16 or L2_ST_BF16 (lib/io/safetensors.h).  A
 * scale, shift or group count other than the kind's default goes into the
 * metadata config, as diffusers' config.json would say it. */
void l2_vae_write_random(const char *path, const L2VaeConfig *cfg, int layout, int halves, int dtype, uint64_t seed);
/* The default configurations: SD's KL-f8 ([128, 256, 512, 512], 2 layers,
 * 4 latent channels, 32 groups, scale 0.18215) and TAESD (64 wide, encoder
 * stages of 1, 3, 3, 3 blocks, decoder 3, 3, 3, 1, scale 1). */
L2VaeConfig l2_vae_default_config(L2VaeKind kind);

#endif
