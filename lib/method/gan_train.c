/* gan_train.c — Lafite's GAN training step (see gan_train.h). */
#include "method/gan_train.h"
#include "nn/ad_dist.h"
#include "nn/train.h"
#include "core/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void l2_gan_train_defaults(L2GanTrainOptions *o)
{
	memset(o, 0, sizeof *o);
	o->lr_g = o->lr_d = L2_GAN_LR;
	o->beta1 = L2_GAN_BETA1, o->beta2 = L2_GAN_BETA2;
	o->gamma_con = L2_GAN_GAMMA_CON, o->lambda_con = L2_GAN_LAMBDA_CON, o->tau = L2_GAN_TAU;
	o->r1 = L2_GAN_R1_GAMMA, o->r1_every = L2_GAN_R1_EVERY, o->r1_eps = L2_GAN_R1_EPS;
	o->ema_images = L2_GAN_EMA_IMAGES, o->ema_rampup = L2_GAN_EMA_RAMPUP;
	o->wavg_beta = L2_GAN_WAVG_BETA, o->crop_lo = L2_GAN_CROP_LO, o->crop_hi = L2_GAN_CROP_HI;
}

L2GanTrainer *l2_gan_trainer_new(const L2GanConfig *c, const L2GanTrainOptions *o, L2ClipTrain *clip)
{
	L2GanTrainer *t = l2_calloc(1, sizeof *t);
	t->c = *c, t->o = *o;
	t->G = l2_gan_g_new(c, o->seed);
	t->D = l2_gan_d_new(c, o->seed + 1);
	t->gp = l2_gan_g_params(t->G, &t->ng);
	t->dp = l2_gan_d_params(t->D, &t->nd);
	/* StyleGAN2's lazy regularisation: D's optimizer sees r1_every + 1
	 * steps per r1_every iterations */
	t->mb = o->r1 > 0 ? (double)o->r1_every / (o->r1_every + 1) : 1;
	t->adam_g = l2_adam_new(t->gp, t->ng, o->beta1, o->beta2, L2_GAN_ADAM_EPS, 0);
	t->adam_d = l2_adam_new(t->dp, t->nd, pow(o->beta1, t->mb), pow(o->beta2, t->mb), L2_GAN_ADAM_EPS, 0);
	t->ema = l2_ema_new(t->gp, t->ng);
	t->clip = o->lambda_con > 0 ? clip : NULL;
	t->g = ad_graph_new();
	return t;
}

void l2_gan_trainer_free(L2GanTrainer *t)
{
	if (!t) return;
	ad_graph_free(t->g);
	l2_ema_free(t->ema);
	l2_adam_free(t->adam_g), l2_adam_free(t->adam_d);
	l2_gan_g_free(t->G), l2_gan_d_free(t->D);
	free(t->z), free(t->fake), free(t->box), free(t->rs), free(t->aug), free(t->real_aug);
	free(t);
}

void l2_gan_trainer_reset_ema(L2GanTrainer *t)
{
	for (int i = 0; i < t->ng; i++) memcpy(t->ema->w[i], t->gp[i]->v, t->gp[i]->n * sizeof(adr));
}

int l2_gan_trainer_groups(L2GanTrainer *t, L2CkptGroup g[2])
{
	memset(g, 0, 2 * sizeof *g);
	g[0] = (L2CkptGroup){.name = "G", .p = t->gp, .n = t->ng, .adam = t->adam_g, .nema = 1, .ema = {t->ema}};
	g[1] = (L2CkptGroup){.name = "D", .p = t->dp, .n = t->nd, .adam = t->adam_d};
	return 2;
}

double l2_gan_ema_beta(const L2GanTrainOptions *o, int64_t step, int B)
{
	double nimg = (double)(step + 1) * B, h = o->ema_images;
	if (o->ema_rampup > 0 && nimg * o->ema_rampup < h) h = nimg * o->ema_rampup;
	return h > 0 ? pow(0.5, B / h) : 0;
}

static void reserve(L2GanTrainer *t, int B)
{
	if (B <= t->cap) return;
	const L2GanConfig *c = &t->c;
	t->z = l2_realloc(t->z, (size_t)B * c->zdim * sizeof(adr));
	t->fake = l2_realloc(t->fake, (size_t)B * 3 * c->res * c->res * sizeof(adr));
	t->box = l2_realloc(t->box, (size_t)B * 3 * sizeof(int));
	t->rs = l2_realloc(t->rs, (size_t)B * sizeof(L2Rng));
	t->aug = l2_realloc(t->aug, (size_t)B * sizeof(L2AugParams));
	t->real_aug = l2_realloc(t->real_aug, (size_t)B * 3 * c->res * c->res * sizeof(adr));
	t->cap = B;
}

/* Sample b's stream for a phase (pos[b]: its place in the global batch;
 * NULL: b), its latent drawn first. */
static void draw_latents(L2GanTrainer *t, int64_t step, int phase, int B, const int *pos)
{
	int zd = t->c.zdim;
	for (int b = 0; b < B; b++) {
		l2_train_rng(&t->rs[b], t->o.seed, step, phase, (uint64_t)(pos ? pos[b] : b));
		for (int k = 0; k < zd; k++) t->z[(size_t)b * zd + k] = (adr)l2_rng_normal(&t->rs[b]);
	}
}

/* T(x) as D's input (x itself without --augment), sample b's draws from
 * its stream of this pass. */
static AdTensor *augment(L2GanTrainer *t, AdTensor *x, int64_t step, int phase, int B, const int *pos)
{
	if (!t->o.augment) return x;
	for (int b = 0; b < B; b++) {
		L2Rng r;
		l2_train_rng(&r, t->o.seed, step, phase, (uint64_t)(pos ? pos[b] : b));
		l2_augment_draw(&r, t->c.res, t->c.res, &t->aug[b]);
	}
	return l2_augment_apply(t->g, x, t->o.augment, t->aug);
}

void l2_gan_rank_positions(int Btot, int P, int r, int *pos)
{
	int M = Btot / 4, Ml = M / P;
	for (int gi = 0; gi < 4; gi++)
		for (int m = 0; m < Ml; m++) pos[gi * Ml + m] = gi * M + r * Ml + m;
}

void l2_gan_train_step(L2GanTrainer *t, int64_t step, const adr *x, const adr *h, int B, L2GanLosses *out)
{
	L2Dist one = {.rank = 0, .size = 1, .local_rank = 0, .local_size = 1};
	l2_gan_train_step_dist(t, &one, step, x, h, B, B, NULL, out);
}

void l2_gan_train_step_dist(L2GanTrainer *t, const L2Dist *d, int64_t step, const adr *x, const adr *h, int B,
			    int Btot, const int *pos, L2GanLosses *out)
{
	const L2GanConfig *c = &t->c;
	const L2GanTrainOptions *o = &t->o;
	AdGraph *g = t->g;
	int R = c->res, dim = c->cdim, split = d->size > 1;
	reserve(t, B);
	memset(out, 0, sizeof *out);
	/* split: the batch statistics summed over the ranks at the end: G's
	 * mean w (for w_avg), then the per-sample losses' local sums */
	double *stat = l2_calloc((size_t)c->wdim + 2, sizeof *stat);

	/* G: L_G + gamma L_ConD(fakes) + lambda L_ConG */
	draw_latents(t, step, L2_GAN_PHASE_G, B, pos);
	ad_graph_reset(g);
	AdTensor *Z = ad_input(g, 2, (int[]){B, c->zdim}, t->z), *H = ad_input(g, 2, (int[]){B, dim}, h);
	AdTensor *X = l2_gan_g_forward(g, t->G, Z, H, 1, t->rs, split ? 0 : o->wavg_beta), *fs;
	if (split) {
		/* w_avg is not used in training (psi 1): updated at the end */
		AdTensor *w = l2_gan_g_last_w(t->G);
		for (int k = 0; k < c->wdim; k++)
			for (int b = 0; b < B; b++) stat[k] += w->v[(size_t)b * c->wdim + k];
	}
	AdTensor *Xa = augment(t, X, step, L2_GAN_PHASE_AUG_G, B, pos);
	AdTensor *L = l2_gan_softplus_loss(g, l2_gan_d_forward(g, t->D, Xa, H, &fs), -1, Btot);
	out->g = L->v[0];
	/* the in-batch terms over the whole batch (lib/nn/ad_dist.h) */
	AdTensor *Hall = ad_allgather_rows(g, d, H);
	L = ad_add(g, L, ad_scale(g, l2_gan_contrastive(g, ad_allgather_rows(g, d, fs), Hall, o->tau), o->gamma_con));
	if (t->clip) {
		for (int b = 0; b < B; b++) l2_gan_random_boxes(&t->rs[b], 1, R, o->crop_lo, o->crop_hi, t->box + 3 * b);
		AdTensor *f = l2_cliptr_encode_image(g, t->clip, l2_gan_clip_view(g, X, t->box, t->clip->c.res));
		AdTensor *cg = l2_gan_contrastive(g, ad_allgather_rows(g, d, f), Hall, o->tau);
		out->con_g = cg->v[0];
		L = ad_add(g, L, ad_scale(g, cg, o->lambda_con));
	}
	ad_zero_grads(t->gp, t->ng);
	if (t->clip) ad_zero_grads(t->clip->p, t->clip->np); /* frozen: its gradients are discarded */
	ad_backward(g, L);
	ad_dist_sum_grads(d, t->gp, t->ng, NULL);
	l2_adam_step(t->adam_g, o->lr_g);

	/* D: L_D + gamma L_ConD(reals), on fakes of the updated G */
	draw_latents(t, step, L2_GAN_PHASE_D, B, pos);
	ad_graph_reset(g);
	ad_graph_set_grad(g, 0);
	Z = ad_input(g, 2, (int[]){B, c->zdim}, t->z), H = ad_input(g, 2, (int[]){B, dim}, h);
	X = l2_gan_g_forward(g, t->G, Z, H, 1, t->rs, 0);
	memcpy(t->fake, X->v, (size_t)B * 3 * R * R * sizeof(adr));
	ad_graph_set_grad(g, 1);
	ad_graph_reset(g);
	H = ad_input(g, 2, (int[]){B, dim}, h);
	AdTensor *xf = augment(t, ad_input(g, 4, (int[]){B, 3, R, R}, t->fake), step, L2_GAN_PHASE_AUG_FAKE, B, pos);
	AdTensor *xr = augment(t, ad_input(g, 4, (int[]){B, 3, R, R}, x), step, L2_GAN_PHASE_AUG_REAL, B, pos);
	if (o->augment) memcpy(t->real_aug, xr->v, (size_t)B * 3 * R * R * sizeof(adr));
	AdTensor *lf = l2_gan_d_forward(g, t->D, xf, H, NULL);
	AdTensor *lr = l2_gan_d_forward(g, t->D, xr, H, &fs);
	AdTensor *Ld = ad_add(g, l2_gan_softplus_loss(g, lf, 1, Btot), l2_gan_softplus_loss(g, lr, -1, Btot));
	out->d = Ld->v[0];
	AdTensor *cd = l2_gan_contrastive(g, ad_allgather_rows(g, d, fs), ad_allgather_rows(g, d, H), o->tau);
	out->con_d = cd->v[0];
	Ld = ad_add(g, Ld, ad_scale(g, cd, o->gamma_con));
	ad_zero_grads(t->dp, t->nd);
	ad_backward(g, Ld);
	ad_dist_sum_grads(d, t->dp, t->nd, NULL);
	l2_adam_step(t->adam_d, o->lr_d * t->mb);

	/* lazy R1, its own Adam step (StyleGAN2's Dreg phase) */
	if (o->r1 > 0 && step % o->r1_every == 0) {
		ad_zero_grads(t->dp, t->nd);
		out->r1 = l2_gan_r1_dist(g, t->D, d, o->augment ? t->real_aug : x, h, B, Btot, o->r1, (double)o->r1_every, o->r1_eps) / o->r1_every;
		out->r1_done = 1;
		ad_dist_sum_grads(d, t->dp, t->nd, NULL);
		l2_adam_step(t->adam_d, o->lr_d * t->mb);
	}
	if (split) {
		/* the batch's mean w and the losses' sums, in the fixed order */
		stat[c->wdim] = out->g, stat[c->wdim + 1] = out->d;
		l2_dist_sum_f64(d, stat, (size_t)c->wdim + 2);
		AdTensor *wa = l2_gan_g_wavg(t->G);
		for (int k = 0; k < c->wdim; k++) {
			double m = stat[k] / Btot;
			wa->v[k] = (adr)(m + (wa->v[k] - m) * o->wavg_beta);
		}
		out->g = stat[c->wdim], out->d = stat[c->wdim + 1];
	}
	free(stat);

	/* G's EMA; w_avg is a statistic, not a weight: copied as is */
	l2_ema_update(t->ema, l2_gan_ema_beta(o, step, B));
	AdTensor *wa = l2_gan_g_wavg(t->G);
	for (int i = 0; i < t->ng; i++)
		if (t->gp[i] == wa) memcpy(t->ema->w[i], wa->v, wa->n * sizeof(adr));
	if (!isfinite(out->g) || !isfinite(out->d)) l2_die("step %lld: a loss is not finite (lower --lr?)", (long long)step);
}

void l2_gan_trainer_sample(L2GanTrainer *t, const adr *h, int n, uint64_t seed, adr *out)
{
	const L2GanConfig *c = &t->c;
	AdGraph *g = t->g;
	int R = c->res;
	reserve(t, 1);
	l2_ema_swap(t->ema);
	ad_graph_set_grad(g, 0);
	for (int i = 0; i < n; i++) {
		L2Rng r;
		l2_rng_init(&r, seed, (uint64_t)i);
		for (int k = 0; k < c->zdim; k++) t->z[k] = (adr)l2_rng_normal(&r);
		ad_graph_reset(g);
		AdTensor *Z = ad_input(g, 2, (int[]){1, c->zdim}, t->z), *H = ad_input(g, 2, (int[]){1, c->cdim}, h + (size_t)i * c->cdim);
		AdTensor *x = l2_gan_g_forward(g, t->G, Z, H, 1, &r, 0);
		memcpy(out + (size_t)i * 3 * R * R, x->v, (size_t)3 * R * R * sizeof(adr));
	}
	ad_graph_reset(g);
	ad_graph_set_grad(g, 1);
	l2_ema_swap(t->ema);
}
