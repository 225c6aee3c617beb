/* The shared number parser (common/parse_num.h): the whole string is the number, in the base
 * the option says, inside its range; every refusal names the option and says why. Also the
 * daemons' options that use it. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/parse_num.h"
#include "unit.h"
#include "vtpmd/options.h"
#include "vtpmmgrd/options.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_accepted(void)
{
	static const struct {
		const char *s;
		enum num_base base;
		uint64_t want;
	} cases[] = {
	    {"0", NUM_DEC, 0},
	    {"1", NUM_DEC, 1},
	    {"010", NUM_DEC, 10}, /* leading zeros are decimal, never octal */
	    {"18446744073709551615", NUM_DEC, UINT64_MAX},
	    {"600", NUM_OCT, 0600},
	    {"0600", NUM_OCT, 0600},
	    {"0", NUM_OCT, 0},
	    {"1777777777777777777777", NUM_OCT, UINT64_MAX},
	    {"16", NUM_DEC_HEX, 16},
	    {"010", NUM_DEC_HEX, 10},
	    {"0x10", NUM_DEC_HEX, 16},
	    {"0X1f", NUM_DEC_HEX, 31},
	    {"0x013FF100", NUM_DEC_HEX, 0x013ff100},
	    {"0xffffffffffffffff", NUM_DEC_HEX, UINT64_MAX},
	};
	char err[256];
	uint64_t v;
	size_t i;

	unit_begin("parse_num: decimal, octal and 0x hexadecimal as the base says");
	for (i = 0; i < N(cases); i++) {
		v = 12345;
		CHECKF(parse_num_u64("--x", cases[i].s, cases[i].base, 0, UINT64_MAX, &v, err,
				     sizeof(err)) == 0 &&
			   v == cases[i].want,
		       "'%s': %s (got %llu)", cases[i].s, err, (unsigned long long)v);
	}
	unit_end();
}

/* Each case: value, base, min, max, and two words the message must contain. */
static void test_refused(void)
{
	static const struct {
		const char *s;
		enum num_base base;
		uint64_t min, max;
		const char *n1, *n2;
	} cases[] = {
	    {"", NUM_DEC, 0, 10, "'' is not a number from 0 to 10", "empty"},
	    {"-1", NUM_DEC, 0, 10, "'-1' is not a number", "a sign is not allowed"},
	    {"+1", NUM_DEC, 0, 10, "'+1' is not a number", "a sign is not allowed"},
	    {"-0", NUM_DEC, 0, 10, "'-0'", "sign"},
	    {"1x", NUM_DEC, 0, 10, "'1x' is not a number", "'x' is not a decimal digit"},
	    {" 1", NUM_DEC, 0, 10, "' 1'", "spaces are not allowed"},
	    {"1 ", NUM_DEC, 0, 10, "'1 '", "spaces are not allowed"},
	    {"\t1", NUM_DEC, 0, 10, "'?1'", "spaces are not allowed"},
	    {"1\n", NUM_DEC, 0, 10, "'1?'", "spaces are not allowed"},
	    {"1.5", NUM_DEC, 0, 10, "'1.5'", "'.' is not a decimal digit"},
	    {"1e3", NUM_DEC, 0, 10000, "'1e3'", "'e' is not a decimal digit"},
	    {"0x10", NUM_DEC, 0, 100, "'0x10'", "'x' is not a decimal digit"},
	    {"1a", NUM_DEC_HEX, 0, 100, "'1a'", "hexadecimal needs 0x"},
	    {"0x", NUM_DEC_HEX, 0, 100, "'0x'", "no hexadecimal digits after 0x"},
	    {"0X", NUM_DEC_HEX, 0, 100, "'0X'", "no hexadecimal digits after 0x"},
	    {"0xg", NUM_DEC_HEX, 0, 100, "'0xg'", "'g' is not a hexadecimal digit"},
	    {"0x-1", NUM_DEC_HEX, 0, 100, "'0x-1'", "'-' is not a hexadecimal digit"},
	    {"0x 1", NUM_DEC_HEX, 0, 100, "'0x 1'", "spaces"},
	    {"8", NUM_OCT, 0, 0777, "'8' is not a number from 0 to 0777", "not an octal digit"},
	    {"0o7", NUM_OCT, 0, 0777, "'0o7'", "'o' is not an octal digit"},
	    {"01000", NUM_OCT, 0, 0777, "01000 is out of range (0 to 0777)", "--x: "},
	    {"18446744073709551616", NUM_DEC, 0, UINT64_MAX, "18446744073709551616 is out of range",
	     "(0 to 18446744073709551615)"},
	    {"99999999999999999999999", NUM_DEC, 0, 10, "is out of range (0 to 10)", "--x: 9999"},
	    {"0x10000000000000000", NUM_DEC_HEX, 0, UINT64_MAX, "is out of range", "0x1000"},
	    {"11", NUM_DEC, 0, 10, "--x: 11 is out of range (0 to 10)", "11"},
	    {"0", NUM_DEC, 1, 10, "--x: 0 is out of range (1 to 10)", "0"},
	    {"0x0", NUM_DEC_HEX, 1, 0x13fffff, "(0x00000001 to 0x013fffff)", "0x0"},
	    {"1\x1b[2J", NUM_DEC, 0, 10, "'1?[2J'", "not a decimal digit"},
	    {"\xc3\xa9"
	     "1",
	     NUM_DEC, 0, 10, "'??1'", "non-ASCII"},
	    {"1111111111111111111111111111111111111111111111111", NUM_DEC, 0, 10,
	     "--x: 111111111111111111111111111111111111... is out of range", "(0 to 10)"},
	};
	char err[256];
	uint64_t v;
	size_t i;

	unit_begin("parse_num: malformed, signed, spaced, junk-tailed and overflowing are refused");
	for (i = 0; i < N(cases); i++) {
		v = 777;
		err[0] = '\0';
		CHECKF(parse_num_u64("--x", cases[i].s, cases[i].base, cases[i].min, cases[i].max,
				     &v, err, sizeof(err)) < 0 &&
			   v == 777 && strncmp(err, "--x: ", 5) == 0 && strstr(err, cases[i].n1) &&
			   strstr(err, cases[i].n2),
		       "case %zu '%s': %s", i, cases[i].s, err);
	}
	unit_end();
}

static void test_u32_and_i64(void)
{
	char err[256];
	uint32_t u = 0;
	int64_t v = 0;

	unit_begin("parse_num: u32 ranges; no option name; signed decimal");
	CHECK(parse_num_u32("--y", "4294967295", NUM_DEC, 0, UINT32_MAX, &u, err, sizeof(err)) ==
		  0 &&
	      u == UINT32_MAX);
	CHECK(parse_num_u32("--y", "4294967296", NUM_DEC, 0, UINT32_MAX, &u, err, sizeof(err)) <
		  0 &&
	      strstr(err, "--y: 4294967296 is out of range (0 to 4294967295)"));
	CHECKF(parse_num_u32(NULL, "1s", NUM_DEC, 1, 3600, &u, err, sizeof(err)) < 0 &&
		   strncmp(err, "'1s' is not a number from 1 to 3600", 35) == 0,
	       "%s", err);
	CHECK(parse_num_i64("--z", "-5", -10, 10, &v, err, sizeof(err)) == 0 && v == -5);
	CHECK(parse_num_i64("--z", "-0", -10, 10, &v, err, sizeof(err)) == 0 && v == 0);
	CHECK(parse_num_i64("--z", "7", -10, 10, &v, err, sizeof(err)) == 0 && v == 7);
	CHECK(parse_num_i64("--z", "-9223372036854775808", INT64_MIN, INT64_MAX, &v, err,
			    sizeof(err)) == 0 &&
	      v == INT64_MIN);
	CHECK(parse_num_i64("--z", "9223372036854775807", INT64_MIN, INT64_MAX, &v, err,
			    sizeof(err)) == 0 &&
	      v == INT64_MAX);
	CHECK(parse_num_i64("--z", "9223372036854775808", INT64_MIN, INT64_MAX, &v, err,
			    sizeof(err)) < 0 &&
	      strstr(err, "out of range"));
	CHECK(parse_num_i64("--z", "-9223372036854775809", INT64_MIN, INT64_MAX, &v, err,
			    sizeof(err)) < 0 &&
	      strstr(err, "out of range"));
	CHECK(parse_num_i64("--z", "-11", -10, 10, &v, err, sizeof(err)) < 0 &&
	      strstr(err, "--z: -11 is out of range (-10 to 10)"));
	CHECK(parse_num_i64("--z", "+1", -10, 10, &v, err, sizeof(err)) < 0 &&
	      strstr(err, "a sign is not allowed"));
	CHECK(parse_num_i64("--z", "-", -10, 10, &v, err, sizeof(err)) < 0 &&
	      strstr(err, "no digits after '-'"));
	CHECK(parse_num_i64("--z", "--1", -10, 10, &v, err, sizeof(err)) < 0 &&
	      strstr(err, "second sign"));
	CHECK(parse_num_i64("--z", "- 1", -10, 10, &v, err, sizeof(err)) < 0 &&
	      strstr(err, "spaces"));
	CHECK(parse_num_i64("--z", "", -10, 10, &v, err, sizeof(err)) < 0 && strstr(err, "empty"));
	CHECK(parse_num_i64("--z", "1x", -10, 10, &v, err, sizeof(err)) < 0 &&
	      strstr(err, "'x' is not a decimal digit"));
	unit_end();
}

static int vtpmd_with(const char *a1, const char *a2, struct vtpmd_opts *o, char *err)
{
	char *argv[] = {"vtpmd",
			"socket",
			"--tpm2",
			"--tpmstate",
			"dir=/s",
			"--ctrl",
			"type=unixio,path=/c",
			(char *)a1,
			(char *)a2,
			NULL};

	return vtpmd_parse_args(9, argv, o, err, 256);
}

static void test_vtpmd_numbers(void)
{
	static const struct {
		const char *a1, *a2, *needle;
	} bad[] = {
	    {"--server", "type=tcp,port= 1", "--server port: ' 1' is not a number from 0 to 65535"},
	    {"--server", "type=tcp,port=0x10", "'x' is not a decimal digit"},
	    {"--server", "type=tcp,port=65536", "--server port: 65536 is out of range"},
	    {"--server", "type=unixio,path=/d,mode=0x1ff", "--server mode: '0x1ff'"},
	    {"--server", "type=unixio,path=/d,mode=-1", "a sign is not allowed"},
	    {"--server", "type=unixio,fd=", "--server fd: '' is not a number"},
	    {"--log", "level=+5", "--log level: '+5'"},
	    {"--pid", "fd=3x", "--pid fd: '3x'"},
	};
	struct vtpmd_opts o;
	char err[256];
	size_t i;

	unit_begin("options: vtpmd's numbers go through parse_num");
	CHECKF(vtpmd_with("--server", "type=unixio,path=/d,mode=660", &o, err) == 0 &&
		   o.server.mode == 0660,
	       "%s", err);
	vtpmd_opts_free(&o);
	CHECKF(vtpmd_with("--server", "type=tcp,port=02321,bindaddr=::1", &o, err) == 0 &&
		   o.server.port == 2321,
	       "%s", err);
	vtpmd_opts_free(&o);
	for (i = 0; i < N(bad); i++) {
		int rc = vtpmd_with(bad[i].a1, bad[i].a2, &o, err);

		CHECKF(rc < 0 && strstr(err, bad[i].needle), "%s %s: rc %d, '%s'", bad[i].a1,
		       bad[i].a2, rc, rc < 0 ? err : "");
		vtpmd_opts_free(&o);
	}
	unit_end();
}

static int mgrd_with(const char *a1, const char *a2, struct mgrd_opts *o, char *err)
{
	char *argv[] = {"vtpmmgrd", (char *)a1, (char *)a2, NULL};

	return mgrd_parse_args(3, argv, o, err, 256);
}

static void test_mgrd_numbers(void)
{
	static const struct {
		const char *a1, *a2, *needle;
	} bad[] = {
	    {"--max-conns", "0x10", "--max-conns: '0x10' is not a number from 1 to"},
	    {"--max-conns", " 5", "spaces are not allowed"},
	    {"--max-conns", "0", "--max-conns: 0 is out of range (1 to"},
	    {"--idle-timeout", "-0", "a sign is not allowed"},
	    {"--idle-timeout", "5s", "'s' is not a decimal digit"},
	    {"--guard-interval", "9", "--guard-interval: 9 is out of range (10 to 3600000)"},
	    {"--nv-index", "0x", "no hexadecimal digits after 0x"},
	    {"--nv-index", "0x1000000000", "out of range (0x01000000 to 0x013fffff)"},
	    {"--nv-index", "0x00fffff", "out of range (0x01000000 to 0x013fffff)"},
	    {"--log", "level=0x1", "level '0x1' is not 0 (errors)"},
	    {"--log", "level=4", "level '4' is not 0 (errors)"},
	};
	struct mgrd_opts o;
	char err[256];
	size_t i;

	unit_begin("options: vtpmmgrd's numbers go through parse_num (decimal; --nv-index 0x)");
	CHECKF(mgrd_with("--nv-index", "0x01000b01", &o, err) == 0 && o.nv_index == 0x01000b01,
	       "%s", err);
	CHECKF(mgrd_with("--nv-index", "16777216", &o, err) == 0 && o.nv_index == 0x01000000, "%s",
	       err);
	/* once octal by accident (strtoull base 0): now decimal */
	CHECKF(mgrd_with("--idle-timeout", "010", &o, err) == 0 &&
		   o.limits.idle_timeout_ms == 10000,
	       "%s", err);
	CHECKF(mgrd_with("--log", "level=3", &o, err) == 0 && o.log_level == 3, "%s", err);
	for (i = 0; i < N(bad); i++) {
		int rc = mgrd_with(bad[i].a1, bad[i].a2, &o, err);

		CHECKF(rc < 0 && strstr(err, bad[i].needle), "%s %s: rc %d, '%s'", bad[i].a1,
		       bad[i].a2, rc, rc < 0 ? err : "");
	}
	unit_end();
}

int main(void)
{
	test_accepted();
	test_refused();
	test_u32_and_i64();
	test_vtpmd_numbers();
	test_mgrd_numbers();
	return unit_exit();
}
