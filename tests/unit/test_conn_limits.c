/*
 * The connection limits of vtpmmgrd (src/vtpmmgrd/conn_limits): per-pid and per-uid caps,
 * the idle timeout, which connection is dropped when the table is full, the per-uid audit
 * limit and its summary; and the binary digest cache of peer_identity.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "unit.h"
#include "vtpmmgrd/conn_limits.h"
#include "vtpmmgrd/options.h"
#include "vtpmmgrd/peer_identity.h"

static struct cl_conn mk(uid_t uid, pid_t pid, int64_t since, bool trusted)
{
	struct cl_conn c = {.uid = uid, .pid = pid, .since_ms = since, .trusted = trusted};
	return c;
}

static void test_per_pid_cap(void)
{
	struct cl_config cfg;
	struct conn_limits l;
	struct cl_conn c[70], t;
	int i;

	unit_begin(
	    "conn_limits: at most max_per_pid connections per pid; trusted peers are not capped");
	cl_config_default(&cfg);
	cfg.max_per_uid = 0;
	cl_init(&l, &cfg);
	for (i = 0; i < 64; i++) {
		c[i] = mk(1000, 42, i, false);
		if (!CHECKF(cl_admit(&l, &c[i]) == CL_ADMIT, "connection %d refused", i))
			goto out;
		CHECK(cl_add(&l, &c[i]) == 0);
	}
	c[64] = mk(1000, 42, 64, false);
	CHECK(cl_admit(&l, &c[64]) == CL_REFUSE_PID);
	c[65] = mk(1000, 43, 64, false);
	CHECK(cl_admit(&l, &c[65]) == CL_ADMIT); /* another pid of the same uid */
	/* opened connections still count per pid */
	cl_opened(&l, &c[0]);
	CHECK(cl_admit(&l, &c[64]) == CL_REFUSE_PID);
	cl_remove(&l, &c[1]);
	CHECK(cl_admit(&l, &c[64]) == CL_ADMIT);
	t = mk(0, 42, 0, true);
	cl_add(&l, &c[64]);
	CHECK(cl_admit(&l, &t) == CL_ADMIT);
	for (i = 0; i < 65; i++)
		cl_remove(&l, &c[i]);
	CHECK(l.pids.n == 0 && l.uids.n == 0);
out:
	cl_free(&l);
	unit_end();
}

static void test_per_uid_cap(void)
{
	struct cl_config cfg;
	struct conn_limits l;
	struct cl_conn c[5], other, trusted;
	int i;

	unit_begin("conn_limits: max_per_uid counts only the uid's connections with no vTPM open");
	cl_config_default(&cfg);
	cfg.max_per_uid = 3;
	cl_init(&l, &cfg);
	for (i = 0; i < 3; i++) {
		c[i] = mk(65534, 100 + i, i, false);
		CHECK(cl_admit(&l, &c[i]) == CL_ADMIT && cl_add(&l, &c[i]) == 0);
	}
	c[3] = mk(65534, 200, 3, false);
	c[4] = mk(65534, 201, 4, false);
	CHECK(cl_admit(&l, &c[3]) == CL_REFUSE_UID);
	other = mk(1001, 300, 3, false);
	CHECK(cl_admit(&l, &other) == CL_ADMIT);
	trusted = mk(65534, 301, 3, true); /* e.g. a member of --admin-group */
	CHECK(cl_admit(&l, &trusted) == CL_ADMIT);
	/* one opens a vTPM: it no longer counts, so one more may connect */
	cl_opened(&l, &c[0]);
	CHECK(cl_admit(&l, &c[3]) == CL_ADMIT && cl_add(&l, &c[3]) == 0);
	CHECK(cl_admit(&l, &c[4]) == CL_REFUSE_UID);
	/* its vTPM closed on the kept connection: it counts again (4 of 3 now) */
	cl_unopened(&l, &c[0], 10);
	cl_remove(&l, &c[1]);
	CHECK(cl_admit(&l, &c[4]) == CL_REFUSE_UID);
	cl_opened(&l, &c[0]);
	CHECK(cl_admit(&l, &c[4]) == CL_ADMIT);
	/* closing a connection with a vTPM open frees no unopened place */
	cl_add(&l, &c[4]);
	cl_remove(&l, &c[0]);
	CHECK(cl_admit(&l, &other) == CL_ADMIT && cl_admit(&l, &c[1]) == CL_REFUSE_UID);
	cl_remove(&l, &c[2]);
	CHECK(cl_admit(&l, &c[1]) == CL_ADMIT);
	cl_remove(&l, &c[3]);
	cl_remove(&l, &c[4]);
	cl_remove(&l, &c[4]); /* twice: no effect */
	CHECK(l.pids.n == 0 && l.uids.n == 0);
	cl_free(&l);
	unit_end();
}

static void test_idle(void)
{
	struct cl_config cfg;
	struct conn_limits l;
	struct cl_conn c = mk(5, 6, 1000, false), t = mk(0, 7, 1000, true);

	unit_begin("conn_limits: an unopened connection expires idle_timeout after its accept, an "
		   "opened one never");
	cl_config_default(&cfg);
	cfg.idle_timeout_ms = 10000;
	cl_init(&l, &cfg);
	cl_add(&l, &c);
	cl_add(&l, &t);
	CHECK(cl_idle_left(&l, &c, 1000) == 10000);
	CHECK(!cl_idle_expired(&l, &c, 10999));
	CHECK(cl_idle_expired(&l, &c, 11000));
	CHECK(cl_idle_expired(&l, &t, 11000)); /* trusted peers too: only an open counts */
	cl_opened(&l, &c);
	CHECK(cl_idle_left(&l, &c, 1000000) == -1);
	/* its vTPM closed, the connection kept: idle again, from the close */
	cl_unopened(&l, &c, 50000);
	CHECK(cl_idle_left(&l, &c, 50000) == 10000 && l.uids.v && l.uids.n == 2);
	cl_opened(&l, &c);
	cfg.idle_timeout_ms = 0;
	CHECK(cl_idle_left(&l, &t, 1000000) == -1);
	cl_remove(&l, &c);
	cl_remove(&l, &t);
	cl_free(&l);
	unit_end();
}

struct table {
	struct cl_conn *v;
	size_t n;
};

static const struct cl_conn *get(void *arg, size_t i)
{
	struct table *t = arg;

	return t->v[i].pid ? &t->v[i] : NULL; /* pid 0: an admin connection */
}

static void test_victim(void)
{
	struct cl_conn v[] = {
	    mk(1001, 11, 50, false),  /* 0: uid 1001, 2 unopened */
	    mk(1001, 12, 10, false),  /* 1 */
	    mk(65534, 21, 40, false), /* 2: uid 65534, 3 unopened + 1 opened */
	    mk(65534, 22, 30, false), /* 3: its oldest unopened */
	    mk(65534, 23, 35, false), /* 4 */
	    mk(65534, 24, 1, false),  /* 5: older, but opened */
	    mk(0, 31, 0, true),	      /* 6: root, unopened, oldest of all */
	    mk(0, 0, 0, false),	      /* 7: not an instance connection */
	};
	struct table t = {v, sizeof(v) / sizeof(v[0])};
	struct conn_limits l;
	size_t i;

	unit_begin(
	    "conn_limits: when full, the oldest unopened connection of the uid with the most "
	    "is dropped, untrusted uids first");
	cl_init(&l, NULL);
	for (i = 0; i < t.n; i++)
		if (v[i].pid)
			cl_add(&l, &v[i]);
	cl_opened(&l, &v[5]);
	CHECKF(cl_pick_victim(&l, false, t.n, get, &t) == 3, "picked %ld",
	       cl_pick_victim(&l, false, t.n, get, &t));
	CHECK(cl_pick_victim(&l, true, t.n, get, &t) == 3);
	/* uid 65534 down to one unopened: uid 1001 has the most */
	cl_opened(&l, &v[2]);
	cl_opened(&l, &v[3]);
	CHECK(cl_pick_victim(&l, false, t.n, get, &t) == 1);
	/* only opened and trusted connections left: an untrusted newcomer is refused, a trusted
	 * one takes the trusted unopened connection */
	cl_opened(&l, &v[0]);
	cl_opened(&l, &v[1]);
	cl_opened(&l, &v[4]);
	CHECK(cl_pick_victim(&l, false, t.n, get, &t) == -1);
	CHECK(cl_pick_victim(&l, true, t.n, get, &t) == 6);
	cl_opened(&l, &v[6]);
	CHECK(cl_pick_victim(&l, true, t.n, get, &t) == -1);
	for (i = 0; i < t.n; i++)
		cl_remove(&l, &v[i]);
	CHECK(l.uids.n == 0 && l.pids.n == 0);
	cl_free(&l);
	unit_end();
}

struct reports {
	int n;
	struct cl_report last;
};

static void on_report(void *arg, const struct cl_report *r)
{
	struct reports *rs = arg;

	rs->n++;
	rs->last = *r;
}

static void test_audit_limit(void)
{
	struct cl_config cfg;
	struct conn_limits l;
	struct reports rs = {0};
	int i, rows = 0;

	unit_begin("conn_limits: at most audit_refusals rows per uid and window, then one summary");
	cl_config_default(&cfg);
	cfg.audit_refusals = 10;
	cfg.interval_ms = 60000;
	cl_init(&l, &cfg);
	for (i = 0; i < 25; i++)
		rows += cl_audit_refusal(&l, 65534, 1000 + i);
	CHECKF(rows == 10, "%d rows", rows);
	CHECK(cl_audit_refusal(&l, 1001, 2000)); /* another uid has its own window */
	CHECK(cl_tick(&l, 30000, on_report, &rs) == 31000 && rs.n == 0);
	CHECK(cl_tick(&l, 61000, on_report, &rs) == 1000 && rs.n == 1);
	CHECK(rs.last.uid == 65534 && rs.last.rows == 10 && rs.last.suppressed == 15 &&
	      rs.last.count[CL_EV_REFUSAL] == 25 && cl_report_needed(&rs.last));
	CHECK(cl_tick(&l, 62000, on_report, &rs) == -1 && rs.n == 2);
	CHECK(rs.last.uid == 1001 && rs.last.suppressed == 0 && !cl_report_needed(&rs.last));
	CHECK(l.uids.n == 0);
	/* a new window: rows again */
	CHECK(cl_audit_refusal(&l, 65534, 70000));
	cfg.audit_refusals = 0; /* no limit */
	for (i = 0, rows = 0; i < 50; i++)
		rows += cl_audit_refusal(&l, 65534, 70001);
	CHECK(rows == 50);
	cl_tick(&l, 200000, on_report, &rs);
	cl_free(&l);
	unit_end();
}

static void test_notes(void)
{
	struct conn_limits l;
	struct reports rs = {0};
	struct cl_conn c = mk(7, 8, 0, false);

	unit_begin("conn_limits: the first event of a kind per uid and window is logged, the rest "
		   "summed up; a uid with connections stays known");
	cl_init(&l, NULL);
	cl_add(&l, &c);
	CHECK(cl_note(&l, 7, CL_EV_MALFORMED, 0));
	CHECK(!cl_note(&l, 7, CL_EV_MALFORMED, 1));
	CHECK(cl_note(&l, 7, CL_EV_REFUSED_CONN, 2));
	CHECK(cl_tick(&l, 60000, on_report, &rs) == -1 && rs.n == 1);
	CHECK(rs.last.count[CL_EV_MALFORMED] == 2 && rs.last.count[CL_EV_REFUSED_CONN] == 1 &&
	      cl_report_needed(&rs.last));
	CHECK(l.uids.n == 1); /* its connection is still open */
	CHECK(cl_note(&l, 7, CL_EV_MALFORMED, 60001));
	cl_tick(&l, 120001, on_report, &rs);
	CHECK(rs.n == 2 && !cl_report_needed(&rs.last));
	cl_remove(&l, &c);
	CHECK(l.uids.n == 0 && l.pids.n == 0);
	cl_free(&l);
	unit_end();
}

static void test_tables(void)
{
	enum { N = 20000 };
	struct cl_conn *c = calloc(N, sizeof(*c));
	struct cl_config cfg;
	struct conn_limits l;
	struct reports rs = {0};
	unsigned seed = 1;
	size_t i, j;

	unit_begin("conn_limits: hash tables stay consistent through many adds and removes, and "
		   "uids beyond CL_MAX_UIDS share one entry");
	if (!CHECK(c))
		goto out;
	cl_config_default(&cfg);
	cfg.max_per_pid = 2;
	cfg.max_per_uid = 0;
	cl_init(&l, &cfg);
	for (i = 0; i < N; i++) {
		c[i] = mk((uid_t)(i % 9000) * 7919u, (pid_t)(i / 2 + 1), (int64_t)i, false);
		if (!CHECKF(cl_admit(&l, &c[i]) == CL_ADMIT, "conn %zu refused", i) ||
		    !CHECK(cl_add(&l, &c[i]) == 0))
			goto out_free;
	}
	CHECK(cl_admit(&l, &c[0]) == CL_REFUSE_PID);
	CHECKF(l.pids.n == N / 2 && l.uids.n == 9000, "%zu pids, %zu uids", l.pids.n, l.uids.n);
	/* remove in a scrambled order; every pid's count must stay right */
	for (i = 0; i < N; i++) {
		j = (size_t)(rand_r(&seed) % N);
		if (c[j].counted)
			cl_remove(&l, &c[j]);
		if (i % 1000 == 0) {
			struct cl_conn probe = mk(1, c[j].pid, 0, false);
			size_t k, n = 0;

			for (k = 0; k < N; k++)
				n += c[k].counted && c[k].pid == c[j].pid;
			if (!CHECKF((cl_admit(&l, &probe) == CL_ADMIT) == (n < 2), "pid %d: %zu",
				    (int)c[j].pid, n))
				goto out_free;
		}
	}
	for (i = 0; i < N; i++)
		cl_remove(&l, &c[i]);
	CHECKF(l.pids.n == 0 && l.uids.n == 0, "%zu pids, %zu uids left", l.pids.n, l.uids.n);
	/* more uids than the table holds: the rest share the overflow entry */
	for (i = 0; i < CL_MAX_UIDS + 100; i++)
		cl_note(&l, (uid_t)(i + 1), CL_EV_REFUSED_CONN, 5);
	CHECK(l.uids.n == CL_MAX_UIDS && l.overflow.count[CL_EV_REFUSED_CONN] == 100);
	CHECK(cl_tick(&l, 1000000, on_report, &rs) == -1);
	CHECKF(rs.n == CL_MAX_UIDS + 1 && l.uids.n == 0, "%d reports, %zu uids", rs.n, l.uids.n);
out_free:
	cl_free(&l);
out:
	free(c);
	unit_end();
}

static void test_hash_budget(void)
{
	struct cl_config cfg;
	struct conn_limits l;
	struct reports rs = {0};

	unit_begin("conn_limits: hashing costs at most hash_budget bytes per uid and window");
	cl_config_default(&cfg);
	cfg.hash_budget = 100;
	cl_init(&l, &cfg);
	CHECK(cl_charge_hash(&l, 9, 60, 0));
	CHECK(cl_charge_hash(&l, 9, 40, 1));
	CHECK(!cl_charge_hash(&l, 9, 1, 2));
	CHECK(cl_charge_hash(&l, 10, 100, 2)); /* another uid */
	CHECK(!cl_charge_hash(&l, 10, UINT64_MAX, 2));
	cl_tick(&l, 60002, on_report, &rs);
	CHECK(rs.n == 2 && l.uids.n == 0);
	CHECK(cl_charge_hash(&l, 9, 100, 60003)); /* a new window */
	cfg.hash_budget = 0;
	CHECK(cl_charge_hash(&l, 9, UINT64_MAX, 60004));
	cl_tick(&l, 200000, NULL, NULL);
	cl_free(&l);
	unit_end();
}

static int charges;

static bool refuse_charge(void *arg, uid_t uid, uint64_t bytes, char *err, size_t errlen)
{
	(void)arg;
	(void)bytes;
	charges++;
	snprintf(err, errlen, "budget of uid %lu spent", (unsigned long)uid);
	return false;
}

static void test_options(void)
{
	char a0[] = "vtpmmgrd", a1[] = "--max-conns", a2[] = "300", a3[] = "--max-conns-per-pid",
	     a4[] = "0", a5[] = "--max-conns-per-uid", a6[] = "5", a7[] = "--idle-timeout",
	     a8[] = "0", a9[] = "--audit-refusals-per-uid", a10[] = "3",
	     a11[] = "--limits-interval", a12[] = "2", b1[] = "--limits-interval", b2[] = "0",
	     c1[] = "--max-conns", c2[] = "70000", d1[] = "--idle-timeout", d2[] = "-1";
	char *argv[] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, NULL};
	char *bad1[] = {a0, b1, b2, NULL}, *bad2[] = {a0, c1, c2, NULL},
	     *bad3[] = {a0, d1, d2, NULL};
	struct mgrd_opts o;
	char err[256];

	unit_begin("options: the connection limits' options and their defaults");
	if (!CHECKF(mgrd_parse_args(1, argv, &o, err, sizeof(err)) == 0, "%s", err))
		goto out;
	CHECK(o.limits.max_conns == CL_DEFAULT_MAX_CONNS &&
	      o.limits.max_per_pid == CL_DEFAULT_MAX_PER_PID &&
	      o.limits.max_per_uid == CL_DEFAULT_MAX_PER_UID &&
	      o.limits.idle_timeout_ms == CL_DEFAULT_IDLE_TIMEOUT_S * 1000 &&
	      o.limits.audit_refusals == CL_DEFAULT_AUDIT_REFUSALS &&
	      o.limits.interval_ms == CL_DEFAULT_INTERVAL_S * 1000);
	if (!CHECKF(mgrd_parse_args(13, argv, &o, err, sizeof(err)) == 0, "%s", err))
		goto out;
	CHECK(o.limits.max_conns == 300 && o.limits.max_per_pid == 0 && o.limits.max_per_uid == 5 &&
	      o.limits.idle_timeout_ms == 0 && o.limits.audit_refusals == 3 &&
	      o.limits.interval_ms == 2000);
	CHECK(mgrd_parse_args(3, bad1, &o, err, sizeof(err)) < 0 &&
	      strstr(err, "--limits-interval: 0 is out of range (1 to 86400)"));
	CHECK(mgrd_parse_args(3, bad2, &o, err, sizeof(err)) < 0 && strstr(err, "--max-conns"));
	CHECK(mgrd_parse_args(3, bad3, &o, err, sizeof(err)) < 0 && strstr(err, "--idle-timeout"));
out:
	unit_end();
}

/* SHA-256 of a file read directly. */
static int file_sha256(const char *path, uint8_t out[32])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t buf[65536];
	unsigned len = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -1;

	if (fd < 0 || !ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		goto out;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		EVP_DigestUpdate(ctx, buf, (size_t)n);
	if (n == 0 && EVP_DigestFinal_ex(ctx, out, &len) == 1 && len == 32)
		rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	return rc;
}

static void test_digest_cache(void)
{
	static struct peer_digests dc;
	struct peer p = {.pidfd = -1};
	struct stat sb;
	uint8_t want[32], got[32], again[32];
	char err[512];
	int sv[2] = {-1, -1};

	unit_begin("peer_identity: the binary digest is computed once per executable file");
	if (!CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0) ||
	    !CHECKF(peer_identify(sv[0], 0, &p, err, sizeof(err)) == 0, "%s", err) ||
	    !CHECK(file_sha256("/proc/self/exe", want) == 0) ||
	    !CHECK(stat("/proc/self/exe", &sb) == 0))
		goto out;
	/* a file changed in the last PEER_DIGEST_FRESH_S seconds is not cached: wait that out
	 * (the test binary may just have been linked) */
	for (;;) {
		struct timespec now;

		clock_gettime(CLOCK_REALTIME, &now);
		if (sb.st_ctim.tv_sec + PEER_DIGEST_FRESH_S <= now.tv_sec)
			break;
		usleep(100000);
	}
	memset(&dc, 0, sizeof(dc));
	if (!CHECKF(peer_exe_digest(&dc, &p, got, NULL, err, sizeof(err)) == 0, "%s", err))
		goto out;
	CHECK(memcmp(got, want, 32) == 0);
	if (!CHECKF(peer_exe_digest(&dc, &p, again, NULL, err, sizeof(err)) == 0, "%s", err))
		goto out;
	CHECK(memcmp(again, want, 32) == 0);
	CHECKF(dc.stats.misses == 1 && dc.stats.hits == 1 && dc.stats.refused == 0,
	       "%llu misses, %llu hits", (unsigned long long)dc.stats.misses,
	       (unsigned long long)dc.stats.hits);
	/* a hit costs no budget; a miss of an untrusted peer is charged, of a trusted one not */
	dc.charge = refuse_charge;
	p.trusted = false;
	CHECK(peer_exe_digest(&dc, &p, again, NULL, err, sizeof(err)) == 0 && charges == 0);
	memset(dc.v, 0, sizeof(dc.v)); /* forget the digests, keep the budget hook */
	CHECK(peer_exe_digest(&dc, &p, again, NULL, err, sizeof(err)) < 0 && charges == 1 &&
	      strstr(err, "budget of uid"));
	p.trusted = true;
	CHECKF(peer_exe_digest(&dc, &p, again, NULL, err, sizeof(err)) == 0 && charges == 1, "%s",
	       err);
	dc.charge = NULL;
out:
	peer_release(&p);
	if (sv[0] >= 0) {
		close(sv[0]);
		close(sv[1]);
	}
	unit_end();
}

int main(void)
{
	test_per_pid_cap();
	test_per_uid_cap();
	test_idle();
	test_victim();
	test_audit_limit();
	test_notes();
	test_tables();
	test_hash_budget();
	test_options();
	test_digest_cache();
	return unit_exit();
}
