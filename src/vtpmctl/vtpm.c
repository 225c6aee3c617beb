/*
 * vtpm.c — vtpmctl vtpm create|list|show|rebind|delete. Deleting a vTPM destroys its wrapped state
 * key in the manager's store: its state file can never be read again, so it needs --yes
 * or an interactive confirmation.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vtpmctl/vtpmctl.h"

const char ctl_vtpm_help[] =
    "Usage: vtpmctl vtpm create --group GROUP [--label LABEL]\n"
    "       vtpmctl vtpm list [--group GROUP]\n"
    "       vtpmctl vtpm show UUID\n"
    "       vtpmctl vtpm rebind UUID --label LABEL\n"
    "       vtpmctl vtpm delete UUID [--yes]\n"
    "\n"
    "A vTPM is one virtual TPM 2.0, named by a UUID, in one group. The manager keeps its\n"
    "state key (wrapped by the group key) and the newest version of its state file.\n"
    "\n"
    "  create  create a vTPM in GROUP; prints its UUID (alone, for scripts).\n"
    "  list    list the vTPMs (all, or those of GROUP).\n"
    "  show    show one vTPM, with the guest it is bound to (bound_label).\n"
    "  rebind  bind a vTPM to another guest (the admin's explicit act).\n"
    "  delete  delete a vTPM: its state key is destroyed, so its state file can never be\n"
    "          read again. Asks for confirmation on a terminal; elsewhere needs --yes.\n"
    "\n"
    "Options:\n"
    "  --group GROUP  (create) the vTPM's group, by name or UUID; (list) list only this\n"
    "                 group's vTPMs\n"
    "  --label LABEL  (create, rebind) the guest the vTPM belongs to, user:role:type[:level]:\n"
    "                 only labels with the same user field and level may open it. Without\n"
    "                 it, create leaves the vTPM unbound and its first open binds it\n"
    "  --yes          (delete) do not ask for confirmation\n"
    "\n" CTL_HELP_GLOBAL "\n"
    "Examples:\n"
    "  uuid=$(vtpmctl vtpm create --group web)\n"
    "  vtpmctl vtpm list --group web\n"
    "  vtpmctl --json vtpm show \"$uuid\" | jq .version\n"
    "  vtpmctl vtpm delete \"$uuid\" --yes\n"
    "\n" CTL_HELP_EXIT;

static const char create_help[] =
    "Usage: vtpmctl vtpm create --group GROUP [--label LABEL]\n"
    "\n"
    "Create a vTPM in GROUP (a group name or UUID): the manager draws its UUID and its state key "
    "and wraps\n"
    "the key with the group key. The UUID is printed alone on stdout (with --json:\n"
    "{\"uuid\": ...}). Start it with 'vtpmctl start UUID ...'.\n"
    "\n"
    "  --group GROUP  the group, by name or UUID (required)\n"
    "  --label LABEL  bind the vTPM to this guest now: only a label with the same user\n"
    "                 field and level opens it (the group's patterns still apply). Without\n"
    "                 it the first successful open binds the vTPM to its opener's guest\n"
    "\n" CTL_HELP_GLOBAL "\n" CTL_HELP_EXIT;

static const char list_help[] =
    "Usage: vtpmctl vtpm list [--group GROUP]\n"
    "\n"
    "List the vTPMs as a table (UUID, group, state version, state, ...: whatever the\n"
    "manager records), or {\"vtpms\": [{...}, ...]} with --json.\n"
    "\n"
    "  --group GROUP  only the vTPMs of GROUP, a name or UUID (an unknown group is an\n"
    "                 error, exit 3)\n"
    "\n" CTL_HELP_GLOBAL "\n" CTL_HELP_EXIT;

static const char show_help[] = "Usage: vtpmctl vtpm show UUID\n"
				"\n"
				"Show one vTPM as \"key: value\" lines or one JSON object.\n"
				"\n" CTL_HELP_GLOBAL "\n" CTL_HELP_EXIT;

static const char delete_help[] =
    "Usage: vtpmctl vtpm delete UUID [--yes]\n"
    "\n"
    "Delete vTPM UUID. The manager destroys its wrapped state key: the vTPM's state file\n"
    "can never be decrypted again, by anyone (this is the way to retire a vTPM for good).\n"
    "On a terminal vtpmctl shows the vTPM and asks to type 'yes'; when stdin is not a\n"
    "terminal it refuses (exit 1) unless --yes is given. A running instance is refused\n"
    "by the manager (exit 3).\n"
    "\n"
    "  --yes   delete without asking\n"
    "\n" CTL_HELP_GLOBAL "\n" CTL_HELP_EXIT;

static const char rebind_help[] =
    "Usage: vtpmctl vtpm rebind UUID --label LABEL\n"
    "\n"
    "Bind vTPM UUID to the guest of LABEL (user:role:type[:level]): from now on only labels\n"
    "with LABEL's user field and level open it. This is how a vTPM moves to another guest\n"
    "identity; an open by any other guest is refused and audited. Refused while an instance\n"
    "has the vTPM open (exit 3).\n"
    "\n"
    "  --label LABEL  the guest identity (required)\n"
    "\n" CTL_HELP_GLOBAL "\n" CTL_HELP_EXIT;

static int vtpm_create(struct ctl *c, int argc, char **argv)
{
	enum { O_GROUP = 1, O_LABEL };
	static const struct optspec specs[] = {
	    {"group", true, O_GROUP}, {"label", true, O_LABEL}, {NULL, false, 0}};
	const char *group = NULL, *label = NULL, *val;
	struct mgr_builder b;
	struct argiter it;
	char err[256], what[128];
	struct props *ps;
	uint8_t uuid[16];
	char text[37];
	int id, rc;

	argiter_init(&it, argc - 1, argv + 1, "vtpm create");
	while ((id = argiter_next(c, &it, specs, &val)) != OPT_END) {
		switch (id) {
		case OPT_ERROR:
			return EXIT_USAGE;
		case OPT_POSITIONAL:
		case OPT_DASHDASH:
			return ctl_usage(c, it.cmd,
					 "vtpm create takes no arguments (the manager chooses the "
					 "UUID)");
		case O_GROUP:
			if (check_group_ref(val, err, sizeof(err)) < 0)
				return ctl_usage(c, it.cmd, "--group: %s", err);
			group = val;
			break;
		case O_LABEL:
			label = val;
			break;
		default:
			rc = ctl_global_opt(c, &it, id, val, create_help);
			if (rc)
				return rc;
		}
	}
	if (!group)
		return ctl_usage(c, it.cmd, "vtpm create needs --group NAME");
	mgr_build_init(&b, ctl_reqbuf(), MGR_MAX_MSG, MGR_VTPM_CREATE);
	put_group_ref(&b, group);
	if (label)
		mgr_put_text(&b, MGR_F_LABEL, label);
	snprintf(what, sizeof(what), "create a vTPM in group %s", group);
	rc = ctl_request(c, &b, what);
	if (rc)
		return rc;
	if (response_get_fixed(c, MGR_F_UUID, uuid, sizeof(uuid)) < 0)
		return ctl_fail(c, EXIT_UNREACHABLE, -1,
				"%s: the manager's answer lacks the new vTPM's UUID", what);
	uuid_format(uuid, text);
	if (!c->json) {
		printf("%s\n", text);
		return EXIT_OK;
	}
	ps = props_new();
	props_add_str(ps, "uuid", text);
	props_add_response(ps, c, REC_VTPM);
	props_print(c, ps);
	props_free(ps);
	return EXIT_OK;
}

static void fill_group(struct mgr_builder *b, const void *arg)
{
	if (arg)
		put_group_ref(b, arg);
}

static int vtpm_list(struct ctl *c, int argc, char **argv)
{
	enum { O_GROUP = 1 };
	static const struct optspec specs[] = {{"group", true, O_GROUP}, {NULL, false, 0}};
	const char *group = NULL, *val;
	struct reclist l;
	struct argiter it;
	char err[256], what[128];
	int id, rc;

	argiter_init(&it, argc - 1, argv + 1, "vtpm list");
	while ((id = argiter_next(c, &it, specs, &val)) != OPT_END) {
		switch (id) {
		case OPT_ERROR:
			return EXIT_USAGE;
		case OPT_POSITIONAL:
		case OPT_DASHDASH:
			return ctl_usage(c, it.cmd, "vtpm list takes no arguments");
		case O_GROUP:
			if (check_group_ref(val, err, sizeof(err)) < 0)
				return ctl_usage(c, it.cmd, "--group: %s", err);
			group = val;
			break;
		default:
			rc = ctl_global_opt(c, &it, id, val, list_help);
			if (rc)
				return rc;
		}
	}
	if (group)
		snprintf(what, sizeof(what), "list the vTPMs of group %s", group);
	else
		snprintf(what, sizeof(what), "list vTPMs");
	rc = ctl_list(c, MGR_VTPM_LIST, fill_group, group, true, what, &l);
	if (rc)
		return rc;
	rc = out_list(c, REC_VTPM, "vtpms", &l, group ? "no vTPMs in this group" : "no vTPMs");
	reclist_free(&l);
	return rc;
}

/* Parse "SUBCOMMAND UUID [--yes]" (yes may be NULL: not accepted). */
static int parse_uuid_cmd(struct ctl *c, int argc, char **argv, const char *cmd, const char *help,
			  uint8_t uuid[16], bool *yes)
{
	enum { O_YES = 1 };
	static const struct optspec with_yes[] = {{"yes", false, O_YES}, {NULL, false, 0}};
	bool have = false;
	struct argiter it;
	const char *val;
	char err[256];
	int id, rc;

	argiter_init(&it, argc - 1, argv + 1, cmd);
	while ((id = argiter_next(c, &it, yes ? with_yes : NULL, &val)) != OPT_END) {
		switch (id) {
		case OPT_ERROR:
			return EXIT_USAGE;
		case OPT_DASHDASH:
			return ctl_usage(c, cmd, "unexpected '--'");
		case OPT_POSITIONAL:
			if (have)
				return ctl_usage(c, cmd, "%s takes one UUID", cmd);
			if (parse_uuid_arg(val, uuid, err, sizeof(err)) < 0)
				return ctl_usage(c, cmd, "%s", err);
			have = true;
			break;
		case O_YES:
			if (yes) {
				*yes = true;
				break;
			}
			/* fall through */
		default:
			rc = ctl_global_opt(c, &it, id, val, help);
			if (rc)
				return rc;
		}
	}
	if (!have)
		return ctl_usage(c, cmd, "%s needs a vTPM UUID", cmd);
	return EXIT_OK;
}

static int vtpm_show(struct ctl *c, int argc, char **argv)
{
	struct mgr_builder b;
	uint8_t uuid[16];
	char text[37], what[80];
	int rc;

	rc = parse_uuid_cmd(c, argc, argv, "vtpm show", show_help, uuid, NULL);
	if (rc)
		return rc;
	uuid_format(uuid, text);
	mgr_build_init(&b, ctl_reqbuf(), MGR_MAX_MSG, MGR_VTPM_SHOW);
	mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
	snprintf(what, sizeof(what), "show vTPM %s", text);
	rc = ctl_request(c, &b, what);
	if (rc)
		return rc;
	return out_show(c, REC_VTPM);
}

static int vtpm_rebind(struct ctl *c, int argc, char **argv)
{
	enum { O_LABEL = 1 };
	static const struct optspec specs[] = {{"label", true, O_LABEL}, {NULL, false, 0}};
	const char *label = NULL, *val;
	struct mgr_builder b;
	struct argiter it;
	bool have = false;
	uint8_t uuid[16];
	char err[256], text[37], what[96];
	int id, rc;

	argiter_init(&it, argc - 1, argv + 1, "vtpm rebind");
	while ((id = argiter_next(c, &it, specs, &val)) != OPT_END) {
		switch (id) {
		case OPT_ERROR:
			return EXIT_USAGE;
		case OPT_DASHDASH:
			return ctl_usage(c, it.cmd, "unexpected '--'");
		case OPT_POSITIONAL:
			if (have)
				return ctl_usage(c, it.cmd, "vtpm rebind takes one UUID");
			if (parse_uuid_arg(val, uuid, err, sizeof(err)) < 0)
				return ctl_usage(c, it.cmd, "%s", err);
			have = true;
			break;
		case O_LABEL:
			label = val;
			break;
		default:
			rc = ctl_global_opt(c, &it, id, val, rebind_help);
			if (rc)
				return rc;
		}
	}
	if (!have || !label)
		return ctl_usage(c, it.cmd, "vtpm rebind needs a vTPM UUID and --label LABEL");
	uuid_format(uuid, text);
	mgr_build_init(&b, ctl_reqbuf(), MGR_MAX_MSG, MGR_VTPM_REBIND);
	mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
	mgr_put_text(&b, MGR_F_LABEL, label);
	snprintf(what, sizeof(what), "rebind vTPM %s", text);
	rc = ctl_request(c, &b, what);
	if (rc)
		return rc;
	if (c->json) {
		struct props *ps = props_new();

		props_add_str(ps, "uuid", text);
		props_add_str(ps, "bound_label", label);
		props_print(c, ps);
		props_free(ps);
	} else {
		printf("vTPM %s is bound to the guest of %s\n", text, label);
	}
	return EXIT_OK;
}

/* Ask on the terminal; true only for "yes". */
static bool confirm(const char *uuid)
{
	char line[64];

	fprintf(stderr,
		"Deleting vTPM %s destroys its state key: its state file can never be read "
		"again.\nType 'yes' to delete it: ",
		uuid);
	fflush(stderr);
	if (!fgets(line, sizeof(line), stdin))
		return false;
	line[strcspn(line, "\r\n")] = '\0';
	return strcmp(line, "yes") == 0;
}

static int vtpm_delete(struct ctl *c, int argc, char **argv)
{
	struct mgr_builder b;
	bool yes = false;
	uint8_t uuid[16];
	char text[37], what[80];
	int rc;

	rc = parse_uuid_cmd(c, argc, argv, "vtpm delete", delete_help, uuid, &yes);
	if (rc)
		return rc;
	uuid_format(uuid, text);
	if (!yes) {
		if (!isatty(STDIN_FILENO))
			return ctl_fail(
			    c, EXIT_USAGE, -1,
			    "refusing to delete vTPM %s without --yes: stdin is not a "
			    "terminal to confirm on (deleting destroys its key; its state "
			    "file becomes unreadable)",
			    text);
		/* show what is about to go (and fail early if it does not exist) */
		mgr_build_init(&b, ctl_reqbuf(), MGR_MAX_MSG, MGR_VTPM_SHOW);
		mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
		snprintf(what, sizeof(what), "show vTPM %s", text);
		rc = ctl_request(c, &b, what);
		if (rc)
			return rc;
		if (!c->json) {
			out_show(c, REC_VTPM);
			fflush(stdout);
		}
		if (!confirm(text))
			return ctl_fail(c, EXIT_USAGE, -1, "vTPM %s not deleted (not confirmed)",
					text);
	}
	mgr_build_init(&b, ctl_reqbuf(), MGR_MAX_MSG, MGR_VTPM_DELETE);
	mgr_put_bytes(&b, MGR_F_UUID, uuid, 16);
	snprintf(what, sizeof(what), "delete vTPM %s", text);
	rc = ctl_request(c, &b, what);
	if (rc)
		return rc;
	if (c->json) {
		struct props *ps = props_new();

		props_add_str(ps, "uuid", text);
		props_add_bool(ps, "deleted", true);
		props_add_bool(ps, "state_file_readable", false);
		props_print(c, ps);
		props_free(ps);
	} else {
		printf("deleted vTPM %s: its state key is destroyed; its state file can no "
		       "longer be read\n",
		       text);
	}
	return EXIT_OK;
}

int cmd_vtpm(struct ctl *c, int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct ctl *c, int argc, char **argv);
		const char *help;
	} subs[] = {
	    {"create", vtpm_create, create_help}, {"list", vtpm_list, list_help},
	    {"show", vtpm_show, show_help},	  {"rebind", vtpm_rebind, rebind_help},
	    {"delete", vtpm_delete, delete_help},
	};
	const char *val;
	size_t k;
	int rc;

	rc = ctl_subcommand(c, &argc, &argv, "vtpm",
			    "vtpm needs a subcommand: create, list, show, rebind or delete",
			    ctl_vtpm_help);
	if (rc >= 0)
		return rc;
	val = argv[0]; /* the subcommand */
	for (k = 0; k < sizeof(subs) / sizeof(subs[0]); k++)
		if (strcmp(val, subs[k].name) == 0) {
			if (args_want_help(argc - 1, argv + 1))
				return ctl_help(subs[k].help), EXIT_OK;
			return subs[k].fn(c, argc, argv);
		}
	{
		char shown[64];

		out_sanitize(val, strnlen(val, 40), shown, sizeof(shown));
		return ctl_usage(
		    c, "vtpm", "unknown vtpm subcommand '%s' (create, list, show, rebind, delete)",
		    shown);
	}
}
