/*
 * label_match.h — labels (`user:role:type[:level]`, SELinux style) and the label patterns a
 * group lists.
 *
 * Grammar (bytes, no spaces):
 *	ident   = 1*( ALPHA / DIGIT / "_" / "." / "-" )
 *	level   = 1*( ALPHA / DIGIT / "_" / "." / "-" / "," / ":" )   e.g. s0:c1,c2  s0-s0:c0.c1023
 *	label   = ident ":" ident ":" ident [ ":" level ]
 *	pattern = field ":" field ":" field [ ":" ( level / "*" ) ]
 *	field   = ident / "*"
 *
 * Matching. user, role and type must each equal the pattern's field, or the field is `*`
 * (a whole field only: `vm_*` is not a wildcard and is refused). The MLS/MCS level is the
 * rest of the label after the third colon:
 *   - a pattern of three fields ignores the level: `*:vm_r:vtpm_t` matches
 *     `guest1_u:vm_r:vtpm_t` and `system_u:vm_r:vtpm_t:s0:c1,c2` alike;
 *   - a pattern with a fourth part matches only labels whose level is exactly that text
 *     (no dominance is computed: `s0:c1,c2` does not match `s0:c2,c1`); `*` as the fourth
 *     part is the same as leaving it out.
 * Under sVirt, where guests share a type and differ only in their MCS categories, a group
 * that must separate guests lists the level in its patterns.
 * A label that is not of this form (e.g. an AppArmor profile name) matches no pattern.
 */
#ifndef VTPM_LABEL_MATCH_H
#define VTPM_LABEL_MATCH_H

#include <stdbool.h>
#include <stddef.h>

#define LABEL_MAX 1024 /* bytes of a label or pattern, without the NUL */

/* 0 if pattern is a valid label pattern, else -1 with the reason in err. */
int label_pattern_check(const char *pattern, char *err, size_t errlen);
/* 0 if label is a valid label (no wildcards), else -1 with the reason in err. */
int label_check(const char *label, char *err, size_t errlen);
/* Whether label matches pattern; false when either is invalid. */
bool label_match(const char *pattern, const char *label);
/* Whether two valid labels name the same guest: the same user field and the same level
 * (the rest after the third colon, "" when absent); role and type may differ. */
bool label_same_guest(const char *a, const char *b);
/* Whether two valid labels have the same user field (the rest may differ). */
bool label_same_user(const char *a, const char *b);

#endif
