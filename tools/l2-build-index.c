/* l2-build-index — build or extend a nearest-neighbour index of caption
 * features.
 *
 *   l2-encode-text captions.txt | l2-build-index -o captions.idx
 *   l2-build-index -o captions.idx --ivf 1024 more.l2f     append, (re)train IVF
 *
 * Index layout: schemas/index.md; search: l2-retrieve(1). */
#include "method/index.h"
#include "io/stream.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: l2-build-index -o INDEX [options] [STREAM...]\n"
		"Add the keys and vectors of feature streams (FILE, or standard input) to INDEX: a new\n"
		"index is created (atomically), an existing one is extended in one transaction.\n"
		"Keys already in the index are reported and skipped.\n\n"
		"  -o, --output INDEX    the index directory (required)\n"
		"      --f16             store vectors as IEEE half floats (new index; half the size)\n"
		"      --normalize       scale every vector to unit norm first\n"
		"      --metric M        new index: cos (default; vectors must be unit norm, as flagged\n"
		"                        in the stream or made by --normalize) or ip (raw inner products)\n"
		"      --ivf NLIST       (re)train NLIST inverted lists by k-means, for l2-retrieve --nprobe;\n"
		"                        an index that already has NLIST lists just files the new rows\n"
		"      --ivf-iters N     k-means iterations (default 10)\n"
		"      --ivf-sample N    rows k-means trains on (default 256 per list)\n"
		"      --ivf-init I      kmeans++ (default) or random\n"
		"      --seed N          random seed for sampling and initialisation (default 1)\n"
		"      --threads N       threads for k-means (default: all cores)\n"
		"      --progress        progress on stderr even when it is not a terminal\n"
		"      --quiet           no summary line\n"
		"  -h, --help            this help\n"
		"      --version         print the version\n"
		"Index layout: schemas/index.md; see l2-build-index(1), l2-retrieve(1).\n");
}

enum { OPT_F16 = L2_OPT_COMMON_END, OPT_NORMALIZE, OPT_METRIC, OPT_IVF, OPT_IVF_ITERS, OPT_IVF_SAMPLE, OPT_IVF_INIT,
       OPT_SEED };

typedef struct {
	const char *out;       /* INDEX */
	L2IndexBuildOptions b;
	char **in;             /* streams ("-" when none were given) */
	int nin;
} Options;

static void parse_options(int argc, char **argv, Options *o)
{
	static const struct option longopts[] = {
		L2_COMMON_LONGOPTS,
		{"output", required_argument, 0, 'o'},
		{"f16", no_argument, 0, OPT_F16},
		{"normalize", no_argument, 0, OPT_NORMALIZE},
		{"metric", required_argument, 0, OPT_METRIC},
		{"ivf", required_argument, 0, OPT_IVF},
		{"ivf-iters", required_argument, 0, OPT_IVF_ITERS},
		{"ivf-sample", required_argument, 0, OPT_IVF_SAMPLE},
		{"ivf-init", required_argument, 0, OPT_IVF_INIT},
		{"seed", required_argument, 0, OPT_SEED},
		{0, 0, 0, 0}};
	static char *stdin_only[] = {"-"};
	memset(o, 0, sizeof *o);
	L2IndexBuildOptions *b = &o->b;
	l2_index_build_options_init(b);
	int c;
	while ((c = getopt_long(argc, argv, "ho:", longopts, NULL)) != -1) {
		if (l2_common_option(c, optarg, usage)) continue;
		switch (c) {
		case 'o': o->out = optarg; break;
		case OPT_F16: b->f16 = 1; break;
		case OPT_NORMALIZE: b->normalize = 1; break;
		case OPT_METRIC:
			if (!strcmp(optarg, "cos")) b->metric = L2_METRIC_COS;
			else if (!strcmp(optarg, "ip")) b->metric = L2_METRIC_IP;
			else l2_usage_error(usage, "unknown metric '%s' (expected cos or ip)", optarg);
			break;
		case OPT_IVF: b->ivf_nlist = (uint32_t)l2_parse_long(optarg, "--ivf", 1, 1 << 24); break;
		case OPT_IVF_ITERS: b->ivf_iters = (int)l2_parse_long(optarg, "--ivf-iters", 0, 1000); break;
		case OPT_IVF_SAMPLE: b->ivf_sample = l2_parse_u64(optarg, "--ivf-sample"); break;
		case OPT_IVF_INIT:
			if (!strcmp(optarg, "kmeans++")) b->ivf_init = L2_KMEANS_PLUSPLUS;
			else if (!strcmp(optarg, "random")) b->ivf_init = L2_KMEANS_RANDOM;
			else l2_usage_error(usage, "unknown --ivf-init '%s' (expected kmeans++ or random)", optarg);
			break;
		case OPT_SEED: b->seed = l2_parse_u64(optarg, "--seed"); break;
		default: l2_usage_error(usage, "unknown option");
		}
	}
	if (!o->out) l2_usage_error(usage, "-o INDEX is required");
	if ((b->ivf_iters != 10 || b->ivf_sample || b->ivf_init != L2_KMEANS_PLUSPLUS) && !b->ivf_nlist)
		l2_usage_error(usage, "--ivf-iters, --ivf-sample and --ivf-init go with --ivf");
	o->nin = argc - optind;
	o->in = o->nin ? argv + optind : stdin_only;
	if (!o->nin) o->nin = 1;
	b->progress = l2_progress_flag;
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	Options o;
	parse_options(argc, argv, &o);
	L2IndexWriter *w = NULL;
	L2StreamHeader first = {0};
	L2Progress prog;
	l2_progress_start(&prog, "indexing", "rec", 0);
	uint64_t shown = 0;
	for (int i = 0; i < o.nin; i++) {
		L2StreamReader *r = l2_stream_open(o.in[i]);
		const L2StreamHeader *h = l2_stream_header(r);
		if (!w) {
			first = *h;
			w = l2_index_writer_open(o.out, &o.b, h->kind, h->dim, (h->flags & L2FS_NORMALIZED) != 0);
		} else if (strcmp(h->kind, first.kind) || h->dim != first.dim)
			l2_die("%s: expected %s dim %u (as %s), got %s dim %u", o.in[i], first.kind, first.dim, o.in[0], h->kind,
			       h->dim);
		L2Record rec;
		while (l2_stream_next(r, &rec)) {
			if (l2_index_writer_add(w, rec.key, rec.key_len, rec.vec) && shown++ < 5)
				l2_warn("%s: duplicate key skipped: \"%.80s\"%s", o.in[i], rec.key, rec.key_len > 80 ? "..." : "");
			l2_progress_add(&prog, 1);
		}
		l2_stream_close(r);
	}
	l2_progress_end(&prog);
	uint64_t added = l2_index_writer_added(w), dups = l2_index_writer_duplicates(w), total = l2_index_writer_count(w);
	l2_index_writer_close(w);
	l2_info("%s: %llu added, %llu duplicate keys skipped, %llu in the index", o.out, (unsigned long long)added,
		(unsigned long long)dups, (unsigned long long)total);
	return 0;
}
