/*
 * state_key.h — turn --key material into the 32-byte state key.
 *
 * A key (file= or fd=, binary or hex, 128 or 256 bits as mode= says) or a passphrase
 * (pwdfile= or pwdfd=; PBKDF2-HMAC-SHA512, or one SHA-512 with kdf=sha512) is read once;
 * the state key is HKDF-SHA256 of it, so keys of either size give an AES-256 key. The
 * material is cleansed as soon as the key is derived.
 */
#ifndef VTPMD_STATE_KEY_H
#define VTPMD_STATE_KEY_H

#include <stddef.h>
#include <stdint.h>

#include "vtpmd/options.h"
#include "vtpmd/swtpm_format.h"

int state_key_load(const struct key_opts *k, uint8_t key[32], char *err, size_t errlen);
/* The same, and swtpm 0.7.1's raw key from the same material into *sw (swtpm_format.h);
 * sw->len is 0, with the reason in sw_err, when swtpm would refuse the material. */
int state_key_load_swtpm(const struct key_opts *k, uint8_t key[32], struct swtpm_key *sw,
			 char *sw_err, size_t sw_errlen, char *err, size_t errlen);
/* Derive from material already in memory (unit tests, fuzzing of the hex parser). */
int state_key_derive(const struct key_opts *k, const uint8_t *material, size_t len, uint8_t key[32],
		     char *err, size_t errlen);

/*
 * Managed mode: the key state blobs leave vtpmd under (CMD_GET_STATEBLOB) when no
 * --migration-key is given: HKDF-SHA256(state key, salt = vTPM UUID,
 * info "vtpm-managed-blob-v1"). It moves with the vTPM (a destination manager that imports
 * the vTPM hands the same state key to the destination vtpmd, which derives the same key),
 * and no one who reaches the control channel gets the plaintext state.
 */
int state_key_blob_key(const uint8_t state_key[32], const uint8_t uuid[16], uint8_t out[32]);

#endif
