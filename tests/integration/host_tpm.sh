#!/usr/bin/env bash
# tests/integration/host_tpm.sh — src/vtpmmgrd/host_tpm against a real swtpm standing in for
# the host TPM, through tests/tools/host_tpm_check and the swtpm TCTI.
#
# Checks: seal/unseal round trip; after extending PCR 16 a blob sealed to 16 refuses with
# exit 3 and differ=0x10000 while one sealed without 16 still opens; sealing and unsealing keep
# the secret off the wire (pcap TCTI); a blob does not open on a second, fresh swtpm
# ("stolen disk": other SRK); corrupted blobs (every single-byte flip, truncations, trailing
# bytes) fail with a precise message and never crash or open; NV counter define/increment/read
# is monotonic, refuses a second define, and survives an swtpm restart on the same state (as
# do the AK and, with PCRs back at reset values, the sealed blob); the AK public key is valid
# DER for openssl and deterministic; command budgets per operation; one run under valgrind.
# Usage: [BUILD=build] bash tests/integration/host_tpm.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

CHECK=$BUILD/tests/tools/host_tpm_check
TOOL_TIMEOUT=30
IDX=0x01000a01 # NV counter in the owner range
IDX_MISSING=0x01000a02
SECRET_A=00112233445566778899aabbccddeeff0123456789abcdef7766554433221100
SECRET_B=cafebabe8badf00d5eedf00ddeadbeef0badc0de1badd00dfeedfacec0ffee00
SECRET_C=5e5e5e5e
DIGEST=$(printf '%064x' 3735928559) # extended into PCR 16
ZERO32=$(printf '%064d' 0)

need_tool swtpm openssl xxd || t_done
if [ ! -x "$CHECK" ]; then
  t_fail build "$CHECK is missing (run make)"
  t_done
fi

W=$(t_tmpdir)

# start_swtpm NAME STATEDIR: start a swtpm on a fresh port pair; sets PID_<NAME>, TCTI_<NAME>.
start_swtpm() {
  local name=$1 dir=$2 port
  mkdir -p "$dir"
  for _ in 1 2 3; do
    port=$(free_port) || break
    bg_start swtpm socket --tpm2 --flags not-need-init,startup-clear \
      --server type=tcp,port="$port",bindaddr=127.0.0.1 \
      --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
      --tpmstate dir="$dir" >>"$W/swtpm-$name.log" 2>&1
    if _wait_tcp "$BG_PID" $((port + 1)) && _wait_tcp "$BG_PID" "$port"; then
      printf -v "PID_$name" '%s' "$BG_PID"
      printf -v "TCTI_$name" '%s' "swtpm:host=127.0.0.1,port=$port"
      t_pass "swtpm-start-$name"
      return 0
    fi
    bg_kill "$BG_PID" KILL
  done
  t_fail "swtpm-start-$name" "swtpm did not start: $(tail -n 1 "$W/swtpm-$name.log" 2>/dev/null)"
  return 1
}

# hc TCTI ARGS...: run the checker (bounded); sets RC, OUT (stdout), ERR (stderr).
hc() {
  local tcti=$1
  shift
  timeout "$TOOL_TIMEOUT" "$CHECK" "$tcti" "$@" >"$W/out" 2>"$W/err"
  RC=$?
  OUT=$(cat "$W/out")
  ERR=$(cat "$W/err")
  printf -- '--- %s (rc=%d)\n%s\n%s\n' "$*" "$RC" "$OUT" "$ERR" >>"$W/checker.log"
}
# hc_ok NAME TCTI ARGS...: the checker must succeed.
hc_ok() {
  local name=$1
  shift
  hc "$@"
  if [ "$RC" -eq 0 ]; then t_pass "$name"; else t_fail "$name" "rc=$RC: $ERR"; fi
  [ "$RC" -eq 0 ]
}
# hc_fail NAME EXPECTED_RC PATTERN TCTI ARGS...: must exit EXPECTED_RC with PATTERN on stderr.
hc_fail() {
  local name=$1 want=$2 pat=$3
  shift 3
  hc "$@"
  if [ "$RC" -ne "$want" ]; then
    t_fail "$name" "expected exit $want, got $RC: $OUT $ERR"
  elif ! grep -q -- "$pat" <<<"$ERR"; then
    t_fail "$name" "stderr lacks '$pat': $ERR"
  else
    t_pass "$name"
  fi
}
# commands_of: the "commands: N" line of a -v run.
commands_of() { sed -n 's/^commands: //p' "$W/err"; }
# flip FILE OFFSET OUT: OUT = FILE with the byte at OFFSET xor 0x01.
flip() {
  local hex b
  hex=$(xxd -p "$1" | tr -d '\n')
  b=$(printf '%02x' $((16#${hex:$((2 * $2)):2} ^ 1)))
  printf '%s%s%s' "${hex:0:$((2 * $2))}" "$b" "${hex:$((2 * $2 + 2))}" | xxd -r -p >"$3"
}

start_swtpm A "$W/stateA" || t_done

# --- basics ---
hc_ok count-runs "$TCTI_A" count && t_eq count-is-zero 0 "$OUT"
hc_ok pcrread "$TCTI_A" pcrread 0x10081 &&
  t_eq pcrread-16-reset "16: $ZERO32" "$(grep '^16: ' <<<"$OUT")"

# --- seal / unseal ---
hc_ok seal-a "$TCTI_A" seal 0x10081 "$SECRET_A" "$W/a.blob"
hc_ok unseal-a "$TCTI_A" unseal "$W/a.blob" && t_eq unseal-a-secret "$SECRET_A" "$OUT"
hc_ok seal-b-without-16 "$TCTI_A" seal 0x81 "$SECRET_B" "$W/b.blob"
hc_ok seal-1-byte "$TCTI_A" seal 0x1 ab "$W/one.blob"
hc_ok unseal-1-byte "$TCTI_A" unseal "$W/one.blob" && t_eq unseal-1-byte-secret ab "$OUT"
hc_ok seal-128-bytes "$TCTI_A" seal 0xffffff "$(printf '%0256x' 7)" "$W/max.blob"
hc_ok unseal-128-bytes "$TCTI_A" unseal "$W/max.blob" &&
  t_eq unseal-128-bytes-secret "$(printf '%0256x' 7)" "$OUT"
hc_fail seal-129-bytes 2 "seal: secret of 129 bytes" "$TCTI_A" seal 0x1 "$(printf '%0258x' 7)" "$W/x"
hc_fail seal-mask-zero 2 "bad PCR mask" "$TCTI_A" seal 0 "$SECRET_C" "$W/x"
hc_fail seal-mask-pcr24 2 "bad PCR mask" "$TCTI_A" seal 0x1000000 "$SECRET_C" "$W/x"

# --- command budgets (host TPM commands per operation) ---
timeout "$TOOL_TIMEOUT" "$CHECK" -v "$TCTI_A" seal 0x10081 "$SECRET_C" "$W/c0.blob" >"$W/out" 2>"$W/err"
n=$(commands_of)
if [ -n "$n" ] && [ "$n" -le 6 ]; then t_pass "seal-budget($n commands)"; else t_fail seal-budget "seal took '$n' commands (budget 6)"; fi
timeout "$TOOL_TIMEOUT" "$CHECK" -v "$TCTI_A" unseal "$W/c0.blob" >"$W/out" 2>"$W/err"
n=$(commands_of)
if [ -n "$n" ] && [ "$n" -le 9 ]; then t_pass "unseal-budget($n commands)"; else t_fail unseal-budget "unseal took '$n' commands (budget 9)"; fi

# --- the secret never crosses the TCTI in the clear (pcap TCTI records every byte) ---
if TCTI_PCAP_FILE=$W/probe.pcap timeout 10 "$CHECK" "pcap:$TCTI_A" count >/dev/null 2>&1; then
  export TCTI_PCAP_FILE=$W/wire.pcap
  hc_ok pcap-seal "pcap:$TCTI_A" seal 0x81 "$SECRET_B" "$W/wire.blob"
  hc_ok pcap-unseal "pcap:$TCTI_A" unseal "$W/wire.blob" && t_eq pcap-unseal-secret "$SECRET_B" "$OUT"
  hc_ok pcap-extend-23 "pcap:$TCTI_A" extend 23 "$SECRET_A"
  unset TCTI_PCAP_FILE
  wire=$(xxd -p "$W/wire.pcap" | tr -d '\n')
  # positive control: the (unencrypted) PCR_Extend digest is visible, so the capture works
  if grep -q "$SECRET_A" <<<"$wire"; then t_pass pcap-captures-plaintext; else t_fail pcap-captures-plaintext "extend digest not found in the capture"; fi
  if grep -q "${SECRET_B:0:32}" <<<"$wire"; then
    t_fail secret-encrypted-on-wire "the sealed secret appears in clear in TPM traffic"
  else
    t_pass secret-encrypted-on-wire
  fi
else
  t_skip secret-encrypted-on-wire "pcap TCTI (libtss2-tcti-pcap) not loadable"
fi

# --- host PCR change ---
hc_ok extend-16 "$TCTI_A" extend 16 "$DIGEST"
expect16=$(printf '%s%s' "$ZERO32" "$DIGEST" | xxd -r -p | openssl dgst -sha256 -r | cut -c1-64)
hc_ok pcrread-after-extend "$TCTI_A" pcrread 0x10000 && t_eq pcr16-extended "16: $expect16" "$OUT"
hc_fail unseal-a-after-extend 3 "host PCR 16 differs from the sealed state" "$TCTI_A" unseal "$W/a.blob"
t_eq unseal-a-differ-mask "differ=0x10000" "$OUT"
hc_ok unseal-b-after-extend "$TCTI_A" unseal "$W/b.blob" && t_eq unseal-b-secret "$SECRET_B" "$OUT"
hc_ok seal-c-current-16 "$TCTI_A" seal 0x10000 "$SECRET_C" "$W/c.blob"
hc_ok unseal-c "$TCTI_A" unseal "$W/c.blob" && t_eq unseal-c-secret "$SECRET_C" "$OUT"
hc_ok extend-16-again "$TCTI_A" extend 16 "$DIGEST"
hc_fail unseal-c-after-extend 3 "host PCR 16 differs" "$TCTI_A" unseal "$W/c.blob"

# --- corrupted blobs (the blob comes from disk: untrusted) ---
len=$(stat -c %s "$W/b.blob")
for cut in 0 3 11 12 20 $((len / 2)) $((len - 1)); do
  head -c "$cut" "$W/b.blob" >"$W/cut.blob"
  hc_fail "truncated-to-$cut" 5 "bad sealed blob: truncated" "$TCTI_A" unseal "$W/cut.blob"
done
{ cat "$W/b.blob"; printf 'x'; } >"$W/long.blob"
hc_fail trailing-byte 5 "bad sealed blob: 1 trailing bytes" "$TCTI_A" unseal "$W/long.blob"
flip "$W/b.blob" 0 "$W/f.blob"
hc_fail flip-magic 5 "bad sealed blob: bad magic" "$TCTI_A" unseal "$W/f.blob"
flip "$W/b.blob" 5 "$W/f.blob"
hc_fail flip-version 5 "bad sealed blob: unsupported version" "$TCTI_A" unseal "$W/f.blob"
flip "$W/b.blob" 7 "$W/f.blob"
hc_fail flip-bank 5 "bad sealed blob: unsupported PCR bank" "$TCTI_A" unseal "$W/f.blob"
flip "$W/b.blob" 11 "$W/f.blob" # mask 0x81 -> 0x80: one PCR value fewer
hc_fail flip-mask 5 "bad sealed blob: " "$TCTI_A" unseal "$W/f.blob"
flip "$W/b.blob" 20 "$W/f.blob" # inside the recorded PCR 0 value
hc_fail flip-pcr-value 5 "do not match the object's policy" "$TCTI_A" unseal "$W/f.blob"
flip "$W/b.blob" $((len - 1)) "$W/f.blob" # inside the encrypted sensitive area
hc_fail flip-private 2 "TPM2_Load (sealed object): 0x" "$TCTI_A" unseal "$W/f.blob"
# every single-byte flip: refused (exit 2 or 5) with a message, never opened, never a crash
bad=""
for ((off = 0; off < len; off++)); do
  flip "$W/b.blob" "$off" "$W/f.blob"
  hc "$TCTI_A" unseal "$W/f.blob"
  case $RC in
    2 | 5) grep -q '^host_tpm_check: .' <<<"$ERR" || bad+=" $off:no-message" ;;
    *) bad+=" $off:rc=$RC" ;;
  esac
done
if [ -z "$bad" ]; then t_pass "every-flip-refused($len offsets)"; else t_fail every-flip-refused "offsets:${bad:0:300}"; fi
head -c 100000 /dev/urandom >"$W/junk.blob"
hc_fail random-junk 5 "bad sealed blob" "$TCTI_A" unseal "$W/junk.blob"

# --- NV counter ---
hc_ok counter-define "$TCTI_A" counter-define "$IDX"
hc_fail counter-define-twice 4 "TPM2_NV_DefineSpace: NV index $IDX is already defined" \
  "$TCTI_A" counter-define "$IDX"
hc_ok counter-read-fresh "$TCTI_A" counter-read "$IDX" && v0=$OUT
hc_ok counter-read-stable "$TCTI_A" counter-read "$IDX" && t_eq counter-read-stable-value "$v0" "$OUT"
hc_ok counter-inc-1 "$TCTI_A" counter-inc "$IDX" && t_eq counter-inc-1-value $((v0 + 1)) "$OUT"
hc_ok counter-inc-2 "$TCTI_A" counter-inc "$IDX" && t_eq counter-inc-2-value $((v0 + 2)) "$OUT"
hc_ok counter-read-after "$TCTI_A" counter-read "$IDX" && t_eq counter-read-after-value $((v0 + 2)) "$OUT"
hc_fail counter-read-missing 6 "NV index $IDX_MISSING is not defined" "$TCTI_A" counter-read "$IDX_MISSING"
hc_fail counter-inc-missing 6 "is not defined" "$TCTI_A" counter-inc "$IDX_MISSING"
hc_fail counter-outside-owner-range 2 "outside" "$TCTI_A" counter-define 0x01400000

# --- attestation key ---
hc_ok akpub-1 "$TCTI_A" akpub "$W/ak1.der" && name1=$OUT
hc_ok akpub-2 "$TCTI_A" akpub "$W/ak2.der" && name2=$OUT
t_check ak-der-parses openssl pkey -pubin -inform DER -in "$W/ak1.der" -noout
if openssl pkey -pubin -inform DER -in "$W/ak1.der" -noout -text 2>&1 | grep -q 'prime256v1'; then
  t_pass ak-is-p256
else
  t_fail ak-is-p256 "not a P-256 key"
fi
t_check ak-deterministic cmp "$W/ak1.der" "$W/ak2.der"
t_eq ak-name-deterministic "${name1:-x}" "${name2:-y}"
case ${name1:-} in
  000b????????????????????????????????????????????????????????????????) t_pass ak-name-sha256 ;;
  *) t_fail ak-name-sha256 "name '${name1:-}' is not 000b + 32 bytes" ;;
esac

# --- restart on the same state: counter, AK and (PCRs reset) blob A survive ---
bg_kill "$PID_A"
start_swtpm A2 "$W/stateA" || t_done
hc_ok counter-read-after-restart "$TCTI_A2" counter-read "$IDX" &&
  t_eq counter-survives-restart $((v0 + 2)) "$OUT"
hc_ok counter-inc-after-restart "$TCTI_A2" counter-inc "$IDX" &&
  t_eq counter-inc-after-restart-value $((v0 + 3)) "$OUT"
hc_fail counter-define-after-restart 4 "already defined" "$TCTI_A2" counter-define "$IDX"
hc_ok akpub-after-restart "$TCTI_A2" akpub "$W/ak3.der"
t_check ak-same-after-restart cmp "$W/ak1.der" "$W/ak3.der"
hc_ok unseal-a-after-restart "$TCTI_A2" unseal "$W/a.blob" && t_eq unseal-a-after-restart-secret "$SECRET_A" "$OUT"
# a counter defined anew never starts below what a counter had (no rollback by redefinition)
hc_ok counter-undefine "$TCTI_A2" counter-undefine "$IDX"
hc_fail counter-read-undefined 6 "is not defined" "$TCTI_A2" counter-read "$IDX"
hc_ok counter-redefine "$TCTI_A2" counter-define "$IDX"
hc_ok counter-read-redefined "$TCTI_A2" counter-read "$IDX"
if [ "${OUT:-0}" -ge $((v0 + 3)) ] 2>/dev/null; then
  t_pass "counter-redefined-not-lower($OUT)"
else
  t_fail counter-redefined-not-lower "new counter at '$OUT' < $((v0 + 3))"
fi

# --- stolen disk: the blobs on a second, fresh TPM ---
start_swtpm B "$W/stateB" || t_done
hc_fail stolen-blob-b 2 "TPM2_Load (sealed object): 0x" "$TCTI_B" unseal "$W/b.blob"
if grep -q "not sealed under this host TPM's storage key" <<<"$ERR"; then
  t_pass stolen-blob-b-says-why
else
  t_fail stolen-blob-b-says-why "$ERR"
fi
hc_fail stolen-blob-a 2 "TPM2_Load (sealed object)" "$TCTI_B" unseal "$W/a.blob"
hc_ok akpub-other-tpm "$TCTI_B" akpub "$W/akB.der"
if cmp -s "$W/ak1.der" "$W/akB.der"; then t_fail ak-differs-per-tpm "two TPMs gave the same AK"; else t_pass ak-differs-per-tpm; fi

# --- no TPM at the other end ---
dead=$(free_port)
# (the swtpm TCTI connects to the control port at initialisation, so opening fails)
hc_fail no-tpm 2 "Tss2_TctiLdr_Initialize(\"swtpm:" "swtpm:host=127.0.0.1,port=$dead" pcrread 0x1
hc_fail bad-tcti 2 "Tss2_TctiLdr_Initialize" "nosuchtcti:x" count

# --- one run under valgrind: no memory errors, no definite leaks ---
if command -v valgrind >/dev/null 2>&1; then
  # ARGS|EXPECTED_EXIT (the flipped blob is refused with exit 2)
  for spec in "seal 0x10081 $SECRET_C $W/vg.blob|0" "unseal $W/vg.blob|0" "unseal $W/f.blob|2" \
    "akpub $W/vg.der|0" "counter-inc $IDX|0"; do
    args=${spec%|*} want=${spec##*|}
    # shellcheck disable=SC2086
    timeout 120 valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
      "$CHECK" "$TCTI_A2" $args >"$W/vg.out" 2>"$W/vg.err"
    rc=$?
    # valgrind 3.19 cannot read clang's DWARF 5; sanitizer builds cannot run under valgrind
    if [ "$rc" -ne "$want" ] && grep -q -E 'debuginfo reader|Sanitizer|[Ss]hadow memory' "$W/vg.err"; then
      t_skip valgrind "this build cannot run under valgrind: $(grep -m1 -E 'debuginfo reader|Sanitizer|[Ss]hadow memory' "$W/vg.err")"
      break
    fi
    if [ "$rc" -eq "$want" ]; then
      t_pass "valgrind-${args%% *}-exit-$want"
    else
      t_fail "valgrind-${args%% *}-exit-$want" "rc=$rc: $(grep -m1 '==' "$W/vg.err")"
    fi
  done
else
  t_skip valgrind "valgrind not installed"
fi

t_done
