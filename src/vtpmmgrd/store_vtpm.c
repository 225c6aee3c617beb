/*
 * store_vtpm.c — vTPMs: wrapped state keys, states, newest state versions.
 *
 * store_vtpm_set_version is the hot path (every committed TPM state write of every
 * managed vTPM): one indexed read of the row, which also gives its old PRF value, one
 * UPDATE, one indexed read of the new row, and the commit (store_txn.c).
 */
#include "vtpmmgrd/store_internal.h"

#include <string.h>
#include <time.h>

#include "common/mgr_proto.h"

static int vtpm_from_row(struct store *s, sqlite3_stmt *st, struct store_vtpm *v)
{
	int64_t version, created;

	memset(v, 0, sizeof(*v));
	if (st_col_fixed(st, 0, v->uuid, STORE_UUID_LEN) < 0 ||
	    st_col_fixed(st, 1, v->group_uuid, STORE_UUID_LEN) < 0 ||
	    st_col_blob(st, 2, v->wrapped_key, sizeof(v->wrapped_key), &v->wrapped_key_len) < 0 ||
	    st_col_int(st, 3, &version) < 0 ||
	    st_col_fixed(st, 4, v->digest, STORE_DIGEST_LEN) < 0 ||
	    st_col_text(st, 5, v->state, sizeof(v->state)) < 0 || st_col_int(st, 6, &created) < 0 ||
	    st_col_text(st, 7, v->bound_label, sizeof(v->bound_label)) < 0)
		return st_fail(s, STORE_CORRUPT, "a vTPM row is malformed");
	v->version = (uint64_t)version;
	v->created = created;
	return STORE_OK;
}

int store_vtpm_get(struct store *s, const uint8_t uuid[STORE_UUID_LEN], struct store_vtpm *v)
{
	sqlite3_stmt *st = st_q(s, Q_VTPM_GET);
	char u[37];
	int rc;

	if (!st)
		return STORE_IO;
	st_bind_blob(st, 1, uuid, STORE_UUID_LEN);
	rc = st_step_row(s, st, "reading a vTPM");
	if (rc < 0)
		return rc;
	if (rc == 0) {
		uuid_format(uuid, u);
		return st_fail(s, STORE_NOT_FOUND, "no vTPM %s", u);
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
		return st_sql_fail(s, rc, "listing vTPMs");
	if (group_uuid)
		st_bind_blob(st, 1, group_uuid, STORE_UUID_LEN);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		rc = vtpm_from_row(s, st, &v);
		if (rc == STORE_OK)
			rc = cb(&v, arg);
		if (rc != STORE_OK)
			goto out;
	}
	rc = rc == SQLITE_DONE ? STORE_OK : st_sql_fail(s, rc, "listing vTPMs");
out:
	sqlite3_finalize(st);
	return rc;
}

/* The vTPM's row (none if absent) XORed into the aggregate: before a change, after it. */
static int vtpm_xor(struct store *s, const uint8_t uuid[STORE_UUID_LEN])
{
	sqlite3_stmt *st = st_q(s, Q_VTPM_GET);

	if (st)
		st_bind_blob(st, 1, uuid, STORE_UUID_LEN);
	return st_rows_xor(s, st, T_VTPMS, "reading a vTPM");
}

static int apply_vtpm_add(struct store *s, const void *arg)
{
	const struct store_vtpm *v = arg;
	sqlite3_stmt *st;
	char u[37];
	int rc;

	st = st_q(s, Q_VTPM_GET);
	if (!st)
		return STORE_IO;
	st_bind_blob(st, 1, v->uuid, STORE_UUID_LEN);
	rc = st_step_row(s, st, "looking up a vTPM");
	sqlite3_reset(st);
	if (rc < 0)
		return rc;
	if (rc) {
		uuid_format(v->uuid, u);
		return st_fail(s, STORE_EXISTS, "a vTPM with UUID %s exists", u);
	}
	st = st_q(s, Q_GROUP_BY_UUID);
	if (!st)
		return STORE_IO;
	st_bind_blob(st, 1, v->group_uuid, STORE_UUID_LEN);
	rc = st_step_row(s, st, "looking up a group");
	sqlite3_reset(st);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		uuid_format(v->group_uuid, u);
		return st_fail(s, STORE_NOT_FOUND, "no group with UUID %s", u);
	}
	st = st_q(s, Q_VTPM_INSERT);
	if (!st)
		return STORE_IO;
	st_bind_blob(st, 1, v->uuid, STORE_UUID_LEN);
	st_bind_blob(st, 2, v->group_uuid, STORE_UUID_LEN);
	st_bind_blob(st, 3, v->wrapped_key, v->wrapped_key_len);
	st_bind_i64(st, 4, (int64_t)v->version);
	st_bind_blob(st, 5, v->digest, STORE_DIGEST_LEN);
	st_bind_text(st, 6, v->state);
	st_bind_i64(st, 7, v->created ? v->created : (int64_t)time(NULL));
	st_bind_text(st, 8, v->bound_label);
	rc = st_run_stmt(s, st, "adding a vTPM");
	if (rc == STORE_OK)
		rc = vtpm_xor(s, v->uuid);
	return rc;
}

int store_vtpm_add(struct store *s, const struct store_actor *who, const struct store_vtpm *v)
{
	struct mut m = {.who = who, .action = "vtpm-add"};
	int rc = STORE_OK;

	uuid_format(v->uuid, m.subject);
	if (v->wrapped_key_len == 0 || v->wrapped_key_len > STORE_WRAPPED_MAX)
		rc = st_fail(s, STORE_INVALID, "vTPM %s: wrapped key empty or too long", m.subject);
	else if (v->version > INT64_MAX)
		rc = st_fail(s, STORE_INVALID, "vTPM %s: state version out of range", m.subject);
	else if (!st_state_ok(v->state))
		rc = st_fail(s, STORE_INVALID, "vTPM %s: state name: 1..%d of [a-z-]", m.subject,
			     STORE_STATE_MAX);
	if (rc)
		return st_refused(s, &m, rc);
	return st_mutate(s, &m, apply_vtpm_add, v);
}

static int apply_vtpm_delete(struct store *s, const void *arg)
{
	const uint8_t *uuid = arg;
	sqlite3_stmt *st;
	char u[37];
	int rc;

	rc = vtpm_xor(s, uuid);
	if (rc)
		return rc;
	st = st_q(s, Q_VTPM_DELETE);
	if (!st)
		return STORE_IO;
	st_bind_blob(st, 1, uuid, STORE_UUID_LEN);
	rc = st_run_stmt(s, st, "deleting a vTPM");
	if (rc == STORE_OK && sqlite3_changes(s->db) == 0) {
		uuid_format(uuid, u);
		rc = st_fail(s, STORE_NOT_FOUND, "no vTPM %s", u);
	}
	return rc;
}

int store_vtpm_delete(struct store *s, const struct store_actor *who,
		      const uint8_t uuid[STORE_UUID_LEN])
{
	struct mut m = {.who = who, .action = "vtpm-delete", .wipe = true};

	uuid_format(uuid, m.subject);
	return st_mutate(s, &m, apply_vtpm_delete, uuid);
}

/* One text column of a vTPM row (its state, its bound label), changed in place. */
struct set_text_arg {
	enum qid q; /* UPDATE ... SET column = ?2 WHERE uuid = ?1 */
	const uint8_t *uuid;
	const char *text;
	const char *what;
};

static int apply_vtpm_set_text(struct store *s, const void *arg)
{
	const struct set_text_arg *a = arg;
	sqlite3_stmt *st;
	char u[37];
	int rc;

	rc = vtpm_xor(s, a->uuid);
	if (rc)
		return rc;
	st = st_q(s, a->q);
	if (!st)
		return STORE_IO;
	st_bind_blob(st, 1, a->uuid, STORE_UUID_LEN);
	st_bind_text(st, 2, a->text);
	rc = st_run_stmt(s, st, a->what);
	if (rc == STORE_OK && sqlite3_changes(s->db) == 0) {
		uuid_format(a->uuid, u);
		rc = st_fail(s, STORE_NOT_FOUND, "no vTPM %s", u);
	}
	if (rc == STORE_OK)
		rc = vtpm_xor(s, a->uuid);
	return rc;
}

int store_vtpm_set_state(struct store *s, const struct store_actor *who,
			 const uint8_t uuid[STORE_UUID_LEN], const char *state)
{
	struct mut m = {.who = who, .action = "vtpm-set-state"};
	struct set_text_arg a = {Q_VTPM_SET_STATE, uuid, state, "setting a vTPM's state"};

	uuid_format(uuid, m.subject);
	if (!st_state_ok(state))
		return st_refused(s, &m,
				  st_fail(s, STORE_INVALID, "vTPM %s: state name: 1..%d of [a-z-]",
					  m.subject, STORE_STATE_MAX));
	return st_mutate(s, &m, apply_vtpm_set_text, &a);
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
	sqlite3_stmt *st = st_q(s, Q_VTPM_GET);
	int64_t cur;
	char u[37];
	int rc;

	if (!st)
		return STORE_IO;
	uuid_format(a->uuid, u);
	st_bind_blob(st, 1, a->uuid, STORE_UUID_LEN);
	rc = st_step_row(s, st, "reading a vTPM's version");
	if (rc < 0)
		return rc;
	if (rc == 0)
		return st_fail(s, STORE_NOT_FOUND, "no vTPM %s", u);
	if (st_col_int(st, 3, &cur) < 0 || st_col_fixed(st, 4, digest, sizeof(digest)) < 0) {
		sqlite3_reset(st);
		return st_fail(s, STORE_CORRUPT, "vTPM %s: the version record is malformed", u);
	}
	if (a->version == (uint64_t)cur && memcmp(digest, a->digest, STORE_DIGEST_LEN) == 0) {
		sqlite3_reset(st);
		return NOCHANGE;
	}
	if (a->version <= (uint64_t)cur) {
		sqlite3_reset(st);
		return st_fail(s, STORE_ROLLBACK,
			       "vTPM %s: state version %llu is not newer than the recorded %llu", u,
			       (unsigned long long)a->version, (unsigned long long)(uint64_t)cur);
	}
	/* the row just read is the old value: out of the aggregate */
	rc = st_row_xor(s, st, T_VTPMS);
	sqlite3_reset(st);
	if (rc)
		return rc;
	st = st_q(s, Q_VTPM_SET_VERSION);
	if (!st)
		return STORE_IO;
	st_bind_blob(st, 1, a->uuid, STORE_UUID_LEN);
	st_bind_i64(st, 2, (int64_t)a->version);
	st_bind_blob(st, 3, a->digest, STORE_DIGEST_LEN);
	rc = st_run_stmt(s, st, "recording a vTPM's version");
	if (rc == STORE_OK)
		rc = vtpm_xor(s, a->uuid);
	return rc;
}

int store_vtpm_set_version(struct store *s, const uint8_t uuid[STORE_UUID_LEN], uint64_t version,
			   const uint8_t digest[STORE_DIGEST_LEN])
{
	struct mut m = {.who = NULL, .action = "vtpm-set-version"};
	struct set_version_arg a = {uuid, version, digest};

	if (version > INT64_MAX)
		return st_fail(s, STORE_INVALID, "state version out of range");
	return st_mutate(s, &m, apply_vtpm_set_version, &a);
}

int store_vtpm_bind(struct store *s, const struct store_actor *who,
		    const uint8_t uuid[STORE_UUID_LEN], const char *label)
{
	struct mut m = {.who = who, .action = "vtpm-bind"};
	struct set_text_arg a = {Q_VTPM_SET_BOUND, uuid, label, "binding a vTPM"};

	uuid_format(uuid, m.subject);
	if (!st_text_ok(label, STORE_LABEL_MAX))
		return st_refused(s, &m,
				  st_fail(s, STORE_INVALID, "vTPM %s: a label of 1..%d bytes",
					  m.subject, STORE_LABEL_MAX));
	return st_mutate(s, &m, apply_vtpm_set_text, &a);
}
