#include "vtpmmgrd/rollback.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "vtpmmgrd/host_tpm.h"
#include "vtpmmgrd/store.h"
#include "vtpmmgrd/tpm_worker.h"

/* A TPM that does not know TPM_PT_ORDERLY_COUNT: the reference implementation's value. */
#define ORDERLY_COUNT_DEFAULT 255u
#define BACKOFF_FIRST_MS      200u

int64_t rollback_now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

const char *rollback_verdict_name(enum rb_verdict v)
{
	switch (v) {
	case RB_EXACT:
		return "exact";
	case RB_CRASH_WINDOW:
		return "crash-window";
	case RB_RESET_WINDOW:
		return "tpm-reset-window";
	case RB_PROVISIONED:
		return "provisioned";
	}
	return "unknown";
}

void rollback_init(struct rollback *rb, struct host_tpm *tpm, uint32_t nv_index, int64_t offset)
{
	memset(rb, 0, sizeof(*rb));
	rb->tpm = tpm;
	rb->nv_index = nv_index;
	rb->offset = offset;
	rb->orderly_count = ORDERLY_COUNT_DEFAULT;
	rb->interval_ms = RB_INTERVAL_MS_DEFAULT;
}

static int guard_write(struct rollback *rb, struct store *s, uint64_t epoch, uint8_t state,
		       char *err, size_t errlen)
{
	struct store_guard g = {
	    .epoch = epoch,
	    .state = state,
	    .tpm_reset_count = rb->reset_count,
	    .time = (int64_t)time(NULL),
	};

	if (store_guard_put(s, &g) != STORE_OK) {
		snprintf(err, errlen, "writing the store's rollback guard: %s", store_errmsg(s));
		return RB_ERR_STORE;
	}
	rb->epoch = epoch;
	if (store_counter(s, &rb->guard_counter) != STORE_OK)
		rb->guard_counter = 0;
	return RB_OK;
}

/* One increment on this thread, retrying a busy TPM for up to wait_ms. */
static int increment_now(struct rollback *rb, unsigned wait_ms, char *err, size_t errlen)
{
	int64_t until = rollback_now_ms() + wait_ms;
	unsigned pause = 50;
	uint64_t v;
	int rc = HOST_TPM_OK;

	for (;;) {
		if (rb->uncertain) {
			rc = host_tpm_counter_read(rb->tpm, rb->nv_index, &v, err, errlen);
			if (rc == HOST_TPM_OK && v == rb->nv_value + 1) {
				rb->nv_value = v;
				rb->uncertain = false;
				return RB_OK;
			}
			if (rc == HOST_TPM_OK && v != rb->nv_value) {
				snprintf(err, errlen,
					 "the host TPM NV counter 0x%08x moved outside vtpmmgrd "
					 "(at %" PRIu64 ", expected %" PRIu64 ")",
					 rb->nv_index, v, rb->nv_value);
				return RB_ERR_AHEAD;
			}
		}
		if (!rb->uncertain || rc == HOST_TPM_OK) {
			rc = host_tpm_counter_increment(rb->tpm, rb->nv_index, NULL, err, errlen);
			if (rc == HOST_TPM_OK) {
				rb->nv_value++;
				rb->uncertain = false;
				return RB_OK;
			}
			if (rc != HOST_TPM_ERR_BUSY)
				rb->uncertain = true;
		}
		if (rollback_now_ms() + pause > until)
			return rc == HOST_TPM_ERR_NOENT ? RB_ERR_NOENT : RB_ERR_TPM;
		usleep(pause * 1000);
		pause = pause < 1000 ? pause * 2 : 1000;
	}
}

int rollback_start(struct rollback *rb, struct store *s, bool accept_undecidable, char *err,
		   size_t errlen)
{
	struct store_guard g;
	struct host_tpm_clock clk;
	char terr[512];
	uint32_t j = ORDERLY_COUNT_DEFAULT;
	int64_t want, gap;
	bool power_loss, clean, stopping, advancing;
	int orderly = 0, rc;

	if (store_guard_get(s, &g) != STORE_OK) {
		snprintf(err, errlen, "reading the store's rollback guard: %s", store_errmsg(s));
		return RB_ERR_STORE;
	}
	rc = host_tpm_counter_read(rb->tpm, rb->nv_index, &rb->nv_value, terr, sizeof(terr));
	if (rc == HOST_TPM_ERR_NOENT) {
		snprintf(err, errlen,
			 "the host TPM NV counter 0x%08x that guards the store is not defined (the "
			 "host TPM was cleared, or the index removed): cannot rule out a rollback",
			 rb->nv_index);
		return RB_ERR_NOENT;
	}
	if (rc == HOST_TPM_OK)
		rc = host_tpm_read_clock(rb->tpm, &clk, terr, sizeof(terr));
	if (rc == HOST_TPM_OK)
		rc = host_tpm_counter_is_orderly(rb->tpm, rb->nv_index, &orderly, terr,
						 sizeof(terr));
	if (rc != HOST_TPM_OK) {
		snprintf(err, errlen, "reading the host TPM NV counter: %s", terr);
		return RB_ERR_TPM;
	}
	if (host_tpm_orderly_count(rb->tpm, &j, terr, sizeof(terr)) != HOST_TPM_OK)
		log_info("%s; assuming %u", terr, ORDERLY_COUNT_DEFAULT);
	rb->orderly = orderly;
	rb->orderly_count = j;
	rb->reset_count = clk.reset_count;
	rb->verdict_time = (int64_t)time(NULL);
	if (!orderly)
		log_warnx("the host TPM NV counter 0x%08x is not a hybrid (orderly) counter: every "
			  "advance is an NV write; 'vtpmctl host init --force' on an empty host "
			  "defines a hybrid one",
			  rb->nv_index);
	want = (int64_t)g.epoch + rb->offset;
	gap = (int64_t)rb->nv_value - want;
	power_loss = orderly && clk.reset_count != g.tpm_reset_count && !clk.safe;
	clean = g.state == STORE_GUARD_CLEAN;
	stopping = g.state == STORE_GUARD_STOPPING;
	advancing = g.state == STORE_GUARD_ADVANCING;
	if (gap < 0) {
		snprintf(err, errlen,
			 "the host TPM NV counter 0x%08x (at %" PRIu64 ") is behind the store "
			 "(which needs %" PRId64 "): the counter was replaced or the TPM cleared",
			 rb->nv_index, rb->nv_value, want);
		return RB_ERR_AHEAD;
	}
	if (power_loss && gap <= (int64_t)j + 1) {
		/* first: a power cut makes the clean mark and small gaps prove nothing */
		rb->verdict = RB_RESET_WINDOW;
		snprintf(rb->verdict_note, sizeof(rb->verdict_note),
			 "the host TPM was reset without an orderly shutdown (reset count %u -> "
			 "%u, clock not safe): its hybrid counter may have moved up to %u ahead, "
			 "so a copy of the store up to %u advances older than the newest cannot be "
			 "told from it (store guard epoch %" PRIu64 " needs NV value %" PRId64
			 ", NV counter 0x%08x is at %" PRIu64 ")",
			 g.tpm_reset_count, clk.reset_count, j, j + 1, g.epoch, want, rb->nv_index,
			 rb->nv_value);
	} else if ((clean && gap == 0) || (stopping && gap <= 1)) {
		/* stopping: it went down inside its last advance, after it served the last
		 * change: what the store holds is the newest */
		rb->verdict = RB_EXACT;
		snprintf(rb->verdict_note, sizeof(rb->verdict_note),
			 "the manager stopped %s and the store matches the host TPM counter: it is "
			 "the newest (store guard epoch %" PRIu64 ")",
			 clean ? "cleanly" : "while recording its clean stop", g.epoch);
	} else if ((g.state == STORE_GUARD_RUNNING && gap == 0) || (advancing && gap <= 1)) {
		rb->verdict = RB_CRASH_WINDOW;
		snprintf(rb->verdict_note, sizeof(rb->verdict_note),
			 "the manager did not stop cleanly (crash, kill or power loss): a copy of "
			 "the store taken after its last counter advance began (guard written at "
			 "%" PRId64 ", at most one advance interval of %u ms and one TPM command "
			 "before the stop) cannot be told from the newest store (store guard "
			 "epoch %" PRIu64 "%s needs NV value %" PRId64 ", NV counter 0x%08x is at "
			 "%" PRIu64 ")",
			 g.time, rb->interval_ms, g.epoch, advancing ? " (advancing)" : "", want,
			 rb->nv_index, rb->nv_value);
	} else {
		snprintf(err, errlen,
			 "the store is older than the host TPM's counter: rollback (store guard "
			 "epoch %" PRIu64 "%s needs NV value %" PRId64 ", NV counter 0x%08x is at "
			 "%" PRIu64 ")",
			 g.epoch,
			 clean	     ? " (clean)"
			 : stopping  ? " (stopping)"
			 : advancing ? " (advancing)"
				     : "",
			 want, rb->nv_index, rb->nv_value);
		return RB_ERR_ROLLBACK;
	}
	if (rb->verdict != RB_EXACT && !accept_undecidable) {
		snprintf(err, errlen,
			 "refusing to start (--after-crash refuse): %s; start with --after-crash "
			 "accept to run with this store",
			 rb->verdict_note);
		return RB_ERR_REFUSED;
	}
	/* open this run with an advance: from here on every earlier copy is behind */
	rb->epoch = g.epoch;
	if (guard_write(rb, s, (uint64_t)((int64_t)rb->nv_value - rb->offset),
			STORE_GUARD_ADVANCING, err, errlen) != RB_OK)
		return RB_ERR_STORE;
	rc = increment_now(rb, 10000, terr, sizeof(terr));
	if (rc != RB_OK) {
		snprintf(err, errlen, "advancing the host TPM NV counter: %s", terr);
		return rc;
	}
	if (guard_write(rb, s, (uint64_t)((int64_t)rb->nv_value - rb->offset), STORE_GUARD_RUNNING,
			err, errlen) != RB_OK)
		return RB_ERR_STORE;
	rb->advances++;
	rb->covered_ms = rollback_now_ms();
	rb->next_ms = rb->covered_ms + rb->interval_ms;
	return RB_OK;
}

void rollback_provisioned(struct rollback *rb, struct store *s, uint64_t v)
{
	struct host_tpm_clock clk;
	struct store_guard g;
	char err[512];
	int orderly = 0;

	rb->nv_value = v;
	rb->verdict = RB_PROVISIONED;
	rb->verdict_time = (int64_t)time(NULL);
	snprintf(rb->verdict_note, sizeof(rb->verdict_note), "provisioned by this run");
	if (host_tpm_read_clock(rb->tpm, &clk, err, sizeof(err)) == HOST_TPM_OK)
		rb->reset_count = clk.reset_count;
	if (host_tpm_counter_is_orderly(rb->tpm, rb->nv_index, &orderly, err, sizeof(err)) ==
	    HOST_TPM_OK)
		rb->orderly = orderly;
	if (host_tpm_orderly_count(rb->tpm, &rb->orderly_count, err, sizeof(err)) != HOST_TPM_OK)
		rb->orderly_count = ORDERLY_COUNT_DEFAULT;
	if (store_guard_get(s, &g) != STORE_OK ||
	    guard_write(rb, s, g.epoch, STORE_GUARD_RUNNING, err, sizeof(err)) != RB_OK) {
		log_warnx("host-init: %s", store_errmsg(s));
		rb->guard_lags = true;
	}
	rb->covered_ms = rollback_now_ms();
	rb->next_ms = rb->covered_ms + rb->interval_ms;
}

void rollback_changed(struct rollback *rb, uint64_t n)
{
	if (!rb->dirty && !rb->in_flight && rb->changes == 0)
		rb->covered_ms = rollback_now_ms(); /* the window opens with this change */
	rb->dirty = true;
	rb->changes += n;
}

int rollback_timeout_ms(const struct rollback *rb)
{
	int64_t left;

	if (rb->in_flight || (!rb->dirty && !rb->guard_lags))
		return -1;
	left = rb->next_ms - rollback_now_ms();
	return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

static void backoff(struct rollback *rb, int64_t now)
{
	rb->backoff_ms = rb->backoff_ms ? rb->backoff_ms * 2 : BACKOFF_FIRST_MS;
	if (rb->backoff_ms > RB_BACKOFF_MAX_MS)
		rb->backoff_ms = RB_BACKOFF_MAX_MS;
	rb->next_ms = now + rb->backoff_ms;
}

static void failed(struct rollback *rb, int64_t now, const char *why)
{
	rb->failures++;
	snprintf(rb->last_error, sizeof(rb->last_error), "%s", why);
	if (!rb->failing_since_ms)
		rb->failing_since_ms = now;
	if (!rb->failing_logged && now - rb->failing_since_ms >= RB_FAILING_REPORT_MS) {
		log_warnx("the store's rollback guard cannot advance for %lld s (%s): commits go "
			  "on, unguarded by the counter since then",
			  (long long)((now - rb->failing_since_ms) / 1000), why);
		rb->failing_logged = true;
	}
	backoff(rb, now);
}

static void succeeded(struct rollback *rb, int64_t now)
{
	if (rb->failing_logged)
		log_info("the store's rollback guard advances again (after %lld s)",
			 (long long)((now - rb->failing_since_ms) / 1000));
	rb->failing_since_ms = 0;
	rb->failing_logged = false;
	rb->backoff_ms = 0;
	rb->last_error[0] = '\0';
	rb->next_ms = now + rb->interval_ms;
}

void rollback_tick(struct rollback *rb, struct store *s, struct tpm_worker *w)
{
	int64_t now = rollback_now_ms();
	char err[512];

	if (rb->in_flight || now < rb->next_ms)
		return;
	if (rb->guard_lags) {
		if (guard_write(rb, s, (uint64_t)((int64_t)rb->nv_value - rb->offset),
				STORE_GUARD_RUNNING, err, sizeof(err)) != RB_OK) {
			failed(rb, now, err);
			return;
		}
		rb->guard_lags = false;
		succeeded(rb, now);
		return;
	}
	if (!rb->dirty)
		return;
	/* the marker first: a crash inside the advance must not look like a rollback */
	if (!rb->marked) {
		if (guard_write(rb, s, (uint64_t)((int64_t)rb->nv_value - rb->offset),
				STORE_GUARD_ADVANCING, err, sizeof(err)) != RB_OK) {
			failed(rb, now, err);
			return;
		}
		rb->marked = true;
	}
	if (tpm_worker_advance(w, rb->nv_index, rb->nv_value, rb->uncertain) < 0)
		return;
	rb->in_flight = true;
	rb->dirty = false;
}

void rollback_collect(struct rollback *rb, struct store *s, const struct tpm_advance_result *res)
{
	int64_t now = rollback_now_ms();
	char err[512];

	if (!rb->in_flight) {
		/* host-init replaced the guard meanwhile: the counter may have moved under it */
		rb->uncertain = true;
		return;
	}
	rb->in_flight = false;
	if (res->rc == HOST_TPM_ERR_BUSY) {
		rb->dirty = true;
		failed(rb, now, res->err);
		return;
	}
	if (res->rc != HOST_TPM_OK) {
		rb->dirty = true;
		rb->uncertain = true; /* it may have reached the TPM: read before the next */
		failed(rb, now, res->err);
		return;
	}
	rb->uncertain = false;
	if (res->value != rb->nv_value + 1) {
		/* Not ours: re-anchor to it (the running store is the newest by definition),
		 * or the next start would take the gap for a rollback. */
		log_warnx("the host TPM NV counter 0x%08x moved outside vtpmmgrd (at %" PRIu64
			  ", expected %" PRIu64 "); the store's guard follows it",
			  rb->nv_index, res->value, rb->nv_value + 1);
	}
	rb->nv_value = res->value;
	rb->advances++;
	rb->marked = false;
	if (guard_write(rb, s, (uint64_t)((int64_t)rb->nv_value - rb->offset), STORE_GUARD_RUNNING,
			err, sizeof(err)) != RB_OK) {
		rb->guard_lags = true;
		rb->dirty = true;
		failed(rb, now, err);
		return;
	}
	rb->changes = 0;
	rb->covered_ms = now;
	succeeded(rb, now);
}

int rollback_finish(struct rollback *rb, struct store *s, unsigned wait_ms, char *err,
		    size_t errlen)
{
	char terr[512];
	uint64_t v;
	int rc;

	if (rb->uncertain) {
		rc = host_tpm_counter_read(rb->tpm, rb->nv_index, &v, terr, sizeof(terr));
		if (rc != HOST_TPM_OK) {
			snprintf(err, errlen, "reading the host TPM NV counter: %s", terr);
			return RB_ERR_TPM;
		}
		rb->nv_value = v;
		rb->uncertain = false;
	}
	/* "stopping" first: a crash from here on leaves the newest store (nothing is served
	 * any more), and a copy taken while it ran is one advance behind the clean record */
	rc = guard_write(rb, s, (uint64_t)((int64_t)rb->nv_value - rb->offset),
			 STORE_GUARD_STOPPING, err, errlen);
	if (rc != RB_OK)
		return rc;
	rc = increment_now(rb, wait_ms, terr, sizeof(terr));
	if (rc != RB_OK) {
		snprintf(err, errlen, "advancing the host TPM NV counter: %s", terr);
		return rc;
	}
	rb->advances++;
	return guard_write(rb, s, (uint64_t)((int64_t)rb->nv_value - rb->offset), STORE_GUARD_CLEAN,
			   err, errlen);
}
