/* test_dist_train.c — data-parallel CLIP training equals the single process,
 * in double precision (dist_train_check.h; run under mpirun by
 * tests/mpi.bats).  The autodiff and the training CLIP are compiled here with
 * adr = double, as test_gan does. */
#define L2_AD_DOUBLE 1
#include "../../lib/nn/ad.c"
#include "../../lib/models/clip_train.c"

#define TOL_LOSS 1e-12
#define TOL_GRAD 1e-10
#define TOL_W 1e-10
#include "dist_train_check.h"
