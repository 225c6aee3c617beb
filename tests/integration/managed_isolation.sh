#!/usr/bin/env bash
# tests/integration/managed_isolation.sh — the manager's acceptance tests, end to end: a real
# swtpm as the host TPM, the real vtpmmgrd, managed vtpmds started by vtpmctl, tpm2-tools.
#
#  1. end to end: host init, a group '*:vm_r:vtpm_t' (any binary), a vTPM started with
#     `vtpmctl start`, an NV marker written with tpm2-tools survives a stop and a start; the
#     state file holds no trace of the marker (a plaintext state file, as control, does);
#  2. isolation matrix, each refused with no key (vtpmd exits 1 naming the reason, the state
#     file untouched) and audited (an "open" row of that very pid says why): (a) the label of
#     another group's pattern, (b) a label matching no pattern of any group, (c) a binary digest
#     the group does not permit (a group pinned to another file's digest; a copy of vtpmd with
#     one byte appended against a group pinned to vtpmd, which itself is admitted), (d) an
#     unknown UUID, (e) a label registered for a process that died is not inherited by a new
#     process with the same pid (forced through /proc/sys/kernel/ns_last_pid), and a label
#     cannot be registered for a pid that does not exist, (f) a second instance is refused
#     while the first lives, and after kill -9 of the first a new one opens at once;
#  3. guest A cannot open guest B: B's label asking for A's UUID is refused; B's instance
#     cannot load A's state dir; B's state file over A's is refused (UUID mismatch), and with
#     its header rewritten to A's UUID still refused (AEAD under another key); files untouched;
#  4. rollback: an older copy of a state file ("rollback", exit 1, untouched), and an older
#     copy of the manager's store (exit 5, "rollback"); the current copies work again;
#  5. stolen disk: the store and state dir copied to a second "host" (a fresh swtpm): the
#     manager refuses to start there (cannot unseal, exit 1), so nothing can open;
#  6. a manager restart (SIGTERM, SIGKILL) while an instance lives: a second instance of that
#     vTPM (on a copy of its state) must not serve while the first still does;
#  7. host PCR change: an extend of a sealed PCR while the manager runs; a manager on a copy of
#     the store would refuse (exit 3 naming the PCR); `vtpmctl host reseal`; a restart works
#     and the vTPM opens with the same state; a second extend without reseal: exit 3.
# Usage: [BUILD=build] bash tests/integration/managed_isolation.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

TOOL_TIMEOUT=30
NV=0x01500040
U0=00000000-0000-4000-8000-0000000000d0

need_tool swtpm jq sha256sum od dd cmp tpm2_nvdefine tpm2_nvwrite tpm2_nvread tpm2_pcrextend tpm2_getrandom || t_done
for b in "$BUILD/vtpmd" "$BUILD/vtpmmgrd" "$BUILD/vtpmctl" "$BUILD/tests/tools/mgrc"; do
  [ -x "$b" ] || { t_fail build "$b is missing (run make)"; t_done; }
done
W=$(t_tmpdir)
chmod 755 "$W"
# private copies: a rebuild of the tree while this runs must not change the binaries (nor the
# digests the groups pin); vtpmctl finds vtpmd in its own directory
mkdir -p "$W/bin"
cp "$BUILD/vtpmd" "$BUILD/vtpmmgrd" "$BUILD/vtpmctl" "$BUILD/tests/tools/mgrc" "$W/bin/" ||
  { t_fail copy "cannot copy the binaries"; t_done; }
VTPMD=$W/bin/vtpmd MGRD=$W/bin/vtpmmgrd CTL=$W/bin/vtpmctl MGRC=$W/bin/mgrc
cp "$VTPMD" "$W/vtpmd-other"
printf '\0' >>"$W/vtpmd-other"
chmod 755 "$W/vtpmd-other"
VTPMD_DIGEST=$(sha256sum "$VTPMD" | cut -c1-64)
OTHER_DIGEST=$(sha256sum "$W/vtpmd-other" | cut -c1-64)
exec 4>&2 2>>"$W/shell.err" # keep bash's "Killed" job notices out of the output
trap 'exec 2>&4; grep -v " Killed " "$W/shell.err" >&2; _t_cleanup' EXIT

wait_gone() {
  local i
  for ((i = 0; i < ${2:-50}; i++)); do
    _alive "$1" || return 0
    sleep 0.1
  done
  return 1
}
oneline() { tr '\n' ' ' <<<"$1" | cut -c1-400; }

# start_host_tpm DIR: a swtpm as a host TPM on DIR; sets TCTI_OUT and SW_PID.
start_host_tpm() {
  local port
  mkdir -p "$1"
  for _ in 1 2 3; do
    port=$(free_port) || break
    bg_start swtpm socket --tpm2 --flags not-need-init,startup-clear \
      --server type=tcp,port="$port",bindaddr=127.0.0.1 \
      --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
      --tpmstate dir="$1" >>"$W/swtpm.log" 2>&1
    if _wait_tcp "$BG_PID" $((port + 1)) && _wait_tcp "$BG_PID" "$port"; then
      TCTI_OUT=swtpm:host=127.0.0.1,port=$port SW_PID=$BG_PID
      return 0
    fi
    bg_kill "$BG_PID" KILL
  done
  return 1
}

D=$W/mgr
mkdir -p "$D"
A=$D/admin.sock
I=$D/inst.sock
export VTPM_ADMIN_SOCKET=$A
# start_mgr: the manager on $D (background); waits for its sockets.
start_mgr() {
  rm -f "$A" "$I"
  bg_start "$MGRD" --tcti "$HOST_TCTI" --store "$D/store.db" --instance-socket "$I" \
    --admin-socket "$A" --nv-index 0x01000c01 --log "file=$D/vtpmmgrd.log"
  MGR_PID=$BG_PID
  wait_for_path "$A" 100 && wait_for_path "$I" 10
}
stop_mgr() { bg_kill "$MGR_PID"; }
# mgr_fg STORE TCTI: a manager in the foreground that must refuse to start; sets RC, ERR.
mgr_fg() {
  local s=$W/fg
  mkdir -p "$s"
  rm -f "$s/a.sock" "$s/i.sock"
  timeout "$TOOL_TIMEOUT" "$MGRD" --tcti "$2" --store "$1" --instance-socket "$s/i.sock" \
    --admin-socket "$s/a.sock" --nv-index 0x01000c01 >"$W/fg.out" 2>"$W/fg.err"
  RC=$?
  ERR=$(cat "$W/fg.err")
  FG_SOCKETS=$(ls "$s")
}

# ctl ARGS...: vtpmctl (bounded); sets RC, OUT, ERR.
ctl() {
  timeout "$TOOL_TIMEOUT" "$CTL" "$@" >"$W/out" 2>"$W/err" </dev/null
  RC=$?
  OUT=$(cat "$W/out")
  ERR=$(cat "$W/err")
  printf -- '--- vtpmctl %s (rc=%d)\n%s\n%s\n' "$*" "$RC" "$OUT" "$ERR" >>"$W/ctl.log"
}
ok() {
  local name=$1
  shift
  ctl "$@"
  if [ "$RC" -eq 0 ]; then t_pass "$name"; else t_fail "$name" "rc=$RC: $(oneline "$ERR")"; fi
  [ "$RC" -eq 0 ]
}

# start_vtpm NAME UUID LABEL DIR [vtpmctl options]: a managed vtpmd on a fresh TCP port pair;
# sets RC, ERR, VPID (empty if it did not start) and VTCTI.
start_vtpm() {
  local name=$1 uuid=$2 label=$3 dir=$4 port
  shift 4
  port=$(free_port)
  ctl start "$uuid" --label "$label" --state-dir "$dir" --manager-socket "$I" "$@" -- \
    --server type=tcp,port="$port",bindaddr=127.0.0.1 --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
    --flags not-need-init,startup-clear --log "file=$W/vtpmd-$name.log"
  VPID=
  if [ "$RC" -eq 0 ]; then
    VPID=$OUT
    _t_pids+=("$VPID")
    _wait_tcp "$VPID" "$port" || true
  fi
  VTCTI=swtpm:host=127.0.0.1,port=$port
}
stop_vtpm() {
  [ -n "${VPID:-}" ] || return 0
  kill -TERM "$VPID" 2>/dev/null
  wait_gone "$VPID" 50 || { kill -KILL "$VPID" 2>/dev/null; wait_gone "$VPID" 20; }
  VPID=
}
tpm() { TPM2TOOLS_TCTI=$VTCTI timeout 20 "$@" 2>>"$W/tpm2.log"; }
# nv_read FILE: read the 32-byte marker index into FILE.
nv_read() { tpm tpm2_nvread "$NV" -C o -s 32 -o "$1" >/dev/null; }
nv_write() { tpm tpm2_nvwrite "$NV" -C o -i "$1"; }

# audit_open NAME PID REGEX: the audit log has an "open" row of PID whose result matches REGEX.
audit_open() {
  local out
  out=$(timeout "$TOOL_TIMEOUT" "$CTL" --json audit --count 60 2>&1)
  if jq -e --arg r "$3" --argjson p "${2:-0}" \
    '[.events[]|select(.action=="open" and .pid==$p and (.result|test($r)))]|length == 1' \
    <<<"$out" >/dev/null 2>&1; then
    t_pass "$1"
  else
    t_fail "$1" "no open row of pid $2 matches '$3': $(jq -c '[.events[:4][]|"\(.pid) \(.action) \(.result)"]' <<<"$out" 2>&1 | cut -c1-400)"
  fi
}

# refused NAME UUID LABEL DIR MESSAGE AUDIT_REGEX [vtpmctl options]: `vtpmctl start --wait`
# must end with vtpmd's exit status 1, MESSAGE (grep -F) in vtpmd's own stderr line, an audit
# row of that vtpmd's pid matching AUDIT_REGEX, and the state file in DIR (if any) unchanged.
refused() {
  local name=$1 uuid=$2 label=$3 dir=$4 msg=$5 are=$6 before pid line
  shift 6
  before=$(_sha "$dir/vtpm2.state")
  ctl start "$uuid" --label "$label" --state-dir "$dir" --manager-socket "$I" --wait "$@" -- \
    --server type=unixio,path="$W/refused.data" --ctrl type=unixio,path="$W/refused.ctrl" \
    --flags not-need-init,startup-clear
  pid=$(head -n 1 <<<"$OUT")
  line=$(grep "^vtpmd\[$pid\]: " <<<"$ERR" | head -n 1)
  if [ "$RC" -ne 1 ]; then
    t_fail "$name" "expected vtpmd's exit status 1, got $RC: $(oneline "$ERR")"
    [ "$RC" = 124 ] && [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  elif ! grep -qF -- "$msg" <<<"$line"; then
    t_fail "$name" "vtpmd's message lacks '$msg': $(oneline "$ERR")"
  else
    t_pass "$name"
  fi
  t_eq "$name-file-untouched" "$before" "$(_sha "$dir/vtpm2.state")"
  [ -n "$are" ] && audit_open "$name-audited" "$pid" "$are"
  REFUSED_PID=$pid
}

# ============================================================ set-up
start_host_tpm "$W/host-tpm" || { t_fail host-tpm "swtpm did not start: $(tail -n 1 "$W/swtpm.log")"; t_done; }
HOST_TCTI=$TCTI_OUT
if start_mgr; then t_pass mgr-start; else t_fail mgr-start "$(tail -n 3 "$D/vtpmmgrd.log")"; t_done; fi
ok host-init host init --pcrs 0,7,16 || t_done
ok group-a group create ga --label '*:vm_r:vtpm_t' --any-binary
ok group-b group create gb --label '*:vmb_r:vtpm_t' --any-binary
ok group-pinned-other group create gpo --label '*:pin_r:vtpm_t' --digest-of "$MGRC"
ok group-pinned group create gpin --label '*:pin_r:vtpm_t' --digest-of "$VTPMD"
ctl vtpm create --group ga && VA=$OUT
ctl vtpm create --group gb && VB=$OUT
ctl vtpm create --group gpo && VPO=$OUT
ctl vtpm create --group gpin && VP=$OUT
if [ -n "${VA:-}" ] && [ -n "${VB:-}" ] && [ -n "${VPO:-}" ] && [ -n "${VP:-}" ]; then t_pass vtpms-created; else
  t_fail vtpms-created "$(oneline "$ERR")"
  t_done
fi
mkdir -p "$W/sa" "$W/sb" "$W/sa2" "$W/spo" "$W/sp" "$W/sn"

# ============================================================ 1. end to end
MARK=$W/mark.in
printf 'e2e-%s' "$(od -An -tx1 -N14 /dev/urandom | tr -d ' \n')" >"$MARK" # 32 bytes
start_vtpm a1 "$VA" guest1_u:vm_r:vtpm_t "$W/sa"
if [ -n "$VPID" ]; then t_pass e2e-start; else t_fail e2e-start "rc=$RC: $(oneline "$ERR")"; t_done; fi
ctl --json vtpm show "$VA"
t_eq e2e-show-open "true $VPID guest1_u:vm_r:vtpm_t" "$(jq -r '"\(.open) \(.pid) \(.label)"' <<<"$OUT")"
if tpm tpm2_nvdefine "$NV" -C o -s 32 -a "ownerread|ownerwrite" >/dev/null && nv_write "$MARK"; then
  t_pass e2e-nv-write
else
  t_fail e2e-nv-write "$(tail -n 2 "$W/tpm2.log")"
fi
stop_vtpm
ctl --json vtpm show "$VA"
t_eq e2e-closed-after-stop false "$(jq -r .open <<<"$OUT")"
start_vtpm a2 "$VA" guest1_u:vm_r:vtpm_t "$W/sa"
if [ -n "$VPID" ] && nv_read "$W/mark.out" && cmp -s "$MARK" "$W/mark.out"; then
  t_pass e2e-marker-after-restart
else
  t_fail e2e-marker-after-restart "rc=$RC: $(oneline "$ERR") $(tail -n 1 "$W/tpm2.log")"
fi
# a managed vTPM's state blobs leave the control channel only encrypted (no --migration-key
# given: a key derived from the state key, which moves with the vTPM)
cport=$((${VTCTI##*port=} + 1))
if timeout 20 swtpm_ioctl --tcp "127.0.0.1:$cport" --save permanent "$W/perm.blob" >"$W/ioctl.out" 2>&1; then
  flags=$(od -An -tx1 -j 4 -N 2 "$W/perm.blob" | tr -d ' \n')
  if [ $((16#${flags:-0} & 2)) = 2 ] && ! grep -qaF -f "$MARK" "$W/perm.blob"; then
    t_pass e2e-managed-blob-encrypted
  else
    t_fail e2e-managed-blob-encrypted "blob flags 0x$flags (MIGRATION_ENCRYPTED, 0x02, expected)"
  fi
else
  t_fail e2e-managed-blob-encrypted "swtpm_ioctl --save: $(tail -n 1 "$W/ioctl.out")"
fi
stop_vtpm
if [ -s "$W/sa/vtpm2.state" ] && ! grep -qaF -f "$MARK" "$W/sa/vtpm2.state"; then
  t_pass e2e-state-file-has-no-marker
else
  t_fail e2e-state-file-has-no-marker "$(ls -l "$W/sa")"
fi
# control: the same marker in an unencrypted state file is found by the same grep
port=$(free_port)
bg_start "$VTPMD" socket --tpm2 --tpmstate dir="$W/sn" --server type=tcp,port="$port",bindaddr=127.0.0.1 \
  --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 --flags not-need-init,startup-clear \
  --log file="$W/vtpmd-plain.log"
ppid_=$BG_PID
_wait_tcp "$ppid_" "$port"
VTCTI=swtpm:host=127.0.0.1,port=$port
tpm tpm2_nvdefine "$NV" -C o -s 32 -a "ownerread|ownerwrite" >/dev/null && nv_write "$MARK"
bg_kill "$ppid_"
if grep -qaF -f "$MARK" "$W/sn/vtpm2.state" 2>/dev/null; then t_pass e2e-control-plaintext-has-marker; else
  t_fail e2e-control-plaintext-has-marker "the marker grep would not see a plaintext marker"
fi
# the encrypted file without the manager's key: refused
timeout 10 "$VTPMD" socket --tpm2 --tpmstate dir="$W/sa" --server type=unixio,path="$W/x.data" \
  --ctrl type=unixio,path="$W/x.ctrl" --flags not-need-init >/dev/null 2>"$W/x.err"
RC=$?
if [ "$RC" = 1 ] && grep -q 'encrypted, but no key was given' "$W/x.err"; then t_pass e2e-no-key-no-state; else
  t_fail e2e-no-key-no-state "rc=$RC: $(oneline "$(cat "$W/x.err")")"
fi

# ============================================================ 2. isolation matrix
refused iso-a-label-of-other-group "$VA" guest1_u:vmb_r:vtpm_t "$W/sa" \
  "manager refused: permission denied: label guest1_u:vmb_r:vtpm_t matches no pattern of group ga" \
  '^refused: label guest1_u:vmb_r:vtpm_t matches no pattern of group ga$'
refused iso-b-label-of-no-group "$VA" nobody_u:nobody_r:nobody_t "$W/sa" \
  "manager refused: permission denied: label nobody_u:nobody_r:nobody_t matches no pattern of group ga" \
  '^refused: label nobody_u:nobody_r:nobody_t matches no pattern of group ga$'
refused iso-c-digest-of-other-file "$VPO" guest1_u:pin_r:vtpm_t "$W/spo" \
  "manager refused: permission denied: binary digest $VTPMD_DIGEST of pid" \
  "^refused: binary digest $VTPMD_DIGEST of pid [0-9]+ is not permitted by group gpo\$"
refused iso-c-vtpmd-plus-one-byte "$VP" guest1_u:pin_r:vtpm_t "$W/sp" \
  "manager refused: permission denied: binary digest $OTHER_DIGEST of pid" \
  "^refused: binary digest $OTHER_DIGEST of pid [0-9]+ is not permitted by group gpin\$" --vtpmd "$W/vtpmd-other"
# (the message names the pid: check it is the refused vtpmd's own)
if grep -q "of pid $REFUSED_PID is not permitted" <<<"$ERR"; then t_pass iso-c-message-names-pid; else
  t_fail iso-c-message-names-pid "pid $REFUSED_PID: $(oneline "$ERR")"
fi
start_vtpm p1 "$VP" guest1_u:pin_r:vtpm_t "$W/sp"
if [ -n "$VPID" ]; then t_pass iso-c-pinned-vtpmd-admitted; else t_fail iso-c-pinned-vtpmd-admitted "rc=$RC: $(oneline "$ERR")"; fi
stop_vtpm
refused iso-d-unknown-uuid "$U0" guest1_u:vm_r:vtpm_t "$W/sa" \
  "vTPM $U0: manager refused: not found: no vTPM $U0" "^refused: no vTPM $U0\$"

# (e) a registered label dies with its process: the launcher pattern (register, then exec)
bg_start "$MGRC" --register-self "$A" guest1_u:vm_r:vtpm_t --exec sleep 30 >"$W/sleep.out" 2>&1
SP=$BG_PID
for ((k = 0; k < 50; k++)); do [ "$(cat "/proc/$SP/comm" 2>/dev/null)" = sleep ] && break; sleep 0.05; done
ctl --json audit --count 10
if jq -e --arg s "pid $SP" '[.events[]|select(.action=="label-register" and .subject==$s and .result=="label guest1_u:vm_r:vtpm_t")]|length==1' <<<"$OUT" >/dev/null; then
  t_pass iso-e-label-registered
else
  t_fail iso-e-label-registered "$(jq -c '[.events[:3][]|"\(.action) \(.subject) \(.result)"]' <<<"$OUT")"
fi
kill -KILL "$SP"
wait "$SP" 2>/dev/null
# a new process takes the dead one's pid: the kernel hands out ns_last_pid+1 next
reuse_ok=0 can_force=1
for ((try = 0; try < 10; try++)); do
  rm -f "$W/reuse.rc"
  (
    echo $((SP - 1)) >/proc/sys/kernel/ns_last_pid 2>/dev/null
    "$VTPMD" socket --tpm2 --tpmstate dir="$W/sa" --server type=unixio,path="$W/r.data" \
      --ctrl type=unixio,path="$W/r.ctrl" --flags not-need-init --manager "$I" --uuid "$VA"
    echo $? >"$W/reuse.rc"
  ) >/dev/null 2>"$W/reuse.err" &
  sub=$!
  for ((k = 0; k < 100; k++)); do [ -s "$W/reuse.rc" ] && break; sleep 0.1; done
  if [ ! -s "$W/reuse.rc" ]; then
    pkill -KILL -P "$sub" 2>/dev/null # the vtpmd this subshell started, if it runs
    wait "$sub" 2>/dev/null
    t_fail iso-e-pid-reuse "vtpmd at a reused pid did not exit within 10 s: $(oneline "$(cat "$W/reuse.err")")"
    break
  fi
  wait "$sub" 2>/dev/null
  RPID=$(sed -n 's/^vtpmd\[\([0-9]*\)\]: .*/\1/p' "$W/reuse.err" | head -n 1)
  [ "$RPID" = "$SP" ] && { reuse_ok=1; break; }
  [ -w /proc/sys/kernel/ns_last_pid ] || { can_force=0; break; }
done
ERR=$(cat "$W/reuse.err")
if [ "$(cat "$W/reuse.rc" 2>/dev/null)" = 1 ] &&
  grep -qF "manager refused: permission denied: no label: pid $RPID has no LSM label (SO_PEERSEC) and none was registered for it" <<<"$ERR"; then
  t_pass "iso-e-dead-registration-not-inherited(pid $RPID, reused=$reuse_ok)"
else
  t_fail iso-e-dead-registration-not-inherited "rc=$(cat "$W/reuse.rc" 2>/dev/null): $(oneline "$ERR")"
fi
if [ $reuse_ok = 1 ]; then t_pass iso-e-pid-was-reused; elif [ $can_force = 0 ]; then
  t_skip iso-e-pid-was-reused "/proc/sys/kernel/ns_last_pid is not writable here: pid reuse not forced"
else
  t_fail iso-e-pid-was-reused "10 tries did not get pid $SP again (last $RPID)"
fi
audit_open iso-e-audited "$RPID" '^refused: no label: pid [0-9]+ has no LSM label'
OUT=$(timeout "$TOOL_TIMEOUT" "$MGRC" -s "$A" label-register pid="$SP" label=guest1_u:vm_r:vtpm_t 2>&1)
RC=$?
if [ "$RC" = 4 ] && grep -q "no process $SP" <<<"$OUT"; then t_pass iso-e-register-dead-pid-refused; else
  t_fail iso-e-register-dead-pid-refused "rc=$RC: $(oneline "$OUT")"
fi
# a pid that surely does not exist (above pid_max)
OUT=$(timeout "$TOOL_TIMEOUT" "$MGRC" -s "$A" label-register pid=99999999 label=guest1_u:vm_r:vtpm_t 2>&1)
RC=$?
if [ "$RC" = 4 ] && grep -q "no process 99999999" <<<"$OUT"; then t_pass iso-e-register-no-process-refused; else
  t_fail iso-e-register-no-process-refused "rc=$RC: $(oneline "$OUT")"
fi
ctl --json audit --count 10
if jq -e '[.events[]|select(.action=="label-register" and (.result|test("^refused: .*no process 99999999")))]|length==1' <<<"$OUT" >/dev/null; then
  t_pass iso-e-register-refusal-audited
else
  t_fail iso-e-register-refusal-audited "$(jq -c '[.events[:3][]|"\(.action) \(.subject) \(.result)"]' <<<"$OUT")"
fi

# (f) one live instance: a second is refused, kill -9 of the first frees the vTPM at once
start_vtpm f1 "$VA" guest1_u:vm_r:vtpm_t "$W/sa"
F1=$VPID
if [ -n "$F1" ]; then t_pass iso-f-first-instance; else t_fail iso-f-first-instance "rc=$RC: $(oneline "$ERR")"; fi
F1_TCTI=$VTCTI
refused iso-f-second-instance "$VA" guest1_u:vm_r:vtpm_t "$W/sa2" \
  "manager refused: in use by another instance: vTPM $VA is open by another live instance (pid $F1)" \
  "^refused: vTPM $VA is open by another live instance \\(pid $F1\\)\$"
if [ ! -e "$W/sa2/vtpm2.state" ]; then t_pass iso-f-second-wrote-nothing; else t_fail iso-f-second-wrote-nothing "$(ls -l "$W/sa2")"; fi
VTCTI=$F1_TCTI
if [ -n "$F1" ] && _alive "$F1" && nv_read "$W/mark.f1" && cmp -s "$MARK" "$W/mark.f1"; then
  t_pass iso-f-first-still-serves
else
  t_fail iso-f-first-still-serves "$(tail -n 1 "$W/tpm2.log")"
fi
[ -n "$F1" ] && kill -KILL "$F1"
wait_gone "$F1" 50
start_vtpm f2 "$VA" guest1_u:vm_r:vtpm_t "$W/sa"
if [ -n "$VPID" ] && nv_read "$W/mark.f2" && cmp -s "$MARK" "$W/mark.f2"; then
  t_pass iso-f-opens-after-kill9
else
  t_fail iso-f-opens-after-kill9 "rc=$RC: $(oneline "$ERR") $(tail -n 1 "$W/tpm2.log")"
fi
audit_open iso-f-reopen-audited "${VPID:-0}" '^ok: pid [0-9]+, label guest1_u:vm_r:vtpm_t, group ga,'
stop_vtpm

# ============================================================ 3. guest A cannot open guest B
MARKB=$W/markb.in
printf 'guest-b-%s' "$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')" >"$MARKB"
start_vtpm b1 "$VB" guest2_u:vmb_r:vtpm_t "$W/sb"
if [ -n "$VPID" ] && tpm tpm2_nvdefine "$NV" -C o -s 32 -a "ownerread|ownerwrite" >/dev/null && nv_write "$MARKB"; then
  t_pass ab-guest-b-writes
else
  t_fail ab-guest-b-writes "rc=$RC: $(oneline "$ERR") $(tail -n 1 "$W/tpm2.log")"
fi
stop_vtpm
refused ab-b-label-asks-for-a "$VA" guest2_u:vmb_r:vtpm_t "$W/sa" \
  "manager refused: permission denied: label guest2_u:vmb_r:vtpm_t matches no pattern of group ga" \
  '^refused: label guest2_u:vmb_r:vtpm_t matches no pattern of group ga$'
# B's own instance pointed at A's state dir: it gets B's key, and A's file is not B's
refused ab-b-instance-on-a-dir "$VB" guest2_u:vmb_r:vtpm_t "$W/sa" \
  "/vtpm2.state: no valid state: slot 0 (offset 0): belongs to another vTPM (UUID mismatch)" ''
cp "$W/sa/vtpm2.state" "$W/a.saved"
cp "$W/sb/vtpm2.state" "$W/sa/vtpm2.state"
refused ab-b-file-in-a-dir "$VA" guest1_u:vm_r:vtpm_t "$W/sa" \
  "cannot load the vTPM state in $W/sa: $W/sa/vtpm2.state: no valid state: slot 0 (offset 0): belongs to another vTPM (UUID mismatch)" ''
# B's file with A's UUID written into every slot header: the AAD matches, the key does not
size=$(stat -c %s "$W/sa/vtpm2.state")
uuid_hex=${VA//-/}
for off in 0 $((size / 2)); do
  if [ "$(od -An -c -j "$off" -N4 "$W/sa/vtpm2.state" | tr -d ' ')" = VTPS ]; then
    printf '%b' "$(sed 's/../\\x&/g' <<<"$uuid_hex")" | dd of="$W/sa/vtpm2.state" bs=1 seek=$((off + 8)) conv=notrunc status=none
  fi
done
refused ab-b-file-relabelled "$VA" guest1_u:vm_r:vtpm_t "$W/sa" \
  "slot 0 (offset 0): authentication failed (wrong key, or the file was modified or torn)" ''
cp "$W/a.saved" "$W/sa/vtpm2.state"

# ============================================================ 4a. rollback of a state file
MARK2=$W/mark2.in
start_vtpm r1 "$VA" guest1_u:vm_r:vtpm_t "$W/sa"
cp "$W/sa/vtpm2.state" "$W/a.old"
old_v=$(state_version "$W/a.old")
ok=1
for i in 1 2 3; do
  printf 'second-marker-%018d' "$i" >"$MARK2"
  nv_write "$MARK2" || ok=0
done
if [ -n "$VPID" ] && [ $ok = 1 ]; then t_pass rb-more-writes; else t_fail rb-more-writes "rc=$RC: $(tail -n 1 "$W/tpm2.log")"; fi
stop_vtpm
ctl --json vtpm show "$VA"
mgr_v=$(jq -r .version <<<"$OUT")
if [ "$mgr_v" -gt $((old_v + 1)) ] 2>/dev/null; then t_pass "rb-versions(old $old_v, now $mgr_v)"; else t_fail rb-versions "old $old_v, manager $mgr_v"; fi
cp "$W/sa/vtpm2.state" "$W/a.cur"
cp "$W/a.old" "$W/sa/vtpm2.state"
refused rb-old-state-file "$VA" guest1_u:vm_r:vtpm_t "$W/sa" \
  "rollback: the state file holds version $old_v but the manager recorded version $mgr_v; refusing the older state" ''
cp "$W/a.cur" "$W/sa/vtpm2.state"
start_vtpm r2 "$VA" guest1_u:vm_r:vtpm_t "$W/sa"
if [ -n "$VPID" ] && nv_read "$W/mark2.out" && cmp -s "$MARK2" "$W/mark2.out"; then
  t_pass rb-current-file-opens
else
  t_fail rb-current-file-opens "rc=$RC: $(oneline "$ERR") $(tail -n 1 "$W/tpm2.log")"
fi
stop_vtpm

# ============================================================ 4b/5. the store: stolen, rolled back
stop_mgr
mkdir -p "$W/store.old" "$W/store.cur" "$W/host2/mgr" "$W/host2/sa"
cp "$D"/store.db* "$W/store.old/"
cp "$D"/store.db* "$W/host2/mgr/"
cp "$W/sa/vtpm2.state" "$W/host2/sa/"
# a second host: a fresh swtpm, the copied store
start_host_tpm "$W/host2/tpm" || { t_fail host2-tpm "$(tail -n 1 "$W/swtpm.log")"; t_done; }
mgr_fg "$W/host2/mgr/store.db" "$TCTI_OUT"
t_eq stolen-manager-exit 1 "$RC"
if grep -q "cannot unseal the root key: .*not sealed under this host TPM's storage key" <<<"$ERR"; then
  t_pass stolen-manager-message
else
  t_fail stolen-manager-message "$(oneline "$ERR")"
fi
t_eq stolen-manager-no-sockets "" "$FG_SOCKETS"
timeout 10 "$VTPMD" socket --tpm2 --tpmstate dir="$W/host2/sa" --server type=unixio,path="$W/h2.data" \
  --ctrl type=unixio,path="$W/h2.ctrl" --flags not-need-init --manager "$W/fg/i.sock" --uuid "$VA" \
  >/dev/null 2>"$W/h2.err"
RC=$?
if [ "$RC" = 1 ] && grep -q "cannot reach the manager at $W/fg/i.sock" "$W/h2.err"; then t_pass stolen-vtpmd-no-key; else
  t_fail stolen-vtpmd-no-key "rc=$RC: $(oneline "$(cat "$W/h2.err")")"
fi
bg_kill "$SW_PID"
if ! grep -qaF -f "$MARK2" "$W/host2/sa/vtpm2.state" "$W/host2/mgr/"store.db*; then t_pass stolen-files-have-no-marker; else
  t_fail stolen-files-have-no-marker "the NV marker is readable in the copied files"
fi

# the store rolled back: admin actions after the old copy, then the old copy restored
if start_mgr; then t_pass mgr-restart; else t_fail mgr-restart "$(tail -n 3 "$D/vtpmmgrd.log")"; fi
ok store-later-group group create glater --label 'later_u:vm_r:vtpm_t' --any-binary
ctl vtpm create --group glater
VL=$OUT
stop_mgr
cp "$D"/store.db* "$W/store.cur/"
rm -f "$D"/store.db*
cp "$W/store.old/"* "$D/"
mgr_fg "$D/store.db" "$HOST_TCTI"
t_eq store-rollback-exit 5 "$RC"
if grep -q "the store is older than the host TPM's counter: rollback" <<<"$ERR"; then t_pass store-rollback-message; else
  t_fail store-rollback-message "$(oneline "$ERR")"
fi
rm -f "$D"/store.db*
cp "$W/store.cur/"* "$D/"
if start_mgr; then t_pass store-current-starts; else t_fail store-current-starts "$(tail -n 3 "$D/vtpmmgrd.log")"; fi
ctl --json vtpm show "$VL"
t_eq store-current-has-later-vtpm glater "$(jq -r .group <<<"$OUT" 2>&1)"

# ============================================================ 6. a manager restart under a live instance
# The instance that holds a vTPM open outlives a manager restart (SIGTERM: an operator's
# restart; SIGKILL: a crash). One vTPM must never run twice: after the restart either the
# manager still refuses a second instance (here: on a copy of the state dir), or the first
# instance no longer serves. Both serving at once is a fork of the vTPM.
for sig in TERM KILL; do
  ctl vtpm create --group ga
  VR=$OUT
  mkdir -p "$W/sr-$sig-1" "$W/sr-$sig-2"
  start_vtpm "r$sig-1" "$VR" guest1_u:vm_r:vtpm_t "$W/sr-$sig-1"
  R1=$VPID R1_TCTI=$VTCTI
  [ -n "$R1" ] || t_fail "restart-$sig-first-instance" "rc=$RC: $(oneline "$ERR")"
  kill -"$sig" "$MGR_PID"
  wait "$MGR_PID" 2>/dev/null
  start_mgr || t_fail "restart-$sig-manager" "$(tail -n 3 "$D/vtpmmgrd.log")"
  cp "$W/sr-$sig-1/vtpm2.state" "$W/sr-$sig-2/"
  start_vtpm "r$sig-2" "$VR" guest1_u:vm_r:vtpm_t "$W/sr-$sig-2"
  R2=$VPID R2_TCTI=$VTCTI
  s1=no s2=no
  VTCTI=$R1_TCTI
  [ -n "$R1" ] && [ "$(tpm tpm2_getrandom 8 --hex | tr -d '\n' | wc -c)" = 16 ] && s1=yes
  VTCTI=$R2_TCTI
  [ -n "$R2" ] && [ "$(tpm tpm2_getrandom 8 --hex | tr -d '\n' | wc -c)" = 16 ] && s2=yes
  if [ $s1 = yes ] && [ $s2 = yes ]; then
    t_fail "restart-$sig-one-instance" "after vtpmmgrd was restarted (SIG$sig), vTPM $VR got a second instance (pid $R2, on a copy of the state) while the first (pid $R1) still serves: two instances of one vTPM"
  elif [ $s1 = no ] && [ $s2 = no ]; then
    t_fail "restart-$sig-one-instance" "neither instance serves: rc=$RC: $(oneline "$ERR")"
  else
    t_pass "restart-$sig-one-instance(first serves: $s1, second serves: $s2)"
  fi
  for p in $R1 $R2; do kill -KILL "$p" 2>/dev/null; wait_gone "$p" 20; done
done
VPID=

# ============================================================ 7. host PCR change and reseal
pcr16() { TPM2TOOLS_TCTI=$HOST_TCTI timeout 20 tpm2_pcrextend "16:sha256=$1" 2>>"$W/tpm2.log"; }
if pcr16 "$(printf '%064x' 1)"; then t_pass pcr-extend-while-running; else t_fail pcr-extend-while-running "$(tail -n 1 "$W/tpm2.log")"; fi
ok pcr-manager-serves-after-extend host status
# a manager started now on (a copy of) this store would refuse
mkdir -p "$W/store.copy"
cp "$W/store.cur/"* "$W/store.copy/"
mgr_fg "$W/store.copy/store.db" "$HOST_TCTI"
t_eq pcr-without-reseal-exit 3 "$RC"
if grep -q "host PCR 16 differs from the state the root key was sealed to" <<<"$ERR"; then t_pass pcr-without-reseal-names-pcr; else
  t_fail pcr-without-reseal-names-pcr "$(oneline "$ERR")"
fi
ok pcr-reseal host reseal
stop_mgr
if start_mgr; then t_pass pcr-restart-after-reseal; else t_fail pcr-restart-after-reseal "$(tail -n 3 "$D/vtpmmgrd.log")"; fi
start_vtpm p2 "$VA" guest1_u:vm_r:vtpm_t "$W/sa"
if [ -n "$VPID" ] && nv_read "$W/mark2.p" && cmp -s "$MARK2" "$W/mark2.p"; then
  t_pass pcr-vtpm-opens-after-reseal
else
  t_fail pcr-vtpm-opens-after-reseal "rc=$RC: $(oneline "$ERR") $(tail -n 1 "$W/tpm2.log")"
fi
stop_vtpm
pcr16 "$(printf '%064x' 2)" || t_fail pcr-extend-2 "$(tail -n 1 "$W/tpm2.log")"
stop_mgr
mgr_fg "$D/store.db" "$HOST_TCTI"
t_eq pcr-second-extend-exit 3 "$RC"
if grep -q "host PCR 16 differs from the state the root key was sealed to" <<<"$ERR"; then t_pass pcr-second-extend-names-pcr; else
  t_fail pcr-second-extend-names-pcr "$(oneline "$ERR")"
fi
t_done
