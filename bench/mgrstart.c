/* bench/mgrstart.c — start many managed vtpmd instances the launcher's way and time it.
 *
 *   mgrstart -a ADMIN -i INSTANCE -V VTPMD [-d DIR] -f UUIDFILE [-l LABEL] [-F FLAGS]
 *            [-j PARALLEL] [-w SECONDS] [-p PIDFILE] [-s] [-k]
 *
 * UUIDFILE holds one vTPM UUID per line, optionally followed by a space and the instance's
 * directory D (default DIR/K for the K-th line, K = 0, 1, ...; a second run on the same
 * file finds the same state). For each instance a child process registers LABEL (default
 * bench_u:vm_r:vtpm_t) for its own pid on the admin socket ADMIN (MGR_LABEL_REGISTER: the
 * launcher's job on a host without an LSM), then executes in that same process
 *
 *   VTPMD socket --tpm2 --tpmstate dir=D --ctrl type=unixio,path=D/ctrl
 *         --flags FLAGS --manager INSTANCE --uuid UUID --log file=D/log,level=1
 *
 * D is created. FLAGS default to not-need-init: each vtpmd gets its state key from the
 * manager and loads its TPM before it serves. An instance counts as started when its control
 * socket answered CMD_GET_CAPABILITY; at most PARALLEL (default 8) are starting at a time.
 * Every child has PR_SET_PDEATHSIG = SIGTERM: if mgrstart dies, its vtpmd go too.
 *
 * Once all answered, mgrstart prints "started N of N in S s", writes "PID UUID D" for each
 * to PIDFILE (one a line; `cut -d' ' -f2-` of it is a UUIDFILE for the same instances) and
 * waits for SIGTERM, SIGINT or SIGHUP (with -s it goes on at once); then it stops every
 * instance (SIGTERM, SIGKILL after 10 s), reaps them, prints "stopped N in S s" and exits 0
 * (1 if an instance had to be killed or ended with an error).
 * If an instance fails to start (exits, or no answer SECONDS after its fork, default 60), its log
 * is printed on stderr, all are stopped, exit status 1. With -k (keep going) mgrstart then starts
 * no further instance, lets those already starting finish, and goes on with the K that answered:
 * "started K of N in S s (F failed)"; PIDFILE lists those K.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/mgr_proto.h"

#define MGR_TIMEOUT_MS 10000
#define STOP_GRACE_S   10.0

/* ST_DEAD: failed, killed, not yet reaped; ST_GONE: reaped */
enum st { ST_IDLE, ST_FORKED, ST_ASKED, ST_UP, ST_DEAD, ST_GONE };

struct inst {
	char uuid[37];
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char ctrl[sizeof(((struct sockaddr_un *)0)->sun_path)];
	pid_t pid;
	int fd;
	enum st st;
	int status;	/* wait status once reaped */
	double t_spawn; /* when it was forked */
	uint8_t rsp[8];
	size_t have;
};

static struct inst *in;
static size_t n;
static const char *admin, *inst_sock, *vtpmd, *base, *label = "bench_u:vm_r:vtpm_t";
static const char *flags = "not-need-init";
static uint8_t buf[MGR_MAX_MSG];

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "mgrstart: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* In the child: register LABEL for our own pid. Returns 0, or -1 with a message on stderr. */
static int register_self(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct pollfd p;
	struct mgr_builder b;
	struct mgr_msg *m;
	char err[256], text[MGR_MAX_TEXT + 1] = "";
	uint32_t status;
	size_t len;
	ssize_t r;
	int fd;

	if (strlen(admin) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "mgrstart: admin socket path too long\n");
		return -1;
	}
	memcpy(sa.sun_path, admin, strlen(admin) + 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "mgrstart: connect %s: %s\n", admin, strerror(errno));
		return -1;
	}
	mgr_build_init(&b, buf, sizeof(buf), MGR_LABEL_REGISTER);
	mgr_put_u32(&b, MGR_F_PID, (uint32_t)getpid());
	mgr_put_text(&b, MGR_F_LABEL, label);
	len = mgr_build_finish(&b);
	if (send(fd, buf, len, MSG_NOSIGNAL) != (ssize_t)len) {
		fprintf(stderr, "mgrstart: MGR_LABEL_REGISTER: send: %s\n", strerror(errno));
		return -1;
	}
	p = (struct pollfd){.fd = fd, .events = POLLIN};
	if (poll(&p, 1, MGR_TIMEOUT_MS) <= 0) {
		fprintf(stderr, "mgrstart: MGR_LABEL_REGISTER: no answer\n");
		return -1;
	}
	r = recv(fd, buf, sizeof(buf), 0);
	close(fd);
	m = malloc(sizeof(*m));
	if (!m || r <= 0 || mgr_parse(buf, (size_t)r, m, err, sizeof(err)) < 0 ||
	    mgr_get_u32(m, MGR_F_STATUS, &status) < 0) {
		fprintf(stderr, "mgrstart: MGR_LABEL_REGISTER: bad answer\n");
		return -1;
	}
	if (status != MGR_OK) {
		mgr_get_text(m, MGR_F_MESSAGE, text, sizeof(text));
		fprintf(stderr, "mgrstart: MGR_LABEL_REGISTER refused: %s: %s\n",
			mgr_status_name(status), text);
		return -1;
	}
	free(m);
	return 0;
}

static void spawn(struct inst *x, pid_t parent)
{
	char statedir[160], ctrl[160], logopt[200], logpath[160];
	pid_t pid;
	int fd;

	if (mkdir(x->dir, 0700) < 0 && errno != EEXIST)
		die("mkdir %s: %s", x->dir, strerror(errno));
	snprintf(statedir, sizeof(statedir), "dir=%s", x->dir);
	snprintf(ctrl, sizeof(ctrl), "type=unixio,path=%s", x->ctrl);
	snprintf(logpath, sizeof(logpath), "%s/log", x->dir);
	snprintf(logopt, sizeof(logopt), "file=%s,level=1", logpath);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		sigset_t none;

		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0)
			dup2(fd, 0);
		if (register_self() < 0)
			_exit(1);
		execl(vtpmd, vtpmd, "socket", "--tpm2", "--tpmstate", statedir, "--ctrl", ctrl,
		      "--flags", flags, "--manager", inst_sock, "--uuid", x->uuid, "--log", logopt,
		      (char *)NULL);
		fprintf(stderr, "mgrstart: exec %s: %s\n", vtpmd, strerror(errno));
		_exit(1);
	}
	x->pid = pid;
	x->st = ST_FORKED;
	x->t_spawn = now();
}

/* Try to connect to the control socket and send CMD_GET_CAPABILITY. */
static void try_ask(struct inst *x)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	static const uint8_t getcap[4] = {0, 0, 0, 1};
	int fd;

	memcpy(sa.sun_path, x->ctrl, strlen(x->ctrl) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno != ENOENT && errno != ECONNREFUSED && errno != EAGAIN)
			die("connect %s: %s", x->ctrl, strerror(errno));
		close(fd);
		return;
	}
	if (write(fd, getcap, sizeof(getcap)) != (ssize_t)sizeof(getcap))
		die("%s: CMD_GET_CAPABILITY: write: %s", x->ctrl, strerror(errno));
	x->fd = fd;
	x->have = 0;
	x->st = ST_ASKED;
}

static void show_log(const struct inst *x)
{
	char path[160], line[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/log", x->dir);
	f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		fprintf(stderr, "  %s", line);
	fclose(f);
}

/* Stop every live instance: SIGTERM, SIGKILL after the grace time; reap. Returns the number
 * that had to be killed or ended with an error. */
static int stop_all(void)
{
	double deadline = now() + STOP_GRACE_S;
	size_t i, left = 0;
	int bad = 0, killed = 0, st;
	pid_t p;

	for (i = 0; i < n; i++) {
		if (in[i].fd >= 0) {
			close(in[i].fd);
			in[i].fd = -1;
		}
		if (in[i].pid > 0 && in[i].st != ST_GONE) {
			kill(in[i].pid, SIGTERM);
			left++;
		}
	}
	while (left > 0) {
		p = waitpid(-1, &st, WNOHANG);
		if (p < 0)
			break;
		if (p == 0) {
			if (!killed && now() > deadline) {
				for (i = 0; i < n; i++)
					if (in[i].pid > 0 && in[i].st != ST_GONE)
						kill(in[i].pid, SIGKILL);
				killed = 1;
			}
			nap_ms(1);
			continue;
		}
		for (i = 0; i < n; i++) {
			if (in[i].pid == p && in[i].st != ST_GONE) {
				if (in[i].st == ST_UP && (!WIFEXITED(st) || WEXITSTATUS(st) != 0))
					bad++;
				in[i].st = ST_GONE;
				in[i].status = st;
				left--;
			}
		}
	}
	return bad;
}

static volatile sig_atomic_t stop_sig;

static void on_stop(int sig)
{
	stop_sig = sig;
}

static int keep_going;
static size_t failed;

/* An instance failed to start: without -k stop everything and exit 1; with -k note it
 * (the first one's log is shown), start no more and go on with those that are up. */
static void fail(struct inst *x, const char *why)
{
	if (!keep_going || failed == 0) {
		fprintf(stderr, "mgrstart: instance %zu (vTPM %s, pid %ld) %s; its log:\n",
			(size_t)(x - in), x->uuid, (long)x->pid, why);
		show_log(x);
	}
	if (!keep_going) {
		stop_all();
		exit(1);
	}
	if (x->fd >= 0) {
		close(x->fd);
		x->fd = -1;
	}
	if (x->st != ST_GONE) {
		kill(x->pid, SIGKILL);
		x->st = ST_DEAD;
	}
	failed++;
}

static void usage(void)
{
	fprintf(stderr, "usage: mgrstart -a ADMIN -i INSTANCE -V VTPMD [-d DIR] -f UUIDFILE "
			"[-l LABEL] [-F FLAGS] [-j PARALLEL] [-w SECONDS] [-p PIDFILE] [-s] "
			"[-k]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *uuidfile = NULL, *pidfile = NULL;
	double timeout = 60.0, t0, t_up, t1;
	size_t i, next = 0, up = 0, starting, cap = 0;
	int opt, parallel = 8, no_wait = 0, bad, st;
	struct sigaction sa;
	sigset_t mask, old;
	char line[512], *e, *sp;
	pid_t parent = getpid(), p;
	FILE *f;

	while ((opt = getopt(argc, argv, "a:i:V:d:f:l:F:j:w:p:sk")) != -1) {
		switch (opt) {
		case 'a':
			admin = optarg;
			break;
		case 'i':
			inst_sock = optarg;
			break;
		case 'V':
			vtpmd = optarg;
			break;
		case 'd':
			base = optarg;
			break;
		case 'f':
			uuidfile = optarg;
			break;
		case 'l':
			label = optarg;
			break;
		case 'F':
			flags = optarg;
			break;
		case 'j':
			parallel = (int)strtol(optarg, &e, 10);
			if (*e || parallel < 1)
				usage();
			break;
		case 'w':
			timeout = strtod(optarg, &e);
			if (*e || timeout <= 0)
				usage();
			break;
		case 'p':
			pidfile = optarg;
			break;
		case 's':
			no_wait = 1;
			break;
		case 'k':
			keep_going = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || !admin || !inst_sock || !vtpmd || !uuidfile)
		usage();
	f = fopen(uuidfile, "r");
	if (!f)
		die("%s: %s", uuidfile, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		uint8_t u[16];

		line[strcspn(line, "\r\n")] = 0;
		if (!*line)
			continue;
		sp = strchr(line, ' ');
		if (sp)
			*sp++ = 0;
		if (uuid_from_text(line, u) < 0)
			die("%s: '%s' is not a UUID", uuidfile, line);
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			in = realloc(in, cap * sizeof(*in));
			if (!in)
				die("out of memory");
		}
		memset(&in[n], 0, sizeof(in[n]));
		memcpy(in[n].uuid, line, 37);
		if (!sp && !base)
			die("%s: '%s' has no directory, and no -d was given", uuidfile, line);
		if (!sp && strlen(base) + 30 >= sizeof(in[n].ctrl))
			die("%s: path too long for unix sockets below it", base);
		if (sp && strlen(sp) + 6 >= sizeof(in[n].ctrl))
			die("%s: path too long for a unix socket", sp);
		if (sp) {
			snprintf(in[n].dir, sizeof(in[n].dir), "%s", sp);
			snprintf(in[n].ctrl, sizeof(in[n].ctrl), "%s/ctrl", sp);
		} else {
			snprintf(in[n].dir, sizeof(in[n].dir), "%s/%zu", base, n);
			snprintf(in[n].ctrl, sizeof(in[n].ctrl), "%s/%zu/ctrl", base, n);
		}
		in[n].fd = -1;
		n++;
	}
	fclose(f);
	if (n == 0)
		die("%s: no UUID", uuidfile);

	/* the stop signals are taken only where we wait for them */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, &old);

	t0 = now();
	for (;;) {
		struct pollfd pf[1024];
		size_t map[1024], np = 0;

		starting = 0;
		for (i = 0; i < next; i++)
			if (in[i].st == ST_FORKED || in[i].st == ST_ASKED)
				starting++;
		while (next < n && !failed && starting < (size_t)parallel) {
			spawn(&in[next++], parent);
			starting++;
		}
		if (starting == 0 && (next == n || failed))
			break;
		/* an instance that ended before it answered */
		while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
			for (i = 0; i < next; i++) {
				if (in[i].pid != p || in[i].st == ST_GONE)
					continue;
				enum st was = in[i].st;

				in[i].st = ST_GONE;
				in[i].status = st;
				if (was != ST_DEAD)
					fail(&in[i], "ended before it answered");
			}
		}
		for (i = 0; i < next; i++) {
			if (in[i].st == ST_FORKED)
				try_ask(&in[i]);
			if (in[i].st == ST_ASKED && np < 1024) {
				pf[np] = (struct pollfd){.fd = in[i].fd, .events = POLLIN};
				map[np++] = i;
			}
		}
		for (i = 0; i < next; i++)
			if ((in[i].st == ST_FORKED || in[i].st == ST_ASKED) &&
			    now() - in[i].t_spawn > timeout)
				fail(&in[i], "did not answer in time");
		if (ppoll(pf, np, &(struct timespec){0, 1000000}, &old) < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		if (stop_sig) {
			fprintf(stderr, "mgrstart: signal %d while starting: stopping\n",
				(int)stop_sig);
			stop_all();
			return 1;
		}
		for (i = 0; i < np; i++) {
			struct inst *x = &in[map[i]];
			ssize_t r;

			if (!pf[i].revents || x->st != ST_ASKED)
				continue;
			r = read(x->fd, x->rsp + x->have, sizeof(x->rsp) - x->have);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r <= 0) {
				fail(x, "closed its control connection");
				continue;
			}
			x->have += (size_t)r;
			if (x->have < sizeof(x->rsp))
				continue;
			if (x->rsp[0] || x->rsp[1] || x->rsp[2] || x->rsp[3]) {
				fail(x, "answered CMD_GET_CAPABILITY with an error");
				continue;
			}
			close(x->fd);
			x->fd = -1;
			x->st = ST_UP;
			up++;
		}
	}
	t_up = now();
	if (failed)
		printf("started %zu of %zu in %.3f s (%zu failed)\n", up, n, t_up - t0, failed);
	else
		printf("started %zu of %zu in %.3f s\n", up, n, t_up - t0);
	fflush(stdout);
	if (pidfile) {
		char tmp[4200];

		snprintf(tmp, sizeof(tmp), "%s.tmp", pidfile);
		f = fopen(tmp, "w");
		if (!f)
			die("%s: %s", tmp, strerror(errno));
		for (i = 0; i < n; i++)
			if (in[i].st == ST_UP)
				fprintf(f, "%ld %s %s\n", (long)in[i].pid, in[i].uuid, in[i].dir);
		if (fclose(f) != 0 || rename(tmp, pidfile) < 0)
			die("%s: %s", pidfile, strerror(errno));
	}
	if (!no_wait)
		while (!stop_sig)
			sigsuspend(&old);
	t1 = now();
	bad = stop_all();
	printf("stopped %zu in %.3f s%s\n", up, now() - t1,
	       bad ? " (some were killed or ended with an error)" : "");
	return bad ? 1 : 0;
}
