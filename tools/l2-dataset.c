/* l2-dataset — build and inspect l2 datasets (LMDB: images, captions,
 * train/test split, features, caption corpus; schemas/dataset.md).
 *
 *   l2-dataset build [--captions TSV] ds.lmdb DIR     from a folder (+ captions)
 *   l2-dataset emoji ds.lmdb PACKAGE_DIR               from emoji-datasource-google
 *   l2-dataset captions --split test --unique ds.lmdb  caption lines
 *   l2-dataset export-images --split test --rgb -o DIR ds.lmdb
 *   l2-dataset import-features -n pseudo ds.lmdb pseudo.l2f
 *   l2-dataset eval-retrieval ds.lmdb neighbors.l2f    top-1/top-5 vs chance
 */
#include "method/dataset.h"
#include "method/dataset_build.h"
#include "method/retrieval_eval.h"
#include "io/image.h"
#include "io/stream.h"
#include "core/shard.h"
#include "core/util.h"

#include <errno.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
	const char *cmd, *captions, *out, *name, *source, *model;
	const char **corpus;
	L2BuildOptions build; /* build, emoji */
	long candidates;
	int source_given, unique, primary, with_keys, rgb, long_list, incomplete;
	L2Split split;
	L2Shard shard; /* list, captions, export-images */
	char background[7]; /* build --background, as RRGGBB */
} Options;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: l2-dataset build [options] DATASET DIR          images of DIR (+ --captions TSV)\n"
		"       l2-dataset emoji [options] DATASET PACKAGE_DIR  the npm package emoji-datasource-google\n"
		"       l2-dataset add-corpus [--source TAG] DATASET [FILE]\n"
		"       l2-dataset list [--split S] [-l] DATASET\n"
		"       l2-dataset captions [--split S] [--unique|--primary] [--keys] DATASET\n"
		"       l2-dataset corpus [--source TAG] DATASET\n"
		"       l2-dataset stats DATASET\n"
		"       l2-dataset export-images [--split S] [--rgb] -o DIR DATASET\n"
		"       l2-dataset import-features -n NAME [--model M] DATASET [STREAM]\n"
		"       l2-dataset put-features DATASET NAME [STREAM]   (the same)\n"
		"       l2-dataset export-features -n NAME [--split S] DATASET > STREAM\n"
		"       l2-dataset eval-retrieval [--split S] [--candidates N] DATASET [NEIGHBORS]\n"
		"Build, inspect and feed l2 datasets: an LMDB store of images, captions, a\n"
		"deterministic train/test split, features and a caption corpus (schemas/dataset.md).\n\n"
		"Building (build, emoji):\n"
		"      --captions TSV      lines 'relative/path<TAB>caption', several per image allowed\n"
		"      --test-fraction F   share of images (in expectation) in the test split (default 0.1)\n"
		"      --seed S            seed of the split hash (default 0)\n"
		"      --corpus FILE       add FILE's lines to the caption corpus (repeatable)\n"
		"      --source TAG        corpus source tag for --corpus / add-corpus lines (default extra)\n"
		"      --resume            continue an interrupted build (DATASET.partial)\n"
		"      --checkpoint N      commit every N images, the most a killed build loses (256)\n"
		"      --force             replace an existing DATASET\n"
		"      --skip-bad          skip unreadable or corrupt images with a warning (default: stop)\n"
		"      --no-skin-tones     emoji: leave out the skin-tone variants\n"
		"      --background R,G,B  build: composite images with alpha over this colour wherever\n"
		"                          they become RGB (trainers, --rgb; default: alpha dropped;\n"
		"                          emoji: always white)\n"
		"Reading:\n"
		"      --split S           train, test or all (default all)\n"
		"      --unique            captions: each distinct caption once, sorted\n"
		"      --primary           captions: only each image's first caption\n"
		"      --keys              captions: 'path<TAB>caption' lines\n"
		"  -l, --long              list: 'path<TAB>split<TAB>primary caption'\n"
		"  -o, --output DIR        export-images: the folder to write (files keyed by path)\n"
		"      --rgb               export-images: decode, composite alpha over the dataset's\n"
		"                          background, write RGB PNGs (the pixels trainers see)\n"
		"      --shard I/N[:A]     list, captions, export-images: only shard I of N (blocks of A\n"
		"                          output lines or images, default 4096); auto: from Slurm or MPI\n"
		"  -n, --name NAME         feature set ([a-z0-9_-], e.g. image, caption, pseudo)\n"
		"      --model M           import-features: record what made the features\n"
		"      --incomplete        export-features: read a set whose import was interrupted\n"
		"                          (or still runs) instead of refusing it\n"
		"      --candidates N      eval-retrieval: captions in the searched index (default:\n"
		"                          the distinct captions of the split)\n"
		"      --progress          progress on stderr even when it is not a terminal\n"
		"      --quiet             no informational messages\n"
		"  -h, --help              this help\n"
		"      --version           print the version\n"
		"See l2-dataset(1); WordNet glosses for the corpus: l2-wordnet-glosses(1).\n");
}

enum { OPT_CAPTIONS = L2_OPT_COMMON_END, OPT_TEST_FRACTION, OPT_SEED, OPT_CORPUS, OPT_SOURCE, OPT_RESUME, OPT_FORCE,
       OPT_SKIP_BAD, OPT_SPLIT, OPT_UNIQUE, OPT_PRIMARY, OPT_KEYS, OPT_RGB, OPT_MODEL, OPT_CANDIDATES, OPT_NO_SKIN,
       OPT_CHECKPOINT, OPT_INCOMPLETE, OPT_BACKGROUND };

static const char *const COMMANDS[] = {"build", "emoji", "add-corpus", "list", "captions", "corpus", "stats",
				       "export-images", "import-features", "export-features", "eval-retrieval",
				       "put-features", NULL};

static int is(const Options *o, const char *c) { return !strcmp(o->cmd, c); }

static void parse_options(int argc, char **argv, Options *o)
{
	static const struct option longopts[] = {
		L2_COMMON_LONGOPTS,
		{"captions", required_argument, 0, OPT_CAPTIONS},
		{"test-fraction", required_argument, 0, OPT_TEST_FRACTION},
		{"seed", required_argument, 0, OPT_SEED},
		{"corpus", required_argument, 0, OPT_CORPUS},
		{"source", required_argument, 0, OPT_SOURCE},
		{"resume", no_argument, 0, OPT_RESUME},
		{"force", no_argument, 0, OPT_FORCE},
		{"skip-bad", no_argument, 0, OPT_SKIP_BAD},
		{"no-skin-tones", no_argument, 0, OPT_NO_SKIN},
		{"split", required_argument, 0, OPT_SPLIT},
		{"unique", no_argument, 0, OPT_UNIQUE},
		{"primary", no_argument, 0, OPT_PRIMARY},
		{"keys", no_argument, 0, OPT_KEYS},
		{"long", no_argument, 0, 'l'},
		{"output", required_argument, 0, 'o'},
		{"rgb", no_argument, 0, OPT_RGB},
		{"name", required_argument, 0, 'n'},
		{"model", required_argument, 0, OPT_MODEL},
		{"candidates", required_argument, 0, OPT_CANDIDATES},
		{"checkpoint", required_argument, 0, OPT_CHECKPOINT},
		{"incomplete", no_argument, 0, OPT_INCOMPLETE},
		{"background", required_argument, 0, OPT_BACKGROUND},
		L2_SHARD_LONGOPT,
		{0, 0, 0, 0}};
	memset(o, 0, sizeof *o);
	L2BuildOptions *b = &o->build;
	l2_build_defaults(b);
	o->source = b->corpus_source;
	o->corpus = l2_calloc((size_t)argc + 1, sizeof *o->corpus);
	b->corpus = o->corpus;
	/* the subcommand comes first; -h / --version work without one */
	if (argc > 1 && argv[1][0] != '-') {
		for (int i = 0; COMMANDS[i]; i++)
			if (!strcmp(argv[1], COMMANDS[i])) o->cmd = COMMANDS[i];
		if (!o->cmd) l2_usage_error(usage, "unknown command '%s'", argv[1]);
		optind = 2;
	}
	int c;
	while ((c = getopt_long(argc, argv, "hln:o:", longopts, NULL)) != -1) {
		if (l2_common_option(c, optarg, usage)) continue;
		switch (c) {
		case OPT_CAPTIONS: o->captions = optarg; break;
		case OPT_TEST_FRACTION:
			b->test_fraction = l2_parse_double(optarg, "--test-fraction");
			if (!(b->test_fraction >= 0 && b->test_fraction <= 1))
				l2_usage_error(usage, "--test-fraction must be in [0, 1]");
			break;
		case OPT_SEED: b->seed = l2_parse_u64(optarg, "--seed"); break;
		case OPT_CORPUS: o->corpus[b->ncorpus++] = optarg; break;
		case OPT_SOURCE: o->source = b->corpus_source = optarg; o->source_given = 1; break;
		case OPT_RESUME: b->resume = 1; break;
		case OPT_FORCE: b->force = 1; break;
		case OPT_SKIP_BAD: b->skip_bad = 1; break;
		case OPT_NO_SKIN: b->skin_tones = 0; break;
		case OPT_INCOMPLETE: o->incomplete = 1; break;
		case OPT_BACKGROUND: { /* as RRGGBB, the dataset's meta form */
			uint8_t rgb[3];
			l2_rgb_option(optarg, "--background", usage, rgb);
			snprintf(o->background, sizeof o->background, "%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
			b->background = o->background;
			break;
		}
		case L2_OPT_SHARD: l2_shard_option(optarg, usage, &o->shard); break;
		case OPT_SPLIT: {
			int sp = l2_split_parse(optarg);
			if (sp < 0) l2_usage_error(usage, "invalid value for --split: '%s' (expected train, test or all)", optarg);
			o->split = (L2Split)sp;
			break;
		}
		case OPT_UNIQUE: o->unique = 1; break;
		case OPT_PRIMARY: o->primary = 1; break;
		case OPT_KEYS: o->with_keys = 1; break;
		case 'l': o->long_list = 1; break;
		case 'o': o->out = optarg; break;
		case OPT_RGB: o->rgb = 1; break;
		case 'n': o->name = optarg; break;
		case OPT_MODEL: o->model = optarg; break;
		case OPT_CANDIDATES: o->candidates = l2_parse_long(optarg, "--candidates", 1, 1L << 40); break;
		case OPT_CHECKPOINT: b->checkpoint = l2_parse_long(optarg, "--checkpoint", 1, 1L << 30); break;
		default: l2_usage_error(usage, "unknown option");
		}
	}
	if (!o->cmd) l2_usage_error(usage, "missing command (build, emoji, list, captions, stats, ...)");
	if (b->background && !is(o, "build")) l2_usage_error(usage, "--background is an option of build");
	for (const char *p = o->source; *p; p++)
		if ((unsigned char)*p <= ' ') l2_usage_error(usage, "--source: a tag without spaces");
	if (o->name && !l2_feature_name_ok(o->name))
		l2_usage_error(usage, "invalid feature-set name '%s' (expected [a-z0-9_-]{1,32})", o->name);
	int npos = argc - optind;
	int want_min = 1, want_max = 1;
	/* aliases: "build -o DATASET DIR", "put-features DATASET NAME [STREAM]" */
	if ((is(o, "build") || is(o, "emoji")) && o->out && npos == 1) {
		argv[--optind] = (char *)o->out;
		npos++;
		o->out = NULL;
	}
	if (is(o, "put-features") && npos >= 2) {
		o->name = argv[optind + 1];
		if (!l2_feature_name_ok(o->name))
			l2_usage_error(usage, "invalid feature-set name '%s' (expected [a-z0-9_-]{1,32})", o->name);
		argv[optind + 1] = argv[optind];
		optind++;
		npos--;
		o->cmd = "import-features";
	}
	if (is(o, "build") || is(o, "emoji")) want_min = want_max = 2;
	else if (is(o, "add-corpus") || is(o, "import-features") || is(o, "eval-retrieval")) want_max = 2;
	if (npos < want_min) l2_usage_error(usage, "%s: missing arguments", o->cmd);
	if (npos > want_max) l2_usage_error(usage, "%s: too many arguments", o->cmd);
	if ((is(o, "import-features") || is(o, "export-features")) && !o->name)
		l2_usage_error(usage, "%s needs -n NAME", o->cmd);
	if (is(o, "export-images") && !o->out) l2_usage_error(usage, "export-images needs -o DIR");
	if (o->captions && !is(o, "build")) l2_usage_error(usage, "--captions goes with build");
	if (o->incomplete && !is(o, "export-features")) l2_usage_error(usage, "--incomplete goes with export-features");
	if (o->shard.count && !is(o, "list") && !is(o, "captions") && !is(o, "export-images"))
		l2_usage_error(usage, "--shard goes with list, captions and export-images");
	if (o->unique && o->primary) l2_usage_error(usage, "--unique and --primary exclude each other");
	if ((o->unique && o->with_keys)) l2_usage_error(usage, "--unique and --keys exclude each other");
}

/* ---- building ---------------------------------------------------------------- */

static void cmd_build(const Options *o, const char *out, const char *dir)
{
	l2_dataset_build_folder(out, dir, o->captions, &o->build);
}

static void cmd_emoji(const Options *o, const char *out, const char *pkg)
{
	l2_dataset_build_emoji(out, pkg, &o->build);
}

/* ---- corpus ---------------------------------------------------------------------------------- */

static void cmd_add_corpus(const Options *o, const char *dspath, const char *file)
{
	L2Dataset *ds = l2_dataset_open(dspath, L2_STORE_WRITE);
	char **lines;
	size_t n = l2_read_lines(file ? file : "-", &lines), added = 0, lng = 0, empty = 0;
	/* corpus lines are text the encoders must read later: refused now */
	for (size_t i = 0; i < n; i++)
		if (!l2_utf8_valid(lines[i], strlen(lines[i])))
			l2_die("%s: line %zu: not valid UTF-8", file ? file : "-", i + 1);
	for (size_t i = 0; i < n; i++) {
		int r = l2_dataset_add_corpus(ds, lines[i], o->source);
		if (r > 0) added++;
		else if (r < 0 && l2_caption_clean(lines[i])) lng++;
		else if (r < 0) empty++;
	}
	char v[32];
	snprintf(v, sizeof v, "%llu", (unsigned long long)l2_store_count(l2_dataset_store(ds), "corpus"));
	l2_store_set_meta(l2_dataset_store(ds), "corpus", v);
	l2_dataset_close(ds);
	char extra[64] = "";
	if (empty) snprintf(extra, sizeof extra, ", %zu empty", empty);
	l2_info("%s: %zu corpus line%s added (%zu already there%s%s)", dspath, added, added == 1 ? "" : "s",
		n - added - lng - empty, extra, lng ? ", some over 511 bytes left out" : "");
	l2_free_lines(lines, n);
}

typedef struct {
	const char *source;
	FILE *f;
	uint64_t n;
	uint64_t by_src_n[16];
	char by_src[16][40];
	int nsrc;
} CorpusCtx;

static int corpus_cb(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	CorpusCtx *c = ctx;
	if (c->f) {
		if (c->source && (strlen(c->source) != vlen || memcmp(c->source, val, vlen))) return 0;
		fwrite(key, 1, klen, c->f);
		fputc('\n', c->f);
	} else {
		int j;
		for (j = 0; j < c->nsrc; j++)
			if (strlen(c->by_src[j]) == vlen && !memcmp(c->by_src[j], val, vlen)) break;
		if (j == c->nsrc && c->nsrc < 16) {
			snprintf(c->by_src[j], sizeof c->by_src[j], "%.*s", (int)(vlen < 39 ? vlen : 39), (const char *)val);
			c->nsrc++;
		}
		if (j < 16) c->by_src_n[j]++;
	}
	c->n++;
	return 0;
}

static void cmd_corpus(const Options *o, const char *dspath)
{
	L2Dataset *ds = l2_dataset_open(dspath, L2_STORE_RDONLY);
	L2OFile *out = l2_ofile_open("-", 0);
	CorpusCtx c = {0};
	c.f = l2_ofile_fp(out);
	c.source = o->source_given ? o->source : NULL;
	l2_store_iter(l2_dataset_store(ds), "corpus", corpus_cb, &c);
	l2_ofile_commit(out);
	l2_dataset_close(ds);
}

/* ---- list, captions, stats -------------------------------------------------------------------- */

static void cmd_list(const Options *o, const char *dspath)
{
	L2Dataset *ds = l2_dataset_open(dspath, L2_STORE_RDONLY);
	char **keys;
	size_t n = l2_dataset_keys(ds, o->split, &keys);
	l2_shard_info(&o->shard);
	for (size_t i = 0; i < n; i++) {
		if (!l2_shard_has(&o->shard, i)) continue; /* a record is a line */
		if (!o->long_list) {
			printf("%s\n", keys[i]);
			continue;
		}
		char **caps;
		size_t nc = l2_dataset_captions(ds, keys[i], &caps);
		printf("%s\t%s\t%s\n", keys[i], l2_split_name((L2Split)l2_dataset_split_of(ds, keys[i])), nc ? caps[0] : "");
		l2_dataset_free_strings(caps, nc);
	}
	l2_dataset_free_strings(keys, n);
	l2_dataset_close(ds);
}

static void cmd_captions(const Options *o, const char *dspath)
{
	L2Dataset *ds = l2_dataset_open(dspath, L2_STORE_RDONLY);
	l2_shard_info(&o->shard);
	L2OFile *out = l2_ofile_open("-", 0);
	FILE *f = l2_ofile_fp(out);
	if (o->unique) {
		char **v;
		size_t u = l2_dataset_unique_captions(ds, o->split, &v);
		for (size_t i = 0; i < u; i++)
			if (l2_shard_has(&o->shard, i)) fprintf(f, "%s\n", v[i]);
		l2_dataset_free_strings(v, u);
	} else {
		char **keys;
		size_t n = l2_dataset_keys(ds, o->split, &keys);
		uint64_t line = 0; /* a record is an output line */
		for (size_t i = 0; i < n; i++) {
			char **caps;
			size_t nc = l2_dataset_captions(ds, keys[i], &caps);
			for (size_t j = 0; j < nc && (!o->primary || j == 0); j++) {
				if (!l2_shard_has(&o->shard, line++)) continue;
				if (o->with_keys) fprintf(f, "%s\t", keys[i]);
				fprintf(f, "%s\n", caps[j]);
			}
			l2_dataset_free_strings(caps, nc);
		}
		l2_dataset_free_strings(keys, n);
	}
	l2_ofile_commit(out);
	l2_dataset_close(ds);
}

typedef struct {
	uint64_t n, total;
} CapCount;

static int capcount_cb(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	CapCount *c = ctx;
	c->n++;
	c->total += vlen > 0;
	for (size_t i = 0; i < vlen; i++) c->total += ((const char *)val)[i] == '\n';
	return 0;
}

static int meta_cb(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	L2Dataset *ds = ctx;
	if (klen > 10 && !memcmp(key, "feat.", 5) && !memcmp((const char *)key + klen - 5, ".kind", 5)) {
		char name[64];
		snprintf(name, sizeof name, "%.*s", (int)(klen - 10 < 60 ? klen - 10 : 60), (const char *)key + 5);
		L2FeatureInfo fi;
		if (l2_dataset_feature_info(ds, name, &fi))
			printf("feature\t%s\t%s\t%u\t%s%s%s\t%llu\n", name, fi.kind, fi.dim, fi.f16 ? "f16" : "f32",
			       fi.normalized ? ",normalized" : "", fi.complete ? "" : ",incomplete",
			       (unsigned long long)l2_dataset_feature_count(ds, name));
	}
	return 0;
}

static void cmd_stats(const Options *o, const char *dspath)
{
	(void)o;
	L2Dataset *ds = l2_dataset_open(dspath, L2_STORE_RDONLY);
	L2Store *st = l2_dataset_store(ds);
	static const char *const metas[] = {"source", "state", "test_fraction", "seed", "background"};
	for (int i = 0; i < 5; i++) {
		char *v = l2_store_get_meta(st, metas[i]);
		if (v) printf("%s\t%s\n", metas[i], v);
		free(v);
	}
	uint64_t n = l2_dataset_count(ds, L2_SPLIT_ALL), te = l2_dataset_count(ds, L2_SPLIT_TEST);
	CapCount cc = {0, 0};
	l2_store_iter(st, "captions", capcount_cb, &cc);
	printf("images\t%llu\ntrain\t%llu\ntest\t%llu\n", (unsigned long long)n, (unsigned long long)(n - te),
	       (unsigned long long)te);
	printf("captioned\t%llu\nuncaptioned\t%llu\ncaptions\t%llu\n", (unsigned long long)cc.n,
	       (unsigned long long)(n - cc.n), (unsigned long long)cc.total);
	CorpusCtx c = {0};
	l2_store_iter(st, "corpus", corpus_cb, &c);
	printf("corpus\t%llu\n", (unsigned long long)c.n);
	for (int j = 0; j < c.nsrc; j++) printf("corpus.%s\t%llu\n", c.by_src[j], (unsigned long long)c.by_src_n[j]);
	l2_store_iter(st, "meta", meta_cb, ds);
	l2_dataset_close(ds);
}

/* ---- images out ------------------------------------------------------------------------------- */

static int key_safe(const char *k)
{
	if (k[0] == '/' || !*k) return 0;
	for (const char *p = k; *p;) {
		size_t l = strcspn(p, "/");
		if ((l == 2 && !strncmp(p, "..", 2)) || (l == 1 && *p == '.') || l == 0) return 0;
		p += l;
		if (*p) p++;
	}
	return 1;
}

/* Exported images are a cache anyone can regenerate: written to a temporary
 * name and renamed, but not fsync'ed one by one (that costs ~10 ms a file). */
static void write_file(const char *path, const void *buf, size_t len, const L2Image *rgb)
{
	size_t l = strlen(path) + 16;
	char *tmp = l2_malloc(l);
	snprintf(tmp, l, "%s.tmp.%d", path, (int)getpid());
	FILE *f = fopen(tmp, "wb");
	if (!f) l2_die_errno("%s", path);
	int ok = 1;
	errno = 0; /* what fails below sets it */
	if (rgb) {
		png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
		png_infop info = png ? png_create_info_struct(png) : NULL;
		if (!info || setjmp(png_jmpbuf(png))) {
			ok = 0;
		} else {
			png_init_io(png, f);
			png_set_IHDR(png, info, (png_uint_32)rgb->w, (png_uint_32)rgb->h, 8,
				     rgb->channels == 4 ? PNG_COLOR_TYPE_RGBA : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
				     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
			png_write_info(png, info);
			for (int y = 0; y < rgb->h; y++)
				png_write_row(png, rgb->data + (size_t)y * rgb->w * rgb->channels);
			png_write_end(png, NULL);
		}
		png_destroy_write_struct(&png, &info);
	} else {
		ok = fwrite(buf, 1, len, f) == len;
	}
	int err = ok ? 0 : errno;
	if (fclose(f) && !err) err = errno;
	if (!ok || err) {
		unlink(tmp);
		/* libpng reports through longjmp without errno: a full disk is the usual cause */
		if (!err && l2_disk_full(tmp)) err = ENOSPC;
		if (err) {
			errno = err;
			l2_die_errno("%s: write error", path);
		}
		l2_die("%s: write error", path);
	}
	if (rename(tmp, path)) {
		unlink(tmp);
		l2_die_errno("%s", path);
	}
	free(tmp);
}

/* The folders of DIR below OUT that exist must be folders, not symbolic
 * links: a link OUT/sub -> elsewhere would have key "sub/a.png" written
 * outside OUT.  (File links are safely replaced by the rename.) */
static void no_links_below(const char *out, char *dir)
{
	size_t ol = strlen(out);
	for (char *c = dir + ol; *c; c++) {
		if (*c != '/' || c == dir + ol) continue;
		*c = 0;
		struct stat st;
		int link = !lstat(dir, &st) && S_ISLNK(st.st_mode);
		if (link) l2_die("%s: a symbolic link inside the output folder: not written through", dir);
		*c = '/';
	}
	struct stat st;
	if (strlen(dir) > ol && !lstat(dir, &st) && S_ISLNK(st.st_mode))
		l2_die("%s: a symbolic link inside the output folder: not written through", dir);
}

static void cmd_export_images(const Options *o, const char *dspath)
{
	L2Dataset *ds = l2_dataset_open(dspath, L2_STORE_RDONLY);
	l2_mkdir_p(o->out);
	char **keys;
	size_t n = l2_dataset_keys(ds, o->split, &keys), written = 0;
	l2_shard_info(&o->shard);
	L2Progress p;
	l2_progress_start(&p, "export", "img", n);
	for (size_t i = 0; i < n; i++) {
		if (!l2_shard_has(&o->shard, i)) { /* a record is an image, in key order */
			l2_progress_add(&p, 1);
			continue;
		}
		written++;
		if (!key_safe(keys[i])) l2_die("%s: unsafe image path '%s'", dspath, keys[i]);
		size_t pl = strlen(o->out) + strlen(keys[i]) + 2;
		char *path = l2_malloc(pl);
		snprintf(path, pl, "%s/%s", o->out, keys[i]);
		char *slash = strrchr(path, '/');
		*slash = 0;
		no_links_below(o->out, path);
		l2_mkdir_p(path);
		*slash = '/';
		if (o->rgb) {
			L2Image rgb;
			char err[300];
			if (l2_dataset_image_rgb(ds, keys[i], &rgb, err, sizeof err)) l2_die("%s: %s", dspath, err);
			write_file(path, NULL, 0, &rgb);
			l2_image_free(&rgb);
		} else {
			unsigned char *buf;
			size_t len;
			if (!l2_dataset_image_bytes(ds, keys[i], &buf, &len)) l2_die("%s: %s: image missing", dspath, keys[i]);
			write_file(path, buf, len, NULL);
			free(buf);
		}
		free(path);
		l2_progress_add(&p, 1);
	}
	l2_progress_end(&p);
	l2_info("%s: %zu images written", o->out, written);
	l2_dataset_free_strings(keys, n);
	l2_dataset_close(ds);
}

/* ---- features ---------------------------------------------------------------------------------- */

static void cmd_import_features(const Options *o, const char *dspath, const char *in)
{
	L2StreamReader *r = l2_stream_open(in ? in : "-");
	const L2StreamHeader *h = l2_stream_header(r);
	if (!strcmp(h->kind, L2_KIND_NEIGHBORS))
		l2_die("%s: a neighbors stream cannot be stored as features (pass it through l2-optimize-pseudo)",
		       l2_stream_name(r));
	/* a stream that fails on its first record changes nothing */
	L2Record rec;
	int more = l2_stream_next(r, &rec);
	L2Dataset *ds = l2_dataset_open(dspath, L2_STORE_WRITE);
	L2FeatureInfo fi = {{0}, h->dim, (h->flags & L2FS_NORMALIZED) != 0, h->dtype == L2_DTYPE_F16, 1};
	snprintf(fi.kind, sizeof fi.kind, "%s", h->kind);
	l2_dataset_feature_begin(ds, o->name, &fi);
	int by_image = strcmp(h->kind, L2_KIND_TEXT) != 0;
	L2Progress p;
	l2_progress_start(&p, "features", "vec", 0);
	uint64_t n = 0;
	for (; more; more = l2_stream_next(r, &rec)) {
		if (by_image && !l2_dataset_has_image(ds, rec.key))
			l2_die("%s: key '%s' is not an image of %s", l2_stream_name(r), rec.key, dspath);
		if (rec.key_len > L2_DATASET_MAX_KEY)
			l2_die("%s: key of %u bytes (at most %d fit a dataset)", l2_stream_name(r), rec.key_len,
			       L2_DATASET_MAX_KEY);
		l2_dataset_put_feature(ds, o->name, rec.key, rec.vec);
		n++;
		l2_progress_add(&p, 1);
	}
	l2_progress_end(&p);
	if (o->model) l2_dataset_set_feature_meta(ds, o->name, "model", o->model);
	l2_dataset_feature_end(ds, o->name, l2_stream_normalized(r));
	/* a key repeated in the stream is written twice but held once */
	uint64_t held = l2_dataset_feature_count(ds, o->name);
	l2_dataset_close(ds);
	l2_info("%s: %llu %s vector%s written to '%s', which now holds %llu", dspath, (unsigned long long)n, h->kind,
		n == 1 ? "" : "s", o->name, (unsigned long long)held);
	l2_stream_close(r); /* h points into the reader */
}

typedef struct {
	L2Dataset *ds;
	L2StreamWriter *w;
	L2Split split;
	uint32_t dim;
	int f16, by_image;
	float *vec;
	const char *path;
} ExportCtx;

static int export_cb(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	ExportCtx *c = ctx;
	char *k = l2_malloc(klen + 1);
	memcpy(k, key, klen);
	k[klen] = 0;
	if (c->split != L2_SPLIT_ALL && c->by_image && l2_dataset_split_of(c->ds, k) != (int)c->split) {
		free(k);
		return 0;
	}
	if (vlen != (size_t)c->dim * (c->f16 ? 2 : 4)) l2_die("%s: feature of '%s' has %zu bytes", c->path, k, vlen);
	if (c->f16)
		for (uint32_t i = 0; i < c->dim; i++) c->vec[i] = l2_half_to_float(l2_le16((const unsigned char *)val + 2 * i));
	else memcpy(c->vec, val, vlen);
	l2_stream_write_len(c->w, k, (uint32_t)klen, c->vec);
	free(k);
	return 0;
}

static void cmd_export_features(const Options *o, const char *dspath)
{
	L2Dataset *ds = l2_dataset_open(dspath, L2_STORE_RDONLY);
	L2FeatureInfo fi;
	if (!o->incomplete) l2_dataset_feature_need_complete(ds, o->name, "--incomplete");
	if (!l2_dataset_feature_info(ds, o->name, &fi)) l2_die("%s: no feature set '%s'", dspath, o->name);
	ExportCtx c = {ds, NULL, o->split, fi.dim, fi.f16, strcmp(fi.kind, L2_KIND_TEXT) != 0, NULL, dspath};
	if (o->split != L2_SPLIT_ALL && !c.by_image)
		l2_die("%s: --split selects images; feature set '%s' is keyed by text", dspath, o->name);
	c.vec = l2_malloc((size_t)fi.dim * sizeof(float));
	c.w = l2_stream_create_dtype("-", fi.kind, fi.dim, fi.normalized ? L2FS_NORMALIZED : 0, 0, L2FS_UNTIL_END,
				     fi.f16 ? L2_DTYPE_F16 : L2_DTYPE_F32);
	char db[48];
	snprintf(db, sizeof db, "feat.%s", o->name);
	l2_store_iter(l2_dataset_store(ds), db, export_cb, &c);
	l2_stream_writer_close(c.w);
	free(c.vec);
	l2_dataset_close(ds);
}

/* ---- retrieval accuracy ------------------------------------------------------------------------ */

static void cmd_eval_retrieval(const Options *o, const char *dspath, const char *in)
{
	L2Dataset *ds = l2_dataset_open(dspath, L2_STORE_RDONLY);
	L2StreamReader *r = l2_stream_open(in ? in : "-");
	L2RetrievalScore s;
	l2_retrieval_eval(ds, r, o->split, (size_t)o->candidates, &s);
	l2_stream_close(r);
	l2_dataset_close(ds);
	if (!s.queries) l2_die("%s: no queries with captions in split %s", in ? in : "stdin", l2_split_name(o->split));
	L2OFile *out = l2_ofile_open("-", 0);
	FILE *f = l2_ofile_fp(out);
	fprintf(f, "queries\t%llu\ncandidates\t%zu\nk\t%u\n", (unsigned long long)s.queries, s.candidates, s.k);
	for (int m = 0; m < L2_EVAL_NM; m++) {
		if ((uint32_t)L2_EVAL_M[m] > s.k) continue;
		fprintf(f, "top%d\t%.4f\nchance_top%d\t%.4f\n", L2_EVAL_M[m], s.top[m], L2_EVAL_M[m], s.chance[m]);
	}
	fprintf(f, "mrr_at_k\t%.4f\n", s.mrr);
	if (s.uncaptioned) fprintf(f, "uncaptioned_queries\t%llu\n", (unsigned long long)s.uncaptioned);
	l2_ofile_commit(out);
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	Options o;
	parse_options(argc, argv, &o);
	char **a = argv + optind;
	int na = argc - optind;
	if (is(&o, "build")) cmd_build(&o, a[0], a[1]);
	else if (is(&o, "emoji")) cmd_emoji(&o, a[0], a[1]);
	else if (is(&o, "add-corpus")) cmd_add_corpus(&o, a[0], na > 1 ? a[1] : NULL);
	else if (is(&o, "list")) cmd_list(&o, a[0]);
	else if (is(&o, "captions")) cmd_captions(&o, a[0]);
	else if (is(&o, "corpus")) cmd_corpus(&o, a[0]);
	else if (is(&o, "stats")) cmd_stats(&o, a[0]);
	else if (is(&o, "export-images")) cmd_export_images(&o, a[0]);
	else if (is(&o, "import-features")) cmd_import_features(&o, a[0], na > 1 ? a[1] : NULL);
	else if (is(&o, "export-features")) cmd_export_features(&o, a[0]);
	else if (is(&o, "eval-retrieval")) cmd_eval_retrieval(&o, a[0], na > 1 ? a[1] : NULL);
	free(o.corpus);
	return 0;
}
