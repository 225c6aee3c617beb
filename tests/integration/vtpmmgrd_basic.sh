#!/usr/bin/env bash
# tests/integration/vtpmmgrd_basic.sh — vtpmmgrd against a real swtpm standing in for the
# host TPM, driven over its two sockets by tests/tools/mgrc.
#
# Checks: an unprovisioned manager serves only host-init/status (open and vtpm-create are
# refused as not provisioned); host-init, refused a second time without FORCE; host status;
# group create/list/show/delete rules (bad patterns, digests, duplicates, delete refused while
# vTPMs exist); vTPM create/list/show/delete (refused while open; the answer says the state
# file is now unreadable); an audit row for each action and refusal; a non-root admin client
# is refused (socket mode, and with the mode opened: permission denied + audit); MGR_OPEN:
# no label → denied and audited, registered label → key, a second live instance → busy, a
# kill -9 releases it, label and binary digest refusals, commit rules (rollback, only the
# opener), no host TPM command per open; hostile bytes on both sockets get precise
# MGR_ERR_MALFORMED/UNKNOWN_TYPE answers and the manager keeps serving; a restart finds
# everything (same state key); an older copy of the store is refused (exit 5), an edited
# one too (exit 4); a host PCR extend makes the next start fail with exit 3 naming the PCR.
# Usage: [BUILD=build] bash tests/integration/vtpmmgrd_basic.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

MGRD=$BUILD/vtpmmgrd
MGRC=$BUILD/tests/tools/mgrc
CHECK=$BUILD/tests/tools/host_tpm_check
TOOL_TIMEOUT=30
ZERO32=$(printf '%064d' 0)

need_tool swtpm setpriv sha256sum || t_done
getent group nogroup >/dev/null || { t_fail admin-group "no group 'nogroup' on this host"; t_done; }
for b in "$MGRD" "$MGRC" "$CHECK"; do
  if [ ! -x "$b" ]; then
    t_fail build "$b is missing (run make)"
    t_done
  fi
done

W=$(t_tmpdir)
chmod 755 "$W" # nobody must reach the sockets to be refused by them
A=$W/admin.sock
I=$W/instance.sock
DB=$W/store.db
LOG=$W/vtpmmgrd.log

start_swtpm() {
  local port
  mkdir -p "$W/tpmstate"
  for _ in 1 2 3; do
    port=$(free_port) || break
    bg_start swtpm socket --tpm2 --flags not-need-init,startup-clear \
      --server type=tcp,port="$port",bindaddr=127.0.0.1 \
      --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
      --tpmstate dir="$W/tpmstate" >>"$W/swtpm.log" 2>&1
    if _wait_tcp "$BG_PID" $((port + 1)) && _wait_tcp "$BG_PID" "$port"; then
      SWTPM_PID=$BG_PID
      TCTI="swtpm:host=127.0.0.1,port=$port"
      return 0
    fi
    bg_kill "$BG_PID" KILL
  done
  return 1
}

MGRD_ARGS=()
# start_mgrd: start the manager in the background and wait for its sockets.
start_mgrd() {
  rm -f "$A" "$I"
  MGRD_ARGS=(--tcti "$TCTI" --store "$DB" --instance-socket "$I" --admin-socket "$A"
    --nv-index 0x01000b01 --log "file=$LOG,level=3")
  bg_start "$MGRD" "${MGRD_ARGS[@]}"
  MGRD_PID=$BG_PID
  wait_for_path "$A" 100 && wait_for_path "$I" 10
}
stop_mgrd() {
  bg_kill "$MGRD_PID"
}
# start_mgrd_fg: run the manager in the foreground (it must refuse to start); sets RC, ERR.
start_mgrd_fg() {
  rm -f "$A" "$I"
  timeout "$TOOL_TIMEOUT" "$MGRD" --tcti "$TCTI" --store "$DB" --instance-socket "$I" \
    --admin-socket "$A" --nv-index 0x01000b01 >"$W/fg.out" 2>"$W/fg.err"
  RC=$?
  ERR=$(cat "$W/fg.err")
}

# mc/ic ARGS...: mgrc on the admin/instance socket; sets RC and OUT (stdout and stderr).
mc() {
  OUT=$(timeout "$TOOL_TIMEOUT" "$MGRC" -s "$A" "$@" 2>&1)
  RC=$?
  printf -- '--- admin %s (rc=%d)\n%s\n' "$*" "$RC" "$OUT" >>"$W/mgrc.log"
}
ic() {
  OUT=$(timeout "$TOOL_TIMEOUT" "$MGRC" -s "$I" "$@" 2>&1)
  RC=$?
  printf -- '--- instance %s (rc=%d)\n%s\n' "$*" "$RC" "$OUT" >>"$W/mgrc.log"
}
# field NAME: the first value of field NAME in OUT (records' fields included).
field() { sed -n "s/^ *$1=//p" <<<"$OUT" | head -n 1; }
# prop NAME: a property (key=NAME, value=...) of the last answer
prop() { awk -v k="$1" '$0 ~ "^ *key="k"$" { getline; sub(/^ *value=/, ""); print; exit }' <<<"$OUT"; }
# guard_settled: wait (5 s at most) until the rollback guard covers every change; host-status in OUT
guard_settled() {
  local k
  for ((k = 0; k < 50; k++)); do
    mc host-status
    [ "$(prop guard_unguarded_changes)" = 0 ] && return 0
    sleep 0.1
  done
  return 1
}
# expect NAME RC [PATTERN]: the last mgrc run exited RC and its output has PATTERN.
expect() {
  local name=$1 want=$2 pat=${3:-}
  if [ "$RC" -ne "$want" ]; then
    t_fail "$name" "expected status $want, got $RC: $(tr '\n' ' ' <<<"$OUT" | cut -c1-300)"
  elif [ -n "$pat" ] && ! grep -q -- "$pat" <<<"$OUT"; then
    t_fail "$name" "output lacks '$pat': $(tr '\n' ' ' <<<"$OUT" | cut -c1-300)"
  else
    t_pass "$name"
  fi
}
# audit_has NAME PATTERN: the newest 200 audit rows hold a line matching PATTERN.
audit_has() {
  local out
  out=$(timeout "$TOOL_TIMEOUT" "$MGRC" -s "$A" audit-list count=200 2>&1)
  if grep -q -- "$2" <<<"$out"; then t_pass "$1"; else t_fail "$1" "no audit row matches '$2'"; fi
}
uuid_re='[0-9a-f]\{8\}-[0-9a-f]\{4\}-4[0-9a-f]\{3\}-[89ab][0-9a-f]\{3\}-[0-9a-f]\{12\}'

start_swtpm || { t_fail swtpm-start "swtpm did not start: $(tail -n 1 "$W/swtpm.log")"; t_done; }
t_pass swtpm-start

# --- not provisioned ---
if start_mgrd; then t_pass mgrd-start-unprovisioned; else t_fail mgrd-start-unprovisioned "$(tail -n 3 "$LOG")"; t_done; fi
t_eq admin-socket-mode 660 "$(stat -c %a "$A")"
t_eq instance-socket-mode 666 "$(stat -c %a "$I")"
t_eq store-mode 600 "$(stat -c %a "$DB")"
mc host-status
expect status-unprovisioned 0 'provisioned=0'
mc vtpm-create name=g1
expect vtpm-create-unprovisioned 8 'not provisioned'
ic open uuid=00000000-0000-4000-8000-000000000000
expect open-unprovisioned 8 'not provisioned'

# --- host init ---
mc host-init pcr-mask=0x800000000
expect host-init-bad-field-value 64
mc host-init pcr-mask=0x1000000
expect host-init-bad-mask 1 'PCR mask 0x1000000'
mc host-init pcr-mask=0x10001
expect host-init 0 'nv-index=0x1000b01'
mc host-init pcr-mask=0x10001
expect host-init-again-refused 7 'provisioned already; FORCE'
mc host-status
expect status-provisioned 0 'provisioned=1'
t_eq status-pcr-mask 0x10001 "$(field pcr-mask)"
t_eq status-nv-index 0x1000b01 "$(field nv-index)"
if [ -n "$(field ak-public)" ]; then t_pass status-ak-public; else t_fail status-ak-public "no AK public key"; fi

# --- groups ---
MGRC_DIGEST=$(sha256sum "$MGRC" | cut -c1-64)
OTHER_DIGEST=$(printf '%064x' 1)
mc group-create name=g1 'pattern=*:vm_r:vtpm_t' "bin-digest=$MGRC_DIGEST"
expect group-create-g1 0
G1=$(field group-uuid)
if grep -q "^$uuid_re\$" <<<"$G1"; then t_pass group-uuid-v4; else t_fail group-uuid-v4 "'$G1'"; fi
mc group-create name=gany 'pattern=guest1_u:vm_r:*' 'pattern=x_u:x_r:x_t:s0:c1,c2' any-digest
expect group-create-any 0
mc group-create name=gother 'pattern=*:*:*' "bin-digest=$OTHER_DIGEST"
expect group-create-other-digest 0
mc group-create name=g1 'pattern=a:b:c' any-digest
expect group-create-duplicate-name 7 "a group named 'g1' exists"
mc group-create name=gx 'pattern=a:b' any-digest
expect group-create-bad-pattern 1 "not of the form user:role:type"
mc group-create name=gx 'pattern=a:vm_*:c' any-digest
expect group-create-partial-wildcard 1 "whole-field"
mc group-create name=gx any-digest
expect group-create-no-pattern 1 "at least one label pattern"
mc group-create name=gx 'pattern=a:b:c'
expect group-create-no-digest 1 "either binary digests"
mc group-create name=gx 'pattern=a:b:c' any-digest "bin-digest=$OTHER_DIGEST"
expect group-create-digest-and-any 1 "not both"
mc group-create name=gx 'pattern=a:b:c' 'pattern=a:b:c' any-digest
expect group-create-pattern-twice 1 "given twice"
mc group-list
expect group-list 0
t_eq group-list-count 3 "$(grep -c '^record' <<<"$OUT")"
mc group-show name=g1
expect group-show 0 "bin-digest=$MGRC_DIGEST"
mc group-show group-uuid="$G1"
expect group-show-by-uuid 0 'name=g1'
mc group-show name=nosuch
expect group-show-missing 4 "no group named 'nosuch'"

# --- vTPMs ---
mc vtpm-create name=g1
expect vtpm-create 0
U1=$(field uuid)
if grep -q "^$uuid_re\$" <<<"$U1"; then t_pass vtpm-uuid-v4; else t_fail vtpm-uuid-v4 "'$U1'"; fi
mc vtpm-create name=gother
expect vtpm-create-other 0
U2=$(field uuid)
mc vtpm-create name=gany
expect vtpm-create-any 0
U3=$(field uuid)
mc vtpm-create name=nosuch
expect vtpm-create-no-group 4 "no group named 'nosuch'"
mc vtpm-list
expect vtpm-list 0 "uuid=$U1"
t_eq vtpm-list-count 3 "$(grep -c '^record' <<<"$OUT")"
mc vtpm-list name=g1
t_eq vtpm-list-by-group 1 "$(grep -c '^record' <<<"$OUT")"
mc vtpm-show uuid="$U1"
expect vtpm-show 0 "group-uuid=$G1"
t_eq vtpm-show-version 0 "$(field version)"
t_eq vtpm-show-closed 0 "$(field open)"
mc group-delete name=g1
expect group-delete-with-vtpms 5 "still has 1 vTPM"
mc group-create name=gempty 'pattern=a:b:c' any-digest
mc group-delete name=gempty
expect group-delete-empty 0
mc group-show name=gempty
expect group-deleted-gone 4

# --- audit ---
audit_has audit-host-init 'action=host-init'
audit_has audit-group-add 'action=group-add'
audit_has audit-vtpm-add 'action=vtpm-add'
audit_has audit-group-delete-refused "result=refused: group 'g1' still has 1 vTPM"
audit_has audit-group-delete 'action=group-delete'
audit_has audit-status-read 'action=host-status'
audit_has audit-malformed-create "result=refused: group-create: pattern 'a:b'"
mc audit-list count=3
first3=$(sed -n 's/^  audit-id=//p' <<<"$OUT" | tr '\n' ' ')
mc audit-list count=2 offset=1
next2=$(sed -n 's/^  audit-id=//p' <<<"$OUT" | tr '\n' ' ')
# (the first listing appended its own row, which offset=1 skips)
t_eq audit-list-offset "$(cut -d' ' -f1-2 <<<"$first3") " "$next2"
mc audit-list count=1000
if grep -q '^more=1' <<<"$OUT" || [ "$(grep -c '^record' <<<"$OUT")" -ge 40 ]; then t_pass audit-list-long; else t_fail audit-list-long "$(grep -c '^record' <<<"$OUT") records"; fi

# --- a non-root admin client ---
if OUT=$(setpriv --reuid 65534 --regid 65534 --clear-groups "$MGRC" -s "$A" host-status 2>&1); then
  t_fail nobody-refused-by-socket-mode "nobody got an answer: $OUT"
else
  t_pass nobody-refused-by-socket-mode
fi
chmod 666 "$A"
OUT=$(setpriv --reuid 65534 --regid 65534 --clear-groups "$MGRC" -s "$A" group-create name=evil 'pattern=*:*:*' any-digest 2>&1)
RC=$?
chmod 660 "$A"
expect nobody-denied 3 'uid 65534 is not root'
audit_has audit-nobody-denied 'result=refused: uid 65534 is not root'
mc group-show name=evil
expect nobody-created-nothing 4

# --- MGR_OPEN ---
ic open uuid="$U1"
expect open-no-label 3 'no label: pid [0-9]* has no LSM label'
audit_has audit-open-no-label 'result=refused: no label'
# host TPM commands apart from the guard's background counter advances
other_cmds() { echo $(($(field tpm-commands) - $(prop tpm_NV_Increment))); }
mc host-status
cmds_before=$(other_cmds)
ic --register-self "$A" guest1_u:vm_r:vtpm_t open uuid="$U1"
expect open-registered 0 'group-uuid='
KEY1=$(field state-key)
if grep -q '^[0-9a-f]\{64\}$' <<<"$KEY1"; then t_pass open-returns-key; else t_fail open-returns-key "'$KEY1'"; fi
t_eq open-version 0 "$(field version)"
mc host-status
t_eq open-costs-no-tpm-command "$cmds_before" "$(other_cmds)"
audit_has audit-open-ok 'result=ok: pid [0-9]*, label guest1_u:vm_r:vtpm_t, group g1'
# registered labels are per process: a fresh mgrc without one is refused again
ic open uuid="$U1"
expect open-label-not-inherited 3 'no label'
ic --register-self "$A" other_u:vm_r:other_t open uuid="$U1"
expect open-label-mismatch 3 'label other_u:vm_r:other_t matches no pattern of group g1'
ic --register-self "$A" guest1_u:vm_r:vtpm_t open uuid="$U2"
expect open-digest-not-permitted 3 "binary digest $MGRC_DIGEST of pid [0-9]* is not permitted by group gother"
ic --register-self "$A" guest1_u:vm_r:vtpm_t open uuid=00000000-0000-4000-8000-000000000001
expect open-unknown-vtpm 4 'no vTPM 00000000-0000-4000-8000-000000000001'
ic --register-self "$A" x_u:x_r:x_t:s0:c1,c2 open uuid="$U3"
expect open-level-pattern 0 'state-key='
ic --register-self "$A" x_u:x_r:x_t:s0:c3 open uuid="$U3"
expect open-level-mismatch 3 'matches no pattern'
mc label-register pid=999999999 label=a:b:c
expect label-register-no-process 4 'no process 999999999'
mc label-register pid=0 label=a:b:c
expect label-register-bad-pid 1 'pid 0 is not a process id'
mc label-register pid=1 label='a:b'
expect label-register-bad-label 1 'not of the form'

# commit rules, one connection: open, commit 1, commit 1 with another digest, commit 0, close
D1=$(printf '%064x' 11)
D2=$(printf '%064x' 12)
ic --register-self "$A" guest1_u:vm_r:vtpm_t open uuid="$U1" -- commit uuid="$U1" version=1 "digest=$D1" \
  -- commit uuid="$U1" version=1 "digest=$D1" -- commit uuid="$U1" version=1 "digest=$D2" -- close uuid="$U1"
expect commit-sequence 0
# 6 ok: the open is two answers (its nonce, then the key), then commit, commit, close
if [ "$(grep -c '^status=0 ok' <<<"$OUT")" = 6 ] && grep -q 'status=6 rollback detected' <<<"$OUT"; then
  t_pass commit-same-ok-other-digest-rollback
else
  t_fail commit-same-ok-other-digest-rollback "$(grep '^status' <<<"$OUT" | tr '\n' ' ')"
fi
mc vtpm-show uuid="$U1"
t_eq commit-recorded-version 1 "$(field version)"
t_eq commit-recorded-digest "$D1" "$(field digest)"
# the commits were answered at once; the guard's counter catches up within an interval
guard_settled || t_fail guard-settles "changes stay unguarded: $(prop guard_unguarded_changes)"
nv=$(field nv-value) ep=$(field epoch) off=$(field nv-offset)
t_eq nv-counter-follows-guard "$nv" "$((ep + off))"
if [ "$(prop tpm_NV_Increment)" -lt "$(field store-counter)" ]; then
  t_pass guard-increments-fewer-than-changes
else
  t_fail guard-increments-fewer-than-changes "$(prop tpm_NV_Increment) increments for $(field store-counter) changes"
fi

# one live instance at a time; kill -9 releases it
"$MGRC" -s "$I" --register-self "$A" guest1_u:vm_r:vtpm_t --hold open uuid="$U1" >"$W/hold.out" 2>&1 &
HOLD=$!
_t_pids+=("$HOLD")
disown "$HOLD" # no job notice when it is killed below
for ((k = 0; k < 100; k++)); do grep -q '^held' "$W/hold.out" && break; sleep 0.1; done
if grep -q '^status=0' <<<"$(sed -n '/^type=0x8101/,$p' "$W/hold.out")"; then t_pass open-held; else t_fail open-held "$(cat "$W/hold.out")"; fi
ic --register-self "$A" guest1_u:vm_r:vtpm_t open uuid="$U1"
expect second-open-busy 5 "is open by another live instance (pid $HOLD)"
audit_has audit-busy "result=refused: vTPM $U1 is open by another live instance"
ic --register-self "$A" guest1_u:vm_r:vtpm_t commit uuid="$U1" version=5 "digest=$D2"
expect commit-by-non-opener 3 "is not open\|is open by pid $HOLD"
mc vtpm-show uuid="$U1"
t_eq vtpm-show-open 1 "$(field open)"
t_eq vtpm-show-open-pid "$HOLD" "$(field pid)"
mc vtpm-delete uuid="$U1"
expect vtpm-delete-while-open 5 "is open by pid $HOLD"
kill -KILL "$HOLD"
ok=0
for ((k = 0; k < 50; k++)); do
  ic --register-self "$A" guest1_u:vm_r:vtpm_t open uuid="$U1"
  [ "$RC" = 0 ] && { ok=1; break; }
  sleep 0.1
done
if [ $ok = 1 ]; then t_pass open-after-kill9; else t_fail open-after-kill9 "$(tr '\n' ' ' <<<"$OUT")"; fi
t_eq same-key-after-reopen "$KEY1" "$(field state-key)"
audit_has audit-instance-exit 'result=ok: the instance exited'

# --- hostile bytes: precise answers, and the manager keeps serving ---
hostile() { # NAME SOCKETVAR EXPECTED_RC PATTERN ARGS...
  local name=$1 sockfn=$2 want=$3 pat=$4
  shift 4
  "$sockfn" "$@"
  expect "$name" "$want" "$pat"
}
for s in mc ic; do
  hostile "$s-short" $s 1 'shorter than the header' --raw 0102
  hostile "$s-length-mismatch" $s 1 'header says 255 body bytes, message has 0' --raw 02020000000000ff
  hostile "$s-flags" $s 1 'header flags 0x1 are reserved' --raw 0202000100000000
  hostile "$s-truncated-field" $s 1 'field 0 is truncated' --raw 0202000000000003000100
  hostile "$s-unknown-tag" $s 1 'unknown tag 99' --raw 020200000000000400630000
  hostile "$s-bad-length" $s 1 'field tag 3 has length 1, needs 16' --raw 010100000000000500030001aa
  hostile "$s-unknown-type" $s 2 'message type 0x7777 is not a request' --raw 7777000000000000
  hostile "$s-response-type" $s 2 'not a request' --raw 8202000000000000
  hostile "$s-oversized" $s 1 'message over 65536 bytes refused' --raw-size 70000
  hostile "$s-empty-text" $s 1 'text field tag 8 is empty' --raw 021300000000000400080000
done
hostile admin-wrong-socket mc 2 'open is not served on the admin socket' open uuid="$U1"
hostile instance-wrong-socket ic 2 'group-create is not served on the instance socket' group-create name=x 'pattern=a:b:c' any-digest
hostile admin-extra-field mc 1 "host-status: takes no field 'uuid'" host-status uuid="$U1"
hostile admin-field-twice mc 1 "field 'name' is given twice" group-show name=a name=b
# descriptors passed along with a request are closed and the request answered
mc --pass-fd host-status
expect admin-passed-fd-ignored 0 'provisioned=1'
ic --pass-fd --raw 0101000000000000
expect instance-passed-fd-ignored 1 "open: the field 'uuid' is missing"
# (the manager and its listener close a finished connection a moment after its answer: count
# once the numbers hold still)
nfds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
settled_fds() {
  local a b k
  b=$(nfds "$1")
  for ((k = 0; k < 40; k++)); do
    sleep 0.05
    a=$b b=$(nfds "$1")
    [ "$a" = "$b" ] && break
  done
  echo "$b"
}
LSN=$(for p in $(cat /proc/"$MGRD_PID"/task/*/children 2>/dev/null); do
  tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q -- --listener-child && echo "$p"; done | head -n 1)
n_fds=$(settled_fds "$MGRD_PID") l_fds=$(settled_fds "${LSN:-0}")
for ((k = 0; k < 20; k++)); do ic --pass-fd --raw 0101000000000000; done
t_eq passed-fds-closed "$n_fds" "$(settled_fds "$MGRD_PID")"
if [ -n "$LSN" ]; then t_eq passed-fds-closed-listener "$l_fds" "$(settled_fds "$LSN")"; else t_fail passed-fds-closed-listener "no listener"; fi
# a request sent by another process than the one that connected (here: its child)
ic --register-self "$A" guest1_u:vm_r:vtpm_t --child-sends open uuid="$U1"
expect open-by-other-sender 3 'the message was sent by pid [0-9]*, but the connection belongs to pid'
mc host-status
expect still-serving-after-hostile 0 'provisioned=1'
if _alive "$MGRD_PID"; then t_pass manager-alive; else t_fail manager-alive "vtpmmgrd died"; fi

# --- vTPM delete ---
mc vtpm-delete uuid="$U3"
expect vtpm-delete 0 'state file is now unreadable'
mc vtpm-show uuid="$U3"
expect vtpm-deleted-gone 4 "no vTPM $U3"
audit_has audit-vtpm-delete 'action=vtpm-delete'

# --- a managed vtpmd: the launcher's way (register the label, then exec in that process) ---
if [ -x "$VTPMD" ] && "$VTPMD" --help 2>&1 | grep -q -- '--manager'; then
  mc group-create name=vms 'pattern=*:vm_r:vtpm_t' "bin-digest=$(sha256sum "$VTPMD" | cut -c1-64)"
  mc vtpm-create name=vms
  UV=$(field uuid)
  mkdir -p "$W/vst"
  bg_start "$MGRC" --register-self "$A" guest9_u:vm_r:vtpm_t --exec "$VTPMD" socket --tpm2 \
    --tpmstate dir="$W/vst" --ctrl type=unixio,path="$W/vctrl.sock" \
    --server type=unixio,path="$W/vdata.sock" --flags not-need-init,startup-clear \
    --manager "$I" --uuid "$UV" --log "file=$W/vtpmd.log,level=20" >"$W/vtpmd.out" 2>&1
  VPID=$BG_PID
  wait_for_path "$W/vctrl.sock" 100
  mc vtpm-show uuid="$UV"
  t_eq vtpmd-managed-open "1 $VPID" "$(field open) $(field pid)"
  v=$(field version)
  if [ "${v:-0}" -ge 1 ]; then t_pass "vtpmd-managed-commits($v)"; else t_fail vtpmd-managed-commits "version '$v'"; fi
  bg_kill "$VPID"
  for ((k = 0; k < 50; k++)); do
    mc vtpm-show uuid="$UV"
    [ "$(field open)" = 0 ] && break
    sleep 0.1
  done
  t_eq vtpmd-managed-released 0 "$(field open)"
else
  t_fail vtpmd-managed "$VTPMD is missing or has no --manager"
fi

# --- restart: everything is still there ---
mc vtpm-list
n_vtpms=$(grep -c '^record' <<<"$OUT")
mc group-list
n_groups=$(grep -c '^record' <<<"$OUT")
stop_mgrd
if start_mgrd; then t_pass mgrd-restart; else t_fail mgrd-restart "$(tail -n 3 "$LOG")"; fi
mc vtpm-list
t_eq restart-vtpms "$n_vtpms" "$(grep -c '^record' <<<"$OUT")"
mc group-list
t_eq restart-groups "$n_groups" "$(grep -c '^record' <<<"$OUT")"
ic --register-self "$A" guest1_u:vm_r:vtpm_t open uuid="$U1"
expect open-after-restart 0
t_eq same-key-after-restart "$KEY1" "$(field state-key)"
t_eq version-after-restart 1 "$(field version)"

# --- an older copy of the store is refused (exit 5) ---
stop_mgrd
mkdir -p "$W/old" "$W/cur"
cp "$DB"* "$W/old/"
start_mgrd
mc vtpm-create name=gany
expect mutation-for-rollback 0
stop_mgrd
cp "$DB"* "$W/cur/"
rm -f "$DB"*
cp "$W/old/"* "$W/"
start_mgrd_fg
t_eq rollback-exit 5 "$RC"
if grep -q "the store is older than the host TPM's counter: rollback" <<<"$ERR"; then t_pass rollback-message; else t_fail rollback-message "$ERR"; fi
rm -f "$DB"*
cp "$W/cur/"* "$W/"

# --- an edited store is refused (exit 4) ---
if need_tool sqlite3; then
  cp "$DB" "$W/cur.db"
  sqlite3 "$DB" "UPDATE vtpm_groups SET name = 'renamed' WHERE name = 'gother'" 2>>"$W/sqlite.log"
  start_mgrd_fg
  t_eq tampered-exit 4 "$RC"
  if grep -q "modified outside vtpmmgrd" <<<"$ERR"; then t_pass tampered-message; else t_fail tampered-message "$ERR"; fi
  rm -f "$DB"*
  cp "$W/cur/"* "$W/"
fi
# --daemon: the parent exits with the start-up result once the child is ready
rm -f "$A" "$I"
timeout "$TOOL_TIMEOUT" "$MGRD" "${MGRD_ARGS[@]}" --daemon --pid "file=$W/mgrd.pid"
RC=$?
t_eq daemon-start 0 "$RC"
DPID=$(cat "$W/mgrd.pid" 2>/dev/null)
if [ -n "$DPID" ] && _alive "$DPID" && [ -S "$A" ]; then t_pass daemon-ready; else t_fail daemon-ready "pid '$DPID'"; fi
mc host-reseal
expect host-reseal 0 'pcr-mask=0x10001'
audit_has audit-host-reseal 'action=host-put'
[ -n "$DPID" ] && kill "$DPID"
for ((k = 0; k < 50; k++)); do [ -n "$DPID" ] && _alive "$DPID" || break; sleep 0.1; done
if [ ! -e "$W/mgrd.pid" ] && [ ! -e "$A" ]; then t_pass daemon-cleanup; else t_fail daemon-cleanup "pid file or socket left"; fi
if start_mgrd; then t_pass mgrd-start-after-reseal; else t_fail mgrd-start-after-reseal "$(tail -n 3 "$LOG")"; fi

# --- the host TPM goes away: changes go on, the guard reports that it cannot advance ---
bg_kill "$SWTPM_PID"
mc vtpm-create name=gany
expect change-without-tpm 0
for ((k = 0; k < 40; k++)); do
  mc host-status
  [ "$(field state)" = guard-failing ] && break
  sleep 0.1
done
t_eq guard-failing-state guard-failing "$(field state)"
if [ -n "$(prop guard_last_error)" ]; then t_pass guard-failing-error; else t_fail guard-failing-error "no guard_last_error"; fi
mc group-create name=gblocked 'pattern=a:b:c' any-digest
expect writes-go-on-without-tpm 0
ic --register-self "$A" guest1_u:vm_r:vtpm_t open uuid="$U1"
expect open-needs-no-tpm 0 'state-key='
stop_mgrd
grep -q 'stopping without the clean record' "$LOG" && t_pass stop-without-tpm-says-so ||
  t_fail stop-without-tpm-says-so "$(tail -n 2 "$LOG")"
# swtpm was stopped without TPM2_Shutdown: a power loss for its hybrid counter
start_swtpm || { t_fail swtpm-restart "$(tail -n 1 "$W/swtpm.log")"; t_done; }
if start_mgrd; then t_pass start-after-tpm-loss; else t_fail start-after-tpm-loss "$(tail -n 3 "$LOG")"; fi
mc host-status
case $(prop guard_verdict) in
  crash-window | tpm-reset-window) t_pass start-after-tpm-loss-undecidable ;;
  *) t_fail start-after-tpm-loss-undecidable "verdict '$(prop guard_verdict)'" ;;
esac
audit_has start-after-tpm-loss-audited 'action=rollback-guard'
guard_settled
nv=$(field nv-value) ep=$(field epoch) off=$(field nv-offset)
t_eq guard-caught-up-value "$nv" "$((ep + off))"
mc group-create name=gafter 'pattern=a:b:c' any-digest
expect writes-after-catch-up 0
stop_mgrd

# --- a second host store: FORCE, NV index in use, --admin-group ---
DB_MAIN=$DB
DB=$W/second.db
rm -f "$A" "$I"
bg_start "$MGRD" --tcti "$TCTI" --store "$DB" --instance-socket "$I" --admin-socket "$A" \
  --nv-index 0x01000b02 --admin-group nogroup --log "file=$W/second.log,level=3"
MGRD_PID=$BG_PID
wait_for_path "$A" 100
t_eq admin-socket-group nogroup "$(stat -c %G "$A")"
OUT=$(setpriv --reuid 65534 --regid 65534 --clear-groups "$MGRC" -s "$A" host-status 2>&1)
RC=$?
expect admin-group-by-gid 0 'provisioned=0'
OUT=$(setpriv --reuid 65534 --regid 1 --groups 65534 "$MGRC" -s "$A" host-status 2>&1)
RC=$?
expect admin-group-by-supplementary-group 0 'provisioned=0'
OUT=$(setpriv --reuid 1 --regid 1 --groups 65534 "$MGRC" -s "$A" host-status 2>&1)
RC=$?
expect admin-group-member-uid-1 0
OUT=$(setpriv --reuid 65534 --regid 1 --groups 2 "$MGRC" -s "$A" host-status 2>&1)
RC=$?
if [ "$RC" -ne 0 ]; then t_pass admin-group-non-member-refused; else t_fail admin-group-non-member-refused "answered: $OUT"; fi
mc host-init pcr-mask=0x1 force
expect host-init-force-fresh 0
mc group-create name=gF 'pattern=guest1_u:vm_r:vtpm_t' any-digest
expect force-group 0
GF=$(field group-uuid)
mc host-init pcr-mask=0x10001 force
expect host-init-force 0 'a new root key replaced the old one'
audit_has audit-force 'FORCE: new root key, the old one is destroyed'
mc group-show name=gF
expect force-keeps-groups 0 "group-uuid=$GF"
mc vtpm-create name=gF
expect force-group-key-rewrapped 0
UF=$(field uuid)
ic --register-self "$A" guest1_u:vm_r:vtpm_t open uuid="$UF"
expect force-open 0 'state-key='
mc host-init pcr-mask=0x10001 force
expect host-init-force-with-vtpms 5 '1 vTPM exist: a new root key would make their state keys unreadable'
stop_mgrd
rm -f "$A" "$I"
bg_start "$MGRD" --tcti "$TCTI" --store "$DB" --instance-socket "$I" --admin-socket "$A" \
  --log "file=$W/second.log,level=3"
MGRD_PID=$BG_PID
wait_for_path "$A" 100
mc vtpm-show uuid="$UF"
expect force-restart-finds-vtpm 0
mc host-status
t_eq force-nv-index-recorded 0x1000b02 "$(field nv-index)"
stop_mgrd
# a third store on the same NV index: host-init refuses without FORCE
rm -f "$A" "$I"
bg_start "$MGRD" --tcti "$TCTI" --store "$W/third.db" --instance-socket "$I" --admin-socket "$A" \
  --nv-index 0x01000b02 --log "file=$W/third.log,level=3"
MGRD_PID=$BG_PID
wait_for_path "$A" 100
mc host-init pcr-mask=0x1
expect host-init-nv-index-in-use 7 'NV index 0x01000b02 is already defined on the host TPM'
stop_mgrd
DB=$DB_MAIN
if start_mgrd; then t_pass mgrd-start-main-store; else t_fail mgrd-start-main-store "$(tail -n 3 "$LOG")"; fi
stop_mgrd

# --- a host PCR change: the next start refuses, naming the PCR (exit 3) ---
timeout "$TOOL_TIMEOUT" "$CHECK" "$TCTI" extend 16 "$(printf '%064x' 3735928559)" >/dev/null 2>&1
start_mgrd_fg
t_eq pcr-change-exit 3 "$RC"
if grep -q "host PCR 16 differs from the state the root key was sealed to" <<<"$ERR"; then
  t_pass pcr-change-names-pcr
else
  t_fail pcr-change-names-pcr "$ERR"
fi

t_done
