#include "vtpmd/passthrough.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include <tss2/tss2_tcti.h>

#include "common/cursor.h"
#include "common/errmsg.h"
#include "common/log.h"
#include "vtpmd/tpm_cmd.h"

#define TPM_ST_NO_SESSIONS 0x8001u
#define TPM_ST_SESSIONS	   0x8002u
#define TPM_CC_STARTUP	   0x144u
#define TPM_RC_SUCCESS	   0x000u
#define TPM_RC_INITIALIZE  0x100u
/* How long one command may take on the back end (RSA key generation on a slow TPM). */
#define PT_RECEIVE_TIMEOUT_MS 300000

typedef TSS2_RC (*tctildr_init_fn)(const char *name_conf, TSS2_TCTI_CONTEXT **ctx);
typedef void (*tctildr_finalize_fn)(TSS2_TCTI_CONTEXT **ctx);

struct passthrough {
	void *lib;
	tctildr_finalize_fn finalize;
	TSS2_TCTI_CONTEXT *tcti;
	struct cmd_filter filter;
	bool running;
	uint8_t locality;
	uint32_t buffer_size;
	struct passthrough_stats stats;
	uint8_t rsp[PT_BUFFER_MAX];
	uint8_t err_rsp[10];
};

void passthrough_error_response(uint8_t out[10], uint32_t rc)
{
	be16_put(out, TPM_ST_NO_SESSIONS);
	be32_put(out + 2, 10);
	be32_put(out + 6, rc);
}

/* dlsym's result as a function pointer (POSIX guarantees the representations agree). */
static void *sym(void *lib, const char *name)
{
	return dlsym(lib, name);
}

int passthrough_open(struct passthrough **out, const char *tcti, const struct cmd_filter *filter,
		     char *err, size_t errlen)
{
	struct passthrough *p;
	tctildr_init_fn init;
	void *fn;
	TSS2_RC rc;

	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return errmsg(err, errlen, "out of memory");
	p->lib = dlopen("libtss2-tctildr.so.0", RTLD_NOW | RTLD_LOCAL);
	if (!p->lib) {
		errmsg(err, errlen,
		       "passthrough needs tpm2-tss's TCTI loader libtss2-tctildr.so.0, which "
		       "cannot be loaded (install the libtss2-tctildr0 package): %s",
		       dlerror());
		goto fail;
	}
	fn = sym(p->lib, "Tss2_TctiLdr_Initialize");
	memcpy(&init, &fn, sizeof(init));
	fn = sym(p->lib, "Tss2_TctiLdr_Finalize");
	memcpy(&p->finalize, &fn, sizeof(p->finalize));
	if (!init || !p->finalize) {
		errmsg(err, errlen,
		       "libtss2-tctildr.so.0 lacks Tss2_TctiLdr_Initialize or "
		       "Tss2_TctiLdr_Finalize (tpm2-tss 2.3 or newer is needed)");
		goto fail;
	}
	rc = init(tcti, &p->tcti);
	if (rc != TSS2_RC_SUCCESS || !p->tcti) {
		errmsg(err, errlen,
		       "cannot open the TPM through the TCTI '%s' (tpm2-tss error 0x%x)", tcti, rc);
		p->tcti = NULL;
		goto fail;
	}
	p->filter = *filter;
	p->running = true; /* a host TPM is started by the host's firmware */
	p->buffer_size = PT_BUFFER_MAX;
	*out = p;
	return 0;
fail:
	passthrough_close(p);
	return -1;
}

void passthrough_close(struct passthrough *p)
{
	if (!p)
		return;
	if (p->tcti)
		p->finalize(&p->tcti);
	if (p->lib)
		dlclose(p->lib);
	free(p);
}

/* One command to the back end and its checked answer in p->rsp. 0, or -1 (logged). */
static int forward(struct passthrough *p, const uint8_t *cmd, uint32_t len, uint32_t *rsp_len)
{
	struct rcursor c;
	size_t size = sizeof(p->rsp);
	uint32_t rsize;
	uint16_t tag;
	TSS2_RC rc;

	rc = Tss2_Tcti_Transmit(p->tcti, len, cmd);
	if (rc != TSS2_RC_SUCCESS) {
		log_warnx("passthrough: sending a command to the TPM failed (tpm2-tss error 0x%x)",
			  rc);
		return -1;
	}
	rc = Tss2_Tcti_Receive(p->tcti, &size, p->rsp, PT_RECEIVE_TIMEOUT_MS);
	if (rc != TSS2_RC_SUCCESS) {
		log_warnx("passthrough: receiving the TPM's response failed (tpm2-tss error 0x%x)",
			  rc);
		return -1;
	}
	rc_init(&c, p->rsp, size);
	if (rc_u16(&c, &tag) < 0 || rc_u32(&c, &rsize) < 0 || rsize != size || size < 10 ||
	    (tag != TPM_ST_NO_SESSIONS && tag != TPM_ST_SESSIONS)) {
		log_warnx("passthrough: the TPM's response is malformed (%zu bytes)", size);
		return -1;
	}
	*rsp_len = (uint32_t)size;
	return 0;
}

static void answer_error(struct passthrough *p, uint32_t rc, const uint8_t **rsp, uint32_t *rsp_len)
{
	passthrough_error_response(p->err_rsp, rc);
	*rsp = p->err_rsp;
	*rsp_len = sizeof(p->err_rsp);
}

void passthrough_process(struct passthrough *p, const uint8_t *cmd, uint32_t len,
			 const uint8_t **rsp, uint32_t *rsp_len)
{
	struct rcursor c;
	enum cmd_verdict v;
	uint32_t size, cc, rc;
	uint16_t tag;

	rc_init(&c, cmd, len);
	if (!p->running) {
		answer_error(p, PT_RC_FAILURE, rsp, rsp_len);
		return;
	}
	if (rc_u16(&c, &tag) < 0 || rc_u32(&c, &size) < 0 || size != len || size < 10 ||
	    size > p->buffer_size) {
		answer_error(p, 0x142 /* TPM_RC_COMMAND_SIZE */, rsp, rsp_len);
		p->stats.denied++;
		return;
	}
	if (tag != TPM_ST_NO_SESSIONS && tag != TPM_ST_SESSIONS) {
		answer_error(p, PT_RC_BAD_TAG, rsp, rsp_len);
		p->stats.denied++;
		return;
	}
	v = cmd_filter_check(&p->filter, cmd, len, &cc);
	if (v != CMD_ALLOW) {
		const char *name = cmd_filter_name(cc);
		log_info("passthrough: refused command 0x%x (%s): %s", cc, name ? name : "no name",
			 cmd_verdict_text(v));
		answer_error(p, PT_RC_DENIED, rsp, rsp_len);
		p->stats.denied++;
		return;
	}
	if (forward(p, cmd, len, rsp_len) < 0) {
		answer_error(p, PT_RC_FAILURE, rsp, rsp_len);
		p->stats.failed++;
		return;
	}
	p->stats.forwarded++;
	*rsp = p->rsp;
	/* The host TPM was started by the host: a guest's TPM2_Startup (firmware at every boot)
	 * finds it started (TPM_RC_INITIALIZE). The guest asked for a started TPM and has one:
	 * it is told so (SeaBIOS takes TPM_RC_INITIALIZE as a failure and stops using the
	 * TPM). */
	if (cc == TPM_CC_STARTUP && *rsp_len == 10 && be32_get(p->rsp + 6) == TPM_RC_INITIALIZE) {
		rc = TPM_RC_SUCCESS;
		answer_error(p, rc, rsp, rsp_len);
	}
}

/* TPM2_GetCapability(TPM2_CAP_HANDLES, first) and TPM2_FlushContext of each handle. */
static void flush_handles(struct passthrough *p, uint32_t first)
{
	uint8_t cmd[TPM_CMD_MAX];
	uint32_t rsp_len, i, n = 0;
	TPML_HANDLE h;
	size_t len = tpm_cmd_get_handles(cmd, sizeof(cmd), first, TPM2_MAX_CAP_HANDLES);

	if (len == 0 || forward(p, cmd, (uint32_t)len, &rsp_len) < 0 ||
	    tpm_rsp_handles(p->rsp, rsp_len, &h) < 0)
		return;
	for (i = 0; i < h.count; i++) {
		if ((h.handle[i] >> 24) != (first >> 24))
			continue;
		len = tpm_cmd_flush_context(cmd, sizeof(cmd), h.handle[i]);
		if (len && forward(p, cmd, (uint32_t)len, &rsp_len) == 0)
			n++;
	}
	if (n)
		log_info("passthrough: CMD_INIT flushed %u handle(s) of type 0x%02x", n,
			 first >> 24);
}

uint32_t passthrough_init(struct passthrough *p)
{
	flush_handles(p, 0x80000000u); /* transient objects */
	flush_handles(p, 0x02000000u); /* loaded sessions */
	flush_handles(p, 0x03000000u); /* saved sessions */
	p->running = true;
	return 0;
}

bool passthrough_running(const struct passthrough *p)
{
	return p->running;
}

void passthrough_stop(struct passthrough *p)
{
	p->running = false;
}

void passthrough_set_locality(struct passthrough *p, uint8_t loc)
{
	p->locality = loc;
}

uint32_t passthrough_buffer_size(struct passthrough *p, uint32_t wanted, uint32_t *cur,
				 uint32_t *min, uint32_t *max)
{
	if (wanted) {
		if (p->running)
			return 0x0a; /* TPM_BAD_ORDINAL: only while stopped, as swtpm */
		if (wanted < PT_BUFFER_MIN)
			wanted = PT_BUFFER_MIN;
		if (wanted > PT_BUFFER_MAX)
			wanted = PT_BUFFER_MAX;
		p->buffer_size = wanted;
	}
	*cur = p->buffer_size;
	*min = PT_BUFFER_MIN;
	*max = PT_BUFFER_MAX;
	return 0;
}

uint32_t passthrough_max_command(const struct passthrough *p)
{
	return p->buffer_size;
}

void passthrough_stats(const struct passthrough *p, struct passthrough_stats *s)
{
	*s = p->stats;
}
