/*
 * vtpmctl — the operator's CLI for vtpmmgrd: host provisioning, groups, vTPMs, starting a
 * managed vtpmd, the audit log. Talks to the manager over its admin socket (unix
 * SOCK_SEQPACKET, common/mgr_proto), one request per connection.
 *
 * This file: global options, dispatch to the command families, the argument iterator and
 * the precise checks of argv values that every family uses.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "common/parse_num.h"
#include "vtpmctl/vtpmctl.h"

const char ctl_main_help[] =
    "Usage: vtpmctl [global options] COMMAND [SUBCOMMAND] [options]\n"
    "\n"
    "vtpmctl drives vtpmmgrd, the host's vTPM manager, over its admin socket: it provisions\n"
    "the host (seals the manager's root key to host TPM PCRs), defines groups (which\n"
    "process labels and which vtpmd binaries may open a vTPM), creates and deletes vTPMs,\n"
    "starts a managed vtpmd for a vTPM, and reads the audit log.\n"
    "\n"
    "Commands:\n"
    "  host init [--pcrs LIST] [--force]   provision the host: seal the root key to PCRs\n"
    "  host status [--check-pcrs FILE]     show the provisioning and the manager's state\n"
    "  host reseal [--pcrs LIST]           seal the root key again to the PCRs' values now\n"
    "  host reseal --predict FILE          a second copy, for the next boot's PCR values\n"
    "  host policy sign|install|add|revoke signed PCR policies (host policy --help)\n"
    "  group create NAME --label PATTERN... (--digest HEX... | --digest-of FILE... |\n"
    "               --any-binary)          define a group\n"
    "  group list                          list the groups\n"
    "  group show GROUP                    show one group (GROUP: its name or UUID)\n"
    "  group delete GROUP                  delete a group that has no vTPMs\n"
    "  vtpm create --group GROUP           create a vTPM (prints its UUID)\n"
    "  vtpm list [--group GROUP]           list the vTPMs\n"
    "  vtpm show UUID                      show one vTPM\n"
    "  vtpm delete UUID [--yes]            delete a vTPM and destroy its key\n"
    "  start UUID --label LABEL --state-dir DIR [options] [-- VTPMD-OPTIONS]\n"
    "                                      register LABEL and start a managed vtpmd\n"
    "  status                              the host and every vTPM on it\n"
    "  doctor                              check the set-up and say what to fix\n"
    "  launch UUID --label LABEL --state-dir DIR [--kernel K ...] -- QEMU [ARGS]\n"
    "                                      start a vtpmd paired with this QEMU, boot\n"
    "                                      measured, run QEMU in the foreground\n"
    "  audit [--count N]                   show the newest audit log entries\n"
    "  help [COMMAND]                      print help for a command\n"
    "\n" CTL_HELP_GLOBAL "  -V, --version        print the version and exit\n"
    "\n"
    "Environment:\n"
    "  VTPM_ADMIN_SOCKET    the admin socket when --admin-socket is not given\n"
    "\n"
    "Examples:\n"
    "  vtpmctl host init --pcrs 0,2,4,7\n"
    "  vtpmctl group create web --label '*:vm_r:vtpm_t' --digest-of /usr/bin/vtpmd\n"
    "  uuid=$(vtpmctl vtpm create --group web)\n"
    "  vtpmctl start \"$uuid\" --label guest1_u:vm_r:vtpm_t --state-dir /var/lib/vtpm/guest1 \\\n"
    "      -- --ctrl type=unixio,path=/run/vtpm/guest1.ctrl\n"
    "  vtpmctl --json vtpm list | jq -r '.vtpms[].uuid'\n"
    "\n" CTL_HELP_EXIT "\n"
    "See vtpmctl(8).\n";

/* ---------------------------------------------------------------- argument iterator */

static const struct optspec global_specs[] = {
    {"help", false, GOPT_HELP},
    {"json", false, GOPT_JSON},
    {"admin-socket", true, GOPT_ADMIN_SOCKET},
    {"timeout", true, GOPT_TIMEOUT},
    {NULL, false, 0},
};

void argiter_init(struct argiter *it, int argc, char **argv, const char *cmd)
{
	it->argc = argc;
	it->argv = argv;
	it->i = 0;
	it->cmd = cmd;
}

static const struct optspec *find_spec(const struct optspec *specs, const char *name, size_t len)
{
	for (; specs && specs->name; specs++)
		if (strlen(specs->name) == len && strncmp(specs->name, name, len) == 0)
			return specs;
	return NULL;
}

int argiter_next(struct ctl *c, struct argiter *it, const struct optspec *specs, const char **val)
{
	const struct optspec *s;
	const char *arg, *name, *eq;
	char shown[128];
	size_t len;

	*val = NULL;
	if (it->i >= it->argc)
		return OPT_END;
	arg = it->argv[it->i++];
	if (strcmp(arg, "--") == 0)
		return OPT_DASHDASH;
	if (strcmp(arg, "-h") == 0)
		return GOPT_HELP;
	if (arg[0] != '-' || arg[1] == '\0') {
		*val = arg;
		return OPT_POSITIONAL;
	}
	out_sanitize(arg, strnlen(arg, 100), shown, sizeof(shown));
	if (arg[1] != '-') {
		if (strcmp(arg, "-V") == 0 && find_spec(specs, "version", 7))
			return GOPT_VERSION;
		ctl_usage(c, it->cmd, "unknown option %s", shown);
		return OPT_ERROR;
	}
	name = arg + 2;
	eq = strchr(name, '=');
	len = eq ? (size_t)(eq - name) : strlen(name);
	s = find_spec(specs, name, len);
	if (!s)
		s = find_spec(global_specs, name, len);
	if (!s) {
		if (eq)
			shown[strcspn(shown, "=")] = '\0';
		ctl_usage(c, it->cmd, "unknown option %s", shown);
		return OPT_ERROR;
	}
	if (!s->has_arg) {
		if (eq) {
			ctl_usage(c, it->cmd, "option --%s takes no value", s->name);
			return OPT_ERROR;
		}
		return s->id;
	}
	if (eq) {
		*val = eq + 1;
	} else if (it->i < it->argc) {
		*val = it->argv[it->i++];
	} else {
		ctl_usage(c, it->cmd, "option --%s needs a value", s->name);
		return OPT_ERROR;
	}
	if (**val == '\0') {
		ctl_usage(c, it->cmd, "option --%s needs a non-empty value", s->name);
		return OPT_ERROR;
	}
	return s->id;
}

bool args_want_help(int argc, char **argv)
{
	int i;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return false;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	}
	return false;
}

int ctl_subcommand(struct ctl *c, int *argc, char ***argv, const char *cmd, const char *missing,
		   const char *help)
{
	struct argiter it;
	const char *val;
	int id, rc;

	argiter_init(&it, *argc - 1, *argv + 1, cmd);
	for (;;) {
		id = argiter_next(c, &it, NULL, &val);
		if (id == OPT_ERROR)
			return EXIT_USAGE;
		if (id == OPT_END || id == OPT_DASHDASH)
			return ctl_usage(c, cmd, "%s", missing);
		if (id == OPT_POSITIONAL)
			break;
		rc = ctl_global_opt(c, &it, id, val, help);
		if (rc)
			return rc;
	}
	*argc -= it.i;
	*argv += it.i;
	return -1;
}

int ctl_global_opt(struct ctl *c, struct argiter *it, int id, const char *val, const char *help)
{
	char err[256];
	uint32_t secs;

	switch (id) {
	case GOPT_HELP:
		ctl_help(help);
		exit(EXIT_OK);
	case GOPT_JSON:
		c->json = true;
		return 0;
	case GOPT_ADMIN_SOCKET:
		if (check_socket_path(val, err, sizeof(err)) < 0)
			return ctl_usage(c, it->cmd, "--admin-socket: %s", err);
		c->admin_socket = val;
		return 0;
	case GOPT_TIMEOUT:
		if (parse_num_u32("--timeout", val, NUM_DEC, 1, 3600, &secs, err, sizeof(err)) < 0)
			return ctl_usage(c, it->cmd, "%s", err);
		c->timeout_ms = (int)secs * 1000;
		return 0;
	default:
		return -1;
	}
}

/* ---------------------------------------------------------------- argument checks */

int check_group_name(const char *s, char *err, size_t errlen)
{
	size_t i, n = strlen(s);
	char shown[80];
	uint8_t u[16];

	out_sanitize(s, n < 64 ? n : 64, shown, sizeof(shown));
	if (uuid_from_text(s, u) == 0) {
		snprintf(err, errlen,
			 "group name '%s' has the form of a UUID (a group is named by its name or "
			 "by its UUID; a name cannot be both)",
			 shown);
		return -1;
	}
	if (n == 0 || n > VTPMCTL_NAME_MAX) {
		snprintf(err, errlen, "group name '%s%s' must be 1 to %u bytes long", shown,
			 n > 64 ? "..." : "", VTPMCTL_NAME_MAX);
		return -1;
	}
	for (i = 0; i < n; i++) {
		char ch = s[i];
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			     (ch >= '0' && ch <= '9');

		if (i == 0 && !alnum) {
			snprintf(err, errlen, "group name '%s' must start with a letter or a digit",
				 shown);
			return -1;
		}
		if (!alnum && ch != '_' && ch != '-' && ch != '.') {
			snprintf(err, errlen,
				 "group name '%s' has a character other than letters, digits, "
				 "'_', '-' and '.' at offset %zu",
				 shown, i);
			return -1;
		}
	}
	return 0;
}

int check_group_ref(const char *s, char *err, size_t errlen)
{
	uint8_t u[16];

	if (uuid_from_text(s, u) == 0)
		return 0;
	return check_group_name(s, err, errlen);
}

void put_group_ref(struct mgr_builder *b, const char *s)
{
	uint8_t u[16];

	if (uuid_from_text(s, u) == 0)
		mgr_put_bytes(b, MGR_F_GROUP_UUID, u, 16);
	else
		mgr_put_text(b, MGR_F_NAME, s);
}

static bool ident_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '_' || ch == '-' || ch == '.';
}

/*
 * The manager's grammar (vtpmmgrd label_match.h):
 *   label   = ident ":" ident ":" ident [ ":" level ]
 *   pattern = field ":" field ":" field [ ":" ( level / "*" ) ]
 *   ident = 1*( ALPHA / DIGIT / "_" / "." / "-" ), field = ident / "*",
 *   level = 1*( ident chars / "," / ":" )   (an MLS/MCS level such as s0:c1,c2)
 */
int check_label(const char *s, bool pattern, char *err, size_t errlen)
{
	static const char *const field_names[] = {"user", "role", "type"};
	const char *what = pattern ? "label pattern" : "label";
	const size_t max = pattern ? VTPMCTL_PATTERN_MAX : VTPMCTL_LABEL_MAX;
	size_t n = strlen(s), i = 0, field, k;
	char shown[300];

	out_sanitize(s, n < 256 ? n : 256, shown, sizeof(shown));
	if (n == 0 || n > max) {
		snprintf(err, errlen, "%s '%.64s%s' must be 1 to %zu bytes long", what, shown,
			 n > 64 ? "..." : "", max);
		return -1;
	}
	for (field = 0; field < 3; field++) {
		size_t start = i;

		while (i < n && s[i] != ':')
			i++;
		if (field < 2 && i == n) {
			snprintf(err, errlen, "%s '%s' is not of the form user:role:type", what,
				 shown);
			return -1;
		}
		if (i == start) {
			snprintf(err, errlen, "%s '%s': the %s field is empty", what, shown,
				 field_names[field]);
			return -1;
		}
		if (i - start == 1 && s[start] == '*') {
			if (!pattern) {
				snprintf(err, errlen,
					 "label '%s' has '*' as its %s field: a process label is "
					 "concrete (patterns belong to groups)",
					 shown, field_names[field]);
				return -1;
			}
		} else {
			for (k = start; k < i; k++) {
				if (ident_char(s[k]))
					continue;
				if (s[k] == '*')
					snprintf(
					    err, errlen,
					    "%s '%s': '*' must stand alone for a whole field (in "
					    "the %s field)",
					    what, shown, field_names[field]);
				else
					snprintf(err, errlen,
						 "%s '%s': the %s field has a character other than "
						 "letters, digits, '_', '.' and '-'",
						 what, shown, field_names[field]);
				return -1;
			}
		}
		if (i < n)
			i++; /* the colon */
		else
			return 0;
	}
	/* the level: everything after the third colon */
	if (i == n) {
		snprintf(err, errlen, "%s '%s': the level after the third ':' is empty", what,
			 shown);
		return -1;
	}
	if (pattern && n - i == 1 && s[i] == '*')
		return 0;
	for (k = i; k < n; k++) {
		if (ident_char(s[k]) || s[k] == ',' || s[k] == ':')
			continue;
		snprintf(err, errlen,
			 "%s '%s': the level has a character other than letters, digits and "
			 "'_.-,:'%s",
			 what, shown, pattern ? " (or is '*' alone)" : "");
		return -1;
	}
	return 0;
}

int parse_uuid_arg(const char *s, uint8_t out[16], char *err, size_t errlen)
{
	char shown[80];

	if (uuid_from_text(s, out) == 0)
		return 0;
	out_sanitize(s, strnlen(s, 60), shown, sizeof(shown));
	snprintf(err, errlen,
		 "'%s%s' is not a UUID (8-4-4-4-12 hexadecimal digits, e.g. "
		 "3f2c1e8a-5b6d-4c7e-9f10-1a2b3c4d5e6f)",
		 shown, strlen(s) > 60 ? "..." : "");
	return -1;
}

int parse_hex_digest(const char *s, uint8_t out[32], char *err, size_t errlen)
{
	size_t n = strlen(s), i;
	char shown[80];

	out_sanitize(s, n < 64 ? n : 64, shown, sizeof(shown));
	if (n != 64) {
		snprintf(err, errlen,
			 "digest '%s%s' has %zu characters; a SHA-256 digest is 64 hexadecimal "
			 "digits",
			 shown, n > 64 ? "..." : "", n);
		return -1;
	}
	for (i = 0; i < 64; i++) {
		if (parse_hex_digit(s[i]) < 0) {
			snprintf(err, errlen,
				 "digest '%s' has a non-hexadecimal character at offset %zu", shown,
				 i);
			return -1;
		}
	}
	for (i = 0; i < 32; i++)
		out[i] = (uint8_t)(parse_hex_digit(s[2 * i]) << 4 | parse_hex_digit(s[2 * i + 1]));
	return 0;
}

int check_socket_path(const char *s, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	size_t n = strlen(s);

	if (n == 0) {
		snprintf(err, errlen, "the socket path is empty");
		return -1;
	}
	if (n >= sizeof(sa.sun_path)) {
		snprintf(err, errlen,
			 "the socket path is %zu bytes long; a unix socket path has at most %zu", n,
			 sizeof(sa.sun_path) - 1);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- main */

static const struct {
	const char *name;
	int (*fn)(struct ctl *c, int argc, char **argv);
	const char *help;
} commands[] = {
    {"host", cmd_host, ctl_host_help},	     {"group", cmd_group, ctl_group_help},
    {"vtpm", cmd_vtpm, ctl_vtpm_help},	     {"start", cmd_start, ctl_start_help},
    {"launch", cmd_launch, ctl_launch_help}, {"audit", cmd_audit, ctl_audit_help},
    {"status", cmd_status, ctl_status_help}, {"doctor", cmd_doctor, ctl_doctor_help},
};

static int cmd_help(struct ctl *c, int argc, char **argv)
{
	size_t i;

	if (argc < 2) {
		ctl_help(ctl_main_help);
		return EXIT_OK;
	}
	if (argc > 2)
		return ctl_usage(c, "", "help takes one command name");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0) {
			ctl_help(commands[i].help);
			return EXIT_OK;
		}
	{
		char shown[64];

		out_sanitize(argv[1], strnlen(argv[1], 40), shown, sizeof(shown));
		return ctl_usage(c, "", "no command '%s'", shown);
	}
}

int main(int argc, char **argv)
{
	static const struct optspec specs[] = {{"version", false, GOPT_VERSION}, {NULL, false, 0}};
	struct ctl c = {.admin_socket = VTPMCTL_DEFAULT_ADMIN_SOCKET,
			.timeout_ms = VTPMCTL_DEFAULT_TIMEOUT_S * 1000};
	const char *env = getenv("VTPM_ADMIN_SOCKET");
	struct argiter it;
	struct mgr_msg *msg;
	int i, id, rc;
	const char *val;
	size_t k;

	/* --json anywhere before "--" applies from the start, so usage errors are JSON too */
	for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--json") == 0)
			c.json = true;
	if (env && *env) {
		char err[256];

		if (check_socket_path(env, err, sizeof(err)) < 0)
			return ctl_usage(&c, "", "VTPM_ADMIN_SOCKET: %s", err);
		c.admin_socket = env;
	}
	msg = calloc(1, sizeof(*msg));
	c.resp = malloc(MGR_MAX_MSG + 1);
	if (!msg || !c.resp)
		return ctl_fail(&c, EXIT_LOCAL, -1, "out of memory");
	c.msg = msg;

	argiter_init(&it, argc - 1, argv + 1, "");
	for (;;) {
		id = argiter_next(&c, &it, specs, &val);
		if (id == OPT_ERROR) {
			rc = EXIT_USAGE;
			goto out;
		}
		if (id == OPT_END || id == OPT_DASHDASH) {
			rc = ctl_usage(&c, "", "no command given");
			goto out;
		}
		if (id == GOPT_VERSION) {
			printf("vtpmctl %s\n", VTPMCTL_VERSION);
			rc = EXIT_OK;
			goto out;
		}
		if (id == OPT_POSITIONAL)
			break;
		rc = ctl_global_opt(&c, &it, id, val, ctl_main_help);
		if (rc != 0)
			goto out;
	}
	/* it.i - 1 is the command word */
	if (strcmp(val, "help") == 0) {
		rc = cmd_help(&c, argc - it.i, argv + it.i);
		goto out;
	}
	for (k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
		if (strcmp(val, commands[k].name) == 0) {
			rc = commands[k].fn(&c, argc - it.i, argv + it.i);
			goto out;
		}
	{
		char shown[64];

		out_sanitize(val, strnlen(val, 40), shown, sizeof(shown));
		rc = ctl_usage(&c, "", "unknown command '%s'", shown);
	}
out:
	free(c.resp);
	free(msg);
	if (fflush(stdout) != 0 && rc == EXIT_OK) {
		fprintf(stderr, "vtpmctl: cannot write the output: %s\n", strerror(errno));
		rc = EXIT_LOCAL;
	}
	return rc;
}
