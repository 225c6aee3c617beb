#!/usr/bin/env bash
# tests/integration/qemu_guest.sh — a real Linux guest in QEMU (TCG, no KVM) uses "$VTPMD" as its TPM,
# then is live-migrated to a second QEMU with a second "$VTPMD".
#
# The guest (scripts/guest-image: Debian's kernel + busybox initramfs + tests/guest/tpmcheck.c) boots
# with `vtpm_digest=D` on its command line, checks that a TPM 2.0 answers, extends PCR 16 (SHA-256)
# with D and prints the PCR, then takes commands on its serial console. The test checks
#   guest-tpm2            the guest sees a TPM 2.0
#   guest-pcr16           PCR 16 = SHA-256(32 zero bytes || D), computed here
#   migrate               QEMU migrates the running guest (and the TPM state blobs) to a QEMU started
#                         with -incoming and a fresh "$VTPMD" state dir; query-migrate says completed
#   migrated-pcr16        the destination guest reads the same PCR 16
#   migrated-extend       the destination TPM keeps working: extend again, value as computed
#   src-vtpm-exit         the source QEMU quits; its daemon gets CMD_SHUTDOWN, exits 0, removes socket
#   dst-poweroff          the guest powers off; QEMU exits 0
#   dst-vtpm-exit         the destination daemon exits 0 and removes its control socket
# Serial consoles and QMP monitors are QEMU `pipe` chardevs (FIFOs in the test's tmpdir), so the
# test needs nothing but bash and coreutils; every wait is bounded. The daemons are started exactly
# like swtpm: `$VTPMD socket --tpm2 --tpmstate dir=D --ctrl type=unixio,path=S --log file=L`.
#
# Usage: [VTPMD=path] [BUILD=build] bash tests/integration/qemu_guest.sh
# Environment: VTPM_LOG_LEVEL=N adds ",level=N" to --log (swtpm: 20 logs every control and TPM
# command); GUEST_LOGDIR=DIR copies all logs (serial, QMP, QEMU, daemons) there at the end;
# GUEST_CACHE is passed on to scripts/guest-image; VTPMD_SRC / VTPMD_DST (default $VTPMD) pick the
# daemon of each side, e.g. VTPMD_SRC=/usr/bin/swtpm to migrate a guest from swtpm to vtpmd.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

DEADLINE=110       # seconds: the whole test gives up after this (every wait is also bounded)
BOOT_TIMEOUT=${BOOT_TIMEOUT:-60}   # seconds until the guest prints "GUEST: ready"
MIGRATE_TIMEOUT=30 # seconds until query-migrate reports completed
CMD_TIMEOUT=15     # seconds for the guest to answer a console command
EXIT_TIMEOUT=15    # seconds for QEMU / a daemon to exit

. "$VTPM_TOP/tests/guest/qemu_lib.sh" # t0, _ms, _mark, console/QMP helpers, start_qemu

need_tool qemu-system-x86_64 sha256sum mkfifo gcc cpio || t_done
VTPMD_SRC=${VTPMD_SRC:-$VTPMD} VTPMD_DST=${VTPMD_DST:-$VTPMD}
for d in "$VTPMD_SRC" "$VTPMD_DST"; do
  if [ ! -x "$d" ]; then
    t_fail daemon "$d is not an executable (run make, or set VTPMD)"
    t_done
  fi
done

T=$(t_tmpdir)

# start_vtpm NAME BINARY: a daemon on a fresh state dir; sets VTPM_PID, CTRL.
start_vtpm() {
  local log="file=$T/vtpm-$1.log"
  [ -n "${VTPM_LOG_LEVEL:-}" ] && log+=",level=$VTPM_LOG_LEVEL"
  mkdir -p "$T/state-$1"
  CTRL=$T/ctrl-$1.sock
  bg_start "$2" socket --tpm2 --tpmstate "dir=$T/state-$1" --ctrl "type=unixio,path=$CTRL" \
    --log "$log" >"$T/vtpm-$1.out" 2>&1
  VTPM_PID=$BG_PID
  wait_for_path "$CTRL" 50
}

# --- the guest image -----------------------------------------------------------------------------
s=$(_ms)
if ! img=$("$VTPM_TOP"/scripts/guest-image 2>"$T/image.log"); then
  t_fail guest-image "scripts/guest-image failed: $(tail -n 1 "$T/image.log")"
  _finish
fi
KERNEL=$(echo "$img" | sed -n 's/^kernel=//p')
INITRD=$(echo "$img" | sed -n 's/^initrd=//p')
_mark image "$s"

DIGEST=$(head -c 32 /dev/urandom | sha256sum | cut -c1-64)
DIGEST2=$(head -c 32 /dev/urandom | sha256sum | cut -c1-64)
PCR16=$(expected_extend "$(printf '%064d' 0)" "$DIGEST")
PCR16_2=$(expected_extend "$PCR16" "$DIGEST2")

# --- boot on the source --------------------------------------------------------------------------
if ! start_vtpm src "$VTPMD_SRC"; then
  t_fail src-vtpm-start "$VTPMD_SRC did not create $CTRL"
  _finish
fi
SRC_VTPM=$VTPM_PID SRC_CTRL=$CTRL
s=$(_ms)
start_qemu src "$SRC_CTRL"
SRC_QEMU=$QEMU_PID
qmp qmp-src "$SRC_QEMU" qmp_capabilities >/dev/null
if ! wait_line ser-src 0 '^GUEST: ready' "$BOOT_TIMEOUT" "$SRC_QEMU" >/dev/null; then
  if kill -0 "$SRC_QEMU" 2>/dev/null; then
    t_fail guest-boot "no 'GUEST: ready' on the console within ${BOOT_TIMEOUT}s"
  else
    t_fail guest-boot "QEMU exited before the guest was ready: $(tail -n 1 "$T/qemu-src.log")"
  fi
  _finish
fi
_mark boot "$s"
line=$(grep -a -m 1 '^GUEST: tpm=' <(tr -d '\r' <"$T/ser-src.log"))
t_eq guest-tpm2 "GUEST: tpm=TPM2" "$line"
line=$(tr -d '\r' <"$T/ser-src.log" | grep -a -m 1 -E '^GUEST: (extend16|pcr16)=ERROR' ||
  tr -d '\r' <"$T/ser-src.log" | grep -a -m 1 '^GUEST: pcr16=')
t_eq guest-pcr16 "GUEST: pcr16=$PCR16" "$line"

# --- live migration ------------------------------------------------------------------------------
if ! start_vtpm dst "$VTPMD_DST"; then
  t_fail dst-vtpm-start "$VTPMD_DST did not create $CTRL"
  _finish
fi
DST_VTPM=$VTPM_PID DST_CTRL=$CTRL
MIG=$T/migrate.sock
s=$(_ms)
start_qemu dst "$DST_CTRL" -incoming "unix:$MIG"
DST_QEMU=$QEMU_PID
qmp qmp-dst "$DST_QEMU" qmp_capabilities >/dev/null
if ! wait_for_path "$MIG" 100; then
  t_fail migrate "destination QEMU is not listening on $MIG ($(tail -n 1 "$T/qemu-dst.log"))"
  _finish
fi
resp=$(qmp qmp-src "$SRC_QEMU" migrate "{\"uri\": \"unix:$MIG\"}")
status=
if [[ $resp == *'"return"'* ]]; then
  for ((i = 0; i < $(_budget "$MIGRATE_TIMEOUT") * 5; i++)); do
    status=$(qmp qmp-src "$SRC_QEMU" query-migrate | sed -n 's/.*"status": "\([a-z-]*\)".*/\1/p')
    case $status in completed | failed | cancelled | "") break ;; esac
    sleep 0.2
  done
fi
if [ "$status" = completed ]; then
  # The destination starts the guest once it has loaded everything.
  for ((i = 0; i < 50; i++)); do
    dst_state=$(qmp_status qmp-dst "$DST_QEMU")
    [ "$dst_state" = running ] && break
    kill -0 "$DST_QEMU" 2>/dev/null || { dst_state="exited: $(tail -n 1 "$T/qemu-dst.log")"; break; }
    sleep 0.1
  done
  src_state=$(qmp_status qmp-src "$SRC_QEMU")
  if [ "$dst_state" = running ] && [ "$src_state" = postmigrate ]; then
    t_pass migrate
  else
    t_fail migrate "after completion: destination '$dst_state' (want running), source '$src_state' (want postmigrate)"
  fi
else
  t_fail migrate "migration did not complete: ${status:-${resp:-no answer from QMP}} ($(tail -n 1 "$T/qemu-dst.log"))"
  _finish
fi
_mark migrate "$s"

# --- the destination guest -----------------------------------------------------------------------
s=$(_ms)
line=$(guest_cmd ser-dst "$DST_QEMU" "read 16" '^GUEST: pcr16=')
t_eq migrated-pcr16 "GUEST: pcr16=$PCR16" "$line"
line=$(guest_cmd ser-dst "$DST_QEMU" "extend 16 $DIGEST2" '^GUEST: extend16=')
if [ "$line" = "GUEST: extend16=ok" ]; then
  line=$(guest_cmd ser-dst "$DST_QEMU" "read 16" '^GUEST: pcr16=')
  t_eq migrated-extend "GUEST: pcr16=$PCR16_2" "$line"
else
  t_fail migrated-extend "extend after migration: $line"
fi
_mark dst-cmds "$s"

# --- shutdown ------------------------------------------------------------------------------------
s=$(_ms)
send qmp-src '{"execute": "quit"}'
if ! wait_exit "$SRC_QEMU" "$EXIT_TIMEOUT"; then
  t_fail src-vtpm-exit "source QEMU did not quit"
elif ! wait_exit "$SRC_VTPM" "$EXIT_TIMEOUT"; then
  t_fail src-vtpm-exit "source daemon still running ${EXIT_TIMEOUT}s after its QEMU quit"
elif [ "$EXIT_STATUS" != 0 ]; then
  t_fail src-vtpm-exit "source daemon exited with status $EXIT_STATUS"
elif [ -e "$SRC_CTRL" ]; then
  t_fail src-vtpm-exit "source daemon left its control socket $SRC_CTRL"
else
  t_pass src-vtpm-exit
fi

dst_clean=0
guest_cmd ser-dst "$DST_QEMU" poweroff '^GUEST: poweroff' >/dev/null
if ! wait_exit "$DST_QEMU" "$EXIT_TIMEOUT"; then
  t_fail dst-poweroff "QEMU still running ${EXIT_TIMEOUT}s after the guest's poweroff"
  send qmp-dst '{"execute": "quit"}'
  wait_exit "$DST_QEMU" 5 && [ "$EXIT_STATUS" = 0 ] && dst_clean=1
elif [ "$EXIT_STATUS" != 0 ]; then
  t_fail dst-poweroff "QEMU exited with status $EXIT_STATUS: $(tail -n 1 "$T/qemu-dst.log")"
else
  t_pass dst-poweroff
  dst_clean=1
fi
if [ $dst_clean = 0 ]; then
  # QEMU sends CMD_SHUTDOWN only when it exits cleanly; swtpm keeps running otherwise.
  t_skip dst-vtpm-exit "not checked: the destination QEMU did not exit cleanly"
elif ! wait_exit "$DST_VTPM" "$EXIT_TIMEOUT"; then
  t_fail dst-vtpm-exit "destination daemon still running ${EXIT_TIMEOUT}s after its QEMU exited"
elif [ "$EXIT_STATUS" != 0 ]; then
  t_fail dst-vtpm-exit "destination daemon exited with status $EXIT_STATUS"
elif [ -e "$DST_CTRL" ]; then
  t_fail dst-vtpm-exit "destination daemon left its control socket $DST_CTRL"
else
  t_pass dst-vtpm-exit
fi
_mark shutdown "$s"
_finish
