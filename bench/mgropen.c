/* bench/mgropen.c — vTPM opens per second through vtpmmgrd.
 *
 *   mgropen -a ADMIN -i INSTANCE -u UUID -l LABEL [-t SECONDS] [-r] [-q]
 *
 * Registers LABEL for this process's own pid on the admin socket ADMIN once (what a launcher
 * does before it starts a vtpmd; the process needs no LSM label then), connects to the
 * instance socket INSTANCE and repeats, for SECONDS (default 2.0): MGR_OPEN of the vTPM UUID
 * (the answer must carry its 32-byte state key), then MGR_CLOSE of it. Every answer must be
 * MGR_OK. With -r every round also connects anew and hangs up afterwards, as a starting
 * vtpmd does (the manager identifies the peer, pidfd and all, at each accept).
 * Prints the rate as "N opens/s (M in S s)", or with -q only N.
 * Exit status 0; 1 with a message naming the failed operation; 2 on a usage error.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/mgr_proto.h"

#define TIMEOUT_MS 10000

static uint8_t buf[MGR_MAX_MSG];
static struct mgr_msg msg;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "mgropen: ");
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

static int seq_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		die("socket path too long: %s", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connect %s: %s", path, strerror(errno));
	return fd;
}

/* Send len bytes of buf as one request of type, parse the answer into msg; it must be OK. */
static void round_trip(int fd, size_t len, uint16_t type, const char *op)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char err[256], text[MGR_MAX_TEXT + 1] = "";
	uint32_t status;
	ssize_t n;
	int r;

	if (len == 0)
		die("%s: the request does not fit", op);
	if (send(fd, buf, len, MSG_NOSIGNAL) != (ssize_t)len)
		die("%s: send: %s", op, strerror(errno));
	do
		r = poll(&p, 1, TIMEOUT_MS);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		die("%s: no answer within %d s", op, TIMEOUT_MS / 1000);
	n = recv(fd, buf, sizeof(buf), MSG_TRUNC);
	if (n <= 0 || (size_t)n > sizeof(buf))
		die("%s: %s", op,
		    n == 0  ? "the manager closed the connection"
		    : n < 0 ? strerror(errno)
			    : "answer too long");
	if (mgr_parse(buf, (size_t)n, &msg, err, sizeof(err)) < 0)
		die("%s: unparseable answer: %s", op, err);
	if (msg.type != (type | MGR_RESPONSE) || mgr_get_u32(&msg, MGR_F_STATUS, &status) < 0)
		die("%s: answer of type 0x%x without a status", op, msg.type);
	if (status != MGR_OK) {
		mgr_get_text(&msg, MGR_F_MESSAGE, text, sizeof(text));
		die("%s: refused: %s: %s", op, mgr_status_name(status), text);
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: mgropen -a ADMIN -i INSTANCE -u UUID -l LABEL [-t SECONDS] [-r] "
			"[-q]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	uint8_t nonce[32];
	const char *admin = NULL, *inst = NULL, *utext = NULL, *label = NULL;
	double seconds = 2.0, t0, t1, end;
	int opt, fd = -1, reconnect = 0, quiet = 0;
	unsigned long rounds = 0;
	struct mgr_builder b;
	uint8_t uuid[16];
	char *e;

	while ((opt = getopt(argc, argv, "a:i:u:l:t:rq")) != -1) {
		switch (opt) {
		case 'a':
			admin = optarg;
			break;
		case 'i':
			inst = optarg;
			break;
		case 'u':
			utext = optarg;
			break;
		case 'l':
			label = optarg;
			break;
		case 't':
			seconds = strtod(optarg, &e);
			if (*e || seconds <= 0)
				usage();
			break;
		case 'r':
			reconnect = 1;
			break;
		case 'q':
			quiet = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || !admin || !inst || !utext || !label)
		usage();
	if (uuid_from_text(utext, uuid) < 0)
		die("'%s' is not a UUID", utext);

	/* the launcher's part: register our own pid's label, once */
	fd = seq_connect(admin);
	mgr_build_init(&b, buf, sizeof(buf), MGR_LABEL_REGISTER);
	mgr_put_u32(&b, MGR_F_PID, (uint32_t)getpid());
	mgr_put_text(&b, MGR_F_LABEL, label);
	round_trip(fd, mgr_build_finish(&b), MGR_LABEL_REGISTER, "MGR_LABEL_REGISTER");
	close(fd);
	fd = -1;

	t0 = now();
	end = t0 + seconds;
	do {
		if (fd < 0)
			fd = seq_connect(inst);
		mgr_build_init(&b, buf, sizeof(buf), MGR_OPEN);
		mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
		round_trip(fd, mgr_build_finish(&b), MGR_OPEN, "MGR_OPEN");
		if (mgr_get_fixed(&msg, MGR_F_NONCE, nonce, sizeof(nonce)) < 0)
			die("MGR_OPEN: the answer carries no nonce");
		mgr_build_init(&b, buf, sizeof(buf), MGR_OPEN_CONFIRM);
		mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
		mgr_put_bytes(&b, MGR_F_NONCE, nonce, sizeof(nonce));
		round_trip(fd, mgr_build_finish(&b), MGR_OPEN_CONFIRM, "MGR_OPEN_CONFIRM");
		if (!mgr_find(&msg, MGR_F_STATE_KEY) || mgr_find(&msg, MGR_F_STATE_KEY)->len != 32)
			die("MGR_OPEN_CONFIRM: the answer carries no 32-byte state key");
		mgr_build_init(&b, buf, sizeof(buf), MGR_CLOSE);
		mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
		round_trip(fd, mgr_build_finish(&b), MGR_CLOSE, "MGR_CLOSE");
		if (reconnect) {
			close(fd);
			fd = -1;
		}
		rounds++;
		t1 = now();
	} while (t1 < end);
	if (fd >= 0)
		close(fd);
	memset(buf, 0, sizeof(buf)); /* the last answers carried a state key */
	if (quiet)
		printf("%.0f\n", (double)rounds / (t1 - t0));
	else
		printf("%.0f opens/s (%lu in %.2f s)\n", (double)rounds / (t1 - t0), rounds,
		       t1 - t0);
	return 0;
}
