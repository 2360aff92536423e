/* l2-encode-text — CLIP text features of lines of text.
 *
 *   l2-encode-text -m ViT-B-32.safetensors captions.txt > txt.l2f
 *   echo "a photo of a cat" | l2-encode-text -m W.safetensors --tokens
 *
 * One text per line (UTF-8); the record key is the line itself.  Texts are
 * tokenized exactly as OpenAI's clip.tokenize(truncate=True) (lib/text/clip_tokenizer.h) and
 * encoded in batches of similar length: a batch costs only as much as its
 * longest text (lib/models/clip.h).  Output: a text-feature stream
 * (schemas/l2fs.md), L2-normalised unless --raw. */
#include "text/clip_tokenizer.h"
#include "core/shard.h"
#include "models/clip.h"
#include "method/dataset.h"
#include "core/device.h"
#include "io/stream.h"
#include "core/util.h"
#include "core/vec.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
	const char *model, *vocab, *out, *store, *name, *in;
	int batch, raw, tokens;
	L2Shard shard;
} Options;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: l2-encode-text -m WEIGHTS [options] [FILE]\n"
		"       l2-encode-text --tokens [-m WEIGHTS] [--vocab VOCAB] [FILE]\n"
		"CLIP text features of each line of FILE (or standard input), keyed by the line.\n"
		"Writes a text-feature stream (schemas/l2fs.md) to standard output.\n\n"
		"  -m, --model FILE    CLIP weights (.safetensors, OpenAI or Hugging Face layout)\n"
		"      --vocab FILE    BPE vocabulary (bpe_simple_vocab_16e6.txt.gz or merges.txt); default:\n"
		"                      $L2_CLIP_VOCAB, else such a file beside the weights, else l2's\n"
		"                      own copy of OpenAI's (PREFIX/share/l2/)\n"
		"  -o, --output FILE   write here instead of standard output (atomically)\n"
		"  -b, --batch N       texts per forward pass (default 64)\n"
		"      --raw           do not L2-normalise the features\n"
		"      --tokens        print each line's token ids (start and end included, no padding)\n"
		"                      instead of features; -m is then optional (context 77 without it)\n"
		"      --store DB      also put the features into the dataset store DB (feature set --name)\n"
		"      --name NAME     feature set name in the store (default caption)\n"
		"      --shard I/N[:A] only the lines of shard I of N: blocks of A lines (default 4096) dealt\n"
		"                      round the shards; auto: I/N from Slurm or MPI (l2-cat --unshard merges)\n"
		"      --threads N     CPU threads (default: all)\n"
		"      --device DEV    cpu (default) or cuda\n"
		"      --progress      progress on stderr even when it is not a terminal\n"
		"      --quiet         no informational messages\n"
		"  -h, --help          this help\n"
		"      --version       print the version\n"
		"See l2-encode-text(1).\n");
}

enum { OPT_RAW = L2_OPT_COMMON_END, OPT_STORE, OPT_NAME, OPT_VOCAB, OPT_TOKENS };

static void parse_options(int argc, char **argv, Options *o)
{
	static const struct option longopts[] = {
		L2_COMMON_LONGOPTS,
		L2_DEVICE_LONGOPT,
		{"model", required_argument, 0, 'm'},
		{"output", required_argument, 0, 'o'},
		{"batch", required_argument, 0, 'b'},
		{"vocab", required_argument, 0, OPT_VOCAB},
		{"raw", no_argument, 0, OPT_RAW},
		{"tokens", no_argument, 0, OPT_TOKENS},
		{"store", required_argument, 0, OPT_STORE},
		{"name", required_argument, 0, OPT_NAME},
		L2_SHARD_LONGOPT,
		{0, 0, 0, 0}};
	memset(o, 0, sizeof *o);
	o->out = "-";
	o->batch = 64;
	o->name = "caption";
	int c;
	while ((c = getopt_long(argc, argv, "hm:o:b:", longopts, NULL)) != -1) {
		if (l2_common_option(c, optarg, usage)) continue;
		switch (c) {
		case 'm': o->model = optarg; break;
		case 'o': o->out = optarg; break;
		case 'b': o->batch = (int)l2_parse_long(optarg, "--batch", 1, 65536); break;
		case OPT_VOCAB: o->vocab = optarg; break;
		case OPT_RAW: o->raw = 1; break;
		case OPT_TOKENS: o->tokens = 1; break;
		case OPT_STORE: o->store = optarg; break;
		case OPT_NAME: o->name = optarg; break;
		case L2_OPT_SHARD: l2_shard_option(optarg, usage, &o->shard); break;
		default: l2_usage_error(usage, "unknown option");
		}
	}
	if (!o->model && !o->tokens) l2_usage_error(usage, "missing -m WEIGHTS");
	if (optind + 1 < argc) l2_usage_error(usage, "at most one input FILE");
	o->in = optind < argc ? argv[optind] : "-";
	if (o->tokens && (o->store || o->raw)) l2_usage_error(usage, "--tokens prints ids; --store and --raw go with features");
	if (!l2_feature_name_ok(o->name)) l2_usage_error(usage, "invalid --name '%s' (expected [a-z0-9_-]{1,32})", o->name);
}

typedef struct {
	char *text;
	int len;      /* tokens incl. start and end */
	int32_t *ids; /* (context) */
} Item;

static const int *sort_len; /* for qsort of indices by token count */
static int cmp_len(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return sort_len[x] != sort_len[y] ? sort_len[x] - sort_len[y] : x - y;
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	Options o;
	parse_options(argc, argv, &o);
	if (l2_device == L2_DEVICE_CUDA && !l2_cuda_available())
		l2_die("--device cuda: %s", l2_cuda_status());

	L2Clip *m = NULL;
	int C = 77, E = 0;
	if (o.model) {
		m = l2_clip_load(o.model, L2_CLIP_TEXT);
		C = l2_clip_config(m)->context;
		E = l2_clip_config(m)->tembed;
	}
	L2Tokenizer *tok = l2_clip_tokenizer(m, o.model, o.vocab, NULL);

	l2_shard_info(&o.shard);
	FILE *in = l2_fopen_read(o.in);
	const char *inname = strcmp(o.in, "-") ? o.in : "standard input";
	L2OFile *txt = NULL;
	L2StreamWriter *w = NULL;
	L2Dataset *ds = NULL;
	if (o.tokens) {
		txt = l2_ofile_open(o.out, 0);
	} else {
		if (o.store) {
			ds = l2_dataset_open(o.store, L2_STORE_CREATE);
			l2_dataset_feature_begin_encoded(ds, o.name, L2_KIND_TEXT, (uint32_t)E, !o.raw, o.model);
		}
		w = l2_stream_create(o.out, L2_KIND_TEXT, (uint32_t)E, o.raw ? 0 : L2FS_NORMALIZED, 0, L2FS_UNTIL_END);
	}

	/* a window of lines is tokenized, sorted by length, encoded in batches
	 * and written back in input order; batches change the last bits of a
	 * feature, so windows are cut at blocks of A lines (4096 unsharded) */
	int B = o.batch, win = B * 16 > 4096 ? B * 16 : 4096;
	Item *items = l2_calloc((size_t)win, sizeof(Item));
	int32_t *ids = l2_malloc(l2_mul_size((size_t)win * C, sizeof(int32_t)));
	int *lens = l2_malloc((size_t)win * sizeof(int)), *order = l2_malloc((size_t)win * sizeof(int));
	int32_t *bt = l2_malloc(l2_mul_size((size_t)B * C, sizeof(int32_t)));
	float *feat = E ? l2_malloc(l2_mul_size((size_t)win * E, sizeof(float))) : NULL;
	float *bf = E ? l2_malloc(l2_mul_size((size_t)B * E, sizeof(float))) : NULL;
	char *line = NULL;
	size_t cap = 0;
	long lineno = 0, not_stored = 0;
	int eof = 0;
	L2Progress prog;
	l2_progress_start(&prog, "texts", "txt", 0);
	while (!eof) {
		int n = 0;
		while (n < win) {
			ssize_t len = getline(&line, &cap, in);
			if (len < 0) {
				if (ferror(in)) l2_die_errno("%s", inname);
				eof = 1;
				break;
			}
			/* line number lineno (0-based before the increment) is the record's position */
			if (!l2_shard_has(&o.shard, (uint64_t)lineno++)) continue;
			if (len && line[len - 1] == '\n') line[--len] = 0;
			if (len && line[len - 1] == '\r') line[--len] = 0;
			if (memchr(line, 0, (size_t)len)) l2_die("%s: line %ld: contains a NUL byte", inname, lineno);
			int k = l2_tok_tokenize(tok, line, (size_t)len, C, ids + (size_t)n * C);
			if (k < 0) l2_die("%s: line %ld: not valid UTF-8", inname, lineno);
			items[n].text = l2_strdup(line);
			items[n].len = lens[n] = k;
			items[n].ids = ids + (size_t)n * C;
			n++;
			/* a window never straddles a block (core/shard.h): a shard then
			 * sorts and batches exactly the texts the plain run does */
			if (l2_shard_block_end(&o.shard, (uint64_t)lineno - 1)) break;
		}
		if (o.tokens) {
			FILE *f = l2_ofile_fp(txt);
			for (int i = 0; i < n; i++) {
				for (int j = 0; j < items[i].len; j++) fprintf(f, "%s%d", j ? " " : "", (int)items[i].ids[j]);
				fputc('\n', f);
			}
		} else if (n) {
			for (int i = 0; i < n; i++) order[i] = i;
			sort_len = lens;
			qsort(order, (size_t)n, sizeof(int), cmp_len);
			for (int s = 0; s < n; s += B) {
				int nb = n - s < B ? n - s : B;
				for (int i = 0; i < nb; i++)
					memcpy(bt + (size_t)i * C, items[order[s + i]].ids, (size_t)C * sizeof(int32_t));
				l2_clip_encode_text(m, bt, nb, bf);
				for (int i = 0; i < nb; i++)
					memcpy(feat + (size_t)order[s + i] * E, bf + (size_t)i * E, (size_t)E * sizeof(float));
			}
			for (int i = 0; i < n; i++)
				if (l2_first_nonfinite(feat + (size_t)i * E, (size_t)E) >= 0)
					l2_die("%s: the model gave a feature with NaN or infinity for line '%.60s': are its "
					       "weights damaged?", o.model, items[i].text);
			if (!o.raw) l2_normalize_rows(feat, (size_t)n, (size_t)E);
			for (int i = 0; i < n; i++) {
				l2_stream_write(w, items[i].text, feat + (size_t)i * E);
				size_t kl = strlen(items[i].text);
				if (ds && kl >= 1 && kl <= L2_DATASET_MAX_KEY)
					l2_dataset_put_feature(ds, o.name, items[i].text, feat + (size_t)i * E);
				else if (ds) not_stored++;
			}
		}
		for (int i = 0; i < n; i++) free(items[i].text);
		l2_progress_add(&prog, (uint64_t)n);
	}
	l2_progress_end(&prog);
	if (in != stdin) fclose(in);
	if (txt) l2_ofile_commit(txt);
	if (w) l2_stream_writer_close(w);
	if (ds) {
		l2_dataset_feature_end(ds, o.name, !o.raw);
		l2_dataset_close(ds);
	}
	if (not_stored)
		l2_warn("%s: %ld empty or over-long (> %d bytes) text(s) are in the stream but not in the store",
			o.store, not_stored, L2_DATASET_MAX_KEY);
	free(line);
	free(items);
	free(ids);
	free(lens);
	free(order);
	free(bt);
	free(feat);
	free(bf);
	l2_tok_free(tok);
	l2_clip_free(m);
	return 0;
}
