/*
 * launch.c — vtpmctl launch: the domain builder. One vTPM, one vtpmd, one QEMU, paired:
 *
 *   1. the kernel and initrd (--kernel, --initrd) are copied into sealed memfds, so the
 *      bytes vtpmd measures are the bytes QEMU loads (no file can change in between);
 *   2. fork the QEMU child; it stops itself before it runs anything;
 *   3. start vtpmd as `vtpmctl start` does (label registered for its pid at the manager,
 *      which hands it the vTPM's key), with --pair-pid QEMU-CHILD, a private control socket
 *      and the --measure-* options; a refusal (the vTPM is running elsewhere, a rollback,
 *      a label the group does not permit) stops here, before QEMU runs;
 *   4. once vtpmd listens, continue the child: it execs QEMU with the TPM options added;
 *   5. wait for QEMU (forwarding SIGINT, SIGTERM, SIGHUP), then for vtpmd, which stops, its
 *      state saved, when its paired QEMU is gone; exit with QEMU's status.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vtpmctl/vtpmctl.h"

#define READY_WAIT_MS 10000 /* vtpmd's control socket appears within this */
#define STOP_WAIT_MS  30000 /* vtpmd stops within this once QEMU has exited */

const char ctl_launch_help[] =
    "Usage: vtpmctl launch UUID --label LABEL --state-dir DIR [--kernel FILE]\n"
    "                      [--initrd FILE] [--append CMDLINE] [--tpm-model tis|crb]\n"
    "                      [--eventlog FILE] [--log FILE] [--manager-socket PATH]\n"
    "                      [--vtpmd PATH]\n"
    "                      -- QEMU [QEMU-ARGS...]\n"
    "\n"
    "Launch a guest with its vTPM, as a domain builder does: start a managed vtpmd for vTPM\n"
    "UUID (as 'vtpmctl start' does: LABEL is registered for its pid at the manager) paired\n"
    "with this one QEMU, add the TPM options to QEMU's command line, run QEMU in the\n"
    "foreground and exit with its status. The vtpmd serves only that QEMU process: one\n"
    "control and one data connection, every other attach (a second QEMU, swtpm_ioctl,\n"
    "another process) refused and logged; it stops, its state saved, when QEMU exits.\n"
    "Nothing runs if the manager refuses the vTPM (it is running, its state was rolled\n"
    "back, the group does not permit LABEL or vtpmd's binary).\n"
    "\n"
    "With --kernel, the boot is measured: after the firmware's TPM2_Startup at every boot\n"
    "and reset, vtpmd extends the kernel's digest into PCR 4, then the initrd's and the\n"
    "command line's into PCR 5, in every allocated bank (vtpmd(8), MEASURED BOOT). The\n"
    "kernel and initrd are copied into sealed memory files that both vtpmd and QEMU read,\n"
    "so what is measured is what boots.\n"
    "\n"
    "Options:\n"
    "  --label LABEL          the vtpmd's label user:role:type[:level] (see vtpmctl start)\n"
    "  --state-dir DIR        the vTPM's state directory (must exist)\n"
    "  --kernel FILE          boot FILE directly (QEMU -kernel) and measure it\n"
    "  --initrd FILE          with --kernel: the initrd (QEMU -initrd), measured\n"
    "  --append CMDLINE       with --kernel: the command line (QEMU -append), measured\n"
    "  --tpm-model tis|crb    the TPM interface QEMU gives the guest (default tis)\n"
    "  --eventlog FILE        with --kernel: write vtpmd's measurements as a TCG2 event log\n"
    "  --log FILE             vtpmd's log, information level (default: its warnings on\n"
    "                         stderr)\n"
    "  --manager-socket PATH  the manager's instance socket (default " VTPMCTL_DEFAULT_INST_SOCKET
    ")\n"
    "  --vtpmd PATH           the vtpmd executable (default: next to vtpmctl, else $PATH)\n"
    "  -- QEMU QEMU-ARGS      the QEMU command (searched in $PATH); it must not have a TPM\n"
    "                         of its own (-tpmdev) nor, with --kernel, -kernel, -initrd or\n"
    "                         -append\n"
    "\n" CTL_HELP_GLOBAL "\n"
    "Without --log vtpmd's warnings go to stderr; its control socket lives in a private directory "
    "under\n"
    "$TMPDIR (default /tmp), removed at the end.\n"
    "\n"
    "Example:\n"
    "  vtpmctl launch \"$uuid\" --label guest1_u:vm_r:vtpm_t --state-dir /var/lib/vtpm/g1 \\\n"
    "      --kernel vmlinuz --initrd initrd.img --append 'console=ttyS0 root=/dev/vda' \\\n"
    "      -- qemu-system-x86_64 -machine q35 -m 1G -nographic -drive file=g1.qcow2\n"
    "\n" CTL_HELP_EXIT "  otherwise QEMU's exit status (128+N if signal N ended it)\n";

struct launch {
	struct start_args a;
	const char *kernel, *initrd, *append, *eventlog, *log;
	const char *model;
	char **qemu; /* argv of QEMU, NULL-terminated */
	int nqemu;
	int kernel_fd, initrd_fd; /* sealed memfds, inherited by vtpmd and QEMU */
	char kernel_path[64], initrd_path[64];
	char rundir[PATH_MAX], ctrl_path[PATH_MAX + 16];
};

static volatile sig_atomic_t qemu_pid;

static void forward_to_qemu(int sig)
{
	int saved = errno;

	if (qemu_pid > 0)
		kill((pid_t)qemu_pid, sig);
	errno = saved;
}

/* Copy a file into a sealed memfd (not close-on-exec: both children read it by
 * /proc/self/fd/N). The fd, or -1 with err. */
static int sealed_copy(const char *what, const char *path, char *err, size_t errlen)
{
	static char buf[1 << 16];
	int in = open(path, O_RDONLY | O_CLOEXEC), out;
	ssize_t n;

	if (in < 0) {
		snprintf(err, errlen, "--%s %s: %s", what, path, strerror(errno));
		return -1;
	}
	out = memfd_create(what, MFD_ALLOW_SEALING);
	if (out < 0) {
		snprintf(err, errlen, "memfd_create: %s", strerror(errno));
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || write(out, buf, (size_t)n) != n) {
			snprintf(err, errlen, "--%s %s: copying: %s", what, path,
				 strerror(errno ? errno : EIO));
			goto fail;
		}
	}
	close(in);
	in = -1;
	if (fcntl(out, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
		snprintf(err, errlen, "sealing the copy of %s: %s", path, strerror(errno));
		goto fail;
	}
	return out;
fail:
	if (in >= 0)
		close(in);
	close(out);
	return -1;
}

/* The QEMU child: stop until vtpmd is ready, then exec QEMU. Never returns. */
static _Noreturn void qemu_child(char **argv, pid_t parent)
{
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL); /* never run unpaired if the launcher dies */
	if (getppid() != parent)
		_exit(127);
	raise(SIGSTOP);
	(void)prctl(PR_SET_PDEATHSIG, 0);
	if (getppid() != parent)
		_exit(127);
	execvp(argv[0], argv);
	fprintf(stderr, "vtpmctl: cannot execute %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* QEMU's argv: the user's, then the TPM (and kernel) options. NULL on out of memory. */
static char **qemu_argv(struct launch *l, char *chardev, char *device)
{
	char **v = calloc((size_t)l->nqemu + 16, sizeof(*v));
	int n = 0, i;

	if (!v)
		return NULL;
	for (i = 0; i < l->nqemu; i++)
		v[n++] = l->qemu[i];
	v[n++] = (char *)"-chardev";
	v[n++] = chardev;
	v[n++] = (char *)"-tpmdev";
	v[n++] = (char *)"emulator,id=vtpm0,chardev=vtpmchr0";
	v[n++] = (char *)"-device";
	v[n++] = device;
	if (l->kernel) {
		v[n++] = (char *)"-kernel";
		v[n++] = l->kernel_path;
		if (l->initrd) {
			v[n++] = (char *)"-initrd";
			v[n++] = l->initrd_path;
		}
		if (l->append) {
			v[n++] = (char *)"-append";
			v[n++] = (char *)l->append;
		}
	}
	v[n] = NULL;
	return v;
}

/* vtpmd's extra options (after vtpmctl start's own). */
static char **vtpmd_extra(struct launch *l, char *ctrl, char *pair, char *log)
{
	char **v = calloc(16, sizeof(*v));
	int n = 0;

	if (!v)
		return NULL;
	v[n++] = (char *)"--ctrl";
	v[n++] = ctrl;
	v[n++] = (char *)"--pair-pid";
	v[n++] = pair;
	if (l->log) {
		v[n++] = (char *)"--log";
		v[n++] = log;
	}
	if (l->kernel) {
		v[n++] = (char *)"--measure-kernel";
		v[n++] = l->kernel_path;
		if (l->initrd) {
			v[n++] = (char *)"--measure-initrd";
			v[n++] = l->initrd_path;
		}
		if (l->append) {
			v[n++] = (char *)"--measure-append";
			v[n++] = (char *)l->append;
		}
		if (l->eventlog) {
			v[n++] = (char *)"--eventlog";
			v[n++] = (char *)l->eventlog;
		}
	}
	return v;
}

/* Wait until vtpmd listens (its control socket exists) or has exited. 0 ready, else an
 * exit code (reported). */
static int wait_ready(struct ctl *c, const struct launch *l, pid_t vpid)
{
	char how[128];
	struct stat st;
	int i, wst;

	for (i = 0; i < READY_WAIT_MS / 10; i++) {
		if (waitpid(vpid, &wst, WNOHANG) == vpid) {
			describe_exit(wst, how, sizeof(how));
			return ctl_fail(
			    c, EXIT_LOCAL, -1,
			    "vtpmd (pid %ld) %s before it was ready; QEMU was not started "
			    "(vtpmd's messages are above)",
			    (long)vpid, how);
		}
		if (stat(l->ctrl_path, &st) == 0 && S_ISSOCK(st.st_mode))
			return 0;
		sleep_ms(10);
	}
	kill(vpid, SIGTERM);
	while (waitpid(vpid, NULL, 0) < 0 && errno == EINTR)
		;
	return ctl_fail(c, EXIT_LOCAL, -1, "vtpmd (pid %ld) did not listen within %d ms",
			(long)vpid, READY_WAIT_MS);
}

static int wait_for(pid_t pid, int *st)
{
	for (;;) {
		pid_t r = waitpid(pid, st, 0);

		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

/* After QEMU: vtpmd stops by itself (its paired process is gone); SIGTERM if it lingers. */
static void reap_vtpmd(pid_t vpid)
{
	char how[128];
	int i, st;

	for (i = 0; i < STOP_WAIT_MS / 10; i++) {
		if (waitpid(vpid, &st, WNOHANG) == vpid) {
			if (describe_exit(st, how, sizeof(how)) != 0)
				fprintf(stderr, "vtpmctl: vtpmd (pid %ld) %s\n", (long)vpid, how);
			return;
		}
		sleep_ms(10);
	}
	fprintf(stderr, "vtpmctl: vtpmd (pid %ld) still runs %d ms after QEMU: stopping it\n",
		(long)vpid, STOP_WAIT_MS);
	kill(vpid, SIGTERM);
	wait_for(vpid, &st);
}

static int run(struct ctl *c, struct launch *l)
{
	char chardev[PATH_MAX + 64], device[64], ctrl[PATH_MAX + 64], pair[16], how[128],
	    log[PATH_MAX + 32];
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
	pid_t qpid, vpid, parent = getpid();
	char **qargv = NULL, **extra = NULL;
	struct sigaction sa;
	int rc, st, i;

	snprintf(l->ctrl_path, sizeof(l->ctrl_path), "%s/ctrl.sock", l->rundir);
	snprintf(ctrl, sizeof(ctrl), "type=unixio,path=%s,mode=0600", l->ctrl_path);
	snprintf(chardev, sizeof(chardev), "socket,id=vtpmchr0,path=%s", l->ctrl_path);
	snprintf(device, sizeof(device), "tpm-%s,tpmdev=vtpm0", l->model);
	qargv = qemu_argv(l, chardev, device);
	if (!qargv)
		return ctl_fail(c, EXIT_LOCAL, -1, "out of memory");

	signal(SIGCHLD, SIG_DFL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward_to_qemu;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < (int)(sizeof(sigs) / sizeof(sigs[0])); i++)
		sigaction(sigs[i], &sa, NULL);

	fflush(NULL);
	qpid = fork();
	if (qpid < 0) {
		free(qargv);
		return ctl_fail(c, EXIT_LOCAL, -1, "fork: %s", strerror(errno));
	}
	if (qpid == 0)
		qemu_child(qargv, parent);
	free(qargv);
	if (waitpid(qpid, &st, WUNTRACED) != qpid || !WIFSTOPPED(st)) {
		kill(qpid, SIGKILL);
		wait_for(qpid, &st);
		return ctl_fail(c, EXIT_LOCAL, -1, "the QEMU child ended before it was paired");
	}

	snprintf(pair, sizeof(pair), "%ld", (long)qpid);
	snprintf(log, sizeof(log), "file=%s,level=2", l->log ? l->log : "");
	extra = vtpmd_extra(l, ctrl, pair, log);
	if (!extra) {
		rc = ctl_fail(c, EXIT_LOCAL, -1, "out of memory");
		goto kill_qemu;
	}
	for (l->a.nextra = 0; extra[l->a.nextra]; l->a.nextra++)
		;
	l->a.extra = extra;
	l->a.detach = true; /* terminal signals go to QEMU, which vtpmd outlives */
	rc = vtpmd_spawn(c, &l->a, &vpid);
	free(extra);
	if (rc)
		goto kill_qemu;
	rc = wait_ready(c, l, vpid);
	if (rc)
		goto kill_qemu;

	qemu_pid = (sig_atomic_t)qpid;
	kill(qpid, SIGCONT);
	if (wait_for(qpid, &st) < 0) {
		rc = ctl_fail(c, EXIT_LOCAL, -1, "waitpid: %s", strerror(errno));
		kill(vpid, SIGTERM);
		wait_for(vpid, &st);
		return rc;
	}
	qemu_pid = 0;
	rc = describe_exit(st, how, sizeof(how));
	reap_vtpmd(vpid);
	if (rc != 0)
		fprintf(stderr, "vtpmctl: QEMU %s\n", how);
	return rc;

kill_qemu:
	kill(qpid, SIGKILL);
	wait_for(qpid, &st);
	return rc;
}

/* Options that would give QEMU a second TPM or a second kernel. NULL, or the option. */
static const char *qemu_conflict(const struct launch *l)
{
	static const char *const tpm[] = {"-tpmdev", "--tpmdev"};
	static const char *const boot[] = {"-kernel",  "--kernel", "-initrd",
					   "--initrd", "-append",  "--append"};
	int i;
	size_t k;

	for (i = 1; i < l->nqemu; i++) {
		for (k = 0; k < sizeof(tpm) / sizeof(tpm[0]); k++)
			if (strcmp(l->qemu[i], tpm[k]) == 0)
				return tpm[k];
		for (k = 0; l->kernel && k < sizeof(boot) / sizeof(boot[0]); k++)
			if (strcmp(l->qemu[i], boot[k]) == 0)
				return boot[k];
	}
	return NULL;
}

static int prepare(struct ctl *c, struct launch *l)
{
	char err[512];
	const char *tmp = getenv("TMPDIR");

	if (l->kernel) {
		l->kernel_fd = sealed_copy("kernel", l->kernel, err, sizeof(err));
		if (l->kernel_fd < 0)
			return ctl_fail(c, EXIT_LOCAL, -1, "%s", err);
		snprintf(l->kernel_path, sizeof(l->kernel_path), "/proc/self/fd/%d", l->kernel_fd);
	}
	if (l->initrd) {
		l->initrd_fd = sealed_copy("initrd", l->initrd, err, sizeof(err));
		if (l->initrd_fd < 0)
			return ctl_fail(c, EXIT_LOCAL, -1, "%s", err);
		snprintf(l->initrd_path, sizeof(l->initrd_path), "/proc/self/fd/%d", l->initrd_fd);
	}
	if ((size_t)snprintf(l->rundir, sizeof(l->rundir), "%s/vtpm-launch.XXXXXX",
			     tmp && *tmp ? tmp : "/tmp") >= sizeof(l->rundir) - 16)
		return ctl_fail(c, EXIT_LOCAL, -1, "$TMPDIR is too long");
	if (!mkdtemp(l->rundir)) {
		l->rundir[0] = '\0';
		return ctl_fail(c, EXIT_LOCAL, -1, "cannot make a private directory under %s: %s",
				tmp && *tmp ? tmp : "/tmp", strerror(errno));
	}
	return 0;
}

static void finish(struct launch *l)
{
	if (l->kernel_fd >= 0)
		close(l->kernel_fd);
	if (l->initrd_fd >= 0)
		close(l->initrd_fd);
	if (l->rundir[0]) {
		unlink(l->ctrl_path); /* vtpmd removes it; not if it was killed */
		rmdir(l->rundir);
	}
}

int cmd_launch(struct ctl *c, int argc, char **argv)
{
	enum { L_KERNEL = 1, L_INITRD, L_APPEND, L_MODEL, L_EVENTLOG, L_LOG };
	static const struct optspec specs[] = {{"label", true, SOPT_LABEL},
					       {"state-dir", true, SOPT_STATE_DIR},
					       {"manager-socket", true, SOPT_MANAGER},
					       {"vtpmd", true, SOPT_VTPMD},
					       {"kernel", true, L_KERNEL},
					       {"initrd", true, L_INITRD},
					       {"append", true, L_APPEND},
					       {"tpm-model", true, L_MODEL},
					       {"eventlog", true, L_EVENTLOG},
					       {"log", true, L_LOG},
					       {NULL, false, 0}};
	struct launch l = {.a.manager_socket = VTPMCTL_DEFAULT_INST_SOCKET,
			   .model = "tis",
			   .kernel_fd = -1,
			   .initrd_fd = -1};
	const char *vtpmd = NULL, *val, *bad;
	struct argiter it;
	int id, rc;

	if (args_want_help(argc - 1, argv + 1)) {
		ctl_help(ctl_launch_help);
		return EXIT_OK;
	}
	argiter_init(&it, argc - 1, argv + 1, "launch");
	while ((id = argiter_next(c, &it, specs, &val)) != OPT_END) {
		if (id == OPT_DASHDASH) {
			l.qemu = argv + 1 + it.i;
			l.nqemu = argc - 1 - it.i;
			break;
		}
		switch (id) {
		case OPT_ERROR:
			return EXIT_USAGE;
		case L_KERNEL:
		case L_INITRD:
		case L_EVENTLOG:
			if (!*val)
				return ctl_usage(c, it.cmd, "--%s: the file name is empty",
						 id == L_KERNEL	  ? "kernel"
						 : id == L_INITRD ? "initrd"
								  : "eventlog");
			*(id == L_KERNEL   ? &l.kernel
			  : id == L_INITRD ? &l.initrd
					   : &l.eventlog) = val;
			break;
		case L_APPEND:
			l.append = val;
			break;
		case L_LOG:
			if (!*val || strchr(val, ',') || strlen(val) >= PATH_MAX)
				return ctl_usage(c, it.cmd,
						 "--log: a file name without ',' (vtpmd's --log "
						 "file=PATH syntax cannot carry it)");
			l.log = val;
			break;
		case L_MODEL:
			if (strcmp(val, "tis") != 0 && strcmp(val, "crb") != 0)
				return ctl_usage(c, it.cmd, "--tpm-model: 'tis' or 'crb', not '%s'",
						 val);
			l.model = val;
			break;
		default:
			rc = start_opt(c, &it, id, val, &l.a, &vtpmd);
			if (rc < 0)
				rc = ctl_global_opt(c, &it, id, val, ctl_launch_help);
			if (rc)
				return rc;
		}
	}
	if (!l.qemu || l.nqemu < 1)
		return ctl_usage(c, it.cmd, "launch needs the QEMU command after '--'");
	if (!l.kernel && (l.initrd || l.append || l.eventlog))
		return ctl_usage(c, it.cmd, "--initrd, --append and --eventlog need --kernel");
	bad = qemu_conflict(&l);
	if (bad)
		return ctl_usage(
		    c, it.cmd, "QEMU option %s is not allowed: vtpmctl launch adds %s", bad,
		    strstr(bad, "tpmdev") ? "the guest's only TPM"
					  : "the measured kernel, initrd and command line");
	rc = start_check(c, &it, &l.a, vtpmd);
	if (rc)
		return rc;
	rc = prepare(c, &l);
	if (rc == 0)
		rc = run(c, &l);
	finish(&l);
	return rc;
}
