/* libFuzzer harness: swtpm 0.7.1's state files and migration blobs (swtpm_format.h), as
 * vtpmd reads them from a state directory at import and from CMD_SET_STATEBLOB; with and
 * without keys of both sizes. What opens must encode and open again to the same bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vtpmd/swtpm_format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_same(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	if (alen != blen || (alen && memcmp(a, b, alen) != 0))
		__builtin_trap();
}

static void file_case(const uint8_t *data, size_t size, const struct swtpm_key *fk)
{
	uint8_t *raw = NULL, *enc = NULL, *raw2 = NULL;
	size_t raw_len, enc_len, raw2_len;
	char err[256];

	if (swtpm_file_decode(data, size, fk, &raw, &raw_len, err, sizeof(err)) != SWF_OK) {
		if (raw)
			__builtin_trap(); /* a refusal hands out nothing */
		return;
	}
	if (swtpm_file_encode(raw, raw_len, fk, &enc, &enc_len) == SWF_OK) {
		if (swtpm_file_decode(enc, enc_len, fk, &raw2, &raw2_len, err, sizeof(err)) !=
		    SWF_OK)
			__builtin_trap();
		check_same(raw, raw_len, raw2, raw2_len);
		free(raw2);
		free(enc);
	}
	free(raw);
}

static void blob_case(const uint8_t *data, size_t size, bool req_enc, const struct swtpm_key *fk,
		      const struct swtpm_key *mk)
{
	uint8_t *raw = NULL, *enc = NULL, *raw2 = NULL;
	size_t raw_len, enc_len, raw2_len;
	bool inner;
	char err[256];

	(void)swtpm_blob_is_swtpm_sealed(data, size, req_enc);
	if (swtpm_blob_decode(data, size, req_enc, fk, mk, &raw, &raw_len, err, sizeof(err)) !=
	    SWF_OK) {
		if (raw)
			__builtin_trap();
		return;
	}
	if (swtpm_blob_encode(raw ? raw : (const uint8_t *)"", raw_len, fk, mk, &enc, &enc_len,
			      &inner) == SWF_OK) {
		if (swtpm_blob_decode(enc, enc_len, inner, fk, mk, &raw2, &raw2_len, err,
				      sizeof(err)) != SWF_OK)
			__builtin_trap();
		check_same(raw, raw_len, raw2, raw2_len);
		free(raw2);
		free(enc);
	}
	free(raw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the keys the seeds in tests/fuzz/seeds/swtpm_format/ were made with */
	static struct swtpm_key k128 = {.key = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
						16},
					.len = 16},
				k256 = {.key = {32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22,
						21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
						10, 9,	8,  7,	6,  5,	4,  3,	2,  1},
					.len = 32};

	if (size > (1u << 16))
		return 0;
	file_case(data, size, NULL);
	file_case(data, size, &k128);
	file_case(data, size, &k256);
	blob_case(data, size, false, NULL, NULL);
	blob_case(data, size, false, &k128, &k256);
	blob_case(data, size, true, &k256, &k128);
	return 0;
}
