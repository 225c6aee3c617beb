#include "vtpmd/blob_envelope.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/aead.h"
#include "common/cursor.h"
#include "common/log.h"
#include "vtpmd/ctrl_proto.h"

#define SALT_LEN  16
#define NONCE_LEN 12
#define TAG_LEN	  16
#define AAD_LEN	  (BLOB_HDR_LEN + 4)

static const char mig_info[] = "vtpmd migration v1";

static void put_header(uint8_t *p, uint16_t flags, uint32_t total)
{
	p[0] = BLOB_VERSION;
	p[1] = 1;
	be16_put(p + 2, BLOB_HDR_LEN);
	be16_put(p + 4, flags);
	be32_put(p + 6, total);
}

static int mig_derive(const uint8_t *mig_key, const uint8_t *salt, uint32_t type, uint8_t key[32])
{
	uint8_t info[sizeof(mig_info) - 1 + 4];

	memcpy(info, mig_info, sizeof(mig_info) - 1);
	be32_put(info + sizeof(mig_info) - 1, type);
	return hkdf_sha256(mig_key, 32, salt, SALT_LEN, info, sizeof(info), key, 32);
}

static int wrap_sealed(const uint8_t *raw, size_t len, uint32_t type, const uint8_t *mig_key,
		       uint8_t *buf, size_t total)
{
	uint8_t key[32], aad[AAD_LEN], *salt, *nonce;
	int rc = -1;

	put_header(buf, BLOB_FLAG_MIGRATION_ENCRYPTED | BLOB_FLAG_MIGRATION_256BIT,
		   (uint32_t)total);
	be16_put(buf + BLOB_HDR_LEN, BLOB_TAG_VTPM_AEAD);
	be32_put(buf + BLOB_HDR_LEN + 2, (uint32_t)(SALT_LEN + NONCE_LEN + len + TAG_LEN));
	salt = buf + BLOB_HDR_LEN + 6;
	nonce = salt + SALT_LEN;
	memcpy(aad, buf, BLOB_HDR_LEN);
	be32_put(aad + BLOB_HDR_LEN, type);
	if (random_bytes(salt, SALT_LEN) == 0 && random_bytes(nonce, NONCE_LEN) == 0 &&
	    mig_derive(mig_key, salt, type, key) == 0 &&
	    aead_seal(key, nonce, aad, sizeof(aad), raw, len, nonce + NONCE_LEN,
		      nonce + NONCE_LEN + len) == 0)
		rc = 0;
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

int blob_envelope_wrap(const uint8_t *raw, size_t len, uint32_t type, const uint8_t *mig_key,
		       uint8_t **out, size_t *out_len)
{
	size_t total = mig_key ? BLOB_HDR_LEN + 6 + SALT_LEN + NONCE_LEN + len + TAG_LEN
			       : BLOB_HDR_LEN + 6 + 6 + len;
	uint8_t *buf;

	if (len > UINT32_MAX - 128)
		return -1;
	buf = malloc(total);
	if (!buf)
		return -1;
	if (mig_key) {
		if (wrap_sealed(raw, len, type, mig_key, buf, total) < 0) {
			OPENSSL_cleanse(buf, total);
			free(buf);
			return -1;
		}
	} else {
		put_header(buf, BLOB_FLAG_MIGRATION_DATA, (uint32_t)total);
		be16_put(buf + 10, BLOB_TAG_MIGRATION_DATA);
		be32_put(buf + 12, (uint32_t)(6 + len));
		be16_put(buf + 16, BLOB_TAG_DATA);
		be32_put(buf + 18, (uint32_t)len);
		if (len)
			memcpy(buf + 22, raw, len);
	}
	*out = buf;
	*out_len = total;
	return 0;
}

/* Find the first TLV with the given tag in a TLV sequence. */
static int tlv_find(struct rcursor *c, uint16_t want, const uint8_t **val, size_t *val_len)
{
	while (rc_remaining(c) > 0) {
		uint16_t tag;
		uint32_t len;
		const uint8_t *p;

		if (rc_u16(c, &tag) < 0 || rc_u32(c, &len) < 0 || rc_ptr(c, &p, len) < 0)
			return -1;
		if (tag == want) {
			*val = p;
			*val_len = len;
			return 0;
		}
	}
	return -1;
}

static uint32_t copy_out(const uint8_t *p, size_t len, uint8_t **raw, size_t *raw_len)
{
	*raw = malloc(len ? len : 1);
	if (!*raw)
		return RES_FAIL;
	if (len)
		memcpy(*raw, p, len);
	*raw_len = len;
	return RES_SUCCESS;
}

static uint32_t unwrap_sealed(const uint8_t *hdr, struct rcursor *tlvs, uint32_t type,
			      const uint8_t *mig_key, uint8_t **raw, size_t *raw_len)
{
	const uint8_t *p, *salt, *nonce, *ct, *tag;
	uint8_t key[32], aad[AAD_LEN], *pt;
	struct rcursor c;
	size_t plen, ctlen;
	int rc;

	if (tlv_find(tlvs, BLOB_TAG_VTPM_AEAD, &p, &plen) < 0) {
		log_warnx("state blob is encrypted in a format vtpmd cannot open (swtpm's "
			  "migration key?)");
		return RES_DECRYPT_ERROR;
	}
	if (!mig_key)
		return RES_KEYNOTFOUND;
	rc_init(&c, p, plen);
	if (plen < SALT_LEN + NONCE_LEN + TAG_LEN || rc_ptr(&c, &salt, SALT_LEN) < 0 ||
	    rc_ptr(&c, &nonce, NONCE_LEN) < 0)
		return RES_BAD_PARAMETER;
	ctlen = plen - SALT_LEN - NONCE_LEN - TAG_LEN;
	if (rc_ptr(&c, &ct, ctlen) < 0 || rc_ptr(&c, &tag, TAG_LEN) < 0)
		return RES_BAD_PARAMETER;
	pt = malloc(ctlen ? ctlen : 1);
	if (!pt)
		return RES_FAIL;
	memcpy(aad, hdr, BLOB_HDR_LEN);
	be32_put(aad + BLOB_HDR_LEN, type);
	rc = mig_derive(mig_key, salt, type, key);
	if (rc == 0)
		rc = aead_open(key, nonce, aad, sizeof(aad), ct, ctlen, tag, pt);
	OPENSSL_cleanse(key, sizeof(key));
	if (rc != 0) {
		OPENSSL_cleanse(pt, ctlen);
		free(pt);
		log_warnx("state blob does not authenticate with the migration key (wrong key, or "
			  "the blob was modified)");
		return RES_DECRYPT_ERROR;
	}
	*raw = pt;
	*raw_len = ctlen;
	return RES_SUCCESS;
}

bool blob_envelope_has_header(const uint8_t *buf, size_t len)
{
	struct rcursor c;
	uint8_t version, min_version;
	uint16_t hdrsize, flags;
	uint32_t totlen;

	rc_init(&c, buf, len);
	if (rc_u8(&c, &version) < 0 || rc_u8(&c, &min_version) < 0 || rc_u16(&c, &hdrsize) < 0 ||
	    rc_u16(&c, &flags) < 0 || rc_u32(&c, &totlen) < 0)
		return false;
	return totlen == len && hdrsize == BLOB_HDR_LEN && min_version <= BLOB_VERSION;
}

uint32_t blob_envelope_unwrap(const uint8_t *buf, size_t len, uint32_t type, const uint8_t *mig_key,
			      uint8_t **raw, size_t *raw_len)
{
	struct rcursor c, inner;
	uint8_t version, min_version;
	uint16_t hdrsize, flags;
	uint32_t totlen;
	const uint8_t *p;
	size_t plen;

	*raw = NULL;
	*raw_len = 0;
	rc_init(&c, buf, len);
	if (rc_u8(&c, &version) < 0 || rc_u8(&c, &min_version) < 0 || rc_u16(&c, &hdrsize) < 0 ||
	    rc_u16(&c, &flags) < 0 || rc_u32(&c, &totlen) < 0)
		return RES_BAD_PARAMETER;
	if (min_version > BLOB_VERSION)
		return RES_BAD_VERSION;
	if (hdrsize < BLOB_HDR_LEN || hdrsize > len || totlen != len)
		return RES_BAD_PARAMETER;
	if (flags & BLOB_FLAG_ENCRYPTED)
		return RES_KEYNOTFOUND; /* sealed with another emulator's state-file key */
	rc_init(&c, buf + hdrsize, len - hdrsize);
	if (flags & BLOB_FLAG_MIGRATION_ENCRYPTED)
		return unwrap_sealed(buf, &c, type, mig_key, raw, raw_len);
	if (flags & BLOB_FLAG_MIGRATION_DATA) {
		if (tlv_find(&c, BLOB_TAG_MIGRATION_DATA, &p, &plen) < 0)
			return RES_BAD_PARAMETER;
		rc_init(&inner, p, plen);
	} else {
		inner = c;
	}
	if (tlv_find(&inner, BLOB_TAG_DATA, &p, &plen) < 0)
		return RES_BAD_PARAMETER;
	return copy_out(p, plen, raw, raw_len);
}
