#!/usr/bin/env bash
# tests/integration/crash_kill9.sh — crash safety: kill -9 vtpmd while it acknowledges NV writes.
#
# Two state directories: "plain" (no key) and "keyed" (--key, AES-256-GCM state file). Each gets
# an NV index holding an 8-byte big-endian counter. Then ROUNDS rounds alternate between the two;
# a round starts vtpmd on the directory, reads the counter (checking the previous round of that
# directory), starts `tpmc nvloop` writing base+1, base+2, ... (each value is printed "acked v"
# once the TPM answered, i.e. after vtpmd made it durable), kills vtpmd with SIGKILL after a random
# 0-60 ms and records the last acked value A. At the next start on that directory the counter
# must be A or A+1 (the one write in flight may or may not have landed): less is a lost answered
# write, more (or garbage) is corruption. vtpmd must start every time. At the end the state files
# must still be mode 0600, and the keyed one must refuse a wrong key without being modified.
# Usage: [CRASH_ROUNDS=200] [CRASH_SEED=N] [BUILD=build] bash tests/integration/crash_kill9.sh
# CI=true forces at least 200 rounds.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

TPMC=${TPMC:-$BUILD/tests/tools/tpmc}
ROUNDS=${CRASH_ROUNDS:-200}
SEED=${CRASH_SEED:-$(( $(date +%s) % 32768 ))}
NV_INDEX=0x01500030
LOOP_N=100000000 # values per nvloop: far more than fit in 60 ms, so the kill always ends it


# _start NAME [ARGS...]: start vtpmd on directory NAME (plain|keyed) in the background.
_start() {
  local d=$work/$1
  shift
  rm -f "$d/data.sock" "$d/ctrl.sock"
  bg_start "$VTPMD" socket --tpm2 --tpmstate dir="$d/state" \
    --server type=unixio,path="$d/data.sock" --ctrl type=unixio,path="$d/ctrl.sock" \
    --flags not-need-init,startup-clear --log file="$d/vtpmd.log",level=1 "$@" \
    </dev/null >>"$d/vtpmd.out" 2>&1
  _vpid=$BG_PID
}
_keyargs() { [ "$1" = keyed ] && echo "--key file=$work/key.hex,format=hex,mode=aes-256-cbc"; }

# _read NAME: read the counter of a running vtpmd into _val; non-zero with _why on failure.
_read() {
  local d=$work/$1 err rc
  _val=$(timeout 15 "$TPMC" -w 5000 "$d/data.sock" nvread "$NV_INDEX" 2>"$d/tpmc.err")
  rc=$?
  [ "$rc" -eq 0 ] && [[ "$_val" =~ ^[0-9]+$ ]] && return 0
  err=$(tail -n 1 "$d/tpmc.err")
  if ! _alive "$_vpid"; then
    _reap "$_vpid"
    _why="vtpmd exited with status $_rc: $(tail -n 2 "$d/vtpmd.log" "$d/vtpmd.out" 2>/dev/null | grep -v '^==>' | grep . | tail -n 1)"
    return 2
  fi
  [ -n "$err" ] || err="output '$_val'"
  _why="tpmc nvread rc=$rc: $err"
  return 1
}

need_tool timeout sha256sum od awk || t_done
for f in "$VTPMD" "$TPMC"; do
  [ -x "$f" ] || { t_fail build "$f is not an executable (run make first)"; t_done; }
done
if [ "${CI:-}" = true ] && [ "$ROUNDS" -lt 200 ]; then
  echo "# CI=true: raising CRASH_ROUNDS from $ROUNDS to 200"
  ROUNDS=200
fi
if ! [[ "$ROUNDS" =~ ^[0-9]+$ ]] || [ "$ROUNDS" -lt 2 ]; then
  t_fail rounds "CRASH_ROUNDS=$ROUNDS is not a number >= 2"
  t_done
fi
RANDOM=$SEED
echo "# rounds=$ROUNDS seed=$SEED (rerun with CRASH_SEED=$SEED)"
work=$(t_tmpdir)
# private copies: a rebuild of the tree while this test runs must not change (or briefly remove)
# the binaries under test
if ! cp "$VTPMD" "$work/vtpmd" || ! cp "$TPMC" "$work/tpmc"; then
  t_fail copy "cannot copy $VTPMD and $TPMC"
  t_done
fi
VTPMD=$work/vtpmd TPMC=$work/tpmc
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$work/key.hex"
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$work/wrong.hex"
t_start=$(date +%s%N)
# bash reports every job that died of SIGKILL ("line N: PID Killed ..."): keep those notices out
# of the output, and show whatever else the shell said at the end
exec 4>&2 2>>"$work/shell.err"
_shell_err() { exec 2>&4 4>&-; grep -v '^[^ ]*: line [0-9]*: *[0-9]* Killed ' "$work/shell.err" >&2; }
trap '_shell_err; _t_cleanup' EXIT

# --- set-up: define the index and write 1 on each directory
declare -A base acked
for n in plain keyed; do
  mkdir -p "$work/$n/state"
  # shellcheck disable=SC2046
  _start $n $(_keyargs $n)
  out=$(timeout 15 "$TPMC" -w 5000 "$work/$n/data.sock" nvdefine "$NV_INDEX" 8 2>&1) &&
    out=$(timeout 15 "$TPMC" "$work/$n/data.sock" nvloop "$NV_INDEX" 1 0 2>&1) &&
    _read $n && [ "$_val" = 1 ]
  rc=$?
  kill -KILL "$_vpid" 2>/dev/null
  _reap "$_vpid"
  if [ $rc -ne 0 ]; then
    t_fail "kill9-setup-$n" "defining $NV_INDEX and writing 1 failed: ${_why:-$out} (value '${_val:-}')"
    t_done
  fi
  t_pass "kill9-setup-$n"
  base[$n]=1 acked[$n]=1
done

# --- the rounds: check the previous round of this directory, write, kill
starts=0 start_fail=0 checked=0 lost=0 corrupt=0 landed=0 read_fail=0
rounds_with_acks=0 total_acks=0 loop_bad=0
first_start='' first_lost='' first_corrupt='' first_read='' first_loop=
# _verify NAME ROUND: start vtpmd on NAME, read the counter, compare with what was acked.
_verify() {
  local n=$1 r=$2 a
  # shellcheck disable=SC2046
  _start "$n" $(_keyargs "$n")
  _read "$n"
  case $? in
  0) starts=$((starts + 1)) ;;
  2)
    start_fail=$((start_fail + 1))
    [ -n "$first_start" ] || first_start="round $r ($n): $_why"
    return 1
    ;;
  *)
    starts=$((starts + 1)) read_fail=$((read_fail + 1))
    [ -n "$first_read" ] || first_read="round $r ($n): $_why"
    return 1
    ;;
  esac
  a=${acked[$n]}
  crash_check "round $r ($n)" "$_val" "$a" "${base[$n]}"
  base[$n]=$_val acked[$n]=$_val
  return 0
}

for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2)); then n=plain; else n=keyed; fi
  d=$work/$n
  if ! _verify "$n" "$r"; then
    # vtpmd did not come up or cannot be read: nothing to crash this round
    [ -n "$_vpid" ] && kill -KILL "$_vpid" 2>/dev/null
    _reap "$_vpid"
    # without a readable value the chain of expectations is lost for this directory
    [ "$start_fail" -gt 3 ] && break
    continue
  fi
  "$TPMC" "$d/data.sock" nvloop "$NV_INDEX" "$LOOP_N" "${base[$n]}" >"$d/acks" 2>"$d/loop.err" &
  lpid=$!
  _t_pids+=("$lpid")
  sleep "0.0$(printf '%02d' $((RANDOM % 61)))"
  kill -KILL "$_vpid" 2>/dev/null
  _reap "$_vpid"
  _reap "$lpid" 5
  lrc=$_rc
  last=$(tail -n 1 "$d/acks" | awk '$1 == "acked" {print $2}')
  if [ -n "$last" ]; then
    acked[$n]=$last
    rounds_with_acks=$((rounds_with_acks + 1))
    total_acks=$((total_acks + last - base[$n]))
  fi
  # the loop may only end because vtpmd died (transport error, exit 2), never on a TPM error
  if [ "$lrc" -ne 2 ]; then
    loop_bad=$((loop_bad + 1))
    [ -n "$first_loop" ] || first_loop="round $r ($n): nvloop exited $lrc: $(tail -n 2 "$d/loop.err" | tr '\n' ' ')"
  fi
done
# the last round of each directory is checked by one more start
for n in plain keyed; do
  if _verify "$n" final; then
    kill -TERM "$_vpid" 2>/dev/null
  else
    kill -KILL "$_vpid" 2>/dev/null
  fi
  _reap "$_vpid"
done
secs=$(( ($(date +%s%N) - t_start) / 1000000 ))
echo "# $ROUNDS rounds in ${secs} ms: $starts starts, $checked values checked, $total_acks writes acked" \
  "in $rounds_with_acks rounds, in-flight write landed $landed times"

want=$((ROUNDS + 2))
if [ "$start_fail" -eq 0 ] && [ "$starts" -eq "$want" ]; then
  t_pass "kill9-$ROUNDS-rounds-vtpmd-starts ($starts/$want)"
else
  t_fail "kill9-$ROUNDS-rounds-vtpmd-starts" "$starts of $want starts succeeded, $start_fail failed; first: ${first_start:-none}"
fi
if [ "$read_fail" -eq 0 ] && [ "$checked" -eq "$want" ]; then
  t_pass "kill9-$ROUNDS-rounds-counter-readable ($checked/$want)"
else
  t_fail "kill9-$ROUNDS-rounds-counter-readable" "$checked of $want reads succeeded, $read_fail failed; first: ${first_read:-none}"
fi
crash_report "kill9-$ROUNDS-rounds"
if [ "$loop_bad" -eq 0 ]; then
  t_pass "kill9-$ROUNDS-rounds-writes-end-only-by-kill"
else
  t_fail "kill9-$ROUNDS-rounds-writes-end-only-by-kill" "$loop_bad rounds; first: $first_loop"
fi
# the test proves something only if writes were in flight when vtpmd died in most rounds
if [ "$rounds_with_acks" -ge $((ROUNDS / 2)) ]; then
  t_pass "kill9-$ROUNDS-rounds-writes-in-flight ($rounds_with_acks rounds acked writes, $total_acks in all)"
else
  t_fail "kill9-$ROUNDS-rounds-writes-in-flight" "only $rounds_with_acks of $ROUNDS rounds got any write acked"
fi

# --- afterwards: file modes, and the keyed file refuses a wrong key without being touched
for n in plain keyed; do
  f=$work/$n/state/vtpm2.state
  t_eq "kill9-$n-state-file-mode-0600" 600 "$(stat -c %a "$f" 2>/dev/null || echo missing)"
done
f=$work/keyed/state/vtpm2.state
before=$(_sha "$f")
_start keyed --key "file=$work/wrong.hex,format=hex,mode=aes-256-cbc"
_reap "$_vpid" 5
if [ "$_rc" -ne 0 ] && [ "$_rc" -ne 137 ]; then
  t_pass "kill9-keyed-wrong-key-refused (exit $_rc)"
else
  t_fail "kill9-keyed-wrong-key-refused" "vtpmd with a wrong key: exit status $_rc (137 = still running after 5 s)"
fi
t_eq "kill9-keyed-file-unchanged-by-wrong-key" "$before" "$(_sha "$f")"
# and the right key still opens it (the wrong-key attempt damaged nothing)
_why=
# shellcheck disable=SC2046
_start keyed $(_keyargs keyed)
if _read keyed && [ "$_val" = "${acked[keyed]}" ]; then
  t_pass "kill9-keyed-right-key-after-wrong-key"
else
  [ -n "$_why" ] || _why="read '$_val', expected ${acked[keyed]}"
  t_fail "kill9-keyed-right-key-after-wrong-key" "$_why"
fi
kill -TERM "$_vpid" 2>/dev/null
_reap "$_vpid"
t_done
