/*
 * host_tpm_check — drive src/vtpmmgrd/host_tpm against a TPM reached through a TCTI string
 * (in the tests: a real swtpm standing in for the host TPM).
 *
 * Usage: host_tpm_check [-v] TCTI COMMAND [ARGS...]
 *   seal MASK SECRETHEX OUTFILE   seal the secret (1..128 bytes) to the SHA-256 PCRs in MASK
 *                                 (bit i = PCR i), write the blob to OUTFILE
 *   unseal INFILE                 print the secret as hex; on a PCR mismatch exit 3 and print
 *                                 "differ=0x..." (the mask of differing PCRs) on stdout
 *   pcrread MASK                  print "PCR: hex" per PCR in MASK
 *   extend PCR HEX                TPM2_PCR_Extend of SHA-256 PCR with the 32-byte HEX digest
 *   counter-define IDX            define an NV counter (owner range 0x01000000-0x013fffff)
 *   counter-undefine IDX          undefine it
 *   counter-inc IDX               increment, print the new value (decimal)
 *   counter-read IDX              print the value (decimal; a fresh counter is incremented once)
 *   akpub OUTFILE.der             write the attestation key's DER SubjectPublicKeyInfo, print
 *                                 its TPM name as hex
 *   policy-trial POLICY KEY.der   the digests of the signed policy file POLICY computed by the
 *                                 TPM in a trial session (PolicyPCR, PolicyNV; then
 *                                 PolicyAuthorize with the DER public key KEY.der) and the
 *                                 key's TPM name, each compared with host_policy's software
 *                                 computation: prints "approved ok|MISMATCH", "name ...",
 *                                 "authorize ..."; exit 2 on a mismatch
 *   count                         open, do nothing, print the number of TPM commands sent
 *   bench N MASK IDX              time N seals, N unseals (of one blob), N counter increments
 *                                 of the (defined) counter IDX; print ms per operation and
 *                                 host TPM commands per operation
 *   -v  after the command, print "commands: N" (TPM commands sent) on stderr
 * TCTI: a tpm2-tss TCTI string, e.g. swtpm:host=127.0.0.1,port=2321 or device:/dev/tpmrm0.
 *
 * Exit status: 0 ok; 1 usage; 2 TPM or other error; 3 PCRs differ from the sealed state;
 * 4 NV index already defined; 5 malformed blob; 6 NV index not defined.
 * Errors go to stderr prefixed "host_tpm_check: ", followed by host_tpm's message.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "vtpmmgrd/host_policy.h"
#include "vtpmmgrd/host_tpm.h"

enum {
	EXIT_OK = 0,
	EXIT_USAGE = 1,
	EXIT_ERR = 2,
	EXIT_PCR = 3,
	EXIT_EXISTS = 4,
	EXIT_FORMAT = 5,
	EXIT_NOENT = 6,
};

#define MAX_BLOB (64 * 1024)

static void usage(void)
{
	fprintf(stderr, "usage: host_tpm_check [-v] TCTI seal MASK SECRETHEX OUTFILE\n"
			"       host_tpm_check [-v] TCTI unseal INFILE\n"
			"       host_tpm_check [-v] TCTI pcrread MASK\n"
			"       host_tpm_check [-v] TCTI extend PCR HEX\n"
			"       host_tpm_check [-v] TCTI counter-define|counter-undefine IDX\n"
			"       host_tpm_check [-v] TCTI counter-inc|counter-read IDX\n"
			"       host_tpm_check [-v] TCTI akpub OUTFILE.der\n"
			"       host_tpm_check [-v] TCTI count\n"
			"       host_tpm_check [-v] TCTI bench N MASK IDX\n");
}

static int exit_code(int ret)
{
	switch (ret) {
	case HOST_TPM_OK:
		return EXIT_OK;
	case HOST_TPM_ERR_PCR:
		return EXIT_PCR;
	case HOST_TPM_ERR_EXISTS:
		return EXIT_EXISTS;
	case HOST_TPM_ERR_FORMAT:
		return EXIT_FORMAT;
	case HOST_TPM_ERR_NOENT:
		return EXIT_NOENT;
	default:
		return EXIT_ERR;
	}
}

static int fail(int ret, const char *err)
{
	fprintf(stderr, "host_tpm_check: %s\n", err);
	return exit_code(ret);
}

static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || v > max)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Hex string to bytes; returns the length or -1. */
static long parse_hex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = strlen(s), i;
	int hi, lo;

	if (n % 2 || n / 2 > cap)
		return -1;
	for (i = 0; i < n / 2; i++) {
		hi = nibble(s[2 * i]);
		lo = nibble(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return (long)(n / 2);
}

static void print_hex(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		printf("%02x", p[i]);
	printf("\n");
}

static int write_file(const char *path, const uint8_t *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	if (!f || fwrite(p, 1, n, f) != n) {
		if (f)
			fclose(f);
		fprintf(stderr, "host_tpm_check: cannot write %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fclose(f) != 0) {
		fprintf(stderr, "host_tpm_check: cannot write %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Reads at most MAX_BLOB bytes (a longer file is passed on truncated+1, so it is refused). */
static int read_file(const char *path, uint8_t *buf, size_t cap, size_t *n)
{
	FILE *f = fopen(path, "rb");

	if (!f) {
		fprintf(stderr, "host_tpm_check: cannot read %s: %s\n", path, strerror(errno));
		return -1;
	}
	*n = fread(buf, 1, cap, f);
	if (ferror(f)) {
		fclose(f);
		fprintf(stderr, "host_tpm_check: cannot read %s\n", path);
		return -1;
	}
	fclose(f);
	return 0;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmd_seal(struct host_tpm *h, char **argv, char *err, size_t errlen)
{
	uint8_t secret[2 * HOST_TPM_SECRET_MAX]; /* longer than allowed: host_tpm_seal refuses */
	uint8_t *blob = NULL;
	size_t blob_len;
	uint32_t mask;
	long n;
	int ret;

	if (parse_u32(argv[0], 0xffffffffu, &mask) < 0) {
		fprintf(stderr, "host_tpm_check: bad mask '%s'\n", argv[0]);
		return EXIT_USAGE;
	}
	n = parse_hex(argv[1], secret, sizeof(secret));
	if (n < 0) {
		fprintf(stderr, "host_tpm_check: bad secret hex (at most %d bytes)\n",
			2 * HOST_TPM_SECRET_MAX);
		return EXIT_USAGE;
	}
	ret = host_tpm_seal(h, secret, (size_t)n, mask, &blob, &blob_len, err, errlen);
	OPENSSL_cleanse(secret, sizeof(secret));
	if (ret)
		return fail(ret, err);
	ret = write_file(argv[2], blob, blob_len) ? EXIT_ERR : EXIT_OK;
	free(blob);
	return ret;
}

static void verdict(const char *what, const uint8_t *tpm, const uint8_t *soft, size_t n, int *bad)
{
	int same = memcmp(tpm, soft, n) == 0;

	printf("%s %s tpm=", what, same ? "ok" : "MISMATCH");
	for (size_t i = 0; i < n; i++)
		printf("%02x", tpm[i]);
	printf(" software=");
	for (size_t i = 0; i < n; i++)
		printf("%02x", soft[i]);
	printf("\n");
	*bad |= !same;
}

static int cmd_policy_trial(struct host_tpm *h, char **argv, char *err, size_t errlen)
{
	static uint8_t buf[MAX_BLOB + 1], der[MAX_BLOB + 1];
	uint8_t approved[32], auth[32], soft_auth[32], name[HOST_TPM_NAME_MAX];
	uint8_t soft_name[HOST_POLICY_NAME_LEN];
	size_t n, der_len, name_len;
	struct host_policy p;
	TPM2B_PUBLIC pub;
	char desc[16];
	int ret, bad = 0;

	if (read_file(argv[0], buf, sizeof(buf), &n) ||
	    read_file(argv[1], der, sizeof(der), &der_len))
		return EXIT_ERR;
	if (host_policy_parse(buf, n, &p, err, errlen) < 0 ||
	    host_policy_key_public(der, der_len, &pub, desc, sizeof(desc), err, errlen) < 0)
		return fail(HOST_TPM_ERR_FORMAT, err);
	ret = host_tpm_policy_trial(h, &p, &pub, approved, auth, name, &name_len, err, errlen);
	if (ret)
		return fail(ret, err);
	if (host_policy_key_name(&pub, soft_name) < 0 ||
	    host_policy_authorize_digest(soft_name, sizeof(soft_name), soft_auth) < 0)
		return fail(HOST_TPM_ERR_TPM, "software digest failed");
	verdict("approved", approved, p.approved, 32, &bad);
	if (name_len != sizeof(soft_name)) {
		printf("name MISMATCH (%zu bytes)\n", name_len);
		bad = 1;
	} else {
		verdict("name", name, soft_name, sizeof(soft_name), &bad);
	}
	verdict("authorize", auth, soft_auth, 32, &bad);
	return bad ? EXIT_ERR : EXIT_OK;
}

static int cmd_unseal(struct host_tpm *h, char **argv, char *err, size_t errlen)
{
	static uint8_t blob[MAX_BLOB + 1];
	uint8_t secret[HOST_TPM_SECRET_MAX];
	size_t blob_len, len;
	uint32_t differ;
	int ret;

	if (read_file(argv[0], blob, sizeof(blob), &blob_len))
		return EXIT_ERR;
	ret =
	    host_tpm_unseal(h, blob, blob_len, secret, sizeof(secret), &len, &differ, err, errlen);
	if (ret == HOST_TPM_ERR_PCR)
		printf("differ=0x%x\n", differ);
	if (ret)
		return fail(ret, err);
	print_hex(secret, len);
	OPENSSL_cleanse(secret, sizeof(secret));
	return EXIT_OK;
}

static int cmd_pcrread(struct host_tpm *h, char **argv, char *err, size_t errlen)
{
	uint8_t values[24][32];
	uint32_t mask;
	unsigned i;
	int ret;

	if (parse_u32(argv[0], 0xffffffffu, &mask) < 0) {
		fprintf(stderr, "host_tpm_check: bad mask '%s'\n", argv[0]);
		return EXIT_USAGE;
	}
	ret = host_tpm_pcr_read(h, mask, values, err, errlen);
	if (ret)
		return fail(ret, err);
	for (i = 0; i < 24; i++) {
		if (!(mask & (1u << i)))
			continue;
		printf("%u: ", i);
		print_hex(values[i], 32);
	}
	return EXIT_OK;
}

static int cmd_extend(struct host_tpm *h, char **argv, char *err, size_t errlen)
{
	uint8_t digest[32];
	uint32_t pcr;
	int ret;

	if (parse_u32(argv[0], 0xffffffffu, &pcr) < 0 || parse_hex(argv[1], digest, 32) != 32) {
		fprintf(stderr, "host_tpm_check: want PCR and a 32-byte hex digest\n");
		return EXIT_USAGE;
	}
	ret = host_tpm_pcr_extend(h, pcr, digest, err, errlen);
	return ret ? fail(ret, err) : EXIT_OK;
}

static int cmd_counter(struct host_tpm *h, const char *cmd, char **argv, char *err, size_t errlen)
{
	uint32_t idx;
	uint64_t value = 0;
	int ret;

	if (parse_u32(argv[0], 0xffffffffu, &idx) < 0) {
		fprintf(stderr, "host_tpm_check: bad NV index '%s'\n", argv[0]);
		return EXIT_USAGE;
	}
	if (!strcmp(cmd, "counter-define"))
		ret = host_tpm_counter_define(h, idx, 0, err, errlen);
	else if (!strcmp(cmd, "counter-undefine"))
		ret = host_tpm_counter_undefine(h, idx, err, errlen);
	else if (!strcmp(cmd, "counter-inc"))
		ret = host_tpm_counter_increment(h, idx, &value, err, errlen);
	else
		ret = host_tpm_counter_read(h, idx, &value, err, errlen);
	if (ret)
		return fail(ret, err);
	if (!strcmp(cmd, "counter-inc") || !strcmp(cmd, "counter-read"))
		printf("%" PRIu64 "\n", value);
	return EXIT_OK;
}

static int cmd_akpub(struct host_tpm *h, char **argv, char *err, size_t errlen)
{
	uint8_t *der = NULL, name[34];
	size_t der_len, name_len;
	int ret;

	ret = host_tpm_ak_public(h, &der, &der_len, name, &name_len, err, errlen);
	if (ret)
		return fail(ret, err);
	ret = write_file(argv[0], der, der_len) ? EXIT_ERR : EXIT_OK;
	free(der);
	if (!ret)
		print_hex(name, name_len);
	return ret;
}

static int cmd_bench(struct host_tpm *h, char **argv, char *err, size_t errlen)
{
	static const uint8_t secret[32] = {1, 2, 3, 4, 5, 6, 7, 8};
	uint8_t out[HOST_TPM_SECRET_MAX], *blob = NULL;
	size_t blob_len = 0, len;
	uint32_t n, mask, idx, differ, i;
	uint64_t c0, value;
	double t0;
	int ret = 0;

	if (parse_u32(argv[0], 100000, &n) < 0 || n == 0 ||
	    parse_u32(argv[1], 0xffffffffu, &mask) < 0 || parse_u32(argv[2], 0xffffffffu, &idx)) {
		fprintf(stderr, "host_tpm_check: bench N MASK IDX\n");
		return EXIT_USAGE;
	}
	c0 = host_tpm_commands(h);
	t0 = now_ms();
	for (i = 0; i < n && !ret; i++) {
		free(blob);
		blob = NULL;
		ret = host_tpm_seal(h, secret, sizeof(secret), mask, &blob, &blob_len, err, errlen);
	}
	if (ret)
		goto out;
	printf("seal: %.2f ms, %.1f commands\n", (now_ms() - t0) / n,
	       (double)(host_tpm_commands(h) - c0) / n);
	c0 = host_tpm_commands(h);
	t0 = now_ms();
	for (i = 0; i < n && !ret; i++)
		ret = host_tpm_unseal(h, blob, blob_len, out, sizeof(out), &len, &differ, err,
				      errlen);
	if (ret)
		goto out;
	printf("unseal: %.2f ms, %.1f commands\n", (now_ms() - t0) / n,
	       (double)(host_tpm_commands(h) - c0) / n);
	c0 = host_tpm_commands(h);
	t0 = now_ms();
	for (i = 0; i < n && !ret; i++)
		ret = host_tpm_counter_increment(h, idx, &value, err, errlen);
	if (ret)
		goto out;
	printf("counter-inc: %.2f ms, %.1f commands\n", (now_ms() - t0) / n,
	       (double)(host_tpm_commands(h) - c0) / n);
out:
	OPENSSL_cleanse(out, sizeof(out));
	free(blob);
	return ret ? fail(ret, err) : EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int nargs;
	} cmds[] = {
	    {"seal", 3},	{"unseal", 1},	       {"pcrread", 1},
	    {"extend", 2},	{"counter-define", 1}, {"counter-undefine", 1},
	    {"counter-inc", 1}, {"counter-read", 1},   {"akpub", 1},
	    {"count", 0},	{"bench", 3},	       {"policy-trial", 2},
	};
	struct host_tpm *h;
	char err[512] = "";
	const char *cmd;
	int verbose = 0, ret, i, ok = 0;

	log_init("host_tpm_check", 2, LOG_LVL_WARN);
	if (argc > 1 && !strcmp(argv[1], "-v")) {
		verbose = 1;
		argc--;
		argv++;
	}
	if (argc < 3) {
		usage();
		return EXIT_USAGE;
	}
	cmd = argv[2];
	for (i = 0; i < (int)(sizeof(cmds) / sizeof(cmds[0])); i++)
		if (!strcmp(cmd, cmds[i].name) && argc - 3 == cmds[i].nargs)
			ok = 1;
	if (!ok) {
		usage();
		return EXIT_USAGE;
	}
	ret = host_tpm_open(&h, argv[1], err, sizeof(err));
	if (ret)
		return fail(ret, err);
	if (!strcmp(cmd, "seal"))
		ret = cmd_seal(h, argv + 3, err, sizeof(err));
	else if (!strcmp(cmd, "unseal"))
		ret = cmd_unseal(h, argv + 3, err, sizeof(err));
	else if (!strcmp(cmd, "pcrread"))
		ret = cmd_pcrread(h, argv + 3, err, sizeof(err));
	else if (!strcmp(cmd, "extend"))
		ret = cmd_extend(h, argv + 3, err, sizeof(err));
	else if (!strncmp(cmd, "counter-", 8))
		ret = cmd_counter(h, cmd, argv + 3, err, sizeof(err));
	else if (!strcmp(cmd, "akpub"))
		ret = cmd_akpub(h, argv + 3, err, sizeof(err));
	else if (!strcmp(cmd, "bench"))
		ret = cmd_bench(h, argv + 3, err, sizeof(err));
	else if (!strcmp(cmd, "policy-trial"))
		ret = cmd_policy_trial(h, argv + 3, err, sizeof(err));
	else {
		printf("%" PRIu64 "\n", host_tpm_commands(h));
		ret = EXIT_OK;
	}
	if (verbose)
		fprintf(stderr, "commands: %" PRIu64 "\n", host_tpm_commands(h));
	host_tpm_close(h);
	fflush(stdout);
	return ret;
}
