/*
 * listener.c — start the listener (parent side) and the listener process itself
 * (listener.h explains the split).
 */
#include "vtpmmgrd/listener.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/parse_num.h"
#include "common/seccomp_filter.h"
#include "vtpmmgrd/manager.h"
#include "vtpmmgrd/priv_proto.h"
#include "vtpmmgrd/seqpacket.h"

extern char **environ;

#define PRIV_FD 3 /* the listener's end of the socketpair, in the listener */
#define LOG_FD	4 /* its log, when the parent's is not stderr */
#define EXE_FD	5 /* in the child before the exec: vtpmmgrd's executable */

static int64_t mono_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- the parent's side --------------------------------------------------------------- */

int listener_prepare(struct listener *l, const char *user, char *err, size_t errlen)
{
	const struct passwd *pw = NULL;

	l->pid = 0;
	l->fd = -1;
	l->exe_fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (l->exe_fd < 0) {
		snprintf(err, errlen, "cannot open /proc/self/exe (to start the listener): %s",
			 strerror(errno));
		return -1;
	}
	if (geteuid() != 0) {
		if (user) {
			snprintf(err, errlen, "--listener-user %s: only root can switch users",
				 user);
			return -1;
		}
		return 0;
	}
	if (user) {
		pw = getpwnam(user);
		if (!pw) {
			snprintf(err, errlen, "--listener-user %s: no such user", user);
			return -1;
		}
	} else if ((pw = getpwnam(LISTENER_DEFAULT_USER)) == NULL) {
		pw = getpwnam(LISTENER_FALLBACK_USER);
		if (!pw) {
			snprintf(err, errlen,
				 "neither user %s nor %s exists for the listener: create one "
				 "(useradd --system --no-create-home --shell /usr/sbin/nologin %s) "
				 "or name one with --listener-user",
				 LISTENER_DEFAULT_USER, LISTENER_FALLBACK_USER,
				 LISTENER_DEFAULT_USER);
			return -1;
		}
		log_warnx("user %s does not exist: the listener runs as %s, which other programs "
			  "may share (create it: useradd --system --no-create-home --shell "
			  "/usr/sbin/nologin %s)",
			  LISTENER_DEFAULT_USER, LISTENER_FALLBACK_USER, LISTENER_DEFAULT_USER);
	}
	if (pw->pw_uid == 0) {
		snprintf(err, errlen, "the listener's user %s is root: name another", pw->pw_name);
		return -1;
	}
	l->switch_user = true;
	l->uid = pw->pw_uid;
	l->gid = pw->pw_gid;
	snprintf(l->user, sizeof(l->user), "%s", pw->pw_name);
	return 0;
}

int listener_spawn(struct listener *l, char *err, size_t errlen)
{
	char a_uid[24], a_gid[24], a_level[16], a_log[16];
	char *argv[] = {"vtpmmgrd", LISTENER_ARG, a_log, a_level, a_uid, a_gid, NULL};
	int sp[2], logfd = log_fd();
	sigset_t none;
	pid_t pid;

	snprintf(a_uid, sizeof(a_uid), "%ld", l->switch_user ? (long)l->uid : -1L);
	snprintf(a_gid, sizeof(a_gid), "%ld", l->switch_user ? (long)l->gid : -1L);
	snprintf(a_level, sizeof(a_level), "%d", log_level());
	snprintf(a_log, sizeof(a_log), "%d", logfd == 2 || logfd < 0 ? logfd : LOG_FD);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		return -1;
	}
	sigemptyset(&none);
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(sp[0]);
		close(sp[1]);
		return -1;
	}
	if (pid == 0) {
		/* async-signal-safe calls only: the parent has threads */
		int p = fcntl(sp[1], F_DUPFD_CLOEXEC, 10);
		int lg = logfd > 2 ? fcntl(logfd, F_DUPFD_CLOEXEC, 10) : logfd;
		int ex = fcntl(l->exe_fd, F_DUPFD_CLOEXEC, 10);

		if (p < 0 || ex < 0 || dup2(p, PRIV_FD) < 0 ||
		    (logfd > 2 && (lg < 0 || dup2(lg, LOG_FD) < 0)) ||
		    dup3(ex, EXE_FD, O_CLOEXEC) < 0)
			_exit(127);
		close_range(EXE_FD + 1, ~0U, 0); /* the store, the host TPM: never inherited */
		sigprocmask(SIG_SETMASK, &none, NULL);
		fexecve(EXE_FD, argv, environ);
		_exit(127);
	}
	close(sp[1]);
	/* the parent never waits on it for long (to_listener in main.c) */
	if (fcntl(sp[0], F_SETFL, O_NONBLOCK) < 0)
		log_warn("listener socketpair: O_NONBLOCK");
	l->pid = pid;
	l->fd = sp[0];
	l->killed = false;
	l->started_ms = mono_ms();
	log_debug("listener started: pid %ld%s%s", (long)pid, l->switch_user ? ", user " : "",
		  l->switch_user ? l->user : "");
	return 0;
}

int listener_lost(struct listener *l)
{
	int status = 0;
	pid_t r;

	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	if (l->pid <= 0)
		return 0;
	/* it closed its end: it exits now, or is being killed */
	do
		r = waitpid(l->pid, &status, 0);
	while (r < 0 && errno == EINTR);
	if (r == l->pid && WIFSIGNALED(status))
		log_warnx("the listener (pid %ld) was killed by signal %d%s: instance connections "
			  "are closed (vtpmd reconnects); starting a new one",
			  (long)l->pid, WTERMSIG(status),
			  WTERMSIG(status) == SIGSYS ? " (a call its seccomp filter forbids)" : "");
	else
		log_warnx("the listener (pid %ld) exited with status %d: instance connections are "
			  "closed (vtpmd reconnects); starting a new one",
			  (long)l->pid,
			  r == l->pid && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	l->pid = 0;
	if (mono_ms() - l->started_ms < 1000)
		l->fast_exits++;
	else
		l->fast_exits = 0;
	/* one that dies at once again and again: do not spin */
	return l->fast_exits == 0 ? 0 : l->fast_exits > 5 ? 5000 : 200 * (int)l->fast_exits;
}

void listener_close(struct listener *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	if (l->pid > 0) {
		/* it exits at the end of its socketpair; a stopped one is killed after 1 s */
		pid_t r = 0;

		for (int k = 0; k < 100 && (r = waitpid(l->pid, NULL, WNOHANG)) == 0; k++)
			nanosleep(&(struct timespec){.tv_nsec = 10 * 1000000}, NULL);
		if (r == 0 && kill(l->pid, SIGKILL) == 0) /* not reaped yet: the pid is still its */
			while (waitpid(l->pid, NULL, 0) < 0 && errno == EINTR)
				;
		l->pid = 0;
	}
	if (l->exe_fd >= 0)
		close(l->exe_fd);
	l->exe_fd = -1;
}

/* ---- the listener process ------------------------------------------------------------ */

struct lconn {
	uint64_t id;
	int fd;
	bool refused; /* a refusal was passed on: nothing more is read; the parent drops it */
};

struct lstate {
	int priv;
	struct lconn *v;
	size_t n, cap;
	struct pollfd *pfds;
	size_t pfds_cap;
	uint8_t *rbuf; /* MGR_MAX_MSG + 1 */
	uint8_t pbuf[PRIV_MSG_MAX + 1];
	struct mgr_msg *scratch;
	struct priv_msg *out; /* the message being sent */
	bool stalled;	      /* out could not be sent yet: nothing more is read meanwhile */
};

/* Everything the listener does once confined: I/O on the descriptors it has, memory, time,
 * and exit. */
static const char *const listener_calls[] = {
    "read",	     "write",
    "readv",	     "writev",
    "close",	     "recvmsg",
    "recvfrom",	     "sendmsg",
    "sendto",	     "poll",
    "ppoll",	     "brk",
    "munmap",	     "mremap",
    "madvise",	     "futex",
    "getpid",	     "gettid",
    "clock_gettime", "gettimeofday",
    "rt_sigreturn",  "restart_syscall",
    "exit",	     "exit_group",
    "getrandom",
};

static int confine(uid_t uid, gid_t gid, bool switch_user)
{
	const struct seccomp_cond conds[] = {
	    /* memory, never executable */
	    {.name = "mmap", .arg = 2, .mask = PROT_EXEC, .value = 0},
	    {.name = "mprotect", .arg = 2, .mask = PROT_EXEC, .value = 0},
	    /* abort() signals this process only */
	    {.name = "tgkill", .arg = 0, .mask = ~0ULL, .value = (uint64_t)getpid()},
	};
	struct rlimit rl;
	char err[256];

	/* every connection costs a descriptor: as many as the parent may have */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (switch_user) {
		if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
		    setresuid(uid, uid, uid) < 0) {
			log_warn("cannot switch to uid %lu gid %lu", (unsigned long)uid,
				 (unsigned long)gid);
			return -1;
		}
		if (setuid(0) == 0) {
			log_warnx("root could be regained after the switch to uid %lu",
				  (unsigned long)uid);
			return -1;
		}
	}
	/* after the switch, which resets it: no ptrace or /proc/PID/mem by the same uid */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	rl = (struct rlimit){0, 0};
	setrlimit(RLIMIT_CORE, &rl);
	if (chdir("/") < 0)
		log_warn("chdir /");
	if (seccomp_filter_load(listener_calls, sizeof(listener_calls) / sizeof(listener_calls[0]),
				conds, sizeof(conds) / sizeof(conds[0]), false, err,
				sizeof(err)) < 0) {
		log_warnx("%s", err);
		return -1;
	}
	return 0;
}

static struct lconn *find(struct lstate *s, uint64_t id)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->v[i].id == id)
			return &s->v[i];
	return NULL;
}

static void remove_conn(struct lstate *s, struct lconn *c)
{
	close(c->fd);
	*c = s->v[--s->n];
}

/* Send s->out (on EAGAIN keep it, and read nothing more until it is sent). -1: the parent
 * is gone. */
static int send_out(struct lstate *s)
{
	if (priv_send(s->priv, s->out, -1) == 0) {
		s->stalled = false;
		return 0;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		s->stalled = true;
		return 0;
	}
	log_warn("cannot reach the parent");
	return -1;
}

/* The parent's messages: new connections and dropped ones. -1: the parent is gone. */
static int from_parent(struct lstate *s)
{
	struct priv_msg in;
	char err[256];
	ssize_t n;
	int fd;

	for (;;) {
		n = priv_recv(s->priv, s->pbuf, &fd);
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		if (n == 0)
			return -1;
		if (priv_decode(s->pbuf, (size_t)n, false, &in, err, sizeof(err)) < 0) {
			log_warnx("from the parent: %s", err);
			if (fd >= 0)
				close(fd);
			return -1;
		}
		if (in.kind == PRIV_CONN) {
			if (fd < 0) {
				log_warnx("from the parent: a connection without its descriptor");
				return -1;
			}
			if (s->n == s->cap) {
				size_t cap = s->cap ? 2 * s->cap : 64;
				struct lconn *v = realloc(s->v, cap * sizeof(*v));

				if (!v) {
					log_warnx("out of memory");
					close(fd);
					return -1;
				}
				s->v = v;
				s->cap = cap;
			}
			s->v[s->n++] = (struct lconn){.id = in.id, .fd = fd};
		} else {
			struct lconn *c = find(s, in.id);

			if (fd >= 0)
				close(fd);
			if (c)
				remove_conn(s, c);
		}
	}
}

/* One datagram of connection c: pass on what it is. -1: the parent is gone. */
static int from_peer(struct lstate *s, struct lconn *c)
{
	struct req_refusal why;
	struct priv_msg *m = s->out;
	bool truncated;
	pid_t sender;
	ssize_t n;

	n = seqpacket_recv(c->fd, s->rbuf, MGR_MAX_MSG + 1, &truncated, &sender);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	memset(m, 0, offsetof(struct priv_msg, req));
	m->id = c->id;
	m->sender = sender;
	if (n <= 0) {
		m->kind = PRIV_GONE;
		remove_conn(s, c);
		return send_out(s);
	}
	if (mgrd_decode(s->scratch, REQ_INSTANCE, s->rbuf, truncated ? MGR_MAX_MSG : (size_t)n,
			truncated, &m->req, &why) == 0) {
		m->kind = PRIV_REQUEST;
		m->type = m->req.type;
	} else {
		m->kind = PRIV_REFUSED;
		m->type = why.type;
		m->status = why.status;
		m->named = why.named;
		snprintf(m->text, sizeof(m->text), "%s", why.msg);
		c->refused = true;
	}
	return send_out(s);
}

static int serve(struct lstate *s)
{
	for (;;) {
		size_t i, n = 1 + (s->stalled ? 0 : s->n);

		if (n > s->pfds_cap) {
			size_t cap = n + 64;
			struct pollfd *p = realloc(s->pfds, cap * sizeof(*p));

			if (!p) {
				log_warnx("out of memory");
				return 1;
			}
			s->pfds = p;
			s->pfds_cap = cap;
		}
		s->pfds[0] = (struct pollfd){
		    .fd = s->priv, .events = (short)(POLLIN | (s->stalled ? POLLOUT : 0))};
		for (i = 1; i < n; i++)
			s->pfds[i] = (struct pollfd){
			    .fd = s->v[i - 1].refused ? -1 : s->v[i - 1].fd, .events = POLLIN};
		if (poll(s->pfds, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_warn("poll");
			return 1;
		}
		if (s->pfds[0].revents & (POLLOUT | POLLERR | POLLHUP)) {
			if (s->stalled && send_out(s) < 0)
				return 0;
		}
		if (s->pfds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			if (from_parent(s) < 0)
				return 0; /* the parent closed its end: it stops, or restarts us */
			continue;	  /* the table may have changed */
		}
		/* connections, last first: removing one moves the last into its slot */
		for (i = n - 1; i >= 1 && !s->stalled; i--) {
			if (!s->pfds[i].revents || i - 1 >= s->n)
				continue;
			if (from_peer(s, &s->v[i - 1]) < 0)
				return 0;
		}
	}
}

static int arg_num(const char *s, int64_t lo, int64_t hi, int64_t *v)
{
	char err[128];

	return parse_num_i64("listener argument", s, lo, hi, v, err, sizeof(err));
}

int listener_main(int argc, char **argv)
{
	struct lstate s = {.priv = PRIV_FD};
	int64_t logfd, level, uid, gid;
	int rc;

	if (argc != 6 || arg_num(argv[2], -1, INT_MAX, &logfd) < 0 ||
	    arg_num(argv[3], 0, LOG_LVL_DEBUG, &level) < 0 ||
	    arg_num(argv[4], -1, INT32_MAX, &uid) < 0 ||
	    arg_num(argv[5], -1, INT32_MAX, &gid) < 0) {
		fprintf(stderr, "vtpmmgrd: %s is vtpmmgrd's own; not for use by hand\n",
			LISTENER_ARG);
		return 1;
	}
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	log_init("vtpmmgrd-listener", (int)logfd, (int)level);
	if (fcntl(PRIV_FD, F_SETFL, O_NONBLOCK) < 0) {
		log_warn("the parent's socket");
		return 1;
	}
	/* nothing but stdio, the socketpair and the log */
	close_range(logfd == LOG_FD ? LOG_FD + 1 : PRIV_FD + 1, ~0U, 0);
	s.rbuf = malloc(MGR_MAX_MSG + 1);
	s.scratch = malloc(sizeof(*s.scratch));
	s.out = malloc(sizeof(*s.out));
	if (!s.rbuf || !s.scratch || !s.out) {
		log_warnx("out of memory");
		return 1;
	}
	if (confine((uid_t)uid, (gid_t)gid, uid >= 0) < 0)
		return 1;
	log_debug("confined%s: serving the instance socket's connections",
		  uid >= 0 ? " as an unprivileged user" : "");
	rc = serve(&s);
	while (s.n > 0)
		remove_conn(&s, &s.v[s.n - 1]);
	free(s.v);
	free(s.pfds);
	free(s.rbuf);
	free(s.scratch);
	free(s.out);
	return rc;
}
