#include "common/seccomp_filter.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#if defined(__SANITIZE_ADDRESS__)
#define VTPM_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(leak_sanitizer)
#define VTPM_SANITIZER 1
#endif
#endif
#ifdef VTPM_SANITIZER
static const char *const sanitizer_allowed[] = {
    "prctl",	 "ptrace",    "wait4",	    "getdents64", "sched_getaffinity",
    "prlimit64", "getrlimit", "readlink",   "readlinkat", "kill",
    "open",	 "openat",    "stat",	    "lstat",	  "access",
    "getdents",	 "fstat",     "newfstatat",
};
#endif

static int add(scmp_filter_ctx ctx, const char *name, const struct scmp_arg_cmp *cmp, char *err,
	       size_t errlen)
{
	int nr = seccomp_syscall_resolve_name(name), rc;

	if (nr == __NR_SCMP_ERROR)
		return 0;
	rc = cmp ? seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, 1, cmp)
		 : seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
	if (rc < 0) {
		snprintf(err, errlen, "seccomp: cannot allow %s: %s", name, strerror(-rc));
		return -1;
	}
	return 0;
}

/* The filter as a libseccomp context, or NULL with err. */
static scmp_filter_ctx build(const char *const *names, size_t nnames,
			     const struct seccomp_cond *conds, size_t nconds, bool log_only,
			     char *err, size_t errlen)
{
	scmp_filter_ctx ctx;
	unsigned api = (unsigned)seccomp_api_get();
	size_t i;

	if (log_only && api < 3) {
		snprintf(err, errlen,
			 "seccomp: the kernel or libseccomp cannot log (API level %u, needs 3)",
			 api);
		return NULL;
	}
	ctx = seccomp_init(log_only   ? SCMP_ACT_LOG
			   : api >= 3 ? SCMP_ACT_KILL_PROCESS
				      : SCMP_ACT_KILL);
	if (!ctx) {
		snprintf(err, errlen, "seccomp_init failed");
		return NULL;
	}
	for (i = 0; i < nnames; i++)
		if (add(ctx, names[i], NULL, err, errlen) < 0)
			goto fail;
	for (i = 0; i < nconds; i++) {
		const struct scmp_arg_cmp cmp = {.arg = conds[i].arg,
						 .op = SCMP_CMP_MASKED_EQ,
						 .datum_a = conds[i].mask,
						 .datum_b = conds[i].value};
		if (add(ctx, conds[i].name, &cmp, err, errlen) < 0)
			goto fail;
	}
#ifdef VTPM_SANITIZER
	{
		const struct scmp_arg_cmp thread = {
		    .arg = 0, .op = SCMP_CMP_MASKED_EQ, .datum_a = CLONE_VM, .datum_b = CLONE_VM};
		for (i = 0; i < sizeof(sanitizer_allowed) / sizeof(sanitizer_allowed[0]); i++)
			if (add(ctx, sanitizer_allowed[i], NULL, err, errlen) < 0)
				goto fail;
		if (add(ctx, "clone", &thread, err, errlen) < 0)
			goto fail;
	}
#endif
	return ctx;
fail:
	seccomp_release(ctx);
	return NULL;
}

int seccomp_filter_load(const char *const *names, size_t nnames, const struct seccomp_cond *conds,
			size_t nconds, bool log_only, char *err, size_t errlen)
{
	scmp_filter_ctx ctx;
	int rc;

	/* No exec may ever gain privileges again (set-uid files, file capabilities). */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, errlen, "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
		return -1;
	}
	ctx = build(names, nnames, conds, nconds, log_only, err, errlen);
	if (!ctx)
		return -1;
	rc = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rc < 0) {
		snprintf(err, errlen, "seccomp_load: %s", strerror(-rc));
		return -1;
	}
	return 0;
}

int seccomp_filter_export(const char *const *names, size_t nnames, const struct seccomp_cond *conds,
			  size_t nconds, bool log_only, int fd, char *err, size_t errlen)
{
	scmp_filter_ctx ctx = build(names, nnames, conds, nconds, log_only, err, errlen);
	int rc;

	if (!ctx)
		return -1;
	rc = seccomp_export_bpf(ctx, fd);
	seccomp_release(ctx);
	if (rc < 0) {
		snprintf(err, errlen, "seccomp_export_bpf: %s", strerror(-rc));
		return -1;
	}
	return 0;
}
