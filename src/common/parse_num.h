/*
 * parse_num.h — strict numbers from command lines (vtpmd, vtpmmgrd, vtpmctl).
 *
 * The whole string is the number, nothing else:
 *   - no leading or trailing space, no trailing junk ("1x", "1 ");
 *   - unsigned numbers take no sign ("+1", "-1" are refused); signed ones an optional '-'
 *     only (no '+');
 *   - digits as the base says:
 *       NUM_DEC      decimal digits; leading zeros are decimal ("010" is 10, never octal);
 *       NUM_OCT      octal digits, with or without a leading 0 ("600" and "0600": file modes);
 *       NUM_DEC_HEX  decimal as NUM_DEC, or hexadecimal after "0x"/"0X" ("0x" alone is
 *                    refused); for options documented with hexadecimal values;
 *   - a value that does not fit 64 bits, or is outside min..max, is refused.
 *
 * On error err holds one line that names the option (opt; NULL for none) and the value
 * (control characters and bytes above 0x7e shown as '?', long values cut):
 *   "OPT: 'VALUE' is not a number from MIN to MAX: REASON"   (syntax)
 *   "OPT: VALUE is out of range (MIN to MAX)"                 (range or overflow)
 * MIN and MAX are written in the base of the option (0777, 0x013fffff).
 */
#ifndef VTPM_PARSE_NUM_H
#define VTPM_PARSE_NUM_H

#include <stddef.h>
#include <stdint.h>

enum num_base { NUM_DEC, NUM_OCT, NUM_DEC_HEX };

/* The value of one hexadecimal digit (either case), or -1. */
int parse_hex_digit(char c);

/* Returns 0 with *out set, or -1 with err set (*out untouched). */
int parse_num_u64(const char *opt, const char *s, enum num_base base, uint64_t min, uint64_t max,
		  uint64_t *out, char *err, size_t errlen);
int parse_num_u32(const char *opt, const char *s, enum num_base base, uint32_t min, uint32_t max,
		  uint32_t *out, char *err, size_t errlen);
/* Decimal only, an optional leading '-'. */
int parse_num_i64(const char *opt, const char *s, int64_t min, int64_t max, int64_t *out, char *err,
		  size_t errlen);

#endif
