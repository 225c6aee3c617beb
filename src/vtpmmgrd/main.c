/*
 * vtpmmgrd — the per-host vTPM manager: the only process that opens the host TPM and the
 * store; hands a vTPM's state key to the vtpmd its group permits, one live instance at a
 * time; records state versions and refuses rollback.
 *
 * Two processes (listener.h). This one, the parent, holds the root key, the store and the
 * host TPM, and runs one event loop: poll over the signalfd, the two listening
 * SOCK_SEQPACKET sockets (instance, admin), the admin connections, the listener's socketpair,
 * and the pidfds of open instances and registered labels (an exited process releases what
 * it held). It accepts and identifies instance connections but never reads them: the
 * listener reads and decodes their datagrams and passes the requests on.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/daemon.h"
#include "common/log.h"
#include "vtpmmgrd/commit_batch.h"
#include "vtpmmgrd/host_policy.h"
#include "vtpmmgrd/host_tpm.h"
#include "vtpmmgrd/listener.h"
#include "vtpmmgrd/manager.h"
#include "vtpmmgrd/priv_proto.h"
#include "vtpmmgrd/seqpacket.h"
#include "vtpmmgrd/store.h"
#include "vtpmmgrd/tpm_worker.h"

#define VTPMMGRD_VERSION "0.1.0"
/* Every running vtpmd keeps its connection (and the manager a pidfd for it): size for a few
 * thousand guests per host. */
#define MAX_CONNS	8192
#define MAX_ADMIN_CONNS 32 /* kept apart, so instance clients cannot crowd out admins */

enum {
	EXIT_OK = 0,
	EXIT_START = 1,	      /* usage or start-up error */
	EXIT_LOCKED = 2,      /* another process holds the store */
	EXIT_PCR = 3,	      /* host PCRs differ from the sealed state */
	EXIT_TAMPERED = 4,    /* the store was modified outside vtpmmgrd */
	EXIT_ROLLBACK = 5,    /* the store is older than the host NV counter */
	EXIT_UNDECIDABLE = 6, /* a crash left the newest store undecidable; --after-crash refuse */
};

struct conn {
	uint64_t id; /* instance connections: the listener knows it by this; never reused */
	int fd;
	enum req_socket kind;
	struct peer peer;
	struct cl_conn lim; /* instance connections: what the limits count (conn_limits.h) */
};

struct server {
	struct mgrd d;
	int sig_fd;
	int listen_fd[2];   /* [0] instance, [1] admin */
	struct conn *conns; /* grows by doubling up to MAX_CONNS */
	size_t conns_cap;
	size_t nconns;
	size_t nconns_kind[2]; /* [0] instance, [1] admin */
	uint8_t *rbuf;	       /* MGR_MAX_MSG + 1 */
	uint8_t *wbuf;	       /* MGR_MAX_MSG */
	struct pollfd *pfds;
	size_t pfds_cap;
	int ready_fd;	    /* --daemon: tells the waiting parent the start-up result */
	int64_t fds_logged; /* cl_now_ms() of the last "out of file descriptors" warning */
	bool sockets_made;
	bool pid_written;	   /* --pid: the file is this process's (removed at exit) */
	struct commit_batch batch; /* commits of this turn, answered after one store commit */
	struct listener lis;	   /* reads the instance connections (listener.h) */
	uint64_t next_id;	   /* of instance connections */
	int64_t lis_restart_ms;	   /* cl_now_ms() when a lost listener is started again */
	uint8_t *pbuf;		   /* PRIV_MSG_MAX + 1: a message from the listener */
	struct priv_msg *pm;	   /* it, decoded */
};

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: vtpmmgrd [options]\n"
	    "\n"
	    "vtpmmgrd is the per-host vTPM manager. It alone opens the host TPM and its store\n"
	    "(groups, vTPMs, wrapped keys, state versions, audit log). At start it unseals its\n"
	    "root key from the host TPM (refused if the host PCRs changed), verifies the store's\n"
	    "MAC and compares the store with the host TPM NV counter (refused on rollback).\n"
	    "vtpmd instances ask it for their state key on the instance socket; it answers\n"
	    "only a live process whose label and binary digest the vTPM's group permits, and\n"
	    "only one at a time. Operators use the admin socket (vtpmctl).\n"
	    "\n"
	    "Options:\n"
	    "  --tcti STRING            host TPM, as a tpm2-tss TCTI string\n"
	    "                           (default " MGRD_DEFAULT_TCTI ")\n"
	    "  --store PATH             the SQLite store (default " MGRD_DEFAULT_STORE ");\n"
	    "                           created (mode 0600) if missing\n"
	    "  --instance-socket PATH   socket for vtpmd (default " MGRD_DEFAULT_INSTANCE_SOCKET
	    ",\n"
	    "                           mode 0666: any local process may ask, identity decides)\n"
	    "  --admin-socket PATH      socket for vtpmctl (default " MGRD_DEFAULT_ADMIN_SOCKET
	    ",\n"
	    "                           mode 0660); root, or members of --admin-group\n"
	    "  --admin-group NAME       group whose members may use the admin socket\n"
	    "  --listener-user USER     (as root) the user of the listener, the process that\n"
	    "                           reads the instance socket (default vtpmmgrd if it\n"
	    "                           exists, else nobody)\n"
	    "  --max-conns N            instance connections at most (default 8160);\n"
	    "                           when full, the oldest connection with no vTPM open,\n"
	    "                           of the uid with the most such, is dropped for a new one\n"
	    "  --max-conns-per-pid N    connections of one process (default 64; 0: no cap);\n"
	    "                           this cap and the next do not apply to root and to\n"
	    "                           members of --admin-group\n"
	    "  --max-conns-per-uid N    connections of one uid with no vTPM open (default 128;\n"
	    "                           0: no cap); those with a vTPM open do not count\n"
	    "  --idle-timeout S         close a connection with no vTPM open S seconds after\n"
	    "                           its accept or MGR_CLOSE (default 10; 0: never)\n"
	    "  --audit-refusals-per-uid N\n"
	    "                           audit rows of refused requests per uid and interval\n"
	    "                           (default 10; 0: no limit); one summary row for the rest;\n"
	    "                           malformed messages close their connection, unaudited\n"
	    "  --limits-interval S      the window of those counts and of the log summaries\n"
	    "                           (default 60 seconds)\n"
	    "  --nv-index INDEX         host TPM NV counter that guards the store against\n"
	    "                           rollback, defined by host-init (owner range\n"
	    "                           0x01000000-0x013fffff; default 0x%08x). Once the host\n"
	    "                           is provisioned, the index recorded in the store is used\n"
	    "  --log file=PATH[,level=N] | level=N\n"
	    "                           log to PATH (default stderr); N: 0 errors, 1 warnings,\n"
	    "                           2 information (default), 3 debug\n"
	    "  --pid file=PATH          write the process id once ready\n"
	    "  --after-crash accept|refuse\n"
	    "                           after a crash the newest store may be undecidable\n"
	    "                           (vtpmmgrd(8), ROLLBACK GUARD): run with it and report it\n"
	    "                           (accept, the default), or refuse to start (exit 6)\n"
	    "  --guard-interval MS      advance the host TPM counter that guards the store at\n"
	    "                           most every MS milliseconds while it changes (default\n"
	    "                           1000): the most a crash can leave unguarded\n"
	    "  -d, --daemon             detach once ready (the parent exits with the start-up\n"
	    "                           result: 0, or the exit status below)\n"
	    "  -v, --version            print the version and exit\n"
	    "  -h, --help               print this help and exit\n"
	    "\n"
	    "Before provisioning (host-init on the admin socket) only host-init, host-status,\n"
	    "label-register and audit-list are served; MGR_OPEN is refused as not provisioned.\n"
	    "\n"
	    "Exit status: 0 after SIGTERM/SIGINT/SIGHUP; 1 usage or start-up error; 2 the store\n"
	    "is held by another process; 3 the host PCRs differ from the state the root key was\n"
	    "sealed to (the message names them); 4 the store was modified outside vtpmmgrd (MAC\n"
	    "mismatch); 5 the store is older than the host TPM NV counter (rollback), or the\n"
	    "counter is missing or behind; 6 --after-crash refuse, and a crash left it\n"
	    "undecidable whether the store is the newest (the message says why).\n"
	    "\n"
	    "See vtpmmgrd(8).\n",
	    MGRD_DEFAULT_NV_INDEX);
}

static int setup_log(const struct mgrd_opts *o)
{
	char err[512];
	int fd = 2;

	if (o->log_file) {
		fd = daemon_open_log(o->log_file, false, err, sizeof(err));
		if (fd < 0) {
			fprintf(stderr, "vtpmmgrd: %s\n", err);
			return -1;
		}
	}
	log_init("vtpmmgrd", fd, o->log_level);
	return 0;
}

static void pcr_list(uint32_t mask, char *out, size_t cap)
{
	size_t pos = 0;
	unsigned i;

	out[0] = '\0';
	for (i = 0; i < HOST_TPM_PCRS && pos < cap; i++) {
		if (!(mask & (1u << i)))
			continue;
		pos += (size_t)snprintf(out + pos, cap - pos, "%s%u", pos ? ", " : "", i);
	}
}

/* The rollback guard's verdict at start, for the audit log (and so for the admin). */
static void audit_guard(struct mgrd *d, const char *prefix, const char *note)
{
	struct store_actor a = {.uid = 0, .pid = (uint32_t)getpid()};
	char result[STORE_RESULT_MAX + 1];

	snprintf(result, sizeof(result), "%s%s", prefix, note);
	if (store_audit_append(d->store, &a, "rollback-guard", "host", result) != STORE_OK)
		log_warnx("audit: %s", store_errmsg(d->store));
}

/*
 * The PCR-sealed copies do not open: try the authorized copy with each stored signed policy
 * (docs/vtpmmgrd.8, SIGNED POLICIES). The store is not verified yet (its MAC key is what we
 * unseal), and needs not be: the TPM checks the signature against the key the copy's policy
 * names. 1: opened (*serial, *mask: the policy used); 0: none did, why (one clause per
 * policy) in note; -1: the authorized copy is malformed (note).
 */
static int try_policies(struct mgrd *d, const struct store_host *h, uint8_t *secret, size_t cap,
			size_t *len, uint64_t *serial, uint32_t *mask, char *note, size_t notecap)
{
	struct host_policy *p;
	TPM2B_PUBLIC pub;
	char desc[16], err[512], pcrs[128];
	const uint8_t *e;
	size_t n, pos = 0;
	uint32_t differ;
	uint64_t counter;
	int rc, ret = 0;

	note[0] = '\0';
	if (!h->sealed_auth_len || !h->policy_key_len) {
		snprintf(note, notecap, "no policy key is installed");
		return 0;
	}
	if (host_policy_key_public(h->policy_key, h->policy_key_len, &pub, desc, sizeof(desc), err,
				   sizeof(err)) < 0) {
		snprintf(note, notecap, "the stored policy key is malformed (%s)", err);
		return -1;
	}
	if (host_tpm_auth_blob_check(h->sealed_auth, h->sealed_auth_len, &pub, err, sizeof(err))) {
		snprintf(note, notecap, "%s", err);
		return -1;
	}
	p = malloc(sizeof(*p));
	if (!p) {
		snprintf(note, notecap, "out of memory");
		return 0;
	}
	for (size_t i = 0; host_policy_list_get(h->policies, h->policies_len, i, &e, &n) == 1;
	     i++) {
		if (host_policy_parse(e, n, p, err, sizeof(err)) < 0) {
			rc = HOST_TPM_ERR_FORMAT;
		} else {
			rc = host_tpm_unseal_authorized(d->tpm, h->sealed_auth, h->sealed_auth_len,
							&pub, p, secret, cap, len, &differ,
							&counter, err, sizeof(err));
			if (counter) { /* read: as status shows it */
				d->policy_counter = counter;
				d->policy_counter_known = true;
			}
		}
		if (rc == HOST_TPM_OK) {
			*serial = p->serial;
			*mask = p->mask;
			ret = 1;
			break;
		}
		if (pos < notecap) {
			if (rc == HOST_TPM_ERR_PCR && differ) {
				pcr_list(differ, pcrs, sizeof(pcrs));
				pos += (size_t)snprintf(note + pos, notecap - pos,
							"%sserial %" PRIu64 ": PCR%s %s differ%s",
							pos ? "; " : "", p->serial,
							(differ & (differ - 1)) ? "s" : "", pcrs,
							(differ & (differ - 1)) ? "" : "s");
			} else if (rc == HOST_TPM_ERR_FORMAT) {
				pos += (size_t)snprintf(note + pos, notecap - pos,
							"%spolicy %zu: malformed (%s)",
							pos ? "; " : "", i + 1, err);
			} else {
				pos += (size_t)snprintf(note + pos, notecap - pos,
							"%sserial %" PRIu64 ": %s", pos ? "; " : "",
							p->serial, err);
			}
		}
	}
	if (!ret && !note[0])
		snprintf(note, notecap, "no signed policy is stored");
	OPENSSL_cleanse(p, sizeof(*p));
	free(p);
	return ret;
}

/* Unseal the root key: the current sealed copy first; if the host PCRs differ from its
 * values and there is a predicted copy (vtpmctl host reseal --predict), that one.
 * *used_next: the predicted copy opened. EXIT_OK or the exit status (logged). */
static int unseal_root(struct mgrd *d, const struct store_host *h, uint8_t *secret, size_t cap,
		       size_t *len, bool *used_next, bool *used_policy)
{
	uint32_t differ = 0, differ2 = 0, pmask = 0;
	char err[1024], pcrs[128], pcrs2[128], pnote[1024], plist[128];
	uint64_t serial = 0;
	int rc, prc;

	*used_next = false;
	*used_policy = false;
	rc = host_tpm_unseal(d->tpm, h->sealed_root, h->sealed_root_len, secret, cap, len, &differ,
			     err, sizeof(err));
	if (rc == HOST_TPM_ERR_PCR && h->sealed_next_len > 0) {
		pcr_list(differ, pcrs, sizeof(pcrs));
		rc = host_tpm_unseal(d->tpm, h->sealed_next, h->sealed_next_len, secret, cap, len,
				     &differ2, err, sizeof(err));
		if (rc == HOST_TPM_OK) {
			*used_next = true;
			log_info("host PCR%s %s differ%s from the current sealed copy of the root "
				 "key; the predicted copy matches and is used",
				 (differ & (differ - 1)) ? "s" : "", pcrs,
				 (differ & (differ - 1)) ? "" : "s");
			return EXIT_OK;
		}
		if (rc == HOST_TPM_ERR_PCR) {
			pcr_list(differ2, pcrs2, sizeof(pcrs2));
			prc = try_policies(d, h, secret, cap, len, &serial, &pmask, pnote,
					   sizeof(pnote));
			if (prc == 1) {
				pcr_list(pmask, plist, sizeof(plist));
				*used_policy = true;
				log_info(
				    "host PCR%s %s differ%s from the sealed copies of the root "
				    "key; the signed policy with serial %" PRIu64
				    " (PCRs %s) opened it",
				    (differ & (differ - 1)) ? "s" : "", pcrs,
				    (differ & (differ - 1)) ? "" : "s", serial, plist);
				d->policy_serial = serial;
				d->policy_mask = pmask;
				return EXIT_OK;
			}
			log_warnx(
			    "refusing to start: host PCR%s %s differ%s from the state the root "
			    "key was sealed to (mask 0x%06x); the predicted copy does not "
			    "match either: PCR%s %s differ%s from its predicted value%s (mask "
			    "0x%06x)",
			    (differ & (differ - 1)) ? "s" : "", pcrs,
			    (differ & (differ - 1)) ? "" : "s", differ,
			    (differ2 & (differ2 - 1)) ? "s" : "", pcrs2,
			    (differ2 & (differ2 - 1)) ? "" : "s",
			    (differ2 & (differ2 - 1)) ? "s" : "", differ2);
			if (h->sealed_auth_len)
				log_warnx("no signed policy opens the root key: %s", pnote);
			return prc < 0 ? EXIT_TAMPERED : EXIT_PCR;
		}
		if (rc == HOST_TPM_ERR_FORMAT) {
			log_warnx(
			    "refusing to start: host PCR%s %s differ%s from the current sealed "
			    "copy, and the predicted copy is malformed (%s): the store was "
			    "modified outside vtpmmgrd",
			    (differ & (differ - 1)) ? "s" : "", pcrs,
			    (differ & (differ - 1)) ? "" : "s", err);
			return EXIT_TAMPERED;
		}
		log_warnx("cannot unseal the root key: host PCR%s %s differ%s from the current "
			  "sealed copy, and the predicted copy: %s",
			  (differ & (differ - 1)) ? "s" : "", pcrs,
			  (differ & (differ - 1)) ? "" : "s", err);
		return EXIT_START;
	}
	if (rc == HOST_TPM_ERR_PCR) {
		pcr_list(differ, pcrs, sizeof(pcrs));
		prc = try_policies(d, h, secret, cap, len, &serial, &pmask, pnote, sizeof(pnote));
		if (prc == 1) {
			pcr_list(pmask, plist, sizeof(plist));
			*used_policy = true;
			log_info("host PCR%s %s differ%s from the sealed copy of the root key; the "
				 "signed policy with serial %" PRIu64 " (PCRs %s) opened it",
				 (differ & (differ - 1)) ? "s" : "", pcrs,
				 (differ & (differ - 1)) ? "" : "s", serial, plist);
			d->policy_serial = serial;
			d->policy_mask = pmask;
			return EXIT_OK;
		}
		log_warnx("refusing to start: host PCR%s %s differ%s from the state the root key "
			  "was sealed to (mask 0x%06x)",
			  (differ & (differ - 1)) ? "s" : "", pcrs,
			  (differ & (differ - 1)) ? "" : "s", differ);
		if (h->sealed_auth_len)
			log_warnx("no signed policy opens the root key: %s", pnote);
		return prc < 0 ? EXIT_TAMPERED : EXIT_PCR;
	}
	if (rc == HOST_TPM_ERR_FORMAT) {
		log_warnx("refusing to start: the store's sealed root key is malformed (%s): the "
			  "store was modified outside vtpmmgrd",
			  err);
		return EXIT_TAMPERED;
	}
	if (rc != HOST_TPM_OK) {
		log_warnx("cannot unseal the root key: %s", err);
		return EXIT_START;
	}
	return EXIT_OK;
}

/* The predicted copy opened the root key (the host was updated as predicted): it becomes
 * the current copy and the old one is removed, in one audited store transaction. A failure
 * is logged and changes nothing (the next start uses the predicted copy again). */
static void promote_predicted(struct mgrd *d, const struct store_host *h)
{
	struct store_actor a = {.uid = 0, .pid = (uint32_t)getpid()};
	uint8_t values[HOST_TPM_PCRS][32];
	char note[512], err[512], pcrs[128]; /* the store cuts the note to its limit */
	struct store_host *n;
	uint32_t mask = 0;
	int rc;

	if (host_tpm_blob_pcrs(h->sealed_next, h->sealed_next_len, &mask, values, err,
			       sizeof(err)) != HOST_TPM_OK) {
		log_warnx("the predicted copy stays as it is: %s", err);
		return;
	}
	n = malloc(sizeof(*n));
	if (!n) {
		log_warnx("the predicted copy stays as it is: out of memory");
		return;
	}
	*n = *h;
	memcpy(n->sealed_root, h->sealed_next, h->sealed_next_len);
	n->sealed_root_len = h->sealed_next_len;
	n->pcr_mask = mask;
	n->sealed_next_len = 0;
	n->next_created = 0;
	pcr_list(mask, pcrs, sizeof(pcrs));
	snprintf(note, sizeof(note),
		 "ok: the predicted copy (PCRs %s) opened the root key at start: it is now the "
		 "current copy; the previous copy (PCR mask 0x%06x) is removed",
		 pcrs, h->pcr_mask);
	rc = store_host_change(d->store, &a, "host-reseal", note, n);
	if (rc != STORE_OK) {
		log_warnx("the predicted copy opened the root key but could not be made the "
			  "current copy (the next start uses it again): %s",
			  store_errmsg(d->store));
	} else {
		d->pcr_mask = mask;
		rollback_changed(&d->rb, 1);
		log_info(
		    "the predicted sealed copy (PCRs %s) is now the current copy; the previous "
		    "copy is removed",
		    pcrs);
	}
	OPENSSL_cleanse(n, sizeof(*n));
	free(n);
}

/* A signed policy opened the root key: audit it. The PCR copy stays as it was sealed: a
 * copy sealed again to these values would open the key in this host state without the
 * policy, so revoking the policy (vtpmctl host policy revoke) would no longer stop it. */
static void audit_signed(struct mgrd *d)
{
	struct store_actor a = {.uid = 0, .pid = (uint32_t)getpid()};
	char note[512], pcrs[128];

	pcr_list(d->policy_mask, pcrs, sizeof(pcrs));
	snprintf(note, sizeof(note),
		 "ok: the signed policy with serial %" PRIu64
		 " (PCRs %s) opened the root key at start; the PCR copy is left as it was "
		 "(revoking the policy stops this host state)",
		 d->policy_serial, pcrs);
	if (store_audit_append(d->store, &a, "host-policy", "host", note) != STORE_OK)
		log_warnx("audit: %s", store_errmsg(d->store));
	else
		rollback_changed(&d->rb, 1);
}

/* Unseal the root key, verify the store, compare with the NV counter. */
static int start_provisioned(struct mgrd *d, const struct store_host *h)
{
	uint8_t secret[HOST_TPM_SECRET_MAX], mac[KEYS_KEY_LEN];
	size_t len = 0;
	uint64_t counter;
	int64_t offset;
	char err[1024];
	bool used_next, used_policy;
	int rc;

	rc = unseal_root(d, h, secret, sizeof(secret), &len, &used_next, &used_policy);
	if (rc != EXIT_OK)
		return rc;
	rc = keys_root_secret_decode(secret, len, d->root_key, &offset, err, sizeof(err));
	OPENSSL_cleanse(secret, sizeof(secret));
	if (rc < 0) {
		log_warnx("refusing to start: %s", err);
		return EXIT_TAMPERED;
	}
	if (keys_store_mac_key(d->root_key, mac, err, sizeof(err)) < 0) {
		log_warnx("%s", err);
		return EXIT_START;
	}
	store_set_mac_key(d->store, mac);
	OPENSSL_cleanse(mac, sizeof(mac));
	rc = store_verify(d->store, &counter, err, sizeof(err));
	if (rc == STORE_TAMPERED) {
		log_warnx("refusing to start: %s", err);
		return EXIT_TAMPERED;
	}
	if (rc != STORE_OK) {
		log_warnx("cannot verify the store: %s", err);
		return EXIT_START;
	}
	if (d->opts.nv_index_given && d->opts.nv_index != h->nv_index)
		log_warnx("--nv-index 0x%08x ignored: the host was provisioned with 0x%08x",
			  d->opts.nv_index, h->nv_index);
	rollback_init(&d->rb, d->tpm, h->nv_index, offset);
	d->rb.interval_ms = d->opts.guard_interval_ms;
	rc = rollback_start(&d->rb, d->store, d->opts.after_crash_accept, err, sizeof(err));
	if (rc == RB_ERR_REFUSED) {
		log_warnx("%s", err);
		audit_guard(d, "refused: ", err);
		return EXIT_UNDECIDABLE;
	}
	if (rc == RB_ERR_ROLLBACK || rc == RB_ERR_AHEAD || rc == RB_ERR_NOENT) {
		log_warnx("refusing to start: %s", err);
		return EXIT_ROLLBACK;
	}
	if (rc != RB_OK) {
		log_warnx("cannot check the store against the host NV counter: %s", err);
		return EXIT_START;
	}
	if (d->rb.verdict != RB_EXACT) {
		log_warnx("store rollback guard: %s: %s", rollback_verdict_name(d->rb.verdict),
			  d->rb.verdict_note);
		audit_guard(d,
			    "undecidable, accepted (--after-crash accept): ", d->rb.verdict_note);
	}
	d->provisioned = true;
	d->pcr_mask = h->pcr_mask;
	d->host_created = h->created;
	if (used_next)
		promote_predicted(d, h);
	if (used_policy)
		audit_signed(d);
	if (h->policy_nv && !d->policy_counter_known &&
	    host_tpm_counter_read(d->tpm, h->policy_nv, &d->policy_counter, err, sizeof(err)) ==
		HOST_TPM_OK)
		d->policy_counter_known = true;
	log_info("provisioned host: root key unsealed (PCR mask 0x%06x), store counter %" PRIu64
		 ", NV counter 0x%08x at %" PRIu64,
		 d->pcr_mask, counter, h->nv_index, d->rb.nv_value);
	return EXIT_OK;
}

static int open_store_and_tpm(struct mgrd *d)
{
	struct store_host *h;
	char err[1024];
	int rc;

	if (daemon_make_parent(d->opts.store, 0700, err, sizeof(err)) < 0) {
		log_warnx("%s", err);
		return EXIT_START;
	}
	rc = store_open(&d->store, d->opts.store, NULL, err, sizeof(err));
	if (rc != STORE_OK) {
		log_warnx("cannot open the store %s: %s", d->opts.store, err);
		return rc == STORE_LOCKED ? EXIT_LOCKED : EXIT_START;
	}
	rc = host_tpm_open(&d->tpm, d->opts.tcti, err, sizeof(err));
	if (rc != HOST_TPM_OK) {
		log_warnx("cannot open the host TPM: %s", err);
		return EXIT_START;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		log_warnx("out of memory");
		return EXIT_START;
	}
	rc = store_host_get(d->store, h);
	if (rc == STORE_OK) {
		rc = start_provisioned(d, h);
	} else if (rc == STORE_NOT_FOUND) {
		rc = store_verify(d->store, NULL, err, sizeof(err));
		if (rc != STORE_OK)
			log_warnx("refusing to start: %s", err);
		rc = rc == STORE_OK ? EXIT_OK : rc == STORE_TAMPERED ? EXIT_TAMPERED : EXIT_START;
		if (rc == EXIT_OK)
			log_info("host not provisioned: serving host-init and status only");
	} else {
		log_warnx("cannot read the host record: %s", store_errmsg(d->store));
		rc = EXIT_START;
	}
	OPENSSL_cleanse(h, sizeof(*h));
	free(h);
	return rc;
}

static int open_sockets(struct server *s)
{
	struct mgrd *d = &s->d;
	char err[512];

	if (daemon_make_parent(d->opts.instance_socket, 0755, err, sizeof(err)) < 0 ||
	    daemon_make_parent(d->opts.admin_socket, 0755, err, sizeof(err)) < 0) {
		log_warnx("%s", err);
		return -1;
	}
	s->listen_fd[0] =
	    seqpacket_listen(d->opts.instance_socket, 0666, (gid_t)-1, err, sizeof(err));
	if (s->listen_fd[0] < 0) {
		log_warnx("instance socket: %s", err);
		return -1;
	}
	s->sockets_made = true;
	s->listen_fd[1] =
	    seqpacket_listen(d->opts.admin_socket, 0660,
			     d->have_admin_gid ? d->admin_gid : (gid_t)-1, err, sizeof(err));
	if (s->listen_fd[1] < 0) {
		log_warnx("admin socket: %s", err);
		return -1;
	}
	return 0;
}

/* The stop signals (SIGTERM, SIGINT, SIGHUP), read in the event loop. */
static int setup_signals(struct server *s)
{
	static const int stop_signals[] = {SIGTERM, SIGINT, SIGHUP};
	char err[256];

	s->sig_fd = daemon_signalfd(stop_signals, 3, SFD_NONBLOCK, err, sizeof(err));
	if (s->sig_fd < 0)
		log_warnx("%s", err);
	return s->sig_fd < 0 ? -1 : 0;
}

/*
 * Send m (with descriptor fd_pass, or -1) to the listener. Never blocks for long: a listener
 * that takes nothing for a second (stopped, or looping) is killed, and the event loop then
 * starts a new one (listener_down). 0, or -1 if it was not sent.
 */
static int to_listener(struct server *s, const struct priv_msg *m, int fd_pass)
{
	struct pollfd p = {.fd = s->lis.fd, .events = POLLOUT};

	if (s->lis.fd < 0 || s->lis.killed)
		return -1;
	if (priv_send(s->lis.fd, m, fd_pass) == 0)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		if (poll(&p, 1, 1000) == 1 && (p.revents & POLLOUT) &&
		    priv_send(s->lis.fd, m, fd_pass) == 0)
			return 0;
		log_warnx("the listener (pid %ld) takes nothing for 1 s: stopping it",
			  (long)s->lis.pid);
	} else if (errno != EPIPE && errno != ECONNRESET) {
		log_warn("cannot write to the listener (pid %ld): stopping it", (long)s->lis.pid);
	}
	if (s->lis.pid > 0)
		kill(s->lis.pid, SIGKILL);
	s->lis.killed = true; /* its end closes: the event loop sees it and starts a new one */
	return -1;
}

static void conn_close(struct server *s, size_t i)
{
	if (s->conns[i].kind == REQ_INSTANCE) {
		struct priv_msg m = {.kind = PRIV_DROP, .id = s->conns[i].id};

		to_listener(s, &m, -1);
	}
	cl_remove(&s->d.limits, &s->conns[i].lim);
	s->nconns_kind[s->conns[i].kind == REQ_ADMIN]--;
	close(s->conns[i].fd);
	peer_release(&s->conns[i].peer);
	s->conns[i] = s->conns[s->nconns - 1];
	s->nconns--;
}

/* Root and members of --admin-group: under no per-uid or per-pid cap (conn_limits.h). */
static bool peer_trusted(const struct server *s, const struct peer *p)
{
	char err[256];

	if (p->uid == 0)
		return true;
	return s->d.have_admin_gid && peer_in_group(p, s->d.admin_gid, err, sizeof(err)) == 1;
}

static const struct cl_conn *conn_lim(void *arg, size_t i)
{
	const struct server *s = arg;

	return s->conns[i].kind == REQ_INSTANCE ? &s->conns[i].lim : NULL;
}

/* A refused instance connection: logged in full once per uid and window, then counted. */
static void refuse_log(struct server *s, const struct peer *p, int64_t now, const char *why)
{
	if (cl_note(&s->d.limits, p->uid, CL_EV_REFUSED_CONN, now))
		log_info("instance socket: connection of pid %ld (uid %lu) refused: %s (more "
			 "refusals of uid %lu are counted and reported within %u s)",
			 (long)p->pid, (unsigned long)p->uid, why, (unsigned long)p->uid,
			 cl_cfg(&s->d.limits)->interval_ms / 1000);
	else
		log_debug("instance socket: connection of pid %ld (uid %lu) refused: %s",
			  (long)p->pid, (unsigned long)p->uid, why);
}

/* Admit c on the instance socket: the per-pid and per-uid caps, then a place in the table
 * (dropping the oldest unopened connection of the uid with the most). 0, or -1 (refused and
 * logged). */
static int admit_instance(struct server *s, struct conn *c)
{
	const struct cl_config *cfg = cl_cfg(&s->d.limits);
	int64_t now = cl_now_ms();
	char why[256];
	long victim;

	c->lim = (struct cl_conn){
	    .uid = c->peer.uid, .pid = c->peer.pid, .since_ms = now, .trusted = c->peer.trusted};
	switch (cl_admit(&s->d.limits, &c->lim)) {
	case CL_REFUSE_PID:
		snprintf(why, sizeof(why), "the process holds %u connections (--max-conns-per-pid)",
			 cfg->max_per_pid);
		refuse_log(s, &c->peer, now, why);
		return -1;
	case CL_REFUSE_UID:
		snprintf(why, sizeof(why),
			 "the uid holds %u connections with no vTPM open (--max-conns-per-uid)",
			 cfg->max_per_uid);
		refuse_log(s, &c->peer, now, why);
		return -1;
	case CL_ADMIT:
		break;
	}
	if (s->nconns_kind[0] >= cfg->max_conns) {
		victim = cl_pick_victim(&s->d.limits, c->peer.trusted, s->nconns, conn_lim, s);
		if (victim < 0) {
			snprintf(why, sizeof(why),
				 "%zu instance connections are open and none may be dropped",
				 s->nconns_kind[0]);
			refuse_log(s, &c->peer, now, why);
			return -1;
		}
		if (cl_note(&s->d.limits, s->conns[victim].peer.uid, CL_EV_DROPPED, now))
			log_info(
			    "instance socket: %zu connections are open: the oldest with no vTPM "
			    "open (pid %ld, uid %lu) is dropped for a new one (more of uid "
			    "%lu are counted and reported within %u s)",
			    s->nconns_kind[0], (long)s->conns[victim].peer.pid,
			    (unsigned long)s->conns[victim].peer.uid,
			    (unsigned long)s->conns[victim].peer.uid, cfg->interval_ms / 1000);
		conn_close(s, (size_t)victim);
	}
	if (cl_add(&s->d.limits, &c->lim) < 0) {
		refuse_log(s, &c->peer, now, "out of memory");
		return -1;
	}
	return 0;
}

/*
 * accept() failed for want of descriptors: drop the oldest connection with no vTPM open, of
 * the untrusted uid with the most such (as for a full table), so the next accept gets its
 * two descriptors. Whether one was dropped; the shortage is logged once per interval.
 */
static bool fds_exhausted(struct server *s)
{
	const struct cl_config *cfg = cl_cfg(&s->d.limits);
	int64_t now = cl_now_ms();
	long victim = cl_pick_victim(&s->d.limits, false, s->nconns, conn_lim, s);

	if (now - s->fds_logged >= (int64_t)cfg->interval_ms || s->fds_logged == 0) {
		s->fds_logged = now;
		log_warnx(
		    "accept: out of file descriptors with %zu instance connections open (each "
		    "costs two: raise RLIMIT_NOFILE or lower --max-conns)%s",
		    s->nconns_kind[0],
		    victim >= 0 ? ": dropping connections with no vTPM open" : "");
	}
	if (victim < 0)
		return false;
	cl_note(&s->d.limits, s->conns[victim].peer.uid, CL_EV_DROPPED, now);
	conn_close(s, (size_t)victim);
	return true;
}

static void accept_one(struct server *s, enum req_socket kind)
{
	int lfd = s->listen_fd[kind == REQ_ADMIN ? 1 : 0];
	struct timespec now;
	struct conn c;
	int64_t boot_ns;
	char err[256];
	int fd, rc;

	if (!s->d.limits.cfg) {
		cl_init(&s->d.limits, &s->d.opts.limits);
		s->d.digests.charge = cl_hash_hook;
		s->d.digests.charge_arg = &s->d.limits;
	}
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0 && (errno == EMFILE || errno == ENFILE) && fds_exhausted(s))
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED && errno != EMFILE &&
		    errno != ENFILE)
			log_warn("accept");
		return;
	}
	if (kind == REQ_ADMIN && s->nconns_kind[1] == MAX_ADMIN_CONNS) {
		log_warnx("admin socket: %zu connections are open: refusing another",
			  s->nconns_kind[1]);
		close(fd);
		return;
	}
	if (s->nconns == s->conns_cap) {
		size_t cap = s->conns_cap ? 2 * s->conns_cap : 64;
		struct conn *nc = realloc(s->conns, cap * sizeof(*nc));
		if (!nc) {
			log_warnx("out of memory for another connection");
			close(fd);
			return;
		}
		s->conns = nc;
		s->conns_cap = cap;
	}
	clock_gettime(CLOCK_BOOTTIME, &now);
	memset(&c, 0, sizeof(c));
	boot_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	rc = peer_identify(fd, boot_ns, &c.peer, err, sizeof(err));
	if (rc < 0 && (errno == EMFILE || errno == ENFILE) && fds_exhausted(s))
		rc = peer_identify(fd, boot_ns, &c.peer, err, sizeof(err)); /* the pidfd */
	if (rc < 0) {
		if (kind == REQ_ADMIN || c.peer.pid == 0)
			log_info("%s socket: connection refused: %s",
				 kind == REQ_ADMIN ? "admin" : "instance", err);
		else
			refuse_log(s, &c.peer, cl_now_ms(), err);
		close(fd);
		return;
	}
	c.fd = fd;
	c.kind = kind;
	c.peer.trusted = peer_trusted(s, &c.peer);
	if (kind == REQ_INSTANCE && admit_instance(s, &c) < 0) {
		peer_release(&c.peer);
		close(fd);
		return;
	}
	if (kind == REQ_INSTANCE)
		c.id = ++s->next_id;
	s->conns[s->nconns++] = c;
	s->nconns_kind[kind == REQ_ADMIN]++;
	if (kind == REQ_INSTANCE) {
		struct priv_msg m = {.kind = PRIV_CONN, .id = c.id};

		if (to_listener(s, &m, fd) < 0) {
			log_info("instance socket: connection of pid %ld closed: the listener is "
				 "not running",
				 (long)c.peer.pid);
			conn_close(s, s->nconns - 1);
			return;
		}
	}
	log_debug("%s socket: connection from pid %ld uid %lu%s%s%s",
		  kind == REQ_ADMIN ? "admin" : "instance", (long)c.peer.pid,
		  (unsigned long)c.peer.uid, c.peer.trusted ? " (trusted)" : "",
		  c.peer.has_label ? " label " : "", c.peer.has_label ? c.peer.label : "");
}

/*
 * Close the instance connections with no vTPM open for --idle-timeout, and the windows
 * of the limits that ended (their summaries). Returns the poll timeout: ms until the next of
 * either, or -1.
 */
static int conns_tick(struct server *s)
{
	int64_t now = cl_now_ms(), next = mgrd_limits_tick(&s->d, now), left;
	size_t i;

	for (i = s->nconns; i-- > 0;) {
		const struct conn *c = &s->conns[i];

		if (c->kind != REQ_INSTANCE)
			continue;
		left = cl_idle_left(&s->d.limits, &c->lim, now);
		if (left < 0)
			continue;
		if (left > 0) {
			if (next < 0 || left < next)
				next = left;
			continue;
		}
		if (cl_note(&s->d.limits, c->peer.uid, CL_EV_IDLE, now))
			log_info(
			    "instance socket: pid %ld (uid %lu) had no vTPM open for %u s: "
			    "connection closed (more of uid %lu are counted and reported within "
			    "%u s)",
			    (long)c->peer.pid, (unsigned long)c->peer.uid,
			    cl_cfg(&s->d.limits)->idle_timeout_ms / 1000,
			    (unsigned long)c->peer.uid, cl_cfg(&s->d.limits)->interval_ms / 1000);
		else
			log_debug("instance socket: pid %ld (uid %lu) had no vTPM open in time: "
				  "connection closed",
				  (long)c->peer.pid, (unsigned long)c->peer.uid);
		conn_close(s, i);
	}
	return next < 0 ? -1 : next > INT_MAX ? INT_MAX : (int)next;
}

/* Serve one datagram on admin connection i; -1: close it. */
static int serve_admin(struct server *s, size_t i)
{
	struct conn *c = &s->conns[i];
	struct requester who = {.peer = &c->peer};
	bool truncated;
	ssize_t n;
	size_t len;
	int rc;

	n = seqpacket_recv(c->fd, s->rbuf, MGR_MAX_MSG + 1, &truncated, &who.sender_pid);
	if (n < 0)
		return errno == EAGAIN ? 0 : -1;
	if (n == 0)
		return -1;
	/* an admin request may use the host TPM: not while the TPM thread does */
	tpm_worker_lock(s->d.worker);
	len = mgrd_process(&s->d, REQ_ADMIN, &who, s->rbuf, truncated ? MGR_MAX_MSG : (size_t)n,
			   truncated, s->wbuf);
	tpm_worker_unlock(s->d.worker);
	if (len == 0)
		return -1;
	rc = seqpacket_send(c->fd, s->wbuf, len);
	OPENSSL_cleanse(s->wbuf, len);
	if (rc < 0)
		log_info("cannot answer pid %ld: %s", (long)c->peer.pid, strerror(errno));
	return s->d.last.close ? -1 : rc; /* malformed: answered, then closed */
}

/* The instance connection the listener calls id; SIZE_MAX if it is closed. */
static size_t conn_by_id(const struct server *s, uint64_t id)
{
	size_t i;

	for (i = 0; i < s->nconns; i++)
		if (s->conns[i].id == id && s->conns[i].kind == REQ_INSTANCE)
			return i;
	return SIZE_MAX;
}

/* Apply the commits held this turn in one store transaction, then answer them (group
 * commit, commit_batch.h): durable before answered, one fsync for all. */
static void batch_flush(struct server *s)
{
	struct commit_batch *b = &s->batch;
	struct mgrd *d = &s->d;
	char why[MGR_MAX_TEXT - 64];
	bool txn;
	size_t k, i;
	int rc;

	if (!b->n)
		return;
	txn = d->provisioned && store_begin(d->store) == STORE_OK;
	for (k = 0; k < b->n; k++) {
		struct batch_item *it = &b->v[k];
		struct requester who = {.sender_pid = it->sender};
		size_t len;

		i = conn_by_id(s, it->conn);
		if (i == SIZE_MAX)
			continue; /* closed meanwhile: nobody to answer */
		who.peer = &s->conns[i].peer;
		memset(&d->req->u.inst, 0, sizeof(d->req->u.inst));
		d->req->type = MGR_COMMIT;
		d->req->has_label = false;
		memcpy(d->req->u.inst.uuid, it->uuid, 16);
		d->req->u.inst.version = it->version;
		memcpy(d->req->u.inst.digest, it->digest, 32);
		len = mgrd_serve(d, REQ_INSTANCE, &who, d->req, NULL, s->wbuf);
		it->status = d->last.status;
		it->close = d->last.close || len == 0;
		if (len > sizeof(it->out)) {
			batch_retry(it, "the answer does not fit");
		} else {
			memcpy(it->out, s->wbuf, len);
			it->outlen = len;
		}
		OPENSSL_cleanse(s->wbuf, len);
	}
	if (txn && (rc = store_commit(d->store)) != STORE_OK) {
		snprintf(why, sizeof(why), "the store cannot be written now: %s",
			 store_errmsg(d->store));
		log_warnx("%zu commit(s) not recorded: %s", b->n, why);
		for (k = 0; k < b->n; k++)
			if (b->v[k].status == MGR_OK)
				batch_retry(&b->v[k], why);
	}
	for (k = 0; k < b->n; k++) {
		struct batch_item *it = &b->v[k];

		i = conn_by_id(s, it->conn);
		if (i == SIZE_MAX)
			continue;
		if ((it->outlen && seqpacket_send(s->conns[i].fd, it->out, it->outlen) < 0) ||
		    it->close || !it->outlen)
			conn_close(s, i);
	}
	batch_clear(b);
}

/* Answer a request or refusal the listener passed on for connection i (not a held commit). */
static void answer_instance(struct server *s, size_t i, const struct priv_msg *m)
{
	struct conn *c = &s->conns[i];
	struct requester who = {.peer = &c->peer, .sender_pid = m->sender};
	struct req_refusal why;
	size_t len;

	if (m->kind == PRIV_REFUSED) {
		why = (struct req_refusal){.type = m->type, .status = m->status, .named = m->named};
		snprintf(why.msg, sizeof(why.msg), "%s", m->text);
		len = mgrd_serve(&s->d, REQ_INSTANCE, &who, NULL, &why, s->wbuf);
	} else {
		len = mgrd_serve(&s->d, REQ_INSTANCE, &who, &m->req, NULL, s->wbuf);
	}
	if (len == 0) {
		conn_close(s, i);
		return;
	}
	if (s->d.last.status == MGR_OK) {
		if (s->d.last.type == MGR_CLOSE)
			cl_unopened(&s->d.limits, &c->lim, cl_now_ms());
		else if (s->d.last.type != MGR_COMMIT)
			cl_opened(&s->d.limits, &c->lim); /* open, resume: never idle */
	}
	if (seqpacket_send(c->fd, s->wbuf, len) < 0) {
		log_info("cannot answer pid %ld: %s", (long)c->peer.pid, strerror(errno));
		OPENSSL_cleanse(s->wbuf, len); /* an open's response holds a state key */
		conn_close(s, i);
		return;
	}
	OPENSSL_cleanse(s->wbuf, len);
	if (s->d.last.close)
		conn_close(s, i); /* malformed: answered, then closed */
}

/* The listener is gone: every instance connection goes with it (vtpmd reconnects and
 * resumes), and a new listener is started (now, or after a pause if it keeps dying). */
static void listener_down(struct server *s)
{
	char err[256];
	int wait_ms = listener_lost(&s->lis);
	size_t i;

	batch_flush(s); /* what it passed on before it went is answered */
	for (i = s->nconns; i-- > 0;)
		if (s->conns[i].kind == REQ_INSTANCE)
			conn_close(s, i);
	s->lis_restart_ms = cl_now_ms() + wait_ms;
	if (wait_ms == 0 && listener_spawn(&s->lis, err, sizeof(err)) < 0)
		log_warnx("cannot start the listener: %s", err);
}

/* Messages from the listener, at most a turn's worth: requests (commits are held for the
 * batch), refusals, closed connections. */
static void from_listener(struct server *s)
{
	struct priv_msg *m = s->pm;
	char err[256];
	ssize_t n;
	size_t i;
	int k;

	for (k = 0; k < 4 * BATCH_MAX; k++) {
		n = priv_recv(s->lis.fd, s->pbuf, NULL);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			listener_down(s);
			break;
		}
		if (priv_decode(s->pbuf, (size_t)n, true, m, err, sizeof(err)) < 0) {
			log_warnx("from the listener: %s: stopping it", err);
			kill(s->lis.pid, SIGKILL);
			s->lis.killed = true;
			listener_down(s);
			break;
		}
		i = conn_by_id(s, m->id);
		if (i == SIZE_MAX)
			continue; /* closed here meanwhile */
		if (m->kind == PRIV_GONE) {
			batch_flush(s); /* its commit, if one is held, first */
			if ((i = conn_by_id(s, m->id)) != SIZE_MAX)
				conn_close(s, i);
			continue;
		}
		if (m->kind == PRIV_REQUEST && m->type == MGR_COMMIT &&
		    batch_take(&s->batch, m->id, m->sender, m->req.u.inst.uuid,
			       m->req.u.inst.version, m->req.u.inst.digest))
			continue; /* answered with the other commits of this turn */
		/* anything else in the order it came: the commits held before it first */
		batch_flush(s);
		if ((i = conn_by_id(s, m->id)) != SIZE_MAX)
			answer_instance(s, i, m);
	}
	OPENSSL_cleanse(m, sizeof(*m));
}

static int grow_pfds(struct server *s, size_t n)
{
	struct pollfd *p;

	if (n <= s->pfds_cap)
		return 0;
	p = realloc(s->pfds, n * sizeof(*p));
	if (!p)
		return -1;
	s->pfds = p;
	s->pfds_cap = n;
	return 0;
}

enum { P_SIG, P_INST, P_ADMIN, P_WORKER, P_LISTENER, P_FIXED };

/* Every store change (commit, admin change, audit row) is one the counter must cover. */
static void guard_track(struct mgrd *d)
{
	uint64_t c;
	int64_t a;

	if (!d->provisioned || store_counter(d->store, &c) != STORE_OK ||
	    store_audit_last_id(d->store, &a) != STORE_OK)
		return;
	/* audit rows do not bump the store's counter: their ids count them */
	if (a != d->seen_audit) {
		if (d->seen_audit)
			rollback_changed(&d->rb, (uint64_t)(a - d->seen_audit));
		d->seen_audit = a;
	}
	if (!d->seen_counter) {
		d->seen_counter = c; /* the first look: a baseline, not a change */
		return;
	}
	/* the guard's own write is a change too, but one it covers already */
	if (c != d->seen_counter && c != d->rb.guard_counter)
		rollback_changed(&d->rb, c > d->seen_counter ? c - d->seen_counter : 1);
	d->seen_counter = c;
}

static int min_timeout(int a, int b)
{
	return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

static int run(struct server *s)
{
	struct mgrd *d = &s->d;

	for (;;) {
		int timeout = conns_tick(s); /* before the table is read: it closes idle ones */

		if (d->provisioned) {
			rollback_tick(&d->rb, d->store, d->worker);
			timeout = min_timeout(timeout, rollback_timeout_ms(&d->rb));
		}
		if (s->lis.pid == 0) {
			int64_t left = s->lis_restart_ms - cl_now_ms();
			char err[256];

			if (left <= 0) {
				if (listener_spawn(&s->lis, err, sizeof(err)) < 0) {
					log_warnx("cannot start the listener: %s", err);
					s->lis_restart_ms = cl_now_ms() + 1000;
					left = 1000;
				}
			}
			if (left > 0)
				timeout =
				    min_timeout(timeout, left > INT_MAX ? INT_MAX : (int)left);
		}
		size_t n = P_FIXED + s->nconns + d->inst.n + d->labels.n, i, k;
		size_t conn0 = P_FIXED, pid0 = P_FIXED + s->nconns, nconns = s->nconns;
		bool reap = false;

		if (grow_pfds(s, n) < 0) {
			log_warnx("out of memory");
			return EXIT_START;
		}
		s->pfds[P_SIG] = (struct pollfd){.fd = s->sig_fd, .events = POLLIN};
		s->pfds[P_INST] = (struct pollfd){.fd = s->listen_fd[0], .events = POLLIN};
		s->pfds[P_ADMIN] = (struct pollfd){.fd = s->listen_fd[1], .events = POLLIN};
		s->pfds[P_WORKER] =
		    (struct pollfd){.fd = tpm_worker_fd(d->worker), .events = POLLIN};
		s->pfds[P_LISTENER] = (struct pollfd){.fd = s->lis.fd, .events = POLLIN};
		/* instance connections are the listener's to read */
		for (i = 0; i < s->nconns; i++)
			s->pfds[conn0 + i] = (struct pollfd){
			    .fd = s->conns[i].kind == REQ_ADMIN ? s->conns[i].fd : -1,
			    .events = POLLIN};
		for (i = 0, k = pid0; i < d->inst.n; i++, k++)
			s->pfds[k] = (struct pollfd){.fd = d->inst.v[i].pidfd, .events = POLLIN};
		for (i = 0; i < d->labels.n; i++, k++)
			s->pfds[k] = (struct pollfd){.fd = d->labels.v[i].pidfd, .events = POLLIN};
		if (poll(s->pfds, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			log_warn("poll");
			return EXIT_START;
		}
		if (s->pfds[P_SIG].revents) {
			struct signalfd_siginfo si;
			if (read(s->sig_fd, &si, sizeof(si)) == sizeof(si)) {
				log_info("signal %u: shutting down", si.ssi_signo);
				return EXIT_OK;
			}
		}
		if (s->pfds[P_WORKER].revents) {
			struct tpm_advance_result res;

			if (tpm_worker_collect(d->worker, &res))
				rollback_collect(&d->rb, d->store, &res);
			OPENSSL_cleanse(&res, sizeof(res));
		}
		for (k = pid0; k < n; k++)
			reap |= s->pfds[k].revents != 0;
		/* exited processes first: what they held is free (and audited) before any
		 * request of this round looks */
		if (reap) {
			instances_reap(&d->inst, instance_exited, d);
			labels_reap(&d->labels);
		}
		/* admin connections, last first: closing one moves the last into its slot
		 * (what the listener passed on can close instance connections: looked up
		 * after it) */
		for (i = nconns; i-- > 0;) {
			short ev = s->pfds[conn0 + i].revents;

			if (!ev)
				continue;
			if ((ev & POLLIN) ? serve_admin(s, i) < 0 : true)
				conn_close(s, i);
		}
		if (s->pfds[P_LISTENER].revents && s->lis.fd >= 0)
			from_listener(s);
		batch_flush(s);
		if (s->pfds[P_INST].revents)
			accept_one(s, REQ_INSTANCE);
		if (s->pfds[P_ADMIN].revents)
			accept_one(s, REQ_ADMIN);
		guard_track(d);
	}
}

/*
 * A clean stop: nothing is served any more, so every answered change is in the store; one
 * last counter advance, and the guard says "clean" (rollback.h). If the TPM cannot do it
 * now, the next start reports a crash window instead.
 */
static void stop_clean(struct mgrd *d)
{
	char err[1024];

	tpm_worker_stop(d->worker); /* joined: an advance in flight ran or never started */
	d->worker = NULL;
	if (!d->provisioned)
		return;
	if (d->rb.in_flight) {
		/* its result was not collected: the finish reads the counter first */
		d->rb.in_flight = false;
		d->rb.uncertain = true;
	}
	if (rollback_finish(&d->rb, d->store, 5000, err, sizeof(err)) != RB_OK)
		log_warnx("stopping without the clean record (the next start reports a crash "
			  "window): %s",
			  err);
	else
		log_info("stopped cleanly: store guard epoch %" PRIu64 ", NV counter 0x%08x at "
			 "%" PRIu64,
			 d->rb.epoch, d->rb.nv_index, d->rb.nv_value);
}

/* Each instance costs the manager two descriptors (its connection and its pidfd): lift the
 * soft limit to the hard one so a host full of guests does not hit the default 1024. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("setrlimit(RLIMIT_NOFILE)");
	}
}

static int start(struct server *s)
{
	struct mgrd *d = &s->d;
	char err[512];
	int rc;

	umask(077);
	raise_fd_limit();
	if (d->opts.daemon && daemon_start(&s->ready_fd, EXIT_START, err, sizeof(err)) < 0) {
		log_warnx("%s", err);
		return EXIT_START;
	}
	/* keys live in locked memory; no core dumps, no ptrace by non-root */
	if (prctl(PR_SET_DUMPABLE, 0) < 0)
		log_warn("prctl(PR_SET_DUMPABLE)");
	if (mlockall(MCL_CURRENT | MCL_FUTURE) < 0)
		log_warn("mlockall: keys may be swapped out");
	if (d->opts.admin_group) {
		struct group *gr = getgrnam(d->opts.admin_group);

		if (!gr) {
			log_warnx("--admin-group %s: no such group", d->opts.admin_group);
			return EXIT_START;
		}
		d->have_admin_gid = true;
		d->admin_gid = gr->gr_gid;
	}
	if (listener_prepare(&s->lis, d->opts.listener_user, err, sizeof(err)) < 0) {
		log_warnx("%s", err);
		return EXIT_START;
	}
	s->rbuf = malloc(MGR_MAX_MSG + 1);
	s->wbuf = malloc(MGR_MAX_MSG);
	s->pbuf = malloc(PRIV_MSG_MAX + 1);
	s->pm = malloc(sizeof(*s->pm));
	d->msg = malloc(sizeof(*d->msg));
	d->req = malloc(sizeof(*d->req));
	if (!s->rbuf || !s->wbuf || !s->pbuf || !s->pm || !d->msg || !d->req) {
		log_warnx("out of memory");
		return EXIT_START;
	}
	rc = open_store_and_tpm(d);
	if (rc != EXIT_OK)
		return rc;
	if (tpm_worker_start(&d->worker, d->tpm, err, sizeof(err)) < 0) {
		log_warnx("%s", err);
		return EXIT_START;
	}
	if (instances_journal_open(d, err, sizeof(err)) < 0) {
		log_warnx("%s", err);
		return EXIT_START;
	}
	if (open_sockets(s) < 0 || setup_signals(s) < 0)
		return EXIT_START;
	if (listener_spawn(&s->lis, err, sizeof(err)) < 0) {
		log_warnx("cannot start the listener: %s", err);
		return EXIT_START;
	}
	if (daemon_write_pid(d->opts.pid_file, -1, true, err, sizeof(err)) < 0) {
		log_warnx("%s", err);
		return EXIT_START;
	}
	s->pid_written = d->opts.pid_file != NULL;
	log_info("ready: instance socket %s, admin socket %s, store %s", d->opts.instance_socket,
		 d->opts.admin_socket, d->opts.store);
	daemon_ready(&s->ready_fd, EXIT_OK);
	return EXIT_OK;
}

static void cleanup(struct server *s)
{
	struct mgrd *d = &s->d;

	tpm_worker_stop(d->worker);
	d->worker = NULL;
	instances_journal_close(d);
	listener_close(&s->lis); /* it exits when its end of the socketpair closes */
	while (s->nconns > 0)
		conn_close(s, s->nconns - 1);
	free(s->conns);
	for (int i = 0; i < 2; i++)
		if (s->listen_fd[i] >= 0)
			close(s->listen_fd[i]);
	if (s->sockets_made) {
		unlink(d->opts.instance_socket);
		unlink(d->opts.admin_socket);
	}
	if (s->pid_written) /* never another process's: only the file written here */
		unlink(d->opts.pid_file);
	if (s->sig_fd >= 0)
		close(s->sig_fd);
	instances_free(&d->inst);
	cl_free(&d->limits);
	labels_free(&d->labels);
	store_close(d->store);
	host_tpm_close(d->tpm);
	OPENSSL_cleanse(d->root_key, sizeof(d->root_key));
	free(s->rbuf);
	free(s->wbuf);
	free(s->pbuf);
	free(s->pm);
	free(s->pfds);
	free(d->msg);
	free(d->req);
}

int main(int argc, char **argv)
{
	static struct server s;
	char err[512];
	int rc;

	if (argc > 1 && strcmp(argv[1], LISTENER_ARG) == 0)
		return listener_main(argc, argv);
	s.sig_fd = s.listen_fd[0] = s.listen_fd[1] = s.ready_fd = -1;
	s.lis.fd = s.lis.exe_fd = -1;
	log_init("vtpmmgrd", 2, LOG_LVL_INFO);
	if (mgrd_parse_args(argc, argv, &s.d.opts, err, sizeof(err)) < 0) {
		fprintf(stderr, "vtpmmgrd: %s\n", err);
		return EXIT_START;
	}
	if (s.d.opts.help) {
		usage(stdout);
		return EXIT_OK;
	}
	if (s.d.opts.version) {
		printf("vtpmmgrd %s (vTPM manager; store schema %d)\n", VTPMMGRD_VERSION,
		       STORE_SCHEMA_VERSION);
		return EXIT_OK;
	}
	if (setup_log(&s.d.opts) < 0)
		return EXIT_START;
	rc = start(&s);
	if (rc == EXIT_OK) {
		rc = run(&s);
		if (rc == EXIT_OK)
			stop_clean(&s.d);
	} else {
		daemon_ready(&s.ready_fd, rc);
	}
	cleanup(&s);
	return rc;
}
