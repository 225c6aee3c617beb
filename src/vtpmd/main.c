/*
 * vtpmd — one virtual TPM 2.0 for one guest; a drop-in for `swtpm socket`.
 *
 * One process, one job: serve swtpm's control channel and data channel for one vTPM whose
 * state lives in one encrypted, versioned, crash-safe state file. Single-threaded: one
 * poll loop over the control listener/connection, the data listener/connection and a
 * signalfd.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <libtpms/tpm_library.h>
#include <openssl/crypto.h>

#include "common/atomic_file.h"
#include "common/cursor.h"
#include "common/daemon.h"
#include "common/log.h"
#include "common/mgr_proto.h"
#include "common/sock.h"
#include "common/state_store.h"
#include "vtpmd/cmd_filter.h"
#include "vtpmd/capabilities.h"
#include "vtpmd/ctrl_channel.h"
#include "vtpmd/ctrl_proto.h"
#include "vtpmd/data_channel.h"
#include "vtpmd/engine.h"
#include "vtpmd/manager_client.h"
#include "vtpmd/measure.h"
#include "vtpmd/pairing.h"
#include "vtpmd/mgr_retry.h"
#include "vtpmd/options.h"
#include "vtpmd/passthrough.h"
#include "vtpmd/sandbox.h"
#include "vtpmd/state_key.h"
#include "vtpmd/swtpm_format.h"

#define VTPMD_VERSION "0.1.0"
/* How long the rest of a request may take once its first byte arrived (swtpm: 500 ms). */
#define REQUEST_TIMEOUT_MS 1000
#define DATA_BUF_LEN	   (4096u + TCG_PREFIX_LEN)

struct vtpmd {
	struct vtpmd_opts opts;
	struct state_store *store;
	struct engine *engine;
	struct passthrough *pt; /* `vtpmd passthrough`: instead of engine and store */
	struct ctrl_ctx ctrl;
	int ctrl_listen;
	int ctrl_conn;
	int data_listen;
	int lock_fd;
	int sig_fd;
	int ready_fd;		  /* --daemon: tells the waiting parent the start-up result */
	bool pid_written;	  /* --pid file=: ours to remove at exit */
	bool data_from_server_fd; /* --server type=...,fd=N: one connection for our life */
	bool ctrl_from_clientfd;
	uint8_t *cbuf;
	size_t cbuf_cap;
	uint8_t dbuf[DATA_BUF_LEN];
	size_t dhave;
	uint8_t obuf[DATA_BUF_LEN + 8];
	uint8_t retry_rsp[TPM_HEADER_LEN];
	uint8_t migration_key[32];
	uint8_t state_key[32]; /* only while the state is opened */
	/* swtpm 0.7.1's raw keys from the same --key / --migration-key (swtpm_format.h): for
	 * swtpm's state files and migration blobs */
	struct swtpm_key sw_file_key;
	struct swtpm_key sw_mig_key;
	char sw_key_note[128];	/* why --key gives no swtpm key (not secret) */
	struct mgr_client *mgr; /* managed mode: our open vTPM at vtpmmgrd */
	bool mgr_refused;	/* the manager does not take this instance back: stop */
	struct sandbox_mem mem;
	struct measure *measure; /* --measure-kernel */
	struct pairing pair;	 /* --pair-pid */
};

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: vtpmd socket --tpm2 --tpmstate dir=DIR [--ctrl ...] [--server ...] [options]\n"
	    "       vtpmd passthrough --tcti TCTI --filter FILE [--ctrl ...] [--server ...] "
	    "[options]\n"
	    "       vtpmd export-swtpm --tpmstate dir=DIR [--key ...] --out DIR2\n"
	    "\n"
	    "vtpmd runs one virtual TPM 2.0 (libtpms) and serves it with swtpm's control and\n"
	    "data channel protocol, so QEMU's -tpmdev emulator, libvirt and swtpm_ioctl use it as\n"
	    "they use 'swtpm socket'. Its state is one file, DIR/" STATE_FILE_NAME ", written\n"
	    "durably before a command is answered, AES-256-GCM encrypted with --key.\n"
	    "\n"
	    "Options:\n"
	    "  --tpm2                     emulate a TPM 2.0 (required; TPM 1.2 is not supported)\n"
	    "  --tpmstate dir=DIR[,mode=0600] | backend-uri=dir://DIR | backend-uri=file://PATH\n"
	    "                             state directory (must exist) and state file mode, or\n"
	    "                             (file://) the one state file PATH; default: the\n"
	    "                             directory in $TPM_PATH\n"
	    "  --ctrl type=unixio,path=PATH[,mode=0600][,uid=N][,gid=N][,terminate]\n"
	    "  --ctrl type=unixio,fd=N | type=unixio,clientfd=N\n"
	    "  --ctrl type=tcp,port=PORT[,bindaddr=127.0.0.1][,ifname=IF] | type=tcp,fd=N\n"
	    "                             control channel; 'terminate' exits when the control\n"
	    "                             client hangs up; clientfd= is an already connected "
	    "socket\n"
	    "  --server [type=tcp][,port=PORT][,bindaddr=127.0.0.1][,ifname=IF][,disconnect]\n"
	    "  --server [type=tcp,]fd=N\n"
	    "  --server type=unixio,path=PATH[,mode=..] | type=unixio,fd=N\n"
	    "                             data channel (QEMU instead passes one with "
	    "CMD_SET_DATAFD);\n"
	    "                             type defaults to tcp; the port to -p, then $TPM_PORT;\n"
	    "                             tcp fd= is a connected socket; TCP binds to loopback\n"
	    "                             addresses only\n"
	    "  -p, --port PORT            --server type=tcp,port=PORT,disconnect (swtpm)\n"
	    "  -f, --fd N                 the data channel is the connected socket N (N >= 3);\n"
	    "                             exit when it hangs up\n"
	    "  --key file=PATH|fd=N|pwdfile=PATH|pwdfd=N[,format=hex|binary]\n"
	    "        "
	    "[,mode=aes-128-cbc|aes-256-cbc|aes-256-gcm][,remove[=true|false]][,kdf=pbkdf2|sha512]"
	    "\n"
	    "                             encrypt the state file; the key (16 or 32 bytes, as "
	    "mode\n"
	    "                             says) or passphrase derives an AES-256-GCM key. The\n"
	    "                             same --key opens swtpm's encrypted state files found\n"
	    "                             in DIR (imported once, when DIR has no vtpmd state)\n"
	    "  --flags "
	    "not-need-init[,startup-clear|startup-state|startup-deactivated|startup-none]\n"
	    "                             initialise the TPM at start (no CMD_INIT needed) and\n"
	    "                             optionally send TPM2_Startup\n"
	    "  --locality reject-locality-4\n"
	    "                             refuse locality 4 on the control channel\n"
	    "  --log file=PATH|fd=N[,level=N][,truncate]\n"
	    "                             log destination (default stderr; file=- none); level 1 "
	    "warnings,\n"
	    "                             2-4 information, 5 and up debug\n"
	    "  --pid file=PATH|fd=N       write the process id\n"
	    "  -d, --daemon               detach after the sockets are ready (the parent exits\n"
	    "                             with the start-up result: 0, 1 or 2)\n"
	    "  -t, --terminate            exit when the data channel client hangs up\n"
	    "  --seccomp action=kill|log|none\n"
	    "                             system call filter loaded once start-up is over\n"
	    "                             (default kill: a call outside vtpmd's list kills it;\n"
	    "                             log: allowed and logged by the kernel; none: off)\n"
	    "  -r, --runas USER           change to USER (name or uid) before any file or socket\n"
	    "                             is opened; needs root\n"
	    "  -R, --chroot DIR           chroot to DIR first; every path given is then inside\n"
	    "                             DIR; needs root\n"
	    "  --uuid UUID                the vTPM this state belongs to; the state file must\n"
	    "                             carry it (standalone: taken from the file, or random)\n"
	    "  --manager SOCKET           managed mode: get the state key for --uuid from\n"
	    "                             vtpmmgrd at SOCKET, which checks this process's label\n"
	    "                             and binary and refuses rolled-back state; every state\n"
	    "                             write is reported to it before the command is answered\n"
	    "  --measure-kernel FILE      measured direct-kernel boot: after every successful\n"
	    "                             TPM2_Startup(CLEAR), extend the digest of FILE into\n"
	    "                             PCR 4 in every allocated bank\n"
	    "  --measure-initrd FILE      and then the digest of FILE into PCR 5\n"
	    "  --measure-append CMDLINE   and then the digest of the kernel command line (the\n"
	    "                             bytes of CMDLINE, as given to QEMU's -append) into PCR "
	    "5\n"
	    "  --eventlog FILE            write those measurements as a TCG2 crypto-agile event\n"
	    "                             log (tpm2_eventlog reads it)\n"
	    "  --pair-pid PID             serve only process PID (the QEMU vtpmctl launch "
	    "starts):\n"
	    "                             one control and one data connection for its life,\n"
	    "                             every other attach refused; stop, state saved, when\n"
	    "                             PID exits (unix sockets only)\n"
	    "  --print-capabilities       print the features as JSON (swtpm 0.7.1's names, RSA "
	    "key\n"
	    "                             sizes from libtpms) and exit\n"
	    "  --print-states             print which state blobs exist in --tpmstate (JSON) and "
	    "exit\n"
	    "  -v, --version              print the version and exit\n"
	    "  -h, --help                 print this help and exit\n"
	    "\n"
	    "  --migration-key file=PATH|fd=N|pwdfile=PATH|pwdfd=N[,...as --key]\n"
	    "                             seal the state blobs QEMU carries in its migration\n"
	    "                             stream in swtpm's format (AES-CBC + HMAC-SHA256), so\n"
	    "                             they move to and from swtpm with the same key; vtpmd's\n"
	    "                             own AES-256-GCM envelope is still read\n"
	    "\n"
	    "export-swtpm writes the state in --tpmstate as swtpm 0.7.1's files\n"
	    "(tpm2-00.permall, tpm2-00.volatilestate) in --out DIR2, encrypted as swtpm reads the\n"
	    "same --key, so 'swtpm socket --tpmstate dir=DIR2 [--key ...]' starts the same TPM.\n"
	    "It takes the state directory's lock (stop vtpmd first) and never overwrites swtpm\n"
	    "state in DIR2.\n"
	    "\n"
	    "Unix sockets made from path= have mode 0600 unless mode= says otherwise (the umask\n"
	    "plays no part). The log, pid and lock files are never opened through a symbolic\n"
	    "link. vtpmd is not dumpable and locks its memory (see RLIMIT_MEMLOCK in vtpmd(8)).\n"
	    "\n"
	    "Passthrough mode serves the same protocols but forwards each guest command to a\n"
	    "real TPM after checking it against a command filter (see vtpmd(8), PASSTHROUGH):\n"
	    "  --tcti TCTI                the back end, as a tpm2-tss TCTI string; production:\n"
	    "                             device:/dev/tpmrm0 (the kernel resource manager keeps\n"
	    "                             each guest's objects and sessions its own)\n"
	    "  --filter FILE              the command filter (allow/deny by name or code, pcrs,\n"
	    "                             nv-range); a refused command never reaches the TPM and\n"
	    "                             is answered TPM_RC_COMMAND_CODE (0x143)\n"
	    "  --ctrl, --server, --log, --pid, --daemon, --terminate, --seccomp, --runas,\n"
	    "  --chroot, --locality       as in socket mode; state options do not apply\n"
	    "Needs libtss2-tctildr.so.0 (package libtss2-tctildr0) at run time only.\n"
	    "Environment: TPM_PATH (state directory without --tpmstate), TPM_PORT (data port\n"
	    "without port= or -p), as swtpm reads them.\n"
	    "\n"
	    "Not supported, refused with a message: TPM 1.2, chardev/cuse modes, --migration,\n"
	    "--vtpm-proxy, --locality allow-set-locality, profiles.\n"
	    "\n"
	    "Exit status: 0 after CMD_SHUTDOWN or a signal, 1 on a usage or start-up error (bad\n"
	    "option, wrong key, damaged state file: the file is left untouched), 2 if the state\n"
	    "directory is locked by another emulator.\n");
}

/* swtpm 0.7.1's capability line; the RSA key sizes are the ones libtpms supports. */
static int print_capabilities(void)
{
	uint32_t sizes[CAPS_MAX_RSA_SIZES];
	char line[1024], err[256];
	char *info;
	int n;

	if (TPMLIB_ChooseTPMVersion(TPMLIB_TPM_VERSION_2) != 0) {
		fprintf(stderr, "vtpmd: libtpms cannot emulate a TPM 2.0\n");
		return 1;
	}
	info = TPMLIB_GetInfo(TPMLIB_INFO_TPMFEATURES);
	n = caps_rsa_key_sizes(info, sizes, CAPS_MAX_RSA_SIZES, err, sizeof(err));
	free(info);
	if (n < 0) {
		fprintf(stderr, "vtpmd: %s\n", err);
		return 1;
	}
	if (caps_json(line, sizeof(line), sizes, (size_t)n, VTPMD_VERSION) < 0) {
		fprintf(stderr, "vtpmd: capability line too long\n");
		return 1;
	}
	printf("%s\n", line);
	return 0;
}

/* swtpm_setup asks which blobs exist before it provisions (--not-overwrite). */
static void print_states(const struct vtpmd_opts *o)
{
	static const char *const names[] = {STATE_FILE_NAME, "tpm2-00.permall"};
	char path[4096];
	struct stat st;
	size_t i;

	printf("{ \"type\": \"swtpm\", \"states\": [");
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		/* the file backend: the one file named; the directory backend: ours or swtpm's */
		if (o->state_name && i > 0)
			break;
		snprintf(path, sizeof(path), "%s/%s", o->state_dir,
			 o->state_name ? o->state_name : names[i]);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
			printf(" {\"name\": \"permall\", \"size\": %lld} ", (long long)st.st_size);
			break;
		}
	}
	printf("] }\n");
}

static int log_level_from_swtpm(int level)
{
	if (level >= 5)
		return LOG_LVL_DEBUG;
	if (level >= 2)
		return LOG_LVL_INFO;
	return LOG_LVL_WARN;
}

static int setup_log(const struct vtpmd_opts *o)
{
	char err[512];
	int fd = 2;

	if (o->log_file) {
		fd = daemon_open_log(o->log_file, o->log_truncate, err, sizeof(err));
		if (fd < 0) {
			fprintf(stderr, "vtpmd: %s\n", err);
			return -1;
		}
	} else if (o->log_fd >= 0) {
		fd = o->log_fd;
	}
	if (o->log_off)
		fd = -1; /* --log file=- */
	log_init("vtpmd", fd,
		 o->log_file || o->log_fd >= 0 ? log_level_from_swtpm(o->log_level) : LOG_LVL_WARN);
	return 0;
}

/* One emulator per state directory; swtpm takes the same lock (fcntl on DIR/.lock). With
 * backend-uri=file://PATH the lock is PATH.lock (the state file itself is replaced by a
 * rename when it grows, so it cannot carry the lock). */
static int lock_state_dir(struct vtpmd *d)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	char path[4096], err[512];

	if (d->opts.state_name)
		snprintf(path, sizeof(path), "%s/%s.lock", d->opts.state_dir, d->opts.state_name);
	else
		snprintf(path, sizeof(path), "%s/.lock", d->opts.state_dir);
	d->lock_fd = daemon_open_nofollow("lock file", path, O_RDWR | O_CREAT, 0640, false, err,
					  sizeof(err));
	if (d->lock_fd < 0) {
		log_warnx("%s", err);
		return 1;
	}
	if (fcntl(d->lock_fd, F_OFD_SETLK, &fl) < 0) {
		log_warnx("state directory %s is in use by another emulator (lock on %s is held)",
			  d->opts.state_dir, path);
		return 2;
	}
	return 0;
}

/* swtpm's state files in the directory and no vtpmd state: bring them over once, plain or
 * encrypted with swtpm's --key (swtpm_format.h). Nothing is written here: the blobs are
 * staged and become vtpmd's state at the first TPM init; a file that does not open stops
 * vtpmd with the reason, and the files are left as they are. */
static int import_swtpm_state(struct vtpmd *d)
{
	static const struct {
		const char *name;
		uint32_t type;
	} files[] = {{SWTPM_PERMALL_NAME, PTM_BLOB_TYPE_PERMANENT},
		     {SWTPM_VOLATILE_NAME, PTM_BLOB_TYPE_VOLATILE}};
	char path[4096], why[512];
	size_t i;

	if (state_store_version(d->store) != 0 || d->opts.state_name)
		return 0;
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		uint8_t *buf, *raw = NULL;
		size_t raw_len = 0;
		struct stat st;
		ssize_t n;
		int fd, rc;

		snprintf(path, sizeof(path), "%s/%s", d->opts.state_dir, files[i].name);
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
		    st.st_size > (off_t)CTRL_MAX_BLOB + 4096) {
			close(fd);
			log_warnx("swtpm state file %s has an unusable size; not imported", path);
			return -1;
		}
		buf = malloc((size_t)st.st_size);
		n = buf ? read(fd, buf, (size_t)st.st_size) : -1;
		close(fd);
		if (n != st.st_size) {
			log_warnx("cannot read swtpm state file %s", path);
			free(buf);
			return -1;
		}
		rc = swtpm_file_decode(buf, (size_t)n, d->sw_file_key.len ? &d->sw_file_key : NULL,
				       &raw, &raw_len, why, sizeof(why));
		OPENSSL_cleanse(buf, (size_t)n);
		free(buf);
		if (rc == SWF_ERR_NO_KEY && d->opts.key.source != KEY_NONE)
			snprintf(why, sizeof(why),
				 "it is encrypted with swtpm's --key, and vtpmd's --key is not one "
				 "swtpm would take: %s",
				 d->sw_key_note[0] ? d->sw_key_note : "unknown reason");
		else if (rc == SWF_ERR_NO_KEY)
			snprintf(
			    why, sizeof(why),
			    "it is encrypted with swtpm's --key: start vtpmd with the same --key");
		if (rc == SWF_OK &&
		    engine_set_blob(d->engine, files[i].type, raw, (uint32_t)raw_len) != 0) {
			snprintf(why, sizeof(why), "libtpms does not take its blob");
			rc = SWF_ERR_MALFORMED;
		}
		if (raw)
			OPENSSL_cleanse(raw, raw_len);
		free(raw);
		if (rc != SWF_OK) {
			log_warnx(
			    "cannot import swtpm state file %s: %s; it is left as it is (move "
			    "it away to start a fresh vTPM)",
			    path, why);
			return -1;
		}
		log_info("importing swtpm state from %s (%s) at the first TPM init", path,
			 d->sw_file_key.len ? "with swtpm's --key" : "plain");
	}
	return 0;
}

/* Managed mode: the manager must accept the state we loaded (no rollback), and hears of
 * every later commit before vtpmd answers the command that caused it. */
static int check_with_manager(struct vtpmd *d, const struct mgr_open_result *r)
{
	const struct state_slot_info *li = engine_loaded(d->engine);
	char err[512];
	int rc;

	rc = mgr_check_loaded(r->version, r->digest, li->version, li->digest, err, sizeof(err));
	if (rc < 0) {
		log_warnx("%s: %s", d->opts.state_dir, err);
		return -1;
	}
	if (rc == 1 && mgr_client_commit(d->mgr, li) < 0)
		return -1;
	engine_set_commit_hook(d->engine, mgr_client_commit, d->mgr);
	return 0;
}

static int open_state(struct vtpmd *d)
{
	struct mgr_open_result r = {0};
	uint8_t *key = d->state_key; /* in vtpmd's locked, never-dumped pages */
	uint8_t uuid[16];
	bool have_key = d->opts.key.source != KEY_NONE;
	char err[512] = "";
	int rc = -1;

	if (d->opts.uuid)
		uuid_from_text(d->opts.uuid, uuid);
	if (d->opts.manager) {
		if (mgr_client_open(&d->mgr, d->opts.manager, uuid, &r, err, sizeof(err)) < 0) {
			log_warnx("vTPM %s: %s", d->opts.uuid, err);
			return -1;
		}
		memcpy(key, r.state_key, sizeof(d->state_key));
		OPENSSL_cleanse(r.state_key, sizeof(r.state_key));
		have_key = true;
	} else if (have_key &&
		   state_key_load_swtpm(&d->opts.key, key, &d->sw_file_key, d->sw_key_note,
					sizeof(d->sw_key_note), err, sizeof(err)) < 0) {
		log_warnx("%s", err);
		goto out;
	}
	if (d->opts.migration_key.source != KEY_NONE) {
		char note[256] = "";

		if (state_key_load_swtpm(&d->opts.migration_key, d->migration_key, &d->sw_mig_key,
					 note, sizeof(note), err, sizeof(err)) < 0) {
			log_warnx("%s", err);
			goto out;
		}
		if (!d->sw_mig_key.len)
			log_warnx(
			    "--migration-key: swtpm would not take this key (%s): state blobs "
			    "leave in vtpmd's own envelope, which swtpm cannot read",
			    note);
		d->ctrl.migration_key = d->migration_key;
	} else if (d->mgr) {
		/* managed: state blobs leave only encrypted, under a key that moves with the vTPM
		 */
		if (state_key_blob_key(key, uuid, d->migration_key) < 0) {
			log_warnx("cannot derive the state blob key");
			goto out;
		}
		d->ctrl.migration_key = d->migration_key;
	}
	if (state_store_open_named(&d->store, d->opts.state_dir,
				   d->opts.state_name ? d->opts.state_name : STATE_FILE_NAME,
				   have_key ? key : NULL, d->opts.state_mode, NULL, err,
				   sizeof(err)) != 0) {
		log_warnx("%s", err);
		goto out;
	}
	if (d->opts.uuid)
		state_store_set_uuid(d->store, uuid);
	if (engine_create(&d->engine, d->store, d->opts.uuid ? uuid : NULL, err, sizeof(err)) < 0) {
		log_warnx("cannot load the vTPM state in %s: %s", d->opts.state_dir, err);
		goto out;
	}
	if (d->mgr && check_with_manager(d, &r) < 0)
		goto out;
	rc = import_swtpm_state(d);
out:
	OPENSSL_cleanse(key, sizeof(d->state_key));
	return rc;
}

/* Passthrough: the filter, then the back end (passthrough.h). */
static int open_passthrough(struct vtpmd *d)
{
	struct cmd_filter *f = malloc(sizeof(*f));
	char err[1024];
	int rc = -1;

	if (!f) {
		log_warnx("out of memory");
		return -1;
	}
	if (cmd_filter_load(f, d->opts.filter, err, sizeof(err)) < 0)
		log_warnx("%s", err);
	else if (passthrough_open(&d->pt, d->opts.tcti, f, err, sizeof(err)) < 0)
		log_warnx("%s", err);
	else
		rc = 0;
	free(f);
	return rc;
}

/* A channel given as a file descriptor must be an open socket (swtpm checks the same). */
static int check_socket_fd(int fd, const char *what)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		log_warnx("%s channel: file descriptor %d: %s", what, fd, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		log_warnx("%s channel: file descriptor %d is not a socket", what, fd);
		return -1;
	}
	return 0;
}

static int open_channel(const struct chan_opts *c, const char *what, int *listen_fd, int *conn_fd)
{
	char err[512];

	*listen_fd = -1;
	*conn_fd = -1;
	switch (c->type) {
	case CHAN_NONE:
		return 0;
	case CHAN_UNIX_PATH:
		*listen_fd = sock_listen_unix(c->path, c->mode, c->uid, c->gid, err, sizeof(err));
		break;
	case CHAN_TCP_PORT:
		*listen_fd = sock_listen_tcp(c->bindaddr, c->port, err, sizeof(err));
		break;
	case CHAN_UNIX_FD:
	case CHAN_TCP_LISTEN_FD:
		if (check_socket_fd(c->fd, what) < 0)
			return -1;
		*listen_fd = c->fd;
		return 0;
	case CHAN_UNIX_CLIENTFD:
	case CHAN_TCP_FD:
		if (check_socket_fd(c->fd, what) < 0)
			return -1;
		*conn_fd = c->fd;
		return 0;
	}
	if (*listen_fd < 0) {
		log_warnx("%s channel: %s", what, err);
		return -1;
	}
	return 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Read one whole control request; answer it. Returns -1 when the connection must close. */
/* Move the control buffer to a new one of cap bytes, keeping the first keep bytes; the old
 * one held state blobs: cleansed, never left in freed memory as realloc would. */
static int cbuf_resize(struct vtpmd *d, size_t cap, size_t keep)
{
	uint8_t *nb = malloc(cap);

	if (!nb)
		return -1;
	memcpy(nb, d->cbuf, keep < cap ? keep : cap);
	OPENSSL_cleanse(d->cbuf, d->cbuf_cap);
	free(d->cbuf);
	d->cbuf = nb;
	d->cbuf_cap = cap;
	return 0;
}

static int ctrl_serve(struct vtpmd *d)
{
	struct ctrl_resp resp = {0};
	struct ctrl_req req;
	enum ctrl_parse_status st;
	size_t have = 0, need = 0;
	uint32_t res;
	int passed_fd = -1, rc = 0;
	ssize_t n;

	n = sock_recv_fd(d->ctrl_conn, d->cbuf, d->cbuf_cap, &passed_fd);
	if (n <= 0)
		return -1;
	have = (size_t)n;
	while ((st = ctrl_parse(d->cbuf, have, &req, &need, &res)) == CTRL_PARSE_MORE) {
		if (need > d->cbuf_cap && cbuf_resize(d, need, have) < 0) {
			st = CTRL_PARSE_ERROR;
			res = RES_FAIL;
			break;
		}
		n = sock_read_full(d->ctrl_conn, d->cbuf + have, need - have, REQUEST_TIMEOUT_MS);
		if (n <= 0) {
			log_info("control request incomplete (%zu of %zu bytes); closing", have,
				 need);
			if (passed_fd >= 0)
				close(passed_fd);
			return -1;
		}
		have += (size_t)n;
	}
	if (st == CTRL_PARSE_ERROR) {
		log_info("control request 0x%x refused with 0x%x", req.code, res);
		if (passed_fd >= 0)
			close(passed_fd);
		ctrl_error_response(res, &resp);
	} else {
		ctrl_execute(&d->ctrl, &req, passed_fd, &resp);
	}
	if (sock_write_full(d->ctrl_conn, resp.big ? resp.big : resp.small, resp.len) < 0)
		rc = -1;
	if (resp.big) {
		OPENSSL_cleanse(resp.big, resp.len);
		free(resp.big);
	}
	/* Shrink back after a large SET_STATEBLOB so idle instances stay small. */
	if (d->cbuf_cap > 8192)
		cbuf_resize(d, 8192, 0);
	return rc;
}

static int data_respond(struct vtpmd *d, const struct data_frame *f, const uint8_t *rsp,
			uint32_t len)
{
	if (!f->tcg)
		return sock_write_full(d->ctrl.data_fd, rsp, len);
	be32_put(d->obuf, len);
	memcpy(d->obuf + 4, rsp, len);
	be32_put(d->obuf + 4 + len, 0);
	return sock_write_full(d->ctrl.data_fd, d->obuf, len + 8u);
}

/* Run one guest command, or (managed, the manager away) answer it TPM_RC_RETRY without
 * running it (manager_client.h). -1: the manager refused this instance. */
static int data_execute(struct vtpmd *d, const uint8_t *cmd, uint32_t len, const uint8_t **rsp,
			uint32_t *rsp_len)
{
	struct rcursor c;
	uint32_t cc = 0;
	int admit = 1;

	if (d->pt) {
		passthrough_process(d->pt, cmd, len, rsp, rsp_len);
		return 0;
	}
	rc_init(&c, cmd, len); /* tag, commandSize, commandCode */
	if (d->mgr && engine_running(d->engine) && rc_skip(&c, 6) == 0 && rc_u32(&c, &cc) == 0)
		admit = mgr_client_admit(d->mgr, cc);
	if (admit < 0)
		return -1;
	if (admit == 0) {
		tpm2_retry_response(d->retry_rsp);
		*rsp = d->retry_rsp;
		*rsp_len = sizeof(d->retry_rsp);
		return 0;
	}
	engine_process(d->engine, cmd, len, rsp, rsp_len);
	return 0;
}

/* Read what the data client sent and answer every complete command. -1: close it. */
static int data_serve(struct vtpmd *d)
{
	struct data_frame f;
	size_t need;
	ssize_t n;

	n = read(d->ctrl.data_fd, d->dbuf + d->dhave, sizeof(d->dbuf) - d->dhave);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0)
		return -1;
	d->dhave += (size_t)n;
	for (;;) {
		enum data_parse_status st = data_frame_parse(
		    d->dbuf, d->dhave,
		    d->pt ? passthrough_max_command(d->pt) : engine_max_command_size(d->engine), &f,
		    &need);
		const uint8_t *rsp;
		uint32_t rsp_len;

		if (st == DATA_PARSE_BAD) {
			uint8_t err[TPM_HEADER_LEN];
			data_size_error_response(err);
			log_info("data channel: command size out of range; closing the connection");
			sock_write_full(d->ctrl.data_fd, err, sizeof(err));
			return -1;
		}
		if (st == DATA_PARSE_MORE) {
			if (d->dhave == 0)
				return 0;
			n = sock_read_full(d->ctrl.data_fd, d->dbuf + d->dhave, need - d->dhave,
					   REQUEST_TIMEOUT_MS);
			if (n <= 0)
				return -1;
			d->dhave += (size_t)n;
			continue;
		}
		if (f.tcg) {
			if (f.locality > 4)
				f.locality = 0;
			if (d->pt)
				passthrough_set_locality(d->pt, f.locality);
			else
				engine_set_locality(d->engine, f.locality);
		}
		if (data_execute(d, d->dbuf + f.cmd_off, f.cmd_len, &rsp, &rsp_len) < 0) {
			d->mgr_refused = true;
			return -1;
		}
		if (data_respond(d, &f, rsp, rsp_len) < 0)
			return -1;
		/* f.cmd_len >= 10 and rsp_len >= 10 (data_frame_parse, the engine's answers) */
		log_debug("TPM command 0x%08x answered 0x%08x", be32_get(d->dbuf + f.cmd_off + 6),
			  rsp_len >= 10 ? be32_get(rsp + 6) : 0);
		memmove(d->dbuf, d->dbuf + f.total, d->dhave - f.total);
		d->dhave -= f.total;
		if (d->opts.server.disconnect)
			return -1;
		if (d->dhave == 0)
			return 0;
	}
}

static void data_close(struct vtpmd *d)
{
	close_fd(&d->ctrl.data_fd);
	d->dhave = 0;
}

enum { P_SIG, P_CTRL_LISTEN, P_CTRL, P_DATA_LISTEN, P_DATA, P_MGR, P_PAIR, P_N };

/* Accept on a listening channel; paired, only the paired process's first connection. */
static void accept_on(struct vtpmd *d, int listen_fd, int *conn_fd, const char *channel, bool *used)
{
	int conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (conn < 0)
		return;
	if (d->pair.pid && !pairing_admit(&d->pair, conn, channel, used)) {
		close(conn);
		return;
	}
	if (*conn_fd >= 0) { /* paired: a refused extra connection never gets here */
		close(conn);
		return;
	}
	*conn_fd = conn;
}

static int run(struct vtpmd *d)
{
	struct pollfd p[P_N];

	for (;;) {
		/* Paired, the listeners stay polled: every other attach is refused at once. */
		p[P_SIG] = (struct pollfd){.fd = d->sig_fd, .events = POLLIN};
		p[P_CTRL_LISTEN] = (struct pollfd){
		    .fd = d->ctrl_conn < 0 || d->pair.pid ? d->ctrl_listen : -1, .events = POLLIN};
		p[P_CTRL] = (struct pollfd){.fd = d->ctrl_conn, .events = POLLIN};
		p[P_DATA_LISTEN] =
		    (struct pollfd){.fd = d->ctrl.data_fd < 0 || d->pair.pid ? d->data_listen : -1,
				    .events = POLLIN};
		p[P_PAIR] =
		    (struct pollfd){.fd = d->pair.pid ? d->pair.pidfd : -1, .events = POLLIN};
		p[P_DATA] = (struct pollfd){.fd = d->ctrl.data_fd, .events = POLLIN};
		p[P_MGR] = (struct pollfd){.fd = mgr_client_fd(d->mgr), .events = POLLIN};
		if (poll(p, P_N, mgr_client_retry_in(d->mgr)) < 0) {
			if (errno == EINTR)
				continue;
			log_warn("poll");
			return 1;
		}
		if (p[P_SIG].revents) {
			struct signalfd_siginfo si;
			if (read(d->sig_fd, &si, sizeof(si)) == sizeof(si))
				log_info("signal %u: shutting down", si.ssi_signo);
			return 0;
		}
		if (p[P_PAIR].revents) {
			log_info("the paired process %ld has exited: saving the state and stopping",
				 (long)d->pair.pid);
			return 0;
		}
		/* The manager went away (restart, upgrade, crash): keep serving; the next state
		 * write waits until it takes this instance back (manager_client.h). */
		if (p[P_MGR].revents)
			mgr_client_lost(d->mgr);
		if (mgr_client_retry_in(d->mgr) == 0 && mgr_client_reconnect(d->mgr) < 0)
			return 1; /* another instance holds the vTPM now, or it was deleted */
		if (p[P_DATA].revents && data_serve(d) < 0) {
			data_close(d);
			/* another instance holds the vTPM now, or it was deleted */
			if (d->mgr_refused)
				return 1;
			if (d->opts.terminate || d->data_from_server_fd) {
				log_info("data client hung up: terminating");
				return 0;
			}
		}
		if (p[P_CTRL].revents) {
			if (ctrl_serve(d) < 0) {
				close_fd(&d->ctrl_conn);
				if (d->pair.pid) {
					log_info("the paired process closed the control channel: "
						 "saving the state and stopping");
					return 0;
				}
				if (d->opts.ctrl.terminate || d->ctrl_from_clientfd) {
					log_info("control client hung up: terminating");
					return 0;
				}
			}
			if (d->ctrl.shutdown)
				return 0;
		}
		if (p[P_CTRL_LISTEN].revents)
			accept_on(d, d->ctrl_listen, &d->ctrl_conn, "control", &d->pair.ctrl_used);
		if (p[P_DATA_LISTEN].revents)
			accept_on(d, d->data_listen, &d->ctrl.data_fd, "data", &d->pair.data_used);
	}
}

/* The files vtpmd made and removes when it stops: its unix sockets and pid file (only one it
 * wrote: a refused start leaves another's pid file, or a planted link, alone). */
static void remove_files(struct vtpmd *d)
{
	if (d->opts.ctrl.type == CHAN_UNIX_PATH)
		unlink(d->opts.ctrl.path);
	if (d->opts.server.type == CHAN_UNIX_PATH)
		unlink(d->opts.server.path);
	if (d->opts.pid_file && d->pid_written)
		unlink(d->opts.pid_file);
}

/* A stop request while a state write waits for the manager: leave at once, without
 * another state write (the one on disk is reported at the next start). */
static void abort_stop(void *arg)
{
	struct vtpmd *d = arg;

	remove_files(d);
	if (d->cbuf)
		OPENSSL_cleanse(d->cbuf, d->cbuf_cap);
	state_store_close(d->store); /* cleanses its copy of the key; writes nothing */
	mgr_client_close(d->mgr);    /* cleanses the client's copy; no state write */
	sandbox_secret_free(d, sizeof(*d));
	_exit(0);
}

static void cleanup(struct vtpmd *d)
{
	if (d->pt) {
		struct passthrough_stats st;
		passthrough_stats(d->pt, &st);
		log_info("passthrough: %llu command(s) forwarded, %llu refused, %llu failed",
			 (unsigned long long)st.forwarded, (unsigned long long)st.denied,
			 (unsigned long long)st.failed);
		passthrough_close(d->pt);
		d->pt = NULL;
	}
	if (d->engine) {
		engine_stop(d->engine);
		engine_destroy(d->engine);
	}
	if (d->store)
		state_store_close(d->store);
	measure_free(d->measure);
	pairing_close(&d->pair);
	mgr_client_close(d->mgr); /* after the engine's last commit was reported */
	close_fd(&d->ctrl_conn);
	close_fd(&d->ctrl_listen);
	close_fd(&d->data_listen);
	data_close(d);
	remove_files(d);
	close_fd(&d->lock_fd);
	close_fd(&d->sig_fd);
	if (d->cbuf)
		OPENSSL_cleanse(d->cbuf, d->cbuf_cap); /* it held state blobs */
	free(d->cbuf);
	OPENSSL_cleanse(d->migration_key, sizeof(d->migration_key));
	OPENSSL_cleanse(&d->sw_file_key, sizeof(d->sw_file_key));
	OPENSSL_cleanse(&d->sw_mig_key, sizeof(d->sw_mig_key));
	vtpmd_opts_free(&d->opts);
}

/* The engine's startup hook: the PCRs were just reset; measure before anything else runs. */
static int measure_hook(void *arg, struct engine *e)
{
	struct vtpmd *d = arg;
	char err[512];

	if (measure_boot(d->measure, e, err, sizeof(err)) < 0) {
		log_warnx("measured boot failed: %s; the TPM answers TPM_RC_FAILURE until the "
			  "next CMD_INIT",
			  err);
		return -1;
	}
	log_info("measured boot: kernel into PCR 4%s%s", d->opts.measure_initrd ? ", initrd" : "",
		 d->opts.measure_append	  ? ", command line into PCR 5"
		 : d->opts.measure_initrd ? " into PCR 5"
					  : "");
	return 0;
}

static int start(struct vtpmd *d)
{
	static const int stop_signals[] = {SIGTERM, SIGINT, SIGHUP};
	char err[512];
	uint32_t res;
	int data_conn = -1, rc;

	if (d->opts.passthrough) {
		if (open_passthrough(d) < 0)
			return 1;
	} else {
		if ((rc = lock_state_dir(d)) != 0)
			return rc;
		if (open_state(d) < 0)
			return 1;
	}
	if (d->opts.pair_pid && pairing_open(&d->pair, d->opts.pair_pid, err, sizeof(err)) < 0) {
		log_warnx("%s", err);
		return 1;
	}
	if (d->opts.measure_kernel) {
		if (measure_open(&d->measure, d->opts.measure_kernel, d->opts.measure_initrd,
				 d->opts.measure_append, d->opts.eventlog, err, sizeof(err)) < 0) {
			log_warnx("%s", err);
			return 1;
		}
		engine_set_startup_hook(d->engine, measure_hook, d);
	}
	d->ctrl.engine = d->engine;
	d->ctrl.pt = d->pt;
	d->ctrl.file_key = d->opts.key.source != KEY_NONE || d->mgr;
	d->ctrl.sw_file_key = d->sw_file_key.len ? &d->sw_file_key : NULL;
	d->ctrl.sw_mig_key = d->sw_mig_key.len ? &d->sw_mig_key : NULL;
	/* standalone: blobs leave in swtpm's format (with a migration key swtpm can take);
	 * managed: in vtpmd's own envelope under the key that moves with the vTPM */
	d->ctrl.sw_blobs =
	    !d->mgr && (d->opts.migration_key.source == KEY_NONE || d->sw_mig_key.len);
	d->ctrl.reject_locality4 = d->opts.reject_locality4;
	d->ctrl.data_fd = -1;
	if (open_channel(&d->opts.ctrl, "control", &d->ctrl_listen, &d->ctrl_conn) < 0 ||
	    open_channel(&d->opts.server, "data", &d->data_listen, &data_conn) < 0)
		return 1;
	d->ctrl.data_fd = data_conn;
	d->data_from_server_fd = data_conn >= 0;
	if (geteuid() == 0 &&
	    (d->opts.ctrl.type == CHAN_TCP_PORT || d->opts.ctrl.type == CHAN_TCP_FD ||
	     d->opts.ctrl.type == CHAN_TCP_LISTEN_FD || d->opts.server.type == CHAN_TCP_PORT ||
	     d->opts.server.type == CHAN_TCP_FD))
		log_warnx("a TCP channel of this vtpmd (running as root) is open to every local "
			  "user: prefer unix sockets (type=unixio), or --runas");
	d->ctrl_from_clientfd = d->ctrl_conn >= 0;
	d->cbuf_cap = 8192;
	d->cbuf = malloc(d->cbuf_cap);
	if (!d->cbuf) {
		log_warnx("out of memory");
		return 1;
	}
	d->sig_fd = daemon_signalfd(stop_signals, 3, 0, err, sizeof(err));
	if (d->sig_fd < 0) {
		log_warnx("%s", err);
		return 1;
	}
	if (d->mgr)
		mgr_client_set_abort(d->mgr, d->sig_fd, abort_stop, d);
	if (d->opts.not_need_init && d->engine) {
		uint32_t startup_rc = 0;

		res = engine_init_startup(d->engine, d->opts.startup, &startup_rc);
		if (res != 0) {
			log_warnx("TPM initialisation failed (0x%x)", res);
			return 1;
		}
		if (startup_rc != 0 && startup_rc != 0x100 /* TPM_RC_INITIALIZE: resumed */)
			log_warnx("TPM2_Startup returned 0x%x", startup_rc);
	}
	if (d->opts.daemon) {
		/* the parent exits with the start-up result (daemon_ready in main) */
		if (daemon_start(&d->ready_fd, 1, err, sizeof(err)) < 0) {
			log_warnx("%s", err);
			return 1;
		}
		sandbox_relock_after_fork(&d->mem, d, sizeof(*d)); /* locks are not inherited */
	}
	measure_start_ahead(d->measure); /* after the fork: no thread may be forked mid-call */
	/* swtpm overwrites an existing pid file; vtpmd too, but never through a link. */
	if (daemon_write_pid(d->opts.pid_file, d->opts.pid_fd, false, err, sizeof(err)) < 0) {
		log_warnx("%s", err);
		return 1;
	}
	d->pid_written = true;
	if (d->pt)
		log_info("ready: passthrough to %s, filter %s", d->opts.tcti, d->opts.filter);
	else
		log_info("ready: state in %s, state version %llu", d->opts.state_dir,
			 (unsigned long long)state_store_version(d->store));
	return 0;
}

/* After the options, before any file or socket is opened: --chroot, then --runas (swtpm's
 * order, so every path is inside the chroot and every file is made by the new user). The
 * user is looked up first: the chroot needs no /etc/passwd. */
static int confine(struct vtpmd *d)
{
	struct sandbox_user u;
	char err[512];

	if (d->opts.runas && sandbox_resolve_user(d->opts.runas, &u, err, sizeof(err)) < 0)
		goto fail;
	if (d->opts.chroot_dir && sandbox_chroot(d->opts.chroot_dir, err, sizeof(err)) < 0)
		goto fail;
	if (d->opts.runas &&
	    sandbox_drop_privileges(&u, &d->mem, d, sizeof(*d), err, sizeof(err)) < 0)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "vtpmd: %s\n", err);
	return -1;
}

/* Write one libtpms blob as the swtpm file DIR/name; never over an existing file. */
static int export_one(int dirfd, const char *dir, const char *name, const uint8_t *raw, size_t len,
		      const struct swtpm_key *fk)
{
	uint8_t *file = NULL;
	size_t file_len = 0;
	int rc;

	if (swtpm_file_encode(raw, len, fk, &file, &file_len) != SWF_OK) {
		log_warnx("export-swtpm: cannot encode %s", name);
		return -1;
	}
	rc = atomic_file_write_at(dirfd, name, file, file_len, 0600, NULL, NULL);
	OPENSSL_cleanse(file, file_len);
	free(file);
	if (rc != ATOMIC_OK) {
		log_warnx("export-swtpm: cannot write %s/%s: %s", dir, name, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * `vtpmd export-swtpm`: the state in --tpmstate as swtpm 0.7.1's files in --out, encrypted
 * with swtpm's reading of the same --key, so that `swtpm socket --tpmstate dir=OUT [--key
 * ...]` starts the same TPM. Holds the state directory's lock (no vtpmd may run on it);
 * writes nothing in it; refuses an --out that already holds swtpm state.
 */
static int export_swtpm(struct vtpmd *d)
{
	const char *out = d->opts.export_out;
	struct state_store *store = NULL;
	struct state_slot_info info;
	struct state_blobs blobs;
	uint8_t *payload = NULL, *key = d->state_key;
	size_t payload_len = 0;
	char err[512] = "", note[128] = "";
	struct stat st;
	int dirfd = -1, rc = 1;

	if (lock_state_dir(d) != 0)
		return 1;
	if (d->opts.key.source != KEY_NONE) {
		if (state_key_load_swtpm(&d->opts.key, key, &d->sw_file_key, note, sizeof(note),
					 err, sizeof(err)) < 0) {
			log_warnx("%s", err);
			goto out;
		}
		if (!d->sw_file_key.len) {
			log_warnx("export-swtpm: swtpm would not take this --key (%s), so it could "
				  "not read what we write",
				  note);
			goto out;
		}
	}
	if (state_store_open(&store, d->opts.state_dir, d->opts.key.source != KEY_NONE ? key : NULL,
			     0600, NULL, err, sizeof(err)) != 0) {
		log_warnx("export-swtpm: %s", err);
		goto out;
	}
	rc = state_store_load(store, NULL, &payload, &payload_len, &info, err, sizeof(err));
	if (rc != 0) {
		log_warnx("export-swtpm: %s", rc == 1 ? "no vTPM state in the directory" : err);
		rc = 1;
		goto out;
	}
	rc = 1;
	if (err[0])
		log_warnx("%s", err);
	if (state_payload_parse(payload, payload_len, &blobs) != STATE_OK || !blobs.permanent_len) {
		log_warnx("export-swtpm: state version %llu holds no TPM permanent state",
			  (unsigned long long)info.version);
		goto out;
	}
	if (mkdir(out, 0700) < 0 && errno != EEXIST) {
		log_warnx("export-swtpm: cannot create %s: %s", out, strerror(errno));
		goto out;
	}
	dirfd = open(out, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		log_warnx("export-swtpm: cannot open %s: %s", out, strerror(errno));
		goto out;
	}
	if (fstatat(dirfd, SWTPM_PERMALL_NAME, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
	    fstatat(dirfd, SWTPM_VOLATILE_NAME, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		log_warnx("export-swtpm: %s already holds swtpm state; not overwritten (move it "
			  "away first)",
			  out);
		goto out;
	}
	if (blobs.volatile_len &&
	    export_one(dirfd, out, SWTPM_VOLATILE_NAME, blobs.volatile_state, blobs.volatile_len,
		       d->sw_file_key.len ? &d->sw_file_key : NULL) < 0)
		goto out;
	if (export_one(dirfd, out, SWTPM_PERMALL_NAME, blobs.permanent, blobs.permanent_len,
		       d->sw_file_key.len ? &d->sw_file_key : NULL) < 0) {
		if (blobs.volatile_len)
			unlinkat(dirfd, SWTPM_VOLATILE_NAME, 0);
		goto out;
	}
	printf("exported state version %llu of %s to %s: %s%s, %s\n",
	       (unsigned long long)info.version, d->opts.state_dir, out, SWTPM_PERMALL_NAME,
	       blobs.volatile_len ? " and " SWTPM_VOLATILE_NAME : "",
	       d->sw_file_key.len == 32 ? "encrypted for swtpm's --key (AES-256-CBC)"
	       : d->sw_file_key.len	? "encrypted for swtpm's --key (AES-128-CBC)"
					: "plain (no --key)");
	rc = 0;
out:
	if (dirfd >= 0)
		close(dirfd);
	if (payload) {
		OPENSSL_cleanse(payload, payload_len);
		free(payload);
	}
	if (store)
		state_store_close(store);
	OPENSSL_cleanse(key, sizeof(d->state_key));
	OPENSSL_cleanse(&d->sw_file_key, sizeof(d->sw_file_key));
	return rc;
}

int main(int argc, char **argv)
{
	struct sandbox_mem mem;
	struct vtpmd *d;
	char err[512];
	int rc = 1;

	sandbox_nondumpable();
	sandbox_lock_memory(&mem);
	log_init("vtpmd", 2, LOG_LVL_WARN);
	/* All of vtpmd's own buffers (keys, commands, responses) in locked, never-dumped pages;
	 * zeroed, cleansed when freed. */
	d = sandbox_secret_alloc(sizeof(*d));
	if (!d)
		return 1;
	d->mem = mem;
	d->ctrl_listen = d->ctrl_conn = d->data_listen = d->lock_fd = d->sig_fd = d->ready_fd = -1;
	d->ctrl.data_fd = -1;
	d->pair.pidfd = -1;
	if (vtpmd_parse_args(argc, argv, &d->opts, err, sizeof(err)) < 0) {
		fprintf(stderr, "vtpmd: %s\n", err);
		goto out;
	}
	if (d->opts.help) {
		usage(stdout);
		rc = 0;
		goto out;
	}
	if (d->opts.version) {
		uint32_t v = TPMLIB_GetVersion();
		printf("vtpmd %s (swtpm-compatible TPM 2.0 emulator, libtpms %u.%u.%u)\n",
		       VTPMD_VERSION, v >> 16, (v >> 8) & 0xff, v & 0xff);
		rc = 0;
		goto out;
	}
	if (confine(d) < 0)
		goto out;
	if (d->opts.print_states) {
		print_states(&d->opts);
		rc = 0;
		goto out;
	}
	if (d->opts.print_capabilities) {
		rc = print_capabilities();
		goto out;
	}
	if (setup_log(&d->opts) < 0)
		goto out;
	if (d->opts.export_swtpm) {
		rc = export_swtpm(d);
		close_fd(&d->lock_fd);
		goto out;
	}
	rc = start(d);
	/* --daemon: the parent exits now, with rc; the seccomp filter below does not allow the
	 * dup2 that detaches stdio */
	daemon_ready(&d->ready_fd, rc);
	if (rc == 0) {
		sandbox_report_memory(&d->mem);
		if (sandbox_seccomp(d->opts.seccomp, d->opts.passthrough, err, sizeof(err)) < 0) {
			log_warnx("%s", err);
			rc = 1;
		} else {
			sandbox_test_hook();
			rc = run(d);
		}
	}
	cleanup(d);
	sandbox_secret_free(d, sizeof(*d));
	return rc;
out:
	vtpmd_opts_free(&d->opts);
	sandbox_secret_free(d, sizeof(*d));
	return rc;
}
