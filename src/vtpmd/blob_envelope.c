#include "vtpmd/blob_envelope.h"

#include <stdlib.h>

#include "common/cursor.h"
#include "vtpmd/ctrl_proto.h"

int blob_envelope_wrap(const uint8_t *raw, size_t len, uint8_t **out, size_t *out_len)
{
	size_t total = BLOB_HDR_LEN + 6 + 6 + len;
	struct wcursor w;
	uint8_t *buf;

	if (len > UINT32_MAX - 64)
		return -1;
	buf = malloc(total);
	if (!buf)
		return -1;
	wc_init(&w, buf, total);
	wc_u8(&w, BLOB_VERSION);
	wc_u8(&w, 1);
	wc_u16(&w, BLOB_HDR_LEN);
	wc_u16(&w, BLOB_FLAG_MIGRATION_DATA);
	wc_u32(&w, (uint32_t)total);
	wc_u16(&w, BLOB_TAG_MIGRATION_DATA);
	wc_u32(&w, (uint32_t)(6 + len));
	wc_u16(&w, BLOB_TAG_DATA);
	wc_u32(&w, (uint32_t)len);
	wc_bytes(&w, raw, len);
	*out = buf;
	*out_len = w.pos;
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

uint32_t blob_envelope_unwrap(const uint8_t *buf, size_t len, const uint8_t **raw,
			      size_t *raw_len)
{
	struct rcursor c, inner;
	uint8_t version, min_version;
	uint16_t hdrsize, flags;
	uint32_t totlen;
	const uint8_t *p;
	size_t plen;

	rc_init(&c, buf, len);
	if (rc_u8(&c, &version) < 0 || rc_u8(&c, &min_version) < 0 || rc_u16(&c, &hdrsize) < 0 ||
	    rc_u16(&c, &flags) < 0 || rc_u32(&c, &totlen) < 0)
		return RES_BAD_PARAMETER;
	if (min_version > BLOB_VERSION)
		return RES_BAD_VERSION;
	if (hdrsize < BLOB_HDR_LEN || hdrsize > len || totlen != len)
		return RES_BAD_PARAMETER;
	if (flags & (BLOB_FLAG_ENCRYPTED | BLOB_FLAG_MIGRATION_ENCRYPTED))
		return RES_DECRYPT_ERROR;
	rc_init(&c, buf + hdrsize, len - hdrsize);
	if (flags & BLOB_FLAG_MIGRATION_DATA) {
		if (tlv_find(&c, BLOB_TAG_MIGRATION_DATA, &p, &plen) < 0)
			return RES_BAD_PARAMETER;
		rc_init(&inner, p, plen);
	} else {
		inner = c;
	}
	if (tlv_find(&inner, BLOB_TAG_DATA, raw, raw_len) < 0)
		return RES_BAD_PARAMETER;
	return RES_SUCCESS;
}
