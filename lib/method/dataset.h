/* dataset.h — l2 datasets: images, captions, a train/test split, features
 * and a caption corpus in one LMDB store.  Layout: schemas/dataset.md.
 *
 * Typical training loop input:
 *     L2Dataset *ds = l2_dataset_open("emoji.lmdb", L2_STORE_RDONLY);
 *     char **keys; size_t n = l2_dataset_keys(ds, L2_SPLIT_TRAIN, &keys);
 *     for (i...) { l2_dataset_image_rgb(ds, keys[i], &rgb, err, sizeof err);
 *                  char **caps; size_t nc = l2_dataset_captions(ds, keys[i], &caps); ... }
 *     l2_dataset_free_strings(keys, n);
 * Every function dies with "PATH: problem" on a corrupt store. */
#ifndef L2_DATASET_H
#define L2_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "io/image.h"
#include "io/store.h"

#define L2_DATASET_VERSION "1"
#define L2_DATASET_MAX_KEY 511 /* LMDB's key limit */

typedef struct L2Dataset L2Dataset;

typedef enum { L2_SPLIT_ALL = 0, L2_SPLIT_TRAIN = 1, L2_SPLIT_TEST = 2 } L2Split;

/* Open the dataset at PATH (mode as l2_store_open).  Readers die unless it
 * is a dataset ("PATH: not an l2 dataset (meta kind ...)"); L2_STORE_CREATE
 * makes an empty one (meta kind/version set, state "building"). */
L2Dataset *l2_dataset_open(const char *path, int mode);
void l2_dataset_close(L2Dataset *ds);
L2Store *l2_dataset_store(L2Dataset *ds);
const char *l2_dataset_path(const L2Dataset *ds);

/* "train"/"test"/"all" <-> L2Split; parse returns -1 for anything else. */
int l2_split_parse(const char *s);
const char *l2_split_name(L2Split s);
/* The split rule of schemas/dataset.md for a group key. */
L2Split l2_split_for(const char *group, double test_fraction, uint64_t seed);

/* ---- reading ------------------------------------------------------------ */

/* Image paths of a split in key (bytewise) order: a malloc'd array of
 * malloc'd strings; returns the count. */
size_t l2_dataset_keys(L2Dataset *ds, L2Split split, char ***keys);
void l2_dataset_free_strings(char **v, size_t n);
/* Number of images in a split. */
uint64_t l2_dataset_count(L2Dataset *ds, L2Split split);
/* Split of one image; -1 when the image is not in the dataset. */
int l2_dataset_split_of(L2Dataset *ds, const char *key);

/* The stored file bytes (malloc'd); 0 when absent. */
int l2_dataset_image_bytes(L2Dataset *ds, const char *key, unsigned char **buf, size_t *len);
/* Decoded in the file's own mode (l2_image_load_mem).  Returns 0, or -1
 * with err set ("KEY: not in the dataset", "KEY: corrupt PNG: ..."). */
int l2_dataset_image(L2Dataset *ds, const char *key, L2Image *img, char *err, size_t errlen);
/* Decoded and converted to RGB 8-bit: alpha composited over the dataset's
 * `background` when it has one, else PIL convert('RGB'). */
int l2_dataset_image_rgb(L2Dataset *ds, const char *key, L2Image *rgb, char *err, size_t errlen);
/* The background (returns 1 and fills bg) or 0 when none is set. */
int l2_dataset_background(L2Dataset *ds, uint8_t bg[3]);

/* Captions of an image, primary first (malloc'd strings); 0 when none. */
size_t l2_dataset_captions(L2Dataset *ds, const char *key, char ***caps);
/* The distinct captions of the images of a split, sorted bytewise; returns the count. */
size_t l2_dataset_unique_captions(L2Dataset *ds, L2Split split, char ***caps);
/* One attribute (attrs sub-db) as a malloc'd string, or NULL. */
char *l2_dataset_attr(L2Dataset *ds, const char *key, const char *name);

/* ---- features ----------------------------------------------------------- */

typedef struct {
	char kind[25];   /* stream kind, e.g. "image-feature" */
	uint32_t dim;
	int normalized;  /* every vector unit-norm */
	int f16;         /* stored as float16 */
	int complete;    /* its last write ended normally (meta feat.NAME.complete is not 0) */
} L2FeatureInfo;

/* Is NAME a valid feature-set name ([a-z0-9_-]{1,32})? */
int l2_feature_name_ok(const char *name);
/* 1 and *info when the dataset has feature set NAME, else 0. */
int l2_dataset_feature_info(L2Dataset *ds, const char *name, L2FeatureInfo *info);
/* Declare (or check) feature set NAME: dies when it exists with another
 * kind or dimension.  Writers only. */
void l2_dataset_feature_declare(L2Dataset *ds, const char *name, const L2FeatureInfo *info);
/* A writer of feature set NAME starts with begin and ends with end.  begin
 * takes the set's writer lock (one writer per set; a second dies with
 * "PATH: a write into feature set 'NAME' is running (pid N) ..."), then
 * declares or checks the set in the transaction of the first batch and
 * marks it incomplete (meta feat.NAME.complete = 0), so that an
 * interrupted write shows.  end marks it complete (and not normalized when
 * a vector written was not) and commits. */
void l2_dataset_feature_begin(L2Dataset *ds, const char *name, const L2FeatureInfo *info);
void l2_dataset_feature_end(L2Dataset *ds, const char *name, int normalized);
/* begin for a set of features an encoder computes (l2-encode-images and l2-encode-text's
 * --store): an f32 set of KIND and DIM, and meta feat.NAME.model the base name of the
 * weights file MODEL, so that a reader can tell which model made it. */
void l2_dataset_feature_begin_encoded(L2Dataset *ds, const char *name, const char *kind, uint32_t dim, int normalized,
				      const char *model);
/* Readers that must not use part of a set (trainers) call this: it dies
 * unless feature set NAME is complete, saying whether a writer is still
 * at work (its pid) or was interrupted, and that OVERRIDE (a flag of the
 * calling tool, e.g. "--allow-incomplete") uses the set anyway. */
void l2_dataset_feature_need_complete(L2Dataset *ds, const char *name, const char *override);
/* Store / fetch one vector (dim floats).  get returns 0 when absent. */
void l2_dataset_put_feature(L2Dataset *ds, const char *name, const char *key, const float *vec);
int l2_dataset_get_feature(L2Dataset *ds, const char *name, const char *key, float *vec);
uint64_t l2_dataset_feature_count(L2Dataset *ds, const char *name);
/* Other descriptions of a feature set: meta feat.NAME.FIELD (FIELD
 * [a-z_]+, not kind/dim/dtype/normalized), e.g. "latent" (lib/method/latents.h).
 * get returns a malloc'd string or NULL. */
char *l2_dataset_feature_meta(L2Dataset *ds, const char *name, const char *field);
void l2_dataset_set_feature_meta(L2Dataset *ds, const char *name, const char *field, const char *value);

/* ---- building ----------------------------------------------------------- */

/* Clean a caption in place as schemas/dataset.md says; returns its length. */
size_t l2_caption_clean(char *s);
/* Add an image (file bytes as given) in a split; group is the key the
 * split was drawn for (NULL = the key itself).  Returns 1 when added, 0
 * when it was already there (left unchanged). */
int l2_dataset_put_image(L2Dataset *ds, const char *key, const void *bytes, size_t len, L2Split split,
			 const char *group);
int l2_dataset_has_image(L2Dataset *ds, const char *key);
/* Append a caption to an image's list (cleaned; duplicates and empty ones
 * ignored).  Returns 1 when added. */
int l2_dataset_add_caption(L2Dataset *ds, const char *key, const char *caption);
/* Set an attribute line of an image. */
void l2_dataset_set_attr(L2Dataset *ds, const char *key, const char *name, const char *value);
/* Add a corpus line (cleaned) with its source tag unless present.
 * Returns 1 when added, 0 when present, -1 when empty or over 511 bytes. */
int l2_dataset_add_corpus(L2Dataset *ds, const char *text, const char *source);
/* Recount and store the `images/train/test/captions/corpus` counts and
 * state "complete"; commits. */
void l2_dataset_finish(L2Dataset *ds);

#endif
