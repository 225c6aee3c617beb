/* The daemons' shared plumbing (common/daemon.h): pid and log files never written through a
 * link, --daemon's ready pipe, the stop signals as a signalfd, the parent directory. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/daemon.h"
#include "unit.h"

static char dir[] = "/tmp/vtpm-test-daemon.XXXXXX";

static const char *at(const char *name)
{
	static char path[4][256];
	static int k;

	k = (k + 1) % 4;
	snprintf(path[k], sizeof(path[k]), "%s/%s", dir, name);
	return path[k];
}

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static const char *get(const char *path)
{
	static char buf[128];
	FILE *f = fopen(path, "r");
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return buf;
}

static void test_pid_file(void)
{
	char err[256], want[32];
	struct stat st;
	mode_t um;
	int p[2];

	unit_begin("pid file: created 0644 whatever the umask; an existing file is overwritten");
	um = umask(077);
	CHECKF(daemon_write_pid(at("new.pid"), -1, false, err, sizeof(err)) == 0, "%s", err);
	umask(um);
	snprintf(want, sizeof(want), "%ld", (long)getpid());
	CHECK(strcmp(get(at("new.pid")), want) == 0);
	CHECK(stat(at("new.pid"), &st) == 0 && (st.st_mode & 07777) == 0644);
	put(at("old.pid"), "12345678 stale and longer than a pid\n");
	chmod(at("old.pid"), 0600);
	CHECKF(daemon_write_pid(at("old.pid"), -1, true, err, sizeof(err)) == 0, "%s", err);
	snprintf(want, sizeof(want), "%ld\n", (long)getpid());
	CHECK(strcmp(get(at("old.pid")), want) == 0);
	CHECK(stat(at("old.pid"), &st) == 0 && (st.st_mode & 07777) == 0600); /* as it was */
	CHECK(daemon_write_pid(NULL, -1, false, err, sizeof(err)) == 0);      /* no --pid */
	unit_end();

	unit_begin("pid file: a symbolic link, a FIFO, a hard link or a directory is refused");
	put(at("target"), "keep");
	CHECK(symlink(at("target"), at("link.pid")) == 0);
	CHECKF(daemon_write_pid(at("link.pid"), -1, false, err, sizeof(err)) < 0 &&
		   strstr(err, "refusing the pid file") && strstr(err, "symbolic link"),
	       "%s", err);
	CHECK(strcmp(get(at("target")), "keep") == 0);
	CHECK(symlink(at("nowhere"), at("dangling.pid")) == 0);
	CHECK(daemon_write_pid(at("dangling.pid"), -1, false, err, sizeof(err)) < 0 &&
	      strstr(err, "symbolic link"));
	CHECK(access(at("nowhere"), F_OK) < 0); /* not created through the link */
	CHECK(mkfifo(at("fifo.pid"), 0600) == 0);
	CHECKF(daemon_write_pid(at("fifo.pid"), -1, false, err, sizeof(err)) < 0 &&
		   strstr(err, "not a regular file"),
	       "%s", err);
	CHECK(link(at("target"), at("hard.pid")) == 0);
	CHECKF(daemon_write_pid(at("hard.pid"), -1, false, err, sizeof(err)) < 0 &&
		   strstr(err, "2 hard links"),
	       "%s", err);
	CHECK(strcmp(get(at("target")), "keep") == 0);
	CHECK(mkdir(at("dir.pid"), 0700) == 0);
	CHECK(daemon_write_pid(at("dir.pid"), -1, false, err, sizeof(err)) < 0);
	CHECKF(daemon_write_pid(at("no/such/dir.pid"), -1, false, err, sizeof(err)) < 0 &&
		   strstr(err, "cannot create the pid file"),
	       "%s", err);
	unit_end();

	unit_begin("pid file: --pid fd=N is written and closed");
	if (CHECK(pipe(p) == 0)) {
		char buf[32] = "";
		ssize_t n;

		CHECKF(daemon_write_pid(NULL, p[1], false, err, sizeof(err)) == 0, "%s", err);
		CHECK(fcntl(p[1], F_GETFD) < 0); /* closed */
		n = read(p[0], buf, sizeof(buf) - 1);
		snprintf(want, sizeof(want), "%ld", (long)getpid());
		CHECK(n > 0 && strcmp(buf, want) == 0);
		close(p[0]);
	}
	unit_end();
}

static void test_log_file(void)
{
	char err[256];
	struct stat st;
	mode_t um;
	int fd;

	unit_begin("log file: created 0600, appended, never through a link; /dev/null is fine");
	put(at("log"), "old\n");
	um = umask(0);
	fd = daemon_open_log(at("new.log"), false, err, sizeof(err));
	umask(um);
	CHECKF(fd >= 0 && fstat(fd, &st) == 0 && (st.st_mode & 0777) == 0600, "%s", err);
	CHECK(fd >= 0 && (fcntl(fd, F_GETFD) & FD_CLOEXEC) && (fcntl(fd, F_GETFL) & O_APPEND));
	if (fd >= 0)
		close(fd);
	fd = daemon_open_log(at("log"), false, err, sizeof(err));
	CHECK(fd >= 0 && write(fd, "new\n", 4) == 4);
	if (fd >= 0)
		close(fd);
	CHECK(strcmp(get(at("log")), "old\nnew\n") == 0);
	fd = daemon_open_log(at("log"), true, err, sizeof(err));
	CHECK(fd >= 0 && write(fd, "x\n", 2) == 2);
	if (fd >= 0)
		close(fd);
	CHECK(strcmp(get(at("log")), "x\n") == 0);
	CHECK(symlink(at("log"), at("link.log")) == 0);
	CHECK(daemon_open_log(at("link.log"), true, err, sizeof(err)) < 0 &&
	      strstr(err, "refusing the log file") && strstr(err, "symbolic link"));
	CHECK(strcmp(get(at("log")), "x\n") == 0);
	CHECK(mkfifo(at("fifo.log"), 0600) == 0);
	CHECK(daemon_open_log(at("fifo.log"), false, err, sizeof(err)) < 0 &&
	      strstr(err, "not a regular file"));
	fd = daemon_open_log("/dev/null", false, err, sizeof(err));
	CHECKF(fd >= 0, "%s", err);
	if (fd >= 0)
		close(fd);
	unit_end();
}

/*
 * In a child (the test process must not be the parent that exits): daemon_start, then the
 * daemon waits 100 ms, leaves a mark and reports status (or, for status < 0, exits 3 without
 * a word). Returns the child's exit status, -1 if it did not exit.
 */
static int daemonized(int status, const char *mark)
{
	struct timespec t = {0, 100 * 1000 * 1000};
	char err[256];
	int ws, fd = -1;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (daemon_start(&fd, 9, err, sizeof(err)) < 0)
			_exit(100);
		if (getsid(0) != getpid())
			_exit(101);
		nanosleep(&t, NULL);
		put(mark, "up");
		if (status < 0)
			_exit(3);
		daemon_ready(&fd, status);
		if (fd != -1)
			_exit(102);
		daemon_ready(&fd, 5); /* told already: nothing */
		_exit(0);
	}
	if (waitpid(pid, &ws, 0) != pid || !WIFEXITED(ws))
		return -1;
	return WEXITSTATUS(ws);
}

static void test_daemonize(void)
{
	int fd = -1;

	unit_begin("daemonize: the parent exits with the start-up status, once it is known");
	CHECK(daemonized(0, at("mark0")) == 0 && strcmp(get(at("mark0")), "up") == 0);
	CHECK(daemonized(7, at("mark7")) == 7 && strcmp(get(at("mark7")), "up") == 0);
	CHECK(daemonized(1, at("mark1")) == 1);
	/* the daemon died before it said anything: the status given to daemon_start */
	CHECK(daemonized(-1, at("mark-died")) == 9 && strcmp(get(at("mark-died")), "up") == 0);
	daemon_ready(&fd, 0); /* not daemonized: nothing happens */
	CHECK(fd == -1 && fcntl(1, F_GETFD) >= 0);
	unit_end();
}

static void test_signals(void)
{
	static const int sigs[] = {SIGUSR1, SIGUSR2};
	struct signalfd_siginfo si;
	struct sigaction sa;
	char err[256];
	int fd;

	unit_begin("signals: the given signals arrive on the signalfd; SIGPIPE is ignored");
	fd = daemon_signalfd(sigs, 2, SFD_NONBLOCK, err, sizeof(err));
	if (!CHECKF(fd >= 0, "%s", err))
		goto out;
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	CHECK(read(fd, &si, sizeof(si)) < 0); /* nothing yet, and it does not block */
	raise(SIGUSR2);
	CHECK(read(fd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGUSR2);
	CHECK(sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN);
	close(fd);
	CHECK(daemon_signalfd((const int[]){1000}, 1, 0, err, sizeof(err)) < 0 &&
	      strstr(err, "signal 1000"));
out:
	unit_end();
}

static void test_make_parent(void)
{
	char err[256];
	struct stat st;
	mode_t um;

	unit_begin("make_parent: the missing parent is made with the mode; the rest left alone");
	um = umask(0);
	CHECKF(daemon_make_parent(at("run/x.sock"), 0750, err, sizeof(err)) == 0, "%s", err);
	umask(um);
	CHECK(stat(at("run"), &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0750);
	CHECK(chmod(at("run"), 0700) == 0);
	CHECK(daemon_make_parent(at("run/y.sock"), 0755, err, sizeof(err)) == 0);
	CHECK(stat(at("run"), &st) == 0 && (st.st_mode & 0777) == 0700); /* existing: as it is */
	CHECK(daemon_make_parent("x.sock", 0755, err, sizeof(err)) == 0);
	CHECK(daemon_make_parent("/x.sock", 0755, err, sizeof(err)) == 0);
	CHECKF(daemon_make_parent(at("a/b/c.db"), 0700, err, sizeof(err)) < 0 &&
		   strstr(err, "cannot create directory") && strstr(err, "/a/b"),
	       "%s", err);
	unit_end();
}

int main(void)
{
	if (!mkdtemp(dir)) {
		printf("FAIL: daemon: mkdtemp\n");
		return 1;
	}
	test_pid_file();
	test_log_file();
	test_daemonize();
	test_signals();
	test_make_parent();
	if (fork() == 0) {
		execlp("rm", "rm", "-rf", dir, (char *)NULL);
		_exit(1);
	}
	wait(NULL);
	return unit_exit();
}
