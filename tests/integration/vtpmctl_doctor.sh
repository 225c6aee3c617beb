#!/usr/bin/env bash
# tests/integration/vtpmctl_doctor.sh — vtpmctl status and vtpmctl doctor against a real
# manager (a swtpm as its host TPM).
#   doctor/unreachable     no manager: FAIL manager, exit 2
#   doctor/unprovisioned   a manager, host not provisioned: FAIL provisioned, exit 4, and the
#                          fix names vtpmctl host init
#   doctor/clean           provisioned, a vTPM open by a managed vtpmd: every check ok, exit 0,
#                          --json says failed 0
#   doctor/admin-socket-open   the admin socket made writable by every user: FAIL sockets
#   status/*               the host part and the vTPM table (text and --json)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
need_tool swtpm jq || t_done
MGRD=$BUILD/vtpmmgrd CTL=$BUILD/vtpmctl
W=$(t_tmpdir)
chmod 755 "$W"
A=$W/admin.sock I=$W/inst.sock
export VTPM_ADMIN_SOCKET=$A
doc() { OUT=$(timeout 30 "$CTL" "$@" doctor --instance-socket "$I" --vtpmd "$VTPMD" 2>&1); RC=$?; }

doc
[ $RC = 2 ] && grep -q '^FAIL  manager' <<<"$OUT" && t_pass doctor/unreachable ||
  t_fail doctor/unreachable "rc=$RC: $OUT"

start_host_tpm "$W/host" "$W/swtpm.log" || { t_fail host-tpm "swtpm did not start"; t_done; }
bg_start "$MGRD" --tcti "$HOST_TCTI" --store "$W/store.db" --instance-socket "$I" \
  --admin-socket "$A" --nv-index 0x01000e01 --log "file=$W/mgr.log" </dev/null >>"$W/mgr.out" 2>&1
wait_for_path "$A" 100 && wait_for_path "$I" 10 || { t_fail mgr-start "$(tail -n 2 "$W/mgr.out")"; t_done; }

doc
if [ $RC = 4 ] && grep -q '^FAIL  provisioned' <<<"$OUT" && grep -q 'fix: vtpmctl host init' <<<"$OUT"; then
  t_pass doctor/unprovisioned
else
  t_fail doctor/unprovisioned "rc=$RC: $OUT"
fi

"$CTL" host init --pcrs 0 >/dev/null && "$CTL" group create g --label '*:vm_r:vtpm_t' --any-binary >/dev/null &&
  UUID=$("$CTL" vtpm create --group g) || { t_fail setup "host init / group / vtpm create failed"; t_done; }
mkdir -p "$W/st"
VPID=$("$CTL" start "$UUID" --label g_u:vm_r:vtpm_t --state-dir "$W/st" --manager-socket "$I" \
  --vtpmd "$VTPMD" -- --ctrl type=unixio,path="$W/c.sock" 2>"$W/start.err") || { t_fail start "$(cat "$W/start.err")"; t_done; }
_t_pids+=("$VPID")
wait_for_path "$W/c.sock" 50

doc
if [ $RC = 0 ] && ! grep -q '^FAIL\|^warn' <<<"$OUT" && grep -q '^ok    instances    1 vTPM(s), 1 open' <<<"$OUT"; then
  t_pass doctor/clean
else
  t_fail doctor/clean "rc=$RC: $OUT"
fi
doc --json
t_eq doctor/json-failed-0 "0 8" "$(jq -r '"\(.failed) \(.checks | length)"' <<<"$OUT" 2>&1)"

chmod o+w "$A"
doc
[ $RC = 4 ] && grep -q '^FAIL  sockets      admin socket' <<<"$OUT" && t_pass doctor/admin-socket-open ||
  t_fail doctor/admin-socket-open "rc=$RC: $OUT"
chmod o-w "$A"

OUT=$(timeout 30 "$CTL" status 2>&1)
grep -q '^state: *ok' <<<"$OUT" && grep -q "^$UUID  g  " <<<"$OUT" && t_pass status/text ||
  t_fail status/text "$OUT"
OUT=$(timeout 30 "$CTL" --json status 2>&1)
t_eq status/json "ok 1 $VPID" "$(jq -r '"\(.host.state) \(.vtpm_list.vtpms | length) \(.vtpm_list.vtpms[0].pid)"' <<<"$OUT" 2>&1)"
kill "$VPID"
t_done
