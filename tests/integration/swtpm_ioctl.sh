#!/usr/bin/env bash
# tests/integration/swtpm_ioctl.sh — drive the daemon's control channel with the real swtpm_ioctl.
#
# ops_suite runs every swtpm_ioctl operation against `$VTPMD socket --tpm2` once with a Unix
# control socket (data on a Unix socket too, since the swtpm TCTI wants `path` and `path.ctrl`)
# and once with a TCP control channel (data on TCP port P, control on P+1): capabilities, init,
# established flag, localities, hashing (checked through PCR 17), cancel, store volatile, config,
# info, buffer size, state blob save, stop, init again, shutdown. load_suite then feeds the saved
# blobs into a daemon on a fresh state dir (--stop, --load, -i) and checks that the TPM resumed
# with the NV index and PCR 17 of the source. If swtpm is installed the blobs also cross over:
# swtpm -> vtpmd and vtpmd -> swtpm (the state blob envelope must be compatible).
# Usage: [VTPMD=path] [BUILD=build] bash tests/integration/swtpm_ioctl.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

TO=10                       # seconds any single tool may take
NV_INDEX=0x01500017
HASH_DATA="vtpmd control channel hash test"
QEMU_CAPS=0x348F            # INIT SHUTDOWN GET_TPMESTABLISHED SET_LOCALITY RESET_TPMESTABLISHED
                            # STOP SET_DATAFD SET_BUFFERSIZE: what QEMU's tpm_emulator requires
_lbl=                       # label of the current suite, prefixed to every case name
ZERO32=$(printf '%064d' 0)
FF32=$(printf 'f%.0s' {1..64})

_log() { printf -- '--- %s: %s (rc=%d)\n%s\n' "$1" "$2" "$3" "$4" >>"$_logf"; }
_oneline() { printf '%s' "$1" | grep -v '^$' | tr '\n' ' ' | cut -c1-300; }
_hex() { xxd -p "$1" 2>/dev/null | tr -d '\n'; }

# _ioc NAME ARGS...: `swtpm_ioctl <ctrl> ARGS` must succeed; its output is left in _o.
_ioc() {
  local name=$1 rc
  shift
  _o=$(timeout "$TO" swtpm_ioctl "${_ctrl[@]}" "$@" 2>&1)
  rc=$?
  _log "$name" "swtpm_ioctl ${_ctrl[*]} $*" "$rc" "$_o"
  if [ "$rc" -eq 0 ]; then
    t_pass "$_lbl/$name"
    return 0
  fi
  t_fail "$_lbl/$name" "swtpm_ioctl $* -> rc=$rc: $(_oneline "$_o")"
  return 1
}
# _ioc_err NAME CODE ARGS...: swtpm_ioctl must fail (not time out); with CODE, it must report
# "TPM result from PTM_...: CODE".
_ioc_err() {
  local name=$1 code=$2 rc
  shift 2
  _o=$(timeout "$TO" swtpm_ioctl "${_ctrl[@]}" "$@" 2>&1)
  rc=$?
  _log "$name" "swtpm_ioctl ${_ctrl[*]} $* (expected to fail ${code:-})" "$rc" "$_o"
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] &&
    { [ -z "$code" ] || printf '%s\n' "$_o" | grep -qi "^TPM result from PTM_[A-Z_]*: $code\$"; }; then
    t_pass "$_lbl/$name"
    return 0
  fi
  t_fail "$_lbl/$name" "swtpm_ioctl $* should fail${code:+ with $code}, rc=$rc: $(_oneline "$_o")"
  return 1
}
# _tool NAME CMD...: a tpm2-tools command must succeed.
_tool() {
  local name=$1 out rc
  shift
  out=$(timeout "$TO" "$@" 2>&1)
  rc=$?
  _log "$name" "$*" "$rc" "$out"
  if [ "$rc" -eq 0 ]; then
    t_pass "$_lbl/$name"
    return 0
  fi
  t_fail "$_lbl/$name" "$* -> rc=$rc: $(printf '%s' "$out" | grep -v '^$' | tail -n 1)"
  return 1
}
# _tool_err NAME CODE CMD...: a tpm2-tools command must fail with TPM response code CODE.
_tool_err() {
  local name=$1 code=$2 out rc
  shift 2
  out=$(timeout "$TO" "$@" 2>&1)
  rc=$?
  _log "$name" "$* (expected to fail $code)" "$rc" "$out"
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && printf '%s' "$out" | grep -qi "($code)"; then
    t_pass "$_lbl/$name"
    return 0
  fi
  t_fail "$_lbl/$name" "$* should fail with $code, rc=$rc: $(printf '%s' "$out" | grep -v '^$' | tail -n 1)"
  return 1
}
# _pcr17: PCR 17 (sha256) as lowercase hex, empty on failure.
_pcr17() {
  rm -f "$_w/pcr17"
  timeout "$TO" tpm2_pcrread sha256:17 -o "$_w/pcr17" >>"$_logf" 2>&1
  _hex "$_w/pcr17"
}
# _raw_tcp PORT HEX: send one raw TPM command on a TCP data port, print the 10-byte response.
_raw_tcp() {
  timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "%s" "$2" | xxd -r -p >&3
    head -c 10 <&3 | xxd -p' _ "$1" "$2" 2>>"$_logf"
}
_tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# _start DAEMON MODE DIR: start DAEMON with state DIR/state, control over MODE (unix|tcp).
# Sets _pid, _ctrl (swtpm_ioctl transport args), _port (tcp), _sock (unix), TPM2TOOLS_TCTI.
_start() {
  local daemon=$1 mode=$2 dir=$3 i ok=0
  mkdir -p "$dir/state"
  _st=$dir/state _w=$dir _logf=$dir/tools.log
  if [ "$mode" = unix ]; then
    _sock=$dir/tpm.sock
    bg_start "$daemon" socket --tpm2 --tpmstate dir="$_st" \
      --server type=unixio,path="$_sock" --ctrl type=unixio,path="$_sock.ctrl" \
      --log file="$dir/daemon.log" >>"$dir/daemon.out" 2>&1
    _ctrl=(--unix "$_sock.ctrl")
    export TPM2TOOLS_TCTI="swtpm:path=$_sock"
  else
    _port=$(free_port) || { t_fail "$_lbl/free-port" "no free port pair"; return 1; }
    bg_start "$daemon" socket --tpm2 --tpmstate dir="$_st" \
      --server type=tcp,port="$_port" --ctrl type=tcp,port=$((_port + 1)) \
      --log file="$dir/daemon.log" >>"$dir/daemon.out" 2>&1
    _ctrl=(--tcp "127.0.0.1:$((_port + 1))")
    export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$_port"
  fi
  _pid=$BG_PID
  for ((i = 0; i < 50; i++)); do
    _alive "$_pid" || break
    if [ "$mode" = unix ]; then
      [ -S "$_sock" ] && [ -S "$_sock.ctrl" ] && ok=1
    else
      _tcp_open $((_port + 1)) && _tcp_open "$_port" && ok=1
    fi
    [ $ok = 1 ] && break
    sleep 0.1
  done
  if [ $ok = 1 ]; then
    t_pass "$_lbl/daemon-start"
    return 0
  fi
  t_fail "$_lbl/daemon-start" "$(_alive "$_pid" && echo "no $mode sockets after 5 s" || echo "daemon exited"): $(cat "$dir/daemon.out" "$dir/daemon.log" 2>/dev/null | tail -n 1)"
  bg_kill "$_pid" KILL
  return 1
}
# _shutdown MODE: swtpm_ioctl -s; the process must exit within 2 s with status 0 and its
# sockets must be gone (swtpm 0.7.1 unlinks both Unix socket files).
_shutdown() {
  local mode=$1 i rc left
  _ioc shutdown -s
  for ((i = 0; i < 20; i++)); do
    _alive "$_pid" || break
    sleep 0.1
  done
  if _alive "$_pid"; then
    t_fail "$_lbl/exits-after-shutdown" "still running 2 s after swtpm_ioctl -s"
    bg_kill "$_pid" KILL
    return 1
  fi
  wait "$_pid"
  rc=$?
  t_eq "$_lbl/exit-status-after-shutdown" 0 "$rc"
  if [ "$mode" = unix ]; then
    left=
    for i in "$_sock" "$_sock.ctrl"; do [ -e "$i" ] && left+="$(basename "$i") "; done
    echo "# $_lbl: socket files left after -s: [${left}]"
    t_eq "$_lbl/socket-files-removed-after-shutdown" "" "$left"
  else
    if _tcp_open $((_port + 1)) || _tcp_open "$_port"; then left=listening; else left=closed; fi
    t_eq "$_lbl/tcp-ports-closed-after-shutdown" closed "$left"
  fi
}
# _envelope NAME FILE: the blob has swtpm's envelope (version 2, min 1, hdrsize 10, flags
# MIGRATION_DATA, totlen = file size) and starts with the MIGRATION_DATA TLV (tag 4).
_envelope() {
  local h size tot
  h=$(head -c 12 "$2" | xxd -p)
  size=$(stat -c %s "$2" 2>/dev/null || echo 0)
  tot=$((16#${h:12:8}))
  if [ "${h:0:12}" = 0201000a0004 ] && [ "$tot" = "$size" ] && [ "${h:20:4}" = 0004 ]; then
    t_pass "$_lbl/$1"
  else
    t_fail "$_lbl/$1" "header $h, file size $size"
  fi
}
# _bufsize FIELD: a number from the output of `swtpm_ioctl -b` (buffersize|minimum|maximum).
_bufsize() { printf '%s\n' "$_o" | awk -F: -v f="$1" '$1 ~ f {print $2 + 0}'; }

# ops_suite DAEMON MODE DIR: all control operations; leaves blobs in DIR/blobs.
ops_suite() {
  local daemon=$1 mode=$2 dir=$3 caps l f v cur min max expect
  _start "$daemon" "$mode" "$dir" || return 1
  mkdir -p "$dir/blobs"

  _ioc get-capability -c
  echo "# $_lbl: swtpm_ioctl -c: $_o"
  caps=$(printf '%s' "$_o" | grep -o '0x[0-9a-fA-F]*' | head -n 1)
  t_eq "$_lbl/capability-has-qemu-bits" "$(printf '0x%x' $((QEMU_CAPS)))" \
    "$(printf '0x%x' $((${caps:-0} & QEMU_CAPS)))"

  # before CMD_INIT: control commands that need a running TPM and TPM commands fail
  _ioc_err established-before-init 0xa -e
  _tool_err startup-before-init 0x101 tpm2_startup -c
  _ioc init -i
  _tool startup tpm2_startup -c

  # established flag, localities, _TPM_Hash_Start/Data/End into PCR 17
  _ioc get-established -e
  t_eq "$_lbl/established-initially-0" "tpmEstablished is 0" "$_o"
  v=$(_pcr17)
  t_eq "$_lbl/pcr17-initial-all-ff" "$FF32" "$v"
  for l in 0 1 2 3 4; do _ioc "set-locality-$l" -l "$l"; done
  _ioc_err set-locality-5-rejected "" -l 5
  _ioc set-locality-0-again -l 0
  _ioc hash -h "$HASH_DATA"
  expect=$( (echo "$ZERO32"; printf '%s' "$HASH_DATA" | openssl dgst -sha256 -r | cut -d' ' -f1) |
    xxd -r -p | openssl dgst -sha256 -r | cut -d' ' -f1)
  v=$(_pcr17)
  t_eq "$_lbl/pcr17-after-hash" "$expect" "$v"
  _ioc get-established-after-hash -e
  t_eq "$_lbl/established-after-hash-1" "tpmEstablished is 1" "$_o"
  _ioc_err reset-established-locality-0-rejected 0x3d -r 0
  _ioc reset-established-locality-3 -r 3
  _ioc get-established-after-reset -e
  t_eq "$_lbl/established-after-reset-0" "tpmEstablished is 0" "$_o"
  _ioc cancel -C

  # store volatile, config, info, buffer size
  local ver_before ver_after
  ver_before=$(state_version "$_st/vtpm2.state")
  _ioc store-volatile -v
  if [ -e "$_st/vtpm2.state" ]; then
    # vtpmd keeps volatile state inside its one state file: a new version must be committed.
    ver_after=$(state_version "$_st/vtpm2.state")
    if [ "$ver_after" -gt "$ver_before" ]; then
      t_pass "$_lbl/volatilestate-stored"
    else
      t_fail "$_lbl/volatilestate-stored" "state version $ver_before -> $ver_after"
    fi
  else
    v=$(stat -c %s "$_st/tpm2-00.volatilestate" 2>/dev/null || echo missing)
    if [ "$v" != missing ] && [ "$v" -gt 0 ]; then
      t_pass "$_lbl/volatilestate-stored"
    else
      t_fail "$_lbl/volatilestate-stored" "$_st/tpm2-00.volatilestate: $v"
    fi
  fi
  _ioc get-config -g
  t_eq "$_lbl/config-flags-no-keys" "ptm configuration flags: 0x0" "$_o"
  for f in 1 2 3; do
    _ioc "info-$f" --info "$f"
    echo "# $_lbl: swtpm_ioctl --info $f: $_o"
    case $f in
    1) v='.TPMSpecification.family == "2.0" and (has("TPMAttributes") | not)' ;;
    2) v='(.TPMAttributes | has("manufacturer") and has("version") and has("model")) and (has("TPMSpecification") | not)' ;;
    3) v='.TPMSpecification.family == "2.0" and (.TPMAttributes | has("manufacturer"))' ;;
    esac
    if printf '%s' "$_o" | jq -e "$v" >/dev/null 2>&1; then
      t_pass "$_lbl/info-$f-json"
    else
      t_fail "$_lbl/info-$f-json" "not the expected JSON: $(_oneline "$_o")"
    fi
  done
  _ioc buffersize-query -b 0
  cur=$(_bufsize buffersize) min=$(_bufsize minimum) max=$(_bufsize maximum)
  echo "# $_lbl: buffer size current=$cur min=$min max=$max"
  t_eq "$_lbl/buffersize-4096" 4096 "$cur"
  t_eq "$_lbl/buffersize-max-4096" 4096 "$max"
  if [ -n "$min" ] && [ "$min" -gt 0 ] && [ "$min" -le "$cur" ]; then
    t_pass "$_lbl/buffersize-min-sane"
  else
    t_fail "$_lbl/buffersize-min-sane" "min=$min cur=$cur"
  fi
  _ioc_err buffersize-set-while-running 0xa -b 3000
  _ioc_err load-while-running 0xa --load permanent /dev/null

  # some TPM work, then save the three blobs
  printf '%-32.32s' "NV written before --save, $mode" >"$dir/nv.in"
  _tool nvdefine tpm2_nvdefine $NV_INDEX -C o -s 32 -a 'ownerread|ownerwrite|authread|authwrite'
  _tool nvwrite tpm2_nvwrite $NV_INDEX -C o -i "$dir/nv.in"
  _tool nvread tpm2_nvread $NV_INDEX -C o -s 32 -o "$dir/nv.out"
  t_eq "$_lbl/nv-content" "$(_hex "$dir/nv.in")" "$(_hex "$dir/nv.out")"
  _ioc save-permanent --save permanent "$dir/blobs/permanent"
  _envelope permanent-blob-envelope "$dir/blobs/permanent"
  _ioc save-volatile --save volatile "$dir/blobs/volatile"
  _envelope volatile-blob-envelope "$dir/blobs/volatile"
  v=$([ -e "$_st/tpm2-00.volatilestate" ] && echo present || echo deleted)
  t_eq "$_lbl/volatilestate-file-deleted-by-save-volatile" deleted "$v"
  _ioc save-savestate --save savestate "$dir/blobs/savestate"
  echo "# $_lbl: savestate blob: $(stat -c %s "$dir/blobs/savestate" 2>/dev/null) bytes"
  echo "$expect" >"$dir/blobs/pcr17"
  cp "$dir/nv.in" "$dir/blobs/nv"

  # stopped TPM: TPM commands and running-only control commands fail; buffer size can change
  _ioc stop --stop
  _tool_err getrandom-while-stopped 0x101 tpm2_getrandom 8
  _ioc_err established-while-stopped 0xa -e
  _ioc_err store-volatile-while-stopped 0xa -v
  _ioc_err save-while-stopped 0xa --save permanent "$dir/x.blob"
  _ioc get-capability-while-stopped -c
  _ioc buffersize-set-while-stopped -b 3000
  t_eq "$_lbl/buffersize-set-3000" 3000 "$(_bufsize buffersize)"
  _ioc buffersize-query-while-stopped -b 0
  t_eq "$_lbl/buffersize-now-3000" 3000 "$(_bufsize buffersize)"
  _ioc buffersize-restore-4096 -b 4096
  _ioc init-after-stop -i
  _tool startup-after-stop tpm2_startup -c
  _tool nvread-after-stop tpm2_nvread $NV_INDEX -C o -s 32 -o "$dir/nv.out2"
  t_eq "$_lbl/nv-content-after-stop" "$(_hex "$dir/nv.in")" "$(_hex "$dir/nv.out2")"
  _tool getrandom-after-stop tpm2_getrandom -o "$dir/rand" 8
  t_eq "$_lbl/getrandom-after-stop-length" 8 "$(stat -c %s "$dir/rand" 2>/dev/null)"
  _shutdown "$mode"
}

# load_suite DAEMON BLOBDIR DIR: fresh state, --stop, --load the blobs, -i: the TPM must have
# resumed (no Startup needed: TPM_RC_INITIALIZE) with the source's NV index and PCR 17.
load_suite() {
  local daemon=$1 blobs=$2 dir=$3 v
  if [ ! -s "$blobs/permanent" ] || [ ! -s "$blobs/volatile" ] || [ ! -s "$blobs/pcr17" ]; then
    t_fail "$_lbl/source-blobs" "the source suite saved no blobs in $blobs"
    return 1
  fi
  _start "$daemon" tcp "$dir" || return 1
  _ioc stop --stop
  _ioc load-permanent --load permanent "$blobs/permanent"
  _ioc load-volatile --load volatile "$blobs/volatile"
  _ioc load-savestate --load savestate "$blobs/savestate"
  _ioc init -i
  _tool nvread-without-startup tpm2_nvread $NV_INDEX -C o -s 32 -o "$dir/nv.out"
  t_eq "$_lbl/nv-content" "$(_hex "$blobs/nv")" "$(_hex "$dir/nv.out")"
  t_eq "$_lbl/pcr17-restored" "$(cat "$blobs/pcr17")" "$(_pcr17)"
  v=$(_raw_tcp "$_port" 80010000000c000001440000) # TPM2_Startup(CLEAR)
  t_eq "$_lbl/startup-returns-initialize" 80010000000a00000100 "$v"
  _ioc get-established -e
  t_eq "$_lbl/established-restored-0" "tpmEstablished is 0" "$_o"
  _shutdown tcp
}

need_tool swtpm_ioctl tpm2_startup tpm2_pcrread tpm2_nvread openssl xxd jq timeout || t_done
if [ ! -x "$VTPMD" ]; then
  t_fail vtpmd-binary "$VTPMD is not an executable (build it first)"
  t_done
fi
work=$(t_tmpdir)

_lbl=unix ops_suite "$VTPMD" unix "$work/unix"
_lbl=tcp ops_suite "$VTPMD" tcp "$work/tcp"
_lbl=load-vtpmd-into-vtpmd load_suite "$VTPMD" "$work/unix/blobs" "$work/load-self"
if need_tool swtpm; then
  sw=$(command -v swtpm)
  _lbl=swtpm-tcp ops_suite "$sw" tcp "$work/swtpm"
  _lbl=load-swtpm-into-vtpmd load_suite "$VTPMD" "$work/swtpm/blobs" "$work/load-sw-vt"
  _lbl=load-vtpmd-into-swtpm load_suite "$sw" "$work/tcp/blobs" "$work/load-vt-sw"
fi
# KEEP_RESULTS=DIR keeps tool and daemon logs and blobs for debugging.
[ -n "${KEEP_RESULTS:-}" ] && mkdir -p "$KEEP_RESULTS" && cp -r "$work"/. "$KEEP_RESULTS"/
t_done
