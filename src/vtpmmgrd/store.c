/*
 * store.c — vtpmmgrd's SQLite store. The rules are in store.h; this file says how.
 *
 * MAC. mac = HMAC-SHA256(key, S) where S is, in order:
 *   text   "vtpm-store-mac-v1"
 *   u32    schema version (PRAGMA user_version)
 *   u64    counter
 *   u32    number of tables that follow
 *   then, for each query of mac_queries_v1[] in order: u32 its index, then for every row
 *   it returns: u8 1, u32 column count, and each column as u8 SQLite type (1 integer,
 *   2 float, 3 text, 4 blob, 5 null) followed by: integer → u64 (two's complement), float
 *   → u64 of its IEEE bits, text and blob → u32 length + bytes, null → nothing; and u8 0
 *   after the last row.
 * "text" is u32 length + bytes; every integer is big-endian. Each query orders by its
 * table's primary key, so S is canonical: the same content always gives the same bytes,
 * and any change of a value, its type, a row's presence or the schema changes S.
 *
 * Statements used on every mutation are prepared once (SQLITE_PREPARE_PERSISTENT) and
 * reset before each use; list functions prepare their own, so their callbacks may call
 * the getters.
 */
#include "vtpmmgrd/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sqlite3.h>

#include "common/mgr_proto.h"

#define ERR_MAX 512

/* Internal, positive: the mutation found nothing to change (set_version, same version). */
#define NOCHANGE 1

enum qid {
	Q_BEGIN,
	Q_BEGIN_READ,
	Q_COMMIT,
	Q_ROLLBACK,
	Q_SAVEPOINT,
	Q_RELEASE,
	Q_ROLLBACK_TO,
	Q_META_GET,
	Q_META_SET,
	Q_CONTENT_COUNT,
	Q_HOST_GET,
	Q_HOST_PUT,
	Q_GROUP_BY_UUID,
	Q_GROUP_BY_NAME,
	Q_GROUP_PATTERNS,
	Q_GROUP_DIGESTS,
	Q_GROUP_INSERT,
	Q_PATTERN_INSERT,
	Q_DIGEST_INSERT,
	Q_GROUP_DELETE,
	Q_GROUP_VTPMS,
	Q_VTPM_GET,
	Q_VTPM_INSERT,
	Q_VTPM_DELETE,
	Q_VTPM_SET_STATE,
	Q_VTPM_GET_VERSION,
	Q_VTPM_SET_VERSION,
	Q_AUDIT_INSERT,
	Q_MAC_FIRST, /* the current version's mac_queries, cached */
	Q_COUNT = Q_MAC_FIRST + 6
};

#define GROUP_COLS "uuid, name, any_digest, wrapped_key, created"
#define VTPM_COLS  "uuid, group_uuid, wrapped_key, version, digest, state, created"
#define AUDIT_COLS "id, time, uid, pid, action, subject, result"

static const char *const qsql[Q_COUNT] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_BEGIN_READ] = "BEGIN",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_SAVEPOINT] = "SAVEPOINT change",
    [Q_RELEASE] = "RELEASE change",
    [Q_ROLLBACK_TO] = "ROLLBACK TO change",
    [Q_META_GET] = "SELECT counter, mac FROM meta WHERE id = 1",
    [Q_META_SET] = "UPDATE meta SET counter = ?1, mac = ?2 WHERE id = 1",
    [Q_CONTENT_COUNT] = "SELECT (SELECT count(*) FROM host) + (SELECT count(*) FROM vtpm_groups)"
			" + (SELECT count(*) FROM group_patterns)"
			" + (SELECT count(*) FROM group_digests) + (SELECT count(*) FROM vtpms)",
    [Q_HOST_GET] = "SELECT pcr_mask, sealed_root, nv_index, ak_public, created FROM host"
		   " WHERE id = 1",
    [Q_HOST_PUT] = "INSERT OR REPLACE INTO host (id, pcr_mask, sealed_root, nv_index, ak_public,"
		   " created) VALUES (1, ?1, ?2, ?3, ?4, ?5)",
    [Q_GROUP_BY_UUID] = "SELECT " GROUP_COLS " FROM vtpm_groups WHERE uuid = ?1",
    [Q_GROUP_BY_NAME] = "SELECT " GROUP_COLS " FROM vtpm_groups WHERE name = ?1",
    [Q_GROUP_PATTERNS] = "SELECT pattern FROM group_patterns WHERE group_uuid = ?1"
			 " ORDER BY pattern",
    [Q_GROUP_DIGESTS] = "SELECT digest FROM group_digests WHERE group_uuid = ?1 ORDER BY digest",
    [Q_GROUP_INSERT] = "INSERT INTO vtpm_groups (" GROUP_COLS ") VALUES (?1, ?2, ?3, ?4, ?5)",
    [Q_PATTERN_INSERT] = "INSERT INTO group_patterns (group_uuid, pattern) VALUES (?1, ?2)",
    [Q_DIGEST_INSERT] = "INSERT INTO group_digests (group_uuid, digest) VALUES (?1, ?2)",
    [Q_GROUP_DELETE] = "DELETE FROM vtpm_groups WHERE uuid = ?1",
    [Q_GROUP_VTPMS] = "SELECT count(*) FROM vtpms WHERE group_uuid = ?1",
    [Q_VTPM_GET] = "SELECT " VTPM_COLS " FROM vtpms WHERE uuid = ?1",
    [Q_VTPM_INSERT] = "INSERT INTO vtpms (" VTPM_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [Q_VTPM_DELETE] = "DELETE FROM vtpms WHERE uuid = ?1",
    [Q_VTPM_SET_STATE] = "UPDATE vtpms SET state = ?2 WHERE uuid = ?1",
    [Q_VTPM_GET_VERSION] = "SELECT version, digest FROM vtpms WHERE uuid = ?1",
    [Q_VTPM_SET_VERSION] = "UPDATE vtpms SET version = ?2, digest = ?3 WHERE uuid = ?1",
    [Q_AUDIT_INSERT] = "INSERT INTO audit (time, uid, pid, action, subject, result)"
		       " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
};

/* Version 1 of the schema. Names avoid SQL keywords (GROUPS is one). */
static const char schema_v1[] =
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

/* What the MAC covers in a version-1 store (see the top of this file). */
static const char *const mac_queries_v1[] = {
    "SELECT type, name, tbl_name, sql FROM sqlite_schema"
    " WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name",
    "SELECT id, pcr_mask, sealed_root, nv_index, ak_public, created FROM host ORDER BY id",
    "SELECT " GROUP_COLS " FROM vtpm_groups ORDER BY uuid",
    "SELECT group_uuid, pattern FROM group_patterns ORDER BY group_uuid, pattern",
    "SELECT group_uuid, digest FROM group_digests ORDER BY group_uuid, digest",
    "SELECT " VTPM_COLS " FROM vtpms ORDER BY uuid",
};
_Static_assert(sizeof(mac_queries_v1) / sizeof(mac_queries_v1[0]) == Q_COUNT - Q_MAC_FIRST,
	       "one cached statement per MAC query of the current version");

/*
 * Upgrade steps: upgrades[v] turns a version-v store into version v + 1, inside the
 * upgrade transaction of store_verify (which then sets user_version and rewrites the
 * MAC). Index 0 is unused: version 1 is created whole. To add version 2: write
 * schema_v2 for new stores, mac_queries_v2, upgrade_1_to_2, and list it here.
 */
typedef int (*upgrade_fn)(struct store *s);
static const upgrade_fn upgrades[STORE_SCHEMA_VERSION] = {[0] = NULL};

struct store {
	sqlite3 *db;
	sqlite3_stmt *stmt[Q_COUNT];
	EVP_MAC *hmac;
	char path[4096];
	int disk_version; /* user_version at open */
	bool have_key;
	bool verified;
	bool in_txn;	 /* store_begin ... store_commit */
	bool txn_dirty;	 /* a MAC-covered change is pending in the open transaction */
	bool txn_failed; /* an I/O error struck inside store_begin ... */
	bool txn_wipe;	 /* checkpoint + truncate the WAL after the commit */
	uint64_t counter;
	char err[ERR_MAX];
	uint8_t mac_key[STORE_MAC_KEY_LEN];
};

/* ---- errors ---------------------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static int fail(struct store *s, int rc, const char *fmt, ...)
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
static int sql_fail(struct store *s, int rc, const char *what)
{
	const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);

	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		return fail(s, STORE_LOCKED,
			    "%s: the store %s is in use by another process (another vtpmmgrd?): "
			    "%s (%d)",
			    what, s->path, msg, rc);
	return fail(s, sqlite_rc_map(rc), "%s: %s (SQLite error %d)", what, msg, rc);
}

static void copy_err(char *err, size_t errlen, const char *msg)
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

static bool is_refusal(int rc)
{
	return rc == STORE_NOT_FOUND || rc == STORE_EXISTS || rc == STORE_BUSY ||
	       rc == STORE_INVALID || rc == STORE_ROLLBACK;
}

/* ---- statements ------------------------------------------------------------------------ */

/* The cached statement id, reset and unbound; NULL (and s->err) if it cannot be prepared. */
static sqlite3_stmt *q(struct store *s, enum qid id)
{
	const char *sql = id >= Q_MAC_FIRST ? mac_queries_v1[id - Q_MAC_FIRST] : qsql[id];
	int rc;

	if (!s->stmt[id]) {
		rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[id],
					NULL);
		if (rc != SQLITE_OK) {
			sql_fail(s, rc, "preparing a statement");
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
static int run_stmt(struct store *s, sqlite3_stmt *st, const char *what)
{
	int rc;

	if (!st)
		return STORE_IO; /* q() said why */
	do
		rc = sqlite3_step(st);
	while (rc == SQLITE_ROW);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sql_fail(s, rc, what);
	return STORE_OK;
}

static int run(struct store *s, enum qid id, const char *what)
{
	return run_stmt(s, q(s, id), what);
}

static int exec(struct store *s, const char *sql, const char *what)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return sql_fail(s, rc, what);
	return STORE_OK;
}

/* Step a query expected to return at most one row: 1 row, 0 none, < 0 error. */
static int step_row(struct store *s, sqlite3_stmt *st, const char *what)
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
	return sql_fail(s, rc, what);
}

/* Binding never fails on a prepared statement with the right index; checked anyway. */
static int bind_blob(sqlite3_stmt *st, int i, const void *p, size_t n)
{
	return sqlite3_bind_blob64(st, i, n ? p : "", n, SQLITE_STATIC);
}

static int bind_text(sqlite3_stmt *st, int i, const char *p)
{
	return sqlite3_bind_text(st, i, p, -1, SQLITE_STATIC);
}

static int bind_i64(sqlite3_stmt *st, int i, int64_t v)
{
	return sqlite3_bind_int64(st, i, v);
}

/* ---- column readers: each insists on the type and size the schema requires ------------- */

static int col_blob(sqlite3_stmt *st, int i, void *out, size_t cap, size_t *len)
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

static int col_fixed(sqlite3_stmt *st, int i, void *out, size_t n)
{
	size_t len;

	if (col_blob(st, i, out, n, &len) < 0 || len != n)
		return -1;
	return 0;
}

static int col_text(sqlite3_stmt *st, int i, char *out, size_t cap)
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

static int col_int(sqlite3_stmt *st, int i, int64_t *v)
{
	if (sqlite3_column_type(st, i) != SQLITE_INTEGER)
		return -1;
	*v = sqlite3_column_int64(st, i);
	return 0;
}

static int col_u32(sqlite3_stmt *st, int i, uint32_t *v)
{
	int64_t x;

	if (col_int(st, i, &x) < 0 || x < 0 || x > UINT32_MAX)
		return -1;
	*v = (uint32_t)x;
	return 0;
}

/* ---- MAC ------------------------------------------------------------------------------- */

struct macbuf {
	EVP_MAC_CTX *ctx;
	uint8_t buf[4096];
	size_t n;
	bool failed;
};

static void mb_flush(struct macbuf *m)
{
	if (m->n && !m->failed && EVP_MAC_update(m->ctx, m->buf, m->n) != 1)
		m->failed = true;
	m->n = 0;
}

static void mb_put(struct macbuf *m, const void *p, size_t n)
{
	if (n > sizeof(m->buf) - m->n) {
		mb_flush(m);
		if (n > sizeof(m->buf)) {
			if (!m->failed && EVP_MAC_update(m->ctx, p, n) != 1)
				m->failed = true;
			return;
		}
	}
	memcpy(m->buf + m->n, p, n);
	m->n += n;
}

static void mb_u8(struct macbuf *m, uint8_t v)
{
	mb_put(m, &v, 1);
}

static void mb_u32(struct macbuf *m, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

	mb_put(m, b, sizeof(b));
}

static void mb_u64(struct macbuf *m, uint64_t v)
{
	mb_u32(m, (uint32_t)(v >> 32));
	mb_u32(m, (uint32_t)v);
}

static void mb_bytes(struct macbuf *m, const void *p, size_t n)
{
	mb_u32(m, (uint32_t)n);
	if (n)
		mb_put(m, p, n);
}

/* One query's rows, typed and length-prefixed (see the top of this file). The current
 * version's queries are cached; an older version's (upgrade) are prepared for once. */
static int mac_table(struct store *s, struct macbuf *m, int version, size_t qi, const char *sql)
{
	sqlite3_stmt *st = NULL;
	bool cached = version == STORE_SCHEMA_VERSION;
	int rc, ncol;
	double d;
	uint64_t bits;

	if (cached) {
		st = q(s, (enum qid)(Q_MAC_FIRST + qi));
		if (!st)
			return STORE_IO;
	} else {
		rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
		if (rc != SQLITE_OK)
			return sql_fail(s, rc, "computing the store MAC");
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ncol = sqlite3_column_count(st);
		mb_u8(m, 1);
		mb_u32(m, (uint32_t)ncol);
		for (int i = 0; i < ncol; i++) {
			int t = sqlite3_column_type(st, i);

			mb_u8(m, (uint8_t)t);
			switch (t) {
			case SQLITE_INTEGER:
				mb_u64(m, (uint64_t)sqlite3_column_int64(st, i));
				break;
			case SQLITE_FLOAT:
				d = sqlite3_column_double(st, i);
				memcpy(&bits, &d, sizeof(bits));
				mb_u64(m, bits);
				break;
			case SQLITE_TEXT:
				/* _text before _bytes: the length of the UTF-8 form */
				mb_bytes(m, sqlite3_column_text(st, i),
					 (size_t)sqlite3_column_bytes(st, i));
				break;
			case SQLITE_BLOB:
				mb_bytes(m, sqlite3_column_blob(st, i),
					 (size_t)sqlite3_column_bytes(st, i));
				break;
			default:
				break;
			}
		}
	}
	if (cached)
		sqlite3_reset(st);
	else
		sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sql_fail(s, rc, "computing the store MAC");
	mb_u8(m, 0);
	return STORE_OK;
}

static int mac_compute(struct store *s, int version, uint64_t counter, uint8_t out[32])
{
	static const char tag[] = "vtpm-store-mac-v1";
	const char *const *queries;
	size_t nq, outlen = 0;
	struct macbuf *m;
	OSSL_PARAM params[2];
	int rc = STORE_OK;

	switch (version) {
	case 1:
		queries = mac_queries_v1;
		nq = sizeof(mac_queries_v1) / sizeof(mac_queries_v1[0]);
		break;
	default:
		return fail(s, STORE_CORRUPT, "no MAC definition for schema version %d", version);
	}
	if (!s->have_key)
		return fail(s, STORE_NO_KEY, "the store MAC key is not set");
	m = calloc(1, sizeof(*m));
	if (!m)
		return fail(s, STORE_IO, "out of memory computing the store MAC");
	m->ctx = EVP_MAC_CTX_new(s->hmac);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!m->ctx || EVP_MAC_init(m->ctx, s->mac_key, sizeof(s->mac_key), params) != 1) {
		rc = fail(s, STORE_IO, "HMAC-SHA256 is not available (OpenSSL)");
		goto out;
	}
	mb_bytes(m, tag, sizeof(tag) - 1);
	mb_u32(m, (uint32_t)version);
	mb_u64(m, counter);
	mb_u32(m, (uint32_t)nq);
	for (size_t i = 0; i < nq && rc == STORE_OK; i++) {
		mb_u32(m, (uint32_t)i);
		rc = mac_table(s, m, version, i, queries[i]);
	}
	if (rc != STORE_OK)
		goto out;
	mb_flush(m);
	if (m->failed || EVP_MAC_final(m->ctx, out, &outlen, 32) != 1 || outlen != 32)
		rc = fail(s, STORE_IO, "HMAC-SHA256 failed (OpenSSL)");
out:
	EVP_MAC_CTX_free(m->ctx);
	OPENSSL_cleanse(m, sizeof(*m));
	free(m);
	return rc;
}

/* ---- open, close, verify --------------------------------------------------------------- */

/* A query that answers with one integer (PRAGMA user_version, a count). */
static int query_int(struct store *s, const char *sql, const char *what, int *v)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return sql_fail(s, rc, what);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return sql_fail(s, rc, what);
	return STORE_OK;
}

/* A pragma that answers with one text value (journal_mode, locking_mode): check it. */
static int pragma_expect(struct store *s, const char *sql, const char *want)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	char got[32] = "";

	if (rc != SQLITE_OK)
		return sql_fail(s, rc, sql);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(got, sizeof(got), "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return sql_fail(s, rc, sql);
	if (strcmp(got, want) != 0)
		return fail(s, STORE_IO, "%s: SQLite answered \"%s\", not \"%s\"", sql, got, want);
	return STORE_OK;
}

static int schema_create(struct store *s)
{
	char sql[64];
	int rc;

	rc = run(s, Q_BEGIN, "creating the store schema");
	if (rc)
		return rc;
	rc = exec(s, schema_v1, "creating the store schema");
	if (rc == STORE_OK) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", STORE_SCHEMA_VERSION);
		rc = exec(s, sql, "setting the schema version");
	}
	if (rc == STORE_OK)
		rc = run(s, Q_COMMIT, "creating the store schema");
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
		rc = fail(s, STORE_IO, "syncing directory %s: %s", dir, strerror(errno));
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
		return fail(s, STORE_IO, "cannot open the store %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		close(fd);
		return fail(s, STORE_IO, "cannot stat the store %s: %s", path, strerror(errno));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return fail(s, STORE_INVALID, "the store %s is not a regular file", path);
	}
	if ((st.st_mode & 07077) && fchmod(fd, 0600) < 0) {
		close(fd);
		return fail(s, STORE_IO, "cannot make the store %s mode 0600: %s", path,
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
		return fail(s, STORE_INVALID, "store path too long");
	snprintf(s->path, sizeof(s->path), "%s", path);
	s->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (!s->hmac)
		return fail(s, STORE_IO, "HMAC is not available (OpenSSL)");
	rc = prepare_file(s, path, &created);
	if (rc)
		return rc;
	/* NOMUTEX: one connection per thread (store.h), no per-call mutex */
	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, vfs);
	if (rc != SQLITE_OK)
		return sql_fail(s, rc, "opening the store");
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, STORE_BUSY_MS);
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
	rc = pragma_expect(s, "PRAGMA locking_mode = EXCLUSIVE", "exclusive");
	if (rc == STORE_OK)
		rc = pragma_expect(s, "PRAGMA journal_mode = WAL", "wal");
	if (rc == STORE_OK)
		rc = exec(s,
			  "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
			  " PRAGMA secure_delete = ON; PRAGMA cell_size_check = ON;"
			  " PRAGMA journal_size_limit = 1048576",
			  "setting the store's pragmas");
	if (rc == STORE_OK)
		rc = query_int(s, "PRAGMA user_version", "reading the schema version", &v);
	if (rc)
		return rc;
	if (v > STORE_SCHEMA_VERSION)
		return fail(s, STORE_NEWER,
			    "the store %s has schema version %d, newer than this vtpmmgrd knows "
			    "(%d): refusing to open it; run a newer vtpmmgrd",
			    path, v, STORE_SCHEMA_VERSION);
	if (v < 0)
		return fail(s, STORE_CORRUPT, "the store %s has a negative schema version (%d)",
			    path, v);
	if (v == 0) {
		rc =
		    query_int(s, "SELECT count(*) FROM sqlite_schema", "reading the schema", &nobj);
		if (rc)
			return rc;
		if (nobj)
			return fail(s, STORE_CORRUPT,
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
		copy_err(err, errlen, "out of memory");
		return STORE_IO;
	}
	rc = open_inner(s, path, vfs);
	if (rc != STORE_OK) {
		copy_err(err, errlen, s->err);
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
	EVP_MAC_free(s->hmac);
	OPENSSL_cleanse(s->mac_key, sizeof(s->mac_key));
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}

void store_set_mac_key(struct store *s, const uint8_t key[STORE_MAC_KEY_LEN])
{
	memcpy(s->mac_key, key, STORE_MAC_KEY_LEN);
	s->have_key = true;
	s->verified = false;
}

/* Read counter and MAC inside the current transaction. mac_len 0: no MAC (NULL). */
static int meta_get(struct store *s, uint64_t *counter, uint8_t mac[32], size_t *mac_len)
{
	sqlite3_stmt *st = q(s, Q_META_GET);
	int64_t c = 0;
	int rc;

	rc = step_row(s, st, "reading the store counter");
	if (rc < 0)
		return rc;
	if (rc == 0)
		return fail(s, STORE_CORRUPT, "the store has no counter row (meta)");
	*mac_len = 0;
	rc = STORE_OK;
	if (col_int(st, 0, &c) < 0 || c < 0)
		rc = fail(s, STORE_CORRUPT, "the store counter is not a non-negative integer");
	else if (mac && sqlite3_column_type(st, 1) != SQLITE_NULL &&
		 (col_blob(st, 1, mac, 32, mac_len) < 0 || *mac_len != 32))
		rc = fail(s, STORE_TAMPERED,
			  "the store was modified outside vtpmmgrd (malformed MAC)");
	sqlite3_reset(st);
	*counter = (uint64_t)c;
	return rc;
}

static int quick_check(struct store *s)
{
	sqlite3_stmt *st;
	char first[256] = "";
	int rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &st, NULL);

	if (rc != SQLITE_OK)
		return sql_fail(s, rc, "checking the store file");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(first, sizeof(first), "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return sql_fail(s, rc, "checking the store file");
	if (strcmp(first, "ok") != 0)
		return fail(s, STORE_CORRUPT, "the store file is damaged: %s", first);
	return STORE_OK;
}

static int verify_read(struct store *s, uint64_t *counter, bool *fresh)
{
	uint8_t mac[32], want[32];
	size_t mac_len;
	sqlite3_stmt *st;
	int rc, n;

	*fresh = false;
	rc = quick_check(s);
	if (rc == STORE_OK)
		rc = meta_get(s, counter, mac, &mac_len);
	if (rc)
		return rc;
	if (mac_len == 0) {
		st = q(s, Q_CONTENT_COUNT);
		rc = step_row(s, st, "counting the store's rows");
		if (rc < 0)
			return rc;
		n = rc ? sqlite3_column_int(st, 0) : -1;
		sqlite3_reset(st);
		if (n != 0 || *counter != 0)
			return fail(s, STORE_TAMPERED,
				    "the store was modified outside vtpmmgrd (no MAC, but %d rows "
				    "and counter %llu)",
				    n, (unsigned long long)*counter);
		*fresh = true;
		return STORE_OK;
	}
	if (!s->have_key)
		return fail(s, STORE_NO_KEY, "cannot verify the store: the MAC key is not set");
	rc = mac_compute(s, s->disk_version, *counter, want);
	if (rc == STORE_OK && CRYPTO_memcmp(mac, want, sizeof(mac)) != 0)
		rc = fail(s, STORE_TAMPERED,
			  "the store was modified outside vtpmmgrd (MAC mismatch)");
	OPENSSL_cleanse(want, sizeof(want));
	return rc;
}

static int upgrade(struct store *s, uint64_t counter, bool fresh)
{
	uint8_t mac[32];
	char sql[64];
	sqlite3_stmt *st;
	int rc;

	rc = run(s, Q_BEGIN, "upgrading the store schema");
	for (int v = s->disk_version; rc == STORE_OK && v < STORE_SCHEMA_VERSION; v++) {
		rc = upgrades[v] ? upgrades[v](s)
				 : fail(s, STORE_CORRUPT, "no upgrade from schema version %d", v);
		if (rc == STORE_OK) {
			snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
			rc = exec(s, sql, "upgrading the store schema");
		}
	}
	if (rc == STORE_OK && !fresh) {
		rc = mac_compute(s, STORE_SCHEMA_VERSION, counter, mac);
		st = rc == STORE_OK ? q(s, Q_META_SET) : NULL;
		if (st) {
			bind_i64(st, 1, (int64_t)counter);
			bind_blob(st, 2, mac, sizeof(mac));
			rc = run_stmt(s, st, "upgrading the store schema");
		}
	}
	if (rc == STORE_OK)
		rc = run(s, Q_COMMIT, "upgrading the store schema");
	if (rc != STORE_OK && !sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	if (rc == STORE_OK)
		s->disk_version = STORE_SCHEMA_VERSION;
	return rc;
}

int store_verify(struct store *s, uint64_t *counter, char *err, size_t errlen)
{
	uint64_t c = 0;
	bool fresh = false;
	int rc;

	s->verified = false;
	if (s->in_txn) {
		rc = fail(s, STORE_INVALID, "store_verify inside store_begin");
		goto out;
	}
	rc = run(s, Q_BEGIN_READ, "verifying the store");
	if (rc)
		goto out;
	rc = verify_read(s, &c, &fresh);
	if (rc == STORE_OK)
		rc = run(s, Q_COMMIT, "verifying the store");
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	if (rc == STORE_OK && s->disk_version < STORE_SCHEMA_VERSION)
		rc = upgrade(s, c, fresh);
	if (rc == STORE_OK) {
		s->verified = true;
		s->counter = c;
		if (counter)
			*counter = c;
	}
out:
	if (rc != STORE_OK)
		copy_err(err, errlen, s->err);
	return rc;
}

int store_counter(struct store *s, uint64_t *counter)
{
	size_t mac_len;

	return meta_get(s, counter, NULL, &mac_len);
}

/* ---- mutations ------------------------------------------------------------------------- */

struct mut {
	const struct store_actor *who;
	const char *action;
	char subject[STORE_SUBJECT_MAX + 1];
	bool wipe; /* after the commit: checkpoint and truncate the WAL */
};

static int audit_insert(struct store *s, const struct store_actor *who, const char *action,
			const char *subject, const char *result)
{
	char a[STORE_ACTION_MAX + 1], sub[STORE_SUBJECT_MAX + 1], res[STORE_RESULT_MAX + 1];
	sqlite3_stmt *st = q(s, Q_AUDIT_INSERT);

	if (!st)
		return STORE_IO;
	snprintf(a, sizeof(a), "%s", action ? action : "");
	snprintf(sub, sizeof(sub), "%s", subject ? subject : "");
	snprintf(res, sizeof(res), "%s", result ? result : "");
	bind_i64(st, 1, (int64_t)time(NULL));
	bind_i64(st, 2, who->uid);
	bind_i64(st, 3, who->pid);
	bind_text(st, 4, a);
	bind_text(st, 5, sub);
	bind_text(st, 6, res);
	return run_stmt(s, st, "appending to the audit log");
}

static void rollback_all(struct store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	s->in_txn = false;
	s->txn_dirty = false;
	s->txn_failed = false;
	s->txn_wipe = false;
}

/* Bump the counter and rewrite the MAC if anything changed, then COMMIT. */
static int finish(struct store *s)
{
	uint64_t counter = 0;
	uint8_t mac[32];
	size_t mac_len;
	sqlite3_stmt *st;
	bool wipe = s->txn_wipe;
	int rc = STORE_OK;

	if (s->txn_dirty) {
		rc = meta_get(s, &counter, NULL, &mac_len);
		if (rc == STORE_OK && counter >= INT64_MAX)
			rc = fail(s, STORE_INVALID, "the store counter is exhausted");
		if (rc == STORE_OK)
			rc = mac_compute(s, STORE_SCHEMA_VERSION, counter + 1, mac);
		if (rc == STORE_OK) {
			st = q(s, Q_META_SET);
			if (st) {
				bind_i64(st, 1, (int64_t)(counter + 1));
				bind_blob(st, 2, mac, sizeof(mac));
			}
			rc = run_stmt(s, st, "updating the store counter");
		}
	}
	if (rc == STORE_OK)
		rc = run(s, Q_COMMIT, "committing to the store");
	if (rc != STORE_OK) {
		rollback_all(s);
		return rc;
	}
	if (s->txn_dirty)
		s->counter = counter + 1;
	s->in_txn = false;
	s->txn_dirty = false;
	s->txn_wipe = false;
	/* The change is committed: a failed checkpoint only delays the wipe. */
	if (wipe)
		sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	return STORE_OK;
}

static int ready(struct store *s)
{
	if (!s->have_key)
		return fail(s, STORE_NO_KEY, "the store MAC key is not set");
	if (!s->verified)
		return fail(s, STORE_NOT_VERIFIED, "the store has not been verified");
	if (s->in_txn && s->txn_failed)
		return fail(s, STORE_IO, "an earlier error aborted this transaction");
	return STORE_OK;
}

/*
 * Apply one change in one transaction (or in the caller's store_begin transaction):
 * the change inside a savepoint, its audit row, the counter and the MAC, COMMIT. A
 * logical refusal undoes the savepoint and commits only its audit row (if m->who).
 */
static int mutate(struct store *s, const struct mut *m, int (*apply)(struct store *, const void *),
		  const void *arg)
{
	char msg[ERR_MAX], result[STORE_RESULT_MAX + 1];
	bool own = !s->in_txn;
	int rc, rc2;

	rc = ready(s);
	if (rc)
		return rc;
	if (own) {
		rc = run(s, Q_BEGIN, "starting a store transaction");
		if (rc)
			return rc;
		s->in_txn = true;
		s->txn_dirty = false;
		s->txn_failed = false;
		s->txn_wipe = false;
	}
	rc = run(s, Q_SAVEPOINT, "starting a store change");
	if (rc == STORE_OK) {
		rc = apply(s, arg);
		if (rc >= STORE_OK) {
			rc2 = run(s, Q_RELEASE, "applying a store change");
		} else if (is_refusal(rc)) {
			/* undo whatever the change did before it was refused; keep its message */
			snprintf(msg, sizeof(msg), "%s", s->err);
			rc2 = run(s, Q_ROLLBACK_TO, "undoing a refused store change");
			if (rc2 == STORE_OK)
				rc2 = run(s, Q_RELEASE, "undoing a refused store change");
			if (rc2 == STORE_OK)
				snprintf(s->err, sizeof(s->err), "%s", msg);
		} else {
			rc2 = STORE_OK;
		}
		if (rc2 != STORE_OK)
			rc = rc2;
	}
	if (rc == STORE_OK) {
		s->txn_dirty = true;
		s->txn_wipe |= m->wipe;
	}
	if (m->who && (rc == STORE_OK || is_refusal(rc))) {
		snprintf(msg, sizeof(msg), "%s", s->err);
		if (rc == STORE_OK)
			snprintf(result, sizeof(result), "ok");
		else
			snprintf(result, sizeof(result), "refused: %.*s", STORE_RESULT_MAX - 9,
				 msg);
		rc2 = audit_insert(s, m->who, m->action, m->subject, result);
		if (rc2 != STORE_OK)
			rc = rc2;
		else
			snprintf(s->err, sizeof(s->err), "%s", msg);
	}
	if (rc < STORE_OK && !is_refusal(rc)) {
		if (own)
			rollback_all(s);
		else
			s->txn_failed = true;
		return rc;
	}
	if (!own)
		return rc < STORE_OK ? rc : STORE_OK;
	rc2 = finish(s);
	if (rc2 != STORE_OK)
		return rc2;
	return rc < STORE_OK ? rc : STORE_OK;
}

/* A request refused before it reached the database (malformed): audit the refusal (in
 * its own transaction, or the caller's) and return rc, whose message is in s->err. */
static int refused(struct store *s, const struct mut *m, int rc)
{
	char msg[ERR_MAX], result[STORE_RESULT_MAX + 1];
	int rc2;

	if (!m->who)
		return rc;
	snprintf(msg, sizeof(msg), "%s", s->err);
	snprintf(result, sizeof(result), "refused: %.*s", STORE_RESULT_MAX - 9, msg);
	rc2 = store_audit_append(s, m->who, m->action, m->subject, result);
	if (rc2 != STORE_OK)
		return rc2;
	snprintf(s->err, sizeof(s->err), "%s", msg);
	return rc;
}

int store_begin(struct store *s)
{
	int rc;

	if (s->in_txn)
		return fail(s, STORE_INVALID, "store_begin: a transaction is already open");
	rc = ready(s);
	if (rc)
		return rc;
	rc = run(s, Q_BEGIN, "starting a store transaction");
	if (rc)
		return rc;
	s->in_txn = true;
	s->txn_dirty = false;
	s->txn_failed = false;
	s->txn_wipe = false;
	return STORE_OK;
}

int store_commit(struct store *s)
{
	if (!s->in_txn)
		return fail(s, STORE_INVALID, "store_commit: no transaction is open");
	if (s->txn_failed) {
		rollback_all(s);
		return fail(s, STORE_IO, "the transaction was rolled back after an earlier error");
	}
	return finish(s);
}

void store_rollback(struct store *s)
{
	if (s->in_txn)
		rollback_all(s);
}

/* ---- validation ------------------------------------------------------------------------ */

static bool text_ok(const char *t, size_t max)
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

static bool state_ok(const char *t)
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

/* ---- host ------------------------------------------------------------------------------ */

int store_host_get(struct store *s, struct store_host *h)
{
	sqlite3_stmt *st = q(s, Q_HOST_GET);
	int64_t created;
	int rc;

	memset(h, 0, sizeof(*h));
	rc = step_row(s, st, "reading the host record");
	if (rc < 0)
		return rc;
	if (rc == 0)
		return fail(s, STORE_NOT_FOUND, "the host is not provisioned");
	rc = STORE_OK;
	if (col_u32(st, 0, &h->pcr_mask) < 0 ||
	    col_blob(st, 1, h->sealed_root, sizeof(h->sealed_root), &h->sealed_root_len) < 0 ||
	    col_u32(st, 2, &h->nv_index) < 0 ||
	    col_blob(st, 3, h->ak_public, sizeof(h->ak_public), &h->ak_public_len) < 0 ||
	    col_int(st, 4, &created) < 0)
		rc = fail(s, STORE_CORRUPT, "the host record is malformed");
	else
		h->created = created;
	sqlite3_reset(st);
	return rc;
}

static int apply_host_put(struct store *s, const void *arg)
{
	const struct store_host *h = arg;
	sqlite3_stmt *st = q(s, Q_HOST_PUT);

	if (!st)
		return STORE_IO;
	bind_i64(st, 1, h->pcr_mask);
	bind_blob(st, 2, h->sealed_root, h->sealed_root_len);
	bind_i64(st, 3, h->nv_index);
	bind_blob(st, 4, h->ak_public, h->ak_public_len);
	bind_i64(st, 5, h->created ? h->created : (int64_t)time(NULL));
	return run_stmt(s, st, "writing the host record");
}

int store_host_put(struct store *s, const struct store_actor *who, const struct store_host *h)
{
	struct mut m = {.who = who, .action = "host-put", .subject = "host"};

	if (h->sealed_root_len == 0 || h->sealed_root_len > STORE_BLOB_MAX ||
	    h->ak_public_len > STORE_BLOB_MAX)
		return refused(s, &m,
			       fail(s, STORE_INVALID, "host record: a blob is empty or too long"));
	return mutate(s, &m, apply_host_put, h);
}

/* ---- groups ---------------------------------------------------------------------------- */

/* Fill g from a row of GROUP_COLS in st, then its patterns and digests. */
static int group_from_row(struct store *s, sqlite3_stmt *st, struct store_group *g)
{
	sqlite3_stmt *p;
	int64_t any, created;
	char u[37];
	int rc;

	memset(g, 0, sizeof(*g));
	if (col_fixed(st, 0, g->uuid, STORE_UUID_LEN) < 0 ||
	    col_text(st, 1, g->name, sizeof(g->name)) < 0 || col_int(st, 2, &any) < 0 ||
	    (any != 0 && any != 1) ||
	    col_blob(st, 3, g->wrapped_key, sizeof(g->wrapped_key), &g->wrapped_key_len) < 0 ||
	    col_int(st, 4, &created) < 0)
		return fail(s, STORE_CORRUPT, "a group row is malformed");
	g->any_digest = any;
	g->created = created;
	uuid_format(g->uuid, u);

	p = q(s, Q_GROUP_PATTERNS);
	if (!p)
		return STORE_IO;
	bind_blob(p, 1, g->uuid, STORE_UUID_LEN);
	while ((rc = sqlite3_step(p)) == SQLITE_ROW) {
		if (g->npatterns == STORE_MAX_PATTERNS ||
		    col_text(p, 0, g->patterns[g->npatterns], STORE_PATTERN_MAX + 1) < 0) {
			sqlite3_reset(p);
			return fail(s, STORE_CORRUPT, "group %s: a pattern row is malformed", u);
		}
		g->npatterns++;
	}
	sqlite3_reset(p);
	if (rc != SQLITE_DONE)
		return sql_fail(s, rc, "reading a group's patterns");

	p = q(s, Q_GROUP_DIGESTS);
	if (!p)
		return STORE_IO;
	bind_blob(p, 1, g->uuid, STORE_UUID_LEN);
	while ((rc = sqlite3_step(p)) == SQLITE_ROW) {
		if (g->ndigests == STORE_MAX_DIGESTS ||
		    col_fixed(p, 0, g->digests[g->ndigests], STORE_DIGEST_LEN) < 0) {
			sqlite3_reset(p);
			return fail(s, STORE_CORRUPT, "group %s: a digest row is malformed", u);
		}
		g->ndigests++;
	}
	sqlite3_reset(p);
	if (rc != SQLITE_DONE)
		return sql_fail(s, rc, "reading a group's digests");
	return STORE_OK;
}

static int group_lookup(struct store *s, sqlite3_stmt *st, struct store_group *g, const char *what)
{
	int rc = step_row(s, st, "reading a group");

	if (rc < 0)
		return rc;
	if (rc == 0)
		return fail(s, STORE_NOT_FOUND, "no group %s", what);
	rc = group_from_row(s, st, g);
	sqlite3_reset(st);
	return rc;
}

int store_group_get(struct store *s, const uint8_t uuid[STORE_UUID_LEN], struct store_group *g)
{
	sqlite3_stmt *st = q(s, Q_GROUP_BY_UUID);
	char u[37], what[48];

	if (!st)
		return STORE_IO;
	bind_blob(st, 1, uuid, STORE_UUID_LEN);
	uuid_format(uuid, u);
	snprintf(what, sizeof(what), "with UUID %s", u);
	return group_lookup(s, st, g, what);
}

int store_group_get_by_name(struct store *s, const char *name, struct store_group *g)
{
	sqlite3_stmt *st = q(s, Q_GROUP_BY_NAME);
	char what[STORE_NAME_MAX + 16];

	if (!st)
		return STORE_IO;
	if (!text_ok(name, STORE_NAME_MAX))
		return fail(s, STORE_NOT_FOUND, "no group with that name (malformed)");
	bind_text(st, 1, name);
	snprintf(what, sizeof(what), "named '%s'", name);
	return group_lookup(s, st, g, what);
}

/* 1 if a single-row lookup by a blob key finds a row, 0 if not, < 0 on error. */
static int exists(struct store *s, enum qid id, const void *key, size_t n)
{
	sqlite3_stmt *st = q(s, id);
	int rc;

	if (!st)
		return STORE_IO;
	bind_blob(st, 1, key, n);
	rc = step_row(s, st, "looking up a row");
	sqlite3_reset(st);
	return rc;
}

static int apply_group_add(struct store *s, const void *arg)
{
	const struct store_group *g = arg;
	sqlite3_stmt *st;
	char u[37];
	int rc;

	uuid_format(g->uuid, u);
	rc = exists(s, Q_GROUP_BY_UUID, g->uuid, STORE_UUID_LEN);
	if (rc < 0)
		return rc;
	if (rc)
		return fail(s, STORE_EXISTS, "a group with UUID %s exists", u);
	st = q(s, Q_GROUP_BY_NAME);
	if (!st)
		return STORE_IO;
	bind_text(st, 1, g->name);
	rc = step_row(s, st, "looking up a group name");
	sqlite3_reset(st);
	if (rc < 0)
		return rc;
	if (rc)
		return fail(s, STORE_EXISTS, "a group named '%s' exists", g->name);

	st = q(s, Q_GROUP_INSERT);
	if (!st)
		return STORE_IO;
	bind_blob(st, 1, g->uuid, STORE_UUID_LEN);
	bind_text(st, 2, g->name);
	bind_i64(st, 3, g->any_digest ? 1 : 0);
	bind_blob(st, 4, g->wrapped_key, g->wrapped_key_len);
	bind_i64(st, 5, g->created ? g->created : (int64_t)time(NULL));
	rc = run_stmt(s, st, "adding a group");
	for (size_t i = 0; rc == STORE_OK && i < g->npatterns; i++) {
		st = q(s, Q_PATTERN_INSERT);
		if (st) {
			bind_blob(st, 1, g->uuid, STORE_UUID_LEN);
			bind_text(st, 2, g->patterns[i]);
		}
		rc = run_stmt(s, st, "adding a group's pattern");
	}
	for (size_t i = 0; rc == STORE_OK && i < g->ndigests; i++) {
		st = q(s, Q_DIGEST_INSERT);
		if (st) {
			bind_blob(st, 1, g->uuid, STORE_UUID_LEN);
			bind_blob(st, 2, g->digests[i], STORE_DIGEST_LEN);
		}
		rc = run_stmt(s, st, "adding a group's digest");
	}
	return rc;
}

static int group_check(struct store *s, const struct store_group *g)
{
	if (!text_ok(g->name, STORE_NAME_MAX))
		return fail(s, STORE_INVALID, "group name: 1..%d bytes without control characters",
			    STORE_NAME_MAX);
	if (g->npatterns > STORE_MAX_PATTERNS || g->ndigests > STORE_MAX_DIGESTS)
		return fail(s, STORE_INVALID, "group '%s': more than %d patterns or %d digests",
			    g->name, STORE_MAX_PATTERNS, STORE_MAX_DIGESTS);
	if (g->wrapped_key_len == 0 || g->wrapped_key_len > STORE_WRAPPED_MAX)
		return fail(s, STORE_INVALID, "group '%s': wrapped key empty or too long", g->name);
	for (size_t i = 0; i < g->npatterns; i++) {
		if (!text_ok(g->patterns[i], STORE_PATTERN_MAX))
			return fail(s, STORE_INVALID,
				    "group '%s': pattern %zu: 1..%d bytes without control "
				    "characters",
				    g->name, i, STORE_PATTERN_MAX);
		for (size_t j = 0; j < i; j++)
			if (strcmp(g->patterns[i], g->patterns[j]) == 0)
				return fail(s, STORE_INVALID, "group '%s': pattern '%s' twice",
					    g->name, g->patterns[i]);
	}
	for (size_t i = 0; i < g->ndigests; i++)
		for (size_t j = 0; j < i; j++)
			if (memcmp(g->digests[i], g->digests[j], STORE_DIGEST_LEN) == 0)
				return fail(s, STORE_INVALID, "group '%s': digest %zu twice",
					    g->name, i);
	return STORE_OK;
}

int store_group_add(struct store *s, const struct store_actor *who, const struct store_group *g)
{
	struct mut m = {.who = who, .action = "group-add"};
	int rc;

	snprintf(m.subject, sizeof(m.subject), "%.*s", STORE_NAME_MAX, g->name);
	rc = group_check(s, g);
	if (rc)
		return refused(s, &m, rc);
	return mutate(s, &m, apply_group_add, g);
}

static int apply_group_delete(struct store *s, const void *arg)
{
	const char *name = arg;
	uint8_t uuid[STORE_UUID_LEN];
	sqlite3_stmt *st = q(s, Q_GROUP_BY_NAME);
	int rc, n;

	if (!st)
		return STORE_IO;
	bind_text(st, 1, name);
	rc = step_row(s, st, "looking up a group");
	if (rc < 0)
		return rc;
	if (rc == 0)
		return fail(s, STORE_NOT_FOUND, "no group named '%s'", name);
	rc = col_fixed(st, 0, uuid, STORE_UUID_LEN);
	sqlite3_reset(st);
	if (rc < 0)
		return fail(s, STORE_CORRUPT, "a group row is malformed");

	st = q(s, Q_GROUP_VTPMS);
	if (!st)
		return STORE_IO;
	bind_blob(st, 1, uuid, STORE_UUID_LEN);
	rc = step_row(s, st, "counting a group's vTPMs");
	if (rc < 0)
		return rc;
	n = rc ? sqlite3_column_int(st, 0) : 0;
	sqlite3_reset(st);
	if (n > 0)
		return fail(s, STORE_BUSY, "group '%s' still has %d vTPM%s", name, n,
			    n == 1 ? "" : "s");

	st = q(s, Q_GROUP_DELETE);
	if (!st)
		return STORE_IO;
	bind_blob(st, 1, uuid, STORE_UUID_LEN);
	return run_stmt(s, st, "deleting a group");
}

int store_group_delete(struct store *s, const struct store_actor *who, const char *name)
{
	struct mut m = {.who = who, .action = "group-delete", .wipe = true};

	snprintf(m.subject, sizeof(m.subject), "%.*s", STORE_NAME_MAX, name ? name : "");
	if (!text_ok(name, STORE_NAME_MAX))
		return refused(s, &m,
			       fail(s, STORE_NOT_FOUND, "no group with that name (malformed)"));
	return mutate(s, &m, apply_group_delete, name);
}

int store_group_list(struct store *s, int (*cb)(const struct store_group *g, void *arg), void *arg)
{
	sqlite3_stmt *st = NULL;
	struct store_group *g;
	int rc;

	g = malloc(sizeof(*g));
	if (!g)
		return fail(s, STORE_IO, "out of memory");
	rc = sqlite3_prepare_v2(s->db, "SELECT " GROUP_COLS " FROM vtpm_groups ORDER BY uuid", -1,
				&st, NULL);
	if (rc != SQLITE_OK) {
		rc = sql_fail(s, rc, "listing groups");
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		rc = group_from_row(s, st, g);
		if (rc == STORE_OK)
			rc = cb(g, arg);
		if (rc != STORE_OK)
			goto out;
	}
	rc = rc == SQLITE_DONE ? STORE_OK : sql_fail(s, rc, "listing groups");
out:
	sqlite3_finalize(st);
	free(g);
	return rc;
}

/* ---- vTPMs ----------------------------------------------------------------------------- */

static int vtpm_from_row(struct store *s, sqlite3_stmt *st, struct store_vtpm *v)
{
	int64_t version, created;

	memset(v, 0, sizeof(*v));
	if (col_fixed(st, 0, v->uuid, STORE_UUID_LEN) < 0 ||
	    col_fixed(st, 1, v->group_uuid, STORE_UUID_LEN) < 0 ||
	    col_blob(st, 2, v->wrapped_key, sizeof(v->wrapped_key), &v->wrapped_key_len) < 0 ||
	    col_int(st, 3, &version) < 0 || col_fixed(st, 4, v->digest, STORE_DIGEST_LEN) < 0 ||
	    col_text(st, 5, v->state, sizeof(v->state)) < 0 || col_int(st, 6, &created) < 0)
		return fail(s, STORE_CORRUPT, "a vTPM row is malformed");
	v->version = (uint64_t)version;
	v->created = created;
	return STORE_OK;
}

int store_vtpm_get(struct store *s, const uint8_t uuid[STORE_UUID_LEN], struct store_vtpm *v)
{
	sqlite3_stmt *st = q(s, Q_VTPM_GET);
	char u[37];
	int rc;

	if (!st)
		return STORE_IO;
	bind_blob(st, 1, uuid, STORE_UUID_LEN);
	rc = step_row(s, st, "reading a vTPM");
	if (rc < 0)
		return rc;
	if (rc == 0) {
		uuid_format(uuid, u);
		return fail(s, STORE_NOT_FOUND, "no vTPM %s", u);
	}
	rc = vtpm_from_row(s, st, v);
	sqlite3_reset(st);
	return rc;
}

int store_vtpm_list(struct store *s, const uint8_t *group_uuid,
		    int (*cb)(const struct store_vtpm *v, void *arg), void *arg)
{
	sqlite3_stmt *st = NULL;
	struct store_vtpm v;
	int rc;

	rc = sqlite3_prepare_v2(s->db,
				group_uuid ? "SELECT " VTPM_COLS
					     " FROM vtpms WHERE group_uuid = ?1 ORDER BY uuid"
					   : "SELECT " VTPM_COLS " FROM vtpms ORDER BY uuid",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_fail(s, rc, "listing vTPMs");
	if (group_uuid)
		bind_blob(st, 1, group_uuid, STORE_UUID_LEN);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		rc = vtpm_from_row(s, st, &v);
		if (rc == STORE_OK)
			rc = cb(&v, arg);
		if (rc != STORE_OK)
			goto out;
	}
	rc = rc == SQLITE_DONE ? STORE_OK : sql_fail(s, rc, "listing vTPMs");
out:
	sqlite3_finalize(st);
	return rc;
}

static int apply_vtpm_add(struct store *s, const void *arg)
{
	const struct store_vtpm *v = arg;
	sqlite3_stmt *st;
	char u[37];
	int rc;

	rc = exists(s, Q_VTPM_GET, v->uuid, STORE_UUID_LEN);
	if (rc < 0)
		return rc;
	if (rc) {
		uuid_format(v->uuid, u);
		return fail(s, STORE_EXISTS, "a vTPM with UUID %s exists", u);
	}
	rc = exists(s, Q_GROUP_BY_UUID, v->group_uuid, STORE_UUID_LEN);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		uuid_format(v->group_uuid, u);
		return fail(s, STORE_NOT_FOUND, "no group with UUID %s", u);
	}
	st = q(s, Q_VTPM_INSERT);
	if (!st)
		return STORE_IO;
	bind_blob(st, 1, v->uuid, STORE_UUID_LEN);
	bind_blob(st, 2, v->group_uuid, STORE_UUID_LEN);
	bind_blob(st, 3, v->wrapped_key, v->wrapped_key_len);
	bind_i64(st, 4, (int64_t)v->version);
	bind_blob(st, 5, v->digest, STORE_DIGEST_LEN);
	bind_text(st, 6, v->state);
	bind_i64(st, 7, v->created ? v->created : (int64_t)time(NULL));
	return run_stmt(s, st, "adding a vTPM");
}

int store_vtpm_add(struct store *s, const struct store_actor *who, const struct store_vtpm *v)
{
	struct mut m = {.who = who, .action = "vtpm-add"};
	int rc = STORE_OK;

	uuid_format(v->uuid, m.subject);
	if (v->wrapped_key_len == 0 || v->wrapped_key_len > STORE_WRAPPED_MAX)
		rc = fail(s, STORE_INVALID, "vTPM %s: wrapped key empty or too long", m.subject);
	else if (!state_ok(v->state))
		rc = fail(s, STORE_INVALID, "vTPM %s: state name: 1..%d of [a-z-]", m.subject,
			  STORE_STATE_MAX);
	if (rc)
		return refused(s, &m, rc);
	return mutate(s, &m, apply_vtpm_add, v);
}

static int apply_vtpm_delete(struct store *s, const void *arg)
{
	const uint8_t *uuid = arg;
	sqlite3_stmt *st = q(s, Q_VTPM_DELETE);
	char u[37];
	int rc;

	if (!st)
		return STORE_IO;
	bind_blob(st, 1, uuid, STORE_UUID_LEN);
	rc = run_stmt(s, st, "deleting a vTPM");
	if (rc == STORE_OK && sqlite3_changes(s->db) == 0) {
		uuid_format(uuid, u);
		rc = fail(s, STORE_NOT_FOUND, "no vTPM %s", u);
	}
	return rc;
}

int store_vtpm_delete(struct store *s, const struct store_actor *who,
		      const uint8_t uuid[STORE_UUID_LEN])
{
	struct mut m = {.who = who, .action = "vtpm-delete", .wipe = true};

	uuid_format(uuid, m.subject);
	return mutate(s, &m, apply_vtpm_delete, uuid);
}

struct set_state_arg {
	const uint8_t *uuid;
	const char *state;
};

static int apply_vtpm_set_state(struct store *s, const void *arg)
{
	const struct set_state_arg *a = arg;
	sqlite3_stmt *st = q(s, Q_VTPM_SET_STATE);
	char u[37];
	int rc;

	if (!st)
		return STORE_IO;
	bind_blob(st, 1, a->uuid, STORE_UUID_LEN);
	bind_text(st, 2, a->state);
	rc = run_stmt(s, st, "setting a vTPM's state");
	if (rc == STORE_OK && sqlite3_changes(s->db) == 0) {
		uuid_format(a->uuid, u);
		rc = fail(s, STORE_NOT_FOUND, "no vTPM %s", u);
	}
	return rc;
}

int store_vtpm_set_state(struct store *s, const struct store_actor *who,
			 const uint8_t uuid[STORE_UUID_LEN], const char *state)
{
	struct mut m = {.who = who, .action = "vtpm-set-state"};
	struct set_state_arg a = {uuid, state};

	uuid_format(uuid, m.subject);
	if (!state_ok(state))
		return refused(s, &m,
			       fail(s, STORE_INVALID, "vTPM %s: state name: 1..%d of [a-z-]",
				    m.subject, STORE_STATE_MAX));
	return mutate(s, &m, apply_vtpm_set_state, &a);
}

struct set_version_arg {
	const uint8_t *uuid;
	uint64_t version;
	const uint8_t *digest;
};

static int apply_vtpm_set_version(struct store *s, const void *arg)
{
	const struct set_version_arg *a = arg;
	uint8_t digest[STORE_DIGEST_LEN];
	sqlite3_stmt *st = q(s, Q_VTPM_GET_VERSION);
	int64_t cur;
	char u[37];
	int rc;

	if (!st)
		return STORE_IO;
	uuid_format(a->uuid, u);
	bind_blob(st, 1, a->uuid, STORE_UUID_LEN);
	rc = step_row(s, st, "reading a vTPM's version");
	if (rc < 0)
		return rc;
	if (rc == 0)
		return fail(s, STORE_NOT_FOUND, "no vTPM %s", u);
	rc = col_int(st, 0, &cur) < 0 || col_fixed(st, 1, digest, sizeof(digest)) < 0;
	sqlite3_reset(st);
	if (rc)
		return fail(s, STORE_CORRUPT, "vTPM %s: the version record is malformed", u);
	if (a->version == (uint64_t)cur && memcmp(digest, a->digest, STORE_DIGEST_LEN) == 0)
		return NOCHANGE;
	if (a->version <= (uint64_t)cur)
		return fail(s, STORE_ROLLBACK,
			    "vTPM %s: state version %llu is not newer than the recorded %llu", u,
			    (unsigned long long)a->version, (unsigned long long)(uint64_t)cur);
	st = q(s, Q_VTPM_SET_VERSION);
	if (!st)
		return STORE_IO;
	bind_blob(st, 1, a->uuid, STORE_UUID_LEN);
	bind_i64(st, 2, (int64_t)a->version);
	bind_blob(st, 3, a->digest, STORE_DIGEST_LEN);
	return run_stmt(s, st, "recording a vTPM's version");
}

int store_vtpm_set_version(struct store *s, const uint8_t uuid[STORE_UUID_LEN], uint64_t version,
			   const uint8_t digest[STORE_DIGEST_LEN])
{
	struct mut m = {.who = NULL, .action = "vtpm-set-version"};
	struct set_version_arg a = {uuid, version, digest};

	if (version > INT64_MAX)
		return fail(s, STORE_INVALID, "state version out of range");
	return mutate(s, &m, apply_vtpm_set_version, &a);
}

/* ---- audit ----------------------------------------------------------------------------- */

int store_audit_append(struct store *s, const struct store_actor *who, const char *action,
		       const char *subject, const char *result)
{
	int rc;

	if (s->in_txn) {
		rc = audit_insert(s, who, action, subject, result);
		if (rc)
			s->txn_failed = true;
		return rc;
	}
	rc = run(s, Q_BEGIN, "appending to the audit log");
	if (rc)
		return rc;
	rc = audit_insert(s, who, action, subject, result);
	if (rc == STORE_OK)
		rc = run(s, Q_COMMIT, "appending to the audit log");
	if (rc != STORE_OK && !sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int store_audit_list(struct store *s, unsigned n, int (*cb)(const struct store_audit *a, void *arg),
		     void *arg)
{
	sqlite3_stmt *st = NULL;
	struct store_audit a;
	int rc;

	rc = sqlite3_prepare_v2(s->db, "SELECT " AUDIT_COLS " FROM audit ORDER BY id DESC LIMIT ?1",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_fail(s, rc, "listing the audit log");
	bind_i64(st, 1, n);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&a, 0, sizeof(a));
		if (col_int(st, 0, &a.id) < 0 || col_int(st, 1, &a.time) < 0 ||
		    col_u32(st, 2, &a.uid) < 0 || col_u32(st, 3, &a.pid) < 0 ||
		    col_text(st, 4, a.action, sizeof(a.action)) < 0 ||
		    col_text(st, 5, a.subject, sizeof(a.subject)) < 0 ||
		    col_text(st, 6, a.result, sizeof(a.result)) < 0) {
			rc = fail(s, STORE_CORRUPT, "an audit row is malformed");
			goto out;
		}
		rc = cb(&a, arg);
		if (rc != STORE_OK)
			goto out;
	}
	rc = rc == SQLITE_DONE ? STORE_OK : sql_fail(s, rc, "listing the audit log");
out:
	sqlite3_finalize(st);
	return rc;
}
