/*
 * event_log.h — a TCG2 crypto-agile event log (TCG PC Client Platform Firmware Profile,
 * "Crypto Agile Log Entries Format"): the Spec ID Event03 header in the SHA-1 format, then
 * one TCG_PCR_EVENT2 per measurement, little-endian as firmware writes it, so that
 * tpm2_eventlog and verifiers read vtpmd's measurements as they read the firmware's.
 */
#ifndef VTPMD_EVENT_LOG_H
#define VTPMD_EVENT_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <tss2/tss2_tpm2_types.h>

#define EV_NO_ACTION 0x00000003u
#define EV_IPL	     0x0000000du

struct event_log_entry {
	uint32_t pcr;
	uint32_t type;
	const TPML_DIGEST_VALUES *digests; /* one per bank of the header, in its order */
	const uint8_t *data;		   /* the event data, what a verifier reads */
	uint32_t data_len;
};

/* The digest size of a TPM hash algorithm, 0 if it is not one. */
uint16_t event_log_digest_size(TPMI_ALG_HASH alg);

/* The log of banks[0..nbanks) and events[0..n), in a malloc'd *out (*out_len bytes). 0, or
 * -1 (an unknown bank, an event whose digests are not the banks', out of memory). */
int event_log_build(const TPMI_ALG_HASH *banks, size_t nbanks, const struct event_log_entry *events,
		    size_t n, uint8_t **out, size_t *out_len);

#endif
