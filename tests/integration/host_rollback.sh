#!/usr/bin/env bash
# tests/integration/host_rollback.sh — the store's rollback guard, sentence by sentence
# (vtpmmgrd(8), ROLLBACK GUARD), with the counter advanced in the background.
#
#  1. copies of the store (and of a state file) are taken at random moments while managed
#     vtpmds write; the manager is stopped cleanly: every copy is refused as a rollback
#     (exit 5; a copy torn by the racing copy may be refused as damaged instead, exit 1 or 4),
#     and every older state file is refused by vtpmd.
#  2. the same, but the manager is killed (kill -9): with --after-crash refuse, the copies whose
#     guard epoch is the newest store's (taken after the last counter advance) are refused as
#     undecidable (exit 6) and all older ones as rollbacks (exit 5); the newest store itself is
#     undecidable, never a rollback. With the default (accept) it runs, reports the window in
#     `vtpmctl host status` and the audit log, and no answered write is lost.
#  3. host power loss: the host swtpm, the manager and every vtpmd are killed at once (the
#     hybrid counter loses its RAM, the TPM moves it ahead); everything is started again: no
#     answered write is lost, the start reports a TPM reset window; copies within the counter's
#     possible jump (TPM_PT_ORDERLY_COUNT + 1 advances) are undecidable, older ones refused.
# Usage: [BUILD=build] bash tests/integration/host_rollback.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

NV_INDEX=0x01500050
need_tool swtpm timeout awk jq || t_done
for f in "$BUILD/vtpmd" "$BUILD/vtpmmgrd" "$BUILD/vtpmctl" "$BUILD/tests/tools/mgrc" "$BUILD/tests/tools/tpmc"; do
  [ -x "$f" ] || { t_fail build "$f is not an executable (run make first)"; t_done; }
done
W=$(t_tmpdir)
chmod 755 "$W"
mkdir -p "$W/bin" "$W/mgr" "$W/run" "$W/copies"
cp "$BUILD/vtpmd" "$BUILD/vtpmmgrd" "$BUILD/vtpmctl" "$BUILD/tests/tools/mgrc" "$BUILD/tests/tools/tpmc" "$W/bin/"
VTPMD=$W/bin/vtpmd MGRD=$W/bin/vtpmmgrd CTL=$W/bin/vtpmctl MGRC=$W/bin/mgrc TPMC=$W/bin/tpmc
A=$W/run/admin.sock
I=$W/run/inst.sock
DB=$W/mgr/store.db
export VTPM_ADMIN_SOCKET=$A
exec 4>&2 2>>"$W/shell.err"
trap 'exec 2>&4 4>&-; _t_cleanup' EXIT

start_host_tpm "$W/host-tpm" "$W/swtpm.log" || { t_fail rb-host-tpm "swtpm did not start"; t_done; }
MGR_ARGS=(--store "$DB" --instance-socket "$I" --admin-socket "$A" --nv-index 0x01000e01)
start_mgr() {
  rm -f "$A" "$I"
  bg_start "$MGRD" --tcti "$HOST_TCTI" "${MGR_ARGS[@]}" "$@" --log "file=$W/vtpmmgrd.log,level=2" \
    </dev/null >>"$W/vtpmmgrd.out" 2>&1
  MPID=$BG_PID
  wait_for_path "$A" 150 && wait_for_path "$I" 10 && _alive "$MPID"
}
# try_store DIR: run the manager in the foreground on the store copy in DIR with --after-crash
# refuse (it must refuse: it never advances the counter then); TRY_RC, TRY_ERR.
try_store() {
  rm -f "$DB" "$DB-wal" "$DB-shm" "$A" "$I"
  cp "$1"/* "$W/mgr/"
  TRY_ERR=$(timeout 60 "$MGRD" --tcti "$HOST_TCTI" "${MGR_ARGS[@]}" --after-crash refuse 2>&1 </dev/null >/dev/null)
  TRY_RC=$?
}
# epoch_of TEXT: the store guard epoch a refusal names; marked TEXT: 1 if it says "advancing"
epoch_of() { sed -n 's/.*store guard epoch \([0-9]*\).*/\1/p' <<<"$1" | head -n 1; }
marked() { grep -q 'store guard epoch [0-9]* (advancing)' <<<"$1" && echo 1 || echo 0; }
ctl() {
  OUT=$(timeout 60 "$CTL" "$@" 2>&1 </dev/null)
  RC=$?
}
start_vtpmd() {
  local i=$1 dir=$W/v$1
  mkdir -p "$dir"
  rm -f "$dir/data.sock"
  bg_start "$MGRC" --register-self "$A" "r${i}_u:vm_r:vtpm_t" --exec "$VTPMD" socket --tpm2 \
    --tpmstate dir="$dir" --server type=unixio,path="$dir/data.sock" \
    --ctrl type=unixio,path="$dir/ctrl.sock" --flags not-need-init,startup-clear \
    --manager "$I" --uuid "${UUID[$i]}" --log "file=$dir/vtpmd.log,level=2" </dev/null >>"$dir/out" 2>&1
  VPID[$i]=$BG_PID
}
declare -a UUID VPID LPID BASE
loops_start() {
  for i in 1 2; do
    "$TPMC" -w 10000 "$W/v$i/data.sock" nvloop "$NV_INDEX" 100000000 "${BASE[$i]}" >"$W/v$i/acks" 2>"$W/v$i/loop.err" &
    LPID[$i]=$!
    _t_pids+=("$!")
  done
}
loops_stop() {
  for i in 1 2; do
    kill -TERM "${LPID[$i]}" 2>/dev/null
    _reap "${LPID[$i]}" 5
    v=$(awk '$1 == "acked" { v = $2 } END { print v + 0 }' "$W/v$i/acks")
    [ "$v" -gt "${BASE[$i]}" ] && BASE[$i]=$v
  done
}
# snapshots K PREFIX: during a storm, K copies of the store (and of vTPM 1's state file) at
# random moments
snapshots() {
  local k
  for ((k = 1; k <= $1; k++)); do
    sleep "0.$(printf '%03d' $((100 + RANDOM % 300)))"
    mkdir -p "$W/copies/$2$k"
    cp "$W/v1/vtpm2.state" "$W/copies/$2$k.state" 2>/dev/null
    cp "$DB-wal" "$W/copies/$2$k/" 2>/dev/null
    cp "$DB" "$W/copies/$2$k/"
  done
}
# check_values WHERE: restart both vtpmds and compare their NV values with the acked ones
check_values() {
  local i v
  for i in 1 2; do
    kill -TERM "${VPID[$i]}" 2>/dev/null
    _reap "${VPID[$i]}" 10
    start_vtpmd "$i"
    v=$(timeout 30 "$TPMC" -w 10000 "$W/v$i/data.sock" nvread "$NV_INDEX" 2>>"$W/read.err")
    crash_check "$1 vTPM $i" "${v:-0}" "${BASE[$i]}" "${BASE[$i]}"
    [ -n "$v" ] && BASE[$i]=$v
  done
}

start_mgr || { t_fail rb-mgr-start "$(tail -n 3 "$W/vtpmmgrd.log")"; t_done; }
ctl host init --pcrs 0 || { t_fail rb-host-init "$OUT"; t_done; }
ctl group create rb --label '*:vm_r:vtpm_t' --any-binary || { t_fail rb-group "$OUT"; t_done; }
for i in 1 2; do
  ctl vtpm create --group rb
  UUID[$i]=$OUT
  start_vtpmd "$i"
  timeout 30 "$TPMC" -w 10000 "$W/v$i/data.sock" nvdefine "$NV_INDEX" 8 >>"$W/setup.log" 2>&1 ||
    { t_fail rb-setup "$(tail -n 1 "$W/setup.log")"; t_done; }
  BASE[$i]=0
done

# --- 1. clean stop: every copy is a rollback
loops_start
snapshots 6 a
loops_stop
kill -TERM "$MPID"
_reap "$MPID" 10
mkdir -p "$W/copies/final1"
cp "$DB"* "$W/copies/final1/"
bad=0 torn=0 first=''
for k in 1 2 3 4 5 6; do
  try_store "$W/copies/a$k"
  case $TRY_RC in
  5) ;;
  1 | 4) torn=$((torn + 1)) ;;
  *) bad=$((bad + 1)); [ -n "$first" ] || first="copy $k: exit $TRY_RC: $TRY_ERR" ;;
  esac
done
[ "$bad" -eq 0 ] && t_pass "clean-stop-every-copy-refused (6 copies, $torn torn)" || t_fail clean-stop-every-copy-refused "$bad; $first"
rm -f "$DB"*
cp "$W/copies/final1/"* "$W/mgr/"
start_mgr || t_fail rb-restart-clean "$(tail -n 3 "$W/vtpmmgrd.log")"
ctl host status --json
t_eq clean-stop-exact exact "$(jq -r .guard_verdict <<<"$OUT")"
# an older state file is refused by vtpmd (the store's record is newer)
kill -TERM "${VPID[1]}"
_reap "${VPID[1]}" 10
cp "$W/v1/vtpm2.state" "$W/v1.current"
refused=0
for k in 1 2 3; do
  cp "$W/copies/a$k.state" "$W/v1/vtpm2.state"
  start_vtpmd 1
  _reap "${VPID[1]}" 15
  [ "$_rc" -ne 0 ] && grep -q 'rollback' "$W/v1/vtpmd.log" && refused=$((refused + 1))
done
t_eq old-state-file-refused 3 "$refused"
cp "$W/v1.current" "$W/v1/vtpm2.state"
start_vtpmd 1

# --- 2. a crash (kill -9 of the manager): the window, exactly
loops_start
snapshots 8 b
kill -KILL "$MPID"
_reap "$MPID"
sleep 0.5
loops_stop
mkdir -p "$W/copies/final2"
cp "$DB"* "$W/copies/final2/"
try_store "$W/copies/final2"
final_epoch=$(epoch_of "$TRY_ERR")
final_adv=$(marked "$TRY_ERR")
t_eq crash-newest-is-undecidable 6 "$TRY_RC"
[ -n "$final_epoch" ] && t_pass "crash-epoch-named ($final_epoch)" || t_fail crash-epoch-named "$TRY_ERR"
bad=0 window=0 older=0 torn=0 first=''
for k in 1 2 3 4 5 6 7 8; do
  try_store "$W/copies/b$k"
  e=$(epoch_of "$TRY_ERR")
  if [ "$TRY_RC" = 1 ] || [ "$TRY_RC" = 4 ]; then
    torn=$((torn + 1))
  elif [ "$TRY_RC" = 6 ] && { [ "$e" = "$final_epoch" ] ||
    { [ "$e" = $((final_epoch - 1)) ] && [ "$(marked "$TRY_ERR")" = 1 ] && [ "$final_adv" = 0 ]; }; }; then
    # taken after the last advance began: its marker, or the guard it wrote
    window=$((window + 1))
  elif [ "$TRY_RC" = 5 ] && [ -n "$e" ] && { [ "$e" -lt "$final_epoch" ] ||
    { [ "$e" = "$final_epoch" ] && [ "$final_adv" = 1 ] && [ "$(marked "$TRY_ERR")" = 0 ]; }; }; then
    # taken before the last advance began
    older=$((older + 1))
  else
    bad=$((bad + 1))
    [ -n "$first" ] || first="copy $k (epoch '$e', newest $final_epoch): exit $TRY_RC: $TRY_ERR"
  fi
done
if [ "$bad" -eq 0 ]; then
  t_pass "crash-copies-judged-exactly ($window in the window, $older older refused, $torn torn)"
else
  t_fail crash-copies-judged-exactly "$bad; $first"
fi
rm -f "$DB"*
cp "$W/copies/final2/"* "$W/mgr/"
start_mgr || t_fail rb-restart-after-crash "$(tail -n 3 "$W/vtpmmgrd.log")"
ctl host status --json
t_eq crash-reported crash-window "$(jq -r .guard_verdict <<<"$OUT")"
ctl --json audit --count 50
grep -q 'rollback-guard' <<<"$OUT" && t_pass crash-audited || t_fail crash-audited "no rollback-guard audit row"
# the running vtpmds were taken back; every acked write is there
loops_start
sleep 1
loops_stop
check_values crash

# --- 3. host power loss
loops_start
sleep 1
kill -TERM "$MPID" # a clean stop first: its clean record must not survive the power loss as proof
_reap "$MPID" 10
start_mgr --guard-interval 10
# early copies, then well over TPM_PT_ORDERLY_COUNT + 1 advances, then late copies
snapshots 2 c
ctl host status --json
e0=$(jq -r '.guard_epoch // 0' <<<"$OUT")
for ((k = 0; k < 600; k++)); do # until the counter is well past the hybrid jump (60 s at most)
  sleep 0.1
  ctl host status --json
  [ "$(jq -r '.guard_epoch // 0' <<<"$OUT")" -gt $((e0 + 300)) ] && break
done
snapshots 2 d
kill -KILL "$HOST_PID" "$MPID" "${VPID[1]}" "${VPID[2]}"
for p in "$HOST_PID" "$MPID" "${VPID[1]}" "${VPID[2]}"; do _reap "$p"; done
loops_stop
start_host_tpm "$W/host-tpm" "$W/swtpm.log" || { t_fail power-host-tpm-restart "swtpm did not start"; t_done; }
mkdir -p "$W/copies/final3"
cp "$DB"* "$W/copies/final3/"
try_store "$W/copies/final3"
t_eq power-newest-is-undecidable 6 "$TRY_RC"
grep -q 'reset without an orderly shutdown' <<<"$TRY_ERR" && t_pass power-reset-named || t_fail power-reset-named "$TRY_ERR"
# jump: the counter may have moved up to TPM_PT_ORDERLY_COUNT (255) ahead
bad=0 window=0 older=0 torn=0 first=''
for k in a1 b1 c1 c2 d1 d2; do
  try_store "$W/copies/$k"
  want=$(sed -n 's/.*needs NV value \([0-9-]*\).*/\1/p' <<<"$TRY_ERR" | head -n 1)
  nv=$(sed -n 's/.*is at \([0-9]*\)).*/\1/p' <<<"$TRY_ERR" | head -n 1)
  if [ "$TRY_RC" = 1 ] || [ "$TRY_RC" = 4 ]; then
    torn=$((torn + 1))
  elif [ "$TRY_RC" = 6 ] && [ -n "$want" ] && [ $((nv - want)) -le 256 ]; then
    window=$((window + 1))
  elif [ "$TRY_RC" = 5 ] && [ -n "$want" ] && [ $((nv - want)) -gt 256 ]; then
    older=$((older + 1))
  else
    bad=$((bad + 1))
    [ -n "$first" ] || first="copy $k: exit $TRY_RC: $TRY_ERR"
  fi
done
if [ "$bad" -eq 0 ] && [ "$window" -ge 1 ] && [ "$older" -ge 1 ]; then
  t_pass "power-copies-judged-exactly ($window within the jump, $older older refused, $torn torn)"
else
  t_fail power-copies-judged-exactly "$bad wrong, $window within the jump, $older older (both must occur); ${first:-}"
fi
rm -f "$DB"*
cp "$W/copies/final3/"* "$W/mgr/"
start_mgr || t_fail power-restart "$(tail -n 3 "$W/vtpmmgrd.log")"
ctl host status --json
t_eq power-reported tpm-reset-window "$(jq -r .guard_verdict <<<"$OUT")"
for i in 1 2; do start_vtpmd "$i"; done
for i in 1 2; do
  v=$(timeout 30 "$TPMC" -w 10000 "$W/v$i/data.sock" nvread "$NV_INDEX" 2>>"$W/read.err")
  crash_check "power vTPM $i" "${v:-0}" "${BASE[$i]}" "${BASE[$i]}"
done
crash_report rollback-guard

# --- 4. a clean stop while a counter advance is on the TPM thread (a slow TPM: slowtpm x20,
# 600 ms per increment) must still leave a clean, exact store: no false rollback
for i in 1 2; do kill -TERM "${VPID[$i]}" 2>/dev/null; _reap "${VPID[$i]}" 10; done
kill -TERM "$MPID"
_reap "$MPID" 20
if start_slowtpm "$HOST_PORT" --scale 20 >>"$W/slowtpm.log" 2>&1; then
  rm -f "$A" "$I"
  bg_start "$MGRD" --tcti "$SLOW_TCTI" "${MGR_ARGS[@]}" --guard-interval 50 \
    --log "file=$W/vtpmmgrd.log,level=2" </dev/null >>"$W/vtpmmgrd.out" 2>&1
  MPID=$BG_PID
  wait_for_path "$A" 600 && wait_for_path "$I" 10 || t_fail inflight-start "$(tail -n 2 "$W/vtpmmgrd.log")"
  ctl group create inflight --label 'x:y:z' --any-binary
  sleep 0.3 # the change's advance is now inside its 600 ms increment
  kill -TERM "$MPID"
  _reap "$MPID" 30
  t_eq inflight-stop-exit 0 "$_rc"
  start_mgr || t_fail inflight-restart "$(tail -n 2 "$W/vtpmmgrd.log")"
  ctl host status --json
  t_eq inflight-stop-is-exact exact "$(jq -r .guard_verdict <<<"$OUT")"
else
  t_fail inflight-slowtpm "slowtpm did not start: $(tail -n 1 "$W/slowtpm.log")"
fi
t_done
