/* generate.h — images from text with a trained generator: what l2-sample
 * does between its options and its PNGs.
 *
 *   conditions  prompts encoded with CLIP's text tower, or the vectors of a
 *               feature stream; unit-normalised; optionally mixed with the
 *               mean of their nearest caption features (--retrieve, METHOD §3
 *               item 4)
 *   kind        which trainer wrote a weights file (its __metadata__)
 *   GAN         one generator forward per image (z, noise, truncation)
 *   diffusion   lib/models/sampler.h over the model (and a guide model for
 *               autoguidance): schedule, sampler, guidance
 *
 * A run draws n images per condition; image k = i·n + j (condition i, image
 * j) takes every random number it uses from l2_rng_init(seed, k), so an image
 * is the same whichever range of images a call computes and however the
 * work is split. */
#ifndef L2_GENERATE_H
#define L2_GENERATE_H

#include <stdint.h>

#include "models/diffusion.h"
#include "models/gan.h"
#include "models/sampler.h"

/* ---- conditions ---------------------------------------------------------- */

typedef struct {
	int n, dim;
	float *h;     /* (n, dim) unit rows */
	char **label; /* (n) the prompt, or the stream record's key */
} L2Conditions;

/* The records of a text-feature, pseudo-text-feature or image-feature
 * stream ("-": standard input); dies unless they have `dim` values
 * ("...; MODEL was trained on DIM"). */
void l2_conditions_from_stream(L2Conditions *c, const char *path, int dim, const char *model);
/* Prompts, one per line of a file (empty lines skipped; CR LF accepted);
 * dies on a file without any. *n gets the count. */
char **l2_prompts_read(const char *path, int *n);
/* The CLIP text features of n prompts (weights clip, vocabulary vocab or
 * found beside the weights); source names the prompts in messages. */
void l2_conditions_from_prompts(L2Conditions *c, char *const *text, int n, const char *clip, const char *vocab, int dim,
				const char *model, const char *source);
/* h_i <- normalize((1 - alpha) h_i + alpha mean_j t_j) over the k nearest
 * captions t_j of h_i in the index (k capped at its size). */
void l2_conditions_retrieve(L2Conditions *c, const char *index, int k, double alpha);
void l2_conditions_free(L2Conditions *c);

/* ---- generators ---------------------------------------------------------- */

typedef enum { L2_GEN_GAN = 0, L2_GEN_DIFFUSION } L2GenKind;

/* The generator kind of a weights file: "l2.kind" = "diffusion"
 * (l2-train-diffusion) or "l2.model" = "lafite-gan" (l2-train-gan); dies
 * "PATH: not an l2 generator ..." otherwise, or on an unreadable file. */
L2GenKind l2_generator_kind(const char *path);
const char *l2_generator_kind_name(L2GenKind k); /* "GAN", "diffusion" */

/* Images first .. first + count - 1 of a run of n per condition with a GAN
 * generator: out (count, 3, R, R) in about [-1, 1].  psi: truncation. */
void l2_generate_gan(L2GanG *G, const L2Conditions *c, int n, uint64_t seed, double psi, int first, int count,
		     float *out);

/* Images first .. first + count - 1 of a run of n per condition with a
 * diffusion model (and, for autoguidance, guide: NULL otherwise), sampled as
 * sc says (sc->seed, sc->batch images per sampler run): out (count, cimg,
 * R, R).  on_x0 (optional) gets each step's denoised estimate with image
 * numbers of the whole run; stats (optional) is added to. */
void l2_generate_diffusion(L2DiffusionModel *m, L2DiffusionModel *guide, const L2SampleConfig *sc,
			   const L2Conditions *c, int n, int first, int count, float *out, L2X0Fn on_x0, void *x0_ctx,
			   L2SampleStats *stats);
/* Dies "GUIDE_PATH: ..." unless the guide draws the same images from the
 * same conditions as the model. */
void l2_generate_guide_check(const char *model_path, const L2DiffusionModel *m, const char *guide_path,
			     const L2DiffusionModel *guide);

#endif
