#include "vtpmmgrd/keys.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/aead.h"
#include "common/cursor.h"

static const char info_mac[] = "vtpmmgrd store mac v1";
static const char info_group[] = "vtpmmgrd group wrap v1";

int keys_random(uint8_t key[KEYS_KEY_LEN], char *err, size_t errlen)
{
	if (random_bytes(key, KEYS_KEY_LEN) < 0) {
		snprintf(err, errlen, "the random number generator failed");
		return -1;
	}
	return 0;
}

int keys_uuid_v4(uint8_t uuid[16], char *err, size_t errlen)
{
	if (random_bytes(uuid, 16) < 0) {
		snprintf(err, errlen, "the random number generator failed");
		return -1;
	}
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40);
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);
	return 0;
}

static int derive(const uint8_t root[KEYS_KEY_LEN], const char *info, uint8_t out[KEYS_KEY_LEN],
		  char *err, size_t errlen)
{
	if (hkdf_sha256(root, KEYS_KEY_LEN, NULL, 0, (const uint8_t *)info, strlen(info), out,
			KEYS_KEY_LEN) != 0) {
		snprintf(err, errlen, "HKDF-SHA256 (%s) failed", info);
		return -1;
	}
	return 0;
}

int keys_store_mac_key(const uint8_t root[KEYS_KEY_LEN], uint8_t out[KEYS_KEY_LEN], char *err,
		       size_t errlen)
{
	return derive(root, info_mac, out, err, errlen);
}

static int wrap(const uint8_t kek[KEYS_KEY_LEN], const uint8_t *aad, size_t aadlen,
		const uint8_t key[KEYS_KEY_LEN], uint8_t out[KEYS_WRAPPED_LEN], const char *what,
		char *err, size_t errlen)
{
	uint8_t *nonce = out, *ct = out + AEAD_NONCE_LEN, *tag = ct + KEYS_KEY_LEN;

	if (random_bytes(nonce, AEAD_NONCE_LEN) < 0) {
		snprintf(err, errlen, "wrapping the %s: the random number generator failed", what);
		return -1;
	}
	if (aead_seal(kek, nonce, aad, aadlen, key, KEYS_KEY_LEN, ct, tag) != AEAD_OK) {
		OPENSSL_cleanse(out, KEYS_WRAPPED_LEN);
		snprintf(err, errlen, "wrapping the %s: AES-256-GCM failed", what);
		return -1;
	}
	return 0;
}

static int unwrap(const uint8_t kek[KEYS_KEY_LEN], const uint8_t *aad, size_t aadlen,
		  const uint8_t *wrapped, size_t len, uint8_t key[KEYS_KEY_LEN], const char *what,
		  char *err, size_t errlen)
{
	struct rcursor c;
	const uint8_t *nonce, *ct, *tag;
	int rc;

	rc_init(&c, wrapped, len);
	if (rc_ptr(&c, &nonce, AEAD_NONCE_LEN) < 0 || rc_ptr(&c, &ct, KEYS_KEY_LEN) < 0 ||
	    rc_ptr(&c, &tag, AEAD_TAG_LEN) < 0 || rc_expect_end(&c) < 0) {
		snprintf(err, errlen, "the wrapped %s has %zu bytes, not %d", what, len,
			 KEYS_WRAPPED_LEN);
		return -1;
	}
	rc = aead_open(kek, nonce, aad, aadlen, ct, KEYS_KEY_LEN, tag, key);
	if (rc == AEAD_ERR_AUTH) {
		snprintf(err, errlen,
			 "the wrapped %s does not authenticate (another key, another UUID, or "
			 "altered)",
			 what);
		return -1;
	}
	if (rc != AEAD_OK) {
		snprintf(err, errlen, "unwrapping the %s: AES-256-GCM failed", what);
		return -1;
	}
	return 0;
}

int keys_wrap_group(const uint8_t root[KEYS_KEY_LEN], const uint8_t group_uuid[16],
		    const uint8_t group_key[KEYS_KEY_LEN], uint8_t out[KEYS_WRAPPED_LEN], char *err,
		    size_t errlen)
{
	uint8_t kek[KEYS_KEY_LEN];
	int rc = -1;

	if (derive(root, info_group, kek, err, errlen) == 0)
		rc = wrap(kek, group_uuid, 16, group_key, out, "group key", err, errlen);
	OPENSSL_cleanse(kek, sizeof(kek));
	return rc;
}

int keys_unwrap_group(const uint8_t root[KEYS_KEY_LEN], const uint8_t group_uuid[16],
		      const uint8_t *wrapped, size_t len, uint8_t group_key[KEYS_KEY_LEN],
		      char *err, size_t errlen)
{
	uint8_t kek[KEYS_KEY_LEN];
	int rc = -1;

	if (derive(root, info_group, kek, err, errlen) == 0)
		rc = unwrap(kek, group_uuid, 16, wrapped, len, group_key, "group key", err, errlen);
	OPENSSL_cleanse(kek, sizeof(kek));
	return rc;
}

int keys_wrap_state(const uint8_t group_key[KEYS_KEY_LEN], const uint8_t vtpm_uuid[16],
		    const uint8_t group_uuid[16], const uint8_t state_key[KEYS_KEY_LEN],
		    uint8_t out[KEYS_WRAPPED_LEN], char *err, size_t errlen)
{
	uint8_t aad[32];

	memcpy(aad, vtpm_uuid, 16);
	memcpy(aad + 16, group_uuid, 16);
	return wrap(group_key, aad, sizeof(aad), state_key, out, "state key", err, errlen);
}

int keys_unwrap_state(const uint8_t group_key[KEYS_KEY_LEN], const uint8_t vtpm_uuid[16],
		      const uint8_t group_uuid[16], const uint8_t *wrapped, size_t len,
		      uint8_t state_key[KEYS_KEY_LEN], char *err, size_t errlen)
{
	uint8_t aad[32];

	memcpy(aad, vtpm_uuid, 16);
	memcpy(aad + 16, group_uuid, 16);
	return unwrap(group_key, aad, sizeof(aad), wrapped, len, state_key, "state key", err,
		      errlen);
}

void keys_root_secret_encode(const uint8_t root[KEYS_KEY_LEN], int64_t nv_offset,
			     uint8_t out[KEYS_ROOT_SECRET_LEN])
{
	memcpy(out, root, KEYS_KEY_LEN);
	be64_put(out + KEYS_KEY_LEN, (uint64_t)nv_offset);
}

int keys_root_secret_decode(const uint8_t *secret, size_t len, uint8_t root[KEYS_KEY_LEN],
			    int64_t *nv_offset, char *err, size_t errlen)
{
	struct rcursor c;
	uint64_t off;

	rc_init(&c, secret, len);
	if (rc_bytes(&c, root, KEYS_KEY_LEN) < 0 || rc_u64(&c, &off) < 0 || rc_expect_end(&c) < 0) {
		OPENSSL_cleanse(root, KEYS_KEY_LEN);
		snprintf(err, errlen, "the unsealed root secret has %zu bytes, not %d", len,
			 KEYS_ROOT_SECRET_LEN);
		return -1;
	}
	*nv_offset = (int64_t)off;
	return 0;
}
