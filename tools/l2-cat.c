/* l2-cat — inspect, concatenate and convert l2 feature streams.
 *
 *   l2-cat a.l2f b.l2f > ab.l2f          concatenate into one segment
 *   l2-cat --header a.l2f                print the header as text
 *   l2-cat -f tsv a.l2f                  key<TAB>v1 v2 ... per record
 *   l2-cat -f npy -o X.npy a.l2f         vectors as an (N, D) float32 .npy
 *   l2-cat --from-npy X.npy --keys K.txt --kind text-feature > t.l2f
 *   l2-cat --shard 2/8 all.l2f > s2.l2f      the records of shard 2 of 8 (core/shard.h)
 *   l2-cat --unshard 8 s0.l2f ... s7.l2f     shards back in the order of one plain run
 *
 * Format: schemas/l2fs.md. */
#include "core/shard.h"
#include "io/npy.h"
#include "io/stream.h"
#include "core/util.h"
#include "core/vec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { FMT_L2F, FMT_TSV, FMT_NPY } Format;

typedef struct {
	Format fmt;
	const char *out, *from_npy, *keys, *kind, *keys_out;
	int header, normalized, normalize, count;
	L2Shard shard;                 /* --shard: keep these records only */
	uint64_t unshard, unshard_block; /* --unshard N[:A]; 0 when not given */
} Options;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: l2-cat [options] [FILE...]\n"
		"       l2-cat --header [FILE]\n"
		"       l2-cat --from-npy X.npy [--keys KEYS.txt] [--kind KIND] [--normalized|--normalize]\n"
		"Read l2 feature streams (FILE or standard input; concatenated segments are one stream)\n"
		"and write them as one stream, as text, or as a NumPy array.\n\n"
		"  -f, --format FMT    l2f (default), tsv (key<TAB>values; neighbors: query<TAB>rank<TAB>key<TAB>score),\n"
		"                      npy (the vectors as float32 (N, D); needs -o)\n"
		"  -o, --output FILE   write here instead of standard output (atomically)\n"
		"      --header        print the stream header as text and exit\n"
		"      --count         print the number of records and exit\n"
		"      --keys-out FILE with -f npy: also write the keys, one per line\n"
		"      --from-npy X    convert a float32 (N, D) .npy into a stream\n"
		"      --keys FILE     with --from-npy: keys one per line (default: row numbers 0..N-1)\n"
		"      --kind KIND     with --from-npy: stream kind (default image-feature)\n"
		"      --normalized    with --from-npy: mark rows unit-norm (checked, error if not)\n"
		"      --normalize     with --from-npy: scale rows to unit norm and mark them\n"
		"      --shard I/N[:A] only the records of shard I of N (blocks of A records, default 4096,\n"
		"                      dealt round the shards); auto: I/N from Slurm or MPI variables\n"
		"      --unshard N[:A] the inputs are shards 0..N-1 of one stream: put the records back in\n"
		"                      its order (the blocks taken in turn), byte-identical to the plain run\n"
		"      --progress      progress on stderr even when it is not a terminal\n"
		"  -h, --help          this help\n"
		"      --version       print the version\n"
		"Format details: schemas/l2fs.md; see l2-cat(1).\n");
}

enum { OPT_HEADER = L2_OPT_COMMON_END, OPT_FROM_NPY, OPT_KEYS, OPT_KIND, OPT_NORMALIZED, OPT_NORMALIZE,
       OPT_KEYS_OUT, OPT_COUNT, OPT_UNSHARD };

static void parse_options(int argc, char **argv, Options *o)
{
	static const struct option longopts[] = {
		L2_COMMON_LONGOPTS,
		{"format", required_argument, 0, 'f'},
		{"output", required_argument, 0, 'o'},
		{"header", no_argument, 0, OPT_HEADER},
		{"count", no_argument, 0, OPT_COUNT},
		{"from-npy", required_argument, 0, OPT_FROM_NPY},
		{"keys", required_argument, 0, OPT_KEYS},
		{"keys-out", required_argument, 0, OPT_KEYS_OUT},
		{"kind", required_argument, 0, OPT_KIND},
		{"normalized", no_argument, 0, OPT_NORMALIZED},
		{"normalize", no_argument, 0, OPT_NORMALIZE},
		L2_SHARD_LONGOPT,
		{"unshard", required_argument, 0, OPT_UNSHARD},
		{0, 0, 0, 0}};
	memset(o, 0, sizeof *o);
	o->out = "-";
	int c;
	while ((c = getopt_long(argc, argv, "hf:o:", longopts, NULL)) != -1) {
		if (l2_common_option(c, optarg, usage)) continue;
		switch (c) {
		case 'f':
			if (!strcmp(optarg, "l2f")) o->fmt = FMT_L2F;
			else if (!strcmp(optarg, "tsv")) o->fmt = FMT_TSV;
			else if (!strcmp(optarg, "npy")) o->fmt = FMT_NPY;
			else l2_usage_error(usage, "unknown format '%s' (expected l2f, tsv or npy)", optarg);
			break;
		case 'o': o->out = optarg; break;
		case OPT_HEADER: o->header = 1; break;
		case OPT_COUNT: o->count = 1; break;
		case OPT_FROM_NPY: o->from_npy = optarg; break;
		case OPT_KEYS: o->keys = optarg; break;
		case OPT_KEYS_OUT: o->keys_out = optarg; break;
		case OPT_KIND: o->kind = optarg; break;
		case OPT_NORMALIZED: o->normalized = 1; break;
		case OPT_NORMALIZE: o->normalize = 1; break;
		case L2_OPT_SHARD: l2_shard_option(optarg, usage, &o->shard); break;
		case OPT_UNSHARD: {
			const char *err = l2_shard_parse_unshard(optarg, &o->unshard, &o->unshard_block);
			if (err) l2_usage_error(usage, "invalid value for --unshard: '%s' (%s)", optarg, err);
			break;
		}
		default: l2_usage_error(usage, "unknown option");
		}
	}
	if ((o->keys || o->kind || o->normalized || o->normalize) && !o->from_npy)
		l2_usage_error(usage, "--keys, --kind, --normalized and --normalize go with --from-npy");
	if (o->from_npy && optind < argc) l2_usage_error(usage, "--from-npy takes no stream arguments");
	if (o->keys_out && o->fmt != FMT_NPY) l2_usage_error(usage, "--keys-out goes with -f npy");
	if ((o->shard.count || o->unshard) && (o->from_npy || o->header))
		l2_usage_error(usage, "--shard and --unshard cut streams; not with --from-npy or --header");
	if (o->shard.count && o->unshard) l2_usage_error(usage, "--shard and --unshard do not go together (pipe one into the other)");
	if (o->unshard && (uint64_t)(argc - optind) != o->unshard)
		l2_usage_error(usage, "--unshard %llu needs the %llu shard streams in order, got %d", (unsigned long long)o->unshard,
			       (unsigned long long)o->unshard, argc - optind);
}

static void print_header(const char *path)
{
	L2StreamReader *r = l2_stream_open(path);
	const L2StreamHeader *h = l2_stream_header(r);
	printf("magic\tL2FS\nversion\t%u\nkind\t%s\ndtype\t%s\ndim\t%u\nflags\t%s\n", h->version, h->kind,
	       h->dtype == L2_DTYPE_F32 ? "f32" : "f16", h->dim, h->flags & L2FS_NORMALIZED ? "normalized" : "none");
	if (h->count == L2FS_UNTIL_END) printf("count\tuntil-end\n");
	else printf("count\t%llu\n", (unsigned long long)h->count);
	if (h->k) printf("k\t%u\n", h->k);
	l2_stream_close(r);
}

static void from_npy(const Options *o)
{
	L2Npy a;
	l2_npy_read(o->from_npy, &a);
	if (a.ndim != 2) l2_die("%s: expected a 2-d (N, D) array, got %d dimensions", o->from_npy, a.ndim);
	if (a.is_f64) l2_die("%s: expected float32 ('<f4'), got float64 (convert with .astype(np.float32))", o->from_npy);
	size_t n = a.shape[0], d = a.shape[1];
	if (d == 0 || d > L2FS_MAX_DIM) l2_die("%s: invalid dimension %zu", o->from_npy, d);
	float *x = a.data;
	const char *kind = o->kind ? o->kind : L2_KIND_IMAGE;
	if (!strcmp(kind, L2_KIND_NEIGHBORS)) l2_die("--kind neighbors cannot be made from a plain array");
	for (size_t i = 0; i < n; i++) {
		long j = l2_first_nonfinite(x + i * d, d);
		if (j >= 0) l2_die("%s: row %zu holds NaN or infinity (column %ld)", o->from_npy, i, j);
		if (o->normalize) {
			size_t z = 0;
			while (z < d && x[i * d + z] == 0) z++;
			if (z == d) l2_die("%s: row %zu is a zero vector: --normalize cannot give it a direction", o->from_npy, i);
		}
	}
	if (o->normalize) l2_normalize_rows(x, n, d);
	if (o->normalized)
		for (size_t i = 0; i < n; i++) {
			double s = 0;
			for (size_t j = 0; j < d; j++) s += (double)x[i * d + j] * x[i * d + j];
			if (fabs(sqrt(s) - 1) > 1e-4)
				l2_die("%s: row %zu has norm %.6g, not 1 (use --normalize to scale rows)", o->from_npy, i, sqrt(s));
		}
	char *keys = NULL, **kv = NULL;
	if (o->keys) {
		size_t len;
		keys = l2_read_file(o->keys, &len);
		kv = l2_calloc(n ? n : 1, sizeof *kv);
		size_t i = 0;
		char *p = keys;
		while (*p) {
			char *e = strchr(p, '\n');
			if (e) *e = 0;
			size_t kl = strlen(p);
			if (kl && p[kl - 1] == '\r') p[kl - 1] = 0;
			if (i == n) l2_die("%s: more keys than the %zu rows of %s", o->keys, n, o->from_npy);
			kv[i++] = p;
			if (!e) break;
			p = e + 1;
		}
		if (i != n) l2_die("%s: %zu keys for the %zu rows of %s", o->keys, i, n, o->from_npy);
	}
	L2StreamWriter *w = l2_stream_create(o->out, kind, (uint32_t)d, o->normalized || o->normalize ? L2FS_NORMALIZED : 0,
					     0, n);
	char num[32];
	for (size_t i = 0; i < n; i++) {
		if (kv) l2_stream_write(w, kv[i], x + i * d);
		else {
			snprintf(num, sizeof num, "%zu", i);
			l2_stream_write(w, num, x + i * d);
		}
	}
	l2_stream_writer_close(w);
	free(kv);
	free(keys);
	l2_npy_free(&a);
}

/* ---- the output, whatever its format ------------------------------------------ */

typedef struct {
	const Options *o;
	L2StreamHeader first; /* the first input's header: kind, dim, k */
	L2StreamWriter *w;    /* l2f */
	L2OFile *txt, *kout;  /* tsv; npy keys */
	float *all;           /* npy: the vectors (nall, dim) */
	size_t nall, cap;
	uint64_t total;
	L2Progress prog;
} Out;

/* The stream output's header: NORMALIZED and f16 only when every input has
 * them (file inputs are looked at first; standard input is trusted as its
 * first header says), so a merge of shards keeps their bytes. */
static void out_open(Out *u, char **in, int nin)
{
	const Options *o = u->o;
	if (o->fmt == FMT_TSV && !o->count) u->txt = l2_ofile_open(o->out, 0);
	if (o->keys_out) u->kout = l2_ofile_open(o->keys_out, 0);
	if (o->fmt != FMT_L2F || o->count) return;
	uint32_t flags = u->first.flags;
	uint16_t dtype = u->first.dtype;
	for (int j = 1; j < nin; j++) {
		if (!strcmp(in[j], "-")) continue;
		L2StreamReader *p = l2_stream_open(in[j]);
		if (!(l2_stream_header(p)->flags & L2FS_NORMALIZED)) flags &= ~L2FS_NORMALIZED;
		if (l2_stream_header(p)->dtype != dtype) dtype = L2_DTYPE_F32;
		l2_stream_close(p);
	}
	u->w = l2_stream_create_dtype(o->out, u->first.kind, u->first.dim, flags, u->first.k, L2FS_UNTIL_END, dtype);
}

static void check_like_first(const Out *u, const L2StreamHeader *h, const char *name, const char *first_name)
{
	if (strcmp(h->kind, u->first.kind) || h->dim != u->first.dim || h->k != u->first.k)
		l2_die("%s: expected %s dim %u (as %s), got %s dim %u", name, u->first.kind, u->first.dim, first_name,
		       h->kind, h->dim);
}

static void out_record(Out *u, const L2Record *rec)
{
	u->total++;
	l2_progress_add(&u->prog, 1);
	if (u->o->count) return;
	uint32_t dim = u->first.dim;
	switch (u->o->fmt) {
	case FMT_L2F:
		if (rec->k) l2_stream_write_neighbors(u->w, rec->key, rec->vec, rec->k, rec->nkey, rec->nscore, rec->nvec);
		else l2_stream_write_len(u->w, rec->key, rec->key_len, rec->vec);
		break;
	case FMT_TSV: {
		FILE *f = l2_ofile_fp(u->txt);
		if (rec->k) {
			for (uint32_t j = 0; j < rec->k; j++) {
				l2_put_tsv_field(f, rec->key, strlen(rec->key));
				fprintf(f, "\t%u\t", j + 1);
				l2_put_tsv_field(f, rec->nkey[j], strlen(rec->nkey[j]));
				fprintf(f, "\t%.9g\n", rec->nscore[j]);
			}
		} else {
			l2_put_tsv_field(f, rec->key, strlen(rec->key));
			for (uint32_t j = 0; j < dim; j++) fprintf(f, "%c%.9g", j ? ' ' : '\t', rec->vec[j]);
			fputc('\n', f);
		}
		break;
	}
	case FMT_NPY:
		if (u->nall + 1 > u->cap) {
			u->cap = u->cap ? u->cap * 2 : 1024;
			u->all = l2_realloc(u->all, l2_mul_size(l2_mul_size(u->cap, dim), sizeof(float)));
		}
		memcpy(u->all + u->nall * dim, rec->vec, dim * sizeof(float));
		u->nall++;
		if (u->kout) {
			l2_put_tsv_field(l2_ofile_fp(u->kout), rec->key, strlen(rec->key));
			fputc('\n', l2_ofile_fp(u->kout));
		}
		break;
	}
}

static void out_close(Out *u)
{
	l2_progress_end(&u->prog);
	if (u->o->count) {
		printf("%llu\n", (unsigned long long)u->total);
		return;
	}
	if (u->w) l2_stream_writer_close(u->w);
	if (u->txt) l2_ofile_commit(u->txt);
	if (u->o->fmt == FMT_NPY) {
		size_t shape[2] = {u->nall, u->first.dim};
		l2_npy_write(u->o->out, u->all, 0, 2, shape);
	}
	if (u->kout) l2_ofile_commit(u->kout);
	free(u->all);
}

/* The inputs one after another (records counted across them for --shard). */
static void concatenate(Out *u, char **in, int nin)
{
	uint64_t pos = 0;
	for (int i = 0; i < nin; i++) {
		L2StreamReader *r = l2_stream_open(in[i]);
		const L2StreamHeader *h = l2_stream_header(r);
		if (i == 0) {
			u->first = *h;
			out_open(u, in, nin);
		} else
			check_like_first(u, h, in[i], in[0]);
		L2Record rec;
		while (l2_stream_next(r, &rec))
			if (l2_shard_has(&u->o->shard, pos++)) out_record(u, &rec);
		l2_stream_close(r);
	}
}

/* --unshard N:A: blocks of A records from shard 0, 1, ..., N-1, 0, ... as
 * core/shard.h deals them.  Only the last block of the plain stream is
 * short, so the first shard to come up short ends it; then every shard must
 * be exhausted, or these are not the shards of one stream with this N:A. */
static void unshard(Out *u, char **in, int nin)
{
	uint64_t A = u->o->unshard_block;
	L2StreamReader **r = l2_calloc((size_t)nin, sizeof *r);
	int stdin_seen = 0;
	for (int i = 0; i < nin; i++)
		if (!strcmp(in[i], "-") && stdin_seen++) l2_die("-: standard input given twice");
	for (int i = 0; i < nin; i++) {
		r[i] = l2_stream_open(in[i]);
		if (i == 0) u->first = *l2_stream_header(r[0]);
		else check_like_first(u, l2_stream_header(r[i]), in[i], in[0]);
	}
	out_open(u, in, nin);
	L2Record rec;
	int end = -1;
	uint64_t block = 0;
	while (end < 0) {
		for (int i = 0; i < nin && end < 0; i++, block++) {
			uint64_t got = 0;
			while (got < A && l2_stream_next(r[i], &rec)) out_record(u, &rec), got++;
			if (got < A) end = i;
		}
	}
	for (int i = 0; i < nin; i++) {
		if (l2_stream_next(r[i], &rec))
			l2_die("%s: has records after the merged stream ended (block %llu, in %s, was short): these are not "
			       "shards 0..%d of one stream in blocks of %llu, in this order",
			       in[i], (unsigned long long)(block - 1), in[end], nin - 1, (unsigned long long)A);
		l2_stream_close(r[i]);
	}
	free(r);
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	Options o;
	parse_options(argc, argv, &o);
	if (o.from_npy) { from_npy(&o); return 0; }
	int nin = argc - optind;
	char *stdin_only[] = {"-"};
	char **in = nin ? argv + optind : stdin_only;
	if (!nin) nin = 1;
	if (o.header) {
		for (int i = 0; i < nin; i++) print_header(in[i]);
		return 0;
	}
	l2_shard_info(&o.shard);
	Out u = {.o = &o};
	l2_progress_start(&u.prog, "records", "rec", 0);
	if (o.unshard) unshard(&u, in, nin);
	else concatenate(&u, in, nin);
	out_close(&u);
	return 0;
}
