/*
 * store_audit.c — the audit log: covered by the aggregate (a row deleted, edited or forged
 * is a MAC mismatch at store_verify) and bounded (an append beyond audit_keep rows
 * deletes the oldest in the same transaction, XORing them out).
 *
 * An audit-only transaction rewrites the aggregate and the top MAC but does not bump the
 * counter: the counter counts changes of what the manager decides by (store.h).
 */
#include "vtpmmgrd/store_internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* Delete the oldest rows while there are more than audit_keep, XORing them out. */
static int audit_trim(struct store *s)
{
	struct meta m;
	sqlite3_stmt *st;
	int64_t last = -1, id;
	uint64_t extra;
	int rc, n;

	rc = st_meta_get(s, &m);
	if (rc)
		return rc;
	if (m.audit_rows <= s->audit_keep)
		return STORE_OK;
	extra = m.audit_rows - s->audit_keep;
	st = st_q(s, Q_AUDIT_OLDEST);
	if (!st)
		return STORE_IO;
	st_bind_i64(st, 1, extra > INT64_MAX ? INT64_MAX : (int64_t)extra);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (st_col_int(st, 0, &id) < 0 || id <= last) {
			sqlite3_reset(st);
			return st_fail(s, STORE_CORRUPT, "an audit row is malformed");
		}
		last = id;
		rc = st_row_xor(s, st, T_AUDIT);
		if (rc) {
			sqlite3_reset(st);
			return rc;
		}
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return st_sql_fail(s, rc, "reading the oldest audit rows");
	if (last < 0)
		return STORE_OK;
	st = st_q(s, Q_AUDIT_DELETE_TO);
	if (!st)
		return STORE_IO;
	st_bind_i64(st, 1, last);
	rc = st_run_stmt(s, st, "deleting the oldest audit rows");
	n = rc == STORE_OK ? sqlite3_changes(s->db) : 0;
	st = rc == STORE_OK ? st_q(s, Q_AUDIT_ROWS_ADD) : NULL;
	if (st) {
		st_bind_i64(st, 1, -(int64_t)n);
		rc = st_run_stmt(s, st, "counting the audit rows");
	}
	return rc;
}

/* One audit row inside the open transaction, and the trim it may need. */
int st_audit_insert(struct store *s, const struct store_actor *who, const char *action,
		    const char *subject, const char *result)
{
	char a[STORE_ACTION_MAX + 1], sub[STORE_SUBJECT_MAX + 1], res[STORE_RESULT_MAX + 1];
	sqlite3_stmt *st;
	int rc;

	/* a store with a MAC is covered whole: no row goes in that the MAC cannot follow */
	if (s->txn_sealed && (!s->have_key || s->key_failed))
		return st_fail(s, STORE_NO_KEY, "the store MAC key is not set");
	if (s->txn_sealed && !s->verified)
		return st_fail(s, STORE_NOT_VERIFIED, "the store has not been verified");
	st = st_q(s, Q_AUDIT_INSERT);
	if (!st)
		return STORE_IO;
	snprintf(a, sizeof(a), "%s", action ? action : "");
	snprintf(sub, sizeof(sub), "%s", subject ? subject : "");
	snprintf(res, sizeof(res), "%s", result ? result : "");
	st_bind_i64(st, 1, (int64_t)time(NULL));
	st_bind_i64(st, 2, who->uid);
	st_bind_i64(st, 3, who->pid);
	st_bind_text(st, 4, a);
	st_bind_text(st, 5, sub);
	st_bind_text(st, 6, res);
	rc = st_run_stmt(s, st, "appending to the audit log");
	if (rc)
		return rc;
	st = st_q(s, Q_AUDIT_ROW);
	if (st)
		st_bind_i64(st, 1, sqlite3_last_insert_rowid(s->db));
	rc = st_rows_xor(s, st, T_AUDIT, "reading an audit row");
	st = rc == STORE_OK ? st_q(s, Q_AUDIT_ROWS_ADD) : NULL;
	if (st) {
		st_bind_i64(st, 1, 1);
		rc = st_run_stmt(s, st, "counting the audit rows");
	} else if (rc == STORE_OK) {
		rc = STORE_IO;
	}
	if (rc == STORE_OK)
		rc = audit_trim(s);
	if (rc == STORE_OK)
		s->txn_mac = true;
	return rc;
}

int store_audit_append(struct store *s, const struct store_actor *who, const char *action,
		       const char *subject, const char *result)
{
	int rc;

	if (s->in_txn) {
		rc = st_audit_insert(s, who, action, subject, result);
		if (rc)
			s->txn_failed = true;
		return rc;
	}
	rc = st_txn_open(s);
	if (rc)
		return rc;
	rc = st_audit_insert(s, who, action, subject, result);
	if (rc) {
		st_rollback_all(s);
		return rc;
	}
	return st_finish(s);
}

int store_audit_count(struct store *s, uint64_t *n)
{
	struct meta m;
	int v = 0, rc;

	*n = 0;
	if (s->disk_version < STORE_SCHEMA_VERSION) {
		rc = st_query_int(s, "SELECT count(*) FROM audit", "counting the audit rows", &v);
		*n = rc == STORE_OK ? (uint64_t)v : 0;
		return rc;
	}
	rc = st_meta_get(s, &m);
	if (rc == STORE_OK)
		*n = m.audit_rows;
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
		return st_sql_fail(s, rc, "listing the audit log");
	st_bind_i64(st, 1, n);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&a, 0, sizeof(a));
		if (st_col_int(st, 0, &a.id) < 0 || st_col_int(st, 1, &a.time) < 0 ||
		    st_col_u32(st, 2, &a.uid) < 0 || st_col_u32(st, 3, &a.pid) < 0 ||
		    st_col_text(st, 4, a.action, sizeof(a.action)) < 0 ||
		    st_col_text(st, 5, a.subject, sizeof(a.subject)) < 0 ||
		    st_col_text(st, 6, a.result, sizeof(a.result)) < 0) {
			rc = st_fail(s, STORE_CORRUPT, "an audit row is malformed");
			goto out;
		}
		rc = cb(&a, arg);
		if (rc != STORE_OK)
			goto out;
	}
	rc = rc == SQLITE_DONE ? STORE_OK : st_sql_fail(s, rc, "listing the audit log");
out:
	sqlite3_finalize(st);
	return rc;
}

int store_audit_last_id(struct store *s, int64_t *id)
{
	sqlite3_stmt *st = st_q(s, Q_AUDIT_LAST);
	int rc;

	*id = 0;
	rc = st_step_row(s, st, "reading the newest audit row");
	if (rc < 0)
		return rc;
	if (rc == 1 && st_col_int(st, 0, id) < 0)
		*id = 0;
	sqlite3_reset(st);
	return STORE_OK;
}
