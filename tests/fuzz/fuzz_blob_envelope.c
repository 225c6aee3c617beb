/* libFuzzer harness: swtpm state-blob envelopes as CMD_SET_STATEBLOB delivers them. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vtpmd/blob_envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *raw, *raw2;
	size_t raw_len, raw2_len, env_len;
	uint8_t *env;

	if (blob_envelope_unwrap(data, size, &raw, &raw_len) != 0)
		return 0;
	if (raw < data || raw + raw_len > data + size)
		__builtin_trap();
	/* What we accept we can send back, and read again to the same bytes. */
	if (blob_envelope_wrap(raw, raw_len, &env, &env_len) != 0)
		return 0;
	if (blob_envelope_unwrap(env, env_len, &raw2, &raw2_len) != 0 || raw2_len != raw_len ||
	    memcmp(raw, raw2, raw_len) != 0)
		__builtin_trap();
	free(env);
	return 0;
}
