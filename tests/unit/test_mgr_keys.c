/* vtpmmgrd's key hierarchy (src/vtpmmgrd/keys): wrap/unwrap, AAD binding, formats. */
#include <string.h>

#include "common/aead.h"
#include "unit.h"
#include "vtpmmgrd/keys.h"

static const uint8_t root[32] = {1,  2,	 3,  4,	 5,  6,	 7,  8,	 9,  10, 11, 12, 13, 14, 15, 16,
				 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t gu[16] = {0xa0, 1, 2, 3, 4, 5, 0x46, 7, 0x88, 9, 10, 11, 12, 13, 14, 15};
static const uint8_t gu2[16] = {0xa1, 1, 2, 3, 4, 5, 0x46, 7, 0x88, 9, 10, 11, 12, 13, 14, 15};
static const uint8_t vu[16] = {0xb0, 1, 2, 3, 4, 5, 0x46, 7, 0x88, 9, 10, 11, 12, 13, 14, 15};
static const uint8_t vu2[16] = {0xb1, 1, 2, 3, 4, 5, 0x46, 7, 0x88, 9, 10, 11, 12, 13, 14, 15};

static void test_group_round_trip(void)
{
	uint8_t gk[32], w[KEYS_WRAPPED_LEN], w2[KEYS_WRAPPED_LEN], out[32];
	char err[256];

	unit_begin("keys: group key wraps and unwraps; each wrap has a fresh nonce");
	CHECK(keys_random(gk, err, sizeof(err)) == 0);
	CHECKF(keys_wrap_group(root, gu, gk, w, err, sizeof(err)) == 0, "%s", err);
	CHECKF(keys_unwrap_group(root, gu, w, sizeof(w), out, err, sizeof(err)) == 0, "%s", err);
	CHECK(memcmp(out, gk, 32) == 0);
	CHECK(keys_wrap_group(root, gu, gk, w2, err, sizeof(err)) == 0);
	CHECK(memcmp(w, w2, AEAD_NONCE_LEN) != 0 && memcmp(w, w2, sizeof(w)) != 0);
	/* the plaintext key does not appear in the wrapped form */
	CHECK(memmem(w, sizeof(w), gk, 32) == NULL);
	unit_end();
}

static void test_group_refusals(void)
{
	uint8_t gk[32], w[KEYS_WRAPPED_LEN], bad[KEYS_WRAPPED_LEN + 1], out[32], other[32];
	char err[256];
	size_t i;

	unit_begin("keys: a group key does not unwrap under another UUID, root, or altered");
	CHECK(keys_random(gk, err, sizeof(err)) == 0);
	CHECK(keys_wrap_group(root, gu, gk, w, err, sizeof(err)) == 0);
	CHECK(keys_unwrap_group(root, gu2, w, sizeof(w), out, err, sizeof(err)) < 0 &&
	      strstr(err, "does not authenticate"));
	memcpy(other, root, 32);
	other[31] ^= 1;
	CHECK(keys_unwrap_group(other, gu, w, sizeof(w), out, err, sizeof(err)) < 0 &&
	      strstr(err, "does not authenticate"));
	for (i = 0; i < sizeof(w); i++) {
		memcpy(bad, w, sizeof(w));
		bad[i] ^= 0x80;
		CHECKF(keys_unwrap_group(root, gu, bad, sizeof(w), out, err, sizeof(err)) < 0,
		       "flip at %zu unwrapped", i);
	}
	CHECK(keys_unwrap_group(root, gu, w, sizeof(w) - 1, out, err, sizeof(err)) < 0 &&
	      strstr(err, "has 59 bytes, not 60"));
	memcpy(bad, w, sizeof(w));
	bad[sizeof(w)] = 0;
	CHECK(keys_unwrap_group(root, gu, bad, sizeof(bad), out, err, sizeof(err)) < 0 &&
	      strstr(err, "has 61 bytes"));
	CHECK(keys_unwrap_group(root, gu, w, 0, out, err, sizeof(err)) < 0);
	unit_end();
}

static void test_state_keys(void)
{
	uint8_t gk[32], gk2[32], sk[32], w[KEYS_WRAPPED_LEN], out[32];
	char err[256];

	unit_begin("keys: a state key is bound to its vTPM UUID and group UUID (AAD)");
	CHECK(keys_random(gk, err, sizeof(err)) == 0 && keys_random(sk, err, sizeof(err)) == 0);
	CHECK(keys_random(gk2, err, sizeof(err)) == 0);
	CHECK(keys_wrap_state(gk, vu, gu, sk, w, err, sizeof(err)) == 0);
	CHECKF(keys_unwrap_state(gk, vu, gu, w, sizeof(w), out, err, sizeof(err)) == 0, "%s", err);
	CHECK(memcmp(out, sk, 32) == 0);
	CHECK(keys_unwrap_state(gk, vu2, gu, w, sizeof(w), out, err, sizeof(err)) < 0 &&
	      strstr(err, "state key does not authenticate"));
	CHECK(keys_unwrap_state(gk, vu, gu2, w, sizeof(w), out, err, sizeof(err)) < 0);
	/* swapped order of the two UUIDs is another AAD */
	CHECK(keys_unwrap_state(gk, gu, vu, w, sizeof(w), out, err, sizeof(err)) < 0);
	CHECK(keys_unwrap_state(gk2, vu, gu, w, sizeof(w), out, err, sizeof(err)) < 0);
	/* a state key is not a group key: the group wrap key is derived, not the root */
	CHECK(keys_unwrap_group(gk, gu, w, sizeof(w), out, err, sizeof(err)) < 0);
	unit_end();
}

static void test_derivations(void)
{
	uint8_t mac[32], mac2[32], other[32], gk[32], w[KEYS_WRAPPED_LEN], out[32];
	char err[256];

	unit_begin("keys: the store MAC key is HKDF(root), distinct from the group wrap key");
	CHECK(keys_store_mac_key(root, mac, err, sizeof(err)) == 0);
	CHECK(keys_store_mac_key(root, mac2, err, sizeof(err)) == 0 && memcmp(mac, mac2, 32) == 0);
	CHECK(memcmp(mac, root, 32) != 0);
	memcpy(other, root, 32);
	other[0] ^= 1;
	CHECK(keys_store_mac_key(other, mac2, err, sizeof(err)) == 0 && memcmp(mac, mac2, 32) != 0);
	/* a group key wrapped under the root key itself (not the derived key) must not open */
	CHECK(keys_random(gk, err, sizeof(err)) == 0);
	CHECK(keys_wrap_state(root, gu, gu, gk, w, err, sizeof(err)) == 0);
	CHECK(keys_unwrap_group(root, gu, w, sizeof(w), out, err, sizeof(err)) < 0);
	/* and the derivation matches HKDF-SHA256 with the documented info string */
	CHECK(hkdf_sha256(root, 32, NULL, 0, (const uint8_t *)"vtpmmgrd store mac v1", 21, mac2,
			  32) == 0 &&
	      memcmp(mac, mac2, 32) == 0);
	unit_end();
}

static void test_root_secret(void)
{
	uint8_t s[KEYS_ROOT_SECRET_LEN], r[32], big[KEYS_ROOT_SECRET_LEN + 1];
	int64_t off = 0;
	char err[256];

	unit_begin("keys: the sealed root secret carries the key and the signed NV offset");
	keys_root_secret_encode(root, -5, s);
	CHECK(memcmp(s, root, 32) == 0);
	CHECK(keys_root_secret_decode(s, sizeof(s), r, &off, err, sizeof(err)) == 0);
	CHECK(memcmp(r, root, 32) == 0 && off == -5);
	keys_root_secret_encode(root, INT64_MAX, s);
	CHECK(keys_root_secret_decode(s, sizeof(s), r, &off, err, sizeof(err)) == 0 &&
	      off == INT64_MAX);
	CHECK(keys_root_secret_decode(s, 32, r, &off, err, sizeof(err)) < 0 &&
	      strstr(err, "has 32 bytes, not 40"));
	memcpy(big, s, sizeof(s));
	big[sizeof(s)] = 0;
	CHECK(keys_root_secret_decode(big, sizeof(big), r, &off, err, sizeof(err)) < 0);
	unit_end();
}

static void test_uuid_v4(void)
{
	uint8_t a[16], b[16];
	char err[256];
	int i;

	unit_begin("keys: random UUIDs are version 4, variant 10, and differ");
	for (i = 0; i < 64; i++) {
		CHECK(keys_uuid_v4(a, err, sizeof(err)) == 0 &&
		      keys_uuid_v4(b, err, sizeof(err)) == 0);
		CHECK((a[6] >> 4) == 4 && (a[8] >> 6) == 2 && memcmp(a, b, 16) != 0);
	}
	unit_end();
}

int main(void)
{
	test_group_round_trip();
	test_group_refusals();
	test_state_keys();
	test_derivations();
	test_root_secret();
	test_uuid_v4();
	return unit_exit();
}
