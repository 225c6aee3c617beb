/*
 * host.c — vtpmctl host init|status|reseal: the manager's provisioning on the host TPM.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/parse_num.h"
#include "vtpmctl/vtpmctl.h"
#include "vtpmmgrd/host_policy.h"

/* PCRs 0 (firmware code), 2 (option ROM code), 4 (boot loader code), 7 (Secure Boot
 * policy): code and policy, not configuration, so the root key survives BIOS setting
 * changes but not a changed firmware, boot loader or Secure Boot database. */
#define DEFAULT_PCRS	 "0,2,4,7"
#define DEFAULT_PCR_MASK 0x95u
#define MAX_PCR		 23

const char ctl_host_help[] =
    "Usage: vtpmctl host init [--pcrs LIST] [--force]\n"
    "       vtpmctl host status [--check-pcrs FILE]\n"
    "       vtpmctl host reseal [--pcrs LIST] [--predict FILE]\n"
    "       vtpmctl host policy sign|install|add|revoke ...   (host policy --help)\n"
    "\n"
    "The host: the manager's root key, sealed to the host TPM under a policy on host PCRs\n"
    "(SHA-256 bank). Every group key and vTPM state key is wrapped below it.\n"
    "\n"
    "  init    provision the host: create the root key and seal it to the PCRs of LIST.\n"
    "          Refused when the host is provisioned already, unless --force.\n"
    "  status  show the provisioning (sealed PCRs, NV counter, creation time, AK public\n"
    "          key, predicted copy) and the manager's counters; with --check-pcrs, whether\n"
    "          a boot with the PCR values of FILE would unseal the root key.\n"
    "  reseal  seal the root key, which the running manager holds, again to the current\n"
    "          values of its PCRs, or of the PCRs of LIST. Keys below it do not change.\n"
    "          With --predict: a second copy, sealed to the values FILE gives for the next\n"
    "          boot (a host update), beside the current one.\n"
    "  policy  signed host policies: a copy of the root key that opens with any PCR values\n"
    "          the administrator's offline key signed, with revocation (host policy --help).\n"
    "\n"
    "Options:\n"
    "  --pcrs LIST   the SHA-256 PCRs to seal to: numbers 0-23 and ranges, comma separated\n"
    "                (e.g. 0,2,4,7 or 0-7); init's default is " DEFAULT_PCRS " (firmware code,\n"
    "                option ROM code, boot loader code, Secure Boot policy)\n"
    "  --force       (init) provision again: a new root key replaces the old one and the\n"
    "                group keys are re-wrapped; the manager refuses while vTPMs exist\n"
    "  --predict FILE  (reseal) the expected SHA-256 PCR values of the next boot, as\n"
    "                tpm2_pcrread prints them (\"sha256:\" then \"  16: 0x...\" lines; - reads\n"
    "                standard input)\n"
    "  --check-pcrs FILE  (status) PCR values in the same format: say whether a boot with\n"
    "                them unseals the current copy, the predicted one, or neither (exit 3)\n"
    "\n" CTL_HELP_GLOBAL "\n"
    "Examples:\n"
    "  vtpmctl host init --pcrs 0,2,4,7\n"
    "  vtpmctl --json host status | jq .pcrs\n"
    "  vtpmctl host reseal --pcrs 7      # before a firmware update; after it has booted:\n"
    "  vtpmctl host reseal --pcrs 0,2,4,7\n"
    "  vtpmctl host reseal --predict next-boot.yaml   # values the update will measure\n"
    "  vtpmctl host status --check-pcrs next-boot.yaml\n"
    "\n" CTL_HELP_EXIT;

static const char init_help[] =
    "Usage: vtpmctl host init [--pcrs LIST] [--force]\n"
    "\n"
    "Provision the host: the manager creates its root key, defines its NV counter (the\n"
    "store's rollback guard) and seals the key to the host TPM under a policy on the\n"
    "SHA-256 PCRs of LIST, so the key (and every vTPM key below it) opens only on this\n"
    "TPM with those PCRs at their current values.\n"
    "\n"
    "  --pcrs LIST   PCR numbers 0-23 and ranges, comma separated, no spaces (0,2,4,7 or\n"
    "                0-7,9); default " DEFAULT_PCRS " (firmware code, option ROM code, boot\n"
    "                loader code, Secure Boot policy: code and policy, not settings)\n"
    "  --force       provision again although the host is provisioned: a new root key\n"
    "                replaces the old one (destroyed) and the group keys are re-wrapped\n"
    "                under it; the manager refuses while any vTPM exists\n"
    "\n" CTL_HELP_GLOBAL "\n" CTL_HELP_EXIT;

static const char status_help[] =
    "Usage: vtpmctl host status [--check-pcrs FILE]\n"
    "\n"
    "Show whether the host is provisioned, the PCRs the root key is sealed to, the NV\n"
    "counter (index, value, offset to the store's counter), when the host was provisioned,\n"
    "the host attestation key's public key (DER, hex), the store's commit counter and how\n"
    "many groups, vTPMs and open instances there are: \"key: value\" lines, or one JSON\n"
    "object. Fields the manager adds show up under their names. predicted_copy says\n"
    "whether a predicted copy of the root key waits for the next boot (host reseal\n"
    "--predict; predicted_pcrs, predicted_time).\n"
    "\n"
    "  --check-pcrs FILE  SHA-256 PCR values as tpm2_pcrread prints them (- reads standard\n"
    "                     input): check_pcrs says which copy a boot with those values would\n"
    "                     unseal (current, predicted, or no) and check_pcrs_note which PCRs\n"
    "                     differ from each copy. No host TPM command. Exit status 3 if\n"
    "                     neither copy would unseal.\n"
    "\n" CTL_HELP_GLOBAL "\n" CTL_HELP_EXIT;

static const char reseal_help[] =
    "Usage: vtpmctl host reseal [--pcrs LIST] [--predict FILE]\n"
    "\n"
    "Seal the root key, which the running manager holds, again to the current values of\n"
    "the PCRs it is sealed to, or of the PCRs of LIST. Group and vTPM keys do not change.\n"
    "A planned change of measured code (a firmware or boot loader update): first reseal to\n"
    "PCRs the update leaves alone (e.g. --pcrs 7), update and reboot, then reseal to the\n"
    "full list, now at its new values.\n"
    "\n"
    "With --predict FILE the current copy stays as it is and a second copy is sealed to\n"
    "the values FILE gives (the values the updated host will measure at its next boot).\n"
    "At start the manager tries the current copy; if the host PCRs differ from it, the\n"
    "predicted copy; the first start that opens the root key with the predicted copy makes\n"
    "it the current copy and removes the old one (logged and audited). A later --predict\n"
    "replaces the predicted copy. FILE must give a value for every PCR sealed to.\n"
    "\n"
    "  --pcrs LIST     PCR numbers 0-23 and ranges, comma separated (as for host init);\n"
    "                  with --predict: the PCRs of the predicted copy\n"
    "  --predict FILE  tpm2_pcrread's output (YAML): a \"sha256:\" line, then one line per\n"
    "                  PCR, \"  16: 0x<64 hex digits>\"; other banks are ignored, blank and\n"
    "                  '#' lines skipped, anything else refused naming the line (exit 1);\n"
    "                  - reads standard input\n"
    "\n" CTL_HELP_GLOBAL "\n" CTL_HELP_EXIT;

/* Parse "0,2,4,7" / "0-7,9" into a mask of PCRs 0..23. */
static int parse_pcrs(const char *s, uint32_t *mask, char *err, size_t errlen)
{
	const char *p = s;
	char shown[80];

	out_sanitize(s, strnlen(s, 64), shown, sizeof(shown));
	*mask = 0;
	for (;;) {
		unsigned lo = 0, hi, n = 0, i;

		while (*p >= '0' && *p <= '9' && n < 3) {
			lo = lo * 10 + (unsigned)(*p++ - '0');
			n++;
		}
		if (n == 0 || (*p >= '0' && *p <= '9')) {
			snprintf(err, errlen,
				 "PCR list '%s': expected a PCR number at offset %zu (numbers 0-%d "
				 "and ranges, comma separated)",
				 shown, (size_t)(p - s), MAX_PCR);
			return -1;
		}
		hi = lo;
		if (*p == '-') {
			p++;
			hi = 0;
			n = 0;
			while (*p >= '0' && *p <= '9' && n < 3) {
				hi = hi * 10 + (unsigned)(*p++ - '0');
				n++;
			}
			if (n == 0 || (*p >= '0' && *p <= '9')) {
				snprintf(err, errlen,
					 "PCR list '%s': expected the end of a range at offset %zu",
					 shown, (size_t)(p - s));
				return -1;
			}
			if (hi < lo) {
				snprintf(err, errlen, "PCR list '%s': range %u-%u runs backwards",
					 shown, lo, hi);
				return -1;
			}
		}
		if (hi > MAX_PCR) {
			snprintf(err, errlen, "PCR list '%s': PCR %u does not exist (0-%d)", shown,
				 hi, MAX_PCR);
			return -1;
		}
		for (i = lo; i <= hi; i++) {
			if (*mask & (1u << i)) {
				snprintf(err, errlen, "PCR list '%s': PCR %u is listed twice",
					 shown, i);
				return -1;
			}
			*mask |= 1u << i;
		}
		if (*p == '\0')
			return 0;
		if (*p != ',') {
			snprintf(err, errlen,
				 "PCR list '%s': unexpected character at offset %zu (numbers 0-%d "
				 "and ranges, comma separated, no spaces)",
				 shown, (size_t)(p - s), MAX_PCR);
			return -1;
		}
		p++;
	}
}

/* ---- PCR value files: tpm2_pcrread's output ----------------------------------------------
 *
 *   sha256:
 *     0 : 0x3B3F88...        (one line per PCR: number, ':', 0x and the value in hex)
 *     16: 0x90F4B3...
 *
 * Banks are "name:" lines; a PCR line is indented deeper than its bank. Banks other than
 * sha256 (sha1, sha384, sha512, sm3_256) are checked and ignored. Blank lines and lines
 * starting with '#' are skipped. Anything else is refused, naming the line. */

#define PCRFILE_MAX (64 * 1024)

struct pcr_values {
	uint32_t mask;
	uint8_t values[MAX_PCR + 1][32];
};

static const struct {
	const char *name;
	unsigned len;
} pcr_banks[] = {{"sha1", 20}, {"sha256", 32}, {"sha384", 48}, {"sha512", 64}, {"sm3_256", 32}};

/* Parse buf (n bytes, the contents of file `name`) into pv. -1 with the reason in err. */
static int parse_pcr_file(const char *name, const char *buf, size_t n, struct pcr_values *pv,
			  char *err, size_t errlen)
{
	size_t pos = 0, lineno = 0;
	int bank = -1, bank_indent = -1;
	unsigned banks_seen = 0, sha256_idx = 1;
	uint32_t in_bank = 0;

	memset(pv, 0, sizeof(*pv));
	if (n == 0) {
		snprintf(err, errlen, "%s: the file is empty (expected tpm2_pcrread's output)",
			 name);
		return -1;
	}
	while (pos < n) {
		const char *line = buf + pos, *nl = memchr(line, '\n', n - pos);
		size_t len = nl ? (size_t)(nl - line) : n - pos, i = 0, j;
		unsigned pcr = 0, digits = 0, k;
		char shown[48];

		pos += len + (nl ? 1 : 0);
		lineno++;
		for (j = 0; j < len; j++) {
			unsigned char ch = (unsigned char)line[j];

			if (ch == '\r') {
				snprintf(err, errlen,
					 "%s line %zu: carriage return (DOS line ends?)", name,
					 lineno);
				return -1;
			}
			if ((ch < 0x20 && ch != '\t') || ch >= 0x7f) {
				snprintf(err, errlen, "%s line %zu: byte 0x%02x at column %zu",
					 name, lineno, ch, j + 1);
				return -1;
			}
		}
		while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
			len--;
		while (i < len && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i == len || line[i] == '#')
			continue;
		out_sanitize(line + i, len - i < 40 ? len - i : 40, shown, sizeof(shown));
		if (line[i] < '0' || line[i] > '9') {
			/* a bank: "name:" */
			for (j = i; j < len && line[j] != ':'; j++)
				;
			if (j + 1 != len || j == i) {
				snprintf(
				    err, errlen,
				    "%s line %zu: '%s' is neither a bank (\"sha256:\") nor a PCR "
				    "value (\"16: 0x...\")",
				    name, lineno, shown);
				return -1;
			}
			bank = -1;
			for (k = 0; k < sizeof(pcr_banks) / sizeof(pcr_banks[0]); k++)
				if (strlen(pcr_banks[k].name) == j - i &&
				    memcmp(pcr_banks[k].name, line + i, j - i) == 0)
					bank = (int)k;
			if (bank < 0) {
				snprintf(
				    err, errlen,
				    "%s line %zu: unknown PCR bank '%.*s' (sha1, sha256, sha384, "
				    "sha512, sm3_256)",
				    name, lineno, (int)(j - i < 20 ? j - i : 20), line + i);
				return -1;
			}
			if (banks_seen & (1u << bank)) {
				snprintf(err, errlen, "%s line %zu: bank %s appears twice", name,
					 lineno, pcr_banks[bank].name);
				return -1;
			}
			banks_seen |= 1u << bank;
			bank_indent = (int)i;
			in_bank = 0;
			continue;
		}
		/* a PCR: "16: 0x..." or "0 : 0x..." */
		if (bank < 0) {
			snprintf(err, errlen,
				 "%s line %zu: a PCR value before any bank line (\"sha256:\")",
				 name, lineno);
			return -1;
		}
		if ((int)i <= bank_indent) {
			snprintf(err, errlen,
				 "%s line %zu: a PCR value not indented under its bank", name,
				 lineno);
			return -1;
		}
		while (i < len && line[i] >= '0' && line[i] <= '9' && digits < 3) {
			pcr = pcr * 10 + (unsigned)(line[i++] - '0');
			digits++;
		}
		while (i < len && line[i] == ' ')
			i++;
		if (i >= len || line[i] != ':' || digits > 2) {
			snprintf(
			    err, errlen,
			    "%s line %zu: '%s': expected a PCR number, ':' and 0x and its value",
			    name, lineno, shown);
			return -1;
		}
		i++;
		if (pcr > MAX_PCR) {
			snprintf(err, errlen, "%s line %zu: PCR %u does not exist (0-%d)", name,
				 lineno, pcr, MAX_PCR);
			return -1;
		}
		if (in_bank & (1u << pcr)) {
			snprintf(err, errlen, "%s line %zu: PCR %u appears twice in bank %s", name,
				 lineno, pcr, pcr_banks[bank].name);
			return -1;
		}
		in_bank |= 1u << pcr;
		j = i;
		while (i < len && line[i] == ' ')
			i++;
		if (i == j || i + 2 > len || line[i] != '0' ||
		    (line[i + 1] != 'x' && line[i + 1] != 'X')) {
			snprintf(
			    err, errlen,
			    "%s line %zu: PCR %u: expected ' 0x' and the value in hex after ':'",
			    name, lineno, pcr);
			return -1;
		}
		i += 2;
		if (len - i != 2u * pcr_banks[bank].len) {
			snprintf(err, errlen,
				 "%s line %zu: PCR %u: %zu hex digits, a %s value has %u", name,
				 lineno, pcr, len - i, pcr_banks[bank].name,
				 2u * pcr_banks[bank].len);
			return -1;
		}
		for (k = 0; k < pcr_banks[bank].len; k++) {
			int hi = parse_hex_digit(line[i + 2 * k]),
			    lo = parse_hex_digit(line[i + 2 * k + 1]);

			if (hi < 0 || lo < 0) {
				snprintf(err, errlen,
					 "%s line %zu: PCR %u: '%c' is not a hex digit", name,
					 lineno, pcr,
					 hi < 0 ? line[i + 2 * k] : line[i + 2 * k + 1]);
				return -1;
			}
			if ((unsigned)bank == sha256_idx)
				pv->values[pcr][k] = (uint8_t)(hi << 4 | lo);
		}
		if ((unsigned)bank == sha256_idx)
			pv->mask |= 1u << pcr;
	}
	if (!(banks_seen & (1u << sha256_idx))) {
		snprintf(err, errlen,
			 "%s: no sha256 bank (the root key is sealed to SHA-256 PCRs: tpm2_pcrread "
			 "sha256:LIST prints them)",
			 name);
		return -1;
	}
	if (!pv->mask) {
		snprintf(err, errlen, "%s: the sha256 bank lists no PCR", name);
		return -1;
	}
	return 0;
}

/* Read FILE ("-": standard input) and parse it. An exit code (reported) or EXIT_OK. */
static int read_pcr_file(struct ctl *c, const char *path, struct pcr_values *pv)
{
	char err[512], shown[128];
	FILE *f;
	char *buf;
	size_t n;
	int e;

	out_sanitize(path, strnlen(path, 100), shown, sizeof(shown));
	buf = malloc(PCRFILE_MAX + 1);
	if (!buf)
		return ctl_fail(c, EXIT_LOCAL, -1, "out of memory");
	f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	if (!f) {
		e = errno;
		free(buf);
		return ctl_fail(c, EXIT_LOCAL, -1, "cannot open %s: %s", shown, strerror(e));
	}
	n = fread(buf, 1, PCRFILE_MAX + 1, f);
	e = ferror(f) ? errno : 0;
	if (f != stdin)
		fclose(f);
	if (e) {
		free(buf);
		return ctl_fail(c, EXIT_LOCAL, -1, "cannot read %s: %s", shown, strerror(e));
	}
	if (n > PCRFILE_MAX) {
		free(buf);
		return ctl_fail(c, EXIT_LOCAL, -1, "%s: larger than %d bytes: not PCR values",
				shown, PCRFILE_MAX);
	}
	e = parse_pcr_file(strcmp(path, "-") == 0 ? "(stdin)" : shown, buf, n, pv, err,
			   sizeof(err));
	free(buf);
	if (e < 0)
		return ctl_fail(c, EXIT_USAGE, -1, "%s", err);
	return EXIT_OK;
}

static void put_pcr_values(struct mgr_builder *b, const struct pcr_values *pv)
{
	uint8_t v[33];
	unsigned i;

	for (i = 0; i <= MAX_PCR; i++) {
		if (!(pv->mask & (1u << i)))
			continue;
		v[0] = (uint8_t)i;
		memcpy(v + 1, pv->values[i], 32);
		mgr_put_bytes(b, MGR_F_PCR_VALUE, v, sizeof(v));
	}
}

static int host_init(struct ctl *c, int argc, char **argv)
{
	enum { O_PCRS = 1, O_FORCE };
	static const struct optspec specs[] = {
	    {"pcrs", true, O_PCRS}, {"force", false, O_FORCE}, {NULL, false, 0}};
	uint32_t mask = DEFAULT_PCR_MASK;
	bool force = false;
	struct mgr_builder b;
	struct argiter it;
	const char *val;
	char err[256];
	struct props *ps;
	int id, rc;

	argiter_init(&it, argc - 1, argv + 1, "host init");
	while ((id = argiter_next(c, &it, specs, &val)) != OPT_END) {
		switch (id) {
		case OPT_ERROR:
			return EXIT_USAGE;
		case OPT_POSITIONAL:
		case OPT_DASHDASH:
			return ctl_usage(c, it.cmd, "host init takes no arguments");
		case O_PCRS:
			if (parse_pcrs(val, &mask, err, sizeof(err)) < 0)
				return ctl_usage(c, it.cmd, "%s", err);
			break;
		case O_FORCE:
			force = true;
			break;
		default:
			rc = ctl_global_opt(c, &it, id, val, init_help);
			if (rc)
				return rc;
		}
	}
	mgr_build_init(&b, ctl_reqbuf(), MGR_MAX_MSG, MGR_HOST_INIT);
	mgr_put_u32(&b, MGR_F_PCR_MASK, mask);
	if (force)
		mgr_put_flag(&b, MGR_F_FORCE);
	rc = ctl_request(c, &b, "host init");
	if (rc)
		return rc;
	ps = props_new();
	props_add_bool(ps, "provisioned", true);
	props_add_response(ps, c, REC_HOST);
	if (!props_has(ps, "pcrs"))
		props_add_pcrs(ps, "pcrs", mask);
	if (c->json) {
		props_print(c, ps);
	} else {
		char list[128] = "";
		unsigned i;

		for (i = 0; i <= MAX_PCR; i++)
			if (mask & (1u << i))
				snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%u",
					 list[0] ? "," : "", i);
		printf("host provisioned: root key sealed to SHA-256 PCRs %s%s\n", list,
		       force ? " (forced: the previous root key is replaced)" : "");
	}
	props_free(ps);
	return EXIT_OK;
}

static void pcr_list_text(uint32_t mask, char *out, size_t cap)
{
	unsigned i;

	out[0] = '\0';
	for (i = 0; i <= MAX_PCR; i++)
		if (mask & (1u << i))
			snprintf(out + strlen(out), cap - strlen(out), "%s%u", out[0] ? "," : "",
				 i);
}

static int host_reseal(struct ctl *c, int argc, char **argv)
{
	enum { O_PCRS = 1, O_PREDICT };
	static const struct optspec specs[] = {
	    {"pcrs", true, O_PCRS}, {"predict", true, O_PREDICT}, {NULL, false, 0}};
	uint32_t mask = 0, got;
	struct mgr_builder b;
	struct argiter it;
	const char *val, *predict = NULL;
	struct pcr_values pv;
	char err[256], list[128];
	struct props *ps;
	int id, rc;

	argiter_init(&it, argc - 1, argv + 1, "host reseal");
	while ((id = argiter_next(c, &it, specs, &val)) != OPT_END) {
		switch (id) {
		case OPT_ERROR:
			return EXIT_USAGE;
		case OPT_POSITIONAL:
		case OPT_DASHDASH:
			return ctl_usage(c, it.cmd, "host reseal takes no arguments");
		case O_PCRS:
			if (parse_pcrs(val, &mask, err, sizeof(err)) < 0)
				return ctl_usage(c, it.cmd, "%s", err);
			break;
		case O_PREDICT:
			predict = val;
			break;
		default:
			rc = ctl_global_opt(c, &it, id, val, reseal_help);
			if (rc)
				return rc;
		}
	}
	if (predict) {
		rc = read_pcr_file(c, predict, &pv);
		if (rc)
			return rc;
	}
	mgr_build_init(&b, ctl_reqbuf(), MGR_MAX_MSG, MGR_HOST_RESEAL);
	if (mask)
		mgr_put_u32(&b, MGR_F_PCR_MASK, mask);
	if (predict) {
		mgr_put_flag(&b, MGR_F_PREDICT);
		put_pcr_values(&b, &pv);
	}
	rc = ctl_request(c, &b, predict ? "host reseal --predict" : "host reseal");
	if (rc)
		return rc;
	ps = props_new();
	props_add_bool(ps, "resealed", true);
	props_add_response(ps, c, REC_HOST);
	if (c->json) {
		props_print(c, ps);
	} else if (predict && mgr_get_u32(c->msg, MGR_F_PCR_MASK, &got) == 0) {
		pcr_list_text(got, list, sizeof(list));
		printf("root key sealed a second time, to the predicted values of SHA-256 PCRs %s; "
		       "the current copy stays: the first start with those values uses the "
		       "predicted copy and makes it the current one\n",
		       list);
	} else if (mgr_get_u32(c->msg, MGR_F_PCR_MASK, &got) == 0) {
		pcr_list_text(got, list, sizeof(list));
		printf("root key resealed to the current values of SHA-256 PCRs %s\n", list);
	} else {
		printf("root key resealed to the current values of its PCRs\n");
	}
	props_free(ps);
	return EXIT_OK;
}

bool response_prop(struct ctl *c, const char *key, char *out, size_t cap)
{
	const struct mgr_field_view *rec = mgr_find(c->msg, MGR_F_RECORD);
	struct mgr_msg *m;
	char err[128];
	bool found = false;
	size_t i, klen = strlen(key);

	out[0] = '\0';
	if (!rec || !(m = malloc(sizeof(*m))))
		return false;
	if (mgr_parse_fields(rec->val, rec->len, m, err, sizeof(err)) == 0) {
		for (i = 0; i + 1 < m->nfields && !found; i++) {
			if (m->f[i].tag != MGR_F_KEY || m->f[i].len != klen ||
			    memcmp(m->f[i].val, key, klen) != 0 || m->f[i + 1].tag != MGR_F_VALUE)
				continue;
			out_sanitize((const char *)m->f[i + 1].val, m->f[i + 1].len, out, cap);
			found = true;
		}
	}
	free(m);
	return found;
}

static int host_status(struct ctl *c, int argc, char **argv)
{
	enum { O_CHECK = 1 };
	static const struct optspec specs[] = {{"check-pcrs", true, O_CHECK}, {NULL, false, 0}};
	struct mgr_builder b;
	struct argiter it;
	const char *val, *check = NULL;
	struct pcr_values pv;
	char verdict[32], note[MGR_MAX_TEXT + 1], shown[128];
	int id, rc;

	argiter_init(&it, argc - 1, argv + 1, "host status");
	while ((id = argiter_next(c, &it, specs, &val)) != OPT_END) {
		if (id == OPT_ERROR)
			return EXIT_USAGE;
		if (id == OPT_POSITIONAL || id == OPT_DASHDASH)
			return ctl_usage(c, it.cmd, "host status takes no arguments");
		if (id == O_CHECK) {
			check = val;
			continue;
		}
		rc = ctl_global_opt(c, &it, id, val, status_help);
		if (rc)
			return rc;
	}
	if (check) {
		rc = read_pcr_file(c, check, &pv);
		if (rc)
			return rc;
	}
	mgr_build_init(&b, ctl_reqbuf(), MGR_MAX_MSG, MGR_HOST_STATUS);
	if (check)
		put_pcr_values(&b, &pv);
	rc = ctl_request(c, &b, "host status");
	if (rc)
		return rc;
	rc = out_show(c, REC_HOST);
	if (rc || !check)
		return rc;
	if (!response_prop(c, "check_pcrs", verdict, sizeof(verdict)))
		return ctl_fail(c, EXIT_REFUSED, -1,
				"the manager did not check the PCR values (is the host "
				"provisioned?)");
	if (strcmp(verdict, "current") == 0 || strcmp(verdict, "predicted") == 0 ||
	    strcmp(verdict, "signed") == 0)
		return EXIT_OK;
	if (c->json) /* the object printed says check_pcrs "no" and why */
		return EXIT_REFUSED;
	response_prop(c, "check_pcrs_note", note, sizeof(note));
	out_sanitize(check, strnlen(check, 100), shown, sizeof(shown));
	return ctl_fail(c, EXIT_REFUSED, -1,
			"a boot with the PCR values of %s would not unseal the root key: %s", shown,
			note);
}

/* ---- host policy: signed policies (docs/vtpmctl.8, HOST POLICY) ------------------------ */

static const char policy_help[] =
    "Usage: vtpmctl host policy sign --key PRIV.pem --pcrs LIST (--values FILE | --current)\n"
    "                              [--serial N] [--nv-index N] --out POLICY\n"
    "       vtpmctl host policy install --pubkey PUB.pem [--nv-index N]\n"
    "       vtpmctl host policy add POLICY\n"
    "       vtpmctl host policy revoke --below N\n"
    "\n"
    "Signed host policies let the manager's root key survive a host update that changes\n"
    "the sealed PCRs, without resealing beforehand: the administrator signs, with a key\n"
    "kept offline, the PCR values the updated host will have, and the manager opens a\n"
    "second copy of its root key, sealed under TPM2_PolicyAuthorize of that key, with any\n"
    "stored policy the key signed whose PCR values the host has at start. A change nobody\n"
    "signed is still refused, naming the PCRs. A policy holds while the host TPM's\n"
    "revocation counter is not above its serial: revoke moves the counter up.\n"
    "\n"
    "  sign     make a signed policy file (no manager needed with --values): approvedPolicy\n"
    "           = digest of TPM2_PolicyPCR(the PCRs of LIST, their values) then\n"
    "           TPM2_PolicyNV(revocation counter <= serial), signed (RSASSA or ECDSA,\n"
    "           SHA-256) over SHA-256(approvedPolicy || \"" HOST_POLICY_REF "\").\n"
    "  install  give the manager the public half of the policy key (PEM): it defines the\n"
    "           revocation counter on the host TPM if missing and seals a copy of the root\n"
    "           key under PolicyAuthorize of that key. Installing another key removes the\n"
    "           policies the previous one signed.\n"
    "  add      store a signed policy: the manager checks its form (precise refusals) and\n"
    "           its signature against the installed key, and refuses a revoked serial. At\n"
    "           most "
    "8"
    " policies are stored.\n"
    "  revoke   revoke every policy whose serial is below N: the revocation counter is\n"
    "           incremented up to N (at most 1000 steps per request; a counter only grows).\n"
    "           A revoked policy opens nothing: the TPM itself refuses TPM2_PolicyNV. It\n"
    "           stays stored (status marks it revoked) until an add removes it.\n"
    "\n"
    "Options:\n"
    "  --key PRIV.pem    (sign) the policy key's private half, PEM: RSA-2048 or ECC P-256\n"
    "  --pcrs LIST       (sign) the SHA-256 PCRs the policy covers (0-23, ranges, commas)\n"
    "  --values FILE     (sign) their values, as tpm2_pcrread prints them (- reads stdin)\n"
    "  --current         (sign) ask the manager for the current values of those PCRs\n"
    "  --serial N        (sign) the policy's serial: it holds while the revocation counter\n"
    "                    is <= N. Counters start high on a TPM (at its largest counter value),\n"
    "                    so take N from host status (policy_counter); with --current the\n"
    "                    default is the counter's present value\n"
    "  --nv-index N      the revocation counter's NV index (default 0x013ff101; with\n"
    "                    --current, the manager's)\n"
    "  --out POLICY      (sign) where to write the policy file (- writes standard output)\n"
    "  --pubkey PUB.pem  (install) the policy key's public half, PEM (a private key PEM is\n"
    "                    accepted too: only its public half is sent)\n"
    "  --below N         (revoke) revoke every policy with a serial below N\n"
    "\n" CTL_HELP_GLOBAL "\n"
    "Examples:\n"
    "  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out policy.key\n"
    "  openssl pkey -in policy.key -pubout -out policy.pub\n"
    "  vtpmctl host policy install --pubkey policy.pub\n"
    "  vtpmctl host status | grep policy_counter          # e.g. 1234\n"
    "  vtpmctl host policy sign --key policy.key --pcrs 0,2,4,7 --values next-boot.yaml \\\n"
    "          --serial 1234 --out next-boot.policy        # offline\n"
    "  vtpmctl host policy add next-boot.policy\n"
    "  vtpmctl host policy revoke --below 1235             # every policy up to serial 1234\n"
    "\n"
    "The policy file (version 1, big-endian): \"VTPP\", u16 version, u16 bank (0x000b), u32\n"
    "PCR mask, 32 bytes per PCR, u32 NV index, u64 serial, 32 bytes approvedPolicy, u16 n +\n"
    "TPMT_SIGNATURE; see vtpmmgrd(8), SIGNED POLICIES.\n"
    "\n" CTL_HELP_EXIT;

/* A serial, counter or NV index: decimal, or hex after 0x (the shared parser's rules). */
static int parse_u64_arg(const char *s, uint64_t *v)
{
	char err[160];

	return parse_num_u64("value", s, NUM_DEC_HEX, 0, UINT64_MAX, v, err, sizeof(err));
}

/* The PEM key at path: private (want_private) or public (a private key's public half). */
static EVP_PKEY *read_pem_key(struct ctl *c, const char *path, bool want_private, int *rc)
{
	char shown[128];
	EVP_PKEY *k = NULL;
	BIO *bio;

	out_sanitize(path, strnlen(path, 100), shown, sizeof(shown));
	bio = BIO_new_file(path, "r");
	if (!bio) {
		*rc = ctl_fail(c, EXIT_LOCAL, -1, "cannot open %s: %s", shown, strerror(errno));
		return NULL;
	}
	if (!want_private)
		k = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	if (!k) {
		(void)BIO_reset(bio);
		k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	}
	BIO_free(bio);
	if (!k)
		*rc = ctl_fail(c, EXIT_USAGE, -1, "%s: not a PEM %s key", shown,
			       want_private ? "private" : "public (or private)");
	return k;
}

/* The current values of the PCRs of mask, and the revocation counter (value, index), from
 * the manager. */
static int current_values(struct ctl *c, uint32_t mask, struct pcr_values *pv, uint64_t *counter,
			  bool *have_counter, uint32_t *nv_index, bool *have_nv)
{
	const struct mgr_field_view *rec;
	struct mgr_builder b;
	struct mgr_msg *m;
	char err[128], v[64];
	int rc;

	mgr_build_init(&b, ctl_reqbuf(), MGR_MAX_MSG, MGR_HOST_STATUS);
	mgr_put_u32(&b, MGR_F_PCR_MASK, mask);
	rc = ctl_request(c, &b, "host status (current PCR values)");
	if (rc)
		return rc;
	*have_counter =
	    response_prop(c, "policy_counter", v, sizeof(v)) && parse_u64_arg(v, counter) == 0;
	*have_nv = false;
	if (response_prop(c, "policy_nv_index", v, sizeof(v))) {
		uint64_t x;

		if (parse_u64_arg(v, &x) == 0 && x <= UINT32_MAX) {
			*nv_index = (uint32_t)x;
			*have_nv = true;
		}
	}
	memset(pv, 0, sizeof(*pv));
	rec = mgr_find(c->msg, MGR_F_RECORD);
	if (!rec || !(m = malloc(sizeof(*m))))
		return ctl_fail(c, EXIT_UNREACHABLE, -1, "host status: no record in the answer");
	if (mgr_parse_fields(rec->val, rec->len, m, err, sizeof(err)) == 0)
		for (size_t i = 0; i < m->nfields; i++)
			if (m->f[i].tag == MGR_F_PCR_VALUE && m->f[i].val[0] <= MAX_PCR) {
				pv->mask |= 1u << m->f[i].val[0];
				memcpy(pv->values[m->f[i].val[0]], m->f[i].val + 1, 32);
			}
	free(m);
	if ((pv->mask & mask) != mask)
		return ctl_fail(c, EXIT_UNREACHABLE, -1,
				"host status: the manager did not return the PCR values (an older "
				"vtpmmgrd?)");
	return EXIT_OK;
}

static int policy_sign(struct ctl *c, int argc, char **argv)
{
	enum { O_KEY = 1, O_PCRS, O_VALUES, O_CURRENT, O_SERIAL, O_NV, O_OUT };
	static const struct optspec specs[] = {
	    {"key", true, O_KEY},	{"pcrs", true, O_PCRS},
	    {"values", true, O_VALUES}, {"current", false, O_CURRENT},
	    {"serial", true, O_SERIAL}, {"nv-index", true, O_NV},
	    {"out", true, O_OUT},	{NULL, false, 0}};
	const char *val, *key = NULL, *values = NULL, *out = NULL;
	bool current = false, have_serial = false, have_nv = false, have_counter = false;
	uint64_t serial = 0, counter = 0, x;
	uint32_t mask = 0, nv_index = HOST_POLICY_NV_DEFAULT, mgr_nv = 0, missing;
	struct host_policy *p = NULL;
	struct pcr_values pv;
	struct argiter it;
	uint8_t buf[HOST_POLICY_MAX];
	char err[256], shown[128];
	EVP_PKEY *k = NULL;
	size_t n;
	FILE *f;
	int id, rc = EXIT_OK;

	argiter_init(&it, argc - 1, argv + 1, "host policy sign");
	while ((id = argiter_next(c, &it, specs, &val)) != OPT_END) {
		switch (id) {
		case OPT_ERROR:
			return EXIT_USAGE;
		case OPT_POSITIONAL:
		case OPT_DASHDASH:
			return ctl_usage(c, it.cmd, "host policy sign takes no arguments");
		case O_KEY:
			key = val;
			break;
		case O_PCRS:
			if (parse_pcrs(val, &mask, err, sizeof(err)) < 0)
				return ctl_usage(c, it.cmd, "%s", err);
			break;
		case O_VALUES:
			values = val;
			break;
		case O_CURRENT:
			current = true;
			break;
		case O_SERIAL:
			if (parse_u64_arg(val, &serial) < 0)
				return ctl_usage(c, it.cmd, "--serial: not a number: %.40s", val);
			have_serial = true;
			break;
		case O_NV:
			if (parse_u64_arg(val, &x) < 0 || x < 0x01000000u || x > 0x013fffffu)
				return ctl_usage(c, it.cmd,
						 "--nv-index: want 0x01000000..0x013fffff: %.40s",
						 val);
			nv_index = (uint32_t)x;
			have_nv = true;
			break;
		case O_OUT:
			out = val;
			break;
		default:
			rc = ctl_global_opt(c, &it, id, val, policy_help);
			if (rc)
				return rc;
		}
	}
	if (!key || !mask || !out || (!values == !current))
		return ctl_usage(
		    c, it.cmd,
		    "sign needs --key, --pcrs, --out, and one of --values and --current");
	if (values) {
		rc = read_pcr_file(c, values, &pv);
		if (rc)
			return rc;
		missing = mask & ~pv.mask;
		if (missing) {
			char list[128];

			pcr_list_text(missing, list, sizeof(list));
			return ctl_fail(c, EXIT_USAGE, -1, "%s gives no SHA-256 value for PCR %s",
					values, list);
		}
		if (!have_serial)
			return ctl_usage(c, it.cmd,
					 "--values needs --serial N (the host's revocation counter "
					 "value or above: vtpmctl host status, policy_counter)");
	} else {
		rc = current_values(c, mask, &pv, &counter, &have_counter, &mgr_nv, &have_nv);
		if (rc)
			return rc;
		if (have_nv && mgr_nv)
			nv_index = mgr_nv;
		if (!have_serial && !have_counter)
			return ctl_fail(
			    c, EXIT_USAGE, -1,
			    "the manager has no revocation counter (host policy install "
			    "first) or give --serial N");
		if (!have_serial)
			serial = counter;
	}
	k = read_pem_key(c, key, true, &rc);
	if (!k)
		return rc;
	p = calloc(1, sizeof(*p));
	if (!p) {
		rc = ctl_fail(c, EXIT_LOCAL, -1, "out of memory");
		goto out;
	}
	p->mask = mask;
	for (unsigned i = 0; i <= MAX_PCR; i++)
		if (mask & (1u << i))
			memcpy(p->values[i], pv.values[i], 32);
	p->nv_index = nv_index;
	p->serial = serial;
	if (host_policy_approved(p, p->approved) < 0 ||
	    host_policy_sign(k, p, err, sizeof(err)) < 0) {
		rc = ctl_fail(c, EXIT_LOCAL, -1, "signing the policy: %s",
			      err[0] ? err : "OpenSSL failed");
		goto out;
	}
	n = host_policy_encode(p, buf, sizeof(buf));
	if (!n) {
		rc = ctl_fail(c, EXIT_LOCAL, -1, "the policy does not fit in %d bytes",
			      HOST_POLICY_MAX);
		goto out;
	}
	out_sanitize(out, strnlen(out, 100), shown, sizeof(shown));
	f = strcmp(out, "-") == 0 ? stdout : fopen(out, "wb");
	if (!f || fwrite(buf, 1, n, f) != n || (f != stdout ? fclose(f) : fflush(f)) != 0) {
		rc = ctl_fail(c, EXIT_LOCAL, -1, "cannot write %s: %s", shown, strerror(errno));
		goto out;
	}
	if (strcmp(out, "-") != 0) {
		char list[128];

		pcr_list_text(mask, list, sizeof(list));
		if (c->json)
			printf(
			    "{\"policy\":\"%s\",\"serial\":%llu,\"nv_index\":%u,\"pcrs\":\"%s\"}\n",
			    shown, (unsigned long long)serial, nv_index, list);
		else
			printf("signed policy written to %s: SHA-256 PCRs %s, serial %llu, "
			       "revocation counter 0x%08x\n",
			       shown, list, (unsigned long long)serial, nv_index);
	}
	rc = EXIT_OK;
out:
	free(p);
	EVP_PKEY_free(k);
	return rc;
}

static int policy_install(struct ctl *c, int argc, char **argv)
{
	enum { O_PUB = 1, O_NV };
	static const struct optspec specs[] = {
	    {"pubkey", true, O_PUB}, {"nv-index", true, O_NV}, {NULL, false, 0}};
	const char *val, *pub = NULL;
	uint32_t nv_index = 0;
	unsigned char *der = NULL;
	struct mgr_builder b;
	struct argiter it;
	struct props *ps;
	EVP_PKEY *k;
	uint64_t x;
	int id, rc = EXIT_OK, len;

	argiter_init(&it, argc - 1, argv + 1, "host policy install");
	while ((id = argiter_next(c, &it, specs, &val)) != OPT_END) {
		switch (id) {
		case OPT_ERROR:
			return EXIT_USAGE;
		case OPT_POSITIONAL:
		case OPT_DASHDASH:
			return ctl_usage(c, it.cmd, "host policy install takes no arguments");
		case O_PUB:
			pub = val;
			break;
		case O_NV:
			if (parse_u64_arg(val, &x) < 0 || x < 0x01000000u || x > 0x013fffffu)
				return ctl_usage(c, it.cmd,
						 "--nv-index: want 0x01000000..0x013fffff: %.40s",
						 val);
			nv_index = (uint32_t)x;
			break;
		default:
			rc = ctl_global_opt(c, &it, id, val, policy_help);
			if (rc)
				return rc;
		}
	}
	if (!pub)
		return ctl_usage(c, it.cmd, "install needs --pubkey PUB.pem");
	k = read_pem_key(c, pub, false, &rc);
	if (!k)
		return rc;
	len = i2d_PUBKEY(k, &der);
	EVP_PKEY_free(k);
	if (len <= 0 || (unsigned)len > MGR_MAX_BLOB) {
		OPENSSL_free(der);
		return ctl_fail(c, EXIT_LOCAL, -1, "cannot encode the public key (DER)");
	}
	mgr_build_init(&b, ctl_reqbuf(), MGR_MAX_MSG, MGR_HOST_POLICY_INSTALL);
	mgr_put_bytes(&b, MGR_F_POLICY_KEY, der, (size_t)len);
	OPENSSL_free(der);
	if (nv_index)
		mgr_put_u32(&b, MGR_F_NV_INDEX, nv_index);
	rc = ctl_request(c, &b, "host policy install");
	if (rc)
		return rc;
	ps = props_new();
	props_add_bool(ps, "installed", true);
	props_add_response(ps, c, REC_HOST);
	if (c->json) {
		props_print(c, ps);
	} else {
		char v[64] = "";
		uint64_t value = 0;
		uint32_t idx = 0;

		for (size_t i = 0; i + 1 < c->msg->nfields; i++)
			if (c->msg->f[i].tag == MGR_F_KEY && c->msg->f[i].len == 10 &&
			    memcmp(c->msg->f[i].val, "policy_key", 10) == 0 &&
			    c->msg->f[i + 1].tag == MGR_F_VALUE)
				out_sanitize((const char *)c->msg->f[i + 1].val,
					     c->msg->f[i + 1].len, v, sizeof(v));
		mgr_get_u32(c->msg, MGR_F_NV_INDEX, &idx);
		mgr_get_u64(c->msg, MGR_F_NV_VALUE, &value);
		printf("policy key %s installed: the root key has a copy that opens with policies "
		       "it signs; revocation counter 0x%08x at %llu (sign with --serial %llu or "
		       "higher)\n",
		       v, idx, (unsigned long long)value, (unsigned long long)value);
	}
	props_free(ps);
	return EXIT_OK;
}

static int policy_add(struct ctl *c, int argc, char **argv)
{
	static const struct optspec specs[] = {{NULL, false, 0}};
	const char *val, *path = NULL;
	uint8_t *buf;
	struct mgr_builder b;
	struct argiter it;
	char shown[128];
	uint64_t serial = 0;
	size_t n;
	FILE *f;
	int id, rc, e;

	argiter_init(&it, argc - 1, argv + 1, "host policy add");
	while ((id = argiter_next(c, &it, specs, &val)) != OPT_END) {
		if (id == OPT_ERROR)
			return EXIT_USAGE;
		if (id == OPT_POSITIONAL) {
			if (path)
				return ctl_usage(c, it.cmd, "add takes one POLICY file");
			path = val;
			continue;
		}
		if (id == OPT_DASHDASH)
			continue;
		rc = ctl_global_opt(c, &it, id, val, policy_help);
		if (rc)
			return rc;
	}
	if (!path)
		return ctl_usage(c, it.cmd, "add needs a POLICY file");
	out_sanitize(path, strnlen(path, 100), shown, sizeof(shown));
	f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	if (!f)
		return ctl_fail(c, EXIT_LOCAL, -1, "cannot open %s: %s", shown, strerror(errno));
	buf = malloc(MGR_MAX_BLOB + 1);
	if (!buf) {
		if (f != stdin)
			fclose(f);
		return ctl_fail(c, EXIT_LOCAL, -1, "out of memory");
	}
	n = fread(buf, 1, MGR_MAX_BLOB + 1, f);
	e = ferror(f) ? errno : 0;
	if (f != stdin)
		fclose(f);
	if (e || n == 0 || n > MGR_MAX_BLOB) {
		free(buf);
		return ctl_fail(c, EXIT_LOCAL, -1, "%s: %s", shown,
				e   ? strerror(e)
				: n ? "larger than 4096 bytes: not a signed policy"
				    : "empty: not a signed policy");
	}
	/* the manager parses and checks it (its refusals are precise) */
	mgr_build_init(&b, ctl_reqbuf(), MGR_MAX_MSG, MGR_HOST_POLICY_ADD);
	mgr_put_bytes(&b, MGR_F_POLICY, buf, n);
	free(buf);
	rc = ctl_request(c, &b, "host policy add");
	if (rc)
		return rc;
	if (c->json) {
		struct props *ps = props_new();

		props_add_bool(ps, "added", true);
		props_add_response(ps, c, REC_HOST);
		props_print(c, ps);
		props_free(ps);
	} else if (mgr_get_u64(c->msg, MGR_F_SERIAL, &serial) == 0) {
		printf("signed policy serial %llu stored: a start whose PCRs have its values opens "
		       "the root key\n",
		       (unsigned long long)serial);
	} else {
		printf("signed policy already stored\n");
	}
	return EXIT_OK;
}

static int policy_revoke(struct ctl *c, int argc, char **argv)
{
	enum { O_BELOW = 1 };
	static const struct optspec specs[] = {{"below", true, O_BELOW}, {NULL, false, 0}};
	const char *val;
	uint64_t below = 0, value = 0;
	bool have = false;
	uint32_t removed = 0;
	struct mgr_builder b;
	struct argiter it;
	int id, rc;

	argiter_init(&it, argc - 1, argv + 1, "host policy revoke");
	while ((id = argiter_next(c, &it, specs, &val)) != OPT_END) {
		if (id == OPT_ERROR)
			return EXIT_USAGE;
		if (id == OPT_POSITIONAL || id == OPT_DASHDASH)
			return ctl_usage(c, it.cmd, "host policy revoke takes no arguments");
		if (id == O_BELOW) {
			if (parse_u64_arg(val, &below) < 0)
				return ctl_usage(c, it.cmd, "--below: not a number: %.40s", val);
			have = true;
			continue;
		}
		rc = ctl_global_opt(c, &it, id, val, policy_help);
		if (rc)
			return rc;
	}
	if (!have)
		return ctl_usage(c, it.cmd, "revoke needs --below N");
	mgr_build_init(&b, ctl_reqbuf(), MGR_MAX_MSG, MGR_HOST_POLICY_REVOKE);
	mgr_put_u64(&b, MGR_F_SERIAL, below);
	rc = ctl_request(c, &b, "host policy revoke");
	if (rc)
		return rc;
	mgr_get_u64(c->msg, MGR_F_NV_VALUE, &value);
	mgr_get_u32(c->msg, MGR_F_COUNT, &removed);
	if (c->json)
		printf("{\"revoked_below\":%llu,\"counter\":%llu,\"stored_revoked\":%u}\n",
		       (unsigned long long)value, (unsigned long long)value, removed);
	else
		printf("revocation counter at %llu: signed policies with a serial below %llu are "
		       "revoked (%u of the stored ones)\n",
		       (unsigned long long)value, (unsigned long long)value, removed);
	return EXIT_OK;
}

static int host_policy(struct ctl *c, int argc, char **argv)
{
	const char *sub;
	int rc;

	rc = ctl_subcommand(c, &argc, &argv, "host policy",
			    "host policy needs a subcommand: sign, install, add or revoke",
			    policy_help);
	if (rc >= 0)
		return rc;
	sub = argv[0];
	if (args_want_help(argc - 1, argv + 1))
		return ctl_help(policy_help), EXIT_OK;
	if (strcmp(sub, "sign") == 0)
		return policy_sign(c, argc, argv);
	if (strcmp(sub, "install") == 0)
		return policy_install(c, argc, argv);
	if (strcmp(sub, "add") == 0)
		return policy_add(c, argc, argv);
	if (strcmp(sub, "revoke") == 0)
		return policy_revoke(c, argc, argv);
	{
		char shown[64];

		out_sanitize(sub, strnlen(sub, 40), shown, sizeof(shown));
		return ctl_usage(c, "host policy",
				 "unknown host policy subcommand '%s' (sign, install, add, revoke)",
				 shown);
	}
}

int cmd_host(struct ctl *c, int argc, char **argv)
{
	const char *val;
	int rc;

	rc = ctl_subcommand(c, &argc, &argv, "host",
			    "host needs a subcommand: init, status, reseal or policy",
			    ctl_host_help);
	if (rc >= 0)
		return rc;
	val = argv[0]; /* the subcommand */
	if (strcmp(val, "init") == 0) {
		if (args_want_help(argc - 1, argv + 1))
			return ctl_help(init_help), EXIT_OK;
		return host_init(c, argc, argv);
	}
	if (strcmp(val, "status") == 0) {
		if (args_want_help(argc - 1, argv + 1))
			return ctl_help(status_help), EXIT_OK;
		return host_status(c, argc, argv);
	}
	if (strcmp(val, "reseal") == 0) {
		if (args_want_help(argc - 1, argv + 1))
			return ctl_help(reseal_help), EXIT_OK;
		return host_reseal(c, argc, argv);
	}
	if (strcmp(val, "policy") == 0)
		return host_policy(c, argc, argv);
	{
		char shown[64];

		out_sanitize(val, strnlen(val, 40), shown, sizeof(shown));
		return ctl_usage(c, "host",
				 "unknown host subcommand '%s' (init, status, reseal, policy)",
				 shown);
	}
}
