/*
 * libFuzzer harness: the parent↔listener messages (priv_proto.h), decoded in both directions.
 * The parent reads them from a process that parses hostile bytes and may be subverted, so the
 * decoder must hold on its own: whatever it accepts re-encodes to exactly the bytes given
 * (nothing is read past the message, nothing ignored), is of a kind the direction carries,
 * and (to the parent) is an instance request or a refusal with a printable reason.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vtpmmgrd/priv_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const uint8_t *data, size_t size, bool to_parent)
{
	static struct priv_msg m;
	static uint8_t again[PRIV_MSG_MAX];
	char err[256];
	size_t n, i;

	if (priv_decode(data, size, to_parent, &m, err, sizeof(err)) < 0) {
		if (!err[0])
			__builtin_trap();
		return;
	}
	if (m.id == 0)
		__builtin_trap();
	if (to_parent != (m.kind == PRIV_REQUEST || m.kind == PRIV_REFUSED || m.kind == PRIV_GONE))
		__builtin_trap();
	if (m.kind == PRIV_REQUEST && mgr_request_socket(m.type) != REQ_INSTANCE)
		__builtin_trap();
	if (m.kind == PRIV_REFUSED) {
		n = strnlen(m.text, sizeof(m.text));
		if (n == 0 || n > PRIV_TEXT_MAX)
			__builtin_trap();
		for (i = 0; i < n; i++)
			if ((unsigned char)m.text[i] < 0x20)
				__builtin_trap();
	}
	n = priv_encode(&m, again);
	if (n != size || memcmp(again, data, size) != 0)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check(data, size, true);
	check(data, size, false);
	return 0;
}
