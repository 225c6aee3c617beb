#!/usr/bin/env bash
# tests/integration/mgr_dos.sh — one local user cannot deny the manager to others (issue 9,
# items 4, 5 (connection side) and 6): a real swtpm as the host TPM, the real vtpmmgrd with
# short limits (--idle-timeout 2 --limits-interval 2 --audit-refusals-per-uid 5
# --max-conns 300), attackers in Python running as uid nobody and other unprivileged uids.
#
#  1. per-pid cap: one process of nobody opens 100 connections, 64 stay (the default cap);
#  2. per-uid cap: four processes of nobody open 240, 128 stay (the default cap);
#  3. idle timeout: those connections are all closed once 2 s have passed;
#  4. a full table: 8 unprivileged uids keep reconnecting thousands of connections (300
#     slots); a root `vtpmctl start` still succeeds (its vtpmd takes the place of an idle
#     connection), and its connection, with the vTPM open, outlives the idle timeout;
#  5. malformed flood: 2000 malformed datagrams from nobody each get an answer and a closed
#     connection, write no audit row, and are logged once plus one summary per window;
#  6. refused MGR_OPEN flood: 400 refused opens of a real vTPM by nobody write at most 5 rows
#     per 2-s window, then a row "N more refusals from uid 65534 suppressed", and the rows
#     plus the suppressed count add up to 400; root's requests are answered meanwhile;
#  7. the binary digest: an executable over 64 MiB is refused with that reason; one just under
#     it is hashed and served;
#  8. out of file descriptors: a second manager limited to 96 descriptors, filled by two uids'
#     connections: root's connection is still answered (an idle one is dropped for it) and
#     the shortage is logged once per window.
# Usage: [BUILD=build] bash tests/integration/mgr_dos.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

TOOL_TIMEOUT=30
need_tool swtpm setpriv python3 jq truncate || t_done
# the attackers run as other uids: a python3 they can execute (not one under /root)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
getent group nogroup >/dev/null || { t_fail nogroup "no group 'nogroup' on this host"; t_done; }
for b in "$BUILD/vtpmd" "$BUILD/vtpmmgrd" "$BUILD/vtpmctl" "$BUILD/tests/tools/mgrc"; do
  [ -x "$b" ] || { t_fail build "$b is missing (run make)"; t_done; }
done
W=$(t_tmpdir)
chmod 755 "$W"
mkdir -p "$W/bin"
cp "$BUILD/vtpmd" "$BUILD/vtpmmgrd" "$BUILD/vtpmctl" "$BUILD/tests/tools/mgrc" "$W/bin/" ||
  { t_fail copy "cannot copy the binaries"; t_done; }
MGRD=$W/bin/vtpmmgrd CTL=$W/bin/vtpmctl MGRC=$W/bin/mgrc
exec 4>&2 2>>"$W/shell.err"
trap 'exec 2>&4; grep -v " Killed " "$W/shell.err" >&2; _t_cleanup' EXIT

oneline() { tr '\n' ' ' <<<"$1" | cut -c1-400; }
ctl() {
  timeout "$TOOL_TIMEOUT" "$CTL" "$@" >"$W/out" 2>"$W/err" </dev/null
  RC=$?
  OUT=$(cat "$W/out")
  ERR=$(cat "$W/err")
}
ok() {
  local name=$1
  shift
  ctl "$@"
  if [ "$RC" -eq 0 ]; then t_pass "$name"; else t_fail "$name" "rc=$RC: $(oneline "$ERR")"; fi
  [ "$RC" -eq 0 ]
}
# as UID CMD...: run CMD as an unprivileged uid (group nogroup, no supplementary groups).
as() {
  local uid=$1
  shift
  setpriv --reuid "$uid" --regid nogroup --clear-groups "$@"
}
# audit_rows JQ-FILTER: how many of the newest 1000 audit rows match the filter.
audit_rows() {
  timeout "$TOOL_TIMEOUT" "$CTL" --json audit --count 1000 2>/dev/null |
    jq "[.events[] | select($1)] | length"
}
log_count() { grep -c -- "$1" "$LOG"; }

# The attacker: hold, hammer, junk, opens (see each mode).
cat >"$W/attack.py" <<'EOF'
import os, select, socket, struct, sys, time

mode, path = sys.argv[1], sys.argv[2]

def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(5)
    s.connect(path)
    return s

def alive(socks):
    p = select.poll()
    for s in socks:
        p.register(s, select.POLLIN)
    closed = {fd for fd, ev in p.poll(0)}
    return [s for s in socks if s.fileno() not in closed]

def children(n, fn):
    pids = []
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            try:
                fn()
            finally:
                os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)

if mode == "hold":
    # hold PATH NPROC PER SETTLE END OUT: NPROC processes connect PER times each and hold
    # the connections; each appends "early N" (alive after SETTLE s) and "late N" (after END s)
    nproc, per, settle, end, out = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]), sys.argv[7]
    def hold():
        t0 = time.monotonic()
        socks = []
        for _ in range(per):
            try:
                socks.append(connect())
            except OSError:
                pass
        time.sleep(max(0, t0 + settle - time.monotonic()))
        early = len(alive(socks))
        time.sleep(max(0, t0 + end - time.monotonic()))
        late = len(alive(socks))
        with open(out, "a") as f:
            f.write("early %d\nlate %d\n" % (early, late))
    children(nproc, hold)
elif mode == "hammer":
    # hammer PATH NPROC PER SECONDS OUT: NPROC processes keep PER connections each, opening
    # a new one whenever the manager closed one, for SECONDS; each appends "made N"
    nproc, per, secs, out = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
    def hammer():
        end = time.monotonic() + secs
        socks, made = [], 0
        while time.monotonic() < end:
            socks = alive(socks)
            while len(socks) < per and time.monotonic() < end:
                try:
                    socks.append(connect())
                    made += 1
                except OSError:
                    time.sleep(0.01)
            time.sleep(0.02)
        with open(out, "a") as f:
            f.write("made %d\n" % made)
    children(nproc, hammer)
elif mode == "junk":
    # junk PATH N: N connections, each sends one malformed datagram; prints how many got an
    # answer and how many were then closed by the manager
    n, answered, closed = int(sys.argv[3]), 0, 0
    for i in range(n):
        s = connect()
        s.send(b"\x01\x02" if i % 2 else b"\x77\x77\x00\x00\x00\x00\x00\x00")
        if s.recv(65536):
            answered += 1
        s.settimeout(0.5)  # closed at once, not by the idle timeout
        try:
            if s.recv(65536) == b"":
                closed += 1
        except OSError:
            pass
        s.close()
    print("answered %d closed %d" % (answered, closed))
elif mode == "opens":
    # opens PATH UUID N: N MGR_OPEN of UUID (reconnecting when closed); prints the statuses
    uuid = bytes.fromhex(sys.argv[3].replace("-", ""))
    n = int(sys.argv[4])
    body = struct.pack(">HH", 3, 16) + uuid
    msg = struct.pack(">HHI", 0x0101, 0, len(body)) + body
    statuses = {}
    s = connect()
    for _ in range(n):
        for attempt in range(2):
            try:
                s.send(msg)
                ans = s.recv(65536)
                if ans:
                    break
            except OSError:
                pass
            s.close()
            s = connect()
        # the status is the first field: tag 1, length 4, u32
        st = struct.unpack(">I", ans[12:16])[0] if len(ans) >= 16 else -1
        statuses[st] = statuses.get(st, 0) + 1
    print(" ".join("status%d=%d" % kv for kv in sorted(statuses.items())))
EOF
chmod 644 "$W/attack.py"

# ============================================================ set-up
start_host_tpm "$W/host-tpm" "$W/swtpm.log" || { t_fail host-tpm "swtpm did not start: $(tail -n 1 "$W/swtpm.log")"; t_done; }
TCTI=$HOST_TCTI
D=$W/mgr
mkdir -p "$D"
chmod 755 "$D"
A=$D/admin.sock I=$D/inst.sock LOG=$D/vtpmmgrd.log
export VTPM_ADMIN_SOCKET=$A
bg_start "$MGRD" --tcti "$TCTI" --store "$D/store.db" --instance-socket "$I" --admin-socket "$A" \
  --nv-index 0x01000d01 --log "file=$LOG" --idle-timeout 2 --limits-interval 2 \
  --audit-refusals-per-uid 5 --max-conns 300
MGR_PID=$BG_PID
if wait_for_path "$A" 100 && wait_for_path "$I" 10; then t_pass mgr-start; else
  t_fail mgr-start "$(tail -n 3 "$LOG")"
  t_done
fi
ok host-init host init --pcrs 0,7 || t_done
ok group group create ga --label '*:vm_r:vtpm_t' --any-binary || t_done
ctl vtpm create --group ga && VA=$OUT
ctl vtpm create --group ga && VB=$OUT
ctl vtpm create --group ga && VC=$OUT
if [ -n "${VA:-}" ] && [ -n "${VB:-}" ] && [ -n "${VC:-}" ]; then t_pass vtpms-created; else
  t_fail vtpms-created "$(oneline "$ERR")"
  t_done
fi
mkdir -p "$W/sa"

# ============================================================ 1-3. caps and idle timeout
rm -f "$W/pid.out" "$W/uid.out"
touch "$W/pid.out" "$W/uid.out"
chmod 666 "$W/pid.out" "$W/uid.out"
# (one after the other: the first one's 64 would count against nobody's 128)
as nobody "$PY" "$W/attack.py" hold "$I" 1 100 1.0 2.8 "$W/pid.out"
early=$(awk '$1 == "early" {s += $2} END {print s + 0}' "$W/pid.out")
t_eq per-pid-cap-64 64 "$early"
as nobody "$PY" "$W/attack.py" hold "$I" 4 60 1.0 2.8 "$W/uid.out"
early=$(awk '$1 == "early" {s += $2} END {print s + 0}' "$W/uid.out")
if [ "$early" -eq 128 ]; then t_pass "per-uid-cap-128 (of 240 tried)"; else
  t_fail per-uid-cap-128 "uid nobody held $early connections at once ($(tr '\n' ' ' <"$W/uid.out"))"
fi
late=$(cat "$W/pid.out" "$W/uid.out" | awk '$1 == "late" {s += $2} END {print s + 0}')
t_eq idle-connections-closed 0 "$late"
if [ "$(log_count 'had no vTPM open for 2 s: connection closed')" -ge 1 ]; then
  t_pass idle-logged
else
  t_fail idle-logged "no idle line in the log"
fi
n=$(log_count 'connection of pid [0-9]* (uid 65534) refused')
if [ "$n" -ge 1 ] && [ "$n" -le 4 ]; then t_pass "cap-refusals-logged-once-per-window ($n lines)"; else
  t_fail cap-refusals-logged-once-per-window "$n log lines for 212 refused connections"
fi

# ============================================================ 4. a full table
rm -f "$W/hammer.out"
touch "$W/hammer.out"
chmod 666 "$W/hammer.out"
HAMMER=()
for u in 20001 20002 20003 20004 20005 20006 20007 65534; do
  as "$u" "$PY" "$W/attack.py" hammer "$I" 2 64 5 "$W/hammer.out" &
  HAMMER+=($!)
done
sleep 1.5
t0=$(date +%s%N)
ctl start "$VA" --label guest1_u:vm_r:vtpm_t --state-dir "$W/sa" --manager-socket "$I" -- \
  --server type=unixio,path="$W/sa.data" --ctrl type=unixio,path="$W/sa.ctrl" \
  --flags not-need-init,startup-clear --log "file=$W/vtpmd-a.log"
ms=$((($(date +%s%N) - t0) / 1000000))
VPID=
if [ "$RC" -eq 0 ]; then
  VPID=$OUT
  _t_pids+=("$VPID")
  t_pass "start-while-table-full (${ms} ms)"
else
  t_fail start-while-table-full "rc=$RC: $(oneline "$ERR")"
fi
for ((k = 0; k < 50; k++)); do
  ctl --json vtpm show "$VA"
  [ "$(jq -r .open <<<"$OUT")" = true ] && break
  sleep 0.1
done
t_eq started-vtpm-open "true ${VPID:-?}" "$(jq -r '"\(.open) \(.pid)"' <<<"$OUT")"
ctl host status
t_eq admin-answers-while-table-full 0 "$RC"
wait "${HAMMER[@]}"
made=$(awk '$1 == "made" {s += $2} END {print s + 0}' "$W/hammer.out")
if [ "$made" -ge 2000 ]; then t_pass "hammer-made-thousands ($made connections)"; else
  t_fail hammer-made-thousands "only $made connections were made"
fi
n=$(log_count 'is dropped for a new one')
if [ "$n" -ge 1 ]; then t_pass "full-table-drops-unopened ($n lines)"; else
  t_fail full-table-drops-unopened "no 'dropped' line in the log"
fi
# past the idle timeout, the vtpmd's connection (a vTPM open on it) is still there
sleep 2.5
ctl --json vtpm show "$VA"
t_eq open-connection-not-idle "true ${VPID:-?}" "$(jq -r '"\(.open) \(.pid)"' <<<"$OUT")"
if [ -n "$VPID" ] && _alive "$VPID"; then t_pass vtpmd-still-running; else
  t_fail vtpmd-still-running "vtpmd $VPID is gone: $(tail -n 2 "$W/vtpmd-a.log")"
fi

# ============================================================ 5. malformed flood
sleep 2.2 # a fresh window for uid nobody
rows0=$(audit_rows '.uid == 65534')
m0=$(log_count 'malformed message from pid')
OUT=$(as nobody timeout 60 "$PY" "$W/attack.py" junk "$I" 2000 2>&1)
t_eq malformed-answered-and-closed "answered 2000 closed 2000" "$OUT"
t_eq malformed-not-audited "$rows0" "$(audit_rows '.uid == 65534')"
sleep 2.2
m=$(($(log_count 'malformed message from pid') - m0))
msum=$(log_count 'uid 65534 in the last 2 s: .*malformed messages')
# one line per window in full (a loaded machine may stretch the flood over several)
if [ "$m" -ge 1 ] && [ "$m" -le $((msum + 1)) ] && [ "$m" -le 20 ]; then
  t_pass "malformed-logged-per-window ($m lines for 2000)"
else
  t_fail malformed-logged-per-window "$m log lines for 2000 malformed messages ($msum summaries)"
fi
if grep -q 'uid 65534 in the last 2 s: .*malformed messages (each closed its connection)' "$LOG"; then
  t_pass malformed-summary-logged
else
  t_fail malformed-summary-logged "no summary line"
fi
ctl host status
t_eq admin-answers-after-malformed 0 "$RC"

# ============================================================ 6. refused MGR_OPEN flood
rows0=$(audit_rows '.uid == 65534')
as nobody timeout 60 "$PY" "$W/attack.py" opens "$I" "$VB" 400 >"$W/opens.out" 2>&1 &
FLOOD=$!
ctl host status
t_eq admin-answers-during-open-flood 0 "$RC"
wait "$FLOOD"
t_eq refused-opens-answered "status3=400" "$(cat "$W/opens.out")"
sleep 2.5 # every window of the flood has closed
rows=$(($(audit_rows '.uid == 65534') - rows0))
open_rows=$(audit_rows '.uid == 65534 and .action == "open"')
suppressed=$(timeout "$TOOL_TIMEOUT" "$CTL" --json audit --count 1000 2>/dev/null |
  jq '[.events[] | select(.uid == 65534 and .action == "suppressed") | .result |
      capture("^(?<n>[0-9]+) more refusals? from uid 65534 suppressed").n | tonumber] | add // 0')
nsum=$(audit_rows '.uid == 65534 and .action == "suppressed"')
# at most 5 rows per window, each window with more ends in one summary row (a loaded machine
# may stretch the flood over several windows)
if [ "$nsum" -ge 1 ] && [ "$open_rows" -le $((5 * (nsum + 1))) ] &&
  [ "$rows" -eq $((open_rows + nsum)) ] && [ "$rows" -le 60 ]; then
  t_pass "refusals-audit-bounded ($rows rows for 400: $open_rows refusals, $nsum summaries)"
else
  t_fail refusals-audit-bounded "$rows audit rows for 400 refused opens ($open_rows refusals, $nsum summaries)"
fi
t_eq refusals-rows-plus-suppressed-400 400 "$((open_rows + suppressed))"
ctl vtpm show "$VB"
t_eq manager-serves-after-flood 0 "$RC"

# ============================================================ 7. the binary digest's bounds
cp "$MGRC" "$W/mgrc-huge"
truncate -s 65M "$W/mgrc-huge"
OUT=$(timeout "$TOOL_TIMEOUT" "$W/mgrc-huge" -s "$I" --register-self "$A" guest1_u:vm_r:vtpm_t open uuid="$VB" 2>&1)
RC=$?
if [ "$RC" -eq 3 ] && grep -q 'over the 64 MiB of an executable that vtpmmgrd hashes' <<<"$OUT"; then
  t_pass huge-executable-refused
else
  t_fail huge-executable-refused "rc=$RC: $(oneline "$OUT")"
fi
cp "$MGRC" "$W/mgrc-big"
truncate -s 63M "$W/mgrc-big"
OUT=$(timeout "$TOOL_TIMEOUT" "$W/mgrc-big" -s "$I" --register-self "$A" guest1_u:vm_r:vtpm_t open uuid="$VC" 2>&1)
RC=$?
if [ "$RC" -eq 0 ] && grep -q 'state-key=' <<<"$OUT"; then t_pass big-executable-hashed; else
  t_fail big-executable-hashed "rc=$RC: $(oneline "$OUT")"
fi
if _alive "$MGR_PID"; then t_pass manager-alive; else t_fail manager-alive "vtpmmgrd died"; fi
[ -n "$VPID" ] && kill -TERM "$VPID" 2>/dev/null

# ============================================================ 8. out of file descriptors
# A second manager (not provisioned: it answers MGR_OPEN "not provisioned") with 96 file
# descriptors: the connections of two uids exhaust them; root still gets an answer, and the
# shortage is logged once per interval, not once per accept.
if need_tool prlimit; then
  D2=$W/mgr2
  mkdir -p "$D2"
  chmod 755 "$D2"
  bg_start prlimit --nofile=96:96 "$MGRD" --tcti "$TCTI" --store "$D2/store.db" \
    --instance-socket "$D2/inst.sock" --admin-socket "$D2/admin.sock" --nv-index 0x01000d02 \
    --log "file=$D2/vtpmmgrd.log" --idle-timeout 30 --limits-interval 2
  M2=$BG_PID
  wait_for_path "$D2/inst.sock" 100
  rm -f "$W/fds.out"
  touch "$W/fds.out"
  chmod 666 "$W/fds.out"
  as nobody "$PY" "$W/attack.py" hold "$D2/inst.sock" 1 60 2.5 2.6 "$W/fds.out" &
  F1=$!
  as 20001 "$PY" "$W/attack.py" hold "$D2/inst.sock" 1 60 2.5 2.6 "$W/fds.out" &
  F2=$!
  sleep 1.2
  OUT=$(timeout "$TOOL_TIMEOUT" "$MGRC" -s "$D2/inst.sock" open uuid=00000000-0000-4000-8000-000000000000 2>&1)
  RC=$?
  if [ "$RC" -eq 8 ] && grep -q 'not provisioned' <<<"$OUT"; then t_pass fds-exhausted-root-answered; else
    t_fail fds-exhausted-root-answered "rc=$RC: $(oneline "$OUT")"
  fi
  wait "$F1" "$F2"
  held=$(awk '$1 == "early" {s += $2} END {print s + 0}' "$W/fds.out")
  n=$(grep -c 'out of file descriptors' "$D2/vtpmmgrd.log")
  if [ "$n" -ge 1 ] && [ "$n" -le 3 ]; then t_pass "fds-exhausted-logged-per-window ($n lines, $held of 120 held)"; else
    t_fail fds-exhausted-logged-per-window "$n lines ($held of 120 held)"
  fi
  if _alive "$M2"; then t_pass fds-exhausted-manager-alive; else t_fail fds-exhausted-manager-alive "it died"; fi
  bg_kill "$M2"
fi
t_done
