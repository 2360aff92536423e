/* train.c — trainer plumbing (see train.h). */
#include "nn/train.h"
#include "core/hash.h"
#include "core/lock.h"
#include "core/util.h"
#include "io/plot.h"

#include <math.h>

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- batches ---------------------------------------------------------------- */

void l2_batcher_init(L2Batcher *b, int n, uint64_t seed, L2DataPos *at)
{
	b->n = n, b->seed = seed, b->at = at;
	b->perm = l2_malloc((size_t)(n > 0 ? n : 1) * sizeof(int));
	b->perm_epoch = UINT64_MAX;
}

void l2_batcher_free(L2Batcher *b)
{
	free(b->perm);
	b->perm = NULL;
}

const int *l2_batcher_next(L2Batcher *b, int B)
{
	if (B < 1 || B > b->n) l2_die("batch of %d from %d examples", B, b->n);
	L2DataPos *at = b->at;
	if (at->pos + (uint64_t)B > (uint64_t)b->n) at->epoch++, at->pos = 0;
	if (b->perm_epoch != at->epoch) {
		l2_rng_epoch_perm(b->perm, b->n, b->seed, at->epoch);
		b->perm_epoch = at->epoch;
	}
	const int *idx = b->perm + at->pos;
	at->pos += (uint64_t)B;
	return idx;
}

/* ---- randomness per sample ----------------------------------------------------- */

void l2_train_rng(L2Rng *r, uint64_t seed, int64_t step, int phase, uint64_t pos)
{
	/* each field through the finaliser before the next is added: distinct
	 * (step, phase, pos) give unrelated streams */
	uint64_t s = l2_mix64((uint64_t)step + 0x7374657000000000ull);
	s = l2_mix64(s + (uint64_t)(unsigned)phase);
	s = l2_mix64(s + pos);
	l2_rng_init(r, seed, s);
}

/* ---- stop signal ----------------------------------------------------------------- */

static volatile sig_atomic_t stop_signal;
static void on_signal(int s) { stop_signal = s; }

void l2_train_catch_signals(void)
{
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
}

int l2_train_stopped(void) { return stop_signal; }

int l2_train_exit_code(int64_t step)
{
	if (!stop_signal) return 0;
	l2_info("interrupted at step %lld: checkpoint written (continue with --resume)", (long long)step);
	return 130;
}

/* ---- paths ------------------------------------------------------------------------ */

char *l2_train_path(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = l2_malloc(n);
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static L2Lock *run_lock;

static void release_run_lock(void)
{
	l2_lock_release(run_lock);
	run_lock = NULL;
}

void l2_train_resume_state(const char *path, L2TrainState *st, const L2CkptGroup *g, int ng)
{
	if (!l2_file_exists(path)) l2_die("%s: no training state to resume (run without --resume first)", path);
	L2TrainState saved;
	l2_ckpt_load_state(path, &saved, g, ng);
	if (strcmp(saved.config, st->config)) {
		char q[sizeof saved.config + 64]; /* the state file's bytes, escaped to one line */
		l2_die("%s: made with other settings (%s); resume with the same options", path,
		       l2_escape(q, sizeof q, saved.config, strlen(saved.config)));
	}
	*st = saved;
}

void l2_train_grid_option(const char *arg, L2UsageFn usage, long *rows, long *cols)
{
	if (sscanf(arg, "%ldx%ld", rows, cols) != 2 || *rows < 1 || *cols < 1 || *rows > 64 || *cols > 64)
		l2_usage_error(usage, "--grid wants ROWSxCOLS, each 1..64");
}

void l2_train_lock(const char *lockpath, const char *target)
{
	if (run_lock) l2_die("internal error: a second training-run lock");
	run_lock = l2_lock_take(lockpath, target, "a training run");
	atexit(release_run_lock);
}

char *l2_train_sibling(const char *file, const char *suffix)
{
	size_t n = strlen(file), e = strlen(".safetensors");
	if (n > e && !strcmp(file + n - e, ".safetensors")) n -= e;
	char *p = l2_malloc(n + strlen(suffix) + 1);
	memcpy(p, file, n);
	strcpy(p + n, suffix);
	return p;
}

/* ---- progress ---------------------------------------------------------------------- */

void l2_train_clock_start(L2TrainClock *c, int64_t step)
{
	c->t0 = l2_now();
	c->step0 = step;
}

double l2_train_clock_rate(const L2TrainClock *c, int64_t step, int B)
{
	double dt = l2_now() - c->t0;
	return step > c->step0 && dt > 0 ? (double)(step - c->step0) * B / dt : 0;
}

void l2_train_eta(double s, char *buf, size_t n)
{
	long t = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;
	if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
	else snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

void l2_train_log(int64_t step, int64_t steps, int64_t stop_after, int B, double rate, const char *fmt, ...)
{
	if (l2_quiet) return;
	char mid[512], eta[32];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(mid, sizeof mid, fmt, ap);
	va_end(ap);
	l2_train_eta(rate > 0 ? (double)(stop_after - step) * B / rate : 0, eta, sizeof eta);
	l2_info("step %lld/%lld  %s  %.1f img/s  ETA %s", (long long)step, (long long)steps, mid, rate, eta);
}

/* ---- log.tsv and loss.png -------------------------------------------------------------- */

void l2_train_tsv_init(L2TrainTsv *t, int ncol, const char *const *names, const char *const *fmt)
{
	memset(t, 0, sizeof *t);
	t->ncol = ncol, t->names = names, t->fmt = fmt;
}

void l2_train_tsv_free(L2TrainTsv *t)
{
	free(t->rows);
	t->rows = NULL;
	t->n = t->cap = 0;
}

void l2_train_tsv_add(L2TrainTsv *t, int64_t step, const double *v)
{
	int w = 1 + t->ncol;
	if (t->n == t->cap) t->cap = t->cap ? 2 * t->cap : 64, t->rows = l2_realloc(t->rows, (size_t)t->cap * w * sizeof(double));
	double *r = t->rows + (size_t)t->n++ * w;
	r[0] = (double)step;
	memcpy(r + 1, v, t->ncol * sizeof(double));
}

void l2_train_tsv_write(const L2TrainTsv *t, const char *path)
{
	L2OFile *f = l2_ofile_open(path, 0);
	FILE *fp = l2_ofile_fp(f);
	fprintf(fp, "step");
	for (int c = 0; c < t->ncol; c++) fprintf(fp, "\t%s", t->names[c]);
	fputc('\n', fp);
	for (int i = 0; i < t->n; i++) {
		const double *r = t->rows + (size_t)i * (1 + t->ncol);
		fprintf(fp, "%lld", (long long)r[0]);
		for (int c = 0; c < t->ncol; c++) {
			fputc('\t', fp);
			if (isnan(r[1 + c])) fputs("nan", fp);
			else fprintf(fp, t->fmt[c], r[1 + c]);
		}
		fputc('\n', fp);
	}
	l2_ofile_commit(f);
}

void l2_train_tsv_read(L2TrainTsv *t, const char *path, int64_t upto)
{
	FILE *f = fopen(path, "r");
	if (!f) return;
	char line[4096];
	double *v = l2_malloc((t->ncol + 1) * sizeof(double));
	while (fgets(line, sizeof line, f)) {
		char *p = line, *end;
		long long step = strtoll(p, &end, 10);
		if (end == p || *end != '\t') continue; /* the header */
		if (step > upto) break;
		p = end;
		for (int c = 0; c < t->ncol; c++) {
			v[c] = NAN;
			if (*p != '\t') continue;
			double x = strtod(p + 1, &end);
			if (end != p + 1) v[c] = x, p = end;
		}
		l2_train_tsv_add(t, step, v);
	}
	free(v);
	fclose(f);
}

void l2_train_tsv_plot(const L2TrainTsv *t, const char *path, const char *title, const int *cols, int k)
{
	int w = 1 + t->ncol, n = t->n;
	if (k > 8) k = 8;
	double *x = l2_malloc((size_t)(n ? n : 1) * (k + 1) * sizeof(double)), *y = x + (n ? n : 1);
	L2PlotSeries s[8];
	for (int i = 0; i < n; i++) x[i] = t->rows[(size_t)i * w];
	for (int j = 0; j < k; j++) {
		for (int i = 0; i < n; i++) y[(size_t)j * n + i] = t->rows[(size_t)i * w + 1 + cols[j]];
		s[j] = (L2PlotSeries){.label = t->names[cols[j]], .x = x, .y = y + (size_t)j * n, .n = n};
		l2_plot_color(j, s[j].rgb);
	}
	L2PlotPanel p = {.title = title, .s = s, .ns = k};
	l2_plot_png(path, &p, 1, 640, 320);
	free(x);
}
