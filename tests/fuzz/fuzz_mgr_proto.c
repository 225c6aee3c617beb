/* libFuzzer harness: manager protocol messages as the manager receives them. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/mgr_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct mgr_msg m, rec;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256], text[MGR_MAX_TEXT + 1];
	uint8_t fixed[32];
	uint64_t v64;
	uint32_t v32;
	size_t i;

	if (mgr_parse(data, size, &m, err, sizeof(err)) != 0)
		return 0;
	for (i = 0; i < m.nfields; i++) {
		const struct mgr_field_view *f = &m.f[i];
		if (f->val < data || f->val + f->len > data + size)
			__builtin_trap();
		if (f->tag == MGR_F_RECORD)
			mgr_parse_fields(f->val, f->len, &rec, err, sizeof(err));
	}
	mgr_get_u32(&m, MGR_F_PID, &v32);
	mgr_get_u64(&m, MGR_F_VERSION, &v64);
	mgr_get_fixed(&m, MGR_F_UUID, fixed, 16);
	mgr_get_fixed(&m, MGR_F_DIGEST, fixed, 32);
	if (mgr_get_text(&m, MGR_F_LABEL, text, sizeof(text)) == 0 && strlen(text) > MGR_MAX_TEXT)
		__builtin_trap();
	return 0;
}
