/* test_ckpt.c — checkpoints: round trips, bit-identical resume of a small
 * training loop (N steps straight == N/2, save, load into fresh objects,
 * N/2), refusal of corrupt files, the previous file surviving a failed
 * write. */
#include "check.h"
#include "nn/ckpt.h"
#include "core/util.h"

#include <sys/wait.h>
#include <unistd.h>

static char dir[256];

/* A toy model: y = tanh(x W1^T + b1) W2^T, regression on random data. */
typedef struct {
	AdTensor *p[3];
	L2Adam *opt;
	L2Ema *ema;
	L2Rng rng;
} Toy;

static void toy_new(Toy *t, uint64_t seed)
{
	t->p[0] = ad_param_new("l1.weight", 2, (int[]){8, 4});
	t->p[1] = ad_param_new("l1.bias", 1, (int[]){8});
	t->p[2] = ad_param_new("l2.weight", 2, (int[]){2, 8});
	l2_rng_init(&t->rng, seed, 0);
	for (int k = 0; k < 3; k++) l2_rng_fill_normal(&t->rng, t->p[k]->v, t->p[k]->n, 0, 0.5);
	t->opt = l2_adam_new(t->p, 3, 0.9, 0.999, 1e-8, 0.01);
	t->ema = l2_ema_new(t->p, 3);
}

static void toy_free(Toy *t)
{
	for (int k = 0; k < 3; k++) ad_param_free(t->p[k]);
	l2_adam_free(t->opt);
	l2_ema_free(t->ema);
}

static void toy_steps(Toy *t, AdGraph *g, int n)
{
	for (int s = 0; s < n; s++) {
		float x[16 * 4], y[16 * 2];
		l2_rng_fill_normal(&t->rng, x, 64, 0, 1); /* data drawn from the saved RNG */
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
	L2TrainState s = {.step = step, .rng = t->rng, .data = {3, 17}};
	snprintf(s.config, sizeof s.config, "toy lr=0.01");
	l2_ckpt_save_state(state, &s, t->p, 3, t->opt, t->ema);
}

static void test_resume_bit_identical(void)
{
	AdGraph *g = ad_graph_new();
	Toy a, b;
	toy_new(&a, 7);
	toy_steps(&a, g, 40);

	toy_new(&b, 7);
	toy_steps(&b, g, 20);
	char st[300], w1[300], w2[300];
	snprintf(st, sizeof st, "%s/run.state", dir);
	save(&b, st, 20);
	toy_free(&b);

	Toy c;
	toy_new(&c, 999); /* different init: everything must come from the file */
	L2TrainState s;
	l2_ckpt_load_state(st, &s, c.p, 3, c.opt, c.ema);
	CHECK(s.step == 20 && s.data.epoch == 3 && s.data.pos == 17 && !strcmp(s.config, "toy lr=0.01"));
	CHECK(c.opt->t == 20);
	c.rng = s.rng;
	toy_steps(&c, g, 20);

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

/* Run fn in a child; return its exit status and first stderr line. */
static int child_status(void (*fn)(const char *), const char *arg, char *err, size_t errlen)
{
	int pfd[2];
	if (pipe(pfd)) return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(pfd[1], 2);
		close(pfd[0]);
		fn(arg);
		_exit(0);
	}
	close(pfd[1]);
	ssize_t k = read(pfd[0], err, errlen - 1);
	err[k > 0 ? k : 0] = 0;
	close(pfd[0]);
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void load_state_child(const char *path)
{
	Toy t;
	toy_new(&t, 1);
	L2TrainState s;
	l2_ckpt_load_state(path, &s, t.p, 3, t.opt, t.ema);
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
	int rc = child_status(load_state_child, st, err, sizeof err);
	CHECK(rc == 1);
	CHECK_MSG(strstr(err, "checksum mismatch") != NULL, "stderr: %s", err);
	/* truncated */
	f = fopen(st, "wb");
	fwrite(buf, 1, n / 2, f);
	fclose(f);
	rc = child_status(load_state_child, st, err, sizeof err);
	CHECK(rc == 1 && strstr(err, st) != NULL);
	/* a weights file is not a state */
	snprintf(st, sizeof st, "%s/w2.safetensors", dir);
	l2_ckpt_save_weights(st, t.p, 3, NULL);
	rc = child_status(load_state_child, st, err, sizeof err);
	CHECK(rc == 1 && strstr(err, "not an l2 training state") != NULL);
	free(buf);
	toy_free(&t);
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/l2-test-ckpt-XXXXXX");
	if (!mkdtemp(dir)) return 1;
	RUN(test_weights_roundtrip);
	RUN(test_resume_bit_identical);
	RUN(test_corrupt_refused);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd)) {}
	return check_done();
}
