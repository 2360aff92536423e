/* fuzz_ckpt.c — the training-state reader (l2_ckpt_load_state, lib/nn/ckpt.h):
 * what a resumed run reads first.
 *
 * The input is a state file (safetensors, format 2) for a run with one group
 * "net" of two parameters, "a" (2, 3) and "b" (4,), with Adam and an EMA.  The fuzz build computes the
 * checksum but does not enforce it (FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION),
 * so mutated files reach the metadata and shape checks behind it; the
 * replay build enforces it.  An accepted state must have filled every
 * buffer it names from the file. */
#include "fuzz.h"
#include "nn/ckpt.h"

#include <stdio.h>
#include <stdlib.h>

static void fuzz_one(const uint8_t *data, size_t size)
{
	const char *path = l2_fuzz_write_file("state.safetensors", data, size);
	AdTensor *p[2] = {ad_param_new("a", 2, (int[]){2, 3}), ad_param_new("b", 1, (int[]){4})};
	L2Adam *opt = l2_adam_new(p, 2, 0.9, 0.999, 1e-8, 0);
	L2Ema *ema = l2_ema_new(p, 2);
	L2TrainState s;
	L2CkptGroup g = {.name = "net", .p = p, .n = 2, .adam = opt, .nema = 1, .ema = {ema}};
	l2_ckpt_load_state(path, &s, &g, 1);
	volatile float sink = 0;
	for (int i = 0; i < 2; i++)
		for (size_t j = 0; j < p[i]->n; j++) sink += p[i]->v[j] + opt->m[i][j] + opt->v[i][j] + ema->w[i][j];
	(void)sink;
	l2_ema_free(ema);
	l2_adam_free(opt);
	ad_param_free(p[0]);
	ad_param_free(p[1]);
}

L2_FUZZ_TARGET(fuzz_one)
