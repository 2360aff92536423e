/* train_data.h — what a text-to-image generator trains on: the images of a
 * dataset split, composited and scaled to [-1, 1], each with the condition
 * Lafite2 gives it (METHOD §4: real caption features for a paired subset,
 * pseudo text features or Gaussian-perturbed image features for the rest).
 *
 * Shared by l2-train-gan and l2-train-diffusion, so it knows nothing of
 * either generator: it lives in method/ beside the other Lafite2 steps (the
 * condition modes are the method's, not a model's), and a generator's
 * trainer (lib/method/gan_train.h, ...) only draws batches from it.
 *
 *   L2TrainDataOptions o;
 *   l2_train_data_defaults(&o);  o.cond = L2_COND_MIXED; o.pairs = 0.1; o.res = 32; o.seed = seed;
 *   int dim = l2_train_data_dim(ds, &o, need_captions);
 *   L2TrainData tr;
 *   l2_train_data_load(ds, &o, L2_SPLIT_TRAIN, dim, &tr, &dropped);
 *   ... each step, B examples from the batcher (lib/nn/train.h), each sample with its own stream:
 *   l2_train_data_batch(&tr, &o, idx, B, xflip, seed, step, PHASE, x, h);
 *
 * Conditions (--cond):
 *   text      every image is paired (its primary caption's feature);
 *   pseudo    unpaired images take their pseudo text feature (keyed by image);
 *   gaussian  unpaired images take normalize(f/|f| + xi eps/|eps|), f the
 *             image feature, eps ~ N(0, I) drawn per use (Lafite's baseline);
 *   mixed     per use, pseudo or gaussian with probability 1/2 each.
 * The paired subset (--pairs-fraction P) is the round(P n) captioned images
 * of lowest hash of (key, seed): deterministic, independent of the order of
 * the store and nested as P grows.  --paired-only drops the other images.
 * Every condition is a unit vector. */
#ifndef L2_TRAIN_DATA_H
#define L2_TRAIN_DATA_H

#include <stdint.h>

#include "core/rng.h"
#include "core/util.h"
#include "method/dataset.h"

typedef enum { L2_COND_TEXT, L2_COND_PSEUDO, L2_COND_GAUSSIAN, L2_COND_MIXED } L2CondMode;

/* "text" ... "mixed" <-> L2CondMode; parse returns -1 for anything else. */
const char *l2_cond_name(L2CondMode c);
int l2_cond_parse(const char *s);

typedef struct {
	L2CondMode cond;       /* default pseudo */
	double pairs;          /* paired fraction in [0, 1] (text: 1) */
	int paired_only;
	const char *cap_feat;  /* feature set keyed by caption (default "caption") */
	const char *pseudo_feat; /* keyed by image (default "pseudo") */
	const char *img_feat;  /* CLIP image features, keyed by image (default "image") */
	double xi;             /* gaussian noise level (default 3) */
	uint64_t seed;         /* keys the paired subset */
	int res;               /* image side R (default 32) */
	int allow_incomplete;  /* use feature sets whose write was interrupted (or runs) */
} L2TrainDataOptions;

void l2_train_data_defaults(L2TrainDataOptions *o);

/* These options as l2-train-gan and l2-train-diffusion take them: one table and one parser (as
 * core/shard.h's --shard).  L2_TRAIN_DATA_LONGOPTS goes in the tool's table, its own options
 * are numbered from L2_OPT_TRAIN_DATA_END; l2_train_data_option() returns 1 for one of these
 * (parsed into o; a bad value is a usage error); after the loop l2_train_data_options_check():
 * --pairs-fraction in [0, 1], --cond text pairs every image. */
enum { L2_OPT_COND = L2_OPT_COMMON_END, L2_OPT_PAIRS_FRACTION, L2_OPT_PAIRED_ONLY, L2_OPT_ALLOW_INCOMPLETE,
       L2_OPT_CAPTION_FEATURE, L2_OPT_PSEUDO_FEATURE, L2_OPT_IMAGE_FEATURE, L2_OPT_XI, L2_OPT_TRAIN_DATA_END };
#define L2_TRAIN_DATA_LONGOPTS \
	{"cond", required_argument, 0, L2_OPT_COND}, {"pairs-fraction", required_argument, 0, L2_OPT_PAIRS_FRACTION}, \
	{"paired-only", no_argument, 0, L2_OPT_PAIRED_ONLY}, {"allow-incomplete", no_argument, 0, L2_OPT_ALLOW_INCOMPLETE}, \
	{"caption-feature", required_argument, 0, L2_OPT_CAPTION_FEATURE}, \
	{"pseudo-feature", required_argument, 0, L2_OPT_PSEUDO_FEATURE}, \
	{"image-feature", required_argument, 0, L2_OPT_IMAGE_FEATURE}, {"xi", required_argument, 0, L2_OPT_XI}
/* Their -h lines, for the tool's usage text (the man pages say the same; tests/tools.bats) */
#define L2_TRAIN_DATA_HELP \
	"      --cond KIND          text | pseudo | gaussian | mixed (default pseudo): the condition of\n" \
	"                           images outside the paired subset (text = every image paired)\n" \
	"      --pairs-fraction P   this deterministic fraction of the images keeps its real caption\n" \
	"                           features (default 0: language-free)\n" \
	"      --paired-only        drop the images outside the paired subset\n" \
	"      --allow-incomplete   train on feature sets whose import was interrupted (or still runs)\n" \
	"      --caption-feature N  feature set of caption features, keyed by caption (default caption)\n" \
	"      --pseudo-feature N   feature set of pseudo features, keyed by image (default pseudo)\n" \
	"      --image-feature N    CLIP image features, for --cond gaussian (default image)\n" \
	"      --xi X               gaussian: normalize(f/|f| + X eps/|eps|) (default 3)\n"
int l2_train_data_option(int c, const char *arg, L2UsageFn usage, L2TrainDataOptions *o);
void l2_train_data_options_check(L2TrainDataOptions *o, L2UsageFn usage);

/* The condition size: every feature set the options use (captions when
 * pairs > 0 or want_captions, pseudo / image features for their modes) must
 * exist and agree ("DATASET: feature sets 'a' (d) and 'b' (e) differ in
 * size"; "DATASET: no feature set 'x' (...)"), and be complete unless
 * o->allow_incomplete (an interrupted import would silently train on part
 * of the images: l2_dataset_feature_need_complete, "--allow-incomplete"). */
int l2_train_data_dim(L2Dataset *ds, const L2TrainDataOptions *o, int want_captions);

typedef struct {
	int n, dim, R;
	float *px;             /* [n, 3, R, R] in [-1, 1], composited over the dataset's background */
	float *cond;           /* [n, dim] fixed condition (paired: primary caption; else pseudo or image) */
	float *img;            /* [n, dim] unit image features (gaussian, mixed), or NULL */
	unsigned char *paired; /* [n] */
	char **keys;           /* [n] image keys */
	char **caption;        /* [n] primary caption or NULL */
} L2TrainData;

/* The images of a split with their conditions.  Train: the paired subset and
 * the conditions of o->cond; test: every image with a caption feature, paired.
 * Images without the features they need are left out and counted in
 * *dropped. */
void l2_train_data_load(L2Dataset *ds, const L2TrainDataOptions *o, L2Split split, int dim, L2TrainData *d,
			int *dropped);
void l2_train_data_free(L2TrainData *d);
int l2_train_data_npaired(const L2TrainData *d);

/* One use of image i: x[3, R, R] (mirrored left-right when xflip and a draw
 * from r says so) and its condition h[dim].  Draws from r in this order: the
 * flip (when xflip), the gaussian/mixed choice and noise (when unpaired). */
void l2_train_data_sample(const L2TrainData *d, const L2TrainDataOptions *o, int i, int xflip, L2Rng *r, float *x,
			  float *h);
/* A batch: example idx[b] into x[b] and h[b] for b < B, sample b drawing
 * from l2_train_rng(seed, step, phase, b) (lib/nn/train.h). */
void l2_train_data_batch(const L2TrainData *d, const L2TrainDataOptions *o, const int *idx, int B, int xflip,
			 uint64_t seed, int64_t step, int phase, float *x, float *h);
/* Only the condition (the second half of the above). */
void l2_train_data_cond(const L2TrainData *d, const L2TrainDataOptions *o, int i, L2Rng *r, float *h);

/* Image KEY of the dataset as the generators see it: composited over the
 * dataset's background (else PIL's convert('RGB')), short side resized to R
 * (PIL bicubic), centre-cropped to R x R, scaled to [-1, 1]: px[3, R, R].
 * Dies naming the key when it cannot be decoded. */
void l2_train_data_image(L2Dataset *ds, const char *key, int R, float *px);

#endif
