/* l2-train-diffusion — train l2's text-conditional diffusion model (DIFFUSION.md §5) on an
 * l2 dataset of images with real caption features and/or pseudo text features.
 *
 *   l2-train-diffusion -d emoji.lmdb -o pre --cond pseudo --steps 3000          language-free
 *   l2-train-diffusion -d emoji.lmdb -o ft --init pre --pairs-fraction 0.1 \
 *       --paired-only --steps 500                                               few-shot fine-tune
 *   l2-train-diffusion -d emoji.lmdb -o pre --resume                            continue
 *
 * Writes into the run directory: model.safetensors (the weights), model_ema-STD.safetensors
 * (one per --ema-std; what l2-sample loads), state.safetensors (lib/nn/ckpt.h), log.tsv,
 * loss.png, grid-STEP.png and grid.png.  The step is lib/method/diffusion_train.h; the data
 * and conditions lib/method/train_data.h; the samples lib/models/sampler.h. */
#include "core/dist.h"
#include "core/util.h"
#include "core/vec.h"
#include "io/image.h"
#include "io/plot.h"
#include "io/safetensors.h"
#include "method/dataset.h"
#include "method/diffusion_train.h"
#include "method/train_data.h"
#include "models/clip.h"
#include "models/diffusion.h"
#include "models/inception.h"
#include "method/fid.h"
#include "models/sampler.h"
#include "models/vae.h"
#include "method/latents.h"
#include "nn/ad_dist.h"
#include "nn/ckpt.h"
#include "nn/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PHASE_DATA 0x64617461 /* l2_train_rng phase of a sample's flip and condition ("data") */

typedef struct {
	const char *dataset, *out, *init, *clip, *inception, *preset;
	L2TrainDataOptions data;
	int resume, xflip;
	/* model overrides (0 / NULL / NAN: the preset's) */
	int channels, blocks, patch, cond_tokens, res_given;
	/* latent diffusion: the VAE (its decoder: grids, FD) and the latents' feature set */
	const char *vae, *latents, *vae_id;
	const char *mult, *attn_res;
	double dropout, sigma_data, p_mean, p_std;
	L2DiffusionConfig c;
	/* training */
	long steps, stop_after, batch, lr_warmup, lr_ref;
	double lr, cond_drop, grad_clip;
	double ema_std[L2_DIFF_MAXEMA];
	int nema;
	L2DiffusionWeighting weighting;
	char weighting_s[64];
	uint64_t seed;
	/* reports */
	long tick, fid_every, fid_images, grid_rows, grid_cols;
	L2SampleConfig sample;
	int sample_ema;
} Options;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: l2-train-diffusion -d DATASET [-o RUNDIR] [options]\n"
		"Train l2's text-conditional diffusion model (EDM preconditioning, an EDM2-style U-Net)\n"
		"on the train split of an l2 dataset whose images carry real caption features and/or pseudo\n"
		"text features (schemas/dataset.md).  RUNDIR gets model.safetensors, model_ema-STD.safetensors\n"
		"per --ema-std, state.safetensors, log.tsv, loss.png, grid-STEP.png and grid.png.\n\n"
		"Data and conditions (as l2-train-gan):\n"
		"  -d, --dataset PATH       l2 dataset (LMDB)\n"
		"  -o, --output DIR         run directory (default diffusion-run)\n"
		L2_TRAIN_DATA_HELP
		"      --cond-drop P        share of samples trained with the null condition (default 0.1)\n"
		"      --xflip              random horizontal flips (default off: captions name directions)\n"
		"Model:\n"
		"      --preset NAME        tiny (16 x [1,2,4], 1 block), small (32 x [1,2,2], 2 blocks; default),\n"
		"                           base (64 x [1,2,2], 2 blocks)\n"
		"      --channels C  --mult A,B,..  --blocks N  --attn-res R,..  --dropout P   override the preset\n"
		"      --resolution N       image side, a power of two (default 32)\n"
		"      --patch N            1 (default), 2 or 4: the U-Net sees resolution/N pixels of 3 N^2 channels\n"
		"                           (space-to-depth), so 64x64 with --patch 2 costs what 32x32 costs\n"
		"      --cond-tokens K      the condition as K tokens attended by every attention layer (cross-\n"
		"                           attention, unCLIP's form) instead of added to the noise embedding\n"
		"                           (default 0: that modulation)\n"
		"      --sigma-data X       (default 0.5)   --P-mean X   --P-std X: training ln sigma ~ N(P-mean,\n"
		"                           P-std^2) (default -0.4, 1.6 below 64x64; -0.8, 1.6 at 64x64 or patch 2)\n"
		"      --init RUNDIR        start from a run's model.safetensors (fine-tuning; same model)\n"
		"Latent diffusion:\n"
		"      --vae FILE           train on the dataset's VAE latents (l2-encode-latents) instead of its\n"
		"                           pixels; FILE (or ENCODER,DECODER) decodes the grids and FD samples and\n"
		"                           must be the VAE the latents were made with (SHA-256); the model records\n"
		"                           it for l2-sample --vae.  Resolution, channels and sigma-data (the\n"
		"                           latents' std) come from the latents; P-mean/P-std default to -0.4/1.0\n"
		"      --latents NAME       the latents' feature set (default latent)\n"
		"Training:\n"
		"      --steps N            optimizer steps (default 3000)   --batch N (default 32)\n"
		"      --lr X               Adam learning rate (default 0.004; betas 0.9, 0.99)\n"
		"      --lr-warmup N        linear warm-up steps (default 10%% of --steps)\n"
		"      --lr-ref N           1/sqrt(t/N) decay after step N (default 20%% of --steps; 0: none)\n"
		"      --weighting W        uncertainty (default: learned u(sigma)), edm, min-snr:GAMMA\n"
		"      --ema-std A,B,..     power-function EMA lengths (default 0.05,0.10)\n"
		"      --grad-clip X        clip the gradient's global norm (default 0: off)\n"
		"      --seed N             initialisation, data order, noise (default 0)\n"
		"Reports and checkpoints:\n"
		"      --tick N             every N steps: metrics line, grid, loss plot, log, checkpoint (default 100)\n"
		"      --grid ROWSxCOLS     sample grid of held-out captions x fixed seeds (default 8x4)\n"
		"      --sample-sampler S   sampler of the grid and FD samples (default dpmpp-2m)\n"
		"      --sample-steps N     its steps (default 16)   --guidance W (default 1.5)\n"
		"      --sample-ema STD     the EMA the samples use (default: the first --ema-std)\n"
		"      --fid-every N        CLIP-feature Frechet distance and CLIP score on held-out captions every\n"
		"                           N steps and at the end (needs --clip)\n"
		"      --fid-images N       held-out captions sampled for those (default 256; all at the end)\n"
		"      --clip WEIGHTS       CLIP for the FD (l2-encode-images' file)\n"
		"      --inception WEIGHTS  with --fid-every: also the Inception FID (l2-fid's -m file)\n"
		"      --resume             continue from RUNDIR/state.safetensors (bit-identical)\n"
		"      --stop-after N       stop (with a checkpoint) after step N\n"
		"      --threads N --quiet --progress\n"
		"  -h, --help               this help\n"
		"      --version            print the version\n"
		"Under mpirun -np P (or srun): data parallel, --batch the global batch (a multiple of P),\n"
		"B/P images per rank, rank 0 writing every file (DISTRIBUTED TRAINING in the man page).\n"
		"See l2-train-diffusion(1).\n");
}

enum {
	O_CDROP = L2_OPT_TRAIN_DATA_END, O_XFLIP, O_PRESET, O_CH, O_MULT,
	O_BLOCKS, O_ATTN, O_DROP, O_RES, O_PATCH, O_SD, O_PM, O_PS, O_INIT, O_STEPS, O_BATCH, O_LR, O_WARM, O_REF, O_WEIGHT,
	O_EMA, O_CLIPG, O_SEED, O_TICK, O_GRID, O_SSAMP, O_SSTEPS, O_GUID, O_SEMA, O_FID, O_FIDN, O_CLIP, O_INC, O_RESUME,
	O_STOP, O_VAE, O_LATENTS, O_CTOK
};

/* "1,2,2" -> v[], n; -1 when malformed */
static int int_list(const char *s, int *v, int max, int lo, int hi)
{
	int n = 0;
	const char *p = s;
	while (*p) {
		char *end;
		long x = strtol(p, &end, 10);
		if (end == p || x < lo || x > hi || n == max) return -1;
		v[n++] = (int)x;
		p = end;
		if (*p == ',') p++;
		else if (*p) return -1;
	}
	return n ? n : -1;
}

static void parse_options(int argc, char **argv, Options *o)
{
	static const struct option lo[] = {
		L2_COMMON_LONGOPTS,
		{"dataset", required_argument, 0, 'd'}, {"output", required_argument, 0, 'o'},
		L2_TRAIN_DATA_LONGOPTS,
		{"cond-drop", required_argument, 0, O_CDROP},
		{"xflip", no_argument, 0, O_XFLIP}, {"preset", required_argument, 0, O_PRESET},
		{"channels", required_argument, 0, O_CH}, {"mult", required_argument, 0, O_MULT},
		{"blocks", required_argument, 0, O_BLOCKS}, {"attn-res", required_argument, 0, O_ATTN},
		{"dropout", required_argument, 0, O_DROP}, {"resolution", required_argument, 0, O_RES},
		{"patch", required_argument, 0, O_PATCH}, {"cond-tokens", required_argument, 0, O_CTOK},
		{"vae", required_argument, 0, O_VAE}, {"latents", required_argument, 0, O_LATENTS}, {"sigma-data", required_argument, 0, O_SD},
		{"P-mean", required_argument, 0, O_PM}, {"P-std", required_argument, 0, O_PS},
		{"init", required_argument, 0, O_INIT}, {"steps", required_argument, 0, O_STEPS},
		{"batch", required_argument, 0, O_BATCH}, {"lr", required_argument, 0, O_LR},
		{"lr-warmup", required_argument, 0, O_WARM}, {"lr-ref", required_argument, 0, O_REF},
		{"weighting", required_argument, 0, O_WEIGHT}, {"ema-std", required_argument, 0, O_EMA},
		{"grad-clip", required_argument, 0, O_CLIPG}, {"seed", required_argument, 0, O_SEED},
		{"tick", required_argument, 0, O_TICK}, {"grid", required_argument, 0, O_GRID},
		{"sample-sampler", required_argument, 0, O_SSAMP}, {"sample-steps", required_argument, 0, O_SSTEPS},
		{"guidance", required_argument, 0, O_GUID}, {"sample-ema", required_argument, 0, O_SEMA},
		{"fid-every", required_argument, 0, O_FID}, {"fid-images", required_argument, 0, O_FIDN},
		{"clip", required_argument, 0, O_CLIP}, {"inception", required_argument, 0, O_INC},
		{"resume", no_argument, 0, O_RESUME}, {"stop-after", required_argument, 0, O_STOP}, {0, 0, 0, 0}};
	memset(o, 0, sizeof *o);
	o->out = "diffusion-run";
	o->preset = "small";
	l2_train_data_defaults(&o->data);
	o->dropout = o->sigma_data = o->p_mean = o->p_std = NAN;
	o->steps = 3000, o->batch = 32, o->lr = 4e-3, o->lr_warmup = o->lr_ref = -1, o->cond_drop = 0.1;
	o->ema_std[0] = 0.05, o->ema_std[1] = 0.10, o->nema = 2;
	snprintf(o->weighting_s, sizeof o->weighting_s, "uncertainty");
	o->tick = 100, o->fid_images = 256, o->grid_rows = 8, o->grid_cols = 4;
	l2_sample_config_defaults(&o->sample);
	o->sample.steps = 16, o->sample.guidance.w = 1.5;
	double sema = NAN;
	int res = 32;
	int ch;
	while ((ch = getopt_long(argc, argv, "hd:o:", lo, NULL)) != -1) {
		if (l2_common_option(ch, optarg, usage) || l2_train_data_option(ch, optarg, usage, &o->data)) continue;
		switch (ch) {
		case 'd': o->dataset = optarg; break;
		case 'o': o->out = optarg; break;
		case O_CDROP: o->cond_drop = l2_parse_double(optarg, "--cond-drop"); break;
		case O_XFLIP: o->xflip = 1; break;
		case O_PRESET: o->preset = optarg; break;
		case O_CH: o->channels = (int)l2_parse_long(optarg, "--channels", 4, 4096); break;
		case O_MULT: o->mult = optarg; break;
		case O_BLOCKS: o->blocks = (int)l2_parse_long(optarg, "--blocks", 1, 16); break;
		case O_ATTN: o->attn_res = optarg; break;
		case O_DROP: o->dropout = l2_parse_double(optarg, "--dropout"); break;
		case O_RES: res = (int)l2_parse_long(optarg, "--resolution", 8, 256), o->res_given = 1; break;
		case O_PATCH: o->patch = (int)l2_parse_long(optarg, "--patch", 1, 8); break;
		case O_CTOK: o->cond_tokens = (int)l2_parse_long(optarg, "--cond-tokens", 0, 64); break;
		case O_VAE: o->vae = optarg; break;
		case O_LATENTS: o->latents = optarg; break;
		case O_SD: o->sigma_data = l2_parse_double(optarg, "--sigma-data"); break;
		case O_PM: o->p_mean = l2_parse_double(optarg, "--P-mean"); break;
		case O_PS: o->p_std = l2_parse_double(optarg, "--P-std"); break;
		case O_INIT: o->init = optarg; break;
		case O_STEPS: o->steps = l2_parse_long(optarg, "--steps", 1, 1L << 40); break;
		case O_BATCH: o->batch = l2_parse_long(optarg, "--batch", 1, 4096); break;
		case O_LR: o->lr = l2_parse_double(optarg, "--lr"); break;
		case O_WARM: o->lr_warmup = l2_parse_long(optarg, "--lr-warmup", 0, 1L << 40); break;
		case O_REF: o->lr_ref = l2_parse_long(optarg, "--lr-ref", 0, 1L << 40); break;
		case O_WEIGHT:
			if (l2_diffusion_weighting_parse(optarg, &o->weighting))
				l2_usage_error(usage, "--weighting must be uncertainty, edm or min-snr:GAMMA (GAMMA > 0), not '%s'", optarg);
			snprintf(o->weighting_s, sizeof o->weighting_s, "%s", optarg);
			break;
		case O_EMA: {
			char *end;
			const char *p = optarg;
			o->nema = 0;
			while (*p) {
				double v = strtod(p, &end);
				if (end == p || !(v > 0 && v < 0.5) || o->nema == L2_DIFF_MAXEMA)
					l2_usage_error(usage, "--ema-std wants 1..%d values in (0, 0.5), comma-separated", L2_DIFF_MAXEMA);
				o->ema_std[o->nema++] = v;
				p = *end == ',' ? end + 1 : end;
				if (*end && *end != ',') l2_usage_error(usage, "--ema-std wants numbers separated by commas");
			}
			if (!o->nema) l2_usage_error(usage, "--ema-std wants at least one value");
			break;
		}
		case O_CLIPG: o->grad_clip = l2_parse_double(optarg, "--grad-clip"); break;
		case O_SEED: o->seed = l2_parse_u64(optarg, "--seed"); break;
		case O_TICK: o->tick = l2_parse_long(optarg, "--tick", 1, 1L << 40); break;
		case O_GRID: l2_train_grid_option(optarg, usage, &o->grid_rows, &o->grid_cols); break;
		case O_SSAMP: {
			int k = l2_sampler_parse(optarg);
			if (k < 0) l2_usage_error(usage, "--sample-sampler must be one of " L2_SAMPLER_NAMES ", not '%s'", optarg);
			o->sample.sampler.kind = (L2SamplerKind)k;
			break;
		}
		case O_SSTEPS: o->sample.steps = (int)l2_parse_long(optarg, "--sample-steps", 1, 1000); break;
		case O_GUID: o->sample.guidance.w = l2_parse_double(optarg, "--guidance"); break;
		case O_SEMA: sema = l2_parse_double(optarg, "--sample-ema"); break;
		case O_FID: o->fid_every = l2_parse_long(optarg, "--fid-every", 0, 1L << 40); break;
		case O_FIDN: o->fid_images = l2_parse_long(optarg, "--fid-images", 2, 1L << 30); break;
		case O_CLIP: o->clip = optarg; break;
		case O_INC: o->inception = optarg; break;
		case O_RESUME: o->resume = 1; break;
		case O_STOP: o->stop_after = l2_parse_long(optarg, "--stop-after", 1, 1L << 40); break;
		default: l2_usage_error(usage, "unknown option");
		}
	}
	if (optind < argc) l2_usage_error(usage, "unexpected argument '%s'", argv[optind]);
	if (!o->dataset) l2_usage_error(usage, "give the dataset with -d PATH");
	l2_train_data_options_check(&o->data, usage);
	if (!(o->data.xi >= 0)) l2_usage_error(usage, "--xi must be >= 0");
	if (!(o->cond_drop >= 0 && o->cond_drop < 1)) l2_usage_error(usage, "--cond-drop must be in [0, 1)");
	if (!(o->lr > 0) || !isfinite(o->lr)) l2_usage_error(usage, "--lr must be > 0");
	if (!(o->grad_clip >= 0)) l2_usage_error(usage, "--grad-clip must be >= 0");
	/* the model: a preset, then the overrides */
	if (res & (res - 1)) l2_usage_error(usage, "--resolution must be a power of two");
	if (l2_diffusion_preset(o->preset, res, 0, &o->c))
		l2_usage_error(usage, "--preset must be tiny, small or base, not '%s'", o->preset);
	if (o->channels) o->c.channels = o->channels;
	if (o->blocks) o->c.blocks = o->blocks;
	if (o->patch) o->c.patch = o->patch;
	o->c.cond_tokens = o->cond_tokens;
	/* Training noise levels.  64x64 images (and so patch 2): EDM2's img64 (-0.8, 1.6).  Pixels
	 * below 64: (-0.4, 1.6), measured on the emoji, not EDM's CIFAR (-1.2, 1.2) of the preset:
	 * that draws sigma > 5 about once in 100 samples, and with a few thousand training steps
	 * the denoiser's estimates at high noise stay grey noise, so the layout of a sample is the
	 * seed's, not the caption's (bench/RESULTS.md: at equal steps FD 0.190 -> 0.170 in the
	 * tiny experiment, 0.194 -> 0.125 at the small preset).  Latents take theirs in main. */
	if (o->c.patch > 1 || res >= 64) o->c.p_mean = -0.8, o->c.p_std = 1.6;
	else o->c.p_mean = -0.4, o->c.p_std = 1.6;
	if (o->vae) {
		if (o->res_given) l2_usage_error(usage, "--resolution comes from the latents with --vae");
		if (o->patch > 1) l2_usage_error(usage, "--patch applies to pixels; latents are already 1/8 of the image");
		if (o->xflip) l2_usage_error(usage, "--xflip mirrors pixels; with --vae the latents are fixed");
	} else if (o->latents)
		l2_usage_error(usage, "--latents names the latents of --vae FILE");
	if (!o->latents) o->latents = "latent";
	if (o->mult && (o->c.nlevels = int_list(o->mult, o->c.mult, L2_DIFF_MAXLEV, 1, 64)) < 0)
		l2_usage_error(usage, "--mult wants 1 to %d multipliers in 1..64, comma-separated (e.g. 1,2,2)", L2_DIFF_MAXLEV);
	if (o->attn_res) {
		if (!strcmp(o->attn_res, "none")) o->c.nattn = 0;
		else if ((o->c.nattn = int_list(o->attn_res, o->c.attn_res, L2_DIFF_MAXLEV, 1, 4096)) < 0)
			l2_usage_error(usage, "--attn-res wants resolutions, comma-separated (e.g. 8 or 16,8), or none");
	}
	if (!isnan(o->dropout)) o->c.dropout = o->dropout;
	if (!isnan(o->sigma_data)) o->c.sigma_data = o->sigma_data;
	if (!isnan(o->p_mean)) o->c.p_mean = o->p_mean;
	if (!isnan(o->p_std)) o->c.p_std = o->p_std;
	o->c.cdim = 1; /* checked again with the dataset's size */
	const char *bad = l2_diffusion_check(&o->c);
	if (bad) l2_usage_error(usage, "%s", bad);
	if (o->lr_warmup < 0) o->lr_warmup = o->steps / 10;
	if (o->lr_ref < 0) o->lr_ref = o->steps / 5;
	o->sample_ema = 0;
	if (!isnan(sema)) {
		o->sample_ema = -1;
		for (int i = 0; i < o->nema; i++)
			if (fabs(o->ema_std[i] - sema) < 1e-12) o->sample_ema = i;
		if (o->sample_ema < 0) l2_usage_error(usage, "--sample-ema %g is not one of --ema-std", sema);
	}
	bad = l2_sample_config_check(&o->sample);
	if (bad) l2_usage_error(usage, "%s", bad);
	if (o->fid_every && !o->clip) l2_usage_error(usage, "--fid-every needs --clip WEIGHTS");
	if (o->inception && !o->fid_every) l2_usage_error(usage, "--inception needs --fid-every N");
	if (!o->stop_after || o->stop_after > o->steps) o->stop_after = o->steps;
}

/* ---- the log --------------------------------------------------------------------------- */

typedef struct {
	long step;
	double loss, mse, band[L2_DIFF_BANDS], u[L2_DIFF_BANDS], lr, gnorm, ips;
	double fd, clip_score, rp1, rp5, fid; /* NAN: not taken */
	int fd_n;
} LogRow;

static void write_log(const char *path, const LogRow *rows, int n)
{
	L2OFile *f = l2_ofile_open(path, 0);
	FILE *fp = l2_ofile_fp(f);
	fprintf(fp, "step\tloss\tmse");
	for (int k = 0; k < L2_DIFF_BANDS; k++) fprintf(fp, "\tmse_s%.3g", l2_diffusion_band_edge(k));
	for (int k = 0; k < L2_DIFF_BANDS; k++) fprintf(fp, "\tu_s%.3g", l2_diffusion_band_edge(k));
	fprintf(fp, "\tlr\tgrad_norm\timages_per_s\tfd_clip\tclip_score\tfd_images\tfid_inception\tr_precision1\tr_precision5\n");
	for (int i = 0; i < n; i++) {
		const LogRow *r = &rows[i];
		fprintf(fp, "%ld\t%.6g\t%.6g", r->step, r->loss, r->mse);
		for (int k = 0; k < L2_DIFF_BANDS; k++) fprintf(fp, "\t%.6g", r->band[k]);
		for (int k = 0; k < L2_DIFF_BANDS; k++) fprintf(fp, "\t%.6g", r->u[k]);
		fprintf(fp, "\t%.6g\t%.6g\t%.2f\t%.6g\t%.6g\t%d\t%.6g\t%.6g\t%.6g\n", r->lr, r->gnorm, r->ips, r->fd, r->clip_score,
			r->fd_n, r->fid, r->rp1, r->rp5);
	}
	l2_ofile_commit(f);
}

/* The rows of an earlier run up to step `upto` (a resumed run continues its log). */
static int read_log(const char *path, LogRow **rows, long upto)
{
	FILE *f = fopen(path, "r");
	int n = 0, cap = 0;
	*rows = NULL;
	if (!f) return 0;
	char line[4096];
	while (fgets(line, sizeof line, f)) {
		LogRow r;
		char *p = line, *end;
		double v[3 + 2 * L2_DIFF_BANDS + 9];
		int k = 0;
		for (; k < (int)(sizeof v / sizeof *v); k++) {
			v[k] = strtod(p, &end); /* strtod reads "nan" */
			if (end == p) break;
			p = end;
		}
		if (k != (int)(sizeof v / sizeof *v)) continue; /* the header, or a damaged line */
		r.step = (long)v[0];
		if (r.step > upto) break;
		r.loss = v[1], r.mse = v[2];
		for (int b = 0; b < L2_DIFF_BANDS; b++) r.band[b] = v[3 + b], r.u[b] = v[3 + L2_DIFF_BANDS + b];
		double *t = v + 3 + 2 * L2_DIFF_BANDS;
		r.lr = t[0], r.gnorm = t[1], r.ips = t[2], r.fd = t[3], r.clip_score = t[4], r.fd_n = (int)t[5], r.fid = t[6];
		r.rp1 = t[7], r.rp5 = t[8];
		if (n == cap) cap = cap ? 2 * cap : 64, *rows = l2_realloc(*rows, cap * sizeof **rows);
		(*rows)[n++] = r;
	}
	fclose(f);
	return n;
}

/* loss.png: the plain MSE overall and per sigma bucket; u(sigma) per bucket; the objective */
static void plot_log(const char *path, const LogRow *rows, int n)
{
	double *x = l2_malloc((size_t)(n ? n : 1) * (3 + 2 * L2_DIFF_BANDS) * sizeof(double));
	double *loss = x + n, *mse = loss + n, *band = mse + n, *u = band + (size_t)n * L2_DIFF_BANDS;
	for (int i = 0; i < n; i++) {
		x[i] = (double)rows[i].step, loss[i] = rows[i].loss, mse[i] = rows[i].mse;
		for (int k = 0; k < L2_DIFF_BANDS; k++) band[k * n + i] = rows[i].band[k], u[k * n + i] = rows[i].u[k];
	}
	L2PlotSeries sm[1 + L2_DIFF_BANDS], su[L2_DIFF_BANDS], sl = {"objective", x, loss, n, {0}};
	char lab[L2_DIFF_BANDS][32];
	sm[0] = (L2PlotSeries){"all", x, mse, n, {0, 0, 0}};
	l2_plot_color(0, sl.rgb);
	for (int k = 0; k < L2_DIFF_BANDS; k++) {
		snprintf(lab[k], sizeof lab[k], "σ>%.2g", l2_diffusion_band_edge(k));
		sm[1 + k] = (L2PlotSeries){lab[k], x, band + (size_t)k * n, n, {0}};
		su[k] = (L2PlotSeries){lab[k], x, u + (size_t)k * n, n, {0}};
		l2_plot_color(1 + k, sm[1 + k].rgb), l2_plot_color(1 + k, su[k].rgb);
	}
	L2PlotPanel p[3] = {{"mean (D-y)^2", 1, sm, 1 + L2_DIFF_BANDS},
			    {"u(σ), the learned log-variance", 0, su, L2_DIFF_BANDS},
			    {"loss", 0, &sl, 1}};
	l2_plot_png(path, p, 3, 760, 200);
	free(x);
}

/* ---- R-precision ------------------------------------------------------------------------------
 * As `l2-dataset eval-retrieval` scores real held-out images: the candidates are the
 * distinct captions of the held-out images (their caption features), and a sample drawn
 * for held-out image i retrieves correctly at rank m when one of image i's captions is
 * among its m nearest candidates (cosine of CLIP features). */
typedef struct {
	int ncand, dim;
	float *cand;     /* [ncand, dim] unit caption features */
	int *own, *nown; /* image i's candidates: own[off[i] .. off[i] + nown[i]) */
	int *off;
} RPrec;

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void rprec_load(RPrec *rp, const char *path, const char *feat, const L2TrainData *te, int dim)
{
	memset(rp, 0, sizeof *rp);
	rp->dim = dim;
	L2Dataset *ds = l2_dataset_open(path, L2_STORE_RDONLY);
	char ***caps = l2_calloc((size_t)te->n, sizeof *caps);
	size_t *nc = l2_calloc((size_t)te->n, sizeof *nc), total = 0;
	for (int i = 0; i < te->n; i++) nc[i] = l2_dataset_captions(ds, te->keys[i], &caps[i]), total += nc[i];
	char **all = l2_malloc((total ? total : 1) * sizeof *all);
	size_t k = 0;
	for (int i = 0; i < te->n; i++)
		for (size_t j = 0; j < nc[i]; j++) all[k++] = caps[i][j];
	qsort(all, total, sizeof *all, cmp_str);
	/* distinct captions with a feature */
	char **uniq = l2_malloc((total ? total : 1) * sizeof *uniq);
	rp->cand = l2_malloc((total ? total : 1) * (size_t)dim * sizeof(float));
	for (size_t j = 0; j < total; j++) {
		if (j && !strcmp(all[j], all[j - 1])) continue;
		if (!l2_dataset_get_feature(ds, feat, all[j], rp->cand + (size_t)rp->ncand * dim)) continue;
		l2_normalize_rows_exact(rp->cand + (size_t)rp->ncand * dim, 1, (size_t)dim);
		uniq[rp->ncand++] = all[j];
	}
	rp->off = l2_malloc((size_t)te->n * sizeof(int)), rp->nown = l2_calloc((size_t)te->n, sizeof(int));
	rp->own = l2_malloc((total ? total : 1) * sizeof(int));
	int o = 0;
	for (int i = 0; i < te->n; i++) {
		rp->off[i] = o;
		for (size_t j = 0; j < nc[i]; j++) {
			char **hit = bsearch(&caps[i][j], uniq, (size_t)rp->ncand, sizeof *uniq, cmp_str);
			if (hit) rp->own[o++] = (int)(hit - uniq), rp->nown[i]++;
		}
	}
	for (int i = 0; i < te->n; i++) l2_dataset_free_strings(caps[i], nc[i]);
	free(caps), free(nc), free(all), free(uniq);
	l2_dataset_close(ds);
}

static void rprec_free(RPrec *rp) { free(rp->cand), free(rp->own), free(rp->nown), free(rp->off); }

/* top-1 and top-5 accuracy of n samples' unit features f[n, dim] (sample i: image i) */
static void rprec_score(const RPrec *rp, const float *f, int n, double *top1, double *top5)
{
	int h1 = 0, h5 = 0;
	double *sc = l2_malloc((size_t)(rp->ncand ? rp->ncand : 1) * sizeof(double));
	for (int i = 0; i < n; i++) {
		for (int j = 0; j < rp->ncand; j++) {
			double d = 0;
			for (int k = 0; k < rp->dim; k++) d += (double)f[(size_t)i * rp->dim + k] * rp->cand[(size_t)j * rp->dim + k];
			sc[j] = d;
		}
		/* rank of the best own caption: candidates scoring higher (ties: by index, as a stable sort) */
		int best = -1;
		for (int t = 0; t < rp->nown[i]; t++) {
			int c = rp->own[rp->off[i] + t], r = 0;
			for (int j = 0; j < rp->ncand; j++) r += sc[j] > sc[c] || (sc[j] == sc[c] && j < c);
			if (best < 0 || r < best) best = r;
		}
		h1 += best == 0, h5 += best >= 0 && best < 5;
	}
	free(sc);
	*top1 = n ? (double)h1 / n : NAN;
	*top5 = n ? (double)h5 / n : NAN;
}

/* ---- samples ------------------------------------------------------------------------------ */

/* Sample n images of conditions h[n, dim] (image k: noise stream stream[k] of `seed`) with
 * the sample EMA's weights. */
static void sample_images(const Options *o, L2Diffusion *net, L2Ema *ema, const float *h, int n, uint64_t seed,
			  const uint64_t *stream, float *out)
{
	const L2DiffusionConfig *c = l2_diffusion_config(net);
	l2_ema_swap(ema);
	L2DiffusionModel *m = l2_diffusion_model_from(net);
	l2_ema_swap(ema);
	int *cond = l2_malloc((size_t)n * sizeof(int));
	for (int k = 0; k < n; k++) cond[k] = k;
	L2DiffusionNet dn;
	l2_diffusion_net_init(&dn, m, NULL, h, n);
	L2SampleConfig sc = o->sample;
	sc.seed = seed;
	l2_sample_images(&sc, l2_diffusion_net, &dn, n, (size_t)c->cimg * c->res * c->res, cond, stream, out, NULL, NULL,
			 NULL);
	l2_diffusion_net_free(&dn);
	l2_diffusion_model_free(m);
	free(cond);
}

static void config_string(const Options *o, char *buf, size_t len)
{
	char js[1024], ema[128] = "";
	l2_diffusion_config_json(&o->c, js, sizeof js);
	for (int i = 0; i < o->nema; i++) snprintf(ema + strlen(ema), sizeof ema - strlen(ema), "%s%.17g", i ? "," : "", o->ema_std[i]);
	snprintf(buf, len,
		 "%s data=%s cond=%s pairs=%.17g paired_only=%d feats=%s,%s,%s xi=%.17g cond_drop=%.17g xflip=%d steps=%ld "
		 "batch=%ld lr=%.17g warmup=%ld ref=%ld weighting=%s ema=%s grad_clip=%.17g seed=%llu init=%s",
		 js, o->dataset, l2_cond_name(o->data.cond), o->data.pairs, o->data.paired_only, o->data.cap_feat,
		 o->data.pseudo_feat, o->data.img_feat, o->data.xi, o->cond_drop, o->xflip, o->steps, o->batch, o->lr,
		 o->lr_warmup, o->lr_ref, o->weighting_s, ema, o->grad_clip, (unsigned long long)o->seed,
		 o->init ? o->init : "-");
	/* latent runs only (a pixel run's string stays what it was, so older runs resume) */
	if (o->vae_id) snprintf(buf + strlen(buf), len - strlen(buf), " vae=%s latents=%s", o->vae_id, o->latents);
}

static void ema_name(double std, char *buf, size_t len) { snprintf(buf, len, "ema-%.3f", std); }

/* The state's groups: the trainable tensors with Adam and the EMAs, the buffers.
 * en holds the EMAs' names. */
static void state_groups(const Options *o, L2Diffusion *net, L2DiffusionTrainer *tr, L2CkptGroup g[2],
			 char en[L2_DIFF_MAXEMA][32])
{
	int np, nt;
	AdTensor **p = l2_diffusion_params(net, &np, &nt);
	memset(g, 0, 2 * sizeof *g);
	g[0].name = "net", g[0].p = p, g[0].n = nt, g[0].adam = l2_diffusion_trainer_adam(tr), g[0].nema = o->nema;
	for (int i = 0; i < o->nema; i++) {
		ema_name(o->ema_std[i], en[i], 32);
		g[0].ema[i] = l2_diffusion_trainer_ema(tr, i);
		g[0].ema_name[i] = en[i];
	}
	g[1].name = "buffers", g[1].p = p + nt, g[1].n = np - nt;
}

/* model.safetensors, model_ema-STD.safetensors, state.safetensors */
static void save_all(const Options *o, L2Diffusion *net, L2DiffusionTrainer *tr, L2TrainState *st,
		     const char *feature)
{
	char name[64], file[96];
	L2CkptGroup g[2];
	char en[L2_DIFF_MAXEMA][32];
	state_groups(o, net, tr, g, en);
	st->step = l2_diffusion_trainer_step(tr);
	char *sp = l2_train_path(o->out, "state.safetensors");
	l2_ckpt_save_state(sp, st, g, 2);
	free(sp);
	char *mp = l2_train_path(o->out, "model.safetensors");
	l2_diffusion_save(mp, net, o->data.cond == L2_COND_TEXT || o->data.paired_only ? o->data.cap_feat : feature, "none",
			  st->step);
	free(mp);
	for (int i = 0; i < o->nema; i++) {
		snprintf(name, sizeof name, "%.3f", o->ema_std[i]);
		snprintf(file, sizeof file, "model_ema-%s.safetensors", name);
		char *ep = l2_train_path(o->out, file);
		L2Ema *e = l2_diffusion_trainer_ema(tr, i);
		l2_ema_swap(e);
		l2_diffusion_save(ep, net, o->data.cond == L2_COND_TEXT || o->data.paired_only ? o->data.cap_feat : feature, name,
				  st->step);
		l2_ema_swap(e);
		free(ep);
	}
}

static void load_state(const Options *o, L2Diffusion *net, L2DiffusionTrainer *tr, L2TrainState *st, const char *path)
{
	L2CkptGroup g[2];
	char en[L2_DIFF_MAXEMA][32];
	state_groups(o, net, tr, g, en);
	l2_train_resume_state(path, st, g, 2);
	l2_diffusion_trainer_set_step(tr, st->step);
}

/* ---- main ------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	Options o;
	parse_options(argc, argv, &o);
	/* before anything is written: a rank that cannot join refuses here */
	L2Dist dist;
	l2_dist_init(&dist);
	int lead = dist.rank == 0; /* reads the state, writes every file, measures */
	int R = o.c.res; /* the images' side (latent mode: the images the latents were made from) */

	/* data and conditions: every feature set used must have the same size */
	L2Dataset *ds = l2_dataset_open(o.dataset, L2_STORE_RDONLY);
	/* latent mode: the model's "images" are the latents; it records what made them */
	L2Vae *vae = NULL;
	L2LatentInfo li;
	char *lat_json = NULL;
	if (o.vae) {
		if (!l2_latents_info(ds, o.latents, &li))
			l2_die("%s: no feature set '%s' of VAE latents (make it with l2-encode-latents --vae FILE)", o.dataset,
			       o.latents);
		if (!li.complete)
			l2_die("%s: feature set '%s' is incomplete: finish it with l2-encode-latents --resume", o.dataset, o.latents);
		vae = l2_vae_load(o.vae, &(L2VaeOptions){.halves = L2_VAE_DECODER});
		l2_latents_check_vae(&li, vae, L2_VAE_DECODER, o.vae);
		if (li.h != li.w) l2_die("%s: %dx%d latents; the model takes square ones", o.dataset, li.h, li.w);
		o.c.cimg = li.channels, o.c.res = li.h, R = li.resolution;
		if (isnan(o.sigma_data)) o.c.sigma_data = li.std > 0 ? li.std : 0.5;
		if (isnan(o.p_mean)) o.c.p_mean = -0.4;
		if (isnan(o.p_std)) o.c.p_std = 1.0;
		lat_json = l2_latents_info_json(&li);
		o.vae_id = l2_vae_identity(vae);
	}
	o.data.res = R;
	o.data.seed = o.seed;
	int dim = l2_train_data_dim(ds, &o.data, o.fid_every > 0);
	o.c.cdim = dim;
	const char *bad = l2_diffusion_check(&o.c);
	if (bad) l2_die("%s: %s", o.dataset, bad);
	L2TrainData tr, te;
	int drop_tr = 0, drop_te = 0;
	l2_train_data_load(ds, &o.data, L2_SPLIT_TRAIN, dim, &tr, &drop_tr);
	l2_train_data_load(ds, &o.data, L2_SPLIT_TEST, dim, &te, &drop_te);
	float *zt = vae ? l2_latents_gather(ds, o.latents, &li, tr.keys, tr.n) : NULL; /* the training latents */
	l2_dataset_close(ds);
	if (drop_tr && !l2_quiet) l2_info("%s: %d training images without the features they need: not used", o.dataset, drop_tr);
	if (tr.n < 1) l2_die("%s: no usable training images", o.dataset);
	if (dist.size > 1 && o.batch % dist.size)
		l2_usage_error(usage, "--batch %ld does not split over %d ranks: the global batch must be a multiple of the number "
			       "of ranks", o.batch, dist.size);
	if (tr.n < dist.size) l2_die("%s: %d usable training images for %d ranks", o.dataset, tr.n, dist.size);
	if (o.batch > tr.n) {
		long b = tr.n / dist.size * dist.size; /* still a multiple of the ranks */
		if (lead) l2_warn("--batch %ld is more than the %d training images: using %ld", o.batch, tr.n, b);
		o.batch = b;
	}
	/* the feature set the conditions of the unpaired images come from (metadata) */
	const char *feature = o.data.cond == L2_COND_GAUSSIAN ? o.data.img_feat
			      : o.data.cond == L2_COND_TEXT ? o.data.cap_feat
							    : o.data.pseudo_feat;

	/* the model, the trainer */
	L2Diffusion *net = l2_diffusion_new(&o.c, o.seed);
	if (lat_json) l2_diffusion_set_latent(net, lat_json);
	if (o.init) {
		char *a = l2_train_path(o.init, "model.safetensors");
		L2DiffusionConfig ic;
		l2_diffusion_read_config(a, &ic, NULL, 0);
		if (ic.cdim != dim) l2_die("%s: conditions of %d dimensions, the dataset's have %d", a, ic.cdim, dim);
		l2_diffusion_load_weights(a, net);
		free(a);
	}
	L2DiffusionTrainConfig tc = {.lr = o.lr, .lr_warmup = o.lr_warmup, .lr_ref = o.lr_ref, .batch = (int)o.batch,
				     .seed = o.seed, .nema = o.nema, .cond_drop = o.cond_drop, .weighting = o.weighting,
				     .grad_clip = o.grad_clip};
	memcpy(tc.ema_std, o.ema_std, sizeof tc.ema_std);
	L2DiffusionTrainer *trn = l2_diffusion_trainer_new_dist(net, &tc, &dist);
	L2TrainState st;
	memset(&st, 0, sizeof st);
	config_string(&o, st.config, sizeof st.config);
	if (lead) {
		l2_mkdir_p(o.out);
		/* one run per directory: a second run into it is refused while this one works
		 * (rank 0 holds the lock for the ranks) */
		char *lock = l2_train_path(o.out, "train.lock");
		l2_train_lock(lock, o.out);
		free(lock);
	}
	char *state_path = l2_train_path(o.out, "state.safetensors"), *log_path = l2_train_path(o.out, "log.tsv");
	LogRow *rows = NULL;
	int nrows = 0, caprows = 0;
	if (o.resume && lead) {
		load_state(&o, net, trn, &st, state_path);
		nrows = read_log(log_path, &rows, (long)st.step);
		caprows = nrows;
	}
	if (o.resume && dist.size > 1) { /* rank 0's state to the others */
		L2CkptGroup g[2];
		char en[L2_DIFF_MAXEMA][32];
		state_groups(&o, net, trn, g, en);
		ad_dist_bcast_state(&dist, &st, g, 2);
		l2_diffusion_trainer_set_step(trn, st.step);
	}

	/* grid: held-out captions (else training conditions) x fixed seeds (one per column) */
	const L2TrainData *gsrc = te.n ? &te : &tr;
	int grows = (int)(o.grid_rows < gsrc->n ? o.grid_rows : gsrc->n), gcols = (int)o.grid_cols, ng = grows * gcols;
	float *gh = l2_malloc((size_t)ng * dim * sizeof(float));
	uint64_t *gstream = l2_malloc((size_t)ng * sizeof(uint64_t));
	for (int r = 0; r < grows; r++)
		for (int c = 0; c < gcols; c++) {
			memcpy(gh + ((size_t)r * gcols + c) * dim, gsrc->cond + (size_t)r * dim, dim * sizeof(float));
			gstream[r * gcols + c] = (uint64_t)c;
		}

	/* evaluation: CLIP features of the held-out images once */
	L2Clip *clip = NULL;
	float *real_feat = NULL, *gen_feat = NULL, *real_inc = NULL, *gen_inc = NULL;
	L2Inception *inc = NULL;
	RPrec rp;
	memset(&rp, 0, sizeof rp);
	if (o.fid_every && te.n < 2) l2_die("%s: --fid-every needs at least 2 held-out images with caption features", o.dataset);
	if (o.fid_every && lead) {
		clip = l2_clip_load(o.clip, L2_CLIP_VISION);
		if (l2_clip_config(clip)->embed != dim)
			l2_die("%s: CLIP features have %d dimensions, the conditions %d", o.clip, l2_clip_config(clip)->embed, dim);
		real_feat = l2_malloc((size_t)te.n * dim * sizeof(float));
		gen_feat = l2_malloc((size_t)te.n * dim * sizeof(float));
		rprec_load(&rp, o.dataset, o.data.cap_feat, &te, dim);
		l2_clip_encode_generated(clip, te.px, te.n, R, real_feat);
		if (o.inception) {
			inc = l2_inception_open(o.inception);
			real_inc = l2_malloc((size_t)te.n * 2048 * sizeof(float));
			gen_inc = l2_malloc((size_t)te.n * 2048 * sizeof(float));
			l2_inception_features_chw(inc, te.px, te.n, R, real_inc);
		}
	}

	l2_train_catch_signals();
	int B = (int)o.batch, Bl = B / dist.size, b0 = dist.rank * Bl; /* this rank's samples: [b0, b0 + Bl) */
	/* a sample in the model's space (pixels, or latents) and an image */
	size_t zsz = (size_t)o.c.cimg * o.c.res * o.c.res, isz = (size_t)3 * R * R;
	L2Batcher bt;
	l2_batcher_init(&bt, tr.n, o.seed, &st.data);
	float *xb = l2_malloc(Bl * zsz * sizeof(float)), *hb = l2_malloc((size_t)Bl * dim * sizeof(float));
	int ngen = ng > te.n ? ng : te.n;
	float *gen = l2_malloc((size_t)ngen * zsz * sizeof(float));
	float *img = vae ? l2_malloc((size_t)ngen * isz * sizeof(float)) : gen; /* gen decoded */
	uint64_t *fstream = l2_malloc((size_t)(te.n ? te.n : 1) * sizeof(uint64_t));
	for (int i = 0; i < te.n; i++) fstream[i] = (uint64_t)i;
	L2Ema *sema = l2_diffusion_trainer_ema(trn, o.sample_ema);
	if (!l2_quiet) {
		int np, nt;
		l2_diffusion_params(net, &np, &nt);
		size_t npar = 0;
		for (int i = 0; i < nt; i++) npar += l2_diffusion_params(net, NULL, NULL)[i]->n;
		l2_info("training diffusion %dx%d (%s, %.2fM parameters, %.3f GMAC): %d images (%d paired, cond %s), %d held-out, "
			"batch %d, steps %lld..%ld",
			R, R, o.preset, npar * 1e-6, l2_diffusion_flops(&o.c) * 1e-9, tr.n, l2_train_data_npaired(&tr),
			l2_cond_name(o.data.cond), te.n, B, (long long)st.step, o.stop_after);
	}
	if (dist.size > 1) l2_info("data parallel: %d ranks x %d images, %d threads each", dist.size, Bl, l2_threads);
	double t0 = l2_now();
	long start = (long)st.step;
	double acc_loss = 0, acc_mse = 0, acc_band[L2_DIFF_BANDS] = {0}, acc_gn = 0, acc_lr = 0;
	int acc_n = 0, acc_bn[L2_DIFF_BANDS] = {0}, bad_total = 0;
	L2TrainClock tick;
	l2_train_clock_start(&tick, st.step);
	int stop = 0;
	while ((long)st.step < o.stop_after && !stop) {
		const int *idx = l2_batcher_next(&bt, B);
		for (int b = 0; b < Bl; b++) {
			L2Rng r;
			l2_train_rng(&r, o.seed, st.step, PHASE_DATA, (uint64_t)(b0 + b));
			if (zt) {
				l2_train_data_cond(&tr, &o.data, idx[b0 + b], &r, hb + (size_t)b * dim);
				memcpy(xb + b * zsz, zt + (size_t)idx[b0 + b] * zsz, zsz * sizeof(float));
			} else
				l2_train_data_sample(&tr, &o.data, idx[b0 + b], o.xflip, &r, xb + b * zsz, hb + (size_t)b * dim);
		}
		L2DiffusionStepStats s;
		l2_diffusion_train_step(trn, xb, hb, &s);
		st.step = l2_diffusion_trainer_step(trn);
		if (!isfinite(s.loss)) l2_die("step %lld: the loss is not finite (lower --lr?)", (long long)st.step);
		acc_loss += s.loss, acc_mse += s.mse, acc_gn += s.grad_norm, acc_lr += s.lr, acc_n++;
		for (int k = 0; k < L2_DIFF_BANDS; k++) acc_band[k] += s.band_mse[k], acc_bn[k] += s.band_n[k];
		bad_total += s.nonfinite;
		/* a signal reaches the ranks at different steps: stop together */
		stop = l2_dist_any(&dist, l2_train_stopped());

		int last = (long)st.step == o.stop_after, tick_now = (long)st.step % o.tick == 0 || last || stop;
		if (tick_now && dist.size > 1) { /* the replicas still equal */
			char what[48];
			int np;
			snprintf(what, sizeof what, "step %lld", (long long)st.step);
			AdTensor **all = l2_diffusion_params(net, &np, NULL);
			ad_dist_check_params(&dist, all, np, what);
		}
		if (tick_now && !lead) { /* rank 0 alone reports, samples and saves */
			acc_loss = acc_mse = acc_gn = acc_lr = 0, acc_n = 0;
			memset(acc_band, 0, sizeof acc_band), memset(acc_bn, 0, sizeof acc_bn);
		} else if (tick_now) {
			double ips = l2_train_clock_rate(&tick, st.step, B);
			LogRow row = {(long)st.step, acc_loss / acc_n, acc_mse / acc_n, {0}, {0}, acc_lr / acc_n, acc_gn / acc_n, ips,
				      NAN, NAN, NAN, NAN, NAN, 0};
			for (int k = 0; k < L2_DIFF_BANDS; k++) {
				row.band[k] = acc_bn[k] ? acc_band[k] / acc_bn[k] : NAN;
				double mid = l2_diffusion_band_edge(k) * sqrt(l2_diffusion_band_edge(1) / l2_diffusion_band_edge(0));
				row.u[k] = l2_diffusion_u(net, mid);
			}
			int fd_now = o.fid_every && ((long)st.step % o.fid_every == 0 || last);
			if (fd_now) {
				/* the final measurement takes every held-out caption */
				int nf = last || o.fid_images > te.n ? te.n : (int)o.fid_images;
				sample_images(&o, net, sema, te.cond, nf, o.seed ^ 0x666964, fstream, gen);
				if (vae) l2_vae_decode(vae, gen, nf, o.c.res, o.c.res, img);
				l2_clip_encode_generated(clip, img, nf, R, gen_feat);
				row.fd = l2_fid_frechet_features(gen_feat, nf, real_feat, te.n, dim);
				row.fd_n = nf;
				double cs = 0;
				for (int i = 0; i < nf; i++) {
					double d = 0;
					for (int k = 0; k < dim; k++) d += (double)gen_feat[(size_t)i * dim + k] * te.cond[(size_t)i * dim + k];
					cs += d;
				}
				row.clip_score = cs / nf;
				rprec_score(&rp, gen_feat, nf, &row.rp1, &row.rp5);
				if (inc) {
					l2_inception_features_chw(inc, img, nf, R, gen_inc);
					row.fid = l2_fid_frechet_features(gen_inc, nf, real_inc, te.n, 2048);
				}
			}
			/* grid: each row a fixed condition (the real image first), columns fixed seeds */
			sample_images(&o, net, sema, gh, ng, o.seed ^ 0x67726964, gstream, gen);
			if (vae) l2_vae_decode(vae, gen, ng, o.c.res, o.c.res, img);
			L2Image *tiles = l2_calloc((size_t)grows * (gcols + 1), sizeof(L2Image));
			for (int r = 0; r < grows; r++) {
				l2_image_from_chw(gsrc->px + (size_t)r * isz, R, R, -1, 1, &tiles[r * (gcols + 1)]);
				for (int c = 0; c < gcols; c++)
					l2_image_from_chw(img + ((size_t)r * gcols + c) * isz, R, R, -1, 1, &tiles[r * (gcols + 1) + c + 1]);
			}
			L2Image grid;
			const uint8_t white[3] = {255, 255, 255};
			l2_image_grid(tiles, grows * (gcols + 1), gcols + 1, 2, white, &grid);
			char name[64];
			snprintf(name, sizeof name, "grid-%06lld.png", (long long)st.step);
			char *p1 = l2_train_path(o.out, name), *p2 = l2_train_path(o.out, "grid.png"), *p3 = l2_train_path(o.out, "loss.png");
			l2_image_save_png(p1, &grid);
			l2_image_save_png(p2, &grid);
			l2_image_free(&grid);
			for (int k = 0; k < grows * (gcols + 1); k++) l2_image_free(&tiles[k]);
			free(tiles);
			if (nrows == caprows) caprows = caprows ? 2 * caprows : 64, rows = l2_realloc(rows, caprows * sizeof *rows);
			rows[nrows++] = row;
			plot_log(p3, rows, nrows);
			write_log(log_path, rows, nrows);
			free(p1), free(p2), free(p3);
			save_all(&o, net, trn, &st, feature);
			char extra[256] = "";
			if (isfinite(row.fd))
				snprintf(extra, sizeof extra, "  FD %.4f (%d)  CLIP %.4f  R-prec %.3f/%.3f", row.fd, row.fd_n, row.clip_score,
					 row.rp1, row.rp5);
			if (isfinite(row.fid)) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "  FID %.2f", row.fid);
			if (bad_total) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "  non-finite %d", bad_total);
			l2_train_log(st.step, o.steps, o.stop_after, B, ips, "loss %.2f  mse %.4f  lr %.2g%s", row.loss, row.mse, row.lr,
				     extra);
			acc_loss = acc_mse = acc_gn = acc_lr = 0, acc_n = 0;
			memset(acc_band, 0, sizeof acc_band), memset(acc_bn, 0, sizeof acc_bn);
			l2_train_clock_start(&tick, st.step);
		}
	}
	if ((long)st.step == start && lead) save_all(&o, net, trn, &st, feature); /* nothing to do: still a consistent run */
	int rc = l2_train_exit_code(st.step);
	if (stop) rc = 130; /* every rank, whichever got the signal */
	if (!rc && !l2_quiet && (long)st.step > start) {
		double dt = l2_now() - t0;
		long n = (long)st.step - start;
		l2_info("done: %ld steps in %.1f s, %.1f img/s, %.2f GFLOP/s (3x the forward multiply-adds)", n, dt, n * B / dt,
			2 * 3 * n * B * l2_diffusion_flops(&o.c) / dt * 1e-9);
	}
	l2_batcher_free(&bt);
	if (img != gen) free(img);
	free(zt), free(lat_json);
	if (vae) l2_vae_free(vae);
	free(xb), free(hb), free(gen), free(gh), free(gstream), free(fstream), free(rows), free(state_path), free(log_path);
	free(real_feat), free(gen_feat), free(real_inc), free(gen_inc);
	rprec_free(&rp);
	if (inc) l2_inception_free(inc);
	if (clip) l2_clip_free(clip);
	l2_diffusion_trainer_free(trn);
	l2_diffusion_free(net);
	l2_train_data_free(&tr), l2_train_data_free(&te);
	l2_dist_finish(&dist);
	return rc;
}
