#include "vtpmd/engine.h"

#include <stdlib.h>
#include <string.h>

#include <libtpms/tpm_error.h>
#include <libtpms/tpm_library.h>
#include <libtpms/tpm_nvfilename.h>
#include <libtpms/tpm_tis.h>
#include <openssl/crypto.h>

#include "common/cursor.h"
#include "common/log.h"
#include "vtpmd/ctrl_proto.h"
#include "vtpmd/tpm_cmd.h"

/* A blob as libtpms hands it over: owned bytes, len 0 = absent. */
struct blob {
	uint8_t *data;
	uint32_t len;
};

struct engine {
	struct state_store *store;
	struct blob permanent; /* as last committed (or being loaded by MainInit) */
	struct blob volatile_state;
	struct blob staged_permanent; /* from CMD_SET_STATEBLOB, applied at the next INIT */
	struct blob staged_volatile;
	bool staged;
	bool defer_commit; /* inside an INIT that applies staged blobs */
	bool batch;	   /* start-up init and Startup: one commit at the end (batch_dirty) */
	bool batch_dirty;
	bool running;
	uint8_t locality;
	uint32_t buffer_size; /* wanted; 0 = libtpms default */
	uint32_t cur_buffer_size;
	uint32_t last_cc;
	uint8_t *rsp;
	uint32_t rsp_cap;
	engine_commit_hook hook;
	void *hook_arg;
	engine_startup_hook startup_hook;
	void *startup_hook_arg;
	bool in_startup_hook;
	bool failed; /* the startup hook failed: TPM_RC_FAILURE until the next init */
	struct state_slot_info loaded; /* the slot loaded at start; version 0 if none */
};

/* libtpms callbacks carry no context pointer; this is the one engine of the process. */
static struct engine *the_engine;

static void blob_clear(struct blob *b)
{
	if (b->data) {
		OPENSSL_cleanse(b->data, b->len);
		free(b->data);
	}
	b->data = NULL;
	b->len = 0;
}

static int blob_set(struct blob *b, const uint8_t *data, uint32_t len)
{
	uint8_t *copy = NULL;

	if (len) {
		copy = malloc(len);
		if (!copy)
			return -1;
		memcpy(copy, data, len);
	}
	blob_clear(b);
	b->data = copy;
	b->len = len;
	return 0;
}

/* Write permanent + volatile as the new state; durable on success. */
static int engine_commit(struct engine *e, const struct blob *perm, const struct blob *vol)
{
	struct state_blobs blobs = {
	    .permanent = perm->data,
	    .permanent_len = perm->len,
	    .volatile_state = vol->data,
	    .volatile_len = vol->len,
	};
	struct state_slot_info info;
	uint8_t *payload = NULL;
	size_t payload_len = 0;
	char err[256];
	int rc;

	if (state_payload_build(&blobs, &payload, &payload_len) != STATE_OK) {
		log_warnx("cannot build state payload: out of memory");
		return -1;
	}
	rc = state_store_commit(e->store, payload, payload_len, &info, err, sizeof(err));
	OPENSSL_cleanse(payload, payload_len);
	free(payload);
	if (rc != STATE_OK) {
		log_warnx("state write failed, TPM goes to failure mode: %s", err);
		return -1;
	}
	log_debug("state version %llu committed (%zu bytes)", (unsigned long long)info.version,
		  payload_len);
	if (e->hook && e->hook(e->hook_arg, &info) != 0) {
		log_warnx("state version %llu was not accepted by the manager",
			  (unsigned long long)info.version);
		return -1;
	}
	return 0;
}

static TPM_RESULT cb_nvram_init(void)
{
	return TPM_SUCCESS;
}

static TPM_RESULT cb_nvram_loaddata(unsigned char **data, uint32_t *length, uint32_t tpm_number,
				    const char *name)
{
	struct engine *e = the_engine;
	const struct blob *b;

	(void)tpm_number;
	*data = NULL;
	*length = 0;
	if (strcmp(name, TPM_PERMANENT_ALL_NAME) == 0)
		b = &e->permanent;
	else if (strcmp(name, TPM_VOLATILESTATE_NAME) == 0)
		b = &e->volatile_state;
	else
		return TPM_RETRY;
	if (!b->len)
		return TPM_RETRY;
	*data = malloc(b->len);
	if (!*data)
		return TPM_FAIL;
	memcpy(*data, b->data, b->len);
	*length = b->len;
	return TPM_SUCCESS;
}

static TPM_RESULT cb_nvram_storedata(const unsigned char *data, uint32_t length,
				     uint32_t tpm_number, const char *name)
{
	struct engine *e = the_engine;
	struct blob next = {0};

	(void)tpm_number;
	if (strcmp(name, TPM_PERMANENT_ALL_NAME) != 0) {
		log_warnx("libtpms asked to store unknown blob '%s'", name);
		return TPM_FAIL;
	}
	if (blob_set(&next, data, length) < 0)
		return TPM_FAIL;
	if (e->batch)
		e->batch_dirty = true;
	else if (!e->defer_commit && engine_commit(e, &next, &e->volatile_state) < 0) {
		blob_clear(&next);
		return TPM_FAIL;
	}
	blob_clear(&e->permanent);
	e->permanent = next;
	return TPM_SUCCESS;
}

static TPM_RESULT cb_nvram_deletename(uint32_t tpm_number, const char *name, TPM_BOOL must_exist)
{
	struct engine *e = the_engine;
	struct blob none = {0};

	(void)tpm_number;
	if (strcmp(name, TPM_VOLATILESTATE_NAME) != 0 || !e->volatile_state.len)
		return must_exist ? TPM_FAIL : TPM_SUCCESS;
	if (e->batch)
		e->batch_dirty = true;
	else if (!e->defer_commit && engine_commit(e, &e->permanent, &none) < 0)
		return TPM_FAIL;
	blob_clear(&e->volatile_state);
	return TPM_SUCCESS;
}

static TPM_RESULT cb_io_init(void)
{
	return TPM_SUCCESS;
}

static TPM_RESULT cb_io_getlocality(TPM_MODIFIER_INDICATOR *loc, uint32_t tpm_number)
{
	(void)tpm_number;
	*loc = the_engine->locality;
	return TPM_SUCCESS;
}

static TPM_RESULT cb_io_getphysicalpresence(TPM_BOOL *pp, uint32_t tpm_number)
{
	(void)tpm_number;
	*pp = 0;
	return TPM_SUCCESS;
}

static struct libtpms_callbacks engine_callbacks = {
    .sizeOfStruct = sizeof(struct libtpms_callbacks),
    .tpm_nvram_init = cb_nvram_init,
    .tpm_nvram_loaddata = cb_nvram_loaddata,
    .tpm_nvram_storedata = cb_nvram_storedata,
    .tpm_nvram_deletename = cb_nvram_deletename,
    .tpm_io_init = cb_io_init,
    .tpm_io_getlocality = cb_io_getlocality,
    .tpm_io_getphysicalpresence = cb_io_getphysicalpresence,
};

static int engine_load(struct engine *e, const uint8_t *want_uuid, char *err, size_t errlen)
{
	struct state_slot_info info;
	struct state_blobs blobs;
	uint8_t *payload = NULL;
	size_t payload_len = 0;
	int rc;

	rc = state_store_load(e->store, want_uuid, &payload, &payload_len, &info, err, errlen);
	if (rc == 1)
		return 0; /* fresh vTPM: libtpms manufactures it at the first INIT */
	if (rc != STATE_OK)
		return -1;
	if (err[0]) { /* loaded, but the other slot was damaged */
		log_warnx("%s", err);
		err[0] = '\0';
	}
	rc = state_payload_parse(payload, payload_len, &blobs);
	if (rc == STATE_OK && !blobs.permanent_len)
		rc = STATE_ERR_FORMAT;
	if (rc == STATE_OK &&
	    (blob_set(&e->permanent, blobs.permanent, blobs.permanent_len) < 0 ||
	     blob_set(&e->volatile_state, blobs.volatile_state, blobs.volatile_len) < 0))
		rc = STATE_ERR_NOMEM;
	OPENSSL_cleanse(payload, payload_len);
	free(payload);
	if (rc != STATE_OK) {
		snprintf(err, errlen, "state version %llu: %s", (unsigned long long)info.version,
			 rc == STATE_ERR_FORMAT ? "authentic but holds no TPM permanent state"
						: state_strerror(rc));
		return -1;
	}
	e->loaded = info;
	log_info("loaded state version %llu", (unsigned long long)info.version);
	return 0;
}

const struct state_slot_info *engine_loaded(const struct engine *e)
{
	return &e->loaded;
}

int engine_create(struct engine **out, struct state_store *store, const uint8_t *want_uuid,
		  char *err, size_t errlen)
{
	struct engine *e;
	uint32_t min, max;

	if (the_engine) {
		snprintf(err, errlen, "libtpms allows one TPM per process");
		return -1;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	e->store = store;
	if (engine_load(e, want_uuid, err, errlen) < 0) {
		engine_destroy(e);
		return -1;
	}
	if (TPMLIB_ChooseTPMVersion(TPMLIB_TPM_VERSION_2) != TPM_SUCCESS ||
	    TPMLIB_RegisterCallbacks(&engine_callbacks) != TPM_SUCCESS) {
		snprintf(err, errlen, "libtpms refused TPM 2.0 or our callbacks");
		engine_destroy(e);
		return -1;
	}
	e->cur_buffer_size = TPMLIB_SetBufferSize(0, &min, &max);
	the_engine = e;
	*out = e;
	return 0;
}

void engine_set_commit_hook(struct engine *e, engine_commit_hook hook, void *arg)
{
	e->hook = hook;
	e->hook_arg = arg;
}

void engine_set_startup_hook(struct engine *e, engine_startup_hook hook, void *arg)
{
	e->startup_hook = hook;
	e->startup_hook_arg = arg;
}

void engine_destroy(struct engine *e)
{
	if (!e)
		return;
	if (e->running)
		TPMLIB_Terminate();
	blob_clear(&e->permanent);
	blob_clear(&e->volatile_state);
	blob_clear(&e->staged_permanent);
	blob_clear(&e->staged_volatile);
	free(e->rsp);
	if (the_engine == e)
		the_engine = NULL;
	free(e);
}

bool engine_running(const struct engine *e)
{
	return e->running;
}

/* Shut the TPM down orderly (as swtpm >= 0.8 does) so that a STOP or INIT does not count
 * as a disorderly shutdown against the dictionary-attack logic. */
static void engine_auto_shutdown(struct engine *e)
{
	uint8_t cmd[TPM_CMD_MAX];
	const uint8_t *rsp;
	uint32_t rsp_len;
	size_t len;

	if (e->last_cc == TPM2_CC_Shutdown)
		return;
	len = tpm_cmd_shutdown(cmd, sizeof(cmd), TPM2_SU_STATE);
	if (len)
		engine_process(e, cmd, (uint32_t)len, &rsp, &rsp_len);
}

void engine_stop(struct engine *e)
{
	if (!e->running)
		return;
	engine_auto_shutdown(e);
	TPMLIB_Terminate();
	e->running = false;
}

/* Swap staged blobs in for MainInit; keep the committed ones to restore on failure. */
static void engine_swap_staged(struct engine *e)
{
	struct blob t;

	t = e->permanent;
	e->permanent = e->staged_permanent;
	e->staged_permanent = t;
	t = e->volatile_state;
	e->volatile_state = e->staged_volatile;
	e->staged_volatile = t;
}

uint32_t engine_init(struct engine *e, uint32_t init_flags)
{
	uint32_t min, max;
	TPM_RESULT res;
	bool staged = e->staged;

	engine_stop(e);
	if (staged) {
		engine_swap_staged(e);
		e->defer_commit = true;
	}
	e->cur_buffer_size = TPMLIB_SetBufferSize(e->buffer_size, &min, &max);
	res = TPMLIB_MainInit();
	e->defer_commit = false;
	if (res == TPM_SUCCESS && staged) {
		struct blob none = {0};
		const struct blob *vol =
		    (init_flags & PTM_INIT_FLAG_DELETE_VOLATILE) ? &none : &e->volatile_state;
		if (engine_commit(e, &e->permanent, vol) < 0) {
			TPMLIB_Terminate();
			res = TPM_FAIL;
		}
	}
	if (staged) {
		if (res != TPM_SUCCESS)
			engine_swap_staged(e); /* back to the stored state */
		blob_clear(&e->staged_permanent);
		blob_clear(&e->staged_volatile);
		e->staged = false;
	}
	if (res != TPM_SUCCESS) {
		log_warnx("TPM initialisation failed (libtpms result 0x%x)", res);
		return res;
	}
	e->running = true;
	e->failed = false;
	e->last_cc = 0;
	if ((init_flags & PTM_INIT_FLAG_DELETE_VOLATILE) && e->volatile_state.len) {
		struct blob none = {0};
		if (engine_commit(e, &e->permanent, &none) < 0)
			return RES_FAIL;
		blob_clear(&e->volatile_state);
	}
	return RES_SUCCESS;
}

uint32_t engine_startup(struct engine *e, enum engine_startup type)
{
	uint8_t cmd[TPM_CMD_MAX];
	const uint8_t *rsp;
	uint32_t rsp_len;
	size_t len;

	switch (type) {
	case STARTUP_NONE:
		return 0;
	case STARTUP_CLEAR:
	case STARTUP_DEACTIVATED: /* TPM 2 has no deactivated state; start cleared */
		len = tpm_cmd_startup(cmd, sizeof(cmd), TPM2_SU_CLEAR);
		break;
	case STARTUP_STATE:
		len = tpm_cmd_startup(cmd, sizeof(cmd), TPM2_SU_STATE);
		break;
	default:
		return TPM2_RC_FAILURE;
	}
	if (len == 0)
		return TPM2_RC_FAILURE;
	engine_process(e, cmd, (uint32_t)len, &rsp, &rsp_len);
	return tpm_rsp_rc(rsp, rsp_len);
}

uint32_t engine_init_startup(struct engine *e, enum engine_startup type, uint32_t *startup_rc)
{
	uint32_t res;

	e->batch = true;
	e->batch_dirty = false;
	res = engine_init(e, 0);
	if (res == RES_SUCCESS)
		*startup_rc = engine_startup(e, type);
	e->batch = false;
	if (res == RES_SUCCESS && e->batch_dirty &&
	    engine_commit(e, &e->permanent, &e->volatile_state) < 0) {
		engine_stop(e);
		return RES_FAIL;
	}
	return res;
}

/* A TPM2_Startup(CLEAR) command. */
static bool is_startup_clear(const uint8_t *cmd, uint32_t len)
{
	return len >= 12 && be32_get(cmd + 6) == TPM2_CC_Startup && cmd[10] == 0 && cmd[11] == 0;
}

void engine_process(struct engine *e, const uint8_t *cmd, uint32_t len, const uint8_t **rsp,
		    uint32_t *rsp_len)
{
	static const uint8_t failure[10] = {0x80, 0x01, 0x00, 0x00, 0x00,
					    0x0a, 0x00, 0x00, 0x01, 0x01};
	uint8_t answer[10];
	uint32_t n = 0;

	if (!e->running || e->failed ||
	    TPMLIB_Process(&e->rsp, &n, &e->rsp_cap, (unsigned char *)cmd, len) != TPM_SUCCESS ||
	    n < 10) {
		*rsp = failure;
		*rsp_len = sizeof(failure);
		return;
	}
	if (len >= 10)
		e->last_cc = be32_get(cmd + 6);
	if (e->startup_hook && !e->in_startup_hook && n == sizeof(answer) &&
	    be32_get(e->rsp + 6) == 0 && is_startup_clear(cmd, len)) {
		/* The hook's commands reuse the response buffer: keep Startup's answer. */
		memcpy(answer, e->rsp, sizeof(answer));
		e->in_startup_hook = true;
		e->failed = e->startup_hook(e->startup_hook_arg, e) != 0;
		e->in_startup_hook = false;
		if (e->failed) {
			*rsp = failure;
			*rsp_len = sizeof(failure);
			return;
		}
		memcpy(e->rsp, answer, sizeof(answer));
	}
	*rsp = e->rsp;
	*rsp_len = n;
}

void engine_set_locality(struct engine *e, uint8_t loc)
{
	e->locality = loc;
}

uint8_t engine_locality(const struct engine *e)
{
	return e->locality;
}

uint32_t engine_buffer_size(struct engine *e, uint32_t wanted, uint32_t *cur, uint32_t *min,
			    uint32_t *max)
{
	if (wanted && e->running)
		return RES_BAD_ORDINAL;
	*cur = TPMLIB_SetBufferSize(wanted, min, max);
	if (wanted) {
		e->buffer_size = *cur;
		e->cur_buffer_size = *cur;
	}
	return RES_SUCCESS;
}

uint32_t engine_max_command_size(const struct engine *e)
{
	return e->cur_buffer_size;
}

uint32_t engine_store_volatile(struct engine *e)
{
	unsigned char *buf = NULL;
	uint32_t len = 0;
	struct blob next = {0};
	uint32_t res;

	if (!e->running)
		return RES_BAD_ORDINAL;
	res = TPMLIB_VolatileAll_Store(&buf, &len);
	if (res != TPM_SUCCESS)
		return res;
	next.data = buf;
	next.len = len;
	if (engine_commit(e, &e->permanent, &next) < 0) {
		blob_clear(&next);
		return RES_FAIL;
	}
	blob_clear(&e->volatile_state);
	e->volatile_state = next;
	return RES_SUCCESS;
}

uint32_t engine_get_blob(struct engine *e, uint32_t type, uint8_t **blob, uint32_t *len)
{
	enum TPMLIB_StateType st;
	unsigned char *buf = NULL;
	uint32_t n = 0;
	TPM_RESULT res;

	*blob = NULL;
	*len = 0;
	if (!e->running)
		return RES_BAD_ORDINAL;
	switch (type) {
	case PTM_BLOB_TYPE_PERMANENT:
		st = TPMLIB_STATE_PERMANENT;
		break;
	case PTM_BLOB_TYPE_VOLATILE:
		st = TPMLIB_STATE_VOLATILE;
		break;
	case PTM_BLOB_TYPE_SAVESTATE:
		return RES_RETRY; /* a TPM 2 has no savestate blob */
	default:
		return RES_BAD_PARAMETER;
	}
	res = TPMLIB_GetState(st, &buf, &n);
	if (res != TPM_SUCCESS || !n) {
		free(buf);
		return res == TPM_SUCCESS ? RES_RETRY : res;
	}
	*blob = buf;
	*len = n;
	return RES_SUCCESS;
}

uint32_t engine_set_blob(struct engine *e, uint32_t type, const uint8_t *blob, uint32_t len)
{
	struct blob *target;

	if (e->running)
		return RES_BAD_ORDINAL;
	switch (type) {
	case PTM_BLOB_TYPE_PERMANENT:
		target = &e->staged_permanent;
		break;
	case PTM_BLOB_TYPE_VOLATILE:
		target = &e->staged_volatile;
		break;
	case PTM_BLOB_TYPE_SAVESTATE:
		return len ? RES_BAD_PARAMETER : RES_SUCCESS;
	default:
		return RES_BAD_PARAMETER;
	}
	if (!e->staged) {
		/* The first staged blob starts from the stored state, so that loading only a
		 * volatile blob keeps the stored permanent one (libtpms needs both). */
		if (blob_set(&e->staged_permanent, e->permanent.data, e->permanent.len) < 0 ||
		    blob_set(&e->staged_volatile, e->volatile_state.data, e->volatile_state.len) <
			0)
			return RES_FAIL;
		e->staged = true;
	}
	return blob_set(target, blob, len) < 0 ? RES_FAIL : RES_SUCCESS;
}

uint32_t engine_hash_start(struct engine *e)
{
	return e->running ? TPM_IO_Hash_Start() : RES_BAD_ORDINAL;
}

uint32_t engine_hash_data(struct engine *e, const uint8_t *data, uint32_t len)
{
	return e->running ? TPM_IO_Hash_Data(data, len) : RES_BAD_ORDINAL;
}

uint32_t engine_hash_end(struct engine *e)
{
	return e->running ? TPM_IO_Hash_End() : RES_BAD_ORDINAL;
}

uint32_t engine_cancel(struct engine *e)
{
	return e->running ? TPMLIB_CancelCommand() : RES_BAD_ORDINAL;
}

uint32_t engine_get_established(struct engine *e, uint8_t *bit)
{
	TPM_BOOL b = 0;
	uint32_t res;

	if (!e->running)
		return RES_BAD_ORDINAL;
	res = TPM_IO_TpmEstablished_Get(&b);
	*bit = b ? 1 : 0;
	return res;
}

uint32_t engine_reset_established(struct engine *e, uint8_t loc)
{
	uint8_t saved = e->locality;
	uint32_t res;

	if (!e->running)
		return RES_BAD_ORDINAL;
	if (loc > 4)
		return RES_BAD_LOCALITY;
	e->locality = loc;
	res = TPM_IO_TpmEstablished_Reset();
	e->locality = saved;
	return res;
}

char *engine_get_info(struct engine *e, uint64_t flags)
{
	(void)e;
	return TPMLIB_GetInfo((enum TPMLIB_InfoFlags)(flags & 0xffffffffu));
}
