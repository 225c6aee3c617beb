/*
 * rollback.h — the store's guard against an older copy of itself.
 *
 * A host TPM NV counter stands for "now": the store carries, under its MAC, the counter
 * value it was last tied to (the guard's epoch; expected NV value = epoch + offset, the
 * offset fixed at provisioning and sealed with the root key). Restoring an older copy of
 * the store restores an older epoch, which the counter has moved past.
 *
 * The counter is NOT advanced per commit: a commit is durable in the store (fsync) and
 * answered at once, and the counter catches up in the background, once per interval
 * (default 1 s) while there were changes, on the TPM thread (tpm_worker.h). It is a
 * hybrid counter (TPMA_NV_ORDERLY): its increments stay in TPM RAM, so they cost no NV
 * write, are never refused with TPM_RC_NV_RATE and wear no flash. Each advance is:
 *   1. TPM2_NV_Increment (counter: N -> N + 1)
 *   2. store guard := (epoch N + 1 - offset, not clean), durable
 * and a clean stop ends with one more advance whose guard says "clean". A start first
 * writes "not clean" with the same epoch, then advances: from then on, every copy of the
 * store taken before this start is behind the counter.
 *
 * What a start concludes (rollback_start; want = epoch + offset, N = the counter now):
 *   clean and N == want          exact: the store is the newest. Any older copy has a
 *                                smaller epoch, or the same epoch without "clean": refused.
 *   not clean, N in want..want+1 the manager stopped without its clean record (crash,
 *                                kill -9, power loss before the counter's RAM was lost, or
 *                                a crash inside an advance): the store is either the newest
 *                                or a copy taken after the last advance before that stop
 *                                (at most one interval plus one TPM command of changes).
 *                                Undecidable: RB_CRASH_WINDOW, reported.
 *   the host TPM was reset since the guard was written (TPM2_ReadClock resetCount differs)
 *   and its clock is not "safe" (it did not shut down in order), N in want..want+J+1, J =
 *   TPM_PT_ORDERLY_COUNT: a hybrid counter loses up to J increments of RAM at a power cut
 *   and the TPM then moves it J ahead. A store up to J advances (J intervals of changes)
 *   older cannot be told from the newest: RB_RESET_WINDOW, reported.
 *   every other N > want         the store is older than the counter: rollback, refused.
 *   N < want                     the counter is behind the store: it was replaced (TPM
 *                                cleared, index redefined): refused.
 * State files are judged against the store's records (vtpmd), so the same statement holds
 * for them: a state file restored together with its store from inside the window passes.
 * An undecidable start is never silent: the verdict and its reason go to the log, the
 * audit log (action "rollback-guard"), `vtpmctl host status`, and with
 * --after-crash refuse the manager does not start (exit status 6) until the admin starts
 * it with --after-crash accept.
 *
 * A TPM that refuses or delays an advance (busy, rate-limited, unreachable) delays only
 * the advance: commits go on, the window grows, the guard retries with back-off, and
 * `vtpmctl host status` shows since when it fails (logged once, not per try).
 */
#ifndef VTPM_ROLLBACK_H
#define VTPM_ROLLBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct host_tpm;
struct store;
struct tpm_worker;
struct tpm_advance_result;

enum {
	RB_OK = 0,
	RB_ERR_TPM = -1,      /* the host TPM failed (err says which operation) */
	RB_ERR_ROLLBACK = -2, /* the store is older than the NV counter */
	RB_ERR_AHEAD = -3,    /* the counter is behind the store: replaced or cleared */
	RB_ERR_STORE = -4,    /* the store's guard could not be read or written */
	RB_ERR_NOENT = -5,    /* the NV index is not defined */
	RB_ERR_REFUSED = -6,  /* undecidable, and the policy says refuse */
};

enum rb_verdict {
	RB_EXACT = 0,	     /* the store is the newest */
	RB_CRASH_WINDOW = 1, /* no clean stop: the last interval is undecidable */
	RB_RESET_WINDOW = 2, /* host TPM power loss: the last J advances are undecidable */
	RB_PROVISIONED = 3,  /* provisioned by this run */
};

#define RB_INTERVAL_MS_DEFAULT 1000
#define RB_BACKOFF_MAX_MS      30000
#define RB_FAILING_REPORT_MS   10000 /* a failing TPM is logged once after this long */

struct rollback {
	struct host_tpm *tpm;
	uint32_t nv_index;
	int64_t offset;
	uint64_t nv_value; /* the counter, as last read or reached */
	uint64_t epoch;	   /* the store guard's epoch */
	bool orderly;	   /* the counter is a hybrid one */
	uint32_t orderly_count;
	uint32_t reset_count; /* of the host TPM, read at start */
	unsigned interval_ms;
	/* how the start was judged */
	enum rb_verdict verdict;
	char verdict_note[512];
	int64_t verdict_time; /* seconds since the epoch */
	/* the background advance */
	bool dirty;	 /* changes since the last advance was submitted */
	bool in_flight;	 /* an advance is on the TPM thread */
	bool guard_lags; /* the counter moved but the guard write failed: retry that first */
	bool marked;	 /* the guard says "advancing" for the advance about to be made */
	bool uncertain;	 /* an advance ended unknown: read before the next one */
	int64_t next_ms; /* monotonic: no advance before */
	unsigned backoff_ms;
	uint64_t changes;	/* committed changes not yet covered by an advance */
	uint64_t guard_counter; /* the store's change counter right after our guard write */
	int64_t covered_ms;	/* monotonic time the last advance covered up to */
	uint64_t advances, failures;
	int64_t failing_since_ms; /* 0: the last advance worked */
	bool failing_logged;
	char last_error[512];
};

/* monotonic milliseconds (the guard's clock) */
int64_t rollback_now_ms(void);

void rollback_init(struct rollback *rb, struct host_tpm *tpm, uint32_t nv_index, int64_t offset);
/*
 * Judge the store against the counter (above) and, if it may run, open this run: guard
 * "not clean", then one advance. accept_undecidable: what to do with a window verdict.
 * RB_OK (rb->verdict says how), or an RB_ERR_* with the reason in err.
 */
int rollback_start(struct rollback *rb, struct store *s, bool accept_undecidable, char *err,
		   size_t errlen);
/* host-init just committed a new host record whose offset ties the store's current guard
 * epoch to the counter value v. */
void rollback_provisioned(struct rollback *rb, struct store *s, uint64_t v);
/* n store changes were committed. */
void rollback_changed(struct rollback *rb, uint64_t n);
/* Milliseconds until rollback_tick has something to do (-1: nothing pending). */
int rollback_timeout_ms(const struct rollback *rb);
/* Submit an advance to the TPM thread when one is due. */
void rollback_tick(struct rollback *rb, struct store *s, struct tpm_worker *w);
/* The TPM thread finished an advance. */
void rollback_collect(struct rollback *rb, struct store *s, const struct tpm_advance_result *res);
/* A clean stop (the TPM thread is stopped): a last advance, and the guard says "clean".
 * Retries a busy TPM for up to wait_ms. */
int rollback_finish(struct rollback *rb, struct store *s, unsigned wait_ms, char *err,
		    size_t errlen);
const char *rollback_verdict_name(enum rb_verdict v);

#endif
