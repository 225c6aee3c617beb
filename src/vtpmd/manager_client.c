#include "vtpmd/manager_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "common/mgr_proto.h"
#include "common/resume_proof.h"
#include "vtpmd/mgr_retry.h"

#define MGR_TIMEOUT_MS 10000
/* A reconnect tried before a guest's command: the manager answers a resume in well under
 * a millisecond when it is up; an absent one refuses the connect at once. */
#define MGR_QUICK_MS   100
#define RETRY_FIRST_MS 50
#define RETRY_MAX_MS   1000
/* A waiting commit holds a guest's command: it looks for the manager more often. */
#define COMMIT_PAUSE_MAX_MS 250

/* How one exchange with the manager ended. */
enum rt {
	RT_OK = 0,
	RT_LOST = -1,	  /* no connection, or it broke: reconnect and try again */
	RT_RETRY = -2,	  /* MGR_ERR_RETRY: the manager cannot take it now: try again */
	RT_REFUSED = -3,  /* refused for good (err says why) */
	RT_PROTOCOL = -4, /* the answer makes no sense: treated as a lost connection */
};

struct mgr_client {
	int fd; /* -1 while disconnected */
	char path[108];
	uint8_t uuid[16];
	char uuid_text[37];
	uint8_t state_key[32];
	uint64_t version; /* the newest commit the manager accepted */
	uint8_t digest[32];
	unsigned retry_ms;     /* current back-off */
	struct timespec retry; /* next reconnect attempt (CLOCK_MONOTONIC) */
	int abort_fd;
	void (*on_abort)(void *arg);
	void *abort_arg;
	struct mgr_retry retries; /* guest commands answered TPM_RC_RETRY (mgr_retry.h) */
	uint8_t buf[MGR_MAX_MSG];
	struct mgr_msg msg;
};

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* nonblock: a manager that accepts no connection now (its backlog is full) is "not now"
 * (EAGAIN) rather than a wait; the connected socket blocks again either way. */
static int mgr_connect(const char *path, bool nonblock, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, fl;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "manager socket path %s is too long", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    (nonblock &&
	     ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0))) {
		snprintf(err, errlen, "cannot reach the manager at %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Send the request in c->buf (len bytes) and parse the answer into c->msg. */
static enum rt mgr_round_trip(struct mgr_client *c, size_t len, uint16_t type, int timeout_ms,
			      char *err, size_t errlen)
{
	struct pollfd p = {.fd = c->fd, .events = POLLIN};
	uint32_t status;
	char text[MGR_MAX_TEXT + 1];
	ssize_t n;
	int r;

	if (c->fd < 0) {
		snprintf(err, errlen, "manager: not connected");
		return RT_LOST;
	}
	if (send(c->fd, c->buf, len, MSG_NOSIGNAL) != (ssize_t)len) {
		snprintf(err, errlen, "manager: send failed: %s", strerror(errno));
		return RT_LOST;
	}
	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r <= 0) {
		snprintf(err, errlen, "manager: no answer within %d ms", timeout_ms);
		return RT_LOST;
	}
	n = recv(c->fd, c->buf, sizeof(c->buf), MSG_TRUNC);
	if (n <= 0 || (size_t)n > sizeof(c->buf)) {
		snprintf(err, errlen, "manager: %s",
			 n == 0	 ? "closed the connection"
			 : n < 0 ? strerror(errno)
				 : "answer too long");
		return n == 0 || n < 0 ? RT_LOST : RT_PROTOCOL;
	}
	if (mgr_parse(c->buf, (size_t)n, &c->msg, err, errlen) < 0)
		return RT_PROTOCOL;
	if (c->msg.type != (type | MGR_RESPONSE) ||
	    mgr_get_u32(&c->msg, MGR_F_STATUS, &status) < 0) {
		snprintf(err, errlen, "manager: answer of type 0x%x does not match request 0x%x",
			 c->msg.type, type);
		return RT_PROTOCOL;
	}
	if (status != MGR_OK) {
		if (mgr_get_text(&c->msg, MGR_F_MESSAGE, text, sizeof(text)) < 0)
			text[0] = '\0';
		snprintf(err, errlen, "manager refused: %s%s%s", mgr_status_name(status),
			 text[0] ? ": " : "", text);
		return status == MGR_ERR_RETRY ? RT_RETRY : RT_REFUSED;
	}
	return RT_OK;
}

static void disconnect(struct mgr_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* Schedule the next reconnect attempt, backing off. */
static void backoff(struct mgr_client *c)
{
	int64_t at;

	c->retry_ms = c->retry_ms ? c->retry_ms * 2 : RETRY_FIRST_MS;
	if (c->retry_ms > RETRY_MAX_MS)
		c->retry_ms = RETRY_MAX_MS;
	at = now_ms() + c->retry_ms;
	c->retry.tv_sec = at / 1000;
	c->retry.tv_nsec = (at % 1000) * 1000000;
}

int mgr_client_open(struct mgr_client **out, const char *socket_path, const uint8_t uuid[16],
		    struct mgr_open_result *res, char *err, size_t errlen)
{
	struct mgr_client *c = calloc(1, sizeof(*c));
	struct mgr_builder b;
	uint8_t nonce[32];
	size_t len;

	*out = NULL;
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	c->abort_fd = -1;
	if (snprintf(c->path, sizeof(c->path), "%s", socket_path) >= (int)sizeof(c->path)) {
		snprintf(err, errlen, "manager socket path %s is too long", socket_path);
		free(c);
		return -1;
	}
	memcpy(c->uuid, uuid, 16);
	uuid_format(uuid, c->uuid_text);
	c->fd = mgr_connect(socket_path, false, err, errlen);
	if (c->fd < 0) {
		free(c);
		return -1;
	}
	/* two steps (mgr_proto.h): the identity is checked, then this same process confirms */
	mgr_build_init(&b, c->buf, sizeof(c->buf), MGR_OPEN);
	mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
	len = mgr_build_finish(&b);
	if (mgr_round_trip(c, len, MGR_OPEN, MGR_TIMEOUT_MS, err, errlen) != RT_OK ||
	    mgr_get_fixed(&c->msg, MGR_F_NONCE, nonce, sizeof(nonce)) < 0)
		goto fail;
	mgr_build_init(&b, c->buf, sizeof(c->buf), MGR_OPEN_CONFIRM);
	mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
	mgr_put_bytes(&b, MGR_F_NONCE, nonce, sizeof(nonce));
	len = mgr_build_finish(&b);
	if (mgr_round_trip(c, len, MGR_OPEN_CONFIRM, MGR_TIMEOUT_MS, err, errlen) != RT_OK ||
	    mgr_get_fixed(&c->msg, MGR_F_STATE_KEY, res->state_key, 32) < 0 ||
	    mgr_get_u64(&c->msg, MGR_F_VERSION, &res->version) < 0 ||
	    mgr_get_fixed(&c->msg, MGR_F_DIGEST, res->digest, 32) < 0 ||
	    mgr_get_fixed(&c->msg, MGR_F_GROUP_UUID, res->group_uuid, 16) < 0) {
	fail:
		if (!err[0])
			snprintf(err, errlen, "manager: open answer lacks a field");
		OPENSSL_cleanse(c->buf, sizeof(c->buf));
		OPENSSL_cleanse(res->state_key, sizeof(res->state_key));
		close(c->fd);
		free(c);
		return -1;
	}
	OPENSSL_cleanse(c->buf, sizeof(c->buf)); /* it held the key */
	memcpy(c->state_key, res->state_key, sizeof(c->state_key));
	c->version = res->version;
	memcpy(c->digest, res->digest, sizeof(c->digest));
	*out = c;
	return 0;
}

void mgr_client_set_abort(struct mgr_client *c, int abort_fd, void (*on_abort)(void *arg),
			  void *arg)
{
	c->abort_fd = abort_fd;
	c->on_abort = on_abort;
	c->abort_arg = arg;
}

/* Connect and prove to the manager that this is its live instance of the vTPM, waiting
 * at most timeout_ms for its answer. Idempotent: an answer given up on leaves the manager
 * holding this instance, which the next resume confirms. */
static enum rt resume(struct mgr_client *c, int timeout_ms, char *err, size_t errlen)
{
	uint64_t retried;
	struct mgr_builder b;
	uint8_t proof[32];
	size_t len;
	enum rt rt;

	c->fd = mgr_connect(c->path, true, err, errlen);
	if (c->fd < 0)
		return RT_LOST;
	if (resume_proof(c->state_key, c->uuid, getpid(), c->version, c->digest, proof) < 0) {
		snprintf(err, errlen, "cannot compute the resume proof");
		disconnect(c);
		return RT_LOST;
	}
	mgr_build_init(&b, c->buf, sizeof(c->buf), MGR_RESUME);
	mgr_put_bytes(&b, MGR_F_UUID, c->uuid, 16);
	mgr_put_u64(&b, MGR_F_VERSION, c->version);
	mgr_put_bytes(&b, MGR_F_DIGEST, c->digest, 32);
	mgr_put_bytes(&b, MGR_F_PROOF, proof, 32);
	OPENSSL_cleanse(proof, sizeof(proof));
	len = mgr_build_finish(&b);
	rt = mgr_round_trip(c, len, MGR_RESUME, timeout_ms, err, errlen);
	if (rt != RT_OK) {
		disconnect(c);
		return rt == RT_PROTOCOL ? RT_LOST : rt;
	}
	c->retry_ms = 0;
	log_info("vTPM %s: the manager took this instance back", c->uuid_text);
	retried = mgr_retry_end(&c->retries);
	if (retried)
		log_info("vTPM %s: %llu guest commands were answered TPM_RC_RETRY while the "
			 "manager was away",
			 c->uuid_text, (unsigned long long)retried);
	return RT_OK;
}

void mgr_client_lost(struct mgr_client *c)
{
	if (!c || c->fd < 0)
		return;
	log_warnx("vTPM %s: the manager went away; reconnecting", c->uuid_text);
	disconnect(c);
	c->retry_ms = 0;
	backoff(c);
}

int mgr_client_retry_in(const struct mgr_client *c)
{
	int64_t left;

	if (!c || c->fd >= 0)
		return -1;
	left = (int64_t)c->retry.tv_sec * 1000 + c->retry.tv_nsec / 1000000 - now_ms();
	return left < 0 ? 0 : left > RETRY_MAX_MS ? RETRY_MAX_MS : (int)left;
}

int mgr_client_reconnect(struct mgr_client *c)
{
	char err[MGR_MAX_TEXT + 128] = "";
	enum rt rt;

	if (!c || c->fd >= 0)
		return 0;
	rt = resume(c, MGR_TIMEOUT_MS, err, sizeof(err));
	if (rt == RT_REFUSED) {
		log_warnx("vTPM %s: the manager does not take this instance back: %s", c->uuid_text,
			  err);
		return -1;
	}
	if (rt != RT_OK) {
		log_debug("vTPM %s: %s", c->uuid_text, err);
		backoff(c);
	}
	return 0;
}

/* Sleep ms, watching the abort fd: a stop request ends the wait (and the process). */
static void wait_or_abort(struct mgr_client *c, unsigned ms)
{
	struct pollfd p = {.fd = c->abort_fd, .events = POLLIN};

	if (poll(&p, c->abort_fd >= 0 ? 1 : 0, (int)ms) > 0 && c->on_abort) {
		log_warnx("vTPM %s: stopping while a state write waits for the manager; the next "
			  "start reports it",
			  c->uuid_text);
		c->on_abort(c->abort_arg);
	}
}

int mgr_client_commit(void *client, const struct state_slot_info *info)
{
	struct mgr_client *c = client;
	struct mgr_builder b;
	char err[MGR_MAX_TEXT + 128] = "";
	int64_t since = now_ms(), told = since;
	unsigned pause = 0;
	size_t len;

	for (;;) {
		enum rt rt = RT_LOST;

		if (c->fd < 0)
			rt = resume(c, MGR_TIMEOUT_MS, err, sizeof(err));
		if (c->fd >= 0) {
			mgr_build_init(&b, c->buf, sizeof(c->buf), MGR_COMMIT);
			mgr_put_bytes(&b, MGR_F_UUID, c->uuid, 16);
			mgr_put_u64(&b, MGR_F_VERSION, info->version);
			mgr_put_bytes(&b, MGR_F_DIGEST, info->digest, 32);
			len = mgr_build_finish(&b);
			rt = mgr_round_trip(c, len, MGR_COMMIT, MGR_TIMEOUT_MS, err, sizeof(err));
			if (rt == RT_LOST || rt == RT_PROTOCOL)
				disconnect(c);
		}
		if (rt == RT_OK) {
			c->version = info->version;
			memcpy(c->digest, info->digest, sizeof(c->digest));
			if (now_ms() - since >= 1000)
				log_info(
				    "vTPM %s: state version %llu accepted by the manager after "
				    "%lld ms",
				    c->uuid_text, (unsigned long long)info->version,
				    (long long)(now_ms() - since));
			return 0;
		}
		if (rt == RT_REFUSED) {
			log_warnx("vTPM %s: state version %llu: %s", c->uuid_text,
				  (unsigned long long)info->version, err);
			return -1;
		}
		if (now_ms() - told >= MGR_WAIT_LOG_S * 1000 || pause == 0) {
			log_warnx("vTPM %s: state version %llu waits for the manager (%lld s so "
				  "far): %s",
				  c->uuid_text, (unsigned long long)info->version,
				  (long long)((now_ms() - since) / 1000), err);
			told = now_ms();
		}
		pause = pause ? pause * 2 : RETRY_FIRST_MS;
		if (pause > COMMIT_PAUSE_MAX_MS)
			pause = COMMIT_PAUSE_MAX_MS;
		wait_or_abort(c, pause);
	}
}

int mgr_client_admit(struct mgr_client *c, uint32_t cc)
{
	char err[MGR_MAX_TEXT + 128] = "";
	struct pollfd p;
	enum rt rt;

	if (!c || !tpm2_cc_may_write(cc))
		return 1;
	if (c->fd >= 0) {
		/* gone since the poll loop last looked? (it never speaks unasked) */
		p = (struct pollfd){.fd = c->fd, .events = POLLIN};
		if (poll(&p, 1, 0) > 0)
			mgr_client_lost(c);
	}
	if (c->fd < 0) {
		rt = resume(c, MGR_QUICK_MS, err, sizeof(err));
		if (rt == RT_REFUSED) {
			log_warnx("vTPM %s: the manager does not take this instance back: %s",
				  c->uuid_text, err);
			return -1;
		}
		if (rt != RT_OK)
			log_debug("vTPM %s: %s", c->uuid_text, err);
	}
	if (c->fd >= 0)
		return 1;
	if (mgr_retry_decide(&c->retries, cc, now_ms()) == MGR_RETRY_RUN) {
		log_info("vTPM %s: command 0x%x was answered TPM_RC_RETRY for %d s; running it "
			 "now, its state write waits for the manager",
			 c->uuid_text, cc, MGR_RETRY_HOLD_MS / 1000);
		return 1;
	}
	if (c->retries.answered == 1)
		log_warnx("vTPM %s: the manager is unreachable: guest commands that may change "
			  "the state are answered TPM_RC_RETRY, not run, until it is back",
			  c->uuid_text);
	return 0;
}

int mgr_client_fd(const struct mgr_client *c)
{
	return c ? c->fd : -1;
}

void mgr_client_close(struct mgr_client *c)
{
	struct mgr_builder b;
	char err[256];
	size_t len;

	if (!c)
		return;
	if (c->fd >= 0) {
		mgr_build_init(&b, c->buf, sizeof(c->buf), MGR_CLOSE);
		mgr_put_bytes(&b, MGR_F_UUID, c->uuid, 16);
		len = mgr_build_finish(&b);
		if (mgr_round_trip(c, len, MGR_CLOSE, MGR_TIMEOUT_MS, err, sizeof(err)) != RT_OK)
			log_info("close at the manager: %s", err);
		close(c->fd);
	}
	OPENSSL_cleanse(c->state_key, sizeof(c->state_key));
	free(c);
}

int mgr_check_loaded(uint64_t mgr_version, const uint8_t mgr_digest[32], uint64_t file_version,
		     const uint8_t file_digest[32], char *err, size_t errlen)
{
	if (file_version < mgr_version) {
		snprintf(err, errlen,
			 "rollback: the state file holds version %llu but the manager recorded "
			 "version %llu; refusing the older state",
			 (unsigned long long)file_version, (unsigned long long)mgr_version);
		return -1;
	}
	if (file_version == mgr_version) {
		if (mgr_version && CRYPTO_memcmp(mgr_digest, file_digest, 32) != 0) {
			snprintf(
			    err, errlen,
			    "the state file's version %llu is not the one the manager recorded "
			    "(digest differs); refusing it",
			    (unsigned long long)file_version);
			return -1;
		}
		return 0;
	}
	if (file_version == mgr_version + 1)
		return 1; /* written, then the process died before the manager's answer */
	snprintf(err, errlen,
		 "the state file holds version %llu, more than one write past the manager's "
		 "record %llu; it was not written by this vTPM's instance",
		 (unsigned long long)file_version, (unsigned long long)mgr_version);
	return -1;
}
