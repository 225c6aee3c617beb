#include "vtpmd/manager_client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "common/mgr_proto.h"

#define MGR_TIMEOUT_MS 10000

struct mgr_client {
	int fd;
	uint8_t uuid[16];
	uint8_t buf[MGR_MAX_MSG];
	struct mgr_msg msg;
};

static int mgr_connect(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "manager socket path %s is too long", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(err, errlen, "cannot reach the manager at %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Send the request in c->buf (len bytes) and parse the answer into c->msg. */
static int mgr_round_trip(struct mgr_client *c, size_t len, uint16_t type, char *err, size_t errlen)
{
	struct pollfd p = {.fd = c->fd, .events = POLLIN};
	uint32_t status;
	char text[MGR_MAX_TEXT + 1];
	ssize_t n;
	int r;

	if (send(c->fd, c->buf, len, MSG_NOSIGNAL) != (ssize_t)len) {
		snprintf(err, errlen, "manager: send failed: %s", strerror(errno));
		return -1;
	}
	do
		r = poll(&p, 1, MGR_TIMEOUT_MS);
	while (r < 0 && errno == EINTR);
	if (r <= 0) {
		snprintf(err, errlen, "manager: no answer within %d s", MGR_TIMEOUT_MS / 1000);
		return -1;
	}
	n = recv(c->fd, c->buf, sizeof(c->buf), MSG_TRUNC);
	if (n <= 0 || (size_t)n > sizeof(c->buf)) {
		snprintf(err, errlen, "manager: %s",
			 n == 0	 ? "closed the connection"
			 : n < 0 ? strerror(errno)
				 : "answer too long");
		return -1;
	}
	if (mgr_parse(c->buf, (size_t)n, &c->msg, err, errlen) < 0)
		return -1;
	if (c->msg.type != (type | MGR_RESPONSE) ||
	    mgr_get_u32(&c->msg, MGR_F_STATUS, &status) < 0) {
		snprintf(err, errlen, "manager: answer of type 0x%x does not match request 0x%x",
			 c->msg.type, type);
		return -1;
	}
	if (status != MGR_OK) {
		if (mgr_get_text(&c->msg, MGR_F_MESSAGE, text, sizeof(text)) < 0)
			text[0] = '\0';
		snprintf(err, errlen, "manager refused: %s%s%s", mgr_status_name(status),
			 text[0] ? ": " : "", text);
		return -1;
	}
	return 0;
}

int mgr_client_open(struct mgr_client **out, const char *socket_path, const uint8_t uuid[16],
		    struct mgr_open_result *res, char *err, size_t errlen)
{
	struct mgr_client *c = calloc(1, sizeof(*c));
	struct mgr_builder b;
	size_t len;

	*out = NULL;
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(c->uuid, uuid, 16);
	c->fd = mgr_connect(socket_path, err, errlen);
	if (c->fd < 0) {
		free(c);
		return -1;
	}
	mgr_build_init(&b, c->buf, sizeof(c->buf), MGR_OPEN);
	mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
	len = mgr_build_finish(&b);
	if (mgr_round_trip(c, len, MGR_OPEN, err, errlen) < 0 ||
	    mgr_get_fixed(&c->msg, MGR_F_STATE_KEY, res->state_key, 32) < 0 ||
	    mgr_get_u64(&c->msg, MGR_F_VERSION, &res->version) < 0 ||
	    mgr_get_fixed(&c->msg, MGR_F_DIGEST, res->digest, 32) < 0 ||
	    mgr_get_fixed(&c->msg, MGR_F_GROUP_UUID, res->group_uuid, 16) < 0) {
		if (!err[0])
			snprintf(err, errlen, "manager: open answer lacks a field");
		OPENSSL_cleanse(c->buf, sizeof(c->buf));
		OPENSSL_cleanse(res->state_key, sizeof(res->state_key));
		close(c->fd);
		free(c);
		return -1;
	}
	OPENSSL_cleanse(c->buf, sizeof(c->buf)); /* it held the key */
	*out = c;
	return 0;
}

int mgr_client_commit(void *client, const struct state_slot_info *info)
{
	struct mgr_client *c = client;
	struct mgr_builder b;
	char err[512] = "";
	size_t len;

	mgr_build_init(&b, c->buf, sizeof(c->buf), MGR_COMMIT);
	mgr_put_bytes(&b, MGR_F_UUID, c->uuid, 16);
	mgr_put_u64(&b, MGR_F_VERSION, info->version);
	mgr_put_bytes(&b, MGR_F_DIGEST, info->digest, 32);
	len = mgr_build_finish(&b);
	if (mgr_round_trip(c, len, MGR_COMMIT, err, sizeof(err)) < 0) {
		log_warnx("state version %llu: %s", (unsigned long long)info->version, err);
		return -1;
	}
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
	mgr_build_init(&b, c->buf, sizeof(c->buf), MGR_CLOSE);
	mgr_put_bytes(&b, MGR_F_UUID, c->uuid, 16);
	len = mgr_build_finish(&b);
	if (mgr_round_trip(c, len, MGR_CLOSE, err, sizeof(err)) < 0)
		log_info("close at the manager: %s", err);
	close(c->fd);
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
