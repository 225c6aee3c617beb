#!/usr/bin/env bash
# QEMU live migration between swtpm and vtpmd, both ways: the state blobs travel in swtpm's
# envelope, so an operator can move guests from swtpm to vtpmd (and back) without downtime.
# Runs tests/integration/qemu_guest.sh twice with each side's daemon chosen; its checks are
# reported with a "swtpm-to-vtpmd/" or "vtpmd-to-swtpm/" prefix.
. "$(dirname "$0")/../lib.sh"
need_tool swtpm qemu-system-x86_64 || t_done
SWTPM=$(command -v swtpm)
here=$(dirname "$0")
# run SRC DST NAME: the guest test with those daemons, its lines prefixed with NAME/.
run() {
  VTPMD_SRC=$1 VTPMD_DST=$2 bash "$here/qemu_guest.sh" >"$d/$3.out" 2>&1
  local rc=$?
  sed -e "s#^\(PASS\|FAIL\|SKIP\): #&$3/#" "$d/$3.out"
  [ $rc -eq 0 ] || grep -q '^FAIL: ' "$d/$3.out" || t_fail "$3" "qemu_guest.sh exited with status $rc"
}
d=$(t_tmpdir)
run "$SWTPM" "$VTPMD" swtpm-to-vtpmd
run "$VTPMD" "$SWTPM" vtpmd-to-swtpm
t_done
