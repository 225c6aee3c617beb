/*
 * pairing.h — a vtpmd paired with one QEMU (vtpmctl launch): it serves one control
 * connection and one data connection for its life, both from that process (SO_PEERCRED pid,
 * on unix sockets), refuses and logs every other attach, and stops, its state saved, when
 * that process is gone (a pidfd polls readable). The pid cannot be another process's: the
 * launcher holds it as its unreaped child until this vtpmd has its pidfd.
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
};

/* Pin the process pid. 0, or -1 with err (it does not exist). */
int pairing_open(struct pairing *p, uint32_t pid, char *err, size_t errlen);
void pairing_close(struct pairing *p);
/* A connection accepted on a channel ("control" or "data"): true if it is the channel's first
 * and comes from the paired process (then *used is set); false if refused (logged; the caller
 * closes it). */
bool pairing_admit(struct pairing *p, int fd, const char *channel, bool *used);

#endif
