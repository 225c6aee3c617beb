/*
 * seccomp_calls.h — the system calls vtpmd may make once it serves (sandbox.c loads the
 * filter). The list is compiled into a BPF program when vtpmd is built (src/gen/), so a start
 * costs one seccomp(2) call, not a libseccomp run.
 */
#ifndef VTPM_SECCOMP_CALLS_H
#define VTPM_SECCOMP_CALLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/seccomp_filter.h"

/* Calls allowed whatever their arguments. */
extern const char *const vtpmd_seccomp_calls[];
extern const size_t vtpmd_seccomp_ncalls;

/* What stands for vtpmd's process id in the built-in filter until it is loaded: above any pid
 * (PID_MAX_LIMIT is 2^22) and equal to no call number, action or architecture it compares. */
#define VTPMD_SECCOMP_PID_PLACEHOLDER 0x2fdb5e91u

#define VTPMD_SECCOMP_MAX_CONDS 7
/* Calls allowed under a condition on one argument (tgkill only towards pid, this process);
 * passthrough: also TCP sockets, which a TCP back end's TCTI opens for each command. Returns
 * how many were written to out. */
size_t vtpmd_seccomp_conds(struct seccomp_cond out[VTPMD_SECCOMP_MAX_CONDS], uint32_t pid,
			   bool passthrough);

#endif
