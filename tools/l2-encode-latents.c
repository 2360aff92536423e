/* l2-encode-latents — a dataset's images as VAE latents, stored once as a
 * feature set for latent diffusion.
 *
 *   l2-encode-latents --vae diffusion_pytorch_model.safetensors -r 64 emoji.lmdb
 *   l2-encode-latents --vae taesd_encoder.safetensors,taesd_decoder.safetensors --grid check.png emoji.lmdb
 *   l2-encode-latents --vae vae.safetensors --grid check.png --decode-only emoji.lmdb
 *
 * The images are prepared as the generators' trainers see them
 * (lib/method/train_data.h: over the dataset background, short side resized,
 * centre-cropped, [-1, 1]), encoded by lib/models/vae.c, and stored with a
 * description of the VAE and of their statistics by lib/method/latents.c
 * (schemas/dataset.md).  --grid decodes the first stored latents next to
 * their images, to look at what the autoencoder keeps. */
#include "method/latents.h"
#include "method/train_data.h"
#include "models/vae.h"
#include "method/dataset.h"
#include "io/image.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
	const char *vae, *dataset, *grid;
	int grid_n, decode_only;
	double scale;
	L2LatentsOptions lo;
} Options;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: l2-encode-latents --vae WEIGHTS [options] DATASET\n"
		"Encode the images of an l2 dataset with a VAE (Stable Diffusion's KL-f8 autoencoder or TAESD)\n"
		"into a feature set of latents for latent diffusion, described by the VAE's SHA-256 and the\n"
		"latents' mean and std.\n\n"
		"  -v, --vae SPEC         VAE weights: a .safetensors file (diffusers or original LDM layout),\n"
		"                         or ENCODER_FILE,DECODER_FILE (taesd.py's taesd_encoder / taesd_decoder)\n"
		"  -n, --name NAME        feature set (default latent)\n"
		"  -r, --resolution N     image side to encode, a multiple of the VAE's factor 8 (default 64)\n"
		"      --split S          images to encode: all (default), train or test\n"
		"      --sample           KL: a posterior sample (seed --seed, stream per image key), not the mean\n"
		"      --seed N           sampling seed (default 0)\n"
		"  -b, --batch N          images per forward pass (default 8)\n"
		"      --resume           continue an interrupted run (same VAE and settings)\n"
		"      --vae-scale X      latent scaling factor (default: the file's metadata config, else\n"
		"                         0.18215 for KL, 1 for TAESD)\n"
		"      --grid PNG         then decode the first --grid-n stored latents: rows of images over\n"
		"                         rows of their reconstructions (needs the decoder)\n"
		"      --grid-n N         images in the grid (default 16)\n"
		"      --decode-only      only the grid, from latents already stored\n"
		"      --threads N        CPU threads (default: all)\n"
		"      --progress         progress on stderr even when it is not a terminal\n"
		"      --quiet            no informational messages\n"
		"  -h, --help             this help\n"
		"      --version          print the version\n"
		"See l2-encode-latents(1).\n");
}

enum { OPT_SPLIT = L2_OPT_COMMON_END, OPT_SAMPLE, OPT_SEED, OPT_RESUME, OPT_SCALE, OPT_GRID, OPT_GRID_N, OPT_DECODE_ONLY };

static void parse_options(int argc, char **argv, Options *o)
{
	static const struct option longopts[] = {
		L2_COMMON_LONGOPTS,
		{"vae", required_argument, 0, 'v'},
		{"name", required_argument, 0, 'n'},
		{"resolution", required_argument, 0, 'r'},
		{"batch", required_argument, 0, 'b'},
		{"split", required_argument, 0, OPT_SPLIT},
		{"sample", no_argument, 0, OPT_SAMPLE},
		{"seed", required_argument, 0, OPT_SEED},
		{"resume", no_argument, 0, OPT_RESUME},
		{"vae-scale", required_argument, 0, OPT_SCALE},
		{"grid", required_argument, 0, OPT_GRID},
		{"grid-n", required_argument, 0, OPT_GRID_N},
		{"decode-only", no_argument, 0, OPT_DECODE_ONLY},
		{0, 0, 0, 0}};
	memset(o, 0, sizeof *o);
	l2_latents_defaults(&o->lo);
	o->grid_n = 16;
	int c, s;
	while ((c = getopt_long(argc, argv, "hv:n:r:b:", longopts, NULL)) != -1) {
		if (l2_common_option(c, optarg, usage)) continue;
		switch (c) {
		case 'v': o->vae = optarg; break;
		case 'n': o->lo.name = optarg; break;
		case 'r': o->lo.resolution = (int)l2_parse_long(optarg, "--resolution", 8, 4096); break;
		case 'b': o->lo.batch = (int)l2_parse_long(optarg, "--batch", 1, 1024); break;
		case OPT_SPLIT:
			if ((s = l2_split_parse(optarg)) < 0) l2_usage_error(usage, "invalid --split '%s' (all, train or test)", optarg);
			o->lo.split = (L2Split)s;
			break;
		case OPT_SAMPLE: o->lo.sample = 1; break;
		case OPT_SEED: o->lo.seed = l2_parse_u64(optarg, "--seed"); break;
		case OPT_RESUME: o->lo.resume = 1; break;
		case OPT_SCALE:
			o->scale = l2_parse_double(optarg, "--vae-scale");
			if (!(o->scale > 0) || o->scale > 1e6) l2_usage_error(usage, "--vae-scale must be positive");
			break;
		case OPT_GRID: o->grid = optarg; break;
		case OPT_GRID_N: o->grid_n = (int)l2_parse_long(optarg, "--grid-n", 1, 256); break;
		case OPT_DECODE_ONLY: o->decode_only = 1; break;
		default: l2_usage_error(usage, "unknown option");
		}
	}
	if (!o->vae) l2_usage_error(usage, "missing --vae WEIGHTS");
	if (optind != argc - 1) l2_usage_error(usage, optind >= argc ? "no DATASET given" : "one DATASET only");
	o->dataset = argv[optind];
	if (!l2_feature_name_ok(o->lo.name)) l2_usage_error(usage, "invalid --name '%s' (expected [a-z0-9_-]{1,32})", o->lo.name);
	if (o->decode_only && !o->grid) l2_usage_error(usage, "--decode-only needs --grid PNG");
	if (o->decode_only && (o->lo.resume || o->lo.sample)) l2_usage_error(usage, "--decode-only encodes nothing");
}

/* The first grid_n images with latents: rows of up to 8 images, each over
 * the row of their decoded latents. */
static void write_grid(const Options *o, L2Dataset *ds, const L2Vae *vae, const L2LatentInfo *in)
{
	l2_latents_check_vae(in, vae, L2_VAE_DECODER, o->grid);
	char **keys;
	size_t nk = l2_dataset_keys(ds, o->lo.split, &keys);
	int R = in->resolution, n = 0;
	size_t dim = (size_t)in->channels * in->h * in->w;
	float *z = l2_malloc(l2_mul_size((size_t)o->grid_n, dim * sizeof(float)));
	float *px = l2_malloc((size_t)3 * R * R * sizeof(float));
	L2Image *orig = l2_calloc((size_t)o->grid_n, sizeof *orig);
	for (size_t i = 0; i < nk && n < o->grid_n; i++) {
		if (!l2_dataset_get_feature(ds, o->lo.name, keys[i], z + (size_t)n * dim)) continue;
		l2_train_data_image(ds, keys[i], R, px);
		l2_image_from_chw(px, R, R, -1.0f, 1.0f, &orig[n++]);
	}
	l2_dataset_free_strings(keys, nk);
	if (n == 0) l2_die("%s: no image of the split has a latent in '%s'", o->dataset, o->lo.name);
	L2Image *rec = l2_calloc((size_t)n, sizeof *rec), *all = l2_calloc((size_t)2 * n, sizeof *all), grid;
	l2_latents_to_images(vae, z, n, in->h, in->w, rec);
	int cols = n < 8 ? n : 8, k = 0;
	for (int r0 = 0; r0 < n; r0 += cols) {
		int m = n - r0 < cols ? n - r0 : cols;
		for (int j = 0; j < cols; j++) all[k++] = j < m ? orig[r0 + j] : (L2Image){0};
		for (int j = 0; j < cols; j++) all[k++] = j < m ? rec[r0 + j] : (L2Image){0};
	}
	/* a short last row: blank cells (white) */
	for (int i = 0; i < k; i++)
		if (!all[i].data) {
			l2_image_alloc(&all[i], R, R, L2_MODE_RGB);
			memset(all[i].data, 255, (size_t)3 * R * R);
		}
	static const uint8_t white[3] = {255, 255, 255};
	l2_image_grid(all, k, cols, 2, white, &grid);
	l2_image_save_png(o->grid, &grid);
	l2_info("%s: %d images over their reconstructions", o->grid, n);
	for (int i = 0; i < k; i++) l2_image_free(&all[i]);
	free(all), free(orig), free(rec), free(z), free(px);
	l2_image_free(&grid);
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	Options o;
	parse_options(argc, argv, &o);
	L2VaeOptions vo = {.halves = (o.decode_only ? 0 : L2_VAE_ENCODER) | (o.grid ? L2_VAE_DECODER : 0), .scale = o.scale};
	L2Vae *vae = l2_vae_load(o.vae, &vo);
	L2Dataset *ds = l2_dataset_open(o.dataset, o.decode_only ? L2_STORE_RDONLY : L2_STORE_WRITE);
	L2LatentInfo in;
	if (!o.decode_only) {
		double t0 = l2_now();
		uint64_t n = l2_latents_encode(ds, vae, &o.lo, &in);
		l2_info("%s: %llu images encoded in %.1f s; '%s' holds %llu latents [%d, %d, %d], mean %.4g, std %.4g (%s VAE, "
			"scale %g, sha256 %.12s...)",
			o.dataset, (unsigned long long)n, l2_now() - t0, o.lo.name, (unsigned long long)in.count, in.channels,
			in.h, in.w, in.mean, in.std, in.vae_kind, in.scale, in.vae_sha256);
	} else if (!l2_latents_info(ds, o.lo.name, &in)) {
		l2_die("%s: no feature set '%s'", o.dataset, o.lo.name);
	}
	if (o.grid) write_grid(&o, ds, vae, &in);
	l2_dataset_close(ds);
	l2_vae_free(vae);
	return 0;
}
