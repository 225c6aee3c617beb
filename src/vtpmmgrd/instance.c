/*
 * instance.c — the instance socket's requests (vtpmd): MGR_OPEN, MGR_COMMIT, MGR_CLOSE.
 *
 * MGR_OPEN hands out a vTPM's state key only to a live peer whose label matches a pattern
 * of the vTPM's group and whose binary digest the group permits, and only while no other
 * live process has the vTPM open. It costs no host TPM command: the root key was unsealed
 * at start. Each open and each refusal is audited with a precise reason.
 * MGR_COMMIT records a new (version, digest) from the process that opened the vTPM; the
 * store write and the NV increment are done before the answer (durable before answered).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "vtpmmgrd/manager.h"
#include "vtpmmgrd/store.h"

static void hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/* The per-message sender must be the process that connected (a passed-on socket is not). */
static uint32_t check_sender(const struct requester *who, struct mgr_reply *r)
{
	if (who->sender_pid != who->peer->pid)
		return reply_fail(r, MGR_ERR_DENIED,
				  "the message was sent by pid %ld, but the connection belongs to "
				  "pid %ld",
				  (long)who->sender_pid, (long)who->peer->pid);
	if (!peer_alive(who->peer->pidfd))
		return reply_fail(r, MGR_ERR_DENIED, "pid %ld has exited", (long)who->peer->pid);
	return MGR_OK;
}

static uint32_t do_open(struct mgrd *d, const struct requester *who, const uint8_t uuid[16],
			struct mgr_reply *r)
{
	const struct peer *p = who->peer;
	struct store_group *g = NULL;
	struct store_vtpm v;
	struct instance *in;
	uint8_t bin[32], gk[KEYS_KEY_LEN], sk[KEYS_KEY_LEN];
	char u[37], binhex[65], err[512];
	const char *label;
	uint32_t st;
	size_t i;
	bool ok;
	int rc;

	uuid_format(uuid, u);
	memset(&v, 0, sizeof(v));
	if (!d->provisioned)
		return reply_fail(r, MGR_ERR_NOT_PROVISIONED,
				  "the host is not provisioned: no vTPM can be opened");
	st = check_sender(who, r);
	if (st)
		return st;
	label = p->has_label && label_check(p->label, err, sizeof(err)) == 0 ? p->label : NULL;
	if (!label)
		label = labels_lookup(&d->labels, p->pid);
	if (!label) {
		if (p->has_label)
			return reply_fail(r, MGR_ERR_DENIED,
					  "no label: pid %ld has the LSM label '%.200s', which is "
					  "not user:role:type, and none was registered for it",
					  (long)p->pid, p->label);
		return reply_fail(r, MGR_ERR_DENIED,
				  "no label: pid %ld has no LSM label (SO_PEERSEC) and none was "
				  "registered for it (label-register)",
				  (long)p->pid);
	}
	if (peer_exe_digest(p, bin, err, sizeof(err)) < 0)
		return reply_fail(r, MGR_ERR_DENIED, "pid %ld: %s", (long)p->pid, err);
	hex(bin, 32, binhex);
	rc = store_vtpm_get(d->store, uuid, &v);
	if (rc != STORE_OK)
		return reply_fail(r, reply_store_status(rc), "%s", store_errmsg(d->store));
	if (strcmp(v.state, STORE_VTPM_CREATED) != 0) {
		st = reply_fail(r, MGR_ERR_DENIED, "vTPM %s is in state '%s' and cannot be opened",
				u, v.state);
		goto out;
	}
	g = calloc(1, sizeof(*g));
	if (!g) {
		st = reply_fail(r, MGR_ERR_INTERNAL, "out of memory");
		goto out;
	}
	if (store_group_get(d->store, v.group_uuid, g) != STORE_OK) {
		st = reply_fail(r, MGR_ERR_STORE, "the group of vTPM %s: %s", u,
				store_errmsg(d->store));
		goto out;
	}
	for (i = 0, ok = false; i < g->npatterns && !ok; i++)
		ok = label_match(g->patterns[i], label);
	if (!ok) {
		st = reply_fail(r, MGR_ERR_DENIED, "label %.200s matches no pattern of group %s",
				label, g->name);
		goto out;
	}
	for (i = 0, ok = g->any_digest; i < g->ndigests && !ok; i++)
		ok = CRYPTO_memcmp(g->digests[i], bin, 32) == 0;
	if (!ok) {
		st = reply_fail(r, MGR_ERR_DENIED,
				"binary digest %s of pid %ld is not permitted by group %s", binhex,
				(long)p->pid, g->name);
		goto out;
	}
	in = instances_find(&d->inst, uuid);
	if (in && in->pid != p->pid) {
		st = reply_fail(r, MGR_ERR_BUSY,
				"vTPM %s is open by another live instance (pid %ld)", u,
				(long)in->pid);
		goto out;
	}
	if (keys_unwrap_group(d->root_key, g->uuid, g->wrapped_key, g->wrapped_key_len, gk, err,
			      sizeof(err)) < 0 ||
	    keys_unwrap_state(gk, uuid, g->uuid, v.wrapped_key, v.wrapped_key_len, sk, err,
			      sizeof(err)) < 0) {
		st = reply_fail(r, MGR_ERR_INTERNAL, "vTPM %s: %s", u, err);
		goto out;
	}
	if (instances_add(&d->inst, uuid, p->pid, p->uid, p->pidfd, label, bin, err, sizeof(err)) <
	    0) {
		st = reply_fail(r, MGR_ERR_BUSY, "vTPM %s: %s", u, err);
		goto out;
	}
	mgr_put_bytes(&r->b, MGR_F_STATE_KEY, sk, sizeof(sk));
	mgr_put_u64(&r->b, MGR_F_VERSION, v.version);
	mgr_put_bytes(&r->b, MGR_F_DIGEST, v.digest, 32);
	mgr_put_bytes(&r->b, MGR_F_GROUP_UUID, g->uuid, 16);
	snprintf(r->note, sizeof(r->note), "ok: pid %ld, label %.100s, group %s, binary %.16s...",
		 (long)p->pid, label, g->name, binhex);
	log_info("vTPM %s opened by pid %ld (label %s, group %s)", u, (long)p->pid, label, g->name);
	st = MGR_OK;
out:
	OPENSSL_cleanse(gk, sizeof(gk));
	OPENSSL_cleanse(sk, sizeof(sk));
	OPENSSL_cleanse(&v, sizeof(v));
	if (g)
		OPENSSL_cleanse(g, sizeof(*g));
	free(g);
	return st;
}

/* The instance that opened uuid must be the requester's live process. */
static uint32_t own_instance(struct mgrd *d, const struct requester *who, const uint8_t uuid[16],
			     struct mgr_reply *r)
{
	struct instance *in;
	char u[37];
	uint32_t st = check_sender(who, r);

	if (st)
		return st;
	uuid_format(uuid, u);
	in = instances_find(&d->inst, uuid);
	if (!in)
		return reply_fail(r, MGR_ERR_DENIED, "vTPM %s is not open (MGR_OPEN first)", u);
	if (in->pid != who->peer->pid)
		return reply_fail(r, MGR_ERR_DENIED, "vTPM %s is open by pid %ld, not by pid %ld",
				  u, (long)in->pid, (long)who->peer->pid);
	return MGR_OK;
}

static uint32_t do_commit(struct mgrd *d, const struct requester *who,
			  const struct mgr_request *req, struct mgr_reply *r)
{
	uint32_t st = own_instance(d, who, req->u.inst.uuid, r);
	int rc;

	if (st)
		return st;
	st = mgrd_write_begin(d, r);
	if (st)
		return st;
	rc = store_vtpm_set_version(d->store, req->u.inst.uuid, req->u.inst.version,
				    req->u.inst.digest);
	if (rc != STORE_OK)
		return reply_fail(r, reply_store_status(rc), "%s", store_errmsg(d->store));
	st = mgrd_write_end(d, r);
	if (st == MGR_OK)
		r->no_audit = true; /* every TPM state write: not audited */
	return st;
}

static uint32_t do_close(struct mgrd *d, const struct requester *who, const struct mgr_request *req,
			 struct mgr_reply *r)
{
	uint32_t st = own_instance(d, who, req->u.inst.uuid, r);
	char u[37];

	if (st)
		return st;
	instances_remove(&d->inst, req->u.inst.uuid);
	uuid_format(req->u.inst.uuid, u);
	log_info("vTPM %s closed by pid %ld", u, (long)who->peer->pid);
	r->no_audit = true; /* the open was audited; a clean close is routine */
	return MGR_OK;
}

void instance_handle(struct mgrd *d, const struct requester *who, const struct mgr_request *req,
		     struct mgr_reply *r)
{
	uuid_format(req->u.inst.uuid, r->subject);
	switch (req->type) {
	case MGR_OPEN:
		do_open(d, who, req->u.inst.uuid, r);
		break;
	case MGR_COMMIT:
		do_commit(d, who, req, r);
		break;
	case MGR_CLOSE:
		do_close(d, who, req, r);
		break;
	default:
		reply_fail(r, MGR_ERR_UNKNOWN_TYPE, "%s is not served on the instance socket",
			   mgr_request_name(req->type));
		break;
	}
}

void instance_exited(const struct instance *in, void *arg)
{
	struct mgrd *d = arg;
	struct store_actor a = {.uid = (uint32_t)in->uid, .pid = (uint32_t)in->pid};
	char u[37];

	uuid_format(in->uuid, u);
	log_info("vTPM %s released: its instance (pid %ld) exited", u, (long)in->pid);
	if (store_audit_append(d->store, &a, "close", u, "ok: the instance exited") != STORE_OK)
		log_warnx("audit: %s", store_errmsg(d->store));
}
