/*
 * test_store_mac.c — the store's version-2 MAC (per-row PRF, XOR aggregate, top MAC), the
 * rollback guard record, the bounded audit log, and the upgrade from version 1.
 *
 * Tampering is done as an attacker with the disk would: the store is closed, a copy of
 * its files is changed with the plain sqlite3 API (with CHECK constraints off, so that
 * every column can take any value), and store_verify must say STORE_TAMPERED. The
 * column list comes from PRAGMA table_info, so a column added later is covered by this
 * test without editing it.
 *
 * The version-1 stores are fixtures written by the version-1 code (tests/unit/fixtures/,
 * hex, see the README there).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "vtpmmgrd/store.h"
#include "unit.h"

#define ERRLEN 512

static char dir[64];
/* the key the version-1 fixtures were written with */
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

/* SQL on a closed store (CHECK constraints off if nocheck); the number of rows it changed,
 * -1 on error (printed unless quiet). */
static int raw_exec_opt(const char *path, const char *sql, bool nocheck, bool quiet)
{
	sqlite3 *db = NULL;
	char *msg = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), n = -1;

	if (rc == SQLITE_OK && nocheck)
		rc = sqlite3_exec(db, "PRAGMA ignore_check_constraints = ON", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK && !quiet)
		printf("# raw_exec(%s): %s\n", sql, msg ? msg : sqlite3_errmsg(db));
	else
		n = sqlite3_total_changes(db);
	sqlite3_free(msg);
	sqlite3_close(db);
	return n;
}

static int raw_exec(const char *path, const char *sql)
{
	return raw_exec_opt(path, sql, false, false);
}

/* The first column of the first row of a query on a closed store, as text ("" if none). */
static void raw_text(const char *path, const char *sql, char *out, size_t n)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	out[0] = 0;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static long long raw_int(const char *path, const char *sql)
{
	char t[64];

	raw_text(path, sql, t, sizeof(t));
	return t[0] ? strtoll(t, NULL, 10) : -1;
}

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

/* store_verify's answer for the store at path (with the key); err gets its message. */
static int verify_rc(const char *path, char *err, size_t errlen)
{
	struct store *s = NULL;
	uint64_t c;
	int rc;

	rc = store_open(&s, path, NULL, err, errlen);
	if (rc)
		return rc;
	store_set_mac_key(s, key);
	rc = store_verify(s, &c, err, errlen);
	store_close(s);
	return rc;
}

static uint64_t counter_of(struct store *s)
{
	uint64_t c = UINT64_MAX;

	return store_counter(s, &c) == STORE_OK ? c : UINT64_MAX;
}

static uint64_t audit_count(struct store *s)
{
	uint64_t n = UINT64_MAX;

	return store_audit_count(s, &n) == STORE_OK ? n : UINT64_MAX;
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
	g->npatterns = 2;
	snprintf(g->patterns[0], sizeof(g->patterns[0]), "*:vm_r:vtpm_t");
	snprintf(g->patterns[1], sizeof(g->patterns[1]), "guest%u_u:vm_r:vtpm_t", n);
	g->ndigests = 2;
	memset(g->digests[0], 0xd0 + 2 * n, 32);
	memset(g->digests[1], 0xd1 + 2 * n, 32);
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

/* Host, groups g1 and g2, vTPMs 1..3 in g1, a guard, a few audit rows of every kind. */
static int populate(struct store *s)
{
	struct store_guard gd = {
	    .epoch = 5, .state = STORE_GUARD_CLEAN, .tpm_reset_count = 9, .time = 1700};
	struct store_actor peer = {.uid = 1000, .pid = 77};
	struct store_host h;
	struct store_group g;
	struct store_vtpm v;
	int rc;

	memset(&h, 0, sizeof(h));
	h.pcr_mask = 0x80ff;
	h.nv_index = 0x01500016;
	h.sealed_root_len = 100;
	memset(h.sealed_root, 0x33, h.sealed_root_len);
	h.ak_public_len = 91;
	memset(h.ak_public, 0x30, h.ak_public_len);
	/* the signed-policy columns (schema 3) hold values, so each is changed as a value */
	h.policy_key_len = 91;
	memset(h.policy_key, 0x31, h.policy_key_len);
	h.sealed_auth_len = 120;
	memset(h.sealed_auth, 0x34, h.sealed_auth_len);
	h.policy_nv = 0x013ff101;
	h.policies_len = 200;
	memset(h.policies, 0x35, h.policies_len);
	rc = store_host_put(s, &admin, &h);
	make_group(&g, "g2", 2);
	if (!rc)
		rc = store_group_add(s, &admin, &g);
	make_group(&g, "g1", 1);
	if (!rc)
		rc = store_group_add(s, &admin, &g);
	for (uint8_t i = 1; i <= 3 && !rc; i++) {
		make_vtpm(&v, i, g.uuid);
		rc = store_vtpm_add(s, &admin, &v);
	}
	if (!rc)
		rc = store_guard_put(s, &gd);
	if (!rc)
		rc = store_audit_append(s, &peer, "open", "some-vtpm", "denied: label");
	if (!rc && store_group_add(s, &admin, &g) != STORE_EXISTS)
		rc = -1;
	if (rc)
		printf("# populate: %d %s\n", rc, store_errmsg(s));
	return rc;
}

/* A closed, populated store at path. */
static int make_base(const char *path)
{
	struct store *s;
	int rc;

	remove_db(path);
	s = open_ready(path, NULL);
	if (!s)
		return -1;
	rc = populate(s);
	store_close(s);
	return rc;
}

/* ---- every column of every covered table --------------------------------------------- */

/* One row of each table the MAC covers (meta: the top MAC's fields), by a unique key. */
static const struct {
	const char *table;
	const char *where;
} rows[] = {
    {"meta", "id = 1"},
    {"host", "id = 1"},
    {"vtpm_groups", "name = 'g1'"},
    {"group_patterns", "pattern = 'guest1_u:vm_r:vtpm_t'"},
    {"group_digests", "digest = (SELECT max(digest) FROM group_digests)"},
    {"vtpms", "uuid = (SELECT max(uuid) FROM vtpms)"},
    {"audit", "id = (SELECT max(id) FROM audit)"},
};

/* An SQL expression for another value of the same type as the column has in that row. */
static void other_value(const char *type, const char *col, int k, char *out, size_t n)
{
	if (strcmp(type, "integer") == 0)
		snprintf(out, n, k ? "%.63s - 1" : "%.63s + 1", col);
	else if (strcmp(type, "text") == 0)
		snprintf(out, n, "%.63s || 'x'", col);
	else if (strcmp(type, "blob") == 0)
		/* same length, other bytes (randomblob could repeat a 1-byte value: not here) */
		snprintf(out, n, "randomblob(length(%.63s))", col);
	else
		snprintf(out, n, "x'00'"); /* NULL → a value */
}

static void test_every_column(void)
{
	char base[128], path[128], sql[1024], type[32], val[128], err[ERRLEN];
	char cols[32][64];
	int ncols, rc, total = 0, nocheck = 0;
	bool checked;

	unit_begin("changing any one column of any covered row (or meta) is STORE_TAMPERED");
	path_of(base, sizeof(base), "cols-base.db");
	path_of(path, sizeof(path), "cols.db");
	if (!CHECK(make_base(base) == 0))
		goto out;
	for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
		ncols = 0;
		for (int i = 0; i < 32; i++) {
			snprintf(sql, sizeof(sql),
				 "SELECT name FROM pragma_table_info('%s') LIMIT 1 OFFSET %d",
				 rows[r].table, i);
			raw_text(base, sql, cols[i], sizeof(cols[i]));
			if (!cols[i][0])
				break;
			ncols++;
		}
		if (!CHECKF(ncols > 1, "%s: no columns", rows[r].table))
			continue;
		for (int c = 0; c < ncols; c++) {
			snprintf(sql, sizeof(sql), "SELECT typeof(%.63s) FROM %s WHERE %s", cols[c],
				 rows[r].table, rows[r].where);
			raw_text(base, sql, type, sizeof(type));
			if (!CHECKF(type[0], "%s.%s: the row is missing", rows[r].table, cols[c]))
				continue;
			/* a value the schema's CHECKs accept, if there is one: then only the MAC
			 * can tell; else (host.id, meta.id: CHECK id = 1) quick_check refuses the
			 * file as damaged before the MAC is looked at */
			checked = false;
			for (int k = 0; k < 2 && !checked; k++) {
				other_value(type, cols[c], k, val, sizeof(val));
				snprintf(sql, sizeof(sql), "UPDATE %s SET %.63s = %.127s WHERE %s",
					 rows[r].table, cols[c], val, rows[r].where);
				if (!CHECK(copy_db(base, path) == 0))
					goto out;
				checked = raw_exec_opt(path, sql, false, true) == 1;
			}
			if (!checked && !CHECKF(copy_db(base, path) == 0 &&
						    raw_exec_opt(path, sql, true, false) == 1,
						"%s: did not change one row", sql))
				continue;
			rc = verify_rc(path, err, sizeof(err));
			if (checked)
				CHECKF(rc == STORE_TAMPERED, "%s.%s (%s): verify %d (%s)",
				       rows[r].table, cols[c], type, rc, err);
			else
				CHECKF(rc == STORE_CORRUPT && strstr(err, "CHECK constraint"),
				       "%s: verify %d (%s)", sql, rc, err);
			nocheck += !checked;
			total++;
		}
	}
	printf("# %d columns changed one at a time, each refused (%d only by breaking a CHECK)\n",
	       total, nocheck);
	CHECKF(nocheck == 2, "%d columns could not be changed within the CHECKs", nocheck);
	/* the unchanged copy verifies: the refusals above are the changes' doing */
	CHECK(copy_db(base, path) == 0 && verify_rc(path, err, sizeof(err)) == STORE_OK);
out:
	unit_end();
}

static void test_delete_insert(void)
{
	static const struct {
		const char *what;
		const char *sql;
	} t[] = {
	    {"delete the host", "DELETE FROM host"},
	    {"delete a group", "DELETE FROM vtpm_groups WHERE name = 'g2'"},
	    {"delete a pattern", "DELETE FROM group_patterns WHERE pattern = '*:vm_r:vtpm_t'"
				 " AND group_uuid = (SELECT max(uuid) FROM vtpm_groups)"},
	    {"delete a digest", "DELETE FROM group_digests WHERE digest = (SELECT min(digest) "
				"FROM group_digests)"},
	    {"delete a vTPM", "DELETE FROM vtpms WHERE uuid = (SELECT min(uuid) FROM vtpms)"},
	    {"delete the oldest audit row",
	     "DELETE FROM audit WHERE id = (SELECT min(id) FROM audit)"},
	    {"delete the newest audit row",
	     "DELETE FROM audit WHERE id = (SELECT max(id) FROM audit)"},
	    {"delete an audit row and fix the count",
	     "DELETE FROM audit WHERE id = 3; UPDATE meta SET audit_rows = audit_rows - 1"},
	    {"forge the host row",
	     "DELETE FROM host; INSERT INTO host (id, pcr_mask, sealed_root, nv_index, ak_public,"
	     " created) VALUES (1, 1, x'00', 2, x'00', 3)"},
	    {"forge a group", "INSERT INTO vtpm_groups SELECT randomblob(16), 'g9', 1, wrapped_key,"
			      " created FROM vtpm_groups WHERE name = 'g1'"},
	    {"forge a pattern", "INSERT INTO group_patterns SELECT uuid, '*:*:*' FROM vtpm_groups"
				" WHERE name = 'g1'"},
	    {"forge a digest",
	     "INSERT INTO group_digests SELECT uuid, zeroblob(32) FROM vtpm_groups"
	     " WHERE name = 'g1'"},
	    {"forge a vTPM", "INSERT INTO vtpms SELECT randomblob(16), group_uuid, wrapped_key,"
			     " version, digest, state, created, bound_label FROM vtpms LIMIT 1"},
	    {"forge an audit row", "INSERT INTO audit (time, uid, pid, action, subject, result)"
				   " SELECT time, uid, pid, action, subject, result FROM audit"
				   " WHERE id = 1"},
	    {"forge an audit row and fix the count",
	     "INSERT INTO audit (time, uid, pid, action, subject, result) VALUES"
	     " (1, 0, 1, 'vtpm-delete', 'x', 'ok'); UPDATE meta SET audit_rows = audit_rows + 1"},
	    {"renumber the audit rows", "UPDATE audit SET id = id + 1000"},
	    {"move a row to another table (same columns)",
	     "DELETE FROM group_digests WHERE digest = (SELECT max(digest) FROM group_digests);"
	     " INSERT INTO group_patterns SELECT group_uuid, CAST(digest AS TEXT) FROM"
	     " group_digests WHERE digest = (SELECT max(digest) FROM group_digests)"},
	    {"swap two vTPMs' wrapped keys",
	     "UPDATE vtpms SET wrapped_key = CASE WHEN uuid = (SELECT min(uuid) FROM vtpms)"
	     " THEN (SELECT wrapped_key FROM vtpms ORDER BY uuid DESC LIMIT 1)"
	     " ELSE (SELECT wrapped_key FROM vtpms ORDER BY uuid LIMIT 1) END"
	     " WHERE uuid IN ((SELECT min(uuid) FROM vtpms), (SELECT max(uuid) FROM vtpms))"},
	    {"drop an index", "DROP INDEX vtpms_by_group; UPDATE vtpms SET state = state"},
	};
	char base[128], path[128], err[ERRLEN];
	int rc;

	unit_begin("deleting, forging, moving or swapping rows is STORE_TAMPERED");
	path_of(base, sizeof(base), "rows-base.db");
	path_of(path, sizeof(path), "rows.db");
	if (!CHECK(make_base(base) == 0))
		goto out;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (!CHECK(copy_db(base, path) == 0))
			break;
		if (!CHECKF(raw_exec(path, t[i].sql) > 0, "%s: nothing changed", t[i].what))
			continue;
		rc = verify_rc(path, err, sizeof(err));
		CHECKF(rc == STORE_TAMPERED, "%s: verify %d (%s)", t[i].what, rc, err);
		CHECKF(strstr(err, "modified outside vtpmmgrd"), "%s: '%s'", t[i].what, err);
	}
out:
	unit_end();
}

/* ---- mix and match with an older copy ------------------------------------------------ */

static void test_mix_and_match(void)
{
	static const struct {
		const char *what;
		const char *sql; /* on the new file, with the old one attached as o */
	} t[] = {
	    {"an old vTPM row (older version) in the new store",
	     "UPDATE vtpms SET version = (SELECT version FROM o.vtpms WHERE uuid = vtpms.uuid),"
	     " digest = (SELECT digest FROM o.vtpms WHERE uuid = vtpms.uuid)"
	     " WHERE uuid = (SELECT min(uuid) FROM vtpms)"},
	    {"an old vTPM row (older state) in the new store",
	     "UPDATE vtpms SET state = (SELECT state FROM o.vtpms WHERE uuid = vtpms.uuid)"
	     " WHERE uuid = (SELECT max(uuid) FROM vtpms)"},
	    {"the old meta row (counter, guard, aggregate, MAC) with the new rows",
	     "DELETE FROM meta; INSERT INTO meta SELECT * FROM o.meta"},
	    {"the old aggregate and MAC with the new counter",
	     "UPDATE meta SET agg = (SELECT agg FROM o.meta), mac = (SELECT mac FROM o.meta)"},
	    {"the old guard in the new store",
	     "UPDATE meta SET epoch = (SELECT epoch FROM "
	     "o.meta), guard_state = (SELECT guard_state FROM o.meta)"},
	    {"the old audit log in the new store",
	     "DELETE FROM audit; INSERT INTO audit SELECT * FROM o.audit;"
	     " UPDATE meta SET audit_rows = (SELECT audit_rows FROM o.meta)"},
	    {"the old vTPM table in the new store",
	     "DELETE FROM vtpms; INSERT INTO vtpms SELECT * FROM o.vtpms"},
	};
	char base[128], old[128], path[128], sql[1024], err[ERRLEN];
	struct store_guard gd = {
	    .epoch = 6, .state = STORE_GUARD_RUNNING, .tpm_reset_count = 10, .time = 1800};
	struct store *s;
	uint8_t u[16], d[32];
	uint64_t c_old = 0, c_new = 0;
	int rc;

	unit_begin("rows of an older copy mixed into the current store are STORE_TAMPERED");
	path_of(base, sizeof(base), "mix-base.db");
	path_of(old, sizeof(old), "mix-old.db");
	path_of(path, sizeof(path), "mix.db");
	if (!CHECK(make_base(base) == 0) || !CHECK(copy_db(base, old) == 0))
		goto out;
	s = open_ready(base, &c_old);
	if (!CHECK(s))
		goto out;
	memset(d, 0x42, sizeof(d));
	make_uuid(u, 0x90, 1);
	CHECK(store_vtpm_set_version(s, u, 2, d) == STORE_OK);
	make_uuid(u, 0x90, 3);
	CHECK(store_vtpm_set_state(s, &admin, u, STORE_VTPM_MIGRATED_OUT) == STORE_OK);
	CHECK(store_guard_put(s, &gd) == STORE_OK);
	CHECK(store_audit_append(s, &admin, "note", "x", "ok") == STORE_OK);
	c_new = counter_of(s);
	store_close(s);
	CHECK(c_new == c_old + 3);
	/* each copy on its own is authentic: only the caller's guard can order them */
	CHECK(verify_rc(old, err, sizeof(err)) == STORE_OK);
	CHECK(verify_rc(base, err, sizeof(err)) == STORE_OK);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (!CHECK(copy_db(base, path) == 0))
			break;
		snprintf(sql, sizeof(sql), "ATTACH '%s' AS o; %s", old, t[i].sql);
		if (!CHECKF(raw_exec(path, sql) > 0, "%s: nothing changed", t[i].what))
			continue;
		rc = verify_rc(path, err, sizeof(err));
		CHECKF(rc == STORE_TAMPERED, "%s: verify %d (%s)", t[i].what, rc, err);
	}
out:
	unit_end();
}

/* ---- the guard ------------------------------------------------------------------------ */

static void test_guard(void)
{
	struct store_guard g, want = {.epoch = UINT64_MAX - 1,
				      .state = STORE_GUARD_CLEAN,
				      .tpm_reset_count = UINT32_MAX,
				      .time = -5};
	char path[128], err[ERRLEN];
	struct store *s = NULL;
	uint64_t c0, c1, n0;

	unit_begin("guard: zero when fresh, needs key and verify, durable, counted, not audited");
	path_of(path, sizeof(path), "guard.db");
	remove_db(path);
	if (!CHECK(store_open(&s, path, NULL, err, sizeof(err)) == STORE_OK))
		goto out;
	memset(&g, 0xff, sizeof(g));
	CHECK(store_guard_get(s, &g) == STORE_OK && g.epoch == 0 &&
	      g.state == STORE_GUARD_RUNNING && g.tpm_reset_count == 0 && g.time == 0);
	CHECK(store_guard_put(s, &want) == STORE_NO_KEY);
	store_set_mac_key(s, key);
	CHECK(store_guard_put(s, &want) == STORE_NOT_VERIFIED);
	CHECK(store_verify(s, &c0, err, sizeof(err)) == STORE_OK && c0 == 0);
	n0 = audit_count(s);
	CHECKF(store_guard_put(s, &want) == STORE_OK, "%s", store_errmsg(s));
	CHECK(counter_of(s) == 1);
	CHECK(audit_count(s) == n0);
	CHECK(store_guard_put(s, &want) == STORE_OK && counter_of(s) == 2); /* same values too */
	{
		struct store_guard bad = want;

		bad.state = STORE_GUARD_ADVANCING + 1;
		CHECK(store_guard_put(s, &bad) == STORE_INVALID && counter_of(s) == 2);
	}
	store_close(s);
	s = NULL;
	/* before verify the values are readable (untrusted until verified) */
	if (!CHECK(store_open(&s, path, NULL, err, sizeof(err)) == STORE_OK))
		goto out;
	CHECK(store_guard_get(s, &g) == STORE_OK && g.epoch == want.epoch &&
	      g.state == STORE_GUARD_CLEAN && g.tpm_reset_count == want.tpm_reset_count &&
	      g.time == want.time);
	store_close(s);
	/* inside store_begin: one counter step for the lot */
	s = open_ready(path, &c1);
	if (!CHECK(s))
		goto out;
	CHECK(c1 == 2);
	want.epoch = 1;
	CHECK(store_begin(s) == STORE_OK && store_guard_put(s, &want) == STORE_OK);
	want.state = STORE_GUARD_RUNNING;
	CHECK(store_guard_put(s, &want) == STORE_OK && store_commit(s) == STORE_OK);
	CHECK(counter_of(s) == 3);
	store_close(s);
	s = open_ready(path, &c1);
	CHECK(s && store_guard_get(s, &g) == STORE_OK && g.epoch == 1 &&
	      g.state == STORE_GUARD_RUNNING && c1 == 3);
	/* rolled back: nothing */
	want.epoch = 99;
	CHECK(s && store_begin(s) == STORE_OK && store_guard_put(s, &want) == STORE_OK);
	if (s)
		store_rollback(s);
	CHECK(s && store_guard_get(s, &g) == STORE_OK && g.epoch == 1 && counter_of(s) == 3);
out:
	store_close(s);
	unit_end();
}

/* ---- the audit log -------------------------------------------------------------------- */

struct ids {
	int n;
	int64_t first, last;
};

static int collect_ids(const struct store_audit *a, void *arg)
{
	struct ids *r = arg;

	if (r->n++ == 0)
		r->first = a->id;
	r->last = a->id;
	return 0;
}

static void test_audit_bound(void)
{
	char path[128], err[ERRLEN];
	struct store *s;
	struct store_actor peer = {.uid = 1000, .pid = 7};
	struct store_vtpm v;
	struct store_group g;
	struct ids r;
	uint64_t c0;
	int64_t newest;

	unit_begin("audit log: bounded by audit_keep, oldest rows go, the MAC follows");
	path_of(path, sizeof(path), "bound.db");
	if (!CHECK(make_base(path) == 0))
		goto out;
	s = open_ready(path, &c0);
	if (!CHECK(s))
		goto out;
	store_set_audit_keep(s, 10);
	for (int i = 0; i < 25; i++)
		if (!CHECK(store_audit_append(s, &peer, "open", "x", "denied") == STORE_OK))
			break;
	CHECK(audit_count(s) == 10);
	CHECK(counter_of(s) == c0); /* audit rows never bump the counter */
	memset(&r, 0, sizeof(r));
	CHECK(store_audit_list(s, 1000, collect_ids, &r) == STORE_OK && r.n == 10);
	newest = r.first;
	CHECKF(r.last == newest - 9, "oldest %lld newest %lld", (long long)r.last,
	       (long long)newest);
	/* admin changes and refusals count against the same bound */
	make_group(&g, "g1", 1);
	make_vtpm(&v, 9, g.uuid);
	CHECK(store_vtpm_add(s, &admin, &v) == STORE_OK);
	CHECK(store_vtpm_add(s, &admin, &v) == STORE_EXISTS);
	CHECK(audit_count(s) == 10 && counter_of(s) == c0 + 1);
	/* a lower bound applies at the next append */
	store_set_audit_keep(s, 3);
	CHECK(audit_count(s) == 10);
	CHECK(store_audit_append(s, &peer, "open", "y", "denied") == STORE_OK);
	memset(&r, 0, sizeof(r));
	CHECK(store_audit_list(s, 1000, collect_ids, &r) == STORE_OK && r.n == 3);
	CHECK(audit_count(s) == 3 && r.first == newest + 3 && r.last == newest + 1);
	store_close(s);
	s = open_ready(path, &c0);
	CHECK(s != NULL);
	store_close(s);
	/* the bound is per connection (the manager sets it at start): default 100000 */
	s = open_ready(path, &c0);
	CHECK(s && store_audit_append(s, &peer, "open", "z", "denied") == STORE_OK &&
	      audit_count(s) == 4);
	store_close(s);
	CHECK(verify_rc(path, err, sizeof(err)) == STORE_OK);
	CHECK(raw_int(path, "SELECT count(*) FROM audit") == 4);
out:
	unit_end();
}

static void test_unkeyed_audit(void)
{
	char path[128], copy[128], err[ERRLEN];
	struct store *s = NULL;
	struct store_actor peer = {.uid = 1000, .pid = 7};
	struct store_host h;
	uint64_t c;

	unit_begin(
	    "audit before provisioning: no key, no MAC; folded in at the first keyed change");
	path_of(path, sizeof(path), "unkeyed.db");
	path_of(copy, sizeof(copy), "unkeyed-copy.db");
	remove_db(path);
	if (!CHECK(store_open(&s, path, NULL, err, sizeof(err)) == STORE_OK))
		goto out;
	CHECK(store_verify(s, &c, err, sizeof(err)) == STORE_OK && c == 0);
	for (int i = 0; i < 3; i++)
		CHECKF(store_audit_append(s, &peer, "open", "early", "denied: unprovisioned") ==
			   STORE_OK,
		       "%s", store_errmsg(s));
	/* a bound holds before the key as well */
	store_set_audit_keep(s, 2);
	CHECK(store_audit_append(s, &peer, "open", "early", "denied") == STORE_OK);
	CHECK(audit_count(s) == 2 && counter_of(s) == 0);
	store_close(s);
	s = NULL;
	CHECK(raw_int(path, "SELECT mac IS NULL AND agg IS NULL FROM meta") == 1);
	/* still valid without a key, and appends still work before verify */
	if (!CHECK(store_open(&s, path, NULL, err, sizeof(err)) == STORE_OK))
		goto out;
	CHECK(store_audit_append(s, &peer, "open", "early", "denied") == STORE_OK);
	CHECK(store_verify(s, &c, err, sizeof(err)) == STORE_OK && c == 0);
	/* a key and a verify, audit only: still no MAC (host-init may yet fail) */
	store_set_mac_key(s, key);
	CHECK(store_verify(s, &c, err, sizeof(err)) == STORE_OK);
	CHECK(store_audit_append(s, &peer, "open", "early", "denied") == STORE_OK);
	store_close(s);
	s = NULL;
	CHECK(raw_int(path, "SELECT mac IS NULL FROM meta") == 1);
	/* provisioning: the first keyed change seals the store, old rows included */
	s = open_ready(path, &c);
	if (!CHECK(s))
		goto out;
	memset(&h, 0, sizeof(h));
	h.pcr_mask = 1;
	h.sealed_root_len = 10;
	CHECK(store_host_put(s, &admin, &h) == STORE_OK && counter_of(s) == 1);
	CHECK(audit_count(s) == 5); /* 2 kept + 2 + host-put (a new connection keeps 100000) */
	store_close(s);
	s = NULL;
	CHECK(raw_int(path, "SELECT length(mac) = 32 AND length(agg) = 32 FROM meta") == 1);
	CHECK(verify_rc(path, err, sizeof(err)) == STORE_OK);
	/* a row written before provisioning is now covered */
	CHECK(copy_db(path, copy) == 0 &&
	      raw_exec(copy, "DELETE FROM audit WHERE id = (SELECT min(id) FROM audit)") == 1);
	CHECK(verify_rc(copy, err, sizeof(err)) == STORE_TAMPERED);
	/* and a sealed store takes no append without the key and a verify */
	if (!CHECK(store_open(&s, path, NULL, err, sizeof(err)) == STORE_OK))
		goto out;
	CHECK(store_audit_append(s, &peer, "open", "late", "denied") == STORE_NO_KEY);
	CHECK(store_verify(s, &c, err, sizeof(err)) == STORE_NO_KEY);
	store_set_mac_key(s, key);
	CHECK(store_audit_append(s, &peer, "open", "late", "denied") == STORE_NOT_VERIFIED);
	CHECK(store_verify(s, &c, err, sizeof(err)) == STORE_OK);
	CHECK(store_audit_append(s, &peer, "open", "late", "denied") == STORE_OK);
	store_close(s);
	s = NULL;
	CHECK(verify_rc(path, err, sizeof(err)) == STORE_OK);
	/* stripping the MAC of a sealed store does not make it "fresh" (emptying it as well
	 * does: that store is a new one, as a deleted file would be, unprovisioned) */
	CHECK(copy_db(path, copy) == 0 &&
	      raw_exec(copy, "UPDATE meta SET mac = NULL, agg = NULL, counter = 0") > 0);
	CHECK(verify_rc(copy, err, sizeof(err)) == STORE_TAMPERED);
out:
	store_close(s);
	unit_end();
}

/* ---- a new key inside a transaction (host-init FORCE) ---------------------------------- */

static void test_rekey(void)
{
	char path[128], err[ERRLEN];
	uint8_t k2[STORE_MAC_KEY_LEN];
	struct store *s = NULL;
	struct store_host h;
	uint64_t c0, c;
	int rc;

	unit_begin("a key set inside store_begin: the commit MACs every row under it");
	path_of(path, sizeof(path), "rekey.db");
	if (!CHECK(make_base(path) == 0))
		goto out;
	s = open_ready(path, &c0);
	if (!CHECK(s))
		goto out;
	memcpy(k2, key, sizeof(k2));
	k2[0] ^= 1;
	CHECK(store_host_get(s, &h) == STORE_OK);
	h.pcr_mask = 0x7;
	CHECK(store_begin(s) == STORE_OK && store_host_put(s, &admin, &h) == STORE_OK);
	store_set_mac_key(s, k2);
	CHECK(store_commit(s) == STORE_OK);
	CHECK(store_verify(s, &c, err, sizeof(err)) == STORE_OK && c == c0 + 1);
	store_close(s);
	s = NULL;
	rc = verify_rc(path, err, sizeof(err)); /* the old key */
	CHECKF(rc == STORE_TAMPERED, "old key: %d %s", rc, err);
	if (!CHECK(store_open(&s, path, NULL, err, sizeof(err)) == STORE_OK))
		goto out;
	store_set_mac_key(s, k2);
	CHECK(store_verify(s, &c, err, sizeof(err)) == STORE_OK && c == c0 + 1);
out:
	store_close(s);
	unit_end();
}

/* ---- version 1 → 2 ---------------------------------------------------------------------- */

/* Write the hex fixture tests/unit/fixtures/NAME as a database file at path. */
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

static void test_upgrade(void)
{
	char path[128], err[ERRLEN];
	struct store *s = NULL;
	struct store_host h;
	struct store_vtpm v;
	struct store_guard g;
	uint8_t u[16];
	uint64_t c, n;
	int rc;

	unit_begin("a version-1 store: verified by the v1 MAC, then upgraded at once");
	path_of(path, sizeof(path), "v1.db");
	if (!CHECK(load_fixture("store_v1.hex", path) == 0))
		goto out;
	if (!CHECK(store_open(&s, path, NULL, err, sizeof(err)) == STORE_OK))
		goto out;
	CHECK(store_schema_version(s) == 1);
	CHECK(store_guard_get(s, &g) == STORE_OK && g.epoch == 0);
	CHECK(store_audit_count(s, &n) == STORE_OK && n == 7);
	/* no writes before the upgrade */
	CHECK(store_audit_append(s, &admin, "x", "y", "z") == STORE_NOT_VERIFIED);
	CHECK(store_verify(s, &c, err, sizeof(err)) == STORE_NO_KEY);
	store_set_mac_key(s, key);
	CHECKF(store_verify(s, &c, err, sizeof(err)) == STORE_OK, "%s", err);
	CHECK(c == 7);
	CHECK(store_schema_version(s) == STORE_SCHEMA_VERSION);
	CHECK(store_host_get(s, &h) == STORE_OK && h.pcr_mask == 0x80ff && h.sealed_root_len == 40);
	make_uuid(u, 0x90, 2);
	CHECK(store_vtpm_get(s, u, &v) == STORE_OK && v.version == 7 && v.digest[0] == 0x42);
	CHECK(store_guard_get(s, &g) == STORE_OK && g.epoch == 0 && g.state == STORE_GUARD_RUNNING);
	CHECK(store_audit_count(s, &n) == STORE_OK && n == 7);
	CHECK(store_counter(s, &c) == STORE_OK && c == 7);
	/* and it works as version 2 */
	CHECK(store_vtpm_set_version(s, u, 8, v.digest) == STORE_OK && counter_of(s) == 8);
	store_close(s);
	s = NULL;
	CHECK(raw_int(path, "PRAGMA user_version") == STORE_SCHEMA_VERSION);
	CHECK(verify_rc(path, err, sizeof(err)) == STORE_OK);
	/* its audit rows, outside the v1 MAC, are inside the v2 one */
	CHECK(raw_exec(path, "UPDATE audit SET uid = 5 WHERE id = 1") == 1);
	CHECK(verify_rc(path, err, sizeof(err)) == STORE_TAMPERED);

	/* a tampered version-1 store is refused and left as it is */
	CHECK(load_fixture("store_v1.hex", path) == 0);
	CHECK(raw_exec(path, "UPDATE vtpms SET version = 1 WHERE version = 7") == 1);
	rc = verify_rc(path, err, sizeof(err));
	CHECKF(rc == STORE_TAMPERED && strstr(err, "MAC mismatch"), "%d %s", rc, err);
	CHECK(raw_int(path, "PRAGMA user_version") == 1);
	/* so is one under another key */
	CHECK(load_fixture("store_v1.hex", path) == 0);
	if (!CHECK(store_open(&s, path, NULL, err, sizeof(err)) == STORE_OK))
		goto out;
	{
		uint8_t k2[STORE_MAC_KEY_LEN];

		memcpy(k2, key, sizeof(k2));
		k2[5] ^= 0x10;
		store_set_mac_key(s, k2);
	}
	CHECK(store_verify(s, &c, err, sizeof(err)) == STORE_TAMPERED);
	CHECK(store_schema_version(s) == 1);
	store_close(s);
	s = NULL;

	/* an unprovisioned version-1 store (audit rows, no MAC): upgraded without a key */
	CHECK(load_fixture("store_v1_fresh.hex", path) == 0);
	if (!CHECK(store_open(&s, path, NULL, err, sizeof(err)) == STORE_OK))
		goto out;
	CHECKF(store_verify(s, &c, err, sizeof(err)) == STORE_OK && c == 0, "%s", err);
	CHECK(store_schema_version(s) == STORE_SCHEMA_VERSION);
	CHECK(store_audit_count(s, &n) == STORE_OK && n == 2);
	CHECK(store_audit_append(s, &admin, "open", "x", "denied") == STORE_OK);
	store_set_mac_key(s, key);
	CHECK(store_verify(s, &c, err, sizeof(err)) == STORE_OK);
	memset(&h, 0, sizeof(h));
	h.pcr_mask = 1;
	h.sealed_root_len = 10;
	CHECK(store_host_put(s, &admin, &h) == STORE_OK);
	store_close(s);
	s = NULL;
	CHECK(verify_rc(path, err, sizeof(err)) == STORE_OK);
	CHECK(raw_int(path, "SELECT audit_rows FROM meta") == 4);
out:
	store_close(s);
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

/* tests/unit/fixtures/store_v2.hex: written by the version-2 store code (commit 176ad76) under
 * key: a host record (PCR mask 0x10001, 40-byte sealed root, 30-byte predicted copy), group g1,
 * vTPM 90..90 (version 3), a guard (epoch 9), counter 4, 3 audit rows. */
static void test_upgrade_v2(void)
{
	char path[128], err[ERRLEN];
	struct store *s = NULL;
	struct store_host h;
	struct store_guard g;
	uint64_t c, n;
	int rc;

	unit_begin(
	    "a version-2 store: read before its upgrade, verified by the v2 MAC, upgraded to v3");
	path_of(path, sizeof(path), "v2.db");
	if (!CHECK(load_fixture("store_v2.hex", path) == 0))
		goto out;
	if (!CHECK(store_open(&s, path, NULL, err, sizeof(err)) == STORE_OK))
		goto out;
	CHECK(store_schema_version(s) == 2);
	/* the host record is read before store_verify (to unseal the root key) */
	CHECKF(store_host_get(s, &h) == STORE_OK && h.pcr_mask == 0x10001 &&
		   h.sealed_root_len == 40 && h.sealed_next_len == 30 && h.policy_key_len == 0 &&
		   h.sealed_auth_len == 0 && h.policy_nv == 0 && h.policies_len == 0,
	       "%s", store_errmsg(s));
	CHECK(store_audit_append(s, &admin, "x", "y", "z") == STORE_NOT_VERIFIED);
	CHECK(store_verify(s, &c, err, sizeof(err)) == STORE_NO_KEY);
	CHECK(store_schema_version(s) == 2);
	store_set_mac_key(s, key);
	CHECKF(store_verify(s, &c, err, sizeof(err)) == STORE_OK, "%s", err);
	CHECK(c == 4);
	CHECK(store_schema_version(s) == STORE_SCHEMA_VERSION);
	CHECK(store_guard_get(s, &g) == STORE_OK && g.epoch == 9);
	CHECK(store_audit_count(s, &n) == STORE_OK && n == 3);
	/* and it works as version 3: the new columns are written and MAC-covered */
	CHECK(store_host_get(s, &h) == STORE_OK && h.sealed_next_len == 30);
	h.policy_key_len = 10;
	memset(h.policy_key, 0x61, 10);
	h.sealed_auth_len = 20;
	memset(h.sealed_auth, 0x62, 20);
	h.policy_nv = 0x013ff101;
	CHECK(store_host_put(s, &admin, &h) == STORE_OK && counter_of(s) == 5);
	store_close(s);
	s = NULL;
	CHECK(raw_int(path, "PRAGMA user_version") == STORE_SCHEMA_VERSION);
	CHECK(verify_rc(path, err, sizeof(err)) == STORE_OK);
	CHECK(raw_exec(path, "UPDATE host SET policy_nv = policy_nv + 1") == 1);
	CHECK(verify_rc(path, err, sizeof(err)) == STORE_TAMPERED);

	/* a tampered version-2 store is refused and left as it is */
	CHECK(load_fixture("store_v2.hex", path) == 0);
	CHECK(raw_exec(path, "UPDATE vtpms SET version = 2") == 1);
	rc = verify_rc(path, err, sizeof(err));
	CHECKF(rc == STORE_TAMPERED && strstr(err, "MAC mismatch"), "%d %s", rc, err);
	CHECK(raw_int(path, "PRAGMA user_version") == 2);
	/* so is one under another key */
	CHECK(load_fixture("store_v2.hex", path) == 0);
	if (!CHECK(store_open(&s, path, NULL, err, sizeof(err)) == STORE_OK))
		goto out;
	{
		uint8_t k2[STORE_MAC_KEY_LEN];

		memcpy(k2, key, sizeof(k2));
		k2[5] ^= 0x10;
		store_set_mac_key(s, k2);
	}
	CHECK(store_verify(s, &c, err, sizeof(err)) == STORE_TAMPERED);
	CHECK(store_schema_version(s) == 2);
out:
	store_close(s);
	unit_end();
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/vtpm-store-mac-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_every_column();
	test_upgrade_v2();
	test_delete_insert();
	test_mix_and_match();
	test_guard();
	test_audit_bound();
	test_unkeyed_audit();
	test_rekey();
	test_upgrade();
	cleanup_dir();
	return unit_exit();
}
