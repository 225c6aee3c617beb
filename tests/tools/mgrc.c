/*
 * mgrc — a tiny manager-protocol client for tests: builds a request from the command line,
 * sends it on a vtpmmgrd socket (SOCK_SEQPACKET) and prints the response's fields.
 *
 * Usage: mgrc [options] TYPE [FIELD...] [-- TYPE [FIELD...]]...
 *   TYPE    a request name (open, commit, close, host-init, host-status, host-reseal,
 *           group-create, group-list, group-show, group-delete, vtpm-create, vtpm-list,
 *           vtpm-show, vtpm-delete, label-register, audit-list) or a number (0x0201)
 *   FIELD   name=VALUE or a flag name: uuid=, group-uuid= (UUID text), name=, pattern=,
 *           label=, state= (text), pid= (number or "self"), pcr-mask=, count=, offset=
 *           (u32), version= (u64), digest=, bin-digest=, state-key= (64 hex digits),
 *           any-digest, force, more (flags), tag:N=HEX (any tag, raw value)
 *   Requests separated by "--" go on the same connection, one after the other.
 * Options:
 *   -s PATH                 the socket (default /run/vtpm/admin.sock)
 *   --register-self ADMIN LABEL
 *                           first register LABEL for this process's pid over the admin
 *                           socket ADMIN (a launcher's job; lets mgrc open a vTPM)
 *   --raw HEX               send these bytes as one datagram instead of a request
 *   --raw-size N            send N bytes (a valid header, then filler) as one datagram
 *   --register-uuid UUID    (before --register-self) the registration names this vTPM: the
 *                           process may open no other
 *   --no-confirm            an "open" answered with a nonce is not confirmed (by default
 *                           mgrc sends MGR_OPEN_CONFIRM with it, as vtpmd does)
 *   --hold                  after the last response print "held" and wait for a signal
 *                           (an open vTPM stays open while mgrc lives)
 *   --pass-fd               attach a descriptor (a pipe's write end, SCM_RIGHTS) to each
 *                           request (the manager must close it and answer as usual)
 *   --child-sends           a forked child sends the requests on the connection this
 *                           process made (the manager must see another sender)
 *   --exec CMD [ARGS...]    (with --register-self; last option) after registering, exec
 *                           CMD in this same process, so CMD (e.g. vtpmd --manager)
 *                           carries the registered label
 * Output: one line per field, "name=value" (records: "record" then indented fields);
 * "---" between responses. Exit: the last response's status (0 ok, see mgr_status);
 * 64 usage; 65 cannot connect, no answer or an unparseable answer.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cursor.h"
#include "common/mgr_proto.h"
#include "vtpmmgrd/request.h"
#include "vtpmmgrd/seqpacket.h"

#define EXIT_USAGE 64
#define EXIT_IO	   65
#define TIMEOUT_MS 30000

static uint8_t buf[2 * MGR_MAX_MSG]; /* room for oversized raw datagrams */
static bool pass_fd;
static bool reg_has_uuid; /* --register-uuid: the registration names the vTPM */
static uint8_t reg_uuid[16];
static struct mgr_msg msg, rec;

static const uint16_t types[] = {
    MGR_OPEN,	     MGR_COMMIT,       MGR_CLOSE,      MGR_HOST_INIT,	MGR_HOST_STATUS,
    MGR_HOST_RESEAL, MGR_GROUP_CREATE, MGR_GROUP_LIST, MGR_GROUP_SHOW,	MGR_GROUP_DELETE,
    MGR_VTPM_CREATE, MGR_VTPM_LIST,    MGR_VTPM_SHOW,  MGR_VTPM_DELETE, MGR_LABEL_REGISTER,
    MGR_AUDIT_LIST,  MGR_OPEN_CONFIRM, MGR_RESUME};

static void usage(void)
{
	fprintf(stderr, "usage: mgrc [-s SOCKET] [--register-self ADMIN LABEL] [--hold] "
			"[--raw HEX | --raw-size N] TYPE [FIELD...] [-- TYPE [FIELD...]]...\n");
}

static int unhex(const char *s, uint8_t *out, size_t cap, size_t *n)
{
	size_t len = strlen(s), i;
	unsigned v;

	if (len % 2 || len / 2 > cap)
		return -1;
	for (i = 0; i < len / 2; i++) {
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	*n = len / 2;
	return 0;
}

static int parse_type(const char *s, uint16_t *type)
{
	unsigned long v;
	char *end;
	size_t i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (strcmp(s, mgr_request_name(types[i])) == 0) {
			*type = types[i];
			return 0;
		}
	}
	v = strtoul(s, &end, 0);
	if (*s && !*end && v <= 0xffff) {
		*type = (uint16_t)v;
		return 0;
	}
	return -1;
}

static int tag_of(const char *name, size_t n, uint16_t *tag)
{
	unsigned t;

	for (t = 1; t < 64; t++) {
		const char *fn = mgr_field_name((uint16_t)t);
		if (strlen(fn) == n && strncmp(fn, name, n) == 0) {
			*tag = (uint16_t)t;
			return 0;
		}
	}
	return -1;
}

static int add_field(struct mgr_builder *b, const char *arg)
{
	const char *eq = strchr(arg, '=');
	uint8_t bytes[MGR_MAX_BLOB];
	size_t n = eq ? (size_t)(eq - arg) : strlen(arg), len;
	const char *v = eq ? eq + 1 : NULL;
	uint16_t tag;
	unsigned long long x;
	char *end;

	if (strncmp(arg, "tag:", 4) == 0 && v) {
		x = strtoull(arg + 4, &end, 0);
		if (end != eq || x > 0xffff || unhex(v, bytes, sizeof(bytes), &len) < 0)
			return -1;
		mgr_put_bytes(b, (uint16_t)x, bytes, len);
		return 0;
	}
	if (tag_of(arg, n, &tag) < 0)
		return -1;
	switch (tag) {
	case MGR_F_ANY_DIGEST:
	case MGR_F_FORCE:
	case MGR_F_MORE:
		if (v)
			return -1;
		mgr_put_flag(b, tag);
		return 0;
	case MGR_F_UUID:
	case MGR_F_GROUP_UUID:
		if (!v || uuid_from_text(v, bytes) < 0)
			return -1;
		mgr_put_bytes(b, tag, bytes, 16);
		return 0;
	case MGR_F_DIGEST:
	case MGR_F_BIN_DIGEST:
	case MGR_F_STATE_KEY:
		if (!v || unhex(v, bytes, 32, &len) < 0 || len != 32)
			return -1;
		mgr_put_bytes(b, tag, bytes, 32);
		return 0;
	case MGR_F_PID:
		if (v && strcmp(v, "self") == 0) {
			mgr_put_u32(b, tag, (uint32_t)getpid());
			return 0;
		}
		/* fall through */
	case MGR_F_PCR_MASK:
	case MGR_F_COUNT:
	case MGR_F_OFFSET:
		if (!v || !*v)
			return -1;
		x = strtoull(v, &end, 0);
		if (*end || x > UINT32_MAX)
			return -1;
		mgr_put_u32(b, tag, (uint32_t)x);
		return 0;
	case MGR_F_VERSION:
		if (!v || !*v)
			return -1;
		x = strtoull(v, &end, 0);
		if (*end)
			return -1;
		mgr_put_u64(b, tag, x);
		return 0;
	default:
		if (!v)
			return -1;
		mgr_put_bytes(b, tag, v, strlen(v));
		return 0;
	}
}

static void print_hex(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		printf("%02x", p[i]);
}

static void print_fields(const struct mgr_msg *m, const char *indent);

static void print_field(const struct mgr_field_view *f, const char *indent)
{
	char u[37], err[256];
	uint64_t v64;
	uint32_t v32;

	if (f->tag == MGR_F_RECORD) {
		printf("%srecord\n", indent);
		if (mgr_parse_fields(f->val, f->len, &rec, err, sizeof(err)) < 0)
			printf("%s  (unparseable record: %s)\n", indent, err);
		else
			print_fields(&rec, "  ");
		return;
	}
	printf("%s%s=", indent, mgr_field_name(f->tag));
	switch (f->tag) {
	case MGR_F_UUID:
	case MGR_F_GROUP_UUID:
		uuid_format(f->val, u);
		printf("%s", u);
		break;
	case MGR_F_STATUS:
		v32 = be32_get(f->val);
		printf("%u %s", v32, mgr_status_name(v32));
		break;
	case MGR_F_PCR_MASK:
	case MGR_F_NV_INDEX:
		printf("0x%x", be32_get(f->val));
		break;
	case MGR_F_MESSAGE:
	case MGR_F_NAME:
	case MGR_F_PATTERN:
	case MGR_F_LABEL:
	case MGR_F_STATE:
	case MGR_F_KEY:
	case MGR_F_VALUE:
	case MGR_F_ACTION:
	case MGR_F_SUBJECT:
	case MGR_F_RESULT:
		printf("%.*s", (int)f->len, (const char *)f->val);
		break;
	case MGR_F_NV_OFFSET:
		printf("%" PRId64, (int64_t)be64_get(f->val));
		break;
	default:
		if (f->len == 4) {
			printf("%u", be32_get(f->val));
		} else if (f->len == 8) {
			v64 = be64_get(f->val);
			printf("%" PRIu64, v64);
		} else if (f->len > 0) {
			print_hex(f->val, f->len);
		} else {
			printf("1");
		}
	}
	printf("\n");
}

static void print_fields(const struct mgr_msg *m, const char *indent)
{
	size_t i;

	for (i = 0; i < m->nfields; i++)
		print_field(&m->f[i], indent);
}

/* Send len bytes of buf, read and print the answer; returns its status or EXIT_IO. */
static int round_trip(int fd, size_t len)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char err[256];
	uint32_t status;
	pid_t sender;
	bool trunc;
	ssize_t n;

	if (pass_fd) {
		union {
			struct cmsghdr h;
			char c[CMSG_SPACE(sizeof(int))];
		} cb;
		struct iovec iov = {.iov_base = buf, .iov_len = len};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = cb.c,
				    .msg_controllen = sizeof(cb.c)};
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		int pp[2];

		if (pipe(pp) < 0) {
			fprintf(stderr, "mgrc: pipe: %s\n", strerror(errno));
			return EXIT_IO;
		}
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &pp[1], sizeof(int));
		if (sendmsg(fd, &mh, MSG_NOSIGNAL) != (ssize_t)len) {
			fprintf(stderr, "mgrc: sendmsg: %s\n", strerror(errno));
			return EXIT_IO;
		}
		close(pp[0]);
		close(pp[1]);
	} else if (seqpacket_send(fd, buf, len) < 0) {
		fprintf(stderr, "mgrc: send: %s\n", strerror(errno));
		return EXIT_IO;
	}
	if (poll(&p, 1, TIMEOUT_MS) <= 0) {
		fprintf(stderr, "mgrc: no answer within %d s\n", TIMEOUT_MS / 1000);
		return EXIT_IO;
	}
	n = seqpacket_recv(fd, buf, sizeof(buf), &trunc, &sender);
	if (n <= 0) {
		fprintf(stderr, "mgrc: no answer: %s\n",
			n == 0 ? "the manager closed the connection" : strerror(errno));
		return EXIT_IO;
	}
	if (trunc || mgr_parse(buf, (size_t)n, &msg, err, sizeof(err)) < 0) {
		fprintf(stderr, "mgrc: unparseable answer: %s\n", trunc ? "too long" : err);
		return EXIT_IO;
	}
	printf("type=0x%04x\n", msg.type);
	print_fields(&msg, "");
	fflush(stdout);
	if (mgr_get_u32(&msg, MGR_F_STATUS, &status) < 0) {
		fprintf(stderr, "mgrc: the answer has no status\n");
		return EXIT_IO;
	}
	return status > 63 ? EXIT_IO : (int)status;
}

static int register_self(const char *admin, const char *label)
{
	struct mgr_builder b;
	size_t len;
	int fd, rc;

	fd = seqpacket_connect(admin);
	if (fd < 0) {
		fprintf(stderr, "mgrc: connect %s: %s\n", admin, strerror(errno));
		return EXIT_IO;
	}
	mgr_build_init(&b, buf, MGR_MAX_MSG, MGR_LABEL_REGISTER);
	mgr_put_u32(&b, MGR_F_PID, (uint32_t)getpid());
	mgr_put_text(&b, MGR_F_LABEL, label);
	if (reg_has_uuid)
		mgr_put_bytes(&b, MGR_F_UUID, reg_uuid, 16);
	len = mgr_build_finish(&b);
	rc = round_trip(fd, len);
	close(fd);
	printf("---\n");
	return rc;
}

int main(int argc, char **argv)
{
	const char *path = "/run/vtpm/admin.sock", *raw = NULL;
	const char *reg_admin = NULL, *reg_label = NULL;
	long raw_size = -1;
	bool hold = false, child_sends = false, no_confirm = false, have_uuid = false;
	uint8_t open_uuid[16], nonce[32];
	int i = 1, fd, rc = 0;

	for (; i < argc && argv[i][0] == '-' && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
			path = argv[++i];
		} else if (strcmp(argv[i], "--register-self") == 0 && i + 2 < argc) {
			reg_admin = argv[++i];
			reg_label = argv[++i];
		} else if (strcmp(argv[i], "--raw") == 0 && i + 1 < argc) {
			raw = argv[++i];
		} else if (strcmp(argv[i], "--raw-size") == 0 && i + 1 < argc) {
			raw_size = strtol(argv[++i], NULL, 0);
		} else if (strcmp(argv[i], "--hold") == 0) {
			hold = true;
		} else if (strcmp(argv[i], "--no-confirm") == 0) {
			no_confirm = true;
		} else if (strcmp(argv[i], "--register-uuid") == 0 && i + 1 < argc) {
			if (uuid_from_text(argv[++i], reg_uuid) < 0) {
				usage();
				return EXIT_USAGE;
			}
			reg_has_uuid = true;
		} else if (strcmp(argv[i], "--pass-fd") == 0) {
			pass_fd = true;
		} else if (strcmp(argv[i], "--child-sends") == 0) {
			child_sends = true;
		} else if (strcmp(argv[i], "--exec") == 0 && i + 1 < argc && reg_admin) {
			if ((rc = register_self(reg_admin, reg_label)) != 0)
				return rc;
			fflush(stdout);
			execvp(argv[i + 1], argv + i + 1);
			fprintf(stderr, "mgrc: exec %s: %s\n", argv[i + 1], strerror(errno));
			return EXIT_IO;
		} else {
			usage();
			return EXIT_USAGE;
		}
	}
	if (reg_admin && (rc = register_self(reg_admin, reg_label)) != 0)
		return rc;
	fd = seqpacket_connect(path);
	if (fd < 0) {
		fprintf(stderr, "mgrc: connect %s: %s\n", path, strerror(errno));
		return EXIT_IO;
	}
	if (child_sends) {
		pid_t child = fork();
		int st;

		if (child < 0) {
			fprintf(stderr, "mgrc: fork: %s\n", strerror(errno));
			return EXIT_IO;
		}
		if (child > 0) {
			/* the connector stays alive (and silent) while its child talks */
			if (waitpid(child, &st, 0) < 0 || !WIFEXITED(st))
				return EXIT_IO;
			return WEXITSTATUS(st);
		}
		printf("child=%ld\n", (long)getpid());
	}
	if (raw || raw_size >= 0) {
		size_t len = 0;

		if (raw && unhex(raw, buf, sizeof(buf), &len) < 0) {
			usage();
			return EXIT_USAGE;
		}
		if (raw_size >= 0) {
			if ((size_t)raw_size > sizeof(buf) - 1) {
				usage();
				return EXIT_USAGE;
			}
			len = (size_t)raw_size;
			memset(buf, 0x41, len);
			if (len >= 8) {
				be16_put(buf, MGR_HOST_STATUS);
				be16_put(buf + 2, 0);
				be32_put(buf + 4, (uint32_t)(len - 8));
			}
		}
		rc = round_trip(fd, len);
	} else {
		if (i >= argc) {
			usage();
			return EXIT_USAGE;
		}
		while (i < argc) {
			struct mgr_builder b;
			uint16_t type;
			size_t len;

			if (parse_type(argv[i], &type) < 0) {
				fprintf(stderr, "mgrc: unknown request type '%s'\n", argv[i]);
				return EXIT_USAGE;
			}
			mgr_build_init(&b, buf, MGR_MAX_MSG, type);
			for (i++; i < argc && strcmp(argv[i], "--") != 0; i++) {
				if (add_field(&b, argv[i]) < 0) {
					fprintf(stderr, "mgrc: bad field '%s'\n", argv[i]);
					return EXIT_USAGE;
				}
			}
			if (i < argc)
				i++; /* the "--" */
			len = mgr_build_finish(&b);
			if (len == 0) {
				fprintf(stderr, "mgrc: the request does not fit in a message\n");
				return EXIT_USAGE;
			}
			if (type == MGR_OPEN && mgr_parse(buf, len, &rec, NULL, 0) == 0)
				have_uuid = mgr_get_fixed(&rec, MGR_F_UUID, open_uuid, 16) == 0;
			rc = round_trip(fd, len);
			if (rc == EXIT_IO)
				return rc;
			/* an open answered with a nonce: confirm it, as vtpmd does */
			if (type == MGR_OPEN && rc == 0 && have_uuid && !no_confirm &&
			    mgr_get_fixed(&msg, MGR_F_NONCE, nonce, sizeof(nonce)) == 0) {
				mgr_build_init(&b, buf, MGR_MAX_MSG, MGR_OPEN_CONFIRM);
				mgr_put_bytes(&b, MGR_F_UUID, open_uuid, 16);
				mgr_put_bytes(&b, MGR_F_NONCE, nonce, sizeof(nonce));
				rc = round_trip(fd, mgr_build_finish(&b));
				if (rc == EXIT_IO)
					return rc;
			}
			have_uuid = false;
			if (i < argc)
				printf("---\n");
		}
	}
	if (hold) {
		printf("held\n");
		fflush(stdout);
		for (;;)
			pause();
	}
	close(fd);
	return rc;
}
