/*
 * measure.h — measured direct-kernel boot: after every TPM2_Startup(CLEAR) that succeeds
 * (the firmware's, at each boot and each guest reset), vtpmd extends the digest of the
 * guest kernel into PCR 4, then of the initrd and of the kernel command line into PCR 5, in
 * every allocated bank, before the guest's next command; and writes the TCG2 event log of
 * those measurements (event_log.h) for a verifier to replay.
 */
#ifndef VTPMD_MEASURE_H
#define VTPMD_MEASURE_H

#include <stddef.h>

struct engine;
struct measure;

#define MEASURE_PCR_KERNEL 4
#define MEASURE_PCR_INITRD 5

/* Open what will be measured: kernel (required), initrd and append (the command line, as
 * given to QEMU's -append) may be NULL; eventlog: where the log is written, or NULL. The
 * files stay open: what is hashed is what was opened at start. 0, or -1 with err. */
int measure_open(struct measure **out, const char *kernel, const char *initrd, const char *append,
		 const char *eventlog, char *err, size_t errlen);
/* Start hashing in a thread, ahead of the first boot. Call it after the last fork (--daemon):
 * a fork while the thread is inside OpenSSL or malloc could leave the child deadlocked. */
void measure_start_ahead(struct measure *m);
void measure_free(struct measure *m);

/* Measure into the engine's PCRs (it has just started cleared). 0, or -1 with err: then the
 * PCRs are not what a verifier expects and no command may be answered. */
int measure_boot(struct measure *m, struct engine *e, char *err, size_t errlen);

#endif
