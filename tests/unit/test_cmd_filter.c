/* Passthrough command filter: the file format (malformed input of every kind) and the
 * decisions, including the shipped default filter (etc/passthrough.filter). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cursor.h"
#include "unit.h"
#include "vtpmd/cmd_filter.h"

static struct cmd_filter f;
static char err[512];

static int parse(const char *s)
{
	err[0] = '\0';
	return cmd_filter_parse(&f, (const uint8_t *)s, strlen(s), err, sizeof(err));
}

/* A command of header + handles (u32 each), tag NO_SESSIONS. */
static size_t cmd(uint8_t *b, uint32_t cc, const uint32_t *h, size_t nh)
{
	size_t i, len = 10 + 4 * nh;

	be16_put(b, 0x8001);
	be32_put(b + 2, (uint32_t)len);
	be32_put(b + 6, cc);
	for (i = 0; i < nh; i++)
		be32_put(b + 10 + 4 * i, h[i]);
	return len;
}

static enum cmd_verdict check(const uint8_t *b, size_t len)
{
	uint32_t cc;

	return cmd_filter_check(&f, b, len, &cc);
}

/* NV_DefineSpace with a password session (sessions tag) for index idx; cut to len if
 * len is smaller. */
static size_t nv_define(uint8_t *b, uint32_t idx)
{
	struct wcursor w;

	wc_init(&w, b, 128);
	wc_u16(&w, 0x8002);
	wc_u32(&w, 0); /* size, below */
	wc_u32(&w, 0x12a);
	wc_u32(&w, 0x40000001); /* TPM_RH_OWNER */
	wc_u32(&w, 9);		/* authorization area: TPM_RS_PW, empty nonce, attrs, empty hmac */
	wc_u32(&w, 0x40000009);
	wc_u16(&w, 0);
	wc_u8(&w, 0);
	wc_u16(&w, 0);
	wc_u16(&w, 2); /* auth: 2 bytes */
	wc_u16(&w, 0xabcd);
	wc_u16(&w, 14); /* publicInfo size, then nvIndex, nameAlg, attributes, policy, size */
	wc_u32(&w, idx);
	wc_u16(&w, 0x000b);
	wc_u32(&w, 0x2000a);
	wc_u16(&w, 0);
	wc_u16(&w, 8);
	be32_put(b + 2, (uint32_t)w.pos);
	return w.pos;
}

static void test_defaults_and_codes(void)
{
	uint8_t b[64];
	uint32_t cc;

	unit_begin("filter: empty file denies everything");
	CHECK(parse("") == 0);
	for (cc = 0; cc <= 0xffff; cc++)
		if (!CHECKF(!cmd_filter_allows_code(&f, cc) &&
				!cmd_filter_allows_code(&f, cc | TPM_CC_VENDOR_BIT),
			    "0x%x", cc))
			break;
	unit_end();

	unit_begin("filter: names (any case, TPM2_CC_/TPM_CC_ prefix) and numbers");
	CHECK(parse("allow GetRandom tpm2_cc_pcr_read TPM_CC_Hash 0x165 379\n") == 0);
	CHECK(cmd_filter_allows_code(&f, 0x17b) && cmd_filter_allows_code(&f, 0x17e));
	CHECK(cmd_filter_allows_code(&f, 0x17d) && cmd_filter_allows_code(&f, 0x165));
	CHECK(cmd_filter_allows_code(&f, 379));
	CHECK(!cmd_filter_allows_code(&f, 0x126));
	CHECK(check(b, cmd(b, 0x17b, NULL, 0)) == CMD_ALLOW);
	CHECK(check(b, cmd(b, 0x126, NULL, 0)) == CMD_DENY_CODE);
	unit_end();

	unit_begin("filter: ranges, all, vendor; later lines override earlier ones");
	CHECK(parse("allow all\ndeny 0x120-0x12f Clear\nallow vendor\ndeny 0x20000001\n") == 0);
	CHECK(cmd_filter_allows_code(&f, 0x11f) && !cmd_filter_allows_code(&f, 0x120));
	CHECK(!cmd_filter_allows_code(&f, 0x12f) && cmd_filter_allows_code(&f, 0x130));
	CHECK(cmd_filter_allows_code(&f, 0) && cmd_filter_allows_code(&f, 0xffff));
	CHECK(cmd_filter_allows_code(&f, 0x20000000) && !cmd_filter_allows_code(&f, 0x20000001));
	CHECK(cmd_filter_allows_code(&f, 0x2000ffff));
	unit_end();

	unit_begin("filter: codes with reserved bits are always denied");
	CHECK(parse("allow all vendor\n") == 0);
	CHECK(!cmd_filter_allows_code(&f, 0x10000) && !cmd_filter_allows_code(&f, 0x8000017b));
	CHECK(!cmd_filter_allows_code(&f, 0x4000017b) && !cmd_filter_allows_code(&f, 0xffffffff));
	CHECK(check(b, cmd(b, 0x1017b, NULL, 0)) == CMD_DENY_CODE);
	unit_end();

	unit_begin("filter: names of codes");
	CHECK(cmd_filter_name(0x126) && strcmp(cmd_filter_name(0x126), "Clear") == 0);
	CHECK(cmd_filter_name(0x11f) &&
	      strcmp(cmd_filter_name(0x11f), "NV_UndefineSpaceSpecial") == 0);
	CHECK(cmd_filter_name(0x15a) == NULL && cmd_filter_name(0x20000000) == NULL);
	unit_end();
}

static void test_handles(void)
{
	uint8_t b[128];
	uint32_t h[2];
	size_t len, n;

	unit_begin("filter: pcrs limits PCR_Extend, PCR_Event, PCR_Reset, EventSequenceComplete");
	CHECK(parse("allow PCR_Extend PCR_Event PCR_Reset EventSequenceComplete\npcrs 16,23\n") ==
	      0);
	h[0] = 16;
	CHECK(check(b, cmd(b, 0x182, h, 1)) == CMD_ALLOW);
	CHECK(check(b, cmd(b, 0x13c, h, 1)) == CMD_ALLOW);
	h[0] = 23;
	CHECK(check(b, cmd(b, 0x13d, h, 1)) == CMD_ALLOW);
	for (h[0] = 0; h[0] < 40; h[0]++)
		if (h[0] != 16 && h[0] != 23 &&
		    !CHECKF(check(b, cmd(b, 0x182, h, 1)) == CMD_DENY_PCR, "pcr %u", h[0]))
			break;
	h[0] = 0x40000007; /* TPM_RH_NULL: EventSequenceComplete extends nothing */
	CHECK(check(b, cmd(b, 0x185, h, 1)) == CMD_ALLOW);
	CHECK(check(b, cmd(b, 0x182, h, 1)) == CMD_DENY_PCR);
	CHECK(check(b, cmd(b, 0x182, NULL, 0)) == CMD_DENY_HEADER);
	unit_end();

	unit_begin("filter: pcrs ranges, none, and no pcrs line means none");
	CHECK(parse("allow PCR_Extend\npcrs 0-3,7 10-11\n") == 0 && f.pcrs == 0xc8f);
	CHECK(parse("allow PCR_Extend\npcrs 16\npcrs none\n") == 0 && f.pcrs == 0);
	h[0] = 16;
	CHECK(check(b, cmd(b, 0x182, h, 1)) == CMD_DENY_PCR);
	CHECK(parse("allow PCR_Extend\n") == 0);
	CHECK(check(b, cmd(b, 0x182, h, 1)) == CMD_DENY_PCR);
	unit_end();

	unit_begin("filter: nv-range limits NV_DefineSpace and NV_UndefineSpace(Special)");
	CHECK(parse("allow NV_DefineSpace NV_UndefineSpace NV_UndefineSpaceSpecial\n"
		    "nv-range 0x01500000 0x015000ff\n") == 0);
	CHECK(check(b, nv_define(b, 0x01500010)) == CMD_ALLOW);
	CHECK(check(b, nv_define(b, 0x01500100)) == CMD_DENY_NV);
	CHECK(check(b, nv_define(b, 0x01c00002)) == CMD_DENY_NV);
	len = nv_define(b, 0x01500010);
	for (n = 10; n < len - 10; n++) /* cut before the whole nvIndex is there */
		if (!CHECKF(check(b, n) == CMD_DENY_HEADER, "cut at %zu", n))
			break;
	b[14] = 0xff; /* authorization size runs past the end */
	CHECK(check(b, len) == CMD_DENY_HEADER);
	h[0] = 0x40000001, h[1] = 0x01500001;
	CHECK(check(b, cmd(b, 0x122, h, 2)) == CMD_ALLOW);
	h[1] = 0x01800001;
	CHECK(check(b, cmd(b, 0x122, h, 2)) == CMD_DENY_NV);
	CHECK(check(b, cmd(b, 0x122, h, 1)) == CMD_DENY_HEADER);
	h[0] = 0x01500001, h[1] = 0x4000000c;
	CHECK(check(b, cmd(b, 0x11f, h, 2)) == CMD_ALLOW);
	unit_end();

	unit_begin("filter: without nv-range no index may be defined");
	CHECK(parse("allow NV_DefineSpace\n") == 0);
	CHECK(check(b, nv_define(b, 0x01500010)) == CMD_DENY_NV);
	unit_end();

	unit_begin("filter: a header too short to read is denied");
	CHECK(parse("allow all\n") == 0);
	for (n = 0; n < 10; n++)
		if (!CHECKF(check(b, n) == CMD_DENY_HEADER, "len %zu", n))
			break;
	unit_end();
}

struct bad {
	const char *text;
	const char *msg; /* a part of the error message */
};

static void test_malformed(void)
{
	static const struct bad bad[] = {
	    {"frobnicate GetRandom\n", "line 1: unknown directive"},
	    {"\n\nallow NoSuchCommand\n", "line 3: 'NoSuchCommand' is not a TPM 2.0 command name"},
	    {"allow\n", "needs at least one command"},
	    {"deny   # nothing\n", "needs at least one command"},
	    {"allow 0x10000\n", "reserved bits"},
	    {"allow 0x8000017b\n", "reserved bits"},
	    {"allow 0x\n", "not a number"},
	    {"allow 0x1zz\n", "not a number"},
	    {"allow 99999999999999999999\n", "out of range"},
	    {"allow 0x130-0x120\n", "empty or mixes"},
	    {"allow 0x1ff-0x20000001\n", "empty or mixes"},
	    {"allow 0x120-\n", "a range is two numbers"},
	    {"allow 0x120-Clear\n", "a range is two numbers"},
	    {"pcrs\n", "pcrs needs a list"},
	    {"pcrs 32\n", "out of range"},
	    {"pcrs 5-2\n", "out of range"},
	    {"pcrs 1,,2\n", "empty item"},
	    {"pcrs 1,\n", "empty item"},
	    {"pcrs -1\n", "not a number"},
	    {"pcrs none 3\n", "not a number"},
	    {"nv-range 0x01500000\n", "needs FIRST and LAST"},
	    {"nv-range 0x01500000 0x01600000 0x01700000\n", "needs FIRST and LAST"},
	    {"nv-range 0x81000000 0x81000001\n", "out of range"},
	    {"nv-range 0x01600000 0x01500000\n", "out of range"},
	    {"ALLOW GetRandom\n", "unknown directive"},
	    {"allow GetRandom\x01\n", "byte 0x01 is not printable ASCII"},
	    {"allow Get\xc3\xa9Random\n", "byte 0xc3"},
	};
	char big[CMD_FILTER_MAX_LINE + 40];
	size_t i;
	uint8_t *huge;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char name[160];
		snprintf(name, sizeof(name), "filter: malformed %zu is refused", i);
		unit_begin(name);
		CHECKF(parse(bad[i].text) < 0 && strstr(err, bad[i].msg), "text '%s': err '%s'",
		       bad[i].text, err);
		unit_end();
	}

	unit_begin("filter: a NUL byte is refused, with its line");
	CHECK(cmd_filter_parse(&f, (const uint8_t *)"allow Hash\nallow \0Hash\n", 23, err,
			       sizeof(err)) < 0 &&
	      strstr(err, "line 2: byte 0x00"));
	unit_end();

	unit_begin("filter: a line longer than the limit is refused; a comment may be long");
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "allow ", 6);
	CHECK(parse(big) < 0 && strstr(err, "longer than"));
	big[0] = '#';
	CHECK(parse(big) == 0);
	unit_end();

	unit_begin("filter: a file larger than the limit is refused");
	huge = calloc(1, CMD_FILTER_MAX_FILE + 1);
	if (CHECK(huge)) {
		memset(huge, '\n', CMD_FILTER_MAX_FILE + 1);
		CHECK(cmd_filter_parse(&f, huge, CMD_FILTER_MAX_FILE + 1, err, sizeof(err)) < 0);
		CHECK(cmd_filter_parse(&f, huge, CMD_FILTER_MAX_FILE, err, sizeof(err)) == 0);
	}
	free(huge);
	unit_end();

	unit_begin("filter: CRLF, tabs, UTF-8 in comments, no final newline are fine");
	CHECK(parse("# caf\xc3\xa9 \x01\r\nallow\tGetRandom\r\n\r\nallow Hash") == 0);
	CHECK(cmd_filter_allows_code(&f, 0x17b) && cmd_filter_allows_code(&f, 0x17d));
	unit_end();
}

static void test_load_and_default(void)
{
	char dir[] = "/tmp/vtpm-cmdfilter.XXXXXX", path[256], link[256];
	const char *top = getenv("VTPM_TOP");
	char def[512];
	uint8_t b[128];
	uint32_t h[1];
	FILE *fp;

	unit_begin("filter: load reads a file, refuses a link and a missing file");
	if (!CHECK(mkdtemp(dir)))
		goto out;
	snprintf(path, sizeof(path), "%s/f", dir);
	snprintf(link, sizeof(link), "%s/l", dir);
	fp = fopen(path, "w");
	if (!CHECK(fp))
		goto out;
	fputs("allow GetRandom\nnope\n", fp);
	fclose(fp);
	CHECK(cmd_filter_load(&f, path, err, sizeof(err)) < 0 && strstr(err, "line 2") &&
	      strstr(err, path));
	fp = fopen(path, "w");
	if (!CHECK(fp))
		goto out;
	fputs("allow GetRandom\n", fp);
	fclose(fp);
	CHECK(cmd_filter_load(&f, path, err, sizeof(err)) == 0);
	CHECK(symlink(path, link) == 0);
	CHECK(cmd_filter_load(&f, link, err, sizeof(err)) < 0);
	unlink(link);
	unlink(path);
	CHECK(cmd_filter_load(&f, path, err, sizeof(err)) < 0);
	rmdir(dir);
out:
	unit_end();

	unit_begin("filter: the shipped default filter allows what a guest needs, denies the rest");
	snprintf(def, sizeof(def), "%s/etc/passthrough.filter", top ? top : ".");
	if (!CHECKF(cmd_filter_load(&f, def, err, sizeof(err)) == 0, "%s", err))
		goto out2;
	{
		static const uint32_t allowed[] = {0x17b, 0x17e, 0x17a, 0x131, 0x153, 0x157,
						   0x158, 0x15e, 0x176, 0x165, 0x162, 0x161,
						   0x17d, 0x144, 0x143, 0x14e, 0x137};
		static const uint32_t denied[] = {
		    0x126,	0x127,	    0x121,	0x129, 0x124, 0x125, 0x139,
		    0x13a,	0x12b,	    0x12c,	0x120, 0x12f, 0x141, 0x12e,
		    0x145,	0x11f,	    0x132,	0x128, 0x130, 0x140, 0x183,
		    0x20000000, 0x20001000, 0x2000ffff, 0x199, 0x1ff, 0x0,   0xffff};
		size_t i;
		for (i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
			CHECKF(cmd_filter_allows_code(&f, allowed[i]), "0x%x denied", allowed[i]);
		for (i = 0; i < sizeof(denied) / sizeof(denied[0]); i++)
			CHECKF(!cmd_filter_allows_code(&f, denied[i]), "0x%x allowed", denied[i]);
	}
	h[0] = 0;
	CHECK(check(b, cmd(b, 0x182, h, 1)) == CMD_DENY_PCR);
	h[0] = 16;
	CHECK(check(b, cmd(b, 0x182, h, 1)) == CMD_ALLOW);
	CHECK(check(b, nv_define(b, 0x01500016)) == CMD_ALLOW);
	CHECK(check(b, nv_define(b, 0x01400000)) == CMD_DENY_NV);
out2:
	unit_end();
}

int main(void)
{
	test_defaults_and_codes();
	test_handles();
	test_malformed();
	test_load_and_default();
	return unit_exit();
}
