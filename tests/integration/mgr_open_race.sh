#!/usr/bin/env bash
# tests/integration/mgr_open_race.sh — a vTPM's key goes only to the process that asked, still
# running the binary its group permits, untraced, without dynamic linker variables.
#
#  1. the exec race (issue 9, hole 2): a process with a registered label connects, forks (the
#     child keeps the connection), sends MGR_OPEN and execs the permitted vtpmd before the
#     manager looks at it. The manager is held with SIGSTOP between the request and the exec,
#     so the race is won every time: a one-step open handed the child the key in every round.
#     Now the answer to MGR_OPEN is a nonce; the child, which reads it, cannot confirm (its
#     messages carry its own pid), the exec'd vtpmd never confirms an open it did not make,
#     and no round may leak a key.
#  2. a managed vtpmd under ptrace (strace) is refused ("traced by pid").
#  3. a managed vtpmd started with LD_PRELOAD or LD_LIBRARY_PATH is refused, naming it (also
#     when the variable straddles the page boundary of the manager's read).
#  4. the normal path still works (a managed vtpmd opens its vTPM).
# Usage: [RACE_ROUNDS=10] [BUILD=build] bash tests/integration/mgr_open_race.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

ROUNDS=${RACE_ROUNDS:-10}
need_tool swtpm python3 strace timeout || t_done
for f in "$BUILD/vtpmd" "$BUILD/vtpmmgrd" "$BUILD/vtpmctl" "$BUILD/tests/tools/mgrc"; do
  [ -x "$f" ] || { t_fail build "$f is not an executable (run make first)"; t_done; }
done
W=$(t_tmpdir)
chmod 755 "$W"
mkdir -p "$W/bin" "$W/run"
cp "$BUILD/vtpmd" "$BUILD/vtpmmgrd" "$BUILD/vtpmctl" "$BUILD/tests/tools/mgrc" "$W/bin/"
VTPMD=$W/bin/vtpmd MGRD=$W/bin/vtpmmgrd CTL=$W/bin/vtpmctl MGRC=$W/bin/mgrc
A=$W/run/admin.sock
I=$W/run/inst.sock
export VTPM_ADMIN_SOCKET=$A
start_host_tpm "$W/host-tpm" "$W/swtpm.log" || { t_fail race-host-tpm "swtpm did not start"; t_done; }
bg_start "$MGRD" --tcti "$HOST_TCTI" --store "$W/store.db" --instance-socket "$I" --admin-socket "$A" \
  --nv-index 0x01000e11 --log "file=$W/vtpmmgrd.log,level=2"
MPID=$BG_PID
wait_for_path "$A" 150 && wait_for_path "$I" 10 || { t_fail race-mgr-start "$(tail -n 3 "$W/vtpmmgrd.log")"; t_done; }
ctl() {
  OUT=$(timeout 60 "$CTL" "$@" 2>&1 </dev/null)
  RC=$?
}
ctl host init --pcrs 0 || { t_fail race-host-init "$OUT"; t_done; }
ctl group create race --label '*:vm_r:vtpm_t' --digest-of "$VTPMD" || { t_fail race-group "$OUT"; t_done; }
ctl vtpm create --group race
UUID=$OUT
[[ "$UUID" =~ ^[0-9a-f-]{36}$ ]] || { t_fail race-vtpm-create "$OUT"; t_done; }

# --- 1. the exec race
cat >"$W/race.py" <<'EOF'
# race.py ADMIN INSTANCE UUID VTPMD STATEDIR CTRL MGRPID: one round of the exec race.
# Prints "child: LEAKED" if the child that kept the connection got a state key.
import os, signal, socket, struct, sys, time
admin, inst, uuid, vtpmd, sdir, ctrl, mgrpid = sys.argv[1:8]
mgrpid = int(mgrpid)
def msg(t, fields):
    body = b"".join(struct.pack(">HH", tag, len(v)) + v for tag, v in fields)
    return struct.pack(">HHI", t, 0, len(body)) + body
def fields(buf):
    out, off = {}, 8
    while off + 4 <= len(buf):
        tag, n = struct.unpack_from(">HH", buf, off)
        out.setdefault(tag, buf[off + 4:off + 4 + n])
        off += 4 + n
    return out
u = bytes.fromhex(uuid.replace("-", ""))
# the launcher's job, done here: a label for this pid
a = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
a.connect(admin)
a.send(msg(0x0231, [(12, struct.pack(">I", os.getpid())), (13, b"evil_u:vm_r:vtpm_t")]))
a.recv(65536)
a.close()
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(inst)
child = os.fork()
if child == 0:
    # the child keeps the connection and reads what the manager answers
    s.settimeout(10)
    leaked = False
    try:
        ans = fields(s.recv(65536))
        leaked = 4 in ans
        if 60 in ans and not leaked:  # a nonce: try to confirm it from here
            s.send(msg(0x0105, [(3, u), (60, ans[60])]))
            leaked = 4 in fields(s.recv(65536))
    except Exception as e:
        print("child: " + type(e).__name__)
    print("child: LEAKED" if leaked else "child: no key")
    sys.stdout.flush()
    os._exit(0)
os.kill(mgrpid, signal.SIGSTOP)   # the manager will look only after the exec
s.send(msg(0x0101, [(3, u)]))
os.set_inheritable(s.fileno(), False)
pid = os.getpid()
if os.fork() == 0:                # let the manager go once the exec is done
    time.sleep(0.3)
    os.kill(mgrpid, signal.SIGCONT)
    os._exit(0)
os.execv(vtpmd, [vtpmd, "socket", "--tpm2", "--tpmstate", "dir=" + sdir,
                 "--ctrl", "type=unixio,path=" + ctrl, "--log", "file=" + sdir + "/log"])
EOF
leaks=0 done_=0
for ((r = 1; r <= ROUNDS; r++)); do
  mkdir -p "$W/r$r"
  python3 "$W/race.py" "$A" "$I" "$UUID" "$VTPMD" "$W/r$r" "$W/r$r/c.sock" "$MPID" >"$W/r$r/out" 2>"$W/r$r/err" &
  rpid=$!
  _t_pids+=("$rpid")
  for ((k = 0; k < 100; k++)); do grep -q '^child:' "$W/r$r/out" 2>/dev/null && break; sleep 0.05; done
  kill -CONT "$MPID" 2>/dev/null
  grep -q 'child: LEAKED' "$W/r$r/out" && leaks=$((leaks + 1))
  grep -q '^child: ' "$W/r$r/out" && done_=$((done_ + 1))
  kill -TERM "$rpid" 2>/dev/null # the exec'd vtpmd (same pid)
  _reap "$rpid" 5
done
t_eq "race-rounds-ran ($ROUNDS)" "$ROUNDS" "$done_"
t_eq race-no-key-leaked 0 "$leaks"
grep -q 'has no open in progress with that nonce\|but the connection belongs to' "$W/vtpmmgrd.log" &&
  t_pass race-child-confirm-refused || t_fail race-child-confirm-refused "no refusal of the child's confirmation in the log"

# --- 2..4: a managed vtpmd traced, or with dynamic linker variables, or as it should be
try_vtpmd() { # try_vtpmd NAME [PREFIX...]: a managed vtpmd through the launcher; RC, LOG
  local name=$1
  shift
  mkdir -p "$W/$name"
  timeout 30 "$@" "$MGRC" --register-self "$A" "good_u:vm_r:vtpm_t" --exec "$VTPMD" socket --tpm2 \
    --tpmstate dir="$W/$name" --ctrl type=unixio,path="$W/$name/c.sock" --flags not-need-init \
    --manager "$I" --uuid "$UUID" --log "file=$W/$name/log" --pid "file=$W/$name/pid" \
    </dev/null >/dev/null 2>&1 &
  TPID=$!
  _t_pids+=("$TPID")
  for ((k = 0; k < 100; k++)); do
    [ -S "$W/$name/c.sock" ] && break
    _alive "$TPID" || break
    sleep 0.05
  done
  LOG=$(cat "$W/$name/log" 2>/dev/null)
}
try_vtpmd traced strace -f -o /dev/null
_reap "$TPID" 10
if [ "$_rc" -ne 0 ] && grep -q 'is traced by pid' <<<"$LOG"; then t_pass open-refused-traced; else
  t_fail open-refused-traced "exit $_rc: $(tail -n 1 <<<"$LOG")"
fi
try_vtpmd preload env LD_PRELOAD=/nonexistent.so
_reap "$TPID" 10
if [ "$_rc" -ne 0 ] && grep -q 'started with LD_PRELOAD set' <<<"$LOG"; then t_pass open-refused-ld-preload; else
  t_fail open-refused-ld-preload "exit $_rc: $(tail -n 1 <<<"$LOG")"
fi
try_vtpmd libpath env LD_LIBRARY_PATH=/nonexistent
_reap "$TPID" 10
if [ "$_rc" -ne 0 ] && grep -q 'started with LD_LIBRARY_PATH set' <<<"$LOG"; then t_pass open-refused-ld-library-path; else
  t_fail open-refused-ld-library-path "exit $_rc: $(tail -n 1 <<<"$LOG")"
fi
# the environment is scanned a page at a time: a variable whose "LD_" straddles the first
# 4096-byte boundary (env -i: exactly "A=<4091 bytes>\0LD_PRELOAD=...\0", LD_ at 4094)
try_vtpmd straddle env -i "A=$(head -c 4091 /dev/zero | tr '\0' x)" LD_PRELOAD=/nonexistent.so
_reap "$TPID" 10
if [ "$_rc" -ne 0 ] && grep -q 'started with LD_PRELOAD set' <<<"$LOG"; then t_pass open-refused-ld-across-page; else
  t_fail open-refused-ld-across-page "exit $_rc: $(tail -n 1 <<<"$LOG")"
fi
try_vtpmd good
if [ -S "$W/good/c.sock" ] && _alive "$TPID"; then t_pass open-permitted-vtpmd; else
  t_fail open-permitted-vtpmd "$(tail -n 1 <<<"$LOG")"
fi
kill -TERM "$TPID" 2>/dev/null
_reap "$TPID" 10
t_done
