#include "vtpmmgrd/peer_identity.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/cursor.h"

#define PEERSEC_MAX 4096

bool peer_alive(int pidfd)
{
	struct pollfd pfd = {.fd = pidfd, .events = POLLIN};

	if (pidfd < 0 || pidfd_send_signal(pidfd, 0, NULL, 0) < 0)
		return false;
	/* A pidfd polls readable once its process exited (a zombie still takes signal 0). */
	return poll(&pfd, 1, 0) == 0;
}

/* The process start time in clock ticks since boot (field 22 of /proc/PID/stat). */
static int start_ticks(pid_t pid, uint64_t *ticks)
{
	char path[64], buf[1024];
	const char *p;
	ssize_t n;
	int fd, field;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* comm (field 2) may hold spaces and parentheses: count from the last ')' */
	p = strrchr(buf, ')');
	if (!p)
		return -1;
	for (field = 2; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return -1;
	}
	return sscanf(p + 1, "%" SCNu64, ticks) == 1 ? 0 : -1;
}

static int pin_by_peerpidfd(int fd, struct peer *p)
{
	socklen_t len = sizeof(int);
	int pidfd = -1;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0 || len != sizeof(int))
		return -1;
	p->pidfd = pidfd;
	return 0;
}

static int pin_by_pid(struct peer *p, int64_t accept_boot_ns, char *err, size_t errlen)
{
	long hz = sysconf(_SC_CLK_TCK);
	uint64_t ticks;

	p->pidfd = pidfd_open(p->pid, 0);
	if (p->pidfd < 0) {
		snprintf(err, errlen, "peer pid %ld: pidfd_open: %s (it exited)", (long)p->pid,
			 strerror(errno));
		return -1;
	}
	if (hz <= 0 || start_ticks(p->pid, &ticks) < 0) {
		snprintf(err, errlen, "peer pid %ld: cannot read its start time", (long)p->pid);
		return -1;
	}
	/* one tick of slack for rounding: a reused pid starts after the accept */
	if (accept_boot_ns > 0 && (int64_t)(ticks * (1000000000ull / (uint64_t)hz)) >
				      accept_boot_ns + 1000000000ll / hz) {
		snprintf(err, errlen,
			 "peer pid %ld started after the connection was accepted: the pid was "
			 "reused",
			 (long)p->pid);
		return -1;
	}
	return 0;
}

/* The pid a pidfd refers to, from /proc/self/fdinfo ("Pid:"); -1 if it exited. */
static pid_t pidfd_pid(int pidfd)
{
	char path[64], buf[2048], *line;
	long pid = -1;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	line = strstr(buf, "\nPid:");
	if (!line || sscanf(line + 5, "%ld", &pid) != 1)
		return -1;
	return (pid_t)pid;
}

static int read_peersec(int fd, struct peer *p, char *err, size_t errlen)
{
	char small[256], *buf = small;
	socklen_t len = sizeof(small);
	size_t n, i;
	int rc = 0;

	p->has_label = false;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERSEC, buf, &len) < 0) {
		if (errno == ENOPROTOOPT)
			return 0; /* no LSM supplies labels */
		if (errno != ERANGE || len <= sizeof(small) || len > PEERSEC_MAX) {
			snprintf(err, errlen, "SO_PEERSEC: %s", strerror(errno));
			return -1;
		}
		buf = malloc(len);
		if (!buf || getsockopt(fd, SOL_SOCKET, SO_PEERSEC, buf, &len) < 0) {
			snprintf(err, errlen, "SO_PEERSEC: %s", strerror(errno ? errno : ENOMEM));
			free(buf);
			return -1;
		}
	}
	n = len;
	while (n > 0 && buf[n - 1] == '\0')
		n--;
	if (n == 0)
		goto out;
	if (n > LABEL_MAX)
		n = LABEL_MAX;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)buf[i];
		p->label[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	p->label[n] = '\0';
	p->has_label = true;
out:
	if (buf != small)
		free(buf);
	return rc;
}

int peer_identify(int fd, int64_t accept_boot_ns, struct peer *p, char *err, size_t errlen)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	pid_t pinned;

	memset(p, 0, sizeof(*p));
	p->pidfd = -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof(cred)) {
		snprintf(err, errlen, "SO_PEERCRED: %s", strerror(errno));
		return -1;
	}
	if (cred.pid <= 0) {
		snprintf(err, errlen, "SO_PEERCRED names no process (pid %ld)", (long)cred.pid);
		return -1;
	}
	p->pid = cred.pid;
	p->uid = cred.uid;
	p->gid = cred.gid;
	if (pin_by_peerpidfd(fd, p) == 0) {
		pinned = pidfd_pid(p->pidfd);
		if (pinned != p->pid) {
			snprintf(err, errlen, "peer pid %ld exited before it could be identified",
				 (long)p->pid);
			goto fail;
		}
	} else if (pin_by_pid(p, accept_boot_ns, err, errlen) < 0) {
		goto fail;
	}
	if (read_peersec(fd, p, err, errlen) < 0)
		goto fail;
	if (!peer_alive(p->pidfd)) {
		snprintf(err, errlen, "peer pid %ld exited while it was identified", (long)p->pid);
		goto fail;
	}
	return 0;
fail:
	peer_release(p);
	return -1;
}

void peer_release(struct peer *p)
{
	if (p->pidfd >= 0)
		close(p->pidfd);
	p->pidfd = -1;
}

int peer_pin(pid_t pid, char *err, size_t errlen)
{
	int pidfd;

	if (pid <= 0) {
		snprintf(err, errlen, "pid %ld is not a process id", (long)pid);
		return -1;
	}
	pidfd = pidfd_open(pid, 0);
	if (pidfd < 0) {
		snprintf(err, errlen, "no process %ld (pidfd_open: %s)", (long)pid,
			 strerror(errno));
		return -1;
	}
	if (!peer_alive(pidfd)) {
		snprintf(err, errlen, "process %ld has exited", (long)pid);
		close(pidfd);
		return -1;
	}
	return pidfd;
}

/* Open /proc/PID as a directory while the pinned process is known to be the live one. */
static int open_proc_dir(const struct peer *p, char *err, size_t errlen)
{
	char path[64];
	int dfd;

	snprintf(path, sizeof(path), "/proc/%ld", (long)p->pid);
	dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	/* alive after the open: /proc/PID was that process's directory when we opened it */
	if (!peer_alive(p->pidfd)) {
		snprintf(err, errlen, "process %ld exited while it was identified", (long)p->pid);
		close(dfd);
		return -1;
	}
	return dfd;
}

int peer_exe_digest(const struct peer *p, uint8_t digest[32], char *err, size_t errlen)
{
	EVP_MD_CTX *ctx = NULL;
	uint8_t buf[65536];
	unsigned int dlen = 0;
	int dfd, fd = -1, rc = -1;
	ssize_t n;

	dfd = open_proc_dir(p, err, errlen);
	if (dfd < 0)
		return -1;
	fd = openat(dfd, "exe", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open /proc/%ld/exe: %s", (long)p->pid,
			 strerror(errno));
		goto out;
	}
	ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		snprintf(err, errlen, "SHA-256 of /proc/%ld/exe: OpenSSL failed", (long)p->pid);
		goto out;
	}
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "reading /proc/%ld/exe: %s", (long)p->pid,
				 strerror(errno));
			goto out;
		}
		if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
			snprintf(err, errlen, "SHA-256 of /proc/%ld/exe: OpenSSL failed",
				 (long)p->pid);
			goto out;
		}
	}
	if (EVP_DigestFinal_ex(ctx, digest, &dlen) != 1 || dlen != 32) {
		snprintf(err, errlen, "SHA-256 of /proc/%ld/exe: OpenSSL failed", (long)p->pid);
		goto out;
	}
	if (!peer_alive(p->pidfd)) {
		snprintf(err, errlen, "process %ld exited while its binary was read", (long)p->pid);
		goto out;
	}
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	close(dfd);
	return rc;
}

/* Whether the "Groups:" line of a /proc/PID/status text lists gid. */
static bool groups_line_has(const char *status, gid_t gid)
{
	const char *line = strstr(status, "\nGroups:");
	struct rcursor c;
	size_t len;

	if (!line)
		return false;
	line += 8;
	len = strcspn(line, "\n");
	rc_init(&c, line, len);
	while (rc_remaining(&c) > 0) {
		uint64_t v = 0;
		bool digits = false;
		uint8_t ch;

		while (rc_remaining(&c) > 0 && rc_u8(&c, &ch) == 0 && ch >= '0' && ch <= '9') {
			digits = true;
			v = v * 10 + (uint64_t)(ch - '0');
			if (v > UINT32_MAX)
				return false;
		}
		if (digits && v == gid)
			return true;
	}
	return false;
}

int peer_in_group(const struct peer *p, gid_t gid, char *err, size_t errlen)
{
	char buf[16384];
	size_t have = 0;
	ssize_t n;
	int dfd, fd, rc = -1;

	if (p->gid == gid)
		return 1;
	dfd = open_proc_dir(p, err, errlen);
	if (dfd < 0)
		return -1;
	fd = openat(dfd, "status", O_RDONLY | O_CLOEXEC);
	close(dfd);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open /proc/%ld/status: %s", (long)p->pid,
			 strerror(errno));
		return -1;
	}
	while (have < sizeof(buf) - 1 && (n = read(fd, buf + have, sizeof(buf) - 1 - have)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "reading /proc/%ld/status: %s", (long)p->pid,
				 strerror(errno));
			close(fd);
			return -1;
		}
		have += (size_t)n;
	}
	close(fd);
	buf[have] = '\0';
	if (!peer_alive(p->pidfd)) {
		snprintf(err, errlen, "process %ld exited while its groups were read",
			 (long)p->pid);
		return -1;
	}
	rc = groups_line_has(buf, gid) ? 1 : 0;
	return rc;
}
