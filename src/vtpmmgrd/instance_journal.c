#include "vtpmmgrd/instance_journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/cursor.h"
#include "common/log.h"

#define REC_MAX (JOURNAL_REC_FIXED + LABEL_MAX)

struct journal {
	int fd;
	char path[4096];
	size_t records; /* in the file */
};

int journal_parse(const uint8_t *buf, size_t len,
		  int (*cb)(enum journal_kind kind, const struct journal_entry *e, void *arg),
		  void *arg, size_t *used, char *err, size_t errlen)
{
	struct rcursor c;
	struct journal_entry e;
	char lerr[128];
	uint32_t pid, uid;
	uint16_t llen;
	uint8_t kind;
	int rc;

	rc_init(&c, buf, len);
	*used = 0;
	while (rc_remaining(&c) >= JOURNAL_REC_FIXED) {
		memset(&e, 0, sizeof(e));
		if (rc_u8(&c, &kind) < 0 || rc_u16(&c, &llen) < 0 || rc_bytes(&c, e.uuid, 16) < 0 ||
		    rc_u32(&c, &pid) < 0 || rc_u64(&c, &e.start_ticks) < 0 ||
		    rc_u32(&c, &uid) < 0 || rc_bytes(&c, e.bin_digest, 32) < 0)
			break;
		if (kind != JOURNAL_OPEN && kind != JOURNAL_RELEASE) {
			snprintf(err, errlen, "record at byte %zu: unknown kind %u", *used, kind);
			return -1;
		}
		if (llen > LABEL_MAX || (kind == JOURNAL_RELEASE && llen != 0) ||
		    (kind == JOURNAL_OPEN && llen == 0)) {
			snprintf(err, errlen, "record at byte %zu: label length %u", *used, llen);
			return -1;
		}
		if (rc_bytes(&c, e.label, llen) < 0)
			break; /* a torn tail */
		e.label[llen] = '\0';
		if (pid == 0 || pid > INT32_MAX) {
			snprintf(err, errlen, "record at byte %zu: pid %u", *used, pid);
			return -1;
		}
		if (kind == JOURNAL_OPEN && label_check(e.label, lerr, sizeof(lerr)) < 0) {
			snprintf(err, errlen, "record at byte %zu: %s", *used, lerr);
			return -1;
		}
		e.pid = (pid_t)pid;
		e.uid = (uid_t)uid;
		*used = c.pos;
		rc = cb((enum journal_kind)kind, &e, arg);
		if (rc)
			return rc;
	}
	return 0;
}

static size_t encode(enum journal_kind kind, const struct journal_entry *e, uint8_t *out)
{
	size_t llen = kind == JOURNAL_OPEN ? strnlen(e->label, LABEL_MAX) : 0;
	static const uint8_t zero[32];
	struct wcursor w;

	wc_init(&w, out, REC_MAX);
	wc_u8(&w, (uint8_t)kind);
	wc_u16(&w, (uint16_t)llen);
	wc_bytes(&w, e->uuid, 16);
	wc_u32(&w, (uint32_t)e->pid);
	wc_u64(&w, e->start_ticks);
	wc_u32(&w, (uint32_t)e->uid);
	wc_bytes(&w, kind == JOURNAL_OPEN ? e->bin_digest : zero, 32);
	wc_bytes(&w, e->label, llen);
	return w.failed ? 0 : w.pos;
}

/* The replay: the entries still open, last record wins. */
struct replay {
	struct journal_entry *v;
	size_t n, cap;
	bool oom;
};

static int replay_one(enum journal_kind kind, const struct journal_entry *e, void *arg)
{
	struct replay *r = arg;
	size_t i;

	for (i = 0; i < r->n; i++)
		if (memcmp(r->v[i].uuid, e->uuid, 16) == 0)
			break;
	if (kind == JOURNAL_RELEASE) {
		if (i < r->n && r->v[i].pid == e->pid)
			r->v[i] = r->v[--r->n];
		return 0;
	}
	if (i == r->n) {
		if (r->n == r->cap) {
			size_t cap = r->cap ? r->cap * 2 : 64;
			struct journal_entry *v = realloc(r->v, cap * sizeof(*v));

			if (!v) {
				r->oom = true;
				return -1;
			}
			r->v = v;
			r->cap = cap;
		}
		r->n++;
	}
	r->v[i] = *e;
	return 0;
}

/* Write entries to a new file and move it over path. */
static int rewrite(struct journal *j, const struct journal_entry *v, size_t n, char *err,
		   size_t errlen)
{
	char tmp[4200];
	uint8_t rec[REC_MAX];
	size_t i, len;
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", j->path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "instance journal %s: %s", tmp, strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		len = encode(JOURNAL_OPEN, &v[i], rec);
		if (len == 0 || write(fd, rec, len) != (ssize_t)len) {
			snprintf(err, errlen, "instance journal %s: %s", tmp,
				 len ? strerror(errno) : "cannot encode");
			close(fd);
			unlink(tmp);
			return -1;
		}
	}
	if (rename(tmp, j->path) < 0) {
		snprintf(err, errlen, "instance journal %s: %s", j->path, strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	if (j->fd >= 0)
		close(j->fd);
	j->fd = fd;
	j->records = n;
	return 0;
}

static int read_all(const char *path, uint8_t **buf, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	size_t got = 0;
	ssize_t n;
	int fd;

	*buf = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "instance journal %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 0077)) {
		snprintf(err, errlen,
			 "instance journal %s: not a regular file of ours with mode 0600; ignored",
			 path);
		close(fd);
		return 1;
	}
	if ((uint64_t)st.st_size > JOURNAL_MAX_BYTES) {
		snprintf(err, errlen, "instance journal %s: %lld bytes, more than %u; ignored",
			 path, (long long)st.st_size, JOURNAL_MAX_BYTES);
		close(fd);
		return 1;
	}
	*buf = malloc((size_t)st.st_size + 1);
	if (!*buf) {
		snprintf(err, errlen, "out of memory");
		close(fd);
		return -1;
	}
	while (got < (size_t)st.st_size && (n = read(fd, *buf + got, (size_t)st.st_size - got)) > 0)
		got += (size_t)n;
	close(fd);
	*len = got;
	return 0;
}

int journal_open(struct journal **out, const char *path,
		 int (*keep)(const struct journal_entry *e, void *arg), void *arg, char *err,
		 size_t errlen)
{
	struct journal *j = calloc(1, sizeof(*j));
	struct replay r = {0};
	uint8_t *buf = NULL;
	size_t len = 0, used = 0, i, k;
	char perr[256];
	int rc;

	*out = NULL;
	if (!j || snprintf(j->path, sizeof(j->path), "%s", path) >= (int)sizeof(j->path)) {
		snprintf(err, errlen, "instance journal: %s",
			 j ? "path too long" : "out of memory");
		free(j);
		return -1;
	}
	j->fd = -1;
	rc = read_all(path, &buf, &len, err, errlen);
	if (rc < 0) {
		free(j);
		return -1;
	}
	if (rc > 0)
		log_warnx("%s", err); /* unusable: start with no instance to take back */
	if (len && journal_parse(buf, len, replay_one, &r, &used, perr, sizeof(perr)) < 0) {
		if (r.oom) {
			snprintf(err, errlen, "out of memory");
			free(buf);
			free(r.v);
			free(j);
			return -1;
		}
		log_warnx("instance journal %s: %s; the records after it are ignored", path, perr);
	}
	if (used < len)
		log_info("instance journal %s: %zu bytes of a torn record ignored", path,
			 len - used);
	free(buf);
	for (i = 0, k = 0; i < r.n; i++)
		if (keep(&r.v[i], arg) == 1)
			r.v[k++] = r.v[i];
	rc = rewrite(j, r.v, k, err, errlen);
	OPENSSL_cleanse(r.v, r.cap * sizeof(*r.v));
	free(r.v);
	if (rc < 0) {
		free(j);
		return -1;
	}
	*out = j;
	return 0;
}

bool journal_wants_rewrite(const struct journal *j, size_t live)
{
	return j->records > 4 * live + 1024;
}

int journal_rewrite(struct journal *j, const struct journal_entry *v, size_t n, char *err,
		    size_t errlen)
{
	return rewrite(j, v, n, err, errlen);
}

int journal_append(struct journal *j, enum journal_kind kind, const struct journal_entry *e,
		   char *err, size_t errlen)
{
	uint8_t rec[REC_MAX];
	size_t len;

	len = encode(kind, e, rec);
	if (len == 0) {
		snprintf(err, errlen, "instance journal: cannot encode a record");
		return -1;
	}
	if (write(j->fd, rec, len) != (ssize_t)len) {
		snprintf(err, errlen, "instance journal %s: %s", j->path,
			 errno ? strerror(errno) : "short write");
		return -1;
	}
	j->records++;
	return 0;
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	if (j->fd >= 0)
		close(j->fd);
	free(j);
}
