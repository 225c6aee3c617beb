/*
 * sockpoke — send raw bytes to a socket and print what comes back, for hostile-input tests.
 *
 *   sockpoke ADDR [--fd] [--close] HEX...
 *
 * ADDR is a unix socket path or 127.0.0.1:PORT. Each HEX argument is sent with one write
 * (with --fd the first write carries the write end of a pipe as SCM_RIGHTS). With --close
 * the write side is shut down after sending. Then the answer is read (up to 64 KiB; 2 s
 * without any data, or 300 ms of silence after some arrived, ends it) and printed as hex on one
 * line; "EOF" is printed if the peer closed without answering. Exit: 0 printed something, 2 usage,
 * 3 connect failed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/sock.h"

static int connect_addr(const char *addr)
{
	const char *colon = strrchr(addr, ':');
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd;

	if (addr[0] == '/' || !colon)
		return sock_connect_unix(addr);
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr) != 1)
		return -1;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static size_t unhex(const char *s, unsigned char *out, size_t cap)
{
	size_t n = 0;
	unsigned v;

	while (s[0] && s[1] && n < cap && sscanf(s, "%2x", &v) == 1) {
		out[n++] = (unsigned char)v;
		s += 2;
	}
	return n;
}

static int send_with_fd(int s, const unsigned char *b, size_t n)
{
	int p[2];
	union {
		struct cmsghdr h;
		char c[CMSG_SPACE(sizeof(int))];
	} u;
	struct iovec iov = {.iov_base = (void *)b, .iov_len = n};
	struct msghdr m = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.c, .msg_controllen = sizeof(u.c)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);

	if (pipe(p) < 0)
		return -1;
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &p[1], sizeof(int));
	return sendmsg(s, &m, 0) < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
	static unsigned char buf[65536];
	int i = 2, s, with_fd = 0, do_close = 0, first = 1;
	size_t total = 0;

	if (argc < 3)
		return 2;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--fd") == 0)
			with_fd = 1;
		else if (strcmp(argv[i], "--close") == 0)
			do_close = 1;
		else
			return 2;
	}
	s = connect_addr(argv[1]);
	if (s < 0) {
		fprintf(stderr, "sockpoke: cannot connect to %s: %s\n", argv[1], strerror(errno));
		return 3;
	}
	for (; i < argc; i++, first = 0) {
		size_t n = unhex(argv[i], buf, sizeof(buf));
		int rc = (with_fd && first) ? send_with_fd(s, buf, n) : (int)write(s, buf, n);
		if (rc < 0)
			break;
		usleep(20000);
	}
	if (do_close)
		shutdown(s, SHUT_WR);
	for (;;) {
		struct pollfd p = {.fd = s, .events = POLLIN};
		ssize_t r;
		if (poll(&p, 1, total ? 300 : 2000) <= 0)
			break;
		r = read(s, buf + total, sizeof(buf) - total);
		if (r <= 0)
			break;
		total += (size_t)r;
	}
	if (!total) {
		printf("EOF\n");
		return 0;
	}
	for (size_t k = 0; k < total; k++)
		printf("%02x", buf[k]);
	printf("\n");
	close(s);
	return 0;
}
