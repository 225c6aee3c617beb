/* libFuzzer harness: the control-channel request parser, fed byte streams as they arrive. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vtpmd/ctrl_channel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctrl_req req;
	size_t need, have;
	uint32_t res;

	/* Grow the visible prefix as a reader would, checking the parser's promises. */
	for (have = 0; have <= size;) {
		enum ctrl_parse_status st = ctrl_parse(data, have, &req, &need, &res);
		if (st != CTRL_PARSE_MORE) {
			if (st == CTRL_PARSE_DONE && req.data_len &&
			    (req.data < data || req.data + req.data_len > data + have))
				__builtin_trap();
			break;
		}
		if (need <= have || need > CTRL_MAX_REQUEST)
			__builtin_trap(); /* MORE must ask for more, within bounds */
		have = need;
	}
	return 0;
}
