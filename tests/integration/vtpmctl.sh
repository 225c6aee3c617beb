#!/usr/bin/env bash
# tests/integration/vtpmctl.sh — the operator CLI, in four layers:
#
#  1. without a manager: --help on every level, --version, precise usage errors (exit 1, and
#     valid JSON with --json), unreachable manager (exit 2: missing socket, not a socket,
#     refused, stream socket, permission denied), local errors (exit 4);
#  2. against a fake manager (python3, the protocol from common/mgr_proto.h): rendering of
#     every field kind, tables, paging with OFFSET/MORE, hostile texts (JSON escaping, no
#     terminal controls in human output), malformed answers (exit 2, never a crash), the
#     timeout, and the launcher with a fake vtpmd: the child is stopped (state T, still
#     vtpmctl's image) when its label is registered, the registered pid is the vtpmd's,
#     a refused registration runs nothing, an early exit is reported, --wait forwards signals;
#  3. against the real vtpmmgrd ($BUILD/vtpmmgrd) on a swtpm host TPM: host init/status/reseal,
#     groups, vTPMs, audit, refusals (exit 3 with the manager's message);
#  4. if vtpmd has --manager: start a managed vtpmd, use it with tpm2-tools, stop, start again
#     (state persists), a second instance and a wrong label or binary are refused.
# Usage: [BUILD=build] bash tests/integration/vtpmctl.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

CTL=$BUILD/vtpmctl
MGRD=$BUILD/vtpmmgrd
U0=3f2c1e8a-5b6d-4c7e-9f10-1a2b3c4d5e6f
TOOL_TIMEOUT=30

if [ ! -x "$CTL" ]; then
  t_fail build "$CTL is missing (run make)"
  t_done
fi
need_tool jq || t_done
W=$(t_tmpdir)
chmod 755 "$W"

# ctl ARGS...: run vtpmctl (bounded, stdin /dev/null); sets RC, OUT, ERR.
ctl() {
  timeout "$TOOL_TIMEOUT" "$CTL" "$@" >"$W/out" 2>"$W/err" </dev/null
  RC=$?
  OUT=$(cat "$W/out")
  ERR=$(cat "$W/err")
  printf -- '--- vtpmctl %s (rc=%d)\n%s\n%s\n' "$*" "$RC" "$OUT" "$ERR" >>"$W/ctl.log"
}
# expect NAME RC PATTERN ARGS...: exit RC and PATTERN (grep -F) on stderr.
expect() {
  local name=$1 want=$2 pat=$3
  shift 3
  ctl "$@"
  if [ "$RC" -ne "$want" ]; then
    t_fail "$name" "expected exit $want, got $RC: $(tail -n 1 <<<"$ERR")"
  elif ! grep -qF -- "$pat" <<<"$ERR"; then
    t_fail "$name" "stderr lacks '$pat': $ERR"
  else
    t_pass "$name"
  fi
}
# expect_json_error NAME RC ARGS...: with --json, stdout is one valid {"error"} with exit_code RC.
expect_json_error() {
  local name=$1 want=$2 got
  shift 2
  ctl --json "$@"
  got=$(jq -r '.error.exit_code' <<<"$OUT" 2>/dev/null)
  if [ "$RC" -eq "$want" ] && [ "$got" = "$want" ] && [ "$(jq -s length <<<"$OUT")" = 1 ]; then
    t_pass "$name"
  else
    t_fail "$name" "rc=$RC, stdout '$OUT'"
  fi
}
# ok NAME ARGS...: exit 0.
ok() {
  local name=$1
  shift
  ctl "$@"
  if [ "$RC" -eq 0 ]; then t_pass "$name"; else t_fail "$name" "rc=$RC: $(tail -n 1 <<<"$ERR")"; fi
  [ "$RC" -eq 0 ]
}
# jq_eq NAME FILTER EXPECTED: jq -r FILTER on $OUT.
jq_eq() { t_eq "$1" "$3" "$(jq -r "$2" <<<"$OUT" 2>&1)"; }
# wait_gone PID [TENTHS]: wait until PID has exited.
wait_gone() {
  local i
  for ((i = 0; i < ${2:-50}; i++)); do
    _alive "$1" || return 0
    sleep 0.1
  done
  return 1
}

# ============================================================ 1. without a manager
NOSOCK=$W/none/admin.sock
export VTPM_ADMIN_SOCKET=$NOSOCK

ok version --version && t_eq version-text "vtpmctl 0.1.0" "$OUT"
for args in "--help" "-h" "help" "help group" "host --help" "host init --help" "host status --help" \
  "host reseal --help" "group --help" "group create --help" "group list --help" \
  "group show --help" "group delete --help" "vtpm --help" "vtpm create --help" \
  "vtpm list --help" "vtpm show --help" "vtpm delete --help" "start --help" "audit --help" \
  "--json group -h" "group create web --label bad --help"; do
  # shellcheck disable=SC2086
  ctl $args
  want="Usage: vtpmctl"
  case $args in
    "host init"* | "host status"* | "host reseal"* | "group create"* | "group list"* | \
      "group show"* | "group delete"* | "vtpm create"* | "vtpm list"* | "vtpm show"* | \
      "vtpm delete"* | "start"* | "audit"*)
      w=${args% --help}
      w=${w% --label bad}
      w=${w% web}
      want="Usage: vtpmctl $w"
      ;;
  esac
  if [ "$RC" -eq 0 ] && grep -qF -- "$want" <<<"$OUT" && grep -q '^Exit status:' <<<"$OUT" &&
    grep -q '^  3  the manager refused' <<<"$OUT"; then
    t_pass "help($args)"
  else
    t_fail "help($args)" "rc=$RC, wanted '$want' and the exit codes: $(head -n 1 <<<"$OUT")"
  fi
done
if command -v man >/dev/null 2>&1 && [ -f "$VTPM_TOP/docs/vtpmctl.8" ]; then
  if man --warnings -l "$VTPM_TOP/docs/vtpmctl.8" 2>"$W/man.err" | grep -q 'EXIT STATUS' &&
    [ ! -s "$W/man.err" ]; then
    t_pass man-page
  else
    t_fail man-page "$(head -n 2 "$W/man.err")"
  fi
fi

LONG65=$(printf 'a%.0s' {1..65})
D64=$(printf '%064d' 7)
# NAME|PATTERN|ARGS (ARGS split on spaces; no argument holds a space)
while IFS='|' read -r name pat args; do
  [ -n "$name" ] || continue
  # shellcheck disable=SC2086
  expect "usage-$name" 1 "$pat" $args
  # shellcheck disable=SC2086
  expect_json_error "usage-$name-json" 1 $args
done <<EOF
no-command|no command given|
unknown-command|unknown command 'frobnicate'|frobnicate
group-no-sub|group needs a subcommand: create, list, show or delete|group
group-bad-sub|unknown group subcommand 'frob'|group frob
unknown-option|unknown option --bogus|--bogus group list
flag-with-value|option --json takes no value|group list --json=1
option-needs-value|option --admin-socket needs a value|group list --admin-socket
empty-value|option --label needs a non-empty value|group create web --label=
timeout-zero|--timeout: 0 is out of range (1 to 3600)|--timeout 0 host status
timeout-nan|--timeout: '1s' is not a number from 1 to 3600|--timeout 1s host status
socket-too-long|the socket path is 200 bytes long; a unix socket path has at most 107|--admin-socket /$(printf 'x%.0s' {1..199}) host status
create-no-name|group create needs a group NAME|group create --label a:b:c --any-binary
create-two-names|group create takes one NAME|group create a b
create-no-label|needs at least one --label PATTERN|group create web --any-binary
create-no-binary|needs --digest, --digest-of or --any-binary|group create web --label a:b:c
create-both|--any-binary excludes --digest and --digest-of|group create web --label a:b:c --any-binary --digest $D64
label-two-fields|label pattern 'a:b' is not of the form user:role:type|group create web --label a:b --any-binary
label-empty-field|label pattern 'a::c': the role field is empty|group create web --label a::c --any-binary
label-partial-star|'*' must stand alone for a whole field (in the role field)|group create web --label a:vm_*:c --any-binary
label-bad-char|the type field has a character other than letters|group create web --label a:b:c/d --any-binary
label-bad-level|the level has a character other than|group create web --label a:b:c:s0;x --any-binary
label-empty-level|the level after the third ':' is empty|group create web --label a:b:c: --any-binary
label-twice|pattern 'a:b:c' is given twice|group create web --label a:b:c --label a:b:c --any-binary
digest-short|digest '123' has 3 characters; a SHA-256 digest is 64 hexadecimal digits|group create web --label a:b:c --digest 123
digest-nonhex|has a non-hexadecimal character at offset 0|group create web --label a:b:c --digest z$(printf '%063d' 0)
digest-twice|is given twice|group create web --label a:b:c --digest $D64 --digest $D64
name-too-long|must be 1 to 64 bytes long|group create $LONG65 --label a:b:c --any-binary
name-bad-char|has a character other than letters, digits, '_', '-' and '.' at offset 2|group create we+b --label a:b:c --any-binary
name-bad-start|must start with a letter or a digit|group create .web --label a:b:c --any-binary
name-uuid|has the form of a UUID|group create $U0 --label a:b:c --any-binary
show-no-name|group show needs a group NAME (or its UUID)|group show
list-extra|group list takes no arguments|group list extra
pcrs-range|PCR list '0,24': PCR 24 does not exist (0-23)|host init --pcrs 0,24
pcrs-twice|PCR list '0-3,2': PCR 2 is listed twice|host init --pcrs 0-3,2
pcrs-backwards|range 5-3 runs backwards|host init --pcrs 5-3
pcrs-open-range|expected the end of a range at offset 2|host init --pcrs 0-
pcrs-space|expected a PCR number at offset 0|host init --pcrs x
init-extra|host init takes no arguments|host init now
reseal-bad-pcrs|PCR list '1,,2': expected a PCR number at offset 2|host reseal --pcrs 1,,2
vtpm-create-no-group|vtpm create needs --group NAME|vtpm create
vtpm-create-arg|vtpm create takes no arguments|vtpm create $U0 --group web
vtpm-show-bad-uuid|'not-a-uuid' is not a UUID (8-4-4-4-12 hexadecimal digits|vtpm show not-a-uuid
vtpm-show-no-uuid|vtpm show needs a vTPM UUID|vtpm show
vtpm-show-two|vtpm show takes one UUID|vtpm show $U0 $U0
vtpm-delete-no-tty|refusing to delete vTPM $U0 without --yes: stdin is not a terminal|vtpm delete $U0
vtpm-list-bad-group|--group: group name '-x'|vtpm list --group=-x
audit-zero|--count: 0 is out of range (1 to 1000)|audit --count 0
audit-big|--count: 1001 is out of range (1 to 1000)|audit --count 1001
audit-neg|--count: '-1' is not a number from 1 to 1000|audit --count=-1
start-no-uuid|start needs the vTPM's UUID|start --label a:b:c --state-dir /
start-no-label|start needs --label LABEL|start $U0 --state-dir /
start-star-label|label 'a:*:c' has '*' as its role field: a process label is concrete|start $U0 --label a:*:c --state-dir /
start-no-dir|start needs --state-dir DIR|start $U0 --label a:b:c
start-comma-dir|--state-dir: '/tmp/a,b' contains ','|start $U0 --label a:b:c --state-dir /tmp/a,b
start-two-uuids|start takes one UUID (vtpmd options go after '--')|start $U0 $U0 --label a:b:c --state-dir /
start-uuid-option|vtpmd option --uuid is not allowed after '--': vtpmctl start sets it|start $U0 --label a:b:c --state-dir / -- --uuid=$U0
start-tpmstate-option|vtpmd option --tpmstate is not allowed after '--'|start $U0 --label a:b:c --state-dir / -- --tpmstate dir=/tmp
start-daemon-option|a daemonized vtpmd would have another pid than the one whose label is registered|start $U0 --label a:b:c --state-dir / -- --ctrl type=tcp,port=1 -d
EOF

# an over-long label, and an invalid VTPM_ADMIN_SOCKET
expect usage-label-too-long 1 "must be 1 to 1024 bytes long" start "$U0" --label "a:b:$(printf 'c%.0s' {1..1021})" --state-dir /
VTPM_ADMIN_SOCKET=/$(printf 'y%.0s' {1..120}) expect usage-env-socket 1 "VTPM_ADMIN_SOCKET: the socket path is 121 bytes long" host status

# --- the manager cannot be reached: exit 2, precise messages ---
expect unreachable-missing 2 "cannot reach the manager: admin socket $NOSOCK does not exist (is vtpmmgrd running? see --admin-socket)" group list
expect_json_error unreachable-missing-json 2 group list
jq_eq unreachable-json-message .error.message "cannot reach the manager: admin socket $NOSOCK does not exist (is vtpmmgrd running? see --admin-socket)"
expect unreachable-env-overridden 2 "admin socket $W/other.sock does not exist" --admin-socket "$W/other.sock" host status
expect unreachable-option-after-command 2 "admin socket $W/after.sock does not exist" vtpm list --admin-socket "$W/after.sock"
: >"$W/plain-file"
expect unreachable-not-a-socket 2 "cannot reach the manager: $W/plain-file exists but is not a socket" --admin-socket "$W/plain-file" host status
expect unreachable-not-a-dir 2 "a component of $W/plain-file/x.sock is not a directory" --admin-socket "$W/plain-file/x.sock" host status

# --- local errors: exit 4 ---
expect local-digest-of-missing 4 "--digest-of $W/nosuch: No such file or directory" group create web --label a:b:c --digest-of "$W/nosuch"
expect local-digest-of-dir 4 "--digest-of $W: not a regular file" group create web --label a:b:c --digest-of "$W"
expect local-state-dir-missing 4 "--state-dir $W/nosuch: No such file or directory" start "$U0" --label a:b:c --state-dir "$W/nosuch"
expect local-state-dir-file 4 "--state-dir $W/plain-file: not a directory" start "$U0" --label a:b:c --state-dir "$W/plain-file"
expect local-vtpmd-not-exec 4 "--vtpmd $W/plain-file: not an executable file" start "$U0" --label a:b:c --state-dir "$W" --vtpmd "$W/plain-file"

# start with no manager: exit 2, and nothing was started
cat >"$W/fake_vtpmd" <<EOF
#!/bin/bash
echo "\$\$ \$*" >>"$W/vtpmd.args"
case " \$* " in
  *" --exit-now "*) echo "fake vtpmd: refusing to run" >&2; exit 7 ;;
  *" --exit-later "*) sleep 2; exit 5 ;;
esac
exec sleep 60
EOF
chmod 755 "$W/fake_vtpmd"
mkdir -p "$W/state"
expect start-unreachable 2 "admin socket $NOSOCK does not exist" start "$U0" --label a:b:c --state-dir "$W/state" --vtpmd "$W/fake_vtpmd"
if [ -e "$W/vtpmd.args" ]; then t_fail start-unreachable-runs-nothing "vtpmd ran: $(cat "$W/vtpmd.args")"; else t_pass start-unreachable-runs-nothing; fi
unset VTPM_ADMIN_SOCKET

# ============================================================ 2. a fake manager
fake_mgr_script() {
  cat <<'PYEOF'
import os, socket, struct, sys, time, uuid as uuidlib
path, mode, log = sys.argv[1], sys.argv[2], sys.argv[3]
T = dict(STATUS=1, MESSAGE=2, UUID=3, VERSION=5, DIGEST=6, GROUP_UUID=7, NAME=8, PATTERN=9,
         BIN_DIGEST=10, ANY_DIGEST=11, PID=12, LABEL=13, PCR_MASK=14, FORCE=15, RECORD=16,
         COUNT=17, TIME=18, STATE=19, KEY=20, VALUE=21, PROVISIONED=22, NV_INDEX=23,
         GROUPS=26, VTPMS=27, INSTANCES=28, OPEN=30, UID=31, ACTION=32, SUBJECT=33, RESULT=34,
         AUDIT_ID=35, OFFSET=36, MORE=37, AK_PUBLIC=38, NV_OFFSET=39)
HOST_INIT, HOST_STATUS, HOST_RESEAL = 0x201, 0x202, 0x203
G_CREATE, G_LIST, G_SHOW, G_DELETE = 0x211, 0x212, 0x213, 0x214
V_CREATE, V_LIST, V_SHOW, V_DELETE = 0x221, 0x222, 0x223, 0x224
LABEL_REG, AUDIT = 0x231, 0x241
def f(tag, val=b""):
    if isinstance(val, str):
        val = val.encode()
    return struct.pack(">HH", T[tag], len(val)) + val
def u32(tag, v): return f(tag, struct.pack(">I", v))
def u64(tag, v): return f(tag, struct.pack(">Q", v & (2**64 - 1)))
def rec(*fields): return f("RECORD", b"".join(fields))
def msg(typ, *fields):
    body = b"".join(fields)
    return struct.pack(">HHI", typ | 0x8000, 0, len(body)) + body
def ok(typ, *fields): return msg(typ, u32("STATUS", 0), *fields)
def fail(typ, st, text): return msg(typ, u32("STATUS", st), f("MESSAGE", text))
def parse(b):
    typ, _, n = struct.unpack(">HHI", b[:8])
    out, p = [], 8
    while p < len(b):
        tag, l = struct.unpack(">HH", b[p:p + 4])
        out.append((tag, b[p + 4:p + 4 + l]))
        p += 4 + l
    return typ, out
def get(fields, tag):
    for t, v in fields:
        if t == T[tag]:
            return v
    return None
groups, vtpms, audit = {}, {}, []
def note(action, subject, result="ok"):
    audit.insert(0, (len(audit) + 1, action, subject, result))
def group_rec(g):
    fs = [f("GROUP_UUID", g["uuid"]), f("NAME", g["name"])]
    fs += [f("PATTERN", p) for p in g["patterns"]]
    fs += [f("ANY_DIGEST")] if g["any"] else [f("BIN_DIGEST", d) for d in g["digests"]]
    fs += [u64("TIME", 1700000000), u32("VTPMS", sum(1 for v in vtpms.values() if v["group"] is g))]
    return rec(*fs)
def vtpm_rec(v):
    return rec(f("UUID", v["uuid"]), f("GROUP_UUID", v["group"]["uuid"]), f("NAME", v["group"]["name"]),
               u64("VERSION", 3), f("DIGEST", b"\x11" * 32), f("STATE", "created"),
               u64("TIME", 1700000000), u32("OPEN", 0))
def find_group(fields):
    name, gu = get(fields, "NAME"), get(fields, "GROUP_UUID")
    for g in groups.values():
        if (name is not None and g["name"].encode() == name) or (gu is not None and g["uuid"] == gu):
            return g
    return None
def handle(typ, fields):
    if mode == "garbage": return b"\x80\x01\x00\x00\x00\x00\x00\x09\x00\x01\x00"
    if mode == "wrongtype": return msg(0x999, u32("STATUS", 0))
    if mode == "nostatus": return msg(typ, f("MESSAGE", "hello"))
    if mode == "huge": return ok(typ, f("MESSAGE", "x" * 1000) * 70)
    if mode == "silent": time.sleep(20); return None
    if mode == "close": return None
    if mode == "moreloop": return ok(typ, f("MORE"))
    if mode == "nouuid" and typ == V_CREATE: return ok(typ, f("NAME", "web"))
    if typ == HOST_STATUS:
        return ok(typ, rec(u32("PROVISIONED", 1), f("STATE", "ok"), u32("NV_INDEX", 0x01000a01),
                           u32("PCR_MASK", 0x95), u64("TIME", 1700000000),
                           f("AK_PUBLIC", bytes(range(91))), u64("NV_OFFSET", -2),
                           f("KEY", "fake-property"), f("VALUE", "fake value")))
    if typ == HOST_INIT:
        mask = struct.unpack(">I", get(fields, "PCR_MASK"))[0]
        note("host-init", "host", "ok: PCR mask 0x%06x" % mask)
        return ok(typ, u32("PCR_MASK", mask), u32("NV_INDEX", 0x01000a01))
    if typ == HOST_RESEAL:
        m = get(fields, "PCR_MASK")
        return ok(typ, u32("PCR_MASK", struct.unpack(">I", m)[0] if m else 0x95))
    if typ == G_CREATE:
        name = get(fields, "NAME").decode("utf-8", "replace")
        if any(g["name"] == name for g in groups.values()):
            return fail(typ, 7, "a group named '%s' exists" % name)
        g = dict(uuid=uuidlib.uuid4().bytes, name=name,
                 patterns=[v.decode() for t, v in fields if t == T["PATTERN"]],
                 digests=[v for t, v in fields if t == T["BIN_DIGEST"]], any=get(fields, "ANY_DIGEST") is not None)
        groups[g["uuid"]] = g
        note("group-create", name)
        return ok(typ, f("GROUP_UUID", g["uuid"]), f("NAME", name))
    if typ == G_LIST:
        off = get(fields, "OFFSET")
        gl = list(groups.values())[struct.unpack(">I", off)[0] if off else 0:]
        return ok(typ, *[group_rec(g) for g in gl[:2]], *([f("MORE")] if len(gl) > 2 else []))
    if typ in (G_SHOW, G_DELETE, V_CREATE):
        g = find_group(fields)
        if not g:
            return fail(typ, 4, "no group named '%s'" % (get(fields, "NAME") or b"?").decode())
        if typ == G_SHOW: return ok(typ, group_rec(g))
        if typ == G_DELETE:
            n = sum(1 for v in vtpms.values() if v["group"] is g)
            if n: return fail(typ, 5, "group '%s' has %d vTPMs" % (g["name"], n))
            del groups[g["uuid"]]; note("group-delete", g["name"])
            return ok(typ)
        v = dict(uuid=uuidlib.uuid4().bytes, group=g)
        vtpms[v["uuid"]] = v
        note("vtpm-create", str(uuidlib.UUID(bytes=v["uuid"])))
        return ok(typ, f("UUID", v["uuid"]), f("GROUP_UUID", g["uuid"]), f("NAME", g["name"]))
    if typ == V_LIST:
        vl = list(vtpms.values())
        if get(fields, "NAME") or get(fields, "GROUP_UUID"):
            g = find_group(fields)
            if not g: return fail(typ, 4, "no such group")
            vl = [v for v in vl if v["group"] is g]
        off = get(fields, "OFFSET")
        vl = vl[struct.unpack(">I", off)[0] if off else 0:]
        return ok(typ, *[vtpm_rec(v) for v in vl[:3]], *([f("MORE")] if len(vl) > 3 else []))
    if typ in (V_SHOW, V_DELETE):
        v = vtpms.get(get(fields, "UUID"))
        if not v: return fail(typ, 4, "no vTPM with UUID %s" % uuidlib.UUID(bytes=get(fields, "UUID")))
        if typ == V_SHOW: return ok(typ, vtpm_rec(v))
        del vtpms[v["uuid"]]; note("vtpm-delete", str(uuidlib.UUID(bytes=v["uuid"])))
        return ok(typ, f("MESSAGE", "deleted"))
    if typ == LABEL_REG:
        pid = struct.unpack(">I", get(fields, "PID"))[0]
        label = get(fields, "LABEL").decode()
        try:
            st = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0]
            exe = os.readlink("/proc/%d/exe" % pid)
        except OSError as e:
            st, exe = "gone", str(e)
        with open(log, "a") as lf:
            lf.write("register %d %s %s %s\n" % (pid, label, st, exe))
        if label.startswith("refuse_u:"):
            return fail(typ, 3, "label %s is refused by this fake" % label)
        return ok(typ)
    if typ == AUDIT:
        c = get(fields, "COUNT")
        c = struct.unpack(">I", c)[0] if c else 20
        evil = rec(u64("AUDIT_ID", 999), u64("TIME", 1700000001), u32("UID", 0), u32("PID", 1),
                   f("ACTION", 'quote"back\\slash'), f("SUBJECT", b"\x1b\xc2\x9b31m-c1 \xff\xfe-invalid"[1:]),
                   f("RESULT", "caf\u00e9 \u202e-bidi"))
        rs = [rec(u64("AUDIT_ID", i), u64("TIME", 1700000000 + i), u32("UID", 0), u32("PID", 42),
                  f("ACTION", a), f("SUBJECT", s), f("RESULT", r)) for i, a, s, r in audit[:c]]
        return ok(typ, *rs, evil, *([f("MORE")] if c >= 1000 else []))
    return fail(typ, 2, "fake: type 0x%x" % typ)
try:
    os.unlink(path)
except FileNotFoundError:
    pass
srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
srv.bind(path)
srv.listen(8)
while True:
    conn, _ = srv.accept()
    try:
        data = conn.recv(70000)
        if data:
            typ, fields = parse(data)
            with open(log, "a") as lf:
                lf.write("request 0x%04x %s\n" % (typ, " ".join("%d:%s" % (t, v.hex()) for t, v in fields)))
            out = handle(typ, fields)
            if out is not None:
                conn.send(out)
    except Exception as e:
        with open(log, "a") as lf:
            lf.write("error %r\n" % e)
    finally:
        conn.close()
PYEOF
}

if need_tool python3; then
  fake_mgr_script >"$W/fake_mgr.py"
  # start_fake MODE: a fake manager on $W/fake-MODE.sock (log $W/fake.log).
  start_fake() {
    bg_start python3 "$W/fake_mgr.py" "$W/fake-$1.sock" "$1" "$W/fake.log"
    wait_for_path "$W/fake-$1.sock" || t_fail "fake-$1-start" "the fake manager did not start"
  }
  start_fake normal
  F=(--admin-socket "$W/fake-normal.sock")

  # --- more unreachable cases, made with python sockets ---
  python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.bind(sys.argv[1])' "$W/stale.sock"
  expect unreachable-refused 2 "cannot reach the manager: connection refused on $W/stale.sock (no vtpmmgrd listens there)" --admin-socket "$W/stale.sock" host status
  bg_start python3 -c 'import socket,sys,time; s=socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(sys.argv[1]); s.listen(1); time.sleep(60)' "$W/stream.sock"
  wait_for_path "$W/stream.sock"
  expect unreachable-stream-socket 2 "cannot reach the manager: $W/stream.sock is not a SOCK_SEQPACKET socket" --admin-socket "$W/stream.sock" host status
  if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
    mkdir -m 700 "$W/private"
    python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.bind(sys.argv[1]); s.listen(1)' "$W/private/p.sock"
    timeout 10 setpriv --reuid=65534 --regid=65534 --clear-groups "$CTL" --admin-socket "$W/private/p.sock" host status >"$W/out" 2>"$W/err"
    RC=$?
    ERR=$(cat "$W/err")
    if [ "$RC" = 2 ] && grep -qF "cannot reach the manager: permission denied on $W/private/p.sock (run as root or as a member of the socket's group)" <<<"$ERR"; then
      t_pass unreachable-permission
    else
      t_fail unreachable-permission "rc=$RC: $ERR"
    fi
  fi

  # --- host ---
  ok fake-host-status "${F[@]}" host status
  for line in "provisioned: *yes" "nv_index: *0x01000a01" "pcrs: *0,2,4,7" "created: *2023-11-14T22:13:20Z" \
    "nv_offset: *-2" "fake-property: *fake value" "ak_public: *000102030405"; do
    if grep -q "^$line" <<<"$OUT"; then t_pass "fake-host-status-line($line)"; else t_fail "fake-host-status-line($line)" "$OUT"; fi
  done
  ok fake-host-status-json "${F[@]}" --json host status
  jq_eq fake-host-status-json-pcrs '.pcrs|tostring' "[0,2,4,7]"
  jq_eq fake-host-status-json-provisioned .provisioned true
  jq_eq fake-host-status-json-nv-index .nv_index 16779777
  jq_eq fake-host-status-json-nv-offset .nv_offset -2
  jq_eq fake-host-status-json-created .created 1700000000
  jq_eq fake-host-status-json-property '."fake-property"' "fake value"
  ok fake-host-init "${F[@]}" host init --pcrs 0-2,7 --force &&
    t_eq fake-host-init-text "host provisioned: root key sealed to SHA-256 PCRs 0,1,2,7 (forced: the previous root key is replaced)" "$OUT"
  t_eq fake-host-init-request "request 0x0201 14:00000087 15:" "$(grep '^request 0x0201' "$W/fake.log" | tail -n 1)"
  ok fake-host-init-default "${F[@]}" host init
  t_eq fake-host-init-default-mask "request 0x0201 14:00000095" "$(grep '^request 0x0201' "$W/fake.log" | tail -n 1)"
  ok fake-host-reseal "${F[@]}" host reseal && t_eq fake-host-reseal-request "request 0x0203 " "$(grep '^request 0x0203' "$W/fake.log" | tail -n 1)"
  ok fake-host-reseal-pcrs "${F[@]}" --json host reseal --pcrs 7 && jq_eq fake-host-reseal-json '.pcrs|tostring' "[7]"

  # --- groups (the fake answers two per page: paging with OFFSET) ---
  ok fake-group-create "${F[@]}" group create web --label '*:vm_r:vtpm_t' --any-binary &&
    if grep -qE '^created group web, uuid [0-9a-f-]{36}$' <<<"$OUT"; then t_pass fake-group-create-text; else t_fail fake-group-create-text "$OUT"; fi
  sha=$(sha256sum "$CTL" | cut -c1-64)
  ok fake-group-create-digests "${F[@]}" --json group create db --label a_u:b_r:c_t --label 'x:y:z:s0:c1,c2' --digest "$D64" --digest-of "$CTL"
  jq_eq fake-group-create-json-name .name db
  if grep -q "^request 0x0211 8:6462 9:615f753a625f723a635f74 9:783a793a7a3a73303a63312c6332 10:$D64 10:$sha\$" "$W/fake.log"; then
    t_pass fake-group-create-request
  else
    t_fail fake-group-create-request "$(grep '^request 0x0211' "$W/fake.log" | tail -n 1)"
  fi
  expect fake-group-exists 3 "create group web: refused by the manager: already exists: a group named 'web' exists" "${F[@]}" group create web --label a:b:c --any-binary
  expect_json_error fake-group-exists-json 3 "${F[@]}" group create web --label a:b:c --any-binary
  jq_eq fake-group-exists-json-status .error.status "already exists"
  jq_eq fake-group-exists-json-manager-message .error.manager_message "a group named 'web' exists"
  for g in g3 g4 g5; do ctl "${F[@]}" group create $g --label "$g:r:t" --any-binary; done
  ok fake-group-list "${F[@]}" group list
  t_eq fake-group-list-rows 6 "$(wc -l <<<"$OUT")"
  t_eq fake-group-list-header "NAME UUID PATTERNS ANY_BINARY BINARY_DIGESTS VTPMS CREATED" "$(head -n 1 <<<"$OUT" | tr -s ' ')"
  if grep -qE "^db +[0-9a-f-]{36} +a_u:b_r:c_t x:y:z:s0:c1,c2 +- +000000000000\.\. ${sha:0:12}\.\. +0 +2023-11-14T22:13:20Z$" <<<"$OUT"; then
    t_pass fake-group-list-row
  else
    t_fail fake-group-list-row "$(grep '^db' <<<"$OUT")"
  fi
  ok fake-group-list-json "${F[@]}" --json group list
  jq_eq fake-group-list-json-names '[.groups[].name]|join(",")' "web,db,g3,g4,g5"
  jq_eq fake-group-list-json-digests '.groups[1].binary_digests|join(",")' "$D64,$sha"
  jq_eq fake-group-list-json-any '.groups[0].any_binary' true
  t_eq fake-group-list-offsets "request 0x0212 ,request 0x0212 36:00000002,request 0x0212 36:00000004" \
    "$(grep '^request 0x0212' "$W/fake.log" | tail -n 3 | paste -sd,)"
  ok fake-group-show "${F[@]}" group show db
  t_eq fake-group-show-patterns "patterns:       a_u:b_r:c_t|                x:y:z:s0:c1,c2" "$(grep -A1 '^patterns:' <<<"$OUT" | paste -sd'|')"
  ok fake-group-show-json "${F[@]}" --json group show db
  gu=$(jq -r .uuid <<<"$OUT")
  ok fake-group-show-by-uuid "${F[@]}" --json group show "$gu" && jq_eq fake-group-show-by-uuid-name .name db
  t_eq fake-group-show-by-uuid-request "request 0x0213 7:${gu//-/}" "$(grep '^request 0x0213' "$W/fake.log" | tail -n 1)"
  expect fake-group-show-missing 3 "show group nosuch: refused by the manager: not found: no group named 'nosuch'" "${F[@]}" group show nosuch

  # --- vTPMs (three per page) ---
  ok fake-vtpm-create "${F[@]}" vtpm create --group web
  V1=$OUT
  if grep -qE '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' <<<"$V1"; then t_pass fake-vtpm-create-prints-uuid; else t_fail fake-vtpm-create-prints-uuid "$V1"; fi
  ok fake-vtpm-create-json "${F[@]}" --json vtpm create --group "$gu"
  jq_eq fake-vtpm-create-json-group .group db
  jq_eq fake-vtpm-create-json-group-uuid .group_uuid "$gu"
  for i in 1 2 3 4 5; do ctl "${F[@]}" vtpm create --group g3; done
  ok fake-vtpm-list "${F[@]}" vtpm list
  t_eq fake-vtpm-list-rows 8 "$(wc -l <<<"$OUT")"
  t_eq fake-vtpm-list-header "UUID GROUP STATE OPEN VERSION CREATED" "$(head -n 1 <<<"$OUT" | tr -s ' ')"
  ok fake-vtpm-list-json "${F[@]}" --json vtpm list && jq_eq fake-vtpm-list-json-count '.vtpms|length' 7
  jq_eq fake-vtpm-list-json-fields '.vtpms[0]|keys|join(",")' "created,digest,group,group_uuid,open,state,uuid,version"
  ok fake-vtpm-list-group "${F[@]}" --json vtpm list --group g3 && jq_eq fake-vtpm-list-group-count '[.vtpms[]|select(.group=="g3")]|length' 5
  expect fake-vtpm-list-group-missing 3 "list the vTPMs of group nosuch: refused by the manager: not found" "${F[@]}" vtpm list --group nosuch
  ok fake-vtpm-show "${F[@]}" vtpm show "$V1"
  if grep -q "^uuid: *$V1$" <<<"$OUT" && grep -q '^group: *web$' <<<"$OUT" && grep -q '^open: *no$' <<<"$OUT"; then t_pass fake-vtpm-show-lines; else t_fail fake-vtpm-show-lines "$OUT"; fi
  expect fake-vtpm-show-missing 3 "show vTPM $U0: refused by the manager: not found: no vTPM with UUID $U0" "${F[@]}" vtpm show "$U0"
  expect fake-group-delete-busy 3 "delete group web: refused by the manager: in use by another instance: group 'web' has 1 vTPMs" "${F[@]}" group delete web
  ok fake-vtpm-delete "${F[@]}" vtpm delete "$V1" --yes &&
    t_eq fake-vtpm-delete-text "deleted vTPM $V1: its state key is destroyed; its state file can no longer be read" "$OUT"
  ok fake-vtpm-delete-json "${F[@]}" --json vtpm delete "$(jq -r '.vtpms[0].uuid' <<<"$(timeout 10 "$CTL" "${F[@]}" --json vtpm list --group db)")" --yes &&
    jq_eq fake-vtpm-delete-json-readable .state_file_readable false
  ok fake-group-delete "${F[@]}" group delete web && t_eq fake-group-delete-text "deleted group web" "$OUT"

  # --- audit: hostile texts ---
  ok fake-audit "${F[@]}" audit --count 5
  if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]\|\xc2[\x80-\x9f]\|\xe2\x80\xae\|\xff' "$W/out"; then
    t_fail fake-audit-no-terminal-controls "$(LC_ALL=C cat -v "$W/out" | tail -n 2)"
  else
    t_pass fake-audit-no-terminal-controls
  fi
  t_eq fake-audit-header "ID TIME PID UID ACTION SUBJECT RESULT" "$(head -n 1 <<<"$OUT" | tr -s ' ')"
  if grep -qF 'quote"back\slash  ?31m-c1 ??-invalid' <<<"$OUT" && grep -qF 'café ?-bidi' <<<"$OUT"; then t_pass fake-audit-sanitized; else t_fail fake-audit-sanitized "$(tail -n 1 <<<"$OUT")"; fi
  ok fake-audit-json "${F[@]}" --json audit --count 5
  jq_eq fake-audit-json-action '.events[-1].action' 'quote"back\slash'
  jq_eq fake-audit-json-subject '.events[-1].subject' $'\u009b31m-c1 \ufffd\ufffd-invalid'
  jq_eq fake-audit-json-result '.events[-1].result' $'caf\u00e9 \u202e-bidi'
  if grep -qF '\u009b' "$W/out" && grep -qF '\u202e' "$W/out"; then t_pass fake-audit-json-escapes-controls; else t_fail fake-audit-json-escapes-controls "$OUT"; fi
  t_eq fake-audit-count-request "request 0x0241 17:00000005" "$(grep '^request 0x0241' "$W/fake.log" | tail -n 1)"
  expect fake-audit-truncated 0 "vtpmctl: the manager sent only the" "${F[@]}" audit --count 1000
  ok fake-audit-truncated-json "${F[@]}" --json audit --count 1000 && jq_eq fake-audit-truncated-json-flag .truncated true
  ctl "${F[@]}" audit
  t_eq fake-audit-default-count "request 0x0241 17:00000014" "$(grep '^request 0x0241' "$W/fake.log" | tail -n 1)"

  # --- answers that make no sense: exit 2, never a crash ---
  for spec in "garbage|the manager's answer is malformed: " "wrongtype|the manager answered with type 0x8999 to a request of type 0x0202" \
    "nostatus|the manager's answer has no status" "huge|the manager's answer of 70296 bytes exceeds the 65536-byte limit" \
    "close|the manager closed the connection without answering"; do
    mode=${spec%%|*}
    start_fake "$mode"
    expect "bad-answer-$mode" 2 "host status: ${spec#*|}" --admin-socket "$W/fake-$mode.sock" host status
  done
  start_fake moreloop
  expect bad-answer-more-without-records 2 "list groups: the manager says more records follow but sent none in this answer" --admin-socket "$W/fake-moreloop.sock" group list
  start_fake nouuid
  expect bad-answer-no-uuid 2 "the manager's answer lacks the new vTPM's UUID" --admin-socket "$W/fake-nouuid.sock" vtpm create --group web
  start_fake silent
  t0=$(date +%s%N)
  expect bad-answer-timeout 2 "host status: the manager did not answer within 1 s (the request may still take effect)" --timeout 1 --admin-socket "$W/fake-silent.sock" host status
  ms=$((($(date +%s%N) - t0) / 1000000))
  if [ "$ms" -ge 900 ] && [ "$ms" -lt 5000 ]; then t_pass "timeout-bounded(${ms}ms)"; else t_fail timeout-bounded "took ${ms} ms"; fi

  # --- the launcher, with a fake vtpmd ---
  rm -f "$W/vtpmd.args"
  ok fake-start "${F[@]}" start "$U0" --label g1_u:vm_r:vtpm_t --state-dir "$W/state" --vtpmd "$W/fake_vtpmd" -- --ctrl type=tcp,port=1 --flags not-need-init
  pid=$OUT
  _t_pids+=("$pid")
  if _alive "$pid"; then t_pass fake-start-running; else t_fail fake-start-running "pid '$pid' is not running"; fi
  t_eq fake-start-registered-while-stopped "register $pid g1_u:vm_r:vtpm_t T $(readlink -f "$CTL")" "$(grep '^register' "$W/fake.log" | tail -n 1)"
  t_eq fake-start-argv "$pid socket --tpm2 --tpmstate dir=$W/state --manager /run/vtpm/instance.sock --uuid $U0 --ctrl type=tcp,port=1 --flags not-need-init" "$(cat "$W/vtpmd.args")"
  t_eq fake-start-own-session "$pid" "$(ps -o sid= -p "$pid" | tr -d ' ')"
  kill "$pid" 2>/dev/null
  ok fake-start-json "${F[@]}" --json start "${U0^^}" --label g1_u:vm_r:vtpm_t:s0:c1,c2 --state-dir "$W/state" --manager-socket "$W/inst.sock" --vtpmd "$W/fake_vtpmd"
  pid=$(jq -r .pid <<<"$OUT")
  _t_pids+=("$pid")
  jq_eq fake-start-json-uuid .uuid "$U0"
  jq_eq fake-start-json-running .running true
  jq_eq fake-start-json-manager-socket .manager_socket "$W/inst.sock"
  kill "$pid" 2>/dev/null
  : >"$W/vtpmd.args"
  expect fake-start-refused 3 "register label refuse_u:vm_r:vtpm_t for pid" "${F[@]}" start "$U0" --label refuse_u:vm_r:vtpm_t --state-dir "$W/state" --vtpmd "$W/fake_vtpmd"
  rpid=$(grep '^register .* refuse_u:' "$W/fake.log" | tail -n 1 | cut -d' ' -f2)
  sleep 0.2
  if [ -s "$W/vtpmd.args" ]; then t_fail fake-start-refused-runs-nothing "vtpmd ran: $(cat "$W/vtpmd.args")"; else t_pass fake-start-refused-runs-nothing; fi
  if [ -n "$rpid" ] && ! _alive "$rpid"; then t_pass fake-start-refused-child-killed; else t_fail fake-start-refused-child-killed "pid '$rpid' lives"; fi
  expect fake-start-early-exit 4 "exited with status 7 within 200 ms of its start" "${F[@]}" start "$U0" --label g1_u:vm_r:vtpm_t --state-dir "$W/state" --vtpmd "$W/fake_vtpmd" -- --exit-now
  if grep -qF "fake vtpmd: refusing to run" <<<"$ERR"; then t_pass fake-start-early-exit-stderr; else t_fail fake-start-early-exit-stderr "$ERR"; fi
  printf '#!/nonexistent/interpreter\n' >"$W/bad_vtpmd"
  chmod 755 "$W/bad_vtpmd"
  expect fake-start-exec-fails 4 "cannot execute $W/bad_vtpmd: No such file or directory" "${F[@]}" start "$U0" --label g1_u:vm_r:vtpm_t --state-dir "$W/state" --vtpmd "$W/bad_vtpmd"
  expect fake-start-wait-status 5 "exited with status 5" "${F[@]}" start "$U0" --label g1_u:vm_r:vtpm_t --state-dir "$W/state" --vtpmd "$W/fake_vtpmd" --wait -- --exit-later
  ctl "${F[@]}" --json start "$U0" --label g1_u:vm_r:vtpm_t --state-dir "$W/state" --vtpmd "$W/fake_vtpmd" --wait -- --exit-later
  t_eq fake-start-wait-json "5 5 false" "$RC $(jq -r '"\(.exit_status) \(.running)"' <<<"$OUT")"
  # --wait forwards SIGTERM to vtpmd and exits 128+15
  : >"$W/vtpmd.args"
  "$CTL" "${F[@]}" start "$U0" --label g1_u:vm_r:vtpm_t --state-dir "$W/state" --vtpmd "$W/fake_vtpmd" --wait >"$W/wait.out" 2>"$W/wait.err" &
  wpid=$!
  for _ in $(seq 50); do [ -s "$W/vtpmd.args" ] && break; sleep 0.1; done
  vpid=$(cut -d' ' -f1 "$W/vtpmd.args")
  kill -TERM "$wpid"
  wait "$wpid"
  wrc=$?
  t_eq fake-start-wait-forwards-sigterm "143 $vpid" "$wrc $(cat "$W/wait.out")"
  if [ -n "$vpid" ] && wait_gone "$vpid" 20; then t_pass fake-start-wait-vtpmd-gone; else t_fail fake-start-wait-vtpmd-gone "pid '$vpid' lives"; fi
  if grep -q "error" "$W/fake.log"; then t_fail fake-manager-errors "$(grep error "$W/fake.log" | head -n 2)"; fi
fi

# ============================================================ 3. the real vtpmmgrd
if [ ! -x "$MGRD" ]; then
  t_fail vtpmmgrd "$MGRD is not built (run make)"
  t_done
fi
need_tool swtpm sha256sum || t_done

# start_host_tpm: a swtpm as the host TPM; sets HOST_TCTI.
start_host_tpm() {
  local port
  mkdir -p "$W/host-tpm"
  for _ in 1 2 3; do
    port=$(free_port) || break
    bg_start swtpm socket --tpm2 --flags not-need-init,startup-clear \
      --server type=tcp,port="$port",bindaddr=127.0.0.1 \
      --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
      --tpmstate dir="$W/host-tpm" >>"$W/swtpm.log" 2>&1
    if _wait_tcp "$BG_PID" $((port + 1)) && _wait_tcp "$BG_PID" "$port"; then
      HOST_TCTI=swtpm:host=127.0.0.1,port=$port
      return 0
    fi
    bg_kill "$BG_PID" KILL
  done
  return 1
}
start_host_tpm || { t_fail host-tpm "swtpm did not start: $(tail -n 1 "$W/swtpm.log")"; t_done; }
D=$W/mgr
mkdir -p "$D"
bg_start "$MGRD" --tcti "$HOST_TCTI" --store "$D/store.db" --instance-socket "$D/inst.sock" \
  --admin-socket "$D/admin.sock" --log file="$D/vtpmmgrd.log"
MGR_PID=$BG_PID
if wait_for_path "$D/admin.sock" 100; then t_pass vtpmmgrd-start; else
  t_fail vtpmmgrd-start "no admin socket: $(tail -n 2 "$D/vtpmmgrd.log")"
  t_done
fi
export VTPM_ADMIN_SOCKET=$D/admin.sock

# --- host ---
ok real-status-unprovisioned --json host status && jq_eq real-status-unprovisioned-flag .provisioned false
expect real-group-list-unprovisioned 3 "list groups: refused by the manager: host not provisioned" group list
ok real-host-init host init --pcrs 0,2,4,7 &&
  t_eq real-host-init-text "host provisioned: root key sealed to SHA-256 PCRs 0,2,4,7" "$OUT"
ok real-host-status --json host status
jq_eq real-host-status-provisioned .provisioned true
jq_eq real-host-status-pcrs '.pcrs|tostring' "[0,2,4,7]"
jq_eq real-host-status-counts '"\(.groups) \(.vtpms) \(.instances)"' "0 0 0"
if jq -e '.ak_public|test("^[0-9a-f]{100,}$")' <<<"$OUT" >/dev/null; then t_pass real-host-status-ak; else t_fail real-host-status-ak "$OUT"; fi
ok real-host-status-human host status
if grep -q '^pcrs: *0,2,4,7$' <<<"$OUT" && grep -q '^provisioned: *yes$' <<<"$OUT"; then t_pass real-host-status-human-lines; else t_fail real-host-status-human-lines "$OUT"; fi
expect real-host-init-again 3 "host init: refused by the manager: already exists: " host init
ok real-host-reseal-pcrs --json host reseal --pcrs 0,7 && jq_eq real-host-reseal-pcrs-json '.pcrs|tostring' "[0,7]"
ok real-host-status-resealed --json host status && jq_eq real-host-status-resealed-pcrs '.pcrs|tostring' "[0,7]"
ok real-host-reseal host reseal --pcrs 0,2,4,7 &&
  t_eq real-host-reseal-text "root key resealed to the current values of SHA-256 PCRs 0,2,4,7" "$OUT"

# --- groups ---
VTPMD_BIN=$BUILD/vtpmd
ok real-group-create-any group create vms --label '*:vm_r:vtpm_t' --any-binary
pinned_digest=$( [ -x "$VTPMD_BIN" ] && sha256sum "$VTPMD_BIN" | cut -c1-64 || echo "$D64")
ok real-group-create-pinned --json group create pinned --label 'a_u:vm_r:vtpm_t' --label 'b_u:vm_r:vtpm_t:s0:c1,c2' --digest "$pinned_digest"
PINNED_UUID=$(jq -r .uuid <<<"$OUT")
if grep -qE '^[0-9a-f-]{36}$' <<<"$PINNED_UUID"; then t_pass real-group-create-uuid; else t_fail real-group-create-uuid "$OUT"; fi
expect real-group-exists 3 "create group vms: refused by the manager: already exists" group create vms --label a:b:c --any-binary
ok real-group-list --json group list
jq_eq real-group-list-names '[.groups[].name]|sort|join(",")' "pinned,vms"
jq_eq real-group-list-pinned-digest '.groups[]|select(.name=="pinned")|.binary_digests|join(",")' "$pinned_digest"
jq_eq real-group-list-vms-any '.groups[]|select(.name=="vms")|.any_binary' true
ok real-group-list-human group list
t_eq real-group-list-human-rows 3 "$(wc -l <<<"$OUT")"
ok real-group-show --json group show vms
jq_eq real-group-show-patterns '.patterns|join(",")' "*:vm_r:vtpm_t"
ok real-group-show-by-uuid --json group show "$PINNED_UUID"
jq_eq real-group-show-by-uuid-name .name pinned
jq_eq real-group-show-levels '.patterns|join(" ")' "a_u:vm_r:vtpm_t b_u:vm_r:vtpm_t:s0:c1,c2"

# --- vTPMs ---
expect real-vtpm-create-unknown-group 3 "create a vTPM in group nosuch: refused by the manager: not found: no group named 'nosuch'" vtpm create --group nosuch
expect_json_error real-vtpm-create-unknown-group-json 3 vtpm create --group nosuch
jq_eq real-vtpm-create-unknown-group-json-status .error.status "not found"
ok real-vtpm-create vtpm create --group vms
V1=$OUT
if grep -qE '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' <<<"$V1"; then t_pass real-vtpm-create-uuid-v4; else t_fail real-vtpm-create-uuid-v4 "$V1"; fi
ok real-vtpm-create-json --json vtpm create --group "$PINNED_UUID"
V2=$(jq -r .uuid <<<"$OUT")
jq_eq real-vtpm-create-json-group .group pinned
ok real-vtpm-create-3 vtpm create --group vms
V3=$OUT
ok real-vtpm-list --json vtpm list && jq_eq real-vtpm-list-count '.vtpms|length' 3
ok real-vtpm-list-group --json vtpm list --group pinned && jq_eq real-vtpm-list-group-uuids '[.vtpms[].uuid]|join(",")' "$V2"
ok real-vtpm-list-human vtpm list
t_eq real-vtpm-list-human-rows 4 "$(wc -l <<<"$OUT")"
if head -n 1 <<<"$OUT" | grep -q '^UUID  *GROUP  *STATE  *OPEN  *VERSION'; then t_pass real-vtpm-list-header; else t_fail real-vtpm-list-header "$(head -n 1 <<<"$OUT")"; fi
ok real-vtpm-show --json vtpm show "$V1"
jq_eq real-vtpm-show-fields '"\(.uuid) \(.group) \(.open) \(.version) \(.state)"' "$V1 vms false 0 created"
expect real-vtpm-show-missing 3 "show vTPM $U0: refused by the manager: not found" vtpm show "$U0"
expect real-group-delete-busy 3 "delete group vms: refused by the manager: in use by another instance" group delete vms
ok real-vtpm-delete vtpm delete "$V3" --yes
expect real-vtpm-deleted-gone 3 "show vTPM $V3: refused by the manager: not found" vtpm show "$V3"
expect real-vtpm-delete-again 3 "delete vTPM $V3: refused by the manager: not found" vtpm delete "$V3" --yes
ok real-group-create-empty group create empty --label 'e:e:e' --any-binary
ok real-group-delete group delete empty
expect real-group-deleted 3 "not found" group show empty

# --- audit ---
ok real-audit --json audit --count 100
for a in host-init 'group-(create|add)' 'vtpm-(create|add)' vtpm-delete group-delete; do
  if jq -e --arg a "^$a\$" '[.events[]|select(.action|test($a))]|length > 0' <<<"$OUT" >/dev/null; then t_pass "real-audit-has($a)"; else t_fail "real-audit-has($a)" "$(jq -c '[.events[].action]' <<<"$OUT")"; fi
done
if jq -e '[.events[]|select(.result|startswith("refused"))]|length > 0' <<<"$OUT" >/dev/null; then t_pass real-audit-has-refusals; else t_fail real-audit-has-refusals "$(jq -c '[.events[].result]' <<<"$OUT")"; fi
ok real-audit-human audit --count 5
t_eq real-audit-human-rows 6 "$(wc -l <<<"$OUT")"

# --- permission: the admin socket is for root (and --admin-group) ---
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
  timeout 10 setpriv --reuid=65534 --regid=65534 --clear-groups "$CTL" --admin-socket "$D/admin.sock" host status >"$W/out" 2>"$W/err"
  RC=$?
  case $RC in
    2 | 3) t_pass "real-non-root-refused(rc=$RC)" ;;
    *) t_fail real-non-root-refused "rc=$RC: $(cat "$W/err")" ;;
  esac
fi

# ============================================================ 4. a managed vtpmd
if [ ! -x "$VTPMD_BIN" ] || ! "$VTPMD_BIN" --help 2>&1 | grep -q -- --manager; then
  t_fail managed-vtpmd "$VTPMD_BIN is missing or has no --manager"
  t_done
fi
need_tool tpm2_getrandom tpm2_nvdefine tpm2_nvwrite tpm2_nvread || t_done

NV=0x01500031
# start_vtpm NAME UUID LABEL STATEDIR [vtpmctl options]: start a managed vtpmd on a fresh port
# pair; sets RC, VPID, VTCTI.
start_vtpm() {
  local name=$1 uuid=$2 label=$3 dir=$4 port
  shift 4
  port=$(free_port)
  ctl start "$uuid" --label "$label" --state-dir "$dir" --manager-socket "$D/inst.sock" "$@" -- \
    --server type=tcp,port="$port",bindaddr=127.0.0.1 --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
    --flags not-need-init,startup-clear --log file="$W/vtpmd-$name.log"
  VPID=
  if [ "$RC" -eq 0 ]; then
    VPID=$OUT
    _t_pids+=("$VPID")
    _wait_tcp "$VPID" "$port" || true
  fi
  VTCTI=swtpm:host=127.0.0.1,port=$port
}
# tpm TOOL ARGS...: a tpm2-tools command against $VTCTI.
tpm() { TPM2TOOLS_TCTI=$VTCTI timeout 20 "$@" 2>>"$W/tpm2.log"; }

mkdir -p "$W/s1" "$W/s1b" "$W/s2"
start_vtpm a "$V1" x_u:vm_r:vtpm_t "$W/s1"
if [ "$RC" -eq 0 ] && [ -n "$VPID" ] && _alive "$VPID"; then t_pass managed-start; else
  t_fail managed-start "rc=$RC: $ERR $(tail -n 2 "$W/vtpmd-a.log" 2>/dev/null)"
  t_done
fi
if [ "$(tpm tpm2_getrandom 16 --hex | tr -d '\n' | wc -c)" = 32 ]; then t_pass managed-getrandom; else t_fail managed-getrandom "$(tail -n 2 "$W/tpm2.log")"; fi
printf 'persist-across-restarts-0123456!' >"$W/nv.in"
if tpm tpm2_nvdefine "$NV" -C o -s 32 -a "ownerread|ownerwrite" >/dev/null && tpm tpm2_nvwrite "$NV" -C o -i "$W/nv.in"; then
  t_pass managed-nv-write
else
  t_fail managed-nv-write "$(tail -n 2 "$W/tpm2.log")"
fi
ok managed-vtpm-show-open --json vtpm show "$V1"
jq_eq managed-vtpm-show-open-fields '"\(.open) \(.pid) \(.label)"' "true $VPID x_u:vm_r:vtpm_t"
ver1=$(jq -r .version <<<"$OUT")
if [ "${ver1:-0}" -gt 0 ] 2>/dev/null; then t_pass "managed-version-recorded($ver1)"; else t_fail managed-version-recorded "version '$ver1'"; fi
VPID_A=$VPID
expect managed-delete-while-open 3 "delete vTPM $V1: refused by the manager: in use by another instance" vtpm delete "$V1" --yes
# a second instance of the same vTPM (other state dir, so only the manager can refuse it)
start_vtpm b "$V1" x_u:vm_r:vtpm_t "$W/s1b"
if [ "$RC" -eq 4 ] && grep -q "within 200 ms" <<<"$ERR"; then t_pass managed-second-instance-refused; else
  t_fail managed-second-instance-refused "rc=$RC: $ERR"
fi
# stop, start again: the state is there
kill -TERM "$VPID_A"
if wait_gone "$VPID_A" 50; then t_pass managed-stop; else t_fail managed-stop "vtpmd $VPID_A did not exit"; fi
ok managed-vtpm-show-closed --json vtpm show "$V1" && jq_eq managed-vtpm-show-closed-open .open false
start_vtpm c "$V1" x_u:vm_r:vtpm_t "$W/s1"
if [ "$RC" -eq 0 ]; then t_pass managed-restart; else t_fail managed-restart "rc=$RC: $ERR"; fi
if [ -n "$VPID" ] && tpm tpm2_nvread "$NV" -C o -s 32 -o "$W/nv.out" >/dev/null && cmp -s "$W/nv.in" "$W/nv.out"; then
  t_pass managed-state-persists
else
  t_fail managed-state-persists "$(tail -n 2 "$W/tpm2.log")"
fi
[ -n "$VPID" ] && kill -TERM "$VPID" && wait_gone "$VPID" 50
# a label the group does not permit
start_vtpm d "$V1" x_u:other_r:vtpm_t "$W/s1"
if [ "$RC" -eq 4 ] && grep -q "within 200 ms" <<<"$ERR"; then t_pass managed-wrong-label-refused; else t_fail managed-wrong-label-refused "rc=$RC: $ERR"; fi
# audit_has NAME REGEX: the newest 50 audit entries have a result matching REGEX.
audit_has() {
  ctl --json audit --count 50
  if jq -e --arg r "$2" '[.events[]|select(.result|test($r))]|length > 0' <<<"$OUT" >/dev/null; then
    t_pass "$1"
  else
    t_fail "$1" "no result matches '$2': $(jq -c '[.events[:6][]|.action+" "+.result]' <<<"$OUT")"
  fi
}
audit_has managed-second-instance-audited "^refused: .*(open|busy|another|instance)"
audit_has managed-wrong-label-audited "^refused: label x_u:other_r:vtpm_t matches no pattern of group vms"
# the pinned group: its digest admits build/vtpmd, and refuses a copy that differs by one byte
start_vtpm e "$V2" a_u:vm_r:vtpm_t "$W/s2"
if [ "$RC" -eq 0 ]; then t_pass managed-pinned-digest-admitted; else t_fail managed-pinned-digest-admitted "rc=$RC: $ERR"; fi
[ -n "$VPID" ] && kill -TERM "$VPID" && wait_gone "$VPID" 50
cp "$VTPMD_BIN" "$W/vtpmd-other"
printf '\0' >>"$W/vtpmd-other"
start_vtpm f "$V2" a_u:vm_r:vtpm_t "$W/s2" --vtpmd "$W/vtpmd-other"
if [ "$RC" -eq 4 ]; then t_pass managed-other-binary-refused; else t_fail managed-other-binary-refused "rc=$RC: $ERR"; fi
audit_has managed-other-binary-audited "^refused: binary digest $(sha256sum "$W/vtpmd-other" | cut -c1-64) of pid [0-9]+ is not permitted by group pinned"
[ -n "$VPID" ] && kill -KILL "$VPID"
# --wait: vtpmctl stays with vtpmd and ends with it
port=$(free_port)
"$CTL" start "$V1" --label x_u:vm_r:vtpm_t --state-dir "$W/s1" --manager-socket "$D/inst.sock" --wait -- \
  --server type=tcp,port="$port",bindaddr=127.0.0.1 --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
  --flags not-need-init,startup-clear --log file="$W/vtpmd-g.log" >"$W/wait.out" 2>"$W/wait.err" &
wpid=$!
_t_pids+=("$wpid")
VTCTI=swtpm:host=127.0.0.1,port=$port
_wait_tcp "$wpid" "$port"
if tpm tpm2_nvread "$NV" -C o -s 32 -o "$W/nv.out2" >/dev/null && cmp -s "$W/nv.in" "$W/nv.out2"; then t_pass managed-wait-serves; else t_fail managed-wait-serves "$(tail -n 2 "$W/tpm2.log") $(cat "$W/wait.err")"; fi
kill -TERM "$wpid"
wait "$wpid"
t_eq managed-wait-exit 0 "$?"
ok managed-vtpm-closed-after-wait --json vtpm show "$V1" && jq_eq managed-vtpm-closed-after-wait-open .open false
if _alive "$MGR_PID"; then t_pass vtpmmgrd-still-running; else t_fail vtpmmgrd-still-running "$(tail -n 3 "$D/vtpmmgrd.log")"; fi
t_done
