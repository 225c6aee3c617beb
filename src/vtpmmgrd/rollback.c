#include "vtpmmgrd/rollback.h"

#include <inttypes.h>
#include <stdio.h>

#include "vtpmmgrd/host_tpm.h"
#include "vtpmmgrd/store.h"

void rollback_init(struct rollback *rb, struct host_tpm *tpm, uint32_t nv_index, int64_t offset,
		   uint64_t nv_value)
{
	rb->tpm = tpm;
	rb->nv_index = nv_index;
	rb->offset = offset;
	rb->nv_value = nv_value;
	rb->pending = false;
}

static int increment(struct rollback *rb, char *err, size_t errlen)
{
	char terr[512];
	uint64_t v = 0;
	int rc;

	rc = host_tpm_counter_increment(rb->tpm, rb->nv_index, &v, terr, sizeof(terr));
	if (rc != HOST_TPM_OK) {
		rb->pending = true;
		snprintf(err, errlen,
			 "the host TPM NV counter 0x%08x could not be incremented (%s); store "
			 "writes are refused until it can",
			 rb->nv_index, terr);
		return rc == HOST_TPM_ERR_NOENT ? RB_ERR_NOENT : RB_ERR_TPM;
	}
	if (v != rb->nv_value + 1) {
		rb->nv_value = v;
		snprintf(err, errlen,
			 "the host TPM NV counter 0x%08x moved outside vtpmmgrd (now %" PRIu64 ")",
			 rb->nv_index, v);
		return RB_ERR_AHEAD;
	}
	rb->nv_value = v;
	return RB_OK;
}

/* store counter + offset, as the NV value it requires */
static int expected(struct rollback *rb, struct store *s, int64_t *want, char *err, size_t errlen)
{
	uint64_t c;

	if (store_counter(s, &c) != STORE_OK) {
		snprintf(err, errlen, "reading the store counter: %s", store_errmsg(s));
		return RB_ERR_STORE;
	}
	*want = (int64_t)c + rb->offset;
	return RB_OK;
}

int rollback_start(struct rollback *rb, struct store *s, char *err, size_t errlen)
{
	char terr[512];
	int64_t want;
	int rc;

	rc = host_tpm_counter_read(rb->tpm, rb->nv_index, &rb->nv_value, terr, sizeof(terr));
	if (rc == HOST_TPM_ERR_NOENT) {
		snprintf(err, errlen,
			 "the host TPM NV counter 0x%08x that guards the store is not defined (the "
			 "host TPM was cleared, or the index removed): cannot rule out a rollback",
			 rb->nv_index);
		return RB_ERR_NOENT;
	}
	if (rc != HOST_TPM_OK) {
		snprintf(err, errlen, "reading the host TPM NV counter: %s", terr);
		return RB_ERR_TPM;
	}
	rc = expected(rb, s, &want, err, errlen);
	if (rc)
		return rc;
	if (want < 0 || (uint64_t)want < rb->nv_value) {
		snprintf(err, errlen,
			 "the store is older than the host TPM's counter: rollback (store needs "
			 "NV value %" PRId64 ", NV counter 0x%08x is at %" PRIu64 ")",
			 want, rb->nv_index, rb->nv_value);
		return RB_ERR_ROLLBACK;
	}
	if ((uint64_t)want == rb->nv_value)
		return RB_OK;
	if ((uint64_t)want == rb->nv_value + 1)
		return increment(rb, err, errlen);
	snprintf(err, errlen,
		 "the store is %" PRIu64 " commits ahead of the host TPM NV counter 0x%08x (at "
		 "%" PRIu64 "): increments were lost or the counter was replaced",
		 (uint64_t)want - rb->nv_value, rb->nv_index, rb->nv_value);
	return RB_ERR_AHEAD;
}

int rollback_before_write(struct rollback *rb, char *err, size_t errlen)
{
	int rc;

	if (!rb->pending)
		return RB_OK;
	rc = increment(rb, err, errlen);
	if (rc == RB_OK)
		rb->pending = false;
	return rc;
}

int rollback_after_write(struct rollback *rb, struct store *s, char *err, size_t errlen)
{
	int64_t want;
	int rc;

	rc = expected(rb, s, &want, err, errlen);
	if (rc)
		return rc;
	if (want >= 0 && (uint64_t)want == rb->nv_value)
		return RB_OK; /* nothing was committed */
	if (want >= 0 && (uint64_t)want == rb->nv_value + 1)
		return increment(rb, err, errlen);
	rb->pending = true;
	snprintf(err, errlen,
		 "the store counter needs NV value %" PRId64 " but the host TPM NV counter 0x%08x "
		 "is at %" PRIu64 "; store writes are refused",
		 want, rb->nv_index, rb->nv_value);
	return RB_ERR_AHEAD;
}
