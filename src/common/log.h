/*
 * log.h — a few log verbs, OpenBSD style. An error is logged once, where the most is
 * known. Secrets are never passed to these functions.
 *
 * Destination and level are process-wide (set once in main): logging is the one piece
 * of mutable global state outside main, as in every daemon.
 */
#ifndef VTPM_LOG_H
#define VTPM_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN = 1, LOG_LVL_INFO = 2, LOG_LVL_DEBUG = 3 };

/* fd: where to write (2 = stderr); prefix: program name. */
void log_init(const char *prefix, int fd, int level);
int log_level(void);
int log_fd(void);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* + strerror(errno) */
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
