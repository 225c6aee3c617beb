#!/usr/bin/env bash
# --migration-key: state blobs leave vtpmd sealed in swtpm's format (no plaintext on the wire), load into a
# vtpmd with the same key, and are refused with a precise code by one with another key or
# none. Driven by the real swtpm_ioctl, as libvirt's migration would through QEMU.
. "$(dirname "$0")/../lib.sh"
need_tool swtpm_ioctl || t_done
TPMC=$BUILD/tests/tools/tpmc
[ -x "$TPMC" ] || { t_fail build "$TPMC is missing (run make)"; t_done; }

d=$(t_tmpdir)
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$d/mig.key"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$d/other.key"
NV=0x01500077

# start NAME [vtpmd args...]: a vtpmd with unix control and data sockets in $d/NAME
start() {
  local n=$1
  shift
  mkdir -p "$d/$n/state"
  bg_start "$VTPMD" socket --tpm2 --tpmstate dir="$d/$n/state" --ctrl type=unixio,path="$d/$n/ctrl" \
    --server type=unixio,path="$d/$n/data" "$@"
  wait_for_path "$d/$n/ctrl" || t_fail "$n-start" "no control socket"
}

start src --flags not-need-init,startup-clear --migration-key file="$d/mig.key",format=hex,mode=aes-256-cbc
src_pid=$BG_PID
t_check src-nvdefine "$TPMC" -w 2000 "$d/src/data" nvdefine $NV 64
t_check src-nvwrite "$TPMC" "$d/src/data" nvwrite $NV "migrated-secret-marker-0123456789"
t_eq src-config-flags "ptm configuration flags: 0x2" "$(swtpm_ioctl --unix "$d/src/ctrl" -g 2>&1)"
t_check src-save-permanent swtpm_ioctl --unix "$d/src/ctrl" --save permanent "$d/perm.blob"
t_check src-save-volatile swtpm_ioctl --unix "$d/src/ctrl" --save volatile "$d/vol.blob"
if grep -q "migrated-secret-marker" "$d/perm.blob" "$d/vol.blob"; then
  t_fail blobs-sealed "the NV secret is readable in the saved blobs"
else
  t_pass blobs-sealed
fi
flags=$(od -An -tx1 -j 4 -N 2 "$d/perm.blob" | tr -d ' \n')
# swtpm's format (MIGRATION_ENCRYPTED | MIGRATION_DATA | MIGRATION_256BIT_KEY), which swtpm
# reads too (swtpm_adopt.sh)
t_eq blob-flags-migration-encrypted 0016 "$flags"
want=$("$TPMC" "$d/src/data" nvread $NV 2>&1)
bg_kill "$src_pid"

# load NAME TYPE FILE: prints swtpm_ioctl's exit status and message
load() { swtpm_ioctl --unix "$d/$1/ctrl" --load "$2" "$3" 2>&1; echo "rc=$?"; }

start same --migration-key file="$d/mig.key",format=hex,mode=aes-256-cbc
t_check same-stop swtpm_ioctl --unix "$d/same/ctrl" --stop
t_eq same-load-permanent "rc=0" "$(load same permanent "$d/perm.blob" | tail -n 1)"
t_eq same-load-volatile "rc=0" "$(load same volatile "$d/vol.blob" | tail -n 1)"
t_check same-init swtpm_ioctl --unix "$d/same/ctrl" -i
t_eq same-nv-value "$want" "$("$TPMC" -w 2000 "$d/same/data" nvread $NV 2>&1)"

start other --migration-key file="$d/other.key",format=hex,mode=aes-256-cbc
swtpm_ioctl --unix "$d/other/ctrl" --stop >/dev/null 2>&1
out=$(load other permanent "$d/perm.blob")
case $out in *0x21*) t_pass other-key-decrypt-error ;; *) t_fail other-key-decrypt-error "$out" ;; esac

start nokey
swtpm_ioctl --unix "$d/nokey/ctrl" --stop >/dev/null 2>&1
out=$(load nokey permanent "$d/perm.blob")
case $out in *0xd*) t_pass no-key-keynotfound ;; *) t_fail no-key-keynotfound "$out" ;; esac
t_done
