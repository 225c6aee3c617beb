#!/usr/bin/env bash
# Hostile bytes on the control and data channels of a running vtpmd: each gets a precise
# error or a closed connection; the daemon keeps serving and the stored state is untouched.
. "$(dirname "$0")/../lib.sh"
need_tool tpm2_nvread tpm2_nvdefine sha256sum || t_done
POKE=$BUILD/tests/tools/sockpoke
[ -x "$POKE" ] || { t_fail build "$POKE is missing (run make)"; t_done; }

d=$(t_tmpdir)
mkdir -p "$d/state"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$d/key"
# Unix sockets for both channels (SCM_RIGHTS needs one); the swtpm TCTI finds the control
# socket at the data path + ".ctrl".
bg_start "$VTPMD" socket --tpm2 --tpmstate dir="$d/state" --ctrl type=unixio,path="$d/data.ctrl" \
  --server type=unixio,path="$d/data" --key file="$d/key",format=hex,mode=aes-256-cbc \
  --flags not-need-init,startup-clear --log file="$d/log",level=5
pid=$BG_PID
wait_for_path "$d/data.ctrl" || { t_fail start "vtpmd did not create its control socket"; t_done; }
export TPM2TOOLS_TCTI="swtpm:path=$d/data"
printf 'hostile-marker-0123456789abcdef!' >"$d/nv.in"
ok_nv=0
tpm2_nvdefine 0x1500020 -C o -s 32 -a "ownerread|ownerwrite" >/dev/null 2>&1 &&
  tpm2_nvwrite 0x1500020 -C o -i "$d/nv.in" >/dev/null 2>&1 && ok_nv=1
t_eq setup-nv-write 1 "$ok_nv"
sum_before=$(sha256sum "$d/state/vtpm2.state" | cut -c1-64)

C=$d/data.ctrl
D=$d/data
# name, expected answer (hex, or EOF), then the arguments for sockpoke
check() {
  local name=$1 want=$2 got
  shift 2
  got=$("$POKE" "$@" 2>&1)
  t_eq "$name" "$want" "$got"
}
check ctrl-unknown-code 0000000a "$C" 000000ff
check ctrl-code-zero 0000000a "$C" 00000000
check ctrl-init-body-too-long 00000003 "$C" 000000020000000000
check ctrl-stop-with-body 00000003 "$C" 0000000e01
check ctrl-short-then-close EOF "$C" --close 0000
check ctrl-partial-init-stalls EOF "$C" 0000000200
check ctrl-hash-data-huge-length 00000003 "$C" 00000007ffffffff
check ctrl-set-stateblob-huge-length 00000009 "$C" 0000000d00000000000000017fffffff
check ctrl-set-stateblob-while-running 0000000a "$C" 0000000d000000000000000100000000
check ctrl-get-stateblob-bad-type 00000003000000000000000000000000 "$C" 0000000c000000010000000900000000
check ctrl-set-datafd-without-fd 00000003 "$C" 00000010
check ctrl-set-datafd-pipe 00000003 "$C" --fd 00000010
check ctrl-set-locality-9 0000003d "$C" 0000000509000000
check ctrl-reset-established-loc-7 0000003d "$C" 0000000b07
check ctrl-get-info-bad-offset 000000030000000000000000 "$C" 0000001200000000000000030000ffff00000000
check ctrl-random-4k 0000000a "$C" "$(head -c 4096 /dev/urandom | od -An -tx1 | tr -d ' \n' | sed 's/^/ff/')"
check data-size-huge 80010000000a00000142 "$D" 8001ffffffff00000144
check data-size-below-header 80010000000a00000142 "$D" 80010000000500000144
check data-tcg-size-huge 80010000000a00000142 "$D" 0000000800ffffffff
check data-partial-stalls EOF "$D" 80010000000c000001
# An unknown tag reaches libtpms, which answers with an error (not a crash).
check data-bad-tag 80010000000a00000084 "$D" 12340000000a0000017b

if kill -0 "$pid" 2>/dev/null; then t_pass daemon-alive; else t_fail daemon-alive "vtpmd died"; fi
sum_after=$(sha256sum "$d/state/vtpm2.state" | cut -c1-64)
t_eq state-file-untouched "$sum_before" "$sum_after"
tpm2_nvread 0x1500020 -C o -s 32 -o "$d/nv.out" >/dev/null 2>&1
t_eq nv-intact-after-hostile-input "$(od -An -tx1 "$d/nv.in")" "$(od -An -tx1 "$d/nv.out" 2>/dev/null)"
t_done
