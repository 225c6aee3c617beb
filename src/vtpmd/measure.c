#include "vtpmd/measure.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/atomic_file.h"
#include "common/errmsg.h"
#include "common/log.h"
#include "vtpmd/engine.h"
#include "vtpmd/event_log.h"
#include "vtpmd/tpm_cmd.h"

enum item { ITEM_KERNEL, ITEM_INITRD, ITEM_CMDLINE, NITEMS };

#define READ_CHUNK (256 * 1024)

struct bank {
	TPMI_ALG_HASH alg;
	bool hashed;
	TPMU_HA digest[NITEMS];
};

/* Hashed ahead, in a thread started with vtpmd, while QEMU and its firmware start: the
 * banks of libtpms's default allocation. Another bank is hashed when a boot needs it. */
static const TPMI_ALG_HASH ahead[] = {TPM2_ALG_SHA256, TPM2_ALG_SHA384, TPM2_ALG_SHA1,
				      TPM2_ALG_SHA512};

struct measure {
	pthread_t thread; /* hashes the ahead[] banks; joined before the first measurement */
	pid_t thread_pid; /* the process the thread runs in (not a --daemon child) */
	bool thread_running;
	bool thread_failed;
	char thread_err[256];
	int fd[ITEM_CMDLINE]; /* kernel, initrd (-1: none) */
	char *append;	      /* NULL: none */
	char *log_dir, *log_name;
	struct bank bank[TPM2_NUM_PCR_BANKS]; /* digests of every bank measured so far */
	size_t nbank;
	uint8_t *logged; /* the log as last written */
	size_t logged_len;
};

static void *hash_ahead(void *arg);

static const char *const item_name[NITEMS] = {"kernel", "initrd", "kernel command line"};

static const char *md_name(TPMI_ALG_HASH alg)
{
	switch (alg) {
	case TPM2_ALG_SHA1:
		return "SHA1";
	case TPM2_ALG_SHA256:
		return "SHA256";
	case TPM2_ALG_SHA384:
		return "SHA384";
	case TPM2_ALG_SHA512:
		return "SHA512";
	case TPM2_ALG_SM3_256:
		return "SM3";
	default:
		return NULL;
	}
}

static int open_input(const char *what, const char *path, int *fd, char *err, size_t errlen)
{
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return errmsg(err, errlen, "--measure-%s %s: %s", what, path, strerror(errno));
	return 0;
}

static int split_path(const char *path, char **dir, char **name)
{
	const char *slash = strrchr(path, '/');

	if (slash && !slash[1])
		return -1;
	*dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
	*name = strdup(slash ? slash + 1 : path);
	return *dir && *name ? 0 : -1;
}

int measure_open(struct measure **out, const char *kernel, const char *initrd, const char *append,
		 const char *eventlog, char *err, size_t errlen)
{
	struct measure *m = calloc(1, sizeof(*m));

	*out = NULL;
	if (!m)
		return errmsg(err, errlen, "out of memory");
	m->fd[ITEM_KERNEL] = m->fd[ITEM_INITRD] = -1;
	if (open_input("kernel", kernel, &m->fd[ITEM_KERNEL], err, errlen) < 0 ||
	    (initrd && open_input("initrd", initrd, &m->fd[ITEM_INITRD], err, errlen) < 0))
		goto fail;
	if (append && !(m->append = strdup(append))) {
		errmsg(err, errlen, "out of memory");
		goto fail;
	}
	if (eventlog && split_path(eventlog, &m->log_dir, &m->log_name) < 0) {
		errmsg(err, errlen, "--eventlog %s: not a file name", eventlog);
		goto fail;
	}
	*out = m;
	return 0;
fail:
	measure_free(m);
	return -1;
}

void measure_start_ahead(struct measure *m)
{
	/* Hash while QEMU starts, so the firmware's Startup does not wait for it. A thread that
	 * cannot start is not an error: the first boot hashes then. */
	if (!m || m->thread_running)
		return;
	m->thread_pid = getpid();
	m->thread_running = pthread_create(&m->thread, NULL, hash_ahead, m) == 0;
}

void measure_free(struct measure *m)
{
	int i;

	if (!m)
		return;
	if (m->thread_running && getpid() == m->thread_pid)
		pthread_join(m->thread, NULL);
	for (i = 0; i < ITEM_CMDLINE; i++)
		if (m->fd[i] >= 0)
			close(m->fd[i]);
	free(m->append);
	free(m->log_dir);
	free(m->log_name);
	free(m->logged);
	free(m);
}

/* Hash one file into every bank of want[] (one read of the file for all of them). */
static int hash_file(int fd, const char *what, struct bank **want, size_t n, enum item it,
		     char *err, size_t errlen)
{
	EVP_MD_CTX *ctx[TPM2_NUM_PCR_BANKS] = {0};
	uint8_t *buf = malloc(READ_CHUNK);
	off_t off = 0;
	ssize_t got;
	size_t i;
	int rc = -1;

	if (!buf)
		return errmsg(err, errlen, "out of memory");
	for (i = 0; i < n; i++) {
		ctx[i] = EVP_MD_CTX_new();
		if (!ctx[i] || !EVP_DigestInit_ex2(
				   ctx[i], EVP_get_digestbyname(md_name(want[i]->alg)), NULL)) {
			errmsg(err, errlen, "cannot hash the %s with %s", what,
			       md_name(want[i]->alg));
			goto out;
		}
	}
	while ((got = pread(fd, buf, READ_CHUNK, off)) != 0) {
		if (got < 0) {
			if (errno == EINTR)
				continue;
			errmsg(err, errlen, "reading the %s: %s", what, strerror(errno));
			goto out;
		}
		for (i = 0; i < n; i++)
			if (!EVP_DigestUpdate(ctx[i], buf, (size_t)got)) {
				errmsg(err, errlen, "hashing the %s failed", what);
				goto out;
			}
		off += got;
	}
	for (i = 0; i < n; i++)
		if (!EVP_DigestFinal_ex(ctx[i], (unsigned char *)&want[i]->digest[it], NULL)) {
			errmsg(err, errlen, "hashing the %s failed", what);
			goto out;
		}
	rc = 0;
out:
	for (i = 0; i < n; i++)
		EVP_MD_CTX_free(ctx[i]);
	free(buf);
	return rc;
}

/* The digests of every item in the banks algs[0..nalgs) not hashed yet, computed once per
 * bank for vtpmd's life (what was opened at start is what is hashed: the launcher's sealed
 * copies cannot change). */
static int hash_new_banks(struct measure *m, const TPMI_ALG_HASH *algs, size_t nalgs, char *err,
			  size_t errlen)
{
	struct bank *todo[TPM2_NUM_PCR_BANKS];
	size_t i, j, n = 0;

	for (i = 0; i < nalgs && i < TPM2_NUM_PCR_BANKS; i++) {
		struct bank *b = NULL;

		for (j = 0; j < m->nbank; j++)
			if (m->bank[j].alg == algs[i])
				b = &m->bank[j];
		if (b)
			continue;
		if (!md_name(algs[i]) || m->nbank == TPM2_NUM_PCR_BANKS)
			return errmsg(err, errlen,
				      "PCR bank of hash algorithm 0x%04x: vtpmd cannot measure "
				      "into it",
				      algs[i]);
		b = &m->bank[m->nbank++];
		memset(b, 0, sizeof(*b));
		b->alg = algs[i];
		todo[n++] = b;
	}
	if (n == 0)
		return 0;
	if (hash_file(m->fd[ITEM_KERNEL], item_name[ITEM_KERNEL], todo, n, ITEM_KERNEL, err,
		      errlen) < 0 ||
	    (m->fd[ITEM_INITRD] >= 0 && hash_file(m->fd[ITEM_INITRD], item_name[ITEM_INITRD], todo,
						  n, ITEM_INITRD, err, errlen) < 0))
		goto fail;
	for (i = 0; m->append && i < n; i++)
		if (!EVP_Digest(m->append, strlen(m->append),
				(unsigned char *)&todo[i]->digest[ITEM_CMDLINE], NULL,
				EVP_get_digestbyname(md_name(todo[i]->alg)), NULL)) {
			errmsg(err, errlen, "hashing the kernel command line failed");
			goto fail;
		}
	for (i = 0; i < n; i++)
		todo[i]->hashed = true;
	return 0;
fail:
	m->nbank -= n; /* those banks were not hashed: again at the next boot */
	return -1;
}

static int hash_banks(struct measure *m, const TPML_PCR_SELECTION *sel, char *err, size_t errlen)
{
	TPMI_ALG_HASH algs[TPM2_NUM_PCR_BANKS];
	size_t i;

	for (i = 0; i < sel->count && i < TPM2_NUM_PCR_BANKS; i++)
		algs[i] = sel->pcrSelections[i].hash;
	return hash_new_banks(m, algs, i, err, errlen);
}

static void *hash_ahead(void *arg)
{
	struct measure *m = arg;

	if (hash_new_banks(m, ahead, sizeof(ahead) / sizeof(ahead[0]), m->thread_err,
			   sizeof(m->thread_err)) < 0)
		m->thread_failed = true;
	return NULL;
}

/* The thread's banks are the measurement's from here on. */
static int join_ahead(struct measure *m, char *err, size_t errlen)
{
	if (!m->thread_running)
		return 0;
	if (getpid() != m->thread_pid) {
		/* A --daemon child: the thread stayed in the parent, and the banks copied at fork
		 * may be half written. Hash here, at this first boot. */
		m->thread_running = false;
		m->nbank = 0;
		return 0;
	}
	pthread_join(m->thread, NULL);
	m->thread_running = false;
	if (m->thread_failed)
		return errmsg(err, errlen, "%s", m->thread_err);
	return 0;
}

/* The digests of item it in the banks of sel, in its order. */
static void digests_of(const struct measure *m, const TPML_PCR_SELECTION *sel, enum item it,
		       TPML_DIGEST_VALUES *out)
{
	size_t i, j;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < sel->count; i++)
		for (j = 0; j < m->nbank; j++)
			if (m->bank[j].alg == sel->pcrSelections[i].hash) {
				out->digests[out->count].hashAlg = m->bank[j].alg;
				out->digests[out->count].digest = m->bank[j].digest[it];
				out->count++;
			}
}

static int run(struct engine *e, const uint8_t *cmd, size_t len, const char *what, char *err,
	       size_t errlen)
{
	const uint8_t *rsp;
	uint32_t rsp_len;
	TPM2_RC rc;

	if (len == 0)
		return errmsg(err, errlen, "cannot build the command that measures the %s", what);
	engine_process(e, cmd, (uint32_t)len, &rsp, &rsp_len);
	rc = tpm_rsp_rc(rsp, rsp_len);
	if (rc != TPM2_RC_SUCCESS)
		return errmsg(err, errlen, "measuring the %s: the TPM answered 0x%x", what, rc);
	return 0;
}

static void write_log(struct measure *m, const TPML_DIGEST_VALUES d[NITEMS])
{
	static const char kernel_ev[] = "vtpm: kernel", initrd_ev[] = "vtpm: initrd";
	struct event_log_entry ev[NITEMS];
	TPMI_ALG_HASH banks[TPM2_NUM_PCR_BANKS];
	uint8_t *log;
	size_t i, n = 0, len;

	for (i = 0; i < d[ITEM_KERNEL].count; i++)
		banks[i] = d[ITEM_KERNEL].digests[i].hashAlg;
	ev[n++] = (struct event_log_entry){MEASURE_PCR_KERNEL, EV_IPL, &d[ITEM_KERNEL],
					   (const uint8_t *)kernel_ev, sizeof(kernel_ev) - 1};
	if (m->fd[ITEM_INITRD] >= 0)
		ev[n++] =
		    (struct event_log_entry){MEASURE_PCR_INITRD, EV_IPL, &d[ITEM_INITRD],
					     (const uint8_t *)initrd_ev, sizeof(initrd_ev) - 1};
	if (m->append)
		ev[n++] = (struct event_log_entry){MEASURE_PCR_INITRD, EV_IPL, &d[ITEM_CMDLINE],
						   (const uint8_t *)m->append,
						   (uint32_t)strlen(m->append)};
	if (event_log_build(banks, d[ITEM_KERNEL].count, ev, n, &log, &len) < 0) {
		log_warnx("--eventlog: cannot build the event log");
		return;
	}
	if (m->logged && m->logged_len == len && memcmp(m->logged, log, len) == 0) {
		free(log);
		return; /* the same banks as at the last boot: the file is up to date */
	}
	if (atomic_file_write(m->log_dir, m->log_name, log, len, 0644, NULL) != ATOMIC_OK) {
		log_warn("--eventlog: cannot write %s/%s", m->log_dir, m->log_name);
		free(log);
		return;
	}
	free(m->logged);
	m->logged = log;
	m->logged_len = len;
}

/* The allocated banks of sel: those with at least one PCR selected. */
static void allocated(const TPML_PCR_SELECTION *sel, TPML_PCR_SELECTION *out)
{
	size_t i, j;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < sel->count; i++)
		for (j = 0; j < sel->pcrSelections[i].sizeofSelect; j++)
			if (sel->pcrSelections[i].pcrSelect[j]) {
				out->pcrSelections[out->count++] = sel->pcrSelections[i];
				break;
			}
}

int measure_boot(struct measure *m, struct engine *e, char *err, size_t errlen)
{
	TPML_PCR_SELECTION all;
	uint8_t cmd[TPM_CMD_MAX];
	TPML_PCR_SELECTION sel;
	TPML_DIGEST_VALUES d[NITEMS];
	const uint8_t *rsp;
	uint32_t rsp_len;
	size_t len;

	len = tpm_cmd_get_pcr_banks(cmd, sizeof(cmd));
	if (len == 0)
		return errmsg(err, errlen, "cannot build TPM2_GetCapability");
	engine_process(e, cmd, (uint32_t)len, &rsp, &rsp_len);
	if (tpm_rsp_pcr_banks(rsp, rsp_len, &all) < 0)
		return errmsg(err, errlen, "cannot read the TPM's PCR banks (TPM answered 0x%x)",
			      tpm_rsp_rc(rsp, rsp_len));
	allocated(&all, &sel);
	if (join_ahead(m, err, errlen) < 0 || hash_banks(m, &sel, err, errlen) < 0)
		return -1;
	for (len = 0; len < NITEMS; len++)
		digests_of(m, &sel, (enum item)len, &d[len]);
	if (d[ITEM_KERNEL].count == 0)
		return errmsg(err, errlen, "the TPM has no PCR bank allocated");
	if (run(e, cmd, tpm_cmd_pcr_extend(cmd, sizeof(cmd), MEASURE_PCR_KERNEL, &d[ITEM_KERNEL]),
		item_name[ITEM_KERNEL], err, errlen) < 0)
		return -1;
	if (m->fd[ITEM_INITRD] >= 0 &&
	    run(e, cmd, tpm_cmd_pcr_extend(cmd, sizeof(cmd), MEASURE_PCR_INITRD, &d[ITEM_INITRD]),
		item_name[ITEM_INITRD], err, errlen) < 0)
		return -1;
	if (m->append &&
	    run(e, cmd, tpm_cmd_pcr_extend(cmd, sizeof(cmd), MEASURE_PCR_INITRD, &d[ITEM_CMDLINE]),
		item_name[ITEM_CMDLINE], err, errlen) < 0)
		return -1;
	if (m->log_name)
		write_log(m, d);
	return 0;
}
