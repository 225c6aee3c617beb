/*
 * test_store.c — vtpmmgrd's SQLite store: schema, CRUD, audit, MAC and rollback guard.
 * (Every column of every covered table, old-row swaps, guard and upgrade: test_store_mac.c.)
 *
 * Tampering is done the way an attacker with the disk would: the store is closed, the
 * file is changed with the plain sqlite3 API, and the store reopened. Every case checks
 * that the counter grows by exactly one per committed mutation and not at all otherwise.
 * Also prints "# set_version: ..." timing lines (synchronous=FULL on this disk).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/aead.h"
#include "common/mgr_proto.h"
#include "vtpmmgrd/store.h"
#include "unit.h"

#define ERRLEN 512

static char dir[64];
static const uint8_t key[STORE_MAC_KEY_LEN] = {
    0x5a, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0xa5};
static const struct store_actor admin = {.uid = 0, .pid = 4242};

/* ---- helpers ------------------------------------------------------------------------- */

static void path_of(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
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
		return errno == ENOENT ? 1 : -1;
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

/* Copy a closed store (its file and, if any, its WAL). */
static int copy_db(const char *from, const char *to)
{
	char a[256], b[256];

	remove_db(to);
	if (copy_file(from, to) != 0)
		return -1;
	snprintf(a, sizeof(a), "%s-wal", from);
	snprintf(b, sizeof(b), "%s-wal", to);
	return copy_file(a, b) < 0 ? -1 : 0;
}

/* Run SQL on a (closed) store with the plain sqlite3 API, as an attacker would. */
static int raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	char *msg = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		printf("# raw_exec(%s): %s\n", sql, msg ? msg : sqlite3_errmsg(db));
	sqlite3_free(msg);
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

static long long raw_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long v = -1;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* Open, set the key, verify: the ordinary start of vtpmmgrd. NULL on failure (printed). */
static struct store *open_ready(const char *path, uint64_t *counter)
{
	struct store *s = NULL;
	char err[ERRLEN];
	uint64_t c;
	int rc;

	rc = store_open(&s, path, NULL, err, sizeof(err));
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

static uint64_t counter_of(struct store *s)
{
	uint64_t c = UINT64_MAX;

	if (store_counter(s, &c) != STORE_OK)
		return UINT64_MAX;
	return c;
}

static void make_uuid(uint8_t u[16], uint8_t tag, uint8_t n)
{
	memset(u, tag, 16);
	u[15] = n;
}

static void make_host(struct store_host *h, uint32_t mask)
{
	memset(h, 0, sizeof(*h));
	h->pcr_mask = mask;
	h->nv_index = 0x01500016;
	h->sealed_root_len = 300;
	memset(h->sealed_root, 0x33, h->sealed_root_len);
	h->ak_public_len = 91;
	memset(h->ak_public, 0x30, h->ak_public_len);
}

static void make_group(struct store_group *g, const char *name, uint8_t n)
{
	memset(g, 0, sizeof(*g));
	make_uuid(g->uuid, 0x60, n);
	snprintf(g->name, sizeof(g->name), "%s", name);
	g->npatterns = 2;
	snprintf(g->patterns[0], sizeof(g->patterns[0]), "*:vm_r:vtpm_t");
	snprintf(g->patterns[1], sizeof(g->patterns[1]), "guest%u_u:vm_r:vtpm_t", n);
	g->ndigests = 2;
	memset(g->digests[0], 0xd2, 32);
	memset(g->digests[1], 0xd1, 32);
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

/* A store with a host record, two groups (g1, g2) and two vTPMs in g1. */
static int populate(struct store *s)
{
	struct store_host h;
	struct store_group g;
	struct store_vtpm v;
	int rc;

	make_host(&h, 0x80ff);
	rc = store_host_put(s, &admin, &h);
	make_group(&g, "g1", 1);
	if (!rc)
		rc = store_group_add(s, &admin, &g);
	make_group(&g, "g2", 2);
	g.any_digest = true;
	g.ndigests = 0;
	if (!rc)
		rc = store_group_add(s, &admin, &g);
	make_group(&g, "g1", 1);
	make_vtpm(&v, 1, g.uuid);
	if (!rc)
		rc = store_vtpm_add(s, &admin, &v);
	make_vtpm(&v, 2, g.uuid);
	if (!rc)
		rc = store_vtpm_add(s, &admin, &v);
	if (rc)
		printf("# populate: %d %s\n", rc, store_errmsg(s));
	return rc;
}

static bool file_contains(const char *path, const uint8_t *pat, size_t n)
{
	static uint8_t buf[1 << 22];
	ssize_t len;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool found = false;

	if (fd < 0)
		return false;
	len = read(fd, buf, sizeof(buf));
	close(fd);
	for (ssize_t i = 0; len > 0 && i + (ssize_t)n <= len && !found; i++)
		found = memcmp(buf + i, pat, n) == 0;
	return found;
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* ---- cases ----------------------------------------------------------------------------- */

static void test_create_reopen(void)
{
	char path[128], err[ERRLEN];
	struct store *s = NULL;
	struct store_host h;
	struct stat st;
	uint64_t c = 99;

	unit_begin("schema creation and reopen");
	path_of(path, sizeof(path), "create.db");
	remove_db(path);
	if (!CHECKF(store_open(&s, path, NULL, err, sizeof(err)) == STORE_OK, "%s", err))
		goto out;
	CHECK(store_schema_version(s) == STORE_SCHEMA_VERSION);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	/* rule 2: reads work before verify; a fresh store is valid without a key */
	CHECK(store_host_get(s, &h) == STORE_NOT_FOUND);
	CHECKF(store_verify(s, &c, err, sizeof(err)) == STORE_OK && c == 0, "%s", err);
	store_close(s);
	s = NULL;
	CHECK(raw_int(path, "PRAGMA user_version") == STORE_SCHEMA_VERSION);
	CHECK(raw_int(path, "SELECT count(*) FROM sqlite_schema WHERE type = 'table'") == 7);
	CHECK(raw_int(path, "SELECT counter FROM meta") == 0);
	CHECK(raw_int(path, "SELECT mac IS NULL FROM meta") == 1);
	if (!CHECKF(store_open(&s, path, NULL, err, sizeof(err)) == STORE_OK, "%s", err))
		goto out;
	CHECK(store_schema_version(s) == STORE_SCHEMA_VERSION);
	c = 99;
	CHECKF(store_verify(s, &c, err, sizeof(err)) == STORE_OK && c == 0, "%s", err);
	store_close(s);
	s = NULL;
	/* a looser mode on an existing file is tightened */
	CHECK(chmod(path, 0644) == 0);
	if (!CHECKF(store_open(&s, path, NULL, err, sizeof(err)) == STORE_OK, "%s", err))
		goto out;
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	/* locking_mode=EXCLUSIVE: while the store is open, nobody else may even read it */
	CHECK(raw_int(path, "SELECT count(*) FROM host") == -1);
out:
	store_close(s);
	unit_end();
}

static void test_key_and_verify_rules(void)
{
	char path[128], err[ERRLEN];
	struct store *s = NULL;
	struct store_host h;
	uint64_t c = 99;

	unit_begin("mutations need the key and a verify");
	path_of(path, sizeof(path), "rules.db");
	remove_db(path);
	if (!CHECKF(store_open(&s, path, NULL, err, sizeof(err)) == STORE_OK, "%s", err))
		goto out;
	make_host(&h, 1);
	CHECK(store_host_put(s, &admin, &h) == STORE_NO_KEY);
	store_set_mac_key(s, key);
	CHECK(store_host_put(s, &admin, &h) == STORE_NOT_VERIFIED);
	CHECK(strstr(store_errmsg(s), "verified") != NULL);
	CHECK(store_verify(s, &c, err, sizeof(err)) == STORE_OK && c == 0);
	CHECKF(store_host_put(s, &admin, &h) == STORE_OK, "%s", store_errmsg(s));
	CHECK(counter_of(s) == 1);
	/* setting the key again clears the verified mark */
	store_set_mac_key(s, key);
	CHECK(store_host_put(s, &admin, &h) == STORE_NOT_VERIFIED);
	CHECK(store_verify(s, &c, err, sizeof(err)) == STORE_OK && c == 1);
	store_close(s);
	s = NULL;
	/* a provisioned store cannot be verified without the key */
	if (!CHECKF(store_open(&s, path, NULL, err, sizeof(err)) == STORE_OK, "%s", err))
		goto out;
	CHECK(store_verify(s, &c, err, sizeof(err)) == STORE_NO_KEY);
	CHECKF(strstr(err, "key is not set") != NULL, "%s", err);
out:
	store_close(s);
	unit_end();
}

static void test_host(void)
{
	char path[128];
	struct store *s;
	struct store_host h, got;
	uint64_t c0;

	unit_begin("host record get/put/replace");
	path_of(path, sizeof(path), "host.db");
	remove_db(path);
	s = open_ready(path, &c0);
	if (!CHECK(s))
		goto out;
	CHECK(store_host_get(s, &got) == STORE_NOT_FOUND);
	CHECK(strstr(store_errmsg(s), "not provisioned") != NULL);
	make_host(&h, 0x80ff);
	h.created = 1700000000;
	CHECK(store_host_put(s, &admin, &h) == STORE_OK);
	CHECK(counter_of(s) == c0 + 1);
	CHECK(store_host_get(s, &got) == STORE_OK);
	CHECK(got.pcr_mask == 0x80ff && got.nv_index == h.nv_index && got.created == 1700000000);
	CHECK(got.sealed_root_len == 300 && memcmp(got.sealed_root, h.sealed_root, 300) == 0);
	CHECK(got.ak_public_len == 91 && memcmp(got.ak_public, h.ak_public, 91) == 0);
	make_host(&h, 0x1);
	h.sealed_root_len = STORE_BLOB_MAX;
	memset(h.sealed_root, 0x44, STORE_BLOB_MAX);
	CHECK(store_host_put(s, &admin, &h) == STORE_OK);
	CHECK(counter_of(s) == c0 + 2);
	CHECK(store_host_get(s, &got) == STORE_OK);
	CHECK(got.pcr_mask == 1 && got.sealed_root_len == STORE_BLOB_MAX && got.created > 0);
	CHECK(got.sealed_next_len == 0 && got.next_created == 0);
	/* the predicted copy: kept, read back, replaced by none (NULL) */
	h.sealed_next_len = 200;
	memset(h.sealed_next, 0x55, 200);
	h.next_created = 0;
	CHECK(store_host_put(s, &admin, &h) == STORE_OK);
	CHECK(store_host_get(s, &got) == STORE_OK);
	CHECK(got.sealed_next_len == 200 && got.sealed_next[199] == 0x55 && got.next_created > 0);
	CHECK(got.sealed_root_len == STORE_BLOB_MAX && got.pcr_mask == 1);
	h.sealed_next_len = STORE_BLOB_MAX + 1;
	CHECK(store_host_put(s, &admin, &h) == STORE_INVALID);
	h.sealed_next_len = 0;
	CHECK(store_host_put(s, &admin, &h) == STORE_OK);
	CHECK(store_host_get(s, &got) == STORE_OK && got.sealed_next_len == 0 &&
	      got.next_created == 0);
	CHECK(counter_of(s) == c0 + 4);
	h.sealed_root_len = 0;
	CHECK(store_host_put(s, &admin, &h) == STORE_INVALID);
	CHECK(counter_of(s) == c0 + 4);
	store_close(s);
	CHECK(raw_int(path, "SELECT count(*) FROM host") == 1);
	CHECK(raw_int(path, "SELECT count(*) FROM host WHERE sealed_next IS NULL"
			    " AND next_created = 0") == 1);
out:
	unit_end();
}

struct collect {
	int n;
	uint8_t uuids[16][16];
	char names[16][STORE_NAME_MAX + 1];
};

static int collect_group(const struct store_group *g, void *arg)
{
	struct collect *c = arg;

	if (c->n < 16) {
		memcpy(c->uuids[c->n], g->uuid, 16);
		snprintf(c->names[c->n], sizeof(c->names[0]), "%s", g->name);
	}
	c->n++;
	return 0;
}

static int collect_vtpm(const struct store_vtpm *v, void *arg)
{
	struct collect *c = arg;

	if (c->n < 16)
		memcpy(c->uuids[c->n], v->uuid, 16);
	c->n++;
	return 0;
}

static int stop_at_first(const struct store_group *g, void *arg)
{
	(void)g;
	(void)arg;
	return 77;
}

static void test_groups(void)
{
	char path[128];
	struct store *s;
	struct store_group g, got;
	struct collect col = {0};
	uint8_t u[16];
	uint64_t c0;

	unit_begin("groups add/get/list/delete, unique name");
	path_of(path, sizeof(path), "groups.db");
	remove_db(path);
	s = open_ready(path, &c0);
	if (!CHECK(s))
		goto out;
	make_group(&g, "g2", 2);
	CHECK(store_group_add(s, &admin, &g) == STORE_OK);
	make_group(&g, "g1", 1);
	CHECK(store_group_add(s, &admin, &g) == STORE_OK);
	CHECK(counter_of(s) == c0 + 2);
	CHECK(store_group_get_by_name(s, "g1", &got) == STORE_OK);
	CHECK(memcmp(got.uuid, g.uuid, 16) == 0 && strcmp(got.name, "g1") == 0);
	CHECK(got.any_digest == false && got.wrapped_key_len == 60 &&
	      memcmp(got.wrapped_key, g.wrapped_key, 60) == 0 && got.created > 0);
	/* sets come back sorted */
	CHECK(got.npatterns == 2 && strcmp(got.patterns[0], "*:vm_r:vtpm_t") == 0 &&
	      strcmp(got.patterns[1], "guest1_u:vm_r:vtpm_t") == 0);
	CHECK(got.ndigests == 2 && got.digests[0][0] == 0xd1 && got.digests[1][0] == 0xd2);
	CHECK(store_group_get(s, g.uuid, &got) == STORE_OK && strcmp(got.name, "g1") == 0);
	CHECK(store_group_list(s, collect_group, &col) == STORE_OK);
	CHECK(col.n == 2 && strcmp(col.names[0], "g1") == 0 && strcmp(col.names[1], "g2") == 0);
	CHECK(store_group_list(s, stop_at_first, NULL) == 77);

	/* unique name, unique UUID, malformed requests: refused, counter unchanged */
	make_group(&g, "g1", 3);
	CHECK(store_group_add(s, &admin, &g) == STORE_EXISTS);
	CHECKF(strstr(store_errmsg(s), "named 'g1' exists") != NULL, "%s", store_errmsg(s));
	make_group(&g, "g3", 1);
	CHECK(store_group_add(s, &admin, &g) == STORE_EXISTS);
	CHECK(strstr(store_errmsg(s), "UUID") != NULL);
	make_group(&g, "g3", 3);
	snprintf(g.patterns[1], sizeof(g.patterns[1]), "*:vm_r:vtpm_t");
	CHECK(store_group_add(s, &admin, &g) == STORE_INVALID);
	make_group(&g, "g3", 3);
	memset(g.digests[1], 0xd2, 32);
	CHECK(store_group_add(s, &admin, &g) == STORE_INVALID);
	make_group(&g, "", 3);
	CHECK(store_group_add(s, &admin, &g) == STORE_INVALID);
	make_group(&g, "g3", 3);
	g.wrapped_key_len = 0;
	CHECK(store_group_add(s, &admin, &g) == STORE_INVALID);
	make_group(&g, "g3", 3);
	g.npatterns = STORE_MAX_PATTERNS + 1;
	CHECK(store_group_add(s, &admin, &g) == STORE_INVALID);
	CHECK(counter_of(s) == c0 + 2);
	CHECK(store_group_get_by_name(s, "g3", &got) == STORE_NOT_FOUND);

	/* a group with any_digest and no patterns/digests */
	make_group(&g, "g3", 3);
	g.npatterns = g.ndigests = 0;
	g.any_digest = true;
	CHECK(store_group_add(s, &admin, &g) == STORE_OK);
	CHECK(store_group_get_by_name(s, "g3", &got) == STORE_OK && got.any_digest &&
	      got.npatterns == 0 && got.ndigests == 0);
	CHECK(counter_of(s) == c0 + 3);

	CHECK(store_group_delete(s, &admin, "g2") == STORE_OK);
	CHECK(counter_of(s) == c0 + 4);
	make_uuid(u, 0x60, 2);
	CHECK(store_group_get(s, u, &got) == STORE_NOT_FOUND);
	CHECK(store_group_get_by_name(s, "g2", &got) == STORE_NOT_FOUND);
	CHECK(strstr(store_errmsg(s), "no group named 'g2'") != NULL);
	CHECK(store_group_delete(s, &admin, "g2") == STORE_NOT_FOUND);
	CHECK(counter_of(s) == c0 + 4);
	store_close(s);
	/* the patterns and digests went with it (ON DELETE CASCADE) */
	CHECK(raw_int(path, "SELECT count(*) FROM group_patterns") == 2);
	CHECK(raw_int(path, "SELECT count(*) FROM group_digests") == 2);
out:
	unit_end();
}

static void test_vtpms(void)
{
	char path[128];
	struct store *s;
	struct store_group g;
	struct store_vtpm v, got;
	struct collect col = {0};
	uint8_t d[32], u[16];
	uint64_t c0;

	unit_begin("vTPMs add/get/list/state/version/delete");
	path_of(path, sizeof(path), "vtpms.db");
	remove_db(path);
	s = open_ready(path, &c0);
	if (!CHECK(s))
		goto out;
	make_group(&g, "g1", 1);
	CHECK(store_group_add(s, &admin, &g) == STORE_OK);
	make_group(&g, "g2", 2);
	CHECK(store_group_add(s, &admin, &g) == STORE_OK);
	make_vtpm(&v, 2, g.uuid);
	CHECK(store_vtpm_add(s, &admin, &v) == STORE_OK);
	make_group(&g, "g1", 1);
	make_vtpm(&v, 1, g.uuid);
	v.version = 7;
	CHECK(store_vtpm_add(s, &admin, &v) == STORE_OK);
	CHECK(counter_of(s) == c0 + 4);
	CHECK(store_vtpm_add(s, &admin, &v) == STORE_EXISTS);
	make_uuid(u, 0x61, 9);
	make_vtpm(&v, 3, u);
	CHECK(store_vtpm_add(s, &admin, &v) == STORE_NOT_FOUND);
	CHECK(strstr(store_errmsg(s), "no group with UUID") != NULL);
	make_vtpm(&v, 3, g.uuid);
	snprintf(v.state, sizeof(v.state), "Running!");
	CHECK(store_vtpm_add(s, &admin, &v) == STORE_INVALID);
	CHECK(counter_of(s) == c0 + 4);

	make_vtpm(&v, 1, g.uuid);
	CHECK(store_vtpm_get(s, v.uuid, &got) == STORE_OK);
	CHECK(memcmp(got.group_uuid, g.uuid, 16) == 0 && got.version == 7 &&
	      got.wrapped_key_len == 60 && memcmp(got.wrapped_key, v.wrapped_key, 60) == 0 &&
	      got.digest[0] == 0xee && strcmp(got.state, "created") == 0 && got.created > 0);
	CHECK(store_vtpm_list(s, NULL, collect_vtpm, &col) == STORE_OK && col.n == 2 &&
	      col.uuids[0][15] == 1 && col.uuids[1][15] == 2);
	memset(&col, 0, sizeof(col));
	CHECK(store_vtpm_list(s, g.uuid, collect_vtpm, &col) == STORE_OK && col.n == 1 &&
	      col.uuids[0][15] == 1);

	CHECK(store_vtpm_set_state(s, &admin, v.uuid, STORE_VTPM_MIGRATED_OUT) == STORE_OK);
	CHECK(store_vtpm_get(s, v.uuid, &got) == STORE_OK &&
	      strcmp(got.state, "migrated-out") == 0);
	CHECK(store_vtpm_set_state(s, &admin, v.uuid, "BAD STATE") == STORE_INVALID);
	CHECK(counter_of(s) == c0 + 5);

	memset(d, 0x11, sizeof(d));
	CHECK(store_vtpm_set_version(s, v.uuid, 8, d) == STORE_OK);
	CHECK(counter_of(s) == c0 + 6);
	CHECK(store_vtpm_set_version(s, v.uuid, 1000, d) == STORE_OK); /* gaps are fine */
	CHECK(counter_of(s) == c0 + 7);
	CHECK(store_vtpm_get(s, v.uuid, &got) == STORE_OK && got.version == 1000 &&
	      got.digest[0] == 0x11);
	/* same version, same digest: nothing to do, no counter bump */
	CHECK(store_vtpm_set_version(s, v.uuid, 1000, d) == STORE_OK);
	CHECK(counter_of(s) == c0 + 7);
	/* older, or same with another digest: rollback */
	CHECK(store_vtpm_set_version(s, v.uuid, 999, d) == STORE_ROLLBACK);
	CHECKF(strstr(store_errmsg(s), "999 is not newer than the recorded 1000") != NULL, "%s",
	       store_errmsg(s));
	d[0] ^= 1;
	CHECK(store_vtpm_set_version(s, v.uuid, 1000, d) == STORE_ROLLBACK);
	CHECK(store_vtpm_set_version(s, v.uuid, (uint64_t)INT64_MAX + 1, d) == STORE_INVALID);
	make_uuid(u, 0x90, 77);
	CHECK(store_vtpm_set_version(s, u, 5, d) == STORE_NOT_FOUND);
	CHECK(counter_of(s) == c0 + 7);
	CHECK(store_vtpm_get(s, v.uuid, &got) == STORE_OK && got.version == 1000 &&
	      got.digest[0] == 0x11);

	CHECK(store_vtpm_delete(s, &admin, v.uuid) == STORE_OK);
	CHECK(counter_of(s) == c0 + 8);
	CHECK(store_vtpm_get(s, v.uuid, &got) == STORE_NOT_FOUND);
	CHECK(store_vtpm_delete(s, &admin, v.uuid) == STORE_NOT_FOUND);
	CHECK(store_vtpm_set_state(s, &admin, v.uuid, "created") == STORE_NOT_FOUND);
	CHECK(counter_of(s) == c0 + 8);
	store_close(s);
out:
	unit_end();
}

static void test_group_busy(void)
{
	char path[128];
	struct store *s;
	struct store_group g, got;
	struct store_vtpm v;
	uint64_t c0;

	unit_begin("group delete refused while it has vTPMs");
	path_of(path, sizeof(path), "busy.db");
	remove_db(path);
	s = open_ready(path, &c0);
	if (!CHECK(s))
		goto out;
	make_group(&g, "busy", 1);
	CHECK(store_group_add(s, &admin, &g) == STORE_OK);
	make_vtpm(&v, 1, g.uuid);
	CHECK(store_vtpm_add(s, &admin, &v) == STORE_OK);
	make_vtpm(&v, 2, g.uuid);
	CHECK(store_vtpm_add(s, &admin, &v) == STORE_OK);
	CHECK(store_group_delete(s, &admin, "busy") == STORE_BUSY);
	CHECKF(strstr(store_errmsg(s), "group 'busy' still has 2 vTPMs") != NULL, "%s",
	       store_errmsg(s));
	CHECK(counter_of(s) == c0 + 3);
	CHECK(store_group_get_by_name(s, "busy", &got) == STORE_OK && got.npatterns == 2);
	CHECK(store_vtpm_delete(s, &admin, v.uuid) == STORE_OK);
	CHECK(store_group_delete(s, &admin, "busy") == STORE_BUSY);
	CHECK(strstr(store_errmsg(s), "1 vTPM") != NULL);
	make_vtpm(&v, 1, g.uuid);
	CHECK(store_vtpm_delete(s, &admin, v.uuid) == STORE_OK);
	CHECK(store_group_delete(s, &admin, "busy") == STORE_OK);
	CHECK(counter_of(s) == c0 + 6);
	store_close(s);
out:
	unit_end();
}

struct audit_rows {
	int n;
	struct store_audit a[16];
};

static int collect_audit(const struct store_audit *a, void *arg)
{
	struct audit_rows *r = arg;

	if (r->n < 16)
		r->a[r->n] = *a;
	r->n++;
	return 0;
}

static bool audit_is(const struct store_audit *a, const char *action, const char *subject,
		     const char *result_prefix)
{
	return strcmp(a->action, action) == 0 && strcmp(a->subject, subject) == 0 &&
	       strncmp(a->result, result_prefix, strlen(result_prefix)) == 0 &&
	       a->uid == admin.uid && a->pid == admin.pid && a->time > 1600000000;
}

static void test_audit(void)
{
	char path[128], u1[37];
	struct store *s;
	struct store_group g;
	struct store_vtpm v;
	struct audit_rows r = {0};
	struct store_actor other = {.uid = 1000, .pid = 7};
	uint64_t c0;

	unit_begin("audit rows with their change; refusals recorded; begin/commit/rollback");
	path_of(path, sizeof(path), "audit.db");
	remove_db(path);
	s = open_ready(path, &c0);
	if (!CHECK(s))
		goto out;
	make_group(&g, "ga", 1);
	CHECK(store_group_add(s, &admin, &g) == STORE_OK);
	make_vtpm(&v, 1, g.uuid);
	CHECK(store_vtpm_add(s, &admin, &v) == STORE_OK);
	CHECK(store_group_delete(s, &admin, "ga") == STORE_BUSY);
	CHECK(store_group_add(s, &admin, &g) == STORE_EXISTS);
	CHECK(store_vtpm_set_version(s, v.uuid, 5, v.digest) == STORE_OK); /* not audited */
	CHECK(store_audit_append(s, &other, "open", "some-vtpm", "denied: label") == STORE_OK);
	CHECK(counter_of(s) == c0 + 3); /* refusals and audit appends never bump it */
	CHECK(store_audit_list(s, 10, collect_audit, &r) == STORE_OK);
	uuid_format(v.uuid, u1);
	if (!CHECKF(r.n == 5, "n %d", r.n))
		goto close;
	CHECK(strcmp(r.a[0].action, "open") == 0 && r.a[0].uid == 1000 && r.a[0].pid == 7 &&
	      strcmp(r.a[0].result, "denied: label") == 0);
	CHECKF(audit_is(&r.a[1], "group-add", "ga", "refused: a group with UUID"), "%s",
	       r.a[1].result);
	CHECKF(audit_is(&r.a[2], "group-delete", "ga", "refused: group 'ga' still has 1 vTPM"),
	       "%s", r.a[2].result);
	CHECK(audit_is(&r.a[3], "vtpm-add", u1, "ok"));
	CHECK(audit_is(&r.a[4], "group-add", "ga", "ok"));
	CHECK(r.a[0].id > r.a[1].id && r.a[1].id > r.a[2].id);
	memset(&r, 0, sizeof(r));
	CHECK(store_audit_list(s, 2, collect_audit, &r) == STORE_OK && r.n == 2);

	/* explicit transaction, rolled back: no change, no audit row, no counter bump */
	CHECK(store_begin(s) == STORE_OK);
	make_vtpm(&v, 2, g.uuid);
	CHECK(store_vtpm_add(s, &admin, &v) == STORE_OK);
	CHECK(store_vtpm_set_state(s, &admin, v.uuid, "migrated-out") == STORE_OK);
	CHECK(store_begin(s) == STORE_INVALID);
	store_rollback(s);
	CHECK(store_vtpm_get(s, v.uuid, &v) == STORE_NOT_FOUND);
	memset(&r, 0, sizeof(r));
	CHECK(store_audit_list(s, 100, collect_audit, &r) == STORE_OK && r.n == 5);
	CHECK(counter_of(s) == c0 + 3);

	/* explicit transaction, committed: both changes, both rows, ONE counter bump */
	CHECK(store_begin(s) == STORE_OK);
	make_vtpm(&v, 2, g.uuid);
	CHECK(store_vtpm_add(s, &admin, &v) == STORE_OK);
	CHECK(store_vtpm_set_state(s, &admin, v.uuid, "migrated-out") == STORE_OK);
	CHECK(store_vtpm_add(s, &admin, &v) == STORE_EXISTS); /* a refusal inside */
	CHECK(store_commit(s) == STORE_OK);
	CHECK(store_commit(s) == STORE_INVALID);
	CHECK(counter_of(s) == c0 + 4);
	CHECK(store_vtpm_get(s, v.uuid, &v) == STORE_OK && strcmp(v.state, "migrated-out") == 0);
	memset(&r, 0, sizeof(r));
	CHECK(store_audit_list(s, 100, collect_audit, &r) == STORE_OK && r.n == 8);
	CHECK(strcmp(r.a[0].action, "vtpm-add") == 0 &&
	      strncmp(r.a[0].result, "refused: ", 9) == 0);
	CHECK(strcmp(r.a[1].action, "vtpm-set-state") == 0 && strcmp(r.a[1].result, "ok") == 0);
	CHECK(strcmp(r.a[2].action, "vtpm-add") == 0 && strcmp(r.a[2].result, "ok") == 0);

	/* a malformed request (rejected before the database) is audited as a refusal too */
	CHECK(store_vtpm_set_state(s, &admin, v.uuid, "NOPE") == STORE_INVALID);
	memset(&r, 0, sizeof(r));
	CHECK(store_audit_list(s, 1, collect_audit, &r) == STORE_OK && r.n == 1 &&
	      strncmp(r.a[0].result, "refused: vTPM", 13) == 0);
	/* who == NULL: not audited */
	CHECK(store_vtpm_set_state(s, NULL, v.uuid, "created") == STORE_OK);
	memset(&r, 0, sizeof(r));
	CHECK(store_audit_list(s, 100, collect_audit, &r) == STORE_OK && r.n == 9);
	/* long texts are truncated, not refused */
	char longtext[600];
	memset(longtext, 'x', sizeof(longtext) - 1);
	longtext[sizeof(longtext) - 1] = 0;
	CHECK(store_audit_append(s, &other, longtext, longtext, longtext) == STORE_OK);
	memset(&r, 0, sizeof(r));
	CHECK(store_audit_list(s, 1, collect_audit, &r) == STORE_OK &&
	      strlen(r.a[0].action) == STORE_ACTION_MAX &&
	      strlen(r.a[0].result) == STORE_RESULT_MAX);
close:
	store_close(s);
out:
	unit_end();
}

static void test_mac_ok(void)
{
	char path[128], err[ERRLEN];
	struct store *s;
	uint64_t c0, c1 = 0;

	unit_begin("MAC verifies after reopen; wrong key does not");
	path_of(path, sizeof(path), "mac.db");
	remove_db(path);
	s = open_ready(path, &c0);
	if (!CHECK(s))
		goto out;
	CHECK(populate(s) == STORE_OK);
	CHECK(counter_of(s) == c0 + 5);
	store_close(s);
	s = open_ready(path, &c1);
	CHECK(s && c1 == c0 + 5);
	store_close(s);
	s = NULL;
	if (!CHECK(store_open(&s, path, NULL, err, sizeof(err)) == STORE_OK))
		goto out;
	uint8_t k2[32];
	memcpy(k2, key, 32);
	k2[31] ^= 0x80;
	store_set_mac_key(s, k2);
	CHECK(store_verify(s, &c1, err, sizeof(err)) == STORE_TAMPERED);
	CHECKF(strcmp(err, "the store was modified outside vtpmmgrd (MAC mismatch)") == 0, "%s",
	       err);
	store_close(s);
out:
	unit_end();
}

static void test_tamper(void)
{
	static const struct {
		const char *what;
		const char *sql;
		const char *msg;
	} t[] = {
	    {"lower a vTPM version", "UPDATE vtpms SET version = version - 1", "MAC mismatch"},
	    {"raise a vTPM version", "UPDATE vtpms SET version = version + 1", "MAC mismatch"},
	    {"change a wrapped key",
	     "UPDATE vtpms SET wrapped_key = zeroblob(60) WHERE uuid = (SELECT min(uuid) FROM "
	     "vtpms)",
	     "MAC mismatch"},
	    {"change a group key", "UPDATE vtpm_groups SET wrapped_key = x'00'", "MAC mismatch"},
	    {"delete a pattern",
	     "DELETE FROM group_patterns WHERE pattern = '*:vm_r:vtpm_t'"
	     " AND group_uuid = (SELECT uuid FROM vtpm_groups WHERE name = 'g1')",
	     "MAC mismatch"},
	    {"add a pattern",
	     "INSERT INTO group_patterns SELECT uuid, '*:*:*' FROM vtpm_groups WHERE name = 'g1'",
	     "MAC mismatch"},
	    {"add a digest",
	     "INSERT INTO group_digests SELECT uuid, zeroblob(32) FROM vtpm_groups WHERE name = "
	     "'g1'",
	     "MAC mismatch"},
	    {"set any_digest", "UPDATE vtpm_groups SET any_digest = 1", "MAC mismatch"},
	    {"move a vTPM to another group",
	     "UPDATE vtpms SET group_uuid = (SELECT uuid FROM vtpm_groups WHERE name = 'g2')",
	     "MAC mismatch"},
	    {"change a vTPM state", "UPDATE vtpms SET state = 'created-x'", "MAC mismatch"},
	    {"change a digest", "UPDATE vtpms SET digest = zeroblob(32)", "MAC mismatch"},
	    {"delete a vTPM", "DELETE FROM vtpms WHERE uuid = (SELECT max(uuid) FROM vtpms)",
	     "MAC mismatch"},
	    {"change the PCR mask", "UPDATE host SET pcr_mask = 0", "MAC mismatch"},
	    {"change the sealed root", "UPDATE host SET sealed_root = x'00'", "MAC mismatch"},
	    {"change a time", "UPDATE vtpm_groups SET created = created + 1", "MAC mismatch"},
	    {"digest as text", "UPDATE vtpms SET digest = CAST(digest AS TEXT)", "MAC mismatch"},
	    {"raise the counter", "UPDATE meta SET counter = counter + 1", "MAC mismatch"},
	    {"add a trigger",
	     "CREATE TRIGGER t AFTER UPDATE ON vtpms BEGIN UPDATE vtpms SET version = 0; END",
	     "MAC mismatch"},
	    {"add an index", "CREATE INDEX i ON vtpms (state)", "MAC mismatch"},
	    {"change the aggregate", "UPDATE meta SET agg = zeroblob(32)", "MAC mismatch"},
	    {"remove the aggregate", "UPDATE meta SET agg = NULL", "no aggregate"},
	    {"raise the guard epoch", "UPDATE meta SET epoch = epoch + 1", "MAC mismatch"},
	    {"delete an audit row", "DELETE FROM audit WHERE id = (SELECT min(id) FROM audit)",
	     "MAC mismatch"},
	    {"edit an audit row",
	     "UPDATE audit SET result = 'refused: no' WHERE id = (SELECT max(id) FROM audit)",
	     "MAC mismatch"},
	    {"remove the MAC", "UPDATE meta SET mac = NULL", "no MAC"},
	    {"truncate the MAC", "UPDATE meta SET mac = substr(mac, 1, 16)", "malformed MAC"},
	    {"empty the store",
	     "DELETE FROM vtpms; DELETE FROM group_patterns;"
	     " DELETE FROM group_digests; DELETE FROM vtpm_groups;"
	     " DELETE FROM host",
	     "MAC mismatch"},
	};
	char base[128], path[128], err[ERRLEN];
	struct store *s;
	uint64_t c;
	int rc;

	unit_begin("MAC mismatch after changing the file outside the store");
	path_of(base, sizeof(base), "tamper-base.db");
	path_of(path, sizeof(path), "tamper.db");
	remove_db(base);
	s = open_ready(base, &c);
	if (!CHECK(s))
		goto out;
	CHECK(populate(s) == STORE_OK);
	store_close(s);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (!CHECKF(copy_db(base, path) == 0, "copy"))
			break;
		if (!CHECKF(raw_exec(path, t[i].sql) == 0, "%s: sql failed", t[i].what))
			continue;
		s = NULL;
		rc = store_open(&s, path, NULL, err, sizeof(err));
		if (!CHECKF(rc == STORE_OK, "%s: open %d %s", t[i].what, rc, err))
			continue;
		store_set_mac_key(s, key);
		rc = store_verify(s, &c, err, sizeof(err));
		CHECKF(rc == STORE_TAMPERED, "%s: verify returned %d (%s)", t[i].what, rc, err);
		CHECKF(strstr(err, "modified outside vtpmmgrd") && strstr(err, t[i].msg),
		       "%s: message '%s'", t[i].what, err);
		/* and it cannot be "blessed" by a mutation */
		CHECKF(store_vtpm_delete(s, &admin, (const uint8_t *)"0123456789abcdef") ==
			   STORE_NOT_VERIFIED,
		       "%s: mutation allowed", t[i].what);
		store_close(s);
	}
	/* the audit log is covered (schema version 2): emptying it is detected */
	CHECK(copy_db(base, path) == 0 && raw_exec(path, "DELETE FROM audit") == 0);
	s = NULL;
	CHECK(store_open(&s, path, NULL, err, sizeof(err)) == STORE_OK);
	if (s) {
		store_set_mac_key(s, key);
		CHECK(store_verify(s, &c, err, sizeof(err)) == STORE_TAMPERED);
		store_close(s);
	}
	/* a no-op rewrite of the same values still verifies (canonical serialization) */
	CHECK(copy_db(base, path) == 0 &&
	      raw_exec(path, "UPDATE vtpms SET version = version; VACUUM") == 0);
	s = open_ready(path, &c);
	CHECK(s != NULL);
	store_close(s);
out:
	unit_end();
}

static void test_counter_exact(void)
{
	char path[128];
	struct store *s;
	struct store_group g;
	struct store_vtpm v;
	uint8_t d[32] = {0};
	uint64_t c0;
	bool ok = true;

	unit_begin("counter grows by exactly one per mutation");
	path_of(path, sizeof(path), "counter.db");
	remove_db(path);
	s = open_ready(path, &c0);
	if (!CHECK(s))
		goto out;
	make_group(&g, "g", 1);
	CHECK(store_group_add(s, &admin, &g) == STORE_OK && counter_of(s) == c0 + 1);
	make_vtpm(&v, 1, g.uuid);
	CHECK(store_vtpm_add(s, &admin, &v) == STORE_OK && counter_of(s) == c0 + 2);
	for (uint64_t i = 0; i < 50 && ok; i++) {
		d[0] = (uint8_t)i;
		ok = CHECK(store_vtpm_set_version(s, v.uuid, 2 + i, d) == STORE_OK) &&
		     CHECKF(counter_of(s) == c0 + 3 + i, "i %llu", (unsigned long long)i);
	}
	store_close(s);
	s = open_ready(path, &c0);
	CHECK(s && c0 == 52);
	store_close(s);
out:
	unit_end();
}

static void test_old_copy(void)
{
	char path[128], old[128];
	struct store *s;
	struct store_vtpm v;
	uint8_t u[16], d[32] = {0};
	uint64_t c0, c1, c2;

	unit_begin("an older copy verifies by MAC and reports its older counter");
	path_of(path, sizeof(path), "live.db");
	path_of(old, sizeof(old), "old-copy.db");
	remove_db(path);
	s = open_ready(path, &c0);
	if (!CHECK(s))
		goto out;
	CHECK(populate(s) == STORE_OK);
	c1 = counter_of(s);
	store_close(s);
	CHECK(copy_db(path, old) == 0);
	s = open_ready(path, &c2);
	if (!CHECK(s))
		goto out;
	make_uuid(u, 0x90, 1);
	for (uint64_t i = 0; i < 3; i++)
		CHECK(store_vtpm_set_version(s, u, 10 + i, d) == STORE_OK);
	c2 = counter_of(s);
	CHECK(c2 == c1 + 3);
	store_close(s);
	/* the copy is authentic (same key) but older: only the NV counter can tell */
	s = open_ready(old, &c0);
	CHECK(s && c0 == c1);
	CHECK(s && store_vtpm_get(s, u, &v) == STORE_OK && v.version == 1);
	store_close(s);
	s = open_ready(path, &c0);
	CHECK(s && c0 == c2);
	CHECK(s && store_vtpm_get(s, u, &v) == STORE_OK && v.version == 12);
	store_close(s);
out:
	unit_end();
}

static void test_refuse_open(void)
{
	char path[128], err[ERRLEN];
	struct store *s = NULL, *s2 = NULL;
	uint64_t c;
	int rc, fd;

	unit_begin("newer schema, foreign database, garbage file, second owner: refused");
	path_of(path, sizeof(path), "newer.db");
	remove_db(path);
	s = open_ready(path, &c);
	CHECK(s && populate(s) == STORE_OK);
	store_close(s);
	s = NULL;
	CHECK(raw_exec(path, "PRAGMA user_version = 99") == 0);
	rc = store_open(&s, path, NULL, err, sizeof(err));
	CHECK(rc == STORE_NEWER && s == NULL);
	CHECKF(strstr(err, "schema version 99, newer than this vtpmmgrd knows (3)") != NULL, "%s",
	       err);
	CHECK(raw_exec(path, "PRAGMA user_version = 3") == 0);
	s = open_ready(path, &c);
	CHECK(s != NULL);
	store_close(s);
	s = NULL;

	path_of(path, sizeof(path), "foreign.db");
	remove_db(path);
	{
		sqlite3 *db = NULL;
		CHECK(sqlite3_open(path, &db) == SQLITE_OK &&
		      sqlite3_exec(db, "CREATE TABLE x (y)", NULL, NULL, NULL) == SQLITE_OK);
		sqlite3_close(db);
	}
	rc = store_open(&s, path, NULL, err, sizeof(err));
	CHECK(rc == STORE_CORRUPT && s == NULL);
	CHECKF(strstr(err, "not a vtpm store") != NULL, "%s", err);

	path_of(path, sizeof(path), "garbage.db");
	remove_db(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, "this is not an SQLite database, not even close....", 50) == 50);
	if (fd >= 0)
		close(fd);
	rc = store_open(&s, path, NULL, err, sizeof(err));
	CHECKF(rc == STORE_CORRUPT && s == NULL, "%d %s", rc, err);

	path_of(path, sizeof(path), "owner.db");
	remove_db(path);
	s = open_ready(path, &c);
	CHECK(s != NULL);
	rc = store_open(&s2, path, NULL, err, sizeof(err));
	CHECKF(rc == STORE_LOCKED && s2 == NULL, "%d %s", rc, err);
	CHECKF(strstr(err, "in use by another process") != NULL, "%s", err);
	store_close(s);
	unit_end();
}

static void test_delete_wipes(void)
{
	char path[128], wal[140];
	struct store *s;
	struct store_group g;
	struct store_vtpm v;
	uint64_t c;

	unit_begin("a deleted vTPM's wrapped key leaves the database files");
	path_of(path, sizeof(path), "wipe.db");
	snprintf(wal, sizeof(wal), "%s-wal", path);
	remove_db(path);
	s = open_ready(path, &c);
	if (!CHECK(s))
		goto out;
	make_group(&g, "g", 1);
	CHECK(store_group_add(s, &admin, &g) == STORE_OK);
	make_vtpm(&v, 1, g.uuid);
	CHECK(random_bytes(v.wrapped_key, 60) == 0);
	CHECK(store_vtpm_add(s, &admin, &v) == STORE_OK);
	for (uint64_t i = 2; i < 20; i++)
		CHECK(store_vtpm_set_version(s, v.uuid, i, v.digest) == STORE_OK);
	CHECK(file_contains(path, v.wrapped_key, 60) || file_contains(wal, v.wrapped_key, 60));
	CHECK(store_vtpm_delete(s, &admin, v.uuid) == STORE_OK);
	CHECK(!file_contains(path, v.wrapped_key, 60));
	CHECK(!file_contains(wal, v.wrapped_key, 60));
	/* the group key too */
	CHECK(file_contains(path, g.wrapped_key, 60));
	CHECK(store_group_delete(s, &admin, "g") == STORE_OK);
	CHECK(!file_contains(path, g.wrapped_key, 60));
	CHECK(!file_contains(wal, g.wrapped_key, 60));
	store_close(s);
out:
	unit_end();
}

static int cb_read_inside(const struct store_group *g, void *arg)
{
	struct store *s = arg;
	struct store_group again;

	if (store_group_get(s, g->uuid, &again) != STORE_OK)
		return 1;
	return strcmp(again.name, g->name) == 0 ? 0 : 2;
}

static void test_list_reentrant(void)
{
	char path[128];
	struct store *s;
	uint64_t c;

	unit_begin("list callbacks may read the store");
	path_of(path, sizeof(path), "reent.db");
	remove_db(path);
	s = open_ready(path, &c);
	if (!CHECK(s))
		goto out;
	CHECK(populate(s) == STORE_OK);
	CHECK(store_group_list(s, cb_read_inside, s) == STORE_OK);
	store_close(s);
out:
	unit_end();
}

static double cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* µs (wall, CPU) per store_vtpm_set_version with n vTPMs in the store. */
static int time_set_version(int n, double *wall, double *cpu)
{
	char path[128];
	struct store *s;
	struct store_group g;
	struct store_vtpm v;
	uint8_t d[32] = {0};
	uint64_t c;
	double t0, c0;
	const int ops = 200;
	int rc = -1;

	path_of(path, sizeof(path), "timing.db");
	remove_db(path);
	s = open_ready(path, &c);
	if (!s)
		return -1;
	make_group(&g, "g", 1);
	if (store_group_add(s, &admin, &g) || store_begin(s))
		goto out;
	for (int i = 0; i < n; i++) {
		make_vtpm(&v, 0, g.uuid);
		v.uuid[13] = (uint8_t)(i >> 16);
		v.uuid[14] = (uint8_t)(i >> 8);
		v.uuid[15] = (uint8_t)i;
		if (store_vtpm_add(s, NULL, &v))
			goto out;
	}
	if (store_commit(s))
		goto out;
	t0 = now_us();
	c0 = cpu_us();
	for (int i = 0; i < ops; i++) {
		d[0] = (uint8_t)i;
		if (store_vtpm_set_version(s, v.uuid, 2 + (uint64_t)i, d))
			goto out;
	}
	*wall = (now_us() - t0) / ops;
	*cpu = (cpu_us() - c0) / ops;
	rc = 0;
out:
	store_close(s);
	remove_db(path);
	return rc;
}

/* The disk's own price: µs per 4 KiB pwrite + fdatasync, overwriting in place. */
static double time_fdatasync(void)
{
	char path[128], buf[4096];
	double t0, us = -1;
	const int ops = 100;
	int fd;

	path_of(path, sizeof(path), "fdatasync.bin");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	memset(buf, 0x5a, sizeof(buf));
	for (int i = 0; i < ops; i++)
		if (pwrite(fd, buf, sizeof(buf), (off_t)i * 4096) != (ssize_t)sizeof(buf))
			goto out;
	if (fsync(fd) < 0)
		goto out;
	t0 = now_us();
	for (int i = 0; i < ops; i++)
		if (pwrite(fd, buf, sizeof(buf), (off_t)i * 4096) != (ssize_t)sizeof(buf) ||
		    fdatasync(fd) < 0)
			goto out;
	us = (now_us() - t0) / ops;
out:
	close(fd);
	unlink(path);
	return us;
}

static void test_timing(void)
{
	static const int sizes[] = {1, 100, 1000};
	double wall, cpu;

	unit_begin("timing of store_vtpm_set_version (synchronous=FULL)");
	printf("# disk: %.0f us per 4 KiB pwrite + fdatasync\n", time_fdatasync());
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		if (!CHECKF(time_set_version(sizes[i], &wall, &cpu) == 0,
			    "timing with %d vTPMs failed", sizes[i]))
			break;
		printf("# set_version: %.0f us/op wall, %.0f us/op CPU, with %d vTPM%s in the "
		       "store\n",
		       wall, cpu, sizes[i], sizes[i] == 1 ? "" : "s");
	}
	unit_end();
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
	snprintf(dir, sizeof(dir), "/tmp/vtpm-store-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_create_reopen();
	test_key_and_verify_rules();
	test_host();
	test_groups();
	test_vtpms();
	test_group_busy();
	test_audit();
	test_mac_ok();
	test_tamper();
	test_counter_exact();
	test_old_copy();
	test_refuse_open();
	test_delete_wipes();
	test_list_reentrant();
	test_timing();
	cleanup_dir();
	return unit_exit();
}
