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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/cursor.h"
#include "common/errmsg.h"

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
int peer_start_ticks(pid_t pid, uint64_t *ticks)
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
	if (hz <= 0 || peer_start_ticks(p->pid, &ticks) < 0) {
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
	int saved;

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
	saved = errno;
	peer_release(p);
	errno = saved;
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

/*
 * The binary digest cache: one SHA-256 per executable file, not per open. Keyed by what
 * fstat says of the file opened through /proc/PID/exe (device, inode, size, mtime, ctime:
 * any write changes mtime and ctime, and ctime cannot be set back without changing the
 * clock). A file whose ctime is less than PEER_DIGEST_FRESH_S old is hashed but not cached:
 * on a file system with coarse time stamps a second change within the same tick would keep
 * the key. At most PEER_DIGEST_CACHE entries; the least recently used one is replaced.
 */

static bool same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

static bool same_file(const struct peer_digest_entry *e, const struct stat *st)
{
	return e->used && e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
	       same_time(&e->mtime, &st->st_mtim) && same_time(&e->ctime, &st->st_ctim);
}

static struct peer_digest_entry *digest_find(struct peer_digests *dc, const struct stat *st)
{
	size_t i;

	for (i = 0; i < PEER_DIGEST_CACHE; i++)
		if (same_file(&dc->v[i], st))
			return &dc->v[i];
	return NULL;
}

static void digest_put(struct peer_digests *dc, const struct stat *st, const uint8_t digest[32])
{
	struct peer_digest_entry *e = &dc->v[0];
	struct timespec now;
	size_t i;

	clock_gettime(CLOCK_REALTIME, &now);
	if (st->st_ctim.tv_sec + PEER_DIGEST_FRESH_S > now.tv_sec)
		return;
	for (i = 1; i < PEER_DIGEST_CACHE && e->used; i++)
		if (dc->v[i].used < e->used)
			e = &dc->v[i];
	e->dev = st->st_dev;
	e->ino = st->st_ino;
	e->size = st->st_size;
	e->mtime = st->st_mtim;
	e->ctime = st->st_ctim;
	memcpy(e->digest, digest, 32);
	e->used = ++dc->clock;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* SHA-256 of the open regular file fd of st->st_size bytes: exactly that many bytes must be
 * read (a file that grows or shrinks meanwhile is refused), within PEER_DIGEST_TIME_MS. */
static int hash_file(int fd, pid_t pid, const struct stat *st, uint8_t digest[32], char *err,
		     size_t errlen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t buf[65536];
	unsigned int dlen = 0;
	int64_t deadline = mono_ms() + PEER_DIGEST_TIME_MS;
	uint64_t total = 0;
	ssize_t n;
	int rc = -1;

	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		snprintf(err, errlen, "SHA-256 of /proc/%ld/exe: OpenSSL failed", (long)pid);
		goto out;
	}
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "reading /proc/%ld/exe: %s", (long)pid,
				 strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		total += (uint64_t)n;
		if (total > (uint64_t)st->st_size) {
			snprintf(err, errlen,
				 "/proc/%ld/exe grew past its %lld bytes while it was read",
				 (long)pid, (long long)st->st_size);
			goto out;
		}
		if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
			snprintf(err, errlen, "SHA-256 of /proc/%ld/exe: OpenSSL failed",
				 (long)pid);
			goto out;
		}
		if (mono_ms() > deadline) {
			snprintf(err, errlen,
				 "reading /proc/%ld/exe took over %d ms (%llu of %lld bytes): "
				 "refused, so that a slow file system cannot stall the manager",
				 (long)pid, PEER_DIGEST_TIME_MS, (unsigned long long)total,
				 (long long)st->st_size);
			goto out;
		}
	}
	if (total != (uint64_t)st->st_size) {
		snprintf(err, errlen,
			 "/proc/%ld/exe shrank to %llu of its %lld bytes while it was read",
			 (long)pid, (unsigned long long)total, (long long)st->st_size);
		goto out;
	}
	if (EVP_DigestFinal_ex(ctx, digest, &dlen) != 1 || dlen != 32) {
		snprintf(err, errlen, "SHA-256 of /proc/%ld/exe: OpenSSL failed", (long)pid);
		goto out;
	}
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

/*
 * What is still synchronous here (on the serving loop): open() and fstat() of /proc/PID/exe
 * and, on a cache miss, the reads of at most PEER_EXE_MAX bytes. O_NONBLOCK keeps open() from
 * waiting on a FIFO or device, which execve() cannot run anyway (they are refused as not
 * regular); it does not make a regular file's reads non-blocking. A FUSE or network file
 * system may block any of these calls in the kernel for as long as its server wants: the time
 * bound is checked between reads only. Only a separate hashing process (the listener of the
 * privilege separation) would take that off the loop.
 */
int peer_exe_digest(struct peer_digests *dc, const struct peer *p, uint8_t digest[32],
		    struct peer_exe_id *exe, char *err, size_t errlen)
{
	struct peer_digest_entry *e;
	struct stat st, st2;
	int dfd, fd = -1, rc = -1;

	dfd = open_proc_dir(p, err, errlen);
	if (dfd < 0)
		return -1;
	fd = openat(dfd, "exe", O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open /proc/%ld/exe: %s", (long)p->pid,
			 strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "cannot stat /proc/%ld/exe: %s", (long)p->pid,
			 strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "/proc/%ld/exe is not a regular file (mode 0%o)",
			 (long)p->pid, (unsigned)st.st_mode);
		dc->stats.refused++;
		goto out;
	}
	if (st.st_size > (off_t)PEER_EXE_MAX) {
		snprintf(err, errlen,
			 "/proc/%ld/exe is %lld bytes, over the %u MiB of an executable that "
			 "vtpmmgrd hashes",
			 (long)p->pid, (long long)st.st_size, PEER_EXE_MAX >> 20);
		dc->stats.refused++;
		goto out;
	}
	e = digest_find(dc, &st);
	if (e) {
		memcpy(digest, e->digest, 32);
		e->used = ++dc->clock;
		dc->stats.hits++;
	} else {
		if (!p->trusted && dc->charge &&
		    !dc->charge(dc->charge_arg, p->uid, (uint64_t)st.st_size, err, errlen)) {
			dc->stats.refused++;
			goto out;
		}
		dc->stats.misses++;
		if (hash_file(fd, p->pid, &st, digest, err, errlen) < 0) {
			dc->stats.refused++;
			goto out;
		}
		if (fstat(fd, &st2) < 0 || st2.st_size != st.st_size ||
		    !same_time(&st2.st_mtim, &st.st_mtim) ||
		    !same_time(&st2.st_ctim, &st.st_ctim)) {
			snprintf(err, errlen, "/proc/%ld/exe changed while it was read",
				 (long)p->pid);
			dc->stats.refused++;
			goto out;
		}
		digest_put(dc, &st, digest);
	}
	if (exe) {
		exe->dev = st.st_dev;
		exe->ino = st.st_ino;
	}
	if (!peer_alive(p->pidfd)) {
		snprintf(err, errlen, "process %ld exited while its binary was read", (long)p->pid);
		goto out;
	}
	rc = 0;
out:
	if (rc < 0)
		OPENSSL_cleanse(digest, 32);
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

/* Open /proc/PID/NAME of the pinned process (its directory opened while it is known alive). */
static int open_proc_file(const struct peer *p, const char *name, char *err, size_t errlen)
{
	int dfd, fd;

	dfd = open_proc_dir(p, err, errlen);
	if (dfd < 0)
		return -1;
	fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
	close(dfd);
	if (fd < 0)
		snprintf(err, errlen, "cannot open /proc/%ld/%s: %s", (long)p->pid, name,
			 strerror(errno));
	return fd;
}

/* read(2) that retries on EINTR. */
static ssize_t read_some(int fd, void *buf, size_t cap)
{
	ssize_t n;

	do
		n = read(fd, buf, cap);
	while (n < 0 && errno == EINTR);
	return n;
}

/* After /proc/PID/NAME was read: the pinned process still lives (so what was read was its). */
static int still_alive(const struct peer *p, const char *name, char *err, size_t errlen)
{
	if (peer_alive(p->pidfd))
		return 0;
	snprintf(err, errlen, "process %ld exited while /proc/%ld/%s was read", (long)p->pid,
		 (long)p->pid, name);
	return -1;
}

/* Read /proc/PID/NAME of the pinned process into buf (NUL-terminated, at most cap - 1
 * bytes; *len without the NUL), bracketed by liveness checks. */
static int read_proc(const struct peer *p, const char *name, char *buf, size_t cap, size_t *len,
		     char *err, size_t errlen)
{
	size_t have = 0;
	ssize_t n;
	int fd = open_proc_file(p, name, err, errlen);

	if (fd < 0)
		return -1;
	while (have < cap - 1 && (n = read_some(fd, buf + have, cap - 1 - have)) != 0) {
		if (n < 0) {
			snprintf(err, errlen, "reading /proc/%ld/%s: %s", (long)p->pid, name,
				 strerror(errno));
			close(fd);
			return -1;
		}
		have += (size_t)n;
	}
	close(fd);
	buf[have] = '\0';
	*len = have;
	return still_alive(p, name, err, errlen);
}

int peer_in_group(const struct peer *p, gid_t gid, char *err, size_t errlen)
{
	char buf[16384];
	size_t len;

	if (p->gid == gid)
		return 1;
	if (read_proc(p, "status", buf, sizeof(buf), &len, err, errlen) < 0)
		return -1;
	return groups_line_has(buf, gid) ? 1 : 0;
}

int peer_exe_id(const struct peer *p, struct peer_exe_id *exe, char *err, size_t errlen)
{
	struct stat st;
	int dfd, rc;

	dfd = open_proc_dir(p, err, errlen);
	if (dfd < 0)
		return -1;
	rc = fstatat(dfd, "exe", &st, 0);
	close(dfd);
	if (rc < 0) {
		snprintf(err, errlen, "cannot stat /proc/%ld/exe: %s", (long)p->pid,
			 strerror(errno));
		return -1;
	}
	if (!peer_alive(p->pidfd)) {
		snprintf(err, errlen, "process %ld exited while its binary was looked at",
			 (long)p->pid);
		return -1;
	}
	exe->dev = st.st_dev;
	exe->ino = st.st_ino;
	return 0;
}

int peer_tracer(const struct peer *p, pid_t *tracer, char *err, size_t errlen)
{
	char buf[16384];
	const char *t;
	size_t len;
	long v;

	if (read_proc(p, "status", buf, sizeof(buf), &len, err, errlen) < 0)
		return -1;
	t = strstr(buf, "\nTracerPid:");
	if (!t || sscanf(t + 11, "%ld", &v) != 1 || v < 0) {
		snprintf(err, errlen, "/proc/%ld/status has no TracerPid line", (long)p->pid);
		return -1;
	}
	*tracer = (pid_t)v;
	return 0;
}

/*
 * The environment is scanned as it is read, a page at a time: no buffer the size of the
 * largest environment per open. A variable is NUL-terminated "NAME=value"; one whose first
 * three bytes are "LD_" is reported (its name, up to '=').
 */
int peer_ld_env(const struct peer *p, char *var, size_t varlen, char *err, size_t errlen)
{
	char buf[4096];
	size_t total = 0, at = 0, nlen = 0; /* at: position in the current variable */
	bool ld = true, naming = false;	    /* ld: its first bytes so far are "LD_" */
	int rc = 0, fd = open_proc_file(p, "environ", err, errlen);
	ssize_t n;

	if (fd < 0)
		return -1;
	while ((n = read_some(fd, buf, sizeof(buf))) > 0) {
		total += (size_t)n;
		if (total >= PEER_ENV_MAX) {
			/* a variable past the bound would not be seen: refuse */
			rc = errmsg(err, errlen, "the environment of pid %ld is over %u bytes",
				    (long)p->pid, PEER_ENV_MAX);
			break;
		}
		for (ssize_t i = 0; i < n; i++) {
			char c = buf[i];

			if (c == '\0') {
				at = 0;
				ld = true;
				naming = false;
				continue;
			}
			if (at < 3 && c != "LD_"[at])
				ld = false;
			if (at == 2 && ld && rc == 0) {
				rc = 1;
				naming = true;
				snprintf(var, varlen, "LD_");
				nlen = strlen(var);
			} else if (naming) {
				if (c == '=') {
					naming = false;
				} else if (nlen + 1 < varlen) {
					var[nlen++] = c;
					var[nlen] = '\0';
				}
			}
			at++;
		}
	}
	if (n < 0 && rc == 0)
		rc = errmsg(err, errlen, "reading /proc/%ld/environ: %s", (long)p->pid,
			    strerror(errno));
	close(fd);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (rc >= 0 && still_alive(p, "environ", err, errlen) < 0)
		return -1;
	return rc;
}
