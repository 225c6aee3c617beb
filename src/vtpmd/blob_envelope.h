/*
 * blob_envelope.h — the envelope swtpm puts around state blobs on the control channel
 * (CMD_GET_STATEBLOB / CMD_SET_STATEBLOB), so QEMU migration works between vtpmd and
 * swtpm in both directions:
 *
 *   u8 version (2), u8 min_version (1), u16 hdrsize (10), u16 flags, u32 totlen,
 *   then TLVs (u16 tag, u32 length, value).
 *
 * Without a migration key vtpmd writes flags = MIGRATION_DATA and TLV MIGRATION_DATA
 * { TLV DATA { libtpms blob } } exactly as swtpm does without keys, and reads that form and
 * swtpm's plain file form (flags 0, TLV DATA).
 *
 * With --migration-key the blob is sealed with AES-256-GCM: flags = MIGRATION_ENCRYPTED |
 * MIGRATION_256BIT_KEY and one TLV VTPM_AEAD_MIGRATION_DATA { salt 16, nonce 12,
 * ciphertext, tag 16 }, key = HKDF-SHA256(migration key, salt, "vtpmd migration v1" || u32
 * blob type), AAD = the 10-byte header || u32 blob type, so a blob cannot be replayed as
 * another type. swtpm's own migration-key format (AES-CBC + HMAC) is not read: such a blob
 * is refused with TPM_DECRYPT_ERROR and a log line that says why.
 */
#ifndef VTPMD_BLOB_ENVELOPE_H
#define VTPMD_BLOB_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BLOB_HDR_LEN		      10
#define BLOB_VERSION		      2
#define BLOB_FLAG_ENCRYPTED	      0x01
#define BLOB_FLAG_MIGRATION_ENCRYPTED 0x02
#define BLOB_FLAG_MIGRATION_DATA      0x04
#define BLOB_FLAG_MIGRATION_256BIT    0x10
#define BLOB_TAG_DATA		      1
#define BLOB_TAG_ENCRYPTED_DATA	      2
#define BLOB_TAG_HMAC		      3
#define BLOB_TAG_MIGRATION_DATA	      4
#define BLOB_TAG_VTPM_AEAD	      0x7601 /* vtpmd's sealed migration data */

/* Wrap raw bytes of a PTM_BLOB_TYPE_* (sealed when mig_key, 32 bytes, is given); *out is
 * malloc'd. Returns 0 or -1 (no memory, RNG or cipher failure). */
int blob_envelope_wrap(const uint8_t *raw, size_t len, uint32_t type, const uint8_t *mig_key,
		       uint8_t **out, size_t *out_len);
/* Take the libtpms blob out of an envelope into a malloc'd *raw (cleanse and free it).
 * Returns a control-channel result code: 0, RES_BAD_VERSION, RES_KEYNOTFOUND (sealed, no
 * key), RES_DECRYPT_ERROR (wrong key, tampered, or a format we cannot open),
 * RES_BAD_PARAMETER (malformed). */
/* swtpm's state files (and blobs) before its version 2 have no envelope: the file is the
 * libtpms blob itself. True when buf starts with a header swtpm would take as one (its
 * totlen is len, its size BLOB_HDR_LEN, its min_version one we read). */
bool blob_envelope_has_header(const uint8_t *buf, size_t len);
uint32_t blob_envelope_unwrap(const uint8_t *buf, size_t len, uint32_t type, const uint8_t *mig_key,
			      uint8_t **raw, size_t *raw_len);

#endif
