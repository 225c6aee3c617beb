/*
 * pairing.h — a vtpmd paired with one QEMU (vtpmctl launch): it serves one control
 * connection and one data connection for its life, both from that process (SO_PEERCRED pid,
 * on unix sockets), refuses and logs every other attach, and stops, its state saved, when
 * that process is gone (a pidfd polls readable). The pid cannot be another process's: the
 * launcher holds it as its unreaped child until this vtpmd has its pidfd. Where the host has
 * LSM labels, the process must also carry vtpmd's user field (pairing_labels_agree). Where the host
 * has LSM labels, the process must also carry vtpmd's user field (pairing_labels_agree).
 */
#ifndef VTPMD_PAIRING_H
#define VTPMD_PAIRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct pairing {
	pid_t pid; /* 0: not paired */
	int pidfd; /* readable once the paired process has exited */
	bool ctrl_used;
	bool data_used;
	char label[1025]; /* vtpmd's own LSM label, "" where the host has none */
};

/* Where labels exist (vtpmd's own is a user:role:type[:level] label), the paired process's
 * label must have the same user field: the guest's QEMU runs as the guest whose vTPM this is
 * (the Xen XSM rule: a vTPM serves only a domain with its user field). */
bool pairing_labels_agree(const char *self, const char *peer);

/* Pin the process pid. 0, or -1 with err (it does not exist). */
int pairing_open(struct pairing *p, uint32_t pid, char *err, size_t errlen);
void pairing_close(struct pairing *p);
/* A connection accepted on a channel ("control" or "data"): true if it is the channel's first
 * and comes from the paired process (then *used is set); false if refused (logged; the caller
 * closes it). */
bool pairing_admit(struct pairing *p, int fd, const char *channel, bool *used);

#endif
