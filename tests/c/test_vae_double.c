/* test_vae_double.c — the VAE compiled in double: this file #includes
 * lib/nn/conv.c, lib/nn/cnn_layers.c and lib/models/vae*.c with
 * L2_CNN_DOUBLE, so every convolution is a DGEMM and every activation a
 * double, and the encoders and decoders of both autoencoders, loaded from
 * every key layout, must equal tests/ref/make_vae.py's float64 PyTorch
 * outputs to relative error 1e-10 (the weights, images and latents are
 * exactly representable, so only the order of the sums and the Winograd
 * transforms' roundings differ).  The float
 * build's kernels are checked on their own (test_cnn_layers.c) and the
 * float network to 1e-5 (test_vae.c). */
#define L2_CNN_DOUBLE 1
#include "../../lib/nn/conv.c"
#include "../../lib/nn/cnn_layers.c"
#include "../../lib/models/vae.c"
#include "../../lib/models/vae_weights.c"

#include "check.h"
#include "vae_cases.h"

static void test_kl_double(void)
{
	vae_parity("kl", "kl_diffusers_f32.safetensors", 1e-10);
	vae_parity("kl", "kl_ldm_bf16.safetensors", 1e-10);
	vae_parity("kl", "kl_ldm_f16_sd.safetensors", 1e-10);
	vae_parity("kl", "kl_diffusers_f16_old.safetensors", 1e-10);
}

static void test_kl_tiny_double(void)
{
	vae_parity("kl_tiny", "kl_tiny_diffusers_f32.safetensors", 1e-10);
	vae_parity("kl_tiny", "kl_tiny_ldm_f16.safetensors", 1e-10);
}

static void test_taesd_double(void)
{
	vae_parity("taesd", "taesd_diffusers_f32.safetensors", 1e-10);
	vae_parity("taesd", "taesd_encoder_f16.safetensors,taesd_decoder_bf16.safetensors", 1e-10);
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	vae_write_files();
	RUN(test_kl_double);
	RUN(test_kl_tiny_double);
	RUN(test_taesd_double);
	vae_remove_files();
	l2_vae_thread_cleanup();
	return check_done();
}
