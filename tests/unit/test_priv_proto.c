/* The parent↔listener protocol (priv_proto.h): round trips, every malformed message refused,
 * and descriptors passed only where one is expected. */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/cursor.h"
#include "vtpmmgrd/priv_proto.h"
#include "unit.h"

static uint8_t buf[PRIV_MSG_MAX + 64];

static struct priv_msg request(uint16_t type)
{
	struct priv_msg m;

	memset(&m, 0, sizeof(m));
	m.kind = PRIV_REQUEST;
	m.id = 0x0102030405060708ULL;
	m.sender = 4242;
	m.type = type;
	m.req.type = type;
	memset(m.req.u.inst.uuid, 0xab, 16);
	m.req.u.inst.version = 77;
	memset(m.req.u.inst.digest, 0xcd, 32);
	memset(m.req.u.inst.proof, 0xef, 32);
	memset(m.req.u.inst.nonce, 0x12, 32);
	return m;
}

static struct priv_msg refusal(void)
{
	struct priv_msg m;

	memset(&m, 0, sizeof(m));
	m.kind = PRIV_REFUSED;
	m.id = 9;
	m.sender = 17;
	m.type = 0x0101;
	m.status = MGR_ERR_MALFORMED;
	m.named = true;
	snprintf(m.text, sizeof(m.text), "open: field uuid is 15 bytes, not 16");
	return m;
}

static void test_round_trip(void)
{
	static const uint16_t types[] = {MGR_OPEN, MGR_OPEN_CONFIRM, MGR_COMMIT, MGR_CLOSE,
					 MGR_RESUME};
	struct priv_msg m, d;
	char err[256];
	size_t n, k;

	unit_begin("round-trip-requests");
	for (k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
		m = request(types[k]);
		n = priv_encode(&m, buf);
		if (!CHECKF(n == PRIV_REQUEST_LEN, "length %zu", n) ||
		    !CHECKF(priv_decode(buf, n, true, &d, err, sizeof(err)) == 0, "%s", err))
			break;
		CHECK(d.kind == PRIV_REQUEST && d.id == m.id && d.sender == 4242);
		CHECK(d.type == types[k] && d.req.type == types[k]);
		CHECK(memcmp(&d.req.u.inst, &m.req.u.inst, sizeof(m.req.u.inst)) == 0);
	}
	unit_end();

	unit_begin("round-trip-refused");
	m = refusal();
	n = priv_encode(&m, buf);
	if (CHECKF(priv_decode(buf, n, true, &d, err, sizeof(err)) == 0, "%s", err)) {
		CHECK(d.kind == PRIV_REFUSED && d.id == 9 && d.sender == 17 && d.type == 0x0101);
		CHECK(d.status == MGR_ERR_MALFORMED && d.named);
		CHECK(strcmp(d.text, m.text) == 0);
	}
	unit_end();

	unit_begin("round-trip-conn-drop-gone");
	m = (struct priv_msg){.kind = PRIV_CONN, .id = 5};
	n = priv_encode(&m, buf);
	CHECK(n == 9 && priv_decode(buf, n, false, &d, err, sizeof(err)) == 0 &&
	      d.kind == PRIV_CONN && d.id == 5);
	m.kind = PRIV_DROP;
	n = priv_encode(&m, buf);
	CHECK(priv_decode(buf, n, false, &d, err, sizeof(err)) == 0 && d.kind == PRIV_DROP);
	m.kind = PRIV_GONE;
	n = priv_encode(&m, buf);
	CHECK(priv_decode(buf, n, true, &d, err, sizeof(err)) == 0 && d.kind == PRIV_GONE);
	unit_end();
}

/* Each case: bytes that must be refused in the direction given, with a reason. */
static void refused(const char *name, const uint8_t *p, size_t n, bool to_parent)
{
	struct priv_msg d;
	char err[256] = "";

	unit_begin(name);
	CHECKF(priv_decode(p, n, to_parent, &d, err, sizeof(err)) < 0, "accepted");
	CHECKF(err[0] != '\0', "refused without a reason");
	unit_end();
}

static void test_malformed(void)
{
	struct priv_msg m;
	uint8_t b[PRIV_MSG_MAX + 8] = {0};
	size_t n;

	refused("empty", b, 0, true);
	m = request(MGR_OPEN);
	n = priv_encode(&m, b);
	refused("request-cut-short", b, n - 1, true);
	refused("header-only", b, 5, true);
	b[n] = 0;
	refused("request-trailing-byte", b, n + 1, true);
	refused("request-to-listener", b, n, false);
	m = request(MGR_GROUP_CREATE); /* an admin request never comes from the listener */
	n = priv_encode(&m, b);
	refused("request-admin-type", b, n, true);
	m = request(0x7777);
	n = priv_encode(&m, b);
	refused("request-unknown-type", b, n, true);
	m = request(MGR_OPEN);
	m.id = 0;
	n = priv_encode(&m, b);
	refused("id-zero", b, n, true);
	m = request(MGR_OPEN);
	n = priv_encode(&m, b);
	be32_put(b + 9, 0x80000000u);
	refused("sender-out-of-range", b, n, true);
	b[0] = 99;
	refused("unknown-kind", b, n, true);

	m = refusal();
	m.status = MGR_ERR_DENIED; /* only the parent decides a denial */
	n = priv_encode(&m, b);
	refused("refused-status-denied", b, n, true);
	m = refusal();
	m.text[3] = '\n';
	n = priv_encode(&m, b);
	refused("refused-control-byte", b, n, true);
	m = refusal();
	m.text[0] = '\0';
	n = priv_encode(&m, b);
	refused("refused-no-reason", b, n, true);
	m = refusal();
	n = priv_encode(&m, b);
	b[1 + 8 + 4 + 2 + 4] = 2;
	refused("refused-flag-2", b, n, true);
	m = refusal();
	n = priv_encode(&m, b);
	be16_put(b + 1 + 8 + 4 + 2 + 4 + 1, (uint16_t)(n + 5)); /* text longer than the rest */
	refused("refused-text-length", b, n, true);
	memset(b, 'x', sizeof(b));
	b[0] = PRIV_REFUSED;
	refused("oversized", b, PRIV_MSG_MAX + 1, true);

	m = (struct priv_msg){.kind = PRIV_CONN, .id = 5};
	n = priv_encode(&m, b);
	refused("conn-to-parent", b, n, true);
	b[n] = 1;
	refused("conn-trailing-byte", b, n + 1, false);
	m.kind = PRIV_GONE;
	n = priv_encode(&m, b);
	refused("gone-to-listener", b, n, false);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void test_fd_passing(void)
{
	struct priv_msg m = {.kind = PRIV_CONN, .id = 3}, d;
	char err[128];
	int sp[2], got = -1, before, p[2];
	ssize_t n;

	unit_begin("fd-passed-with-conn");
	if (!CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == 0) ||
	    !CHECK(pipe2(p, O_CLOEXEC) == 0)) {
		unit_end();
		return;
	}
	CHECK(priv_send(sp[0], &m, p[1]) == 0);
	n = priv_recv(sp[1], buf, &got);
	CHECK(n == 9 && got >= 0 && priv_decode(buf, (size_t)n, false, &d, err, sizeof(err)) == 0);
	if (got >= 0) {
		CHECK(write(got, "z", 1) == 1); /* the same pipe */
		char c = 0;
		CHECK(read(p[0], &c, 1) == 1 && c == 'z');
		CHECK(fcntl(got, F_GETFD) & FD_CLOEXEC);
		close(got);
	}
	unit_end();

	unit_begin("fd-dropped-where-none-is-taken");
	before = count_fds();
	m.kind = PRIV_GONE;
	CHECK(priv_send(sp[0], &m, p[1]) == 0);
	n = priv_recv(sp[1], buf, NULL); /* the parent's way: no descriptor is ever taken */
	CHECK(n == 9);
	CHECKF(count_fds() == before, "descriptors %d, before %d", count_fds(), before);
	unit_end();

	unit_begin("end-of-stream");
	close(sp[0]);
	CHECK(priv_recv(sp[1], buf, &got) == 0 && got == -1);
	unit_end();
	close(sp[1]);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	test_round_trip();
	test_malformed();
	test_fd_passing();
	return unit_exit();
}
