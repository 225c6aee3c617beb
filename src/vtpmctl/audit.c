/*
 * audit.c — vtpmctl audit: the newest entries of the manager's audit log.
 */
#include <string.h>

#include "common/parse_num.h"
#include "vtpmctl/vtpmctl.h"

#define AUDIT_DEFAULT_COUNT 20
#define AUDIT_MAX_COUNT	    1000

const char ctl_audit_help[] =
    "Usage: vtpmctl audit [--count N]\n"
    "\n"
    "Show the newest entries of the manager's audit log, newest first: every admin action\n"
    "(host init and reseal, group and vTPM creation and deletion, label registration) with\n"
    "its time, the uid and pid that asked, the subject and the result (\"ok\" or why it was\n"
    "refused), and refusals of instances (wrong label or binary, a second instance).\n"
    "As a table, or {\"events\": [{...}, ...]} with --json (time in seconds since the\n"
    "epoch; the table shows it as UTC).\n"
    "\n"
    "  --count N   how many entries, 1-1000 (default 20)\n"
    "\n" CTL_HELP_GLOBAL "\n"
    "Examples:\n"
    "  vtpmctl audit --count 10\n"
    "  vtpmctl --json audit | jq -r '.events[] | select(.result != \"ok\")'\n"
    "\n" CTL_HELP_EXIT;

static void fill_count(struct mgr_builder *b, const void *arg)
{
	mgr_put_u32(b, MGR_F_COUNT, *(const uint32_t *)arg);
}

int cmd_audit(struct ctl *c, int argc, char **argv)
{
	enum { O_COUNT = 1 };
	static const struct optspec specs[] = {{"count", true, O_COUNT}, {NULL, false, 0}};
	uint32_t count = AUDIT_DEFAULT_COUNT;
	struct reclist l;
	struct argiter it;
	const char *val;
	char err[256];
	int id, rc;

	if (args_want_help(argc - 1, argv + 1)) {
		ctl_help(ctl_audit_help);
		return EXIT_OK;
	}
	argiter_init(&it, argc - 1, argv + 1, "audit");
	while ((id = argiter_next(c, &it, specs, &val)) != OPT_END) {
		switch (id) {
		case OPT_ERROR:
			return EXIT_USAGE;
		case OPT_POSITIONAL:
		case OPT_DASHDASH:
			return ctl_usage(c, it.cmd, "audit takes no arguments");
		case O_COUNT:
			if (parse_num_u32("--count", val, NUM_DEC, 1, AUDIT_MAX_COUNT, &count, err,
					  sizeof(err)) < 0)
				return ctl_usage(c, it.cmd, "%s", err);
			break;
		default:
			rc = ctl_global_opt(c, &it, id, val, ctl_audit_help);
			if (rc)
				return rc;
		}
	}
	rc = ctl_list(c, MGR_AUDIT_LIST, fill_count, &count, false, "read the audit log", &l);
	if (rc)
		return rc;
	rc = out_list(c, REC_AUDIT, "events", &l, "the audit log is empty");
	reclist_free(&l);
	return rc;
}
