#include "vtpmd/tpm_cmd.h"

#include <string.h>
#include <tss2/tss2_mu.h>

#define HEADER_LEN 10 /* tag, size, command code */

static size_t header(uint8_t *buf, size_t cap, TPM2_ST tag, TPM2_CC cc)
{
	size_t off = 0;

	if (Tss2_MU_TPM2_ST_Marshal(tag, buf, cap, &off) != TSS2_RC_SUCCESS ||
	    Tss2_MU_UINT32_Marshal(0, buf, cap, &off) != TSS2_RC_SUCCESS ||
	    Tss2_MU_TPM2_CC_Marshal(cc, buf, cap, &off) != TSS2_RC_SUCCESS)
		return 0;
	return off;
}

/* Set the size field to the length built; the length, or 0. */
static size_t finish(uint8_t *buf, size_t cap, size_t len)
{
	size_t off = 2;

	if (len < HEADER_LEN || len > UINT32_MAX ||
	    Tss2_MU_UINT32_Marshal((UINT32)len, buf, cap, &off) != TSS2_RC_SUCCESS)
		return 0;
	return len;
}

size_t tpm_cmd_startup(uint8_t *buf, size_t cap, TPM2_SU type)
{
	size_t off = header(buf, cap, TPM2_ST_NO_SESSIONS, TPM2_CC_Startup);

	if (off == 0 || Tss2_MU_UINT16_Marshal(type, buf, cap, &off) != TSS2_RC_SUCCESS)
		return 0;
	return finish(buf, cap, off);
}

size_t tpm_cmd_shutdown(uint8_t *buf, size_t cap, TPM2_SU type)
{
	size_t off = header(buf, cap, TPM2_ST_NO_SESSIONS, TPM2_CC_Shutdown);

	if (off == 0 || Tss2_MU_UINT16_Marshal(type, buf, cap, &off) != TSS2_RC_SUCCESS)
		return 0;
	return finish(buf, cap, off);
}

size_t tpm_cmd_pcr_extend(uint8_t *buf, size_t cap, TPM2_HANDLE pcr,
			  const TPML_DIGEST_VALUES *digests)
{
	const TPMS_AUTH_COMMAND pw = {.sessionHandle = TPM2_RS_PW};
	uint8_t auth[64];
	size_t auth_len = 0, off = header(buf, cap, TPM2_ST_SESSIONS, TPM2_CC_PCR_Extend);

	if (off == 0 ||
	    Tss2_MU_TPMS_AUTH_COMMAND_Marshal(&pw, auth, sizeof(auth), &auth_len) !=
		TSS2_RC_SUCCESS ||
	    Tss2_MU_TPM2_HANDLE_Marshal(pcr, buf, cap, &off) != TSS2_RC_SUCCESS ||
	    Tss2_MU_UINT32_Marshal((UINT32)auth_len, buf, cap, &off) != TSS2_RC_SUCCESS ||
	    cap - off < auth_len)
		return 0;
	memcpy(buf + off, auth, auth_len);
	off += auth_len;
	if (Tss2_MU_TPML_DIGEST_VALUES_Marshal(digests, buf, cap, &off) != TSS2_RC_SUCCESS)
		return 0;
	return finish(buf, cap, off);
}

size_t tpm_cmd_get_pcr_banks(uint8_t *buf, size_t cap)
{
	size_t off = header(buf, cap, TPM2_ST_NO_SESSIONS, TPM2_CC_GetCapability);

	if (off == 0 || Tss2_MU_UINT32_Marshal(TPM2_CAP_PCRS, buf, cap, &off) != TSS2_RC_SUCCESS ||
	    Tss2_MU_UINT32_Marshal(0, buf, cap, &off) != TSS2_RC_SUCCESS ||
	    Tss2_MU_UINT32_Marshal(TPM2_NUM_PCR_BANKS, buf, cap, &off) != TSS2_RC_SUCCESS)
		return 0;
	return finish(buf, cap, off);
}

size_t tpm_cmd_get_handles(uint8_t *buf, size_t cap, TPM2_HANDLE first, uint32_t count)
{
	size_t off = header(buf, cap, TPM2_ST_NO_SESSIONS, TPM2_CC_GetCapability);

	if (off == 0 ||
	    Tss2_MU_UINT32_Marshal(TPM2_CAP_HANDLES, buf, cap, &off) != TSS2_RC_SUCCESS ||
	    Tss2_MU_TPM2_HANDLE_Marshal(first, buf, cap, &off) != TSS2_RC_SUCCESS ||
	    Tss2_MU_UINT32_Marshal(count, buf, cap, &off) != TSS2_RC_SUCCESS)
		return 0;
	return finish(buf, cap, off);
}

size_t tpm_cmd_flush_context(uint8_t *buf, size_t cap, TPM2_HANDLE handle)
{
	size_t off = header(buf, cap, TPM2_ST_NO_SESSIONS, TPM2_CC_FlushContext);

	if (off == 0 || Tss2_MU_TPM2_HANDLE_Marshal(handle, buf, cap, &off) != TSS2_RC_SUCCESS)
		return 0;
	return finish(buf, cap, off);
}

TPM2_RC tpm_rsp_rc(const uint8_t *rsp, size_t len)
{
	size_t off = 6;
	UINT32 rc;

	if (len < HEADER_LEN || Tss2_MU_UINT32_Unmarshal(rsp, len, &off, &rc) != TSS2_RC_SUCCESS)
		return TPM2_RC_FAILURE;
	return rc;
}

/* The capability data of a successful TPM2_GetCapability response of length len. */
static int rsp_capability(const uint8_t *rsp, size_t len, TPM2_CAP want, TPMS_CAPABILITY_DATA *cap)
{
	size_t off = 2;
	UINT32 size;
	BYTE more;

	if (tpm_rsp_rc(rsp, len) != TPM2_RC_SUCCESS ||
	    Tss2_MU_UINT32_Unmarshal(rsp, len, &off, &size) != TSS2_RC_SUCCESS || size != len)
		return -1;
	off = HEADER_LEN;
	if (Tss2_MU_BYTE_Unmarshal(rsp, len, &off, &more) != TSS2_RC_SUCCESS ||
	    Tss2_MU_TPMS_CAPABILITY_DATA_Unmarshal(rsp, len, &off, cap) != TSS2_RC_SUCCESS ||
	    cap->capability != want || off != len)
		return -1;
	return 0;
}

int tpm_rsp_pcr_banks(const uint8_t *rsp, size_t len, TPML_PCR_SELECTION *out)
{
	TPMS_CAPABILITY_DATA cap;

	if (rsp_capability(rsp, len, TPM2_CAP_PCRS, &cap) < 0)
		return -1;
	*out = cap.data.assignedPCR;
	return 0;
}

int tpm_rsp_handles(const uint8_t *rsp, size_t len, TPML_HANDLE *out)
{
	TPMS_CAPABILITY_DATA cap;

	if (rsp_capability(rsp, len, TPM2_CAP_HANDLES, &cap) < 0)
		return -1;
	*out = cap.data.handles;
	return 0;
}
