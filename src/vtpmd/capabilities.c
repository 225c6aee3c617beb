#include "vtpmd/capabilities.h"

#include <stdio.h>
#include <string.h>

#include "common/errmsg.h"
#include "common/parse_num.h"

int caps_rsa_key_sizes(const char *info, uint32_t *sizes, size_t max, char *err, size_t errlen)
{
	static const char key[] = "\"RSAKeySizes\":[";
	const char *p = info ? strstr(info, key) : NULL;
	const char *end;
	char num[16];
	size_t n = 0, len;

	if (!p)
		return 0;
	p += sizeof(key) - 1;
	end = strchr(p, ']');
	if (!end)
		return errmsg(err, errlen, "libtpms info: RSAKeySizes list is not closed");
	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *stop = comma ? comma : end;

		len = (size_t)(stop - p);
		if (len == 0 || len >= sizeof(num))
			return errmsg(err, errlen,
				      "libtpms info: RSAKeySizes entry %zu is malformed", n);
		if (n == max)
			return errmsg(err, errlen, "libtpms info: more than %zu RSA key sizes",
				      max);
		memcpy(num, p, len);
		num[len] = '\0';
		if (parse_num_u32("libtpms info: RSA key size", num, NUM_DEC, 512, 16384, &sizes[n],
				  err, errlen) < 0)
			return -1;
		n++;
		p = comma ? comma + 1 : end;
		if (comma && p == end)
			return errmsg(err, errlen, "libtpms info: RSAKeySizes ends with a comma");
	}
	return (int)n;
}

int caps_json(char *buf, size_t len, const uint32_t *rsa_sizes, size_t n_rsa, const char *version)
{
	/* swtpm 0.7.1's features for `swtpm socket --tpm2`, in its order, less tpm-1.2 */
	static const char head[] =
	    "{ \"type\": \"swtpm\", \"features\": [ \"tpm-2.0\", \"tpm-send-command-header\", "
	    "\"flags-opt-startup\", \"cmdarg-seccomp\", \"cmdarg-key-fd\", \"cmdarg-pwd-fd\", "
	    "\"cmdarg-print-states\", \"nvram-backend-dir\", \"nvram-backend-file\"";
	size_t off, i;
	int n;

	n = snprintf(buf, len, "%s", head);
	if (n < 0 || (size_t)n >= len)
		return -1;
	off = (size_t)n;
	for (i = 0; i < n_rsa; i++) {
		n = snprintf(buf + off, len - off, ", \"rsa-keysize-%u\"", rsa_sizes[i]);
		if (n < 0 || (size_t)n >= len - off)
			return -1;
		off += (size_t)n;
	}
	n = snprintf(buf + off, len - off, " ], \"version\": \"%s\" }", version);
	return n < 0 || (size_t)n >= len - off ? -1 : 0;
}
