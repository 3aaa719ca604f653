#!/usr/bin/env bash
# ocf:rust:Dummy under the running one-node cluster (started by tests/run.sh):
# start, monitor failure and recovery, failcount and cleanup, reload-agent on a
# reloadable parameter change, tracing turned on by pcs (trace_ra) and the agent's
# records in Pacemaker's log, disable/enable, delete. Leaves no resource behind.
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

RSCS=(FAKE1 FAKE2 FAKE3 FAKE4 FAKE5)
ENVFILE=$T_TMP/FAKE3.env
state_file() { printf '/var/run/Dummy-%s.state' "$1"; }
exists() { [[ -e $1 ]]; }
absent() { [[ ! -e $1 ]]; }

# Deletes every FAKE resource, bounded: disable all at once (one transition),
# wait until stopped, then delete (pcs then has nothing to wait for). Returns 1 when one
# is still in the configuration or the status at the end.
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

# The monitor operation of RSC in the CIB has interval INTERVAL.
monitor_interval_is() { # RSC INTERVAL
  cibadmin -Q --xpath "//primitive[@id='$1']/operations/op[@name='monitor'][@interval='$2']" >/dev/null 2>&1
}

# Entries FAKE3 wrote to the envfile after line $mark (set by the reload case).
after_mark() { tail -n "+$((mark + 1))" "$ENVFILE"; }
reloaded() { grep -q '^### reload-agent ' <<<"$(after_mark)"; }
monitored_after_reload() { grep -q '^### monitor ' <<<"$(sed -n '/^### reload-agent /,$p' <<<"$(after_mark)")"; }

t_begin "the cluster is running and has no FAKE resource (nor a state file of one)"
assert_true "cluster not running (scripts/cluster.sh status)" -- cluster_running
assert_true "FAKE resources left over" -- delete_all
# With its resource gone, a state file can only be a leftover of an earlier run; it would
# make the first probe find that FAKE running, and its start would never run.
for r in "${RSCS[@]}"; do
  assert_true "cannot remove a leftover $(state_file "$r")" -- rm -f -- "$(state_file "$r")" || break
  assert_true "$(state_file "$r") left over" -- absent "$(state_file "$r")" || break
done
t_end

t_begin "pcs resource create FAKE1..5 (monitor 2s): all Started on $T_NODE"
lmark=$(pcmk_log_mark)
for i in 1 2 3 4 5; do
  extra=()
  if ((i == 3)); then extra=("envfile=$ENVFILE"); fi
  assert_rc 0 "pcs resource create FAKE$i" -- \
    pcs resource create "FAKE$i" ocf:rust:Dummy "${extra[@]}" op monitor interval=2s || break
done
for r in "${RSCS[@]}"; do
  assert_started "$r" "$T_NODE" 30 || break
  assert_true "$r's monitor is not interval=2s in the CIB" -- monitor_interval_is "$r" 2s || break
  assert_wait 10 "no successful start of $r in the pacemaker log" -- \
    pcmk_log_has "$lmark" "Result of start operation for $r on $T_NODE: ok" || break
  assert_true "$r started but $(state_file "$r") missing" -- exists "$(state_file "$r")" || break
done
t_note "all started $(t_elapsed) s after the first create"
t_end

t_begin "FAKE1: a deleted state file fails the monitor, the cluster recovers it, failcount 1"
sf=$(state_file FAKE1)
assert_wait 10 "FAKE1 not Started before the test" -- rsc_is_started FAKE1
assert_eq 0 "$(failcount FAKE1)" "failcount before"
assert_true "cannot remove $sf" -- rm "$sf"
assert_wait 10 "failcount of FAKE1 never became 1 (monitor failure not seen)" -- failcount_is 1 FAKE1
assert_wait 10 "state file not recreated by the recovery" -- exists "$sf"
assert_started FAKE1 "$T_NODE" 10
assert_true "cluster not idle after recovery" -- cluster_idle 20
assert_eq 1 "$(failcount FAKE1)" "failcount after recovery"
assert_true "no failed FAKE1 monitor in crm_mon -1: $(failed_actions)" -- \
  failed_action_shown "FAKE1 2s-interval monitor on $T_NODE returned 'not running'"
t_note "recovered $(t_elapsed) s after the state file was removed"
t_end

t_begin "pcs resource cleanup FAKE1: failcount 0, no failed action"
assert_true "no failed FAKE1 action before the cleanup: nothing to clean" -- failed_action_shown '^[[:space:]]*\* FAKE1 '
assert_rc 0 "pcs resource cleanup FAKE1" -- pcs resource cleanup FAKE1
assert_wait 10 "failcount of FAKE1 still $(failcount FAKE1) 10s after cleanup" -- failcount_is 0 FAKE1
assert_wait 10 "crm_mon -1 still shows a failed FAKE1 action (or does not answer)" -- no_failed_action '^[[:space:]]*\* FAKE1 '
# The cleanup makes the cluster probe FAKE1 again: Started once that probe is in.
assert_wait 10 "FAKE1 not Started after cleanup" -- rsc_is_started FAKE1
assert_true "FAKE1 state file gone after cleanup" -- exists "$sf"
t_end

t_begin "FAKE3: changing reloadable 'fake' runs reload-agent, not a restart"
assert_true "envfile $ENVFILE not written by FAKE3" -- exists "$ENVFILE"
assert_true "cluster not idle before the update" -- cluster_idle 20
mark=$(wc -l <"$ENVFILE")
assert_rc 0 "pcs resource update FAKE3 fake=changed" -- pcs resource update FAKE3 fake=changed
assert_wait 10 "no '### reload-agent' entry after the update" -- reloaded
assert_true "cluster not idle after the update" -- cluster_idle 20
assert_wait 10 "no recurring monitor of FAKE3 after its reload-agent" -- monitored_after_reload
entries=$(after_mark)
assert_match 'OCF_RESKEY_fake=changed' "$(sed -n '/^### reload-agent /,/^###$/p' <<<"$entries")" "reload-agent did not see the new value"
assert_no_match '### (stop|start) ' "$entries" "FAKE3 was restarted"
assert_true "FAKE3 not Started after reload (state: '$(rsc_state FAKE3)')" -- rsc_is_started FAKE3
assert_true "FAKE3 state file gone after reload" -- exists "$(state_file FAKE3)"
t_end

TRACE_DIR=/var/lib/heartbeat/trace_ra/Dummy
traced() { compgen -G "$TRACE_DIR/$1.$2.*" >/dev/null; } # RSC ACTION
remove_traces() { rm -f -- "$TRACE_DIR"/FAKE3.*; }
t_on_exit remove_traces

t_begin "FAKE3: trace_ra=1 by pcs traces its actions under $TRACE_DIR without a restart; its records are in Pacemaker's log as Dummy(FAKE3)[pid]"
assert_true "cannot remove old traces of FAKE3" -- remove_traces
assert_match $'(^|\n)HA_LOGFILE=/' "$(cat "$ENVFILE")" "the executor gives the agents HA_LOGFILE"
assert_true "cluster not idle before the update" -- cluster_idle 20
mark=$(wc -l <"$ENVFILE")
lmark=$(pcmk_log_mark)
assert_rc 0 "pcs resource update FAKE3 trace_ra=1" -- pcs resource update FAKE3 trace_ra=1
assert_wait 10 "no '### reload-agent' entry after the update" -- reloaded
assert_wait 10 "no trace of a monitor of FAKE3 in $TRACE_DIR" -- traced FAKE3 monitor
assert_no_match '### (stop|start) ' "$(after_mark)" "FAKE3 was restarted"
assert_match 'DEBUG: monitor finished: OCF_SUCCESS' "$(cat "$TRACE_DIR"/FAKE3.monitor.* 2>&1)" "the monitor's trace"
assert_true "no 'Dummy(FAKE3)[pid]:    INFO: reload-agent finished' in $T_PCMK_LOG" -- \
  pcmk_log_has "$lmark" 'Dummy\(FAKE3\)\[[0-9]+\]:    INFO: reload-agent finished: OCF_SUCCESS'
assert_rc 0 "pcs resource update FAKE3 trace_ra=0" -- pcs resource update FAKE3 trace_ra=0
assert_true "cluster not idle after turning tracing off" -- cluster_idle 20
assert_true "FAKE3 not Started (state: '$(rsc_state FAKE3)')" -- rsc_is_started FAKE3
t_end

t_begin "FAKE2: disable stops it (state file gone), enable starts it again"
sf=$(state_file FAKE2)
assert_true "FAKE2 not Started before" -- rsc_is_started FAKE2
assert_true "FAKE2 state file missing before" -- exists "$sf"
assert_rc 0 "pcs resource disable FAKE2" -- pcs resource disable FAKE2
assert_stopped FAKE2 20
assert_match '^Stopped \(disabled\)' "$(rsc_state FAKE2)" "crm_mon state"
assert_true "state file still there after disable" -- absent "$sf"
assert_rc 0 "pcs resource enable FAKE2" -- pcs resource enable FAKE2
assert_started FAKE2 "$T_NODE" 20
assert_true "state file not back after enable" -- exists "$sf"
t_end

t_begin "all FAKE resources are still Started with failcount 0"
for r in "${RSCS[@]}"; do
  assert_true "$r not Started" -- rsc_is_started "$r" || break
  assert_eq 0 "$(failcount "$r")" "$r failcount" || break
done
t_end

t_begin "pcs resource delete of all FAKE resources leaves an empty cluster"
assert_true "delete_all did not finish" -- delete_all
assert_match 'No resources' "$(crm_mon -1 -r)" "crm_mon -1 -r after delete"
for r in "${RSCS[@]}"; do
  assert_true "$r still in the CIB or the status" -- rsc_is_gone "$r" || break
  assert_true "$(state_file "$r") left behind" -- absent "$(state_file "$r")" || break
done
t_end
