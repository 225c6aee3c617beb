/*
 * test_store_crash.c — the store under kill -9, I/O errors and power cuts.
 *
 * 1. kill -9: a child records 500 increasing state versions, writing each acknowledged
 *    one to a pipe; the parent kills it at a random moment, reopens the store, and
 *    requires: the MAC verifies, the version is the last acknowledged one or the one
 *    after it (never older: an answered write is never lost), its digest matches, and
 *    the counter grew by exactly one per recorded version.
 * 2. Faults through an SQLite VFS that wraps the default one ("faulty"): for each
 *    mutation, for N = 1, 2, ... until the mutation runs out of write points, the Nth
 *    xWrite/xSync of the database or its WAL
 *      - fails once with SQLITE_IOERR (the store keeps going),
 *      - fails, and so does every write, sync, truncate and delete after it (a dead disk),
 *      - is a power cut: every write since the file's last xSync is undone (all of them,
 *        or a random subset, as a disk that reorders its cache would), then the disk is
 *        dead. When the mutation ran out of write points it returned; the cut happens
 *        right after, so what it acknowledged must survive.
 *    Then the store is reopened with the default VFS: it must verify and hold the old
 *    state or the new one, whole (audit row included), with the counter to match; and
 *    the new one whenever the mutation returned STORE_OK. The same for the upgrade of a
 *    version-1 and of a version-2 store (tests/unit/fixtures/store_v1.hex, store_v2.hex)
 *    by store_verify: the old version or the current one, both verifying, with the same
 *    content. The mutations include the
 *    rollback guard (store_guard_put) and an audit append that rotates the log (a row
 *    in, the oldest out, the aggregate following both).
 * VTPM_TEST_SEED=n replays a run (the seed is printed).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/aead.h"
#include "vtpmmgrd/store.h"
#include "unit.h"

#define ERRLEN 512

static char dir[64];
static const uint8_t key[STORE_MAC_KEY_LEN] = {
    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00,
    0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0};
static const struct store_actor admin = {.uid = 0, .pid = 1};
static unsigned long long rng_state;

static uint32_t rnd(void)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(rng_state >> 33);
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void remove_db(const char *path)
{
	char p[256];

	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
}

static int copy_file(const char *from, const char *to)
{
	char buf[65536];
	ssize_t n;
	int in, out, rc = 0;

	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -1;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0) {
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			rc = -1;
	if (n < 0)
		rc = -1;
	close(in);
	close(out);
	return rc;
}

static struct store *open_ready(const char *path, const char *vfs, uint64_t *counter)
{
	struct store *s = NULL;
	char err[ERRLEN];
	uint64_t c = 0;
	int rc;

	rc = store_open(&s, path, vfs, err, sizeof(err));
	if (rc) {
		printf("# store_open: %d %s\n", rc, err);
		return NULL;
	}
	store_set_mac_key(s, key);
	rc = store_verify(s, &c, err, sizeof(err));
	if (rc) {
		printf("# store_verify: %d %s\n", rc, err);
		store_close(s);
		return NULL;
	}
	if (counter)
		*counter = c;
	return s;
}

static void make_uuid(uint8_t u[16], uint8_t tag, uint8_t n)
{
	memset(u, tag, 16);
	u[15] = n;
}

static void make_group(struct store_group *g, const char *name, uint8_t n)
{
	memset(g, 0, sizeof(*g));
	make_uuid(g->uuid, 0x60, n);
	snprintf(g->name, sizeof(g->name), "%s", name);
	g->npatterns = 3;
	for (size_t i = 0; i < g->npatterns; i++)
		snprintf(g->patterns[i], sizeof(g->patterns[i]), "guest%u_%zu_u:vm_r:vtpm_t", n, i);
	g->ndigests = 3;
	for (size_t i = 0; i < g->ndigests; i++)
		memset(g->digests[i], (int)(0xd0 + i), 32);
	g->wrapped_key_len = 60;
	memset(g->wrapped_key, 0x70 + n, g->wrapped_key_len);
}

static void make_vtpm(struct store_vtpm *v, uint8_t n, const uint8_t group[16])
{
	memset(v, 0, sizeof(*v));
	make_uuid(v->uuid, 0x90, n);
	memcpy(v->group_uuid, group, 16);
	v->wrapped_key_len = 60;
	memset(v->wrapped_key, 0xa0 + n, v->wrapped_key_len);
	v->version = 1;
	memset(v->digest, 0xee, 32);
	snprintf(v->state, sizeof(v->state), STORE_VTPM_CREATED);
}

static void version_digest(uint64_t v, uint8_t d[32])
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (56 - 8 * i));
	sha256(b, sizeof(b), d);
}

/* A closed store at path: host, groups g1 and g2, vTPMs 1..20 in g1 (so that pages split). */
static int make_base(const char *path)
{
	struct store *s;
	struct store_host h;
	struct store_group g;
	struct store_vtpm v;
	int rc;

	remove_db(path);
	s = open_ready(path, NULL, NULL);
	if (!s)
		return -1;
	memset(&h, 0, sizeof(h));
	h.pcr_mask = 0x80ff;
	h.nv_index = 0x01500016;
	h.sealed_root_len = 400;
	memset(h.sealed_root, 0x33, h.sealed_root_len);
	h.ak_public_len = 91;
	memset(h.ak_public, 0x30, h.ak_public_len);
	rc = store_host_put(s, &admin, &h);
	make_group(&g, "g2", 2);
	if (!rc)
		rc = store_group_add(s, &admin, &g);
	make_group(&g, "g1", 1);
	if (!rc)
		rc = store_group_add(s, &admin, &g);
	for (uint8_t i = 1; i <= 20 && !rc; i++) {
		make_vtpm(&v, i, g.uuid);
		version_digest(v.version, v.digest);
		rc = store_vtpm_add(s, &admin, &v);
	}
	if (rc)
		printf("# make_base: %s\n", store_errmsg(s));
	store_close(s);
	return rc;
}

/* ---- part 1: kill -9 ------------------------------------------------------------------- */

#define KILL_ROUNDS 30
#define KILL_OPS    500

static _Noreturn void child_writer(const char *path, int wfd)
{
	struct store *s;
	struct store_vtpm v;
	uint8_t u[16], d[32];

	s = open_ready(path, NULL, NULL);
	make_uuid(u, 0x90, 1);
	if (!s || store_vtpm_get(s, u, &v) != STORE_OK)
		_exit(2);
	for (uint64_t i = 1; i <= KILL_OPS; i++) {
		version_digest(v.version + i, d);
		if (store_vtpm_set_version(s, u, v.version + i, d) != STORE_OK)
			_exit(3);
		uint64_t ack = v.version + i;
		if (write(wfd, &ack, sizeof(ack)) != (ssize_t)sizeof(ack))
			_exit(4);
	}
	store_close(s);
	_exit(0);
}

static void test_kill9(void)
{
	char path[128];
	struct store *s;
	struct store_vtpm v;
	uint8_t u[16], d[32];
	uint64_t counter, prev_counter, prev_version, ack, last;
	double t0, per_op, window, start = now_us();
	int fds[2], status, acks_total = 0, mid_run = 0;
	ssize_t n;
	pid_t pid;

	unit_begin("kill -9 while recording versions: acknowledged versions survive");
	snprintf(path, sizeof(path), "%s/kill.db", dir);
	if (!CHECK(make_base(path) == 0))
		goto out;
	/* calibrate: how long does one recorded version take here? */
	s = open_ready(path, NULL, &prev_counter);
	make_uuid(u, 0x90, 1);
	if (!CHECK(s) || !CHECK(store_vtpm_get(s, u, &v) == STORE_OK)) {
		store_close(s);
		goto out;
	}
	t0 = now_us();
	for (int i = 1; i <= 20; i++) {
		version_digest(v.version + 1, d);
		CHECK(store_vtpm_set_version(s, u, ++v.version, d) == STORE_OK);
	}
	per_op = (now_us() - t0) / 20;
	prev_version = v.version;
	prev_counter = 0;
	CHECK(store_counter(s, &prev_counter) == STORE_OK);
	store_close(s);
	/* kill somewhere between the child's start and the end of its 500 writes */
	window = 5000 + per_op * KILL_OPS * 0.9;
	if (window > 400000)
		window = 400000;

	for (int round = 0; round < KILL_ROUNDS; round++) {
		if (!CHECK(pipe2(fds, O_CLOEXEC) == 0))
			break;
		pid = fork();
		if (pid == 0) {
			close(fds[0]);
			child_writer(path, fds[1]);
		}
		close(fds[1]);
		if (!CHECK(pid > 0)) {
			close(fds[0]);
			break;
		}
		usleep((useconds_t)(rnd() % (uint32_t)window));
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		last = 0;
		while ((n = read(fds[0], &ack, sizeof(ack))) == (ssize_t)sizeof(ack)) {
			CHECKF(ack > last, "acks out of order");
			last = ack;
			acks_total++;
		}
		close(fds[0]);
		CHECKF(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0),
		       "round %d: child failed with status %d", round, status);
		if (last && last < prev_version + KILL_OPS)
			mid_run++;

		s = open_ready(path, NULL, &counter);
		if (!CHECKF(s, "round %d: store does not verify after kill -9", round))
			break;
		CHECK(store_vtpm_get(s, u, &v) == STORE_OK);
		version_digest(v.version, d);
		if (last)
			CHECKF(v.version >= last && v.version <= last + 1,
			       "round %d: stored %llu, last acknowledged %llu", round,
			       (unsigned long long)v.version, (unsigned long long)last);
		else
			CHECKF(v.version >= prev_version && v.version <= prev_version + 1,
			       "round %d: stored %llu, before %llu, nothing acknowledged", round,
			       (unsigned long long)v.version, (unsigned long long)prev_version);
		CHECKF(memcmp(v.digest, d, 32) == 0, "round %d: digest of another version", round);
		CHECKF(counter == prev_counter + (v.version - prev_version),
		       "round %d: counter %llu, expected %llu", round, (unsigned long long)counter,
		       (unsigned long long)(prev_counter + (v.version - prev_version)));
		prev_version = v.version;
		prev_counter = counter;
		store_close(s);
	}
	printf("# kill -9: %d rounds, %d acknowledged versions, %d kills mid-run, %.0f us per "
	       "version, %.1f s\n",
	       KILL_ROUNDS, acks_total, mid_run, per_op, (now_us() - start) / 1e6);
	CHECKF(mid_run >= KILL_ROUNDS / 3, "only %d kills landed mid-run", mid_run);
out:
	unit_end();
}

/* ---- part 2: a fault-injecting VFS ----------------------------------------------------- */

enum fault_mode { F_NONE, F_IOERR_ONCE, F_IOERR_DEAD, F_POWER_CUT, F_POWER_CUT_SOME };

struct undo {
	sqlite3_int64 off;
	sqlite3_int64 old_size;
	size_t len;
	uint8_t *old; /* len bytes before the write, those below old_size valid */
	uint8_t *new; /* the bytes written (NULL for a truncate) */
};

struct ffile {
	sqlite3_file base;
	sqlite3_file *real;
	bool tracked; /* main database or WAL: the files whose writes count */
	struct undo *u;
	size_t nu, cap;
	struct ffile *next;
};

static struct {
	enum fault_mode mode;
	int n;	   /* the Nth counted xWrite/xSync faults (1-based); 0: disarmed */
	int count; /* counted calls since armed */
	bool fired;
	bool dead; /* every write, sync, truncate, delete fails */
	int unsynced_at_close;
	long undone, redone; /* power cuts: writes undone, and of those written again */
	struct ffile *files;
} F;

static sqlite3_vfs *real_vfs;
static sqlite3_vfs faulty_vfs;

static void undo_free(struct ffile *f)
{
	for (size_t i = 0; i < f->nu; i++) {
		free(f->u[i].old);
		free(f->u[i].new);
	}
	f->nu = 0;
}

static struct undo *undo_push(struct ffile *f)
{
	if (f->nu == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 16;
		struct undo *u = realloc(f->u, cap * sizeof(*u));
		if (!u)
			abort();
		f->u = u;
		f->cap = cap;
	}
	memset(&f->u[f->nu], 0, sizeof(f->u[0]));
	return &f->u[f->nu++];
}

/* Remember what [off, off+len) held, and the size, before a write or a truncate. */
static void record(struct ffile *f, sqlite3_int64 off, size_t len, const void *newbuf)
{
	struct undo *u = undo_push(f);
	sqlite3_int64 size = 0;

	f->real->pMethods->xFileSize(f->real, &size);
	u->off = off;
	u->len = len;
	u->old_size = size;
	u->old = calloc(1, len ? len : 1);
	if (!u->old)
		abort();
	if (off < size) {
		size_t have = (size_t)(size - off) < len ? (size_t)(size - off) : len;
		f->real->pMethods->xRead(f->real, u->old, (int)have, off);
	}
	if (newbuf) {
		u->new = malloc(len);
		if (!u->new)
			abort();
		memcpy(u->new, newbuf, len);
	}
}

/*
 * The power goes out: each tracked file returns to its content at its last xSync, then
 * (F_POWER_CUT_SOME) a random subset of the writes since then is applied again in order,
 * as if the disk had written those and lost the others. Then the disk is dead.
 */
static void power_cut(void)
{
	for (struct ffile *f = F.files; f; f = f->next) {
		const sqlite3_io_methods *m = f->real->pMethods;

		if (!f->nu)
			continue;
		F.undone += (long)f->nu;
		for (size_t i = f->nu; i-- > 0;) {
			struct undo *u = &f->u[i];
			if (u->off < u->old_size) {
				size_t have = (size_t)(u->old_size - u->off) < u->len
						  ? (size_t)(u->old_size - u->off)
						  : u->len;
				m->xWrite(f->real, u->old, (int)have, u->off);
			}
			m->xTruncate(f->real, u->old_size);
		}
		if (F.mode == F_POWER_CUT_SOME)
			for (size_t i = 0; i < f->nu; i++)
				if (f->u[i].new &&rnd() % 2) {
					m->xWrite(f->real, f->u[i].new, (int)f->u[i].len,
						  f->u[i].off);
					F.redone++;
				}
		undo_free(f);
	}
	F.dead = true;
}

/* Count a write point; true if this one must fail. */
static bool fault_now(void)
{
	if (!F.n || F.fired)
		return false;
	if (++F.count < F.n)
		return false;
	F.fired = true;
	if (F.mode == F_IOERR_DEAD)
		F.dead = true;
	else if (F.mode == F_POWER_CUT || F.mode == F_POWER_CUT_SOME)
		power_cut();
	return true;
}

static bool recording(void)
{
	return F.n && (F.mode == F_POWER_CUT || F.mode == F_POWER_CUT_SOME) && !F.dead;
}

static int f_close(sqlite3_file *pf)
{
	struct ffile *f = (struct ffile *)pf;
	int rc;

	if (f->nu)
		F.unsynced_at_close++;
	undo_free(f);
	free(f->u);
	for (struct ffile **pp = &F.files; *pp; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	rc = f->real->pMethods->xClose(f->real);
	return rc;
}

static int f_read(sqlite3_file *pf, void *buf, int amt, sqlite3_int64 off)
{
	struct ffile *f = (struct ffile *)pf;

	return f->real->pMethods->xRead(f->real, buf, amt, off);
}

static int f_write(sqlite3_file *pf, const void *buf, int amt, sqlite3_int64 off)
{
	struct ffile *f = (struct ffile *)pf;

	if (F.dead)
		return SQLITE_IOERR_WRITE;
	if (f->tracked && fault_now())
		return SQLITE_IOERR_WRITE;
	if (f->tracked && recording())
		record(f, off, (size_t)amt, buf);
	return f->real->pMethods->xWrite(f->real, buf, amt, off);
}

static int f_truncate(sqlite3_file *pf, sqlite3_int64 size)
{
	struct ffile *f = (struct ffile *)pf;
	sqlite3_int64 cur = 0;

	if (F.dead)
		return SQLITE_IOERR_TRUNCATE;
	if (f->tracked && recording()) {
		f->real->pMethods->xFileSize(f->real, &cur);
		if (cur > size)
			record(f, size, (size_t)(cur - size), NULL);
	}
	return f->real->pMethods->xTruncate(f->real, size);
}

static int f_sync(sqlite3_file *pf, int flags)
{
	struct ffile *f = (struct ffile *)pf;
	int rc;

	if (F.dead)
		return SQLITE_IOERR_FSYNC;
	if (f->tracked && fault_now())
		return SQLITE_IOERR_FSYNC;
	rc = f->real->pMethods->xSync(f->real, flags);
	if (rc == SQLITE_OK)
		undo_free(f);
	return rc;
}

static int f_file_size(sqlite3_file *pf, sqlite3_int64 *size)
{
	struct ffile *f = (struct ffile *)pf;

	return f->real->pMethods->xFileSize(f->real, size);
}

static int f_lock(sqlite3_file *pf, int lock)
{
	struct ffile *f = (struct ffile *)pf;

	return f->real->pMethods->xLock(f->real, lock);
}

static int f_unlock(sqlite3_file *pf, int lock)
{
	struct ffile *f = (struct ffile *)pf;

	return f->real->pMethods->xUnlock(f->real, lock);
}

static int f_check_reserved(sqlite3_file *pf, int *out)
{
	struct ffile *f = (struct ffile *)pf;

	return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int f_file_control(sqlite3_file *pf, int op, void *arg)
{
	struct ffile *f = (struct ffile *)pf;

	return f->real->pMethods->xFileControl(f->real, op, arg);
}

static int f_sector_size(sqlite3_file *pf)
{
	struct ffile *f = (struct ffile *)pf;

	return f->real->pMethods->xSectorSize(f->real);
}

static int f_device_characteristics(sqlite3_file *pf)
{
	struct ffile *f = (struct ffile *)pf;

	return f->real->pMethods->xDeviceCharacteristics(f->real);
}

static int f_shm_map(sqlite3_file *pf, int pg, int pgsz, int extend, void volatile **pp)
{
	struct ffile *f = (struct ffile *)pf;

	return f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, pp);
}

static int f_shm_lock(sqlite3_file *pf, int offset, int n, int flags)
{
	struct ffile *f = (struct ffile *)pf;

	return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void f_shm_barrier(sqlite3_file *pf)
{
	struct ffile *f = (struct ffile *)pf;

	f->real->pMethods->xShmBarrier(f->real);
}

static int f_shm_unmap(sqlite3_file *pf, int del)
{
	struct ffile *f = (struct ffile *)pf;

	return f->real->pMethods->xShmUnmap(f->real, del);
}

static int f_fetch(sqlite3_file *pf, sqlite3_int64 off, int amt, void **pp)
{
	struct ffile *f = (struct ffile *)pf;

	*pp = NULL; /* no memory-mapped I/O: every byte goes through xRead/xWrite */
	(void)f;
	(void)off;
	(void)amt;
	return SQLITE_OK;
}

static int f_unfetch(sqlite3_file *pf, sqlite3_int64 off, void *p)
{
	(void)pf;
	(void)off;
	(void)p;
	return SQLITE_OK;
}

static const sqlite3_io_methods f_methods = {
    .iVersion = 3,
    .xClose = f_close,
    .xRead = f_read,
    .xWrite = f_write,
    .xTruncate = f_truncate,
    .xSync = f_sync,
    .xFileSize = f_file_size,
    .xLock = f_lock,
    .xUnlock = f_unlock,
    .xCheckReservedLock = f_check_reserved,
    .xFileControl = f_file_control,
    .xSectorSize = f_sector_size,
    .xDeviceCharacteristics = f_device_characteristics,
    .xShmMap = f_shm_map,
    .xShmLock = f_shm_lock,
    .xShmBarrier = f_shm_barrier,
    .xShmUnmap = f_shm_unmap,
    .xFetch = f_fetch,
    .xUnfetch = f_unfetch,
};

static int f_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *pf, int flags, int *out_flags)
{
	struct ffile *f = (struct ffile *)pf;
	int rc;

	(void)vfs;
	memset(f, 0, sizeof(*f));
	f->real = (sqlite3_file *)(f + 1);
	rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
	if (!f->real->pMethods) {
		f->base.pMethods = NULL;
		return rc;
	}
	f->base.pMethods = &f_methods;
	f->tracked = (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)) != 0;
	f->next = F.files;
	F.files = f;
	return rc;
}

static int f_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	(void)vfs;
	if (F.dead)
		return SQLITE_IOERR_DELETE;
	return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int faulty_register(void)
{
	real_vfs = sqlite3_vfs_find(NULL);
	if (!real_vfs)
		return -1;
	faulty_vfs = *real_vfs;
	faulty_vfs.zName = "faulty";
	faulty_vfs.szOsFile = (int)sizeof(struct ffile) + real_vfs->szOsFile;
	faulty_vfs.xOpen = f_open;
	faulty_vfs.xDelete = f_delete;
	faulty_vfs.pNext = NULL;
	return sqlite3_vfs_register(&faulty_vfs, 0) == SQLITE_OK ? 0 : -1;
}

static void fault_disarm(void)
{
	F.mode = F_NONE;
	F.n = 0;
	F.count = 0;
	F.fired = false;
	F.dead = false;
}

/* ---- the mutations and what old and new look like ------------------------------------ */

struct op {
	const char *name;
	int (*run)(struct store *s);
	/* 1: the store holds the new state, 0: the old one, -1: a mix or garbage */
	int (*state)(struct store *s);
	int audit_rows; /* rows the mutation appends when it commits (net of rotation) */
	int bumps;	/* counter steps when it commits */
};

static int audit_count_cb(const struct store_audit *a, void *arg)
{
	(void)a;
	++*(int *)arg;
	return 0;
}

static int audit_count(struct store *s)
{
	int n = 0;

	if (store_audit_list(s, 100000, audit_count_cb, &n) != STORE_OK)
		return -1;
	return n;
}

static int op_set_version(struct store *s)
{
	uint8_t u[16], d[32];

	make_uuid(u, 0x90, 7);
	version_digest(2, d);
	return store_vtpm_set_version(s, u, 2, d);
}

static int st_set_version(struct store *s)
{
	struct store_vtpm v;
	uint8_t u[16], d[32];

	make_uuid(u, 0x90, 7);
	if (store_vtpm_get(s, u, &v) != STORE_OK)
		return -1;
	version_digest(v.version, d);
	if (memcmp(d, v.digest, 32) != 0)
		return -1;
	return v.version == 2 ? 1 : v.version == 1 ? 0 : -1;
}

static int op_group_add(struct store *s)
{
	struct store_group g;

	make_group(&g, "g3", 3);
	return store_group_add(s, &admin, &g);
}

static int st_group_add(struct store *s)
{
	struct store_group g, want;
	int rc = store_group_get_by_name(s, "g3", &g);

	if (rc == STORE_NOT_FOUND)
		return 0;
	make_group(&want, "g3", 3);
	if (rc != STORE_OK || g.npatterns != 3 || g.ndigests != 3 ||
	    memcmp(g.uuid, want.uuid, 16) != 0 || g.wrapped_key_len != 60 ||
	    memcmp(g.wrapped_key, want.wrapped_key, 60) != 0)
		return -1;
	return 1;
}

static int op_vtpm_delete(struct store *s)
{
	uint8_t u[16];

	make_uuid(u, 0x90, 3);
	return store_vtpm_delete(s, &admin, u);
}

static int st_vtpm_delete(struct store *s)
{
	struct store_vtpm v;
	uint8_t u[16];
	int rc;

	make_uuid(u, 0x90, 3);
	rc = store_vtpm_get(s, u, &v);
	return rc == STORE_NOT_FOUND ? 1 : rc == STORE_OK ? 0 : -1;
}

static int op_host_put(struct store *s)
{
	struct store_host h;
	int rc = store_host_get(s, &h);

	if (rc)
		return rc;
	h.pcr_mask = 0x1;
	h.sealed_root_len = 3000;
	memset(h.sealed_root, 0x44, h.sealed_root_len);
	return store_host_put(s, &admin, &h);
}

static int st_host_put(struct store *s)
{
	struct store_host h;

	if (store_host_get(s, &h) != STORE_OK)
		return -1;
	if (h.pcr_mask == 0x1 && h.sealed_root_len == 3000 && h.sealed_root[2999] == 0x44)
		return 1;
	if (h.pcr_mask == 0x80ff && h.sealed_root_len == 400 && h.sealed_root[399] == 0x33)
		return 0;
	return -1;
}

static int op_guard_put(struct store *s)
{
	struct store_guard g = {
	    .epoch = 7, .state = STORE_GUARD_CLEAN, .tpm_reset_count = 3, .time = 12345};

	return store_guard_put(s, &g);
}

static int st_guard_put(struct store *s)
{
	struct store_guard g;

	if (store_guard_get(s, &g) != STORE_OK)
		return -1;
	if (g.epoch == 7 && g.state == STORE_GUARD_CLEAN && g.tpm_reset_count == 3 &&
	    g.time == 12345)
		return 1;
	if (g.epoch == 0 && g.state == STORE_GUARD_RUNNING && g.tpm_reset_count == 0 && g.time == 0)
		return 0;
	return -1;
}

static int oldest_audit_cb(const struct store_audit *a, void *arg)
{
	memcpy(arg, a, sizeof(*a)); /* newest first: the last one listed is the oldest */
	return 0;
}

/* An append to a full log (keep = its size): one row in, the oldest out, one transaction. */
static int op_audit_rotate(struct store *s)
{
	uint64_t n = 0;
	int rc = store_audit_count(s, &n);

	if (rc)
		return rc;
	store_set_audit_keep(s, n);
	return store_audit_append(s, &admin, "crash-append", "log", "denied: test");
}

static int st_audit_rotate(struct store *s)
{
	struct store_audit newest, oldest;
	uint64_t n = 0;

	memset(&newest, 0, sizeof(newest));
	memset(&oldest, 0, sizeof(oldest));
	if (store_audit_count(s, &n) != STORE_OK ||
	    store_audit_list(s, 1, oldest_audit_cb, &newest) != STORE_OK ||
	    store_audit_list(s, 100000, oldest_audit_cb, &oldest) != STORE_OK)
		return -1;
	if (strcmp(newest.action, "crash-append") == 0)
		return oldest.id == 2 && n == (uint64_t)newest.id - 1 ? 1 : -1;
	return oldest.id == 1 && n == (uint64_t)newest.id ? 0 : -1;
}

/* One transaction: add vTPM 30, migrate vTPM 5 out, delete vTPM 6. */
static int op_composite(struct store *s)
{
	struct store_vtpm v;
	uint8_t g[16], u[16];
	int rc;

	make_uuid(g, 0x60, 1);
	make_vtpm(&v, 30, g);
	rc = store_begin(s);
	if (rc)
		return rc;
	rc = store_vtpm_add(s, &admin, &v);
	make_uuid(u, 0x90, 5);
	if (!rc)
		rc = store_vtpm_set_state(s, &admin, u, STORE_VTPM_MIGRATED_OUT);
	make_uuid(u, 0x90, 6);
	if (!rc)
		rc = store_vtpm_delete(s, &admin, u);
	if (rc) {
		store_rollback(s);
		return rc;
	}
	return store_commit(s);
}

static int st_composite(struct store *s)
{
	struct store_vtpm v;
	uint8_t u[16];
	int a, b, c;

	make_uuid(u, 0x90, 30);
	a = store_vtpm_get(s, u, &v) == STORE_OK;
	make_uuid(u, 0x90, 5);
	if (store_vtpm_get(s, u, &v) != STORE_OK)
		return -1;
	b = strcmp(v.state, STORE_VTPM_MIGRATED_OUT) == 0;
	make_uuid(u, 0x90, 6);
	c = store_vtpm_get(s, u, &v) == STORE_NOT_FOUND;
	if (a && b && c)
		return 1;
	if (!a && !b && !c)
		return 0;
	return -1;
}

static const struct op ops[] = {
    {"set_version", op_set_version, st_set_version, 0, 1},
    {"group_add", op_group_add, st_group_add, 1, 1},
    {"vtpm_delete (+ WAL checkpoint)", op_vtpm_delete, st_vtpm_delete, 1, 1},
    {"host_put", op_host_put, st_host_put, 1, 1},
    {"begin/add/set_state/delete/commit", op_composite, st_composite, 3, 1},
    {"guard_put", op_guard_put, st_guard_put, 0, 1},
    {"audit append to a full log (rotation)", op_audit_rotate, st_audit_rotate, 0, 0},
};

static const char *const mode_names[] = {
    [F_IOERR_ONCE] = "I/O error once",
    [F_IOERR_DEAD] = "I/O error, then a dead disk",
    [F_POWER_CUT] = "power cut (unsynced writes lost)",
    [F_POWER_CUT_SOME] = "power cut (a random part of the unsynced writes lost)",
};

/*
 * One op under one mode, at every write point in turn. Returns the number of points,
 * or -1 after reporting a failure. base: a closed store to start from each time.
 */
static int fault_sweep(const struct op *op, enum fault_mode mode, const char *base,
		       const char *work, int *news)
{
	char wal[160];
	struct store *s;
	uint64_t c0, c1;
	int n, rc, state, audit0, audit1;
	bool exhausted = false;

	snprintf(wal, sizeof(wal), "%s-wal", work);
	for (n = 1; !exhausted; n++) {
		if (n > 400)
			return CHECKF(false, "%s: more than 400 write points?", op->name), -1;
		remove_db(work);
		if (copy_file(base, work) != 0)
			return CHECKF(false, "copy"), -1;
		fault_disarm();
		s = open_ready(work, "faulty", &c0);
		if (!s)
			return CHECKF(false, "open through the faulty VFS"), -1;
		audit0 = audit_count(s);
		F.mode = mode;
		F.n = n;
		rc = op->run(s);
		exhausted = !F.fired;
		if (exhausted && (mode == F_POWER_CUT || mode == F_POWER_CUT_SOME))
			power_cut(); /* right after the mutation returned */
		if (exhausted && !CHECKF(rc == STORE_OK, "%s: no fault, yet %d (%s)", op->name, rc,
					 store_errmsg(s))) {
			store_close(s);
			return -1;
		}
		store_close(s);
		fault_disarm();

		s = open_ready(work, NULL, &c1);
		if (!CHECKF(s,
			    "%s, %s, point %d: the store does not open and verify after the "
			    "fault (op returned %d)",
			    op->name, mode_names[mode], n, rc))
			return -1;
		state = op->state(s);
		audit1 = audit_count(s);
		store_close(s);
		if (!CHECKF(state >= 0, "%s, %s, point %d: neither the old nor the new state",
			    op->name, mode_names[mode], n))
			return -1;
		if (!CHECKF(state == 1 || rc != STORE_OK,
			    "%s, %s, point %d: returned STORE_OK but the change is lost", op->name,
			    mode_names[mode], n))
			return -1;
		if (!CHECKF(c1 == c0 + (uint64_t)(state * op->bumps),
			    "%s, %s, point %d: counter %llu for the %s state (was %llu)", op->name,
			    mode_names[mode], n, (unsigned long long)c1, state ? "new" : "old",
			    (unsigned long long)c0))
			return -1;
		if (!CHECKF(audit1 == audit0 + (state ? op->audit_rows : 0),
			    "%s, %s, point %d: %d audit rows, was %d, state %s", op->name,
			    mode_names[mode], n, audit1, audit0, state ? "new" : "old"))
			return -1;
		*news += state;
	}
	return n - 1;
}

static void test_faults(void)
{
	char base[128], work[128];
	int points, total = 0, news = 0;
	double start = now_us();

	if (faulty_register() != 0) {
		unit_begin("fault-injecting VFS");
		CHECKF(false, "cannot register the faulty VFS");
		unit_end();
		return;
	}
	snprintf(base, sizeof(base), "%s/fault-base.db", dir);
	snprintf(work, sizeof(work), "%s/fault.db", dir);
	unit_begin("fault base store");
	CHECK(make_base(base) == 0);
	unit_end();
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		for (int mode = F_IOERR_ONCE; mode <= F_POWER_CUT_SOME; mode++) {
			char name[160];
			int before = news;

			snprintf(name, sizeof(name), "%s: %s at every write point", ops[i].name,
				 mode_names[mode]);
			unit_begin(name);
			points = fault_sweep(&ops[i], (enum fault_mode)mode, base, work, &news);
			if (points > 0) {
				printf("# %s, %s: %d write points; the new state after %d faults "
				       "(and the run without one)\n",
				       ops[i].name, mode_names[mode], points - 1,
				       news - before - 1);
				total += points - 1;
			}
			unit_end();
		}
	}
	printf("# faults: %d faults injected, %.1f s; power cuts undid %ld unsynced writes "
	       "(%ld of them written again in the partial mode)\n",
	       total, (now_us() - start) / 1e6, F.undone, F.redone);
	unit_begin("power cuts really lost unsynced writes");
	CHECKF(F.undone > 0 && F.redone > 0 && F.redone < F.undone, "undone %ld, redone %ld",
	       F.undone, F.redone);
	/* SQLite closed no file with unsynced writes (which this VFS could not undo) */
	CHECKF(F.unsynced_at_close == 0, "%d files closed unsynced", F.unsynced_at_close);
	unit_end();
	remove_db(base);
	remove_db(work);
}

/* ---- part 3: the upgrade from version 1 under faults ------------------------------------ */

/* the key tests/unit/fixtures/store_v1.hex was written with (see its README) */
static const uint8_t v1_key[STORE_MAC_KEY_LEN] = {
    0x5a, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0xa5};

static int load_fixture(const char *name, const char *path)
{
	const char *top = getenv("VTPM_TOP");
	char fx[512], line[256];
	FILE *in, *out;
	unsigned int b;
	int rc = 0;

	snprintf(fx, sizeof(fx), "%s/tests/unit/fixtures/%s", top ? top : ".", name);
	remove_db(path);
	in = fopen(fx, "r");
	if (!in) {
		printf("# %s: %s\n", fx, strerror(errno));
		return -1;
	}
	out = fopen(path, "wb");
	if (!out) {
		fclose(in);
		return -1;
	}
	while (rc == 0 && fgets(line, sizeof(line), in))
		for (char *p = line; p[0] && p[0] != '\n'; p += 2)
			if (sscanf(p, "%2x", &b) != 1 || fputc((int)b, out) == EOF) {
				rc = -1;
				break;
			}
	fclose(in);
	if (fclose(out) != 0)
		rc = -1;
	return rc;
}

/* The fixtures an upgrade starts from (their README): the vTPM whose version is checked. */
static const struct upgrade_fixture {
	const char *file;
	int version;	  /* its schema version */
	uint64_t counter; /* its store counter */
	uint8_t uuid_last;
	uint64_t vtpm_version;
} upgrade_fixtures[] = {
    {"store_v1.hex", 1, 7, 0x02, 7}, /* vTPM 90..90:02 */
    {"store_v2.hex", 2, 4, 0x90, 3}, /* vTPM 90..90 */
};

/* After a fault in store_verify's upgrade: the old version or the current one, whole, and it
 * verifies. */
static int upgrade_state(const struct upgrade_fixture *fx, const char *work, int verify_rc,
			 int mode, int n)
{
	char err[ERRLEN];
	struct store *s = NULL;
	struct store_vtpm v;
	uint8_t u[16];
	uint64_t c = 0;
	int version, rc;

	if (!CHECKF(store_open(&s, work, NULL, err, sizeof(err)) == STORE_OK, "%s", err))
		return -1;
	version = store_schema_version(s);
	store_set_mac_key(s, v1_key);
	rc = store_verify(s, &c, err, sizeof(err));
	memset(u, 0x90, sizeof(u));
	u[15] = fx->uuid_last;
	if (!CHECKF(rc == STORE_OK, "%s, point %d: verify %d (%s)", mode_names[mode], n, rc, err) ||
	    !CHECKF(version == fx->version || version == STORE_SCHEMA_VERSION,
		    "%s, point %d: version %d", mode_names[mode], n, version) ||
	    !CHECKF(verify_rc != STORE_OK || version == STORE_SCHEMA_VERSION,
		    "%s, point %d: upgrade returned STORE_OK, but the file is version %d",
		    mode_names[mode], n, version) ||
	    !CHECKF(c == fx->counter && store_vtpm_get(s, u, &v) == STORE_OK &&
			v.version == fx->vtpm_version,
		    "%s, point %d: content changed", mode_names[mode], n)) {
		store_close(s);
		return -1;
	}
	store_close(s);
	return version == STORE_SCHEMA_VERSION;
}

static void test_upgrade_faults(void)
{
	char work[128], err[ERRLEN];
	struct store *s;
	uint64_t c;
	int rc, state, news, points;
	bool exhausted;

	snprintf(work, sizeof(work), "%s/upgrade.db", dir);
	for (size_t f = 0; f < sizeof(upgrade_fixtures) / sizeof(upgrade_fixtures[0]); f++)
		for (int mode = F_IOERR_ONCE; mode <= F_POWER_CUT_SOME; mode++) {
			const struct upgrade_fixture *fx = &upgrade_fixtures[f];
			char name[160];

			snprintf(name, sizeof(name), "upgrade v%d -> v%d: %s at every write point",
				 fx->version, STORE_SCHEMA_VERSION, mode_names[mode]);
			unit_begin(name);
			news = 0;
			exhausted = false;
			for (points = 1; !exhausted && points <= 400; points++) {
				s = NULL;
				fault_disarm();
				if (!CHECK(load_fixture(fx->file, work) == 0) ||
				    !CHECK(store_open(&s, work, "faulty", err, sizeof(err)) ==
					   STORE_OK))
					break;
				store_set_mac_key(s, v1_key);
				F.mode = (enum fault_mode)mode;
				F.n = points;
				rc = store_verify(s, &c, err, sizeof(err));
				exhausted = !F.fired;
				if (exhausted && (mode == F_POWER_CUT || mode == F_POWER_CUT_SOME))
					power_cut();
				if (exhausted &&
				    !CHECKF(rc == STORE_OK, "no fault, yet %d (%s)", rc, err))
					break;
				store_close(s);
				fault_disarm();
				state = upgrade_state(fx, work, rc, mode, points);
				if (state < 0)
					break;
				news += state;
			}
			printf("# upgrade from v%d, %s: %d write points; version %d after %d "
			       "faults (and "
			       "the run without one)\n",
			       fx->version, mode_names[mode], points - 2, STORE_SCHEMA_VERSION,
			       news - 1);
			CHECKF(exhausted, "the upgrade never ran out of write points");
			unit_end();
		}
	remove_db(work);
}

static void cleanup_dir(void)
{
	char p[512];
	struct dirent *e;
	DIR *d = opendir(dir);

	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
			unlink(p);
		}
	if (d)
		closedir(d);
	rmdir(dir);
}

int main(void)
{
	const char *seed = getenv("VTPM_TEST_SEED");

	rng_state = seed ? strtoull(seed, NULL, 0) : (unsigned long long)time(NULL);
	printf("# seed %llu (VTPM_TEST_SEED to replay)\n", rng_state);
	snprintf(dir, sizeof(dir), "/tmp/vtpm-store-crash-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_faults();
	test_upgrade_faults();
	test_kill9();
	cleanup_dir();
	return unit_exit();
}
