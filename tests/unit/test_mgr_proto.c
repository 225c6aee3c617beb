/* The manager protocol codec: round trips, and every kind of malformed message refused. */
#include <stdlib.h>
#include <string.h>

#include "common/cursor.h"
#include "common/mgr_proto.h"
#include "unit.h"

static uint8_t buf[MGR_MAX_MSG];

static size_t build_open(void)
{
	static const uint8_t uuid[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	struct mgr_builder b;

	mgr_build_init(&b, buf, sizeof(buf), MGR_OPEN);
	mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
	mgr_put_u64(&b, MGR_F_VERSION, 42);
	mgr_put_text(&b, MGR_F_LABEL, "guest1_u:vm_r:vtpm_t");
	mgr_record_begin(&b);
	mgr_put_u32(&b, MGR_F_STATUS, 7);
	mgr_record_end(&b);
	return mgr_build_finish(&b);
}

static void test_round_trip(void)
{
	struct mgr_msg m, rec;
	uint8_t uuid[16];
	uint64_t v = 0;
	uint32_t st = 0;
	char text[MGR_MAX_TEXT + 1], err[256];
	const struct mgr_field_view *r;
	size_t n = build_open();

	unit_begin("mgr: build and parse a message with a record");
	CHECK(n > MGR_HDR_LEN);
	CHECKF(mgr_parse(buf, n, &m, err, sizeof(err)) == 0, "%s", err);
	CHECK(m.type == MGR_OPEN && m.nfields == 4);
	CHECK(mgr_get_fixed(&m, MGR_F_UUID, uuid, 16) == 0 && uuid[15] == 16);
	CHECK(mgr_get_u64(&m, MGR_F_VERSION, &v) == 0 && v == 42);
	CHECK(mgr_get_text(&m, MGR_F_LABEL, text, sizeof(text)) == 0 &&
	      strcmp(text, "guest1_u:vm_r:vtpm_t") == 0);
	r = mgr_find(&m, MGR_F_RECORD);
	CHECK(r && mgr_parse_fields(r->val, r->len, &rec, err, sizeof(err)) == 0 &&
	      mgr_get_u32(&rec, MGR_F_STATUS, &st) == 0 && st == 7);
	CHECK(mgr_get_u32(&m, MGR_F_PID, &st) < 0 && !mgr_has(&m, MGR_F_PID));
	CHECK(mgr_get_fixed(&m, MGR_F_UUID, uuid, 15) < 0);
	unit_end();
}

static void test_malformed(void)
{
	struct mgr_msg m;
	char err[256];
	size_t n = build_open(), i;
	uint8_t *copy = malloc(n);

	unit_begin("mgr: every truncation is refused");
	for (i = 0; i < n; i++) {
		memcpy(copy, buf, i);
		CHECKF(mgr_parse(copy, i, &m, err, sizeof(err)) < 0, "len %zu", i);
	}
	unit_end();

	unit_begin("mgr: header length, flags, field lengths, tags and texts are checked");
	memcpy(copy, buf, n);
	be32_put(copy + 4, (uint32_t)(n - MGR_HDR_LEN + 1));
	CHECK(mgr_parse(copy, n, &m, err, sizeof(err)) < 0 && strstr(err, "body"));
	memcpy(copy, buf, n);
	be16_put(copy + 2, 1);
	CHECK(mgr_parse(copy, n, &m, err, sizeof(err)) < 0 && strstr(err, "flags"));
	memcpy(copy, buf, n);
	be16_put(copy + MGR_HDR_LEN + 2, 15); /* UUID of 15 bytes */
	CHECK(mgr_parse(copy, n, &m, err, sizeof(err)) < 0);
	memcpy(copy, buf, n);
	be16_put(copy + MGR_HDR_LEN, 999); /* unknown tag */
	CHECK(mgr_parse(copy, n, &m, err, sizeof(err)) < 0 && strstr(err, "unknown tag"));
	memcpy(copy, buf, n);
	copy[MGR_HDR_LEN + 20 + 12 + 4 + 3] = '\n'; /* control byte inside the label */
	CHECK(mgr_parse(copy, n, &m, err, sizeof(err)) < 0 && strstr(err, "text"));
	CHECK(mgr_parse(buf, MGR_MAX_MSG + 1, &m, err, sizeof(err)) < 0);
	unit_end();
	free(copy);
}

static void test_builder_limits(void)
{
	struct mgr_builder b;
	uint8_t small[16];
	static char big[MGR_MAX_TEXT + 10];
	struct mgr_msg m;
	char err[256];
	size_t n;
	int i;

	unit_begin("mgr: the builder fails cleanly on overflow and unbalanced records");
	mgr_build_init(&b, small, sizeof(small), MGR_CLOSE);
	mgr_put_bytes(&b, MGR_F_UUID, small, 16);
	CHECK(mgr_build_finish(&b) == 0);
	mgr_build_init(&b, buf, sizeof(buf), MGR_CLOSE);
	mgr_record_begin(&b);
	CHECK(mgr_build_finish(&b) == 0);
	mgr_build_init(&b, buf, sizeof(buf), MGR_CLOSE);
	mgr_record_end(&b);
	CHECK(mgr_build_finish(&b) == 0);
	mgr_build_init(&b, buf, sizeof(buf), MGR_VTPM_LIST | MGR_RESPONSE);
	for (i = 0; i < 6000; i++)
		mgr_put_u64(&b, MGR_F_VERSION, (uint64_t)i);
	CHECK(mgr_build_finish(&b) == 0); /* 6000 * 12 bytes > 64 KiB */
	memset(big, 'a', sizeof(big) - 1);
	mgr_build_init(&b, buf, sizeof(buf), MGR_CLOSE);
	mgr_put_text(&b, MGR_F_NAME, big);
	n = mgr_build_finish(&b);
	CHECK(n && mgr_parse(buf, n, &m, err, sizeof(err)) == 0 && m.f[0].len == MGR_MAX_TEXT);
	unit_end();
}

static void test_uuid_text(void)
{
	uint8_t u[16], v[16];
	char s[37];
	int i;

	unit_begin("uuid: text round trip and malformed text");
	for (i = 0; i < 16; i++)
		u[i] = (uint8_t)(i * 17);
	uuid_format(u, s);
	CHECK(strcmp(s, "00112233-4455-6677-8899-aabbccddeeff") == 0);
	CHECK(uuid_from_text(s, v) == 0 && memcmp(u, v, 16) == 0);
	CHECK(uuid_from_text("00112233-4455-6677-8899-AABBCCDDEEFF", v) == 0 &&
	      memcmp(u, v, 16) == 0);
	CHECK(uuid_from_text("00112233-4455-6677-8899-aabbccddeef", v) < 0);
	CHECK(uuid_from_text("00112233x4455-6677-8899-aabbccddeeff", v) < 0);
	CHECK(uuid_from_text("0011223g-4455-6677-8899-aabbccddeeff", v) < 0);
	CHECK(uuid_from_text("", v) < 0);
	unit_end();
}

int main(void)
{
	test_round_trip();
	test_malformed();
	test_builder_limits();
	test_uuid_text();
	return unit_exit();
}
