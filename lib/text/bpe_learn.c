/* bpe_learn.c — learning BPE merges and writing the vocabulary file (see bpe_learn.h). */
#include "text/bpe_learn.h"
#include "core/hash.h"
#include "core/util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

struct L2BpeVocab {
	int nmerge;
	int *ma, *mb;        /* [nmerge] merge k joins ids ma[k], mb[k] into 512 + k */
	char **str;          /* [514 + nmerge] symbol strings */
	/* byte -> id (without </w>) */
	int byte_id[256];
};

/* ---- bytes_to_unicode --------------------------------------------------- */

static void byte_alphabet(int *bs, int *cs)
{
	int n = 0, m = 0, in[256] = {0};
	for (int b = '!'; b <= '~'; b++) bs[n] = cs[n] = b, in[b] = 1, n++;
	for (int b = 0xA1; b <= 0xAC; b++) bs[n] = cs[n] = b, in[b] = 1, n++;
	for (int b = 0xAE; b <= 0xFF; b++) bs[n] = cs[n] = b, in[b] = 1, n++;
	for (int b = 0; b < 256; b++)
		if (!in[b]) bs[n] = b, cs[n] = 256 + m++, n++;
}

static int utf8_put(char *o, int cp)
{
	if (cp < 0x80) { o[0] = (char)cp; return 1; }
	if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 63)); return 2; }
	o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 63)); o[2] = (char)(0x80 | (cp & 63));
	return 3;
}

static L2BpeVocab *vocab_base(void)
{
	L2BpeVocab *v = l2_calloc(1, sizeof *v);
	int bs[256], cs[256];
	byte_alphabet(bs, cs);
	v->str = l2_calloc(514, sizeof *v->str);
	for (int i = 0; i < 256; i++) {
		char u[8];
		int k = utf8_put(u, cs[i]);
		u[k] = 0;
		v->str[i] = l2_strdup(u);
		char w[16];
		snprintf(w, sizeof w, "%s</w>", u);
		v->str[256 + i] = l2_strdup(w);
		v->byte_id[bs[i]] = i;
	}
	return v;
}

static void finish_specials(L2BpeVocab *v)
{
	v->str = l2_realloc(v->str, (514 + (size_t)v->nmerge) * sizeof *v->str);
	v->str[512 + v->nmerge] = l2_strdup("<|startoftext|>");
	v->str[513 + v->nmerge] = l2_strdup("<|endoftext|>");
}

/* ---- pair keys -------------------------------------------------------------- */

static uint64_t pkey(int a, int b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }
static size_t hslot(uint64_t k, size_t cap)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	return (size_t)k & (cap - 1);
}

/* ---- pre-tokenizing ---------------------------------------------------------- */

/* Calls fn(word, len) for each regex token of the cleaned, lower-cased text. */
typedef void (*WordFn)(void *ctx, const char *w, size_t len);

static int is_letter(unsigned char c) { return isalpha(c) || c >= 0x80; }

static void split_words(const char *text, WordFn fn, void *ctx)
{
	size_t n = strlen(text);
	char *t = l2_malloc(n + 1);
	for (size_t i = 0; i <= n; i++) t[i] = (char)tolower((unsigned char)text[i]);
	size_t i = 0;
	while (i < n) {
		unsigned char c = (unsigned char)t[i];
		if (isspace(c)) { i++; continue; }
		size_t j = i + 1;
		if (c == '\'') {
			static const char *con[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
			size_t hit = 0;
			for (int k = 0; k < 7; k++) {
				size_t l = strlen(con[k]);
				if (!strncmp(t + i, con[k], l)) { hit = l; break; }
			}
			if (hit) { fn(ctx, t + i, hit); i += hit; continue; }
		}
		if (is_letter(c)) {
			while (j < n && is_letter((unsigned char)t[j])) j++;
		} else if (isdigit(c)) {
			/* one digit per token */
		} else {
			while (j < n && !isspace((unsigned char)t[j]) && !is_letter((unsigned char)t[j]) && !isdigit((unsigned char)t[j])) j++;
		}
		fn(ctx, t + i, j - i);
		i = j;
	}
	free(t);
}

/* ---- a word as symbols ------------------------------------------------------------ */

/* ids of the word's bytes, </w> on the last */
static int word_symbols(const L2BpeVocab *v, const char *w, size_t len, int *out)
{
	int n = (int)len;
	for (int i = 0; i < n; i++) out[i] = v->byte_id[(unsigned char)w[i]] + (i == n - 1 ? 256 : 0);
	return n;
}

static uint64_t fnv(const char *s, size_t n) { return l2_fnv1a64(L2_FNV_INIT, s, n); }

/* symbol string -> id, for reading merges */
typedef struct {
	char **key;
	int *val;
	size_t cap;
} StrMap;

static void sm_put(StrMap *m, const char *k, int v)
{
	size_t s = fnv(k, strlen(k)) & (m->cap - 1);
	while (m->key[s] && strcmp(m->key[s], k)) s = (s + 1) & (m->cap - 1);
	if (!m->key[s]) m->key[s] = (char *)k, m->val[s] = v;
}
static int sm_get(const StrMap *m, const char *k)
{
	size_t s = fnv(k, strlen(k)) & (m->cap - 1);
	while (m->key[s]) {
		if (!strcmp(m->key[s], k)) return m->val[s];
		s = (s + 1) & (m->cap - 1);
	}
	return -1;
}

/* ---- learning ---------------------------------------------------------------------- */

typedef struct {
	char **w;
	size_t *len;
	int64_t *cnt;
	size_t n, cap;
	/* string -> index hash */
	int64_t *hidx;
	size_t hcap;
} WordSet;


static void ws_grow(WordSet *ws)
{
	size_t cap = ws->hcap ? ws->hcap * 2 : 1024;
	int64_t *h = l2_malloc(cap * sizeof *h);
	for (size_t i = 0; i < cap; i++) h[i] = -1;
	for (size_t i = 0; i < ws->n; i++) {
		size_t s = fnv(ws->w[i], ws->len[i]) & (cap - 1);
		while (h[s] >= 0) s = (s + 1) & (cap - 1);
		h[s] = (int64_t)i;
	}
	free(ws->hidx);
	ws->hidx = h;
	ws->hcap = cap;
}

static void ws_add(void *ctx, const char *w, size_t len)
{
	WordSet *ws = ctx;
	if (2 * (ws->n + 1) > ws->hcap) ws_grow(ws);
	size_t s = fnv(w, len) & (ws->hcap - 1);
	while (ws->hidx[s] >= 0) {
		size_t i = (size_t)ws->hidx[s];
		if (ws->len[i] == len && !memcmp(ws->w[i], w, len)) {
			ws->cnt[i]++;
			return;
		}
		s = (s + 1) & (ws->hcap - 1);
	}
	if (ws->n == ws->cap) {
		ws->cap = ws->cap ? 2 * ws->cap : 256;
		ws->w = l2_realloc(ws->w, ws->cap * sizeof *ws->w);
		ws->len = l2_realloc(ws->len, ws->cap * sizeof *ws->len);
		ws->cnt = l2_realloc(ws->cnt, ws->cap * sizeof *ws->cnt);
	}
	ws->w[ws->n] = l2_malloc(len);
	memcpy(ws->w[ws->n], w, len);
	ws->len[ws->n] = len;
	ws->cnt[ws->n] = 1;
	ws->hidx[s] = (int64_t)ws->n++;
}

L2BpeVocab *l2_bpe_learn(char *const *texts, size_t n, int vocab_size)
{
	if (vocab_size < 514) l2_die("--vocab-size %d: must be at least 514 (512 byte symbols + 2 specials)", vocab_size);
	WordSet ws = {0};
	for (size_t i = 0; i < n; i++) split_words(texts[i], ws_add, &ws);
	L2BpeVocab *v = vocab_base();
	int want = vocab_size - 514;
	v->ma = l2_malloc((want ? want : 1) * sizeof *v->ma);
	v->mb = l2_malloc((want ? want : 1) * sizeof *v->mb);
	/* words as id sequences */
	int **seq = l2_malloc((ws.n ? ws.n : 1) * sizeof *seq);
	int *slen = l2_malloc((ws.n ? ws.n : 1) * sizeof *slen);
	for (size_t i = 0; i < ws.n; i++) {
		seq[i] = l2_malloc(ws.len[i] * sizeof **seq);
		slen[i] = word_symbols(v, ws.w[i], ws.len[i], seq[i]);
	}
	/* every symbol string, so that no merge makes a string twice (ids and
	 * strings stay one-to-one, as a string-keyed tokenizer needs) */
	StrMap sm = {0};
	sm.cap = 2048;
	while (sm.cap < 4 * ((size_t)want + 600)) sm.cap *= 2;
	sm.key = l2_calloc(sm.cap, sizeof *sm.key);
	sm.val = l2_malloc(sm.cap * sizeof *sm.val);
	for (int i = 0; i < 512; i++) sm_put(&sm, v->str[i], i);
	uint64_t *ban = NULL;
	size_t nban = 0;
	size_t pcap = 1 << 16;
	uint64_t *pk = l2_malloc(pcap * sizeof *pk);
	int64_t *pc = l2_malloc(pcap * sizeof *pc);
	while (v->nmerge < want) {
		/* count pairs */
		size_t need = 16;
		for (size_t i = 0; i < ws.n; i++) need += slen[i];
		while (pcap < 2 * need) pcap *= 2;
		pk = l2_realloc(pk, pcap * sizeof *pk);
		pc = l2_realloc(pc, pcap * sizeof *pc);
		for (size_t s = 0; s < pcap; s++) pc[s] = 0;
		for (size_t i = 0; i < ws.n; i++)
			for (int j = 0; j + 1 < slen[i]; j++) {
				uint64_t k = pkey(seq[i][j], seq[i][j + 1]);
				size_t s = hslot(k, pcap);
				while (pc[s] && pk[s] != k) s = (s + 1) & (pcap - 1);
				pk[s] = k;
				pc[s] += ws.cnt[i];
			}
		int64_t best = 0;
		uint64_t bk = 0;
		for (size_t s = 0; s < pcap; s++) {
			if (!pc[s] || pc[s] < best || (pc[s] == best && pk[s] > bk)) continue;
			int banned = 0;
			for (size_t q = 0; q < nban && !banned; q++) banned = ban[q] == pk[s];
			if (!banned) best = pc[s], bk = pk[s];
		}
		if (!best) break;
		int a = (int)(bk >> 32), b = (int)(uint32_t)bk, id = 512 + v->nmerge;
		{
			size_t la = strlen(v->str[a]), lb = strlen(v->str[b]);
			char *joined = l2_malloc(la + lb + 1);
			memcpy(joined, v->str[a], la);
			memcpy(joined + la, v->str[b], lb + 1);
			int dup = sm_get(&sm, joined) >= 0;
			free(joined);
			if (dup) {
				ban = l2_realloc(ban, (nban + 1) * sizeof *ban);
				ban[nban++] = bk;
				continue;
			}
		}
		v->ma[v->nmerge] = a;
		v->mb[v->nmerge] = b;
		v->nmerge++;
		v->str = l2_realloc(v->str, (512 + (size_t)v->nmerge) * sizeof *v->str);
		size_t la = strlen(v->str[a]), lb = strlen(v->str[b]);
		v->str[id] = l2_malloc(la + lb + 1);
		memcpy(v->str[id], v->str[a], la);
		memcpy(v->str[id] + la, v->str[b], lb + 1);
		sm_put(&sm, v->str[id], id);
		for (size_t i = 0; i < ws.n; i++) {
			int k = 0;
			for (int j = 0; j < slen[i];) {
				if (j + 1 < slen[i] && seq[i][j] == a && seq[i][j + 1] == b) {
					seq[i][k++] = id;
					j += 2;
				} else seq[i][k++] = seq[i][j++];
			}
			slen[i] = k;
		}
	}
	free(pk);
	free(pc);
	free(ban);
	free(sm.key);
	free(sm.val);
	for (size_t i = 0; i < ws.n; i++) {
		free(seq[i]);
		free(ws.w[i]);
	}
	free(seq);
	free(slen);
	free(ws.w);
	free(ws.len);
	free(ws.cnt);
	free(ws.hidx);
	finish_specials(v);
	return v;
}

/* ---- files ------------------------------------------------------------------------------ */

static int ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcmp(s + a - b, suf);
}

void l2_bpe_write(const L2BpeVocab *v, const char *path)
{
	size_t cap = 64, len = 0;
	for (int k = 0; k < v->nmerge; k++) cap += strlen(v->str[v->ma[k]]) + strlen(v->str[v->mb[k]]) + 2;
	char *buf = l2_malloc(cap);
	len += (size_t)snprintf(buf, cap, "#version: 0.2\n");
	for (int k = 0; k < v->nmerge; k++)
		len += (size_t)snprintf(buf + len, cap - len, "%s %s\n", v->str[v->ma[k]], v->str[v->mb[k]]);
	L2OFile *o = l2_ofile_open(path, 1);
	if (ends_with(path, ".gz")) {
		uLongf zcap = compressBound(len) + 64;
		unsigned char *z = l2_malloc(zcap);
		/* a gzip member: deflate with a gzip wrapper */
		z_stream zs = {0};
		if (deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) l2_die("%s: zlib failed", path);
		zs.next_in = (unsigned char *)buf;
		zs.avail_in = (uInt)len;
		zs.next_out = z;
		zs.avail_out = (uInt)zcap;
		if (deflate(&zs, Z_FINISH) != Z_STREAM_END) l2_die("%s: zlib failed", path);
		l2_ofile_write(o, z, zs.total_out);
		deflateEnd(&zs);
		free(z);
	} else l2_ofile_write(o, buf, len);
	l2_ofile_commit(o);
	free(buf);
}

void l2_bpe_free(L2BpeVocab *v)
{
	if (!v) return;
	for (int i = 0; i < 514 + v->nmerge; i++) free(v->str[i]);
	free(v->str);
	free(v->ma);
	free(v->mb);
	free(v);
}

int l2_bpe_size(const L2BpeVocab *v) { return 514 + v->nmerge; }
int l2_bpe_merges(const L2BpeVocab *v) { return v->nmerge; }
