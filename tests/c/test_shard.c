/* test_shard.c — lib/core/shard.c: --shard I/N[:A] parsing, the block
 * round-robin (every record in exactly one shard, balanced, batches inside
 * blocks), and --shard auto from each launcher's variables. */
#include "core/shard.h"
#include "check.h"

static const char *const launcher_vars[] = {
	"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_COUNT",
	"SLURM_ARRAY_TASK_STEP", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE",
	"SLURM_PROCID", "SLURM_NTASKS"};

static void clear_env(void)
{
	for (size_t i = 0; i < sizeof launcher_vars / sizeof launcher_vars[0]; i++) unsetenv(launcher_vars[i]);
}

static void test_parse(void)
{
	L2Shard s;
	CHECK(!l2_shard_parse("2/8", &s) && s.index == 2 && s.count == 8 && s.block == 4096);
	CHECK(!l2_shard_parse("0/1:256", &s) && s.index == 0 && s.count == 1 && s.block == 256);
	CHECK(!l2_shard_parse("17/18:1", &s) && s.index == 17 && s.block == 1);
	const char *bad[] = {"", "3", "8/8", "1/0", "-1/4", "1/4:", "1/4:0", "1/4:x", "1 /4", "a/b", "1/4/2", "autox",
			     "auto:", "auto:0", "+1/4", "1/+4", "99999999999999999999/1"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) CHECK_MSG(l2_shard_parse(bad[i], &s), "'%s' accepted", bad[i]);
	uint64_t n, a;
	CHECK(!l2_shard_parse_unshard("3", &n, &a) && n == 3 && a == 4096);
	CHECK(!l2_shard_parse_unshard("3:7", &n, &a) && n == 3 && a == 7);
	CHECK(l2_shard_parse_unshard("0", &n, &a) && l2_shard_parse_unshard("3:0", &n, &a) &&
	      l2_shard_parse_unshard("3/1", &n, &a) && l2_shard_parse_unshard("", &n, &a));
}

/* Every position is in exactly one shard; shard sizes differ by at most one
 * block; a batch dividing A never has records in two shards. */
static void test_partition(void)
{
	const uint64_t total = 10007, A = 64;
	for (uint64_t N = 1; N <= 5; N++) {
		uint64_t size[5] = {0};
		for (uint64_t r = 0; r < total; r++) {
			int owners = 0;
			for (uint64_t i = 0; i < N; i++) {
				L2Shard s = {.index = i, .count = N, .block = A};
				if (l2_shard_has(&s, r)) owners++, size[i]++;
			}
			CHECK(owners == 1);
		}
		uint64_t mn = total, mx = 0;
		for (uint64_t i = 0; i < N; i++) mn = size[i] < mn ? size[i] : mn, mx = size[i] > mx ? size[i] : mx;
		CHECK_MSG(mx - mn <= A, "N=%llu: shard sizes %llu..%llu", (unsigned long long)N, (unsigned long long)mn,
			  (unsigned long long)mx);
		for (uint64_t b0 = 0; b0 < total; b0 += 16) {
			L2Shard s = {.index = (b0 / A) % N, .count = N, .block = A};
			for (uint64_t r = b0; r < b0 + 16 && r < total; r++) CHECK(l2_shard_has(&s, r));
		}
	}
	L2Shard none = {0};
	CHECK(l2_shard_has(&none, 0) && l2_shard_has(&none, 123456789));
}

static void test_auto(void)
{
	L2Shard s;
	clear_env();
	CHECK(l2_shard_parse("auto", &s) != NULL); /* nothing set: an error, never "0/1" */

	setenv("SLURM_ARRAY_TASK_ID", "12", 1), setenv("SLURM_ARRAY_TASK_MIN", "10", 1);
	setenv("SLURM_ARRAY_TASK_MAX", "17", 1), setenv("SLURM_ARRAY_TASK_COUNT", "8", 1);
	setenv("SLURM_ARRAY_TASK_STEP", "1", 1);
	/* Slurm also sets these in every array task; the array wins */
	setenv("SLURM_PROCID", "0", 1), setenv("SLURM_NTASKS", "1", 1);
	CHECK(!l2_shard_parse("auto:512", &s) && s.index == 2 && s.count == 8 && s.block == 512);
	CHECK(!strcmp(s.source, "SLURM_ARRAY_TASK_ID"));
	setenv("SLURM_ARRAY_TASK_STEP", "2", 1);
	CHECK(l2_shard_parse("auto", &s) != NULL);
	setenv("SLURM_ARRAY_TASK_STEP", "1", 1), setenv("SLURM_ARRAY_TASK_MAX", "20", 1); /* --array=10-12,20 */
	CHECK(l2_shard_parse("auto", &s) != NULL);
	setenv("SLURM_ARRAY_TASK_MAX", "17", 1), setenv("SLURM_ARRAY_TASK_ID", "x", 1);
	CHECK(l2_shard_parse("auto", &s) != NULL);
	clear_env();

	setenv("OMPI_COMM_WORLD_RANK", "1", 1), setenv("OMPI_COMM_WORLD_SIZE", "3", 1);
	setenv("PMI_RANK", "0", 1), setenv("PMI_SIZE", "1", 1); /* Open MPI first */
	CHECK(!l2_shard_parse("auto", &s) && s.index == 1 && s.count == 3 && s.block == 4096);
	CHECK(!strcmp(s.source, "OMPI_COMM_WORLD_RANK"));
	setenv("OMPI_COMM_WORLD_RANK", "3", 1);
	CHECK(l2_shard_parse("auto", &s) != NULL); /* rank outside the size */
	clear_env();

	setenv("PMI_RANK", "4", 1), setenv("PMI_SIZE", "5", 1);
	CHECK(!l2_shard_parse("auto", &s) && s.index == 4 && s.count == 5);
	unsetenv("PMI_SIZE");
	CHECK(l2_shard_parse("auto", &s) != NULL);
	clear_env();

	setenv("SLURM_PROCID", "6", 1), setenv("SLURM_NTASKS", "7", 1);
	CHECK(!l2_shard_parse("auto", &s) && s.index == 6 && s.count == 7 && !strcmp(s.source, "SLURM_PROCID"));
	clear_env();
}

int main(int argc, char **argv)
{
	l2_init(argc, argv);
	RUN(test_parse);
	RUN(test_partition);
	RUN(test_auto);
	return check_done();
}
