#include "vtpmd/seccomp_calls.h"

#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <termios.h>

/* Everything vtpmd does after start-up: serve its sockets, write the state file (also grow
 * it: temp file, rename, fsync of the directory), reconnect to vtpmmgrd, run libtpms and
 * OpenSSL (memory, time, randomness), log, and exit. Missing names are skipped. */
const char *const vtpmd_seccomp_calls[] = {
    /* I/O on open descriptors */
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "pwrite64",
    "lseek",
    "close",
    "fcntl",
    "fstat",
    "newfstatat",
    "statx",
    "poll",
    "ppoll",
    /* the state file and its growth, socket and pid file removal at exit */
    "openat",
    "renameat",
    "renameat2",
    "unlink",
    "unlinkat",
    "ftruncate",
    "fallocate",
    "fsync",
    "fdatasync",
    /* sockets: accept clients, receive CMD_SET_DATAFD's descriptor, talk to vtpmmgrd
     * (socket() itself is allowed for AF_UNIX only, below) */
    "accept",
    "accept4",
    "connect",
    "recvmsg",
    "recvfrom",
    "sendmsg",
    "sendto",
    "shutdown",
    "getsockopt",
    "setsockopt",
    "getsockname",
    "getpeername",
    /* signals (signalfd) and timers */
    "rt_sigprocmask",
    "rt_sigaction",
    "rt_sigreturn",
    "sigaltstack",
    "restart_syscall",
    "signalfd4",
    "clock_gettime",
    "clock_getres",
    "gettimeofday",
    "time",
    "nanosleep",
    "clock_nanosleep",
    "timerfd_create",
    "timerfd_settime",
    "timerfd_gettime",
    /* memory (mmap and mprotect only without PROT_EXEC, below) */
    "brk",
    "munmap",
    "mremap",
    "madvise",
    "futex",
    /* libc, libtpms and OpenSSL at run time */
    "getrandom",
    "getpid",
    "gettid",
    "getppid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "uname",
    "sysinfo",
    "sched_yield",
    /* a new thread's first calls in glibc (the measurement thread may be scheduled only
     * after the filter is loaded): its robust futex list and restartable sequences */
    "set_robust_list",
    "rseq",
    /* the end */
    "exit",
    "exit_group",
};
const size_t vtpmd_seccomp_ncalls = sizeof(vtpmd_seccomp_calls) / sizeof(vtpmd_seccomp_calls[0]);

size_t vtpmd_seccomp_conds(struct seccomp_cond out[VTPMD_SECCOMP_MAX_CONDS], uint32_t pid,
			   bool passthrough)
{
	const struct seccomp_cond conds[VTPMD_SECCOMP_MAX_CONDS] = {
	    /* Reconnecting to vtpmmgrd makes a unix socket; no other kind is ever needed (TCP
	     * listeners are open before the filter, accept needs no socket()). */
	    {.name = "socket", .arg = 0, .mask = ~0ULL, .value = AF_UNIX},
	    /* Never a new executable mapping after start-up (W^X). */
	    {.name = "mmap", .arg = 2, .mask = PROT_EXEC, .value = 0},
	    {.name = "mprotect", .arg = 2, .mask = PROT_EXEC, .value = 0},
	    /* abort() and raise() signal this process only. */
	    {.name = "tgkill", .arg = 0, .mask = ~0ULL, .value = pid},
	    /* stdio asks whether a stream is a terminal; nothing else of ioctl. */
	    {.name = "ioctl", .arg = 1, .mask = ~0ULL, .value = TCGETS},
	    /* passthrough only: the swtpm and mssim TCTIs connect anew for each command */
	    {.name = "socket", .arg = 0, .mask = ~0ULL, .value = AF_INET},
	    {.name = "socket", .arg = 0, .mask = ~0ULL, .value = AF_INET6},
	};
	size_t i, n = passthrough ? VTPMD_SECCOMP_MAX_CONDS : VTPMD_SECCOMP_MAX_CONDS - 2;

	for (i = 0; i < n; i++)
		out[i] = conds[i];
	return n;
}
