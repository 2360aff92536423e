/* test_dist_gan_f32.c — the GAN step data parallel equals one process, in
 * the library's float build (dist_gan_check.h; run under mpirun by
 * tests/mpi.bats).  Losses to 1e-5 relative; weights to 1e-3 of each
 * tensor's largest entry (Adam divides the few-ulp gradient differences by
 * sqrt(v), and R1's finite difference rounds at eps 1e-3). */
#include "method/gan_train.h"
#include "nn/ad_dist.h"

#define R1_EPS L2_GAN_R1_EPS
#define TOL_LOSS 1e-5
#define TOL_W 1e-3
#include "dist_gan_check.h"
