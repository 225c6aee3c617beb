#!/usr/bin/env bash
# tests/integration/qemu_managed_restart.sh — a real QEMU guest on a managed vtpmd keeps its TPM
# across a SIGTERM and a kill -9 of vtpmmgrd (issue "The manager on a real host TPM", test
# "Manager restart under load").
#
# A swtpm is the host TPM, vtpmmgrd the manager (`vtpmctl host init --pcrs 0`, one group, one
# vTPM); the vTPM is served by a managed vtpmd started the launcher's way (mgrc --register-self
# ADMIN LABEL --exec vtpmd ... --manager INSTANCE_SOCKET --uuid UUID), and the test guest
# (scripts/guest-image, tests/guest/qemu_lib.sh) boots on it. Checks:
#   guest-tpm2, guest-pcr16       the guest sees a TPM 2.0; PCR 16 = SHA-256(0^32 || D) at boot
#   nvread-undefined              reading the index before it exists answers =ERROR ... 0x0000028b
#   nv-setup                      the guest defines an NV index and writes 1
#   sigterm-exit                  the manager exits 0 on SIGTERM
#   sigterm-second-refused        while the manager is down, a second managed vtpmd for the same
#                                 vTPM does not start (the launcher's way, and -direct: vtpmd
#                                 alone, which must not wait for the manager either)
#   sigterm-serves-while-down     meanwhile the guest reads PCR 16 as usual
#   sigterm-write-waits           the guest writes 2 while the manager is down: vtpmd logs that it
#                                 answers TPM_RC_RETRY (the guest kernel sends the command again,
#                                 for about 2.5 s) or that the write waits for the manager, and the
#                                 guest gets no answer meanwhile
#   sigterm-mgr-restart           the manager starts again (after MGR_DOWN_SECONDS, default 1)
#   sigterm-second-refused-back   right after the restart, a second instance is refused as held
#                                 by the live one
#   sigterm-write-completes       the waiting write is answered: GUEST: nvwrite=ok
#   sigterm-read                  the guest reads 2
#   kill9-*                       the same after kill -9 of the manager (value 3); the
#                                 second-refused-back checks are made for both
#   taken-back                    vtpmd's log says the manager took this instance back (twice)
#   version-recorded              `vtpmctl --json vtpm show UUID` .version = the state file's newest
#   pcr16-extend                  PCR 16 extend and read still work
#   poweroff, vtpmd-exit          the guest powers off, QEMU exits 0, vtpmd exits 0
# Every wait is bounded; the whole test gives up after DEADLINE seconds (it takes about 30 s).
# Usage: [BUILD=build] bash tests/integration/qemu_managed_restart.sh
# Environment: GUEST_LOGDIR=DIR copies all logs there at the end; GUEST_CACHE goes to
# scripts/guest-image; BOOT_TIMEOUT (default 60) seconds for the guest to boot;
# MGR_DOWN_SECONDS (default 1) how long the manager stays down with the guest's write waiting
# (keep it below CMD_TIMEOUT, and far below the guest kernel's 120 s timeout for NV_Write);
# MGR_DOWN_LONG_CMD (default 1; 0 leaves them out) adds the changeauth-* checks: the same with
# TPM2_HierarchyChangeAuth, which the guest kernel gives up on after 2 s, and the manager down
# for 8 s. vtpmd answers it TPM_RC_RETRY for as long as the manager is away (vtpmd(8), WHILE
# THE MANAGER IS AWAY); the guest kernel sends it again (20 ms, doubling, eight tries in about
# 2.5 s), then returns the RETRY to the guest's tpmcheck, which resubmits it up to 5 times as
# tpm2-tss's ESAPI does. Held until the manager was back, the guest kernel timed out (ETIME)
# after 2 s; run at the kernel's eighth try, after about 4.5 s.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

DEADLINE=110                     # seconds: the whole test gives up after this
BOOT_TIMEOUT=${BOOT_TIMEOUT:-60} # seconds until the guest prints "GUEST: ready"
CMD_TIMEOUT=15                   # seconds for the guest to answer a console command
EXIT_TIMEOUT=15                  # seconds for QEMU / a daemon to exit
DOWN_SECONDS=${MGR_DOWN_SECONDS:-1} # how long the manager stays down while a write waits
NV_INDEX=0x01500050
LABEL=guest_u:vm_r:vtpm_t

. "$VTPM_TOP/tests/guest/qemu_lib.sh"

need_tool qemu-system-x86_64 swtpm sha256sum mkfifo gcc cpio jq timeout od || t_done
MGRD=$BUILD/vtpmmgrd CTL=$BUILD/vtpmctl MGRC=$BUILD/tests/tools/mgrc
for f in "$VTPMD" "$MGRD" "$CTL" "$MGRC"; do
  [ -x "$f" ] || { t_fail build "$f is not an executable (run make first)"; t_done; }
done

T=$(t_tmpdir)
chmod 755 "$T"
A=$T/admin.sock I=$T/inst.sock STATE=$T/state CTRL=$T/ctrl-g.sock
export VTPM_ADMIN_SOCKET=$A
QEMU_EXTRA_LOGS="$T/mgr.log $T/mgr.out $T/swtpm.log $T/second-*.log $T/second-*.out"
exec 4>&2 2>>"$T/shell.err" # bash's "Killed" job notices stay out of the output
trap 'exec 2>&4 4>&-; grep -v "^[^ ]*: line [0-9]*: *[0-9]* Killed " "$T/shell.err" >&2; _t_cleanup' EXIT

lastline() { cat "$@" 2>/dev/null | grep -a -v '^---$\|^type=\|^status=' | tail -n 1; }
ctl() {
  OUT=$(timeout 30 "$CTL" "$@" 2>&1 </dev/null)
  RC=$?
}
# start_mgr: vtpmmgrd on the host TPM; sets MPID; 1 (with _why) if its sockets did not appear.
start_mgr() {
  rm -f "$A" "$I"
  bg_start "$MGRD" --tcti "$HOST_TCTI" --store "$T/store.db" --instance-socket "$I" \
    --admin-socket "$A" --nv-index 0x01000e01 --log "file=$T/mgr.log,level=2" \
    </dev/null >>"$T/mgr.out" 2>&1
  MPID=$BG_PID
  wait_for_path "$A" 100 && wait_for_path "$I" 10 && _alive "$MPID" && return 0
  _why="vtpmmgrd did not start: $(lastline "$T/mgr.out" "$T/mgr.log")"
  return 1
}
# start_vtpmd NAME DIR: a managed vtpmd for $UUID, the launcher's way, control socket
# $T/ctrl-NAME.sock (QEMU's is $CTRL); sets VPID.
start_vtpmd() {
  bg_start "$MGRC" --register-self "$A" "$LABEL" --exec "$VTPMD" socket --tpm2 \
    --tpmstate dir="$2" --ctrl type=unixio,path="$T/ctrl-$1.sock" \
    --manager "$I" --uuid "$UUID" --log "file=$T/vtpm-$1.log,level=2" </dev/null >"$T/vtpm-$1.out" 2>&1
  VPID=$BG_PID
}
# second_instance CHECK WHEN [direct]: a second managed vtpmd for the same vTPM (on a copy of its
# state dir, so that only the manager can refuse it), started the launcher's way (or, with
# "direct", without mgrc registering its label), must exit non-zero without ever serving (its
# control socket appearing means it got the key) within SECOND_TIMEOUT seconds.
# WHEN=*-back also wants the manager's reason: the vTPM is held by the live instance.
SECOND_TIMEOUT=8
second_instance() {
  local d=$T/second-$2 ctrl=$T/ctrl-second-$2.sock when='' back0 pid i started=0
  local launcher=("$MGRC" --register-self "$A" "$LABEL" --exec)
  [ "${3:-}" = direct ] && launcher=()
  back0=$(grep -c 'the manager took this instance back' "$T/vtpm-g.log")
  rm -rf "$d"
  cp -a "$STATE" "$d"
  bg_start "${launcher[@]}" "$VTPMD" socket --tpm2 --tpmstate dir="$d" --ctrl type=unixio,path="$ctrl" \
    --manager "$I" --uuid "$UUID" --log "file=$T/second-$2.log,level=2" </dev/null >"$T/second-$2.out" 2>&1
  pid=$BG_PID
  for ((i = 0; i < SECOND_TIMEOUT * 20; i++)); do
    _alive "$pid" || break
    [ -e "$ctrl" ] && { started=1; break; }
    sleep 0.05
  done
  _alive "$pid" && kill -KILL "$pid" 2>/dev/null
  _reap "$pid" 5
  if [[ $2 == *-back ]]; then
    # did the refusal come before the live instance resumed (the window the manager must guard)?
    if [ "$(grep -c 'the manager took this instance back' "$T/vtpm-g.log")" = "$back0" ]; then
      when='before the live vtpmd resumed; '
    else
      when='the live vtpmd had resumed; '
    fi
  fi
  if [ "$started" = 1 ]; then
    t_fail "$1" "a second vtpmd for $UUID started: it serves at $ctrl"
  elif [ "$_rc" = 0 ]; then
    t_fail "$1" "a second vtpmd for $UUID exited 0"
  elif [ "$_rc" = 137 ]; then
    t_fail "$1" "a second vtpmd for $UUID was still running after ${SECOND_TIMEOUT}s: $(lastline "$T/second-$2.log" "$T/second-$2.out")"
  elif [[ $2 == *-back ]] && ! grep -q 'held\|open by another live instance' "$T/second-$2.log" "$T/second-$2.out"; then
    t_fail "$1" "exit $_rc, but not as held by the live instance: $(lastline "$T/second-$2.log" "$T/second-$2.out")"
  else
    t_pass "$1 (${when}exit $_rc: $(lastline "$T/second-$2.log" "$T/second-$2.out" |
      sed 's/^[a-z]*\[[0-9]*\]: //; s/vTPM [0-9a-f-]\{36\}/vTPM/g' | cut -c1-120))"
  fi
}
# guest_says CHECK CMD REGEX EXPECTED: one console command, its answer line compared.
guest_says() {
  local line
  line=$(guest_cmd ser-g "$QEMU_PID" "$2" "$3")
  t_eq "$1" "$4" "$line"
}

# restart_under_write KIND SIGNAL VALUE [CMD KEY DOWN]: the manager dies by SIGNAL; while it is
# down (DOWN seconds, default DOWN_SECONDS) the guest writes VALUE to the NV index, or runs
# console command CMD answered "GUEST: KEY=..." (it must wait, not fail); the manager comes back;
# the write completes (and VALUE, if given, reads back).
restart_under_write() {
  local k=$1 sig=$2 v=$3 cmd=${4:-nvwrite $NV_INDEX $3} key=${5:-nvwrite} down=${6:-$DOWN_SECONDS}
  local from vfrom line s back
  kill -"$sig" "$MPID"
  _reap "$MPID" 10
  if [ "$k" = sigterm ]; then t_eq sigterm-exit 0 "$_rc"; fi
  s=$(_ms)
  second_instance "$k-second-refused" "$k-down"
  second_instance "$k-second-refused-direct" "$k-down-direct" direct
  # commands that write no state are answered as usual
  guest_says "$k-serves-while-down" "read 16" '^GUEST: pcr16=' "GUEST: pcr16=$PCR16"
  # the guest's write, while the manager is down
  from=$(lines ser-g) vfrom=$(lines vtpm-g)
  send ser-g "$cmd"
  if line=$(wait_line vtpm-g "$vfrom" 'are answered TPM_RC_RETRY|waits for the manager' 10 "$VPID"); then
    sleep "$down"
    line=$(sed -n "$((from + 1)),\$p" "$T/ser-g.log" | tr -d '\r' | grep -a -m 1 "^GUEST: $key=")
    if [ -z "$line" ]; then
      t_pass "$k-write-waits"
    else
      t_fail "$k-write-waits" "the guest was answered while the manager was down: $line"
    fi
  else
    _alive "$VPID" && line='vtpmd did not log' || line='vtpmd exited without logging'
    t_fail "$k-write-waits" "$line a RETRY answer or a write waiting for the manager: $(lastline "$T/vtpm-g.log")"
  fi
  if start_mgr; then t_pass "$k-mgr-restart"; else t_fail "$k-mgr-restart" "$_why"; fi
  back=$(_ms)
  second_instance "$k-second-refused-back" "$k-back"
  if line=$(wait_line ser-g "$from" "^GUEST: $key=" "$CMD_TIMEOUT" "$QEMU_PID"); then
    t_eq "$k-write-completes" "GUEST: $key=ok" "$line"
  else
    t_fail "$k-write-completes" "no answer to '$cmd' within ${CMD_TIMEOUT}s of the manager's restart"
  fi
  echo "# $k: the guest's write was answered $(_secs $(($(_ms) - s)))s after the manager died," \
    "$(_secs $(($(_ms) - back)))s after its restart (second-instance check included)"
  [ -n "$v" ] && guest_says "$k-read" "nvread $NV_INDEX" '^GUEST: nvread=' "GUEST: nvread=$v"
  _mark "$k" "$s"
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

# --- host TPM, manager, group, vTPM, managed vtpmd --------------------------------------------------
s=$(_ms)
start_host_tpm "$T/host-tpm" "$T/swtpm.log" || { t_fail host-tpm "swtpm did not start"; _finish; }
start_mgr || { t_fail mgr-start "$_why"; _finish; }
ctl host init --pcrs 0 || { t_fail host-init "$OUT"; _finish; }
ctl group create g --label '*:vm_r:vtpm_t' --any-binary || { t_fail group-create "$OUT"; _finish; }
ctl vtpm create --group g
UUID=$OUT
[[ "$UUID" =~ ^[0-9a-f-]{36}$ ]] || { t_fail vtpm-create "$OUT"; _finish; }
mkdir -p "$STATE"
start_vtpmd g "$STATE"
if ! wait_for_path "$CTRL" 100 || ! _alive "$VPID"; then
  t_fail vtpmd-start "the managed vtpmd did not start: $(lastline "$T/vtpm-g.log" "$T/vtpm-g.out")"
  _finish
fi
_mark setup "$s"

# --- boot ----------------------------------------------------------------------------------------
s=$(_ms)
start_qemu g "$CTRL"
qmp qmp-g "$QEMU_PID" qmp_capabilities >/dev/null
if ! wait_line ser-g 0 '^GUEST: ready' "$BOOT_TIMEOUT" "$QEMU_PID" >/dev/null; then
  if kill -0 "$QEMU_PID" 2>/dev/null; then
    t_fail guest-boot "no 'GUEST: ready' on the console within ${BOOT_TIMEOUT}s"
  else
    t_fail guest-boot "QEMU exited before the guest was ready: $(tail -n 1 "$T/qemu-g.log")"
  fi
  _finish
fi
_mark boot "$s"
t_eq guest-tpm2 "GUEST: tpm=TPM2" "$(tr -d '\r' <"$T/ser-g.log" | grep -a -m 1 '^GUEST: tpm=')"
line=$(tr -d '\r' <"$T/ser-g.log" | grep -a -m 1 -E '^GUEST: (extend16|pcr16)=ERROR' ||
  tr -d '\r' <"$T/ser-g.log" | grep -a -m 1 '^GUEST: pcr16=')
t_eq guest-pcr16 "GUEST: pcr16=$PCR16" "$line"

# --- an NV index, written while the manager is up --------------------------------------------------
s=$(_ms)
# a TPM error reaches the console as "=ERROR <message with the response code>"
line=$(guest_cmd ser-g "$QEMU_PID" "nvread $NV_INDEX" '^GUEST: nvread=')
if [[ $line == "GUEST: nvread=ERROR "*0x0000028b* ]]; then
  t_pass nvread-undefined
else
  t_fail nvread-undefined "want TPM_RC_HANDLE (0x28b) for an undefined index, got '$line'"
fi
d=$(guest_cmd ser-g "$QEMU_PID" "nvdefine $NV_INDEX 8" '^GUEST: nvdefine=')
w=$(guest_cmd ser-g "$QEMU_PID" "nvwrite $NV_INDEX 1" '^GUEST: nvwrite=')
r=$(guest_cmd ser-g "$QEMU_PID" "nvread $NV_INDEX" '^GUEST: nvread=')
if [ "$d|$w|$r" = "GUEST: nvdefine=ok|GUEST: nvwrite=ok|GUEST: nvread=1" ]; then
  t_pass nv-setup
else
  t_fail nv-setup "nvdefine: '$d', nvwrite 1: '$w', nvread: '$r'"
  _finish
fi
_mark nv "$s"

# --- the manager restarts while the guest writes -----------------------------------------------------
restart_under_write sigterm TERM 2
restart_under_write kill9 KILL 3
if [ "${MGR_DOWN_LONG_CMD:-1}" = 1 ]; then
  # TPM2_HierarchyChangeAuth, a state write that Linux's TPM driver times out after 2 s
  # (TPM_LONG; NV_Write gets 120 s): the manager stays down for 8 s
  restart_under_write changeauth TERM '' changeauth changeauth 8
fi

n=$(grep -c 'the manager took this instance back' "$T/vtpm-g.log")
if [ "$n" -ge 2 ]; then t_pass "taken-back ($n times)"; else t_fail taken-back "vtpmd logged it $n times (want 2)"; fi
ctl --json vtpm show "$UUID"
mv=$(jq -r .version <<<"$OUT" 2>/dev/null)
fv=$(state_version "$STATE/vtpm2.state")
if [ "$mv" = "$fv" ] && [ "$fv" -gt 0 ]; then
  t_pass "version-recorded ($fv)"
else
  t_fail version-recorded "the manager records version '$mv' ($RC: $(echo "$OUT" | tail -n 1)), the state file holds $fv"
fi
line=$(guest_cmd ser-g "$QEMU_PID" "extend 16 $DIGEST2" '^GUEST: extend16=')
if [ "$line" = "GUEST: extend16=ok" ]; then
  guest_says pcr16-extend "read 16" '^GUEST: pcr16=' "GUEST: pcr16=$PCR16_2"
else
  t_fail pcr16-extend "extend after the restarts: $line"
fi

# --- shutdown --------------------------------------------------------------------------------------
s=$(_ms)
clean=0
guest_cmd ser-g "$QEMU_PID" poweroff '^GUEST: poweroff' >/dev/null
if ! wait_exit "$QEMU_PID" "$EXIT_TIMEOUT"; then
  t_fail poweroff "QEMU still running ${EXIT_TIMEOUT}s after the guest's poweroff"
  send qmp-g '{"execute": "quit"}'
  wait_exit "$QEMU_PID" 5 && [ "$EXIT_STATUS" = 0 ] && clean=1
elif [ "$EXIT_STATUS" != 0 ]; then
  t_fail poweroff "QEMU exited with status $EXIT_STATUS: $(tail -n 1 "$T/qemu-g.log")"
else
  t_pass poweroff
  clean=1
fi
if [ $clean = 0 ]; then
  t_skip vtpmd-exit "not checked: QEMU did not exit cleanly"
elif ! wait_exit "$VPID" "$EXIT_TIMEOUT"; then
  t_fail vtpmd-exit "vtpmd still running ${EXIT_TIMEOUT}s after QEMU exited"
elif [ "$EXIT_STATUS" != 0 ]; then
  t_fail vtpmd-exit "vtpmd exited with status $EXIT_STATUS: $(lastline "$T/vtpm-g.log")"
else
  t_pass vtpmd-exit
fi
_alive "$QEMU_PID" || _forget "$QEMU_PID"
_alive "$VPID" || _forget "$VPID"
kill -TERM "$MPID"
_reap "$MPID" 10
_mark shutdown "$s"
_finish
