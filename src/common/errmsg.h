/*
 * errmsg.h — the one way functions report why they failed to their caller: a message in the
 * caller's buffer (err, errlen), and -1. The caller, who knows the most, logs it once.
 */
#ifndef VTPM_ERRMSG_H
#define VTPM_ERRMSG_H

#include <stddef.h>

/* Format the message into err (cut to errlen) and return -1. */
int errmsg(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
