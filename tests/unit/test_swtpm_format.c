/*
 * test_swtpm_format.c — swtpm 0.7.1's state files and migration blobs (swtpm_format.h):
 * files written by the real swtpm 0.7.1 (tests/unit/fixtures/swtpm071_*.hex) open with the
 * keys swtpm derived, what vtpmd writes opens again, and malformed, truncated, tampered or
 * wrongly keyed input is refused with the precise error and never hands out bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "common/cursor.h"
#include "unit.h"
#include "vtpmd/blob_envelope.h"
#include "vtpmd/swtpm_format.h"

static char err[512];

/* ---- helpers ----------------------------------------------------------------------------- */

static uint8_t *load_fixture(const char *name, size_t *len)
{
	const char *top = getenv("VTPM_TOP");
	char path[512], line[256];
	uint8_t *buf = malloc(65536);
	unsigned int b;
	FILE *f;

	*len = 0;
	snprintf(path, sizeof(path), "%s/tests/unit/fixtures/%s", top ? top : ".", name);
	f = fopen(path, "r");
	if (!f || !buf) {
		printf("# %s: %s\n", path, strerror(errno));
		if (f)
			fclose(f);
		free(buf);
		return NULL;
	}
	while (fgets(line, sizeof(line), f))
		for (char *p = line; p[0] && p[0] != '\n' && *len < 65536; p += 2)
			if (sscanf(p, "%2x", &b) == 1)
				buf[(*len)++] = (uint8_t)b;
	fclose(f);
	return buf;
}

static struct key_opts kopts(enum key_source src, unsigned bits, int format, bool pbkdf2)
{
	struct key_opts k;

	memset(&k, 0, sizeof(k));
	k.source = src;
	k.fd = -1;
	k.bits = bits;
	k.kdf_pbkdf2 = pbkdf2;
	k.format_given = format >= 0;
	k.hex = format == 1;
	return k;
}

static int derive(const struct key_opts *k, const char *material, struct swtpm_key *out)
{
	return swtpm_key_derive(k, (const uint8_t *)material, strlen(material), out, err,
				sizeof(err));
}

static void hex_to(const char *hex, uint8_t *out)
{
	unsigned int b;

	for (size_t i = 0; hex[2 * i]; i++) {
		sscanf(hex + 2 * i, "%2x", &b);
		out[i] = (uint8_t)b;
	}
}

static struct swtpm_key key_of(const char *hex)
{
	struct swtpm_key k;

	memset(&k, 0, sizeof(k));
	k.len = strlen(hex) / 2;
	hex_to(hex, k.key);
	return k;
}

static const char K256[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
static const char M256[] = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

/* ---- keys -------------------------------------------------------------------------------- */

static void test_keys(void)
{
	struct swtpm_key k, want;
	struct key_opts o;

	unit_begin("key: hex file, format absent means hex (swtpm's default)");
	o = kopts(KEY_FILE, 256, -1, true);
	want = key_of(K256);
	if (CHECKF(derive(&o, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
			  &k) == 0,
		   "%s", err))
		CHECK(k.len == 32 && memcmp(k.key, want.key, 32) == 0);
	unit_end();

	unit_begin("key: hex with 0x, 128 bits; trailing text after white space ignored");
	o = kopts(KEY_FD, 128, 1, true);
	want = key_of("0f0e0d0c0b0a09080706050403020100");
	if (CHECKF(derive(&o, "0x0f0e0d0c0b0a09080706050403020100 comment", &k) == 0, "%s", err))
		CHECK(k.len == 16 && memcmp(k.key, want.key, 16) == 0);
	unit_end();

	unit_begin("key: bad hex refused (odd, not hex, too long, too short for the mode)");
	o = kopts(KEY_FILE, 128, 1, true);
	CHECK(derive(&o, "0f0e0d0c0b0a09080706050403020", &k) < 0 && k.len == 0);
	CHECK(derive(&o, "0f0e0d0c0b0a0908070605040302010g", &k) < 0);
	CHECK(derive(&o, "0f0e0d0c0b0a0908070605040302010011", &k) < 0 && strstr(err, "longer"));
	o = kopts(KEY_FILE, 256, 1, true);
	CHECK(derive(&o, "0f0e0d0c0b0a09080706050403020100", &k) < 0 && strstr(err, "digits"));
	unit_end();

	unit_begin("key: binary 16 and 32 bytes; 16 bytes with aes-256-cbc is AES-128 (swtpm)");
	o = kopts(KEY_FILE, 256, 0, true);
	CHECK(derive(&o, "0123456789abcdef0123456789abcdef", &k) == 0 && k.len == 32);
	CHECK(derive(&o, "0123456789abcdef", &k) == 0 && k.len == 16 &&
	      memcmp(k.key, "0123456789abcdef", 16) == 0);
	CHECK(derive(&o, "0123456789abcdef0123", &k) < 0);
	o = kopts(KEY_FILE, 128, 0, true);
	CHECK(derive(&o, "0123456789abcdef0123456789abcdef", &k) < 0 && strstr(err, "more than"));
	unit_end();

	unit_begin("key: passphrase PBKDF2-SHA512 (salt swtpm, 1000) and SHA-512, newline kept");
	o = kopts(KEY_PWDFILE, 128, -1, true);
	want = key_of("92bb9ef4ea654697a65e1689d0a0185b");
	CHECK(derive(&o, "secret\n", &k) == 0 && k.len == 16 && memcmp(k.key, want.key, 16) == 0);
	o = kopts(KEY_PWDFD, 256, -1, true);
	want = key_of("92bb9ef4ea654697a65e1689d0a0185b4e7f7e2b3173633277e1408c93d83826");
	CHECK(derive(&o, "secret\n", &k) == 0 && k.len == 32 && memcmp(k.key, want.key, 32) == 0);
	o = kopts(KEY_PWDFILE, 256, -1, false);
	want = key_of("eaa16b9ced0b5c6ece7aae07cb47c671e8c8f03bfe807f941809477a847337af");
	CHECK(derive(&o, "secret\n", &k) == 0 && k.len == 32 && memcmp(k.key, want.key, 32) == 0);
	unit_end();
}

/* ---- swtpm's own files ------------------------------------------------------------------- */

struct fx {
	uint8_t *file, *blob; /* permall, and the permanent blob of the same swtpm */
	size_t file_len, blob_len;
	struct swtpm_key fk, mk;
};

static int fixtures(struct fx *a, struct fx *b)
{
	struct key_opts o;

	memset(a, 0, sizeof(*a));
	memset(b, 0, sizeof(*b));
	a->file = load_fixture("swtpm071_key256_permall.hex", &a->file_len);
	a->blob = load_fixture("swtpm071_mig256_permanent.hex", &a->blob_len);
	a->fk = key_of(K256);
	a->mk = key_of(M256);
	b->file = load_fixture("swtpm071_pwd128_permall.hex", &b->file_len);
	b->blob = load_fixture("swtpm071_pwdsha512_permanent.hex", &b->blob_len);
	o = kopts(KEY_PWDFILE, 128, -1, true);
	derive(&o, "secret\n", &b->fk);
	o = kopts(KEY_PWDFILE, 128, -1, false);
	derive(&o, "secret\n", &b->mk);
	return a->file && a->blob && b->file && b->blob ? 0 : -1;
}

static void test_fixture(const char *name, const struct fx *x)
{
	uint8_t *raw = NULL, *raw2 = NULL;
	size_t raw_len = 0, raw2_len = 0;
	int rc;

	unit_begin(name);
	rc = swtpm_file_decode(x->file, x->file_len, &x->fk, &raw, &raw_len, err, sizeof(err));
	if (!CHECKF(rc == SWF_OK, "file: %d %s", rc, err))
		goto out;
	rc = swtpm_blob_decode(x->blob, x->blob_len, false, NULL, &x->mk, &raw2, &raw2_len, err,
			       sizeof(err));
	if (!CHECKF(rc == SWF_OK, "blob: %d %s", rc, err))
		goto out;
	/* the same swtpm's permall and permanent blob hold the same libtpms state */
	CHECKF(raw_len > 100 && raw_len == raw2_len && memcmp(raw, raw2, raw_len) == 0,
	       "file %zu bytes, blob %zu bytes", raw_len, raw2_len);
	CHECK(swtpm_blob_is_swtpm_sealed(x->blob, x->blob_len, false));
out:
	free(raw);
	free(raw2);
	unit_end();
}

static void test_fixture_refusals(const struct fx *a, const struct fx *b)
{
	uint8_t *raw = (uint8_t *)1;
	size_t raw_len;
	int rc;

	unit_begin("swtpm file: no key, wrong key, key of the other size are refused precisely");
	rc = swtpm_file_decode(a->file, a->file_len, NULL, &raw, &raw_len, err, sizeof(err));
	CHECKF(rc == SWF_ERR_NO_KEY && !raw && strstr(err, "--key"), "%d %s", rc, err);
	rc = swtpm_file_decode(a->file, a->file_len, &a->mk, &raw, &raw_len, err, sizeof(err));
	CHECKF(rc == SWF_ERR_AUTH && !raw && strstr(err, "HMAC"), "%d %s", rc, err);
	rc = swtpm_file_decode(a->file, a->file_len, &b->fk, &raw, &raw_len, err, sizeof(err));
	CHECKF(rc == SWF_ERR_KEY_SIZE && !raw && strstr(err, "256-bit"), "%d %s", rc, err);
	CHECK(swtpm_fmt_res(SWF_ERR_AUTH) == 0x21 && swtpm_fmt_res(SWF_ERR_NO_KEY) == 0x0d);
	unit_end();

	unit_begin("swtpm blob: no migration key, wrong one, only a file key");
	rc = swtpm_blob_decode(a->blob, a->blob_len, false, &a->fk, NULL, &raw, &raw_len, err,
			       sizeof(err));
	CHECKF(rc == SWF_ERR_NO_KEY && !raw && strstr(err, "--migration-key"), "%d %s", rc, err);
	rc = swtpm_blob_decode(a->blob, a->blob_len, false, NULL, &a->fk, &raw, &raw_len, err,
			       sizeof(err));
	CHECKF(rc == SWF_ERR_AUTH && !raw, "%d %s", rc, err);
	rc = swtpm_blob_decode(b->blob, b->blob_len, false, NULL, &a->mk, &raw, &raw_len, err,
			       sizeof(err));
	CHECKF(rc == SWF_ERR_KEY_SIZE && !raw, "%d %s", rc, err);
	/* the request says the inner is file-key encrypted, and no file key */
	rc = swtpm_blob_decode(b->blob, b->blob_len, true, NULL, &b->mk, &raw, &raw_len, err,
			       sizeof(err));
	CHECKF(rc == SWF_ERR_NO_KEY && !raw, "%d %s", rc, err);
	unit_end();
}

/* Every one-byte change is refused, or (a header byte swtpm does not check) gives the very
 * same plaintext; no truncation opens. */
static void test_tamper(const char *name, const uint8_t *buf, size_t len, bool is_blob,
			const struct swtpm_key *fk, const struct swtpm_key *mk)
{
	uint8_t *orig = NULL, *raw, *copy = malloc(len);
	size_t orig_len = 0, raw_len, i, bad = 0, same = 0;
	int rc;

	unit_begin(name);
	if (!CHECK(copy))
		goto out;
	rc = is_blob
		 ? swtpm_blob_decode(buf, len, false, fk, mk, &orig, &orig_len, err, sizeof(err))
		 : swtpm_file_decode(buf, len, fk, &orig, &orig_len, err, sizeof(err));
	if (!CHECKF(rc == SWF_OK, "%s", err))
		goto out;
	for (i = 0; i < len; i++) {
		memcpy(copy, buf, len);
		copy[i] ^= (uint8_t)(1u << (i % 8));
		raw = NULL;
		rc = is_blob ? swtpm_blob_decode(copy, len, false, fk, mk, &raw, &raw_len, err,
						 sizeof(err))
			     : swtpm_file_decode(copy, len, fk, &raw, &raw_len, err, sizeof(err));
		if (rc == SWF_OK && (raw_len != orig_len || memcmp(raw, orig, raw_len) != 0)) {
			CHECKF(false, "byte %zu changed and still opened to other bytes", i);
			free(raw);
			goto out;
		}
		if (rc != SWF_OK && raw) {
			CHECKF(false, "byte %zu: refused but handed out bytes", i);
			goto out;
		}
		rc == SWF_OK ? same++ : bad++;
		free(raw);
	}
	CHECKF(same <= 24, "%zu of %zu changed bytes still opened", same, len);
	for (i = 0; i < len; i++) {
		raw = NULL;
		rc = is_blob ? swtpm_blob_decode(buf, i, false, fk, mk, &raw, &raw_len, err,
						 sizeof(err))
			     : swtpm_file_decode(buf, i, fk, &raw, &raw_len, err, sizeof(err));
		free(raw);
		if (rc == SWF_OK && i > 0) {
			CHECKF(false, "truncated to %zu bytes and still opened", i);
			break;
		}
	}
	printf("# %s: %zu flips refused, %zu unchecked header bits\n", name, bad, same);
out:
	free(orig);
	free(copy);
	unit_end();
}

/* ---- what vtpmd writes ------------------------------------------------------------------- */

static void test_round_trips(void)
{
	static const uint8_t data[100] = {1, 2, 3, 4, 5};
	struct swtpm_key k128 = key_of("0f0e0d0c0b0a09080706050403020100"), k256 = key_of(K256),
			 m256 = key_of(M256);
	const struct swtpm_key *keys[] = {NULL, &k128, &k256};
	uint8_t *out, *raw;
	size_t out_len, raw_len, sizes[] = {0, 1, 15, 16, 17, 31, 32, 33, 100};
	bool inner;
	int rc;

	unit_begin("file: encode/decode round trip, no key, AES-128, AES-256, every pad length");
	for (size_t ki = 0; ki < 3; ki++)
		for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
			if (!CHECK(swtpm_file_encode(data, sizes[si], keys[ki], &out, &out_len) ==
				   SWF_OK))
				return unit_end();
			rc = swtpm_file_decode(out, out_len, keys[ki], &raw, &raw_len, err,
					       sizeof(err));
			CHECKF(rc == SWF_OK && raw_len == sizes[si] &&
				   memcmp(raw, data, raw_len) == 0,
			       "key %zu size %zu: %d %s", ki, sizes[si], rc, err);
			CHECK(out[4] == 0 &&
			      out[5] == (ki == 0   ? 0
					 : ki == 1 ? SWTPM_FLAG_ENCRYPTED
						   : SWTPM_FLAG_ENCRYPTED | SWTPM_FLAG_ENC_256));
			free(out);
			free(raw);
		}
	unit_end();

	unit_begin("blob: every combination of file key (inner) and migration key");
	for (size_t fi = 0; fi < 3; fi++)
		for (size_t mi = 0; mi < 3; mi++) {
			const struct swtpm_key *mk = mi == 2 ? &m256 : keys[mi];
			uint16_t flags;

			if (!CHECK(swtpm_blob_encode(data, 33, keys[fi], mk, &out, &out_len,
						     &inner) == SWF_OK))
				return unit_end();
			CHECK(inner == (fi != 0));
			CHECK(swtpm_has_header(out, out_len, &flags) &&
			      (flags & SWTPM_FLAG_MIG_DATA) &&
			      !!(flags & SWTPM_FLAG_MIG_ENCR) == (mi != 0) &&
			      !!(flags & SWTPM_FLAG_ENCRYPTED) == (fi != 0));
			CHECK(swtpm_blob_is_swtpm_sealed(out, out_len, false) ==
			      (fi != 0 || mi != 0));
			/* the response flag, not only the header, tells the inner is encrypted */
			rc = swtpm_blob_decode(out, out_len, inner, keys[fi], mk, &raw, &raw_len,
					       err, sizeof(err));
			CHECKF(rc == SWF_OK && raw_len == 33 && memcmp(raw, data, 33) == 0,
			       "f%zu m%zu: %d %s", fi, mi, rc, err);
			free(raw);
			/* a plain blob is byte for byte what blob_envelope reads */
			if (fi == 0 && mi == 0) {
				CHECK(blob_envelope_unwrap(out, out_len, 1, NULL, &raw, &raw_len) ==
					  0 &&
				      raw_len == 33);
				free(raw);
			}
			free(out);
		}
	unit_end();

	unit_begin("blob: vtpmd's own sealed envelope is not taken for swtpm's");
	if (CHECK(blob_envelope_wrap(data, 33, 1, m256.key, &out, &out_len) == 0)) {
		CHECK(!swtpm_blob_is_swtpm_sealed(out, out_len, false));
		CHECK(swtpm_blob_is_swtpm_sealed(out, out_len, true));
		free(out);
	}
	unit_end();

	unit_begin("blob: empty payload is 'no blob'; min_version 3 is refused");
	{
		uint8_t h[10] = {2, 1, 0, 10, 0, 4, 0, 0, 0, 10};

		raw = (uint8_t *)1;
		CHECK(swtpm_blob_decode(h, 10, false, NULL, NULL, &raw, &raw_len, err,
					sizeof(err)) == SWF_OK &&
		      raw == NULL && raw_len == 0);
		h[1] = 3;
		CHECK(swtpm_blob_decode(h, 10, false, NULL, NULL, &raw, &raw_len, err,
					sizeof(err)) == SWF_ERR_VERSION);
		h[1] = 1;
		h[9] = 11; /* totlen is not the length */
		CHECK(swtpm_blob_decode(h, 10, false, NULL, NULL, &raw, &raw_len, err,
					sizeof(err)) == SWF_ERR_MALFORMED);
	}
	unit_end();
}

/* ---- hand-made inputs: v1 files, bad padding, broken TLVs --------------------------------- */

static size_t cbc(const struct swtpm_key *k, const uint8_t *iv, const uint8_t *in, size_t len,
		  uint8_t *out)
{
	static const uint8_t zero[16];
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n1 = 0, n2 = 0;

	EVP_EncryptInit_ex(c, k->len == 32 ? EVP_aes_256_cbc() : EVP_aes_128_cbc(), NULL, k->key,
			   iv ? iv : zero);
	EVP_CIPHER_CTX_set_padding(c, 0);
	EVP_EncryptUpdate(c, out, &n1, in, (int)len);
	EVP_EncryptFinal_ex(c, out + n1, &n2);
	EVP_CIPHER_CTX_free(c);
	return (size_t)(n1 + n2);
}

static void test_handmade(void)
{
	struct swtpm_key k = key_of("0f0e0d0c0b0a09080706050403020100");
	uint8_t plain[64], buf[256], ct[128], iv[16] = {9}, md[32], *raw;
	size_t raw_len, n;
	unsigned int mdlen = 32;
	struct wcursor w;
	int rc;

	unit_begin("v1 file without header: plain copied; encrypted = CBC(SHA-256 || data)");
	memset(plain, 0x41, sizeof(plain));
	CHECK(swtpm_file_decode(plain, 40, NULL, &raw, &raw_len, err, sizeof(err)) == SWF_OK &&
	      raw_len == 40 && memcmp(raw, plain, 40) == 0);
	free(raw);
	SHA256(plain, 40, buf);
	memcpy(buf + 32, plain, 40);
	memset(buf + 72, 8, 8); /* pad 72 to 80 */
	n = cbc(&k, NULL, buf, 80, ct);
	rc = swtpm_file_decode(ct, n, &k, &raw, &raw_len, err, sizeof(err));
	CHECKF(rc == SWF_OK && raw_len == 40 && memcmp(raw, plain, 40) == 0, "%d %s", rc, err);
	free(raw);
	ct[3] ^= 1;
	raw = NULL;
	CHECK(swtpm_file_decode(ct, n, &k, &raw, &raw_len, err, sizeof(err)) == SWF_ERR_AUTH &&
	      !raw);
	unit_end();

	unit_begin("authentic but badly padded data are refused");
	memset(buf, 0x11, 32); /* last byte 0x11 > 16: not a pad swtpm writes */
	n = cbc(&k, iv, buf, 32, ct);
	memcpy(buf, ct, n);
	memcpy(buf + n, iv, 16);
	HMAC(EVP_sha256(), k.key, 16, buf, n + 16, md, &mdlen);
	wc_init(&w, buf, sizeof(buf));
	wc_u8(&w, 2), wc_u8(&w, 1), wc_u16(&w, 10), wc_u16(&w, 1), wc_u32(&w, 0);
	wc_u16(&w, 2), wc_u32(&w, (uint32_t)n), wc_bytes(&w, ct, n);
	wc_u16(&w, 3), wc_u32(&w, 32), wc_bytes(&w, md, 32);
	wc_u16(&w, 6), wc_u32(&w, 16), wc_bytes(&w, iv, 16);
	be32_put(buf + 6, (uint32_t)w.pos);
	raw = NULL;
	rc = swtpm_file_decode(buf, w.pos, &k, &raw, &raw_len, err, sizeof(err));
	CHECKF(rc == SWF_ERR_MALFORMED && !raw && strstr(err, "padding"), "%d %s", rc, err);
	unit_end();

	unit_begin("broken TLVs: overrunning length, no encrypted data, no HMAC, header version 3");
	{
		uint8_t t[64] = {2, 1, 0, 10, 0, 0, 0, 0, 0, 26, 0, 1, 0, 0, 0, 11};

		raw = NULL;
		CHECK(swtpm_file_decode(t, 26, NULL, &raw, &raw_len, err, sizeof(err)) ==
			  SWF_ERR_MALFORMED &&
		      !raw);
		t[15] = 10; /* DATA of 10 bytes fits: opens */
		CHECK(swtpm_file_decode(t, 26, NULL, &raw, &raw_len, err, sizeof(err)) == SWF_OK &&
		      raw_len == 10);
		free(raw);
		raw = NULL;
		t[5] = 1; /* says encrypted: ENCRYPTED_DATA and HMAC are missing */
		CHECK(swtpm_file_decode(t, 26, &k, &raw, &raw_len, err, sizeof(err)) ==
			  SWF_ERR_MALFORMED &&
		      strstr(err, "no encrypted-data"));
		t[11] = 2; /* now ENCRYPTED_DATA, still no HMAC */
		CHECK(swtpm_file_decode(t, 26, &k, &raw, &raw_len, err, sizeof(err)) ==
			  SWF_ERR_MALFORMED &&
		      strstr(err, "HMAC"));
		t[5] = 3; /* header version 3 is not swtpm 0.7.1's */
		t[0] = 3;
		CHECK(swtpm_file_decode(t, 26, &k, &raw, &raw_len, err, sizeof(err)) ==
		      SWF_ERR_MALFORMED);
	}
	unit_end();
}

int main(void)
{
	struct fx a, b;

	test_keys();
	unit_begin("fixtures: swtpm 0.7.1's files load");
	CHECK(fixtures(&a, &b) == 0);
	unit_end();
	if (a.file && a.blob && b.file && b.blob) {
		test_fixture("swtpm 0.7.1 file (key file aes-256) = its migration blob (aes-256)",
			     &a);
		test_fixture("swtpm 0.7.1 file (passphrase pbkdf2) = its blob (passphrase sha512)",
			     &b);
		test_fixture_refusals(&a, &b);
		test_tamper("tamper: swtpm 0.7.1 encrypted file", a.file, a.file_len, false, &a.fk,
			    NULL);
		test_tamper("tamper: swtpm 0.7.1 migration blob", b.blob, b.blob_len, true, NULL,
			    &b.mk);
	}
	free(a.file);
	free(a.blob);
	free(b.file);
	free(b.blob);
	test_round_trips();
	test_handmade();
	return unit_exit();
}
