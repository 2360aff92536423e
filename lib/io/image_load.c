/* image_load.c — images from files and memory (format by content, the codecs of
 * image_png.c and image_jpeg.c), and the image files of a directory tree. */
#include "io/image_priv.h"
#include "core/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- loading ------------------------------------------------------------------ */

static int image_magic(const unsigned char *buf, size_t len)
{
	return (len >= 8 && !memcmp(buf, "\x89PNG\r\n\x1a\n", 8)) || (len >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF);
}

int l2_image_load_mem(const unsigned char *buf, size_t len, L2Image *img, char *err, size_t errlen)
{
	memset(img, 0, sizeof *img);
	if (errlen) err[0] = 0;
	if (len == 0) {
		snprintf(err, errlen, "empty file");
		return -1;
	}
	if (len >= 8 && !memcmp(buf, "\x89PNG\r\n\x1a\n", 8)) return l2_image_png_decode(buf, len, img, err, errlen);
	if (len >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF) return l2_image_jpeg_decode(buf, len, img, err, errlen);
	snprintf(err, errlen, "not a PNG or JPEG file");
	return -1;
}

int l2_image_read_file(const char *path, unsigned char **out, size_t *outlen, char *err, size_t errlen)
{
	int use_stdin = !strcmp(path, "-");
	/* O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused
	 * below); it does not change how regular files read */
	int fd = use_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st)) memset(&st, 0, sizeof st);
	const char *refuse = S_ISDIR(st.st_mode)			 ? "is a directory"
			     : !use_stdin && !S_ISREG(st.st_mode) ? "not a regular file (a FIFO, device or socket)"
			     : !use_stdin && (uint64_t)st.st_size > L2_IMAGE_MAX_FILE ? "larger than an image file can be"
										     : NULL;
	if (refuse) {
		if (!use_stdin) close(fd);
		snprintf(err, errlen, "%s", refuse);
		return -1;
	}
	if (!use_stdin) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	size_t limit = L2_IMAGE_MAX_FILE; /* standard input, or a file that grows while read */
	size_t cap = !use_stdin && st.st_size > 0 ? (size_t)st.st_size + 1 : 1 << 16, len = 0;
	unsigned char *buf = l2_malloc(cap);
	int sniffed = 0;
	for (;;) {
		if (len > limit) {
			snprintf(err, errlen, "larger than an image file can be (over %llu bytes)", (unsigned long long)limit);
			free(buf);
			if (!use_stdin) close(fd);
			return -1;
		}
		if (len == cap) buf = l2_realloc(buf, cap *= 2);
		/* the magic first: a file that is not an image is refused after 8
		 * bytes (as PIL does), not after reading it whole */
		if (len >= 8 && !sniffed) {
			sniffed = 1;
			if (!image_magic(buf, len)) {
				snprintf(err, errlen, "not a PNG or JPEG file");
				free(buf);
				if (!use_stdin) close(fd);
				return -1;
			}
		}
		ssize_t r = read(fd, buf + len, (len < 8 ? 8 : cap) - len);
		if (r < 0 && errno == EINTR) continue;
		if (r < 0) {
			snprintf(err, errlen, "%s", strerror(errno));
			free(buf);
			if (!use_stdin) close(fd);
			return -1;
		}
		if (r == 0) break;
		len += (size_t)r;
	}
	if (!use_stdin) close(fd);
	*out = buf;
	*outlen = len;
	return 0;
}

int l2_image_load(const char *path, L2Image *img, char *err, size_t errlen)
{
	memset(img, 0, sizeof *img);
	unsigned char *buf;
	size_t len;
	if (l2_image_read_file(path, &buf, &len, err, errlen)) return -1;
	int rc = l2_image_load_mem(buf, len, img, err, errlen);
	free(buf);
	return rc;
}

/* ---- files --------------------------------------------------------------------------- */

int l2_image_path_ok(const char *path)
{
	const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
	if (!dot || (slash && dot < slash)) return 0;
	return !strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg");
}

typedef struct {
	char **v;
	size_t n, cap;
	L2ImageWalk info;
	int keep_going;
	dev_t dev[64];
	ino_t ino[64];
	int depth;
} Walk;

static void walk_dir(Walk *wk, const char *root, const char *rel)
{
	char *full;
	if (*rel) {
		full = l2_malloc(strlen(root) + strlen(rel) + 2);
		sprintf(full, "%s/%s", root, rel);
	} else {
		full = l2_strdup(root);
	}
	DIR *d = opendir(full);
	if (!d && wk->keep_going && *rel) {
		l2_warn("%s: %s (skipped)", full, strerror(errno));
		wk->info.unreadable_dirs++;
		free(full);
		return;
	}
	if (!d) l2_die("%s: %s", full, strerror(errno));
	struct stat st;
	if (fstat(dirfd(d), &st)) l2_die("%s: %s", full, strerror(errno));
	/* a symlink back to an ancestor would loop forever: skip it */
	for (int i = 0; i < wk->depth; i++)
		if (wk->dev[i] == st.st_dev && wk->ino[i] == st.st_ino) {
			closedir(d);
			free(full);
			return;
		}
	if (wk->depth >= 64) l2_die("%s: directories nested too deeply", full);
	wk->dev[wk->depth] = st.st_dev;
	wk->ino[wk->depth] = st.st_ino;
	wk->depth++;
	struct dirent *e;
	while ((errno = 0, e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
		char *r = l2_malloc(strlen(rel) + strlen(e->d_name) + 2);
		if (*rel) sprintf(r, "%s/%s", rel, e->d_name);
		else strcpy(r, e->d_name);
		char *p = l2_malloc(strlen(full) + strlen(e->d_name) + 2);
		sprintf(p, "%s/%s", full, e->d_name);
		struct stat es;
		int ok = stat(p, &es) == 0; /* follows symlinks; dangling ones count as skipped */
		free(p);
		if (ok && S_ISDIR(es.st_mode)) {
			walk_dir(wk, root, r);
			free(r);
		} else if (ok && S_ISREG(es.st_mode) && l2_image_path_ok(r)) {
			if (wk->n == wk->cap) wk->v = l2_realloc(wk->v, (wk->cap = wk->cap ? 2 * wk->cap : 64) * sizeof *wk->v);
			wk->v[wk->n++] = r;
		} else {
			if (l2_image_path_ok(r)) wk->info.special++;
			else wk->info.not_images++;
			free(r);
		}
	}
	if (errno) l2_die("%s: %s", full, strerror(errno));
	wk->depth--;
	closedir(d);
	free(full);
}

static int cmp_bytes(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

size_t l2_image_walk(const char *dir, char ***paths, L2ImageWalk *w, int keep_going)
{
	Walk wk = {0};
	wk.keep_going = keep_going;
	walk_dir(&wk, dir, "");
	if (wk.n) qsort(wk.v, wk.n, sizeof *wk.v, cmp_bytes);
	*paths = wk.v;
	if (w) *w = wk.info;
	return wk.n;
}

size_t l2_image_list_dir(const char *dir, char ***paths, size_t *skipped)
{
	L2ImageWalk w;
	size_t n = l2_image_walk(dir, paths, &w, 0);
	if (skipped) *skipped = w.not_images + w.special;
	return n;
}

void l2_image_walk_describe(const L2ImageWalk *w, char *buf, size_t n)
{
	size_t o = 0;
	buf[0] = 0;
	if (w->not_images && o < n)
		o += (size_t)snprintf(buf + o, n - o, "%zu file%s that %s not .png/.jpg/.jpeg", w->not_images,
				      w->not_images == 1 ? "" : "s", w->not_images == 1 ? "is" : "are");
	if (w->special && o < n)
		o += (size_t)snprintf(buf + o, n - o, "%s%zu image name%s that %s not a regular file (FIFO, device or "
				      "dangling link)", o ? ", " : "", w->special, w->special == 1 ? "" : "s",
				      w->special == 1 ? "is" : "are");
	if (w->unreadable_dirs && o < n)
		snprintf(buf + o, n - o, "%s%zu unreadable director%s", o ? ", " : "", w->unreadable_dirs,
			 w->unreadable_dirs == 1 ? "y" : "ies");
}
