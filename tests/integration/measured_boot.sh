#!/usr/bin/env bash
# tests/integration/measured_boot.sh — vtpmd --measure-kernel/--measure-initrd/--measure-append
# and --eventlog, driven as QEMU and the guest firmware drive it: CMD_INIT (swtpm_ioctl -i),
# then TPM2_Startup(CLEAR) (tpm2_startup -c).
#
# pcrs/*      after Startup, PCR 4 = H(0 || H(kernel)) and PCR 5 = H(H(0 || H(initrd)) ||
#             H(cmdline)) in every allocated bank, computed here with Python's hashlib
# log/*       tpm2_eventlog parses the event log; its replay equals the PCRs read
# reset/*     a guest reset (CMD_INIT + Startup(CLEAR)) measures again: the same values, not
#             extended twice; a resume (Shutdown(STATE), CMD_INIT, Startup(STATE)) keeps them
# banks/*     after tpm2_pcrallocate (sha256 only) and a reset, only that bank is measured and
#             the event log is rewritten with one bank
# errors/*    an unreadable kernel stops vtpmd at start; --eventlog without --measure-kernel
#             is refused; without --measure-* PCR 4 stays zero
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

need_tool swtpm_ioctl tpm2_startup tpm2_pcrread tpm2_eventlog tpm2_pcrallocate tpm2_shutdown \
  python3 || t_done

W=$(t_tmpdir)
head -c 3000000 /dev/urandom >"$W/kernel"
head -c 1000000 /dev/urandom >"$W/initrd"
CMDLINE='console=ttyS0 root=/dev/vda rw quiet, with a comma'

# _expected BANK: "PCR4 PCR5" (lowercase hex) for the files above.
_expected() {
  python3 - "$1" "$W/kernel" "$W/initrd" "$CMDLINE" <<'PY'
import hashlib, sys
alg, k, i, c = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
H = lambda b: hashlib.new(alg, b).digest()
z = bytes(hashlib.new(alg).digest_size)
p4 = H(z + H(open(k, 'rb').read()))
p5 = H(H(z + H(open(i, 'rb').read())) + H(c.encode()))
print(p4.hex(), p5.hex())
PY
}
# _pcrs BANK: "PCR4 PCR5" read from the vTPM.
_pcrs() {
  timeout 30 tpm2_pcrread "$1:4,5" 2>/dev/null | awk '/^ +[45] *:/ {print tolower($3)}' | sed 's/^0x//' |
    tr '\n' ' ' | sed 's/ $//'
}
# _replay BANK: "PCR4 PCR5" from tpm2_eventlog's replay of the log.
_replay() {
  tpm2_eventlog "$W/ev.bin" 2>/dev/null | awk -v b="  $1:" '
    /^pcrs:/ {in_pcrs = 1; next}
    in_pcrs && $0 == b {in_bank = 1; next}
    in_pcrs && /^  [a-z]/ {in_bank = 0}
    in_bank && $1 ~ /^[45]$/ {print tolower($3)}' | sed 's/^0x//' | tr '\n' ' ' | sed 's/ $//'
}
# _banks: the allocated banks (those with PCRs listed), one line.
_banks() {
  tpm2_pcrread 2>/dev/null | awk '/^  [a-z0-9]+:$/ {sub(":", "", $1); bank = $1; next}
    /^ +[0-9]+ *:/ && bank != "" {print bank; bank = ""}' | tr '\n' ' '
}

_start() { # _start NAME [extra vtpmd options...]
  local name=$1
  shift
  P=$(free_port) || { t_fail "$name/free-port" "no free port pair"; return 1; }
  bg_start "$VTPMD" socket --tpm2 --tpmstate dir="$W/state" \
    --server type=tcp,port="$P" --ctrl type=tcp,port=$((P + 1)) \
    --log file="$W/vtpmd.log",level=5 "$@" >>"$W/vtpmd.out" 2>&1
  VP=$BG_PID
  export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$P"
  _wait_tcp "$VP" "$P" || { t_fail "$name/start" "no data port: $(tail -n 3 "$W/vtpmd.log")"; return 1; }
}
_init() { swtpm_ioctl --tcp "127.0.0.1:$((P + 1))" -i >>"$W/vtpmd.out" 2>&1; }
_stop() { swtpm_ioctl --tcp "127.0.0.1:$((P + 1))" -s >>"$W/vtpmd.out" 2>&1; wait "$VP" 2>/dev/null; }

mkdir -p "$W/state"
MEASURE=(--measure-kernel "$W/kernel" --measure-initrd "$W/initrd" --measure-append "$CMDLINE"
  --eventlog "$W/ev.bin")
if _start measure "${MEASURE[@]}"; then
  _init
  t_check pcrs/startup tpm2_startup -c
  banks=$(_banks)
  echo "# allocated banks: $banks"
  [ -n "$banks" ] || t_fail pcrs/banks "no bank read"
  for b in $banks; do
    want=$(_expected "$b")
    t_eq "pcrs/$b" "$want" "$(_pcrs "$b")"
    t_eq "log/replay-$b" "$want" "$(_replay "$b")"
  done
  t_check log/parses tpm2_eventlog "$W/ev.bin"
  t_eq log/spec-id "Spec ID Event03" "$(dd if="$W/ev.bin" bs=1 skip=32 count=15 2>/dev/null)"
  t_eq log/cmdline-event 1 "$(grep -c "$CMDLINE" <(tpm2_eventlog "$W/ev.bin" 2>/dev/null))"

  # a guest reset: CMD_INIT, then the firmware's Startup(CLEAR) again
  _init
  t_check reset/startup tpm2_startup -c
  t_eq reset/sha256-same "$(_expected sha256)" "$(_pcrs sha256)"
  t_eq reset/logged-twice 2 "$(grep -c 'measured boot: kernel into PCR 4' "$W/vtpmd.log")"
  # a resume: the PCRs come back from the saved state, nothing is measured again
  t_check reset/shutdown-state tpm2_shutdown
  _init
  t_check reset/startup-state tpm2_startup
  t_eq reset/resume-same "$(_expected sha256)" "$(_pcrs sha256)"
  t_eq reset/resume-not-measured 2 "$(grep -c 'measured boot: kernel into PCR 4' "$W/vtpmd.log")"

  # PCR_Allocate takes effect at the next reset: sha256 only, the log follows
  t_check banks/allocate tpm2_pcrallocate sha1:none+sha256:all+sha384:none+sha512:none
  _init
  t_check banks/startup tpm2_startup -c
  t_eq banks/only-sha256 "sha256 " "$(_banks)"
  t_eq banks/sha256 "$(_expected sha256)" "$(_pcrs sha256)"
  t_eq banks/replay-sha256 "$(_expected sha256)" "$(_replay sha256)"
  t_eq banks/log-one-bank 0 "$(tpm2_eventlog "$W/ev.bin" 2>/dev/null | grep -c 'AlgorithmId: sha1$')"
  _stop
fi

# --daemon: the measurement thread stays in the parent; the daemon hashes at the first boot
mkdir -p "$W/state4"
P=$(free_port)
"$VTPMD" socket --tpm2 --tpmstate dir="$W/state4" --server type=tcp,port="$P" \
  --ctrl type=tcp,port=$((P + 1)) --daemon --pid file="$W/d.pid" "${MEASURE[@]/ev.bin/ev4.bin}" \
  --log file="$W/vtpmd4.log",level=5 >>"$W/vtpmd.out" 2>&1
DPID=$(cat "$W/d.pid" 2>/dev/null)
if [ -n "$DPID" ] && _wait_tcp "$DPID" "$P"; then
  _t_pids+=("$DPID")
  export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$P"
  timeout 30 swtpm_ioctl --tcp "127.0.0.1:$((P + 1))" -i >>"$W/vtpmd.out" 2>&1
  timeout 30 tpm2_startup -c >>"$W/vtpmd.out" 2>&1
  t_eq daemon/pcrs-sha256 "$(_expected sha256)" "$(_pcrs sha256)"
  timeout 30 swtpm_ioctl --tcp "127.0.0.1:$((P + 1))" -s >>"$W/vtpmd.out" 2>&1
else
  t_fail daemon/start "the --daemon vtpmd did not serve: $(tail -n 2 "$W/vtpmd4.log")"
fi

# errors
mkdir -p "$W/state3"
out=$("$VTPMD" socket --tpm2 --tpmstate dir="$W/state3" --ctrl type=tcp,port=1 \
  --measure-kernel "$W/nonexistent" 2>&1)
rc=$?
[ $rc -ne 0 ] && grep -q "nonexistent" <<<"$out" && t_pass errors/missing-kernel ||
  t_fail errors/missing-kernel "rc=$rc: $out"
out=$("$VTPMD" socket --tpm2 --tpmstate dir="$W/state" --ctrl type=tcp,port=1 \
  --eventlog "$W/x" 2>&1)
[ $? -ne 0 ] && grep -q "need --measure-kernel" <<<"$out" && t_pass errors/eventlog-alone ||
  t_fail errors/eventlog-alone "$out"
rm -rf "$W/state2" && mkdir -p "$W/state2"
P=$(free_port)
bg_start "$VTPMD" socket --tpm2 --tpmstate dir="$W/state2" --server type=tcp,port="$P" \
  --ctrl type=tcp,port=$((P + 1)) --flags not-need-init,startup-clear >>"$W/vtpmd.out" 2>&1
VP=$BG_PID
export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$P"
if _wait_tcp "$VP" "$P"; then
  t_eq errors/unmeasured-pcr4-zero "$(printf '%064d' 0)" "$(_pcrs sha256 | cut -d' ' -f1)"
  _stop
else
  t_fail errors/unmeasured-start "no data port"
fi
t_done
