/*
 * sandbox.h — what vtpmd gives up, and when.
 *
 *   first line of main   non-dumpable (no core dump, /proc/PID/mem and environ closed to
 *                        processes of the same uid), memory locked (no swap)
 *   after the options    --chroot DIR, then --runas USER (swtpm's order: every file and
 *                        socket is opened inside the chroot, as the new user)
 *   after start-up       PR_SET_NO_NEW_PRIVS and the seccomp allowlist (--seccomp)
 *
 * vtpmd's own key buffers live in a "secret page": page-aligned, locked even when
 * mlockall could not be had, excluded from core dumps (MADV_DONTDUMP), cleansed when freed.
 */
#ifndef VTPMD_SANDBOX_H
#define VTPMD_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "vtpmd/options.h"

/* How memory locking went (sandbox_lock_memory); reported once the log is set up. */
struct sandbox_mem {
	bool all_locked;    /* mlockall(MCL_CURRENT | MCL_FUTURE) holds */
	int err;	    /* why not: errno of mlockall, or 0 with too little headroom */
	long long limit_kb; /* RLIMIT_MEMLOCK soft limit in KiB, -1 for unlimited */
	long long need_kb;  /* what locking everything needed (mapped size + headroom) */
};

/* PR_SET_DUMPABLE 0 and RLIMIT_CORE 0: call on the first line of main. */
void sandbox_nondumpable(void);
/* mlockall, unless RLIMIT_MEMLOCK leaves too little room for vtpmd to grow (then nothing
 * is locked but the secret pages). Never fails; m says what happened. */
void sandbox_lock_memory(struct sandbox_mem *m);
/* fork(2) does not pass memory locks on (--daemon): lock again in the child. */
void sandbox_relock_after_fork(struct sandbox_mem *m, void *secret, size_t secret_len);
/* Log one warning if not all memory is locked, naming RLIMIT_MEMLOCK; an info line if it is. */
void sandbox_report_memory(const struct sandbox_mem *m);

/* A zeroed, locked, MADV_DONTDUMP region of at least len bytes (whole pages); NULL on error. */
void *sandbox_secret_alloc(size_t len);
/* Cleanse and unmap a region from sandbox_secret_alloc (NULL is fine). */
void sandbox_secret_free(void *p, size_t len);

/* The user of --runas, resolved before the chroot (the chroot needs no /etc/passwd). */
struct sandbox_user {
	uid_t uid;
	gid_t gid;
	gid_t groups[64];
	int ngroups;
	char name[64];
};
/* USER is a name or a number (swtpm: a number is uid and gid). Refuses unless root. */
int sandbox_resolve_user(const char *spec, struct sandbox_user *u, char *err, size_t errlen);
/* chroot(dir) and chdir("/"); needs root. */
int sandbox_chroot(const char *dir, char *err, size_t errlen);
/* setgroups, setgid, setuid (all of real, effective, saved), then check that root cannot be
 * regained. Locked memory stays locked: RLIMIT_MEMLOCK is lifted first, or, if it cannot
 * be, everything is unlocked but the secret region (secret, secret_len). */
int sandbox_drop_privileges(const struct sandbox_user *u, struct sandbox_mem *m, void *secret,
			    size_t secret_len, char *err, size_t errlen);

/* PR_SET_NO_NEW_PRIVS, then (unless action is none) load the allowlist filter. Call when
 * start-up is over: sockets open, state loaded, pid written, daemonized. passthrough: also
 * what the back end's TCTI needs per command (the swtpm and mssim TCTIs connect a new TCP
 * socket for each command). */
int sandbox_seccomp(enum seccomp_action action, bool passthrough, char *err, size_t errlen);

/* Test hook (tests/integration/vtpmd_sandbox.sh): when the environment variable
 * VTPMD_TEST_FORBIDDEN_SYSCALL is "execve" or "socket-inet", make that forbidden call now
 * (harmless if it is allowed: execve of a path that does not exist, a socket closed at
 * once) and log what it returned. Called right after sandbox_seccomp. */
void sandbox_test_hook(void);

#endif
