/* vtpmd's answer to a guest command while the manager is unreachable (mgr_retry.h). */
#include <string.h>

#include "unit.h"
#include "vtpmd/mgr_retry.h"

int main(void)
{
	static const uint8_t want[10] = {0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x09, 0x22};
	struct mgr_retry s;
	uint8_t rsp[10];
	int64_t t;
	int i;

	unit_begin("retry: state-changing commands (TPMA_CC nv) may write");
	CHECK(tpm2_cc_may_write(0x129)); /* HierarchyChangeAuth */
	CHECK(tpm2_cc_may_write(0x137)); /* NV_Write */
	CHECK(tpm2_cc_may_write(0x12A)); /* NV_DefineSpace */
	CHECK(tpm2_cc_may_write(0x144)); /* Startup */
	CHECK(tpm2_cc_may_write(0x145)); /* Shutdown */
	CHECK(tpm2_cc_may_write(0x120)); /* EvictControl */
	unit_end();

	unit_begin("retry: reads and volatile-only commands run");
	CHECK(!tpm2_cc_may_write(0x14E)); /* NV_Read */
	CHECK(!tpm2_cc_may_write(0x17E)); /* PCR_Read */
	CHECK(!tpm2_cc_may_write(0x17A)); /* GetCapability */
	CHECK(!tpm2_cc_may_write(0x17B)); /* GetRandom */
	CHECK(!tpm2_cc_may_write(0x176)); /* StartAuthSession */
	CHECK(!tpm2_cc_may_write(0x161)); /* ContextLoad */
	CHECK(!tpm2_cc_may_write(0x131)); /* CreatePrimary */
	unit_end();

	unit_begin("retry: PCR commands run (libtpms keeps PCRs in volatile memory)");
	CHECK(!tpm2_cc_may_write(0x182)); /* PCR_Extend */
	CHECK(!tpm2_cc_may_write(0x13C)); /* PCR_Event */
	CHECK(!tpm2_cc_may_write(0x13D)); /* PCR_Reset */
	CHECK(!tpm2_cc_may_write(0x185)); /* EventSequenceComplete */
	unit_end();

	unit_begin("retry: unknown and vendor command codes count as writing");
	CHECK(tpm2_cc_may_write(0));
	CHECK(tpm2_cc_may_write(0x11E));
	CHECK(tpm2_cc_may_write(0x1A0));
	CHECK(tpm2_cc_may_write(0x20000000u));
	CHECK(tpm2_cc_may_write(0xFFFFFFFFu));
	unit_end();

	unit_begin("retry: the response is TPM_ST_NO_SESSIONS, 10 bytes, TPM_RC_RETRY");
	memset(rsp, 0xee, sizeof(rsp));
	tpm2_retry_response(rsp);
	CHECK(memcmp(rsp, want, sizeof(want)) == 0);
	unit_end();

	unit_begin("retry: Linux's schedule: seven RETRYs, the eighth try runs (NV_Write)");
	memset(&s, 0, sizeof(s));
	/* tpm_transmit's tries: 0, 20, 60, 140, 300, 620, 1260, 2540 ms (+ 2 ms each) */
	for (i = 0, t = 1000; i < 7; i++) {
		CHECKF(mgr_retry_decide(&s, 0x137, t) == MGR_RETRY_ANSWER, "try %d at %lld", i,
		       (long long)t);
		t += (20 << i) + 2;
	}
	CHECK(s.answered == 7);
	CHECKF(mgr_retry_decide(&s, 0x137, t) == MGR_RETRY_RUN, "try 8 at %lld", (long long)t);
	CHECK(s.answered == 7);
	/* the next command of the same code starts anew */
	CHECK(mgr_retry_decide(&s, 0x137, t + 10) == MGR_RETRY_ANSWER);
	CHECK(s.answered == 8);
	unit_end();

	unit_begin("retry: commands Linux gives 2 s or less are answered RETRY all through");
	{
		/* Startup, HierarchyControl, HierarchyChangeAuth, SelfTest */
		static const uint32_t short_cc[] = {0x144, 0x121, 0x129, 0x143};
		size_t k;

		for (k = 0; k < sizeof(short_cc) / sizeof(short_cc[0]); k++) {
			memset(&s, 0, sizeof(s));
			for (t = 0; t <= 60000; t += 100)
				if (!CHECKF(mgr_retry_decide(&s, short_cc[k], t) ==
						MGR_RETRY_ANSWER,
					    "0x%x at %lld ms", short_cc[k], (long long)t))
					break;
			CHECK(s.answered == 601);
		}
	}
	unit_end();

	unit_begin("retry: another command starts its own streak");
	memset(&s, 0, sizeof(s));
	CHECK(mgr_retry_decide(&s, 0x129, 0) == MGR_RETRY_ANSWER);
	CHECK(mgr_retry_decide(&s, 0x137, 1500) == MGR_RETRY_ANSWER);
	CHECK(mgr_retry_decide(&s, 0x137, 2500) == MGR_RETRY_ANSWER);
	CHECK(mgr_retry_decide(&s, 0x137, 3500) == MGR_RETRY_RUN);
	unit_end();

	unit_begin("retry: a gap longer than MGR_RETRY_GAP_MS starts anew");
	memset(&s, 0, sizeof(s));
	CHECK(mgr_retry_decide(&s, 0x137, 0) == MGR_RETRY_ANSWER);
	CHECK(mgr_retry_decide(&s, 0x137, MGR_RETRY_GAP_MS + 1) == MGR_RETRY_ANSWER);
	CHECK(mgr_retry_decide(&s, 0x137, MGR_RETRY_GAP_MS + 2) == MGR_RETRY_ANSWER);
	CHECK(mgr_retry_decide(&s, 0x137, 2 * MGR_RETRY_GAP_MS + 1) == MGR_RETRY_RUN);
	unit_end();

	unit_begin("retry: the end of an outage reports the count and resets");
	memset(&s, 0, sizeof(s));
	mgr_retry_decide(&s, 0x137, 0);
	mgr_retry_decide(&s, 0x137, 100);
	mgr_retry_decide(&s, 0x129, 200);
	CHECK(mgr_retry_end(&s) == 3);
	CHECK(s.answered == 0 && !s.streak);
	CHECK(mgr_retry_end(&s) == 0);
	CHECK(mgr_retry_decide(&s, 0x137, 5000) == MGR_RETRY_ANSWER);
	unit_end();

	return unit_exit();
}
