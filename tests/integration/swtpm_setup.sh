#!/usr/bin/env bash
# swtpm_setup (what libvirt runs for a new vTPM) provisions vtpmd as it provisions swtpm:
# EKs, EK and platform certificates in NV, locked NV, PCR banks; and --not-overwrite keeps
# an existing state.
. "$(dirname "$0")/../lib.sh"
need_tool swtpm_setup tpm2_nvread tpm2_getcap openssl sha256sum || t_done

d=$(t_tmpdir)
mkdir -p "$d/state"
# swtpm_setup runs "swtpm socket"-style command lines; it looks up swtpm_localca in $PATH.
if swtpm_setup --tpm2 --tpm-state "$d/state" --tpm "$VTPMD socket" --createek \
  --create-ek-cert --create-platform-cert --lock-nvram --not-overwrite \
  --vmid vm1:5a1c0b9e-2f0e-4e55-9f41-3b7f1d0a6c21 --logfile "$d/setup.log" >/dev/null 2>&1; then
  t_pass swtpm-setup-exit-0
else
  t_fail swtpm-setup-exit-0 "$(tail -n 3 "$d/setup.log" | tr '\n' ' ')"
  t_done
fi
[ -s "$d/state/vtpm2.state" ] && t_pass state-file-written || t_fail state-file-written "no vtpm2.state"
sum1=$(sha256sum "$d/state/vtpm2.state" | cut -c1-64)

swtpm_setup --tpm2 --tpm-state "$d/state" --tpm "$VTPMD socket" --createek --not-overwrite \
  --logfile "$d/setup2.log" >/dev/null 2>&1
t_eq not-overwrite-keeps-state "$sum1" "$(sha256sum "$d/state/vtpm2.state" | cut -c1-64)"

port=$(free_port)
bg_start "$VTPMD" socket --tpm2 --tpmstate dir="$d/state" --server type=tcp,port="$port" \
  --ctrl type=tcp,port=$((port + 1)) --flags not-need-init,startup-clear
export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$port"
for _ in $(seq 50); do tpm2_getcap handles-persistent >"$d/persistent" 2>/dev/null && break; sleep 0.1; done
grep -qi 0x81010001 "$d/persistent" && t_pass rsa-ek-persistent || t_fail rsa-ek-persistent "$(tr '\n' ' ' <"$d/persistent")"
for idx in 0x1c00002 0x1c08000; do
  if tpm2_nvread "$idx" -C "$idx" -o "$d/cert-$idx.der" >/dev/null 2>&1 ||
    tpm2_nvread "$idx" -o "$d/cert-$idx.der" >/dev/null 2>&1; then
    subj=$(openssl x509 -inform DER -in "$d/cert-$idx.der" -noout -issuer 2>&1)
    case $subj in
    issuer=*) t_pass "cert-$idx-is-x509" ;;
    *) t_fail "cert-$idx-is-x509" "$subj" ;;
    esac
  else
    t_fail "cert-$idx-is-x509" "cannot read NV index $idx"
  fi
done
# The EK certificate holds the public key of the persistent RSA EK.
tpm2_readpublic -c 0x81010001 -f pem -o "$d/ek.pem" >/dev/null 2>&1
if [ -s "$d/ek.pem" ] && [ "$(openssl x509 -inform DER -in "$d/cert-0x1c00002.der" -noout -pubkey 2>/dev/null)" = "$(cat "$d/ek.pem")" ]; then
  t_pass ek-cert-matches-ek
else
  t_fail ek-cert-matches-ek "certificate key differs from the EK at 0x81010001"
fi
t_done
