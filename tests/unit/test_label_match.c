/* Label patterns and labels (src/vtpmmgrd/label_match): syntax checks and matching. */
#include <string.h>

#include "unit.h"
#include "common/label_match.h"

static void test_patterns_valid(void)
{
	static const char *const ok[] = {
	    "*:*:*",	       "guest1_u:vm_r:vtpm_t", "*:vm_r:vtpm_t",	       "system_u:*:svirt_t",
	    "a:b:c:s0",	       "a:b:c:s0:c1,c2",       "a:b:c:s0-s0:c0.c1023", "a:b:c:*",
	    "A.b-c:D_e:f9:s0",
	};
	char err[256];
	size_t i;

	unit_begin("label: valid patterns are accepted");
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		CHECKF(label_pattern_check(ok[i], err, sizeof(err)) == 0, "'%s': %s", ok[i], err);
	unit_end();
}

static void test_patterns_invalid(void)
{
	static const struct {
		const char *p, *why;
	} bad[] = {
	    {"", "empty"},
	    {"a", "not of the form user:role:type"},
	    {"a:b", "not of the form user:role:type"},
	    {"a:b:", "the type field is empty"},
	    {":b:c", "the user field is empty"},
	    {"a::c", "the role field is empty"},
	    {"a:b:c:", "the level after the third ':' is empty"},
	    {"a:vm_*:c", "the role field has '*'"},
	    {"**:b:c", "the user field has '*'"},
	    {"a:b:c d", "the type field has ' '"},
	    {"a:b:c:s0*", "the level has '*'"},
	    {"a:b:c:s0 c1", "the level has ' '"},
	    {"a/b:c:d", "the user field has '/'"},
	};
	char err[256], big[LABEL_MAX + 8];
	size_t i;

	unit_begin("label: invalid patterns are refused with a precise reason");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECKF(label_pattern_check(bad[i].p, err, sizeof(err)) < 0, "'%s' accepted",
		       bad[i].p);
		CHECKF(strstr(err, bad[i].why) != NULL, "'%s': '%s' lacks '%s'", bad[i].p, err,
		       bad[i].why);
	}
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[1] = ':';
	big[3] = ':';
	CHECK(label_pattern_check(big, err, sizeof(err)) < 0 && strstr(err, "longer than"));
	unit_end();
}

static void test_labels(void)
{
	char err[256];

	unit_begin("label: labels take no wildcard, may carry a level");
	CHECK(label_check("guest1_u:vm_r:vtpm_t", err, sizeof(err)) == 0);
	CHECK(label_check("system_u:system_r:svirt_t:s0:c1,c2", err, sizeof(err)) == 0);
	CHECK(label_check("*:vm_r:vtpm_t", err, sizeof(err)) < 0 && strstr(err, "label '*"));
	CHECK(label_check("a:b:c:*", err, sizeof(err)) < 0 && strstr(err, "level has '*'"));
	CHECK(label_check("unconfined", err, sizeof(err)) < 0 &&
	      strstr(err, "not of the form user:role:type"));
	CHECK(label_check("/usr/bin/vtpmd (enforce)", err, sizeof(err)) < 0);
	unit_end();
}

static void test_match(void)
{
	unit_begin("label: fields match exactly or by '*'");
	CHECK(label_match("guest1_u:vm_r:vtpm_t", "guest1_u:vm_r:vtpm_t"));
	CHECK(label_match("*:vm_r:vtpm_t", "guest1_u:vm_r:vtpm_t"));
	CHECK(label_match("*:*:*", "a:b:c"));
	CHECK(label_match("guest1_u:*:vtpm_t", "guest1_u:other_r:vtpm_t"));
	CHECK(!label_match("guest1_u:vm_r:vtpm_t", "guest2_u:vm_r:vtpm_t"));
	CHECK(!label_match("*:vm_r:vtpm_t", "guest1_u:vm_r:vtpm_x"));
	CHECK(!label_match("*:vm_r:vtpm_t", "guest1_u:vm_rr:vtpm_t"));
	/* no prefix matching */
	CHECK(!label_match("g:vm_r:vtpm_t", "guest1_u:vm_r:vtpm_t"));
	CHECK(!label_match("guest1_u:vm_r:vtpm", "guest1_u:vm_r:vtpm_t"));
	CHECK(!label_match("guest1_u:vm_r:vtpm_t", "guest1_u:vm_r:vtpm"));
	unit_end();
}

static void test_match_level(void)
{
	unit_begin("label: a 3-field pattern ignores the level, a 4th part must equal it");
	CHECK(label_match("*:vm_r:vtpm_t", "system_u:vm_r:vtpm_t:s0:c1,c2"));
	CHECK(label_match("*:vm_r:vtpm_t:*", "system_u:vm_r:vtpm_t:s0:c1,c2"));
	CHECK(label_match("*:vm_r:vtpm_t:*", "system_u:vm_r:vtpm_t"));
	CHECK(label_match("*:vm_r:vtpm_t:s0:c1,c2", "system_u:vm_r:vtpm_t:s0:c1,c2"));
	CHECK(!label_match("*:vm_r:vtpm_t:s0:c1,c2", "system_u:vm_r:vtpm_t:s0:c2,c1"));
	CHECK(!label_match("*:vm_r:vtpm_t:s0:c1,c2", "system_u:vm_r:vtpm_t:s0:c1,c2,c3"));
	CHECK(!label_match("*:vm_r:vtpm_t:s0:c1", "system_u:vm_r:vtpm_t:s0:c12"));
	CHECK(!label_match("*:vm_r:vtpm_t:s0", "system_u:vm_r:vtpm_t"));
	CHECK(!label_match("*:vm_r:vtpm_t:s0", "system_u:vm_r:vtpm_t:s0:c1"));
	unit_end();
}

static void test_match_invalid(void)
{
	unit_begin("label: nothing matches an invalid pattern or label");
	CHECK(!label_match("*:*:*", "unconfined"));
	CHECK(!label_match("*:*:*", ""));
	CHECK(!label_match("*:*:*", "a:b:c d"));
	CHECK(!label_match("*:*:*", "*:*:*")); /* a label has no wildcard */
	CHECK(!label_match("a:b", "a:b:c"));
	CHECK(!label_match("a:vm_*:c", "a:vm_r:c"));
	CHECK(!label_match("", "a:b:c"));
	unit_end();
}

static void test_same_guest(void)
{
	unit_begin("same guest: the user field and the level, not role or type");
	CHECK(label_same_guest("g1_u:vm_r:vtpm_t", "g1_u:vm_r:vtpm_t"));
	CHECK(label_same_guest("g1_u:vm_r:vtpm_t", "g1_u:other_r:other_t"));
	CHECK(label_same_guest("g1_u:vm_r:vtpm_t:s0:c1,c2", "g1_u:x_r:y_t:s0:c1,c2"));
	CHECK(!label_same_guest("g1_u:vm_r:vtpm_t", "g2_u:vm_r:vtpm_t"));
	CHECK(!label_same_guest("g1_u:vm_r:vtpm_t", "g1_uu:vm_r:vtpm_t"));
	CHECK(!label_same_guest("g1_u:vm_r:vtpm_t:s0:c1", "g1_u:vm_r:vtpm_t:s0:c2"));
	CHECK(!label_same_guest("g1_u:vm_r:vtpm_t:s0:c1", "g1_u:vm_r:vtpm_t"));
	CHECK(!label_same_guest("g1_u:*:vtpm_t", "g1_u:vm_r:vtpm_t")); /* a pattern is no label */
	CHECK(!label_same_guest("", "g1_u:vm_r:vtpm_t"));
	unit_end();
}

int main(void)
{
	test_patterns_valid();
	test_patterns_invalid();
	test_labels();
	test_match();
	test_match_level();
	test_match_invalid();
	test_same_guest();
	return unit_exit();
}
