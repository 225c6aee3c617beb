#include "vtpmd/swtpm_format.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "common/aead.h"
#include "common/cursor.h"
#include "common/parse_num.h"
#include "vtpmd/ctrl_proto.h"

#define HMAC_LEN	  32
#define AES_BLOCK	  16
#define KEYFILE_READ_MAX  67 /* swtpm reads "0x" + 64 digits + one more character */
#define PBKDF2_ITERATIONS 1000
/* Larger than any libtpms blob vtpmd accepts, small enough for OpenSSL's int lengths. */
#define SWF_MAX_PLAIN (CTRL_MAX_BLOB + 4096)

static const uint8_t pbkdf2_salt[] = {'s', 'w', 't', 'p', 'm'};

uint32_t swtpm_fmt_res(int err)
{
	switch (err) {
	case SWF_OK:
		return RES_SUCCESS;
	case SWF_ERR_MALFORMED:
		return RES_BAD_PARAMETER;
	case SWF_ERR_VERSION:
		return RES_BAD_VERSION;
	case SWF_ERR_NO_KEY:
		return RES_KEYNOTFOUND;
	case SWF_ERR_KEY_SIZE:
		return 0x28; /* TPM_BAD_KEY_PROPERTY, as swtpm answers a key of the wrong size */
	case SWF_ERR_AUTH:
		return RES_DECRYPT_ERROR;
	default:
		return RES_FAIL;
	}
}

static int fail(int code, char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
	return code;
}

static void free_secret(uint8_t *p, size_t len)
{
	if (p) {
		OPENSSL_cleanse(p, len);
		free(p);
	}
}

/* ---- keys ---------------------------------------------------------------------------- */

static int hex_key(const uint8_t *in, size_t len, size_t want, struct swtpm_key *out, char *err,
		   size_t errlen)
{
	size_t i = 0, digits = 0;

	if (len >= 2 && in[0] == '0' && in[1] == 'x')
		i = 2;
	/* as swtpm: hex digits up to the end, a NUL or white space, at most the mode's length */
	while (i + digits < len && in[i + digits] && !isspace(in[i + digits]) &&
	       digits / 2 < want) {
		int hi, lo;

		if (i + digits + 1 >= len)
			return fail(-1, err, errlen, "the hex key has an odd number of digits");
		hi = parse_hex_digit((char)in[i + digits]);
		lo = parse_hex_digit((char)in[i + digits + 1]);
		if (hi < 0 || lo < 0)
			return fail(-1, err, errlen, "the key is not hex text (format=hex)");
		out->key[digits / 2] = (uint8_t)(hi << 4 | lo);
		digits += 2;
	}
	if (i + digits < len && in[i + digits] && !isspace(in[i + digits])) {
		snprintf(err, errlen, "the hex key is longer than the mode's %zu bytes", want);
		return -1;
	}
	if (digits != want * 2) {
		snprintf(err, errlen, "the hex key has %zu digits; the mode needs %zu", digits,
			 want * 2);
		return -1;
	}
	out->len = want;
	return 0;
}

int swtpm_key_derive(const struct key_opts *k, const uint8_t *material, size_t len,
		     struct swtpm_key *out, char *err, size_t errlen)
{
	size_t want = k->bits / 8;
	int rc = -1;

	OPENSSL_cleanse(out, sizeof(*out));
	if (want != 16 && want != 32)
		return fail(-1, err, errlen, "the mode is neither AES-128 nor AES-256");
	if (k->source == KEY_PWDFILE || k->source == KEY_PWDFD) {
		if (k->kdf_pbkdf2) {
			if (len > INT_MAX ||
			    PKCS5_PBKDF2_HMAC((const char *)material, (int)len, pbkdf2_salt,
					      sizeof(pbkdf2_salt), PBKDF2_ITERATIONS, EVP_sha512(),
					      (int)want, out->key) != 1) {
				OPENSSL_cleanse(out, sizeof(*out));
				return fail(-1, err, errlen, "PBKDF2 failed");
			}
		} else {
			uint8_t md[64];

			if (EVP_Digest(material, len, md, NULL, EVP_sha512(), NULL) != 1)
				return fail(-1, err, errlen, "SHA-512 failed");
			memcpy(out->key, md, want);
			OPENSSL_cleanse(md, sizeof(md));
		}
		out->len = want;
		return 0;
	}
	if (len > KEYFILE_READ_MAX)
		len = KEYFILE_READ_MAX; /* swtpm reads no more */
	if (k->hex || !k->format_given) {
		rc = hex_key(material, len, want, out, err, errlen);
	} else if (len > want) {
		snprintf(err, errlen, "the binary key has %zu bytes, more than the mode's %zu", len,
			 want);
	} else if (len != 16 && len != 32) {
		snprintf(err, errlen, "the binary key has %zu bytes (16 or 32 are usable)", len);
	} else {
		memcpy(out->key, material, len);
		out->len = len;
		rc = 0;
	}
	if (rc < 0)
		OPENSSL_cleanse(out, sizeof(*out));
	return rc;
}

/* ---- header and TLVs ------------------------------------------------------------------ */

struct hdr {
	uint8_t version;
	uint16_t flags;
	const uint8_t *payload;
	size_t payload_len;
};

/* 0: a header swtpm takes as one; SWF_ERR_VERSION; SWF_ERR_MALFORMED (no header). */
static int hdr_parse(const uint8_t *buf, size_t len, struct hdr *h)
{
	struct rcursor c;
	uint8_t min_version;
	uint16_t hdrsize;
	uint32_t totlen;

	rc_init(&c, buf, len);
	if (rc_u8(&c, &h->version) < 0 || rc_u8(&c, &min_version) < 0 || rc_u16(&c, &hdrsize) < 0 ||
	    rc_u16(&c, &h->flags) < 0 || rc_u32(&c, &totlen) < 0)
		return SWF_ERR_MALFORMED;
	if (totlen != len || hdrsize != SWTPM_HDR_LEN)
		return SWF_ERR_MALFORMED;
	if (min_version > SWTPM_HDR_VERSION)
		return SWF_ERR_VERSION;
	h->payload_len = rc_remaining(&c);
	if (rc_ptr(&c, &h->payload, h->payload_len) < 0)
		return SWF_ERR_MALFORMED;
	return SWF_OK;
}

bool swtpm_has_header(const uint8_t *buf, size_t len, uint16_t *flags)
{
	struct hdr h;

	if (hdr_parse(buf, len, &h) != SWF_OK)
		return false;
	if (flags)
		*flags = h.flags;
	return true;
}

/* Find the first TLV with tag in a TLV sequence that must be well formed to its end.
 * Returns 1 found, 0 absent, -1 malformed. */
static int tlv_get(const uint8_t *buf, size_t len, uint16_t want, const uint8_t **val,
		   size_t *val_len)
{
	struct rcursor c;
	int found = 0;

	rc_init(&c, buf, len);
	while (rc_remaining(&c) > 0) {
		uint16_t tag;
		uint32_t n;
		const uint8_t *p;

		if (rc_u16(&c, &tag) < 0 || rc_u32(&c, &n) < 0 || rc_ptr(&c, &p, n) < 0)
			return -1;
		if (tag == want && !found) {
			*val = p;
			*val_len = n;
			found = 1;
		}
	}
	return found;
}

static int tlv_put(struct wcursor *w, uint16_t tag, const uint8_t *val, size_t len)
{
	if (len > UINT32_MAX)
		return -1;
	if (wc_u16(w, tag) < 0 || wc_u32(w, (uint32_t)len) < 0 || wc_bytes(w, val, len) < 0)
		return -1;
	return 0;
}

static void hdr_put(uint8_t *p, uint16_t flags, uint32_t total)
{
	p[0] = SWTPM_HDR_VERSION;
	p[1] = 1;
	be16_put(p + 2, SWTPM_HDR_LEN);
	be16_put(p + 4, flags);
	be32_put(p + 6, total);
}

/* ---- swtpm's cipher ------------------------------------------------------------------- */

static const EVP_CIPHER *cbc(size_t keylen)
{
	return keylen == 32 ? EVP_aes_256_cbc() : EVP_aes_128_cbc();
}

static int hmac(const struct swtpm_key *k, const uint8_t *ct, size_t ctlen, const uint8_t *iv,
		size_t ivlen, uint8_t md[HMAC_LEN])
{
	OSSL_PARAM params[2];
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	size_t outl = 0;
	int rc = -1;

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (ctx && EVP_MAC_init(ctx, k->key, k->len, params) == 1 &&
	    EVP_MAC_update(ctx, ct, ctlen) == 1 && (!iv || EVP_MAC_update(ctx, iv, ivlen) == 1) &&
	    EVP_MAC_final(ctx, md, &outl, HMAC_LEN) == 1 && outl == HMAC_LEN)
		rc = 0;
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return rc;
}

/* AES-CBC without OpenSSL's padding; iv (16 bytes used) may be NULL: zeros. */
static int cbc_run(const struct swtpm_key *k, const uint8_t *iv, bool enc, const uint8_t *in,
		   size_t len, uint8_t *out)
{
	static const uint8_t zero_iv[AES_BLOCK];
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n1 = 0, n2 = 0, rc = -1;

	if (len > INT_MAX || len % AES_BLOCK)
		goto out;
	if (ctx && EVP_CipherInit_ex(ctx, cbc(k->len), NULL, k->key, iv ? iv : zero_iv, enc) == 1 &&
	    EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 &&
	    EVP_CipherUpdate(ctx, out, &n1, in, (int)len) == 1 &&
	    EVP_CipherFinal_ex(ctx, out + n1, &n2) == 1 && (size_t)(n1 + n2) == len)
		rc = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

/* swtpm's padding: to a multiple of the key length, p bytes of value p (1..keylen). */
static int unpad(const struct swtpm_key *k, const uint8_t *pt, size_t len, size_t *plain_len)
{
	uint8_t p;
	size_t i;

	if (len < k->len)
		return -1;
	p = pt[len - 1];
	if (p == 0 || p > k->len)
		return -1;
	for (i = len - p; i < len; i++)
		if (pt[i] != p)
			return -1;
	*plain_len = len - p;
	return 0;
}

/*
 * Encrypt pt as swtpm does into three TLVs appended to w: tag_ct (ciphertext), HMAC, tag_iv
 * (IV as long as the key). The caller sized w with seal_size.
 */
static size_t seal_size(const struct swtpm_key *k, size_t ptlen)
{
	return 3 * 6 + (ptlen / k->len + 1) * k->len + HMAC_LEN + k->len;
}

static int seal(const struct swtpm_key *k, const uint8_t *pt, size_t ptlen, uint16_t tag_ct,
		uint16_t tag_iv, struct wcursor *w)
{
	size_t pad = k->len - ptlen % k->len, ctlen = ptlen + pad;
	uint8_t iv[32], md[HMAC_LEN], *buf;
	int rc = -1;

	if (ptlen > SWF_MAX_PLAIN)
		return -1;
	buf = malloc(ctlen);
	if (!buf)
		return -1;
	memcpy(buf, pt, ptlen);
	memset(buf + ptlen, (int)pad, pad);
	if (RAND_bytes(iv, (int)k->len) == 1 && cbc_run(k, iv, true, buf, ctlen, buf) == 0 &&
	    hmac(k, buf, ctlen, iv, k->len, md) == 0 && tlv_put(w, tag_ct, buf, ctlen) == 0 &&
	    tlv_put(w, SWTPM_TAG_HMAC, md, HMAC_LEN) == 0 && tlv_put(w, tag_iv, iv, k->len) == 0)
		rc = 0;
	free_secret(buf, ctlen);
	return rc;
}

/* Open the TLVs seal wrote (found by tag, in any order) into *pt (malloc'd). */
static int open_sealed(const struct swtpm_key *k, const uint8_t *tlvs, size_t len, uint16_t tag_ct,
		       uint16_t tag_iv, const char *what, uint8_t **pt, size_t *ptlen, char *err,
		       size_t errlen)
{
	const uint8_t *ct = NULL, *mac = NULL, *iv = NULL;
	size_t ctlen = 0, maclen = 0, ivlen = 0, plain_len;
	uint8_t md[HMAC_LEN], *buf;
	int has_ct, has_mac, has_iv;

	has_ct = tlv_get(tlvs, len, tag_ct, &ct, &ctlen);
	has_mac = tlv_get(tlvs, len, SWTPM_TAG_HMAC, &mac, &maclen);
	has_iv = tlv_get(tlvs, len, tag_iv, &iv, &ivlen);
	if (has_ct < 0 || has_mac < 0 || has_iv < 0) {
		snprintf(err, errlen, "%s: the TLV sequence is truncated", what);
		return SWF_ERR_MALFORMED;
	}
	if (!has_ct || !has_mac) {
		snprintf(err, errlen, "%s: no %s TLV", what, !has_ct ? "encrypted-data" : "HMAC");
		return SWF_ERR_MALFORMED;
	}
	if (maclen < HMAC_LEN) {
		snprintf(err, errlen, "%s: the HMAC has %zu bytes, not 32", what, maclen);
		return SWF_ERR_MALFORMED;
	}
	if (has_iv && ivlen != k->len) {
		snprintf(err, errlen, "%s: the IV has %zu bytes; the key has %zu", what, ivlen,
			 k->len);
		return SWF_ERR_MALFORMED;
	}
	if (ctlen < k->len || ctlen % AES_BLOCK || ctlen > SWF_MAX_PLAIN + 32) {
		snprintf(err, errlen, "%s: the ciphertext has an impossible length (%zu)", what,
			 ctlen);
		return SWF_ERR_MALFORMED;
	}
	if (hmac(k, ct, ctlen, has_iv ? iv : NULL, ivlen, md) < 0)
		return fail(SWF_ERR_CRYPTO, err, errlen, "HMAC-SHA256 failed");
	if (CRYPTO_memcmp(md, mac, HMAC_LEN) != 0) {
		snprintf(err, errlen,
			 "%s: the HMAC does not match (wrong key, or the data were modified)",
			 what);
		return SWF_ERR_AUTH;
	}
	buf = malloc(ctlen);
	if (!buf)
		return fail(SWF_ERR_CRYPTO, err, errlen, "out of memory");
	if (cbc_run(k, has_iv ? iv : NULL, false, ct, ctlen, buf) < 0) {
		free_secret(buf, ctlen);
		return fail(SWF_ERR_CRYPTO, err, errlen, "AES-CBC failed");
	}
	if (unpad(k, buf, ctlen, &plain_len) < 0) {
		/* authentic, yet badly padded: made by a broken writer */
		free_secret(buf, ctlen);
		snprintf(err, errlen, "%s: authentic but its padding is invalid", what);
		return SWF_ERR_MALFORMED;
	}
	OPENSSL_cleanse(buf + plain_len, ctlen - plain_len);
	*pt = buf;
	*ptlen = plain_len;
	return SWF_OK;
}

/* swtpm's version-1 form: AES-CBC (zero IV) over SHA-256(plain) || plain. */
static int open_v1(const struct swtpm_key *k, const uint8_t *ct, size_t ctlen, const char *what,
		   uint8_t **pt, size_t *ptlen, char *err, size_t errlen)
{
	uint8_t md[SHA256_LEN], *buf, *out;
	size_t len;

	if (ctlen < k->len || ctlen % AES_BLOCK || ctlen > SWF_MAX_PLAIN + 64) {
		snprintf(err, errlen, "%s (no header, encrypted): impossible length %zu", what,
			 ctlen);
		return SWF_ERR_MALFORMED;
	}
	buf = malloc(ctlen);
	if (!buf)
		return fail(SWF_ERR_CRYPTO, err, errlen, "out of memory");
	if (cbc_run(k, NULL, false, ct, ctlen, buf) < 0) {
		free_secret(buf, ctlen);
		return fail(SWF_ERR_CRYPTO, err, errlen, "AES-CBC failed");
	}
	if (unpad(k, buf, ctlen, &len) < 0 || len < SHA256_LEN ||
	    sha256(buf + SHA256_LEN, len - SHA256_LEN, md) < 0 ||
	    CRYPTO_memcmp(md, buf, SHA256_LEN) != 0) {
		free_secret(buf, ctlen);
		snprintf(err, errlen,
			 "%s (no header, encrypted): does not decrypt to a hashed blob (wrong key, "
			 "or the data were modified)",
			 what);
		return SWF_ERR_AUTH;
	}
	out = malloc(len - SHA256_LEN + 1);
	if (!out) {
		free_secret(buf, ctlen);
		return fail(SWF_ERR_CRYPTO, err, errlen, "out of memory");
	}
	memcpy(out, buf + SHA256_LEN, len - SHA256_LEN);
	free_secret(buf, ctlen);
	*pt = out;
	*ptlen = len - SHA256_LEN;
	return SWF_OK;
}

static int copy_out(const uint8_t *p, size_t len, uint8_t **raw, size_t *raw_len, char *err,
		    size_t errlen)
{
	*raw = malloc(len ? len : 1);
	if (!*raw)
		return fail(SWF_ERR_CRYPTO, err, errlen, "out of memory");
	if (len)
		memcpy(*raw, p, len);
	*raw_len = len;
	return SWF_OK;
}

static int key_size_check(const struct swtpm_key *k, bool flag_256, const char *what,
			  const char *opt, char *err, size_t errlen)
{
	size_t need = flag_256 ? 32 : 16;

	if (k->len == need)
		return SWF_OK;
	snprintf(err, errlen,
		 "%s is encrypted with a %zu-bit key, %s gives a %zu-bit key (mode=%s)", what,
		 need * 8, opt, k->len * 8, flag_256 ? "aes-256-cbc" : "aes-128-cbc");
	return SWF_ERR_KEY_SIZE;
}

/* One layer: plain (tag_plain) or sealed under k; ver 1 layers have no TLVs. */
static int open_layer(const struct hdr *h, const uint8_t *p, size_t len, bool encrypted,
		      const struct swtpm_key *k, bool flag_256, uint16_t tag_plain, uint16_t tag_ct,
		      uint16_t tag_iv, const char *what, const char *opt, uint8_t **out,
		      size_t *out_len, char *err, size_t errlen)
{
	const uint8_t *v;
	size_t vlen;
	int rc;

	if (encrypted) {
		if (!k || !k->len) {
			snprintf(err, errlen, "%s is encrypted (swtpm %s), and vtpmd has no %s",
				 what, opt, opt);
			return SWF_ERR_NO_KEY;
		}
		if (h->version == 1)
			return open_v1(k, p, len, what, out, out_len, err, errlen);
		rc = key_size_check(k, flag_256, what, opt, err, errlen);
		if (rc != SWF_OK)
			return rc;
		return open_sealed(k, p, len, tag_ct, tag_iv, what, out, out_len, err, errlen);
	}
	if (h->version == 1)
		return copy_out(p, len, out, out_len, err, errlen);
	rc = tlv_get(p, len, tag_plain, &v, &vlen);
	if (rc <= 0) {
		snprintf(err, errlen, "%s: %s", what,
			 rc < 0 ? "the TLV sequence is truncated" : "no plain data TLV");
		return SWF_ERR_MALFORMED;
	}
	return copy_out(v, vlen, out, out_len, err, errlen);
}

/* ---- state files ---------------------------------------------------------------------- */

int swtpm_file_decode(const uint8_t *buf, size_t len, const struct swtpm_key *fk, uint8_t **raw,
		      size_t *raw_len, char *err, size_t errlen)
{
	struct hdr h;
	int rc;

	*raw = NULL;
	*raw_len = 0;
	rc = hdr_parse(buf, len, &h);
	if (rc == SWF_ERR_VERSION)
		return fail(rc, err, errlen, "written by a newer swtpm (header min_version > 2)");
	if (rc != SWF_OK) {
		/* version 1: no header, the file is the payload (encrypted when a key is set) */
		h.version = 1;
		h.flags = fk && fk->len ? SWTPM_FLAG_ENCRYPTED : 0;
		h.payload = buf;
		h.payload_len = len;
	} else if (h.version == 0 || h.version > SWTPM_HDR_VERSION) {
		snprintf(err, errlen, "header version %u (swtpm 0.7.1 reads 1 and 2)", h.version);
		return SWF_ERR_MALFORMED;
	}
	if (h.payload_len == 0)
		return fail(SWF_ERR_MALFORMED, err, errlen, "no data");
	return open_layer(&h, h.payload, h.payload_len, h.flags & SWTPM_FLAG_ENCRYPTED, fk,
			  h.flags & SWTPM_FLAG_ENC_256, SWTPM_TAG_DATA, SWTPM_TAG_ENC_DATA,
			  SWTPM_TAG_IV_ENC_DATA, "the state file", "--key", raw, raw_len, err,
			  errlen);
}

static int finish(uint8_t *buf, struct wcursor *w, uint16_t flags, uint8_t **out, size_t *out_len)
{
	if (w->failed) {
		free_secret(buf, w->cap);
		return SWF_ERR_CRYPTO;
	}
	hdr_put(buf, flags, (uint32_t)w->pos);
	*out = buf;
	*out_len = w->pos;
	return SWF_OK;
}

int swtpm_file_encode(const uint8_t *raw, size_t len, const struct swtpm_key *fk, uint8_t **out,
		      size_t *out_len)
{
	bool enc = fk && fk->len;
	size_t cap = SWTPM_HDR_LEN + (enc ? seal_size(fk, len) : 6 + len);
	uint16_t flags = 0;
	struct wcursor w;
	uint8_t *buf;

	if (len > SWF_MAX_PLAIN || !(buf = malloc(cap)))
		return SWF_ERR_CRYPTO;
	wc_init(&w, buf, cap);
	wc_reserve(&w, SWTPM_HDR_LEN);
	if (enc) {
		flags = SWTPM_FLAG_ENCRYPTED | (fk->len == 32 ? SWTPM_FLAG_ENC_256 : 0);
		if (seal(fk, raw, len, SWTPM_TAG_ENC_DATA, SWTPM_TAG_IV_ENC_DATA, &w) < 0)
			w.failed = true;
	} else {
		tlv_put(&w, SWTPM_TAG_DATA, raw, len);
	}
	return finish(buf, &w, flags, out, out_len);
}

/* ---- migration blobs ------------------------------------------------------------------ */

int swtpm_blob_encode(const uint8_t *raw, size_t len, const struct swtpm_key *fk,
		      const struct swtpm_key *mk, uint8_t **out, size_t *out_len,
		      bool *inner_encrypted)
{
	bool fenc = fk && fk->len, menc = mk && mk->len;
	size_t icap = fenc ? seal_size(fk, len) : 6 + len, cap;
	uint16_t flags = SWTPM_FLAG_MIG_DATA;
	struct wcursor iw, w;
	uint8_t *inner, *buf;
	int rc;

	*inner_encrypted = false;
	if (len > SWF_MAX_PLAIN || !(inner = malloc(icap)))
		return SWF_ERR_CRYPTO;
	wc_init(&iw, inner, icap);
	if (fenc) {
		flags |= SWTPM_FLAG_ENCRYPTED | (fk->len == 32 ? SWTPM_FLAG_ENC_256 : 0);
		if (seal(fk, raw, len, SWTPM_TAG_ENC_DATA, SWTPM_TAG_IV_ENC_DATA, &iw) < 0)
			iw.failed = true;
	} else {
		tlv_put(&iw, SWTPM_TAG_DATA, raw, len);
	}
	cap = SWTPM_HDR_LEN + (menc ? seal_size(mk, iw.pos) : 6 + iw.pos);
	buf = iw.failed ? NULL : malloc(cap);
	if (!buf) {
		free_secret(inner, icap);
		return SWF_ERR_CRYPTO;
	}
	wc_init(&w, buf, cap);
	wc_reserve(&w, SWTPM_HDR_LEN);
	if (menc) {
		flags |= SWTPM_FLAG_MIG_ENCR | (mk->len == 32 ? SWTPM_FLAG_MIG_256 : 0);
		if (seal(mk, inner, iw.pos, SWTPM_TAG_ENC_MIG, SWTPM_TAG_IV_ENC_MIG, &w) < 0)
			w.failed = true;
	} else {
		tlv_put(&w, SWTPM_TAG_MIG_DATA, inner, iw.pos);
	}
	free_secret(inner, icap);
	rc = finish(buf, &w, flags, out, out_len);
	if (rc == SWF_OK)
		*inner_encrypted = fenc;
	return rc;
}

int swtpm_blob_decode(const uint8_t *buf, size_t len, bool req_encrypted,
		      const struct swtpm_key *fk, const struct swtpm_key *mk, uint8_t **raw,
		      size_t *raw_len, char *err, size_t errlen)
{
	const uint8_t *mig;
	uint8_t *opened = NULL;
	size_t mig_len, opened_len = 0;
	struct hdr h;
	int rc;

	*raw = NULL;
	*raw_len = 0;
	rc = hdr_parse(buf, len, &h);
	if (rc == SWF_ERR_VERSION)
		return fail(rc, err, errlen, "the blob is from a newer swtpm (min_version > 2)");
	if (rc != SWF_OK)
		return fail(rc, err, errlen,
			    "not a state blob (no swtpm header, or its length is not the blob's)");
	if (h.version == 0 || h.version > SWTPM_HDR_VERSION) {
		snprintf(err, errlen, "header version %u (swtpm 0.7.1 reads 1 and 2)", h.version);
		return SWF_ERR_MALFORMED;
	}
	if (h.payload_len == 0)
		return SWF_OK; /* no blob of this type */
	if (h.flags & SWTPM_FLAG_MIG_ENCR) {
		rc =
		    open_layer(&h, h.payload, h.payload_len, true, mk, h.flags & SWTPM_FLAG_MIG_256,
			       0, SWTPM_TAG_ENC_MIG, SWTPM_TAG_IV_ENC_MIG, "the state blob",
			       "--migration-key", &opened, &opened_len, err, errlen);
		if (rc != SWF_OK)
			return rc;
		mig = opened;
		mig_len = opened_len;
	} else if (h.version >= 2 && (h.flags & SWTPM_FLAG_MIG_DATA)) {
		rc = tlv_get(h.payload, h.payload_len, SWTPM_TAG_MIG_DATA, &mig, &mig_len);
		if (rc <= 0)
			return fail(SWF_ERR_MALFORMED, err, errlen,
				    rc < 0 ? "the state blob's TLV sequence is truncated"
					   : "the state blob has no migration-data TLV");
	} else {
		mig = h.payload;
		mig_len = h.payload_len;
	}
	rc = open_layer(&h, mig, mig_len, req_encrypted || (h.flags & SWTPM_FLAG_ENCRYPTED), fk,
			h.flags & SWTPM_FLAG_ENC_256, SWTPM_TAG_DATA, SWTPM_TAG_ENC_DATA,
			SWTPM_TAG_IV_ENC_DATA, "the state blob's inner data", "--key", raw, raw_len,
			err, errlen);
	free_secret(opened, opened_len);
	return rc;
}

bool swtpm_blob_is_swtpm_sealed(const uint8_t *buf, size_t len, bool req_encrypted)
{
	const uint8_t *v;
	size_t vlen;
	struct hdr h;

	if (req_encrypted)
		return true;
	if (hdr_parse(buf, len, &h) != SWF_OK)
		return false;
	if (h.flags & SWTPM_FLAG_ENCRYPTED)
		return true;
	if (!(h.flags & SWTPM_FLAG_MIG_ENCR))
		return false;
	/* vtpmd's own envelope carries its sealed data in TLV 0x7601 */
	return tlv_get(h.payload, h.payload_len, SWTPM_TAG_VTPM_AEAD, &v, &vlen) != 1;
}
