/*
 * store_internal.h — what the store_*.c files share: the connection, its statement cache,
 * the column readers and the MAC bookkeeping of an open transaction. Not for callers
 * outside the store; store.h is the contract.
 *
 *   store_db.c       open, close, schema creation, statements, column readers, errors
 *   store_txn.c      the commit path: transactions, savepoints, counter, MAC rewrite
 *   store_mac.c      keys, the per-row PRF, the aggregate and the top MAC (version 2)
 *   store_verify.c   store_verify: the full check at start
 *   store_upgrade.c  the version-1 MAC and the upgrade from version 1
 *   store_host.c, store_group.c, store_vtpm.c, store_audit.c, store_guard.c: one entity each
 */
#ifndef VTPM_STORE_INTERNAL_H
#define VTPM_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#include "vtpmmgrd/store.h"

#define ERR_MAX			 512
#define MAC_LEN			 32
#define STORE_AUDIT_KEEP_DEFAULT 100000

/* Internal, positive: the mutation found nothing to change (set_version, same version). */
#define NOCHANGE 1

/* Tables whose rows the aggregate covers; the number is part of each row's PRF input, so
 * a row moved to another table (same columns) is another value. Never renumber. */
enum mac_table {
	T_HOST = 1,
	T_GROUPS = 2,
	T_PATTERNS = 3,
	T_DIGESTS = 4,
	T_VTPMS = 5,
	T_AUDIT = 6,
};

#define HOST_COLS_V2                                                                               \
	"id, pcr_mask, sealed_root, nv_index, ak_public, created, sealed_next, next_created"
#define HOST_COLS    HOST_COLS_V2 ", policy_key, sealed_auth, policy_nv, policies"
#define GROUP_COLS   "uuid, name, any_digest, wrapped_key, created"
#define PATTERN_COLS "group_uuid, pattern"
#define DIGEST_COLS  "group_uuid, digest"
#define VTPM_COLS_V1 "uuid, group_uuid, wrapped_key, version, digest, state, created"
#define VTPM_COLS    VTPM_COLS_V1 ", bound_label"
#define AUDIT_COLS   "id, time, uid, pid, action, subject, result"

enum qid {
	Q_BEGIN,
	Q_BEGIN_READ,
	Q_COMMIT,
	Q_ROLLBACK,
	Q_SAVEPOINT,
	Q_RELEASE,
	Q_ROLLBACK_TO,
	Q_COUNTER_GET,
	Q_META_GET,
	Q_META_SEALED,
	Q_META_SET_MAC,
	Q_GUARD_SET,
	Q_HOST_GET,
	Q_HOST_GET_V2,
	Q_HOST_ROW,
	Q_HOST_PUT,
	Q_GROUP_BY_UUID,
	Q_GROUP_BY_NAME,
	Q_GROUP_PATTERNS,
	Q_GROUP_DIGESTS,
	Q_GROUP_INSERT,
	Q_PATTERN_INSERT,
	Q_DIGEST_INSERT,
	Q_PATTERN_ROWS,
	Q_DIGEST_ROWS,
	Q_PATTERN_ROW,
	Q_DIGEST_ROW,
	Q_GROUP_DELETE,
	Q_GROUP_VTPMS,
	Q_VTPM_GET,
	Q_VTPM_INSERT,
	Q_VTPM_DELETE,
	Q_VTPM_SET_STATE,
	Q_VTPM_SET_BOUND,
	Q_VTPM_SET_VERSION,
	Q_AUDIT_INSERT,
	Q_AUDIT_ROW,
	Q_AUDIT_OLDEST,
	Q_AUDIT_DELETE_TO,
	Q_AUDIT_ROWS_ADD,
	Q_AUDIT_LAST,
	Q_COUNT
};

/* The meta row of a version-2 store. */
struct meta {
	uint64_t counter;
	bool sealed; /* a MAC is present: every covered row is in agg */
	uint8_t mac[MAC_LEN];
	bool has_agg;
	uint8_t agg[MAC_LEN];
	uint64_t audit_rows;
	struct store_guard guard;
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *stmt[Q_COUNT];
	EVP_MAC *hmac;
	EVP_MAC_CTX *row_ctx; /* HMAC under row_key, re-initialised for each row */
	char path[4096];
	int disk_version; /* user_version at open; store_verify upgrades it */
	bool have_key;
	bool key_failed; /* deriving the subkeys failed: mutations refuse (STORE_IO) */
	bool verified;
	bool schema_known;
	uint64_t audit_keep;
	uint64_t counter;
	uint8_t schema_digest[MAC_LEN]; /* of sqlite_schema, taken at verify and upgrade */
	/* the open transaction (store_begin ... or one mutating call) */
	bool in_txn;
	bool txn_dirty;		    /* a change that bumps the counter is pending */
	bool txn_mac;		    /* a covered row changed (an audit row counts) */
	bool txn_failed;	    /* an I/O error struck inside store_begin ... */
	bool txn_wipe;		    /* checkpoint + truncate the WAL after the commit */
	bool txn_sealed;	    /* the meta row had a MAC when the transaction began */
	bool txn_rekey;		    /* store_set_mac_key inside the transaction */
	uint8_t txn_delta[MAC_LEN]; /* XOR of the PRF values of rows removed and added */
	uint8_t sp_delta[MAC_LEN];  /* txn_delta when the current savepoint began */
	char err[ERR_MAX];
	uint8_t mac_key[STORE_MAC_KEY_LEN];
	uint8_t row_key[MAC_LEN];
	uint8_t top_key[MAC_LEN];
};

struct mut {
	const struct store_actor *who;
	const char *action;
	const char *note; /* the audit row's result when it succeeds; NULL: "ok" */
	char subject[STORE_SUBJECT_MAX + 1];
	bool wipe; /* after the commit: checkpoint and truncate the WAL */
};

/* store_db.c */
__attribute__((format(printf, 3, 4))) int st_fail(struct store *s, int rc, const char *fmt, ...);
int st_sql_fail(struct store *s, int rc, const char *what);
void st_copy_err(char *err, size_t errlen, const char *msg);
bool st_is_refusal(int rc);
sqlite3_stmt *st_q(struct store *s, enum qid id);
int st_run_stmt(struct store *s, sqlite3_stmt *st, const char *what);
int st_run(struct store *s, enum qid id, const char *what);
int st_exec(struct store *s, const char *sql, const char *what);
int st_step_row(struct store *s, sqlite3_stmt *st, const char *what);
int st_query_int(struct store *s, const char *sql, const char *what, int *v);
int st_bind_blob(sqlite3_stmt *st, int i, const void *p, size_t n);
int st_bind_text(sqlite3_stmt *st, int i, const char *p);
int st_bind_i64(sqlite3_stmt *st, int i, int64_t v);
int st_col_blob(sqlite3_stmt *st, int i, void *out, size_t cap, size_t *len);
int st_col_fixed(sqlite3_stmt *st, int i, void *out, size_t n);
int st_col_text(sqlite3_stmt *st, int i, char *out, size_t cap);
int st_col_int(sqlite3_stmt *st, int i, int64_t *v);
int st_col_u32(sqlite3_stmt *st, int i, uint32_t *v);
int st_meta_get(struct store *s, struct meta *m);
int st_ready(struct store *s);
int st_txn_open(struct store *s);
void st_rollback_all(struct store *s);
int st_finish(struct store *s);
int st_mutate(struct store *s, const struct mut *m, int (*apply)(struct store *, const void *),
	      const void *arg);
int st_refused(struct store *s, const struct mut *m, int rc);
bool st_text_ok(const char *t, size_t max);
bool st_state_ok(const char *t);
extern const char st_schema_v1[];
extern const char st_schema_1_to_2[];
extern const char st_schema_2_to_3[];

/* store_mac.c */
struct macbuf;
struct macbuf *mb_new(struct store *s, EVP_MAC_CTX *mac, const EVP_MD *md);
void mb_free(struct macbuf *m);
void mb_u8(struct macbuf *m, uint8_t v);
void mb_u32(struct macbuf *m, uint32_t v);
void mb_u64(struct macbuf *m, uint64_t v);
void mb_bytes(struct macbuf *m, const void *p, size_t n);
void mb_raw(struct macbuf *m, const void *p, size_t n);
void mb_columns(struct macbuf *m, sqlite3_stmt *st);
int mb_final(struct store *s, struct macbuf *m, uint8_t out[MAC_LEN]);
int st_mac_derive_keys(struct store *s);
int st_row_xor(struct store *s, sqlite3_stmt *st, enum mac_table t);
int st_rows_xor(struct store *s, sqlite3_stmt *st, enum mac_table t, const char *what);
int st_agg_full(struct store *s, uint8_t agg[MAC_LEN], uint64_t *audit_rows);
int st_schema_digest(struct store *s, uint8_t out[MAC_LEN]);
int st_top_mac(struct store *s, const struct meta *m, const uint8_t agg[MAC_LEN],
	       uint8_t out[MAC_LEN]);

/* store_upgrade.c */
int st_verify_v1(struct store *s, uint64_t *counter, bool *fresh);
int st_upgrade(struct store *s, uint64_t counter, bool fresh);

/* store_audit.c */
int st_audit_insert(struct store *s, const struct store_actor *who, const char *action,
		    const char *subject, const char *result);

#endif
