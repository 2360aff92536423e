/* plot.h — line charts as PNG files, for the training curves the trainers write
 * (loss.png), with no plotting library: panels stacked vertically, each with a
 * title, its y range at the left, a legend, optional log y axis; one x range
 * for all panels, written under the last.  Labels use a 7x12 bitmap font
 * (font_table.h, generated from DejaVu Sans Mono by tools/gen_font.py). */
#ifndef L2_PLOT_H
#define L2_PLOT_H

#include <stdint.h>

typedef struct {
	const char *label;   /* legend text (UTF-8: ASCII and σ μ γ), or NULL */
	const double *x, *y; /* n points in x order; non-finite y leave a gap */
	int n;
	uint8_t rgb[3];
} L2PlotSeries;

typedef struct {
	const char *title;
	int logy;            /* log10 y axis; values <= 0 are skipped */
	const L2PlotSeries *s;
	int ns;
} L2PlotPanel;

/* Write the panels (width x panel_h pixels each, stacked) atomically to path. */
void l2_plot_png(const char *path, const L2PlotPanel *p, int np, int width, int panel_h);
/* Colour i of a palette of 12 distinguishable colours (wraps around). */
void l2_plot_color(int i, uint8_t rgb[3]);

#endif
