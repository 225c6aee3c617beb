/*
 * state_store.h — one vTPM's state file on disk: two slots, crash-safe, durable.
 *
 * The file holds two slots of equal capacity C (a multiple of 4096): slot 0 at offset 0,
 * slot 1 at offset C; the file size is exactly 2*C, so C is derived from the size. Every
 * image also records the C it was written for; a slot whose record differs from the C of
 * the file is refused (STATE_ERR_RESIZED): the file was resized or truncated and its
 * slots moved, and loading the other slot could silently go back to an older state. A
 * commit writes the new image (state version = newest + 1) into the slot that does NOT
 * hold the newest valid state, with one pwrite, then fdatasync: a crash or torn write
 * leaves the other slot intact, and at load the newest slot that authenticates wins.
 * When an image does not fit in C, or the file does not exist yet, the whole file is
 * rewritten with a larger C through temp file + fsync + rename + fsync(dir).
 * Nothing is ever written by open or load: a wrong key or a damaged file leaves the disk
 * untouched.
 */
#ifndef VTPM_STATE_STORE_H
#define VTPM_STATE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/state_file.h"

#define STATE_FILE_NAME "vtpm2.state"

/* I/O hooks so unit tests can inject faults (ENOSPC, EIO on fdatasync, torn writes). */
struct state_io {
	ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
	int (*fdatasync)(int fd);
	int (*fsync)(int fd);
};

struct state_store;

/*
 * Open (not create) the state file in dir. key: 32 bytes or NULL (copied; cleansed at
 * close). file_mode: for a file created later. io: NULL for the real system calls.
 * Returns 0 or a negative state_err; err receives a precise message.
 */
int state_store_open(struct state_store **out, const char *dir, const uint8_t *key,
		     mode_t file_mode, const struct state_io *io, char *err, size_t errlen);

/* The same for a state file of another name in dir (vtpmd --tpmstate backend-uri=file://);
 * name is one path component. */
int state_store_open_named(struct state_store **out, const char *dir, const char *name,
			   const uint8_t *key, mode_t file_mode, const struct state_io *io,
			   char *err, size_t errlen);

/*
 * Load the newest valid slot. want_uuid NULL accepts any UUID (standalone) and adopts it.
 * Returns 0 with *payload (malloc'd; cleanse and free) and info, 1 if there is no state
 * file yet (fresh vTPM), or a negative state_err with a precise message in err (e.g.
 * "slot 0: authentication failed (wrong key, or the file was modified); slot 1: empty").
 * On success (0 or 1) err is "" unless the slot not loaded was damaged (present but not
 * valid; an empty slot, or a valid older one, is normal): then err holds a note such as
 * "PATH: slot 1 (offset C) is damaged: ...; loaded version N from slot 0: a write was
 * torn by a crash, or the file was modified", which the caller should log as a warning.
 * A genuine slot written for another slot size (STATE_ERR_RESIZED), or a slot that could
 * not be checked (out of memory, crypto failure), fails the load even when the other slot
 * is valid: that one may be the older state.
 */
int state_store_load(struct state_store *ss, const uint8_t *want_uuid, uint8_t **payload,
		     size_t *payload_len, struct state_slot_info *info, char *err, size_t errlen);

/* Set the UUID used when the first commit creates the file (default: random v4 UUID). */
void state_store_set_uuid(struct state_store *ss, const uint8_t uuid[STATE_UUID_LEN]);

/* Commit a new payload; durable on return 0. info receives the new version and digest. */
int state_store_commit(struct state_store *ss, const uint8_t *payload, size_t payload_len,
		       struct state_slot_info *info, char *err, size_t errlen);

/* Newest committed version (0 if none). */
uint64_t state_store_version(const struct state_store *ss);

void state_store_close(struct state_store *ss);

#endif
