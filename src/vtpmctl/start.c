/*
 * start.c — vtpmctl start: the launcher. Plays the domain builder's part on hosts
 * without an LSM: it tells the manager which label the new vtpmd has, by pid, before
 * that vtpmd can ask for its key.
 *
 *   1. connect to the admin socket (fail early, exit 2, before anything is started);
 *   2. fork; the child stops itself (raise(SIGSTOP)) before it execs anything;
 *   3. the parent, once waitpid reports the child stopped, sends
 *      MGR_LABEL_REGISTER(child pid, LABEL); if that fails the child is killed and
 *      vtpmctl exits with the manager's refusal (3) or 2;
 *   4. SIGCONT: the child execs `vtpmd socket --tpm2 --tpmstate dir=DIR --manager SOCK
 *      --uuid UUID [extra]`; an exec failure comes back over a close-on-exec pipe;
 *   5. --wait: wait for vtpmd and exit with its status; otherwise check that it is still
 *      running after START_SETTLE_MS, print its pid and exit 0.
 *
 * The pid cannot be reused between registration and exec: it is our unreaped child. A
 * stopped child whose launcher dies is killed (PR_SET_PDEATHSIG while stopped) and never
 * runs unregistered. The child starts its own session only once it is continued.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vtpmctl/vtpmctl.h"

#define START_SETTLE_MS 200

const char ctl_start_help[] =
    "Usage: vtpmctl start UUID --label LABEL --state-dir DIR [--manager-socket PATH]\n"
    "                     [--vtpmd PATH] [--wait] [-- VTPMD-OPTIONS...]\n"
    "\n"
    "Start a managed vtpmd for vTPM UUID. vtpmctl forks; the child stops before it runs\n"
    "anything; vtpmctl registers LABEL for the child's pid at the manager (which then\n"
    "treats the process as having that label when it asks for the vTPM's key), and only\n"
    "then lets the child exec\n"
    "\n"
    "  vtpmd socket --tpm2 --tpmstate dir=DIR --manager PATH --uuid UUID VTPMD-OPTIONS...\n"
    "\n"
    "If the manager refuses the registration, the child is killed and nothing runs.\n"
    "Without --wait, vtpmctl checks that vtpmd still runs "
    "200 ms after its start, prints its\n"
    "pid and exits 0; vtpmd keeps running in its own session (stdin and stdout on\n"
    "/dev/null, stderr inherited: pass -- --log file=PATH to keep its log in a file, and\n"
    "do not read vtpmctl's stderr through a pipe, which vtpmd keeps open). If\n"
    "vtpmd exits within that time (e.g. the manager refused its label or binary), vtpmctl\n"
    "reports its exit status and exits 4; vtpmd's own messages are on stderr.\n"
    "\n"
    "Options:\n"
    "  --label LABEL          the process label user:role:type[:level] (no '*', at most\n"
    "                         1024 bytes); it must match a pattern of the vTPM's group\n"
    "                         for the manager to hand out the key\n"
    "  --state-dir DIR        the vTPM's state directory (must exist; no ',' in it)\n"
    "  --manager-socket PATH  the manager's instance socket vtpmd connects to\n"
    "                         (default " VTPMCTL_DEFAULT_INST_SOCKET ")\n"
    "  --vtpmd PATH           the vtpmd executable (default: vtpmd in vtpmctl's directory,\n"
    "                         else the first in $PATH)\n"
    "  --wait                 stay in the foreground: wait for vtpmd, forward SIGINT,\n"
    "                         SIGTERM, SIGHUP and SIGQUIT to it, and exit with its exit\n"
    "                         status (128+N if signal N ended it)\n"
    "  -- VTPMD-OPTIONS       further vtpmd options (its channels: --ctrl, --server, --log,\n"
    "                         --flags, --pid ...). Refused: --tpm2, --tpmstate, --manager,\n"
    "                         --uuid (vtpmctl sets them) and -d/--daemon (a new pid would\n"
    "                         not carry the registered label).\n"
    "\n" CTL_HELP_GLOBAL "\n"
    "Output: the pid alone (with --json: {\"uuid\", \"pid\", \"label\", \"running\": true, ...};\n"
    "with --wait --json the object is printed when vtpmd ends, with \"exit_status\").\n"
    "\n"
    "Examples:\n"
    "  vtpmctl start 3f2c1e8a-5b6d-4c7e-9f10-1a2b3c4d5e6f --label guest1_u:vm_r:vtpm_t \\\n"
    "      --state-dir /var/lib/vtpm/guest1 -- --ctrl type=unixio,path=/run/vtpm/g1.ctrl \\\n"
    "      --log file=/var/log/vtpm/guest1.log\n"
    "  vtpmctl start \"$uuid\" --label x_u:vm_r:vtpm_t --state-dir /tmp/s --wait -- \\\n"
    "      --server type=tcp,port=2321 --ctrl type=tcp,port=2322 --flags not-need-init\n"
    "\n" CTL_HELP_EXIT "  with --wait: vtpmd's exit status once it ran\n";

/* The child's pid for the forwarding signal handler (--wait). */
static volatile sig_atomic_t forward_pid;

static void forward_signal(int sig)
{
	int saved = errno;

	if (forward_pid > 0)
		kill((pid_t)forward_pid, sig);
	errno = saved;
}

bool is_executable_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* Find vtpmd: next to our own executable, else in $PATH. */
int find_vtpmd(char *out, size_t cap)
{
	char self[PATH_MAX];
	const char *path, *p;
	ssize_t n;

	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		char *slash;

		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			slash[1] = '\0';
			if ((size_t)snprintf(out, cap, "%svtpmd", self) < cap &&
			    is_executable_file(out))
				return 0;
		}
	}
	path = getenv("PATH");
	for (p = path; p && *p;) {
		size_t len = strcspn(p, ":");

		if (len > 0 && (size_t)snprintf(out, cap, "%.*s/vtpmd", (int)len, p) < cap &&
		    is_executable_file(out))
			return 0;
		p += len;
		if (*p == ':')
			p++;
	}
	return -1;
}

/* Extra vtpmd options vtpmctl must refuse. Returns the offending option or NULL. */
static const char *conflicting_option(char **extra, int nextra)
{
	static const char *const refused[] = {"--tpm2", "--tpmstate", "--manager",
					      "--uuid", "--daemon",   "-d"};
	int i;
	size_t k;

	for (i = 0; i < nextra; i++) {
		size_t len = strcspn(extra[i], "=");

		for (k = 0; k < sizeof(refused) / sizeof(refused[0]); k++)
			if (strlen(refused[k]) == len && strncmp(extra[i], refused[k], len) == 0)
				return refused[k];
	}
	return NULL;
}

void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int describe_exit(int st, char *out, size_t cap)
{
	if (WIFEXITED(st)) {
		snprintf(out, cap, "exited with status %d", WEXITSTATUS(st));
		return WEXITSTATUS(st);
	}
	if (WIFSIGNALED(st)) {
		snprintf(out, cap, "was killed by signal %d (%s)", WTERMSIG(st),
			 strsignal(WTERMSIG(st)));
		return 128 + WTERMSIG(st);
	}
	snprintf(out, cap, "ended with wait status 0x%x", st);
	return EXIT_LOCAL;
}

/* The child: stop, wait to be registered and continued, exec vtpmd. Never returns. */
static _Noreturn void child_run(const struct start_args *a, char **args, int errpipe, pid_t parent)
{
	int e, devnull;

	/* die with the launcher while stopped: never run without the registered label */
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	raise(SIGSTOP);
	(void)prctl(PR_SET_PDEATHSIG, 0);
	if (getppid() != parent)
		_exit(127);
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (a->detach) {
		(void)setsid();
		if (devnull >= 0) {
			(void)dup2(devnull, STDIN_FILENO);
			(void)dup2(devnull, STDOUT_FILENO);
		}
	} else if (devnull >= 0) {
		(void)dup2(devnull, STDIN_FILENO);
	}
	execv(a->vtpmd, args);
	e = errno;
	if (write(errpipe, &e, sizeof(e)) < 0) {
		/* the parent sees EOF and a quick exit instead */
	}
	_exit(127);
}

static int print_started(struct ctl *c, const struct start_args *a, pid_t pid, bool done,
			 int status_code, const char *how)
{
	struct props *ps;

	if (!c->json) {
		if (!done)
			printf("%ld\n", (long)pid);
		fflush(stdout);
		return EXIT_OK;
	}
	ps = props_new();
	props_add_str(ps, "uuid", a->uuid_text);
	props_add_num(ps, "pid", (unsigned long long)pid);
	props_add_str(ps, "label", a->label);
	props_add_str(ps, "state_dir", a->state_dir);
	props_add_str(ps, "manager_socket", a->manager_socket);
	props_add_str(ps, "vtpmd", a->vtpmd);
	props_add_bool(ps, "running", !done);
	if (done) {
		props_add_num(ps, "exit_status", (unsigned long long)status_code);
		props_add_str(ps, "ended", how);
	}
	props_print(c, ps);
	props_free(ps);
	return EXIT_OK;
}

int vtpmd_spawn(struct ctl *c, const struct start_args *a, pid_t *out)
{
	char dirarg[PATH_MAX + 8], how[128], what[128];
	struct mgr_builder b;
	int fd, rc, st, e, n, i, errpipe[2];
	pid_t pid, parent = getpid();
	char **args;

	snprintf(dirarg, sizeof(dirarg), "dir=%s", a->state_dir);
	args = calloc((size_t)a->nextra + 12, sizeof(*args));
	if (!args)
		return ctl_fail(c, EXIT_LOCAL, -1, "out of memory");
	n = 0;
	args[n++] = (char *)a->vtpmd;
	args[n++] = (char *)"socket";
	args[n++] = (char *)"--tpm2";
	args[n++] = (char *)"--tpmstate";
	args[n++] = dirarg;
	args[n++] = (char *)"--manager";
	args[n++] = (char *)a->manager_socket;
	args[n++] = (char *)"--uuid";
	args[n++] = (char *)a->uuid_text;
	for (i = 0; i < a->nextra; i++)
		args[n++] = a->extra[i];
	args[n] = NULL;

	/* an inherited SIG_IGN would have the kernel reap the child behind waitpid's back */
	signal(SIGCHLD, SIG_DFL);
	rc = ctl_connect(c, &fd);
	if (rc) {
		free(args);
		return rc;
	}
	if (pipe2(errpipe, O_CLOEXEC) < 0) {
		close(fd);
		free(args);
		return ctl_fail(c, EXIT_LOCAL, -1, "pipe: %s", strerror(errno));
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		e = errno;
		close(fd);
		close(errpipe[0]);
		close(errpipe[1]);
		free(args);
		return ctl_fail(c, EXIT_LOCAL, -1, "fork: %s", strerror(e));
	}
	if (pid == 0) {
		close(fd);
		close(errpipe[0]);
		child_run(a, args, errpipe[1], parent);
	}
	free(args);
	close(errpipe[1]);

	/* wait until the child has stopped itself */
	for (;;) {
		pid_t r = waitpid(pid, &st, WUNTRACED);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			e = errno;
			close(fd);
			close(errpipe[0]);
			kill(pid, SIGKILL);
			return ctl_fail(c, EXIT_LOCAL, -1, "waitpid: %s", strerror(e));
		}
		if (WIFSTOPPED(st))
			break;
		close(fd);
		close(errpipe[0]);
		describe_exit(st, how, sizeof(how));
		return ctl_fail(c, EXIT_LOCAL, -1,
				"the child for vtpmd %s before it was registered", how);
	}

	mgr_build_init(&b, ctl_reqbuf(), MGR_MAX_MSG, MGR_LABEL_REGISTER);
	mgr_put_u32(&b, MGR_F_PID, (uint32_t)pid);
	mgr_put_text(&b, MGR_F_LABEL, a->label);
	mgr_put_bytes(&b, MGR_F_UUID, a->uuid, 16); /* this pid may open no other vTPM */
	snprintf(what, sizeof(what), "register label %s for pid %ld", a->label, (long)pid);
	rc = ctl_request_fd(c, fd, &b, what);
	if (rc) {
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		close(errpipe[0]);
		return rc;
	}

	kill(pid, SIGCONT);

	/* EOF: exec succeeded (the pipe is close-on-exec); an int: exec's errno */
	for (;;) {
		ssize_t r = read(errpipe[0], &e, sizeof(e));

		if (r < 0 && errno == EINTR)
			continue;
		close(errpipe[0]);
		if (r == (ssize_t)sizeof(e)) {
			while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
				;
			return ctl_fail(c, EXIT_LOCAL, -1, "cannot execute %s: %s", a->vtpmd,
					strerror(e));
		}
		break;
	}
	*out = pid;
	return EXIT_OK;
}

static int start_vtpmd(struct ctl *c, struct start_args *a)
{
	char how[128];
	pid_t pid;
	int rc, st, i;

	if (a->wait) {
		struct sigaction sa;
		static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = forward_signal;
		sigemptyset(&sa.sa_mask);
		forward_pid = 0;
		for (i = 0; i < (int)(sizeof(sigs) / sizeof(sigs[0])); i++)
			sigaction(sigs[i], &sa, NULL);
	}
	rc = vtpmd_spawn(c, a, &pid);
	if (rc)
		return rc;
	forward_pid = (sig_atomic_t)pid;
	if (a->wait) {
		int code;

		if (!c->json) {
			printf("%ld\n", (long)pid);
			fflush(stdout);
		}
		for (;;) {
			pid_t r = waitpid(pid, &st, 0);

			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return ctl_fail(c, EXIT_LOCAL, -1, "waitpid: %s", strerror(errno));
			break;
		}
		forward_pid = 0;
		code = describe_exit(st, how, sizeof(how));
		if (c->json)
			print_started(c, a, pid, true, code, how);
		else if (code != 0)
			fprintf(stderr, "vtpmctl: vtpmd (pid %ld) %s\n", (long)pid, how);
		return code;
	}

	for (i = 0; i < START_SETTLE_MS / 10; i++) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid) {
			describe_exit(st, how, sizeof(how));
			return ctl_fail(
			    c, EXIT_LOCAL, -1,
			    "vtpmd (pid %ld) %s within %d ms of its start (its messages "
			    "are above, on stderr)",
			    (long)pid, how, START_SETTLE_MS);
		}
		sleep_ms(10);
	}
	return print_started(c, a, pid, false, 0, NULL);
}

int start_opt(struct ctl *c, struct argiter *it, int id, const char *val, struct start_args *a,
	      const char **vtpmd)
{
	char err[512];

	switch (id) {
	case OPT_POSITIONAL:
		if (a->uuid_text[0])
			return ctl_usage(c, it->cmd, "%s takes one UUID (%s go after '--')",
					 it->cmd,
					 strcmp(it->cmd, "launch") == 0 ? "QEMU and its options"
									: "vtpmd options");
		if (parse_uuid_arg(val, a->uuid, err, sizeof(err)) < 0)
			return ctl_usage(c, it->cmd, "%s", err);
		uuid_format(a->uuid, a->uuid_text);
		return 0;
	case SOPT_LABEL:
		if (check_label(val, false, err, sizeof(err)) < 0)
			return ctl_usage(c, it->cmd, "--label: %s", err);
		a->label = val;
		return 0;
	case SOPT_STATE_DIR:
		if (strchr(val, ',')) {
			char shown[300];

			out_sanitize(val, strnlen(val, 256), shown, sizeof(shown));
			return ctl_usage(c, it->cmd,
					 "--state-dir: '%s' contains ',', which vtpmd's --tpmstate "
					 "dir=DIR syntax cannot carry",
					 shown);
		}
		if (strlen(val) >= PATH_MAX)
			return ctl_usage(c, it->cmd, "--state-dir: the path is too long");
		a->state_dir = val;
		return 0;
	case SOPT_MANAGER:
		if (check_socket_path(val, err, sizeof(err)) < 0)
			return ctl_usage(c, it->cmd, "--manager-socket: %s", err);
		a->manager_socket = val;
		return 0;
	case SOPT_VTPMD:
		if (strlen(val) >= sizeof(a->vtpmd))
			return ctl_usage(c, it->cmd, "--vtpmd: the path is too long");
		*vtpmd = val;
		return 0;
	default:
		return -1;
	}
}

int start_check(struct ctl *c, struct argiter *it, struct start_args *a, const char *vtpmd)
{
	struct stat st;

	if (!a->uuid_text[0])
		return ctl_usage(c, it->cmd, "%s needs the vTPM's UUID", it->cmd);
	if (!a->label)
		return ctl_usage(c, it->cmd, "%s needs --label LABEL (user:role:type)", it->cmd);
	if (!a->state_dir)
		return ctl_usage(c, it->cmd, "%s needs --state-dir DIR", it->cmd);
	if (stat(a->state_dir, &st) < 0)
		return ctl_fail(c, EXIT_LOCAL, -1, "--state-dir %s: %s", a->state_dir,
				strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return ctl_fail(c, EXIT_LOCAL, -1, "--state-dir %s: not a directory", a->state_dir);
	if (vtpmd) {
		if (!is_executable_file(vtpmd))
			return ctl_fail(c, EXIT_LOCAL, -1, "--vtpmd %s: not an executable file",
					vtpmd);
		snprintf(a->vtpmd, sizeof(a->vtpmd), "%s", vtpmd);
	} else if (find_vtpmd(a->vtpmd, sizeof(a->vtpmd)) < 0) {
		return ctl_fail(c, EXIT_LOCAL, -1,
				"cannot find vtpmd in vtpmctl's directory nor in $PATH (give "
				"--vtpmd PATH)");
	}
	return 0;
}

int cmd_start(struct ctl *c, int argc, char **argv)
{
	enum { O_WAIT = 1 };
	static const struct optspec specs[] = {{"label", true, SOPT_LABEL},
					       {"state-dir", true, SOPT_STATE_DIR},
					       {"manager-socket", true, SOPT_MANAGER},
					       {"vtpmd", true, SOPT_VTPMD},
					       {"wait", false, O_WAIT},
					       {NULL, false, 0}};
	struct start_args a = {.manager_socket = VTPMCTL_DEFAULT_INST_SOCKET};
	const char *vtpmd = NULL, *val, *bad;
	struct argiter it;
	int id, rc;

	if (args_want_help(argc - 1, argv + 1)) {
		ctl_help(ctl_start_help);
		return EXIT_OK;
	}
	argiter_init(&it, argc - 1, argv + 1, "start");
	while ((id = argiter_next(c, &it, specs, &val)) != OPT_END) {
		if (id == OPT_DASHDASH) {
			a.extra = argv + 1 + it.i;
			a.nextra = argc - 1 - it.i;
			break;
		}
		if (id == OPT_ERROR)
			return EXIT_USAGE;
		if (id == O_WAIT) {
			a.wait = true;
			continue;
		}
		rc = start_opt(c, &it, id, val, &a, &vtpmd);
		if (rc < 0)
			rc = ctl_global_opt(c, &it, id, val, ctl_start_help);
		if (rc)
			return rc;
	}
	bad = conflicting_option(a.extra, a.nextra);
	if (bad)
		return ctl_usage(c, it.cmd, "vtpmd option %s is not allowed after '--': %s", bad,
				 strcmp(bad, "-d") == 0 || strcmp(bad, "--daemon") == 0
				     ? "a daemonized vtpmd would have another pid than the one "
				       "whose label is registered"
				     : "vtpmctl start sets it");
	rc = start_check(c, &it, &a, vtpmd);
	if (rc)
		return rc;
	a.detach = !a.wait;
	return start_vtpmd(c, &a);
}
