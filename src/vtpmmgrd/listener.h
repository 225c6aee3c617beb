/*
 * listener.h — vtpmmgrd's unprivileged listener: the one process that reads what local
 * processes write to the instance socket.
 *
 * The instance socket is open to every local user. So the bytes sent on it are parsed in a
 * process of its own that holds nothing worth taking: started by fork and exec of vtpmmgrd's
 * own executable (a fresh image: none of the parent's memory, keys or descriptors), as an
 * unprivileged user when the manager runs as root, non-dumpable, with no descriptor but its
 * end of a socketpair to the parent, a log descriptor and the connections the parent hands
 * it, and a seccomp filter that allows reading, writing and closing descriptors, memory, time
 * and exit — no open, no socket, no exec, no signals to others.
 *
 *   parent                                   listener
 *   accept, identify the peer (SO_PEERCRED,
 *   pidfd, label, binary digest), admit it
 *   CONN id + descriptor           ───────▶  read its datagrams, parse, decode
 *                                  ◀───────  REQUEST / REFUSED / GONE  (priv_proto.h)
 *   handle, answer on its own copy
 *   of the connection (a state key never
 *   passes the listener), or close: DROP ──▶ close
 *
 * The parent never reads a byte a peer wrote on the instance socket. If the listener dies,
 * the parent closes every instance connection (vtpmd reconnects and resumes) and starts a
 * new listener.
 */
#ifndef VTPM_LISTENER_H
#define VTPM_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LISTENER_ARG	       "--listener-child" /* argv[1] of the listener process */
#define LISTENER_DEFAULT_USER  "vtpmmgrd"
#define LISTENER_FALLBACK_USER "nobody"

struct listener {
	pid_t pid;	  /* the running listener, 0 if none */
	int fd;		  /* the parent's end of the socketpair, -1 if none */
	int exe_fd;	  /* vtpmmgrd's own executable, opened at start (fexecve) */
	bool switch_user; /* the manager runs as root: the listener runs as uid/gid */
	uid_t uid;
	gid_t gid;
	char user[64];
	bool killed;	     /* the parent killed it (it misbehaved): its loss is expected */
	int64_t started_ms;  /* CLOCK_MONOTONIC of the last start */
	unsigned fast_exits; /* exits within a second of their start, in a row */
};

/* Open the executable and resolve the listener's user: user, or (NULL) vtpmmgrd's own
 * system user if it exists, else nobody (with a warning). Only when running as root; as
 * another user the listener keeps that uid. 0, or -1 with err. */
int listener_prepare(struct listener *l, const char *user, char *err, size_t errlen);
/* Start a listener (l->pid, l->fd). 0, or -1 with err. */
int listener_spawn(struct listener *l, char *err, size_t errlen);
/* The listener's end of the stream was seen: reap it (l->pid 0, l->fd closed) and log how it
 * ended. Returns the ms to wait before the next start (0: now). */
int listener_lost(struct listener *l);
/* Stop it (close the socketpair: it exits), reap it, close the executable. */
void listener_close(struct listener *l);

/* The listener process: argv as listener_spawn builds it. Returns its exit status. */
int listener_main(int argc, char **argv);

#endif
