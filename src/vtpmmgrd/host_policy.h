/*
 * host_policy.h — signed host policies for the manager's root key (TPM2_PolicyAuthorize), in
 * software: the policy file (parse, encode), the policy digests the host TPM computes, the
 * admin key's TPM form and name, and the signature. No TPM command here: host_tpm.c runs the
 * session. Shared by vtpmmgrd and vtpmctl (which signs).
 *
 * The root key has a second sealed copy whose authPolicy is
 *	PolicyAuthorize(keyName = name of the admin's policy key, policyRef = HOST_POLICY_REF)
 * It opens in a policy session that ran
 *	TPM2_PolicyPCR(selection)                    the current values of the policy's PCRs
 *	TPM2_PolicyNV(revocation counter, serial, TPM_EO_UNSIGNED_LE)   counter <= serial
 *	TPM2_PolicyAuthorize(approvedPolicy, policyRef, keyName, ticket)
 * where approvedPolicy (from a zero digest) is the digest after the first two, and the
 * ticket is TPM2_VerifySignature's of the admin's signature over
 *	aHash = SHA-256(approvedPolicy || policyRef).
 *
 * Policy file (docs/vtpmmgrd.8, SIGNED POLICIES), all integers big-endian:
 *	u32 magic "VTPP" (0x56545050)   u16 version (1)   u16 PCR bank (TPM2_ALG_SHA256)
 *	u32 PCR mask (bit i = PCR i; non-zero, bits 24..31 clear)
 *	32 bytes per PCR in the mask, ascending PCR number
 *	u32 revocation NV index (0x01000000..0x013fffff)
 *	u64 serial (the policy holds while the revocation counter is <= serial)
 *	32 bytes approvedPolicy (must equal the digest of the above)
 *	u16 n + n bytes: marshalled TPMT_SIGNATURE (RSASSA or ECDSA, SHA-256) over aHash
 * and nothing after.
 */
#ifndef VTPM_HOST_POLICY_H
#define VTPM_HOST_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <tss2/tss2_tpm2_types.h>

#define HOST_POLICY_MAGIC   0x56545050u /* "VTPP" */
#define HOST_POLICY_VERSION 1
#define HOST_POLICY_REF	    "vtpm-host-policy-v1" /* policyRef of every signed policy */
#define HOST_POLICY_MAX	    1024		  /* bytes of a policy file */
#define HOST_POLICY_KEY_MAX 1024		  /* bytes of the policy key (DER SPKI) */
/* the revocation counter's default NV index (owner range, beside the rollback counter's) */
#define HOST_POLICY_NV_DEFAULT 0x013ff101u
#define HOST_POLICY_NAME_LEN   34 /* TPM2B_NAME of a SHA-256 object or NV index */

struct host_policy {
	uint32_t mask;
	uint8_t values[24][32];
	uint32_t nv_index;
	uint64_t serial;
	uint8_t approved[32];
	TPMT_SIGNATURE sig;
};

/* Parse an untrusted policy file (through the cursor). 0, or -1 with a precise reason in err.
 * Checks the shape, the signature's algorithm, and that approvedPolicy is the digest of the
 * PCR values, NV index and serial; not the signature itself (host_policy_verify). */
int host_policy_parse(const uint8_t *buf, size_t len, struct host_policy *p, char *err,
		      size_t errlen);
/* Encode p; returns the length, or 0 if it does not fit in cap. */
size_t host_policy_encode(const struct host_policy *p, uint8_t *out, size_t cap);

/* The name of the revocation counter at nv_index as vtpmmgrd defines it (TPM2_NT_COUNTER,
 * OWNERWRITE | OWNERREAD | NO_DA, written): nameAlg || SHA-256(TPMS_NV_PUBLIC). */
int host_policy_nv_name(uint32_t nv_index, uint8_t name[HOST_POLICY_NAME_LEN]);
/* approvedPolicy of p's mask, values, nv_index and serial. 0 or -1. */
int host_policy_approved(const struct host_policy *p, uint8_t out[32]);
/* aHash = SHA-256(approved || HOST_POLICY_REF). */
int host_policy_ahash(const uint8_t approved[32], uint8_t out[32]);

/* The admin's public key (DER SubjectPublicKeyInfo, RSA-2048 or ECC P-256) as the TPM loads
 * it (TPM2_LoadExternal: a signing key, RSASSA or ECDSA with SHA-256), its TPM name, and a
 * short description ("rsa-2048", "ecc-p256"). 0, or -1 with the reason in err. */
int host_policy_key_public(const uint8_t *der, size_t len, TPM2B_PUBLIC *pub, char *desc,
			   size_t desclen, char *err, size_t errlen);
int host_policy_key_name(const TPM2B_PUBLIC *pub, uint8_t name[HOST_POLICY_NAME_LEN]);
/* The sealed copy's authPolicy: PolicyAuthorize(name, HOST_POLICY_REF) from a zero digest. */
int host_policy_authorize_digest(const uint8_t *name, size_t name_len, uint8_t out[32]);

/* Sign p (its approved field must be set) with the admin's private key into p->sig. */
int host_policy_sign(EVP_PKEY *key, struct host_policy *p, char *err, size_t errlen);
/* Check p's signature against the admin's public key (DER SPKI). 0, or -1 (err). */
int host_policy_verify(const uint8_t *der, size_t len, const struct host_policy *p, char *err,
		       size_t errlen);

/* The store's list of signed policies: u16 n + n bytes of policy file, repeated (at most
 * HOST_POLICY_LIST_MAX entries). Entry i as a view into list: 1, or 0 past the end, or -1 if
 * the list is malformed. */
#define HOST_POLICY_LIST_MAX 8
int host_policy_list_get(const uint8_t *list, size_t len, size_t i, const uint8_t **p, size_t *n);

#endif
