/* The commands vtpmd sends its engine (tpm_cmd.h) and the TCG2 event log (event_log.h). */
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "vtpmd/event_log.h"
#include "vtpmd/tpm_cmd.h"

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A GetCapability(PCRS) response: YES/NO, TPM2_CAP_PCRS, count, banks (each with 3 bytes of
 * select). size_field: what the header claims (0: the real length). */
static size_t pcrs_rsp(uint8_t *b, uint32_t nbanks, uint32_t cap, uint32_t size_field)
{
	size_t n = 0;
	uint32_t i;

	memcpy(b, "\x80\x01\0\0\0\0\0\0\0\0", 10);
	n = 10;
	b[n++] = 0; /* moreData */
	b[n++] = (uint8_t)(cap >> 24), b[n++] = (uint8_t)(cap >> 16), b[n++] = (uint8_t)(cap >> 8),
	b[n++] = (uint8_t)cap;
	b[n++] = 0, b[n++] = 0, b[n++] = 0, b[n++] = (uint8_t)nbanks;
	for (i = 0; i < nbanks && i < 2; i++) {
		b[n++] = 0, b[n++] = i ? 0x0b : 0x04; /* sha256, sha1 */
		b[n++] = 3, b[n++] = 0xff, b[n++] = 0xff, b[n++] = 0xff;
	}
	if (!size_field)
		size_field = (uint32_t)n;
	b[2] = (uint8_t)(size_field >> 24), b[3] = (uint8_t)(size_field >> 16),
	b[4] = (uint8_t)(size_field >> 8), b[5] = (uint8_t)size_field;
	return n;
}

int main(void)
{
	static const uint8_t startup_clear[12] = {0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0, 0};
	static const uint8_t shutdown_state[12] = {0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x45, 0, 1};
	uint8_t buf[TPM_CMD_MAX], rsp[128];
	TPML_PCR_SELECTION sel;
	TPML_DIGEST_VALUES d = {0};
	TPMI_ALG_HASH banks[2] = {TPM2_ALG_SHA1, TPM2_ALG_SHA256};
	struct event_log_entry ev;
	uint8_t *log = NULL;
	size_t len, n;

	unit_begin("tpm_cmd: Startup(CLEAR) and Shutdown(STATE) are the spec's bytes");
	CHECK(tpm_cmd_startup(buf, sizeof(buf), TPM2_SU_CLEAR) == 12 &&
	      memcmp(buf, startup_clear, 12) == 0);
	CHECK(tpm_cmd_shutdown(buf, sizeof(buf), TPM2_SU_STATE) == 12 &&
	      memcmp(buf, shutdown_state, 12) == 0);
	CHECK(tpm_cmd_startup(buf, 11, TPM2_SU_CLEAR) == 0); /* does not fit */
	unit_end();

	unit_begin("tpm_cmd: PCR_Extend has the PCR handle, a password session, the digests");
	d.count = 2;
	d.digests[0].hashAlg = TPM2_ALG_SHA1;
	memset(&d.digests[0].digest, 0x11, TPM2_SHA1_DIGEST_SIZE);
	d.digests[1].hashAlg = TPM2_ALG_SHA256;
	memset(&d.digests[1].digest, 0x22, TPM2_SHA256_DIGEST_SIZE);
	len = tpm_cmd_pcr_extend(buf, sizeof(buf), 4, &d);
	/* header 10, handle 4, auth size 4 + 9, count 4, 2+20, 2+32 */
	CHECKF(len == 10 + 4 + 4 + 9 + 4 + 22 + 34, "len %zu", len);
	CHECK(buf[0] == 0x80 && buf[1] == 0x02 && buf[5] == len && buf[9] == 0x82);
	CHECK(memcmp(buf + 10, "\0\0\0\x04", 4) == 0);
	CHECK(memcmp(buf + 14, "\0\0\0\x09\x40\0\0\x09", 8) == 0);
	CHECK(buf[len - 1] == 0x22 && buf[len - 32] == 0x22 && buf[len - 33] == 0x0b);
	CHECK(tpm_cmd_pcr_extend(buf, 40, 4, &d) == 0);
	d.count = TPM2_NUM_PCR_BANKS + 1; /* more banks than a TPML holds */
	CHECK(tpm_cmd_pcr_extend(buf, sizeof(buf), 4, &d) == 0);
	d.count = 2;
	unit_end();

	unit_begin("tpm_rsp: the PCR banks of a well-formed response");
	n = pcrs_rsp(rsp, 2, TPM2_CAP_PCRS, 0);
	CHECK(tpm_rsp_pcr_banks(rsp, n, &sel) == 0 && sel.count == 2 &&
	      sel.pcrSelections[1].hash == TPM2_ALG_SHA256);
	unit_end();

	unit_begin("tpm_rsp: malformed responses are refused");
	CHECK(tpm_rsp_pcr_banks(rsp, n - 1, &sel) < 0); /* truncated */
	n = pcrs_rsp(rsp, 2, TPM2_CAP_PCRS, 99);
	CHECK(tpm_rsp_pcr_banks(rsp, n, &sel) < 0); /* size field is not the length */
	n = pcrs_rsp(rsp, 2, TPM2_CAP_HANDLES, 0);
	CHECK(tpm_rsp_pcr_banks(rsp, n, &sel) < 0); /* another capability */
	n = pcrs_rsp(rsp, 200, TPM2_CAP_PCRS, 0);
	CHECK(tpm_rsp_pcr_banks(rsp, n, &sel) < 0); /* count over the TPML's room */
	n = pcrs_rsp(rsp, 2, TPM2_CAP_PCRS, 0);
	rsp[9] = 0x01; /* an error code */
	CHECK(tpm_rsp_pcr_banks(rsp, n, &sel) < 0);
	CHECK(tpm_rsp_rc(rsp, 9) == TPM2_RC_FAILURE && tpm_rsp_rc(rsp, n) == 1);
	unit_end();

	unit_begin("event_log: Spec ID header, then one TCG_PCR_EVENT2 per measurement");
	ev = (struct event_log_entry){4, EV_IPL, &d, (const uint8_t *)"abc", 3};
	CHECK(event_log_build(banks, 2, &ev, 1, &log, &len) == 0);
	/* header: 4+4+20+4 + (16+4+4+4+2*4+1) = 32 + 37; event: 4+4+4+(2+20)+(2+32)+4+3 */
	CHECKF(len == 32 + 37 + 75, "len %zu", len);
	if (log && len == 144) {
		CHECK(le32(log + 4) == EV_NO_ACTION && le32(log + 28) == 37);
		CHECK(memcmp(log + 32, "Spec ID Event03", 16) == 0);
		CHECK(log[32 + 16 + 5] == 2 && log[32 + 16 + 7] == 2); /* 2.0, UINT64 */
		CHECK(le32(log + 56) == 2 && log[60] == 0x04 && log[62] == 20 && log[64] == 0x0b &&
		      log[66] == 32 && log[68] == 0);
		CHECK(le32(log + 69) == 4 && le32(log + 73) == EV_IPL && le32(log + 77) == 2);
		CHECK(memcmp(log + len - 3, "abc", 3) == 0 && le32(log + len - 7) == 3);
	}
	free(log);
	log = NULL;
	unit_end();

	unit_begin("event_log: digests that are not the header's banks are refused");
	banks[1] = TPM2_ALG_SHA384;
	CHECK(event_log_build(banks, 2, &ev, 1, &log, &len) < 0);
	banks[1] = 0x7777; /* not a hash */
	CHECK(event_log_build(banks, 2, &ev, 0, &log, &len) < 0);
	CHECK(event_log_build(banks, 0, &ev, 0, &log, &len) < 0);
	banks[1] = TPM2_ALG_SHA256;
	d.count = 1;
	CHECK(event_log_build(banks, 2, &ev, 1, &log, &len) < 0);
	unit_end();

	return unit_exit();
}
