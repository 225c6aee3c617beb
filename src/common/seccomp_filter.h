/*
 * seccomp_filter.h — load an allowlist seccomp filter (libseccomp): the calls named are
 * allowed, some only when one argument compares as given; every other call kills the process
 * (or is only logged). Both daemons confine themselves with it: vtpmd after start-up
 * (sandbox.c), vtpmmgrd's listener before it reads its first byte (listener.c). vtpmd's is
 * exported when vtpmd is built (src/gen/vtpmd_seccomp.c) and loaded with seccomp_bpf.h, since
 * building it with libseccomp at every start costs more than the rest of the sandbox.
 *
 * A sanitizer build (make asan) runs LeakSanitizer at exit, which stops the process with a
 * tracer thread (clone with CLONE_VM, ptrace, wait4, prctl, /proc/self/task): those calls are
 * added in such builds only. execve and fork stay forbidden, so a report made after the
 * filter is loaded has no symbols.
 */
#ifndef VTPM_SECCOMP_FILTER_H
#define VTPM_SECCOMP_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A call allowed only when argument arg, masked with mask, equals value. */
struct seccomp_cond {
	const char *name;
	unsigned arg;
	uint64_t mask;
	uint64_t value;
};

/* Set PR_SET_NO_NEW_PRIVS and load the filter: names[] always allowed (names the kernel or
 * libseccomp does not know are skipped), conds[] allowed under their condition. log_only:
 * other calls are logged (SECCOMP_RET_LOG), not killed. 0, or -1 with err. */
int seccomp_filter_load(const char *const *names, size_t nnames, const struct seccomp_cond *conds,
			size_t nconds, bool log_only, char *err, size_t errlen);

/* The same filter, not loaded: its BPF program (struct sock_filter[], host byte order) is
 * written to fd. 0, or -1 with err. */
int seccomp_filter_export(const char *const *names, size_t nnames, const struct seccomp_cond *conds,
			  size_t nconds, bool log_only, int fd, char *err, size_t errlen);

#endif
