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

#include "common/label_match.h"

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
	/* root or a member of --admin-group (set by the event loop at accept): not under the
	 * per-uid limits of conn_limits.h */
	bool trusted;
};

/* Identify the peer of connected socket fd. accept_boot_ns: CLOCK_BOOTTIME at accept (for the
 * start-time check when SO_PEERPIDFD is not available). 0 or -1 with the reason in err (and
 * errno EMFILE or ENFILE when the pidfd could not be had for want of descriptors). */
int peer_identify(int fd, int64_t accept_boot_ns, struct peer *p, char *err, size_t errlen);
void peer_release(struct peer *p);

/* Pin a process by pid (label registration): a pidfd, or -1 with the reason in err. */
int peer_pin(pid_t pid, char *err, size_t errlen);
/* The start time of process pid in clock ticks since boot (/proc/PID/stat field 22):
 * with the pid, it names one process for the whole uptime. 0, or -1 if unreadable. */
int peer_start_ticks(pid_t pid, uint64_t *ticks);
/* Whether the process pinned by pidfd is alive (not exited, not a zombie). */
bool peer_alive(int pidfd);

/*
 * SHA-256 of the peer's executable, read through /proc/PID/exe of the pinned process, which
 * must be alive before the open and after the read. Once per executable file: a cache keyed by
 * (st_dev, st_ino, st_size, st_mtime, st_ctime) of the opened file (peer_identity.c says
 * when an entry is not kept). Refused with a precise reason: a file that is not regular, one
 * over PEER_EXE_MAX bytes, one whose hashing takes over PEER_DIGEST_TIME_MS, one that changes
 * while it is read.
 */
#define PEER_EXE_MAX	    (64u << 20)
#define PEER_DIGEST_CACHE   64
#define PEER_DIGEST_TIME_MS 2000
#define PEER_DIGEST_FRESH_S 2
#define PEER_ENV_MAX	    (128u << 10) /* bytes of /proc/PID/environ looked at */
struct peer_digest_stats {
	uint64_t hits;	  /* answered from the cache */
	uint64_t misses;  /* hashed */
	uint64_t refused; /* not regular, too big, too slow, changed, unreadable */
};

struct peer_digest_entry {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
	uint8_t digest[32];
	uint64_t used; /* LRU clock; 0: an empty slot */
};

/* The cache and its budget hook: the manager owns one (zeroed: empty, no budget). */
struct peer_digests {
	struct peer_digest_entry v[PEER_DIGEST_CACHE];
	uint64_t clock;
	struct peer_digest_stats stats;
	/* the budget of hashing (cache misses) of untrusted peers: charge(arg, uid, bytes,
	 * err, errlen) returns false, with the reason in err, to refuse. NULL: no budget. */
	bool (*charge)(void *arg, uid_t uid, uint64_t bytes, char *err, size_t errlen);
	void *charge_arg;
};

/* The executable file a process runs, as /proc/PID/exe opens it. */
struct peer_exe_id {
	dev_t dev;
	ino_t ino;
};

/* The digest, and (exe not NULL) the identity of the file it was computed from. */
int peer_exe_digest(struct peer_digests *dc, const struct peer *p, uint8_t digest[32],
		    struct peer_exe_id *exe, char *err, size_t errlen);
/* The file /proc/PID/exe names now (no read): 0, or -1 with err. */
int peer_exe_id(const struct peer *p, struct peer_exe_id *exe, char *err, size_t errlen);
/* The pid tracing the peer (TracerPid of /proc/PID/status), 0 if none; -1 with err. */
int peer_tracer(const struct peer *p, pid_t *tracer, char *err, size_t errlen);
/* Whether the peer's environment (/proc/PID/environ, as of its exec) sets a dynamic linker
 * variable (LD_*): 1 and its name in var, 0 no, -1 with err. */
int peer_ld_env(const struct peer *p, char *var, size_t varlen, char *err, size_t errlen);
/* Whether the peer's effective gid or one of its supplementary groups (/proc/PID/status
 * "Groups:") is gid. 1 yes, 0 no, -1 error (err). */
int peer_in_group(const struct peer *p, gid_t gid, char *err, size_t errlen);

#endif
