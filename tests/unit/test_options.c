/* vtpmd's command line: what libvirt and swtpm_setup pass is accepted; the rest is refused
 * with a message that names the problem. Also --key material. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libtpms/tpm_library.h>

#include "common/daemon.h"
#include "common/sock.h"
#include "unit.h"
#include "vtpmd/capabilities.h"
#include "vtpmd/options.h"
#include "vtpmd/sandbox.h"
#include "vtpmd/state_key.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1)

static int parse(int argc, char **argv, struct vtpmd_opts *o, char *err)
{
	return vtpmd_parse_args(argc, argv, o, err, 256);
}

static void test_libvirt_forms(void)
{
	char *libvirt[] = {"swtpm",	  "socket",
			   "--ctrl",	  "type=unixio,path=/run/x.sock,mode=0600",
			   "--tpmstate",  "dir=/var/lib/x,mode=0600",
			   "--log",	  "file=/var/log/x.log",
			   "--terminate", "--tpm2",
			   "--key",	  "pwdfd=7,mode=aes-256-cbc",
			   NULL};
	char *old_libvirt[] = {"swtpm",
			       "socket",
			       "--daemon",
			       "--ctrl",
			       "type=unixio,path=/run/x.sock,mode=0600",
			       "--tpmstate",
			       "dir=/var/lib/x",
			       "--pid",
			       "file=/run/x.pid",
			       "--tpm2",
			       NULL};
	char *setup[] = {"swtpm",
			 "socket",
			 "--flags",
			 "not-need-init,startup-clear",
			 "--tpmstate",
			 "backend-uri=dir:///tmp/s",
			 "--pid",
			 "file=/tmp/p",
			 "--tpm2",
			 "--server",
			 "type=tcp,fd=5",
			 "--ctrl",
			 "type=unixio,clientfd=6",
			 NULL};
	struct vtpmd_opts o;
	char err[256];

	unit_begin("options: libvirt's swtpm command line");
	CHECKF(parse(ARGC(libvirt), libvirt, &o, err) == 0, "%s", err);
	CHECK(o.tpm2 && strcmp(o.state_dir, "/var/lib/x") == 0 && o.state_mode == 0600);
	CHECK(o.ctrl.type == CHAN_UNIX_PATH && strcmp(o.ctrl.path, "/run/x.sock") == 0 &&
	      o.ctrl.mode == 0600);
	CHECK(o.terminate && o.key.source == KEY_PWDFD && o.key.fd == 7 && o.key.bits == 256);
	CHECK(o.log_file && strcmp(o.log_file, "/var/log/x.log") == 0);
	vtpmd_opts_free(&o);
	unit_end();

	unit_begin("options: libvirt < 8.1 adds --daemon and --pid");
	CHECKF(parse(ARGC(old_libvirt), old_libvirt, &o, err) == 0, "%s", err);
	CHECK(o.daemon && o.pid_file && strcmp(o.pid_file, "/run/x.pid") == 0);
	vtpmd_opts_free(&o);
	unit_end();

	unit_begin("options: swtpm_setup's socketpair form");
	CHECKF(parse(ARGC(setup), setup, &o, err) == 0, "%s", err);
	CHECK(o.not_need_init && o.startup == STARTUP_CLEAR);
	CHECK(o.server.type == CHAN_TCP_FD && o.server.fd == 5);
	CHECK(o.ctrl.type == CHAN_UNIX_CLIENTFD && o.ctrl.fd == 6);
	CHECK(strcmp(o.state_dir, "/tmp/s") == 0);
	vtpmd_opts_free(&o);
	unit_end();
}

/* Each case: extra arguments after a valid base, and a word the message must contain. */
static void test_refusals(void)
{
	static const struct {
		const char *a1, *a2, *needle;
	} cases[] = {
	    {"--ctrl", "path=/x", "type="},
	    {"--ctrl", "type=serial,path=/x", "not supported"},
	    {"--ctrl", "type=unixio,path=/x,colour=red", "unknown parameter 'colour'"},
	    {"--ctrl", "type=tcp,port=70000", "port"},
	    {"--ctrl", "type=tcp,port=-1", "port"},
	    {"--ctrl", "type=tcp,port=12x", "port"},
	    {"--ctrl", "type=unixio,fd=99999999", "fd"},
	    {"--ctrl", "type=unixio", "needs path="},
	    {"--ctrl", "type=unixio,path=", "empty"},
	    {"--ctrl", ",,,", "needs parameters"},
	    {"--ctrl", "=x", "empty parameter name"},
	    {"--server", "type=unixio,clientfd=3", "clientfd"},
	    {"--server", "type=tcp,port=1,path=/x", "unixio"},
	    {"--tpmstate", "backend-uri=nbd://x", "backend-uri 'nbd://x' is not supported"},
	    {"--tpmstate", "backend-uri=file://", "file:// needs a path"},
	    {"--tpmstate", "backend-uri=file:///x/", "names a directory"},
	    {"--tpmstate", "backend-uri=file:///x/..", "names a directory"},
	    {"--server", "type=tcp,port=1,ifname=", "ifname is empty"},
	    {"--server", "type=tcp,port=1,bindaddr=", "bindaddr is empty"},
	    {"--server", "type=unixio,path=/x,ifname=lo", "go with type=tcp"},
	    {"--server", "port=12x", "--server port: '12x'"},
	    {"--server", "type=tcp,port=65536", "--server port: 65536 is out of range"},
	    {"--server", "disconnect", "needs port= or fd= (or -p PORT, or TPM_PORT"},
	    {"--ctrl", "type=tcp,ifname=lo", "needs port= or fd="},
	    {"--ctrl", "port=1", "type=unixio or type=tcp is required"},
	    {"-p", "70000", "-p/--port: 70000 is out of range"},
	    {"-p", "", "-p/--port: ''"},
	    {"--port", "-1", "-p/--port: '-1'"},
	    {"-f", "2", "-f/--fd: 2 is out of range (3 to 65535)"},
	    {"--fd", "x", "-f/--fd: 'x'"},
	    {"--log", "file=", "file is empty"},
	    {"--tpmstate", "dir=/x,mode=999", "mode"},
	    {"--key", "file=/k,fd=3", "exactly one"},
	    {"--key", "file=/k,mode=aes-512-xts", "not supported"},
	    {"--key", "file=/k,format=base64", "format"},
	    {"--key", "file=/k,remove=maybe", "true or false"},
	    {"--flags", "not-need-init,fast", "unknown parameter 'fast'"},
	    {"--flags", "startup-clear=1", "takes no value"},
	    {"--uuid", "not-a-uuid", "not a UUID"},
	    {"--runas", "", "--runas: the user is empty"},
	    {"--chroot", "", "--chroot: the directory is empty"},
	    {"--seccomp", "action=trap", "action='trap' is not supported (use kill, log or none)"},
	    {"--seccomp", "mode=kill", "unknown parameter 'mode'"},
	    {"--seccomp", "action", "action='' is not supported"},
	    {"--migration", "incoming", "option --migration is not supported by vtpmd"},
	    {"--profile", "name=default-v1", "option --profile is not supported by vtpmd"},
	    {"--bogus", "x", "unknown option"},
	    {"--manager", "/run/m.sock", "--uuid"},
	    {"--measure-kernel", "", "--measure-kernel: the kernel file is empty"},
	    {"--measure-initrd", "/i", "need --measure-kernel"},
	    {"--measure-append", "quiet", "need --measure-kernel"},
	    {"--eventlog", "/x", "need --measure-kernel"},
	    {"--pair-pid", "0", "--pair-pid"},
	    {"--pair-pid", "12x", "--pair-pid"},
	};
	struct vtpmd_opts o;
	char err[256];
	size_t i;

	unit_begin("options: each bad option is refused with a precise message");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[] = {"vtpmd",
				"socket",
				"--tpm2",
				"--tpmstate",
				"dir=/s",
				"--ctrl",
				"type=unixio,path=/c",
				(char *)cases[i].a1,
				(char *)cases[i].a2,
				NULL};
		int rc = parse(ARGC(argv), argv, &o, err);
		CHECKF(rc < 0 && strstr(err, cases[i].needle), "%s %s: rc %d, message '%s'",
		       cases[i].a1, cases[i].a2, rc, rc < 0 ? err : "");
		vtpmd_opts_free(&o);
	}
	unit_end();

	unit_begin("options: missing essentials");
	{
		char *no_tpm2[] = {"vtpmd",  "socket",		"--tpmstate", "dir=/s",
				   "--ctrl", "type=tcp,port=1", NULL};
		char *no_dir[] = {"vtpmd", "socket", "--tpm2", "--ctrl", "type=tcp,port=1", NULL};
		char *no_chan[] = {"vtpmd", "socket", "--tpm2", "--tpmstate", "dir=/s", NULL};
		char *cuse[] = {"vtpmd", "cuse", "--tpm2", NULL};
		char *stray[] = {"vtpmd",  "socket",	      "--tpm2", "--tpmstate", "dir=/s",
				 "--ctrl", "type=tcp,port=1", "extra",	NULL};
		CHECK(parse(ARGC(no_tpm2), no_tpm2, &o, err) < 0 && strstr(err, "TPM 2.0 only"));
		vtpmd_opts_free(&o);
		CHECK(parse(ARGC(no_dir), no_dir, &o, err) < 0 && strstr(err, "--tpmstate"));
		vtpmd_opts_free(&o);
		CHECK(parse(ARGC(no_chan), no_chan, &o, err) < 0 && strstr(err, "--ctrl"));
		vtpmd_opts_free(&o);
		CHECK(parse(ARGC(cuse), cuse, &o, err) < 0 && strstr(err, "cuse") &&
		      strstr(err, "Unsupported TPM interface"));
		vtpmd_opts_free(&o);
		CHECK(parse(ARGC(stray), stray, &o, err) < 0 && strstr(err, "extra"));
		vtpmd_opts_free(&o);
	}
	unit_end();
}

/* swtpm's sandbox options: --seccomp action=, -r/--runas, -R/--chroot (swtpm 0.7.1/0.8). */
static void test_sandbox_options(void)
{
	char *base[] = {"vtpmd",  "socket", "--tpm2",	       "--tpmstate",
			"dir=/s", "--ctrl", "type=tcp,port=1", NULL};
	char *all[] = {"vtpmd",	 "socket",	    "--tpm2",	     "--tpmstate", "dir=/s",
		       "--ctrl", "type=tcp,port=1", "--seccomp",     "action=log", "--runas",
		       "tss",	 "--chroot",	    "/var/lib/vtpm", NULL};
	char *shorts[] = {"vtpmd",  "socket",	       "--tpm2",      "--tpmstate", "dir=/s",
			  "--ctrl", "type=tcp,port=1", "-r",	      "65534",	    "-R",
			  "/c",	    "--seccomp",       "action=none", "--seccomp",  "action=kill",
			  NULL};
	char *none[] = {"vtpmd",  "socket",	     "--tpm2",	  "--tpmstate",	 "dir=/s",
			"--ctrl", "type=tcp,port=1", "--seccomp", "action=none", NULL};
	struct vtpmd_opts o;
	char err[256];

	unit_begin("options: the seccomp filter is on (kill) by default, as in swtpm");
	CHECKF(parse(ARGC(base), base, &o, err) == 0, "%s", err);
	CHECK(o.seccomp == SECCOMP_ACTION_KILL && !o.runas && !o.chroot_dir);
	vtpmd_opts_free(&o);
	CHECKF(parse(ARGC(none), none, &o, err) == 0, "%s", err);
	CHECK(o.seccomp == SECCOMP_ACTION_NONE);
	vtpmd_opts_free(&o);
	unit_end();

	unit_begin("options: --seccomp action=log, --runas tss, --chroot DIR are accepted");
	CHECKF(parse(ARGC(all), all, &o, err) == 0, "%s", err);
	CHECK(o.seccomp == SECCOMP_ACTION_LOG);
	CHECK(o.runas && strcmp(o.runas, "tss") == 0);
	CHECK(o.chroot_dir && strcmp(o.chroot_dir, "/var/lib/vtpm") == 0);
	vtpmd_opts_free(&o);
	unit_end();

	unit_begin("options: -r and -R (swtpm's short forms); the last --seccomp wins");
	CHECKF(parse(ARGC(shorts), shorts, &o, err) == 0, "%s", err);
	CHECK(o.runas && strcmp(o.runas, "65534") == 0);
	CHECK(o.chroot_dir && strcmp(o.chroot_dir, "/c") == 0);
	CHECK(o.seccomp == SECCOMP_ACTION_KILL);
	vtpmd_opts_free(&o);
	unit_end();
}

/* The files vtpmd writes are never opened through a link; its sockets are 0600 by default. */
static void test_file_paths(void)
{
	char dir[] = "/tmp/vtpm-test-options.XXXXXX", path[256], link[256], fifo[256], sock[256];
	char err[256];
	struct stat st;
	mode_t um;
	int fd;

	unit_begin("paths: a symbolic link or a FIFO is refused; a regular file opens");
	if (!CHECK(mkdtemp(dir) != NULL))
		goto out;
	snprintf(path, sizeof(path), "%s/target", dir);
	snprintf(link, sizeof(link), "%s/link", dir);
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	snprintf(sock, sizeof(sock), "%s/s.sock", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	CHECK(fd >= 0 && write(fd, "x", 1) == 1);
	if (fd >= 0)
		close(fd);
	CHECK(symlink(path, link) == 0 && mkfifo(fifo, 0600) == 0);
	CHECK(daemon_open_nofollow("log file", link, O_WRONLY | O_CREAT | O_TRUNC, 0600, true, err,
				   sizeof(err)) < 0 &&
	      strstr(err, "refusing the log file") && strstr(err, "symbolic link"));
	CHECK(stat(path, &st) == 0 && st.st_size == 1); /* O_TRUNC did not reach the target */
	CHECK(daemon_open_nofollow("pid file", fifo, O_WRONLY | O_CREAT | O_TRUNC, 0600, false, err,
				   sizeof(err)) < 0 &&
	      strstr(err, "not a regular file"));
	fd = daemon_open_nofollow("pid file", path, O_WRONLY | O_CREAT | O_TRUNC, 0600, false, err,
				  sizeof(err));
	CHECKF(fd >= 0 && (fcntl(fd, F_GETFD) & FD_CLOEXEC) && !(fcntl(fd, F_GETFL) & O_NONBLOCK),
	       "%s", err);
	if (fd >= 0)
		close(fd);
	unit_end();

	unit_begin("sock: a unix socket without mode= is 0600 whatever the umask; mode= is exact");
	um = umask(0);
	fd = sock_listen_unix(sock, 0, (uid_t)-1, (gid_t)-1, err, sizeof(err));
	CHECKF(fd >= 0 && stat(sock, &st) == 0 && (st.st_mode & 0777) == 0600, "%s mode %o", err,
	       (unsigned)(st.st_mode & 0777));
	if (fd >= 0)
		close(fd);
	umask(077);
	fd = sock_listen_unix(sock, 0660, (uid_t)-1, (gid_t)-1, err, sizeof(err));
	CHECKF(fd >= 0 && stat(sock, &st) == 0 && (st.st_mode & 0777) == 0660, "%s mode %o", err,
	       (unsigned)(st.st_mode & 0777));
	if (fd >= 0)
		close(fd);
	CHECK(umask(um) == 077); /* the caller's umask is restored */
	unit_end();
out:
	unlink(sock);
	unlink(fifo);
	unlink(link);
	unlink(path);
	rmdir(dir);
}

static void test_loopback_only(void)
{
	char err[256];

	unit_begin("sock: TCP listens on loopback addresses only");
	CHECK(sock_addr_is_loopback("127.0.0.1") && sock_addr_is_loopback("127.9.9.9") &&
	      sock_addr_is_loopback("::1") && sock_addr_is_loopback("localhost"));
	CHECK(!sock_addr_is_loopback("0.0.0.0") && !sock_addr_is_loopback("10.0.0.1") &&
	      !sock_addr_is_loopback("::") && !sock_addr_is_loopback("example.org") &&
	      !sock_addr_is_loopback(""));
	CHECK(sock_listen_tcp("0.0.0.0", 0, err, sizeof(err)) < 0 && strstr(err, "loopback"));
	unit_end();
}

static void test_keys(void)
{
	struct key_opts k = {.source = KEY_FILE, .bits = 256, .hex = true};
	static const char hex64[] =
	    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
	uint8_t a[32], b[32];
	char err[256];

	unit_begin("keys: hex key with newline; wrong lengths and bad digits refused");
	CHECKF(state_key_derive(&k, (const uint8_t *)hex64, strlen(hex64), a, err, sizeof(err)) ==
		   0,
	       "%s", err);
	CHECK(state_key_derive(&k, (const uint8_t *)hex64, 40, b, err, sizeof(err)) < 0 &&
	      strstr(err, "32-byte"));
	CHECK(state_key_derive(&k, (const uint8_t *)"zz", 2, b, err, sizeof(err)) < 0 &&
	      strstr(err, "not hex"));
	unit_end();

	unit_begin("keys: binary key length must match mode; hint at format=hex");
	k.hex = false;
	CHECK(state_key_derive(&k, (const uint8_t *)hex64, 32, b, err, sizeof(err)) == 0);
	CHECK(memcmp(a, b, 32) != 0);
	k.bits = 128;
	CHECK(state_key_derive(&k, (const uint8_t *)hex64, 64, b, err, sizeof(err)) < 0 &&
	      strstr(err, "format=hex"));
	CHECK(state_key_derive(&k, (const uint8_t *)hex64, 16, b, err, sizeof(err)) == 0);
	unit_end();

	unit_begin("keys: passphrases derive stable, distinct keys; empty refused");
	k.source = KEY_PWDFILE;
	k.kdf_pbkdf2 = true;
	CHECK(state_key_derive(&k, (const uint8_t *)"secret", 6, a, err, sizeof(err)) == 0);
	CHECK(state_key_derive(&k, (const uint8_t *)"secret", 6, b, err, sizeof(err)) == 0 &&
	      memcmp(a, b, 32) == 0);
	CHECK(state_key_derive(&k, (const uint8_t *)"secreT", 6, b, err, sizeof(err)) == 0 &&
	      memcmp(a, b, 32) != 0);
	k.kdf_pbkdf2 = false;
	CHECK(state_key_derive(&k, (const uint8_t *)"secret", 6, b, err, sizeof(err)) == 0 &&
	      memcmp(a, b, 32) != 0);
	CHECK(state_key_derive(&k, (const uint8_t *)"", 0, b, err, sizeof(err)) < 0);
	unit_end();
}

static void test_passthrough(void)
{
	static const struct {
		const char *args[10];
		const char *msg;
	} bad[] = {
	    {{"passthrough", "--filter", "f", "--server", "type=tcp,port=1"}, "--tcti is required"},
	    {{"passthrough", "--tcti", "device:/dev/tpmrm0", "--server", "type=tcp,port=1"},
	     "--filter FILE is required"},
	    {{"passthrough", "--tcti", "t", "--filter", "f", "--tpmstate", "dir=/tmp",
	      "--server=type=tcp,port=1"},
	     "do not apply"},
	    {{"passthrough", "--tcti", "t", "--filter", "f", "--flags", "not-need-init",
	      "--server=type=tcp,port=1"},
	     "--flags does not apply"},
	    {{"passthrough", "--tcti", "t", "--filter", "f"}, "no channel to serve"},
	    {{"passthrough", "--tcti", "", "--filter", "f"}, "--tcti: the TCTI is empty"},
	    {{"socket", "--tpm2", "--tpmstate", "dir=/tmp", "--tcti", "t", "--server",
	      "type=tcp,port=1"},
	     "go with 'vtpmd passthrough'"},
	};
	struct vtpmd_opts o;
	char err[512], *argv[12];
	size_t i, n;

	unit_begin("options: passthrough needs --tcti and --filter and refuses state options");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		argv[0] = (char *)"vtpmd";
		for (n = 0; bad[i].args[n]; n++)
			argv[n + 1] = (char *)bad[i].args[n];
		argv[n + 1] = NULL;
		err[0] = '\0';
		CHECKF(parse((int)n + 1, argv, &o, err) < 0 && strstr(err, bad[i].msg),
		       "case %zu: err '%s'", i, err);
		vtpmd_opts_free(&o);
	}
	unit_end();

	unit_begin("options: a passthrough command line");
	{
		char *ok[] = {(char *)"vtpmd",	     (char *)"passthrough",
			      (char *)"--tcti",	     (char *)"device:/dev/tpmrm0",
			      (char *)"--filter",    (char *)"/etc/vtpm/passthrough.filter",
			      (char *)"--ctrl",	     (char *)"type=unixio,path=/run/x.sock",
			      (char *)"--terminate", NULL};
		if (CHECKF(parse(9, ok, &o, err) == 0, "%s", err))
			CHECK(o.passthrough && strcmp(o.tcti, "device:/dev/tpmrm0") == 0 &&
			      strcmp(o.filter, "/etc/vtpm/passthrough.filter") == 0 && o.terminate);
		vtpmd_opts_free(&o);
	}
	unit_end();
}

/* swtpm 0.7.1's forms beyond libvirt's: --server without type= (TCP), -p, -f, TPM_PORT,
 * TPM_PATH, backend-uri=file://, --ctrl type=tcp,fd= (a listening socket). */
static void test_swtpm_071_forms(void)
{
	char *tss[] = {"swtpm",
		       "socket",
		       "--tpm2",
		       "--server",
		       "port=2321",
		       "--ctrl",
		       "type=tcp,port=2322",
		       "--flags",
		       "not-need-init",
		       "--tpmstate",
		       "dir=/s",
		       NULL};
	char *v6[] = {"vtpmd",	"--tpm2",   "--tpmstate",
		      "dir=/s", "--server", "type=tcp,port=7,bindaddr=::1,ifname=lo",
		      NULL};
	char *env_port[] = {"vtpmd",	"--tpm2",     "--tpmstate", "dir=/s",
			    "--server", "disconnect", NULL};
	char *p_only[] = {"vtpmd", "--tpm2", "--tpmstate",	   "dir=/s", "-p",
			  "2321",  "--ctrl", "type=tcp,port=2322", NULL};
	char *p_then_server[] = {"vtpmd", "--tpm2",   "--tpmstate", "dir=/s", "-p",
				 "9",	  "--server", "type=tcp",   NULL};
	char *server_then_p[] = {"vtpmd",	    "--tpm2", "--tpmstate", "dir=/s", "--server",
				 "type=tcp,port=5", "--port", "6",	    NULL};
	char *server_port_wins[] = {"vtpmd", "--tpm2",	 "--tpmstate", "dir=/s", "-p",
				    "5",     "--server", "port=7",     NULL};
	char *fd[] = {"vtpmd", "--tpm2", "--tpmstate", "dir=/s", "--fd", "5", NULL};
	char *fd_and_server[] = {"vtpmd", "--tpm2",   "--tpmstate", "dir=/s", "-f",
				 "5",	  "--server", "port=1",	    NULL};
	char *ctrl_fd[] = {"vtpmd",  "--tpm2",	      "--tpmstate", "dir=/s",
			   "--ctrl", "type=tcp,fd=7", NULL};
	char *no_state[] = {"vtpmd", "--tpm2", "--ctrl", "type=tcp,port=1", NULL};
	char *states_env[] = {"vtpmd", "--print-states", "--tpm2", NULL};
	char *file_abs[] = {"vtpmd",	  "--tpm2",
			    "--tpmstate", "backend-uri=file:///var/lib/x/tpm.img,mode=0640",
			    "--ctrl",	  "type=tcp,port=1",
			    NULL};
	char *file_rel[] = {"vtpmd",  "--tpm2",		 "--tpmstate", "backend-uri=file://tpm.img",
			    "--ctrl", "type=tcp,port=1", NULL};
	char *file_root[] = {"vtpmd",  "--tpm2",	  "--tpmstate", "backend-uri=file:///tpm",
			     "--ctrl", "type=tcp,port=1", NULL};
	char *dir_wins[] = {
	    "vtpmd",  "--tpm2",		 "--tpmstate", "dir=/d,backend-uri=file:///f",
	    "--ctrl", "type=tcp,port=1", NULL};
	char *file_then_dir[] = {"vtpmd",      "--tpm2",
				 "--tpmstate", "backend-uri=file:///f",
				 "--tpmstate", "backend-uri=dir:///d",
				 "--ctrl",     "type=tcp,port=1",
				 NULL};
	char *log_off[] = {"vtpmd",	      "--tpm2", "--tpmstate",	   "dir=/s", "--ctrl",
			   "type=tcp,port=1", "--log",	"file=-,level=20", NULL};
	struct vtpmd_opts o;
	char err[256];

	unsetenv("TPM_PORT");
	unsetenv("TPM_PATH");
	unit_begin("options: --server port=N without type= is TCP on 127.0.0.1 (tpm2-tss/tools)");
	CHECKF(parse(ARGC(tss), tss, &o, err) == 0, "%s", err);
	CHECK(o.server.type == CHAN_TCP_PORT && o.server.port == 2321 &&
	      strcmp(o.server.bindaddr, "127.0.0.1") == 0 && !o.server.disconnect);
	CHECK(o.ctrl.type == CHAN_TCP_PORT && o.ctrl.port == 2322 && o.not_need_init);
	vtpmd_opts_free(&o);
	CHECKF(parse(ARGC(v6), v6, &o, err) == 0, "%s", err);
	CHECK(o.server.type == CHAN_TCP_PORT && o.server.port == 7 &&
	      strcmp(o.server.bindaddr, "::1") == 0);
	vtpmd_opts_free(&o);
	unit_end();

	unit_begin("options: TPM_PORT is the --server port when port= and -p are absent");
	setenv("TPM_PORT", "4000", 1);
	CHECKF(parse(ARGC(env_port), env_port, &o, err) == 0, "%s", err);
	CHECK(o.server.type == CHAN_TCP_PORT && o.server.port == 4000 && o.server.disconnect);
	vtpmd_opts_free(&o);
	CHECKF(parse(ARGC(tss), tss, &o, err) == 0 && o.server.port == 2321, "%s", err);
	vtpmd_opts_free(&o);
	setenv("TPM_PORT", "40x", 1);
	CHECKF(parse(ARGC(env_port), env_port, &o, err) < 0 && strstr(err, "TPM_PORT") &&
		   strstr(err, "'40x'"),
	       "%s", err);
	vtpmd_opts_free(&o);
	setenv("TPM_PORT", "65536", 1);
	CHECKF(parse(ARGC(env_port), env_port, &o, err) < 0 && strstr(err, "TPM_PORT") &&
		   strstr(err, "out of range"),
	       "%s", err);
	vtpmd_opts_free(&o);
	unsetenv("TPM_PORT");
	unit_end();

	unit_begin("options: -p PORT is --server type=tcp,port=PORT,disconnect; the last wins");
	CHECKF(parse(ARGC(p_only), p_only, &o, err) == 0, "%s", err);
	CHECK(o.server.type == CHAN_TCP_PORT && o.server.port == 2321 && o.server.disconnect);
	vtpmd_opts_free(&o);
	CHECKF(parse(ARGC(p_then_server), p_then_server, &o, err) == 0, "%s", err);
	CHECK(o.server.type == CHAN_TCP_PORT && o.server.port == 9 && !o.server.disconnect);
	vtpmd_opts_free(&o);
	CHECKF(parse(ARGC(server_then_p), server_then_p, &o, err) == 0, "%s", err);
	CHECK(o.server.type == CHAN_TCP_PORT && o.server.port == 6 && o.server.disconnect);
	vtpmd_opts_free(&o);
	CHECKF(parse(ARGC(server_port_wins), server_port_wins, &o, err) == 0, "%s", err);
	CHECK(o.server.port == 7);
	vtpmd_opts_free(&o);
	unit_end();

	unit_begin("options: -f/--fd N is a connected data socket; --ctrl type=tcp,fd= listens");
	CHECKF(parse(ARGC(fd), fd, &o, err) == 0, "%s", err);
	CHECK(o.server.type == CHAN_TCP_FD && o.server.fd == 5 && o.ctrl.type == CHAN_NONE);
	vtpmd_opts_free(&o);
	CHECKF(parse(ARGC(fd_and_server), fd_and_server, &o, err) < 0 &&
		   strstr(err, "-f/--fd and --server exclude each other"),
	       "%s", err);
	vtpmd_opts_free(&o);
	CHECKF(parse(ARGC(ctrl_fd), ctrl_fd, &o, err) == 0, "%s", err);
	CHECK(o.ctrl.type == CHAN_TCP_LISTEN_FD && o.ctrl.fd == 7);
	vtpmd_opts_free(&o);
	unit_end();

	unit_begin("options: TPM_PATH is the state directory when --tpmstate is absent");
	CHECKF(parse(ARGC(no_state), no_state, &o, err) < 0 && strstr(err, "TPM_PATH"), "%s", err);
	vtpmd_opts_free(&o);
	setenv("TPM_PATH", "/var/lib/tpm", 1);
	CHECKF(parse(ARGC(no_state), no_state, &o, err) == 0, "%s", err);
	CHECK(o.state_dir && strcmp(o.state_dir, "/var/lib/tpm") == 0 && o.state_from_env &&
	      !o.state_name);
	vtpmd_opts_free(&o);
	CHECKF(parse(ARGC(tss), tss, &o, err) == 0, "%s", err);
	CHECK(strcmp(o.state_dir, "/s") == 0 && !o.state_from_env); /* --tpmstate wins */
	vtpmd_opts_free(&o);
	/* swtpm 0.7.1: --print-states wants --tpmstate itself */
	CHECKF(parse(ARGC(states_env), states_env, &o, err) < 0 && strstr(err, "--tpmstate"), "%s",
	       err);
	vtpmd_opts_free(&o);
	setenv("TPM_PATH", "", 1);
	CHECKF(parse(ARGC(no_state), no_state, &o, err) < 0 && strstr(err, "TPM_PATH"), "%s", err);
	vtpmd_opts_free(&o);
	unsetenv("TPM_PATH");
	unit_end();

	unit_begin("options: --tpmstate backend-uri=file://PATH is one state file");
	CHECKF(parse(ARGC(file_abs), file_abs, &o, err) == 0, "%s", err);
	CHECK(strcmp(o.state_dir, "/var/lib/x") == 0 && o.state_name &&
	      strcmp(o.state_name, "tpm.img") == 0 && o.state_mode == 0640);
	vtpmd_opts_free(&o);
	CHECKF(parse(ARGC(file_rel), file_rel, &o, err) == 0, "%s", err);
	CHECK(strcmp(o.state_dir, ".") == 0 && strcmp(o.state_name, "tpm.img") == 0);
	vtpmd_opts_free(&o);
	CHECKF(parse(ARGC(file_root), file_root, &o, err) == 0, "%s", err);
	CHECK(strcmp(o.state_dir, "/") == 0 && strcmp(o.state_name, "tpm") == 0);
	vtpmd_opts_free(&o);
	CHECKF(parse(ARGC(dir_wins), dir_wins, &o, err) == 0, "%s", err);
	CHECK(strcmp(o.state_dir, "/d") == 0 && !o.state_name);
	vtpmd_opts_free(&o);
	CHECKF(parse(ARGC(file_then_dir), file_then_dir, &o, err) == 0, "%s", err);
	CHECK(strcmp(o.state_dir, "/d") == 0 && !o.state_name);
	vtpmd_opts_free(&o);
	unit_end();

	unit_begin("options: --log file=- turns logging off (swtpm)");
	CHECKF(parse(ARGC(log_off), log_off, &o, err) == 0, "%s", err);
	CHECK(o.log_off && !o.log_file && o.log_level == 20);
	vtpmd_opts_free(&o);
	unit_end();
}

/* --print-capabilities: swtpm 0.7.1's line; RSA key sizes from libtpms. */
static void test_capabilities(void)
{
	static const char swtpm071[] =
	    "{ \"type\": \"swtpm\", \"features\": [ \"tpm-2.0\", \"tpm-send-command-header\", "
	    "\"flags-opt-startup\", \"cmdarg-seccomp\", \"cmdarg-key-fd\", \"cmdarg-pwd-fd\", "
	    "\"cmdarg-print-states\", \"nvram-backend-dir\", \"nvram-backend-file\", "
	    "\"rsa-keysize-1024\", \"rsa-keysize-2048\", \"rsa-keysize-3072\" ], \"version\": "
	    "\"9.9\" }";
	static const char *const bad[] = {
	    "{\"RSAKeySizes\":[1024,2048",
	    "{\"RSAKeySizes\":[1024,,2048]}",
	    "{\"RSAKeySizes\":[1024,]}",
	    "{\"RSAKeySizes\":[10x]}",
	    "{\"RSAKeySizes\":[-1]}",
	    "{\"RSAKeySizes\":[99999999999999999]}",
	    "{\"RSAKeySizes\":[1,2,3,4,5,6,7,8,9]}",
	};
	uint32_t sizes[CAPS_MAX_RSA_SIZES];
	char line[1024], err[256], *info;
	size_t i;
	int n;

	unit_begin("caps: RSA key sizes are read from libtpms' feature list");
	n = caps_rsa_key_sizes("{\"TPMFeatures\":{\"RSAKeySizes\":[1024,2048,3072],"
			       "\"CamelliaKeySizes\":[128,256]}}",
			       sizes, CAPS_MAX_RSA_SIZES, err, sizeof(err));
	CHECKF(n == 3 && sizes[0] == 1024 && sizes[1] == 2048 && sizes[2] == 3072, "%d %s", n, err);
	CHECK(caps_rsa_key_sizes("{}", sizes, CAPS_MAX_RSA_SIZES, err, sizeof(err)) == 0);
	CHECK(caps_rsa_key_sizes(NULL, sizes, CAPS_MAX_RSA_SIZES, err, sizeof(err)) == 0);
	CHECK(caps_rsa_key_sizes("{\"RSAKeySizes\":[]}", sizes, CAPS_MAX_RSA_SIZES, err,
				 sizeof(err)) == 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECKF(caps_rsa_key_sizes(bad[i], sizes, CAPS_MAX_RSA_SIZES, err, sizeof(err)) <
			       0 &&
			   strstr(err, "libtpms info"),
		       "'%s' accepted", bad[i]);
	unit_end();

	unit_begin("caps: the line is swtpm 0.7.1's, feature for feature, in its order");
	CHECK(caps_json(line, sizeof(line), sizes, 0, "9.9") == 0);
	sizes[0] = 1024, sizes[1] = 2048, sizes[2] = 3072;
	CHECK(caps_json(line, sizeof(line), sizes, 3, "9.9") == 0);
	CHECKF(strcmp(line, swtpm071) == 0, "%s", line);
	CHECK(caps_json(line, 100, sizes, 3, "9.9") < 0);
	unit_end();

	unit_begin("caps: this libtpms supports RSA 3072 (swtpm_setup --rsa-keysize 3072)");
	CHECK(TPMLIB_ChooseTPMVersion(TPMLIB_TPM_VERSION_2) == 0);
	info = TPMLIB_GetInfo(TPMLIB_INFO_TPMFEATURES);
	n = caps_rsa_key_sizes(info, sizes, CAPS_MAX_RSA_SIZES, err, sizeof(err));
	CHECKF(n >= 2 && sizes[n - 1] == 3072, "libtpms says %s", info ? info : "(null)");
	free(info);
	unit_end();
}

int main(void)
{
	test_passthrough();
	unsetenv("TPM_PORT");
	unsetenv("TPM_PATH");
	test_libvirt_forms();
	test_refusals();
	test_swtpm_071_forms();
	test_capabilities();
	test_sandbox_options();
	test_file_paths();
	test_loopback_only();
	test_keys();
	return unit_exit();
}
