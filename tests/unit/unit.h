/*
 * unit.h — the smallest test harness that speaks tests/run's language.
 *
 * A test program runs cases; each case prints one line, "PASS: name" or
 * "FAIL: name: reason" (the first failed check of the case, with file:line). main ends
 * with "return unit_exit();", which is 1 if any case failed.
 *
 *	unit_begin("round trip");
 *	if (!CHECK(rc == 0))
 *		goto out;
 *	CHECKF(len == 5, "len %zu", len);
 *   out:
 *	unit_end();
 */
#ifndef VTPM_UNIT_H
#define VTPM_UNIT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

struct unit_state {
	const char *name;
	bool failed;
	int passed_cases;
	int failed_cases;
};

static struct unit_state unit_st;

static inline void unit_begin(const char *name)
{
	unit_st.name = name;
	unit_st.failed = false;
}

/* Record a check; only the first failure of a case is printed, so a case is one line. */
__attribute__((format(printf, 4, 5))) static inline bool unit_check(bool ok, const char *file,
								    int line, const char *fmt, ...)
{
	va_list ap;

	if (ok)
		return true;
	if (unit_st.failed)
		return false;
	unit_st.failed = true;
	printf("FAIL: %s: %s:%d: ", unit_st.name, file, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return false;
}

static inline void unit_end(void)
{
	if (unit_st.failed) {
		unit_st.failed_cases++;
	} else {
		unit_st.passed_cases++;
		printf("PASS: %s\n", unit_st.name);
	}
	fflush(stdout);
}

static inline int unit_exit(void)
{
	printf("# %d passed, %d failed\n", unit_st.passed_cases, unit_st.failed_cases);
	return unit_st.failed_cases ? 1 : 0;
}

/* Both evaluate to true when cond holds, so a case can stop at a check it depends on. */
#define CHECK(cond)	  unit_check(!!(cond), __FILE__, __LINE__, "%s", #cond)
#define CHECKF(cond, ...) unit_check(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

#endif
