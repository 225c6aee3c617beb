/*
 * store_guard.c — the rollback guard's record (epoch, running/stopping/clean state, TPM reset
 * count, time) in the meta row. rollback.c decides what the values mean; the store keeps them under
 * the top MAC, so a store copied from another moment carries its own, authentic, older guard and
 * cannot borrow the current one.
 */
#include "vtpmmgrd/store_internal.h"

#include <string.h>

int store_guard_get(struct store *s, struct store_guard *g)
{
	struct meta m;
	int rc;

	memset(g, 0, sizeof(*g));
	/* a version-1 store has no guard yet: store_verify adds it, zero */
	if (s->disk_version < STORE_SCHEMA_VERSION)
		return STORE_OK;
	rc = st_meta_get(s, &m);
	if (rc)
		return rc;
	*g = m.guard;
	return STORE_OK;
}

static int apply_guard_put(struct store *s, const void *arg)
{
	const struct store_guard *g = arg;
	sqlite3_stmt *st = st_q(s, Q_GUARD_SET);

	if (!st)
		return STORE_IO;
	st_bind_i64(st, 1, (int64_t)g->epoch);
	st_bind_i64(st, 2, g->state);
	st_bind_i64(st, 3, g->tpm_reset_count);
	st_bind_i64(st, 4, g->time);
	return st_run_stmt(s, st, "writing the rollback guard");
}

int store_guard_put(struct store *s, const struct store_guard *g)
{
	struct mut m = {.who = NULL, .action = "guard-put"};

	if (g->state > STORE_GUARD_ADVANCING)
		return st_fail(s, STORE_INVALID, "rollback guard: no state %u", g->state);
	return st_mutate(s, &m, apply_guard_put, g);
}
