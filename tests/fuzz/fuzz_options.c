/* libFuzzer harness: vtpmd's command line (argv split at NUL bytes), --key material, and the
 * shared number parser (common/parse_num.h) on the first argument. */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/parse_num.h"
#include "vtpmd/options.h"
#include "vtpmd/state_key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What parse_num accepts is digits only (after 0x for hexadecimal, '-' for signed) that
 * strtoull and strtoll read in full to the same value. */
static void fuzz_numbers(const char *s)
{
	static const enum num_base bases[] = {NUM_DEC, NUM_OCT, NUM_DEC_HEX};
	const char *digits;
	char err[256], *end;
	int radix;
	uint64_t u;
	int64_t i;
	size_t b;

	for (b = 0; b < 3; b++) {
		if (parse_num_u64("--f", s, bases[b], 0, UINT64_MAX, &u, err, sizeof(err)) < 0)
			continue;
		digits = s;
		radix = bases[b] == NUM_OCT ? 8 : 10;
		if (bases[b] == NUM_DEC_HEX && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
			digits = s + 2;
			radix = 16;
		}
		if (!isxdigit((unsigned char)digits[0]) || strtoull(digits, &end, radix) != u ||
		    *end)
			abort();
	}
	if (parse_num_i64("--f", s, INT64_MIN, INT64_MAX, &i, err, sizeof(err)) == 0 &&
	    (!isdigit((unsigned char)s[s[0] == '-']) || strtoll(s, &end, 10) != i || *end))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy, *argv[34];
	int argc = 2;
	struct vtpmd_opts o;
	struct key_opts k = {.source = KEY_FILE, .hex = true, .bits = 256};
	uint8_t key[32];
	char err[256];
	size_t i;

	if (size > 4096)
		return 0;
	copy = malloc(size + 1);
	memcpy(copy, data, size);
	copy[size] = '\0';
	argv[0] = "vtpmd";
	argv[1] = "socket";
	argv[argc++] = copy;
	for (i = 0; i < size && argc < 33; i++)
		if (copy[i] == '\0')
			argv[argc++] = copy + i + 1;
	argv[argc] = NULL;
	vtpmd_parse_args(argc, argv, &o, err, sizeof(err));
	vtpmd_opts_free(&o);
	fuzz_numbers(copy);
	state_key_derive(&k, data, size, key, err, sizeof(err));
	k.hex = false;
	k.source = KEY_PWDFD;
	k.kdf_pbkdf2 = false; /* PBKDF2 would make every run slow */
	state_key_derive(&k, data, size < 64 ? size : 64, key, err, sizeof(err));
	free(copy);
	return 0;
}
