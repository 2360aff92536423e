/* diffusion_net.h — the layout of the diffusion U-Net, shared by its two forwards:
 * the autodiff one (diffusion.c, training) and the tape-free one (diffusion_model.c,
 * sampling).  Private to lib/models/diffusion*.c. */
#ifndef L2_DIFFUSION_NET_H
#define L2_DIFFUSION_NET_H

#include "models/diffusion.h"

enum { RS_KEEP, RS_DOWN, RS_UP };

typedef struct {
	int cin, cout, resample, attn;
	int conv0, emb, conv1, skip, qkv, proj; /* parameter indices, -1: absent */
	int cond_kv;   /* attention with condition tokens: [2 cout, E], else -1 */
	int skip_in;   /* decoder: channels of the skip concatenated to the input (0: none) */
	int res;       /* resolution of the output */
} Block;

struct L2Diffusion {
	L2DiffusionConfig c;
	int np, ntrain, cap;
	AdTensor **p;
	unsigned char *wn;        /* [np] 1: a forced-normalised weight */
	int replica;              /* p[i] are views (free the structs, not the values) */
	int emb_freqs, emb_phases, emb_cond, emb_lin0, emb_lin1;
	int emb_tok;              /* cond_tokens: [K E, cdim + 1], else -1 */
	int conv_in, out_conv, out_gain;
	int lv_freqs, lv_phases, lv_lin;
	int nenc, ndec;
	Block *enc, *dec;         /* encoder and decoder Blocks in forward order */
	int skip_ch[128];         /* encoder outputs' channels, in order */
	int nskip;
	char *latent;             /* the latents' description (JSON) for latent models, or NULL */
};


/* GroupNorm groups of a width: min(32, ch / 4). */
static inline int l2_diffusion_groups(int ch)
{
	int g = ch / 4;
	return g < 32 ? g : 32;
}

#endif
