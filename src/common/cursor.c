#include "common/cursor.h"

#include <string.h>

void rc_init(struct rcursor *c, const void *buf, size_t len)
{
	c->buf = buf;
	c->len = buf ? len : 0;
	c->pos = 0;
	c->failed = false;
}

size_t rc_remaining(const struct rcursor *c)
{
	return c->failed ? 0 : c->len - c->pos;
}

/* The single place where a read is checked against the end of the buffer. */
static const uint8_t *rc_take(struct rcursor *c, size_t n)
{
	const uint8_t *p;

	if (c->failed || n > c->len - c->pos) {
		c->failed = true;
		return NULL;
	}
	p = c->buf + c->pos;
	c->pos += n;
	return p;
}

int rc_u8(struct rcursor *c, uint8_t *v)
{
	const uint8_t *p = rc_take(c, 1);

	if (!p)
		return -1;
	*v = p[0];
	return 0;
}

int rc_u16(struct rcursor *c, uint16_t *v)
{
	const uint8_t *p = rc_take(c, 2);

	if (!p)
		return -1;
	*v = be16_get(p);
	return 0;
}

int rc_u32(struct rcursor *c, uint32_t *v)
{
	const uint8_t *p = rc_take(c, 4);

	if (!p)
		return -1;
	*v = be32_get(p);
	return 0;
}

int rc_u64(struct rcursor *c, uint64_t *v)
{
	const uint8_t *p = rc_take(c, 8);

	if (!p)
		return -1;
	*v = be64_get(p);
	return 0;
}

int rc_bytes(struct rcursor *c, void *out, size_t n)
{
	const uint8_t *p = rc_take(c, n);

	if (!p)
		return -1;
	if (n)
		memcpy(out, p, n);
	return 0;
}

int rc_ptr(struct rcursor *c, const uint8_t **out, size_t n)
{
	const uint8_t *p = rc_take(c, n);

	if (!p)
		return -1;
	*out = p;
	return 0;
}

int rc_skip(struct rcursor *c, size_t n)
{
	return rc_take(c, n) ? 0 : -1;
}

int rc_expect_end(const struct rcursor *c)
{
	return (!c->failed && c->pos == c->len) ? 0 : -1;
}

void wc_init(struct wcursor *c, void *buf, size_t cap)
{
	c->buf = buf;
	c->cap = buf ? cap : 0;
	c->pos = 0;
	c->failed = false;
}

uint8_t *wc_reserve(struct wcursor *c, size_t n)
{
	uint8_t *p;

	if (c->failed || n > c->cap - c->pos) {
		c->failed = true;
		return NULL;
	}
	p = c->buf + c->pos;
	c->pos += n;
	return p;
}

int wc_u8(struct wcursor *c, uint8_t v)
{
	uint8_t *p = wc_reserve(c, 1);

	if (!p)
		return -1;
	p[0] = v;
	return 0;
}

int wc_u16(struct wcursor *c, uint16_t v)
{
	uint8_t *p = wc_reserve(c, 2);

	if (!p)
		return -1;
	be16_put(p, v);
	return 0;
}

int wc_u32(struct wcursor *c, uint32_t v)
{
	uint8_t *p = wc_reserve(c, 4);

	if (!p)
		return -1;
	be32_put(p, v);
	return 0;
}

int wc_u64(struct wcursor *c, uint64_t v)
{
	uint8_t *p = wc_reserve(c, 8);

	if (!p)
		return -1;
	be64_put(p, v);
	return 0;
}

int wc_bytes(struct wcursor *c, const void *src, size_t n)
{
	uint8_t *p = wc_reserve(c, n);

	if (!p)
		return -1;
	if (n)
		memcpy(p, src, n);
	return 0;
}

void be16_put(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

void be32_put(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

void be64_put(uint8_t *p, uint64_t v)
{
	be32_put(p, (uint32_t)(v >> 32));
	be32_put(p + 4, (uint32_t)v);
}

uint16_t be16_get(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

uint32_t be32_get(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

uint64_t be64_get(const uint8_t *p)
{
	return ((uint64_t)be32_get(p) << 32) | be32_get(p + 4);
}
