/*
 * tpmc — a minimal TPM 2.0 client for the tests: one connection to a vTPM's data channel
 * (raw mode: bare TPM 2 commands, as QEMU and the swtpm TCTI send them), a handful of
 * commands encoded by hand after TPM 2.0 Part 3, every response checked.
 *
 * Usage: tpmc [-1] [-w MS] ADDR COMMAND [ARGS...]
 *   ADDR   PORT, 127.0.0.1:PORT or localhost:PORT (TCP on loopback), anything else is the
 *          path of a unix stream socket
 *   -w MS  keep retrying the connection for up to MS milliseconds while the socket does not
 *          exist yet or refuses connections (daemon still starting); default 0
 *   -1     one try: a TPM_RC_RETRY answer is the command's result. Without it a command
 *          answered TPM_RC_RETRY is sent again as Linux's TPM driver does (tpm_transmit:
 *          after 20 ms, the pause doubling, the last try after a pause of 1280 ms), and
 *          only the eighth RETRY is the result
 * Commands:
 *   startup                 TPM2_Startup(TPM_SU_CLEAR); TPM_RC_INITIALIZE (already started)
 *                           counts as success
 *   nvdefine INDEX SIZE     TPM2_NV_DefineSpace under the owner hierarchy (empty owner auth,
 *                           empty index auth), attributes OWNERWRITE|OWNERREAD|NO_DA, an
 *                           ordinary index of SIZE bytes, name algorithm SHA-256
 *   nvloop INDEX N [FROM]   for v = FROM+1 .. FROM+N (FROM default 0): TPM2_NV_Write of v as
 *                           8 bytes big-endian at offset 0; after each successful response
 *                           print "acked v" and flush stdout; stop at the first error
 *   nvwrite INDEX TEXT      TPM2_NV_Write of the bytes of TEXT at offset 0
 *   nvread INDEX            TPM2_NV_Read of 8 bytes at offset 0; print them as a decimal
 *                           unsigned 64-bit big-endian value
 * All authorisations use the owner hierarchy (TPM_RH_OWNER) with a password session
 * (TPM_RS_PW) and an empty password. INDEX is a number (0x... accepted), in 0x01000000-
 * 0x01ffffff.
 *
 * Exit status:
 *   0  success
 *   1  usage error (bad arguments)
 *   2  transport error: cannot connect, connection closed or reset, write failed, or no
 *      response within 30 s
 *   3  the TPM answered with an error response code (printed in hex on stderr)
 *   4  malformed response (bad tag, size or contents)
 *   5  nvread: the index exists but was never written (TPM_RC_NV_UNINITIALIZED)
 * Errors go to stderr, prefixed "tpmc: ".
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/cursor.h"
#include "common/sock.h"

enum {
	EXIT_OK = 0,
	EXIT_USAGE = 1,
	EXIT_TRANSPORT = 2,
	EXIT_TPM = 3,
	EXIT_MALFORMED = 4,
	EXIT_NV_UNINIT = 5,
};

#define TPM_ST_NO_SESSIONS 0x8001u
#define TPM_ST_SESSIONS	   0x8002u

#define TPM_CC_NV_DEFINE_SPACE 0x0000012Au
#define TPM_CC_STARTUP	       0x00000144u
#define TPM_CC_NV_WRITE	       0x00000137u
#define TPM_CC_NV_READ	       0x0000014Eu

#define TPM_RH_OWNER   0x40000001u
#define TPM_RS_PW      0x40000009u
#define TPM_SU_CLEAR   0x0000u
#define TPM_ALG_SHA256 0x000Bu

#define TPM_RC_SUCCESS		0x000u
#define TPM_RC_INITIALIZE	0x100u
#define TPM_RC_NV_UNINITIALIZED 0x14Au
#define TPM_RC_RETRY		0x922u

#define TPMA_NV_OWNERWRITE (1u << 1)
#define TPMA_NV_OWNERREAD  (1u << 17)
#define TPMA_NV_NO_DA	   (1u << 25)

#define TPMA_SESSION_CONTINUESESSION 0x01u

#define NV_INDEX_FIRST 0x01000000u
#define NV_INDEX_LAST  0x01FFFFFFu
/* What a single NV_Write carries at most here; the TPM's own limit (MAX_NV_BUFFER_SIZE) is
 * 1024 in libtpms, so keep well below. */
#define MAX_NV_DATA	    512u
#define BUF_LEN		    4096u
#define RESPONSE_TIMEOUT_MS 30000

static const char *prog_cmd = "";
static bool one_try; /* -1 */

__attribute__((format(printf, 1, 2))) static void errx_msg(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "tpmc: %s%s", prog_cmd, *prog_cmd ? ": " : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void usage(void)
{
	fprintf(stderr, "usage: tpmc [-1] [-w MS] ADDR startup\n"
			"       tpmc [-1] [-w MS] ADDR nvdefine INDEX SIZE\n"
			"       tpmc [-1] [-w MS] ADDR nvloop INDEX N [FROM]\n"
			"       tpmc [-1] [-w MS] ADDR nvwrite INDEX TEXT\n"
			"       tpmc [-1] [-w MS] ADDR nvread INDEX\n"
			"ADDR: PORT | 127.0.0.1:PORT | localhost:PORT | unix socket path\n");
}

/* Parse an unsigned number (decimal or 0x hex) that must fit in max. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_index(const char *s, uint32_t *index)
{
	uint64_t v;

	if (parse_u64(s, NV_INDEX_LAST, &v) < 0 || v < NV_INDEX_FIRST) {
		errx_msg("bad NV index '%s' (want 0x%08x..0x%08x)", s, NV_INDEX_FIRST,
			 NV_INDEX_LAST);
		return -1;
	}
	*index = (uint32_t)v;
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Port of "PORT", "127.0.0.1:PORT" or "localhost:PORT"; 0 if addr is not a TCP address. */
static int tcp_port(const char *addr, uint16_t *port)
{
	const char *p = addr;
	uint64_t v;

	if (!strncmp(addr, "127.0.0.1:", 10))
		p = addr + 10;
	else if (!strncmp(addr, "localhost:", 10))
		p = addr + 10;
	if (strspn(p, "0123456789") != strlen(p) || !*p)
		return 0;
	if (parse_u64(p, 65535, &v) < 0 || v == 0)
		return -1;
	*port = (uint16_t)v;
	return 1;
}

static int connect_once(const char *addr, int is_tcp, uint16_t port)
{
	struct sockaddr_in sa;
	int fd, e;

	if (!is_tcp)
		return sock_connect_unix(addr);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Connect, retrying for up to wait_ms while the server is not there yet. */
static int connect_addr(const char *addr, long wait_ms)
{
	long long deadline = now_ms() + wait_ms;
	uint16_t port = 0;
	int is_tcp = tcp_port(addr, &port), fd;

	if (is_tcp < 0) {
		errx_msg("bad TCP port in '%s'", addr);
		return -1;
	}
	for (;;) {
		fd = connect_once(addr, is_tcp, port);
		if (fd >= 0)
			return fd;
		if ((errno != ENOENT && errno != ECONNREFUSED) || now_ms() >= deadline)
			break;
		usleep(5000);
	}
	if (is_tcp)
		errx_msg("cannot connect to TCP 127.0.0.1 port %u: %s", port, strerror(errno));
	else
		errx_msg("cannot connect to unix socket %s: %s", addr, strerror(errno));
	return -1;
}

/*
 * Send one command (already complete with its header) and read one response into rsp.
 * Returns 0 with *rc = the response code and *rlen = response length, or an exit code.
 */
static int transact_once(int fd, const uint8_t *cmd, size_t cmd_len, uint8_t *rsp, size_t rsp_cap,
			 size_t *rlen, uint32_t *rc)
{
	struct rcursor c;
	uint16_t tag;
	uint32_t size;
	ssize_t n;

	if (sock_write_full(fd, cmd, cmd_len) < 0) {
		errx_msg("sending the command (%zu bytes) failed: %s", cmd_len, strerror(errno));
		return EXIT_TRANSPORT;
	}
	n = sock_read_full(fd, rsp, 10, RESPONSE_TIMEOUT_MS);
	if (n == 0) {
		errx_msg("connection closed by the TPM before any response byte");
		return EXIT_TRANSPORT;
	}
	if (n < 0) {
		errx_msg("reading the response header failed: %s", strerror(errno));
		return EXIT_TRANSPORT;
	}
	rc_init(&c, rsp, 10);
	rc_u16(&c, &tag);
	rc_u32(&c, &size);
	rc_u32(&c, rc);
	if (tag != TPM_ST_NO_SESSIONS && tag != TPM_ST_SESSIONS) {
		errx_msg("response tag 0x%04x is neither TPM_ST_NO_SESSIONS nor TPM_ST_SESSIONS",
			 tag);
		return EXIT_MALFORMED;
	}
	if (size < 10 || size > rsp_cap) {
		errx_msg("response size %" PRIu32 " out of range (10..%zu)", size, rsp_cap);
		return EXIT_MALFORMED;
	}
	if (size > 10) {
		n = sock_read_full(fd, rsp + 10, size - 10, RESPONSE_TIMEOUT_MS);
		if (n != (ssize_t)(size - 10)) {
			errx_msg("reading the response body (%" PRIu32 " bytes) failed: %s",
				 size - 10, n == 0 ? "connection closed" : strerror(errno));
			return EXIT_TRANSPORT;
		}
	}
	if (*rc != TPM_RC_SUCCESS && size != 10) {
		errx_msg("error response 0x%03" PRIx32 " has size %" PRIu32 " (want 10)", *rc,
			 size);
		return EXIT_MALFORMED;
	}
	if (*rc == TPM_RC_SUCCESS &&
	    tag != (cmd[1] == 0x02 ? TPM_ST_SESSIONS : TPM_ST_NO_SESSIONS)) {
		errx_msg("success response has tag 0x%04x, command had 0x%02x%02x", tag, cmd[0],
			 cmd[1]);
		return EXIT_MALFORMED;
	}
	*rlen = size;
	return EXIT_OK;
}

/* transact_once, sending the command again while it is answered TPM_RC_RETRY (unless -1),
 * with the pauses of Linux's tpm_transmit: 20 ms doubling, no pause beyond 2000 ms. */
static int transact(int fd, const uint8_t *cmd, size_t cmd_len, uint8_t *rsp, size_t rsp_cap,
		    size_t *rlen, uint32_t *rc)
{
	unsigned pause_ms = 20;
	int e;

	for (;;) {
		e = transact_once(fd, cmd, cmd_len, rsp, rsp_cap, rlen, rc);
		if (e != EXIT_OK || *rc != TPM_RC_RETRY || one_try || pause_ms > 2000)
			return e;
		usleep(pause_ms * 1000);
		pause_ms *= 2;
	}
}

/* Write the command header (size patched by finish_cmd). */
static void start_cmd(struct wcursor *w, uint8_t *buf, size_t cap, uint16_t tag, uint32_t cc)
{
	wc_init(w, buf, cap);
	wc_u16(w, tag);
	wc_u32(w, 0); /* commandSize, patched */
	wc_u32(w, cc);
}

/* Authorization area with one password session, empty password (Part 1, 19.8.4). */
static void put_pw_session(struct wcursor *w)
{
	wc_u32(w, 9);	      /* authorizationSize: 4 + 2 + 1 + 2 */
	wc_u32(w, TPM_RS_PW); /* sessionHandle */
	wc_u16(w, 0);	      /* nonceCaller: empty */
	wc_u8(w, TPMA_SESSION_CONTINUESESSION);
	wc_u16(w, 0); /* hmac (password): empty */
}

static int finish_cmd(struct wcursor *w, size_t *len)
{
	if (w->failed) {
		errx_msg("internal error: command does not fit in %zu bytes", w->cap);
		return -1;
	}
	be32_put(w->buf + 2, (uint32_t)w->pos);
	*len = w->pos;
	return 0;
}

/*
 * Check the response of a command sent with sessions: after the 10-byte header come the
 * handles (nhandles), u32 parameterSize, the parameters (returned through params/plen),
 * then one session response (nonce TPM2B, u8 attrs, hmac TPM2B) that must fill the rest.
 */
static int parse_session_rsp(const uint8_t *rsp, size_t rlen, size_t nhandles,
			     const uint8_t **params, uint32_t *plen)
{
	struct rcursor c;
	uint16_t nonce_len, hmac_len;
	uint8_t attrs;

	rc_init(&c, rsp, rlen);
	rc_skip(&c, 10 + 4 * nhandles);
	rc_u32(&c, plen);
	if (c.failed || *plen > rc_remaining(&c)) {
		errx_msg("response parameterSize %" PRIu32 " exceeds the response (%zu bytes)",
			 *plen, rlen);
		return EXIT_MALFORMED;
	}
	rc_ptr(&c, params, *plen);
	rc_u16(&c, &nonce_len);
	rc_skip(&c, nonce_len);
	rc_u8(&c, &attrs);
	rc_u16(&c, &hmac_len);
	rc_skip(&c, hmac_len);
	if (c.failed || rc_expect_end(&c) < 0) {
		errx_msg("malformed session area in the response (%zu bytes)", rlen);
		return EXIT_MALFORMED;
	}
	if (nonce_len != 0 || hmac_len != 0) {
		errx_msg("password session response has nonce %u / hmac %u bytes (want 0/0)",
			 nonce_len, hmac_len);
		return EXIT_MALFORMED;
	}
	return EXIT_OK;
}

static const char *rc_hint(uint32_t rc)
{
	switch (rc) {
	case 0x100:
		return "TPM_RC_INITIALIZE";
	case 0x101:
		return "TPM_RC_FAILURE";
	case 0x14A:
		return "TPM_RC_NV_UNINITIALIZED";
	case 0x14B:
		return "TPM_RC_NV_SPACE";
	case 0x14C:
		return "TPM_RC_NV_DEFINED";
	case 0x148:
		return "TPM_RC_NV_LOCKED";
	case 0x149:
		return "TPM_RC_NV_AUTHORIZATION";
	case 0x146:
		return "TPM_RC_NV_RANGE";
	case 0x147:
		return "TPM_RC_NV_SIZE";
	case 0x142:
		return "TPM_RC_COMMAND_SIZE";
	case 0x143:
		return "TPM_RC_COMMAND_CODE";
	case 0x922:
		return "TPM_RC_RETRY";
	case 0x923:
		return "TPM_RC_NV_RATE";
	case 0x921:
		return "TPM_RC_LOCKOUT";
	case 0x908:
		return "TPM_RC_YIELDED";
	case 0x90A:
		return "TPM_RC_NV_UNAVAILABLE";
	case 0x98E:
		return "TPM_RC_AUTH_FAIL (handle 1)";
	}
	if (rc & 0x080) /* format one: bits 8-11 say which handle, parameter or session */
		return "format-one error: see TPM 2.0 Part 2, 6.6";
	return "see TPM 2.0 Part 2, 6.6";
}

static int tpm_error(const char *what, uint32_t rc)
{
	errx_msg("%s: TPM error 0x%03" PRIx32 " (%s)", what, rc, rc_hint(rc));
	return EXIT_TPM;
}

static int cmd_startup(int fd)
{
	uint8_t cmd[64], rsp[BUF_LEN];
	struct wcursor w;
	size_t len, rlen;
	uint32_t rc;
	int e;

	start_cmd(&w, cmd, sizeof(cmd), TPM_ST_NO_SESSIONS, TPM_CC_STARTUP);
	wc_u16(&w, TPM_SU_CLEAR);
	if (finish_cmd(&w, &len) < 0)
		return EXIT_USAGE;
	e = transact(fd, cmd, len, rsp, sizeof(rsp), &rlen, &rc);
	if (e)
		return e;
	if (rc != TPM_RC_SUCCESS && rc != TPM_RC_INITIALIZE)
		return tpm_error("TPM2_Startup(CLEAR)", rc);
	if (rlen != 10) {
		errx_msg("TPM2_Startup response has %zu bytes (want 10)", rlen);
		return EXIT_MALFORMED;
	}
	printf("startup %s\n", rc == TPM_RC_INITIALIZE ? "already done" : "ok");
	return EXIT_OK;
}

static int cmd_nvdefine(int fd, uint32_t index, uint16_t size)
{
	uint8_t cmd[128], rsp[BUF_LEN];
	const uint8_t *params;
	struct wcursor w;
	size_t len, rlen;
	uint32_t rc, plen;
	uint8_t *pub_size;
	size_t pub_start;
	int e;

	start_cmd(&w, cmd, sizeof(cmd), TPM_ST_SESSIONS, TPM_CC_NV_DEFINE_SPACE);
	wc_u32(&w, TPM_RH_OWNER); /* @authHandle */
	put_pw_session(&w);
	wc_u16(&w, 0);		      /* TPM2B_AUTH auth: empty */
	pub_size = wc_reserve(&w, 2); /* TPM2B_NV_PUBLIC size */
	pub_start = w.pos;
	wc_u32(&w, index);						    /* nvIndex */
	wc_u16(&w, TPM_ALG_SHA256);					    /* nameAlg */
	wc_u32(&w, TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD | TPMA_NV_NO_DA); /* TPM_NT_ORDINARY */
	wc_u16(&w, 0);							    /* authPolicy: empty */
	wc_u16(&w, size);						    /* dataSize */
	if (pub_size)
		be16_put(pub_size, (uint16_t)(w.pos - pub_start));
	if (finish_cmd(&w, &len) < 0)
		return EXIT_USAGE;
	e = transact(fd, cmd, len, rsp, sizeof(rsp), &rlen, &rc);
	if (e)
		return e;
	if (rc != TPM_RC_SUCCESS)
		return tpm_error("TPM2_NV_DefineSpace", rc);
	e = parse_session_rsp(rsp, rlen, 0, &params, &plen);
	if (e)
		return e;
	if (plen != 0) {
		errx_msg("TPM2_NV_DefineSpace returned %" PRIu32 " parameter bytes (want 0)", plen);
		return EXIT_MALFORMED;
	}
	printf("defined 0x%08" PRIx32 " size %u\n", index, size);
	return EXIT_OK;
}

static int nv_write(int fd, uint32_t index, const uint8_t *data, uint16_t n)
{
	uint8_t cmd[128 + MAX_NV_DATA], rsp[BUF_LEN];
	const uint8_t *params;
	struct wcursor w;
	size_t len, rlen;
	uint32_t rc, plen;
	int e;

	start_cmd(&w, cmd, sizeof(cmd), TPM_ST_SESSIONS, TPM_CC_NV_WRITE);
	wc_u32(&w, TPM_RH_OWNER); /* @authHandle */
	wc_u32(&w, index);	  /* nvIndex */
	put_pw_session(&w);
	wc_u16(&w, n); /* TPM2B_MAX_NV_BUFFER data */
	wc_bytes(&w, data, n);
	wc_u16(&w, 0); /* offset */
	if (finish_cmd(&w, &len) < 0)
		return EXIT_USAGE;
	e = transact(fd, cmd, len, rsp, sizeof(rsp), &rlen, &rc);
	if (e)
		return e;
	if (rc != TPM_RC_SUCCESS)
		return tpm_error("TPM2_NV_Write", rc);
	e = parse_session_rsp(rsp, rlen, 0, &params, &plen);
	if (e)
		return e;
	if (plen != 0) {
		errx_msg("TPM2_NV_Write returned %" PRIu32 " parameter bytes (want 0)", plen);
		return EXIT_MALFORMED;
	}
	return EXIT_OK;
}

static int cmd_nvloop(int fd, uint32_t index, uint64_t n, uint64_t from)
{
	uint8_t v[8];
	uint64_t i;
	int e;

	for (i = 1; i <= n; i++) {
		be64_put(v, from + i);
		e = nv_write(fd, index, v, sizeof(v));
		if (e) {
			errx_msg("write of value %" PRIu64 " (%" PRIu64 " of %" PRIu64 ") failed",
				 from + i, i, n);
			return e;
		}
		printf("acked %" PRIu64 "\n", from + i);
		if (fflush(stdout) != 0) {
			errx_msg("writing to stdout failed: %s", strerror(errno));
			return EXIT_TRANSPORT;
		}
	}
	return EXIT_OK;
}

static int cmd_nvwrite(int fd, uint32_t index, const char *text)
{
	size_t n = strlen(text);
	int e;

	if (n == 0 || n > MAX_NV_DATA) {
		errx_msg("TEXT must have 1..%u bytes (has %zu)", MAX_NV_DATA, n);
		return EXIT_USAGE;
	}
	e = nv_write(fd, index, (const uint8_t *)text, (uint16_t)n);
	if (e)
		return e;
	printf("written %zu bytes\n", n);
	return EXIT_OK;
}

static int cmd_nvread(int fd, uint32_t index)
{
	uint8_t cmd[128], rsp[BUF_LEN];
	const uint8_t *params, *data;
	struct rcursor c;
	struct wcursor w;
	size_t len, rlen;
	uint32_t rc, plen;
	uint16_t dlen;
	int e;

	start_cmd(&w, cmd, sizeof(cmd), TPM_ST_SESSIONS, TPM_CC_NV_READ);
	wc_u32(&w, TPM_RH_OWNER); /* @authHandle */
	wc_u32(&w, index);	  /* nvIndex */
	put_pw_session(&w);
	wc_u16(&w, 8); /* size */
	wc_u16(&w, 0); /* offset */
	if (finish_cmd(&w, &len) < 0)
		return EXIT_USAGE;
	e = transact(fd, cmd, len, rsp, sizeof(rsp), &rlen, &rc);
	if (e)
		return e;
	if (rc == TPM_RC_NV_UNINITIALIZED) {
		errx_msg("index 0x%08" PRIx32 " was never written (TPM_RC_NV_UNINITIALIZED)",
			 index);
		return EXIT_NV_UNINIT;
	}
	if (rc != TPM_RC_SUCCESS)
		return tpm_error("TPM2_NV_Read", rc);
	e = parse_session_rsp(rsp, rlen, 0, &params, &plen);
	if (e)
		return e;
	rc_init(&c, params, plen);
	rc_u16(&c, &dlen);
	if (c.failed || dlen != 8 || rc_ptr(&c, &data, dlen) < 0 || rc_expect_end(&c) < 0) {
		errx_msg("TPM2_NV_Read returned %" PRIu32 " parameter bytes with a %u-byte buffer "
			 "(want 8)",
			 plen, dlen);
		return EXIT_MALFORMED;
	}
	printf("%" PRIu64 "\n", be64_get(data));
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	long wait_ms = 0;
	uint32_t index = 0;
	uint64_t a, b = 0;
	const char *addr;
	int argi = 1, fd, e;

	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		if (argc > argi && !strcmp(argv[argi], "-1")) {
			one_try = true;
			argi++;
		} else if (argc > argi + 1 && !strcmp(argv[argi], "-w")) {
			if (parse_u64(argv[argi + 1], 3600000, &a) < 0) {
				errx_msg("bad -w value '%s' (milliseconds, at most 3600000)",
					 argv[argi + 1]);
				return EXIT_USAGE;
			}
			wait_ms = (long)a;
			argi += 2;
		} else {
			break;
		}
	}
	if (argc - argi < 2) {
		usage();
		return EXIT_USAGE;
	}
	addr = argv[argi++];
	prog_cmd = argv[argi++];
	argc -= argi;
	argv += argi;
	/* Validate everything before connecting. */
	if (!strcmp(prog_cmd, "startup")) {
		if (argc != 0)
			goto bad;
	} else if (!strcmp(prog_cmd, "nvdefine")) {
		if (argc != 2 || parse_index(argv[0], &index) < 0)
			goto bad;
		if (parse_u64(argv[1], 2048, &a) < 0 || a == 0) {
			errx_msg("bad SIZE '%s' (1..2048)", argv[1]);
			return EXIT_USAGE;
		}
	} else if (!strcmp(prog_cmd, "nvloop")) {
		if ((argc != 2 && argc != 3) || parse_index(argv[0], &index) < 0)
			goto bad;
		if (parse_u64(argv[1], UINT64_MAX, &a) < 0 ||
		    (argc == 3 && parse_u64(argv[2], UINT64_MAX, &b) < 0) || a > UINT64_MAX - b) {
			errx_msg("bad N or FROM (unsigned numbers, FROM+N < 2^64)");
			return EXIT_USAGE;
		}
	} else if (!strcmp(prog_cmd, "nvwrite")) {
		if (argc != 2 || parse_index(argv[0], &index) < 0)
			goto bad;
	} else if (!strcmp(prog_cmd, "nvread")) {
		if (argc != 1 || parse_index(argv[0], &index) < 0)
			goto bad;
	} else {
		errx_msg("unknown command");
		goto bad;
	}
	fd = connect_addr(addr, wait_ms);
	if (fd < 0)
		return EXIT_TRANSPORT;
	if (!strcmp(prog_cmd, "startup"))
		e = cmd_startup(fd);
	else if (!strcmp(prog_cmd, "nvdefine"))
		e = cmd_nvdefine(fd, index, (uint16_t)a);
	else if (!strcmp(prog_cmd, "nvloop"))
		e = cmd_nvloop(fd, index, a, b);
	else if (!strcmp(prog_cmd, "nvwrite"))
		e = cmd_nvwrite(fd, index, argv[1]);
	else
		e = cmd_nvread(fd, index);
	close(fd);
	if (fflush(stdout) != 0 && e == EXIT_OK) {
		errx_msg("writing to stdout failed: %s", strerror(errno));
		e = EXIT_TRANSPORT;
	}
	return e;
bad:
	usage();
	return EXIT_USAGE;
}
