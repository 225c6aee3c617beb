/*
 * store_group.c — groups, with their label patterns and binary digests (stored as sets).
 */
#include "vtpmmgrd/store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/mgr_proto.h"

/* Fill g from a row of GROUP_COLS in st, then its patterns and digests. */
static int group_from_row(struct store *s, sqlite3_stmt *st, struct store_group *g)
{
	sqlite3_stmt *p;
	int64_t any, created;
	char u[37];
	int rc;

	memset(g, 0, sizeof(*g));
	if (st_col_fixed(st, 0, g->uuid, STORE_UUID_LEN) < 0 ||
	    st_col_text(st, 1, g->name, sizeof(g->name)) < 0 || st_col_int(st, 2, &any) < 0 ||
	    (any != 0 && any != 1) ||
	    st_col_blob(st, 3, g->wrapped_key, sizeof(g->wrapped_key), &g->wrapped_key_len) < 0 ||
	    st_col_int(st, 4, &created) < 0)
		return st_fail(s, STORE_CORRUPT, "a group row is malformed");
	g->any_digest = any;
	g->created = created;
	uuid_format(g->uuid, u);

	p = st_q(s, Q_GROUP_PATTERNS);
	if (!p)
		return STORE_IO;
	st_bind_blob(p, 1, g->uuid, STORE_UUID_LEN);
	while ((rc = sqlite3_step(p)) == SQLITE_ROW) {
		if (g->npatterns == STORE_MAX_PATTERNS ||
		    st_col_text(p, 0, g->patterns[g->npatterns], STORE_PATTERN_MAX + 1) < 0) {
			sqlite3_reset(p);
			return st_fail(s, STORE_CORRUPT, "group %s: a pattern row is malformed", u);
		}
		g->npatterns++;
	}
	sqlite3_reset(p);
	if (rc != SQLITE_DONE)
		return st_sql_fail(s, rc, "reading a group's patterns");

	p = st_q(s, Q_GROUP_DIGESTS);
	if (!p)
		return STORE_IO;
	st_bind_blob(p, 1, g->uuid, STORE_UUID_LEN);
	while ((rc = sqlite3_step(p)) == SQLITE_ROW) {
		if (g->ndigests == STORE_MAX_DIGESTS ||
		    st_col_fixed(p, 0, g->digests[g->ndigests], STORE_DIGEST_LEN) < 0) {
			sqlite3_reset(p);
			return st_fail(s, STORE_CORRUPT, "group %s: a digest row is malformed", u);
		}
		g->ndigests++;
	}
	sqlite3_reset(p);
	if (rc != SQLITE_DONE)
		return st_sql_fail(s, rc, "reading a group's digests");
	return STORE_OK;
}

static int group_lookup(struct store *s, sqlite3_stmt *st, struct store_group *g, const char *what)
{
	int rc = st_step_row(s, st, "reading a group");

	if (rc < 0)
		return rc;
	if (rc == 0)
		return st_fail(s, STORE_NOT_FOUND, "no group %s", what);
	rc = group_from_row(s, st, g);
	sqlite3_reset(st);
	return rc;
}

int store_group_get(struct store *s, const uint8_t uuid[STORE_UUID_LEN], struct store_group *g)
{
	sqlite3_stmt *st = st_q(s, Q_GROUP_BY_UUID);
	char u[37], what[48];

	if (!st)
		return STORE_IO;
	st_bind_blob(st, 1, uuid, STORE_UUID_LEN);
	uuid_format(uuid, u);
	snprintf(what, sizeof(what), "with UUID %s", u);
	return group_lookup(s, st, g, what);
}

int store_group_get_by_name(struct store *s, const char *name, struct store_group *g)
{
	sqlite3_stmt *st = st_q(s, Q_GROUP_BY_NAME);
	char what[STORE_NAME_MAX + 16];

	if (!st)
		return STORE_IO;
	if (!st_text_ok(name, STORE_NAME_MAX))
		return st_fail(s, STORE_NOT_FOUND, "no group with that name (malformed)");
	st_bind_text(st, 1, name);
	snprintf(what, sizeof(what), "named '%s'", name);
	return group_lookup(s, st, g, what);
}

/* 1 if a single-row lookup by a blob key finds a row, 0 if not, < 0 on error. */
static int exists(struct store *s, enum qid id, const void *key, size_t n)
{
	sqlite3_stmt *st = st_q(s, id);
	int rc;

	if (!st)
		return STORE_IO;
	st_bind_blob(st, 1, key, n);
	rc = st_step_row(s, st, "looking up a row");
	sqlite3_reset(st);
	return rc;
}

/* The group's row, patterns and digests, XORed into the aggregate (added or removed). */
static int group_xor(struct store *s, const uint8_t uuid[STORE_UUID_LEN])
{
	static const struct {
		enum qid q;
		enum mac_table t;
	} parts[] = {
	    {Q_GROUP_BY_UUID, T_GROUPS}, {Q_PATTERN_ROWS, T_PATTERNS}, {Q_DIGEST_ROWS, T_DIGESTS}};
	sqlite3_stmt *st;
	int rc = STORE_OK;

	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]) && rc == STORE_OK; i++) {
		st = st_q(s, parts[i].q);
		if (st)
			st_bind_blob(st, 1, uuid, STORE_UUID_LEN);
		rc = st_rows_xor(s, st, parts[i].t, "reading a group");
	}
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
		return st_fail(s, STORE_EXISTS, "a group with UUID %s exists", u);
	st = st_q(s, Q_GROUP_BY_NAME);
	if (!st)
		return STORE_IO;
	st_bind_text(st, 1, g->name);
	rc = st_step_row(s, st, "looking up a group name");
	sqlite3_reset(st);
	if (rc < 0)
		return rc;
	if (rc)
		return st_fail(s, STORE_EXISTS, "a group named '%s' exists", g->name);

	st = st_q(s, Q_GROUP_INSERT);
	if (!st)
		return STORE_IO;
	st_bind_blob(st, 1, g->uuid, STORE_UUID_LEN);
	st_bind_text(st, 2, g->name);
	st_bind_i64(st, 3, g->any_digest ? 1 : 0);
	st_bind_blob(st, 4, g->wrapped_key, g->wrapped_key_len);
	st_bind_i64(st, 5, g->created ? g->created : (int64_t)time(NULL));
	rc = st_run_stmt(s, st, "adding a group");
	for (size_t i = 0; rc == STORE_OK && i < g->npatterns; i++) {
		st = st_q(s, Q_PATTERN_INSERT);
		if (st) {
			st_bind_blob(st, 1, g->uuid, STORE_UUID_LEN);
			st_bind_text(st, 2, g->patterns[i]);
		}
		rc = st_run_stmt(s, st, "adding a group's pattern");
	}
	for (size_t i = 0; rc == STORE_OK && i < g->ndigests; i++) {
		st = st_q(s, Q_DIGEST_INSERT);
		if (st) {
			st_bind_blob(st, 1, g->uuid, STORE_UUID_LEN);
			st_bind_blob(st, 2, g->digests[i], STORE_DIGEST_LEN);
		}
		rc = st_run_stmt(s, st, "adding a group's digest");
	}
	/* read back what SQLite stored: the PRF is of the stored values */
	if (rc == STORE_OK)
		rc = group_xor(s, g->uuid);
	return rc;
}

static int group_check(struct store *s, const struct store_group *g)
{
	if (!st_text_ok(g->name, STORE_NAME_MAX))
		return st_fail(s, STORE_INVALID,
			       "group name: 1..%d bytes without control characters",
			       STORE_NAME_MAX);
	if (g->npatterns > STORE_MAX_PATTERNS || g->ndigests > STORE_MAX_DIGESTS)
		return st_fail(s, STORE_INVALID, "group '%s': more than %d patterns or %d digests",
			       g->name, STORE_MAX_PATTERNS, STORE_MAX_DIGESTS);
	if (g->wrapped_key_len == 0 || g->wrapped_key_len > STORE_WRAPPED_MAX)
		return st_fail(s, STORE_INVALID, "group '%s': wrapped key empty or too long",
			       g->name);
	for (size_t i = 0; i < g->npatterns; i++) {
		if (!st_text_ok(g->patterns[i], STORE_PATTERN_MAX))
			return st_fail(s, STORE_INVALID,
				       "group '%s': pattern %zu: 1..%d bytes without control "
				       "characters",
				       g->name, i, STORE_PATTERN_MAX);
		for (size_t j = 0; j < i; j++)
			if (strcmp(g->patterns[i], g->patterns[j]) == 0)
				return st_fail(s, STORE_INVALID, "group '%s': pattern '%s' twice",
					       g->name, g->patterns[i]);
	}
	for (size_t i = 0; i < g->ndigests; i++)
		for (size_t j = 0; j < i; j++)
			if (memcmp(g->digests[i], g->digests[j], STORE_DIGEST_LEN) == 0)
				return st_fail(s, STORE_INVALID, "group '%s': digest %zu twice",
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
		return st_refused(s, &m, rc);
	return st_mutate(s, &m, apply_group_add, g);
}

static int apply_group_delete(struct store *s, const void *arg)
{
	const char *name = arg;
	uint8_t uuid[STORE_UUID_LEN];
	sqlite3_stmt *st = st_q(s, Q_GROUP_BY_NAME);
	int rc, n;

	if (!st)
		return STORE_IO;
	st_bind_text(st, 1, name);
	rc = st_step_row(s, st, "looking up a group");
	if (rc < 0)
		return rc;
	if (rc == 0)
		return st_fail(s, STORE_NOT_FOUND, "no group named '%s'", name);
	rc = st_col_fixed(st, 0, uuid, STORE_UUID_LEN);
	sqlite3_reset(st);
	if (rc < 0)
		return st_fail(s, STORE_CORRUPT, "a group row is malformed");

	/* indexed: a range of the group's vTPMs, nothing when the delete can go ahead */
	st = st_q(s, Q_GROUP_VTPMS);
	if (!st)
		return STORE_IO;
	st_bind_blob(st, 1, uuid, STORE_UUID_LEN);
	rc = st_step_row(s, st, "counting a group's vTPMs");
	if (rc < 0)
		return rc;
	n = rc ? sqlite3_column_int(st, 0) : 0;
	sqlite3_reset(st);
	if (n > 0)
		return st_fail(s, STORE_BUSY, "group '%s' still has %d vTPM%s", name, n,
			       n == 1 ? "" : "s");

	/* ON DELETE CASCADE removes the patterns and digests: out of the aggregate first */
	rc = group_xor(s, uuid);
	if (rc)
		return rc;
	st = st_q(s, Q_GROUP_DELETE);
	if (!st)
		return STORE_IO;
	st_bind_blob(st, 1, uuid, STORE_UUID_LEN);
	return st_run_stmt(s, st, "deleting a group");
}

int store_group_delete(struct store *s, const struct store_actor *who, const char *name)
{
	struct mut m = {.who = who, .action = "group-delete", .wipe = true};

	snprintf(m.subject, sizeof(m.subject), "%.*s", STORE_NAME_MAX, name ? name : "");
	if (!st_text_ok(name, STORE_NAME_MAX))
		return st_refused(
		    s, &m, st_fail(s, STORE_NOT_FOUND, "no group with that name (malformed)"));
	return st_mutate(s, &m, apply_group_delete, name);
}

int store_group_list(struct store *s, int (*cb)(const struct store_group *g, void *arg), void *arg)
{
	sqlite3_stmt *st = NULL;
	struct store_group *g;
	int rc;

	g = malloc(sizeof(*g));
	if (!g)
		return st_fail(s, STORE_IO, "out of memory");
	rc = sqlite3_prepare_v2(s->db, "SELECT " GROUP_COLS " FROM vtpm_groups ORDER BY uuid", -1,
				&st, NULL);
	if (rc != SQLITE_OK) {
		rc = st_sql_fail(s, rc, "listing groups");
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		rc = group_from_row(s, st, g);
		if (rc == STORE_OK)
			rc = cb(g, arg);
		if (rc != STORE_OK)
			goto out;
	}
	rc = rc == SQLITE_DONE ? STORE_OK : st_sql_fail(s, rc, "listing groups");
out:
	sqlite3_finalize(st);
	free(g);
	return rc;
}
