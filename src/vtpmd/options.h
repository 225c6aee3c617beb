/*
 * options.h — vtpmd's command line: the options libvirt, QEMU users and swtpm_setup pass
 * to `swtpm socket` for a TPM 2.0, plus vtpm's own. Parsing is pure (no I/O) so it can be
 * unit-tested; anything vtpmd does not support is refused with a precise message.
 */
#ifndef VTPMD_OPTIONS_H
#define VTPMD_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vtpmd/engine.h"

enum chan_type {
	CHAN_NONE = 0,
	CHAN_UNIX_PATH,
	CHAN_UNIX_FD,
	CHAN_UNIX_CLIENTFD,
	CHAN_TCP_PORT,
	CHAN_TCP_FD,	   /* --server type=tcp,fd=N or --fd N: one connected socket */
	CHAN_TCP_LISTEN_FD /* --ctrl type=tcp,fd=N: a listening TCP socket (swtpm's meaning) */
};

struct chan_opts {
	enum chan_type type;
	char *path;
	mode_t mode; /* 0 = leave as created */
	uid_t uid;   /* (uid_t)-1 = unchanged */
	gid_t gid;
	uint16_t port;
	char *bindaddr;
	int fd;
	bool terminate;	 /* --ctrl ...,terminate: exit when the control client hangs up */
	bool disconnect; /* --server ...,disconnect: close after each response */
};

enum key_source { KEY_NONE = 0, KEY_FILE, KEY_FD, KEY_PWDFILE, KEY_PWDFD };

/* --seccomp action=: what the filter does with a system call vtpmd does not need. */
enum seccomp_action {
	SECCOMP_ACTION_KILL = 0, /* the default, as swtpm: the process is killed (SIGSYS) */
	SECCOMP_ACTION_LOG,	 /* the call is allowed and logged by the kernel (audit) */
	SECCOMP_ACTION_NONE	 /* no filter */
};

struct key_opts {
	enum key_source source;
	char *path;
	int fd;
	bool hex;	   /* format=hex (default binary) */
	bool format_given; /* format= was given (swtpm's own default is hex) */
	bool remove;	   /* remove the key file after reading it */
	unsigned bits;	   /* 128 or 256, from mode=aes-{128,256}-{cbc,gcm} */
	bool kdf_pbkdf2;   /* for passphrases: pbkdf2 (default) or sha512 */
};

struct vtpmd_opts {
	bool tpm2;
	/* --tpmstate dir=DIR, backend-uri=dir://DIR, or $TPM_PATH: the state file is
	 * DIR/STATE_FILE_NAME. backend-uri=file://PATH: state_dir is PATH's directory and
	 * state_name its last component (the state is that one file). */
	char *state_dir;
	char *state_name;    /* NULL: STATE_FILE_NAME in state_dir (the directory backend) */
	bool state_from_env; /* state_dir came from $TPM_PATH */
	mode_t state_mode;
	struct chan_opts ctrl;
	struct chan_opts server;
	char *log_file;
	bool log_off; /* --log file=-: no log at all (swtpm's meaning) */
	int log_fd;
	int log_level; /* swtpm's 0..20 scale */
	bool log_truncate;
	char *pid_file;
	int pid_fd;
	struct key_opts key;
	struct key_opts migration_key;
	bool not_need_init;
	enum engine_startup startup;
	bool daemon;
	bool terminate;
	bool print_capabilities;
	bool print_states; /* swtpm_setup asks which state blobs exist */
	bool version;
	bool help;
	bool reject_locality4;
	bool allow_set_locality;
	char *uuid; /* --uuid (vtpm): the vTPM this state belongs to */
	char *manager;
	enum seccomp_action seccomp;
	char *runas;	  /* --runas USER|UID: drop to it after --chroot, before any file */
	char *chroot_dir; /* --chroot DIR: every later path is inside it */
	/* measured direct-kernel boot (measure.h) */
	char *measure_kernel;
	char *measure_initrd;
	char *measure_append;
	char *eventlog;
	uint32_t pair_pid; /* --pair-pid: serve only this process (pairing.h); 0: anyone */
	bool passthrough;  /* `vtpmd passthrough`: forward to a real TPM (passthrough.h) */
	char *tcti;	   /* --tcti: the back end's tpm2-tss TCTI string */
	char *filter;	   /* --filter: the command filter file (cmd_filter.h) */
	/* `vtpmd export-swtpm --tpmstate dir=DIR [--key ...] --out DIR2`: write the state as
	 * swtpm 0.7.1's files (swtpm_format.h) and exit */
	bool export_swtpm;
	char *export_out;
};

/* argv[0] is the program, argv[1] "socket", "passthrough" or "export-swtpm". Returns 0, or -1 with
 * err set. Reads two environment variables as swtpm does: TPM_PORT (the --server TCP port when
 * neither port= nor -p gives one) and TPM_PATH (the state directory when --tpmstate is
 * absent). */
int vtpmd_parse_args(int argc, char **argv, struct vtpmd_opts *o, char *err, size_t errlen);
void vtpmd_opts_free(struct vtpmd_opts *o);

#endif
