/*
 * tpm_worker.h — the host TPM off the serving loop.
 *
 * A host TPM takes tens of milliseconds per command and serves one at a time; the manager's
 * loop must not wait for it while vtpmd instances wait for their commits. One thread owns
 * the TPM for the slow, periodic job (advancing the rollback-guard counter, rollback.h); the
 * loop submits a job and later collects its result when the worker's fd becomes readable.
 *
 * The rare requests that use the TPM on the loop itself (host-init, reseal, status) take
 * tpm_worker_lock first, so the two never send to the TPM at once (a struct host_tpm is
 * not thread-safe). At most one job is in flight.
 */
#ifndef VTPM_TPM_WORKER_H
#define VTPM_TPM_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct host_tpm;
struct tpm_worker;

struct tpm_advance_result {
	int rc;		/* HOST_TPM_OK or a HOST_TPM_ERR_* */
	uint64_t value; /* the counter after the job (rc == HOST_TPM_OK) */
	char err[512];
};

int tpm_worker_start(struct tpm_worker **out, struct host_tpm *tpm, char *err, size_t errlen);
/* Joins the thread (after the job in flight, if any, ended). */
void tpm_worker_stop(struct tpm_worker *w);
/* Readable when a result waits for tpm_worker_collect. */
int tpm_worker_fd(const struct tpm_worker *w);
bool tpm_worker_busy(const struct tpm_worker *w);

/*
 * Advance the counter at nv_index from `current` to current + 1 (one TPM2_NV_Increment).
 * verify: the outcome of an earlier attempt is unknown, so read the counter first; if it is
 * at current + 1 already, that attempt landed and nothing more is sent. A counter found at
 * any other value than current or current + 1 is reported with rc HOST_TPM_OK and that
 * value: the caller compares. -1 if a job is in flight already.
 */
int tpm_worker_advance(struct tpm_worker *w, uint32_t nv_index, uint64_t current, bool verify);
/* 1 and the result of the finished job, or 0 if none finished. */
int tpm_worker_collect(struct tpm_worker *w, struct tpm_advance_result *res);

void tpm_worker_lock(struct tpm_worker *w);
void tpm_worker_unlock(struct tpm_worker *w);

#endif
