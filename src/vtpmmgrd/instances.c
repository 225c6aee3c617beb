#include "vtpmmgrd/instances.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vtpmmgrd/peer_identity.h"

static void drop(struct instances *t, size_t i)
{
	close(t->v[i].pidfd);
	t->v[i] = t->v[t->n - 1];
	t->n--;
}

static size_t index_of(const struct instances *t, const uint8_t uuid[16])
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (memcmp(t->v[i].uuid, uuid, 16) == 0)
			return i;
	return t->n;
}

struct instance *instances_find(struct instances *t, const uint8_t uuid[16])
{
	size_t i = index_of(t, uuid);

	if (i == t->n)
		return NULL;
	if (!peer_alive(t->v[i].pidfd)) {
		drop(t, i);
		return NULL;
	}
	return &t->v[i];
}

int instances_add(struct instances *t, const uint8_t uuid[16], pid_t pid, uid_t uid, int pidfd,
		  const char *label, const uint8_t bin_digest[32], char *err, size_t errlen)
{
	struct instance *in = instances_find(t, uuid);
	int fd;

	if (in && in->pid != pid) {
		snprintf(err, errlen, "already open by pid %ld", (long)in->pid);
		return -1;
	}
	fd = fcntl(pidfd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0) {
		snprintf(err, errlen, "cannot keep a pidfd: %s", strerror(errno));
		return -1;
	}
	if (!in) {
		if (t->n == INSTANCES_MAX) {
			snprintf(err, errlen, "%d vTPMs are open; no room for more", INSTANCES_MAX);
			close(fd);
			return -1;
		}
		if (t->n == t->cap) {
			size_t cap = t->cap ? t->cap * 2 : 16;
			struct instance *v = realloc(t->v, cap * sizeof(*v));

			if (!v) {
				snprintf(err, errlen, "out of memory");
				close(fd);
				return -1;
			}
			t->v = v;
			t->cap = cap;
		}
		in = &t->v[t->n++];
	} else {
		close(in->pidfd);
	}
	memcpy(in->uuid, uuid, 16);
	in->pid = pid;
	in->uid = uid;
	in->pidfd = fd;
	snprintf(in->label, sizeof(in->label), "%s", label);
	memcpy(in->bin_digest, bin_digest, 32);
	in->opened = time(NULL);
	in->start_ticks = 0;
	in->detached = false;
	return 0;
}

void instances_remove(struct instances *t, const uint8_t uuid[16])
{
	size_t i = index_of(t, uuid);

	if (i < t->n)
		drop(t, i);
}

size_t instances_reap(struct instances *t, void (*cb)(const struct instance *in, void *arg),
		      void *arg)
{
	size_t i = 0, n = 0;

	while (i < t->n) {
		if (!peer_alive(t->v[i].pidfd)) {
			if (cb)
				cb(&t->v[i], arg);
			drop(t, i);
			n++;
		} else {
			i++;
		}
	}
	return n;
}

void instances_free(struct instances *t)
{
	while (t->n > 0)
		drop(t, t->n - 1);
	free(t->v);
	memset(t, 0, sizeof(*t));
}
