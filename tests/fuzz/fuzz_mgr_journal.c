/*
 * libFuzzer harness: the instance journal's parser (instance_journal.h), which reads a file
 * the manager wrote earlier but treats as untrusted. Every record handed to the callback
 * must be whole and valid: a pid in range, a label of the form user:role:type for an open,
 * none for a release; the parse never reports more bytes used than it was given.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vtpmmgrd/instance_journal.h"
#include "common/label_match.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check(enum journal_kind kind, const struct journal_entry *e, void *arg)
{
	char err[128];
	size_t *n = arg;

	if (e->pid <= 0)
		__builtin_trap();
	if (strnlen(e->label, sizeof(e->label)) > LABEL_MAX)
		__builtin_trap();
	if (kind == JOURNAL_OPEN && label_check(e->label, err, sizeof(err)) != 0)
		__builtin_trap();
	if (kind == JOURNAL_RELEASE && e->label[0])
		__builtin_trap();
	(*n)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256] = "";
	size_t used = 0, n = 0;
	int rc;

	rc = journal_parse(data, size, check, &n, &used, err, sizeof(err));
	if (used > size)
		__builtin_trap();
	if (rc < 0 && !err[0])
		__builtin_trap(); /* every refusal says why */
	if (n * JOURNAL_REC_FIXED > size)
		__builtin_trap();
	return 0;
}
