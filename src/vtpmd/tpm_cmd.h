/*
 * tpm_cmd.h — the TPM 2.0 commands vtpmd makes itself (to its engine: TPM2_Startup,
 * TPM2_Shutdown, the measurements' TPM2_PCR_Extend, TPM2_GetCapability of the PCR banks; to a
 * passthrough back end: the flush of a guest's handles), built and their responses read with
 * libtss2-mu.
 */
#ifndef VTPMD_TPM_CMD_H
#define VTPMD_TPM_CMD_H

#include <stddef.h>
#include <stdint.h>
#include <tss2/tss2_tpm2_types.h>

/* Large enough for every command built here (PCR_Extend with every bank: about 300 bytes). */
#define TPM_CMD_MAX 512

/* Each builds the command into buf (cap bytes) and returns its length, or 0 if it does not
 * fit or cannot be marshalled. */
size_t tpm_cmd_startup(uint8_t *buf, size_t cap, TPM2_SU type);
size_t tpm_cmd_shutdown(uint8_t *buf, size_t cap, TPM2_SU type);
/* With the empty password of the PCR (TPM2_RS_PW), as platform firmware does. */
size_t tpm_cmd_pcr_extend(uint8_t *buf, size_t cap, TPM2_HANDLE pcr,
			  const TPML_DIGEST_VALUES *digests);
/* TPM2_GetCapability(TPM2_CAP_PCRS): which banks are allocated, with which PCRs. */
size_t tpm_cmd_get_pcr_banks(uint8_t *buf, size_t cap);

/* TPM2_GetCapability(TPM2_CAP_HANDLES, first, count) and TPM2_FlushContext(handle). */
size_t tpm_cmd_get_handles(uint8_t *buf, size_t cap, TPM2_HANDLE first, uint32_t count);
size_t tpm_cmd_flush_context(uint8_t *buf, size_t cap, TPM2_HANDLE handle);

/* The response code of a response (TPM2_RC_FAILURE if it is too short to have one). */
TPM2_RC tpm_rsp_rc(const uint8_t *rsp, size_t len);
/* The PCR selection in a successful TPM2_GetCapability(TPM2_CAP_PCRS) response. 0, or -1. */
int tpm_rsp_pcr_banks(const uint8_t *rsp, size_t len, TPML_PCR_SELECTION *out);
/* The handles in a successful TPM2_GetCapability(TPM2_CAP_HANDLES) response. 0, or -1. */
int tpm_rsp_handles(const uint8_t *rsp, size_t len, TPML_HANDLE *out);

#endif
