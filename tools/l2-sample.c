/* l2-sample — images from text with a generator l2-train-gan or
 * l2-train-diffusion wrote.
 *
 *   l2-sample -m run/G_ema.safetensors --clip clip.safetensors --prompt "a red heart" --grid out.png
 *   l2-sample -m run/model_ema-0.100.safetensors --prompts prompts.txt --clip clip.safetensors -n 4 -o samples/
 *   l2-encode-text ... | l2-sample -m model.safetensors --guidance 2 --grid out.png      (a feature stream)
 *
 * The model's kind comes from its metadata (lib/method/generate.h); options
 * of the other kind are refused.  Conditions: prompts encoded with CLIP, or
 * the vectors of a text-feature / pseudo-text-feature stream, unit-normalised;
 * --retrieve INDEX mixes each with the mean of its k nearest caption features
 * (METHOD §3 item 4).  Diffusion models are sampled by lib/models/sampler.h
 * (schedule, sampler, guidance).  Image j of condition i draws all its
 * randomness from the seed stream (seed, i * n + j): deterministic, and
 * independent of --batch and --threads. */
#include "core/util.h"
#include "io/image.h"
#include "method/generate.h"
#include "method/latents.h"
#include "models/diffusion.h"
#include "models/gan.h"
#include "models/sampler.h"
#include "models/vae.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
	O_PROMPTS = L2_OPT_COMMON_END, O_CLIP, O_VOCAB, O_SEED, O_PSI, O_RET, O_RETK, O_RETA, O_GRID,
	O_SAMPLER, O_STEPS, O_SCHEDULE, O_SMIN, O_SMAX, O_RHO, O_CHURN, O_SCHURN_MIN, O_SCHURN_MAX, O_SNOISE, O_ETA,
	O_GUIDANCE, O_INTERVAL, O_GUIDE, O_CLAMP, O_X0GRID, O_BATCH, O_VAE, O_END
};

typedef struct {
	const char *model, *clip, *vocab, *prompts, *grid, *outdir, *retrieve, *input, *guide, *x0grid, *vae;
	char **prompt;
	int nprompt, n, k;
	double psi, alpha;
	L2SampleConfig sc;     /* diffusion: schedule, sampler, guidance, seed, batch */
	unsigned char given[O_END]; /* options that appeared on the command line */
} Options;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: l2-sample -m MODEL.safetensors (--prompt TEXT... | --prompts FILE | [STREAM]) [options]\n"
		"Generate images with a generator from l2-train-gan or l2-train-diffusion, conditioned on CLIP text\n"
		"features: prompts encoded with --clip, or the vectors of a feature stream (default: standard input).\n\n"
		"  -m, --model FILE         generator weights: G / G_ema of l2-train-gan, model*.safetensors of\n"
		"                           l2-train-diffusion (the kind is read from the file)\n"
		"  -p, --prompt TEXT        a prompt (repeatable)\n"
		"      --prompts FILE       prompts, one per line (empty lines skipped)\n"
		"      --clip WEIGHTS       CLIP weights that encode the prompts (l2-encode-text's file)\n"
		"      --vocab FILE         BPE vocabulary (default: as l2-encode-text finds it)\n"
		"  -n, --count N            images per condition (default 4)\n"
		"      --seed N             (default 0)\n"
		"      --retrieve INDEX     mix each condition with its retrieved caption features (l2-build-index)\n"
		"      --retrieve-k K       neighbours to mix (default 5)\n"
		"      --retrieve-weight A  h = normalize((1 - A) h + A mean(neighbours)) (default 0.5)\n"
		"      --grid OUT.png       one PNG: a row per condition, n columns\n"
		"  -o, --output DIR         one PNG per image: DIR/COND-IMAGE.png (0-based, 4 and 2 digits)\n"
		"GAN models:\n"
		"      --truncation PSI     w = w_avg + PSI (w - w_avg) (default 1)\n"
		"diffusion models:\n"
		"      --sampler NAME       " L2_SAMPLER_NAMES " (default dpmpp-2m)\n"
		"      --steps N            noise levels before 0 (default 16)\n"
		"      --schedule NAME      karras or exponential (default karras)\n"
		"      --sigma-min S --sigma-max S   the schedule's ends (default 0.002, 80)\n"
		"      --rho R              karras: the schedule's curvature (default 7)\n"
		"      --churn S            heun: EDM's S_churn, fresh noise each step (default 0)\n"
		"      --s-min S --s-max S  heun: the noise levels that churn (default 0, inf)\n"
		"      --s-noise S          heun, euler-a, dpmpp-2m-sde: scale of the fresh noise (default 1)\n"
		"      --eta E              euler-a, dpmpp-2m-sde: share of fresh noise per step (default 1)\n"
		"      --guidance W         classifier-free guidance D_u + W (D_c - D_u) (default 1.5; 1 = none)\n"
		"      --guidance-interval LO,HI   guide only at noise levels in (LO, HI] (default everywhere)\n"
		"      --guide-model FILE   autoguidance: D_g of this (weaker) model in place of D_u\n"
		"      --clamp-x0           clip each step's denoised estimate to [-1, 1]\n"
		"      --x0-grid OUT.png    each step's denoised estimate: a row per image, a column per step\n"
		"      --batch N            images sampled together (default 32; output does not depend on it)\n"
		"      --vae FILE           latent models: decode with this VAE (one file, or ENCODER,DECODER); its\n"
		"                           SHA-256 must be the one the model's latents were made with\n"
		"      --threads N --quiet --progress\n"
		"  -h, --help               this help\n"
		"      --version            print the version\n"
		"See l2-sample(1).\n");
}

static const struct option longopts[] = {
	L2_COMMON_LONGOPTS,
	{"model", required_argument, 0, 'm'}, {"prompt", required_argument, 0, 'p'},
	{"prompts", required_argument, 0, O_PROMPTS}, {"clip", required_argument, 0, O_CLIP},
	{"vocab", required_argument, 0, O_VOCAB}, {"count", required_argument, 0, 'n'},
	{"seed", required_argument, 0, O_SEED}, {"truncation", required_argument, 0, O_PSI},
	{"retrieve", required_argument, 0, O_RET}, {"retrieve-k", required_argument, 0, O_RETK},
	{"retrieve-weight", required_argument, 0, O_RETA}, {"grid", required_argument, 0, O_GRID},
	{"output", required_argument, 0, 'o'},
	{"sampler", required_argument, 0, O_SAMPLER}, {"steps", required_argument, 0, O_STEPS},
	{"schedule", required_argument, 0, O_SCHEDULE}, {"sigma-min", required_argument, 0, O_SMIN},
	{"sigma-max", required_argument, 0, O_SMAX}, {"rho", required_argument, 0, O_RHO},
	{"churn", required_argument, 0, O_CHURN}, {"s-min", required_argument, 0, O_SCHURN_MIN},
	{"s-max", required_argument, 0, O_SCHURN_MAX}, {"s-noise", required_argument, 0, O_SNOISE},
	{"eta", required_argument, 0, O_ETA}, {"guidance", required_argument, 0, O_GUIDANCE},
	{"guidance-interval", required_argument, 0, O_INTERVAL}, {"guide-model", required_argument, 0, O_GUIDE},
	{"clamp-x0", no_argument, 0, O_CLAMP}, {"x0-grid", required_argument, 0, O_X0GRID},
	{"batch", required_argument, 0, O_BATCH}, {"vae", required_argument, 0, O_VAE}, {0, 0, 0, 0}};

/* "--name" of an option code, for messages */
static const char *flag(int code)
{
	static char buf[64];
	for (const struct option *p = longopts; p->name; p++)
		if (p->val == code) return snprintf(buf, sizeof buf, "--%s", p->name), buf;
	return "?";
}

static void parse_options(int argc, char **argv, Options *o)
{
	memset(o, 0, sizeof *o);
	o->n = 4, o->psi = 1, o->k = 5, o->alpha = 0.5;
	l2_sample_config_defaults(&o->sc);
	o->sc.guidance.w = 1.5;
	o->prompt = l2_malloc(argc * sizeof(char *));
	int ch;
	while ((ch = getopt_long(argc, argv, "hm:p:n:o:", longopts, NULL)) != -1) {
		if (l2_common_option(ch, optarg, usage)) continue;
		if (ch >= O_PROMPTS && ch < O_END) o->given[ch] = 1;
		switch (ch) {
		case 'm': o->model = optarg; break;
		case 'p': o->prompt[o->nprompt++] = optarg; break;
		case O_PROMPTS: o->prompts = optarg; break;
		case O_CLIP: o->clip = optarg; break;
		case O_VOCAB: o->vocab = optarg; break;
		case 'n': o->n = (int)l2_parse_long(optarg, "--count", 1, 1 << 16); break;
		case O_SEED: o->sc.seed = l2_parse_u64(optarg, "--seed"); break;
		case O_PSI: o->psi = l2_parse_double(optarg, "--truncation"); break;
		case O_RET: o->retrieve = optarg; break;
		case O_RETK: o->k = (int)l2_parse_long(optarg, "--retrieve-k", 1, 1 << 16); break;
		case O_RETA: o->alpha = l2_parse_double(optarg, "--retrieve-weight"); break;
		case O_GRID: o->grid = optarg; break;
		case 'o': o->outdir = optarg; break;
		case O_SAMPLER: {
			int s = l2_sampler_parse(optarg);
			if (s < 0) l2_die("invalid value for --sampler: '%s' (expected one of " L2_SAMPLER_NAMES ")", optarg);
			o->sc.sampler.kind = (L2SamplerKind)s;
			break;
		}
		case O_STEPS: o->sc.steps = (int)l2_parse_long(optarg, "--steps", 1, 100000); break;
		case O_SCHEDULE: {
			int s = l2_schedule_parse(optarg);
			if (s < 0) l2_die("invalid value for --schedule: '%s' (expected karras or exponential)", optarg);
			o->sc.schedule.kind = (L2ScheduleKind)s;
			break;
		}
		case O_SMIN: o->sc.schedule.sigma_min = l2_parse_double(optarg, "--sigma-min"); break;
		case O_SMAX: o->sc.schedule.sigma_max = l2_parse_double(optarg, "--sigma-max"); break;
		case O_RHO: o->sc.schedule.rho = l2_parse_double(optarg, "--rho"); break;
		case O_CHURN: o->sc.sampler.churn = l2_parse_double(optarg, "--churn"); break;
		case O_SCHURN_MIN: o->sc.sampler.s_min = l2_parse_double(optarg, "--s-min"); break;
		case O_SCHURN_MAX: o->sc.sampler.s_max = l2_parse_double(optarg, "--s-max"); break;
		case O_SNOISE: o->sc.sampler.s_noise = l2_parse_double(optarg, "--s-noise"); break;
		case O_ETA: o->sc.sampler.eta = l2_parse_double(optarg, "--eta"); break;
		case O_GUIDANCE: o->sc.guidance.w = l2_parse_double(optarg, "--guidance"); break;
		case O_INTERVAL:
			if (l2_guidance_parse_interval(optarg, &o->sc.guidance.lo, &o->sc.guidance.hi))
				l2_die("invalid value for --guidance-interval: '%s' (expected LO,HI with 0 <= LO < HI)", optarg);
			break;
		case O_GUIDE: o->guide = optarg; break;
		case O_CLAMP: o->sc.guidance.clamp_x0 = 1; break;
		case O_X0GRID: o->x0grid = optarg; break;
		case O_BATCH: o->sc.batch = (int)l2_parse_long(optarg, "--batch", 1, 1 << 16); break;
		case O_VAE: o->vae = optarg; break;
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
	if (!(o->alpha >= 0 && o->alpha <= 1)) l2_usage_error(usage, "--retrieve-weight must be in [0, 1]");
	/* values the sampler checks as a whole: one line naming the problem */
	const char *bad = l2_schedule_check(&o->sc.schedule);
	if (bad) l2_die("invalid schedule: %s", bad);
	if ((bad = l2_sampler_check(&o->sc.sampler))) l2_die("invalid sampler options: %s", bad);
	o->sc.guidance.autoguide = o->guide != NULL;
}

/* Options of the other model kind, and sampler options the chosen sampler,
 * schedule or guidance would ignore, are refused rather than ignored. */
static void check_applicable(const Options *o, L2GenKind kind)
{
	static const int gan_only[] = {O_PSI};
	static const int diffusion_only[] = {O_SAMPLER, O_STEPS, O_SCHEDULE, O_SMIN, O_SMAX, O_RHO, O_CHURN,
					     O_SCHURN_MIN, O_SCHURN_MAX, O_SNOISE, O_ETA, O_GUIDANCE, O_INTERVAL,
					     O_GUIDE, O_CLAMP, O_X0GRID, O_BATCH, O_VAE};
	const char *what = kind == L2_GEN_DIFFUSION ? "a diffusion model" : "a GAN generator";
	for (size_t i = 0; i < sizeof gan_only / sizeof *gan_only; i++)
		if (kind != L2_GEN_GAN && o->given[gan_only[i]])
			l2_usage_error(NULL, "%s applies to GAN generators; %s is %s", flag(gan_only[i]), o->model, what);
	for (size_t i = 0; i < sizeof diffusion_only / sizeof *diffusion_only; i++)
		if (kind != L2_GEN_DIFFUSION && o->given[diffusion_only[i]])
			l2_usage_error(NULL, "%s applies to diffusion models; %s is %s", flag(diffusion_only[i]), o->model, what);
	if (kind != L2_GEN_DIFFUSION) return;
	L2SamplerKind s = o->sc.sampler.kind;
	const char *sn = l2_sampler_name(s);
	int heun = s == L2_SAMPLER_HEUN, ancestral = s == L2_SAMPLER_EULER_A || s == L2_SAMPLER_DPMPP_2M_SDE;
	if (o->given[O_ETA] && !ancestral) l2_usage_error(NULL, "--eta applies to euler-a and dpmpp-2m-sde, not %s", sn);
	for (int c = O_CHURN; c <= O_SCHURN_MAX; c++)
		if (o->given[c] && !heun) l2_usage_error(NULL, "%s applies to heun, not %s", flag(c), sn);
	if ((o->given[O_SCHURN_MIN] || o->given[O_SCHURN_MAX]) && o->sc.sampler.churn == 0)
		l2_usage_error(NULL, "--s-min and --s-max bound the churn: give --churn S too");
	if (o->given[O_SNOISE] && !heun && !ancestral)
		l2_usage_error(NULL, "--s-noise applies to heun, euler-a and dpmpp-2m-sde, not %s", sn);
	if (o->given[O_SNOISE] && heun && o->sc.sampler.churn == 0)
		l2_usage_error(NULL, "--s-noise scales heun's churn: give --churn S too");
	if (o->given[O_RHO] && o->sc.schedule.kind != L2_SCHEDULE_KARRAS)
		l2_usage_error(NULL, "--rho applies to the karras schedule");
	if (o->sc.guidance.w == 1 && (o->given[O_INTERVAL] || o->given[O_GUIDE]))
		l2_usage_error(NULL, "%s has no effect at --guidance 1", flag(o->given[O_INTERVAL] ? O_INTERVAL : O_GUIDE));
}

/* --x0-grid: each step's denoised estimate as a tile, kept as 8-bit images (a latent
 * model's estimates decoded by its VAE) */
typedef struct {
	L2Image *tiles; /* (images, steps + 1) */
	int steps, res;
	const L2Vae *vae; /* latent models */
	int lat;          /* their latent side */
} X0Grid;

static void keep_x0(void *ctx, int step, double sigma, int first, int n, size_t e, const double *x0)
{
	X0Grid *g = ctx;
	float *f = l2_malloc(e * sizeof(float)), *img = g->vae ? l2_malloc((size_t)3 * g->res * g->res * sizeof(float)) : NULL;
	for (int k = 0; k < n; k++) {
		for (size_t j = 0; j < e; j++) f[j] = (float)x0[(size_t)k * e + j];
		if (g->vae) l2_vae_decode(g->vae, f, 1, g->lat, g->lat, img);
		l2_image_from_chw(g->vae ? img : f, g->res, g->res, -1, 1, &g->tiles[(size_t)(first + k) * (g->steps + 1) + step]);
	}
	free(f), free(img);
}

static char *join(const char *dir, const char *name)
{
	char *p = l2_malloc(strlen(dir) + strlen(name) + 2);
	sprintf(p, "%s/%s", dir, name);
	return p;
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	Options o;
	parse_options(argc, argv, &o);
	L2GenKind kind = l2_generator_kind(o.model);
	check_applicable(&o, kind);

	L2GanG *G = NULL;
	L2DiffusionModel *dm = NULL, *guide = NULL;
	L2Vae *vae = NULL;
	int R, dim, lat = 0; /* lat: a latent model's latent side (its images are R = lat x factor) */
	size_t ez = 0;       /* values of one sample the sampler draws */
	if (kind == L2_GEN_GAN) {
		G = l2_gan_g_load(o.model);
		R = l2_gan_g_config(G)->res, dim = l2_gan_g_config(G)->cdim;
	} else {
		dm = l2_diffusion_load(o.model);
		const L2DiffusionConfig *dc = l2_diffusion_model_config(dm);
		const char *lj = l2_diffusion_model_latent(dm);
		R = dc->res, dim = dc->cdim, ez = (size_t)dc->cimg * dc->res * dc->res;
		if (lj) {
			/* a latent model: decode with the VAE its latents came from, and no other */
			L2LatentInfo li;
			char err[200];
			if (l2_latents_info_parse(lj, &li, err, sizeof err)) l2_die("%s: metadata l2.latent: %s", o.model, err);
			if (!o.vae)
				l2_die("%s: a latent diffusion model (%s VAE, SHA-256 %.16s...); give its VAE with --vae FILE", o.model,
				       li.vae_kind, li.vae_sha256);
			if (li.channels != dc->cimg || li.h != dc->res)
				l2_die("%s: metadata l2.latent describes [%d, %d, %d] latents, the model draws [%d, %d, %d]", o.model,
				       li.channels, li.h, li.w, dc->cimg, dc->res, dc->res);
			vae = l2_vae_load(o.vae, &(L2VaeOptions){.halves = L2_VAE_DECODER});
			l2_latents_check_vae(&li, vae, L2_VAE_DECODER, o.vae);
			lat = dc->res, R = li.resolution;
		} else {
			if (o.vae) l2_die("%s: a pixel diffusion model; --vae is for latent models (l2-train-diffusion --vae)", o.model);
			if (dc->cimg != 3) l2_die("%s: a %d-channel model; l2-sample draws RGB pixel models", o.model, dc->cimg);
		}
		if (o.guide) {
			if (l2_generator_kind(o.guide) != L2_GEN_DIFFUSION)
				l2_die("%s: a GAN generator; --guide-model needs a diffusion model", o.guide);
			guide = l2_diffusion_load(o.guide);
			l2_generate_guide_check(o.model, dm, o.guide, guide);
		}
	}
	size_t e = (size_t)3 * R * R;
	if (!ez) ez = e;

	L2Conditions c;
	if (o.input) l2_conditions_from_stream(&c, o.input, dim, o.model);
	else {
		int np = o.nprompt;
		char **text = o.prompt;
		if (o.prompts) text = l2_prompts_read(o.prompts, &np);
		l2_conditions_from_prompts(&c, text, np, o.clip, o.vocab, dim, o.model, o.prompts ? o.prompts : "--prompt");
		if (o.prompts) {
			for (int i = 0; i < np; i++) free(text[i]);
			free(text);
		}
	}
	if (o.retrieve) l2_conditions_retrieve(&c, o.retrieve, o.k, o.alpha);

	/* images, a chunk at a time so files appear as they are made */
	int total = c.n * o.n, chunk = kind == L2_GEN_DIFFUSION ? o.sc.batch : 64;
	L2Image *tiles = l2_calloc(total, sizeof(L2Image));
	float *x = l2_malloc(l2_mul_size((size_t)chunk, e) * sizeof(float));
	float *z = vae ? l2_malloc(l2_mul_size((size_t)chunk, ez) * sizeof(float)) : NULL; /* latents before decoding */
	X0Grid xg = {NULL, o.sc.steps, R, vae, lat};
	if (o.x0grid) xg.tiles = l2_calloc(l2_mul_size((size_t)total, (size_t)o.sc.steps + 1), sizeof(L2Image));
	L2SampleStats st = {0};
	L2Progress pr;
	l2_progress_start(&pr, "sampling", "images", (uint64_t)total);
	if (o.outdir) l2_mkdir_p(o.outdir);
	for (int first = 0; first < total; first += chunk) {
		int m = total - first < chunk ? total - first : chunk;
		if (G) l2_generate_gan(G, &c, o.n, o.sc.seed, o.psi, first, m, x);
		else {
			l2_generate_diffusion(dm, guide, &o.sc, &c, o.n, first, m, vae ? z : x, o.x0grid ? keep_x0 : NULL, &xg, &st);
			if (vae) l2_vae_decode(vae, z, m, lat, lat, x);
		}
		for (int k = first; k < first + m; k++) {
			L2Image *t = &tiles[k];
			l2_image_from_chw(x + (size_t)(k - first) * e, R, R, -1, 1, t);
			if (xg.tiles) l2_image_from_chw(x + (size_t)(k - first) * e, R, R, -1, 1, &xg.tiles[(size_t)k * (o.sc.steps + 1) + o.sc.steps]);
			if (o.outdir) {
				char name[32];
				snprintf(name, sizeof name, "%04d-%02d.png", k / o.n, k % o.n);
				char *p = join(o.outdir, name);
				l2_image_save_png(p, t);
				free(p);
			}
		}
		l2_progress_add(&pr, (uint64_t)m);
	}
	l2_progress_end(&pr);
	const uint8_t bg[3] = {255, 255, 255};
	if (o.grid) {
		L2Image grid;
		l2_image_grid(tiles, total, o.n, 2, bg, &grid);
		l2_image_save_png(o.grid, &grid);
		l2_image_free(&grid);
	}
	if (xg.tiles) {
		L2Image grid;
		size_t nt = (size_t)total * (o.sc.steps + 1);
		l2_image_grid(xg.tiles, (int)nt, o.sc.steps + 1, 2, bg, &grid);
		l2_image_save_png(o.x0grid, &grid);
		l2_image_free(&grid);
		for (size_t i = 0; i < nt; i++) l2_image_free(&xg.tiles[i]);
		free(xg.tiles);
	}
	if (o.outdir) {
		/* the conditions, in order: what each row / file prefix shows */
		char *p = join(o.outdir, "prompts.txt");
		L2OFile *f = l2_ofile_open(p, 0);
		for (int i = 0; i < c.n; i++) fprintf(l2_ofile_fp(f), "%04d\t%s\n", i, c.label[i]);
		l2_ofile_commit(f);
		free(p);
	}
	if (!l2_quiet) {
		if (G) l2_info("%d images for %d conditions -> %s", total, c.n, o.grid ? o.grid : o.outdir);
		else
			l2_info("%d images for %d conditions -> %s (%s, %d steps, %.1f network evaluations per image, %.1f s; "
				"sampler %.2f%% of it)", total, c.n, o.grid ? o.grid : o.outdir, l2_sampler_name(o.sc.sampler.kind),
				o.sc.steps, (double)st.net_rows / total, st.seconds,
				st.seconds > 0 ? 100 * (st.seconds - st.net_seconds) / st.seconds : 0.0);
	}
	for (int i = 0; i < total; i++) l2_image_free(&tiles[i]);
	free(tiles), free(x), free(z), free(o.prompt);
	if (vae) l2_vae_free(vae);
	l2_conditions_free(&c);
	if (G) l2_gan_g_free(G);
	if (dm) l2_diffusion_model_free(dm);
	if (guide) l2_diffusion_model_free(guide);
	return 0;
}
