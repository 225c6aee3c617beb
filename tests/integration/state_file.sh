#!/usr/bin/env bash
# tests/integration/state_file.sh — integrity of vtpmd's state file DIR/vtpm2.state.
#
# Two fixtures are built first, "plain" (no key) and "keyed" (--key, AES-256-GCM): an NV counter
# (8 bytes) and an NV index holding an ASCII marker. Every destructive case works on a copy.
#   a  the keyed file does not contain the marker; the plain one does (so the grep can fail)
#   b  wrong key: vtpmd exits non-zero within 2 s naming the key/authentication; file unchanged
#   c  no key for the encrypted file: precise error, non-zero exit, file unchanged
#   d  a key for the plain file: error, file unchanged
#   e  file truncated to 0, 100, size/2, size-1 bytes: error exit, file unchanged
#   f  one flipped byte in the newest slot: vtpmd starts from the older slot (the newest slot that
#      authenticates wins) and the counter has its previous value; flipped bytes in both slots:
#      error, file unchanged
#   g  the file is 0600 by default; --tpmstate dir=D,mode=0640 gives 0640 (also after the file
#      was rewritten larger)
#   h  a second vtpmd on the same state directory exits 2 naming the lock; the first still serves
#   i  the state survives a graceful stop with swtpm_ioctl -s, and one with SIGTERM
#   j  the state version (u64 BE at offset 24 of each slot; slot 1 at filesize/2) grows by >= 1
#      with one NV write, and the two slots then hold consecutive versions
# Usage: [BUILD=build] bash tests/integration/state_file.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

TPMC=${TPMC:-$BUILD/tests/tools/tpmc}
NV_CTR=0x01500040
NV_MARK=0x01500041
FAIL_TO=2 # seconds within which a refused start must have exited

_oneline() { printf '%s' "$1" | grep -v '^$' | tr '\n' ' ' | cut -c1-300; }

# _start DIR [ARGS...]: vtpmd on DIR/state with sockets DIR/data.sock, DIR/ctrl.sock, TPM started.
_start() {
  local d=$1
  shift
  rm -f "$d/data.sock" "$d/ctrl.sock"
  bg_start "$VTPMD" socket --tpm2 --tpmstate dir="$d/state" \
    --server type=unixio,path="$d/data.sock" --ctrl type=unixio,path="$d/ctrl.sock" \
    --flags not-need-init,startup-clear --log file="$d/vtpmd.log",level=2 "$@" \
    </dev/null >>"$d/vtpmd.out" 2>&1
  _vpid=$BG_PID
}
_stop() { kill -TERM "$_vpid" 2>/dev/null; _reap "$_vpid"; }
# _tpmc DIR ARGS...: tpmc against DIR's vtpmd (bounded); stdout in _out, stderr in _err.
_tpmc() {
  local d=$1 rc
  shift
  _out=$(timeout 15 "$TPMC" -w 5000 "$d/data.sock" "$@" 2>"$d/tpmc.err")
  rc=$?
  _err=$(tail -n 1 "$d/tpmc.err")
  if [ $rc -ne 0 ] && ! _alive "$_vpid"; then
    _err="$_err; vtpmd is gone: $(tail -n 1 "$d/vtpmd.log" 2>/dev/null)"
  fi
  return $rc
}
# _refused DIR ARGS...: vtpmd on DIR must exit non-zero within FAIL_TO seconds. Output in _out,
# status in _rc; returns 0 if it was refused, 1 with _why otherwise.
_refused() {
  local d=$1
  shift
  _out=$(timeout "$FAIL_TO" "$VTPMD" socket --tpm2 --tpmstate dir="$d/state" \
    --server type=unixio,path="$d/refused-data.sock" --ctrl type=unixio,path="$d/refused-ctrl.sock" \
    --flags not-need-init,startup-clear "$@" </dev/null 2>&1)
  _rc=$?
  rm -f "$d/refused-data.sock" "$d/refused-ctrl.sock"
  case $_rc in
  0) _why="vtpmd exited 0 (it started and stopped?): $(_oneline "$_out")" ;;
  124) _why="vtpmd was still running after $FAIL_TO s (it accepted the state)" ;;
  *) return 0 ;;
  esac
  return 1
}
# _expect_refused NAME DIR PATTERN ARGS...: vtpmd must be refused with output matching PATTERN
# (extended regex, case-insensitive), and DIR's state file must be unchanged.
_expect_refused() {
  local name=$1 d=$2 pat=$3 before after
  shift 3
  before=$(_sha "$d/state/vtpm2.state")
  if ! _refused "$d" "$@"; then
    t_fail "$name" "$_why"
  elif ! printf '%s' "$_out" | grep -Eqi "$pat"; then
    t_fail "$name" "exit $_rc but the message does not match /$pat/: $(_oneline "$_out")"
  else
    t_pass "$name (exit $_rc)"
  fi
  echo "# $name: $(_oneline "$_out")"
  after=$(_sha "$d/state/vtpm2.state")
  t_eq "$name-file-unchanged" "${before:-missing}" "${after:-missing}"
}
# _copy SRC NAME: a copy of fixture SRC's state in $work/NAME; prints the new directory.
_copy() {
  local d=$work/$2
  rm -rf "$d"
  mkdir -p "$d"
  cp -a "$work/$1/state" "$d/state"
  rm -f "$d/state/.lock"
  echo "$d"
}
# _slot_ver FILE SLOT: state version of slot 0 or 1 (0 if the slot is empty).
_slot_ver() {
  local size off
  size=$(stat -c %s "$1") || return 1
  off=$(($2 * size / 2))
  [ "$(head -c $((off + 4)) "$1" | tail -c 4)" = VTPS ] || { echo 0; return 0; }
  od -An -tu8 --endian=big -j $((off + 24)) -N 8 "$1" | tr -d ' '
}
# _flip FILE OFFSET: invert one byte in place.
_flip() {
  local b
  b=$(od -An -tu1 -j "$2" -N 1 "$1" | tr -d ' ')
  printf '%b' "\\x$(printf %02x $((b ^ 0xff)))" | dd of="$1" bs=1 seek="$2" count=1 conv=notrunc status=none
}
# _fixture NAME [ARGS...]: fresh state in $work/NAME: counter = 5, marker written.
_fixture() {
  local n=$1 d=$work/$1
  shift
  mkdir -p "$d/state"
  _start "$d" "$@"
  if _tpmc "$d" nvdefine $NV_CTR 8 && _tpmc "$d" nvdefine $NV_MARK 64 &&
    _tpmc "$d" nvwrite $NV_MARK "$MARKER" && _tpmc "$d" nvloop $NV_CTR 5 0 &&
    _tpmc "$d" nvread $NV_CTR && [ "$_out" = 5 ]; then
    t_pass "fixture-$n"
    _stop
    return 0
  fi
  [ -n "${_err:-}" ] || _err="counter reads '$_out', not 5"
  t_fail "fixture-$n" "$_err"
  _stop
  return 1
}

need_tool timeout sha256sum od dd swtpm_ioctl || t_done
for f in "$VTPMD" "$TPMC"; do
  [ -x "$f" ] || { t_fail build "$f is not an executable (run make first)"; t_done; }
done
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
# bash reports every job that died of SIGKILL ("line N: PID Killed ..."): keep those notices out
# of the output, and show whatever else the shell said at the end
exec 4>&2 2>>"$work/shell.err"
_shell_err() { exec 2>&4 4>&-; grep -v '^[^ ]*: line [0-9]*: *[0-9]* Killed ' "$work/shell.err" >&2; }
trap '_shell_err; _t_cleanup' EXIT
MARKER="VTPM-MARKER-$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')"
KEY=(--key "file=$work/key.hex,format=hex,mode=aes-256-cbc")
WRONG=(--key "file=$work/wrong.hex,format=hex,mode=aes-256-cbc")

{ _fixture plain && _fixture keyed "${KEY[@]}"; } || t_done
P=$work/plain/state/vtpm2.state K=$work/keyed/state/vtpm2.state

# --- a: encryption hides NV contents
if grep -aqF "$MARKER" "$P"; then t_pass "a-plain-file-contains-marker"; else
  t_fail "a-plain-file-contains-marker" "marker $MARKER not found in the plain state file: the check below proves nothing"
fi
if grep -aqF "$MARKER" "$K"; then t_fail "a-keyed-file-hides-marker" "marker $MARKER found in the encrypted state file"; else
  t_pass "a-keyed-file-hides-marker"
fi
# nor any 8-byte window of it (a partly encrypted or XOR-ed file would still leak these)
if grep -aqF "${MARKER:12:8}" "$K"; then t_fail "a-keyed-file-hides-marker-part" "found '${MARKER:12:8}'"; else
  t_pass "a-keyed-file-hides-marker-part"
fi

# --- b, c, d: wrong key, missing key, unexpected key
_expect_refused b-wrong-key-refused "$work/keyed" 'key|authenticat' "${WRONG[@]}"
_expect_refused c-no-key-refused "$work/keyed" 'encrypted.*no key|no key.*encrypted'
_expect_refused d-key-for-plain-file-refused "$work/plain" 'not encrypted.*key' "${KEY[@]}"

# --- e: truncated files
for n in plain keyed; do
  size=$(stat -c %s "$work/$n/state/vtpm2.state")
  args=()
  [ $n = keyed ] && args=("${KEY[@]}")
  for len in 0 100 $((size / 2)) $((size - 1)); do
    d=$(_copy $n "trunc-$n-$len")
    truncate -s "$len" "$d/state/vtpm2.state"
    _expect_refused "e-$n-truncated-to-$len-of-$size-refused" "$d" 'size|malformed|no valid state' "${args[@]}"
  done
done

# --- f: one damaged slot falls back to the older slot; two damaged slots are refused
for n in plain keyed; do
  args=()
  [ $n = keyed ] && args=("${KEY[@]}")
  d=$(_copy $n "flip-$n")
  f=$d/state/vtpm2.state
  # two writes, then a crash: the newest slot holds 7, the other one 6
  _start "$d" "${args[@]}"
  _tpmc "$d" nvloop $NV_CTR 2 5 || t_fail "f-$n-write" "$_err"
  kill -KILL "$_vpid" 2>/dev/null
  _reap "$_vpid"
  v0=$(_slot_ver "$f" 0) v1=$(_slot_ver "$f" 1) size=$(stat -c %s "$f")
  if [ $((v0 - v1)) != 1 ] && [ $((v1 - v0)) != 1 ]; then
    t_fail "f-$n-slots-consecutive" "slot versions $v0 and $v1 after two NV writes"
    continue
  fi
  newest=$((v1 > v0 ? 1 : 0))
  cp -a "$d" "$d-both"
  _flip "$f" $((newest * size / 2 + 64 + 40)) # a payload byte of the newest slot
  _start "$d" "${args[@]}"
  if _tpmc "$d" nvread $NV_CTR; then
    t_eq "f-$n-flipped-newest-slot-starts-from-older-slot" 6 "$_out"
  else
    t_fail "f-$n-flipped-newest-slot-starts-from-older-slot" "$_err"
  fi
  _stop
  f=$d-both/state/vtpm2.state
  _flip "$f" $((64 + 40))
  _flip "$f" $((size / 2 + 64 + 40))
  _expect_refused "f-$n-flipped-both-slots-refused" "$d-both" 'authenticat|no valid state' "${args[@]}"
done

# --- g: file mode
d=$work/mode-default
mkdir -p "$d/state"
_start "$d"
_tpmc "$d" startup || t_fail g-start "$_err"
_stop
t_eq "g-default-mode-0600" 600 "$(stat -c %a "$d/state/vtpm2.state" 2>/dev/null || echo missing)"
d=$work/mode-0640
mkdir -p "$d/state"
rm -f "$d/data.sock" "$d/ctrl.sock"
bg_start "$VTPMD" socket --tpm2 --tpmstate dir="$d/state",mode=0640 \
  --server type=unixio,path="$d/data.sock" --ctrl type=unixio,path="$d/ctrl.sock" \
  --flags not-need-init,startup-clear --log file="$d/vtpmd.log",level=2 </dev/null >>"$d/vtpmd.out" 2>&1
_vpid=$BG_PID
_tpmc "$d" startup || t_fail g-start-0640 "$_err"
t_eq "g-mode-option-0640" 640 "$(stat -c %a "$d/state/vtpm2.state" 2>/dev/null || echo missing)"
# two 2048-byte indexes make the state outgrow its slots: the file is rewritten (temp + rename)
s1=$(stat -c %s "$d/state/vtpm2.state" 2>/dev/null)
if ! _tpmc "$d" nvdefine 0x01500050 2048 || ! _tpmc "$d" nvdefine 0x01500051 2048; then
  t_fail g-grow "$_err"
fi
s2=$(stat -c %s "$d/state/vtpm2.state" 2>/dev/null)
_stop
if [ -n "$s1" ] && [ -n "$s2" ] && [ "$s2" -gt "$s1" ]; then
  t_eq "g-mode-0640-kept-when-file-grows ($s1 -> $s2 bytes)" 640 "$(stat -c %a "$d/state/vtpm2.state")"
else
  t_fail "g-mode-0640-kept-when-file-grows" "the file did not grow ($s1 -> $s2 bytes)"
fi

# --- h: one vtpmd per state directory
d=$(_copy keyed lock)
_start "$d" "${KEY[@]}"
if _tpmc "$d" nvread $NV_CTR; then
  before=$(_sha "$d/state/vtpm2.state")
  _refused "$d" "${KEY[@]}"
  if [ "$_rc" = 2 ] && printf '%s' "$_out" | grep -qi lock; then
    t_pass "h-second-instance-refused (exit 2)"
  else
    t_fail "h-second-instance-refused" "want exit 2 and a message about the lock; exit $_rc: $(_oneline "$_out")"
  fi
  echo "# h: $(_oneline "$_out")"
  t_eq "h-file-unchanged-by-second-instance" "$before" "$(_sha "$d/state/vtpm2.state")"
  if _alive "$_vpid" && _tpmc "$d" nvread $NV_CTR; then
    t_eq "h-first-instance-still-serves" 5 "$_out"
  else
    t_fail "h-first-instance-still-serves" "$_err"
  fi
else
  t_fail "h-first-instance-start" "$_err"
fi
_stop

# --- i: graceful stops keep the state
d=$(_copy keyed graceful)
args=("${KEY[@]}")
_start "$d" "${args[@]}"
_tpmc "$d" nvloop $NV_CTR 1 40 || t_fail i-write "$_err"
out=$(timeout 5 swtpm_ioctl --unix "$d/ctrl.sock" -s 2>&1) || t_fail i-swtpm-ioctl-s "$(_oneline "$out")"
_reap "$_vpid"
t_eq "i-exit-status-after-swtpm-ioctl-s" 0 "$_rc"
_start "$d" "${args[@]}"
if _tpmc "$d" nvread $NV_CTR; then t_eq "i-state-survives-swtpm-ioctl-s" 41 "$_out"; else
  t_fail "i-state-survives-swtpm-ioctl-s" "$_err"
fi
_tpmc "$d" nvloop $NV_CTR 1 41 || t_fail i-write-2 "$_err"
kill -TERM "$_vpid"
_reap "$_vpid"
t_eq "i-exit-status-after-sigterm" 0 "$_rc"
_start "$d" "${args[@]}"
if _tpmc "$d" nvread $NV_CTR; then t_eq "i-state-survives-sigterm" 42 "$_out"; else
  t_fail "i-state-survives-sigterm" "$_err"
fi
_stop

# --- j: the state version grows with every committed write
d=$(_copy keyed version)
f=$d/state/vtpm2.state
_start "$d" "${args[@]}"
_tpmc "$d" startup || t_fail j-start "$_err"
v0=$(_slot_ver "$f" 0) v1=$(_slot_ver "$f" 1)
before=$((v0 > v1 ? v0 : v1))
_tpmc "$d" nvloop $NV_CTR 1 99 || t_fail j-write "$_err"
v0=$(_slot_ver "$f" 0) v1=$(_slot_ver "$f" 1)
after=$((v0 > v1 ? v0 : v1))
echo "# j: state version $before -> $after (slots: $v0, $v1)"
if [ "$before" -ge 1 ] && [ "$after" -ge $((before + 1)) ]; then
  t_pass "j-state-version-grows ($before -> $after)"
else
  t_fail "j-state-version-grows" "max slot version $before before one NV write, $after after"
fi
if [ $((v0 - v1)) = 1 ] || [ $((v1 - v0)) = 1 ]; then
  t_pass "j-slots-hold-consecutive-versions ($v0, $v1)"
else
  t_fail "j-slots-hold-consecutive-versions" "slot 0 has version $v0, slot 1 has $v1"
fi
_stop
t_done
