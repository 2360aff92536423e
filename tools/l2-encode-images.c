/* l2-encode-images — CLIP image features of image files.
 *
 *   l2-encode-images -m ViT-B-32.safetensors photos/ > img.l2f
 *   find . -name '*.jpg' | l2-encode-images -m W.safetensors - > img.l2f
 *   l2-encode-images -m W.safetensors --store data.lmdb images/
 *
 * Preprocessing is CLIP's (lib/io/image.h l2_clip_preprocess), the encoder
 * lib/models/clip.c.  Images are read and encoded in rounds of `--batch` per thread,
 * so memory stays flat however many there are.  Output: an image-feature stream
 * (schemas/l2fs.md), L2-normalised unless --raw. */
#include "core/shard.h"
#include "models/clip.h"
#include "method/dataset.h"
#include "core/device.h"
#include "io/image.h"
#include "io/stream.h"
#include "core/parallel.h"
#include "core/util.h"
#include "core/vec.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


typedef struct {
	const char *model, *out, *store, *name;
	int batch, raw, keep_going, has_bg;
	uint8_t bg[3];
	L2Shard shard;
} Options;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: l2-encode-images -m WEIGHTS [options] PATH...\n"
		"CLIP image features of images: PATH is a PNG/JPEG file, a directory (walked recursively,\n"
		"sorted, keys relative to it) or - (image paths, one per line, on standard input).\n"
		"Writes an image-feature stream (schemas/l2fs.md) to standard output.\n\n"
		"  -m, --model FILE       CLIP weights (.safetensors, OpenAI or Hugging Face layout)\n"
		"  -o, --output FILE      write the stream here instead of standard output (atomically)\n"
		"  -b, --batch N          images per forward pass on each thread (default 16)\n"
		"      --raw              do not L2-normalise the features\n"
		"      --store DB         also put the features into the dataset store DB (feature set --name)\n"
		"      --name NAME        feature set name in the store (default image)\n"
		"      --background R,G,B composite transparent images over this colour (default: drop alpha,\n"
		"                         as PIL's convert('RGB'))\n"
		"  -k, --keep-going       skip unreadable images (reported on stderr; exit status 1 at the end)\n"
		"      --shard I/N[:A]    only the images of shard I of N: blocks of A inputs (default 4096)\n"
		"                         dealt round the shards; auto: I/N from Slurm or MPI variables\n"
		"      --threads N        CPU threads (default: all)\n"
		"      --device DEV       cpu (default) or cuda\n"
		"      --progress         progress on stderr even when it is not a terminal\n"
		"      --quiet            no informational messages\n"
		"  -h, --help             this help\n"
		"      --version          print the version\n"
		"See l2-encode-images(1).\n");
}

enum { OPT_RAW = L2_OPT_COMMON_END, OPT_STORE, OPT_NAME, OPT_BG };

static void parse_options(int argc, char **argv, Options *o)
{
	static const struct option longopts[] = {
		L2_COMMON_LONGOPTS,
		L2_DEVICE_LONGOPT,
		{"model", required_argument, 0, 'm'},
		{"output", required_argument, 0, 'o'},
		{"batch", required_argument, 0, 'b'},
		{"keep-going", no_argument, 0, 'k'},
		{"raw", no_argument, 0, OPT_RAW},
		{"store", required_argument, 0, OPT_STORE},
		{"name", required_argument, 0, OPT_NAME},
		{"background", required_argument, 0, OPT_BG},
		L2_SHARD_LONGOPT,
		{0, 0, 0, 0}};
	memset(o, 0, sizeof *o);
	o->out = "-";
	o->batch = 16;
	o->name = "image";
	int c;
	while ((c = getopt_long(argc, argv, "hm:o:b:k", longopts, NULL)) != -1) {
		if (l2_common_option(c, optarg, usage)) continue;
		switch (c) {
		case 'm': o->model = optarg; break;
		case 'o': o->out = optarg; break;
		case 'b': o->batch = (int)l2_parse_long(optarg, "--batch", 1, 4096); break;
		case 'k': o->keep_going = 1; break;
		case OPT_RAW: o->raw = 1; break;
		case OPT_STORE: o->store = optarg; break;
		case OPT_NAME: o->name = optarg; break;
		case OPT_BG: l2_rgb_option(optarg, "--background", usage, o->bg); o->has_bg = 1; break;
		case L2_OPT_SHARD: l2_shard_option(optarg, usage, &o->shard); break;
		default: l2_usage_error(usage, "unknown option");
		}
	}
	if (!o->model) l2_usage_error(usage, "missing -m WEIGHTS");
	if (optind >= argc) l2_usage_error(usage, "no PATH given (a file, a directory, or - for a list on stdin)");
	if (!l2_feature_name_ok(o->name)) l2_usage_error(usage, "invalid --name '%s' (expected [a-z0-9_-]{1,32})", o->name);
}

/* ---- the inputs, one (key, path) at a time ------------------------------------- */

typedef struct {
	char **argv;
	int argc, arg;
	char **dir;       /* listing of the current directory argument */
	size_t ndir, idir;
	const char *root;
	int stdin_used, in_stdin;
	char *line;
	size_t linecap;
	long lineno;
	int keep_going;          /* unreadable subdirectories are skipped ... */
	uint64_t unreadable_dirs; /* ... and counted as failures */
} Inputs;

/* Next input: *key and *path are malloc'd.  0 at the end. */
static int next_input(Inputs *in, char **key, char **path)
{
	for (;;) {
		if (in->dir) {
			if (in->idir < in->ndir) {
				char *rel = in->dir[in->idir++];
				size_t rl = strlen(in->root);
				int slash = rl && in->root[rl - 1] == '/';
				*path = l2_malloc(rl + strlen(rel) + 2);
				sprintf(*path, "%s%s%s", in->root, slash ? "" : "/", rel);
				*key = rel;
				return 1;
			}
			free(in->dir);
			in->dir = NULL;
		}
		if (in->in_stdin) {
			ssize_t n = getline(&in->line, &in->linecap, stdin);
			if (n >= 0) {
				in->lineno++;
				while (n && (in->line[n - 1] == '\n' || in->line[n - 1] == '\r')) in->line[--n] = 0;
				if (!n) continue;
				*key = l2_strdup(in->line);
				*path = l2_strdup(in->line);
				return 1;
			}
			if (ferror(stdin)) l2_die_errno("standard input");
			in->in_stdin = 0;
		}
		if (in->arg >= in->argc) return 0;
		const char *a = in->argv[in->arg++];
		if (!strcmp(a, "-")) {
			if (in->stdin_used) l2_die("-: standard input given twice");
			in->stdin_used = in->in_stdin = 1;
			continue;
		}
		if (l2_is_dir(a)) {
			L2ImageWalk w;
			in->ndir = l2_image_walk(a, &in->dir, &w, in->keep_going);
			in->unreadable_dirs += w.unreadable_dirs;
			in->idir = 0;
			in->root = a;
			if (!in->ndir) l2_warn("%s: no PNG or JPEG images in this directory", a);
			continue;
		}
		struct stat st;
		if (stat(a, &st) != 0) l2_die_errno("%s", a); /* the real reason: ENOENT, ELOOP, EACCES ... */
		*key = l2_strdup(a);
		*path = l2_strdup(a);
		return 1;
	}
}

/* ---- rounds of batches on threads ----------------------------------------------
 *
 * Each round takes up to threads x batch inputs.  Every thread claims a
 * batch of them, decodes and preprocesses its images and encodes them on its
 * own with OpenBLAS on one thread (l2_clip_encode_images_serial): no thread
 * waits for another between GEMMs, and decoding overlaps the others'
 * encoding.  The main thread then writes the round's results in input
 * order. */

typedef struct {
	const L2Clip *m;
	char **path;
	int n, per;       /* inputs in this round, images per batch */
	int next;         /* next input to claim (under lock) */
	pthread_mutex_t lock;
	int *ok;          /* (n) */
	char (*err)[256]; /* (n) */
	float *feat;      /* (n, E) */
	const uint8_t *bg;
	int serial;       /* encode on the worker's thread alone */
} Round;

typedef struct {
	Round *r;
	float *px;        /* (per, 3, R, R) */
	float *f;         /* (per, E) */
} Worker;

static void worker(Worker *w)
{
	Round *r = w->r;
	const L2ClipConfig *cfg = l2_clip_config(r->m);
	size_t sz = (size_t)3 * cfg->res * cfg->res, E = (size_t)cfg->embed;
	int idx[4096];
	for (;;) {
		pthread_mutex_lock(&r->lock);
		int i0 = r->next, n = r->n - i0 < r->per ? r->n - i0 : r->per;
		r->next += n;
		pthread_mutex_unlock(&r->lock);
		if (n <= 0) break;
		int k = 0;
		for (int i = i0; i < i0 + n; i++) {
			r->ok[i] = l2_clip_preprocess(r->path[i], cfg->res, r->bg, w->px + (size_t)k * sz, r->err[i], sizeof r->err[i]) == 0;
			if (r->ok[i]) idx[k++] = i;
		}
		if (!k) continue;
		if (r->serial) l2_clip_encode_images_serial(r->m, w->px, k, w->f);
		else l2_clip_encode_images(r->m, w->px, k, w->f);
		for (int j = 0; j < k; j++) memcpy(r->feat + (size_t)idx[j] * E, w->f + (size_t)j * E, E * sizeof(float));
	}
}

static void worker_main(void *workers, int t) { worker((Worker *)workers + t); }

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	Options o;
	parse_options(argc, argv, &o);
	if (l2_device == L2_DEVICE_CUDA && !l2_cuda_available())
		l2_die("--device cuda: %s", l2_cuda_status());

	L2Clip *m = l2_clip_load(o.model, L2_CLIP_VISION);
	const L2ClipConfig *cfg = l2_clip_config(m);
	int R = cfg->res, E = cfg->embed, B = o.batch;
	size_t sz = (size_t)3 * R * R;
	/* one worker per thread; on CUDA one, whose GEMMs go to the device */
	int nt = l2_device == L2_DEVICE_CUDA ? 1 : (l2_threads > 0 ? l2_threads : 1);
	if (nt > 256) nt = 256;

	L2Dataset *ds = NULL;
	if (o.store) {
		ds = l2_dataset_open(o.store, L2_STORE_CREATE);
		l2_dataset_feature_begin_encoded(ds, o.name, L2_KIND_IMAGE, (uint32_t)E, !o.raw, o.model);
	}
	L2StreamWriter *w = l2_stream_create(o.out, L2_KIND_IMAGE, (uint32_t)E, o.raw ? 0 : L2FS_NORMALIZED, 0, L2FS_UNTIL_END);

	Inputs in = {.argv = argv + optind, .argc = argc - optind, .keep_going = o.keep_going};
	size_t cap = (size_t)nt * B;
	char **keys = l2_calloc(cap, sizeof(char *)), **paths = l2_calloc(cap, sizeof(char *));
	Round r = {.m = m, .path = paths, .bg = o.has_bg ? o.bg : NULL};
	pthread_mutex_init(&r.lock, NULL);
	r.ok = l2_calloc(cap, sizeof(int));
	r.err = l2_calloc(cap, sizeof *r.err);
	r.feat = l2_malloc(l2_mul_size(cap * E, sizeof(float)));
	Worker *wk = l2_calloc((size_t)nt, sizeof *wk);
	for (int t = 0; t < nt; t++) {
		wk[t].r = &r;
		wk[t].px = l2_malloc_aligned(l2_mul_size((size_t)B, sz * sizeof(float)));
		wk[t].f = l2_malloc(l2_mul_size((size_t)B * E, sizeof(float)));
	}
	uint64_t failed = 0, done = 0, pos = 0;
	l2_shard_info(&o.shard);
	L2Progress prog;
	l2_progress_start(&prog, "images", "img", 0);
	for (int more = 1; more;) {
		int n = 0;
		/* an input's position (files, listed directories, lines of -, in order) picks its shard,
		 * so an unreadable image skipped by --keep-going moves no other image */
		while ((size_t)n < cap && (more = next_input(&in, &keys[n], &paths[n]))) {
			uint64_t p = pos++;
			if (!l2_shard_has(&o.shard, p)) {
				free(keys[n]), free(paths[n]);
				continue;
			}
			n++;
			/* rounds never straddle a block: a shard's batches are the plain run's,
			 * image for image (a batch's make-up changes a feature's last bits) */
			if (l2_shard_block_end(&o.shard, p)) break;
		}
		if (!n) break;
		/* a short round is spread over every thread */
		int per = (n + nt - 1) / nt;
		r.n = n;
		r.per = per < B ? per : B;
		r.next = 0;
		int nw = (n + r.per - 1) / r.per;
		if (nw == 1) {
			/* one batch: all threads on it */
			r.serial = 0;
			worker(&wk[0]);
		} else {
			r.serial = 1;
			l2_parallel_workers(nw, worker_main, wk);
		}
		for (int i = 0; i < n; i++) {
			if (!r.ok[i]) {
				if (!o.keep_going) l2_die("%s: %s", paths[i], r.err[i]);
				l2_warn("%s: %s (skipped)", paths[i], r.err[i]);
				failed++;
				continue;
			}
			float *f = r.feat + (size_t)i * E;
			if (l2_first_nonfinite(f, (size_t)E) >= 0)
				l2_die("%s: the model gave a feature with NaN or infinity for %s: are its weights damaged?",
				       o.model, paths[i]);
			if (!o.raw) l2_normalize_rows(f, 1, (size_t)E);
			l2_stream_write(w, keys[i], f);
			if (ds) l2_dataset_put_feature(ds, o.name, keys[i], f);
			done++;
		}
		l2_progress_add(&prog, (uint64_t)n);
		for (int i = 0; i < n; i++) {
			free(keys[i]);
			free(paths[i]);
		}
	}
	l2_progress_end(&prog);
	l2_stream_writer_close(w);
	if (ds) {
		l2_dataset_feature_end(ds, o.name, !o.raw);
		l2_dataset_close(ds);
	}
	if (failed) l2_warn("%llu image(s) could not be read; %llu encoded", (unsigned long long)failed, (unsigned long long)done);
	if (in.unreadable_dirs)
		l2_warn("%llu unreadable director%s skipped", (unsigned long long)in.unreadable_dirs,
			in.unreadable_dirs == 1 ? "y" : "ies");
	free(in.line);
	free(keys);
	free(paths);
	for (int t = 0; t < nt; t++) {
		l2_free_aligned(wk[t].px);
		free(wk[t].f);
	}
	free(wk);
	free(r.ok);
	free(r.err);
	free(r.feat);
	pthread_mutex_destroy(&r.lock);
	l2_clip_free(m);
	return failed || in.unreadable_dirs ? L2_EXIT_FAIL : 0;
}
