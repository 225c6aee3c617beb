#include "vtpmmgrd/options.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/parse_num.h"
#include "vtpmmgrd/host_tpm.h"
#include "vtpmmgrd/rollback.h"

enum {
	OPT_TCTI = 256,
	OPT_STORE,
	OPT_INSTANCE_SOCKET,
	OPT_ADMIN_SOCKET,
	OPT_ADMIN_GROUP,
	OPT_NV_INDEX,
	OPT_LOG,
	OPT_PID,
	OPT_AFTER_CRASH,
	OPT_GUARD_INTERVAL,
	OPT_MAX_CONNS,
	OPT_MAX_PER_PID,
	OPT_MAX_PER_UID,
	OPT_IDLE_TIMEOUT,
	OPT_AUDIT_REFUSALS,
	OPT_LIMITS_INTERVAL,
	OPT_LISTENER_USER,
};

static const struct option longopts[] = {
    {"tcti", required_argument, NULL, OPT_TCTI},
    {"store", required_argument, NULL, OPT_STORE},
    {"instance-socket", required_argument, NULL, OPT_INSTANCE_SOCKET},
    {"admin-socket", required_argument, NULL, OPT_ADMIN_SOCKET},
    {"admin-group", required_argument, NULL, OPT_ADMIN_GROUP},
    {"listener-user", required_argument, NULL, OPT_LISTENER_USER},
    {"nv-index", required_argument, NULL, OPT_NV_INDEX},
    {"log", required_argument, NULL, OPT_LOG},
    {"pid", required_argument, NULL, OPT_PID},
    {"after-crash", required_argument, NULL, OPT_AFTER_CRASH},
    {"guard-interval", required_argument, NULL, OPT_GUARD_INTERVAL},
    {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
    {"max-conns-per-pid", required_argument, NULL, OPT_MAX_PER_PID},
    {"max-conns-per-uid", required_argument, NULL, OPT_MAX_PER_UID},
    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
    {"audit-refusals-per-uid", required_argument, NULL, OPT_AUDIT_REFUSALS},
    {"limits-interval", required_argument, NULL, OPT_LIMITS_INTERVAL},
    {"daemon", no_argument, NULL, 'd'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'v'},
    {NULL, 0, NULL, 0},
};

/* --log file=PATH[,level=N] | level=N: the path is everything after "file=" up to a
 * ",level=" (so a path may hold commas otherwise). */
static int parse_log(char *arg, struct mgrd_opts *o, char *err, size_t errlen)
{
	char *lvl = NULL, *file = NULL, why[128];
	uint32_t n;

	if (strncmp(arg, "file=", 5) == 0) {
		file = arg + 5;
		lvl = strstr(file, ",level=");
		if (lvl) {
			*lvl = '\0';
			lvl += 7;
		}
	} else if (strncmp(arg, "level=", 6) == 0) {
		lvl = arg + 6;
		if (strstr(lvl, ",file=")) {
			snprintf(err, errlen, "--log: write file=PATH first, then level=N");
			return -1;
		}
	} else {
		snprintf(err, errlen, "--log '%s': expected file=PATH[,level=N] or level=N", arg);
		return -1;
	}
	if (file) {
		if (!*file) {
			snprintf(err, errlen, "--log: file= needs a path");
			return -1;
		}
		o->log_file = file;
	}
	if (lvl) {
		if (parse_num_u32(NULL, lvl, NUM_DEC, 0, LOG_LVL_DEBUG, &n, why, sizeof(why)) < 0) {
			snprintf(
			    err, errlen,
			    "--log: level '%s' is not 0 (errors), 1 (warnings), 2 (information) "
			    "or 3 (debug)",
			    lvl);
			return -1;
		}
		o->log_level = (int)n;
	}
	return 0;
}

static int nonempty(const char *opt, const char *v, char *err, size_t errlen)
{
	if (*v)
		return 0;
	snprintf(err, errlen, "%s needs a non-empty value", opt);
	return -1;
}

int mgrd_parse_args(int argc, char **argv, struct mgrd_opts *o, char *err, size_t errlen)
{
	int c;

	memset(o, 0, sizeof(*o));
	o->tcti = MGRD_DEFAULT_TCTI;
	o->store = MGRD_DEFAULT_STORE;
	o->instance_socket = MGRD_DEFAULT_INSTANCE_SOCKET;
	o->admin_socket = MGRD_DEFAULT_ADMIN_SOCKET;
	o->nv_index = MGRD_DEFAULT_NV_INDEX;
	o->log_level = LOG_LVL_INFO;
	o->after_crash_accept = true;
	o->guard_interval_ms = RB_INTERVAL_MS_DEFAULT;
	cl_config_default(&o->limits);
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":dhv", longopts, NULL)) != -1) {
		const char *name = optind > 0 && optind <= argc ? argv[optind - 1] : "?";

		switch (c) {
		case OPT_TCTI:
			if (nonempty("--tcti", optarg, err, errlen) < 0)
				return -1;
			o->tcti = optarg;
			break;
		case OPT_STORE:
			if (nonempty("--store", optarg, err, errlen) < 0)
				return -1;
			o->store = optarg;
			break;
		case OPT_INSTANCE_SOCKET:
			if (nonempty("--instance-socket", optarg, err, errlen) < 0)
				return -1;
			o->instance_socket = optarg;
			break;
		case OPT_ADMIN_SOCKET:
			if (nonempty("--admin-socket", optarg, err, errlen) < 0)
				return -1;
			o->admin_socket = optarg;
			break;
		case OPT_ADMIN_GROUP:
			if (nonempty("--admin-group", optarg, err, errlen) < 0)
				return -1;
			o->admin_group = optarg;
			break;
		case OPT_LISTENER_USER:
			if (nonempty("--listener-user", optarg, err, errlen) < 0)
				return -1;
			o->listener_user = optarg;
			break;
		case OPT_NV_INDEX:
			/* an NV index in the owner range, hexadecimal as documented */
			if (parse_num_u32("--nv-index", optarg, NUM_DEC_HEX, HOST_TPM_NV_FIRST,
					  HOST_TPM_NV_LAST, &o->nv_index, err, errlen) < 0)
				return -1;
			o->nv_index_given = true;
			break;
		case OPT_LOG:
			if (parse_log(optarg, o, err, errlen) < 0)
				return -1;
			break;
		case OPT_AFTER_CRASH:
			if (strcmp(optarg, "accept") == 0) {
				o->after_crash_accept = true;
			} else if (strcmp(optarg, "refuse") == 0) {
				o->after_crash_accept = false;
			} else {
				snprintf(err, errlen,
					 "--after-crash '%s': expected accept or refuse", optarg);
				return -1;
			}
			break;
		case OPT_GUARD_INTERVAL:
			if (parse_num_u32("--guard-interval", optarg, NUM_DEC, 10, 3600000,
					  &o->guard_interval_ms, err, errlen) < 0)
				return -1;
			break;
		case OPT_PID:
			if (strncmp(optarg, "file=", 5) != 0 || !optarg[5]) {
				snprintf(err, errlen, "--pid '%s': expected file=PATH", optarg);
				return -1;
			}
			o->pid_file = optarg + 5;
			break;
		case OPT_MAX_CONNS:
			if (parse_num_u32("--max-conns", optarg, NUM_DEC, 1, CL_MAX_MAX_CONNS,
					  &o->limits.max_conns, err, errlen) < 0)
				return -1;
			break;
		case OPT_MAX_PER_PID:
			if (parse_num_u32("--max-conns-per-pid", optarg, NUM_DEC, 0, 65536,
					  &o->limits.max_per_pid, err, errlen) < 0)
				return -1;
			break;
		case OPT_MAX_PER_UID:
			if (parse_num_u32("--max-conns-per-uid", optarg, NUM_DEC, 0, 65536,
					  &o->limits.max_per_uid, err, errlen) < 0)
				return -1;
			break;
		case OPT_IDLE_TIMEOUT: {
			uint32_t s;

			if (parse_num_u32("--idle-timeout", optarg, NUM_DEC, 0, 86400, &s, err,
					  errlen) < 0)
				return -1;
			o->limits.idle_timeout_ms = s * 1000u;
			break;
		}
		case OPT_AUDIT_REFUSALS:
			if (parse_num_u32("--audit-refusals-per-uid", optarg, NUM_DEC, 0, 1000000,
					  &o->limits.audit_refusals, err, errlen) < 0)
				return -1;
			break;
		case OPT_LIMITS_INTERVAL: {
			uint32_t s;

			if (parse_num_u32("--limits-interval", optarg, NUM_DEC, 1, 86400, &s, err,
					  errlen) < 0)
				return -1;
			o->limits.interval_ms = s * 1000u;
			break;
		}
		case 'd':
			o->daemon = true;
			break;
		case 'h':
			o->help = true;
			break;
		case 'v':
			o->version = true;
			break;
		case ':':
			snprintf(err, errlen, "option %s needs a value", name);
			return -1;
		default:
			snprintf(err, errlen, "unknown option %s (see --help)", name);
			return -1;
		}
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument '%s' (see --help)", argv[optind]);
		return -1;
	}
	return 0;
}
