/*
 * store_upgrade.c — stores written by older vtpmmgrd: the version-1 MAC, checked once,
 * and the upgrade to version 2 that store_verify runs right after it.
 *
 * Version-1 MAC. mac = HMAC-SHA256(mac key, S) where S is, in order:
 *   text   "vtpm-store-mac-v1"
 *   u32    schema version (1)
 *   u64    counter
 *   u32    number of tables that follow
 *   then, for each query of mac_queries_v1[] in order: u32 its index, then for every row
 *   it returns: u8 1, then the row's columns as in version 2 (store_mac.c), and u8 0
 *   after the last row.
 * It covered no audit row and was recomputed whole on every commit; version 2 replaced
 * it for that reason. It is kept only to decide whether a version-1 store is authentic
 * before upgrading it: an upgrade never blesses a store it could not verify.
 */
#include "vtpmmgrd/store_internal.h"

#include <stdio.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>

static const char *const mac_queries_v1[] = {
    "SELECT type, name, tbl_name, sql FROM sqlite_schema"
    " WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name",
    "SELECT id, pcr_mask, sealed_root, nv_index, ak_public, created FROM host ORDER BY id",
    "SELECT " GROUP_COLS " FROM vtpm_groups ORDER BY uuid",
    "SELECT group_uuid, pattern FROM group_patterns ORDER BY group_uuid, pattern",
    "SELECT group_uuid, digest FROM group_digests ORDER BY group_uuid, digest",
    "SELECT " VTPM_COLS_V1 " FROM vtpms ORDER BY uuid",
};

static int mac_table_v1(struct store *s, struct macbuf *m, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return st_sql_fail(s, rc, "computing the store MAC");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		mb_u8(m, 1);
		mb_columns(m, st);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return st_sql_fail(s, rc, "computing the store MAC");
	mb_u8(m, 0);
	return STORE_OK;
}

static int mac_compute_v1(struct store *s, uint64_t counter, uint8_t out[MAC_LEN])
{
	static const char tag[] = "vtpm-store-mac-v1";
	const size_t nq = sizeof(mac_queries_v1) / sizeof(mac_queries_v1[0]);
	struct macbuf *m = NULL;
	EVP_MAC_CTX *ctx;
	OSSL_PARAM params[2];
	int rc = STORE_OK;

	ctx = EVP_MAC_CTX_new(s->hmac);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!ctx || EVP_MAC_init(ctx, s->mac_key, sizeof(s->mac_key), params) != 1) {
		rc = st_fail(s, STORE_IO, "HMAC-SHA256 is not available (OpenSSL)");
		goto out;
	}
	m = mb_new(s, ctx, NULL);
	if (!m) {
		rc = STORE_IO;
		goto out;
	}
	mb_bytes(m, tag, sizeof(tag) - 1);
	mb_u32(m, 1);
	mb_u64(m, counter);
	mb_u32(m, (uint32_t)nq);
	for (size_t i = 0; i < nq && rc == STORE_OK; i++) {
		mb_u32(m, (uint32_t)i);
		rc = mac_table_v1(s, m, mac_queries_v1[i]);
	}
	if (rc == STORE_OK)
		rc = mb_final(s, m, out);
out:
	mb_free(m);
	EVP_MAC_CTX_free(ctx);
	return rc;
}

/* Check a version-1 store as version 1 did (inside store_verify's read transaction). */
int st_verify_v1(struct store *s, uint64_t *counter, bool *fresh)
{
	uint8_t mac[MAC_LEN], want[MAC_LEN];
	size_t mac_len = 0;
	sqlite3_stmt *st;
	int64_t c = 0;
	int rc, n = -1;

	*fresh = false;
	rc = sqlite3_prepare_v2(s->db, "SELECT counter, mac FROM meta WHERE id = 1", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return st_sql_fail(s, rc, "reading the store counter");
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return rc == SQLITE_DONE
			   ? st_fail(s, STORE_CORRUPT, "the store has no counter row (meta)")
			   : st_sql_fail(s, rc, "reading the store counter");
	}
	rc = STORE_OK;
	if (st_col_int(st, 0, &c) < 0 || c < 0)
		rc = st_fail(s, STORE_CORRUPT, "the store counter is not a non-negative integer");
	else if (sqlite3_column_type(st, 1) != SQLITE_NULL &&
		 (st_col_blob(st, 1, mac, sizeof(mac), &mac_len) < 0 || mac_len != MAC_LEN))
		rc = st_fail(s, STORE_TAMPERED,
			     "the store was modified outside vtpmmgrd (malformed MAC)");
	sqlite3_finalize(st);
	if (rc)
		return rc;
	*counter = (uint64_t)c;
	if (mac_len == 0) {
		rc = st_query_int(
		    s,
		    "SELECT (SELECT count(*) FROM host) + (SELECT count(*) FROM vtpm_groups)"
		    " + (SELECT count(*) FROM group_patterns)"
		    " + (SELECT count(*) FROM group_digests) + (SELECT count(*) FROM vtpms)",
		    "counting the store's rows", &n);
		if (rc)
			return rc;
		if (n != 0 || c != 0)
			return st_fail(s, STORE_TAMPERED,
				       "the store was modified outside vtpmmgrd (no MAC, but %d "
				       "rows and counter %llu)",
				       n, (unsigned long long)c);
		*fresh = true;
		return STORE_OK;
	}
	if (!s->have_key)
		return st_fail(s, STORE_NO_KEY, "cannot verify the store: the MAC key is not set");
	rc = mac_compute_v1(s, (uint64_t)c, want);
	if (rc == STORE_OK && CRYPTO_memcmp(mac, want, sizeof(mac)) != 0)
		rc = st_fail(s, STORE_TAMPERED,
			     "the store was modified outside vtpmmgrd (MAC mismatch)");
	OPENSSL_cleanse(want, sizeof(want));
	return rc;
}

/*
 * Version 1 (or 2) → 3 in one transaction, after st_verify_v1 (or the version-2 check of
 * store_verify) accepted the store: from version 1 the version-2 statements; then the
 * version-3 host columns (signed policies); the new meta
 * columns, the audit row count, and (unless the store had no MAC) the aggregate over every
 * row, audit rows included, and the top MAC. Same counter: an upgrade changes the layout,
 * not the content. A crash leaves version 1 (verified again next time) or version 2.
 */
int st_upgrade(struct store *s, uint64_t counter, bool fresh)
{
	uint8_t agg[MAC_LEN], mac[MAC_LEN];
	struct meta m;
	uint64_t rows = 0;
	char sql[64];
	sqlite3_stmt *st;
	int rc;

	int from = s->disk_version;

	if (from != 1 && from != 2)
		return st_fail(s, STORE_CORRUPT, "no upgrade from schema version %d", from);
	rc = st_run(s, Q_BEGIN, "upgrading the store schema");
	if (rc == STORE_OK && from == 1)
		rc = st_exec(s, st_schema_1_to_2, "upgrading the store schema");
	if (rc == STORE_OK)
		rc = st_exec(s, st_schema_2_to_3, "upgrading the store schema");
	/* the aggregate and the MAC below are of the new layout */
	s->disk_version = STORE_SCHEMA_VERSION;
	if (rc == STORE_OK) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", STORE_SCHEMA_VERSION);
		rc = st_exec(s, sql, "upgrading the store schema");
	}
	if (rc == STORE_OK) {
		rc = st_schema_digest(s, s->schema_digest);
		s->schema_known = rc == STORE_OK;
	}
	if (rc == STORE_OK && !fresh) {
		rc = st_meta_get(s, &m);
		if (rc == STORE_OK)
			rc = st_agg_full(s, agg, &rows);
		if (rc == STORE_OK && (m.counter != counter || rows != m.audit_rows))
			rc = st_fail(s, STORE_CORRUPT, "the store changed while it was upgraded");
		if (rc == STORE_OK)
			rc = st_top_mac(s, &m, agg, mac);
		st = rc == STORE_OK ? st_q(s, Q_META_SET_MAC) : NULL;
		if (st) {
			st_bind_i64(st, 1, (int64_t)counter);
			st_bind_blob(st, 2, mac, sizeof(mac));
			st_bind_blob(st, 3, agg, sizeof(agg));
			rc = st_run_stmt(s, st, "upgrading the store schema");
		} else if (rc == STORE_OK) {
			rc = STORE_IO;
		}
		OPENSSL_cleanse(agg, sizeof(agg));
	}
	if (rc == STORE_OK)
		rc = st_run(s, Q_COMMIT, "upgrading the store schema");
	if (rc != STORE_OK && !sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	if (rc != STORE_OK) {
		s->disk_version = from;
		s->schema_known = false;
	}
	return rc;
}
