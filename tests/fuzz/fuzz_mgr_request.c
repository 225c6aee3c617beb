/*
 * libFuzzer harness: the manager's request path as far as it depends on the bytes alone —
 * mgr_parse, the socket a type is served on, mgr_request_decode (per-type field rules,
 * label and pattern syntax), label matching of what decoded, and building the response
 * (texts are echoed back through reply_text, as error messages are).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/mgr_proto.h"
#include "common/label_match.h"
#include "vtpmmgrd/manager.h"
#include "vtpmmgrd/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct mgr_msg m, back;
static struct mgr_request req;
static uint8_t out[MGR_MAX_MSG];

static void check_text(const char *s, size_t max)
{
	if (strnlen(s, max + 1) > max)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[REPLY_MSG_MAX], perr[256];
	struct mgr_builder b;
	size_t i, len;
	int rc;

	if (mgr_parse(data, size, &m, err, sizeof(err)) != 0) {
		if (strnlen(err, sizeof(err)) == 0)
			__builtin_trap(); /* every refusal says why */
		return 0;
	}
	(void)mgr_request_socket(m.type);
	(void)mgr_request_name(m.type);
	rc = mgr_request_decode(&m, &req, err, sizeof(err));
	mgr_build_init(&b, out, sizeof(out), (uint16_t)(m.type | MGR_RESPONSE));
	if (rc != REQ_OK) {
		if (strnlen(err, sizeof(err)) == 0)
			__builtin_trap();
		mgr_put_u32(&b, MGR_F_STATUS, MGR_ERR_MALFORMED);
		reply_text(&b, MGR_F_MESSAGE, err);
	} else {
		mgr_put_u32(&b, MGR_F_STATUS, MGR_OK);
		switch (req.type) {
		case MGR_GROUP_CREATE:
			check_text(req.u.group_create.name, STORE_NAME_MAX);
			if (req.u.group_create.npatterns == 0 ||
			    req.u.group_create.npatterns > STORE_MAX_PATTERNS ||
			    req.u.group_create.ndigests > STORE_MAX_DIGESTS ||
			    req.u.group_create.any_digest == (req.u.group_create.ndigests > 0))
				__builtin_trap();
			for (i = 0; i < req.u.group_create.npatterns; i++) {
				const char *p = req.u.group_create.patterns[i];

				check_text(p, STORE_PATTERN_MAX);
				if (label_pattern_check(p, perr, sizeof(perr)) != 0)
					__builtin_trap(); /* decoded patterns are valid */
				(void)label_match(p, "guest1_u:vm_r:vtpm_t:s0:c1,c2");
				reply_text(&b, MGR_F_PATTERN, p);
			}
			reply_text(&b, MGR_F_NAME, req.u.group_create.name);
			break;
		case MGR_LABEL_REGISTER:
			check_text(req.u.label_reg.label, LABEL_MAX);
			if (label_check(req.u.label_reg.label, perr, sizeof(perr)) != 0 ||
			    !label_match("*:*:*", req.u.label_reg.label) ||
			    req.u.label_reg.pid == 0)
				__builtin_trap();
			reply_text(&b, MGR_F_LABEL, req.u.label_reg.label);
			break;
		case MGR_HOST_INIT:
			if (req.u.host_init.pcr_mask == 0 || (req.u.host_init.pcr_mask >> 24))
				__builtin_trap();
			break;
		case MGR_AUDIT_LIST:
			if (req.u.audit.count == 0 || req.u.audit.count > REQ_AUDIT_MAX)
				__builtin_trap();
			break;
		case MGR_GROUP_SHOW:
		case MGR_GROUP_DELETE:
		case MGR_VTPM_CREATE:
			if (!req.u.group.by_uuid)
				check_text(req.u.group.name, STORE_NAME_MAX);
			break;
		default:
			break;
		}
	}
	/* a response is always buildable and parses back */
	len = mgr_build_finish(&b);
	if (len == 0 || mgr_parse(out, len, &back, err, sizeof(err)) != 0)
		__builtin_trap();
	/* labels and patterns straight from the bytes: never crash, never overrun */
	for (i = 0; i < m.nfields; i++) {
		char text[MGR_MAX_TEXT + 1];
		const struct mgr_field_view *f = &m.f[i];

		if (f->tag != MGR_F_LABEL && f->tag != MGR_F_PATTERN && f->tag != MGR_F_NAME)
			continue;
		memcpy(text, f->val, f->len);
		text[f->len] = '\0';
		if (label_check(text, perr, sizeof(perr)) == 0 &&
		    label_pattern_check(text, perr, sizeof(perr)) != 0)
			__builtin_trap(); /* every label is a pattern that matches itself */
		if (label_check(text, perr, sizeof(perr)) == 0 && !label_match(text, text))
			__builtin_trap();
		(void)label_match(text, "a:b:c");
	}
	return 0;
}
