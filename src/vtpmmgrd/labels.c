#include "vtpmmgrd/labels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vtpmmgrd/peer_identity.h"

static void drop(struct labels *l, size_t i)
{
	close(l->v[i].pidfd);
	l->v[i] = l->v[l->n - 1];
	l->n--;
}

int labels_register(struct labels *l, pid_t pid, const char *label, const uint8_t *uuid,
		    int *replaced, char *err, size_t errlen)
{
	struct label_reg *r = NULL;
	size_t i;
	int pidfd;

	*replaced = 0;
	labels_reap(l);
	pidfd = peer_pin(pid, err, errlen);
	if (pidfd < 0)
		return -1;
	for (i = 0; i < l->n; i++) {
		if (l->v[i].pid == pid) {
			/* alive (reaped above), so the same process as the one just pinned */
			r = &l->v[i];
			close(r->pidfd);
			*replaced = 1;
			break;
		}
	}
	if (!r) {
		if (l->n == LABELS_MAX) {
			snprintf(err, errlen,
				 "%d labels are registered for live processes; no room for more",
				 LABELS_MAX);
			close(pidfd);
			return -1;
		}
		if (l->n == l->cap) {
			size_t cap = l->cap ? l->cap * 2 : 16;
			struct label_reg *v = realloc(l->v, cap * sizeof(*v));

			if (!v) {
				snprintf(err, errlen, "out of memory");
				close(pidfd);
				return -1;
			}
			l->v = v;
			l->cap = cap;
		}
		r = &l->v[l->n++];
	}
	r->pid = pid;
	r->pidfd = pidfd;
	snprintf(r->label, sizeof(r->label), "%s", label);
	r->has_uuid = uuid != NULL;
	if (uuid)
		memcpy(r->uuid, uuid, 16);
	return 0;
}

const struct label_reg *labels_find(const struct labels *l, pid_t pid)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (l->v[i].pid == pid && peer_alive(l->v[i].pidfd))
			return &l->v[i];
	return NULL;
}

const char *labels_lookup(const struct labels *l, pid_t pid)
{
	const struct label_reg *r = labels_find(l, pid);

	return r ? r->label : NULL;
}

size_t labels_reap(struct labels *l)
{
	size_t i = 0, n = 0;

	while (i < l->n) {
		if (!peer_alive(l->v[i].pidfd)) {
			drop(l, i);
			n++;
		} else {
			i++;
		}
	}
	return n;
}

void labels_free(struct labels *l)
{
	while (l->n > 0)
		drop(l, l->n - 1);
	free(l->v);
	memset(l, 0, sizeof(*l));
}
