/* l2-sample — images from text with a generator l2-train-gan wrote.
 *
 *   l2-sample -m run/G_ema.safetensors --clip clip.safetensors --prompt "a red heart" --grid out.png
 *   l2-sample -m G.safetensors --prompts prompts.txt --clip clip.safetensors -n 4 -o samples/
 *   l2-encode-text ... | l2-sample -m G.safetensors --grid out.png      (a feature stream)
 *
 * Conditions: prompts encoded with lib/models/clip.h + lib/text/clip_tokenizer.h, or the vectors of
 * a text-feature / pseudo-text-feature stream (schemas/l2fs.md); each is
 * L2-normalised.  --retrieve INDEX mixes each condition with the mean of its
 * k nearest caption features (METHOD §3 item 4).  Image j of condition i
 * uses z and noise from the seed stream (seed, i * n + j): deterministic. */
#include "text/clip_tokenizer.h"
#include "models/clip.h"
#include "models/gan.h"
#include "io/image.h"
#include "method/index.h"
#include "io/stream.h"
#include "core/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	const char *model, *clip, *vocab, *prompts, *grid, *outdir, *retrieve, *input;
	const char **prompt;
	int nprompt, n, k, cols, labels;
	double psi, alpha;
	uint64_t seed;
} Options;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: l2-sample -m G.safetensors (--prompt TEXT... | --prompts FILE | [STREAM]) [options]\n"
		"Generate images with a generator from l2-train-gan, conditioned on CLIP text features:\n"
		"prompts encoded with --clip, or the vectors of a feature stream (default: standard input).\n\n"
		"  -m, --model FILE         G.safetensors or G_ema.safetensors of an l2-train-gan run\n"
		"  -p, --prompt TEXT        a prompt (repeatable)\n"
		"      --prompts FILE       prompts, one per line (empty lines skipped)\n"
		"      --clip WEIGHTS       CLIP weights that encode the prompts (l2-encode-text's file)\n"
		"      --vocab FILE         BPE vocabulary (default: found beside WEIGHTS, as l2-encode-text)\n"
		"  -n, --count N            images per condition (default 4)\n"
		"      --seed N             (default 0)\n"
		"      --truncation PSI     w = w_avg + PSI (w - w_avg) (default 1)\n"
		"      --retrieve INDEX     mix each condition with its retrieved caption features (l2-build-index)\n"
		"      --retrieve-k K       neighbours to mix (default 5)\n"
		"      --retrieve-weight A  h = normalize((1 - A) h + A mean(neighbours)) (default 0.5)\n"
		"      --grid OUT.png       one PNG: a row per condition, n columns\n"
		"  -o, --output DIR         one PNG per image: DIR/COND-IMAGE.png (0-based, 4 and 2 digits)\n"
		"      --threads N --quiet --progress\n"
		"  -h, --help               this help\n"
		"      --version            print the version\n"
		"See l2-sample(1).\n");
}

enum { O_PROMPTS = L2_OPT_COMMON_END, O_CLIP, O_VOCAB, O_SEED, O_PSI, O_RET, O_RETK, O_RETA, O_GRID };

static void parse_options(int argc, char **argv, Options *o)
{
	static const struct option lo[] = {
		L2_COMMON_LONGOPTS,
		{"model", required_argument, 0, 'm'}, {"prompt", required_argument, 0, 'p'},
		{"prompts", required_argument, 0, O_PROMPTS}, {"clip", required_argument, 0, O_CLIP},
		{"vocab", required_argument, 0, O_VOCAB}, {"count", required_argument, 0, 'n'},
		{"seed", required_argument, 0, O_SEED}, {"truncation", required_argument, 0, O_PSI},
		{"retrieve", required_argument, 0, O_RET}, {"retrieve-k", required_argument, 0, O_RETK},
		{"retrieve-weight", required_argument, 0, O_RETA}, {"grid", required_argument, 0, O_GRID},
		{"output", required_argument, 0, 'o'}, {0, 0, 0, 0}};
	memset(o, 0, sizeof *o);
	o->n = 4, o->psi = 1, o->k = 5, o->alpha = 0.5;
	o->prompt = l2_malloc(argc * sizeof(char *));
	int ch;
	while ((ch = getopt_long(argc, argv, "hm:p:n:o:", lo, NULL)) != -1) {
		if (l2_common_option(ch, optarg, usage)) continue;
		switch (ch) {
		case 'm': o->model = optarg; break;
		case 'p': o->prompt[o->nprompt++] = optarg; break;
		case O_PROMPTS: o->prompts = optarg; break;
		case O_CLIP: o->clip = optarg; break;
		case O_VOCAB: o->vocab = optarg; break;
		case 'n': o->n = (int)l2_parse_long(optarg, "--count", 1, 1 << 16); break;
		case O_SEED: o->seed = l2_parse_u64(optarg, "--seed"); break;
		case O_PSI: o->psi = l2_parse_double(optarg, "--truncation"); break;
		case O_RET: o->retrieve = optarg; break;
		case O_RETK: o->k = (int)l2_parse_long(optarg, "--retrieve-k", 1, 1 << 16); break;
		case O_RETA: o->alpha = l2_parse_double(optarg, "--retrieve-weight"); break;
		case O_GRID: o->grid = optarg; break;
		case 'o': o->outdir = optarg; break;
		default: l2_usage_error(usage, "unknown option");
		}
	}
	if (!o->model) l2_usage_error(usage, "give the generator with -m FILE");
	if (o->nprompt || o->prompts) {
		if (optind < argc) l2_usage_error(usage, "a stream argument and prompts are exclusive");
		if (o->nprompt && o->prompts) l2_usage_error(usage, "--prompt and --prompts are exclusive");
		if (!o->clip) l2_usage_error(usage, "prompts need --clip WEIGHTS to encode them");
	} else {
		if (argc - optind > 1) l2_usage_error(usage, "unexpected argument '%s'", argv[optind + 1]);
		o->input = optind < argc ? argv[optind] : "-";
	}
	if (!o->grid == !o->outdir) l2_usage_error(usage, "give one of --grid OUT.png or -o DIR");
	if (!isfinite(o->psi)) l2_usage_error(usage, "--truncation must be finite");
	if (!(o->alpha >= 0 && o->alpha <= 1)) l2_usage_error(usage, "--retrieve-weight must be in [0, 1]");
}

static void normalize(float *v, int d)
{
	double s = 0;
	for (int i = 0; i < d; i++) s += (double)v[i] * v[i];
	s = sqrt(s);
	if (s > 0)
		for (int i = 0; i < d; i++) v[i] = (float)(v[i] / s);
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	Options o;
	parse_options(argc, argv, &o);
	L2GanG *G = l2_gan_g_load(o.model);
	const L2GanConfig *c = l2_gan_g_config(G);
	int dim = c->cdim, R = c->res;

	/* conditions */
	int nc = 0, cap = 16;
	float *h = l2_malloc((size_t)cap * dim * sizeof(float));
	char **label = l2_malloc(cap * sizeof(char *));
	if (o.input) {
		L2StreamReader *r = l2_stream_open(o.input);
		const L2StreamHeader *hd = l2_stream_header(r);
		if (strcmp(hd->kind, "text-feature") && strcmp(hd->kind, "pseudo-text-feature") && strcmp(hd->kind, "image-feature"))
			l2_die("%s: a '%s' stream; l2-sample wants text-feature or pseudo-text-feature vectors", l2_stream_name(r), hd->kind);
		if ((int)hd->dim != dim)
			l2_die("%s: %u-dimensional features; %s was trained on %d", l2_stream_name(r), hd->dim, o.model, dim);
		L2Record rec;
		while (l2_stream_next(r, &rec)) {
			if (nc == cap) cap *= 2, h = l2_realloc(h, (size_t)cap * dim * sizeof(float)), label = l2_realloc(label, cap * sizeof(char *));
			memcpy(h + (size_t)nc * dim, rec.vec, dim * sizeof(float));
			label[nc++] = l2_strdup(rec.key);
		}
		l2_stream_close(r);
	} else {
		if (o.prompts) {
			size_t len;
			char *buf = l2_read_file(o.prompts, &len);
			for (char *s = buf, *e; s < buf + len; s = e + 1) {
				e = memchr(s, '\n', buf + len - s);
				if (!e) e = buf + len;
				*e = 0;
				if (e > s && e[-1] == '\r') e[-1] = 0;
				if (!*s) continue;
				if (nc == cap) cap *= 2, label = l2_realloc(label, cap * sizeof(char *));
				label[nc++] = l2_strdup(s);
			}
			free(buf);
			if (!nc) l2_die("%s: no prompts", o.prompts);
		} else {
			for (int i = 0; i < o.nprompt; i++) {
				if (nc == cap) cap *= 2, label = l2_realloc(label, cap * sizeof(char *));
				label[nc++] = l2_strdup(o.prompt[i]);
			}
		}
		h = l2_realloc(h, (size_t)nc * dim * sizeof(float));
		L2Clip *m = l2_clip_load(o.clip, L2_CLIP_TEXT);
		const L2ClipConfig *cc = l2_clip_config(m);
		if (cc->tembed != dim) l2_die("%s: text features have %d dimensions; %s was trained on %d", o.clip, cc->tembed, o.model, dim);
		char *vp = l2_tok_find_vocab(o.vocab, o.clip);
		L2Tokenizer *tok = l2_tok_load(vp);
		int32_t *ids = l2_malloc((size_t)cc->context * sizeof(int32_t));
		for (int i = 0; i < nc; i++) {
			if (l2_tok_tokenize(tok, label[i], strlen(label[i]), cc->context, ids) < 0)
				l2_die("%s: prompt '%s' is not valid UTF-8", o.prompts ? o.prompts : "--prompt", label[i]);
			l2_clip_encode_text(m, ids, 1, h + (size_t)i * dim);
		}
		free(ids), free(vp);
		l2_tok_free(tok);
		l2_clip_free(m);
	}
	if (!nc) l2_die("%s: no conditions", o.input);
	for (int i = 0; i < nc; i++) normalize(h + (size_t)i * dim, dim);
	if (o.retrieve) {
		L2Index *ix = l2_index_open(o.retrieve);
		if ((int)l2_index_dim(ix) != dim) l2_die("%s: %u-dimensional index; the conditions have %d", o.retrieve, l2_index_dim(ix), dim);
		uint32_t k = (uint32_t)o.k;
		if (k > l2_index_count(ix)) k = (uint32_t)l2_index_count(ix);
		uint64_t *ids = l2_malloc((size_t)nc * k * sizeof(uint64_t));
		float *sc = l2_malloc((size_t)nc * k * sizeof(float)), *v = l2_malloc(dim * sizeof(float));
		double *mean = l2_malloc(dim * sizeof(double));
		l2_index_search(ix, h, nc, k, 0, ids, sc);
		for (int i = 0; i < nc; i++) {
			memset(mean, 0, dim * sizeof(double));
			for (uint32_t j = 0; j < k; j++) {
				l2_index_vector(ix, ids[(size_t)i * k + j], v);
				normalize(v, dim);
				for (int d = 0; d < dim; d++) mean[d] += v[d] / k;
			}
			float *hi = h + (size_t)i * dim;
			for (int d = 0; d < dim; d++) hi[d] = (float)((1 - o.alpha) * hi[d] + o.alpha * mean[d]);
			normalize(hi, dim);
		}
		free(ids), free(sc), free(v), free(mean);
		l2_index_close(ix);
	}

	/* images */
	AdGraph *g = ad_graph_new();
	ad_graph_set_grad(g, 0);
	float *z = l2_malloc((size_t)c->zdim * sizeof(float));
	int total = nc * o.n;
	L2Image *tiles = l2_calloc(total, sizeof(L2Image));
	L2Progress pr;
	l2_progress_start(&pr, "sampling", "images", (uint64_t)total);
	if (o.outdir) l2_mkdir_p(o.outdir);
	for (int i = 0; i < nc; i++)
		for (int j = 0; j < o.n; j++) {
			L2Rng r;
			l2_rng_init(&r, o.seed, (uint64_t)i * o.n + j);
			l2_rng_fill_normal(&r, z, c->zdim, 0, 1);
			ad_graph_reset(g);
			AdTensor *Z = ad_input(g, 2, (int[]){1, c->zdim}, z), *H = ad_input(g, 2, (int[]){1, dim}, h + (size_t)i * dim);
			AdTensor *x = l2_gan_g_forward(g, G, Z, H, o.psi, &r, 0);
			L2Image *t = &tiles[i * o.n + j];
			l2_image_from_chw(x->v, R, R, -1, 1, t);
			if (o.outdir) {
				char name[64];
				snprintf(name, sizeof name, "/%04d-%02d.png", i, j);
				char *p = l2_malloc(strlen(o.outdir) + sizeof name);
				sprintf(p, "%s%s", o.outdir, name);
				l2_image_save_png(p, t);
				free(p);
			}
			l2_progress_add(&pr, 1);
		}
	l2_progress_end(&pr);
	if (o.grid) {
		L2Image grid;
		const uint8_t bg[3] = {255, 255, 255};
		l2_image_grid(tiles, total, o.n, 2, bg, &grid);
		l2_image_save_png(o.grid, &grid);
		l2_image_free(&grid);
	}
	if (o.outdir) {
		/* the conditions, in order: what each row / file prefix shows */
		char *p = l2_malloc(strlen(o.outdir) + 16);
		sprintf(p, "%s/prompts.txt", o.outdir);
		L2OFile *f = l2_ofile_open(p, 0);
		for (int i = 0; i < nc; i++) fprintf(l2_ofile_fp(f), "%04d\t%s\n", i, label[i]);
		l2_ofile_commit(f);
		free(p);
	}
	if (!l2_quiet) l2_info("%d images for %d conditions -> %s", total, nc, o.grid ? o.grid : o.outdir);
	for (int i = 0; i < total; i++) l2_image_free(&tiles[i]);
	for (int i = 0; i < nc; i++) free(label[i]);
	free(tiles), free(label), free(h), free(z), free(o.prompt);
	ad_graph_free(g);
	l2_gan_g_free(G);
	return 0;
}
