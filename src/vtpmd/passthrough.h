/*
 * passthrough.h — `vtpmd passthrough`: the guest's TPM commands go to a real TPM.
 *
 * The back end is reached through a tpm2-tss TCTI (production: device:/dev/tpmrm0, the
 * kernel resource manager, so one guest's objects and sessions are its own; tests: a
 * swtpm). tpm2-tss's TCTI loader is loaded at run time (dlopen of libtss2-tctildr.so.0):
 * vtpmd links no tpm2-tss library, so the normal socket mode starts as fast as before.
 *
 * Each command from the data channel is checked before it is forwarded: its header (tag
 * TPM_ST_NO_SESSIONS or TPM_ST_SESSIONS, 10 <= commandSize <= the buffer size) and its
 * command code and handles against the filter (cmd_filter.h). A refused command never
 * reaches the TPM: it is answered by vtpmd with PT_RC_DENIED. The back end's answer is
 * checked too (tag, responseSize equal to what was received) before the guest sees it.
 */
#ifndef VTPMD_PASSTHROUGH_H
#define VTPMD_PASSTHROUGH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vtpmd/cmd_filter.h"

/* The answer to a command the filter refuses: TPM_RC_COMMAND_CODE (TPM 2.0 Part 2, "the
 * command code is not supported"), in a 10-byte response with tag TPM_ST_NO_SESSIONS. */
#define PT_RC_DENIED 0x143u
/* A command whose tag is neither TPM_ST_NO_SESSIONS nor TPM_ST_SESSIONS. */
#define PT_RC_BAD_TAG 0x01eu
/* The back end did not answer, or answered something that is not a TPM 2 response. */
#define PT_RC_FAILURE 0x101u
/* TPM 2 command and response buffers (TPM_PT_MAX_COMMAND_SIZE of common TPMs). */
#define PT_BUFFER_MAX 4096u
#define PT_BUFFER_MIN 1024u

struct passthrough;

/* Load the TCTI loader, open the TCTI named by tcti ("device:/dev/tpmrm0",
 * "swtpm:host=127.0.0.1,port=2321") and keep a copy of the filter. 0, or -1 with err. */
int passthrough_open(struct passthrough **out, const char *tcti, const struct cmd_filter *filter,
		     char *err, size_t errlen);
void passthrough_close(struct passthrough *p);

/* Check one guest command and forward it, or refuse it. *rsp points into p (valid until the
 * next call). Commands arriving while stopped (before CMD_INIT after CMD_STOP) are answered
 * TPM_RC_FAILURE, as swtpm does. */
void passthrough_process(struct passthrough *p, const uint8_t *cmd, uint32_t len,
			 const uint8_t **rsp, uint32_t *rsp_len);

/* Control channel meaning (docs/vtpmd.8, PASSTHROUGH). */
bool passthrough_running(const struct passthrough *p);
/* CMD_INIT: the guest's TPM was reset: flush its transient objects and sessions (only its
 * own behind a resource manager) and accept commands again. */
uint32_t passthrough_init(struct passthrough *p);
/* CMD_STOP / CMD_SHUTDOWN: stop forwarding; the host TPM is never shut down. */
void passthrough_stop(struct passthrough *p);
/* CMD_SET_LOCALITY: recorded; commands reach the back end at the TCTI's own locality. */
void passthrough_set_locality(struct passthrough *p, uint8_t loc);
/* CMD_SET_BUFFERSIZE: wanted 0 queries; else clamped to PT_BUFFER_MIN..PT_BUFFER_MAX. */
uint32_t passthrough_buffer_size(struct passthrough *p, uint32_t wanted, uint32_t *cur,
				 uint32_t *min, uint32_t *max);
uint32_t passthrough_max_command(const struct passthrough *p);

/* Counters for the log at exit and for tests. */
struct passthrough_stats {
	uint64_t forwarded, denied, failed;
};
void passthrough_stats(const struct passthrough *p, struct passthrough_stats *s);

/* The 10-byte error response with tag TPM_ST_NO_SESSIONS. */
void passthrough_error_response(uint8_t out[10], uint32_t rc);

#endif
