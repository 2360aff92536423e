/* test_dist_gan.c — the GAN step data parallel equals one process, in
 * double precision (dist_gan_check.h; run under mpirun by tests/mpi.bats).
 * Compiles the autodiff, optimiser, GAN, CLIP and the step with
 * -DL2_AD_DOUBLE, as test_gan_train does. */
#define L2_AD_DOUBLE 1
#include "../../lib/nn/ad.c"
#include "../../lib/nn/optim.c"
#include "../../lib/models/gan.c"
#include "../../lib/models/clip_train.c"
#include "../../lib/method/augment.c"
#include "../../lib/method/gan_train.c"

#define R1_EPS 1e-5
#define TOL_LOSS 1e-10
#define TOL_W 1e-10
#include "dist_gan_check.h"
