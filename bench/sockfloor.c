/* bench/sockfloor.c — the floor for any out-of-process vTPM: a bare unix socket round trip.
 *
 *   sockfloor [-t SECONDS] [-c CPU] [-s CPU] [-r REQ] [-R RSP] [-q]
 *
 * A socketpair(AF_UNIX, SOCK_STREAM); a forked child answers every REQ-byte request with an
 * RSP-byte reply (one read, one write — the least a daemon can do); the parent sends requests
 * for SECONDS (default 1.0) and prints round trips/second (-q: the number only). -c/-s pin the
 * client/server to a CPU (the same CPU for "both ends pinned"). Defaults REQ=12, RSP=28 are the
 * sizes of TPM2_GetRandom(16) and its response. The data-channel limit for a command is then
 * 1 / (1/floor + 1/engine).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *prog = "sockfloor";

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", prog);
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

static void pin_cpu(int cpu)
{
	cpu_set_t set;
	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		die("cannot pin to CPU %d: %s", cpu, strerror(errno));
}

static int parse_int(const char *s, const char *what, int lo, int hi)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*end || v < lo || v > hi)
		die("bad %s '%s'", what, s);
	return (int)v;
}

/* The echo server: one read per request, one write per reply; exits at EOF. */
static void serve(int fd, size_t rsp_len)
{
	unsigned char buf[4096];
	memset(buf, 0x80, sizeof(buf));
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r == 0)
			_exit(0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		if (write(fd, buf, rsp_len) != (ssize_t)rsp_len)
			_exit(1);
	}
}

int main(int argc, char **argv)
{
	double seconds = 1.0;
	int ccpu = -1, scpu = -1, quiet = 0, opt;
	size_t req_len = 12, rsp_len = 28;
	char *end;

	while ((opt = getopt(argc, argv, "t:c:s:r:R:q")) != -1) {
		switch (opt) {
		case 't':
			seconds = strtod(optarg, &end);
			if (*end || seconds <= 0)
				die("bad -t '%s'", optarg);
			break;
		case 'c':
			ccpu = parse_int(optarg, "-c", 0, CPU_SETSIZE - 1);
			break;
		case 's':
			scpu = parse_int(optarg, "-s", 0, CPU_SETSIZE - 1);
			break;
		case 'r':
			req_len = (size_t)parse_int(optarg, "-r", 1, 4096);
			break;
		case 'R':
			rsp_len = (size_t)parse_int(optarg, "-R", 1, 4096);
			break;
		case 'q':
			quiet = 1;
			break;
		default:
			fprintf(stderr,
				"usage: %s [-t SECONDS] [-c CPU] [-s CPU] [-r REQ] [-R RSP] [-q]\n",
				prog);
			return 2;
		}
	}

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		die("socketpair: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		close(sv[0]);
		pin_cpu(scpu);
		serve(sv[1], rsp_len);
	}
	close(sv[1]);
	pin_cpu(ccpu);

	unsigned char req[4096], rsp[4096];
	memset(req, 0x80, sizeof(req));
	unsigned long count = 0;
	double t0 = 0, t1 = 0, stop = 0;
	for (long i = -1000;; i++) { /* 1000 warm-up round trips */
		if (i == 0) {
			t0 = now();
			stop = t0 + seconds;
		}
		if (write(sv[0], req, req_len) != (ssize_t)req_len)
			die("write: %s", strerror(errno));
		size_t have = 0;
		while (have < rsp_len) {
			ssize_t r = read(sv[0], rsp + have, sizeof(rsp) - have);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				die("read: %s", r < 0 ? strerror(errno) : "echo server went away");
			have += (size_t)r;
		}
		if (i >= 0) {
			count++;
			t1 = now();
			if (t1 >= stop)
				break;
		}
	}
	close(sv[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	double rate = (double)count / (t1 - t0);
	if (quiet)
		printf("%.1f\n", rate);
	else
		printf("unix socket round trip (%zu/%zu bytes): %lu in %.3f s: %.1f/s (%.2f us "
		       "each)\n",
		       req_len, rsp_len, count, t1 - t0, rate, 1e6 * (t1 - t0) / (double)count);
	return 0;
}
