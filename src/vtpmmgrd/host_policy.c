/*
 * host_policy.c — signed host policies in software (see host_policy.h): OpenSSL for
 * SHA-256 and the signatures, libtss2-mu for every TPM structure, the cursor for the file.
 */
#include "vtpmmgrd/host_policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <tss2/tss2_mu.h>

#include "common/cursor.h"

#define SHA256_LEN 32
#define NPCRS	   24
#define NV_ATTRS                                                                                   \
	((TPM2_NT_COUNTER << TPMA_NV_TPM2_NT_SHIFT) | TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD |     \
	 TPMA_NV_NO_DA | TPMA_NV_WRITTEN)
#define KEY_ATTRS (TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_USERWITHAUTH)

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
						      ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static void selection(uint32_t mask, TPML_PCR_SELECTION *sel)
{
	memset(sel, 0, sizeof(*sel));
	sel->count = 1;
	sel->pcrSelections[0].hash = TPM2_ALG_SHA256;
	sel->pcrSelections[0].sizeofSelect = 3;
	for (unsigned i = 0; i < NPCRS; i++)
		if (mask & (1u << i))
			sel->pcrSelections[0].pcrSelect[i / 8] |= (uint8_t)(1u << (i % 8));
}

static int sha256(const void *p, size_t n, uint8_t out[SHA256_LEN])
{
	return EVP_Digest(p, n, out, NULL, EVP_sha256(), NULL) == 1 ? 0 : -1;
}

int host_policy_nv_name(uint32_t nv_index, uint8_t name[HOST_POLICY_NAME_LEN])
{
	TPMS_NV_PUBLIC pub;
	uint8_t buf[sizeof(TPMS_NV_PUBLIC)];
	size_t off = 0;

	memset(&pub, 0, sizeof(pub));
	pub.nvIndex = nv_index;
	pub.nameAlg = TPM2_ALG_SHA256;
	pub.attributes = NV_ATTRS;
	pub.dataSize = 8;
	if (Tss2_MU_TPMS_NV_PUBLIC_Marshal(&pub, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS)
		return -1;
	be16_put(name, TPM2_ALG_SHA256);
	return sha256(buf, off, name + 2);
}

int host_policy_approved(const struct host_policy *p, uint8_t out[32])
{
	uint8_t
	    buf[SHA256_LEN + 4 + sizeof(TPML_PCR_SELECTION) + SHA256_LEN + HOST_POLICY_NAME_LEN];
	uint8_t args[8 + 2 + 2], name[HOST_POLICY_NAME_LEN];
	TPML_PCR_SELECTION sel;
	EVP_MD_CTX *md;
	size_t off = SHA256_LEN;
	int ok;

	/* TPM2_PolicyPCR: H(0^32 || TPM_CC_PolicyPCR || selection || H(values, ascending)) */
	memset(buf, 0, SHA256_LEN);
	selection(p->mask, &sel);
	if (Tss2_MU_UINT32_Marshal(TPM2_CC_PolicyPCR, buf, sizeof(buf), &off) ||
	    Tss2_MU_TPML_PCR_SELECTION_Marshal(&sel, buf, sizeof(buf), &off))
		return -1;
	md = EVP_MD_CTX_new();
	ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	for (unsigned i = 0; ok && i < NPCRS; i++)
		if (p->mask & (1u << i))
			ok = EVP_DigestUpdate(md, p->values[i], SHA256_LEN);
	ok = ok && EVP_DigestFinal_ex(md, buf + off, NULL);
	EVP_MD_CTX_free(md);
	if (!ok || sha256(buf, off + SHA256_LEN, buf) < 0)
		return -1;
	/* TPM2_PolicyNV: H(old || TPM_CC_PolicyNV || H(operandB || offset || operation) ||
	 * nvIndexName), operandB = the serial as the counter's 8 big-endian bytes */
	be64_put(args, p->serial);
	be16_put(args + 8, 0);
	be16_put(args + 10, TPM2_EO_UNSIGNED_LE);
	if (host_policy_nv_name(p->nv_index, name) < 0)
		return -1;
	off = SHA256_LEN;
	if (Tss2_MU_UINT32_Marshal(TPM2_CC_PolicyNV, buf, sizeof(buf), &off) ||
	    sha256(args, sizeof(args), buf + off) < 0)
		return -1;
	off += SHA256_LEN;
	memcpy(buf + off, name, sizeof(name));
	off += sizeof(name);
	return sha256(buf, off, out);
}

int host_policy_ahash(const uint8_t approved[32], uint8_t out[32])
{
	uint8_t buf[SHA256_LEN + sizeof(HOST_POLICY_REF) - 1];

	memcpy(buf, approved, SHA256_LEN);
	memcpy(buf + SHA256_LEN, HOST_POLICY_REF, sizeof(HOST_POLICY_REF) - 1);
	return sha256(buf, sizeof(buf), out);
}

int host_policy_authorize_digest(const uint8_t *name, size_t name_len, uint8_t out[32])
{
	uint8_t buf[SHA256_LEN + 4 + sizeof(TPMU_NAME)];
	uint8_t buf2[SHA256_LEN + sizeof(HOST_POLICY_REF) - 1];
	size_t off = SHA256_LEN;

	if (name_len > sizeof(TPMU_NAME))
		return -1;
	/* PolicyAuthorize resets the digest, then PolicyUpdate(CC, keyName, policyRef) */
	memset(buf, 0, SHA256_LEN);
	if (Tss2_MU_UINT32_Marshal(TPM2_CC_PolicyAuthorize, buf, sizeof(buf), &off))
		return -1;
	memcpy(buf + off, name, name_len);
	if (sha256(buf, off + name_len, buf2) < 0)
		return -1;
	memcpy(buf2 + SHA256_LEN, HOST_POLICY_REF, sizeof(HOST_POLICY_REF) - 1);
	return sha256(buf2, sizeof(buf2), out);
}

/* ---- the file ---------------------------------------------------------------------------- */

static int sig_check(const TPMT_SIGNATURE *s, char *err, size_t errlen)
{
	if (s->sigAlg == TPM2_ALG_RSASSA) {
		if (s->signature.rsassa.hash != TPM2_ALG_SHA256)
			return fail(err, errlen,
				    "the RSASSA signature's hash is 0x%04x, not SHA-256",
				    s->signature.rsassa.hash);
		if (s->signature.rsassa.sig.size != 256)
			return fail(err, errlen,
				    "the RSASSA signature has %u bytes (an RSA-2048 one has 256)",
				    s->signature.rsassa.sig.size);
		return 0;
	}
	if (s->sigAlg == TPM2_ALG_ECDSA) {
		if (s->signature.ecdsa.hash != TPM2_ALG_SHA256)
			return fail(err, errlen,
				    "the ECDSA signature's hash is 0x%04x, not SHA-256",
				    s->signature.ecdsa.hash);
		if (s->signature.ecdsa.signatureR.size == 0 ||
		    s->signature.ecdsa.signatureR.size > 32 ||
		    s->signature.ecdsa.signatureS.size == 0 ||
		    s->signature.ecdsa.signatureS.size > 32)
			return fail(err, errlen,
				    "the ECDSA signature's r or s is not 1..32 bytes (P-256)");
		return 0;
	}
	return fail(err, errlen,
		    "signature algorithm 0x%04x is not supported (RSASSA 0x0014 or ECDSA 0x0018)",
		    s->sigAlg);
}

int host_policy_parse(const uint8_t *buf, size_t len, struct host_policy *p, char *err,
		      size_t errlen)
{
	struct rcursor c;
	uint32_t magic;
	uint16_t version, bank, n;
	const uint8_t *sp;
	uint8_t want[SHA256_LEN];
	size_t off = 0;
	TSS2_RC rc;

	memset(p, 0, sizeof(*p));
	if (len > HOST_POLICY_MAX)
		return fail(err, errlen, "%zu bytes, a policy file has at most %d", len,
			    HOST_POLICY_MAX);
	rc_init(&c, buf, len);
	rc_u32(&c, &magic);
	rc_u16(&c, &version);
	rc_u16(&c, &bank);
	rc_u32(&c, &p->mask);
	if (c.failed)
		return fail(err, errlen, "truncated header (%zu bytes, the header has 12)", len);
	if (magic != HOST_POLICY_MAGIC)
		return fail(err, errlen,
			    "not a signed policy file (magic 0x%08x, want 0x%08x \"VTPP\")", magic,
			    HOST_POLICY_MAGIC);
	if (version != HOST_POLICY_VERSION)
		return fail(err, errlen, "unsupported version %u (this program reads version %d)",
			    version, HOST_POLICY_VERSION);
	if (bank != TPM2_ALG_SHA256)
		return fail(err, errlen, "unsupported PCR bank 0x%04x (SHA-256 is 0x000b)", bank);
	if (p->mask == 0 || (p->mask & ~0x00ffffffu))
		return fail(err, errlen, "bad PCR mask 0x%08x (want PCRs 0..23, at least one)",
			    p->mask);
	for (unsigned i = 0; i < NPCRS; i++)
		if (p->mask & (1u << i))
			rc_bytes(&c, p->values[i], SHA256_LEN);
	if (c.failed)
		return fail(err, errlen, "truncated in the PCR values");
	if (rc_u32(&c, &p->nv_index))
		return fail(err, errlen, "truncated before the revocation NV index");
	if (p->nv_index < 0x01000000u || p->nv_index > 0x013fffffu)
		return fail(err, errlen,
			    "revocation NV index 0x%08x is outside the owner range "
			    "0x01000000..0x013fffff",
			    p->nv_index);
	if (rc_u64(&c, &p->serial))
		return fail(err, errlen, "truncated in the serial");
	if (rc_bytes(&c, p->approved, SHA256_LEN))
		return fail(err, errlen, "truncated in the approved policy digest");
	if (rc_u16(&c, &n))
		return fail(err, errlen, "truncated before the signature");
	if (n == 0)
		return fail(err, errlen, "the signature is empty");
	if (rc_ptr(&c, &sp, n))
		return fail(err, errlen,
			    "truncated in the signature (%u bytes announced, %zu left)", n,
			    rc_remaining(&c));
	rc = Tss2_MU_TPMT_SIGNATURE_Unmarshal(sp, n, &off, &p->sig);
	if (rc != TSS2_RC_SUCCESS)
		return fail(err, errlen, "the signature is not a TPMT_SIGNATURE (0x%x)",
			    (unsigned)rc);
	if (off != n)
		return fail(err, errlen, "the signature uses %zu of its %u bytes", off, n);
	if (rc_expect_end(&c))
		return fail(err, errlen, "%zu trailing bytes after the signature",
			    rc_remaining(&c));
	if (sig_check(&p->sig, err, errlen) < 0)
		return -1;
	if (host_policy_approved(p, want) < 0)
		return fail(err, errlen, "cannot compute the policy digest (OpenSSL)");
	if (CRYPTO_memcmp(want, p->approved, SHA256_LEN) != 0)
		return fail(err, errlen,
			    "the approved policy digest is not the digest of the file's PCR "
			    "values, NV index and serial");
	return 0;
}

size_t host_policy_encode(const struct host_policy *p, uint8_t *out, size_t cap)
{
	uint8_t sig[sizeof(TPMT_SIGNATURE)];
	size_t sig_len = 0;
	struct wcursor w;

	if (Tss2_MU_TPMT_SIGNATURE_Marshal(&p->sig, sig, sizeof(sig), &sig_len))
		return 0;
	wc_init(&w, out, cap);
	wc_u32(&w, HOST_POLICY_MAGIC);
	wc_u16(&w, HOST_POLICY_VERSION);
	wc_u16(&w, TPM2_ALG_SHA256);
	wc_u32(&w, p->mask);
	for (unsigned i = 0; i < NPCRS; i++)
		if (p->mask & (1u << i))
			wc_bytes(&w, p->values[i], SHA256_LEN);
	wc_u32(&w, p->nv_index);
	wc_u64(&w, p->serial);
	wc_bytes(&w, p->approved, SHA256_LEN);
	wc_u16(&w, (uint16_t)sig_len);
	wc_bytes(&w, sig, sig_len);
	return w.failed ? 0 : w.pos;
}

/* ---- keys and signatures ----------------------------------------------------------------- */

static int bn_param(EVP_PKEY *k, const char *name, uint8_t *out, size_t n)
{
	BIGNUM *bn = NULL;
	int ok = EVP_PKEY_get_bn_param(k, name, &bn) == 1 && BN_num_bytes(bn) <= (int)n &&
		 BN_bn2binpad(bn, out, (int)n) == (int)n;

	BN_free(bn);
	return ok ? 0 : -1;
}

static int pkey_public(EVP_PKEY *k, TPM2B_PUBLIC *pub, char *desc, size_t desclen, char *err,
		       size_t errlen)
{
	TPMT_PUBLIC *t = &pub->publicArea;
	char group[64] = "";
	BIGNUM *e = NULL;
	BN_ULONG ev;

	memset(pub, 0, sizeof(*pub));
	t->nameAlg = TPM2_ALG_SHA256;
	t->objectAttributes = KEY_ATTRS;
	if (EVP_PKEY_is_a(k, "RSA")) {
		if (EVP_PKEY_get_bits(k) != 2048)
			return fail(err, errlen, "an RSA key of %d bits (want 2048)",
				    EVP_PKEY_get_bits(k));
		if (EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e) != 1 ||
		    BN_num_bits(e) > 32) {
			BN_free(e);
			return fail(err, errlen, "the RSA key's public exponent is not 32-bit");
		}
		ev = BN_get_word(e);
		BN_free(e);
		t->type = TPM2_ALG_RSA;
		t->parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
		t->parameters.rsaDetail.scheme.scheme = TPM2_ALG_RSASSA;
		t->parameters.rsaDetail.scheme.details.rsassa.hashAlg = TPM2_ALG_SHA256;
		t->parameters.rsaDetail.keyBits = 2048;
		t->parameters.rsaDetail.exponent = ev == 65537 ? 0 : (UINT32)ev;
		t->unique.rsa.size = 256;
		if (bn_param(k, OSSL_PKEY_PARAM_RSA_N, t->unique.rsa.buffer, 256) < 0)
			return fail(err, errlen, "cannot read the RSA modulus (OpenSSL)");
		snprintf(desc, desclen, "rsa-2048");
		return 0;
	}
	if (EVP_PKEY_is_a(k, "EC")) {
		if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group,
						   sizeof(group), NULL) != 1 ||
		    strcmp(group, "prime256v1") != 0)
			return fail(err, errlen, "an EC key on curve %s (want P-256)",
				    group[0] ? group : "?");
		t->type = TPM2_ALG_ECC;
		t->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
		t->parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
		t->parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
		t->parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
		t->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
		t->unique.ecc.x.size = 32;
		t->unique.ecc.y.size = 32;
		if (bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, t->unique.ecc.x.buffer, 32) < 0 ||
		    bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, t->unique.ecc.y.buffer, 32) < 0)
			return fail(err, errlen, "cannot read the EC point (OpenSSL)");
		snprintf(desc, desclen, "ecc-p256");
		return 0;
	}
	return fail(err, errlen, "a %s key (want RSA-2048 or ECC P-256)",
		    EVP_PKEY_get0_type_name(k) ? EVP_PKEY_get0_type_name(k) : "unknown");
}

static EVP_PKEY *der_key(const uint8_t *der, size_t len, char *err, size_t errlen)
{
	const unsigned char *q = der;
	EVP_PKEY *k;

	if (len == 0 || len > HOST_POLICY_KEY_MAX) {
		fail(err, errlen, "the policy key has %zu bytes (want 1..%d)", len,
		     HOST_POLICY_KEY_MAX);
		return NULL;
	}
	k = d2i_PUBKEY(NULL, &q, (long)len);
	if (!k) {
		fail(err, errlen, "the policy key is not a DER SubjectPublicKeyInfo");
		return NULL;
	}
	if ((size_t)(q - der) != len) {
		EVP_PKEY_free(k);
		fail(err, errlen, "%zu trailing bytes after the policy key",
		     len - (size_t)(q - der));
		return NULL;
	}
	return k;
}

int host_policy_key_public(const uint8_t *der, size_t len, TPM2B_PUBLIC *pub, char *desc,
			   size_t desclen, char *err, size_t errlen)
{
	EVP_PKEY *k = der_key(der, len, err, errlen);
	int rc;

	if (!k)
		return -1;
	rc = pkey_public(k, pub, desc, desclen, err, errlen);
	EVP_PKEY_free(k);
	return rc;
}

int host_policy_key_name(const TPM2B_PUBLIC *pub, uint8_t name[HOST_POLICY_NAME_LEN])
{
	uint8_t buf[sizeof(TPMT_PUBLIC)];
	size_t off = 0;

	if (Tss2_MU_TPMT_PUBLIC_Marshal(&pub->publicArea, buf, sizeof(buf), &off))
		return -1;
	be16_put(name, TPM2_ALG_SHA256);
	return sha256(buf, off, name + 2);
}

int host_policy_sign(EVP_PKEY *key, struct host_policy *p, char *err, size_t errlen)
{
	uint8_t ahash[SHA256_LEN], sig[512];
	size_t sig_len = sizeof(sig);
	const unsigned char *q = sig;
	const BIGNUM *r, *s;
	ECDSA_SIG *es = NULL;
	EVP_PKEY_CTX *ctx;
	TPM2B_PUBLIC pub;
	char desc[16];
	int ok;

	if (pkey_public(key, &pub, desc, sizeof(desc), err, errlen) < 0)
		return -1;
	if (host_policy_ahash(p->approved, ahash) < 0)
		return fail(err, errlen, "SHA-256 failed (OpenSSL)");
	ctx = EVP_PKEY_CTX_new(key, NULL);
	ok = ctx && EVP_PKEY_sign_init(ctx) == 1 &&
	     EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1;
	if (ok && pub.publicArea.type == TPM2_ALG_RSA)
		ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1;
	ok = ok && EVP_PKEY_sign(ctx, sig, &sig_len, ahash, sizeof(ahash)) == 1;
	EVP_PKEY_CTX_free(ctx);
	if (!ok)
		return fail(err, errlen, "signing failed (OpenSSL): is it a private key?");
	memset(&p->sig, 0, sizeof(p->sig));
	if (pub.publicArea.type == TPM2_ALG_RSA) {
		if (sig_len != 256)
			return fail(err, errlen, "RSA signature of %zu bytes", sig_len);
		p->sig.sigAlg = TPM2_ALG_RSASSA;
		p->sig.signature.rsassa.hash = TPM2_ALG_SHA256;
		p->sig.signature.rsassa.sig.size = 256;
		memcpy(p->sig.signature.rsassa.sig.buffer, sig, 256);
		return 0;
	}
	es = d2i_ECDSA_SIG(NULL, &q, (long)sig_len);
	if (!es)
		return fail(err, errlen, "OpenSSL returned a malformed ECDSA signature");
	ECDSA_SIG_get0(es, &r, &s);
	p->sig.sigAlg = TPM2_ALG_ECDSA;
	p->sig.signature.ecdsa.hash = TPM2_ALG_SHA256;
	p->sig.signature.ecdsa.signatureR.size = 32;
	p->sig.signature.ecdsa.signatureS.size = 32;
	ok = BN_bn2binpad(r, p->sig.signature.ecdsa.signatureR.buffer, 32) == 32 &&
	     BN_bn2binpad(s, p->sig.signature.ecdsa.signatureS.buffer, 32) == 32;
	ECDSA_SIG_free(es);
	return ok ? 0 : fail(err, errlen, "ECDSA signature out of range");
}

int host_policy_verify(const uint8_t *der, size_t len, const struct host_policy *p, char *err,
		       size_t errlen)
{
	uint8_t ahash[SHA256_LEN], *sig = NULL;
	int sig_len = 0, ok = 0;
	ECDSA_SIG *es = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *k;
	BIGNUM *r, *s;

	k = der_key(der, len, err, errlen);
	if (!k)
		return -1;
	if (host_policy_ahash(p->approved, ahash) < 0)
		goto out;
	if (EVP_PKEY_is_a(k, "RSA")) {
		if (p->sig.sigAlg != TPM2_ALG_RSASSA) {
			fail(err, errlen, "an ECDSA signature, but the policy key is RSA");
			goto out;
		}
		sig = OPENSSL_memdup(p->sig.signature.rsassa.sig.buffer,
				     p->sig.signature.rsassa.sig.size);
		sig_len = p->sig.signature.rsassa.sig.size;
	} else {
		if (p->sig.sigAlg != TPM2_ALG_ECDSA) {
			fail(err, errlen, "an RSASSA signature, but the policy key is ECC");
			goto out;
		}
		es = ECDSA_SIG_new();
		r = BN_bin2bn(p->sig.signature.ecdsa.signatureR.buffer,
			      p->sig.signature.ecdsa.signatureR.size, NULL);
		s = BN_bin2bn(p->sig.signature.ecdsa.signatureS.buffer,
			      p->sig.signature.ecdsa.signatureS.size, NULL);
		if (!es || !r || !s || ECDSA_SIG_set0(es, r, s) != 1) {
			BN_free(r);
			BN_free(s);
			fail(err, errlen, "out of memory (OpenSSL)");
			goto out;
		}
		sig_len = i2d_ECDSA_SIG(es, &sig);
	}
	if (!sig || sig_len <= 0) {
		fail(err, errlen, "out of memory (OpenSSL)");
		goto out;
	}
	ctx = EVP_PKEY_CTX_new(k, NULL);
	ok =
	    ctx && EVP_PKEY_verify_init(ctx) == 1 &&
	    EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1 &&
	    (!EVP_PKEY_is_a(k, "RSA") || EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1);
	ok = ok && EVP_PKEY_verify(ctx, sig, (size_t)sig_len, ahash, sizeof(ahash)) == 1;
	if (!ok)
		fail(err, errlen,
		     "the signature does not verify with the installed policy key (signed with "
		     "another key, or altered)");
out:
	EVP_PKEY_CTX_free(ctx);
	ECDSA_SIG_free(es);
	OPENSSL_free(sig);
	EVP_PKEY_free(k);
	return ok ? 0 : -1;
}

int host_policy_list_get(const uint8_t *list, size_t len, size_t i, const uint8_t **p, size_t *n)
{
	struct rcursor c;
	uint16_t m;

	rc_init(&c, list, len);
	for (size_t k = 0;; k++) {
		if (rc_remaining(&c) == 0)
			return 0;
		if (rc_u16(&c, &m) || m == 0 || rc_ptr(&c, p, m))
			return -1;
		*n = m;
		if (k == i)
			return 1;
	}
}
