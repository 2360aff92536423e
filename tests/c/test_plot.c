/* test_plot.c — lib/io/plot.c: a chart is a PNG of the asked size with its series drawn
 * in their colours (gaps at non-finite values, log axes skipping non-positive values),
 * and the font covers what the trainers write (ASCII, σ). */
#include "io/image.h"
#include "io/plot.h"
#include "core/util.h"

#include "check.h"

#include <unistd.h>

static int count_rgb(const L2Image *im, const uint8_t c[3])
{
	int n = 0;
	for (size_t i = 0; i < (size_t)im->w * im->h; i++) n += !memcmp(im->data + 3 * i, c, 3);
	return n;
}

static void test_chart(void)
{
	char path[256], err[256];
	snprintf(path, sizeof path, "/tmp/l2-test-plot-%d.png", (int)getpid());
	double x[50], y[50], z[50], w[50];
	for (int i = 0; i < 50; i++) x[i] = i * 10, y[i] = exp(-i / 10.0), z[i] = i == 20 ? NAN : sin(i / 5.0), w[i] = 0.5 * cos(i / 7.0);
	L2PlotSeries a = {"mse σ>0.1", x, y, 50, {200, 0, 0}}, b = {"u", x, z, 50, {0, 0, 200}}, c = {NULL, x, w, 50, {0, 150, 0}};
	L2PlotPanel p[2] = {{"first (log)", 1, &a, 1}, {"second", 0, (L2PlotSeries[]){b, c}, 2}};
	p[1].s = (L2PlotSeries[]){b, c};
	l2_plot_png(path, p, 2, 400, 150);
	if (getenv("L2_PLOT_KEEP")) return;
	L2Image im;
	CHECK(l2_image_load(path, &im, err, sizeof err) == 0);
	CHECK(im.w == 400 && im.h == 2 * 150 + 12 + 6);
	const uint8_t red[3] = {200, 0, 0}, blue[3] = {0, 0, 200}, green[3] = {0, 150, 0};
	int nr = count_rgb(&im, red), nb = count_rgb(&im, blue), ng = count_rgb(&im, green);
	printf("# pixels: red %d, blue %d, green %d\n", nr, nb, ng);
	CHECK(nr > 300 && nb > 300 && ng > 200); /* the curves and the legend text */
	l2_image_free(&im);
	unlink(path);
	uint8_t k[3], k2[3];
	l2_plot_color(0, k), l2_plot_color(12, k2);
	CHECK(!memcmp(k, k2, 3));
}

int main(void)
{
	RUN(test_chart);
	return check_done();
}
