/* retrieval_eval.c — retrieval accuracy against a dataset's captions (see retrieval_eval.h). */
#include "method/retrieval_eval.h"
#include "core/util.h"

#include <string.h>

const int L2_EVAL_M[L2_EVAL_NM] = {1, 5, 10};

/* P(at least one of c true items among the top m of N candidates drawn at
 * random) = 1 - C(N-c, m) / C(N, m). */
static double chance_topm(double N, double c, int m)
{
	if (c <= 0) return 0;
	double p = 1;
	for (int i = 0; i < m; i++) {
		if (N - i <= 0) return 1;
		p *= (N - c - i) / (N - i);
		if (p <= 0) return 1;
	}
	return 1 - p;
}

void l2_retrieval_eval(L2Dataset *ds, L2StreamReader *r, L2Split split, size_t candidates, L2RetrievalScore *s)
{
	memset(s, 0, sizeof *s);
	size_t N = candidates;
	if (!N) {
		char **uniq;
		N = l2_dataset_unique_captions(ds, split, &uniq);
		l2_dataset_free_strings(uniq, N);
	}
	s->candidates = N;
	l2_stream_expect(r, L2_KIND_NEIGHBORS, 0);
	s->k = l2_stream_header(r)->k;
	uint64_t hit[L2_EVAL_NM] = {0};
	L2Record rec;
	while (l2_stream_next(r, &rec)) {
		int sp = l2_dataset_split_of(ds, rec.key);
		if (sp < 0) l2_die("%s: query '%s' is not an image of %s", l2_stream_name(r), rec.key, l2_dataset_path(ds));
		if (split != L2_SPLIT_ALL && sp != (int)split) continue;
		char **caps;
		size_t nc = l2_dataset_captions(ds, rec.key, &caps);
		if (!nc) {
			s->uncaptioned++;
			l2_dataset_free_strings(caps, nc);
			continue;
		}
		uint32_t rank = 0;
		for (uint32_t j = 0; j < rec.k && !rank; j++)
			for (size_t t = 0; t < nc; t++)
				if (!strcmp(rec.nkey[j], caps[t])) {
					rank = j + 1;
					break;
				}
		for (int m = 0; m < L2_EVAL_NM; m++) {
			if (rank && (int)rank <= L2_EVAL_M[m]) hit[m]++;
			s->chance[m] += chance_topm((double)N, (double)(nc < N ? nc : N), L2_EVAL_M[m]);
		}
		if (rank) s->mrr += 1.0 / rank;
		s->queries++;
		l2_dataset_free_strings(caps, nc);
	}
	if (!s->queries) return;
	for (int m = 0; m < L2_EVAL_NM; m++) {
		s->top[m] = (double)hit[m] / (double)s->queries;
		s->chance[m] /= (double)s->queries;
	}
	s->mrr /= (double)s->queries;
}
