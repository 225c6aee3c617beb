#include "common/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/errmsg.h"
#include "common/log.h"
#include "common/sock.h"

int daemon_open_nofollow(const char *what, const char *path, int flags, mode_t mode, bool allow_chr,
			 char *err, size_t errlen)
{
	struct stat st;
	int fd, fl;

	/* O_NONBLOCK: a FIFO planted at path must not hang the open; cleared below. */
	fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, mode);
	if (fd < 0) {
		int e = errno;
		if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
			return errmsg(err, errlen,
				      "refusing the %s %s: it is a symbolic link (links are never "
				      "followed to the files a daemon writes)",
				      what, path);
		if (e == ENXIO && lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
			return errmsg(err, errlen, "refusing the %s %s: it is not a regular file",
				      what, path);
		return errmsg(err, errlen, "cannot open the %s %s: %s", what, path, strerror(e));
	}
	if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || (allow_chr && S_ISCHR(st.st_mode)))) {
		close(fd);
		return errmsg(err, errlen, "refusing the %s %s: it is not a regular file", what,
			      path);
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		int e = errno;
		close(fd);
		return errmsg(err, errlen, "cannot open the %s %s: %s", what, path, strerror(e));
	}
	return fd;
}

int daemon_open_log(const char *path, bool truncate, char *err, size_t errlen)
{
	return daemon_open_nofollow("log file", path,
				    O_WRONLY | O_CREAT | O_APPEND | (truncate ? O_TRUNC : 0), 0600,
				    true, err, errlen);
}

/* An existing pid file: a regular file with one link, emptied. */
static int reopen_pid(const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd, e;

	fd = daemon_open_nofollow("pid file", path, O_WRONLY, 0, false, err, errlen);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		e = errno;
		close(fd);
		return errmsg(err, errlen, "cannot open the pid file %s: %s", path, strerror(e));
	}
	if (st.st_nlink != 1) {
		close(fd);
		return errmsg(err, errlen,
			      "refusing the pid file %s: it has %lu hard links (it would overwrite "
			      "another file)",
			      path, (unsigned long)st.st_nlink);
	}
	if (ftruncate(fd, 0) < 0) {
		e = errno;
		close(fd);
		return errmsg(err, errlen, "cannot empty the pid file %s: %s", path, strerror(e));
	}
	return fd;
}

int daemon_write_pid(const char *path, int fd, bool newline, char *err, size_t errlen)
{
	char buf[32];
	int n, e;

	if (!path && fd < 0)
		return 0;
	n = snprintf(buf, sizeof(buf), "%ld%s", (long)getpid(), newline ? "\n" : "");
	if (path) {
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd >= 0 && fchmod(fd, 0644) < 0) {
			e = errno;
			close(fd);
			return errmsg(err, errlen, "cannot set the mode of the pid file %s: %s",
				      path, strerror(e));
		}
		if (fd < 0 && errno != EEXIST)
			return errmsg(err, errlen, "cannot create the pid file %s: %s", path,
				      strerror(errno));
		if (fd < 0 && (fd = reopen_pid(path, err, errlen)) < 0)
			return -1;
	}
	if (sock_write_full(fd, buf, (size_t)n) < 0) {
		e = errno;
		close(fd);
		if (path)
			return errmsg(err, errlen, "cannot write the pid file %s: %s", path,
				      strerror(e));
		return errmsg(err, errlen, "cannot write the pid to descriptor %d: %s", fd,
			      strerror(e));
	}
	close(fd);
	return 0;
}

int daemon_start(int *ready_fd, int died_status, char *err, size_t errlen)
{
	uint8_t code;
	ssize_t n;
	pid_t pid;
	int p[2], e;

	if (pipe2(p, O_CLOEXEC) < 0)
		return errmsg(err, errlen, "--daemon: pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0) {
		e = errno;
		close(p[0]);
		close(p[1]);
		return errmsg(err, errlen, "--daemon: fork: %s", strerror(e));
	}
	if (pid > 0) {
		close(p[1]);
		while ((n = read(p[0], &code, 1)) < 0 && errno == EINTR)
			;
		_exit(n == 1 ? code : died_status);
	}
	close(p[0]);
	*ready_fd = p[1];
	setsid();
	return 0;
}

void daemon_ready(int *ready_fd, int status)
{
	uint8_t c = (uint8_t)status;
	int nul;

	if (*ready_fd < 0)
		return;
	if (status == 0) {
		/* before the parent exits: whoever waits for its output sees the end now */
		nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 1);
			if (log_fd() != 2)
				dup2(nul, 2);
			if (nul > 2)
				close(nul);
		}
	}
	if (write(*ready_fd, &c, 1) < 0) {
		/* the parent is gone; nothing to tell */
	}
	close(*ready_fd);
	*ready_fd = -1;
}

int daemon_signalfd(const int *sigs, size_t n, int flags, char *err, size_t errlen)
{
	sigset_t set;
	size_t i;
	int fd;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	for (i = 0; i < n; i++)
		if (sigaddset(&set, sigs[i]) < 0)
			return errmsg(err, errlen, "signal %d: %s", sigs[i], strerror(errno));
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return errmsg(err, errlen, "cannot block the stop signals: %s", strerror(errno));
	fd = signalfd(-1, &set, SFD_CLOEXEC | flags);
	if (fd < 0)
		return errmsg(err, errlen, "signalfd: %s", strerror(errno));
	return fd;
}

int daemon_make_parent(const char *path, mode_t mode, char *err, size_t errlen)
{
	char dir[4096];
	char *slash;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return errmsg(err, errlen, "%.64s...: the path is too long", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, mode) < 0 && errno != EEXIST)
		return errmsg(err, errlen, "cannot create directory %s: %s", dir, strerror(errno));
	return 0;
}
