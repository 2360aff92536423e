/* ckpt.h — training checkpoints.
 *
 * Two files per run:
 *   WEIGHTS (safetensors): the model's parameters under their PyTorch
 *     state-dict names, float32, plus __metadata__ (config); this is the
 *     deliverable the inference tools load.
 *   STATE (safetensors too, "l2.kind": "train-state"): everything a resumed
 *     run needs to continue bit for bit — parameters again (so the state
 *     alone is consistent even if a kill lands between the two renames),
 *     Adam moments, EMA weights, and in __metadata__ the step, Adam's t,
 *     the RNG (key, counter), the data position and the run's config.
 * Both carry "l2.checksum", an FNV-1a 64 of all tensor bytes, so a
 * damaged file is refused with a clear message.  Writes are atomic: a
 * temporary sibling renamed over the old file (lib/io/safetensors.h writer),
 * so killing a run mid-write leaves the previous checkpoint intact. */
#ifndef L2_CKPT_H
#define L2_CKPT_H

#include <stdint.h>

#include "nn/ad.h"
#include "nn/optim.h"
#include "core/rng.h"

/* meta: NULL or key, value, key, value, ..., NULL */
void l2_ckpt_save_weights(const char *path, AdTensor **p, int n, const char *const *meta);
/* Every parameter by name with its exact shape; dies "PATH: ..." otherwise. */
void l2_ckpt_load_weights(const char *path, AdTensor **p, int n);

/* Where the batch order stands (lib/nn/train.h L2Batcher): epoch and the
 * offset of the next batch in that epoch's permutation. */
typedef struct {
	uint64_t epoch, pos;
} L2DataPos;

typedef struct {
	int64_t step;          /* optimizer steps done */
	L2Rng rng;
	L2DataPos data;
	char config[4096];     /* the run's settings; resume compares them */
} L2TrainState;

void l2_ckpt_save_state(const char *path, const L2TrainState *s, AdTensor **p, int n, const L2Adam *opt,
			const L2Ema *ema);
/* Restores parameters, moments (opt may be NULL), EMA (may be NULL). */
void l2_ckpt_load_state(const char *path, L2TrainState *s, AdTensor **p, int n, L2Adam *opt, L2Ema *ema);

/* FNV-1a 64 of a buffer, chained from h (start with L2_FNV_INIT). */
#define L2_FNV_INIT 0xcbf29ce484222325ull
uint64_t l2_fnv1a64(uint64_t h, const void *buf, size_t n);

#endif
