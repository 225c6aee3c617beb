/*
 * seccomp_bpf.h — load a seccomp filter compiled ahead of time (by libseccomp, when the
 * program was built: see seccomp_filter.h), with one 32-bit constant of it set at load time.
 */
#ifndef VTPM_SECCOMP_BPF_H
#define VTPM_SECCOMP_BPF_H

#include <linux/filter.h>
#include <stddef.h>
#include <stdint.h>

/* The largest program seccomp_bpf_load takes (the kernel's limit is BPF_MAXINSNS, 4096). */
#define SECCOMP_BPF_MAX_INSNS 1024

/* Set PR_SET_NO_NEW_PRIVS and load prog[0..n): every comparison of the accumulator with the
 * constant placeholder (BPF_JMP|BPF_JEQ|BPF_K) compares with value instead. A program with no
 * such comparison is refused: it was not built from the list the caller expects. 0, or -1
 * with err. */
int seccomp_bpf_load(const struct sock_filter *prog, size_t n, uint32_t placeholder, uint32_t value,
		     char *err, size_t errlen);

#endif
