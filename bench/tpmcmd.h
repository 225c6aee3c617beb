/* bench/tpmcmd.h — TPM 2.0 command bytes shared by the benchmark programs.
 *
 * Header-only (static inline) so that each bench/NAME.c stays a single translation unit,
 * as the Makefile builds it. Commands follow TPM 2.0 Part 3; every integer is big-endian.
 * One builder per TPM operation, spec names for constants, and one response checker that
 * names the operation and decodes the response code when something goes wrong.
 */
#ifndef BENCH_TPMCMD_H
#define BENCH_TPMCMD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Part 2 constants used here. */
#define TPM_ST_NO_SESSIONS 0x8001u
#define TPM_ST_SESSIONS	   0x8002u
#define TPM_ST_HASHCHECK   0x8024u
#define TPM2_CC_NV_DEFINE  0x0000012Au
#define TPM2_CC_NV_WRITE   0x00000137u
#define TPM2_CC_STARTUP	   0x00000144u
#define TPM2_CC_GET_RANDOM 0x0000017Bu
#define TPM2_CC_HASH	   0x0000017Du
#define TPM2_CC_PCR_EXTEND 0x00000182u
#define TPM2_CC_PCR_READ   0x0000017Eu
#define TPM_ALG_SHA256	   0x000Bu
#define TPM_SU_CLEAR	   0x0000u
#define TPM_RH_OWNER	   0x40000001u
#define TPM_RH_NULL	   0x40000007u
#define TPM_RS_PW	   0x40000009u
#define TPM_RC_SUCCESS	   0x000u
#define TPM_RC_INITIALIZE  0x100u
#define TPM_RC_NV_DEFINED  0x14Cu
#define TPM_RC_RETRY	   0x922u
#define TPMA_NV_OWNERWRITE 0x00000002u
#define TPMA_NV_AUTHWRITE  0x00000004u
#define TPMA_NV_OWNERREAD  0x00020000u
#define TPMA_NV_AUTHREAD   0x00040000u

/* What the benchmarks use. */
#define BENCH_PCR	   16u	       /* debug PCR: extendable from locality 0, empty auth */
#define BENCH_NV_INDEX	   0x01500016u /* an ordinary owner-range index */
#define BENCH_NV_SIZE	   64u
#define BENCH_RANDOM_BYTES 16u
#define BENCH_HASH_BYTES   32u
#define TPMCMD_MAX	   256u /* every command built here fits */
#define TPM_RSP_HEADER	   10u

enum bench_cmd {
	CMD_GETRANDOM,
	CMD_EXTEND,
	CMD_HASH,
	CMD_NVWRITE,
	CMD_STARTUP,
	CMD_PCRREAD,
	CMD_NONE
};

static const char *const bench_cmd_names[] = {"getrandom", "extend",  "hash",
					      "nvwrite",   "startup", "pcrread"};
static const char *const bench_cmd_tpmname[] = {"TPM2_GetRandom", "TPM2_PCR_Extend",
						"TPM2_Hash",	  "TPM2_NV_Write",
						"TPM2_Startup",	  "TPM2_PCR_Read"};

static inline enum bench_cmd bench_cmd_parse(const char *s)
{
	for (int i = 0; i < (int)CMD_NONE; i++)
		if (strcmp(s, bench_cmd_names[i]) == 0)
			return (enum bench_cmd)i;
	return CMD_NONE;
}

/* A write cursor over a fixed buffer; overflow is a programming error caught by tb_end. */
struct tbuf {
	uint8_t b[TPMCMD_MAX];
	size_t len;
	int overflow;
};

static inline void tb_u8(struct tbuf *t, uint8_t v)
{
	if (t->len + 1 > sizeof(t->b)) {
		t->overflow = 1;
		return;
	}
	t->b[t->len++] = v;
}

static inline void tb_u16(struct tbuf *t, uint16_t v)
{
	tb_u8(t, (uint8_t)(v >> 8));
	tb_u8(t, (uint8_t)v);
}

static inline void tb_u32(struct tbuf *t, uint32_t v)
{
	tb_u16(t, (uint16_t)(v >> 16));
	tb_u16(t, (uint16_t)v);
}

static inline void tb_fill(struct tbuf *t, uint8_t byte, size_t n)
{
	while (n--)
		tb_u8(t, byte);
}

/* Command header: tag, commandSize (patched by tb_end), commandCode. */
static inline void tb_begin(struct tbuf *t, uint16_t tag, uint32_t cc)
{
	t->len = 0;
	t->overflow = 0;
	tb_u16(t, tag);
	tb_u32(t, 0);
	tb_u32(t, cc);
}

/* Authorization area with one password session and an empty password (Part 1, 19.8.4). */
static inline void tb_pw_session(struct tbuf *t)
{
	tb_u32(t, 4 + 2 + 1 + 2); /* authorizationSize */
	tb_u32(t, TPM_RS_PW);	  /* sessionHandle */
	tb_u16(t, 0);		  /* nonce: TPM2B, empty */
	tb_u8(t, 0);		  /* sessionAttributes */
	tb_u16(t, 0);		  /* hmac (the password): TPM2B, empty */
}

/* Returns the command size, or 0 if the buffer overflowed. */
static inline size_t tb_end(struct tbuf *t)
{
	if (t->overflow)
		return 0;
	uint32_t n = (uint32_t)t->len;
	t->b[2] = (uint8_t)(n >> 24);
	t->b[3] = (uint8_t)(n >> 16);
	t->b[4] = (uint8_t)(n >> 8);
	t->b[5] = (uint8_t)n;
	return t->len;
}

/* TPM2_Startup(TPM_SU_CLEAR). Response: header only. */
static inline size_t tpm2_startup_clear(struct tbuf *t)
{
	tb_begin(t, TPM_ST_NO_SESSIONS, TPM2_CC_STARTUP);
	tb_u16(t, TPM_SU_CLEAR);
	return tb_end(t);
}

/* TPM2_GetRandom(bytesRequested). Response: header, TPM2B_DIGEST randomBytes. */
static inline size_t tpm2_get_random(struct tbuf *t, uint16_t bytes)
{
	tb_begin(t, TPM_ST_NO_SESSIONS, TPM2_CC_GET_RANDOM);
	tb_u16(t, bytes);
	return tb_end(t);
}

/* TPM2_PCR_Extend(pcrHandle) {TPML_DIGEST_VALUES: 1 x sha256}, password session.
 * Response: header, parameterSize (0), response auth (nonce TPM2B, attributes, hmac TPM2B). */
static inline size_t tpm2_pcr_extend(struct tbuf *t, uint32_t pcr, uint8_t fill)
{
	tb_begin(t, TPM_ST_SESSIONS, TPM2_CC_PCR_EXTEND);
	tb_u32(t, pcr);
	tb_pw_session(t);
	tb_u32(t, 1); /* TPML_DIGEST_VALUES.count */
	tb_u16(t, TPM_ALG_SHA256);
	tb_fill(t, fill, 32);
	return tb_end(t);
}

/* TPM2_Hash(data, sha256, TPM_RH_NULL). Response: header, TPM2B_DIGEST outHash,
 * TPMT_TK_HASHCHECK {tag, hierarchy, TPM2B_DIGEST (empty for the NULL hierarchy)}. */
static inline size_t tpm2_hash(struct tbuf *t, uint16_t bytes, uint8_t fill)
{
	tb_begin(t, TPM_ST_NO_SESSIONS, TPM2_CC_HASH);
	tb_u16(t, bytes); /* TPM2B_MAX_BUFFER */
	tb_fill(t, fill, bytes);
	tb_u16(t, TPM_ALG_SHA256);
	tb_u32(t, TPM_RH_NULL);
	return tb_end(t);
}

/* TPM2_PCR_Read of one PCR in the SHA-256 bank. Response: header, pcrUpdateCounter,
 * TPML_PCR_SELECTION {count 1, sha256, sizeofSelect 3, 3 bytes}, TPML_DIGEST {count 1,
 * TPM2B_DIGEST of 32 bytes}. */
static inline size_t tpm2_pcr_read(struct tbuf *t, uint32_t pcr)
{
	tb_begin(t, TPM_ST_NO_SESSIONS, TPM2_CC_PCR_READ);
	tb_u32(t, 1); /* TPML_PCR_SELECTION.count */
	tb_u16(t, TPM_ALG_SHA256);
	tb_u8(t, 3); /* sizeofSelect: PCRs 0-23 */
	for (uint32_t i = 0; i < 3; i++)
		tb_u8(t, (uint8_t)(pcr / 8 == i ? 1u << (pcr % 8) : 0));
	return tb_end(t);
}

/* TPM2_NV_DefineSpace(TPM_RH_OWNER) with owner auth (empty password on a fresh TPM):
 * an ordinary index, sha256 name, read/write by owner or by the index's (empty) auth.
 * Response: as for PCR_Extend. */
static inline size_t tpm2_nv_define(struct tbuf *t, uint32_t index, uint16_t size)
{
	tb_begin(t, TPM_ST_SESSIONS, TPM2_CC_NV_DEFINE);
	tb_u32(t, TPM_RH_OWNER);
	tb_pw_session(t);
	tb_u16(t, 0);		      /* auth: TPM2B_AUTH, empty */
	tb_u16(t, 4 + 2 + 4 + 2 + 2); /* publicInfo: TPM2B_NV_PUBLIC.size */
	tb_u32(t, index);	      /* nvIndex */
	tb_u16(t, TPM_ALG_SHA256);    /* nameAlg */
	tb_u32(t, TPMA_NV_OWNERWRITE | TPMA_NV_AUTHWRITE | TPMA_NV_OWNERREAD |
		      TPMA_NV_AUTHREAD); /* attributes; TPM_NT_ORDINARY = 0 */
	tb_u16(t, 0);			 /* authPolicy: empty */
	tb_u16(t, size);		 /* dataSize */
	return tb_end(t);
}

/* TPM2_NV_Write(authHandle = nvIndex = index) of `bytes` bytes at offset 0, password session
 * with the index's empty auth. Response: as for PCR_Extend. */
static inline size_t tpm2_nv_write(struct tbuf *t, uint32_t index, uint16_t bytes, uint8_t fill)
{
	tb_begin(t, TPM_ST_SESSIONS, TPM2_CC_NV_WRITE);
	tb_u32(t, index); /* authHandle */
	tb_u32(t, index); /* nvIndex */
	tb_pw_session(t);
	tb_u16(t, bytes); /* TPM2B_MAX_NV_BUFFER */
	tb_fill(t, fill, bytes);
	tb_u16(t, 0); /* offset */
	return tb_end(t);
}

/* What a successful response to the loop command looks like. */
struct tpm_expect {
	uint16_t tag;
	uint32_t size;
};

/* Build the loop command `c` into t; fill in what its success response must look like. */
static inline size_t bench_build(enum bench_cmd c, struct tbuf *t, struct tpm_expect *e)
{
	switch (c) {
	case CMD_GETRANDOM:
		*e = (struct tpm_expect){TPM_ST_NO_SESSIONS, 10 + 2 + BENCH_RANDOM_BYTES};
		return tpm2_get_random(t, BENCH_RANDOM_BYTES);
	case CMD_EXTEND:
		*e = (struct tpm_expect){TPM_ST_SESSIONS, 10 + 4 + 5};
		return tpm2_pcr_extend(t, BENCH_PCR, 0xa5);
	case CMD_HASH:
		*e = (struct tpm_expect){TPM_ST_NO_SESSIONS, 10 + 2 + 32 + 2 + 4 + 2};
		return tpm2_hash(t, BENCH_HASH_BYTES, 0x5a);
	case CMD_NVWRITE:
		*e = (struct tpm_expect){TPM_ST_SESSIONS, 10 + 4 + 5};
		return tpm2_nv_write(t, BENCH_NV_INDEX, BENCH_NV_SIZE, 0x3c);
	case CMD_STARTUP:
		*e = (struct tpm_expect){TPM_ST_NO_SESSIONS, 10};
		return tpm2_startup_clear(t);
	case CMD_PCRREAD:
		*e = (struct tpm_expect){TPM_ST_NO_SESSIONS, 10 + 4 + 10 + 4 + 2 + 32};
		return tpm2_pcr_read(t, BENCH_PCR);
	case CMD_NONE:
		break;
	}
	return 0;
}

/* Offset of the data bytes in the command tpm2_nv_write builds: header 10, two handles 8,
 * authorizationSize 4, password session 9, TPM2B size 2. */
#define NV_WRITE_DATA_OFFSET (10u + 8u + 4u + 9u + 2u)

/* Make iteration i's command differ from the previous one where that matters: libtpms skips
 * the NV commit (and swtpm the state-file write) when NV_Write data equals what is stored, so
 * every NV_Write carries a fresh 64-bit counter in its first 8 data bytes. */
static inline void bench_vary(enum bench_cmd c, uint8_t *cmd, uint64_t i)
{
	if (c != CMD_NVWRITE)
		return;
	for (int k = 0; k < 8; k++)
		cmd[NV_WRITE_DATA_OFFSET + (unsigned)k] = (uint8_t)(i >> (56 - 8 * k));
}

static inline uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* Names of the TPM 2.0 response codes (Part 2, 6.6.3) a benchmark may plausibly meet. */
static inline const char *tpm_rc_name(uint32_t base)
{
	static const struct {
		uint32_t rc;
		const char *name;
	} names[] = {
	    {0x081, "TPM_RC_ASYMMETRIC"},
	    {0x082, "TPM_RC_ATTRIBUTES"},
	    {0x083, "TPM_RC_HASH"},
	    {0x084, "TPM_RC_VALUE"},
	    {0x085, "TPM_RC_HIERARCHY"},
	    {0x08B, "TPM_RC_HANDLE"},
	    {0x08E, "TPM_RC_AUTH_FAIL"},
	    {0x095, "TPM_RC_SIZE"},
	    {0x097, "TPM_RC_TAG"},
	    {0x09A, "TPM_RC_INSUFFICIENT"},
	    {0x0A2, "TPM_RC_BAD_AUTH"},
	    {0x100, "TPM_RC_INITIALIZE"},
	    {0x101, "TPM_RC_FAILURE"},
	    {0x103, "TPM_RC_SEQUENCE"},
	    {0x120, "TPM_RC_DISABLED"},
	    {0x124, "TPM_RC_AUTH_TYPE"},
	    {0x125, "TPM_RC_AUTH_MISSING"},
	    {0x127, "TPM_RC_PCR"},
	    {0x130, "TPM_RC_REBOOT"},
	    {0x142, "TPM_RC_COMMAND_SIZE"},
	    {0x143, "TPM_RC_COMMAND_CODE"},
	    {0x144, "TPM_RC_AUTHSIZE"},
	    {0x146, "TPM_RC_NV_RANGE"},
	    {0x147, "TPM_RC_NV_SIZE"},
	    {0x148, "TPM_RC_NV_LOCKED"},
	    {0x149, "TPM_RC_NV_AUTHORIZATION"},
	    {0x14A, "TPM_RC_NV_UNINITIALIZED"},
	    {0x14B, "TPM_RC_NV_SPACE"},
	    {0x14C, "TPM_RC_NV_DEFINED"},
	    {0x153, "TPM_RC_NEEDS_TEST"},
	    {0x904, "TPM_RC_MEMORY"},
	    {0x907, "TPM_RC_LOCALITY"},
	    {0x908, "TPM_RC_YIELDED"},
	    {0x909, "TPM_RC_CANCELED"},
	    {0x90A, "TPM_RC_TESTING"},
	    {0x920, "TPM_RC_NV_RATE"},
	    {0x921, "TPM_RC_LOCKOUT"},
	    {0x922, "TPM_RC_RETRY"},
	    {0x923, "TPM_RC_NV_UNAVAILABLE"},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].rc == base)
			return names[i].name;
	return "unknown response code";
}

/* Describe rc into buf: name, and for format-1 codes which handle/session/parameter. */
static inline const char *tpm_rc_describe(uint32_t rc, char *buf, size_t n)
{
	if (rc & 0x080) { /* format 1 */
		uint32_t base = 0x080 | (rc & 0x03f), num = (rc >> 8) & 0xf;
		const char *what = (rc & 0x040) ? "parameter" : (num & 0x8) ? "session" : "handle";
		if (!(rc & 0x040))
			num &= 0x7;
		if (num)
			snprintf(buf, n, "%s (%s %u)", tpm_rc_name(base), what, num);
		else
			snprintf(buf, n, "%s", tpm_rc_name(base));
	} else if (rc & 0x100) { /* format 0, TPM 2.0 (0x1xx errors, 0x9xx warnings) */
		snprintf(buf, n, "%s", tpm_rc_name(rc & 0xfff));
	} else {
		snprintf(buf, n, "TPM 1.2 error code %u", rc);
	}
	return buf;
}

/* Check a response: size field = bytes received, response code, tag and size as expected.
 * `ok_rc` is a second response code accepted as success (e.g. TPM_RC_INITIALIZE for a
 * repeated Startup); pass TPM_RC_SUCCESS for none. On failure write a precise message into
 * err and return -1; on success return the response code (0 or ok_rc). */
static inline long tpm_check_rsp(const char *op, const uint8_t *rsp, size_t len,
				 const struct tpm_expect *e, uint32_t ok_rc, char *err, size_t errn)
{
	char desc[96];
	if (len < TPM_RSP_HEADER) {
		snprintf(err, errn, "%s: response of %zu bytes is shorter than a TPM header", op,
			 len);
		return -1;
	}
	uint16_t tag = be16(rsp);
	uint32_t size = be32(rsp + 2), rc = be32(rsp + 6);
	if (size != len) {
		snprintf(err, errn, "%s: responseSize field says %u bytes, %zu were received", op,
			 size, len);
		return -1;
	}
	if (rc != TPM_RC_SUCCESS && rc != ok_rc) {
		snprintf(err, errn, "%s: response code 0x%03x: %s", op, rc,
			 tpm_rc_describe(rc, desc, sizeof(desc)));
		return -1;
	}
	if (rc != TPM_RC_SUCCESS) {
		if (tag != TPM_ST_NO_SESSIONS || size != TPM_RSP_HEADER) {
			snprintf(err, errn,
				 "%s: error response 0x%03x with tag 0x%04x and %u bytes "
				 "(expected tag 0x8001, 10 bytes)",
				 op, rc, tag, size);
			return -1;
		}
		return (long)rc;
	}
	if (tag != e->tag || size != e->size) {
		snprintf(err, errn,
			 "%s: success response with tag 0x%04x and %u bytes, expected tag 0x%04x "
			 "and %u bytes",
			 op, tag, size, e->tag, e->size);
		return -1;
	}
	return 0;
}

#endif
