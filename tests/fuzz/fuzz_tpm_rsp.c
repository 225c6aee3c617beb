/* libFuzzer harness: the engine responses vtpmd reads itself (tpm_cmd.h), and the event log
 * built from what they select (event_log.h). */
#include <stdlib.h>
#include <string.h>

#include "vtpmd/event_log.h"
#include "vtpmd/tpm_cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	TPML_PCR_SELECTION sel;
	TPML_DIGEST_VALUES d;
	TPMI_ALG_HASH banks[TPM2_NUM_PCR_BANKS];
	struct event_log_entry ev = {4, EV_IPL, &d, data, (uint32_t)size};
	uint8_t *log;
	size_t i, len;

	(void)tpm_rsp_rc(data, size);
	if (tpm_rsp_pcr_banks(data, size, &sel) < 0)
		return 0;
	if (sel.count > TPM2_NUM_PCR_BANKS)
		__builtin_trap();
	memset(&d, 0, sizeof(d));
	for (i = 0; i < sel.count; i++) {
		banks[i] = sel.pcrSelections[i].hash;
		d.digests[i].hashAlg = banks[i];
	}
	d.count = sel.count;
	if (event_log_build(banks, sel.count, &ev, 1, &log, &len) == 0)
		free(log);
	return 0;
}
