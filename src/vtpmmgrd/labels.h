/*
 * labels.h — labels registered by the admin (the launcher) for processes that an LSM does
 * not label: pid → label.
 *
 * Each registration pins its process with a pidfd taken at registration, so a later
 * process that inherits the pid inherits nothing: a lookup answers only while the pinned
 * process lives, and a peer matches a registration only if the peer's own pin names the
 * same live pid (two live processes never share a pid). A registration is dropped when its
 * process exits (the event loop polls the pidfds and calls labels_reap). Registering again
 * for the same live process replaces the label.
 */
#ifndef VTPM_LABELS_H
#define VTPM_LABELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/label_match.h"

#define LABELS_MAX 4096

struct label_reg {
	pid_t pid;
	int pidfd;
	char label[LABEL_MAX + 1];
	bool has_uuid; /* registered for this vTPM only */
	uint8_t uuid[16];
};

struct labels {
	struct label_reg *v;
	size_t n, cap;
};

/* Register label (already checked with label_check) for live process pid. 0, or -1 with
 * err (no such process, table full, out of memory). *replaced: a label was there before. */
int labels_register(struct labels *l, pid_t pid, const char *label, const uint8_t *uuid,
		    int *replaced, char *err, size_t errlen);
/* The registration of the live process pid, or NULL. */
const struct label_reg *labels_find(const struct labels *l, pid_t pid);
/* The label registered for the live process pid, or NULL. */
const char *labels_lookup(const struct labels *l, pid_t pid);
/* Drop the registrations whose process exited; returns how many. */
size_t labels_reap(struct labels *l);
void labels_free(struct labels *l);

#endif
