/*
 * state_file.h — the on-disk format of one slot of a vTPM state file (pure: no I/O).
 *
 * A slot image is a 72-byte header followed by the payload and a trailer:
 *
 *   off size field
 *     0   4  magic "VTPS" (0x56 0x54 0x50 0x53)
 *     4   2  format version (1)                       big-endian
 *     6   2  flags: bit 0 ENCRYPTED; other bits must be 0
 *     8  16  vTPM UUID (binary)
 *    24   8  state version (grows by one with every committed write; >= 1)
 *    32  16  salt (random per write)
 *    48  12  nonce (random per write; zero when not encrypted)
 *    60   4  payload length N (bytes of ciphertext / plaintext that follow)
 *    64   4  slot capacity C: the size of the slot region this image was written for
 *            (a multiple of 4096, >= the image size 72+N+trailer)
 *    68   4  reserved (must be 0)
 *    72   N  payload: AES-256-GCM ciphertext when ENCRYPTED, else plaintext
 *  72+N  16  GCM tag (ENCRYPTED)  |  32  SHA-256(header || plaintext) (not encrypted)
 *
 * All integers are big-endian. The whole 72-byte header is authenticated.
 * ENCRYPTED: key = HKDF-SHA256(ikm = state key (32 bytes), salt = header.salt,
 * info = "vtpm state v1" || UUID), AES-256-GCM with header.nonce, AAD = the 72-byte header.
 * A fresh salt per write means each derived key encrypts exactly one image, so nonce
 * reuse cannot happen even if an old file is restored and written again.
 * Not encrypted: the SHA-256 trailer only detects torn or corrupted writes.
 *
 * The recorded slot capacity binds an image to the geometry of the file it was written
 * into: a state file whose size changed (slots moved) is detected instead of silently
 * loading an older slot. A decoder given a region smaller than C refuses the image.
 *
 * The plaintext payload is a sequence of TLVs: type u16, length u32, value; types
 * STATE_BLOB_PERMANENT (1) and STATE_BLOB_VOLATILE (2), each at most once, in any order;
 * unknown types are an error.
 */
#ifndef VTPM_STATE_FILE_H
#define VTPM_STATE_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STATE_MAGIC	     0x56545053u
#define STATE_FORMAT_VERSION 1
#define STATE_FLAG_ENCRYPTED 0x0001
#define STATE_HDR_LEN	     72
#define STATE_TAG_LEN	     16
#define STATE_DIGEST_LEN     32
#define STATE_KEY_LEN	     32
#define STATE_UUID_LEN	     16
/* Slot capacities, and so slot offsets, are multiples of this. */
#define STATE_SLOT_ALIGN 4096
/* Largest payload a slot may carry; libtpms' NV state is well below this. */
#define STATE_MAX_PAYLOAD (4u << 20)

enum state_blob_type {
	STATE_BLOB_PERMANENT = 1,
	STATE_BLOB_VOLATILE = 2,
};

enum state_err {
	STATE_OK = 0,
	STATE_ERR_EMPTY = -1,	       /* no magic: slot never written (or zeroed) */
	STATE_ERR_FORMAT = -2,	       /* header or lengths malformed, or payload TLVs invalid */
	STATE_ERR_FORMAT_VERSION = -3, /* written by an unknown (newer) format version */
	STATE_ERR_NEED_KEY = -4,       /* slot is encrypted and no key was given */
	STATE_ERR_UNEXPECTED_KEY = -5, /* slot is not encrypted but a key was given */
	STATE_ERR_UUID = -6,	       /* slot belongs to another vTPM */
	STATE_ERR_AUTH = -7,	       /* tag or digest mismatch: wrong key, tampered or torn */
	STATE_ERR_NOMEM = -8,
	STATE_ERR_CRYPTO = -9, /* OpenSSL failed */
	STATE_ERR_IO = -10,    /* used by state_store */
	STATE_ERR_TOO_BIG = -11,
	STATE_ERR_RESIZED = -12, /* authentic, but written for slots of another size */
};

struct state_slot_info {
	uint64_t version;
	uint8_t uuid[STATE_UUID_LEN];
	bool encrypted;
	uint32_t slot_cap; /* the slot capacity recorded in the header */
	/* SHA-256 of the whole slot image as stored: what vtpmd reports to the manager. */
	uint8_t digest[32];
};

/* Views into a decoded payload (pointers into the caller's plaintext buffer). */
struct state_blobs {
	const uint8_t *permanent;
	uint32_t permanent_len; /* 0 = absent */
	const uint8_t *volatile_state;
	uint32_t volatile_len; /* 0 = absent */
};

const char *state_strerror(int err);

/* Size of the slot image for a payload of len bytes. */
size_t state_slot_size(size_t payload_len, bool encrypted);

/*
 * Verify and decrypt one slot image held in a slot region of img_len bytes (trailing
 * bytes after the image are ignored: a slot lives in a fixed-size region). key: 32 bytes
 * or NULL. want_uuid: NULL accepts any UUID. On success *payload is a malloc'd plaintext
 * the caller must OPENSSL_cleanse and free, and info is filled in (info->slot_cap is the
 * recorded capacity; it may be smaller than img_len, which the caller decides about).
 * An image that authenticates but records a slot capacity larger than img_len (it was
 * written for a bigger region: the file was resized or truncated) is STATE_ERR_RESIZED;
 * in that case info is filled in too, and nothing is returned in *payload.
 * Never reads outside img.
 */
int state_slot_decode(const uint8_t *img, size_t img_len, const uint8_t *key,
		      const uint8_t *want_uuid, struct state_slot_info *info, uint8_t **payload,
		      size_t *payload_len);

/*
 * Build a slot image into out (capacity cap; use state_slot_size) for a slot region of
 * slot_cap bytes (a multiple of STATE_SLOT_ALIGN, >= the image size; recorded in the
 * header). Draws salt and nonce from the OpenSSL RNG. Fills info (version, uuid,
 * slot_cap, digest of the image).
 */
int state_slot_encode(uint8_t *out, size_t cap, size_t *out_len, const uint8_t *key,
		      const uint8_t uuid[STATE_UUID_LEN], uint64_t version, uint32_t slot_cap,
		      const uint8_t *payload, size_t payload_len, struct state_slot_info *info);

/* Parse payload TLVs; blobs point into payload. */
int state_payload_parse(const uint8_t *payload, size_t len, struct state_blobs *blobs);
/* Serialise blobs into a malloc'd payload (*out). */
int state_payload_build(const struct state_blobs *blobs, uint8_t **out, size_t *out_len);

#endif
