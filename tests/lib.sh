# tests/lib.sh — helpers for integration test scripts (source it; bash only).
#
# Report cases with t_pass / t_fail / t_skip; start daemons with bg_start so they are
# stopped (by PID, only ours) when the script exits, even on failure; make scratch
# space with t_tmpdir (removed at exit). need_tool skips on a developer's machine but
# fails in CI (CI=true), where every tool must be installed.
set -u
VTPM_TOP=${VTPM_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$VTPM_TOP/$BUILD ;; esac
VTPMD=${VTPMD:-$BUILD/vtpmd}
_t_pids=() _t_failed=0
# Scratch directories live under one root made here, in the test's own shell: t_tmpdir runs
# in $( ) subshells, which cannot add to a list the exit trap would see.
_t_root=$(mktemp -d "${TMPDIR:-/tmp}/vtpm-t.XXXXXX")
# Traversable like /tmp, so a test may hand a subdirectory to another user (each t_tmpdir
# is 0700 until the test opens it up).
chmod 0755 "$_t_root"

t_pass() { echo "PASS: $1"; }
t_fail() { echo "FAIL: $1: ${2:-failed}"; _t_failed=1; }
t_skip() { echo "SKIP: $1: ${2:-skipped}"; }
# t_check NAME CMD...: pass if CMD succeeds, else fail with CMD's last output line.
t_check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then t_pass "$name"; else t_fail "$name" "$(echo "$out" | tail -n 1)"; fi
}
# t_eq NAME EXPECTED ACTUAL
t_eq() {
  if [ "$2" = "$3" ]; then t_pass "$1"; else t_fail "$1" "expected '$2', got '$3'"; fi
}

# need_tool TOOL...: returns 1 (after reporting) if a tool is missing.
need_tool() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 && continue
    if [ "${CI:-}" = true ]; then
      t_fail "need-$tool" "$tool is not installed (scripts/deps should have installed it)"
    else
      t_skip "need-$tool" "$tool is not installed on this machine (run scripts/deps as root)"
    fi
    return 1
  done
}

t_tmpdir() {
  mktemp -d "$_t_root/d.XXXXXX"
}

# bg_start CMD...: start CMD in the background, remember its PID in BG_PID.
bg_start() {
  "$@" &
  BG_PID=$!
  _t_pids+=("$BG_PID")
}
# bg_kill PID [SIG]: stop one of our background processes and reap it.
bg_kill() {
  kill -"${2:-TERM}" "$1" 2>/dev/null
  wait "$1" 2>/dev/null
  return 0
}

# wait_for_path PATH [TENTHS]: wait until PATH exists (default 5 s).
wait_for_path() {
  local i
  for ((i = 0; i < ${2:-50}; i++)); do
    [ -e "$1" ] && return 0
    sleep 0.1
  done
  return 1
}

# free_port: print a TCP port on 127.0.0.1 that is free, and whose successor is free too
# (the swtpm TCTI uses port and port+1). Ports stay below the kernel's ephemeral range
# (32768+), where the TCTI's many short client connections linger in TIME_WAIT.
free_port() {
  local p i used
  used=$(ss -Htan 2>/dev/null | awk '{print $4; print $5}' | sed 's/.*://' | sort -u)
  for ((i = 0; i < 200; i++)); do
    p=$((10000 + (RANDOM % 11000) * 2))
    if ! grep -qx -e "$p" -e "$((p + 1))" <<<"$used"; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

_t_cleanup() {
  local p d
  for p in "${_t_pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for p in "${_t_pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$_t_root"
}
trap _t_cleanup EXIT
trap 'exit 130' INT TERM

# t_done: call last; exit status reflects failures.
t_done() { exit $_t_failed; }

# state_version FILE: the newest state version in a vtpmd state file (the larger of the two
# slots' big-endian u64 at offset 24; slot 1 starts at half the file size). 0 if none.
state_version() {
  local f=$1 size half a b
  size=$(stat -c %s "$f" 2>/dev/null) || { echo 0; return; }
  half=$((size / 2))
  a=$(od -An -tx1 -j 24 -N 8 "$f" | tr -d ' \n')
  b=$(od -An -tx1 -j $((half + 24)) -N 8 "$f" | tr -d ' \n')
  a=$((16#${a:-0})) b=$((16#${b:-0}))
  [ "$a" -gt "$b" ] && echo "$a" || echo "$b"
}

# _alive PID: the process exists and is not a zombie (builtins only: no fork per poll).
_alive() {
  local l
  { read -r l <"/proc/$1/stat"; } 2>/dev/null || return 1
  l=${l##*) }
  [ -n "$l" ] && [ "${l%% *}" != Z ]
}
# _forget PID: drop a reaped PID from the list, so the exit trap never signals a reused PID.
_forget() {
  local p keep=()
  for p in "${_t_pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  _t_pids=("${keep[@]}")
}
# _reap PID [SECONDS]: wait (bounded, default 5 s) for one of our background processes to exit,
# SIGKILL it if it does not; its exit status is left in _rc (137 if it had to be killed).
_reap() {
  local end=$((SECONDS + ${2:-5} + 1))
  while _alive "$1" && [ "$SECONDS" -lt "$end" ]; do sleep 0.01; done
  _alive "$1" && kill -KILL "$1" 2>/dev/null
  wait "$1" 2>/dev/null
  _rc=$?
  _forget "$1"
}
# _sha FILE: the file's SHA-256 (empty if unreadable).
_sha() { sha256sum "$1" 2>/dev/null | cut -d' ' -f1; }

# Crash tests (kill -9 in a write loop): the counter read back after a restart must be the
# last acknowledged value or the next one (the write in flight may or may not have landed);
# lower means an answered write was lost, higher is impossible.
checked=0 lost=0 corrupt=0 landed=0 first_lost='' first_corrupt=''
# crash_check WHERE VALUE ACKED BASE: tally one value read back.
crash_check() {
  local where=$1 v=$2 a=$3
  checked=$((checked + 1))
  if [ "$v" -lt "$a" ]; then
    lost=$((lost + 1))
    [ -n "$first_lost" ] || first_lost="$where: read $v after value $a was acked (base was $4)"
  elif [ "$v" -gt $((a + 1)) ]; then
    corrupt=$((corrupt + 1))
    [ -n "$first_corrupt" ] || first_corrupt="$where: read $v, last acked $a (only $a or $((a + 1)) are possible)"
  elif [ "$v" -eq $((a + 1)) ]; then
    landed=$((landed + 1))
  fi
}
# crash_report PREFIX: the no-lost-write and no-corruption checks from the tallies.
crash_report() {
  if [ "$lost" -eq 0 ] && [ "$checked" -gt 0 ]; then
    t_pass "$1-no-lost-write ($checked checked)"
  else
    t_fail "$1-no-lost-write" "$lost of $checked checks lost an acked write; first: ${first_lost:-none checked}"
  fi
  if [ "$corrupt" -eq 0 ] && [ "$checked" -gt 0 ]; then
    t_pass "$1-no-corruption ($checked checked, in-flight write landed $landed times)"
  else
    t_fail "$1-no-corruption" "$corrupt of $checked checks read an impossible value; first: ${first_corrupt:-none checked}"
  fi
}

# _wait_tcp PID PORT: wait (5 s) until PID listens on 127.0.0.1:PORT; 1 if PID died or never did.
_wait_tcp() {
  local i
  for ((i = 0; i < 50; i++)); do
    _alive "$1" || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# start_host_tpm DIR [LOG]: a swtpm standing in for the host TPM, state in DIR (created), on
# free loopback ports. Sets HOST_PORT, HOST_TCTI, HOST_PID; 1 if it did not start.
start_host_tpm() {
  local port
  mkdir -p "$1"
  for _ in 1 2 3; do
    port=$(free_port) || return 1
    bg_start swtpm socket --tpm2 --flags not-need-init,startup-clear \
      --server type=tcp,port="$port",bindaddr=127.0.0.1 \
      --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
      --tpmstate dir="$1" >>"${2:-/dev/null}" 2>&1
    if _wait_tcp "$BG_PID" $((port + 1)) && _wait_tcp "$BG_PID" "$port"; then
      HOST_PORT=$port HOST_TCTI=swtpm:host=127.0.0.1,port=$port HOST_PID=$BG_PID
      return 0
    fi
    bg_kill "$BG_PID" KILL
  done
  return 1
}

# The project's slowtpm (../shared/tools/slowtpm: a hardware TPM's delays and NV rate limit in
# front of a swtpm); tests/tools/slowtpm is the same program, for a checkout without ../shared.
SLOWTPM=${SLOWTPM:-$VTPM_TOP/../shared/tools/slowtpm}
[ -f "$SLOWTPM" ] || SLOWTPM=$VTPM_TOP/tests/tools/slowtpm
# start_slowtpm BACKEND_PORT [SLOWTPM ARGS...]: slowtpm in front of the swtpm on BACKEND_PORT.
# Sets SLOW_PORT, SLOW_TCTI, SLOW_PID; 1 if it did not start.
start_slowtpm() {
  local backend=$1 port
  shift
  for _ in 1 2 3; do
    port=$(free_port) || return 1
    bg_start python3 "$SLOWTPM" --listen "$port" --backend "$backend" "$@"
    if _wait_tcp "$BG_PID" $((port + 1)) && _wait_tcp "$BG_PID" "$port"; then
      SLOW_PORT=$port SLOW_TCTI=swtpm:host=127.0.0.1,port=$port SLOW_PID=$BG_PID
      return 0
    fi
    bg_kill "$BG_PID" KILL
  done
  return 1
}
