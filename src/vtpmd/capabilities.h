/*
 * capabilities.h — the line `vtpmd socket --print-capabilities` prints: swtpm 0.7.1's JSON
 * object with the features of swtpm 0.7.1 that vtpmd has, in swtpm's order (swtpm_setup,
 * libvirt and swtpm's own tests read it), and the RSA key sizes libtpms reports.
 */
#ifndef VTPMD_CAPABILITIES_H
#define VTPMD_CAPABILITIES_H

#include <stddef.h>
#include <stdint.h>

#define CAPS_MAX_RSA_SIZES 8

/*
 * The RSA key sizes in libtpms' TPMLIB_GetInfo(TPMLIB_INFO_TPMFEATURES) JSON
 * ("RSAKeySizes":[1024,2048,3072]). Returns the number found (0 when the list is absent:
 * libtpms before 0.8), or -1 with err set when the list is malformed or too long.
 */
int caps_rsa_key_sizes(const char *info, uint32_t *sizes, size_t max, char *err, size_t errlen);

/*
 * The JSON line (no newline) into buf for the given key sizes and version. Returns 0, or -1
 * if buf is too small.
 */
int caps_json(char *buf, size_t len, const uint32_t *rsa_sizes, size_t n_rsa, const char *version);

#endif
