#include "vtpmd/options.h"

#include "common/mgr_proto.h"
#include "common/parse_num.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/errmsg.h"

#define MAX_KV 16

struct kv {
	char *key;
	char *val; /* NULL for a bare flag such as "terminate" */
};

struct kvlist {
	char *copy;
	struct kv kv[MAX_KV];
	size_t n;
};

/* Split "a=1,b,c=3" in place. */
static int kv_split(const char *opt, const char *s, struct kvlist *l, char *err, size_t errlen)
{
	char *p, *save = NULL, *tok;

	memset(l, 0, sizeof(*l));
	l->copy = strdup(s);
	if (!l->copy)
		return errmsg(err, errlen, "out of memory");
	for (tok = strtok_r(l->copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (l->n == MAX_KV)
			return errmsg(err, errlen, "%s: too many parameters", opt);
		p = strchr(tok, '=');
		if (p)
			*p++ = '\0';
		if (!*tok)
			return errmsg(err, errlen, "%s: empty parameter name in '%s'", opt, s);
		l->kv[l->n].key = tok;
		l->kv[l->n].val = p;
		l->n++;
	}
	if (!l->n)
		return errmsg(err, errlen, "%s: needs parameters", opt);
	return 0;
}

static void kv_free(struct kvlist *l)
{
	free(l->copy);
	l->copy = NULL;
}

/* Every key must be one of the space-separated names in known. */
static int kv_check(const char *opt, const struct kvlist *l, const char *known, char *err,
		    size_t errlen)
{
	size_t i, klen;
	const char *p;

	for (i = 0; i < l->n; i++) {
		klen = strlen(l->kv[i].key);
		for (p = known; (p = strstr(p, l->kv[i].key)); p += klen)
			if ((p == known || p[-1] == ' ') && (p[klen] == ' ' || p[klen] == '\0'))
				break;
		if (!p)
			return errmsg(err, errlen, "%s: unknown parameter '%s' (known: %s)", opt,
				      l->kv[i].key, known);
	}
	return 0;
}

static const char *kv_get(const struct kvlist *l, const char *key)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->kv[i].key, key) == 0)
			return l->kv[i].val ? l->kv[i].val : "";
	return NULL;
}

static bool kv_has(const struct kvlist *l, const char *key)
{
	return kv_get(l, key) != NULL;
}

/* The number of parameter key of option opt, 0..max (parse_num.h); messages name both
 * ("--ctrl port: ..."). */
static int parse_param(const char *opt, const char *key, const char *s, enum num_base base,
		       uint32_t max, uint32_t *out, char *err, size_t errlen)
{
	char name[64];

	snprintf(name, sizeof(name), "%s %s", opt, key);
	return parse_num_u32(name, s, base, 0, max, out, err, errlen);
}

static int parse_fd(const char *opt, const char *s, int *fd, char *err, size_t errlen)
{
	uint32_t v;

	if (parse_param(opt, "fd", s, NUM_DEC, 65535, &v, err, errlen) < 0)
		return -1;
	*fd = (int)v;
	return 0;
}

static int parse_mode(const char *opt, const char *s, mode_t *mode, char *err, size_t errlen)
{
	uint32_t v;

	if (parse_param(opt, "mode", s, NUM_OCT, 0777, &v, err, errlen) < 0)
		return -1;
	*mode = (mode_t)v;
	return 0;
}

static int parse_bool(const char *opt, const char *key, const char *s, bool *out, char *err,
		      size_t errlen)
{
	if (!*s || strcmp(s, "true") == 0 || strcmp(s, "1") == 0) {
		*out = true;
		return 0;
	}
	if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0) {
		*out = false;
		return 0;
	}
	return errmsg(err, errlen, "%s: %s='%s' must be true or false", opt, key, s);
}

static int dup_str(char **dst, const char *s, char *err, size_t errlen)
{
	free(*dst);
	*dst = strdup(s);
	return *dst ? 0 : errmsg(err, errlen, "out of memory");
}

/* Where a --server TCP port comes from when port= is absent (swtpm: -p, else $TPM_PORT). */
struct port_fallback {
	const char *val;  /* NULL: none */
	const char *what; /* names it in messages: "-p/--port", "TPM_PORT" */
};

/* --ctrl and --server share one syntax. --server's type defaults to tcp (swtpm's default);
 * --ctrl needs a type. */
static int parse_chan(const char *opt, const char *arg, bool is_ctrl,
		      const struct port_fallback *pf, struct chan_opts *c, char *err, size_t errlen)
{
	const char *known = is_ctrl ? "type path mode uid gid port bindaddr ifname fd clientfd "
				      "terminate"
				    : "type path mode uid gid port bindaddr ifname fd disconnect";
	struct kvlist l;
	const char *type, *v;
	uint32_t n;
	int rc = -1;

	if (kv_split(opt, arg, &l, err, errlen) < 0 || kv_check(opt, &l, known, err, errlen) < 0)
		goto out;
	/* A repeated option replaces the earlier one. */
	free(c->path);
	free(c->bindaddr);
	memset(c, 0, sizeof(*c));
	c->uid = (uid_t)-1;
	c->gid = (gid_t)-1;
	c->fd = -1;
	type = kv_get(&l, "type");
	if (!type && is_ctrl) {
		errmsg(err, errlen, "%s: type=unixio or type=tcp is required", opt);
		goto out;
	}
	if (!type)
		type = "tcp";
	if (strcmp(type, "unixio") == 0) {
		if ((v = kv_get(&l, "path"))) {
			c->type = CHAN_UNIX_PATH;
			if (!*v) {
				errmsg(err, errlen, "%s: path is empty", opt);
				goto out;
			}
			if (dup_str(&c->path, v, err, errlen) < 0)
				goto out;
		} else if ((v = kv_get(&l, "fd"))) {
			c->type = CHAN_UNIX_FD;
			if (parse_fd(opt, v, &c->fd, err, errlen) < 0)
				goto out;
		} else if (is_ctrl && (v = kv_get(&l, "clientfd"))) {
			c->type = CHAN_UNIX_CLIENTFD;
			if (parse_fd(opt, v, &c->fd, err, errlen) < 0)
				goto out;
		} else {
			errmsg(err, errlen, "%s: type=unixio needs path=, fd=%s", opt,
			       is_ctrl ? " or clientfd=" : "");
			goto out;
		}
		if (kv_has(&l, "port") || kv_has(&l, "bindaddr") || kv_has(&l, "ifname")) {
			errmsg(err, errlen, "%s: port, bindaddr and ifname go with type=tcp", opt);
			goto out;
		}
	} else if (strcmp(type, "tcp") == 0) {
		if ((v = kv_get(&l, "fd"))) {
			/* swtpm: a connected socket for the data channel, a listening one for the
			 * control channel */
			c->type = is_ctrl ? CHAN_TCP_LISTEN_FD : CHAN_TCP_FD;
			if (parse_fd(opt, v, &c->fd, err, errlen) < 0)
				goto out;
		} else {
			const char *what = NULL; /* NULL: port= */

			c->type = CHAN_TCP_PORT;
			v = kv_get(&l, "port");
			if (!v && pf && pf->val) {
				v = pf->val;
				what = pf->what;
			}
			if (!v) {
				errmsg(err, errlen, "%s: type=tcp needs port= or fd=%s", opt,
				       is_ctrl ? ""
					       : " (or -p PORT, or TPM_PORT in the environment)");
				goto out;
			}
			if (what ? parse_num_u32(what, v, NUM_DEC, 0, 65535, &n, err, errlen) < 0
				 : parse_param(opt, "port", v, NUM_DEC, 65535, &n, err, errlen) < 0)
				goto out;
			c->port = (uint16_t)n;
		}
		/* ifname only matters for an IPv6 link-local bindaddr, which the loopback rule
		 * refuses anyway: accepted and checked, as swtpm accepts it. */
		if ((v = kv_get(&l, "ifname")) && !*v) {
			errmsg(err, errlen, "%s: ifname is empty", opt);
			goto out;
		}
		if ((v = kv_get(&l, "bindaddr")) && !*v) {
			errmsg(err, errlen, "%s: bindaddr is empty", opt);
			goto out;
		}
		if (dup_str(&c->bindaddr, v ? v : "127.0.0.1", err, errlen) < 0)
			goto out;
		if (kv_has(&l, "path") || kv_has(&l, "mode") || kv_has(&l, "clientfd")) {
			errmsg(err, errlen, "%s: path, mode and clientfd go with type=unixio", opt);
			goto out;
		}
	} else {
		errmsg(err, errlen, "%s: type='%s' is not supported (use unixio or tcp)", opt,
		       type);
		goto out;
	}
	if ((v = kv_get(&l, "mode")) && parse_mode(opt, v, &c->mode, err, errlen) < 0)
		goto out;
	if ((v = kv_get(&l, "uid"))) {
		if (parse_param(opt, "uid", v, NUM_DEC, 0xfffffffe, &n, err, errlen) < 0)
			goto out;
		c->uid = (uid_t)n;
	}
	if ((v = kv_get(&l, "gid"))) {
		if (parse_param(opt, "gid", v, NUM_DEC, 0xfffffffe, &n, err, errlen) < 0)
			goto out;
		c->gid = (gid_t)n;
	}
	c->terminate = kv_has(&l, "terminate");
	c->disconnect = kv_has(&l, "disconnect");
	rc = 0;
out:
	kv_free(&l);
	return rc;
}

/* backend-uri=file://PATH: PATH split into its directory and its last component. */
static int split_state_file(const char *path, struct vtpmd_opts *o, char *err, size_t errlen)
{
	static const char opt[] = "--tpmstate";
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;

	if (!*path)
		return errmsg(err, errlen, "%s: backend-uri=file:// needs a path", opt);
	if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return errmsg(err, errlen,
			      "%s: backend-uri=file://%s names a directory; the file backend needs "
			      "a file (use dir:// for a directory)",
			      opt, path);
	free(o->state_dir);
	o->state_dir = !slash	       ? strdup(".")
		       : slash == path ? strdup("/")
				       : strndup(path, (size_t)(slash - path));
	if (!o->state_dir)
		return errmsg(err, errlen, "out of memory");
	return dup_str(&o->state_name, name, err, errlen);
}

/* swtpm: dir=DIR, or backend-uri=dir://DIR or file://PATH (a relative path is relative to
 * the working directory); dir= wins when both are given. */
static int parse_tpmstate(const char *arg, struct vtpmd_opts *o, char *err, size_t errlen)
{
	static const char opt[] = "--tpmstate";
	struct kvlist l;
	const char *v, *uri;
	int rc = -1;

	if (kv_split(opt, arg, &l, err, errlen) < 0 ||
	    kv_check(opt, &l, "dir backend-uri mode lock", err, errlen) < 0)
		goto out;
	free(o->state_name); /* a repeated option replaces the earlier one */
	o->state_name = NULL;
	v = kv_get(&l, "dir");
	uri = kv_get(&l, "backend-uri");
	if (!v && uri) {
		if (strncmp(uri, "dir://", 6) == 0) {
			v = uri + 6;
		} else if (strncmp(uri, "file://", 7) == 0) {
			if (split_state_file(uri + 7, o, err, errlen) < 0)
				goto out;
		} else {
			errmsg(err, errlen,
			       "%s: backend-uri '%s' is not supported (use dir://PATH or "
			       "file://PATH)",
			       opt, uri);
			goto out;
		}
	}
	if (!o->state_name) {
		if (!v || !*v) {
			errmsg(err, errlen, "%s: dir=PATH is required", opt);
			goto out;
		}
		if (dup_str(&o->state_dir, v, err, errlen) < 0)
			goto out;
	}
	o->state_from_env = false;
	if ((v = kv_get(&l, "mode")) && parse_mode(opt, v, &o->state_mode, err, errlen) < 0)
		goto out;
	rc = 0;
out:
	kv_free(&l);
	return rc;
}

static int parse_key(const char *opt, const char *arg, struct key_opts *k, char *err, size_t errlen)
{
	struct kvlist l;
	const char *v;
	int rc = -1, sources = 0;

	if (kv_split(opt, arg, &l, err, errlen) < 0 ||
	    kv_check(opt, &l, "file fd pwdfile pwdfd format mode remove kdf", err, errlen) < 0)
		goto out;
	free(k->path); /* a repeated option replaces the earlier one */
	memset(k, 0, sizeof(*k));
	k->fd = -1;
	k->bits = 128; /* swtpm's default mode is aes-128-cbc */
	k->kdf_pbkdf2 = true;
	if ((v = kv_get(&l, "file"))) {
		k->source = KEY_FILE, sources++;
		if (dup_str(&k->path, v, err, errlen) < 0)
			goto out;
	}
	if ((v = kv_get(&l, "pwdfile"))) {
		k->source = KEY_PWDFILE, sources++;
		if (dup_str(&k->path, v, err, errlen) < 0)
			goto out;
	}
	if ((v = kv_get(&l, "fd"))) {
		k->source = KEY_FD, sources++;
		if (parse_fd(opt, v, &k->fd, err, errlen) < 0)
			goto out;
	}
	if ((v = kv_get(&l, "pwdfd"))) {
		k->source = KEY_PWDFD, sources++;
		if (parse_fd(opt, v, &k->fd, err, errlen) < 0)
			goto out;
	}
	if (sources != 1) {
		errmsg(err, errlen, "%s: give exactly one of file=, fd=, pwdfile=, pwdfd=", opt);
		goto out;
	}
	if ((v = kv_get(&l, "format"))) {
		k->format_given = true;
		if (strcmp(v, "hex") == 0)
			k->hex = true;
		else if (strcmp(v, "binary") != 0) {
			errmsg(err, errlen, "%s: format='%s' (use hex or binary)", opt, v);
			goto out;
		}
	}
	if ((v = kv_get(&l, "mode"))) {
		if (strcmp(v, "aes-256-cbc") == 0 || strcmp(v, "aes-256-gcm") == 0)
			k->bits = 256;
		else if (strcmp(v, "aes-128-cbc") == 0 || strcmp(v, "aes-cbc") == 0)
			k->bits = 128;
		else {
			errmsg(err, errlen,
			       "%s: mode='%s' is not supported (aes-128-cbc, aes-256-cbc, "
			       "aes-256-gcm)",
			       opt, v);
			goto out;
		}
	}
	if ((v = kv_get(&l, "remove")) && parse_bool(opt, "remove", v, &k->remove, err, errlen) < 0)
		goto out;
	if ((v = kv_get(&l, "kdf"))) {
		if (strcmp(v, "sha512") == 0)
			k->kdf_pbkdf2 = false;
		else if (strcmp(v, "pbkdf2") != 0) {
			errmsg(err, errlen, "%s: kdf='%s' (use pbkdf2 or sha512)", opt, v);
			goto out;
		}
	}
	rc = 0;
out:
	kv_free(&l);
	return rc;
}

static int parse_log(const char *arg, struct vtpmd_opts *o, char *err, size_t errlen)
{
	static const char opt[] = "--log";
	struct kvlist l;
	const char *v;
	uint32_t n;
	int rc = -1;

	if (kv_split(opt, arg, &l, err, errlen) < 0 ||
	    kv_check(opt, &l, "file fd level prefix truncate", err, errlen) < 0)
		goto out;
	if ((v = kv_get(&l, "file"))) {
		/* swtpm: file=- means no log at all */
		o->log_off = strcmp(v, "-") == 0;
		free(o->log_file);
		o->log_file = NULL;
		if (!*v) {
			errmsg(err, errlen, "%s: file is empty (file=- turns logging off)", opt);
			goto out;
		}
		if (!o->log_off && dup_str(&o->log_file, v, err, errlen) < 0)
			goto out;
	}
	if ((v = kv_get(&l, "fd")) && parse_fd(opt, v, &o->log_fd, err, errlen) < 0)
		goto out;
	if ((v = kv_get(&l, "level"))) {
		if (parse_param(opt, "level", v, NUM_DEC, 100, &n, err, errlen) < 0)
			goto out;
		o->log_level = (int)n;
	}
	o->log_truncate = kv_has(&l, "truncate");
	rc = 0;
out:
	kv_free(&l);
	return rc;
}

static int parse_pid(const char *arg, struct vtpmd_opts *o, char *err, size_t errlen)
{
	static const char opt[] = "--pid";
	struct kvlist l;
	const char *v;
	int rc = -1;

	if (kv_split(opt, arg, &l, err, errlen) < 0 ||
	    kv_check(opt, &l, "file fd", err, errlen) < 0)
		goto out;
	if ((v = kv_get(&l, "file")) && dup_str(&o->pid_file, v, err, errlen) < 0)
		goto out;
	if ((v = kv_get(&l, "fd")) && parse_fd(opt, v, &o->pid_fd, err, errlen) < 0)
		goto out;
	if (!o->pid_file && o->pid_fd < 0) {
		errmsg(err, errlen, "%s: file= or fd= is required", opt);
		goto out;
	}
	rc = 0;
out:
	kv_free(&l);
	return rc;
}

static int parse_flags(const char *arg, struct vtpmd_opts *o, char *err, size_t errlen)
{
	static const char opt[] = "--flags";
	struct kvlist l;
	size_t i;
	int rc = -1;

	if (kv_split(opt, arg, &l, err, errlen) < 0 ||
	    kv_check(opt, &l,
		     "not-need-init startup-clear startup-state startup-deactivated startup-none "
		     "disable-auto-shutdown",
		     err, errlen) < 0)
		goto out;
	for (i = 0; i < l.n; i++) {
		const char *k = l.kv[i].key;
		if (l.kv[i].val) {
			errmsg(err, errlen, "%s: '%s' takes no value", opt, k);
			goto out;
		}
		if (strcmp(k, "not-need-init") == 0)
			o->not_need_init = true;
		else if (strcmp(k, "startup-clear") == 0)
			o->startup = STARTUP_CLEAR;
		else if (strcmp(k, "startup-state") == 0)
			o->startup = STARTUP_STATE;
		else if (strcmp(k, "startup-deactivated") == 0)
			o->startup = STARTUP_DEACTIVATED;
		else if (strcmp(k, "startup-none") == 0)
			o->startup = STARTUP_NONE;
	}
	/* A startup-* flag implies the TPM is initialised at start. */
	if (o->startup != STARTUP_NONE)
		o->not_need_init = true;
	rc = 0;
out:
	kv_free(&l);
	return rc;
}

static int parse_locality(const char *arg, struct vtpmd_opts *o, char *err, size_t errlen)
{
	static const char opt[] = "--locality";
	struct kvlist l;
	int rc = -1;

	if (kv_split(opt, arg, &l, err, errlen) < 0 ||
	    kv_check(opt, &l, "reject-locality-4 allow-set-locality", err, errlen) < 0)
		goto out;
	o->reject_locality4 = kv_has(&l, "reject-locality-4");
	o->allow_set_locality = kv_has(&l, "allow-set-locality");
	rc = 0;
out:
	kv_free(&l);
	return rc;
}

/* swtpm 0.7.1: --seccomp action=none|kill|log; the filter is on (kill) without the option. */
static int parse_seccomp(const char *arg, struct vtpmd_opts *o, char *err, size_t errlen)
{
	static const char opt[] = "--seccomp";
	struct kvlist l;
	const char *v;
	int rc = -1;

	if (kv_split(opt, arg, &l, err, errlen) < 0 || kv_check(opt, &l, "action", err, errlen) < 0)
		goto out;
	v = kv_get(&l, "action");
	if (!v) {
		errmsg(err, errlen, "%s: action=kill, action=log or action=none is required", opt);
		goto out;
	}
	if (strcmp(v, "kill") == 0)
		o->seccomp = SECCOMP_ACTION_KILL;
	else if (strcmp(v, "log") == 0)
		o->seccomp = SECCOMP_ACTION_LOG;
	else if (strcmp(v, "none") == 0)
		o->seccomp = SECCOMP_ACTION_NONE;
	else {
		errmsg(err, errlen, "%s: action='%s' is not supported (use kill, log or none)", opt,
		       v);
		goto out;
	}
	rc = 0;
out:
	kv_free(&l);
	return rc;
}

static int parse_nonempty(const char *opt, const char *what, const char *arg, char **dst, char *err,
			  size_t errlen)
{
	if (!*arg)
		return errmsg(err, errlen, "%s: %s is empty", opt, what);
	return dup_str(dst, arg, err, errlen);
}

enum {
	OPT_TPMSTATE = 256,
	OPT_CTRL,
	OPT_SERVER,
	OPT_LOG,
	OPT_PID,
	OPT_KEY,
	OPT_MIGRATION_KEY,
	OPT_FLAGS,
	OPT_PRINT_CAPS,
	OPT_PRINT_STATES,
	OPT_LOCALITY,
	OPT_SECCOMP,
	OPT_UUID,
	OPT_MEASURE_KERNEL,
	OPT_MEASURE_INITRD,
	OPT_MEASURE_APPEND,
	OPT_EVENTLOG,
	OPT_PAIR_PID,
	OPT_MANAGER,
	OPT_TPM2,
	OPT_TCTI,
	OPT_FILTER,
	OPT_OUT,
	OPT_UNSUPPORTED,
	OPT_PORT = 'p',
	OPT_FD = 'f',
};

static const struct option long_opts[] = {
    {"tpm2", no_argument, NULL, OPT_TPM2},
    {"tpmstate", required_argument, NULL, OPT_TPMSTATE},
    {"ctrl", required_argument, NULL, OPT_CTRL},
    {"server", required_argument, NULL, OPT_SERVER},
    {"port", required_argument, NULL, OPT_PORT},
    {"fd", required_argument, NULL, OPT_FD},
    {"log", required_argument, NULL, OPT_LOG},
    {"pid", required_argument, NULL, OPT_PID},
    {"key", required_argument, NULL, OPT_KEY},
    {"migration-key", required_argument, NULL, OPT_MIGRATION_KEY},
    {"flags", required_argument, NULL, OPT_FLAGS},
    {"daemon", no_argument, NULL, 'd'},
    {"terminate", no_argument, NULL, 't'},
    {"print-capabilities", no_argument, NULL, OPT_PRINT_CAPS},
    {"version", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"locality", required_argument, NULL, OPT_LOCALITY},
    {"seccomp", required_argument, NULL, OPT_SECCOMP},
    {"uuid", required_argument, NULL, OPT_UUID},
    {"manager", required_argument, NULL, OPT_MANAGER},
    {"runas", required_argument, NULL, 'r'},
    {"chroot", required_argument, NULL, 'R'},
    {"migration", required_argument, NULL, OPT_UNSUPPORTED},
    {"vtpm-proxy", no_argument, NULL, OPT_UNSUPPORTED},
    {"print-states", no_argument, NULL, OPT_PRINT_STATES},
    {"measure-kernel", required_argument, NULL, OPT_MEASURE_KERNEL},
    {"measure-initrd", required_argument, NULL, OPT_MEASURE_INITRD},
    {"measure-append", required_argument, NULL, OPT_MEASURE_APPEND},
    {"eventlog", required_argument, NULL, OPT_EVENTLOG},
    {"pair-pid", required_argument, NULL, OPT_PAIR_PID},
    {"tcti", required_argument, NULL, OPT_TCTI},
    {"filter", required_argument, NULL, OPT_FILTER},
    {"out", required_argument, NULL, OPT_OUT},
    {"profile", required_argument, NULL, OPT_UNSUPPORTED},
    {NULL, 0, NULL, 0},
};

static void opts_defaults(struct vtpmd_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->state_mode = 0600;
	o->log_fd = -1;
	o->pid_fd = -1;
	o->ctrl.fd = -1;
	o->server.fd = -1;
	o->key.fd = -1;
	o->migration_key.fd = -1;
	o->startup = STARTUP_NONE;
}

/* `vtpmd passthrough`: a back end and a filter instead of a state; what belongs to a state
 * (key, manager, start-up flags) is refused by name. */
static int check_passthrough(struct vtpmd_opts *o, char *err, size_t errlen)
{
	if (!o->passthrough) {
		if (o->tcti || o->filter)
			return errmsg(err, errlen,
				      "--tcti and --filter go with 'vtpmd passthrough'");
		return 1;
	}
	if (!o->tcti)
		return errmsg(err, errlen,
			      "passthrough: --tcti is required (e.g. device:/dev/tpmrm0)");
	if (!o->filter)
		return errmsg(err, errlen,
			      "passthrough: --filter FILE is required (e.g. the shipped "
			      "passthrough.filter)");
	if (o->state_dir || o->print_states)
		return errmsg(err, errlen,
			      "passthrough: --tpmstate and --print-states do not "
			      "apply (the state is the host TPM's)");
	if (o->key.source != KEY_NONE || o->migration_key.source != KEY_NONE)
		return errmsg(err, errlen, "passthrough: --key and --migration-key do not apply");
	if (o->manager || o->uuid)
		return errmsg(err, errlen, "passthrough: --manager and --uuid do not apply");
	if (o->not_need_init || o->startup != STARTUP_NONE)
		return errmsg(err, errlen,
			      "passthrough: --flags does not apply (the host TPM is started by the "
			      "host)");
	if (o->pair_pid)
		return errmsg(err, errlen, "passthrough: --pair-pid is not supported");
	if (o->measure_kernel || o->measure_initrd || o->measure_append || o->eventlog)
		return errmsg(err, errlen,
			      "passthrough: --measure-* and --eventlog do not apply (the host "
			      "TPM's PCRs are not the guest's)");
	if (o->ctrl.type == CHAN_NONE && o->server.type == CHAN_NONE)
		return errmsg(err, errlen, "give --ctrl and/or --server: no channel to serve");
	if (o->allow_set_locality)
		return errmsg(err, errlen, "--locality allow-set-locality is not supported");
	return 0;
}

/* `vtpmd export-swtpm`: a state to read and a directory to write, nothing to serve. */
static int check_export(struct vtpmd_opts *o, char *err, size_t errlen)
{
	if (!o->export_swtpm)
		return o->export_out ? errmsg(err, errlen, "--out goes with 'vtpmd export-swtpm'")
				     : 1;
	if (!o->export_out)
		return errmsg(err, errlen,
			      "export-swtpm: --out DIR (the swtpm state directory "
			      "to write) is required");
	if (!o->state_dir)
		return errmsg(err, errlen, "export-swtpm: --tpmstate dir=DIR is required");
	if (o->state_name)
		return errmsg(err, errlen,
			      "export-swtpm: give the state directory (dir=), not a file");
	if (o->ctrl.type != CHAN_NONE || o->server.type != CHAN_NONE || o->daemon)
		return errmsg(err, errlen,
			      "export-swtpm: --ctrl, --server and --daemon do not apply");
	if (o->manager || o->uuid || o->migration_key.source != KEY_NONE)
		return errmsg(err, errlen,
			      "export-swtpm: --manager, --uuid and --migration-key do not apply "
			      "(a managed vTPM moves with vtpmctl)");
	return 0;
}

static int check_combination(struct vtpmd_opts *o, char *err, size_t errlen)
{
	uint8_t uuid[16];
	int rc;

	if (o->help || o->version || o->print_capabilities)
		return 0;
	if ((rc = check_passthrough(o, err, errlen)) <= 0)
		return rc;
	if ((rc = check_export(o, err, errlen)) <= 0)
		return rc;
	if (o->print_states)
		return o->state_dir ? 0 : errmsg(err, errlen, "--print-states needs --tpmstate");
	if (!o->tpm2)
		return errmsg(err, errlen,
			      "vtpmd emulates TPM 2.0 only: --tpm2 is required (TPM 1.2 is not "
			      "supported)");
	if (!o->state_dir) {
		/* swtpm: TPM_PATH stands in for --tpmstate dir= */
		const char *env = getenv("TPM_PATH");

		if (!env || !*env)
			return errmsg(err, errlen,
				      "--tpmstate dir=PATH is required (or TPM_PATH in the "
				      "environment)");
		if (dup_str(&o->state_dir, env, err, errlen) < 0)
			return -1;
		o->state_from_env = true;
	}
	if (o->ctrl.type == CHAN_NONE && o->server.type == CHAN_NONE)
		return errmsg(err, errlen,
			      "give --ctrl and/or --server (or -p PORT, or --fd N): no channel to "
			      "serve");
	if (o->uuid && uuid_from_text(o->uuid, uuid) < 0)
		return errmsg(err, errlen,
			      "--uuid: '%s' is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-"
			      "xxxxxxxxxxxx)",
			      o->uuid);
	if (o->manager && !o->uuid)
		return errmsg(err, errlen, "--manager needs --uuid");
	if (o->manager && o->key.source != KEY_NONE)
		return errmsg(err, errlen,
			      "--manager and --key exclude each other: the manager gives the key");
	if (o->allow_set_locality)
		return errmsg(err, errlen, "--locality allow-set-locality is not supported");
	if (o->pair_pid && o->ctrl.type != CHAN_UNIX_PATH && o->ctrl.type != CHAN_UNIX_FD)
		return errmsg(
		    err, errlen,
		    "--pair-pid needs a listening unix control channel (--ctrl "
		    "type=unixio,path=... or fd=...): only there is the peer's pid known");
	if (o->pair_pid && o->server.type != CHAN_NONE && o->server.type != CHAN_UNIX_PATH &&
	    o->server.type != CHAN_UNIX_FD)
		return errmsg(err, errlen,
			      "--pair-pid: the data channel must be a listening unix socket, or "
			      "none (QEMU passes one with CMD_SET_DATAFD)");
	if (!o->measure_kernel && (o->measure_initrd || o->measure_append || o->eventlog))
		return errmsg(err, errlen,
			      "--measure-initrd, --measure-append and --eventlog need "
			      "--measure-kernel");
	return 0;
}

/* The data channel from --server, -p/--port and -f/--fd, once all options are read (swtpm:
 * the last of --server and -p gives the channel, -p's port is the default port of either,
 * then $TPM_PORT). */
static int resolve_server(const char *server_arg, bool from_port, const char *port_arg,
			  const char *fd_arg, struct vtpmd_opts *o, char *err, size_t errlen)
{
	struct port_fallback pf = {port_arg, "-p/--port"};
	uint32_t n;

	if (port_arg &&
	    parse_num_u32("-p/--port", port_arg, NUM_DEC, 0, 65535, &n, err, errlen) < 0)
		return -1;

	if (fd_arg) {
		if (server_arg)
			return errmsg(err, errlen,
				      "-f/--fd and %s exclude each other: give one data channel",
				      port_arg ? "-p/--port" : "--server");
		/* swtpm: an already connected socket; never stdin, stdout or stderr */
		if (parse_num_u32("-f/--fd", fd_arg, NUM_DEC, 3, 65535, &n, err, errlen) < 0)
			return -1;
		o->server.type = CHAN_TCP_FD;
		o->server.fd = (int)n;
		return 0;
	}
	if (!server_arg)
		return 0;
	if (!port_arg) {
		pf.val = getenv("TPM_PORT");
		pf.what = "TPM_PORT (environment)";
	}
	return parse_chan(from_port ? "-p/--port" : "--server", server_arg, false, &pf, &o->server,
			  err, errlen);
}

int vtpmd_parse_args(int argc, char **argv, struct vtpmd_opts *o, char *err, size_t errlen)
{
	const char *server_arg = NULL, *port_arg = NULL, *fd_arg = NULL;
	bool server_from_port = false;
	int c, li, rc = 0;

	opts_defaults(o);
	if (argc >= 2 && strcmp(argv[1], "socket") == 0) {
		argc--;
		argv++;
	} else if (argc >= 2 && strcmp(argv[1], "export-swtpm") == 0) {
		o->export_swtpm = true;
		argc--;
		argv++;
	} else if (argc >= 2 && strcmp(argv[1], "passthrough") == 0) {
		o->passthrough = true;
		argc--;
		argv++;
	} else if (argc >= 2 && (strcmp(argv[1], "chardev") == 0 || strcmp(argv[1], "cuse") == 0)) {
		/* swtpm's words for an interface it was built without: scripts (swtpm's own
		 * tests) look for them */
		return errmsg(err, errlen,
			      "Unsupported TPM interface '%s': vtpmd serves the socket interface "
			      "only ('vtpmd socket'; no chardev, no CUSE)",
			      argv[1]);
	} else if (argc >= 2 && argv[1][0] != '-') {
		return errmsg(err, errlen,
			      "unknown mode '%s': use 'vtpmd socket', 'vtpmd passthrough' or "
			      "'vtpmd export-swtpm'",
			      argv[1]);
	}
	optind = 0; /* full getopt reset: the parser may run more than once (tests) */
	opterr = 0;
	while (rc == 0 &&
	       (li = -1, c = getopt_long(argc, argv, ":dthvr:R:p:f:", long_opts, &li)) != -1) {
		switch (c) {
		case OPT_TPM2:
			o->tpm2 = true;
			break;
		case OPT_TPMSTATE:
			rc = parse_tpmstate(optarg, o, err, errlen);
			break;
		case OPT_CTRL:
			rc = parse_chan("--ctrl", optarg, true, NULL, &o->ctrl, err, errlen);
			break;
		case OPT_SERVER:
			/* parsed after the loop: its port may come from a later -p */
			server_arg = optarg;
			server_from_port = false;
			break;
		case OPT_PORT:
			/* swtpm: -p PORT is --server type=tcp,disconnect with TPM_PORT=PORT */
			port_arg = optarg;
			server_arg = "type=tcp,disconnect";
			server_from_port = true;
			break;
		case OPT_FD:
			fd_arg = optarg;
			break;
		case OPT_LOG:
			rc = parse_log(optarg, o, err, errlen);
			break;
		case OPT_PID:
			rc = parse_pid(optarg, o, err, errlen);
			break;
		case OPT_KEY:
			rc = parse_key("--key", optarg, &o->key, err, errlen);
			break;
		case OPT_MIGRATION_KEY:
			rc = parse_key("--migration-key", optarg, &o->migration_key, err, errlen);
			break;
		case OPT_FLAGS:
			rc = parse_flags(optarg, o, err, errlen);
			break;
		case OPT_LOCALITY:
			rc = parse_locality(optarg, o, err, errlen);
			break;
		case OPT_SECCOMP:
			rc = parse_seccomp(optarg, o, err, errlen);
			break;
		case OPT_UUID:
			rc = dup_str(&o->uuid, optarg, err, errlen);
			break;
		case OPT_MANAGER:
			rc = dup_str(&o->manager, optarg, err, errlen);
			break;
		case OPT_MEASURE_KERNEL:
			rc = parse_nonempty("--measure-kernel", "the kernel file", optarg,
					    &o->measure_kernel, err, errlen);
			break;
		case OPT_MEASURE_INITRD:
			rc = parse_nonempty("--measure-initrd", "the initrd file", optarg,
					    &o->measure_initrd, err, errlen);
			break;
		case OPT_MEASURE_APPEND:
			rc = dup_str(&o->measure_append, optarg, err, errlen);
			break;
		case OPT_PAIR_PID:
			rc = parse_num_u32("--pair-pid", optarg, NUM_DEC, 1, INT32_MAX,
					   &o->pair_pid, err, errlen);
			break;
		case OPT_EVENTLOG:
			rc = parse_nonempty("--eventlog", "the event log file", optarg,
					    &o->eventlog, err, errlen);
			break;
		case OPT_TCTI:
			rc = parse_nonempty("--tcti", "the TCTI", optarg, &o->tcti, err, errlen);
			break;
		case OPT_FILTER:
			rc =
			    parse_nonempty("--filter", "the file", optarg, &o->filter, err, errlen);
			break;
		case OPT_OUT:
			rc = parse_nonempty("--out", "the directory", optarg, &o->export_out, err,
					    errlen);
			break;
		case OPT_PRINT_CAPS:
			o->print_capabilities = true;
			break;
		case OPT_PRINT_STATES:
			o->print_states = true;
			break;
		case 'r':
			rc = parse_nonempty("--runas", "the user", optarg, &o->runas, err, errlen);
			break;
		case 'R':
			rc = parse_nonempty("--chroot", "the directory", optarg, &o->chroot_dir,
					    err, errlen);
			break;
		case 'd':
			o->daemon = true;
			break;
		case 't':
			o->terminate = true;
			break;
		case 'h':
			o->help = true;
			break;
		case 'v':
			o->version = true;
			break;
		case OPT_UNSUPPORTED:
			/* Name the option, not its value (argv[optind - 1] is the value). */
			rc = errmsg(err, errlen, "option --%s is not supported by vtpmd",
				    li >= 0 ? long_opts[li].name : "?");
			break;
		case ':':
			rc = errmsg(err, errlen, "option %s needs a value", argv[optind - 1]);
			break;
		default:
			rc = errmsg(err, errlen, "unknown option %s (see vtpmd --help)",
				    argv[optind - 1]);
			break;
		}
	}
	if (rc == 0 && optind < argc)
		rc = errmsg(err, errlen, "unexpected argument '%s'", argv[optind]);
	if (rc == 0)
		rc = resolve_server(server_arg, server_from_port, port_arg, fd_arg, o, err, errlen);
	if (rc == 0)
		rc = check_combination(o, err, errlen);
	return rc;
}

void vtpmd_opts_free(struct vtpmd_opts *o)
{
	free(o->state_dir);
	free(o->state_name);
	free(o->ctrl.path);
	free(o->ctrl.bindaddr);
	free(o->server.path);
	free(o->server.bindaddr);
	free(o->log_file);
	free(o->pid_file);
	free(o->key.path);
	free(o->migration_key.path);
	free(o->uuid);
	free(o->manager);
	free(o->runas);
	free(o->chroot_dir);
	free(o->measure_kernel);
	free(o->measure_initrd);
	free(o->measure_append);
	free(o->eventlog);
	free(o->tcti);
	free(o->filter);
	free(o->export_out);
	memset(o, 0, sizeof(*o));
}
