/*
 * group.c — vtpmctl group create|list|show|delete. A group says which process labels
 * (patterns, '*' for a whole field) and which vtpmd binaries (SHA-256 of the executable,
 * or any) may open its vTPMs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "vtpmctl/vtpmctl.h"

const char ctl_group_help[] =
    "Usage: vtpmctl group create NAME --label PATTERN [--label PATTERN]...\n"
    "                            (--digest HEX | --digest-of FILE)... | --any-binary\n"
    "       vtpmctl group list\n"
    "       vtpmctl group show GROUP\n"
    "       vtpmctl group delete GROUP\n"
    "\n"
    "A group is a policy shared by vTPMs: the labels (user:role:type) of the processes that\n"
    "may open them, and the SHA-256 digests of the vtpmd executables allowed to. The\n"
    "manager hands a vTPM's state key only to a process whose label matches one of the\n"
    "group's patterns and whose executable has one of its digests (or any, with\n"
    "--any-binary).\n"
    "\n"
    "  create  define a group. NAME: 1-64 letters, digits, '_', '-', '.', starting with a\n"
    "          letter or digit, and not of the form of a UUID.\n"
    "  list    list the groups as a table (or {\"groups\": [...]} with --json).\n"
    "  show    show one group. GROUP: its name or its UUID.\n"
    "  delete  delete a group; refused while vTPMs belong to it.\n"
    "\n"
    "Options of create:\n"
    "  --label PATTERN   a label pattern user:role:type[:level] in which a field may be\n"
    "                    '*' (the whole field), e.g. '*:vm_r:vtpm_t'; at least one, at\n"
    "                    most 64. Without a level it matches labels with any level.\n"
    "  --digest HEX      a permitted vtpmd executable, as 64 hex digits of its SHA-256\n"
    "  --digest-of FILE  a permitted vtpmd executable: vtpmctl hashes FILE\n"
    "  --any-binary      any executable may open the group's vTPMs (labels still apply)\n"
    "                    --digest and --digest-of may be repeated and mixed (at most 64\n"
    "                    digests); --any-binary excludes both\n"
    "\n" CTL_HELP_GLOBAL "\n"
    "Examples:\n"
    "  vtpmctl group create web --label '*:vm_r:vtpm_t' --digest-of /usr/bin/vtpmd\n"
    "  vtpmctl group create lab --label 'lab_u:*:*' --any-binary\n"
    "  vtpmctl --json group show web | jq -r '.binary_digests[]'\n"
    "\n" CTL_HELP_EXIT;

static const char create_help[] =
    "Usage: vtpmctl group create NAME --label PATTERN [--label PATTERN]...\n"
    "                            (--digest HEX | --digest-of FILE)... | --any-binary\n"
    "\n"
    "Define group NAME (1-64 letters, digits, '_', '-', '.', starting with a letter or a\n"
    "digit; not of the form of a UUID). Its vTPMs open only for a process whose label\n"
    "matches a --label pattern and\n"
    "whose executable's SHA-256 is one of the digests (or any, with --any-binary). The\n"
    "manager creates the group key; vtpmctl prints the group's UUID.\n"
    "\n"
    "  --label PATTERN   user:role:type[:level]; each field letters, digits, '_', '-',\n"
    "                    '.', or '*' alone (any value); the optional level (an MLS/MCS\n"
    "                    level such as s0:c1,c2: letters, digits and '_.-,:', or '*')\n"
    "                    must then equal the label's exactly; without it any level\n"
    "                    matches; 1-256 bytes; repeatable (at most 64)\n"
    "  --digest HEX      SHA-256 of a permitted vtpmd executable (64 hex digits);\n"
    "                    repeatable\n"
    "  --digest-of FILE  hash FILE (a regular file) and permit that digest; repeatable\n"
    "  --any-binary      permit any executable (exclusive with the two above)\n"
    "\n" CTL_HELP_GLOBAL "\n"
    "Example:\n"
    "  vtpmctl group create web --label '*:vm_r:vtpm_t' --label 'admin_u:vm_r:vtpm_t' \\\n"
    "      --digest-of /usr/bin/vtpmd\n"
    "\n" CTL_HELP_EXIT;

static const char list_help[] =
    "Usage: vtpmctl group list\n"
    "\n"
    "List the groups: a table with one line per group (in tables, digests are shortened to\n"
    "their first 12 hex digits), or {\"groups\": [{...}, ...]} with --json.\n"
    "\n" CTL_HELP_GLOBAL "\n" CTL_HELP_EXIT;

static const char show_help[] = "Usage: vtpmctl group show GROUP\n"
				"\n"
				"Show a group, named by its name or its UUID: its UUID, label "
				"patterns, permitted digests and whatever else the\n"
				"manager records, as \"key: value\" lines or one JSON object.\n"
				"\n" CTL_HELP_GLOBAL "\n" CTL_HELP_EXIT;

static const char delete_help[] =
    "Usage: vtpmctl group delete GROUP\n"
    "\n"
    "Delete a group (named by its name or its UUID) and its group key. The manager refuses (exit "
    "3) while vTPMs belong\n"
    "to the group: delete them first (vtpmctl vtpm list --group GROUP).\n"
    "\n" CTL_HELP_GLOBAL "\n" CTL_HELP_EXIT;

/* SHA-256 of a regular file. Returns EXIT_OK or an exit code after reporting. */
static int digest_of_file(struct ctl *c, const char *path, uint8_t out[32])
{
	unsigned char buf[65536];
	unsigned int len = 0;
	EVP_MD_CTX *md;
	struct stat st;
	ssize_t n;
	int fd, rc = EXIT_LOCAL;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return ctl_fail(c, EXIT_LOCAL, -1, "--digest-of %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return ctl_fail(c, EXIT_LOCAL, -1, "--digest-of %s: not a regular file", path);
	}
	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		ctl_fail(c, EXIT_LOCAL, -1, "--digest-of %s: SHA-256 unavailable", path);
		goto out;
	}
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ctl_fail(c, EXIT_LOCAL, -1, "--digest-of %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (EVP_DigestUpdate(md, buf, (size_t)n) != 1) {
			ctl_fail(c, EXIT_LOCAL, -1, "--digest-of %s: SHA-256 failed", path);
			goto out;
		}
	}
	if (EVP_DigestFinal_ex(md, out, &len) != 1 || len != 32) {
		ctl_fail(c, EXIT_LOCAL, -1, "--digest-of %s: SHA-256 failed", path);
		goto out;
	}
	rc = EXIT_OK;
out:
	EVP_MD_CTX_free(md);
	close(fd);
	return rc;
}

static int group_create(struct ctl *c, int argc, char **argv)
{
	enum { O_LABEL = 1, O_DIGEST, O_DIGEST_OF, O_ANY };
	static const struct optspec specs[] = {{"label", true, O_LABEL},
					       {"digest", true, O_DIGEST},
					       {"digest-of", true, O_DIGEST_OF},
					       {"any-binary", false, O_ANY},
					       {NULL, false, 0}};
	const char *patterns[VTPMCTL_MAX_PATTERNS];
	uint8_t digests[VTPMCTL_MAX_DIGESTS][32];
	size_t npat = 0, ndig = 0, i;
	const char *name = NULL, *val;
	bool any = false;
	struct mgr_builder b;
	struct argiter it;
	char err[512], what[128];
	struct props *ps;
	int id, rc;

	argiter_init(&it, argc - 1, argv + 1, "group create");
	while ((id = argiter_next(c, &it, specs, &val)) != OPT_END) {
		switch (id) {
		case OPT_ERROR:
			return EXIT_USAGE;
		case OPT_DASHDASH:
			return ctl_usage(c, it.cmd, "unexpected '--'");
		case OPT_POSITIONAL:
			if (name)
				return ctl_usage(c, it.cmd, "group create takes one NAME");
			if (check_group_name(val, err, sizeof(err)) < 0)
				return ctl_usage(c, it.cmd, "%s", err);
			name = val;
			break;
		case O_LABEL:
			if (check_label(val, true, err, sizeof(err)) < 0)
				return ctl_usage(c, it.cmd, "--label: %s", err);
			for (i = 0; i < npat; i++)
				if (strcmp(patterns[i], val) == 0)
					return ctl_usage(
					    c, it.cmd, "--label: pattern '%s' is given twice", val);
			if (npat == VTPMCTL_MAX_PATTERNS)
				return ctl_usage(c, it.cmd, "--label: more than %u patterns",
						 VTPMCTL_MAX_PATTERNS);
			patterns[npat++] = val;
			break;
		case O_DIGEST:
		case O_DIGEST_OF: {
			uint8_t d[32];

			if (ndig == VTPMCTL_MAX_DIGESTS)
				return ctl_usage(c, it.cmd, "more than %u digests",
						 VTPMCTL_MAX_DIGESTS);
			if (id == O_DIGEST) {
				if (parse_hex_digest(val, d, err, sizeof(err)) < 0)
					return ctl_usage(c, it.cmd, "--digest: %s", err);
			} else {
				rc = digest_of_file(c, val, d);
				if (rc)
					return rc;
			}
			for (i = 0; i < ndig; i++)
				if (memcmp(digests[i], d, 32) == 0) {
					char hex[65];

					hex_encode(d, 32, hex);
					return ctl_usage(c, it.cmd, "digest %s is given twice",
							 hex);
				}
			memcpy(digests[ndig++], d, 32);
			break;
		}
		case O_ANY:
			any = true;
			break;
		default:
			rc = ctl_global_opt(c, &it, id, val, create_help);
			if (rc)
				return rc;
		}
	}
	if (!name)
		return ctl_usage(c, it.cmd, "group create needs a group NAME");
	if (npat == 0)
		return ctl_usage(c, it.cmd,
				 "group create needs at least one --label PATTERN (which process "
				 "labels may open the group's vTPMs)");
	if (any && ndig)
		return ctl_usage(
		    c, it.cmd,
		    "--any-binary excludes --digest and --digest-of (any executable, or "
		    "only those listed)");
	if (!any && !ndig)
		return ctl_usage(c, it.cmd,
				 "group create needs --digest, --digest-of or --any-binary (which "
				 "vtpmd executables may open the group's vTPMs)");

	mgr_build_init(&b, ctl_reqbuf(), MGR_MAX_MSG, MGR_GROUP_CREATE);
	mgr_put_text(&b, MGR_F_NAME, name);
	for (i = 0; i < npat; i++)
		mgr_put_text(&b, MGR_F_PATTERN, patterns[i]);
	for (i = 0; i < ndig; i++)
		mgr_put_bytes(&b, MGR_F_BIN_DIGEST, digests[i], 32);
	if (any)
		mgr_put_flag(&b, MGR_F_ANY_DIGEST);
	snprintf(what, sizeof(what), "create group %s", name);
	rc = ctl_request(c, &b, what);
	if (rc)
		return rc;

	ps = props_new();
	props_add_str(ps, "name", name);
	props_add_response(ps, c, REC_GROUP);
	if (c->json) {
		props_print(c, ps);
	} else {
		const char *uuid = props_get(ps, "uuid");

		if (uuid)
			printf("created group %s, uuid %s\n", name, uuid);
		else
			printf("created group %s\n", name);
	}
	props_free(ps);
	return EXIT_OK;
}

/* list, show NAME, delete NAME */
static void fill_nothing(struct mgr_builder *b, const void *arg)
{
	(void)b;
	(void)arg;
}

static int group_simple(struct ctl *c, int argc, char **argv, uint16_t type, const char *cmd,
			const char *help)
{
	const char *name = NULL, *val;
	bool want_name = type != MGR_GROUP_LIST;
	struct mgr_builder b;
	struct argiter it;
	char err[256], what[128];
	int id, rc;

	argiter_init(&it, argc - 1, argv + 1, cmd);
	while ((id = argiter_next(c, &it, NULL, &val)) != OPT_END) {
		if (id == OPT_ERROR)
			return EXIT_USAGE;
		if (id == OPT_DASHDASH)
			return ctl_usage(c, cmd, "unexpected '--'");
		if (id == OPT_POSITIONAL) {
			if (!want_name)
				return ctl_usage(c, cmd, "%s takes no arguments", cmd);
			if (name)
				return ctl_usage(c, cmd, "%s takes one group NAME", cmd);
			if (check_group_ref(val, err, sizeof(err)) < 0)
				return ctl_usage(c, cmd, "%s", err);
			name = val;
			continue;
		}
		rc = ctl_global_opt(c, &it, id, val, help);
		if (rc)
			return rc;
	}
	if (want_name && !name)
		return ctl_usage(c, cmd, "%s needs a group NAME (or its UUID)", cmd);
	if (type == MGR_GROUP_LIST) {
		struct reclist l;

		rc = ctl_list(c, type, fill_nothing, NULL, true, "list groups", &l);
		if (rc)
			return rc;
		rc = out_list(c, REC_GROUP, "groups", &l, "no groups");
		reclist_free(&l);
		return rc;
	}
	mgr_build_init(&b, ctl_reqbuf(), MGR_MAX_MSG, type);
	put_group_ref(&b, name);
	snprintf(what, sizeof(what), "%s group %s", type == MGR_GROUP_SHOW ? "show" : "delete",
		 name);
	rc = ctl_request(c, &b, what);
	if (rc)
		return rc;
	if (type == MGR_GROUP_SHOW)
		return out_show(c, REC_GROUP);
	if (c->json) {
		struct props *ps = props_new();

		props_add_str(ps, uuid_from_text(name, (uint8_t[16]){0}) == 0 ? "uuid" : "name",
			      name);
		props_add_bool(ps, "deleted", true);
		props_print(c, ps);
		props_free(ps);
	} else {
		printf("deleted group %s\n", name);
	}
	return EXIT_OK;
}

int cmd_group(struct ctl *c, int argc, char **argv)
{
	static const struct {
		const char *name;
		uint16_t type;
		const char *cmd;
		const char *help;
	} subs[] = {
	    {"list", MGR_GROUP_LIST, "group list", list_help},
	    {"show", MGR_GROUP_SHOW, "group show", show_help},
	    {"delete", MGR_GROUP_DELETE, "group delete", delete_help},
	};
	const char *val;
	size_t k;
	int rc;

	rc = ctl_subcommand(c, &argc, &argv, "group",
			    "group needs a subcommand: create, list, show or delete",
			    ctl_group_help);
	if (rc >= 0)
		return rc;
	val = argv[0]; /* the subcommand */
	if (strcmp(val, "create") == 0) {
		if (args_want_help(argc - 1, argv + 1))
			return ctl_help(create_help), EXIT_OK;
		return group_create(c, argc, argv);
	}
	for (k = 0; k < sizeof(subs) / sizeof(subs[0]); k++)
		if (strcmp(val, subs[k].name) == 0) {
			if (args_want_help(argc - 1, argv + 1))
				return ctl_help(subs[k].help), EXIT_OK;
			return group_simple(c, argc, argv, subs[k].type, subs[k].cmd, subs[k].help);
		}
	{
		char shown[64];

		out_sanitize(val, strnlen(val, 40), shown, sizeof(shown));
		return ctl_usage(c, "group",
				 "unknown group subcommand '%s' (create, list, show, delete)",
				 shown);
	}
}
