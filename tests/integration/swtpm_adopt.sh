#!/usr/bin/env bash
# Adoption between the real swtpm 0.7.1 and vtpmd, both ways, with swtpm's keys
# (docs/swtpm-formats.md):
#   a  swtpm's state encrypted with --key (key file from swtpm_setup with an EK; passphrases
#      with pbkdf2 and sha512; a binary key; pwdfd as libvirt passes it) is adopted by vtpmd
#      given the same --key: the EK public and NV contents are unchanged. A wrong key or none
#      is refused with the reason, and swtpm's files are left as they were.
#   b  CMD_GET/SET_STATEBLOB blobs under the same --migration-key move swtpm -> vtpmd and
#      vtpmd -> swtpm with swtpm_ioctl --save/--load; a wrong key is refused (0x21).
#   c  vtpmd export-swtpm writes swtpm files that swtpm starts from with the same EK and NV.
. "$(dirname "$0")/../lib.sh"
need_tool swtpm swtpm_ioctl swtpm_setup tpm2_readpublic sha256sum || t_done
SWTPM=$(command -v swtpm)
TPMC=$BUILD/tests/tools/tpmc
[ -x "$TPMC" ] || { t_fail build "$TPMC is missing (run make)"; t_done; }
d=$(t_tmpdir)
NV=0x01500042

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$d/k256.hex"
head -c 16 /dev/urandom >"$d/k128.bin"
printf 'correct horse battery staple\n' >"$d/pw"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$d/mig.hex"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$d/other.hex"
MIG="file=$d/mig.hex,format=hex,mode=aes-256-cbc"

# run DAEMON DIR LOG ARGS...: a TPM with TCP data port $P and control port $P+1 (the swtpm
# TCTI's pair), started and TPM2_Startup'd; sets P, PID. Returns 1 if it did not come up.
run() {
  local daemon=$1 dir=$2 log=$3
  shift 3
  P=$(free_port) || return 1
  bg_start "$daemon" socket --tpm2 --tpmstate dir="$dir" --server type=tcp,port="$P" \
    --ctrl type=tcp,port=$((P + 1)) --flags not-need-init,startup-clear \
    --log file="$log",level=2 "$@" >>"$log.out" 2>&1
  PID=$BG_PID
  "$TPMC" -w 3000 "$P" startup >/dev/null 2>&1
}
stop() {
  timeout 5 swtpm_ioctl --tcp 127.0.0.1:$((P + 1)) -s >/dev/null 2>&1
  bg_kill "$PID"
}
ekpub() { TPM2TOOLS_TCTI=swtpm:host=127.0.0.1,port=$P timeout 10 tpm2_readpublic -c 0x81010001 \
  -o "$1" >/dev/null 2>&1 && sha256sum <"$1" | cut -d' ' -f1; }
nvread() { "$TPMC" "$P" nvread $NV 2>&1; }
tree_sum() { (cd "$1" && sha256sum tpm2-00.* 2>/dev/null); }

# ---- a: adoption of encrypted swtpm state ------------------------------------------------
# adopt NAME KEYSPEC [fd-setup]: swtpm makes state under KEYSPEC (NV counter written), vtpmd
# adopts it with the same KEYSPEC; EK (if any) and NV value must match.
adopt() {
  local n=$1 spec=$2 dir=$d/$1 want ek1 ek2 out
  mkdir -p "$dir"
  [ -d "$d/$n.setup" ] && cp "$d/$n.setup"/tpm2-00.* "$dir/"
  run "$SWTPM" "$dir" "$d/$n.sw.log" --key "$spec" || { t_fail "a-$n-swtpm-start" "$(tail -n 2 "$d/$n.sw.log.out")"; return; }
  "$TPMC" "$P" nvdefine $NV 8 >/dev/null 2>&1
  "$TPMC" "$P" nvloop $NV 1 41 >/dev/null 2>&1
  want=$(nvread)
  ek1=$(ekpub "$d/$n.ek1")
  stop
  t_eq "a-$n-swtpm-nv" 42 "$want"
  if od -An -tx1 -N 6 "$dir/tpm2-00.permall" | grep -q '^ 02 01 00 0a 00 0[19]'; then
    t_pass "a-$n-swtpm-file-encrypted"
  else
    t_fail "a-$n-swtpm-file-encrypted" "header $(od -An -tx1 -N 6 "$dir/tpm2-00.permall")"
  fi
  cp -r "$dir" "$dir.orig"
  # wrong key and no key: refused with the reason, nothing written
  out=$("$VTPMD" socket --tpm2 --tpmstate dir="$dir" --ctrl type=unixio,path="$d/$n.c" \
    --key "file=$d/other.hex,format=hex,mode=aes-256-cbc" --flags not-need-init 2>&1)
  case $out in
  *"cannot import swtpm state file"*"HMAC does not match"*|*"cannot import"*"-bit key"*) t_pass "a-$n-wrong-key-refused" ;;
  *) t_fail "a-$n-wrong-key-refused" "$out" ;;
  esac
  out=$("$VTPMD" socket --tpm2 --tpmstate dir="$dir" --ctrl type=unixio,path="$d/$n.c" \
    --flags not-need-init 2>&1)
  case $out in
  *"encrypted with swtpm's --key"*) t_pass "a-$n-no-key-refused" ;;
  *) t_fail "a-$n-no-key-refused" "$out" ;;
  esac
  if [ "$(tree_sum "$dir")" = "$(tree_sum "$dir.orig")" ] && [ ! -e "$dir/vtpm2.state" ]; then
    t_pass "a-$n-refusal-writes-nothing"
  else
    t_fail "a-$n-refusal-writes-nothing" "$(ls "$dir")"
  fi
  if [ -n "${FDSPEC:-}" ]; then
    run "$VTPMD" "$dir" "$d/$n.v.log" --key "$FDSPEC" 7<"$d/pw" || { t_fail "a-$n-vtpmd-start" "$(tail -n 2 "$d/$n.v.log.out")"; return; }
  else
    run "$VTPMD" "$dir" "$d/$n.v.log" --key "$spec" || { t_fail "a-$n-vtpmd-start" "$(tail -n 2 "$d/$n.v.log.out")"; return; }
  fi
  t_eq "a-$n-vtpmd-nv" "$want" "$(nvread)"
  ek2=$(ekpub "$d/$n.ek2")
  if [ -n "$ek1" ]; then
    t_eq "a-$n-vtpmd-ek-unchanged" "$ek1" "$ek2"
  elif [ "$n" = keyfile ]; then
    t_fail "a-$n-ek-readable" "tpm2_readpublic of the EK 0x81010001 failed on swtpm"
  fi
  stop
  [ -s "$dir/vtpm2.state" ] && t_pass "a-$n-vtpmd-state-written" || t_fail "a-$n-vtpmd-state-written" "no vtpm2.state"
}

# key file (hex, AES-256), provisioned with an EK by swtpm_setup
mkdir -p "$d/keyfile.setup"
if timeout 120 swtpm_setup --tpm2 --tpm-state "$d/keyfile.setup" --createek --keyfile "$d/k256.hex" \
  --cipher aes-256-cbc --logfile "$d/setup.log" --overwrite >/dev/null 2>&1; then
  t_pass a-swtpm-setup-ek
else
  t_fail a-swtpm-setup-ek "$(tail -n 2 "$d/setup.log")"
fi
adopt keyfile "file=$d/k256.hex,format=hex,mode=aes-256-cbc"
adopt pwd-pbkdf2 "pwdfile=$d/pw"
adopt pwd-sha512 "pwdfile=$d/pw,kdf=sha512,mode=aes-256-cbc"
adopt binary128 "file=$d/k128.bin,format=binary"
# libvirt passes the passphrase as a descriptor (vtpmd reads it from fd 7 here)
FDSPEC="pwdfd=7,mode=aes-256-cbc" adopt pwdfd "pwdfile=$d/pw,mode=aes-256-cbc"

# ---- b: migration blobs both ways ----------------------------------------------------------
# save NAME: GET_STATEBLOB permanent and volatile into $d/NAME.{perm,vol}
save() {
  swtpm_ioctl --tcp 127.0.0.1:$((P + 1)) --save permanent "$d/$1.perm" &&
    swtpm_ioctl --tcp 127.0.0.1:$((P + 1)) --save volatile "$d/$1.vol"
}
# load NAME: STOP, SET_STATEBLOB both, INIT
load() {
  swtpm_ioctl --tcp 127.0.0.1:$((P + 1)) --stop &&
    swtpm_ioctl --tcp 127.0.0.1:$((P + 1)) --load permanent "$d/$1.perm" &&
    swtpm_ioctl --tcp 127.0.0.1:$((P + 1)) --load volatile "$d/$1.vol" &&
    swtpm_ioctl --tcp 127.0.0.1:$((P + 1)) -i
}
mkdir -p "$d/b1" "$d/b2" "$d/b3" "$d/b4" "$d/b5"
# swtpm -> vtpmd
run "$SWTPM" "$d/b1" "$d/b1.log" --key "file=$d/k256.hex,format=hex,mode=aes-256-cbc" --migration-key "$MIG"
"$TPMC" "$P" nvdefine $NV 8 >/dev/null 2>&1
"$TPMC" "$P" nvloop $NV 1 100 >/dev/null 2>&1
t_check b-swtpm-save save sw
stop
t_eq b-swtpm-blob-flags 0016 "$(od -An -tx1 -j 4 -N 2 "$d/sw.perm" | tr -d ' \n')"
run "$VTPMD" "$d/b2" "$d/b2.log" --key "pwdfile=$d/pw" --migration-key "$MIG"
t_check b-swtpm-to-vtpmd-load load sw
t_eq b-swtpm-to-vtpmd-nv 101 "$(nvread)"
"$TPMC" "$P" nvloop $NV 1 101 >/dev/null 2>&1
# vtpmd -> swtpm
t_check b-vtpmd-save save vt
stop
t_eq b-vtpmd-blob-flags 0016 "$(od -An -tx1 -j 4 -N 2 "$d/vt.perm" | tr -d ' \n')"
run "$SWTPM" "$d/b3" "$d/b3.log" --migration-key "$MIG"
t_check b-vtpmd-to-swtpm-load load vt
t_eq b-vtpmd-to-swtpm-nv 102 "$(nvread)"
stop
# wrong migration key: refused with TPM_DECRYPT_ERROR, by vtpmd and by swtpm alike
run "$VTPMD" "$d/b4" "$d/b4.log" --migration-key "file=$d/other.hex,format=hex,mode=aes-256-cbc"
swtpm_ioctl --tcp 127.0.0.1:$((P + 1)) --stop >/dev/null 2>&1
out=$(swtpm_ioctl --tcp 127.0.0.1:$((P + 1)) --load permanent "$d/sw.perm" 2>&1)
case $out in *0x21*) t_pass b-vtpmd-wrong-key-0x21 ;; *) t_fail b-vtpmd-wrong-key-0x21 "$out" ;; esac
grep -q "HMAC does not match" "$d/b4.log" && t_pass b-vtpmd-wrong-key-logged || t_fail b-vtpmd-wrong-key-logged "$(tail -n 2 "$d/b4.log")"
stop
# no migration key: TPM_KEYNOTFOUND
run "$VTPMD" "$d/b5" "$d/b5.log"
swtpm_ioctl --tcp 127.0.0.1:$((P + 1)) --stop >/dev/null 2>&1
out=$(swtpm_ioctl --tcp 127.0.0.1:$((P + 1)) --load permanent "$d/sw.perm" 2>&1)
case $out in *0xd*) t_pass b-vtpmd-no-key-0xd ;; *) t_fail b-vtpmd-no-key-0xd "$out" ;; esac
stop

# ---- c: export-swtpm ------------------------------------------------------------------------
# the vTPM adopted in a (EK from swtpm_setup, NV 42, vtpmd state) goes back to swtpm
K="file=$d/k256.hex,format=hex,mode=aes-256-cbc"
src=$d/keyfile
run "$VTPMD" "$src" "$d/c0.log" --key "$K"
"$TPMC" "$P" nvloop $NV 1 42 >/dev/null 2>&1
want=$(nvread)
ek_v=$(ekpub "$d/c.ekv")
out=$("$VTPMD" export-swtpm --tpmstate dir="$src" --key "$K" --out "$d/exp" 2>&1)
case $out in *"in use"*) t_pass c-export-refused-while-running ;; *) t_fail c-export-refused-while-running "$out" ;; esac
stop
out=$("$VTPMD" export-swtpm --tpmstate dir="$src" --key "file=$d/other.hex,format=hex,mode=aes-256-cbc" --out "$d/exp" 2>&1)
case $out in *authentication*|*wrong*) t_pass c-export-wrong-key-refused ;; *) t_fail c-export-wrong-key-refused "$out" ;; esac
[ ! -e "$d/exp/tpm2-00.permall" ] && t_pass c-export-wrong-key-writes-nothing || t_fail c-export-wrong-key-writes-nothing
t_check c-export "$VTPMD" export-swtpm --tpmstate dir="$src" --key "$K" --out "$d/exp"
out=$("$VTPMD" export-swtpm --tpmstate dir="$src" --key "$K" --out "$d/exp" 2>&1)
case $out in *"already holds swtpm state"*) t_pass c-export-no-overwrite ;; *) t_fail c-export-no-overwrite "$out" ;; esac
run "$SWTPM" "$d/exp" "$d/c1.log" --key "file=$d/k256.hex,mode=aes-256-cbc"
t_eq c-swtpm-nv "$want" "$(nvread)"
if [ -n "$ek_v" ]; then
  t_eq c-swtpm-ek-unchanged "$ek_v" "$(ekpub "$d/c.eks")"
else
  t_fail c-ek-readable "tpm2_readpublic of the EK 0x81010001 failed on vtpmd"
fi
stop
# plain export (no key) of a plain vtpmd state, read by swtpm without a key
mkdir -p "$d/plain"
run "$VTPMD" "$d/plain" "$d/c2.log"
"$TPMC" "$P" nvdefine $NV 8 >/dev/null 2>&1
"$TPMC" "$P" nvloop $NV 1 6 >/dev/null 2>&1
stop
t_check c-export-plain "$VTPMD" export-swtpm --tpmstate dir="$d/plain" --out "$d/exp2"
run "$SWTPM" "$d/exp2" "$d/c3.log"
t_eq c-swtpm-plain-nv 7 "$(nvread)"
stop
t_done
