/*
 * state_file.c — encode and decode one slot of a vTPM state file (see state_file.h).
 *
 * Decoding treats the image as hostile: every field is read through a struct rcursor,
 * every length is checked against what is left before anything is allocated, and the
 * plaintext is only handed out after the tag (or digest) has verified.
 */
#include "common/state_file.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/aead.h"
#include "common/cursor.h"

#define STATE_SALT_LEN	16
#define STATE_NONCE_LEN 12
#define STATE_KDF_INFO	"vtpm state v1"
#define TLV_HDR_LEN	6

static const uint8_t state_magic[4] = {0x56, 0x54, 0x50, 0x53};

/* The header fields, as parsed from or about to be written to the first 72 bytes. */
struct state_hdr {
	uint16_t format;
	uint16_t flags;
	uint8_t uuid[STATE_UUID_LEN];
	uint64_t version;
	uint8_t salt[STATE_SALT_LEN];
	uint8_t nonce[STATE_NONCE_LEN];
	uint32_t payload_len;
	uint32_t slot_cap;
	uint32_t reserved;
};

const char *state_strerror(int err)
{
	switch (err) {
	case STATE_OK:
		return "success";
	case STATE_ERR_EMPTY:
		return "empty (never written)";
	case STATE_ERR_FORMAT:
		return "malformed";
	case STATE_ERR_FORMAT_VERSION:
		return "unsupported format version (written by a newer vtpm?)";
	case STATE_ERR_NEED_KEY:
		return "encrypted, but no key was given";
	case STATE_ERR_UNEXPECTED_KEY:
		return "not encrypted, but a key was given";
	case STATE_ERR_UUID:
		return "belongs to another vTPM (UUID mismatch)";
	case STATE_ERR_AUTH:
		return "authentication failed (wrong key, or the file was modified or torn)";
	case STATE_ERR_NOMEM:
		return "out of memory";
	case STATE_ERR_CRYPTO:
		return "cryptographic library failure";
	case STATE_ERR_IO:
		return "I/O error";
	case STATE_ERR_TOO_BIG:
		return "state too big";
	case STATE_ERR_RESIZED:
		return "written for a slot of another size (the file was resized or truncated)";
	}
	return "unknown error";
}

static size_t trailer_len(bool encrypted)
{
	return encrypted ? STATE_TAG_LEN : STATE_DIGEST_LEN;
}

size_t state_slot_size(size_t payload_len, bool encrypted)
{
	size_t fixed = STATE_HDR_LEN + trailer_len(encrypted);

	/* Saturate rather than wrap: no buffer can have SIZE_MAX bytes, so callers fail. */
	if (payload_len > SIZE_MAX - fixed)
		return SIZE_MAX;
	return fixed + payload_len;
}

/* The per-image key: a fresh salt per write makes every (key, nonce) pair unique. */
static int derive_key(const uint8_t *state_key, const struct state_hdr *h,
		      uint8_t out[AEAD_KEY_LEN])
{
	uint8_t info[sizeof(STATE_KDF_INFO) - 1 + STATE_UUID_LEN];

	memcpy(info, STATE_KDF_INFO, sizeof(STATE_KDF_INFO) - 1);
	memcpy(info + sizeof(STATE_KDF_INFO) - 1, h->uuid, STATE_UUID_LEN);
	if (hkdf_sha256(state_key, STATE_KEY_LEN, h->salt, sizeof(h->salt), info, sizeof(info), out,
			AEAD_KEY_LEN))
		return STATE_ERR_CRYPTO;
	return STATE_OK;
}

static int write_hdr(struct wcursor *w, const struct state_hdr *h)
{
	wc_bytes(w, state_magic, sizeof(state_magic));
	wc_u16(w, h->format);
	wc_u16(w, h->flags);
	wc_bytes(w, h->uuid, sizeof(h->uuid));
	wc_u64(w, h->version);
	wc_bytes(w, h->salt, sizeof(h->salt));
	wc_bytes(w, h->nonce, sizeof(h->nonce));
	wc_u32(w, h->payload_len);
	wc_u32(w, h->slot_cap);
	wc_u32(w, h->reserved);
	return w->failed ? -1 : 0;
}

/* Fill a header for a new image: fresh salt always, fresh nonce only when encrypting. */
static int new_hdr(struct state_hdr *h, bool encrypted, const uint8_t *uuid, uint64_t version,
		   size_t payload_len, uint32_t slot_cap)
{
	memset(h, 0, sizeof(*h));
	h->format = STATE_FORMAT_VERSION;
	h->flags = encrypted ? STATE_FLAG_ENCRYPTED : 0;
	memcpy(h->uuid, uuid, STATE_UUID_LEN);
	h->version = version;
	h->payload_len = (uint32_t)payload_len;
	h->slot_cap = slot_cap;
	if (random_bytes(h->salt, sizeof(h->salt)))
		return STATE_ERR_CRYPTO;
	if (encrypted && random_bytes(h->nonce, sizeof(h->nonce)))
		return STATE_ERR_CRYPTO;
	return STATE_OK;
}

static void fill_info(struct state_slot_info *info, const struct state_hdr *h, bool encrypted)
{
	info->version = h->version;
	memcpy(info->uuid, h->uuid, STATE_UUID_LEN);
	info->encrypted = encrypted;
	info->slot_cap = h->slot_cap;
}

int state_slot_encode(uint8_t *out, size_t cap, size_t *out_len, const uint8_t *key,
		      const uint8_t uuid[STATE_UUID_LEN], uint64_t version, uint32_t slot_cap,
		      const uint8_t *payload, size_t payload_len, struct state_slot_info *info)
{
	bool enc = key != NULL;
	size_t size = state_slot_size(payload_len, enc);
	struct state_hdr h;
	struct wcursor w;
	uint8_t *hdr, *body, *trailer, dk[AEAD_KEY_LEN];
	int rc;

	if (payload_len > STATE_MAX_PAYLOAD)
		return STATE_ERR_TOO_BIG;
	if (version == 0 || size > cap || slot_cap % STATE_SLOT_ALIGN)
		return STATE_ERR_FORMAT;
	if (size > slot_cap)
		return STATE_ERR_TOO_BIG;
	rc = new_hdr(&h, enc, uuid, version, payload_len, slot_cap);
	if (rc)
		return rc;
	wc_init(&w, out, size);
	hdr = wc_reserve(&w, STATE_HDR_LEN);
	body = wc_reserve(&w, payload_len);
	trailer = wc_reserve(&w, trailer_len(enc));
	if (w.failed)
		return STATE_ERR_FORMAT;
	wc_init(&w, hdr, STATE_HDR_LEN);
	if (write_hdr(&w, &h))
		return STATE_ERR_FORMAT;
	if (enc) {
		rc = derive_key(key, &h, dk);
		if (!rc &&
		    aead_seal(dk, h.nonce, hdr, STATE_HDR_LEN, payload, payload_len, body, trailer))
			rc = STATE_ERR_CRYPTO;
		OPENSSL_cleanse(dk, sizeof(dk));
	} else {
		if (payload_len)
			memcpy(body, payload, payload_len);
		/* header and payload are contiguous in out: one digest over both. */
		if (sha256(out, STATE_HDR_LEN + payload_len, trailer))
			rc = STATE_ERR_CRYPTO;
	}
	if (!rc && info) {
		fill_info(info, &h, enc);
		if (sha256(out, size, info->digest))
			rc = STATE_ERR_CRYPTO;
	}
	if (rc) {
		OPENSSL_cleanse(out, size);
		return rc;
	}
	*out_len = size;
	return STATE_OK;
}

/* Magic first, on its own: a missing or zeroed magic is an empty slot, not a damaged one. */
static int check_magic(const uint8_t *img, size_t img_len)
{
	static const uint8_t zero[4];
	struct rcursor c;
	const uint8_t *m;

	rc_init(&c, img, img_len);
	if (rc_ptr(&c, &m, sizeof(state_magic)) || !memcmp(m, zero, sizeof(zero)))
		return STATE_ERR_EMPTY;
	if (memcmp(m, state_magic, sizeof(state_magic)))
		return STATE_ERR_FORMAT;
	return STATE_OK;
}

/* Parse the 72 header bytes; the format version is checked before anything it governs. */
static int parse_hdr(const uint8_t *hdr, struct state_hdr *h)
{
	struct rcursor c;

	rc_init(&c, hdr, STATE_HDR_LEN);
	rc_skip(&c, sizeof(state_magic));
	if (rc_u16(&c, &h->format))
		return STATE_ERR_FORMAT;
	if (h->format != STATE_FORMAT_VERSION)
		return STATE_ERR_FORMAT_VERSION;
	rc_u16(&c, &h->flags);
	rc_bytes(&c, h->uuid, sizeof(h->uuid));
	rc_u64(&c, &h->version);
	rc_bytes(&c, h->salt, sizeof(h->salt));
	rc_bytes(&c, h->nonce, sizeof(h->nonce));
	rc_u32(&c, &h->payload_len);
	rc_u32(&c, &h->slot_cap);
	rc_u32(&c, &h->reserved);
	if (rc_expect_end(&c))
		return STATE_ERR_FORMAT;
	if (h->flags & ~STATE_FLAG_ENCRYPTED || h->reserved)
		return STATE_ERR_FORMAT;
	if (h->version == 0 || h->payload_len > STATE_MAX_PAYLOAD)
		return STATE_ERR_FORMAT;
	/* The image must fit in the slot it records (payload_len is bounded: no overflow). */
	if (h->slot_cap % STATE_SLOT_ALIGN ||
	    h->slot_cap < state_slot_size(h->payload_len, h->flags & STATE_FLAG_ENCRYPTED))
		return STATE_ERR_FORMAT;
	return STATE_OK;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/* Checks that need no cryptography: key presence, UUID, the zero nonce of a plain slot. */
static int check_policy(const struct state_hdr *h, const uint8_t *key, const uint8_t *want_uuid)
{
	bool enc = h->flags & STATE_FLAG_ENCRYPTED;

	if (enc && !key)
		return STATE_ERR_NEED_KEY;
	if (!enc && key)
		return STATE_ERR_UNEXPECTED_KEY;
	if (!enc && !all_zero(h->nonce, sizeof(h->nonce)))
		return STATE_ERR_FORMAT;
	/*
	 * Checked before authentication so that a slot of another vTPM gets a precise error;
	 * the UUID is also bound into the key derivation, so a forged UUID fails AUTH anyway.
	 */
	if (want_uuid && memcmp(h->uuid, want_uuid, STATE_UUID_LEN))
		return STATE_ERR_UUID;
	return STATE_OK;
}

/* The regions of an image, all borrowed from the caller's buffer through the cursor. */
struct slot_view {
	const uint8_t *hdr;
	const uint8_t *body;
	const uint8_t *trailer;
	const uint8_t *signed_part; /* header || body, what the plain digest covers */
	const uint8_t *whole;	    /* header || body || trailer */
	size_t size;
};

static int split_image(const uint8_t *img, size_t img_len, const struct state_hdr *h,
		       struct slot_view *v)
{
	bool enc = h->flags & STATE_FLAG_ENCRYPTED;
	struct rcursor c;

	v->size = state_slot_size(h->payload_len, enc);
	rc_init(&c, img, img_len);
	rc_ptr(&c, &v->hdr, STATE_HDR_LEN);
	rc_ptr(&c, &v->body, h->payload_len);
	rc_ptr(&c, &v->trailer, trailer_len(enc));
	if (c.failed)
		return STATE_ERR_FORMAT;
	rc_init(&c, img, img_len);
	rc_ptr(&c, &v->signed_part, STATE_HDR_LEN + (size_t)h->payload_len);
	rc_init(&c, img, img_len);
	rc_ptr(&c, &v->whole, v->size);
	return c.failed ? STATE_ERR_FORMAT : STATE_OK;
}

static int verify_plain(const struct slot_view *v, const struct state_hdr *h, uint8_t *pt)
{
	uint8_t md[STATE_DIGEST_LEN];

	if (sha256(v->signed_part, STATE_HDR_LEN + (size_t)h->payload_len, md))
		return STATE_ERR_CRYPTO;
	if (CRYPTO_memcmp(md, v->trailer, sizeof(md)))
		return STATE_ERR_AUTH;
	if (h->payload_len)
		memcpy(pt, v->body, h->payload_len);
	return STATE_OK;
}

static int open_encrypted(const struct slot_view *v, const struct state_hdr *h, const uint8_t *key,
			  uint8_t *pt)
{
	uint8_t dk[AEAD_KEY_LEN];
	int rc;

	rc = derive_key(key, h, dk);
	if (!rc) {
		rc = aead_open(dk, h->nonce, v->hdr, STATE_HDR_LEN, v->body, h->payload_len,
			       v->trailer, pt);
		if (rc == AEAD_ERR_AUTH)
			rc = STATE_ERR_AUTH;
		else if (rc)
			rc = STATE_ERR_CRYPTO;
	}
	OPENSSL_cleanse(dk, sizeof(dk));
	return rc;
}

int state_slot_decode(const uint8_t *img, size_t img_len, const uint8_t *key,
		      const uint8_t *want_uuid, struct state_slot_info *info, uint8_t **payload,
		      size_t *payload_len)
{
	struct state_hdr h;
	struct slot_view v;
	struct rcursor c;
	const uint8_t *hdr;
	uint8_t *pt;
	int rc;

	rc = check_magic(img, img_len);
	if (rc)
		return rc;
	rc_init(&c, img, img_len);
	if (rc_ptr(&c, &hdr, STATE_HDR_LEN))
		return STATE_ERR_FORMAT;
	rc = parse_hdr(hdr, &h);
	if (!rc)
		rc = split_image(img, img_len, &h, &v);
	if (!rc)
		rc = check_policy(&h, key, want_uuid);
	if (rc)
		return rc;
	/* The length was bounded by STATE_MAX_PAYLOAD and by the image before this malloc. */
	pt = malloc(h.payload_len ? h.payload_len : 1);
	if (!pt)
		return STATE_ERR_NOMEM;
	if (h.flags & STATE_FLAG_ENCRYPTED)
		rc = open_encrypted(&v, &h, key, pt);
	else
		rc = verify_plain(&v, &h, pt);
	if (!rc && info && sha256(v.whole, v.size, info->digest))
		rc = STATE_ERR_CRYPTO;
	if (!rc && info)
		fill_info(info, &h, h.flags & STATE_FLAG_ENCRYPTED);
	/*
	 * Checked after authentication, so that only a genuine image is called moved: it was
	 * written for a region bigger than the one it was found in.
	 */
	if (!rc && h.slot_cap > img_len)
		rc = STATE_ERR_RESIZED;
	if (rc) {
		OPENSSL_cleanse(pt, h.payload_len);
		free(pt);
		return rc;
	}
	*payload = pt;
	*payload_len = h.payload_len;
	return STATE_OK;
}

static int parse_tlv(struct rcursor *c, struct state_blobs *b, bool seen[3])
{
	uint16_t type;
	uint32_t len;
	const uint8_t *val;

	if (rc_u16(c, &type) || rc_u32(c, &len) || rc_ptr(c, &val, len))
		return STATE_ERR_FORMAT;
	if (type != STATE_BLOB_PERMANENT && type != STATE_BLOB_VOLATILE)
		return STATE_ERR_FORMAT;
	if (seen[type])
		return STATE_ERR_FORMAT;
	seen[type] = true;
	if (type == STATE_BLOB_PERMANENT) {
		b->permanent = len ? val : NULL;
		b->permanent_len = len;
	} else {
		b->volatile_state = len ? val : NULL;
		b->volatile_len = len;
	}
	return STATE_OK;
}

int state_payload_parse(const uint8_t *payload, size_t len, struct state_blobs *blobs)
{
	bool seen[3] = {false, false, false};
	struct rcursor c;
	int rc;

	memset(blobs, 0, sizeof(*blobs));
	rc_init(&c, payload, len);
	while (rc_remaining(&c) > 0) {
		rc = parse_tlv(&c, blobs, seen);
		if (rc) {
			memset(blobs, 0, sizeof(*blobs));
			return rc;
		}
	}
	return STATE_OK;
}

static void put_tlv(struct wcursor *w, uint16_t type, const uint8_t *val, uint32_t len)
{
	if (!len)
		return;
	wc_u16(w, type);
	wc_u32(w, len);
	wc_bytes(w, val, len);
}

int state_payload_build(const struct state_blobs *blobs, uint8_t **out, size_t *out_len)
{
	size_t total = 0;
	struct wcursor w;
	uint8_t *buf;

	/* Absent blobs (length 0) are left out; each blob is far below SIZE_MAX. */
	if (blobs->permanent_len)
		total += TLV_HDR_LEN + (size_t)blobs->permanent_len;
	if (blobs->volatile_len)
		total += TLV_HDR_LEN + (size_t)blobs->volatile_len;
	if (total > STATE_MAX_PAYLOAD)
		return STATE_ERR_TOO_BIG;
	buf = malloc(total ? total : 1);
	if (!buf)
		return STATE_ERR_NOMEM;
	wc_init(&w, buf, total);
	put_tlv(&w, STATE_BLOB_PERMANENT, blobs->permanent, blobs->permanent_len);
	put_tlv(&w, STATE_BLOB_VOLATILE, blobs->volatile_state, blobs->volatile_len);
	if (w.failed || w.pos != total) {
		OPENSSL_cleanse(buf, total);
		free(buf);
		return STATE_ERR_FORMAT;
	}
	*out = buf;
	*out_len = total;
	return STATE_OK;
}
