/* clip.h — OpenAI CLIP (ViT) image and text encoders on the CPU.
 *
 * Weights come from a safetensors file in either key layout people have:
 * OpenAI / open_clip state dicts ("visual.conv1.weight", ...) or Hugging
 * Face CLIPModel ("vision_model.embeddings.patch_embedding.weight", ...).
 * Every size is inferred from tensor shapes (heads = width / 64, as
 * OpenAI's model.py computes them), so tiny test models load like ViT-L/14.
 * Any dtype the safetensors reader knows (f32, f16, bf16) is converted to
 * float32 on load.  Missing or misshapen tensors stop with a message naming
 * the key.
 *
 * The network is OpenAI's model.py exactly: pre-LN residual blocks,
 * QuickGELU, LayerNorm eps 1e-5, class token + ln_post + proj for images,
 * causal text transformer + ln_final + EOT pooling (argmax of the token
 * ids) + text_projection for texts. */
#ifndef L2_CLIP_H
#define L2_CLIP_H

#include "text/clip_tokenizer.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
	/* vision tower (width 0 when not loaded / absent) */
	int width, layers, heads, patch, res, embed;
	/* text tower */
	int twidth, tlayers, theads, context, vocab, tembed;
} L2ClipConfig;

enum { L2_CLIP_VISION = 1, L2_CLIP_TEXT = 2 };
enum { L2_CLIP_LAYOUT_OPENAI = 0, L2_CLIP_LAYOUT_HF = 1 };

typedef struct L2Clip L2Clip;

/* Load the towers asked for (L2_CLIP_VISION | L2_CLIP_TEXT) from PATH. */
L2Clip *l2_clip_load(const char *path, int towers);
void l2_clip_free(L2Clip *m);
const L2ClipConfig *l2_clip_config(const L2Clip *m);
/* L2_CLIP_LAYOUT_* of the file it was loaded from. */
int l2_clip_layout(const L2Clip *m);

/* Image features: px (n, 3, res, res) preprocessed pixels -> out (n, embed),
 * not normalised.  The images are split over l2_threads threads, each
 * running its share with OpenBLAS on one thread (a single image uses
 * OpenBLAS's threads instead). */
void l2_clip_encode_images(const L2Clip *m, const float *px, int n, float *out);
/* Unit features of generated images img (n, 3, R, R) in [-1, 1], as the trainers
 * measure their samples (the CLIP-feature Frechet distance): (v + 1) / 2, bilinear
 * resize to the tower's input (align_corners=False), CLIP normalisation, encode,
 * L2-normalise as l2-encode-images writes features -> out (n, embed).  Batches of
 * 8 images per thread through l2_clip_encode_images. */
void l2_clip_encode_generated(const L2Clip *m, const float *img, int n, int R, float *out);
/* The same on the calling thread alone, for callers that run a batch per
 * thread themselves (l2_parallel_workers, which runs OpenBLAS on one
 * thread meanwhile, as it must be). */
void l2_clip_encode_images_serial(const L2Clip *m, const float *px, int n, float *out);
/* Text features: tokens (n, context) as l2_bpe_encode gives them (start,
 * text, end, zero padding) -> out (n, tembed), not normalised.  The batch
 * is computed only up to its longest text (the causal mask makes that
 * exact): pooling is at each row's first largest token id, the end token. */
void l2_clip_encode_text(const L2Clip *m, const int32_t *tokens, int n, float *out);
/* The tokenizer for M (loaded from WEIGHTS; NULL for tokens only): the
 * vocabulary l2_tok_find_vocab picks for VOCAB_OPT (--vocab), loaded and
 * checked against M's token embedding; dies naming both files when they
 * disagree.  *PATHP (if not NULL) gets the malloc'd path. */
L2Tokenizer *l2_clip_tokenizer(const L2Clip *m, const char *weights, const char *vocab_opt, char **pathP);

/* Write a random-weight CLIP of the given sizes to PATH in a layout, as f32
 * or f16.  The values are a pure function of (seed, OpenAI key name, index)
 * so that tests/ref/make_clip.py makes the same model in Python; each is
 * odd/2048 times a power of two, exact in f16, so both layouts and both
 * dtypes hold the same network.  Heads are width / 64 (min 1). */
void l2_clip_write_random(const char *path, const L2ClipConfig *cfg, int layout, int f16, uint64_t seed);
/* The generator itself: n values of the OpenAI tensor NAME.  With
 * h = fnv1a64(NAME) ^ seed and x_i = splitmix64_mix(h + (i + 1) * 0x9e3779b97f4a7c15),
 * value i is ((x_i >> 53) * 2 - 2047) / 2048 * 2^-e for e >= 0, and
 * (768 + (x_i >> 55)) / 1024 (a layer-norm gain in [0.75, 1.25)) for e < 0. */
void l2_clip_random_values(const char *name, uint64_t seed, int e, float *out, size_t n);

#endif
