/* vtpmd's rollback decision in managed mode: which loaded state may run. */
#include <string.h>

#include "unit.h"
#include "vtpmd/manager_client.h"

int main(void)
{
	uint8_t a[32], b[32];
	char err[512];

	memset(a, 0xaa, sizeof(a));
	memset(b, 0xbb, sizeof(b));

	unit_begin("managed: fresh vTPM (no record, no file) runs");
	CHECK(mgr_check_loaded(0, a, 0, b, err, sizeof(err)) == 0);
	unit_end();

	unit_begin("managed: the recorded version with the recorded digest runs");
	CHECK(mgr_check_loaded(7, a, 7, a, err, sizeof(err)) == 0);
	unit_end();

	unit_begin("managed: an older file is a rollback");
	CHECK(mgr_check_loaded(7, a, 6, a, err, sizeof(err)) < 0 && strstr(err, "rollback"));
	CHECK(mgr_check_loaded(7, a, 0, a, err, sizeof(err)) < 0 && strstr(err, "rollback"));
	unit_end();

	unit_begin("managed: same version, other digest is refused");
	CHECK(mgr_check_loaded(7, a, 7, b, err, sizeof(err)) < 0 && strstr(err, "digest"));
	unit_end();

	unit_begin("managed: one write past the record is reported, not refused");
	CHECK(mgr_check_loaded(7, a, 8, b, err, sizeof(err)) == 1);
	CHECK(mgr_check_loaded(0, a, 1, b, err, sizeof(err)) == 1);
	unit_end();

	unit_begin("managed: more than one write past the record is refused");
	CHECK(mgr_check_loaded(7, a, 9, b, err, sizeof(err)) < 0 && strstr(err, "more than one"));
	CHECK(mgr_check_loaded(0, a, 5, b, err, sizeof(err)) < 0);
	unit_end();
	return unit_exit();
}
