/* fuzz_store.c — the store and dataset readers (lib/io/store.h,
 * lib/method/dataset.h): what l2 makes of the contents of an l2 store.
 *
 * The input is a list of records that l2_fuzz_lmdb writes into a fresh,
 * valid LMDB environment (fuzz.h), in the sub-databases of a dataset store
 * (schemas/dataset.md, schemas/store.md): meta, images, captions, split,
 * groups, attrs, corpus and two feature sets.  Then, as l2-store and the
 * trainers would: open the store, list its sub-databases and their sizes,
 * walk each, read its identity; open it as a dataset and read every split's
 * keys, splits, captions, attributes, the background, the first images
 * (decoded to RGB), every feature set's description and vectors. */
#include "fuzz.h"
#include "io/store.h"
#include "method/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const DBS[] = {"meta",  "images", "captions", "split",      "groups",
				  "attrs", "corpus", "feat.a",   "feat.pseudo"};

static int touch(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	size_t *sum = ctx;
	*sum += klen + vlen + (klen ? ((const unsigned char *)key)[klen - 1] : 0) +
		(vlen ? ((const unsigned char *)val)[vlen - 1] : 0);
	return *sum > (1u << 30);
}

static void read_store(const char *dir)
{
	L2Store *s = l2_store_open(dir, L2_STORE_RDONLY);
	char **names;
	size_t n = l2_store_dbs(s, &names), sum = 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(names[i], "meta")) l2_store_count(s, names[i]);
		l2_store_iter(s, names[i], touch, &sum);
		free(names[i]);
	}
	free(names);
	static const char *const meta[] = {"format", "kind", "version", "state", "background", "images"};
	for (int i = 0; i < 6; i++) free(l2_store_get_meta(s, meta[i]));
	l2_store_close(s);
}

static void read_dataset(const char *dir)
{
	L2Dataset *ds = l2_dataset_open(dir, L2_STORE_RDONLY);
	uint8_t bg[3];
	l2_dataset_background(ds, bg);
	for (int split = L2_SPLIT_ALL; split <= L2_SPLIT_TEST; split++) {
		char **keys;
		size_t n = l2_dataset_keys(ds, (L2Split)split, &keys);
		if (split == L2_SPLIT_ALL && l2_dataset_count(ds, L2_SPLIT_ALL) != n) {
			fprintf(stderr, "fuzz_store: %zu image keys, but a count of %llu\n", n,
				(unsigned long long)l2_dataset_count(ds, L2_SPLIT_ALL));
			abort();
		}
		for (size_t i = 0; i < n && i < 8; i++) {
			l2_dataset_split_of(ds, keys[i]);
			char **caps;
			size_t nc = l2_dataset_captions(ds, keys[i], &caps);
			l2_dataset_free_strings(caps, nc);
			free(l2_dataset_attr(ds, keys[i], "category"));
			if (split == L2_SPLIT_ALL && i < 2) {
				L2Image rgb;
				char err[256];
				if (l2_dataset_image_rgb(ds, keys[i], &rgb, err, sizeof err) == 0) l2_image_free(&rgb);
			}
		}
		l2_dataset_free_strings(keys, n);
	}
	static const char *const feats[] = {"a", "pseudo"};
	for (int f = 0; f < 2; f++) {
		L2FeatureInfo info;
		if (!l2_dataset_feature_info(ds, feats[f], &info)) continue;
		l2_dataset_feature_count(ds, feats[f]);
		float *v = malloc(sizeof(float) * info.dim);
		char **keys;
		size_t n = l2_dataset_keys(ds, L2_SPLIT_ALL, &keys);
		for (size_t i = 0; i < n && i < 8; i++) l2_dataset_get_feature(ds, feats[f], keys[i], v);
		l2_dataset_free_strings(keys, n);
		free(v);
	}
	l2_dataset_close(ds);
}

static void fuzz_one(const uint8_t *data, size_t size)
{
	char dir[512];
	snprintf(dir, sizeof dir, "%s/store", l2_fuzz_scratch());
	L2FuzzInput in = {data, size};
	l2_fuzz_lmdb(dir, DBS, sizeof DBS / sizeof *DBS, 0, &in);
	read_store(dir);
	read_dataset(dir);
}

static void init(void) { l2_fuzz_lmdb_init(DBS, sizeof DBS / sizeof *DBS, 0); }

L2_FUZZ_TARGET_INIT(fuzz_one, init)
