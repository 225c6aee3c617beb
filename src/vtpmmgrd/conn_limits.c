/*
 * conn_limits.c — per-uid and per-pid bounds on what the instance socket's peers cost the
 * manager (see conn_limits.h for the policy).
 *
 * Two open-addressing hash tables (linear probing, deletion by backward shift, so no
 * tombstones accumulate), keyed by uid and by pid. Entries are found anew on every call:
 * a pointer into a table is not kept across an insertion or a deletion.
 */
#include "vtpmmgrd/conn_limits.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct cl_config defaults = {
    .max_conns = CL_DEFAULT_MAX_CONNS,
    .max_per_pid = CL_DEFAULT_MAX_PER_PID,
    .max_per_uid = CL_DEFAULT_MAX_PER_UID,
    .idle_timeout_ms = CL_DEFAULT_IDLE_TIMEOUT_S * 1000u,
    .audit_refusals = CL_DEFAULT_AUDIT_REFUSALS,
    .interval_ms = CL_DEFAULT_INTERVAL_S * 1000u,
    .hash_budget = CL_DEFAULT_HASH_BUDGET,
};

void cl_config_default(struct cl_config *c)
{
	*c = defaults;
}

int64_t cl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cl_init(struct conn_limits *l, const struct cl_config *cfg)
{
	memset(l, 0, sizeof(*l));
	l->cfg = cfg;
	l->overflow.key = CL_OVERFLOW_UID;
	l->overflow.used = true;
}

static void map_free(struct cl_map *m)
{
	free(m->v);
	memset(m, 0, sizeof(*m));
}

void cl_free(struct conn_limits *l)
{
	map_free(&l->uids);
	map_free(&l->pids);
}

const struct cl_config *cl_cfg(const struct conn_limits *l)
{
	return l->cfg ? l->cfg : &defaults;
}

/* ---- the hash tables ------------------------------------------------------------------ */

static size_t home(const struct cl_map *m, uint32_t key)
{
	return (size_t)((key * 2654435761u) ^ (key >> 16)) & (m->cap - 1);
}

static struct cl_entry *map_find(const struct cl_map *m, uint32_t key)
{
	size_t i;

	if (m->cap == 0)
		return NULL;
	for (i = home(m, key); m->v[i].used; i = (i + 1) & (m->cap - 1))
		if (m->v[i].key == key)
			return &m->v[i];
	return NULL;
}

static int map_grow(struct cl_map *m)
{
	size_t cap = m->cap ? 2 * m->cap : 64, i, j;
	struct cl_entry *v = calloc(cap, sizeof(*v)), *old = m->v;
	size_t oldcap = m->cap;

	if (!v)
		return -1;
	m->v = v;
	m->cap = cap;
	for (i = 0; i < oldcap; i++) {
		if (!old[i].used)
			continue;
		for (j = home(m, old[i].key); v[j].used; j = (j + 1) & (cap - 1))
			;
		v[j] = old[i];
	}
	free(old);
	return 0;
}

/* The entry of key, created (zeroed) if missing; NULL if out of memory. */
static struct cl_entry *map_get(struct cl_map *m, uint32_t key)
{
	struct cl_entry *e = map_find(m, key);
	size_t i;

	if (e)
		return e;
	if ((m->n + 1) * 2 > m->cap && map_grow(m) < 0)
		return NULL;
	for (i = home(m, key); m->v[i].used; i = (i + 1) & (m->cap - 1))
		;
	memset(&m->v[i], 0, sizeof(m->v[i]));
	m->v[i].key = key;
	m->v[i].used = true;
	m->n++;
	return &m->v[i];
}

static void map_del(struct cl_map *m, struct cl_entry *e)
{
	size_t mask = m->cap - 1, i = (size_t)(e - m->v), j = i, k;

	for (;;) {
		j = (j + 1) & mask;
		if (!m->v[j].used)
			break;
		k = home(m, m->v[j].key);
		/* v[j] stays if its home lies cyclically in (i, j] */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		m->v[i] = m->v[j];
		i = j;
	}
	m->v[i].used = false;
	m->n--;
	if (m->n == 0)
		map_free(m);
}

/* The uid's entry (the shared overflow entry when the table is at CL_MAX_UIDS, or out of
 * memory). Never NULL. */
static struct cl_entry *uid_entry(struct conn_limits *l, uid_t uid)
{
	struct cl_entry *e = map_find(&l->uids, (uint32_t)uid);

	if (e)
		return e;
	if (l->uids.n < CL_MAX_UIDS && (uint32_t)uid != CL_OVERFLOW_UID)
		e = map_get(&l->uids, (uint32_t)uid);
	return e ? e : &l->overflow;
}

/* The entry c is counted in (never NULL for a counted connection). */
static struct cl_entry *conn_entry(const struct conn_limits *l, const struct cl_conn *c)
{
	struct cl_entry *e = c->overflow ? NULL : map_find(&l->uids, (uint32_t)c->uid);

	return e ? e : (struct cl_entry *)&l->overflow;
}

static void uid_maybe_forget(struct conn_limits *l, struct cl_entry *e)
{
	if (e != &l->overflow && e->conns == 0 && e->win_end == 0)
		map_del(&l->uids, e);
}

/* ---- connections ---------------------------------------------------------------------- */

enum cl_verdict cl_admit(const struct conn_limits *l, const struct cl_conn *c)
{
	const struct cl_config *cfg = cl_cfg(l);
	const struct cl_entry *e;

	if (c->trusted)
		return CL_ADMIT;
	e = map_find(&l->pids, (uint32_t)c->pid);
	if (cfg->max_per_pid && e && e->conns >= cfg->max_per_pid)
		return CL_REFUSE_PID;
	e = map_find(&l->uids, (uint32_t)c->uid);
	if (!e && l->uids.n >= CL_MAX_UIDS)
		e = &l->overflow;
	if (cfg->max_per_uid && e && e->unopened >= cfg->max_per_uid)
		return CL_REFUSE_UID;
	return CL_ADMIT;
}

int cl_add(struct conn_limits *l, struct cl_conn *c)
{
	struct cl_entry *p = map_get(&l->pids, (uint32_t)c->pid), *u;

	if (!p)
		return -1;
	u = uid_entry(l, c->uid);
	c->overflow = u == &l->overflow;
	p->conns++;
	u->conns++;
	if (!c->opened)
		u->unopened++;
	c->counted = true;
	return 0;
}

void cl_opened(struct conn_limits *l, struct cl_conn *c)
{
	struct cl_entry *u;

	if (c->opened)
		return;
	c->opened = true;
	if (!c->counted)
		return;
	u = conn_entry(l, c);
	if (u->unopened > 0)
		u->unopened--;
}

void cl_unopened(struct conn_limits *l, struct cl_conn *c, int64_t now)
{
	if (!c->opened)
		return;
	c->opened = false;
	c->since_ms = now;
	if (c->counted)
		conn_entry(l, c)->unopened++;
}

void cl_remove(struct conn_limits *l, struct cl_conn *c)
{
	struct cl_entry *e;

	if (!c->counted)
		return;
	c->counted = false;
	e = map_find(&l->pids, (uint32_t)c->pid);
	if (e && --e->conns == 0)
		map_del(&l->pids, e);
	e = conn_entry(l, c);
	if (e->conns > 0)
		e->conns--;
	if (!c->opened && e->unopened > 0)
		e->unopened--;
	uid_maybe_forget(l, e);
}

int64_t cl_idle_left(const struct conn_limits *l, const struct cl_conn *c, int64_t now)
{
	const struct cl_config *cfg = cl_cfg(l);
	int64_t left;

	if (c->opened || cfg->idle_timeout_ms == 0)
		return -1;
	left = c->since_ms + (int64_t)cfg->idle_timeout_ms - now;
	return left > 0 ? left : 0;
}

bool cl_idle_expired(const struct conn_limits *l, const struct cl_conn *c, int64_t now)
{
	return cl_idle_left(l, c, now) == 0;
}

/* The uid holding the most unopened connections among trusted or untrusted ones, found by a
 * pass over the connections (the tables do not know who is trusted). */
static long victim_of(size_t n, const struct cl_conn *(*get)(void *arg, size_t i), void *arg,
		      bool trusted, const struct conn_limits *l)
{
	const struct cl_entry *e, *best = NULL;
	long victim = -1;
	size_t i;

	for (i = 0; i < n; i++) {
		const struct cl_conn *c = get(arg, i);

		if (!c || c->opened || c->trusted != trusted)
			continue;
		e = conn_entry(l, c);
		if (!best || e->unopened > best->unopened)
			best = e;
	}
	if (!best)
		return -1;
	for (i = 0; i < n; i++) {
		const struct cl_conn *c = get(arg, i), *v;

		if (!c || c->opened || c->trusted != trusted)
			continue;
		e = conn_entry(l, c);
		if (e != best)
			continue;
		v = victim >= 0 ? get(arg, (size_t)victim) : NULL;
		if (!v || c->since_ms < v->since_ms)
			victim = (long)i;
	}
	return victim;
}

long cl_pick_victim(const struct conn_limits *l, bool trusted, size_t n,
		    const struct cl_conn *(*get)(void *arg, size_t i), void *arg)
{
	long v = victim_of(n, get, arg, false, l);

	if (v < 0 && trusted)
		v = victim_of(n, get, arg, true, l);
	return v;
}

/* ---- windows -------------------------------------------------------------------------- */

static void window_open(struct conn_limits *l, struct cl_entry *e, int64_t now)
{
	if (e->win_end)
		return;
	e->win_end = now + (int64_t)cl_cfg(l)->interval_ms;
	if (e->win_end == 0)
		e->win_end = 1;
	if (l->next_close == 0 || e->win_end < l->next_close)
		l->next_close = e->win_end;
}

bool cl_note(struct conn_limits *l, uid_t uid, enum cl_event ev, int64_t now)
{
	struct cl_entry *e = uid_entry(l, uid);

	window_open(l, e, now);
	if (e->count[ev] < UINT32_MAX)
		e->count[ev]++;
	return e->count[ev] == 1;
}

bool cl_audit_refusal(struct conn_limits *l, uid_t uid, int64_t now)
{
	const struct cl_config *cfg = cl_cfg(l);
	struct cl_entry *e = uid_entry(l, uid);

	window_open(l, e, now);
	if (e->count[CL_EV_REFUSAL] < UINT32_MAX)
		e->count[CL_EV_REFUSAL]++;
	if (cfg->audit_refusals == 0 || e->rows < cfg->audit_refusals) {
		e->rows++;
		return true;
	}
	if (e->suppressed < UINT32_MAX)
		e->suppressed++;
	return false;
}

bool cl_charge_hash(struct conn_limits *l, uid_t uid, uint64_t bytes, int64_t now)
{
	uint64_t budget = cl_cfg(l)->hash_budget;
	struct cl_entry *e = uid_entry(l, uid);

	window_open(l, e, now);
	if (budget && (e->hashed > budget || bytes > budget - e->hashed)) {
		if (e->count[CL_EV_HASH_REFUSED] < UINT32_MAX)
			e->count[CL_EV_HASH_REFUSED]++;
		return false;
	}
	e->hashed += bytes;
	return true;
}

bool cl_hash_hook(void *arg, uid_t uid, uint64_t bytes, char *err, size_t errlen)
{
	struct conn_limits *l = arg;
	const struct cl_config *cfg = cl_cfg(l);

	if (cl_charge_hash(l, uid, bytes, cl_now_ms()))
		return true;
	snprintf(err, errlen,
		 "uid %lu has had its %llu MiB of executables hashed in this %u-s window: "
		 "refused until it ends",
		 (unsigned long)uid, (unsigned long long)(cfg->hash_budget >> 20),
		 cfg->interval_ms / 1000);
	return false;
}

bool cl_report_needed(const struct cl_report *r)
{
	int k;

	if (r->suppressed)
		return true;
	for (k = 0; k < CL_EV_N; k++)
		if (r->count[k] > 1 && !(k == CL_EV_REFUSAL && r->count[k] == r->rows))
			return true;
	return false;
}

static void window_close(struct cl_entry *e, void (*report)(void *, const struct cl_report *),
			 void *arg)
{
	struct cl_report r = {
	    .uid = e->key, .rows = e->rows, .suppressed = e->suppressed, .hashed = e->hashed};

	memcpy(r.count, e->count, sizeof(r.count));
	e->win_end = 0;
	memset(e->count, 0, sizeof(e->count));
	e->rows = 0;
	e->suppressed = 0;
	e->hashed = 0;
	if (report)
		report(arg, &r);
}

int64_t cl_tick(struct conn_limits *l, int64_t now,
		void (*report)(void *arg, const struct cl_report *r), void *arg)
{
	int64_t next = 0;
	size_t i;

	if (l->next_close == 0)
		return -1;
	if (now < l->next_close)
		return l->next_close - now;
	if (l->overflow.win_end && l->overflow.win_end <= now)
		window_close(&l->overflow, report, arg);
	/* a deletion shifts later entries back into slot i: look at slot i again then */
	for (i = 0; i < l->uids.cap;) {
		struct cl_entry *e = &l->uids.v[i];
		size_t n = l->uids.n;

		if (e->used && e->win_end && e->win_end <= now) {
			window_close(e, report, arg);
			uid_maybe_forget(l, e);
			if (l->uids.n != n && l->uids.cap > 0 && l->uids.v[i].used)
				continue;
		}
		i++;
	}
	for (i = 0; i < l->uids.cap; i++)
		if (l->uids.v[i].used && l->uids.v[i].win_end &&
		    (next == 0 || l->uids.v[i].win_end < next))
			next = l->uids.v[i].win_end;
	if (l->overflow.win_end && (next == 0 || l->overflow.win_end < next))
		next = l->overflow.win_end;
	l->next_close = next;
	return next ? next - now : -1;
}
