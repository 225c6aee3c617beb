/*
 * client.c — one request, one response over the manager's admin socket (unix
 * SOCK_SEQPACKET), bounded by --timeout from connect to the last byte of the answer.
 *
 * The answer is untrusted: it must fit MGR_MAX_MSG (a longer datagram is detected with
 * MSG_TRUNC, not silently cut), parse with mgr_parse, answer the request's type and carry
 * MGR_F_STATUS. Anything else is "the manager answered nonsense" (exit 2), never a crash.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/cursor.h"
#include "vtpmctl/vtpmctl.h"

static uint8_t reqbuf[MGR_MAX_MSG];

uint8_t *ctl_reqbuf(void)
{
	return reqbuf;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ctl_connect(struct ctl *c, int *out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = c->timeout_ms / 1000,
			     .tv_usec = c->timeout_ms % 1000 * 1000};
	const char *path = c->admin_socket;
	struct stat st;
	int fd, e;

	*out = -1;
	if (strlen(path) >= sizeof(sa.sun_path))
		return ctl_fail(c, EXIT_USAGE, -1, "admin socket path %s is too long", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (stat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
		return ctl_fail(c, EXIT_UNREACHABLE, -1,
				"cannot reach the manager: %s exists but is not a socket", path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ctl_fail(c, EXIT_LOCAL, -1, "socket: %s", strerror(errno));
	/* a unix connect waits for room in the listener's backlog: bounded by SO_SNDTIMEO */
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		*out = fd;
		return EXIT_OK;
	}
	e = errno;
	close(fd);
	switch (e) {
	case ENOENT:
		ctl_fail(c, EXIT_UNREACHABLE, -1,
			 "cannot reach the manager: admin socket %s does not exist (is vtpmmgrd "
			 "running? see --admin-socket)",
			 path);
		break;
	case ECONNREFUSED:
		ctl_fail(c, EXIT_UNREACHABLE, -1,
			 "cannot reach the manager: connection refused on %s (no vtpmmgrd listens "
			 "there)",
			 path);
		break;
	case EACCES:
	case EPERM:
		ctl_fail(c, EXIT_UNREACHABLE, -1,
			 "cannot reach the manager: permission denied on %s (run as root or as a "
			 "member of the socket's group)",
			 path);
		break;
	case EPROTOTYPE:
		ctl_fail(c, EXIT_UNREACHABLE, -1,
			 "cannot reach the manager: %s is not a SOCK_SEQPACKET socket (not an "
			 "admin socket of vtpmmgrd?)",
			 path);
		break;
	case EAGAIN:
	case ETIMEDOUT:
		ctl_fail(c, EXIT_UNREACHABLE, -1,
			 "cannot reach the manager: %s accepted no connection within %d s", path,
			 c->timeout_ms / 1000);
		break;
	case ENOTDIR:
		ctl_fail(c, EXIT_UNREACHABLE, -1,
			 "cannot reach the manager: a component of %s is not a directory", path);
		break;
	default:
		ctl_fail(c, EXIT_UNREACHABLE, -1, "cannot reach the manager at %s: %s", path,
			 strerror(e));
	}
	return EXIT_UNREACHABLE;
}

/* Wait for the answer until deadline; returns its length or -1 after reporting. */
static ssize_t receive(struct ctl *c, int fd, long long deadline, const char *what)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	ssize_t n;
	int r;

	for (;;) {
		long long left = deadline - now_ms();

		if (left <= 0) {
			ctl_fail(
			    c, EXIT_UNREACHABLE, -1,
			    "%s: the manager did not answer within %d s (the request may still "
			    "take effect)",
			    what, c->timeout_ms / 1000);
			return -1;
		}
		r = poll(&p, 1, left > 1000000 ? 1000000 : (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ctl_fail(c, EXIT_LOCAL, -1, "poll: %s", strerror(errno));
			return -1;
		}
		if (r == 0)
			continue;
		n = recv(fd, c->resp, MGR_MAX_MSG, MSG_TRUNC | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			ctl_fail(c, EXIT_UNREACHABLE, -1, "%s: receiving the answer: %s", what,
				 strerror(errno));
			return -1;
		}
		if (n == 0) {
			ctl_fail(c, EXIT_UNREACHABLE, -1,
				 "%s: the manager closed the connection without answering (see its "
				 "log)",
				 what);
			return -1;
		}
		if ((size_t)n > MGR_MAX_MSG) {
			ctl_fail(c, EXIT_UNREACHABLE, -1,
				 "%s: the manager's answer of %zd bytes exceeds the %u-byte limit",
				 what, n, MGR_MAX_MSG);
			return -1;
		}
		return n;
	}
}

int ctl_request_fd(struct ctl *c, int fd, struct mgr_builder *b, const char *what)
{
	long long deadline = now_ms() + c->timeout_ms;
	uint16_t type = be16_get(b->buf);
	size_t len = mgr_build_finish(b);
	char err[256], text[MGR_MAX_TEXT + 1];
	uint32_t status;
	ssize_t n;

	if (len == 0) {
		close(fd);
		return ctl_fail(c, EXIT_LOCAL, -1, "%s: the request does not fit in %u bytes", what,
				MGR_MAX_MSG);
	}
	n = send(fd, b->buf, len, MSG_NOSIGNAL);
	if (n != (ssize_t)len) {
		int e = errno;

		close(fd);
		if (n >= 0)
			return ctl_fail(c, EXIT_UNREACHABLE, -1, "%s: short send to the manager",
					what);
		if (e == EAGAIN)
			return ctl_fail(c, EXIT_UNREACHABLE, -1,
					"%s: the manager took no request within %d s", what,
					c->timeout_ms / 1000);
		return ctl_fail(c, EXIT_UNREACHABLE, -1, "%s: sending to the manager: %s", what,
				strerror(e));
	}
	n = receive(c, fd, deadline, what);
	close(fd);
	if (n < 0)
		return EXIT_UNREACHABLE;
	c->resp_len = (size_t)n;
	if (mgr_parse(c->resp, c->resp_len, c->msg, err, sizeof(err)) < 0)
		return ctl_fail(c, EXIT_UNREACHABLE, -1,
				"%s: the manager's answer is malformed: %s", what, err);
	if (c->msg->type != (type | MGR_RESPONSE))
		return ctl_fail(c, EXIT_UNREACHABLE, -1,
				"%s: the manager answered with type 0x%04x to a request of type "
				"0x%04x",
				what, c->msg->type, type);
	if (mgr_get_u32(c->msg, MGR_F_STATUS, &status) < 0)
		return ctl_fail(c, EXIT_UNREACHABLE, -1, "%s: the manager's answer has no status",
				what);
	if (status == MGR_OK)
		return EXIT_OK;
	if (mgr_get_text(c->msg, MGR_F_MESSAGE, text, sizeof(text)) == 0)
		return ctl_refused(c, status, what, text);
	return ctl_refused(c, status, what, NULL);
}

int ctl_request(struct ctl *c, struct mgr_builder *b, const char *what)
{
	int fd, rc = ctl_connect(c, &fd);

	if (rc != EXIT_OK)
		return rc;
	return ctl_request_fd(c, fd, b, what);
}

void reclist_free(struct reclist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->rec[i]);
	free(l->rec);
	free(l->len);
	memset(l, 0, sizeof(*l));
}

static int reclist_add(struct reclist *l, const uint8_t *p, size_t n)
{
	uint8_t **rec;
	size_t *len;
	uint8_t *copy;

	rec = realloc(l->rec, (l->n + 1) * sizeof(*rec));
	if (rec)
		l->rec = rec;
	len = realloc(l->len, (l->n + 1) * sizeof(*len));
	if (len)
		l->len = len;
	copy = malloc(n ? n : 1);
	if (!rec || !len || !copy) {
		free(copy);
		return -1;
	}
	memcpy(copy, p, n);
	l->rec[l->n] = copy;
	l->len[l->n] = n;
	l->n++;
	return 0;
}

int ctl_list(struct ctl *c, uint16_t type, void (*fill)(struct mgr_builder *b, const void *arg),
	     const void *arg, bool paging, const char *what, struct reclist *out)
{
	memset(out, 0, sizeof(*out));
	for (;;) {
		struct mgr_builder b;
		size_t i, got = 0;
		int rc;

		mgr_build_init(&b, ctl_reqbuf(), MGR_MAX_MSG, type);
		if (fill)
			fill(&b, arg);
		if (paging && out->n > 0)
			mgr_put_u32(&b, MGR_F_OFFSET, (uint32_t)out->n);
		rc = ctl_request(c, &b, what);
		if (rc) {
			reclist_free(out);
			return rc;
		}
		for (i = 0; i < c->msg->nfields; i++) {
			const struct mgr_field_view *f = &c->msg->f[i];

			if (f->tag != MGR_F_RECORD)
				continue;
			if (reclist_add(out, f->val, f->len) < 0) {
				reclist_free(out);
				return ctl_fail(c, EXIT_LOCAL, -1, "out of memory");
			}
			got++;
		}
		if (!mgr_has(c->msg, MGR_F_MORE))
			return EXIT_OK;
		if (!paging) {
			out->truncated = true;
			return EXIT_OK;
		}
		if (got == 0 || out->n >= CTL_LIST_MAX) {
			reclist_free(out);
			return ctl_fail(c, EXIT_UNREACHABLE, -1,
					"%s: the manager says more records follow but %s", what,
					got == 0 ? "sent none in this answer"
						 : "the list exceeds a million records");
		}
	}
}
