/*
 * cmd_filter.h — which TPM 2.0 commands a passthrough guest may send to the host TPM.
 *
 * A filter is parsed from a text file (format in docs/vtpmd.8, FILTER FILE; the shipped
 * default is etc/passthrough.filter) into a table keyed by command code: one bit per
 * (vendor bit, command index) pair, so every possible TPM_CC has a decision and a code with
 * reserved bits set is always denied. Two rules look at a command's handles or parameters
 * too: `pcrs` limits which PCRs PCR_Extend, PCR_Event, PCR_Reset and EventSequenceComplete
 * may change, `nv-range` limits which NV indices NV_DefineSpace and NV_UndefineSpace may
 * create or delete. Anything not allowed is denied. Parsing and checking are pure (no I/O)
 * and read every byte through the cursor; both are fuzzed (tests/fuzz/fuzz_cmd_filter.c).
 */
#ifndef VTPMD_CMD_FILTER_H
#define VTPMD_CMD_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A filter file larger than this is refused. */
#define CMD_FILTER_MAX_FILE (64u * 1024u)
/* A line longer than this is refused. */
#define CMD_FILTER_MAX_LINE 1024u

/* TPM_CC layout (TPM 2.0 Part 2, 6.5.2): bits 0-15 command index, bit 29 vendor. */
#define TPM_CC_VENDOR_BIT 0x20000000u
#define TPM_CC_INDEX_MASK 0x0000ffffu

struct cmd_filter {
	uint8_t allow[2][8192]; /* [vendor][index / 8], bit index % 8 */
	uint32_t pcrs;		/* PCRs 0..31 that extend/event/reset may touch */
	bool pcrs_set;		/* a `pcrs` line was given (else: no PCR may be changed) */
	uint32_t nv_first, nv_last;
	bool nv_set; /* an `nv-range` line was given (else: no index may be defined/undefined) */
};

/* Parse a filter file's bytes. 0, or -1 with "line N: why" in err. */
int cmd_filter_parse(struct cmd_filter *f, const uint8_t *text, size_t len, char *err,
		     size_t errlen);
/* Read and parse a file (at most CMD_FILTER_MAX_FILE bytes, never through a symbolic link). */
int cmd_filter_load(struct cmd_filter *f, const char *path, char *err, size_t errlen);

enum cmd_verdict {
	CMD_ALLOW = 0,
	CMD_DENY_CODE,	 /* the command code is not allowed */
	CMD_DENY_PCR,	 /* a PCR outside `pcrs` */
	CMD_DENY_NV,	 /* an NV index outside `nv-range` */
	CMD_DENY_HEADER, /* too short to decide: denied */
};

/* Decide on one whole TPM 2 command (header already checked by the caller: tag, size). */
enum cmd_verdict cmd_filter_check(const struct cmd_filter *f, const uint8_t *cmd, size_t len,
				  uint32_t *cc);
/* The decision on a code alone (the per-handle rules aside). */
bool cmd_filter_allows_code(const struct cmd_filter *f, uint32_t cc);

/* The spec name of a command code ("PCR_Extend"), or NULL if it has none. */
const char *cmd_filter_name(uint32_t cc);
const char *cmd_verdict_text(enum cmd_verdict v);

#endif
