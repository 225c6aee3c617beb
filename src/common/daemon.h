/*
 * daemon.h — the plumbing vtpmd and vtpmmgrd share: files a daemon writes (log, pid) opened
 * without following links, --daemon with a ready pipe, the stop signals as a signalfd, and
 * the parent directory of a path. Each daemon keeps its own option syntax and policy (which
 * signals, which modes, which log levels); these functions do the system calls.
 *
 * Every function that can fail returns -1 with err set to one line that names the file.
 */
#ifndef VTPM_DAEMON_H
#define VTPM_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * open(2) with O_NOFOLLOW | O_CLOEXEC that opens only a regular file (or, when allow_chr, a
 * character device such as /dev/null): a symbolic link planted at path is refused, and so is
 * a FIFO (without hanging on it). what names the file in the message ("log file", "pid
 * file"). Returns the fd (blocking) or -1.
 */
int daemon_open_nofollow(const char *what, const char *path, int flags, mode_t mode, bool allow_chr,
			 char *err, size_t errlen);

/* A log file: appended to (emptied first when truncate), created 0600, never through a link;
 * a character device (/dev/null) is accepted. Returns the fd or -1. */
int daemon_open_log(const char *path, bool truncate, char *err, size_t errlen);

/*
 * Write the process id, in decimal (then "\n" when newline), to the file at path, or, when
 * path is NULL, to the descriptor fd (closed afterwards; swtpm's --pid fd=N).
 * The file is overwritten as swtpm does, but safely: a new one is created with O_EXCL and
 * mode 0644 (whatever the umask); an existing one is opened without following a link, must
 * be a regular file with one link (no hard link to another file), and is truncated only then.
 */
int daemon_write_pid(const char *path, int fd, bool newline, char *err, size_t errlen);

/*
 * --daemon: fork. The parent waits for the child's start-up result on a pipe and exits with
 * it: the status the child passes to daemon_ready, or died_status if the child exits (or
 * crashes) without a word. Returns 0 in the child (a new session), with *ready_fd the write
 * end of the pipe (close-on-exec); -1 if the fork or the pipe failed (no child).
 */
int daemon_start(int *ready_fd, int died_status, char *err, size_t errlen);
/*
 * Tell the waiting parent the start-up result (0: ready) and close the pipe; status 0 also
 * detaches stdin, stdout and (unless the log writes there) stderr to /dev/null. Does nothing
 * when *ready_fd < 0 (not daemonized, or told already).
 */
void daemon_ready(int *ready_fd, int status);

/* SIGPIPE ignored; the n signals in sigs blocked and returned as a signalfd (SFD_CLOEXEC and
 * flags, e.g. SFD_NONBLOCK). Returns the fd or -1. */
int daemon_signalfd(const int *sigs, size_t n, int flags, char *err, size_t errlen);

/* Create the parent directory of path with mode if it is missing (one level; an existing
 * one is left as it is). Nothing to do for a path without a directory part or under "/". */
int daemon_make_parent(const char *path, mode_t mode, char *err, size_t errlen);

#endif
