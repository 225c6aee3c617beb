/*
 * seqpacket.h — the manager protocol's transport: unix SOCK_SEQPACKET sockets, one
 * datagram per message.
 *
 * The listening sockets have SO_PASSCRED set (accepted sockets inherit it), so the kernel
 * attaches the actual sender's credentials to every datagram: a connection handed on to
 * another process (SCM_RIGHTS) shows up as a different sender pid than the connector's.
 * Received file descriptors (SCM_RIGHTS) are closed at once: no request carries any.
 */
#ifndef VTPM_SEQPACKET_H
#define VTPM_SEQPACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Listen at path (a stale socket file is replaced, any other file is refused) with the
 * file mode and group (gid -1: unchanged). Non-blocking, close-on-exec. -1 with err. */
int seqpacket_listen(const char *path, mode_t mode, gid_t gid, char *err, size_t errlen);
/* Receive one datagram into buf (cap bytes; use one more than the largest message, so an
 * oversized one is detected): returns its length (> cap if truncated, then *truncated), 0
 * at end of stream (or an empty datagram), -1 with errno (EAGAIN: nothing yet).
 * *sender: the pid the kernel attached (0 if none). */
ssize_t seqpacket_recv(int fd, void *buf, size_t cap, bool *truncated, pid_t *sender);
/* Send one datagram without blocking; -1 if it could not be sent whole. */
int seqpacket_send(int fd, const void *buf, size_t len);
/* Connect (clients and tests). */
int seqpacket_connect(const char *path);

#endif
