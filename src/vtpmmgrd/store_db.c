/*
 * store_db.c — the store's connection: open and close, schema creation, the statement
 * cache, column readers that insist on the schema's types, and error mapping.
 *
 * Statements used on every mutation are prepared once (SQLITE_PREPARE_PERSISTENT) and
 * reset before each use; list functions prepare their own, so their callbacks may call
 * the getters.
 */
#include "vtpmmgrd/store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define META_COLS "counter, mac, agg, audit_rows, epoch, guard_state, tpm_reset_count, guard_time"

static const char *const qsql[Q_COUNT] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_BEGIN_READ] = "BEGIN",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_SAVEPOINT] = "SAVEPOINT change",
    [Q_RELEASE] = "RELEASE change",
    [Q_ROLLBACK_TO] = "ROLLBACK TO change",
    [Q_COUNTER_GET] = "SELECT counter FROM meta WHERE id = 1",
    [Q_META_GET] = "SELECT " META_COLS " FROM meta WHERE id = 1",
    [Q_META_SEALED] = "SELECT mac IS NOT NULL FROM meta WHERE id = 1",
    [Q_META_SET_MAC] = "UPDATE meta SET counter = ?1, mac = ?2, agg = ?3 WHERE id = 1",
    [Q_GUARD_SET] = "UPDATE meta SET epoch = ?1, guard_state = ?2, tpm_reset_count = ?3,"
		    " guard_time = ?4 WHERE id = 1",
    [Q_HOST_GET] =
	"SELECT pcr_mask, sealed_root, nv_index, ak_public, created, sealed_next,"
	" next_created, policy_key, sealed_auth, policy_nv, policies FROM host WHERE id = 1",
    [Q_HOST_GET_V2] = "SELECT pcr_mask, sealed_root, nv_index, ak_public, created, sealed_next,"
		      " next_created FROM host WHERE id = 1",
    [Q_HOST_ROW] = "SELECT " HOST_COLS " FROM host WHERE id = 1",
    [Q_HOST_PUT] = "INSERT OR REPLACE INTO host (" HOST_COLS ") VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6,"
		   " ?7, ?8, ?9, ?10, ?11)",
    [Q_GROUP_BY_UUID] = "SELECT " GROUP_COLS " FROM vtpm_groups WHERE uuid = ?1",
    [Q_GROUP_BY_NAME] = "SELECT " GROUP_COLS " FROM vtpm_groups WHERE name = ?1",
    [Q_GROUP_PATTERNS] = "SELECT pattern FROM group_patterns WHERE group_uuid = ?1"
			 " ORDER BY pattern",
    [Q_GROUP_DIGESTS] = "SELECT digest FROM group_digests WHERE group_uuid = ?1 ORDER BY digest",
    [Q_GROUP_INSERT] = "INSERT INTO vtpm_groups (" GROUP_COLS ") VALUES (?1, ?2, ?3, ?4, ?5)",
    [Q_PATTERN_INSERT] = "INSERT INTO group_patterns (" PATTERN_COLS ") VALUES (?1, ?2)",
    [Q_DIGEST_INSERT] = "INSERT INTO group_digests (" DIGEST_COLS ") VALUES (?1, ?2)",
    [Q_PATTERN_ROWS] = "SELECT " PATTERN_COLS " FROM group_patterns WHERE group_uuid = ?1",
    [Q_DIGEST_ROWS] = "SELECT " DIGEST_COLS " FROM group_digests WHERE group_uuid = ?1",
    [Q_PATTERN_ROW] = "SELECT " PATTERN_COLS " FROM group_patterns"
		      " WHERE group_uuid = ?1 AND pattern = ?2",
    [Q_DIGEST_ROW] = "SELECT " DIGEST_COLS " FROM group_digests"
		     " WHERE group_uuid = ?1 AND digest = ?2",
    [Q_GROUP_DELETE] = "DELETE FROM vtpm_groups WHERE uuid = ?1",
    [Q_GROUP_VTPMS] = "SELECT count(*) FROM vtpms WHERE group_uuid = ?1",
    [Q_VTPM_GET] = "SELECT " VTPM_COLS " FROM vtpms WHERE uuid = ?1",
    [Q_VTPM_INSERT] = "INSERT INTO vtpms (" VTPM_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [Q_VTPM_DELETE] = "DELETE FROM vtpms WHERE uuid = ?1",
    [Q_VTPM_SET_STATE] = "UPDATE vtpms SET state = ?2 WHERE uuid = ?1",
    [Q_VTPM_SET_BOUND] = "UPDATE vtpms SET bound_label = ?2 WHERE uuid = ?1",
    [Q_VTPM_SET_VERSION] = "UPDATE vtpms SET version = ?2, digest = ?3 WHERE uuid = ?1",
    [Q_AUDIT_INSERT] = "INSERT INTO audit (time, uid, pid, action, subject, result)"
		       " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [Q_AUDIT_ROW] = "SELECT " AUDIT_COLS " FROM audit WHERE id = ?1",
    [Q_AUDIT_OLDEST] = "SELECT " AUDIT_COLS " FROM audit ORDER BY id LIMIT ?1",
    [Q_AUDIT_DELETE_TO] = "DELETE FROM audit WHERE id <= ?1",
    [Q_AUDIT_ROWS_ADD] = "UPDATE meta SET audit_rows = audit_rows + ?1 WHERE id = 1",
    [Q_AUDIT_LAST] = "SELECT ifnull(max(id), 0) FROM audit",
};

/* Version 1 of the schema. Names avoid SQL keywords (GROUPS is one). */
const char st_schema_v1[] =
    "CREATE TABLE meta (\n"
    "	id INTEGER PRIMARY KEY CHECK (id = 1),\n"
    "	counter INTEGER NOT NULL CHECK (counter >= 0),\n"
    "	mac BLOB\n"
    ");\n"
    "CREATE TABLE host (\n"
    "	id INTEGER PRIMARY KEY CHECK (id = 1),\n"
    "	pcr_mask INTEGER NOT NULL,\n"
    "	sealed_root BLOB NOT NULL,\n"
    "	nv_index INTEGER NOT NULL,\n"
    "	ak_public BLOB NOT NULL,\n"
    "	created INTEGER NOT NULL\n"
    ");\n"
    "CREATE TABLE vtpm_groups (\n"
    "	uuid BLOB PRIMARY KEY CHECK (length(uuid) = 16),\n"
    "	name TEXT NOT NULL UNIQUE,\n"
    "	any_digest INTEGER NOT NULL CHECK (any_digest IN (0, 1)),\n"
    "	wrapped_key BLOB NOT NULL,\n"
    "	created INTEGER NOT NULL\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE group_patterns (\n"
    "	group_uuid BLOB NOT NULL REFERENCES vtpm_groups (uuid) ON DELETE CASCADE,\n"
    "	pattern TEXT NOT NULL,\n"
    "	PRIMARY KEY (group_uuid, pattern)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE group_digests (\n"
    "	group_uuid BLOB NOT NULL REFERENCES vtpm_groups (uuid) ON DELETE CASCADE,\n"
    "	digest BLOB NOT NULL CHECK (length(digest) = 32),\n"
    "	PRIMARY KEY (group_uuid, digest)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE vtpms (\n"
    "	uuid BLOB PRIMARY KEY CHECK (length(uuid) = 16),\n"
    "	group_uuid BLOB NOT NULL REFERENCES vtpm_groups (uuid),\n"
    "	wrapped_key BLOB NOT NULL,\n"
    "	version INTEGER NOT NULL,\n"
    "	digest BLOB NOT NULL CHECK (length(digest) = 32),\n"
    "	state TEXT NOT NULL,\n"
    "	created INTEGER NOT NULL\n"
    ") WITHOUT ROWID;\n"
    "CREATE INDEX vtpms_by_group ON vtpms (group_uuid);\n"
    "CREATE TABLE audit (\n"
    "	id INTEGER PRIMARY KEY,\n"
    "	time INTEGER NOT NULL,\n"
    "	uid INTEGER NOT NULL,\n"
    "	pid INTEGER NOT NULL,\n"
    "	action TEXT NOT NULL,\n"
    "	subject TEXT NOT NULL,\n"
    "	result TEXT NOT NULL\n"
    ");\n"
    "INSERT INTO meta (id, counter, mac) VALUES (1, 0, NULL);\n";

/*
 * Version 2 adds to the meta row the aggregate, the audit row count and the rollback
 * guard, and to the host row the predicted sealed copy of the root key (NULL: none) and
 * when it was made (0: none). A new store is made as version 1 plus these same
 * statements, so that a new and an upgraded store have the same CREATE text (the schema
 * digest in the top MAC is of that text; two spellings of one schema would be two digests
 * to reason about).
 */
const char st_schema_1_to_2[] =
    "ALTER TABLE meta ADD COLUMN agg BLOB;\n"
    "ALTER TABLE meta ADD COLUMN audit_rows INTEGER NOT NULL DEFAULT 0"
    " CHECK (audit_rows >= 0);\n"
    "ALTER TABLE meta ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;\n"
    "ALTER TABLE meta ADD COLUMN guard_state INTEGER NOT NULL DEFAULT 0\n"
    "  CHECK (guard_state IN (0, 1, 2, 3));\n"
    "ALTER TABLE meta ADD COLUMN tpm_reset_count INTEGER NOT NULL DEFAULT 0"
    " CHECK (tpm_reset_count BETWEEN 0 AND 4294967295);\n"
    "ALTER TABLE meta ADD COLUMN guard_time INTEGER NOT NULL DEFAULT 0;\n"
    "ALTER TABLE vtpms ADD COLUMN bound_label TEXT NOT NULL DEFAULT '';\n"
    "ALTER TABLE host ADD COLUMN sealed_next BLOB;\n"
    "ALTER TABLE host ADD COLUMN next_created INTEGER NOT NULL DEFAULT 0;\n"
    "UPDATE meta SET audit_rows = (SELECT count(*) FROM audit) WHERE id = 1;\n";

/*
 * Version 3 adds to the host row the signed-policy columns (docs/vtpmmgrd.8, SIGNED
 * POLICIES): the admin's policy key (DER SubjectPublicKeyInfo; NULL: none), the copy of the
 * root key sealed under PolicyAuthorize of that key (NULL: none), the revocation counter's NV
 * index (0: none) and the stored signed policies (u16 length + policy file, repeated; NULL:
 * none).
 */
const char st_schema_2_to_3[] = "ALTER TABLE host ADD COLUMN policy_key BLOB;\n"
				"ALTER TABLE host ADD COLUMN sealed_auth BLOB;\n"
				"ALTER TABLE host ADD COLUMN policy_nv INTEGER NOT NULL DEFAULT 0"
				" CHECK (policy_nv BETWEEN 0 AND 4294967295);\n"
				"ALTER TABLE host ADD COLUMN policies BLOB;\n";

/* ---- errors ---------------------------------------------------------------------------- */

int st_fail(struct store *s, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
	return rc;
}

static int sqlite_rc_map(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return STORE_LOCKED;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return STORE_CORRUPT;
	case SQLITE_CONSTRAINT:
		if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
			return STORE_EXISTS;
		return STORE_INVALID;
	default:
		return STORE_IO;
	}
}

/* A failed SQLite call: say what was attempted, SQLite's message and its extended code. */
int st_sql_fail(struct store *s, int rc, const char *what)
{
	const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);

	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		return st_fail(s, STORE_LOCKED,
			       "%s: the store %s is in use by another process (another "
			       "vtpmmgrd?): %s (%d)",
			       what, s->path, msg, rc);
	return st_fail(s, sqlite_rc_map(rc), "%s: %s (SQLite error %d)", what, msg, rc);
}

void st_copy_err(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
}

const char *store_errmsg(const struct store *s)
{
	return s ? s->err : "no store";
}

int store_schema_version(const struct store *s)
{
	return s->disk_version;
}

bool st_is_refusal(int rc)
{
	return rc == STORE_NOT_FOUND || rc == STORE_EXISTS || rc == STORE_BUSY ||
	       rc == STORE_INVALID || rc == STORE_ROLLBACK;
}

/* ---- statements ------------------------------------------------------------------------ */

/* The cached statement id, reset and unbound; NULL (and s->err) if it cannot be prepared. */
sqlite3_stmt *st_q(struct store *s, enum qid id)
{
	int rc;

	if (!s->stmt[id]) {
		rc = sqlite3_prepare_v3(s->db, qsql[id], -1, SQLITE_PREPARE_PERSISTENT,
					&s->stmt[id], NULL);
		if (rc != SQLITE_OK) {
			st_sql_fail(s, rc, "preparing a statement");
			s->stmt[id] = NULL;
			return NULL;
		}
	} else {
		sqlite3_reset(s->stmt[id]);
		sqlite3_clear_bindings(s->stmt[id]);
	}
	return s->stmt[id];
}

/* Run a statement to its end and reset it. */
int st_run_stmt(struct store *s, sqlite3_stmt *st, const char *what)
{
	int rc;

	if (!st)
		return STORE_IO; /* st_q() said why */
	do
		rc = sqlite3_step(st);
	while (rc == SQLITE_ROW);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return st_sql_fail(s, rc, what);
	return STORE_OK;
}

int st_run(struct store *s, enum qid id, const char *what)
{
	return st_run_stmt(s, st_q(s, id), what);
}

int st_exec(struct store *s, const char *sql, const char *what)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return st_sql_fail(s, rc, what);
	return STORE_OK;
}

/* Step a query expected to return at most one row: 1 row, 0 none, < 0 error. */
int st_step_row(struct store *s, sqlite3_stmt *st, const char *what)
{
	int rc;

	if (!st)
		return STORE_IO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return 1;
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return 0;
	return st_sql_fail(s, rc, what);
}

/* A query that answers with one integer (PRAGMA user_version, a count). */
int st_query_int(struct store *s, const char *sql, const char *what, int *v)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return st_sql_fail(s, rc, what);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return st_sql_fail(s, rc, what);
	return STORE_OK;
}

/* Binding never fails on a prepared statement with the right index; checked anyway. */
int st_bind_blob(sqlite3_stmt *st, int i, const void *p, size_t n)
{
	return sqlite3_bind_blob64(st, i, n ? p : "", n, SQLITE_STATIC);
}

int st_bind_text(sqlite3_stmt *st, int i, const char *p)
{
	return sqlite3_bind_text(st, i, p, -1, SQLITE_STATIC);
}

int st_bind_i64(sqlite3_stmt *st, int i, int64_t v)
{
	return sqlite3_bind_int64(st, i, v);
}

/* ---- column readers: each insists on the type and size the schema requires ------------- */

int st_col_blob(sqlite3_stmt *st, int i, void *out, size_t cap, size_t *len)
{
	int n;

	if (sqlite3_column_type(st, i) != SQLITE_BLOB)
		return -1;
	n = sqlite3_column_bytes(st, i);
	if (n < 0 || (size_t)n > cap)
		return -1;
	if (n)
		memcpy(out, sqlite3_column_blob(st, i), (size_t)n);
	*len = (size_t)n;
	return 0;
}

int st_col_fixed(sqlite3_stmt *st, int i, void *out, size_t n)
{
	size_t len;

	if (st_col_blob(st, i, out, n, &len) < 0 || len != n)
		return -1;
	return 0;
}

int st_col_text(sqlite3_stmt *st, int i, char *out, size_t cap)
{
	const unsigned char *t;
	int n;

	if (sqlite3_column_type(st, i) != SQLITE_TEXT)
		return -1;
	t = sqlite3_column_text(st, i);
	n = sqlite3_column_bytes(st, i);
	if (!t || n < 0 || (size_t)n >= cap || memchr(t, 0, (size_t)n))
		return -1;
	memcpy(out, t, (size_t)n);
	out[n] = 0;
	return 0;
}

int st_col_int(sqlite3_stmt *st, int i, int64_t *v)
{
	if (sqlite3_column_type(st, i) != SQLITE_INTEGER)
		return -1;
	*v = sqlite3_column_int64(st, i);
	return 0;
}

int st_col_u32(sqlite3_stmt *st, int i, uint32_t *v)
{
	int64_t x;

	if (st_col_int(st, i, &x) < 0 || x < 0 || x > UINT32_MAX)
		return -1;
	*v = (uint32_t)x;
	return 0;
}

/* ---- the meta row ------------------------------------------------------------------------ */

/* The version-2 meta row, inside the current transaction (or autocommit). */
int st_meta_get(struct store *s, struct meta *m)
{
	sqlite3_stmt *st = st_q(s, Q_META_GET);
	int64_t c = 0, rows = 0, epoch = 0, state = 0, t = 0;
	size_t mac_len = 0, agg_len = 0;
	int rc;

	memset(m, 0, sizeof(*m));
	rc = st_step_row(s, st, "reading the store's meta row");
	if (rc < 0)
		return rc;
	if (rc == 0)
		return st_fail(s, STORE_CORRUPT, "the store has no counter row (meta)");
	rc = STORE_OK;
	if (st_col_int(st, 0, &c) < 0 || c < 0 || st_col_int(st, 3, &rows) < 0 || rows < 0 ||
	    st_col_int(st, 4, &epoch) < 0 || st_col_int(st, 5, &state) < 0 ||
	    (state < STORE_GUARD_RUNNING || state > STORE_GUARD_ADVANCING) ||
	    st_col_u32(st, 6, &m->guard.tpm_reset_count) < 0 || st_col_int(st, 7, &t) < 0)
		rc = st_fail(s, STORE_CORRUPT, "the store's meta row is malformed");
	else if (sqlite3_column_type(st, 1) != SQLITE_NULL &&
		 (st_col_blob(st, 1, m->mac, MAC_LEN, &mac_len) < 0 || mac_len != MAC_LEN))
		rc = st_fail(s, STORE_TAMPERED,
			     "the store was modified outside vtpmmgrd (malformed MAC)");
	else if (sqlite3_column_type(st, 2) != SQLITE_NULL &&
		 (st_col_blob(st, 2, m->agg, MAC_LEN, &agg_len) < 0 || agg_len != MAC_LEN))
		rc = st_fail(s, STORE_TAMPERED,
			     "the store was modified outside vtpmmgrd (malformed aggregate)");
	sqlite3_reset(st);
	m->counter = (uint64_t)c;
	m->sealed = mac_len != 0;
	m->has_agg = agg_len != 0;
	m->audit_rows = (uint64_t)rows;
	m->guard.epoch = (uint64_t)epoch;
	m->guard.state = (uint8_t)state;
	m->guard.time = t;
	return rc;
}

int store_counter(struct store *s, uint64_t *counter)
{
	sqlite3_stmt *st = st_q(s, Q_COUNTER_GET);
	int64_t c = 0;
	int rc;

	rc = st_step_row(s, st, "reading the store counter");
	if (rc < 0)
		return rc;
	if (rc == 0)
		return st_fail(s, STORE_CORRUPT, "the store has no counter row (meta)");
	rc = st_col_int(st, 0, &c) < 0 || c < 0
		 ? st_fail(s, STORE_CORRUPT, "the store counter is not a non-negative integer")
		 : STORE_OK;
	sqlite3_reset(st);
	*counter = (uint64_t)c;
	return rc;
}

/* ---- validation ------------------------------------------------------------------------ */

bool st_text_ok(const char *t, size_t max)
{
	size_t n;

	if (!t)
		return false;
	n = strnlen(t, max + 1);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)t[i] < 0x20 || t[i] == 0x7f)
			return false;
	return true;
}

bool st_state_ok(const char *t)
{
	size_t n;

	if (!t)
		return false;
	n = strnlen(t, STORE_STATE_MAX + 1);
	if (n == 0 || n > STORE_STATE_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((t[i] >= 'a' && t[i] <= 'z') || t[i] == '-'))
			return false;
	return true;
}

/* ---- open, close ------------------------------------------------------------------------- */

/* A pragma that answers with one text value (journal_mode, locking_mode): check it. */
static int pragma_expect(struct store *s, const char *sql, const char *want)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	char got[32] = "";

	if (rc != SQLITE_OK)
		return st_sql_fail(s, rc, sql);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(got, sizeof(got), "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return st_sql_fail(s, rc, sql);
	if (strcmp(got, want) != 0)
		return st_fail(s, STORE_IO, "%s: SQLite answered \"%s\", not \"%s\"", sql, got,
			       want);
	return STORE_OK;
}

static int schema_create(struct store *s)
{
	char sql[64];
	int rc;

	rc = st_run(s, Q_BEGIN, "creating the store schema");
	if (rc)
		return rc;
	rc = st_exec(s, st_schema_v1, "creating the store schema");
	if (rc == STORE_OK)
		rc = st_exec(s, st_schema_1_to_2, "creating the store schema");
	if (rc == STORE_OK)
		rc = st_exec(s, st_schema_2_to_3, "creating the store schema");
	if (rc == STORE_OK) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", STORE_SCHEMA_VERSION);
		rc = st_exec(s, sql, "setting the schema version");
	}
	if (rc == STORE_OK)
		rc = st_run(s, Q_COMMIT, "creating the store schema");
	if (rc != STORE_OK && !sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* Make a new file's directory entry durable (SQLite syncs the WAL's, not the database's). */
static int sync_dir(struct store *s, const char *path)
{
	char dir[4096];
	char *slash;
	int fd, rc = STORE_OK;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = 0;
	else
		*slash = 0;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		rc = st_fail(s, STORE_IO, "syncing directory %s: %s", dir, strerror(errno));
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Create the file (mode 0600) ourselves, so that SQLite's -wal file inherits the mode. */
static int prepare_file(struct store *s, const char *path, bool *created)
{
	struct stat st;
	int fd;

	*created = false;
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0) {
		*created = true;
	} else if (errno == EEXIST) {
		fd = open(path, O_RDWR | O_CLOEXEC);
	}
	if (fd < 0)
		return st_fail(s, STORE_IO, "cannot open the store %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		close(fd);
		return st_fail(s, STORE_IO, "cannot stat the store %s: %s", path, strerror(errno));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return st_fail(s, STORE_INVALID, "the store %s is not a regular file", path);
	}
	if ((st.st_mode & 07077) && fchmod(fd, 0600) < 0) {
		close(fd);
		return st_fail(s, STORE_IO, "cannot make the store %s mode 0600: %s", path,
			       strerror(errno));
	}
	close(fd);
	return STORE_OK;
}

static int open_inner(struct store *s, const char *path, const char *vfs)
{
	bool created;
	int rc, v = 0, nobj = 0;

	if (strlen(path) >= sizeof(s->path))
		return st_fail(s, STORE_INVALID, "store path too long");
	snprintf(s->path, sizeof(s->path), "%s", path);
	s->audit_keep = STORE_AUDIT_KEEP_DEFAULT;
	s->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (!s->hmac)
		return st_fail(s, STORE_IO, "HMAC is not available (OpenSSL)");
	rc = prepare_file(s, path, &created);
	if (rc)
		return rc;
	/* NOMUTEX: one connection per thread (store.h), no per-call mutex */
	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, vfs);
	if (rc != SQLITE_OK)
		return st_sql_fail(s, rc, "opening the store");
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, STORE_BUSY_MS);
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
	rc = pragma_expect(s, "PRAGMA locking_mode = EXCLUSIVE", "exclusive");
	if (rc == STORE_OK)
		rc = pragma_expect(s, "PRAGMA journal_mode = WAL", "wal");
	if (rc == STORE_OK)
		rc = st_exec(s,
			     "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
			     " PRAGMA secure_delete = ON; PRAGMA cell_size_check = ON;"
			     " PRAGMA journal_size_limit = 1048576",
			     "setting the store's pragmas");
	if (rc == STORE_OK)
		rc = st_query_int(s, "PRAGMA user_version", "reading the schema version", &v);
	if (rc)
		return rc;
	if (v > STORE_SCHEMA_VERSION)
		return st_fail(s, STORE_NEWER,
			       "the store %s has schema version %d, newer than this vtpmmgrd "
			       "knows (%d): refusing to open it; run a newer vtpmmgrd",
			       path, v, STORE_SCHEMA_VERSION);
	if (v < 0)
		return st_fail(s, STORE_CORRUPT, "the store %s has a negative schema version (%d)",
			       path, v);
	if (v == 0) {
		rc = st_query_int(s, "SELECT count(*) FROM sqlite_schema", "reading the schema",
				  &nobj);
		if (rc)
			return rc;
		if (nobj)
			return st_fail(s, STORE_CORRUPT,
				       "%s is not a vtpm store: no schema version but %d schema "
				       "objects",
				       path, nobj);
		rc = schema_create(s);
		if (rc == STORE_OK && created)
			rc = sync_dir(s, path);
		if (rc)
			return rc;
		v = STORE_SCHEMA_VERSION;
	}
	s->disk_version = v;
	return STORE_OK;
}

int store_open(struct store **out, const char *path, const char *vfs, char *err, size_t errlen)
{
	struct store *s;
	int rc;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s) {
		st_copy_err(err, errlen, "out of memory");
		return STORE_IO;
	}
	rc = open_inner(s, path, vfs);
	if (rc != STORE_OK) {
		st_copy_err(err, errlen, s->err);
		store_close(s);
		return rc;
	}
	*out = s;
	return STORE_OK;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	if (s->db && !sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	for (int i = 0; i < Q_COUNT; i++)
		sqlite3_finalize(s->stmt[i]);
	if (s->db)
		sqlite3_close(s->db);
	EVP_MAC_CTX_free(s->row_ctx);
	EVP_MAC_free(s->hmac);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}

void store_set_mac_key(struct store *s, const uint8_t key[STORE_MAC_KEY_LEN])
{
	memcpy(s->mac_key, key, STORE_MAC_KEY_LEN);
	s->have_key = true;
	s->verified = false;
	s->key_failed = st_mac_derive_keys(s) != STORE_OK;
	/* rows XORed so far were under the old key: the commit recomputes the aggregate */
	if (s->in_txn)
		s->txn_rekey = true;
}

void store_set_audit_keep(struct store *s, uint64_t n)
{
	s->audit_keep = n ? n : 1;
}
