/*
 * priv_proto.c — encoding and decoding of the parent↔listener messages (priv_proto.h).
 */
#include "vtpmmgrd/priv_proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/cursor.h"
#include "common/errmsg.h"

static bool is_instance_type(uint16_t t)
{
	return t == MGR_OPEN || t == MGR_OPEN_CONFIRM || t == MGR_COMMIT || t == MGR_CLOSE ||
	       t == MGR_RESUME;
}

size_t priv_encode(const struct priv_msg *m, uint8_t *buf)
{
	struct wcursor w;
	size_t n;

	wc_init(&w, buf, PRIV_MSG_MAX);
	wc_u8(&w, m->kind);
	wc_u64(&w, m->id);
	switch (m->kind) {
	case PRIV_REQUEST:
		wc_u32(&w, (uint32_t)m->sender);
		wc_u16(&w, m->type);
		wc_bytes(&w, m->req.u.inst.uuid, 16);
		wc_u64(&w, m->req.u.inst.version);
		wc_bytes(&w, m->req.u.inst.digest, 32);
		wc_bytes(&w, m->req.u.inst.proof, 32);
		wc_bytes(&w, m->req.u.inst.nonce, 32);
		break;
	case PRIV_REFUSED:
		n = strnlen(m->text, PRIV_TEXT_MAX);
		wc_u32(&w, (uint32_t)m->sender);
		wc_u16(&w, m->type);
		wc_u32(&w, m->status);
		wc_u8(&w, m->named ? 1 : 0);
		wc_u16(&w, (uint16_t)n);
		wc_bytes(&w, m->text, n);
		break;
	default:
		break;
	}
	return w.failed ? 0 : w.pos;
}

static int decode_request(struct rcursor *c, struct priv_msg *m, char *err, size_t errlen)
{
	uint32_t sender;

	if (rc_remaining(c) != PRIV_REQUEST_LEN - 9)
		return errmsg(err, errlen, "request of %zu bytes, not %d", rc_remaining(c) + 9,
			      PRIV_REQUEST_LEN);
	rc_u32(c, &sender);
	rc_u16(c, &m->type);
	memset(&m->req, 0, sizeof(m->req));
	m->req.type = m->type;
	rc_bytes(c, m->req.u.inst.uuid, 16);
	rc_u64(c, &m->req.u.inst.version);
	rc_bytes(c, m->req.u.inst.digest, 32);
	rc_bytes(c, m->req.u.inst.proof, 32);
	rc_bytes(c, m->req.u.inst.nonce, 32);
	if (c->failed)
		return errmsg(err, errlen, "request cut short");
	if (sender > INT32_MAX)
		return errmsg(err, errlen, "sender pid %u out of range", sender);
	m->sender = (pid_t)sender;
	if (!is_instance_type(m->type))
		return errmsg(err, errlen, "request type 0x%04x is not an instance request",
			      m->type);
	return 0;
}

static int decode_refused(struct rcursor *c, struct priv_msg *m, char *err, size_t errlen)
{
	uint32_t sender;
	uint16_t n;
	uint8_t named;
	size_t i;

	rc_u32(c, &sender);
	rc_u16(c, &m->type);
	rc_u32(c, &m->status);
	rc_u8(c, &named);
	rc_u16(c, &n);
	if (c->failed)
		return errmsg(err, errlen, "refusal cut short");
	if (n > PRIV_TEXT_MAX || rc_remaining(c) != n)
		return errmsg(err, errlen, "refusal text of %u bytes with %zu left (at most %d)", n,
			      rc_remaining(c), PRIV_TEXT_MAX);
	rc_bytes(c, m->text, n);
	m->text[n] = '\0';
	if (sender > INT32_MAX)
		return errmsg(err, errlen, "sender pid %u out of range", sender);
	m->sender = (pid_t)sender;
	if (named > 1)
		return errmsg(err, errlen, "refusal flag %u is not 0 or 1", named);
	m->named = named == 1;
	if (m->status != MGR_ERR_MALFORMED && m->status != MGR_ERR_UNKNOWN_TYPE)
		return errmsg(err, errlen, "refusal status %u is not malformed or unknown-type",
			      m->status);
	if (n == 0)
		return errmsg(err, errlen, "refusal without a reason");
	for (i = 0; i < n; i++)
		if ((unsigned char)m->text[i] < 0x20 || m->text[i] == 0x7f)
			return errmsg(err, errlen, "refusal text has a control byte at %zu", i);
	return 0;
}

int priv_decode(const uint8_t *buf, size_t len, bool to_parent, struct priv_msg *m, char *err,
		size_t errlen)
{
	struct rcursor c;

	memset(m, 0, offsetof(struct priv_msg, req));
	m->text[0] = '\0';
	if (len > PRIV_MSG_MAX)
		return errmsg(err, errlen, "message of %zu bytes (at most %d)", len, PRIV_MSG_MAX);
	rc_init(&c, buf, len);
	if (rc_u8(&c, &m->kind) < 0 || rc_u64(&c, &m->id) < 0)
		return errmsg(err, errlen, "message of %zu bytes has no header", len);
	if (m->id == 0)
		return errmsg(err, errlen, "connection id 0");
	switch (m->kind) {
	case PRIV_CONN:
	case PRIV_DROP:
		if (to_parent)
			return errmsg(err, errlen, "kind %u is not sent to the parent", m->kind);
		break;
	case PRIV_GONE:
		if (!to_parent)
			return errmsg(err, errlen, "kind %u is not sent to the listener", m->kind);
		break;
	case PRIV_REQUEST:
		if (!to_parent)
			return errmsg(err, errlen, "kind %u is not sent to the listener", m->kind);
		return decode_request(&c, m, err, errlen);
	case PRIV_REFUSED:
		if (!to_parent)
			return errmsg(err, errlen, "kind %u is not sent to the listener", m->kind);
		return decode_refused(&c, m, err, errlen);
	default:
		return errmsg(err, errlen, "unknown kind %u", m->kind);
	}
	if (rc_expect_end(&c) < 0)
		return errmsg(err, errlen, "%zu bytes after a kind %u message", rc_remaining(&c),
			      m->kind);
	return 0;
}

int priv_send(int fd, const struct priv_msg *m, int fd_pass)
{
	uint8_t buf[PRIV_MSG_MAX];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct iovec iov = {.iov_base = buf, .iov_len = priv_encode(m, buf)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	if (iov.iov_len == 0) {
		errno = EMSGSIZE;
		return -1;
	}
	if (fd_pass >= 0) {
		struct cmsghdr *c;

		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = sizeof(cbuf.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd_pass, sizeof(int));
	}
	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if ((size_t)n != iov.iov_len) {
		errno = EMSGSIZE;
		return -1;
	}
	return 0;
}

ssize_t priv_recv(int fd, uint8_t *buf, int *fd_got)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} cbuf;
	struct iovec iov = {.iov_base = buf, .iov_len = PRIV_MSG_MAX + 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *c;
	ssize_t n;

	if (fd_got) {
		*fd_got = -1;
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = sizeof(cbuf.buf);
	}
	do
		n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
	while (n < 0 && errno == EINTR);
	if (n < 0 || !fd_got)
		return n;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t k, nfd;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (k = 0; k < nfd; k++) {
			int pfd;

			memcpy(&pfd, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
			if (*fd_got < 0)
				*fd_got = pfd;
			else
				close(pfd); /* one descriptor per message, never more */
		}
	}
	return n;
}
