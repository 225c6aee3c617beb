#include "vtpmd/event_log.h"

#include <stdlib.h>
#include <string.h>

/* A growing little-endian byte buffer; a failed append marks it failed, once. */
struct lebuf {
	uint8_t *p;
	size_t len, cap;
	int failed;
};

static void put(struct lebuf *b, const void *data, size_t n)
{
	if (b->failed || n == 0)
		return;
	if (n > b->cap - b->len) {
		size_t cap = b->cap ? b->cap : 256;
		uint8_t *p;

		while (cap - b->len < n) {
			if (cap > SIZE_MAX / 2) {
				b->failed = 1;
				return;
			}
			cap *= 2;
		}
		p = realloc(b->p, cap);
		if (!p) {
			b->failed = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void put8(struct lebuf *b, uint8_t v)
{
	put(b, &v, 1);
}

static void put16(struct lebuf *b, uint16_t v)
{
	uint8_t le[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
	put(b, le, sizeof(le));
}

static void put32(struct lebuf *b, uint32_t v)
{
	uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	put(b, le, sizeof(le));
}

uint16_t event_log_digest_size(TPMI_ALG_HASH alg)
{
	switch (alg) {
	case TPM2_ALG_SHA1:
		return TPM2_SHA1_DIGEST_SIZE;
	case TPM2_ALG_SHA256:
		return TPM2_SHA256_DIGEST_SIZE;
	case TPM2_ALG_SHA384:
		return TPM2_SHA384_DIGEST_SIZE;
	case TPM2_ALG_SHA512:
		return TPM2_SHA512_DIGEST_SIZE;
	case TPM2_ALG_SM3_256:
		return TPM2_SM3_256_DIGEST_SIZE;
	default:
		return 0;
	}
}

/* The first event: TCG_PCClientPCREvent (SHA-1 format) carrying TCG_EfiSpecIDEvent. */
static void spec_id(struct lebuf *b, const TPMI_ALG_HASH *banks, size_t nbanks)
{
	static const char signature[16] = "Spec ID Event03";
	static const uint8_t no_digest[TPM2_SHA1_DIGEST_SIZE];
	size_t i;

	put32(b, 0);
	put32(b, EV_NO_ACTION);
	put(b, no_digest, sizeof(no_digest));
	put32(b, (uint32_t)(sizeof(signature) + 4 + 4 + 4 + 4 * nbanks + 1));
	put(b, signature, sizeof(signature));
	put32(b, 0); /* platformClass: client */
	put8(b, 0);  /* specVersionMinor */
	put8(b, 2);  /* specVersionMajor */
	put8(b, 0);  /* specErrata */
	put8(b, 2);  /* uintnSize: UINT64 */
	put32(b, (uint32_t)nbanks);
	for (i = 0; i < nbanks; i++) {
		put16(b, banks[i]);
		put16(b, event_log_digest_size(banks[i]));
	}
	put8(b, 0); /* vendorInfoSize */
}

int event_log_build(const TPMI_ALG_HASH *banks, size_t nbanks, const struct event_log_entry *events,
		    size_t n, uint8_t **out, size_t *out_len)
{
	struct lebuf b = {0};
	size_t i, j;

	if (nbanks == 0 || nbanks > TPM2_NUM_PCR_BANKS)
		return -1;
	for (i = 0; i < nbanks; i++)
		if (event_log_digest_size(banks[i]) == 0)
			return -1;
	spec_id(&b, banks, nbanks);
	for (i = 0; i < n; i++) {
		const TPML_DIGEST_VALUES *d = events[i].digests;

		if (d->count != nbanks)
			goto fail;
		put32(&b, events[i].pcr);
		put32(&b, events[i].type);
		put32(&b, d->count);
		for (j = 0; j < nbanks; j++) {
			if (d->digests[j].hashAlg != banks[j])
				goto fail;
			put16(&b, banks[j]);
			put(&b, &d->digests[j].digest, event_log_digest_size(banks[j]));
		}
		put32(&b, events[i].data_len);
		put(&b, events[i].data, events[i].data_len);
	}
	if (b.failed)
		goto fail;
	*out = b.p;
	*out_len = b.len;
	return 0;
fail:
	free(b.p);
	return -1;
}
