/* simd.h — 16-float vectors (GCC/clang vector extensions: one AVX-512 register, two
 * AVX ones; the compiler splits them for narrower targets) and a vectorised exp, for
 * the single-thread inference kernels (lib/nn/nn.c, lib/models/diffusion_model.c). */
#ifndef L2_SIMD_H
#define L2_SIMD_H

#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

typedef float V16 __attribute__((vector_size(64)));
typedef int32_t V16i __attribute__((vector_size(64)));
typedef double V8d __attribute__((vector_size(64)));
typedef float V8 __attribute__((vector_size(32)));

static inline V16 vld(const float *p)
{
	V16 v;
	memcpy(&v, p, sizeof v);
	return v;
}

static inline void vst(float *p, V16 v) { memcpy(p, &v, sizeof v); }

static inline V16 vdup(float x) { return (V16){0} + x; }

/* m ? a : b per lane, m a comparison's result (all ones or zero) */
static inline V16 vsel(V16i m, V16 a, V16 b)
{
	V16i ia, ib;
	memcpy(&ia, &a, sizeof a);
	memcpy(&ib, &b, sizeof b);
	ia = (ia & m) | (ib & ~m);
	memcpy(&a, &ia, sizeof a);
	return a;
}

/* exp(x) for x in [-87.3, 88] (clamped outside), Cephes' expf polynomial:
 * within 2 ulp of expf. */
static inline V16 vexp(V16 x)
{
	x = vsel(x < vdup(88.0f), x, vdup(88.0f));
	x = vsel(x > vdup(-87.3f), x, vdup(-87.3f));
	/* round to nearest with the 1.5 * 2^23 trick (default rounding mode) */
	V16 n = x * 1.44269504088896341f + 12582912.0f;
	n = n - 12582912.0f;
	V16 r = x - n * 0.693359375f; /* exact: few bits in both */
	r = r - n * -2.12194440e-4f;
	V16 p = vdup(1.9875691500e-4f);
	p = p * r + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	p = p * (r * r) + r + 1.0f;
	V16i e = (__builtin_convertvector(n, V16i) + 127) << 23;
	V16 s;
	memcpy(&s, &e, sizeof s);
	return p * s;
}

#endif
