#!/usr/bin/env bash
# tests/integration/tpm2_tools.sh — drive the daemon with real tpm2-tools over the swtpm TCTI.
#
# run_suite DAEMON OUTDIR starts `DAEMON socket --tpm2` on a fresh state directory with a TCP data
# channel (port P) and TCP control channel (port P+1), runs a fixed sequence of tpm2-tools
# commands (startup, getrandom, PCR extend/read, primary + child key, sign/verify also with
# openssl, NV define/write/read, evictcontrol), stops the daemon with `swtpm_ioctl -s`, restarts
# it on the same state and checks that NV and the persistent key survived and PCR 16 was reset.
# Everything deterministic is written to OUTDIR/results.txt. The suite runs against $VTPMD and,
# if installed, against the real swtpm; the two results files must be identical.
# Usage: [VTPMD=path] [BUILD=build] [KEEP_RESULTS=dir] bash tests/integration/tpm2_tools.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

TOOL_TIMEOUT=10        # seconds any single tool may take
NV_INDEX=0x01500016
NV_MISSING=0x01500099
PERSIST=0x81000005

# _run NAME CMD...: run CMD (bounded), log it; report PASS/FAIL on its exit status.
_run() {
  local name=$1 out rc
  shift
  out=$(timeout "$TOOL_TIMEOUT" "$@" 2>&1)
  rc=$?
  printf -- '--- %s: %s (rc=%d)\n%s\n' "$name" "$*" "$rc" "$out" >>"$_log"
  if [ "$rc" -eq 0 ]; then
    t_pass "$_lbl/$name"
    return 0
  fi
  t_fail "$_lbl/$name" "rc=$rc: $(printf '%s' "$out" | grep -v '^$' | tail -n 1)"
  return 1
}
# _chk NAME EXPECTED ACTUAL: t_eq with the suite's label.
_chk() { t_eq "$_lbl/$1" "$2" "$3"; }
# _res KEY VALUE: append one deterministic result line.
_res() { printf '%s: %s\n' "$1" "$2" >>"$_res"; }
# _hex FILE: lowercase hex of a file on one line.
_hex() { xxd -p "$1" | tr -d '\n'; }
# _flush: drop transient objects (no resource manager: the TPM has only 3 object slots).
_flush() { timeout "$TOOL_TIMEOUT" tpm2_flushcontext -t >>"$_log" 2>&1; }
# _esys_code CMD...: run a command expected to fail; print "rc=N Esys_X(0xCODE)".
_esys_code() {
  local out rc
  out=$(timeout "$TOOL_TIMEOUT" "$@" 2>&1)
  rc=$?
  printf -- '--- expected failure: %s (rc=%d)\n%s\n' "$*" "$rc" "$out" >>"$_log"
  echo "rc=$rc $(printf '%s' "$out" | grep -o 'Esys_[A-Za-z_]*(0x[0-9A-Fa-f]*)' | tail -n 1)"
}
# _raw PORT HEX: send one raw TPM command on the data port, print the first 10 response bytes.
_raw() {
  timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "%s" "$2" | xxd -r -p >&3
    head -c 10 <&3 | xxd -p' _ "$1" "$2" 2>>"$_log"
}
# _start DAEMON STATEDIR N: start the daemon on a fresh port pair; sets _port, _pid, TCTI.
_start() {
  _port=$(free_port) || { t_fail "$_lbl/free-port" "no free port pair"; return 1; }
  bg_start "$1" socket --tpm2 --tpmstate dir="$2" \
    --server type=tcp,port="$_port" --ctrl type=tcp,port=$((_port + 1)) \
    --flags not-need-init --log file="$_out/daemon.log" >>"$_out/daemon.out" 2>&1
  _pid=$BG_PID
  export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$_port"
  if _wait_tcp "$_pid" $((_port + 1)) && _wait_tcp "$_pid" "$_port"; then
    t_pass "$_lbl/daemon-start-$3"
    return 0
  fi
  t_fail "$_lbl/daemon-start-$3" "$(_alive "$_pid" && echo "daemon did not listen on $_port/$((_port + 1)) within 5 s" || echo "daemon exited"): $(cat "$_out/daemon.out" "$_out/daemon.log" 2>/dev/null | tail -n 1)"
  bg_kill "$_pid" KILL
  return 1
}
# _stop: swtpm_ioctl -s, then the process must exit by itself within 5 s.
_stop() {
  local i rc
  _run "ioctl-shutdown-$1" swtpm_ioctl --tcp 127.0.0.1:$((_port + 1)) -s
  for ((i = 0; i < 50; i++)); do
    _alive "$_pid" || break
    sleep 0.1
  done
  if _alive "$_pid"; then
    t_fail "$_lbl/daemon-exits-$1" "still running 5 s after swtpm_ioctl -s"
    bg_kill "$_pid" KILL
    return 1
  fi
  wait "$_pid"
  rc=$?
  _chk "daemon-exit-status-$1" 0 "$rc"
  _res "daemon-exit-status-$1" "$rc"
}

# run_suite DAEMON OUTDIR
run_suite() {
  local daemon=$1 w v a b pcr_expect name1 name2
  _out=$2 _lbl=$(basename "$2")
  mkdir -p "$_out/state"
  _log=$_out/tools.log _res=$_out/results.txt
  : >"$_res"
  w=$_out/work
  mkdir -p "$w"

  _start "$daemon" "$_out/state" 1 || return 1
  _run startup tpm2_startup -c
  v=$(_raw "$_port" 80010000000c000001440000) # TPM2_Startup(CLEAR) again -> TPM_RC_INITIALIZE
  _chk startup-again-initialize 80010000000a00000100 "$v"
  _res startup-again "$v"

  # getrandom: lengths and two different draws
  for n in 8 32; do
    _run getrandom-$n tpm2_getrandom -o "$w/rand$n" "$n"
    v=$(stat -c %s "$w/rand$n" 2>/dev/null)
    _chk getrandom-$n-length "$n" "$v"
    _res getrandom-$n-length "$v"
  done
  _run getrandom-32-again tpm2_getrandom -o "$w/rand32b" 32
  if [ -s "$w/rand32" ] && [ -s "$w/rand32b" ] && ! cmp -s "$w/rand32" "$w/rand32b"; then
    t_pass "$_lbl/getrandom-draws-differ"
    _res getrandom-draws-differ yes
  else
    t_fail "$_lbl/getrandom-draws-differ" "two 32-byte draws are equal or missing"
    _res getrandom-draws-differ no
  fi

  # PCR 16: zero after startup, extend with a known digest, compare with the host computation
  _run pcrread-16-initial tpm2_pcrread sha256:16 -o "$w/pcr16.0"
  _res pcr16-initial "$(_hex "$w/pcr16.0")"
  _chk pcr16-initial-zero "$(printf '%064d' 0)" "$(_hex "$w/pcr16.0")"
  v=$(printf 'vtpmd pcr16 test' | openssl dgst -sha256 -r | cut -d' ' -f1)
  _run pcrextend-16 tpm2_pcrextend "16:sha256=$v"
  _run pcrread-16 tpm2_pcrread sha256:16 -o "$w/pcr16.1"
  pcr_expect=$( (printf '%064d' 0; echo "$v") | xxd -r -p | openssl dgst -sha256 -r | cut -d' ' -f1)
  _chk pcr16-extended "$pcr_expect" "$(_hex "$w/pcr16.1")"
  _res pcr16-extended "$(_hex "$w/pcr16.1")"

  # keys: primary (ECC P-256), child signing key, load, sign, verify (TPM and openssl)
  _run createprimary tpm2_createprimary -C o -g sha256 -G ecc256 -c "$w/primary.ctx"
  _flush
  _run create-child tpm2_create -C "$w/primary.ctx" -g sha256 -G ecc256:ecdsa-sha256 \
    -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign' -u "$w/key.pub" -r "$w/key.priv"
  _flush
  _run load-child tpm2_load -C "$w/primary.ctx" -u "$w/key.pub" -r "$w/key.priv" -c "$w/key.ctx"
  _flush
  printf 'message signed by the vTPM\n' >"$w/msg"
  printf 'message signed by the vTPM?\n' >"$w/msg.bad"
  _run sign tpm2_sign -c "$w/key.ctx" -g sha256 -o "$w/sig.tss" "$w/msg"
  _flush
  _run sign-plain tpm2_sign -c "$w/key.ctx" -g sha256 -f plain -o "$w/sig.der" "$w/msg"
  _flush
  _run verifysignature tpm2_verifysignature -c "$w/key.ctx" -g sha256 -m "$w/msg" -s "$w/sig.tss"
  _res verifysignature-good "rc=$?"
  _flush
  timeout "$TOOL_TIMEOUT" tpm2_verifysignature -c "$w/key.ctx" -g sha256 -m "$w/msg.bad" -s "$w/sig.tss" >>"$_log" 2>&1
  v=$?
  _flush
  _chk verifysignature-rejects-tampered 1 "$([ "$v" -ne 0 ] && echo 1 || echo 0)"
  _res verifysignature-tampered-fails "$([ "$v" -ne 0 ] && echo yes || echo no)"
  _run readpublic-pem tpm2_readpublic -c "$w/key.ctx" -f pem -o "$w/key.pem"
  _flush
  _run openssl-verify openssl dgst -sha256 -verify "$w/key.pem" -signature "$w/sig.der" "$w/msg"
  _res openssl-verify-good "rc=$?"
  openssl dgst -sha256 -verify "$w/key.pem" -signature "$w/sig.der" "$w/msg.bad" >>"$_log" 2>&1
  v=$?
  _chk openssl-verify-rejects-tampered 1 "$([ "$v" -ne 0 ] && echo 1 || echo 0)"
  _res openssl-verify-tampered-fails "$([ "$v" -ne 0 ] && echo yes || echo no)"
  v=$(openssl pkey -pubin -in "$w/key.pem" -noout -text 2>/dev/null | grep -o 'prime256v1\|P-256' | head -n 1)
  _res pem-curve "$v"

  # NV: define, write, read back, public area (its name is deterministic)
  printf 'vtpmd NV test data: 0123456789ab' >"$w/nv.in" # 32 bytes
  _run nvdefine tpm2_nvdefine "$NV_INDEX" -C o -s 32 -a 'ownerread|ownerwrite|authread|authwrite'
  _run nvwrite tpm2_nvwrite "$NV_INDEX" -C o -i "$w/nv.in"
  _run nvread tpm2_nvread "$NV_INDEX" -C o -s 32 -o "$w/nv.out"
  _chk nv-content "$(_hex "$w/nv.in")" "$(_hex "$w/nv.out")"
  _res nv-content "$(_hex "$w/nv.out")"
  _run nvreadpublic tpm2_nvreadpublic "$NV_INDEX"
  _res nvreadpublic "$(timeout "$TOOL_TIMEOUT" tpm2_nvreadpublic "$NV_INDEX" 2>>"$_log" | tr '\n' ' ')"

  # intentionally failing commands: undefined NV index, missing persistent handle, NV index
  # defined twice, PCR index out of range
  v=$(_esys_code tpm2_nvread "$NV_MISSING" -C o -s 8)
  _chk nvread-undefined-fails "rc=1 Esys_TR_FromTPMPublic(0x18B)" "$v"
  _res nvread-undefined "$v"
  v=$(_esys_code tpm2_readpublic -c $PERSIST)
  _chk readpublic-missing-persistent-fails "rc=1 Esys_TR_FromTPMPublic(0x18B)" "$v"
  _res readpublic-missing-persistent "$v"

  v=$(_esys_code tpm2_nvdefine "$NV_INDEX" -C o -s 32 -a 'ownerread|ownerwrite|authread|authwrite')
  _chk nvdefine-again-fails "rc=1 Esys_NV_DefineSpace(0x14C)" "$v"
  _res nvdefine-again "$v"
  v=$(_esys_code tpm2_pcrextend "30:sha256=$(printf '%064d' 0)")
  _chk pcrextend-30-fails "rc=1 Esys_PCR_Extend(0x184)" "$v"
  _res pcrextend-30 "$v"

  # persistent handle
  _run evictcontrol tpm2_evictcontrol -C o -c "$w/primary.ctx" $PERSIST
  _flush
  v=$(timeout "$TOOL_TIMEOUT" tpm2_getcap handles-persistent 2>>"$_log" | tr '\n' ' ')
  _chk persistent-listed "- $PERSIST " "$v"
  _res handles-persistent-1 "$v"
  _run readpublic-persistent tpm2_readpublic -c $PERSIST -n "$w/name1"
  name1=$(_hex "$w/name1")

  # graceful stop, restart on the same state, Startup(CLEAR)
  _stop 1 || return 1
  _start "$daemon" "$_out/state" 2 || return 1
  _run startup-after-restart tpm2_startup -c
  _run nvread-after-restart tpm2_nvread "$NV_INDEX" -C o -s 32 -o "$w/nv.out2"
  _chk nv-content-after-restart "$(_hex "$w/nv.in")" "$(_hex "$w/nv.out2")"
  _res nv-content-after-restart "$(_hex "$w/nv.out2")"
  v=$(timeout "$TOOL_TIMEOUT" tpm2_getcap handles-persistent 2>>"$_log" | tr '\n' ' ')
  _chk persistent-listed-after-restart "- $PERSIST " "$v"
  _res handles-persistent-2 "$v"
  _run readpublic-persistent-after-restart tpm2_readpublic -c $PERSIST -n "$w/name2"
  name2=$(_hex "$w/name2")
  if [ -n "$name1" ] && [ "$name1" = "$name2" ]; then a=yes; else a=no; fi
  _chk persistent-name-unchanged yes "$a"
  _res persistent-name-unchanged "$a"
  _run pcrread-16-after-restart tpm2_pcrread sha256:16 -o "$w/pcr16.2"
  _chk pcr16-reset-after-restart "$(printf '%064d' 0)" "$(_hex "$w/pcr16.2")"
  _res pcr16-after-restart "$(_hex "$w/pcr16.2")"
  v=$(_esys_code tpm2_nvread "$NV_MISSING" -C o -s 8)
  _res nvread-undefined-after-restart "$v"
  b=$(timeout "$TOOL_TIMEOUT" tpm2_getcap handles-transient 2>>"$_log" | tr '\n' ' ')
  _res handles-transient-after-restart "[$b]"
  _stop 2
}

need_tool tpm2_startup tpm2_getrandom tpm2_pcrread swtpm_ioctl openssl xxd timeout || t_done
if [ ! -x "$VTPMD" ]; then
  t_fail vtpmd-binary "$VTPMD is not an executable (build it first)"
  t_done
fi

work=$(t_tmpdir)
run_suite "$VTPMD" "$work/vtpmd"
if need_tool swtpm; then
  run_suite "$(command -v swtpm)" "$work/swtpm"
  if ! cmp -s "$work/swtpm/results.txt" "$work/vtpmd/results.txt"; then
    echo "# results differ (< swtpm, > vtpmd):"
    diff "$work/swtpm/results.txt" "$work/vtpmd/results.txt" | sed 's/^/#   /'
  fi
  t_eq results-identical "$(sha256sum <"$work/swtpm/results.txt")" "$(sha256sum <"$work/vtpmd/results.txt")"
fi
# KEEP_RESULTS=DIR keeps results, tool logs and daemon logs for debugging.
[ -n "${KEEP_RESULTS:-}" ] && mkdir -p "$KEEP_RESULTS" && cp -r "$work"/. "$KEEP_RESULTS"/
t_done
