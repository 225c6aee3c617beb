#include "vtpmmgrd/commit_batch.h"

#include <string.h>

#include <openssl/crypto.h>

#include "common/cursor.h"
#include "common/mgr_proto.h"

bool batch_take(struct commit_batch *b, int fd, const uint8_t *in, size_t len, bool truncated,
		pid_t sender)
{
	struct batch_item *it;

	if (truncated || len < MGR_HDR_LEN || len > BATCH_IN_MAX || b->n == BATCH_MAX ||
	    be16_get(in) != MGR_COMMIT)
		return false;
	it = &b->v[b->n++];
	memset(it, 0, sizeof(*it));
	it->fd = fd;
	it->sender = sender;
	it->inlen = len;
	memcpy(it->in, in, len);
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
