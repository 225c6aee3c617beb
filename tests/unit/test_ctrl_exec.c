/* Control commands executed against a real libtpms engine and state file: wrong run state,
 * bad descriptors, bad blobs. Nothing hostile may change the stored state. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/aead.h"
#include "common/cursor.h"
#include "common/log.h"
#include "common/state_store.h"
#include "unit.h"
#include "vtpmd/blob_envelope.h"
#include "vtpmd/ctrl_channel.h"
#include "vtpmd/ctrl_proto.h"

static struct ctrl_ctx cx;
static char state_path[512];

/* Build a request from code + body, parse it, execute it; return the first u32 (result). */
static uint32_t run(uint32_t code, const void *body, size_t body_len, int fd,
		    struct ctrl_resp *keep)
{
	uint8_t *buf = malloc(4 + body_len);
	struct ctrl_resp resp;
	struct ctrl_req req;
	size_t need;
	uint32_t res;

	be32_put(buf, code);
	if (body_len)
		memcpy(buf + 4, body, body_len);
	if (ctrl_parse(buf, 4 + body_len, &req, &need, &res) != CTRL_PARSE_DONE) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return 0xdeadbeef;
	}
	ctrl_execute(&cx, &req, fd, &resp);
	free(buf);
	res = be32_get(resp.big ? resp.big : resp.small);
	if (keep)
		*keep = resp;
	else
		free(resp.big);
	return res;
}

static uint32_t run_u32(uint32_t code, uint32_t v)
{
	uint8_t b[4];

	be32_put(b, v);
	return run(code, b, 4, -1, NULL);
}

static uint32_t run_blob(uint32_t code, uint32_t a, uint32_t type, uint32_t c, const uint8_t *data,
			 size_t len, struct ctrl_resp *keep)
{
	uint8_t *b = malloc(12 + len);
	uint32_t res;

	be32_put(b, a);
	be32_put(b + 4, type);
	be32_put(b + 8, c);
	if (len)
		memcpy(b + 12, data, len);
	res = run(code, b, 12 + len, -1, keep);
	free(b);
	return res;
}

static int file_digest(uint8_t out[32])
{
	static uint8_t buf[1 << 20];
	ssize_t n;
	int fd = open(state_path, O_RDONLY);

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	return n < 0 ? -1 : sha256(buf, (size_t)n, out);
}

static const uint8_t startup_clear[] = {0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0, 0};
static const uint8_t get_random[] = {0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 8};

/* Run a TPM command; its response code (or 0xffffffff for a malformed answer). */
static uint32_t tpm_rc(const uint8_t *cmd, uint32_t len)
{
	const uint8_t *rsp;
	uint32_t rsp_len;

	engine_process(cx.engine, cmd, len, &rsp, &rsp_len);
	return rsp_len >= 10 ? be32_get(rsp + 6) : 0xffffffffu;
}

static void test_not_running(void)
{
	unit_begin("exec: running-only commands before INIT get TPM_BAD_ORDINAL");
	CHECK(run(CMD_GET_TPMESTABLISHED, NULL, 0, -1, NULL) == RES_BAD_ORDINAL);
	CHECK(run(CMD_HASH_START, NULL, 0, -1, NULL) == RES_BAD_ORDINAL);
	CHECK(run(CMD_STORE_VOLATILE, NULL, 0, -1, NULL) == RES_BAD_ORDINAL);
	CHECK(run_blob(CMD_GET_STATEBLOB, 1, 1, 0, NULL, 0, NULL) == RES_BAD_ORDINAL);
	CHECK(run(CMD_STOP, NULL, 0, -1, NULL) == RES_SUCCESS);
	CHECKF(tpm_rc(get_random, sizeof(get_random)) == 0x101, "stopped TPM must fail commands");
	unit_end();
}

static void test_datafd(void)
{
	int p[2], sp[2];

	unit_begin("exec: SET_DATAFD refuses no fd, a pipe, and a second socket");
	CHECK(run(CMD_SET_DATAFD, NULL, 0, -1, NULL) == RES_BAD_PARAMETER);
	CHECK(pipe(p) == 0);
	CHECK(run(CMD_SET_DATAFD, NULL, 0, p[0], NULL) == RES_BAD_PARAMETER);
	CHECKF(fcntl(p[0], F_GETFD) < 0 && errno == EBADF, "refused fd was not closed");
	close(p[1]);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
	CHECK(run(CMD_SET_DATAFD, NULL, 0, sp[0], NULL) == RES_SUCCESS && cx.data_fd == sp[0]);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, p) == 0);
	CHECK(run(CMD_SET_DATAFD, NULL, 0, p[0], NULL) == RES_IOERROR && cx.data_fd == sp[0]);
	close(p[1]);
	/* A descriptor sent with any other command is closed, not kept. */
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, p) == 0);
	CHECK(run(CMD_GET_CONFIG, NULL, 0, p[0], NULL) == RES_SUCCESS);
	CHECKF(fcntl(p[0], F_GETFD) < 0, "fd sent with GET_CONFIG was kept");
	close(p[1]);
	close(sp[0]);
	close(sp[1]);
	cx.data_fd = -1;
	unit_end();
}

static void test_running(void)
{
	uint8_t b[16] = {0};

	unit_begin("exec: INIT manufactures and stores a fresh TPM");
	CHECK(run_u32(CMD_INIT, 0) == RES_SUCCESS);
	CHECK(access(state_path, F_OK) == 0);
	unit_end();

	unit_begin("exec: localities, buffer size and blob types are checked");
	b[0] = 5;
	CHECK(run(CMD_SET_LOCALITY, b, 1, -1, NULL) == RES_BAD_LOCALITY);
	b[0] = 4;
	CHECK(run(CMD_SET_LOCALITY, b, 4, -1, NULL) == RES_SUCCESS);
	cx.reject_locality4 = true;
	CHECK(run(CMD_SET_LOCALITY, b, 1, -1, NULL) == RES_BAD_LOCALITY);
	cx.reject_locality4 = false;
	b[0] = 0;
	CHECK(run(CMD_SET_LOCALITY, b, 1, -1, NULL) == RES_SUCCESS);
	b[0] = 7;
	CHECK(run(CMD_RESET_TPMESTABLISHED, b, 1, -1, NULL) == RES_BAD_LOCALITY);
	CHECK(run_u32(CMD_SET_BUFFERSIZE, 3000) == RES_BAD_ORDINAL);
	CHECK(run_blob(CMD_GET_STATEBLOB, 1, 9, 0, NULL, 0, NULL) == RES_BAD_PARAMETER);
	CHECK(run_blob(CMD_GET_STATEBLOB, 1, 1, 1u << 30, NULL, 0, NULL) == RES_BAD_PARAMETER);
	CHECK(run_blob(CMD_GET_STATEBLOB, 1, 3, 0, NULL, 0, NULL) == RES_RETRY);
	CHECK(run_blob(CMD_SET_STATEBLOB, 0, 1, 0, NULL, 0, NULL) == RES_BAD_ORDINAL);
	be64_put(b, 1);
	be32_put(b + 8, 100000);
	CHECK(run(CMD_GET_INFO, b, 16, -1, NULL) == RES_BAD_PARAMETER);
	unit_end();
}

static void test_hostile_blobs(void)
{
	uint8_t before[32], after[32], *env = NULL, junk[64];
	struct ctrl_resp perm = {0};
	size_t env_len = 0;
	uint32_t len;

	unit_begin("exec: GET_STATEBLOB permanent returns an swtpm envelope");
	CHECK(run_blob(CMD_GET_STATEBLOB, PTM_STATE_FLAG_DECRYPTED, 1, 0, NULL, 0, &perm) == 0);
	len = perm.big ? be32_get(perm.big + 12) : 0;
	CHECK(perm.big && len > 100 && be32_get(perm.big + 8) == len && perm.big[16] == 2);
	unit_end();

	unit_begin("exec: bad blobs are refused and never reach the state file");
	CHECK(run(CMD_STOP, NULL, 0, -1, NULL) == RES_SUCCESS);
	CHECK(file_digest(before) == 0);
	memset(junk, 0x41, sizeof(junk));
	CHECK(run_blob(CMD_SET_STATEBLOB, 0, 1, sizeof(junk), junk, sizeof(junk), NULL) ==
	      RES_BAD_VERSION);
	/* as swtpm: the header is checked first (BAD_PARAMETER), then the key (KEYNOTFOUND) */
	CHECK(run_blob(CMD_SET_STATEBLOB, PTM_STATE_FLAG_ENCRYPTED, 1, sizeof(junk), junk,
		       sizeof(junk), NULL) == RES_BAD_PARAMETER);
	CHECK(run_blob(CMD_SET_STATEBLOB, 0, 7, 0, NULL, 0, NULL) == RES_BAD_PARAMETER);
	/* A well-formed envelope around garbage: staged, then rejected by libtpms at INIT. */
	CHECK(blob_envelope_wrap(junk, sizeof(junk), 1, NULL, &env, &env_len) == 0);
	CHECK(run_blob(CMD_SET_STATEBLOB, PTM_STATE_FLAG_ENCRYPTED, 1, (uint32_t)env_len, env,
		       env_len, NULL) == RES_KEYNOTFOUND);
	CHECK(run_blob(CMD_SET_STATEBLOB, 0, 1, (uint32_t)env_len, env, env_len, NULL) == 0);
	CHECK(run_u32(CMD_INIT, 0) != RES_SUCCESS);
	CHECK(file_digest(after) == 0 && memcmp(before, after, 32) == 0);
	CHECK(run_u32(CMD_INIT, 0) == RES_SUCCESS); /* the stored state still loads */
	CHECKF(tpm_rc(startup_clear, sizeof(startup_clear)) == 0, "TPM2_Startup after recovery");
	CHECKF(tpm_rc(get_random, sizeof(get_random)) == 0, "TPM2_GetRandom after recovery");
	unit_end();

	unit_begin("exec: a good blob round trip is stored at INIT as a new version");
	{
		CHECK(run(CMD_STOP, NULL, 0, -1, NULL) == RES_SUCCESS);
		CHECK(perm.big != NULL);
		if (perm.big) {
			CHECK(run_blob(CMD_SET_STATEBLOB, 0, 1, len, perm.big + 16, len, NULL) ==
			      RES_SUCCESS);
			CHECK(run_u32(CMD_INIT, PTM_INIT_FLAG_DELETE_VOLATILE) == RES_SUCCESS);
			CHECK(file_digest(after) == 0 && memcmp(before, after, 32) != 0);
		}
	}
	unit_end();
	free(env);
	free(perm.big);
}

int main(void)
{
	char dir[] = "/tmp/vtpm-unit-exec.XXXXXX", err[256];
	struct state_store *ss = NULL;
	struct engine *e = NULL;

	log_init("test", 2, LOG_LVL_ERROR);
	if (!mkdtemp(dir) || state_store_open(&ss, dir, NULL, 0600, NULL, err, sizeof(err)) != 0 ||
	    engine_create(&e, ss, NULL, err, sizeof(err)) != 0) {
		printf("FAIL: setup: %s\n", err);
		return 1;
	}
	snprintf(state_path, sizeof(state_path), "%s/%s", dir, STATE_FILE_NAME);
	cx.engine = e;
	cx.data_fd = -1;
	test_not_running();
	test_datafd();
	test_running();
	test_hostile_blobs();
	engine_destroy(e);
	state_store_close(ss);
	unlink(state_path);
	rmdir(dir);
	return unit_exit();
}
