/* test_clip_train.c — the training CLIP (lib/models/clip_train.c) against
 * PyTorch goldens (tests/ref/make_train.py: OpenAI's model.py in float64):
 * features, symmetric InfoNCE loss and every parameter's gradient; and its
 * forward equal to the inference CLIP's (lib/models/clip.c) on saved weights. */
#include "text/clip_tokenizer.h"
#include "text/bpe_learn.h"
#include "models/clip.h"
#include "check.h"
#include "nn/ckpt.h"
#include "models/clip_train.h"
#include "io/safetensors.h"
#include "core/util.h"

#include <unistd.h>

#define REF "tests/ref/train/"

static double *load_f64(const L2Safetensors *st, const char *name, size_t *n)
{
	const L2Tensor *t = l2_st_find(st, name);
	if (!t) l2_die("golden lacks %s", name);
	double *d = l2_malloc(t->nelem * sizeof *d);
	if (t->dtype == L2_ST_F64) memcpy(d, t->data, t->nelem * 8);
	else {
		float *f = l2_malloc(t->nelem * sizeof *f);
		l2_st_to_f32(st, t, f);
		for (size_t i = 0; i < t->nelem; i++) d[i] = f[i];
		free(f);
	}
	*n = t->nelem;
	return d;
}

static void test_matches_pytorch(void)
{
	L2ClipTrainConfig c = {.res = 16, .patch = 8, .width = 32, .layers = 2, .heads = 1, .context = 8, .vocab = 40,
			       .twidth = 32, .tlayers = 2, .theads = 1, .embed = 24};
	L2ClipTrain *m = l2_cliptr_new(&c, 1);
	l2_ckpt_load_weights(REF "clip_tiny.safetensors", m->p, m->np);
	L2Safetensors *io = l2_st_open(REF "clip_tiny_io.safetensors");
	size_t n;
	double *px64 = load_f64(io, "px", &n);
	float *px = l2_malloc(n * sizeof *px);
	for (size_t i = 0; i < n; i++) px[i] = (float)px64[i];
	const L2Tensor *tt = l2_st_find(io, "tokens");
	CHECK(tt && tt->dtype == L2_ST_I32 && tt->nelem == 4 * 8);
	int32_t tok[32];
	memcpy(tok, tt->data, sizeof tok);

	AdGraph *g = ad_graph_new();
	AdTensor *X = ad_input(g, 4, (int[]){4, 3, 16, 16}, px);
	AdTensor *fi = l2_cliptr_encode_image(g, m, X), *ft = l2_cliptr_encode_text(g, m, tok, 4);
	AdTensor *loss = l2_cliptr_loss(g, m, fi, ft);
	ad_zero_grads(m->p, m->np);
	ad_backward(g, loss);

	double *rfi = load_f64(io, "image_features", &n);
	CHECK_ARRAY_CLOSE_D(fi->v, rfi, n, 2e-5, 1e-4);
	double *rft = load_f64(io, "text_features", &n);
	CHECK_ARRAY_CLOSE_D(ft->v, rft, n, 2e-5, 1e-4);
	double *rl = load_f64(io, "loss", &n);
	CHECK_CLOSE(loss->v[0], rl[0], 1e-5, 1e-5);
	for (int i = 0; i < m->np; i++) {
		char name[300];
		snprintf(name, sizeof name, "grad.%s", m->p[i]->name);
		double *rg = load_f64(io, name, &n);
		CHECK(n == m->p[i]->n);
		double mx = 0;
		for (size_t k = 0; k < n; k++) mx = fmax(mx, fabs(rg[k]));
		if (!check_arrays_close(m->p[i]->g, rg, NULL, n, 1e-4 * mx + 1e-7, 1e-3, m->p[i]->name, __FILE__, __LINE__))
			break;
		free(rg);
	}
	free(rfi);
	free(rft);
	free(rl);
	free(px64);
	free(px);
	ad_graph_free(g);
	l2_st_close(io);
	l2_cliptr_free(m);
}

static void test_config_checks(void)
{
	L2ClipTrainConfig c = {.res = 32, .patch = 8, .width = 128, .layers = 2, .heads = 2, .context = 16, .vocab = 600,
			       .twidth = 128, .tlayers = 2, .theads = 2, .embed = 64};
	CHECK(l2_cliptr_check(&c) == NULL);
	c.heads = 4;
	CHECK(l2_cliptr_check(&c) != NULL); /* the encoders infer width / 64 */
	c.heads = 2;
	c.res = 30;
	CHECK(l2_cliptr_check(&c) != NULL);
	CHECK(l2_cliptr_heads_for(32) == 1 && l2_cliptr_heads_for(512) == 8);
}

/* What l2-train-clip writes is what l2-encode-images / l2-encode-text run:
 * lib/models/clip.c on the saved weights gives the training forward's features,
 * and lib/text/clip_tokenizer.c reads the learned vocabulary (l2-train-clip tokenizes with it too). */
static void test_encoders_agree(void)
{
	L2ClipTrainConfig c = {.res = 16, .patch = 4, .width = 128, .layers = 2, .heads = 2, .context = 10, .vocab = 0,
			       .twidth = 64, .tlayers = 1, .theads = 1, .embed = 32};
	char *texts[] = {"a big red circle", "a small blue square", "two red circles don't roll", "the 42nd square!",
			 "smiling face with open mouth"};
	L2BpeVocab *v = l2_bpe_learn(texts, 5, 560);
	c.vocab = l2_bpe_size(v);
	char dir[] = "/tmp/l2-test-cliptr-XXXXXX";
	if (!mkdtemp(dir)) return;
	char wpath[128], vpath[128];
	snprintf(wpath, sizeof wpath, "%s/m.safetensors", dir);
	snprintf(vpath, sizeof vpath, "%s/vocab.txt.gz", dir);
	l2_bpe_write(v, vpath);
	L2ClipTrain *m = l2_cliptr_new(&c, 11);
	/* non-trivial gains and biases, as after training */
	for (int i = 0; i < m->np; i++)
		if (m->p[i]->ndim == 1 && strcmp(m->p[i]->name, "logit_scale"))
			for (size_t k = 0; k < m->p[i]->n; k++) m->p[i]->v[k] += (float)(0.1 * check_normal());
	l2_ckpt_save_weights(wpath, m->p, m->np, NULL);
	L2Clip *ref = l2_clip_load(wpath, L2_CLIP_VISION | L2_CLIP_TEXT);
	const L2ClipConfig *rc = l2_clip_config(ref);
	CHECK(rc->width == 128 && rc->heads == 2 && rc->patch == 4 && rc->res == 16 && rc->twidth == 64 &&
	      rc->context == 10 && rc->vocab == c.vocab && rc->embed == 32);

	int n = 3;
	float *px = l2_malloc((size_t)n * 3 * 16 * 16 * sizeof(float)), fr[3 * 32], ft_ref[5 * 32];
	for (int i = 0; i < n * 3 * 16 * 16; i++) px[i] = (float)check_normal();
	l2_clip_encode_images(ref, px, n, fr);
	AdGraph *g = ad_graph_new();
	ad_graph_set_grad(g, 0);
	AdTensor *fi = l2_cliptr_encode_image(g, m, ad_input(g, 4, (int[]){n, 3, 16, 16}, px));
	CHECK_ARRAY_CLOSE_F(fi->v, fr, (size_t)n * 32, 1e-5, 1e-4);

	L2Tokenizer *tk = l2_tok_load(vpath);
	CHECK(l2_tok_vocab_size(tk) == l2_bpe_size(v));
	int32_t theirs[5 * 10];
	for (int i = 0; i < 5; i++) CHECK(l2_tok_tokenize(tk, texts[i], strlen(texts[i]), 10, theirs + i * 10) > 2);
	l2_clip_encode_text(ref, theirs, 5, ft_ref);
	AdTensor *ft = l2_cliptr_encode_text(g, m, theirs, 5);
	CHECK_ARRAY_CLOSE_F(ft->v, ft_ref, 5 * 32, 1e-5, 1e-4);

	ad_graph_free(g);
	l2_tok_free(tk);
	l2_clip_free(ref);
	l2_cliptr_free(m);
	l2_bpe_free(v);
	free(px);
	unlink(wpath);
	unlink(vpath);
	rmdir(dir);
}

int main(void)
{
	if (access(REF "clip_tiny.safetensors", R_OK) && chdir("../..")) {}
	RUN(test_matches_pytorch);
	RUN(test_config_checks);
	RUN(test_encoders_agree);
	return check_done();
}
