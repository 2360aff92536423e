/* test_dist_diffusion_f32.c — the diffusion step data parallel equals one process, in
 * the library's float build (dist_diffusion_check.h; run under mpirun by
 * tests/mpi.bats).  Measured: gradient norm 1e-8 relative; weights and EMAs 1.3e-5,
 * Adam moments 4e-6 of each tensor's largest entry (the ranks' partial sums round
 * differently, and Adam divides those few-ulp differences by sqrt(v): largest in
 * tensors that start at zero); held to about 10x that. */
#include "method/diffusion_train.h"
#include "nn/ad_dist.h"

#define GRAD_CLIP 5.0
#define TOL_LOSS 1e-7
#define TOL_W 1e-4
#include "dist_diffusion_check.h"
