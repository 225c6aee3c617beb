/*
 * resume_proof.h — how a running vtpmd proves to a restarted vtpmmgrd that it is the live
 * instance the manager handed a vTPM's state key to (MGR_RESUME, mgr_proto.h).
 *
 *   proof = HMAC-SHA256(state key, MGR_RESUME_LABEL || uuid || u32 pid ||
 *                       u64 version || digest)           (integers big-endian)
 *
 * Only a process that holds the state key can make it; the pid (the sender's, which the
 * kernel attests with SCM_CREDENTIALS) keeps another process from replaying it, and
 * version/digest name the newest commit the manager accepted, so the two ends agree on
 * where the vTPM stands before any new commit is taken.
 */
#ifndef VTPM_RESUME_PROOF_H
#define VTPM_RESUME_PROOF_H

#include <stdint.h>
#include <sys/types.h>

int resume_proof(const uint8_t state_key[32], const uint8_t uuid[16], pid_t pid, uint64_t version,
		 const uint8_t digest[32], uint8_t out[32]);

#endif
