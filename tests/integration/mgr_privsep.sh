#!/usr/bin/env bash
# tests/integration/mgr_privsep.sh — vtpmmgrd's privilege separation (issue 9).
#
# The instance socket is open to every local user; the bytes sent on it are read by the
# listener only, a process of its own (listener.h). This test shows, on a running manager:
#  - the listener is a child of the manager, running vtpmmgrd's own executable, as an
#    unprivileged user (when the manager is root), non-dumpable, NO_NEW_PRIVS, seccomp
#    filter mode, and holds no descriptor of the store, the host TPM or the listening
#    sockets;
#  - the parent reads no instance connection: traced while a vtpmd opens and writes and a
#    peer sends junk, every recvmsg of the parent's main thread is on the listener's
#    socketpair (or the admin socket's connections);
#  - killed (-9), the listener is started again; the running vtpmd reconnects, resumes, and
#    its writes go on; no second instance of its vTPM is let in meanwhile;
#  - malformed datagrams are still answered with their precise reason (through the listener).
# Usage: [BUILD=build] bash tests/integration/mgr_privsep.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

need_tool swtpm jq timeout strace ss python3 || t_done
for f in "$BUILD/vtpmd" "$BUILD/vtpmmgrd" "$BUILD/vtpmctl" "$BUILD/tests/tools/mgrc" "$BUILD/tests/tools/tpmc"; do
  [ -x "$f" ] || { t_fail build "$f is not an executable (run make first)"; t_done; }
done
W=$(t_tmpdir)
A=$W/admin.sock
I=$W/inst.sock
DB=$W/store.db
LABEL=guest1_u:vm_r:vtpm_t
NV=0x01500020
export VTPM_ADMIN_SOCKET=$A
lastline() { grep . "$@" 2>/dev/null | tail -n 1; }
ctl() {
  OUT=$(timeout 60 "$BUILD/vtpmctl" "$@" 2>&1 </dev/null)
  RC=$?
}
start_host_tpm "$W/host-tpm" "$W/swtpm.log" || { t_fail privsep-host-tpm "swtpm did not start"; t_done; }
bg_start "$BUILD/vtpmmgrd" --tcti "$HOST_TCTI" --store "$DB" --instance-socket "$I" \
  --admin-socket "$A" --nv-index 0x01000e31 --log "file=$W/vtpmmgrd.log,level=3"
MGR=$BG_PID
wait_for_path "$A" 150 && wait_for_path "$I" 10 || { t_fail privsep-mgr-start "$(lastline "$W/vtpmmgrd.log")"; t_done; }

# listener_pid: the manager's child running the listener (empty if none)
listener_pid() {
  local p
  for p in $(cat /proc/"$MGR"/task/*/children 2>/dev/null); do
    if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q -- '--listener-child'; then
      echo "$p"
      return
    fi
  done
}
wait_listener() { # wait_listener [NOT_PID]: until a listener other than NOT_PID runs
  local k
  for ((k = 0; k < 100; k++)); do
    L=$(listener_pid)
    [ -n "$L" ] && [ "$L" != "${1:-}" ] && grep -q '^Seccomp:[[:space:]]*2' "/proc/$L/status" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}
wait_listener || { t_fail privsep-listener-runs "no listener child of pid $MGR: $(lastline "$W/vtpmmgrd.log")"; t_done; }
t_pass privsep-listener-runs
st=/proc/$L/status
t_eq privsep-listener-seccomp 2 "$(awk '/^Seccomp:/ {print $2}' "$st")"
t_eq privsep-listener-no-new-privs 1 "$(awk '/^NoNewPrivs:/ {print $2}' "$st")"
if [ "$(id -u)" = 0 ]; then
  uid=$(awk '/^Uid:/ {print $2 $3 $4 $5}' "$st")
  if [ -n "$uid" ] && [ "$uid" != 0000 ] && [ "$(awk '/^Uid:/ {print $2}' "$st")" != 0 ]; then
    t_pass privsep-listener-unprivileged
  else
    t_fail privsep-listener-unprivileged "Uid line: $(grep ^Uid: "$st")"
  fi
  t_eq privsep-listener-no-groups "" "$(awk '/^Groups:/ {$1=""; print}' "$st" | tr -d ' ')"
  # non-dumpable: its /proc files belong to root, not to its own uid
  t_eq privsep-listener-nondumpable root "$(stat -c %U "/proc/$L/environ")"
  t_eq privsep-listener-caps 0000000000000000 "$(awk '/^CapEff:/ {print $2}' "$st")"
else
  t_skip privsep-listener-unprivileged "not root: the listener keeps the manager's uid"
fi
# what it holds: stdio, the socketpair, the log; never the store, the TPM, the listeners
fds() { ls -l "/proc/$1/fd" 2>/dev/null | awk 'NR > 1 {print $NF}'; }
lfds=$(fds "$L")
if grep -q -e "$DB" -e "$W/" <<<"$lfds" && ! grep -qx "$W/vtpmmgrd.log" <<<"$(grep "$W/" <<<"$lfds")"; then
  t_fail privsep-listener-fds "it holds: $(tr '\n' ' ' <<<"$lfds")"
elif [ "$(grep -c '^socket:' <<<"$lfds")" != 1 ]; then
  t_fail privsep-listener-fds "sockets other than its socketpair: $(tr '\n' ' ' <<<"$lfds")"
else
  t_pass privsep-listener-fds
fi
# the parent's end of the socketpair: the socket inode the listener's fd 3 pairs with
pair_inode=$(readlink "/proc/$L/fd/3" | tr -dc 0-9)

ctl host init --pcrs 0 || { t_fail privsep-host-init "$OUT"; t_done; }
ctl group create g --label '*:vm_r:vtpm_t' --digest-of "$BUILD/vtpmd" || { t_fail privsep-group "$OUT"; t_done; }
ctl vtpm create --group g
UUID=$OUT
[[ "$UUID" =~ ^[0-9a-f-]{36}$ ]] || { t_fail privsep-vtpm-create "$OUT"; t_done; }

# trace the parent's main thread (not the TPM thread) while everything below happens
strace -qq -p "$MGR" -e trace=accept,accept4,close,recvmsg,recvfrom,recvmmsg,read -o "$W/parent.trace" &
STRACE=$!
_t_pids+=("$STRACE")
sleep 0.5

start_vtpmd() {
  rm -f "$W/data.sock" "$W/ctrl.sock"
  bg_start "$BUILD/tests/tools/mgrc" --register-self "$A" "$LABEL" --exec "$BUILD/vtpmd" socket --tpm2 \
    --tpmstate dir="$W/state" --server type=unixio,path="$W/data.sock" \
    --ctrl type=unixio,path="$W/ctrl.sock" --flags not-need-init,startup-clear \
    --manager "$I" --uuid "$UUID" --log "file=$W/vtpmd.log,level=2"
  VPID=$BG_PID
  wait_for_path "$W/data.sock" 100
}
mkdir -p "$W/state"
start_vtpmd || { t_fail privsep-vtpmd-start "$(lastline "$W/vtpmd.log")"; t_done; }
tpmc() { timeout 30 "$BUILD/tests/tools/tpmc" -w 5000 "$W/data.sock" "$@"; }
if tpmc nvdefine "$NV" 8 >/dev/null 2>"$W/tpmc.err" && tpmc nvloop "$NV" 1 0 >/dev/null 2>>"$W/tpmc.err" &&
  [ "$(tpmc nvread "$NV" 2>>"$W/tpmc.err")" = 1 ]; then
  t_pass privsep-managed-writes
else
  t_fail privsep-managed-writes "$(lastline "$W/tpmc.err" "$W/vtpmd.log")"
fi
# junk on the instance socket: answered by its reason, through the listener
OUT=$(timeout 10 "$BUILD/tests/tools/mgrc" -s "$I" --raw 02020000000000ff 2>&1)
RC=$?
if [ "$RC" = 1 ] && grep -q "header says 255 body bytes, message has 0" <<<"$OUT"; then t_pass privsep-junk-answered; else t_fail privsep-junk-answered "rc=$RC: $OUT"; fi
sleep 0.3
kill -INT "$STRACE" 2>/dev/null
_reap "$STRACE" 5
# The parent's descriptors come and go (fd numbers are reused), so the trace is read in
# order: a descriptor accepted on the instance socket's listening descriptor is an instance
# connection until it is closed; a read of one is a failure.
ino=$(ss -xl 2>/dev/null | awk -v p="$I" '$5 == p {print $6}' | head -n 1)
ifd=
for f in /proc/"$MGR"/fd/*; do [ "$(readlink "$f")" = "socket:[$ino]" ] && ifd=${f##*/}; done
if [ -z "$ino" ] || [ -z "$ifd" ]; then
  t_fail privsep-parent-reads-no-instance-connection "cannot find the instance socket's descriptor (ss: '$ino')"
else
  declare -A inst=()
  bad=
  while IFS= read -r line; do
    if [[ $line =~ ^accept4?\(([0-9]+),.*=\ ([0-9]+)$ ]]; then
      [ "${BASH_REMATCH[1]}" = "$ifd" ] && inst[${BASH_REMATCH[2]}]=1
    elif [[ $line =~ ^close\(([0-9]+)\) ]]; then
      unset "inst[${BASH_REMATCH[1]}]"
    elif [[ $line =~ ^(recvmsg|recvfrom|recvmmsg|read)\(([0-9]+), ]]; then
      [ -n "${inst[${BASH_REMATCH[2]}]:-}" ] && bad+="${line:0:80} "
    fi
  done <"$W/parent.trace"
  naccept=$(grep -cE "^accept4?\($ifd," "$W/parent.trace")
  if [ -z "$bad" ] && [ "$naccept" -ge 2 ]; then
    t_pass privsep-parent-reads-no-instance-connection
  else
    t_fail privsep-parent-reads-no-instance-connection "instance accepts traced: $naccept; reads of them: ${bad:-none}"
  fi
fi

# kill the listener: a new one, the vtpmd resumes, writes go on
OLD=$L
kill -KILL "$OLD"
if wait_listener "$OLD"; then t_pass privsep-listener-restarted; else t_fail privsep-listener-restarted "$(lastline "$W/vtpmmgrd.log")"; fi
if grep -q "the listener (pid $OLD) was killed by signal 9" "$W/vtpmmgrd.log"; then t_pass privsep-listener-loss-logged; else
  t_fail privsep-listener-loss-logged "$(lastline "$W/vtpmmgrd.log")"
fi
# a second instance of the running vTPM: refused (the first resumes and holds it)
OUT=$(timeout 20 "$BUILD/tests/tools/mgrc" -s "$I" --register-self "$A" "$LABEL" open uuid="$UUID" 2>&1)
RC=$?
if [ "$RC" = 5 ] || [ "$RC" = 3 ]; then t_pass privsep-second-instance-refused; else t_fail privsep-second-instance-refused "rc=$RC: $(tr '\n' ' ' <<<"$OUT" | cut -c1-200)"; fi
if tpmc nvloop "$NV" 1 1 >/dev/null 2>"$W/tpmc.err" && [ "$(tpmc nvread "$NV" 2>>"$W/tpmc.err")" = 2 ]; then
  t_pass privsep-writes-after-listener-loss
else
  t_fail privsep-writes-after-listener-loss "$(lastline "$W/tpmc.err" "$W/vtpmd.log")"
fi
ctl --json vtpm show "$UUID"
t_eq privsep-vtpm-open-by-vtpmd "true $VPID" "$(jq -r '"\(.open) \(.pid)"' <<<"$OUT")"
if _alive "$MGR"; then t_pass privsep-manager-alive; else t_fail privsep-manager-alive "vtpmmgrd died"; fi

# the committed write is durable: restart vtpmd, read it back
kill -TERM "$VPID"
_reap "$VPID" 10
if start_vtpmd && [ "$(tpmc nvread "$NV" 2>"$W/tpmc.err")" = 2 ]; then t_pass privsep-write-durable; else
  t_fail privsep-write-durable "$(lastline "$W/tpmc.err" "$W/vtpmd.log")"
fi
kill -TERM "$VPID"
_reap "$VPID" 10

# a stopped listener does not stop the manager: once it has taken nothing for a second, the
# parent kills it and starts another; the admin socket is served meanwhile
wait_listener || true
OLD=$L
kill -STOP "$OLD"
python3 - "$I" <<'PY' &
import signal, socket, sys, time
signal.alarm(20)
conns = []
for _ in range(1500):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:  # a blocking connect: it waits while the backlog is full
        s.connect(sys.argv[1])
    except OSError:
        break
    conns.append(s)
time.sleep(4)
PY
FLOOD=$!
_t_pids+=("$FLOOD")
ctl --json host status
t_eq privsep-admin-served-while-listener-stopped 0 "$RC"
if wait_listener "$OLD" && for ((k = 0; k < 100; k++)); do grep -q "the listener (pid $OLD) takes nothing for 1 s" "$W/vtpmmgrd.log" && break; sleep 0.1; done &&
  grep -q "the listener (pid $OLD) takes nothing for 1 s" "$W/vtpmmgrd.log"; then
  t_pass privsep-stopped-listener-replaced
else
  t_fail privsep-stopped-listener-replaced "listener ${L:-none}; $(lastline "$W/vtpmmgrd.log")"
fi
_reap "$FLOOD" 10
OUT=$(timeout 10 "$BUILD/tests/tools/mgrc" -s "$I" --raw 02020000000000ff 2>&1)
t_eq privsep-served-after-replacement 1 "$?"

# a clean stop takes the listener with it, even a stopped one (killed after 1 s)
wait_listener || true
L=$(listener_pid)
[ -n "$L" ] && kill -STOP "$L"
kill -TERM "$MGR"
_reap "$MGR" 20
t_eq privsep-mgr-clean-exit 0 "$_rc"
if [ -n "$L" ] && ! kill -0 "$L" 2>/dev/null; then t_pass privsep-listener-exits-with-manager; else
  t_fail privsep-listener-exits-with-manager "listener ${L:-?} still runs"
fi
t_done
