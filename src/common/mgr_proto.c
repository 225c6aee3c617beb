#include "common/mgr_proto.h"

#include <stdio.h>
#include <string.h>

#include "common/cursor.h"

const char *mgr_status_name(uint32_t status)
{
	static const char *const names[] = {
	    [MGR_OK] = "ok",
	    [MGR_ERR_MALFORMED] = "malformed request",
	    [MGR_ERR_UNKNOWN_TYPE] = "unknown request type",
	    [MGR_ERR_DENIED] = "permission denied",
	    [MGR_ERR_NOT_FOUND] = "not found",
	    [MGR_ERR_BUSY] = "in use by another instance",
	    [MGR_ERR_ROLLBACK] = "rollback detected",
	    [MGR_ERR_EXISTS] = "already exists",
	    [MGR_ERR_NOT_PROVISIONED] = "host not provisioned",
	    [MGR_ERR_HOST_TPM] = "host TPM error",
	    [MGR_ERR_STORE] = "store error",
	    [MGR_ERR_INTERNAL] = "internal error",
	    [MGR_ERR_RETRY] = "temporarily unavailable, retry",
	};

	return status < sizeof(names) / sizeof(names[0]) && names[status] ? names[status]
									  : "unknown status";
}

/* Required value length per tag: >= 0 exact, -1 text, -2 nested record, -3 unknown tag,
 * -4 binary of 1..MGR_MAX_BLOB bytes. */
static int field_len_rule(uint16_t tag)
{
	switch (tag) {
	case MGR_F_STATUS:
	case MGR_F_PID:
	case MGR_F_PCR_MASK:
	case MGR_F_COUNT:
	case MGR_F_PROVISIONED:
	case MGR_F_NV_INDEX:
	case MGR_F_GROUPS:
	case MGR_F_VTPMS:
	case MGR_F_INSTANCES:
	case MGR_F_OPEN:
	case MGR_F_UID:
	case MGR_F_OFFSET:
		return 4;
	case MGR_F_VERSION:
	case MGR_F_TIME:
	case MGR_F_NV_VALUE:
	case MGR_F_STORE_COUNTER:
	case MGR_F_TPM_COMMANDS:
	case MGR_F_AUDIT_ID:
	case MGR_F_NV_OFFSET:
	case MGR_F_EPOCH:
	case MGR_F_SERIAL:
		return 8;
	case MGR_F_UUID:
	case MGR_F_GROUP_UUID:
		return 16;
	case MGR_F_STATE_KEY:
	case MGR_F_DIGEST:
	case MGR_F_BIN_DIGEST:
	case MGR_F_PROOF:
	case MGR_F_NONCE:
		return 32;
	case MGR_F_PCR_VALUE:
		return 33;
	case MGR_F_ANY_DIGEST:
	case MGR_F_FORCE:
	case MGR_F_MORE:
	case MGR_F_PREDICT:
		return 0;
	case MGR_F_MESSAGE:
	case MGR_F_NAME:
	case MGR_F_PATTERN:
	case MGR_F_LABEL:
	case MGR_F_STATE:
	case MGR_F_KEY:
	case MGR_F_VALUE:
	case MGR_F_ACTION:
	case MGR_F_SUBJECT:
	case MGR_F_RESULT:
		return -1;
	case MGR_F_AK_PUBLIC:
	case MGR_F_POLICY_KEY:
	case MGR_F_POLICY:
		return -4;
	case MGR_F_RECORD:
		return -2;
	default:
		return -3;
	}
}

static int text_ok(const uint8_t *p, size_t n)
{
	size_t i;

	if (n == 0 || n > MGR_MAX_TEXT)
		return 0;
	for (i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] == 0x7f)
			return 0;
	return 1;
}

int mgr_parse_fields(const uint8_t *buf, size_t len, struct mgr_msg *m, char *err, size_t errlen)
{
	struct rcursor c;

	m->nfields = 0;
	rc_init(&c, buf, len);
	while (rc_remaining(&c) > 0) {
		struct mgr_field_view *f;
		int rule;

		if (m->nfields == MGR_MAX_FIELDS) {
			snprintf(err, errlen, "more than %u fields", MGR_MAX_FIELDS);
			return -1;
		}
		f = &m->f[m->nfields];
		if (rc_u16(&c, &f->tag) < 0 || rc_u16(&c, &f->len) < 0 ||
		    rc_ptr(&c, &f->val, f->len) < 0) {
			snprintf(err, errlen, "field %zu is truncated", m->nfields);
			return -1;
		}
		rule = field_len_rule(f->tag);
		if (rule == -3) {
			snprintf(err, errlen, "field %zu has unknown tag %u", m->nfields, f->tag);
			return -1;
		}
		if (rule >= 0 && f->len != rule) {
			snprintf(err, errlen, "field tag %u has length %u, needs %d", f->tag,
				 f->len, rule);
			return -1;
		}
		if (rule == -4 && (f->len == 0 || f->len > MGR_MAX_BLOB)) {
			snprintf(err, errlen, "field tag %u has length %u, needs 1..%u", f->tag,
				 f->len, MGR_MAX_BLOB);
			return -1;
		}
		if (rule == -1 && !text_ok(f->val, f->len)) {
			snprintf(err, errlen,
				 "text field tag %u is empty, longer than %u bytes or has control "
				 "bytes",
				 f->tag, MGR_MAX_TEXT);
			return -1;
		}
		m->nfields++;
	}
	return 0;
}

int mgr_parse(const uint8_t *buf, size_t len, struct mgr_msg *m, char *err, size_t errlen)
{
	struct rcursor c;
	uint32_t body;

	rc_init(&c, buf, len);
	if (len > MGR_MAX_MSG || rc_u16(&c, &m->type) < 0 || rc_u16(&c, &m->flags) < 0 ||
	    rc_u32(&c, &body) < 0) {
		snprintf(err, errlen, "message of %zu bytes: shorter than the header or over %u",
			 len, MGR_MAX_MSG);
		return -1;
	}
	if (m->flags != 0) {
		snprintf(err, errlen, "header flags 0x%x are reserved", m->flags);
		return -1;
	}
	if (body != rc_remaining(&c)) {
		snprintf(err, errlen, "header says %u body bytes, message has %zu", body,
			 rc_remaining(&c));
		return -1;
	}
	return mgr_parse_fields(buf + MGR_HDR_LEN, body, m, err, errlen);
}

const struct mgr_field_view *mgr_find(const struct mgr_msg *m, uint16_t tag)
{
	size_t i;

	for (i = 0; i < m->nfields; i++)
		if (m->f[i].tag == tag)
			return &m->f[i];
	return NULL;
}

bool mgr_has(const struct mgr_msg *m, uint16_t tag)
{
	return mgr_find(m, tag) != NULL;
}

int mgr_get_u32(const struct mgr_msg *m, uint16_t tag, uint32_t *v)
{
	const struct mgr_field_view *f = mgr_find(m, tag);

	if (!f || f->len != 4)
		return -1;
	*v = be32_get(f->val);
	return 0;
}

int mgr_get_u64(const struct mgr_msg *m, uint16_t tag, uint64_t *v)
{
	const struct mgr_field_view *f = mgr_find(m, tag);

	if (!f || f->len != 8)
		return -1;
	*v = be64_get(f->val);
	return 0;
}

int mgr_get_fixed(const struct mgr_msg *m, uint16_t tag, void *out, size_t n)
{
	const struct mgr_field_view *f = mgr_find(m, tag);

	if (!f || f->len != n)
		return -1;
	memcpy(out, f->val, n);
	return 0;
}

int mgr_get_text(const struct mgr_msg *m, uint16_t tag, char *out, size_t cap)
{
	const struct mgr_field_view *f = mgr_find(m, tag);

	if (!f || f->len >= cap)
		return -1;
	memcpy(out, f->val, f->len);
	out[f->len] = '\0';
	return 0;
}

void mgr_build_init(struct mgr_builder *b, uint8_t *buf, size_t cap, uint16_t type)
{
	b->buf = buf;
	b->cap = cap < MGR_MAX_MSG ? cap : MGR_MAX_MSG;
	b->pos = MGR_HDR_LEN;
	b->record_start = 0;
	b->failed = b->cap < MGR_HDR_LEN;
	if (!b->failed) {
		be16_put(buf, type);
		be16_put(buf + 2, 0);
	}
}

static uint8_t *put_field(struct mgr_builder *b, uint16_t tag, size_t n)
{
	uint8_t *p;

	if (b->failed || n > UINT16_MAX || 4 + n > b->cap - b->pos) {
		b->failed = true;
		return NULL;
	}
	p = b->buf + b->pos;
	be16_put(p, tag);
	be16_put(p + 2, (uint16_t)n);
	b->pos += 4 + n;
	return p + 4;
}

void mgr_put_u32(struct mgr_builder *b, uint16_t tag, uint32_t v)
{
	uint8_t *p = put_field(b, tag, 4);

	if (p)
		be32_put(p, v);
}

void mgr_put_u64(struct mgr_builder *b, uint16_t tag, uint64_t v)
{
	uint8_t *p = put_field(b, tag, 8);

	if (p)
		be64_put(p, v);
}

void mgr_put_bytes(struct mgr_builder *b, uint16_t tag, const void *src, size_t n)
{
	uint8_t *p = put_field(b, tag, n);

	if (p && n)
		memcpy(p, src, n);
}

void mgr_put_text(struct mgr_builder *b, uint16_t tag, const char *s)
{
	size_t n = strlen(s);

	if (n > MGR_MAX_TEXT)
		n = MGR_MAX_TEXT; /* callers keep texts short; never send an over-long one */
	mgr_put_bytes(b, tag, s, n);
}

void mgr_put_flag(struct mgr_builder *b, uint16_t tag)
{
	put_field(b, tag, 0);
}

void mgr_record_begin(struct mgr_builder *b)
{
	if (b->record_start || b->failed || 4 > b->cap - b->pos) {
		b->failed = true;
		return;
	}
	be16_put(b->buf + b->pos, MGR_F_RECORD);
	b->record_start = b->pos + 2;
	b->pos += 4;
}

void mgr_record_end(struct mgr_builder *b)
{
	size_t n;

	if (b->failed || !b->record_start) {
		b->failed = true;
		return;
	}
	n = b->pos - (b->record_start + 2);
	if (n > UINT16_MAX) {
		b->failed = true;
		return;
	}
	be16_put(b->buf + b->record_start, (uint16_t)n);
	b->record_start = 0;
}

size_t mgr_build_finish(struct mgr_builder *b)
{
	if (b->failed || b->record_start)
		return 0;
	be32_put(b->buf + 4, (uint32_t)(b->pos - MGR_HDR_LEN));
	return b->pos;
}

void uuid_format(const uint8_t u[16], char out[37])
{
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
		 u[13], u[14], u[15]);
}

int uuid_from_text(const char *s, uint8_t out[16])
{
	size_t i, j = 0;
	int hi = -1;

	if (strlen(s) != 36)
		return -1;
	for (i = 0; i < 36; i++) {
		char ch = s[i];
		int nib;

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (ch != '-')
				return -1;
			continue;
		}
		if (ch >= '0' && ch <= '9')
			nib = ch - '0';
		else if (ch >= 'a' && ch <= 'f')
			nib = ch - 'a' + 10;
		else if (ch >= 'A' && ch <= 'F')
			nib = ch - 'A' + 10;
		else
			return -1;
		if (hi < 0) {
			hi = nib;
		} else {
			out[j++] = (uint8_t)(hi << 4 | nib);
			hi = -1;
		}
	}
	return 0;
}
