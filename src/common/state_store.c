/*
 * state_store.c — the two-slot state file (see state_store.h for the layout).
 *
 * The in-memory view (cap, newest, version) always describes what is on disk: it is
 * updated only after a write is durable, so a failed commit leaves the newest slot as it
 * was and the slot that failed (content unknown) is simply the one written next.
 */
#include "common/state_store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/aead.h"
#include "common/atomic_file.h"
#include "common/cursor.h"

/* The largest slot vtpm ever creates: a file bigger than two of them is not ours. */
#define MAX_SLOT_CAP (2 * (size_t)(STATE_MAX_PAYLOAD + 4096))
/* Every image records its slot capacity in a u32 (state_file.h). */
_Static_assert(MAX_SLOT_CAP <= UINT32_MAX, "slot capacity must fit the header field");

struct state_store {
	int dirfd;
	int fd;	    /* -1 while there is no state file */
	char *name; /* the state file's name in its directory */
	char *path;
	uint8_t key[STATE_KEY_LEN];
	bool has_key;
	mode_t mode;
	struct state_io io;
	bool loaded;	   /* the last load succeeded: the view below matches the disk */
	bool dir_unsynced; /* a rename is not known durable: fsync the dir before the next ack */
	size_t cap;	   /* slot capacity C; 0 while there is no file */
	int newest;	   /* slot holding the newest valid state; -1 if none */
	uint64_t version;
	uint8_t uuid[STATE_UUID_LEN];
	bool have_uuid;
};

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t errlen, int rc,
						      const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static void set_io(struct state_io *dst, const struct state_io *src)
{
	dst->pwrite = src && src->pwrite ? src->pwrite : pwrite;
	dst->fdatasync = src && src->fdatasync ? src->fdatasync : fdatasync;
	dst->fsync = src && src->fsync ? src->fsync : fsync;
}

/* Open the state file if it exists: 0 with fd (or -1 when absent), or a state_err. */
static int open_file(struct state_store *ss, char *err, size_t errlen)
{
	struct stat st;
	int fd;

	fd = openat(ss->dirfd, ss->name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT)
		return STATE_OK;
	if (fd < 0 && errno == ELOOP)
		return fail(err, errlen, STATE_ERR_IO, "%s: is a symbolic link; refusing it",
			    ss->path);
	if (fd < 0)
		return fail(err, errlen, STATE_ERR_IO, "%s: cannot open: %s", ss->path,
			    strerror(errno));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return fail(err, errlen, STATE_ERR_IO, "%s: not a regular file", ss->path);
	}
	ss->fd = fd;
	return STATE_OK;
}

int state_store_open(struct state_store **out, const char *dir, const uint8_t *key,
		     mode_t file_mode, const struct state_io *io, char *err, size_t errlen)
{
	return state_store_open_named(out, dir, STATE_FILE_NAME, key, file_mode, io, err, errlen);
}

int state_store_open_named(struct state_store **out, const char *dir, const char *name,
			   const uint8_t *key, mode_t file_mode, const struct state_io *io,
			   char *err, size_t errlen)
{
	struct state_store *ss;
	int rc;

	*out = NULL;
	ss = calloc(1, sizeof(*ss));
	if (!ss)
		return fail(err, errlen, STATE_ERR_NOMEM, "state store: out of memory");
	ss->fd = -1;
	ss->dirfd = -1;
	ss->newest = -1;
	ss->mode = file_mode;
	set_io(&ss->io, io);
	if (!name[0] || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		state_store_close(ss);
		return fail(err, errlen, STATE_ERR_IO, "state file name '%s' is not a file name",
			    name);
	}
	ss->name = strdup(name);
	if (!ss->name || asprintf(&ss->path, "%s/%s", dir, name) < 0) {
		ss->path = NULL;
		state_store_close(ss);
		return fail(err, errlen, STATE_ERR_NOMEM, "state store: out of memory");
	}
	ss->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ss->dirfd < 0) {
		rc = fail(err, errlen, STATE_ERR_IO, "state directory %s: cannot open: %s", dir,
			  strerror(errno));
		state_store_close(ss);
		return rc;
	}
	if (key) {
		memcpy(ss->key, key, STATE_KEY_LEN);
		ss->has_key = true;
	}
	rc = open_file(ss, err, errlen);
	if (rc) {
		state_store_close(ss);
		return rc;
	}
	*out = ss;
	return STATE_OK;
}

void state_store_close(struct state_store *ss)
{
	if (!ss)
		return;
	OPENSSL_cleanse(ss->key, sizeof(ss->key));
	if (ss->fd >= 0)
		close(ss->fd);
	if (ss->dirfd >= 0)
		close(ss->dirfd);
	free(ss->path);
	free(ss->name);
	free(ss);
}

void state_store_set_uuid(struct state_store *ss, const uint8_t uuid[STATE_UUID_LEN])
{
	/* A file that already holds state keeps its UUID: slots must never disagree. */
	if (ss->version > 0)
		return;
	memcpy(ss->uuid, uuid, STATE_UUID_LEN);
	ss->have_uuid = true;
}

uint64_t state_store_version(const struct state_store *ss)
{
	return ss->version;
}

/* Read exactly size bytes from offset 0 (the file was fstat'ed just before). */
static int read_whole(struct state_store *ss, uint8_t *buf, size_t size, char *err, size_t errlen)
{
	size_t n = 0;

	while (n < size) {
		ssize_t r = pread(ss->fd, buf + n, size - n, (off_t)n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fail(err, errlen, STATE_ERR_IO, "%s: read failed at offset %zu: %s",
				    ss->path, n, strerror(errno));
		if (r == 0)
			return fail(err, errlen, STATE_ERR_IO,
				    "%s: file shrank while being read (%zu of %zu bytes)", ss->path,
				    n, size);
		n += (size_t)r;
	}
	return STATE_OK;
}

/* The file is exactly two slots of a multiple of 4096 bytes each. */
static int check_size(struct state_store *ss, off_t size, char *err, size_t errlen)
{
	if (size <= 0 || size % (2 * STATE_SLOT_ALIGN))
		return fail(err, errlen, STATE_ERR_FORMAT,
			    "%s: size %lld bytes is not a non-zero multiple of %d (two slots of a "
			    "multiple of %d bytes each)",
			    ss->path, (long long)size, 2 * STATE_SLOT_ALIGN, STATE_SLOT_ALIGN);
	if ((unsigned long long)size > 2 * (unsigned long long)MAX_SLOT_CAP)
		return fail(err, errlen, STATE_ERR_FORMAT,
			    "%s: size %lld bytes is larger than any state file vtpm writes (%zu)",
			    ss->path, (long long)size, 2 * MAX_SLOT_CAP);
	return STATE_OK;
}

/* Result of decoding one slot. */
struct slot_result {
	int rc;
	struct state_slot_info info;
	uint8_t *payload;
	size_t len;
};

static void slot_result_free(struct slot_result *s)
{
	if (s->payload) {
		OPENSSL_cleanse(s->payload, s->len);
		free(s->payload);
		s->payload = NULL;
	}
}

/* How much an error says about what to fix: the most telling one is reported. */
static int err_rank(int rc)
{
	switch (rc) {
	case STATE_ERR_NOMEM:
	case STATE_ERR_CRYPTO:
		return 10;
	case STATE_ERR_RESIZED:
		return 9;
	case STATE_ERR_UUID:
		return 8;
	case STATE_ERR_NEED_KEY:
		return 7;
	case STATE_ERR_UNEXPECTED_KEY:
		return 6;
	case STATE_ERR_FORMAT_VERSION:
		return 5;
	case STATE_ERR_AUTH:
		return 4;
	case STATE_ERR_FORMAT:
		return 3;
	case STATE_ERR_EMPTY:
		return 2;
	}
	return 1;
}

/* What became of one slot, for messages; buf is used when the text needs numbers. */
static const char *slot_desc(const struct state_store *ss, const struct slot_result *s, char *buf,
			     size_t len)
{
	if (s->rc == STATE_ERR_RESIZED) {
		snprintf(buf, len,
			 "records a slot size of %lu bytes but the file has slots of %zu: the "
			 "file was resized or truncated",
			 (unsigned long)s->info.slot_cap, ss->cap);
		return buf;
	}
	if (s->rc == STATE_OK) {
		snprintf(buf, len, "valid (version %llu)", (unsigned long long)s->info.version);
		return buf;
	}
	return state_strerror(s->rc);
}

/* Refuse the file; rc is the most telling slot error. what: "no valid state", ... */
static int refuse(struct state_store *ss, const struct slot_result s[2], const char *what,
		  char *err, size_t errlen)
{
	int rc = err_rank(s[0].rc) >= err_rank(s[1].rc) ? s[0].rc : s[1].rc;
	char d0[192], d1[192];

	return fail(err, errlen, rc, "%s: %s: slot 0 (offset 0): %s; slot 1 (offset %zu): %s",
		    ss->path, what, slot_desc(ss, &s[0], d0, sizeof(d0)), ss->cap,
		    slot_desc(ss, &s[1], d1, sizeof(d1)));
}

/*
 * Errors that say nothing against the slot's content (out of memory, a failing crypto
 * library), or that say the whole file moved (a genuine image written for other slots):
 * the other slot must not be loaded in its place, as it may well be the older one.
 */
static bool refuses_file(int rc)
{
	return rc == STATE_ERR_NOMEM || rc == STATE_ERR_CRYPTO || rc == STATE_ERR_RESIZED;
}

/* Pick the newest valid slot; 0 or 1, or a negative state_err with a message. */
static int pick_newest(struct state_store *ss, const struct slot_result s[2],
		       const uint8_t *want_uuid, char *err, size_t errlen)
{
	if (s[0].rc && s[1].rc)
		return refuse(ss, s, "no valid state", err, errlen);
	if (refuses_file(s[0].rc) || refuses_file(s[1].rc))
		return refuse(ss, s, "refusing to load", err, errlen);
	if (s[0].rc || s[1].rc)
		return s[0].rc ? 1 : 0;
	if (!want_uuid && memcmp(s[0].info.uuid, s[1].info.uuid, STATE_UUID_LEN))
		return fail(err, errlen, STATE_ERR_UUID,
			    "%s: slot 0 and slot 1 belong to different vTPMs", ss->path);
	if (s[0].info.version == s[1].info.version &&
	    memcmp(s[0].info.digest, s[1].info.digest, sizeof(s[0].info.digest)))
		return fail(err, errlen, STATE_ERR_FORMAT,
			    "%s: slot 0 and slot 1 both hold version %llu with different contents",
			    ss->path, (unsigned long long)s[0].info.version);
	return s[1].info.version > s[0].info.version ? 1 : 0;
}

/*
 * On a successful load: say so when the slot not loaded was damaged (not merely empty or
 * older), since that is a torn write or a modified file, worth a warning.
 */
static void note_discarded(struct state_store *ss, const struct slot_result s[2], int pick,
			   char *err, size_t errlen)
{
	int other = 1 - pick;

	if (s[other].rc == STATE_OK || s[other].rc == STATE_ERR_EMPTY)
		return;
	fail(err, errlen, 0,
	     "%s: slot %d (offset %zu) is damaged: %s; loaded version %llu from slot %d: a "
	     "write was torn by a crash, or the file was modified",
	     ss->path, other, (size_t)other * ss->cap, state_strerror(s[other].rc),
	     (unsigned long long)s[pick].info.version, pick);
}

static void decode_slots(struct state_store *ss, const uint8_t *buf, size_t size,
			 const uint8_t *want_uuid, struct slot_result s[2])
{
	const uint8_t *key = ss->has_key ? ss->key : NULL;
	struct rcursor c;

	rc_init(&c, buf, size);
	for (int i = 0; i < 2; i++) {
		const uint8_t *img;

		memset(&s[i], 0, sizeof(s[i]));
		if (rc_ptr(&c, &img, ss->cap)) {
			s[i].rc = STATE_ERR_FORMAT;
			continue;
		}
		s[i].rc = state_slot_decode(img, ss->cap, key, want_uuid, &s[i].info, &s[i].payload,
					    &s[i].len);
		/* Genuine, but written for slots of another size: the file was resized. */
		if (s[i].rc == STATE_OK && s[i].info.slot_cap != ss->cap) {
			slot_result_free(&s[i]);
			s[i].rc = STATE_ERR_RESIZED;
		}
	}
}

static int load_fresh(struct state_store *ss, const uint8_t *want_uuid)
{
	ss->cap = 0;
	ss->newest = -1;
	ss->version = 0;
	if (want_uuid)
		state_store_set_uuid(ss, want_uuid);
	ss->loaded = true;
	return 1;
}

static int load_file(struct state_store *ss, const uint8_t *want_uuid, uint8_t **payload,
		     size_t *payload_len, struct state_slot_info *info, char *err, size_t errlen)
{
	struct slot_result s[2];
	struct stat st;
	uint8_t *buf;
	int rc, pick;

	if (fstat(ss->fd, &st))
		return fail(err, errlen, STATE_ERR_IO, "%s: fstat failed: %s", ss->path,
			    strerror(errno));
	rc = check_size(ss, st.st_size, err, errlen);
	if (rc)
		return rc;
	buf = malloc((size_t)st.st_size);
	if (!buf)
		return fail(err, errlen, STATE_ERR_NOMEM, "%s: out of memory", ss->path);
	rc = read_whole(ss, buf, (size_t)st.st_size, err, errlen);
	if (rc)
		goto out;
	ss->cap = (size_t)st.st_size / 2;
	decode_slots(ss, buf, (size_t)st.st_size, want_uuid, s);
	pick = pick_newest(ss, s, want_uuid, err, errlen);
	if (pick < 0) {
		rc = pick;
		ss->cap = 0;
	} else {
		ss->newest = pick;
		ss->version = s[pick].info.version;
		memcpy(ss->uuid, s[pick].info.uuid, STATE_UUID_LEN);
		ss->have_uuid = true;
		ss->loaded = true;
		*info = s[pick].info;
		*payload = s[pick].payload;
		*payload_len = s[pick].len;
		s[pick].payload = NULL;
		note_discarded(ss, s, pick, err, errlen);
	}
	slot_result_free(&s[0]);
	slot_result_free(&s[1]);
out:
	OPENSSL_cleanse(buf, (size_t)st.st_size);
	free(buf);
	return rc;
}

int state_store_load(struct state_store *ss, const uint8_t *want_uuid, uint8_t **payload,
		     size_t *payload_len, struct state_slot_info *info, char *err, size_t errlen)
{
	int rc;

	*payload = NULL;
	*payload_len = 0;
	if (err && errlen)
		err[0] = '\0';
	/* Until this load succeeds, commit refuses: it must never overwrite unread state. */
	ss->loaded = false;
	if (ss->fd < 0) {
		rc = open_file(ss, err, errlen);
		if (rc)
			return rc;
		if (ss->fd < 0)
			return load_fresh(ss, want_uuid);
	}
	return load_file(ss, want_uuid, payload, payload_len, info, err, errlen);
}

static size_t round_up(size_t n, size_t align)
{
	return (n + align - 1) / align * align;
}

/* The fast path: one pwrite of the image into the slot that is not the newest. */
static int commit_in_place(struct state_store *ss, const uint8_t *img, size_t size,
			   const struct state_slot_info *info, char *err, size_t errlen)
{
	int target = ss->newest == 0 ? 1 : 0;
	off_t off = (off_t)target * (off_t)ss->cap;
	size_t done;

	if (pwrite_all(ss->io.pwrite, ss->fd, img, size, off, &done))
		return fail(err, errlen, STATE_ERR_IO,
			    "%s: writing version %llu to slot %d (offset %lld): wrote %zu of %zu "
			    "bytes: %s",
			    ss->path, (unsigned long long)info->version, target, (long long)off,
			    done, size, strerror(errno));
	if (ss->io.fdatasync(ss->fd))
		return fail(err, errlen, STATE_ERR_IO,
			    "%s: fdatasync after writing version %llu to slot %d failed: %s",
			    ss->path, (unsigned long long)info->version, target, strerror(errno));
	ss->newest = target;
	ss->version = info->version;
	return STATE_OK;
}

/* Adopt a new file written by commit_grow: slot 0 holds info->version, slot 1 is zero. */
static void adopt_new_file(struct state_store *ss, int fd, size_t cap,
			   const struct state_slot_info *info)
{
	if (ss->fd >= 0)
		close(ss->fd);
	ss->fd = fd;
	ss->cap = cap;
	ss->newest = 0;
	ss->version = info->version;
}

/* Create or grow: the whole file through temp + fsync + rename + fsync(dir). */
static int commit_grow(struct state_store *ss, const uint8_t *img, size_t size, size_t cap,
		       const struct state_slot_info *info, char *err, size_t errlen)
{
	struct atomic_io aio = {.pwrite = ss->io.pwrite, .fsync = ss->io.fsync};
	uint8_t *file;
	int rc, fd;

	file = calloc(2, cap);
	if (!file)
		return fail(err, errlen, STATE_ERR_NOMEM, "%s: out of memory", ss->path);
	memcpy(file, img, size);
	rc = atomic_file_write_at(ss->dirfd, ss->name, file, 2 * cap, ss->mode, &aio, &fd);
	OPENSSL_cleanse(file, size);
	free(file);
	if (rc == ATOMIC_ERR)
		return fail(err, errlen, STATE_ERR_IO,
			    "%s: writing version %llu as a new file of %zu bytes (temp file + "
			    "rename) failed: %s",
			    ss->path, (unsigned long long)info->version, 2 * cap, strerror(errno));
	adopt_new_file(ss, fd, cap, info);
	if (rc == ATOMIC_ERR_DIRSYNC) {
		ss->dir_unsynced = true;
		return fail(err, errlen, STATE_ERR_IO,
			    "%s: version %llu was renamed into place but fsync of its directory "
			    "failed: %s",
			    ss->path, (unsigned long long)info->version, strerror(errno));
	}
	return STATE_OK;
}

/* A rename whose directory fsync failed must be made durable before anything is acked. */
static int sync_dir(struct state_store *ss, char *err, size_t errlen)
{
	if (!ss->dir_unsynced)
		return STATE_OK;
	if (ss->io.fsync(ss->dirfd))
		return fail(
		    err, errlen, STATE_ERR_IO,
		    "%s: fsync of the directory (pending from an earlier commit) failed: %s",
		    ss->path, strerror(errno));
	ss->dir_unsynced = false;
	return STATE_OK;
}

static int check_commit(struct state_store *ss, size_t payload_len, char *err, size_t errlen)
{
	if (!ss->loaded)
		return fail(err, errlen, STATE_ERR_IO,
			    "%s: commit refused: the state was not loaded successfully", ss->path);
	if (ss->version == UINT64_MAX)
		return fail(err, errlen, STATE_ERR_FORMAT, "%s: state version exhausted", ss->path);
	if (payload_len > STATE_MAX_PAYLOAD)
		return fail(err, errlen, STATE_ERR_TOO_BIG,
			    "%s: payload of %zu bytes exceeds the limit of %u", ss->path,
			    payload_len, STATE_MAX_PAYLOAD);
	if (!ss->have_uuid) {
		if (random_bytes(ss->uuid, STATE_UUID_LEN))
			return fail(err, errlen, STATE_ERR_CRYPTO, "%s: no random UUID", ss->path);
		ss->uuid[6] = (ss->uuid[6] & 0x0f) | 0x40; /* version 4 */
		ss->uuid[8] = (ss->uuid[8] & 0x3f) | 0x80; /* RFC 4122 variant */
		ss->have_uuid = true;
	}
	return sync_dir(ss, err, errlen);
}

int state_store_commit(struct state_store *ss, const uint8_t *payload, size_t payload_len,
		       struct state_slot_info *info, char *err, size_t errlen)
{
	const uint8_t *key = ss->has_key ? ss->key : NULL;
	struct state_slot_info ni;
	size_t size, len, cap;
	bool in_place;
	uint8_t *img;
	int rc;

	rc = check_commit(ss, payload_len, err, errlen);
	if (rc)
		return rc;
	size = state_slot_size(payload_len, key != NULL);
	/*
	 * The image records the slot capacity it is written for: the current one, or on the
	 * grow path a new one with doubled headroom, so that a growing state rarely grows.
	 */
	in_place = ss->fd >= 0 && size <= ss->cap;
	cap = in_place ? ss->cap : round_up(2 * size, STATE_SLOT_ALIGN);
	img = malloc(size);
	if (!img)
		return fail(err, errlen, STATE_ERR_NOMEM, "%s: out of memory", ss->path);
	rc = state_slot_encode(img, size, &len, key, ss->uuid, ss->version + 1, (uint32_t)cap,
			       payload, payload_len, &ni);
	if (rc)
		rc = fail(err, errlen, rc, "%s: encoding version %llu failed: %s", ss->path,
			  (unsigned long long)ss->version + 1, state_strerror(rc));
	else if (in_place)
		rc = commit_in_place(ss, img, size, &ni, err, errlen);
	else
		rc = commit_grow(ss, img, size, cap, &ni, err, errlen);
	OPENSSL_cleanse(img, size);
	free(img);
	if (!rc && info)
		*info = ni;
	return rc;
}
