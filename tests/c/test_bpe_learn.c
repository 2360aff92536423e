/* test_bpe_learn.c — lib/text/bpe_learn.c: merges learned from captions, written as a
 * vocabulary file that the CLIP tokenizer (lib/text/clip_tokenizer.c) reads and applies:
 * frequent words become single tokens, plain and gzip files give the same vocabulary,
 * learning is deterministic, and an impossible size is refused. */
#include "check.h"
#include "text/bpe_learn.h"
#include "text/clip_tokenizer.h"
#include "core/util.h"

#include <unistd.h>

static char dir[] = "/tmp/l2-test-bpe-learn-XXXXXX";

static L2Tokenizer *learn_and_load(char **texts, size_t n, int size, const char *name, L2BpeVocab **out)
{
	L2BpeVocab *v = l2_bpe_learn(texts, n, size);
	char path[128];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	l2_bpe_write(v, path);
	L2Tokenizer *t = l2_tok_load(path);
	if (out) *out = v;
	else l2_bpe_free(v);
	return t;
}

static int tokens(const L2Tokenizer *t, const char *text, int32_t *ids, int context)
{
	return l2_tok_tokenize(t, text, strlen(text), context, ids);
}

static void test_learned_vocabulary_through_the_tokenizer(void)
{
	char *texts[] = {"a red circle", "a big red square", "Red circles don't roll", "the 42 circles!!", "red red red"};
	L2BpeVocab *v;
	L2Tokenizer *t = learn_and_load(texts, 5, 540, "v.txt.gz", &v);
	CHECK(l2_bpe_merges(v) > 10 && l2_bpe_size(v) <= 540);
	CHECK(l2_tok_vocab_size(t) == l2_bpe_size(v));
	CHECK(l2_tok_sot(t) == l2_bpe_size(v) - 2 && l2_tok_eot(t) == l2_bpe_size(v) - 1);
	int32_t a[16], b[16];
	/* frequent words are one token each: <sot> a red circle don ' t <eot> */
	int n = tokens(t, "A red   circle don't", a, 16);
	CHECK_MSG(n > 0 && n <= 8, "%d tokens", n);
	CHECK(a[0] == l2_tok_sot(t) && a[n - 1] == l2_tok_eot(t));
	CHECK(tokens(t, "red", b, 16) == 3 && b[1] == a[2]);
	CHECK(b[1] >= 512 && b[1] < l2_tok_sot(t)); /* a merge, not a byte */
	/* the plain file holds the same vocabulary */
	L2Tokenizer *p = learn_and_load(texts, 5, 540, "v.txt", NULL);
	CHECK(tokens(p, "A red   circle don't", b, 16) == n && !memcmp(a, b, sizeof a));
	/* truncation keeps the end token */
	int32_t c[4];
	CHECK(tokens(t, "red circle big square", c, 4) == 4 && c[3] == l2_tok_eot(t));
	l2_tok_free(t);
	l2_tok_free(p);
	l2_bpe_free(v);
}

static void test_learning_is_deterministic(void)
{
	char *texts[] = {"two small blue squares", "one small red circle", "small things", "blue blue sky"};
	L2Tokenizer *a = learn_and_load(texts, 4, 560, "a.txt", NULL), *b = learn_and_load(texts, 4, 560, "b.txt", NULL);
	size_t la, lb;
	char pa[128], pb[128];
	snprintf(pa, sizeof pa, "%s/a.txt", dir);
	snprintf(pb, sizeof pb, "%s/b.txt", dir);
	char *fa = l2_read_file(pa, &la), *fb = l2_read_file(pb, &lb);
	CHECK(la == lb && !memcmp(fa, fb, la));
	CHECK(!strncmp(fa, "#version", 8));
	free(fa), free(fb);
	l2_tok_free(a), l2_tok_free(b);
	/* the words run out before 2000 merges: fewer are learned */
	L2BpeVocab *v = l2_bpe_learn(texts, 4, 2000);
	CHECK(l2_bpe_size(v) < 2000);
	l2_bpe_free(v);
}

int main(void)
{
	if (!mkdtemp(dir)) return 1;
	RUN(test_learned_vocabulary_through_the_tokenizer);
	RUN(test_learning_is_deterministic);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd)) return 1;
	return check_done();
}
