/* libFuzzer harness: vtpmd's command line (argv split at NUL bytes) and --key material. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vtpmd/options.h"
#include "vtpmd/state_key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
	state_key_derive(&k, data, size, key, err, sizeof(err));
	k.hex = false;
	k.source = KEY_PWDFD;
	k.kdf_pbkdf2 = false; /* PBKDF2 would make every run slow */
	state_key_derive(&k, data, size < 64 ? size : 64, key, err, sizeof(err));
	free(copy);
	return 0;
}
