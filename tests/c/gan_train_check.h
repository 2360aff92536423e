/* gan_train_check.h — the body shared by tests/c/test_gan_train.c (the step
 * compiled in float64) and test_gan_train_f32.c (the library's float build):
 * two whole steps of lib/method/gan_train.c against the PyTorch float64
 * transcription tests/ref/make_gan_train.py (llm.c's test_gpt2 pattern).
 * The including file defines the tolerances and includes the code under
 * test before this header. */
#include "check.h"
#include "io/safetensors.h"

#include <math.h>

static const L2GanConfig TCFG = {.res = 8, .cdim = 5, .zdim = 4, .wdim = 4, .map_layers = 2, .cbase = 32, .cmax = 6, .chid = 3};
static const L2ClipTrainConfig TCLIP = {.res = 8, .patch = 4, .width = 16, .layers = 1, .heads = 1, .context = 4,
					.vocab = 10, .twidth = 16, .tlayers = 1, .theads = 1, .embed = 5};
enum { TB = 8 };

static const L2Tensor *golden(const L2Safetensors *st, const char *name, size_t n)
{
	const L2Tensor *t = l2_st_find(st, name);
	if (!t || t->nelem != n) l2_die("gan_train golden: no %s of %zu elements", name, n);
	return t;
}

/* A golden tensor (F32 or F64) as doubles. */
static double *golden_f64(const L2Safetensors *st, const char *name, size_t n)
{
	const L2Tensor *t = golden(st, name, n);
	double *v = l2_malloc(n * sizeof(double));
	if (t->dtype == L2_ST_F64) memcpy(v, t->data, n * sizeof(double));
	else {
		float *f = l2_malloc(n * sizeof(float));
		l2_st_to_f32(st, t, f);
		for (size_t i = 0; i < n; i++) v[i] = f[i];
		free(f);
	}
	return v;
}

static void set_from(const L2Safetensors *st, AdTensor *p)
{
	double *v = golden_f64(st, p->name, p->n);
	for (size_t i = 0; i < p->n; i++) p->v[i] = (adr)v[i];
	free(v);
}

/* Worst error of got against ref relative to the tensor's largest entry
 * (moments and gradients of some entries are legitimately near 0). */
static double tensor_err(const adr *got, const double *ref, size_t n)
{
	double d = 0, m = 0;
	for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)got[i] - ref[i])), m = fmax(m, fabs(ref[i]));
	return m > 0 ? d / m : d;
}

typedef struct {
	double param, adam, ema; /* worst over the tensors of a kind */
	const char *where[3];
} Worst;

static void compare(const L2Safetensors *ref, const char *pre, const char *grp, AdTensor **p, int n, L2Adam *a,
		    L2Ema *e, Worst *w)
{
	char nm[512];
	for (int i = 0; i < n; i++) {
		const char *kind[4] = {"param", "adam_m", "adam_v", "ema"};
		const adr *src[4] = {p[i]->v, a->m[i], a->v[i], e ? e->w[i] : NULL};
		for (int k = 0; k < 4; k++) {
			if (!src[k]) continue;
			snprintf(nm, sizeof nm, "%s%s.%s.%s", pre, grp, kind[k], p[i]->name);
			double *r = golden_f64(ref, nm, p[i]->n), err = tensor_err(src[k], r, p[i]->n);
			double *slot = k == 0 ? &w->param : k == 3 ? &w->ema : &w->adam;
			if (err > *slot) *slot = err, w->where[k == 0 ? 0 : k == 3 ? 2 : 1] = p[i]->name;
			free(r);
		}
	}
}

/* Two steps of scenario `scen` ("a": no R1, "b": R1 at step 0): the losses
 * within tol_loss relative (the R1 penalty tol_r1), every parameter, Adam
 * moment and EMA within tol_state of its tensor's largest entry, and the
 * Adam step counts equal. */
static void run_scenario(const char *scen, double r1, double tol_loss, double tol_r1, double tol_state)
{
	L2Safetensors *init = l2_st_open("tests/ref/gan/train_init.safetensors");
	char path[256];
	snprintf(path, sizeof path, "tests/ref/gan/train_step_%s.safetensors", scen);
	L2Safetensors *ref = l2_st_open(path);
	L2GanTrainOptions o;
	l2_gan_train_defaults(&o);
	o.lr_g = 0.002, o.lr_d = 0.003, o.beta1 = 0.5, o.beta2 = 0.9, o.gamma_con = 2, o.lambda_con = 3, o.tau = 0.5;
	o.ema_images = 20, o.ema_rampup = 0.5, o.wavg_beta = 0.9, o.crop_lo = 0.5, o.crop_hi = 1, o.seed = 12345;
	o.r1 = r1, o.r1_every = 2, o.r1_eps = R1_EPS;
	L2ClipTrain *clip = l2_cliptr_new(&TCLIP, 0);
	for (int i = 0; i < clip->np; i++)
		if (!strncmp(clip->p[i]->name, "visual.", 7)) set_from(init, clip->p[i]);
	L2GanTrainer *t = l2_gan_trainer_new(&TCFG, &o, clip);
	for (int i = 0; i < t->ng; i++) set_from(init, t->gp[i]);
	for (int i = 0; i < t->nd; i++) set_from(init, t->dp[i]);
	l2_gan_trainer_reset_ema(t);
	size_t nx = (size_t)TB * 3 * TCFG.res * TCFG.res, nh = (size_t)TB * TCFG.cdim;
	double *xd = golden_f64(init, "x", nx), *hd = golden_f64(init, "h", nh);
	adr *x = l2_malloc(nx * sizeof(adr)), *h = l2_malloc(nh * sizeof(adr));
	for (size_t i = 0; i < nx; i++) x[i] = (adr)xd[i];
	for (size_t i = 0; i < nh; i++) h[i] = (adr)hd[i];
	for (int step = 0; step < 2; step++) {
		L2GanLosses l;
		l2_gan_train_step(t, step, x, h, TB, &l);
		char pre[16], nm[64];
		snprintf(pre, sizeof pre, "step%d.", step);
		snprintf(nm, sizeof nm, "%sloss", pre);
		double *lr = golden_f64(ref, nm, 5), got[5] = {l.g, l.d, l.con_d, l.con_g, l.r1};
		static const char *ln[5] = {"L_G", "L_D", "L_ConD", "L_ConG", "R1"};
		for (int k = 0; k < 5; k++) {
			double e = fabs(got[k] - lr[k]) / fmax(fabs(lr[k]), 1e-300);
			double tol = k == 4 ? tol_r1 : tol_loss;
			if (lr[k] == 0 && got[k] == 0) e = 0;
			printf("# %s step %d %-6s C %.12f torch %.12f rel %.2g\n", scen, step, ln[k], got[k], lr[k], e);
			CHECK_MSG(e <= tol, "%s step %d %s: %.3g > %.3g", scen, step, ln[k], e, tol);
		}
		CHECK(l.r1_done == (r1 > 0 && step == 0));
		free(lr);
		snprintf(nm, sizeof nm, "%sG.adam_t", pre);
		double *ta = golden_f64(ref, nm, 1);
		snprintf(nm, sizeof nm, "%sD.adam_t", pre);
		double *td = golden_f64(ref, nm, 1);
		CHECK(t->adam_g->t == (int64_t)*ta && t->adam_d->t == (int64_t)*td);
		free(ta), free(td);
		Worst w = {0};
		compare(ref, pre, "G", t->gp, t->ng, t->adam_g, t->ema, &w);
		compare(ref, pre, "D", t->dp, t->nd, t->adam_d, NULL, &w);
		printf("# %s step %d: worst error / tensor max: parameters %.2g (%s), Adam moments %.2g (%s), EMA %.2g (%s)\n",
		       scen, step, w.param, w.where[0] ? w.where[0] : "-", w.adam, w.where[1] ? w.where[1] : "-", w.ema,
		       w.where[2] ? w.where[2] : "-");
		CHECK_MSG(w.param <= tol_state && w.adam <= tol_state && w.ema <= tol_state,
			  "%s step %d: state off (%.3g %.3g %.3g > %.3g)", scen, step, w.param, w.adam, w.ema, tol_state);
	}
	free(xd), free(hd), free(x), free(h);
	l2_gan_trainer_free(t);
	l2_cliptr_free(clip);
	l2_st_close(init);
	l2_st_close(ref);
}
