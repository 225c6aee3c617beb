/*
 * request.h — typed manager requests, decoded from a parsed message (mgr_parse).
 *
 * mgr_request_decode checks, per message type, that every field is one the type takes,
 * that a field given once at most is not repeated, that required fields are there, and
 * the values (PCR mask range, name length, label and pattern syntax, duplicates). The
 * error names the field and the rule. Nothing else in the manager reads a request's
 * fields; the handlers take a struct mgr_request.
 *
 * Fields per request (responses: see docs/vtpmmgrd.8):
 *   MGR_OPEN          UUID
 *   MGR_COMMIT        UUID, VERSION, DIGEST
 *   MGR_CLOSE         UUID
 *   MGR_OPEN_CONFIRM  UUID, NONCE
 *   MGR_RESUME        UUID, VERSION, DIGEST, PROOF
 *   MGR_HOST_INIT     PCR_MASK, [FORCE]
 *   MGR_HOST_STATUS   [PCR_VALUE (1..24, distinct PCRs)]
 *   MGR_HOST_RESEAL   [PCR_MASK], [PREDICT and PCR_VALUE (1..24, distinct PCRs)]
 *   MGR_GROUP_CREATE  NAME, PATTERN (1..64), BIN_DIGEST (1..64) or ANY_DIGEST
 *   MGR_GROUP_LIST    [OFFSET]
 *   MGR_GROUP_SHOW    NAME or GROUP_UUID
 *   MGR_GROUP_DELETE  NAME or GROUP_UUID
 *   MGR_VTPM_CREATE   NAME or GROUP_UUID (of the group), [LABEL (binds the vTPM)]
 *   MGR_VTPM_REBIND   UUID, LABEL
 *   MGR_VTPM_LIST     [NAME or GROUP_UUID], [OFFSET]
 *   MGR_VTPM_SHOW     UUID
 *   MGR_VTPM_DELETE   UUID
 *   MGR_LABEL_REGISTER PID, LABEL, [UUID (the only vTPM the pid may open)]
 *   MGR_AUDIT_LIST    [COUNT (1..1000, default 20)], [OFFSET (newest rows to skip)]
 */
#ifndef VTPM_REQUEST_H
#define VTPM_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/mgr_proto.h"
#include "common/label_match.h"
#include "vtpmmgrd/store.h"

#define REQ_AUDIT_DEFAULT    20
#define REQ_AUDIT_MAX	     1000
#define REQ_AUDIT_OFFSET_MAX 1000000

enum req_socket { REQ_INSTANCE = 1, REQ_ADMIN = 2 };

enum {
	REQ_OK = 0,
	REQ_MALFORMED = -1,    /* err says which field and why */
	REQ_UNKNOWN_TYPE = -2, /* not a request type of this protocol */
};

/* SHA-256 PCR values given in a request (PCR_VALUE fields): values[i] for each i in mask;
 * mask 0: none given. */
struct req_pcr_values {
	uint32_t mask;
	uint8_t values[24][32];
};

/* A group named by name or by UUID. */
struct req_group_ref {
	bool by_uuid;
	uint8_t uuid[16];
	char name[STORE_NAME_MAX + 1];
};

struct mgr_request {
	uint16_t type;
	/* VTPM_CREATE (optional) and VTPM_REBIND: the guest identity to bind the vTPM to */
	bool has_label;
	char label[LABEL_MAX + 1];
	union {
		struct {
			uint8_t uuid[16];
			uint64_t version;
			uint8_t digest[32];
			uint8_t proof[32];
			uint8_t nonce[32];
		} inst; /* OPEN, COMMIT (all three), CLOSE (uuid), RESUME (all four) */
		struct {
			uint32_t pcr_mask;
			bool force;
		} host_init;
		struct {
			bool has_mask;
			uint32_t pcr_mask;
			bool predict; /* a predicted copy to pv, beside the current one */
			struct req_pcr_values pv;
		} host_reseal;
		/* HOST_POLICY_INSTALL (data: the key), _ADD (data: the policy file), _REVOKE;
		 * data points into the request message */
		struct {
			const uint8_t *data;
			size_t len;
			uint32_t nv_index;
			uint64_t serial;
		} host_policy;
		struct {
			struct req_pcr_values pv; /* mask 0: no check asked */
			uint32_t read_mask; /* PCR_MASK: the current values of these PCRs, read */
		} host_status;
		struct {
			char name[STORE_NAME_MAX + 1];
			size_t npatterns;
			char patterns[STORE_MAX_PATTERNS][STORE_PATTERN_MAX + 1];
			bool any_digest;
			size_t ndigests;
			uint8_t digests[STORE_MAX_DIGESTS][32];
		} group_create;
		struct req_group_ref group; /* GROUP_SHOW, GROUP_DELETE, VTPM_CREATE */
		struct {
			bool has_group;
			struct req_group_ref group;
			uint32_t offset;
		} list; /* GROUP_LIST (offset), VTPM_LIST */
		struct {
			uint8_t uuid[16];
		} vtpm; /* VTPM_SHOW, VTPM_DELETE */
		struct {
			uint32_t pid;
			char label[LABEL_MAX + 1];
			bool has_uuid; /* the vTPM the process is for; it may open no other */
			uint8_t uuid[16];
		} label_reg;
		struct {
			uint32_t count;
			uint32_t offset;
		} audit;
	} u;
};

int mgr_request_decode(const struct mgr_msg *m, struct mgr_request *r, char *err, size_t errlen);
/* The socket a request type is served on (0: unknown type). */
enum req_socket mgr_request_socket(uint16_t type);
/* A short name of a request type ("open", "group-create", ...); "unknown" otherwise. */
const char *mgr_request_name(uint16_t type);
/* A short name of a field tag ("uuid", "pattern", ...), for messages. */
const char *mgr_field_name(uint16_t tag);

#endif
