/* diffusion_golden.h — which PyTorch golden of tests/ref/diffusion/ a diffusion test reads
 * (test_diffusion.c in float64, test_diffusion_float.c in float32; make_diffusion.py makes
 * them): "tiny" (res 8), "patch2" (res 16, patch 2), "tokens" (res 8, 3 condition tokens).
 * REF_W is the golden's weights file, IO its inputs and outputs. */
#pragma once

#include "io/safetensors.h"

#include <stdio.h>

static char REF_W[128], REF_IO[128];
static L2Safetensors *IO;

static void use_golden(const char *tag)
{
	snprintf(REF_W, sizeof REF_W, "tests/ref/diffusion/%s.safetensors", tag);
	snprintf(REF_IO, sizeof REF_IO, "tests/ref/diffusion/%s_io.safetensors", tag);
	if (IO) l2_st_close(IO);
	IO = l2_st_open(REF_IO);
	printf("# golden %s\n", tag);
}
