#include "common/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/aead.h"

/* Attempts at a fresh temp name before giving up on EEXIST (stale temps of crashes). */
#define TEMP_TRIES 16

int pwrite_all(ssize_t (*pw)(int, const void *, size_t, off_t), int fd, const void *buf, size_t len,
	       off_t off, size_t *done)
{
	const uint8_t *p = buf;
	size_t n = 0;
	int rc = 0;

	while (n < len) {
		size_t chunk = len - n < SSIZE_MAX ? len - n : SSIZE_MAX;
		ssize_t w = pw(fd, p + n, chunk, off + (off_t)n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			/* A zero return would loop forever; report it as an I/O error. */
			if (w == 0)
				errno = EIO;
			rc = -1;
			break;
		}
		n += (size_t)w;
	}
	if (done)
		*done = n;
	return rc;
}

/* ".NAME.<16 hex>.tmp": hidden, unique, and recognisable as ours if a crash leaves it. */
static int temp_name(char *buf, size_t size, const char *name)
{
	uint8_t r[8];
	char hex[2 * sizeof(r) + 1];
	int n;

	if (random_bytes(r, sizeof(r))) {
		errno = EIO;
		return -1;
	}
	for (size_t i = 0; i < sizeof(r); i++)
		snprintf(hex + 2 * i, 3, "%02x", r[i]);
	n = snprintf(buf, size, ".%s.%s.tmp", name, hex);
	if (n < 0 || (size_t)n >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static int create_temp(int dirfd, const char *name, mode_t mode, char *tmp, size_t tmpsize)
{
	for (int i = 0; i < TEMP_TRIES; i++) {
		int fd;

		if (temp_name(tmp, tmpsize, name))
			return -1;
		fd = openat(dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	return -1;
}

static void fill_io(struct atomic_io *dst, const struct atomic_io *src)
{
	dst->pwrite = src && src->pwrite ? src->pwrite : pwrite;
	dst->fsync = src && src->fsync ? src->fsync : fsync;
}

/* Undo a temp file that was not renamed, keeping the errno of the original failure. */
static int discard_temp(int dirfd, const char *tmp, int fd)
{
	int saved = errno;

	close(fd);
	unlinkat(dirfd, tmp, 0);
	errno = saved;
	return ATOMIC_ERR;
}

int atomic_file_write_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
			 const struct atomic_io *hooks, int *fd_out)
{
	char tmp[NAME_MAX + 1];
	struct atomic_io io;
	int fd;

	if (fd_out)
		*fd_out = -1;
	if (!name[0] || strchr(name, '/')) {
		errno = EINVAL;
		return ATOMIC_ERR;
	}
	fill_io(&io, hooks);
	fd = create_temp(dirfd, name, mode, tmp, sizeof(tmp));
	if (fd < 0)
		return ATOMIC_ERR;
	if (pwrite_all(io.pwrite, fd, data, len, 0, NULL) || io.fsync(fd))
		return discard_temp(dirfd, tmp, fd);
	if (renameat(dirfd, tmp, dirfd, name))
		return discard_temp(dirfd, tmp, fd);
	/* From here the name is the new file: failures no longer undo anything. */
	if (io.fsync(dirfd)) {
		int saved = errno;

		if (fd_out)
			*fd_out = fd;
		else
			close(fd);
		errno = saved;
		return ATOMIC_ERR_DIRSYNC;
	}
	if (fd_out) {
		*fd_out = fd;
		return ATOMIC_OK;
	}
	/* The data is already on disk; a close error here cannot mean lost writes. */
	close(fd);
	return ATOMIC_OK;
}

int atomic_file_write(const char *dir, const char *name, const void *data, size_t len, mode_t mode,
		      const struct atomic_io *io)
{
	int dirfd, rc, saved;

	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return ATOMIC_ERR;
	rc = atomic_file_write_at(dirfd, name, data, len, mode, io, NULL);
	saved = errno;
	close(dirfd);
	errno = saved;
	return rc;
}
