/*
 * store_mac.c — the MAC of a version-2 store.
 *
 *   row_key = HKDF-SHA256(mac key, info "vtpm-store-mac-v2 row")
 *   top_key = HKDF-SHA256(mac key, info "vtpm-store-mac-v2 top")
 *   prf(row) = HMAC-SHA256(row_key, u32 table number || u32 column count || columns)
 *   agg      = XOR of prf(row) over every row of host, vtpm_groups, group_patterns,
 *              group_digests, vtpms and audit
 *   mac      = HMAC-SHA256(top_key, text "vtpm-store-mac-v2" || u32 schema version ||
 *              u64 counter || u64 epoch || u8 guard state || u32 tpm_reset_count || u64 time ||
 *              u64 audit rows || agg || schema digest)
 *   schema digest = SHA-256 of the rows of sqlite_schema (type, name, tbl_name, sql) in
 *              (type, name) order: no table, index or trigger can be added unnoticed.
 * Each column is u8 SQLite type (1 integer, 2 float, 3 text, 4 blob, 5 null) followed by:
 * integer → u64 (two's complement), float → u64 of its IEEE bits, text and blob → u32
 * length + bytes, null → nothing. "text" is u32 length + bytes; integers are big-endian.
 * A row's columns include its primary key, so a value moved to another row is another
 * PRF input.
 *
 * Why the aggregate is unforgeable: the PRF values are never stored anywhere (not in the
 * database, not in a log); the file holds only their XOR. Without row_key, the value of a
 * row one adds, edits or removes is unknown, so the XOR that would make agg match is
 * unknown too; and agg itself is under the top MAC with the counter. (Storing per-row
 * MACs instead would let anyone XOR a row out, or swap in an old row with its old MAC.)
 * XOR cancels equal values, so two identical rows would count as none: primary keys
 * forbid them, and store_verify refuses a table that returns one row twice.
 */
#include "vtpmmgrd/store_internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>

#include "common/aead.h"

struct macbuf {
	EVP_MAC_CTX *mac; /* one of mac and md */
	EVP_MD_CTX *md;
	uint8_t buf[4096];
	size_t n;
	bool failed;
};

/* What a version-2 store covers, each table in primary-key order. */
static const struct {
	enum mac_table table;
	const char *sql;
} agg_queries[] = {
    {T_HOST, "SELECT " HOST_COLS " FROM host ORDER BY id"},
    {T_GROUPS, "SELECT " GROUP_COLS " FROM vtpm_groups ORDER BY uuid"},
    {T_PATTERNS, "SELECT " PATTERN_COLS " FROM group_patterns ORDER BY group_uuid, pattern"},
    {T_DIGESTS, "SELECT " DIGEST_COLS " FROM group_digests ORDER BY group_uuid, digest"},
    {T_VTPMS, "SELECT " VTPM_COLS " FROM vtpms ORDER BY uuid"},
    {T_AUDIT, "SELECT " AUDIT_COLS " FROM audit ORDER BY id"},
};

/* ---- the serializer ------------------------------------------------------------------ */

/* A serializer into an HMAC (mac) or a digest (md); it owns neither. NULL: out of memory. */
struct macbuf *mb_new(struct store *s, EVP_MAC_CTX *mac, const EVP_MD *md)
{
	struct macbuf *m = calloc(1, sizeof(*m));

	if (!m) {
		st_fail(s, STORE_IO, "out of memory computing the store MAC");
		return NULL;
	}
	m->mac = mac;
	if (md) {
		m->md = EVP_MD_CTX_new();
		if (!m->md || EVP_DigestInit_ex(m->md, md, NULL) != 1)
			m->failed = true;
	}
	return m;
}

void mb_free(struct macbuf *m)
{
	if (!m)
		return;
	EVP_MD_CTX_free(m->md);
	OPENSSL_cleanse(m, sizeof(*m));
	free(m);
}

static void mb_update(struct macbuf *m, const void *p, size_t n)
{
	if (m->failed || !n)
		return;
	if (m->mac ? EVP_MAC_update(m->mac, p, n) != 1 : EVP_DigestUpdate(m->md, p, n) != 1)
		m->failed = true;
}

static void mb_flush(struct macbuf *m)
{
	mb_update(m, m->buf, m->n);
	m->n = 0;
}

void mb_raw(struct macbuf *m, const void *p, size_t n)
{
	if (n > sizeof(m->buf) - m->n) {
		mb_flush(m);
		if (n > sizeof(m->buf)) {
			mb_update(m, p, n);
			return;
		}
	}
	memcpy(m->buf + m->n, p, n);
	m->n += n;
}

void mb_u8(struct macbuf *m, uint8_t v)
{
	mb_raw(m, &v, 1);
}

void mb_u32(struct macbuf *m, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

	mb_raw(m, b, sizeof(b));
}

void mb_u64(struct macbuf *m, uint64_t v)
{
	mb_u32(m, (uint32_t)(v >> 32));
	mb_u32(m, (uint32_t)v);
}

void mb_bytes(struct macbuf *m, const void *p, size_t n)
{
	mb_u32(m, (uint32_t)n);
	if (n)
		mb_raw(m, p, n);
}

/* The current row of st: u32 column count, then each column typed (see the top). */
void mb_columns(struct macbuf *m, sqlite3_stmt *st)
{
	int ncol = sqlite3_column_count(st);
	uint64_t bits;
	double d;

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

int mb_final(struct store *s, struct macbuf *m, uint8_t out[MAC_LEN])
{
	size_t outlen = 0;
	unsigned int mdlen = 0;

	mb_flush(m);
	if (m->failed)
		return st_fail(s, STORE_IO, "HMAC-SHA256 failed (OpenSSL)");
	if (m->mac ? EVP_MAC_final(m->mac, out, &outlen, MAC_LEN) != 1 || outlen != MAC_LEN
		   : EVP_DigestFinal_ex(m->md, out, &mdlen) != 1 || mdlen != MAC_LEN)
		return st_fail(s, STORE_IO, "HMAC-SHA256 failed (OpenSSL)");
	return STORE_OK;
}

/* ---- keys ------------------------------------------------------------------------------ */

static int hmac_init(struct store *s, EVP_MAC_CTX *ctx, const uint8_t *key, size_t keylen)
{
	OSSL_PARAM params[2];

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_MAC_init(ctx, key, keylen, params) != 1)
		return st_fail(s, STORE_IO, "HMAC-SHA256 is not available (OpenSSL)");
	return STORE_OK;
}

/* Two subkeys with distinct labels: a row value can never be taken for a top MAC. */
int st_mac_derive_keys(struct store *s)
{
	static const char row_info[] = "vtpm-store-mac-v2 row";
	static const char top_info[] = "vtpm-store-mac-v2 top";

	if (hkdf_sha256(s->mac_key, sizeof(s->mac_key), NULL, 0, (const uint8_t *)row_info,
			sizeof(row_info) - 1, s->row_key, sizeof(s->row_key)) != 0 ||
	    hkdf_sha256(s->mac_key, sizeof(s->mac_key), NULL, 0, (const uint8_t *)top_info,
			sizeof(top_info) - 1, s->top_key, sizeof(s->top_key)) != 0)
		return st_fail(s, STORE_IO, "deriving the store MAC subkeys failed (OpenSSL)");
	if (!s->row_ctx)
		s->row_ctx = EVP_MAC_CTX_new(s->hmac);
	if (!s->row_ctx)
		return st_fail(s, STORE_IO, "HMAC-SHA256 is not available (OpenSSL)");
	return hmac_init(s, s->row_ctx, s->row_key, sizeof(s->row_key));
}

/* ---- rows ------------------------------------------------------------------------------ */

/* prf(current row of st) */
static int row_prf(struct store *s, sqlite3_stmt *st, enum mac_table t, uint8_t out[MAC_LEN])
{
	struct macbuf *m;
	int rc;

	/* NULL key: HMAC starts over with the key set by st_mac_derive_keys */
	if (EVP_MAC_init(s->row_ctx, NULL, 0, NULL) != 1)
		return st_fail(s, STORE_IO, "HMAC-SHA256 failed (OpenSSL)");
	m = mb_new(s, s->row_ctx, NULL);
	if (!m)
		return STORE_IO;
	mb_u32(m, (uint32_t)t);
	mb_columns(m, st);
	rc = mb_final(s, m, out);
	mb_free(m);
	return rc;
}

static void xor_into(uint8_t acc[MAC_LEN], const uint8_t v[MAC_LEN])
{
	for (size_t i = 0; i < MAC_LEN; i++)
		acc[i] ^= v[i];
}

/*
 * XOR the current row of st into the transaction's delta. Adding and removing a row are
 * the same operation; the caller reads a row before it changes or deletes it and after
 * it inserts or changes it, inside the transaction. Without a key (a store without a MAC,
 * before provisioning) there is nothing to maintain: the first keyed commit folds all.
 */
int st_row_xor(struct store *s, sqlite3_stmt *st, enum mac_table t)
{
	uint8_t v[MAC_LEN];
	int rc;

	if (!s->have_key || s->key_failed)
		return STORE_OK;
	rc = row_prf(s, st, t, v);
	if (rc == STORE_OK)
		xor_into(s->txn_delta, v);
	OPENSSL_cleanse(v, sizeof(v));
	return rc;
}

/* Every row st returns (bound by the caller), XORed in; st is reset. */
int st_rows_xor(struct store *s, sqlite3_stmt *st, enum mac_table t, const char *what)
{
	int rc;

	if (!st)
		return STORE_IO;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int rc2 = st_row_xor(s, st, t);

		if (rc2) {
			sqlite3_reset(st);
			return rc2;
		}
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return st_sql_fail(s, rc, what);
	return STORE_OK;
}

/* The aggregate over every covered row, and the number of audit rows (store_verify, the
 * first keyed commit, a commit after a new key). */
int st_agg_full(struct store *s, uint8_t agg[MAC_LEN], uint64_t *audit_rows)
{
	uint8_t v[MAC_LEN], prev[MAC_LEN];
	sqlite3_stmt *st;
	uint64_t n;
	int rc = STORE_OK;

	if (!s->have_key || s->key_failed)
		return st_fail(s, STORE_NO_KEY, "the store MAC key is not set");
	memset(agg, 0, MAC_LEN);
	*audit_rows = 0;
	for (size_t i = 0; i < sizeof(agg_queries) / sizeof(agg_queries[0]) && !rc; i++) {
		/* a version-2 store (verified before its upgrade) has the version-2 host row */
		rc = sqlite3_prepare_v2(s->db,
					agg_queries[i].table == T_HOST && s->disk_version == 2
					    ? "SELECT " HOST_COLS_V2 " FROM host ORDER BY id"
					    : agg_queries[i].sql,
					-1, &st, NULL);
		if (rc != SQLITE_OK)
			return st_sql_fail(s, rc, "computing the store MAC");
		n = 0;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			rc = row_prf(s, st, agg_queries[i].table, v);
			if (rc)
				break;
			if (n && CRYPTO_memcmp(v, prev, MAC_LEN) == 0) {
				rc = st_fail(s, STORE_TAMPERED,
					     "the store was modified outside vtpmmgrd (a row of "
					     "table %d appears twice)",
					     (int)agg_queries[i].table);
				break;
			}
			xor_into(agg, v);
			memcpy(prev, v, MAC_LEN);
			n++;
		}
		sqlite3_finalize(st);
		if (rc == SQLITE_DONE)
			rc = STORE_OK;
		else if (rc > 0)
			rc = st_sql_fail(s, rc, "computing the store MAC");
		if (agg_queries[i].table == T_AUDIT)
			*audit_rows = n;
	}
	OPENSSL_cleanse(v, sizeof(v));
	OPENSSL_cleanse(prev, sizeof(prev));
	return rc;
}

/* ---- schema and top MAC ---------------------------------------------------------------- */

int st_schema_digest(struct store *s, uint8_t out[MAC_LEN])
{
	sqlite3_stmt *st;
	struct macbuf *m;
	int rc;

	rc = sqlite3_prepare_v2(s->db,
				"SELECT type, name, tbl_name, sql FROM sqlite_schema"
				" WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return st_sql_fail(s, rc, "reading the store schema");
	m = mb_new(s, NULL, EVP_sha256());
	if (!m) {
		sqlite3_finalize(st);
		return STORE_IO;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		mb_u8(m, 1);
		mb_columns(m, st);
	}
	mb_u8(m, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		rc = st_sql_fail(s, rc, "reading the store schema");
	else
		rc = mb_final(s, m, out);
	mb_free(m);
	return rc;
}

int st_top_mac(struct store *s, const struct meta *mt, const uint8_t agg[MAC_LEN],
	       uint8_t out[MAC_LEN])
{
	static const char tag[] = "vtpm-store-mac-v2";
	EVP_MAC_CTX *ctx;
	struct macbuf *m = NULL;
	int rc;

	if (!s->schema_known)
		return st_fail(s, STORE_IO, "the store schema digest is not known");
	ctx = EVP_MAC_CTX_new(s->hmac);
	if (!ctx)
		return st_fail(s, STORE_IO, "HMAC-SHA256 is not available (OpenSSL)");
	rc = hmac_init(s, ctx, s->top_key, sizeof(s->top_key));
	if (rc == STORE_OK) {
		m = mb_new(s, ctx, NULL);
		rc = m ? STORE_OK : STORE_IO;
	}
	if (rc == STORE_OK) {
		mb_bytes(m, tag, sizeof(tag) - 1);
		mb_u32(m, (uint32_t)(s->disk_version == 2 ? 2 : STORE_SCHEMA_VERSION));
		mb_u64(m, mt->counter);
		mb_u64(m, mt->guard.epoch);
		mb_u8(m, mt->guard.state);
		mb_u32(m, mt->guard.tpm_reset_count);
		mb_u64(m, (uint64_t)mt->guard.time);
		mb_u64(m, mt->audit_rows);
		mb_raw(m, agg, MAC_LEN);
		mb_raw(m, s->schema_digest, MAC_LEN);
		rc = mb_final(s, m, out);
	}
	mb_free(m);
	EVP_MAC_CTX_free(ctx);
	return rc;
}
