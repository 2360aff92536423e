/* device.c — the CPU/CUDA seam (see device.h).
 *
 * A CUDA build (CUDA=1) compiles lib/cuda into libl2cuda.so, installed
 * beside the programs.  It is loaded here with dlopen on first use rather
 * than linked: cuBLAS alone takes over a second to load, which every tool
 * would pay at start-up, and a machine without the CUDA runtime can still run
 * every CPU path. */
#include "core/device.h"
#include "core/util.h"

#include <stdio.h>
#include <string.h>

#ifdef L2_CUDA
#include <dlfcn.h>
#include <stdlib.h>

static int loaded; /* 0 not tried, 1 loaded, -1 failed */
static char why[512];
static int (*cu_available)(void);
static const char *(*cu_status)(void);
static int (*cu_sgemm)(int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);

static void *try_open(const char *path)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) snprintf(why, sizeof why, "cannot load %.200s: %.250s", path, dlerror());
	return h;
}

/* $L2_CUDA_LIB, else libl2cuda.so beside the program, else ../lib/l2/. */
static int load(void)
{
	if (loaded) return loaded > 0;
	loaded = -1;
	void *h = NULL;
	const char *env = getenv("L2_CUDA_LIB");
	if (env && *env) h = try_open(env);
	for (int i = 0; !h && i < 2; i++) {
		char *p = l2_exe_path(i ? "../lib/l2/libl2cuda.so" : "libl2cuda.so");
		if (p) h = try_open(p);
		free(p);
	}
	if (!h) return 0;
	cu_available = (int (*)(void))dlsym(h, "l2cu_available");
	cu_status = (const char *(*)(void))dlsym(h, "l2cu_status");
	cu_sgemm = (int (*)(int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int))
		dlsym(h, "l2cu_sgemm");
	if (!cu_available || !cu_status || !cu_sgemm) {
		snprintf(why, sizeof why, "libl2cuda.so lacks the l2cu_* entry points (a mismatched build?)");
		return 0;
	}
	loaded = 1;
	return 1;
}

int l2_cuda_built(void) { return 1; }
int l2_cuda_available(void) { return load() && cu_available(); }
const char *l2_cuda_status(void) { return load() ? cu_status() : why; }
int l2_cuda_sgemm(int transa, int transb, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
		  int ldb, float beta, float *c, int ldc)
{
	if (!load()) return -1;
	return cu_sgemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

#else

int l2_cuda_built(void) { return 0; }
int l2_cuda_available(void) { return 0; }
const char *l2_cuda_status(void) { return "built without CUDA"; }
int l2_cuda_sgemm(int transa, int transb, int m, int n, int k, float alpha, const float *a, int lda,
		  const float *b, int ldb, float beta, float *c, int ldc)
{
	(void)transa; (void)transb; (void)m; (void)n; (void)k; (void)alpha; (void)a; (void)lda;
	(void)b; (void)ldb; (void)beta; (void)c; (void)ldc;
	return -1;
}

#endif
