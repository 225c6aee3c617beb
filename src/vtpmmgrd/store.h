/*
 * store.h — vtpmmgrd's SQLite store: the host provisioning record, groups, vTPMs (wrapped
 * state keys, newest state versions) and the audit log. vtpmmgrd alone owns it.
 *
 * Durability and atomicity. The database runs in WAL mode with synchronous=FULL,
 * foreign_keys=ON, and locking_mode=EXCLUSIVE: the first access takes a file lock that the
 * connection keeps until store_close, so no other process (a second vtpmmgrd, an sqlite3
 * shell) can read or write the store while vtpmmgrd runs; store_open waits STORE_BUSY_MS
 * for it, then fails with STORE_LOCKED. Every mutating function is ONE transaction
 * (BEGIN IMMEDIATE ... COMMIT): when it returns STORE_OK the change is on disk. When it
 * returns an error, the store holds the old state, or (if the error struck after the
 * commit record reached the disk, e.g. a failed fsync) the new one, whole; never a mix.
 * A kill -9 or a power cut at any moment leaves the old or the new state.
 *
 * Integrity. The store carries, in its meta row, `counter`, the rollback guard (see
 * store_guard), `audit_rows`, `agg` and `mac` (store_mac.c has the exact bytes):
 *   agg = XOR over every row of host, vtpm_groups, group_patterns, group_digests, vtpms
 *         and audit of HMAC-SHA256(row key, table number || the row's typed columns)
 *   mac = HMAC-SHA256(top key, "vtpm-store-mac-v2" || schema version || counter ||
 *         guard || audit_rows || agg || digest of the schema objects)
 * with the row key and the top key derived from the MAC key (HKDF, distinct labels). The
 * per-row values are never stored. Each mutation reads, inside its transaction, the rows
 * it changes or deletes and XORs their old values out and their new values in; the commit
 * rewrites agg and mac. No mutation reads the whole store, so a commit costs the same with
 * 10 vTPMs as with 10,000. store_verify recomputes agg over every row and checks agg and
 * mac: a value changed, a row deleted, added or duplicated, a row put back from an older
 * copy of the file, a changed guard, counter or schema object is STORE_TAMPERED.
 *
 * Counter and rollback guard. Each committed change of the host, group, vTPM or guard
 * records bumps `counter` by exactly one, in the same transaction as the change; an
 * audit-only transaction (store_audit_append, a refusal's row) rewrites agg and mac but not
 * the counter. The MAC proves a store authentic, not current: an older copy of the file
 * verifies, with its own older counter and guard. Telling it from the current store is
 * the caller's job (rollback.c), by the counter against the host TPM NV counter, or by the
 * guard's epoch (kept with store_guard_put, which bumps the counter like any change).
 * Two copies that differ only in audit rows have the same counter.
 *
 * Rules (exact):
 *  1. store_open creates the schema when the file is new (mode 0600, schema version
 *     STORE_SCHEMA_VERSION, counter 0, no MAC). It refuses a schema version newer than
 *     STORE_SCHEMA_VERSION (STORE_NEWER) and a non-empty database without a version
 *     (STORE_CORRUPT). An older version is upgraded by store_verify (rule 4).
 *  2. Reads work at any time, but return verified data only after store_verify succeeded.
 *     Before it, the caller may read the host record (to unseal the root key and derive
 *     the MAC key) and must treat it as untrusted until store_verify succeeds.
 *  3. store_set_mac_key copies the key (the caller cleanses its own copy) and clears the
 *     "verified" mark. Mutations need both a key and a successful store_verify since the
 *     key was set (STORE_NO_KEY, STORE_NOT_VERIFIED otherwise). Set inside store_begin ...
 *     store_commit, the commit MACs under the new key (it then reads every row, once).
 *  4. store_verify: a store without a MAC is valid, with or without a key, only as
 *     created: counter 0, no host/group/vTPM row, a zero guard (audit rows allowed, see
 *     Audit; a store emptied and stripped of its MAC is thus a new store, as a deleted
 *     file would be: the rollback guard, not the MAC, must notice). Otherwise it needs the key,
 * recomputes agg and mac and compares both in constant time: a mismatch is STORE_TAMPERED, "the
 * store was modified outside vtpmmgrd (MAC mismatch)"; a missing MAC on a non-empty store is
 * STORE_TAMPERED too. A version-1 store is checked with the version-1 MAC (a full HMAC over the
 * rows, audit excluded), then upgraded to version 3 in one transaction (same counter: an upgrade
 * changes the layout, not the content; its audit rows become covered). A version-2 store is
 * checked with the version-2 MAC (its host row without the signed-policy columns, schema
 * version 2 in the top MAC), then upgraded to version 3 the same way; store_host_get reads a
 * version-2 host row before the upgrade. It also runs PRAGMA quick_check (STORE_CORRUPT).
 *  5. A logical refusal (STORE_NOT_FOUND, STORE_EXISTS, STORE_BUSY, STORE_INVALID,
 *     STORE_ROLLBACK) changes nothing but its audit row and does not bump the counter.
 *
 * Audit. Each admin mutation (host_put, group_add, group_delete, vtpm_add, vtpm_delete,
 * vtpm_set_state) given a non-NULL `who` appends one audit row in the SAME transaction as
 * the change: result "ok" when the change is committed; a logical refusal commits no
 * change but records one row, result "refused: <reason>" (also in one transaction).
 * An I/O failure records nothing (the store could not write). store_vtpm_set_version and
 * store_guard_put are not audited (they run on every TPM state write and every guard
 * step). store_audit_append records other refusals (denied peers, ...) on its own.
 * Audit rows are covered by agg like every other row, so a row deleted, edited or forged
 * on disk is detected at store_verify. The log is bounded: an append that takes it over
 * store_set_audit_keep rows (default 100000) deletes the oldest rows in its transaction.
 * A store without a MAC (fresh, before provisioning: the manager logs refusals before it
 * has a key) takes audit rows without a key, uncovered; the first keyed change folds
 * them into agg, and from then on an append needs the key and a verified store like any
 * mutation.
 *
 * Deleting a vTPM or group deletes its rows with secure_delete=ON and checkpoints and
 * truncates the WAL, so the wrapped key's bytes leave the database files (the file
 * system or the flash may keep old blocks: the guarantee is the group key's).
 *
 * The store keeps its own copy of the MAC key (and the two subkeys), overwritten by the next
 * store_set_mac_key and cleansed by store_close. It does not mlock it (munlock would undo
 * vtpmmgrd's mlockall for that page): vtpmmgrd locks its memory as a whole.
 *
 * Not thread-safe: one struct store per thread. Every function returns STORE_OK (0) or
 * a negative enum store_rc, and leaves a precise message for store_errmsg.
 */
#ifndef VTPM_STORE_H
#define VTPM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_SCHEMA_VERSION 3
#define STORE_BUSY_MS	     2000
#define STORE_UUID_LEN	     16
#define STORE_DIGEST_LEN     32
#define STORE_MAC_KEY_LEN    32
#define STORE_NAME_MAX	     64	  /* bytes of a group name */
#define STORE_PATTERN_MAX    256  /* bytes of a label pattern */
#define STORE_LABEL_MAX	     1024 /* bytes of a bound label */
#define STORE_MAX_PATTERNS   64	  /* per group */
#define STORE_MAX_DIGESTS    64	  /* per group */
#define STORE_WRAPPED_MAX    256  /* bytes of a wrapped group or state key */
#define STORE_BLOB_MAX	     4096 /* bytes of the sealed root key, of the AK public DER */
#define STORE_STATE_MAX	     31	  /* bytes of a vTPM state name: [a-z-] */
#define STORE_ACTION_MAX     63	  /* audit texts are truncated to these on append */
#define STORE_SUBJECT_MAX    127
#define STORE_RESULT_MAX     255

#define STORE_VTPM_CREATED	"created"
#define STORE_VTPM_MIGRATED_OUT "migrated-out"

enum store_rc {
	STORE_OK = 0,
	STORE_NOT_FOUND = -1, /* no such host record, group or vTPM */
	STORE_EXISTS = -2,    /* the UUID or the group name is taken */
	STORE_BUSY = -3,      /* the group still has vTPMs */
	STORE_INVALID = -4,   /* an argument is out of range (length, state name) */
	STORE_ROLLBACK =
	    -5, /* set_version: older than (or same as, with another digest) the record */
	STORE_NO_KEY = -6,	 /* the MAC key is not set */
	STORE_NOT_VERIFIED = -7, /* mutation before a successful store_verify */
	STORE_TAMPERED = -8,	 /* MAC mismatch, or content without a MAC */
	STORE_CORRUPT = -9,	 /* a row or the file does not have the shape the schema requires */
	STORE_NEWER = -10,	 /* schema version newer than this program knows */
	STORE_LOCKED = -11,	 /* another process holds the store */
	STORE_IO = -12,		 /* SQLite or the file system failed (I/O error, disk full, ...) */
	STORE_CALLBACK_STOP = -13 /* never returned by the store; list callbacks may use it */
};

struct store;

/* Who asked for an admin action (from SO_PEERCRED of the admin socket). */
struct store_actor {
	uint32_t uid;
	uint32_t pid;
};

struct store_host {
	uint32_t pcr_mask;
	uint32_t nv_index;
	uint8_t
	    sealed_root[STORE_BLOB_MAX];   /* the sealed root key object, as host_tpm marshals it */
	size_t sealed_root_len;		   /* 1..STORE_BLOB_MAX */
	uint8_t ak_public[STORE_BLOB_MAX]; /* the host AK public key, DER SubjectPublicKeyInfo */
	size_t ak_public_len;		   /* 0..STORE_BLOB_MAX */
	int64_t created;		   /* seconds since the epoch; 0 on put = now */
	/* A second sealed copy of the root key, to the predicted values of the next boot
	 * (vtpmctl host reseal --predict); tried at start when the current copy's PCRs differ,
	 * and made the current copy by the first start that used it. */
	uint8_t sealed_next[STORE_BLOB_MAX];
	size_t sealed_next_len; /* 0..STORE_BLOB_MAX; 0: none (stored as NULL) */
	int64_t next_created;	/* when sealed_next was made (seconds); 0 when there is none */
	/* Signed policies (schema 3; vtpmctl host policy): the admin's policy key (DER
	 * SubjectPublicKeyInfo), the root key sealed under PolicyAuthorize of that key, the
	 * revocation counter's NV index and the signed policies (u16 length + policy file,
	 * repeated). Lengths 0 and index 0: none (NULL in the store). */
	uint8_t policy_key[STORE_BLOB_MAX];
	size_t policy_key_len;
	uint8_t sealed_auth[STORE_BLOB_MAX];
	size_t sealed_auth_len;
	uint32_t policy_nv;
	uint8_t policies[STORE_BLOB_MAX];
	size_t policies_len;
};

struct store_group {
	uint8_t uuid[STORE_UUID_LEN];
	char name[STORE_NAME_MAX + 1];
	bool any_digest;
	size_t npatterns; /* distinct; returned sorted (bytewise) */
	char patterns[STORE_MAX_PATTERNS][STORE_PATTERN_MAX + 1];
	size_t ndigests; /* distinct; returned sorted (bytewise) */
	uint8_t digests[STORE_MAX_DIGESTS][STORE_DIGEST_LEN];
	uint8_t wrapped_key[STORE_WRAPPED_MAX];
	size_t wrapped_key_len; /* 1..STORE_WRAPPED_MAX */
	int64_t created;	/* 0 on add = now */
};

struct store_vtpm {
	uint8_t uuid[STORE_UUID_LEN];
	uint8_t group_uuid[STORE_UUID_LEN];
	uint8_t wrapped_key[STORE_WRAPPED_MAX];
	size_t wrapped_key_len; /* 1..STORE_WRAPPED_MAX */
	uint64_t version;	/* newest committed state version */
	uint8_t digest[STORE_DIGEST_LEN];
	char state[STORE_STATE_MAX + 1]; /* STORE_VTPM_CREATED, STORE_VTPM_MIGRATED_OUT, ... */
	int64_t created;		 /* 0 on add = now */
	/* the guest identity the vTPM belongs to: the label whose user field and level may
	 * open it (set at create, or by the first open; changed only by rebind); "" unbound */
	char bound_label[STORE_LABEL_MAX + 1];
};

struct store_audit {
	int64_t id; /* grows with every row */
	int64_t time;
	uint32_t uid;
	uint32_t pid;
	char action[STORE_ACTION_MAX + 1];
	char subject[STORE_SUBJECT_MAX + 1];
	char result[STORE_RESULT_MAX + 1];
};

/*
 * Open (or create, mode 0600) the store at path. vfs: an SQLite VFS name, NULL for the
 * default (tests register fault-injecting ones). On failure *out is NULL and err says why.
 */
int store_open(struct store **out, const char *path, const char *vfs, char *err, size_t errlen);
void store_close(struct store *s);
const char *store_errmsg(const struct store *s);
/* The schema version of the file as opened (before store_verify upgrades it). */
int store_schema_version(const struct store *s);

void store_set_mac_key(struct store *s, const uint8_t key[STORE_MAC_KEY_LEN]);
int store_verify(struct store *s, uint64_t *counter, char *err, size_t errlen);
/* The counter of the last commit seen by this connection (no MAC check). */
int store_counter(struct store *s, uint64_t *counter);

/* Host provisioning record (one row). */
int store_host_get(struct store *s, struct store_host *h);
int store_host_put(struct store *s, const struct store_actor *who, const struct store_host *h);
/* The same, audited (who non-NULL) as action with note as its result, in the same
 * transaction as the change. */
int store_host_change(struct store *s, const struct store_actor *who, const char *action,
		      const char *note, const struct store_host *h);

/* Groups. Patterns and digests are stored as sets (duplicates are refused: STORE_INVALID). */
int store_group_add(struct store *s, const struct store_actor *who, const struct store_group *g);
int store_group_get(struct store *s, const uint8_t uuid[STORE_UUID_LEN], struct store_group *g);
int store_group_get_by_name(struct store *s, const char *name, struct store_group *g);
/* Calls cb for each group in UUID order; a non-zero return of cb stops and is returned.
 * Callbacks may read the store but must not change it. */
int store_group_list(struct store *s, int (*cb)(const struct store_group *g, void *arg), void *arg);
/* STORE_BUSY while vTPMs belong to the group. */
int store_group_delete(struct store *s, const struct store_actor *who, const char *name);

/* vTPMs. */
int store_vtpm_add(struct store *s, const struct store_actor *who, const struct store_vtpm *v);
int store_vtpm_get(struct store *s, const uint8_t uuid[STORE_UUID_LEN], struct store_vtpm *v);
/* group_uuid NULL: every vTPM; else only that group's. UUID order; cb as for groups. */
int store_vtpm_list(struct store *s, const uint8_t *group_uuid,
		    int (*cb)(const struct store_vtpm *v, void *arg), void *arg);
int store_vtpm_delete(struct store *s, const struct store_actor *who,
		      const uint8_t uuid[STORE_UUID_LEN]);
int store_vtpm_set_state(struct store *s, const struct store_actor *who,
			 const uint8_t uuid[STORE_UUID_LEN], const char *state);
/* Bind the vTPM to the guest identity of label (audited as vtpm-bind when who is given). */
int store_vtpm_bind(struct store *s, const struct store_actor *who,
		    const uint8_t uuid[STORE_UUID_LEN], const char *label);
/*
 * Record a vTPM's newest state version and slot digest; durable on return. version must
 * be greater than the record, or equal to it with the same digest (then nothing is
 * written: STORE_OK); otherwise STORE_ROLLBACK. Not audited.
 */
int store_vtpm_set_version(struct store *s, const uint8_t uuid[STORE_UUID_LEN], uint64_t version,
			   const uint8_t digest[STORE_DIGEST_LEN]);

/* Audit: append a row on its own (durable on return; covered by the MAC once the store has
 * one, never bumps the counter; may delete the oldest rows, see Audit). */
int store_audit_append(struct store *s, const struct store_actor *who, const char *action,
		       const char *subject, const char *result);
/* Keep at most n audit rows (n 0 is taken as 1); applies from the next append. */
void store_set_audit_keep(struct store *s, uint64_t n);
/* The number of audit rows (the MAC-covered count; no scan). */
int store_audit_count(struct store *s, uint64_t *n);
/* The id of the newest audit row (0 if none): it grows with every append, rotation or not,
 * so that the rollback guard sees audit-only changes (they do not bump the counter). */
int store_audit_last_id(struct store *s, int64_t *id);
/* The newest n rows, newest first. */
int store_audit_list(struct store *s, unsigned n, int (*cb)(const struct store_audit *a, void *arg),
		     void *arg);

/*
 * The rollback guard's record, MAC-covered, in the meta row. rollback.c gives the fields
 * their meaning (an epoch advanced with the host TPM counter, the manager's run state, the
 * host TPM's reset count, a time); the store only keeps them authentic.
 * store_guard_get works at any time (a fresh store: all zero; trusted only after
 * store_verify). store_guard_put is one durable transaction, needs the key and a verified
 * store like every mutation, is not audited, and bumps the counter (a state above
 * STORE_GUARD_ADVANCING is STORE_INVALID).
 */
/* guard states (rollback.h): the manager runs; it stopped cleanly; it was stopping (nothing
 * changed since but the guard itself); it is advancing the counter past the epoch */
#define STORE_GUARD_RUNNING   0
#define STORE_GUARD_CLEAN     1
#define STORE_GUARD_STOPPING  2
#define STORE_GUARD_ADVANCING 3

struct store_guard {
	uint64_t epoch;
	uint8_t state; /* STORE_GUARD_* */
	uint32_t tpm_reset_count;
	int64_t time;
};

int store_guard_get(struct store *s, struct store_guard *g);
int store_guard_put(struct store *s, const struct store_guard *g);

/*
 * Compose several mutations into one transaction: store_begin, then any mutating calls
 * (each applies its change and its audit row, or on a logical refusal only its refusal
 * row), then store_commit (one counter bump and one MAC for the lot, if anything
 * changed) or store_rollback (nothing at all, refusal rows included). After an I/O error
 * inside, store_commit rolls back and fails. Not nestable.
 */
int store_begin(struct store *s);
int store_commit(struct store *s);
void store_rollback(struct store *s);

#endif
