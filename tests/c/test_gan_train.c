/* test_gan_train.c — lib/method/gan_train.c's step in float64: this file
 * compiles the autodiff, the optimiser, the GAN, CLIP and the step with
 * -DL2_AD_DOUBLE and runs two whole steps of a tiny G / D with L_ConD, L_ConG
 * through a tiny frozen CLIP, R1, Adam and the EMA against the PyTorch float64
 * transcription tests/ref/make_gan_train.py: the five losses and every
 * parameter, Adam moment and step count, and the EMA, after each step.
 *
 * Scenario a (no R1) is the same arithmetic on both sides: agreement to
 * rounding, 1e-10 of each tensor's largest entry.
 * Scenario b adds R1 at step 0.  Its value is exact (a first-order
 * gradient), but its parameter gradient is, in C, a central difference of
 * the parameter gradient along v = dS/dx (lib/models/gan.h) with step
 * e = 1e-5 / rms(v): truncation O(e^2) and rounding O(1e-16 / e) put it
 * within ~1e-8 of the exact double backward's largest entry (test_gan.c
 * measures 6e-9 on its D).  That error enters D's Adam moments directly
 * (measured 3e-9 of a tensor's largest entry) and its parameters through
 * Adam's division by sqrt(v_hat) (1e-10), then step 1's losses through D
 * (1e-12 relative).  So scenario b holds the state to 1e-7 and the losses
 * to 1e-9: an order of magnitude above what the finite difference can
 * cause, far below any error in the step's arithmetic (a wrong term, weight,
 * sign or schedule moves these by 1e-3 or more). */
#define L2_AD_DOUBLE 1
#include "../../lib/nn/ad.c"
#include "../../lib/nn/optim.c"
#include "../../lib/models/gan.c"
#include "../../lib/models/clip_train.c"
#include "../../lib/method/augment.c"
#include "../../lib/method/gan_train.c"

#define R1_EPS 1e-5
#include "gan_train_check.h"

static void test_step_exact(void) { run_scenario("a", 0, 1e-10, 0, 1e-10); }
static void test_step_r1(void) { run_scenario("b", 10, 1e-9, 1e-10, 1e-7); }

int main(void)
{
	RUN(test_step_exact);
	RUN(test_step_r1);
	return check_done();
}
