#include "common/parse_num.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define SHOWN_MAX 40

/* The value as it goes into a message: control and non-ASCII bytes as '?', cut to fit. */
static void show(const char *s, char out[SHOWN_MAX])
{
	size_t i, o = 0;

	for (i = 0; s[i] && o + 4 < SHOWN_MAX; i++) {
		unsigned char c = (unsigned char)s[i];

		out[o++] = c < 0x20 || c > 0x7e ? '?' : (char)c;
	}
	if (s[i]) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

static void bound(uint64_t v, enum num_base base, char *out, size_t cap)
{
	if (base == NUM_OCT)
		snprintf(out, cap, v ? "0%" PRIo64 : "0", v);
	else if (base == NUM_DEC_HEX)
		snprintf(out, cap, "0x%08" PRIx64, v);
	else
		snprintf(out, cap, "%" PRIu64, v);
}

int parse_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * The unsigned magnitude that is all of s, in base. Returns NULL with *v set (*overflow when it
 * does not fit 64 bits), or why s is not a number (in why).
 */
static const char *scan(const char *s, enum num_base base, uint64_t *v, bool *overflow, char *why,
			size_t whylen)
{
	static const char *const kind[] = {"a decimal digit", "an octal digit",
					   "a decimal digit (hexadecimal needs 0x)"};
	unsigned radix = base == NUM_OCT ? 8 : 10;
	const char *p = s, *what = kind[base];
	uint64_t x = 0;
	unsigned char c;
	int d;

	*overflow = false;
	if (!*p)
		return "the value is empty";
	if (base == NUM_DEC_HEX && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		radix = 16;
		what = "a hexadecimal digit";
		p += 2;
		if (!*p)
			return "no hexadecimal digits after 0x";
	}
	for (; *p; p++) {
		c = (unsigned char)*p;
		d = parse_hex_digit(*p);
		if (d < 0 || (unsigned)d >= radix) {
			if (c == ' ' || (c >= '\t' && c <= '\r'))
				return "spaces are not allowed";
			if ((c == '-' || c == '+') && p == s)
				return "a sign is not allowed";
			if (c < 0x20 || c > 0x7e)
				snprintf(why, whylen, "a control or non-ASCII byte is not %s",
					 what);
			else
				snprintf(why, whylen, "'%c' is not %s", c, what);
			return why;
		}
		if (x > (UINT64_MAX - (unsigned)d) / radix)
			*overflow = true;
		else
			x = x * radix + (unsigned)d;
	}
	*v = x;
	return NULL;
}

static int refuse(const char *opt, const char *s, const char *lo, const char *hi,
		  const char *reason, char *err, size_t errlen)
{
	char shown[SHOWN_MAX];

	show(s, shown);
	if (reason)
		snprintf(err, errlen, "%s%s'%s' is not a number from %s to %s: %s", opt ? opt : "",
			 opt ? ": " : "", shown, lo, hi, reason);
	else
		snprintf(err, errlen, "%s%s%s is out of range (%s to %s)", opt ? opt : "",
			 opt ? ": " : "", shown, lo, hi);
	return -1;
}

int parse_num_u64(const char *opt, const char *s, enum num_base base, uint64_t min, uint64_t max,
		  uint64_t *out, char *err, size_t errlen)
{
	char why[80], lo[32], hi[32];
	const char *reason;
	bool overflow;
	uint64_t v = 0;

	if (base != NUM_DEC && base != NUM_OCT && base != NUM_DEC_HEX)
		base = NUM_DEC;
	reason = scan(s, base, &v, &overflow, why, sizeof(why));
	if (reason || overflow || v < min || v > max) {
		bound(min, base, lo, sizeof(lo));
		bound(max, base, hi, sizeof(hi));
		return refuse(opt, s, lo, hi, reason, err, errlen);
	}
	*out = v;
	return 0;
}

int parse_num_u32(const char *opt, const char *s, enum num_base base, uint32_t min, uint32_t max,
		  uint32_t *out, char *err, size_t errlen)
{
	uint64_t v;

	if (parse_num_u64(opt, s, base, min, max, &v, err, errlen) < 0)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

int parse_num_i64(const char *opt, const char *s, int64_t min, int64_t max, int64_t *out, char *err,
		  size_t errlen)
{
	char why[80], lo[32], hi[32];
	const char *reason, *p = s;
	bool neg = false, overflow = false;
	uint64_t m = 0;
	int64_t v = 0;

	if (*p == '-') {
		neg = true;
		p++;
	}
	if (neg && !*p)
		reason = "no digits after '-'";
	else if (neg && (*p == '-' || *p == '+'))
		reason = "a second sign is not allowed";
	else
		reason = scan(p, NUM_DEC, &m, &overflow, why, sizeof(why));
	if (!reason) {
		if (overflow || m > (uint64_t)INT64_MAX + neg)
			overflow = true;
		else if (neg)
			v = m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
		else
			v = (int64_t)m;
	}
	if (reason || overflow || v < min || v > max) {
		snprintf(lo, sizeof(lo), "%" PRId64, min);
		snprintf(hi, sizeof(hi), "%" PRId64, max);
		return refuse(opt, s, lo, hi, reason, err, errlen);
	}
	*out = v;
	return 0;
}
