/* l2-cat — inspect, concatenate and convert l2 feature streams.
 *
 *   l2-cat a.l2f b.l2f > ab.l2f          concatenate into one segment
 *   l2-cat --header a.l2f                print the header as text
 *   l2-cat -f tsv a.l2f                  key<TAB>v1 v2 ... per record
 *   l2-cat -f npy -o X.npy a.l2f         vectors as an (N, D) float32 .npy
 *   l2-cat --from-npy X.npy --keys K.txt --kind text-feature > t.l2f
 *
 * Format: schemas/l2fs.md. */
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
		"      --progress      progress on stderr even when it is not a terminal\n"
		"  -h, --help          this help\n"
		"      --version       print the version\n"
		"Format details: schemas/l2fs.md; see l2-cat(1).\n");
}

enum { OPT_HEADER = L2_OPT_COMMON_END, OPT_FROM_NPY, OPT_KEYS, OPT_KIND, OPT_NORMALIZED, OPT_NORMALIZE,
       OPT_KEYS_OUT, OPT_COUNT };

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
		default: l2_usage_error(usage, "unknown option");
		}
	}
	if ((o->keys || o->kind || o->normalized || o->normalize) && !o->from_npy)
		l2_usage_error(usage, "--keys, --kind, --normalized and --normalize go with --from-npy");
	if (o->from_npy && optind < argc) l2_usage_error(usage, "--from-npy takes no stream arguments");
	if (o->keys_out && o->fmt != FMT_NPY) l2_usage_error(usage, "--keys-out goes with -f npy");
}

/* TSV keys: backslash, tab, newline and CR are escaped so lines stay lines. */
static void put_key(FILE *f, const char *k)
{
	for (; *k; k++) switch (*k) {
		case '\\': fputs("\\\\", f); break;
		case '\t': fputs("\\t", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		default: fputc(*k, f);
		}
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

	L2StreamWriter *w = NULL;
	L2OFile *txt = NULL, *kout = NULL;
	float *all = NULL;
	size_t nall = 0, cap = 0;
	L2StreamHeader first = {0};
	uint64_t total = 0;
	int normalized = 1;
	L2Progress prog;
	l2_progress_start(&prog, "records", "rec", 0);
	if (o.fmt == FMT_TSV && !o.count) txt = l2_ofile_open(o.out, 0);
	if (o.keys_out) kout = l2_ofile_open(o.keys_out, 0);

	/* A stream's NORMALIZED flag must be known before its header is written;
	 * for the l2f output, read each input once to learn it when inputs are
	 * files, and trust the first header when reading standard input. */
	for (int i = 0; i < nin; i++) {
		L2StreamReader *r = l2_stream_open(in[i]);
		const L2StreamHeader *h = l2_stream_header(r);
		if (i == 0) first = *h;
		else if (strcmp(h->kind, first.kind) || h->dim != first.dim || h->k != first.k)
			l2_die("%s: expected %s dim %u (as %s), got %s dim %u", in[i], first.kind, first.dim, in[0], h->kind, h->dim);
		if (o.fmt == FMT_L2F && !w && !o.count) {
			uint32_t flags = first.flags;
			for (int j = 1; j < nin && (flags & L2FS_NORMALIZED); j++) {
				if (!strcmp(in[j], "-")) continue;
				L2StreamReader *p = l2_stream_open(in[j]);
				if (!(l2_stream_header(p)->flags & L2FS_NORMALIZED)) flags &= ~L2FS_NORMALIZED;
				l2_stream_close(p);
			}
			w = l2_stream_create(o.out, first.kind, first.dim, flags, first.k, L2FS_UNTIL_END);
		}
		L2Record rec;
		while (l2_stream_next(r, &rec)) {
			total++;
			l2_progress_add(&prog, 1);
			if (o.count) continue;
			switch (o.fmt) {
			case FMT_L2F:
				if (rec.k) l2_stream_write_neighbors(w, rec.key, rec.vec, rec.k, rec.nkey, rec.nscore, rec.nvec);
				else l2_stream_write_len(w, rec.key, rec.key_len, rec.vec);
				break;
			case FMT_TSV: {
				FILE *f = l2_ofile_fp(txt);
				if (rec.k) {
					for (uint32_t j = 0; j < rec.k; j++) {
						put_key(f, rec.key);
						fprintf(f, "\t%u\t", j + 1);
						put_key(f, rec.nkey[j]);
						fprintf(f, "\t%.9g\n", rec.nscore[j]);
					}
				} else {
					put_key(f, rec.key);
					for (uint32_t j = 0; j < first.dim; j++) fprintf(f, "%c%.9g", j ? ' ' : '\t', rec.vec[j]);
					fputc('\n', f);
				}
				break;
			}
			case FMT_NPY:
				if (nall + 1 > cap) {
					cap = cap ? cap * 2 : 1024;
					all = l2_realloc(all, l2_mul_size(l2_mul_size(cap, first.dim), sizeof(float)));
				}
				memcpy(all + nall * first.dim, rec.vec, first.dim * sizeof(float));
				nall++;
				if (kout) {
					put_key(l2_ofile_fp(kout), rec.key);
					fputc('\n', l2_ofile_fp(kout));
				}
				break;
			}
		}
		if (!l2_stream_normalized(r)) normalized = 0;
		l2_stream_close(r);
	}
	(void)normalized;
	l2_progress_end(&prog);
	if (o.count) {
		printf("%llu\n", (unsigned long long)total);
		return 0;
	}
	if (w) l2_stream_writer_close(w);
	if (txt) l2_ofile_commit(txt);
	if (o.fmt == FMT_NPY && !o.count) {
		size_t shape[2] = {nall, first.dim};
		l2_npy_write(o.out, all, 0, 2, shape);
	}
	if (kout) l2_ofile_commit(kout);
	free(all);
	return 0;
}
