#include "common/label_match.h"

#include <stdio.h>
#include <string.h>

/* A label or pattern cut into its parts (views into the text, with lengths). */
struct parts {
	const char *f[3];
	size_t n[3];
	const char *level; /* NULL: no level part */
	size_t level_len;
};

static bool ident_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

static bool level_char(char c)
{
	return ident_char(c) || c == ',' || c == ':';
}

static const char *const field_names[] = {"user", "role", "type"};

/* Check one user/role/type field of n bytes at f. */
static int check_field(const char *text, const char *what, bool wild, size_t i, const char *f,
		       size_t n, char *err, size_t errlen)
{
	size_t j;

	if (n == 0) {
		snprintf(err, errlen, "%s '%s': the %s field is empty", what, text, field_names[i]);
		return -1;
	}
	if (wild && n == 1 && f[0] == '*')
		return 0;
	for (j = 0; j < n; j++) {
		if (!ident_char(f[j])) {
			snprintf(err, errlen,
				 "%s '%s': the %s field has '%c'; a field is letters, digits, '_', "
				 "'.', '-'%s",
				 what, text, field_names[i], f[j],
				 wild ? " or a whole-field '*'" : "");
			return -1;
		}
	}
	return 0;
}

/* Split text at its first three colons and check each part; wild: '*' allowed. */
static int split(const char *text, bool wild, struct parts *p, char *err, size_t errlen)
{
	const char *what = wild ? "pattern" : "label";
	const char *s = text;
	size_t len = strnlen(text, LABEL_MAX + 1), i, j;

	if (len == 0 || len > LABEL_MAX) {
		snprintf(err, errlen, "%s is empty or longer than %d bytes", what, LABEL_MAX);
		return -1;
	}
	memset(p, 0, sizeof(*p));
	for (i = 0; i < 3; i++) {
		const char *colon = strchr(s, ':');

		if (i < 2 && !colon) {
			snprintf(err, errlen, "%s '%s' is not of the form user:role:type", what,
				 text);
			return -1;
		}
		p->f[i] = s;
		p->n[i] = colon ? (size_t)(colon - s) : strlen(s);
		if (check_field(text, what, wild, i, p->f[i], p->n[i], err, errlen) < 0)
			return -1;
		s = colon ? colon + 1 : NULL;
	}
	if (!s)
		return 0;
	/* the level: everything after the third colon */
	p->level = s;
	p->level_len = strlen(s);
	if (p->level_len == 0) {
		snprintf(err, errlen, "%s '%s': the level after the third ':' is empty", what,
			 text);
		return -1;
	}
	if (wild && p->level_len == 1 && s[0] == '*')
		return 0;
	for (j = 0; j < p->level_len; j++) {
		if (!level_char(s[j])) {
			snprintf(err, errlen,
				 "%s '%s': the level has '%c'; a level is letters, digits and "
				 "'_.-,:'%s",
				 what, text, s[j], wild ? ", or '*'" : "");
			return -1;
		}
	}
	return 0;
}

int label_pattern_check(const char *pattern, char *err, size_t errlen)
{
	struct parts p;

	return split(pattern, true, &p, err, errlen);
}

int label_check(const char *label, char *err, size_t errlen)
{
	struct parts p;

	return split(label, false, &p, err, errlen);
}

bool label_match(const char *pattern, const char *label)
{
	struct parts pp, lp;
	char err[8];
	size_t i;

	if (split(pattern, true, &pp, err, sizeof(err)) < 0 ||
	    split(label, false, &lp, err, sizeof(err)) < 0)
		return false;
	for (i = 0; i < 3; i++) {
		if (pp.n[i] == 1 && pp.f[i][0] == '*')
			continue;
		if (pp.n[i] != lp.n[i] || memcmp(pp.f[i], lp.f[i], pp.n[i]) != 0)
			return false;
	}
	if (!pp.level || (pp.level_len == 1 && pp.level[0] == '*'))
		return true;
	return lp.level && lp.level_len == pp.level_len &&
	       memcmp(lp.level, pp.level, pp.level_len) == 0;
}

/* The user field (up to the first colon) and the level (after the third), of a valid label. */
static void guest_of(const char *l, size_t *user_len, const char **level)
{
	const char *c1 = strchr(l, ':'), *c3 = NULL;

	*user_len = c1 ? (size_t)(c1 - l) : strlen(l);
	if (c1)
		c3 = strchr(c1 + 1, ':');
	if (c3)
		c3 = strchr(c3 + 1, ':');
	*level = c3 ? c3 + 1 : "";
}

bool label_same_guest(const char *a, const char *b)
{
	const char *la, *lb;
	size_t ua, ub;
	char err[64];

	if (label_check(a, err, sizeof(err)) < 0 || label_check(b, err, sizeof(err)) < 0)
		return false;
	guest_of(a, &ua, &la);
	guest_of(b, &ub, &lb);
	return ua == ub && memcmp(a, b, ua) == 0 && strcmp(la, lb) == 0;
}

bool label_same_user(const char *a, const char *b)
{
	size_t ua, ub;

	if (label_check(a, NULL, 0) < 0 || label_check(b, NULL, 0) < 0)
		return false;
	ua = strcspn(a, ":");
	ub = strcspn(b, ":");
	return ua == ub && memcmp(a, b, ua) == 0;
}
