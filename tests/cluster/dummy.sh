#!/usr/bin/env bash
# ocf:rust:Dummy under the running one-node cluster (started by tests/run.sh):
# start, monitor failure and recovery, failcount and cleanup, reload-agent on a
# reloadable parameter change, disable/enable, delete. Leaves no resource behind.
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

RSCS=(FAKE1 FAKE2 FAKE3 FAKE4 FAKE5)
ENVFILE=$T_TMP/FAKE3.env
state_file() { printf '/var/run/Dummy-%s.state' "$1"; }
exists() { [[ -e $1 ]]; }
absent() { [[ ! -e $1 ]]; }

# Deletes every FAKE resource, bounded: disable all at once (one transition),
# wait until stopped, then delete (pcs then has nothing to wait for).
delete_all() {
  local r present=()
  for r in "${RSCS[@]}"; do
    rsc_is_gone "$r" || present+=("$r")
  done
  ((${#present[@]})) || return 0
  timeout 20 pcs resource disable "${present[@]}" >/dev/null 2>&1
  for r in "${present[@]}"; do wait_stopped "$r" 20; done
  for r in "${present[@]}"; do
    timeout 30 pcs resource delete "$r" >/dev/null 2>&1
  done
  for r in "${present[@]}"; do wait_gone "$r" 20 || return 1; done
}
t_on_exit delete_all

t_begin "the cluster is running and has no FAKE resource"
assert_true "cluster not running (scripts/cluster.sh status)" -- cluster_running &&
  assert_true "FAKE resources left over" -- delete_all
t_end

t_begin "pcs resource create FAKE1..5 (monitor 2s): all Started on $T_NODE"
for i in 1 2 3 4 5; do
  extra=()
  ((i == 3)) && extra=("envfile=$ENVFILE")
  assert_rc 0 "pcs resource create FAKE$i" -- \
    pcs resource create "FAKE$i" ocf:rust:Dummy "${extra[@]}" op monitor interval=2s || break
done
for r in "${RSCS[@]}"; do
  if ! wait_started "$r" "$T_NODE" 30; then
    t_fail "$r not Started on $T_NODE within 30s (state: '$(rsc_state "$r")')"
    break
  fi
  assert_true "$r started but $(state_file "$r") missing" -- exists "$(state_file "$r")" || break
done
t_note "all started $(t_elapsed) s after the first create"
t_end

t_begin "FAKE1: a deleted state file fails the monitor, the cluster recovers it, failcount 1"
sf=$(state_file FAKE1)
assert_wait 10 "FAKE1 not Started before the test" -- rsc_is_started FAKE1 &&
  assert_eq 0 "$(failcount FAKE1)" "failcount before" &&
  assert_true "cannot remove $sf" -- rm "$sf" &&
  assert_wait 10 "failcount of FAKE1 never became 1 (monitor failure not seen)" -- failcount_is 1 FAKE1 &&
  assert_wait 10 "state file not recreated by the recovery" -- exists "$sf" &&
  { wait_started FAKE1 "$T_NODE" 10 || t_fail "FAKE1 not Started again within 10s (state: '$(rsc_state FAKE1)')"; } &&
  assert_true "cluster not idle after recovery" -- cluster_idle 20 &&
  assert_eq 1 "$(failcount FAKE1)" "failcount after recovery" &&
  assert_match "FAKE1 2s-interval monitor on $T_NODE returned 'not running'" "$(crm_mon -1)" \
    "failed action in crm_mon -1"
t_note "recovered $(t_elapsed) s after the state file was removed"
t_end

t_begin "pcs resource cleanup FAKE1: failcount 0, no failed action"
no_failed_action() { ! grep -q 'FAKE1 .*monitor' <<<"$(crm_mon -1)"; }
assert_rc 0 "pcs resource cleanup FAKE1" -- pcs resource cleanup FAKE1 &&
  { wait_until 10 failcount_is 0 FAKE1 || t_fail "failcount of FAKE1 still $(failcount FAKE1) 10s after cleanup"; } &&
  assert_wait 10 "crm_mon -1 still shows a failed FAKE1 action" -- no_failed_action &&
  # The cleanup makes the cluster probe FAKE1 again: Started once that probe is in.
  assert_wait 10 "FAKE1 not Started after cleanup" -- rsc_is_started FAKE1 &&
  assert_true "FAKE1 state file gone after cleanup" -- exists "$sf"
t_end

t_begin "FAKE3: changing reloadable 'fake' runs reload-agent, not a restart"
# Entries in the envfile after line $mark were written after the update.
after_mark() { tail -n "+$((mark + 1))" "$ENVFILE"; }
reloaded() { after_mark | grep -q '^### reload-agent '; }
assert_true "envfile $ENVFILE not written by FAKE3" -- exists "$ENVFILE" &&
  assert_true "cluster not idle before the update" -- cluster_idle 20 &&
  mark=$(wc -l <"$ENVFILE") &&
  assert_rc 0 "pcs resource update FAKE3 fake=changed" -- pcs resource update FAKE3 fake=changed &&
  assert_wait 10 "no '### reload-agent' entry after the update" -- reloaded &&
  assert_true "cluster not idle after the update" -- cluster_idle 20 &&
  assert_match 'OCF_RESKEY_fake=changed' "$(after_mark)" "reload-agent did not see the new value" &&
  assert_no_match '### (stop|start) ' "$(after_mark)" "FAKE3 was restarted" &&
  assert_true "FAKE3 not Started after reload (state: '$(rsc_state FAKE3)')" -- rsc_is_started FAKE3 &&
  assert_true "FAKE3 state file gone after reload" -- exists "$(state_file FAKE3)"
t_end

t_begin "FAKE2: disable stops it (state file gone), enable starts it again"
sf=$(state_file FAKE2)
assert_true "FAKE2 not Started before" -- rsc_is_started FAKE2 &&
  assert_rc 0 "pcs resource disable FAKE2" -- pcs resource disable FAKE2 &&
  { wait_stopped FAKE2 20 || t_fail "FAKE2 not Stopped within 20s (state: '$(rsc_state FAKE2)')"; } &&
  assert_match '^Stopped \(disabled\)' "$(rsc_state FAKE2)" "crm_mon state" &&
  assert_true "state file still there after disable" -- absent "$sf" &&
  assert_rc 0 "pcs resource enable FAKE2" -- pcs resource enable FAKE2 &&
  { wait_started FAKE2 "$T_NODE" 20 || t_fail "FAKE2 not Started within 20s of enable (state: '$(rsc_state FAKE2)')"; } &&
  assert_true "state file not back after enable" -- exists "$sf"
t_end

t_begin "all FAKE resources are still Started with failcount 0"
for r in "${RSCS[@]}"; do
  assert_true "$r not Started" -- rsc_is_started "$r" || break
  assert_eq 0 "$(failcount "$r")" "$r failcount" || break
done
t_end

t_begin "pcs resource delete of all FAKE resources leaves an empty cluster"
assert_true "delete_all did not finish" -- delete_all &&
  assert_match 'No resources' "$(crm_mon -1 -r)" "crm_mon -1 -r after delete"
for r in "${RSCS[@]}"; do
  assert_true "$(state_file "$r") left behind" -- absent "$(state_file "$r")" || break
done
t_end
