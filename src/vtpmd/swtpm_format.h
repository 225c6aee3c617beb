/*
 * swtpm_format.h — swtpm 0.7.1's state files and migration blobs (docs/swtpm-formats.md).
 *
 * vtpmd reads what swtpm writes with --key (state files tpm2-00.permall and
 * tpm2-00.volatilestate) and --migration-key (CMD_GET_STATEBLOB blobs), and writes both,
 * so a vTPM moves between swtpm and vtpmd in either direction:
 *
 *   header: u8 version 2, u8 min_version 1, u16 hdrsize 10, u16 flags, u32 totlen
 *   TLVs:   u16 tag, u32 length, value
 *   cipher: AES-128/256-CBC, IV as long as the key, padding to a multiple of the key length,
 *           HMAC-SHA256 (same key) over ciphertext || IV, checked before decrypting.
 *
 * Every byte is read through the cursor. Keys are swtpm's raw keys (16 or 32 bytes), derived
 * from --key material exactly as swtpm does (swtpm_key_derive), not vtpmd's own state key.
 * Decoders never hand out bytes on failure; plaintext buffers are cleansed before free.
 */
#ifndef VTPMD_SWTPM_FORMAT_H
#define VTPMD_SWTPM_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vtpmd/options.h"

#define SWTPM_HDR_LEN	      10
#define SWTPM_HDR_VERSION     2
#define SWTPM_FLAG_ENCRYPTED  0x01
#define SWTPM_FLAG_MIG_ENCR   0x02
#define SWTPM_FLAG_MIG_DATA   0x04
#define SWTPM_FLAG_ENC_256    0x08
#define SWTPM_FLAG_MIG_256    0x10
#define SWTPM_TAG_DATA	      1
#define SWTPM_TAG_ENC_DATA    2
#define SWTPM_TAG_HMAC	      3
#define SWTPM_TAG_MIG_DATA    4
#define SWTPM_TAG_ENC_MIG     5
#define SWTPM_TAG_IV_ENC_DATA 6
#define SWTPM_TAG_IV_ENC_MIG  7
#define SWTPM_TAG_VTPM_AEAD   0x7601 /* vtpmd's own sealed envelope (blob_envelope.h) */

#define SWTPM_PERMALL_NAME  "tpm2-00.permall"
#define SWTPM_VOLATILE_NAME "tpm2-00.volatilestate"

/* swtpm's key: len 0 = none, else 16 (AES-128) or 32 (AES-256). */
struct swtpm_key {
	uint8_t key[32];
	size_t len;
};

enum swtpm_fmt_err {
	SWF_OK = 0,
	SWF_ERR_MALFORMED = -1, /* not a well-formed header/TLV sequence, tag missing */
	SWF_ERR_VERSION = -2,	/* min_version newer than 2 */
	SWF_ERR_NO_KEY = -3,	/* encrypted, and no key of that kind was given */
	SWF_ERR_KEY_SIZE = -4,	/* encrypted with a key of the other size */
	SWF_ERR_AUTH = -5,	/* HMAC (or v1 hash) mismatch: wrong key, or modified */
	SWF_ERR_CRYPTO = -6,	/* OpenSSL, RNG or allocation failure */
};

/* A control-channel result code for an swtpm_fmt_err (as swtpm answers). */
uint32_t swtpm_fmt_res(int err);

/*
 * swtpm's key from --key material in memory, as swtpm 0.7.1 derives it (format absent =
 * hex; passphrase: PBKDF2-SHA512 salt "swtpm" 1000 iterations, or SHA-512). Returns 0, or
 * -1 with a message (never containing key material) in err.
 */
int swtpm_key_derive(const struct key_opts *k, const uint8_t *material, size_t len,
		     struct swtpm_key *out, char *err, size_t errlen);

/* True when buf starts with a header swtpm takes as one (totlen == len, hdrsize 10,
 * min_version <= 2); flags receives the header flags (may be NULL). */
bool swtpm_has_header(const uint8_t *buf, size_t len, uint16_t *flags);

/*
 * A state file (tpm2-00.permall, ...) into the libtpms blob (*raw malloc'd; cleanse, free).
 * fk: swtpm's --key, or NULL. A file with a header is opened as its flags say (plain even
 * when a key is given); a file without one is swtpm's version 1 (encrypted iff fk). Returns
 * SWF_OK or an error with a message in err.
 */
int swtpm_file_decode(const uint8_t *buf, size_t len, const struct swtpm_key *fk, uint8_t **raw,
		      size_t *raw_len, char *err, size_t errlen);
/* The libtpms blob as swtpm writes the file (encrypted when fk). *out malloc'd. */
int swtpm_file_encode(const uint8_t *raw, size_t len, const struct swtpm_key *fk, uint8_t **out,
		      size_t *out_len);

/*
 * A CMD_GET_STATEBLOB blob as swtpm makes it: the inner encrypted with fk when fk (then
 * *inner_encrypted is true: answer PTM_STATE_FLAG_ENCRYPTED), the whole sealed with mk when
 * mk. Either may be NULL.
 */
int swtpm_blob_encode(const uint8_t *raw, size_t len, const struct swtpm_key *fk,
		      const struct swtpm_key *mk, uint8_t **out, size_t *out_len,
		      bool *inner_encrypted);
/*
 * A CMD_SET_STATEBLOB blob (len > 0) in swtpm's format into the libtpms blob. req_encrypted:
 * the request's PTM_STATE_FLAG_ENCRYPTED. fk, mk may be NULL (then an encrypted layer is
 * SWF_ERR_NO_KEY).
 */
int swtpm_blob_decode(const uint8_t *buf, size_t len, bool req_encrypted,
		      const struct swtpm_key *fk, const struct swtpm_key *mk, uint8_t **raw,
		      size_t *raw_len, char *err, size_t errlen);
/* The format rule of SET_STATEBLOB: true when the blob needs swtpm_blob_decode (sealed with
 * swtpm's migration key: MIGRATION_ENCRYPTED and no vtpmd TLV 0x7601; or its inner is
 * encrypted with the file key), false for plain blobs and vtpmd's own sealed envelope. */
bool swtpm_blob_is_swtpm_sealed(const uint8_t *buf, size_t len, bool req_encrypted);

#endif
