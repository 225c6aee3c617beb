/* vtpmd's built-in seccomp filter (src/gen/vtpmd_seccomp.c) and its loader (seccomp_bpf.h). */
#include <errno.h>
#include <seccomp.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/seccomp_bpf.h"
#include "unit.h"
#include "vtpmd/seccomp_calls.h"
#include "vtpmd_seccomp_bpf.h"

#define NKILL (sizeof(vtpmd_bpf_kill) / sizeof(vtpmd_bpf_kill[0]))
#define NLOG  (sizeof(vtpmd_bpf_log) / sizeof(vtpmd_bpf_log[0]))

/* The program libseccomp builds today from seccomp_calls.c equals the one built in. */
static void same_as_libseccomp(const char *name, const struct sock_filter *built, size_t n,
			       bool passthrough, bool log_only)
{
	struct seccomp_cond conds[VTPMD_SECCOMP_MAX_CONDS];
	size_t nconds;
	struct sock_filter now[SECCOMP_BPF_MAX_INSNS];
	char err[256] = "";
	int fd = memfd_create("test", MFD_CLOEXEC);
	ssize_t len;

	unit_begin(name);
	if (!CHECKF(fd >= 0, "memfd_create: %s", strerror(errno)))
		goto out;
	nconds = vtpmd_seccomp_conds(conds, VTPMD_SECCOMP_PID_PLACEHOLDER, passthrough);
	if (!CHECKF(seccomp_filter_export(vtpmd_seccomp_calls, vtpmd_seccomp_ncalls, conds, nconds,
					  log_only, fd, err, sizeof(err)) == 0,
		    "%s", err))
		goto out;
	len = pread(fd, now, sizeof(now), 0);
	CHECKF(len == (ssize_t)(n * sizeof(now[0])), "libseccomp: %zd bytes, built in: %zu", len,
	       n * sizeof(now[0]));
	CHECK(len > 0 && memcmp(now, built, (size_t)len) == 0);
out:
	if (fd >= 0)
		close(fd);
	unit_end();
}

static void on_usr1(int sig)
{
	(void)sig;
}

/* In a child: load the kill filter for its own pid, then do what. The status it ends with. */
static int child_status(int what)
{
	char err[256];
	pid_t pid = fork(), other;
	int st = -1;

	if (pid == 0) {
		other = getppid();
		signal(SIGUSR1, on_usr1);
		if (seccomp_bpf_load(vtpmd_bpf_kill, NKILL, VTPMD_SECCOMP_PID_PLACEHOLDER,
				     (uint32_t)getpid(), err, sizeof(err)) < 0)
			_exit(10);
		if (what == 0) /* tgkill of itself: allowed */
			syscall(SYS_tgkill, getpid(), gettid(), SIGUSR1);
		else if (what == 1) /* tgkill of another process: not */
			syscall(SYS_tgkill, other, other, 0);
		else /* a TCP socket: not */
			syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
		_exit(0);
	}
	if (pid > 0)
		waitpid(pid, &st, 0);
	return st;
}

int main(void)
{
	static const struct sock_filter no_placeholder[] = {{0x06, 0, 0, 0x7fff0000}};
	char err[256];
	int st;

	/* as the generator: the filter is for API level 3, whatever this kernel is */
	seccomp_api_set(3);
	same_as_libseccomp("bpf: the kill filter is what libseccomp builds from the list",
			   vtpmd_bpf_kill, NKILL, false, false);
	same_as_libseccomp("bpf: the log filter is what libseccomp builds from the list",
			   vtpmd_bpf_log, NLOG, false, true);
	same_as_libseccomp("bpf: passthrough's kill filter is what libseccomp builds",
			   vtpmd_bpf_pt_kill,
			   sizeof(vtpmd_bpf_pt_kill) / sizeof(vtpmd_bpf_pt_kill[0]), true, false);
	same_as_libseccomp("bpf: passthrough's log filter is what libseccomp builds",
			   vtpmd_bpf_pt_log, sizeof(vtpmd_bpf_pt_log) / sizeof(vtpmd_bpf_pt_log[0]),
			   true, true);

	unit_begin("bpf: a program with no placeholder is refused, before anything is loaded");
	CHECK(seccomp_bpf_load(no_placeholder, 1, VTPMD_SECCOMP_PID_PLACEHOLDER, 1, err,
			       sizeof(err)) < 0);
	CHECKF(strstr(err, "no placeholder") != NULL, "%s", err);
	unit_end();

	unit_begin("bpf: empty and oversized programs are refused");
	CHECK(seccomp_bpf_load(vtpmd_bpf_kill, 0, VTPMD_SECCOMP_PID_PLACEHOLDER, 1, err,
			       sizeof(err)) < 0);
	CHECK(seccomp_bpf_load(vtpmd_bpf_kill, SECCOMP_BPF_MAX_INSNS + 1,
			       VTPMD_SECCOMP_PID_PLACEHOLDER, 1, err, sizeof(err)) < 0);
	CHECKF(strstr(err, "instructions") != NULL, "%s", err);
	unit_end();

	unit_begin("bpf: loaded, the placeholder is the process's own pid (tgkill of itself)");
	st = child_status(0);
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
	unit_end();

	unit_begin("bpf: loaded, tgkill of another process kills");
	st = child_status(1);
	CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "status 0x%x", st);
	unit_end();

	unit_begin("bpf: loaded, a TCP socket kills");
	st = child_status(2);
	CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "status 0x%x", st);
	unit_end();

	return unit_exit();
}
