#!/usr/bin/env bash
# tests/integration/vtpmd_sandbox.sh — what vtpmd gives up once it runs, and what it refuses.
#
# filter/*   the default seccomp filter is loaded (Seccomp: 2, one filter more than this shell,
#            NoNewPrivs: 1) and a full tpm2-tools session, a state file that grows (temp file +
#            rename) and a swtpm_ioctl session all work under it; SIGTERM still exits 0
# forbidden/ the test hook VTPMD_TEST_FORBIDDEN_SYSCALL makes vtpmd call execve, or socket
#            (AF_INET), right after the filter is loaded: killed by SIGSYS (status 159) with the
#            default and with action=kill, allowed and logged by the kernel (audit type 1326)
#            with action=log, allowed with action=none (no filter)
# memory/    a root vtpmd has its memory locked (VmLck ~ VmRSS); started as nobody under
#            RLIMIT_MEMLOCK 64 KiB it warns once, naming the limit, and still locks its key
#            pages; as nobody its /proc/PID/environ and mem are closed to nobody's other
#            processes (non-dumpable), while those of a plain process of nobody are not
# runas/     --runas nobody (and 65534): uid, gid and groups of the process, the state file
#            written as nobody, sockets made by nobody with mode 0600; refused with a precise
#            message when not root or for an unknown user
# chroot/    --chroot DIR: every path is inside DIR (sockets, state, log, pid), also with
#            --runas; refused when not root
# paths/     a symbolic link planted as log, pid or lock file is refused with a message naming
#            it, and its target is untouched (with --daemon the parent exits 1 for it); a
#            FIFO as log file is refused without hanging;
#            an existing pid file is overwritten (as swtpm); unix sockets are 0600 whatever
#            the umask, or exactly mode=
# caps/      --print-capabilities lists cmdarg-seccomp; --help documents the options
# managed/   losing and getting back vtpmmgrd (kill -9, restart) does not make the filter
#            kill vtpmd (reconnecting needs socket(AF_UNIX), connect, send, recv)
# Usage: [BUILD=build] bash tests/integration/vtpmd_sandbox.sh   (as root)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

TO=10
NOBODY=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
TPMC=$BUILD/tests/tools/tpmc

need_tool setpriv prlimit tpm2_getrandom tpm2_createprimary tpm2_nvdefine tpm2_pcrextend \
  swtpm_ioctl jq xxd timeout || t_done
if [ "$(id -u)" -ne 0 ]; then
  t_skip sandbox "needs root (--runas, --chroot, running vtpmd as another user)"
  t_done
fi
for f in "$VTPMD" "$TPMC"; do
  [ -x "$f" ] || { t_fail build "$f is not an executable (run make first)"; t_done; }
done
W=$(t_tmpdir)
chmod 0755 "$W"
# AddressSanitizer (make asan) intercepts mlock and mlockall and makes them no-ops
SANITIZED=0
grep -qa __asan_init "$VTPMD" && SANITIZED=1
# _locked NAME KB MIN: pass if KB >= MIN (skipped in a sanitizer build)
_locked() {
  if [ "$SANITIZED" = 1 ]; then
    t_skip "$1" "sanitizer build: mlock is a no-op under AddressSanitizer"
  elif [ "${2:-0}" -ge "$3" ]; then
    t_pass "$1"
  else
    t_fail "$1" "VmLck '$2' kB, expected at least $3 kB"
  fi
}

# _st PID FIELD: one field of /proc/PID/status, whitespace squeezed.
_st() { awk -v f="$2:" '$1 == f { $1 = ""; sub(/^ +/, ""); gsub(/[ \t]+/, " "); print; exit }' "/proc/$1/status" 2>/dev/null; }
# _up PID SOCK: wait (5 s) until SOCK exists while PID lives.
_up() {
  local i
  for ((i = 0; i < 50; i++)); do
    _alive "$1" || return 1
    [ -S "$2" ] && return 0
    sleep 0.1
  done
  return 1
}
# _sandboxed PID LOG: wait (5 s) until vtpmd logged its last start-up step (the filter).
_sandboxed() {
  local i
  for ((i = 0; i < 50; i++)); do
    _alive "$1" || return 1
    grep -qE "seccomp filter loaded|no seccomp filter" "$2" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
_last() { grep . "$@" 2>/dev/null | tail -n 1; }
# _vtpmd DIR [ARGS...]: start "${PRE[@]}" vtpmd on DIR/state, data socket DIR/tpm.sock, control
# socket DIR/tpm.sock.ctrl (the swtpm TCTI's pair), log DIR/log; _pid; 0 once both sockets exist.
PRE=()
_vtpmd() {
  local dir=$1
  shift
  mkdir -p "$dir/state"
  bg_start "${PRE[@]}" "$VTPMD" socket --tpm2 --tpmstate dir="$dir/state" \
    --server type=unixio,path="$dir/tpm.sock" --ctrl type=unixio,path="$dir/tpm.sock.ctrl" \
    --flags not-need-init,startup-clear --log file="$dir/log",level=20 "$@" \
    </dev/null >>"$dir/out" 2>&1
  _pid=$BG_PID
  _up "$_pid" "$dir/tpm.sock.ctrl" && _up "$_pid" "$dir/tpm.sock" && _sandboxed "$_pid" "$dir/log"
}
# _started NAME DIR: report whether _vtpmd started.
_started() {
  if [ "$3" = 0 ]; then
    t_pass "$1"
    return 0
  fi
  t_fail "$1" "$(_alive "$_pid" && echo "no sockets after 5 s" || echo "vtpmd exited"): $(_last "$2/out" "$2/log")"
  return 1
}
# _stop NAME DIR [nolsan]: SIGTERM; vtpmd must exit 0 within 5 s and remove its socket files.
# nolsan: in a sanitizer build LeakSanitizer aborts at exit without /proc (chroot): status not checked.
_stop() {
  kill -TERM "$_pid" 2>/dev/null
  _reap "$_pid" 5
  if [ "${3:-}" = nolsan ] && [ "$SANITIZED" = 1 ]; then
    t_skip "$1-sigterm-exit-status" "sanitizer build: LeakSanitizer needs /proc, which the chroot lacks"
  else
    t_eq "$1-sigterm-exit-status" 0 "$_rc"
  fi
  local left=
  for s in "$2"/tpm.sock "$2"/tpm.sock.ctrl; do [ -e "$s" ] && left+="$(basename "$s") "; done
  t_eq "$1-socket-files-removed" "" "$left"
}
# _tool NAME CMD...: a client command must succeed.
_tool() {
  local name=$1 out rc
  shift
  out=$(timeout "$TO" "$@" 2>&1)
  rc=$?
  printf -- '--- %s: %s (rc=%d)\n%s\n' "$name" "$*" "$rc" "$out" >>"$W/tools.log"
  if [ "$rc" -eq 0 ]; then
    t_pass "$name"
    return 0
  fi
  t_fail "$name" "$* -> rc=$rc: $(printf '%s' "$out" | grep -v '^$' | tail -n 1)"
  return 1
}
_hex() { xxd -p "$1" 2>/dev/null | tr -d '\n'; }
# _refused NAME DIR NEEDLE [ARGS...]: vtpmd (with "${PRE[@]}") must exit 1 within 5 s and say NEEDLE.
_refused() {
  local name=$1 dir=$2 needle=$3 out
  shift 3
  mkdir -p "$dir"
  out=$(timeout 5 "${PRE[@]}" "$VTPMD" socket --tpm2 "$@" 2>&1 </dev/null)
  _rc=$?
  printf -- '--- %s (rc=%d)\n%s\n' "$name" "$_rc" "$out" >>"$W/tools.log"
  if [ "$_rc" = 1 ] && [[ "$out" == *"$needle"* ]]; then
    t_pass "$name"
  else
    t_fail "$name" "rc=$_rc (expected 1), output '$(printf '%s' "$out" | tail -n 1)', wanted '$needle'"
  fi
}

# --- filter/: the default filter, and everything vtpmd serves still works under it
D=$W/filter
_vtpmd "$D"
if _started filter/start "$D" $?; then
  t_eq filter/seccomp-mode-2 2 "$(_st "$_pid" Seccomp)"
  t_eq filter/no-new-privs 1 "$(_st "$_pid" NoNewPrivs)"
  t_eq filter/one-filter-of-its-own $(($(_st $$ Seccomp_filters) + 1)) "$(_st "$_pid" Seccomp_filters)"
  export TPM2TOOLS_TCTI="swtpm:path=$D/tpm.sock"
  _tool filter/tpm2-getrandom tpm2_getrandom -o "$D/rand" 16
  t_eq filter/tpm2-getrandom-16-bytes 16 "$(stat -c %s "$D/rand" 2>/dev/null)"
  _tool filter/tpm2-createprimary tpm2_createprimary -C o -c "$D/primary.ctx"
  timeout "$TO" tpm2_flushcontext -t >>"$W/tools.log" 2>&1
  printf '%-32.32s' "written under the seccomp filter" >"$D/nv.in"
  _tool filter/tpm2-nvdefine tpm2_nvdefine 0x01500050 -C o -s 32 -a 'ownerread|ownerwrite'
  _tool filter/tpm2-nvwrite tpm2_nvwrite 0x01500050 -C o -i "$D/nv.in"
  _tool filter/tpm2-nvread tpm2_nvread 0x01500050 -C o -s 32 -o "$D/nv.out"
  t_eq filter/tpm2-nv-content "$(_hex "$D/nv.in")" "$(_hex "$D/nv.out")"
  _tool filter/tpm2-pcrextend tpm2_pcrextend "16:sha256=$(printf '%064d' 1)"
  expect=$( (printf '%064d' 0; printf '%064d' 1) | xxd -r -p | openssl dgst -sha256 -r | cut -d' ' -f1)
  rm -f "$D/pcr"
  _tool filter/tpm2-pcrread tpm2_pcrread sha256:16 -o "$D/pcr"
  t_eq filter/tpm2-pcr16-extended "$expect" "$(_hex "$D/pcr")"
  # grow the state past its slot: the state file is rewritten through a temp file and rename
  size0=$(stat -c %s "$D/state/vtpm2.state")
  for i in 1 2 3 4 5 6; do
    timeout "$TO" tpm2_nvdefine $((0x01500060 + i)) -C o -s 2048 -a 'ownerread|ownerwrite' >>"$W/tools.log" 2>&1
  done
  size1=$(stat -c %s "$D/state/vtpm2.state")
  echo "# state file $size0 -> $size1 bytes after six 2048-byte NV indices"
  if _alive "$_pid" && [ "$size1" -gt "$size0" ]; then
    t_pass filter/state-file-grows
  else
    t_fail filter/state-file-grows "state file $size0 -> $size1 bytes, vtpmd $(_alive "$_pid" && echo alive || echo gone): $(_last "$D/log")"
  fi
  _tool filter/tpm2-nvread-after-growth tpm2_nvread 0x01500050 -C o -s 32 -o "$D/nv.out2"
  t_eq filter/tpm2-nv-content-after-growth "$(_hex "$D/nv.in")" "$(_hex "$D/nv.out2")"
  # swtpm_ioctl: the control channel's operations
  C=(--unix "$D/tpm.sock.ctrl")
  _tool filter/ioctl-capability swtpm_ioctl "${C[@]}" -c
  _tool filter/ioctl-established swtpm_ioctl "${C[@]}" -e
  _tool filter/ioctl-store-volatile swtpm_ioctl "${C[@]}" -v
  _tool filter/ioctl-info swtpm_ioctl "${C[@]}" --info 1
  _tool filter/ioctl-save-permanent swtpm_ioctl "${C[@]}" --save permanent "$D/perm.blob"
  _tool filter/ioctl-stop swtpm_ioctl "${C[@]}" --stop
  _tool filter/ioctl-buffersize swtpm_ioctl "${C[@]}" -b 4096
  _tool filter/ioctl-init swtpm_ioctl "${C[@]}" -i
  _tool filter/tpm2-startup-after-init tpm2_startup -c
  _tool filter/tpm2-nvread-after-init tpm2_nvread 0x01500050 -C o -s 32 -o "$D/nv.out3"
  t_eq filter/tpm2-nv-content-after-init "$(_hex "$D/nv.in")" "$(_hex "$D/nv.out3")"
  _tool filter/ioctl-shutdown swtpm_ioctl "${C[@]}" -s
  _reap "$_pid" 5
  t_eq filter/exit-status-after-shutdown 0 "$_rc"
  unset TPM2TOOLS_TCTI
  D=$W/filter-term
  _vtpmd "$D" && _stop filter "$D"
fi

# --- forbidden/: one forbidden call after the filter is loaded, under each action
# _forbidden NAME CALL EXPECT [ARGS...]: EXPECT killed|alive.
_forbidden() {
  local name=$1 call=$2 expect=$3 d=$W/forbidden-$1 ok
  shift 3
  PRE=(env VTPMD_TEST_FORBIDDEN_SYSCALL="$call")
  _vtpmd "$d" "$@"
  PRE=()
  if [ "$expect" = killed ]; then
    _reap "$_pid" 5
    t_eq "forbidden/$name-killed-by-sigsys" 159 "$_rc"
    ok=$(grep -c "seccomp filter loaded" "$d/log")
    t_eq "forbidden/$name-after-the-filter" 1 "$ok"
    ok=$(grep -c "test hook:" "$d/log")
    t_eq "forbidden/$name-call-never-returned" 0 "$ok"
    return
  fi
  if ! _alive "$_pid"; then
    _reap "$_pid" 1
    t_fail "forbidden/$name-alive" "vtpmd exited with status $_rc: $(_last "$d/log" "$d/out")"
    return
  fi
  t_pass "forbidden/$name-alive"
  if grep -q "test hook: $call" "$d/log" 2>/dev/null; then
    t_pass "forbidden/$name-call-returned"
  else
    t_fail "forbidden/$name-call-returned" "no 'test hook: $call' line: $(_last "$d/log")"
  fi
  _tool "forbidden/$name-still-serves" "$TPMC" "$d/tpm.sock" startup
  FORBIDDEN_PID=$_pid
  _stop "forbidden/$name" "$d"
}
_forbidden default-execve execve killed
_forbidden kill-execve execve killed --seccomp action=kill
_forbidden default-socket-inet socket-inet killed
_forbidden log-execve execve alive --seccomp action=log
# the kernel logs a SECCOMP_RET_LOG decision (audit type 1326, code 0x7ffc0000)
if dmesg >/dev/null 2>&1; then
  n=$(dmesg | grep -c "type=1326.*pid=$FORBIDDEN_PID .*syscall=59 .*code=0x7ffc0000")
  if [ "$n" -ge 1 ]; then
    t_pass forbidden/log-execve-in-kernel-log
  else
    t_fail forbidden/log-execve-in-kernel-log "no audit line for pid $FORBIDDEN_PID syscall 59: $(dmesg | grep type=1326 | tail -n 1)"
  fi
else
  t_skip forbidden/log-execve-in-kernel-log "dmesg is not readable here"
fi
_forbidden none-execve execve alive --seccomp action=none
_forbidden none-socket-inet socket-inet alive --seccomp action=none
D=$W/none-status
_vtpmd "$D" --seccomp action=none && {
  t_eq forbidden/none-no-filter 0 "$(_st "$_pid" Seccomp)"
  t_eq forbidden/none-still-no-new-privs 1 "$(_st "$_pid" NoNewPrivs)"
  _stop forbidden/none-status "$D"
}
PRE=()
_refused forbidden/bad-action "$W/bad-action" "action='trap' is not supported" \
  --tpmstate dir="$W/bad-action" --ctrl type=tcp,port=1 --seccomp action=trap

# --- memory/: locked as root; as nobody under a small RLIMIT_MEMLOCK: a warning, key pages locked
# --daemon: memory locks are not inherited by fork's child; the daemon locks again
D=$W/mem-daemon
mkdir -p "$D/state"
out=$(timeout 10 "$VTPMD" socket --tpm2 --tpmstate dir="$D/state" --ctrl type=unixio,path="$D/tpm.sock.ctrl" \
  --daemon --pid file="$D/pid" --log file="$D/log",level=2 2>&1 </dev/null)
dpid=$(cat "$D/pid" 2>/dev/null)
if [ -n "$dpid" ] && _sandboxed "$dpid" "$D/log"; then
  lck=$(_st "$dpid" VmLck | cut -d' ' -f1)
  _locked memory/daemon-locked-again "$lck" 1024
  t_eq memory/daemon-seccomp 2 "$(_st "$dpid" Seccomp)"
  timeout "$TO" swtpm_ioctl --unix "$D/tpm.sock.ctrl" -s >>"$W/tools.log" 2>&1
  for ((i = 0; i < 50; i++)); do _alive "$dpid" || break; sleep 0.1; done
  if _alive "$dpid"; then t_fail memory/daemon-shutdown "still running"; kill -KILL "$dpid"; else t_pass memory/daemon-shutdown; fi
else
  t_fail memory/daemon-start "no daemon: $out $(_last "$D/log")"
fi
D=$W/mem-root
_vtpmd "$D"
if _started memory/root-start "$D" $?; then
  lck=$(_st "$_pid" VmLck | cut -d' ' -f1) rss=$(_st "$_pid" VmRSS | cut -d' ' -f1)
  echo "# root vtpmd: VmLck $lck kB, VmRSS $rss kB"
  _locked memory/root-all-locked "$lck" $((rss * 9 / 10 > 1024 ? rss * 9 / 10 : 1024))
  t_eq memory/root-logged-locked 1 "$(grep -c 'memory locked (mlockall)' "$D/log")"
  _stop memory/root "$D"
fi
D=$W/mem-nobody
mkdir -p "$D/state" && chown -R nobody:nogroup "$D"
PRE=(prlimit --memlock=65536:65536 "${NOBODY[@]}")
_vtpmd "$D"
PRE=()
if _started memory/nobody-start "$D" $?; then
  lck=$(_st "$_pid" VmLck | cut -d' ' -f1)
  echo "# vtpmd as nobody, RLIMIT_MEMLOCK 64 KiB: VmLck $lck kB; $(grep 'memory not locked' "$D/log")"
  _locked memory/nobody-key-pages-locked "$lck" 4
  if [ "${lck:-0}" -gt 64 ]; then t_fail memory/nobody-only-key-pages "VmLck $lck kB over a 64 KiB limit"; fi
  t_eq memory/nobody-one-warning-naming-the-limit 1 \
    "$(grep -c 'memory not locked: .*RLIMIT_MEMLOCK 64 KiB' "$D/log")"
  t_eq memory/nobody-uid 65534 "$(_st "$_pid" Uid | cut -d' ' -f1)"
  # non-dumpable: another process of nobody cannot read its environment or memory ...
  if "${NOBODY[@]}" cat "/proc/$_pid/environ" >/dev/null 2>&1; then
    t_fail memory/nondumpable-environ-closed "nobody read /proc/$_pid/environ of vtpmd"
  else
    t_pass memory/nondumpable-environ-closed
  fi
  if "${NOBODY[@]}" dd if="/proc/$_pid/mem" bs=1 count=1 skip=4096 >/dev/null 2>&1; then
    t_fail memory/nondumpable-mem-closed "nobody opened /proc/$_pid/mem of vtpmd"
  else
    t_pass memory/nondumpable-mem-closed
  fi
  # ... which it can for a plain process of nobody (the check itself is sound)
  bg_start "${NOBODY[@]}" sleep 30
  sleep 0.2
  if "${NOBODY[@]}" cat "/proc/$BG_PID/environ" >/dev/null 2>&1; then
    t_pass memory/control-process-environ-readable
  else
    t_fail memory/control-process-environ-readable "nobody cannot read its own sleep's environ: the check proves nothing"
  fi
  bg_kill "$BG_PID" KILL
  _tool memory/nobody-serves "$TPMC" "$D/tpm.sock" startup
  _stop memory/nobody "$D"
fi

# --- runas/
for who in nobody 65534; do
  D=$W/runas-$who
  mkdir -p "$D/state" && chown -R nobody:nogroup "$D"
  _vtpmd "$D" --runas "$who"
  if _started "runas/$who-start" "$D" $?; then
    t_eq "runas/$who-uid" "65534 65534 65534 65534" "$(_st "$_pid" Uid)"
    t_eq "runas/$who-gid" "65534 65534 65534 65534" "$(_st "$_pid" Gid)"
    t_eq "runas/$who-groups" 65534 "$(_st "$_pid" Groups)"
    t_eq "runas/$who-seccomp" 2 "$(_st "$_pid" Seccomp)"
    v0=$(state_version "$D/state/vtpm2.state")
    _tool "runas/$who-nvdefine" "$TPMC" "$D/tpm.sock" nvdefine 0x01500070 8
    _tool "runas/$who-nvwrite" "$TPMC" "$D/tpm.sock" nvloop 0x01500070 3
    t_eq "runas/$who-nvread" 3 "$(timeout "$TO" "$TPMC" "$D/tpm.sock" nvread 0x01500070 2>&1)"
    v1=$(state_version "$D/state/vtpm2.state")
    if [ "$v1" -gt "$v0" ]; then t_pass "runas/$who-state-written"; else t_fail "runas/$who-state-written" "state version $v0 -> $v1"; fi
    t_eq "runas/$who-state-file-owner" nobody "$(stat -c %U "$D/state/vtpm2.state")"
    t_eq "runas/$who-socket-owner-and-mode" "nobody 600" "$(stat -c '%U %a' "$D/tpm.sock")"
    _stop "runas/$who" "$D"
  fi
done
PRE=("${NOBODY[@]}")
_refused runas/refused-when-not-root "$W/runas-nonroot" "--runas tss: only root can change to another user" \
  --tpmstate dir="$W/runas-nonroot" --ctrl type=tcp,port=1 --runas tss
PRE=()
_refused runas/unknown-user "$W/runas-unknown" "--runas no-such-user-x7: no such user" \
  --tpmstate dir="$W/runas-unknown" --ctrl type=tcp,port=1 --runas no-such-user-x7
out=$("$VTPMD" socket --tpm2 --tpmstate dir=/nonexistent --ctrl type=tcp,port=1 --runas 2>&1)
t_eq runas/missing-value "vtpmd: option --runas needs a value" "$out"

# --- chroot/: every path is inside the chroot
for who in root nobody; do
  R=$W/chroot-$who
  mkdir -p "$R/state" "$R/run"
  extra=()
  if [ "$who" = nobody ]; then
    chown -R nobody:nogroup "$R/state" "$R/run"
    extra=(--runas nobody)
  fi
  bg_start "$VTPMD" socket --tpm2 --chroot "$R" --tpmstate dir=/state \
    --server type=unixio,path=/run/tpm.sock --ctrl type=unixio,path=/run/tpm.sock.ctrl \
    --flags not-need-init,startup-clear --log file=/run/vtpmd.log,level=20 \
    --pid file=/run/vtpmd.pid "${extra[@]}" </dev/null >>"$R/out" 2>&1
  _pid=$BG_PID
  if _up "$_pid" "$R/run/tpm.sock" && _up "$_pid" "$R/run/tpm.sock.ctrl" && _sandboxed "$_pid" "$R/run/vtpmd.log"; then
    t_pass "chroot/$who-start"
    t_eq "chroot/$who-root-directory" "$R" "$(readlink "/proc/$_pid/root")"
    t_eq "chroot/$who-pid-file-inside" "$_pid" "$(cat "$R/run/vtpmd.pid" 2>/dev/null)"
    t_eq "chroot/$who-log-inside" 1 "$(grep -c 'ready: state in /state' "$R/run/vtpmd.log" 2>/dev/null)"
    _tool "chroot/$who-nvdefine" "$TPMC" "$R/run/tpm.sock" nvdefine 0x01500071 8
    _tool "chroot/$who-nvwrite" "$TPMC" "$R/run/tpm.sock" nvloop 0x01500071 2
    t_eq "chroot/$who-nvread" 2 "$(timeout "$TO" "$TPMC" "$R/run/tpm.sock" nvread 0x01500071 2>&1)"
    t_eq "chroot/$who-state-inside" 1 "$([ -s "$R/state/vtpm2.state" ] && echo 1 || echo 0)"
    [ "$who" = nobody ] && t_eq chroot/nobody-uid "65534 65534 65534 65534" "$(_st "$_pid" Uid)"
    _stop "chroot/$who" "$R/run" nolsan
  else
    t_fail "chroot/$who-start" "$(_alive "$_pid" && echo "no sockets" || echo "vtpmd exited"): $(_last "$R/out" "$R/run/vtpmd.log")"
  fi
done
PRE=("${NOBODY[@]}")
_refused chroot/refused-when-not-root "$W/chroot-nonroot" "only root can chroot" \
  --chroot "$W/chroot-nonroot" --tpmstate dir=/ --ctrl type=tcp,port=1
PRE=()

# --- paths/: planted links are refused, their targets untouched
P=$W/paths
mkdir -p "$P/st-log" "$P/st-pid" "$P/st-lock" "$P/st-fifo" "$P/st-pid-ok"
echo "precious, not to be touched by vtpmd" >"$P/target"
sha=$(_sha "$P/target")
ln -s "$P/target" "$P/log.link"
_refused paths/log-symlink-refused "$P/x" "refusing the log file $P/log.link: it is a symbolic link" \
  --tpmstate dir="$P/st-log" --server type=unixio,path="$P/log.sock" --log file="$P/log.link",truncate
t_eq paths/log-symlink-target-untouched "$sha" "$(_sha "$P/target")"
ln -s "$P/target" "$P/pid.link"
_refused paths/pid-symlink-refused "$P/x" "refusing the pid file $P/pid.link: it is a symbolic link" \
  --tpmstate dir="$P/st-pid" --server type=unixio,path="$P/pid.sock" --pid file="$P/pid.link"
t_eq paths/pid-symlink-target-untouched "$sha" "$(_sha "$P/target")"
if [ -L "$P/pid.link" ]; then t_pass paths/pid-symlink-kept; else t_fail paths/pid-symlink-kept "a refused vtpmd removed the pid path it did not write"; fi
# --daemon: the parent exits with the daemon's start-up result (here 1), not at the fork
ln -s "$P/target" "$P/pid-d.link"
timeout 5 "$VTPMD" socket --tpm2 --tpmstate dir="$P/st-pid" --server type=unixio,path="$P/pid-d.sock" \
  --daemon --pid file="$P/pid-d.link" --log file="$P/pid-d.log" </dev/null >>"$P/out" 2>&1
rc=$?
if [ "$rc" = 1 ] && grep -qF "refusing the pid file $P/pid-d.link: it is a symbolic link" "$P/pid-d.log"; then
  t_pass paths/daemon-start-failure-status
else
  t_fail paths/daemon-start-failure-status "rc=$rc (expected 1): $(_last "$P/pid-d.log")"
fi
ln -s "$P/target" "$P/st-lock/.lock"
_refused paths/lock-symlink-refused "$P/x" "refusing the lock file $P/st-lock/.lock: it is a symbolic link" \
  --tpmstate dir="$P/st-lock" --server type=unixio,path="$P/lock.sock"
t_eq paths/lock-symlink-target-untouched "$sha" "$(_sha "$P/target")"
mkfifo "$P/fifo"
_refused paths/log-fifo-refused "$P/x" "refusing the log file $P/fifo: it is not a regular file" \
  --tpmstate dir="$P/st-fifo" --server type=unixio,path="$P/fifo.sock" --log file="$P/fifo"
echo "12345678 stale" >"$P/pid-ok"
bg_start "$VTPMD" socket --tpm2 --tpmstate dir="$P/st-pid-ok" --server type=unixio,path="$P/pid-ok.sock" \
  --pid file="$P/pid-ok" --log file="$P/pid-ok.log",level=2 </dev/null >>"$P/out" 2>&1
_pid=$BG_PID
if _up "$_pid" "$P/pid-ok.sock" && _sandboxed "$_pid" "$P/pid-ok.log"; then
  t_eq paths/existing-pid-file-overwritten "$_pid" "$(cat "$P/pid-ok")"
  kill -TERM "$_pid"
  _reap "$_pid" 5
else
  t_fail paths/existing-pid-file-overwritten "vtpmd did not start: $(_last "$P/out")"
fi
# unix socket modes: 0600 by default whatever the umask; mode= exactly
for um in 000 022; do
  D=$W/umask-$um
  PRE=(bash -c "umask $um; exec \"\$0\" \"\$@\"")
  _vtpmd "$D" && t_eq "paths/umask-$um-socket-mode-600" "600 600" \
    "$(stat -c %a "$D/tpm.sock") $(stat -c %a "$D/tpm.sock.ctrl")" && _stop "paths/umask-$um" "$D"
done
D=$W/mode-660
PRE=(bash -c "umask 077; exec \"\$0\" \"\$@\"")
mkdir -p "$D/state"
bg_start "${PRE[@]}" "$VTPMD" socket --tpm2 --tpmstate dir="$D/state" \
  --server type=unixio,path="$D/tpm.sock",mode=0660 --ctrl type=unixio,path="$D/tpm.sock.ctrl",mode=0640 \
  --log file="$D/log",level=2 </dev/null >>"$D/out" 2>&1
_pid=$BG_PID
PRE=()
if _up "$_pid" "$D/tpm.sock" && _up "$_pid" "$D/tpm.sock.ctrl" && _sandboxed "$_pid" "$D/log"; then
  t_eq paths/explicit-modes-under-umask-077 "660 640" "$(stat -c %a "$D/tpm.sock") $(stat -c %a "$D/tpm.sock.ctrl")"
  _stop paths/explicit-modes "$D"
else
  t_fail paths/explicit-modes-under-umask-077 "vtpmd did not start: $(_last "$D/out")"
fi

# --- caps/
caps=$("$VTPMD" socket --print-capabilities 2>&1)
if jq -e '.type == "swtpm" and (.features | index("cmdarg-seccomp")) and (.features | index("tpm-2.0"))' <<<"$caps" >/dev/null 2>&1; then
  t_pass caps/cmdarg-seccomp
else
  t_fail caps/cmdarg-seccomp "$caps"
fi
help=$("$VTPMD" --help)
for o in seccomp:"--seccomp action=kill|log|none" runas:"-r, --runas USER" chroot:"-R, --chroot DIR"; do
  if [[ "$help" == *"${o#*:}"* ]]; then
    t_pass "caps/help-documents-${o%%:*}"
  else
    t_fail "caps/help-documents-${o%%:*}" "'${o#*:}' not in --help"
  fi
done

# --- managed/: the manager goes away and comes back; the filter must not kill vtpmd
MGRD=$BUILD/vtpmmgrd CTL=$BUILD/vtpmctl MGRC=$BUILD/tests/tools/mgrc
if ! command -v swtpm >/dev/null || [ ! -x "$MGRD" ] || [ ! -x "$CTL" ] || [ ! -x "$MGRC" ]; then
  t_skip managed "swtpm, vtpmmgrd, vtpmctl or mgrc missing"
  t_done
fi
M=$W/managed
mkdir -p "$M/host" "$M/mgr" "$M/state"
A=$M/mgr/admin.sock I=$M/mgr/inst.sock
export VTPM_ADMIN_SOCKET=$A
port=$(free_port)
bg_start swtpm socket --tpm2 --flags not-need-init,startup-clear --tpmstate dir="$M/host" \
  --server type=tcp,port="$port" --ctrl type=tcp,port=$((port + 1)) >>"$M/swtpm.log" 2>&1
sleep 0.5
_start_mgr() {
  rm -f "$A" "$I"
  bg_start "$MGRD" --tcti "swtpm:host=127.0.0.1,port=$port" --store "$M/mgr/store.db" \
    --instance-socket "$I" --admin-socket "$A" --nv-index 0x01000c03 \
    --log "file=$M/mgr/vtpmmgrd.log,level=1" </dev/null >>"$M/mgr/out" 2>&1
  _mpid=$BG_PID
  wait_for_path "$A" 100 && wait_for_path "$I" 10 && _alive "$_mpid"
}
ctlq() { OUT=$(timeout 30 "$CTL" "$@" 2>&1 </dev/null); }
if ! _start_mgr || ! ctlq host init --pcrs 0,7 || ! ctlq group create sbx --label '*:vm_r:vtpm_t' --digest-of "$VTPMD" ||
  ! ctlq vtpm create --group sbx; then
  t_fail managed/setup "$(_last "$M/mgr/out" "$M/mgr/vtpmmgrd.log") $OUT"
  t_done
fi
UUID=$(grep -oE '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}' <<<"$OUT" | head -n 1)
bg_start "$MGRC" --register-self "$A" sbx_u:vm_r:vtpm_t --exec "$VTPMD" socket --tpm2 \
  --tpmstate dir="$M/state" --server type=unixio,path="$M/tpm.sock" \
  --ctrl type=unixio,path="$M/tpm.sock.ctrl" --flags not-need-init,startup-clear \
  --manager "$I" --uuid "$UUID" --log "file=$M/vtpmd.log,level=20" </dev/null >>"$M/vtpmd.out" 2>&1
_pid=$BG_PID
if ! _up "$_pid" "$M/tpm.sock"; then
  t_fail managed/start "$(_last "$M/vtpmd.out" "$M/vtpmd.log")"
  t_done
fi
t_pass managed/start
_sandboxed "$_pid" "$M/vtpmd.log"
t_eq managed/seccomp 2 "$(_st "$_pid" Seccomp)"
_tool managed/nvdefine "$TPMC" "$M/tpm.sock" nvdefine 0x01500072 8
_tool managed/nvwrite "$TPMC" "$M/tpm.sock" nvloop 0x01500072 1
kill -KILL "$_mpid"
_reap "$_mpid"
sleep 0.5
_start_mgr || t_fail managed/manager-restart "$(_last "$M/mgr/out" "$M/mgr/vtpmmgrd.log")"
# a write after the restart: answered once vtpmd is taken back (or refused, if this build
# stops at a manager loss); either way vtpmd must not die of SIGSYS
timeout 20 "$TPMC" "$M/tpm.sock" nvloop 0x01500072 1 1 >>"$W/tools.log" 2>&1
wrc=$?
sleep 0.5
if _alive "$_pid"; then
  t_pass managed/not-killed-by-filter
  t_eq managed/write-after-manager-restart 0 "$wrc"
  kill -TERM "$_pid"
  _reap "$_pid" 10
else
  _reap "$_pid" 1
  if [ "$_rc" = 159 ]; then
    t_fail managed/not-killed-by-filter "vtpmd was killed by SIGSYS after the manager restart: $(dmesg 2>/dev/null | grep 'type=1326' | tail -n 1)"
  else
    t_pass managed/not-killed-by-filter
    echo "# vtpmd stopped after the manager loss with status $_rc (not a filter kill)"
  fi
fi
t_done
