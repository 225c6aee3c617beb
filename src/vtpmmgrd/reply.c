/* reply.c — helpers for building responses (manager.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vtpmmgrd/manager.h"
#include "vtpmmgrd/store.h"

uint32_t reply_fail(struct mgr_reply *r, uint32_t status, const char *fmt, ...)
{
	va_list ap;

	r->status = status;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
	return status;
}

void reply_text(struct mgr_builder *b, uint16_t tag, const char *s)
{
	char buf[MGR_MAX_TEXT + 1];
	size_t n = strnlen(s, MGR_MAX_TEXT), i;

	if (n == 0)
		return;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	mgr_put_bytes(b, tag, buf, n);
}

uint32_t reply_store_status(int store_rc)
{
	switch (store_rc) {
	case STORE_OK:
		return MGR_OK;
	case STORE_NOT_FOUND:
		return MGR_ERR_NOT_FOUND;
	case STORE_EXISTS:
		return MGR_ERR_EXISTS;
	case STORE_BUSY:
		return MGR_ERR_BUSY;
	case STORE_INVALID:
		return MGR_ERR_MALFORMED;
	case STORE_ROLLBACK:
		return MGR_ERR_ROLLBACK;
	default:
		return MGR_ERR_STORE;
	}
}

size_t reply_record_begin(struct mgr_builder *b)
{
	size_t saved = b->pos;

	mgr_record_begin(b);
	return saved;
}

bool reply_record_end(struct mgr_builder *b, size_t saved)
{
	mgr_record_end(b);
	if (!b->failed)
		return true;
	b->failed = false;
	b->pos = saved;
	b->record_start = 0;
	return false;
}

uint32_t mgrd_write_begin(struct mgrd *d, struct mgr_reply *r)
{
	if (!d->provisioned)
		return reply_fail(r, MGR_ERR_NOT_PROVISIONED,
				  "the host is not provisioned (host-init first)");
	return MGR_OK;
}

/* A change is in the store. The rollback guard covers it at its next advance: the event
 * loop sees every change through the store's counter (main.c, guard_track). */
uint32_t mgrd_write_end(struct mgrd *d, struct mgr_reply *r)
{
	(void)d;
	(void)r;
	return MGR_OK;
}
