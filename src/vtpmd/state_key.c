#include "vtpmd/state_key.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/aead.h"
#include "common/parse_num.h"

#define KEY_MATERIAL_MAX  4096
#define PBKDF2_ITERATIONS 10000

static const char kdf_info[] = "vtpmd --key v1";
static const char pbkdf2_salt[] = "vtpmd passphrase v1";

/* Hex text, optionally ending in a newline, into raw bytes. */
static int hex_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
	size_t i, n = 0;

	while (len && (in[len - 1] == '\n' || in[len - 1] == '\r'))
		len--;
	if (len % 2)
		return -1;
	for (i = 0; i < len; i += 2) {
		int hi = parse_hex_digit((char)in[i]), lo = parse_hex_digit((char)in[i + 1]);
		if (hi < 0 || lo < 0 || n == cap)
			return -1;
		out[n++] = (uint8_t)(hi << 4 | lo);
	}
	*out_len = n;
	return 0;
}

int state_key_derive(const struct key_opts *k, const uint8_t *material, size_t len, uint8_t key[32],
		     char *err, size_t errlen)
{
	uint8_t raw[64];
	size_t raw_len = 0;
	int rc = -1;

	if (k->source == KEY_PWDFILE || k->source == KEY_PWDFD) {
		if (len == 0) {
			snprintf(err, errlen, "--key: the passphrase is empty");
			return -1;
		}
		raw_len = 64;
		if (k->kdf_pbkdf2
			? PKCS5_PBKDF2_HMAC((const char *)material, (int)len,
					    (const uint8_t *)pbkdf2_salt, sizeof(pbkdf2_salt) - 1,
					    PBKDF2_ITERATIONS, EVP_sha512(), 64, raw) != 1
			: EVP_Digest(material, len, raw, NULL, EVP_sha512(), NULL) != 1) {
			snprintf(err, errlen, "--key: passphrase key derivation failed");
			goto out;
		}
	} else {
		size_t want = k->bits / 8;
		if (k->hex) {
			if (hex_decode(material, len, raw, sizeof(raw), &raw_len) < 0) {
				snprintf(err, errlen,
					 "--key: format=hex but the key is not hex text");
				goto out;
			}
		} else if (len <= sizeof(raw)) {
			memcpy(raw, material, len);
			raw_len = len;
		}
		if (raw_len != want) {
			snprintf(err, errlen,
				 "--key: mode needs a %zu-byte key, the key has %zu bytes%s", want,
				 k->hex ? raw_len : len,
				 k->hex ? "" : " (hex text? add format=hex)");
			goto out;
		}
	}
	if (hkdf_sha256(raw, raw_len, NULL, 0, (const uint8_t *)kdf_info, sizeof(kdf_info) - 1, key,
			32) < 0) {
		snprintf(err, errlen, "--key: key derivation failed");
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(raw, sizeof(raw));
	return rc;
}

static ssize_t read_all_fd(int fd, uint8_t *buf, size_t cap)
{
	size_t got = 0;
	ssize_t r;

	while (got < cap) {
		r = read(fd, buf + got, cap - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int state_key_load(const struct key_opts *k, uint8_t key[32], char *err, size_t errlen)
{
	return state_key_load_swtpm(k, key, NULL, NULL, 0, err, errlen);
}

int state_key_load_swtpm(const struct key_opts *k, uint8_t key[32], struct swtpm_key *sw,
			 char *sw_err, size_t sw_errlen, char *err, size_t errlen)
{
	uint8_t material[KEY_MATERIAL_MAX + 1];
	const char *what;
	ssize_t n;
	int fd, rc;

	if (k->source == KEY_FILE || k->source == KEY_PWDFILE) {
		what = k->path;
		fd = open(k->path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			snprintf(err, errlen, "--key: cannot open %s: %s", k->path,
				 strerror(errno));
			return -1;
		}
	} else {
		what = "the key descriptor";
		fd = k->fd;
	}
	n = read_all_fd(fd, material, sizeof(material));
	if (k->source == KEY_FILE || k->source == KEY_PWDFILE)
		close(fd);
	else
		close(k->fd); /* a passed descriptor is used once */
	if (n < 0 || n > KEY_MATERIAL_MAX) {
		snprintf(err, errlen, "--key: cannot read %s: %s", what,
			 n < 0 ? strerror(errno) : "longer than 4096 bytes");
		OPENSSL_cleanse(material, sizeof(material));
		return -1;
	}
	rc = state_key_derive(k, material, (size_t)n, key, err, errlen);
	/* swtpm's own key from the same material (a descriptor can be read only once); when
	 * swtpm would not take the material either, say why and go on without it */
	if (rc == 0 && sw && swtpm_key_derive(k, material, (size_t)n, sw, sw_err, sw_errlen) < 0)
		sw->len = 0;
	OPENSSL_cleanse(material, sizeof(material));
	if (rc == 0 && k->remove && k->path && unlink(k->path) < 0) {
		snprintf(err, errlen, "--key: cannot remove %s: %s", k->path, strerror(errno));
		OPENSSL_cleanse(key, 32);
		if (sw)
			OPENSSL_cleanse(sw, sizeof(*sw));
		return -1;
	}
	return rc;
}

int state_key_blob_key(const uint8_t state_key[32], const uint8_t uuid[16], uint8_t out[32])
{
	static const char info[] = "vtpm-managed-blob-v1";

	return hkdf_sha256(state_key, 32, uuid, 16, (const uint8_t *)info, sizeof(info) - 1, out,
			   32) == AEAD_OK
		   ? 0
		   : -1;
}
