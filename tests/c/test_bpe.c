/* test_bpe.c — CLIP tokenizer (lib/text/clip_tokenizer.c) against tests/ref/make_clip.py's
 * re-implementation of OpenAI's SimpleTokenizer (tokens.jsonl), plus the
 * pieces that need no vocabulary (clean-up, NFC, HTML entities, lower), and
 * lib/text/ftfy.c against real ftfy's fix_text and fix_encoding (ftfy.jsonl;
 * $L2_FTFY_CASES names another file of the same form).
 * The vocabulary is the copy l2 ships (lib/text/vocab/, found from the
 * build tree as the tools find it), or $L2_TEST_VOCAB when set; its SHA-256
 * is checked against the one recorded in lib/text/vocab/README.md. */
#include "text/clip_tokenizer.h"
#include "check.h"
#include "text/ftfy.h"
#include "core/sha256.h"
#include "core/util.h"

#include <jansson.h>
#include <unistd.h>

/* openai/CLIP clip/bpe_simple_vocab_16e6.txt.gz (git blob 7b5088a5) */
#define SHIPPED_SHA256 "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"

/* The shipped file in the source tree and the copy the build made, where
 * l2_tok_find_vocab looks last (../share/l2/ from this program's directory). */
static void test_shipped_vocab(void)
{
	char hex[65];
	l2_sha256_file("lib/text/vocab/bpe_simple_vocab_16e6.txt.gz", hex);
	CHECK_MSG(!strcmp(hex, SHIPPED_SHA256), "lib/text/vocab/bpe_simple_vocab_16e6.txt.gz: SHA-256 %s", hex);
	char *p = l2_tok_shipped_vocab();
	CHECK(p && access(p, R_OK) == 0);
	if (p && access(p, R_OK) == 0) {
		l2_sha256_file(p, hex);
		CHECK_MSG(!strcmp(hex, SHIPPED_SHA256), "%s: SHA-256 %s", p, hex);
		/* no --vocab, no $L2_CLIP_VOCAB, no weights: the shipped copy */
		char *saved = getenv("L2_CLIP_VOCAB") ? l2_strdup(getenv("L2_CLIP_VOCAB")) : NULL;
		unsetenv("L2_CLIP_VOCAB");
		char *found = l2_tok_find_vocab(NULL, NULL);
		CHECK_MSG(!strcmp(found, p), "found %s, expected %s", found, p);
		/* weights with nothing beside them: still the shipped copy */
		char *found2 = l2_tok_find_vocab(NULL, "/nonexistent-dir/model.safetensors");
		CHECK(!strcmp(found2, p));
		if (saved) setenv("L2_CLIP_VOCAB", saved, 1);
		free(saved), free(found), free(found2);
	}
	free(p);
}

static const char *vocab_path(void)
{
	const char *v = getenv("L2_TEST_VOCAB");
	return v && *v ? v : "lib/text/vocab/bpe_simple_vocab_16e6.txt.gz";
}

static L2Tokenizer *tok;

static void test_goldens(void)
{
	json_error_t err;
	FILE *f = fopen("tests/ref/clip/tokens.jsonl", "r");
	CHECK(f != NULL);
	if (!f) return;
	char line[1 << 16];
	int n = 0;
	while (fgets(line, sizeof line, f)) {
		json_t *j = json_loads(line, 0, &err);
		CHECK(j != NULL);
		if (!j) continue;
		json_t *jt = json_object_get(j, "text"), *ji = json_object_get(j, "ids");
		const char *text = json_string_value(jt);
		size_t len = json_string_length(jt);
		int32_t out[77];
		int k = l2_tok_tokenize(tok, text, len, 77, out);
		int ok = k == (int)json_array_size(ji);
		for (int i = 0; ok && i < k; i++) ok = out[i] == json_integer_value(json_array_get(ji, (size_t)i));
		for (int i = k; i < 77 && k >= 0; i++) ok &= out[i] == 0;
		CHECK_MSG(ok, "tokens of \"%s\" differ (got %d tokens, want %zu)", text, k, json_array_size(ji));
		if (!ok) {
			printf("#   got ");
			for (int i = 0; i < k; i++) printf(" %d", out[i]);
			printf("\n#   want");
			for (size_t i = 0; i < json_array_size(ji); i++) printf(" %lld", json_integer_value(json_array_get(ji, i)));
			printf("\n");
		}
		json_decref(j);
		n++;
	}
	fclose(f);
	CHECK(n >= 20);
}

static void test_vocab_shape(void)
{
	CHECK(l2_tok_vocab_size(tok) == 49408);
	CHECK(l2_tok_sot(tok) == 49406 && l2_tok_eot(tok) == 49407);
	int32_t out[5];
	/* truncation keeps the end token last */
	CHECK(l2_tok_tokenize(tok, "one two three four five six", 27, 5, out) == 5);
	CHECK(out[0] == 49406 && out[4] == 49407);
	CHECK(l2_tok_tokenize(tok, "\xff bad", 5, 5, out) == -1);
	CHECK(l2_tok_tokenize(tok, "\xed\xa0\x80", 3, 5, out) == -1); /* a surrogate */
	CHECK(l2_tok_tokenize(tok, "\xc0\xaf", 2, 5, out) == -1);     /* overlong */
}

static void check_clean(const char *in, const char *want)
{
	char *got = l2_tok_clean(in, strlen(in));
	CHECK_MSG(got && !strcmp(got, want), "clean(\"%s\") = \"%s\", want \"%s\"", in, got ? got : "(null)", want);
	free(got);
}

static void test_clean(void)
{
	check_clean("  Hello   World\t\n", "hello world");
	check_clean("&amp;amp;amp;amp;", "&");
	check_clean("< &amp;amp;amp;", "< &amp;");
	check_clean("caf\xc3\xa9", "caf\xc3\xa9");          /* precomposed stays */
	check_clean("cafe\xcc\x81", "caf\xc3\xa9");          /* NFC composes */
	check_clean("\xe1\x84\x80\xe1\x85\xa1", "\xea\xb0\x80"); /* Hangul L V -> syllable */
	check_clean("\xef\xbc\xa1\xef\xbd\x82", "ab");       /* fullwidth */
	check_clean("\xef\xac\x81ne", "fine");               /* ligature */
	check_clean("don\xe2\x80\x99t", "don't");            /* curly quote */
	check_clean("\xce\xa3\xce\x91\xce\xa3", "\xcf\x83\xce\xb1\xcf\x82"); /* final sigma */
	check_clean("\xc4\xb0", "i\xcc\x87");                /* dotted capital I */
	check_clean("a\x1b[31mb\x07" "c", "abc");               /* terminal escape, control */
	check_clean("&#x263A; &#0; &#150;", "\xe2\x98\xba \xef\xbf\xbd \xe2\x80\x93");
	check_clean("&notit; &amp", "\xc2\xacit; &");
	check_clean("", "");
	/* mojibake repair (ftfy.fix_encoding) */
	check_clean("caf\xc3\x83\xc2\xa9", "caf\xc3\xa9");                           /* UTF-8 read as Latin-1 */
	check_clean("\xc3\xa2\xe2\x82\xac\xc5\x93hi\xc3\xa2\xe2\x82\xac\xc2\x9d", "\"hi\""); /* as windows-1252 */
	check_clean("voil\xc3\x83 le", "voil\xc3\xa0 le");                           /* A0 lost to a space */
	check_clean("\xc2\x93x\xc2\x94", "\"x\"");                                     /* C1 controls */
	check_clean("\xc3\x80\xc3\x89\xc3\x8e \xc2\xbfqu\xc3\xa9?", "\xc3\xa0\xc3\xa9\xc3\xae \xc2\xbfqu\xc3\xa9?"); /* not mojibake */
}

/* code points of valid UTF-8 (as decoded by json) */
static size_t utf8_to_u32(const char *s, size_t len, uint32_t *o)
{
	const unsigned char *p = (const unsigned char *)s, *e = p + len;
	size_t n = 0;
	while (p < e) {
		int k = *p < 0x80 ? 0 : *p < 0xE0 ? 1 : *p < 0xF0 ? 2 : 3;
		uint32_t c = k ? *p & (0x3F >> k) : *p;
		for (int i = 1; i <= k; i++) c = c << 6 | (p[i] & 0x3F);
		o[n++] = c;
		p += k + 1;
	}
	return n;
}

/* each line {"text", "fix_text", "fix_encoding"}: ftfy's own outputs (or
 * {"text", "is_bad"}: its badness.is_bad) */
static void test_ftfy(void)
{
	const char *path = getenv("L2_FTFY_CASES");
	if (!path || !*path) path = "tests/ref/clip/ftfy.jsonl";
	FILE *f = fopen(path, "r");
	CHECK_MSG(f != NULL, "%s: cannot open", path);
	if (!f) return;
	json_error_t err;
	char *line = NULL;
	size_t cap = 0;
	int n = 0, bad[3] = {0, 0, 0};
	while (getline(&line, &cap, f) > 0) {
		json_t *j = json_loads(line, JSON_ALLOW_NUL, &err);
		CHECK_MSG(j != NULL, "%s: %s", path, err.text);
		if (!j) continue;
		json_t *jt = json_object_get(j, "text"), *jb = json_object_get(j, "is_bad");
		if (jb) {
			uint32_t *u = l2_malloc((json_string_length(jt) + 1) * sizeof(uint32_t));
			size_t nu = utf8_to_u32(json_string_value(jt), json_string_length(jt), u);
			if (l2_ftfy_is_bad(u, nu) != json_is_true(jb) && bad[2]++ < 10)
				printf("# is_bad(\"%s\") = %d\n", json_string_value(jt), !json_is_true(jb));
			free(u);
		}
		const char *keys[2] = {"fix_text", "fix_encoding"};
		for (int w = 0; w < 2; w++) {
			json_t *jw = json_object_get(j, keys[w]);
			if (!jw) continue;
			size_t glen;
			char *got = (w ? l2_ftfy_fix_encoding : l2_ftfy_fix_text)(json_string_value(jt), json_string_length(jt), &glen);
			int ok = got && glen == json_string_length(jw) && !memcmp(got, json_string_value(jw), glen);
			if (!ok && bad[w]++ < 10)
				printf("# %s(\"%s\") = \"%s\", want \"%s\"\n", keys[w], json_string_value(jt), got ? got : "(null)",
				       json_string_value(jw));
			free(got);
		}
		json_decref(j);
		n++;
	}
	free(line);
	fclose(f);
	CHECK_MSG(!bad[0] && !bad[1] && !bad[2], "%s: %d fix_text, %d fix_encoding and %d is_bad results differ from ftfy's, of %d",
	          path, bad[0], bad[1], bad[2], n);
	printf("# %s: %d texts\n", path, n);
	CHECK(n >= 50);
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	RUN(test_clean);
	RUN(test_ftfy);
	RUN(test_shipped_vocab);
	const char *v = vocab_path();
	tok = l2_tok_load(v);
	RUN(test_vocab_shape);
	RUN(test_goldens);
	l2_tok_free(tok);
	return check_done();
}
