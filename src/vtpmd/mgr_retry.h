/*
 * mgr_retry.h — what a managed vtpmd answers a guest's command while its manager is
 * unreachable (restart, upgrade, crash). Pure decisions; manager_client.c applies them.
 *
 * A state write must be known to the manager before the command that caused it is
 * answered, and a guest command with a short timeout (Linux: 750 ms for TPM2_Startup,
 * 2 s for TPM2_HierarchyChangeAuth) cannot wait seconds for it. So while the manager is
 * known to be unreachable, a command that may change the state is not executed: it is
 * answered TPM_RC_RETRY (TPM 2.0 Part 2: a warning, the command was not executed), and
 * the guest sends it again; Linux's driver does so by itself (tpm_transmit: after 20 ms,
 * doubling to 1.28 s, eight tries in about 2.5 s). Commands that do not change the state
 * run as usual.
 *
 * "May change the state" is the TPMA_CC nv attribute of TPM 2.0 Part 3 (libtpms reports
 * it with TPM2_GetCapability(TPM_CAP_COMMANDS)), except the PCR commands: libtpms keeps
 * PCRs in volatile memory, so an extend during an outage (IMA, measured boot) runs.
 * Unknown command codes count as state-changing. A command that libtpms writes the state
 * for after all (dictionary-attack counter, orderly flag) waits for the manager, as a
 * command in flight when the manager goes away does (manager_client.h).
 *
 * A command Linux gives a long timeout (NV_Write and most others: 2 or 5 minutes) that has
 * been answered RETRY for MGR_RETRY_HOLD_MS (without a gap longer than MGR_RETRY_GAP_MS
 * between its tries) is run the next time, and its state write waits for the manager as
 * before: Linux's last try (about 2.5 s after the first) then gets the command's whole
 * timeout, instead of a RETRY that would end its retrying. A command Linux gives 2 s or
 * less (Startup, HierarchyControl, HierarchyChangeAuth, SelfTest) is never run while the
 * manager is away: a wait would outlast its timeout, a RETRY is resent (the kernel, then
 * tpm2-tss's ESAPI up to 5 times) or reaches the caller as a warning, never a timeout.
 */
#ifndef VTPMD_MGR_RETRY_H
#define VTPMD_MGR_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#define TPM_RC_RETRY	  0x922u
#define MGR_RETRY_HOLD_MS 2000
#define MGR_RETRY_GAP_MS  2000

struct mgr_retry {
	uint64_t answered; /* commands answered RETRY since the manager was found away */
	bool streak;	   /* cc has been answered RETRY, first at first_ms, latest at last_ms */
	uint32_t cc;
	int64_t first_ms;
	int64_t last_ms;
};

enum mgr_retry_verdict { MGR_RETRY_RUN, MGR_RETRY_ANSWER };

/* Whether a TPM 2.0 command (by its command code) may change the vTPM's state. */
bool tpm2_cc_may_write(uint32_t cc);
/* The manager is unreachable and a command cc that may write arrived at now_ms: answer
 * it RETRY (counted in s->answered), or run it (it has been retried long enough). */
enum mgr_retry_verdict mgr_retry_decide(struct mgr_retry *s, uint32_t cc, int64_t now_ms);
/* The manager is back: the number of commands answered RETRY meanwhile; s is reset. */
uint64_t mgr_retry_end(struct mgr_retry *s);
/* The 10-byte TPM 2.0 response TPM_ST_NO_SESSIONS, TPM_RC_RETRY. */
void tpm2_retry_response(uint8_t out[10]);

#endif
