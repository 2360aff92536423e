/* l2-train-gan — train Lafite's conditional StyleGAN2 (METHOD §4) on an l2
 * dataset of images with real caption features and/or pseudo text features.
 *
 *   l2-train-gan -d emoji.lmdb -o run --cond pseudo --steps 2000            language-free
 *   l2-train-gan -d emoji.lmdb -o ft --init run --pairs-fraction 0.1 ...   few-shot fine-tune
 *   l2-train-gan -d emoji.lmdb -o run --resume                             continue
 *
 * Writes into the run directory OUT: G.safetensors, G_ema.safetensors,
 * D.safetensors (lib/models/gan.h), state.safetensors (lib/nn/ckpt.h: groups G
 * and D, each with its Adam state, and G's EMA; the data position), log.tsv,
 * loss.png, grid-STEP.png and grid.png.  Input layout: schemas/dataset.md.
 * The data and conditions are lib/method/train_data.h's, the step
 * lib/method/gan_train.h's; this file is options, ticks and files. */
#include "nn/ckpt.h"
#include "nn/train.h"
#include "models/clip.h"
#include "models/inception.h"
#include "method/fid.h"
#include "method/gan_train.h"
#include "method/train_data.h"
#include "io/image.h"
#include "core/dist.h"
#include "nn/ad_dist.h"
#include "core/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	const char *dataset, *out, *init, *clip, *inception;
	L2TrainDataOptions data; /* conditions, paired subset, feature sets, resolution */
	L2GanTrainOptions tr;    /* the step's weights, rates and schedules */
	L2GanConfig c;
	int resume, xflip;
	long steps, stop_after, batch, tick, fid_every, grid_rows, grid_cols;
	uint64_t seed;
} Options;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: l2-train-gan -d DATASET [-o RUNDIR] [options]\n"
		"Train Lafite's conditional StyleGAN2 on the train split of an l2 dataset whose images carry\n"
		"real caption features and/or pseudo text features (schemas/dataset.md).  RUNDIR gets\n"
		"G.safetensors, G_ema.safetensors, D.safetensors, state.safetensors, log.tsv, loss.png,\n"
		"grid-STEP.png and grid.png.\n\n"
		"Data and conditions:\n"
		"  -d, --dataset PATH       l2 dataset (LMDB)\n"
		"  -o, --output DIR         run directory (default gan-run)\n"
		L2_TRAIN_DATA_HELP
		"Model:\n"
		"      --resolution N       16..256, a power of two (default 32)\n"
		"      --channel-base N     channels min(base / res, max) (default 4096)\n"
		"      --channel-max N      (default 128)\n"
		"      --map-layers N       mapping depth (default 4)\n"
		"      --z-dim N  --w-dim N latent sizes (default 128, 128)\n"
		"      --cond-hidden N      hidden size of each condition MLP (default 256)\n"
		"      --init RUNDIR        start from a run's G, G_ema and D (fine-tuning)\n"
		"Training:\n"
		"      --steps N            iterations (default 2000)   --batch N (default 16; < 4 or a multiple of 4)\n"
		"      --lr X               Adam learning rate of G and D (default 0.0025)\n"
		"      --lr-g X  --lr-d X   separately                  --beta1 X --beta2 X (default 0, 0.99)\n"
		"      --gamma-con X        weight of L_ConD (default 10)   --lambda-con X  of L_ConG (default 10)\n"
		"      --tau X              contrastive temperature (default 0.5)\n"
		"      --clip WEIGHTS       frozen CLIP for L_ConG and the CLIP-feature FD (l2-encode-images' file)\n"
		"      --r1 X               R1 weight (default 10; 0 = off)   --r1-every N (default 16)\n"
		"      --ema-images N       G EMA half-life in images (default 10000)  --ema-rampup X (default 0.05)\n"
		"      --no-xflip           no random horizontal flips of the real images\n"
		"      --augment SPEC       DiffAugment before D, on reals and fakes: any of color,translation,cutout\n"
		"                           comma-separated (default none; for a few hundred images)\n"
		"      --seed N             initialisation, data order, noise (default 0)\n"
		"Reports and checkpoints:\n"
		"      --tick N             every N steps: metrics line, grid, loss plot, log, checkpoint (default 100)\n"
		"      --fid-every N        CLIP-feature Frechet distance on the held-out captions every N steps\n"
		"                           (and at the end; needs --clip)\n"
		"      --inception WEIGHTS  with --fid-every: also the Inception FID (l2-fid's -m file) of those\n"
		"                           samples against the held-out images, at the training resolution\n"
		"      --grid ROWSxCOLS     sample grid size (default 8x4)\n"
		"      --resume             continue from RUNDIR/state.safetensors (bit-identical)\n"
		"      --stop-after N       stop (with a checkpoint) after step N\n"
		"      --threads N --quiet --progress\n"
		"  -h, --help               this help\n"
		"      --version            print the version\n"
		"Under mpirun -np P (or srun): data parallel, --batch the global batch (a multiple of 4P),\n"
		"B/P images per rank, rank 0 writing every file (DISTRIBUTED TRAINING in the man page).\n"
		"See l2-train-gan(1).\n");
}

enum {
	O_RES = L2_OPT_TRAIN_DATA_END, O_CB, O_CM, O_ML, O_ZD, O_WD, O_CH,
	O_INIT, O_STEPS, O_BATCH, O_LR, O_LRG, O_LRD, O_B1, O_B2, O_GC, O_LC, O_TAU, O_CLIP, O_R1, O_R1E, O_EMA, O_EMAR,
	O_NOFLIP, O_SEED, O_TICK, O_FID, O_GRID, O_RESUME, O_STOP, O_INC, O_AUG
};

static void parse_options(int argc, char **argv, Options *o)
{
	static const struct option lo[] = {
		L2_COMMON_LONGOPTS,
		{"dataset", required_argument, 0, 'd'}, {"output", required_argument, 0, 'o'},
		L2_TRAIN_DATA_LONGOPTS,
		{"resolution", required_argument, 0, O_RES},
		{"channel-base", required_argument, 0, O_CB}, {"channel-max", required_argument, 0, O_CM},
		{"map-layers", required_argument, 0, O_ML}, {"z-dim", required_argument, 0, O_ZD},
		{"w-dim", required_argument, 0, O_WD}, {"cond-hidden", required_argument, 0, O_CH},
		{"init", required_argument, 0, O_INIT}, {"steps", required_argument, 0, O_STEPS},
		{"batch", required_argument, 0, O_BATCH}, {"lr", required_argument, 0, O_LR},
		{"lr-g", required_argument, 0, O_LRG}, {"lr-d", required_argument, 0, O_LRD},
		{"beta1", required_argument, 0, O_B1}, {"beta2", required_argument, 0, O_B2},
		{"gamma-con", required_argument, 0, O_GC}, {"lambda-con", required_argument, 0, O_LC},
		{"tau", required_argument, 0, O_TAU}, {"clip", required_argument, 0, O_CLIP},
		{"r1", required_argument, 0, O_R1}, {"r1-every", required_argument, 0, O_R1E},
		{"ema-images", required_argument, 0, O_EMA}, {"ema-rampup", required_argument, 0, O_EMAR},
		{"no-xflip", no_argument, 0, O_NOFLIP}, {"seed", required_argument, 0, O_SEED},
		{"tick", required_argument, 0, O_TICK}, {"fid-every", required_argument, 0, O_FID},
		{"grid", required_argument, 0, O_GRID}, {"resume", no_argument, 0, O_RESUME},
		{"stop-after", required_argument, 0, O_STOP}, {"inception", required_argument, 0, O_INC},
		{"augment", required_argument, 0, O_AUG}, {0, 0, 0, 0}};
	memset(o, 0, sizeof *o);
	o->out = "gan-run";
	l2_train_data_defaults(&o->data);
	o->xflip = 1;
	l2_gan_train_defaults(&o->tr);
	o->steps = 2000, o->batch = 16, o->tick = 100, o->grid_rows = 8, o->grid_cols = 4;
	o->c = (L2GanConfig){.res = 32, .zdim = 128, .wdim = 128, .map_layers = 4, .cbase = 4096, .cmax = 128, .chid = 256};
	int ch;
	while ((ch = getopt_long(argc, argv, "hd:o:", lo, NULL)) != -1) {
		if (l2_common_option(ch, optarg, usage) || l2_train_data_option(ch, optarg, usage, &o->data)) continue;
		switch (ch) {
		case 'd': o->dataset = optarg; break;
		case 'o': o->out = optarg; break;
		case O_RES: o->c.res = (int)l2_parse_long(optarg, "--resolution", 16, 256); break;
		case O_CB: o->c.cbase = (int)l2_parse_long(optarg, "--channel-base", 4, 1 << 24); break;
		case O_CM: o->c.cmax = (int)l2_parse_long(optarg, "--channel-max", 1, 4096); break;
		case O_ML: o->c.map_layers = (int)l2_parse_long(optarg, "--map-layers", 1, 64); break;
		case O_ZD: o->c.zdim = (int)l2_parse_long(optarg, "--z-dim", 1, 8192); break;
		case O_WD: o->c.wdim = (int)l2_parse_long(optarg, "--w-dim", 1, 8192); break;
		case O_CH: o->c.chid = (int)l2_parse_long(optarg, "--cond-hidden", 1, 8192); break;
		case O_INIT: o->init = optarg; break;
		case O_STEPS: o->steps = l2_parse_long(optarg, "--steps", 1, 1L << 40); break;
		case O_BATCH: o->batch = l2_parse_long(optarg, "--batch", 2, 4096); break;
		case O_LR: o->tr.lr_g = o->tr.lr_d = l2_parse_double(optarg, "--lr"); break;
		case O_LRG: o->tr.lr_g = l2_parse_double(optarg, "--lr-g"); break;
		case O_LRD: o->tr.lr_d = l2_parse_double(optarg, "--lr-d"); break;
		case O_B1: o->tr.beta1 = l2_parse_double(optarg, "--beta1"); break;
		case O_B2: o->tr.beta2 = l2_parse_double(optarg, "--beta2"); break;
		case O_GC: o->tr.gamma_con = l2_parse_double(optarg, "--gamma-con"); break;
		case O_LC: o->tr.lambda_con = l2_parse_double(optarg, "--lambda-con"); break;
		case O_TAU: o->tr.tau = l2_parse_double(optarg, "--tau"); break;
		case O_CLIP: o->clip = optarg; break;
		case O_R1: o->tr.r1 = l2_parse_double(optarg, "--r1"); break;
		case O_R1E: o->tr.r1_every = l2_parse_long(optarg, "--r1-every", 1, 1 << 20); break;
		case O_EMA: o->tr.ema_images = l2_parse_double(optarg, "--ema-images"); break;
		case O_EMAR: o->tr.ema_rampup = l2_parse_double(optarg, "--ema-rampup"); break;
		case O_NOFLIP: o->xflip = 0; break;
		case O_AUG: {
			char bad[64];
			o->tr.augment = l2_augment_parse(optarg, bad, sizeof bad);
			if (o->tr.augment < 0)
				l2_usage_error(usage, "--augment: unknown augmentation '%s' (color, translation, cutout or none)", bad);
			break;
		}
		case O_SEED: o->seed = l2_parse_u64(optarg, "--seed"); break;
		case O_TICK: o->tick = l2_parse_long(optarg, "--tick", 1, 1L << 40); break;
		case O_FID: o->fid_every = l2_parse_long(optarg, "--fid-every", 0, 1L << 40); break;
		case O_INC: o->inception = optarg; break;
		case O_GRID: l2_train_grid_option(optarg, usage, &o->grid_rows, &o->grid_cols); break;
		case O_RESUME: o->resume = 1; break;
		case O_STOP: o->stop_after = l2_parse_long(optarg, "--stop-after", 1, 1L << 40); break;
		default: l2_usage_error(usage, "unknown option");
		}
	}
	if (optind < argc) l2_usage_error(usage, "unexpected argument '%s'", argv[optind]);
	if (!o->dataset) l2_usage_error(usage, "give the dataset with -d PATH");
	l2_train_data_options_check(&o->data, usage);
	const L2GanTrainOptions *t = &o->tr;
	if (!(t->lr_g > 0 && t->lr_d > 0) || !(t->beta1 >= 0 && t->beta1 < 1) || !(t->beta2 >= 0 && t->beta2 < 1) ||
	    !(t->tau > 0) || t->gamma_con < 0 || t->lambda_con < 0 || t->r1 < 0 || !(t->ema_images >= 0) ||
	    t->ema_rampup < 0 || !(o->data.xi >= 0))
		l2_usage_error(usage, "--lr, --tau must be > 0; --beta1, --beta2 in [0, 1); weights, --xi >= 0");
	if (o->c.res & (o->c.res - 1)) l2_usage_error(usage, "--resolution must be a power of two");
	if (o->batch >= 4 && o->batch % 4) l2_usage_error(usage, "--batch must be below 4 or a multiple of 4 (minibatch std groups)");
	if (o->fid_every && !o->clip) l2_usage_error(usage, "--fid-every needs --clip WEIGHTS");
	if (o->inception && !o->fid_every) l2_usage_error(usage, "--inception needs --fid-every N");
	if (!o->stop_after || o->stop_after > o->steps) o->stop_after = o->steps;
	o->data.seed = o->tr.seed = o->seed, o->data.res = o->c.res;
}

/* ---- files ------------------------------------------------------------------------------- */

static void config_string(const Options *o, char *buf, size_t len)
{
	char c[256];
	const L2GanTrainOptions *t = &o->tr;
	l2_gan_config_str(&o->c, c, sizeof c);
	snprintf(buf, len,
		 "%s data=%s cond=%s pairs=%.17g paired_only=%d feats=%s,%s,%s xi=%.17g steps=%ld batch=%ld lr_g=%.17g "
		 "lr_d=%.17g betas=%.17g,%.17g gamma_con=%.17g lambda_con=%.17g tau=%.17g clip=%s r1=%.17g r1_every=%ld "
		 "ema=%.17g,%.17g wavg_beta=%.17g crop=%.17g,%.17g xflip=%d seed=%llu init=%s",
		 c, o->dataset, l2_cond_name(o->data.cond), o->data.pairs, o->data.paired_only, o->data.cap_feat,
		 o->data.pseudo_feat, o->data.img_feat, o->data.xi, o->steps, o->batch, t->lr_g, t->lr_d, t->beta1, t->beta2,
		 t->gamma_con, t->lambda_con, t->tau, o->clip ? o->clip : "-", t->r1, t->r1_every, t->ema_images,
		 t->ema_rampup, t->wavg_beta, t->crop_lo, t->crop_hi, o->xflip, (unsigned long long)o->seed,
		 o->init ? o->init : "-");
	/* only when on: runs without it keep the configuration (and states) of before */
	if (t->augment) {
		char a[64];
		l2_augment_str(t->augment, a, sizeof a);
		snprintf(buf + strlen(buf), len - strlen(buf), " augment=%s", a);
	}
}

/* --init RUNDIR: G, G_ema and D of another run with the same configuration. */
static void load_init(L2GanTrainer *t, const char *dir)
{
	char *a = l2_train_path(dir, "G.safetensors"), *b = l2_train_path(dir, "D.safetensors");
	char *e = l2_train_path(dir, "G_ema.safetensors");
	L2GanConfig ic;
	l2_gan_read_config(a, &ic, NULL, 0);
	if (ic.cdim != t->c.cdim) l2_die("%s: conditions of %d dimensions, the dataset's have %d", a, ic.cdim, t->c.cdim);
	if (memcmp(&ic, &t->c, sizeof ic)) {
		char s1[256], s2[256];
		l2_gan_config_str(&ic, s1, sizeof s1), l2_gan_config_str(&t->c, s2, sizeof s2);
		l2_die("%s: made with %s; this run has %s", a, s1, s2);
	}
	l2_ckpt_load_weights(e, t->gp, t->ng);
	l2_gan_trainer_reset_ema(t);
	l2_ckpt_load_weights(a, t->gp, t->ng);
	l2_ckpt_load_weights(b, t->dp, t->nd);
	free(a), free(b), free(e);
}

static void save_all(const Options *o, L2GanTrainer *t, const L2TrainState *st)
{
	char *sp = l2_train_path(o->out, "state.safetensors"), *gp = l2_train_path(o->out, "G.safetensors");
	char *ep = l2_train_path(o->out, "G_ema.safetensors"), *dp = l2_train_path(o->out, "D.safetensors");
	L2CkptGroup grp[2];
	l2_ckpt_save_state(sp, st, grp, l2_gan_trainer_groups(t, grp));
	l2_gan_save(gp, t->gp, t->ng, &o->c, "G", st->step);
	l2_gan_save(dp, t->dp, t->nd, &o->c, "D", st->step);
	l2_ema_swap(t->ema);
	l2_gan_save(ep, t->gp, t->ng, &o->c, "G_ema", st->step);
	l2_ema_swap(t->ema);
	free(sp), free(gp), free(ep), free(dp);
}

/* ---- ticks ----------------------------------------------------------------------------------- */

enum { COL_G, COL_D, COL_COND, COL_CONG, COL_R1, COL_FD, COL_IPS, COL_FID, NCOL };
static const char *col_names[NCOL] = {"loss_G", "loss_D", "con_D", "con_G", "r1", "fd_clip", "images_per_s", "fid_inception"};
static const char *col_fmt[NCOL] = {"%.6f", "%.6f", "%.6f", "%.6f", "%.6f", "%.6f", "%.2f", "%.6f"};

typedef struct {
	const L2TrainData *te, *gsrc; /* held-out images; the grid's rows (te, else the training set) */
	int grows, gcols;
	float *gh, *gen;              /* grid conditions [grows * gcols, dim]; generated images */
	L2Clip *clip;                 /* CLIP-feature FD (--fid-every) */
	float *real_feat, *gen_feat;
	L2Inception *inc;             /* Inception FID (--inception) */
	float *real_inc, *gen_inc;
	L2TrainTsv log;
} Ticks;

/* Metrics of G_ema (when due), the grid, log.tsv, loss.png, then the checkpoint. */
static void tick(const Options *o, L2GanTrainer *t, const L2TrainState *st, Ticks *k, double *row, int last)
{
	int R = o->c.res, dim = o->c.cdim, n = k->te->n;
	size_t isz = (size_t)3 * R * R;
	row[COL_FD] = row[COL_FID] = NAN;
	if (o->fid_every && (st->step % o->fid_every == 0 || last)) {
		l2_gan_trainer_sample(t, k->te->cond, n, o->seed ^ 0x666964, k->gen);
		l2_clip_encode_generated(k->clip, k->gen, n, R, k->gen_feat);
		row[COL_FD] = l2_fid_frechet_features(k->gen_feat, n, k->real_feat, n, dim);
		if (k->inc) {
			l2_inception_features_chw(k->inc, k->gen, n, R, k->gen_inc);
			row[COL_FID] = l2_fid_frechet_features(k->gen_inc, n, k->real_inc, n, 2048);
		}
	}
	/* grid: each row a fixed condition (real image first), columns fixed seeds */
	int gr = k->grows, gc = k->gcols;
	l2_gan_trainer_sample(t, k->gh, gr * gc, o->seed ^ 0x67726964, k->gen);
	L2Image *tiles = l2_calloc((size_t)gr * (gc + 1), sizeof(L2Image)), grid;
	for (int r = 0; r < gr; r++) {
		l2_image_from_chw(k->gsrc->px + (size_t)r * isz, R, R, -1, 1, &tiles[r * (gc + 1)]);
		for (int c = 0; c < gc; c++) l2_image_from_chw(k->gen + ((size_t)r * gc + c) * isz, R, R, -1, 1, &tiles[r * (gc + 1) + c + 1]);
	}
	const uint8_t white[3] = {255, 255, 255};
	l2_image_grid(tiles, gr * (gc + 1), gc + 1, 2, white, &grid);
	char name[64];
	snprintf(name, sizeof name, "grid-%06lld.png", (long long)st->step);
	char *p1 = l2_train_path(o->out, name), *p2 = l2_train_path(o->out, "grid.png");
	char *p3 = l2_train_path(o->out, "loss.png"), *p4 = l2_train_path(o->out, "log.tsv");
	l2_image_save_png(p1, &grid);
	l2_image_save_png(p2, &grid);
	l2_image_free(&grid);
	for (int i = 0; i < gr * (gc + 1); i++) l2_image_free(&tiles[i]);
	free(tiles);
	l2_train_tsv_add(&k->log, st->step, row);
	l2_train_tsv_plot(&k->log, p3, "adversarial losses (tick means)", (int[]){COL_G, COL_D}, 2);
	l2_train_tsv_write(&k->log, p4);
	free(p1), free(p2), free(p3), free(p4);
	save_all(o, t, st);
	char fd[64] = "";
	if (isfinite(row[COL_FD])) snprintf(fd, sizeof fd, "  FD %.4f", row[COL_FD]);
	if (isfinite(row[COL_FID])) snprintf(fd + strlen(fd), sizeof fd - strlen(fd), "  FID %.2f", row[COL_FID]);
	l2_train_log(st->step, o->steps, o->stop_after, (int)o->batch, row[COL_IPS], "G %.4f  D %.4f  ConD %.4f  ConG %.4f  R1 %.4f%s",
		     row[COL_G], row[COL_D], row[COL_COND], row[COL_CONG], row[COL_R1], fd);
}

/* The fixed grid conditions, and the held-out images' CLIP and Inception features once. */
static void ticks_init(const Options *o, const L2TrainData *tr, const L2TrainData *te, Ticks *k)
{
	int R = o->c.res, dim = o->c.cdim;
	memset(k, 0, sizeof *k);
	k->te = te, k->gsrc = te->n ? te : tr;
	k->grows = (int)(o->grid_rows < k->gsrc->n ? o->grid_rows : k->gsrc->n), k->gcols = (int)o->grid_cols;
	k->gh = l2_malloc((size_t)k->grows * k->gcols * dim * sizeof(float));
	for (int r = 0; r < k->grows; r++)
		for (int c = 0; c < k->gcols; c++)
			memcpy(k->gh + ((size_t)r * k->gcols + c) * dim, k->gsrc->cond + (size_t)r * dim, dim * sizeof(float));
	int ngen = k->grows * k->gcols > te->n ? k->grows * k->gcols : te->n;
	k->gen = l2_malloc((size_t)ngen * 3 * R * R * sizeof(float));
	if (o->clip) {
		k->clip = l2_clip_load(o->clip, L2_CLIP_VISION);
		if (l2_clip_config(k->clip)->embed != dim)
			l2_die("%s: CLIP features have %d dimensions, the conditions %d", o->clip, l2_clip_config(k->clip)->embed, dim);
	}
	if (o->fid_every) {
		if (te->n < 2) l2_die("%s: --fid-every needs at least 2 held-out images with caption features", o->dataset);
		k->real_feat = l2_malloc((size_t)te->n * dim * sizeof(float));
		k->gen_feat = l2_malloc((size_t)te->n * dim * sizeof(float));
		l2_clip_encode_generated(k->clip, te->px, te->n, R, k->real_feat);
	}
	if (o->inception) { /* at the training resolution */
		k->inc = l2_inception_open(o->inception);
		k->real_inc = l2_malloc((size_t)te->n * 2048 * sizeof(float));
		k->gen_inc = l2_malloc((size_t)te->n * 2048 * sizeof(float));
		l2_inception_features_chw(k->inc, te->px, te->n, R, k->real_inc);
	}
	l2_train_tsv_init(&k->log, NCOL, col_names, col_fmt);
}

static void ticks_free(Ticks *k)
{
	if (k->inc) l2_inception_free(k->inc);
	if (k->clip) l2_clip_free(k->clip);
	free(k->gh), free(k->gen), free(k->real_feat), free(k->gen_feat), free(k->real_inc), free(k->gen_inc);
	l2_train_tsv_free(&k->log);
}

/* ---- main ---------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	Options o;
	parse_options(argc, argv, &o);
	/* before anything is written: a rank that cannot join refuses here */
	L2Dist dist;
	l2_dist_init(&dist);
	int lead = dist.rank == 0; /* reads the state, writes every file, measures */
	int R = o.c.res;

	/* data: every feature set used must have the same size */
	L2Dataset *ds = l2_dataset_open(o.dataset, L2_STORE_RDONLY);
	int dim = o.c.cdim = l2_train_data_dim(ds, &o.data, o.fid_every > 0);
	const char *bad = l2_gan_check(&o.c);
	if (bad) l2_usage_error(usage, "%s", bad);
	L2TrainData tr, te;
	int drop_tr = 0, drop_te = 0;
	l2_train_data_load(ds, &o.data, L2_SPLIT_TRAIN, dim, &tr, &drop_tr);
	l2_train_data_load(ds, &o.data, L2_SPLIT_TEST, dim, &te, &drop_te);
	l2_dataset_close(ds);
	if (drop_tr && !l2_quiet && lead) l2_info("%s: %d training images without the features they need: not used", o.dataset, drop_tr);
	if (tr.n < 2) l2_die("%s: %d usable training images; need at least 2", o.dataset, tr.n);
	if (o.batch > tr.n) {
		long b = tr.n >= 4 ? tr.n / 4 * 4 : tr.n;
		if (lead) l2_warn("--batch %ld is more than the %d training images: using %ld", o.batch, tr.n, b);
		o.batch = b;
	}
	if (dist.size > 1 && o.batch % (4 * dist.size))
		l2_usage_error(usage, "--batch %ld does not split over %d ranks: minibatch-std groups of 4 stay on one rank, so "
			       "the global batch must be a multiple of 4 x %d = %d", o.batch, dist.size, dist.size, 4 * dist.size);

	/* models: the frozen CLIP for L_ConG, G and D with their optimizers */
	L2ClipTrain *clip = NULL;
	if (o.clip && o.tr.lambda_con > 0) {
		clip = l2_cliptr_load_image_tower(o.clip);
		if (clip->c.embed != dim) l2_die("%s: CLIP features have %d dimensions, the conditions %d", o.clip, clip->c.embed, dim);
	}
	L2GanTrainer *t = l2_gan_trainer_new(&o.c, &o.tr, clip);
	if (o.init) load_init(t, o.init);
	L2TrainState st = {0};
	config_string(&o, st.config, sizeof st.config);
	Ticks k;
	memset(&k, 0, sizeof k);
	if (lead) { /* one run per directory: rank 0 holds the lock */
		l2_mkdir_p(o.out);
		char *lock = l2_train_path(o.out, "train.lock");
		l2_train_lock(lock, o.out);
		free(lock);
		ticks_init(&o, &tr, &te, &k);
	}
	if (o.resume && lead) {
		char *sp = l2_train_path(o.out, "state.safetensors"), *lp = l2_train_path(o.out, "log.tsv");
		L2CkptGroup grp[2];
		l2_train_resume_state(sp, &st, grp, l2_gan_trainer_groups(t, grp));
		l2_train_tsv_read(&k.log, lp, st.step);
		free(sp), free(lp);
	}
	if (o.resume) {
		L2CkptGroup grp[2];
		ad_dist_bcast_state(&dist, &st, grp, l2_gan_trainer_groups(t, grp));
	}

	l2_train_catch_signals();
	int B = (int)o.batch;
	L2Batcher bt;
	l2_batcher_init(&bt, tr.n, o.seed, &st.data);
	float *xb = l2_malloc((size_t)B * 3 * R * R * sizeof(float)), *hb = l2_malloc((size_t)B * dim * sizeof(float));
	/* this rank's samples of the global batch, in minibatch-std order */
	int Bl = B / dist.size, *pos = l2_malloc((size_t)Bl * sizeof *pos);
	l2_gan_rank_positions(B, dist.size, dist.rank, pos);
	float *xl = l2_malloc((size_t)Bl * 3 * R * R * sizeof(float)), *hl = l2_malloc((size_t)Bl * dim * sizeof(float));
	if (!l2_quiet)
		l2_info("training GAN %dx%d: %d images (%d paired, cond %s), %d held-out, G %d / D %d tensors, batch %d, steps %lld..%ld",
			R, R, tr.n, l2_train_data_npaired(&tr), l2_cond_name(o.data.cond), te.n, t->ng, t->nd, B,
			(long long)st.step, o.stop_after);
	if (dist.size > 1) l2_info("data parallel: %d ranks x %d images, %d threads each", dist.size, Bl, l2_threads);
	double t0 = l2_now(), sum[NCOL] = {0};
	long nsum = 0, nr1 = 0, start = (long)st.step;
	L2TrainClock clock;
	l2_train_clock_start(&clock, st.step);
	int stop = 0;
	while ((long)st.step < o.stop_after && !stop) {
		const int *idx = l2_batcher_next(&bt, B);
		l2_train_data_batch(&tr, &o.data, idx, B, o.xflip, o.seed, st.step, L2_GAN_PHASE_DATA, xb, hb);
		L2GanLosses l;
		if (dist.size == 1) l2_gan_train_step(t, st.step, xb, hb, B, &l);
		else {
			size_t isz = (size_t)3 * R * R;
			for (int b = 0; b < Bl; b++) {
				memcpy(xl + b * isz, xb + pos[b] * isz, isz * sizeof(float));
				memcpy(hl + (size_t)b * dim, hb + (size_t)pos[b] * dim, dim * sizeof(float));
			}
			l2_gan_train_step_dist(t, &dist, st.step, xl, hl, Bl, B, pos, &l);
		}
		sum[COL_G] += l.g, sum[COL_D] += l.d, sum[COL_COND] += l.con_d, sum[COL_CONG] += l.con_g, nsum++;
		if (l.r1_done) sum[COL_R1] += l.r1, nr1++;
		st.step++;
		/* a signal reaches the ranks at different steps: stop together */
		stop = l2_dist_any(&dist, l2_train_stopped());
		int last = (long)st.step == o.stop_after;
		if ((long)st.step % o.tick == 0 || last || stop) {
			char what[48];
			snprintf(what, sizeof what, "step %lld", (long long)st.step);
			ad_dist_check_params(&dist, t->gp, t->ng, what);
			ad_dist_check_params(&dist, t->dp, t->nd, what);
			double row[NCOL];
			for (int c = 0; c < COL_R1; c++) row[c] = sum[c] / nsum;
			row[COL_R1] = nr1 ? sum[COL_R1] / nr1 : 0;
			row[COL_IPS] = l2_train_clock_rate(&clock, st.step, B);
			if (lead) tick(&o, t, &st, &k, row, last);
			memset(sum, 0, sizeof sum);
			nsum = nr1 = 0;
			l2_train_clock_start(&clock, st.step);
		}
	}
	if ((long)st.step == start && lead) save_all(&o, t, &st); /* nothing to do: still leave a consistent run */
	int rc = l2_train_exit_code(st.step);
	if (stop) rc = 130; /* every rank, whichever got the signal */
	if (!rc && !l2_quiet) {
		double dt = l2_now() - t0;
		long n = (long)st.step - start;
		if (n > 0)
			l2_info("done: %ld steps in %.1f s, %.1f img/s, %.2f GFLOP/s (3x forward multiply-adds of G twice and D three times)",
				n, dt, n * B / dt, 2 * 3 * n * B * (2 * l2_gan_g_flops(&o.c) + 3 * l2_gan_d_flops(&o.c)) / dt * 1e-9);
	}
	l2_batcher_free(&bt);
	free(xb), free(hb), free(xl), free(hl), free(pos);
	ticks_free(&k);
	l2_gan_trainer_free(t);
	if (clip) l2_cliptr_free(clip);
	l2_train_data_free(&tr), l2_train_data_free(&te);
	l2_dist_finish(&dist);
	return rc;
}
