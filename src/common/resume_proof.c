#include "common/resume_proof.h"

#include <string.h>

#include <openssl/crypto.h>

#include "common/aead.h"
#include "common/cursor.h"
#include "common/mgr_proto.h"

int resume_proof(const uint8_t state_key[32], const uint8_t uuid[16], pid_t pid, uint64_t version,
		 const uint8_t digest[32], uint8_t out[32])
{
	uint8_t buf[sizeof(MGR_RESUME_LABEL) - 1 + 16 + 4 + 8 + 32];
	struct wcursor w;
	int rc;

	wc_init(&w, buf, sizeof(buf));
	wc_bytes(&w, MGR_RESUME_LABEL, sizeof(MGR_RESUME_LABEL) - 1);
	wc_bytes(&w, uuid, 16);
	wc_u32(&w, (uint32_t)pid);
	wc_u64(&w, version);
	wc_bytes(&w, digest, 32);
	if (w.failed || w.pos != sizeof(buf))
		return -1;
	rc = hmac_sha256(state_key, 32, buf, sizeof(buf), out);
	OPENSSL_cleanse(buf, sizeof(buf));
	return rc == AEAD_OK ? 0 : -1;
}
