#include "vtpmd/cmd_filter.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/cursor.h"
#include "common/daemon.h"
#include "common/errmsg.h"
#include "common/parse_num.h"

/* TPM 2.0 Part 2, table "TPM_CC Constants" (the names of tpm2-tss' TPM2_CC_* constants). */
static const struct cc_name {
	const char *name;
	uint32_t cc;
} cc_names[] = {
    {"NV_UndefineSpaceSpecial", 0x11f},
    {"EvictControl", 0x120},
    {"HierarchyControl", 0x121},
    {"NV_UndefineSpace", 0x122},
    {"ChangeEPS", 0x124},
    {"ChangePPS", 0x125},
    {"Clear", 0x126},
    {"ClearControl", 0x127},
    {"ClockSet", 0x128},
    {"HierarchyChangeAuth", 0x129},
    {"NV_DefineSpace", 0x12a},
    {"PCR_Allocate", 0x12b},
    {"PCR_SetAuthPolicy", 0x12c},
    {"PP_Commands", 0x12d},
    {"SetPrimaryPolicy", 0x12e},
    {"FieldUpgradeStart", 0x12f},
    {"ClockRateAdjust", 0x130},
    {"CreatePrimary", 0x131},
    {"NV_GlobalWriteLock", 0x132},
    {"GetCommandAuditDigest", 0x133},
    {"NV_Increment", 0x134},
    {"NV_SetBits", 0x135},
    {"NV_Extend", 0x136},
    {"NV_Write", 0x137},
    {"NV_WriteLock", 0x138},
    {"DictionaryAttackLockReset", 0x139},
    {"DictionaryAttackParameters", 0x13a},
    {"NV_ChangeAuth", 0x13b},
    {"PCR_Event", 0x13c},
    {"PCR_Reset", 0x13d},
    {"SequenceComplete", 0x13e},
    {"SetAlgorithmSet", 0x13f},
    {"SetCommandCodeAuditStatus", 0x140},
    {"FieldUpgradeData", 0x141},
    {"IncrementalSelfTest", 0x142},
    {"SelfTest", 0x143},
    {"Startup", 0x144},
    {"Shutdown", 0x145},
    {"StirRandom", 0x146},
    {"ActivateCredential", 0x147},
    {"Certify", 0x148},
    {"PolicyNV", 0x149},
    {"CertifyCreation", 0x14a},
    {"Duplicate", 0x14b},
    {"GetTime", 0x14c},
    {"GetSessionAuditDigest", 0x14d},
    {"NV_Read", 0x14e},
    {"NV_ReadLock", 0x14f},
    {"ObjectChangeAuth", 0x150},
    {"PolicySecret", 0x151},
    {"Rewrap", 0x152},
    {"Create", 0x153},
    {"ECDH_ZGen", 0x154},
    {"HMAC", 0x155},
    {"Import", 0x156},
    {"Load", 0x157},
    {"Quote", 0x158},
    {"RSA_Decrypt", 0x159},
    {"HMAC_Start", 0x15b},
    {"SequenceUpdate", 0x15c},
    {"Sign", 0x15d},
    {"Unseal", 0x15e},
    {"PolicySigned", 0x160},
    {"ContextLoad", 0x161},
    {"ContextSave", 0x162},
    {"ECDH_KeyGen", 0x163},
    {"EncryptDecrypt", 0x164},
    {"FlushContext", 0x165},
    {"LoadExternal", 0x167},
    {"MakeCredential", 0x168},
    {"NV_ReadPublic", 0x169},
    {"PolicyAuthorize", 0x16a},
    {"PolicyAuthValue", 0x16b},
    {"PolicyCommandCode", 0x16c},
    {"PolicyCounterTimer", 0x16d},
    {"PolicyCpHash", 0x16e},
    {"PolicyLocality", 0x16f},
    {"PolicyNameHash", 0x170},
    {"PolicyOR", 0x171},
    {"PolicyTicket", 0x172},
    {"ReadPublic", 0x173},
    {"RSA_Encrypt", 0x174},
    {"StartAuthSession", 0x176},
    {"VerifySignature", 0x177},
    {"ECC_Parameters", 0x178},
    {"FirmwareRead", 0x179},
    {"GetCapability", 0x17a},
    {"GetRandom", 0x17b},
    {"GetTestResult", 0x17c},
    {"Hash", 0x17d},
    {"PCR_Read", 0x17e},
    {"PolicyPCR", 0x17f},
    {"PolicyRestart", 0x180},
    {"ReadClock", 0x181},
    {"PCR_Extend", 0x182},
    {"PCR_SetAuthValue", 0x183},
    {"NV_Certify", 0x184},
    {"EventSequenceComplete", 0x185},
    {"HashSequenceStart", 0x186},
    {"PolicyPhysicalPresence", 0x187},
    {"PolicyDuplicationSelect", 0x188},
    {"PolicyGetDigest", 0x189},
    {"TestParms", 0x18a},
    {"Commit", 0x18b},
    {"PolicyPassword", 0x18c},
    {"ZGen_2Phase", 0x18d},
    {"EC_Ephemeral", 0x18e},
    {"PolicyNvWritten", 0x18f},
    {"PolicyTemplate", 0x190},
    {"CreateLoaded", 0x191},
    {"PolicyAuthorizeNV", 0x192},
    {"EncryptDecrypt2", 0x193},
    {"AC_GetCapability", 0x194},
    {"AC_Send", 0x195},
    {"Policy_AC_SendSelect", 0x196},
    {"CertifyX509", 0x197},
    {"ACT_SetTimeout", 0x198},
    {"ECC_Encrypt", 0x199},
    {"ECC_Decrypt", 0x19a},
};

#define N_NAMES (sizeof(cc_names) / sizeof(cc_names[0]))

const char *cmd_filter_name(uint32_t cc)
{
	size_t i;

	for (i = 0; i < N_NAMES; i++)
		if (cc_names[i].cc == cc)
			return cc_names[i].name;
	return NULL;
}

const char *cmd_verdict_text(enum cmd_verdict v)
{
	switch (v) {
	case CMD_ALLOW:
		return "allowed";
	case CMD_DENY_CODE:
		return "command code not allowed";
	case CMD_DENY_PCR:
		return "PCR not in the filter's pcrs";
	case CMD_DENY_NV:
		return "NV index outside the filter's nv-range";
	case CMD_DENY_HEADER:
		return "command too short to check";
	}
	return "?";
}

static bool cc_valid(uint32_t cc)
{
	return (cc & ~(TPM_CC_VENDOR_BIT | TPM_CC_INDEX_MASK)) == 0;
}

static void set_code(struct cmd_filter *f, uint32_t cc, bool allow)
{
	unsigned v = (cc & TPM_CC_VENDOR_BIT) ? 1 : 0, i = cc & TPM_CC_INDEX_MASK;

	if (allow)
		f->allow[v][i / 8] |= (uint8_t)(1u << (i % 8));
	else
		f->allow[v][i / 8] &= (uint8_t) ~(1u << (i % 8));
}

bool cmd_filter_allows_code(const struct cmd_filter *f, uint32_t cc)
{
	unsigned v = (cc & TPM_CC_VENDOR_BIT) ? 1 : 0, i = cc & TPM_CC_INDEX_MASK;

	if (!cc_valid(cc))
		return false;
	return (f->allow[v][i / 8] >> (i % 8)) & 1u;
}

/* A command code: a spec name (optionally prefixed TPM2_CC_ or TPM_CC_, any case) or a
 * number (decimal or 0x hex) without reserved bits. */
static int parse_code(const char *tok, unsigned line, uint32_t *cc, char *err, size_t errlen)
{
	char why[160];
	size_t i;

	if (tok[0] >= '0' && tok[0] <= '9') {
		if (parse_num_u32(NULL, tok, NUM_DEC_HEX, 0, 0xffffffffu, cc, why, sizeof(why)) < 0)
			return errmsg(err, errlen, "line %u: %s", line, why);
		if (!cc_valid(*cc))
			return errmsg(err, errlen,
				      "line %u: 0x%x is not a TPM 2.0 command code (reserved bits "
				      "set; codes are 0x0000-0xffff, vendor 0x20000000-0x2000ffff)",
				      line, *cc);
		return 0;
	}
	if (strncasecmp(tok, "TPM2_CC_", 8) == 0)
		tok += 8;
	else if (strncasecmp(tok, "TPM_CC_", 7) == 0)
		tok += 7;
	for (i = 0; i < N_NAMES; i++) {
		if (strcasecmp(tok, cc_names[i].name) == 0) {
			*cc = cc_names[i].cc;
			return 0;
		}
	}
	return errmsg(err, errlen, "line %u: '%.64s' is not a TPM 2.0 command name", line, tok);
}

/* allow|deny ITEM...: ITEM is a name, a code, CODE-CODE, 'all' (every non-vendor code) or
 * 'vendor' (every vendor code). */
static int parse_rule(struct cmd_filter *f, bool allow, char *save, unsigned line, char *err,
		      size_t errlen)
{
	uint32_t lo, hi, cc;
	char *tok, *dash;
	int n = 0;

	while ((tok = strtok_r(NULL, " \t", &save))) {
		n++;
		if (strcasecmp(tok, "all") == 0 || strcasecmp(tok, "vendor") == 0) {
			uint32_t base = tok[0] == 'a' || tok[0] == 'A' ? 0 : TPM_CC_VENDOR_BIT;
			for (cc = 0; cc <= TPM_CC_INDEX_MASK; cc++)
				set_code(f, base | cc, allow);
			continue;
		}
		dash = strchr(tok, '-');
		if (dash && tok[0] >= '0' && tok[0] <= '9') {
			*dash = '\0';
			if (dash[1] < '0' || dash[1] > '9')
				return errmsg(err, errlen,
					      "line %u: a range is two numbers (0x120-0x12f)",
					      line);
			if (parse_code(tok, line, &lo, err, errlen) < 0 ||
			    parse_code(dash + 1, line, &hi, err, errlen) < 0)
				return -1;
			if (lo > hi || (lo & TPM_CC_VENDOR_BIT) != (hi & TPM_CC_VENDOR_BIT))
				return errmsg(
				    err, errlen,
				    "line %u: range 0x%x-0x%x is empty or mixes vendor and "
				    "standard codes",
				    line, lo, hi);
			for (cc = lo;; cc++) {
				set_code(f, cc, allow);
				if (cc == hi)
					break;
			}
			continue;
		}
		if (parse_code(tok, line, &cc, err, errlen) < 0)
			return -1;
		set_code(f, cc, allow);
	}
	if (!n)
		return errmsg(err, errlen, "line %u: %s needs at least one command", line,
			      allow ? "allow" : "deny");
	return 0;
}

/* pcrs none | pcrs N[-M][,N[-M]]... (also space separated), PCRs 0..31. */
static int parse_pcrs(struct cmd_filter *f, char *save, unsigned line, char *err, size_t errlen)
{
	char why[160], *tok, *item, *isave, *dash;
	uint32_t lo, hi, set = 0, i;
	int n = 0;

	while ((tok = strtok_r(NULL, " \t", &save))) {
		if (n == 0 && strcasecmp(tok, "none") == 0 && !strtok_r(NULL, " \t", &save)) {
			n = 1;
			break;
		}
		if (tok[0] == ',' || tok[strlen(tok) - 1] == ',' || strstr(tok, ",,"))
			return errmsg(err, errlen, "line %u: pcrs: empty item in '%.32s'", line,
				      tok);
		for (item = strtok_r(tok, ",", &isave); item; item = strtok_r(NULL, ",", &isave)) {
			n++;
			dash = strchr(item, '-');
			if (dash)
				*dash = '\0';
			if (parse_num_u32(NULL, item, NUM_DEC, 0, 31, &lo, why, sizeof(why)) < 0)
				return errmsg(err, errlen, "line %u: pcrs: %s", line, why);
			hi = lo;
			if (dash && parse_num_u32(NULL, dash + 1, NUM_DEC, lo, 31, &hi, why,
						  sizeof(why)) < 0)
				return errmsg(err, errlen, "line %u: pcrs: %s", line, why);
			for (i = lo; i <= hi; i++)
				set |= 1u << i;
		}
	}
	if (!n)
		return errmsg(err, errlen, "line %u: pcrs needs a list (16,23 or 16-23) or none",
			      line);
	f->pcrs = set;
	f->pcrs_set = true;
	return 0;
}

/* nv-range FIRST LAST: NV indices (TPM_HT_NV_INDEX, 0x01xxxxxx). */
static int parse_nv_range(struct cmd_filter *f, char *save, unsigned line, char *err, size_t errlen)
{
	char why[160], *a = strtok_r(NULL, " \t", &save), *b = strtok_r(NULL, " \t", &save);
	uint32_t lo, hi;

	if (!a || !b || strtok_r(NULL, " \t", &save))
		return errmsg(err, errlen, "line %u: nv-range needs FIRST and LAST", line);
	if (parse_num_u32(NULL, a, NUM_DEC_HEX, 0x01000000u, 0x01ffffffu, &lo, why, sizeof(why)) <
		0 ||
	    parse_num_u32(NULL, b, NUM_DEC_HEX, lo, 0x01ffffffu, &hi, why, sizeof(why)) < 0)
		return errmsg(err, errlen, "line %u: nv-range: %s", line, why);
	f->nv_first = lo;
	f->nv_last = hi;
	f->nv_set = true;
	return 0;
}

static int parse_line(struct cmd_filter *f, char *s, unsigned line, char *err, size_t errlen)
{
	char *save = NULL, *word = strtok_r(s, " \t", &save);

	if (!word)
		return 0; /* blank or comment only */
	if (strcmp(word, "allow") == 0 || strcmp(word, "deny") == 0)
		return parse_rule(f, word[0] == 'a', save, line, err, errlen);
	if (strcmp(word, "pcrs") == 0)
		return parse_pcrs(f, save, line, err, errlen);
	if (strcmp(word, "nv-range") == 0)
		return parse_nv_range(f, save, line, err, errlen);
	return errmsg(err, errlen,
		      "line %u: unknown directive '%.32s' (allow, deny, pcrs, nv-range)", line,
		      word);
}

int cmd_filter_parse(struct cmd_filter *f, const uint8_t *text, size_t len, char *err,
		     size_t errlen)
{
	char buf[CMD_FILTER_MAX_LINE + 1];
	struct rcursor c;
	unsigned line = 1;
	size_t n = 0;
	bool comment = false;
	uint8_t b;

	memset(f, 0, sizeof(*f));
	if (len > CMD_FILTER_MAX_FILE)
		return errmsg(err, errlen, "filter is larger than %u bytes", CMD_FILTER_MAX_FILE);
	rc_init(&c, text, len);
	for (;;) {
		bool end = rc_u8(&c, &b) < 0;

		if (end || b == '\n') {
			buf[n] = '\0';
			if (parse_line(f, buf, line, err, errlen) < 0)
				return -1;
			if (end)
				return 0;
			line++;
			n = 0;
			comment = false;
			continue;
		}
		if (b == '#')
			comment = true;
		if (comment)
			continue; /* any byte but a newline, UTF-8 included, in comments */
		if (b == '\r' || b == '\t')
			b = ' ';
		if (b < 0x20 || b > 0x7e)
			return errmsg(err, errlen, "line %u: byte 0x%02x is not printable ASCII",
				      line, b);
		if (n == CMD_FILTER_MAX_LINE)
			return errmsg(err, errlen, "line %u: longer than %u bytes", line,
				      CMD_FILTER_MAX_LINE);
		buf[n++] = (char)b;
	}
}

int cmd_filter_load(struct cmd_filter *f, const char *path, char *err, size_t errlen)
{
	char why[400];
	uint8_t *text;
	size_t len = 0;
	ssize_t r;
	int fd, rc;

	fd = daemon_open_nofollow("filter file", path, O_RDONLY, 0, false, why, sizeof(why));
	if (fd < 0)
		return errmsg(err, errlen, "%s", why);
	text = malloc(CMD_FILTER_MAX_FILE + 1);
	if (!text) {
		close(fd);
		return errmsg(err, errlen, "out of memory");
	}
	while (len <= CMD_FILTER_MAX_FILE &&
	       (r = read(fd, text + len, CMD_FILTER_MAX_FILE + 1 - len)) > 0)
		len += (size_t)r;
	close(fd);
	if (len > CMD_FILTER_MAX_FILE) {
		free(text);
		return errmsg(err, errlen, "filter file %s: larger than %u bytes", path,
			      CMD_FILTER_MAX_FILE);
	}
	rc = cmd_filter_parse(f, text, len, why, sizeof(why));
	free(text);
	if (rc < 0)
		return errmsg(err, errlen, "filter file %s: %s", path, why);
	return 0;
}

/* Commands whose first handle is a PCR (TPM_RH_NULL allowed: nothing is extended). */
static bool pcr_command(uint32_t cc)
{
	return cc == 0x182 /* PCR_Extend */ || cc == 0x13c /* PCR_Event */ ||
	       cc == 0x13d /* PCR_Reset */ || cc == 0x185 /* EventSequenceComplete */;
}

#define TPM_RH_NULL	       0x40000007u
#define TPM_ST_SESSIONS	       0x8002u
#define CC_NV_UNDEFINE_SPECIAL 0x11fu
#define CC_NV_UNDEFINE	       0x122u
#define CC_NV_DEFINE	       0x12au

static enum cmd_verdict check_nv(const struct cmd_filter *f, struct rcursor *c, uint16_t tag,
				 uint32_t cc)
{
	uint32_t h1, h2, idx, auth_size;
	uint16_t sz;

	if (rc_u32(c, &h1) < 0)
		return CMD_DENY_HEADER;
	if (cc == CC_NV_UNDEFINE_SPECIAL) {
		idx = h1; /* nvIndex, platform */
	} else if (cc == CC_NV_UNDEFINE) {
		if (rc_u32(c, &h2) < 0) /* authHandle, nvIndex */
			return CMD_DENY_HEADER;
		idx = h2;
	} else {
		/* NV_DefineSpace: authHandle; [authorization area]; TPM2B_AUTH auth;
		 * TPM2B_NV_PUBLIC publicInfo whose first field is nvIndex */
		if (tag == TPM_ST_SESSIONS &&
		    (rc_u32(c, &auth_size) < 0 || rc_skip(c, auth_size) < 0))
			return CMD_DENY_HEADER;
		if (rc_u16(c, &sz) < 0 || rc_skip(c, sz) < 0 || rc_u16(c, &sz) < 0 ||
		    rc_u32(c, &idx) < 0)
			return CMD_DENY_HEADER;
	}
	if (!f->nv_set || idx < f->nv_first || idx > f->nv_last)
		return CMD_DENY_NV;
	return CMD_ALLOW;
}

enum cmd_verdict cmd_filter_check(const struct cmd_filter *f, const uint8_t *cmd, size_t len,
				  uint32_t *cc)
{
	struct rcursor c;
	uint32_t size, h;
	uint16_t tag;

	*cc = 0;
	rc_init(&c, cmd, len);
	if (rc_u16(&c, &tag) < 0 || rc_u32(&c, &size) < 0 || rc_u32(&c, cc) < 0)
		return CMD_DENY_HEADER;
	if (!cmd_filter_allows_code(f, *cc))
		return CMD_DENY_CODE;
	if (pcr_command(*cc)) {
		if (rc_u32(&c, &h) < 0)
			return CMD_DENY_HEADER;
		if (h == TPM_RH_NULL && *cc == 0x185)
			return CMD_ALLOW;
		if (h > 31 || !f->pcrs_set || !((f->pcrs >> h) & 1u))
			return CMD_DENY_PCR;
		return CMD_ALLOW;
	}
	if (*cc == CC_NV_DEFINE || *cc == CC_NV_UNDEFINE || *cc == CC_NV_UNDEFINE_SPECIAL)
		return check_nv(f, &c, tag, *cc);
	return CMD_ALLOW;
}
