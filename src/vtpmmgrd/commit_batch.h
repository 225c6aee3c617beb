/*
 * commit_batch.h — group commit of vTPM state versions.
 *
 * Each MGR_COMMIT must be durable in the store before it is answered, and a durable SQLite
 * transaction costs an fsync: one per commit would make the store's disk, not the guests,
 * set the pace. So the commits that arrive in one turn of the event loop are held here,
 * applied in one store transaction, and answered together once it is on disk (one fsync for
 * all). A commit that is refused (rollback, not the holder) is answered with its refusal;
 * if the transaction itself cannot be written (disk full), every commit in it is answered
 * MGR_ERR_RETRY and vtpmd sends it again. Only well-formed-sized commits from instance
 * connections are held; everything else is served one by one as before.
 */
#ifndef VTPM_COMMIT_BATCH_H
#define VTPM_COMMIT_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BATCH_MAX     64
#define BATCH_IN_MAX  128  /* a commit: header + UUID, VERSION, DIGEST = 84 bytes */
#define BATCH_OUT_MAX 1024 /* its answer: status, or a refusal's message */

struct batch_item {
	int fd; /* the connection, found again by fd when the batch is answered */
	pid_t sender;
	size_t inlen;
	uint8_t in[BATCH_IN_MAX];
	size_t outlen;
	uint8_t out[BATCH_OUT_MAX];
	uint32_t status;
	bool close; /* the connection is to be closed after the answer */
};

struct commit_batch {
	size_t n;
	struct batch_item v[BATCH_MAX];
};

/* Hold datagram in (len bytes, from fd, sent by sender) if it is a commit that fits and
 * there is room: true, and it is copied. */
bool batch_take(struct commit_batch *b, int fd, const uint8_t *in, size_t len, bool truncated,
		pid_t sender);
/* Replace an accepted commit's answer by MGR_ERR_RETRY with why. */
void batch_retry(struct batch_item *it, const char *why);
/* Forget every item (their bytes are cleansed). */
void batch_clear(struct commit_batch *b);

#endif
