/*
 * mgr_proto.h — the manager protocol, one header for both ends (vtpmd, vtpmctl and
 * vtpmmgrd), as OpenBSD's imsg: every message type is listed here.
 *
 * Transport: unix SOCK_SEQPACKET, one request, one response, 64 KiB at most per message.
 * A message is an 8-byte header, big-endian:
 *
 *   u16 type   (a response has MGR_RESPONSE set on the request's type)
 *   u16 flags  (0; reserved)
 *   u32 length of the body that follows (must equal the datagram's remaining bytes)
 *
 * and a body of typed fields, each u16 tag, u16 length, value. Integers in values are
 * big-endian; texts are UTF-8 bytes without NUL. A field may repeat where a message says
 * so (patterns, digests, list records); a record (MGR_F_RECORD) nests fields. Every
 * response carries MGR_F_STATUS and, when it is not MGR_OK, MGR_F_MESSAGE saying why.
 * The receiver checks every field's length against what its tag requires before use.
 */
#ifndef VTPM_MGR_PROTO_H
#define VTPM_MGR_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MGR_MAX_MSG    65536u
#define MGR_HDR_LEN    8u
#define MGR_MAX_FIELDS 512u
#define MGR_RESPONSE   0x8000u
#define MGR_MAX_TEXT   1024u
#define MGR_MAX_BLOB   4096u /* variable-length binary fields (MGR_F_AK_PUBLIC) */

enum mgr_type {
	/* instance socket (vtpmd) */
	/* UUID → NONCE: the identity was checked; the key comes with MGR_OPEN_CONFIRM, which
	 * only the same process, still running the same executable, can send (a process that
	 * execs a permitted binary after asking cannot hand the answer to another) */
	MGR_OPEN = 0x0101,
	MGR_COMMIT = 0x0102, /* UUID, VERSION, DIGEST → (status) */
	MGR_CLOSE = 0x0103,  /* UUID → (status) */
	/* UUID, VERSION, DIGEST, PROOF → (status): a running instance taken back by a restarted
	 * manager; PROOF = HMAC-SHA256(state key, MGR_RESUME_LABEL || UUID || u32 pid ||
	 * u64 VERSION || DIGEST), VERSION/DIGEST the newest commit the manager accepted */
	MGR_RESUME = 0x0104,
	MGR_OPEN_CONFIRM = 0x0105, /* UUID, NONCE → STATE_KEY, VERSION, DIGEST, GROUP_UUID */
	/* admin socket (vtpmctl) */
	MGR_HOST_INIT = 0x0201, /* PCR_MASK, [FORCE] → (status) */
	/* [PCR_VALUE*], [PCR_MASK: read those PCRs, one host TPM command] → RECORD fields of
	 * the host (with PCR_MASK: a PCR_VALUE field per PCR read) */
	MGR_HOST_STATUS = 0x0202,
	MGR_HOST_RESEAL = 0x0203, /* [PCR_MASK], [PREDICT, PCR_VALUE*] → (status) */
	/* signed host policies (docs/vtpmmgrd.8, SIGNED POLICIES) */
	MGR_HOST_POLICY_INSTALL = 0x0204, /* POLICY_KEY, [NV_INDEX] → (status) */
	MGR_HOST_POLICY_ADD = 0x0205,	  /* POLICY → (status) */
	MGR_HOST_POLICY_REVOKE = 0x0206,  /* SERIAL: revoke every policy below it → NV_VALUE */
	MGR_GROUP_CREATE = 0x0211,   /* NAME, PATTERN*, BIN_DIGEST* | ANY_DIGEST → GROUP_UUID */
	MGR_GROUP_LIST = 0x0212,     /* → RECORD* */
	MGR_GROUP_SHOW = 0x0213,     /* NAME → RECORD */
	MGR_GROUP_DELETE = 0x0214,   /* NAME → (status) */
	MGR_VTPM_CREATE = 0x0221,    /* NAME (group) → UUID */
	MGR_VTPM_LIST = 0x0222,	     /* → RECORD* */
	MGR_VTPM_SHOW = 0x0223,	     /* UUID → RECORD */
	MGR_VTPM_DELETE = 0x0224,    /* UUID → (status) */
	MGR_VTPM_REBIND = 0x0225,    /* UUID, LABEL → (status): bind to another guest identity */
	MGR_LABEL_REGISTER = 0x0231, /* PID, LABEL → (status) */
	MGR_AUDIT_LIST = 0x0241,     /* [COUNT] → RECORD* */
};

enum mgr_field {
	MGR_F_STATUS = 1,      /* u32 mgr_status */
	MGR_F_MESSAGE = 2,     /* text */
	MGR_F_UUID = 3,	       /* 16 bytes */
	MGR_F_STATE_KEY = 4,   /* 32 bytes */
	MGR_F_VERSION = 5,     /* u64 */
	MGR_F_DIGEST = 6,      /* 32 bytes: SHA-256 of a state-file slot */
	MGR_F_GROUP_UUID = 7,  /* 16 bytes */
	MGR_F_NAME = 8,	       /* text */
	MGR_F_PATTERN = 9,     /* text: label pattern user:role:type, '*' per field */
	MGR_F_BIN_DIGEST = 10, /* 32 bytes: SHA-256 of a permitted vtpmd executable */
	MGR_F_ANY_DIGEST = 11, /* 0 bytes: any vtpmd executable */
	MGR_F_PID = 12,	       /* u32 */
	MGR_F_LABEL = 13,      /* text */
	MGR_F_PCR_MASK = 14,   /* u32: SHA-256 host PCRs the root key is sealed to */
	MGR_F_FORCE = 15,      /* 0 bytes */
	MGR_F_RECORD = 16,     /* nested fields */
	MGR_F_COUNT = 17,      /* u32 */
	MGR_F_TIME = 18,       /* u64: seconds since the epoch */
	MGR_F_STATE = 19,      /* text: a state name (e.g. "running", "stopped") */
	MGR_F_KEY = 20,	       /* text: a property name in a record */
	MGR_F_VALUE = 21,      /* text: a property value in a record */
	/* Added for vtpmmgrd's admin responses (host status, records, audit rows, paging). */
	MGR_F_PROVISIONED = 22,	  /* u32: 1 if the host is provisioned, else 0 */
	MGR_F_NV_INDEX = 23,	  /* u32: the host TPM NV counter's index */
	MGR_F_NV_VALUE = 24,	  /* u64: the host TPM NV counter's value */
	MGR_F_STORE_COUNTER = 25, /* u64: the store's commit counter */
	MGR_F_GROUPS = 26,	  /* u32: number of groups */
	MGR_F_VTPMS = 27,	  /* u32: number of vTPMs (in a group record: of that group) */
	MGR_F_INSTANCES = 28,	  /* u32: number of open instances */
	MGR_F_TPM_COMMANDS = 29,  /* u64: host TPM commands sent since the manager started */
	MGR_F_OPEN = 30,	  /* u32: 1 if the vTPM is open by a live instance, else 0 */
	MGR_F_UID = 31,		  /* u32 */
	MGR_F_ACTION = 32,	  /* text: audit action */
	MGR_F_SUBJECT = 33,	  /* text: audit subject */
	MGR_F_RESULT = 34,	  /* text: audit result ("ok", "ok: ...", "refused: ...") */
	MGR_F_AUDIT_ID = 35,	  /* u64: audit row id (grows with every row) */
	MGR_F_OFFSET = 36,	  /* u32: list requests: skip this many items */
	MGR_F_MORE = 37,      /* 0 bytes: list response truncated to fit; ask again with OFFSET */
	MGR_F_AK_PUBLIC = 38, /* 1..4096 bytes: host AK public key, DER SubjectPublicKeyInfo */
	MGR_F_NV_OFFSET = 39, /* u64 (two's complement): NV value minus store counter */
	MGR_F_PROOF = 40,     /* 32 bytes: MGR_RESUME's proof of the state key */
	MGR_F_EPOCH = 41,     /* u64: the store's rollback-guard epoch */
	/* 33 bytes: u8 PCR number (0..23) + its SHA-256 value; repeatable (one per PCR):
	 * HOST_RESEAL with PREDICT: the expected values of the next boot; HOST_STATUS: values
	 * to check (would a boot with them unseal the root key?) */
	MGR_F_PCR_VALUE = 42,
	MGR_F_PREDICT = 43,    /* 0 bytes: HOST_RESEAL seals a predicted copy (PCR_VALUE*) */
	MGR_F_POLICY_KEY = 44, /* 1..4096 bytes: the admin's policy key, DER SubjectPublicKeyInfo */
	MGR_F_POLICY = 45,     /* 1..4096 bytes: a signed policy file (host_policy.h) */
	MGR_F_SERIAL = 46,     /* u64: a signed policy's serial */
	/* instance-side fields from 60 down, admin-side ones from 42 up (46 is the last) */
	MGR_F_NONCE = 60, /* 32 bytes: MGR_OPEN's challenge, returned by MGR_OPEN_CONFIRM */
};

enum mgr_status {
	MGR_OK = 0,
	MGR_ERR_MALFORMED = 1, /* the request does not parse */
	MGR_ERR_UNKNOWN_TYPE = 2,
	MGR_ERR_DENIED = 3,    /* identity (label, digest, uid) not permitted */
	MGR_ERR_NOT_FOUND = 4, /* unknown UUID or name */
	MGR_ERR_BUSY = 5,      /* the vTPM is open in another live instance */
	MGR_ERR_ROLLBACK = 6,  /* a version older than the manager's record */
	MGR_ERR_EXISTS = 7,
	MGR_ERR_NOT_PROVISIONED = 8,
	MGR_ERR_HOST_TPM = 9, /* the host TPM failed or is in an unexpected state */
	MGR_ERR_STORE = 10,   /* the store failed */
	MGR_ERR_INTERNAL = 11,
	/* a transient fault on the manager's side (store disk full or I/O error, shutting
	 * down): nothing was changed; the same request will succeed later. vtpmd waits and
	 * retries, it never fails a guest command for it. */
	MGR_ERR_RETRY = 12,
};

#define MGR_RESUME_LABEL "vtpm-resume-v1"

const char *mgr_status_name(uint32_t status);

/* A field as received: a view into the message buffer. */
struct mgr_field_view {
	uint16_t tag;
	uint16_t len;
	const uint8_t *val;
};

struct mgr_msg {
	uint16_t type;
	uint16_t flags;
	size_t nfields;
	struct mgr_field_view f[MGR_MAX_FIELDS];
};

/* Parse a whole datagram (header + body) or a record's value (mgr_parse_fields). Returns 0,
 * or -1 with a precise reason in err. Field values are checked against their tag's
 * required length; texts must be 1..MGR_MAX_TEXT bytes without NUL or control bytes. */
int mgr_parse(const uint8_t *buf, size_t len, struct mgr_msg *m, char *err, size_t errlen);
int mgr_parse_fields(const uint8_t *buf, size_t len, struct mgr_msg *m, char *err, size_t errlen);

/* Accessors: the first field with tag; -1 if absent. */
const struct mgr_field_view *mgr_find(const struct mgr_msg *m, uint16_t tag);
int mgr_get_u32(const struct mgr_msg *m, uint16_t tag, uint32_t *v);
int mgr_get_u64(const struct mgr_msg *m, uint16_t tag, uint64_t *v);
/* Copy a fixed-size field (UUID, key, digest). */
int mgr_get_fixed(const struct mgr_msg *m, uint16_t tag, void *out, size_t n);
/* Copy a text field into out (NUL-terminated; cap >= MGR_MAX_TEXT + 1). */
int mgr_get_text(const struct mgr_msg *m, uint16_t tag, char *out, size_t cap);
bool mgr_has(const struct mgr_msg *m, uint16_t tag);

/* Building a message into a caller's buffer of MGR_MAX_MSG bytes. */
struct mgr_builder {
	uint8_t *buf;
	size_t cap;
	size_t pos;
	size_t record_start; /* offset of an open record's length field, 0 if none */
	bool failed;
};

void mgr_build_init(struct mgr_builder *b, uint8_t *buf, size_t cap, uint16_t type);
void mgr_put_u32(struct mgr_builder *b, uint16_t tag, uint32_t v);
void mgr_put_u64(struct mgr_builder *b, uint16_t tag, uint64_t v);
void mgr_put_bytes(struct mgr_builder *b, uint16_t tag, const void *p, size_t n);
void mgr_put_text(struct mgr_builder *b, uint16_t tag, const char *s);
void mgr_put_flag(struct mgr_builder *b, uint16_t tag);
void mgr_record_begin(struct mgr_builder *b);
void mgr_record_end(struct mgr_builder *b);
/* Finish: fills in the body length. Returns the message length, or 0 if it overflowed. */
size_t mgr_build_finish(struct mgr_builder *b);

/* UUID text (36 chars + NUL) from 16 bytes, and back (-1 if malformed). */
void uuid_format(const uint8_t uuid[16], char out[37]);
int uuid_from_text(const char *s, uint8_t out[16]);

#endif
