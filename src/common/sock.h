/*
 * sock.h — socket helpers. Servers listen on unix sockets or on loopback only.
 */
#ifndef VTPM_SOCK_H
#define VTPM_SOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Listen on a unix stream socket at path (a stale socket file is replaced); mode: file mode
 * of the socket, 0 for 0600 (the umask plays no part); uid/gid: -1 to leave unchanged. */
int sock_listen_unix(const char *path, mode_t mode, uid_t uid, gid_t gid, char *err, size_t errlen);
/* Listen on TCP bindaddr:port; bindaddr must be a loopback address (127.0.0.0/8 or ::1). */
int sock_listen_tcp(const char *bindaddr, uint16_t port, char *err, size_t errlen);
/* Connect to a unix stream socket (clients and tests). */
int sock_connect_unix(const char *path);
/* Whether text is a loopback IPv4/IPv6 literal or "localhost". */
int sock_addr_is_loopback(const char *addr);

/* Read exactly n bytes, waiting at most timeout_ms for each chunk (-1: forever).
 * Returns n, 0 on EOF before any byte, -1 on error/timeout/EOF mid-way (errno set). */
ssize_t sock_read_full(int fd, void *buf, size_t n, int timeout_ms);
/* Write all n bytes (retries on EINTR and short writes). */
int sock_write_full(int fd, const void *buf, size_t n);
/* One recvmsg that also accepts a single SCM_RIGHTS fd (*fd_out = -1 if none; extra fds
 * are closed). Returns bytes read, 0 on EOF, -1 on error. */
ssize_t sock_recv_fd(int fd, void *buf, size_t n, int *fd_out);
/* Wait until fd is readable: 1 readable, 0 timeout, -1 error. */
int sock_wait_readable(int fd, int timeout_ms);

#endif
