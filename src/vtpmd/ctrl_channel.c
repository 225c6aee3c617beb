#include "vtpmd/ctrl_channel.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/cursor.h"
#include "common/log.h"
#include "vtpmd/blob_envelope.h"
#include "vtpmd/ctrl_proto.h"

uint32_t ctrl_capabilities(void)
{
	return PTM_CAP_INIT | PTM_CAP_SHUTDOWN | PTM_CAP_GET_TPMESTABLISHED | PTM_CAP_SET_LOCALITY |
	       PTM_CAP_HASHING | PTM_CAP_CANCEL_TPM_CMD | PTM_CAP_STORE_VOLATILE |
	       PTM_CAP_RESET_TPMESTABLISHED | PTM_CAP_GET_STATEBLOB | PTM_CAP_SET_STATEBLOB |
	       PTM_CAP_STOP | PTM_CAP_GET_CONFIG | PTM_CAP_SET_DATAFD | PTM_CAP_SET_BUFFERSIZE |
	       PTM_CAP_GET_INFO | PTM_CAP_SEND_COMMAND_HEADER | PTM_CAP_LOCK_STORAGE;
}

uint32_t ctrl_capabilities_passthrough(void)
{
	return PTM_CAP_INIT | PTM_CAP_SHUTDOWN | PTM_CAP_GET_TPMESTABLISHED | PTM_CAP_SET_LOCALITY |
	       PTM_CAP_RESET_TPMESTABLISHED | PTM_CAP_STOP | PTM_CAP_GET_CONFIG |
	       PTM_CAP_SET_DATAFD | PTM_CAP_SET_BUFFERSIZE | PTM_CAP_SEND_COMMAND_HEADER;
}

/* Body length rules per command: exact (body must be exactly min bytes), or at least min
 * bytes with anything after ignored. */
struct ctrl_shape {
	uint8_t min;
	bool exact;
};

static bool ctrl_shape_of(uint32_t code, struct ctrl_shape *s)
{
	switch (code) {
	case CMD_SHUTDOWN:
	case CMD_GET_TPMESTABLISHED:
	case CMD_HASH_START:
	case CMD_HASH_END:
	case CMD_CANCEL_TPM_CMD:
	case CMD_STORE_VOLATILE:
	case CMD_STOP:
	case CMD_GET_CONFIG:
		*s = (struct ctrl_shape){0, true};
		return true;
	case CMD_INIT:
		*s = (struct ctrl_shape){4, true};
		return true;
	case CMD_GET_CAPABILITY:
	case CMD_SET_DATAFD:
		*s = (struct ctrl_shape){0, false};
		return true;
	case CMD_SET_LOCALITY:
	case CMD_RESET_TPMESTABLISHED:
		*s = (struct ctrl_shape){1, false};
		return true;
	case CMD_HASH_DATA:
	case CMD_SET_BUFFERSIZE:
	case CMD_LOCK_STORAGE:
		*s = (struct ctrl_shape){4, false};
		return true;
	case CMD_GET_STATEBLOB:
	case CMD_SET_STATEBLOB:
		*s = (struct ctrl_shape){12, false};
		return true;
	case CMD_GET_INFO:
		*s = (struct ctrl_shape){16, false};
		return true;
	default:
		return false;
	}
}

enum ctrl_parse_status ctrl_parse(const uint8_t *buf, size_t len, struct ctrl_req *req,
				  size_t *need, uint32_t *res)
{
	struct ctrl_shape shape;
	struct rcursor c;
	const uint8_t *p;

	memset(req, 0, sizeof(*req));
	*need = 4;
	*res = RES_SUCCESS;
	rc_init(&c, buf, len);
	if (rc_u32(&c, &req->code) < 0)
		return CTRL_PARSE_MORE;
	if (!ctrl_shape_of(req->code, &shape)) {
		*res = RES_BAD_ORDINAL;
		return CTRL_PARSE_ERROR;
	}
	*need = 4u + shape.min;
	if (rc_remaining(&c) < shape.min)
		return CTRL_PARSE_MORE;
	if (shape.exact && rc_remaining(&c) != shape.min) {
		*res = RES_BAD_PARAMETER;
		return CTRL_PARSE_ERROR;
	}
	switch (req->code) {
	case CMD_INIT:
		rc_u32(&c, &req->u.init_flags);
		break;
	case CMD_SET_LOCALITY:
	case CMD_RESET_TPMESTABLISHED:
		rc_u8(&c, &req->u.locality);
		break;
	case CMD_SET_BUFFERSIZE:
		rc_u32(&c, &req->u.buffer_size);
		break;
	case CMD_LOCK_STORAGE:
		rc_u32(&c, &req->u.retries);
		break;
	case CMD_GET_STATEBLOB:
		rc_u32(&c, &req->u.get_blob.flags);
		rc_u32(&c, &req->u.get_blob.type);
		rc_u32(&c, &req->u.get_blob.offset);
		break;
	case CMD_GET_INFO:
		rc_u64(&c, &req->u.get_info.flags);
		rc_u32(&c, &req->u.get_info.offset);
		break;
	case CMD_HASH_DATA:
	case CMD_SET_STATEBLOB:
		if (req->code == CMD_SET_STATEBLOB) {
			rc_u32(&c, &req->u.set_blob.flags);
			rc_u32(&c, &req->u.set_blob.type);
		}
		rc_u32(&c, &req->data_len);
		if (req->data_len > CTRL_MAX_BLOB) {
			*res = req->code == CMD_SET_STATEBLOB ? RES_FAIL : RES_BAD_PARAMETER;
			return CTRL_PARSE_ERROR;
		}
		req->u.set_blob.length = req->data_len;
		*need = c.pos + req->data_len;
		if (rc_ptr(&c, &p, req->data_len) < 0)
			return CTRL_PARSE_MORE;
		req->data = p;
		break;
	default:
		break;
	}
	return c.failed ? CTRL_PARSE_MORE : CTRL_PARSE_DONE;
}

static void resp_u32s(struct ctrl_resp *r, const uint32_t *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		be32_put(r->small + 4 * i, v[i]);
	r->len = 4 * n;
}

void ctrl_error_response(uint32_t res, struct ctrl_resp *resp)
{
	resp->big = NULL;
	resp_u32s(resp, &res, 1);
}

static void ctrl_get_stateblob(struct ctrl_ctx *cx, const struct ctrl_req *req,
			       struct ctrl_resp *resp)
{
	uint8_t *raw = NULL, *env = NULL;
	uint32_t raw_len = 0, res;
	size_t env_len = 0, off = req->u.get_blob.offset, n;
	bool inner_encrypted = false;

	res = engine_get_blob(cx->engine, req->u.get_blob.type, &raw, &raw_len);
	if (res == RES_SUCCESS && cx->sw_blobs) {
		/* swtpm's format: what swtpm would answer with the same keys
		 * (docs/swtpm-formats.md) so the blob loads into swtpm as well as into vtpmd */
		bool decrypted = req->u.get_blob.flags & PTM_STATE_FLAG_DECRYPTED;

		if (swtpm_blob_encode(raw, raw_len, decrypted ? NULL : cx->sw_file_key,
				      cx->sw_mig_key, &env, &env_len, &inner_encrypted) != SWF_OK)
			res = RES_FAIL;
	} else if (res == RES_SUCCESS &&
		   blob_envelope_wrap(raw, raw_len, req->u.get_blob.type, cx->migration_key, &env,
				      &env_len) < 0) {
		res = RES_FAIL;
	}
	if (raw) {
		OPENSSL_cleanse(raw, raw_len);
		free(raw);
	}
	if (res == RES_SUCCESS && off > env_len)
		res = RES_BAD_PARAMETER;
	if (res != RES_SUCCESS) {
		/* res, state_flags, totlength = 0, length = 0 */
		uint32_t v[4] = {res, 0, 0, 0};
		resp_u32s(resp, v, 4);
		goto out;
	}
	/* Sockets carry the whole rest of the blob in one answer (totlength == length). */
	n = env_len - off;
	resp->big = malloc(16 + n);
	if (!resp->big) {
		uint32_t v[4] = {RES_FAIL, 0, 0, 0};
		resp_u32s(resp, v, 4);
		goto out;
	}
	be32_put(resp->big, RES_SUCCESS);
	/* state_flags: ENCRYPTED when the inner data are sealed with swtpm's file key */
	be32_put(resp->big + 4, inner_encrypted ? PTM_STATE_FLAG_ENCRYPTED : 0);
	be32_put(resp->big + 8, (uint32_t)n);
	be32_put(resp->big + 12, (uint32_t)n);
	memcpy(resp->big + 16, env + off, n);
	resp->len = 16 + n;
out:
	if (env) {
		OPENSSL_cleanse(env, env_len);
		free(env);
	}
}

static uint32_t ctrl_set_stateblob(struct ctrl_ctx *cx, const struct ctrl_req *req)
{
	bool req_encrypted = req->u.set_blob.flags & PTM_STATE_FLAG_ENCRYPTED;
	uint8_t *raw = NULL;
	size_t raw_len = 0;
	uint32_t res;

	if (engine_running(cx->engine))
		return RES_BAD_ORDINAL;
	if (req->data_len && swtpm_blob_is_swtpm_sealed(req->data, req->data_len, req_encrypted)) {
		/* swtpm's migration-key or file-key encryption (docs/swtpm-formats.md) */
		char err[256];
		int rc = swtpm_blob_decode(req->data, req->data_len, req_encrypted, cx->sw_file_key,
					   cx->sw_mig_key, &raw, &raw_len, err, sizeof(err));

		if (rc != SWF_OK) {
			log_warnx("CMD_SET_STATEBLOB (type %u) refused: %s", req->u.set_blob.type,
				  err);
			return swtpm_fmt_res(rc);
		}
	} else if (req_encrypted) {
		return RES_KEYNOTFOUND;
	} else if (req->data_len) {
		/* plain blobs (the same in both formats) and vtpmd's own sealed envelope */
		res = blob_envelope_unwrap(req->data, req->data_len, req->u.set_blob.type,
					   cx->migration_key, &raw, &raw_len);
		if (res != RES_SUCCESS)
			return res;
	}
	res = engine_set_blob(cx->engine, req->u.set_blob.type, raw, (uint32_t)raw_len);
	if (raw) {
		OPENSSL_cleanse(raw, raw_len);
		free(raw);
	}
	return res;
}

static void ctrl_get_info(struct ctrl_ctx *cx, const struct ctrl_req *req, struct ctrl_resp *resp)
{
	char *json = engine_get_info(cx->engine, req->u.get_info.flags);
	size_t total, off = req->u.get_info.offset, n;

	if (!json) {
		uint32_t v[3] = {RES_SIZE, 0, 0};
		resp_u32s(resp, v, 3);
		return;
	}
	total = strlen(json) + 1;
	if (off >= total - 1 && !(off == 0 && total == 1)) {
		uint32_t v[3] = {RES_BAD_PARAMETER, 0, 0};
		resp_u32s(resp, v, 3);
		free(json);
		return;
	}
	n = total - off;
	if (n > PTM_GETINFO_SIZE)
		n = PTM_GETINFO_SIZE;
	resp->big = malloc(12 + n);
	if (!resp->big) {
		uint32_t v[3] = {RES_SIZE, 0, 0};
		resp_u32s(resp, v, 3);
		free(json);
		return;
	}
	be32_put(resp->big, RES_SUCCESS);
	be32_put(resp->big + 4, (uint32_t)total);
	be32_put(resp->big + 8, (uint32_t)n);
	memcpy(resp->big + 12, json + off, n);
	resp->len = 12 + n;
	free(json);
}

static uint32_t ctrl_set_datafd(struct ctrl_ctx *cx, int fd)
{
	struct stat st;

	if (fd < 0)
		return RES_BAD_PARAMETER;
	if (cx->data_fd >= 0) {
		close(fd);
		return RES_IOERROR;
	}
	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		log_warnx("CMD_SET_DATAFD: the passed descriptor is not a socket");
		close(fd);
		return RES_BAD_PARAMETER;
	}
	cx->data_fd = fd;
	return RES_SUCCESS;
}

/* Passthrough mode (docs/vtpmd.8, PASSTHROUGH): the TPM is the host's, so what needs
 * libtpms state is refused with TPM_BAD_ORDINAL and a log line saying why. */
static void ctrl_execute_passthrough(struct ctrl_ctx *cx, const struct ctrl_req *req, int passed_fd,
				     struct ctrl_resp *resp)
{
	struct passthrough *p = cx->pt;
	uint32_t res = RES_SUCCESS;

	switch (req->code) {
	case CMD_GET_CAPABILITY: {
		uint32_t v[2] = {0, ctrl_capabilities_passthrough()};
		resp_u32s(resp, v, 2);
		return;
	}
	case CMD_INIT:
		res = passthrough_init(p);
		break;
	case CMD_SHUTDOWN:
		passthrough_stop(p);
		cx->shutdown = true;
		break;
	case CMD_STOP:
		passthrough_stop(p);
		break;
	case CMD_GET_TPMESTABLISHED: {
		/* the guest never runs at locality 3 or 4 on the host TPM: never established */
		uint32_t v[2] = {passthrough_running(p) ? RES_SUCCESS : RES_BAD_ORDINAL, 0};
		resp_u32s(resp, v, 2);
		return;
	}
	case CMD_SET_LOCALITY:
		if (req->u.locality > 4 || (req->u.locality == 4 && cx->reject_locality4))
			res = RES_BAD_LOCALITY;
		else
			passthrough_set_locality(p, req->u.locality);
		break;
	case CMD_RESET_TPMESTABLISHED:
		if (req->u.locality == 4 && cx->reject_locality4)
			res = RES_BAD_LOCALITY;
		else if (!passthrough_running(p))
			res = RES_BAD_ORDINAL;
		break; /* nothing to reset: the bit is never set for a guest */
	case CMD_GET_CONFIG: {
		uint32_t v[2] = {0, 0};
		resp_u32s(resp, v, 2);
		return;
	}
	case CMD_SET_DATAFD:
		res = ctrl_set_datafd(cx, passed_fd);
		break;
	case CMD_SET_BUFFERSIZE: {
		uint32_t v[4] = {0, 0, 0, 0};
		v[0] = passthrough_buffer_size(p, req->u.buffer_size, &v[1], &v[2], &v[3]);
		resp_u32s(resp, v, 4);
		return;
	}
	case CMD_GET_STATEBLOB: {
		uint32_t v[4] = {RES_BAD_ORDINAL, 0, 0, 0};
		log_info("CMD_GET_STATEBLOB refused: in passthrough mode the state is the host "
			 "TPM's and does not move");
		resp_u32s(resp, v, 4);
		return;
	}
	case CMD_GET_INFO: {
		uint32_t v[3] = {RES_BAD_ORDINAL, 0, 0};
		log_info("CMD_GET_INFO refused: passthrough mode has no libtpms to describe");
		resp_u32s(resp, v, 3);
		return;
	}
	default:
		/* SET_STATEBLOB, HASH_*, CANCEL, STORE_VOLATILE, LOCK_STORAGE */
		log_info("control command 0x%x refused: not available in passthrough mode",
			 req->code);
		res = RES_BAD_ORDINAL;
		break;
	}
	resp_u32s(resp, &res, 1);
}

void ctrl_execute(struct ctrl_ctx *cx, const struct ctrl_req *req, int passed_fd,
		  struct ctrl_resp *resp)
{
	struct engine *e = cx->engine;
	uint32_t res = RES_SUCCESS;

	resp->big = NULL;
	if (req->code != CMD_SET_DATAFD && passed_fd >= 0) {
		close(passed_fd); /* descriptors are only taken with SET_DATAFD */
		passed_fd = -1;
	}
	if (cx->pt) {
		ctrl_execute_passthrough(cx, req, passed_fd, resp);
		return;
	}
	switch (req->code) {
	case CMD_GET_CAPABILITY: {
		uint32_t v[2] = {0, ctrl_capabilities()};
		resp_u32s(resp, v, 2);
		return;
	}
	case CMD_INIT:
		res = engine_init(e, req->u.init_flags);
		break;
	case CMD_SHUTDOWN:
		engine_stop(e);
		cx->shutdown = true;
		break;
	case CMD_STOP:
		engine_stop(e);
		break;
	case CMD_GET_TPMESTABLISHED: {
		uint8_t bit = 0;
		uint32_t v[2];
		v[0] = engine_get_established(e, &bit);
		v[1] = (uint32_t)bit << 24; /* u8 bit then 3 bytes of padding */
		resp_u32s(resp, v, 2);
		return;
	}
	case CMD_SET_LOCALITY:
		if (req->u.locality > 4 || (req->u.locality == 4 && cx->reject_locality4))
			res = RES_BAD_LOCALITY;
		else
			engine_set_locality(e, req->u.locality);
		break;
	case CMD_HASH_START:
		res = engine_hash_start(e);
		break;
	case CMD_HASH_DATA:
		res = engine_hash_data(e, req->data, req->data_len);
		break;
	case CMD_HASH_END:
		res = engine_hash_end(e);
		break;
	case CMD_CANCEL_TPM_CMD:
		res = engine_cancel(e);
		break;
	case CMD_STORE_VOLATILE:
		res = engine_store_volatile(e);
		break;
	case CMD_RESET_TPMESTABLISHED:
		if (req->u.locality == 4 && cx->reject_locality4)
			res = RES_BAD_LOCALITY;
		else
			res = engine_reset_established(e, req->u.locality);
		break;
	case CMD_GET_STATEBLOB:
		ctrl_get_stateblob(cx, req, resp);
		return;
	case CMD_SET_STATEBLOB:
		res = ctrl_set_stateblob(cx, req);
		break;
	case CMD_GET_CONFIG: {
		uint32_t v[2] = {0, (cx->file_key ? PTM_CONFIG_FLAG_FILE_KEY : 0) |
					(cx->migration_key ? PTM_CONFIG_FLAG_MIGRATION_KEY : 0)};
		resp_u32s(resp, v, 2);
		return;
	}
	case CMD_SET_DATAFD:
		res = ctrl_set_datafd(cx, passed_fd);
		break;
	case CMD_SET_BUFFERSIZE: {
		uint32_t v[4] = {0, 0, 0, 0};
		v[0] = engine_buffer_size(e, req->u.buffer_size, &v[1], &v[2], &v[3]);
		resp_u32s(resp, v, 4);
		return;
	}
	case CMD_GET_INFO:
		ctrl_get_info(cx, req, resp);
		return;
	case CMD_LOCK_STORAGE:
		/* vtpmd holds the storage lock for its whole life. */
		break;
	default:
		res = RES_BAD_ORDINAL;
		break;
	}
	resp_u32s(resp, &res, 1);
}
