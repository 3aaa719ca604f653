#!/usr/bin/env bash
# Logging and tracing of the installed agents where admins look for them, as the shell
# agents (ocf-shellfuncs) do it:
# - syslog: a real datagram socket bound to /dev/log in a private mount namespace (a tmpfs
#   on /dev there, invisible to the rest of the machine) receives what the agent sends
#   with HA_LOGFACILITY=local3: `<PRI>Mmm dd hh:mm:ss Dummy(sl1)[PID]: LEVEL: text`, the
#   priorities of the facility and the shell agents' levels; HA_LOGFACILITY=none sends
#   nothing; without /dev/log the action neither fails nor waits;
# - HA_LOGFILE/HA_DEBUGLOG lines in the shell layout, local time as hadate prints it;
# - trace_ra=1: a debug-level trace of the action in trace_file or under
#   $HA_VARLIB/trace_ra/<type>/<instance>.<action>.<date>; pcs accepts trace_ra/trace_file.
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

AGENT=${OCF_ROOT:-/usr/lib/ocf}/resource.d/rust/Dummy
VD=${OCF_ROOT:-/usr/lib/ocf}/resource.d/rust/VirtualDomain
PYTHON=/usr/bin/python3

# A datagram listener on $1 writing each datagram as one line to $2, until killed.
LISTENER='
import os, socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
open(out + ".ready", "w").close()
with open(out, "ab", buffering=0) as f:
    while True:
        f.write(s.recv(65536).replace(b"\n", b"\\n") + b"\n")
'

# Runs inside the namespace: a tmpfs on /dev with /dev/null, the listener on /dev/log
# (unless MODE is nolog), then the agent with HA_LOGFACILITY (local3, or none).
inner() {
  set -u
  local tmp=$1 mode=$2 facility=local3
  mount -t tmpfs tmpfs /dev || return 1
  mknod -m 666 /dev/null c 1 3 || return 1
  mknod -m 444 /dev/urandom c 1 9 || return 1
  [[ $mode == none ]] && facility=none
  local lpid=""
  if [[ $mode != nolog ]]; then
    "$PYTHON" -c "$LISTENER" /dev/log "$tmp/syslog.out" </dev/null 2>"$tmp/listener.err" &
    lpid=$!
    local i
    for ((i = 0; i < 100; i++)); do
      [[ -e $tmp/syslog.out.ready ]] && break
      sleep 0.05
    done
    if [[ -S /dev/log ]]; then echo "socket=listening" >"$tmp/socket"; else echo "socket=none" >"$tmp/socket"; fi
  else
    if [[ -e /dev/log ]]; then echo "socket=present" >"$tmp/socket"; else echo "socket=none" >"$tmp/socket"; fi
  fi
  local env=(OCF_RESOURCE_INSTANCE=sl1 "OCF_RESKEY_state=$tmp/sl1.state" OCF_RESKEY_CRM_meta_timeout=20000
    "HA_LOGFACILITY=$facility")
  local t0=$EPOCHREALTIME
  env "${env[@]}" "$AGENT" start </dev/null 2>"$tmp/start.err"
  echo "start=$?" >"$tmp/rc"
  env "${env[@]}" OCF_RESKEY_CRM_meta_interval=10000 OCF_CHECK_LEVEL=30 "$AGENT" monitor </dev/null 2>"$tmp/monitor.err"
  echo "monitor=$?" >>"$tmp/rc"
  # stop with a bad value it goes on without: a warning.
  env "${env[@]}" OCF_RESKEY_op_sleep=soon "$AGENT" stop </dev/null 2>"$tmp/stop.err"
  echo "stop=$?" >>"$tmp/rc"
  awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d\n", (b - a) * 1000 }' >"$tmp/ms"
  sleep 0.2
  if [[ -n $lpid ]]; then
    kill "$lpid" 2>/dev/null
    wait "$lpid" 2>/dev/null
  fi
  return 0
}

run_in_namespace() { # MODE
  mkdir -p "$T_TMP/$1"
  unshare -m --propagation private bash -c "$(declare -f inner); PYTHON=$PYTHON AGENT=$AGENT LISTENER=$(printf %q "$LISTENER") inner $T_TMP/$1 $1"
}

t_begin "HA_LOGFACILITY=local3: syslog datagrams on /dev/log as logger sends them for the shell agents"
assert_true "python3 missing (Debian package python3)" -- test -x "$PYTHON"
d=$T_TMP/syslog
assert_rc 0 "a /dev/log listener in a private mount namespace" -- run_in_namespace syslog
assert_eq "socket=listening" "$(cat "$d/socket" 2>&1)" "the listener's socket: $(cat "$d/listener.err" 2>/dev/null)"
assert_eq $'start=0\nmonitor=1\nstop=0' "$(cat "$d/rc" 2>&1)" "agent exit codes"
log=$(cat "$d/syslog.out" 2>/dev/null || true)
ts='[A-Z][a-z]{2} [ 123][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}'
# local3 = 19: info 19*8+6 = 158, warning 156, error 155.
assert_match "(^|"$'\n'")<158>$ts Dummy\\(sl1\\)\\[[0-9]+\\]: INFO: start finished: OCF_SUCCESS" "$log" "start record (info)"
assert_match "(^|"$'\n'")<155>$ts Dummy\\(sl1\\)\\[[0-9]+\\]: ERROR: hyperdrive quota reached("$'\n'"|$)" "$log" "failure record (err)"
assert_match "(^|"$'\n'")<156>$ts Dummy\\(sl1\\)\\[[0-9]+\\]: WARNING: parameter 'op_sleep'" "$log" "warning record (warning)"
assert_no_match 'Known\(|Some\(|ocf\{' "$log" "Rust debug text in a record"
assert_eq "" "$(cat "$d/start.err" 2>&1)" "stderr of a successful start: nothing"
assert_eq "ocf-exit-reason:hyperdrive quota reached" "$(cat "$d/monitor.err" 2>&1)" "stderr of the failed monitor: the exit reason once"
assert_match "^WARNING: parameter 'op_sleep'" "$(cat "$d/stop.err" 2>&1)" "stderr of the stop: its warning"
t_end

t_begin "HA_LOGFACILITY=none sends nothing to /dev/log"
d=$T_TMP/none
assert_rc 0 "a /dev/log listener in a private mount namespace" -- run_in_namespace none
assert_eq "socket=listening" "$(cat "$d/socket" 2>&1)" "the listener's socket"
assert_eq $'start=0\nmonitor=1\nstop=0' "$(cat "$d/rc" 2>&1)" "agent exit codes"
assert_eq "" "$(cat "$d/syslog.out" 2>&1)" "datagrams received"
t_end

t_begin "without /dev/log the actions neither fail nor wait"
d=$T_TMP/nolog
assert_rc 0 "a /dev without log in a private mount namespace" -- run_in_namespace nolog
assert_eq "socket=none" "$(cat "$d/socket" 2>&1)" "no /dev/log in the namespace"
assert_eq $'start=0\nmonitor=1\nstop=0' "$(cat "$d/rc" 2>&1)" "agent exit codes"
ms=$(cat "$d/ms" 2>/dev/null || echo 99999)
assert_true "three actions took $ms ms (expected well under 2 s)" -- test "$ms" -lt 2000
assert_eq "ocf-exit-reason:hyperdrive quota reached" "$(cat "$d/monitor.err" 2>&1)" "stderr of the failed monitor"
t_end

t_begin "HA_LOGFILE and HA_DEBUGLOG: the shell agents' lines, local time as hadate prints it (TZ=Asia/Tokyo)"
log=$T_TMP/ha.log
dbg=$T_TMP/ha-debug.log
env=(OCF_RESOURCE_INSTANCE=lf1 "OCF_RESKEY_state=$T_TMP/lf1.state" "HA_LOGFILE=$log" "HA_DEBUGLOG=$dbg" HA_debug=1 TZ=Asia/Tokyo)
before=$(TZ=Asia/Tokyo date '+%b %d %T ')
assert_rc 0 "start" -- env "${env[@]}" "$AGENT" start
after=$(TZ=Asia/Tokyo date '+%b %d %T ')
assert_rc 0 "monitor" -- env "${env[@]}" OCF_RESKEY_CRM_meta_interval=10000 "$AGENT" monitor
line=$(grep 'start finished' "$log" || true)
assert_match '^[A-Z][a-z]{2} [0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}  Dummy\(lf1\)\[[0-9]+\]:    INFO: start finished: OCF_SUCCESS' "$line" "HA_LOGFILE line"
date_of_line=${line:0:16}
if [[ $date_of_line == "$before" || $date_of_line == "$after" ]]; then same=yes; else same="no: '$date_of_line' is neither '$before' nor '$after'"; fi
assert_eq yes "$same" "the line's date is Tokyo's local time"
assert_no_match 'DEBUG' "$(cat "$log")" "debug records in HA_LOGFILE (the shell agents put them in HA_DEBUGLOG only)"
debug=$(cat "$dbg" 2>/dev/null || true)
assert_match $'(^|\n)Dummy\\(lf1\\)\\[[0-9]+\\]:\t[A-Z][a-z]{2} [0-9]{2} [0-9:]{8} DEBUG: monitor finished: OCF_SUCCESS' "$debug" "HA_DEBUGLOG debug line"
assert_match $'(^|\n)Dummy\\(lf1\\)\\[[0-9]+\\]:\t[A-Z][a-z]{2} [0-9]{2} [0-9:]{8} INFO: start finished' "$debug" "HA_DEBUGLOG has the other records too (it is not HA_LOGFILE)"
assert_rc 0 "stop" -- env "${env[@]}" HA_DATEFMT='%Y/%m/%d_%T ' "$AGENT" stop
assert_match "$(TZ=Asia/Tokyo date +%Y/%m/%d)_[0-9:]{8}  Dummy\\(lf1\\)" "$(tail -n 1 "$log")" "HA_DATEFMT honoured"
t_end

t_begin "trace_ra=1 writes a debug-level trace under \$HA_VARLIB/trace_ra/<type>/<instance>.<action>.<date>"
varlib=$T_TMP/varlib
env=(OCF_RESOURCE_INSTANCE=tr1 "OCF_RESKEY_state=$T_TMP/tr1.state" OCF_RESKEY_trace_ra=1 "HA_VARLIB=$varlib")
assert_rc 0 "start with trace_ra=1" -- env "${env[@]}" "$AGENT" start
assert_eq "" "$T_OUT" "start's output"
assert_rc 0 "monitor with trace_ra=1" -- env "${env[@]}" OCF_RESKEY_CRM_meta_interval=10000 "$AGENT" monitor
traces=$(ls "$varlib/trace_ra/Dummy" 2>/dev/null || true)
assert_match '^tr1\.start\.[0-9]{4}-[0-9]{2}-[0-9]{2}\.[0-9]{2}:[0-9]{2}:[0-9]{2}'$'\n''tr1\.monitor\.' "$(sort -r <<<"$traces")" "one trace per action"
start_trace=$(cat "$varlib"/trace_ra/Dummy/tr1.start.* 2>/dev/null || true)
assert_match 'OCF_RESKEY_trace_ra=1' "$start_trace" "the environment in the trace"
assert_eq "600" "$(stat -c %a "$varlib"/trace_ra/Dummy/tr1.start.* 2>&1)" "the trace's mode (it holds the environment)"
assert_match 'INFO: start finished: OCF_SUCCESS' "$start_trace" "the action's records"
monitor_trace=$(cat "$varlib"/trace_ra/Dummy/tr1.monitor.* 2>/dev/null || true)
assert_match 'DEBUG: monitor finished: OCF_SUCCESS' "$monitor_trace" "debug records although HA_debug is off"
t_end

t_begin "trace_file, OCF_TRACE_FILE and a destination that cannot be written"
tf=$T_TMP/explicit.trace
assert_rc 0 "start with trace_file" -- env OCF_RESOURCE_INSTANCE=tf1 "OCF_RESKEY_state=$T_TMP/tf1.state" \
  OCF_RESKEY_trace_ra=1 "OCF_RESKEY_trace_file=$tf" "HA_VARLIB=$T_TMP/unused" "$AGENT" start
assert_match 'INFO: start finished' "$(cat "$tf" 2>&1)" "the trace in trace_file"
assert_true "nothing under HA_VARLIB when trace_file is set" -- test ! -e "$T_TMP/unused"
# crm_resource -VV sets OCF_TRACE_RA=1 OCF_TRACE_FILE=/dev/stderr.
assert_rc 0 "stop with OCF_TRACE_FILE=/dev/stderr" -- env OCF_RESOURCE_INSTANCE=tf1 "OCF_RESKEY_state=$T_TMP/tf1.state" \
  OCF_TRACE_RA=1 OCF_TRACE_FILE=/dev/stderr "$AGENT" stop
assert_match 'DEBUG: tracing stop of Dummy\(tf1\)' "$T_OUT" "the trace on stderr"
touch "$T_TMP/notadir"
assert_rc 0 "start with a trace_file that cannot be created" -- env OCF_RESOURCE_INSTANCE=tf1 "OCF_RESKEY_state=$T_TMP/tf1.state" \
  OCF_RESKEY_trace_ra=1 "OCF_RESKEY_trace_file=$T_TMP/notadir/x.trace" "$AGENT" start
assert_match "^WARNING: $T_TMP/notadir/x.trace not writable, trace not going to happen" "$T_OUT" "the warning"
t_end

t_begin "pcs -f resource create accepts trace_ra and trace_file for both agents"
cib=$T_TMP/cib.xml
cibadmin --empty >"$cib"
assert_rc 0 "pcs -f resource create Dummy trace_ra=1" -- pcs -f "$cib" resource create trd ocf:rust:Dummy \
  trace_ra=1 trace_file=/var/lib/heartbeat/trace_ra/trd.trace
assert_rc 0 "pcs -f resource create VirtualDomain trace_ra=1" -- pcs -f "$cib" resource create trv ocf:rust:VirtualDomain \
  config=/etc/x.xml trace_ra=1
prim=$(CIB_file=$cib cibadmin -Q --xpath "//primitive[@id='trd']")
assert_match 'name="trace_ra" value="1"' "$prim" "trace_ra in Dummy's instance attributes"
assert_match 'name="trace_file" value="/var/lib/heartbeat/trace_ra/trd.trace"' "$prim" "trace_file in the instance attributes"
prim=$(CIB_file=$cib cibadmin -Q --xpath "//primitive[@id='trv']")
assert_match 'name="trace_ra" value="1"' "$prim" "trace_ra in VirtualDomain's instance attributes"
assert_rc 0 "VirtualDomain meta-data" -- env OCF_RA_VERSION_MINOR=1 "$VD" meta-data
assert_match '<parameter name="trace_ra" required="0" reloadable="1"' "$T_OUT" "trace_ra is reloadable (turning tracing on restarts no VM)"
t_end
