#include "vtpmd/pairing.h"

#include <errno.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/errmsg.h"
#include "common/log.h"

int pairing_open(struct pairing *p, uint32_t pid, char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	p->pidfd = -1;
	if (pid == 0 || pid > INT32_MAX)
		return errmsg(err, errlen, "--pair-pid %u: not a process id", pid);
	p->pidfd = pidfd_open((pid_t)pid, 0);
	if (p->pidfd < 0)
		return errmsg(err, errlen, "--pair-pid %u: %s", pid,
			      errno == ESRCH ? "no such process" : strerror(errno));
	p->pid = (pid_t)pid;
	return 0;
}

void pairing_close(struct pairing *p)
{
	if (p->pidfd >= 0)
		close(p->pidfd);
	p->pidfd = -1;
	p->pid = 0;
}

bool pairing_admit(struct pairing *p, int fd, const char *channel, bool *used)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof(cred)) {
		log_warn("refused a %s connection: its peer cannot be identified", channel);
		return false;
	}
	if (cred.pid != p->pid) {
		log_warnx("refused a %s connection from pid %ld (uid %lu): this vtpmd is paired "
			  "with pid %ld",
			  channel, (long)cred.pid, (unsigned long)cred.uid, (long)p->pid);
		return false;
	}
	if (*used) {
		log_warnx("refused a second %s connection from the paired pid %ld: one for its "
			  "life",
			  channel, (long)p->pid);
		return false;
	}
	*used = true;
	return true;
}
