/*
 * manager_client.h — vtpmd's side of the manager protocol (managed mode, --manager).
 *
 * At start vtpmd opens its vTPM at vtpmmgrd, which identifies this process (label, binary
 * digest) and, if the vTPM's group permits it and no other instance of it lives, answers
 * with the state key and the newest (version, digest) it has recorded. Afterwards every
 * committed state write is reported (MGR_COMMIT) before the command that caused it is
 * answered, so the manager's record never lags an answered write.
 *
 * The manager may go away (restart, upgrade, crash) and its store may refuse a write for a
 * while (disk full): neither is a reason to fail a guest's command. A commit the manager
 * cannot take now is waited for: vtpmd reconnects (50 ms, doubling to 250 ms between tries),
 * proves it is the same live instance (MGR_RESUME, common/resume_proof.h) and sends the
 * commit again, for as long as it takes; the guest sees a slow command. The state write is
 * already durable in the state file, so at most one version is ever unreported: if vtpmd
 * is stopped while it waits, the next start reports it (mgr_check_loaded returns 1).
 * Only a refusal that names this instance (another instance holds the vTPM, rollback, the
 * vTPM was deleted) fails the commit.
 *
 * That wait is for a command already running when the manager went away. A guest command
 * that arrives while the manager is known to be away is, if it may change the state, not
 * run but answered TPM_RC_RETRY (mgr_client_admit, mgr_retry.h), so that a command with a
 * short guest timeout is not held past it.
 */
#ifndef VTPMD_MANAGER_CLIENT_H
#define VTPMD_MANAGER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "common/state_file.h"

/* How often a waiting commit says so in the log. */
#define MGR_WAIT_LOG_S 30

struct mgr_client;

struct mgr_open_result {
	uint8_t state_key[32];
	uint64_t version; /* 0: the manager has no state recorded yet */
	uint8_t digest[32];
	uint8_t group_uuid[16];
};

/* Open the vTPM. The client keeps its own copy of the state key (for MGR_RESUME); it is
 * cleansed by mgr_client_close. */
int mgr_client_open(struct mgr_client **out, const char *socket_path, const uint8_t uuid[16],
		    struct mgr_open_result *res, char *err, size_t errlen);
/*
 * While a commit waits, abort_fd (the signal fd) is watched too: when it becomes readable
 * the process must stop, and on_abort(arg) is called; it must not return (it cleans up and
 * exits: the state on disk is at most one version ahead of the manager, which the next
 * start reconciles).
 */
void mgr_client_set_abort(struct mgr_client *c, int abort_fd, void (*on_abort)(void *arg),
			  void *arg);
/* Report a durable commit; 0 once the manager recorded it (waiting as above), -1 if the
 * manager refused this instance's write. Usable as an engine hook. */
int mgr_client_commit(void *client, const struct state_slot_info *info);
void mgr_client_close(struct mgr_client *c);

/*
 * Before a guest's TPM command with code cc: 1 run it; 0 answer it TPM_RC_RETRY without
 * running it (the manager is unreachable and it may change the state, mgr_retry.h); -1
 * the manager refused to take this instance back: vtpmd must stop. When the connection is
 * down (or found hung up now), one reconnect-and-resume is tried first, bounded by
 * MGR_QUICK_MS. Logs when it starts answering RETRY; the count is logged when the
 * manager takes the instance back.
 */
int mgr_client_admit(struct mgr_client *c, uint32_t cc);

/* The connection, for the poll loop (-1 while disconnected). The manager never speaks
 * unasked, so anything readable on it (a hang-up) means the manager went away: call
 * mgr_client_lost. */
int mgr_client_fd(const struct mgr_client *c);
void mgr_client_lost(struct mgr_client *c);
/* While disconnected: milliseconds until mgr_client_reconnect should be tried (0: now);
 * -1 while connected. */
int mgr_client_retry_in(const struct mgr_client *c);
/* One reconnect-and-resume attempt. 0: back, or not yet (try again later); -1: the manager
 * refused to take this instance back (another instance holds the vTPM, or it was
 * deleted): vtpmd must stop. */
int mgr_client_reconnect(struct mgr_client *c);

/*
 * Decide whether the state loaded from disk (file_version, file_digest; version 0 = no file)
 * may run, given the manager's record. Returns 0 (use it), 1 (use it, but report it with
 * mgr_client_commit first: the last write reached the disk before the manager heard of it),
 * or -1 with a precise message (rollback or a foreign state).
 */
int mgr_check_loaded(uint64_t mgr_version, const uint8_t mgr_digest[32], uint64_t file_version,
		     const uint8_t file_digest[32], char *err, size_t errlen);

#endif
