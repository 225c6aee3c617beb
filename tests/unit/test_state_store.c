/*
 * test_state_store.c — the two-slot state file on a real file system, with faults.
 *
 * Faults go through the state_io hooks: a failed pwrite (ENOSPC), a torn pwrite (the
 * first K bytes reach the file, then EIO: what a crash mid-write leaves), a failed
 * fdatasync (optionally "losing" the unsynced bytes, as a power cut after it would), and
 * a failed fsync of the temp file or the directory on the create/grow path. After each,
 * a fresh open+load must find the old state or the new one, whole; never a mix.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/aead.h"
#include "common/state_store.h"
#include "unit.h"

#define ERRLEN 512

static const uint8_t key[STATE_KEY_LEN] = {
    0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
    0xa5, 0x5a, 0xa5, 0x5a, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc};

/* ---- fault injection ---------------------------------------------------------------- */

/* Bytes a pwrite replaced since the last sync, to simulate losing them. */
struct undo {
	int fd;
	off_t off;
	size_t len;
	uint8_t *old;
};

static struct fault {
	int pwrite_errno;     /* the next pwrite fails at once with this errno */
	long torn;	      /* >= 0: the next pwrite writes this many bytes, then EIO */
	bool torn_whole;      /* the torn write's unwritten tail already stood on disk */
	size_t max_chunk;     /* > 0: every pwrite writes at most this much (short writes) */
	int fdatasync_errno;  /* the next fdatasync fails with this errno */
	bool lose_on_failure; /* ... and the bytes written since the last sync are lost */
	int fsync_fail_at;    /* the Nth fsync from now fails with EIO (1-based); 0 never */
	int pwrites, fdatasyncs, fsyncs;
	struct undo undo[64];
	int nundo;
} F;

static void undo_clear(void)
{
	for (int i = 0; i < F.nundo; i++)
		free(F.undo[i].old);
	F.nundo = 0;
}

static void fault_reset(void)
{
	undo_clear();
	memset(&F, 0, sizeof(F));
	F.torn = -1;
}

/* Remember what a write is about to replace (only bytes that exist in the file). */
static void undo_record(int fd, size_t n, off_t off)
{
	struct undo *u;
	ssize_t r;

	if (F.nundo == (int)(sizeof(F.undo) / sizeof(F.undo[0])))
		return;
	u = &F.undo[F.nundo];
	u->old = malloc(n ? n : 1);
	if (!u->old)
		return;
	r = pread(fd, u->old, n, off);
	u->fd = fd;
	u->off = off;
	u->len = r > 0 ? (size_t)r : 0;
	F.nundo++;
}

static void undo_apply(void)
{
	for (int i = F.nundo - 1; i >= 0; i--)
		if (pwrite(F.undo[i].fd, F.undo[i].old, F.undo[i].len, F.undo[i].off) < 0)
			perror("undo");
	undo_clear();
}

static ssize_t f_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	F.pwrites++;
	if (F.pwrite_errno) {
		errno = F.pwrite_errno;
		F.pwrite_errno = 0;
		return -1;
	}
	undo_record(fd, n, off);
	if (F.torn >= 0) {
		size_t k = (size_t)F.torn < n ? (size_t)F.torn : n;

		F.torn = -1;
		/* Bytes the write skipped may equal what the slot held (zeros under a tag that
		 * ends in 0x00): then the whole new image is on disk despite the error. */
		F.torn_whole =
		    F.nundo > 0 && F.undo[F.nundo - 1].len == n &&
		    memcmp((const uint8_t *)buf + k, F.undo[F.nundo - 1].old + k, n - k) == 0;
		if (k && pwrite(fd, buf, k, off) != (ssize_t)k)
			return -1;
		errno = EIO;
		return -1;
	}
	if (F.max_chunk && n > F.max_chunk)
		n = F.max_chunk;
	return pwrite(fd, buf, n, off);
}

static int f_fdatasync(int fd)
{
	F.fdatasyncs++;
	if (F.fdatasync_errno) {
		errno = F.fdatasync_errno;
		F.fdatasync_errno = 0;
		if (F.lose_on_failure)
			undo_apply();
		return -1;
	}
	undo_clear();
	return fdatasync(fd);
}

static int f_fsync(int fd)
{
	F.fsyncs++;
	if (F.fsync_fail_at && F.fsyncs == F.fsync_fail_at) {
		errno = EIO;
		return -1;
	}
	return fsync(fd);
}

static const struct state_io fault_io = {f_pwrite, f_fdatasync, f_fsync};

/* ---- helpers ------------------------------------------------------------------------- */

static char *make_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *dir;

	if (asprintf(&dir, "%s/vtpm-ss.XXXXXX", base && *base ? base : "/tmp") < 0)
		return NULL;
	if (!mkdtemp(dir)) {
		free(dir);
		return NULL;
	}
	return dir;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void remove_dir(char *dir)
{
	DIR *d;
	struct dirent *e;

	if (!dir)
		return;
	d = opendir(dir);
	if (d) {
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				unlinkat(dirfd(d), e->d_name, 0);
		closedir(d);
	}
	rmdir(dir);
	free(dir);
}

static char *state_path(const char *dir)
{
	static char path[4096];

	snprintf(path, sizeof(path), "%s/%s", dir, STATE_FILE_NAME);
	return path;
}

/* The content committed as "generation g": distinct for every g and length. */
static uint8_t *gen_payload(unsigned g, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);

	for (size_t i = 0; p && i < len; i++)
		p[i] = (uint8_t)(g * 131 + i * 7 + (i >> 8));
	return p;
}

static bool is_gen(const uint8_t *p, size_t len, unsigned g, size_t want_len)
{
	uint8_t *w;
	bool same;

	if (len != want_len)
		return false;
	w = gen_payload(g, len);
	same = w && (len == 0 || !memcmp(p, w, len));
	free(w);
	return same;
}

static int commit_gen(struct state_store *ss, unsigned g, size_t len, char *err)
{
	uint8_t *p = gen_payload(g, len);
	int rc;

	if (!p)
		return STATE_ERR_NOMEM;
	rc = state_store_commit(ss, p, len, NULL, err, ERRLEN);
	free(p);
	return rc;
}

/* Open, load, close: what a restarted vtpmd would find. Returns load's result. */
static int fresh_load(const char *dir, const uint8_t *k, uint8_t **pl, size_t *len,
		      struct state_slot_info *info, char *err)
{
	struct state_store *ss;
	int rc;

	*pl = NULL;
	*len = 0;
	rc = state_store_open(&ss, dir, k, 0600, NULL, err, ERRLEN);
	if (rc)
		return rc;
	rc = state_store_load(ss, NULL, pl, len, info, err, ERRLEN);
	state_store_close(ss);
	return rc;
}

/* Fresh load must return generation g (length len) at version v. */
static bool loads_gen(const char *dir, const uint8_t *k, unsigned g, size_t len, uint64_t v)
{
	struct state_slot_info info;
	char err[ERRLEN] = "";
	uint8_t *pl;
	size_t n;
	int rc = fresh_load(dir, k, &pl, &n, &info, err);
	bool ok;

	ok = CHECKF(rc == 0, "load: %d %s", rc, err);
	ok = ok && CHECKF(info.version == v, "version %llu, want %llu",
			  (unsigned long long)info.version, (unsigned long long)v);
	ok = ok && CHECKF(is_gen(pl, n, g, len), "payload is not generation %u", g);
	free(pl);
	return ok;
}

/* Fresh load must succeed at version v; note receives what it left in err. */
static bool load_note(const char *dir, const uint8_t *k, uint64_t v, char note[ERRLEN])
{
	struct state_slot_info info;
	uint8_t *pl;
	size_t n;
	int rc;

	strcpy(note, "left over from before"); /* load must clear it */
	rc = fresh_load(dir, k, &pl, &n, &info, note);
	free(pl);
	return CHECKF(rc == 0 && info.version == v, "load: %d, version %llu: %s", rc,
		      (unsigned long long)info.version, note);
}

static bool file_digest(const char *dir, uint8_t md[32])
{
	int fd = open(state_path(dir), O_RDONLY | O_CLOEXEC);
	struct stat st;
	uint8_t *buf;
	bool ok = false;

	if (fd < 0)
		return false;
	if (!fstat(fd, &st) && (buf = malloc((size_t)st.st_size + 1))) {
		ok = read(fd, buf, (size_t)st.st_size) == st.st_size &&
		     sha256(buf, (size_t)st.st_size, md) == 0;
		free(buf);
	}
	close(fd);
	return ok;
}

static off_t file_size(const char *dir)
{
	struct stat st;

	return stat(state_path(dir), &st) ? -1 : st.st_size;
}

/* Decode slot i of the file directly; returns its version or 0 if it does not decode. */
static uint64_t slot_version(const char *dir, const uint8_t *k, int i)
{
	off_t size = file_size(dir);
	size_t cap = size > 0 ? (size_t)size / 2 : 0;
	struct state_slot_info info;
	uint8_t *buf, *pl = NULL;
	uint64_t v = 0;
	size_t n;
	int fd;

	buf = malloc(cap ? cap : 1);
	fd = open(state_path(dir), O_RDONLY | O_CLOEXEC);
	if (buf && fd >= 0 && pread(fd, buf, cap, (off_t)(i * cap)) == (ssize_t)cap &&
	    state_slot_decode(buf, cap, k, NULL, &info, &pl, &n) == 0)
		v = info.version;
	if (fd >= 0)
		close(fd);
	free(pl);
	free(buf);
	return v;
}

static bool patch_file(const char *dir, off_t off, uint8_t xor)
{
	int fd = open(state_path(dir), O_RDWR | O_CLOEXEC);
	uint8_t b;
	bool ok;

	if (fd < 0)
		return false;
	ok = pread(fd, &b, 1, off) == 1;
	b ^= xor;
	ok = ok && pwrite(fd, &b, 1, off) == 1;
	close(fd);
	return ok;
}

/* Open a store with fault hooks and load it; NULL on failure (reported). */
static struct state_store *open_loaded(const char *dir, const uint8_t *k, int want_rc)
{
	struct state_slot_info info;
	struct state_store *ss;
	char err[ERRLEN] = "";
	uint8_t *pl = NULL;
	size_t n;
	int rc;

	rc = state_store_open(&ss, dir, k, 0600, &fault_io, err, ERRLEN);
	if (!CHECKF(rc == 0, "open: %s", err))
		return NULL;
	rc = state_store_load(ss, NULL, &pl, &n, &info, err, ERRLEN);
	free(pl);
	if (!CHECKF(rc == want_rc, "load: %d, want %d: %s", rc, want_rc, err)) {
		state_store_close(ss);
		return NULL;
	}
	return ss;
}

/* ---- cases --------------------------------------------------------------------------- */

static void test_fresh(void)
{
	char *dir = make_tmpdir();
	struct state_store *ss = NULL;
	struct state_slot_info info;
	char err[ERRLEN];
	uint8_t *pl = NULL;
	size_t n;

	unit_begin("fresh directory: load returns 1 and creates nothing");
	if (!CHECK(dir))
		goto out;
	if (!CHECKF(state_store_open(&ss, dir, key, 0600, NULL, err, ERRLEN) == 0, "%s", err))
		goto out;
	CHECK(state_store_load(ss, NULL, &pl, &n, &info, err, ERRLEN) == 1);
	CHECK(state_store_version(ss) == 0);
	CHECK(count_entries(dir) == 0);
out:
	state_store_close(ss);
	remove_dir(dir);
	unit_end();
}

/* backend-uri=file://PATH: the state is a file of another name; only that name is used. */
static void test_named_file(void)
{
	static const char *const bad[] = {"", "a/b", ".", ".."};
	char *dir = make_tmpdir(), path[512];
	struct state_store *ss = NULL;
	struct state_slot_info info;
	char err[ERRLEN] = "";
	uint8_t *pl = gen_payload(7, 3000), *got = NULL;
	struct stat st;
	size_t n, i;

	unit_begin("a state file of another name (file:// backend) is written and read back");
	if (!CHECK(dir && pl))
		goto out;
	if (!CHECKF(state_store_open_named(&ss, dir, "vm1-tpm.img", key, 0600, NULL, err, ERRLEN) ==
			0,
		    "%s", err))
		goto out;
	CHECK(state_store_load(ss, NULL, &got, &n, &info, err, ERRLEN) == 1);
	CHECKF(state_store_commit(ss, pl, 3000, &info, err, ERRLEN) == 0, "%s", err);
	state_store_close(ss);
	ss = NULL;
	snprintf(path, sizeof(path), "%s/vm1-tpm.img", dir);
	CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode) && count_entries(dir) == 1);
	CHECK(state_store_open_named(&ss, dir, "vm1-tpm.img", key, 0600, NULL, err, ERRLEN) == 0);
	CHECKF(ss && state_store_load(ss, NULL, &got, &n, &info, err, ERRLEN) == 0 && n == 3000 &&
		   memcmp(got, pl, n) == 0,
	       "%s", err);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct state_store *b = NULL;
		CHECKF(state_store_open_named(&b, dir, bad[i], key, 0600, NULL, err, ERRLEN) ==
			       STATE_ERR_IO &&
			   !b && strstr(err, "is not a file name"),
		       "name '%s': %s", bad[i], err);
	}
out:
	free(got);
	free(pl);
	state_store_close(ss);
	remove_dir(dir);
	unit_end();
}

static void test_missing_dir(void)
{
	struct state_store *ss = NULL;
	char err[ERRLEN] = "";

	unit_begin("a missing state directory is a precise open error");
	CHECK(state_store_open(&ss, "/nonexistent/vtpm", key, 0600, NULL, err, ERRLEN) ==
	      STATE_ERR_IO);
	CHECK(ss == NULL);
	CHECKF(strstr(err, "/nonexistent/vtpm") != NULL, "message: %s", err);
	unit_end();
}

static void first_commit(const uint8_t *k, const char *name)
{
	static const uint8_t uuid[16] = {1, 2, 3, 4, 5, 6, 0x47, 8, 0x89, 10, 11, 12, 13, 14, 15};
	char *dir = make_tmpdir();
	struct state_store *ss = NULL;
	struct state_slot_info ci, li;
	char err[ERRLEN] = "";
	uint8_t *pl = gen_payload(1, 20000), *got = NULL;
	struct stat st;
	size_t n;

	unit_begin(name);
	if (!CHECK(dir && pl) || !(ss = open_loaded(dir, k, 1)))
		goto out;
	state_store_set_uuid(ss, uuid);
	if (!CHECKF(state_store_commit(ss, pl, 20000, &ci, err, ERRLEN) == 0, "commit: %s", err))
		goto out;
	CHECK(ci.version == 1 && state_store_version(ss) == 1 && ci.encrypted == (k != NULL));
	CHECK(!memcmp(ci.uuid, uuid, 16));
	if (CHECK(stat(state_path(dir), &st) == 0)) {
		CHECKF((st.st_mode & 07777) == 0600, "mode %o", st.st_mode & 07777);
		CHECKF(st.st_size % 8192 == 0 && (size_t)st.st_size / 2 >= 2 * 20000, "size %lld",
		       (long long)st.st_size);
	}
	CHECK(count_entries(dir) == 1);
	if (CHECKF(fresh_load(dir, k, &got, &n, &li, err) == 0, "%s", err)) {
		CHECK(is_gen(got, n, 1, 20000) && li.version == 1);
		CHECK(!memcmp(li.digest, ci.digest, 32) && !memcmp(li.uuid, uuid, 16));
	}
out:
	free(got);
	free(pl);
	state_store_close(ss);
	remove_dir(dir);
	unit_end();
}

static void test_alternating(void)
{
	char *dir = make_tmpdir();
	struct state_store *ss = NULL;
	char err[ERRLEN] = "";
	off_t size0 = -1;

	unit_begin("100 commits alternate slots, versions grow by one, file never grows");
	if (!CHECK(dir) || !(ss = open_loaded(dir, key, 1)))
		goto out;
	for (unsigned g = 1; g <= 100; g++) {
		int slot = (int)((g - 1) % 2);

		if (!CHECKF(commit_gen(ss, g, 3000 + g, err) == 0, "commit %u: %s", g, err))
			break;
		if (g == 1)
			size0 = file_size(dir);
		if (!CHECK(state_store_version(ss) == g) ||
		    !CHECKF(slot_version(dir, key, slot) == g, "commit %u not in slot %d", g,
			    slot) ||
		    !CHECKF(g == 1 || slot_version(dir, key, 1 - slot) == g - 1,
			    "commit %u: other slot lost version %u", g, g - 1) ||
		    !CHECK(file_size(dir) == size0) || !loads_gen(dir, key, g, 3000 + g, g))
			break;
	}
out:
	state_store_close(ss);
	remove_dir(dir);
	unit_end();
}

static void test_growth(void)
{
	char *dir = make_tmpdir();
	struct state_store *ss = NULL;
	char err[ERRLEN] = "";
	off_t s1, s2;

	unit_begin("growth: a payload bigger than a slot rewrites the file and keeps state");
	if (!CHECK(dir) || !(ss = open_loaded(dir, key, 1)))
		goto out;
	CHECK(commit_gen(ss, 1, 100, err) == 0);
	s1 = file_size(dir);
	CHECKF(s1 == 8192, "first size %lld", (long long)s1);
	CHECK(commit_gen(ss, 2, 100, err) == 0);
	if (!CHECKF(commit_gen(ss, 3, 10000, err) == 0, "grow: %s", err))
		goto out;
	s2 = file_size(dir);
	CHECKF(s2 > s1 && s2 % 8192 == 0, "grown size %lld", (long long)s2);
	CHECK(slot_version(dir, key, 0) == 3 && slot_version(dir, key, 1) == 0);
	CHECK(loads_gen(dir, key, 3, 10000, 3));
	CHECK(count_entries(dir) == 1);
	/* Back to the fast path in the new geometry: the next commit lands in slot 1. */
	CHECK(commit_gen(ss, 4, 50, err) == 0);
	CHECK(slot_version(dir, key, 1) == 4 && slot_version(dir, key, 0) == 3);
	CHECK(file_size(dir) == s2);
	CHECK(loads_gen(dir, key, 4, 50, 4));
	CHECK(commit_gen(ss, 5, 10001, err) == 0 && file_size(dir) == s2);
	CHECK(loads_gen(dir, key, 5, 10001, 5));
out:
	state_store_close(ss);
	remove_dir(dir);
	unit_end();
}

static void test_reopen(void)
{
	char *dir = make_tmpdir();
	struct state_store *ss = NULL;
	char err[ERRLEN] = "";

	unit_begin("reopen finds the newest version and continues from it");
	if (!CHECK(dir) || !(ss = open_loaded(dir, key, 1)))
		goto out;
	for (unsigned g = 1; g <= 5; g++)
		CHECK(commit_gen(ss, g, 500, err) == 0);
	state_store_close(ss);
	if (!(ss = open_loaded(dir, key, 0)))
		goto out;
	CHECK(state_store_version(ss) == 5);
	CHECK(commit_gen(ss, 6, 500, err) == 0 && state_store_version(ss) == 6);
	state_store_close(ss);
	ss = open_loaded(dir, key, 0);
	CHECK(ss && state_store_version(ss) == 6);
	CHECK(loads_gen(dir, key, 6, 500, 6));
out:
	state_store_close(ss);
	remove_dir(dir);
	unit_end();
}

static void test_commit_needs_load(void)
{
	char *dir = make_tmpdir();
	struct state_store *ss = NULL;
	char err[ERRLEN] = "";

	unit_begin("commit before a successful load is refused and writes nothing");
	if (!CHECK(dir))
		goto out;
	CHECK(state_store_open(&ss, dir, key, 0600, NULL, err, ERRLEN) == 0);
	CHECK(ss && commit_gen(ss, 1, 10, err) == STATE_ERR_IO);
	CHECKF(strstr(err, "not loaded") != NULL, "message: %s", err);
	CHECK(count_entries(dir) == 0);
out:
	state_store_close(ss);
	remove_dir(dir);
	unit_end();
}

static void test_pwrite_enospc(void)
{
	char *dir = make_tmpdir();
	struct state_store *ss = NULL;
	char err[ERRLEN] = "";

	unit_begin("pwrite ENOSPC: commit fails, old state stays, next commit works");
	if (!CHECK(dir) || !(ss = open_loaded(dir, key, 1)))
		goto out;
	fault_reset();
	for (unsigned g = 1; g <= 3; g++)
		CHECK(commit_gen(ss, g, 2000, err) == 0);
	F.pwrite_errno = ENOSPC;
	CHECK(commit_gen(ss, 4, 2000, err) == STATE_ERR_IO);
	CHECKF(strstr(err, "No space left") && strstr(err, "slot 1") && strstr(err, dir),
	       "message: %s", err);
	CHECK(state_store_version(ss) == 3);
	CHECK(loads_gen(dir, key, 3, 2000, 3));
	CHECK(commit_gen(ss, 5, 2000, err) == 0 && state_store_version(ss) == 4);
	CHECK(loads_gen(dir, key, 5, 2000, 4));
	CHECK(commit_gen(ss, 6, 2000, err) == 0);
	CHECK(loads_gen(dir, key, 6, 2000, 5));
out:
	fault_reset();
	state_store_close(ss);
	remove_dir(dir);
	unit_end();
}

/* Every stride-th cut, plus the cuts around 512/4096-byte boundaries and the trailer. */
static size_t next_cut(size_t t, size_t img, size_t stride)
{
	static const size_t edges[] = {1, 4, 5, 63, 64, 65, 511, 512, 513, 4095, 4096, 4097};

	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
		if (edges[i] > t && edges[i] < t + stride)
			return edges[i];
	if (t < img - 33 && t + stride > img - 33)
		return img - 33;
	if (t < img - 17 && t + stride > img - 17)
		return img - 17;
	if (t < img - 1 && t + stride > img - 1)
		return img - 1;
	return t + stride;
}

/*
 * A torn write at every byte K of the image: the first K bytes of the new image over the
 * previous content of the slot (an older valid image, or zeros). Fresh load: old state.
 */
static void torn_writes(const uint8_t *k, size_t len, int commits_before, size_t stride,
			const char *name)
{
	char *dir = make_tmpdir();
	struct state_store *ss = NULL;
	char err[ERRLEN] = "";
	size_t img = state_slot_size(len, k != NULL);
	unsigned g = 0;

	unit_begin(name);
	if (!CHECK(dir) || !(ss = open_loaded(dir, k, 1)))
		goto out;
	fault_reset();
	while ((int)g < commits_before)
		CHECK(commit_gen(ss, ++g, len, err) == 0);
	/* K = img would be a whole write that then reports EIO: the new state, legitimately. */
	for (size_t t = 0; t < img; t = next_cut(t, img, stride)) {
		uint64_t v = state_store_version(ss);

		F.torn = (long)t;
		if (!CHECKF(commit_gen(ss, 1000 + (unsigned)t, len, err) == STATE_ERR_IO,
			    "torn at %zu: %s", t, err) ||
		    !CHECK(state_store_version(ss) == v))
			break;
		/* Old state; or, when the bytes not written already matched, the whole new one. */
		if (F.torn_whole ? !loads_gen(dir, k, 1000 + (unsigned)t, len, v + 1)
				 : !loads_gen(dir, k, g, len, v))
			break;
		/* The slot that tore is the next one written; the commit after must stick. */
		if (!CHECKF(commit_gen(ss, ++g, len, err) == 0, "after torn at %zu: %s", t, err) ||
		    !loads_gen(dir, k, g, len, v + 1))
			break;
	}
out:
	fault_reset();
	state_store_close(ss);
	remove_dir(dir);
	unit_end();
}

static void test_short_writes(void)
{
	char *dir = make_tmpdir();
	struct state_store *ss = NULL;
	char err[ERRLEN] = "";

	unit_begin("short pwrites are continued until the whole image is written");
	if (!CHECK(dir) || !(ss = open_loaded(dir, key, 1)))
		goto out;
	fault_reset();
	F.max_chunk = 1000;
	CHECK(commit_gen(ss, 1, 20000, err) == 0);
	CHECK(F.pwrites > 20);
	F.pwrites = 0;
	CHECK(commit_gen(ss, 2, 20000, err) == 0);
	CHECKF(F.pwrites == 21, "%d pwrites", F.pwrites);
	CHECK(loads_gen(dir, key, 2, 20000, 2));
out:
	fault_reset();
	state_store_close(ss);
	remove_dir(dir);
	unit_end();
}

static void fdatasync_eio(bool lose, const char *name)
{
	char *dir = make_tmpdir();
	struct state_store *ss = NULL;
	struct state_slot_info info;
	char err[ERRLEN] = "";
	uint8_t *pl = NULL;
	size_t n;
	int rc;

	unit_begin(name);
	if (!CHECK(dir) || !(ss = open_loaded(dir, key, 1)))
		goto out;
	fault_reset();
	CHECK(commit_gen(ss, 1, 5000, err) == 0 && commit_gen(ss, 2, 5000, err) == 0);
	F.fdatasync_errno = EIO;
	F.lose_on_failure = lose;
	CHECK(commit_gen(ss, 3, 5000, err) == STATE_ERR_IO);
	CHECKF(strstr(err, "fdatasync") && strstr(err, "slot 0"), "message: %s", err);
	CHECK(state_store_version(ss) == 2);
	rc = fresh_load(dir, key, &pl, &n, &info, err);
	if (lose)
		CHECK(rc == 0 && info.version == 2 && is_gen(pl, n, 2, 5000));
	else /* the bytes may have reached the file anyway: old or new, whole */
		CHECK(rc == 0 && ((info.version == 2 && is_gen(pl, n, 2, 5000)) ||
				  (info.version == 3 && is_gen(pl, n, 3, 5000))));
	free(pl);
	CHECK(commit_gen(ss, 4, 5000, err) == 0 && state_store_version(ss) == 3);
	CHECK(slot_version(dir, key, 0) == 3 && slot_version(dir, key, 1) == 2);
	CHECK(loads_gen(dir, key, 4, 5000, 3));
out:
	fault_reset();
	state_store_close(ss);
	remove_dir(dir);
	unit_end();
}

static void test_grow_faults(void)
{
	char *dir = make_tmpdir();
	struct state_store *ss = NULL;
	char err[ERRLEN] = "";

	unit_begin("grow path: failed temp write/fsync leaves old file and no temp files");
	if (!CHECK(dir) || !(ss = open_loaded(dir, key, 1)))
		goto out;
	fault_reset();
	CHECK(commit_gen(ss, 1, 100, err) == 0);
	F.fsync_fail_at = F.fsyncs + 1; /* the temp file's fsync */
	CHECK(commit_gen(ss, 2, 9000, err) == STATE_ERR_IO);
	CHECKF(strstr(err, "new file") && strstr(err, "Input/output error"), "message: %s", err);
	CHECK(count_entries(dir) == 1 && state_store_version(ss) == 1);
	CHECK(loads_gen(dir, key, 1, 100, 1));
	F.pwrite_errno = ENOSPC;
	CHECK(commit_gen(ss, 3, 9000, err) == STATE_ERR_IO);
	CHECK(count_entries(dir) == 1 && loads_gen(dir, key, 1, 100, 1));
	F.torn = 5000;
	CHECK(commit_gen(ss, 4, 9000, err) == STATE_ERR_IO);
	CHECK(count_entries(dir) == 1 && loads_gen(dir, key, 1, 100, 1));
	CHECK(file_size(dir) == 8192);
	/* Still the old geometry: a small commit takes the fast path into slot 1. */
	CHECK(commit_gen(ss, 5, 100, err) == 0 && slot_version(dir, key, 1) == 2);
	CHECK(loads_gen(dir, key, 5, 100, 2));
out:
	fault_reset();
	state_store_close(ss);
	remove_dir(dir);
	unit_end();
}

static void test_dir_fsync_fault(void)
{
	char *dir = make_tmpdir();
	struct state_store *ss = NULL;
	char err[ERRLEN] = "";
	int before;

	unit_begin("grow path: failed directory fsync is retried before the next commit");
	if (!CHECK(dir) || !(ss = open_loaded(dir, key, 1)))
		goto out;
	fault_reset();
	CHECK(commit_gen(ss, 1, 100, err) == 0);
	F.fsync_fail_at = F.fsyncs + 2; /* temp fsync succeeds, directory fsync fails */
	CHECK(commit_gen(ss, 2, 9000, err) == STATE_ERR_IO);
	CHECKF(strstr(err, "fsync of its directory"), "message: %s", err);
	/* The rename happened: the view follows the disk, which holds version 2. */
	CHECK(state_store_version(ss) == 2 && loads_gen(dir, key, 2, 9000, 2));
	CHECK(count_entries(dir) == 1);
	F.fsync_fail_at = F.fsyncs + 1; /* the retried directory fsync fails again */
	CHECK(commit_gen(ss, 3, 9000, err) == STATE_ERR_IO);
	CHECKF(strstr(err, "pending"), "message: %s", err);
	CHECK(state_store_version(ss) == 2 && slot_version(dir, key, 1) == 0);
	before = F.fsyncs;
	CHECK(commit_gen(ss, 4, 9000, err) == 0 && F.fsyncs == before + 1);
	CHECK(state_store_version(ss) == 3 && slot_version(dir, key, 1) == 3);
	before = F.fsyncs;
	CHECK(commit_gen(ss, 5, 9000, err) == 0 && F.fsyncs == before);
	CHECK(loads_gen(dir, key, 5, 9000, 4));
out:
	fault_reset();
	state_store_close(ss);
	remove_dir(dir);
	unit_end();
}

static void test_one_slot_corrupt(void)
{
	char *dir = make_tmpdir();
	struct state_store *ss = NULL;
	char err[ERRLEN] = "", note[ERRLEN];
	off_t cap;

	unit_begin("one corrupt slot: the other wins with a note, the next commit replaces it");
	if (!CHECK(dir) || !(ss = open_loaded(dir, key, 1)))
		goto out;
	for (unsigned g = 1; g <= 4; g++)
		CHECK(commit_gen(ss, g, 1000, err) == 0);
	state_store_close(ss);
	ss = NULL;
	cap = file_size(dir) / 2;
	CHECK(patch_file(dir, cap + 200, 0x01)); /* slot 1 holds version 4 */
	CHECK(loads_gen(dir, key, 3, 1000, 3));
	CHECK(load_note(dir, key, 3, note));
	CHECKF(strstr(note, "slot 1 (offset 4096) is damaged") &&
		   strstr(note, "authentication failed") &&
		   strstr(note, "loaded version 3 from slot 0") && strstr(note, dir),
	       "note: %s", note);
	if (!(ss = open_loaded(dir, key, 0)))
		goto out;
	CHECK(state_store_version(ss) == 3);
	CHECK(commit_gen(ss, 5, 1000, err) == 0 && slot_version(dir, key, 1) == 4);
	CHECK(loads_gen(dir, key, 5, 1000, 4));
	CHECK(load_note(dir, key, 4, note) && note[0] == '\0');
	CHECK(patch_file(dir, 100, 0x80)); /* slot 0 (version 3), the older one */
	CHECK(loads_gen(dir, key, 5, 1000, 4));
	CHECK(load_note(dir, key, 4, note));
	CHECKF(strstr(note, "slot 0 (offset 0) is damaged") &&
		   strstr(note, "loaded version 4 from slot 1"),
	       "note: %s", note);
out:
	state_store_close(ss);
	remove_dir(dir);
	unit_end();
}

/* Load must fail with want_rc, name both slots, leave the file unchanged, block commits. */
static void expect_unloadable(const char *dir, const uint8_t *k, int want_rc, const char *want_msg)
{
	struct state_slot_info info;
	struct state_store *ss = NULL;
	char err[ERRLEN] = "";
	uint8_t before[32], after[32], *pl = NULL;
	size_t n;
	int rc;

	if (!CHECK(file_digest(dir, before)))
		return;
	if (!CHECKF(state_store_open(&ss, dir, k, 0600, NULL, err, ERRLEN) == 0, "%s", err))
		return;
	rc = state_store_load(ss, NULL, &pl, &n, &info, err, ERRLEN);
	CHECKF(rc == want_rc, "load returned %d (%s), want %d", rc, err, want_rc);
	CHECKF(strstr(err, want_msg) && strstr(err, dir), "message: %s", err);
	CHECK(pl == NULL);
	CHECK(commit_gen(ss, 99, 10, err) == STATE_ERR_IO);
	state_store_close(ss);
	CHECK(file_digest(dir, after) && !memcmp(before, after, 32));
}

static void test_both_corrupt(void)
{
	char *dir = make_tmpdir();
	struct state_store *ss = NULL;
	char err[ERRLEN] = "";
	off_t cap;

	unit_begin("both slots corrupt: precise error, file unchanged, commit refused");
	if (!CHECK(dir) || !(ss = open_loaded(dir, key, 1)))
		goto out;
	CHECK(commit_gen(ss, 1, 1000, err) == 0 && commit_gen(ss, 2, 1000, err) == 0);
	cap = file_size(dir) / 2;
	CHECK(patch_file(dir, 300, 0x04) && patch_file(dir, cap + 300, 0x04));
	expect_unloadable(dir, key, STATE_ERR_AUTH,
			  "slot 0 (offset 0): authentication failed (wrong key, or the file was "
			  "modified or torn); slot 1 (offset 4096): authentication failed");
	CHECK(patch_file(dir, cap, 0xff)); /* slot 1 magic: malformed, AUTH still wins */
	expect_unloadable(dir, key, STATE_ERR_AUTH, "slot 1 (offset 4096): malformed");
out:
	state_store_close(ss);
	remove_dir(dir);
	unit_end();
}

static void test_wrong_key(void)
{
	char *dir = make_tmpdir(), *pdir = make_tmpdir();
	struct state_store *ss = NULL;
	char err[ERRLEN] = "";
	uint8_t other[STATE_KEY_LEN];

	memcpy(other, key, sizeof(other));
	other[0] ^= 0x55;
	unit_begin("wrong key, no key, unexpected key: error, file unchanged");
	if (!CHECK(dir && pdir) || !(ss = open_loaded(dir, key, 1)))
		goto out;
	CHECK(commit_gen(ss, 1, 1000, err) == 0 && commit_gen(ss, 2, 1000, err) == 0);
	state_store_close(ss);
	expect_unloadable(dir, other, STATE_ERR_AUTH, "slot 0 (offset 0): authentication");
	expect_unloadable(dir, NULL, STATE_ERR_NEED_KEY, "no key was given");
	if (!(ss = open_loaded(pdir, NULL, 1)))
		goto out;
	CHECK(commit_gen(ss, 1, 1000, err) == 0);
	expect_unloadable(pdir, key, STATE_ERR_UNEXPECTED_KEY, "slot 1 (offset 4096): empty");
	CHECK(loads_gen(pdir, NULL, 1, 1000, 1));
out:
	state_store_close(ss);
	remove_dir(dir);
	remove_dir(pdir);
	unit_end();
}

static void test_uuid(void)
{
	static const uint8_t mine[16] = {0xaa, 1}, theirs[16] = {0xbb, 2};
	char *dir = make_tmpdir();
	struct state_store *ss = NULL;
	struct state_slot_info info;
	char err[ERRLEN] = "";
	uint8_t *pl = NULL;
	size_t n;

	unit_begin("want_uuid: adopted on a fresh store, mismatch refused");
	if (!CHECK(dir) || !CHECK(state_store_open(&ss, dir, key, 0600, NULL, err, ERRLEN) == 0))
		goto out;
	CHECK(state_store_load(ss, mine, &pl, &n, &info, err, ERRLEN) == 1);
	CHECK(commit_gen(ss, 1, 10, err) == 0);
	state_store_close(ss);
	ss = NULL;
	CHECK(state_store_open(&ss, dir, key, 0600, NULL, err, ERRLEN) == 0);
	CHECK(ss && state_store_load(ss, mine, &pl, &n, &info, err, ERRLEN) == 0);
	CHECK(!memcmp(info.uuid, mine, 16));
	free(pl);
	pl = NULL;
	CHECK(ss && state_store_load(ss, theirs, &pl, &n, &info, err, ERRLEN) == STATE_ERR_UUID);
	CHECKF(strstr(err, "another vTPM"), "message: %s", err);
	CHECK(pl == NULL);
out:
	state_store_close(ss);
	remove_dir(dir);
	unit_end();
}

static void bad_size(const char *dir, off_t size)
{
	char err[ERRLEN] = "";
	uint8_t *pl = NULL;
	struct state_slot_info info;
	size_t n;
	int rc;

	if (!CHECK(truncate(state_path(dir), size) == 0))
		return;
	rc = fresh_load(dir, key, &pl, &n, &info, err);
	CHECKF(rc == STATE_ERR_FORMAT && strstr(err, "not a non-zero multiple of 8192"),
	       "size %lld: %d %s", (long long)size, rc, err);
	free(pl);
}

static void test_bad_sizes(void)
{
	char *dir = make_tmpdir();
	struct state_store *ss = NULL;
	char err[ERRLEN] = "";
	int fd;

	unit_begin("file size not a non-zero even multiple of 4096 is a precise error");
	if (!CHECK(dir) || !(ss = open_loaded(dir, key, 1)))
		goto out;
	CHECK(commit_gen(ss, 1, 100, err) == 0);
	bad_size(dir, 8192 + 100);
	bad_size(dir, 8191);
	bad_size(dir, 4096);
	bad_size(dir, 12288);
	bad_size(dir, 0);
	/* Two zeroed slots: a file that was never written. */
	CHECK(truncate(state_path(dir), 8192) == 0);
	expect_unloadable(dir, key, STATE_ERR_EMPTY, "slot 0 (offset 0): empty");
	/* Larger than any file vtpm writes: refused without reading it. */
	fd = open(state_path(dir), O_RDWR);
	CHECK(fd >= 0 && ftruncate(fd, (off_t)64 << 20) == 0);
	if (fd >= 0)
		close(fd);
	expect_unloadable(dir, key, STATE_ERR_FORMAT, "larger than any state file");
out:
	state_store_close(ss);
	remove_dir(dir);
	unit_end();
}

static void test_no_note(void)
{
	char *dir = make_tmpdir();
	struct state_store *ss = NULL;
	struct state_slot_info info;
	char err[ERRLEN] = "", note[ERRLEN];
	uint8_t *pl = NULL;
	size_t n;

	unit_begin("no note when the other slot is empty or valid and older");
	if (!CHECK(dir) || !(ss = open_loaded(dir, key, 1)))
		goto out;
	strcpy(err, "junk");
	CHECK(state_store_load(ss, NULL, &pl, &n, &info, err, ERRLEN) == 1 && err[0] == '\0');
	CHECK(commit_gen(ss, 1, 300, err) == 0);
	CHECK(load_note(dir, key, 1, note) && note[0] == '\0'); /* slot 1 empty */
	CHECK(commit_gen(ss, 2, 300, err) == 0);
	CHECK(load_note(dir, key, 2, note) && note[0] == '\0'); /* slot 0 older */
	CHECK(commit_gen(ss, 3, 300, err) == 0);
	CHECK(load_note(dir, key, 3, note) && note[0] == '\0'); /* slot 1 older */
	/* The same store: a reload clears err as well. */
	strcpy(err, "junk");
	CHECK(state_store_load(ss, NULL, &pl, &n, &info, err, ERRLEN) == 0 && err[0] == '\0');
	free(pl);
out:
	state_store_close(ss);
	remove_dir(dir);
	unit_end();
}

static void test_doubled(const uint8_t *k, const char *name)
{
	char *dir = make_tmpdir();
	struct state_store *ss = NULL;
	char err[ERRLEN] = "";

	unit_begin(name);
	if (!CHECK(dir) || !(ss = open_loaded(dir, k, 1)))
		goto out;
	for (unsigned g = 1; g <= 3; g++)
		CHECK(commit_gen(ss, g, 500, err) == 0);
	state_store_close(ss);
	ss = NULL;
	/* truncate -s 2x: slot 1 moves to 8192 (zeros); slot 0 now spans both old slots. */
	CHECK(file_size(dir) == 8192 && truncate(state_path(dir), 16384) == 0);
	expect_unloadable(dir, k, STATE_ERR_RESIZED,
			  "slot 0 (offset 0): records a slot size of 4096 bytes but the file has "
			  "slots of 8192: the file was resized or truncated; slot 1 (offset "
			  "8192): empty");
	CHECK(file_size(dir) == 16384);
	/* Back to the size it was written for: everything is there again. */
	CHECK(truncate(state_path(dir), 8192) == 0);
	CHECK(loads_gen(dir, k, 3, 500, 3));
out:
	state_store_close(ss);
	remove_dir(dir);
	unit_end();
}

static void test_halved(void)
{
	char *dir = make_tmpdir();
	struct state_store *ss = NULL;
	char err[ERRLEN] = "";

	unit_begin("a file halved (slots of 8192 -> 4096) is refused as resized, not loaded");
	if (!CHECK(dir) || !(ss = open_loaded(dir, key, 1)))
		goto out;
	/* 3000 bytes: the grow path makes slots of round_up(2 * 3088, 4096) = 8192. */
	CHECK(commit_gen(ss, 1, 3000, err) == 0 && commit_gen(ss, 2, 3000, err) == 0);
	CHECK(commit_gen(ss, 3, 3000, err) == 0);
	state_store_close(ss);
	ss = NULL;
	if (!CHECKF(file_size(dir) == 16384, "size %lld", (long long)file_size(dir)))
		goto out;
	CHECK(slot_version(dir, key, 0) == 3 && slot_version(dir, key, 1) == 2);
	CHECK(truncate(state_path(dir), 8192) == 0);
	expect_unloadable(dir, key, STATE_ERR_RESIZED,
			  "slot 0 (offset 0): records a slot size of 8192 bytes but the file has "
			  "slots of 4096: the file was resized or truncated");
out:
	state_store_close(ss);
	remove_dir(dir);
	unit_end();
}

/* Copy len bytes at src_off of dir a's state file to dst_off of dir b's. */
static bool copy_bytes(const char *a, off_t src_off, const char *b, off_t dst_off, size_t len)
{
	char pa[4096], pb[4096];
	uint8_t *buf = malloc(len);
	int fa, fb;
	bool ok;

	snprintf(pa, sizeof(pa), "%s/%s", a, STATE_FILE_NAME);
	snprintf(pb, sizeof(pb), "%s/%s", b, STATE_FILE_NAME);
	fa = open(pa, O_RDONLY | O_CLOEXEC);
	fb = open(pb, O_RDWR | O_CLOEXEC);
	ok = buf && fa >= 0 && fb >= 0 && pread(fa, buf, len, src_off) == (ssize_t)len &&
	     pwrite(fb, buf, len, dst_off) == (ssize_t)len;
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	free(buf);
	return ok;
}

static void test_resized_next_to_valid(void)
{
	static const uint8_t uuid[16] = {0x42, 1, 2, 3};
	char *big = make_tmpdir(), *small = make_tmpdir();
	struct state_store *ss = NULL;
	char err[ERRLEN] = "";

	unit_begin("a genuine slot of another size next to a valid slot: refused, not skipped");
	if (!CHECK(big && small) || !(ss = open_loaded(big, key, 1)))
		goto out;
	state_store_set_uuid(ss, uuid);
	for (unsigned g = 1; g <= 5; g++) /* version 5 in slot 0 of a file of 8192-byte slots */
		CHECK(commit_gen(ss, g, 3000, err) == 0);
	state_store_close(ss);
	if (!(ss = open_loaded(small, key, 1)))
		goto out;
	state_store_set_uuid(ss, uuid);
	CHECK(commit_gen(ss, 1, 100, err) == 0 && commit_gen(ss, 2, 100, err) == 0);
	state_store_close(ss);
	ss = NULL;
	/* The newer image (version 5, slots of 8192) lands in slot 1 of the 4096-slot file. */
	CHECK(file_size(big) == 16384 && file_size(small) == 8192);
	CHECK(copy_bytes(big, 0, small, 4096, 4096));
	expect_unloadable(
	    small, key, STATE_ERR_RESIZED,
	    "refusing to load: slot 0 (offset 0): valid (version 1); slot 1 (offset "
	    "4096): records a slot size of 8192 bytes but the file has slots of 4096");
out:
	state_store_close(ss);
	remove_dir(big);
	remove_dir(small);
	unit_end();
}

static void test_symlink(void)
{
	char *dir = make_tmpdir();
	struct state_store *ss = NULL;
	char err[ERRLEN] = "";

	unit_begin("a symbolic link as the state file is refused");
	if (!CHECK(dir) || !CHECK(symlink("/etc/passwd", state_path(dir)) == 0))
		goto out;
	CHECK(state_store_open(&ss, dir, key, 0600, NULL, err, ERRLEN) == STATE_ERR_IO);
	CHECKF(strstr(err, "symbolic link"), "message: %s", err);
out:
	state_store_close(ss);
	remove_dir(dir);
	unit_end();
}

int main(void)
{
	umask(022);
	fault_reset();
	test_fresh();
	test_missing_dir();
	test_named_file();
	first_commit(key, "first commit (encrypted) creates a 0600 file; load returns it");
	first_commit(NULL, "first commit (plain) creates a 0600 file; load returns it");
	test_alternating();
	test_growth();
	test_reopen();
	test_commit_needs_load();
	test_pwrite_enospc();
	torn_writes(key, 200, 2, 1, "torn write at every byte over an older image: old state wins");
	torn_writes(key, 200, 1, 1, "torn write at every byte over a zeroed slot: old state wins");
	torn_writes(NULL, 200, 2, 1, "torn write at every byte, plain file: old state wins");
	torn_writes(key, 20000, 3, 251, "torn writes of a 20 KB state: old state wins");
	test_short_writes();
	fdatasync_eio(true, "fdatasync EIO, write lost: old state, next commit works");
	fdatasync_eio(false, "fdatasync EIO, write kept: old or new state, next commit works");
	test_grow_faults();
	test_dir_fsync_fault();
	test_one_slot_corrupt();
	test_both_corrupt();
	test_wrong_key();
	test_uuid();
	test_bad_sizes();
	test_no_note();
	test_doubled(key, "a file doubled with zeros (truncate -s 2x) is refused as resized");
	test_doubled(NULL, "a plain file doubled with zeros is refused as resized");
	test_halved();
	test_resized_next_to_valid();
	test_symlink();
	return unit_exit();
}
