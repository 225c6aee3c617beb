#include "vtpmd/mgr_retry.h"

#include <string.h>

#include "common/cursor.h"

#define TPM2_CC_FIRST 0x11Fu
#define TPM2_CC_LAST  0x19Fu

/* TPM 2.0 Part 3 commands TPM2_CC_FIRST..TPM2_CC_LAST whose TPMA_CC nv attribute is SET
 * (libtpms src/tpm2/CommandAttributeData.h), without PCR_Event, PCR_Reset, PCR_Extend and
 * EventSequenceComplete (see mgr_retry.h). */
static const uint16_t may_write[] = {
    0x11F, /* NV_UndefineSpaceSpecial */
    0x120, /* EvictControl */
    0x121, /* HierarchyControl */
    0x122, /* NV_UndefineSpace */
    0x124, /* ChangeEPS */
    0x125, /* ChangePPS */
    0x126, /* Clear */
    0x127, /* ClearControl */
    0x128, /* ClockSet */
    0x129, /* HierarchyChangeAuth */
    0x12A, /* NV_DefineSpace */
    0x12B, /* PCR_Allocate */
    0x12C, /* PCR_SetAuthPolicy */
    0x12D, /* PP_Commands */
    0x12E, /* SetPrimaryPolicy */
    0x132, /* NV_GlobalWriteLock */
    0x133, /* GetCommandAuditDigest */
    0x134, /* NV_Increment */
    0x135, /* NV_SetBits */
    0x136, /* NV_Extend */
    0x137, /* NV_Write */
    0x138, /* NV_WriteLock */
    0x139, /* DictionaryAttackLockReset */
    0x13A, /* DictionaryAttackParameters */
    0x13B, /* NV_ChangeAuth */
    0x13F, /* SetAlgorithmSet */
    0x140, /* SetCommandCodeAuditStatus */
    0x141, /* FieldUpgradeData */
    0x142, /* IncrementalSelfTest */
    0x143, /* SelfTest */
    0x144, /* Startup */
    0x145, /* Shutdown */
    0x146, /* StirRandom */
    0x14F, /* NV_ReadLock */
    0x19D, /* NV_DefineSpace2 */
    0x19F, /* SetCapability */
};

bool tpm2_cc_may_write(uint32_t cc)
{
	size_t i;

	if (cc < TPM2_CC_FIRST || cc > TPM2_CC_LAST)
		return true; /* vendor or unknown: assume it may */
	for (i = 0; i < sizeof(may_write) / sizeof(may_write[0]); i++)
		if (may_write[i] == cc)
			return true;
	return false;
}

/* Commands Linux gives at most 2 s (drivers/char/tpm/tpm2-cmd.c,
 * tpm2_ordinal_duration_index): Startup 750 ms, HierarchyControl, HierarchyChangeAuth and
 * SelfTest 2 s. Run while the manager is away, such a command's wait for it would outlast
 * the guest's timeout: a hard failure. TPM_RC_RETRY is a warning its caller resends (the
 * kernel 8 times in about 2.5 s, then tpm2-tss's ESAPI up to 5 submissions more, each with
 * the kernel's 8), so these are answered RETRY for as long as the manager is away. */
static bool short_timeout(uint32_t cc)
{
	return cc == 0x144 || cc == 0x121 || cc == 0x129 || cc == 0x143;
}

enum mgr_retry_verdict mgr_retry_decide(struct mgr_retry *s, uint32_t cc, int64_t now_ms)
{
	if (short_timeout(cc)) {
		s->answered++;
		return MGR_RETRY_ANSWER;
	}
	if (s->streak && s->cc == cc && now_ms - s->last_ms <= MGR_RETRY_GAP_MS &&
	    now_ms - s->first_ms >= MGR_RETRY_HOLD_MS) {
		s->streak = false; /* run it; a later command starts anew */
		return MGR_RETRY_RUN;
	}
	if (!s->streak || s->cc != cc || now_ms - s->last_ms > MGR_RETRY_GAP_MS) {
		s->streak = true;
		s->cc = cc;
		s->first_ms = now_ms;
	}
	s->last_ms = now_ms;
	s->answered++;
	return MGR_RETRY_ANSWER;
}

uint64_t mgr_retry_end(struct mgr_retry *s)
{
	uint64_t n = s->answered;

	memset(s, 0, sizeof(*s));
	return n;
}

void tpm2_retry_response(uint8_t out[10])
{
	be16_put(out, 0x8001); /* TPM_ST_NO_SESSIONS */
	be32_put(out + 2, 10);
	be32_put(out + 6, TPM_RC_RETRY);
}
