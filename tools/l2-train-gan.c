/* l2-train-gan — train Lafite's conditional StyleGAN2 (METHOD §4) on an l2
 * dataset of images with real caption features and/or pseudo text features.
 *
 *   l2-train-gan -d emoji.lmdb -o run --cond pseudo --steps 2000            language-free
 *   l2-train-gan -d emoji.lmdb -o ft --init run --pairs-fraction 0.1 ...   few-shot fine-tune
 *   l2-train-gan -d emoji.lmdb -o run --resume                             continue
 *
 * Writes into the run directory OUT: G.safetensors, G_ema.safetensors,
 * D.safetensors (lib/models/gan.h), state.safetensors (lib/nn/ckpt.h: both networks,
 * both Adam states, the EMA, RNG, data position), log.tsv, loss.png,
 * grid-STEP.png and grid.png.  Input layout: schemas/dataset.md. */
#include "nn/ckpt.h"
#include "nn/train.h"
#include "models/clip.h"
#include "models/clip_train.h"
#include "method/dataset.h"
#include "method/train_data.h"
#include "models/gan.h"
#include "models/gan_eval.h"
#include "io/image.h"
#include "nn/optim.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "core/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	const char *dataset, *out, *init, *clip, *inception;
	L2TrainDataOptions data; /* conditions, paired subset, feature sets, resolution */
	int resume, xflip;
	long steps, stop_after, batch, tick, fid_every, r1_every, grid_rows, grid_cols;
	double lr_g, lr_d, beta1, beta2, gamma_con, lambda_con, r1, ema_images, ema_rampup, tau;
	uint64_t seed;
	L2GanConfig c;
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
		"      --cond KIND          text | pseudo | gaussian | mixed (default pseudo): the condition of\n"
		"                           images outside the paired subset (text = every image paired)\n"
		"      --pairs-fraction P   this deterministic fraction of the images keeps its real caption\n"
		"                           features (default 0: language-free)\n"
		"      --paired-only        drop the images outside the paired subset\n"
		"      --caption-feature N  feature set of caption features, keyed by caption (default caption)\n"
		"      --pseudo-feature N   feature set of pseudo features, keyed by image (default pseudo)\n"
		"      --image-feature N    CLIP image features, for --cond gaussian (default image)\n"
		"      --xi X               gaussian: normalize(f/|f| + X eps/|eps|) (default 3)\n"
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
		"See l2-train-gan(1).\n");
}

enum {
	O_COND = L2_OPT_COMMON_END, O_PAIRS, O_PONLY, O_CAPF, O_PSF, O_IMF, O_XI, O_RES, O_CB, O_CM, O_ML, O_ZD, O_WD, O_CH,
	O_INIT, O_STEPS, O_BATCH, O_LR, O_LRG, O_LRD, O_B1, O_B2, O_GC, O_LC, O_TAU, O_CLIP, O_R1, O_R1E, O_EMA, O_EMAR,
	O_NOFLIP, O_SEED, O_TICK, O_FID, O_GRID, O_RESUME, O_STOP, O_INC
};

static void parse_options(int argc, char **argv, Options *o)
{
	static const struct option lo[] = {
		L2_COMMON_LONGOPTS,
		{"dataset", required_argument, 0, 'd'}, {"output", required_argument, 0, 'o'},
		{"cond", required_argument, 0, O_COND}, {"pairs-fraction", required_argument, 0, O_PAIRS},
		{"paired-only", no_argument, 0, O_PONLY}, {"caption-feature", required_argument, 0, O_CAPF},
		{"pseudo-feature", required_argument, 0, O_PSF}, {"image-feature", required_argument, 0, O_IMF},
		{"xi", required_argument, 0, O_XI}, {"resolution", required_argument, 0, O_RES},
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
		{"stop-after", required_argument, 0, O_STOP}, {"inception", required_argument, 0, O_INC}, {0, 0, 0, 0}};
	memset(o, 0, sizeof *o);
	o->out = "gan-run";
	l2_train_data_defaults(&o->data);
	o->xflip = 1;
	o->steps = 2000, o->batch = 16, o->tick = 100, o->r1_every = 16, o->grid_rows = 8, o->grid_cols = 4;
	o->lr_g = o->lr_d = 0.0025, o->beta1 = 0, o->beta2 = 0.99;
	o->gamma_con = 10, o->lambda_con = 10, o->r1 = 10, o->ema_images = 10000, o->ema_rampup = 0.05, o->tau = 0.5;
	o->c = (L2GanConfig){.res = 32, .zdim = 128, .wdim = 128, .map_layers = 4, .cbase = 4096, .cmax = 128, .chid = 256};
	int ch;
	while ((ch = getopt_long(argc, argv, "hd:o:", lo, NULL)) != -1) {
		if (l2_common_option(ch, optarg, usage)) continue;
		switch (ch) {
		case 'd': o->dataset = optarg; break;
		case 'o': o->out = optarg; break;
		case O_COND: {
			int k = l2_cond_parse(optarg);
			if (k < 0) l2_usage_error(usage, "--cond must be text, pseudo, gaussian or mixed, not '%s'", optarg);
			o->data.cond = k;
			break;
		}
		case O_PAIRS: o->data.pairs = l2_parse_double(optarg, "--pairs-fraction"); break;
		case O_PONLY: o->data.paired_only = 1; break;
		case O_CAPF: o->data.cap_feat = optarg; break;
		case O_PSF: o->data.pseudo_feat = optarg; break;
		case O_IMF: o->data.img_feat = optarg; break;
		case O_XI: o->data.xi = l2_parse_double(optarg, "--xi"); break;
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
		case O_LR: o->lr_g = o->lr_d = l2_parse_double(optarg, "--lr"); break;
		case O_LRG: o->lr_g = l2_parse_double(optarg, "--lr-g"); break;
		case O_LRD: o->lr_d = l2_parse_double(optarg, "--lr-d"); break;
		case O_B1: o->beta1 = l2_parse_double(optarg, "--beta1"); break;
		case O_B2: o->beta2 = l2_parse_double(optarg, "--beta2"); break;
		case O_GC: o->gamma_con = l2_parse_double(optarg, "--gamma-con"); break;
		case O_LC: o->lambda_con = l2_parse_double(optarg, "--lambda-con"); break;
		case O_TAU: o->tau = l2_parse_double(optarg, "--tau"); break;
		case O_CLIP: o->clip = optarg; break;
		case O_R1: o->r1 = l2_parse_double(optarg, "--r1"); break;
		case O_R1E: o->r1_every = l2_parse_long(optarg, "--r1-every", 1, 1 << 20); break;
		case O_EMA: o->ema_images = l2_parse_double(optarg, "--ema-images"); break;
		case O_EMAR: o->ema_rampup = l2_parse_double(optarg, "--ema-rampup"); break;
		case O_NOFLIP: o->xflip = 0; break;
		case O_SEED: o->seed = l2_parse_u64(optarg, "--seed"); break;
		case O_TICK: o->tick = l2_parse_long(optarg, "--tick", 1, 1L << 40); break;
		case O_FID: o->fid_every = l2_parse_long(optarg, "--fid-every", 0, 1L << 40); break;
		case O_INC: o->inception = optarg; break;
		case O_GRID:
			if (sscanf(optarg, "%ldx%ld", &o->grid_rows, &o->grid_cols) != 2 || o->grid_rows < 1 || o->grid_cols < 1 ||
			    o->grid_rows > 64 || o->grid_cols > 64)
				l2_usage_error(usage, "--grid wants ROWSxCOLS, each 1..64");
			break;
		case O_RESUME: o->resume = 1; break;
		case O_STOP: o->stop_after = l2_parse_long(optarg, "--stop-after", 1, 1L << 40); break;
		default: l2_usage_error(usage, "unknown option");
		}
	}
	if (optind < argc) l2_usage_error(usage, "unexpected argument '%s'", argv[optind]);
	if (!o->dataset) l2_usage_error(usage, "give the dataset with -d PATH");
	if (!(o->data.pairs >= 0 && o->data.pairs <= 1)) l2_usage_error(usage, "--pairs-fraction must be in [0, 1]");
	if (o->data.cond == L2_COND_TEXT) o->data.pairs = 1;
	if (!(o->lr_g > 0 && o->lr_d > 0) || !(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1) ||
	    !(o->tau > 0) || o->gamma_con < 0 || o->lambda_con < 0 || o->r1 < 0 || !(o->ema_images >= 0) ||
	    o->ema_rampup < 0 || !(o->data.xi >= 0))
		l2_usage_error(usage, "--lr, --tau must be > 0; --beta1, --beta2 in [0, 1); weights, --xi >= 0");
	if (o->c.res & (o->c.res - 1)) l2_usage_error(usage, "--resolution must be a power of two");
	if (o->batch >= 4 && o->batch % 4) l2_usage_error(usage, "--batch must be below 4 or a multiple of 4 (minibatch std groups)");
	if (o->fid_every && !o->clip) l2_usage_error(usage, "--fid-every needs --clip WEIGHTS");
	if (o->inception && !o->fid_every) l2_usage_error(usage, "--inception needs --fid-every N");
	if (!o->stop_after || o->stop_after > o->steps) o->stop_after = o->steps;
	o->data.seed = o->seed, o->data.res = o->c.res;
}

/* ---- reports --------------------------------------------------------------------- */

typedef struct {
	long step;
	double lg, ld, cond, cong, r1, fd, ips, fid; /* fd: CLIP features; fid: Inception (NAN: not taken) */
} LogRow;

static void draw_line(L2Image *im, int x0, int y0, int x1, int y1, const uint8_t col[3])
{
	int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, e = dx + dy;
	for (;;) {
		if (x0 >= 0 && y0 >= 0 && x0 < im->w && y0 < im->h) memcpy(im->data + ((size_t)y0 * im->w + x0) * 3, col, 3);
		if (x0 == x1 && y0 == y1) break;
		int e2 = 2 * e;
		if (e2 >= dy) e += dy, x0 += sx;
		if (e2 <= dx) e += dx, y0 += sy;
	}
}

/* Loss curves: G (red) and D (blue) total adversarial losses against step,
 * on a shared linear axis with a light grid. */
static void plot_losses(const char *path, const LogRow *rows, int n)
{
	int W = 640, H = 320, m = 24;
	L2Image im;
	l2_image_alloc(&im, W, H, L2_MODE_RGB);
	memset(im.data, 255, (size_t)W * H * 3);
	double lo = 1e300, hi = -1e300;
	for (int i = 0; i < n; i++) {
		double v[2] = {rows[i].lg, rows[i].ld};
		for (int k = 0; k < 2; k++)
			if (isfinite(v[k])) lo = fmin(lo, v[k]), hi = fmax(hi, v[k]);
	}
	if (!(hi > lo)) lo = 0, hi = lo + 1;
	const uint8_t grey[3] = {220, 220, 220}, black[3] = {0, 0, 0}, red[3] = {220, 40, 40}, blue[3] = {40, 80, 220};
	for (int k = 1; k < 4; k++) draw_line(&im, m, m + k * (H - 2 * m) / 4, W - m, m + k * (H - 2 * m) / 4, grey);
	draw_line(&im, m, m, m, H - m, black), draw_line(&im, m, H - m, W - m, H - m, black);
	draw_line(&im, m, m, W - m, m, black), draw_line(&im, W - m, m, W - m, H - m, black);
	long s0 = n ? rows[0].step : 0, s1 = n ? rows[n - 1].step : 1;
	if (s1 <= s0) s1 = s0 + 1;
	for (int k = 0; k < 2; k++) {
		int px = -1, py = -1;
		for (int i = 0; i < n; i++) {
			double v = k ? rows[i].ld : rows[i].lg;
			if (!isfinite(v)) continue;
			int x = m + (int)((double)(rows[i].step - s0) / (s1 - s0) * (W - 2 * m));
			int y = H - m - (int)((v - lo) / (hi - lo) * (H - 2 * m));
			if (px >= 0) draw_line(&im, px, py, x, y, k ? blue : red);
			px = x, py = y;
		}
	}
	l2_image_save_png(path, &im);
	l2_image_free(&im);
}

static void write_log(const char *path, const LogRow *rows, int n)
{
	L2OFile *f = l2_ofile_open(path, 0);
	FILE *fp = l2_ofile_fp(f);
	fprintf(fp, "step\tloss_G\tloss_D\tcon_D\tcon_G\tr1\tfd_clip\timages_per_s\tfid_inception\n");
	for (int i = 0; i < n; i++) {
		fprintf(fp, "%ld\t%.6f\t%.6f\t%.6f\t%.6f\t%.6f\t", rows[i].step, rows[i].lg, rows[i].ld, rows[i].cond, rows[i].cong, rows[i].r1);
		if (isfinite(rows[i].fd)) fprintf(fp, "%.6f", rows[i].fd);
		else fprintf(fp, "nan");
		fprintf(fp, "\t%.2f\t", rows[i].ips);
		if (isfinite(rows[i].fid)) fprintf(fp, "%.6f\n", rows[i].fid);
		else fprintf(fp, "nan\n");
	}
	l2_ofile_commit(f);
}

static int read_log(const char *path, LogRow **rows, long upto)
{
	FILE *f = fopen(path, "r");
	int n = 0, cap = 0;
	*rows = NULL;
	if (!f) return 0;
	char line[1024];
	while (fgets(line, sizeof line, f)) {
		LogRow r;
		char fd[64], fid[64] = "nan";
		int k = sscanf(line, "%ld\t%lf\t%lf\t%lf\t%lf\t%lf\t%63s\t%lf\t%63s", &r.step, &r.lg, &r.ld, &r.cond, &r.cong, &r.r1,
			       fd, &r.ips, fid);
		if (k != 8 && k != 9) continue; /* logs before fid_inception have 8 columns */
		if (r.step > upto) break;
		r.fd = strcmp(fd, "nan") ? atof(fd) : NAN;
		r.fid = strcmp(fid, "nan") ? atof(fid) : NAN;
		if (n == cap) cap = cap ? 2 * cap : 64, *rows = l2_realloc(*rows, cap * sizeof **rows);
		(*rows)[n++] = r;
	}
	fclose(f);
	return n;
}

/* ---- CLIP ----------------------------------------------------------------------------- */

static L2ClipTrain *load_clip_train(const char *path, int dim)
{
	L2Clip *c = l2_clip_load(path, L2_CLIP_VISION | L2_CLIP_TEXT);
	const L2ClipConfig *cc = l2_clip_config(c);
	if (cc->embed != dim) l2_die("%s: CLIP features have %d dimensions, the conditions %d", path, cc->embed, dim);
	if (l2_clip_layout(c) != L2_CLIP_LAYOUT_OPENAI) l2_die("%s: --clip for training needs OpenAI key names", path);
	L2ClipTrainConfig tc = {.res = cc->res, .patch = cc->patch, .width = cc->width, .layers = cc->layers,
				.heads = cc->heads, .context = cc->context, .vocab = cc->vocab, .twidth = cc->twidth,
				.tlayers = cc->tlayers, .theads = cc->theads, .embed = cc->embed};
	l2_clip_free(c);
	const char *bad = l2_cliptr_check(&tc);
	if (bad) l2_die("%s: %s", path, bad);
	L2ClipTrain *m = l2_cliptr_new(&tc, 0);
	/* only the image tower is used: load visual.* by name with exact shapes */
	L2Safetensors *st = l2_st_open(path);
	int n = 0;
	for (int i = 0; i < m->np; i++) {
		if (strncmp(m->p[i]->name, "visual.", 7)) continue;
		int64_t sh[AD_MAXDIM];
		for (int k = 0; k < m->p[i]->ndim; k++) sh[k] = m->p[i]->shape[k];
		l2_st_load_f32_into(st, m->p[i]->name, m->p[i]->ndim, sh, m->p[i]->v);
		n++;
	}
	l2_st_close(st);
	if (!n) l2_die("%s: no visual.* tensors", path);
	return m;
}

/* Images [n, 3, R, R] in [-1, 1] -> unit CLIP features [n, embed] (inference). */
static void clip_features(const L2Clip *clip, const float *img, int n, int R, float *out)
{
	int cr = l2_clip_config(clip)->res;
	float *px = l2_malloc((size_t)3 * cr * cr * sizeof(float)), *t = l2_malloc((size_t)3 * R * R * sizeof(float));
	for (int i = 0; i < n; i++) {
		for (int k = 0; k < 3 * R * R; k++) t[k] = (img[(size_t)i * 3 * R * R + k] + 1) / 2;
		l2_resize_bilinear_f32(t, 3, R, R, px, cr, cr);
		for (int ch = 0; ch < 3; ch++)
			for (int k = 0; k < cr * cr; k++) px[ch * cr * cr + k] = (px[ch * cr * cr + k] - L2_CLIP_MEAN[ch]) / L2_CLIP_STD[ch];
		l2_clip_encode_images(clip, px, 1, out + (size_t)i * l2_clip_config(clip)->embed);
		/* unit norm, as l2-encode-images writes them: FDs comparable with l2-fid on its streams */
		l2_train_unit(out + (size_t)i * l2_clip_config(clip)->embed, l2_clip_config(clip)->embed);
	}
	free(px);
	free(t);
}

/* G_ema on conditions h[n, dim] with z from (seed, i): images [n, 3, R, R]. */
static void generate(AdGraph *g, L2GanG *G, const float *h, int n, uint64_t seed, float *out)
{
	const L2GanConfig *c = l2_gan_g_config(G);
	int R = c->res;
	float *z = l2_malloc((size_t)c->zdim * sizeof(float));
	ad_graph_set_grad(g, 0);
	for (int i = 0; i < n; i++) {
		L2Rng r;
		l2_rng_init(&r, seed, (uint64_t)i);
		l2_rng_fill_normal(&r, z, c->zdim, 0, 1);
		ad_graph_reset(g);
		AdTensor *Z = ad_input(g, 2, (int[]){1, c->zdim}, z), *Hh = ad_input(g, 2, (int[]){1, c->cdim}, h + (size_t)i * c->cdim);
		AdTensor *x = l2_gan_g_forward(g, G, Z, Hh, 1, &r, 0);
		memcpy(out + (size_t)i * 3 * R * R, x->v, (size_t)3 * R * R * sizeof(float));
	}
	ad_graph_reset(g);
	ad_graph_set_grad(g, 1);
	free(z);
}

/* ---- checkpoints ------------------------------------------------------------------------ */

typedef struct {
	int ng, nd, n;
	AdTensor **p;        /* G then D */
	L2Adam *ag, *ad, view;
	L2Ema *ema, eview;
	float **m, **v, **w;
} Ckpt;

static void ckpt_init(Ckpt *k, AdTensor **gp, int ng, AdTensor **dp, int nd, L2Adam *ag, L2Adam *ad, L2Ema *ema)
{
	k->ng = ng, k->nd = nd, k->n = ng + nd;
	k->p = l2_malloc(k->n * sizeof *k->p);
	memcpy(k->p, gp, ng * sizeof *k->p);
	memcpy(k->p + ng, dp, nd * sizeof *k->p);
	k->m = l2_malloc(k->n * sizeof *k->m), k->v = l2_malloc(k->n * sizeof *k->v), k->w = l2_malloc(k->n * sizeof *k->w);
	for (int i = 0; i < k->n; i++) {
		k->m[i] = i < ng ? ag->m[i] : ad->m[i - ng];
		k->v[i] = i < ng ? ag->v[i] : ad->v[i - ng];
		/* D has no EMA: its slot holds the parameters themselves */
		k->w[i] = i < ng ? ema->w[i] : dp[i - ng]->v;
	}
	k->ag = ag, k->ad = ad, k->ema = ema;
	k->view = *ag;
	k->view.n = k->n, k->view.p = k->p, k->view.m = k->m, k->view.v = k->v;
	k->eview = *ema;
	k->eview.n = k->n, k->eview.p = k->p, k->eview.w = k->w;
}

static int64_t d_adam_t(int64_t step, const Options *o)
{
	/* one main step per iteration plus one R1 step at iterations 0, r1_every, ... */
	return step + (o->r1 > 0 ? (step + o->r1_every - 1) / o->r1_every : 0);
}

static void config_string(const Options *o, char *buf, size_t len)
{
	char c[256];
	l2_gan_config_str(&o->c, c, sizeof c);
	snprintf(buf, len,
		 "%s data=%s cond=%s pairs=%.17g paired_only=%d feats=%s,%s,%s xi=%.17g steps=%ld batch=%ld lr_g=%.17g "
		 "lr_d=%.17g betas=%.17g,%.17g gamma_con=%.17g lambda_con=%.17g tau=%.17g clip=%s r1=%.17g r1_every=%ld "
		 "ema=%.17g,%.17g xflip=%d seed=%llu init=%s",
		 c, o->dataset, l2_cond_name(o->data.cond), o->data.pairs, o->data.paired_only, o->data.cap_feat,
		 o->data.pseudo_feat, o->data.img_feat, o->data.xi,
		 o->steps, o->batch, o->lr_g, o->lr_d, o->beta1, o->beta2, o->gamma_con, o->lambda_con, o->tau,
		 o->clip ? o->clip : "-", o->r1, o->r1_every, o->ema_images, o->ema_rampup, o->xflip,
		 (unsigned long long)o->seed, o->init ? o->init : "-");
}

static void save_all(const Options *o, Ckpt *k, L2TrainState *st, L2GanG *G, const char *dir)
{
	char *sp = l2_train_path(dir, "state.safetensors"), *gp = l2_train_path(dir, "G.safetensors");
	char *ep = l2_train_path(dir, "G_ema.safetensors"), *dp = l2_train_path(dir, "D.safetensors");
	k->view.t = k->ag->t;
	l2_ckpt_save_state(sp, st, k->p, k->n, &k->view, &k->eview);
	l2_gan_save(gp, k->p, k->ng, &o->c, "G", st->step);
	l2_gan_save(dp, k->p + k->ng, k->nd, &o->c, "D", st->step);
	l2_ema_swap(k->ema);
	l2_gan_save(ep, k->p, k->ng, &o->c, "G_ema", st->step);
	l2_ema_swap(k->ema);
	free(sp), free(gp), free(ep), free(dp);
	(void)G;
}

/* ---- main ---------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	Options o;
	parse_options(argc, argv, &o);
	int R = o.c.res;

	/* conditions: every feature set used must have the same size */
	L2Dataset *ds = l2_dataset_open(o.dataset, L2_STORE_RDONLY);
	int dim = l2_train_data_dim(ds, &o.data, o.fid_every > 0);
	o.c.cdim = dim;
	const char *bad = l2_gan_check(&o.c);
	if (bad) l2_usage_error(usage, "%s", bad);
	L2TrainData tr, te;
	int drop_tr = 0, drop_te = 0;
	l2_train_data_load(ds, &o.data, L2_SPLIT_TRAIN, dim, &tr, &drop_tr);
	l2_train_data_load(ds, &o.data, L2_SPLIT_TEST, dim, &te, &drop_te);
	l2_dataset_close(ds);
	if (drop_tr && !l2_quiet) l2_info("%s: %d training images without the features they need: not used", o.dataset, drop_tr);
	if (tr.n < 2) l2_die("%s: %d usable training images; need at least 2", o.dataset, tr.n);
	int npaired = l2_train_data_npaired(&tr);
	if (o.batch > tr.n) {
		long b = tr.n >= 4 ? tr.n / 4 * 4 : tr.n;
		l2_warn("--batch %ld is more than the %d training images: using %ld", o.batch, tr.n, b);
		o.batch = b;
	}

	/* models */
	L2GanG *G = l2_gan_g_new(&o.c, o.seed);
	L2GanD *D = l2_gan_d_new(&o.c, o.seed + 1);
	int ng, nd;
	AdTensor **gp = l2_gan_g_params(G, &ng), **dp = l2_gan_d_params(D, &nd);
	double mb = o.r1 > 0 ? (double)o.r1_every / (o.r1_every + 1) : 1; /* StyleGAN2 lazy-regularisation correction */
	L2Adam *ag = l2_adam_new(gp, ng, o.beta1, o.beta2, 1e-8, 0);
	L2Adam *adm = l2_adam_new(dp, nd, pow(o.beta1, mb), pow(o.beta2, mb), 1e-8, 0);
	L2Ema *ema = l2_ema_new(gp, ng);
	if (o.init) {
		char *a = l2_train_path(o.init, "G.safetensors"), *b = l2_train_path(o.init, "D.safetensors"), *e = l2_train_path(o.init, "G_ema.safetensors");
		L2GanConfig ic;
		l2_gan_read_config(a, &ic, NULL, 0);
		if (ic.cdim != dim) l2_die("%s: conditions of %d dimensions, the dataset's have %d", a, ic.cdim, dim);
		if (memcmp(&ic, &o.c, sizeof ic)) {
			char s1[256], s2[256];
			l2_gan_config_str(&ic, s1, sizeof s1), l2_gan_config_str(&o.c, s2, sizeof s2);
			l2_die("%s: made with %s; this run has %s", a, s1, s2);
		}
		l2_ckpt_load_weights(e, gp, ng);
		l2_ema_free(ema);
		ema = l2_ema_new(gp, ng);
		l2_ckpt_load_weights(a, gp, ng);
		l2_ckpt_load_weights(b, dp, nd);
		free(a), free(b), free(e);
	}
	Ckpt ck;
	ckpt_init(&ck, gp, ng, dp, nd, ag, adm, ema);
	L2TrainState st;
	memset(&st, 0, sizeof st);
	l2_rng_init(&st.rng, o.seed, 0x67616e);
	config_string(&o, st.config, sizeof st.config);
	l2_mkdir_p(o.out);
	char *state_path = l2_train_path(o.out, "state.safetensors"), *log_path = l2_train_path(o.out, "log.tsv");
	LogRow *rows = NULL;
	int nrows = 0, caprows = 0;
	if (o.resume) {
		if (!l2_file_exists(state_path)) l2_die("%s: no training state to resume (run without --resume first)", state_path);
		L2TrainState saved;
		ck.view.t = 0;
		l2_ckpt_load_state(state_path, &saved, ck.p, ck.n, &ck.view, &ck.eview);
		if (strcmp(saved.config, st.config))
			l2_die("%s: made with other settings (%s); resume with the same options", state_path, saved.config);
		st = saved;
		ag->t = ck.view.t;
		adm->t = d_adam_t(st.step, &o);
		nrows = read_log(log_path, &rows, (long)st.step);
		caprows = nrows;
	}

	/* fixed grid conditions: held-out captions (else training conditions) and seeds */
	const L2TrainData *gsrc = te.n ? &te : &tr;
	int grows = (int)(o.grid_rows < gsrc->n ? o.grid_rows : gsrc->n), gcols = (int)o.grid_cols;
	float *gh = l2_malloc((size_t)grows * gcols * dim * sizeof(float));
	for (int r = 0; r < grows; r++)
		for (int c = 0; c < gcols; c++) memcpy(gh + ((size_t)r * gcols + c) * dim, gsrc->cond + (size_t)r * dim, dim * sizeof(float));

	L2Clip *clip_inf = NULL;
	L2ClipTrain *clip_tr = NULL;
	float *real_feat = NULL;
	if (o.clip) {
		if (o.lambda_con > 0) clip_tr = load_clip_train(o.clip, dim);
		clip_inf = l2_clip_load(o.clip, L2_CLIP_VISION);
		if (l2_clip_config(clip_inf)->embed != dim)
			l2_die("%s: CLIP features have %d dimensions, the conditions %d", o.clip, l2_clip_config(clip_inf)->embed, dim);
		if (o.fid_every) {
			if (te.n < 2) l2_die("%s: --fid-every needs at least 2 held-out images with caption features", o.dataset);
			real_feat = l2_malloc((size_t)te.n * dim * sizeof(float));
			clip_features(clip_inf, te.px, te.n, R, real_feat);
		}
	}
	/* Inception FID at the training resolution: the held-out images' features once */
	L2Inception *inc = NULL;
	float *real_inc = NULL, *gen_inc = NULL;
	if (o.inception) {
		inc = l2_gan_inception_open(o.inception);
		real_inc = l2_malloc((size_t)te.n * 2048 * sizeof(float));
		gen_inc = l2_malloc((size_t)te.n * 2048 * sizeof(float));
		l2_gan_inception_features(inc, te.px, te.n, R, real_inc);
	}

	l2_train_catch_signals();
	int B = (int)o.batch;
	size_t isz = (size_t)3 * R * R;
	L2Batcher bt;
	l2_batcher_init(&bt, tr.n, o.seed, &st.data);
	float *xb = l2_malloc(B * isz * sizeof(float)), *hb = l2_malloc((size_t)B * dim * sizeof(float));
	float *zb = l2_malloc((size_t)B * o.c.zdim * sizeof(float)), *fake = l2_malloc(B * isz * sizeof(float));
	float *gen = l2_malloc((size_t)(grows * gcols > te.n ? grows * gcols : te.n) * isz * sizeof(float));
	float *gen_feat = o.fid_every ? l2_malloc((size_t)te.n * dim * sizeof(float)) : NULL;
	int *box = l2_malloc(3 * B * sizeof(int));
	AdGraph *g = ad_graph_new();
	if (!l2_quiet)
		l2_info("training GAN %dx%d: %d images (%d paired, cond %s), %d held-out, G %d / D %d tensors, batch %d, steps %lld..%ld",
			R, R, tr.n, npaired, l2_cond_name(o.data.cond), te.n, ng, nd, B, (long long)st.step, o.stop_after);
	double t0 = l2_now(), acc[5] = {0};
	long nacc = 0, nr1 = 0, start = (long)st.step;
	L2TrainClock tick;
	l2_train_clock_start(&tick, st.step);
	while ((long)st.step < o.stop_after && !l2_train_stopped()) {
		const int *idx = l2_batcher_next(&bt, B);
		for (int b = 0; b < B; b++)
			l2_train_data_sample(&tr, &o.data, idx[b], o.xflip, &st.rng, xb + b * isz, hb + (size_t)b * dim);
		double lg, ld, lcd, lcg = 0, lr1 = 0;

		/* G: L_G + gamma L_ConD(fakes) + lambda L_ConG */
		l2_rng_fill_normal(&st.rng, zb, (size_t)B * o.c.zdim, 0, 1);
		ad_graph_reset(g);
		AdTensor *Z = ad_input(g, 2, (int[]){B, o.c.zdim}, zb), *H = ad_input(g, 2, (int[]){B, dim}, hb);
		AdTensor *X = l2_gan_g_forward(g, G, Z, H, 1, &st.rng, 0.995), *fs;
		AdTensor *lgt = l2_gan_d_forward(g, D, X, H, &fs);
		AdTensor *L = l2_gan_softplus_mean(g, lgt, -1);
		lg = L->v[0];
		AdTensor *cd = l2_gan_contrastive(g, fs, H, o.tau);
		L = ad_add(g, L, ad_scale(g, cd, o.gamma_con));
		if (clip_tr) {
			l2_gan_random_boxes(&st.rng, B, R, 0.5, 1, box);
			AdTensor *f = l2_cliptr_encode_image(g, clip_tr, l2_gan_clip_view(g, X, box, clip_tr->c.res));
			AdTensor *cg = l2_gan_contrastive(g, f, H, o.tau);
			lcg = cg->v[0];
			L = ad_add(g, L, ad_scale(g, cg, o.lambda_con));
		}
		ad_zero_grads(gp, ng);
		if (clip_tr) ad_zero_grads(clip_tr->p, clip_tr->np); /* frozen: its gradients are discarded */
		ad_backward(g, L);
		l2_adam_step(ag, o.lr_g);

		/* D: L_D + gamma L_ConD(reals) */
		l2_rng_fill_normal(&st.rng, zb, (size_t)B * o.c.zdim, 0, 1);
		ad_graph_reset(g);
		ad_graph_set_grad(g, 0);
		Z = ad_input(g, 2, (int[]){B, o.c.zdim}, zb), H = ad_input(g, 2, (int[]){B, dim}, hb);
		X = l2_gan_g_forward(g, G, Z, H, 1, &st.rng, 0);
		memcpy(fake, X->v, B * isz * sizeof(float));
		ad_graph_set_grad(g, 1);
		ad_graph_reset(g);
		H = ad_input(g, 2, (int[]){B, dim}, hb);
		AdTensor *lf = l2_gan_d_forward(g, D, ad_input(g, 4, (int[]){B, 3, R, R}, fake), H, NULL);
		AdTensor *lr = l2_gan_d_forward(g, D, ad_input(g, 4, (int[]){B, 3, R, R}, xb), H, &fs);
		AdTensor *Ld = ad_add(g, l2_gan_softplus_mean(g, lf, 1), l2_gan_softplus_mean(g, lr, -1));
		ld = Ld->v[0];
		cd = l2_gan_contrastive(g, fs, H, o.tau);
		lcd = cd->v[0];
		Ld = ad_add(g, Ld, ad_scale(g, cd, o.gamma_con));
		ad_zero_grads(dp, nd);
		ad_backward(g, Ld);
		l2_adam_step(adm, o.lr_d * mb);

		/* lazy R1, its own Adam step (StyleGAN2's Dreg phase) */
		if (o.r1 > 0 && st.step % o.r1_every == 0) {
			ad_zero_grads(dp, nd);
			lr1 = l2_gan_r1(g, D, xb, hb, B, o.r1, (double)o.r1_every, L2_GAN_R1_EPS) / o.r1_every;
			l2_adam_step(adm, o.lr_d * mb);
			acc[4] += lr1, nr1++;
		}

		/* G EMA (StyleGAN2: half-life ema_images, ramped up) */
		{
			double nimg = (double)(st.step + 1) * B, h = o.ema_images;
			if (o.ema_rampup > 0 && nimg * o.ema_rampup < h) h = nimg * o.ema_rampup;
			double beta = h > 0 ? pow(0.5, B / h) : 0;
			l2_ema_update(ema, beta);
			AdTensor *wa = l2_gan_g_wavg(G);
			for (int i = 0; i < ng; i++)
				if (gp[i] == wa) memcpy(ema->w[i], wa->v, wa->n * sizeof(float));
		}
		if (!isfinite(lg) || !isfinite(ld)) l2_die("step %lld: a loss is not finite (lower --lr?)", (long long)st.step);
		acc[0] += lg, acc[1] += ld, acc[2] += lcd, acc[3] += lcg, nacc++;
		st.step++;

		int last = (long)st.step == o.stop_after;
		if ((long)st.step % o.tick == 0 || last || l2_train_stopped()) {
			double ips = l2_train_clock_rate(&tick, st.step, B);
			LogRow row = {(long)st.step, acc[0] / nacc, acc[1] / nacc, acc[2] / nacc, acc[3] / nacc,
				      nr1 ? acc[4] / nr1 : 0, NAN, ips, NAN};
			l2_ema_swap(ema);
			if (o.fid_every && ((long)st.step % o.fid_every == 0 || last)) {
				generate(g, G, te.cond, te.n, o.seed ^ 0x666964, gen);
				clip_features(clip_inf, gen, te.n, R, gen_feat);
				row.fd = l2_gan_frechet(gen_feat, te.n, real_feat, te.n, dim);
				if (inc) {
					l2_gan_inception_features(inc, gen, te.n, R, gen_inc);
					row.fid = l2_gan_frechet(gen_inc, te.n, real_inc, te.n, 2048);
				}
			}
			/* grid: each row a fixed condition (real image first), columns fixed seeds */
			generate(g, G, gh, grows * gcols, o.seed ^ 0x67726964, gen);
			l2_ema_swap(ema);
			L2Image *tiles = l2_calloc((size_t)grows * (gcols + 1), sizeof(L2Image));
			for (int r = 0; r < grows; r++) {
				l2_image_from_chw(gsrc->px + (size_t)r * isz, R, R, -1, 1, &tiles[r * (gcols + 1)]);
				for (int c = 0; c < gcols; c++)
					l2_image_from_chw(gen + ((size_t)r * gcols + c) * isz, R, R, -1, 1, &tiles[r * (gcols + 1) + c + 1]);
			}
			L2Image grid;
			const uint8_t bgc[3] = {255, 255, 255};
			l2_image_grid(tiles, grows * (gcols + 1), gcols + 1, 2, bgc, &grid);
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
			plot_losses(p3, rows, nrows);
			write_log(log_path, rows, nrows);
			free(p1), free(p2), free(p3);
			save_all(&o, &ck, &st, G, o.out);
			char fd[64] = "";
			if (isfinite(row.fd)) snprintf(fd, sizeof fd, "  FD %.4f", row.fd);
			if (isfinite(row.fid)) snprintf(fd + strlen(fd), sizeof fd - strlen(fd), "  FID %.2f", row.fid);
			l2_train_log(st.step, o.steps, o.stop_after, B, ips, "G %.4f  D %.4f  ConD %.4f  ConG %.4f  R1 %.4f%s", row.lg,
				     row.ld, row.cond, row.cong, row.r1, fd);
			memset(acc, 0, sizeof acc);
			nacc = nr1 = 0;
			l2_train_clock_start(&tick, st.step);
		}
	}
	if ((long)st.step == start) save_all(&o, &ck, &st, G, o.out); /* nothing to do: still leave a consistent run */
	int rc = l2_train_exit_code(st.step);
	if (!rc && !l2_quiet) {
		double dt = l2_now() - t0;
		long n = (long)st.step - start;
		if (n > 0)
			l2_info("done: %ld steps in %.1f s, %.1f img/s, %.2f GFLOP/s (3x forward multiply-adds of G twice and D three times)",
				n, dt, n * B / dt, 2 * 3 * n * B * (2 * l2_gan_g_flops(&o.c) + 3 * l2_gan_d_flops(&o.c)) / dt * 1e-9);
	}
	ad_graph_free(g);
	l2_batcher_free(&bt);
	free(xb), free(hb), free(zb), free(fake), free(gen), free(gen_feat), free(box), free(gh), free(rows);
	free(real_feat), free(state_path), free(log_path), free(real_inc), free(gen_inc);
	if (inc) l2_inception_free(inc);
	free(ck.p), free(ck.m), free(ck.v), free(ck.w);
	if (clip_tr) l2_cliptr_free(clip_tr);
	if (clip_inf) l2_clip_free(clip_inf);
	l2_ema_free(ema), l2_adam_free(ag), l2_adam_free(adm);
	l2_gan_g_free(G), l2_gan_d_free(D);
	l2_train_data_free(&tr), l2_train_data_free(&te);
	return rc;
}
