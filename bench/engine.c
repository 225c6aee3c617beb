/* bench/engine.c — the engine limit: run the benchmark commands in-process on libtpms.
 *
 *   engine [-t SECONDS] [-p CPU] [-W N] [-q] COMMAND
 *
 * COMMAND is getrandom, extend, hash, nvwrite or startup, with the same command bytes as
 * tpmload (bench/tpmcmd.h). libtpms runs as a TPM 2 with its NV callbacks keeping every blob in
 * memory (a fresh, manufactured TPM on each run), TPM2_Startup(CLEAR) is sent, then the command
 * is passed to TPMLIB_Process in a loop for SECONDS (default 1.0) and commands/second printed
 * (-q: the number only). No I/O at all: this is the upper bound for any daemon built on libtpms.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <libtpms/tpm_error.h>
#include <libtpms/tpm_library.h>

#include "tpmcmd.h"

static const char *prog = "engine";

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- NV callbacks: blobs by name, in memory ---- */

#define NV_SLOTS 8

static struct {
	char name[32];
	unsigned char *data;
	uint32_t len;
} nv[NV_SLOTS];

static unsigned long nv_stores;

static int nv_find(const char *name)
{
	for (int i = 0; i < NV_SLOTS; i++)
		if (nv[i].data && strcmp(nv[i].name, name) == 0)
			return i;
	return -1;
}

static TPM_RESULT cb_nvram_init(void)
{
	return TPM_SUCCESS;
}

static TPM_RESULT cb_nvram_loaddata(unsigned char **data, uint32_t *length, uint32_t tpm_number,
				    const char *name)
{
	(void)tpm_number;
	int i = nv_find(name);
	*data = NULL;
	*length = 0;
	if (i < 0)
		return TPM_RETRY;		   /* libtpms: "no such blob yet" */
	*data = malloc(nv[i].len ? nv[i].len : 1); /* libtpms frees it */
	if (!*data)
		return TPM_FAIL;
	memcpy(*data, nv[i].data, nv[i].len);
	*length = nv[i].len;
	return TPM_SUCCESS;
}

static TPM_RESULT cb_nvram_storedata(const unsigned char *data, uint32_t length,
				     uint32_t tpm_number, const char *name)
{
	(void)tpm_number;
	int i = nv_find(name);
	if (i < 0) {
		for (i = 0; i < NV_SLOTS && nv[i].data; i++)
			;
		if (i == NV_SLOTS || strlen(name) >= sizeof(nv[i].name))
			return TPM_FAIL;
		strcpy(nv[i].name, name);
	}
	unsigned char *p = realloc(nv[i].data, length ? length : 1);
	if (!p)
		return TPM_FAIL;
	memcpy(p, data, length);
	nv[i].data = p;
	nv[i].len = length;
	nv_stores++;
	return TPM_SUCCESS;
}

static TPM_RESULT cb_nvram_deletename(uint32_t tpm_number, const char *name, TPM_BOOL mustExist)
{
	(void)tpm_number;
	int i = nv_find(name);
	if (i < 0)
		return mustExist ? TPM_RETRY : TPM_SUCCESS;
	free(nv[i].data);
	nv[i].data = NULL;
	nv[i].len = 0;
	return TPM_SUCCESS;
}

static TPM_RESULT cb_io_init(void)
{
	return TPM_SUCCESS;
}

static TPM_RESULT cb_io_getlocality(TPM_MODIFIER_INDICATOR *locality, uint32_t tpm_number)
{
	(void)tpm_number;
	*locality = 0;
	return TPM_SUCCESS;
}

static TPM_RESULT cb_io_getphysicalpresence(TPM_BOOL *pp, uint32_t tpm_number)
{
	(void)tpm_number;
	*pp = 0;
	return TPM_SUCCESS;
}

/* ---- running commands ---- */

static unsigned char *rbuf;
static uint32_t rbufsize;
static unsigned long retries;

/* Process one command; die with a message naming op unless the response is as expected. */
static uint32_t process(const char *op, uint8_t *cmd, size_t len, const struct tpm_expect *e,
			uint32_t ok_rc)
{
	char err[256];
	for (int attempt = 0;; attempt++) {
		uint32_t rlen = 0;
		TPM_RESULT r = TPMLIB_Process(&rbuf, &rlen, &rbufsize, cmd, (uint32_t)len);
		if (r != TPM_SUCCESS)
			die("%s: TPMLIB_Process failed: 0x%x", op, r);
		if (rlen == TPM_RSP_HEADER && be32(rbuf + 6) == TPM_RC_RETRY && attempt < 100) {
			retries++; /* see tpmload.c: libtpms 0.9 after a pending DA NV write */
			continue;
		}
		long rc = tpm_check_rsp(op, rbuf, rlen, e, ok_rc, err, sizeof(err));
		if (rc < 0)
			die("%s", err);
		return (uint32_t)rc;
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: %s [-t SECONDS] [-p CPU] [-W N] [-q] "
		"{getrandom|extend|hash|nvwrite|startup}\n",
		prog);
	exit(2);
}

int main(int argc, char **argv)
{
	double seconds = 1.0;
	int cpu = -1, warmup = 1000, quiet = 0, opt;
	char *end;

	while ((opt = getopt(argc, argv, "t:p:W:q")) != -1) {
		switch (opt) {
		case 't':
			seconds = strtod(optarg, &end);
			if (*end || seconds <= 0)
				die("bad -t '%s'", optarg);
			break;
		case 'p':
			cpu = (int)strtol(optarg, &end, 10);
			if (*end || cpu < 0)
				die("bad -p '%s'", optarg);
			break;
		case 'W':
			warmup = (int)strtol(optarg, &end, 10);
			if (*end || warmup < 0)
				die("bad -W '%s'", optarg);
			break;
		case 'q':
			quiet = 1;
			break;
		default:
			usage();
		}
	}
	if (argc - optind != 1)
		usage();
	enum bench_cmd c = bench_cmd_parse(argv[optind]);
	if (c == CMD_NONE)
		usage();
	if (cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) != 0)
			die("cannot pin to CPU %d: %s", cpu, strerror(errno));
	}

	struct libtpms_callbacks cbs = {
	    .sizeOfStruct = sizeof(cbs),
	    .tpm_nvram_init = cb_nvram_init,
	    .tpm_nvram_loaddata = cb_nvram_loaddata,
	    .tpm_nvram_storedata = cb_nvram_storedata,
	    .tpm_nvram_deletename = cb_nvram_deletename,
	    .tpm_io_init = cb_io_init,
	    .tpm_io_getlocality = cb_io_getlocality,
	    .tpm_io_getphysicalpresence = cb_io_getphysicalpresence,
	};
	TPM_RESULT r;
	if ((r = TPMLIB_ChooseTPMVersion(TPMLIB_TPM_VERSION_2)) != TPM_SUCCESS)
		die("TPMLIB_ChooseTPMVersion(TPM 2): 0x%x", r);
	if ((r = TPMLIB_RegisterCallbacks(&cbs)) != TPM_SUCCESS)
		die("TPMLIB_RegisterCallbacks: 0x%x", r);
	if ((r = TPMLIB_MainInit()) != TPM_SUCCESS)
		die("TPMLIB_MainInit: 0x%x", r);

	struct tbuf t;
	struct tpm_expect e;
	size_t n = bench_build(CMD_STARTUP, &t, &e);
	process("TPM2_Startup(CLEAR)", t.b, n, &e, TPM_RC_SUCCESS);
	if (c == CMD_NVWRITE) {
		struct tpm_expect de = {TPM_ST_SESSIONS, 10 + 4 + 5};
		n = tpm2_nv_define(&t, BENCH_NV_INDEX, BENCH_NV_SIZE);
		process("TPM2_NV_DefineSpace", t.b, n, &de, TPM_RC_SUCCESS);
	}

	n = bench_build(c, &t, &e);
	if (!n)
		die("internal error: command buffer overflow");
	const char *op = bench_cmd_tpmname[c];
	/* Startup is one-shot on a TPM; loop it as "Startup again" answered TPM_RC_INITIALIZE. */
	uint32_t ok_rc = c == CMD_STARTUP ? TPM_RC_INITIALIZE : TPM_RC_SUCCESS;
	uint64_t iter = 1;
	for (int i = 0; i < warmup; i++) {
		bench_vary(c, t.b, iter++);
		process(op, t.b, n, &e, ok_rc);
	}
	unsigned long count = 0, stores0 = nv_stores;
	double t0 = now(), t1, stop = t0 + seconds;
	do {
		bench_vary(c, t.b, iter++);
		process(op, t.b, n, &e, ok_rc);
		count++;
		t1 = now();
	} while (t1 < stop);

	double rate = (double)count / (t1 - t0);
	if (retries)
		fprintf(stderr, "%s: note: %lu TPM_RC_RETRY answers were re-sent\n", prog, retries);
	if (quiet)
		printf("%.1f\n", rate);
	else
		printf("%s (in-process libtpms): %lu commands in %.3f s: %.1f commands/s "
		       "(%.2f us each, %lu NV stores)\n",
		       argv[optind], count, t1 - t0, rate, 1e6 * (t1 - t0) / (double)count,
		       nv_stores - stores0);
	TPMLIB_Terminate();
	free(rbuf);
	for (int i = 0; i < NV_SLOTS; i++)
		free(nv[i].data);
	return 0;
}
