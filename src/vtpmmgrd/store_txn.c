/*
 * store_txn.c — the commit path: one transaction per mutating call (or per store_begin ...
 * store_commit), a savepoint per change so that a refused change leaves only its audit
 * row, and at COMMIT one counter bump and one rewrite of the aggregate and the top MAC.
 *
 * The aggregate is maintained, not recomputed: each change XORs the PRF values of the rows
 * it removes and adds into txn_delta (store_mac.c), and the commit XORs txn_delta into the
 * aggregate it reads from the meta row inside the same transaction. So a commit costs a
 * few indexed reads and three HMACs whatever the size of the store, and an in-memory copy
 * of the aggregate can never go stale after a commit whose outcome was unknown.
 *
 * Two commits scan every row instead, both rare: the first keyed change of a store that
 * has no MAC yet (it folds in the audit rows written before provisioning) and a commit
 * after store_set_mac_key inside the transaction (host-init FORCE: every row value
 * changes with the key).
 */
#include "vtpmmgrd/store_internal.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

int st_ready(struct store *s)
{
	if (!s->have_key)
		return st_fail(s, STORE_NO_KEY, "the store MAC key is not set");
	if (s->key_failed)
		return st_fail(s, STORE_IO, "the store MAC subkeys could not be derived (OpenSSL)");
	if (!s->verified)
		return st_fail(s, STORE_NOT_VERIFIED, "the store has not been verified");
	if (s->in_txn && s->txn_failed)
		return st_fail(s, STORE_IO, "an earlier error aborted this transaction");
	return STORE_OK;
}

/* BEGIN IMMEDIATE and note whether the store is sealed (has a MAC) as of now. */
int st_txn_open(struct store *s)
{
	sqlite3_stmt *st;
	int rc;

	if (s->disk_version < STORE_SCHEMA_VERSION)
		return st_fail(s, STORE_NOT_VERIFIED,
			       "the store has schema version %d: store_verify upgrades it before "
			       "any write",
			       s->disk_version);
	rc = st_run(s, Q_BEGIN, "starting a store transaction");
	if (rc)
		return rc;
	st = st_q(s, Q_META_SEALED);
	rc = st_step_row(s, st, "reading the store's meta row");
	if (rc == 0)
		rc = st_fail(s, STORE_CORRUPT, "the store has no counter row (meta)");
	if (rc < 0) {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	s->txn_sealed = sqlite3_column_int(st, 0) != 0;
	sqlite3_reset(st);
	s->in_txn = true;
	s->txn_dirty = false;
	s->txn_mac = false;
	s->txn_failed = false;
	s->txn_wipe = false;
	s->txn_rekey = false;
	memset(s->txn_delta, 0, sizeof(s->txn_delta));
	return STORE_OK;
}

void st_rollback_all(struct store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	s->in_txn = false;
	s->txn_dirty = false;
	s->txn_mac = false;
	s->txn_failed = false;
	s->txn_wipe = false;
	s->txn_rekey = false;
	OPENSSL_cleanse(s->txn_delta, sizeof(s->txn_delta));
}

/* The new aggregate and top MAC into the meta row (with the counter, bumped if dirty). */
static int write_mac(struct store *s, struct meta *m)
{
	uint8_t agg[MAC_LEN], mac[MAC_LEN];
	uint64_t rows;
	sqlite3_stmt *st;
	int rc;

	if (s->txn_dirty) {
		if (m->counter >= INT64_MAX)
			return st_fail(s, STORE_INVALID, "the store counter is exhausted");
		m->counter++;
	}
	if (m->sealed && !m->has_agg)
		return st_fail(s, STORE_CORRUPT, "the store has a MAC but no aggregate");
	if (!m->sealed || s->txn_rekey) {
		rc = st_agg_full(s, agg, &rows);
		if (rc == STORE_OK && rows != m->audit_rows)
			rc = st_fail(s, STORE_CORRUPT,
				     "the store's audit row count (%llu) is not its rows (%llu)",
				     (unsigned long long)m->audit_rows, (unsigned long long)rows);
		if (rc)
			return rc;
	} else {
		for (size_t i = 0; i < MAC_LEN; i++)
			agg[i] = m->agg[i] ^ s->txn_delta[i];
	}
	if (!s->schema_known) {
		rc = st_schema_digest(s, s->schema_digest);
		if (rc)
			return rc;
		s->schema_known = true;
	}
	rc = st_top_mac(s, m, agg, mac);
	st = rc == STORE_OK ? st_q(s, Q_META_SET_MAC) : NULL;
	if (st) {
		st_bind_i64(st, 1, (int64_t)m->counter);
		st_bind_blob(st, 2, mac, sizeof(mac));
		st_bind_blob(st, 3, agg, sizeof(agg));
		rc = st_run_stmt(s, st, "updating the store counter and MAC");
	} else if (rc == STORE_OK) {
		rc = STORE_IO;
	}
	OPENSSL_cleanse(agg, sizeof(agg));
	return rc;
}

/*
 * Bump the counter and rewrite the MAC if anything covered changed, then COMMIT. A store
 * without a MAC stays without one until its first change that bumps the counter: audit
 * rows appended before provisioning (no key yet) are not covered, as before version 2.
 */
int st_finish(struct store *s)
{
	struct meta m = {0};
	bool wipe = s->txn_wipe;
	int rc = STORE_OK;

	if (s->txn_dirty || (s->txn_mac && s->txn_sealed)) {
		if (!s->have_key || s->key_failed)
			rc = st_fail(s, STORE_NO_KEY, "the store MAC key is not set");
		if (rc == STORE_OK)
			rc = st_meta_get(s, &m);
		if (rc == STORE_OK)
			rc = write_mac(s, &m);
	}
	if (rc == STORE_OK)
		rc = st_run(s, Q_COMMIT, "committing to the store");
	if (rc != STORE_OK) {
		st_rollback_all(s);
		return rc;
	}
	if (s->txn_dirty)
		s->counter = m.counter;
	s->in_txn = false;
	s->txn_dirty = false;
	s->txn_mac = false;
	s->txn_wipe = false;
	s->txn_rekey = false;
	/* The change is committed: a failed checkpoint only delays the wipe. */
	if (wipe)
		sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	return STORE_OK;
}

/* Undo the current savepoint's change (a refusal), keeping the refusal's message. */
static int undo_change(struct store *s)
{
	char msg[ERR_MAX];
	int rc;

	snprintf(msg, sizeof(msg), "%s", s->err);
	rc = st_run(s, Q_ROLLBACK_TO, "undoing a refused store change");
	if (rc == STORE_OK)
		rc = st_run(s, Q_RELEASE, "undoing a refused store change");
	if (rc == STORE_OK)
		snprintf(s->err, sizeof(s->err), "%s", msg);
	memcpy(s->txn_delta, s->sp_delta, MAC_LEN);
	return rc;
}

/*
 * Apply one change in one transaction (or in the caller's store_begin transaction):
 * the change inside a savepoint, its audit row, the counter and the MAC, COMMIT. A
 * logical refusal undoes the savepoint and commits only its audit row (if m->who).
 */
int st_mutate(struct store *s, const struct mut *m, int (*apply)(struct store *, const void *),
	      const void *arg)
{
	char msg[ERR_MAX], result[STORE_RESULT_MAX + 1];
	bool own = !s->in_txn;
	int rc, rc2;

	rc = st_ready(s);
	if (rc)
		return rc;
	if (own) {
		rc = st_txn_open(s);
		if (rc)
			return rc;
	}
	rc = st_run(s, Q_SAVEPOINT, "starting a store change");
	if (rc == STORE_OK) {
		memcpy(s->sp_delta, s->txn_delta, MAC_LEN);
		rc = apply(s, arg);
		if (rc == STORE_OK) {
			rc2 = st_run(s, Q_RELEASE, "applying a store change");
		} else if (rc > STORE_OK || st_is_refusal(rc)) {
			rc2 = undo_change(s);
		} else {
			rc2 = STORE_OK;
		}
		if (rc2 != STORE_OK)
			rc = rc2;
	}
	if (rc == STORE_OK) {
		s->txn_dirty = true;
		s->txn_mac = true;
		s->txn_wipe |= m->wipe;
	}
	if (m->who && (rc == STORE_OK || st_is_refusal(rc))) {
		snprintf(msg, sizeof(msg), "%s", s->err);
		if (rc == STORE_OK)
			snprintf(result, sizeof(result), "%s", m->note ? m->note : "ok");
		else
			snprintf(result, sizeof(result), "refused: %.*s", STORE_RESULT_MAX - 9,
				 msg);
		rc2 = st_audit_insert(s, m->who, m->action, m->subject, result);
		if (rc2 != STORE_OK)
			rc = rc2;
		else
			snprintf(s->err, sizeof(s->err), "%s", msg);
	}
	if (rc < STORE_OK && !st_is_refusal(rc)) {
		if (own)
			st_rollback_all(s);
		else
			s->txn_failed = true;
		return rc;
	}
	if (!own)
		return rc < STORE_OK ? rc : STORE_OK;
	rc2 = st_finish(s);
	if (rc2 != STORE_OK)
		return rc2;
	return rc < STORE_OK ? rc : STORE_OK;
}

/* A request refused before it reached the database (malformed): audit the refusal (in
 * its own transaction, or the caller's) and return rc, whose message is in s->err. */
int st_refused(struct store *s, const struct mut *m, int rc)
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
		return st_fail(s, STORE_INVALID, "store_begin: a transaction is already open");
	rc = st_ready(s);
	if (rc)
		return rc;
	return st_txn_open(s);
}

int store_commit(struct store *s)
{
	if (!s->in_txn)
		return st_fail(s, STORE_INVALID, "store_commit: no transaction is open");
	if (s->txn_failed) {
		st_rollback_all(s);
		return st_fail(s, STORE_IO,
			       "the transaction was rolled back after an earlier error");
	}
	return st_finish(s);
}

void store_rollback(struct store *s)
{
	if (s->in_txn)
		st_rollback_all(s);
}
