/*
 * doctor.c — vtpmctl status (the host and every vTPM on it, one screen) and vtpmctl doctor
 * (what is wrong with this host's vtpm set-up, and what to do about it).
 *
 * Both only read: the manager's host status and vTPM list, and local files (sockets, the
 * vtpmd executable, the host TPM device).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vtpmctl/vtpmctl.h"

const char ctl_status_help[] =
    "Usage: vtpmctl status\n"
    "\n"
    "The host and every vTPM on it: the manager's state (provisioned, the rollback guard's\n"
    "verdict, open instances, host TPM commands), then the vTPM table of 'vtpmctl vtpm list'\n"
    "(group, bound label, whether a live instance holds it, its pid and label, the state\n"
    "version the manager recorded last).\n"
    "\n" CTL_HELP_GLOBAL "\n"
    "Output: the two parts as text, or {\"host\": {...}, \"vtpm_list\": {\"vtpms\": [...]}}\n"
    "with --json (each part as host status and vtpm list print it).\n"
    "\n" CTL_HELP_EXIT;

const char ctl_doctor_help[] =
    "Usage: vtpmctl doctor [--instance-socket PATH] [--vtpmd PATH]\n"
    "\n"
    "Check this host's vtpm set-up and say what to fix. Each check prints 'ok', 'warn' or\n"
    "'FAIL' with what it found and, when not ok, what to do:\n"
    "  manager       the manager answers on the admin socket\n"
    "  provisioned   the host is provisioned (vtpmctl host init)\n"
    "  host-state    the root key is unsealed and the store verified ('ok'), not refused for\n"
    "                PCRs, tampering or rollback\n"
    "  guard         the rollback guard's verdict and its failures\n"
    "  sockets       the admin socket is not open to every user; the instance socket exists\n"
    "  vtpmd         a vtpmd executable is found (next to vtpmctl, in $PATH, or --vtpmd)\n"
    "  instances     every vTPM a live instance holds is served by a process that exists\n"
    "\n"
    "Options:\n"
    "  --instance-socket PATH  the manager's instance socket (default " VTPMCTL_DEFAULT_INST_SOCKET
    ")\n"
    "  --vtpmd PATH            the vtpmd executable to check\n"
    "\n" CTL_HELP_GLOBAL "\n"
    "Output: one line per check, or {\"checks\": [{\"check\", \"result\", \"found\", \"fix\"}]}\n"
    "with --json. Exit status: 0 when no check failed (warnings allowed), 4 when one failed,\n"
    "2 when the manager cannot be reached.\n";

/* ---- status -------------------------------------------------------------------------- */

int cmd_status(struct ctl *c, int argc, char **argv)
{
	struct mgr_builder b;
	struct reclist l = {0};
	struct argiter it;
	const char *val;
	int id, rc;

	if (args_want_help(argc - 1, argv + 1)) {
		ctl_help(ctl_status_help);
		return EXIT_OK;
	}
	argiter_init(&it, argc - 1, argv + 1, "status");
	static const struct optspec none[] = {{NULL, false, 0}};

	while ((id = argiter_next(c, &it, none, &val)) != OPT_END) {
		if (id == OPT_ERROR)
			return EXIT_USAGE;
		if (id == OPT_POSITIONAL || id == OPT_DASHDASH)
			return ctl_usage(c, it.cmd, "status takes no arguments");
		rc = ctl_global_opt(c, &it, id, val, ctl_status_help);
		if (rc)
			return rc;
	}
	mgr_build_init(&b, ctl_reqbuf(), MGR_MAX_MSG, MGR_HOST_STATUS);
	rc = ctl_request(c, &b, "host status");
	if (rc)
		return rc;
	if (c->json) {
		printf("{\"host\": ");
		fflush(stdout);
	} else {
		printf("== host\n");
	}
	rc = out_show(c, REC_HOST);
	if (rc)
		return rc;
	rc = ctl_list(c, MGR_VTPM_LIST, NULL, NULL, true, "list vTPMs", &l);
	if (rc) {
		if (c->json)
			printf("}\n");
		return rc;
	}
	if (c->json) {
		printf(", \"vtpm_list\": ");
		fflush(stdout);
	} else {
		printf("\n== vTPMs\n");
	}
	rc = out_list(c, REC_VTPM, "vtpms", &l, "no vTPMs");
	if (c->json)
		printf("}\n");
	reclist_free(&l);
	return rc;
}

/* ---- doctor -------------------------------------------------------------------------- */

enum verdict { V_OK, V_WARN, V_FAIL };

struct report {
	struct ctl *c;
	struct jw w;
	int failed;
	int warned;
};

static void check(struct report *r, const char *name, enum verdict v, const char *found,
		  const char *fix)
{
	static const char *const word[] = {"ok", "warn", "FAIL"};

	if (v == V_FAIL)
		r->failed++;
	if (v == V_WARN)
		r->warned++;
	if (r->c->json) {
		jw_obj_begin(&r->w);
		jw_key(&r->w, "check");
		jw_str(&r->w, name);
		jw_key(&r->w, "result");
		jw_str(&r->w, v == V_FAIL ? "fail" : word[v]);
		jw_key(&r->w, "found");
		jw_str(&r->w, found);
		if (v != V_OK && fix) {
			jw_key(&r->w, "fix");
			jw_str(&r->w, fix);
		}
		jw_obj_end(&r->w);
		return;
	}
	printf("%-4s  %-12s %s\n", word[v], name, found);
	if (v != V_OK && fix)
		printf("      %-12s fix: %s\n", "", fix);
}

/* The host status the checks read: the answer's fields as vtpmctl host status shows them. */
static bool check_host(struct report *r)
{
	char verdict[64] = "", failures[32] = "", msg[256];
	struct props *ps = props_new();
	const char *prov, *state;
	struct ctl *c = r->c;

	if (!ps) {
		check(r, "host-state", V_FAIL, "out of memory", NULL);
		return false;
	}
	props_add_response(ps, c, REC_HOST);
	prov = props_get(ps, "provisioned");
	state = props_get(ps, "state"); /* JSON text: "ok" with its quotes */
	if (!prov || strcmp(prov, "true") != 0) {
		check(r, "provisioned", V_FAIL,
		      "the host is not provisioned: no vTPM can be opened",
		      "vtpmctl host init [--pcrs LIST] (see vtpmctl(8))");
		props_free(ps);
		return false;
	}
	check(r, "provisioned", V_OK, "the host is provisioned", NULL);
	snprintf(msg, sizeof(msg), "manager state %s", state ? state : "(none)");
	if (state && (strcmp(state, "ok") == 0 || strcmp(state, "\"ok\"") == 0))
		check(r, "host-state", V_OK, msg, NULL);
	else
		check(r, "host-state", V_FAIL, msg,
		      "see 'vtpmctl host status' and vtpmmgrd(8): after a host update, vtpmctl "
		      "host reseal or a signed policy; after tampering or rollback, restore the "
		      "store from a backup");
	props_free(ps);
	response_prop(c, "guard_verdict", verdict, sizeof(verdict));
	response_prop(c, "guard_failures", failures, sizeof(failures));
	snprintf(msg, sizeof(msg), "rollback guard verdict '%s', %s failure(s)",
		 verdict[0] ? verdict : "(none)", failures[0] ? failures : "0");
	if (strstr(verdict, "rollback") || strstr(verdict, "undecid"))
		check(r, "guard", V_FAIL, msg, "see vtpmmgrd(8), ROLLBACK GUARD");
	else if (failures[0] && strcmp(failures, "0") != 0)
		check(r, "guard", V_WARN, msg,
		      "the host TPM's NV counter could not always be advanced: check the host "
		      "TPM (vtpmctl host status, tpm_* counts)");
	else
		check(r, "guard", V_OK, msg, NULL);
	return true;
}

static void check_socket(struct report *r, const char *what, const char *path, bool public_ok)
{
	char msg[PATH_MAX + 128];
	struct stat st;

	if (stat(path, &st) < 0) {
		snprintf(msg, sizeof(msg), "%s %s: %s", what, path, strerror(errno));
		check(r, "sockets", V_FAIL, msg,
		      "start vtpmmgrd (systemctl start vtpmmgrd), or give the path it uses");
		return;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(msg, sizeof(msg), "%s %s is not a socket", what, path);
		check(r, "sockets", V_FAIL, msg, "remove it and restart vtpmmgrd");
		return;
	}
	snprintf(msg, sizeof(msg), "%s %s, mode %04o", what, path, (unsigned)(st.st_mode & 07777));
	if (!public_ok && (st.st_mode & 0002))
		check(r, "sockets", V_FAIL, msg,
		      "the admin socket must not be writable by every user: restart vtpmmgrd "
		      "(it makes it 0600, or 0660 with --admin-group)");
	else
		check(r, "sockets", V_OK, msg, NULL);
}

/* Every open vTPM's instance pid still exists (seen from here). */
static void check_instances(struct report *r)
{
	struct reclist l = {0};
	struct mgr_msg *m = malloc(sizeof(*m));
	char msg[256], err[128], stale[128] = "";
	size_t i, open = 0, gone = 0;

	if (!m || ctl_list(r->c, MGR_VTPM_LIST, NULL, NULL, true, "list vTPMs", &l) != EXIT_OK) {
		free(m);
		check(r, "instances", V_WARN, "the vTPM list could not be read", NULL);
		return;
	}
	for (i = 0; i < l.n; i++) {
		uint32_t is_open = 0, pid = 0;
		char proc[32];

		if (mgr_parse_fields(l.rec[i], l.len[i], m, err, sizeof(err)) < 0)
			continue;
		if (mgr_get_u32(m, MGR_F_OPEN, &is_open) < 0 || !is_open ||
		    mgr_get_u32(m, MGR_F_PID, &pid) < 0)
			continue;
		open++;
		snprintf(proc, sizeof(proc), "/proc/%u", pid);
		if (access(proc, F_OK) < 0) {
			gone++;
			if (!stale[0])
				snprintf(stale, sizeof(stale), " (e.g. pid %u)", pid);
		}
	}
	snprintf(msg, sizeof(msg),
		 "%zu vTPM(s), %zu open, %zu of them by a process not seen here%s", l.n, open, gone,
		 stale);
	check(r, "instances", gone ? V_WARN : V_OK, msg,
	      "the manager drops an instance when its process exits; a pid not seen here runs in "
	      "another pid namespace, or the manager has not noticed yet");
	reclist_free(&l);
	free(m);
}

int cmd_doctor(struct ctl *c, int argc, char **argv)
{
	enum { O_INST = 1, O_VTPMD };
	static const struct optspec specs[] = {
	    {"instance-socket", true, O_INST}, {"vtpmd", true, O_VTPMD}, {NULL, false, 0}};
	const char *inst = VTPMCTL_DEFAULT_INST_SOCKET, *vtpmd = NULL, *val;
	struct report r = {.c = c};
	char path[PATH_MAX], msg[PATH_MAX + 64];
	struct mgr_builder b;
	struct argiter it;
	bool provisioned = false;
	int id, rc;

	if (args_want_help(argc - 1, argv + 1)) {
		ctl_help(ctl_doctor_help);
		return EXIT_OK;
	}
	argiter_init(&it, argc - 1, argv + 1, "doctor");
	while ((id = argiter_next(c, &it, specs, &val)) != OPT_END) {
		if (id == OPT_ERROR)
			return EXIT_USAGE;
		if (id == OPT_POSITIONAL || id == OPT_DASHDASH)
			return ctl_usage(c, it.cmd, "doctor takes no arguments");
		if (id == O_INST || id == O_VTPMD) {
			if (!*val || strlen(val) >= PATH_MAX)
				return ctl_usage(c, it.cmd, "--%s: an empty or too long path",
						 id == O_INST ? "instance-socket" : "vtpmd");
			*(id == O_INST ? &inst : &vtpmd) = val;
			continue;
		}
		rc = ctl_global_opt(c, &it, id, val, ctl_doctor_help);
		if (rc)
			return rc;
	}
	if (c->json) {
		jw_init(&r.w, stdout);
		jw_obj_begin(&r.w);
		jw_key(&r.w, "checks");
		jw_arr_begin(&r.w);
	}
	mgr_build_init(&b, ctl_reqbuf(), MGR_MAX_MSG, MGR_HOST_STATUS);
	rc = ctl_request(c, &b, "host status");
	if (rc == EXIT_OK) {
		snprintf(msg, sizeof(msg), "vtpmmgrd answers on %s", c->admin_socket);
		check(&r, "manager", V_OK, msg, NULL);
		provisioned = check_host(&r);
	} else {
		snprintf(msg, sizeof(msg), "no answer on %s", c->admin_socket);
		check(&r, "manager", V_FAIL, msg,
		      "start vtpmmgrd (systemctl start vtpmmgrd), or give its socket with "
		      "--admin-socket or VTPM_ADMIN_SOCKET");
	}
	check_socket(&r, "admin socket", c->admin_socket, false);
	check_socket(&r, "instance socket", inst, true);
	if (vtpmd ? is_executable_file(vtpmd) : find_vtpmd(path, sizeof(path)) == 0) {
		snprintf(msg, sizeof(msg), "vtpmd %s", vtpmd ? vtpmd : path);
		check(&r, "vtpmd", V_OK, msg, NULL);
	} else {
		check(&r, "vtpmd", V_FAIL,
		      vtpmd ? "the --vtpmd path is not an executable file"
			    : "no vtpmd next to vtpmctl nor in $PATH",
		      "install vtpm (make install, or the vtpm package)");
	}
	if (provisioned)
		check_instances(&r);
	if (c->json) {
		jw_arr_end(&r.w);
		jw_key(&r.w, "failed");
		jw_int(&r.w, r.failed);
		jw_key(&r.w, "warnings");
		jw_int(&r.w, r.warned);
		jw_obj_end(&r.w);
		jw_end(&r.w);
	} else {
		printf("%d check(s) failed, %d warning(s)\n", r.failed, r.warned);
	}
	if (rc == EXIT_UNREACHABLE)
		return rc;
	return r.failed ? EXIT_LOCAL : EXIT_OK;
}
