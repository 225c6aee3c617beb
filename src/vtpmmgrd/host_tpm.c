/*
 * host_tpm.c — the host TPM through tpm2-tss ESAPI (see host_tpm.h).
 *
 * Shape (Linux drivers/char/tpm): one static function per TPM command, named after it,
 * each returning 0 or a HOST_TPM_ERR_* with a message naming the command; the public
 * functions string them together and release every TPM resource through one exit path.
 * TPM structures are built as tpm2-tss types and (un)marshalled only with libtss2-mu.
 *
 * The ESYS context does not talk to the loaded TCTI directly but to a thin wrapper TCTI
 * (struct host_tpm's first member) that counts every transmitted command and forwards
 * everything to the real one.
 */
#include "vtpmmgrd/host_tpm.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "common/cursor.h"
#include "common/log.h"
#include "vtpmmgrd/host_policy.h"

#define TCTI_WRAP_MAGIC 0x7674706d68746370ull /* "vtpmhtcp" */

/* TCG storage primary (SRK) attributes, as swtpm_setup's SPK: fixedTPM | fixedParent |
 * sensitiveDataOrigin | userWithAuth | noDA | restricted | decrypt. */
#define SRK_ATTRS                                                                                  \
	(TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |        \
	 TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED |                    \
	 TPMA_OBJECT_DECRYPT)
/* Sealed data object: fixed to this TPM and parent; no userWithAuth, so the empty auth
 * value opens nothing and only the PolicyPCR policy authorises TPM2_Unseal. */
#define SEAL_ATTRS (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT)
/* Attestation key: fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth |
 * restricted | sign (0x00050072). */
#define AK_ATTRS                                                                                   \
	(TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |        \
	 TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT)
#define COUNTER_ATTRS                                                                              \
	((TPM2_NT_COUNTER << TPMA_NV_TPM2_NT_SHIFT) | TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD |     \
	 TPMA_NV_NO_DA)

#define SHA256_LEN	  32
#define PCR_READ_TRIES	  3
#define BLOB_HEADER_LEN	  12 /* magic, version, bank, mask */
#define COUNTER_DATA_SIZE 8

/* Commands are counted by code: TPM2_CC_FIRST (0x11f) .. TPM2_CC_LAST and a few more. */
#define CC_BASE	 0x100u
#define CC_SLOTS 0xa0u

struct host_tpm {
	TSS2_TCTI_CONTEXT_COMMON_V2 wrap; /* first: this is the TCTI ESYS sees */
	TSS2_TCTI_CONTEXT *inner;	  /* the TCTI loaded by tctildr */
	ESYS_CONTEXT *esys;
	/* read by other threads (status) while the TPM thread sends */
	_Atomic uint64_t commands;
	_Atomic uint64_t by_cc[CC_SLOTS + 1]; /* [CC_SLOTS]: codes outside the range */
	/* the counter's ESYS handle, kept between increments */
	uint32_t nv_cached;
	ESYS_TR nv_tr;
};

/* A parsed sealed blob. */
struct sealed {
	uint32_t mask;
	uint8_t values[HOST_TPM_PCRS][SHA256_LEN];
	TPM2B_PUBLIC pub;
	TPM2B_PRIVATE priv;
};

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt,
							  ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* "TPM2_Unseal: 0x99d (tpm:session(1):a policy check failed)" */
static int tss_err(char *err, size_t errlen, const char *op, TSS2_RC rc)
{
	set_err(err, errlen, "%s: 0x%x (%s)", op, (unsigned)rc, Tss2_RC_Decode(rc));
	return HOST_TPM_ERR_TPM;
}

/* A TPM response code without the handle/session/parameter number of format-1 codes. */
static TSS2_RC rc_base(TSS2_RC rc)
{
	if ((rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER)
		return rc;
	if (rc & TPM2_RC_FMT1)
		return rc & (TPM2_RC_FMT1 | 0x3f);
	return rc;
}

static bool mask_valid(uint32_t mask)
{
	return mask && !(mask & ~HOST_TPM_PCR_MASK);
}

/* ---- the counting TCTI wrapper ---- */

static struct host_tpm *wrap_host(TSS2_TCTI_CONTEXT *tcti)
{
	return (struct host_tpm *)(void *)tcti;
}

static TSS2_RC wrap_transmit(TSS2_TCTI_CONTEXT *tcti, size_t size, const uint8_t *command)
{
	struct host_tpm *h = wrap_host(tcti);
	uint32_t cc = size >= 10 ? be32_get(command + 6) : 0;

	h->commands++;
	h->by_cc[cc >= CC_BASE && cc < CC_BASE + CC_SLOTS ? cc - CC_BASE : CC_SLOTS]++;
	return Tss2_Tcti_Transmit(h->inner, size, command);
}

static TSS2_RC wrap_receive(TSS2_TCTI_CONTEXT *tcti, size_t *size, uint8_t *response,
			    int32_t timeout)
{
	return Tss2_Tcti_Receive(wrap_host(tcti)->inner, size, response, timeout);
}

static void wrap_finalize(TSS2_TCTI_CONTEXT *tcti)
{
	(void)tcti; /* the inner TCTI is finalized by host_tpm_close */
}

static TSS2_RC wrap_cancel(TSS2_TCTI_CONTEXT *tcti)
{
	return Tss2_Tcti_Cancel(wrap_host(tcti)->inner);
}

static TSS2_RC wrap_get_poll_handles(TSS2_TCTI_CONTEXT *tcti, TSS2_TCTI_POLL_HANDLE *handles,
				     size_t *num_handles)
{
	return Tss2_Tcti_GetPollHandles(wrap_host(tcti)->inner, handles, num_handles);
}

static TSS2_RC wrap_set_locality(TSS2_TCTI_CONTEXT *tcti, uint8_t locality)
{
	return Tss2_Tcti_SetLocality(wrap_host(tcti)->inner, locality);
}

static TSS2_RC wrap_make_sticky(TSS2_TCTI_CONTEXT *tcti, TPM2_HANDLE *handle, uint8_t sticky)
{
	return Tss2_Tcti_MakeSticky(wrap_host(tcti)->inner, handle, sticky);
}

static void wrap_init(struct host_tpm *h)
{
	h->wrap.v1.magic = TCTI_WRAP_MAGIC;
	h->wrap.v1.version = 2;
	h->wrap.v1.transmit = wrap_transmit;
	h->wrap.v1.receive = wrap_receive;
	h->wrap.v1.finalize = wrap_finalize;
	h->wrap.v1.cancel = wrap_cancel;
	h->wrap.v1.getPollHandles = wrap_get_poll_handles;
	h->wrap.v1.setLocality = wrap_set_locality;
	h->wrap.makeSticky = wrap_make_sticky;
}

int host_tpm_open(struct host_tpm **out, const char *tcti, char *err, size_t errlen)
{
	struct host_tpm *h;
	TSS2_RC rc;

	*out = NULL;
	h = calloc(1, sizeof(*h));
	if (!h) {
		set_err(err, errlen, "host TPM: out of memory");
		return HOST_TPM_ERR_NOMEM;
	}
	/* Each failure is reported once, by our message; TSS2_LOG in the environment wins. */
	setenv("TSS2_LOG", "all+none", 0);
	rc = Tss2_TctiLdr_Initialize(tcti, &h->inner);
	if (rc != TSS2_RC_SUCCESS) {
		set_err(err, errlen, "Tss2_TctiLdr_Initialize(\"%s\"): 0x%x (%s)", tcti ? tcti : "",
			(unsigned)rc, Tss2_RC_Decode(rc));
		free(h);
		return HOST_TPM_ERR_TPM;
	}
	wrap_init(h);
	h->nv_tr = ESYS_TR_NONE;
	rc = Esys_Initialize(&h->esys, (TSS2_TCTI_CONTEXT *)(void *)&h->wrap, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		tss_err(err, errlen, "Esys_Initialize", rc);
		Tss2_TctiLdr_Finalize(&h->inner);
		free(h);
		return HOST_TPM_ERR_TPM;
	}
	*out = h;
	return 0;
}

void host_tpm_close(struct host_tpm *h)
{
	if (!h)
		return;
	if (h->nv_tr != ESYS_TR_NONE)
		Esys_TR_Close(h->esys, &h->nv_tr);
	Esys_Finalize(&h->esys);
	Tss2_TctiLdr_Finalize(&h->inner);
	free(h);
}

uint64_t host_tpm_commands(const struct host_tpm *h)
{
	return h->commands;
}

static const struct {
	uint32_t cc;
	const char *name;
} cc_names[] = {
    {TPM2_CC_NV_UndefineSpace, "NV_UndefineSpace"},
    {TPM2_CC_NV_DefineSpace, "NV_DefineSpace"},
    {TPM2_CC_CreatePrimary, "CreatePrimary"},
    {TPM2_CC_NV_Increment, "NV_Increment"},
    {TPM2_CC_NV_Write, "NV_Write"},
    {TPM2_CC_Startup, "Startup"},
    {TPM2_CC_Shutdown, "Shutdown"},
    {TPM2_CC_NV_Read, "NV_Read"},
    {TPM2_CC_Create, "Create"},
    {TPM2_CC_Load, "Load"},
    {TPM2_CC_Quote, "Quote"},
    {TPM2_CC_Unseal, "Unseal"},
    {TPM2_CC_FlushContext, "FlushContext"},
    {TPM2_CC_NV_ReadPublic, "NV_ReadPublic"},
    {TPM2_CC_ReadPublic, "ReadPublic"},
    {TPM2_CC_StartAuthSession, "StartAuthSession"},
    {TPM2_CC_GetCapability, "GetCapability"},
    {TPM2_CC_GetRandom, "GetRandom"},
    {TPM2_CC_PCR_Read, "PCR_Read"},
    {TPM2_CC_PolicyPCR, "PolicyPCR"},
    {TPM2_CC_ReadClock, "ReadClock"},
    {TPM2_CC_PCR_Extend, "PCR_Extend"},
    {TPM2_CC_PolicyGetDigest, "PolicyGetDigest"},
    {TPM2_CC_PolicyAuthorize, "PolicyAuthorize"},
};

void host_tpm_command_counts(const struct host_tpm *h,
			     void (*cb)(const char *name, uint64_t count, void *arg), void *arg)
{
	char code[16];
	uint32_t i;
	size_t k;

	for (i = 0; i <= CC_SLOTS; i++) {
		uint64_t n = h->by_cc[i];
		const char *name = NULL;

		if (!n)
			continue;
		for (k = 0; k < sizeof(cc_names) / sizeof(cc_names[0]) && !name; k++)
			if (cc_names[k].cc == CC_BASE + i)
				name = cc_names[k].name;
		if (!name) {
			if (i == CC_SLOTS)
				snprintf(code, sizeof(code), "other");
			else
				snprintf(code, sizeof(code), "0x%x", CC_BASE + i);
			name = code;
		}
		cb(name, n, arg);
	}
}

/* The TPM will do it later: a warning that asks for the command again. */
static bool rc_busy(TSS2_RC rc)
{
	switch (rc_base(rc)) {
	case TPM2_RC_NV_RATE:
	case TPM2_RC_RETRY:
	case TPM2_RC_YIELDED:
	case TPM2_RC_TESTING:
	case TPM2_RC_NV_UNAVAILABLE:
		return true;
	default:
		return false;
	}
}

/* ---- one function per TPM command ---- */

/* TPM2_FlushContext of a transient object or session; a failure is logged (the operation
 * that used the handle has its own result) and the ESYS_TR released anyway. */
static void context_flush(struct host_tpm *h, ESYS_TR *handle)
{
	TSS2_RC rc;

	if (*handle == ESYS_TR_NONE)
		return;
	rc = Esys_FlushContext(h->esys, *handle);
	if (rc != TSS2_RC_SUCCESS) {
		log_warnx("TPM2_FlushContext: 0x%x (%s)", (unsigned)rc, Tss2_RC_Decode(rc));
		Esys_TR_Close(h->esys, handle);
	}
	*handle = ESYS_TR_NONE;
}

/* A session used once with continueSession clear: the TPM ended it when the command
 * succeeded, but ESYS 3.2.1 keeps its ESYS_TR (close it); after a failure the session is
 * still loaded (flush it). */
static void session_end(struct host_tpm *h, ESYS_TR *session, bool command_succeeded)
{
	if (*session == ESYS_TR_NONE)
		return;
	if (command_succeeded) {
		Esys_TR_Close(h->esys, session);
		*session = ESYS_TR_NONE;
		return;
	}
	context_flush(h, session);
}

static void pcr_selection(uint32_t mask, TPML_PCR_SELECTION *sel)
{
	unsigned i;

	memset(sel, 0, sizeof(*sel));
	sel->count = 1;
	sel->pcrSelections[0].hash = TPM2_ALG_SHA256;
	sel->pcrSelections[0].sizeofSelect = 3;
	for (i = 0; i < HOST_TPM_PCRS; i++)
		if (mask & (1u << i))
			sel->pcrSelections[0].pcrSelect[i / 8] |= (uint8_t)(1u << (i % 8));
}

/* One TPM2_PCR_Read: copies whatever SHA-256 PCRs of *left the TPM returned and clears
 * them from *left. *counter: the TPM's pcrUpdateCounter. */
static int pcr_read(struct host_tpm *h, uint32_t *left, uint8_t values[24][32], uint32_t *counter,
		    char *err, size_t errlen)
{
	TPML_PCR_SELECTION in;
	TPML_PCR_SELECTION *out = NULL;
	TPML_DIGEST *digests = NULL;
	uint32_t got = 0;
	UINT32 k = 0, s;
	unsigned i;
	TSS2_RC rc;
	int ret = 0;

	pcr_selection(*left, &in);
	rc = Esys_PCR_Read(h->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &in, counter, &out,
			   &digests);
	if (rc != TSS2_RC_SUCCESS)
		return tss_err(err, errlen, "TPM2_PCR_Read", rc);
	for (s = 0; s < out->count && !ret; s++) {
		const TPMS_PCR_SELECTION *ps = &out->pcrSelections[s];

		for (i = 0; i < 8u * ps->sizeofSelect && !ret; i++) {
			const TPM2B_DIGEST *d;

			if (!(ps->pcrSelect[i / 8] & (1u << (i % 8))))
				continue;
			if (k >= digests->count) {
				set_err(err, errlen,
					"TPM2_PCR_Read: fewer digests than selected PCRs");
				ret = HOST_TPM_ERR_TPM;
				break;
			}
			d = &digests->digests[k++];
			if (ps->hash != TPM2_ALG_SHA256 || i >= HOST_TPM_PCRS ||
			    !(*left & (1u << i)))
				continue;
			if (d->size != SHA256_LEN) {
				set_err(err, errlen, "TPM2_PCR_Read: PCR %u digest has %u bytes", i,
					(unsigned)d->size);
				ret = HOST_TPM_ERR_TPM;
				break;
			}
			memcpy(values[i], d->buffer, SHA256_LEN);
			got |= 1u << i;
		}
	}
	Esys_Free(out);
	Esys_Free(digests);
	if (ret)
		return ret;
	if (!got) {
		set_err(err, errlen,
			"TPM2_PCR_Read: SHA-256 PCRs 0x%06x not returned (bank not allocated?)",
			*left);
		return HOST_TPM_ERR_TPM;
	}
	*left &= ~got;
	return 0;
}

int host_tpm_pcr_read(struct host_tpm *h, uint32_t mask, uint8_t values[24][32], char *err,
		      size_t errlen)
{
	uint32_t left, counter, first;
	int tries, ret;
	bool changed;

	if (!mask_valid(mask)) {
		set_err(err, errlen, "TPM2_PCR_Read: bad PCR mask 0x%x (want 1..0x%06x)", mask,
			HOST_TPM_PCR_MASK);
		return HOST_TPM_ERR_ARG;
	}
	/* At most 8 digests per TPM2_PCR_Read: a wider mask takes several calls, and if a
	 * PCR was extended in between (pcrUpdateCounter moved) the whole read starts over. */
	for (tries = 0; tries < PCR_READ_TRIES; tries++) {
		left = mask;
		changed = false;
		ret = pcr_read(h, &left, values, &first, err, errlen);
		while (!ret && left) {
			ret = pcr_read(h, &left, values, &counter, err, errlen);
			if (!ret && counter != first) {
				changed = true;
				break;
			}
		}
		if (ret || !changed)
			return ret;
	}
	set_err(err, errlen, "TPM2_PCR_Read: PCRs kept changing while being read");
	return HOST_TPM_ERR_TPM;
}

int host_tpm_pcr_extend(struct host_tpm *h, unsigned pcr, const uint8_t digest[32], char *err,
			size_t errlen)
{
	TPML_DIGEST_VALUES digests;
	TSS2_RC rc;

	if (pcr >= HOST_TPM_PCRS) {
		set_err(err, errlen, "TPM2_PCR_Extend: bad PCR %u (want 0..23)", pcr);
		return HOST_TPM_ERR_ARG;
	}
	memset(&digests, 0, sizeof(digests));
	digests.count = 1;
	digests.digests[0].hashAlg = TPM2_ALG_SHA256;
	memcpy(digests.digests[0].digest.sha256, digest, SHA256_LEN);
	rc = Esys_PCR_Extend(h->esys, ESYS_TR_PCR0 + pcr, ESYS_TR_PASSWORD, ESYS_TR_NONE,
			     ESYS_TR_NONE, &digests);
	if (rc != TSS2_RC_SUCCESS)
		return tss_err(err, errlen, "TPM2_PCR_Extend", rc);
	return 0;
}

/* TPM2_CreatePrimary of the ECC P-256 storage key (TCG template, unique = zero x and y). */
static int srk_create(struct host_tpm *h, ESYS_TR *srk, char *err, size_t errlen)
{
	const TPM2B_SENSITIVE_CREATE sensitive = {0};
	const TPM2B_DATA outside = {0};
	const TPML_PCR_SELECTION creation_pcr = {0};
	TPM2B_PUBLIC tmpl;
	TSS2_RC rc;

	memset(&tmpl, 0, sizeof(tmpl));
	tmpl.publicArea.type = TPM2_ALG_ECC;
	tmpl.publicArea.nameAlg = TPM2_ALG_SHA256;
	tmpl.publicArea.objectAttributes = SRK_ATTRS;
	tmpl.publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
	tmpl.publicArea.parameters.eccDetail.symmetric.keyBits.aes = 128;
	tmpl.publicArea.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
	tmpl.publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
	tmpl.publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
	tmpl.publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
	tmpl.publicArea.unique.ecc.x.size = 32;
	tmpl.publicArea.unique.ecc.y.size = 32;
	rc = Esys_CreatePrimary(h->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE,
				ESYS_TR_NONE, &sensitive, &tmpl, &outside, &creation_pcr, srk, NULL,
				NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS)
		return tss_err(err, errlen, "TPM2_CreatePrimary (storage key)", rc);
	return 0;
}

/* TPM2_CreatePrimary of the attestation key in the endorsement hierarchy. */
static int ak_create(struct host_tpm *h, ESYS_TR *ak, TPM2B_PUBLIC **pub, char *err, size_t errlen)
{
	const TPM2B_SENSITIVE_CREATE sensitive = {0};
	const TPM2B_DATA outside = {0};
	const TPML_PCR_SELECTION creation_pcr = {0};
	TPM2B_PUBLIC tmpl;
	TSS2_RC rc;

	memset(&tmpl, 0, sizeof(tmpl));
	tmpl.publicArea.type = TPM2_ALG_ECC;
	tmpl.publicArea.nameAlg = TPM2_ALG_SHA256;
	tmpl.publicArea.objectAttributes = AK_ATTRS;
	tmpl.publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
	tmpl.publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
	tmpl.publicArea.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
	tmpl.publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
	tmpl.publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
	tmpl.publicArea.unique.ecc.x.size = 32;
	tmpl.publicArea.unique.ecc.y.size = 32;
	rc = Esys_CreatePrimary(h->esys, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE,
				ESYS_TR_NONE, &sensitive, &tmpl, &outside, &creation_pcr, ak, pub,
				NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS)
		return tss_err(err, errlen, "TPM2_CreatePrimary (attestation key)", rc);
	return 0;
}

/* TPM2_StartAuthSession salted with salt_key (its public part encrypts the salt, so the
 * session key never crosses the bus), AES-128-CFB parameter encryption, SHA-256.
 * attrs: what the session does in the one command it authorises; continueSession is
 * clear, so the TPM ends the session after that command succeeds. */
static int session_start(struct host_tpm *h, ESYS_TR salt_key, TPM2_SE type, TPMA_SESSION attrs,
			 ESYS_TR *session, char *err, size_t errlen)
{
	const TPMT_SYM_DEF sym = {
	    .algorithm = TPM2_ALG_AES,
	    .keyBits.aes = 128,
	    .mode.aes = TPM2_ALG_CFB,
	};
	TSS2_RC rc;

	rc = Esys_StartAuthSession(h->esys, salt_key, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
				   ESYS_TR_NONE, NULL, type, &sym, TPM2_ALG_SHA256, session);
	if (rc != TSS2_RC_SUCCESS)
		return tss_err(err, errlen, "TPM2_StartAuthSession", rc);
	rc = Esys_TRSess_SetAttributes(h->esys, *session, attrs, 0xff);
	if (rc != TSS2_RC_SUCCESS) {
		context_flush(h, session);
		return tss_err(err, errlen, "TPM2_StartAuthSession (session attributes)", rc);
	}
	return 0;
}

/* TPM2_Create of the sealed data object under the SRK, authorised (and its sensitive part
 * encrypted) by session. */
static int sealed_object_create(struct host_tpm *h, ESYS_TR srk, ESYS_TR session,
				const uint8_t *secret, size_t len, const uint8_t policy[32],
				TPM2B_PUBLIC **pub, TPM2B_PRIVATE **priv, char *err, size_t errlen)
{
	const TPM2B_DATA outside = {0};
	const TPML_PCR_SELECTION creation_pcr = {0};
	TPM2B_SENSITIVE_CREATE sensitive;
	TPM2B_PUBLIC tmpl;
	TSS2_RC rc;

	memset(&tmpl, 0, sizeof(tmpl));
	tmpl.publicArea.type = TPM2_ALG_KEYEDHASH;
	tmpl.publicArea.nameAlg = TPM2_ALG_SHA256;
	tmpl.publicArea.objectAttributes = SEAL_ATTRS;
	tmpl.publicArea.authPolicy.size = SHA256_LEN;
	memcpy(tmpl.publicArea.authPolicy.buffer, policy, SHA256_LEN);
	tmpl.publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;

	memset(&sensitive, 0, sizeof(sensitive));
	sensitive.sensitive.data.size = (UINT16)len;
	memcpy(sensitive.sensitive.data.buffer, secret, len);
	rc = Esys_Create(h->esys, srk, session, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &tmpl,
			 &outside, &creation_pcr, priv, pub, NULL, NULL, NULL);
	OPENSSL_cleanse(&sensitive, sizeof(sensitive));
	if (rc != TSS2_RC_SUCCESS)
		return tss_err(err, errlen, "TPM2_Create (sealed object)", rc);
	return 0;
}

/* TPM2_Load of the sealed object under the SRK. */
static int object_load(struct host_tpm *h, ESYS_TR srk, const struct sealed *s, ESYS_TR *obj,
		       char *err, size_t errlen)
{
	TSS2_RC rc;

	rc = Esys_Load(h->esys, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &s->priv,
		       &s->pub, obj);
	if (rc == TSS2_RC_SUCCESS)
		return 0;
	tss_err(err, errlen, "TPM2_Load (sealed object)", rc);
	if (rc_base(rc) == TPM2_RC_INTEGRITY) {
		size_t n = strlen(err);

		if (n < errlen)
			set_err(err + n, errlen - n,
				": not sealed under this host TPM's storage key, or altered");
	}
	return HOST_TPM_ERR_TPM;
}

/* TPM2_PolicyPCR with an empty pcrDigest: the TPM binds the session to the current values of
 * the PCRs in mask. */
static int policy_pcr(struct host_tpm *h, ESYS_TR session, uint32_t mask, char *err, size_t errlen)
{
	const TPM2B_DIGEST empty = {0};
	TPML_PCR_SELECTION sel;
	TSS2_RC rc;

	pcr_selection(mask, &sel);
	rc = Esys_PolicyPCR(h->esys, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &empty,
			    &sel);
	if (rc != TSS2_RC_SUCCESS)
		return tss_err(err, errlen, "TPM2_PolicyPCR", rc);
	return 0;
}

/* TPM2_Unseal through the policy session; the response is encrypted with the session key. */
static int object_unseal(struct host_tpm *h, ESYS_TR obj, ESYS_TR session, uint8_t *secret,
			 size_t cap, size_t *len, char *err, size_t errlen)
{
	TPM2B_SENSITIVE_DATA *out = NULL;
	TSS2_RC rc;
	int ret = 0;

	rc = Esys_Unseal(h->esys, obj, session, ESYS_TR_NONE, ESYS_TR_NONE, &out);
	if (rc != TSS2_RC_SUCCESS)
		return tss_err(err, errlen, "TPM2_Unseal", rc);
	if (out->size > cap) {
		set_err(err, errlen, "TPM2_Unseal: secret of %u bytes does not fit in %zu",
			(unsigned)out->size, cap);
		ret = HOST_TPM_ERR_ARG;
	} else {
		memcpy(secret, out->buffer, out->size);
		*len = out->size;
	}
	OPENSSL_cleanse(out, sizeof(*out));
	Esys_Free(out);
	return ret;
}

/* TPM2_NV_ReadPublic (through Esys_TR_FromTPMPublic): an ESYS_TR for an NV index. */
static int nv_open(struct host_tpm *h, uint32_t nv_index, ESYS_TR *nv, char *err, size_t errlen)
{
	TSS2_RC rc;

	if (nv_index < HOST_TPM_NV_FIRST || nv_index > HOST_TPM_NV_LAST) {
		set_err(err, errlen, "TPM2_NV_ReadPublic: NV index 0x%08x outside 0x%08x..0x%08x",
			nv_index, HOST_TPM_NV_FIRST, HOST_TPM_NV_LAST);
		return HOST_TPM_ERR_ARG;
	}
	rc = Esys_TR_FromTPMPublic(h->esys, nv_index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, nv);
	if (rc == TSS2_RC_SUCCESS)
		return 0;
	*nv = ESYS_TR_NONE;
	if (rc_base(rc) == TPM2_RC_HANDLE) {
		set_err(err, errlen, "TPM2_NV_ReadPublic: NV index 0x%08x is not defined",
			nv_index);
		return HOST_TPM_ERR_NOENT;
	}
	return tss_err(err, errlen, "TPM2_NV_ReadPublic", rc);
}

/* TPM2_NV_DefineSpace of a counter under owner auth, empty index auth. */
static int nv_define_counter(struct host_tpm *h, uint32_t nv_index, unsigned flags, char *err,
			     size_t errlen)
{
	const TPM2B_AUTH auth = {0};
	TPM2B_NV_PUBLIC pub;
	ESYS_TR nv = ESYS_TR_NONE;
	TSS2_RC rc;

	memset(&pub, 0, sizeof(pub));
	pub.nvPublic.nvIndex = nv_index;
	pub.nvPublic.nameAlg = TPM2_ALG_SHA256;
	pub.nvPublic.attributes =
	    COUNTER_ATTRS | (flags & HOST_TPM_COUNTER_ORDERLY ? TPMA_NV_ORDERLY : 0);
	pub.nvPublic.dataSize = COUNTER_DATA_SIZE;
	rc = Esys_NV_DefineSpace(h->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE,
				 ESYS_TR_NONE, &auth, &pub, &nv);
	if (rc == TPM2_RC_NV_DEFINED) {
		set_err(err, errlen, "TPM2_NV_DefineSpace: NV index 0x%08x is already defined",
			nv_index);
		return HOST_TPM_ERR_EXISTS;
	}
	if (rc != TSS2_RC_SUCCESS)
		return tss_err(err, errlen, "TPM2_NV_DefineSpace", rc);
	Esys_TR_Close(h->esys, &nv);
	return 0;
}

/* TPM2_NV_UndefineSpace under owner auth; ESYS releases nv on success. */
static int nv_undefine(struct host_tpm *h, ESYS_TR *nv, char *err, size_t errlen)
{
	TSS2_RC rc;

	rc = Esys_NV_UndefineSpace(h->esys, ESYS_TR_RH_OWNER, *nv, ESYS_TR_PASSWORD, ESYS_TR_NONE,
				   ESYS_TR_NONE);
	if (rc != TSS2_RC_SUCCESS)
		return tss_err(err, errlen, "TPM2_NV_UndefineSpace", rc);
	*nv = ESYS_TR_NONE;
	return 0;
}

/* TPM2_NV_Increment under owner auth. */
static int nv_increment(struct host_tpm *h, ESYS_TR nv, char *err, size_t errlen)
{
	TSS2_RC rc;

	rc = Esys_NV_Increment(h->esys, ESYS_TR_RH_OWNER, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE,
			       ESYS_TR_NONE);
	if (rc != TSS2_RC_SUCCESS) {
		tss_err(err, errlen, "TPM2_NV_Increment", rc);
		return rc_busy(rc) ? HOST_TPM_ERR_BUSY : HOST_TPM_ERR_TPM;
	}
	return 0;
}

/* TPM2_NV_Read of the 8-byte counter value. 1 if the counter was never incremented. */
static int nv_read_counter(struct host_tpm *h, ESYS_TR nv, uint64_t *value, char *err,
			   size_t errlen)
{
	TPM2B_MAX_NV_BUFFER *data = NULL;
	TSS2_RC rc;
	int ret = 0;

	rc = Esys_NV_Read(h->esys, ESYS_TR_RH_OWNER, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE,
			  ESYS_TR_NONE, COUNTER_DATA_SIZE, 0, &data);
	if (rc == TPM2_RC_NV_UNINITIALIZED)
		return 1;
	if (rc != TSS2_RC_SUCCESS) {
		tss_err(err, errlen, "TPM2_NV_Read", rc);
		return rc_busy(rc) ? HOST_TPM_ERR_BUSY : HOST_TPM_ERR_TPM;
	}
	if (data->size != COUNTER_DATA_SIZE) {
		set_err(err, errlen, "TPM2_NV_Read: %u bytes, want %u", (unsigned)data->size,
			COUNTER_DATA_SIZE);
		ret = HOST_TPM_ERR_TPM;
	} else {
		*value = be64_get(data->buffer);
	}
	Esys_Free(data);
	return ret;
}

/* ---- policy and blob ---- */

/* PolicyPCR digest from a zero policy, offline:
 * H(0^32 || TPM2_CC_PolicyPCR || TPML_PCR_SELECTION || H(selected values, ascending)). */
static int policy_pcr_digest(uint32_t mask, const uint8_t values[24][32], uint8_t out[32],
			     char *err, size_t errlen)
{
	uint8_t buf[SHA256_LEN + 4 + sizeof(TPML_PCR_SELECTION) + SHA256_LEN];
	TPML_PCR_SELECTION sel;
	EVP_MD_CTX *md;
	size_t off = SHA256_LEN;
	unsigned i;
	int ok;

	memset(buf, 0, SHA256_LEN);
	if (Tss2_MU_UINT32_Marshal(TPM2_CC_PolicyPCR, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS)
		goto marshal;
	pcr_selection(mask, &sel);
	if (Tss2_MU_TPML_PCR_SELECTION_Marshal(&sel, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS)
		goto marshal;
	md = EVP_MD_CTX_new();
	ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	for (i = 0; ok && i < HOST_TPM_PCRS; i++)
		if (mask & (1u << i))
			ok = EVP_DigestUpdate(md, values[i], SHA256_LEN);
	ok = ok && EVP_DigestFinal_ex(md, buf + off, NULL);
	EVP_MD_CTX_free(md);
	ok = ok && EVP_Digest(buf, off + SHA256_LEN, out, NULL, EVP_sha256(), NULL);
	if (!ok) {
		set_err(err, errlen, "PolicyPCR digest: SHA-256 failed");
		return HOST_TPM_ERR_NOMEM;
	}
	return 0;
marshal:
	set_err(err, errlen, "PolicyPCR digest: marshalling failed");
	return HOST_TPM_ERR_TPM;
}

static int blob_build(uint32_t mask, const uint8_t values[24][32], const TPM2B_PUBLIC *pub,
		      const TPM2B_PRIVATE *priv, uint8_t **blob, size_t *blob_len, char *err,
		      size_t errlen)
{
	uint8_t pub_buf[sizeof(TPM2B_PUBLIC)], priv_buf[sizeof(TPM2B_PRIVATE)];
	size_t pub_len = 0, priv_len = 0, total;
	struct wcursor w;
	uint8_t *out;
	unsigned i, n = 0;

	if (Tss2_MU_TPM2B_PUBLIC_Marshal(pub, pub_buf, sizeof(pub_buf), &pub_len) ||
	    Tss2_MU_TPM2B_PRIVATE_Marshal(priv, priv_buf, sizeof(priv_buf), &priv_len)) {
		set_err(err, errlen, "TPM2_Create: cannot marshal the sealed object");
		return HOST_TPM_ERR_TPM;
	}
	for (i = 0; i < HOST_TPM_PCRS; i++)
		n += !!(mask & (1u << i));
	total = BLOB_HEADER_LEN + n * SHA256_LEN + 2 + pub_len + 2 + priv_len;
	out = malloc(total);
	if (!out) {
		set_err(err, errlen, "seal: out of memory");
		return HOST_TPM_ERR_NOMEM;
	}
	wc_init(&w, out, total);
	wc_u32(&w, HOST_TPM_BLOB_MAGIC);
	wc_u16(&w, HOST_TPM_BLOB_VERSION);
	wc_u16(&w, TPM2_ALG_SHA256);
	wc_u32(&w, mask);
	for (i = 0; i < HOST_TPM_PCRS; i++)
		if (mask & (1u << i))
			wc_bytes(&w, values[i], SHA256_LEN);
	wc_u16(&w, (uint16_t)pub_len);
	wc_bytes(&w, pub_buf, pub_len);
	wc_u16(&w, (uint16_t)priv_len);
	wc_bytes(&w, priv_buf, priv_len);
	if (w.failed || w.pos != total) {
		free(out);
		set_err(err, errlen, "seal: blob size mismatch");
		return HOST_TPM_ERR_FORMAT;
	}
	*blob = out;
	*blob_len = total;
	return 0;
}

__attribute__((format(printf, 3, 4))) static int blob_err(char *err, size_t errlen, const char *fmt,
							  ...)
{
	char msg[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	set_err(err, errlen, "unseal: bad sealed blob: %s", msg);
	return HOST_TPM_ERR_FORMAT;
}

/* Parse an untrusted blob and check that it is self-consistent: a sealed data object of our
 * template whose policy is PolicyPCR over the recorded values. */
static int blob_parse(const uint8_t *blob, size_t blob_len, struct sealed *s, char *err,
		      size_t errlen)
{
	struct rcursor c;
	const uint8_t *p;
	uint32_t magic;
	uint16_t version, bank, n;
	uint8_t policy[SHA256_LEN];
	size_t off;
	unsigned i;
	TSS2_RC rc;
	int ret;

	memset(s, 0, sizeof(*s));
	rc_init(&c, blob, blob_len);
	rc_u32(&c, &magic);
	rc_u16(&c, &version);
	rc_u16(&c, &bank);
	rc_u32(&c, &s->mask);
	if (c.failed)
		return blob_err(err, errlen, "truncated header (%zu bytes)", blob_len);
	if (magic != HOST_TPM_BLOB_MAGIC)
		return blob_err(err, errlen, "bad magic 0x%08x", magic);
	if (version != HOST_TPM_BLOB_VERSION)
		return blob_err(err, errlen, "unsupported version %u", version);
	if (bank != TPM2_ALG_SHA256)
		return blob_err(err, errlen, "unsupported PCR bank 0x%04x", bank);
	if (!mask_valid(s->mask))
		return blob_err(err, errlen, "bad PCR mask 0x%08x", s->mask);
	for (i = 0; i < HOST_TPM_PCRS; i++)
		if (s->mask & (1u << i))
			rc_bytes(&c, s->values[i], SHA256_LEN);
	if (c.failed)
		return blob_err(err, errlen, "truncated in the PCR values");

	if (rc_u16(&c, &n) || rc_ptr(&c, &p, n))
		return blob_err(err, errlen, "truncated in TPM2B_PUBLIC");
	off = 0;
	rc = Tss2_MU_TPM2B_PUBLIC_Unmarshal(p, n, &off, &s->pub);
	if (rc != TSS2_RC_SUCCESS)
		return blob_err(err, errlen, "TPM2B_PUBLIC: 0x%x (%s)", (unsigned)rc,
				Tss2_RC_Decode(rc));
	if (off != n || (size_t)s->pub.size + 2 != n)
		return blob_err(err, errlen, "TPM2B_PUBLIC: %zu of %u bytes used", off, n);

	if (rc_u16(&c, &n) || rc_ptr(&c, &p, n))
		return blob_err(err, errlen, "truncated in TPM2B_PRIVATE");
	off = 0;
	rc = Tss2_MU_TPM2B_PRIVATE_Unmarshal(p, n, &off, &s->priv);
	if (rc != TSS2_RC_SUCCESS)
		return blob_err(err, errlen, "TPM2B_PRIVATE: 0x%x (%s)", (unsigned)rc,
				Tss2_RC_Decode(rc));
	if (off != n)
		return blob_err(err, errlen, "TPM2B_PRIVATE: %zu of %u bytes used", off, n);
	if (rc_expect_end(&c))
		return blob_err(err, errlen, "%zu trailing bytes", rc_remaining(&c));

	if (s->pub.publicArea.type != TPM2_ALG_KEYEDHASH ||
	    s->pub.publicArea.nameAlg != TPM2_ALG_SHA256 ||
	    s->pub.publicArea.objectAttributes != SEAL_ATTRS ||
	    s->pub.publicArea.parameters.keyedHashDetail.scheme.scheme != TPM2_ALG_NULL)
		return blob_err(err, errlen, "not a sealed data object of the expected template");
	ret = policy_pcr_digest(s->mask, s->values, policy, err, errlen);
	if (ret)
		return ret;
	if (s->pub.publicArea.authPolicy.size != SHA256_LEN ||
	    CRYPTO_memcmp(s->pub.publicArea.authPolicy.buffer, policy, SHA256_LEN))
		return blob_err(err, errlen,
				"recorded PCR values do not match the object's policy");
	return 0;
}

/* Compare the host's current PCRs with the sealed values; HOST_TPM_ERR_PCR naming them. */
static int pcr_compare(struct host_tpm *h, const struct sealed *s, uint32_t *differ, char *err,
		       size_t errlen)
{
	uint8_t now[HOST_TPM_PCRS][SHA256_LEN];
	char list[HOST_TPM_PCRS * 4];
	size_t pos = 0;
	unsigned i, n = 0;
	int ret;

	ret = host_tpm_pcr_read(h, s->mask, now, err, errlen);
	if (ret)
		return ret;
	*differ = 0;
	for (i = 0; i < HOST_TPM_PCRS; i++) {
		if (!(s->mask & (1u << i)) || !memcmp(now[i], s->values[i], SHA256_LEN))
			continue;
		*differ |= 1u << i;
		pos += (size_t)snprintf(list + pos, sizeof(list) - pos, "%s%u", n ? ", " : "", i);
		n++;
	}
	if (!n)
		return 0;
	set_err(err, errlen, "host PCR%s %s differ%s from the sealed state", n > 1 ? "s" : "", list,
		n > 1 ? "" : "s");
	return HOST_TPM_ERR_PCR;
}

/* Seal under a PolicyPCR over values (the mask's entries), computed offline: TPM2_Create
 * does not need the PCRs to hold those values now. */
static int seal_to(struct host_tpm *h, const uint8_t *secret, size_t len, uint32_t mask,
		   const uint8_t values[24][32], uint8_t **blob, size_t *blob_len, char *err,
		   size_t errlen)
{
	uint8_t policy[SHA256_LEN];
	ESYS_TR srk = ESYS_TR_NONE, session = ESYS_TR_NONE;
	TPM2B_PUBLIC *pub = NULL;
	TPM2B_PRIVATE *priv = NULL;
	int ret;

	ret = policy_pcr_digest(mask, values, policy, err, errlen);
	if (!ret)
		ret = srk_create(h, &srk, err, errlen);
	if (!ret)
		ret = session_start(h, srk, TPM2_SE_HMAC, TPMA_SESSION_DECRYPT, &session, err,
				    errlen);
	if (!ret) {
		ret = sealed_object_create(h, srk, session, secret, len, policy, &pub, &priv, err,
					   errlen);
		session_end(h, &session, !ret);
	}
	if (!ret)
		ret = blob_build(mask, values, pub, priv, blob, blob_len, err, errlen);
	context_flush(h, &session);
	context_flush(h, &srk);
	Esys_Free(pub);
	Esys_Free(priv);
	return ret;
}

static int seal_args_ok(const uint8_t *secret, size_t len, uint32_t mask, char *err, size_t errlen)
{
	if (!secret || len < 1 || len > HOST_TPM_SECRET_MAX) {
		set_err(err, errlen, "seal: secret of %zu bytes (want 1..%d)", len,
			HOST_TPM_SECRET_MAX);
		return HOST_TPM_ERR_ARG;
	}
	if (!mask_valid(mask)) {
		set_err(err, errlen, "seal: bad PCR mask 0x%x (want 1..0x%06x)", mask,
			HOST_TPM_PCR_MASK);
		return HOST_TPM_ERR_ARG;
	}
	return 0;
}

int host_tpm_seal(struct host_tpm *h, const uint8_t *secret, size_t len, uint32_t mask,
		  uint8_t **blob, size_t *blob_len, char *err, size_t errlen)
{
	uint8_t values[HOST_TPM_PCRS][SHA256_LEN];
	int ret;

	*blob = NULL;
	*blob_len = 0;
	ret = seal_args_ok(secret, len, mask, err, errlen);
	if (ret)
		return ret;
	memset(values, 0, sizeof(values));
	ret = host_tpm_pcr_read(h, mask, values, err, errlen);
	if (!ret)
		ret = seal_to(h, secret, len, mask, values, blob, blob_len, err, errlen);
	return ret;
}

int host_tpm_seal_values(struct host_tpm *h, const uint8_t *secret, size_t len, uint32_t mask,
			 const uint8_t values[24][32], uint8_t **blob, size_t *blob_len, char *err,
			 size_t errlen)
{
	uint8_t v[HOST_TPM_PCRS][SHA256_LEN];
	unsigned i;
	int ret;

	*blob = NULL;
	*blob_len = 0;
	ret = seal_args_ok(secret, len, mask, err, errlen);
	if (ret)
		return ret;
	/* entries outside the mask are neither read nor recorded */
	memset(v, 0, sizeof(v));
	for (i = 0; i < HOST_TPM_PCRS; i++)
		if (mask & (1u << i))
			memcpy(v[i], values[i], SHA256_LEN);
	return seal_to(h, secret, len, mask, v, blob, blob_len, err, errlen);
}

int host_tpm_blob_pcrs(const uint8_t *blob, size_t blob_len, uint32_t *mask, uint8_t values[24][32],
		       char *err, size_t errlen)
{
	struct sealed *s;
	int ret;

	*mask = 0;
	s = malloc(sizeof(*s));
	if (!s) {
		set_err(err, errlen, "sealed blob: out of memory");
		return HOST_TPM_ERR_NOMEM;
	}
	ret = blob_parse(blob, blob_len, s, err, errlen);
	if (!ret) {
		*mask = s->mask;
		memcpy(values, s->values, sizeof(s->values));
	}
	free(s);
	return ret;
}

int host_tpm_unseal(struct host_tpm *h, const uint8_t *blob, size_t blob_len, uint8_t *secret,
		    size_t cap, size_t *len, uint32_t *differ, char *err, size_t errlen)
{
	struct sealed *s;
	ESYS_TR srk = ESYS_TR_NONE, obj = ESYS_TR_NONE, session = ESYS_TR_NONE;
	int ret;

	*len = 0;
	*differ = 0;
	s = malloc(sizeof(*s));
	if (!s) {
		set_err(err, errlen, "unseal: out of memory");
		return HOST_TPM_ERR_NOMEM;
	}
	ret = blob_parse(blob, blob_len, s, err, errlen);
	if (!ret)
		ret = pcr_compare(h, s, differ, err, errlen);
	if (!ret)
		ret = srk_create(h, &srk, err, errlen);
	if (!ret)
		ret = object_load(h, srk, s, &obj, err, errlen);
	if (!ret)
		ret = session_start(h, srk, TPM2_SE_POLICY, TPMA_SESSION_ENCRYPT, &session, err,
				    errlen);
	if (!ret) {
		ret = policy_pcr(h, session, s->mask, err, errlen);
		if (!ret) {
			ret = object_unseal(h, obj, session, secret, cap, len, err, errlen);
			/* HOST_TPM_ERR_ARG: the TPM command itself succeeded */
			session_end(h, &session, ret == 0 || ret == HOST_TPM_ERR_ARG);
		}
		/* A PCR extended between our check and the policy: report it as such. */
		if (ret == HOST_TPM_ERR_TPM) {
			char err2[160];
			uint32_t d = 0;

			if (pcr_compare(h, s, &d, err2, sizeof(err2)) == HOST_TPM_ERR_PCR) {
				*differ = d;
				set_err(err, errlen, "%s", err2);
				ret = HOST_TPM_ERR_PCR;
			}
		}
	}
	context_flush(h, &session);
	context_flush(h, &obj);
	context_flush(h, &srk);
	free(s);
	return ret;
}

int host_tpm_counter_define(struct host_tpm *h, uint32_t nv_index, unsigned flags, char *err,
			    size_t errlen)
{
	if (nv_index < HOST_TPM_NV_FIRST || nv_index > HOST_TPM_NV_LAST) {
		set_err(err, errlen, "TPM2_NV_DefineSpace: NV index 0x%08x outside 0x%08x..0x%08x",
			nv_index, HOST_TPM_NV_FIRST, HOST_TPM_NV_LAST);
		return HOST_TPM_ERR_ARG;
	}
	return nv_define_counter(h, nv_index, flags, err, errlen);
}

/* The counter's handle, kept between calls (forgotten when the index is undefined). */
static int nv_cached(struct host_tpm *h, uint32_t nv_index, ESYS_TR *nv, char *err, size_t errlen)
{
	int ret;

	if (h->nv_tr != ESYS_TR_NONE && h->nv_cached == nv_index) {
		*nv = h->nv_tr;
		return 0;
	}
	if (h->nv_tr != ESYS_TR_NONE)
		Esys_TR_Close(h->esys, &h->nv_tr);
	ret = nv_open(h, nv_index, &h->nv_tr, err, errlen);
	if (ret)
		return ret;
	h->nv_cached = nv_index;
	*nv = h->nv_tr;
	return 0;
}

static void nv_forget(struct host_tpm *h)
{
	if (h->nv_tr != ESYS_TR_NONE)
		Esys_TR_Close(h->esys, &h->nv_tr);
	h->nv_tr = ESYS_TR_NONE;
}

int host_tpm_counter_undefine(struct host_tpm *h, uint32_t nv_index, char *err, size_t errlen)
{
	ESYS_TR nv = ESYS_TR_NONE;
	int ret;

	if (h->nv_cached == nv_index)
		nv_forget(h);
	ret = nv_open(h, nv_index, &nv, err, errlen);
	if (!ret)
		ret = nv_undefine(h, &nv, err, errlen);
	if (nv != ESYS_TR_NONE)
		Esys_TR_Close(h->esys, &nv);
	return ret;
}

int host_tpm_counter_increment(struct host_tpm *h, uint32_t nv_index, uint64_t *value, char *err,
			       size_t errlen)
{
	ESYS_TR nv = ESYS_TR_NONE;
	int ret;

	ret = nv_cached(h, nv_index, &nv, err, errlen);
	if (!ret)
		ret = nv_increment(h, nv, err, errlen);
	if (!ret && value) {
		ret = nv_read_counter(h, nv, value, err, errlen);
		if (ret == 1) { /* cannot be: it was just incremented */
			set_err(err, errlen,
				"TPM2_NV_Read: counter 0x%08x unwritten after "
				"TPM2_NV_Increment",
				nv_index);
			ret = HOST_TPM_ERR_TPM;
		}
	}
	if (ret && ret != HOST_TPM_ERR_BUSY)
		nv_forget(h); /* the index may be gone or replaced: look it up again next time */
	return ret;
}

int host_tpm_counter_read(struct host_tpm *h, uint32_t nv_index, uint64_t *value, char *err,
			  size_t errlen)
{
	ESYS_TR nv = ESYS_TR_NONE;
	int ret;

	ret = nv_cached(h, nv_index, &nv, err, errlen);
	if (!ret)
		ret = nv_read_counter(h, nv, value, err, errlen);
	if (ret == 1) {
		/* Never incremented: a counter has no value before its first increment. */
		ret = nv_increment(h, nv, err, errlen);
		if (!ret)
			ret = nv_read_counter(h, nv, value, err, errlen);
		if (ret == 1) {
			set_err(err, errlen,
				"TPM2_NV_Read: counter 0x%08x unwritten after TPM2_NV_Increment",
				nv_index);
			ret = HOST_TPM_ERR_TPM;
		}
	}
	if (ret && ret != HOST_TPM_ERR_BUSY)
		nv_forget(h);
	return ret;
}

int host_tpm_counter_is_orderly(struct host_tpm *h, uint32_t nv_index, int *orderly, char *err,
				size_t errlen)
{
	TPM2B_NV_PUBLIC *pub = NULL;
	ESYS_TR nv = ESYS_TR_NONE;
	TSS2_RC rc;
	int ret;

	ret = nv_cached(h, nv_index, &nv, err, errlen);
	if (ret)
		return ret;
	rc = Esys_NV_ReadPublic(h->esys, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		nv_forget(h);
		return tss_err(err, errlen, "TPM2_NV_ReadPublic", rc);
	}
	*orderly = (pub->nvPublic.attributes & TPMA_NV_ORDERLY) != 0;
	Esys_Free(pub);
	return 0;
}

int host_tpm_read_clock(struct host_tpm *h, struct host_tpm_clock *c, char *err, size_t errlen)
{
	TPMS_TIME_INFO *t = NULL;
	TSS2_RC rc;

	rc = Esys_ReadClock(h->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &t);
	if (rc != TSS2_RC_SUCCESS) {
		tss_err(err, errlen, "TPM2_ReadClock", rc);
		return rc_busy(rc) ? HOST_TPM_ERR_BUSY : HOST_TPM_ERR_TPM;
	}
	c->clock_ms = t->clockInfo.clock;
	c->reset_count = t->clockInfo.resetCount;
	c->restart_count = t->clockInfo.restartCount;
	c->safe = t->clockInfo.safe == TPM2_YES;
	Esys_Free(t);
	return 0;
}

int host_tpm_orderly_count(struct host_tpm *h, uint32_t *count, char *err, size_t errlen)
{
	TPMS_CAPABILITY_DATA *cap = NULL;
	TPMI_YES_NO more;
	TSS2_RC rc;
	int ret = HOST_TPM_ERR_TPM;

	rc = Esys_GetCapability(h->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
				TPM2_CAP_TPM_PROPERTIES, TPM2_PT_ORDERLY_COUNT, 1, &more, &cap);
	if (rc != TSS2_RC_SUCCESS)
		return tss_err(err, errlen, "TPM2_GetCapability(TPM_PT_ORDERLY_COUNT)", rc);
	if (cap->data.tpmProperties.count >= 1 &&
	    cap->data.tpmProperties.tpmProperty[0].property == TPM2_PT_ORDERLY_COUNT) {
		*count = cap->data.tpmProperties.tpmProperty[0].value;
		ret = 0;
	} else {
		set_err(err, errlen, "TPM2_GetCapability: TPM_PT_ORDERLY_COUNT is not reported");
	}
	Esys_Free(cap);
	return ret;
}

/* DER SubjectPublicKeyInfo of a P-256 point (x, y as the TPM returns them). */
static int ec_spki(const TPMS_ECC_POINT *pt, uint8_t **der, size_t *der_len, char *err,
		   size_t errlen)
{
	uint8_t point[1 + 2 * SHA256_LEN];
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_PKEY *pkey = NULL;
	unsigned char *p;
	uint8_t *out = NULL;
	int n, ret = HOST_TPM_ERR_TPM;

	if (pt->x.size > 32 || pt->y.size > 32) {
		set_err(err, errlen, "TPM2_CreatePrimary (attestation key): point too large");
		return HOST_TPM_ERR_TPM;
	}
	memset(point, 0, sizeof(point));
	point[0] = 0x04; /* uncompressed; x and y left-padded to 32 bytes */
	memcpy(point + 1 + 32 - pt->x.size, pt->x.buffer, pt->x.size);
	memcpy(point + 1 + 64 - pt->y.size, pt->y.buffer, pt->y.size);

	bld = OSSL_PARAM_BLD_new();
	if (!bld ||
	    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)))
		goto openssl;
	params = OSSL_PARAM_BLD_to_param(bld);
	pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (!params || !pctx || EVP_PKEY_fromdata_init(pctx) <= 0 ||
	    EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		goto openssl;
	n = i2d_PUBKEY(pkey, NULL);
	if (n <= 0)
		goto openssl;
	out = malloc((size_t)n);
	if (!out) {
		set_err(err, errlen, "attestation key: out of memory");
		ret = HOST_TPM_ERR_NOMEM;
		goto out;
	}
	p = out;
	if (i2d_PUBKEY(pkey, &p) != n)
		goto openssl;
	*der = out;
	*der_len = (size_t)n;
	out = NULL;
	ret = 0;
	goto out;
openssl:
	set_err(err, errlen, "attestation key: OpenSSL cannot encode the public key");
out:
	free(out);
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(pctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	return ret;
}

int host_tpm_ak_public(struct host_tpm *h, uint8_t **der, size_t *der_len, uint8_t name[34],
		       size_t *name_len, char *err, size_t errlen)
{
	ESYS_TR ak = ESYS_TR_NONE;
	TPM2B_PUBLIC *pub = NULL;
	TPM2B_NAME *tpm_name = NULL;
	TSS2_RC rc;
	int ret;

	*der = NULL;
	*der_len = 0;
	*name_len = 0;
	ret = ak_create(h, &ak, &pub, err, errlen);
	if (!ret) {
		rc = Esys_TR_GetName(h->esys, ak, &tpm_name);
		if (rc != TSS2_RC_SUCCESS)
			ret = tss_err(err, errlen, "TPM2_CreatePrimary (attestation key name)", rc);
		else if (tpm_name->size > HOST_TPM_NAME_MAX) {
			set_err(err, errlen,
				"TPM2_CreatePrimary (attestation key): name of %u bytes",
				(unsigned)tpm_name->size);
			ret = HOST_TPM_ERR_TPM;
		}
	}
	if (!ret)
		ret = ec_spki(&pub->publicArea.unique.ecc, der, der_len, err, errlen);
	if (!ret) {
		memcpy(name, tpm_name->name, tpm_name->size);
		*name_len = tpm_name->size;
	}
	context_flush(h, &ak);
	Esys_Free(pub);
	Esys_Free(tpm_name);
	return ret;
}

/* ---- signed policies: the authorized copy (host_policy.h) ---- */

/* An authorized blob, parsed: the object's public and private parts. */
struct sealed_auth {
	TPM2B_PUBLIC pub;
	TPM2B_PRIVATE priv;
};

static int auth_blob_parse(const uint8_t *blob, size_t blob_len, const TPM2B_PUBLIC *key,
			   struct sealed_auth *s, char *err, size_t errlen)
{
	uint8_t name[HOST_POLICY_NAME_LEN], policy[SHA256_LEN];
	struct rcursor c;
	const uint8_t *p;
	uint32_t magic;
	uint16_t version, n;
	size_t off;
	TSS2_RC rc;

	memset(s, 0, sizeof(*s));
	rc_init(&c, blob, blob_len);
	rc_u32(&c, &magic);
	rc_u16(&c, &version);
	if (c.failed)
		return blob_err(err, errlen, "authorized copy: truncated header (%zu bytes)",
				blob_len);
	if (magic != HOST_TPM_AUTH_MAGIC)
		return blob_err(err, errlen, "authorized copy: bad magic 0x%08x", magic);
	if (version != 1)
		return blob_err(err, errlen, "authorized copy: unsupported version %u", version);
	if (rc_u16(&c, &n) || rc_ptr(&c, &p, n))
		return blob_err(err, errlen, "authorized copy: truncated in TPM2B_PUBLIC");
	off = 0;
	rc = Tss2_MU_TPM2B_PUBLIC_Unmarshal(p, n, &off, &s->pub);
	if (rc != TSS2_RC_SUCCESS || off != n)
		return blob_err(err, errlen, "authorized copy: bad TPM2B_PUBLIC");
	if (rc_u16(&c, &n) || rc_ptr(&c, &p, n))
		return blob_err(err, errlen, "authorized copy: truncated in TPM2B_PRIVATE");
	off = 0;
	rc = Tss2_MU_TPM2B_PRIVATE_Unmarshal(p, n, &off, &s->priv);
	if (rc != TSS2_RC_SUCCESS || off != n)
		return blob_err(err, errlen, "authorized copy: bad TPM2B_PRIVATE");
	if (rc_expect_end(&c))
		return blob_err(err, errlen, "authorized copy: %zu trailing bytes",
				rc_remaining(&c));
	if (s->pub.publicArea.type != TPM2_ALG_KEYEDHASH ||
	    s->pub.publicArea.nameAlg != TPM2_ALG_SHA256 ||
	    s->pub.publicArea.objectAttributes != SEAL_ATTRS ||
	    s->pub.publicArea.parameters.keyedHashDetail.scheme.scheme != TPM2_ALG_NULL)
		return blob_err(
		    err, errlen,
		    "authorized copy: not a sealed data object of the expected template");
	if (host_policy_key_name(key, name) < 0 ||
	    host_policy_authorize_digest(name, sizeof(name), policy) < 0)
		return blob_err(err, errlen,
				"authorized copy: cannot compute the policy key's name");
	if (s->pub.publicArea.authPolicy.size != SHA256_LEN ||
	    CRYPTO_memcmp(s->pub.publicArea.authPolicy.buffer, policy, SHA256_LEN))
		return blob_err(
		    err, errlen,
		    "authorized copy: its policy does not name the installed policy key");
	return 0;
}

int host_tpm_auth_blob_check(const uint8_t *blob, size_t blob_len, const TPM2B_PUBLIC *key,
			     char *err, size_t errlen)
{
	struct sealed_auth *s = malloc(sizeof(*s));
	int ret;

	if (!s) {
		set_err(err, errlen, "out of memory");
		return HOST_TPM_ERR_NOMEM;
	}
	ret = auth_blob_parse(blob, blob_len, key, s, err, errlen);
	free(s);
	return ret;
}

int host_tpm_seal_authorized(struct host_tpm *h, const uint8_t *secret, size_t len,
			     const TPM2B_PUBLIC *key, uint8_t **blob, size_t *blob_len, char *err,
			     size_t errlen)
{
	uint8_t name[HOST_POLICY_NAME_LEN], policy[SHA256_LEN];
	uint8_t pub_buf[sizeof(TPM2B_PUBLIC)], priv_buf[sizeof(TPM2B_PRIVATE)];
	size_t pub_len = 0, priv_len = 0, total;
	ESYS_TR srk = ESYS_TR_NONE, session = ESYS_TR_NONE;
	TPM2B_PUBLIC *pub = NULL;
	TPM2B_PRIVATE *priv = NULL;
	struct wcursor w;
	int ret;

	*blob = NULL;
	*blob_len = 0;
	ret = seal_args_ok(secret, len, 1, err, errlen);
	if (ret)
		return ret;
	if (host_policy_key_name(key, name) < 0 ||
	    host_policy_authorize_digest(name, sizeof(name), policy) < 0) {
		set_err(err, errlen, "PolicyAuthorize digest: marshalling or SHA-256 failed");
		return HOST_TPM_ERR_ARG;
	}
	ret = srk_create(h, &srk, err, errlen);
	if (!ret)
		ret = session_start(h, srk, TPM2_SE_HMAC, TPMA_SESSION_DECRYPT, &session, err,
				    errlen);
	if (!ret) {
		ret = sealed_object_create(h, srk, session, secret, len, policy, &pub, &priv, err,
					   errlen);
		session_end(h, &session, !ret);
	}
	if (!ret && (Tss2_MU_TPM2B_PUBLIC_Marshal(pub, pub_buf, sizeof(pub_buf), &pub_len) ||
		     Tss2_MU_TPM2B_PRIVATE_Marshal(priv, priv_buf, sizeof(priv_buf), &priv_len))) {
		set_err(err, errlen, "TPM2_Create: cannot marshal the sealed object");
		ret = HOST_TPM_ERR_TPM;
	}
	if (!ret) {
		total = 6 + 2 + pub_len + 2 + priv_len;
		*blob = malloc(total);
		if (!*blob) {
			set_err(err, errlen, "seal: out of memory");
			ret = HOST_TPM_ERR_NOMEM;
		}
	}
	if (!ret) {
		wc_init(&w, *blob, total);
		wc_u32(&w, HOST_TPM_AUTH_MAGIC);
		wc_u16(&w, 1);
		wc_u16(&w, (uint16_t)pub_len);
		wc_bytes(&w, pub_buf, pub_len);
		wc_u16(&w, (uint16_t)priv_len);
		wc_bytes(&w, priv_buf, priv_len);
		*blob_len = total;
	}
	context_flush(h, &session);
	context_flush(h, &srk);
	Esys_Free(pub);
	Esys_Free(priv);
	return ret;
}

int host_tpm_nv_name(struct host_tpm *h, uint32_t nv_index, uint8_t name[HOST_TPM_NAME_MAX],
		     size_t *name_len, char *err, size_t errlen)
{
	ESYS_TR nv = ESYS_TR_NONE;
	TPM2B_NAME *n = NULL;
	TSS2_RC rc;
	int ret;

	*name_len = 0;
	/* the cached handle: ESYS may hand out the same object for an index twice, so closing a
	 * second one could close the cached one */
	ret = nv_cached(h, nv_index, &nv, err, errlen);
	if (ret)
		return ret;
	rc = Esys_TR_GetName(h->esys, nv, &n);
	if (rc != TSS2_RC_SUCCESS) {
		ret = tss_err(err, errlen, "TPM2_NV_ReadPublic (name)", rc);
	} else if (n->size > HOST_TPM_NAME_MAX) {
		set_err(err, errlen, "NV index 0x%08x: a name of %u bytes", nv_index, n->size);
		ret = HOST_TPM_ERR_TPM;
	} else {
		memcpy(name, n->name, n->size);
		*name_len = n->size;
	}
	Esys_Free(n);
	return ret;
}

/* TPM2_LoadExternal of the policy key (owner hierarchy: a key in the null hierarchy would get
 * a null ticket, which PolicyAuthorize refuses) and TPM2_VerifySignature: the ticket. */
static int policy_ticket(struct host_tpm *h, const TPM2B_PUBLIC *key, const struct host_policy *p,
			 TPMT_TK_VERIFIED **ticket, TPM2B_NAME **name, char *err, size_t errlen)
{
	ESYS_TR k = ESYS_TR_NONE;
	TPM2B_DIGEST ahash = {.size = SHA256_LEN};
	TSS2_RC rc;
	int ret = 0;

	if (host_policy_ahash(p->approved, ahash.buffer) < 0) {
		set_err(err, errlen, "aHash: SHA-256 failed");
		return HOST_TPM_ERR_NOMEM;
	}
	rc = Esys_LoadExternal(h->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL, key,
			       ESYS_TR_RH_OWNER, &k);
	if (rc != TSS2_RC_SUCCESS)
		return tss_err(err, errlen, "TPM2_LoadExternal (policy key)", rc);
	rc = Esys_TR_GetName(h->esys, k, name);
	if (rc != TSS2_RC_SUCCESS)
		ret = tss_err(err, errlen, "TPM2_LoadExternal (policy key name)", rc);
	if (!ret) {
		rc = Esys_VerifySignature(h->esys, k, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
					  &ahash, &p->sig, ticket);
		if (rc != TSS2_RC_SUCCESS)
			ret = tss_err(err, errlen, "TPM2_VerifySignature (signed policy)", rc);
	}
	context_flush(h, &k);
	return ret;
}

int host_tpm_unseal_authorized(struct host_tpm *h, const uint8_t *blob, size_t blob_len,
			       const TPM2B_PUBLIC *key, const struct host_policy *p,
			       uint8_t *secret, size_t cap, size_t *len, uint32_t *differ,
			       uint64_t *counter, char *err, size_t errlen)
{
	struct sealed_auth *s;
	struct sealed *cmp = NULL;
	ESYS_TR srk = ESYS_TR_NONE, obj = ESYS_TR_NONE, session = ESYS_TR_NONE, nv = ESYS_TR_NONE;
	TPMT_TK_VERIFIED *ticket = NULL;
	TPM2B_NAME *name = NULL;
	TPM2B_OPERAND operand = {.size = 8};
	TPM2B_DIGEST approved = {.size = SHA256_LEN};
	TPM2B_NONCE ref = {.size = sizeof(HOST_POLICY_REF) - 1};
	TSS2_RC rc;
	int ret;

	*len = 0;
	*differ = 0;
	*counter = 0;
	s = malloc(sizeof(*s));
	cmp = calloc(1, sizeof(*cmp));
	if (!s || !cmp) {
		free(s);
		free(cmp);
		set_err(err, errlen, "unseal: out of memory");
		return HOST_TPM_ERR_NOMEM;
	}
	ret = auth_blob_parse(blob, blob_len, key, s, err, errlen);
	if (!ret) {
		cmp->mask = p->mask;
		memcpy(cmp->values, p->values, sizeof(cmp->values));
		ret = pcr_compare(h, cmp, differ, err, errlen);
	}
	if (!ret) {
		ret = host_tpm_counter_read(h, p->nv_index, counter, err, errlen);
		if (!ret && *counter > p->serial) {
			set_err(err, errlen,
				"the signed policy with serial %" PRIu64
				" is revoked (the revocation counter 0x%08x is at %" PRIu64 ")",
				p->serial, p->nv_index, *counter);
			ret = HOST_TPM_ERR_REVOKED;
		}
	}
	if (!ret)
		ret = policy_ticket(h, key, p, &ticket, &name, err, errlen);
	if (!ret)
		ret = srk_create(h, &srk, err, errlen);
	if (!ret) {
		struct sealed tmp;

		memset(&tmp, 0, sizeof(tmp));
		tmp.pub = s->pub;
		tmp.priv = s->priv;
		ret = object_load(h, srk, &tmp, &obj, err, errlen);
		OPENSSL_cleanse(&tmp, sizeof(tmp));
	}
	if (!ret)
		ret = session_start(h, srk, TPM2_SE_POLICY, TPMA_SESSION_ENCRYPT, &session, err,
				    errlen);
	if (!ret)
		ret = policy_pcr(h, session, p->mask, err, errlen);
	if (!ret)
		ret = nv_cached(h, p->nv_index, &nv, err, errlen);
	if (!ret) {
		be64_put(operand.buffer, p->serial);
		rc = Esys_PolicyNV(h->esys, ESYS_TR_RH_OWNER, nv, session, ESYS_TR_PASSWORD,
				   ESYS_TR_NONE, ESYS_TR_NONE, &operand, 0, TPM2_EO_UNSIGNED_LE);
		if (rc != TSS2_RC_SUCCESS)
			ret = tss_err(err, errlen, "TPM2_PolicyNV (revocation counter)", rc);
	}
	if (!ret) {
		memcpy(approved.buffer, p->approved, SHA256_LEN);
		memcpy(ref.buffer, HOST_POLICY_REF, sizeof(HOST_POLICY_REF) - 1);
		rc = Esys_PolicyAuthorize(h->esys, session, ESYS_TR_NONE, ESYS_TR_NONE,
					  ESYS_TR_NONE, &approved, &ref, name, ticket);
		if (rc != TSS2_RC_SUCCESS)
			ret = tss_err(err, errlen, "TPM2_PolicyAuthorize", rc);
	}
	if (!ret) {
		ret = object_unseal(h, obj, session, secret, cap, len, err, errlen);
		session_end(h, &session, ret == 0 || ret == HOST_TPM_ERR_ARG);
	}
	context_flush(h, &session);
	context_flush(h, &obj);
	context_flush(h, &srk);
	Esys_Free(ticket);
	Esys_Free(name);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
	free(cmp);
	return ret;
}

/* The policy digest a trial session has reached (SHA-256). */
static int trial_digest(struct host_tpm *h, ESYS_TR session, uint8_t out[SHA256_LEN], char *err,
			size_t errlen)
{
	TPM2B_DIGEST *d = NULL;
	TSS2_RC rc;
	int ret = 0;

	rc = Esys_PolicyGetDigest(h->esys, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &d);
	if (rc != TSS2_RC_SUCCESS || d->size != SHA256_LEN)
		ret = tss_err(err, errlen, "TPM2_PolicyGetDigest (trial)", rc);
	else
		memcpy(out, d->buffer, SHA256_LEN);
	Esys_Free(d);
	return ret;
}

int host_tpm_policy_trial(struct host_tpm *h, const struct host_policy *p, const TPM2B_PUBLIC *key,
			  uint8_t approved[32], uint8_t authorize[32],
			  uint8_t key_name[HOST_TPM_NAME_MAX], size_t *key_name_len, char *err,
			  size_t errlen)
{
	const TPMT_SYM_DEF sym = {.algorithm = TPM2_ALG_NULL};
	ESYS_TR session = ESYS_TR_NONE, nv = ESYS_TR_NONE, k = ESYS_TR_NONE;
	TPM2B_DIGEST pcr_digest = {.size = SHA256_LEN}, in = {.size = SHA256_LEN};
	TPM2B_OPERAND operand = {.size = 8};
	TPM2B_NONCE ref = {.size = sizeof(HOST_POLICY_REF) - 1};
	TPMT_TK_VERIFIED ticket = {.tag = TPM2_ST_VERIFIED, .hierarchy = TPM2_RH_NULL};
	TPML_PCR_SELECTION sel;
	TPM2B_NAME *name = NULL;
	EVP_MD_CTX *md;
	TSS2_RC rc;
	int ret = 0, ok;

	*key_name_len = 0;
	md = EVP_MD_CTX_new();
	ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	for (unsigned i = 0; ok && i < HOST_TPM_PCRS; i++)
		if (p->mask & (1u << i))
			ok = EVP_DigestUpdate(md, p->values[i], SHA256_LEN);
	ok = ok && EVP_DigestFinal_ex(md, pcr_digest.buffer, NULL);
	EVP_MD_CTX_free(md);
	if (!ok) {
		set_err(err, errlen, "SHA-256 failed");
		return HOST_TPM_ERR_NOMEM;
	}
	rc = Esys_StartAuthSession(h->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
				   ESYS_TR_NONE, NULL, TPM2_SE_TRIAL, &sym, TPM2_ALG_SHA256,
				   &session);
	if (rc != TSS2_RC_SUCCESS)
		return tss_err(err, errlen, "TPM2_StartAuthSession (trial)", rc);
	pcr_selection(p->mask, &sel);
	rc = Esys_PolicyPCR(h->esys, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pcr_digest,
			    &sel);
	if (rc != TSS2_RC_SUCCESS)
		ret = tss_err(err, errlen, "TPM2_PolicyPCR (trial)", rc);
	if (!ret)
		ret = nv_cached(h, p->nv_index, &nv, err, errlen);
	if (!ret) {
		be64_put(operand.buffer, p->serial);
		rc = Esys_PolicyNV(h->esys, ESYS_TR_RH_OWNER, nv, session, ESYS_TR_PASSWORD,
				   ESYS_TR_NONE, ESYS_TR_NONE, &operand, 0, TPM2_EO_UNSIGNED_LE);
		if (rc != TSS2_RC_SUCCESS)
			ret = tss_err(err, errlen, "TPM2_PolicyNV (trial)", rc);
	}
	if (!ret)
		ret = trial_digest(h, session, approved, err, errlen);
	if (!ret) {
		rc = Esys_LoadExternal(h->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL, key,
				       ESYS_TR_RH_OWNER, &k);
		if (rc != TSS2_RC_SUCCESS)
			ret = tss_err(err, errlen, "TPM2_LoadExternal (policy key)", rc);
	}
	if (!ret) {
		rc = Esys_TR_GetName(h->esys, k, &name);
		if (rc != TSS2_RC_SUCCESS || name->size > HOST_TPM_NAME_MAX) {
			ret = tss_err(err, errlen, "TPM2_LoadExternal (name)", rc);
		} else {
			memcpy(key_name, name->name, name->size);
			*key_name_len = name->size;
		}
	}
	if (!ret) {
		memcpy(in.buffer, approved, SHA256_LEN);
		memcpy(ref.buffer, HOST_POLICY_REF, sizeof(HOST_POLICY_REF) - 1);
		rc = Esys_PolicyAuthorize(h->esys, session, ESYS_TR_NONE, ESYS_TR_NONE,
					  ESYS_TR_NONE, &in, &ref, name, &ticket);
		if (rc != TSS2_RC_SUCCESS)
			ret = tss_err(err, errlen, "TPM2_PolicyAuthorize (trial)", rc);
	}
	if (!ret)
		ret = trial_digest(h, session, authorize, err, errlen);
	Esys_Free(name);
	context_flush(h, &k);
	context_flush(h, &session);
	return ret;
}
