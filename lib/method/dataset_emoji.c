/* dataset_emoji.c — the emoji dataset (dataset_build.h, l2_dataset_build_emoji): the npm
 * package emoji-datasource-google read through jansson. */
#include "method/dataset_build.h"
#include "core/util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *tone_name(const char *code)
{
	static const char *const codes[] = {"1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF"};
	static const char *const names[] = {"light skin tone", "medium-light skin tone", "medium skin tone",
					    "medium-dark skin tone", "dark skin tone"};
	for (int i = 0; i < 5; i++)
		if (!strcasecmp(code, codes[i])) return names[i];
	return NULL;
}

/* "1F3FB-1F3FF" -> ": light skin tone, dark skin tone"; NULL if unknown. */
static char *tone_suffix(const char *key)
{
	char buf[256] = ": ", part[16];
	const char *p = key;
	int first = 1;
	while (*p) {
		size_t l = strcspn(p, "-");
		if (l == 0 || l >= sizeof part) return NULL;
		memcpy(part, p, l);
		part[l] = 0;
		const char *t = tone_name(part);
		if (!t) return NULL;
		if (!first) strcat(buf, ", ");
		strcat(buf, t);
		first = 0;
		p += l;
		if (*p == '-') p++;
	}
	return l2_strdup(buf);
}

static char *lower_dup(const char *s)
{
	char *r = l2_strdup(s);
	for (char *p = r; *p; p++)
		if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
	return r;
}

static void emoji_captions(L2DatasetBuild *b, const char *key, json_t *e, const char *suffix)
{
	json_t *name = json_object_get(e, "name");
	const char *nm = json_string_value(name);
	char *base[64];
	int nb = 0;
	if (nm && *nm) base[nb++] = lower_dup(nm);
	json_t *sn = json_object_get(e, "short_names");
	size_t i;
	json_t *v;
	json_array_foreach(sn, i, v) {
		const char *s = json_string_value(v);
		if (!s || !*s || nb == 64) continue;
		char *c = lower_dup(s);
		for (char *p = c; *p; p++)
			if (*p == '_') *p = ' ';
		base[nb++] = c;
	}
	for (int j = 0; j < nb; j++) {
		size_t l = strlen(base[j]) + (suffix ? strlen(suffix) : 0) + 1;
		char *c = l2_malloc(l);
		snprintf(c, l, "%s%s", base[j], suffix ? suffix : "");
		l2_dataset_build_caption(b, key, c);
		free(c);
		free(base[j]);
	}
	if (!nb) l2_dataset_build_counts(b)->uncaptioned++;
}

static void emoji_attrs(L2DatasetBuild *b, const char *key, json_t *base, json_t *e)
{
	static const char *const fields[] = {"category", "subcategory"};
	for (int i = 0; i < 2; i++) {
		const char *s = json_string_value(json_object_get(base, fields[i]));
		if (s) l2_dataset_set_attr(l2_dataset_build_dataset(b), key, fields[i], s);
	}
	const char *u = json_string_value(json_object_get(e, "unified"));
	if (u) l2_dataset_set_attr(l2_dataset_build_dataset(b), key, "unified", u);
}

void l2_dataset_build_emoji(const char *out, const char *pkg, const L2BuildOptions *o)
{
	size_t l = strlen(pkg) + 64;
	char *jpath = l2_malloc(l), *ppath = l2_malloc(l), *imgdir = l2_malloc(l);
	snprintf(jpath, l, "%s/emoji.json", pkg);
	snprintf(ppath, l, "%s/package.json", pkg);
	snprintf(imgdir, l, "%s/img/google/64", pkg);
	if (!l2_file_exists(jpath)) l2_die("%s: no emoji.json (is this the emoji-datasource-google package?)", pkg);
	if (!l2_is_dir(imgdir)) l2_die("%s: missing (is this the emoji-datasource-google package?)", imgdir);
	json_error_t je;
	json_t *root = json_load_file(jpath, 0, &je);
	if (!root) l2_die("%s: line %d: %s", jpath, je.line, je.text);
	if (!json_is_array(root)) l2_die("%s: expected a JSON array of emoji", jpath);
	char source[128] = "emoji-datasource-google";
	json_t *pj = json_load_file(ppath, 0, &je);
	if (pj) {
		const char *ver = json_string_value(json_object_get(pj, "version"));
		if (ver) snprintf(source, sizeof source, "emoji-datasource-google %.64s", ver);
		json_decref(pj);
	}
	size_t total = 0, i;
	json_t *e;
	json_array_foreach(root, i, e) total += 1 + (o->skin_tones ? json_object_size(json_object_get(e, "skin_variations")) : 0);
	L2DatasetBuild *b = l2_dataset_build_open(out, o, source, imgdir);
	l2_store_set_meta(l2_dataset_store(l2_dataset_build_dataset(b)), "background", "ffffff");
	L2Progress p;
	l2_progress_start(&p, "emoji", "img", total);
	size_t missing = 0;
	json_array_foreach(root, i, e) {
		if (!json_is_object(e)) l2_die("%s: entry %zu is not an object", jpath, i);
		const char *img = json_string_value(json_object_get(e, "image"));
		if (!img || !*img || strchr(img, '/')) l2_die("%s: entry %zu has no valid \"image\"", jpath, i);
		json_t *has = json_object_get(e, "has_img_google");
		size_t pl = strlen(imgdir) + strlen(img) + 2;
		char *path = l2_malloc(pl);
		snprintf(path, pl, "%s/%s", imgdir, img);
		int present = (!has || json_is_true(has)) && l2_file_exists(path);
		free(path);
		l2_progress_add(&p, 1);
		if (!present) {
			missing++;
		} else if (l2_dataset_build_image(b, imgdir, img, NULL) >= 0) {
			emoji_captions(b, img, e, NULL);
			emoji_attrs(b, img, e, e);
			l2_dataset_build_tick(b);
		}
		if (!o->skin_tones) continue;
		const char *tk;
		json_t *var;
		json_object_foreach(json_object_get(e, "skin_variations"), tk, var) {
			l2_progress_add(&p, 1);
			const char *vimg = json_string_value(json_object_get(var, "image"));
			char *suffix = tone_suffix(tk);
			if (!vimg || !*vimg || strchr(vimg, '/') || !suffix) {
				free(suffix);
				missing++;
				continue;
			}
			json_t *vh = json_object_get(var, "has_img_google");
			pl = strlen(imgdir) + strlen(vimg) + 2;
			path = l2_malloc(pl);
			snprintf(path, pl, "%s/%s", imgdir, vimg);
			present = (!vh || json_is_true(vh)) && l2_file_exists(path);
			free(path);
			/* a variant falls on its base emoji's side of the split */
			if (!present) missing++;
			else if (l2_dataset_build_image(b, imgdir, vimg, img) >= 0) {
				emoji_captions(b, vimg, e, suffix);
				emoji_attrs(b, vimg, e, var);
				l2_dataset_build_tick(b);
			}
			free(suffix);
		}
	}
	l2_progress_end(&p);
	if (missing) l2_info("%s: %zu emoji without a Google 64x64 image left out", pkg, missing);
	l2_dataset_build_corpus_files(b);
	l2_dataset_build_finish(b);
	json_decref(root);
	free(jpath), free(ppath), free(imgdir);
}
