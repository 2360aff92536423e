/* fuzz.h — what every l2 fuzz harness shares.
 *
 * A harness is one file tests/fuzz/fuzz_NAME.c: a function that feeds one
 * input to a parser through lib/'s API, and L2_FUZZ_TARGET(that function).
 * It is built two ways from the same source:
 *   - by `make fuzz` with clang's libFuzzer and ASan + UBSan
 *     ($(BUILD)/fuzz/fuzz-NAME, build-fuzz/), which mutates inputs;
 *   - by the normal build, gcc with or without SAN=1, linked with replay.c
 *     ($(BUILD)/fuzz/replay-NAME), which `make test` runs over the committed
 *     corpus (tests/fuzz/corpus/NAME) and every input that ever crashed or
 *     hung (tests/fuzz/regress/NAME).
 *
 * Bad input is normal input: the parser refuses it with l2_die, and
 * l2_fuzz_run catches that (lib/core/util.h, "catching l2_die"): a die hook
 * longjmps back here, the objects the library holds are released
 * (l2_release_held), and under ASan every block allocated during the input
 * and still live is freed, so a refused input leaks neither memory nor file
 * descriptors.  What counts as a finding: a sanitizer report, a signal, a
 * hang (libFuzzer -timeout, replay L2_FUZZ_TIMEOUT), a leak on an input that
 * was accepted (LeakSanitizer), a file descriptor left open by any input, or
 * a die message that is empty or more than one line.
 *
 * L2_FUZZ_VERBOSE=1 prints every die message (what each input was refused
 * for) on stderr. */
#ifndef L2_FUZZ_H
#define L2_FUZZ_H

#include <stddef.h>
#include <stdint.h>

typedef void (*L2FuzzBody)(const uint8_t *data, size_t size);

/* Run body on one input, catching l2_die.  init (or NULL) runs once, before
 * the first input and outside the ledger: what it sets up (a vocabulary,
 * tables) lives for the whole run.  Returns 0 when the body ran through, 1
 * when the input was refused. */
int l2_fuzz_run(L2FuzzBody body, void (*init)(void), const uint8_t *data, size_t size);
/* Inputs refused so far: by l2_die, or reported with l2_fuzz_refuse() by
 * a harness whose parser returns an error instead (image decoding). */
size_t l2_fuzz_refused(void);
void l2_fuzz_refuse(void);

/* fn runs after every refused input, once the held objects are released and
 * before the input's remaining allocations are freed: it drops what the
 * library keeps from one call to the next (a cache grown during the input),
 * which that sweep would otherwise free behind the library's back. */
void l2_fuzz_on_refusal(void (*fn)(void));

/* This process's scratch directory (on /dev/shm when there is one),
 * removed at exit. */
const char *l2_fuzz_scratch(void);
/* Write data to NAME in the scratch directory (replacing it); returns the
 * path (a static buffer, valid until the next call). */
const char *l2_fuzz_write_file(const char *name, const void *data, size_t size);
/* rm -r of a path inside the scratch directory. */
void l2_fuzz_remove(const char *path);

/* A little input reader for harnesses that split one input into several
 * pieces (a structured input): each read takes bytes from the front, and
 * returns zeros (or an empty piece) once the input is used up. */
typedef struct {
	const uint8_t *p;
	size_t n;
} L2FuzzInput;
uint8_t l2_fuzz_u8(L2FuzzInput *in);
uint16_t l2_fuzz_u16(L2FuzzInput *in);
uint32_t l2_fuzz_u32(L2FuzzInput *in);
/* The next n bytes (fewer when the input ends); *len gets the count. */
const uint8_t *l2_fuzz_bytes(L2FuzzInput *in, size_t n, size_t *len);

/* Build an LMDB environment at DIR (made afresh) from a structured input:
 * records (u8 db, u8 key length, key, u16 value length, value), db an
 * index into dbs[] (modulo ndbs; a db whose bit is set in dupsort is
 * opened MDB_DUPSORT), until the input is used up.  Records LMDB refuses
 * (an empty key) are skipped.  Lets the store and index harnesses reach
 * l2's readers with arbitrary contents in a valid LMDB file, rather than
 * fuzzing LMDB's own page format (which has no checksums).  The records
 * are written into one environment the run keeps and copied to DIR (an
 * environment opened per input cost most of the input's time, fuzz.c). */
void l2_fuzz_lmdb(const char *dir, const char *const *dbs, int ndbs, unsigned dupsort, L2FuzzInput *in);
/* Open that environment: from the harness's init (before the first input,
 * so that its files are not taken for descriptors an input left open),
 * with the dbs, ndbs and dupsort every l2_fuzz_lmdb call then passes. */
void l2_fuzz_lmdb_init(const char *const *dbs, int ndbs, unsigned dupsort);

#define L2_FUZZ_TARGET_INIT(body, init)                               \
	int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size); \
	int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)  \
	{                                                             \
		l2_fuzz_run(body, init, data, size);                  \
		return 0;                                             \
	}
#define L2_FUZZ_TARGET(body) L2_FUZZ_TARGET_INIT(body, NULL)

#endif
