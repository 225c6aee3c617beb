/* libFuzzer harness: swtpm state-blob envelopes as CMD_SET_STATEBLOB delivers them,
 * plain and sealed with a migration key. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vtpmd/blob_envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip(const uint8_t *data, size_t size, const uint8_t *key)
{
	uint8_t *raw = NULL, *raw2 = NULL, *env = NULL;
	size_t raw_len, raw2_len, env_len;

	if (blob_envelope_unwrap(data, size, 1, key, &raw, &raw_len) != 0) {
		if (raw)
			__builtin_trap(); /* a refusal hands out nothing */
		return;
	}
	/* What we accept we can send back, and read again to the same bytes. */
	if (blob_envelope_wrap(raw, raw_len, 1, key, &env, &env_len) == 0) {
		if (blob_envelope_unwrap(env, env_len, 1, key, &raw2, &raw2_len) != 0 ||
		    raw2_len != raw_len || memcmp(raw, raw2, raw_len) != 0)
			__builtin_trap();
		free(raw2);
		free(env);
	}
	free(raw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t key[32] = {1, 2, 3};

	round_trip(data, size, NULL);
	round_trip(data, size, key);
	return 0;
}
