/* l2-train-clip — train a small CLIP (ViT + causal text transformer) with
 * the symmetric InfoNCE loss, from an l2 dataset of (image, caption) pairs.
 *
 *   l2-train-clip -d emoji.lmdb -o clip.safetensors --steps 2000
 *   l2-train-clip -d emoji.lmdb -o clip.safetensors --steps 2000 --resume
 *   l2-train-clip --synthetic 600 -o tiny.safetensors --steps 100
 *
 * Writes OUT (weights, OpenAI state-dict names: l2-encode-images and
 * l2-encode-text load it), OUT's stem + .vocab.txt.gz and vocab.txt.gz
 * beside OUT (the BPE vocabulary; the encoders look for the latter), and
 * OUT's stem + .state (lib/nn/ckpt.h group "clip": parameters, AdamW state,
 * EMA; step, data position: --resume).
 * Layouts: schemas/dataset.md (input), lib/nn/ckpt.h (state). */
#include "text/clip_tokenizer.h"
#include "text/bpe_learn.h"
#include "nn/ad_dist.h"
#include "nn/ckpt.h"
#include "nn/train.h"
#include "models/clip_train.h"
#include "method/dataset.h"
#include "io/image.h"
#include "nn/optim.h"
#include "core/dist.h"
#include "core/rng.h"
#include "core/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
	const char *dataset, *out, *vocab_in;
	int synthetic, vocab_size, resume;
	long steps, stop_after, batch, warmup, save_every, eval_every, log_every;
	double lr, min_lr, wd, beta1, beta2, eps, clip_grad, ema;
	uint64_t seed;
	L2ClipTrainConfig c;
} Options;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: l2-train-clip (-d DATASET | --synthetic N) [-o OUT.safetensors] [options]\n"
		"Train a small CLIP (ViT image tower + causal text transformer, OpenAI's architecture)\n"
		"with the symmetric InfoNCE loss on the train split of an l2 dataset.  Writes OUT (weights\n"
		"for l2-encode-images / l2-encode-text), OUT's stem + .vocab.txt.gz and vocab.txt.gz beside\n"
		"OUT (BPE vocabulary) and OUT's stem + .state (training state for --resume).\n\n"
		"Data:\n"
		"  -d, --dataset PATH     l2 dataset (LMDB, schemas/dataset.md) with captioned images\n"
		"      --synthetic N      N generated images of coloured shapes with captions instead\n"
		"  -o, --output FILE      weights file (default clip.safetensors)\n"
		"      --vocab FILE       use this BPE vocabulary (bpe_simple_vocab_16e6.txt[.gz] format)\n"
		"      --vocab-size N     learn N - 514 BPE merges from the training captions (default 1000)\n"
		"Model:\n"
		"      --resolution N     image size (default 32)      --patch N      patch size (default 8)\n"
		"      --width N          image width (default 128)    --layers N     image layers (default 2)\n"
		"      --heads N          image heads (must be width/64; default)\n"
		"      --text-width N     (default: --width)           --text-layers N (default: --layers)\n"
		"      --text-heads N     (must be text-width/64; default)\n"
		"      --context N        text context (default 16)    --embed-dim N  joint size (default 128)\n"
		"Training:\n"
		"      --steps N          optimizer steps (default 1000)   --batch N  pairs per step (default 128)\n"
		"      --lr X             peak learning rate (default 5e-4)  --min-lr X  (default lr/100)\n"
		"      --warmup N         linear warmup steps (default steps/20), then cosine\n"
		"      --wd X             AdamW weight decay on matrices (default 0.2)\n"
		"      --beta1 X --beta2 X --eps X   Adam (default 0.9, 0.98, 1e-6)\n"
		"      --clip-grad X      clip the global gradient norm (default 1; 0 = off)\n"
		"      --ema D            keep an EMA of the weights with decay D and write it (default off)\n"
		"      --seed N           initialisation, data order (default 0)\n"
		"Checkpoints and reports:\n"
		"      --resume           continue from OUT's .state (bit-identical to an uninterrupted run)\n"
		"      --stop-after N     stop (with a checkpoint) after step N of --steps\n"
		"      --save-every N     checkpoint every N steps (default 0: at the end only)\n"
		"      --eval-every N     held-out image->caption top-1/top-5 every N steps (and at the end)\n"
		"      --log-every N      a progress line every N steps (default 50)\n"
		"Under mpirun -np P (or srun): data parallel, --batch the global batch (a multiple of P),\n"
		"B/P pairs per rank, the loss over the whole batch, rank 0 writing every file.\n"
		"      --threads N        BLAS threads (results are bit-identical for the same N)\n"
		"      --device cpu|cuda  cuda: large matrix products on the GPU (CUDA builds)\n"
		"      --quiet            no progress lines\n"
		"  -h, --help             this help\n"
		"      --version          print the version\n"
		"See l2-train-clip(1).\n");
}

enum {
	O_SYN = L2_OPT_COMMON_END, O_VOCAB, O_VOCAB_SIZE, O_RES, O_PATCH, O_WIDTH, O_LAYERS, O_HEADS, O_TW, O_TL, O_TH,
	O_CTX, O_EMB, O_STEPS, O_BATCH, O_LR, O_MINLR, O_WARM, O_WD, O_B1, O_B2, O_EPS, O_CLIPG, O_EMA, O_SEED, O_RESUME,
	O_STOP, O_SAVE, O_EVAL, O_LOG
};

static void parse_options(int argc, char **argv, Options *o)
{
	static const struct option longopts[] = {
		L2_COMMON_LONGOPTS, L2_DEVICE_LONGOPT,
		{"dataset", required_argument, 0, 'd'}, {"output", required_argument, 0, 'o'},
		{"synthetic", required_argument, 0, O_SYN}, {"vocab", required_argument, 0, O_VOCAB},
		{"vocab-size", required_argument, 0, O_VOCAB_SIZE}, {"resolution", required_argument, 0, O_RES},
		{"patch", required_argument, 0, O_PATCH}, {"width", required_argument, 0, O_WIDTH},
		{"layers", required_argument, 0, O_LAYERS}, {"heads", required_argument, 0, O_HEADS},
		{"text-width", required_argument, 0, O_TW}, {"text-layers", required_argument, 0, O_TL},
		{"text-heads", required_argument, 0, O_TH}, {"context", required_argument, 0, O_CTX},
		{"embed-dim", required_argument, 0, O_EMB}, {"steps", required_argument, 0, O_STEPS},
		{"batch", required_argument, 0, O_BATCH}, {"lr", required_argument, 0, O_LR},
		{"min-lr", required_argument, 0, O_MINLR}, {"warmup", required_argument, 0, O_WARM},
		{"wd", required_argument, 0, O_WD}, {"beta1", required_argument, 0, O_B1},
		{"beta2", required_argument, 0, O_B2}, {"eps", required_argument, 0, O_EPS},
		{"clip-grad", required_argument, 0, O_CLIPG}, {"ema", required_argument, 0, O_EMA},
		{"seed", required_argument, 0, O_SEED}, {"resume", no_argument, 0, O_RESUME},
		{"stop-after", required_argument, 0, O_STOP}, {"save-every", required_argument, 0, O_SAVE},
		{"eval-every", required_argument, 0, O_EVAL}, {"log-every", required_argument, 0, O_LOG},
		{0, 0, 0, 0}};
	memset(o, 0, sizeof *o);
	o->out = "clip.safetensors";
	o->vocab_size = 1000;
	o->steps = 1000;
	o->batch = 128;
	o->warmup = -1;
	o->log_every = 50;
	o->lr = 5e-4;
	o->min_lr = -1;
	o->wd = 0.2;
	o->beta1 = 0.9;
	o->beta2 = 0.98;
	o->eps = 1e-6;
	o->clip_grad = 1;
	L2ClipTrainConfig *c = &o->c;
	*c = (L2ClipTrainConfig){.res = 32, .patch = 8, .width = 128, .layers = 2, .heads = -1, .context = 16,
				 .twidth = -1, .tlayers = -1, .theads = -1, .embed = 128};
	int ch;
	while ((ch = getopt_long(argc, argv, "hd:o:", longopts, NULL)) != -1) {
		if (l2_common_option(ch, optarg, usage)) continue;
		switch (ch) {
		case 'd': o->dataset = optarg; break;
		case 'o': o->out = optarg; break;
		case O_SYN: o->synthetic = (int)l2_parse_long(optarg, "--synthetic", 2, 1000000); break;
		case O_VOCAB: o->vocab_in = optarg; break;
		case O_VOCAB_SIZE: o->vocab_size = (int)l2_parse_long(optarg, "--vocab-size", 514, 49408); break;
		case O_RES: c->res = (int)l2_parse_long(optarg, "--resolution", 1, 4096); break;
		case O_PATCH: c->patch = (int)l2_parse_long(optarg, "--patch", 1, 4096); break;
		case O_WIDTH: c->width = (int)l2_parse_long(optarg, "--width", 1, 16384); break;
		case O_LAYERS: c->layers = (int)l2_parse_long(optarg, "--layers", 1, 256); break;
		case O_HEADS: c->heads = (int)l2_parse_long(optarg, "--heads", 1, 1024); break;
		case O_TW: c->twidth = (int)l2_parse_long(optarg, "--text-width", 1, 16384); break;
		case O_TL: c->tlayers = (int)l2_parse_long(optarg, "--text-layers", 1, 256); break;
		case O_TH: c->theads = (int)l2_parse_long(optarg, "--text-heads", 1, 1024); break;
		case O_CTX: c->context = (int)l2_parse_long(optarg, "--context", 3, 4096); break;
		case O_EMB: c->embed = (int)l2_parse_long(optarg, "--embed-dim", 1, 16384); break;
		case O_STEPS: o->steps = l2_parse_long(optarg, "--steps", 1, 1L << 40); break;
		case O_BATCH: o->batch = l2_parse_long(optarg, "--batch", 2, 1 << 20); break;
		case O_LR: o->lr = l2_parse_double(optarg, "--lr"); break;
		case O_MINLR: o->min_lr = l2_parse_double(optarg, "--min-lr"); break;
		case O_WARM: o->warmup = l2_parse_long(optarg, "--warmup", 0, 1L << 40); break;
		case O_WD: o->wd = l2_parse_double(optarg, "--wd"); break;
		case O_B1: o->beta1 = l2_parse_double(optarg, "--beta1"); break;
		case O_B2: o->beta2 = l2_parse_double(optarg, "--beta2"); break;
		case O_EPS: o->eps = l2_parse_double(optarg, "--eps"); break;
		case O_CLIPG: o->clip_grad = l2_parse_double(optarg, "--clip-grad"); break;
		case O_EMA: o->ema = l2_parse_double(optarg, "--ema"); break;
		case O_SEED: o->seed = l2_parse_u64(optarg, "--seed"); break;
		case O_RESUME: o->resume = 1; break;
		case O_STOP: o->stop_after = l2_parse_long(optarg, "--stop-after", 1, 1L << 40); break;
		case O_SAVE: o->save_every = l2_parse_long(optarg, "--save-every", 0, 1L << 40); break;
		case O_EVAL: o->eval_every = l2_parse_long(optarg, "--eval-every", 0, 1L << 40); break;
		case O_LOG: o->log_every = l2_parse_long(optarg, "--log-every", 0, 1L << 40); break;
		default: l2_usage_error(usage, "unknown option");
		}
	}
	if (optind < argc) l2_usage_error(usage, "unexpected argument '%s'", argv[optind]);
	if (!o->dataset == !o->synthetic) l2_usage_error(usage, "give one of --dataset PATH or --synthetic N");
	if (!(o->lr > 0) || o->wd < 0 || !(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1) ||
	    !(o->eps > 0) || o->clip_grad < 0 || !(o->ema >= 0 && o->ema < 1))
		l2_usage_error(usage, "--lr, --eps must be > 0; --wd, --clip-grad >= 0; --beta1, --beta2, --ema in [0, 1)");
	if (c->twidth < 0) c->twidth = c->width;
	if (c->tlayers < 0) c->tlayers = c->layers;
	if (c->heads < 0) c->heads = l2_cliptr_heads_for(c->width);
	if (c->theads < 0) c->theads = l2_cliptr_heads_for(c->twidth);
	if (o->warmup < 0) o->warmup = o->steps / 20;
	if (o->min_lr < 0) o->min_lr = o->lr / 100;
	if (!o->stop_after || o->stop_after > o->steps) o->stop_after = o->steps;
	c->vocab = 514; /* checked with a placeholder; set from the vocabulary later */
	const char *bad = l2_cliptr_check(c);
	if (bad) l2_usage_error(usage, "%s", bad);
}

/* ---- data ------------------------------------------------------------------ */

typedef struct {
	int n;             /* images */
	float *px;         /* [n, 3, R, R] CLIP-normalised */
	int *ncap;         /* [n] captions per image */
	int *cap0;         /* [n] index of the first caption in caps */
	char **caps;       /* all captions */
	int ncaps;
	int32_t *tok;      /* [ncaps, context] */
} Split;

static void split_add_caption(Split *s, const char *c)
{
	s->caps = l2_realloc(s->caps, (s->ncaps + 1) * sizeof *s->caps);
	s->caps[s->ncaps++] = l2_strdup(c);
}

static void load_split(L2Dataset *ds, L2Split which, int R, Split *s, int *skipped)
{
	char **keys;
	size_t nk = l2_dataset_keys(ds, which, &keys);
	memset(s, 0, sizeof *s);
	s->px = l2_malloc(l2_mul_size(nk ? nk : 1, (size_t)3 * R * R * sizeof(float)));
	s->ncap = l2_malloc((nk ? nk : 1) * sizeof(int));
	s->cap0 = l2_malloc((nk ? nk : 1) * sizeof(int));
	uint8_t bg[3];
	int has_bg = l2_dataset_background(ds, bg);
	char err[512];
	for (size_t i = 0; i < nk; i++) {
		char **caps;
		size_t nc = l2_dataset_captions(ds, keys[i], &caps);
		if (!nc) {
			l2_dataset_free_strings(caps, 0);
			(*skipped)++;
			continue;
		}
		L2Image img;
		if (l2_dataset_image(ds, keys[i], &img, err, sizeof err))
			l2_die("%s: %s", l2_dataset_path(ds), err);
		l2_clip_preprocess_image(&img, R, has_bg ? bg : NULL, s->px + (size_t)s->n * 3 * R * R);
		l2_image_free(&img);
		s->cap0[s->n] = s->ncaps;
		s->ncap[s->n] = (int)nc;
		for (size_t k = 0; k < nc; k++) split_add_caption(s, caps[k]);
		l2_dataset_free_strings(caps, nc);
		s->n++;
	}
	l2_dataset_free_strings(keys, nk);
}

/* Coloured shapes on a grey background: caption "<size> <colour> <shape>". */
static void synthetic(int n, int R, uint64_t seed, Split *tr, Split *te)
{
	static const char *cn[] = {"red", "green", "blue", "yellow", "purple", "white"};
	static const float col[][3] = {{1, .1f, .1f}, {.1f, .9f, .1f}, {.1f, .2f, 1}, {1, 1, .1f}, {.6f, .1f, .8f}, {1, 1, 1}};
	static const char *sn[] = {"circle", "square", "triangle", "cross"};
	Split *all[2] = {tr, te};
	for (int k = 0; k < 2; k++) {
		memset(all[k], 0, sizeof *all[k]);
		all[k]->px = l2_malloc(l2_mul_size((size_t)n, (size_t)3 * R * R * sizeof(float)));
		all[k]->ncap = l2_malloc(n * sizeof(int));
		all[k]->cap0 = l2_malloc(n * sizeof(int));
	}
	L2Rng r;
	l2_rng_init(&r, seed, 0x73796e);
	for (int i = 0; i < n; i++) {
		Split *s = i % 5 == 4 ? te : tr;
		int c = (int)l2_rng_below(&r, 6), sh = (int)l2_rng_below(&r, 4), big = (int)l2_rng_below(&r, 2);
		double cx = R * (0.35 + 0.3 * l2_rng_uniform(&r)), cy = R * (0.35 + 0.3 * l2_rng_uniform(&r));
		double rad = R * (big ? 0.3 : 0.16);
		float *px = s->px + (size_t)s->n * 3 * R * R;
		for (int y = 0; y < R; y++)
			for (int x = 0; x < R; x++) {
				double dx = x + 0.5 - cx, dy = y + 0.5 - cy;
				int in = 0;
				switch (sh) {
				case 0: in = dx * dx + dy * dy < rad * rad; break;
				case 1: in = fabs(dx) < rad * 0.85 && fabs(dy) < rad * 0.85; break;
				case 2: in = dy < rad * 0.8 && dy > -rad && fabs(dx) < (dy + rad) * 0.6; break;
				default: in = (fabs(dx) < rad * 0.3 && fabs(dy) < rad) || (fabs(dy) < rad * 0.3 && fabs(dx) < rad);
				}
				for (int ch = 0; ch < 3; ch++) {
					double v = in ? col[c][ch] : 0.45;
					v += 0.05 * l2_rng_normal(&r);
					px[((size_t)ch * R + y) * R + x] = (float)((v - L2_CLIP_MEAN[ch]) / L2_CLIP_STD[ch]);
				}
			}
		char cap[64];
		snprintf(cap, sizeof cap, "a %s %s %s", big ? "big" : "small", cn[c], sn[sh]);
		s->cap0[s->n] = s->ncaps;
		s->ncap[s->n] = 1;
		split_add_caption(s, cap);
		s->n++;
	}
}

/* With lib/text/clip_tokenizer.h, the tokenizer l2-encode-text runs (clip.tokenize exactly). */
static void tokenize_split(Split *s, const L2Tokenizer *t, int C, const char *src)
{
	s->tok = l2_malloc(l2_mul_size((size_t)(s->ncaps ? s->ncaps : 1), (size_t)C * sizeof(int32_t)));
	for (int i = 0; i < s->ncaps; i++)
		if (l2_tok_tokenize(t, s->caps[i], strlen(s->caps[i]), C, s->tok + (size_t)i * C) < 0)
			l2_die("%s: caption '%s' is not valid UTF-8", src, s->caps[i]);
}

static void free_split(Split *s)
{
	for (int i = 0; i < s->ncaps; i++) free(s->caps[i]);
	free(s->caps);
	free(s->px);
	free(s->ncap);
	free(s->cap0);
	free(s->tok);
}

/* ---- evaluation: held-out image -> caption retrieval ---------------------------- */

static void evaluate(AdGraph *g, L2ClipTrain *m, const Split *te, int B, long step)
{
	if (te->n < 2) {
		l2_info("step %ld: eval skipped: fewer than 2 held-out captioned images", step);
		return;
	}
	const L2ClipTrainConfig *c = &m->c;
	int E = c->embed, R = c->res, C = c->context;
	/* candidates: distinct primary captions of the held-out images */
	int *cand = l2_malloc(te->n * sizeof(int)), nc = 0, *truth = l2_malloc(te->n * sizeof(int));
	for (int i = 0; i < te->n; i++) {
		const char *t = te->caps[te->cap0[i]];
		int k;
		for (k = 0; k < nc; k++)
			if (!strcmp(te->caps[cand[k]], t)) break;
		if (k == nc) cand[nc++] = te->cap0[i];
		truth[i] = k;
	}
	float *fi = l2_malloc((size_t)te->n * E * sizeof(float)), *ft = l2_malloc((size_t)nc * E * sizeof(float));
	ad_graph_set_grad(g, 0);
	for (int i0 = 0; i0 < te->n; i0 += B) {
		int b = te->n - i0 < B ? te->n - i0 : B;
		ad_graph_reset(g);
		AdTensor *px = ad_input(g, 4, (int[]){b, 3, R, R}, te->px + (size_t)i0 * 3 * R * R);
		AdTensor *f = ad_normalize(g, l2_cliptr_encode_image(g, m, px), 1e-12);
		memcpy(fi + (size_t)i0 * E, f->v, (size_t)b * E * sizeof(float));
	}
	int32_t *tok = l2_malloc((size_t)B * C * sizeof(int32_t));
	for (int i0 = 0; i0 < nc; i0 += B) {
		int b = nc - i0 < B ? nc - i0 : B;
		for (int k = 0; k < b; k++) memcpy(tok + (size_t)k * C, te->tok + (size_t)cand[i0 + k] * C, C * sizeof(int32_t));
		ad_graph_reset(g);
		AdTensor *f = ad_normalize(g, l2_cliptr_encode_text(g, m, tok, b), 1e-12);
		memcpy(ft + (size_t)i0 * E, f->v, (size_t)b * E * sizeof(float));
	}
	ad_graph_set_grad(g, 1);
	ad_graph_reset(g);
	int top1 = 0, top5 = 0;
	for (int i = 0; i < te->n; i++) {
		double own = 0;
		for (int d = 0; d < E; d++) own += (double)fi[(size_t)i * E + d] * ft[(size_t)truth[i] * E + d];
		int better = 0;
		for (int k = 0; k < nc; k++) {
			if (k == truth[i]) continue;
			double s = 0;
			for (int d = 0; d < E; d++) s += (double)fi[(size_t)i * E + d] * ft[(size_t)k * E + d];
			better += s > own;
		}
		top1 += better < 1;
		top5 += better < 5;
	}
	double ch5 = nc < 5 ? 100.0 : 500.0 / nc;
	l2_info("step %ld: held-out image->caption top-1 %.1f%% top-5 %.1f%% (chance %.1f%% / %.1f%%; %d images, %d captions)",
		step, 100.0 * top1 / te->n, 100.0 * top5 / te->n, 100.0 / nc, ch5, te->n, nc);
	free(cand);
	free(truth);
	free(fi);
	free(ft);
	free(tok);
}

/* ---- checkpoints ------------------------------------------------------------------ */

static void config_string(const Options *o, char *buf, size_t len)
{
	const L2ClipTrainConfig *c = &o->c;
	snprintf(buf, len,
		 "res=%d patch=%d width=%d layers=%d heads=%d twidth=%d tlayers=%d theads=%d context=%d embed=%d vocab=%d "
		 "steps=%ld batch=%ld lr=%.17g min_lr=%.17g warmup=%ld wd=%.17g beta1=%.17g beta2=%.17g eps=%.17g "
		 "clip_grad=%.17g ema=%.17g seed=%llu data=%s",
		 c->res, c->patch, c->width, c->layers, c->heads, c->twidth, c->tlayers, c->theads, c->context, c->embed,
		 c->vocab, o->steps, o->batch, o->lr, o->min_lr, o->warmup, o->wd, o->beta1, o->beta2, o->eps, o->clip_grad,
		 o->ema, (unsigned long long)o->seed, o->synthetic ? "synthetic" : o->dataset);
	if (o->synthetic) {
		size_t k = strlen(buf);
		snprintf(buf + k, len - k, ":%d", o->synthetic);
	}
}

/* The training state's one group: parameters, AdamW, the EMA when kept. */
static L2CkptGroup state_group(L2ClipTrain *m, L2Adam *opt, L2Ema *ema)
{
	return (L2CkptGroup){.name = "clip", .p = m->p, .n = m->np, .adam = opt, .nema = ema != NULL, .ema = {ema}};
}

static void save_all(const Options *o, L2ClipTrain *m, L2Adam *opt, L2Ema *ema, const L2TrainState *st,
		     const char *state_path, const char *vocab_name)
{
	/* the state first: a kill between the two renames leaves a state that
	 * is ahead of the weights, which --resume handles */
	L2CkptGroup grp = state_group(m, opt, ema);
	l2_ckpt_save_state(state_path, st, &grp, 1);
	char buf[32][64];
	const L2ClipTrainConfig *c = &m->c;
	int vals[] = {c->res, c->patch, c->width, c->layers, c->heads, c->twidth, c->tlayers, c->theads, c->context,
		      c->vocab, c->embed};
	const char *keys[] = {"image_resolution", "patch", "width", "layers", "heads", "text_width", "text_layers",
			      "text_heads", "context_length", "vocab_size", "embed_dim"};
	const char *meta[64];
	int k = 0;
	meta[k++] = "l2.model";
	meta[k++] = "clip";
	meta[k++] = "l2.vocab";
	meta[k++] = vocab_name;
	for (int i = 0; i < 11; i++) {
		snprintf(buf[i], sizeof buf[i], "%d", vals[i]);
		meta[k++] = keys[i];
		meta[k++] = buf[i];
	}
	snprintf(buf[11], sizeof buf[11], "%lld", (long long)st->step);
	meta[k++] = "l2.step";
	meta[k++] = buf[11];
	meta[k++] = "l2.weights";
	meta[k++] = ema ? "ema" : "raw";
	meta[k] = NULL;
	if (ema) l2_ema_swap(ema);
	l2_ckpt_save_weights(o->out, m->p, m->np, meta);
	if (ema) l2_ema_swap(ema);
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	Options o;
	parse_options(argc, argv, &o);
	/* before anything is written: a rank that cannot join refuses here */
	L2Dist dist;
	l2_dist_init(&dist);
	int lead = dist.rank == 0; /* writes every file */
	L2ClipTrainConfig *c = &o.c;
	char *state_path = l2_train_sibling(o.out, ".state"), *vocab_path = l2_train_sibling(o.out, ".vocab.txt.gz");
	if (lead) { /* one run per output: rank 0 holds the lock for the ranks */
		char *lock = l2_train_sibling(o.out, ".lock");
		l2_train_lock(lock, o.out);
		free(lock);
	}

	/* data */
	Split tr, te;
	if (o.synthetic) synthetic(o.synthetic, c->res, o.seed, &tr, &te);
	else {
		L2Dataset *ds = l2_dataset_open(o.dataset, L2_STORE_RDONLY);
		int skip_tr = 0, skip_te = 0;
		load_split(ds, L2_SPLIT_TRAIN, c->res, &tr, &skip_tr);
		load_split(ds, L2_SPLIT_TEST, c->res, &te, &skip_te);
		if (skip_tr) l2_warn("%s: %d training images have no caption: skipped", o.dataset, skip_tr);
		l2_dataset_close(ds);
	}
	if (tr.n < 2) l2_die("%s: %d captioned training images; need at least 2", o.synthetic ? "--synthetic" : o.dataset, tr.n);
	if (o.batch > tr.n) {
		if (lead) l2_warn("--batch %ld is more than the %d training images: using %d", o.batch, tr.n, tr.n);
		o.batch = tr.n;
	}
	if (o.batch % dist.size)
		l2_usage_error(usage, "--batch %ld does not split over %d ranks: the global batch must be a multiple of the "
			       "number of ranks", o.batch, dist.size);

	/* vocabulary: given, saved by the run being resumed, or learned; it is
	 * written as OUT-stem.vocab.txt.gz and as vocab.txt.gz beside OUT,
	 * where l2-encode-text looks (lib/text/clip_tokenizer.h l2_tok_find_vocab) */
	char *vocab_bytes = NULL;
	size_t vocab_len = 0;
	const char *vsrc = o.vocab_in ? o.vocab_in : o.resume && l2_file_exists(vocab_path) ? vocab_path : NULL;
	if (!lead) {
		/* rank 0 reads or learns it; no shared file system needed */
	} else if (vsrc) {
		/* a vocabulary that does not load is refused before anything of the run is written */
		l2_tok_free(l2_tok_load(vsrc));
		vocab_bytes = l2_read_file(vsrc, &vocab_len);
	} else {
		L2BpeVocab *learned = l2_bpe_learn(tr.caps, tr.ncaps, o.vocab_size);
		char *tmp = l2_train_sibling(o.out, ".vocab-learn.tmp.gz");
		l2_bpe_write(learned, tmp);
		vocab_bytes = l2_read_file(tmp, &vocab_len);
		remove(tmp);
		free(tmp);
		l2_bpe_free(learned);
	}
	L2Tokenizer *voc;
	if (dist.size == 1) {
		L2OFile *vf = l2_ofile_open(vocab_path, 1);
		l2_ofile_write(vf, vocab_bytes, vocab_len);
		l2_ofile_commit(vf);
		voc = l2_tok_load(vocab_path);
	} else {
		uint64_t len = vocab_len;
		l2_dist_bcast(&dist, &len, sizeof len);
		if (!lead) vocab_bytes = l2_malloc(len + 1);
		vocab_len = len;
		l2_dist_bcast(&dist, vocab_bytes, vocab_len);
		if (lead) {
			L2OFile *vf = l2_ofile_open(vocab_path, 1);
			l2_ofile_write(vf, vocab_bytes, vocab_len);
			l2_ofile_commit(vf);
		}
		/* each rank loads its copy from a private file */
		char tmp[] = "/tmp/l2-train-clip-vocab-XXXXXX";
		int fd = mkstemp(tmp);
		if (fd < 0) l2_die_errno("%s", tmp);
		if (write(fd, vocab_bytes, vocab_len) != (ssize_t)vocab_len) l2_die_errno("%s: write", tmp);
		close(fd);
		voc = l2_tok_load(tmp);
		unlink(tmp);
	}
	c->vocab = l2_tok_vocab_size(voc);
	tokenize_split(&tr, voc, c->context, o.synthetic ? "--synthetic" : o.dataset);
	tokenize_split(&te, voc, c->context, o.synthetic ? "--synthetic" : o.dataset);

	L2ClipTrain *m = l2_cliptr_new(c, o.seed);
	L2Adam *opt = l2_adam_new(m->p, m->np, o.beta1, o.beta2, o.eps, o.wd);
	L2Ema *ema = o.ema > 0 ? l2_ema_new(m->p, m->np) : NULL;
	L2TrainState st = {0};
	config_string(&o, st.config, sizeof st.config);
	if (o.resume && lead) {
		L2CkptGroup grp = state_group(m, opt, ema);
		l2_train_resume_state(state_path, &st, &grp, 1);
		if (st.step >= o.stop_after) {
			l2_info("%s: already at step %lld of %ld", state_path, (long long)st.step, o.stop_after);
		}
	}
	if (o.resume && dist.size > 1) {
		/* rank 0 read the state: everyone continues from its bits */
		l2_dist_bcast(&dist, &st, sizeof st);
		for (int i = 0; i < m->np; i++) {
			l2_dist_bcast(&dist, m->p[i]->v, m->p[i]->n * sizeof *m->p[i]->v);
			l2_dist_bcast(&dist, opt->m[i], m->p[i]->n * sizeof *opt->m[i]);
			l2_dist_bcast(&dist, opt->v[i], m->p[i]->n * sizeof *opt->v[i]);
			if (ema) l2_dist_bcast(&dist, ema->w[i], m->p[i]->n * sizeof *ema->w[i]);
		}
		l2_dist_bcast(&dist, &opt->t, sizeof opt->t);
	}
	if (lead) {
		/* the copy the encoders find: vocab.txt.gz in OUT's directory */
		char *dir = l2_strdup(o.out), *sl = strrchr(dir, '/');
		if (sl) sl[1] = 0;
		else dir[0] = 0;
		char *beside = l2_malloc(strlen(dir) + 16);
		sprintf(beside, "%svocab.txt.gz", dir);
		L2OFile *vf = l2_ofile_open(beside, 1);
		l2_ofile_write(vf, vocab_bytes, vocab_len);
		l2_ofile_commit(vf);
		free(beside);
		free(dir);
	}

	l2_train_catch_signals();
	int B = (int)o.batch, R = c->res, C = c->context;
	/* this rank's rows of the global batch: [b0, b0 + Bl) */
	int Bl = B / dist.size, b0 = dist.rank * Bl;
	L2Batcher bt;
	l2_batcher_init(&bt, tr.n, o.seed, &st.data);
	float *px = l2_malloc((size_t)Bl * 3 * R * R * sizeof(float));
	int32_t *tok = l2_malloc((size_t)Bl * C * sizeof(int32_t));
	AdGraph *g = ad_graph_new();
	if (!l2_quiet)
		l2_info("training CLIP: %d train / %d held-out images, vocab %d, %d parameters tensors, batch %d, steps %lld..%ld",
			tr.n, te.n, c->vocab, m->np, B, (long long)st.step, o.stop_after);
	if (dist.size > 1)
		l2_info("data parallel: %d ranks x %d pairs, %d threads each", dist.size, Bl, l2_threads);
	double loss_avg = 0, t_first = 0;
	long n_avg = 0, start_step = st.step, max_t = 0;
	L2TrainClock clock;
	l2_train_clock_start(&clock, st.step);
	int stop = 0;
	while (st.step < o.stop_after && !stop) {
		const int *idx = l2_batcher_next(&bt, B);
		for (int b = 0; b < B; b++) {
			int i = idx[b];
			if (b < b0 || b >= b0 + Bl) continue; /* another rank's pair */
			memcpy(px + (size_t)(b - b0) * 3 * R * R, tr.px + (size_t)i * 3 * R * R, (size_t)3 * R * R * sizeof(float));
			/* one of the image's captions, from the sample's own stream (lib/nn/train.h) */
			L2Rng r;
			l2_train_rng(&r, o.seed, st.step, 0, (uint64_t)b);
			int k = tr.ncap[i] > 1 ? (int)l2_rng_below(&r, tr.ncap[i]) : 0;
			memcpy(tok + (size_t)(b - b0) * C, tr.tok + (size_t)(tr.cap0[i] + k) * C, C * sizeof(int32_t));
		}
		for (int b = 0; b < Bl * C; b++)
			if (tok[b] == l2_tok_eot(voc) && b % C + 1 > max_t) max_t = b % C + 1;
		/* the loss over the whole batch, gradients summed over the ranks */
		double loss = l2_cliptr_grads(g, m, &dist, px, tok, Bl);
		l2_grad_clip(m->p, m->np, o.clip_grad);
		l2_adam_step(opt, l2_lr_schedule(st.step, o.warmup, o.steps, o.lr, o.min_lr));
		l2_cliptr_clamp(m);
		if (ema) l2_ema_update(ema, o.ema);
		if (!isfinite(loss)) l2_die("step %lld: the loss is not finite (lower --lr?)", (long long)st.step);
		loss_avg += loss;
		n_avg++;
		st.step++;
		/* a signal reaches the ranks at different steps: stop together */
		stop = l2_dist_any(&dist, l2_train_stopped());
		if (st.step == start_step + 2) t_first = l2_now(); /* arena settled */
		if (o.log_every && (st.step % o.log_every == 0 || st.step == o.stop_after)) {
			char what[48];
			snprintf(what, sizeof what, "step %lld", (long long)st.step);
			ad_dist_check_params(&dist, m->p, m->np, what);
			l2_train_log(st.step, o.steps, o.stop_after, B, l2_train_clock_rate(&clock, st.step, B),
				     "loss %.4f  lr %.3g  scale %.2f", loss_avg / n_avg,
				     l2_lr_schedule(st.step - 1, o.warmup, o.steps, o.lr, o.min_lr), exp(m->logit_scale->v[0]));
			loss_avg = 0;
			n_avg = 0;
		}
		if (lead && o.save_every && st.step % o.save_every == 0 && st.step < o.stop_after)
			save_all(&o, m, opt, ema, &st, state_path, base_name(vocab_path));
		if (lead && o.eval_every && st.step % o.eval_every == 0 && st.step < o.stop_after) evaluate(g, m, &te, B, (long)st.step);
	}
 	if (st.step > start_step + 2 && !l2_quiet) {
		double dt = l2_now() - t_first;
		long n = (long)(st.step - start_step - 2);
		l2_info("timing: %ld steps in %.3f s after the first two: %.4f steps/s, %.1f GFLOP/s (batch %d, text length %ld)", n, dt,
			n / dt, 3 * l2_cliptr_flops(c, B, (int)max_t) * n / dt * 1e-9, B, max_t);
	}
	ad_dist_check_params(&dist, m->p, m->np, "the end");
	if (lead) save_all(&o, m, opt, ema, &st, state_path, base_name(vocab_path));
	int rc = l2_train_exit_code(st.step);
	if (stop) rc = 130; /* every rank, whichever got the signal */
	if (lead && !rc && o.eval_every) {
		if (ema) l2_ema_swap(ema);
		evaluate(g, m, &te, B, (long)st.step);
		if (ema) l2_ema_swap(ema);
	}
	if (!l2_quiet && !rc) l2_info("wrote %s, %s, %s", o.out, vocab_path, state_path);
	ad_graph_free(g);
	l2_batcher_free(&bt);
	free(px);
	free(tok);
	l2_ema_free(ema);
	l2_adam_free(opt);
	l2_cliptr_free(m);
	l2_tok_free(voc);
	free(vocab_bytes);
	free_split(&tr);
	free_split(&te);
	free(state_path);
	free(vocab_path);
	l2_dist_finish(&dist);
	return rc;
}
