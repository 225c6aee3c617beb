#!/usr/bin/env bash
# tests/integration/host_update.sh — a host update that changes a sealed PCR never loses a vTPM:
# the predicted reseal (vtpmctl host reseal --predict FILE).
#
# A swtpm is the host TPM; the root key is sealed to SHA-256 PCRs 0 and 16 (16 stands for the
# PCR a kernel update changes: tests extend it with tpm2_pcrextend, as a boot would measure the
# new kernel). A managed vtpmd (mgrc --register-self ... --exec vtpmd) writes a value into an NV
# index of its vTPM. Then:
#  - PCR value files (tpm2_pcrread's YAML) are parsed strictly: real tpm2_pcrread output (one bank
#    or all) is taken; a malformed file is refused (exit 1) with a message naming the line;
#    a prediction that leaves out a sealed PCR is refused by the manager (exit 3) naming it;
#  - host status says there is no predicted copy; --check-pcrs says the current values unseal
#    (current copy) and the predicted ones do not (exit 3, naming PCR 16);
#  - reseal --predict with PCR 16 = SHA-256(PCR16 || D) computed here: status shows the
#    predicted copy, --check-pcrs says "predicted" for the new values and "current" for the old;
#  - the manager stops, PCR 16 is extended with D (the update), the manager starts: it uses the
#    predicted copy, makes it the current one (audited, logged), and the vTPM opens with its old
#    state; another start (no change) uses the promoted copy;
#  - an unpredicted change (PCR 16 extended again): the manager refuses, exit 3, naming PCR 16;
#  - after a reboot of the host TPM (PCRs reset) and the same measurement, it starts again;
#  - a prediction for other PCRs (--pcrs 16): after the change the promoted copy's PCRs are the
#    host's sealed PCRs, and the vTPM still opens;
#  - a plain reseal keeps the predicted copy; --check-pcrs - reads standard input;
#  - a wrong prediction: the manager refuses, exit 3, naming PCR 16 for both copies.
# Usage: [BUILD=build] bash tests/integration/host_update.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

LABEL=upd_u:vm_r:vtpm_t
NV_INDEX=0x01500041
D=$(printf '%064x' 3054) # the "new kernel" measurement
E=$(printf '%064x' 4711) # an unpredicted one

need_tool swtpm tpm2_pcrread tpm2_pcrextend sha256sum xxd jq || t_done
for f in "$BUILD/vtpmd" "$BUILD/vtpmmgrd" "$BUILD/vtpmctl" "$BUILD/tests/tools/mgrc" "$BUILD/tests/tools/tpmc"; do
  [ -x "$f" ] || { t_fail build "$f is not an executable (run make first)"; t_done; }
done
W=$(t_tmpdir)
chmod 755 "$W"
mkdir -p "$W/bin" "$W/state" "$W/mgr"
cp "$BUILD/vtpmd" "$BUILD/vtpmmgrd" "$BUILD/vtpmctl" "$BUILD/tests/tools/mgrc" "$BUILD/tests/tools/tpmc" "$W/bin/" ||
  { t_fail copy "cannot copy the binaries"; t_done; }
VTPMD=$W/bin/vtpmd MGRD=$W/bin/vtpmmgrd CTL=$W/bin/vtpmctl MGRC=$W/bin/mgrc TPMC=$W/bin/tpmc
A=$W/mgr/admin.sock
I=$W/mgr/inst.sock
LOG=$W/mgr/vtpmmgrd.log
export VTPM_ADMIN_SOCKET=$A
export TSS2_LOG=all+none

lastline() { grep . "$@" 2>/dev/null | tail -n 1; }

# host_tpm_up: (re)start the host TPM on its state directory; a restart is a host reboot (PCRs
# back at their reset values).
host_tpm_up() {
  start_host_tpm "$W/host-tpm" "$W/swtpm.log" || { t_fail host-tpm "the host TPM did not start: $(lastline "$W/swtpm.log")"; t_done; }
  export TPM2TOOLS_TCTI=$HOST_TCTI
}
host_tpm_up

mgr_args() { echo --tcti "$HOST_TCTI" --store "$W/mgr/store.db" --instance-socket "$I" --admin-socket "$A" --nv-index 0x01000c41; }
# start_mgr: in the background; 0 once its sockets are there.
start_mgr() {
  rm -f "$A" "$I"
  # shellcheck disable=SC2046
  bg_start "$MGRD" $(mgr_args) --log "file=$LOG,level=3" </dev/null >>"$W/mgr/vtpmmgrd.out" 2>&1
  MPID=$BG_PID
  wait_for_path "$A" 100 && wait_for_path "$I" 10 && _alive "$MPID"
}
stop_mgr() { bg_kill "$MPID"; _reap "$MPID"; }
# start_mgr_fg: must refuse; RC and ERR.
start_mgr_fg() {
  rm -f "$A" "$I"
  # shellcheck disable=SC2046
  timeout 30 "$MGRD" $(mgr_args) >"$W/fg.out" 2>"$W/fg.err" </dev/null
  RC=$?
  ERR=$(cat "$W/fg.err")
}
# ctl ARGS...: vtpmctl; RC, OUT (stdout and stderr).
ctl() {
  OUT=$(timeout 30 "$CTL" "$@" 2>&1 </dev/null)
  RC=$?
  printf -- '--- vtpmctl %s (rc=%d)\n%s\n' "$*" "$RC" "$OUT" >>"$W/ctl.log"
}
# expect NAME RC [PATTERN]: the last ctl exited RC and its output has PATTERN.
expect() {
  local name=$1 want=$2 pat=${3:-}
  if [ "$RC" -ne "$want" ]; then
    t_fail "$name" "expected exit $want, got $RC: $(tr '\n' ' ' <<<"$OUT" | cut -c1-400)"
  elif [ -n "$pat" ] && ! grep -q -- "$pat" <<<"$OUT"; then
    t_fail "$name" "output lacks '$pat': $(tr '\n' ' ' <<<"$OUT" | cut -c1-400)"
  else
    t_pass "$name"
  fi
}
# jprop NAME: a field of the JSON host status in OUT
jprop() { jq -r --arg k "$1" '.[$k] // empty' <<<"$OUT" 2>/dev/null; }
start_vtpmd() {
  rm -f "$W/data.sock" "$W/ctrl.sock"
  bg_start "$MGRC" --register-self "$A" "$LABEL" --exec "$VTPMD" socket --tpm2 \
    --tpmstate dir="$W/state" --server type=unixio,path="$W/data.sock" \
    --ctrl type=unixio,path="$W/ctrl.sock" --flags not-need-init,startup-clear \
    --manager "$I" --uuid "$UUID" --log "file=$W/vtpmd.log,level=1" </dev/null >>"$W/vtpmd.out" 2>&1
  VPID=$BG_PID
}
stop_vtpmd() { kill -TERM "$VPID" 2>/dev/null; _reap "$VPID"; }
# nv_read: the vTPM's NV value (a running vtpmd) into VAL
nv_read() { VAL=$(timeout 15 "$TPMC" -w 5000 "$W/data.sock" nvread "$NV_INDEX" 2>>"$W/tpmc.err"); }
pcr16() { tpm2_pcrread sha256:16 | sed -n 's/^ *16 *: *0x//p' | tr 'A-F' 'a-f'; }

# --- provisioning, a vTPM with state ---
if start_mgr; then t_pass mgr-start; else t_fail mgr-start "$(lastline "$W/mgr/vtpmmgrd.out" "$LOG")"; t_done; fi
ctl host init --pcrs 0,16
expect host-init 0
ctl group create upd --label '*:vm_r:vtpm_t' --digest-of "$VTPMD"
expect group-create 0
ctl vtpm create --group upd
UUID=$OUT
[[ "$UUID" =~ ^[0-9a-f-]{36}$ ]] || { t_fail vtpm-create "$OUT"; t_done; }
start_vtpmd
timeout 15 "$TPMC" -w 5000 "$W/data.sock" nvdefine "$NV_INDEX" 8 >/dev/null 2>>"$W/tpmc.err" &&
  timeout 15 "$TPMC" "$W/data.sock" nvloop "$NV_INDEX" 42 0 >/dev/null 2>>"$W/tpmc.err" && nv_read
t_eq vtpm-written 42 "${VAL:-}"
stop_vtpmd

# --- PCR value files ---
tpm2_pcrread sha256:0,16 >"$W/now.yaml" || t_fail pcrread "tpm2_pcrread failed"
OLD16=$(pcr16)
NEW16=$(printf '%s%s' "$OLD16" "$D" | xxd -r -p | sha256sum | cut -d' ' -f1)
sed "s/^\( *16 *: *0x\).*/\1${NEW16^^}/" "$W/now.yaml" >"$W/next.yaml"
grep -q "${NEW16^^}" "$W/next.yaml" || t_fail next-yaml "the predicted file lacks the new value: $(cat "$W/next.yaml")"
tpm2_pcrread >"$W/all-banks.yaml" 2>/dev/null
ctl host status --check-pcrs "$W/all-banks.yaml"
expect parse-all-banks 0 'check_pcrs: *current'

bad() { # bad NAME CONTENT PATTERN: a malformed file is refused (exit 1), naming the line
  printf '%b' "$2" >"$W/bad.yaml"
  ctl host reseal --predict "$W/bad.yaml"
  expect "$1" 1 "$3"
}
bad parse-empty '' 'the file is empty'
bad parse-garbage 'hello world\n' "line 1: 'hello world' is neither a bank"
bad parse-no-bank '  0 : 0x00\n' 'line 1: a PCR value before any bank line'
bad parse-short-value "sha256:\n  0 : 0x$(printf '%064d' 0)\n  16: 0x1234\n" 'line 3: PCR 16: 4 hex digits, a sha256 value has 64'
bad parse-not-hex "sha256:\n  16: 0x$(printf '%063d' 0)g\n" "line 2: PCR 16: 'g' is not a hex digit"
bad parse-pcr-24 "sha256:\n  24: 0x$(printf '%064d' 0)\n" 'line 2: PCR 24 does not exist'
bad parse-twice "sha256:\n  16: 0x$(printf '%064d' 0)\n  16: 0x$(printf '%064d' 0)\n" 'line 3: PCR 16 appears twice in bank sha256'
bad parse-unknown-bank "md5:\n  0 : 0x00\n" "line 1: unknown PCR bank 'md5'"
bad parse-no-sha256 "sha1:\n  0 : 0x$(printf '%040d' 0)\n" 'no sha256 bank'
bad parse-not-indented "sha256:\n0 : 0x$(printf '%064d' 0)\n" 'line 2: a PCR value not indented under its bank'
bad parse-crlf "sha256:\r\n  0 : 0x$(printf '%064d' 0)\r\n" 'line 1: carriage return'
bad parse-no-0x "sha256:\n  0 : $(printf '%064d' 0)\n" "line 2: PCR 0: expected ' 0x'"
ctl host reseal --predict "$W/missing.yaml"
expect parse-missing-file 4 'cannot open'
printf 'sha256:\n  16: 0x%s\n' "$NEW16" >"$W/only16.yaml"
ctl host reseal --predict "$W/only16.yaml"
expect predict-needs-every-sealed-pcr 3 'no value for PCR 0 (the copy is sealed to PCRs 0, 16)'

# --- before the prediction ---
ctl --json host status
t_eq status-no-predicted-copy no "$(jprop predicted_copy)"
ctl host status --check-pcrs "$W/now.yaml"
expect check-now-current 0 'check_pcrs: *current'
ctl host status --check-pcrs "$W/next.yaml"
expect check-next-refused 3 'would not unseal the root key: the current copy (PCRs 0, 16): PCR 16 differs; there is no predicted copy'

# --- the prediction ---
ctl host reseal --predict "$W/next.yaml"
expect reseal-predict 0 'predicted values of SHA-256 PCRs 0,16'
ctl --json host status
t_eq status-predicted-copy yes "$(jprop predicted_copy)"
t_eq status-predicted-pcrs "0, 16" "$(jprop predicted_pcrs)"
ctl host status --check-pcrs "$W/next.yaml"
expect check-next-predicted 0 'check_pcrs: *predicted'
ctl --json host status --check-pcrs "$W/now.yaml"
t_eq check-now-still-current current "$(jprop check_pcrs)"
ctl audit --count 5
expect audit-predict 0 'predicted copy sealed to PCRs 0, 16'
ctl host reseal
expect plain-reseal 0
ctl --json host status
t_eq plain-reseal-keeps-predicted-copy yes "$(jprop predicted_copy)"
OUT=$(timeout 30 "$CTL" host status --check-pcrs - <"$W/next.yaml" 2>&1)
RC=$?
expect check-from-stdin 0 'check_pcrs: *predicted'

# --- the update: PCR 16 measured as predicted ---
stop_mgr
tpm2_pcrextend "16:sha256=$D" || t_fail pcrextend "tpm2_pcrextend failed"
t_eq pcr16-as-predicted "$NEW16" "$(pcr16)"
if start_mgr; then t_pass update-mgr-starts; else t_fail update-mgr-starts "$(lastline "$W/mgr/vtpmmgrd.out" "$LOG")"; t_done; fi
if grep -q 'the predicted copy matches and is used' "$LOG" &&
  grep -q 'is now the current copy; the previous copy is removed' "$LOG"; then
  t_pass update-logged
else
  t_fail update-logged "$(tail -n 5 "$LOG")"
fi
ctl --json host status
t_eq update-predicted-copy-gone no "$(jprop predicted_copy)"
ctl host status --check-pcrs "$W/next.yaml"
expect update-next-is-current 0 'check_pcrs: *current'
ctl audit --count 5
expect update-audited 0 'opened the root key at start: it is now the current copy'
start_vtpmd
nv_read
t_eq update-vtpm-old-state 42 "${VAL:-}"
timeout 15 "$TPMC" "$W/data.sock" nvloop "$NV_INDEX" 1 42 >/dev/null 2>>"$W/tpmc.err" && nv_read
t_eq update-vtpm-writes 43 "${VAL:-}"
stop_vtpmd
stop_mgr
if start_mgr; then t_pass update-second-start; else t_fail update-second-start "$(lastline "$W/mgr/vtpmmgrd.out" "$LOG")"; fi
stop_mgr

# --- an unpredicted change: refused, naming the PCR ---
tpm2_pcrextend "16:sha256=$E"
start_mgr_fg
t_eq unpredicted-exit 3 "$RC"
if grep -q 'host PCR 16 differs from the state the root key was sealed to' <<<"$ERR"; then
  t_pass unpredicted-names-pcr
else
  t_fail unpredicted-names-pcr "$ERR"
fi

# --- a reboot with the predicted measurement: starts ---
bg_kill "$HOST_PID" KILL
_reap "$HOST_PID"
host_tpm_up
tpm2_pcrextend "16:sha256=$D"
if start_mgr; then t_pass reboot-mgr-starts; else t_fail reboot-mgr-starts "$(lastline "$W/mgr/vtpmmgrd.out" "$LOG")"; t_done; fi

# --- a prediction for other PCRs (--pcrs 16): the promoted copy brings its own PCR mask ---
NEXT2=$(printf '%s%s' "$(pcr16)" "$E" | xxd -r -p | sha256sum | cut -d' ' -f1)
printf 'sha256:\n  16: 0x%s\n' "$NEXT2" >"$W/next2.yaml"
ctl host reseal --pcrs 16 --predict "$W/next2.yaml"
expect reseal-predict-other-pcrs 0 'predicted values of SHA-256 PCRs 16;'
stop_mgr
tpm2_pcrextend "16:sha256=$E"
if start_mgr; then t_pass mask-change-mgr-starts; else t_fail mask-change-mgr-starts "$(lastline "$W/mgr/vtpmmgrd.out" "$LOG")"; t_done; fi
ctl --json host status
t_eq mask-change-pcrs '[16]' "$(jq -c .pcrs <<<"$OUT" 2>/dev/null)"
t_eq mask-change-predicted-gone no "$(jprop predicted_copy)"
start_vtpmd
nv_read
t_eq mask-change-vtpm-state 43 "${VAL:-}"
stop_vtpmd

# --- a wrong prediction: refused ---
printf 'sha256:\n  16: 0x%064x\n' 1 >"$W/wrong.yaml"
ctl host reseal --predict "$W/wrong.yaml"
expect reseal-wrong-prediction 0
stop_mgr
tpm2_pcrextend "16:sha256=$E"
start_mgr_fg
t_eq wrong-prediction-exit 3 "$RC"
if grep -q 'host PCR 16 differs from the state the root key was sealed to.*the predicted copy does not match either: PCR 16 differs from its predicted value' <<<"$ERR"; then
  t_pass wrong-prediction-names-pcr
else
  t_fail wrong-prediction-names-pcr "$ERR"
fi

t_done
