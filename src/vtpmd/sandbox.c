#include "vtpmd/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/errmsg.h"
#include "common/log.h"
#include "common/seccomp_bpf.h"
#include "common/parse_num.h"
#include "vtpmd/seccomp_calls.h"
#include "vtpmd_seccomp_bpf.h"

/* Room to grow that locking everything must leave under RLIMIT_MEMLOCK: with MCL_FUTURE,
 * every later mapping counts against the limit, and one over it fails the allocation
 * (libtpms, OpenSSL, a large state blob). */
#define MEMLOCK_HEADROOM_KB (64LL * 1024)

static size_t page_round(size_t len)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return (len + pg - 1) / pg * pg;
}

void sandbox_nondumpable(void)
{
	struct rlimit no_core = {0, 0};

	/* Not dumpable: no core file, and /proc/PID/{mem,environ,maps} and ptrace are closed to
	 * other processes of the same uid (only CAP_SYS_PTRACE opens them). RLIMIT_CORE 0 also
	 * covers fs.suid_dumpable=2, which would still dump a non-dumpable process. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	setrlimit(RLIMIT_CORE, &no_core);
}

static bool have_cap_ipc_lock(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct c[2];

	memset(c, 0, sizeof(c));
	if (syscall(SYS_capget, &h, c) < 0)
		return false;
	return (c[0].effective >> CAP_IPC_LOCK) & 1;
}

/* The process's mapped size in KiB (what mlockall(MCL_CURRENT) counts). Read without stdio:
 * its first use (buffers, locale) would cost a start more than the read itself. */
static long long mapped_kb(void)
{
	char buf[128];
	long long pages = 0;
	ssize_t n, i;
	int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	for (i = 0; i < n && buf[i] >= '0' && buf[i] <= '9' && pages < (1LL << 40); i++)
		pages = pages * 10 + (buf[i] - '0');
	return pages * (sysconf(_SC_PAGESIZE) / 1024);
}

/* MCL_ONFAULT (Linux 4.4): a page is locked when first touched, so library pages vtpmd never
 * uses are not read in (start time, PSS); every page that ever holds data is locked all the
 * same. */
static int lock_all(void)
{
	if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0)
		return 0;
	if (errno != EINVAL)
		return -1;
	return mlockall(MCL_CURRENT | MCL_FUTURE);
}

void sandbox_lock_memory(struct sandbox_mem *m)
{
	struct rlimit rl;
	bool cap = have_cap_ipc_lock();

	memset(m, 0, sizeof(*m));
	m->limit_kb = -1;
	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		/* An unprivileged process may raise its soft limit up to the hard one. */
		if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			if (setrlimit(RLIMIT_MEMLOCK, &rl) < 0)
				getrlimit(RLIMIT_MEMLOCK, &rl);
		}
		if (rl.rlim_cur != RLIM_INFINITY)
			m->limit_kb = (long long)(rl.rlim_cur / 1024);
	}
	m->need_kb = mapped_kb() + MEMLOCK_HEADROOM_KB;
	if (!cap && m->limit_kb >= 0 && m->limit_kb < m->need_kb)
		return; /* it would lock now and fail allocations later */
	if (lock_all() < 0) {
		m->err = errno;
		return;
	}
	m->all_locked = true;
}

void sandbox_relock_after_fork(struct sandbox_mem *m, void *secret, size_t secret_len)
{
	if (m->all_locked && lock_all() < 0) {
		m->err = errno;
		m->all_locked = false;
	}
	if (!m->all_locked && secret && mlock(secret, page_round(secret_len)) < 0)
		log_warn("cannot lock the key pages");
}

void sandbox_report_memory(const struct sandbox_mem *m)
{
	char limit[64];

	if (m->all_locked) {
		log_info("memory locked (mlockall): no page of vtpmd is swapped out");
		return;
	}
	if (m->limit_kb < 0)
		snprintf(limit, sizeof(limit), "unlimited");
	else
		snprintf(limit, sizeof(limit), "%lld KiB", m->limit_kb);
	if (m->err)
		log_warnx(
		    "memory not locked: mlockall failed (%s) with RLIMIT_MEMLOCK %s; only the "
		    "key pages are locked, TPM state may be swapped out (raise RLIMIT_MEMLOCK, "
		    "e.g. LimitMEMLOCK=infinity or ulimit -l unlimited, or grant "
		    "CAP_IPC_LOCK; see vtpmd(8))",
		    strerror(m->err), limit);
	else
		log_warnx("memory not locked: RLIMIT_MEMLOCK %s is below the %lld KiB vtpmd needs "
			  "to lock all its memory and still grow; only the key pages are locked, "
			  "TPM state may be swapped out (raise RLIMIT_MEMLOCK, e.g. "
			  "LimitMEMLOCK=infinity or ulimit -l unlimited, or grant CAP_IPC_LOCK; "
			  "see vtpmd(8))",
			  limit, m->need_kb);
}

void *sandbox_secret_alloc(size_t len)
{
	size_t sz = page_round(len ? len : 1);
	void *p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		log_warn("cannot map a page for keys");
		return NULL;
	}
	if (madvise(p, sz, MADV_DONTDUMP) < 0) {
		log_warn("madvise(MADV_DONTDUMP) on the key page");
		munmap(p, sz);
		return NULL;
	}
	/* Locked even when mlockall is not: one page fits under any RLIMIT_MEMLOCK but 0. */
	if (mlock(p, sz) < 0)
		log_warn("cannot lock the key page (RLIMIT_MEMLOCK)");
	return p;
}

void sandbox_secret_free(void *p, size_t len)
{
	size_t sz = page_round(len ? len : 1);

	if (!p)
		return;
	OPENSSL_cleanse(p, sz);
	munmap(p, sz); /* also unlocks; munlock is not in the seccomp list */
}

int sandbox_resolve_user(const char *spec, struct sandbox_user *u, char *err, size_t errlen)
{
	struct passwd *pw;
	uint32_t n;
	int ng;

	memset(u, 0, sizeof(*u));
	if (geteuid() != 0)
		return errmsg(err, errlen,
			      "--runas %s: only root can change to another user (vtpmd runs as uid "
			      "%u); start it as root or drop --runas",
			      spec, (unsigned)geteuid());
	if (*spec && strspn(spec, "0123456789") == strlen(spec)) {
		/* A number is the uid and the gid, as in swtpm; no supplementary groups. */
		if (parse_num_u32("--runas", spec, NUM_DEC, 0, 0xfffffffe, &n, err, errlen) < 0)
			return -1;
		u->uid = (uid_t)n;
		u->gid = (gid_t)n;
		u->groups[0] = u->gid;
		u->ngroups = 1;
		snprintf(u->name, sizeof(u->name), "%u", (unsigned)n);
		return 0;
	}
	pw = getpwnam(spec);
	if (!pw)
		return errmsg(err, errlen, "--runas %s: no such user", spec);
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	snprintf(u->name, sizeof(u->name), "%s", pw->pw_name);
	ng = (int)(sizeof(u->groups) / sizeof(u->groups[0]));
	if (getgrouplist(pw->pw_name, pw->pw_gid, u->groups, &ng) < 0)
		return errmsg(err, errlen, "--runas %s: the user is in more than %zu groups", spec,
			      sizeof(u->groups) / sizeof(u->groups[0]));
	u->ngroups = ng;
	return 0;
}

int sandbox_chroot(const char *dir, char *err, size_t errlen)
{
	if (chroot(dir) < 0) {
		int e = errno;
		return errmsg(err, errlen, "--chroot %s: %s%s", dir, strerror(e),
			      e == EPERM ? " (only root can chroot)" : "");
	}
	if (chdir("/") < 0)
		return errmsg(err, errlen, "--chroot %s: chdir / failed: %s", dir, strerror(errno));
	/* As swtpm: OpenSSL must still have an entropy source inside (getrandom(2)). */
	if (RAND_status() != 1)
		return errmsg(err, errlen, "--chroot %s: no entropy source inside the chroot", dir);
	return 0;
}

int sandbox_drop_privileges(const struct sandbox_user *u, struct sandbox_mem *m, void *secret,
			    size_t secret_len, char *err, size_t errlen)
{
	struct rlimit inf = {RLIM_INFINITY, RLIM_INFINITY};

	/* Without CAP_IPC_LOCK every later mapping of a process locked with MCL_FUTURE counts
	 * against RLIMIT_MEMLOCK: lift it while root may, or unlock all but the keys. */
	if (m->all_locked && setrlimit(RLIMIT_MEMLOCK, &inf) < 0) {
		m->err = errno;
		m->all_locked = false;
		munlockall();
		if (secret && mlock(secret, page_round(secret_len)) < 0)
			log_warn("cannot lock the key page");
	}
	if (setgroups((size_t)u->ngroups, u->groups) < 0)
		return errmsg(err, errlen, "--runas %s: setgroups: %s", u->name, strerror(errno));
	if (setresgid(u->gid, u->gid, u->gid) < 0)
		return errmsg(err, errlen, "--runas %s: setresgid(%u): %s", u->name,
			      (unsigned)u->gid, strerror(errno));
	if (setresuid(u->uid, u->uid, u->uid) < 0)
		return errmsg(err, errlen, "--runas %s: setresuid(%u): %s", u->name,
			      (unsigned)u->uid, strerror(errno));
	if (u->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
		return errmsg(err, errlen, "--runas %s: root could be regained after the switch",
			      u->name);
	/* A change of credentials resets dumpability to fs.suid_dumpable: set it again. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	return 0;
}

/* The built-in filters (src/gen/vtpmd_seccomp.c): [passthrough][log]. */
#define BPF(a)                                                                                     \
	{                                                                                          \
		a, sizeof(a) / sizeof(a[0])                                                        \
	}
static const struct {
	const struct sock_filter *insns;
	size_t n;
} builtin[2][2] = {
    {BPF(vtpmd_bpf_kill), BPF(vtpmd_bpf_log)},
    {BPF(vtpmd_bpf_pt_kill), BPF(vtpmd_bpf_pt_log)},
};

int sandbox_seccomp(enum seccomp_action action, bool passthrough, char *err, size_t errlen)
{
	bool log_only = action == SECCOMP_ACTION_LOG;

	if (action == SECCOMP_ACTION_NONE) {
		/* No exec may ever gain privileges again (set-uid files, file capabilities). */
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			return errmsg(err, errlen, "prctl(PR_SET_NO_NEW_PRIVS): %s",
				      strerror(errno));
		log_info("no seccomp filter (--seccomp action=none)");
		return 0;
	}
	/* Built from seccomp_calls.c with vtpmd; a sanitizer build's filter also lets
	 * LeakSanitizer run at exit (seccomp_filter.h), and a report made after the filter is
	 * loaded has no symbols: debug with action=log. */
	if (seccomp_bpf_load(builtin[passthrough][log_only].insns, builtin[passthrough][log_only].n,
			     VTPMD_SECCOMP_PID_PLACEHOLDER, (uint32_t)getpid(), err, errlen) < 0)
		return -1;
	log_info("seccomp filter loaded: action %s for calls outside vtpmd's list",
		 log_only ? "log" : "kill");
	return 0;
}

void sandbox_test_hook(void)
{
	const char *what = getenv("VTPMD_TEST_FORBIDDEN_SYSCALL");

	if (!what)
		return;
	if (strcmp(what, "execve") == 0) {
		char *const none[] = {NULL};
		long r = syscall(SYS_execve, "/nonexistent/vtpmd-test-hook", none, none);
		log_warnx("test hook: %s: execve returned %ld (%s)", what, r,
			  r < 0 ? strerror(errno) : "");
	} else if (strcmp(what, "socket-inet") == 0) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		log_warnx("test hook: %s: socket(AF_INET) returned %d (%s)", what, fd,
			  fd < 0 ? strerror(errno) : "allowed");
		if (fd >= 0)
			close(fd);
	} else {
		log_warnx("test hook: VTPMD_TEST_FORBIDDEN_SYSCALL=%s is not known (execve, "
			  "socket-inet)",
			  what);
	}
}
