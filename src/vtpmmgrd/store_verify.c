/*
 * store_verify.c — the full check at start: PRAGMA quick_check, then every covered row
 * through the PRF into a fresh aggregate, compared with the stored one and the top MAC
 * (constant-time). The only place that reads the whole store; mutations never do.
 */
#include "vtpmmgrd/store_internal.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

static int quick_check(struct store *s)
{
	sqlite3_stmt *st;
	char first[256] = "";
	int rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &st, NULL);

	if (rc != SQLITE_OK)
		return st_sql_fail(s, rc, "checking the store file");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(first, sizeof(first), "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return st_sql_fail(s, rc, "checking the store file");
	if (strcmp(first, "ok") != 0)
		return st_fail(s, STORE_CORRUPT, "the store file is damaged: %s", first);
	return STORE_OK;
}

/*
 * A store without a MAC is valid only as it was created: counter 0, no host, group or
 * vTPM row, no guard. Its audit rows (appended before provisioning, without a key) are
 * not covered until the first keyed change folds them in.
 */
static int verify_unsealed(struct store *s, const struct meta *m)
{
	const struct store_guard *g = &m->guard;
	int n = -1, na = -1, rc;

	rc = st_query_int(s,
			  "SELECT (SELECT count(*) FROM host) + (SELECT count(*) FROM vtpm_groups)"
			  " + (SELECT count(*) FROM group_patterns)"
			  " + (SELECT count(*) FROM group_digests) + (SELECT count(*) FROM vtpms)",
			  "counting the store's rows", &n);
	if (rc == STORE_OK)
		rc = st_query_int(s, "SELECT count(*) FROM audit", "counting the audit rows", &na);
	if (rc)
		return rc;
	if (n != 0 || m->counter != 0)
		return st_fail(s, STORE_TAMPERED,
			       "the store was modified outside vtpmmgrd (no MAC, but %d rows and "
			       "counter %llu)",
			       n, (unsigned long long)m->counter);
	if (m->has_agg || g->epoch || g->state || g->tpm_reset_count || g->time)
		return st_fail(s, STORE_TAMPERED,
			       "the store was modified outside vtpmmgrd (no MAC, but an aggregate "
			       "or a rollback guard)");
	if ((uint64_t)na != m->audit_rows)
		return st_fail(s, STORE_TAMPERED,
			       "the store was modified outside vtpmmgrd (no MAC, and %d audit "
			       "rows where the count says %llu)",
			       na, (unsigned long long)m->audit_rows);
	return STORE_OK;
}

static int verify_v2(struct store *s, uint64_t *counter, bool *fresh)
{
	uint8_t agg[MAC_LEN], mac[MAC_LEN];
	struct meta m;
	uint64_t rows = 0;
	int rc, bad;

	rc = st_meta_get(s, &m);
	if (rc)
		return rc;
	*counter = m.counter;
	rc = st_schema_digest(s, s->schema_digest);
	if (rc)
		return rc;
	s->schema_known = true;
	*fresh = !m.sealed;
	if (!m.sealed)
		return verify_unsealed(s, &m);
	if (!s->have_key)
		return st_fail(s, STORE_NO_KEY, "cannot verify the store: the MAC key is not set");
	if (s->key_failed)
		return st_fail(s, STORE_IO, "the store MAC subkeys could not be derived (OpenSSL)");
	if (!m.has_agg)
		return st_fail(s, STORE_TAMPERED,
			       "the store was modified outside vtpmmgrd (a MAC but no aggregate)");
	rc = st_agg_full(s, agg, &rows);
	if (rc == STORE_OK)
		rc = st_top_mac(s, &m, agg, mac);
	if (rc == STORE_OK) {
		/* both compared whole, in constant time, before deciding */
		bad = CRYPTO_memcmp(agg, m.agg, MAC_LEN) | CRYPTO_memcmp(mac, m.mac, MAC_LEN);
		if (bad || rows != m.audit_rows)
			rc = st_fail(s, STORE_TAMPERED,
				     "the store was modified outside vtpmmgrd (MAC mismatch)");
	}
	OPENSSL_cleanse(agg, sizeof(agg));
	OPENSSL_cleanse(mac, sizeof(mac));
	return rc;
}

int store_verify(struct store *s, uint64_t *counter, char *err, size_t errlen)
{
	uint64_t c = 0;
	bool fresh = false;
	int rc;

	s->verified = false;
	if (s->in_txn) {
		rc = st_fail(s, STORE_INVALID, "store_verify inside store_begin");
		goto out;
	}
	rc = st_run(s, Q_BEGIN_READ, "verifying the store");
	if (rc)
		goto out;
	rc = quick_check(s);
	if (rc == STORE_OK)
		rc = s->disk_version == 1 ? st_verify_v1(s, &c, &fresh) : verify_v2(s, &c, &fresh);
	if (rc == STORE_OK)
		rc = st_run(s, Q_COMMIT, "verifying the store");
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	if (rc == STORE_OK && s->disk_version < STORE_SCHEMA_VERSION)
		rc = st_upgrade(s, c, fresh);
	if (rc == STORE_OK) {
		s->verified = true;
		s->counter = c;
		if (counter)
			*counter = c;
	}
out:
	if (rc != STORE_OK)
		st_copy_err(err, errlen, s->err);
	return rc;
}
