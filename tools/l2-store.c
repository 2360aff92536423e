/* l2-store — inspect l2 stores and move feature streams in and out of them.
 *
 *   l2-store info data.lmdb                      meta and sub-databases with counts
 *   l2-store ls data.lmdb captions               keys, one per line
 *   l2-store get data.lmdb captions 1f600.png   one value, raw
 *   l2-pseudo ... | l2-store put-features data.lmdb feat.pseudo
 *   l2-store get-features data.lmdb feat.pseudo -o pseudo.l2f
 *
 * Store conventions: schemas/store.md; feature streams: schemas/l2fs.md. */
#include "io/store.h"
#include "io/stream.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
	const char *out;
	int resume, null, incomplete;
	long batch;
} Options;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: l2-store [options] info STORE\n"
		"       l2-store [options] ls STORE DB\n"
		"       l2-store [options] get STORE DB KEY\n"
		"       l2-store [options] put-features STORE DB [STREAM]\n"
		"       l2-store [options] get-features STORE DB\n"
		"Inspect an l2 store (an LMDB directory) and move feature streams in and out of it.\n\n"
		"  info          meta entries and every sub-database with its record count (TSV)\n"
		"  ls            the keys of sub-database DB in key order, one per line (TAB, LF, CR\n"
		"                and backslash escaped as \\t \\n \\r \\\\)\n"
		"  get           the value of KEY in DB, byte for byte (binary is not written to a terminal)\n"
		"  put-features  store the records of a feature stream (STREAM or standard input) in DB,\n"
		"                keyed by record key; creates STORE and DB when missing and records the\n"
		"                stream's kind and dimension in meta (DB.kind, DB.dim, ...); refuses a\n"
		"                stream of another kind or dimension than DB holds; one writer per DB\n"
		"                (a second is refused, naming the first's pid); DB.complete is 0 until\n"
		"                the last record is in\n"
		"  get-features  DB's records as a feature stream, in key order; refuses a DB whose\n"
		"                write is incomplete (--incomplete reads it anyway)\n\n"
		"  -o, --output FILE   write here instead of standard output (atomically)\n"
		"      --resume        put-features: keep records whose key DB already has (default: replace)\n"
		"      --batch N       put-features: records per write transaction (default 1000)\n"
		"      --incomplete    get-features: read a sub-database whose write was interrupted\n"
		"                      (or is still running) instead of refusing it\n"
		"  -0, --null          ls: end keys with NUL instead of newline, unescaped\n"
		"      --progress      progress on stderr even when it is not a terminal\n"
		"      --quiet         no summary line\n"
		"  -h, --help          this help\n"
		"      --version       print the version\n"
		"Formats: schemas/store.md, schemas/l2fs.md; see l2-store(1).\n");
}

enum { OPT_RESUME = L2_OPT_COMMON_END, OPT_BATCH, OPT_INCOMPLETE };

static void parse_options(int argc, char **argv, Options *o)
{
	static const struct option longopts[] = {
		L2_COMMON_LONGOPTS,
		{"output", required_argument, 0, 'o'},
		{"resume", no_argument, 0, OPT_RESUME},
		{"batch", required_argument, 0, OPT_BATCH},
		{"null", no_argument, 0, '0'},
		{"incomplete", no_argument, 0, OPT_INCOMPLETE},
		{0, 0, 0, 0}};
	memset(o, 0, sizeof *o);
	o->out = "-";
	o->batch = 1000;
	int c;
	while ((c = getopt_long(argc, argv, "ho:0", longopts, NULL)) != -1) {
		if (l2_common_option(c, optarg, usage)) continue;
		switch (c) {
		case 'o': o->out = optarg; break;
		case '0': o->null = 1; break;
		case OPT_RESUME: o->resume = 1; break;
		case OPT_INCOMPLETE: o->incomplete = 1; break;
		case OPT_BATCH: o->batch = l2_parse_long(optarg, "--batch", 1, 100000000); break;
		default: l2_usage_error(usage, "unknown option");
		}
	}
}

static int has_db(L2Store *s, const char *db)
{
	char **dbs;
	size_t n = l2_store_dbs(s, &dbs);
	int found = 0;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(dbs[i], db)) found = 1;
		free(dbs[i]);
	}
	free(dbs);
	return found;
}

static void need_db(L2Store *s, const char *db)
{
	if (!has_db(s, db)) l2_die("%s: no sub-database \"%s\" (l2-store info lists them)", l2_store_path(s), db);
}

/* ---- info, ls, get ---------------------------------------------------------- */

typedef struct {
	FILE *f;
	int null;
} PrintCtx;

static int print_meta(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	FILE *f = ((PrintCtx *)ctx)->f;
	fputs("meta\t", f);
	l2_put_tsv_field(f, key, klen);
	fputc('\t', f);
	l2_put_tsv_field(f, val, vlen);
	fputc('\n', f);
	return 0;
}

static void cmd_info(const char *path, const Options *o)
{
	L2Store *s = l2_store_open(path, L2_STORE_RDONLY);
	L2OFile *out = l2_ofile_open(o->out, 0);
	FILE *f = l2_ofile_fp(out);
	fprintf(f, "store\t%s\n", path);
	PrintCtx c = {f, 0};
	l2_store_iter(s, "meta", print_meta, &c);
	char **dbs;
	size_t n = l2_store_dbs(s, &dbs);
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "db\t%s\t%llu\n", dbs[i], (unsigned long long)l2_store_count(s, dbs[i]));
		free(dbs[i]);
	}
	free(dbs);
	l2_ofile_commit(out);
	l2_store_close(s);
}

static int print_key(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	PrintCtx *c = ctx;
	if (c->null) {
		fwrite(key, 1, klen, c->f);
		fputc(0, c->f);
	} else {
		l2_put_tsv_field(c->f, key, klen);
		fputc('\n', c->f);
	}
	return 0;
}

static void cmd_ls(const char *path, const char *db, const Options *o)
{
	L2Store *s = l2_store_open(path, L2_STORE_RDONLY);
	need_db(s, db);
	L2OFile *out = l2_ofile_open(o->out, 0);
	PrintCtx c = {l2_ofile_fp(out), o->null};
	l2_store_iter(s, db, print_key, &c);
	l2_ofile_commit(out);
	l2_store_close(s);
}

/* Text: valid UTF-8 without control characters other than TAB, LF, CR. */
static int is_text(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = p[i];
		if (c < 0x80) {
			if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return 0;
			if (c == 0x7f) return 0;
			i++;
			continue;
		}
		int len = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
		if (!len || c >= 0xf5 || i + (size_t)len > n) return 0;
		for (int j = 1; j < len; j++)
			if ((p[i + (size_t)j] & 0xc0) != 0x80) return 0;
		i += (size_t)len;
	}
	return 1;
}

static void cmd_get(const char *path, const char *db, const char *key, const Options *o)
{
	L2Store *s = l2_store_open(path, L2_STORE_RDONLY);
	need_db(s, db);
	void *v;
	size_t vl;
	if (!l2_store_get(s, db, key, strlen(key), &v, &vl)) l2_die("%s: %s: no key \"%s\"", path, db, key);
	L2OFile *out = l2_ofile_open(o->out, !is_text(v, vl));
	l2_ofile_write(out, v, vl);
	l2_ofile_commit(out);
	free(v);
	l2_store_close(s);
}

/* ---- features ------------------------------------------------------------------ */

/* meta "DB.field" */
static char *db_meta(L2Store *s, const char *db, const char *field)
{
	char k[512];
	snprintf(k, sizeof k, "%s.%s", db, field);
	return l2_store_get_meta(s, k);
}

static void set_db_meta(L2Store *s, const char *db, const char *field, const char *value)
{
	char k[512];
	snprintf(k, sizeof k, "%s.%s", db, field);
	l2_store_set_meta(s, k, value);
}

static void check_db_name(const char *db)
{
	if (!*db || strlen(db) > 200) l2_usage_error(usage, "invalid sub-database name '%s'", db);
	if (!strcmp(db, "meta")) l2_usage_error(usage, "\"meta\" holds the store's metadata, not features");
	for (const char *p = db; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f) l2_usage_error(usage, "invalid sub-database name '%s'", db);
}

static void cmd_put_features(const char *path, const char *db, const char *in, const Options *o)
{
	check_db_name(db);
	L2StreamReader *r = l2_stream_open(in); /* a bad stream creates no store */
	const L2StreamHeader *h = l2_stream_header(r);
	const char *name = l2_stream_name(r);
	if (!strcmp(h->kind, L2_KIND_NEIGHBORS))
		l2_die("%s: a neighbors stream carries k neighbours per record; put-features stores one vector per key", name);
	/* nor does one whose first record is bad (cut short, an empty key ...) */
	L2Record rec;
	int more = l2_stream_next(r, &rec);
	int created = !l2_file_exists(path);
	L2Store *s = l2_store_open(path, L2_STORE_CREATE);
	char activity[300];
	snprintf(activity, sizeof activity, "a write into %s", db);
	l2_store_lock_db(s, db, activity);
	/* The description is checked or written in the transaction of the
	 * first batch: a failed write leaves neither behind, and a writer of
	 * the same sub-database that is not l2 sees both or neither. */
	l2_store_begin(s);
	if (created) l2_store_set_kind(s, "features", 1);
	char *kind = db_meta(s, db, "kind"), *dims = db_meta(s, db, "dim"), *dtype = db_meta(s, db, "dtype"),
	     *norm = db_meta(s, db, "normalized");
	int f16;
	if (kind || dims) {
		if (!kind || !dims) l2_die("%s: %s: meta has only one of %s.kind and %s.dim", path, db, db, db);
		uint32_t d = (uint32_t)strtoul(dims, NULL, 10);
		if (strcmp(kind, h->kind) || d != h->dim)
			l2_die("%s: %s holds %s vectors of dimension %u; %s is %s of dimension %u", path, db, kind, d, name,
			       h->kind, h->dim);
		if (dtype && strcmp(dtype, "f32") && strcmp(dtype, "f16"))
			l2_die("%s: %s: unknown %s.dtype \"%s\"", path, db, db, dtype);
		f16 = dtype && !strcmp(dtype, "f16");
		if (norm && !strcmp(norm, "1") && !(h->flags & L2FS_NORMALIZED)) set_db_meta(s, db, "normalized", "0");
	} else {
		if (has_db(s, db) && l2_store_count(s, db))
			l2_die("%s: %s holds records but no %s.kind/%s.dim in meta: not a feature sub-database", path, db, db,
			       db);
		char d[16];
		snprintf(d, sizeof d, "%u", h->dim);
		f16 = h->dtype == L2_DTYPE_F16;
		set_db_meta(s, db, "kind", h->kind);
		set_db_meta(s, db, "dim", d);
		set_db_meta(s, db, "dtype", f16 ? "f16" : "f32");
		set_db_meta(s, db, "normalized", h->flags & L2FS_NORMALIZED ? "1" : "0");
	}
	/* until the last record is in: an interrupted write shows */
	set_db_meta(s, db, "complete", "0");
	l2_store_set_batch(s, (size_t)o->batch);

	size_t vbytes = (size_t)h->dim * (f16 ? 2 : 4);
	unsigned char *val = l2_malloc(vbytes);
	uint64_t stored = 0, skipped = 0;
	L2Progress prog;
	l2_progress_start(&prog, "records", "rec", h->count == L2FS_UNTIL_END ? 0 : h->count);
	for (; more; more = l2_stream_next(r, &rec)) {
		if (rec.key_len == 0) l2_die("%s: record %llu has an empty key; a store needs keys", name,
					     (unsigned long long)l2_stream_records_read(r));
		if (rec.key_len > l2_store_max_key(s))
			l2_die("%s: key \"%.40s...\" is %u bytes; store keys are at most %zu", name, rec.key, rec.key_len,
			       l2_store_max_key(s));
		for (uint32_t j = 0; j < h->dim; j++) {
			if (f16) l2_put_le16(val + 2 * j, l2_float_to_half(rec.vec[j]));
			else memcpy(val + 4 * j, &rec.vec[j], 4);
		}
		if (l2_store_put(s, db, rec.key, rec.key_len, val, vbytes, o->resume)) skipped++;
		else stored++;
		l2_progress_add(&prog, 1);
	}
	l2_progress_end(&prog);
	if (!l2_stream_normalized(r)) set_db_meta(s, db, "normalized", "0"); /* a later segment was not */
	set_db_meta(s, db, "complete", "1");
	l2_store_commit(s);
	uint64_t held = l2_store_count(s, db); /* a key repeated in the stream is stored twice, held once */
	l2_store_close(s);
	l2_stream_close(r);
	l2_info("%s: %s: %llu record%s stored, %llu kept (already present); it holds %llu", path, db,
		(unsigned long long)stored, stored == 1 ? "" : "s", (unsigned long long)skipped, (unsigned long long)held);
	free(val);
	free(kind);
	free(dims);
	free(dtype);
	free(norm);
}

typedef struct {
	L2StreamWriter *w;
	const char *path, *db;
	uint32_t dim;
	int f16;
	float *vec;
	char *key;
	size_t keycap;
	L2Progress *prog;
} GetCtx;

static int emit_feature(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	GetCtx *c = ctx;
	size_t want = (size_t)c->dim * (c->f16 ? 2 : 4);
	if (vlen != want)
		l2_die("%s: %s: key \"%.*s\": value is %zu bytes, expected %zu (%u × %s)", c->path, c->db, (int)(klen > 60 ? 60 : klen),
		       (const char *)key, vlen, want, c->dim, c->f16 ? "f16" : "f32");
	const unsigned char *p = val;
	for (uint32_t j = 0; j < c->dim; j++) {
		if (c->f16) c->vec[j] = l2_half_to_float(l2_le16(p + 2 * j));
		else memcpy(&c->vec[j], p + 4 * j, 4);
	}
	l2_stream_write_len(c->w, key, (uint32_t)klen, c->vec);
	l2_progress_add(c->prog, 1);
	return 0;
}

static void cmd_get_features(const char *path, const char *db, const Options *o)
{
	L2Store *s = l2_store_open(path, L2_STORE_RDONLY);
	if (!has_db(s, db) && !o->incomplete && l2_store_db_writer(s, db))
		l2_die("%s: %s is being written and has nothing committed yet; wait for it to end", path, db);
	need_db(s, db);
	char *kind = db_meta(s, db, "kind"), *dims = db_meta(s, db, "dim"), *dtype = db_meta(s, db, "dtype"),
	     *norm = db_meta(s, db, "normalized");
	if (!kind || !dims)
		l2_die("%s: %s is not a feature sub-database (meta has no %s.kind / %s.dim)", path, db, db, db);
	char *complete = db_meta(s, db, "complete");
	if (complete && strcmp(complete, "1") && !o->incomplete) {
		long pid = l2_store_db_writer(s, db);
		if (pid > 0)
			l2_die("%s: %s is being written (pid %ld) and is not complete yet; wait for it to end, or pass "
			       "--incomplete to read what is there", path, db, pid);
		if (pid < 0)
			l2_die("%s: %s is being written and is not complete yet; wait for it to end, or pass "
			       "--incomplete to read what is there", path, db);
		l2_die("%s: %s is incomplete (%llu records): the write that filled it was interrupted; rerun it "
		       "(put-features --resume) to complete it, or pass --incomplete to read what is there",
		       path, db, (unsigned long long)l2_store_count(s, db));
	}
	free(complete);
	char *end;
	unsigned long d = strtoul(dims, &end, 10);
	if (*end || d == 0 || d > L2FS_MAX_DIM) l2_die("%s: invalid %s.dim \"%s\" in meta", path, db, dims);
	if (dtype && strcmp(dtype, "f32") && strcmp(dtype, "f16"))
		l2_die("%s: %s: unknown %s.dtype \"%s\"", path, db, db, dtype);
	GetCtx c = {0};
	c.path = path;
	c.db = db;
	c.dim = (uint32_t)d;
	c.f16 = dtype && !strcmp(dtype, "f16");
	c.vec = l2_malloc(d * sizeof(float));
	L2Progress prog;
	l2_progress_start(&prog, "records", "rec", l2_store_count(s, db));
	c.prog = &prog;
	c.w = l2_stream_create_dtype(o->out, kind, c.dim, norm && !strcmp(norm, "1") ? L2FS_NORMALIZED : 0, 0,
				     L2FS_UNTIL_END, c.f16 ? L2_DTYPE_F16 : L2_DTYPE_F32);
	l2_store_iter(s, db, emit_feature, &c);
	l2_progress_end(&prog);
	l2_stream_writer_close(c.w);
	l2_store_close(s);
	free(c.vec);
	free(kind);
	free(dims);
	free(dtype);
	free(norm);
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	Options o;
	parse_options(argc, argv, &o);
	int n = argc - optind;
	char **a = argv + optind;
	if (n < 1) l2_usage_error(usage, "missing command");
	const char *cmd = a[0];
	struct { const char *name; int min, max; } cmds[] = {
		{"info", 1, 1}, {"ls", 2, 2}, {"get", 3, 3}, {"put-features", 2, 3}, {"get-features", 2, 2}};
	int k = -1;
	for (int i = 0; i < 5; i++)
		if (!strcmp(cmd, cmds[i].name)) k = i;
	if (k < 0) l2_usage_error(usage, "unknown command '%s'", cmd);
	if (n - 1 < cmds[k].min || n - 1 > cmds[k].max) l2_usage_error(usage, "%s: wrong number of arguments", cmd);
	if (o.resume && k != 3) l2_usage_error(usage, "--resume goes with put-features");
	if (o.null && k != 1) l2_usage_error(usage, "--null goes with ls");
	if (o.incomplete && k != 4) l2_usage_error(usage, "--incomplete goes with get-features");
	if (k == 3 && strcmp(o.out, "-")) l2_usage_error(usage, "put-features writes into STORE; -o does not apply");
	switch (k) {
	case 0: cmd_info(a[1], &o); break;
	case 1: cmd_ls(a[1], a[2], &o); break;
	case 2: cmd_get(a[1], a[2], a[3], &o); break;
	case 3: cmd_put_features(a[1], a[2], n > 3 ? a[3] : "-", &o); break;
	case 4: cmd_get_features(a[1], a[2], &o); break;
	}
	return 0;
}
