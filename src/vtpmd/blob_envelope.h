/*
 * blob_envelope.h — the envelope swtpm puts around state blobs on the control channel
 * (CMD_GET_STATEBLOB / CMD_SET_STATEBLOB), so QEMU migration works between vtpmd and
 * swtpm in both directions:
 *
 *   u8 version (2), u8 min_version (1), u16 hdrsize (10), u16 flags, u32 totlen,
 *   then TLVs (u16 tag, u32 length, value).
 *
 * vtpmd writes flags = MIGRATION_DATA and TLV MIGRATION_DATA { TLV DATA { libtpms blob } }
 * exactly as swtpm does without keys. It reads that form and the plain form (flags 0, TLV
 * DATA), and refuses encrypted envelopes with a precise code.
 */
#ifndef VTPMD_BLOB_ENVELOPE_H
#define VTPMD_BLOB_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#define BLOB_HDR_LEN                  10
#define BLOB_VERSION                  2
#define BLOB_FLAG_ENCRYPTED           0x01
#define BLOB_FLAG_MIGRATION_ENCRYPTED 0x02
#define BLOB_FLAG_MIGRATION_DATA      0x04
#define BLOB_TAG_DATA                 1
#define BLOB_TAG_ENCRYPTED_DATA       2
#define BLOB_TAG_HMAC                 3
#define BLOB_TAG_MIGRATION_DATA       4

/* Wrap raw bytes; *out is malloc'd. Returns 0 or -1 (no memory). */
int blob_envelope_wrap(const uint8_t *raw, size_t len, uint8_t **out, size_t *out_len);
/* Find the libtpms blob inside an envelope (points into buf). Returns a control-channel
 * result code: 0, RES_BAD_VERSION, RES_DECRYPT_ERROR (encrypted), RES_BAD_PARAMETER. */
uint32_t blob_envelope_unwrap(const uint8_t *buf, size_t len, const uint8_t **raw,
			      size_t *raw_len);

#endif
