/*
 * host_tpm.h — the manager's only door to the host TPM (tpm2-tss ESAPI over a TCTI string).
 *
 * One function per TPM operation, as in Linux drivers/char/tpm: each builds its
 * structures with tpm2-tss types, sends the commands through one ESYS context, flushes
 * every transient object and session it created, and on failure writes into err a message
 * that names the TPM operation ("TPM2_Unseal: 0x99d (tpm:session(1):a policy check
 * failed)"). Nothing here is persistent on the TPM except the NV counters the caller
 * defines: the storage key (SRK) and the attestation key (AK) are primaries recreated from
 * their templates whenever they are needed and flushed at once.
 *
 * Hierarchy authorisations (owner, endorsement) are assumed empty, as on a host whose
 * TPM was never taken by an owner password. A struct host_tpm is not thread-safe.
 *
 * tpm2-tss logs its own errors to stderr; host_tpm_open sets TSS2_LOG=all+NONE unless the
 * environment already sets TSS2_LOG, so that each failure is reported once, by our message.
 */
#ifndef VTPM_HOST_TPM_H
#define VTPM_HOST_TPM_H

#include <stddef.h>
#include <stdint.h>

enum {
	HOST_TPM_OK = 0,
	HOST_TPM_ERR_TPM = -1,	  /* a TPM or TSS call failed; err names it and decodes the RC */
	HOST_TPM_ERR_PCR = -2,	  /* unseal: host PCRs differ from the sealed state (*differ) */
	HOST_TPM_ERR_EXISTS = -3, /* counter_define: the NV index is already defined */
	HOST_TPM_ERR_FORMAT = -4, /* unseal: the blob is malformed or inconsistent */
	HOST_TPM_ERR_NOMEM = -5,  /* allocation failed */
	HOST_TPM_ERR_ARG = -6,	  /* bad argument (mask, length, index, capacity) */
	HOST_TPM_ERR_NOENT = -7,  /* counter_*: the NV index is not defined */
	/* the TPM is busy or protecting itself, and will do it later: TPM_RC_NV_RATE,
	 * TPM_RC_RETRY, TPM_RC_YIELDED, TPM_RC_TESTING, TPM_RC_NV_UNAVAILABLE. Nothing was
	 * done; the same command may be sent again after a pause. */
	HOST_TPM_ERR_BUSY = -8,
	/* unseal_authorized: the policy's serial is below the revocation counter */
	HOST_TPM_ERR_REVOKED = -9,
};

/* host_tpm_counter_define flags */
#define HOST_TPM_COUNTER_ORDERLY 1u /* TPMA_NV_ORDERLY: a hybrid counter (see below) */

#define HOST_TPM_PCRS	    24
#define HOST_TPM_PCR_MASK   0x00ffffffu
#define HOST_TPM_SECRET_MAX 128		/* MAX_SYM_DATA of libtpms and common TPMs */
#define HOST_TPM_NV_FIRST   0x01000000u /* owner range of NV indices */
#define HOST_TPM_NV_LAST    0x013fffffu
#define HOST_TPM_NAME_MAX   34 /* TPM2B_NAME of a SHA-256 object: u16 alg + 32 */

/* Sealed blob format (all integers big-endian):
 *	u32 magic "VTHS" (0x56544853)   u16 version (1)   u16 PCR bank (TPM2_ALG_SHA256)
 *	u32 PCR mask (bit i = PCR i; non-zero, bits 24..31 clear)
 *	32 bytes per PCR in the mask, ascending PCR number: the values the policy was built on
 *	u16 n + n bytes: marshalled TPM2B_PUBLIC of the sealed object
 *	u16 n + n bytes: marshalled TPM2B_PRIVATE of the sealed object
 * and nothing after. The object's authPolicy must equal PolicyPCR over those values. */
#define HOST_TPM_BLOB_MAGIC   0x56544853u
#define HOST_TPM_BLOB_VERSION 1

struct host_tpm;

/* Load the TCTI ("device:/dev/tpmrm0", "swtpm:host=127.0.0.1,port=2321", ...) and create
 * the ESYS context. Sends no TPM command (the TPM must already be started). */
int host_tpm_open(struct host_tpm **out, const char *tcti, char *err, size_t errlen);
void host_tpm_close(struct host_tpm *h);

/* TPM commands transmitted through the TCTI so far (counted in a wrapper around the TCTI's
 * transmit, so commands ESYS sends on its own, e.g. NV_ReadPublic, are included). Safe to
 * call from any thread. */
uint64_t host_tpm_commands(const struct host_tpm *h);
/* The same, by command: calls cb(name, count) for each command code sent at least once
 * ("NV_Increment", or "0x%x" for a code without a name here), in command-code order. */
void host_tpm_command_counts(const struct host_tpm *h,
			     void (*cb)(const char *name, uint64_t count, void *arg), void *arg);

/* TPM2_ReadClock: the TPM's reset and restart counts and its "safe" flag (clear after a
 * shutdown that was not orderly, until the TPM next saves its clock). */
struct host_tpm_clock {
	uint64_t clock_ms;
	uint32_t reset_count;
	uint32_t restart_count;
	int safe;
};
int host_tpm_read_clock(struct host_tpm *h, struct host_tpm_clock *c, char *err, size_t errlen);
/* TPM2_GetCapability(TPM_PT_ORDERLY_COUNT): how many increments a hybrid counter may take in
 * TPM RAM before it is written to NV (MAX_ORDERLY_COUNT, 2^N - 1). */
int host_tpm_orderly_count(struct host_tpm *h, uint32_t *count, char *err, size_t errlen);
/* Whether the counter at nv_index is a hybrid (orderly) one. */
int host_tpm_counter_is_orderly(struct host_tpm *h, uint32_t nv_index, int *orderly, char *err,
				size_t errlen);

/* Read the SHA-256 PCRs in mask (bit i = PCR i, 0..23) into values[i]; entries outside the
 * mask are left untouched. Several TPM2_PCR_Read calls if needed (at most 8 digests each),
 * retried if a PCR changed in between (pcrUpdateCounter). */
int host_tpm_pcr_read(struct host_tpm *h, uint32_t mask, uint8_t values[24][32], char *err,
		      size_t errlen);

/* Seal secret (1..128 bytes) under the SRK with a PolicyPCR over the current values of the
 * SHA-256 PCRs in mask (non-zero). The object has no usable auth value (userWithAuth
 * clear): only the policy opens it. The secret travels to the TPM encrypted (session
 * salted with the SRK, AES-128-CFB). *blob is malloc'd; see the format above. */
int host_tpm_seal(struct host_tpm *h, const uint8_t *secret, size_t len, uint32_t mask,
		  uint8_t **blob, size_t *blob_len, char *err, size_t errlen);

/* The same, to values given by the caller (the expected values of a coming boot: a
 * predicted reseal) instead of the current ones: values[i] for each PCR i in mask. The
 * PolicyPCR digest is computed offline; TPM2_Create does not need the PCRs to hold those
 * values now, so the blob opens only once they do. No PCR is read. */
int host_tpm_seal_values(struct host_tpm *h, const uint8_t *secret, size_t len, uint32_t mask,
			 const uint8_t values[24][32], uint8_t **blob, size_t *blob_len, char *err,
			 size_t errlen);

/* The PCR mask and the values a blob was sealed to (values[i] for each i in *mask; the other
 * entries untouched), without a TPM command. The blob is untrusted: it is parsed and checked
 * as host_tpm_unseal does (HOST_TPM_ERR_FORMAT with the reason). */
int host_tpm_blob_pcrs(const uint8_t *blob, size_t blob_len, uint32_t *mask, uint8_t values[24][32],
		       char *err, size_t errlen);

/* Unseal a blob from host_tpm_seal(_values) into secret (cap bytes; 128 always suffices), length in
 * *len. The blob is untrusted. First compares the current host PCRs with the sealed values:
 * if any differ returns HOST_TPM_ERR_PCR with their mask in *differ (also on a PCR change
 * racing the unseal). *differ is 0 on every other outcome. The secret comes back encrypted
 * (salted policy session with response encryption). */
int host_tpm_unseal(struct host_tpm *h, const uint8_t *blob, size_t blob_len, uint8_t *secret,
		    size_t cap, size_t *len, uint32_t *differ, char *err, size_t errlen);

/* NV counter (TPM2_NT_COUNTER, OWNERWRITE|OWNERREAD|NO_DA, owner auth) at nv_index in
 * HOST_TPM_NV_FIRST..HOST_TPM_NV_LAST. With HOST_TPM_COUNTER_ORDERLY it is a hybrid
 * counter: increments stay in TPM RAM (no NV write, no NV rate limit, no flash wear) and
 * reach NV once every TPM_PT_ORDERLY_COUNT + 1 increments or at an orderly TPM2_Shutdown;
 * after a shutdown that was not orderly (power loss) the TPM moves it past every value it
 * may have had, by up to TPM_PT_ORDERLY_COUNT.
 * define: HOST_TPM_ERR_EXISTS if the index is already defined (whatever its type).
 * undefine, increment, read: HOST_TPM_ERR_NOENT if it is not defined.
 * increment: *value (may be NULL: then the counter is not read back, one TPM command in
 *   all) receives the value after the increment. The index's ESYS handle is kept between
 *   calls (no NV_ReadPublic per increment).
 * read: a counter that was never incremented cannot be read (TPM_RC_NV_UNINITIALIZED);
 *   read then increments it once and returns that first value, so read always yields the
 *   current value and a counter's value is defined from the first read on. */
int host_tpm_counter_define(struct host_tpm *h, uint32_t nv_index, unsigned flags, char *err,
			    size_t errlen);
int host_tpm_counter_undefine(struct host_tpm *h, uint32_t nv_index, char *err, size_t errlen);
int host_tpm_counter_increment(struct host_tpm *h, uint32_t nv_index, uint64_t *value, char *err,
			       size_t errlen);
int host_tpm_counter_read(struct host_tpm *h, uint32_t nv_index, uint64_t *value, char *err,
			  size_t errlen);

/* The attestation key: restricted ECDSA-SHA256 P-256 signing primary in the endorsement
 * hierarchy, recreated from its template (so the same on every call for a given TPM).
 * *der (malloc'd) = DER SubjectPublicKeyInfo; name = its TPM name (SHA-256 name alg),
 * *name_len bytes (34). */
int host_tpm_ak_public(struct host_tpm *h, uint8_t **der, size_t *der_len, uint8_t name[34],
		       size_t *name_len, char *err, size_t errlen);

/* ---- signed policies (host_policy.h) ----
 * Authorized blob format (big-endian): u32 magic "VTHA" (0x56544841), u16 version (1),
 * u16 n + marshalled TPM2B_PUBLIC, u16 n + marshalled TPM2B_PRIVATE, nothing after. The
 * object's authPolicy must be PolicyAuthorize(name of the policy key, HOST_POLICY_REF). */
#define HOST_TPM_AUTH_MAGIC 0x56544841u

struct host_policy;
#include <tss2/tss2_tpm2_types.h>

/* Seal secret under PolicyAuthorize(name of key, HOST_POLICY_REF). No PCR is read. */
int host_tpm_seal_authorized(struct host_tpm *h, const uint8_t *secret, size_t len,
			     const TPM2B_PUBLIC *key, uint8_t **blob, size_t *blob_len, char *err,
			     size_t errlen);
/* Unseal an authorized blob with the signed policy p (key: the policy key): the current values
 * of p's PCRs are compared with p's first (HOST_TPM_ERR_PCR, their mask in *differ), the
 * revocation counter with p's serial (HOST_TPM_ERR_REVOKED, the counter in *counter), then
 * TPM2_LoadExternal(key), TPM2_VerifySignature, and a policy session PolicyPCR, PolicyNV,
 * PolicyAuthorize, TPM2_Unseal. The blob and p are untrusted (p parsed by
 * host_policy_parse). */
int host_tpm_unseal_authorized(struct host_tpm *h, const uint8_t *blob, size_t blob_len,
			       const TPM2B_PUBLIC *key, const struct host_policy *p,
			       uint8_t *secret, size_t cap, size_t *len, uint32_t *differ,
			       uint64_t *counter, char *err, size_t errlen);
/* Check an authorized blob's shape and policy against key, without a TPM command. */
int host_tpm_auth_blob_check(const uint8_t *blob, size_t blob_len, const TPM2B_PUBLIC *key,
			     char *err, size_t errlen);
/* The TPM name of NV index nv_index (TPM2_NV_ReadPublic), *name_len bytes. */
int host_tpm_nv_name(struct host_tpm *h, uint32_t nv_index, uint8_t name[HOST_TPM_NAME_MAX],
		     size_t *name_len, char *err, size_t errlen);

/* For tests: the digests the TPM computes in a trial session for p (PolicyPCR with p's
 * values, PolicyNV with p's serial: approved) and then PolicyAuthorize with key (authorize),
 * and the TPM's name of key (TPM2_LoadExternal). The NV index must be defined. */
int host_tpm_policy_trial(struct host_tpm *h, const struct host_policy *p, const TPM2B_PUBLIC *key,
			  uint8_t approved[32], uint8_t authorize[32],
			  uint8_t key_name[HOST_TPM_NAME_MAX], size_t *key_name_len, char *err,
			  size_t errlen);

/* TPM2_PCR_Extend of SHA-256 PCR pcr (0..23) with digest (the PCR's own, empty, auth).
 * For tests: simulates a host state change. */
int host_tpm_pcr_extend(struct host_tpm *h, unsigned pcr, const uint8_t digest[32], char *err,
			size_t errlen);

#endif
