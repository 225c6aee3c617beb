/*
 * ctrl_channel.h — swtpm's control channel: request parsing (pure, fuzzed) and execution.
 *
 * A request is a u32 command code followed by a body whose length depends on the code
 * (there is no length field), so the parser says how many bytes it still needs. Extra
 * bytes after a fixed-size body are ignored, as swtpm does: QEMU pads SET_LOCALITY and
 * RESET_TPMESTABLISHED to 4 bytes.
 */
#ifndef VTPMD_CTRL_CHANNEL_H
#define VTPMD_CTRL_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vtpmd/ctrl_proto.h"
#include "vtpmd/engine.h"
#include "vtpmd/passthrough.h"
#include "vtpmd/swtpm_format.h"

struct ctrl_req {
	uint32_t code;
	union {
		uint32_t init_flags;
		uint8_t locality;
		struct {
			uint32_t flags, type, offset;
		} get_blob;
		struct {
			uint32_t flags, type, length;
		} set_blob;
		uint32_t buffer_size;
		struct {
			uint64_t flags;
			uint32_t offset;
		} get_info;
		uint32_t retries;
	} u;
	const uint8_t *data; /* HASH_DATA bytes or SET_STATEBLOB blob, inside the buffer */
	uint32_t data_len;
};

enum ctrl_parse_status {
	CTRL_PARSE_DONE,  /* *req is complete */
	CTRL_PARSE_MORE,  /* need *need bytes in total */
	CTRL_PARSE_ERROR, /* answer *res and drop the request */
};

/* Largest request: SET_STATEBLOB header plus the largest blob. */
#define CTRL_MAX_REQUEST (16u + CTRL_MAX_BLOB)

enum ctrl_parse_status ctrl_parse(const uint8_t *buf, size_t len, struct ctrl_req *req,
				  size_t *need, uint32_t *res);

/* What the control channel acts on besides the engine. */
struct ctrl_ctx {
	struct engine *engine;
	struct passthrough *pt;	      /* passthrough mode: the host TPM instead of engine */
	int data_fd;		      /* current data channel fd, -1 if none; SET_DATAFD sets it */
	bool file_key;		      /* --key in use (GET_CONFIG) */
	const uint8_t *migration_key; /* 32 bytes with --migration-key, else NULL */
	/* swtpm 0.7.1's raw keys from --key / --migration-key (swtpm_format.h), NULL if none */
	const struct swtpm_key *sw_file_key;
	const struct swtpm_key *sw_mig_key;
	bool sw_blobs; /* GET_STATEBLOB answers in swtpm's format (standalone, not managed) */
	bool reject_locality4; /* --locality reject-locality-4 */
	bool shutdown;	       /* set by CMD_SHUTDOWN: exit after answering */
};

struct ctrl_resp {
	uint8_t small[32];
	uint8_t *big; /* malloc'd when larger than small (GET_STATEBLOB, GET_INFO) */
	size_t len;
};

/* Execute a parsed request. passed_fd: fd that came with it (SCM_RIGHTS) or -1; it is
 * consumed (kept as the data channel or closed). Fills resp; free resp->big after use. */
void ctrl_execute(struct ctrl_ctx *cx, const struct ctrl_req *req, int passed_fd,
		  struct ctrl_resp *resp);
/* The answer to a request that failed to parse. */
void ctrl_error_response(uint32_t res, struct ctrl_resp *resp);
/* Capabilities vtpmd advertises. */
uint32_t ctrl_capabilities(void);
/* Capabilities in passthrough mode: no state blobs (QEMU then blocks migration), no hashing,
 * cancel, volatile state, info or storage lock. */
uint32_t ctrl_capabilities_passthrough(void);

#endif
