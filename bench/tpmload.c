/* bench/tpmload.c — drive a vTPM's data channel with one TPM 2.0 command in a loop.
 *
 *   tpmload [-t SECONDS] [-p CPU] [-w MS] [-W N] [-T SECONDS] [-c CTRL [-i]] [-q] TARGET COMMAND
 *
 * TARGET is a unix socket path (anything containing '/') or HOST:PORT (numeric IPv4, e.g.
 * 127.0.0.1:2321). COMMAND is one of
 *   getrandom  TPM2_GetRandom(16)
 *   extend     TPM2_PCR_Extend(PCR 16, sha256), password session
 *   hash       TPM2_Hash(32 bytes, sha256, TPM_RH_NULL)
 *   nvwrite    TPM2_NV_DefineSpace of a 64-byte ordinary index once (owner auth), then
 *              TPM2_NV_Write of 64 bytes (TPM_RC_NV_DEFINED from the define is accepted)
 *   pcrread    TPM2_PCR_Read(PCR 16, sha256)
 *   startup    TPM2_Startup(CLEAR) once; TPM_RC_INITIALIZE counts as success
 *   getcap     no data channel: TARGET is the *control* socket; send CMD_GET_CAPABILITY once
 * Options:
 *   -t SECONDS  measuring time (default 1.0); the rate is printed as commands/second
 *   -p CPU      pin this process to CPU
 *   -w MS       keep retrying to connect for up to MS milliseconds (default 2000)
 *   -W N        warm-up commands before measuring (default 200)
 *   -T SECONDS  give up if one response takes longer than this (default 10)
 *   -c CTRL     control socket (path or HOST:PORT); with -i send CMD_INIT(0) before starting
 *   -q          print only the rate (or nothing for startup/getcap)
 *   -l          also measure each command's latency: print its median and 99th percentile
 *               in microseconds (with -q: "RATE P50 P99")
 * Exit status 0 on success; 1 with a message naming the failed operation otherwise.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tpmcmd.h"

#define CMD_GETCAP_NAME	   "getcap"
#define PTM_GET_CAPABILITY 0x01u
#define PTM_INIT	   0x02u
#define RSP_BUF		   4096u

static const char *prog = "tpmload";

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
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		die("cannot pin to CPU %d: %s", cpu, strerror(errno));
}

/* One connection attempt; returns the fd, or -1 with errno set. */
static int connect_once(const char *target, int *is_tcp)
{
	const char *colon = strrchr(target, ':');
	int fd;
	if (strchr(target, '/') || !colon) {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		if (strlen(target) >= sizeof(sun.sun_path))
			die("unix socket path too long: %s", target);
		memcpy(sun.sun_path, target, strlen(target) + 1);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			die("socket(AF_UNIX): %s", strerror(errno));
		*is_tcp = 0;
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
			return fd;
	} else {
		struct sockaddr_in sin = {.sin_family = AF_INET};
		char host[64];
		char *end;
		size_t hl = (size_t)(colon - target);
		long port = strtol(colon + 1, &end, 10);
		if (hl >= sizeof(host) || *end || port <= 0 || port > 65535)
			die("bad HOST:PORT target '%s'", target);
		memcpy(host, target, hl);
		host[hl] = 0;
		if (strcmp(host, "localhost") == 0)
			strcpy(host, "127.0.0.1");
		if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
			die("bad IPv4 address '%s' in target '%s'", host, target);
		sin.sin_port = htons((uint16_t)port);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			die("socket(AF_INET): %s", strerror(errno));
		*is_tcp = 1;
		if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0)
			return fd;
	}
	int e = errno;
	close(fd);
	errno = e;
	return -1;
}

static int connect_target(const char *target, int wait_ms, double io_timeout)
{
	double deadline = now() + wait_ms / 1000.0;
	int is_tcp = 0, fd;
	for (;;) {
		fd = connect_once(target, &is_tcp);
		if (fd >= 0)
			break;
		if (errno != ECONNREFUSED && errno != ENOENT && errno != EAGAIN && errno != EINTR)
			die("connect to %s: %s", target, strerror(errno));
		if (now() >= deadline)
			die("connect to %s: %s (gave up after %d ms)", target, strerror(errno),
			    wait_ms);
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	int one = 1;
	if (is_tcp && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
		die("setsockopt(TCP_NODELAY): %s", strerror(errno));
	struct timeval tv = {(time_t)io_timeout,
			     (suseconds_t)((io_timeout - (double)(time_t)io_timeout) * 1e6)};
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
		die("setsockopt(SO_RCVTIMEO/SO_SNDTIMEO): %s", strerror(errno));
	return fd;
}

static void write_all(int fd, const uint8_t *p, size_t n, const char *op)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			die("%s: sending the command timed out", op);
		if (w <= 0)
			die("%s: sending the command: %s", op,
			    w < 0 ? strerror(errno) : "short write");
		p += w;
		n -= (size_t)w;
	}
}

/* Read until `want` bytes are in buf (want = 0: a TPM response, size from its header). */
static size_t read_rsp(int fd, uint8_t *buf, size_t cap, size_t want, const char *op)
{
	size_t have = 0;
	for (;;) {
		size_t need = want;
		if (!need) {
			need = TPM_RSP_HEADER;
			if (have >= TPM_RSP_HEADER) {
				need = be32(buf + 2);
				if (need < TPM_RSP_HEADER || need > cap)
					die("%s: response header announces %zu bytes (allowed "
					    "%u..%zu)",
					    op, need, TPM_RSP_HEADER, cap);
			}
		}
		if (have >= need)
			return have;
		ssize_t r = read(fd, buf + have, cap - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			die("%s: no response (got %zu of %zu bytes before the timeout)", op, have,
			    need);
		if (r < 0)
			die("%s: reading the response: %s", op, strerror(errno));
		if (r == 0)
			die("%s: connection closed after %zu of %zu response bytes", op, have,
			    need);
		have += (size_t)r;
		if (want && have > want)
			die("%s: %zu response bytes, expected %zu", op, have, want);
	}
}

static unsigned long retries; /* TPM_RC_RETRY answers, re-sent */

/* Send one TPM command and check the answer; returns the response code (0 or ok_rc).
 * TPM_RC_RETRY ("the TPM was not able to start the command"; libtpms 0.9 returns it once
 * after it wrote pending dictionary-attack data to NV) is answered by sending again. */
static uint32_t transact(int fd, const char *op, const uint8_t *cmd, size_t len,
			 const struct tpm_expect *e, uint32_t ok_rc)
{
	static uint8_t rsp[RSP_BUF];
	char err[256];
	for (int attempt = 0;; attempt++) {
		write_all(fd, cmd, len, op);
		size_t n = read_rsp(fd, rsp, sizeof(rsp), 0, op);
		if (n != be32(rsp + 2))
			die("%s: %zu bytes received, response header says %u", op, n,
			    be32(rsp + 2));
		if (n == TPM_RSP_HEADER && be32(rsp + 6) == TPM_RC_RETRY && attempt < 100) {
			retries++;
			continue;
		}
		long rc = tpm_check_rsp(op, rsp, n, e, ok_rc, err, sizeof(err));
		if (rc < 0)
			die("%s", err);
		return (uint32_t)rc;
	}
}

/* Control channel: u32 BE command code + body; returns the first u32 (the result). */
static uint32_t ctrl_cmd(int fd, uint32_t code, const uint8_t *body, size_t blen, size_t rlen,
			 const char *op, uint8_t *rsp)
{
	uint8_t req[16];
	req[0] = (uint8_t)(code >> 24);
	req[1] = (uint8_t)(code >> 16);
	req[2] = (uint8_t)(code >> 8);
	req[3] = (uint8_t)code;
	if (blen)
		memcpy(req + 4, body, blen);
	write_all(fd, req, 4 + blen, op);
	read_rsp(fd, rsp, rlen, rlen, op);
	return be32(rsp);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: %s [-t SECONDS] [-p CPU] [-w MS] [-W N] [-T SECONDS] [-c CTRL [-i]] [-q] "
		"TARGET {getrandom|extend|hash|pcrread|nvwrite|startup|getcap}\n",
		prog);
	exit(2);
}

/* Per-command latencies (seconds), for percentiles. */
struct lat_log {
	double *v;
	size_t n, cap;
};

static void lat_add(struct lat_log *l, double d)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 4096;
		double *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			die("out of memory for latencies");
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = d;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double lat_pct(struct lat_log *l, unsigned pct)
{
	size_t i;

	if (!l->n)
		return 0;
	qsort(l->v, l->n, sizeof(*l->v), cmp_double);
	i = (l->n * pct + 99) / 100;
	return l->v[i ? i - 1 : 0];
}

int main(int argc, char **argv)
{
	double seconds = 1.0, io_timeout = 10.0;
	int cpu = -1, wait_ms = 2000, warmup = 200, quiet = 0, do_init = 0, lat = 0, opt;
	const char *ctrl = NULL;
	char *end;

	while ((opt = getopt(argc, argv, "t:p:w:W:T:c:iql")) != -1) {
		switch (opt) {
		case 't':
			seconds = strtod(optarg, &end);
			if (*end || seconds <= 0)
				die("bad -t '%s'", optarg);
			break;
		case 'p':
			cpu = (int)strtol(optarg, &end, 10);
			if (*end || cpu < 0)
				die("bad -p '%s'", optarg);
			break;
		case 'w':
			wait_ms = (int)strtol(optarg, &end, 10);
			if (*end || wait_ms < 0)
				die("bad -w '%s'", optarg);
			break;
		case 'W':
			warmup = (int)strtol(optarg, &end, 10);
			if (*end || warmup < 0)
				die("bad -W '%s'", optarg);
			break;
		case 'T':
			io_timeout = strtod(optarg, &end);
			if (*end || io_timeout <= 0)
				die("bad -T '%s'", optarg);
			break;
		case 'c':
			ctrl = optarg;
			break;
		case 'i':
			do_init = 1;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'l':
			lat = 1;
			break;
		default:
			usage();
		}
	}
	if (argc - optind != 2)
		usage();
	const char *target = argv[optind], *cmdname = argv[optind + 1];
	if (cpu >= 0)
		pin_cpu(cpu);

	if (strcmp(cmdname, CMD_GETCAP_NAME) == 0) {
		uint8_t rsp[8];
		int fd = connect_target(target, wait_ms, io_timeout);
		uint32_t res =
		    ctrl_cmd(fd, PTM_GET_CAPABILITY, NULL, 0, 8, "CMD_GET_CAPABILITY", rsp);
		if (res != 0)
			die("CMD_GET_CAPABILITY: result 0x%x", res);
		if (!quiet)
			printf("capabilities 0x%08x\n", be32(rsp + 4));
		close(fd);
		return 0;
	}
	enum bench_cmd c = bench_cmd_parse(cmdname);
	if (c == CMD_NONE)
		usage();
	if (do_init && !ctrl)
		die("-i needs the control socket (-c CTRL)");

	if (ctrl) {
		int cfd = connect_target(ctrl, wait_ms, io_timeout);
		if (do_init) {
			uint8_t rsp[4], flags[4] = {0, 0, 0, 0};
			uint32_t res = ctrl_cmd(cfd, PTM_INIT, flags, 4, 4, "CMD_INIT", rsp);
			if (res != 0)
				die("CMD_INIT: result 0x%x", res);
		}
		close(cfd);
	}

	int fd = connect_target(target, wait_ms, io_timeout);
	struct tbuf t;
	struct tpm_expect e;

	if (c == CMD_STARTUP) {
		size_t n = bench_build(c, &t, &e);
		uint32_t rc = transact(fd, "TPM2_Startup(CLEAR)", t.b, n, &e, TPM_RC_INITIALIZE);
		if (!quiet)
			printf("TPM2_Startup(CLEAR): %s\n",
			       rc ? "TPM_RC_INITIALIZE (already started)" : "ok");
		close(fd);
		return 0;
	}
	if (c == CMD_NVWRITE) {
		struct tpm_expect de = {TPM_ST_SESSIONS, 10 + 4 + 5};
		size_t n = tpm2_nv_define(&t, BENCH_NV_INDEX, BENCH_NV_SIZE);
		uint32_t rc = transact(fd, "TPM2_NV_DefineSpace", t.b, n, &de, TPM_RC_NV_DEFINED);
		if (rc && !quiet)
			fprintf(stderr, "%s: note: NV index 0x%08x already defined, reusing it\n",
				prog, BENCH_NV_INDEX);
	}

	size_t n = bench_build(c, &t, &e);
	if (!n)
		die("internal error: command buffer overflow");
	const char *op = bench_cmd_tpmname[c];
	uint64_t iter = (uint64_t)time(NULL) << 32; /* differs from an earlier run's data */
	for (int i = 0; i < warmup; i++) {
		bench_vary(c, t.b, iter++);
		transact(fd, op, t.b, n, &e, TPM_RC_SUCCESS);
	}

	unsigned long count = 0;
	double t0 = now(), t1 = t0, stop = t0 + seconds, tc;
	struct lat_log ll = {0};
	do {
		bench_vary(c, t.b, iter++);
		tc = t1;
		transact(fd, op, t.b, n, &e, TPM_RC_SUCCESS);
		count++;
		t1 = now();
		if (lat)
			lat_add(&ll, t1 - tc);
	} while (t1 < stop);
	close(fd);

	double rate = (double)count / (t1 - t0);
	if (retries)
		fprintf(stderr, "%s: note: %lu TPM_RC_RETRY answers were re-sent\n", prog, retries);
	if (quiet && lat)
		printf("%.1f %.0f %.0f\n", rate, 1e6 * lat_pct(&ll, 50), 1e6 * lat_pct(&ll, 99));
	else if (quiet)
		printf("%.1f\n", rate);
	else
		printf("%s: %lu commands in %.3f s: %.1f commands/s (%.2f us each)\n", cmdname,
		       count, t1 - t0, rate, 1e6 * (t1 - t0) / (double)count);
	if (lat && !quiet)
		printf("%s: latency p50 %.0f us, p99 %.0f us\n", cmdname, 1e6 * lat_pct(&ll, 50),
		       1e6 * lat_pct(&ll, 99));
	free(ll.v);
	return 0;
}
