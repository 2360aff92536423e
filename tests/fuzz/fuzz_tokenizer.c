/* fuzz_tokenizer.c — CLIP's tokenizer on arbitrary bytes (lib/text/clip_tokenizer.h),
 * with ftfy's fix_text and fix_encoding (lib/text/ftfy.h) in front of it.
 *
 * The vocabulary is $L2_FUZZ_VOCAB, else the one l2 ships (OpenAI's
 * bpe_simple_vocab_16e6.txt.gz, lib/text/vocab/, from the checkout the
 * harness runs in, or l2_tok_shipped_vocab), else a small built-in one (a
 * few dozen merges: the BPE loop still runs, with shorter tokens).
 *
 * Checks: text is refused (NULL / -1) exactly when it is not valid UTF-8 as
 * Python decodes it (no overlong forms, no surrogates, nothing above
 * U+10FFFF), and every function agrees about that; what ftfy and the
 * clean-up return is valid UTF-8 of the length they report; token ids lie
 * in the vocabulary; clip.tokenize's layout holds (start token, ids, end
 * token within the context, zeros after). */
#include "fuzz.h"
#include "text/clip_tokenizer.h"
#include "text/ftfy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static L2Tokenizer *tok;

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_tokenizer: %s\n", what);
	abort();
}

/* Python's strict UTF-8 decoder. */
static int utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		size_t len;
		uint32_t cp, min;
		if (c < 0x80) { i++; continue; }
		if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F, min = 0x80;
		else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F, min = 0x800;
		else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07, min = 0x10000;
		else return 0;
		if (i + len > n) return 0;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xC0) != 0x80) return 0;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
		i += len;
	}
	return 1;
}

/* A small vocabulary: the byte pairs and words of a few English phrases. */
static const char *const MINI_MERGES[] = {
	"t h", "i n", "e r", "a n", "th e</w>", "o n", "r e", "e n", "a r", "o r", "a t", "e d</w>", "s t", "i s</w>",
	"o u", "a l", "in g</w>", "l e", "a </w>", "o f</w>", "e s</w>", "t o</w>", "an d</w>", "r ed</w>", "h e", "a s",
	"c at</w>", "d o", "do g</w>", "s un</w>", "m o", "mo on</w>", "h ear", "hear t</w>", "s m", "i l", "sm il",
	"smil ing</w>", "f a", "fa ce</w>", "b l", "bl u", "blu e</w>", "g r", "gr e", "gre en</w>", "s k", "sk y</w>",
};

static void init(void)
{
	const char *v = getenv("L2_FUZZ_VOCAB");
	if (!v || !*v) v = "lib/text/vocab/bpe_simple_vocab_16e6.txt.gz";
	char *shipped = access(v, R_OK) == 0 ? NULL : l2_tok_shipped_vocab();
	if (shipped && access(shipped, R_OK) == 0) v = shipped;
	if (access(v, R_OK) == 0) {
		tok = l2_tok_load(v);
		free(shipped);
		return;
	}
	free(shipped);
	char text[4096] = "#version: 0.2\n";
	for (size_t i = 0; i < sizeof MINI_MERGES / sizeof *MINI_MERGES; i++) {
		strcat(text, MINI_MERGES[i]);
		strcat(text, "\n");
	}
	tok = l2_tok_load(l2_fuzz_write_file("mini-vocab.txt", text, strlen(text)));
}

static void check_text(const char *out, size_t len, const char *what)
{
	if (!out) fail(what);
	if (out[len] != 0 || !utf8_valid((const uint8_t *)out, len)) fail("ftfy or the clean-up returned invalid UTF-8");
}

static void fuzz_one(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	int valid = utf8_valid(data, size);
	size_t len;
	char *fixed = l2_ftfy_fix_text(text, size, &len);
	if (!valid) {
		if (fixed) fail("fix_text accepted invalid UTF-8");
	} else {
		check_text(fixed, len, "fix_text refused valid UTF-8");
	}
	free(fixed);
	char *enc = l2_ftfy_fix_encoding(text, size, &len);
	if (valid) check_text(enc, len, "fix_encoding refused valid UTF-8");
	else if (enc) fail("fix_encoding accepted invalid UTF-8");
	free(enc);
	char *clean = l2_tok_clean(text, size);
	if (valid) check_text(clean, strlen(clean ? clean : ""), "the clean-up refused valid UTF-8");
	else if (clean) fail("the clean-up accepted invalid UTF-8");
	free(clean);

	int32_t *ids = NULL;
	size_t cap = 0;
	long n = l2_tok_encode(tok, text, size, &ids, &cap);
	if ((n < 0) != !valid) fail("l2_tok_encode disagrees about UTF-8");
	for (long i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= l2_tok_vocab_size(tok)) fail("a token id outside the vocabulary");
	free(ids);

	int32_t out[77];
	int m = l2_tok_tokenize(tok, text, size, 77, out);
	if ((m < 0) != !valid) fail("l2_tok_tokenize disagrees about UTF-8");
	if (m >= 0) {
		if (m < 2 || m > 77 || out[0] != l2_tok_sot(tok) || out[m - 1] != l2_tok_eot(tok))
			fail("clip.tokenize layout broken (start, ids, end)");
		if (m != (n + 2 < 77 ? n + 2 : 77)) fail("clip.tokenize kept the wrong number of tokens");
		for (int i = m; i < 77; i++)
			if (out[i]) fail("clip.tokenize: no zero padding after the end token");
	}
}

L2_FUZZ_TARGET_INIT(fuzz_one, init)
