/*
 * aead.h — thin wrappers over OpenSSL 3 EVP: AES-256-GCM, HKDF-SHA256, SHA-256, RNG.
 *
 * Each function returns 0 on success and a negative value on failure; none of them keeps
 * state between calls. Lengths are size_t; the wrappers feed OpenSSL (whose lengths are
 * int) in chunks, so any size works.
 */
#ifndef VTPM_AEAD_H
#define VTPM_AEAD_H

#include <stddef.h>
#include <stdint.h>

#define AEAD_KEY_LEN   32
#define AEAD_NONCE_LEN 12
#define AEAD_TAG_LEN   16
#define SHA256_LEN     32

enum aead_err {
	AEAD_OK = 0,
	AEAD_ERR_CRYPTO = -1, /* OpenSSL failed (allocation, provider, ...) */
	AEAD_ERR_AUTH = -2,   /* aead_open: tag mismatch (wrong key, tampered or torn data) */
};

/*
 * AES-256-GCM encrypt ptlen bytes of pt into ct (same length; ct may equal pt) and write
 * the tag. pt and ct may be NULL when ptlen is 0, aad may be NULL when aadlen is 0.
 */
int aead_seal(const uint8_t key[AEAD_KEY_LEN], const uint8_t nonce[AEAD_NONCE_LEN],
	      const uint8_t *aad, size_t aadlen, const uint8_t *pt, size_t ptlen, uint8_t *ct,
	      uint8_t tag[AEAD_TAG_LEN]);

/*
 * AES-256-GCM decrypt and verify. Returns AEAD_ERR_AUTH on a tag mismatch; on any failure
 * the ctlen bytes of pt are cleansed, so unauthenticated plaintext never escapes.
 */
int aead_open(const uint8_t key[AEAD_KEY_LEN], const uint8_t nonce[AEAD_NONCE_LEN],
	      const uint8_t *aad, size_t aadlen, const uint8_t *ct, size_t ctlen,
	      const uint8_t tag[AEAD_TAG_LEN], uint8_t *pt);

/* HKDF-SHA256 (RFC 5869, extract and expand). salt and info may be empty. */
int hkdf_sha256(const uint8_t *ikm, size_t ikmlen, const uint8_t *salt, size_t saltlen,
		const uint8_t *info, size_t infolen, uint8_t *out, size_t outlen);

int sha256(const void *buf, size_t len, uint8_t out[SHA256_LEN]);
/* HMAC-SHA256 of len bytes under key (one shot). */
int hmac_sha256(const uint8_t *key, size_t keylen, const void *buf, size_t len,
		uint8_t out[SHA256_LEN]);

/* Fill buf from the OpenSSL CSPRNG; -1 if it cannot (never returns weak bytes). */
int random_bytes(void *buf, size_t n);

#endif
