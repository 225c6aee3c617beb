#!/usr/bin/env bash
# tests/integration/managed_crash_slow.sh — the managed kill -9 loop (managed_crash.sh) with the
# manager's host TPM behind slowtpm: hardware delays and NV writes beyond 10/s refused with
# TPM_RC_NV_RATE. No answered write may be lost, no write may fail, the manager must come back
# after every kill -9, and the running vtpmd must be taken back each time. 60 rounds (every 5th
# kills the manager); its checks are reported with a "slow-host/" prefix.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
need_tool python3 || t_done
d=$(t_tmpdir)
CRASH_HOST_SLOW=1 CRASH_ROUNDS=${CRASH_SLOW_ROUNDS:-60} CRASH_MIN_ROUNDS=60 \
  bash "$(dirname "${BASH_SOURCE[0]}")/managed_crash.sh" >"$d/out" 2>&1
rc=$?
sed -e 's#^\(PASS\|FAIL\|SKIP\): #&slow-host/#' "$d/out"
[ $rc -eq 0 ] || grep -q '^FAIL: ' "$d/out" || t_fail slow-host "managed_crash.sh exited with status $rc"
t_done
