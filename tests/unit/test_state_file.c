/*
 * test_state_file.c — the slot format (state_file.h) and the crypto wrappers under it.
 *
 * Every malformed image is copied into a buffer of exactly its length (the image alone, or
 * the slot region it was written for), so that under ASan a decoder that reads one byte
 * too far is caught, not just a wrong answer.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/aead.h"
#include "common/cursor.h"
#include "common/state_file.h"
#include "unit.h"

#define OFF_FORMAT   4
#define OFF_FLAGS    6
#define OFF_UUID     8
#define OFF_VERSION  24
#define OFF_NONCE    48
#define OFF_LEN	     60
#define OFF_SLOT_CAP 64
#define OFF_RESERVED 68

static const uint8_t key[STATE_KEY_LEN] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f};
static const uint8_t uuid[STATE_UUID_LEN] = {0x6b, 0x1f, 0x2c, 0x44, 0x1e, 0x2a, 0x4b, 0x8c,
					     0x9d, 0x10, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77};

static size_t region_of(size_t n)
{
	return (n + STATE_SLOT_ALIGN - 1) / STATE_SLOT_ALIGN * STATE_SLOT_ALIGN;
}

/* A small image in its slot region (zero-padded): encrypted with key when enc, else plain. */
struct image {
	uint8_t *buf;
	size_t len;    /* the image */
	size_t region; /* the slot region it was written for (4096): buf holds this much */
	uint8_t payload[100];
	struct state_slot_info info;
};

static int make_image(struct image *im, bool enc, uint64_t version)
{
	size_t cap;

	for (size_t i = 0; i < sizeof(im->payload); i++)
		im->payload[i] = (uint8_t)(i * 7 + 3);
	cap = state_slot_size(sizeof(im->payload), enc);
	im->region = region_of(cap);
	im->buf = calloc(1, im->region);
	if (!im->buf)
		return -1;
	return state_slot_encode(im->buf, cap, &im->len, enc ? key : NULL, uuid, version,
				 (uint32_t)im->region, im->payload, sizeof(im->payload), &im->info);
}

/* Decode a copy of exactly len bytes (ASan sees any read past it). */
static int decode_copy(const uint8_t *img, size_t len, const uint8_t *k, const uint8_t *want)
{
	struct state_slot_info info;
	uint8_t *copy = malloc(len ? len : 1), *pt = NULL;
	size_t ptlen = 0;
	int rc;

	if (!copy)
		return STATE_ERR_NOMEM;
	if (len)
		memcpy(copy, img, len);
	rc = state_slot_decode(copy, len, k, want, &info, &pt, &ptlen);
	if (rc == STATE_OK) {
		OPENSSL_cleanse(pt, ptlen);
		free(pt);
	}
	free(copy);
	return rc;
}

/* Plain images: patch a header field and re-seal the digest, so only that field is wrong. */
static void reseal_plain(uint8_t *img)
{
	uint32_t n = be32_get(img + OFF_LEN);

	sha256(img, STATE_HDR_LEN + n, img + STATE_HDR_LEN + n);
}

static void round_trip(bool enc, size_t plen, const char *name)
{
	uint8_t *payload = malloc(plen ? plen : 1), *img, *out = NULL;
	size_t cap = state_slot_size(plen, enc), region = region_of(cap), len = 0, outlen = 0;
	struct state_slot_info ei, di;
	int rc;

	unit_begin(name);
	img = malloc(region + 4096);
	if (!CHECK(payload && img))
		goto out;
	for (size_t i = 0; i < plen; i++)
		payload[i] = (uint8_t)(i ^ 0x5a);
	rc = state_slot_encode(img, cap, &len, enc ? key : NULL, uuid, 42, (uint32_t)region,
			       payload, plen, &ei);
	if (!CHECKF(rc == STATE_OK, "encode: %s", state_strerror(rc)))
		goto out;
	CHECK(len == cap);
	CHECK(ei.version == 42 && ei.encrypted == enc && !memcmp(ei.uuid, uuid, 16));
	CHECK(ei.slot_cap == region && be32_get(img + OFF_SLOT_CAP) == region);
	CHECK(be32_get(img + OFF_RESERVED) == 0);
	if (!enc)
		CHECK(!memcmp(img + STATE_HDR_LEN, payload, plen));
	/* A slot lives in a fixed region: bytes after the image must be ignored. */
	memset(img + len, 0xa5, region + 4096 - len);
	rc = state_slot_decode(img, region + 4096, enc ? key : NULL, uuid, &di, &out, &outlen);
	if (!CHECKF(rc == STATE_OK, "decode: %s", state_strerror(rc)))
		goto out;
	CHECK(outlen == plen && (plen == 0 || !memcmp(out, payload, plen)));
	CHECK(di.version == 42 && di.encrypted == enc && !memcmp(di.uuid, uuid, 16));
	CHECK(di.slot_cap == region);
	CHECK(!memcmp(di.digest, ei.digest, 32));
	CHECK(decode_copy(img, region, enc ? key : NULL, NULL) == STATE_OK);
	/* The image alone claims a region bigger than it is given: it was moved. */
	CHECK(decode_copy(img, len, enc ? key : NULL, NULL) == STATE_ERR_RESIZED);
	CHECK(decode_copy(img, region - 1, enc ? key : NULL, NULL) == STATE_ERR_RESIZED);
out:
	free(out);
	free(img);
	free(payload);
	unit_end();
}

static void test_fresh_randomness(void)
{
	struct image a = {0}, b = {0};

	unit_begin("two encodes of the same state differ (fresh salt and nonce)");
	if (CHECK(make_image(&a, true, 1) == 0 && make_image(&b, true, 1) == 0)) {
		CHECK(memcmp(a.buf + 32, b.buf + 32, 16) != 0);
		CHECK(memcmp(a.buf + OFF_NONCE, b.buf + OFF_NONCE, 12) != 0);
		CHECK(memcmp(a.info.digest, b.info.digest, 32) != 0);
	}
	free(a.buf);
	free(b.buf);
	unit_end();
}

static void truncations(bool enc, const char *name)
{
	struct image im = {0};

	unit_begin(name);
	if (!CHECK(make_image(&im, enc, 7) == 0))
		goto out;
	/* Shorter than the image: malformed; whole image, but not the region: moved. */
	for (size_t n = 0; n < im.region; n++) {
		int rc = decode_copy(im.buf, n, enc ? key : NULL, uuid);
		int want = n < 4	? STATE_ERR_EMPTY
			   : n < im.len ? STATE_ERR_FORMAT
					: STATE_ERR_RESIZED;

		if (!CHECKF(rc == want, "length %zu of %zu: %s", n, im.len, state_strerror(rc)))
			break;
	}
	CHECK(decode_copy(im.buf, im.region, enc ? key : NULL, uuid) == STATE_OK);
out:
	free(im.buf);
	unit_end();
}

static bool acceptable_failure(int rc)
{
	return rc == STATE_ERR_AUTH || rc == STATE_ERR_FORMAT || rc == STATE_ERR_FORMAT_VERSION ||
	       rc == STATE_ERR_NEED_KEY || rc == STATE_ERR_UNEXPECTED_KEY;
}

static void bit_flips(bool enc, const char *name)
{
	struct image im = {0};

	unit_begin(name);
	if (!CHECK(make_image(&im, enc, 3) == 0))
		goto out;
	for (size_t bit = 0; bit < im.len * 8; bit++) {
		int rc;

		im.buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		rc = decode_copy(im.buf, im.region, enc ? key : NULL, NULL);
		im.buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (!CHECKF(acceptable_failure(rc), "bit %zu (byte %zu): %s", bit, bit / 8,
			    rc ? state_strerror(rc) : "decoded successfully"))
			break;
	}
	CHECK(decode_copy(im.buf, im.region, enc ? key : NULL, NULL) == STATE_OK);
out:
	free(im.buf);
	unit_end();
}

static void test_key_and_uuid_errors(void)
{
	struct image e = {0}, p = {0};
	uint8_t wrong[STATE_KEY_LEN], other[STATE_UUID_LEN];

	memcpy(wrong, key, sizeof(wrong));
	wrong[31] ^= 1;
	memcpy(other, uuid, sizeof(other));
	other[0] ^= 0x80;
	unit_begin("wrong key, missing key, unexpected key, UUID mismatch");
	if (!CHECK(make_image(&e, true, 1) == 0 && make_image(&p, false, 1) == 0))
		goto out;
	CHECK(decode_copy(e.buf, e.region, wrong, uuid) == STATE_ERR_AUTH);
	CHECK(decode_copy(e.buf, e.region, NULL, uuid) == STATE_ERR_NEED_KEY);
	CHECK(decode_copy(p.buf, p.region, key, uuid) == STATE_ERR_UNEXPECTED_KEY);
	CHECK(decode_copy(e.buf, e.region, key, other) == STATE_ERR_UUID);
	CHECK(decode_copy(p.buf, p.region, NULL, other) == STATE_ERR_UUID);
	/* A forged UUID that matches the caller still fails: the UUID is in the AAD and KDF. */
	memcpy(e.buf + OFF_UUID, other, 16);
	CHECK(decode_copy(e.buf, e.region, key, other) == STATE_ERR_AUTH);
out:
	free(e.buf);
	free(p.buf);
	unit_end();
}

static void test_header_fields(void)
{
	struct image p = {0}, e = {0};
	uint8_t *img;

	unit_begin("version 0, unknown flags, format version, magic, zeroed slot");
	if (!CHECK(make_image(&p, false, 1) == 0 && make_image(&e, true, 1) == 0))
		goto out;
	img = p.buf;
	be64_put(img + OFF_VERSION, 0);
	reseal_plain(img);
	CHECK(decode_copy(img, p.region, NULL, NULL) == STATE_ERR_FORMAT);
	be64_put(img + OFF_VERSION, 1);
	reseal_plain(img);
	CHECK(decode_copy(img, p.region, NULL, NULL) == STATE_OK);
	for (int bit = 1; bit < 16; bit++) {
		be16_put(img + OFF_FLAGS, (uint16_t)(1u << bit));
		reseal_plain(img);
		CHECKF(decode_copy(img, p.region, NULL, NULL) == STATE_ERR_FORMAT, "flag bit %d",
		       bit);
	}
	be16_put(img + OFF_FLAGS, 0);
	be16_put(img + OFF_FORMAT, 2);
	reseal_plain(img);
	CHECK(decode_copy(img, p.region, NULL, NULL) == STATE_ERR_FORMAT_VERSION);
	be16_put(img + OFF_FORMAT, 0);
	reseal_plain(img);
	CHECK(decode_copy(img, p.region, NULL, NULL) == STATE_ERR_FORMAT_VERSION);
	be16_put(img + OFF_FORMAT, 1);
	img[OFF_NONCE] = 1; /* a plain slot's nonce must be zero */
	reseal_plain(img);
	CHECK(decode_copy(img, p.region, NULL, NULL) == STATE_ERR_FORMAT);
	img[OFF_NONCE] = 0;
	img[0] = 'X';
	CHECK(decode_copy(img, p.region, NULL, NULL) == STATE_ERR_FORMAT);
	memset(img, 0, 4);
	CHECK(decode_copy(img, p.region, NULL, NULL) == STATE_ERR_EMPTY);
	memset(img, 0, p.region);
	CHECK(decode_copy(img, p.region, NULL, NULL) == STATE_ERR_EMPTY);
	CHECK(decode_copy(img, p.region, key, NULL) == STATE_ERR_EMPTY);
	be16_put(e.buf + OFF_FORMAT, 2);
	CHECK(decode_copy(e.buf, e.region, key, NULL) == STATE_ERR_FORMAT_VERSION);
out:
	free(p.buf);
	free(e.buf);
	unit_end();
}

static void test_payload_lengths(void)
{
	static const uint32_t bad[] = {STATE_MAX_PAYLOAD + 1, 0xffffffffu, 0x80000000u, 101, 200};
	struct image p = {0}, e = {0};

	unit_begin("payload length beyond the limit or the image");
	if (!CHECK(make_image(&p, false, 1) == 0 && make_image(&e, true, 1) == 0))
		goto out;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		be32_put(p.buf + OFF_LEN, bad[i]);
		CHECKF(decode_copy(p.buf, p.len, NULL, NULL) == STATE_ERR_FORMAT, "plain N=%u",
		       bad[i]);
		be32_put(e.buf + OFF_LEN, bad[i]);
		CHECKF(decode_copy(e.buf, e.len, key, NULL) == STATE_ERR_FORMAT, "enc N=%u",
		       bad[i]);
	}
	/* Within the slot region, but the image would not fit the slot it records. */
	be32_put(p.buf + OFF_LEN, 4096 - STATE_HDR_LEN - STATE_DIGEST_LEN + 1);
	CHECK(decode_copy(p.buf, p.region, NULL, NULL) == STATE_ERR_FORMAT);
	be32_put(e.buf + OFF_LEN, 4096 - STATE_HDR_LEN - STATE_TAG_LEN + 1);
	CHECK(decode_copy(e.buf, e.region, key, NULL) == STATE_ERR_FORMAT);
	/* Longer than written but within the slot: the digest / tag no longer match. */
	be32_put(p.buf + OFF_LEN, 4096 - STATE_HDR_LEN - STATE_DIGEST_LEN);
	CHECK(decode_copy(p.buf, p.region, NULL, NULL) == STATE_ERR_AUTH);
	/* Shorter than written: the digest / tag no longer match. */
	be32_put(p.buf + OFF_LEN, 99);
	CHECK(decode_copy(p.buf, p.len, NULL, NULL) == STATE_ERR_AUTH);
	CHECK(decode_copy(p.buf, p.region, NULL, NULL) == STATE_ERR_AUTH);
	be32_put(e.buf + OFF_LEN, 0);
	CHECK(decode_copy(e.buf, e.len, key, NULL) == STATE_ERR_AUTH);
	CHECK(decode_copy(e.buf, e.region, key, NULL) == STATE_ERR_AUTH);
out:
	free(p.buf);
	free(e.buf);
	unit_end();
}

static void test_encode_limits(void)
{
	uint8_t out[256], pl[16] = {0};
	size_t len = 0;

	unit_begin("encode refuses version 0, small buffers, bad slot sizes, oversized payloads");
	CHECK(state_slot_encode(out, sizeof(out), &len, key, uuid, 0, 4096, pl, sizeof(pl), NULL) ==
	      STATE_ERR_FORMAT);
	CHECK(state_slot_encode(out, state_slot_size(16, true) - 1, &len, key, uuid, 1, 4096, pl,
				sizeof(pl), NULL) < 0);
	CHECK(state_slot_encode(out, state_slot_size(16, false) - 1, &len, NULL, uuid, 1, 4096, pl,
				sizeof(pl), NULL) < 0);
	CHECK(state_slot_encode(out, sizeof(out), &len, key, uuid, 1, 4096, pl,
				(size_t)STATE_MAX_PAYLOAD + 1, NULL) == STATE_ERR_TOO_BIG);
	/* The slot size: a multiple of 4096 that holds the image. */
	CHECK(state_slot_encode(out, sizeof(out), &len, key, uuid, 1, 4097, pl, sizeof(pl), NULL) ==
	      STATE_ERR_FORMAT);
	CHECK(state_slot_encode(out, sizeof(out), &len, key, uuid, 1, 2048, pl, sizeof(pl), NULL) ==
	      STATE_ERR_FORMAT);
	CHECK(state_slot_encode(out, sizeof(out), &len, key, uuid, 1, 0, pl, sizeof(pl), NULL) ==
	      STATE_ERR_TOO_BIG);
	CHECK(state_slot_encode(out, sizeof(out), &len, NULL, uuid, UINT64_MAX, 4096, pl, 16,
				NULL) == STATE_OK);
	CHECK(state_slot_encode(out, sizeof(out), &len, NULL, uuid, 1, 0xfffff000u, pl, 16, NULL) ==
	      STATE_OK);
	CHECK(state_slot_size(0, true) == 88 && state_slot_size(0, false) == 104);
	CHECK(state_slot_size(1000, true) == 1088 && state_slot_size(SIZE_MAX, true) == SIZE_MAX);
	unit_end();
}

/* A plain image with slot_cap patched to cap and the digest re-sealed; decoded in a region. */
static int decode_with_cap(struct image *p, uint32_t cap, size_t region)
{
	uint8_t *buf = calloc(1, region);
	int rc;

	if (!buf)
		return STATE_ERR_NOMEM;
	memcpy(buf, p->buf, p->len);
	be32_put(buf + OFF_SLOT_CAP, cap);
	reseal_plain(buf);
	rc = decode_copy(buf, region, NULL, NULL);
	free(buf);
	return rc;
}

static void test_slot_cap_field(void)
{
	static const uint32_t bad[] = {0,	   1, 100, 2048, 4095, 4097, 8191, 0x80000000u | 1,
				       0xffffffffu};
	struct image p = {0}, e = {0};
	struct state_slot_info info;
	uint8_t *big, *pt = NULL;
	size_t ptlen = 0;

	unit_begin("slot capacity field: not a multiple of 4096, too small, too big, reserved");
	if (!CHECK(make_image(&p, false, 1) == 0 && make_image(&e, true, 1) == 0))
		goto out;
	CHECK(p.info.slot_cap == 4096 && e.info.slot_cap == 4096);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECKF(decode_with_cap(&p, bad[i], 4096) == STATE_ERR_FORMAT, "slot_cap %u",
		       bad[i]);
	/* Authentic, a valid slot size, but bigger than the region it is found in: moved. */
	CHECK(decode_with_cap(&p, 8192, 4096) == STATE_ERR_RESIZED);
	CHECK(decode_with_cap(&p, 8192, 8191) == STATE_ERR_RESIZED);
	CHECK(decode_with_cap(&p, 8192, 8192) == STATE_OK);
	CHECK(decode_with_cap(&p, 4096, 8192) == STATE_OK); /* a bigger region is the caller's */
	/* RESIZED still reports what the image records. */
	memset(&info, 0, sizeof(info));
	CHECK(state_slot_decode(e.buf, e.len, key, uuid, &info, &pt, &ptlen) == STATE_ERR_RESIZED);
	CHECK(info.slot_cap == 4096 && info.version == 1 && pt == NULL);
	/* Encrypted: the field is checked before authentication, and is in the AAD. */
	be32_put(e.buf + OFF_SLOT_CAP, 4097);
	CHECK(decode_copy(e.buf, e.region, key, NULL) == STATE_ERR_FORMAT);
	be32_put(e.buf + OFF_SLOT_CAP, 8192);
	big = calloc(1, 8192);
	if (CHECK(big)) {
		memcpy(big, e.buf, e.region);
		CHECK(decode_copy(big, 8192, key, NULL) == STATE_ERR_AUTH);
	}
	free(big);
	be32_put(e.buf + OFF_SLOT_CAP, 4096);
	CHECK(decode_copy(e.buf, e.region, key, NULL) == STATE_OK);
	/* Reserved must be zero, re-sealed or not. */
	for (int bit = 0; bit < 32; bit++) {
		be32_put(p.buf + OFF_RESERVED, 1u << bit);
		reseal_plain(p.buf);
		CHECKF(decode_copy(p.buf, p.region, NULL, NULL) == STATE_ERR_FORMAT, "bit %d", bit);
		be32_put(e.buf + OFF_RESERVED, 1u << bit);
		CHECKF(decode_copy(e.buf, e.region, key, NULL) == STATE_ERR_FORMAT, "enc bit %d",
		       bit);
	}
	be32_put(p.buf + OFF_RESERVED, 0);
	reseal_plain(p.buf);
	CHECK(decode_copy(p.buf, p.region, NULL, NULL) == STATE_OK);
out:
	free(p.buf);
	free(e.buf);
	unit_end();
}

static void test_max_payload(void)
{
	size_t plen = STATE_MAX_PAYLOAD, cap = state_slot_size(plen, true), len = 0, outlen = 0;
	size_t region = region_of(cap);
	uint8_t *pl = calloc(1, plen), *img = calloc(1, region), *out = NULL;
	struct state_slot_info info;

	unit_begin("a payload of exactly STATE_MAX_PAYLOAD round-trips");
	if (CHECK(pl && img)) {
		pl[plen - 1] = 0x77;
		CHECK(state_slot_encode(img, cap, &len, key, uuid, 9, (uint32_t)region, pl, plen,
					NULL) == 0);
		CHECK(state_slot_decode(img, region, key, uuid, &info, &out, &outlen) == 0);
		CHECK(outlen == plen && out && out[plen - 1] == 0x77);
	}
	free(out);
	free(pl);
	free(img);
	unit_end();
}

static int parse_copy(const uint8_t *p, size_t n, struct state_blobs *b)
{
	uint8_t *copy = malloc(n ? n : 1);
	int rc;

	if (!copy)
		return STATE_ERR_NOMEM;
	if (n)
		memcpy(copy, p, n);
	rc = state_payload_parse(copy, n, b);
	free(copy);
	return rc;
}

static void test_tlv_ok(void)
{
	static const uint8_t both[] = {0, 2, 0, 0, 0, 2, 'v', 'v', 0, 1, 0, 0, 0, 3, 'p', 'p', 'p'};
	static const uint8_t zero_len[] = {0, 1, 0, 0, 0, 0};
	struct state_blobs b;

	unit_begin("payload TLVs: any order, optional blobs, empty payload");
	CHECK(state_payload_parse(both, sizeof(both), &b) == 0);
	CHECK(b.permanent_len == 3 && b.permanent == both + 14);
	CHECK(b.volatile_len == 2 && b.volatile_state == both + 6);
	CHECK(state_payload_parse(both, 9 - 1, &b) == 0 && b.volatile_len == 2 &&
	      b.permanent_len == 0 && b.permanent == NULL);
	CHECK(state_payload_parse(both, 0, &b) == 0 && !b.permanent_len && !b.volatile_len);
	CHECK(state_payload_parse(NULL, 0, &b) == 0);
	CHECK(state_payload_parse(zero_len, sizeof(zero_len), &b) == 0 && b.permanent_len == 0);
	unit_end();
}

static void test_tlv_errors(void)
{
	static const uint8_t dup[] = {0, 1, 0, 0, 0, 1, 'a', 0, 1, 0, 0, 0, 1, 'b'};
	static const uint8_t dup_zero[] = {0, 2, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0};
	static const uint8_t unknown0[] = {0, 0, 0, 0, 0, 1, 'a'};
	static const uint8_t unknown3[] = {0, 3, 0, 0, 0, 1, 'a'};
	static const uint8_t unknown_hi[] = {1, 1, 0, 0, 0, 0};
	static const uint8_t long_val[] = {0, 1, 0, 0, 0, 5, 'a', 'b'};
	static const uint8_t huge_val[] = {0, 1, 0xff, 0xff, 0xff, 0xff, 'a'};
	static const uint8_t ok_then_junk[] = {0, 1, 0, 0, 0, 1, 'a', 0, 2, 0, 0, 0, 9};
	struct state_blobs b;

	unit_begin("payload TLV errors: duplicate, unknown, truncated, trailing bytes");
	CHECK(parse_copy(dup, sizeof(dup), &b) == STATE_ERR_FORMAT);
	CHECK(parse_copy(dup_zero, sizeof(dup_zero), &b) == STATE_ERR_FORMAT);
	CHECK(parse_copy(unknown0, sizeof(unknown0), &b) == STATE_ERR_FORMAT);
	CHECK(parse_copy(unknown3, sizeof(unknown3), &b) == STATE_ERR_FORMAT);
	CHECK(parse_copy(unknown_hi, sizeof(unknown_hi), &b) == STATE_ERR_FORMAT);
	CHECK(parse_copy(long_val, sizeof(long_val), &b) == STATE_ERR_FORMAT);
	CHECK(parse_copy(huge_val, sizeof(huge_val), &b) == STATE_ERR_FORMAT);
	/* Every length that cuts a valid TLV sequence short, i.e. 1..12 trailing bytes. */
	for (size_t n = 1; n < sizeof(ok_then_junk); n++) {
		int rc = parse_copy(ok_then_junk, n, &b);

		if (n == 7)
			CHECKF(rc == 0, "length %zu", n);
		else
			CHECKF(rc == STATE_ERR_FORMAT, "length %zu", n);
	}
	CHECK(parse_copy(ok_then_junk, sizeof(ok_then_junk), &b) == STATE_ERR_FORMAT);
	CHECK(b.permanent == NULL && b.permanent_len == 0);
	unit_end();
}

static void test_tlv_build(void)
{
	static const uint8_t perm[] = {1, 2, 3}, vol[] = {9};
	struct state_blobs in = {perm, 3, vol, 1}, out;
	uint8_t *buf = NULL;
	size_t len = 0;

	unit_begin("payload build and parse round trip");
	if (CHECK(state_payload_build(&in, &buf, &len) == 0)) {
		CHECK(len == 6 + 3 + 6 + 1);
		CHECK(state_payload_parse(buf, len, &out) == 0);
		CHECK(out.permanent_len == 3 && !memcmp(out.permanent, perm, 3));
		CHECK(out.volatile_len == 1 && out.volatile_state[0] == 9);
		free(buf);
	}
	in.volatile_len = 0;
	buf = NULL;
	if (CHECK(state_payload_build(&in, &buf, &len) == 0)) {
		CHECK(len == 9 && state_payload_parse(buf, len, &out) == 0 && !out.volatile_len);
		free(buf);
	}
	in.permanent_len = 0;
	buf = NULL;
	if (CHECK(state_payload_build(&in, &buf, &len) == 0))
		CHECK(len == 0);
	free(buf);
	in.permanent_len = STATE_MAX_PAYLOAD;
	CHECK(state_payload_build(&in, &buf, &len) == STATE_ERR_TOO_BIG);
	unit_end();
}

static void test_strerror(void)
{
	unit_begin("state_strerror names every code");
	for (int e = STATE_OK; e >= STATE_ERR_RESIZED; e--)
		CHECKF(strcmp(state_strerror(e), "unknown error") != 0, "code %d", e);
	CHECK(strcmp(state_strerror(-100), "unknown error") == 0);
	CHECK(strcmp(state_strerror(1), "unknown error") == 0);
	unit_end();
}

static void test_aead(void)
{
	static const uint8_t nonce[12] = {1};
	uint8_t pt[33], ct[33], back[33], tag[16];

	unit_begin("aead_seal/aead_open round trip, tag mismatch, empty plaintext");
	memset(pt, 0x42, sizeof(pt));
	CHECK(aead_seal(key, nonce, uuid, 16, pt, sizeof(pt), ct, tag) == 0);
	CHECK(memcmp(ct, pt, sizeof(pt)) != 0);
	CHECK(aead_open(key, nonce, uuid, 16, ct, sizeof(ct), tag, back) == 0);
	CHECK(!memcmp(back, pt, sizeof(pt)));
	tag[0] ^= 1;
	memset(back, 0x42, sizeof(back));
	CHECK(aead_open(key, nonce, uuid, 16, ct, sizeof(ct), tag, back) == AEAD_ERR_AUTH);
	CHECK(back[0] == 0 && back[32] == 0); /* unauthenticated plaintext is cleansed */
	tag[0] ^= 1;
	CHECK(aead_open(key, nonce, uuid, 15, ct, sizeof(ct), tag, back) == AEAD_ERR_AUTH);
	CHECK(aead_seal(key, nonce, NULL, 0, NULL, 0, NULL, tag) == 0);
	CHECK(aead_open(key, nonce, NULL, 0, NULL, 0, tag, NULL) == 0);
	tag[15] ^= 0x80;
	CHECK(aead_open(key, nonce, NULL, 0, NULL, 0, tag, NULL) == AEAD_ERR_AUTH);
	/* In place: ct == pt. */
	memcpy(back, pt, sizeof(pt));
	CHECK(aead_seal(key, nonce, NULL, 0, back, sizeof(back), back, tag) == 0);
	CHECK(!memcmp(back, ct, sizeof(ct)));
	CHECK(aead_open(key, nonce, NULL, 0, back, sizeof(back), tag, back) == 0);
	CHECK(!memcmp(back, pt, sizeof(pt)));
	unit_end();
}

static void test_hkdf_sha256(void)
{
	/* RFC 5869 test case 1 and FIPS 180-2 "abc". */
	static const uint8_t ikm[22] = {0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b,
					0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b,
					0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b};
	static const uint8_t salt[13] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
	static const uint8_t info[10] = {0xf0, 0xf1, 0xf2, 0xf3, 0xf4,
					 0xf5, 0xf6, 0xf7, 0xf8, 0xf9};
	static const uint8_t okm[42] = {
	    0x3c, 0xb2, 0x5f, 0x25, 0xfa, 0xac, 0xd5, 0x7a, 0x90, 0x43, 0x4f, 0x64, 0xd0, 0x36,
	    0x2f, 0x2a, 0x2d, 0x2d, 0x0a, 0x90, 0xcf, 0x1a, 0x5a, 0x4c, 0x5d, 0xb0, 0x2d, 0x56,
	    0xec, 0xc4, 0xc5, 0xbf, 0x34, 0x00, 0x72, 0x08, 0xd5, 0xb8, 0x87, 0x18, 0x58, 0x65};
	static const uint8_t abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
					0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
					0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
					0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
	uint8_t out[42], md[32], r1[32] = {0}, r2[32] = {0};

	unit_begin("hkdf_sha256 (RFC 5869 case 1), sha256 (\"abc\"), random_bytes");
	CHECK(hkdf_sha256(ikm, sizeof(ikm), salt, sizeof(salt), info, sizeof(info), out,
			  sizeof(out)) == 0);
	CHECK(!memcmp(out, okm, sizeof(okm)));
	CHECK(hkdf_sha256(ikm, sizeof(ikm), NULL, 0, NULL, 0, out, sizeof(out)) == 0);
	CHECK(sha256("abc", 3, md) == 0 && !memcmp(md, abc, 32));
	CHECK(random_bytes(r1, sizeof(r1)) == 0 && random_bytes(r2, sizeof(r2)) == 0);
	CHECK(memcmp(r1, r2, sizeof(r1)) != 0);
	CHECK(random_bytes(NULL, 0) == 0);
	unit_end();
}

int main(void)
{
	round_trip(true, 1000, "round trip, encrypted");
	round_trip(false, 1000, "round trip, plain");
	round_trip(true, 0, "round trip, encrypted, empty payload");
	round_trip(false, 0, "round trip, plain, empty payload");
	test_fresh_randomness();
	truncations(true, "every truncation of an encrypted image fails cleanly");
	truncations(false, "every truncation of a plain image fails cleanly");
	bit_flips(true, "every single-bit flip of an encrypted image is refused");
	bit_flips(false, "every single-bit flip of a plain image is refused");
	test_key_and_uuid_errors();
	test_header_fields();
	test_payload_lengths();
	test_encode_limits();
	test_slot_cap_field();
	test_max_payload();
	test_tlv_ok();
	test_tlv_errors();
	test_tlv_build();
	test_strerror();
	test_aead();
	test_hkdf_sha256();
	return unit_exit();
}
