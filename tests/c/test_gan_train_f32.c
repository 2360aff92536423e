/* test_gan_train_f32.c — the same two steps as test_gan_train.c, but through
 * the library as the trainer runs it: float32, and R1's Hessian-vector
 * product at the trainer's step L2_GAN_R1_EPS.  Float rounding (about 1e-7
 * relative per operation, grown through two networks, a CLIP tower and
 * Adam's division by sqrt(v_hat)) and the float R1 gradient (~1e-4 of its
 * largest entry, tests/c/test_gan_r1.c) bound the agreement. */
#include "method/gan_train.h"
#include "core/util.h"

#define R1_EPS L2_GAN_R1_EPS
/* measured: losses 2e-7 relative; state 7e-6 (a) and 6e-5 (b) of each tensor's
 * largest entry, the Adam moments being the worst */
#define TOL_A 1e-4
#define TOL_B 1e-3
#include "gan_train_check.h"

static void test_step_exact_f32(void) { run_scenario("a", 0, 1e-5, 0, TOL_A); }
static void test_step_r1_f32(void) { run_scenario("b", 10, 1e-5, 1e-5, TOL_B); }

int main(void)
{
	RUN(test_step_exact_f32);
	RUN(test_step_r1_f32);
	return check_done();
}
