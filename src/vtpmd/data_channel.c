#include "vtpmd/data_channel.h"

#include "common/cursor.h"

enum data_parse_status data_frame_parse(const uint8_t *buf, size_t len, uint32_t max_cmd,
					struct data_frame *f, size_t *need)
{
	struct rcursor c;
	uint32_t first, size;
	uint16_t tag;

	*need = 6;
	f->tcg = false;
	f->locality = 0;
	rc_init(&c, buf, len);
	if (rc_u32(&c, &first) < 0)
		return DATA_PARSE_MORE;
	tag = (uint16_t)(first >> 16);
	if (first == TPM_SEND_COMMAND && tag != 0x8001 && tag != 0x8002) {
		*need = TCG_PREFIX_LEN;
		if (rc_u8(&c, &f->locality) < 0 || rc_u32(&c, &size) < 0)
			return DATA_PARSE_MORE;
		f->tcg = true;
		f->cmd_off = TCG_PREFIX_LEN;
	} else {
		rc_init(&c, buf + 2, len - 2);
		if (rc_u32(&c, &size) < 0)
			return DATA_PARSE_MORE;
		f->cmd_off = 0;
	}
	if (size < TPM_HEADER_LEN || size > max_cmd)
		return DATA_PARSE_BAD;
	f->cmd_len = size;
	f->total = f->cmd_off + size;
	*need = f->total;
	return len >= f->total ? DATA_PARSE_DONE : DATA_PARSE_MORE;
}

void data_size_error_response(uint8_t out[TPM_HEADER_LEN])
{
	be16_put(out, 0x8001);
	be32_put(out + 2, TPM_HEADER_LEN);
	be32_put(out + 6, TPM_RC_COMMAND_SIZE);
}
