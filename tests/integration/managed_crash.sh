#!/usr/bin/env bash
# tests/integration/managed_crash.sh — crash safety in managed mode: kill -9 of vtpmd, and of
# vtpmmgrd, while a vTPM acknowledges NV writes.
#
# A real swtpm is the host TPM, a real vtpmmgrd the manager; one vTPM (group pinned to the
# vtpmd binary) is served by a managed vtpmd started the launcher's way (mgrc --register-self
# LABEL --exec vtpmd --manager ... --uuid ...). Its NV index holds an 8-byte big-endian
# counter. Each of ROUNDS rounds starts vtpmd (if none runs), reads the counter and checks it
# against the previous round, then runs `tpmc nvloop` (each value printed "acked v" once the
# TPM answered: vtpmd made it durable and the manager recorded the state version) and after a
# random 0-60 ms kills with SIGKILL either vtpmd (most rounds) or, every 5th round, vtpmmgrd;
# then, after a random 0-100 ms, the manager is started again (it must start: no false store
# rollback), the running vtpmd must be taken back and its writes must go on (more values
# acked after the restart), and then that vtpmd is killed. At the next start the counter must be the
# last acked value A or A+1; vtpmd must start every time (no false state rollback: the
# manager's record and the file agree, or the file is one write ahead), the manager's recorded
# version must equal the file's once vtpmd runs, and the manager must answer `vtpmctl host
# status` after every round.
# Usage: [CRASH_ROUNDS=200] [CRASH_SEED=N] [CRASH_HOST_SLOW=1] [BUILD=build] bash tests/integration/managed_crash.sh
# CI=true forces at least CRASH_MIN_ROUNDS (200) rounds. CRASH_HOST_SLOW=1 puts slowtpm (a hardware
# TPM's delays, NV writes beyond 10/s refused) between the manager and its host TPM.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

ROUNDS=${CRASH_ROUNDS:-200}
SEED=${CRASH_SEED:-$(($(date +%s) % 32768))}
MGR_EVERY=5 # every MGR_EVERY-th round kills the manager instead of vtpmd
NV_INDEX=0x01500031
LOOP_N=100000000
LABEL=crash_u:vm_r:vtpm_t

need_tool swtpm timeout sha256sum od awk jq || t_done
for f in "$BUILD/vtpmd" "$BUILD/vtpmmgrd" "$BUILD/vtpmctl" "$BUILD/tests/tools/mgrc" "$BUILD/tests/tools/tpmc"; do
  [ -x "$f" ] || { t_fail build "$f is not an executable (run make first)"; t_done; }
done
MIN_ROUNDS=${CRASH_MIN_ROUNDS:-200}
if [ "${CI:-}" = true ] && [ "$ROUNDS" -lt "$MIN_ROUNDS" ] 2>/dev/null; then
  echo "# CI=true: raising CRASH_ROUNDS from $ROUNDS to $MIN_ROUNDS"
  ROUNDS=$MIN_ROUNDS
fi
if ! [[ "$ROUNDS" =~ ^[0-9]+$ ]] || [ "$ROUNDS" -lt 2 ]; then
  t_fail rounds "CRASH_ROUNDS=$ROUNDS is not a number >= 2"
  t_done
fi
RANDOM=$SEED
echo "# rounds=$ROUNDS seed=$SEED (rerun with CRASH_SEED=$SEED)"
W=$(t_tmpdir)
chmod 755 "$W"
mkdir -p "$W/bin" "$W/state" "$W/mgr"
# private copies (a rebuild while this runs must not change the binaries or the pinned digest)
cp "$BUILD/vtpmd" "$BUILD/vtpmmgrd" "$BUILD/vtpmctl" "$BUILD/tests/tools/mgrc" "$BUILD/tests/tools/tpmc" "$W/bin/" ||
  { t_fail copy "cannot copy the binaries"; t_done; }
VTPMD=$W/bin/vtpmd MGRD=$W/bin/vtpmmgrd CTL=$W/bin/vtpmctl MGRC=$W/bin/mgrc TPMC=$W/bin/tpmc
A=$W/mgr/admin.sock
I=$W/mgr/inst.sock
export VTPM_ADMIN_SOCKET=$A
t_start=$(date +%s%N)
exec 4>&2 2>>"$W/shell.err" # bash's "Killed" job notices stay out of the output
trap 'exec 2>&4 4>&-; grep -v "^[^ ]*: line [0-9]*: *[0-9]* Killed " "$W/shell.err" >&2; _t_cleanup' EXIT

lastline() { grep . "$@" 2>/dev/null | tail -n 1; }

# --- the host TPM (behind slowtpm with CRASH_HOST_SLOW=1: hardware delays, NV rate limit)
HOST_TCTI=
if start_host_tpm "$W/host-tpm" "$W/swtpm.log"; then
  if [ "${CRASH_HOST_SLOW:-0}" = 1 ]; then
    start_slowtpm "$HOST_PORT" --nv-rate 10 >>"$W/slowtpm.log" 2>&1 && HOST_TCTI=$SLOW_TCTI
    echo "# host TPM behind slowtpm (--nv-rate 10)"
  fi
fi
[ -n "${HOST_TCTI:-}" ] || { t_fail host-tpm "the host TPM did not start: $(lastline "$W/swtpm.log" "$W/slowtpm.log")"; t_done; }

# _start_mgr: start vtpmmgrd and wait for its sockets; non-zero (with _why) if it did not start.
_start_mgr() {
  rm -f "$A" "$I"
  bg_start "$MGRD" --tcti "$HOST_TCTI" --store "$W/mgr/store.db" --instance-socket "$I" \
    --admin-socket "$A" --nv-index 0x01000c02 --log "file=$W/mgr/vtpmmgrd.log,level=1" \
    </dev/null >>"$W/mgr/vtpmmgrd.out" 2>&1
  _mpid=$BG_PID
  if wait_for_path "$A" 100 && wait_for_path "$I" 10 && _alive "$_mpid"; then return 0; fi
  _reap "$_mpid" 1
  _why="vtpmmgrd exited with status $_rc: $(lastline "$W/mgr/vtpmmgrd.out" "$W/mgr/vtpmmgrd.log")"
  return 1
}
# ctl ARGS...: vtpmctl; RC, OUT.
ctl() {
  OUT=$(timeout 30 "$CTL" "$@" 2>&1 </dev/null)
  RC=$?
}
# _start_vtpmd: the launcher's way: register the label for this pid, then exec vtpmd in it.
_start_vtpmd() {
  rm -f "$W/data.sock" "$W/ctrl.sock"
  bg_start "$MGRC" --register-self "$A" "$LABEL" --exec "$VTPMD" socket --tpm2 \
    --tpmstate dir="$W/state" --server type=unixio,path="$W/data.sock" \
    --ctrl type=unixio,path="$W/ctrl.sock" --flags not-need-init,startup-clear \
    --manager "$I" --uuid "$UUID" --log "file=$W/vtpmd.log,level=1" \
    </dev/null >>"$W/vtpmd.out" 2>&1
  _vpid=$BG_PID
}
# _read: read the counter of the running vtpmd into _val; 2 if vtpmd is gone, 1 if unreadable.
_read() {
  local rc err
  _val=$(timeout 15 "$TPMC" -w 5000 "$W/data.sock" nvread "$NV_INDEX" 2>"$W/tpmc.err")
  rc=$?
  [ "$rc" -eq 0 ] && [[ "$_val" =~ ^[0-9]+$ ]] && return 0
  err=$(lastline "$W/tpmc.err")
  if ! _alive "$_vpid"; then
    _reap "$_vpid"
    _why="vtpmd exited with status $_rc: $(lastline "$W/vtpmd.log" "$W/vtpmd.out")"
    return 2
  fi
  [ -n "$err" ] || err="output '$_val'"
  _why="tpmc nvread rc=$rc: $err"
  return 1
}

if _start_mgr; then t_pass crash-mgr-start; else t_fail crash-mgr-start "$_why"; t_done; fi
ctl host init --pcrs 0,7 || { t_fail crash-host-init "$OUT"; t_done; }
ctl group create crash --label '*:vm_r:vtpm_t' --digest-of "$VTPMD" || { t_fail crash-group "$OUT"; t_done; }
ctl vtpm create --group crash
UUID=$OUT
[[ "$UUID" =~ ^[0-9a-f-]{36}$ ]] || { t_fail crash-vtpm-create "$OUT"; t_done; }

# --- set-up: define the index, write 1, stop
_start_vtpmd
out=$(timeout 15 "$TPMC" -w 5000 "$W/data.sock" nvdefine "$NV_INDEX" 8 2>&1) &&
  out=$(timeout 15 "$TPMC" "$W/data.sock" nvloop "$NV_INDEX" 1 0 2>&1) &&
  _read && [ "$_val" = 1 ]
rc=$?
kill -TERM "$_vpid" 2>/dev/null
_reap "$_vpid"
if [ $rc -ne 0 ]; then
  t_fail crash-setup "defining $NV_INDEX and writing 1 failed: ${_why:-$out} (value '${_val:-}')"
  t_done
fi
t_pass crash-setup
base=1 acked=1 _vpid=

starts=0 start_fail=0 checked=0 lost=0 corrupt=0 landed=0 read_fail=0 ver_bad=0
mgr_kills=0 mgr_starts=0 mgr_fail=0 status_fail=0 vtpmd_kills=0 mgr_behind=0 mgr_rec_bad=0
rounds_with_acks=0 total_acks=0 loop_bad=0 mgr_resumed=0 first_resume=''
first_start='' first_lost='' first_corrupt='' first_read='' first_loop='' first_mgr='' first_status='' first_ver='' first_rec=''

# _verify ROUND: start vtpmd, read the counter, compare with what was acked.
_verify() {
  local r=$1 mv fv
  _start_vtpmd
  _read
  case $? in
  0) starts=$((starts + 1)) ;;
  2)
    start_fail=$((start_fail + 1))
    [ -n "$first_start" ] || first_start="round $r: $_why"
    return 1
    ;;
  *)
    starts=$((starts + 1)) read_fail=$((read_fail + 1))
    [ -n "$first_read" ] || first_read="round $r: $_why"
    return 1
    ;;
  esac
  crash_check "round $r" "$_val" "$acked" "$base"
  base=$_val acked=$_val
  # the manager's record is the file's newest version (every write was reported before the
  # nvread was answered)
  ctl --json vtpm show "$UUID"
  mv=$(jq -r .version <<<"$OUT" 2>/dev/null)
  fv=$(state_version "$W/state/vtpm2.state")
  if [ "$mv" != "$fv" ]; then
    ver_bad=$((ver_bad + 1))
    [ -n "$first_ver" ] || first_ver="round $r: manager records version '$mv', the file holds $fv"
  fi
  return 0
}

for ((r = 1; r <= ROUNDS; r++)); do
  if [ -z "$_vpid" ] || ! _alive "$_vpid"; then
    if ! _verify "$r"; then
      [ -n "$_vpid" ] && kill -KILL "$_vpid" 2>/dev/null
      _reap "$_vpid"
      _vpid=
      [ "$start_fail" -gt 3 ] && break
      continue
    fi
  fi
  "$TPMC" "$W/data.sock" nvloop "$NV_INDEX" "$LOOP_N" "$base" >"$W/acks" 2>"$W/loop.err" &
  lpid=$!
  _t_pids+=("$lpid")
  sleep "0.0$(printf '%02d' $((RANDOM % 61)))"
  if ((r % MGR_EVERY == 0)); then
    # the manager dies: vtpmd's next state write waits for it; start it again: vtpmd is
    # taken back and its writes go on; then end that vtpmd
    kill -KILL "$_mpid" 2>/dev/null
    _reap "$_mpid"
    mgr_kills=$((mgr_kills + 1))
    sleep "0.$(printf '%03d' $((RANDOM % 101)))"
    n0=$(grep -c '^acked' "$W/acks")
    if _start_mgr; then
      mgr_starts=$((mgr_starts + 1))
    else
      mgr_fail=$((mgr_fail + 1))
      [ -n "$first_mgr" ] || first_mgr="round $r: $_why"
    fi
    for ((k = 0; k < 100; k++)); do
      [ "$(grep -c '^acked' "$W/acks")" -gt $((n0 + 1)) ] && break
      _alive "$lpid" || break
      sleep 0.05
    done
    if [ "$(grep -c '^acked' "$W/acks")" -gt $((n0 + 1)) ]; then
      mgr_resumed=$((mgr_resumed + 1))
    else
      [ -n "$first_resume" ] || first_resume="round $r: no write acked within 5 s of the manager's restart ($(lastline "$W/loop.err" "$W/vtpmd.log"))"
    fi
    kill -KILL "$_vpid" 2>/dev/null
    _reap "$_vpid"
    _reap "$lpid" 5
    lrc=$_rc
    # the restarted manager's record: the file's newest version, or one behind it (the write
    # that was in flight when the manager died is on disk but was never recorded)
    ctl --json vtpm show "$UUID"
    mv=$(jq -r .version <<<"$OUT" 2>/dev/null)
    fv=$(state_version "$W/state/vtpm2.state")
    if [ "$mv" = "$fv" ]; then
      :
    elif [ "$mv" = $((fv - 1)) ]; then
      mgr_behind=$((mgr_behind + 1))
    else
      mgr_rec_bad=$((mgr_rec_bad + 1))
      [ -n "$first_rec" ] || first_rec="round $r: the restarted manager records version '$mv', the file holds $fv"
    fi
    ok_rc=2 # the kill of vtpmd ends the writes, never a failed command
  else
    kill -KILL "$_vpid" 2>/dev/null
    _reap "$_vpid"
    vtpmd_kills=$((vtpmd_kills + 1))
    _reap "$lpid" 5
    lrc=$_rc
    ok_rc=2
  fi
  _vpid=
  last=$(tail -n 1 "$W/acks" | awk '$1 == "acked" {print $2}')
  if [ -n "$last" ]; then
    acked=$last
    rounds_with_acks=$((rounds_with_acks + 1))
    total_acks=$((total_acks + last - base))
  fi
  if [[ " $ok_rc " != *" $lrc "* ]]; then
    loop_bad=$((loop_bad + 1))
    [ -n "$first_loop" ] || first_loop="round $r: nvloop exited $lrc (expected $ok_rc): $(tail -n 2 "$W/loop.err" | tr '\n' ' ')"
  fi
  ctl host status
  if [ "$RC" -ne 0 ]; then
    status_fail=$((status_fail + 1))
    [ -n "$first_status" ] || first_status="round $r: vtpmctl host status rc=$RC: $OUT"
    if [ "$mgr_fail" -gt 0 ] && ! _alive "${_mpid:-0}"; then break; fi
  fi
done
# the last round is checked by one more start
if _verify final; then kill -TERM "$_vpid" 2>/dev/null; else kill -KILL "$_vpid" 2>/dev/null; fi
_reap "$_vpid"
secs=$((($(date +%s%N) - t_start) / 1000000))
echo "# $ROUNDS rounds in ${secs} ms: $vtpmd_kills vtpmd kills, $mgr_kills manager kills ($mgr_starts restarts)," \
  "$starts vtpmd starts, $checked values checked, $total_acks writes acked in $rounds_with_acks rounds," \
  "in-flight write landed $landed times; after a manager kill vtpmd was taken back and wrote" \
  "on $mgr_resumed times and the file was one version ahead of the store $mgr_behind times"

want=$((ROUNDS + 1))
P="managed-kill9-$ROUNDS-rounds"
if [ "$start_fail" -eq 0 ] && [ "$starts" -eq "$want" ]; then
  t_pass "$P-vtpmd-starts ($starts/$want)"
else
  t_fail "$P-vtpmd-starts" "$starts of $want starts succeeded, $start_fail failed; first: ${first_start:-none}"
fi
if [ "$mgr_fail" -eq 0 ] && [ "$mgr_starts" -eq "$mgr_kills" ] && [ "$mgr_kills" -ge $((ROUNDS / MGR_EVERY)) ]; then
  t_pass "$P-manager-restarts ($mgr_starts/$mgr_kills)"
else
  t_fail "$P-manager-restarts" "$mgr_starts of $mgr_kills manager restarts succeeded; first failure: ${first_mgr:-none}"
fi
if [ "$mgr_resumed" -eq "$mgr_kills" ]; then
  t_pass "$P-writes-go-on-after-manager-restart ($mgr_resumed/$mgr_kills)"
else
  t_fail "$P-writes-go-on-after-manager-restart" "$mgr_resumed of $mgr_kills; first: $first_resume"
fi
if [ "$mgr_rec_bad" -eq 0 ]; then t_pass "$P-manager-record-after-kill ($mgr_behind of $mgr_kills one behind the file)"; else
  t_fail "$P-manager-record-after-kill" "$mgr_rec_bad of $mgr_kills; first: $first_rec"
fi
if [ "$status_fail" -eq 0 ]; then t_pass "$P-manager-serves"; else
  t_fail "$P-manager-serves" "$status_fail rounds without an answer to host status; first: $first_status"
fi
if [ "$read_fail" -eq 0 ] && [ "$checked" -eq "$want" ]; then
  t_pass "$P-counter-readable ($checked/$want)"
else
  t_fail "$P-counter-readable" "$checked of $want reads succeeded, $read_fail failed; first: ${first_read:-none}"
fi
crash_report "$P"
if [ "$ver_bad" -eq 0 ] && [ "$checked" -gt 0 ]; then
  t_pass "$P-manager-version-matches-file"
else
  t_fail "$P-manager-version-matches-file" "$ver_bad of $checked; first: ${first_ver:-none checked}"
fi
if [ "$loop_bad" -eq 0 ]; then t_pass "$P-writes-end-only-by-kill"; else
  t_fail "$P-writes-end-only-by-kill" "$loop_bad rounds; first: $first_loop"
fi
if [ "$rounds_with_acks" -ge $((ROUNDS / 2)) ]; then
  t_pass "$P-writes-in-flight ($rounds_with_acks rounds acked writes, $total_acks in all)"
else
  t_fail "$P-writes-in-flight" "only $rounds_with_acks of $ROUNDS rounds got any write acked"
fi
t_eq "$P-state-file-mode-0600" 600 "$(stat -c %a "$W/state/vtpm2.state" 2>/dev/null || echo missing)"
t_done
