#!/usr/bin/env bash
# Logging of the installed agents to a real journal: systemd-journald runs standalone
# in a private mount namespace (its socket and storage on tmpfs there, invisible to the
# rest of the machine). With HA_LOGFACILITY set (as pacemakerd sets it), records carry
# the shell agents' identifier AGENT(instance) (journalctl -t 'Dummy(jt1)' finds them),
# the facility, priority, pid, agent, instance and action; with HA_LOGFACILITY unset
# (pacemakerd's PCMK_logfacility=none) the agent sends nothing there. With a stale
# socket and no syslog, actions still work and stderr carries only what it always
# carries: warnings, errors and the exit reason.
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

AGENT=${OCF_ROOT:-/usr/lib/ocf}/resource.d/rust/Dummy
JOURNALD=/lib/systemd/systemd-journald

# Runs inside the namespace: start journald, run the agent, dump the records as JSON.
# Returns non-zero when the namespace could not be set up as described (so journald never
# runs on the machine's own /run/systemd); $tmp/socket says what the agent found.
inner() {
  set -u
  local tmp=$1 mode=$2
  mount -t tmpfs tmpfs /run/systemd || return 1
  mount -t tmpfs tmpfs /run/log || return 1
  mkdir -p /run/systemd/journal || return 1
  if [[ $mode == stale ]]; then
    # A socket file nobody listens on, as a crashed journald leaves behind.
    python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])' /run/systemd/journal/socket || return 1
    if python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.connect(sys.argv[1])' /run/systemd/journal/socket 2>/dev/null; then
      echo "socket=answers" >"$tmp/socket"
    elif [[ -S /run/systemd/journal/socket ]]; then
      echo "socket=stale" >"$tmp/socket"
    else
      echo "socket=none" >"$tmp/socket"
    fi
  else
    "$JOURNALD" </dev/null >"$tmp/journald.out" 2>&1 &
    local jpid=$! i
    for ((i = 0; i < 100; i++)); do
      [[ -S /run/systemd/journal/socket ]] && break
      sleep 0.05
    done
    if [[ -S /run/systemd/journal/socket ]]; then echo "socket=journald" >"$tmp/socket"; else echo "socket=none" >"$tmp/socket"; fi
  fi
  local env=(OCF_RESOURCE_INSTANCE=jt1 "OCF_RESKEY_state=$tmp/jt1.state" OCF_RESKEY_CRM_meta_timeout=20000)
  [[ $mode == unset ]] || env+=(HA_LOGFACILITY=daemon)
  env "${env[@]}" "$AGENT" start 2>"$tmp/start.err"
  echo "start=$?" >"$tmp/rc"
  env "${env[@]}" OCF_RESKEY_CRM_meta_interval=10000 OCF_CHECK_LEVEL=30 "$AGENT" monitor 2>"$tmp/monitor.err"
  echo "monitor=$?" >>"$tmp/rc"
  if [[ $mode != stale ]]; then
    # A record of another program: proves the journal took records meanwhile.
    echo "journal works" | systemd-cat -t ocf-rs-marker 2>/dev/null || true
    journalctl --sync >/dev/null 2>&1 || sleep 0.5
    journalctl -q -o json --no-pager -t 'Dummy(jt1)' >"$tmp/journal.json" 2>"$tmp/journalctl.err"
    journalctl -q -o json --no-pager OCF_RESOURCE_INSTANCE=jt1 >"$tmp/any.json" 2>>"$tmp/journalctl.err"
    journalctl -q -o json --no-pager >"$tmp/all.json" 2>>"$tmp/journalctl.err"
    kill "$jpid" 2>/dev/null
    wait "$jpid" 2>/dev/null
  fi
  return 0
}

run_in_namespace() { # MODE
  mkdir -p "$T_TMP/$1"
  unshare -m --propagation private bash -c "$(declare -f inner); AGENT=$AGENT JOURNALD=$JOURNALD inner $T_TMP/$1 $1"
}

t_begin "records reach a running journald as AGENT(instance) with facility, priority, pid, agent, instance and action"
assert_true "systemd-journald missing (Debian package systemd)" -- test -x "$JOURNALD"
assert_true "journalctl missing (Debian package systemd)" -- test -x "$(command -v journalctl)"
d=$T_TMP/live
assert_rc 0 "journald in a private mount namespace" -- run_in_namespace live
assert_eq "socket=journald" "$(cat "$d/socket" 2>&1)" "journald's socket in the namespace: $(cat "$d/journald.out" 2>/dev/null)"
assert_eq $'start=0\nmonitor=1' "$(cat "$d/rc" 2>&1)" "agent exit codes"
assert_true "journalctl -t 'Dummy(jt1)' found nothing: $(cat "$d/journalctl.err" "$d/journald.out" 2>/dev/null)" -- test -s "$d/journal.json"
records=$(cat "$d/journal.json" 2>/dev/null || true)
failure=$(grep 'hyperdrive' <<<"$records" || true)
assert_match '"MESSAGE":"INFO: start finished: OCF_SUCCESS' "$records" "start record, with the shell agents' level word"
assert_match '"MESSAGE":"ERROR: hyperdrive quota reached"' "$failure" "failure record"
assert_match '"SYSLOG_IDENTIFIER":"Dummy\(jt1\)"' "$failure" "identifier field"
assert_match '"SYSLOG_PID":"[0-9]+"' "$failure" "pid field"
assert_match '"SYSLOG_FACILITY":"3"' "$failure" "facility field (daemon)"
assert_match '"OCF_RESOURCE_TYPE":"Dummy"' "$failure" "agent field"
assert_match '"OCF_RESOURCE_INSTANCE":"jt1"' "$failure" "instance field"
assert_match '"OCF_ACTION":"monitor"' "$failure" "action field"
assert_match '"PRIORITY":"3"' "$failure" "error priority"
assert_no_match 'Known\(|Some\(' "$records" "Rust debug text in a record"
assert_eq "" "$(cat "$d/start.err" 2>&1)" "stderr of a successful start: nothing (INFO goes to the log only)"
assert_eq "ocf-exit-reason:hyperdrive quota reached" "$(cat "$d/monitor.err" 2>&1)" "stderr: the exit reason and nothing else"
t_end

t_begin "with HA_LOGFACILITY unset (PCMK_logfacility=none) nothing goes to the journal"
d=$T_TMP/unset
assert_rc 0 "journald in a private mount namespace" -- run_in_namespace unset
assert_eq "socket=journald" "$(cat "$d/socket" 2>&1)" "journald's socket in the namespace"
assert_eq $'start=0\nmonitor=1' "$(cat "$d/rc" 2>&1)" "agent exit codes"
assert_match '"SYSLOG_IDENTIFIER":"ocf-rs-marker"' "$(cat "$d/all.json" 2>&1)" "another program's record reached the journal"
assert_eq "" "$(cat "$d/journal.json" "$d/any.json" 2>&1)" "records of the agent in the journal"
assert_eq "ocf-exit-reason:hyperdrive quota reached" "$(cat "$d/monitor.err" 2>&1)" "stderr: the exit reason"
t_end

t_begin "with a stale journal socket and no syslog the actions work and stderr has only the exit reason"
d=$T_TMP/stale
assert_rc 0 "a stale journal socket in a private mount namespace" -- run_in_namespace stale
assert_eq "socket=stale" "$(cat "$d/socket" 2>&1)" "the journal socket is there and refuses connections"
assert_eq $'start=0\nmonitor=1' "$(cat "$d/rc" 2>&1)" "agent exit codes"
assert_eq "" "$(cat "$d/start.err" 2>&1)" "stderr of a successful start"
assert_eq "ocf-exit-reason:hyperdrive quota reached" "$(cat "$d/monitor.err" 2>&1)" "stderr: exactly one exit reason, the failure not repeated"
t_end
