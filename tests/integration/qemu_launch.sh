#!/usr/bin/env bash
# tests/integration/qemu_launch.sh — `vtpmctl launch`: a real QEMU guest (SeaBIOS, direct kernel
# boot) started with its vTPM by the launcher, its kernel, initrd and command line measured by
# vtpmd (issue "Measured launch, launch pairing ...").
#
# A swtpm is the host TPM, vtpmmgrd the manager (one group, one vTPM). vtpmctl launch starts a
# managed vtpmd paired with the QEMU it runs (scripts/guest-image's kernel and initramfs). Checks:
#   launch-boot             the guest boots and sees a TPM 2.0
#   pcr4, pcr5              the guest's PCR 4 and 5 (SHA-256) equal the replay of vtpmd's event log
#                           followed by the firmware's (read in the guest from securityfs)
#   vtpmd-log-digests       vtpmd's log carries SHA-256 of the kernel, of the initrd and of the
#                           command line, computed here from the files
#   attach-refused-*        swtpm_ioctl, and a second connection made by another process, on the
#                           paired vtpmd's control socket are refused and logged
#   second-launch-refused   a second `vtpmctl launch` of the same vTPM fails before its QEMU runs
#   reboot-*                after a guest reboot (reset: CMD_INIT, the firmware's Startup again)
#                           PCR 4 and 5 are the same again
#   seal, unseal-*          (SeaBIOS) the guest seals a secret to PCR 4 (an NV index readable only
#                           through TPM2_PolicyPCR), unseals it in the same boot and after the reboot
#   other-kernel-*          the same vTPM launched with another kernel (4 KiB appended): the guest
#                           boots, and its unseal is refused (TPM_RC_POLICY_FAIL)
#   poweroff                the guest powers off: QEMU exits 0, vtpmctl launch exits 0, vtpmd
#                           has stopped and saved the state (the manager's recorded version grew)
# Every wait is bounded; the whole test gives up after DEADLINE seconds.
# Usage: [BUILD=build] bash tests/integration/qemu_launch.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

DEADLINE=240
BOOT_TIMEOUT=${BOOT_TIMEOUT:-60}
CMD_TIMEOUT=15
EXIT_TIMEOUT=20
LABEL=guest_u:vm_r:vtpm_t

. "$VTPM_TOP/tests/guest/qemu_lib.sh"

need_tool qemu-system-x86_64 swtpm swtpm_ioctl sha256sum mkfifo gcc cpio jq python3 xxd || t_done
MGRD=$BUILD/vtpmmgrd CTL=$BUILD/vtpmctl
for f in "$VTPMD" "$MGRD" "$CTL"; do
  [ -x "$f" ] || { t_fail build "$f is not an executable (run make first)"; t_done; }
done
REPLAY=$VTPM_TOP/tests/tools/tcg_replay.py
OVMF_CODE=${OVMF_CODE:-/usr/share/OVMF/OVMF_CODE_4M.fd}
OVMF_VARS=${OVMF_VARS:-/usr/share/OVMF/OVMF_VARS_4M.fd}

T=$(t_tmpdir)
chmod 755 "$T"
A=$T/admin.sock I=$T/inst.sock STATE=$T/state
export VTPM_ADMIN_SOCKET=$A
QEMU_EXTRA_LOGS="$T/mgr.log $T/mgr.out $T/launch-*.err $T/launch2-*.err"

lastline() { cat "$@" 2>/dev/null | tail -n 1; }
ctl() {
  OUT=$(timeout 30 "$CTL" "$@" 2>&1 </dev/null)
  RC=$?
}
guest_says() { t_eq "$1" "$4" "$(guest_cmd "ser-$F" "$QEMU_PID" "$2" "$3")"; }
pcr() { guest_cmd "ser-$F" "$QEMU_PID" "read $1" "^GUEST: pcr$1=" | sed "s/^GUEST: pcr$1=//"; }

# --- usage errors: refused before anything starts (exit 1) ------------------------------------
usage_refused() { # NAME NEEDLE ARGS...
  local name=$1 needle=$2 out rc
  shift 2
  out=$(timeout 10 "$CTL" launch "$@" 2>&1 </dev/null)
  rc=$?
  if [ $rc -eq 1 ] && grep -q -- "$needle" <<<"$out"; then t_pass "usage-$name"; else
    t_fail "usage-$name" "rc=$rc: $out"
  fi
}
U=00000000-0000-4000-8000-000000000001
usage_refused no-qemu "QEMU command after '--'" "$U" --label "$LABEL" --state-dir "$T"
usage_refused own-tpm "-tpmdev is not allowed" "$U" --label "$LABEL" --state-dir "$T" -- qemu -tpmdev x
usage_refused kernel-twice "-kernel is not allowed" "$U" --label "$LABEL" --state-dir "$T" \
  --kernel /k -- qemu -kernel /k
usage_refused initrd-alone "need --kernel" "$U" --label "$LABEL" --state-dir "$T" --initrd /i -- qemu
usage_refused model "'tis' or 'crb'" "$U" --label "$LABEL" --state-dir "$T" --tpm-model spi -- qemu

# --- the guest image ---------------------------------------------------------------------------
s=$(_ms)
if ! img=$("$VTPM_TOP"/scripts/guest-image 2>"$T/image.log"); then
  t_fail guest-image "scripts/guest-image failed: $(tail -n 1 "$T/image.log")"
  _finish
fi
KERNEL=$(echo "$img" | sed -n 's/^kernel=//p')
INITRD=$(echo "$img" | sed -n 's/^initrd=//p')
DIGEST=$(head -c 32 /dev/urandom | sha256sum | cut -c1-64)
APPEND="console=ttyS0 quiet panic=-1 vtpm_digest=$DIGEST"
_mark image "$s"

# --- host TPM, manager, group, vTPM ------------------------------------------------------------
s=$(_ms)
start_host_tpm "$T/host-tpm" "$T/swtpm.log" || { t_fail host-tpm "swtpm did not start"; _finish; }
bg_start "$MGRD" --tcti "$HOST_TCTI" --store "$T/store.db" --instance-socket "$I" \
  --admin-socket "$A" --nv-index 0x01000e01 --log "file=$T/mgr.log,level=2" \
  </dev/null >>"$T/mgr.out" 2>&1
wait_for_path "$A" 100 && wait_for_path "$I" 10 || { t_fail mgr-start "$(lastline "$T/mgr.out")"; _finish; }
ctl host init --pcrs 0 || { t_fail host-init "$OUT"; _finish; }
ctl group create g --label '*:vm_r:vtpm_t' --any-binary || { t_fail group-create "$OUT"; _finish; }
ctl vtpm create --group g
UUID=$OUT
[[ "$UUID" =~ ^[0-9a-f-]{36}$ ]] || { t_fail vtpm-create "$OUT"; _finish; }
mkdir -p "$STATE"
_mark setup "$s"

# Each check is made under SeaBIOS and under OVMF (check names seabios/..., ovmf/...).
# launch_guest F: the launch checks, with firmware F (seabios or ovmf); check names F/...
launch_guest() {
local F=$1 i VPID QEMU_PID= LPID CTRL p4 p5 rc n n2 v0 v1 from k r c log VLOG_N0
FW_ARGS=()
if [ "$F" = ovmf ]; then
  cp "$OVMF_VARS" "$T/ovmf-vars.fd"
  FW_ARGS=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_CODE"
    -drive "if=pflash,format=raw,unit=1,file=$T/ovmf-vars.fd")
fi
# --- launch --------------------------------------------------------------------------------------
s=$(_ms)
open_pipe ser-$F
open_pipe qmp-$F
TMPDIR=$T bg_start "$CTL" launch "$UUID" --label "$LABEL" --state-dir "$STATE" \
  --manager-socket "$I" --vtpmd "$VTPMD" --kernel "$KERNEL" --initrd "$INITRD" \
  --append "$APPEND" --eventlog "$T/ev-$F.bin" --log "$T/vtpm-$F.log" -- \
  qemu-system-x86_64 -machine q35 -accel tcg -smp 1 -m 256 -nodefaults -no-user-config \
  -display none "${FW_ARGS[@]}" -chardev "pipe,id=ser0,path=$T/ser-$F" -serial chardev:ser0 \
  -chardev "pipe,id=qmp0,path=$T/qmp-$F" -mon chardev=qmp0,mode=control \
  </dev/null >"$T/launch-$F.out" 2>"$T/launch-$F.err"
LPID=$BG_PID
# QEMU is the launcher's child; its pid is vtpmd's --pair-pid
for ((i = 0; i < 100; i++)); do
  VPID=$(pgrep -f -- "--uuid $UUID" | head -n 1)
  [ -n "$VPID" ] && QEMU_PID=$(tr '\0' '\n' <"/proc/$VPID/cmdline" | grep -A1 -x -- --pair-pid | tail -n 1)
  [ -n "${QEMU_PID:-}" ] && [ -d "/proc/$QEMU_PID" ] && break
  sleep 0.1
done
if [ -z "${QEMU_PID:-}" ]; then
  t_fail "$F/launch-start" "no paired vtpmd appeared: $(lastline "$T/vtpm-$F.log")"
  return
fi
qmp qmp-$F "$QEMU_PID" qmp_capabilities >/dev/null
if ! wait_line ser-$F 0 '^GUEST: ready' "$BOOT_TIMEOUT" "$QEMU_PID" >/dev/null; then
  t_fail "$F/launch-boot" "no 'GUEST: ready' within ${BOOT_TIMEOUT}s: $(lastline "$T/vtpm-$F.log")"
  return
fi
t_eq "$F/launch-boot" "GUEST: tpm=TPM2" "$(tr -d '\r' <"$T/ser-$F.log" | grep -a -m 1 '^GUEST: tpm=')"
_mark "$F-boot" "$s"

# --- PCR 4 and 5 against the two event logs --------------------------------------------------------
check_pcrs() { # check_pcrs PREFIX
  local fw p4 p5 want
  fw=$(guest_cmd ser-$F "$QEMU_PID" eventlog '^GUEST: eventlog=' | sed 's/^GUEST: eventlog=//')
  if [[ ! $fw =~ ^[0-9a-f]+$ ]]; then
    t_fail "$1pcr4" "no firmware event log from the guest: $fw"
    return
  fi
  xxd -r -p <<<"$fw" >"$T/fw-$F.bin"
  p4=$(pcr 4) p5=$(pcr 5)
  if ! want=$(python3 "$REPLAY" --bank sha256 --pcrs 4,5 "$T/ev-$F.bin" "$T/fw-$F.bin" 2>&1); then
    t_fail "$1pcr4" "replay: $want"
    return
  fi
  echo "# ${1}PCR 4 $p4, PCR 5 $p5 (firmware log $(stat -c %s "$T/fw-$F.bin") bytes)"
  t_eq "${1}pcr4" "$(sed -n 's/^4 //p' <<<"$want")" "$p4"
  t_eq "${1}pcr5" "$(sed -n 's/^5 //p' <<<"$want")" "$p5"
}
check_pcrs "$F/"
k=$(sha256sum "$KERNEL" | cut -c1-64) r=$(sha256sum "$INITRD" | cut -c1-64)
c=$(printf '%s' "$APPEND" | sha256sum | cut -c1-64)
log=$(xxd -p "$T/ev-$F.bin" | tr -d '\n')
if [[ $log == *"$k"* && $log == *"$r"* && $log == *"$c"* ]]; then
  t_pass "$F/vtpmd-log-digests"
else
  t_fail "$F/vtpmd-log-digests" "vtpmd's event log lacks SHA-256 of the kernel, initrd or command line"
fi

# --- attach refused -------------------------------------------------------------------------------
CTRL=$(tr '\0' '\n' <"/proc/$VPID/cmdline" | sed -n 's/^type=unixio,path=\([^,]*\).*/\1/p' | head -n 1)
VLOG_N0=$(grep -c 'refused a control connection' "$T/vtpm-$F.log")
timeout 10 swtpm_ioctl --unix "$CTRL" -g >"$T/ioctl.out" 2>&1
rc=$?
n=$(grep -c 'refused a control connection' "$T/vtpm-$F.log")
if [ $rc -ne 0 ] && [ "$n" -gt "$VLOG_N0" ]; then
  t_pass "$F/attach-refused-swtpm_ioctl (rc=$rc)"
else
  t_fail "$F/attach-refused-swtpm_ioctl" "rc=$rc, refusals logged $VLOG_N0 -> $n: $(cat "$T/ioctl.out")"
fi
python3 - "$CTRL" <<'PY' >"$T/attach.out" 2>&1
import socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(5)
try:
    s.sendall(struct.pack(">I", 1))  # CMD_GET_CAPABILITY
    print("answered" if s.recv(16) else "closed")
except (BrokenPipeError, ConnectionResetError):
    print("closed")
PY
n2=$(grep -c 'refused a control connection' "$T/vtpm-$F.log")
t_eq "$F/attach-refused-other-process" "closed $((n + 1))" "$(tail -n 1 "$T/attach.out") $n2"
guest_says "$F/attach-guest-unaffected" "read 16" '^GUEST: pcr16=' \
  "GUEST: pcr16=$(expected_extend "$(printf '%064d' 0)" "$DIGEST")"

# --- a second launch of the same vTPM -------------------------------------------------------------
mkdir -p "$T/state2-$F"
cp -a "$STATE/." "$T/state2/"
TMPDIR=$T timeout 30 "$CTL" launch "$UUID" --label "$LABEL" --state-dir "$T/state2-$F" \
  --manager-socket "$I" --vtpmd "$VTPMD" -- /bin/sh -c 'echo QEMU-RAN >"$0"' "$T/second-ran-$F" \
  </dev/null >/dev/null 2>"$T/launch2-$F.err"
rc=$?
if [ $rc -ne 0 ] && [ ! -e "$T/second-ran-$F" ]; then
  t_pass "$F/second-launch-refused (rc=$rc: $(grep -v '^$' "$T/launch2-$F.err" | tail -n 1 | cut -c1-100))"
else
  t_fail "$F/second-launch-refused" "rc=$rc, its QEMU ran: $([ -e "$T/second-ran-$F" ] && echo yes || echo no)"
fi

# --- the guest seals a secret to PCR 4 (SeaBIOS run) ---------------------------------------------
if [ "$F" = seabios ]; then
  guest_says "$F/seal" "seal $SEAL_INDEX $SECRET" '^GUEST: seal=' "GUEST: seal=ok"
  guest_says "$F/unseal-same-boot" "unseal $SEAL_INDEX" '^GUEST: unseal=' "GUEST: unseal=$SECRET"
fi

# --- reboot: measured again, the same values ------------------------------------------------------
s=$(_ms)
p4=$(pcr 4) p5=$(pcr 5)
[[ $p4 =~ ^[0-9a-f]{64}$ && $p5 =~ ^[0-9a-f]{64}$ ]] || t_fail "$F/pcrs-read" "PCR 4 '$p4', PCR 5 '$p5'"
from=$(lines ser-$F)
send ser-$F reboot
if wait_line ser-$F "$from" '^GUEST: ready' "$BOOT_TIMEOUT" "$QEMU_PID" >/dev/null; then
  t_eq "$F/reboot-pcr4-same" "$p4" "$(pcr 4)"
  t_eq "$F/reboot-pcr5-same" "$p5" "$(pcr 5)"
  check_pcrs "$F/reboot-"
  [ "$F" = seabios ] && guest_says "$F/unseal-after-reboot" "unseal $SEAL_INDEX" '^GUEST: unseal=' \
    "GUEST: unseal=$SECRET"
  t_eq "$F/reboot-measured-twice" 2 "$(grep -c 'measured boot: kernel into PCR 4' "$T/vtpm-$F.log")"
else
  t_fail "$F/reboot" "the guest did not come back within ${BOOT_TIMEOUT}s"
fi
_mark "$F-reboot" "$s"

# --- power off: QEMU, vtpmctl launch and vtpmd end; the state was saved ----------------------------
ctl --json vtpm show "$UUID"
v0=$(jq -r '.version // 0' <<<"$OUT" 2>/dev/null)
send ser-$F poweroff
if wait_exit "$LPID" "$EXIT_TIMEOUT"; then
  t_eq "$F/poweroff-launch-exit" 0 "$EXIT_STATUS"
else
  t_fail "$F/poweroff-launch-exit" "vtpmctl launch still runs ${EXIT_TIMEOUT}s after poweroff"
fi
if [ -d "/proc/$VPID" ]; then
  t_fail "$F/poweroff-vtpmd-stopped" "vtpmd (pid $VPID) still runs"
else
  t_pass "$F/poweroff-vtpmd-stopped"
fi
ctl --json vtpm show "$UUID"
v1=$(jq -r '.version // 0' <<<"$OUT" 2>/dev/null)
[ "${v1:-0}" -gt "${v0:-0}" ] 2>/dev/null && t_pass "$F/poweroff-state-saved (version $v0 -> $v1)" ||
  t_fail "$F/poweroff-state-saved" "the manager's version did not grow: $v0 -> $v1"
}

SEAL_INDEX=0x01500100
SECRET=$(head -c 32 /dev/urandom | sha256sum | cut -c1-64)
launch_guest seabios
# the same vTPM, booted with another kernel (the same bytes and 4 KiB more): PCR 4 differs and
# the secret sealed to it stays sealed
cp "$KERNEL" "$T/other-kernel"
head -c 4096 /dev/urandom >>"$T/other-kernel"
other_kernel() {
  local F=other line
  open_pipe ser-$F
  TMPDIR=$T bg_start "$CTL" launch "$UUID" --label "$LABEL" --state-dir "$STATE" \
    --manager-socket "$I" --vtpmd "$VTPMD" --kernel "$T/other-kernel" --initrd "$INITRD" \
    --append "$APPEND" --log "$T/vtpm-$F.log" -- \
    qemu-system-x86_64 -machine q35 -accel tcg -smp 1 -m 256 -nodefaults -no-user-config \
    -display none -chardev "pipe,id=ser0,path=$T/ser-$F" -serial chardev:ser0 \
    </dev/null >"$T/launch-$F.out" 2>"$T/launch-$F.err"
  LPID=$BG_PID QEMU_PID=$BG_PID # waits below end when vtpmctl launch (and so QEMU) ends
  if ! wait_line ser-$F 0 '^GUEST: ready' "$BOOT_TIMEOUT" "$LPID" >/dev/null; then
    t_fail other-kernel-boot "no 'GUEST: ready' within ${BOOT_TIMEOUT}s"
    return
  fi
  line=$(guest_cmd ser-$F "$LPID" "unseal $SEAL_INDEX" '^GUEST: unseal=')
  if [[ $line == "GUEST: unseal=ERROR "* ]]; then
    t_pass "other-kernel-unseal-refused (${line:15:90})"
  else
    t_fail other-kernel-unseal-refused "got '$line'"
  fi
  send ser-$F poweroff
  wait_exit "$LPID" "$EXIT_TIMEOUT" || t_fail other-kernel-poweroff "vtpmctl launch still runs"
}
other_kernel
if [ -r "$OVMF_CODE" ] && [ -r "$OVMF_VARS" ]; then
  launch_guest ovmf
elif [ "${CI:-}" = true ]; then
  t_fail ovmf "$OVMF_CODE is missing (package ovmf; scripts/deps installs it)"
else
  t_skip ovmf "$OVMF_CODE is missing on this machine (package ovmf)"
fi
_finish
