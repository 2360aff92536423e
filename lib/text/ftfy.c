/* ftfy.c — ftfy.fix_text and html.unescape on code points (see ftfy.h).
 * Follows ftfy 6.3.1 (Robyn Speer, Apache License 2.0) step for step:
 * fix_text, fix_and_explain, fix_encoding_and_explain, fixes.py, badness.py
 * and bad_codecs; its regular expressions are written out as C over code
 * points and bytes. */
#include "text/ftfy.h"

#include "core/util.h"

#include <stdlib.h>
#include <string.h>

/* unicode_tables.h is shared with clip_tokenizer.c; each file uses part of it */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-const-variable"
#include "text/ftfy_tables.h"
#include "text/unicode_tables.h"
#pragma GCC diagnostic pop

#include "text/unicode_lookup.h"

/* ---- growable code point and byte strings ---------------------------------------- */

typedef struct {
	uint32_t *v;
	size_t n, cap;
} Txt;

typedef struct {
	unsigned char *v;
	size_t n, cap;
} Bytes;

static void t_push(Txt *t, uint32_t c)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 64;
		t->v = l2_realloc(t->v, t->cap * sizeof(uint32_t));
	}
	t->v[t->n++] = c;
}

static void t_append(Txt *t, const uint32_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++) t_push(t, s[i]);
}

static void t_push_utf8(Txt *t, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		uint32_t c;
		if (*p < 0x80) c = *p++;
		else if (*p < 0xE0) { c = (uint32_t)(p[0] & 0x1F) << 6 | (p[1] & 0x3F); p += 2; }
		else if (*p < 0xF0) { c = (uint32_t)(p[0] & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3F); p += 3; }
		else { c = (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3F) << 12 | (uint32_t)(p[2] & 0x3F) << 6 | (p[3] & 0x3F); p += 4; }
		t_push(t, c);
	}
}

static Txt t_copy(const uint32_t *s, size_t n)
{
	Txt t = {l2_malloc((n ? n : 1) * sizeof(uint32_t)), n, n ? n : 1};
	if (n) memcpy(t.v, s, n * sizeof(uint32_t));
	return t;
}

static int t_eq(const Txt *a, const Txt *b)
{
	return a->n == b->n && (!a->n || !memcmp(a->v, b->v, a->n * sizeof(uint32_t)));
}

/* replace *t by o */
static void t_take(Txt *t, Txt *o)
{
	free(t->v);
	*t = *o;
	o->v = NULL;
	o->n = o->cap = 0;
}

static void b_push(Bytes *b, unsigned c)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? 2 * b->cap : 64;
		b->v = l2_realloc(b->v, b->cap);
	}
	b->v[b->n++] = (unsigned char)c;
}

/* ---- table look-ups ------------------------------------------------------------------ */

static int ccc_of(uint32_t c)
{
	size_t lo = 0, hi = NELEM(uni_ccc);
	while (lo < hi) {
		size_t m = (lo + hi) / 2;
		if (c < uni_ccc[m][0]) hi = m;
		else if (c > uni_ccc[m][1]) lo = m + 1;
		else return (int)uni_ccc[m][2];
	}
	return 0;
}

static int is_digit(uint32_t c) { return c >= '0' && c <= '9'; }
static int is_hex(uint32_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static int is_alnum(uint32_t c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_ascii_letter(uint32_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_lower_ascii(uint32_t c) { return c >= 'a' && c <= 'z'; }
static int py_space(uint32_t c) { return IN(uni_isspace, c); } /* re's \s */
static int py_word(uint32_t c) { return IN(ftfy_word, c); }     /* re's \w */
static int py_decimal(uint32_t c) { return IN(ftfy_decimal, c); } /* re's \d */

/* ---- NFC ------------------------------------------------------------------------------ */

#define SBASE 0xAC00u
#define LBASE 0x1100u
#define VBASE 0x1161u
#define TBASE 0x11A7u
#define LCOUNT 19u
#define VCOUNT 21u
#define TCOUNT 28u
#define NCOUNT (VCOUNT * TCOUNT)
#define SCOUNT (LCOUNT * NCOUNT)

static void decompose(uint32_t c, Txt *o)
{
	if (c >= SBASE && c < SBASE + SCOUNT) {
		uint32_t s = c - SBASE;
		t_push(o, LBASE + s / NCOUNT);
		t_push(o, VBASE + s % NCOUNT / TCOUNT);
		if (s % TCOUNT) t_push(o, TBASE + s % TCOUNT);
		return;
	}
	size_t lo = 0, hi = NELEM(uni_decomp);
	while (lo < hi) {
		size_t m = (lo + hi) / 2;
		if (uni_decomp[m][0] < c) lo = m + 1;
		else hi = m;
	}
	if (lo < NELEM(uni_decomp) && uni_decomp[lo][0] == c) {
		for (int i = 1; i <= 4 && uni_decomp[lo][i]; i++) t_push(o, uni_decomp[lo][i]);
		return;
	}
	t_push(o, c);
}

static uint32_t compose(uint32_t a, uint32_t b)
{
	if (a >= LBASE && a < LBASE + LCOUNT && b >= VBASE && b < VBASE + VCOUNT)
		return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
	if (a >= SBASE && a < SBASE + SCOUNT && (a - SBASE) % TCOUNT == 0 && b > TBASE && b < TBASE + TCOUNT)
		return a + (b - TBASE);
	size_t lo = 0, hi = NELEM(uni_comp);
	while (lo < hi) {
		size_t m = (lo + hi) / 2;
		if (uni_comp[m][0] < a || (uni_comp[m][0] == a && uni_comp[m][1] < b)) lo = m + 1;
		else hi = m;
	}
	if (lo < NELEM(uni_comp) && uni_comp[lo][0] == a && uni_comp[lo][1] == b) return uni_comp[lo][2];
	return 0;
}

static void nfc(Txt *u)
{
	Txt d = {0};
	for (size_t i = 0; i < u->n; i++) decompose(u->v[i], &d);
	/* canonical order: stable sort of each run of non-starters */
	for (size_t i = 0; i < d.n;) {
		if (!ccc_of(d.v[i])) { i++; continue; }
		size_t j = i;
		while (j < d.n && ccc_of(d.v[j])) j++;
		for (size_t a = i + 1; a < j; a++)
			for (size_t b = a; b > i && ccc_of(d.v[b - 1]) > ccc_of(d.v[b]); b--) {
				uint32_t t = d.v[b]; d.v[b] = d.v[b - 1]; d.v[b - 1] = t;
			}
		i = j;
	}
	u->n = 0;
	long starter = -1;
	int prev = -1; /* ccc of the last character after the starter; -1: adjacent */
	for (size_t i = 0; i < d.n; i++) {
		uint32_t c = d.v[i];
		int cc = ccc_of(c);
		if (starter >= 0 && (prev == -1 || (prev != 0 && prev < cc))) {
			uint32_t k = compose(u->v[starter], c);
			if (k) { u->v[starter] = k; continue; }
		}
		if (cc == 0) { starter = (long)u->n; prev = -1; }
		else prev = cc;
		t_push(u, c);
	}
	free(d.v);
}

/* ---- html.unescape ------------------------------------------------------------------ */

static const char *entity(const char *name, size_t n, int upper_too)
{
	size_t lo = 0, hi = NELEM(html5_entities);
	while (lo < hi) {
		size_t m = (lo + hi) / 2;
		int r = strncmp(html5_entities[m].name, name, n);
		if (r == 0 && html5_entities[m].name[n]) r = 1;
		if (r < 0) lo = m + 1;
		else if (r > 0) hi = m;
		else return html5_entities[m].value;
	}
	if (!upper_too) return NULL;
	lo = 0, hi = NELEM(ftfy_upper_entities);
	while (lo < hi) {
		size_t m = (lo + hi) / 2;
		int r = strncmp(ftfy_upper_entities[m].name, name, n);
		if (r == 0 && ftfy_upper_entities[m].name[n]) r = 1;
		if (r < 0) lo = m + 1;
		else if (r > 0) hi = m;
		else return ftfy_upper_entities[m].value;
	}
	return NULL;
}

/* Python's html._replace_charref for a numeric reference */
static void numeric_ref(uint64_t num, Txt *o)
{
	uint32_t r;
	if (num <= 0xFFFFFFFFu && pair_lookup(html_invalid_charrefs, NELEM(html_invalid_charrefs), (uint32_t)num, &r)) {
		t_push(o, r);
		return;
	}
	if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) { t_push(o, 0xFFFD); return; }
	if (IN(html_invalid_codepoints, (uint32_t)num)) return;
	t_push(o, (uint32_t)num);
}

/* Try a reference at t[i] == '&' as html.unescape's regex does:
 * &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?).
 * Appends the replacement to o and returns the length consumed, or 0. */
static size_t html_ref(const uint32_t *t, size_t n, size_t i, Txt *o)
{
	size_t j = i + 1;
	if (j < n && t[j] == '#') {
		int hex = j + 1 < n && (t[j + 1] == 'x' || t[j + 1] == 'X');
		size_t k = j + 1 + hex, s = k;
		uint64_t num = 0;
		while (k < n && (hex ? is_hex(t[k]) : is_digit(t[k]))) {
			uint32_t c = t[k];
			int v = is_digit(c) ? (int)(c - '0') : (int)((c | 0x20) - 'a' + 10);
			if (num < (1ull << 40)) num = num * (hex ? 16 : 10) + (uint64_t)v;
			k++;
		}
		if (k == s) return 0;
		if (k < n && t[k] == ';') k++;
		numeric_ref(num, o);
		return k - i;
	}
	size_t k = j;
	while (k < n && k - j < 32 && t[k] != '\t' && t[k] != '\n' && t[k] != '\f' && t[k] != ' ' && t[k] != '<' &&
	       t[k] != '&' && t[k] != '#' && t[k] != ';')
		k++;
	if (k == j) return 0;
	if (k < n && t[k] == ';') k++;
	/* s = t[j..k): whole name, else the longest prefix of >= 2 chars */
	size_t len = k - j;
	char name[40] = {0};
	for (size_t a = 0; a < len; a++) {
		if (t[j + a] >= 0x80) { len = a; break; } /* entity names are ASCII */
		name[a] = (char)t[j + a];
	}
	if (len == k - j) {
		const char *v = entity(name, len, 0);
		if (v) { t_push_utf8(o, v); return k - i; }
	}
	for (size_t x = (k - j) - 1; x > 1; x--) {
		if (x > len) continue;
		const char *v = entity(name, x, 0);
		if (v) {
			t_push_utf8(o, v);
			for (size_t a = j + x; a < k; a++) t_push(o, t[a]);
			return k - i;
		}
	}
	t_push(o, '&');
	for (size_t a = j; a < k; a++) t_push(o, t[a]);
	return k - i;
}

static void html_unescape(Txt *u)
{
	Txt o = {0};
	for (size_t i = 0; i < u->n;) {
		if (u->v[i] == '&') {
			size_t m = html_ref(u->v, u->n, i, &o);
			if (m) { i += m; continue; }
		}
		t_push(&o, u->v[i++]);
	}
	t_take(u, &o);
}

void l2_html_unescape_u32(uint32_t **v, size_t *n, size_t *cap)
{
	Txt t = {*v, *n, *cap};
	html_unescape(&t);
	*v = t.v, *n = t.n, *cap = t.cap;
}

/* ftfy's unescape_html: only "&#?[0-9A-Za-z]{1,24};" */
static void unescape_html(Txt *u)
{
	Txt o = {0};
	for (size_t i = 0; i < u->n;) {
		if (u->v[i] == '&') {
			size_t j = i + 1;
			int num = j < u->n && u->v[j] == '#';
			j += num;
			size_t s = j;
			while (j < u->n && j - s < 24 && is_alnum(u->v[j])) j++;
			if (j > s && j < u->n && u->v[j] == ';') {
				size_t end = j + 1;
				char name[32];
				size_t len = end - (i + 1);
				for (size_t a = 0; a < len; a++) name[a] = (char)u->v[i + 1 + a];
				const char *v = num ? NULL : entity(name, len, 1);
				if (v) t_push_utf8(&o, v);
				else if (num) {
					Txt r = {0};
					size_t m = html_ref(u->v, end, i, &r);
					int semi = 0;
					for (size_t a = 0; a < r.n; a++) semi |= r.v[a] == ';';
					if (m == end - i && !semi) t_append(&o, r.v, r.n);
					else t_append(&o, u->v + i, end - i);
					free(r.v);
				} else {
					t_append(&o, u->v + i, end - i);
				}
				i = end;
				continue;
			}
		}
		t_push(&o, u->v[i++]);
	}
	t_take(u, &o);
}

/* ---- badness.is_bad ------------------------------------------------------------------- */

/* class bits, in tools/gen_ftfy_tables.py's order */
enum {
	COMMON = 1 << 0, C1 = 1 << 1, BAD = 1 << 2, LAW = 1 << 3, CUR = 1 << 4, SP = 1 << 5, EP = 1 << 6,
	NUM = 1 << 7, KAO = 1 << 8, UA = 1 << 9, LA = 1 << 10, UC = 1 << 11, LC = 1 << 12, BOX = 1 << 13,
	F2 = 1 << 14, F3 = 1 << 15, F4 = 1 << 16, CONT = 1 << 17, STRICT = 1 << 18,
};

static uint32_t cls(uint32_t c)
{
	size_t lo = 0, hi = NELEM(ftfy_class);
	if (c < 0x20 || c > 0xFFFD) return 0;
	while (lo < hi) {
		size_t m = (lo + hi) / 2;
		if (ftfy_class[m][0] < c) lo = m + 1;
		else hi = m;
	}
	return lo < NELEM(ftfy_class) && ftfy_class[lo][0] == c ? ftfy_class[lo][1] : 0;
}

static int one_of(uint32_t c, const uint32_t *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == c) return 1;
	return 0;
}
#define ONE_OF(c, ...) one_of(c, (const uint32_t[]){__VA_ARGS__}, NELEM(((const uint32_t[]){__VA_ARGS__})))

/* Does BADNESS_RE match at position i?  t[0..n) is the searched string,
 * k[] its class bits. */
static int bad_at(const uint32_t *t, const uint32_t *k, size_t n, size_t i)
{
	size_t r = n - i; /* characters left, >= 1 */
	uint32_t a = t[i], ka = k[i];
	uint32_t b = r > 1 ? t[i + 1] : 0, kb = r > 1 ? k[i + 1] : 0;
	uint32_t c = r > 2 ? t[i + 2] : 0, kc = r > 2 ? k[i + 2] : 0;
	/* every alternative starts with a classed character (the single
	 * characters named below all have class bits), an ASCII letter, one of
	 * ".,?!" or whitespace */
	if (!ka && !is_ascii_letter(a) && a != '.' && a != ',' && a != '?' && a != '!' && !py_space(a)) return 0;
	if (ka & C1) return 1;
	if (r < 2) return 0;
	const uint32_t PUNCT = LA | UA | BOX | SP | EP | CUR | NUM | LAW;
	if ((ka & (BAD | PUNCT)) && (kb & BAD)) return 1;
	if (r > 2 && is_ascii_letter(a) && (kb & (LC | UC)) && (kc & BAD)) return 1;
	if ((ka & BAD) && (kb & PUNCT)) return 1;
	if ((ka & (LA | LC | BOX | EP | CUR | NUM)) && (kb & UA)) return 1;
	if ((ka & (BOX | EP | CUR | NUM)) && (kb & LA)) return 1;
	if ((ka & (LA | BOX | EP)) && (kb & CUR)) return 1;
	if (r > 2 && py_space(a) && (kb & UA) && (kc & CUR)) return 1;
	if ((ka & (UA | BOX)) && (kb & (NUM | LAW))) return 1;
	if (r > 2 && (ka & (LA | UA | BOX | CUR | EP)) && (kb & SP) && (kc & NUM)) return 1;
	if (r > 2 && (ka & (LA | UA | CUR | NUM | BOX | LAW)) && (kb & EP) && (kc & SP)) return 1;
	if ((ka & (CUR | NUM | BOX)) && (kb & SP)) return 1;
	if (r > 2 && is_lower_ascii(a) && (kb & UA) && (kc & (SP | CUR))) return 1;
	if ((ka & BOX) && (kb & KAO)) return 1;
	if ((ka & (LA | UA | CUR | NUM | SP | EP | LAW)) && (kb & BOX)) return 1;
	if ((ka & BOX) && (kb & EP)) return 1;
	if (r > 2 && (ka & (LA | UA)) && (kb & (SP | EP)) && py_word(c)) return 1;
	if ((a == 0x152 || a == 0x153) && !is_ascii_letter(b)) return 1;
	if ((ka & UA) && b == 0xB0) return 1;
	if (ONE_OF(a, 0xC2, 0xC3, 0xCE, 0xD0) &&
	    ((kb & (SP | EP)) || ONE_OF(b, 0x20AC, 0x153, 0x160, 0x161, 0xA2, 0xA3, 0x178, 0x17E, 0xA0, 0xAD, 0xAE,
	                                0xA9, 0xB0, 0xB7, 0xBB, 0x2013, 0x2014, 0xB4)))
		return 1;
	if (a == 0xD7 && (b == 0xB2 || b == 0xB3)) return 1;
	if (r > 3 && (a == 0xD8 || a == 0xD9) && (c == 0xD8 || c == 0xD9)) {
		uint32_t d = t[i + 3];
		const uint32_t X = COMMON | CUR | BAD | NUM | SP;
		if (((kb & X) || ONE_OF(b, 0x178, 0x160, 0xAE, 0xB0, 0xB5, 0xBB)) &&
		    ((k[i + 3] & X) || ONE_OF(d, 0x178, 0x160, 0xAE, 0xB0, 0xB5, 0xBB)))
			return 1;
	}
	if (a == 0xE0 && ONE_OF(b, 0xB2, 0xB5, 0xB9, 0xBC, 0xBD, 0xBE)) return 1;
	if (a == 0x221A && ONE_OF(b, 0xB1, 0x2202, 0x2020, 0x2260, 0xAE, 0x2122, 0xB4, 0x2264, 0x2265, 0xA5, 0xB5, 0xF8))
		return 1;
	if (a == 0x2248 && (b == 0xB0 || b == 0xA2)) return 1;
	if (r > 2 && a == 0x201A && b == 0xC4 &&
	    ONE_OF(c, 0xEC, 0xEE, 0xEF, 0xF2, 0xF4, 0xFA, 0xF9, 0xFB, 0x2020, 0xB0, 0xA2, 0x3C0))
		return 1;
	if (r > 2 && a == 0x201A && (b == 0xE2 || b == 0xF3) && ONE_OF(c, 0xE0, 0xE4, 0xB0, 0xEA)) return 1;
	if (a == 0x432 && b == 0x402) return 1;
	if (r > 2 && ONE_OF(a, 0x412, 0x413, 0x420, 0x421) &&
	    ((kb & (C1 | BAD | SP | EP | CUR)) || b == 0xB0 || b == 0xB5) && ONE_OF(c, 0x412, 0x413, 0x420, 0x421))
		return 1;
	if (r > 6 && a == 0x413 && b == 0x45E && c == 0x412 && t[i + 3] == 0x402 && t[i + 4] == 0x412 &&
	    t[i + 5] != '\n' && (is_ascii_letter(t[i + 6]) || t[i + 6] == ' '))
		return 1;
	if (a == 0xC3 && (b == 0xA0 || b == 0xA1)) return 1;
	if (is_lower_ascii(a)) {
		if (r > 2 && (b == 0xC3 || b == 0xC2) && c == ' ') return 1;
		if (r > 3 && py_space(b) && (c == 0xC3 || c == 0xC2) && t[i + 3] == ' ') return 1;
	}
	if (i == 0 && (a == 0xC3 || a == 0xC2) && b == ' ') return 1;
	if (r > 2 && (is_lower_ascii(a) || ONE_OF(a, '.', ',', '?', '!') || (ka & EP)) && b == 0xC2 &&
	    (c == ' ' || (kc & (SP | EP))))
		return 1;
	if (r > 2 && a == 0x3B2 && b == 0x20AC && ONE_OF(c, 0x2122, 0xA0, 0x386, 0xAD, 0xAE, 0xB0)) return 1;
	if (r > 2 && ONE_OF(a, 0x392, 0x393, 0x39E, 0x39F) && ((kb & (C1 | BAD | SP | EP | CUR)) || b == 0xB0) &&
	    ONE_OF(c, 0x392, 0x393, 0x39E, 0x39F))
		return 1;
	if (a == 0x101 && b == 0x20AC) return 1;
	return 0;
}

static int is_bad(const uint32_t *t, size_t n)
{
	if (!n) return 0;
	uint32_t *k = l2_malloc(n * sizeof(uint32_t));
	for (size_t i = 0; i < n; i++) k[i] = cls(t[i]);
	int bad = 0;
	for (size_t i = 0; i < n && !bad; i++) bad = bad_at(t, k, n, i);
	free(k);
	return bad;
}

int l2_ftfy_is_bad(const uint32_t *text, size_t n) { return is_bad(text, n); }

/* ---- single-byte encodings --------------------------------------------------------------- */

enum { MACROMAN = 8 }; /* index in ftfy_enc_name */

/* the byte of c in encoding e, or -1 (chardata.possible_encoding per char) */
static int enc_byte(int e, uint32_t c)
{
	if (c < 0x80) return ftfy_enc_sloppy[e] && c == 0x1A ? -1 : (int)c;
	if (ftfy_enc_sloppy[e] && c == 0xFFFD) return 0x1A;
	for (int i = 0; i < 128; i++)
		if (ftfy_enc_high[e][i] == c) return 0x80 + i;
	return -1;
}

static int encode(int e, const Txt *t, Bytes *out)
{
	out->n = 0;
	for (size_t i = 0; i < t->n; i++) {
		int b = enc_byte(e, t->v[i]);
		if (b < 0) return -1;
		b_push(out, (unsigned)b);
	}
	return 0;
}

/* ---- utf-8-variants decoding ------------------------------------------------------------- */

static int cont(unsigned char c) { return (c & 0xC0) == 0x80; }

/* UTF-8 as Python decodes it strictly, plus ftfy's utf-8-variants: C0 80 is
 * U+0000 (Java), and an encoded surrogate pair (CESU-8) is one character.
 * -1 on any error. */
static int decode_utf8_variants(const unsigned char *p, size_t n, Txt *o)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = p[i];
		size_t r = n - i;
		if (c < 0x80) { t_push(o, c); i++; continue; }
		if (c == 0xC0) {
			/* bad_codecs' NULL_EXPR: \xc0(\x80|$), where $ also matches before a final newline */
			if (r >= 2 && (p[i + 1] == 0x80 || (r == 2 && p[i + 1] == '\n'))) { t_push(o, 0); i += 2; continue; }
			return -1;
		}
		if (c == 0xED && r >= 2 && p[i + 1] >= 0xA0) {
			/* CESU-8: ED [A0-AF] [80-BF] ED [B0-BF] [80-BF] (the last may be a final "\n" under $) */
			if (r >= 6 && p[i + 1] <= 0xAF && cont(p[i + 2]) && p[i + 3] == 0xED && p[i + 4] >= 0xB0 &&
			    p[i + 4] <= 0xBF && (cont(p[i + 5]) || (r == 6 && p[i + 5] == '\n'))) {
				uint32_t cp = ((uint32_t)(p[i + 1] & 0x0F) << 16) + ((uint32_t)(p[i + 2] & 0x3F) << 10) +
				              ((uint32_t)(p[i + 4] & 0x0F) << 6) + (p[i + 5] & 0x3F) + 0x10000;
				t_push(o, cp);
				i += 6;
				continue;
			}
			return -1; /* a lone surrogate */
		}
		int len;
		uint32_t cp;
		unsigned lo = 0x80, hi = 0xBF;
		if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
		else if (c >= 0xE0 && c <= 0xEF) {
			len = 3, cp = c & 0x0F;
			if (c == 0xE0) lo = 0xA0;
			if (c == 0xED) hi = 0x9F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			len = 4, cp = c & 0x07;
			if (c == 0xF0) lo = 0x90;
			if (c == 0xF4) hi = 0x8F;
		} else return -1;
		if (r < (size_t)len) return -1;
		if (p[i + 1] < lo || p[i + 1] > hi) return -1;
		for (int j = 1; j < len; j++) {
			if (!cont(p[i + j])) return -1;
			cp = cp << 6 | (p[i + j] & 0x3F);
		}
		t_push(o, cp);
		i += (size_t)len;
	}
	return 0;
}

/* ---- byte-level fixes ------------------------------------------------------------------- */

static int a0ish(unsigned char c) { return (c >= 0x80 && c <= 0x84) || (c >= 0x86 && c <= 0x9F) || (c >= 0xA1 && c <= 0xBF); }
static int contb(unsigned char c) { return c >= 0x80 && c <= 0xBF; }

/* chardata.ALTERED_UTF8_RE at p[i]: the match length, or 0 */
static size_t altered_at(const unsigned char *p, size_t n, size_t i)
{
	size_t r = n - i;
	unsigned c = p[i];
	if (r >= 2 && (c == 0xC2 || c == 0xC3 || c == 0xC5 || c == 0xCE || c == 0xD0 || c == 0xD9) && p[i + 1] == ' ')
		return 2;
	if (r >= 3 && (c == 0xE2 || c == 0xE3) && p[i + 1] == ' ' && a0ish(p[i + 2])) return 3;
	if (r >= 3 && c >= 0xE0 && c <= 0xE3 && a0ish(p[i + 1]) && p[i + 2] == ' ') return 3;
	if (r >= 4 && c == 0xF0) {
		unsigned b1 = p[i + 1], b2 = p[i + 2], b3 = p[i + 3];
		if (b1 == ' ' && contb(b2) && contb(b3)) return 4;
		if (contb(b1) && b2 == ' ' && contb(b3)) return 4;
		if (contb(b1) && contb(b2) && b3 == ' ') return 4;
	}
	return 0;
}

static int altered_search(const Bytes *b)
{
	for (size_t i = 0; i < b->n; i++)
		if (altered_at(b->v, b->n, i)) return 1;
	return 0;
}

static int starts(const unsigned char *p, size_t r, const char *s)
{
	size_t l = strlen(s);
	return r >= l && !memcmp(p, s, l);
}

/* fixes.restore_byte_a0 */
static void restore_byte_a0(Bytes *b)
{
	Bytes o = {0};
	for (size_t i = 0; i < b->n;) {
		/* A_GRAVE_WORD_RE: \xc3 (?! |quele|quela|quilo|s ) -> \xc3\xa0 + space */
		if (b->v[i] == 0xC3 && i + 1 < b->n && b->v[i + 1] == ' ') {
			const unsigned char *q = b->v + i + 2;
			size_t r = b->n - i - 2;
			if (!(starts(q, r, " ") || starts(q, r, "quele") || starts(q, r, "quela") || starts(q, r, "quilo") ||
			      starts(q, r, "s "))) {
				b_push(&o, 0xC3), b_push(&o, 0xA0), b_push(&o, ' ');
				i += 2;
				continue;
			}
		}
		b_push(&o, b->v[i++]);
	}
	for (size_t i = 0; i < o.n;) {
		size_t m = altered_at(o.v, o.n, i);
		if (!m) { i++; continue; }
		for (size_t j = i; j < i + m; j++)
			if (o.v[j] == ' ') o.v[j] = 0xA0;
		i += m;
	}
	free(b->v);
	*b = o;
}

/* chardata.LOSSY_UTF8_RE at p[i]: the match length, or 0 */
static size_t lossy_at(const unsigned char *p, size_t n, size_t i)
{
	size_t r = n - i;
	unsigned c = p[i];
#define SUB(x) ((x) == 0x1A)
#define SUBQ(x) ((x) == 0x1A || (x) == '?')
#define SUBC(x) ((x) == 0x1A || contb(x))
#define SUBQC(x) ((x) == 0x1A || (x) == '?' || contb(x))
	if (r >= 2 && c >= 0xC2 && c <= 0xDF && SUB(p[i + 1])) return 2;
	if (r >= 2 && (c == 0xC2 || c == 0xC3) && p[i + 1] == '?') return 2;
	if (r >= 6 && c == 0xED && p[i + 1] >= 0xA0 && p[i + 1] <= 0xAF && p[i + 3] == 0xED && p[i + 4] >= 0xB0 &&
	    p[i + 4] <= 0xBF) {
		if (SUBQ(p[i + 2]) && SUBQC(p[i + 5])) return 6;
		if (SUBQC(p[i + 2]) && SUBQ(p[i + 5])) return 6;
	}
	if (r >= 3 && c >= 0xE0 && c <= 0xEF) {
		if (SUBQ(p[i + 1]) && SUBC(p[i + 2])) return 3;
		if (SUBC(p[i + 1]) && SUBQ(p[i + 2])) return 3;
	}
	if (r >= 4 && c >= 0xF0 && c <= 0xF4) {
		unsigned b1 = p[i + 1], b2 = p[i + 2], b3 = p[i + 3];
		if (SUBQ(b1) && SUBC(b2) && SUBC(b3)) return 4;
		if (SUBC(b1) && SUBQ(b2) && SUBC(b3)) return 4;
		if (SUBC(b1) && SUBC(b2) && SUBQ(b3)) return 4;
	}
	if (c == 0x1A) return 1;
	return 0;
#undef SUB
#undef SUBQ
#undef SUBC
#undef SUBQC
}

/* fixes.replace_lossy_sequences: each match becomes the UTF-8 of U+FFFD */
static void replace_lossy(Bytes *b)
{
	Bytes o = {0};
	for (size_t i = 0; i < b->n;) {
		size_t m = lossy_at(b->v, b->n, i);
		if (m) {
			b_push(&o, 0xEF), b_push(&o, 0xBF), b_push(&o, 0xBD);
			i += m;
		} else {
			b_push(&o, b->v[i++]);
		}
	}
	free(b->v);
	*b = o;
}

/* ---- fix_encoding ----------------------------------------------------------------------------- */

static void fix_encoding(Txt *t);

/* chardata.UTF8_DETECTOR_RE at t[i] (class bits k): the match length, or 0 */
static size_t utf8_clue_at(const uint32_t *k, size_t n, size_t i)
{
	if (i > 0 && (k[i - 1] & STRICT)) return 0; /* the lookbehind */
	size_t j = i;
	for (;;) {
		size_t r = n - j;
		if (r >= 2 && (k[j] & F2) && (k[j + 1] & CONT)) j += 2;
		else if (r >= 3 && (k[j] & F3) && (k[j + 1] & CONT) && (k[j + 2] & CONT)) j += 3;
		else if (r >= 4 && (k[j] & F4) && (k[j + 1] & CONT) && (k[j + 2] & CONT) && (k[j + 3] & CONT)) j += 4;
		else break;
	}
	return j - i;
}

/* fixes.decode_inconsistent_utf8; returns whether the detector matched at all */
static int decode_inconsistent_utf8(Txt *t)
{
	uint32_t *k = l2_malloc((t->n ? t->n : 1) * sizeof(uint32_t));
	for (size_t i = 0; i < t->n; i++) k[i] = cls(t->v[i]);
	Txt o = {0};
	int found = 0;
	for (size_t i = 0; i < t->n;) {
		size_t m = utf8_clue_at(k, t->n, i);
		if (!m) { t_push(&o, t->v[i++]); continue; }
		found = 1;
		if (m < t->n && is_bad(t->v + i, m)) {
			Txt s = t_copy(t->v + i, m);
			fix_encoding(&s);
			t_append(&o, s.v, s.n);
			free(s.v);
		} else {
			t_append(&o, t->v + i, m);
		}
		i += m;
	}
	free(k);
	t_take(t, &o);
	return found;
}

static int has_c1(const Txt *t)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i] >= 0x80 && t->v[i] <= 0x9F) return 1;
	return 0;
}

/* fixes.fix_c1_controls: each C1 control as sloppy windows-1252 */
static void fix_c1_controls(Txt *t)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i] >= 0x80 && t->v[i] <= 0x9F) t->v[i] = ftfy_enc_high[1][t->v[i] - 0x80];
}

/* _fix_encoding_one_step_and_explain */
static void fix_encoding_step(Txt *t)
{
	if (!t->n) return;
	int ascii = 1;
	for (size_t i = 0; i < t->n; i++) ascii &= t->v[i] < 0x80;
	if (ascii || !is_bad(t->v, t->n)) return;
	Bytes b = {0};
	for (int e = 0; e < FTFY_NENC; e++) {
		if (encode(e, t, &b)) continue;
		if (e != MACROMAN && altered_search(&b)) restore_byte_a0(&b);
		if (ftfy_enc_sloppy[e]) replace_lossy(&b);
		Txt o = {0};
		if (!decode_utf8_variants(b.v, b.n, &o)) {
			free(b.v);
			t_take(t, &o);
			return;
		}
		free(o.v);
	}
	free(b.v);
	Txt o = t_copy(t->v, t->n);
	if (decode_inconsistent_utf8(&o) && !t_eq(&o, t)) {
		t_take(t, &o);
		return;
	}
	free(o.v);
	/* Latin-1 meant as windows-1252 (when all of it decodes strictly), else
	 * fix_c1_controls: both turn exactly the C1 controls into windows-1252 */
	if (has_c1(t)) fix_c1_controls(t);
}

static void fix_encoding(Txt *t)
{
	for (;;) {
		Txt prev = t_copy(t->v, t->n);
		fix_encoding_step(t);
		int same = t_eq(&prev, t);
		free(prev.v);
		if (same) return;
	}
}

void l2_ftfy_fix_encoding_u32(uint32_t **v, size_t *n, size_t *cap)
{
	Txt t = {*v, *n, *cap};
	fix_encoding(&t);
	*v = t.v, *n = t.n, *cap = t.cap;
}

/* ---- the other fixers -------------------------------------------------------------------------- */

static const struct { uint32_t c; const char *s; } ligatures[] = {
	{0x132, "IJ"}, {0x133, "ij"}, {0x149, "\xca\xbcn"}, {0x1C4, "D\xc5\xbd"}, {0x1C5, "D\xc5\xbe"},
	{0x1C6, "d\xc5\xbe"}, {0x1C7, "LJ"}, {0x1C8, "Lj"}, {0x1C9, "lj"}, {0x1CA, "NJ"}, {0x1CB, "Nj"},
	{0x1CC, "nj"}, {0x1F1, "DZ"}, {0x1F2, "Dz"}, {0x1F3, "dz"}, {0xFB00, "ff"}, {0xFB01, "fi"},
	{0xFB02, "fl"}, {0xFB03, "ffi"}, {0xFB04, "ffl"}, {0xFB05, "\xc5\xbft"}, {0xFB06, "st"},
};

static int is_control(uint32_t c)
{
	return c <= 8 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
	       c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

/* fix_character_width then uncurl_quotes on one character */
static void width_uncurl(Txt *o, uint32_t c)
{
	if (c >= 0xFF01 && c <= 0xFFEF)
		for (size_t k = 0; k < NELEM(ftfy_width); k++)
			if (ftfy_width[k][0] == c) {
				width_uncurl(o, ftfy_width[k][1]);
				if (ftfy_width[k][2]) width_uncurl(o, ftfy_width[k][2]);
				return;
			}
	if (c == 0x3000) c = ' ';
	if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B)) c = '\'';
	else if (c >= 0x201C && c <= 0x201F) c = '"';
	t_push(o, c);
}

/* fix_latin_ligatures, fix_character_width, uncurl_quotes: all per
 * character, each on the previous one's output ("\u0149" -> "\u02bcn" -> "'n") */
static void fix_chars(Txt *t)
{
	Txt o = {0};
	for (size_t i = 0; i < t->n; i++) {
		uint32_t c = t->v[i];
		int done = 0;
		if ((c >= 0x132 && c <= 0x1F3) || (c >= 0xFB00 && c <= 0xFB06))
			for (size_t k = 0; k < NELEM(ligatures); k++)
				if (ligatures[k].c == c) {
					Txt l = {0};
					t_push_utf8(&l, ligatures[k].s);
					for (size_t a = 0; a < l.n; a++) width_uncurl(&o, l.v[a]);
					free(l.v);
					done = 1;
					break;
				}
		if (!done) width_uncurl(&o, c);
	}
	t_take(t, &o);
}

/* the rest of fix_and_explain's fixers, in order: fix_line_breaks,
 * fix_surrogates, remove_terminal_escapes, remove_control_chars */
static void fix_lines_controls(Txt *t)
{
	Txt o = {0};
	for (size_t i = 0; i < t->n; i++) { /* fix_line_breaks */
		uint32_t c = t->v[i];
		if (c == '\r' && i + 1 < t->n && t->v[i + 1] == '\n') continue;
		if (c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85) c = '\n';
		t_push(&o, c);
	}
	t->n = 0;
	for (size_t i = 0; i < o.n; i++) { /* fix_surrogates */
		uint32_t c = o.v[i];
		if (c >= 0xD800 && c <= 0xDBFF && i + 1 < o.n && o.v[i + 1] >= 0xDC00 && o.v[i + 1] <= 0xDFFF) {
			t_push(t, 0x10000 + (c - 0xD800) * 0x400 + (o.v[i + 1] - 0xDC00));
			i++;
			continue;
		}
		t_push(t, c >= 0xD800 && c <= 0xDFFF ? 0xFFFD : c);
	}
	o.n = 0;
	for (size_t i = 0; i < t->n; i++) { /* remove_terminal_escapes: \033\[((?:\d|;)*)([a-zA-Z]) */
		uint32_t c = t->v[i];
		if (c == 0x1B && i + 1 < t->n && t->v[i + 1] == '[') {
			size_t j = i + 2;
			while (j < t->n && (py_decimal(t->v[j]) || t->v[j] == ';')) j++;
			if (j < t->n && is_ascii_letter(t->v[j])) { i = j; continue; }
		}
		t_push(&o, c);
	}
	t->n = 0;
	for (size_t i = 0; i < o.n; i++) /* remove_control_chars */
		if (!is_control(o.v[i])) t_push(t, o.v[i]);
	free(o.v);
}

/* fix_and_explain on one segment */
static void fix_segment(Txt *t, int unescape)
{
	for (;;) {
		Txt orig = t_copy(t->v, t->n);
		if (unescape) unescape_html(t);
		fix_encoding(t);
		fix_c1_controls(t);
		fix_chars(t);
		fix_lines_controls(t);
		nfc(t);
		int same = t_eq(&orig, t);
		free(orig.v);
		if (same) return;
	}
}

#define MAX_DECODE_LENGTH 1000000

void l2_ftfy_fix_text_u32(uint32_t **v, size_t *n, size_t *cap)
{
	Txt out = {0};
	int unescape = 1; /* unescape_html="auto": off from the first segment with '<' on */
	for (size_t pos = 0; pos < *n;) {
		size_t brk = pos;
		while (brk < *n && (*v)[brk] != '\n') brk++;
		brk = brk < *n ? brk + 1 : *n;
		if (brk - pos > MAX_DECODE_LENGTH) brk = pos + MAX_DECODE_LENGTH;
		Txt seg = t_copy(*v + pos, brk - pos);
		for (size_t i = 0; i < seg.n; i++)
			if (seg.v[i] == '<') unescape = 0;
		fix_segment(&seg, unescape);
		t_append(&out, seg.v, seg.n);
		free(seg.v);
		pos = brk;
	}
	if (!out.v) out.v = l2_malloc(sizeof(uint32_t)), out.cap = 1;
	free(*v);
	*v = out.v, *n = out.n, *cap = out.cap;
}

/* ---- UTF-8 wrappers ----------------------------------------------------------------------------- */

static int utf8_decode(const char *s, size_t len, Txt *u)
{
	const unsigned char *p = (const unsigned char *)s;
	if (len && decode_utf8_variants(p, len, u)) return -1;
	/* strict: no C0 80 or CESU-8 in the input */
	for (size_t i = 0; i < len; i++)
		if (p[i] == 0xC0 || (p[i] == 0xED && i + 1 < len && p[i + 1] >= 0xA0)) return -1;
	return 0;
}

static char *to_utf8(const Txt *t, size_t *outlen)
{
	char *s = l2_malloc(t->n * 4 + 1), *o = s;
	for (size_t i = 0; i < t->n; i++) {
		uint32_t c = t->v[i];
		if (c < 0x80) *o++ = (char)c;
		else if (c < 0x800) { *o++ = (char)(0xC0 | c >> 6); *o++ = (char)(0x80 | (c & 0x3F)); }
		else if (c < 0x10000) {
			*o++ = (char)(0xE0 | c >> 12); *o++ = (char)(0x80 | (c >> 6 & 0x3F)); *o++ = (char)(0x80 | (c & 0x3F));
		} else {
			*o++ = (char)(0xF0 | c >> 18); *o++ = (char)(0x80 | (c >> 12 & 0x3F));
			*o++ = (char)(0x80 | (c >> 6 & 0x3F)); *o++ = (char)(0x80 | (c & 0x3F));
		}
	}
	*o = 0;
	if (outlen) *outlen = (size_t)(o - s);
	return s;
}

static char *fix_utf8(const char *text, size_t len, size_t *outlen, int all)
{
	Txt t = {0};
	if (utf8_decode(text, len, &t)) { free(t.v); return NULL; }
	if (!t.v) t.v = l2_malloc(sizeof(uint32_t)), t.cap = 1;
	if (all) l2_ftfy_fix_text_u32(&t.v, &t.n, &t.cap);
	else fix_encoding(&t);
	char *s = to_utf8(&t, outlen);
	free(t.v);
	return s;
}

char *l2_ftfy_fix_text(const char *text, size_t len, size_t *outlen) { return fix_utf8(text, len, outlen, 1); }
char *l2_ftfy_fix_encoding(const char *text, size_t len, size_t *outlen) { return fix_utf8(text, len, outlen, 0); }
