/*
 * output.c — everything vtpmctl prints: errors, JSON (written here, with proper string
 * escaping and UTF-8 checking), and the human forms (aligned tables, "key: value" blocks).
 *
 * The manager's answers are printed generically: each field tag has a name (so a field the
 * manager starts sending shows up without a change here), repeated fields become lists,
 * MGR_F_KEY/MGR_F_VALUE pairs become properties named by the key, and a tag this program
 * does not know is printed as field_<tag>. Texts from the manager and from argv are
 * untrusted: JSON strings are escaped, human output replaces control bytes, C1 controls,
 * bidirectional overrides and invalid UTF-8 with '?'.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cursor.h"
#include "vtpmctl/vtpmctl.h"

/* ---------------------------------------------------------------- UTF-8 */

/* Length of the valid UTF-8 sequence at s (n bytes available) and its code point, or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned char c = s[0];
	size_t len, i;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		*cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		*cp = c & 0x0f;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		*cp = c & 0x07;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 1; i < len; i++) {
		if (i > 1 && (s[i] < 0x80 || s[i] > 0xbf))
			return 0;
		*cp = *cp << 6 | (s[i] & 0x3f);
	}
	return len;
}

static bool cp_unsafe_for_terminal(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200e || cp == 0x200f || cp == 0x061c;
}

void out_sanitize(const char *s, size_t n, char *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, o = 0;

	if (cap == 0)
		return;
	while (i < n) {
		uint32_t cp = 0;
		size_t len = utf8_seq(p + i, n - i, &cp);

		if (len == 0 || cp_unsafe_for_terminal(cp)) {
			if (o + 1 >= cap)
				break;
			out[o++] = '?';
			i += len ? len : 1;
			continue;
		}
		if (o + len >= cap)
			break;
		memcpy(out + o, p + i, len);
		o += len;
		i += len;
	}
	out[o] = '\0';
}

/* Display width of a sanitized string: one column per code point. */
static size_t disp_width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

void hex_encode(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/* ---------------------------------------------------------------- memory */

static void *xmalloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);

	if (!p) {
		fputs("vtpmctl: out of memory\n", stderr);
		exit(EXIT_LOCAL);
	}
	return p;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p) {
		fputs("vtpmctl: out of memory\n", stderr);
		exit(EXIT_LOCAL);
	}
	return p;
}

static char *xstrndup(const char *s, size_t n)
{
	char *d = xmalloc(n + 1);

	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

static char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

/* ---------------------------------------------------------------- JSON writer */

void jw_init(struct jw *w, FILE *f)
{
	memset(w, 0, sizeof(*w));
	w->f = f;
}

static void jw_sep(struct jw *w)
{
	if (w->need_comma[w->depth])
		fputc(',', w->f);
	w->need_comma[w->depth] = true;
}

static void jw_open(struct jw *w, int ch)
{
	jw_sep(w);
	fputc(ch, w->f);
	if (w->depth < (int)(sizeof(w->need_comma) / sizeof(w->need_comma[0])) - 1)
		w->depth++;
	w->need_comma[w->depth] = false;
}

static void jw_close(struct jw *w, int ch)
{
	fputc(ch, w->f);
	if (w->depth > 0)
		w->depth--;
}

void jw_obj_begin(struct jw *w)
{
	jw_open(w, '{');
}

void jw_obj_end(struct jw *w)
{
	jw_close(w, '}');
}

void jw_arr_begin(struct jw *w)
{
	jw_open(w, '[');
}

void jw_arr_end(struct jw *w)
{
	jw_close(w, ']');
}

static void jw_quoted(FILE *f, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	fputc('"', f);
	while (i < n) {
		uint32_t cp = 0;
		size_t len = utf8_seq(p + i, n - i, &cp);

		if (len == 0) {
			fputs("\\ufffd", f);
			i++;
			continue;
		}
		switch (cp) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		case '\b':
			fputs("\\b", f);
			break;
		case '\f':
			fputs("\\f", f);
			break;
		default:
			/* controls, C1 controls, bidirectional overrides and the JavaScript
			 * line separators are escaped: valid JSON either way, but safe to
			 * print from a JSON tool too */
			if (cp_unsafe_for_terminal(cp) || cp == 0x2028 || cp == 0x2029)
				fprintf(f, "\\u%04x", (unsigned)cp);
			else
				fwrite(p + i, 1, len, f);
		}
		i += len;
	}
	fputc('"', f);
}

void jw_key(struct jw *w, const char *k)
{
	jw_sep(w);
	jw_quoted(w->f, k, strlen(k));
	fputc(':', w->f);
	w->need_comma[w->depth] = false; /* the value follows without a comma */
}

static void jw_value_done(struct jw *w)
{
	w->need_comma[w->depth] = true;
}

void jw_strn(struct jw *w, const char *s, size_t n)
{
	jw_sep(w);
	jw_quoted(w->f, s, n);
	jw_value_done(w);
}

void jw_str(struct jw *w, const char *s)
{
	jw_strn(w, s, strlen(s));
}

void jw_raw(struct jw *w, const char *literal)
{
	jw_sep(w);
	fputs(literal, w->f);
	jw_value_done(w);
}

void jw_int(struct jw *w, long long v)
{
	char b[32];

	snprintf(b, sizeof(b), "%lld", v);
	jw_raw(w, b);
}

void jw_bool(struct jw *w, bool v)
{
	jw_raw(w, v ? "true" : "false");
}

void jw_end(struct jw *w)
{
	fputc('\n', w->f);
	fflush(w->f);
}

/* ---------------------------------------------------------------- errors, help */

static int report(struct ctl *c, int code, long status, const char *msg, const char *detail)
{
	char clean[2048];

	out_sanitize(msg, strlen(msg), clean, sizeof(clean));
	fflush(stdout);
	fprintf(stderr, "vtpmctl: %s\n", clean);
	if (c && c->json) {
		struct jw w;

		jw_init(&w, stdout);
		jw_obj_begin(&w);
		jw_key(&w, "error");
		jw_obj_begin(&w);
		jw_key(&w, "exit_code");
		jw_int(&w, code);
		if (status >= 0) {
			jw_key(&w, "status");
			jw_str(&w, mgr_status_name((uint32_t)status));
			jw_key(&w, "status_code");
			jw_int(&w, status);
		}
		jw_key(&w, "message");
		jw_str(&w, msg);
		if (detail) {
			jw_key(&w, "manager_message");
			jw_str(&w, detail);
		}
		jw_obj_end(&w);
		jw_obj_end(&w);
		jw_end(&w);
	}
	return code;
}

int ctl_fail(struct ctl *c, int code, long status, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return report(c, code, status, msg, NULL);
}

int ctl_refused(struct ctl *c, uint32_t status, const char *what, const char *text)
{
	char msg[2048];

	if (text)
		snprintf(msg, sizeof(msg), "%s: refused by the manager: %s: %s", what,
			 mgr_status_name(status), text);
	else
		snprintf(msg, sizeof(msg), "%s: refused by the manager: %s", what,
			 mgr_status_name(status));
	return report(c, EXIT_REFUSED, status, msg, text);
}

int ctl_usage(struct ctl *c, const char *cmd, const char *fmt, ...)
{
	char msg[2048];
	size_t n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n = strlen(msg);
	snprintf(msg + n, sizeof(msg) - n, " (see 'vtpmctl %s%s--help')", cmd ? cmd : "",
		 cmd && *cmd ? " " : "");
	return report(c, EXIT_USAGE, -1, msg, NULL);
}

void ctl_help(const char *text)
{
	fputs(text, stdout);
	fflush(stdout);
}

/* ---------------------------------------------------------------- properties */

enum pkind { PK_STR, PK_NUM, PK_BOOL, PK_OBJ };

struct pval {
	char *h;	   /* human text (sanitized) */
	char *j;	   /* JSON: raw string (PK_STR) or literal (PK_NUM, PK_BOOL) */
	struct props *sub; /* PK_OBJ */
};

struct prop {
	char *name;
	enum pkind kind;
	bool list;   /* always a JSON array, even with one value */
	bool abbrev; /* long hex: shortened in tables */
	size_t n;
	struct pval *v;
};

struct props {
	size_t n;
	struct prop *p;
};

struct props *props_new(void)
{
	return xmalloc(sizeof(struct props));
}

void props_free(struct props *ps)
{
	size_t i, k;

	if (!ps)
		return;
	for (i = 0; i < ps->n; i++) {
		for (k = 0; k < ps->p[i].n; k++) {
			free(ps->p[i].v[k].h);
			free(ps->p[i].v[k].j);
			props_free(ps->p[i].v[k].sub);
		}
		free(ps->p[i].v);
		free(ps->p[i].name);
	}
	free(ps->p);
	free(ps);
}

static struct prop *props_find(const struct props *ps, const char *name)
{
	size_t i;

	for (i = 0; i < ps->n; i++)
		if (strcmp(ps->p[i].name, name) == 0)
			return &ps->p[i];
	return NULL;
}

bool props_has(const struct props *ps, const char *name)
{
	return props_find(ps, name) != NULL;
}

const char *props_get(const struct props *ps, const char *name)
{
	const struct prop *p = props_find(ps, name);

	return p && p->n > 0 && p->kind != PK_OBJ ? p->v[0].j : NULL;
}

static struct prop *props_slot(struct props *ps, const char *name, enum pkind kind, bool list,
			       bool abbrev)
{
	struct prop *p = props_find(ps, name);

	if (p) {
		if (p->kind != kind && kind != PK_OBJ && p->kind != PK_OBJ)
			p->kind = PK_STR; /* mixed kinds: print all as strings */
		return p;
	}
	ps->p = xrealloc(ps->p, (ps->n + 1) * sizeof(*ps->p));
	p = &ps->p[ps->n++];
	memset(p, 0, sizeof(*p));
	p->name = xstrdup(name);
	p->kind = kind;
	p->list = list;
	p->abbrev = abbrev;
	return p;
}

/* Append a value (h, j: taken over). A value equal to one already there is dropped. */
static void props_put(struct props *ps, const char *name, enum pkind kind, bool list, bool abbrev,
		      char *h, char *j, struct props *sub)
{
	struct prop *p = props_slot(ps, name, kind, list, abbrev);
	size_t k;

	if (!sub)
		for (k = 0; k < p->n; k++)
			if (!p->v[k].sub && strcmp(p->v[k].j, j) == 0) {
				free(h);
				free(j);
				return;
			}
	if (p->n > 0)
		p->list = true;
	p->v = xrealloc(p->v, (p->n + 1) * sizeof(*p->v));
	p->v[p->n].h = h;
	p->v[p->n].j = j;
	p->v[p->n].sub = sub;
	p->n++;
}

static char *sanitized(const char *s, size_t n)
{
	char *out = xmalloc(4 * n + 1);

	out_sanitize(s, n, out, 4 * n + 1);
	return out;
}

void props_add_str(struct props *ps, const char *name, const char *v)
{
	props_put(ps, name, PK_STR, false, false, sanitized(v, strlen(v)), xstrdup(v), NULL);
}

void props_add_num(struct props *ps, const char *name, unsigned long long v)
{
	char b[32];

	snprintf(b, sizeof(b), "%llu", v);
	props_put(ps, name, PK_NUM, false, false, xstrdup(b), xstrdup(b), NULL);
}

void props_add_bool(struct props *ps, const char *name, bool v)
{
	props_put(ps, name, PK_BOOL, false, false, xstrdup(v ? "yes" : "no"),
		  xstrdup(v ? "true" : "false"), NULL);
}

/* A PCR mask as a list of PCR numbers (an empty list when the mask is 0). */
void props_add_pcrs(struct props *ps, const char *name, uint32_t mask)
{
	unsigned i;

	/* the property exists (an empty list) even when no PCR is selected */
	(void)props_slot(ps, name, PK_NUM, true, false);
	for (i = 0; i < 32; i++)
		if (mask & (1u << i)) {
			char b[8];

			snprintf(b, sizeof(b), "%u", i);
			props_put(ps, name, PK_NUM, true, false, xstrdup(b), xstrdup(b), NULL);
		}
}

static bool all_printable_text(const uint8_t *v, size_t n)
{
	size_t i;

	if (n == 0)
		return false;
	for (i = 0; i < n; i++)
		if (v[i] < 0x20 || v[i] == 0x7f)
			return false;
	return true;
}

static void put_hex(struct props *ps, const char *name, bool list, const uint8_t *v, size_t n)
{
	char *hex = xmalloc(2 * n + 1);

	hex_encode(v, n, hex);
	props_put(ps, name, PK_STR, list, n >= 16, xstrdup(hex), hex, NULL);
}

static void put_uuid(struct props *ps, const char *name, const uint8_t *v)
{
	char u[37];

	uuid_format(v, u);
	props_put(ps, name, PK_STR, false, false, xstrdup(u), xstrdup(u), NULL);
}

static void put_text(struct props *ps, const char *name, bool list, const uint8_t *v, size_t n)
{
	props_put(ps, name, PK_STR, list, false, sanitized((const char *)v, n),
		  xstrndup((const char *)v, n), NULL);
}

static void put_u64(struct props *ps, const char *name, uint64_t v)
{
	props_add_num(ps, name, (unsigned long long)v);
}

static void put_time(struct props *ps, const char *name, uint64_t v)
{
	char j[32], h[64];
	struct tm tm;
	time_t t = (time_t)v;

	snprintf(j, sizeof(j), "%" PRIu64, v);
	if (v > (uint64_t)INT32_MAX * 64 || !gmtime_r(&t, &tm) ||
	    strftime(h, sizeof(h), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(h, sizeof(h), "%s", j);
	props_put(ps, name, PK_NUM, false, false, xstrdup(h), xstrdup(j), NULL);
}

static void props_from_fields(struct props *ps, const struct mgr_msg *m, enum rec_kind kind,
			      bool top);

static void put_record(struct props *ps, const struct mgr_field_view *f, enum rec_kind kind)
{
	struct mgr_msg *sub = xmalloc(sizeof(*sub));
	char err[128];

	if (mgr_parse_fields(f->val, f->len, sub, err, sizeof(err)) < 0) {
		put_hex(ps, "records", true, f->val, f->len);
	} else {
		struct props *sp = props_new();

		props_from_fields(sp, sub, kind, false);
		props_put(ps, "records", PK_OBJ, true, false, NULL, NULL, sp);
	}
	free(sub);
}

/* How a field is shown. */
enum fshow {
	FS_TEXT,     /* text */
	FS_TEXTS,    /* repeated text: always a list */
	FS_UUID,     /* 16 bytes */
	FS_NUM,	     /* u32 or u64 */
	FS_SIGNED,   /* u64 two's complement */
	FS_HEXNUM,   /* u32: hex in human output, a number in JSON */
	FS_BOOL,     /* u32 0/1 */
	FS_FLAG,     /* 0 bytes: true */
	FS_HEX,	     /* bytes as hex */
	FS_HEXES,    /* repeated bytes as hex: always a list */
	FS_PCRS,     /* u32 PCR mask: a list of PCR numbers */
	FS_TIME,     /* u64 seconds since the epoch */
	FS_SECRET,   /* never printed */
	FS_STATUS,   /* u32 status: its name */
	FS_INTERNAL, /* protocol bookkeeping at the top level (MORE, OFFSET): not shown */
};

static const struct {
	uint16_t tag;
	const char *name;
	enum fshow show;
} field_table[] = {
    {MGR_F_STATUS, "status", FS_STATUS},
    {MGR_F_MESSAGE, "message", FS_TEXT},
    {MGR_F_UUID, "uuid", FS_UUID},
    {MGR_F_STATE_KEY, "state_key", FS_SECRET},
    {MGR_F_VERSION, "version", FS_NUM},
    {MGR_F_DIGEST, "digest", FS_HEX},
    {MGR_F_GROUP_UUID, "group_uuid", FS_UUID},
    {MGR_F_NAME, "name", FS_TEXT},
    {MGR_F_PATTERN, "patterns", FS_TEXTS},
    {MGR_F_BIN_DIGEST, "binary_digests", FS_HEXES},
    {MGR_F_ANY_DIGEST, "any_binary", FS_FLAG},
    {MGR_F_PID, "pid", FS_NUM},
    {MGR_F_LABEL, "label", FS_TEXT},
    {MGR_F_PCR_MASK, "pcrs", FS_PCRS},
    {MGR_F_FORCE, "force", FS_FLAG},
    {MGR_F_COUNT, "count", FS_NUM},
    {MGR_F_TIME, "time", FS_TIME},
    {MGR_F_STATE, "state", FS_TEXT},
    {MGR_F_PROVISIONED, "provisioned", FS_BOOL},
    {MGR_F_NV_INDEX, "nv_index", FS_HEXNUM},
    {MGR_F_NV_VALUE, "nv_value", FS_NUM},
    {MGR_F_STORE_COUNTER, "store_counter", FS_NUM},
    {MGR_F_GROUPS, "groups", FS_NUM},
    {MGR_F_VTPMS, "vtpms", FS_NUM},
    {MGR_F_INSTANCES, "instances", FS_NUM},
    {MGR_F_TPM_COMMANDS, "tpm_commands", FS_NUM},
    {MGR_F_OPEN, "open", FS_BOOL},
    {MGR_F_UID, "uid", FS_NUM},
    {MGR_F_ACTION, "action", FS_TEXT},
    {MGR_F_SUBJECT, "subject", FS_TEXT},
    {MGR_F_RESULT, "result", FS_TEXT},
    {MGR_F_AUDIT_ID, "id", FS_NUM},
    {MGR_F_OFFSET, "offset", FS_INTERNAL},
    {MGR_F_MORE, "more", FS_INTERNAL},
    {MGR_F_AK_PUBLIC, "ak_public", FS_HEX},
    {MGR_F_NV_OFFSET, "nv_offset", FS_SIGNED},
    {MGR_F_PROOF, "proof", FS_SECRET},
    {MGR_F_EPOCH, "guard_epoch", FS_NUM},
};

/* The field's name and form in a record of this kind; NULL name if the tag is unknown. */
static const char *field_info(uint16_t tag, enum rec_kind kind, enum fshow *show)
{
	size_t i;

	for (i = 0; i < sizeof(field_table) / sizeof(field_table[0]); i++) {
		if (field_table[i].tag != tag)
			continue;
		*show = field_table[i].show;
		switch (tag) {
		case MGR_F_GROUP_UUID:
			return kind == REC_GROUP ? "uuid" : "group_uuid";
		case MGR_F_NAME:
			return kind == REC_VTPM ? "group" : "name";
		case MGR_F_TIME:
			return kind == REC_AUDIT || kind == REC_GENERIC ? "time" : "created";
		case MGR_F_BIN_DIGEST:
			/* in a vTPM record: the binary of the instance that has it open */
			if (kind == REC_VTPM) {
				*show = FS_HEX;
				return "binary_digest";
			}
			return field_table[i].name;
		default:
			return field_table[i].name;
		}
	}
	return NULL;
}

static void put_field_value(struct props *ps, const char *name, enum fshow show,
			    const struct mgr_field_view *f)
{
	char h[64], j[32];

	switch (show) {
	case FS_TEXT:
	case FS_TEXTS:
		put_text(ps, name, show == FS_TEXTS, f->val, f->len);
		return;
	case FS_UUID:
		if (f->len == 16) {
			put_uuid(ps, name, f->val);
			return;
		}
		break;
	case FS_NUM:
		if (f->len == 4 || f->len == 8) {
			put_u64(ps, name, f->len == 4 ? be32_get(f->val) : be64_get(f->val));
			return;
		}
		break;
	case FS_SIGNED:
		if (f->len == 8) {
			snprintf(j, sizeof(j), "%lld", (long long)(int64_t)be64_get(f->val));
			props_put(ps, name, PK_NUM, false, false, xstrdup(j), xstrdup(j), NULL);
			return;
		}
		break;
	case FS_HEXNUM:
		if (f->len == 4) {
			snprintf(h, sizeof(h), "0x%08" PRIx32, be32_get(f->val));
			snprintf(j, sizeof(j), "%" PRIu32, be32_get(f->val));
			props_put(ps, name, PK_NUM, false, false, xstrdup(h), xstrdup(j), NULL);
			return;
		}
		break;
	case FS_BOOL:
		if (f->len == 4) {
			props_add_bool(ps, name, be32_get(f->val) != 0);
			return;
		}
		break;
	case FS_FLAG:
		props_add_bool(ps, name, true);
		return;
	case FS_HEX:
	case FS_HEXES:
		put_hex(ps, name, show == FS_HEXES, f->val, f->len);
		return;
	case FS_PCRS:
		if (f->len == 4) {
			props_add_pcrs(ps, name, be32_get(f->val));
			return;
		}
		break;
	case FS_TIME:
		if (f->len == 8) {
			put_time(ps, name, be64_get(f->val));
			return;
		}
		break;
	case FS_SECRET:
		/* key material is never printed */
		props_put(ps, name, PK_STR, false, false, xstrdup("(not shown)"),
			  xstrdup("(not shown)"), NULL);
		return;
	case FS_STATUS:
		if (f->len == 4) {
			const char *st = mgr_status_name(be32_get(f->val));

			props_put(ps, name, PK_STR, false, false, xstrdup(st), xstrdup(st), NULL);
			return;
		}
		break;
	case FS_INTERNAL:
		break;
	}
	/* an unexpected length: show the bytes */
	put_hex(ps, name, false, f->val, f->len);
}

/* A field of a tag this program does not know: shown by the form of its bytes. */
static void put_unknown(struct props *ps, const struct mgr_field_view *f)
{
	char name[32];

	snprintf(name, sizeof(name), "field_%u", f->tag);
	if (f->len == 0)
		props_add_bool(ps, name, true);
	else if (all_printable_text(f->val, f->len))
		put_text(ps, name, false, f->val, f->len);
	else if (f->len == 4)
		put_u64(ps, name, be32_get(f->val));
	else if (f->len == 8)
		put_u64(ps, name, be64_get(f->val));
	else if (f->len == 16)
		put_uuid(ps, name, f->val);
	else
		put_hex(ps, name, false, f->val, f->len);
}

static void props_from_fields(struct props *ps, const struct mgr_msg *m, enum rec_kind kind,
			      bool top)
{
	size_t i;

	for (i = 0; i < m->nfields; i++) {
		const struct mgr_field_view *f = &m->f[i];
		enum fshow show = FS_HEX;
		const char *name;

		if (f->tag == MGR_F_RECORD) {
			if (!top)
				put_record(ps, f, kind);
			continue;
		}
		if (f->tag == MGR_F_KEY) {
			char key[MGR_MAX_TEXT + 1];

			memcpy(key, f->val, f->len);
			key[f->len] = '\0';
			if (i + 1 < m->nfields && m->f[i + 1].tag == MGR_F_VALUE) {
				i++;
				put_text(ps, key, false, m->f[i].val, m->f[i].len);
			} else {
				props_put(ps, key, PK_STR, false, false, xstrdup(""), xstrdup(""),
					  NULL);
			}
			continue;
		}
		if (f->tag == MGR_F_VALUE) {
			put_text(ps, "value", false, f->val, f->len);
			continue;
		}
		name = field_info(f->tag, kind, &show);
		if (!name) {
			put_unknown(ps, f);
			continue;
		}
		if (top && (show == FS_STATUS || show == FS_INTERNAL))
			continue;
		put_field_value(ps, name, show, f);
	}
}

/* Parse the records of the last answer. Returns an array of nrec parsed records. */
static struct mgr_msg **response_records(struct ctl *c, size_t *nrec)
{
	struct mgr_msg **recs = NULL;
	size_t i, n = 0;

	for (i = 0; i < c->msg->nfields; i++) {
		const struct mgr_field_view *f = &c->msg->f[i];
		struct mgr_msg *r;
		char err[128];

		if (f->tag != MGR_F_RECORD)
			continue;
		r = xmalloc(sizeof(*r));
		if (mgr_parse_fields(f->val, f->len, r, err, sizeof(err)) < 0) {
			/* the record is printed as what it is: unparsable bytes */
			r->nfields = 1;
			r->f[0].tag = 0xffff;
			r->f[0].len = f->len;
			r->f[0].val = f->val;
		}
		recs = xrealloc(recs, (n + 1) * sizeof(*recs));
		recs[n++] = r;
	}
	*nrec = n;
	return recs;
}

static void free_records(struct mgr_msg **recs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(recs[i]);
	free(recs);
}

void props_add_response(struct props *ps, struct ctl *c, enum rec_kind kind)
{
	struct mgr_msg **recs;
	size_t nrec, i;

	props_from_fields(ps, c->msg, kind, true);
	recs = response_records(c, &nrec);
	if (nrec > 0)
		props_from_fields(ps, recs[0], kind, false);
	for (i = 1; i < nrec; i++) {
		struct props *sp = props_new();

		props_from_fields(sp, recs[i], kind, false);
		props_put(ps, "records", PK_OBJ, true, false, NULL, NULL, sp);
	}
	free_records(recs, nrec);
}

int response_get_fixed(struct ctl *c, uint16_t tag, void *out, size_t n)
{
	struct mgr_msg **recs;
	size_t nrec, i;
	int rc = -1;

	if (mgr_get_fixed(c->msg, tag, out, n) == 0)
		return 0;
	recs = response_records(c, &nrec);
	for (i = 0; i < nrec && rc < 0; i++)
		rc = mgr_get_fixed(recs[i], tag, out, n);
	free_records(recs, nrec);
	return rc;
}

/* ---------------------------------------------------------------- printing properties */

static void jw_props(struct jw *w, const struct props *ps);

static void jw_pval(struct jw *w, const struct prop *p, const struct pval *v)
{
	if (v->sub)
		jw_props(w, v->sub);
	else if (p->kind == PK_STR)
		jw_str(w, v->j);
	else
		jw_raw(w, v->j);
}

static void jw_props(struct jw *w, const struct props *ps)
{
	size_t i, k;

	jw_obj_begin(w);
	for (i = 0; i < ps->n; i++) {
		const struct prop *p = &ps->p[i];

		jw_key(w, p->name);
		if (p->list || p->n != 1) {
			jw_arr_begin(w);
			for (k = 0; k < p->n; k++)
				jw_pval(w, p, &p->v[k]);
			jw_arr_end(w);
		} else {
			jw_pval(w, p, &p->v[0]);
		}
	}
	jw_obj_end(w);
}

/* Human text of a property on one line (lists joined with sep). Caller frees. */
static char *prop_line(const struct prop *p, const char *sep, bool abbreviate);

static char *props_inline(const struct props *ps)
{
	size_t i, len = 2;
	char *s = xstrdup("{");

	for (i = 0; i < ps->n; i++) {
		char *v = prop_line(&ps->p[i], ",", false);
		size_t add = strlen(ps->p[i].name) + strlen(v) + 3;

		s = xrealloc(s, len + add + 1);
		snprintf(s + strlen(s), add + 2, "%s%s=%s", i ? " " : "", ps->p[i].name, v);
		len += add;
		free(v);
	}
	s = xrealloc(s, strlen(s) + 2);
	strcat(s, "}");
	return s;
}

static char *prop_line(const struct prop *p, const char *sep, bool abbreviate)
{
	size_t k, len = 1;
	char *s = xstrdup("");

	if (p->n == 0)
		return xstrdup(p->list ? "none" : "-");
	for (k = 0; k < p->n; k++) {
		char *v = p->v[k].sub ? props_inline(p->v[k].sub) : xstrdup(p->v[k].h);
		size_t vl = strlen(v);

		if (abbreviate && p->abbrev && vl > 16)
			strcpy(v + 12, "..");
		vl = strlen(v);
		s = xrealloc(s, len + vl + strlen(sep) + 1);
		if (k)
			strcat(s, sep);
		strcat(s, v);
		len = strlen(s) + 1;
		free(v);
	}
	return s;
}

static void print_props_human(const struct props *ps)
{
	size_t i, k, w = 0;

	for (i = 0; i < ps->n; i++)
		if (disp_width(ps->p[i].name) > w)
			w = disp_width(ps->p[i].name);
	for (i = 0; i < ps->n; i++) {
		const struct prop *p = &ps->p[i];
		char name[256];

		out_sanitize(p->name, strlen(p->name), name, sizeof(name));
		if (p->kind == PK_STR && p->n > 1) {
			/* one value per line, aligned */
			for (k = 0; k < p->n; k++) {
				char *v = p->v[k].sub ? props_inline(p->v[k].sub) : NULL;

				printf("%s%s%*s %s\n", k ? "" : name, k ? " " : ":",
				       (int)(w - (k ? 0 : disp_width(name))), "",
				       v ? v : p->v[k].h);
				free(v);
			}
		} else if (p->kind == PK_OBJ) {
			for (k = 0; k < p->n; k++) {
				char *v =
				    p->v[k].sub ? props_inline(p->v[k].sub) : xstrdup(p->v[k].h);

				printf("%s%s%*s %s\n", k ? "" : name, k ? " " : ":",
				       (int)(w - (k ? 0 : disp_width(name))), "", v);
				free(v);
			}
		} else {
			char *v = prop_line(p, ",", false);

			printf("%s:%*s %s\n", name, (int)(w - disp_width(name)), "", v);
			free(v);
		}
	}
}

void props_print(struct ctl *c, const struct props *ps)
{
	if (c->json) {
		struct jw w;

		jw_init(&w, stdout);
		jw_props(&w, ps);
		jw_end(&w);
		return;
	}
	print_props_human(ps);
	fflush(stdout);
}

/* ---------------------------------------------------------------- lists */

/* Preferred column order; other columns follow in the order they first appear. */
static const char *const column_order[] = {
    "id",	  "time",	    "name",    "uuid",	  "group",
    "state",	  "open",	    "version", "pid",	  "uid",
    "label",	  "action",	    "subject", "result",  "patterns",
    "any_binary", "binary_digests", "vtpms",   "created",
};

static size_t column_rank(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(column_order) / sizeof(column_order[0]); i++)
		if (strcmp(column_order[i], name) == 0)
			return i;
	return sizeof(column_order) / sizeof(column_order[0]);
}

/* Columns left out of a table (too wide, or repeated by another column): "show" and
 * --json have them. */
static bool column_hidden(enum rec_kind kind, const char *name)
{
	static const char *const vtpm_hidden[] = {"group_uuid", "digest", "binary_digest"};
	size_t i;

	if (strcmp(name, "message") == 0 || strcmp(name, "ak_public") == 0)
		return true;
	if (kind == REC_VTPM)
		for (i = 0; i < sizeof(vtpm_hidden) / sizeof(vtpm_hidden[0]); i++)
			if (strcmp(vtpm_hidden[i], name) == 0)
				return true;
	return false;
}

static void column_head(const char *name, char *out, size_t cap)
{
	size_t j;

	out_sanitize(name, strlen(name), out, cap);
	for (j = 0; out[j]; j++)
		if (out[j] >= 'a' && out[j] <= 'z')
			out[j] = (char)(out[j] - 'a' + 'A');
}

static void print_table(enum rec_kind kind, struct props **rows, size_t nrows)
{
	const char **cols = NULL;
	size_t ncols = 0, r, i, k;
	size_t *width;
	char ***cells;
	char head[256];

	for (r = 0; r < nrows; r++)
		for (i = 0; i < rows[r]->n; i++) {
			const char *name = rows[r]->p[i].name;

			if (column_hidden(kind, name))
				continue;
			for (k = 0; k < ncols; k++)
				if (strcmp(cols[k], name) == 0)
					break;
			if (k < ncols)
				continue;
			cols = xrealloc(cols, (ncols + 1) * sizeof(*cols));
			cols[ncols++] = name;
		}
	/* stable sort by preferred rank (insertion sort keeps first-seen order) */
	for (i = 1; i < ncols; i++) {
		const char *x = cols[i];

		for (k = i; k > 0 && column_rank(cols[k - 1]) > column_rank(x); k--)
			cols[k] = cols[k - 1];
		cols[k] = x;
	}
	width = xmalloc((ncols + 1) * sizeof(*width));
	cells = xmalloc(nrows * sizeof(*cells));
	for (k = 0; k < ncols; k++) {
		column_head(cols[k], head, sizeof(head));
		width[k] = disp_width(head);
	}
	for (r = 0; r < nrows; r++) {
		cells[r] = xmalloc((ncols + 1) * sizeof(**cells));
		for (k = 0; k < ncols; k++) {
			const struct prop *p = props_find(rows[r], cols[k]);

			cells[r][k] =
			    p ? prop_line(p, p->kind == PK_NUM ? "," : " ", true) : xstrdup("-");
			if (disp_width(cells[r][k]) > width[k])
				width[k] = disp_width(cells[r][k]);
		}
	}
	for (k = 0; k < ncols; k++) {
		column_head(cols[k], head, sizeof(head));
		if (k + 1 < ncols)
			printf("%s%*s  ", head, (int)(width[k] - disp_width(head)), "");
		else
			printf("%s\n", head);
	}
	for (r = 0; r < nrows; r++) {
		for (k = 0; k < ncols; k++) {
			if (k + 1 < ncols)
				printf("%s%*s  ", cells[r][k],
				       (int)(width[k] - disp_width(cells[r][k])), "");
			else
				printf("%s\n", cells[r][k]);
			free(cells[r][k]);
		}
		free(cells[r]);
	}
	free(cells);
	free(width);
	free(cols);
}

int out_list(struct ctl *c, enum rec_kind kind, const char *plural, const struct reclist *l,
	     const char *empty)
{
	struct mgr_msg *m = xmalloc(sizeof(*m));
	struct props **rows;
	size_t i;

	rows = xmalloc((l->n + 1) * sizeof(*rows));
	for (i = 0; i < l->n; i++) {
		char err[128];

		rows[i] = props_new();
		if (mgr_parse_fields(l->rec[i], l->len[i], m, err, sizeof(err)) < 0)
			put_hex(rows[i], "unparsable_record", false, l->rec[i], l->len[i]);
		else
			props_from_fields(rows[i], m, kind, false);
	}
	if (c->json) {
		struct jw w;

		jw_init(&w, stdout);
		jw_obj_begin(&w);
		jw_key(&w, plural);
		jw_arr_begin(&w);
		for (i = 0; i < l->n; i++)
			jw_props(&w, rows[i]);
		jw_arr_end(&w);
		if (l->truncated) {
			jw_key(&w, "truncated");
			jw_bool(&w, true);
		}
		jw_obj_end(&w);
		jw_end(&w);
	} else if (l->n == 0) {
		printf("%s\n", empty);
	} else {
		print_table(kind, rows, l->n);
	}
	fflush(stdout);
	if (l->truncated)
		fprintf(stderr,
			"vtpmctl: the manager sent only the %zu %s that fit in one answer\n", l->n,
			plural);
	for (i = 0; i < l->n; i++)
		props_free(rows[i]);
	free(rows);
	free(m);
	return EXIT_OK;
}

int out_show(struct ctl *c, enum rec_kind kind)
{
	struct props *ps = props_new();

	props_add_response(ps, c, kind);
	props_print(c, ps);
	props_free(ps);
	return EXIT_OK;
}
