/*
 * dispatch.c — one request, one response: every datagram from either socket passes here.
 *
 * A message that does not parse or decode gets MGR_ERR_MALFORMED with the parser's precise
 * reason (its type echoed when the header had one); a type served on the other socket, or
 * unknown, gets MGR_ERR_UNKNOWN_TYPE; an admin request from a peer that is neither root nor
 * in --admin-group gets MGR_ERR_DENIED. Every admin request and every refusal is audited
 * (with the peer's uid and pid) unless the store already recorded it with the change; the
 * instance socket's successful commits are not (they are every TPM state write).
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

size_t mgrd_process(struct mgrd *d, enum req_socket kind, const struct requester *who,
		    const uint8_t *in, size_t inlen, bool truncated, uint8_t *out)
{
	struct mgr_reply r;
	char err[REPLY_MSG_MAX];
	const char *action = "malformed";
	uint16_t type = inlen >= 2 ? be16_get(in) : 0;
	size_t len;
	int rc;

	memset(&r, 0, sizeof(r));
	mgr_build_init(&r.b, out, MGR_MAX_MSG, (uint16_t)(type | MGR_RESPONSE));
	mgr_put_u32(&r.b, MGR_F_STATUS, MGR_OK);
	snprintf(r.subject, sizeof(r.subject), "%s socket", socket_name(kind));
	if (truncated) {
		reply_fail(&r, MGR_ERR_MALFORMED, "message over %u bytes refused", MGR_MAX_MSG);
	} else if (mgr_parse(in, inlen, d->msg, err, sizeof(err)) < 0) {
		reply_fail(&r, MGR_ERR_MALFORMED, "%s", err);
	} else if (mgr_request_socket(type) == 0) {
		reply_fail(&r, MGR_ERR_UNKNOWN_TYPE,
			   "message type 0x%04x is not a request of this protocol", type);
	} else if (mgr_request_socket(type) != kind) {
		action = mgr_request_name(type);
		reply_fail(&r, MGR_ERR_UNKNOWN_TYPE, "%s is not served on the %s socket", action,
			   socket_name(kind));
	} else if ((rc = mgr_request_decode(d->msg, d->req, err, sizeof(err))) != REQ_OK) {
		action = mgr_request_name(type);
		reply_fail(&r, rc == REQ_UNKNOWN_TYPE ? MGR_ERR_UNKNOWN_TYPE : MGR_ERR_MALFORMED,
			   "%s", err);
	} else if (kind == REQ_ADMIN && admin_permitted(d, who->peer, err, sizeof(err)) < 0) {
		action = mgr_request_name(type);
		reply_fail(&r, MGR_ERR_DENIED, "%s", err);
	} else {
		action = mgr_request_name(type);
		if (kind == REQ_ADMIN)
			admin_handle(d, who, d->req, &r);
		else
			instance_handle(d, who, d->req, &r);
	}
	if (r.status != MGR_OK)
		log_info("%s socket: %s from pid %ld (uid %lu) refused: %s", socket_name(kind),
			 action, (long)who->peer->pid, (unsigned long)who->peer->uid, r.msg);
	if (!r.audited && !(r.status == MGR_OK && r.no_audit))
		audit(d, who, action, &r);
	if (r.status != MGR_OK || r.b.failed) {
		if (r.status == MGR_OK)
			reply_fail(&r, MGR_ERR_INTERNAL, "the response does not fit in %u bytes",
				   MGR_MAX_MSG);
		memset(out, 0, r.b.pos < MGR_MAX_MSG ? r.b.pos : MGR_MAX_MSG);
		mgr_build_init(&r.b, out, MGR_MAX_MSG, (uint16_t)(type | MGR_RESPONSE));
		mgr_put_u32(&r.b, MGR_F_STATUS, r.status);
		reply_text(&r.b, MGR_F_MESSAGE, r.msg);
	}
	len = mgr_build_finish(&r.b);
	return len;
}
