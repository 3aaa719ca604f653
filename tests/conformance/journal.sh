#!/usr/bin/env bash
# Logging of the installed agents to a real journal: systemd-journald runs standalone
# in a private mount namespace (its socket and storage on tmpfs there, invisible to the
# rest of the machine); records must carry the identifier, priority, instance and
# action. With a stale socket and no journald, logs go to stderr instead.
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

AGENT=${OCF_ROOT:-/usr/lib/ocf}/resource.d/rust/Dummy
JOURNALD=/lib/systemd/systemd-journald

# Runs inside the namespace: start journald, run the agent, dump the records as JSON.
inner() {
  set -u
  local tmp=$1 mode=$2
  mount -t tmpfs tmpfs /run/systemd
  mount -t tmpfs tmpfs /run/log
  mkdir -p /run/systemd/journal
  if [[ $mode == stale ]]; then
    # A socket file nobody listens on, as a crashed journald leaves behind.
    python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])' /run/systemd/journal/socket
  else
    "$JOURNALD" </dev/null >"$tmp/journald.out" 2>&1 &
    local jpid=$! i
    for ((i = 0; i < 100; i++)); do
      [[ -S /run/systemd/journal/socket ]] && break
      sleep 0.05
    done
  fi
  local env=(OCF_RESOURCE_INSTANCE=jt1 "OCF_RESKEY_state=$tmp/jt1.state" OCF_RESKEY_CRM_meta_timeout=20000)
  env "${env[@]}" "$AGENT" start 2>"$tmp/start.err"
  echo "start=$?" >"$tmp/rc"
  env "${env[@]}" OCF_RESKEY_CRM_meta_interval=10000 OCF_CHECK_LEVEL=30 "$AGENT" monitor 2>"$tmp/monitor.err"
  echo "monitor=$?" >>"$tmp/rc"
  if [[ $mode != stale ]]; then
    journalctl --sync >/dev/null 2>&1 || sleep 0.5
    journalctl -q -o json --no-pager SYSLOG_IDENTIFIER=Dummy >"$tmp/journal.json" 2>"$tmp/journalctl.err"
    kill "$jpid" 2>/dev/null
    wait "$jpid" 2>/dev/null
  fi
  return 0
}

run_in_namespace() { # MODE
  mkdir -p "$T_TMP/$1"
  unshare -m --propagation private bash -c "$(declare -f inner); AGENT=$AGENT JOURNALD=$JOURNALD inner $T_TMP/$1 $1"
}

t_begin "records reach a running journald with identifier, priority, instance and action"
if ! [[ -x $JOURNALD ]] || ! command -v journalctl >/dev/null; then
  t_fail "systemd-journald/journalctl missing (Debian package systemd)"
else
  run_in_namespace live
  d=$T_TMP/live
  assert_eq $'start=0\nmonitor=1' "$(cat "$d/rc")" "agent exit codes" &&
    assert_true "no records: $(cat "$d/journalctl.err" "$d/journald.out" 2>/dev/null)" -- test -s "$d/journal.json" &&
    assert_match '"MESSAGE":"start finished: OCF_SUCCESS' "$(cat "$d/journal.json")" "start record" &&
    assert_match '"MESSAGE":"hyperdrive quota reached"' "$(cat "$d/journal.json")" "failure record" &&
    assert_match '"OCF_RESOURCE_INSTANCE":"jt1"' "$(grep 'hyperdrive' "$d/journal.json")" "instance field" &&
    assert_match '"OCF_ACTION":"monitor"' "$(grep 'hyperdrive' "$d/journal.json")" "action field" &&
    assert_match '"PRIORITY":"3"' "$(grep 'hyperdrive' "$d/journal.json")" "error priority" &&
    assert_eq "" "$(grep -v '^ocf-exit-reason:' "$d/monitor.err")" "nothing but the exit reason on stderr" &&
    assert_eq "ocf-exit-reason:hyperdrive quota reached" "$(cat "$d/monitor.err")" "exit reason on stderr"
fi
t_end

t_begin "with a stale journal socket the agent logs to stderr"
run_in_namespace stale
d=$T_TMP/stale
assert_eq $'start=0\nmonitor=1' "$(cat "$d/rc")" "agent exit codes" &&
  assert_match 'INFO .*start finished: OCF_SUCCESS' "$(cat "$d/start.err")" "start logged on stderr" &&
  assert_match 'ERROR .*instance=jt1 action="monitor".*hyperdrive quota reached' "$(cat "$d/monitor.err")" "failure logged on stderr" &&
  assert_eq "ocf-exit-reason:hyperdrive quota reached" "$(grep '^ocf-exit-reason:' "$d/monitor.err")" "exactly one exit reason"
t_end

