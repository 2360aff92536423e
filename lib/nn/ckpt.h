/* ckpt.h — training checkpoints.
 *
 * Two files per run:
 *   WEIGHTS (safetensors): the model's parameters under their PyTorch
 *     state-dict names, float32, plus __metadata__ (config); this is the
 *     deliverable the inference tools load.
 *   STATE (safetensors too, "l2.kind": "train-state", "l2.state_version": 2):
 *     everything a resumed run needs to continue bit for bit, in named
 *     groups — for each group NAME (a network: "G", "D", "clip", ...) its
 *     parameters again (so the state alone is consistent even if a kill lands
 *     between two renames), its optimizer's moments and step count, and its
 *     EMAs:
 *         NAME.param.<parameter name>     NAME.adam_m.<..>   NAME.adam_v.<..>
 *         NAME.<ema name>.<..>            __metadata__ NAME.adam_t
 *     and in __metadata__ the step, the data position and the run's config.
 *     No generator state: the trainers draw from streams keyed by step and
 *     sample (lib/nn/train.h).
 * Both carry "l2.checksum", an FNV-1a 64 of all tensor bytes, so a
 * damaged file is refused with a clear message.  Writes are atomic: a
 * temporary sibling renamed over the old file (lib/io/safetensors.h writer),
 * so killing a run mid-write leaves the previous checkpoint intact.
 * A state of another format version is refused with a one-line hint, never
 * read as this one. */
#ifndef L2_CKPT_H
#define L2_CKPT_H

#include <stdint.h>

#include "core/hash.h" /* l2_fnv1a64: the checksum */
#include "io/safetensors.h"
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
	L2DataPos data;
	char config[4096];     /* the run's settings; resume compares them */
} L2TrainState;

#define L2_CKPT_STATE_VERSION 2
#define L2_CKPT_MAX_EMA 4

/* One network's share of a training state. */
typedef struct {
	const char *name;      /* "G", "D", ...: the prefix of its tensors */
	AdTensor **p;          /* [n] parameters, with unique names */
	int n;
	L2Adam *adam;          /* NULL: none; else over exactly p[0..n) (moments and t saved) */
	int nema;              /* EMAs of p (each L2Ema over exactly p[0..n)) */
	L2Ema *ema[L2_CKPT_MAX_EMA];
	const char *ema_name[L2_CKPT_MAX_EMA]; /* NULL: "ema" */
} L2CkptGroup;

void l2_ckpt_save_state(const char *path, const L2TrainState *s, const L2CkptGroup *g, int ng);
/* Restores every group's parameters, moments, step counts and EMAs, which
 * must all be there with the same shapes ("PATH: ..." otherwise). */
void l2_ckpt_load_state(const char *path, L2TrainState *s, const L2CkptGroup *g, int ng);

/* Files written by l2 (trainers' weights and states) carry "l2.checksum"
 * in their metadata.  When ST has one, verify it (one pass over the tensor
 * bytes) and die "PATH: checksum mismatch: the file is corrupt" when it
 * does not match; returns 1 when verified, 0 when the file has none (weights
 * from elsewhere). */
int l2_ckpt_verify(const L2Safetensors *st, const char *path);

#endif
