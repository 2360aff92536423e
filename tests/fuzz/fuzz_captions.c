/* fuzz_captions.c — the captions TSV and corpus readers of `l2-dataset build
 * --captions TSV --corpus FILE` (lib/method/dataset_build.h), which the
 * workflow pipelines run on a user's captions file.
 *
 * The input is a captions TSV and a corpus file: a little-endian u16 length,
 * that many bytes of TSV, the rest the corpus file.  Both are written to
 * files and a dataset is built from a fixed folder of four tiny PNGs (made
 * once, at start) with them, as the tool does; the dataset is then read back.
 *
 * The readers are checked against a specification written out here
 * independently (schemas/dataset.md, man/l2-dataset.1), not only for
 * crashes:
 *   - a file is refused when a line holds a NUL byte or is not UTF-8; a TSV
 *     also when a line without a TAB is not blank, or a line's path is empty
 *     once leading "./" are removed; everything else is accepted;
 *   - lines end at LF, with any CRs and LFs at their end removed; a caption
 *     (or corpus line) is cleaned: runs of control bytes, DEL and spaces
 *     become one space, none at either end;
 *   - each image gets the non-empty cleaned captions of the lines naming it,
 *     in file order, each once; lines naming no image are left out;
 *   - the corpus holds every cleaned caption of an image and then every
 *     cleaned corpus line of 1 to 511 bytes, once, tagged with where it was
 *     first seen ("caption" or "extra");
 *   - meta counts the images with captions and the corpus lines.
 * A refusal the specification does not expect, an acceptance it does not, or
 * a dataset that differs from it is a finding (abort), as is anything the
 * other harnesses count. */
#include "fuzz.h"
#include "core/util.h"
#include "io/image.h"
#include "io/store.h"
#include "method/dataset.h"
#include "method/dataset_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The folder's images, in bytewise order of their paths: a folder walk that
 * sorted name by name ("a" before "a-b.png") would give another order, and
 * captions merged by path would go astray. */
static const char *const IMAGES[] = {"a-b.png", "a.png", "a/x.png", "\xc3\xa9 t.png"};
enum { NIMAGES = 4, MAX_KEY = 511 };

static char imgdir[512], dsout[512], partial[600], lockfile[600];

static void init(void)
{
	snprintf(imgdir, sizeof imgdir, "%s/images", l2_fuzz_scratch());
	snprintf(dsout, sizeof dsout, "%s/ds.lmdb", l2_fuzz_scratch());
	snprintf(partial, sizeof partial, "%s.partial", dsout);
	snprintf(lockfile, sizeof lockfile, "%s.lock", dsout);
	l2_mkdir_p(imgdir);
	char sub[600];
	snprintf(sub, sizeof sub, "%s/a", imgdir);
	l2_mkdir_p(sub);
	uint8_t px[2 * 2 * 3];
	for (int i = 0; i < NIMAGES; i++) {
		for (int j = 0; j < 12; j++) px[j] = (uint8_t)(37 * i + 11 * j);
		L2Image img = {.w = 2, .h = 2, .channels = 3, .mode = L2_MODE_RGB, .data = px};
		char path[700];
		snprintf(path, sizeof path, "%s/%s", imgdir, IMAGES[i]);
		l2_image_save_png(path, &img);
	}
	/* a dataset of a few KiB: LMDB's map need not reserve the default GiB */
	l2_store_set_initial_mapsize((size_t)1 << 20);
}

/* ---- the specification ------------------------------------------------------ */

typedef struct {
	char **v;
	size_t n;
} Lines;

static void lines_free(Lines *l)
{
	for (size_t i = 0; i < l->n; i++) free(l->v[i]);
	free(l->v);
}

/* RFC 3629: shortest forms only, no surrogates, nothing above U+10FFFF. */
static int utf8_ok(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned c = s[i];
		size_t len;
		unsigned cp, min;
		if (c < 0x80) { i++; continue; }
		if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F, min = 0x80;
		else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F, min = 0x800;
		else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07, min = 0x10000;
		else return 0;
		if (i + len > n) return 0;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xC0) != 0x80) return 0;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) return 0;
		i += len;
	}
	return 1;
}

/* The lines of a file's bytes; 0 when the file is refused (a NUL, not UTF-8). */
static int split_lines(const uint8_t *p, size_t n, Lines *ls)
{
	ls->v = malloc((n + 1) * sizeof *ls->v);
	ls->n = 0;
	int ok = 1;
	for (size_t a = 0; a < n;) {
		size_t e = a;
		while (e < n && p[e] != '\n') e++;
		size_t len = e - a;
		if (memchr(p + a, 0, len)) ok = 0;
		while (len && (p[a + len - 1] == '\r' || p[a + len - 1] == '\n')) len--;
		if (!utf8_ok(p + a, len)) ok = 0;
		char *l = malloc(len + 1);
		memcpy(l, p + a, len);
		l[len] = 0;
		ls->v[ls->n++] = l;
		a = e + 1;
	}
	return ok;
}

static int blank_byte(unsigned char c) { return c < 0x20 || c == 0x7f || c == ' '; }

/* s cleaned into a new string. */
static char *clean(const char *s)
{
	size_t n = strlen(s), o = 0;
	char *r = malloc(n + 1);
	for (size_t i = 0; i < n;) {
		if (blank_byte((unsigned char)s[i])) { i++; continue; }
		if (o) r[o++] = ' ';
		while (i < n && !blank_byte((unsigned char)s[i])) r[o++] = s[i++];
	}
	r[o] = 0;
	return r;
}

typedef struct {
	Lines caps[NIMAGES]; /* each image's captions, in order */
	char **corpus;       /* "text\tsource", sorted by text */
	size_t ncorpus;
} Expected;

static void add_unique(Lines *l, char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i], s)) {
			free(s);
			return;
		}
	l->v = realloc(l->v, (l->n + 1) * sizeof *l->v);
	l->v[l->n++] = s;
}

static void corpus_add(Expected *x, Lines *seen, const char *text, const char *source)
{
	size_t len = strlen(text);
	if (len == 0 || len > MAX_KEY) return;
	size_t before = seen->n;
	add_unique(seen, strdup(text));
	if (seen->n == before) return;
	char *e = malloc(len + strlen(source) + 2);
	sprintf(e, "%s\t%s", text, source);
	x->corpus = realloc(x->corpus, (x->ncorpus + 1) * sizeof *x->corpus);
	x->corpus[x->ncorpus++] = e;
}

static int by_text(const void *a, const void *b)
{
	const unsigned char *x = *(unsigned char *const *)a, *y = *(unsigned char *const *)b;
	for (;; x++, y++) { /* up to the TAB: the text alone decides */
		unsigned cx = *x == '\t' ? 0 : *x, cy = *y == '\t' ? 0 : *y;
		if (cx != cy || !cx) return (int)cx - (int)cy;
	}
}

/* What the build must make of TSV and CORPUS; 0 when it must refuse them. */
static int expect(const uint8_t *tsv, size_t ntsv, const uint8_t *corp, size_t ncorp, Expected *x)
{
	memset(x, 0, sizeof *x);
	Lines t, c, seen = {0};
	int ok = split_lines(tsv, ntsv, &t) & split_lines(corp, ncorp, &c);
	for (size_t i = 0; ok && i < t.n; i++) {
		char *tab = strchr(t.v[i], '\t'), *p = t.v[i];
		if (!tab) {
			char *cl = clean(p);
			ok = !*cl;
			free(cl);
			continue;
		}
		while (p[0] == '.' && p[1] == '/') p += 2;
		if (p == tab) ok = 0;
	}
	if (ok) {
		for (int k = 0; k < NIMAGES; k++)
			for (size_t i = 0; i < t.n; i++) {
				char *tab = strchr(t.v[i], '\t'), *p = t.v[i];
				if (!tab) continue;
				while (p[0] == '.' && p[1] == '/') p += 2;
				if ((size_t)(tab - p) != strlen(IMAGES[k]) || memcmp(p, IMAGES[k], (size_t)(tab - p))) continue;
				char *cl = clean(tab + 1);
				if (!*cl) {
					free(cl);
					continue;
				}
				corpus_add(x, &seen, cl, "caption");
				add_unique(&x->caps[k], cl);
			}
		for (size_t i = 0; i < c.n; i++) {
			char *cl = clean(c.v[i]);
			corpus_add(x, &seen, cl, "extra");
			free(cl);
		}
		if (x->ncorpus) qsort(x->corpus, x->ncorpus, sizeof *x->corpus, by_text);
	}
	lines_free(&t);
	lines_free(&c);
	lines_free(&seen);
	return ok;
}

static void expected_free(Expected *x)
{
	for (int k = 0; k < NIMAGES; k++) lines_free(&x->caps[k]);
	for (size_t i = 0; i < x->ncorpus; i++) free(x->corpus[i]);
	free(x->corpus);
}

/* ---- the check ---------------------------------------------------------------- */

static L2_NORETURN void differ(const char *what, const char *got, const char *want)
{
	fprintf(stderr, "fuzz_captions: the dataset differs from the specification: %s: got \"%s\", expected \"%s\"\n",
		what, got, want);
	abort();
}

typedef struct {
	const Expected *x;
	size_t i;
} CorpusWalk;

static int corpus_cb(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	CorpusWalk *w = ctx;
	char got[MAX_KEY + 64];
	snprintf(got, sizeof got, "%.*s\t%.*s", (int)klen, (const char *)key, (int)(vlen < 32 ? vlen : 32),
		 (const char *)val);
	if (w->i >= w->x->ncorpus) differ("a corpus line more", got, "");
	if (strcmp(got, w->x->corpus[w->i])) differ("corpus line", got, w->x->corpus[w->i]);
	w->i++;
	return 0;
}

static void check_meta(L2Store *st, const char *name, size_t want)
{
	char *v = l2_store_get_meta(st, name), w[32];
	snprintf(w, sizeof w, "%zu", want);
	if (!v || strcmp(v, w)) differ(name, v ? v : "(none)", w);
	free(v);
}

static void check(const Expected *x)
{
	L2Dataset *ds = l2_dataset_open(dsout, L2_STORE_RDONLY);
	char **keys;
	size_t n = l2_dataset_keys(ds, L2_SPLIT_ALL, &keys), ncaptioned = 0;
	if (n != NIMAGES) differ("image count", n ? keys[0] : "", IMAGES[0]);
	for (int k = 0; k < NIMAGES; k++) {
		if (strcmp(keys[k], IMAGES[k])) differ("image key", keys[k], IMAGES[k]);
		char **caps;
		size_t nc = l2_dataset_captions(ds, keys[k], &caps);
		const Lines *want = &x->caps[k];
		for (size_t i = 0; i < nc || i < want->n; i++)
			if (i >= nc || i >= want->n || strcmp(caps[i], want->v[i]))
				differ(keys[k], i < nc ? caps[i] : "(no more captions)", i < want->n ? want->v[i] : "(none)");
		ncaptioned += nc > 0;
		l2_dataset_free_strings(caps, nc);
	}
	l2_dataset_free_strings(keys, n);
	L2Store *st = l2_dataset_store(ds);
	CorpusWalk w = {x, 0};
	l2_store_iter(st, "corpus", corpus_cb, &w);
	if (w.i != x->ncorpus) differ("corpus ends early, before", x->corpus[w.i], "");
	check_meta(st, "captions", ncaptioned);
	check_meta(st, "corpus", x->ncorpus);
	l2_dataset_close(ds);
}

/* ---- one input ------------------------------------------------------------------ */

static int expect_refusal;

static void fuzz_one(const uint8_t *data, size_t size)
{
	L2FuzzInput in = {data, size};
	size_t ntsv, ncorp;
	const uint8_t *tsv = l2_fuzz_bytes(&in, l2_fuzz_u16(&in), &ntsv);
	const uint8_t *corp = l2_fuzz_bytes(&in, in.n, &ncorp);
	Expected x;
	expect_refusal = !expect(tsv, ntsv, corp, ncorp, &x);
	const char *tsvpath = l2_strdup(l2_fuzz_write_file("captions.tsv", tsv, ntsv));
	const char *corpus[] = {l2_fuzz_write_file("corpus.txt", corp, ncorp)};
	/* what the previous input left (a refused build leaves its .partial) */
	l2_fuzz_remove(dsout);
	l2_fuzz_remove(partial);
	l2_fuzz_remove(lockfile);
	L2BuildOptions o;
	l2_build_defaults(&o);
	o.test_fraction = 0.5;
	o.corpus = corpus;
	o.ncorpus = 1;
	l2_dataset_build_folder(dsout, imgdir, tsvpath, &o);
	if (expect_refusal) {
		fprintf(stderr, "fuzz_captions: the build accepted files the specification refuses\n");
		abort();
	}
	check(&x);
	expected_free(&x);
	free((void *)tsvpath);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (l2_fuzz_run(fuzz_one, init, data, size) && !expect_refusal) {
		fprintf(stderr, "fuzz_captions: the build refused files the specification accepts (the message above "
				"with L2_FUZZ_VERBOSE=1)\n");
		abort();
	}
	return 0;
}
