/*
 * priv_proto.h — the messages between vtpmmgrd's key-holding parent and its listener.
 *
 * The listener (listener.c) is the only process that reads a byte a vtpmd or any other
 * local process writes to the instance socket. It parses and decodes each datagram
 * (mgr_parse, mgr_request_decode) and passes on what it found as one of the messages
 * below, over a SOCK_SEQPACKET socketpair; the parent decodes them here, with the cursor,
 * and trusts nothing in them it can check itself (who the peer is, it learnt at accept).
 *
 *   parent → listener
 *     CONN  id                 a new instance connection, its descriptor attached
 *                              (SCM_RIGHTS); the listener reads from it from now on
 *     DROP  id                 the parent closed that connection: close it too
 *   listener → parent
 *     REQUEST id sender type body   a well-formed instance request (body: below)
 *     REFUSED id sender type status named text
 *                              a datagram that does not parse or decode, or is not an
 *                              instance request: the parent answers it, counts it and
 *                              closes the connection (dispatch.c's rules)
 *     GONE  id                 the peer closed the connection (or it failed)
 *
 * Every message: u8 kind, u64 connection id (the parent's, never reused), then per kind:
 *   REQUEST  u32 sender pid (SCM_CREDENTIALS, 0 if none), u16 request type (one of
 *            the instance socket's: OPEN, OPEN_CONFIRM, COMMIT, CLOSE, RESUME),
 *            uuid[16], u64 version, digest[32], proof[32], nonce[32]
 *            (the fields a type does not take are zero)
 *   REFUSED  u32 sender pid, u16 the datagram's type (0 if none), u32 status
 *            (MGR_ERR_MALFORMED or MGR_ERR_UNKNOWN_TYPE), u8 named (the type is a
 *            request's: audit under its name), u16 text length, text (the reason)
 *   CONN, DROP, GONE: nothing more.
 * Big-endian integers; a message is exactly as long as its fields: anything else is refused.
 * Replies never pass here: the parent writes them to its own copy of the connection, so
 * no state key ever reaches the listener.
 */
#ifndef VTPM_PRIV_PROTO_H
#define VTPM_PRIV_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vtpmmgrd/request.h"

enum priv_kind {
	PRIV_CONN = 1,
	PRIV_DROP = 2,
	PRIV_REQUEST = 3,
	PRIV_REFUSED = 4,
	PRIV_GONE = 5,
};

#define PRIV_TEXT_MAX	 767 /* a refusal's reason, bytes (REPLY_MSG_MAX - 1, manager.h) */
#define PRIV_REQUEST_LEN (1 + 8 + 4 + 2 + 16 + 8 + 32 * 3)
/* The largest message: a REFUSED with a text of PRIV_TEXT_MAX bytes. */
#define PRIV_MSG_MAX (1 + 8 + 4 + 2 + 4 + 1 + 2 + PRIV_TEXT_MAX)

struct priv_msg {
	uint8_t kind;
	uint64_t id;
	pid_t sender;  /* REQUEST, REFUSED */
	uint16_t type; /* REQUEST: an instance request type; REFUSED: the datagram's, or 0 */
	/* REQUEST */
	struct mgr_request req; /* req.type == type; only the instance fields are used */
	/* REFUSED */
	uint32_t status;
	bool named;
	char text[PRIV_TEXT_MAX + 1];
};

/* Encode m into buf (PRIV_MSG_MAX bytes); returns the length. A REQUEST's fields come from
 * req.u.inst; a text longer than PRIV_TEXT_MAX is cut. */
size_t priv_encode(const struct priv_msg *m, uint8_t *buf);

/*
 * Decode one message received by `to_parent` (true: the parent reads what the listener
 * sent) into m: the kind must be one that direction carries, a REQUEST's type an instance
 * request (m->req is filled in as mgr_request_decode would), a REFUSED's status one of the
 * two and its text printable, the id not 0. 0, or -1 with the reason in err.
 */
int priv_decode(const uint8_t *buf, size_t len, bool to_parent, struct priv_msg *m, char *err,
		size_t errlen);

/* Send m on fd (blocking or not, as fd is), with fd_pass attached when >= 0 (CONN).
 * 0, or -1 with errno (EAGAIN: not now). */
int priv_send(int fd, const struct priv_msg *m, int fd_pass);
/* Receive one message from fd into buf (PRIV_MSG_MAX + 1 bytes). *fd_got: a descriptor
 * that came with it (-1 if none; only when fd_got is non-NULL, else any is closed by the
 * kernel). Returns the length (> PRIV_MSG_MAX: too long), 0 at the end of the stream, -1
 * with errno. */
ssize_t priv_recv(int fd, uint8_t *buf, int *fd_got);

#endif
