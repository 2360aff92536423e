/* vae_priv.h — what vae.c (the forward passes) and vae_weights.c (key
 * layouts, loading, random weights) share: the network's structs and the
 * builder that walks its parameters. */
#ifndef L2_VAE_PRIV_H
#define L2_VAE_PRIV_H

#include "models/vae.h"

#include <pthread.h>

typedef struct {
	cnnr *g, *b; /* (C) GroupNorm gain and bias */
} Norm;

/* KL ResNet block: norm1 SiLU conv1 norm2 SiLU conv2, + shortcut (1x1 conv
 * when the width changes) */
typedef struct {
	Norm n1, n2;
	L2Conv c1, c2, sc;
	int has_sc;
} Res;

/* KL mid-block attention: q | k | v stacked as one 1x1 conv of 3C outputs */
typedef struct {
	Norm n;
	L2Conv qkv, proj;
} Attn;

/* One half of the KL autoencoder.  The encoder's res[] holds levels x layers
 * blocks, the decoder's levels x (layers + 1), in running order (the
 * decoder's level 0 is the lowest resolution, diffusers' up_blocks.0). */
typedef struct {
	L2Conv conv_in;
	Res *res;
	L2Conv *resample; /* levels - 1: stride-2 convs (encoder), convs after upsampling (decoder) */
	Res mid1, mid2;
	Attn attn;
	Norm norm_out;
	L2Conv conv_out;
	L2Conv quant; /* quant_conv (encoder, after conv_out) / post_quant_conv (decoder, first) */
} KlHalf;

enum { T_CONV, T_BLOCK, T_RELU, T_UP };

/* One entry of a TAESD nn.Sequential (diffusers' numbering) */
typedef struct {
	int type;
	L2Conv c;     /* T_CONV (stride 1 or 2, bias or not) */
	L2Conv bc[3]; /* T_BLOCK: conv.0, conv.2, conv.4 */
	L2Conv skip;  /* T_BLOCK with cin != cout: 1x1, no bias */
	int has_skip;
} TaeLayer;

typedef struct {
	int n;
	TaeLayer *l;
} TaeHalf;

struct L2Vae {
	L2VaeConfig cfg;
	int halves, layout;
	int shapes_only; /* loaded without values */
	KlHalf enc, dec;
	TaeHalf tenc, tdec;
	int nfiles;
	char *path[2];
	int file_halves[2]; /* the halves taken from each file */
	/* every weight buffer, for l2_vae_free */
	void **bufs;
	size_t nbufs, capbufs;
	/* activation buffers of the threads running images (struct VaeWs in vae.c) */
	pthread_mutex_t ws_lock;
	struct VaeWs *ws_free;
	/* the Winograd weights of the 3x3 convolutions that run that way (vae_prepare) */
	struct VaeWino {
		const L2Conv *c;
		cnnr *u;
	} *wino;
	int nwino;
	/* l2_vae_identity, computed once */
	pthread_mutex_t id_lock;
	char *identity;
	char hex[2][65];
};

/* The parameter walk: vae_build() visits every tensor of the halves asked
 * for in module order, under its canonical (diffusers) name, and hands
 * each to the visitor, which loads it (into *dst, allocated by the visitor
 * when *dst is NULL) or just lists it. */
typedef struct VaeVisitor {
	/* dst: where the tensor's values go (NULL to let the visitor allocate
	 * and return the buffer); name: canonical; returns the buffer or NULL */
	cnnr *(*tensor)(struct VaeVisitor *vv, const char *name, int ndim, const int64_t *shape, cnnr *dst);
	/* a weight buffer of n elements (NULL when only listing) */
	cnnr *(*alloc)(struct VaeVisitor *vv, size_t n);
	int half; /* the half being walked (L2_VAE_ENCODER / L2_VAE_DECODER) */
} VaeVisitor;

void vae_build(L2Vae *v, int halves, VaeVisitor *vv);
/* After the weights are loaded: the Winograd weights of the 3x3 convolutions
 * (vae.c). */
void vae_prepare(L2Vae *v);
/* Record a malloc'd weight buffer for l2_vae_free. */
void vae_keep(L2Vae *v, void *p);

#endif
