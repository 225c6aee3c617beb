/*
 * keys.h — the manager's key hierarchy below the host TPM (ARCHITECTURE.md "Keys").
 *
 *   root key   32 random bytes, sealed to the host TPM (with the NV offset, see below)
 *   store MAC key = HKDF-SHA256(root, salt "", info "vtpmmgrd store mac v1"), 32 bytes
 *   group wrap key = HKDF-SHA256(root, salt "", info "vtpmmgrd group wrap v1")
 *   group key  32 random bytes, wrapped with AES-256-GCM under the group wrap key,
 *              AAD = group UUID (16 bytes)
 *   state key  32 random bytes, wrapped with AES-256-GCM under the group key,
 *              AAD = vTPM UUID (16) || group UUID (16)
 *
 * Wrapped format (KEYS_WRAPPED_LEN = 60 bytes): nonce (12, random) || ciphertext (32) ||
 * tag (16). Unwrapping checks the length and the tag: a wrapped key moved to another group
 * or vTPM (other AAD), altered, or wrapped under another root does not open.
 *
 * The sealed root secret (what host_tpm_seal protects, KEYS_ROOT_SECRET_LEN = 40 bytes):
 *   root key (32) || NV offset (8, big-endian two's complement int64)
 * The NV offset is the host NV counter's value minus the store counter (see rollback.h):
 * TPM NV counters start at an arbitrary value (the highest any counter had), the store's
 * at 0, so the offset ties them; it is sealed with the root key, so it cannot be edited.
 *
 * Every function returns 0 or -1 with a precise message in err; key material is never
 * put in a message, and temporary copies are cleansed.
 */
#ifndef VTPM_KEYS_H
#define VTPM_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define KEYS_KEY_LEN	     32
#define KEYS_WRAPPED_LEN     60
#define KEYS_ROOT_SECRET_LEN 40

int keys_random(uint8_t key[KEYS_KEY_LEN], char *err, size_t errlen);
int keys_store_mac_key(const uint8_t root[KEYS_KEY_LEN], uint8_t out[KEYS_KEY_LEN], char *err,
		       size_t errlen);

int keys_wrap_group(const uint8_t root[KEYS_KEY_LEN], const uint8_t group_uuid[16],
		    const uint8_t group_key[KEYS_KEY_LEN], uint8_t out[KEYS_WRAPPED_LEN], char *err,
		    size_t errlen);
int keys_unwrap_group(const uint8_t root[KEYS_KEY_LEN], const uint8_t group_uuid[16],
		      const uint8_t *wrapped, size_t len, uint8_t group_key[KEYS_KEY_LEN],
		      char *err, size_t errlen);

int keys_wrap_state(const uint8_t group_key[KEYS_KEY_LEN], const uint8_t vtpm_uuid[16],
		    const uint8_t group_uuid[16], const uint8_t state_key[KEYS_KEY_LEN],
		    uint8_t out[KEYS_WRAPPED_LEN], char *err, size_t errlen);
int keys_unwrap_state(const uint8_t group_key[KEYS_KEY_LEN], const uint8_t vtpm_uuid[16],
		      const uint8_t group_uuid[16], const uint8_t *wrapped, size_t len,
		      uint8_t state_key[KEYS_KEY_LEN], char *err, size_t errlen);

void keys_root_secret_encode(const uint8_t root[KEYS_KEY_LEN], int64_t nv_offset,
			     uint8_t out[KEYS_ROOT_SECRET_LEN]);
int keys_root_secret_decode(const uint8_t *secret, size_t len, uint8_t root[KEYS_KEY_LEN],
			    int64_t *nv_offset, char *err, size_t errlen);

/* A random version-4 UUID (RFC 9562). */
int keys_uuid_v4(uint8_t uuid[16], char *err, size_t errlen);

#endif
