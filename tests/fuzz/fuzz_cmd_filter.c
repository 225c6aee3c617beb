/* libFuzzer harness: the passthrough filter file parser and the per-command decision. The
 * input is split at the first 0xff byte: before it a filter file, after it a TPM command
 * that the parsed filter (or, if the file was refused, the default-deny filter) decides. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vtpmd/cmd_filter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cmd_filter f;
	const uint8_t *sep = memchr(data, 0xff, size);
	size_t text_len = sep ? (size_t)(sep - data) : size;
	char err[256];
	uint32_t cc;
	enum cmd_verdict v;

	if (cmd_filter_parse(&f, data, text_len, err, sizeof(err)) < 0) {
		if (!memchr(err, '\0', sizeof(err)) || err[0] == '\0')
			__builtin_trap(); /* a refusal always says why */
		memset(&f, 0, sizeof(f));
	}
	if (!sep)
		return 0;
	v = cmd_filter_check(&f, sep + 1, size - text_len - 1, &cc);
	if (v == CMD_ALLOW && !cmd_filter_allows_code(&f, cc))
		__builtin_trap(); /* never allow a code the table denies */
	return 0;
}
