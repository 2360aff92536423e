/* bpe_learn.h — learning CLIP-style byte-level BPE merges from captions, for
 * l2-train-clip.  What it writes is read and applied by the one tokenizer,
 * text/clip_tokenizer.h (l2_tok_*), in training and inference alike.
 *
 * The vocabulary file is OpenAI's bpe_simple_vocab_16e6.txt format: a
 * "#version: 0.2" line, then one merge per line ("a b", symbols in the
 * bytes_to_unicode alphabet, "</w>" marking word ends), gzip-compressed
 * when the name ends in .gz.  Ids are OpenAI's: 256 byte symbols in
 * bytes_to_unicode order, the same with </w>, one per merge in file order,
 * then <|startoftext|> and <|endoftext|> (so the end token has the largest
 * id, which is what EOT pooling takes).  Vocabulary size = 514 + merges.
 *
 * Words are counted after the clean-up CLIP's SimpleTokenizer does for ASCII
 * (whitespace collapsed, lower case, split by its regex: contractions,
 * letter runs, single digits, runs of other symbols); non-ASCII UTF-8
 * sequences count as letters (ftfy and Unicode classes are not reproduced:
 * they change only which merges are learned, not how they are applied). */
#ifndef L2_BPE_LEARN_H
#define L2_BPE_LEARN_H

#include <stddef.h>
#include <stdint.h>

typedef struct L2BpeVocab L2BpeVocab;

/* Learn vocab_size - 514 merges (fewer if the words run out) from texts;
 * the most frequent pair wins, ties to the smaller pair of ids. */
L2BpeVocab *l2_bpe_learn(char *const *texts, size_t n, int vocab_size);
/* Write the vocabulary file (atomically; gzip when PATH ends in .gz). */
void l2_bpe_write(const L2BpeVocab *v, const char *path);
void l2_bpe_free(L2BpeVocab *v);
int l2_bpe_size(const L2BpeVocab *v);   /* 514 + merges */
int l2_bpe_merges(const L2BpeVocab *v);

#endif
