/* l2-fid — FID (and KID) between two sets, exactly as pytorch-fid computes it.
 *
 *   l2-fid -m inception.safetensors real/ fake/        images against images
 *   l2-fid -m inception.safetensors fake/ ref.npz      against published statistics
 *   l2-fid clip_a.l2f clip_b.l2f                        any feature streams (e.g. CLIP)
 *   l2-fid -m W --save-stats ref.npz real/              statistics for later
 *   l2-fid -m W --features fake.l2f fake/               Inception features as a stream
 *   l2-fid --random-weights w.safetensors               seeded test weights
 *
 * Prints "FID: <value>" first, then N of each side, the mode and the
 * weights' SHA-256.  Method: lib/method/fid.h; network: lib/models/inception.h. */
#include "nn/conv.h"
#include "method/fid.h"
#include "io/image.h"
#include "models/inception.h"
#include "io/npz.h"
#include "io/safetensors.h"
#include "core/sha256.h"
#include "io/stream.h"
#include "core/parallel.h"
#include "core/util.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>


#define INCEPTION_KIND "inception-feature"
/* A covariance of dimension d costs 8 d^2 bytes and about 10 d^3 flops per
 * eigendecomposition: 8192 is half a GiB and a minute or so; 16384 would
 * be 2 GiB per matrix and the better part of an hour. */
#define FID_DEFAULT_MAX_DIM 8192


typedef struct {
	const char *model, *save_stats, *features, *random_weights;
	int dims, dims_set, batch, kid, kid_subsets;
	long kid_subset_size, max_dim;
	uint64_t seed;
} Options;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: l2-fid [options] A B\n"
		"       l2-fid [-m WEIGHTS] --save-stats OUT.npz A\n"
		"       l2-fid -m WEIGHTS --features OUT.l2f DIR\n"
		"       l2-fid --random-weights OUT.safetensors [--seed N]\n"
		"Frechet Inception Distance between A and B, as pytorch-fid computes it.  Each side is\n"
		"  a directory of images (PNG/JPEG, searched recursively; needs -m),\n"
		"  a statistics file (.npz with mu and sigma, as pytorch-fid writes; compressed or not),\n"
		"  or a feature stream of any kind (e.g. CLIP features; \"-\" = standard input).\n"
		"Prints \"FID: <value>\" on the first line, then N of each side, the mode and the\n"
		"SHA-256 of the weights.\n\n"
		"  -m, --model FILE       FID Inception-v3 weights: safetensors with the key names of\n"
		"                         pytorch-fid's pt_inception-2015-12-05 state dict\n"
		"      --dims N           Inception features: 64, 192, 768 or 2048 (default 2048)\n"
		"      --batch N          images per thread and forward pass (default 4)\n"
		"      --save-stats OUT   write mu and sigma of A as a compressed .npz and exit\n"
		"      --features OUT     write the Inception features of the image directory A as an\n"
		"                         l2 stream (kind inception-feature) and exit\n"
		"      --kid              also report KID (unbiased MMD^2, kernel (x.y/d + 1)^3) as\n"
		"                         mean +- std over random subsets; needs features, not statistics\n"
		"      --kid-subsets N    number of subsets (default 100)\n"
		"      --kid-subset-size N  rows per subset (default 1000; capped at the smaller N)\n"
		"      --max-dim N        refuse features of more than N dimensions (default 8192): the\n"
		"                         cost grows with the cube of the dimension\n"
		"      --seed N           KID subset draw, or --random-weights seed (default 1)\n"
		"      --random-weights OUT  write FID Inception weights from a seeded generator (for tests\n"
		"                         and benchmarks; their features are meaningless) and exit\n"
		"      --threads N        worker threads (default: all cores)\n"
		"      --progress         progress on stderr even when it is not a terminal\n"
		"      --quiet            no warnings about small N\n"
		"  -h, --help             this help\n"
		"      --version          print the version\n"
		"See l2-fid(1).\n");
}

enum { OPT_DIMS = L2_OPT_COMMON_END, OPT_BATCH, OPT_SAVE, OPT_FEATURES, OPT_KID, OPT_KID_SUBSETS, OPT_KID_SIZE,
       OPT_SEED, OPT_RANDOM, OPT_MAX_DIM };

static void parse_options(int argc, char **argv, Options *o)
{
	static const struct option longopts[] = {
		L2_COMMON_LONGOPTS,
		{"model", required_argument, 0, 'm'},
		{"dims", required_argument, 0, OPT_DIMS},
		{"batch", required_argument, 0, OPT_BATCH},
		{"save-stats", required_argument, 0, OPT_SAVE},
		{"features", required_argument, 0, OPT_FEATURES},
		{"kid", no_argument, 0, OPT_KID},
		{"kid-subsets", required_argument, 0, OPT_KID_SUBSETS},
		{"kid-subset-size", required_argument, 0, OPT_KID_SIZE},
		{"seed", required_argument, 0, OPT_SEED},
		{"random-weights", required_argument, 0, OPT_RANDOM},
		{"max-dim", required_argument, 0, OPT_MAX_DIM},
		{0, 0, 0, 0}};
	memset(o, 0, sizeof *o);
	o->dims = 2048;
	o->max_dim = FID_DEFAULT_MAX_DIM;
	o->batch = 4;
	o->kid_subsets = 100;
	o->kid_subset_size = 1000;
	o->seed = 1;
	int c;
	while ((c = getopt_long(argc, argv, "hm:", longopts, NULL)) != -1) {
		if (l2_common_option(c, optarg, usage)) continue;
		switch (c) {
		case 'm': o->model = optarg; break;
		case OPT_DIMS:
			o->dims = (int)l2_parse_long(optarg, "--dims", 1, 4096);
			if (!l2_inception_dims_ok(o->dims)) l2_usage_error(usage, "--dims must be 64, 192, 768 or 2048");
			o->dims_set = 1;
			break;
		case OPT_BATCH: o->batch = (int)l2_parse_long(optarg, "--batch", 1, 256); break;
		case OPT_SAVE: o->save_stats = optarg; break;
		case OPT_FEATURES: o->features = optarg; break;
		case OPT_KID: o->kid = 1; break;
		case OPT_KID_SUBSETS: o->kid_subsets = (int)l2_parse_long(optarg, "--kid-subsets", 1, 1000000); break;
		case OPT_KID_SIZE: o->kid_subset_size = l2_parse_long(optarg, "--kid-subset-size", 2, 1L << 30); break;
		case OPT_SEED: o->seed = l2_parse_u64(optarg, "--seed"); break;
		case OPT_RANDOM: o->random_weights = optarg; break;
		case OPT_MAX_DIM: o->max_dim = l2_parse_long(optarg, "--max-dim", 1, L2FS_MAX_DIM); break;
		default: l2_usage_error(usage, "unknown option");
		}
	}
	int nargs = argc - optind;
	int modes = !!o->save_stats + !!o->features + !!o->random_weights;
	if (modes > 1) l2_usage_error(usage, "--save-stats, --features and --random-weights exclude each other");
	if (o->random_weights) {
		if (nargs) l2_usage_error(usage, "--random-weights takes no input arguments");
	} else if (o->save_stats || o->features) {
		if (nargs != 1) l2_usage_error(usage, "%s takes exactly one input", o->save_stats ? "--save-stats" : "--features");
		if (o->kid) l2_usage_error(usage, "--kid goes with two inputs");
	} else if (nargs != 2) {
		l2_usage_error(usage, "expected two inputs A and B (got %d)", nargs);
	}
}

/* ---- weights ------------------------------------------------------------------------- */

static void write_random_weights(const Options *o)
{
	int n = l2_inception_param_count();
	L2StWriter *w = l2_st_writer_new();
	float **bufs = l2_calloc((size_t)n, sizeof *bufs);
	for (int i = 0; i < n; i++) {
		int ndim;
		int64_t shape[4];
		const char *name = l2_inception_param_name(i, &ndim, shape);
		size_t cnt = 1;
		for (int d = 0; d < ndim; d++) cnt *= (size_t)shape[d];
		bufs[i] = l2_malloc(cnt * sizeof(float));
		l2_inception_random_param(o->seed, i, bufs[i]);
		l2_st_writer_add_f32(w, name, ndim, shape, bufs[i]);
	}
	char seed[32];
	snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
	l2_st_writer_meta(w, "format", "pt");
	l2_st_writer_meta(w, "l2_random_seed", seed);
	l2_st_writer_meta(w, "note", "seeded random FID Inception-v3 weights for tests (not pt_inception-2015-12-05)");
	l2_st_writer_write(w, o->random_weights);
	l2_st_writer_free(w);
	for (int i = 0; i < n; i++) free(bufs[i]);
	free(bufs);
}

/* ---- one side ------------------------------------------------------------------------------ */

typedef enum { SIDE_IMAGES, SIDE_STATS, SIDE_STREAM } SideKind;

typedef struct {
	const char *path;
	SideKind kind;
	int dim;
	uint64_t n;          /* 0 = unknown (statistics without a count) */
	double *mu, *sigma;
	float *feat;         /* (n, dim) when KID needs them */
	size_t nfeat, capfeat;
	char desc[64];
} Side;

static int ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcasecmp(s + a - b, suf);
}

static SideKind classify(const char *path)
{
	if (strcmp(path, "-") && l2_is_dir(path)) return SIDE_IMAGES;
	if (ends_with(path, ".npz")) return SIDE_STATS;
	if (strcmp(path, "-")) {
		FILE *f = l2_fopen_read(path);
		unsigned char m[4] = {0};
		size_t got = fread(m, 1, 4, f);
		fclose(f);
		if (got == 4 && !memcmp(m, "PK\3\4", 4)) return SIDE_STATS;
		if (got == 4 && !memcmp(m, "PK\5\6", 4)) return SIDE_STATS; /* empty zip: reported below */
	}
	return SIDE_STREAM;
}

static void keep_features(Side *s, const float *x, size_t n)
{
	if (s->nfeat + n > s->capfeat) {
		s->capfeat = (s->nfeat + n) * 2;
		s->feat = l2_realloc(s->feat, l2_mul_size(l2_mul_size(s->capfeat, (size_t)s->dim), sizeof(float)));
	}
	memcpy(s->feat + s->nfeat * s->dim, x, n * s->dim * sizeof(float));
	s->nfeat += n;
}

static void check_dim(const Options *o, const char *path, size_t d)
{
	if (d > (size_t)o->max_dim)
		l2_die("%s: features of dimension %zu: FID's memory grows with its square (%.1f GiB per covariance) and "
		       "its time with its cube; at most %ld unless --max-dim says more", path, d,
		       (double)d * (double)d * 8 / (1 << 30), o->max_dim);
}

static void load_stats(const Options *o, Side *s)
{
	L2Npy mu, sg, cnt;
	if (!l2_npz_read(s->path, "mu", &mu)) l2_die("%s: no 'mu' array in the statistics file", s->path);
	if (mu.ndim != 1 || mu.shape[0] == 0) l2_die("%s: 'mu' must be a vector (got %d dimensions)", s->path, mu.ndim);
	check_dim(o, s->path, mu.shape[0]); /* before sigma's d x d are read */
	if (!l2_npz_read(s->path, "sigma", &sg)) l2_die("%s: no 'sigma' array in the statistics file", s->path);
	size_t d = mu.shape[0];
	if (sg.ndim != 2 || sg.shape[0] != d || sg.shape[1] != d)
		l2_die("%s: 'sigma' must be %zu x %zu to match 'mu'", s->path, d, d);
	if (d > L2FS_MAX_DIM) l2_die("%s: implausible dimension %zu", s->path, d);
	s->dim = (int)d;
	s->mu = l2_malloc(d * sizeof(double));
	s->sigma = l2_malloc(d * d * sizeof(double));
	for (size_t i = 0; i < d; i++) s->mu[i] = mu.is_f64 ? ((double *)mu.data)[i] : ((float *)mu.data)[i];
	for (size_t i = 0; i < d * d; i++) s->sigma[i] = sg.is_f64 ? ((double *)sg.data)[i] : ((float *)sg.data)[i];
	l2_npy_free(&mu);
	l2_npy_free(&sg);
	for (size_t i = 0; i < d * d; i++)
		if (!isfinite(s->sigma[i]) || (i < d && !isfinite(s->mu[i])))
			l2_die("%s: '%s' holds NaN or infinity", s->path, i < d && !isfinite(s->mu[i]) ? "mu" : "sigma");
	const char *bad = l2_fid_check_covariance(s->sigma, (int)d);
	if (bad) l2_die("%s: 'sigma' %s", s->path, bad);
	if (l2_npz_read(s->path, "n", &cnt)) { /* written by l2-fid --save-stats */
		double v = l2_npy_count(&cnt) == 1 ? (cnt.is_f64 ? ((double *)cnt.data)[0] : ((float *)cnt.data)[0]) : -1;
		if (v >= 1 && v < 9e18) s->n = (uint64_t)v; /* anything else: unknown */
		l2_npy_free(&cnt);
	}
	snprintf(s->desc, sizeof s->desc, "statistics");
}

/* ---- Inception features of an image directory ---------------------------------------------------- */

typedef struct {
	const L2Inception *net;
	const char *root;
	char **paths;
	size_t lo, hi;       /* this chunk's images */
	size_t next;         /* next image to claim (under lock) */
	int batch, dims;
	float *feat;         /* (hi - lo, dims) */
	pthread_mutex_t lock;
	L2Progress *prog;
} Pool;

static void load_image(const char *root, const char *rel, float *out)
{
	char path[4096], err[256];
	snprintf(path, sizeof path, "%s/%s", root, rel);
	L2Image img, rgb;
	if (l2_image_load(path, &img, err, sizeof err)) l2_die("%s: %s", path, err);
	l2_image_to_rgb(&img, &rgb);
	l2_image_free(&img);
	const int S = L2_INCEPTION_SIZE;
	if (rgb.w == S && rgb.h == S) {
		l2_image_rgb_to_chw(&rgb, out); /* interpolate to the same size is the identity */
	} else {
		float *chw = l2_malloc(l2_mul_size((size_t)3 * rgb.w, (size_t)rgb.h) * sizeof(float));
		l2_image_rgb_to_chw(&rgb, chw);
		l2_image_resize_bilinear_f32(chw, 3, rgb.h, rgb.w, out, S, S);
		free(chw);
	}
	l2_image_free(&rgb);
}

static void worker(void *arg, int w)
{
	Pool *p = arg;
	const size_t per = (size_t)3 * L2_INCEPTION_SIZE * L2_INCEPTION_SIZE;
	float *x = l2_malloc_aligned(l2_mul_size((size_t)p->batch, per) * sizeof(float));
	for (;;) {
		pthread_mutex_lock(&p->lock);
		size_t i0 = p->next, n = p->hi - i0 < (size_t)p->batch ? p->hi - i0 : (size_t)p->batch;
		p->next += n;
		pthread_mutex_unlock(&p->lock);
		if (!n) break;
		for (size_t k = 0; k < n; k++) load_image(p->root, p->paths[i0 + k], x + k * per);
		l2_inception_forward(p->net, x, (int)n, p->dims, p->feat + (i0 - p->lo) * p->dims);
		pthread_mutex_lock(&p->lock);
		l2_progress_add(p->prog, n);
		pthread_mutex_unlock(&p->lock);
	}
	l2_free_aligned(x);
	if (w) l2_inception_thread_cleanup(); /* a worker thread's buffers (the caller's stay for the next chunk) */
}

/* Features of every image of dir, in chunks (constant memory in N), handed
 * to stats / stream / KID in the order of the sorted paths. */
static void image_features(const Options *o, const L2Inception *net, Side *s, L2StreamWriter *w)
{
	char **paths;
	size_t skipped = 0, n = l2_image_list_dir(s->path, &paths, &skipped);
	if (!n) l2_die("%s: no PNG or JPEG images in this directory", s->path);
	s->dim = o->dims;
	L2FidStats st;
	l2_fid_stats_init(&st, s->dim);
	int threads = l2_threads > 0 ? l2_threads : 1;
	size_t chunk = (size_t)threads * o->batch * 64; /* threads (and their buffers) live per chunk */
	Pool p = {.net = net, .root = s->path, .paths = paths, .batch = o->batch, .dims = o->dims};
	pthread_mutex_init(&p.lock, NULL);
	p.feat = l2_malloc(l2_mul_size(chunk, (size_t)o->dims) * sizeof(float));
	L2Progress prog;
	l2_progress_start(&prog, s->path, "img", n);
	p.prog = &prog;
	/* one batch per thread at a time, BLAS single-threaded inside each, also when a chunk
	 * has a single batch (OpenBLAS's thread count changes its rounding: the same features
	 * for any number of images) */
	int blas_was = l2_blas_threads(1);
	for (size_t lo = 0; lo < n; lo += chunk) {
		p.lo = p.next = lo;
		p.hi = lo + chunk < n ? lo + chunk : n;
		int nt = threads;
		size_t batches = (p.hi - p.lo + o->batch - 1) / o->batch;
		if ((size_t)nt > batches) nt = (int)batches;
		l2_parallel_workers(nt, worker, &p);
		size_t m = p.hi - p.lo;
		l2_fid_stats_add(&st, p.feat, m);
		if (w)
			for (size_t i = 0; i < m; i++) l2_stream_write(w, paths[p.lo + i], p.feat + i * o->dims);
		if (o->kid) keep_features(s, p.feat, m);
	}
	l2_blas_threads(blas_was);
	l2_progress_end(&prog);
	s->n = n;
	if (!w) {
		s->mu = l2_malloc((size_t)s->dim * sizeof(double));
		s->sigma = l2_malloc(l2_mul_size((size_t)s->dim, (size_t)s->dim) * sizeof(double));
		l2_fid_stats_finish(&st, s->mu, s->sigma);
	}
	l2_fid_stats_free(&st);
	free(p.feat);
	pthread_mutex_destroy(&p.lock);
	for (size_t i = 0; i < n; i++) free(paths[i]);
	free(paths);
	snprintf(s->desc, sizeof s->desc, "images");
}

static void stream_stats(const Options *o, Side *s)
{
	L2StreamReader *r = l2_stream_open(s->path);
	const L2StreamHeader *h = l2_stream_header(r);
	if (!strcmp(h->kind, L2_KIND_NEIGHBORS)) l2_die("%s: a neighbors stream has no feature set to compare", s->path);
	check_dim(o, s->path, h->dim);
	s->dim = (int)h->dim;
	snprintf(s->desc, sizeof s->desc, "%s", h->kind);
	L2FidStats st;
	l2_fid_stats_init(&st, s->dim);
	L2Record rec;
	while (l2_stream_next(r, &rec)) {
		l2_fid_stats_add(&st, rec.vec, 1);
		if (o->kid) keep_features(s, rec.vec, 1);
	}
	s->n = l2_fid_stats_count(&st);
	l2_stream_close(r);
	if (s->n >= 2) {
		s->mu = l2_malloc((size_t)s->dim * sizeof(double));
		s->sigma = l2_malloc(l2_mul_size((size_t)s->dim, (size_t)s->dim) * sizeof(double));
		l2_fid_stats_finish(&st, s->mu, s->sigma);
	}
	l2_fid_stats_free(&st);
}

static void side_free(Side *s)
{
	free(s->mu);
	free(s->sigma);
	free(s->feat);
}

/* ---- main ---------------------------------------------------------------------------------------- */

typedef struct {
	const char *path;
	char *hex;
} HashJob;

static void hash_file(void *arg)
{
	HashJob *j = arg;
	l2_sha256_file(j->path, j->hex);
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	Options o;
	parse_options(argc, argv, &o);
	if (o.random_weights) {
		write_random_weights(&o);
		return 0;
	}
	char **in = argv + optind;
	int nin = o.save_stats || o.features ? 1 : 2;
	if (nin == 2 && !strcmp(in[0], "-") && !strcmp(in[1], "-")) l2_die("only one side can be standard input");
	Side side[2];
	memset(side, 0, sizeof side);
	int need_net = 0;
	for (int i = 0; i < nin; i++) {
		side[i].path = in[i];
		side[i].kind = classify(in[i]);
		if (side[i].kind == SIDE_IMAGES) need_net = 1;
		if (side[i].kind == SIDE_STATS && o.kid)
			l2_die("%s: KID needs features; a statistics file has only mu and sigma", in[i]);
	}
	if (o.features && side[0].kind != SIDE_IMAGES) l2_die("%s: --features needs a directory of images", in[0]);
	if (need_net && !o.model) l2_die("%s: images need the FID Inception weights (-m WEIGHTS)", side[side[0].kind == SIDE_IMAGES ? 0 : 1].path);

	/* statistics files first: they are cheap and fix the dimension */
	for (int i = 0; i < nin; i++)
		if (side[i].kind == SIDE_STATS) load_stats(&o, &side[i]);
	char hash[65] = "";
	L2Inception *net = NULL;
	L2Task *hashing = NULL;
	HashJob hj;
	if (need_net) {
		for (int i = 0; i < nin; i++)
			if (side[i].kind == SIDE_STATS && side[i].dim != o.dims)
				l2_die("%s: statistics of dimension %d, but Inception features have %d%s", side[i].path, side[i].dim,
				       o.dims, l2_inception_dims_ok(side[i].dim) && !o.dims_set ? " (use --dims to match)" : "");
		L2Safetensors *st = l2_st_open(o.model); /* validates the file first */
		/* hash the 95 MB file beside the work instead of before it */
		if (!o.features && !o.save_stats) { /* only the FID report names the weights */
			hj.path = o.model;
			hj.hex = hash;
			hashing = l2_task_start(hash_file, &hj);
		}
		net = l2_inception_load(l2_inception_st_get, st);
		l2_st_close(st);
	}
	if (o.features) {
		L2StreamWriter *w = l2_stream_create(o.features, INCEPTION_KIND, (uint32_t)o.dims, 0, 0, L2FS_UNTIL_END);
		image_features(&o, net, &side[0], w);
		l2_stream_writer_close(w);
		l2_inception_free(net);
		return 0;
	}
	for (int i = 0; i < nin; i++) {
		if (side[i].kind == SIDE_IMAGES) image_features(&o, net, &side[i], NULL);
		else if (side[i].kind == SIDE_STREAM) stream_stats(&o, &side[i]);
		if (side[i].kind != SIDE_STATS && side[i].n < 2)
			l2_die("%s: FID needs at least 2 samples for a covariance (got %llu)", side[i].path,
			       (unsigned long long)side[i].n);
		if (side[i].n && side[i].n <= (uint64_t)side[i].dim && !l2_quiet)
			l2_warn("%s: N = %llu <= %d dimensions: the covariance is singular and FID is strongly biased at this N",
				side[i].path, (unsigned long long)side[i].n, side[i].dim);
	}
	l2_inception_free(net);
	l2_task_join(hashing);

	if (o.save_stats) {
		Side *s = &side[0];
		double n = (double)s->n;
		L2NpzMember m[3] = {{"mu", s->mu, 1, 1, {(size_t)s->dim}},
				    {"sigma", s->sigma, 1, 2, {(size_t)s->dim, (size_t)s->dim}},
				    {"n", &n, 1, 1, {1}}};
		l2_npz_write(o.save_stats, m, s->n ? 3 : 2, 1);
		l2_info("%s: statistics of %llu samples, dimension %d", o.save_stats, (unsigned long long)s->n, s->dim);
		side_free(s);
		return 0;
	}

	if (side[0].dim != side[1].dim)
		l2_die("%s has dimension %d but %s has %d: features must come from the same encoder", side[0].path, side[0].dim,
		       side[1].path, side[1].dim);
	L2FidResult r = l2_fid_frechet_named(side[0].mu, side[0].sigma, side[1].mu, side[1].sigma, side[0].dim,
					     side[0].path, side[1].path);
	double kid_mean = 0, kid_std = 0;
	size_t kid_m = 0;
	if (o.kid) {
		kid_m = side[0].nfeat < side[1].nfeat ? side[0].nfeat : side[1].nfeat;
		if ((size_t)o.kid_subset_size < kid_m) kid_m = (size_t)o.kid_subset_size;
		l2_kid(side[0].feat, side[0].nfeat, side[1].feat, side[1].nfeat, side[0].dim, (size_t)o.kid_subset_size,
		       o.kid_subsets, o.seed, &kid_mean, &kid_std);
	}
	/* rounding noise of a set against itself: no "-0.000000" */
	printf("FID: %.6f\n", r.fid < 0 && r.fid > -5e-7 ? 0.0 : r.fid);
	for (int i = 0; i < 2; i++) {
		if (side[i].n) printf("N_%c: %llu\n", 'A' + i, (unsigned long long)side[i].n);
		else printf("N_%c: unknown\n", 'A' + i);
	}
	printf("mode: A=%s B=%s dims=%d\n", side[0].desc, side[1].desc, side[0].dim);
	if (need_net) printf("weights: sha256:%s\n", hash);
	else printf("weights: none\n");
	if (o.kid) {
		int subsets = kid_m == side[0].nfeat && kid_m == side[1].nfeat ? 1 : o.kid_subsets;
		printf("KID: %.8g +- %.8g (%d subset%s of %zu)\n", kid_mean, kid_std, subsets, subsets == 1 ? "" : "s", kid_m);
	}
	if (fflush(stdout) || ferror(stdout)) l2_die_errno("standard output");
	side_free(&side[0]);
	side_free(&side[1]);
	return 0;
}
