/* shard.c — --shard I/N[:A] and --shard auto (see shard.h). */
#include "core/shard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A decimal number at *p (no sign, no spaces); advances *p.  0 on failure. */
static int take_u64(const char **p, uint64_t *v)
{
	if (**p < '0' || **p > '9') return 0;
	char *end;
	errno = 0;
	unsigned long long x = strtoull(*p, &end, 10);
	if (errno) return 0;
	*v = x;
	*p = end;
	return 1;
}

/* ":A" or nothing at the end of a spec. */
static const char *take_block(const char *p, uint64_t *block)
{
	*block = L2_SHARD_DEF_BLOCK;
	if (!*p) return NULL;
	if (*p != ':' || (p++, !take_u64(&p, block)) || *p) return "expected I/N, I/N:A, auto or auto:A";
	if (*block == 0) return "the block size A must be at least 1";
	return NULL;
}

/* An environment variable as a number: 1 when set and valid, 0 when unset,
 * -1 when set but not a number. */
static int env_u64(const char *name, uint64_t *v)
{
	const char *s = getenv(name);
	if (!s || !*s) return 0;
	const char *p = s;
	return take_u64(&p, v) && !*p ? 1 : -1;
}

/* I/N from the launcher's variables, in the order of shard.h. */
static const char *from_env(L2Shard *s)
{
	static char msg[160];
	uint64_t id, mn, cnt, mx, step;
	int has_id = env_u64("SLURM_ARRAY_TASK_ID", &id);
	if (has_id) {
		if (has_id < 0 || env_u64("SLURM_ARRAY_TASK_MIN", &mn) != 1 || env_u64("SLURM_ARRAY_TASK_COUNT", &cnt) != 1)
			return "auto: SLURM_ARRAY_TASK_ID is set, but it, SLURM_ARRAY_TASK_MIN or SLURM_ARRAY_TASK_COUNT is "
			       "missing or not a number";
		if (env_u64("SLURM_ARRAY_TASK_STEP", &step) == 1 && step != 1)
			return "auto: the Slurm array has a step other than 1; use --array=0-(N-1) or --shard I/N";
		if (env_u64("SLURM_ARRAY_TASK_MAX", &mx) == 1 && mx - mn + 1 != cnt)
			return "auto: the Slurm array is not a contiguous range; use --array=0-(N-1) or --shard I/N";
		if (id < mn || id - mn >= cnt) return "auto: SLURM_ARRAY_TASK_ID is outside MIN..MIN+COUNT-1";
		s->index = id - mn, s->count = cnt;
		snprintf(s->source, sizeof s->source, "SLURM_ARRAY_TASK_ID");
		return NULL;
	}
	static const char *const pairs[][2] = {
		{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
		{"PMI_RANK", "PMI_SIZE"},
		{"SLURM_PROCID", "SLURM_NTASKS"},
	};
	for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
		uint64_t r, n;
		int hr = env_u64(pairs[i][0], &r);
		if (!hr) continue;
		if (hr < 0 || env_u64(pairs[i][1], &n) != 1 || n == 0 || r >= n) {
			snprintf(msg, sizeof msg, "auto: %s is set, but it or %s is missing or invalid", pairs[i][0],
				 pairs[i][1]);
			return msg;
		}
		s->index = r, s->count = n;
		snprintf(s->source, sizeof s->source, "%s", pairs[i][0]);
		return NULL;
	}
	return "auto: no launcher variables (SLURM_ARRAY_TASK_ID, OMPI_COMM_WORLD_RANK, PMI_RANK or SLURM_PROCID); "
	       "give --shard I/N";
}

const char *l2_shard_parse(const char *spec, L2Shard *s)
{
	memset(s, 0, sizeof *s);
	const char *p = spec, *err;
	if (!strncmp(p, "auto", 4)) {
		if ((err = take_block(p + 4, &s->block))) return err;
		return from_env(s);
	}
	if (!take_u64(&p, &s->index) || *p++ != '/' || !take_u64(&p, &s->count))
		return "expected I/N, I/N:A, auto or auto:A";
	if ((err = take_block(p, &s->block))) return err;
	if (s->count == 0) return "the number of shards N must be at least 1";
	if (s->index >= s->count) return "the shard I must be 0..N-1";
	snprintf(s->source, sizeof s->source, "--shard");
	return NULL;
}

void l2_shard_option(const char *arg, L2UsageFn usage, L2Shard *s)
{
	const char *err = l2_shard_parse(arg, s);
	if (err) l2_usage_error(usage, "invalid value for --shard: '%s' (%s)", arg, err);
}

const char *l2_shard_parse_unshard(const char *spec, uint64_t *n, uint64_t *block)
{
	const char *p = spec;
	if (!take_u64(&p, n)) return "expected N or N:A";
	*block = L2_SHARD_DEF_BLOCK;
	if (*p) {
		if (*p++ != ':' || !take_u64(&p, block) || *p) return "expected N or N:A";
		if (*block == 0) return "the block size A must be at least 1";
	}
	if (*n == 0) return "the number of shards N must be at least 1";
	return NULL;
}

void l2_shard_info(const L2Shard *s)
{
	if (!s->count) return;
	l2_info("shard %llu/%llu, blocks of %llu records (%s)", (unsigned long long)s->index,
		(unsigned long long)s->count, (unsigned long long)s->block, s->source);
}
