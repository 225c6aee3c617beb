/*
 * admin.c — the admin socket's requests (vtpmctl): host provisioning and status, groups,
 * vTPMs, label registration, the audit log.
 *
 * Mutations go through the store with the requester as the audit actor, so the change
 * and its audit row are one transaction; each is bracketed by mgrd_write_begin/end, which
 * keep the host NV counter in step (rollback.h). Reads are audited by the event loop.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "common/cursor.h"
#include "common/log.h"
#include "vtpmmgrd/host_policy.h"
#include "vtpmmgrd/host_tpm.h"
#include "vtpmmgrd/manager.h"
#include "vtpmmgrd/store.h"

int admin_permitted(struct mgrd *d, const struct peer *p, char *err, size_t errlen)
{
	char gerr[256];
	int rc;

	if (p->uid == 0)
		return 0;
	if (!d->have_admin_gid) {
		snprintf(err, errlen, "uid %lu is not root (no --admin-group is configured)",
			 (unsigned long)p->uid);
		return -1;
	}
	rc = peer_in_group(p, d->admin_gid, gerr, sizeof(gerr));
	if (rc == 1)
		return 0;
	if (rc < 0)
		snprintf(err, errlen, "uid %lu: cannot check its groups: %s", (unsigned long)p->uid,
			 gerr);
	else
		snprintf(err, errlen, "uid %lu is neither root nor a member of group %s (gid %lu)",
			 (unsigned long)p->uid, d->opts.admin_group, (unsigned long)d->admin_gid);
	return -1;
}

static struct store_actor actor_of(const struct requester *who)
{
	struct store_actor a = {.uid = (uint32_t)who->peer->uid, .pid = (uint32_t)who->peer->pid};
	return a;
}

/* ---- counting ------------------------------------------------------------------------ */

static int count_group(const struct store_group *g, void *arg)
{
	(void)g;
	(*(uint32_t *)arg)++;
	return STORE_OK;
}

static int count_vtpm(const struct store_vtpm *v, void *arg)
{
	(void)v;
	(*(uint32_t *)arg)++;
	return STORE_OK;
}

static uint32_t vtpms_of_group(struct mgrd *d, const uint8_t *group_uuid)
{
	uint32_t n = 0;

	store_vtpm_list(d->store, group_uuid, count_vtpm, &n);
	return n;
}

/* ---- host ---------------------------------------------------------------------------- */

struct rewrap {
	struct store_group *v;
	size_t n, cap;
};

static int collect_group(const struct store_group *g, void *arg)
{
	struct rewrap *w = arg;

	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 4;
		struct store_group *v = realloc(w->v, cap * sizeof(*v));

		if (!v)
			return STORE_IO;
		w->v = v;
		w->cap = cap;
	}
	w->v[w->n++] = *g;
	return STORE_OK;
}

static void rewrap_free(struct rewrap *w)
{
	if (w->v)
		OPENSSL_cleanse(w->v, w->cap * sizeof(*w->v));
	free(w->v);
}

/* In the open transaction: re-wrap every group key from the old root key to the new. */
static uint32_t rewrap_groups(struct mgrd *d, const struct store_actor *a, struct rewrap *w,
			      const uint8_t new_root[KEYS_KEY_LEN], struct mgr_reply *r)
{
	uint8_t gk[KEYS_KEY_LEN];
	char err[256];
	size_t i;
	int rc;

	for (i = 0; i < w->n; i++) {
		struct store_group *g = &w->v[i];

		if (keys_unwrap_group(d->root_key, g->uuid, g->wrapped_key, g->wrapped_key_len, gk,
				      err, sizeof(err)) < 0 ||
		    keys_wrap_group(new_root, g->uuid, gk, g->wrapped_key, err, sizeof(err)) < 0) {
			OPENSSL_cleanse(gk, sizeof(gk));
			return reply_fail(r, MGR_ERR_INTERNAL, "group '%s': %s", g->name, err);
		}
		OPENSSL_cleanse(gk, sizeof(gk));
		g->wrapped_key_len = KEYS_WRAPPED_LEN;
		rc = store_group_delete(d->store, a, g->name);
		if (rc == STORE_OK)
			rc = store_group_add(d->store, a, g);
		if (rc != STORE_OK)
			return reply_fail(r, reply_store_status(rc), "re-wrapping group '%s': %s",
					  g->name, store_errmsg(d->store));
	}
	return MGR_OK;
}

static uint32_t host_init(struct mgrd *d, const struct requester *who,
			  const struct mgr_request *req, struct mgr_reply *r)
{
	/* FORCE keeps the recorded index unless --nv-index names another */
	const uint32_t idx =
	    d->provisioned && !d->opts.nv_index_given ? d->rb.nv_index : d->opts.nv_index;
	const uint32_t old_idx = d->rb.nv_index;
	const bool was_provisioned = d->provisioned;
	const bool force = req->u.host_init.force;
	struct store_actor a = actor_of(who);
	struct store_host *h = NULL;
	struct rewrap w = {0};
	uint8_t root[KEYS_KEY_LEN], mac[KEYS_KEY_LEN], secret[KEYS_ROOT_SECRET_LEN];
	uint8_t *blob = NULL, *der = NULL, name[HOST_TPM_NAME_MAX];
	size_t blob_len = 0, der_len = 0, name_len = 0;
	uint32_t nvtpms = 0, st = MGR_OK;
	struct store_guard guard;
	uint64_t v = 0;
	int64_t offset;
	char err[512];
	bool key_switched = false;
	int rc;

	snprintf(r->subject, sizeof(r->subject), "host");
	if (d->provisioned && !force)
		return reply_fail(r, MGR_ERR_EXISTS,
				  "the host is provisioned already; FORCE re-creates the root key "
				  "(every existing key becomes unreadable)");
	if (d->provisioned) {
		store_vtpm_list(d->store, NULL, count_vtpm, &nvtpms);
		if (nvtpms > 0)
			return reply_fail(r, MGR_ERR_BUSY,
					  "%u vTPM%s exist: a new root key would make their state "
					  "keys unreadable; delete them first",
					  nvtpms, nvtpms == 1 ? "" : "s");
		st = mgrd_write_begin(d, r);
		if (st)
			return st;
		if (store_group_list(d->store, collect_group, &w) != STORE_OK) {
			st = reply_fail(r, MGR_ERR_STORE, "reading the groups: %s",
					store_errmsg(d->store));
			goto out;
		}
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		st = reply_fail(r, MGR_ERR_INTERNAL, "out of memory");
		goto out;
	}
	if (keys_random(root, err, sizeof(err)) < 0 ||
	    keys_store_mac_key(root, mac, err, sizeof(err)) < 0) {
		st = reply_fail(r, MGR_ERR_INTERNAL, "%s", err);
		goto out;
	}
	/* 1. the NV counter. A provisioned host keeps its own counter (re-defining it would
	 * leave the running store without a matching counter if a later step failed). */
	if (was_provisioned && idx == old_idx)
		rc = HOST_TPM_OK;
	else
		rc = host_tpm_counter_define(d->tpm, idx, HOST_TPM_COUNTER_ORDERLY, err,
					     sizeof(err));
	if (rc == HOST_TPM_ERR_EXISTS && force) {
		rc = host_tpm_counter_undefine(d->tpm, idx, err, sizeof(err));
		if (rc == HOST_TPM_OK)
			rc = host_tpm_counter_define(d->tpm, idx, HOST_TPM_COUNTER_ORDERLY, err,
						     sizeof(err));
	} else if (rc == HOST_TPM_ERR_EXISTS) {
		st = reply_fail(r, MGR_ERR_EXISTS,
				"NV index 0x%08x is already defined on the host TPM (by an earlier "
				"host-init that did not finish, or by another program); FORCE "
				"replaces it, or choose another --nv-index",
				idx);
		goto out;
	}
	if (rc == HOST_TPM_OK)
		rc = host_tpm_counter_read(d->tpm, idx, &v, err, sizeof(err));
	if (rc != HOST_TPM_OK) {
		st = reply_fail(r, MGR_ERR_HOST_TPM, "%s", err);
		goto out;
	}
	/* 2. the offset tying the store's guard epoch to the counter (rollback.h) */
	if (store_guard_get(d->store, &guard) != STORE_OK) {
		st = reply_fail(r, MGR_ERR_STORE, "%s", store_errmsg(d->store));
		goto out;
	}
	offset = (int64_t)v - (int64_t)guard.epoch;
	/* 3. seal the root key (with the offset) to the host PCRs; the AK's public key */
	keys_root_secret_encode(root, offset, secret);
	rc = host_tpm_seal(d->tpm, secret, sizeof(secret), req->u.host_init.pcr_mask, &blob,
			   &blob_len, err, sizeof(err));
	if (rc == HOST_TPM_OK)
		rc = host_tpm_ak_public(d->tpm, &der, &der_len, name, &name_len, err, sizeof(err));
	if (rc != HOST_TPM_OK) {
		st = reply_fail(r, MGR_ERR_HOST_TPM, "%s", err);
		goto out;
	}
	if (blob_len > STORE_BLOB_MAX || der_len > STORE_BLOB_MAX) {
		st = reply_fail(r, MGR_ERR_INTERNAL, "sealed blob or AK public key too large");
		goto out;
	}
	h->pcr_mask = req->u.host_init.pcr_mask;
	h->nv_index = idx;
	memcpy(h->sealed_root, blob, blob_len);
	h->sealed_root_len = blob_len;
	memcpy(h->ak_public, der, der_len);
	h->ak_public_len = der_len;
	/* 4. one store transaction, MAC'd under the new key */
	if (!d->provisioned) {
		store_set_mac_key(d->store, mac);
		if (store_verify(d->store, NULL, err, sizeof(err)) != STORE_OK) {
			st = reply_fail(r, MGR_ERR_STORE, "%s", err);
			goto out;
		}
	}
	rc = store_begin(d->store);
	if (rc == STORE_OK && d->provisioned)
		st = rewrap_groups(d, &a, &w, root, r);
	if (rc == STORE_OK && st == MGR_OK)
		rc = store_host_put(d->store, &a, h);
	if (rc == STORE_OK && st == MGR_OK) {
		char note[STORE_RESULT_MAX + 1];

		snprintf(note, sizeof(note), "ok: PCR mask 0x%06x, NV counter 0x%08x%s",
			 h->pcr_mask, idx,
			 d->provisioned ? "; FORCE: new root key, the old one is destroyed" : "");
		rc = store_audit_append(d->store, &a, "host-init", "host", note);
	}
	if (rc == STORE_OK && st == MGR_OK) {
		store_set_mac_key(d->store, mac); /* the commit MACs under the new key */
		key_switched = true;
		rc = store_commit(d->store);
	} else {
		store_rollback(d->store);
	}
	if (rc == STORE_OK && st == MGR_OK)
		rc = store_verify(d->store, NULL, err, sizeof(err));
	else
		snprintf(err, sizeof(err), "%s", store_errmsg(d->store));
	if (rc != STORE_OK || st != MGR_OK) {
		if (st == MGR_OK)
			st = reply_fail(r, reply_store_status(rc), "%s", err);
		if (d->provisioned && key_switched) {
			/* nothing was committed: the store is still MAC'd under the old key */
			uint8_t old[KEYS_KEY_LEN];

			if (keys_store_mac_key(d->root_key, old, err, sizeof(err)) == 0) {
				store_set_mac_key(d->store, old);
				if (store_verify(d->store, NULL, err, sizeof(err)) != STORE_OK)
					log_warnx("host-init: the store no longer verifies: %s",
						  err);
			}
			OPENSSL_cleanse(old, sizeof(old));
		}
		goto out;
	}
	r->audited = true;
	/* 5. the manager runs provisioned from here on */
	memcpy(d->root_key, root, sizeof(root));
	d->provisioned = true;
	d->pcr_mask = h->pcr_mask;
	d->host_created = (int64_t)time(NULL);
	rollback_init(&d->rb, d->tpm, idx, offset);
	d->rb.interval_ms = d->opts.guard_interval_ms;
	rollback_provisioned(&d->rb, d->store, v);
	if (was_provisioned && old_idx != idx &&
	    host_tpm_counter_undefine(d->tpm, old_idx, err, sizeof(err)) != HOST_TPM_OK)
		log_warnx("host-init: the previous NV counter stays defined: %s", err);
	log_info("host provisioned: PCR mask 0x%06x, NV counter 0x%08x at %" PRIu64 "%s",
		 h->pcr_mask, idx, v, force ? " (FORCE: new root key)" : "");
	if (w.n > 0 || force)
		reply_text(
		    &r->b, MGR_F_MESSAGE,
		    "FORCE: a new root key replaced the old one; group keys were re-wrapped");
	mgr_put_u32(&r->b, MGR_F_PCR_MASK, h->pcr_mask);
	mgr_put_u32(&r->b, MGR_F_NV_INDEX, idx);
	mgr_put_u64(&r->b, MGR_F_NV_VALUE, d->rb.nv_value);
out:
	OPENSSL_cleanse(root, sizeof(root));
	OPENSSL_cleanse(mac, sizeof(mac));
	OPENSSL_cleanse(secret, sizeof(secret));
	free(blob);
	free(der);
	free(h);
	rewrap_free(&w);
	return st;
}

static void put_prop(struct mgr_builder *b, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void put_prop(struct mgr_builder *b, const char *key, const char *fmt, ...)
{
	char v[MGR_MAX_TEXT + 1];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v, sizeof(v), fmt, ap);
	va_end(ap);
	if (!v[0])
		return;
	mgr_put_text(b, MGR_F_KEY, key);
	reply_text(b, MGR_F_VALUE, v);
}

static void put_command_count(const char *name, uint64_t count, void *arg)
{
	char key[64];

	snprintf(key, sizeof(key), "tpm_%s", name);
	put_prop(arg, key, "%" PRIu64, count);
}

/* The store's rollback guard (rollback.h), as properties. */
static void guard_status(struct mgrd *d, struct mgr_builder *b)
{
	const struct rollback *rb = &d->rb;
	int64_t now = rollback_now_ms();

	mgr_put_u64(b, MGR_F_EPOCH, rb->epoch);
	put_prop(b, "guard_verdict", "%s", rollback_verdict_name(rb->verdict));
	put_prop(b, "guard_verdict_note", "%s", rb->verdict_note);
	put_prop(b, "guard_verdict_time", "%" PRId64, rb->verdict_time);
	put_prop(b, "guard_counter", "%s", rb->orderly ? "hybrid (orderly)" : "plain NV counter");
	put_prop(b, "guard_interval_ms", "%u", rb->interval_ms);
	put_prop(b, "guard_advances", "%" PRIu64, rb->advances);
	put_prop(b, "guard_unguarded_changes", "%" PRIu64, rb->changes);
	put_prop(b, "guard_unguarded_ms", "%" PRId64,
		 rb->changes ? now - rb->covered_ms : (int64_t)0);
	put_prop(b, "guard_failures", "%" PRIu64, rb->failures);
	if (rb->failing_since_ms) {
		put_prop(b, "guard_failing_for_ms", "%" PRId64, now - rb->failing_since_ms);
		put_prop(b, "guard_last_error", "%s", rb->last_error);
	}
}

/* ---- host updates: the predicted copy (docs/vtpmmgrd.8, HOST UPDATES) ---------------- */

/* "0, 16" */
static void pcr_text(uint32_t mask, char *out, size_t cap)
{
	size_t pos = 0;
	unsigned i;

	out[0] = '\0';
	for (i = 0; i < HOST_TPM_PCRS && pos < cap; i++)
		if (mask & (1u << i))
			pos += (size_t)snprintf(out + pos, cap - pos, "%s%u", pos ? ", " : "", i);
}

/* Would a boot with the values pv unseal blob? Fills *mask (the blob's PCRs), *differ (its
 * PCRs whose value in pv is another) and *missing (its PCRs pv has no value for). 1: yes,
 * 0: no, -1: the blob does not parse (err). No TPM command. */
static int blob_would_unseal(const uint8_t *blob, size_t len, const struct req_pcr_values *pv,
			     uint32_t *mask, uint32_t *differ, uint32_t *missing, char *err,
			     size_t errlen)
{
	uint8_t values[HOST_TPM_PCRS][32];
	unsigned i;

	*differ = *missing = 0;
	if (host_tpm_blob_pcrs(blob, len, mask, values, err, errlen) != HOST_TPM_OK)
		return -1;
	for (i = 0; i < HOST_TPM_PCRS; i++) {
		if (!(*mask & (1u << i)))
			continue;
		if (!(pv->mask & (1u << i)))
			*missing |= 1u << i;
		else if (CRYPTO_memcmp(values[i], pv->values[i], 32) != 0)
			*differ |= 1u << i;
	}
	return !*differ && !*missing;
}

/* One copy's verdict, for the note: "the current copy (PCRs 0, 16): PCR 16 differs". */
static void copy_verdict(const char *which, const uint8_t *blob, size_t len,
			 const struct req_pcr_values *pv, int *ok, char *out, size_t cap)
{
	uint32_t mask = 0, differ = 0, missing = 0;
	char err[256], a[96], b[96], c[96];

	*ok = blob_would_unseal(blob, len, pv, &mask, &differ, &missing, err, sizeof(err));
	if (*ok < 0) {
		snprintf(out, cap, "the %s copy is unreadable (%s)", which, err);
		*ok = 0;
		return;
	}
	pcr_text(mask, a, sizeof(a));
	pcr_text(differ, b, sizeof(b));
	pcr_text(missing, c, sizeof(c));
	if (*ok)
		snprintf(out, cap, "the %s copy (PCRs %s) unseals", which, a);
	else if (differ && missing)
		snprintf(out, cap,
			 "the %s copy (PCRs %s): PCR%s %s differ%s, no value for PCR%s %s", which,
			 a, differ & (differ - 1) ? "s" : "", b, differ & (differ - 1) ? "" : "s",
			 missing & (missing - 1) ? "s" : "", c);
	else if (differ)
		snprintf(out, cap, "the %s copy (PCRs %s): PCR%s %s differ%s", which, a,
			 differ & (differ - 1) ? "s" : "", b, differ & (differ - 1) ? "" : "s");
	else
		snprintf(out, cap, "the %s copy (PCRs %s): no value for PCR%s %s", which, a,
			 missing & (missing - 1) ? "s" : "", c);
}

/* host status: the predicted copy, and with PCR values, whether a boot with them unseals. */
static void policy_status(struct mgrd *d, const struct store_host *h,
			  const struct req_pcr_values *pv, struct mgr_builder *b, int *ok,
			  char *note, size_t cap);

static void update_status(struct mgrd *d, const struct store_host *h,
			  const struct req_pcr_values *pv, struct mgr_builder *b)
{
	char signed_note[MGR_MAX_TEXT / 2];
	int ok_signed = 0;

	uint8_t values[HOST_TPM_PCRS][32];
	uint32_t mask = 0;
	char list[96], cur[384], next[384], err[256];
	int ok_cur = 0, ok_next = 0;

	put_prop(b, "predicted_copy", "%s", h->sealed_next_len ? "yes" : "no");
	if (h->sealed_next_len) {
		if (host_tpm_blob_pcrs(h->sealed_next, h->sealed_next_len, &mask, values, err,
				       sizeof(err)) == HOST_TPM_OK) {
			pcr_text(mask, list, sizeof(list));
			put_prop(b, "predicted_pcrs", "%s", list);
		} else {
			put_prop(b, "predicted_error", "%s", err);
		}
		put_prop(b, "predicted_time", "%" PRId64, h->next_created);
	}
	policy_status(d, h, pv, b, &ok_signed, signed_note, sizeof(signed_note));
	if (!pv->mask)
		return;
	copy_verdict("current", h->sealed_root, h->sealed_root_len, pv, &ok_cur, cur, sizeof(cur));
	if (h->sealed_next_len)
		copy_verdict("predicted", h->sealed_next, h->sealed_next_len, pv, &ok_next, next,
			     sizeof(next));
	else
		snprintf(next, sizeof(next), "there is no predicted copy");
	put_prop(b, "check_pcrs", "%s",
		 ok_cur	     ? "current"
		 : ok_next   ? "predicted"
		 : ok_signed ? "signed"
			     : "no");
	put_prop(b, "check_pcrs_note", "%s; %s; %s", cur, next, signed_note);
}

static uint32_t host_status(struct mgrd *d, const struct mgr_request *req, struct mgr_reply *r)
{
	struct store_host *h = NULL;
	uint32_t ngroups = 0, nvtpms = 0;
	uint64_t counter = 0;
	size_t saved;

	snprintf(r->subject, sizeof(r->subject), "host");
	store_counter(d->store, &counter);
	if (d->provisioned) {
		store_group_list(d->store, count_group, &ngroups);
		store_vtpm_list(d->store, NULL, count_vtpm, &nvtpms);
		h = calloc(1, sizeof(*h));
		if (h && store_host_get(d->store, h) != STORE_OK) {
			free(h);
			h = NULL;
		}
	}
	saved = reply_record_begin(&r->b);
	mgr_put_u32(&r->b, MGR_F_PROVISIONED, d->provisioned ? 1 : 0);
	reply_text(&r->b, MGR_F_STATE,
		   !d->provisioned		      ? "not-provisioned"
		   : d->rb.failing_since_ms	      ? "guard-failing"
		   : d->rb.verdict == RB_CRASH_WINDOW ? "ok, crash window at start"
		   : d->rb.verdict == RB_RESET_WINDOW ? "ok, host TPM reset window at start"
						      : "ok");
	mgr_put_u32(&r->b, MGR_F_NV_INDEX, d->provisioned ? d->rb.nv_index : d->opts.nv_index);
	if (d->provisioned) {
		mgr_put_u32(&r->b, MGR_F_PCR_MASK, d->pcr_mask);
		/* as last read or set: status costs no host TPM command */
		mgr_put_u64(&r->b, MGR_F_NV_VALUE, d->rb.nv_value);
		mgr_put_u64(&r->b, MGR_F_NV_OFFSET, (uint64_t)d->rb.offset);
		if (h) {
			mgr_put_u64(&r->b, MGR_F_TIME, (uint64_t)h->created);
			if (h->ak_public_len > 0)
				mgr_put_bytes(&r->b, MGR_F_AK_PUBLIC, h->ak_public,
					      h->ak_public_len);
		}
	}
	mgr_put_u64(&r->b, MGR_F_STORE_COUNTER, counter);
	mgr_put_u32(&r->b, MGR_F_GROUPS, ngroups);
	mgr_put_u32(&r->b, MGR_F_VTPMS, nvtpms);
	mgr_put_u32(&r->b, MGR_F_INSTANCES, (uint32_t)d->inst.n);
	mgr_put_u64(&r->b, MGR_F_TPM_COMMANDS, host_tpm_commands(d->tpm));
	if (d->provisioned)
		guard_status(d, &r->b);
	if (h)
		update_status(d, h, &req->u.host_status.pv, &r->b);
	if (req->u.host_status.read_mask) {
		uint8_t values[HOST_TPM_PCRS][32], v[33];
		char err[256];

		if (host_tpm_pcr_read(d->tpm, req->u.host_status.read_mask, values, err,
				      sizeof(err)) != HOST_TPM_OK) {
			free(h);
			return reply_fail(r, MGR_ERR_HOST_TPM, "%s", err);
		}
		for (unsigned i = 0; i < HOST_TPM_PCRS; i++) {
			if (!(req->u.host_status.read_mask & (1u << i)))
				continue;
			v[0] = (uint8_t)i;
			memcpy(v + 1, values[i], 32);
			mgr_put_bytes(&r->b, MGR_F_PCR_VALUE, v, sizeof(v));
		}
	}
	host_tpm_command_counts(d->tpm, put_command_count, &r->b);
	free(h);
	if (!reply_record_end(&r->b, saved))
		return reply_fail(r, MGR_ERR_INTERNAL, "the status does not fit in a message");
	return MGR_OK;
}

/* host reseal --predict: a second sealed copy of the root key, to the expected values of the
 * next boot, beside the current one (which stays as it is). */
static uint32_t host_reseal_predict(struct mgrd *d, const struct requester *who,
				    const struct mgr_request *req, struct mgr_reply *r)
{
	const struct req_pcr_values *pv = &req->u.host_reseal.pv;
	struct store_actor a = actor_of(who);
	struct store_host *h;
	uint8_t secret[KEYS_ROOT_SECRET_LEN], *blob = NULL;
	size_t blob_len = 0;
	uint32_t st, mask, missing;
	char err[512], list[96], note[STORE_RESULT_MAX + 1];
	bool replaced;
	int rc;

	mask = req->u.host_reseal.has_mask ? req->u.host_reseal.pcr_mask : d->pcr_mask;
	missing = mask & ~pv->mask;
	if (missing) {
		char want[96];

		pcr_text(missing, list, sizeof(list));
		pcr_text(mask, want, sizeof(want));
		return reply_fail(r, MGR_ERR_MALFORMED,
				  "the predicted values give no value for PCR%s %s (the copy is "
				  "sealed to PCRs %s)",
				  missing & (missing - 1) ? "s" : "", list, want);
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		return reply_fail(r, MGR_ERR_INTERNAL, "out of memory");
	rc = store_host_get(d->store, h);
	if (rc != STORE_OK) {
		st = reply_fail(r, MGR_ERR_STORE, "%s", store_errmsg(d->store));
		goto out;
	}
	keys_root_secret_encode(d->root_key, d->rb.offset, secret);
	rc = host_tpm_seal_values(d->tpm, secret, sizeof(secret), mask, pv->values, &blob,
				  &blob_len, err, sizeof(err));
	OPENSSL_cleanse(secret, sizeof(secret));
	if (rc != HOST_TPM_OK) {
		st = reply_fail(r, MGR_ERR_HOST_TPM, "%s", err);
		goto out;
	}
	if (blob_len > STORE_BLOB_MAX) {
		st = reply_fail(r, MGR_ERR_INTERNAL, "the sealed blob is too large");
		goto out;
	}
	replaced = h->sealed_next_len > 0;
	memcpy(h->sealed_next, blob, blob_len);
	h->sealed_next_len = blob_len;
	h->next_created = (int64_t)time(NULL);
	pcr_text(mask, list, sizeof(list));
	snprintf(note, sizeof(note), "ok: predicted copy sealed to PCRs %s%s", list,
		 replaced ? " (replaces the previous predicted copy)" : "");
	rc = store_host_change(d->store, &a, "host-reseal", note, h);
	r->audited = rc == STORE_OK || reply_store_status(rc) != MGR_ERR_STORE;
	if (rc != STORE_OK) {
		st = reply_fail(r, reply_store_status(rc), "%s", store_errmsg(d->store));
		goto out;
	}
	st = mgrd_write_end(d, r);
	if (st == MGR_OK) {
		log_info("root key sealed a second time, to predicted values of PCRs %s%s", list,
			 replaced ? " (the previous predicted copy is replaced)" : "");
		mgr_put_u32(&r->b, MGR_F_PCR_MASK, mask);
		put_prop(&r->b, "copy", "predicted");
	}
out:
	free(blob);
	OPENSSL_cleanse(h, sizeof(*h));
	free(h);
	return st;
}

static uint32_t host_reseal(struct mgrd *d, const struct requester *who,
			    const struct mgr_request *req, struct mgr_reply *r)
{
	if (req->u.host_reseal.predict) {
		snprintf(r->subject, sizeof(r->subject), "host");
		if (!d->provisioned)
			return reply_fail(r, MGR_ERR_NOT_PROVISIONED,
					  "the host is not provisioned (host-init first)");
		return host_reseal_predict(d, who, req, r);
	}
	struct store_actor a = actor_of(who);
	struct store_host *h;
	uint8_t secret[KEYS_ROOT_SECRET_LEN], *blob = NULL;
	size_t blob_len = 0;
	uint32_t st, mask;
	char err[512];
	int rc;

	snprintf(r->subject, sizeof(r->subject), "host");
	st = mgrd_write_begin(d, r);
	if (st)
		return st;
	mask = req->u.host_reseal.has_mask ? req->u.host_reseal.pcr_mask : d->pcr_mask;
	h = calloc(1, sizeof(*h));
	if (!h)
		return reply_fail(r, MGR_ERR_INTERNAL, "out of memory");
	rc = store_host_get(d->store, h);
	if (rc != STORE_OK) {
		st = reply_fail(r, MGR_ERR_STORE, "%s", store_errmsg(d->store));
		goto out;
	}
	keys_root_secret_encode(d->root_key, d->rb.offset, secret);
	rc =
	    host_tpm_seal(d->tpm, secret, sizeof(secret), mask, &blob, &blob_len, err, sizeof(err));
	OPENSSL_cleanse(secret, sizeof(secret));
	if (rc != HOST_TPM_OK) {
		st = reply_fail(r, MGR_ERR_HOST_TPM, "%s", err);
		goto out;
	}
	if (blob_len > STORE_BLOB_MAX) {
		st = reply_fail(r, MGR_ERR_INTERNAL, "the sealed blob is too large");
		goto out;
	}
	memcpy(h->sealed_root, blob, blob_len);
	h->sealed_root_len = blob_len;
	h->pcr_mask = mask;
	rc = store_host_put(d->store, &a, h);
	r->audited = rc == STORE_OK || reply_store_status(rc) != MGR_ERR_STORE;
	if (rc != STORE_OK) {
		st = reply_fail(r, reply_store_status(rc), "%s", store_errmsg(d->store));
		goto out;
	}
	d->pcr_mask = mask;
	st = mgrd_write_end(d, r);
	if (st == MGR_OK) {
		log_info("root key re-sealed to the current values of PCR mask 0x%06x", mask);
		mgr_put_u32(&r->b, MGR_F_PCR_MASK, mask);
	}
out:
	free(blob);
	free(h);
	return st;
}

/* ---- signed policies (docs/vtpmmgrd.8, SIGNED POLICIES) ------------------------------- */

/* The host record and its change's audit row, one transaction. */
static uint32_t policy_commit(struct mgrd *d, const struct requester *who,
			      const struct store_host *h, const char *note, struct mgr_reply *r)
{
	struct store_actor a = actor_of(who);
	int rc = store_host_change(d->store, &a, "host-policy", note, h);

	r->audited = rc == STORE_OK || reply_store_status(rc) != MGR_ERR_STORE;
	if (rc != STORE_OK)
		return reply_fail(r, reply_store_status(rc), "%s", store_errmsg(d->store));
	return mgrd_write_end(d, r);
}

/* The host record for a policy request (NULL: failed, in r). */
static struct store_host *policy_host(struct mgrd *d, struct mgr_reply *r, bool need_key)
{
	struct store_host *h = calloc(1, sizeof(*h));

	if (!h) {
		reply_fail(r, MGR_ERR_INTERNAL, "out of memory");
		return NULL;
	}
	if (store_host_get(d->store, h) != STORE_OK) {
		reply_fail(r, MGR_ERR_STORE, "%s", store_errmsg(d->store));
		free(h);
		return NULL;
	}
	if (need_key && (!h->policy_key_len || !h->sealed_auth_len || !h->policy_nv)) {
		reply_fail(r, MGR_ERR_NOT_FOUND,
			   "no policy key is installed (vtpmctl host policy install first)");
		free(h);
		return NULL;
	}
	return h;
}

static void free_host(struct store_host *h)
{
	if (h)
		OPENSSL_cleanse(h, sizeof(*h));
	free(h);
}

static uint32_t host_policy_install(struct mgrd *d, const struct requester *who,
				    const struct mgr_request *req, struct mgr_reply *r)
{
	const uint8_t *der = req->u.host_policy.data;
	size_t der_len = req->u.host_policy.len, blob_len = 0, nv_len = 0, dropped = 0;
	uint32_t idx = req->u.host_policy.nv_index, st;
	uint8_t secret[KEYS_ROOT_SECRET_LEN], nv_name[HOST_TPM_NAME_MAX];
	uint8_t want[HOST_POLICY_NAME_LEN], *blob = NULL;
	char desc[16], err[512], note[STORE_RESULT_MAX + 1];
	struct store_host *h = NULL;
	TPM2B_PUBLIC pub;
	uint64_t value = 0;
	bool defined = false;
	int rc;

	snprintf(r->subject, sizeof(r->subject), "host");
	st = mgrd_write_begin(d, r);
	if (st)
		return st;
	if (host_policy_key_public(der, der_len, &pub, desc, sizeof(desc), err, sizeof(err)) < 0)
		return reply_fail(r, MGR_ERR_MALFORMED, "policy key: %s", err);
	if (idx == d->rb.nv_index)
		return reply_fail(r, MGR_ERR_EXISTS,
				  "NV index 0x%08x is the store's rollback counter: choose another "
				  "revocation NV index",
				  idx);
	h = policy_host(d, r, false);
	if (!h)
		return r->status;
	if (h->policy_nv && h->policy_nv != idx) {
		st = reply_fail(r, MGR_ERR_EXISTS,
				"the revocation counter is NV index 0x%08x already (the stored "
				"policies are signed for it): install with --nv-index 0x%08x",
				h->policy_nv, h->policy_nv);
		goto out;
	}
	rc = host_tpm_counter_define(d->tpm, idx, 0, err, sizeof(err));
	if (rc == HOST_TPM_OK)
		defined = true;
	else if (rc != HOST_TPM_ERR_EXISTS) {
		st = reply_fail(r, MGR_ERR_HOST_TPM, "%s", err);
		goto out;
	}
	rc = host_tpm_counter_read(d->tpm, idx, &value, err, sizeof(err));
	if (rc == HOST_TPM_OK)
		rc = host_tpm_nv_name(d->tpm, idx, nv_name, &nv_len, err, sizeof(err));
	if (rc != HOST_TPM_OK) {
		st = reply_fail(r, MGR_ERR_HOST_TPM, "revocation counter: %s", err);
		goto out;
	}
	if (host_policy_nv_name(idx, want) < 0 || nv_len != sizeof(want) ||
	    memcmp(nv_name, want, sizeof(want)) != 0) {
		st = reply_fail(r, MGR_ERR_EXISTS,
				"NV index 0x%08x is defined, but not as a revocation counter "
				"(another program's index?): choose another --nv-index",
				idx);
		goto out;
	}
	keys_root_secret_encode(d->root_key, d->rb.offset, secret);
	rc = host_tpm_seal_authorized(d->tpm, secret, sizeof(secret), &pub, &blob, &blob_len, err,
				      sizeof(err));
	OPENSSL_cleanse(secret, sizeof(secret));
	if (rc != HOST_TPM_OK) {
		st = reply_fail(r, MGR_ERR_HOST_TPM, "%s", err);
		goto out;
	}
	if (blob_len > STORE_BLOB_MAX || der_len > STORE_BLOB_MAX) {
		st = reply_fail(r, MGR_ERR_INTERNAL, "the sealed blob is too large");
		goto out;
	}
	if (h->policy_key_len &&
	    (h->policy_key_len != der_len || memcmp(h->policy_key, der, der_len) != 0)) {
		/* signed with the previous key: they cannot open the new copy */
		const uint8_t *e;
		size_t n;

		while (host_policy_list_get(h->policies, h->policies_len, dropped, &e, &n) == 1)
			dropped++;
		h->policies_len = 0;
	}
	memcpy(h->policy_key, der, der_len);
	h->policy_key_len = der_len;
	memcpy(h->sealed_auth, blob, blob_len);
	h->sealed_auth_len = blob_len;
	h->policy_nv = idx;
	snprintf(note, sizeof(note),
		 "ok: policy key %s installed; revocation counter 0x%08x%s at %" PRIu64 "%s", desc,
		 idx, defined ? " defined," : "", value,
		 dropped ? "; the previous key's signed policies are removed" : "");
	st = policy_commit(d, who, h, note, r);
	if (st == MGR_OK) {
		d->policy_counter = value;
		d->policy_counter_known = true;
		log_info("policy key %s installed: a copy of the root key opens with policies it "
			 "signs (revocation counter 0x%08x at %" PRIu64 ")",
			 desc, idx, value);
		put_prop(&r->b, "policy_key", "%s", desc);
		mgr_put_u32(&r->b, MGR_F_NV_INDEX, idx);
		mgr_put_u64(&r->b, MGR_F_NV_VALUE, value);
		if (dropped)
			put_prop(&r->b, "policies_removed", "%zu", dropped);
	}
out:
	free(blob);
	free_host(h);
	return st;
}

static uint32_t host_policy_add(struct mgrd *d, const struct requester *who,
				const struct mgr_request *req, struct mgr_reply *r)
{
	const uint8_t *data = req->u.host_policy.data, *e;
	size_t len = req->u.host_policy.len, n = 0, count = 0, kept_len = 0, pruned = 0;
	char err[512], list[96], note[STORE_RESULT_MAX + 1];
	struct store_host *h = NULL;
	struct host_policy *p, *q = NULL;
	uint8_t *kept = NULL;
	uint64_t value = 0;
	uint32_t st;
	int rc;

	snprintf(r->subject, sizeof(r->subject), "host");
	st = mgrd_write_begin(d, r);
	if (st)
		return st;
	p = malloc(sizeof(*p));
	if (!p)
		return reply_fail(r, MGR_ERR_INTERNAL, "out of memory");
	if (host_policy_parse(data, len, p, err, sizeof(err)) < 0) {
		st = reply_fail(r, MGR_ERR_MALFORMED, "signed policy: %s", err);
		goto out;
	}
	h = policy_host(d, r, true);
	if (!h) {
		st = r->status;
		goto out;
	}
	if (p->nv_index != h->policy_nv) {
		st = reply_fail(r, MGR_ERR_MALFORMED,
				"signed policy: made for revocation NV index 0x%08x, but this "
				"host's is 0x%08x",
				p->nv_index, h->policy_nv);
		goto out;
	}
	if (host_policy_verify(h->policy_key, h->policy_key_len, p, err, sizeof(err)) < 0) {
		st = reply_fail(r, MGR_ERR_DENIED, "signed policy: %s", err);
		goto out;
	}
	rc = host_tpm_counter_read(d->tpm, h->policy_nv, &value, err, sizeof(err));
	if (rc != HOST_TPM_OK) {
		st = reply_fail(r, MGR_ERR_HOST_TPM, "revocation counter: %s", err);
		goto out;
	}
	d->policy_counter = value;
	d->policy_counter_known = true;
	if (value > p->serial) {
		st = reply_fail(r, MGR_ERR_DENIED,
				"signed policy: serial %" PRIu64
				" is revoked (the revocation counter is at %" PRIu64
				"): sign again with --serial %" PRIu64 " or higher",
				p->serial, value, value);
		goto out;
	}
	/* the stored ones, less those revoked (or unreadable): the new list */
	kept = malloc(STORE_BLOB_MAX);
	q = malloc(sizeof(*q));
	if (!kept || !q) {
		st = reply_fail(r, MGR_ERR_INTERNAL, "out of memory");
		goto out;
	}
	for (size_t i = 0;
	     (rc = host_policy_list_get(h->policies, h->policies_len, i, &e, &n)) == 1; i++) {
		if (n == len && memcmp(e, data, len) == 0) {
			put_prop(&r->b, "policy", "already stored");
			st = MGR_OK;
			goto out;
		}
		if (host_policy_parse(e, n, q, err, sizeof(err)) < 0 || q->serial < value) {
			pruned++;
			continue;
		}
		be16_put(kept + kept_len, (uint16_t)n);
		memcpy(kept + kept_len + 2, e, n);
		kept_len += 2 + n;
		count++;
	}
	if (rc < 0) {
		st = reply_fail(r, MGR_ERR_STORE, "the stored policy list is malformed");
		goto out;
	}
	memcpy(h->policies, kept, kept_len);
	h->policies_len = kept_len;
	if (count >= HOST_POLICY_LIST_MAX || h->policies_len + 2 + len > STORE_BLOB_MAX) {
		st = reply_fail(r, MGR_ERR_EXISTS,
				"%zu signed policies are stored, the most there is room for: "
				"revoke the old ones first (vtpmctl host policy revoke --below N)",
				count);
		goto out;
	}
	be16_put(h->policies + h->policies_len, (uint16_t)len);
	memcpy(h->policies + h->policies_len + 2, data, len);
	h->policies_len += 2 + len;
	pcr_text(p->mask, list, sizeof(list));
	snprintf(note, sizeof(note), "ok: signed policy serial %" PRIu64 " (PCRs %s) stored%s",
		 p->serial, list, pruned ? "; the revoked ones are removed" : "");
	st = policy_commit(d, who, h, note, r);
	if (st == MGR_OK) {
		log_info("signed policy serial %" PRIu64 " (PCRs %s) stored", p->serial, list);
		mgr_put_u64(&r->b, MGR_F_SERIAL, p->serial);
		mgr_put_u32(&r->b, MGR_F_PCR_MASK, p->mask);
	}
out:
	free(kept);
	free(q);
	free(p);
	free_host(h);
	return st;
}

#define REVOKE_MAX_STEPS 1000

static uint32_t host_policy_revoke(struct mgrd *d, const struct requester *who,
				   const struct mgr_request *req, struct mgr_reply *r)
{
	uint64_t below = req->u.host_policy.serial, value = 0, was;
	char err[512], note[STORE_RESULT_MAX + 1];
	struct store_host *h = NULL;
	struct host_policy *p = NULL;
	const uint8_t *e;
	size_t n, removed = 0;
	uint32_t st;
	int rc, tries = 0;

	snprintf(r->subject, sizeof(r->subject), "host");
	st = mgrd_write_begin(d, r);
	if (st)
		return st;
	h = policy_host(d, r, true);
	if (!h)
		return r->status;
	p = malloc(sizeof(*p));
	if (!p) {
		st = reply_fail(r, MGR_ERR_INTERNAL, "out of memory");
		goto out;
	}
	rc = host_tpm_counter_read(d->tpm, h->policy_nv, &value, err, sizeof(err));
	if (rc != HOST_TPM_OK) {
		st = reply_fail(r, MGR_ERR_HOST_TPM, "revocation counter: %s", err);
		goto out;
	}
	was = value;
	if (below > value && below - value > REVOKE_MAX_STEPS) {
		st = reply_fail(r, MGR_ERR_MALFORMED,
				"revoking below %" PRIu64 " takes %" PRIu64
				" increments of the revocation counter (at %" PRIu64
				"); at most %d per request",
				below, below - value, value, REVOKE_MAX_STEPS);
		goto out;
	}
	while (value < below) {
		rc = host_tpm_counter_increment(d->tpm, h->policy_nv, &value, err, sizeof(err));
		if (rc == HOST_TPM_ERR_BUSY && ++tries < 200) {
			nanosleep(&(struct timespec){.tv_nsec = 50 * 1000 * 1000}, NULL);
			continue;
		}
		if (rc != HOST_TPM_OK) {
			d->policy_counter_known = false;
			st = reply_fail(r, MGR_ERR_HOST_TPM,
					"revocation counter (at %" PRIu64
					" before this request): %s",
					was, err);
			goto out;
		}
	}
	d->policy_counter = value;
	d->policy_counter_known = true;
	/* The stored policies it revoked stay (the TPM refuses them; status shows them
	 * revoked) until an add needs their room. */
	for (size_t i = 0; host_policy_list_get(h->policies, h->policies_len, i, &e, &n) == 1; i++)
		if (host_policy_parse(e, n, p, err, sizeof(err)) == 0 && p->serial < value)
			removed++;
	snprintf(note, sizeof(note),
		 "ok: revocation counter 0x%08x at %" PRIu64 " (was %" PRIu64
		 "): signed policies with a serial below %" PRIu64 " are revoked (%zu of the "
		 "stored ones)",
		 h->policy_nv, value, was, value, removed);
	st = policy_commit(d, who, h, note, r);
	if (st == MGR_OK) {
		log_info("signed policies with a serial below %" PRIu64
			 " revoked (revocation counter 0x%08x at %" PRIu64 ", was %" PRIu64 ")",
			 value, h->policy_nv, value, was);
		mgr_put_u32(&r->b, MGR_F_NV_INDEX, h->policy_nv);
		mgr_put_u64(&r->b, MGR_F_NV_VALUE, value);
		mgr_put_u32(&r->b, MGR_F_COUNT, (uint32_t)removed);
	}
out:
	free(p);
	free_host(h);
	return st;
}

/* host status: the policy key, the stored policies and the revocation counter; with PCR
 * values (pv mask non-zero), whether a stored signed policy opens the authorized copy with
 * them (*ok) and why not (note). No TPM command: the counter as last read. */
static void policy_status(struct mgrd *d, const struct store_host *h,
			  const struct req_pcr_values *pv, struct mgr_builder *b, int *ok,
			  char *note, size_t cap)
{
	struct host_policy *p;
	TPM2B_PUBLIC pub;
	char desc[16], err[256], list[96], all[MGR_MAX_TEXT / 2], why[MGR_MAX_TEXT / 2];
	const uint8_t *e;
	size_t n, pos = 0, wpos = 0;
	uint32_t differ, missing;

	*ok = 0;
	snprintf(note, cap, "no policy key is installed");
	if (!h->policy_key_len) {
		put_prop(b, "policy_key", "none");
		return;
	}
	if (host_policy_key_public(h->policy_key, h->policy_key_len, &pub, desc, sizeof(desc), err,
				   sizeof(err)) < 0)
		snprintf(desc, sizeof(desc), "unreadable");
	put_prop(b, "policy_key", "%s", desc);
	put_prop(b, "policy_nv_index", "0x%08x", h->policy_nv);
	if (d->policy_counter_known)
		put_prop(b, "policy_counter", "%" PRIu64, d->policy_counter);
	else
		put_prop(b, "policy_counter", "unknown");
	p = malloc(sizeof(*p));
	if (!p)
		return;
	all[0] = why[0] = '\0';
	for (size_t i = 0; host_policy_list_get(h->policies, h->policies_len, i, &e, &n) == 1;
	     i++) {
		if (host_policy_parse(e, n, p, err, sizeof(err)) < 0) {
			pos +=
			    (size_t)snprintf(all + pos, pos < sizeof(all) ? sizeof(all) - pos : 0,
					     "%sunreadable (%s)", i ? ", " : "", err);
			continue;
		}
		pcr_text(p->mask, list, sizeof(list));
		if (pos < sizeof(all))
			pos += (size_t)snprintf(
			    all + pos, sizeof(all) - pos, "%sserial %" PRIu64 " (PCRs %s)%s",
			    i ? ", " : "", p->serial, list,
			    d->policy_counter_known && d->policy_counter > p->serial ? " revoked"
										     : "");
		if (!pv->mask || *ok)
			continue;
		differ = missing = 0;
		for (unsigned k = 0; k < HOST_TPM_PCRS; k++) {
			if (!(p->mask & (1u << k)))
				continue;
			if (!(pv->mask & (1u << k)))
				missing |= 1u << k;
			else if (CRYPTO_memcmp(p->values[k], pv->values[k], 32) != 0)
				differ |= 1u << k;
		}
		if (!differ && !missing &&
		    !(d->policy_counter_known && d->policy_counter > p->serial)) {
			*ok = 1;
			snprintf(note, cap, "signed policy serial %" PRIu64 " (PCRs %s) unseals",
				 p->serial, list);
			continue;
		}
		if (wpos < sizeof(why)) {
			char dl[96];

			pcr_text(differ | missing, dl, sizeof(dl));
			wpos += (size_t)snprintf(why + wpos, sizeof(why) - wpos,
						 "%sserial %" PRIu64 ": %s", wpos ? "; " : "",
						 p->serial, differ || missing ? "" : "revoked");
			if (differ || missing)
				wpos += (size_t)snprintf(
				    why + wpos, wpos < sizeof(why) ? sizeof(why) - wpos : 0,
				    "PCR%s %s differ%s or missing",
				    (differ | missing) & ((differ | missing) - 1) ? "s" : "", dl,
				    (differ | missing) & ((differ | missing) - 1) ? "" : "s");
		}
	}
	put_prop(b, "policies", "%s", all[0] ? all : "none");
	if (pv->mask && !*ok)
		snprintf(note, cap, "%s", why[0] ? why : "no signed policy is stored");
	free(p);
}

/* ---- groups --------------------------------------------------------------------------- */

static void put_group(struct mgrd *d, struct mgr_builder *b, const struct store_group *g)
{
	size_t i;

	mgr_put_bytes(b, MGR_F_GROUP_UUID, g->uuid, 16);
	reply_text(b, MGR_F_NAME, g->name);
	for (i = 0; i < g->npatterns; i++)
		reply_text(b, MGR_F_PATTERN, g->patterns[i]);
	if (g->any_digest)
		mgr_put_flag(b, MGR_F_ANY_DIGEST);
	for (i = 0; i < g->ndigests; i++)
		mgr_put_bytes(b, MGR_F_BIN_DIGEST, g->digests[i], 32);
	mgr_put_u64(b, MGR_F_TIME, (uint64_t)g->created);
	mgr_put_u32(b, MGR_F_VTPMS, vtpms_of_group(d, g->uuid));
}

/* Look up a group by name or UUID into g; a failure is set in r. */
static uint32_t find_group(struct mgrd *d, const struct req_group_ref *ref, struct store_group *g,
			   struct mgr_reply *r)
{
	char u[37];
	int rc;

	if (ref->by_uuid)
		rc = store_group_get(d->store, ref->uuid, g);
	else
		rc = store_group_get_by_name(d->store, ref->name, g);
	if (rc == STORE_NOT_FOUND) {
		uuid_format(ref->uuid, u);
		if (ref->by_uuid)
			return reply_fail(r, MGR_ERR_NOT_FOUND, "no group with UUID %s", u);
		return reply_fail(r, MGR_ERR_NOT_FOUND, "no group named '%s'", ref->name);
	}
	if (rc != STORE_OK)
		return reply_fail(r, MGR_ERR_STORE, "%s", store_errmsg(d->store));
	return MGR_OK;
}

static void subject_of_ref(const struct req_group_ref *ref, struct mgr_reply *r)
{
	char u[37];

	if (ref->by_uuid) {
		uuid_format(ref->uuid, u);
		snprintf(r->subject, sizeof(r->subject), "group %s", u);
	} else {
		snprintf(r->subject, sizeof(r->subject), "group %s", ref->name);
	}
}

static uint32_t group_create(struct mgrd *d, const struct requester *who,
			     const struct mgr_request *req, struct mgr_reply *r)
{
	struct store_actor a = actor_of(who);
	struct store_group *g;
	uint8_t gk[KEYS_KEY_LEN];
	char err[256];
	uint32_t st;
	size_t i;
	int rc;

	snprintf(r->subject, sizeof(r->subject), "%s", req->u.group_create.name);
	st = mgrd_write_begin(d, r);
	if (st)
		return st;
	g = calloc(1, sizeof(*g));
	if (!g)
		return reply_fail(r, MGR_ERR_INTERNAL, "out of memory");
	snprintf(g->name, sizeof(g->name), "%s", req->u.group_create.name);
	g->any_digest = req->u.group_create.any_digest;
	g->npatterns = req->u.group_create.npatterns;
	for (i = 0; i < g->npatterns; i++)
		snprintf(g->patterns[i], sizeof(g->patterns[i]), "%s",
			 req->u.group_create.patterns[i]);
	g->ndigests = req->u.group_create.ndigests;
	memcpy(g->digests, req->u.group_create.digests, g->ndigests * 32);
	if (keys_uuid_v4(g->uuid, err, sizeof(err)) < 0 || keys_random(gk, err, sizeof(err)) < 0 ||
	    keys_wrap_group(d->root_key, g->uuid, gk, g->wrapped_key, err, sizeof(err)) < 0) {
		OPENSSL_cleanse(gk, sizeof(gk));
		free(g);
		return reply_fail(r, MGR_ERR_INTERNAL, "%s", err);
	}
	OPENSSL_cleanse(gk, sizeof(gk));
	g->wrapped_key_len = KEYS_WRAPPED_LEN;
	rc = store_group_add(d->store, &a, g);
	r->audited = reply_store_status(rc) != MGR_ERR_STORE;
	if (rc != STORE_OK) {
		st = reply_fail(r, reply_store_status(rc), "%s", store_errmsg(d->store));
		free(g);
		return st;
	}
	st = mgrd_write_end(d, r);
	if (st == MGR_OK) {
		mgr_put_bytes(&r->b, MGR_F_GROUP_UUID, g->uuid, 16);
		reply_text(&r->b, MGR_F_NAME, g->name);
	}
	free(g);
	return st;
}

struct list_ctx {
	struct mgrd *d;
	struct mgr_builder *b;
	uint32_t skip;
	bool more;
};

static int list_group(const struct store_group *g, void *arg)
{
	struct list_ctx *l = arg;
	size_t saved;

	if (l->skip > 0) {
		l->skip--;
		return STORE_OK;
	}
	saved = reply_record_begin(l->b);
	put_group(l->d, l->b, g);
	if (!reply_record_end(l->b, saved)) {
		l->more = true;
		return STORE_CALLBACK_STOP;
	}
	return STORE_OK;
}

/* Reserve room for the closing MORE flag while records are added. */
#define LIST_RESERVE 8

static uint32_t group_list(struct mgrd *d, const struct mgr_request *req, struct mgr_reply *r)
{
	struct list_ctx l = {d, &r->b, req->u.list.offset, false};
	int rc;

	snprintf(r->subject, sizeof(r->subject), "groups");
	r->b.cap -= LIST_RESERVE;
	rc = store_group_list(d->store, list_group, &l);
	r->b.cap += LIST_RESERVE;
	if (rc != STORE_OK && rc != STORE_CALLBACK_STOP)
		return reply_fail(r, MGR_ERR_STORE, "%s", store_errmsg(d->store));
	if (l.more)
		mgr_put_flag(&r->b, MGR_F_MORE);
	return MGR_OK;
}

static uint32_t group_show(struct mgrd *d, const struct mgr_request *req, struct mgr_reply *r)
{
	struct store_group *g = calloc(1, sizeof(*g));
	uint32_t st;
	size_t saved;

	subject_of_ref(&req->u.group, r);
	if (!g)
		return reply_fail(r, MGR_ERR_INTERNAL, "out of memory");
	st = find_group(d, &req->u.group, g, r);
	if (st == MGR_OK) {
		saved = reply_record_begin(&r->b);
		put_group(d, &r->b, g);
		if (!reply_record_end(&r->b, saved))
			st = reply_fail(r, MGR_ERR_INTERNAL, "the group does not fit in a message");
	}
	free(g);
	return st;
}

static uint32_t group_delete(struct mgrd *d, const struct requester *who,
			     const struct mgr_request *req, struct mgr_reply *r)
{
	struct store_actor a = actor_of(who);
	struct store_group *g = calloc(1, sizeof(*g));
	uint32_t st;
	int rc;

	subject_of_ref(&req->u.group, r);
	if (!g)
		return reply_fail(r, MGR_ERR_INTERNAL, "out of memory");
	st = mgrd_write_begin(d, r);
	if (st == MGR_OK)
		st = find_group(d, &req->u.group, g, r);
	if (st == MGR_OK) {
		rc = store_group_delete(d->store, &a, g->name);
		r->audited = reply_store_status(rc) != MGR_ERR_STORE;
		if (rc != STORE_OK)
			st = reply_fail(r, reply_store_status(rc), "%s", store_errmsg(d->store));
		else
			st = mgrd_write_end(d, r);
	}
	free(g);
	return st;
}

/* ---- vTPMs ---------------------------------------------------------------------------- */

static void put_vtpm(struct mgrd *d, struct mgr_builder *b, const struct store_vtpm *v,
		     const char *group_name)
{
	struct instance *in = instances_find(&d->inst, v->uuid);

	mgr_put_bytes(b, MGR_F_UUID, v->uuid, 16);
	mgr_put_bytes(b, MGR_F_GROUP_UUID, v->group_uuid, 16);
	if (group_name)
		reply_text(b, MGR_F_NAME, group_name);
	mgr_put_u64(b, MGR_F_VERSION, v->version);
	mgr_put_bytes(b, MGR_F_DIGEST, v->digest, 32);
	reply_text(b, MGR_F_STATE, v->state);
	mgr_put_u64(b, MGR_F_TIME, (uint64_t)v->created);
	mgr_put_u32(b, MGR_F_OPEN, in ? 1 : 0);
	/* the guest identity it belongs to ("" until the first open binds it) */
	mgr_put_text(b, MGR_F_KEY, "bound_label");
	reply_text(b, MGR_F_VALUE, v->bound_label[0] ? v->bound_label : "(unbound)");
	if (in) {
		mgr_put_u32(b, MGR_F_PID, (uint32_t)in->pid);
		reply_text(b, MGR_F_LABEL, in->label);
		mgr_put_bytes(b, MGR_F_BIN_DIGEST, in->bin_digest, 32);
	}
}

struct vlist_ctx {
	struct mgrd *d;
	struct mgr_builder *b;
	uint32_t skip;
	bool more;
	struct store_group *g; /* the group of the last vTPM (name lookup cache) */
	bool have_g;
};

static const char *group_name_of(struct vlist_ctx *l, const uint8_t uuid[16])
{
	if (l->have_g && memcmp(l->g->uuid, uuid, 16) == 0)
		return l->g->name;
	l->have_g = store_group_get(l->d->store, uuid, l->g) == STORE_OK;
	return l->have_g ? l->g->name : NULL;
}

static int list_vtpm(const struct store_vtpm *v, void *arg)
{
	struct vlist_ctx *l = arg;
	size_t saved;

	if (l->skip > 0) {
		l->skip--;
		return STORE_OK;
	}
	saved = reply_record_begin(l->b);
	put_vtpm(l->d, l->b, v, group_name_of(l, v->group_uuid));
	if (!reply_record_end(l->b, saved)) {
		l->more = true;
		return STORE_CALLBACK_STOP;
	}
	return STORE_OK;
}

static uint32_t vtpm_create(struct mgrd *d, const struct requester *who,
			    const struct mgr_request *req, struct mgr_reply *r)
{
	struct store_actor a = actor_of(who);
	struct store_group *g = calloc(1, sizeof(*g));
	struct store_vtpm v;
	uint8_t gk[KEYS_KEY_LEN], sk[KEYS_KEY_LEN];
	char err[256], u[37];
	uint32_t st;
	int rc;

	subject_of_ref(&req->u.group, r);
	if (!g)
		return reply_fail(r, MGR_ERR_INTERNAL, "out of memory");
	memset(&v, 0, sizeof(v));
	st = mgrd_write_begin(d, r);
	if (st == MGR_OK)
		st = find_group(d, &req->u.group, g, r);
	if (st != MGR_OK)
		goto out;
	if (keys_unwrap_group(d->root_key, g->uuid, g->wrapped_key, g->wrapped_key_len, gk, err,
			      sizeof(err)) < 0 ||
	    keys_uuid_v4(v.uuid, err, sizeof(err)) < 0 || keys_random(sk, err, sizeof(err)) < 0 ||
	    keys_wrap_state(gk, v.uuid, g->uuid, sk, v.wrapped_key, err, sizeof(err)) < 0) {
		st = reply_fail(r, MGR_ERR_INTERNAL, "group '%s': %s", g->name, err);
		goto out;
	}
	memcpy(v.group_uuid, g->uuid, 16);
	v.wrapped_key_len = KEYS_WRAPPED_LEN;
	v.version = 0;
	snprintf(v.state, sizeof(v.state), "%s", STORE_VTPM_CREATED);
	if (req->has_label)
		snprintf(v.bound_label, sizeof(v.bound_label), "%s", req->label);
	uuid_format(v.uuid, u);
	snprintf(r->subject, sizeof(r->subject), "%s", u);
	rc = store_vtpm_add(d->store, &a, &v);
	r->audited = reply_store_status(rc) != MGR_ERR_STORE;
	if (rc != STORE_OK) {
		st = reply_fail(r, reply_store_status(rc), "%s", store_errmsg(d->store));
		goto out;
	}
	st = mgrd_write_end(d, r);
	if (st == MGR_OK) {
		mgr_put_bytes(&r->b, MGR_F_UUID, v.uuid, 16);
		mgr_put_bytes(&r->b, MGR_F_GROUP_UUID, g->uuid, 16);
		reply_text(&r->b, MGR_F_NAME, g->name);
	}
out:
	OPENSSL_cleanse(gk, sizeof(gk));
	OPENSSL_cleanse(sk, sizeof(sk));
	OPENSSL_cleanse(&v, sizeof(v));
	free(g);
	return st;
}

static uint32_t vtpm_list(struct mgrd *d, const struct mgr_request *req, struct mgr_reply *r)
{
	struct store_group *g = calloc(1, sizeof(*g));
	struct vlist_ctx l = {d, &r->b, req->u.list.offset, false, g, false};
	uint32_t st = MGR_OK;
	int rc;

	snprintf(r->subject, sizeof(r->subject), "vtpms");
	if (!g)
		return reply_fail(r, MGR_ERR_INTERNAL, "out of memory");
	if (req->u.list.has_group) {
		subject_of_ref(&req->u.list.group, r);
		st = find_group(d, &req->u.list.group, g, r);
		l.have_g = st == MGR_OK;
	}
	if (st == MGR_OK) {
		r->b.cap -= LIST_RESERVE;
		rc = store_vtpm_list(d->store, req->u.list.has_group ? g->uuid : NULL, list_vtpm,
				     &l);
		r->b.cap += LIST_RESERVE;
		if (rc != STORE_OK && rc != STORE_CALLBACK_STOP)
			st = reply_fail(r, MGR_ERR_STORE, "%s", store_errmsg(d->store));
		else if (l.more)
			mgr_put_flag(&r->b, MGR_F_MORE);
	}
	free(g);
	return st;
}

static uint32_t find_vtpm(struct mgrd *d, const uint8_t uuid[16], struct store_vtpm *v,
			  struct mgr_reply *r)
{
	int rc = store_vtpm_get(d->store, uuid, v);

	if (rc != STORE_OK)
		return reply_fail(r, reply_store_status(rc), "%s", store_errmsg(d->store));
	return MGR_OK;
}

static uint32_t vtpm_show(struct mgrd *d, const struct mgr_request *req, struct mgr_reply *r)
{
	struct store_group *g = calloc(1, sizeof(*g));
	struct vlist_ctx l = {d, &r->b, 0, false, g, false};
	struct store_vtpm v;
	uint32_t st;
	size_t saved;

	uuid_format(req->u.vtpm.uuid, r->subject);
	if (!g)
		return reply_fail(r, MGR_ERR_INTERNAL, "out of memory");
	st = find_vtpm(d, req->u.vtpm.uuid, &v, r);
	if (st == MGR_OK) {
		saved = reply_record_begin(&r->b);
		put_vtpm(d, &r->b, &v, group_name_of(&l, v.group_uuid));
		if (!reply_record_end(&r->b, saved))
			st = reply_fail(r, MGR_ERR_INTERNAL, "the vTPM does not fit in a message");
	}
	OPENSSL_cleanse(&v, sizeof(v));
	free(g);
	return st;
}

/* Before an admin change of vTPM uuid (its text in u): provisioned, and no instance has it
 * open. */
static uint32_t vtpm_change_begin(struct mgrd *d, const uint8_t uuid[16], char u[37],
				  struct mgr_reply *r)
{
	struct instance *in;
	uint32_t st;

	uuid_format(uuid, u);
	snprintf(r->subject, sizeof(r->subject), "%s", u);
	st = mgrd_write_begin(d, r);
	if (st)
		return st;
	in = instances_find(&d->inst, uuid);
	if (in)
		return reply_fail(r, MGR_ERR_BUSY,
				  "vTPM %s is open by pid %ld; stop that instance first", u,
				  (long)in->pid);
	return MGR_OK;
}

/* Bind a vTPM to another guest identity: the admin's explicit act (the first open binds
 * an unbound vTPM on its own, instance.c). Refused while an instance has it open. */
static uint32_t vtpm_rebind(struct mgrd *d, const struct requester *who,
			    const struct mgr_request *req, struct mgr_reply *r)
{
	struct store_actor a = actor_of(who);
	char u[37];
	uint32_t st;
	int rc;

	st = vtpm_change_begin(d, req->u.vtpm.uuid, u, r);
	if (st)
		return st;
	rc = store_vtpm_bind(d->store, &a, req->u.vtpm.uuid, req->label);
	r->audited = reply_store_status(rc) != MGR_ERR_STORE;
	if (rc != STORE_OK)
		return reply_fail(r, reply_store_status(rc), "%s", store_errmsg(d->store));
	log_info("vTPM %s bound to %s by uid %lu", u, req->label, (unsigned long)a.uid);
	return mgrd_write_end(d, r);
}

static uint32_t vtpm_delete(struct mgrd *d, const struct requester *who,
			    const struct mgr_request *req, struct mgr_reply *r)
{
	struct store_actor a = actor_of(who);
	uint32_t st;
	char u[37], msg[256];
	int rc;

	st = vtpm_change_begin(d, req->u.vtpm.uuid, u, r);
	if (st)
		return st;
	rc = store_vtpm_delete(d->store, &a, req->u.vtpm.uuid);
	r->audited = reply_store_status(rc) != MGR_ERR_STORE;
	if (rc != STORE_OK)
		return reply_fail(r, reply_store_status(rc), "%s", store_errmsg(d->store));
	st = mgrd_write_end(d, r);
	if (st == MGR_OK) {
		snprintf(msg, sizeof(msg),
			 "vTPM %s deleted: its state key is destroyed, so its state file is now "
			 "unreadable",
			 u);
		reply_text(&r->b, MGR_F_MESSAGE, msg);
	}
	return st;
}

/* ---- labels, audit -------------------------------------------------------------------- */

static uint32_t label_register(struct mgrd *d, const struct mgr_request *req, struct mgr_reply *r)
{
	char err[256];
	int replaced;

	snprintf(r->subject, sizeof(r->subject), "pid %u", req->u.label_reg.pid);
	char u[37] = "";

	if (req->u.label_reg.has_uuid)
		uuid_format(req->u.label_reg.uuid, u);
	if (labels_register(&d->labels, (pid_t)req->u.label_reg.pid, req->u.label_reg.label,
			    req->u.label_reg.has_uuid ? req->u.label_reg.uuid : NULL, &replaced,
			    err, sizeof(err)) < 0)
		return reply_fail(r, MGR_ERR_NOT_FOUND, "%s", err);
	snprintf(r->note, sizeof(r->note), "label %.200s%s%s%s", req->u.label_reg.label,
		 u[0] ? " for vTPM " : "", u, replaced ? " (replaces the earlier one)" : "");
	log_info("label %s registered for pid %u", req->u.label_reg.label, req->u.label_reg.pid);
	return MGR_OK;
}

struct audit_ctx {
	struct mgr_builder *b;
	uint32_t skip;
	bool more;
};

static int list_audit(const struct store_audit *e, void *arg)
{
	struct audit_ctx *l = arg;
	size_t saved;

	if (l->skip > 0) {
		l->skip--;
		return STORE_OK;
	}
	saved = reply_record_begin(l->b);

	mgr_put_u64(l->b, MGR_F_AUDIT_ID, (uint64_t)e->id);
	mgr_put_u64(l->b, MGR_F_TIME, (uint64_t)e->time);
	mgr_put_u32(l->b, MGR_F_UID, e->uid);
	mgr_put_u32(l->b, MGR_F_PID, e->pid);
	reply_text(l->b, MGR_F_ACTION, e->action);
	reply_text(l->b, MGR_F_SUBJECT, e->subject);
	reply_text(l->b, MGR_F_RESULT, e->result);
	if (!reply_record_end(l->b, saved)) {
		l->more = true;
		return STORE_CALLBACK_STOP;
	}
	return STORE_OK;
}

static uint32_t audit_list(struct mgrd *d, const struct mgr_request *req, struct mgr_reply *r)
{
	struct audit_ctx l = {&r->b, req->u.audit.offset, false};
	int rc;

	snprintf(r->subject, sizeof(r->subject), "audit");
	r->b.cap -= LIST_RESERVE;
	rc = store_audit_list(d->store, req->u.audit.count + req->u.audit.offset, list_audit, &l);
	r->b.cap += LIST_RESERVE;
	if (rc != STORE_OK && rc != STORE_CALLBACK_STOP)
		return reply_fail(r, MGR_ERR_STORE, "%s", store_errmsg(d->store));
	if (l.more)
		mgr_put_flag(&r->b, MGR_F_MORE);
	return MGR_OK;
}

/* ---- dispatch ------------------------------------------------------------------------- */

void admin_handle(struct mgrd *d, const struct requester *who, const struct mgr_request *req,
		  struct mgr_reply *r)
{
	/* Before provisioning only host-init, host-status and audit-list have anything to do. */
	if (!d->provisioned && req->type != MGR_HOST_INIT && req->type != MGR_HOST_STATUS &&
	    req->type != MGR_AUDIT_LIST && req->type != MGR_LABEL_REGISTER) {
		reply_fail(r, MGR_ERR_NOT_PROVISIONED,
			   "the host is not provisioned: host-init first");
		return;
	}
	switch (req->type) {
	case MGR_HOST_INIT:
		host_init(d, who, req, r);
		break;
	case MGR_HOST_STATUS:
		host_status(d, req, r);
		break;
	case MGR_HOST_RESEAL:
		host_reseal(d, who, req, r);
		break;
	case MGR_HOST_POLICY_INSTALL:
		host_policy_install(d, who, req, r);
		break;
	case MGR_HOST_POLICY_ADD:
		host_policy_add(d, who, req, r);
		break;
	case MGR_HOST_POLICY_REVOKE:
		host_policy_revoke(d, who, req, r);
		break;
	case MGR_GROUP_CREATE:
		group_create(d, who, req, r);
		break;
	case MGR_GROUP_LIST:
		group_list(d, req, r);
		break;
	case MGR_GROUP_SHOW:
		group_show(d, req, r);
		break;
	case MGR_GROUP_DELETE:
		group_delete(d, who, req, r);
		break;
	case MGR_VTPM_CREATE:
		vtpm_create(d, who, req, r);
		break;
	case MGR_VTPM_LIST:
		vtpm_list(d, req, r);
		break;
	case MGR_VTPM_SHOW:
		vtpm_show(d, req, r);
		break;
	case MGR_VTPM_REBIND:
		vtpm_rebind(d, who, req, r);
		break;
	case MGR_VTPM_DELETE:
		vtpm_delete(d, who, req, r);
		break;
	case MGR_LABEL_REGISTER:
		label_register(d, req, r);
		break;
	case MGR_AUDIT_LIST:
		audit_list(d, req, r);
		break;
	default:
		reply_fail(r, MGR_ERR_UNKNOWN_TYPE, "%s is not served on the admin socket",
			   mgr_request_name(req->type));
		break;
	}
}
