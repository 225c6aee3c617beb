#include "common/aead.h"

#include <limits.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

/* OpenSSL takes int lengths: feed large buffers in pieces well below INT_MAX. */
#define EVP_CHUNK (1u << 30)

static int gcm_init(EVP_CIPHER_CTX **ctx, int enc, const uint8_t *key, const uint8_t *nonce)
{
	*ctx = EVP_CIPHER_CTX_new();
	if (!*ctx)
		return -1;
	/* 12 bytes is GCM's default IV length, so no EVP_CTRL_GCM_SET_IVLEN is needed. */
	if (EVP_CipherInit_ex(*ctx, EVP_aes_256_gcm(), NULL, key, nonce, enc) != 1)
		return -1;
	return 0;
}

static int gcm_aad(EVP_CIPHER_CTX *ctx, const uint8_t *aad, size_t aadlen)
{
	int outl;

	while (aadlen > 0) {
		size_t n = aadlen < EVP_CHUNK ? aadlen : EVP_CHUNK;

		if (EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)n) != 1)
			return -1;
		aad += n;
		aadlen -= n;
	}
	return 0;
}

/* GCM is a stream mode: every Update writes exactly as many bytes as it reads. */
static int gcm_data(EVP_CIPHER_CTX *ctx, const uint8_t *in, size_t len, uint8_t *out)
{
	int outl;

	while (len > 0) {
		size_t n = len < EVP_CHUNK ? len : EVP_CHUNK;

		if (EVP_CipherUpdate(ctx, out, &outl, in, (int)n) != 1 || (size_t)outl != n)
			return -1;
		in += n;
		out += n;
		len -= n;
	}
	return 0;
}

int aead_seal(const uint8_t key[AEAD_KEY_LEN], const uint8_t nonce[AEAD_NONCE_LEN],
	      const uint8_t *aad, size_t aadlen, const uint8_t *pt, size_t ptlen, uint8_t *ct,
	      uint8_t tag[AEAD_TAG_LEN])
{
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t fin[16];
	int outl, rc = AEAD_ERR_CRYPTO;

	if (gcm_init(&ctx, 1, key, nonce) || gcm_aad(ctx, aad, aadlen) ||
	    gcm_data(ctx, pt, ptlen, ct))
		goto out;
	if (EVP_EncryptFinal_ex(ctx, fin, &outl) != 1 || outl != 0)
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, AEAD_TAG_LEN, tag) != 1)
		goto out;
	rc = AEAD_OK;
out:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

int aead_open(const uint8_t key[AEAD_KEY_LEN], const uint8_t nonce[AEAD_NONCE_LEN],
	      const uint8_t *aad, size_t aadlen, const uint8_t *ct, size_t ctlen,
	      const uint8_t tag[AEAD_TAG_LEN], uint8_t *pt)
{
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t fin[16];
	uint8_t tagbuf[AEAD_TAG_LEN];
	int outl, rc = AEAD_ERR_CRYPTO;

	/* The ctrl takes a non-const pointer; give it a copy rather than cast const away. */
	memcpy(tagbuf, tag, sizeof(tagbuf));
	if (gcm_init(&ctx, 0, key, nonce) || gcm_aad(ctx, aad, aadlen) ||
	    gcm_data(ctx, ct, ctlen, pt))
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, AEAD_TAG_LEN, tagbuf) != 1)
		goto out;
	/* For GCM decryption, Final fails exactly when the tag does not verify. */
	if (EVP_DecryptFinal_ex(ctx, fin, &outl) != 1) {
		rc = AEAD_ERR_AUTH;
		goto out;
	}
	rc = AEAD_OK;
out:
	EVP_CIPHER_CTX_free(ctx);
	if (rc != AEAD_OK && ctlen > 0)
		OPENSSL_cleanse(pt, ctlen);
	return rc;
}

int hkdf_sha256(const uint8_t *ikm, size_t ikmlen, const uint8_t *salt, size_t saltlen,
		const uint8_t *info, size_t infolen, uint8_t *out, size_t outlen)
{
	EVP_KDF *kdf;
	EVP_KDF_CTX *kctx = NULL;
	OSSL_PARAM params[5], *p = params;
	char digest[] = "SHA256";
	int rc = AEAD_ERR_CRYPTO;

	kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL);
	if (!kdf)
		return rc;
	kctx = EVP_KDF_CTX_new(kdf);
	EVP_KDF_free(kdf);
	if (!kctx)
		return rc;
	/* OSSL_PARAM wants non-const pointers; OpenSSL only reads these buffers. */
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikmlen);
	if (saltlen > 0)
		*p++ =
		    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, saltlen);
	if (infolen > 0)
		*p++ =
		    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, infolen);
	*p = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, out, outlen, params) == 1)
		rc = AEAD_OK;
	else
		OPENSSL_cleanse(out, outlen);
	EVP_KDF_CTX_free(kctx);
	return rc;
}

int sha256(const void *buf, size_t len, uint8_t out[SHA256_LEN])
{
	unsigned int outl = 0;

	if (EVP_Digest(buf, len, out, &outl, EVP_sha256(), NULL) != 1 || outl != SHA256_LEN)
		return AEAD_ERR_CRYPTO;
	return AEAD_OK;
}

int hmac_sha256(const uint8_t *key, size_t keylen, const void *buf, size_t len,
		uint8_t out[SHA256_LEN])
{
	size_t outl = 0;

	if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, keylen, buf, len, out, SHA256_LEN,
		       &outl) ||
	    outl != SHA256_LEN)
		return AEAD_ERR_CRYPTO;
	return AEAD_OK;
}

int random_bytes(void *buf, size_t n)
{
	uint8_t *p = buf;

	while (n > 0) {
		size_t k = n < EVP_CHUNK ? n : EVP_CHUNK;

		if (RAND_bytes(p, (int)k) != 1)
			return -1;
		p += k;
		n -= k;
	}
	return 0;
}
