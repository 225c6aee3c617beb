/*
 * store_host.c — the host provisioning record (one row).
 */
#include "vtpmmgrd/store_internal.h"

#include <string.h>
#include <time.h>

/* An optional blob column (NULL: length 0; an empty blob is malformed). */
static int opt_blob(sqlite3_stmt *st, int col, uint8_t *buf, size_t cap, size_t *len)
{
	*len = 0;
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return 0;
	return st_col_blob(st, col, buf, cap, len) < 0 || *len == 0 ? -1 : 0;
}

static int host_get_policy(sqlite3_stmt *st, struct store_host *h)
{
	if (opt_blob(st, 7, h->policy_key, sizeof(h->policy_key), &h->policy_key_len) < 0 ||
	    opt_blob(st, 8, h->sealed_auth, sizeof(h->sealed_auth), &h->sealed_auth_len) < 0 ||
	    st_col_u32(st, 9, &h->policy_nv) < 0 ||
	    opt_blob(st, 10, h->policies, sizeof(h->policies), &h->policies_len) < 0)
		return -1;
	return 0;
}

int store_host_get(struct store *s, struct store_host *h)
{
	/* a version-2 store is read before store_verify upgrades it (to unseal the root key) */
	sqlite3_stmt *st = st_q(s, s->disk_version == 2 ? Q_HOST_GET_V2 : Q_HOST_GET);
	int64_t created;
	int rc;

	memset(h, 0, sizeof(*h));
	rc = st_step_row(s, st, "reading the host record");
	if (rc < 0)
		return rc;
	if (rc == 0)
		return st_fail(s, STORE_NOT_FOUND, "the host is not provisioned");
	rc = STORE_OK;
	if (st_col_u32(st, 0, &h->pcr_mask) < 0 ||
	    st_col_blob(st, 1, h->sealed_root, sizeof(h->sealed_root), &h->sealed_root_len) < 0 ||
	    st_col_u32(st, 2, &h->nv_index) < 0 ||
	    st_col_blob(st, 3, h->ak_public, sizeof(h->ak_public), &h->ak_public_len) < 0 ||
	    st_col_int(st, 4, &created) < 0 ||
	    (sqlite3_column_type(st, 5) != SQLITE_NULL &&
	     (st_col_blob(st, 5, h->sealed_next, sizeof(h->sealed_next), &h->sealed_next_len) < 0 ||
	      h->sealed_next_len == 0)) ||
	    st_col_int(st, 6, &h->next_created) < 0 ||
	    (s->disk_version != 2 && host_get_policy(st, h) < 0))
		rc = st_fail(s, STORE_CORRUPT, "the host record is malformed");
	else
		h->created = created;
	sqlite3_reset(st);
	return rc;
}

static void bind_opt(sqlite3_stmt *st, int i, const uint8_t *p, size_t n)
{
	if (n)
		st_bind_blob(st, i, p, n);
	else
		sqlite3_bind_null(st, i);
}

static int apply_host_put(struct store *s, const void *arg)
{
	const struct store_host *h = arg;
	sqlite3_stmt *st;
	int rc;

	/* the row it replaces, if any, out of the aggregate */
	rc = st_rows_xor(s, st_q(s, Q_HOST_ROW), T_HOST, "reading the host record");
	if (rc)
		return rc;
	st = st_q(s, Q_HOST_PUT);
	if (!st)
		return STORE_IO;
	st_bind_i64(st, 1, h->pcr_mask);
	st_bind_blob(st, 2, h->sealed_root, h->sealed_root_len);
	st_bind_i64(st, 3, h->nv_index);
	st_bind_blob(st, 4, h->ak_public, h->ak_public_len);
	st_bind_i64(st, 5, h->created ? h->created : (int64_t)time(NULL));
	if (h->sealed_next_len) {
		st_bind_blob(st, 6, h->sealed_next, h->sealed_next_len);
		st_bind_i64(st, 7, h->next_created ? h->next_created : (int64_t)time(NULL));
	} else {
		sqlite3_bind_null(st, 6);
		st_bind_i64(st, 7, 0);
	}
	bind_opt(st, 8, h->policy_key, h->policy_key_len);
	bind_opt(st, 9, h->sealed_auth, h->sealed_auth_len);
	st_bind_i64(st, 10, h->policy_nv);
	bind_opt(st, 11, h->policies, h->policies_len);
	rc = st_run_stmt(s, st, "writing the host record");
	if (rc == STORE_OK)
		rc = st_rows_xor(s, st_q(s, Q_HOST_ROW), T_HOST, "reading the host record");
	return rc;
}

int store_host_put(struct store *s, const struct store_actor *who, const struct store_host *h)
{
	return store_host_change(s, who, "host-put", NULL, h);
}

int store_host_change(struct store *s, const struct store_actor *who, const char *action,
		      const char *note, const struct store_host *h)
{
	struct mut m = {.who = who, .action = action, .note = note, .subject = "host"};

	if (h->sealed_root_len == 0 || h->sealed_root_len > STORE_BLOB_MAX ||
	    h->ak_public_len > STORE_BLOB_MAX || h->sealed_next_len > STORE_BLOB_MAX ||
	    h->policy_key_len > STORE_BLOB_MAX || h->sealed_auth_len > STORE_BLOB_MAX ||
	    h->policies_len > STORE_BLOB_MAX)
		return st_refused(
		    s, &m, st_fail(s, STORE_INVALID, "host record: a blob is empty or too long"));
	return st_mutate(s, &m, apply_host_put, h);
}
