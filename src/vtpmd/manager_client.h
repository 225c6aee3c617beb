/*
 * manager_client.h — vtpmd's side of the manager protocol (managed mode, --manager).
 *
 * At start vtpmd opens its vTPM at vtpmmgrd, which identifies this process (label, binary
 * digest) and, if the vTPM's group permits it and no other instance of it lives, answers
 * with the state key and the newest (version, digest) it has recorded. Afterwards every
 * committed state write is reported (MGR_COMMIT) before the command that caused it is
 * answered, so the manager's record never lags an answered write.
 */
#ifndef VTPMD_MANAGER_CLIENT_H
#define VTPMD_MANAGER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "common/state_file.h"

struct mgr_client;

struct mgr_open_result {
	uint8_t state_key[32];
	uint64_t version; /* 0: the manager has no state recorded yet */
	uint8_t digest[32];
	uint8_t group_uuid[16];
};

int mgr_client_open(struct mgr_client **out, const char *socket_path, const uint8_t uuid[16],
		    struct mgr_open_result *res, char *err, size_t errlen);
/* Report a durable commit; 0 once the manager recorded it. Usable as an engine hook. */
int mgr_client_commit(void *client, const struct state_slot_info *info);
void mgr_client_close(struct mgr_client *c);
/* The connection, for the poll loop: the manager never speaks unasked, so anything readable
 * on it (a hang-up) means the manager is gone and this instance must stop. */
int mgr_client_fd(const struct mgr_client *c);

/*
 * Decide whether the state loaded from disk (file_version, file_digest; version 0 = no file)
 * may run, given the manager's record. Returns 0 (use it), 1 (use it, but report it with
 * mgr_client_commit first: the last write reached the disk before the manager heard of it),
 * or -1 with a precise message (rollback or a foreign state).
 */
int mgr_check_loaded(uint64_t mgr_version, const uint8_t mgr_digest[32], uint64_t file_version,
		     const uint8_t file_digest[32], char *err, size_t errlen);

#endif
