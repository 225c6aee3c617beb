/*
 * instance.c — the instance socket's requests (vtpmd): MGR_OPEN, MGR_COMMIT, MGR_CLOSE.
 *
 * MGR_OPEN hands out a vTPM's state key only to a live peer whose label matches a pattern
 * of the vTPM's group and whose binary digest the group permits, and only while no other
 * live process has the vTPM open. It costs no host TPM command: the root key was unsealed
 * at start. Each open and each refusal is audited with a precise reason.
 * MGR_COMMIT records a new (version, digest) from the process that opened the vTPM; the
 * store write is durable before the answer (the host TPM counter catches up in the
 * background, rollback.h). A store that cannot be written now (disk full, I/O error) is
 * answered MGR_ERR_RETRY: vtpmd waits and sends it again, the guest never sees a failure.
 * MGR_RESUME takes back a running instance after a manager restart (instance_journal.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/aead.h"
#include "common/log.h"
#include "common/resume_proof.h"
#include "vtpmmgrd/instance_journal.h"
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

/* ---- the journal: who holds which vTPM, across a manager restart ---- */

static void entry_of(const struct instance *in, struct journal_entry *e)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->uuid, in->uuid, 16);
	e->pid = in->pid;
	e->start_ticks = in->start_ticks;
	e->uid = in->uid;
	memcpy(e->bin_digest, in->bin_digest, 32);
	snprintf(e->label, sizeof(e->label), "%s", in->label);
}

static int journal_note(struct mgrd *d, enum journal_kind kind, const struct instance *in,
			char *err, size_t errlen)
{
	struct journal_entry e, *v;
	size_t i;
	int rc;

	if (!d->journal)
		return 0;
	if (journal_wants_rewrite(d->journal, d->inst.n)) {
		v = calloc(d->inst.n ? d->inst.n : 1, sizeof(*v));
		if (!v) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		for (i = 0; i < d->inst.n; i++)
			entry_of(&d->inst.v[i], &v[i]);
		rc = journal_rewrite(d->journal, v, d->inst.n, err, errlen);
		free(v);
		return rc;
	}
	entry_of(in, &e);
	return journal_append(d->journal, kind, &e, err, errlen);
}

/* A journal entry of the manager before: take it back if its process still lives. */
static int journal_keep(const struct journal_entry *e, void *arg)
{
	struct mgrd *d = arg;
	struct instance *in;
	uint64_t ticks;
	char err[256], u[37];
	int pidfd;

	uuid_format(e->uuid, u);
	pidfd = peer_pin(e->pid, err, sizeof(err));
	if (pidfd < 0)
		return 0;
	/* pinned first, then compared: a reused pid has another start time */
	if (peer_start_ticks(e->pid, &ticks) < 0 || ticks != e->start_ticks || !peer_alive(pidfd)) {
		close(pidfd);
		return 0;
	}
	if (instances_add(&d->inst, e->uuid, e->pid, e->uid, pidfd, e->label, e->bin_digest, err,
			  sizeof(err)) < 0) {
		log_warnx("vTPM %s: cannot take back pid %ld: %s", u, (long)e->pid, err);
		close(pidfd);
		return 0;
	}
	close(pidfd);
	in = instances_find(&d->inst, e->uuid);
	in->start_ticks = e->start_ticks;
	in->detached = true;
	log_info("vTPM %s: held by pid %ld since before this start; waiting for it to resume", u,
		 (long)e->pid);
	return 1;
}

int instances_journal_open(struct mgrd *d, char *err, size_t errlen)
{
	char path[4096];

	if (snprintf(path, sizeof(path), "%s.instances", d->opts.instance_socket) >=
	    (int)sizeof(path)) {
		snprintf(err, errlen, "instance journal: path too long");
		return -1;
	}
	return journal_open(&d->journal, path, journal_keep, d, err, errlen);
}

void instances_journal_close(struct mgrd *d)
{
	journal_close(d->journal);
	d->journal = NULL;
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

/* What MGR_OPEN and MGR_RESUME both establish before a key is involved. */
struct admission {
	struct store_vtpm v;
	struct store_group *g;
	char label[LABEL_MAX + 1];
	uint8_t bin[32];
	struct peer_exe_id exe; /* the file bin is the digest of */
	char binhex[65];
	uint8_t sk[KEYS_KEY_LEN]; /* the vTPM's state key */
};

static void admission_clear(struct admission *a)
{
	if (a->g) {
		OPENSSL_cleanse(a->g, sizeof(*a->g));
		free(a->g);
	}
	OPENSSL_cleanse(a, sizeof(*a));
}

/*
 * The requester may hold vTPM uuid: it is the live sender, has a label (known_label: the
 * one recorded for it before a manager restart, else SO_PEERSEC or a registration) that
 * matches a pattern of the vTPM's group, and a binary digest the group permits. Fills a
 * (the caller clears it) and returns MGR_OK, or a refusal in r.
 */
static uint32_t admit(struct mgrd *d, const struct requester *who, const uint8_t uuid[16],
		      const char *known_label, struct admission *a, struct mgr_reply *r)
{
	const struct peer *p = who->peer;
	const struct label_reg *reg;
	uint8_t gk[KEYS_KEY_LEN];
	char u[37], err[512];
	const char *label = known_label;
	uint32_t st;
	size_t i;
	bool ok;
	int rc;

	uuid_format(uuid, u);
	if (!d->provisioned)
		return reply_fail(r, MGR_ERR_NOT_PROVISIONED,
				  "the host is not provisioned: no vTPM can be opened");
	st = check_sender(who, r);
	if (st)
		return st;
	if (!label && p->has_label && label_check(p->label, err, sizeof(err)) == 0)
		label = p->label;
	reg = labels_find(&d->labels, p->pid);
	if (reg && reg->has_uuid && memcmp(reg->uuid, uuid, 16) != 0) {
		char ru[37];

		uuid_format(reg->uuid, ru);
		return reply_fail(r, MGR_ERR_DENIED,
				  "pid %ld was registered for vTPM %s and may open no other",
				  (long)p->pid, ru);
	}
	if (!label && reg)
		label = reg->label;
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
	snprintf(a->label, sizeof(a->label), "%s", label);
	if (peer_exe_digest(&d->digests, p, a->bin, &a->exe, err, sizeof(err)) < 0)
		return reply_fail(r, MGR_ERR_DENIED, "pid %ld: %s", (long)p->pid, err);
	hex(a->bin, 32, a->binhex);
	rc = store_vtpm_get(d->store, uuid, &a->v);
	if (rc != STORE_OK)
		return reply_fail(r, reply_store_status(rc), "%s", store_errmsg(d->store));
	if (strcmp(a->v.state, STORE_VTPM_CREATED) != 0)
		return reply_fail(r, MGR_ERR_DENIED,
				  "vTPM %s is in state '%s' and cannot be opened", u, a->v.state);
	a->g = calloc(1, sizeof(*a->g));
	if (!a->g)
		return reply_fail(r, MGR_ERR_INTERNAL, "out of memory");
	if (store_group_get(d->store, a->v.group_uuid, a->g) != STORE_OK)
		return reply_fail(r, MGR_ERR_STORE, "the group of vTPM %s: %s", u,
				  store_errmsg(d->store));
	for (i = 0, ok = false; i < a->g->npatterns && !ok; i++)
		ok = label_match(a->g->patterns[i], a->label);
	if (!ok)
		return reply_fail(r, MGR_ERR_DENIED, "label %.200s matches no pattern of group %s",
				  a->label, a->g->name);
	/* each vTPM belongs to one guest: a label of the same group pattern is not enough */
	if (a->v.bound_label[0] && !label_same_guest(a->v.bound_label, a->label))
		return reply_fail(r, MGR_ERR_DENIED,
				  "vTPM %s is bound to the guest of label %.200s; label %.200s is "
				  "another guest (vtpmctl vtpm rebind changes the binding)",
				  u, a->v.bound_label, a->label);
	for (i = 0, ok = a->g->any_digest; i < a->g->ndigests && !ok; i++)
		ok = CRYPTO_memcmp(a->g->digests[i], a->bin, 32) == 0;
	if (!ok)
		return reply_fail(r, MGR_ERR_DENIED,
				  "binary digest %s of pid %ld is not permitted by group %s",
				  a->binhex, (long)p->pid, a->g->name);
	if (keys_unwrap_group(d->root_key, a->g->uuid, a->g->wrapped_key, a->g->wrapped_key_len, gk,
			      err, sizeof(err)) < 0 ||
	    keys_unwrap_state(gk, uuid, a->g->uuid, a->v.wrapped_key, a->v.wrapped_key_len, a->sk,
			      err, sizeof(err)) < 0) {
		OPENSSL_cleanse(gk, sizeof(gk));
		return reply_fail(r, MGR_ERR_INTERNAL, "vTPM %s: %s", u, err);
	}
	OPENSSL_cleanse(gk, sizeof(gk));
	return MGR_OK;
}

/* Record the requester as the live instance of uuid (table and journal). */
static uint32_t hold(struct mgrd *d, const struct peer *p, const uint8_t uuid[16],
		     const struct admission *a, struct mgr_reply *r)
{
	struct instance *in;
	char u[37], err[512];

	uuid_format(uuid, u);
	/* the first open binds an unbound vTPM to this guest, durably, before any key */
	if (!a->v.bound_label[0]) {
		struct store_actor who = {.uid = (uint32_t)p->uid, .pid = (uint32_t)p->pid};
		int rc = store_vtpm_bind(d->store, &who, uuid, a->label);

		if (rc != STORE_OK)
			return reply_fail(r,
					  rc == STORE_IO || rc == STORE_LOCKED
					      ? MGR_ERR_RETRY
					      : reply_store_status(rc),
					  "vTPM %s: binding it to %.200s: %s", u, a->label,
					  store_errmsg(d->store));
		log_info("vTPM %s bound to the guest of label %s at its first open", u, a->label);
	}
	if (instances_add(&d->inst, uuid, p->pid, p->uid, p->pidfd, a->label, a->bin, err,
			  sizeof(err)) < 0)
		return reply_fail(r, MGR_ERR_BUSY, "vTPM %s: %s", u, err);
	in = instances_find(&d->inst, uuid);
	peer_start_ticks(p->pid, &in->start_ticks);
	/* unrecorded, a restart could hand this vTPM to a second instance: refuse instead */
	if (journal_note(d, JOURNAL_OPEN, in, err, sizeof(err)) < 0) {
		instances_remove(&d->inst, uuid);
		return reply_fail(r, MGR_ERR_RETRY, "vTPM %s: %s", u, err);
	}
	return MGR_OK;
}

static int64_t mono_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* What no permitted process may be: traced (its memory readable by another), or started
 * with the dynamic linker told to load other code (LD_PRELOAD, LD_LIBRARY_PATH, ...). */
static uint32_t check_untampered(const struct peer *p, struct mgr_reply *r)
{
	char var[64], err[512];
	pid_t tracer = 0;
	int rc;

	if (peer_tracer(p, &tracer, err, sizeof(err)) < 0)
		return reply_fail(r, MGR_ERR_DENIED, "pid %ld: %s", (long)p->pid, err);
	if (tracer)
		return reply_fail(r, MGR_ERR_DENIED, "pid %ld is traced by pid %ld", (long)p->pid,
				  (long)tracer);
	rc = peer_ld_env(p, var, sizeof(var), err, sizeof(err));
	if (rc < 0)
		return reply_fail(r, MGR_ERR_DENIED, "pid %ld: %s", (long)p->pid, err);
	if (rc > 0)
		return reply_fail(r, MGR_ERR_DENIED,
				  "pid %ld was started with %s set: the dynamic linker may have "
				  "loaded other code into it",
				  (long)p->pid, var);
	return MGR_OK;
}

static struct pending_open *pending_find(struct mgrd *d, const uint8_t uuid[16], pid_t pid)
{
	size_t i;

	for (i = 0; i < PENDING_OPENS_MAX; i++)
		if (d->pending[i].used && d->pending[i].pid == pid &&
		    memcmp(d->pending[i].uuid, uuid, 16) == 0)
			return &d->pending[i];
	return NULL;
}

static void pending_drop(struct pending_open *po)
{
	OPENSSL_cleanse(po, sizeof(*po));
}

/* A slot for a new pending open of (uuid, pid): its own earlier one, a free or expired one. */
static struct pending_open *pending_slot(struct mgrd *d, const uint8_t uuid[16], pid_t pid)
{
	struct pending_open *po = pending_find(d, uuid, pid);
	int64_t now = mono_ms();
	size_t i;

	for (i = 0; !po && i < PENDING_OPENS_MAX; i++)
		if (!d->pending[i].used || d->pending[i].deadline_ms < now)
			po = &d->pending[i];
	if (po)
		pending_drop(po);
	return po;
}

/*
 * MGR_OPEN: check the identity (admit, untampered), hold nothing yet, and answer a nonce.
 * The key comes with MGR_OPEN_CONFIRM. Why two steps: /proc/PID/exe names what a process
 * runs when it is looked at; a process that sends MGR_OPEN and then execs a permitted
 * binary passes a one-step check, and a child that kept the connection reads the answer.
 * Here the answer is only a nonce; the confirmation must come from the same pid
 * (SCM_CREDENTIALS), still running the same file, untraced, and a process that asked before
 * its exec cannot send it after (a permitted vtpmd never confirms an open it did not make).
 */
static uint32_t do_open(struct mgrd *d, const struct requester *who, const uint8_t uuid[16],
			struct mgr_reply *r)
{
	const struct peer *p = who->peer;
	struct pending_open *po;
	struct admission a;
	struct instance *in;
	char u[37];
	uint32_t st;

	memset(&a, 0, sizeof(a));
	uuid_format(uuid, u);
	st = admit(d, who, uuid, NULL, &a, r);
	if (st)
		goto out;
	in = instances_find(&d->inst, uuid);
	if (in && in->pid != p->pid) {
		st = reply_fail(r, MGR_ERR_BUSY,
				"vTPM %s is open by another live instance (pid %ld)", u,
				(long)in->pid);
		goto out;
	}
	st = check_untampered(p, r);
	if (st)
		goto out;
	po = pending_slot(d, uuid, p->pid);
	if (!po) {
		st = reply_fail(r, MGR_ERR_RETRY, "%d opens are in progress; try again",
				PENDING_OPENS_MAX);
		goto out;
	}
	if (random_bytes(po->nonce, sizeof(po->nonce)) < 0) {
		st = reply_fail(r, MGR_ERR_INTERNAL, "no random bytes for the open's nonce");
		goto out;
	}
	po->used = true;
	memcpy(po->uuid, uuid, 16);
	po->pid = p->pid;
	po->exe = a.exe;
	memcpy(po->bin, a.bin, 32);
	snprintf(po->label, sizeof(po->label), "%s", a.label);
	po->deadline_ms = mono_ms() + PENDING_OPEN_MS;
	mgr_put_bytes(&r->b, MGR_F_NONCE, po->nonce, sizeof(po->nonce));
	r->no_audit = true; /* the confirmation is audited */
out:
	admission_clear(&a);
	return st;
}

/* MGR_OPEN_CONFIRM: the same process, the same file, still permitted: the key. */
static uint32_t do_confirm(struct mgrd *d, const struct requester *who,
			   const struct mgr_request *req, struct mgr_reply *r)
{
	const struct peer *p = who->peer;
	const uint8_t *uuid = req->u.inst.uuid;
	struct pending_open *po;
	struct peer_exe_id now;
	struct admission a;
	struct instance *in;
	char u[37], err[512];
	uint32_t st;

	memset(&a, 0, sizeof(a));
	uuid_format(uuid, u);
	st = check_sender(who, r);
	if (st)
		return st;
	po = pending_find(d, uuid, p->pid);
	if (!po || po->deadline_ms < mono_ms() ||
	    CRYPTO_memcmp(po->nonce, req->u.inst.nonce, sizeof(po->nonce)) != 0) {
		if (po && po->deadline_ms < mono_ms())
			pending_drop(po);
		return reply_fail(r, MGR_ERR_DENIED,
				  "vTPM %s: pid %ld has no open in progress with that nonce", u,
				  (long)p->pid);
	}
	if (peer_exe_id(p, &now, err, sizeof(err)) < 0) {
		st = reply_fail(r, MGR_ERR_DENIED, "pid %ld: %s", (long)p->pid, err);
		goto out;
	}
	if (now.dev != po->exe.dev || now.ino != po->exe.ino) {
		st =
		    reply_fail(r, MGR_ERR_DENIED,
			       "pid %ld runs another executable than when it asked to open vTPM %s",
			       (long)p->pid, u);
		goto out;
	}
	st = admit(d, who, uuid, po->label, &a, r);
	if (st)
		goto out;
	if (CRYPTO_memcmp(a.bin, po->bin, 32) != 0) {
		st = reply_fail(r, MGR_ERR_DENIED,
				"the binary of pid %ld changed since it asked to open vTPM %s",
				(long)p->pid, u);
		goto out;
	}
	st = check_untampered(p, r);
	if (st)
		goto out;
	in = instances_find(&d->inst, uuid);
	if (in && in->pid != p->pid) {
		st = reply_fail(r, MGR_ERR_BUSY,
				"vTPM %s is open by another live instance (pid %ld)", u,
				(long)in->pid);
		goto out;
	}
	st = hold(d, p, uuid, &a, r);
	if (st)
		goto out;
	mgr_put_bytes(&r->b, MGR_F_STATE_KEY, a.sk, sizeof(a.sk));
	mgr_put_u64(&r->b, MGR_F_VERSION, a.v.version);
	mgr_put_bytes(&r->b, MGR_F_DIGEST, a.v.digest, 32);
	mgr_put_bytes(&r->b, MGR_F_GROUP_UUID, a.g->uuid, 16);
	snprintf(r->note, sizeof(r->note), "ok: pid %ld, label %.100s, group %s, binary %.16s...",
		 (long)p->pid, a.label, a.g->name, a.binhex);
	r->action = "open"; /* the open is done: one row, as operators look for it */
	log_info("vTPM %s opened by pid %ld (label %s, group %s)", u, (long)p->pid, a.label,
		 a.g->name);
out:
	pending_drop(po);
	admission_clear(&a);
	return st;
}

/*
 * A running instance comes back after the manager restarted (manager_client.h). It must be
 * the process the journal names (or, without a journal entry, one no other live process
 * competes with), still permitted, and prove it holds the state key. Its newest accepted
 * version may be ahead of the store only if the store lost changes (restored from inside
 * the guard's window, rollback.h): the live instance is the newest state, so the store
 * follows it, and the log and audit say so.
 */
static uint32_t do_resume(struct mgrd *d, const struct requester *who,
			  const struct mgr_request *req, struct mgr_reply *r)
{
	const struct peer *p = who->peer;
	const uint8_t *uuid = req->u.inst.uuid;
	struct admission a;
	struct instance *in = instances_find(&d->inst, uuid);
	uint8_t proof[32];
	char u[37];
	uint32_t st;
	int rc;

	memset(&a, 0, sizeof(a));
	uuid_format(uuid, u);
	if (in && in->pid != p->pid) {
		st = reply_fail(r, MGR_ERR_BUSY,
				"vTPM %s is held by another live instance (pid %ld)", u,
				(long)in->pid);
		goto out;
	}
	st = admit(d, who, uuid, in ? in->label : NULL, &a, r);
	if (st)
		goto out;
	if (in && CRYPTO_memcmp(in->bin_digest, a.bin, 32) != 0) {
		st = reply_fail(r, MGR_ERR_DENIED,
				"vTPM %s: pid %ld runs another binary (%s) than it opened the vTPM "
				"with",
				u, (long)p->pid, a.binhex);
		goto out;
	}
	if (resume_proof(a.sk, uuid, p->pid, req->u.inst.version, req->u.inst.digest, proof) < 0) {
		st = reply_fail(r, MGR_ERR_INTERNAL, "cannot compute the resume proof");
		goto out;
	}
	if (CRYPTO_memcmp(proof, req->u.inst.proof, 32) != 0) {
		st = reply_fail(r, MGR_ERR_DENIED,
				"vTPM %s: the resume proof of pid %ld was not made with the vTPM's "
				"key",
				u, (long)p->pid);
		goto out;
	}
	if (req->u.inst.version == a.v.version &&
	    CRYPTO_memcmp(req->u.inst.digest, a.v.digest, 32) != 0) {
		st = reply_fail(r, MGR_ERR_DENIED,
				"vTPM %s: pid %ld runs state version %llu with another digest than "
				"the store records",
				u, (long)p->pid, (unsigned long long)a.v.version);
		goto out;
	}
	if (req->u.inst.version > a.v.version) {
		rc =
		    store_vtpm_set_version(d->store, uuid, req->u.inst.version, req->u.inst.digest);
		if (rc != STORE_OK) {
			st = reply_fail(r,
					rc == STORE_IO || rc == STORE_LOCKED
					    ? MGR_ERR_RETRY
					    : reply_store_status(rc),
					"%s", store_errmsg(d->store));
			goto out;
		}
		log_warnx("vTPM %s: the store recorded state version %llu, but its live instance "
			  "(pid %ld) runs version %llu: the store lost changes; it follows the "
			  "instance",
			  u, (unsigned long long)a.v.version, (long)p->pid,
			  (unsigned long long)req->u.inst.version);
		snprintf(r->note, sizeof(r->note),
			 "ok: pid %ld resumed at state version %llu; the store was behind (version "
			 "%llu) and follows it",
			 (long)p->pid, (unsigned long long)req->u.inst.version,
			 (unsigned long long)a.v.version);
	} else {
		snprintf(r->note, sizeof(r->note), "ok: pid %ld resumed (label %.100s, group %s)",
			 (long)p->pid, a.label, a.g->name);
	}
	if (in) {
		in->detached = false;
	} else {
		st = hold(d, p, uuid, &a, r);
		if (st)
			goto out;
	}
	log_info("vTPM %s: pid %ld resumed", u, (long)p->pid);
out:
	OPENSSL_cleanse(proof, sizeof(proof));
	admission_clear(&a);
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
	if (in->detached)
		return reply_fail(r, MGR_ERR_DENIED,
				  "vTPM %s: pid %ld must resume (MGR_RESUME) after the manager's "
				  "restart",
				  u, (long)in->pid);
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
	if (rc == STORE_IO || rc == STORE_LOCKED)
		return reply_fail(r, MGR_ERR_RETRY, "the store cannot be written now: %s",
				  store_errmsg(d->store));
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
	struct instance gone;
	char u[37], err[512];

	if (st)
		return st;
	uuid_format(req->u.inst.uuid, u);
	/* out of the table first: a rewrite of the journal must not keep it */
	gone = *instances_find(&d->inst, req->u.inst.uuid);
	gone.pidfd = -1;
	instances_remove(&d->inst, req->u.inst.uuid);
	if (journal_note(d, JOURNAL_RELEASE, &gone, err, sizeof(err)) < 0)
		log_warnx("vTPM %s: %s", u, err);
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
	case MGR_OPEN_CONFIRM:
		do_confirm(d, who, req, r);
		break;
	case MGR_RESUME:
		do_resume(d, who, req, r);
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
	char u[37], err[512];

	uuid_format(in->uuid, u);
	log_info("vTPM %s released: its instance (pid %ld) exited", u, (long)in->pid);
	if (journal_note(d, JOURNAL_RELEASE, in, err, sizeof(err)) < 0)
		log_warnx("vTPM %s: %s", u, err);
	if (store_audit_append(d->store, &a, "close", u, "ok: the instance exited") != STORE_OK)
		log_warnx("audit: %s", store_errmsg(d->store));
}
