/* l2-optimize-pseudo — pseudo text features for image-only data (Lafite2).
 *
 *   l2-retrieve -i captions.idx -k 8 < images.l2f | l2-optimize-pseudo > pseudo.l2f
 *   l2-optimize-pseudo --mode retrieve neighbors.l2f > pseudo.l2f
 *   l2-optimize-pseudo --mode gaussian --seed 1 images.l2f > lafite1.l2f
 *   l2-optimize-pseudo --report --report-file diag.tsv nb.l2f > pseudo.l2f
 *
 * Reads a neighbors stream (or, for --mode gaussian, an image-feature
 * stream), works through it in batches, and writes one unit-norm
 * pseudo-text-feature per image, keyed by the image.  Method: lib/method/pseudo.h,
 * METHOD.md §2–3; formats: schemas/l2fs.md. */
#include "core/shard.h"
#include "method/pseudo.h"
#include "io/stream.h"
#include "core/parallel.h"
#include "core/util.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	L2PseudoOptions p;
	int k_given;
	const char *out, *in, *report_file;
	int report;
} Options;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: l2-optimize-pseudo [options] [STREAM]\n"
		"Turn a neighbors stream (from l2-retrieve; default standard input) into pseudo text\n"
		"features, one unit vector per image, written as a pseudo-text-feature stream.\n\n"
		"  -m, --mode MODE         optimize (default): retrieve, then contrastive optimisation;\n"
		"                          retrieve: the softmax-weighted retrieved captions only;\n"
		"                          gaussian: Lafite's normalize(f + xi*eps*|f|/|eps|) (also takes\n"
		"                          an image-feature stream)\n"
		"  -k, --k K               neighbours combined (default %d, or the stream's k if smaller)\n"
		"      --retrieval-temp T  softmax temperature over retrieval scores (default %g)\n"
		"      --tau T             contrastive temperature (default %g)\n"
		"      --lambda L          weight of the proximity term |h - h0|^2 (default %g)\n"
		"      --steps N           Adam steps per batch (default %d)\n"
		"      --lr R              Adam learning rate (default %g)\n"
		"      --batch B           images optimised together (default %d, at most 16384)\n"
		"      --xi X              gaussian mode: noise level (default %g)\n"
		"      --seed S            gaussian mode: noise seed (default 0)\n"
		"  -o, --output FILE       write here instead of standard output (atomically)\n"
		"      --report            per-batch and overall diagnostics on standard error\n"
		"      --report-file FILE  the same diagnostics as TSV\n"
		"      --threads N         batches computed in parallel (default: all cores; the\n"
		"                          output is the same for every N)\n"
		"      --progress          progress on stderr even when it is not a terminal\n"
		"      --quiet             no informational messages\n"
		"  -h, --help              this help\n"
		"      --version           print the version\n"
		"See l2-optimize-pseudo(1) and schemas/l2fs.md.\n",
		L2_PSEUDO_DEF_K, L2_PSEUDO_DEF_TR, L2_PSEUDO_DEF_TAU, L2_PSEUDO_DEF_LAMBDA, L2_PSEUDO_DEF_STEPS,
		L2_PSEUDO_DEF_LR, L2_PSEUDO_DEF_BATCH, L2_PSEUDO_DEF_XI);
}

enum { OPT_TR = L2_OPT_COMMON_END, OPT_TAU, OPT_LAMBDA, OPT_STEPS, OPT_LR, OPT_BATCH, OPT_XI, OPT_SEED, OPT_REPORT,
       OPT_REPORT_FILE };

static double positive(const char *arg, const char *name, int allow_zero)
{
	double v = l2_parse_double(arg, name);
	if (!isfinite(v) || v < 0 || (!allow_zero && v == 0))
		l2_die("invalid value for %s: '%s' (expected %s)", name, arg, allow_zero ? "a number >= 0" : "a number > 0");
	return v;
}

static void parse_options(int argc, char **argv, Options *o)
{
	static const struct option longopts[] = {
		L2_COMMON_LONGOPTS,
		{"mode", required_argument, 0, 'm'},
		{"k", required_argument, 0, 'k'},
		{"retrieval-temp", required_argument, 0, OPT_TR},
		{"tau", required_argument, 0, OPT_TAU},
		{"lambda", required_argument, 0, OPT_LAMBDA},
		{"steps", required_argument, 0, OPT_STEPS},
		{"lr", required_argument, 0, OPT_LR},
		{"batch", required_argument, 0, OPT_BATCH},
		{"xi", required_argument, 0, OPT_XI},
		{"seed", required_argument, 0, OPT_SEED},
		{"output", required_argument, 0, 'o'},
		{"report", no_argument, 0, OPT_REPORT},
		{"report-file", required_argument, 0, OPT_REPORT_FILE},
		{0, 0, 0, 0}};
	memset(o, 0, sizeof *o);
	l2_pseudo_defaults(&o->p);
	o->out = "-";
	int c;
	while ((c = getopt_long(argc, argv, "hm:k:o:", longopts, NULL)) != -1) {
		if (l2_common_option(c, optarg, usage)) continue;
		switch (c) {
		case 'm': {
			int m = l2_pseudo_mode_parse(optarg);
			if (m < 0) l2_usage_error(usage, "unknown mode '%s' (expected optimize, retrieve or gaussian)", optarg);
			o->p.mode = (L2PseudoMode)m;
			break;
		}
		case 'k': o->p.k = (int)l2_parse_long(optarg, "--k", 1, L2FS_MAX_K); o->k_given = 1; break;
		case OPT_TR: o->p.retrieval_temp = positive(optarg, "--retrieval-temp", 0); break;
		case OPT_TAU: o->p.tau = positive(optarg, "--tau", 0); break;
		case OPT_LAMBDA: o->p.lambda = positive(optarg, "--lambda", 1); break;
		case OPT_STEPS: o->p.steps = (int)l2_parse_long(optarg, "--steps", 0, 1000000); break;
		case OPT_LR: o->p.lr = positive(optarg, "--lr", 0); break;
		case OPT_BATCH: o->p.batch = (int)l2_parse_long(optarg, "--batch", 1, 16384); break; /* B^2 buffers */
		case OPT_XI: o->p.xi = positive(optarg, "--xi", 1); break;
		case OPT_SEED: o->p.seed = l2_parse_u64(optarg, "--seed"); break;
		case 'o': o->out = optarg; break;
		case OPT_REPORT: o->report = 1; break;
		case OPT_REPORT_FILE: o->report_file = optarg; break;
		default: l2_usage_error(usage, "unknown option");
		}
	}
	if (argc - optind > 1) l2_usage_error(usage, "one input stream at most (concatenate with l2-cat)");
	o->in = optind < argc ? argv[optind] : "-";
}

/* ---- diagnostics ----------------------------------------------------------------- */

static double ratio(double a, double n) { return n > 0 ? a / n : NAN; }

static void report_line(FILE *f, const char *label, const L2PseudoStats *b, const L2PseudoStats *a, double l0,
			double l1)
{
	fprintf(f, "%s: %.0f images  cos(h,image) %.4f -> %.4f", label, b->n, ratio(b->cos_img, b->n),
		ratio(a->cos_img, a->n));
	if (b->has_txt)
		fprintf(f, "  cos(h,nearest text) %.4f -> %.4f", ratio(b->cos_txt, b->n), ratio(a->cos_txt, a->n));
	fprintf(f, "  in-batch acc %.4f -> %.4f", ratio(b->correct, b->n), ratio(a->correct, a->n));
	if (!isnan(l0)) fprintf(f, "  loss %.4f -> %.4f", l0, l1);
	fputc('\n', f);
}

static void report_tsv(FILE *f, const char *label, const L2PseudoStats *b, const L2PseudoStats *a, double l0,
		       double l1)
{
	double ct0 = b->has_txt ? ratio(b->cos_txt, b->n) : NAN, ct1 = a->has_txt ? ratio(a->cos_txt, a->n) : NAN;
	fprintf(f, "%s\t%.0f\t%.6f\t%.6f\t%.6f\t%.6f\t%.6f\t%.6f\t%.6f\t%.6f\n", label, b->n, ratio(b->cos_img, b->n),
		ratio(a->cos_img, a->n), ct0, ct1, ratio(b->correct, b->n), ratio(a->correct, a->n), l0, l1);
}

/* NaN and infinity are refused by the stream reader; a zero vector has no
 * direction in CLIP space, and would come out as a zero "unit" vector */
static int is_zero(const float *v, uint32_t D)
{
	for (uint32_t d = 0; d < D; d++)
		if (v[d] != 0) return 0;
	return 1;
}

static void check_directions(const char *name, const L2Record *rec, uint32_t D, int K)
{
	if (is_zero(rec->vec, D))
		l2_die("%s: %s: the image feature is a zero vector (it has no direction)", name, rec->key);
	for (int j = 0; j < K; j++)
		if (is_zero(rec->nvec + (size_t)j * D, D))
			l2_die("%s: %s: the feature of neighbour %d is a zero vector (it has no direction)", name, rec->key,
			       j + 1);
}

static void stats_sum(L2PseudoStats *t, const L2PseudoStats *s)
{
	t->n += s->n, t->cos_img += s->cos_img, t->cos_txt += s->cos_txt, t->correct += s->correct;
	t->has_txt |= s->has_txt;
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	Options o;
	parse_options(argc, argv, &o);

	L2StreamReader *r = l2_stream_open(o.in);
	const L2StreamHeader *hd = l2_stream_header(r);
	const char *name = l2_stream_name(r);
	int K = 0;
	if (!strcmp(hd->kind, L2_KIND_NEIGHBORS)) {
		if (o.k_given && (uint32_t)o.p.k > hd->k)
			l2_die("%s: --k %d asks for more neighbours than the stream's %u (rerun l2-retrieve with -k %d)", name,
			       o.p.k, hd->k, o.p.k);
		if ((uint32_t)o.p.k > hd->k) o.p.k = (int)hd->k;
		K = o.p.k;
	} else if (!strcmp(hd->kind, L2_KIND_IMAGE) && o.p.mode == L2_PSEUDO_GAUSSIAN) {
		K = 0;
	} else if (o.p.mode == L2_PSEUDO_GAUSSIAN) {
		l2_die("%s: expected a neighbors or image-feature stream, got %s", name, hd->kind);
	} else {
		l2_die("%s: expected a neighbors stream (from l2-retrieve), got %s%s", name, hd->kind,
		       !strcmp(hd->kind, L2_KIND_IMAGE) ? " (only --mode gaussian takes image features)" : "");
	}
	int D = (int)hd->dim;

	L2OFile *tsv = NULL;
	if (o.report_file) {
		tsv = l2_ofile_open(o.report_file, 0);
		fprintf(l2_ofile_fp(tsv), "batch\timages\tcos_image_before\tcos_image_after\tcos_text_before\t"
					  "cos_text_after\tacc_before\tacc_after\tloss_before\tloss_after\n");
	}
	L2StreamWriter *w = l2_stream_create(o.out, L2_KIND_PSEUDO, (uint32_t)D, L2FS_NORMALIZED, 0, L2FS_UNTIL_END);
	/* Parallel over whole batches, each computed single-threaded: the output
	 * is then the same bytes for every --threads (OpenBLAS's own threading
	 * changes the rounding).  Memory: nthr batches in flight. */
	int nthr = l2_threads < 1 ? 1 : l2_threads > 32 ? 32 : l2_threads;
	l2_blas_threads(1);
	L2PseudoBatch **bs = l2_calloc((size_t)nthr, sizeof *bs);
	for (int t = 0; t < nthr; t++) bs[t] = l2_pseudo_batch_new(&o.p, D, K);
	L2PseudoStats tb = {0}, ta = {0};
	double lsum0 = 0, lsum1 = 0;
	long nbatch = 0;
	L2Progress prog;
	l2_progress_start(&prog, "pseudo features", "img", 0);
	L2Record rec;
	int more = 1;
	uint64_t pos = 0;
	while (more) {
		int nb = 0;
		while (nb < nthr && more) {
			L2PseudoBatch *b = bs[nb];
			while (b->n < o.p.batch && (more = l2_stream_next(r, &rec))) {
				check_directions(name, &rec, (uint32_t)D, K);
				l2_pseudo_batch_add(b, &rec);
				/* batches end at every 4096th record too, so a shard of the
				 * images in blocks of 4096 (core/shard.h) is batched, and so
				 * optimised, exactly as in the plain run, whatever --batch */
				if (++pos % L2_SHARD_DEF_BLOCK == 0) break;
			}
			if (b->n == 0) break;
			nb++;
		}
		l2_pseudo_batches_process(bs, nb, nthr);
		for (int t = 0; t < nb; t++) {
			L2PseudoBatch *b = bs[t];
			for (int i = 0; i < b->n; i++) l2_stream_write(w, b->key[i], b->h + (size_t)i * D);
			nbatch++;
			stats_sum(&tb, &b->before);
			stats_sum(&ta, &b->after);
			if (!isnan(b->loss0)) lsum0 += b->loss0 * b->n, lsum1 += b->loss1 * b->n;
			char label[32];
			snprintf(label, sizeof label, "%ld", nbatch);
			if (o.report) report_line(stderr, label, &b->before, &b->after, b->loss0, b->loss1);
			if (tsv) report_tsv(l2_ofile_fp(tsv), label, &b->before, &b->after, b->loss0, b->loss1);
			l2_progress_add(&prog, (uint64_t)b->n);
			l2_pseudo_batch_clear(b);
		}
	}
	l2_progress_end(&prog);
	double l0 = o.p.mode == L2_PSEUDO_OPTIMIZE && tb.n > 0 ? lsum0 / tb.n : NAN;
	double l1 = o.p.mode == L2_PSEUDO_OPTIMIZE && tb.n > 0 ? lsum1 / tb.n : NAN;
	if (o.report) report_line(stderr, "all", &tb, &ta, l0, l1);
	if (tsv) report_tsv(l2_ofile_fp(tsv), "all", &tb, &ta, l0, l1);
	l2_stream_close(r);
	l2_stream_writer_close(w);
	if (tsv) l2_ofile_commit(tsv);
	for (int t = 0; t < nthr; t++) l2_pseudo_batch_free(bs[t]);
	free(bs);
	return 0;
}
