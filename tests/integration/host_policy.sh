#!/usr/bin/env bash
# tests/integration/host_policy.sh — signed host policies (TPM2_PolicyAuthorize) with revocation:
# vtpmctl host policy sign|install|add|revoke.
#
# A swtpm is the host TPM; the root key is sealed to SHA-256 PCRs 0 and 16 (16 stands for the PCR
# a kernel update changes: extended here with tpm2_pcrextend). A managed vtpmd writes a value into
# an NV index of its vTPM. Then:
#  - the policy digests host_policy computes equal those the host TPM computes in a trial session
#    (PolicyPCR, PolicyNV, PolicyAuthorize), and the policy key's name equals the TPM's, for an
#    ECC P-256 and an RSA-2048 key (host_tpm_check policy-trial);
#  - add before install is refused; install an ECC key: the revocation counter is defined;
#  - a policy for the next boot's PCR 16 is signed offline (--values FILE), added (twice: the
#    second time it is "already stored"); status shows it, and --check-pcrs says "signed";
#  - a dozen malformed policy files are refused by the manager with a precise message, a policy
#    signed by another key, or for another NV index, too;
#  - the update (PCR 16 extended): the manager starts with the signed policy (logged, audited),
#    the vTPM opens with its state; the PCR copy is left as it was (the next start goes through
#    the policy again);
#  - an unsigned change: refused, exit 3, naming PCR 16 and why each policy does not match;
#  - revocation: revoke --below S+1; a policy with serial S is refused by add and, stored before,
#    refused at start naming the revocation, also after a reboot into the very state the
#    manager ran in with it; a policy with the new serial opens;
#  - sign --current (values and serial from the manager); an RSA key replaces the ECC one (its
#    policies go) and an RSA-signed policy opens the next update.
# Usage: [BUILD=build] bash tests/integration/host_policy.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

LABEL=pol_u:vm_r:vtpm_t
NV_INDEX=0x01500042
REVOKE_NV=0x013ff101
D=$(printf '%064x' 3054) # the "new kernel" measurement
E=$(printf '%064x' 4711) # an unsigned one
F=$(printf '%064x' 9999) # a third one

need_tool swtpm tpm2_pcrread tpm2_pcrextend sha256sum xxd jq openssl || t_done
for f in "$BUILD/vtpmd" "$BUILD/vtpmmgrd" "$BUILD/vtpmctl" "$BUILD/tests/tools/mgrc" "$BUILD/tests/tools/tpmc" "$BUILD/tests/tools/host_tpm_check"; do
  [ -x "$f" ] || { t_fail build "$f is not an executable (run make first)"; t_done; }
done
W=$(t_tmpdir)
chmod 755 "$W"
mkdir -p "$W/bin" "$W/state" "$W/mgr" "$W/keys"
cp "$BUILD/vtpmd" "$BUILD/vtpmmgrd" "$BUILD/vtpmctl" "$BUILD/tests/tools/mgrc" "$BUILD/tests/tools/tpmc" "$BUILD/tests/tools/host_tpm_check" "$W/bin/" ||
  { t_fail copy "cannot copy the binaries"; t_done; }
VTPMD=$W/bin/vtpmd MGRD=$W/bin/vtpmmgrd CTL=$W/bin/vtpmctl MGRC=$W/bin/mgrc TPMC=$W/bin/tpmc HTC=$W/bin/host_tpm_check
A=$W/mgr/admin.sock
I=$W/mgr/inst.sock
LOG=$W/mgr/vtpmmgrd.log
export VTPM_ADMIN_SOCKET=$A
export TSS2_LOG=all+none

lastline() { grep . "$@" 2>/dev/null | tail -n 1; }
host_tpm_up() {
  start_host_tpm "$W/host-tpm" "$W/swtpm.log" || { t_fail host-tpm "the host TPM did not start: $(lastline "$W/swtpm.log")"; t_done; }
  export TPM2TOOLS_TCTI=$HOST_TCTI
}
host_tpm_up

mgr_args() { echo --tcti "$HOST_TCTI" --store "$W/mgr/store.db" --instance-socket "$I" --admin-socket "$A" --nv-index 0x01000c42; }
start_mgr() {
  rm -f "$A" "$I"
  # shellcheck disable=SC2046
  bg_start "$MGRD" $(mgr_args) --log "file=$LOG,level=3" </dev/null >>"$W/mgr/vtpmmgrd.out" 2>&1
  MPID=$BG_PID
  wait_for_path "$A" 100 && wait_for_path "$I" 10 && _alive "$MPID"
}
stop_mgr() { bg_kill "$MPID"; _reap "$MPID"; }
start_mgr_fg() { # must refuse: RC and ERR
  rm -f "$A" "$I"
  # shellcheck disable=SC2046
  timeout 30 "$MGRD" $(mgr_args) >"$W/fg.out" 2>"$W/fg.err" </dev/null
  RC=$?
  ERR=$(cat "$W/fg.err")
}
ctl() {
  OUT=$(timeout 30 "$CTL" "$@" 2>&1 </dev/null)
  RC=$?
  printf -- '--- vtpmctl %s (rc=%d)\n%s\n' "$*" "$RC" "$OUT" >>"$W/ctl.log"
}
expect() {
  local name=$1 want=$2 pat=${3:-}
  if [ "$RC" -ne "$want" ]; then
    t_fail "$name" "expected exit $want, got $RC: $(tr '\n' ' ' <<<"$OUT" | cut -c1-400)"
  elif [ -n "$pat" ] && ! grep -q -- "$pat" <<<"$OUT"; then
    t_fail "$name" "output lacks '$pat': $(tr '\n' ' ' <<<"$OUT" | cut -c1-400)"
  else
    t_pass "$name"
  fi
}
jprop() { jq -r --arg k "$1" '.[$k] // empty' <<<"$OUT" 2>/dev/null; }
start_vtpmd() {
  rm -f "$W/data.sock" "$W/ctrl.sock"
  bg_start "$MGRC" --register-self "$A" "$LABEL" --exec "$VTPMD" socket --tpm2 \
    --tpmstate dir="$W/state" --server type=unixio,path="$W/data.sock" \
    --ctrl type=unixio,path="$W/ctrl.sock" --flags not-need-init,startup-clear \
    --manager "$I" --uuid "$UUID" --log "file=$W/vtpmd.log,level=1" </dev/null >>"$W/vtpmd.out" 2>&1
  VPID=$BG_PID
}
stop_vtpmd() { kill -TERM "$VPID" 2>/dev/null; _reap "$VPID"; }
nv_read() { VAL=$(timeout 15 "$TPMC" -w 5000 "$W/data.sock" nvread "$NV_INDEX" 2>>"$W/tpmc.err"); }
pcr16() { tpm2_pcrread sha256:16 | sed -n 's/^ *16 *: *0x//p' | tr 'A-F' 'a-f'; }
pcr0() { tpm2_pcrread sha256:0 | sed -n 's/^ *0 *: *0x//p' | tr 'A-F' 'a-f'; }
ext() { printf '%s%s' "$1" "$2" | xxd -r -p | sha256sum | cut -d' ' -f1; }
# values FILE PCR16: a tpm2_pcrread-style file with the current PCR 0 and the given PCR 16
values() { printf 'sha256:\n  0 : 0x%s\n  16: 0x%s\n' "$(pcr0)" "$2" >"$1"; }
# counter: the revocation counter's value from host status
counter() { ctl --json host status; jprop policy_counter; }

# --- keys ---
make_keys() {
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$W/keys/ec.key" &&
    openssl pkey -in "$W/keys/ec.key" -pubout -out "$W/keys/ec.pub" &&
    openssl pkey -in "$W/keys/ec.key" -pubout -outform DER -out "$W/keys/ec.der" &&
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$W/keys/rsa.key" &&
    openssl pkey -in "$W/keys/rsa.key" -pubout -out "$W/keys/rsa.pub" &&
    openssl pkey -in "$W/keys/rsa.key" -pubout -outform DER -out "$W/keys/rsa.der" &&
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$W/keys/other.key"
}
if ! make_keys 2>>"$W/openssl.err"; then
  t_fail keys "openssl could not make the test keys: $(lastline "$W/openssl.err")"
  t_done
fi

# --- the policy digests against the TPM's own (trial session) ---
"$HTC" "$HOST_TCTI" counter-define 0x013ff1f0 >/dev/null 2>"$W/htc.err"
TRIAL_C=$("$HTC" "$HOST_TCTI" counter-read 0x013ff1f0 2>>"$W/htc.err")
values "$W/trial.yaml" "$(printf '%064x' 7)"
for k in ec rsa; do
  "$CTL" host policy sign --key "$W/keys/$k.key" --pcrs 0,16 --values "$W/trial.yaml" \
    --serial "${TRIAL_C:-0}" --nv-index 0x013ff1f0 --out "$W/trial-$k.policy" >/dev/null 2>>"$W/htc.err"
  if T=$("$HTC" "$HOST_TCTI" policy-trial "$W/trial-$k.policy" "$W/keys/$k.der" 2>&1) &&
    grep -q '^approved ok' <<<"$T" && grep -q '^name ok' <<<"$T" && grep -q '^authorize ok' <<<"$T"; then
    t_pass "digest-matches-tpm-$k"
  else
    t_fail "digest-matches-tpm-$k" "$(tr '\n' ' ' <<<"$T") $(cat "$W/htc.err")"
  fi
done
"$HTC" "$HOST_TCTI" counter-undefine 0x013ff1f0 >/dev/null 2>&1

# --- provisioning, a vTPM with state ---
if start_mgr; then t_pass mgr-start; else t_fail mgr-start "$(lastline "$W/mgr/vtpmmgrd.out" "$LOG")"; t_done; fi
ctl host init --pcrs 0,16
expect host-init 0
ctl group create pol --label '*:vm_r:vtpm_t' --digest-of "$VTPMD"
expect group-create 0
ctl vtpm create --group pol
UUID=$OUT
[[ "$UUID" =~ ^[0-9a-f-]{36}$ ]] || { t_fail vtpm-create "$OUT"; t_done; }
start_vtpmd
timeout 15 "$TPMC" -w 5000 "$W/data.sock" nvdefine "$NV_INDEX" 8 >/dev/null 2>>"$W/tpmc.err" &&
  timeout 15 "$TPMC" "$W/data.sock" nvloop "$NV_INDEX" 42 0 >/dev/null 2>>"$W/tpmc.err" && nv_read
t_eq vtpm-written 42 "${VAL:-}"
stop_vtpmd

# --- install ---
OLD16=$(pcr16)
NEW16=$(ext "$OLD16" "$D")
values "$W/next.yaml" "$NEW16"
"$CTL" host policy sign --key "$W/keys/ec.key" --pcrs 0,16 --values "$W/next.yaml" --serial 1 --out "$W/early.policy" >/dev/null 2>&1
ctl host policy add "$W/early.policy"
expect add-before-install 3 'no policy key is installed'
ctl host policy --help
expect policy-help 0 'TPM2_PolicyAuthorize'
ctl host policy install --pubkey "$W/keys/ec.pub"
expect install-ec 0 'policy key ecc-p256 installed'
C=$(counter)
if [[ "$C" =~ ^[0-9]+$ ]]; then t_pass status-counter; else t_fail status-counter "policy_counter '$C': $OUT"; fi
ctl --json host status
t_eq status-policy-key ecc-p256 "$(jprop policy_key)"
t_eq status-policy-nv "$REVOKE_NV" "$(jprop policy_nv_index)"
t_eq status-no-policies none "$(jprop policies)"
ctl host policy install --pubkey "$W/keys/ec.pub"
expect install-again 0 'policy key ecc-p256 installed'
t_eq install-again-same-counter "$C" "$(counter)"

# --- sign (offline), add ---
ctl host policy sign --key "$W/keys/ec.key" --pcrs 0,16 --values "$W/next.yaml" --out "$W/p1.policy"
expect sign-needs-serial 1 '--values needs --serial'
ctl host policy sign --key "$W/keys/ec.pub" --pcrs 0,16 --values "$W/next.yaml" --serial "$C" --out "$W/x.policy"
expect sign-needs-private-key 1 'not a PEM private key'
ctl host policy sign --key "$W/keys/ec.key" --pcrs 0,16,7 --values "$W/next.yaml" --serial "$C" --out "$W/x.policy"
expect sign-needs-every-pcr 1 'gives no SHA-256 value for PCR 7'
ctl host policy sign --key "$W/keys/ec.key" --pcrs 0,16 --values "$W/next.yaml" --serial "$C" --out "$W/p1.policy"
expect sign 0 "serial $C"
ctl host policy add "$W/p1.policy"
expect add 0 "signed policy serial $C stored"
ctl host policy add "$W/p1.policy"
expect add-again 0 'already stored'
ctl --json host status
t_eq status-policies "serial $C (PCRs 0, 16)" "$(jprop policies)"
ctl host status --check-pcrs "$W/next.yaml"
expect check-next-signed 0 'check_pcrs: *signed'
ctl audit --count 5
expect audit-add 0 "signed policy serial $C (PCRs 0, 16) stored"

# --- malformed and foreign policies: refused, precisely ---
HEX=$(xxd -p "$W/p1.policy" | tr -d '\n')
# mk NAME HEX: a policy file from hex
mk() { printf '%s' "$2" | xxd -r -p >"$W/bad-$1.policy"; }
# patch OFFSET HEX: the good policy with bytes at OFFSET replaced
patch() { local o=$((2 * $1)); printf '%s' "${HEX:0:$o}$2${HEX:$((o + ${#2}))}"; }
badp() { # badp NAME HEX PATTERN
  mk "$1" "$2"
  ctl host policy add "$W/bad-$1.policy"
  expect "malformed-$1" 3 "$3"
}
badp truncated-header "${HEX:0:16}" 'signed policy: truncated header (8 bytes'
badp magic "$(patch 0 56545058)" 'not a signed policy file (magic 0x56545058'
badp version "$(patch 4 0002)" 'unsupported version 2'
badp bank "$(patch 6 0004)" 'unsupported PCR bank 0x0004'
badp mask-zero "$(patch 8 00000000)" 'bad PCR mask 0x00000000'
badp mask-pcr24 "$(patch 8 01010001)" 'bad PCR mask 0x01010001'
badp truncated-values "${HEX:0:80}" 'truncated in the PCR values'
badp nv-range "$(patch 76 02000000)" 'revocation NV index 0x02000000 is outside the owner range'
badp truncated-serial "${HEX:0:164}" 'truncated in the serial'
badp truncated-digest "${HEX:0:200}" 'truncated in the approved policy digest'
badp no-signature "${HEX:0:240}" 'truncated before the signature'
badp empty-signature "${HEX:0:240}0000" 'the signature is empty'
badp long-signature "$(patch 120 0100)" 'truncated in the signature (256 bytes announced'
badp trailing "${HEX}00" '1 trailing bytes after the signature'
badp sig-alg "$(patch 122 0016)" 'signature'
badp sig-hash "$(patch 124 0004)" "signature's hash is 0x0004, not SHA-256"
badp altered-value "$(patch 12 ff)" 'approved policy digest is not the digest of the file'
badp altered-serial "$(patch 87 ff)" 'approved policy digest is not the digest of the file'
badp altered-digest "$(patch 88 ff)" 'approved policy digest is not the digest of the file'
badp altered-signature "$(patch 130 ff)" 'does not verify with the installed policy key'
: >"$W/bad-empty.policy"
ctl host policy add "$W/bad-empty.policy"
expect malformed-empty-file 4 'empty: not a signed policy'
head -c 5000 /dev/zero >"$W/bad-big.policy"
ctl host policy add "$W/bad-big.policy"
expect malformed-too-big 4 'larger than 4096 bytes'
"$CTL" host policy sign --key "$W/keys/other.key" --pcrs 0,16 --values "$W/next.yaml" --serial "$C" --out "$W/other.policy" >/dev/null 2>&1
ctl host policy add "$W/other.policy"
expect foreign-key 3 'does not verify with the installed policy key'
"$CTL" host policy sign --key "$W/keys/rsa.key" --pcrs 0,16 --values "$W/next.yaml" --serial "$C" --out "$W/rsa-early.policy" >/dev/null 2>&1
ctl host policy add "$W/rsa-early.policy"
expect foreign-key-type 3 'an RSASSA signature, but the policy key is ECC'
"$CTL" host policy sign --key "$W/keys/ec.key" --pcrs 0,16 --values "$W/next.yaml" --serial "$C" --nv-index 0x013ff102 --out "$W/nv.policy" >/dev/null 2>&1
ctl host policy add "$W/nv.policy"
expect foreign-nv-index 3 "made for revocation NV index 0x013ff102, but this host's is $REVOKE_NV"
ctl --json host status
t_eq malformed-none-stored "serial $C (PCRs 0, 16)" "$(jprop policies)"

# --- the update: PCR 16 measured as signed ---
stop_mgr
tpm2_pcrextend "16:sha256=$D" || t_fail pcrextend "tpm2_pcrextend failed"
t_eq pcr16-as-signed "$NEW16" "$(pcr16)"
if start_mgr; then t_pass update-mgr-starts; else t_fail update-mgr-starts "$(lastline "$W/mgr/vtpmmgrd.out" "$LOG")"; t_done; fi
if grep -q "the signed policy with serial $C (PCRs 0, 16) opened it" "$LOG"; then
  t_pass update-logged
else
  t_fail update-logged "$(tail -n 5 "$LOG")"
fi
ctl audit --count 5
expect update-audited 0 "signed policy with serial $C (PCRs 0, 16) opened the root key at start; the PCR copy is left as it was"
start_vtpmd
nv_read
t_eq update-vtpm-old-state 42 "${VAL:-}"
timeout 15 "$TPMC" "$W/data.sock" nvloop "$NV_INDEX" 1 42 >/dev/null 2>>"$W/tpmc.err" && nv_read
t_eq update-vtpm-writes 43 "${VAL:-}"
stop_vtpmd
stop_mgr
if start_mgr; then t_pass update-second-start; else t_fail update-second-start "$(lastline "$W/mgr/vtpmmgrd.out" "$LOG")"; fi
# the PCR copy is not sealed again to the signed state: each start in it goes through the
# policy, so that revoking the policy stops it (below)
if [ "$(grep -c "the signed policy with serial $C (PCRs 0, 16) opened it" "$LOG")" -eq 2 ]; then
  t_pass update-second-start-uses-policy-again
else
  t_fail update-second-start-uses-policy-again "$(grep 'opened it' "$LOG")"
fi

# --- revocation ---
S2=$(ext "$NEW16" "$E")
values "$W/s2.yaml" "$S2"
ctl host policy sign --key "$W/keys/ec.key" --pcrs 0,16 --values "$W/s2.yaml" --serial "$C" --out "$W/p2.policy"
expect sign-p2 0
ctl host policy add "$W/p2.policy"
expect add-p2 0 "serial $C stored"
ctl host policy revoke --below $((C + 1))
expect revoke 0 "revocation counter at $((C + 1)): signed policies with a serial below $((C + 1)) are revoked"
t_eq revoke-counter $((C + 1)) "$(counter)"
ctl --json host status
t_eq revoke-status-marks "serial $C (PCRs 0, 16) revoked, serial $C (PCRs 0, 16) revoked" "$(jprop policies)"
ctl host policy revoke --below "$C"
expect revoke-never-down 0 "revocation counter at $((C + 1))"
ctl host policy revoke --below $((C + 5000))
expect revoke-bounded 3 'at most 1000 per request'
ctl host policy add "$W/p1.policy"
expect add-revoked 3 "serial $C is revoked (the revocation counter is at $((C + 1)))"
ctl host status --check-pcrs "$W/s2.yaml"
expect check-revoked 3 "serial $C: revoked"
ctl audit --count 8
expect revoke-audited 0 'signed policies with a serial below'
stop_mgr
tpm2_pcrextend "16:sha256=$E"
start_mgr_fg
t_eq revoked-exit 3 "$RC"
if grep -q "host PCR 16 differs from the state the root key was sealed to" <<<"$ERR" &&
  grep -q "no signed policy opens the root key: serial $C: PCR 16 differs; serial $C: the signed policy with serial $C is revoked (the revocation counter $REVOKE_NV is at $((C + 1)))" <<<"$ERR"; then
  t_pass revoked-refused-at-start
else
  t_fail revoked-refused-at-start "$ERR"
fi

# --- an unsigned change: refused, naming the PCR ---
tpm2_pcrextend "16:sha256=$F"
start_mgr_fg
t_eq unsigned-exit 3 "$RC"
if grep -q 'refusing to start: host PCR 16 differs from the state the root key was sealed to' <<<"$ERR" &&
  grep -q "no signed policy opens the root key: serial $C: PCR 16 differs; serial $C: PCR 16 differs" <<<"$ERR"; then
  t_pass unsigned-refused-names-pcr
else
  t_fail unsigned-refused-names-pcr "$ERR"
fi

# --- a reboot into the state the revoked serial signed: refused, although the manager ran in
# that state before the revocation ---
bg_kill "$HOST_PID" KILL
_reap "$HOST_PID"
host_tpm_up
tpm2_pcrextend "16:sha256=$D"
t_eq revoked-state-pcr16 "$NEW16" "$(pcr16)"
start_mgr_fg
t_eq revoked-state-exit 3 "$RC"
if grep -q "serial $C: the signed policy with serial $C is revoked" <<<"$ERR"; then
  t_pass revoked-state-refused-after-reboot
else
  t_fail revoked-state-refused-after-reboot "$ERR"
fi

# --- a reboot into the provisioned state (the PCR copy opens); a new serial opens the next
# change ---
bg_kill "$HOST_PID" KILL
_reap "$HOST_PID"
host_tpm_up
if start_mgr; then t_pass reboot-mgr-starts; else t_fail reboot-mgr-starts "$(lastline "$W/mgr/vtpmmgrd.out" "$LOG")"; t_done; fi
ctl host policy sign --key "$W/keys/ec.key" --pcrs 0,16 --values "$W/s2.yaml" --serial $((C + 1)) --out "$W/p3.policy"
expect sign-p3 0
ctl host policy add "$W/p3.policy"
expect add-p3-prunes-revoked 0 "serial $((C + 1)) stored"
ctl --json host status
t_eq add-p3-status "serial $((C + 1)) (PCRs 0, 16)" "$(jprop policies)"
stop_mgr
tpm2_pcrextend "16:sha256=$D"
tpm2_pcrextend "16:sha256=$E"
if start_mgr; then t_pass new-serial-mgr-starts; else t_fail new-serial-mgr-starts "$(lastline "$W/mgr/vtpmmgrd.out" "$LOG")"; t_done; fi
if grep -q "the signed policy with serial $((C + 1)) (PCRs 0, 16) opened it" "$LOG"; then
  t_pass new-serial-logged
else
  t_fail new-serial-logged "$(tail -n 3 "$LOG")"
fi
start_vtpmd
nv_read
t_eq new-serial-vtpm-state 43 "${VAL:-}"
stop_vtpmd

# --- sign --current; an RSA key replaces the ECC one ---
ctl host policy sign --key "$W/keys/ec.key" --pcrs 0,16 --current --out "$W/cur.policy"
expect sign-current 0 "serial $((C + 1))"
ctl host policy add "$W/cur.policy"
expect add-current 0 "serial $((C + 1)) stored"
ctl host policy install --pubkey "$W/keys/rsa.pub"
expect install-rsa 0 'policy key rsa-2048 installed'
ctl --json host status
t_eq install-rsa-drops-ec-policies none "$(jprop policies)"
t_eq install-rsa-key rsa-2048 "$(jprop policy_key)"
S3=$(ext "$(pcr16)" "$D")
values "$W/s3.yaml" "$S3"
ctl host policy sign --key "$W/keys/rsa.key" --pcrs 0,16 --values "$W/s3.yaml" --serial $((C + 1)) --out "$W/rsa.policy"
expect sign-rsa 0
ctl host policy add "$W/rsa.policy"
expect add-rsa 0 "serial $((C + 1)) stored"
stop_mgr
tpm2_pcrextend "16:sha256=$D"
if start_mgr; then t_pass rsa-mgr-starts; else t_fail rsa-mgr-starts "$(lastline "$W/mgr/vtpmmgrd.out" "$LOG")"; t_done; fi
start_vtpmd
nv_read
t_eq rsa-vtpm-state 43 "${VAL:-}"
stop_vtpmd
stop_mgr

t_done
