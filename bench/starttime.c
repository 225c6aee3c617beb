/* bench/starttime.c — time from fork/exec of a vTPM daemon to its first answered TPM2_GetRandom.
 *
 *   starttime [-n RUNS] [-k KEYFILE] [-T SECONDS] [-v] [-q] DAEMON [SUBCOMMAND]
 *
 * Each run makes a fresh directory D (under $TMPDIR, default /tmp) and starts
 *   DAEMON SUBCOMMAND --tpm2 --tpmstate dir=D/state --server type=unixio,path=D/data
 *          --ctrl type=unixio,path=D/ctrl --flags not-need-init,startup-clear
 *          [--key file=KEYFILE,mode=aes-256-cbc,format=hex]
 * (SUBCOMMAND defaults to "socket", as for swtpm), connects to D/data in a retry loop (every
 * 100 us), sends TPM2_GetRandom(16) and stops the clock when the whole, successful response has
 * arrived. The daemon is then stopped (SIGTERM, SIGKILL after 2 s) and D removed. One unmeasured
 * warm-up run, then RUNS (default 15) measured runs; prints the median in milliseconds
 * (-q: the number only; -v: every run). A run that takes longer than -T SECONDS (default 10)
 * fails the program, with the daemon's output.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tpmcmd.h"

#define MAX_RUNS 1000

static const char *prog = "starttime";
static pid_t child = -1;
static char rundir[4096];

static void cleanup(void);

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	cleanup();
	exit(1);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* Stop the daemon we started (by its PID only) and remove the run directory. */
static void stop_child(void)
{
	if (child <= 0)
		return;
	kill(child, SIGTERM);
	double give_up = now() + 2.0;
	for (;;) {
		pid_t w = waitpid(child, NULL, WNOHANG);
		if (w == child || (w < 0 && errno != EINTR))
			break;
		if (now() > give_up) {
			kill(child, SIGKILL);
			waitpid(child, NULL, 0);
			break;
		}
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	child = -1;
}

static void cleanup(void)
{
	stop_child();
	if (rundir[0]) {
		nftw(rundir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		rundir[0] = 0;
	}
}

static void show_log(void)
{
	char path[4200], buf[2048];
	snprintf(path, sizeof(path), "%s/log", rundir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0) {
		buf[n] = 0;
		fprintf(stderr, "%s: daemon output:\n%s", prog, buf);
	}
}

/* One measured start: returns seconds from fork to the answered GetRandom. */
static double one_run(const char *daemon, const char *sub, const char *keyfile, double timeout)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(rundir, sizeof(rundir), "%s/vtpm-start.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(rundir)) {
		rundir[0] = 0;
		die("mkdtemp: %s", strerror(errno));
	}
	char state[4200], data[4200], ctrl[4200], logp[4200], a_state[4300], a_data[4300],
	    a_ctrl[4300], a_key[4400];
	snprintf(state, sizeof(state), "%s/state", rundir);
	snprintf(data, sizeof(data), "%s/data", rundir);
	snprintf(ctrl, sizeof(ctrl), "%s/ctrl", rundir);
	snprintf(logp, sizeof(logp), "%s/log", rundir);
	if (mkdir(state, 0700) != 0)
		die("mkdir %s: %s", state, strerror(errno));
	snprintf(a_state, sizeof(a_state), "dir=%s", state);
	snprintf(a_data, sizeof(a_data), "type=unixio,path=%s", data);
	snprintf(a_ctrl, sizeof(a_ctrl), "type=unixio,path=%s", ctrl);
	snprintf(a_key, sizeof(a_key), "file=%s,mode=aes-256-cbc,format=hex",
		 keyfile ? keyfile : "");
	const char *argv[] = {daemon,
			      sub,
			      "--tpm2",
			      "--tpmstate",
			      a_state,
			      "--server",
			      a_data,
			      "--ctrl",
			      a_ctrl,
			      "--flags",
			      "not-need-init,startup-clear",
			      keyfile ? "--key" : NULL,
			      a_key,
			      NULL};
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlen(data) >= sizeof(sun.sun_path))
		die("socket path too long: %s (set TMPDIR shorter)", data);
	memcpy(sun.sun_path, data, strlen(data) + 1);
	int logfd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (logfd < 0)
		die("open %s: %s", logp, strerror(errno));

	struct tbuf t;
	struct tpm_expect e;
	size_t n = bench_build(CMD_GETRANDOM, &t, &e);

	double t0 = now();
	child = fork();
	if (child < 0)
		die("fork: %s", strerror(errno));
	if (child == 0) {
		int nul = open("/dev/null", O_RDONLY);
		if (nul >= 0)
			dup2(nul, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		execv(daemon, (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", daemon, strerror(errno));
		_exit(127);
	}
	close(logfd);

	int fd;
	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			die("socket: %s", strerror(errno));
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
			break;
		int err = errno;
		close(fd);
		if (err != ENOENT && err != ECONNREFUSED && err != EAGAIN && err != EINTR)
			die("connect %s: %s", data, strerror(err));
		int status;
		if (waitpid(child, &status, WNOHANG) == child) {
			child = -1;
			show_log();
			die("%s exited (status 0x%x) before its data socket accepted a connection",
			    daemon, status);
		}
		if (now() - t0 > timeout) {
			show_log();
			die("%s: no data socket after %.1f s", daemon, timeout);
		}
		struct timespec ts = {0, 100000};
		nanosleep(&ts, NULL);
	}
	struct timeval tv = {(time_t)timeout, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (write(fd, t.b, n) != (ssize_t)n)
		die("TPM2_GetRandom: write: %s", strerror(errno));
	uint8_t rsp[4096];
	size_t have = 0, need = TPM_RSP_HEADER;
	while (have < need) {
		ssize_t r = read(fd, rsp + have, sizeof(rsp) - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			show_log();
			die("TPM2_GetRandom: %s after %zu response bytes",
			    r < 0 ? strerror(errno) : "connection closed", have);
		}
		have += (size_t)r;
		if (have >= TPM_RSP_HEADER) {
			need = be32(rsp + 2);
			if (need < TPM_RSP_HEADER || need > sizeof(rsp))
				die("TPM2_GetRandom: bad responseSize %zu", need);
		}
	}
	double t1 = now();
	close(fd);
	char err[256];
	if (tpm_check_rsp("TPM2_GetRandom", rsp, have, &e, TPM_RC_SUCCESS, err, sizeof(err)) < 0)
		die("%s", err);
	cleanup();
	return t1 - t0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int runs = 15, verbose = 0, quiet = 0, opt;
	double timeout = 10.0;
	const char *keyfile = NULL;
	char *end;
	static double ms[MAX_RUNS];

	while ((opt = getopt(argc, argv, "n:k:T:vq")) != -1) {
		switch (opt) {
		case 'n':
			runs = (int)strtol(optarg, &end, 10);
			if (*end || runs < 1 || runs > MAX_RUNS)
				die("bad -n '%s' (1..%d)", optarg, MAX_RUNS);
			break;
		case 'k':
			keyfile = optarg;
			break;
		case 'T':
			timeout = strtod(optarg, &end);
			if (*end || timeout <= 0)
				die("bad -T '%s'", optarg);
			break;
		case 'v':
			verbose = 1;
			break;
		case 'q':
			quiet = 1;
			break;
		default:
			fprintf(stderr,
				"usage: %s [-n RUNS] [-k KEYFILE] [-T SECONDS] [-v] [-q] DAEMON "
				"[SUBCOMMAND]\n",
				prog);
			return 2;
		}
	}
	if (argc - optind < 1 || argc - optind > 2)
		die("usage: %s [options] DAEMON [SUBCOMMAND]", prog);
	const char *daemon = argv[optind];
	const char *sub = argc - optind == 2 ? argv[optind + 1] : "socket";
	if (access(daemon, X_OK) != 0)
		die("%s: %s", daemon, strerror(errno));
	signal(SIGPIPE, SIG_IGN);

	one_run(daemon, sub, keyfile, timeout); /* warm-up: page cache, dynamic loader */
	for (int i = 0; i < runs; i++) {
		ms[i] = 1e3 * one_run(daemon, sub, keyfile, timeout);
		if (verbose)
			fprintf(stderr, "run %d: %.3f ms\n", i + 1, ms[i]);
	}
	qsort(ms, (size_t)runs, sizeof(ms[0]), cmp_double);
	double med = runs % 2 ? ms[runs / 2] : (ms[runs / 2 - 1] + ms[runs / 2]) / 2;
	if (quiet)
		printf("%.3f\n", med);
	else
		printf(
		    "start to first TPM2_GetRandom: median %.3f ms (min %.3f, max %.3f, %d runs)\n",
		    med, ms[0], ms[runs - 1], runs);
	return 0;
}
