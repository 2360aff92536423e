/* clip_tokenizer.c — CLIP's tokenizer (see clip_tokenizer.h): text clean-up on code points
 * (ftfy.fix_text and html.unescape are lib/text/ftfy.c), the split pattern, and
 * ranked byte-level BPE merges. */
#include "text/clip_tokenizer.h"

#include "text/ftfy.h"
#include "core/hash.h"
#include "core/util.h"

/* unicode_tables.h is shared with ftfy.c; each file uses part of it */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-const-variable"
#include "text/unicode_tables.h"
#pragma GCC diagnostic pop

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define NMERGES (49152 - 256 - 2)
#include "text/unicode_lookup.h"

/* ---- code point vectors ------------------------------------------------------- */

typedef struct {
	uint32_t *v;
	size_t n, cap;
} U32;

static void u_push(U32 *u, uint32_t c)
{
	if (u->n == u->cap) {
		u->cap = u->cap ? 2 * u->cap : 64;
		u->v = l2_realloc(u->v, u->cap * sizeof(uint32_t));
	}
	u->v[u->n++] = c;
}

/* strict UTF-8 (no surrogates, no overlongs); -1 when invalid */
static int utf8_decode(const char *s, size_t len, U32 *u)
{
	const unsigned char *p = (const unsigned char *)s, *e = p + len;
	while (p < e) {
		uint32_t c = *p;
		int n = c < 0x80 ? 0 : c >= 0xC2 && c < 0xE0 ? 1 : c >= 0xE0 && c < 0xF0 ? 2 : c >= 0xF0 && c < 0xF5 ? 3 : -1;
		if (n < 0 || e - p <= n) return -1;
		if (n) c &= 0x3F >> n;
		for (int i = 1; i <= n; i++) {
			if ((p[i] & 0xC0) != 0x80) return -1;
			c = c << 6 | (p[i] & 0x3F);
		}
		if ((n == 2 && c < 0x800) || (n == 3 && (c < 0x10000 || c > 0x10FFFF)) || (c >= 0xD800 && c <= 0xDFFF)) return -1;
		u_push(u, c);
		p += n + 1;
	}
	return 0;
}

static size_t utf8_put(uint32_t c, char *o)
{
	if (c < 0x80) { o[0] = (char)c; return 1; }
	if (c < 0x800) { o[0] = (char)(0xC0 | c >> 6); o[1] = (char)(0x80 | (c & 0x3F)); return 2; }
	if (c < 0x10000) {
		o[0] = (char)(0xE0 | c >> 12); o[1] = (char)(0x80 | (c >> 6 & 0x3F)); o[2] = (char)(0x80 | (c & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | c >> 18); o[1] = (char)(0x80 | (c >> 12 & 0x3F));
	o[2] = (char)(0x80 | (c >> 6 & 0x3F)); o[3] = (char)(0x80 | (c & 0x3F));
	return 4;
}

static char *u_to_utf8(const uint32_t *v, size_t n)
{
	char *s = l2_malloc(n * 4 + 1), *o = s;
	for (size_t i = 0; i < n; i++) o += utf8_put(v[i], o);
	*o = 0;
	return s;
}

/* ---- table look-ups --------------------------------------------------------------- */

static int is_letter(uint32_t c) { return IN(uni_letter, c); }
static int is_number(uint32_t c) { return IN(uni_number, c); }
static int is_space(uint32_t c) { return IN(uni_space, c); }
static int is_other(uint32_t c)
{
	for (size_t i = 0; i < NELEM(uni_other_exceptions); i++)
		if (uni_other_exceptions[i][0] == c) return (int)uni_other_exceptions[i][1];
	return !is_letter(c) && !is_number(c) && !is_space(c);
}

/* does text code point c match pattern letter a under IGNORECASE? */
static int fold_eq(uint32_t c, char a)
{
	if (c == (uint32_t)a) return 1;
	for (size_t i = 0; i < NELEM(uni_fold_equiv); i++)
		if (uni_fold_equiv[i][0] == (uint32_t)a)
			return c == uni_fold_equiv[i][1] || c == uni_fold_equiv[i][2] || c == uni_fold_equiv[i][3];
	return 0;
}

/* ---- whitespace and lower() ---------------------------------------------------------------- */

static int isspace_py(uint32_t c) { return IN(uni_isspace, c); }

static void strip(U32 *u)
{
	size_t a = 0, b = u->n;
	while (a < b && isspace_py(u->v[a])) a++;
	while (b > a && isspace_py(u->v[b - 1])) b--;
	if (a && b > a) memmove(u->v, u->v + a, (b - a) * sizeof(uint32_t));
	u->n = b - a;
}

static void whitespace_clean(U32 *u)
{
	size_t o = 0;
	for (size_t i = 0; i < u->n;) {
		if (is_space(u->v[i])) {
			while (i < u->n && is_space(u->v[i])) i++;
			u->v[o++] = ' ';
		} else {
			u->v[o++] = u->v[i++];
		}
	}
	u->n = o;
	strip(u);
}

static void lower(U32 *u)
{
	U32 o = {0};
	for (size_t i = 0; i < u->n; i++) {
		uint32_t c = u->v[i], l;
		if (c == 0x3A3) { /* Final_Sigma, as str.lower() decides it */
			long j = (long)i - 1;
			while (j >= 0 && IN(uni_case_ignorable, u->v[j])) j--;
			int fin = j >= 0 && IN(uni_cased, u->v[j]);
			if (fin) {
				size_t k = i + 1;
				while (k < u->n && IN(uni_case_ignorable, u->v[k])) k++;
				fin = k == u->n || !IN(uni_cased, u->v[k]);
			}
			u_push(&o, fin ? 0x3C2 : 0x3C3);
			continue;
		}
		if (pair_lookup(uni_lower1, NELEM(uni_lower1), c, &l)) { u_push(&o, l); continue; }
		int two = 0;
		for (size_t k = 0; k < NELEM(uni_lower2); k++)
			if (uni_lower2[k][0] == c) { u_push(&o, uni_lower2[k][1]); u_push(&o, uni_lower2[k][2]); two = 1; }
		if (!two) u_push(&o, c);
	}
	free(u->v);
	*u = o;
}

static int clean(const char *text, size_t len, U32 *u)
{
	if (utf8_decode(text, len, u)) return -1;
	l2_ftfy_fix_text_u32(&u->v, &u->n, &u->cap);
	l2_html_unescape_u32(&u->v, &u->n, &u->cap);
	l2_html_unescape_u32(&u->v, &u->n, &u->cap);
	strip(u);
	whitespace_clean(u);
	lower(u);
	return 0;
}

char *l2_tok_clean(const char *text, size_t len)
{
	U32 u = {0};
	if (clean(text, len, &u)) { free(u.v); return NULL; }
	char *s = u_to_utf8(u.v, u.n);
	free(u.v);
	return s;
}

/* ---- the vocabulary ----------------------------------------------------------------------- */

typedef struct {
	char **key;
	int *val;
	size_t cap, n;
} Map;

static uint64_t hash_str(const char *s, size_t n) { return l2_fnv1a64(L2_FNV_INIT, s, n); }

static void map_init(Map *m, size_t n)
{
	m->cap = 1;
	while (m->cap < 2 * n) m->cap <<= 1;
	m->key = l2_calloc(m->cap, sizeof(char *));
	m->val = l2_calloc(m->cap, sizeof(int));
}

/* later puts overwrite earlier ones, as dict(zip(...)) does */
static void map_put(Map *m, char *k, int v)
{
	size_t n = strlen(k), i = hash_str(k, n) & (m->cap - 1);
	while (m->key[i] && strcmp(m->key[i], k)) i = (i + 1) & (m->cap - 1);
	if (m->key[i]) free(k);
	else { m->key[i] = k; m->n++; }
	m->val[i] = v;
}

static int map_get(const Map *m, const char *k, size_t n)
{
	size_t i = hash_str(k, n) & (m->cap - 1);
	while (m->key[i]) {
		if (strlen(m->key[i]) == n && !memcmp(m->key[i], k, n)) return m->val[i];
		i = (i + 1) & (m->cap - 1);
	}
	return -1;
}

static void map_free(Map *m)
{
	for (size_t i = 0; i < m->cap; i++) free(m->key[i]);
	free(m->key);
	free(m->val);
}

struct L2Tokenizer {
	Map vocab, ranks;
	int size, sot, eot;
	char byte_enc[256][3]; /* UTF-8 of bytes_to_unicode()[b] */
};

static char *read_maybe_gz(const char *path, size_t *len)
{
	gzFile g = gzopen(path, "rb");
	if (!g) l2_die_errno("%s", path);
	size_t cap = 1 << 20, n = 0;
	char *buf = l2_malloc(cap);
	for (;;) {
		if (n + 65536 + 1 > cap) buf = l2_realloc(buf, cap *= 2);
		int r = gzread(g, buf + n, 65536);
		if (r < 0) {
			int e;
			char msg[256];
			snprintf(msg, sizeof msg, "%s", gzerror(g, &e));
			if (e == Z_ERRNO) snprintf(msg, sizeof msg, "%s", strerror(errno));
			gzclose(g);
			l2_die("%s: %s", path, msg);
		}
		if (r == 0) break;
		n += (size_t)r;
	}
	gzclose(g);
	buf[n] = 0;
	*len = n;
	return buf;
}

L2Tokenizer *l2_tok_load(const char *path)
{
	if (l2_is_dir(path)) l2_die("%s: is a directory, not a BPE vocabulary", path);
	size_t len;
	char *buf = read_maybe_gz(path, &len);
	if (memchr(buf, 0, len)) l2_die("%s: not a BPE vocabulary (binary data)", path);
	L2Tokenizer *b = l2_calloc(1, sizeof *b);
	/* bytes_to_unicode */
	int cs[256], n = 0, is_bs[256] = {0};
	for (int c = '!'; c <= '~'; c++) is_bs[c] = 1;
	for (int c = 0xA1; c <= 0xAC; c++) is_bs[c] = 1;
	for (int c = 0xAE; c <= 0xFF; c++) is_bs[c] = 1;
	for (int c = 0; c < 256; c++) cs[c] = is_bs[c] ? c : 256 + n++;
	int order[256], k = 0; /* vocabulary order: bs list first, then the others */
	for (int c = 0; c < 256; c++) if (is_bs[c]) order[k++] = c;
	for (int c = 0; c < 256; c++) if (!is_bs[c]) order[k++] = c;
	for (int c = 0; c < 256; c++) b->byte_enc[c][utf8_put((uint32_t)cs[c], b->byte_enc[c])] = 0;

	map_init(&b->vocab, 2 * 49408);
	map_init(&b->ranks, 2 * NMERGES);
	int id = 0;
	for (int i = 0; i < 256; i++) map_put(&b->vocab, l2_strdup(b->byte_enc[order[i]]), id++);
	for (int i = 0; i < 256; i++) {
		char t[16];
		snprintf(t, sizeof t, "%s</w>", b->byte_enc[order[i]]);
		map_put(&b->vocab, l2_strdup(t), id++);
	}
	/* merges: lines 1 .. NMERGES after the header line */
	char *p = buf;
	char *nl = strchr(p, '\n');
	/* OpenAI's first line is "bpe_simple_vocab_16e6.txt#version: 0.2", HF's "#version: 0.2" */
	if (nl) *nl = 0;
	int header = strstr(p, "#version") != NULL;
	if (nl) *nl = '\n';
	if (!header) l2_die("%s: not a BPE vocabulary (no \"#version\" first line)", path);
	p = nl ? nl + 1 : p + strlen(p);
	int lineno = 1, nm = 0;
	while (*p && nm < NMERGES) {
		lineno++;
		nl = strchr(p, '\n');
		size_t ll = nl ? (size_t)(nl - p) : strlen(p);
		char *line = l2_malloc(ll + 1);
		memcpy(line, p, ll);
		line[ll] = 0;
		if (ll && line[ll - 1] == '\r') line[--ll] = 0;
		char *sv, *a = strtok_r(line, " \t", &sv), *c = a ? strtok_r(NULL, " \t", &sv) : NULL;
		if (!a || !c || strtok_r(NULL, " \t", &sv))
			l2_die("%s: line %d: not a BPE merge (expected two symbols)", path, lineno);
		size_t la = strlen(a), lc = strlen(c);
		char *joined = l2_malloc(la + lc + 1), *pair = l2_malloc(la + lc + 2);
		memcpy(joined, a, la);
		memcpy(joined + la, c, lc + 1);
		memcpy(pair, a, la);
		pair[la] = ' ';
		memcpy(pair + la + 1, c, lc + 1);
		map_put(&b->vocab, joined, id++);
		map_put(&b->ranks, pair, nm++);
		free(line);
		p = nl ? nl + 1 : p + ll;
	}
	if (nm == 0) l2_die("%s: not a BPE vocabulary (no merges)", path);
	b->sot = id;
	map_put(&b->vocab, l2_strdup("<|startoftext|>"), id++);
	b->eot = id;
	map_put(&b->vocab, l2_strdup("<|endoftext|>"), id++);
	b->size = id;
	free(buf);
	return b;
}

void l2_tok_free(L2Tokenizer *b)
{
	if (!b) return;
	map_free(&b->vocab);
	map_free(&b->ranks);
	free(b);
}

int l2_tok_vocab_size(const L2Tokenizer *b) { return b->size; }
int l2_tok_sot(const L2Tokenizer *b) { return b->sot; }
int l2_tok_eot(const L2Tokenizer *b) { return b->eot; }

/* ---- BPE over one pre-token ---------------------------------------------------------------- */

static void push_id(int32_t **ids, size_t *cap, size_t *n, int32_t v)
{
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 64;
		*ids = l2_realloc(*ids, *cap * sizeof(int32_t));
	}
	(*ids)[(*n)++] = v;
}

static void bpe_word(const L2Tokenizer *b, const unsigned char *tok, size_t len, int32_t **ids, size_t *cap, size_t *n)
{
	/* symbols: byte-encoded characters, the last with "</w>" */
	size_t ns = len;
	char **sym = l2_malloc(ns * sizeof(char *));
	for (size_t i = 0; i < len; i++) {
		const char *e = b->byte_enc[tok[i]];
		size_t el = strlen(e);
		sym[i] = l2_malloc(el + 5);
		memcpy(sym[i], e, el + 1);
		if (i == len - 1) strcat(sym[i], "</w>");
	}
	char *key = NULL;
	size_t keycap = 0;
	while (ns > 1) {
		int best = -1;
		size_t bi = 0;
		for (size_t i = 0; i + 1 < ns; i++) {
			size_t la = strlen(sym[i]), lb = strlen(sym[i + 1]);
			if (la + lb + 2 > keycap) key = l2_realloc(key, keycap = 2 * (la + lb + 2));
			memcpy(key, sym[i], la);
			key[la] = ' ';
			memcpy(key + la + 1, sym[i + 1], lb + 1);
			int r = map_get(&b->ranks, key, la + lb + 1);
			if (r >= 0 && (best < 0 || r < best)) { best = r; bi = i; }
		}
		if (best < 0) break;
		/* merge every occurrence of that pair, left to right */
		char *first = l2_strdup(sym[bi]), *second = l2_strdup(sym[bi + 1]);
		size_t o = 0;
		for (size_t i = 0; i < ns;) {
			if (i + 1 < ns && !strcmp(sym[i], first) && !strcmp(sym[i + 1], second)) {
				size_t la = strlen(sym[i]), lb = strlen(sym[i + 1]);
				char *m = l2_malloc(la + lb + 1);
				memcpy(m, sym[i], la);
				memcpy(m + la, sym[i + 1], lb + 1);
				free(sym[i]);
				free(sym[i + 1]);
				sym[o++] = m;
				i += 2;
			} else {
				sym[o++] = sym[i++];
			}
		}
		ns = o;
		free(first);
		free(second);
	}
	for (size_t i = 0; i < ns; i++) {
		int v = map_get(&b->vocab, sym[i], strlen(sym[i]));
		if (v < 0) l2_die("BPE vocabulary: no token for symbol \"%s\" (truncated vocabulary file?)", sym[i]);
		push_id(ids, cap, n, v);
		free(sym[i]);
	}
	free(sym);
	free(key);
}

/* ---- the split pattern ------------------------------------------------------------------------- */

static size_t match_literal(const uint32_t *t, size_t n, size_t i, const char *lit)
{
	size_t k = 0;
	for (; lit[k]; k++)
		if (i + k >= n || !fold_eq(t[i + k], lit[k])) return 0;
	return k;
}

long l2_tok_encode(const L2Tokenizer *b, const char *text, size_t len, int32_t **ids, size_t *cap)
{
	U32 u = {0};
	if (clean(text, len, &u)) { free(u.v); return -1; }
	static const char *const alts[] = {"<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
	size_t n = 0;
	char *buf = l2_malloc(u.n * 4 + 1);
	for (size_t i = 0; i < u.n;) {
		size_t m = 0;
		for (size_t a = 0; a < NELEM(alts) && !m; a++) m = match_literal(u.v, u.n, i, alts[a]);
		if (!m && is_letter(u.v[i]))
			while (i + m < u.n && is_letter(u.v[i + m])) m++;
		if (!m && is_number(u.v[i])) m = 1;
		if (!m && is_other(u.v[i]))
			while (i + m < u.n && is_other(u.v[i + m])) m++;
		if (!m) { i++; continue; }
		size_t bl = 0;
		for (size_t k = 0; k < m; k++) bl += utf8_put(u.v[i + k], buf + bl);
		buf[bl] = 0;
		if (!strcmp(buf, "<|startoftext|>")) push_id(ids, cap, &n, b->sot);
		else if (!strcmp(buf, "<|endoftext|>")) push_id(ids, cap, &n, b->eot);
		else bpe_word(b, (const unsigned char *)buf, bl, ids, cap, &n);
		i += m;
	}
	free(buf);
	free(u.v);
	return (long)n;
}

int l2_tok_tokenize(const L2Tokenizer *b, const char *text, size_t len, int context, int32_t *out)
{
	int32_t *ids = NULL;
	size_t cap = 0;
	long n = l2_tok_encode(b, text, len, &ids, &cap);
	if (n < 0) { free(ids); return -1; }
	memset(out, 0, (size_t)context * sizeof(int32_t));
	int k = 0;
	out[k++] = b->sot;
	for (long i = 0; i < n && k < context; i++) out[k++] = ids[i];
	if (k < context) out[k++] = b->eot;
	else out[context - 1] = b->eot;
	free(ids);
	return k;
}

char *l2_tok_shipped_vocab(void)
{
	return l2_exe_path("../share/l2/" L2_TOK_SHIPPED_NAME);
}

char *l2_tok_find_vocab(const char *opt, const char *weights)
{
	if (opt) return l2_strdup(opt);
	const char *env = getenv("L2_CLIP_VOCAB");
	if (env && *env) return l2_strdup(env);
	static const char *const names[] = {L2_TOK_SHIPPED_NAME, "merges.txt", "vocab.txt.gz"};
	if (weights) {
		/* STEM.vocab.txt.gz: what l2-train-clip writes beside STEM.safetensors,
		 * so several models can share a directory */
		size_t wl = strlen(weights), sl_len = strlen(".safetensors");
		size_t stem = wl > sl_len && !strcmp(weights + wl - sl_len, ".safetensors") ? wl - sl_len : wl;
		char *own = l2_malloc(stem + sizeof ".vocab.txt.gz");
		memcpy(own, weights, stem);
		strcpy(own + stem, ".vocab.txt.gz");
		if (l2_file_exists(own)) return own;
		free(own);
		const char *sl = strrchr(weights, '/');
		size_t dl = sl ? (size_t)(sl - weights) + 1 : 0;
		for (size_t i = 0; i < NELEM(names); i++) {
			char *p = l2_malloc(dl + strlen(names[i]) + 1);
			memcpy(p, weights, dl);
			strcpy(p + dl, names[i]);
			if (l2_file_exists(p)) return p;
			free(p);
		}
	}
	/* last, the copy l2 ships (lib/text/vocab/): PREFIX/share/l2 installed,
	 * $(BUILD)/share/l2 in the build tree */
	char *shipped = l2_tok_shipped_vocab();
	if (shipped && l2_file_exists(shipped)) return shipped;
	char where[512];
	snprintf(where, sizeof where, "%s", shipped ? shipped : "/proc/self/exe is unreadable");
	free(shipped);
	l2_die("no CLIP vocabulary: give --vocab FILE, set L2_CLIP_VOCAB, or put " L2_TOK_SHIPPED_NAME
	       " beside the weights (l2's own copy is missing: %s)", where);
}
