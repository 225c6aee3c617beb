# tests/guest/qemu_lib.sh — helpers for the tests that boot the test guest (scripts/guest-image) in
# QEMU: timings, bounded waits, the serial console and the QMP monitor over FIFOs, and start_qemu.
# Source it after tests/lib.sh. The sourcing script sets, before calling the helpers:
#   T            its t_tmpdir (FIFOs and logs live there)
#   DEADLINE     seconds after which every wait gives up (_budget)
#   CMD_TIMEOUT  seconds for the guest to answer a console command or QMP to answer
#   KERNEL, INITRD, DIGEST   for start_qemu (DIGEST goes on the guest's command line: vtpm_digest=)
#   QEMU_EXTRA_LOGS (optional)  more log files (globs under $T) that _dump_logs shows on failure
# Used by tests/integration/qemu_guest.sh and tests/integration/qemu_managed_restart.sh.
# shellcheck shell=bash disable=SC2034 # EXIT_STATUS, QEMU_PID are set for the sourcing script

t0=$(date +%s%N)
_ms() { echo $((($(date +%s%N) - t0) / 1000000)); }
_secs() { printf '%d.%01d' $(($1 / 1000)) $((($1 % 1000) / 100)); }
timings=()
_mark() { timings+=("$1=$(_secs $(($(_ms) - ${2:-0})))s"); }

# Remaining seconds before DEADLINE, at most $1.
_budget() {
  local left=$((DEADLINE - SECONDS))
  [ "$left" -lt 1 ] && left=1
  [ "$left" -lt "$1" ] && echo "$left" || echo "$1"
}

# On failure: show what each component said (the runner prints the last lines).
_dump_logs() {
  local f
  # shellcheck disable=SC2086 # QEMU_EXTRA_LOGS holds globs
  for f in "$T"/image.log "$T"/qemu-*.log "$T"/vtpm-*.out "$T"/vtpm-*.log "$T"/qmp-*.log "$T"/ser-*.log \
    ${QEMU_EXTRA_LOGS:-}; do
    { [ -f "$f" ] && [ -s "$f" ]; } || continue
    echo "---- ${f##*/} (last 15 lines)"
    tr -d '\r' <"$f" | tail -n 15 | sed 's/^/  /'
  done
}
_finish() {
  local f
  echo "# timings: ${timings[*]} total=$(_secs "$(_ms)")s"
  if [ -n "${GUEST_LOGDIR:-}" ]; then
    mkdir -p "$GUEST_LOGDIR"
    for f in "$T"/*.log "$T"/*.out; do [ -f "$f" ] && cp "$f" "$GUEST_LOGDIR"/; done
  fi
  [ "$_t_failed" = 0 ] || _dump_logs
  t_done
}

# expected_extend OLDHEX DIGESTHEX: SHA-256(old || digest), the new PCR value.
_hex2bin() {
  local h=$1 esc=
  while [ -n "$h" ]; do
    esc+="\\x${h:0:2}"
    h=${h:2}
  done
  printf '%b' "$esc"
}
expected_extend() { { _hex2bin "$1"; _hex2bin "$2"; } | sha256sum | cut -c1-64; }

# wait_exit PID TIMEOUT: wait (bounded) for one of our background processes; sets EXIT_STATUS.
wait_exit() {
  local i
  for ((i = 0; i < $(_budget "$2") * 10; i++)); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$1" 2>/dev/null && return 1
  wait "$1"
  EXIT_STATUS=$?
  return 0
}

# Console and monitor: QEMU pipe chardev NAME = FIFOs NAME.in (to QEMU) and NAME.out (from QEMU).
# A cat copies NAME.out into NAME.log (QEMU opens both FIFOs read-write, so cat's open returns once
# QEMU is up, and cat sees EOF when QEMU exits); we write to NAME.in through an fd held open
# read-write, so a write never blocks on open, even if QEMU died.
declare -A fd_of
open_pipe() {
  local name=$1 fd
  mkfifo "$T/$name.in" "$T/$name.out"
  : >"$T/$name.log"
  bg_start cat -- "$T/$name.out" >>"$T/$name.log"
  exec {fd}<>"$T/$name.in"
  fd_of[$name]=$fd
}
send() { printf '%s\n' "$2" >&"${fd_of[$1]}"; }
lines() { wc -l <"$T/$1.log"; }
# wait_line NAME FROM REGEX TIMEOUT PID: wait until a complete line after line FROM of NAME.log
# matches the extended REGEX; print that line (CRs removed). A line still being written (no newline
# yet) is never looked at. Fails on timeout or when PID has exited.
wait_line() {
  local name=$1 from=$2 re=$3 to=$4 pid=$5 i m n alive=1
  for ((i = 0; i <= $(_budget "$to") * 10; i++)); do
    n=$(lines "$name")
    [ "$n" -gt "$from" ] &&
      m=$(sed -n "$((from + 1)),${n}p" "$T/$name.log" | tr -d '\r' | grep -a -m 1 -E -- "$re") && {
      echo "$m"
      return 0
    }
    [ $alive = 0 ] && return 1
    kill -0 "$pid" 2>/dev/null || alive=0 # one more look after it died
    sleep 0.1
  done
  return 1
}

# guest_cmd NAME PID CMD REGEX: send CMD on the console, print the answer line matching REGEX, or
# "(no answer ...)" after CMD_TIMEOUT or once QEMU has exited.
guest_cmd() {
  local from
  from=$(lines "$1")
  send "$1" "$3"
  wait_line "$1" "$from" "$4" "$CMD_TIMEOUT" "$2" && return 0
  if kill -0 "$2" 2>/dev/null; then echo "(no answer to '$3')"; else echo "(no answer to '$3': QEMU exited)"; fi
  return 1
}

# qmp NAME PID COMMAND [ARGUMENTS-JSON]: send a QMP command, print its response line (matched by
# a unique id, so a late answer to an earlier command is never taken for this one).
qmp() {
  local from id
  from=$(lines "$1")
  id=c$(date +%s%N)
  send "$1" "{\"execute\": \"$3\"${4:+, \"arguments\": $4}, \"id\": \"$id\"}"
  wait_line "$1" "$from" "\"id\": \"$id\"" "$CMD_TIMEOUT" "$2"
}
# qmp_status NAME PID: print the VM's run state (query-status).
qmp_status() { qmp "$1" "$2" query-status | sed -n 's/.*"status": "\([a-z-]*\)".*/\1/p'; }

# start_qemu NAME CTRL [ARGS...]: QEMU with console pipe ser-NAME and QMP pipe qmp-NAME; sets QEMU_PID.
start_qemu() {
  local name=$1 ctrl=$2
  shift 2
  open_pipe "ser-$name"
  open_pipe "qmp-$name"
  bg_start qemu-system-x86_64 -machine q35 -accel tcg -smp 1 -m 256 \
    -nodefaults -no-user-config -display none -no-reboot \
    -kernel "$KERNEL" -initrd "$INITRD" -append "console=ttyS0 quiet panic=-1 vtpm_digest=$DIGEST" \
    -chardev "socket,id=chrtpm,path=$ctrl" -tpmdev emulator,id=tpm0,chardev=chrtpm \
    -device tpm-tis,tpmdev=tpm0 \
    -chardev "pipe,id=ser0,path=$T/ser-$name" -serial chardev:ser0 \
    -chardev "pipe,id=qmp0,path=$T/qmp-$name" -mon chardev=qmp0,mode=control \
    "$@" >"$T/qemu-$name.log" 2>&1
  QEMU_PID=$BG_PID
}
