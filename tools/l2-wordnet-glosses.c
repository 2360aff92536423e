/* l2-wordnet-glosses — WordNet's definitions as caption-corpus lines (distractors for
 * retrieval); a converter beside l2-dataset, which stores them.
 *
 *   l2-wordnet-glosses > glosses.txt                       every gloss of /usr/share/wordnet
 *   l2-wordnet-glosses --max 20000 --seed 0 > g.txt        a deterministic subset
 *   l2-dataset emoji --corpus g.txt --source wordnet ds.lmdb PACKAGE_DIR
 *
 * Reads data.noun, data.verb, data.adj and data.adv of a WordNet 3 database (Debian's
 * wordnet-base); writes the definition part of each synset's gloss field, one per line, in
 * file and line order. */
#include "method/dataset.h" /* l2_caption_clean: the corpus's own clean-up */
#include "core/hash.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
	const char *dir;
	long max;
	uint64_t seed;
} Options;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: l2-wordnet-glosses [--max N] [--seed S] [WORDNET_DIR]\n"
		"Print the definitions of WordNet's synsets (the gloss field of data.noun, data.verb,\n"
		"data.adj and data.adv before the first quoted example), one per line, cleaned as\n"
		"caption-corpus lines: distractors for l2-dataset --corpus.  WORDNET_DIR defaults\n"
		"to /usr/share/wordnet (Debian's wordnet-base).\n\n"
		"      --max N         at most N glosses: the N whose seeded hash is lowest, in their\n"
		"                      original order (default: all)\n"
		"      --seed S        seed of that subset (default 0)\n"
		"  -h, --help          this help\n"
		"      --version       print the version\n"
		"See l2-wordnet-glosses(1).\n");
}

enum { OPT_MAX = L2_OPT_COMMON_END, OPT_SEED };

static void parse_options(int argc, char **argv, Options *o)
{
	static const struct option longopts[] = {
		L2_COMMON_LONGOPTS,
		{"max", required_argument, 0, OPT_MAX},
		{"seed", required_argument, 0, OPT_SEED},
		{0, 0, 0, 0}};
	memset(o, 0, sizeof *o);
	o->dir = "/usr/share/wordnet";
	int c;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (l2_common_option(c, optarg, usage)) continue;
		switch (c) {
		case OPT_MAX: o->max = l2_parse_long(optarg, "--max", 0, 1L << 40); break;
		case OPT_SEED: o->seed = l2_parse_u64(optarg, "--seed"); break;
		default: l2_usage_error(usage, "unknown option");
		}
	}
	if (argc - optind > 1) l2_usage_error(usage, "too many arguments");
	if (optind < argc) o->dir = argv[optind];
}

/* The glosses of DIR's four data files, in order (malloc'd strings); returns the count. */
static size_t read_glosses(const char *dir, char ***out)
{
	static const char *const parts[] = {"noun", "verb", "adj", "adv"};
	char **g = NULL;
	size_t n = 0, cap = 0;
	for (int pi = 0; pi < 4; pi++) {
		size_t l = strlen(dir) + 32;
		char *path = l2_malloc(l);
		snprintf(path, l, "%s/data.%s", dir, parts[pi]);
		char **lines;
		size_t nl = l2_read_lines(path, &lines);
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
		l2_free_lines(lines, nl);
		free(path);
	}
	*out = g;
	return n;
}

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

/* keep[i] = 1 for the max glosses of lowest FNV-1a (seeded) hash, ties by position. */
static void choose_subset(char **g, size_t n, size_t max, uint64_t seed, char *keep)
{
	Ranked *rk = l2_malloc(n * sizeof *rk);
	for (size_t i = 0; i < n; i++) {
		rk[i].h = l2_fnv1a64_str(L2_FNV_INIT ^ seed, g[i]);
		rk[i].i = i;
	}
	qsort(rk, n, sizeof *rk, ranked_cmp);
	for (size_t i = 0; i < max; i++) keep[rk[i].i] = 1;
	free(rk);
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	Options o;
	parse_options(argc, argv, &o);
	char **g;
	size_t n = read_glosses(o.dir, &g);
	if (n == 0) l2_die("%s: no glosses found", o.dir);
	char *keep = l2_calloc(n, 1);
	if (o.max && (size_t)o.max < n) choose_subset(g, n, (size_t)o.max, o.seed, keep);
	else memset(keep, 1, n);
	L2OFile *out = l2_ofile_open("-", 0);
	for (size_t i = 0; i < n; i++)
		if (keep[i]) fprintf(l2_ofile_fp(out), "%s\n", g[i]);
	l2_ofile_commit(out);
	free(keep);
	l2_free_lines(g, n);
	return 0;
}
