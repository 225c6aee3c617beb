#!/usr/bin/env bash
# tests/integration/mgr_binding.sh — one vTPM per guest (issue 9, hole 1).
#
# A group's label patterns say which guests may have vTPMs in it; they do not say which of
# them owns which vTPM. Each vTPM is bound to one guest identity (the label's user field and
# level): at create (--label), or by its first successful open. Then:
#  - the hole as reported: with the pattern '*:vm_r:vtpm_t', guest2_u cannot open the vTPM
#    guest1_u has been using (refused and audited);
#  - another level of the same user is another guest (sVirt's MCS categories);
#  - `vtpmctl vtpm show` shows the binding; `vtpmctl vtpm rebind` moves it (refused while an
#    instance has the vTPM open); a label that is not user:role:type is refused.
# Usage: [BUILD=build] bash tests/integration/mgr_binding.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

need_tool swtpm jq timeout || t_done
for f in "$BUILD/vtpmmgrd" "$BUILD/vtpmctl" "$BUILD/tests/tools/mgrc"; do
  [ -x "$f" ] || { t_fail build "$f is not an executable (run make first)"; t_done; }
done
W=$(t_tmpdir)
A=$W/admin.sock
I=$W/inst.sock
export VTPM_ADMIN_SOCKET=$A
start_host_tpm "$W/host-tpm" "$W/swtpm.log" || { t_fail bind-host-tpm "swtpm did not start"; t_done; }
bg_start "$BUILD/vtpmmgrd" --tcti "$HOST_TCTI" --store "$W/store.db" --instance-socket "$I" \
  --admin-socket "$A" --nv-index 0x01000e21 --log "file=$W/vtpmmgrd.log,level=2"
wait_for_path "$A" 150 && wait_for_path "$I" 10 || { t_fail bind-mgr-start "$(tail -n 3 "$W/vtpmmgrd.log")"; t_done; }
ctl() {
  OUT=$(timeout 60 "$BUILD/vtpmctl" "$@" 2>&1 </dev/null)
  RC=$?
}
# opens LABEL UUID: MGR_OPEN (+ confirm) as a process with LABEL registered; RC, OUT
opens() {
  OUT=$(timeout 30 "$BUILD/tests/tools/mgrc" -s "$I" --register-self "$A" "$1" open uuid="$2" 2>&1)
  RC=$?
}
bound() { ctl --json vtpm show "$1" && jq -r .bound_label <<<"$OUT"; }

ctl host init --pcrs 0 || { t_fail bind-host-init "$OUT"; t_done; }
ctl group create guests --label '*:vm_r:vtpm_t' --any-binary || { t_fail bind-group "$OUT"; t_done; }
ctl vtpm create --group guests
V1=$OUT
ctl vtpm create --group guests --label guest2_u:vm_r:vtpm_t:s0:c2
V2=$OUT
[[ "$V1" =~ ^[0-9a-f-]{36}$ && "$V2" =~ ^[0-9a-f-]{36}$ ]] || { t_fail bind-create "$V1 / $V2"; t_done; }

t_eq bind-unbound-at-create "(unbound)" "$(bound "$V1")"
t_eq bind-label-at-create guest2_u:vm_r:vtpm_t:s0:c2 "$(bound "$V2")"

# the first open binds
opens guest1_u:vm_r:vtpm_t "$V1"
if [ "$RC" = 0 ] && grep -q '^state-key=' <<<"$OUT"; then t_pass bind-first-open; else t_fail bind-first-open "rc=$RC"; fi
t_eq bind-by-first-open guest1_u:vm_r:vtpm_t "$(bound "$V1")"
# the same guest again, and the hole as reported: another guest of the same pattern
opens guest1_u:vm_r:vtpm_t "$V1"
t_eq bind-same-guest-opens 0 "$RC"
opens guest2_u:vm_r:vtpm_t "$V1"
if [ "$RC" = 3 ] && grep -q "is bound to the guest of label guest1_u:vm_r:vtpm_t" <<<"$OUT" &&
  ! grep -q '^state-key=' <<<"$OUT"; then
  t_pass bind-other-guest-refused
else
  t_fail bind-other-guest-refused "rc=$RC: $(tr '\n' ' ' <<<"$OUT" | cut -c1-200)"
fi
ctl --json audit --count 30
if jq -e '[.events[] | select(.result | test("refused: vTPM .* is bound to the guest"))] | length >= 1' <<<"$OUT" >/dev/null; then
  t_pass bind-refusal-audited
else
  t_fail bind-refusal-audited "no audit row of the refusal"
fi
# a level is a guest: same user, another MCS category
opens guest1_u:vm_r:vtpm_t:s0:c5 "$V1"
t_eq bind-other-level-refused 3 "$RC"
opens guest2_u:vm_r:vtpm_t:s0:c2 "$V2"
t_eq bind-created-label-opens 0 "$RC"
opens guest2_u:vm_r:vtpm_t:s0:c3 "$V2"
t_eq bind-created-other-level-refused 3 "$RC"

# rebind: refused while open, then moves the vTPM
timeout 30 "$BUILD/tests/tools/mgrc" -s "$I" --register-self "$A" guest1_u:vm_r:vtpm_t --hold open uuid="$V1" >"$W/hold.out" 2>&1 &
HOLD=$!
_t_pids+=("$HOLD")
for ((k = 0; k < 50; k++)); do grep -q '^held' "$W/hold.out" && break; sleep 0.1; done
ctl vtpm rebind "$V1" --label guest2_u:vm_r:vtpm_t
if [ "$RC" = 3 ] && grep -q 'is open by pid' <<<"$OUT"; then t_pass bind-rebind-refused-while-open; else
  t_fail bind-rebind-refused-while-open "rc=$RC: $OUT"
fi
kill -TERM "$HOLD"
_reap "$HOLD" 5
for ((k = 0; k < 50; k++)); do
  ctl --json vtpm show "$V1"
  [ "$(jq -r .open <<<"$OUT")" = false ] && break
  sleep 0.1
done
ctl vtpm rebind "$V1" --label guest2_u:vm_r:vtpm_t
t_eq bind-rebind 0 "$RC"
t_eq bind-rebound guest2_u:vm_r:vtpm_t "$(bound "$V1")"
opens guest2_u:vm_r:vtpm_t "$V1"
t_eq bind-new-guest-opens 0 "$RC"
opens guest1_u:vm_r:vtpm_t "$V1"
t_eq bind-old-guest-refused 3 "$RC"
ctl --json audit --count 30
if jq -e '[.events[] | select(.action == "vtpm-bind")] | length >= 1' <<<"$OUT" >/dev/null; then
  t_pass bind-rebind-audited
else
  t_fail bind-rebind-audited "no vtpm-bind audit row"
fi
ctl vtpm rebind "$V1" --label 'not a label'
if [ "$RC" != 0 ] && grep -qi 'label' <<<"$OUT"; then t_pass bind-bad-label-refused; else t_fail bind-bad-label-refused "rc=$RC: $OUT"; fi
ctl vtpm create --group guests --label 'guest3_u:*:vtpm_t'
if [ "$RC" != 0 ]; then t_pass bind-pattern-is-not-a-label; else t_fail bind-pattern-is-not-a-label "created $OUT"; fi
# a label registration names the vTPM it is for: that pid may open no other
OUT=$(timeout 30 "$BUILD/tests/tools/mgrc" -s "$I" --register-uuid "$V2" --register-self "$A" \
  guest2_u:vm_r:vtpm_t open uuid="$V1" 2>&1)
RC=$?
if [ "$RC" = 3 ] && grep -q "was registered for vTPM $V2 and may open no other" <<<"$OUT"; then
  t_pass bind-registration-names-the-vtpm
else
  t_fail bind-registration-names-the-vtpm "rc=$RC: $(tr '\n' ' ' <<<"$OUT" | cut -c1-200)"
fi
t_done
