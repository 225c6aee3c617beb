/*
 * engine.h — the TPM 2.0 engine (libtpms) and its state, as the control and data
 * channels see it.
 *
 * libtpms keeps all TPM state in globals, so there is one engine per process. Its NV
 * callbacks land here: every NV commit of libtpms ("permall") is written to the state
 * store, durably, before TPMLIB_Process returns, so a command is never answered before
 * the state it changed is on disk. If the write fails libtpms is told so and enters
 * failure mode rather than answering success for a write that is not stored.
 */
#ifndef VTPMD_ENGINE_H
#define VTPMD_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/state_store.h"

struct engine;

/* Called after a TPM2_Startup(CLEAR) has succeeded (the PCRs were just reset), before it is
 * answered; it may run commands (engine_process). A non-zero return puts the TPM in failure
 * mode until the next CMD_INIT: every command, that Startup first, is answered
 * TPM_RC_FAILURE. */
typedef int (*engine_startup_hook)(void *arg, struct engine *e);

/* Called after each durable commit, before the command that caused it is answered.
 * A non-zero return fails the commit (the manager refused it). */
typedef int (*engine_commit_hook)(void *arg, const struct state_slot_info *info);

enum engine_startup { STARTUP_NONE = 0, STARTUP_CLEAR, STARTUP_STATE, STARTUP_DEACTIVATED };

/* Load the vTPM's state from store (which the engine then owns). Does not start the TPM.
 * want_uuid: NULL in standalone mode. Returns 0, or -1 with a precise message in err. */
int engine_create(struct engine **out, struct state_store *store, const uint8_t *want_uuid,
		  char *err, size_t errlen);
void engine_set_commit_hook(struct engine *e, engine_commit_hook hook, void *arg);
void engine_set_startup_hook(struct engine *e, engine_startup_hook hook, void *arg);
/* The state slot loaded at start (version 0: there was no state). */
const struct state_slot_info *engine_loaded(const struct engine *e);
void engine_destroy(struct engine *e);

bool engine_running(const struct engine *e);
/* CMD_INIT: (re)start the TPM from the stored (or pending, see engine_set_blob) state. */
uint32_t engine_init(struct engine *e, uint32_t init_flags);
/* CMD_STOP / CMD_SHUTDOWN: orderly TPM2_Shutdown(STATE) if needed, then terminate. */
void engine_stop(struct engine *e);
/* Send TPM2_Startup of the given kind (for --flags startup-*). Returns the TPM RC. */
uint32_t engine_startup(struct engine *e, enum engine_startup type);
/* engine_init (no flags) and engine_startup (its result in *startup_rc) as one step, for
 * --flags not-need-init: what libtpms stores in between is committed once, at the end
 * (nothing is answered before it, so one durable write serves both). RES_FAIL if that commit
 * fails (the TPM is stopped then). */
uint32_t engine_init_startup(struct engine *e, enum engine_startup type, uint32_t *startup_rc);

/* Run one TPM command. Response in *rsp (owned by the engine, valid until the next call).
 * When the TPM is not running, answers TPM_RC_FAILURE like swtpm. */
void engine_process(struct engine *e, const uint8_t *cmd, uint32_t len, const uint8_t **rsp,
		    uint32_t *rsp_len);

void engine_set_locality(struct engine *e, uint8_t loc);
uint8_t engine_locality(const struct engine *e);

/* CMD_SET_BUFFERSIZE: wanted 0 queries. Returns a result code. */
uint32_t engine_buffer_size(struct engine *e, uint32_t wanted, uint32_t *cur, uint32_t *min,
			    uint32_t *max);
uint32_t engine_max_command_size(const struct engine *e);

uint32_t engine_store_volatile(struct engine *e);
/* CMD_GET_STATEBLOB: raw libtpms blob of a PTM_BLOB_TYPE_*; *blob malloc'd (cleanse, free).
 * RES_RETRY with *len 0 when the blob does not exist. */
uint32_t engine_get_blob(struct engine *e, uint32_t type, uint8_t **blob, uint32_t *len);
/* CMD_SET_STATEBLOB: stage a raw blob; takes effect (and is stored) at the next successful
 * engine_init. A staged blob that libtpms rejects is dropped and the stored state kept. */
uint32_t engine_set_blob(struct engine *e, uint32_t type, const uint8_t *blob, uint32_t len);

uint32_t engine_hash_start(struct engine *e);
uint32_t engine_hash_data(struct engine *e, const uint8_t *data, uint32_t len);
uint32_t engine_hash_end(struct engine *e);
uint32_t engine_cancel(struct engine *e);
uint32_t engine_get_established(struct engine *e, uint8_t *bit);
uint32_t engine_reset_established(struct engine *e, uint8_t loc);
/* JSON from TPMLIB_GetInfo; caller frees. */
char *engine_get_info(struct engine *e, uint64_t flags);

#endif
