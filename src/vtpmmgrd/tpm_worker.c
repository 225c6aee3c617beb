#include "vtpmmgrd/tpm_worker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vtpmmgrd/host_tpm.h"

struct tpm_worker {
	struct host_tpm *tpm;
	pthread_t thread;
	pthread_mutex_t tpm_lock; /* held while anyone sends to the TPM */
	pthread_mutex_t mu;	  /* guards the fields below */
	pthread_cond_t cv;
	int event_fd;
	bool stop;
	bool pending; /* a job waits for the thread */
	bool running; /* the thread works on it */
	bool done;    /* its result waits for collect */
	uint32_t nv_index;
	uint64_t current;
	bool verify;
	struct tpm_advance_result res;
};

static void advance(struct tpm_worker *w, uint32_t idx, uint64_t current, bool verify,
		    struct tpm_advance_result *res)
{
	uint64_t v = 0;

	memset(res, 0, sizeof(*res));
	pthread_mutex_lock(&w->tpm_lock);
	if (verify) {
		res->rc = host_tpm_counter_read(w->tpm, idx, &v, res->err, sizeof(res->err));
		if (res->rc != HOST_TPM_OK || v != current) {
			res->value = v;
			pthread_mutex_unlock(&w->tpm_lock);
			return; /* landed already (current + 1), moved, or unreadable */
		}
	}
	res->rc = host_tpm_counter_increment(w->tpm, idx, NULL, res->err, sizeof(res->err));
	res->value = current + 1;
	pthread_mutex_unlock(&w->tpm_lock);
}

static void *worker_main(void *arg)
{
	struct tpm_worker *w = arg;
	struct tpm_advance_result res;
	uint64_t one = 1;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->pending && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->stop)
			break;
		w->pending = false;
		w->running = true;
		pthread_mutex_unlock(&w->mu);
		advance(w, w->nv_index, w->current, w->verify, &res);
		pthread_mutex_lock(&w->mu);
		w->res = res;
		w->running = false;
		w->done = true;
		if (write(w->event_fd, &one, sizeof(one)) < 0) {
			/* an eventfd write fails only on overflow: the loop wakes anyway */
		}
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int tpm_worker_start(struct tpm_worker **out, struct host_tpm *tpm, char *err, size_t errlen)
{
	struct tpm_worker *w = calloc(1, sizeof(*w));
	sigset_t all, old;
	int rc;

	*out = NULL;
	if (!w) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	w->tpm = tpm;
	w->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->event_fd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		free(w);
		return -1;
	}
	pthread_mutex_init(&w->tpm_lock, NULL);
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	/* the thread takes no signal: they are the event loop's (signalfd) */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&w->thread, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the host TPM thread: %s", strerror(rc));
		close(w->event_fd);
		free(w);
		return -1;
	}
	*out = w;
	return 0;
}

void tpm_worker_stop(struct tpm_worker *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	close(w->event_fd);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	pthread_mutex_destroy(&w->tpm_lock);
	free(w);
}

int tpm_worker_fd(const struct tpm_worker *w)
{
	return w ? w->event_fd : -1;
}

bool tpm_worker_busy(const struct tpm_worker *w)
{
	struct tpm_worker *m = (struct tpm_worker *)w;
	bool busy;

	pthread_mutex_lock(&m->mu);
	busy = m->pending || m->running || m->done;
	pthread_mutex_unlock(&m->mu);
	return busy;
}

int tpm_worker_advance(struct tpm_worker *w, uint32_t nv_index, uint64_t current, bool verify)
{
	int rc = -1;

	pthread_mutex_lock(&w->mu);
	if (!w->pending && !w->running && !w->done) {
		w->nv_index = nv_index;
		w->current = current;
		w->verify = verify;
		w->pending = true;
		pthread_cond_signal(&w->cv);
		rc = 0;
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

int tpm_worker_collect(struct tpm_worker *w, struct tpm_advance_result *res)
{
	uint64_t n;
	int got = 0;

	if (read(w->event_fd, &n, sizeof(n)) < 0) {
		/* EAGAIN: nothing signalled; the done flag below decides */
	}
	pthread_mutex_lock(&w->mu);
	if (w->done) {
		*res = w->res;
		w->done = false;
		got = 1;
	}
	pthread_mutex_unlock(&w->mu);
	return got;
}

void tpm_worker_lock(struct tpm_worker *w)
{
	if (w)
		pthread_mutex_lock(&w->tpm_lock);
}

void tpm_worker_unlock(struct tpm_worker *w)
{
	if (w)
		pthread_mutex_unlock(&w->tpm_lock);
}
