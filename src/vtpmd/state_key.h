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

int state_key_load(const struct key_opts *k, uint8_t key[32], char *err, size_t errlen);
/* Derive from material already in memory (unit tests, fuzzing of the hex parser). */
int state_key_derive(const struct key_opts *k, const uint8_t *material, size_t len, uint8_t key[32],
		     char *err, size_t errlen);

#endif
