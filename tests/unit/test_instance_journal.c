/*
 * test_instance_journal — the manager's instance journal (instance_journal.h): replay keeps
 * exactly the entries still open (last record wins, a release needs the same pid), survives
 * a torn tail, refuses malformed records with a reason, never follows a symlink, and ignores
 * a file that is not its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cursor.h"
#include "unit.h"
#include "vtpmmgrd/instance_journal.h"

static char dir[] = "/tmp/vtpm-journal-XXXXXX";
static char path[256];

struct seen {
	struct journal_entry v[16];
	size_t n;
	int keep; /* what keep() answers */
};

static int keep(const struct journal_entry *e, void *arg)
{
	struct seen *s = arg;

	if (s->n < 16)
		s->v[s->n++] = *e;
	return s->keep;
}

static struct journal_entry entry(uint8_t id, pid_t pid, const char *label)
{
	struct journal_entry e;

	memset(&e, 0, sizeof(e));
	memset(e.uuid, id, 16);
	e.pid = pid;
	e.start_ticks = 1000 + (uint64_t)pid;
	e.uid = 107;
	memset(e.bin_digest, 0xa0 + id, 32);
	snprintf(e.label, sizeof(e.label), "%s", label);
	return e;
}

static size_t record(uint8_t *out, uint8_t kind, uint16_t llen, uint32_t pid, const char *label)
{
	struct wcursor w;
	uint8_t z[32] = {0};

	wc_init(&w, out, 2048);
	wc_u8(&w, kind);
	wc_u16(&w, llen);
	wc_bytes(&w, z, 16);
	wc_u32(&w, pid);
	wc_u64(&w, 1);
	wc_u32(&w, 0);
	wc_bytes(&w, z, 32);
	wc_bytes(&w, label, strlen(label));
	return w.pos;
}

static int count_cb(enum journal_kind kind, const struct journal_entry *e, void *arg)
{
	(void)kind;
	(void)e;
	(*(int *)arg)++;
	return 0;
}

static void test_replay(void)
{
	struct journal *j = NULL;
	struct journal_entry a = entry(1, 101, "g1_u:vm_r:vtpm_t"),
			     b = entry(2, 102, "g2_u:vm_r:vtpm_t");
	struct journal_entry a2 = entry(1, 103, "g1_u:vm_r:vtpm_t"),
			     c = entry(3, 104, "g3_u:r:t:s0");
	struct seen s = {.keep = 1};
	char err[256];

	unit_begin("replay keeps exactly the open entries");
	if (!CHECK(journal_open(&j, path, keep, &s, err, sizeof(err)) == 0))
		goto out;
	CHECK(s.n == 0); /* a new journal */
	CHECK(journal_append(j, JOURNAL_OPEN, &a, err, sizeof(err)) == 0);
	CHECK(journal_append(j, JOURNAL_OPEN, &b, err, sizeof(err)) == 0);
	CHECK(journal_append(j, JOURNAL_OPEN, &c, err, sizeof(err)) == 0);
	CHECK(journal_append(j, JOURNAL_RELEASE, &a, err, sizeof(err)) == 0);
	CHECK(journal_append(j, JOURNAL_OPEN, &a2, err, sizeof(err)) == 0);
	/* a release by another pid than the holder's releases nothing */
	CHECK(journal_append(
		  j, JOURNAL_RELEASE,
		  &(struct journal_entry){.uuid = {2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2},
					  .pid = 999},
		  err, sizeof(err)) == 0);
	CHECK(journal_append(j, JOURNAL_RELEASE, &c, err, sizeof(err)) == 0);
	journal_close(j);
	j = NULL;
	s.n = 0;
	if (!CHECK(journal_open(&j, path, keep, &s, err, sizeof(err)) == 0))
		goto out;
	if (!CHECKF(s.n == 2, "%zu entries", s.n))
		goto out;
	CHECK(memcmp(&s.v[0], &b, sizeof(b)) == 0 || memcmp(&s.v[1], &b, sizeof(b)) == 0);
	CHECK(memcmp(&s.v[0], &a2, sizeof(a2)) == 0 || memcmp(&s.v[1], &a2, sizeof(a2)) == 0);
	journal_close(j);
	j = NULL;
	/* keep() says the processes are gone: the rewrite leaves nothing */
	s.n = 0;
	s.keep = 0;
	CHECK(journal_open(&j, path, keep, &s, err, sizeof(err)) == 0 && s.n == 2);
	journal_close(j);
	j = NULL;
	s.n = 0;
	CHECK(journal_open(&j, path, keep, &s, err, sizeof(err)) == 0 && s.n == 0);
out:
	journal_close(j);
	unit_end();
}

static void test_rewrite_threshold(void)
{
	struct journal *j = NULL;
	struct journal_entry a = entry(1, 201, "x:y:z");
	struct seen s = {.keep = 1};
	char err[256];
	struct stat st;
	int i;

	unit_begin("the journal is rewritten once it outgrows its live entries");
	unlink(path);
	if (!CHECK(journal_open(&j, path, keep, &s, err, sizeof(err)) == 0))
		goto out;
	for (i = 0; i < 1100 && !journal_wants_rewrite(j, 1); i++)
		CHECK(journal_append(j, i % 2 ? JOURNAL_RELEASE : JOURNAL_OPEN, &a, err,
				     sizeof(err)) == 0);
	CHECKF(journal_wants_rewrite(j, 1) && i <= 1030, "after %d records", i);
	CHECK(journal_rewrite(j, &a, 1, err, sizeof(err)) == 0);
	CHECK(stat(path, &st) == 0 && (size_t)st.st_size == JOURNAL_REC_FIXED + strlen(a.label));
	CHECK(!journal_wants_rewrite(j, 1));
	CHECK((st.st_mode & 0777) == 0600);
out:
	journal_close(j);
	unit_end();
}

static void test_malformed(void)
{
	static const struct {
		const char *name;
		uint8_t kind;
		int llen; /* -1: strlen(label) */
		uint32_t pid;
		const char *label;
		const char *why;
	} cases[] = {
	    {"unknown kind", 7, -1, 5, "a:b:c", "unknown kind"},
	    {"open without a label", 1, 0, 5, "", "label length"},
	    {"release with a label", 2, -1, 5, "a:b:c", "label length"},
	    {"label longer than LABEL_MAX", 1, LABEL_MAX + 1, 5, "", "label length"},
	    {"pid 0", 1, -1, 0, "a:b:c", "pid"},
	    {"pid beyond pid_t", 1, -1, 0x80000000u, "a:b:c", "pid"},
	    {"not a label", 1, -1, 5, "no-colons", "record at byte"},
	};
	uint8_t buf[2048];
	char err[256];
	size_t i, len, used;
	int n;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unit_begin(cases[i].name);
		len = record(
		    buf, cases[i].kind,
		    (uint16_t)(cases[i].llen < 0 ? (int)strlen(cases[i].label) : cases[i].llen),
		    cases[i].pid, cases[i].label);
		n = 0;
		err[0] = '\0';
		CHECK(journal_parse(buf, len, count_cb, &n, &used, err, sizeof(err)) == -1);
		CHECKF(strstr(err, cases[i].why) != NULL, "'%s'", err);
		CHECK(n == 0);
		unit_end();
	}
	unit_begin("a torn tail is not an error");
	len = record(buf, 1, 5, 9, "a:b:c");
	len += record(buf + len, 1, 5, 10, "a:b:c");
	n = 0;
	CHECK(journal_parse(buf, len - 3, count_cb, &n, &used, err, sizeof(err)) == 0);
	CHECK(n == 1 && used == JOURNAL_REC_FIXED + 5);
	n = 0;
	CHECK(journal_parse(buf, JOURNAL_REC_FIXED - 1, count_cb, &n, &used, err, sizeof(err)) ==
	      0);
	CHECK(n == 0 && used == 0);
	unit_end();
}

static void test_files(void)
{
	struct journal *j = NULL;
	struct seen s = {.keep = 1};
	char err[256], target[300];
	struct stat st;
	int fd;

	unit_begin("a symlink in the journal's place is not followed");
	unlink(path);
	snprintf(target, sizeof(target), "%s/target", dir);
	fd = open(target, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd >= 0)
		close(fd);
	CHECK(symlink(target, path) == 0);
	CHECK(journal_open(&j, path, keep, &s, err, sizeof(err)) == -1);
	CHECKF(strstr(err, "instance journal") != NULL, "'%s'", err);
	CHECK(stat(target, &st) == 0 && st.st_size == 0);
	journal_close(j);
	j = NULL;
	unlink(path);
	unit_end();

	unit_begin("a journal readable by others is ignored and replaced");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		uint8_t buf[256];
		size_t len = record(buf, 1, 5, (uint32_t)getpid(), "a:b:c");

		CHECK(write(fd, buf, len) == (ssize_t)len);
		fchmod(fd, 0644);
		close(fd);
	}
	s.n = 0;
	CHECK(journal_open(&j, path, keep, &s, err, sizeof(err)) == 0 && s.n == 0);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600 && st.st_size == 0);
	journal_close(j);
	unit_end();
}

int main(void)
{
	if (!mkdtemp(dir)) {
		printf("FAIL: mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	snprintf(path, sizeof(path), "%s/instance.sock.instances", dir);
	test_replay();
	test_rewrite_threshold();
	test_malformed();
	test_files();
	unlink(path);
	{
		char t[300];

		snprintf(t, sizeof(t), "%s/target", dir);
		unlink(t);
		snprintf(t, sizeof(t), "%s.tmp", path);
		unlink(t);
	}
	rmdir(dir);
	return unit_exit();
}
