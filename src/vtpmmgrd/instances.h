/*
 * instances.h — the open vTPMs: vTPM UUID → the live vtpmd process that opened it.
 *
 * An entry holds its own pidfd of that process, so it is bound to the process, not to a
 * connection (vtpmd may reconnect to commit) nor to a pid number (which may be reused).
 * A vTPM is open while its process lives: MGR_CLOSE releases it, and so does the process's
 * exit, however it ends (kill -9 included): the event loop polls every entry's pidfd and
 * calls instances_reap.
 */
#ifndef VTPM_INSTANCES_H
#define VTPM_INSTANCES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "common/label_match.h"

#define INSTANCES_MAX 4096

struct instance {
	uint8_t uuid[16];
	pid_t pid;
	uid_t uid;
	int pidfd;
	char label[LABEL_MAX + 1];
	uint8_t bin_digest[32];
	time_t opened;
	uint64_t start_ticks; /* of the process (peer_start_ticks), for the journal */
	bool detached;	      /* taken from the journal: its commits wait for MGR_RESUME */
};

struct instances {
	struct instance *v;
	size_t n, cap;
};

/* The entry of vTPM uuid whose process still lives, or NULL (a dead entry is dropped). */
struct instance *instances_find(struct instances *t, const uint8_t uuid[16]);
/* Add (or, for the same live pid, refresh) the entry of uuid; pidfd is duplicated.
 * 0, or -1 with err (table full, out of memory, dup failed). */
int instances_add(struct instances *t, const uint8_t uuid[16], pid_t pid, uid_t uid, int pidfd,
		  const char *label, const uint8_t bin_digest[32], char *err, size_t errlen);
/* Release the entry of uuid. */
void instances_remove(struct instances *t, const uint8_t uuid[16]);
/* Drop the entries whose process exited; cb (may be NULL) is told about each first. */
size_t instances_reap(struct instances *t, void (*cb)(const struct instance *in, void *arg),
		      void *arg);
void instances_free(struct instances *t);

#endif
