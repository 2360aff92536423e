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
#include "core/util.h"
#include "io/image.h"
#include "method/generate.h"
#include "models/gan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	const char *model, *clip, *vocab, *prompts, *grid, *outdir, *retrieve, *input;
	char **prompt;
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
		"      --vocab FILE         BPE vocabulary (default: as l2-encode-text finds it)\n"
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

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	Options o;
	parse_options(argc, argv, &o);
	L2GanG *G = l2_gan_g_load(o.model);
	const L2GanConfig *gc = l2_gan_g_config(G);
	int R = gc->res;
	size_t e = (size_t)3 * R * R;

	L2Conditions c;
	if (o.input) l2_conditions_from_stream(&c, o.input, gc->cdim, o.model);
	else {
		int np = o.nprompt;
		char **text = o.prompt;
		if (o.prompts) text = l2_prompts_read(o.prompts, &np);
		l2_conditions_from_prompts(&c, text, np, o.clip, o.vocab, gc->cdim, o.model, o.prompts ? o.prompts : "--prompt");
		if (o.prompts) {
			for (int i = 0; i < np; i++) free(text[i]);
			free(text);
		}
	}
	if (o.retrieve) l2_conditions_retrieve(&c, o.retrieve, o.k, o.alpha);

	/* images, in chunks so that files appear as they are made */
	int total = c.n * o.n, chunk = 64;
	L2Image *tiles = l2_calloc(total, sizeof(L2Image));
	float *x = l2_malloc((size_t)chunk * e * sizeof(float));
	L2Progress pr;
	l2_progress_start(&pr, "sampling", "images", (uint64_t)total);
	if (o.outdir) l2_mkdir_p(o.outdir);
	for (int first = 0; first < total; first += chunk) {
		int m = total - first < chunk ? total - first : chunk;
		l2_generate_gan(G, &c, o.n, o.seed, o.psi, first, m, x);
		for (int k = first; k < first + m; k++) {
			L2Image *t = &tiles[k];
			l2_image_from_chw(x + (size_t)(k - first) * e, R, R, -1, 1, t);
			if (o.outdir) {
				char name[64];
				snprintf(name, sizeof name, "/%04d-%02d.png", k / o.n, k % o.n);
				char *p = l2_malloc(strlen(o.outdir) + sizeof name);
				sprintf(p, "%s%s", o.outdir, name);
				l2_image_save_png(p, t);
				free(p);
			}
		}
		l2_progress_add(&pr, (uint64_t)m);
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
		for (int i = 0; i < c.n; i++) fprintf(l2_ofile_fp(f), "%04d\t%s\n", i, c.label[i]);
		l2_ofile_commit(f);
		free(p);
	}
	if (!l2_quiet) l2_info("%d images for %d conditions -> %s", total, c.n, o.grid ? o.grid : o.outdir);
	for (int i = 0; i < total; i++) l2_image_free(&tiles[i]);
	free(tiles), free(x), free(o.prompt);
	l2_conditions_free(&c);
	l2_gan_g_free(G);
	return 0;
}
