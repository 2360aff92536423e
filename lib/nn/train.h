/* train.h — what every trainer shares (l2-train-clip, l2-train-gan,
 * l2-train-diffusion): the batch order, randomness keyed per sample, the stop
 * signal, run-directory paths and the progress line.
 *
 *   L2TrainState st = {0};                  (lib/nn/ckpt.h: step, data position, config)
 *   L2Batcher bt;
 *   l2_batcher_init(&bt, n_images, seed, &st.data);
 *   l2_train_catch_signals();
 *   while (st.step < stop_after && !l2_train_stopped()) {
 *       const int *idx = l2_batcher_next(&bt, B);      the step's B examples
 *       for (b = 0; b < B; b++) {
 *           L2Rng r;
 *           l2_train_rng(&r, seed, st.step, PHASE, b);  sample b's draws
 *           ...
 *       }
 *       ... forward, backward, optimiser ...
 *       st.step++;
 *   }
 *   return l2_train_exit_code(st.step);               130 after a signal
 *
 * Batch order (llm.c's DataLoader): epoch e visits the examples in
 * l2_rng_epoch_perm(seed, e) order, B at a time; when fewer than B remain the
 * tail is skipped and the next epoch starts.  The position (epoch, offset)
 * lives in the training state (L2TrainState.data), so a checkpoint saves it
 * and a resumed run continues the same order; the batcher itself holds only
 * the cached permutation.
 *
 * Randomness per sample: a draw that belongs to one sample of a step (a flip,
 * a condition's noise, a latent, noise inputs, a crop box) comes from its own
 * stream l2_train_rng(seed, step, phase, position in the global batch).  No
 * generator state has to be saved, and when the batch is later split across
 * processes each computes exactly its samples' values (../DISTRIBUTED §3.3).
 * `phase` separates the draws of different passes over the same sample; its
 * values belong to the method (lib/method/gan_train.h, ...).  Batch means are
 * then written (sum over samples) / B. */
#ifndef L2_TRAIN_H
#define L2_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "core/util.h"
#include "nn/ckpt.h"

typedef struct {
	int n;               /* examples */
	uint64_t seed;
	L2DataPos *at;       /* epoch and offset: in the training state, not owned */
	int *perm;           /* [n] the order of epoch perm_epoch */
	uint64_t perm_epoch;
} L2Batcher;

void l2_batcher_init(L2Batcher *b, int n, uint64_t seed, L2DataPos *at);
void l2_batcher_free(L2Batcher *b);
/* The indices of the next B examples (1 <= B <= n), valid until the next
 * call; advances the position. */
const int *l2_batcher_next(L2Batcher *b, int B);

/* The stream of sample `pos` of the global batch of step `step` in pass
 * `phase`: a generator that depends on these four numbers only. */
void l2_train_rng(L2Rng *r, uint64_t seed, int64_t step, int phase, uint64_t pos);

/* SIGINT / SIGTERM set a flag instead of killing the run, so the loop can end
 * the step, write a checkpoint and exit 130. */
void l2_train_catch_signals(void);
int l2_train_stopped(void); /* the signal number, or 0 */
/* After the final checkpoint: 130 with "interrupted at step N: checkpoint
 * written (continue with --resume)" when a signal stopped the run, else 0. */
int l2_train_exit_code(int64_t step);

/* One run per output: take LOCKPATH (lib/core/lock.h) for the rest of the
 * process, so that a second run into the same output is refused ("TARGET:
 * a training run is running (pid N); ...") instead of mixing its weights,
 * state and log with this one's.  Released at exit; the kernel drops it
 * when the run is killed.  Lock files: RUNDIR/train.lock (l2-train-gan),
 * OUT's stem + ".lock" (l2-train-clip). */
void l2_train_lock(const char *lockpath, const char *target);

/* --resume: *ST becomes the state at PATH, read into groups G.  Dies when there is none or it
 * was made with settings other than ST->config (this run's): it would be another run. */
void l2_train_resume_state(const char *path, L2TrainState *st, const L2CkptGroup *g, int ng);
/* --grid ROWSxCOLS of the trainers' sample grids, each 1..64 (else a usage error). */
void l2_train_grid_option(const char *arg, L2UsageFn usage, long *rows, long *cols);

/* DIR/NAME (malloc'd). */
char *l2_train_path(const char *dir, const char *name);
/* FILE without a trailing ".safetensors", then SUFFIX (malloc'd):
 * clip.safetensors + ".state" -> clip.state. */
char *l2_train_sibling(const char *file, const char *suffix);

/* Throughput since a start point. */
typedef struct {
	double t0;
	int64_t step0;
} L2TrainClock;
void l2_train_clock_start(L2TrainClock *c, int64_t step);
/* Examples per second since the start, B per step (0 before a step). */
double l2_train_clock_rate(const L2TrainClock *c, int64_t step, int B);
/* "M:SS", or "H:MM:SS" from an hour. */
void l2_train_eta(double seconds, char *buf, size_t n);
/* The progress line on stderr (not with --quiet):
 *   "step STEP/STEPS  <fmt...>  RATE img/s  ETA E"
 * with E the time left to stop_after at `rate` images per second. */
void l2_train_log(int64_t step, int64_t steps, int64_t stop_after, int B, double rate, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* ---- log.tsv and loss.png ------------------------------------------------
 * One row per tick: "step" then named columns, a header line first; the
 * whole file is rewritten atomically at each tick, and --resume reads the
 * rows up to the state's step back, so the log of a resumed run equals an
 * uninterrupted one's.  NaN (a value not taken) is written "nan". */
typedef struct {
	int ncol;                  /* columns after "step" */
	const char *const *names;  /* [ncol] */
	const char *const *fmt;    /* [ncol] printf formats, e.g. "%.6f" */
	int n, cap;
	double *rows;              /* [n][1 + ncol]: step, then the columns */
} L2TrainTsv;

void l2_train_tsv_init(L2TrainTsv *t, int ncol, const char *const *names, const char *const *fmt);
void l2_train_tsv_free(L2TrainTsv *t);
void l2_train_tsv_add(L2TrainTsv *t, int64_t step, const double *v);
void l2_train_tsv_write(const L2TrainTsv *t, const char *path);
/* Appends the rows of PATH with step <= upto (none when PATH is missing;
 * a row with fewer columns gets NaN in the rest). */
void l2_train_tsv_read(L2TrainTsv *t, const char *path, int64_t upto);
/* A line chart (lib/io/plot.h) of columns cols[0..k) (k <= 8) against the
 * step, in one panel with a legend of the column names; NaN leaves a gap. */
void l2_train_tsv_plot(const L2TrainTsv *t, const char *path, const char *title, const int *cols, int k);

#endif
