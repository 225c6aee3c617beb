#include "vtpmmgrd/commit_batch.h"

#include <string.h>

#include <openssl/crypto.h>

#include "common/mgr_proto.h"

bool batch_take(struct commit_batch *b, uint64_t conn, pid_t sender, const uint8_t uuid[16],
		uint64_t version, const uint8_t digest[32])
{
	struct batch_item *it;

	if (b->n == BATCH_MAX)
		return false;
	it = &b->v[b->n++];
	memset(it, 0, sizeof(*it));
	it->conn = conn;
	it->sender = sender;
	memcpy(it->uuid, uuid, 16);
	it->version = version;
	memcpy(it->digest, digest, 32);
	return true;
}

void batch_retry(struct batch_item *it, const char *why)
{
	struct mgr_builder b;

	mgr_build_init(&b, it->out, sizeof(it->out), MGR_COMMIT | MGR_RESPONSE);
	mgr_put_u32(&b, MGR_F_STATUS, MGR_ERR_RETRY);
	mgr_put_text(&b, MGR_F_MESSAGE, why);
	it->outlen = mgr_build_finish(&b);
	it->status = MGR_ERR_RETRY;
}

void batch_clear(struct commit_batch *b)
{
	OPENSSL_cleanse(b->v, b->n * sizeof(b->v[0]));
	b->n = 0;
}
