/* libFuzzer harness: TPM command framing on the data channel (raw and TCG header). */
#include <stddef.h>
#include <stdint.h>

#include "vtpmd/data_channel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct data_frame f;
	size_t need, off = 0;

	/* A stream may hold several frames back to back. */
	while (off < size) {
		enum data_parse_status st =
		    data_frame_parse(data + off, size - off, 4096, &f, &need);
		if (st != DATA_PARSE_DONE) {
			if (st == DATA_PARSE_MORE && need <= size - off)
				__builtin_trap();
			break;
		}
		if (f.total > size - off || f.cmd_off + f.cmd_len != f.total || f.cmd_len < 10 ||
		    f.cmd_len > 4096)
			__builtin_trap();
		off += f.total;
	}
	return 0;
}
