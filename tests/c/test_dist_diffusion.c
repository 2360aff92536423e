/* test_dist_diffusion.c — the diffusion step data parallel equals one process, in
 * double precision (dist_diffusion_check.h; run under mpirun by tests/mpi.bats).
 * Compiles the autodiff, optimiser, denoiser and the step with -DL2_AD_DOUBLE, as
 * test_diffusion does. */
#define L2_AD_DOUBLE 1
#include "../../lib/nn/ad.c"
#include "../../lib/nn/optim.c"
#include "../../lib/models/diffusion.c"
#include "../../lib/method/diffusion_train.c"

#define GRAD_CLIP 5.0
#define TOL_LOSS 1e-10
#define TOL_W 1e-10
#include "dist_diffusion_check.h"
