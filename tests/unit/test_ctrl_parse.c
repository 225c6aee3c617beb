/* Control-channel request parsing and swtpm blob envelopes: malformed input of every kind. */
#include <stdlib.h>
#include <string.h>

#include "common/cursor.h"
#include "unit.h"
#include "vtpmd/blob_envelope.h"
#include "vtpmd/ctrl_channel.h"
#include "vtpmd/ctrl_proto.h"
#include "vtpmd/data_channel.h"

static enum ctrl_parse_status parse(const uint8_t *b, size_t n, struct ctrl_req *r, size_t *need,
				    uint32_t *res)
{
	return ctrl_parse(b, n, r, need, res);
}

static void test_short_and_unknown(void)
{
	uint8_t b[8] = {0, 0, 0, 0x99};
	struct ctrl_req r;
	size_t need, n;
	uint32_t res;

	unit_begin("ctrl: fewer than 4 bytes asks for 4");
	for (n = 0; n < 4; n++)
		CHECKF(parse(b, n, &r, &need, &res) == CTRL_PARSE_MORE && need == 4, "n=%zu", n);
	unit_end();

	unit_begin("ctrl: unknown command codes get TPM_BAD_ORDINAL");
	CHECK(parse(b, 4, &r, &need, &res) == CTRL_PARSE_ERROR && res == RES_BAD_ORDINAL);
	be32_put(b, 0);
	CHECK(parse(b, 4, &r, &need, &res) == CTRL_PARSE_ERROR && res == RES_BAD_ORDINAL);
	be32_put(b, 0x14);
	CHECK(parse(b, 4, &r, &need, &res) == CTRL_PARSE_ERROR && res == RES_BAD_ORDINAL);
	be32_put(b, 0xffffffff);
	CHECK(parse(b, 8, &r, &need, &res) == CTRL_PARSE_ERROR && res == RES_BAD_ORDINAL);
	unit_end();
}

static void test_exact_bodies(void)
{
	static const uint32_t bodyless[] = {
	    CMD_SHUTDOWN,	CMD_GET_TPMESTABLISHED, CMD_HASH_START, CMD_HASH_END,
	    CMD_CANCEL_TPM_CMD, CMD_STORE_VOLATILE,	CMD_STOP,	CMD_GET_CONFIG};
	uint8_t b[16] = {0};
	struct ctrl_req r;
	size_t need, i;
	uint32_t res;

	unit_begin("ctrl: body-less commands refuse any body with TPM_BAD_PARAMETER");
	for (i = 0; i < sizeof(bodyless) / sizeof(bodyless[0]); i++) {
		be32_put(b, bodyless[i]);
		CHECKF(parse(b, 4, &r, &need, &res) == CTRL_PARSE_DONE && r.code == bodyless[i],
		       "code 0x%x", bodyless[i]);
		CHECKF(parse(b, 5, &r, &need, &res) == CTRL_PARSE_ERROR && res == RES_BAD_PARAMETER,
		       "code 0x%x + 1 byte", bodyless[i]);
	}
	unit_end();

	unit_begin("ctrl: CMD_INIT takes exactly 4 bytes");
	be32_put(b, CMD_INIT);
	be32_put(b + 4, PTM_INIT_FLAG_DELETE_VOLATILE);
	CHECK(parse(b, 6, &r, &need, &res) == CTRL_PARSE_MORE && need == 8);
	CHECK(parse(b, 8, &r, &need, &res) == CTRL_PARSE_DONE &&
	      r.u.init_flags == PTM_INIT_FLAG_DELETE_VOLATILE);
	CHECK(parse(b, 9, &r, &need, &res) == CTRL_PARSE_ERROR && res == RES_BAD_PARAMETER);
	unit_end();
}

static void test_padded_locality(void)
{
	uint8_t b[8] = {0};
	struct ctrl_req r;
	size_t need;
	uint32_t res;

	unit_begin("ctrl: SET_LOCALITY accepts 1 byte and QEMU's 4-byte padding");
	be32_put(b, CMD_SET_LOCALITY);
	CHECK(parse(b, 4, &r, &need, &res) == CTRL_PARSE_MORE && need == 5);
	b[4] = 3;
	CHECK(parse(b, 5, &r, &need, &res) == CTRL_PARSE_DONE && r.u.locality == 3);
	CHECK(parse(b, 8, &r, &need, &res) == CTRL_PARSE_DONE && r.u.locality == 3);
	be32_put(b, CMD_RESET_TPMESTABLISHED);
	CHECK(parse(b, 8, &r, &need, &res) == CTRL_PARSE_DONE && r.u.locality == 3);
	unit_end();
}

static void test_variable_bodies(void)
{
	uint8_t *b = calloc(1, 64);
	struct ctrl_req r;
	size_t need;
	uint32_t res;

	unit_begin("ctrl: HASH_DATA waits for its data and refuses oversized lengths");
	be32_put(b, CMD_HASH_DATA);
	be32_put(b + 4, 10);
	CHECK(parse(b, 8, &r, &need, &res) == CTRL_PARSE_MORE && need == 18);
	CHECK(parse(b, 13, &r, &need, &res) == CTRL_PARSE_MORE && need == 18);
	CHECK(parse(b, 18, &r, &need, &res) == CTRL_PARSE_DONE && r.data == b + 8 &&
	      r.data_len == 10);
	be32_put(b + 4, CTRL_MAX_BLOB + 1);
	CHECK(parse(b, 8, &r, &need, &res) == CTRL_PARSE_ERROR && res == RES_BAD_PARAMETER);
	be32_put(b + 4, 0xffffffff);
	CHECK(parse(b, 8, &r, &need, &res) == CTRL_PARSE_ERROR);
	unit_end();

	unit_begin("ctrl: SET_STATEBLOB header then blob; oversized blob gets TPM_FAIL");
	be32_put(b, CMD_SET_STATEBLOB);
	be32_put(b + 4, 0);
	be32_put(b + 8, PTM_BLOB_TYPE_PERMANENT);
	be32_put(b + 12, 20);
	CHECK(parse(b, 11, &r, &need, &res) == CTRL_PARSE_MORE && need == 16);
	CHECK(parse(b, 16, &r, &need, &res) == CTRL_PARSE_MORE && need == 36);
	CHECK(parse(b, 36, &r, &need, &res) == CTRL_PARSE_DONE && r.u.set_blob.type == 1 &&
	      r.data_len == 20 && r.data == b + 16);
	be32_put(b + 12, 0x80000000u);
	CHECK(parse(b, 16, &r, &need, &res) == CTRL_PARSE_ERROR && res == RES_FAIL);
	unit_end();

	unit_begin("ctrl: GET_STATEBLOB and GET_INFO need their whole fixed part");
	memset(b, 0, 64);
	be32_put(b, CMD_GET_STATEBLOB);
	CHECK(parse(b, 15, &r, &need, &res) == CTRL_PARSE_MORE && need == 16);
	be32_put(b + 8, 2);
	CHECK(parse(b, 16, &r, &need, &res) == CTRL_PARSE_DONE && r.u.get_blob.type == 2);
	be32_put(b, CMD_GET_INFO);
	be64_put(b + 4, 3);
	CHECK(parse(b, 19, &r, &need, &res) == CTRL_PARSE_MORE && need == 20);
	CHECK(parse(b, 20, &r, &need, &res) == CTRL_PARSE_DONE && r.u.get_info.flags == 3);
	unit_end();
	free(b);
}

static void test_envelope(void)
{
	static const uint8_t raw[] = {1, 2, 3, 4, 5, 6, 7};
	uint8_t *env = NULL, *copy, *out = NULL;
	size_t env_len = 0, olen, n;

	unit_begin("envelope: wrap/unwrap round trip, swtpm layout");
	CHECK(blob_envelope_wrap(raw, sizeof(raw), 1, NULL, &env, &env_len) == 0);
	CHECK(env_len == 10 + 6 + 6 + sizeof(raw));
	CHECK(env[0] == 2 && env[1] == 1 && be16_get(env + 2) == 10 && be16_get(env + 4) == 4 &&
	      be32_get(env + 6) == env_len);
	CHECK(blob_envelope_unwrap(env, env_len, 1, NULL, &out, &olen) == RES_SUCCESS &&
	      olen == sizeof(raw) && memcmp(out, raw, olen) == 0);
	free(out);
	unit_end();

	unit_begin("envelope: every truncation is refused");
	for (n = 0; n < env_len; n++) {
		copy = malloc(n ? n : 1);
		memcpy(copy, env, n);
		CHECKF(blob_envelope_unwrap(copy, n, 1, NULL, &out, &olen) != RES_SUCCESS &&
			   out == NULL,
		       "len %zu", n);
		free(copy);
	}
	unit_end();

	unit_begin("envelope: newer min_version, encryption, bad sizes");
	copy = malloc(env_len);
#define UNWRAP(c) blob_envelope_unwrap(c, env_len, 1, NULL, &out, &olen)
	memcpy(copy, env, env_len);
	copy[1] = 3;
	CHECK(UNWRAP(copy) == RES_BAD_VERSION);
	memcpy(copy, env, env_len);
	be16_put(copy + 4, 0x01);
	CHECK(UNWRAP(copy) == RES_KEYNOTFOUND);
	memcpy(copy, env, env_len);
	be16_put(copy + 4, 0x02);
	CHECK(UNWRAP(copy) == RES_DECRYPT_ERROR);
	memcpy(copy, env, env_len);
	be32_put(copy + 6, (uint32_t)env_len + 1);
	CHECK(UNWRAP(copy) == RES_BAD_PARAMETER);
	memcpy(copy, env, env_len);
	be16_put(copy + 2, 0xffff);
	CHECK(UNWRAP(copy) == RES_BAD_PARAMETER);
	memcpy(copy, env, env_len);
	be32_put(copy + 12, 0xfffffff0u); /* outer TLV length past the end */
	CHECK(UNWRAP(copy) == RES_BAD_PARAMETER);
	memcpy(copy, env, env_len);
	be16_put(copy + 16, 9); /* inner tag is not DATA */
	CHECK(UNWRAP(copy) == RES_BAD_PARAMETER);
#undef UNWRAP
	free(copy);
	unit_end();

	unit_begin("envelope: swtpm's plain file form (flags 0, TLV DATA) is read");
	copy = malloc(10 + 6 + sizeof(raw));
	copy[0] = 2, copy[1] = 1;
	be16_put(copy + 2, 10);
	be16_put(copy + 4, 0);
	be32_put(copy + 6, 10 + 6 + sizeof(raw));
	be16_put(copy + 10, 1);
	be32_put(copy + 12, sizeof(raw));
	memcpy(copy + 16, raw, sizeof(raw));
	CHECK(blob_envelope_unwrap(copy, 10 + 6 + sizeof(raw), 1, NULL, &out, &olen) ==
		  RES_SUCCESS &&
	      olen == sizeof(raw) && memcmp(out, raw, olen) == 0);
	free(out);
	free(copy);
	unit_end();
	free(env);
}

/* swtpm state files before its envelope (v1) are the bare libtpms blob; vtpmd's import tells
 * them from enveloped ones as swtpm does. */
static void test_envelope_header_detection(void)
{
	static const uint8_t raw[] = {0x00, 0x02, 0xab, 0x36, 0x47, 0x23, 0x00, 0x01,
				      0x00, 0x02, 0xc9, 0xea, 0x64, 0x31, 0x00, 0x01};
	uint8_t *env = NULL, copy[64];
	size_t env_len = 0;

	unit_begin("envelope: a header is told from a header-less (swtpm v1) state file");
	CHECK(blob_envelope_wrap(raw, sizeof(raw), 1, NULL, &env, &env_len) == 0);
	CHECK(env && blob_envelope_has_header(env, env_len));
	CHECK(!blob_envelope_has_header(raw, sizeof(raw))); /* swtpm's tests/data/tpm2state1 */
	CHECK(!blob_envelope_has_header(env, 9));
	CHECK(!blob_envelope_has_header(env, env_len - 1)); /* totlen must be the file size */
	if (env && env_len <= sizeof(copy)) {
		memcpy(copy, env, env_len);
		copy[3] = 11; /* header size other than 10 */
		CHECK(!blob_envelope_has_header(copy, env_len));
		memcpy(copy, env, env_len);
		copy[1] = 3; /* needs a newer reader */
		CHECK(!blob_envelope_has_header(copy, env_len));
	}
	free(env);
	unit_end();
}

static void test_sealed_envelope(void)
{
	static const uint8_t raw[] = "permanent state bytes";
	uint8_t key[32], other[32], *env = NULL, *out = NULL;
	size_t env_len = 0, olen, i;

	memset(key, 0x11, sizeof(key));
	memset(other, 0x22, sizeof(other));
	unit_begin("envelope: sealed with the migration key, round trip, no plaintext");
	CHECK(blob_envelope_wrap(raw, sizeof(raw), 2, key, &env, &env_len) == 0);
	CHECK(be16_get(env + 4) == (BLOB_FLAG_MIGRATION_ENCRYPTED | BLOB_FLAG_MIGRATION_256BIT));
	CHECK(memmem(env, env_len, raw, 9) == NULL);
	CHECK(blob_envelope_unwrap(env, env_len, 2, key, &out, &olen) == RES_SUCCESS &&
	      olen == sizeof(raw) && memcmp(out, raw, olen) == 0);
	free(out);
	unit_end();

	unit_begin("envelope: sealed blob refuses no key, wrong key, other type, any bit flip");
	CHECK(blob_envelope_unwrap(env, env_len, 2, NULL, &out, &olen) == RES_KEYNOTFOUND);
	CHECK(blob_envelope_unwrap(env, env_len, 2, other, &out, &olen) == RES_DECRYPT_ERROR);
	CHECK(blob_envelope_unwrap(env, env_len, 1, key, &out, &olen) == RES_DECRYPT_ERROR);
	for (i = 0; i < env_len * 8; i++) {
		uint32_t res;
		env[i / 8] ^= (uint8_t)(1u << (i % 8));
		res = blob_envelope_unwrap(env, env_len, 2, key, &out, &olen);
		env[i / 8] ^= (uint8_t)(1u << (i % 8));
		if (!CHECKF(res != RES_SUCCESS, "bit %zu flipped and still accepted", i)) {
			free(out);
			break;
		}
	}
	unit_end();
	free(env);
}

static void test_data_frames(void)
{
	uint8_t b[32] = {0x80, 0x01, 0, 0, 0, 12, 0, 0, 1, 0x44, 0, 0};
	struct data_frame f;
	size_t need, n;

	unit_begin("data: raw command frames by commandSize");
	for (n = 0; n < 6; n++)
		CHECKF(data_frame_parse(b, n, 4096, &f, &need) == DATA_PARSE_MORE, "n=%zu", n);
	CHECK(data_frame_parse(b, 11, 4096, &f, &need) == DATA_PARSE_MORE && need == 12);
	CHECK(data_frame_parse(b, 12, 4096, &f, &need) == DATA_PARSE_DONE && !f.tcg &&
	      f.cmd_len == 12 && f.total == 12);
	CHECK(data_frame_parse(b, 20, 4096, &f, &need) == DATA_PARSE_DONE && f.total == 12);
	unit_end();

	unit_begin("data: commandSize below 10 or above the buffer is refused");
	be32_put(b + 2, 9);
	CHECK(data_frame_parse(b, 12, 4096, &f, &need) == DATA_PARSE_BAD);
	be32_put(b + 2, 4097);
	CHECK(data_frame_parse(b, 12, 4096, &f, &need) == DATA_PARSE_BAD);
	be32_put(b + 2, 0xffffffff);
	CHECK(data_frame_parse(b, 12, 4096, &f, &need) == DATA_PARSE_BAD);
	unit_end();

	unit_begin("data: TCG header mode with locality");
	memset(b, 0, sizeof(b));
	be32_put(b, TPM_SEND_COMMAND);
	b[4] = 2;
	be32_put(b + 5, 12);
	b[9] = 0x80, b[10] = 0x01;
	be32_put(b + 11, 12);
	CHECK(data_frame_parse(b, 8, 4096, &f, &need) == DATA_PARSE_MORE && need == 9);
	CHECK(data_frame_parse(b, 15, 4096, &f, &need) == DATA_PARSE_MORE && need == 21);
	CHECK(data_frame_parse(b, 21, 4096, &f, &need) == DATA_PARSE_DONE && f.tcg &&
	      f.locality == 2 && f.cmd_off == 9 && f.cmd_len == 12);
	be32_put(b + 5, 5000);
	CHECK(data_frame_parse(b, 21, 4096, &f, &need) == DATA_PARSE_BAD);
	unit_end();
}

int main(void)
{
	test_short_and_unknown();
	test_exact_bodies();
	test_padded_locality();
	test_variable_bodies();
	test_envelope();
	test_envelope_header_detection();
	test_sealed_envelope();
	test_data_frames();
	return unit_exit();
}
