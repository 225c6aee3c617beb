/* vtpmd --pair-pid's label rule (pairing.h) and the user-field comparison it uses. */
#include <unistd.h>

#include "common/label_match.h"
#include "unit.h"
#include "vtpmd/pairing.h"

int main(void)
{
	struct pairing p;
	char err[256];

	unit_begin("pairing: without labels (no LSM, or AppArmor names) every process agrees");
	CHECK(pairing_labels_agree("", ""));
	CHECK(pairing_labels_agree("", "guest1_u:vm_r:qemu_t"));
	CHECK(pairing_labels_agree("unconfined", "anything"));
	CHECK(pairing_labels_agree("/usr/bin/vtpmd (enforce)", ""));
	unit_end();

	unit_begin("pairing: with labels, the paired QEMU must have vtpmd's user field");
	CHECK(pairing_labels_agree("guest1_u:vm_r:vtpm_t", "guest1_u:vm_r:qemu_t"));
	CHECK(pairing_labels_agree("guest1_u:vm_r:vtpm_t:s0:c1,c2", "guest1_u:vm_r:svirt_t:s0:c3"));
	CHECK(!pairing_labels_agree("guest1_u:vm_r:vtpm_t", "guest2_u:vm_r:qemu_t"));
	CHECK(!pairing_labels_agree("guest1_u:vm_r:vtpm_t", "guest1:vm_r:qemu_t"));
	CHECK(!pairing_labels_agree("guest1_u:vm_r:vtpm_t", ""));
	CHECK(!pairing_labels_agree("guest1_u:vm_r:vtpm_t", "unconfined"));
	CHECK(!pairing_labels_agree("guest1_u:vm_r:vtpm_t", "*:vm_r:qemu_t"));
	unit_end();

	unit_begin("label_same_user: valid labels only");
	CHECK(label_same_user("a_u:r:t", "a_u:x:y:s0"));
	CHECK(!label_same_user("a_u:r:t", "b_u:r:t"));
	CHECK(!label_same_user("a_u:r", "a_u:r"));
	CHECK(!label_same_user("a_u::t", "a_u:r:t"));
	unit_end();

	unit_begin("pairing: open pins a live pid, refuses pid 0 and a process that is gone");
	CHECKF(pairing_open(&p, (uint32_t)getpid(), err, sizeof(err)) == 0, "%s", err);
	CHECK(p.pid == getpid() && p.pidfd >= 0);
	pairing_close(&p);
	CHECK(pairing_open(&p, 0, err, sizeof(err)) < 0);
	CHECKF(pairing_open(&p, 0x3ffffffe, err, sizeof(err)) < 0 && p.pidfd < 0, "%s", err);
	unit_end();

	return unit_exit();
}
