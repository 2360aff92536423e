/* test_ckpt.c — checkpoints: round trips, bit-identical resume of a small
 * training loop (N steps straight == N/2, save, load into fresh objects,
 * N/2), state groups (two networks, each with its own Adam step count, one
 * with two EMAs), refusal of corrupt files, of a missing group and of a
 * state of the previous format. */
#include "check.h"
#include "check_child.h"
#include "nn/ckpt.h"
#include "io/safetensors.h"
#include "core/util.h"

#include <sys/wait.h>
#include <unistd.h>

static char dir[256];

/* A toy model: y = tanh(x W1^T + b1) W2^T, regression on random data. */
typedef struct {
	AdTensor *p[3];
	L2Adam *opt;
	L2Ema *ema;
} Toy;

static void toy_new(Toy *t, uint64_t seed)
{
	t->p[0] = ad_param_new("l1.weight", 2, (int[]){8, 4});
	t->p[1] = ad_param_new("l1.bias", 1, (int[]){8});
	t->p[2] = ad_param_new("l2.weight", 2, (int[]){2, 8});
	L2Rng r;
	l2_rng_init(&r, seed, 0);
	for (int k = 0; k < 3; k++) l2_rng_fill_normal(&r, t->p[k]->v, t->p[k]->n, 0, 0.5);
	t->opt = l2_adam_new(t->p, 3, 0.9, 0.999, 1e-8, 0.01);
	t->ema = l2_ema_new(t->p, 3);
}

static void toy_free(Toy *t)
{
	for (int k = 0; k < 3; k++) ad_param_free(t->p[k]);
	l2_adam_free(t->opt);
	l2_ema_free(t->ema);
}

static L2CkptGroup toy_group(Toy *t, const char *name)
{
	return (L2CkptGroup){.name = name, .p = t->p, .n = 3, .adam = t->opt, .nema = 1, .ema = {t->ema}};
}

/* Steps from..to-1; step s's data from a stream keyed by s (as the trainers do). */
static void toy_steps(Toy *t, AdGraph *g, int from, int to)
{
	for (int s = from; s < to; s++) {
		float x[16 * 4], y[16 * 2];
		L2Rng r;
		l2_rng_init(&r, 99, (uint64_t)s);
		l2_rng_fill_normal(&r, x, 64, 0, 1);
		for (int i = 0; i < 16; i++) {
			y[i * 2] = x[i * 4] * x[i * 4 + 1];
			y[i * 2 + 1] = x[i * 4 + 2] - x[i * 4 + 3];
		}
		ad_graph_reset(g);
		AdTensor *X = ad_input(g, 2, (int[]){16, 4}, x), *Y = ad_input(g, 2, (int[]){16, 2}, y);
		AdTensor *h = ad_tanh(g, ad_linear(g, X, t->p[0], t->p[1]));
		AdTensor *o = ad_linear(g, h, t->p[2], NULL);
		AdTensor *l = ad_mean_all(g, ad_square(g, ad_sub(g, o, Y)));
		ad_zero_grads(t->p, 3);
		ad_backward(g, l);
		l2_grad_clip(t->p, 3, 1.0);
		l2_adam_step(t->opt, 1e-2);
		l2_ema_update(t->ema, 0.9);
	}
}

static void save(Toy *t, const char *state, int64_t step)
{
	L2TrainState s = {.step = step, .data = {3, 17}};
	snprintf(s.config, sizeof s.config, "toy lr=0.01");
	L2CkptGroup g = toy_group(t, "toy");
	l2_ckpt_save_state(state, &s, &g, 1);
}

static void test_resume_bit_identical(void)
{
	AdGraph *g = ad_graph_new();
	Toy a, b;
	toy_new(&a, 7);
	toy_steps(&a, g, 0, 40);

	toy_new(&b, 7);
	toy_steps(&b, g, 0, 20);
	char st[300], w1[300], w2[300];
	snprintf(st, sizeof st, "%s/run.state", dir);
	save(&b, st, 20);
	toy_free(&b);

	Toy c;
	toy_new(&c, 999); /* different init: everything must come from the file */
	L2TrainState s;
	L2CkptGroup cg = toy_group(&c, "toy");
	l2_ckpt_load_state(st, &s, &cg, 1);
	CHECK(s.step == 20 && s.data.epoch == 3 && s.data.pos == 17 && !strcmp(s.config, "toy lr=0.01"));
	CHECK(c.opt->t == 20);
	toy_steps(&c, g, 20, 40);

	snprintf(w1, sizeof w1, "%s/a.safetensors", dir);
	snprintf(w2, sizeof w2, "%s/c.safetensors", dir);
	l2_ckpt_save_weights(w1, a.p, 3, NULL);
	l2_ckpt_save_weights(w2, c.p, 3, NULL);
	size_t n1, n2;
	char *f1 = l2_read_file(w1, &n1), *f2 = l2_read_file(w2, &n2);
	CHECK(n1 == n2 && !memcmp(f1, f2, n1));
	for (int k = 0; k < 3; k++) {
		CHECK(!memcmp(a.p[k]->v, c.p[k]->v, a.p[k]->n * sizeof(float)));
		CHECK(!memcmp(a.ema->w[k], c.ema->w[k], a.p[k]->n * sizeof(float)));
	}
	free(f1);
	free(f2);
	toy_free(&a);
	toy_free(&c);
	ad_graph_free(g);
}

static void test_weights_roundtrip(void)
{
	Toy a, b;
	toy_new(&a, 1);
	toy_new(&b, 2);
	char w[300];
	snprintf(w, sizeof w, "%s/w.safetensors", dir);
	const char *meta[] = {"arch", "toy", NULL};
	l2_ckpt_save_weights(w, a.p, 3, meta);
	l2_ckpt_load_weights(w, b.p, 3);
	for (int k = 0; k < 3; k++) CHECK(!memcmp(a.p[k]->v, b.p[k]->v, a.p[k]->n * sizeof(float)));
	toy_free(&a);
	toy_free(&b);
}

static void load_state_child(const void *path)
{
	Toy t;
	toy_new(&t, 1);
	L2TrainState s;
	L2CkptGroup g = toy_group(&t, "toy");
	l2_ckpt_load_state(path, &s, &g, 1);
}

static void test_corrupt_refused(void)
{
	Toy t;
	toy_new(&t, 3);
	char st[300], err[512];
	snprintf(st, sizeof st, "%s/c.state", dir);
	save(&t, st, 5);
	size_t n;
	char *buf = l2_read_file(st, &n);
	/* flip one byte of tensor data near the end */
	buf[n - 10] ^= 0x40;
	FILE *f = fopen(st, "wb");
	fwrite(buf, 1, n, f);
	fclose(f);
	int rc = check_child(load_state_child, st, err, sizeof err);
	CHECK(rc == 1);
	CHECK_MSG(strstr(err, "checksum mismatch") != NULL, "stderr: %s", err);
	/* truncated */
	f = fopen(st, "wb");
	fwrite(buf, 1, n / 2, f);
	fclose(f);
	rc = check_child(load_state_child, st, err, sizeof err);
	CHECK(rc == 1 && strstr(err, st) != NULL);
	/* a weights file is not a state */
	snprintf(st, sizeof st, "%s/w2.safetensors", dir);
	l2_ckpt_save_weights(st, t.p, 3, NULL);
	rc = check_child(load_state_child, st, err, sizeof err);
	CHECK(rc == 1 && strstr(err, "not an l2 training state") != NULL);
	free(buf);
	toy_free(&t);
}

/* Two groups: "A" with Adam and two named EMAs, "B" with Adam only; their
 * step counts differ and come back as saved, every tensor too. */
static void two_groups(Toy *a, Toy *b, L2Ema *e2, L2CkptGroup *g)
{
	g[0] = (L2CkptGroup){.name = "A", .p = a->p, .n = 3, .adam = a->opt, .nema = 2, .ema = {a->ema, e2},
			     .ema_name = {"ema-0.050", "ema-0.100"}};
	g[1] = (L2CkptGroup){.name = "B", .p = b->p, .n = 3, .adam = b->opt};
}

static void load_one_group_child(const void *path)
{
	Toy t;
	toy_new(&t, 1);
	L2TrainState s;
	L2CkptGroup g = toy_group(&t, "C"); /* not in the file */
	l2_ckpt_load_state(path, &s, &g, 1);
}

static void test_groups(void)
{
	AdGraph *g = ad_graph_new();
	Toy a, b, a2, b2;
	toy_new(&a, 1), toy_new(&b, 2), toy_new(&a2, 3), toy_new(&b2, 4);
	/* B's parameters are named as A's: the groups keep them apart */
	toy_steps(&a, g, 0, 7), toy_steps(&b, g, 0, 4);
	L2Ema *e2 = l2_ema_new(a.p, 3), *e2b = l2_ema_new(a2.p, 3);
	l2_ema_update(e2, 0.5);
	L2CkptGroup gs[2], gl[2];
	two_groups(&a, &b, e2, gs);
	two_groups(&a2, &b2, e2b, gl);
	char st[300], err[512];
	snprintf(st, sizeof st, "%s/groups.state", dir);
	L2TrainState s = {.step = 7}, r;
	l2_ckpt_save_state(st, &s, gs, 2);
	l2_ckpt_load_state(st, &r, gl, 2);
	CHECK(r.step == 7 && a2.opt->t == 7 && b2.opt->t == 4);
	int same = 1;
	for (int k = 0; k < 3; k++) {
		size_t n = a.p[k]->n * sizeof(float);
		same &= !memcmp(a.p[k]->v, a2.p[k]->v, n) && !memcmp(b.p[k]->v, b2.p[k]->v, n);
		same &= !memcmp(a.opt->m[k], a2.opt->m[k], n) && !memcmp(a.opt->v[k], a2.opt->v[k], n);
		same &= !memcmp(b.opt->m[k], b2.opt->m[k], n) && !memcmp(b.opt->v[k], b2.opt->v[k], n);
		same &= !memcmp(a.ema->w[k], a2.ema->w[k], n) && !memcmp(e2->w[k], e2b->w[k], n);
	}
	CHECK(same);
	L2Safetensors *f = l2_st_open(st);
	CHECK(l2_st_find(f, "A.ema-0.100.l1.weight") && l2_st_find(f, "B.adam_v.l2.weight") && !l2_st_find(f, "B.ema.l1.bias"));
	CHECK(!strcmp(l2_st_metadata(f, "l2.state_version"), "2") && !strcmp(l2_st_metadata(f, "A.adam_t"), "7"));
	l2_st_close(f);
	/* a group the file lacks is refused, naming the file */
	int rc = check_child(load_one_group_child, st, err, sizeof err);
	CHECK_MSG(rc == 1 && strstr(err, st) && strstr(err, "C.param.l1.weight"), "rc %d: %s", rc, err);
	l2_ema_free(e2), l2_ema_free(e2b);
	toy_free(&a), toy_free(&b), toy_free(&a2), toy_free(&b2);
	ad_graph_free(g);
}

/* A state of the first format (one Adam, an RNG, tensors "param.NAME", no
 * l2.state_version) is refused with a hint, not read. */
static void test_old_format_refused(void)
{
	Toy t;
	toy_new(&t, 5);
	char st[300], err[512];
	snprintf(st, sizeof st, "%s/v1.state", dir);
	const char *meta[] = {"l2.kind", "train-state", "step", "3", "adam_t", "3", "rng_key", "1", "rng_ctr", "2",
			      "data_epoch", "0", "data_pos", "4", "config", "toy lr=0.01", NULL};
	char names[3][64];
	L2StWriter *w = l2_st_writer_new();
	for (int k = 0; k < 3; k++) {
		int64_t sh[2] = {t.p[k]->shape[0], t.p[k]->ndim > 1 ? t.p[k]->shape[1] : 0};
		snprintf(names[k], sizeof names[k], "param.%s", t.p[k]->name);
		l2_st_writer_add_f32(w, names[k], t.p[k]->ndim, sh, t.p[k]->v);
	}
	for (int k = 0; meta[k]; k += 2) l2_st_writer_meta(w, meta[k], meta[k + 1]);
	l2_st_writer_meta(w, "l2.checksum", "0000000000000000");
	l2_st_writer_write(w, st);
	l2_st_writer_free(w);
	int rc = check_child(load_state_child, st, err, sizeof err);
	CHECK_MSG(rc == 1 && strstr(err, st) && strstr(err, "format 1") && strstr(err, "without --resume") &&
			  strchr(err, '\n') == err + strlen(err) - 1,
		  "rc %d: %s", rc, err);
	toy_free(&t);
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/l2-test-ckpt-XXXXXX");
	if (!mkdtemp(dir)) return 1;
	RUN(test_weights_roundtrip);
	RUN(test_resume_bit_identical);
	RUN(test_corrupt_refused);
	RUN(test_groups);
	RUN(test_old_format_refused);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd)) {}
	return check_done();
}
