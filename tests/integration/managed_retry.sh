#!/usr/bin/env bash
# tests/integration/managed_retry.sh — while its manager is away, a managed vtpmd answers the
# guest's state-changing commands TPM_RC_RETRY without running them (manager_client.h,
# mgr_retry.h), and runs them once the manager is back.
#
# A swtpm is the host TPM, vtpmmgrd the manager (one group, one vTPM), a managed vtpmd started
# the launcher's way serves the vTPM on a unix data socket; tpmc sends raw TPM 2.0 commands
# (-1: one try, a RETRY is the result). Set-up: NV index A defined and written (value 1).
# For the manager stopped by SIGTERM (it removes its socket), then by kill -9 (the socket file
# stays), checks:
#   K-write-retry        NV_Write of A answers TPM_RC_RETRY (0x922), five times in a row
#   K-define-retry       NV_DefineSpace of index B answers TPM_RC_RETRY
#   K-reads-run          NV_Read of A runs meanwhile and reads the old value; B is undefined
#                        (TPM_RC_HANDLE): nothing was run
#   K-state-unchanged    the state file's version did not move
#   K-logged-once        vtpmd logged one line that it answers RETRY, not one per command
#   K-mgr-restart        the manager starts again
#   K-write-after        the same NV_Write succeeds (tpmc resends on RETRY as Linux does)
#   K-count-logged       vtpmd logged the number of commands answered RETRY (6), once
#   K-version-recorded   the manager's record is the state file's newest version
# Then, the manager down once more:
#   hold-waits           a write resent as Linux's driver does (tpmc without -1: eight tries in
#                        about 2.5 s) is run at the try after 2 s of RETRYs and waits for the
#                        manager (vtpmd logs it; tpmc has no answer while the manager is away)
#   hold-completes       the manager starts again: the write is answered, success
# Finally vtpmd is stopped and started again:
#   durable              A reads the last written value, B (defined after the restart) exists
#   reads-after-restart  NV_Read and a second read work
# Usage: [BUILD=build] [RETRY_LOGDIR=DIR] bash tests/integration/managed_retry.sh
# (RETRY_LOGDIR: copy vtpmd's and the manager's logs there at the end)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

NV_A=0x01500060
NV_B=0x01500061
LABEL=retry_u:vm_r:vtpm_t

need_tool swtpm timeout od jq || t_done
for f in "$VTPMD" "$BUILD/vtpmmgrd" "$BUILD/vtpmctl" "$BUILD/tests/tools/mgrc" "$BUILD/tests/tools/tpmc"; do
  [ -x "$f" ] || { t_fail build "$f is not an executable (run make first)"; t_done; }
done
MGRD=$BUILD/vtpmmgrd CTL=$BUILD/vtpmctl MGRC=$BUILD/tests/tools/mgrc TPMC=$BUILD/tests/tools/tpmc
W=$(t_tmpdir)
chmod 755 "$W"
mkdir -p "$W/state"
A=$W/admin.sock I=$W/inst.sock D=$W/data.sock LOG=$W/vtpmd.log
export VTPM_ADMIN_SOCKET=$A
exec 4>&2 2>>"$W/shell.err" # bash's "Killed" job notices stay out of the output
trap 'exec 2>&4 4>&-; grep -v "^[^ ]*: line [0-9]*: *[0-9]* Killed " "$W/shell.err" >&2; _t_cleanup' EXIT

lastline() { grep . "$@" 2>/dev/null | tail -n 1; }
_ms() { echo $(($(date +%s%N) / 1000000)); }
ctl() {
  OUT=$(timeout 30 "$CTL" "$@" 2>&1 </dev/null)
  RC=$?
}
# start_mgr: vtpmmgrd on the host TPM; sets MPID; 1 (with _why) if it did not start.
start_mgr() {
  rm -f "$A" "$I"
  bg_start "$MGRD" --tcti "$HOST_TCTI" --store "$W/store.db" --instance-socket "$I" \
    --admin-socket "$A" --nv-index 0x01000e03 --log "file=$W/mgr.log,level=2" \
    </dev/null >>"$W/mgr.out" 2>&1
  MPID=$BG_PID
  wait_for_path "$A" 100 && wait_for_path "$I" 10 && _alive "$MPID" && return 0
  _why="vtpmmgrd did not start: $(lastline "$W/mgr.out" "$W/mgr.log")"
  return 1
}
# start_vtpmd: the managed vtpmd, the launcher's way; sets VPID; 1 if it does not serve.
start_vtpmd() {
  rm -f "$D" "$W/ctrl.sock"
  bg_start "$MGRC" --register-self "$A" "$LABEL" --exec "$VTPMD" socket --tpm2 \
    --tpmstate dir="$W/state" --server type=unixio,path="$D" \
    --ctrl type=unixio,path="$W/ctrl.sock" --flags not-need-init,startup-clear \
    --manager "$I" --uuid "$UUID" --log "file=$LOG,level=2" </dev/null >>"$W/vtpmd.out" 2>&1
  VPID=$BG_PID
  wait_for_path "$D" 100 && _alive "$VPID"
}
# tpm ARGS...: tpmc ARGS on the data socket; OUT (stdout), ERR (stderr, one line), RC.
# tpm1: the same with tpmc -1 (a TPM_RC_RETRY answer is the result, not sent again).
tpm() {
  OUT=$(timeout 30 "$TPMC" "$D" "$@" 2>"$W/tpmc.err")
  RC=$?
  ERR=$(tr '\n' ' ' <"$W/tpmc.err")
}
tpm1() {
  OUT=$(timeout 30 "$TPMC" -1 "$D" "$@" 2>"$W/tpmc.err")
  RC=$?
  ERR=$(tr '\n' ' ' <"$W/tpmc.err")
}
# version_recorded CHECK: the manager's record equals the state file's newest version.
version_recorded() {
  local mv fv
  ctl --json vtpm show "$UUID"
  mv=$(jq -r .version <<<"$OUT" 2>/dev/null)
  fv=$(state_version "$W/state/vtpm2.state")
  if [ "$mv" = "$fv" ] && [ "$fv" -gt 0 ]; then
    t_pass "$1 ($fv)"
  else
    t_fail "$1" "the manager records version '$mv', the state file holds $fv"
  fi
}

# --- host TPM, manager, group, vTPM, managed vtpmd, index A = 1
start_host_tpm "$W/host-tpm" "$W/swtpm.log" || { t_fail host-tpm "swtpm did not start"; t_done; }
start_mgr || { t_fail mgr-start "$_why"; t_done; }
ctl host init --pcrs 0 || { t_fail host-init "$OUT"; t_done; }
ctl group create g --label '*:vm_r:vtpm_t' --any-binary || { t_fail group-create "$OUT"; t_done; }
ctl vtpm create --group g
UUID=$OUT
[[ "$UUID" =~ ^[0-9a-f-]{36}$ ]] || { t_fail vtpm-create "$OUT"; t_done; }
start_vtpmd || { t_fail vtpmd-start "$(lastline "$LOG" "$W/vtpmd.out")"; t_done; }
tpm nvdefine "$NV_A" 8 && tpm nvloop "$NV_A" 1 0 && tpm nvread "$NV_A"
if [ "$RC" = 0 ] && [ "$OUT" = 1 ]; then
  t_pass setup
else
  t_fail setup "defining and writing $NV_A: rc $RC: $ERR (read '$OUT')"
  t_done
fi
VAL=1

# --- the manager away: state-changing commands are answered RETRY, reads run
for K in sigterm kill9; do
  sig=TERM
  [ "$K" = kill9 ] && sig=KILL
  v0=$(state_version "$W/state/vtpm2.state")
  l0=$(wc -l <"$LOG")
  kill -"$sig" "$MPID"
  _reap "$MPID" 10
  [ "$K" = sigterm ] && t_eq sigterm-exit 0 "$_rc"
  bad='' t0=$(_ms)
  for i in 1 2 3 4 5; do
    tpm1 nvloop "$NV_A" 1 "$VAL"
    if [ "$RC" != 3 ] || [[ $ERR != *"TPM error 0x922"* ]]; then bad="try $i: rc $RC: ${ERR:-$OUT}"; break; fi
  done
  t1=$(_ms)
  [ -z "$bad" ] && t_pass "$K-write-retry (5 answers in $((t1 - t0)) ms)" || t_fail "$K-write-retry" "want TPM_RC_RETRY (0x922): $bad"
  tpm1 nvdefine "$NV_B" 8
  if [ "$RC" = 3 ] && [[ $ERR == *"TPM error 0x922"* ]]; then
    t_pass "$K-define-retry"
  else
    t_fail "$K-define-retry" "want TPM_RC_RETRY (0x922): rc $RC: ${ERR:-$OUT}"
  fi
  tpm1 nvread "$NV_A"
  r1="$RC $OUT"
  tpm1 nvread "$NV_B"
  if [ "$r1" = "0 $VAL" ] && [ "$RC" = 3 ] && [[ $ERR == *"TPM error 0x28b"* ]]; then
    t_pass "$K-reads-run"
  else
    t_fail "$K-reads-run" "read of A: '$r1' (want '0 $VAL'); read of B: rc $RC: $ERR (want TPM_RC_HANDLE 0x28b)"
  fi
  t_eq "$K-state-unchanged" "$v0" "$(state_version "$W/state/vtpm2.state")"
  n=$(tail -n +$((l0 + 1)) "$LOG" | grep -c 'are answered TPM_RC_RETRY')
  t_eq "$K-logged-once" 1 "$n"
  if start_mgr; then t_pass "$K-mgr-restart"; else t_fail "$K-mgr-restart" "$_why"; t_done; fi
  tpm nvloop "$NV_A" 1 "$VAL" && tpm nvread "$NV_A"
  if [ "$RC" = 0 ] && [ "$OUT" = $((VAL + 1)) ]; then
    t_pass "$K-write-after"
    VAL=$((VAL + 1))
  else
    t_fail "$K-write-after" "rc $RC: $ERR (read '$OUT', want $((VAL + 1)))"
  fi
  lines=$(tail -n +$((l0 + 1)) "$LOG" | grep 'commands were answered TPM_RC_RETRY')
  t_eq "$K-count-logged" 1 "$(grep -c . <<<"$lines")"
  [[ $lines == *" 6 guest commands were answered"* ]] || t_fail "$K-count" "want 6 commands: '$lines'"
  version_recorded "$K-version-recorded"
done

# --- a command retried for 2 s is run, and waits for the manager
l0=$(wc -l <"$LOG")
kill -TERM "$MPID"
_reap "$MPID" 10
"$TPMC" "$D" nvloop "$NV_A" 1 "$VAL" >"$W/hold.out" 2>"$W/hold.err" &
hpid=$!
_t_pids+=("$hpid")
held=0
for ((i = 0; i < 100; i++)); do
  tail -n +$((l0 + 1)) "$LOG" | grep -q 'running it now, its state write waits' && { held=1; break; }
  _alive "$hpid" || break
  sleep 0.05
done
sleep 1
if [ "$held" = 1 ] && _alive "$hpid"; then
  t_pass hold-waits
else
  t_fail hold-waits "vtpmd logged the hold: $held; tpmc: $(lastline "$W/hold.out" "$W/hold.err")"
fi
start_mgr || { t_fail hold-mgr-restart "$_why"; t_done; }
_reap "$hpid" 15
if [ "$_rc" = 0 ] && grep -qx "acked $((VAL + 1))" "$W/hold.out"; then
  t_pass hold-completes
  VAL=$((VAL + 1))
else
  t_fail hold-completes "tpmc exit $_rc: $(lastline "$W/hold.out" "$W/hold.err")"
fi
version_recorded hold-version-recorded

# --- durable: B is defined now; restart vtpmd and read everything back
tpm nvdefine "$NV_B" 8 || t_fail define-after "rc $RC: $ERR"
kill -TERM "$VPID"
_reap "$VPID" 10
t_eq vtpmd-exit 0 "$_rc"
start_vtpmd || { t_fail vtpmd-restart "$(lastline "$LOG" "$W/vtpmd.out")"; t_done; }
tpm nvread "$NV_A"
t_eq durable "0 $VAL" "$RC $OUT"
tpm nvread "$NV_B"
# defined, never written
if [ "$RC" = 5 ]; then t_pass durable-define; else t_fail durable-define "read of B: rc $RC: $ERR (want 5: defined, unwritten)"; fi
tpm nvread "$NV_A"
t_eq reads-after-restart "0 $VAL" "$RC $OUT"
kill -TERM "$VPID"
_reap "$VPID" 10
kill -TERM "$MPID"
_reap "$MPID" 10
[ -n "${RETRY_LOGDIR:-}" ] && cp "$LOG" "$W/mgr.log" "$RETRY_LOGDIR/"
t_done
