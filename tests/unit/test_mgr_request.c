/* vtpmmgrd's request decoders (src/vtpmmgrd/request): per-type field rules, precise errors. */
#include <string.h>

#include "common/mgr_proto.h"
#include "unit.h"
#include "vtpmmgrd/host_policy.h"
#include "vtpmmgrd/request.h"

static uint8_t buf[MGR_MAX_MSG];
static struct mgr_msg m;
static struct mgr_request r;
static char err[512];

static const uint8_t uuid[16] = {1, 2, 3, 4, 5, 6, 0x47, 8, 0x89, 10, 11, 12, 13, 14, 15, 16};

/* Parse what b holds and decode it; returns the decoder's result. */
static int decode(struct mgr_builder *b)
{
	size_t n = mgr_build_finish(b);

	err[0] = '\0';
	if (n == 0 || mgr_parse(buf, n, &m, err, sizeof(err)) < 0)
		return 99;
	return mgr_request_decode(&m, &r, err, sizeof(err));
}

static bool says(const char *what)
{
	return strstr(err, what) != NULL;
}

static void test_instance_requests(void)
{
	struct mgr_builder b;
	uint8_t digest[32];

	memset(digest, 7, sizeof(digest));
	unit_begin("request: open, commit, close");
	mgr_build_init(&b, buf, sizeof(buf), MGR_OPEN);
	mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
	CHECK(decode(&b) == REQ_OK && memcmp(r.u.inst.uuid, uuid, 16) == 0);
	CHECK(mgr_request_socket(MGR_OPEN) == REQ_INSTANCE);
	mgr_build_init(&b, buf, sizeof(buf), MGR_OPEN);
	CHECK(decode(&b) == REQ_MALFORMED && says("open: the field 'uuid' is missing"));
	mgr_build_init(&b, buf, sizeof(buf), MGR_OPEN);
	mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
	mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
	CHECK(decode(&b) == REQ_MALFORMED && says("field 'uuid' is given twice"));
	mgr_build_init(&b, buf, sizeof(buf), MGR_OPEN);
	mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
	mgr_put_u32(&b, MGR_F_PID, 1);
	CHECK(decode(&b) == REQ_MALFORMED && says("open: takes no field 'pid'"));
	mgr_build_init(&b, buf, sizeof(buf), MGR_COMMIT);
	mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
	mgr_put_u64(&b, MGR_F_VERSION, 42);
	mgr_put_bytes(&b, MGR_F_DIGEST, digest, 32);
	CHECK(decode(&b) == REQ_OK && r.u.inst.version == 42 && r.u.inst.digest[31] == 7);
	mgr_build_init(&b, buf, sizeof(buf), MGR_COMMIT);
	mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
	mgr_put_u64(&b, MGR_F_VERSION, 42);
	CHECK(decode(&b) == REQ_MALFORMED && says("'digest' is missing"));
	mgr_build_init(&b, buf, sizeof(buf), MGR_CLOSE);
	mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
	CHECK(decode(&b) == REQ_OK);
	unit_end();

	unit_begin("request: resume needs its proof, 32 bytes");
	mgr_build_init(&b, buf, sizeof(buf), MGR_RESUME);
	mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
	mgr_put_u64(&b, MGR_F_VERSION, 9);
	mgr_put_bytes(&b, MGR_F_DIGEST, digest, 32);
	mgr_put_bytes(&b, MGR_F_PROOF, digest, 32);
	CHECK(decode(&b) == REQ_OK && r.u.inst.version == 9 && r.u.inst.proof[0] == 7 &&
	      memcmp(r.u.inst.uuid, uuid, 16) == 0);
	CHECK(mgr_request_socket(MGR_RESUME) == REQ_INSTANCE);
	mgr_build_init(&b, buf, sizeof(buf), MGR_RESUME);
	mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
	mgr_put_u64(&b, MGR_F_VERSION, 9);
	mgr_put_bytes(&b, MGR_F_DIGEST, digest, 32);
	CHECK(decode(&b) == REQ_MALFORMED && says("resume: the field 'proof' is missing"));
	mgr_build_init(&b, buf, sizeof(buf), MGR_RESUME);
	mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
	mgr_put_u64(&b, MGR_F_VERSION, 9);
	mgr_put_bytes(&b, MGR_F_DIGEST, digest, 32);
	mgr_put_bytes(&b, MGR_F_PROOF, digest, 31);
	CHECK(decode(&b) == 99 && says("field tag 40 has length 31, needs 32"));
	mgr_build_init(&b, buf, sizeof(buf), MGR_OPEN);
	mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
	mgr_put_bytes(&b, MGR_F_PROOF, digest, 32);
	CHECK(decode(&b) == REQ_MALFORMED && says("open: takes no field 'proof'"));
	unit_end();
}

static void test_binding_requests(void)
{
	struct mgr_builder b;

	unit_begin("request: vtpm-create's optional label, vtpm-rebind, label-register's uuid");
	mgr_build_init(&b, buf, sizeof(buf), MGR_VTPM_CREATE);
	mgr_put_text(&b, MGR_F_NAME, "web");
	mgr_put_text(&b, MGR_F_LABEL, "g1_u:vm_r:vtpm_t:s0:c1");
	CHECK(decode(&b) == REQ_OK && r.has_label &&
	      strcmp(r.label, "g1_u:vm_r:vtpm_t:s0:c1") == 0);
	mgr_build_init(&b, buf, sizeof(buf), MGR_VTPM_CREATE);
	mgr_put_text(&b, MGR_F_NAME, "web");
	mgr_put_text(&b, MGR_F_LABEL, "g1_u:*:vtpm_t");
	CHECK(decode(&b) == REQ_MALFORMED && says("vtpm-create: label:"));
	mgr_build_init(&b, buf, sizeof(buf), MGR_VTPM_REBIND);
	mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
	mgr_put_text(&b, MGR_F_LABEL, "g2_u:vm_r:vtpm_t");
	CHECK(decode(&b) == REQ_OK && r.has_label && memcmp(r.u.vtpm.uuid, uuid, 16) == 0);
	mgr_build_init(&b, buf, sizeof(buf), MGR_VTPM_REBIND);
	mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
	CHECK(decode(&b) == REQ_MALFORMED && says("vtpm-rebind: the field 'label' is missing"));
	mgr_build_init(&b, buf, sizeof(buf), MGR_LABEL_REGISTER);
	mgr_put_u32(&b, MGR_F_PID, 77);
	mgr_put_text(&b, MGR_F_LABEL, "g1_u:vm_r:vtpm_t");
	mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
	CHECK(decode(&b) == REQ_OK && r.u.label_reg.has_uuid &&
	      memcmp(r.u.label_reg.uuid, uuid, 16) == 0);
	mgr_build_init(&b, buf, sizeof(buf), MGR_OPEN_CONFIRM);
	mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
	CHECK(decode(&b) == REQ_MALFORMED && says("open-confirm: the field 'nonce' is missing"));
	unit_end();
}

static void test_unknown(void)
{
	struct mgr_builder b;

	unit_begin("request: unknown and response types are refused");
	mgr_build_init(&b, buf, sizeof(buf), 0x7777);
	CHECK(decode(&b) == REQ_UNKNOWN_TYPE && says("0x7777 is not a request"));
	mgr_build_init(&b, buf, sizeof(buf), MGR_OPEN | MGR_RESPONSE);
	CHECK(decode(&b) == REQ_UNKNOWN_TYPE);
	CHECK(mgr_request_socket(0x7777) == 0 && strcmp(mgr_request_name(0x7777), "unknown") == 0);
	unit_end();
}

static void test_host(void)
{
	struct mgr_builder b;

	unit_begin("request: host-init mask range, force; reseal's optional mask");
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_INIT);
	mgr_put_u32(&b, MGR_F_PCR_MASK, 0x10081);
	mgr_put_flag(&b, MGR_F_FORCE);
	CHECK(decode(&b) == REQ_OK && r.u.host_init.pcr_mask == 0x10081 && r.u.host_init.force);
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_INIT);
	mgr_put_u32(&b, MGR_F_PCR_MASK, 0);
	CHECK(decode(&b) == REQ_MALFORMED && says("PCR mask 0x0"));
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_INIT);
	mgr_put_u32(&b, MGR_F_PCR_MASK, 0x1000000);
	CHECK(decode(&b) == REQ_MALFORMED && says("PCR mask 0x1000000"));
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_INIT);
	CHECK(decode(&b) == REQ_MALFORMED && says("'pcr-mask' is missing"));
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_RESEAL);
	CHECK(decode(&b) == REQ_OK && !r.u.host_reseal.has_mask);
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_STATUS);
	mgr_put_flag(&b, MGR_F_FORCE);
	CHECK(decode(&b) == REQ_MALFORMED && says("host-status: takes no field 'force'"));
	unit_end();
}

static void put_pcr(struct mgr_builder *b, uint8_t pcr, uint8_t fill)
{
	uint8_t v[33];

	v[0] = pcr;
	memset(v + 1, fill, 32);
	mgr_put_bytes(b, MGR_F_PCR_VALUE, v, sizeof(v));
}

static void test_host_predict(void)
{
	struct mgr_builder b;
	uint8_t v[34] = {0};

	unit_begin("request: reseal --predict and status --check-pcrs: PCR values");
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_RESEAL);
	mgr_put_flag(&b, MGR_F_PREDICT);
	put_pcr(&b, 0, 0xaa);
	put_pcr(&b, 16, 0xbb);
	CHECK(decode(&b) == REQ_OK && r.u.host_reseal.predict && !r.u.host_reseal.has_mask &&
	      r.u.host_reseal.pv.mask == 0x10001 && r.u.host_reseal.pv.values[0][31] == 0xaa &&
	      r.u.host_reseal.pv.values[16][0] == 0xbb);
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_RESEAL);
	mgr_put_flag(&b, MGR_F_PREDICT);
	CHECK(decode(&b) == REQ_MALFORMED && says("predict needs the predicted values"));
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_RESEAL);
	put_pcr(&b, 7, 1);
	CHECK(decode(&b) == REQ_MALFORMED && says("pcr-value fields are taken only with predict"));
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_RESEAL);
	mgr_put_flag(&b, MGR_F_PREDICT);
	put_pcr(&b, 24, 1);
	CHECK(decode(&b) == REQ_MALFORMED && says("PCR 24 does not exist"));
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_RESEAL);
	mgr_put_flag(&b, MGR_F_PREDICT);
	put_pcr(&b, 3, 1);
	put_pcr(&b, 3, 2);
	CHECK(decode(&b) == REQ_MALFORMED && says("PCR 3 is given twice"));
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_RESEAL);
	mgr_put_flag(&b, MGR_F_PREDICT);
	mgr_put_bytes(&b, MGR_F_PCR_VALUE, v, 32); /* one byte short */
	CHECK(decode(&b) == 99);
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_RESEAL);
	mgr_put_flag(&b, MGR_F_PREDICT);
	mgr_put_bytes(&b, MGR_F_PCR_VALUE, v, 34); /* one byte long */
	CHECK(decode(&b) == 99);
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_STATUS);
	CHECK(decode(&b) == REQ_OK && r.u.host_status.pv.mask == 0);
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_STATUS);
	put_pcr(&b, 23, 5);
	CHECK(decode(&b) == REQ_OK && r.u.host_status.pv.mask == 0x800000 &&
	      r.u.host_status.pv.values[23][5] == 5);
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_STATUS);
	mgr_put_flag(&b, MGR_F_PREDICT);
	CHECK(decode(&b) == REQ_MALFORMED && says("host-status: takes no field 'predict'"));
	unit_end();
}

static void test_host_policy(void)
{
	struct mgr_builder b;
	uint8_t key[70], pol[200];

	memset(key, 0x30, sizeof(key));
	memset(pol, 0x56, sizeof(pol));
	unit_begin("request: host policy install, add, revoke; status with PCR_MASK");
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_POLICY_INSTALL);
	mgr_put_bytes(&b, MGR_F_POLICY_KEY, key, sizeof(key));
	CHECK(decode(&b) == REQ_OK && r.u.host_policy.len == sizeof(key) &&
	      r.u.host_policy.nv_index == HOST_POLICY_NV_DEFAULT);
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_POLICY_INSTALL);
	mgr_put_bytes(&b, MGR_F_POLICY_KEY, key, sizeof(key));
	mgr_put_u32(&b, MGR_F_NV_INDEX, 0x01000002);
	CHECK(decode(&b) == REQ_OK && r.u.host_policy.nv_index == 0x01000002);
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_POLICY_INSTALL);
	mgr_put_bytes(&b, MGR_F_POLICY_KEY, key, sizeof(key));
	mgr_put_u32(&b, MGR_F_NV_INDEX, 0x01800000);
	CHECK(decode(&b) == REQ_MALFORMED && says("NV index 0x01800000 is outside"));
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_POLICY_INSTALL);
	CHECKF(decode(&b) == REQ_MALFORMED && says("policy-key"), "%s", err);
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_POLICY_ADD);
	mgr_put_bytes(&b, MGR_F_POLICY, pol, sizeof(pol));
	CHECK(decode(&b) == REQ_OK && r.u.host_policy.len == sizeof(pol) &&
	      r.u.host_policy.data[0] == 0x56);
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_POLICY_ADD);
	mgr_put_bytes(&b, MGR_F_POLICY, pol, sizeof(pol));
	mgr_put_bytes(&b, MGR_F_POLICY, pol, sizeof(pol));
	CHECK(decode(&b) == REQ_MALFORMED && says("field 'policy' is given twice"));
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_POLICY_ADD);
	mgr_put_bytes(&b, MGR_F_POLICY, pol, 0);
	CHECKF(decode(&b) == 99, "%s", err); /* an empty blob does not parse */
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_POLICY_REVOKE);
	mgr_put_u64(&b, MGR_F_SERIAL, 77);
	CHECK(decode(&b) == REQ_OK && r.u.host_policy.serial == 77);
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_POLICY_REVOKE);
	CHECKF(decode(&b) == REQ_MALFORMED && says("serial"), "%s", err);
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_POLICY_REVOKE);
	mgr_put_u32(&b, MGR_F_SERIAL, 77); /* 4 bytes, a serial has 8 */
	CHECK(decode(&b) == 99);
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_STATUS);
	mgr_put_u32(&b, MGR_F_PCR_MASK, 0x10001);
	CHECK(decode(&b) == REQ_OK && r.u.host_status.read_mask == 0x10001);
	mgr_build_init(&b, buf, sizeof(buf), MGR_HOST_STATUS);
	mgr_put_u32(&b, MGR_F_PCR_MASK, 0x1000000);
	CHECK(decode(&b) == REQ_MALFORMED);
	CHECK(mgr_request_socket(MGR_HOST_POLICY_ADD) == REQ_ADMIN &&
	      mgr_request_socket(MGR_HOST_POLICY_INSTALL) == REQ_ADMIN &&
	      mgr_request_socket(MGR_HOST_POLICY_REVOKE) == REQ_ADMIN);
	unit_end();
}

static void test_group_create(void)
{
	struct mgr_builder b;
	uint8_t d1[32], d2[32];
	char name[80];
	int i;

	memset(d1, 1, 32);
	memset(d2, 2, 32);
	unit_begin("request: group-create patterns, digests, name");
	mgr_build_init(&b, buf, sizeof(buf), MGR_GROUP_CREATE);
	mgr_put_text(&b, MGR_F_NAME, "g1");
	mgr_put_text(&b, MGR_F_PATTERN, "*:vm_r:vtpm_t");
	mgr_put_text(&b, MGR_F_PATTERN, "a:b:c:s0");
	mgr_put_bytes(&b, MGR_F_BIN_DIGEST, d1, 32);
	mgr_put_bytes(&b, MGR_F_BIN_DIGEST, d2, 32);
	CHECKF(decode(&b) == REQ_OK, "%s", err);
	CHECK(r.u.group_create.npatterns == 2 && r.u.group_create.ndigests == 2 &&
	      !r.u.group_create.any_digest && strcmp(r.u.group_create.name, "g1") == 0 &&
	      strcmp(r.u.group_create.patterns[1], "a:b:c:s0") == 0);
	mgr_build_init(&b, buf, sizeof(buf), MGR_GROUP_CREATE);
	mgr_put_text(&b, MGR_F_NAME, "g1");
	mgr_put_text(&b, MGR_F_PATTERN, "a:b:c");
	mgr_put_bytes(&b, MGR_F_BIN_DIGEST, d1, 32);
	mgr_put_bytes(&b, MGR_F_BIN_DIGEST, d1, 32);
	CHECK(decode(&b) == REQ_MALFORMED && says("binary digest 1 repeats digest 0"));
	mgr_build_init(&b, buf, sizeof(buf), MGR_GROUP_CREATE);
	mgr_put_text(&b, MGR_F_NAME, "g1");
	mgr_put_text(&b, MGR_F_PATTERN, "a:b*:c");
	mgr_put_flag(&b, MGR_F_ANY_DIGEST);
	CHECK(decode(&b) == REQ_MALFORMED && says("pattern 'a:b*:c'"));
	mgr_build_init(&b, buf, sizeof(buf), MGR_GROUP_CREATE);
	mgr_put_text(&b, MGR_F_NAME, "g1");
	mgr_put_text(&b, MGR_F_PATTERN, "a:b:c");
	mgr_put_flag(&b, MGR_F_ANY_DIGEST);
	mgr_put_flag(&b, MGR_F_ANY_DIGEST);
	CHECK(decode(&b) == REQ_MALFORMED && says("'any-digest' is given twice"));
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	mgr_build_init(&b, buf, sizeof(buf), MGR_GROUP_CREATE);
	mgr_put_text(&b, MGR_F_NAME, name);
	mgr_put_text(&b, MGR_F_PATTERN, "a:b:c");
	mgr_put_flag(&b, MGR_F_ANY_DIGEST);
	CHECK(decode(&b) == REQ_MALFORMED && says("has 79 bytes, at most 64"));
	mgr_build_init(&b, buf, sizeof(buf), MGR_GROUP_CREATE);
	mgr_put_text(&b, MGR_F_NAME, "g");
	for (i = 0; i < 65; i++) {
		snprintf(name, sizeof(name), "u%d:r:t", i);
		mgr_put_text(&b, MGR_F_PATTERN, name);
	}
	mgr_put_flag(&b, MGR_F_ANY_DIGEST);
	CHECK(decode(&b) == REQ_MALFORMED && says("more than 64 patterns"));
	unit_end();
}

static void test_refs_and_lists(void)
{
	struct mgr_builder b;

	unit_begin("request: groups by name or UUID, lists, labels, audit count");
	mgr_build_init(&b, buf, sizeof(buf), MGR_GROUP_SHOW);
	mgr_put_text(&b, MGR_F_NAME, "g1");
	CHECK(decode(&b) == REQ_OK && !r.u.group.by_uuid && strcmp(r.u.group.name, "g1") == 0);
	mgr_build_init(&b, buf, sizeof(buf), MGR_VTPM_CREATE);
	mgr_put_bytes(&b, MGR_F_GROUP_UUID, uuid, 16);
	CHECK(decode(&b) == REQ_OK && r.u.group.by_uuid);
	mgr_build_init(&b, buf, sizeof(buf), MGR_GROUP_DELETE);
	mgr_put_text(&b, MGR_F_NAME, "g1");
	mgr_put_bytes(&b, MGR_F_GROUP_UUID, uuid, 16);
	CHECK(decode(&b) == REQ_MALFORMED && says("not both"));
	mgr_build_init(&b, buf, sizeof(buf), MGR_VTPM_CREATE);
	CHECK(decode(&b) == REQ_MALFORMED && says("the group is missing"));
	mgr_build_init(&b, buf, sizeof(buf), MGR_VTPM_LIST);
	CHECK(decode(&b) == REQ_OK && !r.u.list.has_group && r.u.list.offset == 0);
	mgr_build_init(&b, buf, sizeof(buf), MGR_VTPM_LIST);
	mgr_put_text(&b, MGR_F_NAME, "g1");
	mgr_put_u32(&b, MGR_F_OFFSET, 5);
	CHECK(decode(&b) == REQ_OK && r.u.list.has_group && r.u.list.offset == 5);
	mgr_build_init(&b, buf, sizeof(buf), MGR_LABEL_REGISTER);
	mgr_put_u32(&b, MGR_F_PID, 42);
	mgr_put_text(&b, MGR_F_LABEL, "guest1_u:vm_r:vtpm_t:s0:c1,c2");
	CHECK(decode(&b) == REQ_OK && r.u.label_reg.pid == 42);
	mgr_build_init(&b, buf, sizeof(buf), MGR_LABEL_REGISTER);
	mgr_put_u32(&b, MGR_F_PID, 42);
	mgr_put_text(&b, MGR_F_LABEL, "*:vm_r:vtpm_t");
	CHECK(decode(&b) == REQ_MALFORMED && says("label '*:vm_r:vtpm_t'"));
	mgr_build_init(&b, buf, sizeof(buf), MGR_LABEL_REGISTER);
	mgr_put_u32(&b, MGR_F_PID, 0x80000000u);
	mgr_put_text(&b, MGR_F_LABEL, "a:b:c");
	CHECK(decode(&b) == REQ_MALFORMED && says("is not a process id"));
	mgr_build_init(&b, buf, sizeof(buf), MGR_AUDIT_LIST);
	CHECK(decode(&b) == REQ_OK && r.u.audit.count == REQ_AUDIT_DEFAULT);
	mgr_build_init(&b, buf, sizeof(buf), MGR_AUDIT_LIST);
	mgr_put_u32(&b, MGR_F_COUNT, 1001);
	CHECK(decode(&b) == REQ_MALFORMED && says("count 1001 is outside 1..1000"));
	CHECK(mgr_request_socket(MGR_AUDIT_LIST) == REQ_ADMIN);
	unit_end();
}

int main(void)
{
	test_instance_requests();
	test_binding_requests();
	test_unknown();
	test_host();
	test_host_predict();
	test_host_policy();
	test_group_create();
	test_refs_and_lists();
	return unit_exit();
}
