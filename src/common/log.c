#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct {
	const char *prefix;
	int fd;
	int level;
} log_cfg = {"vtpm", 2, LOG_LVL_WARN};

void log_init(const char *prefix, int fd, int level)
{
	log_cfg.prefix = prefix;
	log_cfg.fd = fd;
	log_cfg.level = level;
}

int log_level(void)
{
	return log_cfg.level;
}

int log_fd(void)
{
	return log_cfg.fd;
}

__attribute__((format(printf, 4, 0))) static void log_emit(int level, const char *tag, int errnum,
							   const char *fmt, va_list ap)
{
	char line[1024];
	int n;

	if (level > log_cfg.level || log_cfg.fd < 0)
		return;
	n = snprintf(line, sizeof(line), "%s[%ld]: %s", log_cfg.prefix, (long)getpid(), tag);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	n = (int)strlen(line);
	if (errnum && (size_t)n < sizeof(line) - 2)
		snprintf(line + n, sizeof(line) - (size_t)n, ": %s", strerror(errnum));
	n = (int)strlen(line);
	if ((size_t)n >= sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	/* One write per line so concurrent writers do not interleave inside a line. */
	if (write(log_cfg.fd, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
}

#define LOG_VERB(name, level, tag, witherr)                                                        \
	void name(const char *fmt, ...)                                                            \
	{                                                                                          \
		int saved = errno;                                                                 \
		va_list ap;                                                                        \
		va_start(ap, fmt);                                                                 \
		log_emit(level, tag, witherr ? saved : 0, fmt, ap);                                \
		va_end(ap);                                                                        \
		errno = saved;                                                                     \
	}

LOG_VERB(log_warn, LOG_LVL_WARN, "", 1)
LOG_VERB(log_warnx, LOG_LVL_WARN, "", 0)
LOG_VERB(log_info, LOG_LVL_INFO, "", 0)
LOG_VERB(log_debug, LOG_LVL_DEBUG, "debug: ", 0)

void fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_LVL_ERROR, "fatal: ", saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_LVL_ERROR, "fatal: ", 0, fmt, ap);
	va_end(ap);
	exit(1);
}
