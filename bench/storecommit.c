/* bench/storecommit.c — the manager store's commit cost against the number of vTPMs in it.
 *
 *   storecommit [-o OPS] [-r ROUNDS] [-d DIR]
 *
 * Three stores in a temporary directory under DIR (default $TMPDIR or /tmp), with 10, 1,000
 * and 10,000 vTPMs. Each round times OPS (default 100) store_vtpm_set_version commits on
 * each store in turn (each a durable transaction: WAL, synchronous=FULL), spread over its
 * vTPMs; rounds (default 15) alternate the stores so that drift of the disk hits all alike.
 * Prints, per store, the median over rounds of µs per commit (wall, CPU, and user CPU: the
 * store's own work, without the kernel's share of the fsyncs) and commits/s,
 * then store_verify's time (open + key + full check) with 10,000 vTPMs, then
 *
 *   storecommit: 10000 vs 10 vTPMs: wall X, CPU Y, user CPU Z (goal <= 1.2, on wall): met|NOT met
 *
 * (the goal is on the wall-clock ratio). Exit status 1 if a measurement failed.
 */
#include <dirent.h>
#include <getopt.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vtpmmgrd/store.h"

#define GOAL	 1.2
#define NSIZES	 3
#define MAXROUND 64

static const int sizes[NSIZES] = {10, 1000, 10000};
static const uint8_t key[STORE_MAC_KEY_LEN] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
					       12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
					       23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

struct bstore {
	char path[600];
	struct store *s;
	int n;
	uint64_t *version; /* the next version per vTPM */
	double wall[MAXROUND], cpu[MAXROUND], user[MAXROUND];
};

static double clock_us(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* CPU time in user mode: the store's own work, without the kernel's share of fsync */
static double user_us(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec * 1e6 + (double)ru.ru_utime.tv_usec;
}

static void vtpm_uuid(uint8_t u[STORE_UUID_LEN], int i)
{
	memset(u, 0x90, STORE_UUID_LEN);
	u[12] = (uint8_t)(i >> 24);
	u[13] = (uint8_t)(i >> 16);
	u[14] = (uint8_t)(i >> 8);
	u[15] = (uint8_t)i;
}

static int open_store(struct bstore *b, double *verify_us)
{
	char err[512];
	uint64_t c;
	double t0 = clock_us(CLOCK_MONOTONIC);

	if (store_open(&b->s, b->path, NULL, err, sizeof(err)) != STORE_OK) {
		fprintf(stderr, "storecommit: %s\n", err);
		return -1;
	}
	store_set_mac_key(b->s, key);
	if (store_verify(b->s, &c, err, sizeof(err)) != STORE_OK) {
		fprintf(stderr, "storecommit: %s\n", err);
		return -1;
	}
	if (verify_us)
		*verify_us = clock_us(CLOCK_MONOTONIC) - t0;
	return 0;
}

/* A store with one group and n vTPMs, added in one transaction. */
static int make_store(struct bstore *b, const char *dir, int n)
{
	struct store_group g;
	struct store_vtpm v;
	int rc;

	snprintf(b->path, sizeof(b->path), "%s/store-%d.db", dir, n);
	b->n = n;
	b->version = calloc((size_t)n, sizeof(*b->version));
	if (!b->version || open_store(b, NULL) < 0)
		return -1;
	memset(&g, 0, sizeof(g));
	memset(g.uuid, 0x60, sizeof(g.uuid));
	snprintf(g.name, sizeof(g.name), "bench");
	g.npatterns = 1;
	snprintf(g.patterns[0], sizeof(g.patterns[0]), "*:vm_r:vtpm_t");
	g.any_digest = true;
	g.wrapped_key_len = 60;
	memset(g.wrapped_key, 0x70, g.wrapped_key_len);
	rc = store_group_add(b->s, NULL, &g);
	if (rc == STORE_OK)
		rc = store_begin(b->s);
	for (int i = 0; i < n && rc == STORE_OK; i++) {
		memset(&v, 0, sizeof(v));
		vtpm_uuid(v.uuid, i);
		memcpy(v.group_uuid, g.uuid, sizeof(g.uuid));
		v.wrapped_key_len = 60;
		memset(v.wrapped_key, 0xa0 + (i & 0x1f), v.wrapped_key_len);
		v.version = 1;
		snprintf(v.state, sizeof(v.state), STORE_VTPM_CREATED);
		rc = store_vtpm_add(b->s, NULL, &v);
		b->version[i] = 2;
	}
	if (rc == STORE_OK)
		rc = store_commit(b->s);
	if (rc != STORE_OK) {
		fprintf(stderr, "storecommit: filling the store: %s\n", store_errmsg(b->s));
		return -1;
	}
	return 0;
}

/* ops commits; µs per commit into b->wall[r], b->cpu[r]. */
static int run_round(struct bstore *b, int r, int ops)
{
	uint8_t u[STORE_UUID_LEN], d[STORE_DIGEST_LEN];
	double w0 = clock_us(CLOCK_MONOTONIC), c0 = clock_us(CLOCK_PROCESS_CPUTIME_ID);
	double u0 = user_us();

	for (int k = 0; k < ops; k++) {
		/* a stride coprime with every size: the commits visit the whole b-tree */
		int i = (int)(((long)(r * ops + k) * 7919) % b->n);

		vtpm_uuid(u, i);
		memset(d, (int)(b->version[i] & 0xff), sizeof(d));
		if (store_vtpm_set_version(b->s, u, b->version[i], d) != STORE_OK) {
			fprintf(stderr, "storecommit: set_version: %s\n", store_errmsg(b->s));
			return -1;
		}
		b->version[i]++;
	}
	b->wall[r] = (clock_us(CLOCK_MONOTONIC) - w0) / ops;
	b->cpu[r] = (clock_us(CLOCK_PROCESS_CPUTIME_ID) - c0) / ops;
	b->user[r] = (user_us() - u0) / ops;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
	double s[MAXROUND];

	memcpy(s, v, (size_t)n * sizeof(*v));
	qsort(s, (size_t)n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void remove_dir(const char *dir)
{
	char p[1024];
	struct dirent *e;
	DIR *d = opendir(dir);

	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
			unlink(p);
		}
	if (d)
		closedir(d);
	rmdir(dir);
}

int main(int argc, char **argv)
{
	struct bstore b[NSIZES];
	const char *tmp = getenv("TMPDIR");
	char dir[512];
	double wall[NSIZES], cpu[NSIZES], user[NSIZES], ver[3], rw, rc_, ru;
	int ops = 100, rounds = 15, opt, status = 1;

	while ((opt = getopt(argc, argv, "o:r:d:")) != -1) {
		switch (opt) {
		case 'o':
			ops = atoi(optarg);
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		case 'd':
			tmp = optarg;
			break;
		default:
			fprintf(stderr, "usage: storecommit [-o OPS] [-r ROUNDS] [-d DIR]\n");
			return 2;
		}
	}
	if (ops < 1 || rounds < 1 || rounds > MAXROUND) {
		fprintf(stderr, "storecommit: OPS >= 1, 1 <= ROUNDS <= %d\n", MAXROUND);
		return 2;
	}
	snprintf(dir, sizeof(dir), "%s/vtpm-storecommit-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		perror("storecommit: mkdtemp");
		return 1;
	}
	memset(b, 0, sizeof(b));
	for (int i = 0; i < NSIZES; i++)
		if (make_store(&b[i], dir, sizes[i]) < 0)
			goto out;
	for (int r = 0; r < rounds; r++)
		for (int j = 0; j < NSIZES; j++) {
			/* alternate the order, so that no store always goes first */
			int i = r % 2 ? NSIZES - 1 - j : j;

			if (run_round(&b[i], r, ops) < 0)
				goto out;
		}
	printf("store commit (store_vtpm_set_version, WAL + synchronous=FULL), %d rounds of %d, "
	       "medians, in %s:\n",
	       rounds, ops, dir);
	for (int i = 0; i < NSIZES; i++) {
		wall[i] = median(b[i].wall, rounds);
		cpu[i] = median(b[i].cpu, rounds);
		user[i] = median(b[i].user, rounds);
		printf("  %6d vTPMs: %8.0f commits/s  %7.1f us/commit wall  %6.1f us/commit CPU "
		       "(%5.1f user)\n",
		       sizes[i], 1e6 / wall[i], wall[i], cpu[i], user[i]);
	}
	/* manager start: open + key + full verify of the largest store */
	store_close(b[NSIZES - 1].s);
	b[NSIZES - 1].s = NULL;
	for (int k = 0; k < 3; k++) {
		if (open_store(&b[NSIZES - 1], &ver[k]) < 0)
			goto out;
		store_close(b[NSIZES - 1].s);
		b[NSIZES - 1].s = NULL;
	}
	printf("  store_verify (open + full check) with %d vTPMs: %.1f ms (median of 3)\n",
	       sizes[NSIZES - 1], median(ver, 3) / 1e3);
	rw = wall[NSIZES - 1] / wall[0];
	rc_ = cpu[NSIZES - 1] / cpu[0];
	ru = user[NSIZES - 1] / user[0];
	printf("storecommit: %d vs %d vTPMs: wall %.2f, CPU %.2f, user CPU %.2f (goal <= %.1f, on "
	       "wall): %s\n",
	       sizes[NSIZES - 1], sizes[0], rw, rc_, ru, GOAL, rw <= GOAL ? "met" : "NOT met");
	status = 0;
out:
	for (int i = 0; i < NSIZES; i++) {
		store_close(b[i].s);
		free(b[i].version);
	}
	remove_dir(dir);
	return status;
}
