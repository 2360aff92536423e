/* safetensors.h — the weight format of every model in l2.
 *
 * File layout (https://github.com/huggingface/safetensors): u64 LE header
 * length N, N bytes of JSON {"name": {"dtype", "shape", "data_offsets"},
 * "__metadata__": {str: str}}, then the raw little-endian tensor bytes.
 * The reader mmaps the file and bounds-checks every offset against it.
 * Layout notes for l2: schemas/safetensors.md. */
#ifndef L2_SAFETENSORS_H
#define L2_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

enum { L2_ST_F32, L2_ST_F16, L2_ST_BF16, L2_ST_F64, L2_ST_I64, L2_ST_I32, L2_ST_U8, L2_ST_BOOL, L2_ST_OTHER };

typedef struct {
	const char *name;
	int dtype;          /* L2_ST_* */
	int ndim;
	int64_t shape[8];
	size_t nelem;
	const void *data;   /* into the mapping; nelem elements of dtype */
} L2Tensor;

typedef struct L2Safetensors L2Safetensors;

/* Open and validate; dies with "PATH: what is wrong" on a malformed file. */
L2Safetensors *l2_st_open(const char *path);
void l2_st_close(L2Safetensors *st);
const char *l2_st_path(const L2Safetensors *st);
int l2_st_count(const L2Safetensors *st);
const L2Tensor *l2_st_tensor(const L2Safetensors *st, int i);
/* NULL if absent. */
const L2Tensor *l2_st_find(const L2Safetensors *st, const char *name);
/* __metadata__ value, or NULL. */
const char *l2_st_metadata(const L2Safetensors *st, const char *key);
/* "F32", "BF16", ... as written in the header. */
const char *l2_st_dtype_name(int dtype);
/* Convert a tensor (f32, f16, bf16, f64; also i64, i32, u8, bool) to
 * float32 into out (nelem).  The data may be unaligned; this copes. */
void l2_st_to_f32(const L2Safetensors *st, const L2Tensor *t, float *out);
/* Find NAME, check its shape (ndim dims; a -1 entry matches any size) and
 * return a malloc'd float32 copy.  Missing or misshapen: dies with
 * "PATH: tensor NAME: expected shape (a, b), got (c, d)". */
float *l2_st_load_f32(const L2Safetensors *st, const char *name, int ndim, const int64_t *shape);
/* Same into a caller buffer of exactly the expected size. */
void l2_st_load_f32_into(const L2Safetensors *st, const char *name, int ndim, const int64_t *shape, float *out);

/* Writer: collect tensors (data is referenced, not copied, until write),
 * then write atomically with keys in insertion order. */
typedef struct L2StWriter L2StWriter;
L2StWriter *l2_st_writer_new(void);
void l2_st_writer_add(L2StWriter *w, const char *name, int dtype, int ndim, const int64_t *shape, const void *data);
void l2_st_writer_add_f32(L2StWriter *w, const char *name, int ndim, const int64_t *shape, const float *data);
void l2_st_writer_meta(L2StWriter *w, const char *key, const char *value);
void l2_st_writer_write(L2StWriter *w, const char *path);
void l2_st_writer_free(L2StWriter *w);

#endif
