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
#include "io/image.h"
#include "io/stream.h"
#include "core/hash.h"
#include "core/util.h"

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <png.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
	const char *cmd, *captions, *out, *split_s, *name, *source, *model, *kind;
	const char **corpus;
	int ncorpus;
	double test_fraction;
	uint64_t seed;
	long max_lines, candidates, checkpoint;
	int source_given, resume, force, skip_bad, unique, primary, with_keys, rgb, long_list, no_skin_tones, incomplete;
	L2Split split;
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
		"       l2-dataset glosses [--max N] [--seed S] [WORDNET_DIR]\n"
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
		"Reading:\n"
		"      --split S           train, test or all (default all)\n"
		"      --unique            captions: each distinct caption once, sorted\n"
		"      --primary           captions: only each image's first caption\n"
		"      --keys              captions: 'path<TAB>caption' lines\n"
		"  -l, --long              list: 'path<TAB>split<TAB>primary caption'\n"
		"  -o, --output DIR        export-images: the folder to write (files keyed by path)\n"
		"      --rgb               export-images: decode, composite alpha over the dataset's\n"
		"                          background, write RGB PNGs (the pixels trainers see)\n"
		"  -n, --name NAME         feature set ([a-z0-9_-], e.g. image, caption, pseudo)\n"
		"      --model M           import-features: record what made the features\n"
		"      --incomplete        export-features: read a set whose import was interrupted\n"
		"                          (or still runs) instead of refusing it\n"
		"      --candidates N      eval-retrieval: captions in the searched index (default:\n"
		"                          the distinct captions of the split)\n"
		"      --max N             glosses: at most N glosses, a deterministic subset by --seed\n"
		"      --progress          progress on stderr even when it is not a terminal\n"
		"      --quiet             no informational messages\n"
		"  -h, --help              this help\n"
		"      --version           print the version\n"
		"See l2-dataset(1).\n");
}

enum { OPT_CAPTIONS = L2_OPT_COMMON_END, OPT_TEST_FRACTION, OPT_SEED, OPT_CORPUS, OPT_SOURCE, OPT_RESUME, OPT_FORCE,
       OPT_SKIP_BAD, OPT_SPLIT, OPT_UNIQUE, OPT_PRIMARY, OPT_KEYS, OPT_RGB, OPT_MODEL, OPT_CANDIDATES, OPT_MAX,
       OPT_NO_SKIN, OPT_CHECKPOINT, OPT_INCOMPLETE };

static const char *const COMMANDS[] = {"build", "emoji", "add-corpus", "list", "captions", "corpus", "stats",
				       "export-images", "import-features", "export-features", "eval-retrieval",
				       "glosses", "put-features", NULL};

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
		{"max", required_argument, 0, OPT_MAX},
		{"checkpoint", required_argument, 0, OPT_CHECKPOINT},
		{"incomplete", no_argument, 0, OPT_INCOMPLETE},
		{0, 0, 0, 0}};
	memset(o, 0, sizeof *o);
	o->test_fraction = 0.1;
	o->checkpoint = 256;
	o->source = "extra";
	o->corpus = l2_calloc((size_t)argc + 1, sizeof *o->corpus);
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
			o->test_fraction = l2_parse_double(optarg, "--test-fraction");
			if (!(o->test_fraction >= 0 && o->test_fraction <= 1))
				l2_usage_error(usage, "--test-fraction must be in [0, 1]");
			break;
		case OPT_SEED: o->seed = l2_parse_u64(optarg, "--seed"); break;
		case OPT_CORPUS: o->corpus[o->ncorpus++] = optarg; break;
		case OPT_SOURCE: o->source = optarg; o->source_given = 1; break;
		case OPT_RESUME: o->resume = 1; break;
		case OPT_FORCE: o->force = 1; break;
		case OPT_SKIP_BAD: o->skip_bad = 1; break;
		case OPT_NO_SKIN: o->no_skin_tones = 1; break;
		case OPT_INCOMPLETE: o->incomplete = 1; break;
		case OPT_SPLIT: {
			int s = l2_split_parse(optarg);
			if (s < 0) l2_usage_error(usage, "invalid value for --split: '%s' (expected train, test or all)", optarg);
			o->split = (L2Split)s;
			o->split_s = optarg;
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
		case OPT_CHECKPOINT: o->checkpoint = l2_parse_long(optarg, "--checkpoint", 1, 1L << 30); break;
		case OPT_MAX: o->max_lines = l2_parse_long(optarg, "--max", 0, 1L << 40); break;
		default: l2_usage_error(usage, "unknown option");
		}
	}
	if (!o->cmd) l2_usage_error(usage, "missing command (build, emoji, list, captions, stats, ...)");
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
	else if (is(o, "glosses")) want_min = 0;
	if (npos < want_min) l2_usage_error(usage, "%s: missing arguments", o->cmd);
	if (npos > want_max) l2_usage_error(usage, "%s: too many arguments", o->cmd);
	if ((is(o, "import-features") || is(o, "export-features")) && !o->name)
		l2_usage_error(usage, "%s needs -n NAME", o->cmd);
	if (is(o, "export-images") && !o->out) l2_usage_error(usage, "export-images needs -o DIR");
	if (o->captions && !is(o, "build")) l2_usage_error(usage, "--captions goes with build");
	if (o->incomplete && !is(o, "export-features")) l2_usage_error(usage, "--incomplete goes with export-features");
	if (o->unique && o->primary) l2_usage_error(usage, "--unique and --primary exclude each other");
	if ((o->unique && o->with_keys)) l2_usage_error(usage, "--unique and --keys exclude each other");
}

/* ---- helpers ------------------------------------------------------------------ */

/* Lines of a text file ("-" = stdin), LF or CRLF, as malloc'd strings. */
static size_t read_lines(const char *path, char ***out)
{
	FILE *f = l2_fopen_read(path);
	char **v = NULL;
	size_t n = 0, cap = 0;
	char *line = NULL;
	size_t lcap = 0;
	ssize_t len;
	while ((len = getline(&line, &lcap, f)) >= 0) {
		if ((size_t)len != strlen(line)) l2_die("%s: line %zu contains a NUL byte", path, n + 1);
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			v = l2_realloc(v, cap * sizeof *v);
		}
		v[n++] = l2_strdup(line);
	}
	if (ferror(f)) l2_die_errno("%s", path);
	free(line);
	if (f != stdin) fclose(f);
	*out = v;
	return n;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

static void rm_rf(const char *path)
{
	if (nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS) && errno != ENOENT) l2_die_errno("%s: cannot remove", path);
}

/* The building dataset lives at OUT.partial until it is complete, so that
 * OUT never holds half a dataset; --resume reopens OUT.partial. */
typedef struct {
	char *final, *partial;
	L2Dataset *ds;
	uint64_t added, kept, bad, captions_added, uncaptioned, corpus_added, corpus_long;
	long since_commit;
} Build;

/* After an image and its captions: a durable point every --checkpoint images. */
static void build_tick(Build *b, const Options *o)
{
	if (++b->since_commit >= o->checkpoint) {
		l2_store_commit(l2_dataset_store(b->ds));
		b->since_commit = 0;
	}
}

static void build_open(Build *b, const Options *o, const char *out, const char *source, const char *root)
{
	memset(b, 0, sizeof *b);
	b->final = l2_strdup(out);
	size_t n = strlen(out);
	while (n > 1 && b->final[n - 1] == '/') b->final[--n] = 0;
	b->partial = l2_malloc(n + 16);
	snprintf(b->partial, n + 16, "%s.partial", b->final);
	if (l2_file_exists(b->final) && !o->force)
		l2_die("%s: exists (use --force to replace it)", b->final);
	if (l2_file_exists(b->partial)) {
		if (!o->resume)
			l2_die("%s: an interrupted build is there (continue it with --resume, or remove it)", b->partial);
	} else if (o->resume) {
		l2_info("%s: nothing to resume; building from the start", b->partial);
	}
	b->ds = l2_dataset_open(b->partial, L2_STORE_CREATE);
	L2Store *st = l2_dataset_store(b->ds);
	char v[64];
	char *prev = l2_store_get_meta(st, "seed");
	snprintf(v, sizeof v, "%llu", (unsigned long long)o->seed);
	if (prev && strcmp(prev, v)) l2_die("%s: was started with --seed %s, not %s", b->partial, prev, v);
	free(prev);
	l2_store_set_meta(st, "seed", v);
	prev = l2_store_get_meta(st, "test_fraction");
	snprintf(v, sizeof v, "%.17g", o->test_fraction);
	if (prev && strcmp(prev, v)) l2_die("%s: was started with --test-fraction %s, not %s", b->partial, prev, v);
	free(prev);
	l2_store_set_meta(st, "test_fraction", v);
	l2_store_set_meta(st, "source", source);
	l2_store_set_meta(st, "root", root);
	l2_store_set_meta(st, "state", "building");
	l2_store_commit(st);
}

/* Read, check and add one image file.  Returns 1 added, 0 already there,
 * -1 bad (skipped with --skip-bad). */
static int build_image(Build *b, const Options *o, const char *root, const char *rel, const char *group)
{
	if (o->resume && l2_dataset_has_image(b->ds, rel)) {
		b->kept++;
		return 0;
	}
	size_t pl = strlen(root) + strlen(rel) + 2;
	char *path = l2_malloc(pl);
	snprintf(path, pl, "%s/%s", root, rel);
	char err[300];
	int ok = 0;
	size_t len = 0;
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	if (!f) snprintf(err, sizeof err, "%s", strerror(errno));
	else {
		fseek(f, 0, SEEK_END);
		long sz = ftell(f);
		rewind(f);
		if (sz < 0) snprintf(err, sizeof err, "cannot read");
		else {
			len = (size_t)sz;
			buf = l2_malloc(len ? len : 1);
			if (fread(buf, 1, len, f) != len) snprintf(err, sizeof err, "read error");
			else {
				L2Image img;
				if (l2_image_load_mem(buf, len, &img, err, sizeof err) == 0) {
					l2_image_free(&img);
					ok = 1;
				}
			}
		}
		fclose(f);
	}
	if (!ok) {
		free(buf);
		if (!o->skip_bad) l2_die("%s: %s", path, err);
		l2_warn("%s: %s (skipped)", path, err);
		free(path);
		b->bad++;
		return -1;
	}
	L2Split s = l2_split_for(group ? group : rel, o->test_fraction, o->seed);
	int r = l2_dataset_put_image(b->ds, rel, buf, len, s, group);
	free(buf);
	free(path);
	if (r) b->added++;
	else b->kept++;
	return r;
}

static void build_caption(Build *b, const char *key, const char *cap)
{
	if (l2_dataset_add_caption(b->ds, key, cap)) b->captions_added++;
	char *c = l2_strdup(cap);
	l2_caption_clean(c);
	int r = l2_dataset_add_corpus(b->ds, c, "caption");
	if (r > 0) b->corpus_added++;
	else if (r < 0 && *c) b->corpus_long++;
	free(c);
}

static void build_corpus_files(Build *b, const Options *o)
{
	for (int i = 0; i < o->ncorpus; i++) {
		char **lines;
		size_t n = read_lines(o->corpus[i], &lines);
		L2Progress p;
		l2_progress_start(&p, "corpus", "lines", n);
		for (size_t j = 0; j < n; j++) {
			int r = l2_dataset_add_corpus(b->ds, lines[j], o->source);
			if (r > 0) b->corpus_added++;
			else if (r < 0 && l2_caption_clean(lines[j])) b->corpus_long++;
			l2_progress_add(&p, 1);
		}
		l2_progress_end(&p);
		l2_dataset_free_strings(lines, n);
	}
}

static void build_finish(Build *b, const Options *o)
{
	l2_dataset_finish(b->ds);
	uint64_t n = l2_dataset_count(b->ds, L2_SPLIT_ALL), te = l2_dataset_count(b->ds, L2_SPLIT_TEST);
	uint64_t nc = l2_store_count(l2_dataset_store(b->ds), "corpus");
	l2_dataset_close(b->ds);
	if (n == 0) {
		rm_rf(b->partial);
		l2_die("%s: no images to build a dataset from", b->final);
	}
	if (l2_file_exists(b->final)) { /* --force */
		size_t l = strlen(b->final) + 16;
		char *old = l2_malloc(l);
		snprintf(old, l, "%s.old", b->final);
		rm_rf(old);
		if (rename(b->final, old)) l2_die_errno("%s: cannot move aside", b->final);
		if (rename(b->partial, b->final)) l2_die_errno("%s: cannot rename to %s", b->partial, b->final);
		rm_rf(old);
		free(old);
	} else if (rename(b->partial, b->final)) {
		l2_die_errno("%s: cannot rename to %s", b->partial, b->final);
	}
	l2_info("%s: %llu images (%llu train, %llu test; %llu added now%s), %llu uncaptioned, corpus %llu lines%s",
		b->final, (unsigned long long)n, (unsigned long long)(n - te), (unsigned long long)te,
		(unsigned long long)b->added, o->resume ? ", rest resumed" : "", (unsigned long long)b->uncaptioned,
		(unsigned long long)nc, b->corpus_long ? " (some lines over 511 bytes left out)" : "");
	if (b->bad) l2_warn("%llu bad images skipped", (unsigned long long)b->bad);
	free(b->final);
	free(b->partial);
}

/* ---- build from a folder ------------------------------------------------------------ */

typedef struct {
	char *path, *caption;
	size_t line;
} CapLine;

static int cap_cmp(const void *a, const void *b)
{
	const CapLine *x = a, *y = b;
	int c = strcmp(x->path, y->path);
	return c ? c : (x->line > y->line) - (x->line < y->line);
}

static void cmd_build(const Options *o, const char *out, const char *dir)
{
	if (!l2_is_dir(dir)) l2_die("%s: not a directory", dir);
	/* static: still reachable (not "leaked") when a later error exits */
	static CapLine *caps;
	static char **lines;
	size_t ncap = 0;
	if (o->captions) {
		size_t n = read_lines(o->captions, &lines);
		for (size_t i = 0; i < n; i++) { /* check every line before using any */
			char *t = strchr(lines[i], '\t'), *p = lines[i];
			if (!t && l2_caption_clean(lines[i]))
				l2_die("%s: line %zu: expected 'relative/path<TAB>caption'", o->captions, i + 1);
			while (t && p[0] == '.' && p[1] == '/') p += 2;
			if (t && p == t) l2_die("%s: line %zu: empty path", o->captions, i + 1);
		}
		caps = l2_malloc((n ? n : 1) * sizeof *caps);
		for (size_t i = 0; i < n; i++) {
			char *t = strchr(lines[i], '\t');
			if (!t) { free(lines[i]); continue; }
			*t = 0;
			char *p = lines[i];
			while (p[0] == '.' && p[1] == '/') p += 2;
			caps[ncap].path = l2_strdup(p);
			caps[ncap].caption = l2_strdup(t + 1);
			caps[ncap].line = i + 1;
			ncap++;
			free(lines[i]);
		}
		free(lines);
		lines = NULL;
		qsort(caps, ncap, sizeof *caps, cap_cmp);
	}
	char **paths;
	size_t skipped = 0;
	size_t n = l2_image_list_dir(dir, &paths, &skipped);
	if (n == 0) l2_die("%s: no PNG or JPEG images in it", dir);
	Build b;
	build_open(&b, o, out, o->captions ? "tsv" : "folder", dir);
	L2Progress p;
	l2_progress_start(&p, "images", "img", n);
	size_t ci = 0, orphans = 0;
	const char *first_orphan = NULL;
	for (size_t i = 0; i < n; i++) {
		/* captions are sorted by path as the images are: merge */
		while (ci < ncap && strcmp(caps[ci].path, paths[i]) < 0) {
			if (!first_orphan) first_orphan = caps[ci].path;
			orphans++;
			ci++;
		}
		int r = build_image(&b, o, dir, paths[i], NULL);
		size_t c0 = ci;
		while (ci < ncap && !strcmp(caps[ci].path, paths[i])) {
			if (r >= 0) build_caption(&b, paths[i], caps[ci].caption);
			ci++;
		}
		if (r >= 0 && ci == c0) {
			char **cv;
			size_t nc = l2_dataset_captions(b.ds, paths[i], &cv);
			if (!nc) b.uncaptioned++;
			l2_dataset_free_strings(cv, nc);
		}
		if (r > 0) build_tick(&b, o);
		l2_progress_add(&p, 1);
	}
	l2_progress_end(&p);
	for (; ci < ncap; ci++, orphans++)
		if (!first_orphan) first_orphan = caps[ci].path;
	if (orphans)
		l2_warn("%s: %zu caption lines name images not in %s (first: %s)", o->captions, orphans, dir, first_orphan);
	if (skipped) l2_info("%s: %zu files that are not .png/.jpg/.jpeg ignored", dir, skipped);
	build_corpus_files(&b, o);
	build_finish(&b, o);
	for (size_t i = 0; i < ncap; i++) free(caps[i].path), free(caps[i].caption);
	free(caps);
	l2_dataset_free_strings(paths, n);
}

/* ---- build from emoji-datasource-google ---------------------------------------------- */

static const char *tone_name(const char *code)
{
	static const char *const codes[] = {"1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF"};
	static const char *const names[] = {"light skin tone", "medium-light skin tone", "medium skin tone",
					    "medium-dark skin tone", "dark skin tone"};
	for (int i = 0; i < 5; i++)
		if (!strcasecmp(code, codes[i])) return names[i];
	return NULL;
}

/* "1F3FB-1F3FF" -> ": light skin tone, dark skin tone"; NULL if unknown. */
static char *tone_suffix(const char *key)
{
	char buf[256] = ": ", part[16];
	const char *p = key;
	int first = 1;
	while (*p) {
		size_t l = strcspn(p, "-");
		if (l == 0 || l >= sizeof part) return NULL;
		memcpy(part, p, l);
		part[l] = 0;
		const char *t = tone_name(part);
		if (!t) return NULL;
		if (!first) strcat(buf, ", ");
		strcat(buf, t);
		first = 0;
		p += l;
		if (*p == '-') p++;
	}
	return l2_strdup(buf);
}

static char *lower_dup(const char *s)
{
	char *r = l2_strdup(s);
	for (char *p = r; *p; p++)
		if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
	return r;
}

static void emoji_captions(Build *b, const char *key, json_t *e, const char *suffix)
{
	json_t *name = json_object_get(e, "name");
	const char *nm = json_string_value(name);
	char *base[64];
	int nb = 0;
	if (nm && *nm) base[nb++] = lower_dup(nm);
	json_t *sn = json_object_get(e, "short_names");
	size_t i;
	json_t *v;
	json_array_foreach(sn, i, v) {
		const char *s = json_string_value(v);
		if (!s || !*s || nb == 64) continue;
		char *c = lower_dup(s);
		for (char *p = c; *p; p++)
			if (*p == '_') *p = ' ';
		base[nb++] = c;
	}
	for (int j = 0; j < nb; j++) {
		size_t l = strlen(base[j]) + (suffix ? strlen(suffix) : 0) + 1;
		char *c = l2_malloc(l);
		snprintf(c, l, "%s%s", base[j], suffix ? suffix : "");
		build_caption(b, key, c);
		free(c);
		free(base[j]);
	}
	if (!nb) b->uncaptioned++;
}

static void emoji_attrs(Build *b, const char *key, json_t *base, json_t *e)
{
	static const char *const fields[] = {"category", "subcategory"};
	for (int i = 0; i < 2; i++) {
		const char *s = json_string_value(json_object_get(base, fields[i]));
		if (s) l2_dataset_set_attr(b->ds, key, fields[i], s);
	}
	const char *u = json_string_value(json_object_get(e, "unified"));
	if (u) l2_dataset_set_attr(b->ds, key, "unified", u);
}

static void cmd_emoji(const Options *o, const char *out, const char *pkg)
{
	size_t l = strlen(pkg) + 64;
	char *jpath = l2_malloc(l), *ppath = l2_malloc(l), *imgdir = l2_malloc(l);
	snprintf(jpath, l, "%s/emoji.json", pkg);
	snprintf(ppath, l, "%s/package.json", pkg);
	snprintf(imgdir, l, "%s/img/google/64", pkg);
	if (!l2_file_exists(jpath)) l2_die("%s: no emoji.json (is this the emoji-datasource-google package?)", pkg);
	if (!l2_is_dir(imgdir)) l2_die("%s: missing (is this the emoji-datasource-google package?)", imgdir);
	json_error_t je;
	json_t *root = json_load_file(jpath, 0, &je);
	if (!root) l2_die("%s: line %d: %s", jpath, je.line, je.text);
	if (!json_is_array(root)) l2_die("%s: expected a JSON array of emoji", jpath);
	char source[128] = "emoji-datasource-google";
	json_t *pj = json_load_file(ppath, 0, &je);
	if (pj) {
		const char *ver = json_string_value(json_object_get(pj, "version"));
		if (ver) snprintf(source, sizeof source, "emoji-datasource-google %.64s", ver);
		json_decref(pj);
	}
	size_t total = 0, i;
	json_t *e;
	json_array_foreach(root, i, e) total += 1 + (o->no_skin_tones ? 0 : json_object_size(json_object_get(e, "skin_variations")));
	Build b;
	build_open(&b, o, out, source, imgdir);
	l2_store_set_meta(l2_dataset_store(b.ds), "background", "ffffff");
	L2Progress p;
	l2_progress_start(&p, "emoji", "img", total);
	size_t missing = 0;
	json_array_foreach(root, i, e) {
		if (!json_is_object(e)) l2_die("%s: entry %zu is not an object", jpath, i);
		const char *img = json_string_value(json_object_get(e, "image"));
		if (!img || !*img || strchr(img, '/')) l2_die("%s: entry %zu has no valid \"image\"", jpath, i);
		json_t *has = json_object_get(e, "has_img_google");
		size_t pl = strlen(imgdir) + strlen(img) + 2;
		char *path = l2_malloc(pl);
		snprintf(path, pl, "%s/%s", imgdir, img);
		int present = (!has || json_is_true(has)) && l2_file_exists(path);
		free(path);
		l2_progress_add(&p, 1);
		if (!present) {
			missing++;
		} else if (build_image(&b, o, imgdir, img, NULL) >= 0) {
			emoji_captions(&b, img, e, NULL);
			emoji_attrs(&b, img, e, e);
			build_tick(&b, o);
		}
		if (o->no_skin_tones) continue;
		const char *tk;
		json_t *var;
		json_object_foreach(json_object_get(e, "skin_variations"), tk, var) {
			l2_progress_add(&p, 1);
			const char *vimg = json_string_value(json_object_get(var, "image"));
			char *suffix = tone_suffix(tk);
			if (!vimg || !*vimg || strchr(vimg, '/') || !suffix) {
				free(suffix);
				missing++;
				continue;
			}
			json_t *vh = json_object_get(var, "has_img_google");
			pl = strlen(imgdir) + strlen(vimg) + 2;
			path = l2_malloc(pl);
			snprintf(path, pl, "%s/%s", imgdir, vimg);
			present = (!vh || json_is_true(vh)) && l2_file_exists(path);
			free(path);
			/* a variant falls on its base emoji's side of the split */
			if (!present) missing++;
			else if (build_image(&b, o, imgdir, vimg, img) >= 0) {
				emoji_captions(&b, vimg, e, suffix);
				emoji_attrs(&b, vimg, e, var);
				build_tick(&b, o);
			}
			free(suffix);
		}
	}
	l2_progress_end(&p);
	if (missing) l2_info("%s: %zu emoji without a Google 64x64 image left out", pkg, missing);
	build_corpus_files(&b, o);
	build_finish(&b, o);
	json_decref(root);
	free(jpath), free(ppath), free(imgdir);
}

/* ---- corpus ---------------------------------------------------------------------------------- */

static void cmd_add_corpus(const Options *o, const char *dspath, const char *file)
{
	L2Dataset *ds = l2_dataset_open(dspath, L2_STORE_WRITE);
	char **lines;
	size_t n = read_lines(file ? file : "-", &lines), added = 0, lng = 0;
	for (size_t i = 0; i < n; i++) {
		int r = l2_dataset_add_corpus(ds, lines[i], o->source);
		if (r > 0) added++;
		else if (r < 0 && l2_caption_clean(lines[i])) lng++;
	}
	char v[32];
	snprintf(v, sizeof v, "%llu", (unsigned long long)l2_store_count(l2_dataset_store(ds), "corpus"));
	l2_store_set_meta(l2_dataset_store(ds), "corpus", v);
	l2_dataset_close(ds);
	l2_info("%s: %zu corpus lines added (%zu already there%s)", dspath, added, n - added - lng,
		lng ? ", some over 511 bytes left out" : "");
	l2_dataset_free_strings(lines, n);
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
	for (size_t i = 0; i < n; i++) {
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

static int str_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Distinct captions of the images of a split, sorted; returns the count. */
static size_t unique_captions(L2Dataset *ds, L2Split split, char ***out)
{
	char **keys;
	size_t n = l2_dataset_keys(ds, split, &keys), m = 0, cap = 0;
	char **v = NULL;
	for (size_t i = 0; i < n; i++) {
		char **caps;
		size_t nc = l2_dataset_captions(ds, keys[i], &caps);
		for (size_t j = 0; j < nc; j++) {
			if (m == cap) {
				cap = cap ? cap * 2 : 1024;
				v = l2_realloc(v, cap * sizeof *v);
			}
			v[m++] = caps[j];
		}
		free(caps);
	}
	l2_dataset_free_strings(keys, n);
	if (m) qsort(v, m, sizeof *v, str_cmp);
	size_t u = 0;
	for (size_t i = 0; i < m; i++) {
		if (u && !strcmp(v[u - 1], v[i])) free(v[i]);
		else v[u++] = v[i];
	}
	*out = v;
	return u;
}

static void cmd_captions(const Options *o, const char *dspath)
{
	L2Dataset *ds = l2_dataset_open(dspath, L2_STORE_RDONLY);
	L2OFile *out = l2_ofile_open("-", 0);
	FILE *f = l2_ofile_fp(out);
	if (o->unique) {
		char **v;
		size_t u = unique_captions(ds, o->split, &v);
		for (size_t i = 0; i < u; i++) fprintf(f, "%s\n", v[i]);
		l2_dataset_free_strings(v, u);
	} else {
		char **keys;
		size_t n = l2_dataset_keys(ds, o->split, &keys);
		for (size_t i = 0; i < n; i++) {
			char **caps;
			size_t nc = l2_dataset_captions(ds, keys[i], &caps);
			for (size_t j = 0; j < nc && (!o->primary || j == 0); j++) {
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

static void cmd_export_images(const Options *o, const char *dspath)
{
	L2Dataset *ds = l2_dataset_open(dspath, L2_STORE_RDONLY);
	l2_mkdir_p(o->out);
	char **keys;
	size_t n = l2_dataset_keys(ds, o->split, &keys);
	L2Progress p;
	l2_progress_start(&p, "export", "img", n);
	for (size_t i = 0; i < n; i++) {
		if (!key_safe(keys[i])) l2_die("%s: unsafe image path '%s'", dspath, keys[i]);
		size_t pl = strlen(o->out) + strlen(keys[i]) + 2;
		char *path = l2_malloc(pl);
		snprintf(path, pl, "%s/%s", o->out, keys[i]);
		char *slash = strrchr(path, '/');
		*slash = 0;
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
	l2_info("%s: %zu images written", o->out, n);
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
	if (o->model) {
		char k[80];
		snprintf(k, sizeof k, "feat.%s.model", o->name);
		l2_store_set_meta(l2_dataset_store(ds), k, o->model);
	}
	l2_dataset_feature_end(ds, o->name, l2_stream_normalized(r));
	l2_dataset_close(ds);
	l2_info("%s: %llu %s vectors stored as '%s'", dspath, (unsigned long long)n, h->kind, o->name);
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

/* P(at least one of c true items among the top m of N candidates drawn at
 * random) = 1 - C(N-c, m) / C(N, m). */
static double chance_topm(double N, double c, int m)
{
	if (c <= 0) return 0;
	double p = 1;
	for (int i = 0; i < m; i++) {
		if (N - i <= 0) return 1;
		p *= (N - c - i) / (N - i);
		if (p <= 0) return 1;
	}
	return 1 - p;
}

static void cmd_eval_retrieval(const Options *o, const char *dspath, const char *in)
{
	L2Dataset *ds = l2_dataset_open(dspath, L2_STORE_RDONLY);
	char **uniq;
	size_t N = o->candidates ? (size_t)o->candidates : unique_captions(ds, o->split, &uniq);
	if (!o->candidates) l2_dataset_free_strings(uniq, N);
	L2StreamReader *r = l2_stream_open(in ? in : "-");
	l2_stream_expect(r, L2_KIND_NEIGHBORS, 0);
	uint32_t k = l2_stream_header(r)->k;
	const int ms[3] = {1, 5, 10};
	uint64_t q = 0, hit[3] = {0, 0, 0}, skipped = 0;
	double chance[3] = {0, 0, 0}, mrr = 0;
	L2Record rec;
	while (l2_stream_next(r, &rec)) {
		int s = l2_dataset_split_of(ds, rec.key);
		if (s < 0) l2_die("%s: query '%s' is not an image of %s", l2_stream_name(r), rec.key, dspath);
		if (o->split != L2_SPLIT_ALL && s != (int)o->split) continue;
		char **caps;
		size_t nc = l2_dataset_captions(ds, rec.key, &caps);
		if (!nc) {
			skipped++;
			l2_dataset_free_strings(caps, nc);
			continue;
		}
		uint32_t rank = 0;
		for (uint32_t j = 0; j < rec.k && !rank; j++)
			for (size_t t = 0; t < nc; t++)
				if (!strcmp(rec.nkey[j], caps[t])) {
					rank = j + 1;
					break;
				}
		for (int m = 0; m < 3; m++) {
			if (rank && (int)rank <= ms[m]) hit[m]++;
			chance[m] += chance_topm((double)N, (double)(nc < N ? nc : N), ms[m]);
		}
		if (rank) mrr += 1.0 / rank;
		q++;
		l2_dataset_free_strings(caps, nc);
	}
	l2_stream_close(r);
	l2_dataset_close(ds);
	if (!q) l2_die("%s: no queries with captions in split %s", in ? in : "stdin", l2_split_name(o->split));
	L2OFile *out = l2_ofile_open("-", 0);
	FILE *f = l2_ofile_fp(out);
	fprintf(f, "queries\t%llu\ncandidates\t%zu\nk\t%u\n", (unsigned long long)q, N, k);
	for (int m = 0; m < 3; m++) {
		if ((uint32_t)ms[m] > k) continue;
		fprintf(f, "top%d\t%.4f\nchance_top%d\t%.4f\n", ms[m], (double)hit[m] / (double)q, ms[m], chance[m] / (double)q);
	}
	fprintf(f, "mrr_at_k\t%.4f\n", mrr / (double)q);
	if (skipped) fprintf(f, "uncaptioned_queries\t%llu\n", (unsigned long long)skipped);
	l2_ofile_commit(out);
}

/* ---- WordNet glosses ----------------------------------------------------------------------------- */

typedef struct {
	uint64_t h;
	size_t i;
} Ranked;

static int ranked_cmp(const void *a, const void *b)
{
	const Ranked *x = a, *y = b;
	if (x->h != y->h) return x->h < y->h ? -1 : 1;
	return (x->i > y->i) - (x->i < y->i);
}

static void cmd_glosses(const Options *o, const char *dir)
{
	static const char *const parts[] = {"noun", "verb", "adj", "adv"};
	char **g = NULL;
	size_t n = 0, cap = 0;
	for (int pi = 0; pi < 4; pi++) {
		size_t l = strlen(dir) + 32;
		char *path = l2_malloc(l);
		snprintf(path, l, "%s/data.%s", dir, parts[pi]);
		char **lines;
		size_t nl = read_lines(path, &lines);
		for (size_t i = 0; i < nl; i++) {
			char *s = lines[i];
			if (s[0] == ' ' || !*s) continue; /* the licence header lines start with spaces */
			char *bar = strstr(s, " | ");
			if (!bar) l2_die("%s: line %zu: no gloss (' | ') field", path, i + 1);
			char *gl = bar + 3, *ex = strstr(gl, "; \"");
			if (ex) *ex = 0;
			if (!l2_caption_clean(gl)) continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 65536;
				g = l2_realloc(g, cap * sizeof *g);
			}
			g[n++] = l2_strdup(gl);
		}
		l2_dataset_free_strings(lines, nl);
		free(path);
	}
	if (n == 0) l2_die("%s: no glosses found", dir);
	char *keep = l2_calloc(n, 1);
	if (o->max_lines && (size_t)o->max_lines < n) {
		Ranked *rk = l2_malloc(n * sizeof *rk);
		for (size_t i = 0; i < n; i++) {
			rk[i].h = l2_fnv1a64_str(L2_FNV_INIT ^ o->seed, g[i]);
			rk[i].i = i;
		}
		qsort(rk, n, sizeof *rk, ranked_cmp);
		for (size_t i = 0; i < (size_t)o->max_lines; i++) keep[rk[i].i] = 1;
		free(rk);
	} else {
		memset(keep, 1, n);
	}
	L2OFile *out = l2_ofile_open("-", 0);
	for (size_t i = 0; i < n; i++)
		if (keep[i]) fprintf(l2_ofile_fp(out), "%s\n", g[i]);
	l2_ofile_commit(out);
	free(keep);
	l2_dataset_free_strings(g, n);
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
	else if (is(&o, "glosses")) cmd_glosses(&o, na ? a[0] : "/usr/share/wordnet");
	free(o.corpus);
	return 0;
}
