/*
 * atomic_file.h — replace a file so that a crash leaves either the old or the new content.
 *
 * temp file in the same directory (O_CREAT|O_EXCL), write all, fsync, rename over the
 * name, fsync the directory. Durable on return 0.
 */
#ifndef VTPM_ATOMIC_FILE_H
#define VTPM_ATOMIC_FILE_H

#include <stddef.h>
#include <sys/types.h>

/* I/O hooks so tests can inject faults; NULL (or a NULL member) means the system call. */
struct atomic_io {
	ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
	int (*fsync)(int fd);
};

enum atomic_err {
	ATOMIC_OK = 0,
	/* Failed; the name still refers to the old file (or to nothing); temp file removed. */
	ATOMIC_ERR = -1,
	/*
	 * The rename was done but the directory fsync failed: the name now refers to the new
	 * content, but a crash may still bring the old one back. Retry to make it durable.
	 */
	ATOMIC_ERR_DIRSYNC = -2,
};

/*
 * Write len bytes of data as dir/name with mode (less the umask). Returns ATOMIC_OK or a
 * negative atomic_err with errno set by the call that failed.
 */
int atomic_file_write(const char *dir, const char *name, const void *data, size_t len, mode_t mode,
		      const struct atomic_io *io);

/*
 * As atomic_file_write, relative to an open directory. If fd_out is not NULL, it receives
 * a read-write descriptor of the new file (O_CLOEXEC) on ATOMIC_OK and on
 * ATOMIC_ERR_DIRSYNC, and -1 otherwise; the caller closes it.
 */
int atomic_file_write_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
			 const struct atomic_io *io, int *fd_out);

/*
 * pwrite all len bytes at off, looping over short writes and EINTR. *done (may be NULL)
 * receives how many bytes were written, also on failure. Returns 0, or -1 with errno
 * (EIO if the call wrote nothing and reported no error).
 */
int pwrite_all(ssize_t (*pw)(int, const void *, size_t, off_t), int fd, const void *buf, size_t len,
	       off_t off, size_t *done);

#endif
