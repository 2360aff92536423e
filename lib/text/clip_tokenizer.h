/* clip_tokenizer.h — CLIP's byte-level BPE tokenizer, equal to OpenAI's SimpleTokenizer:
 * the one tokenizer of l2, for OpenAI's vocabulary and for those l2-train-clip learns
 * (text/bpe_learn.h).
 *
 * Vocabulary: bpe_simple_vocab_16e6.txt.gz (OpenAI) or a Hugging Face
 * merges.txt (plain or gzip): the first 48894 merges after the "#version"
 * line, giving 256 byte symbols, their "</w>" forms, one token per merge and
 * <|startoftext|>, <|endoftext|> (49406, 49407 with the full vocabulary).
 *
 * Text clean-up, in SimpleTokenizer's order: ftfy.fix_text (lib/text/ftfy.c:
 * ftfy 6.3.1 with its default configuration, mojibake repair included),
 * html.unescape twice, strip, runs of whitespace to one space, str.lower()
 * (with Greek final sigma), then CLIP's split pattern
 *   <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 * (case-insensitive), bytes mapped to unicode, ranked merges.
 * The Unicode tables (lib/text/unicode_tables.h) are generated from python3-regex
 * and Python's unicodedata by tools/gen_unicode_tables.py. */
#ifndef L2_CLIP_TOKENIZER_H
#define L2_CLIP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct L2Tokenizer L2Tokenizer;

/* Load a vocabulary (gzip or plain text); dies with "PATH: problem". */
L2Tokenizer *l2_tok_load(const char *path);
void l2_tok_free(L2Tokenizer *b);
int l2_tok_vocab_size(const L2Tokenizer *b);
int l2_tok_sot(const L2Tokenizer *b); /* <|startoftext|> */
int l2_tok_eot(const L2Tokenizer *b); /* <|endoftext|> */

/* The cleaned text SimpleTokenizer splits (malloc'd UTF-8), or NULL when
 * TEXT (len bytes) is not valid UTF-8. */
char *l2_tok_clean(const char *text, size_t len);
/* BPE ids of TEXT without start/end tokens: returns the count (ids grows
 * in *ids, capacity *cap), or -1 when TEXT is not valid UTF-8. */
long l2_tok_encode(const L2Tokenizer *b, const char *text, size_t len, int32_t **ids, size_t *cap);
/* clip.tokenize(text, context_length, truncate=True): start, ids, end,
 * cut to `context` with the end token kept last, zero padding after.
 * out has `context` entries; returns the number of tokens (<= context),
 * or -1 for invalid UTF-8. */
int l2_tok_tokenize(const L2Tokenizer *b, const char *text, size_t len, int context, int32_t *out);

/* OpenAI's vocabulary, which l2 ships (lib/text/vocab/) and installs as
 * PREFIX/share/l2/bpe_simple_vocab_16e6.txt.gz; the build puts it at
 * $(BUILD)/share/l2/ too, the same place relative to the programs. */
#define L2_TOK_SHIPPED_NAME "bpe_simple_vocab_16e6.txt.gz"
/* Where the shipped copy should be for this program: ../share/l2/ from the
 * running executable's directory (malloc'd; NULL if /proc/self/exe is
 * unreadable).  It may be missing (a bare copied binary). */
char *l2_tok_shipped_vocab(void);

/* Which vocabulary to use, the user's choices first: OPT (--vocab) when
 * given, else $L2_CLIP_VOCAB, else STEM.vocab.txt.gz for STEM.safetensors
 * (l2-train-clip's), bpe_simple_vocab_16e6.txt.gz, merges.txt or
 * vocab.txt.gz beside WEIGHTS (may be NULL), else l2's shipped copy.
 * Returns a malloc'd path, or dies saying where it looked. */
char *l2_tok_find_vocab(const char *opt, const char *weights);

#endif
