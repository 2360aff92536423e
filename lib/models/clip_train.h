/* clip_train.h — the CLIP model (OpenAI's model.py, ViT image tower and
 * causal text transformer) as forward code over lib/nn/ad.h, for training.
 *
 * Parameters carry OpenAI state-dict names (visual.conv1.weight,
 * visual.transformer.resblocks.N.attn.in_proj_weight, token_embedding.weight,
 * text_projection, logit_scale, ...), so the weights file the trainer
 * writes loads unchanged in lib/models/clip.c (l2-encode-images, l2-encode-text),
 * which infers every size from the shapes and takes heads = width / 64
 * (at least 1) — the only head count this model accepts.
 * Initialisation follows OpenAI's initialize_parameters. */
#ifndef L2_CLIP_TRAIN_H
#define L2_CLIP_TRAIN_H

#include <stdint.h>

#include "core/dist.h"
#include "nn/ad.h"

typedef struct {
	int res, patch, width, layers, heads;        /* image tower */
	int context, vocab, twidth, tlayers, theads; /* text tower */
	int embed;                                   /* joint space */
} L2ClipTrainConfig;

typedef struct {
	L2ClipTrainConfig c;
	int np;
	AdTensor **p;        /* [np], in state-dict order */
	AdTensor *logit_scale;
} L2ClipTrain;

/* heads for a width, as lib/models/clip.c infers them */
int l2_cliptr_heads_for(int width);
/* NULL when the config is valid, else a message naming the problem. */
const char *l2_cliptr_check(const L2ClipTrainConfig *c);
L2ClipTrain *l2_cliptr_new(const L2ClipTrainConfig *c, uint64_t seed);
void l2_cliptr_free(L2ClipTrain *m);
AdTensor *l2_cliptr_param(const L2ClipTrain *m, const char *name);

/* px[B, 3, res, res] (CLIP-normalised) -> [B, embed], not normalised. */
AdTensor *l2_cliptr_encode_image(AdGraph *g, L2ClipTrain *m, AdTensor *px);
/* tokens[B, context] (sot ... eot, zero padding; eot = the largest id) ->
 * [B, embed].  Runs only up to the longest text (exact under the causal
 * mask) and pools at each row's first largest id. */
AdTensor *l2_cliptr_encode_text(AdGraph *g, L2ClipTrain *m, const int32_t *tokens, int B);
/* Symmetric InfoNCE: logits = exp(logit_scale) norm(img) norm(txt)^T,
 * loss = (CE(logits, i) + CE(logits^T, i)) / 2.  logits_out (B*B) may be NULL. */
AdTensor *l2_cliptr_loss(AdGraph *g, L2ClipTrain *m, AdTensor *img, AdTensor *txt);
/* One training step's loss and gradients (in m->p[i]->g) on this rank's Bl
 * pairs of a global batch of d->size * Bl (lib/nn/ad_dist.h): px[Bl, 3, res,
 * res], tok[Bl, context].  The InfoNCE loss is taken over the whole batch on
 * every rank and the gradients summed over the ranks in a fixed order, so
 * they are the single process's on the whole batch up to the rounding of
 * the local GEMMs.  Returns the loss (the same on every rank).  One process
 * (d->size 1): exactly encode, loss, backward. */
double l2_cliptr_grads(AdGraph *g, L2ClipTrain *m, const L2Dist *d, const adr *px, const int32_t *tok, int Bl);
/* After an optimiser step: logit_scale clamped to [0, ln 100] (OpenAI). */
void l2_cliptr_clamp(L2ClipTrain *m);
/* Multiply-adds of one forward pass on B pairs with text length T. */
double l2_cliptr_flops(const L2ClipTrainConfig *c, int B, int T);

#ifndef L2_AD_DOUBLE
/* A CLIP weights file (OpenAI key names, as l2-encode-images loads) with its
 * image tower loaded (visual.*, exact shapes); the text tower keeps its
 * initial values.  For a frozen image encoder (the GAN's L_ConG). */
L2ClipTrain *l2_cliptr_load_image_tower(const char *path);
#endif

#endif
