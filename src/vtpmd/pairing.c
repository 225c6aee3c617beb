#include "vtpmd/pairing.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>

#include "common/errmsg.h"
#include "common/label_match.h"
#include "common/log.h"

/* The LSM label of process pid (0: this one) from /proc/PID/attr/current, "" if none. */
static void lsm_label(pid_t pid, char *out, size_t cap)
{
	char path[64];
	ssize_t n;
	int fd;

	out[0] = '\0';
	if (pid)
		snprintf(path, sizeof(path), "/proc/%ld/attr/current", (long)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/attr/current");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, out, cap - 1);
	close(fd);
	if (n <= 0) {
		out[0] = '\0';
		return;
	}
	out[n] = '\0';
	out[strcspn(out, "\n")] = '\0'; /* SELinux ends it with a NUL, AppArmor with a newline */
}

bool pairing_labels_agree(const char *self, const char *peer)
{
	if (label_check(self, NULL, 0) < 0)
		return true; /* no labels here (none, or not user:role:type ones) */
	return label_same_user(self, peer);
}

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
	lsm_label(0, p->label, sizeof(p->label));
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
	if (p->label[0]) {
		char peer[sizeof(p->label)];

		lsm_label(cred.pid, peer, sizeof(peer));
		if (!pairing_labels_agree(p->label, peer)) {
			log_warnx("refused a %s connection from the paired pid %ld: its label '%s' "
				  "does not have the user field of this vtpmd's '%s'",
				  channel, (long)p->pid, peer, p->label);
			return false;
		}
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
