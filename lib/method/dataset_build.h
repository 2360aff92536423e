/* dataset_build.h — building an l2 dataset (method/dataset.h, schemas/dataset.md) from a
 * source, resumably: l2-dataset build and l2-dataset emoji.
 *
 * A build writes OUT.partial, commits every `checkpoint` images, and renames OUT.partial to
 * OUT only when complete, so OUT never holds half a dataset; a killed build continues with
 * resume = 1, keeping the images already in OUT.partial (and refusing another seed or test
 * fraction than the one it was started with).
 *
 * Two layers.  The sources, whole builds in one call:
 *     L2BuildOptions o; l2_build_defaults(&o); o.test_fraction = 0.2;
 *     l2_dataset_build_folder("ds.lmdb", "photos/", "captions.tsv", &o);
 * and the builder they are written with, for a new source:
 *     L2DatasetBuild *b = l2_dataset_build_open(out, &o, "my-source 1.0", root);
 *     for (...) if (l2_dataset_build_image(b, root, rel, NULL) >= 0) {
 *             l2_dataset_build_caption(b, rel, caption); l2_dataset_build_tick(b); }
 *     l2_dataset_build_corpus_files(b);
 *     l2_dataset_build_finish(b);   // renames, prints the summary line, frees b
 * Everything dies "PROGRAM: PATH: problem" on errors (a bad image only without skip_bad). */
#ifndef L2_DATASET_BUILD_H
#define L2_DATASET_BUILD_H

#include <stdint.h>

#include "method/dataset.h"

typedef struct {
	double test_fraction;       /* share of images (in expectation) in the test split (0.1) */
	uint64_t seed;              /* seed of the split hash (0) */
	long checkpoint;            /* commit every N images: the most a killed build loses (256) */
	int resume;                 /* continue OUT.partial */
	int force;                  /* replace an existing OUT */
	int skip_bad;               /* leave out unreadable or corrupt images with a warning */
	int skin_tones;             /* emoji: keep the skin-tone variants (1) */
	const char *const *corpus;  /* text files whose lines join the caption corpus... */
	int ncorpus;
	const char *corpus_source;  /* ...with this source tag ("extra") */
	const char *background;     /* folder: "RRGGBB", the colour images with alpha are composited
	                             * over wherever they become RGB (meta background); NULL: none */
} L2BuildOptions;

void l2_build_defaults(L2BuildOptions *o);

/* ---- sources ------------------------------------------------------------- */

/* The PNG/JPEG images under DIR (recursively, keys relative to DIR, sorted), with the
 * captions of CAPTIONS_TSV when not NULL: lines "relative/path<TAB>caption", several per
 * image allowed, checked whole before anything is written. */
void l2_dataset_build_folder(const char *out, const char *dir, const char *captions_tsv, const L2BuildOptions *o);

/* The npm package emoji-datasource-google unpacked in PKG (emoji.json, img/google/64/):
 * lower-cased names and short names as captions, skin-tone variants captioned with their
 * tone and split with their base emoji, category/subcategory/unified as attributes, a
 * white background (schemas/dataset.md, "Emoji dataset"). */
void l2_dataset_build_emoji(const char *out, const char *pkg, const L2BuildOptions *o);

/* ---- the builder ---------------------------------------------------------- */

typedef struct {
	uint64_t added, kept, bad;          /* images added now, already there, left out as bad */
	uint64_t captions_added, uncaptioned;
	uint64_t corpus_added, corpus_long; /* corpus lines added; left out as over 511 bytes */
} L2BuildCounts;

typedef struct L2DatasetBuild L2DatasetBuild;

/* Start (or with o->resume continue) building OUT; records source, root, seed and
 * test_fraction in meta.  o must outlive the build. */
L2DatasetBuild *l2_dataset_build_open(const char *out, const L2BuildOptions *o, const char *source, const char *root);
L2Dataset *l2_dataset_build_dataset(L2DatasetBuild *b);
L2BuildCounts *l2_dataset_build_counts(L2DatasetBuild *b);

/* Read ROOT/REL, check that it decodes, and store it under REL, split by the hash of GROUP
 * (NULL: REL).  Returns 1 added, 0 already there (resumed), -1 bad (left out: skip_bad). */
int l2_dataset_build_image(L2DatasetBuild *b, const char *root, const char *rel, const char *group);
/* A caption of KEY; also enters the corpus (source "caption"). */
void l2_dataset_build_caption(L2DatasetBuild *b, const char *key, const char *caption);
/* After an image and its captions: commits every o->checkpoint calls. */
void l2_dataset_build_tick(L2DatasetBuild *b);
/* The lines of o->corpus files into the corpus, tagged o->corpus_source. */
void l2_dataset_build_corpus_files(L2DatasetBuild *b);
/* Finish the dataset, rename OUT.partial to OUT (replacing OUT with o->force), print the
 * summary line, free b.  Dies (removing OUT.partial) when no image was added. */
void l2_dataset_build_finish(L2DatasetBuild *b);

#endif
