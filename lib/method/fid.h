/* fid.h — Fréchet Inception Distance and Kernel Inception Distance on
 * feature sets, in float64.
 *
 * Statistics are accumulated in constant memory (blocks of rows merged with
 * Chan et al.'s pairwise update), giving numpy's mean and np.cov(rowvar=False)
 * (divisor N - 1).  The distance
 *     ||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2))
 * takes Tr((S1 S2)^(1/2)) from symmetric eigendecompositions (LAPACK dsyevd):
 * R = S1^(1/2) = V sqrt(L) V^T, then the eigenvalues m_i of the symmetric
 * PSD R S2 R, which are those of S1 S2, and Tr = sum sqrt(max(m_i, 0)).
 * This is what scipy.linalg.sqrtm's trace gives in pytorch-fid, also for
 * singular covariances (N <= dims), but it cannot produce NaN or an
 * imaginary part.  Should a result still be non-finite, 1e-6 I is added to
 * both covariances, as pytorch-fid does. */
#ifndef L2_FID_H
#define L2_FID_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
	int dim;
	uint64_t n;     /* rows merged so far (pending rows not included) */
	double *mean;   /* (dim) */
	double *m2;     /* (dim, dim) sum of centred outer products (upper triangle in use) */
	double *block;  /* (L2_FID_BLOCK, dim) pending rows */
	size_t pending;
} L2FidStats;

#define L2_FID_BLOCK 256

void l2_fid_stats_init(L2FidStats *s, int dim);
/* Add n rows x (n, dim). */
void l2_fid_stats_add(L2FidStats *s, const float *x, size_t n);
void l2_fid_stats_add_f64(L2FidStats *s, const double *x, size_t n);
uint64_t l2_fid_stats_count(L2FidStats *s);
/* mu (dim) and sigma (dim, dim), full symmetric, divisor N - 1.  Needs N >= 2
 * (the caller checks and reports). */
void l2_fid_stats_finish(L2FidStats *s, double *mu, double *sigma);
void l2_fid_stats_free(L2FidStats *s);

typedef struct {
	double fid;
	double mean_term;   /* ||mu1 - mu2||^2 */
	double trace_sqrt;  /* Tr((S1 S2)^(1/2)) */
	int singular;       /* a covariance has eigenvalues <= dim * eps * largest */
	int offset;         /* the 1e-6 I fallback was needed */
} L2FidResult;

/* Fréchet distance of two Gaussians of dimension d; sigmas (d, d) symmetric.
 * Dies if an input holds NaN or infinity, or a sigma is not a covariance
 * (l2_fid_check_covariance; or not positive semi-definite, or its product
 * with the other has a negative eigenvalue, whose square root pytorch-fid
 * refuses as "Imaginary component"), naming the input (name1/name2; the
 * plain version says "first input"/"second input"). */
L2FidResult l2_fid_frechet(const double *mu1, const double *sigma1, const double *mu2, const double *sigma2, int d);
L2FidResult l2_fid_frechet_named(const double *mu1, const double *sigma1, const double *mu2, const double *sigma2,
				 int d, const char *name1, const char *name2);
/* NULL when sigma (d, d) is finite, symmetric (to 1e-6 of its largest
 * element) with a non-negative diagonal; else what is wrong ("is not a
 * covariance: ..."). */
const char *l2_fid_check_covariance(const double *sigma, int d);

/* Fréchet distance (float64, as l2_fid_frechet) between the Gaussians fitted to two
 * feature sets a (na, d) and b (nb, d): Inception features for FID, CLIP features for the
 * GAN trainer's CLIP-space FD. */
double l2_fid_frechet_features(const float *a, size_t na, const float *b, size_t nb, int d);

/* Tr((S1 S2)^(1/2)) alone; *singular as in L2FidResult (may be NULL). */
double l2_fid_trace_sqrt_product(const double *s1, const double *s2, int d, int *singular);

/* KID: the unbiased MMD^2 estimate with the polynomial kernel
 * k(x, y) = (x.y / d + 1)^3, averaged over `subsets` random subsets of
 * m = min(n1, n2, subset_size) rows drawn without replacement from each set
 * (as torch-fidelity / clean-fid: subset_size 1000, 100 subsets).  When both
 * sets have exactly m rows every subset is the whole set and one is enough.
 * *mean and *std (population std over subsets, as torch-fidelity).
 * Needs m >= 2.  seed makes the draw reproducible. */
void l2_kid(const float *a, size_t n1, const float *b, size_t n2, int d, size_t subset_size, int subsets,
	    uint64_t seed, double *mean, double *std);

#endif
