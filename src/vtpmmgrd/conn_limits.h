/*
 * conn_limits.h — what one local user may cost vtpmmgrd (ARCHITECTURE.md "Peer identity":
 * the instance socket is open to every local user, so connections, audit rows and log lines
 * are bounded per uid). The policy only: no sockets, no store; the event loop (main.c) and
 * dispatch.c act on its answers.
 *
 * Instance connections:
 *   - per pid: at most max_per_pid connections (a vtpmd needs one);
 *   - per uid: at most max_per_uid connections that have no vTPM open. A connection on which
 *     a vTPM is open (MGR_OPEN or MGR_RESUME succeeded, no MGR_CLOSE since) does not count:
 *     every vtpmd of a host may run as one uid (libvirt's swtpm_user, tss), and the number
 *     of guests is the group policy's business, not this cap's;
 *   - a connection that has no vTPM open idle_timeout_ms after its accept (or its
 *     MGR_CLOSE) is closed (refused requests do not extend it); one with an open vTPM never
 *     is;
 *   - trusted peers (root, members of --admin-group: they can open any vTPM through the
 *     admin socket anyway) are under neither cap and their refusals are all audited;
 *   - when the table is full, the oldest unopened connection of the uid that holds the most
 *     unopened connections is dropped to admit a new one (untrusted uids first); only when no
 *     connection can be dropped is the new one refused.
 * Events that an untrusted uid can repeat at will (refused connections, malformed messages,
 * idle or dropped connections, refused requests) are counted per uid in a window of
 * interval_ms that starts with the uid's first event: the first of each kind is logged at
 * once, the rest in one summary when the window closes (cl_tick). Refused requests are
 * audited up to audit_refusals rows per uid and window; the rest are counted and reported in
 * one summary row when the window closes.
 *
 * Hashing: the binary digests computed for a uid's peers (cache misses of peer_exe_digest)
 * cost at most hash_budget bytes per uid and window; over it, the open is refused.
 *
 * Memory: a hash table of the uids with connections or an open window (at most CL_MAX_UIDS;
 * beyond that, new uids share one entry reported as uid 4294967295), and one of the pids
 * with connections. Single-threaded.
 */
#ifndef VTPM_CONN_LIMITS_H
#define VTPM_CONN_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The defaults; vtpmmgrd --help (main.c) and vtpmmgrd(8) write them out too. */
#define CL_DEFAULT_MAX_CONNS	  8160 /* and 32 admin connections apart: 8192 in all */
#define CL_MAX_MAX_CONNS	  65536
#define CL_DEFAULT_MAX_PER_PID	  64
#define CL_DEFAULT_MAX_PER_UID	  128
#define CL_DEFAULT_IDLE_TIMEOUT_S 10
#define CL_DEFAULT_AUDIT_REFUSALS 10
#define CL_DEFAULT_INTERVAL_S	  60
#define CL_DEFAULT_HASH_BUDGET	  (256ull << 20)
#define CL_MAX_UIDS		  16384
#define CL_OVERFLOW_UID		  UINT32_MAX

struct cl_config {
	unsigned max_conns;	  /* instance connections in the table (> 0) */
	unsigned max_per_pid;	  /* 0: no cap */
	unsigned max_per_uid;	  /* unopened connections; 0: no cap */
	unsigned idle_timeout_ms; /* 0: unopened connections are never closed for idleness */
	unsigned audit_refusals;  /* audit rows of refusals per uid per interval; 0: no limit */
	unsigned interval_ms;	  /* the window of counting and summaries (> 0) */
	uint64_t hash_budget;	  /* bytes of executables hashed per uid and window; 0: none */
};

/* The defaults above. */
void cl_config_default(struct cl_config *c);

/* What the limits know of one instance connection (kept in the event loop's table). */
struct cl_conn {
	uid_t uid;
	pid_t pid;
	int64_t since_ms; /* cl_now_ms() at accept */
	bool trusted;	  /* root or --admin-group */
	bool opened;	  /* a vTPM is open on it */
	bool counted;	  /* cl_add was called (cl_remove undoes it) */
	bool overflow;	  /* counted in the shared entry of uids beyond CL_MAX_UIDS */
};

enum cl_event {
	CL_EV_REFUSED_CONN, /* a connection refused by a cap or a full table */
	CL_EV_MALFORMED,    /* a malformed message (its connection is closed) */
	CL_EV_IDLE,	    /* an unopened connection closed after the idle timeout */
	CL_EV_DROPPED,	    /* an unopened connection dropped for a newcomer, table full */
	CL_EV_REFUSAL,	    /* a well-formed request refused */
	CL_EV_HASH_REFUSED, /* a binary digest not computed: the uid's hashing budget is spent */
	CL_EV_N,
};

struct cl_entry {
	uint32_t key;
	bool used;
	uint32_t conns;	   /* connections (uid and pid tables) */
	uint32_t unopened; /* uid table: connections not opened */
	int64_t win_end;   /* uid table: when the window closes; 0: no window */
	uint32_t count[CL_EV_N];
	uint32_t rows;	     /* audit rows of refusals written in the window */
	uint32_t suppressed; /* refusals not audited in the window */
	uint64_t hashed;     /* bytes of executables hashed in the window */
};

struct cl_map {
	struct cl_entry *v;
	size_t cap; /* 0 or a power of two */
	size_t n;
};

struct conn_limits {
	const struct cl_config *cfg; /* NULL: the defaults */
	struct cl_map uids, pids;
	struct cl_entry overflow; /* uids beyond CL_MAX_UIDS */
	int64_t next_close;	  /* earliest win_end of any uid; 0: none */
};

/* One uid's window, as it closes. */
struct cl_report {
	uint32_t uid;
	uint32_t count[CL_EV_N];
	uint32_t rows;
	uint32_t suppressed;
	uint64_t hashed;
};

/* CLOCK_MONOTONIC in milliseconds. */
int64_t cl_now_ms(void);

/* cfg must outlive l (NULL: the defaults). A zeroed struct is a valid one with defaults. */
void cl_init(struct conn_limits *l, const struct cl_config *cfg);
void cl_free(struct conn_limits *l);
const struct cl_config *cl_cfg(const struct conn_limits *l);

enum cl_verdict {
	CL_ADMIT,
	CL_REFUSE_PID, /* the pid holds max_per_pid connections */
	CL_REFUSE_UID, /* the uid holds max_per_uid unopened connections */
};
/* Whether c (not counted yet) is within its pid's and uid's caps. The table size is the
 * caller's: when it is full, see cl_pick_victim. */
enum cl_verdict cl_admit(const struct conn_limits *l, const struct cl_conn *c);
/* Count c (after cl_admit said CL_ADMIT). 0, or -1 (out of memory: refuse it). */
int cl_add(struct conn_limits *l, struct cl_conn *c);
/* A vTPM was opened (or taken back) on c: it no longer counts as unopened, never idles. */
void cl_opened(struct conn_limits *l, struct cl_conn *c);
/* The vTPM open on c was closed (MGR_CLOSE) and the connection kept: it counts as unopened
 * again, and its idle timeout runs from now. */
void cl_unopened(struct conn_limits *l, struct cl_conn *c, int64_t now);
/* c is closed (any reason). */
void cl_remove(struct conn_limits *l, struct cl_conn *c);

/* Whether c has not opened a vTPM within the idle timeout at now. */
bool cl_idle_expired(const struct conn_limits *l, const struct cl_conn *c, int64_t now);
/* ms from now until c expires (-1: never). */
int64_t cl_idle_left(const struct conn_limits *l, const struct cl_conn *c, int64_t now);

/*
 * The table is full: which connection to drop to admit a newcomer of uid (trusted or not).
 * get(arg, i) gives connection i of n (NULL for one that does not count, e.g. an admin
 * connection). The oldest unopened connection of the untrusted uid holding the most unopened
 * connections; a trusted newcomer may also take one of a trusted uid when no untrusted one
 * is left. -1: none may be dropped (refuse the newcomer).
 */
long cl_pick_victim(const struct conn_limits *l, bool trusted, size_t n,
		    const struct cl_conn *(*get)(void *arg, size_t i), void *arg);

/* Count an event of uid at now; true if it is the first of its kind in the uid's window
 * (log it in full then; the rest go into the summary). */
bool cl_note(struct conn_limits *l, uid_t uid, enum cl_event ev, int64_t now);
/* A refused request of an untrusted uid (counted as CL_EV_REFUSAL): true if it gets an audit
 * row (within audit_refusals for the window), false if it is only counted. */
bool cl_audit_refusal(struct conn_limits *l, uid_t uid, int64_t now);

/* Charge bytes of hashing to uid at now: true if within the budget (then counted), false if
 * the budget of the window is spent (counted as CL_EV_HASH_REFUSED). */
bool cl_charge_hash(struct conn_limits *l, uid_t uid, uint64_t bytes, int64_t now);
/* The same as a hook for peer_digest_set_charge (arg: the struct conn_limits); the reason of a
 * refusal in err. */
bool cl_hash_hook(void *arg, uid_t uid, uint64_t bytes, char *err, size_t errlen);

/* Close every window that ended by now: report(arg, r) for each (whether or not anything
 * is left to say: see cl_report_needed), then forget uids with no connection. Returns the ms
 * until the next window closes, or -1 if none is open. */
int64_t cl_tick(struct conn_limits *l, int64_t now,
		void (*report)(void *arg, const struct cl_report *r), void *arg);
/* Whether a closing window has more to say than what was logged at once: an event kind
 * seen more than once, or refusals not audited. */
bool cl_report_needed(const struct cl_report *r);

#endif
