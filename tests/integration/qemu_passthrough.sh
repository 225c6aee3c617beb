#!/usr/bin/env bash
# tests/integration/qemu_passthrough.sh — a real Linux guest in QEMU (TCG) boots on
# `vtpmd passthrough`, whose back end is a swtpm standing in for the host TPM, with the shipped
# default filter (etc/passthrough.filter).
#
#   QEMU -tpmdev emulator ──ctrl+data──> vtpmd passthrough ──swtpm TCTI (TCP)──> swtpm
#
# The back end is started as a host TPM is found: already started (--flags startup-clear), so the
# guest firmware's TPM2_Startup gets TPM_RC_INITIALIZE from it, which vtpmd answers as success. The
# guest (scripts/guest-image) boots with vtpm_digest=D, extends PCR 16 (SHA-256, given to guests by
# the default filter) with D and reads it back. Checked:
#   guest-tpm2             the guest's kernel has a TPM 2.0 (/dev/tpm0 answers)
#   guest-pcr16            PCR 16 = SHA-256(PCR 16 before || D), computed here from the back end's
#                          PCR 16 read directly (tpm2_pcrread, swtpm TCTI) before the boot
#   backend-pcr16          the back end read directly afterwards holds the guest's value
#   firmware-startup       the back end received the firmware's TPM2_Startup (its log) and vtpmd
#                          refused none of the guest's commands for being sent too early
#   guest-extend-0-denied  the guest's extend of PCR 0 is answered TPM_RC_COMMAND_CODE (0x143)
#   backend-unchanged      the back end's hierarchies and auth (properties-variable) and PCRs 0-15
#                          are as before the boot: what the firmware tried on the platform
#                          hierarchy and PCRs 0-7 was refused (listed in the output)
#   poweroff / vtpmd-exit  the guest powers off, QEMU exits 0, vtpmd gets CMD_SHUTDOWN and exits 0;
#                          the back end keeps serving
# Every wait is bounded (DEADLINE, about 60 s in all); only processes started here are stopped.
# Environment: GUEST_LOGDIR=DIR keeps all logs; GUEST_CACHE goes to scripts/guest-image.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

DEADLINE=60
BOOT_TIMEOUT=${BOOT_TIMEOUT:-40}
CMD_TIMEOUT=10
EXIT_TIMEOUT=10
TO=10
FILTER=$VTPM_TOP/etc/passthrough.filter

. "$VTPM_TOP/tests/guest/qemu_lib.sh"

need_tool qemu-system-x86_64 swtpm tpm2_pcrread tpm2_getcap sha256sum mkfifo gcc cpio ss || t_done
[ -x "$VTPMD" ] || { t_fail daemon "$VTPMD is not an executable (run make, or set VTPMD)"; t_done; }
T=$(t_tmpdir)
QEMU_EXTRA_LOGS="$T/backend.out $T/pt.log $T/pt.out"

s=$(_ms)
if ! img=$("$VTPM_TOP"/scripts/guest-image 2>"$T/image.log"); then
  t_fail guest-image "scripts/guest-image failed: $(tail -n 1 "$T/image.log")"
  _finish
fi
KERNEL=$(echo "$img" | sed -n 's/^kernel=//p')
INITRD=$(echo "$img" | sed -n 's/^initrd=//p')
_mark image "$s"

# --- the back end: a swtpm that logs every command it receives (level 20)
s=$(_ms)
for _ in 1 2 3; do
  bport=$(free_port) || break
  bg_start swtpm socket --tpm2 --flags not-need-init,startup-clear \
    --server type=tcp,port="$bport",bindaddr=127.0.0.1 \
    --ctrl type=tcp,port=$((bport + 1)),bindaddr=127.0.0.1 \
    --tpmstate dir="$T" --log file="$T/backend.log",level=20 >>"$T/backend.out" 2>&1
  BPID=$BG_PID
  _wait_tcp "$BPID" "$bport" && _wait_tcp "$BPID" $((bport + 1)) && break
  bg_kill "$BPID" KILL
  BPID=
done
[ -n "${BPID:-}" ] || { t_fail backend-start "swtpm did not start"; _finish; }
BTCTI=swtpm:host=127.0.0.1,port=$bport
backend_state() {
  TPM2TOOLS_TCTI=$BTCTI timeout $TO tpm2_getcap properties-variable 2>&1 | grep -v -i 'clock\|count\|safe'
  TPM2TOOLS_TCTI=$BTCTI timeout $TO tpm2_pcrread sha256:0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15 2>&1
}
pcr16() { # the back end's PCR 16 (SHA-256), read directly, as 64 lowercase hex digits
  TPM2TOOLS_TCTI=$BTCTI timeout $TO tpm2_pcrread sha256:16 2>/dev/null |
    sed -n 's/.*16 *: *0x\([0-9A-Fa-f]\{64\}\).*/\1/p' | tr 'A-F' 'a-f'
}
backend_state >"$T/before.txt"
before16=$(pcr16)
[ ${#before16} = 64 ] && t_pass backend-start ||
  { t_fail backend-start "cannot read PCR 16 of the back end: $(tail -n 2 "$T/before.txt")"; _finish; }
log_mark=$(wc -l <"$T/backend.log")

# --- vtpmd passthrough, unix control socket for QEMU (QEMU hands over the data channel)
CTRL=$T/pt.ctrl
bg_start "$VTPMD" passthrough --tcti "$BTCTI" --filter "$FILTER" --ctrl type=unixio,path="$CTRL" \
  --log file="$T/pt.log",level=2 >"$T/pt.out" 2>&1
VPID=$BG_PID
wait_for_path "$CTRL" 50 && t_pass vtpmd-start || { t_fail vtpmd-start "no control socket: $(tail -n 1 "$T/pt.out")"; _finish; }
_mark backend+vtpmd "$s"

# --- boot
DIGEST=$(head -c 32 /dev/urandom | sha256sum | cut -c1-64)
PCR16=$(expected_extend "$before16" "$DIGEST")
s=$(_ms)
start_qemu pt "$CTRL"
QPID=$QEMU_PID
qmp qmp-pt "$QPID" qmp_capabilities >/dev/null
if ! wait_line ser-pt 0 '^GUEST: ready' "$BOOT_TIMEOUT" "$QPID" >/dev/null; then
  if kill -0 "$QPID" 2>/dev/null; then
    t_fail guest-boot "no 'GUEST: ready' on the console within ${BOOT_TIMEOUT}s"
  else
    t_fail guest-boot "QEMU exited before the guest was ready: $(tail -n 1 "$T/qemu-pt.log")"
  fi
  _finish
fi
_mark boot "$s"
t_pass guest-boot
line=$(tr -d '\r' <"$T/ser-pt.log" | grep -a -m 1 '^GUEST: tpm=')
t_eq guest-tpm2 "GUEST: tpm=TPM2" "$line"
line=$(tr -d '\r' <"$T/ser-pt.log" | grep -a -m 1 -E '^GUEST: (extend16|pcr16)=ERROR' ||
  tr -d '\r' <"$T/ser-pt.log" | grep -a -m 1 '^GUEST: pcr16=')
t_eq guest-pcr16 "GUEST: pcr16=$PCR16" "$line"
t_eq backend-pcr16 "$PCR16" "$(pcr16)"

# What the firmware (SeaBIOS) sent: its TPM2_Startup reached the back end, and what vtpmd refused.
tail -n +$((log_mark + 1)) "$T/backend.log" |
  awk '/SWTPM_IO_Read:/ {getline; printf "%s%s%s%s\n", tolower($7), tolower($8), tolower($9), tolower($10)}' \
    >"$T/received.txt"
n_startup=$(grep -c '^00000144$' "$T/received.txt")
refused=$(sed -n 's/.*passthrough: refused command 0x[0-9a-f]* (\([A-Za-z_0-9]*\)).*/\1/p' "$T/pt.log" |
  sort | uniq -c | awk '{printf "%s%s x%s", (NR > 1 ? ", " : ""), $2, $1}')
echo "# back end received $(wc -l <"$T/received.txt") commands during the boot; vtpmd refused: ${refused:-none}"
if [ "$n_startup" -ge 1 ] && ! grep -q 'TPM_RC_FAILURE\|not running' "$T/pt.log"; then
  t_pass "firmware-startup ($n_startup TPM2_Startup forwarded)"
else
  t_fail firmware-startup "TPM2_Startup received $n_startup times by the back end; $(grep -m 1 'FAILURE' "$T/pt.log")"
fi

s=$(_ms)
line=$(guest_cmd ser-pt "$QPID" "extend 0 $DIGEST" '^GUEST: extend0=')
case $line in
*0x00000143*) t_pass guest-extend-0-denied ;;
*) t_fail guest-extend-0-denied "want TPM_RC_COMMAND_CODE (0x143), got: $line" ;;
esac
line=$(guest_cmd ser-pt "$QPID" "read 16" '^GUEST: pcr16=')
t_eq guest-read-16-again "GUEST: pcr16=$PCR16" "$line"
_mark cmds "$s"

# --- poweroff
s=$(_ms)
guest_cmd ser-pt "$QPID" poweroff '^GUEST: poweroff' >/dev/null
if ! wait_exit "$QPID" "$EXIT_TIMEOUT"; then
  t_fail poweroff "QEMU still running ${EXIT_TIMEOUT}s after the guest's poweroff"
elif [ "$EXIT_STATUS" != 0 ]; then
  t_fail poweroff "QEMU exited with status $EXIT_STATUS: $(tail -n 1 "$T/qemu-pt.log")"
else
  t_pass poweroff
  if ! wait_exit "$VPID" "$EXIT_TIMEOUT"; then
    t_fail vtpmd-exit "vtpmd still running ${EXIT_TIMEOUT}s after QEMU exited"
  else
    t_eq vtpmd-exit 0 "$EXIT_STATUS"
  fi
fi
_mark poweroff "$s"
backend_state >"$T/after.txt"
if diff "$T/before.txt" "$T/after.txt" >"$T/state.diff"; then
  t_pass backend-unchanged
else
  t_fail backend-unchanged "$(head -n 4 "$T/state.diff" | tr '\n' ' ')"
fi
_alive "$BPID" && [ "$(pcr16)" = "$PCR16" ] && t_pass backend-still-serving ||
  t_fail backend-still-serving "the back end is gone or lost PCR 16"
_finish
