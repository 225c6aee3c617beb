#!/usr/bin/env bash
# tests/integration/passthrough.sh — `vtpmd passthrough` in front of a swtpm standing in for
# the host TPM, with the shipped default filter (etc/passthrough.filter) and the default
# seccomp filter (action=kill: a call outside the list would kill vtpmd).
#
# options/   refused start-ups: no --filter, no --tcti, a malformed filter (named line), a
#            state option, a back end that does not answer
# tools/     tpm2-tools through vtpmd: startup, getrandom, hash, PCR read and extend of a PCR
#            the filter gives (16), primary + child key, seal/unseal, sign/verify, quote, NV
#            define/write/read/undefine inside the filter's nv-range
# denied/    tpm2-tools commands that change the host TPM for everyone are refused with
#            TPM_RC_COMMAND_CODE (0x143): clear, clearcontrol, changeauth of the hierarchies,
#            hierarchycontrol, dictionarylockout, evictcontrol, changeeps/pps, pcrallocate,
#            setprimarypolicy, shutdown, nvdefine outside the range, extend of PCR 0
# sweep/     every standard code 0x100-0x1ff, codes that do not exist, codes with reserved
#            bits, vendor codes: each refused code is answered 80010000000a00000143 and is absent
#            from the back end's command log (swtpm --log level=20); each code vtpmd did not
#            refuse is in it; the known dangerous codes are all refused
# backend/   after everything: the back end's hierarchies and auth (properties-variable),
#            persistent handles, NV indices and PCRs 0-15,17-22 are unchanged; its owner auth
#            is still empty
# ctrl/      control channel: capabilities without state blobs, GET_STATEBLOB refused, the guest's
#            CMD_INIT flushes its objects, CMD_SHUTDOWN stops vtpmd, not the back end
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

need_tool swtpm swtpm_ioctl tpm2_startup xxd ss || t_done
FILTER=$VTPM_TOP/etc/passthrough.filter
TO=10
d=$(t_tmpdir)
w=$d/work
mkdir -p "$w"

# The back end: a swtpm that logs every command it receives.
for _ in 1 2 3; do
  bport=$(free_port) || break
  bg_start swtpm socket --tpm2 --flags not-need-init,startup-clear \
    --server type=tcp,port="$bport",bindaddr=127.0.0.1 \
    --ctrl type=tcp,port=$((bport + 1)),bindaddr=127.0.0.1 \
    --tpmstate dir="$d" --log file="$d/backend.log",level=20 >>"$d/backend.out" 2>&1
  BPID=$BG_PID
  _wait_tcp "$BPID" "$bport" && _wait_tcp "$BPID" $((bport + 1)) && break
  bg_kill "$BPID" KILL
  BPID=
done
[ -n "${BPID:-}" ] || { t_fail backend-start "swtpm did not start"; t_done; }
BTCTI=swtpm:host=127.0.0.1,port=$bport

# back-end state as seen directly (not through vtpmd)
backend_state() {
  TPM2TOOLS_TCTI=$BTCTI timeout $TO tpm2_getcap properties-variable 2>&1 | grep -v -i 'clock\|count\|resetCount\|restartCount\|safe'
  TPM2TOOLS_TCTI=$BTCTI timeout $TO tpm2_getcap handles-persistent 2>&1
  TPM2TOOLS_TCTI=$BTCTI timeout $TO tpm2_getcap handles-nv-index 2>&1
  TPM2TOOLS_TCTI=$BTCTI timeout $TO tpm2_pcrread sha256:0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,17,18,19,20,21,22 2>&1
}
# a persistent key and an NV index of "the host", which no guest may remove
TPM2TOOLS_TCTI=$BTCTI timeout $TO tpm2_createprimary -C o -c "$w/host.ctx" -Q >/dev/null 2>&1
TPM2TOOLS_TCTI=$BTCTI timeout $TO tpm2_evictcontrol -C o -c "$w/host.ctx" 0x81000100 >/dev/null 2>&1
TPM2TOOLS_TCTI=$BTCTI timeout $TO tpm2_flushcontext -t >/dev/null 2>&1
TPM2TOOLS_TCTI=$BTCTI timeout $TO tpm2_nvdefine -C o -s 8 -a "ownerread|ownerwrite|authread|authwrite" 0x01400001 >/dev/null 2>&1
backend_state >"$d/before.txt"
grep -q 0x81000100 "$d/before.txt" && grep -q 0x1400001 "$d/before.txt" &&
  t_pass backend/host-objects-made || t_fail backend/host-objects-made "$(tail -n 3 "$d/before.txt")"

# --- options: refused start-ups
chk_refused() {
  local name=$1 want=$2 out rc
  shift 2
  out=$(timeout 10 "$VTPMD" passthrough "$@" 2>&1)
  rc=$?
  if [ "$rc" = 1 ] && grep -q -- "$want" <<<"$out"; then
    t_pass "options/$name"
  else
    t_fail "options/$name" "rc=$rc, output: $(tail -n 1 <<<"$out")"
  fi
}
p=$(free_port)
chk_refused no-filter "--filter FILE is required" --tcti "$BTCTI" --server type=tcp,port="$p"
chk_refused no-tcti "--tcti is required" --filter "$FILTER" --server type=tcp,port="$p"
printf 'allow GetRandom\nallow Frobnicate\n' >"$w/bad.filter"
chk_refused bad-filter "bad.filter: line 2: 'Frobnicate' is not a TPM 2.0 command name" \
  --tcti "$BTCTI" --filter "$w/bad.filter" --server type=tcp,port="$p"
chk_refused state-option "--tpmstate and --print-states do not apply" --tcti "$BTCTI" \
  --filter "$FILTER" --tpmstate dir="$w" --server type=tcp,port="$p"
chk_refused no-backend "cannot open the TPM through the TCTI" \
  --tcti "swtpm:host=127.0.0.1,port=$((p + 2))" --filter "$FILTER" --server type=tcp,port="$p"
out=$("$VTPMD" socket --tcti x --tpm2 --tpmstate dir="$w" --server type=tcp,port="$p" 2>&1)
grep -q "go with 'vtpmd passthrough'" <<<"$out" && t_pass options/tcti-in-socket-mode ||
  t_fail options/tcti-in-socket-mode "$out"
"$VTPMD" --help | grep -q "vtpmd passthrough --tcti TCTI --filter FILE" &&
  t_pass options/help || t_fail options/help "--help does not show passthrough"

# --- vtpmd passthrough, default seccomp filter (kill)
start_pt() {
  for _ in 1 2 3; do
    port=$(free_port) || return 1
    bg_start "$VTPMD" passthrough --tcti "$BTCTI" --filter "$FILTER" \
      --server type=tcp,port="$port" --ctrl type=tcp,port=$((port + 1)) \
      --log file="$d/vtpmd.log",level=20 >>"$d/vtpmd.out" 2>&1
    VPID=$BG_PID
    _wait_tcp "$VPID" "$port" && _wait_tcp "$VPID" $((port + 1)) && return 0
    bg_kill "$VPID" KILL
  done
  return 1
}
log_mark=$(wc -l <"$d/backend.log") # the back end's log from here on: what came through vtpmd
start_pt && t_pass start || { t_fail start "$(tail -n 2 "$d/vtpmd.out" "$d/vtpmd.log")"; t_done; }
export TPM2TOOLS_TCTI=swtpm:host=127.0.0.1,port=$port
grep -q "seccomp filter loaded: action kill" "$d/vtpmd.log" && t_pass seccomp-kill-loaded ||
  t_fail seccomp-kill-loaded "no seccomp line in the log"

# The swtpm has 3 object slots and no resource manager (with /dev/tpmrm0 the kernel's keeps
# each guest's objects): transient objects are flushed after each tool.
run() { # run NAME CMD...: must succeed
  local name=$1 out rc
  shift
  out=$(timeout $TO "$@" 2>&1)
  rc=$?
  timeout $TO tpm2_flushcontext -t >/dev/null 2>&1
  if [ $rc = 0 ]; then
    t_pass "tools/$name"
  else
    t_fail "tools/$name" "$(grep -v '^$' <<<"$out" | grep -v 'Unable to run' | tail -n 1)"
  fi
}
denied() { # denied NAME CMD...: must fail with 0x143
  local name=$1 out
  shift
  out=$(timeout $TO "$@" 2>&1)
  if [ $? -ne 0 ] && grep -q '(0x143)\|0x143\|command code not supported' <<<"$out"; then
    t_pass "denied/$name"
  else
    t_fail "denied/$name" "not refused with 0x143: $(tail -n 1 <<<"$out")"
  fi
}
Z=0000000000000000000000000000000000000000000000000000000000000000
run startup tpm2_startup -c
run getrandom tpm2_getrandom -o "$w/r" 32
[ "$(stat -c %s "$w/r" 2>/dev/null)" = 32 ] && t_pass tools/getrandom-32 || t_fail tools/getrandom-32 "wrong length"
echo hello >"$w/msg"
run hash tpm2_hash -g sha256 -o "$w/h" "$w/msg"
run pcrread tpm2_pcrread sha256:0,16
run pcrextend-16 tpm2_pcrextend 16:sha256=$Z
run primary tpm2_createprimary -C o -c "$w/prim.ctx" -Q
run seal-create tpm2_create -C "$w/prim.ctx" -i "$w/msg" -u "$w/seal.pub" -r "$w/seal.priv" -Q
run seal-load tpm2_load -C "$w/prim.ctx" -u "$w/seal.pub" -r "$w/seal.priv" -c "$w/seal.ctx" -Q
run unseal tpm2_unseal -c "$w/seal.ctx" -o "$w/unsealed"
cmp -s "$w/msg" "$w/unsealed" && t_pass tools/unseal-matches || t_fail tools/unseal-matches "differs"
run flush-1 tpm2_flushcontext -t
run sign-key tpm2_create -C "$w/prim.ctx" -G ecc256 -u "$w/k.pub" -r "$w/k.priv" -Q
run sign-load tpm2_load -C "$w/prim.ctx" -u "$w/k.pub" -r "$w/k.priv" -c "$w/k.ctx" -Q
run sign tpm2_sign -c "$w/k.ctx" -g sha256 -o "$w/sig" "$w/msg"
run verify tpm2_verifysignature -c "$w/k.ctx" -g sha256 -m "$w/msg" -s "$w/sig"
run quote tpm2_quote -c "$w/k.ctx" -l sha256:16 -q 0011223344 -m "$w/q.msg" -s "$w/q.sig"
run flush-2 tpm2_flushcontext -t
run nvdefine-in-range tpm2_nvdefine -C o -s 8 -a "ownerread|ownerwrite" 0x01500016
echo -n 12345678 >"$w/nv"
run nvwrite tpm2_nvwrite -C o -i "$w/nv" 0x01500016
run nvread tpm2_nvread -C o -s 8 -o "$w/nv.out" 0x01500016
cmp -s "$w/nv" "$w/nv.out" && t_pass tools/nvread-matches || t_fail tools/nvread-matches "differs"
run nvundefine-in-range tpm2_nvundefine -C o 0x01500016

denied clear tpm2_clear
denied clearcontrol tpm2_clearcontrol -C l s
denied changeauth-owner tpm2_changeauth -c owner newpass
denied changeauth-lockout tpm2_changeauth -c lockout newpass
denied hierarchycontrol tpm2_hierarchycontrol -C o shEnable clear
denied dictionarylockout-clear tpm2_dictionarylockout -c
denied dictionarylockout-setup tpm2_dictionarylockout -s -n 1 -t 1 -l 1
run primary-2 tpm2_createprimary -C o -c "$w/prim2.ctx" -Q
denied evictcontrol tpm2_evictcontrol -C o -c "$w/prim2.ctx" 0x81000101
denied evictcontrol-remove tpm2_evictcontrol -C o -c 0x81000100
run flush-3 tpm2_flushcontext -t
denied changeeps tpm2_changeeps
denied changepps tpm2_changepps
denied pcrallocate tpm2_pcrallocate sha1:all+sha256:all
denied setprimarypolicy tpm2_setprimarypolicy -C o -g sha256 -L "$w/h"
denied shutdown tpm2_shutdown
denied nvdefine-out-of-range tpm2_nvdefine -C o -s 8 -a "ownerread|ownerwrite" 0x01400016
denied nvundefine-host tpm2_nvundefine -C o 0x01400001
denied pcrextend-0 tpm2_pcrextend 0:sha256=$Z
denied pcrreset-0 tpm2_pcrreset 0

# --- sweep: header-only commands of every code
raw() { # raw HEX: one command on a fresh data connection; prints the first 10 response bytes
  timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "%s" "$2" | xxd -r -p >&3
    head -c 10 <&3 | xxd -p' _ "$port" "$1" 2>/dev/null
}
codes=()
for ((c = 0x100; c <= 0x1ff; c++)); do codes+=("$c"); done
codes+=(0x0 0x1 0xff 0x200 0x2ff 0x7fff 0xffff 0x20000000 0x20000001 0x20000144 0x20001000
  0x2000017b 0x2000ffff 0x1017b 0x4000017b 0x8000017b 0xffffffff 0x10000)
: >"$d/sweep.txt"
for c in "${codes[@]}"; do
  hex=$(printf '80010000000a%08x' "$c")
  printf '%08x %s\n' "$c" "$(raw "$hex")" >>"$d/sweep.txt"
done
alive() { _alive "$VPID"; }
alive && t_pass sweep/vtpmd-alive || t_fail sweep/vtpmd-alive "vtpmd died during the sweep"
# Codes vtpmd refused by code (its log), refused by a handle rule or as too short to check,
# and codes the back end received since vtpmd started (its log).
refused_list() {
  sed -n "s/.*passthrough: refused command 0x\([0-9a-f]*\) .*: $1/\1/p" "$d/vtpmd.log" |
    while read -r c; do printf '%08x\n' $((16#$c)); done | sort -u
}
refused_list 'command code not allowed' >"$d/refused.txt"
refused_list '.*' >"$d/refused_any.txt"
tail -n +$((log_mark + 1)) "$d/backend.log" |
  awk '/SWTPM_IO_Read:/ {getline; printf "%s%s%s%s\n", tolower($7), tolower($8), tolower($9), tolower($10)}' |
  sort -u >"$d/received.txt"
n_swept=$(wc -l <"$d/sweep.txt")
bad_rsp=0 leaked=0 missing=0 n_ref=0 n_fwd=0 first=
while read -r c rsp; do
  if grep -qx "$c" "$d/refused.txt"; then
    n_ref=$((n_ref + 1))
    [ "$rsp" = 80010000000a00000143 ] || { bad_rsp=$((bad_rsp + 1)); first=${first:-"$c answered '$rsp'"}; }
    grep -qx "$c" "$d/received.txt" && { leaked=$((leaked + 1)); first=${first:-"$c reached the back end"}; }
  elif grep -qx "$c" "$d/refused_any.txt"; then
    n_ref=$((n_ref + 1)) # PCR/NV rule or too short to check: the handle is not there
    [ "$rsp" = 80010000000a00000143 ] || { bad_rsp=$((bad_rsp + 1)); first=${first:-"$c answered '$rsp'"}; }
  else
    n_fwd=$((n_fwd + 1))
    grep -qx "$c" "$d/received.txt" || { missing=$((missing + 1)); first=${first:-"$c neither refused nor forwarded"}; }
  fi
done <"$d/sweep.txt"
t_eq "sweep/all-answered ($n_swept codes)" "${#codes[@]}" "$(grep -c ' 8001' "$d/sweep.txt")"
[ $bad_rsp = 0 ] && t_pass "sweep/refused-answer-0x143 ($n_ref refused)" || t_fail sweep/refused-answer-0x143 "$bad_rsp: $first"
[ $leaked = 0 ] && t_pass "sweep/refused-never-reach-backend ($n_ref refused)" || t_fail sweep/refused-never-reach-backend "$leaked: $first"
[ $missing = 0 ] && t_pass "sweep/allowed-reach-backend ($n_fwd forwarded)" || t_fail sweep/allowed-reach-backend "$missing: $first"
must=(0x11f 0x120 0x121 0x124 0x125 0x126 0x127 0x128 0x129 0x12b 0x12c 0x12d 0x12e 0x12f 0x130
  0x132 0x139 0x13a 0x140 0x141 0x145 0x183 0x198 0x199 0x1ff 0x0 0xffff 0x20000000 0x20001000
  0x2000ffff 0x1017b 0x8000017b 0xffffffff)
notref=
for c in "${must[@]}"; do grep -qx "$(printf '%08x' "$c")" "$d/refused.txt" || notref="$notref $c"; done
[ -z "$notref" ] && t_pass "sweep/dangerous-and-unknown-refused (${#must[@]})" || t_fail sweep/dangerous-and-unknown-refused "not refused:$notref"
# everything tools/ and denied/ sent was decided the same way: no refused code in the back end's log
leak_all=$(comm -12 "$d/refused.txt" "$d/received.txt" | tr '\n' ' ')
[ -z "$leak_all" ] && t_pass backend/no-refused-code-in-log || t_fail backend/no-refused-code-in-log "$leak_all"

# --- control channel
caps=$(swtpm_ioctl --tcp 127.0.0.1:$((port + 1)) -c 2>&1)
grep -q 'ptm capability is 0x' <<<"$caps" && [ "$(( $(sed -n 's/.*0x\([0-9a-fA-F]*\).*/0x\1/p' <<<"$caps") & 0x300 ))" = 0 ] &&
  t_pass ctrl/caps-no-state-blobs || t_fail ctrl/caps-no-state-blobs "$caps"
out=$(swtpm_ioctl --tcp 127.0.0.1:$((port + 1)) --save permanent "$w/blob" 2>&1)
[ $? -ne 0 ] && t_pass ctrl/get-stateblob-refused || t_fail ctrl/get-stateblob-refused "$out"
timeout $TO tpm2_createprimary -C o -c "$w/prim3.ctx" -Q >/dev/null 2>&1 # left loaded
n1=$(timeout $TO tpm2_getcap handles-transient 2>/dev/null | grep -c 0x)
run ctrl-init swtpm_ioctl --tcp 127.0.0.1:$((port + 1)) -i
n2=$(timeout $TO tpm2_getcap handles-transient 2>/dev/null | grep -c 0x)
[ "$n1" -ge 1 ] && [ "$n2" = 0 ] && t_pass "ctrl/init-flushes-transient ($n1 -> $n2)" ||
  t_fail ctrl/init-flushes-transient "transient handles $n1 -> $n2"
run ctrl-shutdown swtpm_ioctl --tcp 127.0.0.1:$((port + 1)) -s
_reap "$VPID" 5
t_eq ctrl/shutdown-exits-0 0 "$_rc"
_alive "$BPID" && TPM2TOOLS_TCTI=$BTCTI timeout $TO tpm2_getrandom 8 >/dev/null 2>&1 &&
  t_pass ctrl/backend-still-serving || t_fail ctrl/backend-still-serving "back end gone"

# --- back end unchanged (PCR 16 was extended on purpose: not compared)
backend_state >"$d/after.txt"
if diff "$d/before.txt" "$d/after.txt" >"$d/state.diff"; then
  t_pass backend/hierarchies-auth-persistent-nv-pcrs-unchanged
else
  t_fail backend/hierarchies-auth-persistent-nv-pcrs-unchanged "$(head -n 4 "$d/state.diff" | tr '\n' ' ')"
fi
grep -q 'ownerAuthSet: *0' "$d/after.txt" && grep -q 'lockoutAuthSet: *0' "$d/after.txt" && grep -q 'inLockout: *0' "$d/after.txt" &&
  t_pass backend/owner-lockout-auth-unset || t_fail backend/owner-lockout-auth-unset "$(grep -i auth "$d/after.txt" | head -n 3)"
TPM2TOOLS_TCTI=$BTCTI timeout $TO tpm2_createprimary -C o -c "$w/p9.ctx" -Q >/dev/null 2>&1 &&
  t_pass backend/owner-auth-still-empty || t_fail backend/owner-auth-still-empty "createprimary with empty owner auth failed"
t_done
