/*
 * tests/guest/tpmcheck.c — tiny TPM 2.0 client for the test guest (built static into the
 * initramfs by scripts/guest-image). Talks to /dev/tpm0 (falling back to /dev/tpmrm0) with
 * hand-built TPM 2.0 commands (TPM 2.0 Part 3; all integers big-endian).
 *
 * tpmcheck version
 *	prints "TPM2" if a TPM 2.0 answers TPM2_GetCapability(TPM_PT_FAMILY_INDICATOR) with "2.0"
 * tpmcheck extend PCR HEXDIGEST32
 *	TPM2_PCR_Extend, SHA-256 bank, password session with empty auth (locality is QEMU's: 0)
 * tpmcheck read PCR
 *	TPM2_PCR_Read, SHA-256 bank; prints 64 lowercase hex digits
 * tpmcheck nvdefine INDEX SIZE
 *	TPM2_NV_DefineSpace under the owner hierarchy (empty owner auth, password session): an
 *	ordinary index of SIZE bytes, empty auth, OWNERWRITE|OWNERREAD|NO_DA, SHA-256 name alg
 * tpmcheck nvwrite INDEX VALUE
 *	TPM2_NV_Write (owner auth, password session) of VALUE (decimal, unsigned 64-bit) as 8 bytes
 *	big-endian at offset 0
 * tpmcheck nvread INDEX
 *	TPM2_NV_Read (owner auth, password session) of 8 bytes at offset 0; prints them as a
 *	big-endian unsigned decimal
 * tpmcheck changeauth
 *	TPM2_HierarchyChangeAuth of the owner hierarchy from empty to empty: a state write that
 *	Linux's TPM driver times out after 2 s (TPM_LONG), where it gives NV_Write 120 s
 * tpmcheck seal INDEX HEXDIGEST32
 *	seal a 32-byte secret to the current SHA-256 PCR 4: an NV index of 32 bytes whose reads
 *	need a policy session that passed TPM2_PolicyPCR(PCR 4) (the policy digest comes from a
 *	trial session), written with owner auth
 * tpmcheck unseal INDEX
 *	TPM2_PolicyPCR(PCR 4) in a policy session, then TPM2_NV_Read of the 32 bytes with it;
 *	prints them as hex, or fails (TPM_RC_POLICY_FAIL) when PCR 4 is not what it was
 * INDEX is an NV index handle, 0x01000000..0x01ffffff (hex with 0x, or decimal).
 *
 * Environment: TPM_DEVICE overrides the device path.
 * Exit status: 0 ok, 1 TPM or I/O error (message names the command and TPM response code), 2 usage.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TPM_ST_NO_SESSIONS	0x8001u
#define TPM_ST_SESSIONS		0x8002u
#define TPM_CC_PCR_EXTEND	0x00000182u
#define TPM_CC_PCR_READ		0x0000017Eu
#define TPM_CC_GET_CAPABILITY	0x0000017Au
#define TPM_CC_NV_DEFINE_SPACE	0x0000012Au
#define TPM_CC_NV_WRITE		0x00000137u
#define TPM_CC_NV_READ		0x0000014Eu
#define TPM_CC_HIER_CHANGE_AUTH 0x00000129u
#define TPM_CC_START_AUTH_SESS	0x00000176u
#define TPM_CC_POLICY_PCR	0x0000017Fu
#define TPM_CC_POLICY_GET_DIG	0x00000189u
#define TPM_CC_FLUSH_CONTEXT	0x00000165u
#define TPM_RH_NULL		0x40000007u
#define TPM_SE_POLICY		0x01u
#define TPM_SE_TRIAL		0x03u
#define TPM_ALG_NULL		0x0010u
#define TPMA_NV_POLICYREAD	(1u << 19)
#define SEAL_PCR		4
#define TPM_RH_OWNER		0x40000001u
#define TPMA_NV_OWNERWRITE	(1u << 1)
#define TPMA_NV_OWNERREAD	(1u << 17)
#define TPMA_NV_NO_DA		(1u << 25)
#define NV_INDEX_FIRST		0x01000000u
#define NV_INDEX_LAST		0x01FFFFFFu
#define NV_VALUE_SIZE		8    /* nvwrite / nvread: one big-endian u64 */
#define NV_MAX_SIZE		2048 /* nvdefine SIZE at most (the TPM may allow less) */
#define TPM_CAP_TPM_PROPERTIES	0x00000006u
#define TPM_PT_FAMILY_INDICATOR 0x00000100u
#define TPM_RS_PW		0x40000009u
#define TPM_ALG_SHA256		0x000Bu
#define SHA256_SIZE		32
#define PCR_COUNT		24
#define TPM_HEADER_SIZE		10
#define TPM_BUF_SIZE		4096

/* A command or response buffer with a cursor; every access is bounds-checked. */
struct buf {
	uint8_t data[TPM_BUF_SIZE];
	size_t len; /* bytes written (command) or received (response) */
	size_t pos; /* read position (response) */
	int bad;    /* set on overflow/underrun */
};

static void put_u8(struct buf *b, uint8_t v)
{
	if (b->len + 1 > sizeof b->data) {
		b->bad = 1;
		return;
	}
	b->data[b->len++] = v;
}
static void put_u16(struct buf *b, uint16_t v)
{
	put_u8(b, (uint8_t)(v >> 8));
	put_u8(b, (uint8_t)v);
}
static void put_u32(struct buf *b, uint32_t v)
{
	put_u16(b, (uint16_t)(v >> 16));
	put_u16(b, (uint16_t)v);
}
static void put_bytes(struct buf *b, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		put_u8(b, p[i]);
}
static uint8_t get_u8(struct buf *b)
{
	if (b->pos + 1 > b->len) {
		b->bad = 1;
		return 0;
	}
	return b->data[b->pos++];
}
static uint16_t get_u16(struct buf *b)
{
	uint16_t hi = get_u8(b);
	return (uint16_t)(hi << 8 | get_u8(b));
}
static uint32_t get_u32(struct buf *b)
{
	uint32_t hi = get_u16(b);
	return hi << 16 | get_u16(b);
}

/* Start a command: tag, size placeholder, command code. */
static void cmd_begin(struct buf *b, uint16_t tag, uint32_t cc)
{
	memset(b, 0, sizeof *b);
	put_u16(b, tag);
	put_u32(b, 0);
	put_u32(b, cc);
}
/* Patch the size field once the command is complete. */
static void cmd_end(struct buf *b)
{
	uint32_t n = (uint32_t)b->len;
	b->data[2] = (uint8_t)(n >> 24);
	b->data[3] = (uint8_t)(n >> 16);
	b->data[4] = (uint8_t)(n >> 8);
	b->data[5] = (uint8_t)n;
}

static const char *rc_name(uint32_t rc)
{
	switch (rc) {
	case 0x100:
		return "TPM_RC_INITIALIZE (TPM2_Startup not run)";
	case 0x101:
		return "TPM_RC_FAILURE";
	case 0x143:
		return "TPM_RC_COMMAND_CODE";
	case 0x921:
		return "TPM_RC_LOCKOUT";
	case 0x922:
		return "TPM_RC_RETRY";
	case 0x908:
		return "TPM_RC_YIELDED";
	case 0x907:
		return "TPM_RC_LOCALITY";
	case 0x98e:
		return "TPM_RC_AUTH_FAIL (session 1)";
	case 0x184:
		return "TPM_RC_VALUE (handle 1)";
	case 0x1c4:
		return "TPM_RC_VALUE (parameter 1)";
	case 0x18b:
		return "TPM_RC_HANDLE (handle 1)";
	case 0x28b:
		return "TPM_RC_HANDLE (handle 2: NV index not defined?)";
	case 0x146:
		return "TPM_RC_NV_RANGE";
	case 0x147:
		return "TPM_RC_NV_SIZE";
	case 0x148:
		return "TPM_RC_NV_LOCKED";
	case 0x149:
		return "TPM_RC_NV_AUTHORIZATION";
	case 0x14a:
		return "TPM_RC_NV_UNINITIALIZED (index never written)";
	case 0x14b:
		return "TPM_RC_NV_SPACE";
	case 0x14c:
		return "TPM_RC_NV_DEFINED";
	case 0x920:
		return "TPM_RC_NV_RATE";
	case 0x923:
		return "TPM_RC_NV_UNAVAILABLE";
	default:
		break;
	}
	if (rc & 0x80)
		return "format-1 error (see TPM 2.0 Part 2, TPM_RC)";
	return "error (see TPM 2.0 Part 2, TPM_RC)";
}

static int tpm_open(void)
{
	const char *env = getenv("TPM_DEVICE");
	const char *paths[] = {env, "/dev/tpm0", "/dev/tpmrm0"};
	int last_errno = ENOENT;
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		if (!paths[i])
			continue;
		int fd = open(paths[i], O_RDWR | O_CLOEXEC);
		if (fd >= 0)
			return fd;
		last_errno = errno;
		if (env) /* an explicit device: do not fall back */
			break;
	}
	fprintf(stderr, "tpmcheck: cannot open %s: %s\n", env ? env : "/dev/tpm0 or /dev/tpmrm0",
		strerror(last_errno));
	return -1;
}

/* Send cmd once, receive into rsp. Returns 0 if a whole response came back (*rc set), else
 * 1 (message printed). */
static int tpm_submit(const char *name, struct buf *cmd, struct buf *rsp, uint32_t *rc);

/* Send cmd, receive into rsp, check header; name is the operation for messages. A warning
 * that the command was not executed (TPM_RC_RETRY, YIELDED, TESTING) is resubmitted up to 5
 * times, as tpm2-tss's ESAPI does (Linux's driver has already resent it 8 times by then).
 * Returns 0 if the TPM answered TPM_RC_SUCCESS, else 1 (message printed). */
static int tpm_transact(const char *name, struct buf *cmd, struct buf *rsp, uint16_t want_tag)
{
	uint32_t rc = 0;
	int submissions = 0;

	if (cmd->bad) {
		fprintf(stderr, "tpmcheck: %s: command too large\n", name);
		return 1;
	}
	do {
		if (tpm_submit(name, cmd, rsp, &rc) != 0)
			return 1;
	} while ((rc == 0x922u || rc == 0x908u || rc == 0x90Au) && ++submissions <= 5);
	uint16_t tag = (uint16_t)(rsp->data[0] << 8 | rsp->data[1]);
	if (rc != 0) {
		fprintf(stderr, "tpmcheck: %s: TPM response code 0x%08x: %s (tag 0x%04x)\n", name,
			rc, rc_name(rc), tag);
		return 1;
	}
	if (tag != want_tag) {
		fprintf(stderr, "tpmcheck: %s: response tag 0x%04x, expected 0x%04x\n", name, tag,
			want_tag);
		return 1;
	}
	return 0;
}

static int tpm_submit(const char *name, struct buf *cmd, struct buf *rsp, uint32_t *rc)
{
	int fd = tpm_open();
	if (fd < 0)
		return 1;
	memset(rsp, 0, sizeof *rsp);
	ssize_t n = write(fd, cmd->data, cmd->len);
	if (n != (ssize_t)cmd->len) {
		fprintf(stderr, "tpmcheck: %s: write to TPM: %s\n", name,
			n < 0 ? strerror(errno) : "short write");
		close(fd);
		return 1;
	}
	n = read(fd, rsp->data, sizeof rsp->data);
	int err = errno;
	close(fd);
	if (n < 0) {
		fprintf(stderr, "tpmcheck: %s: read from TPM: %s\n", name, strerror(err));
		return 1;
	}
	rsp->len = (size_t)n;
	if (rsp->len < TPM_HEADER_SIZE) {
		fprintf(stderr, "tpmcheck: %s: short response (%zu bytes)\n", name, rsp->len);
		return 1;
	}
	(void)get_u16(rsp); /* the tag: checked by the caller once the code is final */
	uint32_t size = get_u32(rsp);
	*rc = get_u32(rsp);
	if (size != rsp->len) {
		fprintf(stderr, "tpmcheck: %s: response size field %u but %zu bytes received\n",
			name, size, rsp->len);
		return 1;
	}
	return 0;
}

static int parse_pcr(const char *s, uint32_t *pcr)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v >= PCR_COUNT) {
		fprintf(stderr, "tpmcheck: bad PCR index '%s' (0..%d)\n", s, PCR_COUNT - 1);
		return -1;
	}
	*pcr = (uint32_t)v;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int parse_digest(const char *s, uint8_t out[SHA256_SIZE])
{
	if (strlen(s) != 2 * SHA256_SIZE) {
		fprintf(stderr, "tpmcheck: digest must be %d hex digits\n", 2 * SHA256_SIZE);
		return -1;
	}
	for (int i = 0; i < SHA256_SIZE; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			fprintf(stderr, "tpmcheck: digest is not hex\n");
			return -1;
		}
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* Parse an unsigned number (base 0: decimal, or hex with 0x) of at most max. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	if (*s == '-' || *s == '\0')
		return -1;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_nv_index(const char *s, uint32_t *index)
{
	uint64_t v;
	if (parse_u64(s, NV_INDEX_LAST, &v) || v < NV_INDEX_FIRST) {
		fprintf(stderr, "tpmcheck: bad NV index '%s' (0x%08x..0x%08x)\n", s, NV_INDEX_FIRST,
			NV_INDEX_LAST);
		return -1;
	}
	*index = (uint32_t)v;
	return 0;
}

/* The authorization area of a command: one TPMS_AUTH_COMMAND, TPM_RS_PW with empty auth. */
static void put_pw_session(struct buf *b)
{
	put_u32(b, 9);	       /* authorizationSize */
	put_u32(b, TPM_RS_PW); /* sessionHandle */
	put_u16(b, 0);	       /* nonce: empty TPM2B */
	put_u8(b, 0x01);       /* sessionAttributes: continueSession */
	put_u16(b, 0);	       /* hmac (password): empty TPM2B */
}

/* The rest of a TPM_ST_SESSIONS response after the header: parameterSize, then that many
 * parameter bytes (left at rsp->pos), then one password-session TPMS_AUTH_RESPONSE (nonce,
 * attributes, hmac: 5 bytes when all empty). Returns the parameter size, or -1 (message
 * printed) if the sizes do not add up. */
static long session_params(const char *name, struct buf *rsp)
{
	uint32_t psize = get_u32(rsp);
	if (rsp->bad || psize > rsp->len - rsp->pos || rsp->len - rsp->pos - psize < 5) {
		fprintf(stderr, "tpmcheck: %s: malformed response (parameterSize %u, %zu bytes)\n",
			name, psize, rsp->len);
		return -1;
	}
	return (long)psize;
}

/* TPM2_GetCapability(TPM_CAP_TPM_PROPERTIES, TPM_PT_FAMILY_INDICATOR, 1) */
static int cmd_version(void)
{
	struct buf cmd, rsp;
	cmd_begin(&cmd, TPM_ST_NO_SESSIONS, TPM_CC_GET_CAPABILITY);
	put_u32(&cmd, TPM_CAP_TPM_PROPERTIES);
	put_u32(&cmd, TPM_PT_FAMILY_INDICATOR);
	put_u32(&cmd, 1); /* propertyCount */
	cmd_end(&cmd);
	if (tpm_transact("TPM2_GetCapability", &cmd, &rsp, TPM_ST_NO_SESSIONS))
		return 1;
	(void)get_u8(&rsp); /* moreData */
	uint32_t cap = get_u32(&rsp);
	uint32_t count = get_u32(&rsp);
	uint32_t prop = get_u32(&rsp);
	uint32_t value = get_u32(&rsp);
	if (rsp.bad || cap != TPM_CAP_TPM_PROPERTIES || count < 1 ||
	    prop != TPM_PT_FAMILY_INDICATOR) {
		fprintf(stderr,
			"tpmcheck: TPM2_GetCapability: malformed response (cap 0x%x count %u prop "
			"0x%x)\n",
			cap, count, prop);
		return 1;
	}
	if (value != 0x322E3000u) { /* "2.0\0" */
		fprintf(stderr,
			"tpmcheck: TPM2_GetCapability: family indicator 0x%08x, not \"2.0\"\n",
			value);
		return 1;
	}
	printf("TPM2\n");
	return 0;
}

/* TPM2_PCR_Extend(pcrHandle) with one TPMS_AUTH_COMMAND (TPM_RS_PW, empty auth) and one SHA-256
 * digest in the TPML_DIGEST_VALUES. */
static int cmd_extend(uint32_t pcr, const uint8_t digest[SHA256_SIZE])
{
	struct buf cmd, rsp;
	cmd_begin(&cmd, TPM_ST_SESSIONS, TPM_CC_PCR_EXTEND);
	put_u32(&cmd, pcr); /* @pcrHandle (TPM_HT_PCR handles are the PCR index) */
	put_pw_session(&cmd);
	put_u32(&cmd, 1); /* TPML_DIGEST_VALUES.count */
	put_u16(&cmd, TPM_ALG_SHA256);
	put_bytes(&cmd, digest, SHA256_SIZE);
	cmd_end(&cmd);
	if (tpm_transact("TPM2_PCR_Extend", &cmd, &rsp, TPM_ST_SESSIONS))
		return 1;
	uint32_t param_size = get_u32(&rsp);
	if (rsp.bad || param_size != 0) {
		fprintf(stderr, "tpmcheck: TPM2_PCR_Extend: malformed response\n");
		return 1;
	}
	return 0;
}

/* TPM2_PCR_Read of one SHA-256 PCR. */
static int cmd_read(uint32_t pcr)
{
	struct buf cmd, rsp;
	cmd_begin(&cmd, TPM_ST_NO_SESSIONS, TPM_CC_PCR_READ);
	put_u32(&cmd, 1); /* TPML_PCR_SELECTION.count */
	put_u16(&cmd, TPM_ALG_SHA256);
	put_u8(&cmd, 3); /* sizeofSelect */
	for (uint32_t i = 0; i < 3; i++)
		put_u8(&cmd, i == pcr / 8 ? (uint8_t)(1u << (pcr % 8)) : 0);
	cmd_end(&cmd);
	if (tpm_transact("TPM2_PCR_Read", &cmd, &rsp, TPM_ST_NO_SESSIONS))
		return 1;
	(void)get_u32(&rsp); /* pcrUpdateCounter */
	uint32_t nsel = get_u32(&rsp);
	uint16_t alg = 0;
	uint8_t sel[8] = {0}, selsize = 0;
	for (uint32_t i = 0; i < nsel && !rsp.bad && i < 16; i++) {
		alg = get_u16(&rsp);
		selsize = get_u8(&rsp);
		for (uint8_t j = 0; j < selsize; j++) {
			uint8_t v = get_u8(&rsp);
			if (j < sizeof sel)
				sel[j] = v;
		}
	}
	uint32_t ndig = get_u32(&rsp);
	uint16_t dsize = get_u16(&rsp);
	uint8_t digest[SHA256_SIZE];
	for (int i = 0; i < SHA256_SIZE; i++)
		digest[i] = get_u8(&rsp);
	if (rsp.bad || nsel != 1 || alg != TPM_ALG_SHA256 || selsize < 3) {
		fprintf(stderr, "tpmcheck: TPM2_PCR_Read: malformed response\n");
		return 1;
	}
	if (!(sel[pcr / 8] & (1u << (pcr % 8))) || ndig != 1) {
		fprintf(stderr,
			"tpmcheck: TPM2_PCR_Read: PCR %u of the SHA-256 bank not returned "
			"(bank not allocated?)\n",
			pcr);
		return 1;
	}
	if (dsize != SHA256_SIZE) {
		fprintf(stderr, "tpmcheck: TPM2_PCR_Read: digest size %u, expected %d\n", dsize,
			SHA256_SIZE);
		return 1;
	}
	for (int i = 0; i < SHA256_SIZE; i++)
		printf("%02x", digest[i]);
	printf("\n");
	return 0;
}

/* TPM2_NV_DefineSpace(TPM_RH_OWNER, auth = empty, publicInfo): an ordinary index. */
static int cmd_nvdefine(uint32_t index, uint16_t size)
{
	struct buf cmd, rsp;
	cmd_begin(&cmd, TPM_ST_SESSIONS, TPM_CC_NV_DEFINE_SPACE);
	put_u32(&cmd, TPM_RH_OWNER); /* @authHandle */
	put_pw_session(&cmd);
	put_u16(&cmd, 0);	       /* TPM2B_AUTH auth: empty */
	put_u16(&cmd, 14);	       /* TPM2B_NV_PUBLIC size: 4 + 2 + 4 + 2 + 2 */
	put_u32(&cmd, index);	       /* nvIndex */
	put_u16(&cmd, TPM_ALG_SHA256); /* nameAlg */
	put_u32(&cmd, TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD | TPMA_NV_NO_DA); /* TPM_NT_ORDINARY */
	put_u16(&cmd, 0);    /* authPolicy: empty */
	put_u16(&cmd, size); /* dataSize */
	cmd_end(&cmd);
	if (tpm_transact("TPM2_NV_DefineSpace", &cmd, &rsp, TPM_ST_SESSIONS))
		return 1;
	long n = session_params("TPM2_NV_DefineSpace", &rsp);
	if (n < 0)
		return 1;
	if (n != 0) {
		fprintf(stderr, "tpmcheck: TPM2_NV_DefineSpace: %ld parameter bytes (want 0)\n", n);
		return 1;
	}
	return 0;
}

/* TPM2_NV_Write(TPM_RH_OWNER, index, data = value as 8 bytes big-endian, offset 0). */
static int cmd_nvwrite(uint32_t index, uint64_t value)
{
	struct buf cmd, rsp;
	cmd_begin(&cmd, TPM_ST_SESSIONS, TPM_CC_NV_WRITE);
	put_u32(&cmd, TPM_RH_OWNER); /* @authHandle */
	put_u32(&cmd, index);	     /* nvIndex */
	put_pw_session(&cmd);
	put_u16(&cmd, NV_VALUE_SIZE); /* TPM2B_MAX_NV_BUFFER data */
	put_u32(&cmd, (uint32_t)(value >> 32));
	put_u32(&cmd, (uint32_t)value);
	put_u16(&cmd, 0); /* offset */
	cmd_end(&cmd);
	if (tpm_transact("TPM2_NV_Write", &cmd, &rsp, TPM_ST_SESSIONS))
		return 1;
	long n = session_params("TPM2_NV_Write", &rsp);
	if (n < 0)
		return 1;
	if (n != 0) {
		fprintf(stderr, "tpmcheck: TPM2_NV_Write: %ld parameter bytes (want 0)\n", n);
		return 1;
	}
	return 0;
}

/* TPM2_NV_Read(TPM_RH_OWNER, index, size 8, offset 0); prints the value in decimal. */
static int cmd_nvread(uint32_t index)
{
	struct buf cmd, rsp;
	cmd_begin(&cmd, TPM_ST_SESSIONS, TPM_CC_NV_READ);
	put_u32(&cmd, TPM_RH_OWNER); /* @authHandle */
	put_u32(&cmd, index);	     /* nvIndex */
	put_pw_session(&cmd);
	put_u16(&cmd, NV_VALUE_SIZE); /* size */
	put_u16(&cmd, 0);	      /* offset */
	cmd_end(&cmd);
	if (tpm_transact("TPM2_NV_Read", &cmd, &rsp, TPM_ST_SESSIONS))
		return 1;
	long n = session_params("TPM2_NV_Read", &rsp);
	if (n < 0)
		return 1;
	uint16_t dsize = get_u16(&rsp);
	uint64_t hi = get_u32(&rsp);
	uint64_t v = hi << 32 | get_u32(&rsp);
	if (rsp.bad || n != 2 + NV_VALUE_SIZE || dsize != NV_VALUE_SIZE) {
		fprintf(stderr,
			"tpmcheck: TPM2_NV_Read: %ld parameter bytes with a %u-byte buffer (want "
			"%d)\n",
			n, dsize, NV_VALUE_SIZE);
		return 1;
	}
	printf("%llu\n", (unsigned long long)v);
	return 0;
}

/* TPM2_HierarchyChangeAuth(TPM_RH_OWNER, newAuth = empty): owner auth stays empty. */
static int cmd_changeauth(void)
{
	struct buf cmd, rsp;
	cmd_begin(&cmd, TPM_ST_SESSIONS, TPM_CC_HIER_CHANGE_AUTH);
	put_u32(&cmd, TPM_RH_OWNER); /* @authHandle */
	put_pw_session(&cmd);
	put_u16(&cmd, 0); /* TPM2B_AUTH newAuth: empty */
	cmd_end(&cmd);
	if (tpm_transact("TPM2_HierarchyChangeAuth", &cmd, &rsp, TPM_ST_SESSIONS))
		return 1;
	long n = session_params("TPM2_HierarchyChangeAuth", &rsp);
	if (n < 0)
		return 1;
	if (n != 0) {
		fprintf(stderr,
			"tpmcheck: TPM2_HierarchyChangeAuth: %ld parameter bytes (want 0)\n", n);
		return 1;
	}
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: tpmcheck version | extend PCR HEXDIGEST32 | read PCR | nvdefine "
			"INDEX SIZE | nvwrite INDEX VALUE | nvread INDEX | changeauth | seal INDEX "
			"HEXDIGEST32 | unseal INDEX\n");
	return 2;
}

/* A policy (or trial) session with TPM2_PolicyPCR(SHA-256 PCR 4) passed; its handle. */
static int policy_pcr4(uint8_t type, uint32_t *session)
{
	struct buf cmd, rsp;
	uint8_t nonce[16] = {0x76, 0x74, 0x70, 0x6d};
	cmd_begin(&cmd, TPM_ST_NO_SESSIONS, TPM_CC_START_AUTH_SESS);
	put_u32(&cmd, TPM_RH_NULL); /* tpmKey */
	put_u32(&cmd, TPM_RH_NULL); /* bind */
	put_u16(&cmd, sizeof nonce);
	put_bytes(&cmd, nonce, sizeof nonce); /* nonceCaller */
	put_u16(&cmd, 0);		      /* encryptedSalt */
	put_u8(&cmd, type);		      /* sessionType */
	put_u16(&cmd, TPM_ALG_NULL);	      /* symmetric */
	put_u16(&cmd, TPM_ALG_SHA256);	      /* authHash */
	cmd_end(&cmd);
	if (tpm_transact("TPM2_StartAuthSession", &cmd, &rsp, TPM_ST_NO_SESSIONS))
		return 1;
	*session = get_u32(&rsp);
	if (rsp.bad)
		return 1;
	cmd_begin(&cmd, TPM_ST_NO_SESSIONS, TPM_CC_POLICY_PCR);
	put_u32(&cmd, *session);
	put_u16(&cmd, 0);	       /* pcrDigest: empty, the TPM uses the current values */
	put_u32(&cmd, 1);	       /* TPML_PCR_SELECTION count */
	put_u16(&cmd, TPM_ALG_SHA256); /* hash */
	put_u8(&cmd, 3);	       /* sizeofSelect */
	put_u8(&cmd, 1u << SEAL_PCR);
	put_u8(&cmd, 0);
	put_u8(&cmd, 0);
	cmd_end(&cmd);
	return tpm_transact("TPM2_PolicyPCR", &cmd, &rsp, TPM_ST_NO_SESSIONS);
}

static void flush(uint32_t handle)
{
	struct buf cmd, rsp;
	cmd_begin(&cmd, TPM_ST_NO_SESSIONS, TPM_CC_FLUSH_CONTEXT);
	put_u32(&cmd, handle);
	cmd_end(&cmd);
	(void)tpm_transact("TPM2_FlushContext", &cmd, &rsp, TPM_ST_NO_SESSIONS);
}

static int cmd_seal(uint32_t index, const uint8_t secret[SHA256_SIZE])
{
	struct buf cmd, rsp;
	uint8_t policy[SHA256_SIZE];
	uint32_t trial;
	if (policy_pcr4(TPM_SE_TRIAL, &trial))
		return 1;
	cmd_begin(&cmd, TPM_ST_NO_SESSIONS, TPM_CC_POLICY_GET_DIG);
	put_u32(&cmd, trial);
	cmd_end(&cmd);
	int bad = tpm_transact("TPM2_PolicyGetDigest", &cmd, &rsp, TPM_ST_NO_SESSIONS);
	flush(trial);
	if (bad || get_u16(&rsp) != SHA256_SIZE)
		return 1;
	for (size_t i = 0; i < SHA256_SIZE; i++)
		policy[i] = get_u8(&rsp);
	if (rsp.bad)
		return 1;
	cmd_begin(&cmd, TPM_ST_SESSIONS, TPM_CC_NV_DEFINE_SPACE);
	put_u32(&cmd, TPM_RH_OWNER);
	put_pw_session(&cmd);
	put_u16(&cmd, 0);			  /* auth: empty */
	put_u16(&cmd, 4 + 2 + 4 + 2 + 32 + 2);	  /* TPM2B_NV_PUBLIC size */
	put_u32(&cmd, index);
	put_u16(&cmd, TPM_ALG_SHA256);
	put_u32(&cmd, TPMA_NV_OWNERWRITE | TPMA_NV_POLICYREAD | TPMA_NV_NO_DA);
	put_u16(&cmd, SHA256_SIZE);		  /* authPolicy: PolicyPCR(PCR 4 as now) */
	put_bytes(&cmd, policy, SHA256_SIZE);
	put_u16(&cmd, SHA256_SIZE);		  /* dataSize */
	cmd_end(&cmd);
	if (tpm_transact("TPM2_NV_DefineSpace", &cmd, &rsp, TPM_ST_SESSIONS))
		return 1;
	cmd_begin(&cmd, TPM_ST_SESSIONS, TPM_CC_NV_WRITE);
	put_u32(&cmd, TPM_RH_OWNER);
	put_u32(&cmd, index);
	put_pw_session(&cmd);
	put_u16(&cmd, SHA256_SIZE);
	put_bytes(&cmd, secret, SHA256_SIZE);
	put_u16(&cmd, 0); /* offset */
	cmd_end(&cmd);
	return tpm_transact("TPM2_NV_Write", &cmd, &rsp, TPM_ST_SESSIONS);
}

static int cmd_unseal(uint32_t index)
{
	struct buf cmd, rsp;
	uint8_t nonce[16] = {0x67, 0x75, 0x65, 0x73, 0x74};
	uint32_t session;
	if (policy_pcr4(TPM_SE_POLICY, &session))
		return 1;
	cmd_begin(&cmd, TPM_ST_SESSIONS, TPM_CC_NV_READ);
	put_u32(&cmd, index); /* @authHandle: the index itself, by its policy */
	put_u32(&cmd, index);
	put_u32(&cmd, 4 + 2 + sizeof nonce + 1 + 2); /* authorizationSize */
	put_u32(&cmd, session);
	put_u16(&cmd, sizeof nonce);
	put_bytes(&cmd, nonce, sizeof nonce);
	put_u8(&cmd, 0); /* sessionAttributes: the session ends with the command */
	put_u16(&cmd, 0); /* hmac: none (no PolicyAuthValue) */
	put_u16(&cmd, SHA256_SIZE);
	put_u16(&cmd, 0);
	cmd_end(&cmd);
	if (tpm_transact("TPM2_NV_Read", &cmd, &rsp, TPM_ST_SESSIONS)) {
		flush(session);
		return 1;
	}
	long n = session_params("TPM2_NV_Read", &rsp);
	if (n != 2 + SHA256_SIZE || get_u16(&rsp) != SHA256_SIZE)
		return 1;
	for (size_t i = 0; i < SHA256_SIZE; i++)
		printf("%02x", get_u8(&rsp));
	printf("\n");
	return rsp.bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	uint32_t pcr, index;
	uint8_t digest[SHA256_SIZE];
	if (argc == 2 && strcmp(argv[1], "version") == 0)
		return cmd_version();
	if (argc == 2 && strcmp(argv[1], "changeauth") == 0)
		return cmd_changeauth();
	if (argc == 4 && strcmp(argv[1], "extend") == 0) {
		if (parse_pcr(argv[2], &pcr) || parse_digest(argv[3], digest))
			return 2;
		return cmd_extend(pcr, digest);
	}
	if (argc == 3 && strcmp(argv[1], "read") == 0) {
		if (parse_pcr(argv[2], &pcr))
			return 2;
		return cmd_read(pcr);
	}
	if (argc == 4 && strcmp(argv[1], "nvdefine") == 0) {
		uint64_t size;
		if (parse_nv_index(argv[2], &index))
			return 2;
		if (parse_u64(argv[3], NV_MAX_SIZE, &size) || size == 0) {
			fprintf(stderr, "tpmcheck: bad NV size '%s' (1..%d)\n", argv[3],
				NV_MAX_SIZE);
			return 2;
		}
		return cmd_nvdefine(index, (uint16_t)size);
	}
	if (argc == 4 && strcmp(argv[1], "nvwrite") == 0) {
		uint64_t value;
		if (parse_nv_index(argv[2], &index))
			return 2;
		if (parse_u64(argv[3], UINT64_MAX, &value)) {
			fprintf(stderr, "tpmcheck: bad value '%s' (unsigned 64-bit)\n", argv[3]);
			return 2;
		}
		return cmd_nvwrite(index, value);
	}
	if (argc == 4 && strcmp(argv[1], "seal") == 0) {
		if (parse_nv_index(argv[2], &index) || parse_digest(argv[3], digest))
			return 2;
		return cmd_seal(index, digest);
	}
	if (argc == 3 && strcmp(argv[1], "unseal") == 0) {
		if (parse_nv_index(argv[2], &index))
			return 2;
		return cmd_unseal(index);
	}
	if (argc == 3 && strcmp(argv[1], "nvread") == 0) {
		if (parse_nv_index(argv[2], &index))
			return 2;
		return cmd_nvread(index);
	}
	return usage();
}
