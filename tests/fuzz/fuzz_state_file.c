/*
 * fuzz_state_file.c — libFuzzer harness for the state file slot format (state_file.h).
 *
 * The input is tried as: a slot region, decoded without a key, with the fixed key below,
 * and with a fixed UUID; the same zero-padded to a whole slot region (a multiple of
 * 4096), so that an image recording a slot capacity of 4096 can decode; a plain slot
 * image whose digest trailer the harness re-seals, so that mutated headers get past the
 * digest and reach every later check; a payload for the TLV parser; and a payload to
 * encode and decode again. Whatever decodes must re-encode and decode to the same
 * payload. The seeds in tests/fuzz/seeds/state_file/ are images made with this key and
 * UUID for a slot capacity of 4096 (bare, or padded to the whole region), and a payload.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/aead.h"
#include "common/cursor.h"
#include "common/state_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t fuzz_key[STATE_KEY_LEN] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f};
static const uint8_t fuzz_uuid[STATE_UUID_LEN] = {0x6b, 0x1f, 0x2c, 0x44, 0x1e, 0x2a, 0x4b, 0x8c,
						  0x9d, 0x10, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77};

/* Inputs are padded to a slot region only up to this size (slots are never smaller). */
#define PAD_LIMIT (64 * 1024)

static void check(int cond)
{
	if (!cond)
		abort();
}

static size_t region_of(size_t n)
{
	return (n + STATE_SLOT_ALIGN - 1) / STATE_SLOT_ALIGN * STATE_SLOT_ALIGN;
}

/* Parse a payload; if it parses, build it again and check the blobs survive. */
static void payload_round_trip(const uint8_t *p, size_t len)
{
	struct state_blobs b, b2;
	uint8_t *out = NULL;
	size_t outlen = 0;

	if (state_payload_parse(p, len, &b))
		return;
	check(state_payload_build(&b, &out, &outlen) == STATE_OK);
	check(state_payload_parse(out, outlen, &b2) == STATE_OK);
	check(b2.permanent_len == b.permanent_len && b2.volatile_len == b.volatile_len);
	check(!b.permanent_len || !memcmp(b.permanent, b2.permanent, b.permanent_len));
	check(!b.volatile_len || !memcmp(b.volatile_state, b2.volatile_state, b.volatile_len));
	free(out);
}

/* Encode a payload under key (NULL: plain) and decode it back, exactly. */
static void encode_decode(const uint8_t *key, const uint8_t *uuid, uint64_t version,
			  const uint8_t *p, size_t len)
{
	size_t cap = state_slot_size(len, key != NULL), region = region_of(cap), imglen = 0;
	size_t outlen = 0;
	struct state_slot_info ei, di;
	uint8_t *img = calloc(1, region), *out = NULL;

	check(img != NULL);
	check(state_slot_encode(img, cap, &imglen, key, uuid, version, (uint32_t)region, p, len,
				&ei) == 0);
	check(imglen == cap && ei.slot_cap == region);
	/* The bare image claims a bigger region than it is given: refused, as moved. */
	if (imglen < region)
		check(state_slot_decode(img, imglen, key, uuid, &di, &out, &outlen) ==
		      STATE_ERR_RESIZED);
	check(state_slot_decode(img, region, key, uuid, &di, &out, &outlen) == 0);
	check(outlen == len && (!len || !memcmp(out, p, len)));
	check(di.version == version && !memcmp(di.digest, ei.digest, sizeof(di.digest)));
	check(di.slot_cap == region);
	OPENSSL_cleanse(out, outlen);
	free(out);
	free(img);
}

static void try_decode(const uint8_t *img, size_t size, const uint8_t *key, const uint8_t *want)
{
	struct state_slot_info info;
	uint8_t *pl = NULL, md[32];
	size_t len = 0;

	int rc = state_slot_decode(img, size, key, want, &info, &pl, &len);

	/* Authentic, but written for a bigger region than it was given. */
	if (rc == STATE_ERR_RESIZED)
		check(info.slot_cap > size && info.version >= 1 && pl == NULL);
	if (rc)
		return;
	check(info.encrypted == (key != NULL));
	check(info.slot_cap % STATE_SLOT_ALIGN == 0 && info.slot_cap <= size);
	check(state_slot_size(len, key != NULL) <= info.slot_cap);
	check(!want || !memcmp(info.uuid, want, STATE_UUID_LEN));
	check(state_slot_size(len, key != NULL) <= size);
	check(sha256(img, state_slot_size(len, key != NULL), md) == 0);
	check(!memcmp(md, info.digest, sizeof(md)));
	payload_round_trip(pl, len);
	encode_decode(key, info.uuid, info.version, pl, len);
	OPENSSL_cleanse(pl, len);
	free(pl);
}

/* The input zero-padded to a whole slot region: where a small image lives on disk. */
static void try_padded(const uint8_t *data, size_t size)
{
	size_t region = region_of(size);
	uint8_t *img;

	if (!size || size > PAD_LIMIT || region == size)
		return;
	img = calloc(1, region);
	check(img != NULL);
	memcpy(img, data, size);
	try_decode(img, region, NULL, NULL);
	try_decode(img, region, fuzz_key, fuzz_uuid);
	free(img);
}

/* Re-seal the SHA-256 trailer of a plain image so that header mutations get through. */
static void try_resealed(const uint8_t *data, size_t size)
{
	size_t region = size > PAD_LIMIT ? size : region_of(size);
	uint8_t *img;
	uint32_t n;

	if (size < STATE_HDR_LEN)
		return;
	n = be32_get(data + 60);
	if (n > size - STATE_HDR_LEN || size - STATE_HDR_LEN - n < STATE_DIGEST_LEN)
		return;
	img = calloc(1, region);
	check(img != NULL);
	memcpy(img, data, size);
	check(sha256(img, STATE_HDR_LEN + (size_t)n, img + STATE_HDR_LEN + n) == 0);
	try_decode(img, size, NULL, NULL);
	try_decode(img, size, NULL, fuzz_uuid);
	if (region != size)
		try_decode(img, region, NULL, NULL);
	free(img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	try_decode(data, size, NULL, NULL);
	try_decode(data, size, fuzz_key, NULL);
	try_decode(data, size, fuzz_key, fuzz_uuid);
	try_padded(data, size);
	try_resealed(data, size);
	payload_round_trip(data, size);
	if (size <= 4096) {
		encode_decode(fuzz_key, fuzz_uuid, 1 + size, data, size);
		encode_decode(NULL, fuzz_uuid, UINT64_MAX, data, size);
	}
	return 0;
}
