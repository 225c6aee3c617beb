#!/usr/bin/env bash
# tests/integration/host_storm.sh — the manager on a slow, rate-limited host TPM under a
# write storm (issue "The manager on a real host TPM").
#
# A swtpm is the host TPM, behind slowtpm (hardware delays, NV writes beyond 10/s refused with
# TPM_RC_NV_RATE). One vtpmmgrd; WRITERS managed vtpmd and WRITERS unmanaged ones (--key), each
# with an NV index that `tpmc nvloop` writes as fast as it can. Phases:
#  1. storm: STORM_SECONDS of writes. No managed write fails; the host TPM's NV writes per
#     guest write stay at most 0.05 (slowtpm counts them); throughput is printed, not asserted.
#  2. the manager restarts under load: SIGTERM, then kill -9, each followed by a new start;
#     every writer goes on after each (no failed write), and a second instance of a running
#     vTPM is refused while the manager is down and right after it is back.
#  3. the store's disk fills up (a 4 MB tmpfs): managed writes wait, none fails; once space is
#     back they go on, without a restart.
#  4. every answered write is there: each managed vtpmd is stopped and started again and its
#     NV value is the last acked one (or the one in flight when its loop was stopped).
# Usage: [STORM_SECONDS=8] [STORM_WRITERS=8] [BUILD=build] bash tests/integration/host_storm.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

SECS=${STORM_SECONDS:-8}
N=${STORM_WRITERS:-8}
NV_INDEX=0x01500040
KEY_HEX=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff

need_tool swtpm python3 timeout awk mount umount dd || t_done
for f in "$BUILD/vtpmd" "$BUILD/vtpmmgrd" "$BUILD/vtpmctl" "$BUILD/tests/tools/mgrc" "$BUILD/tests/tools/tpmc"; do
  [ -x "$f" ] || { t_fail build "$f is not an executable (run make first)"; t_done; }
done
W=$(t_tmpdir)
chmod 755 "$W"
mkdir -p "$W/bin" "$W/mgr" "$W/run"
cp "$BUILD/vtpmd" "$BUILD/vtpmmgrd" "$BUILD/vtpmctl" "$BUILD/tests/tools/mgrc" "$BUILD/tests/tools/tpmc" "$W/bin/"
VTPMD=$W/bin/vtpmd MGRD=$W/bin/vtpmmgrd CTL=$W/bin/vtpmctl MGRC=$W/bin/mgrc TPMC=$W/bin/tpmc
A=$W/run/admin.sock
I=$W/run/inst.sock
export VTPM_ADMIN_SOCKET=$A
exec 4>&2 2>>"$W/shell.err" # bash's "Terminated" job notices stay out of the output
# the store lives on a small file system of its own, so that phase 3 can fill it
if mount -t tmpfs -o size=4m,mode=0700 tmpfs "$W/mgr" 2>"$W/mount.err"; then
  MOUNTED=1
else
  MOUNTED=0
  if [ "${CI:-}" = true ]; then
    t_fail storm-tmpfs "cannot mount a tmpfs for the store: $(cat "$W/mount.err")"
  else
    t_skip storm-tmpfs "cannot mount a tmpfs (not root?): the disk-full phase is skipped"
  fi
fi
trap 'exec 2>&4 4>&-; _t_cleanup_storm' EXIT
_t_cleanup_storm() {
  local p
  for p in "${_t_pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for p in "${_t_pids[@]}"; do wait "$p" 2>/dev/null; done
  [ "$MOUNTED" = 1 ] && umount "$W/mgr" 2>/dev/null
  rm -rf "$_t_root"
}

start_host_tpm "$W/host-tpm" "$W/swtpm.log" || { t_fail storm-host-tpm "swtpm did not start"; t_done; }
start_slowtpm "$HOST_PORT" --nv-rate 10 --counts "$W/counts" >>"$W/slowtpm.log" 2>&1 ||
  { t_fail storm-slowtpm "slowtpm did not start: $(tail -n 2 "$W/slowtpm.log")"; t_done; }

start_mgr() {
  rm -f "$A" "$I"
  bg_start "$MGRD" --tcti "$SLOW_TCTI" --store "$W/mgr/store.db" --instance-socket "$I" \
    --admin-socket "$A" --nv-index 0x01000d01 --log "file=$W/vtpmmgrd.log,level=2" </dev/null >>"$W/vtpmmgrd.out" 2>&1
  MPID=$BG_PID
  wait_for_path "$A" 150 && wait_for_path "$I" 10 && _alive "$MPID"
}
ctl() {
  OUT=$(timeout 60 "$CTL" "$@" 2>&1 </dev/null)
  RC=$?
}
# count NAME: a count from slowtpm's counts file (0 if absent)
count() { awk -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }' "$W/counts" 2>/dev/null; }

start_mgr || { t_fail storm-mgr-start "$(tail -n 3 "$W/vtpmmgrd.log")"; t_done; }
ctl host init --pcrs 0 || { t_fail storm-host-init "$OUT"; t_done; }
ctl group create storm --label '*:vm_r:vtpm_t' --any-binary || { t_fail storm-group "$OUT"; t_done; }

# managed vtpmd i: the launcher's way (register the label for the pid, then exec vtpmd)
start_managed() {
  local i=$1 dir=$W/m$1
  mkdir -p "$dir"
  rm -f "$dir/data.sock"
  bg_start "$MGRC" --register-self "$A" "g${i}_u:vm_r:vtpm_t" --exec "$VTPMD" socket --tpm2 \
    --tpmstate dir="$dir" --server type=unixio,path="$dir/data.sock" \
    --ctrl type=unixio,path="$dir/ctrl.sock" --flags not-need-init,startup-clear \
    --manager "$I" --uuid "${UUID[$i]}" --log "file=$dir/vtpmd.log,level=2" </dev/null >>"$dir/out" 2>&1
  VPID[$i]=$BG_PID
}
printf '%s' "$KEY_HEX" >"$W/key"
start_unmanaged() {
  local i=$1 dir=$W/u$1
  mkdir -p "$dir"
  bg_start "$VTPMD" socket --tpm2 --tpmstate dir="$dir" --server type=unixio,path="$dir/data.sock" \
    --ctrl type=unixio,path="$dir/ctrl.sock" --flags not-need-init,startup-clear \
    --key file="$W/key",format=hex,mode=aes-256-cbc --log "file=$dir/vtpmd.log,level=2" </dev/null >>"$dir/out" 2>&1
  UPID[$i]=$BG_PID
}
declare -a UUID VPID UPID LPID BASE
setup_ok=1
for ((i = 1; i <= N; i++)); do
  ctl vtpm create --group storm
  UUID[$i]=$OUT
  [[ "$OUT" =~ ^[0-9a-f-]{36}$ ]] || { t_fail storm-vtpm-create "$OUT"; t_done; }
  start_managed "$i"
  start_unmanaged "$i"
done
for ((i = 1; i <= N; i++)); do
  for d in "$W/m$i" "$W/u$i"; do
    timeout 30 "$TPMC" -w 10000 "$d/data.sock" nvdefine "$NV_INDEX" 8 >>"$W/setup.log" 2>&1 || setup_ok=0
  done
  BASE[$i]=0 UBASE[$i]=0
done
[ "$setup_ok" = 1 ] && t_pass storm-setup || { t_fail storm-setup "$(tail -n 2 "$W/setup.log")"; t_done; }

# loops_start: an nvloop per writer (managed ones from their last acked value)
loops_start() {
  for ((i = 1; i <= N; i++)); do
    "$TPMC" "$W/m$i/data.sock" nvloop "$NV_INDEX" 100000000 "${BASE[$i]}" >"$W/m$i/acks" 2>"$W/m$i/loop.err" &
    LPID[$i]=$!
    _t_pids+=("$!")
    "$TPMC" "$W/u$i/data.sock" nvloop "$NV_INDEX" 100000000 "${UBASE[$i]}" >"$W/u$i/acks" 2>"$W/u$i/loop.err" &
    ULPID[$i]=$!
    _t_pids+=("$!")
  done
}
acks() { grep -c '^acked' "$1/acks" 2>/dev/null; }
last_ack() { awk '$1 == "acked" { v = $2 } END { print v + 0 }' "$1/acks" 2>/dev/null; }
# loops_stop PHASE: stop every loop; each must still be running (no failed write).
# Sets MACKS (managed writes acked) and UACKS; advances BASE.
loops_stop() {
  local phase=$1 bad=0 first=''
  MACKS=0 UACKS=0
  for ((i = 1; i <= N; i++)); do
    for pid in "${LPID[$i]}" "${ULPID[$i]}"; do
      if ! _alive "$pid"; then
        bad=$((bad + 1))
        [ -n "$first" ] || first="a writer stopped by itself: $(cat "$W/m$i/loop.err" "$W/u$i/loop.err" | head -n 2 | tr '\n' ' ')"
      fi
      kill -TERM "$pid" 2>/dev/null
      _reap "$pid" 5
    done
    MACKS=$((MACKS + $(acks "$W/m$i")))
    UACKS=$((UACKS + $(acks "$W/u$i")))
    v=$(last_ack "$W/m$i")
    [ "$v" -gt "${BASE[$i]}" ] && BASE[$i]=$v
    v=$(last_ack "$W/u$i")
    [ "$v" -gt "${UBASE[$i]}" ] && UBASE[$i]=$v
  done
  if [ "$bad" -eq 0 ]; then t_pass "$phase-no-failed-write"; else t_fail "$phase-no-failed-write" "$bad writers; $first"; fi
}

# --- 1. the storm
nv0=$(count nv_writes) refused0=$(count nv_rate_refused) total0=$(count total)
loops_start
sleep "$SECS"
loops_stop storm
nv=$(($(count nv_writes) - nv0)) refused=$(($(count nv_rate_refused) - refused0)) total=$(($(count total) - total0))
echo "# storm: $N managed writers acked $MACKS writes, $N unmanaged $UACKS in ${SECS} s" \
  "(ratio $(awk -v m="$MACKS" -v u="$UACKS" 'BEGIN { printf "%.3f", u ? m / u : 0 }'));" \
  "host TPM: $total commands, $nv NV writes, $refused refused with TPM_RC_NV_RATE"
[ "$MACKS" -gt 0 ] && t_pass "storm-managed-writes ($MACKS)" || t_fail storm-managed-writes "no managed write was acked"
if [ "$MACKS" -gt 0 ] && [ $((nv * 100)) -le $((MACKS * 5)) ]; then
  t_pass "storm-host-nv-writes-per-guest-write ($nv for $MACKS)"
else
  t_fail storm-host-nv-writes-per-guest-write "$nv host NV writes for $MACKS guest writes (at most 0.05 each)"
fi

# --- 2. the manager restarts under load
loops_start
sleep 1
n_before=$(acks "$W/m1")
kill -TERM "$MPID"
_reap "$MPID" 10
t_eq restart-sigterm-exit 0 "$_rc"
# while the manager is down, a second instance of vTPM 1 cannot start
mkdir -p "$W/second"
timeout 20 "$MGRC" --register-self "$A" "g1_u:vm_r:vtpm_t" --exec "$VTPMD" socket --tpm2 \
  --tpmstate dir="$W/second" --ctrl type=unixio,path="$W/second/ctrl.sock" \
  --manager "$I" --uuid "${UUID[1]}" --log "file=$W/second/vtpmd.log" </dev/null >/dev/null 2>&1
rc=$?
[ "$rc" -ne 0 ] && t_pass "second-instance-manager-down (exit $rc)" || t_fail second-instance-manager-down "it started"
sleep 0.5
start_mgr && t_pass restart-after-sigterm || t_fail restart-after-sigterm "$(tail -n 3 "$W/vtpmmgrd.log")"
# right after the restart, before or while the running instances resume
timeout 20 "$MGRC" --register-self "$A" "g1_u:vm_r:vtpm_t" --exec "$VTPMD" socket --tpm2 \
  --tpmstate dir="$W/second" --ctrl type=unixio,path="$W/second/ctrl.sock" \
  --manager "$I" --uuid "${UUID[1]}" --log "file=$W/second/vtpmd.log" </dev/null >/dev/null 2>&1
rc=$?
if [ "$rc" -ne 0 ] && grep -q 'held\|open by another live instance' "$W/second/vtpmd.log"; then
  t_pass "second-instance-manager-back (exit $rc)"
else
  t_fail second-instance-manager-back "exit $rc: $(tail -n 1 "$W/second/vtpmd.log")"
fi
sleep 2
kill -KILL "$MPID"
_reap "$MPID"
sleep 0.3
start_mgr && t_pass restart-after-kill9 || t_fail restart-after-kill9 "$(tail -n 3 "$W/vtpmmgrd.log")"
declare -a MID
for ((i = 1; i <= N; i++)); do MID[$i]=$(acks "$W/m$i"); done
sleep 2
went_on=0
for ((i = 1; i <= N; i++)); do [ "$(acks "$W/m$i")" -gt "${MID[$i]}" ] && went_on=$((went_on + 1)); done
t_eq restart-every-writer-goes-on "$N" "$went_on"
loops_stop restart
[ "$(acks "$W/m1")" -gt "$n_before" ] && t_pass restart-writes-acked || t_fail restart-writes-acked "none after $n_before"
ctl host status --json
case $(jq -r .guard_verdict <<<"$OUT" 2>/dev/null) in
  crash-window) t_pass restart-kill9-reported ;;
  *) t_fail restart-kill9-reported "verdict '$(jq -r .guard_verdict <<<"$OUT" 2>/dev/null)'" ;;
esac

# --- 3. the store's disk fills up, then has room again
if [ "$MOUNTED" = 1 ]; then
  loops_start
  sleep 0.5
  dd if=/dev/zero of="$W/mgr/fill" bs=16k 2>/dev/null
  sleep 1
  declare -a FULL
  for ((i = 1; i <= N; i++)); do FULL[$i]=$(acks "$W/m$i"); done
  sleep 1.5
  stalled=0
  for ((i = 1; i <= N; i++)); do [ "$(acks "$W/m$i")" -le $((FULL[$i] + 1)) ] && stalled=$((stalled + 1)); done
  # the writes wait rather than fail (checked by loops_stop); they did stop while full
  t_eq disk-full-writes-wait "$N" "$stalled"
  rm -f "$W/mgr/fill"
  sleep 2
  went_on=0
  for ((i = 1; i <= N; i++)); do [ "$(acks "$W/m$i")" -gt $((FULL[$i] + 1)) ] && went_on=$((went_on + 1)); done
  t_eq disk-free-writes-go-on "$N" "$went_on"
  loops_stop disk-full
  grep -q 'retry\|cannot be written now' "$W"/m*/vtpmd.log && t_pass disk-full-logged || t_fail disk-full-logged "no vtpmd logged the wait"
fi

# --- 4. every answered write is there after a restart of everything
kill -TERM "$MPID"
_reap "$MPID" 10
start_mgr || t_fail final-mgr-start "$(tail -n 3 "$W/vtpmmgrd.log")"
ok=0 first=''
for ((i = 1; i <= N; i++)); do
  kill -TERM "${VPID[$i]}"
  _reap "${VPID[$i]}" 10
  start_managed "$i"
  v=$(timeout 30 "$TPMC" -w 10000 "$W/m$i/data.sock" nvread "$NV_INDEX" 2>>"$W/final.err")
  if [ -n "$v" ] && { [ "$v" = "${BASE[$i]}" ] || [ "$v" = $((BASE[$i] + 1)) ]; }; then
    ok=$((ok + 1))
  else
    [ -n "$first" ] || first="vTPM $i: read '$v', last acked ${BASE[$i]}: $(tail -n 1 "$W/m$i/vtpmd.log")"
  fi
done
[ "$ok" = "$N" ] && t_pass "final-every-acked-write-there ($N vTPMs)" || t_fail final-every-acked-write-there "$ok of $N; $first"
ctl host status --json
t_eq final-clean-restart exact "$(jq -r .guard_verdict <<<"$OUT" 2>/dev/null)"
t_done
