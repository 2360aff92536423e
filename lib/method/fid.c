/* fid.c — streaming feature statistics, the Fréchet distance through
 * symmetric eigendecompositions, and KID (see fid.h). */
#include "method/fid.h"
#include "core/hash.h"
#include "core/util.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* LAPACK from OpenBLAS (Fortran interface) */
extern void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
		    double *work, const int *lwork, int *iwork, const int *liwork, int *info);

/* ---- statistics ---------------------------------------------------------------- */

void l2_fid_stats_init(L2FidStats *s, int dim)
{
	memset(s, 0, sizeof *s);
	s->dim = dim;
	s->mean = l2_calloc((size_t)dim, sizeof(double));
	s->m2 = l2_calloc(l2_mul_size((size_t)dim, (size_t)dim), sizeof(double));
	s->block = l2_malloc(l2_mul_size(L2_FID_BLOCK, (size_t)dim) * sizeof(double));
}

/* Merge the pending block: its mean mb and centred scatter Mb (dsyrk), then
 * Chan's update M2 += Mb + delta delta^T * n nb / (n + nb). */
static void flush(L2FidStats *s)
{
	size_t nb = s->pending, d = (size_t)s->dim;
	if (!nb) return;
	double *mb = l2_calloc(d, sizeof(double));
	for (size_t i = 0; i < nb; i++)
		for (size_t j = 0; j < d; j++) mb[j] += s->block[i * d + j];
	for (size_t j = 0; j < d; j++) mb[j] /= (double)nb;
	for (size_t i = 0; i < nb; i++)
		for (size_t j = 0; j < d; j++) s->block[i * d + j] -= mb[j];
	cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)nb, 1.0, s->block, (int)d, 1.0, s->m2, (int)d);
	double n = (double)s->n, tot = n + (double)nb;
	if (s->n) {
		double *delta = mb; /* reuse: delta = mb - mean */
		for (size_t j = 0; j < d; j++) delta[j] = mb[j] - s->mean[j];
		cblas_dsyr(CblasRowMajor, CblasUpper, (int)d, n * (double)nb / tot, delta, 1, s->m2, (int)d);
		for (size_t j = 0; j < d; j++) s->mean[j] += delta[j] * ((double)nb / tot);
	} else {
		memcpy(s->mean, mb, d * sizeof(double));
	}
	s->n += nb;
	s->pending = 0;
	free(mb);
}

void l2_fid_stats_add(L2FidStats *s, const float *x, size_t n)
{
	size_t d = (size_t)s->dim;
	for (size_t i = 0; i < n; i++) {
		double *row = s->block + s->pending * d;
		for (size_t j = 0; j < d; j++) row[j] = x[i * d + j];
		if (++s->pending == L2_FID_BLOCK) flush(s);
	}
}

void l2_fid_stats_add_f64(L2FidStats *s, const double *x, size_t n)
{
	size_t d = (size_t)s->dim;
	for (size_t i = 0; i < n; i++) {
		memcpy(s->block + s->pending * d, x + i * d, d * sizeof(double));
		if (++s->pending == L2_FID_BLOCK) flush(s);
	}
}

uint64_t l2_fid_stats_count(L2FidStats *s) { return s->n + s->pending; }

void l2_fid_stats_finish(L2FidStats *s, double *mu, double *sigma)
{
	flush(s);
	size_t d = (size_t)s->dim;
	memcpy(mu, s->mean, d * sizeof(double));
	double div = s->n > 1 ? (double)(s->n - 1) : NAN;
	for (size_t i = 0; i < d; i++)
		for (size_t j = i; j < d; j++) sigma[i * d + j] = sigma[j * d + i] = s->m2[i * d + j] / div;
}

void l2_fid_stats_free(L2FidStats *s)
{
	free(s->mean);
	free(s->m2);
	free(s->block);
	memset(s, 0, sizeof *s);
}

/* ---- Fréchet distance -------------------------------------------------------------- */

/* Eigenvalues (ascending) of symmetric a (n, n), and eigenvectors in a's
 * columns (column-major) when vectors. */
static void syevd(double *a, int n, double *w, int vectors)
{
	const char jobz = vectors ? 'V' : 'N', uplo = 'U';
	int lwork = -1, liwork = -1, info = 0, iq;
	double wq;
	dsyevd_(&jobz, &uplo, &n, a, &n, w, &wq, &lwork, &iq, &liwork, &info);
	if (info) l2_die("LAPACK dsyevd workspace query failed (info %d)", info);
	lwork = (int)wq + 1;
	liwork = iq;
	double *work = l2_malloc((size_t)lwork * sizeof(double));
	int *iwork = l2_malloc((size_t)(liwork > 0 ? liwork : 1) * sizeof(int));
	dsyevd_(&jobz, &uplo, &n, a, &n, w, work, &lwork, iwork, &liwork, &info);
	free(work);
	free(iwork);
	if (info) l2_die("LAPACK dsyevd did not converge (info %d)", info);
}

static int singular_spectrum(const double *w, int n)
{
	double top = fabs(w[n - 1]) > fabs(w[0]) ? fabs(w[n - 1]) : fabs(w[0]);
	return w[0] <= (double)n * DBL_EPSILON * top;
}

/* Tr((S1 S2)^(1/2)); *min_l1 and *min_m (may be NULL) get the smallest
 * eigenvalue of S1 and of R S2 R with the rounding floor of each (for the
 * checks of l2_fid_frechet_named). */
static double trace_sqrt(const double *s1, const double *s2, int d, int *singular, double *min_l1, double *floor_l1,
			 double *min_m, double *floor_m)
{
	size_t dd = (size_t)d * d;
	double *v = l2_malloc(dd * sizeof(double)), *w = l2_malloc((size_t)d * sizeof(double));
	double *r = l2_calloc(dd, sizeof(double)), *t = l2_malloc(dd * sizeof(double));
	/* S1 = V L V^T (symmetric: row- and column-major alike) */
	memcpy(v, s1, dd * sizeof(double));
	syevd(v, d, w, 1);
	int sing = singular_spectrum(w, d);
	if (min_l1) {
		*min_l1 = w[0];
		*floor_l1 = (double)d * DBL_EPSILON * (fabs(w[d - 1]) > fabs(w[0]) ? fabs(w[d - 1]) : fabs(w[0]));
	}
	/* R = V sqrt(L) V^T = (V L^(1/4)) (V L^(1/4))^T: scale V's columns
	 * (column-major) by max(l, 0)^(1/4) */
	for (int j = 0; j < d; j++) {
		double sc = sqrt(sqrt(w[j] > 0 ? w[j] : 0));
		for (int i = 0; i < d; i++) v[(size_t)j * d + i] *= sc;
	}
	cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, d, d, 1.0, v, d, 0.0, r, d);
	for (int j = 0; j < d; j++)
		for (int i = 0; i < j; i++) r[(size_t)i * d + j] = r[(size_t)j * d + i];
	/* M = R S2 R, symmetrised */
	cblas_dsymm(CblasColMajor, CblasLeft, CblasUpper, d, d, 1.0, r, d, s2, d, 0.0, t, d);
	cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, d, d, d, 1.0, t, d, r, d, 0.0, v, d);
	for (int j = 0; j < d; j++)
		for (int i = 0; i < j; i++) {
			double m = 0.5 * (v[(size_t)j * d + i] + v[(size_t)i * d + j]);
			v[(size_t)j * d + i] = v[(size_t)i * d + j] = m;
		}
	syevd(v, d, w, 0);
	/* eigenvalues within rounding of zero are zero: with N < d most are, and
	 * the square roots of their rounding noise would add up to a visible
	 * bias (a set against itself would not give 0) */
	double top = fabs(w[d - 1]) > fabs(w[0]) ? fabs(w[d - 1]) : fabs(w[0]);
	double floor = (double)d * DBL_EPSILON * top, tr = 0;
	for (int i = 0; i < d; i++) tr += w[i] > floor ? sqrt(w[i]) : 0;
	/* R S2 R is singular when S2 is (R = S1^(1/2) is too when S1 is) */
	if (singular) *singular = sing || w[0] <= floor;
	if (min_m) *min_m = w[0], *floor_m = floor;
	free(v), free(w), free(r), free(t);
	return tr;
}

double l2_fid_trace_sqrt_product(const double *s1, const double *s2, int d, int *singular)
{
	return trace_sqrt(s1, s2, d, singular, NULL, NULL, NULL, NULL);
}

const char *l2_fid_check_covariance(const double *sigma, int d)
{
	static __thread char msg[160];
	double top = 0;
	for (size_t i = 0; i < (size_t)d * d; i++) {
		if (!isfinite(sigma[i])) return "holds NaN or infinity";
		if (fabs(sigma[i]) > top) top = fabs(sigma[i]);
	}
	for (int i = 0; i < d; i++) {
		double v = sigma[(size_t)i * d + i];
		if (v < 0) {
			snprintf(msg, sizeof msg, "is not a covariance: diagonal element %d is negative (%g)", i, v);
			return msg;
		}
		for (int j = 0; j < i; j++) {
			double a = sigma[(size_t)i * d + j], b = sigma[(size_t)j * d + i];
			if (fabs(a - b) > 1e-6 * top) {
				snprintf(msg, sizeof msg, "is not a covariance: not symmetric (element %d,%d is %g, %d,%d is %g)",
					 i, j, a, j, i, b);
				return msg;
			}
		}
	}
	return NULL;
}

static void check_finite(const double *x, size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(x[i])) l2_die("%s holds NaN or infinity (element %zu)", what, i);
}

/* pytorch-fid refuses a product whose matrix square root has an imaginary
 * part over 1e-3 ("Imaginary component ..."): the eigenvalue route has one
 * where an eigenvalue is negative beyond rounding, of size sqrt(-eigenvalue). */
#define FID_MAX_IMAGINARY 1e-3

static int clearly_negative(double w, double floor) { return w < -floor && sqrt(-w) > FID_MAX_IMAGINARY; }

L2FidResult l2_fid_frechet_named(const double *mu1, const double *sigma1, const double *mu2, const double *sigma2,
				 int d, const char *name1, const char *name2)
{
	size_t dd = (size_t)d * d;
	char what[300];
	snprintf(what, sizeof what, "%s: mean", name1);
	check_finite(mu1, (size_t)d, what);
	snprintf(what, sizeof what, "%s: mean", name2);
	check_finite(mu2, (size_t)d, what);
	const char *bad;
	if ((bad = l2_fid_check_covariance(sigma1, d))) l2_die("%s: covariance %s", name1, bad);
	if ((bad = l2_fid_check_covariance(sigma2, d))) l2_die("%s: covariance %s", name2, bad);
	L2FidResult r = {0};
	for (int i = 0; i < d; i++) {
		double df = mu1[i] - mu2[i];
		r.mean_term += df * df;
	}
	double tr1 = 0, tr2 = 0;
	for (int i = 0; i < d; i++) tr1 += sigma1[(size_t)i * d + i], tr2 += sigma2[(size_t)i * d + i];
	double min_l1, floor_l1, min_m, floor_m;
	r.trace_sqrt = trace_sqrt(sigma1, sigma2, d, &r.singular, &min_l1, &floor_l1, &min_m, &floor_m);
	if (clearly_negative(min_l1, floor_l1))
		l2_die("%s: covariance is not a covariance: not positive semi-definite (eigenvalue %g)", name1, min_l1);
	if (clearly_negative(min_m, floor_m))
		l2_die("%s: covariance is not a covariance: the product with %s's has a negative eigenvalue (%g), so its "
		       "square root is complex (imaginary component %.3g; pytorch-fid refuses this too)", name2, name1,
		       min_m, sqrt(-min_m));
	if (!isfinite(r.trace_sqrt)) {
		/* pytorch-fid's fallback: offset both covariances by 1e-6 I */
		double *a = l2_malloc(dd * sizeof(double)), *b = l2_malloc(dd * sizeof(double));
		memcpy(a, sigma1, dd * sizeof(double));
		memcpy(b, sigma2, dd * sizeof(double));
		for (int i = 0; i < d; i++) a[(size_t)i * d + i] += 1e-6, b[(size_t)i * d + i] += 1e-6;
		l2_warn("FID calculation produces a singular product; adding 1e-06 to the diagonal of the covariances");
		r.trace_sqrt = l2_fid_trace_sqrt_product(a, b, d, NULL);
		r.offset = 1;
		free(a), free(b);
	}
	r.fid = r.mean_term + tr1 + tr2 - 2 * r.trace_sqrt;
	return r;
}

L2FidResult l2_fid_frechet(const double *mu1, const double *sigma1, const double *mu2, const double *sigma2, int d)
{
	return l2_fid_frechet_named(mu1, sigma1, mu2, sigma2, d, "first input", "second input");
}

/* ---- KID ---------------------------------------------------------------------------- */

/* m distinct indices of 0..n-1 (partial Fisher-Yates); identity when m == n. */
static void draw(size_t *idx, size_t n, size_t m, uint64_t *rng)
{
	for (size_t i = 0; i < n; i++) idx[i] = i;
	if (m == n) return;
	for (size_t i = 0; i < m; i++) {
		size_t j = i + (size_t)(l2_splitmix64(rng) % (n - i)), t = idx[i];
		idx[i] = idx[j], idx[j] = t;
	}
}

/* sum of (x.y/d + 1)^3 over g (m, m) = X Y^T */
static double kernel_sum(const double *g, size_t m, int d)
{
	double s = 0;
	for (size_t i = 0; i < m; i++)
		for (size_t j = 0; j < m; j++) {
			double k = g[i * m + j] / d + 1;
			s += k * k * k;
		}
	return s;
}

/* the same over the off-diagonal of a symmetric g given by its upper triangle */
static double kernel_sum_upper(const double *g, size_t m, int d)
{
	double s = 0;
	for (size_t i = 0; i < m; i++)
		for (size_t j = i + 1; j < m; j++) {
			double k = g[i * m + j] / d + 1;
			s += k * k * k;
		}
	return 2 * s;
}

void l2_kid(const float *a, size_t n1, const float *b, size_t n2, int d, size_t subset_size, int subsets,
	    uint64_t seed, double *mean, double *std)
{
	size_t m = n1 < n2 ? n1 : n2;
	if (subset_size < m) m = subset_size;
	if (m < 2) l2_die("KID needs at least 2 samples on each side");
	if (m == n1 && m == n2) subsets = 1;
	size_t *ia = l2_malloc(n1 * sizeof(size_t)), *ib = l2_malloc(n2 * sizeof(size_t));
	double *x = l2_malloc(m * (size_t)d * sizeof(double)), *y = l2_malloc(m * (size_t)d * sizeof(double));
	double *g = l2_malloc(m * m * sizeof(double));
	uint64_t rng = seed;
	double s = 0, s2 = 0;
	for (int t = 0; t < subsets; t++) {
		draw(ia, n1, m, &rng);
		draw(ib, n2, m, &rng);
		for (size_t i = 0; i < m; i++)
			for (int j = 0; j < d; j++) {
				x[i * d + j] = a[ia[i] * d + j];
				y[i * d + j] = b[ib[i] * d + j];
			}
		cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)m, d, 1.0, x, d, 0.0, g, (int)m);
		double kxx = kernel_sum_upper(g, m, d);
		cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)m, d, 1.0, y, d, 0.0, g, (int)m);
		double kyy = kernel_sum_upper(g, m, d);
		cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)m, d, 1.0, x, d, y, d, 0.0, g, (int)m);
		double kxy = kernel_sum(g, m, d);
		double mmd = (kxx + kyy) / ((double)m * (double)(m - 1)) - 2 * kxy / ((double)m * (double)m);
		s += mmd;
		s2 += mmd * mmd;
	}
	*mean = s / subsets;
	double var = s2 / subsets - *mean * *mean;
	*std = var > 0 ? sqrt(var) : 0;
	free(ia), free(ib), free(x), free(y), free(g);
}

/* ---- two feature sets --------------------------------------------------------------- */

double l2_fid_frechet_features(const float *a, size_t na, const float *b, size_t nb, int d)
{
	L2FidStats s1, s2;
	l2_fid_stats_init(&s1, d), l2_fid_stats_init(&s2, d);
	l2_fid_stats_add(&s1, a, na), l2_fid_stats_add(&s2, b, nb);
	double *mu1 = l2_malloc((size_t)d * sizeof(double)), *mu2 = l2_malloc((size_t)d * sizeof(double));
	double *S1 = l2_malloc((size_t)d * d * sizeof(double)), *S2 = l2_malloc((size_t)d * d * sizeof(double));
	l2_fid_stats_finish(&s1, mu1, S1), l2_fid_stats_finish(&s2, mu2, S2);
	double fd = l2_fid_frechet(mu1, S1, mu2, S2, d).fid;
	l2_fid_stats_free(&s1), l2_fid_stats_free(&s2);
	free(mu1), free(mu2), free(S1), free(S2);
	return fd;
}
