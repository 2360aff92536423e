/* l2-retrieve — for every query feature, its k nearest rows of an index.
 *
 *   l2-encode-images -m clip.safetensors photos/ | l2-retrieve -i captions.idx -k 5 > nn.l2f
 *   l2-retrieve -i captions.idx -k 3 -f tsv queries.l2f     query<TAB>rank<TAB>key<TAB>score
 *
 * Queries are read and searched in batches, so any number of them runs in
 * constant memory.  Index layout: schemas/index.md; output: schemas/l2fs.md. */
#include "method/index.h"
#include "io/stream.h"
#include "core/util.h"
#include "core/vec.h"

#include <malloc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: l2-retrieve -i INDEX [-k K] [options] [STREAM]\n"
		"       l2-retrieve -i INDEX --info\n"
		"Search INDEX for the k best matches (largest inner product; cosine on unit vectors) of\n"
		"every vector of a feature stream (FILE or standard input) and write a neighbors stream:\n"
		"per query its key and feature, then k × (key, score, feature).\n\n"
		"  -i, --index INDEX   the index (made by l2-build-index; required)\n"
		"  -k, --k K           neighbours per query (default 5)\n"
		"  -o, --output FILE   write here instead of standard output (atomically)\n"
		"  -f, --format FMT    l2f (default) or tsv: query<TAB>rank<TAB>key<TAB>score lines\n"
		"      --nprobe P      approximate: scan the P nearest IVF lists (index built with --ivf);\n"
		"                      default: exact search over every row\n"
		"      --recall        with --nprobe: also search exactly and report recall@k on stderr\n"
		"      --normalize     scale queries to unit norm first (needed for an unflagged stream\n"
		"                      against a cosine index)\n"
		"      --batch N       queries searched together (default 4096)\n"
		"      --info          print the index's metadata (name<TAB>value) and exit\n"
		"      --stats         report search time and queries/s on stderr\n"
		"      --threads N     search threads (default: all cores)\n"
		"      --progress      progress on stderr even when it is not a terminal\n"
		"      --quiet         no recall line\n"
		"  -h, --help          this help\n"
		"      --version       print the version\n"
		"Formats: schemas/index.md, schemas/l2fs.md; see l2-retrieve(1).\n");
}

enum { OPT_NPROBE = L2_OPT_COMMON_END, OPT_RECALL, OPT_NORMALIZE, OPT_BATCH, OPT_INFO, OPT_STATS };

typedef struct {
	L2Index *ix;
	uint32_t k, nprobe, dim;
	int tsv, recall;
	L2StreamWriter *w;
	L2OFile *txt;
	/* the batch */
	size_t n, cap;
	float *q;      /* (cap, dim) */
	char **keys;   /* (cap) */
	uint64_t *ids; /* (cap, k) */
	float *scores; /* (cap, k) */
	uint64_t *eids;
	float *escores, *nvec;
	const char **nkeys;
	uint64_t hits, total, queries;
	double search_s, search_cpu;
} Ctx;

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void flush_batch(Ctx *c)
{
	if (!c->n) return;
	uint32_t k = c->k;
	double t0 = l2_now(), c0 = cpu_now();
	l2_index_search(c->ix, c->q, c->n, k, c->nprobe, c->ids, c->scores);
	c->search_s += l2_now() - t0;
	c->search_cpu += cpu_now() - c0;
	c->queries += c->n;
	if (c->recall) {
		l2_index_search(c->ix, c->q, c->n, k, 0, c->eids, c->escores);
		for (size_t i = 0; i < c->n; i++)
			for (uint32_t a = 0; a < k; a++)
				for (uint32_t b = 0; b < k; b++)
					if (c->ids[i * k + a] == c->eids[i * k + b]) { c->hits++; break; }
		c->total += (uint64_t)c->n * k;
	}
	for (size_t i = 0; i < c->n; i++) {
		if (c->tsv) {
			FILE *f = l2_ofile_fp(c->txt);
			for (uint32_t j = 0; j < k; j++) {
				l2_put_tsv_field(f, c->keys[i], strlen(c->keys[i]));
				fprintf(f, "\t%u\t", j + 1);
				const char *nk = l2_index_key(c->ix, c->ids[i * k + j], NULL);
				l2_put_tsv_field(f, nk, strlen(nk));
				fprintf(f, "\t%.9g\n", c->scores[i * k + j]);
			}
		} else {
			for (uint32_t j = 0; j < k; j++) {
				c->nkeys[j] = l2_index_key(c->ix, c->ids[i * k + j], NULL);
				l2_index_vector(c->ix, c->ids[i * k + j], c->nvec + (size_t)j * c->dim);
			}
			l2_stream_write_neighbors(c->w, c->keys[i], c->q + i * c->dim, k, c->nkeys, c->scores + i * k, c->nvec);
		}
		free(c->keys[i]);
	}
	c->n = 0;
}

static void print_meta(void *ctx, const char *name, const char *value)
{
	(void)ctx;
	printf("%s\t%s\n", name, value);
}

typedef struct {
	const char *index, *out, *in;
	uint32_t k, nprobe;
	int tsv, recall, normalize, info, stats;
	size_t batch;
} Options;

static void parse_options(int argc, char **argv, Options *o)
{
	static const struct option longopts[] = {
		L2_COMMON_LONGOPTS,
		{"index", required_argument, 0, 'i'},
		{"k", required_argument, 0, 'k'},
		{"output", required_argument, 0, 'o'},
		{"format", required_argument, 0, 'f'},
		{"nprobe", required_argument, 0, OPT_NPROBE},
		{"recall", no_argument, 0, OPT_RECALL},
		{"normalize", no_argument, 0, OPT_NORMALIZE},
		{"batch", required_argument, 0, OPT_BATCH},
		{"info", no_argument, 0, OPT_INFO},
		{"stats", no_argument, 0, OPT_STATS},
		{0, 0, 0, 0}};
	memset(o, 0, sizeof *o);
	o->out = "-";
	o->k = 5;
	o->batch = 4096;
	int c;
	while ((c = getopt_long(argc, argv, "hi:k:o:f:", longopts, NULL)) != -1) {
		if (l2_common_option(c, optarg, usage)) continue;
		switch (c) {
		case 'i': o->index = optarg; break;
		case 'k': o->k = (uint32_t)l2_parse_long(optarg, "-k", 1, L2FS_MAX_K); break;
		case 'o': o->out = optarg; break;
		case 'f':
			if (!strcmp(optarg, "l2f")) o->tsv = 0;
			else if (!strcmp(optarg, "tsv")) o->tsv = 1;
			else l2_usage_error(usage, "unknown format '%s' (expected l2f or tsv)", optarg);
			break;
		case OPT_NPROBE: o->nprobe = (uint32_t)l2_parse_long(optarg, "--nprobe", 1, 1 << 24); break;
		case OPT_RECALL: o->recall = 1; break;
		case OPT_NORMALIZE: o->normalize = 1; break;
		case OPT_BATCH: o->batch = (size_t)l2_parse_long(optarg, "--batch", 1, 1 << 20); break;
		case OPT_INFO: o->info = 1; break;
		case OPT_STATS: o->stats = 1; break;
		default: l2_usage_error(usage, "unknown option");
		}
	}
	if (!o->index) l2_usage_error(usage, "-i INDEX is required");
	if (o->recall && !o->nprobe) l2_usage_error(usage, "--recall goes with --nprobe");
	if (argc - optind > 1) l2_usage_error(usage, "one query stream at most (concatenate with cat or l2-cat)");
	o->in = optind < argc ? argv[optind] : "-";
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	/* batch after batch allocates the same sizes: keep freed memory mapped
	 * rather than fault it in again each time */
	mallopt(M_MMAP_THRESHOLD, 256 << 20);
	mallopt(M_TRIM_THRESHOLD, 512 << 20);
	double t_start = l2_now();
	Options o;
	parse_options(argc, argv, &o);
	const char *index = o.index, *out = o.out, *in = o.in;
	size_t batch = o.batch;
	Ctx c = {.k = o.k, .nprobe = o.nprobe, .tsv = o.tsv, .recall = o.recall};

	c.ix = l2_index_open(index);
	if (o.info) {
		l2_index_each_meta(c.ix, print_meta, NULL);
		l2_index_close(c.ix);
		return 0;
	}
	uint64_t count = l2_index_count(c.ix);
	if (c.k > count)
		l2_die("%s: -k %u, but the index holds only %llu rows", index, c.k, (unsigned long long)count);
	if (c.nprobe && !l2_index_nlist(c.ix))
		l2_die("%s: --nprobe needs an IVF index (build it with l2-build-index --ivf NLIST)", index);
	if (c.nprobe > l2_index_nlist(c.ix)) c.nprobe = l2_index_nlist(c.ix);
	c.dim = l2_index_dim(c.ix);

	L2StreamReader *r = l2_stream_open(in);
	const L2StreamHeader *h = l2_stream_header(r);
	if (strcmp(h->kind, L2_KIND_IMAGE) && strcmp(h->kind, L2_KIND_TEXT) && strcmp(h->kind, L2_KIND_PSEUDO))
		l2_die("%s: cannot search with a %s stream (expected image-feature, text-feature or pseudo-text-feature)",
		       l2_stream_name(r), h->kind);
	if (h->dim != c.dim)
		l2_die("%s: the queries have dimension %u, the index %s has %u", l2_stream_name(r), h->dim, index, c.dim);
	L2Metric metric = l2_index_metric(c.ix);
	if (metric == L2_METRIC_COS && !(h->flags & L2FS_NORMALIZED) && !o.normalize)
		l2_die("%s: the queries are not flagged unit-norm and %s is a cosine index: use --normalize", l2_stream_name(r),
		       index);

	if (c.tsv) c.txt = l2_ofile_open(out, 0);
	else
		c.w = l2_stream_create(out, L2_KIND_NEIGHBORS, c.dim, metric == L2_METRIC_COS ? L2FS_NORMALIZED : 0, c.k,
				       L2FS_UNTIL_END);
	c.cap = batch;
	c.q = l2_malloc(l2_mul_size(l2_mul_size(batch, c.dim), sizeof(float)));
	c.keys = l2_malloc(l2_mul_size(batch, sizeof(char *)));
	c.ids = l2_malloc(l2_mul_size(l2_mul_size(batch, c.k), sizeof(uint64_t)));
	c.scores = l2_malloc(l2_mul_size(l2_mul_size(batch, c.k), sizeof(float)));
	if (c.recall) {
		c.eids = l2_malloc(l2_mul_size(l2_mul_size(batch, c.k), sizeof(uint64_t)));
		c.escores = l2_malloc(l2_mul_size(l2_mul_size(batch, c.k), sizeof(float)));
	}
	c.nvec = l2_malloc(l2_mul_size(l2_mul_size(c.k, c.dim), sizeof(float)));
	c.nkeys = l2_malloc(c.k * sizeof(char *));

	L2Progress prog;
	l2_progress_start(&prog, "queries", "q", 0);
	L2Record rec;
	while (l2_stream_next(r, &rec)) {
		float *q = c.q + c.n * c.dim;
		memcpy(q, rec.vec, c.dim * sizeof(float));
		/* NaN and infinity, and flagged-normalized vectors that are not,
		 * are refused by the stream reader */
		if (o.normalize) {
			uint32_t z = 0;
			while (z < c.dim && q[z] == 0) z++;
			if (z == c.dim)
				l2_die("%s: the vector of \"%.60s\" is a zero vector: --normalize cannot give it a direction",
				       l2_stream_name(r), rec.key);
			l2_normalize_rows(q, 1, c.dim);
		}
		c.keys[c.n++] = l2_strdup(rec.key);
		if (c.n == c.cap) flush_batch(&c);
		l2_progress_add(&prog, 1);
	}
	flush_batch(&c);
	l2_progress_end(&prog);
	l2_stream_close(r);
	if (c.tsv) l2_ofile_commit(c.txt);
	else l2_stream_writer_close(c.w);
	if (c.recall && c.total)
		l2_info("recall@%u of --nprobe %u against exact search: %.4f (%llu queries)", c.k, c.nprobe,
			(double)c.hits / (double)c.total, (unsigned long long)(c.total / c.k));
	if (o.stats)
		fprintf(stderr, "%s: %llu queries, search %.3f s (%.1f queries/s), cpu %.3f s, total %.3f s\n",
			l2_progname(), (unsigned long long)c.queries, c.search_s,
			c.search_s > 0 ? (double)c.queries / c.search_s : 0.0, c.search_cpu, l2_now() - t_start);
	l2_index_close(c.ix);
	free(c.q);
	free(c.keys);
	free(c.ids);
	free(c.scores);
	free(c.eids);
	free(c.escores);
	free(c.nvec);
	free(c.nkeys);
	return 0;
}
