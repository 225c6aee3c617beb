/*
 * options.h — vtpmmgrd's command line. Parsing is pure (no I/O besides nothing): the
 * values are checked here (NV index range, log level, paths non-empty), the effects are
 * main's.
 */
#ifndef VTPM_MGRD_OPTIONS_H
#define VTPM_MGRD_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vtpmmgrd/conn_limits.h"

#define MGRD_DEFAULT_TCTI	     "device:/dev/tpmrm0"
#define MGRD_DEFAULT_STORE	     "/var/lib/vtpm/vtpmmgrd.db"
#define MGRD_DEFAULT_INSTANCE_SOCKET "/run/vtpm/instance.sock"
#define MGRD_DEFAULT_ADMIN_SOCKET    "/run/vtpm/admin.sock"
/* In the owner range of NV indices (0x01000000..0x013fffff), near its top, away from the
 * small indices that tools and examples use. */
#define MGRD_DEFAULT_NV_INDEX 0x013ff100u

struct mgrd_opts {
	const char *tcti;
	const char *store;
	const char *instance_socket;
	const char *admin_socket;
	const char *admin_group;   /* NULL: root only */
	const char *listener_user; /* NULL: vtpmmgrd if it exists, else nobody (listener.h) */
	uint32_t nv_index;
	bool nv_index_given;
	const char *log_file; /* NULL: stderr */
	int log_level;	      /* LOG_LVL_* (0 errors .. 3 debug) */
	const char *pid_file;
	/* --after-crash accept|refuse: run with a store whose newest state a crash left
	 * undecidable (rollback.h), reporting it, or refuse to start */
	bool after_crash_accept;
	uint32_t guard_interval_ms; /* --guard-interval: counter advances at most this often */
	/* --max-conns, --max-conns-per-pid, --max-conns-per-uid, --idle-timeout,
	 * --audit-refusals-per-uid, --limits-interval (conn_limits.h) */
	struct cl_config limits;
	bool daemon;
	bool help;
	bool version;
};

/* Returns 0, or -1 with err set. The strings point into argv. */
int mgrd_parse_args(int argc, char **argv, struct mgrd_opts *o, char *err, size_t errlen);

#endif
