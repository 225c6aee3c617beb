/*
 * peer_identity.h — who is at the other end of a unix socket (see ARCHITECTURE.md "Peer
 * identity" and PROTOCOLS.md section 7).
 *
 * peer_identify runs at accept time:
 *   1. SO_PEERCRED gives pid, uid, gid (as of connect()).
 *   2. The process is pinned with a pidfd at once: SO_PEERPIDFD (Linux 6.5+) names exactly
 *      the process that connected; on older kernels pidfd_open(pid) and the process's start
 *      time (/proc/PID/stat field 22) must not be later than the accept: a younger process
 *      holds a reused pid and is refused.
 *   3. The label from SO_PEERSEC, when an LSM supplies one (ENOPROTOOPT: none). Control
 *      bytes in it are replaced by '?', so it can be logged and never matches a pattern.
 * Afterwards every read of /proc/PID (binary digest, groups) is bracketed by checks that
 * the pinned process is still the live one (pidfd_send_signal(pidfd, 0) succeeds and the
 * pidfd does not report an exit): if it died, its pid may name another process already,
 * and what was read is discarded.
 */
#ifndef VTPM_PEER_IDENTITY_H
#define VTPM_PEER_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vtpmmgrd/label_match.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

struct peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	int pidfd;	/* pins the process; -1 when released */
	bool has_label; /* SO_PEERSEC gave a label */
	char label[LABEL_MAX + 1];
};

/* Identify the peer of connected socket fd. accept_boot_ns: CLOCK_BOOTTIME at accept (for the
 * start-time check when SO_PEERPIDFD is not available). 0 or -1 with the reason in err. */
int peer_identify(int fd, int64_t accept_boot_ns, struct peer *p, char *err, size_t errlen);
void peer_release(struct peer *p);

/* Pin a process by pid (label registration): a pidfd, or -1 with the reason in err. */
int peer_pin(pid_t pid, char *err, size_t errlen);
/* Whether the process pinned by pidfd is alive (not exited, not a zombie). */
bool peer_alive(int pidfd);

/* SHA-256 of the peer's executable, read through /proc/PID/exe of the pinned process. */
int peer_exe_digest(const struct peer *p, uint8_t digest[32], char *err, size_t errlen);
/* Whether the peer's effective gid or one of its supplementary groups (/proc/PID/status
 * "Groups:") is gid. 1 yes, 0 no, -1 error (err). */
int peer_in_group(const struct peer *p, gid_t gid, char *err, size_t errlen);

#endif
