/* plot.c — line charts as PNG (see plot.h). */
#include "io/plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/font_table.h"
#include "io/image.h"

void l2_plot_color(int i, uint8_t rgb[3])
{
	static const uint8_t pal[12][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},
					   {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127},
					   {188, 189, 34},  {23, 190, 207}, {0, 0, 0},     {255, 187, 120}};
	memcpy(rgb, pal[((i % 12) + 12) % 12], 3);
}

static void put(L2Image *im, int x, int y, const uint8_t c[3])
{
	if (x >= 0 && y >= 0 && x < im->w && y < im->h) memcpy(im->data + ((size_t)y * im->w + x) * 3, c, 3);
}

static void line(L2Image *im, int x0, int y0, int x1, int y1, const uint8_t c[3])
{
	int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, e = dx + dy;
	for (;;) {
		put(im, x0, y0, c);
		if (x0 == x1 && y0 == y1) break;
		int e2 = 2 * e;
		if (e2 >= dy) e += dy, x0 += sx;
		if (e2 <= dx) e += dx, y0 += sy;
	}
}

/* The glyph of the UTF-8 character at *s (advancing s); '?' for others. */
static const unsigned char *glyph(const char **s)
{
	const unsigned char *p = (const unsigned char *)*s;
	int idx = '?' - FONT_FIRST;
	if (*p < 0x80) {
		if (*p >= FONT_FIRST && *p < FONT_FIRST + FONT_ASCII) idx = *p - FONT_FIRST;
		*s += 1;
	} else if ((*p & 0xe0) == 0xc0 && p[1]) {
		unsigned cp = (unsigned)(p[0] & 0x1f) << 6 | (p[1] & 0x3f);
		idx = cp == 0x3c3 ? FONT_ASCII : cp == 0x3bc ? FONT_ASCII + 1 : cp == 0x3b3 ? FONT_ASCII + 2 : idx;
		*s += 2;
	} else {
		*s += 1;
		while ((**s & 0xc0) == 0x80) *s += 1;
	}
	return font_glyphs[idx];
}

/* Text with its top-left corner at (x, y); returns the x after it. */
static int text(L2Image *im, int x, int y, const char *s, const uint8_t c[3])
{
	while (*s) {
		const unsigned char *g = glyph(&s);
		for (int r = 0; r < FONT_H; r++)
			for (int k = 0; k < FONT_W; k++)
				if (g[r] & (0x80 >> k)) put(im, x + k, y + r, c);
		x += FONT_W;
	}
	return x;
}

static int text_width(const char *s)
{
	int n = 0;
	while (*s) glyph(&s), n++;
	return n * FONT_W;
}

static void fmt_num(char *buf, size_t len, double v)
{
	if (v == 0) snprintf(buf, len, "0");
	else if (fabs(v) >= 1e5 || fabs(v) < 1e-3) snprintf(buf, len, "%.2e", v);
	else snprintf(buf, len, "%.4g", v);
}

void l2_plot_png(const char *path, const L2PlotPanel *p, int np, int W, int PH)
{
	int H = np * PH + FONT_H + 6;
	const int ml = 64, mr = 8, mt = FONT_H + 6, mb = 6;
	L2Image im;
	l2_image_alloc(&im, W, H, L2_MODE_RGB);
	memset(im.data, 255, (size_t)W * H * 3);
	const uint8_t grey[3] = {225, 225, 225}, black[3] = {0, 0, 0}, dark[3] = {90, 90, 90};
	double x0 = INFINITY, x1 = -INFINITY;
	for (int k = 0; k < np; k++)
		for (int j = 0; j < p[k].ns; j++)
			for (int i = 0; i < p[k].s[j].n; i++)
				if (isfinite(p[k].s[j].x[i])) x0 = fmin(x0, p[k].s[j].x[i]), x1 = fmax(x1, p[k].s[j].x[i]);
	if (!(x1 > x0)) x0 = isfinite(x0) ? x0 : 0, x1 = x0 + 1;
	for (int k = 0; k < np; k++) {
		const L2PlotPanel *pk = &p[k];
		int top = k * PH + mt, bot = (k + 1) * PH - mb, left = ml, right = W - mr;
		double lo = INFINITY, hi = -INFINITY;
		for (int j = 0; j < pk->ns; j++)
			for (int i = 0; i < pk->s[j].n; i++) {
				double v = pk->s[j].y[i];
				if (!isfinite(v) || (pk->logy && v <= 0)) continue;
				v = pk->logy ? log10(v) : v;
				lo = fmin(lo, v), hi = fmax(hi, v);
			}
		if (!isfinite(lo)) lo = 0, hi = 1;
		if (!(hi > lo)) lo -= 0.5, hi += 0.5;
		for (int g = 0; g <= 4; g++) {
			int y = top + (int)((double)g * (bot - top) / 4);
			line(&im, left, y, right, y, grey);
		}
		line(&im, left, top, left, bot, black), line(&im, left, bot, right, bot, black);
		line(&im, left, top, right, top, black), line(&im, right, top, right, bot, black);
		char buf[64];
		fmt_num(buf, sizeof buf, pk->logy ? pow(10, hi) : hi);
		text(&im, left - 4 - text_width(buf), top, buf, dark);
		fmt_num(buf, sizeof buf, pk->logy ? pow(10, lo) : lo);
		text(&im, left - 4 - text_width(buf), bot - FONT_H, buf, dark);
		int tx = text(&im, left, top - FONT_H - 2, pk->title ? pk->title : "", black);
		if (pk->logy) tx = text(&im, tx, top - FONT_H - 2, " (log)", dark);
		tx += 2 * FONT_W;
		for (int j = 0; j < pk->ns; j++) {
			const L2PlotSeries *s = &pk->s[j];
			if (s->label) {
				if (tx + 3 * FONT_W + text_width(s->label) > right) continue;
				for (int t = 0; t < 3; t++) line(&im, tx, top - FONT_H / 2 - 2 + t, tx + 2 * FONT_W - 2, top - FONT_H / 2 - 2 + t, s->rgb);
				tx = text(&im, tx + 2 * FONT_W, top - FONT_H - 2, s->label, s->rgb) + FONT_W;
			}
			int px = 0, py = 0, have = 0;
			for (int i = 0; i < s->n; i++) {
				double v = s->y[i];
				if (!isfinite(v) || !isfinite(s->x[i]) || (pk->logy && v <= 0)) {
					have = 0;
					continue;
				}
				v = pk->logy ? log10(v) : v;
				int x = left + (int)lround((s->x[i] - x0) / (x1 - x0) * (right - left));
				int y = bot - (int)lround((v - lo) / (hi - lo) * (bot - top));
				if (have) line(&im, px, py, x, y, s->rgb);
				else put(&im, x, y, s->rgb);
				px = x, py = y, have = 1;
			}
		}
	}
	char a[32], b[32];
	fmt_num(a, sizeof a, x0), fmt_num(b, sizeof b, x1);
	text(&im, ml, np * PH + 2, a, dark);
	text(&im, W - mr - text_width(b), np * PH + 2, b, dark);
	text(&im, W / 2 - text_width("step") / 2, np * PH + 2, "step", dark);
	l2_image_save_png(path, &im);
	l2_image_free(&im);
}
