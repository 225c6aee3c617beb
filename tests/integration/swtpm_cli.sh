#!/usr/bin/env bash
# tests/integration/swtpm_cli.sh — swtpm 0.7.1's command-line forms and defaults, as the
# tools and scripts that start swtpm use them, work on vtpmd with swtpm's meaning:
#   tcp/      `--server port=N` without type= (tpm2-tools' and tpm2-tss' test harnesses) serves
#             TCP on 127.0.0.1 only; TPM_PORT and `-p PORT` give the port the same way
#   path/     TPM_PATH is the state directory when --tpmstate is absent
#   file/     `--tpmstate backend-uri=file://PATH` keeps the state in that one file
#   fd/       `--fd N` (a connected socket) and `--ctrl type=tcp,fd=N` (a listening socket)
#   caps/     --print-capabilities lists swtpm 0.7.1's features with RSA 1024/2048/3072, so
#   rsa3072/  `swtpm_setup --rsa-keysize 3072 --create-ek-cert` gives an RSA-3072 EK and cert
#   refuse/   chardev/CUSE are refused in swtpm's words
# Usage: [VTPMD=path] [BUILD=build] bash tests/integration/swtpm_cli.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
need_tool tpm2_startup tpm2_getrandom tpm2_nvdefine tpm2_nvreadpublic tpm2_readpublic \
  tpm2_nvread swtpm_setup openssl ss python3 jq || t_done

TO=10
D=$(t_tmpdir)

# _up PID DATA_PORT CTRL_PORT: both ports accept connections (5 s)
_up() { _wait_tcp "$1" "$3" && _wait_tcp "$1" "$2"; }
# _stop PID: ask vtpmd to stop (SIGTERM), wait for it
_stop() {
  kill -TERM "$1" 2>/dev/null
  _reap "$1" 5
}
# _tools PORT CMD...: run a tpm2-tools command against vtpmd on PORT (swtpm TCTI)
_tools() {
  local port=$1
  shift
  TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$port" timeout "$TO" "$@"
}
# _listen_addrs PID: the local addresses PID listens on (ss), one a line
_listen_addrs() { ss -Htlnp 2>/dev/null | grep "pid=$1," | awk '{print $4}' | sort; }

# --- tcp/: --server port=N without type=, as tpm2-tools' integration suite starts swtpm
port=$(free_port)
mkdir -p "$D/tcp"
bg_start "$VTPMD" socket --tpm2 --server port="$port" --ctrl type=tcp,port=$((port + 1)) \
  --flags not-need-init --tpmstate dir="$D/tcp" >"$D/tcp.log" 2>&1
pid=$BG_PID
if _up "$pid" "$port" $((port + 1)); then
  t_pass tcp/server-port-without-type-starts
  t_check tcp/tpm2-startup _tools "$port" tpm2_startup -c
  t_check tcp/tpm2-getrandom _tools "$port" tpm2_getrandom --hex 8
  t_eq tcp/listens-on-loopback-only "127.0.0.1:$port 127.0.0.1:$((port + 1))" \
    "$(_listen_addrs "$pid" | tr '\n' ' ' | sed 's/ $//')"
  _stop "$pid"
else
  t_fail tcp/server-port-without-type-starts "$(tail -n 2 "$D/tcp.log" | tr '\n' ' ')"
fi

# TPM_PORT: --server without port= (and with disconnect, swtpm's per-command connections)
port=$(free_port)
mkdir -p "$D/env-port"
TPM_PORT=$port bg_start "$VTPMD" socket --tpm2 --server type=tcp,disconnect \
  --ctrl type=tcp,port=$((port + 1)) --flags not-need-init,startup-clear \
  --tpmstate dir="$D/env-port" >"$D/env-port.log" 2>&1
pid=$BG_PID
if _up "$pid" "$port" $((port + 1)); then
  t_check tcp/tpm-port-env-gives-the-port _tools "$port" tpm2_getrandom --hex 8
  _stop "$pid"
else
  t_fail tcp/tpm-port-env-gives-the-port "$(tail -n 2 "$D/env-port.log" | tr '\n' ' ')"
fi

# A port given nowhere: refused, naming where a port may come from
out=$(env -u TPM_PORT "$VTPMD" socket --tpm2 --server type=tcp --tpmstate dir="$D" 2>&1)
case $out in
*"needs port= or fd="*TPM_PORT*) t_pass tcp/no-port-refused ;;
*) t_fail tcp/no-port-refused "$out" ;;
esac
out=$("$VTPMD" socket --tpm2 --server port=2321,bindaddr=0.0.0.0 --tpmstate dir="$D" 2>&1)
case $out in
*"only loopback"*) t_pass tcp/non-loopback-bindaddr-refused ;;
*) t_fail tcp/non-loopback-bindaddr-refused "$out" ;;
esac

# --- path/: TPM_PATH (no --tpmstate), with swtpm's -p PORT
port=$(free_port)
mkdir -p "$D/tpm-path"
TPM_PATH=$D/tpm-path bg_start "$VTPMD" socket --tpm2 -p "$port" \
  --ctrl type=tcp,port=$((port + 1)) --flags not-need-init,startup-clear >"$D/path.log" 2>&1
pid=$BG_PID
if _up "$pid" "$port" $((port + 1)); then
  t_check path/p-port-serves _tools "$port" tpm2_getrandom --hex 8
  t_check path/nv-define _tools "$port" tpm2_nvdefine 0x01500001 -C o -s 8 -a "ownerread|ownerwrite"
  _stop "$pid"
  if [ -s "$D/tpm-path/vtpm2.state" ]; then
    t_pass path/state-written-in-tpm-path
  else
    t_fail path/state-written-in-tpm-path "no $D/tpm-path/vtpm2.state: $(ls -A "$D/tpm-path")"
  fi
else
  t_fail path/p-port-serves "$(tail -n 2 "$D/path.log" | tr '\n' ' ')"
fi
out=$(env -u TPM_PATH "$VTPMD" socket --tpm2 -p 2321 2>&1)
case $out in
*"TPM_PATH"*) t_pass path/no-state-dir-refused ;;
*) t_fail path/no-state-dir-refused "$out" ;;
esac

# --- file/: backend-uri=file://PATH: one file; the state survives a restart
mkdir -p "$D/file"
img=$D/file/vm1-tpm.img
for round in 1 2; do
  port=$(free_port)
  bg_start "$VTPMD" socket --tpm2 --server port="$port" --ctrl type=tcp,port=$((port + 1)) \
    --flags not-need-init,startup-clear --tpmstate "backend-uri=file://$img" \
    >>"$D/file.log" 2>&1
  pid=$BG_PID
  if ! _up "$pid" "$port" $((port + 1)); then
    t_fail "file/round-$round-starts" "$(tail -n 2 "$D/file.log" | tr '\n' ' ')"
    break
  fi
  if [ "$round" = 1 ]; then
    t_check file/nv-define _tools "$port" tpm2_nvdefine 0x01500002 -C o -s 8 \
      -a "ownerread|ownerwrite"
  else
    t_check file/nv-index-survives-restart _tools "$port" tpm2_nvreadpublic 0x01500002
  fi
  _stop "$pid"
done
t_eq file/only-the-file-and-its-lock "vm1-tpm.img vm1-tpm.img.lock" \
  "$(ls -A "$D/file" | sort | tr '\n' ' ' | sed 's/ $//')"
out=$("$VTPMD" socket --tpm2 --server port=1 --tpmstate backend-uri=file://"$D/file/" 2>&1)
case $out in
*"names a directory"*) t_pass file/directory-refused ;;
*) t_fail file/directory-refused "$out" ;;
esac

# --- fd/: -f/--fd N (connected data socket) and --ctrl type=tcp,fd=N (listening socket)
mkdir -p "$D/fd"
out=$(timeout 20 python3 - "$VTPMD" "$D/fd" <<'PY' 2>&1
import socket, subprocess, sys, struct
vtpmd, state = sys.argv[1], sys.argv[2]
data, peer = socket.socketpair()
lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
lst.bind(("127.0.0.1", 0)); lst.listen(1)
p = subprocess.Popen([vtpmd, "socket", "--tpm2", "--tpmstate", "dir=" + state,
                      "--fd", str(peer.fileno()), "--ctrl", "type=tcp,fd=%d" % lst.fileno(),
                      "--flags", "not-need-init,startup-clear"],
                     pass_fds=(peer.fileno(), lst.fileno()))
peer.close()
port = lst.getsockname()[1]
lst.close()
data.settimeout(5)
# TPM2_GetRandom(8) on the data socket
data.sendall(bytes.fromhex("80010000000c0000017b0008"))
rsp = data.recv(4096)
ok_data = len(rsp) == 20 and rsp[6:10] == b"\0\0\0\0"
# CMD_GET_CAPABILITY on a connection to the listening control socket
c = socket.create_connection(("127.0.0.1", port), timeout=5)
c.sendall(struct.pack(">I", 1))
cap = c.recv(64)
ok_ctrl = len(cap) == 8 and cap[:4] == b"\0\0\0\0"
c.close()
data.close()  # --fd implies terminate: vtpmd exits when the data client hangs up
try:
    rc = p.wait(timeout=5)
except subprocess.TimeoutExpired:
    p.kill(); rc = "still running"
print("data=%s ctrl=%s exit=%s" % (ok_data, ok_ctrl, rc))
PY
)
t_eq fd/fd-and-ctrl-tcp-fd "data=True ctrl=True exit=0" "$(tail -n 1 <<<"$out")"
out=$("$VTPMD" socket --tpm2 --tpmstate dir="$D/fd" --fd 1 2>&1)
case $out in
*"-f/--fd: 1 is out of range"*) t_pass fd/stdio-refused ;;
*) t_fail fd/stdio-refused "$out" ;;
esac
: >"$D/plain-file"
out=$("$VTPMD" socket --tpm2 --tpmstate dir="$D/fd" --fd 9 2>&1 9<"$D/plain-file")
case $out in
*"not a socket"*) t_pass fd/non-socket-refused ;;
*) t_fail fd/non-socket-refused "$out" ;;
esac

# --- caps/: swtpm 0.7.1's capability names, and what swtpm_setup derives from them
caps=$("$VTPMD" socket --tpm2 --print-capabilities 2>&1)
for f in cmdarg-seccomp nvram-backend-dir nvram-backend-file rsa-keysize-2048 rsa-keysize-3072; do
  if jq -e --arg f "$f" '.features | index($f)' <<<"$caps" >/dev/null 2>&1; then
    t_pass "caps/$f"
  else
    t_fail "caps/$f" "$caps"
  fi
done
mkdir -p "$D/bin"
ln -s "$VTPMD" "$D/bin/swtpm"
setup_caps=$(PATH=$D/bin:$PATH swtpm_setup --tpm2 --print-capabilities 2>&1)
if jq -e '.features | index("tpm2-rsa-keysize-3072")' <<<"$setup_caps" >/dev/null 2>&1; then
  t_pass caps/swtpm-setup-derives-rsa-3072
else
  t_fail caps/swtpm-setup-derives-rsa-3072 "$setup_caps"
fi

# --- rsa3072/: swtpm_setup --rsa-keysize 3072 with vtpmd as swtpm
mkdir -p "$D/rsa"
if PATH=$D/bin:$PATH swtpm_setup --tpm2 --tpm-state "$D/rsa" --createek --create-ek-cert \
  --rsa-keysize 3072 --lock-nvram --logfile "$D/rsa-setup.log" >/dev/null 2>&1; then
  t_pass rsa3072/swtpm-setup-exit-0
  port=$(free_port)
  bg_start "$VTPMD" socket --tpm2 --tpmstate dir="$D/rsa" --server port="$port" \
    --ctrl type=tcp,port=$((port + 1)) --flags not-need-init,startup-clear >"$D/rsa.log" 2>&1
  pid=$BG_PID
  if _up "$pid" "$port" $((port + 1)); then
    # swtpm_setup 0.7.1 keeps the RSA-3072 EK at 0x8101001c, its certificate in 0x1c0001c
    pub=$(_tools "$port" tpm2_readpublic -c 0x8101001c 2>&1)
    case $pub in
    *"bits: 3072"*) t_pass rsa3072/ek-is-rsa-3072 ;;
    *) t_fail rsa3072/ek-is-rsa-3072 "$(tr '\n' ' ' <<<"$pub" | cut -c1-200)" ;;
    esac
    if _tools "$port" tpm2_nvread 0x1c0001c -C 0x1c0001c -o "$D/ek3072.der" >/dev/null 2>&1 ||
      _tools "$port" tpm2_nvread 0x1c0001c -o "$D/ek3072.der" >/dev/null 2>&1; then
      txt=$(openssl x509 -inform DER -in "$D/ek3072.der" -noout -text 2>&1)
      case $txt in
      *"Public-Key: (3072 bit)"*) t_pass rsa3072/ek-cert-is-rsa-3072 ;;
      *) t_fail rsa3072/ek-cert-is-rsa-3072 "$(grep -m1 'Public-Key' <<<"$txt")" ;;
      esac
    else
      t_fail rsa3072/ek-cert-is-rsa-3072 "cannot read NV index 0x1c0001c"
    fi
    _stop "$pid"
  else
    t_fail rsa3072/ek-is-rsa-3072 "vtpmd did not start: $(tail -n 2 "$D/rsa.log" | tr '\n' ' ')"
  fi
else
  t_fail rsa3072/swtpm-setup-exit-0 "$(tail -n 3 "$D/rsa-setup.log" | tr '\n' ' ')"
fi

# --- refuse/: the interfaces vtpmd does not have, in swtpm's words
for mode in chardev cuse; do
  out=$("$VTPMD" "$mode" --tpm2 --help 2>&1)
  case $out in
  *"Unsupported TPM interface"*) t_pass "refuse/$mode" ;;
  *) t_fail "refuse/$mode" "$out" ;;
  esac
done
t_done
