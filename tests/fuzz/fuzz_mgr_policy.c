/*
 * libFuzzer harness: a signed host policy file as the manager parses it (vtpmctl host policy
 * add; the stored list at start): host_policy_parse through the cursor, its precise refusal,
 * a round trip of what parsed, and the stored list's reader on the same bytes. No key, no TPM.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vtpmmgrd/host_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct host_policy p;
	static uint8_t out[HOST_POLICY_MAX];
	const uint8_t *e;
	char err[256];
	size_t n, len;

	err[0] = '\0';
	if (host_policy_parse(data, size, &p, err, sizeof(err)) != 0) {
		if (strnlen(err, sizeof(err)) == 0)
			__builtin_trap(); /* every refusal says why */
	} else {
		/* what parsed encodes back to the same bytes */
		len = host_policy_encode(&p, out, sizeof(out));
		if (len != size || memcmp(out, data, size) != 0)
			__builtin_trap();
	}
	for (size_t i = 0; i < 16 && host_policy_list_get(data, size, i, &e, &n) == 1; i++)
		if (e < data || e + n > data + size)
			__builtin_trap();
	return 0;
}
