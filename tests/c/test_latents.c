/* test_latents.c — lib/method/latents.c's description of a latent feature
 * set: the JSON round trip a latent diffusion model relies on (every field,
 * doubles to the last bit), and descriptions that are refused with a reason.
 * Encoding itself runs end to end in tests/l2-encode-latents.bats. */
#include "check.h"
#include "method/latents.h"

static void test_roundtrip(void)
{
	L2LatentInfo a = {0}, b;
	snprintf(a.vae_sha256, sizeof a.vae_sha256, "%064d,%064d", 1, 2);
	snprintf(a.vae_files, sizeof a.vae_files, "taesd_encoder.safetensors,taesd_decoder.safetensors");
	snprintf(a.vae_kind, sizeof a.vae_kind, "taesd");
	a.scale = 0.18215, a.shift = -0.0625, a.resolution = 256, a.channels = 4, a.h = a.w = 32;
	a.sampled = 1, a.seed = 12345678901234ull, a.complete = 1, a.count = 3786;
	a.mean = 0.1 / 3, a.std = 1.0 / 7;
	for (int c = 0; c < 4; c++) a.channel_mean[c] = c / 3.0 - 0.5, a.channel_std[c] = 1 + c / 7.0;
	char *js = l2_latents_info_json(&a), err[128];
	CHECK(l2_latents_info_parse(js, &b, err, sizeof err) == 0);
	CHECK(!strcmp(a.vae_sha256, b.vae_sha256) && !strcmp(a.vae_files, b.vae_files) && !strcmp(a.vae_kind, b.vae_kind));
	CHECK(a.scale == b.scale && a.shift == b.shift && a.resolution == b.resolution && a.channels == b.channels &&
	      a.h == b.h && a.w == b.w && a.sampled == b.sampled && a.seed == b.seed && a.complete == b.complete &&
	      a.count == b.count && a.mean == b.mean && a.std == b.std);
	for (int c = 0; c < 4; c++) CHECK(a.channel_mean[c] == b.channel_mean[c] && a.channel_std[c] == b.channel_std[c]);
	free(js);
	/* incomplete: no statistics written, none read */
	a.complete = 0;
	js = l2_latents_info_json(&a);
	CHECK(strstr(js, "\"complete\":false") && !strstr(js, "\"mean\""));
	CHECK(l2_latents_info_parse(js, &b, err, sizeof err) == 0 && !b.complete && b.count == 0);
	free(js);
}

static void test_refused(void)
{
	static const struct { const char *json, *why; } bad[] = {
		{"[1, 2]", "not a JSON object"},
		{"{\"vae_sha256\": \"abc\"}", "vae_sha256"},
		{"{\"vae_sha256\": \"0000000000000000000000000000000000000000000000000000000000000000\", \"vae_kind\": \"kl\", "
		 "\"scale\": 0, \"shift\": 0}", "scale"},
		{"{\"vae_sha256\": \"0000000000000000000000000000000000000000000000000000000000000000\", \"vae_kind\": \"kl\", "
		 "\"scale\": 1, \"shift\": 0, \"resolution\": 64, \"shape\": [4, 8]}", "shape"},
		{"{\"vae_sha256\": \"0000000000000000000000000000000000000000000000000000000000000000\", \"vae_kind\": \"kl\", "
		 "\"scale\": 1, \"shift\": 0, \"resolution\": 64, \"shape\": [4, 8, 8], \"posterior\": \"mode\"}", "posterior"},
		{"{\"vae_sha256\": \"0000000000000000000000000000000000000000000000000000000000000000\", \"vae_kind\": \"kl\", "
		 "\"scale\": 1, \"shift\": 0, \"resolution\": 64, \"shape\": [4, 8, 8], \"posterior\": \"mean\", "
		 "\"complete\": true, \"channel_mean\": [0], \"channel_std\": [1]}", "channel_mean"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		L2LatentInfo b;
		char err[128] = "";
		int rc = l2_latents_info_parse(bad[i].json, &b, err, sizeof err);
		CHECK_MSG(rc == -1 && strstr(err, bad[i].why), "case %zu: rc %d, reason '%s'", i, rc, err);
	}
}

int main(void)
{
	RUN(test_roundtrip);
	RUN(test_refused);
	return check_done();
}
