/*
 * instance_journal.h — which live vtpmd holds which vTPM, kept across a manager restart.
 *
 * A restarted manager must take running instances back and must not, meanwhile, hand a
 * running vTPM to a second instance. What it needs is in memory only (instances.h), so
 * every open and every release is appended to a journal file beside the instance socket
 * (INSTANCE_SOCKET.instances, mode 0600). At start the manager replays it, keeps the
 * entries whose process still lives (same pid and same start time: pid reuse is not
 * taken for the process), pins them, and rewrites the file with only those.
 *
 * No fsync: the journal matters only while the host stays up (after a power cut no
 * instance lives), and a manager crash leaves its page cache intact. Appends are single
 * write(2) calls of whole records; a torn tail is ignored at replay. The file is
 * rewritten (temp + rename) when it holds four times more records than live entries.
 *
 * Record (big-endian): u8 kind (1 open, 2 release), u16 label length L, 16 bytes vTPM
 * UUID, u32 pid, u64 start time (clock ticks since boot), u32 uid, 32 bytes binary
 * digest, L bytes label (user:role:type, no NUL). A release carries L = 0 and zero
 * digest. The file is parsed through the cursor like any untrusted input.
 */
#ifndef VTPM_INSTANCE_JOURNAL_H
#define VTPM_INSTANCE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/label_match.h"

#define JOURNAL_MAX_BYTES (16u << 20) /* a replay reads no more */
#define JOURNAL_REC_FIXED 67u

enum journal_kind { JOURNAL_OPEN = 1, JOURNAL_RELEASE = 2 };

struct journal_entry {
	uint8_t uuid[16];
	pid_t pid;
	uint64_t start_ticks;
	uid_t uid;
	uint8_t bin_digest[32];
	char label[LABEL_MAX + 1];
};

struct journal;

/*
 * Parse a journal image: calls cb for each whole record in order; a malformed record
 * (unknown kind, label too long or not a label) stops the parse with -1 and err; a
 * truncated tail is not an error (*used tells how far it got). cb returning non-zero stops
 * with that value.
 */
int journal_parse(const uint8_t *buf, size_t len,
		  int (*cb)(enum journal_kind kind, const struct journal_entry *e, void *arg),
		  void *arg, size_t *used, char *err, size_t errlen);

/*
 * Open (create) the journal at path, replay it and call keep(e, arg) for each entry still
 * open; keep returns 1 to keep it (the process lives), 0 to drop it. Then rewrite the file
 * with the kept entries. 0, or -1 with err.
 */
int journal_open(struct journal **out, const char *path,
		 int (*keep)(const struct journal_entry *e, void *arg), void *arg, char *err,
		 size_t errlen);
/* Append a record; -1 with err on failure. */
int journal_append(struct journal *j, enum journal_kind kind, const struct journal_entry *e,
		   char *err, size_t errlen);
/* Whether the file has grown enough past the live entries to be rewritten, and the rewrite
 * itself with the live entries. */
bool journal_wants_rewrite(const struct journal *j, size_t live);
int journal_rewrite(struct journal *j, const struct journal_entry *v, size_t n, char *err,
		    size_t errlen);
void journal_close(struct journal *j);

#endif
