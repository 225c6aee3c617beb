/*
 * rollback.h — the store's guard against an older copy: the host TPM NV counter (store.h,
 * "Integrity and rollback guard").
 *
 * The store's counter grows by one with each committed change; the NV counter grows by one
 * after each. TPM NV counters do not start at 0 (a new one starts at the highest value any
 * counter of that TPM had), so they are tied by an offset fixed at provisioning and sealed
 * with the root key (keys.h):   expected NV value = store counter + offset.
 *
 * At start (rollback_start):
 *   expected <  NV      the store is older than the host TPM's counter: rollback → refuse
 *   expected == NV      current
 *   expected == NV + 1  a crash (or a failed increment) between the store commit and the NV
 *                       increment: the change is whole in the store; increment NV, go on
 *   expected >  NV + 1  increments were skipped or the counter was replaced → refuse
 * After every committed store change (rollback_after_write) the NV counter is incremented
 * before the change is reported as done. If the increment fails, further writes are
 * refused (rollback_before_write) until a retried increment succeeds: two unrecorded
 * commits in a row would look like the "> NV + 1" case.
 */
#ifndef VTPM_ROLLBACK_H
#define VTPM_ROLLBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct host_tpm;
struct store;

enum {
	RB_OK = 0,
	RB_ERR_TPM = -1,      /* the host TPM failed (err says which operation) */
	RB_ERR_ROLLBACK = -2, /* the store is older than the NV counter */
	RB_ERR_AHEAD = -3,    /* the store is ahead by more than one commit, or NV moved */
	RB_ERR_STORE = -4,    /* the store counter could not be read */
	RB_ERR_NOENT = -5,    /* the NV index is not defined */
};

struct rollback {
	struct host_tpm *tpm;
	uint32_t nv_index;
	int64_t offset;
	uint64_t nv_value; /* last value read or set */
	bool pending;	   /* the store is one commit ahead: writes wait for an increment */
};

void rollback_init(struct rollback *rb, struct host_tpm *tpm, uint32_t nv_index, int64_t offset,
		   uint64_t nv_value);
/* The start-up comparison (above). */
int rollback_start(struct rollback *rb, struct store *s, char *err, size_t errlen);
/* Before a store change: RB_OK, or RB_ERR_TPM if an increment is still owed and fails. */
int rollback_before_write(struct rollback *rb, char *err, size_t errlen);
/* After a store change was committed (or a call that may have committed): increment NV until
 * it equals store counter + offset. */
int rollback_after_write(struct rollback *rb, struct store *s, char *err, size_t errlen);

#endif
