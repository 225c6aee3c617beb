/* test_cursor.c — every reader and writer of cursor.h, at and past its bounds. */
#include <stdint.h>
#include <string.h>

#include "common/cursor.h"
#include "unit.h"

static const uint8_t seq[16] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
				0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10};

static void test_reads_big_endian(void)
{
	struct rcursor c;
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;

	unit_begin("rc reads big-endian values in order");
	rc_init(&c, seq, 15);
	CHECK(rc_u8(&c, &u8) == 0 && u8 == 0x01);
	CHECK(rc_u16(&c, &u16) == 0 && u16 == 0x0203);
	CHECK(rc_u32(&c, &u32) == 0 && u32 == 0x04050607);
	CHECK(rc_u64(&c, &u64) == 0 && u64 == 0x08090a0b0c0d0e0fULL);
	CHECK(rc_remaining(&c) == 0);
	CHECK(rc_expect_end(&c) == 0);
	unit_end();
}

/* Read a value of width w from a buffer of exactly w bytes (ok) and w-1 bytes (fails). */
static int read_width(struct rcursor *c, int w)
{
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;

	switch (w) {
	case 1:
		return rc_u8(c, &u8);
	case 2:
		return rc_u16(c, &u16);
	case 4:
		return rc_u32(c, &u32);
	default:
		return rc_u64(c, &u64);
	}
}

static void test_int_bounds(void)
{
	static const int widths[] = {1, 2, 4, 8};
	struct rcursor c;

	unit_begin("rc_u8/u16/u32/u64 at and past the end");
	for (size_t i = 0; i < sizeof(widths) / sizeof(widths[0]); i++) {
		int w = widths[i];

		rc_init(&c, seq, (size_t)w);
		CHECKF(read_width(&c, w) == 0, "width %d exact", w);
		CHECKF(rc_remaining(&c) == 0 && !c.failed, "width %d exact: state", w);
		CHECKF(read_width(&c, w) == -1 && c.failed, "width %d past end", w);
		rc_init(&c, seq, (size_t)w - 1);
		CHECKF(read_width(&c, w) == -1, "width %d short", w);
		CHECKF(c.failed && c.pos == 0 && rc_remaining(&c) == 0, "width %d short: state", w);
	}
	unit_end();
}

static void test_bytes_ptr_skip(void)
{
	struct rcursor c;
	uint8_t out[16];
	const uint8_t *p = NULL;

	unit_begin("rc_bytes/rc_ptr/rc_skip at and past the end");
	rc_init(&c, seq, 8);
	memset(out, 0xee, sizeof(out));
	CHECK(rc_bytes(&c, out, 3) == 0 && !memcmp(out, seq, 3));
	CHECK(rc_ptr(&c, &p, 2) == 0 && p == seq + 3);
	CHECK(rc_skip(&c, 3) == 0 && rc_remaining(&c) == 0);
	CHECK(rc_bytes(&c, out, 0) == 0 && rc_ptr(&c, &p, 0) == 0 && rc_skip(&c, 0) == 0);
	CHECK(rc_bytes(&c, out, 1) == -1);

	rc_init(&c, seq, 8);
	memset(out, 0xee, sizeof(out));
	CHECK(rc_bytes(&c, out, 9) == -1 && out[0] == 0xee);
	rc_init(&c, seq, 8);
	p = NULL;
	CHECK(rc_ptr(&c, &p, 9) == -1 && p == NULL);
	rc_init(&c, seq, 8);
	CHECK(rc_skip(&c, 9) == -1 && c.failed);
	/* A length near SIZE_MAX must not wrap the bounds check. */
	rc_init(&c, seq, 8);
	CHECK(rc_skip(&c, 1) == 0 && rc_skip(&c, SIZE_MAX) == -1);
	rc_init(&c, seq, 8);
	CHECK(rc_ptr(&c, &p, SIZE_MAX) == -1);
	unit_end();
}

static void test_sticky(void)
{
	struct rcursor c;
	uint8_t u8;
	uint32_t u32;

	unit_begin("rc failure is sticky");
	rc_init(&c, seq, 4);
	CHECK(rc_u8(&c, &u8) == 0);
	CHECK(rc_u32(&c, &u32) == -1);
	/* Three bytes are still there, yet a failed cursor refuses every further read. */
	CHECK(rc_u8(&c, &u8) == -1);
	CHECK(rc_skip(&c, 0) == -1);
	CHECK(rc_remaining(&c) == 0);
	CHECK(rc_expect_end(&c) == -1);
	unit_end();
}

static void test_expect_end_and_null(void)
{
	struct rcursor c;
	uint8_t u8;

	unit_begin("rc_expect_end and NULL buffers");
	rc_init(&c, seq, 2);
	CHECK(rc_expect_end(&c) == -1);
	CHECK(rc_u8(&c, &u8) == 0 && rc_expect_end(&c) == -1);
	CHECK(rc_u8(&c, &u8) == 0 && rc_expect_end(&c) == 0);
	rc_init(&c, seq, 0);
	CHECK(rc_expect_end(&c) == 0);
	rc_init(&c, NULL, 100);
	CHECK(rc_remaining(&c) == 0 && rc_u8(&c, &u8) == -1);
	unit_end();
}

static void test_writes(void)
{
	static const uint8_t want[15] = {0xa1, 0xb1, 0xb2, 0xc1, 0xc2, 0xc3, 0xc4, 0xd1,
					 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8};
	uint8_t buf[15];
	struct wcursor w;

	unit_begin("wc writes big-endian values in order, exactly to capacity");
	wc_init(&w, buf, sizeof(buf));
	CHECK(wc_u8(&w, 0xa1) == 0);
	CHECK(wc_u16(&w, 0xb1b2) == 0);
	CHECK(wc_u32(&w, 0xc1c2c3c4) == 0);
	CHECK(wc_u64(&w, 0xd1d2d3d4d5d6d7d8ULL) == 0);
	CHECK(w.pos == sizeof(buf) && !w.failed);
	CHECK(!memcmp(buf, want, sizeof(want)));
	CHECK(wc_u8(&w, 0) == -1 && w.failed);
	unit_end();
}

static int write_width(struct wcursor *w, int width)
{
	switch (width) {
	case 1:
		return wc_u8(w, 0xff);
	case 2:
		return wc_u16(w, 0xffff);
	case 4:
		return wc_u32(w, 0xffffffff);
	default:
		return wc_u64(w, ~0ULL);
	}
}

static void test_write_bounds(void)
{
	static const int widths[] = {1, 2, 4, 8};
	uint8_t buf[16];
	struct wcursor w;

	unit_begin("wc_u8/u16/u32/u64/bytes/reserve past capacity write nothing");
	for (size_t i = 0; i < sizeof(widths) / sizeof(widths[0]); i++) {
		int width = widths[i];

		memset(buf, 0, sizeof(buf));
		wc_init(&w, buf, (size_t)width - 1);
		CHECKF(write_width(&w, width) == -1 && w.failed && w.pos == 0, "width %d", width);
		CHECKF(buf[0] == 0, "width %d wrote past capacity", width);
		wc_init(&w, buf, (size_t)width);
		CHECKF(write_width(&w, width) == 0 && w.pos == (size_t)width, "width %d exact",
		       width);
	}
	memset(buf, 0, sizeof(buf));
	wc_init(&w, buf, 4);
	CHECK(wc_bytes(&w, seq, 5) == -1 && buf[0] == 0);
	wc_init(&w, buf, 4);
	CHECK(wc_bytes(&w, seq, 4) == 0 && !memcmp(buf, seq, 4));
	CHECK(wc_bytes(&w, seq, 0) == 0);
	wc_init(&w, buf, 4);
	CHECK(wc_reserve(&w, 4) == buf && wc_reserve(&w, 0) == buf + 4);
	CHECK(wc_reserve(&w, 1) == NULL);
	wc_init(&w, buf, 4);
	CHECK(wc_reserve(&w, 1) == buf && wc_reserve(&w, SIZE_MAX) == NULL);
	wc_init(&w, NULL, 100);
	CHECK(wc_u8(&w, 1) == -1);
	unit_end();
}

static void test_write_sticky(void)
{
	uint8_t buf[8];
	struct wcursor w;

	unit_begin("wc failure is sticky");
	wc_init(&w, buf, sizeof(buf));
	CHECK(wc_u32(&w, 1) == 0);
	CHECK(wc_u64(&w, 2) == -1);
	CHECK(wc_u8(&w, 3) == -1 && wc_bytes(&w, seq, 0) == -1 && wc_reserve(&w, 0) == NULL);
	CHECK(w.pos == 4);
	unit_end();
}

static void test_be_helpers(void)
{
	uint8_t b[8];

	unit_begin("be16/32/64 put and get");
	be16_put(b, 0x1234);
	CHECK(b[0] == 0x12 && b[1] == 0x34 && be16_get(b) == 0x1234);
	be32_put(b, 0x89abcdef);
	CHECK(b[0] == 0x89 && b[3] == 0xef && be32_get(b) == 0x89abcdef);
	be64_put(b, 0x0123456789abcdefULL);
	CHECK(b[0] == 0x01 && b[7] == 0xef && be64_get(b) == 0x0123456789abcdefULL);
	be16_put(b, 0xffff);
	CHECK(be16_get(b) == 0xffff);
	be32_put(b, 0xffffffff);
	CHECK(be32_get(b) == 0xffffffff);
	unit_end();
}

int main(void)
{
	test_reads_big_endian();
	test_int_bounds();
	test_bytes_ptr_skip();
	test_sticky();
	test_expect_end_and_null();
	test_writes();
	test_write_bounds();
	test_write_sticky();
	test_be_helpers();
	return unit_exit();
}
