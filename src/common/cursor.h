/*
 * cursor.h — bounds-checked readers and writers for untrusted bytes.
 *
 * Every byte that comes from a socket, a file or the command line is read through a
 * struct rcursor: each read checks the remaining length first and fails cleanly (returns
 * -1 and marks the cursor failed) instead of reading past the end. Integers are
 * big-endian (TPM wire format and swtpm control channel). A failed cursor stays failed,
 * so a parser may do several reads and check once.
 */
#ifndef VTPM_CURSOR_H
#define VTPM_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rcursor {
	const uint8_t *buf;
	size_t len;
	size_t pos;
	bool failed;
};

struct wcursor {
	uint8_t *buf;
	size_t cap;
	size_t pos;
	bool failed;
};

void rc_init(struct rcursor *c, const void *buf, size_t len);
size_t rc_remaining(const struct rcursor *c);
int rc_u8(struct rcursor *c, uint8_t *v);
int rc_u16(struct rcursor *c, uint16_t *v);
int rc_u32(struct rcursor *c, uint32_t *v);
int rc_u64(struct rcursor *c, uint64_t *v);
/* Copy n bytes out. */
int rc_bytes(struct rcursor *c, void *out, size_t n);
/* Borrow a pointer to the next n bytes (valid while the underlying buffer lives). */
int rc_ptr(struct rcursor *c, const uint8_t **p, size_t n);
int rc_skip(struct rcursor *c, size_t n);
/* Succeeds only if nothing is left: for formats that must be consumed exactly. */
int rc_expect_end(const struct rcursor *c);

void wc_init(struct wcursor *c, void *buf, size_t cap);
int wc_u8(struct wcursor *c, uint8_t v);
int wc_u16(struct wcursor *c, uint16_t v);
int wc_u32(struct wcursor *c, uint32_t v);
int wc_u64(struct wcursor *c, uint64_t v);
int wc_bytes(struct wcursor *c, const void *p, size_t n);
/* Reserve n bytes to fill later (e.g. a length field); returns the pointer or NULL. */
uint8_t *wc_reserve(struct wcursor *c, size_t n);

/* Big-endian stores into fixed buffers the caller sized. */
void be16_put(uint8_t *p, uint16_t v);
void be32_put(uint8_t *p, uint32_t v);
void be64_put(uint8_t *p, uint64_t v);
uint16_t be16_get(const uint8_t *p);
uint32_t be32_get(const uint8_t *p);
uint64_t be64_get(const uint8_t *p);

#endif
