/*
 * data_channel.h — TPM command framing on the data channel.
 *
 * Raw mode (QEMU, tpm2-tss' swtpm TCTI): a bare TPM 2 command whose header carries its
 * size. TCG-header mode (PTM_CAP_SEND_COMMAND_HEADER): u32 TPM_SEND_COMMAND (8), u8
 * locality, u32 size, command; answered with u32 size, response, u32 0. Unlike swtpm,
 * vtpmd reads exactly commandSize bytes, so a command split across segments is not cut
 * short and a longer one cannot smuggle its tail in as the next command.
 */
#ifndef VTPMD_DATA_CHANNEL_H
#define VTPMD_DATA_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TPM_SEND_COMMAND    8u
#define TPM_HEADER_LEN	    10u
#define TCG_PREFIX_LEN	    9u
#define TPM_RC_COMMAND_SIZE 0x142u

struct data_frame {
	bool tcg;	  /* TCG-header mode */
	uint8_t locality; /* from the TCG header */
	size_t cmd_off;	  /* offset of the TPM command in the buffer */
	uint32_t cmd_len;
	size_t total; /* bytes this frame occupies */
};

enum data_parse_status { DATA_PARSE_DONE, DATA_PARSE_MORE, DATA_PARSE_BAD };

/* max_cmd: the TPM's buffer size. On MORE, *need is the total bytes needed. */
enum data_parse_status data_frame_parse(const uint8_t *buf, size_t len, uint32_t max_cmd,
					struct data_frame *f, size_t *need);

/* The 10-byte TPM 2 error response for a command whose size is out of range. */
void data_size_error_response(uint8_t out[TPM_HEADER_LEN]);

#endif
