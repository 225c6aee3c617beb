/*
 * host.c — vtpmctl host init|status|reseal: the manager's provisioning on the host TPM.
 */
#include <string.h>

#include "vtpmctl/vtpmctl.h"

/* PCRs 0 (firmware code), 2 (option ROM code), 4 (boot loader code), 7 (Secure Boot
 * policy): code and policy, not configuration, so the root key survives BIOS setting
 * changes but not a changed firmware, boot loader or Secure Boot database. */
#define DEFAULT_PCRS	 "0,2,4,7"
#define DEFAULT_PCR_MASK 0x95u
#define MAX_PCR		 23

const char ctl_host_help[] =
    "Usage: vtpmctl host init [--pcrs LIST] [--force]\n"
    "       vtpmctl host status\n"
    "       vtpmctl host reseal [--pcrs LIST]\n"
    "\n"
    "The host: the manager's root key, sealed to the host TPM under a policy on host PCRs\n"
    "(SHA-256 bank). Every group key and vTPM state key is wrapped below it.\n"
    "\n"
    "  init    provision the host: create the root key and seal it to the PCRs of LIST.\n"
    "          Refused when the host is provisioned already, unless --force.\n"
    "  status  show the provisioning (sealed PCRs, NV counter, creation time, AK public\n"
    "          key) and the manager's counters.\n"
    "  reseal  seal the root key, which the running manager holds, again to the current\n"
    "          values of its PCRs, or of the PCRs of LIST. Keys below it do not change.\n"
    "\n"
    "Options:\n"
    "  --pcrs LIST   the SHA-256 PCRs to seal to: numbers 0-23 and ranges, comma separated\n"
    "                (e.g. 0,2,4,7 or 0-7); init's default is " DEFAULT_PCRS " (firmware code,\n"
    "                option ROM code, boot loader code, Secure Boot policy)\n"
    "  --force       (init) provision again: a new root key replaces the old one and the\n"
    "                group keys are re-wrapped; the manager refuses while vTPMs exist\n"
    "\n" CTL_HELP_GLOBAL "\n"
    "Examples:\n"
    "  vtpmctl host init --pcrs 0,2,4,7\n"
    "  vtpmctl --json host status | jq .pcrs\n"
    "  vtpmctl host reseal --pcrs 7      # before a firmware update; after it has booted:\n"
    "  vtpmctl host reseal --pcrs 0,2,4,7\n"
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
    "Usage: vtpmctl host status\n"
    "\n"
    "Show whether the host is provisioned, the PCRs the root key is sealed to, the NV\n"
    "counter (index, value, offset to the store's counter), when the host was provisioned,\n"
    "the host attestation key's public key (DER, hex), the store's commit counter and how\n"
    "many groups, vTPMs and open instances there are: \"key: value\" lines, or one JSON\n"
    "object. Fields the manager adds show up under their names.\n"
    "\n" CTL_HELP_GLOBAL "\n" CTL_HELP_EXIT;

static const char reseal_help[] =
    "Usage: vtpmctl host reseal [--pcrs LIST]\n"
    "\n"
    "Seal the root key, which the running manager holds, again to the current values of\n"
    "the PCRs it is sealed to, or of the PCRs of LIST. Group and vTPM keys do not change.\n"
    "A planned change of measured code (a firmware or boot loader update): first reseal to\n"
    "PCRs the update leaves alone (e.g. --pcrs 7), update and reboot, then reseal to the\n"
    "full list, now at its new values.\n"
    "\n"
    "  --pcrs LIST   PCR numbers 0-23 and ranges, comma separated (as for host init)\n"
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
	enum { O_PCRS = 1 };
	static const struct optspec specs[] = {{"pcrs", true, O_PCRS}, {NULL, false, 0}};
	uint32_t mask = 0, got;
	struct mgr_builder b;
	struct argiter it;
	const char *val;
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
		default:
			rc = ctl_global_opt(c, &it, id, val, reseal_help);
			if (rc)
				return rc;
		}
	}
	mgr_build_init(&b, ctl_reqbuf(), MGR_MAX_MSG, MGR_HOST_RESEAL);
	if (mask)
		mgr_put_u32(&b, MGR_F_PCR_MASK, mask);
	rc = ctl_request(c, &b, "host reseal");
	if (rc)
		return rc;
	ps = props_new();
	props_add_bool(ps, "resealed", true);
	props_add_response(ps, c, REC_HOST);
	if (c->json) {
		props_print(c, ps);
	} else if (mgr_get_u32(c->msg, MGR_F_PCR_MASK, &got) == 0) {
		pcr_list_text(got, list, sizeof(list));
		printf("root key resealed to the current values of SHA-256 PCRs %s\n", list);
	} else {
		printf("root key resealed to the current values of its PCRs\n");
	}
	props_free(ps);
	return EXIT_OK;
}

static int host_status(struct ctl *c, int argc, char **argv)
{
	struct mgr_builder b;
	struct argiter it;
	const char *val;
	int id, rc;

	argiter_init(&it, argc - 1, argv + 1, "host status");
	while ((id = argiter_next(c, &it, NULL, &val)) != OPT_END) {
		if (id == OPT_ERROR)
			return EXIT_USAGE;
		if (id == OPT_POSITIONAL || id == OPT_DASHDASH)
			return ctl_usage(c, it.cmd, "host status takes no arguments");
		rc = ctl_global_opt(c, &it, id, val, status_help);
		if (rc)
			return rc;
	}
	mgr_build_init(&b, ctl_reqbuf(), MGR_MAX_MSG, MGR_HOST_STATUS);
	rc = ctl_request(c, &b, "host status");
	if (rc)
		return rc;
	return out_show(c, REC_HOST);
}

int cmd_host(struct ctl *c, int argc, char **argv)
{
	const char *val;
	int rc;

	rc = ctl_subcommand(c, &argc, &argv, "host",
			    "host needs a subcommand: init, status or reseal", ctl_host_help);
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
	{
		char shown[64];

		out_sanitize(val, strnlen(val, 40), shown, sizeof(shown));
		return ctl_usage(c, "host", "unknown host subcommand '%s' (init, status, reseal)",
				 shown);
	}
}
