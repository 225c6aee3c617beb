#include "vtpmmgrd/request.h"

#include <stdio.h>
#include <string.h>

#include "common/cursor.h"
#include "vtpmmgrd/host_policy.h"
#include "vtpmmgrd/host_tpm.h"

#define BIT(tag) (UINT64_C(1) << (tag))

struct rule {
	uint16_t type;
	const char *name;
	enum req_socket sock;
	uint64_t allowed;    /* field tags the type takes */
	uint64_t repeatable; /* of those, the ones that may repeat */
};

static const struct rule rules[] = {
    {MGR_OPEN, "open", REQ_INSTANCE, BIT(MGR_F_UUID), 0},
    {MGR_COMMIT, "commit", REQ_INSTANCE, BIT(MGR_F_UUID) | BIT(MGR_F_VERSION) | BIT(MGR_F_DIGEST),
     0},
    {MGR_CLOSE, "close", REQ_INSTANCE, BIT(MGR_F_UUID), 0},
    {MGR_OPEN_CONFIRM, "open-confirm", REQ_INSTANCE, BIT(MGR_F_UUID) | BIT(MGR_F_NONCE), 0},
    {MGR_RESUME, "resume", REQ_INSTANCE,
     BIT(MGR_F_UUID) | BIT(MGR_F_VERSION) | BIT(MGR_F_DIGEST) | BIT(MGR_F_PROOF), 0},
    {MGR_HOST_INIT, "host-init", REQ_ADMIN, BIT(MGR_F_PCR_MASK) | BIT(MGR_F_FORCE), 0},
    {MGR_HOST_STATUS, "host-status", REQ_ADMIN, BIT(MGR_F_PCR_VALUE) | BIT(MGR_F_PCR_MASK),
     BIT(MGR_F_PCR_VALUE)},
    {MGR_HOST_RESEAL, "host-reseal", REQ_ADMIN,
     BIT(MGR_F_PCR_MASK) | BIT(MGR_F_PREDICT) | BIT(MGR_F_PCR_VALUE), BIT(MGR_F_PCR_VALUE)},
    {MGR_HOST_POLICY_INSTALL, "host-policy-install", REQ_ADMIN,
     BIT(MGR_F_POLICY_KEY) | BIT(MGR_F_NV_INDEX), 0},
    {MGR_HOST_POLICY_ADD, "host-policy-add", REQ_ADMIN, BIT(MGR_F_POLICY), 0},
    {MGR_HOST_POLICY_REVOKE, "host-policy-revoke", REQ_ADMIN, BIT(MGR_F_SERIAL), 0},
    {MGR_GROUP_CREATE, "group-create", REQ_ADMIN,
     BIT(MGR_F_NAME) | BIT(MGR_F_PATTERN) | BIT(MGR_F_BIN_DIGEST) | BIT(MGR_F_ANY_DIGEST),
     BIT(MGR_F_PATTERN) | BIT(MGR_F_BIN_DIGEST)},
    {MGR_GROUP_LIST, "group-list", REQ_ADMIN, BIT(MGR_F_OFFSET), 0},
    {MGR_GROUP_SHOW, "group-show", REQ_ADMIN, BIT(MGR_F_NAME) | BIT(MGR_F_GROUP_UUID), 0},
    {MGR_GROUP_DELETE, "group-delete", REQ_ADMIN, BIT(MGR_F_NAME) | BIT(MGR_F_GROUP_UUID), 0},
    {MGR_VTPM_CREATE, "vtpm-create", REQ_ADMIN,
     BIT(MGR_F_NAME) | BIT(MGR_F_GROUP_UUID) | BIT(MGR_F_LABEL), 0},
    {MGR_VTPM_REBIND, "vtpm-rebind", REQ_ADMIN, BIT(MGR_F_UUID) | BIT(MGR_F_LABEL), 0},
    {MGR_VTPM_LIST, "vtpm-list", REQ_ADMIN,
     BIT(MGR_F_NAME) | BIT(MGR_F_GROUP_UUID) | BIT(MGR_F_OFFSET), 0},
    {MGR_VTPM_SHOW, "vtpm-show", REQ_ADMIN, BIT(MGR_F_UUID), 0},
    {MGR_VTPM_DELETE, "vtpm-delete", REQ_ADMIN, BIT(MGR_F_UUID), 0},
    {MGR_LABEL_REGISTER, "label-register", REQ_ADMIN,
     BIT(MGR_F_PID) | BIT(MGR_F_LABEL) | BIT(MGR_F_UUID), 0},
    {MGR_AUDIT_LIST, "audit-list", REQ_ADMIN, BIT(MGR_F_COUNT) | BIT(MGR_F_OFFSET), 0},
};

static const struct rule *rule_of(uint16_t type)
{
	size_t i;

	for (i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
		if (rules[i].type == type)
			return &rules[i];
	return NULL;
}

enum req_socket mgr_request_socket(uint16_t type)
{
	const struct rule *r = rule_of(type);

	return r ? r->sock : 0;
}

const char *mgr_request_name(uint16_t type)
{
	const struct rule *r = rule_of(type);

	return r ? r->name : "unknown";
}

const char *mgr_field_name(uint16_t tag)
{
	static const char *const names[] = {
	    [MGR_F_STATUS] = "status",
	    [MGR_F_MESSAGE] = "message",
	    [MGR_F_UUID] = "uuid",
	    [MGR_F_STATE_KEY] = "state-key",
	    [MGR_F_VERSION] = "version",
	    [MGR_F_DIGEST] = "digest",
	    [MGR_F_GROUP_UUID] = "group-uuid",
	    [MGR_F_NAME] = "name",
	    [MGR_F_PATTERN] = "pattern",
	    [MGR_F_BIN_DIGEST] = "bin-digest",
	    [MGR_F_ANY_DIGEST] = "any-digest",
	    [MGR_F_PID] = "pid",
	    [MGR_F_LABEL] = "label",
	    [MGR_F_PCR_MASK] = "pcr-mask",
	    [MGR_F_FORCE] = "force",
	    [MGR_F_RECORD] = "record",
	    [MGR_F_COUNT] = "count",
	    [MGR_F_TIME] = "time",
	    [MGR_F_STATE] = "state",
	    [MGR_F_KEY] = "key",
	    [MGR_F_VALUE] = "value",
	    [MGR_F_PROVISIONED] = "provisioned",
	    [MGR_F_NV_INDEX] = "nv-index",
	    [MGR_F_NV_VALUE] = "nv-value",
	    [MGR_F_STORE_COUNTER] = "store-counter",
	    [MGR_F_GROUPS] = "groups",
	    [MGR_F_VTPMS] = "vtpms",
	    [MGR_F_INSTANCES] = "instances",
	    [MGR_F_TPM_COMMANDS] = "tpm-commands",
	    [MGR_F_OPEN] = "open",
	    [MGR_F_UID] = "uid",
	    [MGR_F_ACTION] = "action",
	    [MGR_F_SUBJECT] = "subject",
	    [MGR_F_RESULT] = "result",
	    [MGR_F_AUDIT_ID] = "audit-id",
	    [MGR_F_OFFSET] = "offset",
	    [MGR_F_MORE] = "more",
	    [MGR_F_AK_PUBLIC] = "ak-public",
	    [MGR_F_NV_OFFSET] = "nv-offset",
	    [MGR_F_PROOF] = "proof",
	    [MGR_F_EPOCH] = "epoch",
	    [MGR_F_NONCE] = "nonce",
	    [MGR_F_PCR_VALUE] = "pcr-value",
	    [MGR_F_PREDICT] = "predict",
	    [MGR_F_POLICY_KEY] = "policy-key",
	    [MGR_F_POLICY] = "policy",
	    [MGR_F_SERIAL] = "serial",
	};

	return tag < sizeof(names) / sizeof(names[0]) && names[tag] ? names[tag] : "unknown";
}

/* Copy a text field (already 1..MGR_MAX_TEXT bytes without control bytes) of at most max
 * bytes into out (max + 1 bytes). */
static int text_field(const struct mgr_field_view *f, char *out, size_t max, const char *rtype,
		      char *err, size_t errlen)
{
	if (f->len > max) {
		snprintf(err, errlen, "%s: field '%s' has %u bytes, at most %zu are allowed", rtype,
			 mgr_field_name(f->tag), f->len, max);
		return -1;
	}
	memcpy(out, f->val, f->len);
	out[f->len] = '\0';
	return 0;
}

static int group_ref(const struct mgr_msg *m, struct req_group_ref *g, bool required, bool *present,
		     const char *rtype, char *err, size_t errlen)
{
	const struct mgr_field_view *name = mgr_find(m, MGR_F_NAME);
	const struct mgr_field_view *uuid = mgr_find(m, MGR_F_GROUP_UUID);

	memset(g, 0, sizeof(*g));
	*present = name || uuid;
	if (name && uuid) {
		snprintf(err, errlen, "%s: give the group by 'name' or by 'group-uuid', not both",
			 rtype);
		return -1;
	}
	if (!*present) {
		if (!required)
			return 0;
		snprintf(err, errlen, "%s: the group is missing (field 'name' or 'group-uuid')",
			 rtype);
		return -1;
	}
	if (uuid) {
		g->by_uuid = true;
		memcpy(g->uuid, uuid->val, 16);
		return 0;
	}
	return text_field(name, g->name, STORE_NAME_MAX, rtype, err, errlen);
}

static int pcr_mask_ok(uint32_t mask, const char *rtype, char *err, size_t errlen)
{
	if (mask == 0 || (mask & ~HOST_TPM_PCR_MASK)) {
		snprintf(err, errlen,
			 "%s: PCR mask 0x%x: needs at least one of the PCRs 0..23 and no other bit",
			 rtype, mask);
		return -1;
	}
	return 0;
}

/* The PCR_VALUE fields (33 bytes each, checked by mgr_parse): distinct PCRs 0..23. */
static int pcr_values(const struct mgr_msg *m, struct req_pcr_values *pv, const char *rtype,
		      char *err, size_t errlen)
{
	size_t i;

	memset(pv, 0, sizeof(*pv));
	for (i = 0; i < m->nfields; i++) {
		const struct mgr_field_view *f = &m->f[i];
		unsigned pcr;

		if (f->tag != MGR_F_PCR_VALUE)
			continue;
		pcr = f->val[0];
		if (pcr >= HOST_TPM_PCRS) {
			snprintf(err, errlen, "%s: pcr-value: PCR %u does not exist (0..23)", rtype,
				 pcr);
			return -1;
		}
		if (pv->mask & (1u << pcr)) {
			snprintf(err, errlen, "%s: pcr-value: PCR %u is given twice", rtype, pcr);
			return -1;
		}
		pv->mask |= 1u << pcr;
		memcpy(pv->values[pcr], f->val + 1, 32);
	}
	return 0;
}

static int need(const struct mgr_msg *m, uint16_t tag, const char *rtype, char *err, size_t errlen)
{
	if (mgr_has(m, tag))
		return 0;
	snprintf(err, errlen, "%s: the field '%s' is missing", rtype, mgr_field_name(tag));
	return -1;
}

static int decode_group_create(const struct mgr_msg *m, struct mgr_request *r, const char *rt,
			       char *err, size_t errlen)
{
	char perr[256];
	size_t i, j;

	if (need(m, MGR_F_NAME, rt, err, errlen) < 0 ||
	    text_field(mgr_find(m, MGR_F_NAME), r->u.group_create.name, STORE_NAME_MAX, rt, err,
		       errlen) < 0)
		return -1;
	r->u.group_create.any_digest = mgr_has(m, MGR_F_ANY_DIGEST);
	for (i = 0; i < m->nfields; i++) {
		const struct mgr_field_view *f = &m->f[i];

		if (f->tag == MGR_F_PATTERN) {
			size_t k = r->u.group_create.npatterns;
			char *p = r->u.group_create.patterns[k >= STORE_MAX_PATTERNS ? 0 : k];

			if (k == STORE_MAX_PATTERNS) {
				snprintf(err, errlen, "%s: more than %d patterns", rt,
					 STORE_MAX_PATTERNS);
				return -1;
			}
			if (text_field(f, p, STORE_PATTERN_MAX, rt, err, errlen) < 0)
				return -1;
			if (label_pattern_check(p, perr, sizeof(perr)) < 0) {
				snprintf(err, errlen, "%s: %s", rt, perr);
				return -1;
			}
			for (j = 0; j < k; j++) {
				if (strcmp(r->u.group_create.patterns[j], p) == 0) {
					snprintf(err, errlen, "%s: pattern '%s' is given twice", rt,
						 p);
					return -1;
				}
			}
			r->u.group_create.npatterns++;
		} else if (f->tag == MGR_F_BIN_DIGEST) {
			size_t k = r->u.group_create.ndigests;

			if (k == STORE_MAX_DIGESTS) {
				snprintf(err, errlen, "%s: more than %d binary digests", rt,
					 STORE_MAX_DIGESTS);
				return -1;
			}
			memcpy(r->u.group_create.digests[k], f->val, 32);
			for (j = 0; j < k; j++) {
				if (memcmp(r->u.group_create.digests[j], f->val, 32) == 0) {
					snprintf(err, errlen,
						 "%s: binary digest %zu repeats digest %zu", rt, k,
						 j);
					return -1;
				}
			}
			r->u.group_create.ndigests++;
		}
	}
	if (r->u.group_create.npatterns == 0) {
		snprintf(err, errlen, "%s: a group needs at least one label pattern ('pattern')",
			 rt);
		return -1;
	}
	if (r->u.group_create.any_digest == (r->u.group_create.ndigests > 0)) {
		snprintf(err, errlen,
			 "%s: give either binary digests ('bin-digest') or 'any-digest', %s", rt,
			 r->u.group_create.any_digest ? "not both" : "one of them");
		return -1;
	}
	return 0;
}

/* The LABEL field of a vTPM create or rebind: a label (no wildcards), the guest identity. */
static int bound_label(const struct mgr_msg *m, struct mgr_request *r, const char *rt, char *err,
		       size_t errlen)
{
	char lerr[128] = "not a text";

	if (mgr_get_text(m, MGR_F_LABEL, r->label, sizeof(r->label)) < 0 ||
	    label_check(r->label, lerr, sizeof(lerr)) < 0) {
		snprintf(err, errlen, "%s: label: %s", rt, lerr);
		return -1;
	}
	r->has_label = true;
	return 0;
}

int mgr_request_decode(const struct mgr_msg *m, struct mgr_request *r, char *err, size_t errlen)
{
	const struct rule *rule = rule_of(m->type);
	uint64_t seen = 0;
	bool present;
	const char *rt;
	char lerr[256];
	size_t i;

	memset(r, 0, sizeof(*r));
	r->type = m->type;
	if (!rule) {
		snprintf(err, errlen, "message type 0x%04x is not a request of this protocol",
			 m->type);
		return REQ_UNKNOWN_TYPE;
	}
	rt = rule->name;
	for (i = 0; i < m->nfields; i++) {
		uint16_t tag = m->f[i].tag;

		if (tag >= 64 || !(rule->allowed & BIT(tag))) {
			snprintf(err, errlen, "%s: takes no field '%s' (tag %u)", rt,
				 mgr_field_name(tag), tag);
			return REQ_MALFORMED;
		}
		if ((seen & BIT(tag)) && !(rule->repeatable & BIT(tag))) {
			snprintf(err, errlen, "%s: field '%s' is given twice", rt,
				 mgr_field_name(tag));
			return REQ_MALFORMED;
		}
		seen |= BIT(tag);
	}
	switch (m->type) {
	case MGR_OPEN_CONFIRM:
		if (need(m, MGR_F_NONCE, rt, err, errlen) < 0)
			return REQ_MALFORMED;
		mgr_get_fixed(m, MGR_F_NONCE, r->u.inst.nonce, 32);
		if (need(m, MGR_F_UUID, rt, err, errlen) < 0)
			return REQ_MALFORMED;
		mgr_get_fixed(m, MGR_F_UUID, r->u.inst.uuid, 16);
		return REQ_OK;
	case MGR_RESUME:
		if (need(m, MGR_F_PROOF, rt, err, errlen) < 0)
			return REQ_MALFORMED;
		mgr_get_fixed(m, MGR_F_PROOF, r->u.inst.proof, 32);
		__attribute__((fallthrough));
	case MGR_COMMIT:
		if (need(m, MGR_F_VERSION, rt, err, errlen) < 0 ||
		    need(m, MGR_F_DIGEST, rt, err, errlen) < 0)
			return REQ_MALFORMED;
		mgr_get_u64(m, MGR_F_VERSION, &r->u.inst.version);
		mgr_get_fixed(m, MGR_F_DIGEST, r->u.inst.digest, 32);
		__attribute__((fallthrough));
	case MGR_OPEN:
	case MGR_CLOSE:
		if (need(m, MGR_F_UUID, rt, err, errlen) < 0)
			return REQ_MALFORMED;
		mgr_get_fixed(m, MGR_F_UUID, r->u.inst.uuid, 16);
		return REQ_OK;
	case MGR_HOST_INIT:
		if (need(m, MGR_F_PCR_MASK, rt, err, errlen) < 0)
			return REQ_MALFORMED;
		mgr_get_u32(m, MGR_F_PCR_MASK, &r->u.host_init.pcr_mask);
		r->u.host_init.force = mgr_has(m, MGR_F_FORCE);
		return pcr_mask_ok(r->u.host_init.pcr_mask, rt, err, errlen) < 0 ? REQ_MALFORMED
										 : REQ_OK;
	case MGR_HOST_STATUS:
		if (mgr_get_u32(m, MGR_F_PCR_MASK, &r->u.host_status.read_mask) == 0 &&
		    pcr_mask_ok(r->u.host_status.read_mask, rt, err, errlen) < 0)
			return REQ_MALFORMED;
		return pcr_values(m, &r->u.host_status.pv, rt, err, errlen) < 0 ? REQ_MALFORMED
										: REQ_OK;
	case MGR_HOST_RESEAL:
		r->u.host_reseal.has_mask =
		    mgr_get_u32(m, MGR_F_PCR_MASK, &r->u.host_reseal.pcr_mask) == 0;
		if (r->u.host_reseal.has_mask &&
		    pcr_mask_ok(r->u.host_reseal.pcr_mask, rt, err, errlen) < 0)
			return REQ_MALFORMED;
		r->u.host_reseal.predict = mgr_has(m, MGR_F_PREDICT);
		if (pcr_values(m, &r->u.host_reseal.pv, rt, err, errlen) < 0)
			return REQ_MALFORMED;
		if (r->u.host_reseal.predict != (r->u.host_reseal.pv.mask != 0)) {
			snprintf(err, errlen, "%s: %s", rt,
				 r->u.host_reseal.predict
				     ? "predict needs the predicted values (pcr-value fields)"
				     : "pcr-value fields are taken only with predict");
			return REQ_MALFORMED;
		}
		return REQ_OK;
	case MGR_HOST_POLICY_INSTALL: {
		const struct mgr_field_view *f;

		if (need(m, MGR_F_POLICY_KEY, rt, err, errlen) < 0)
			return REQ_MALFORMED;
		f = mgr_find(m, MGR_F_POLICY_KEY);
		r->u.host_policy.data = f->val;
		r->u.host_policy.len = f->len;
		r->u.host_policy.nv_index = HOST_POLICY_NV_DEFAULT;
		mgr_get_u32(m, MGR_F_NV_INDEX, &r->u.host_policy.nv_index);
		if (r->u.host_policy.nv_index < HOST_TPM_NV_FIRST ||
		    r->u.host_policy.nv_index > HOST_TPM_NV_LAST) {
			snprintf(err, errlen, "%s: NV index 0x%08x is outside 0x%08x..0x%08x", rt,
				 r->u.host_policy.nv_index, HOST_TPM_NV_FIRST, HOST_TPM_NV_LAST);
			return REQ_MALFORMED;
		}
		return REQ_OK;
	}
	case MGR_HOST_POLICY_ADD: {
		const struct mgr_field_view *f;

		if (need(m, MGR_F_POLICY, rt, err, errlen) < 0)
			return REQ_MALFORMED;
		f = mgr_find(m, MGR_F_POLICY);
		r->u.host_policy.data = f->val;
		r->u.host_policy.len = f->len;
		return REQ_OK;
	}
	case MGR_HOST_POLICY_REVOKE:
		if (need(m, MGR_F_SERIAL, rt, err, errlen) < 0)
			return REQ_MALFORMED;
		mgr_get_u64(m, MGR_F_SERIAL, &r->u.host_policy.serial);
		return REQ_OK;
	case MGR_GROUP_CREATE:
		return decode_group_create(m, r, rt, err, errlen) < 0 ? REQ_MALFORMED : REQ_OK;
	case MGR_VTPM_CREATE:
		if (mgr_has(m, MGR_F_LABEL) && bound_label(m, r, rt, err, errlen) < 0)
			return REQ_MALFORMED;
		__attribute__((fallthrough));
	case MGR_GROUP_SHOW:
	case MGR_GROUP_DELETE:
		return group_ref(m, &r->u.group, true, &present, rt, err, errlen) < 0
			   ? REQ_MALFORMED
			   : REQ_OK;
	case MGR_GROUP_LIST:
	case MGR_VTPM_LIST:
		if (group_ref(m, &r->u.list.group, false, &r->u.list.has_group, rt, err, errlen) <
		    0)
			return REQ_MALFORMED;
		mgr_get_u32(m, MGR_F_OFFSET, &r->u.list.offset);
		return REQ_OK;
	case MGR_VTPM_REBIND:
		if (need(m, MGR_F_LABEL, rt, err, errlen) < 0 ||
		    bound_label(m, r, rt, err, errlen) < 0)
			return REQ_MALFORMED;
		__attribute__((fallthrough));
	case MGR_VTPM_SHOW:
	case MGR_VTPM_DELETE:
		if (need(m, MGR_F_UUID, rt, err, errlen) < 0)
			return REQ_MALFORMED;
		mgr_get_fixed(m, MGR_F_UUID, r->u.vtpm.uuid, 16);
		return REQ_OK;
	case MGR_LABEL_REGISTER:
		if (need(m, MGR_F_PID, rt, err, errlen) < 0 ||
		    need(m, MGR_F_LABEL, rt, err, errlen) < 0)
			return REQ_MALFORMED;
		mgr_get_u32(m, MGR_F_PID, &r->u.label_reg.pid);
		if (r->u.label_reg.pid == 0 || r->u.label_reg.pid > INT32_MAX) {
			snprintf(err, errlen, "%s: pid %u is not a process id", rt,
				 r->u.label_reg.pid);
			return REQ_MALFORMED;
		}
		if (text_field(mgr_find(m, MGR_F_LABEL), r->u.label_reg.label, LABEL_MAX, rt, err,
			       errlen) < 0)
			return REQ_MALFORMED;
		if (label_check(r->u.label_reg.label, lerr, sizeof(lerr)) < 0) {
			snprintf(err, errlen, "%s: %s", rt, lerr);
			return REQ_MALFORMED;
		}
		r->u.label_reg.has_uuid =
		    mgr_get_fixed(m, MGR_F_UUID, r->u.label_reg.uuid, 16) == 0;
		return REQ_OK;
	case MGR_AUDIT_LIST:
		r->u.audit.count = REQ_AUDIT_DEFAULT;
		mgr_get_u32(m, MGR_F_COUNT, &r->u.audit.count);
		mgr_get_u32(m, MGR_F_OFFSET, &r->u.audit.offset);
		if (r->u.audit.offset > REQ_AUDIT_OFFSET_MAX) {
			snprintf(err, errlen, "%s: offset %u is over %d", rt, r->u.audit.offset,
				 REQ_AUDIT_OFFSET_MAX);
			return REQ_MALFORMED;
		}
		if (r->u.audit.count == 0 || r->u.audit.count > REQ_AUDIT_MAX) {
			snprintf(err, errlen, "%s: count %u is outside 1..%d", rt, r->u.audit.count,
				 REQ_AUDIT_MAX);
			return REQ_MALFORMED;
		}
		return REQ_OK;
	}
	snprintf(err, errlen, "message type 0x%04x has no decoder", m->type);
	return REQ_UNKNOWN_TYPE;
}
