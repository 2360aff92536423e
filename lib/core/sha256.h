/* sha256.h — SHA-256 (FIPS 180-4), to name weight files by content. */
#ifndef L2_SHA256_H
#define L2_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
	uint32_t h[8];
	uint64_t len;          /* bytes hashed so far */
	unsigned char buf[64];
	size_t nbuf;
} L2Sha256;

void l2_sha256_init(L2Sha256 *s);
void l2_sha256_update(L2Sha256 *s, const void *data, size_t n);
void l2_sha256_final(L2Sha256 *s, unsigned char out[32]);
/* Hash a whole buffer into 64 lower-case hex digits + NUL. */
void l2_sha256_hex(const void *data, size_t n, char hex[65]);
/* Hash a file ("PATH: reason" and exit 1 when it cannot be read). */
void l2_sha256_file(const char *path, char hex[65]);

#endif
