/*
 * dispatch.c — one request, one response: every datagram from either socket passes here.
 *
 * A message that does not parse or decode gets MGR_ERR_MALFORMED with the parser's precise
 * reason (its type echoed when the header had one); a type served on the other socket, or
 * unknown, gets MGR_ERR_UNKNOWN_TYPE; an admin request from a peer that is neither root nor
 * in --admin-group gets MGR_ERR_DENIED.
 *
 * What is audited (with the peer's uid and pid) unless the store already recorded it with the
 * change: every admin request and every successful MGR_OPEN; the instance socket's successful
 * commits and closes are not (they are every TPM state write). What a peer can repeat at will
 * is bounded per uid (conn_limits.h) unless the peer is trusted (root, --admin-group):
 *   - a malformed message (does not parse or decode, unknown type, wrong socket) is answered,
 *     counted, and its connection closed (d->last.close); it writes no audit row;
 *   - a refused request is audited up to --audit-refusals-per-uid rows per uid and
 *     --limits-interval; the rest are counted, and one row "N more refusals from uid U
 *     suppressed" is written when the window closes (mgrd_limits_tick);
 *   - log lines: the first of each kind per uid and window in full, then one summary.
 * A trusted peer's malformed messages and refusals are all audited and logged, as before.
 */
#include <stdio.h>
#include <string.h>

#include "common/cursor.h"
#include "common/log.h"
#include "vtpmmgrd/manager.h"
#include "vtpmmgrd/store.h"

static const char *socket_name(enum req_socket kind)
{
	return kind == REQ_ADMIN ? "admin" : "instance";
}

static void audit(struct mgrd *d, const struct requester *who, const char *action,
		  const struct mgr_reply *r)
{
	struct store_actor a = {.uid = (uint32_t)who->peer->uid, .pid = (uint32_t)who->peer->pid};
	char result[STORE_RESULT_MAX + 1];

	if (r->action)
		action = r->action;
	if (r->status == MGR_OK)
		snprintf(result, sizeof(result), "%s", r->note[0] ? r->note : "ok");
	else
		snprintf(result, sizeof(result), "%s: %.*s",
			 r->status == MGR_ERR_STORE || r->status == MGR_ERR_HOST_TPM ||
				 r->status == MGR_ERR_INTERNAL
			     ? "failed"
			     : "refused",
			 STORE_RESULT_MAX - 9, r->msg);
	if (store_audit_append(d->store, &a, action, r->subject, result) != STORE_OK)
		log_warnx("cannot append to the audit log: %s", store_errmsg(d->store));
}

static const char *plural(uint32_t n)
{
	return n == 1 ? "" : "s";
}

/* Log, audit and count what one request of the peer cost (see the head of this file). */
static void account(struct mgrd *d, enum req_socket kind, const struct requester *who,
		    const char *action, const struct mgr_reply *r, bool malformed)
{
	const struct peer *p = who->peer;
	unsigned secs = cl_cfg(&d->limits)->interval_ms / 1000;
	int64_t now;

	if (r->status == MGR_OK) {
		if (!r->audited && !r->no_audit)
			audit(d, who, action, r);
		return;
	}
	if (p->trusted) {
		log_info("%s socket: %s from pid %ld (uid %lu) refused: %s", socket_name(kind),
			 action, (long)p->pid, (unsigned long)p->uid, r->msg);
		if (!r->audited)
			audit(d, who, action, r);
		return;
	}
	now = cl_now_ms();
	if (malformed) {
		if (cl_note(&d->limits, p->uid, CL_EV_MALFORMED, now))
			log_info("%s socket: malformed message from pid %ld (uid %lu): %s; its "
				 "connection is closed (more from uid %lu are counted and reported "
				 "within %u s)",
				 socket_name(kind), (long)p->pid, (unsigned long)p->uid, r->msg,
				 (unsigned long)p->uid, secs);
		else
			log_debug("%s socket: malformed message from pid %ld (uid %lu): %s",
				  socket_name(kind), (long)p->pid, (unsigned long)p->uid, r->msg);
		return;
	}
	if (r->audited) { /* the store wrote it with the change it refused */
		cl_note(&d->limits, p->uid, CL_EV_REFUSAL, now);
		return;
	}
	if (cl_audit_refusal(&d->limits, p->uid, now)) {
		log_info("%s socket: %s from pid %ld (uid %lu) refused: %s", socket_name(kind),
			 action, (long)p->pid, (unsigned long)p->uid, r->msg);
		audit(d, who, action, r);
	} else {
		log_debug("%s socket: %s from pid %ld (uid %lu) refused (not audited: over the "
			  "limit of uid %lu): %s",
			  socket_name(kind), action, (long)p->pid, (unsigned long)p->uid,
			  (unsigned long)p->uid, r->msg);
	}
}

static void limits_report(void *arg, const struct cl_report *r)
{
	static const char *const what[CL_EV_N][2] = {
	    [CL_EV_REFUSED_CONN] = {"connection", "refused"},
	    [CL_EV_MALFORMED] = {"malformed message", "(each closed its connection)"},
	    [CL_EV_IDLE] = {"idle connection", "closed"},
	    [CL_EV_DROPPED] = {"unopened connection", "dropped (table full)"},
	    [CL_EV_REFUSAL] = {"request", "refused"},
	    [CL_EV_HASH_REFUSED] = {"binary digest", "refused (hashing budget spent)"},
	};
	struct mgrd *d = arg;
	const struct cl_config *cfg = cl_cfg(&d->limits);
	char line[512], result[STORE_RESULT_MAX + 1];
	size_t pos = 0;
	int k;

	if (!cl_report_needed(r))
		return;
	line[0] = '\0';
	for (k = 0; k < CL_EV_N && pos < sizeof(line); k++) {
		if (!r->count[k])
			continue;
		pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "%s%u %s%s %s",
					pos ? ", " : "", r->count[k], what[k][0],
					plural(r->count[k]), what[k][1]);
	}
	if (r->suppressed && pos < sizeof(line))
		snprintf(line + pos, sizeof(line) - pos, "; %u refusal%s not audited",
			 r->suppressed, plural(r->suppressed));
	if (r->uid == CL_OVERFLOW_UID)
		log_info("uids beyond the first %u, in the last %u s: %s", CL_MAX_UIDS,
			 cfg->interval_ms / 1000, line);
	else
		log_info("uid %lu in the last %u s: %s", (unsigned long)r->uid,
			 cfg->interval_ms / 1000, line);
	if (r->suppressed && d->store) {
		struct store_actor a = {.uid = r->uid, .pid = 0};
		char subject[48];

		snprintf(subject, sizeof(subject), "uid %lu", (unsigned long)r->uid);
		snprintf(result, sizeof(result),
			 "%u more refusal%s from uid %lu suppressed (at most %u audit rows of "
			 "refusals per uid in %u s)",
			 r->suppressed, plural(r->suppressed), (unsigned long)r->uid,
			 cfg->audit_refusals, cfg->interval_ms / 1000);
		if (store_audit_append(d->store, &a, "suppressed", subject, result) != STORE_OK)
			log_warnx("cannot append to the audit log: %s", store_errmsg(d->store));
	}
}

int64_t mgrd_limits_tick(struct mgrd *d, int64_t now_ms)
{
	return cl_tick(&d->limits, now_ms, limits_report, d);
}

int mgrd_decode(struct mgr_msg *scratch, enum req_socket kind, const uint8_t *in, size_t inlen,
		bool truncated, struct mgr_request *req, struct req_refusal *why)
{
	uint16_t type = inlen >= 2 ? be16_get(in) : 0;
	int rc;

	memset(why, 0, sizeof(*why));
	why->type = type;
	why->status = MGR_ERR_MALFORMED;
	if (truncated) {
		snprintf(why->msg, sizeof(why->msg), "message over %u bytes refused", MGR_MAX_MSG);
	} else if (mgr_parse(in, inlen, scratch, why->msg, sizeof(why->msg)) < 0) {
		/* the parser's reason is in why->msg */
	} else if (mgr_request_socket(type) == 0) {
		why->status = MGR_ERR_UNKNOWN_TYPE;
		snprintf(why->msg, sizeof(why->msg),
			 "message type 0x%04x is not a request of this protocol", type);
	} else if (mgr_request_socket(type) != kind) {
		why->named = true;
		why->status = MGR_ERR_UNKNOWN_TYPE;
		snprintf(why->msg, sizeof(why->msg), "%s is not served on the %s socket",
			 mgr_request_name(type), socket_name(kind));
	} else if ((rc = mgr_request_decode(scratch, req, why->msg, sizeof(why->msg))) != REQ_OK) {
		why->named = true;
		if (rc == REQ_UNKNOWN_TYPE)
			why->status = MGR_ERR_UNKNOWN_TYPE;
	} else {
		return 0;
	}
	if (!why->msg[0])
		snprintf(why->msg, sizeof(why->msg), "malformed message");
	return -1;
}

size_t mgrd_serve(struct mgrd *d, enum req_socket kind, const struct requester *who,
		  const struct mgr_request *req, const struct req_refusal *why, uint8_t *out)
{
	struct mgr_reply r;
	char err[REPLY_MSG_MAX];
	uint16_t type = why ? why->type : req->type;
	const char *action = why && !why->named ? "malformed" : mgr_request_name(type);
	bool malformed = why != NULL;

	memset(&r, 0, sizeof(r));
	mgr_build_init(&r.b, out, MGR_MAX_MSG, (uint16_t)(type | MGR_RESPONSE));
	mgr_put_u32(&r.b, MGR_F_STATUS, MGR_OK);
	snprintf(r.subject, sizeof(r.subject), "%s socket", socket_name(kind));
	if (why) {
		reply_fail(&r, why->status, "%s", why->msg);
	} else if (kind == REQ_ADMIN && admin_permitted(d, who->peer, err, sizeof(err)) < 0) {
		reply_fail(&r, MGR_ERR_DENIED, "%s", err);
	} else if (kind == REQ_ADMIN) {
		admin_handle(d, who, req, &r);
	} else {
		instance_handle(d, who, req, &r);
	}
	d->last.type = type;
	d->last.status = r.status;
	d->last.close = malformed;
	account(d, kind, who, action, &r, malformed);
	if (r.status != MGR_OK || r.b.failed) {
		if (r.status == MGR_OK)
			reply_fail(&r, MGR_ERR_INTERNAL, "the response does not fit in %u bytes",
				   MGR_MAX_MSG);
		memset(out, 0, r.b.pos < MGR_MAX_MSG ? r.b.pos : MGR_MAX_MSG);
		mgr_build_init(&r.b, out, MGR_MAX_MSG, (uint16_t)(type | MGR_RESPONSE));
		mgr_put_u32(&r.b, MGR_F_STATUS, r.status);
		reply_text(&r.b, MGR_F_MESSAGE, r.msg);
	}
	return mgr_build_finish(&r.b);
}

size_t mgrd_process(struct mgrd *d, enum req_socket kind, const struct requester *who,
		    const uint8_t *in, size_t inlen, bool truncated, uint8_t *out)
{
	struct req_refusal why;

	if (mgrd_decode(d->msg, kind, in, inlen, truncated, d->req, &why) < 0)
		return mgrd_serve(d, kind, who, NULL, &why, out);
	return mgrd_serve(d, kind, who, d->req, NULL, out);
}
