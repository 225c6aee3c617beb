/*
 * commit_batch.h — group commit of vTPM state versions.
 *
 * Each MGR_COMMIT must be durable in the store before it is answered, and a durable SQLite
 * transaction costs an fsync: one per commit would make the store's disk, not the guests,
 * set the pace. So the commits that arrive in one turn of the event loop are held here,
 * applied in one store transaction, and answered together once it is on disk (one fsync for
 * all). A commit that is refused (rollback, not the holder) is answered with its refusal;
 * if the transaction itself cannot be written (disk full), every commit in it is answered
 * MGR_ERR_RETRY and vtpmd sends it again. Only commits are held (decoded, by the listener);
 * everything else is served one by one, after the commits held before it.
 */
#ifndef VTPM_COMMIT_BATCH_H
#define VTPM_COMMIT_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BATCH_MAX     64
#define BATCH_OUT_MAX 1024 /* a commit's answer: status, or a refusal's message */

struct batch_item {
	uint64_t conn; /* the connection's id, found again when the batch is answered */
	pid_t sender;
	uint8_t uuid[16];
	uint64_t version;
	uint8_t digest[32];
	size_t outlen;
	uint8_t out[BATCH_OUT_MAX];
	uint32_t status;
	bool close; /* the connection is to be closed after the answer */
};

struct commit_batch {
	size_t n;
	struct batch_item v[BATCH_MAX];
};

/* Hold a decoded MGR_COMMIT of connection conn, sent by sender, if there is room: true. */
bool batch_take(struct commit_batch *b, uint64_t conn, pid_t sender, const uint8_t uuid[16],
		uint64_t version, const uint8_t digest[32]);
/* Replace an accepted commit's answer by MGR_ERR_RETRY with why. */
void batch_retry(struct batch_item *it, const char *why);
/* Forget every item (their bytes are cleansed). */
void batch_clear(struct commit_batch *b);

#endif
