/*
 * manager.h — vtpmmgrd's state, shared by its request handlers (admin.c, instance.c) and its
 * event loop (main.c), and the reply a handler fills in.
 *
 * Single-threaded: one request is handled at a time, to its end, by one handler.
 */
#ifndef VTPM_MANAGER_H
#define VTPM_MANAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/mgr_proto.h"
#include "vtpmmgrd/conn_limits.h"
#include "vtpmmgrd/instances.h"
#include "vtpmmgrd/keys.h"
#include "vtpmmgrd/labels.h"
#include "vtpmmgrd/options.h"
#include "vtpmmgrd/peer_identity.h"
#include "vtpmmgrd/request.h"
#include "vtpmmgrd/rollback.h"

struct host_tpm;
struct journal;
struct store;
struct tpm_worker;

/* An MGR_OPEN whose identity was checked, waiting for its MGR_OPEN_CONFIRM (instance.c). */
#define PENDING_OPENS_MAX 64
#define PENDING_OPEN_MS	  10000
struct pending_open {
	bool used;
	uint8_t uuid[16];
	pid_t pid;
	struct peer_exe_id exe; /* what the process ran when it asked */
	uint8_t bin[32];
	char label[LABEL_MAX + 1];
	uint8_t nonce[32];
	int64_t deadline_ms; /* CLOCK_MONOTONIC */
};

struct mgrd {
	struct mgrd_opts opts;
	struct store *store;
	struct host_tpm *tpm;
	bool provisioned;
	uint8_t root_key[KEYS_KEY_LEN]; /* valid while provisioned; memory is locked */
	uint32_t pcr_mask;
	int64_t host_created;
	/* the signed policies' revocation counter, as last read (status costs no TPM command) */
	bool policy_counter_known;
	uint64_t policy_counter;
	uint64_t policy_serial; /* the signed policy that opened the root key at start */
	uint32_t policy_mask;
	struct rollback rb;	     /* rb.nv_index: the index in use (provisioned) */
	struct tpm_worker *worker;   /* the host TPM thread (the guard's advances) */
	uint64_t seen_counter;	     /* the store's change counter, as last seen */
	int64_t seen_audit;	     /* the newest audit row's id, as last seen */
	struct journal *journal;     /* who holds which vTPM, across restarts */
	struct peer_digests digests; /* binary digests, one per executable file */
	struct pending_open pending[PENDING_OPENS_MAX];
	struct labels labels;
	struct instances inst;
	bool have_admin_gid;
	gid_t admin_gid;
	struct mgr_msg *msg;	   /* scratch: the request being parsed */
	struct mgr_request *req;   /* scratch: the request decoded */
	struct conn_limits limits; /* per-uid/per-pid bounds (conn_limits.h; zeroed: defaults) */
	/* how the last mgrd_serve ended, for the event loop: status of the answer, and
	 * close: the message was malformed, the connection is to be closed after the answer */
	struct {
		uint16_t type; /* of the request, 0 if it had none */
		uint32_t status;
		bool close;
	} last;
};

/* Who sent a request: the connection's pinned peer and, per message, the pid the kernel
 * attached (SCM_CREDENTIALS; 0 if none). */
struct requester {
	const struct peer *peer;
	pid_t sender_pid;
};

#define REPLY_MSG_MAX 768

struct mgr_reply {
	struct mgr_builder b; /* STATUS OK is already in it when a handler starts */
	uint32_t status;
	char msg[REPLY_MSG_MAX]; /* why, when status != MGR_OK */
	bool audited;		 /* the store wrote this request's audit row already */
	bool no_audit;		 /* a successful request that is not audited (commit) */
	const char *action;	 /* the audit row's action, when not the request's name */
	char subject[STORE_SUBJECT_MAX + 1];
	char note[STORE_RESULT_MAX + 1]; /* detail of a success for the audit row */
};

/* Set a failure: status and message; returns status. */
uint32_t reply_fail(struct mgr_reply *r, uint32_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A text field with control bytes replaced by '?', cut to MGR_MAX_TEXT; empty: omitted. */
void reply_text(struct mgr_builder *b, uint16_t tag, const char *s);
/* Map a store error to a status (logical refusals to their own, the rest MGR_ERR_STORE). */
uint32_t reply_store_status(int store_rc);
/* Begin and end a list record so that one that does not fit is taken back: list_begin
 * returns the position to restore; list_end returns false (and restores) if it overflowed. */
size_t reply_record_begin(struct mgr_builder *b);
bool reply_record_end(struct mgr_builder *b, size_t saved);

/* Handlers. The request is decoded; the requester was identified at accept. */
void admin_handle(struct mgrd *d, const struct requester *who, const struct mgr_request *req,
		  struct mgr_reply *r);
/* 0 if the peer may use the admin socket, else a message in err. */
int admin_permitted(struct mgrd *d, const struct peer *p, char *err, size_t errlen);
void instance_handle(struct mgrd *d, const struct requester *who, const struct mgr_request *req,
		     struct mgr_reply *r);
/* Audit the exit of an instance (instances_reap callback; arg is the struct mgrd). */
void instance_exited(const struct instance *in, void *arg);
/* The instance journal (instance_journal.h): opened at start, taking back the live
 * instances of the manager before; closed at exit. */
int instances_journal_open(struct mgrd *d, char *err, size_t errlen);
void instances_journal_close(struct mgrd *d);

/* Why a datagram is not a request this socket serves (mgrd_decode). */
struct req_refusal {
	uint16_t type;	 /* the datagram's type field, 0 if it had none */
	uint32_t status; /* MGR_ERR_MALFORMED or MGR_ERR_UNKNOWN_TYPE */
	bool named;	 /* type is a request's: counted and audited under its name */
	char msg[REPLY_MSG_MAX];
};

/* Parse and decode one datagram received on a socket of kind (dispatch.c; no state: the
 * listener runs it). scratch: the parsed message. truncated: the datagram was longer than
 * MGR_MAX_MSG. 0 with req filled in, or -1 with why. */
int mgrd_decode(struct mgr_msg *scratch, enum req_socket kind, const uint8_t *in, size_t inlen,
		bool truncated, struct mgr_request *req, struct req_refusal *why);
/* Answer a decoded request (why NULL), or a refusal (req NULL): check (admin) the peer's
 * right, run the handler, count and audit, and build the response into out (MGR_MAX_MSG
 * bytes). Returns its length; 0 if none can be built (the connection is then closed). */
size_t mgrd_serve(struct mgrd *d, enum req_socket kind, const struct requester *who,
		  const struct mgr_request *req, const struct req_refusal *why, uint8_t *out);
/* mgrd_decode, then mgrd_serve: the admin socket's datagrams, which the parent reads. */
size_t mgrd_process(struct mgrd *d, enum req_socket kind, const struct requester *who,
		    const uint8_t *in, size_t inlen, bool truncated, uint8_t *out);

/* Close the per-uid windows of the connection limits that ended: log their summaries and
 * write the summary audit rows of suppressed refusals (dispatch.c). Returns the ms until the
 * next window closes, or -1. */
int64_t mgrd_limits_tick(struct mgrd *d, int64_t now_ms);

/* Before and after a store change (rollback.h). Return MGR_OK or set a failure in r. */
uint32_t mgrd_write_begin(struct mgrd *d, struct mgr_reply *r);
uint32_t mgrd_write_end(struct mgrd *d, struct mgr_reply *r);

#endif
