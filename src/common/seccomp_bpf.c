#include "common/seccomp_bpf.h"

#include <errno.h>
#include <linux/seccomp.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/errmsg.h"

int seccomp_bpf_load(const struct sock_filter *prog, size_t n, uint32_t placeholder, uint32_t value,
		     char *err, size_t errlen)
{
	struct sock_filter insns[SECCOMP_BPF_MAX_INSNS];
	struct sock_fprog fprog = {.len = (unsigned short)n, .filter = insns};
	size_t i, patched = 0;
	long rc;

	if (n == 0 || n > SECCOMP_BPF_MAX_INSNS)
		return errmsg(err, errlen,
			      "seccomp: the built-in filter has %zu instructions "
			      "(1 to %d expected)",
			      n, SECCOMP_BPF_MAX_INSNS);
	memcpy(insns, prog, n * sizeof(insns[0]));
	for (i = 0; i < n; i++) {
		if (insns[i].code == (BPF_JMP | BPF_JEQ | BPF_K) && insns[i].k == placeholder) {
			insns[i].k = value;
			patched++;
		}
	}
	if (patched == 0)
		return errmsg(err, errlen,
			      "seccomp: the built-in filter has no placeholder 0x%08x to set",
			      (unsigned)placeholder);
	/* No exec may ever gain privileges again (set-uid files, file capabilities); without
	 * it an unprivileged process may not load a filter. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return errmsg(err, errlen, "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
	/* TSYNC: every thread of the process takes it, not only this one (vtpmd's measurement
	 * thread may still be hashing). */
	rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &fprog);
	if (rc < 0)
		return errmsg(err, errlen, "seccomp(SECCOMP_SET_MODE_FILTER): %s", strerror(errno));
	if (rc > 0)
		return errmsg(err, errlen, "seccomp: thread %ld cannot take the filter", rc);
	return 0;
}
