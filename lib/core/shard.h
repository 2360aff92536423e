/* shard.h — which records a shard of a map stage takes (--shard I/N[:A]).
 *
 * A map stage (encode images or texts, cut a stream, list a dataset) run as
 * N independent processes: shard I takes the records whose block
 * floor(r / A) is I modulo N, r being the record's position in the plain
 * (unsharded) output, 0-based.  Blocks of A records (default 4096) go round
 * the shards in turn, so
 *   - shards are balanced (within one block) whatever the total, which no
 *     shard needs to know in advance: the stage still streams;
 *   - every downstream batch of a size dividing A (l2-optimize-pseudo 256,
 *     l2-retrieve 4096, the encoders' 16 or 64) lies inside one block, so a
 *     shard's batches are exactly batches of the plain run;
 *   - `l2-cat --unshard N[:A]` puts the outputs back in the plain order by
 *     taking A records from each shard in turn: byte-identical to one run.
 *
 * `--shard auto` takes I and N from the launcher, never implicitly (a tool
 * not asked to shard ignores these variables): a Slurm job array
 * (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT, a
 * contiguous range of step 1), else Open MPI (OMPI_COMM_WORLD_RANK / _SIZE),
 * else PMI as MPICH/Hydra and Slurm's PMI set it (PMI_RANK / PMI_SIZE), else
 * Slurm tasks (SLURM_PROCID / SLURM_NTASKS); none of these is an error. */
#ifndef L2_SHARD_H
#define L2_SHARD_H

#include "core/util.h"

#include <stdint.h>

#define L2_SHARD_DEF_BLOCK 4096

typedef struct {
	uint64_t index, count; /* shard I of N; count 0: not sharded (every record) */
	uint64_t block;        /* A, records per block */
	char source[48];       /* "--shard", or the variable auto read, for messages */
} L2Shard;

/* getopt_long entry and handler: --shard I/N[:A] | auto[:A].  A bad value
 * or a failed auto detection is a usage error (exit 2). */
#define L2_SHARD_LONGOPT {"shard", required_argument, 0, L2_OPT_SHARD}
void l2_shard_option(const char *arg, L2UsageFn usage, L2Shard *s);

/* Parse SPEC into *s.  Returns NULL, or a static message saying what is
 * wrong (auto reads the environment, see above). */
const char *l2_shard_parse(const char *spec, L2Shard *s);

/* Is the record at position POS of the plain output in shard s? */
static inline int l2_shard_has(const L2Shard *s, uint64_t pos)
{
	return s->count <= 1 || (pos / s->block) % s->count == s->index;
}

/* Is POS the last position of its block?  Stages that batch records cut
 * their batches here, sharded or not (a zeroed L2Shard has blocks of
 * L2_SHARD_DEF_BLOCK): results that depend on a batch's make-up (the last
 * bits of a GEMM) are then the same in a shard as in the plain run. */
static inline int l2_shard_block_end(const L2Shard *s, uint64_t pos)
{
	uint64_t a = s->block ? s->block : L2_SHARD_DEF_BLOCK;
	return pos % a == a - 1;
}

/* "--unshard N[:A]": N >= 1 shards in blocks of A.  NULL or a message. */
const char *l2_shard_parse_unshard(const char *spec, uint64_t *n, uint64_t *block);

/* One informational line (unless --quiet) naming the shard and where I/N
 * came from, e.g. "shard 3/8, blocks of 4096 (SLURM_ARRAY_TASK_ID)". */
void l2_shard_info(const L2Shard *s);

#endif
