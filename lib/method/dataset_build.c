/* dataset_build.c — the resumable dataset builder and the image-folder source (see
 * dataset_build.h; the emoji source is dataset_emoji.c). */
#include "method/dataset_build.h"
#include "io/image.h"
#include "core/lock.h"
#include "core/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void l2_build_defaults(L2BuildOptions *o)
{
	memset(o, 0, sizeof *o);
	o->test_fraction = 0.1;
	o->checkpoint = 256;
	o->skin_tones = 1;
	o->corpus_source = "extra";
}

struct L2DatasetBuild {
	const L2BuildOptions *o;
	char *final, *partial;
	L2Lock *lock; /* FINAL.lock, held from start to rename: one build at a time */
	L2Dataset *ds;
	L2BuildCounts n;
	long since_commit;
};

L2Dataset *l2_dataset_build_dataset(L2DatasetBuild *b) { return b->ds; }
L2BuildCounts *l2_dataset_build_counts(L2DatasetBuild *b) { return &b->n; }

static int is_link(const char *path)
{
	struct stat st;
	return !lstat(path, &st) && S_ISLNK(st.st_mode);
}

/* PATH must be a folder holding an l2 store (data.mdb), not a link: what a
 * build may write into or remove.  Dies naming WHAT otherwise. */
static void expect_store_dir(const char *path, const char *what)
{
	char f[4096];
	struct stat st;
	snprintf(f, sizeof f, "%s/data.mdb", path);
	if (lstat(path, &st) || !S_ISDIR(st.st_mode) || lstat(f, &st) || !S_ISREG(st.st_mode))
		l2_die("%s: not %s: it is not an l2 store (no data.mdb), and is left alone", path, what);
}

/* --force replaces DATASET only when it is an l2 dataset store: a typo
 * must not wipe a folder of photos (or the source folder itself). */
static void expect_replaceable(const char *path)
{
	char f[4096];
	struct stat st;
	snprintf(f, sizeof f, "%s/data.mdb", path);
	if (lstat(path, &st) || !S_ISDIR(st.st_mode) || lstat(f, &st) || !S_ISREG(st.st_mode))
		l2_die("%s: exists and is not an l2 dataset store: --force replaces only a dataset (move or remove it "
		       "yourself)", path);
	l2_dataset_close(l2_dataset_open(path, L2_STORE_RDONLY)); /* dies when it is another kind of store */
	/* and nobody is writing into it (a feature import holds DB.lock inside) */
	DIR *d = opendir(path);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (l < 6 || strcmp(e->d_name + l - 5, ".lock")) continue;
		snprintf(f, sizeof f, "%s/%s", path, e->d_name);
		long pid = l2_lock_holder(f);
		if (pid) {
			closedir(d);
			l2_die("%s: a write into it is running (pid %ld); --force does not replace it while it runs", path, pid);
		}
	}
	if (d) closedir(d);
}

/* Remove a store folder this build made or replaced: its LMDB files, then
 * the folder; anything else found in it is kept (with the folder). */
static void remove_store_dir(const char *path)
{
	char f[4096];
	snprintf(f, sizeof f, "%s/data.mdb", path);
	if (unlink(f) && errno != ENOENT) l2_die_errno("%s: cannot remove", f);
	snprintf(f, sizeof f, "%s/lock.mdb", path);
	unlink(f);
	if (rmdir(path) && errno != ENOENT) l2_warn("%s: kept: it holds files that are not the store's", path);
}

/* A setting the build was started with must not change on resume. */
static void pin_meta(L2Store *st, const char *partial, const char *name, const char *opt, const char *v)
{
	char *prev = l2_store_get_meta(st, name);
	if (prev && strcmp(prev, v)) l2_die("%s: was started with %s %s, not %s", partial, opt, prev, v);
	free(prev);
	l2_store_set_meta(st, name, v);
}

L2DatasetBuild *l2_dataset_build_open(const char *out, const L2BuildOptions *o, const char *source, const char *root)
{
	L2DatasetBuild *b = l2_calloc(1, sizeof *b);
	b->o = o;
	b->final = l2_strdup(out);
	size_t n = strlen(out);
	while (n > 1 && b->final[n - 1] == '/') b->final[--n] = 0;
	b->partial = l2_malloc(n + 16);
	snprintf(b->partial, n + 16, "%s.partial", b->final);
	/* the lock first: a .partial of a build that is running is not
	 * "interrupted", and two builds must never fill it together */
	char lockpath[4096];
	snprintf(lockpath, sizeof lockpath, "%s.lock", b->final);
	b->lock = l2_lock_take(lockpath, b->final, "a build");
	if (l2_file_exists(b->final) || is_link(b->final)) {
		if (!o->force) l2_die("%s: exists (use --force to replace it)", b->final);
		expect_replaceable(b->final);
	}
	if (l2_store_dir_unstarted(b->partial)) {
		/* killed before LMDB wrote anything: there is nothing to resume or lose */
		if (o->resume) l2_info("%s: the interrupted build had written nothing; building from the start", b->partial);
	} else if (l2_file_exists(b->partial) || is_link(b->partial)) {
		expect_store_dir(b->partial, "an interrupted build");
		if (!o->resume)
			l2_die("%s: an interrupted build is there (continue it with --resume, or remove it)", b->partial);
	} else if (o->resume) {
		l2_info("%s: nothing to resume; building from the start", b->partial);
	}
	b->ds = l2_dataset_open(b->partial, L2_STORE_CREATE);
	L2Store *st = l2_dataset_store(b->ds);
	char v[64];
	snprintf(v, sizeof v, "%llu", (unsigned long long)o->seed);
	pin_meta(st, b->partial, "seed", "--seed", v);
	snprintf(v, sizeof v, "%.17g", o->test_fraction);
	pin_meta(st, b->partial, "test_fraction", "--test-fraction", v);
	if (o->background) pin_meta(st, b->partial, "background", "--background", o->background);
	l2_store_set_meta(st, "source", source);
	l2_store_set_meta(st, "root", root);
	l2_store_set_meta(st, "state", "building");
	l2_store_commit(st);
	return b;
}

void l2_dataset_build_tick(L2DatasetBuild *b)
{
	if (++b->since_commit >= b->o->checkpoint) {
		l2_store_commit(l2_dataset_store(b->ds));
		b->since_commit = 0;
	}
}

int l2_dataset_build_image(L2DatasetBuild *b, const char *root, const char *rel, const char *group)
{
	if (b->o->resume && l2_dataset_has_image(b->ds, rel)) {
		b->n.kept++;
		return 0;
	}
	size_t pl = strlen(root) + strlen(rel) + 2;
	char *path = l2_malloc(pl);
	snprintf(path, pl, "%s/%s", root, rel);
	char err[300];
	unsigned char *buf;
	size_t len;
	L2Image img;
	/* the file's bytes are stored as they are, once they decode */
	int ok = l2_image_read_file(path, &buf, &len, err, sizeof err) == 0;
	if (ok) {
		ok = l2_image_load_mem(buf, len, &img, err, sizeof err) == 0;
		if (ok) l2_image_free(&img);
		else free(buf);
	}
	if (!ok) {
		if (!b->o->skip_bad) l2_die("%s: %s", path, err);
		l2_warn("%s: %s (skipped)", path, err);
		free(path);
		b->n.bad++;
		return -1;
	}
	L2Split s = l2_split_for(group ? group : rel, b->o->test_fraction, b->o->seed);
	int r = l2_dataset_put_image(b->ds, rel, buf, len, s, group);
	free(buf);
	free(path);
	if (r) b->n.added++;
	else b->n.kept++;
	return r;
}

void l2_dataset_build_caption(L2DatasetBuild *b, const char *key, const char *cap)
{
	if (l2_dataset_add_caption(b->ds, key, cap)) b->n.captions_added++;
	char *c = l2_strdup(cap);
	l2_caption_clean(c);
	int r = l2_dataset_add_corpus(b->ds, c, "caption");
	if (r > 0) b->n.corpus_added++;
	else if (r < 0 && *c) b->n.corpus_long++;
	free(c);
}

void l2_dataset_build_corpus_files(L2DatasetBuild *b)
{
	for (int i = 0; i < b->o->ncorpus; i++) {
		char **lines;
		size_t n = l2_read_lines(b->o->corpus[i], &lines);
		/* corpus lines are text the encoders must read later: refused now */
		for (size_t j = 0; j < n; j++)
			if (!l2_utf8_valid(lines[j], strlen(lines[j])))
				l2_die("%s: line %zu: not valid UTF-8", b->o->corpus[i], j + 1);
		L2Progress p;
		l2_progress_start(&p, "corpus", "lines", n);
		for (size_t j = 0; j < n; j++) {
			int r = l2_dataset_add_corpus(b->ds, lines[j], b->o->corpus_source);
			if (r > 0) b->n.corpus_added++;
			else if (r < 0 && l2_caption_clean(lines[j])) b->n.corpus_long++;
			l2_progress_add(&p, 1);
		}
		l2_progress_end(&p);
		l2_free_lines(lines, n);
	}
}

void l2_dataset_build_finish(L2DatasetBuild *b)
{
	l2_dataset_finish(b->ds);
	uint64_t n = l2_dataset_count(b->ds, L2_SPLIT_ALL), te = l2_dataset_count(b->ds, L2_SPLIT_TEST);
	uint64_t nc = l2_store_count(l2_dataset_store(b->ds), "corpus");
	l2_dataset_close(b->ds);
	if (n == 0) {
		remove_store_dir(b->partial);
		l2_die("%s: no images to build a dataset from", b->final);
	}
	if (l2_file_exists(b->final) || is_link(b->final)) {
		/* checked again: DATASET may have appeared or changed during the build */
		if (!b->o->force)
			l2_die("%s: appeared during the build and is not replaced without --force; the finished build is %s",
			       b->final, b->partial);
		expect_replaceable(b->final);
		/* swap the two folders in one step (DATASET is never missing), then
		 * remove the replaced store, now at .partial */
		if (renameat2(AT_FDCWD, b->partial, AT_FDCWD, b->final, RENAME_EXCHANGE) == 0) {
			remove_store_dir(b->partial);
		} else {
			if (errno != EINVAL && errno != ENOSYS) l2_die_errno("%s: cannot replace with %s", b->final, b->partial);
			/* a filesystem without RENAME_EXCHANGE: move it aside under a
			 * name of this process's own */
			size_t l = strlen(b->final) + 48;
			char *aside = l2_malloc(l);
			snprintf(aside, l, "%s.replaced.%ld", b->final, (long)getpid());
			if (renameat2(AT_FDCWD, b->final, AT_FDCWD, aside, RENAME_NOREPLACE))
				l2_die_errno("%s: cannot move aside to %s", b->final, aside);
			if (rename(b->partial, b->final)) l2_die_errno("%s: cannot rename to %s", b->partial, b->final);
			remove_store_dir(aside);
			free(aside);
		}
	} else if (renameat2(AT_FDCWD, b->partial, AT_FDCWD, b->final, RENAME_NOREPLACE) &&
		   (errno != EINVAL || rename(b->partial, b->final))) {
		l2_die_errno("%s: cannot rename to %s", b->partial, b->final);
	}
	l2_lock_release(b->lock);
	b->lock = NULL;
	l2_info("%s: %llu images (%llu train, %llu test; %llu added now%s), %llu uncaptioned, corpus %llu lines%s",
		b->final, (unsigned long long)n, (unsigned long long)(n - te), (unsigned long long)te,
		(unsigned long long)b->n.added, b->o->resume ? ", rest resumed" : "", (unsigned long long)b->n.uncaptioned,
		(unsigned long long)nc, b->n.corpus_long ? " (some lines over 511 bytes left out)" : "");
	if (b->n.bad) l2_warn("%llu bad images skipped", (unsigned long long)b->n.bad);
	free(b->final);
	free(b->partial);
	free(b);
}

/* ---- an image folder, with a captions TSV ------------------------------------------ */

typedef struct {
	char *path, *caption;
	size_t line;
} CapLine;

static int cap_cmp(const void *a, const void *b)
{
	const CapLine *x = a, *y = b;
	int c = strcmp(x->path, y->path);
	return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* The lines of TSV as (path, caption, line number), sorted by path then line; every line
 * is checked before any is used.  Lines without a TAB that are blank are skipped. */
static size_t read_captions(const char *tsv, CapLine **out)
{
	/* static: still reachable (not "leaked") when a later error exits */
	static CapLine *caps;
	static char **lines;
	size_t n = l2_read_lines(tsv, &lines), ncap = 0;
	for (size_t i = 0; i < n; i++) {
		/* captions are text the encoders must read later: refused now */
		if (!l2_utf8_valid(lines[i], strlen(lines[i]))) l2_die("%s: line %zu: not valid UTF-8", tsv, i + 1);
		char *t = strchr(lines[i], '\t'), *p = lines[i];
		if (!t && l2_caption_clean(lines[i])) l2_die("%s: line %zu: expected 'relative/path<TAB>caption'", tsv, i + 1);
		while (t && p[0] == '.' && p[1] == '/') p += 2;
		if (t && p == t) l2_die("%s: line %zu: empty path", tsv, i + 1);
	}
	caps = l2_malloc((n ? n : 1) * sizeof *caps);
	for (size_t i = 0; i < n; i++) {
		char *t = strchr(lines[i], '\t');
		if (!t) {
			free(lines[i]);
			continue;
		}
		*t = 0;
		char *p = lines[i];
		while (p[0] == '.' && p[1] == '/') p += 2;
		caps[ncap].path = l2_strdup(p);
		caps[ncap].caption = l2_strdup(t + 1);
		caps[ncap].line = i + 1;
		ncap++;
		free(lines[i]);
	}
	free(lines);
	lines = NULL;
	qsort(caps, ncap, sizeof *caps, cap_cmp);
	*out = caps;
	return ncap;
}

void l2_dataset_build_folder(const char *out, const char *dir, const char *captions_tsv, const L2BuildOptions *o)
{
	if (!l2_is_dir(dir)) l2_die("%s: not a directory", dir);
	CapLine *caps = NULL;
	size_t ncap = captions_tsv ? read_captions(captions_tsv, &caps) : 0;
	char **paths;
	L2ImageWalk walk;
	size_t n = l2_image_walk(dir, &paths, &walk, o->skip_bad);
	if (n == 0) l2_die("%s: no PNG or JPEG images in it", dir);
	L2DatasetBuild *b = l2_dataset_build_open(out, o, captions_tsv ? "tsv" : "folder", dir);
	L2Progress p;
	l2_progress_start(&p, "images", "img", n);
	size_t ci = 0, orphans = 0;
	const char *first_orphan = NULL;
	for (size_t i = 0; i < n; i++) {
		/* captions are sorted by path as the images are: merge */
		while (ci < ncap && strcmp(caps[ci].path, paths[i]) < 0) {
			if (!first_orphan) first_orphan = caps[ci].path;
			orphans++;
			ci++;
		}
		int r = l2_dataset_build_image(b, dir, paths[i], NULL);
		size_t c0 = ci;
		while (ci < ncap && !strcmp(caps[ci].path, paths[i])) {
			if (r >= 0) l2_dataset_build_caption(b, paths[i], caps[ci].caption);
			ci++;
		}
		if (r >= 0 && ci == c0) { /* none in the TSV: any from a resumed part? */
			char **cv;
			size_t nc = l2_dataset_captions(b->ds, paths[i], &cv);
			if (!nc) b->n.uncaptioned++;
			l2_dataset_free_strings(cv, nc);
		}
		if (r > 0) l2_dataset_build_tick(b);
		l2_progress_add(&p, 1);
	}
	l2_progress_end(&p);
	for (; ci < ncap; ci++, orphans++)
		if (!first_orphan) first_orphan = caps[ci].path;
	if (orphans)
		l2_warn("%s: %zu caption lines name images not in %s (first: %s)", captions_tsv, orphans, dir, first_orphan);
	char left_out[300];
	l2_image_walk_describe(&walk, left_out, sizeof left_out);
	if (*left_out) l2_info("%s: left out: %s", dir, left_out);
	l2_dataset_build_corpus_files(b);
	l2_dataset_build_finish(b);
	for (size_t i = 0; i < ncap; i++) free(caps[i].path), free(caps[i].caption);
	free(caps);
	l2_dataset_free_strings(paths, n);
}
