#!/usr/bin/env bash
# Runs a one-node corosync + pacemaker cluster on this machine without systemd.
#
# Usage: scripts/cluster.sh start | stop | status | wait-idle [SECONDS]
#
#   start      write the corosync config and keys if needed, wipe old cluster
#              state (a fresh CIB every start), start corosync and pacemakerd,
#              record their pids and wait until the cluster is ready and the
#              daemons answering are the ones it started. If a cluster started
#              by this script is already running and ready, say so and exit 0.
#              Refuses (exit 1, before touching any file) when corosync or
#              pacemaker daemons it did not start run in this network or mount
#              namespace, or answer on their IPC names; it never stops them.
#   stop       stop what start started, by pid (SIGTERM, bounded wait, SIGKILL).
#              Exits 0 when nothing of ours runs. Never stops daemons it did not
#              start (it names them).
#   status     exit 0 if our cluster runs, is ready and our daemons answer;
#              4 if cluster daemons this script did not start run or answer here;
#              1 otherwise.
#   wait-idle  wait until the DC of our cluster is S_IDLE (no transition in progress).
#
# Ready means: `crm_mon -1` shows "Online: [ NODE ]" and "partition with
# quorum", and `crmadmin -q -S NODE` reports S_IDLE. Ours means (see
# scripts/lib-proc.sh): the processes recorded at start are alive (pid and start
# time) and they are the ones listening on the IPC names the tools use:
# corosync on @quorum and @cmap, pacemakerd on @pacemakerd, its children
# pacemaker-based on @cib_ro and pacemaker-controld on @crmd (SO_PEERCRED).
#
# Environment:
#   CLUSTER_NODE_NAME  node name in corosync.conf       (default node1)
#   CLUSTER_ADDR       ring0 address                     (default 127.0.0.1)
#   CLUSTER_NAME       corosync cluster_name             (default ocfrs)
#   CLUSTER_RUN_DIR    pid files                         (default /run/ocf-rs-cluster)
#   CLUSTER_LOG_DIR    corosync and pacemaker logs       (default /var/log/ocf-rs-cluster)
#   CLUSTER_TIMEOUT    bound in seconds of every wait    (default 60)
#
# Needs root. Resource agents inherit pacemakerd's clean environment
# (PATH, LANG=C.UTF-8, PCMK_logfile, PCMK_logfacility=none).
set -euo pipefail

NODE=${CLUSTER_NODE_NAME:-node1}
ADDR=${CLUSTER_ADDR:-127.0.0.1}
CNAME=${CLUSTER_NAME:-ocfrs}
RUN_DIR=${CLUSTER_RUN_DIR:-/run/ocf-rs-cluster}
LOG_DIR=${CLUSTER_LOG_DIR:-/var/log/ocf-rs-cluster}
TIMEOUT=${CLUSTER_TIMEOUT:-60}

COROSYNC_CONF=/etc/corosync/corosync.conf
COROSYNC_KEY=/etc/corosync/authkey
PCMK_KEY=/etc/pacemaker/authkey
CIB_DIR=/var/lib/pacemaker/cib
PE_DIR=/var/lib/pacemaker/pengine
COROSYNC_LIB=/var/lib/corosync
COROSYNC_LOG=$LOG_DIR/corosync.log
COROSYNC_OUT=$LOG_DIR/corosync.out
PCMK_LOG=$LOG_DIR/pacemaker.log
PCMK_OUT=$LOG_DIR/pacemakerd.out
PIDS_FILE=$RUN_DIR/pids
NODE_FILE=$RUN_DIR/node
CLEAN_PATH=/usr/sbin:/usr/bin:/sbin:/bin
MARKER="# Written by ocf-rs scripts/cluster.sh"

# The cluster's daemons, by executable; used to find cluster daemons this script did
# not start (in this network or mount namespace), which it refuses to run beside.
DAEMON_EXES=(pacemakerd pacemaker-controld pacemaker-schedulerd pacemaker-attrd
  pacemaker-execd pacemaker-fenced pacemaker-based corosync)
# libqb IPC names (abstract unix sockets, per network namespace) the tools connect to.
COROSYNC_IPC=(@quorum @cmap)
PACEMAKERD_IPC=(@pacemakerd)
PCMK_CHILD_IPC=(@cib_ro @crmd)

# Our own probes must talk to the live cluster, not a file or a shadow CIB.
unset CIB_file CIB_shadow CIB_port CIB_server CIB_user CIB_passwd 2>/dev/null || true

PROG=${0##*/}
# shellcheck source=scripts/lib-proc.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib-proc.sh"

valid_seconds() { [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]]; }

# ---- processes (scripts/lib-proc.sh) ---------------------------------------

# Lines "NAME PID STARTTIME" from the pid file.
read_pids() { if [[ -s $PIDS_FILE ]]; then cat "$PIDS_FILE"; fi; }

# Recorded processes still alive (lines "NAME PID STARTTIME").
live_recorded() {
  local name pid start
  while read -r name pid start; do
    if [[ -n $pid ]] && alive "$pid" "$start"; then printf '%s %s %s\n' "$name" "$pid" "$start"; fi
  done < <(read_pids)
  return 0
}

recorded_pid() { # NAME: the pid of the live recorded NAME
  local name pid start
  while read -r name pid start; do
    if [[ $name == "$1" ]]; then
      echo "$pid"
      return 0
    fi
  done < <(live_recorded)
  return 1
}

# ours PID: recorded and alive, or a descendant of our live pacemakerd or corosync
# (pacemakerd respawns its sub-daemons; pacemaker-based forks to write the CIB).
ours() {
  local name pid start
  while read -r name pid start; do
    [[ $pid == "$1" ]] && return 0
    if [[ $name == pacemakerd || $name == corosync ]] && descends_from "$1" "$pid"; then return 0; fi
  done < <(live_recorded)
  return 1
}

# Children of a pid as lines "NAME PID STARTTIME".
child_records() {
  local pid
  for pid in $(children_of "$1"); do
    printf '%s %s %s\n' "$(exe_name "$pid" || echo '?')" "$pid" "$(start_time "$pid" || echo 0)"
  done
}

# foreign_daemons: one line per cluster daemon this script did not start: a process of
# DAEMON_EXES in this network or mount namespace that is not ours, or a process not ours
# listening on one of the IPC names.
foreign_daemons() {
  local name pid start sock seen=" "
  while read -r name pid start; do
    [[ -n $pid ]] || continue
    ours "$pid" && continue
    seen+="$pid "
    echo "$name $(describe_pid "$pid")"
  done < <(procs_in_ns 'net|mnt' "${DAEMON_EXES[@]}")
  while read -r sock pid; do
    [[ -n $pid ]] || continue
    ours "$pid" && continue
    [[ $seen == *" $pid "* ]] && continue
    echo "$(describe_pid "$pid") listens on IPC $sock"
  done < <(sock_listeners "${COROSYNC_IPC[@]}" "${PACEMAKERD_IPC[@]}" "${PCMK_CHILD_IPC[@]}")
  return 0
}

# ipc_reason all|corosync: why the IPC names (all of them, or corosync's) are not answered by
# our daemons: corosync's by our corosync, pacemakerd's by our pacemakerd, the CIB's and the
# controller's by children of our pacemakerd. Prints nothing and returns 0 when they are;
# returns 1 when one does not answer (yet), 2 when a process that is not ours answers.
ipc_reason() {
  local cs pm got sock pid names=("${COROSYNC_IPC[@]}")
  cs=$(recorded_pid corosync) || { echo "our corosync is not running"; return 1; }
  if [[ $1 == all ]]; then
    pm=$(recorded_pid pacemakerd) || { echo "our pacemakerd is not running"; return 1; }
    names+=("${PACEMAKERD_IPC[@]}" "${PCMK_CHILD_IPC[@]}")
  fi
  got=$(sock_listeners "${names[@]}")
  for sock in "${names[@]}"; do
    pid=$(awk -v s="$sock" '$1 == s { print $2 }' <<<"$got")
    if [[ -z $pid ]]; then
      echo "nothing answers on IPC $sock"
      return 1
    fi
    if [[ " ${COROSYNC_IPC[*]} " == *" $sock "* ]]; then
      [[ $pid == "$cs" ]] && continue
      echo "IPC $sock is answered by $(describe_pid "$pid"), not by our corosync (pid $cs)"
      return 2
    elif [[ " ${PACEMAKERD_IPC[*]} " == *" $sock "* ]]; then
      [[ $pid == "$pm" ]] && continue
      echo "IPC $sock is answered by $(describe_pid "$pid"), not by our pacemakerd (pid $pm)"
      return 2
    elif [[ $(ppid_of "$pid") != "$pm" ]]; then
      echo "IPC $sock is answered by $(describe_pid "$pid"), not by a child of our pacemakerd (pid $pm)"
      return 2
    fi
  done
  return 0
}

# ---- probes (each bounded) ------------------------------------------------

probe() { timeout 5 "$@" 2>/dev/null; }

dc_state() { probe crmadmin -q -S "$1" | tr -d '[:space:]'; }

# Prints what is missing for readiness, or nothing when ready.
not_ready_reason() {
  local mon st
  if ! mon=$(probe crm_mon -1); then
    echo "crm_mon -1 fails"
    return
  fi
  grep -q "Online: \[ $NODE \]" <<<"$mon" || {
    echo "node $NODE not online"
    return
  }
  grep -q 'partition with quorum' <<<"$mon" || {
    echo "no partition with quorum"
    return
  }
  st=$(probe crmadmin -q -S "$NODE" | tr -d '[:space:]') || true
  [[ $st == S_IDLE ]] || echo "controller state ${st:-unknown}, not S_IDLE"
}

ready() { [[ -z $(not_ready_reason) ]]; }

# ---- configuration ----------------------------------------------------------

need_tools() {
  local t
  for t in corosync corosync-keygen corosync-quorumtool pacemakerd crm_mon crmadmin \
    cibadmin crm_attribute setsid timeout awk; do
    command -v "$t" >/dev/null || PATH=$PATH:$CLEAN_PATH command -v "$t" >/dev/null ||
      die "missing tool '$t' (run scripts/install-deps.sh)"
  done
  PATH=$PATH:$CLEAN_PATH
}

corosync_conf_text() {
  cat <<EOF
$MARKER: regenerated when it differs.
totem {
    version: 2
    cluster_name: $CNAME
    transport: knet
    crypto_cipher: aes256
    crypto_hash: sha256
}

nodelist {
    node {
        name: $NODE
        nodeid: 1
        ring0_addr: $ADDR
    }
}

quorum {
    provider: corosync_votequorum
}

logging {
    fileline: off
    to_stderr: yes
    to_syslog: no
    to_logfile: yes
    logfile: $COROSYNC_LOG
    timestamp: on
    debug: off
}
EOF
}

write_config() {
  local tmp
  mkdir -p /etc/corosync /etc/pacemaker "$LOG_DIR" "$RUN_DIR" "$COROSYNC_LIB" "$CIB_DIR" "$PE_DIR"
  chmod 0755 "$LOG_DIR"

  if [[ ! -s $COROSYNC_KEY ]]; then
    corosync-keygen -l -k "$COROSYNC_KEY" >/dev/null 2>&1 || die "corosync-keygen failed"
    log "created $COROSYNC_KEY"
  fi
  chown root:root "$COROSYNC_KEY"
  chmod 0400 "$COROSYNC_KEY"

  if [[ ! -s $PCMK_KEY ]]; then
    (umask 077 && head -c 4096 /dev/urandom >"$PCMK_KEY")
    log "created $PCMK_KEY"
  fi
  chown root:haclient "$PCMK_KEY"
  chmod 0640 "$PCMK_KEY"

  # corosync.conf names the key file; `corosync -t` needs the key to exist.
  tmp=$(mktemp /etc/corosync/.corosync.conf.XXXXXX)
  corosync_conf_text >"$tmp"
  if ! cmp -s "$tmp" "$COROSYNC_CONF"; then
    if [[ -e $COROSYNC_CONF ]] && ! grep -qF "$MARKER" "$COROSYNC_CONF" &&
      [[ ! -e $COROSYNC_CONF.orig-ocf-rs ]]; then
      cp -p "$COROSYNC_CONF" "$COROSYNC_CONF.orig-ocf-rs"
      log "saved the previous $COROSYNC_CONF as $COROSYNC_CONF.orig-ocf-rs"
    fi
    chmod 0644 "$tmp"
    corosync -t -c "$tmp" >/dev/null 2>&1 || {
      corosync -t -c "$tmp" >&2 || true
      rm -f "$tmp"
      die "generated corosync.conf does not pass 'corosync -t'"
    }
    mv -f "$tmp" "$COROSYNC_CONF"
    log "wrote $COROSYNC_CONF (node $NODE, address $ADDR)"
  else
    rm -f "$tmp"
  fi
}

# A fresh CIB with the options a one-node test cluster needs.
seed_cib() {
  local tmp kv
  # shellcheck disable=SC2115 # the variables are constants set above
  rm -rf "$CIB_DIR"/* "$PE_DIR"/* "$COROSYNC_LIB"/*
  tmp=$(mktemp "$CIB_DIR/.seed.XXXXXX")
  cibadmin --empty >"$tmp" || die "cibadmin --empty failed"
  for kv in dc-deadtime=100ms stonith-enabled=false no-quorum-policy=ignore; do
    CIB_file=$tmp crm_attribute --type crm_config --name "${kv%%=*}" --update "${kv#*=}" >/dev/null ||
      die "could not set ${kv%%=*} in the seed CIB"
  done
  crm_verify -x "$tmp" >/dev/null 2>&1 || {
    crm_verify -V -x "$tmp" >&2 || true
    die "seed CIB does not verify"
  }
  chown hacluster:haclient "$tmp"
  chmod 0600 "$tmp"
  mv -f "$tmp" "$CIB_DIR/cib.xml"
  chown hacluster:haclient "$CIB_DIR" "$PE_DIR"
}

fresh_logs() {
  local f
  for f in "$COROSYNC_LOG" "$COROSYNC_OUT" "$PCMK_LOG" "$PCMK_OUT"; do
    [[ -e $f ]] && mv -f "$f" "$f.prev"
    : >"$f"
  done
  # Some pacemaker daemons run as hacluster and append to the same file.
  chown hacluster:haclient "$PCMK_LOG"
  chmod 0660 "$PCMK_LOG"
}

show_logs() {
  local f files=("$COROSYNC_LOG" "$PCMK_LOG" "$PCMK_OUT")
  # corosync.out repeats corosync.log (to_stderr) but also holds what corosync
  # printed before it opened its log file.
  [[ -s $COROSYNC_LOG ]] || files=("$COROSYNC_OUT" "${files[@]}")
  for f in "${files[@]}"; do
    [[ -s $f ]] || continue
    printf '\n==> last 30 lines of %s <==\n' "$f" >&2
    tail -n 30 "$f" >&2
  done
}

# ---- subcommands --------------------------------------------------------------

say() { printf '%s: %s\n' "$PROG" "$*"; } # status lines, on stdout

start_daemon() { # NAME OUT COMMAND...: prints "NAME PID STARTTIME" once exec'd
  local name=$1 out=$2 pid d
  shift 2
  env -i PATH="$CLEAN_PATH" LANG=C.UTF-8 PCMK_logfile="$PCMK_LOG" PCMK_logfacility=none \
    setsid "$@" </dev/null >>"$out" 2>&1 &
  pid=$!
  # env and setsid exec in place: $! is the daemon once it has exec'd
  d=$(($(now_ms) + 5000))
  until [[ $(exe_name "$pid" 2>/dev/null) == "$name" ]]; do
    (($(now_ms) < d)) || die "$name (pid $pid) did not start"
    sleep 0.02
  done
  alive "$pid" || die "$name (pid $pid) exited at once"
  printf '%s %s %s\n' "$name" "$pid" "$(start_time "$pid")"
}

fail_start() {
  local pm
  log "ERROR: $*"
  show_logs
  # Record pacemakerd's children too, so that stop reaches them by pid even
  # if pacemakerd itself does not stop them.
  if pm=$(recorded_pid pacemakerd); then child_records "$pm" >>"$PIDS_FILE"; fi
  do_stop >/dev/null 2>&1 || true
  log "start failed; stopped what was started"
  exit 1
}

# cluster_ready: our daemons answer on every IPC name, and the cluster is ready.
cluster_ready() { ipc_reason all >/dev/null && [[ -z $(not_ready_reason) ]]; }

do_start() {
  local t0 live foreign name pid start d reason rc cs pm kids recs
  need_root
  need_tools
  t0=$(now_ms)
  # Before any file is written or wiped: never beside a cluster this script did not start.
  foreign=$(foreign_daemons)
  if [[ -n $foreign ]]; then
    die "refusing to start: cluster daemons this script did not start run here:" \
      "$(paste -sd ';' <<<"$foreign"). They are left alone and no file was changed:" \
      "stop them, then run $PROG start again"
  fi
  mkdir -p "$RUN_DIR"
  live=$(live_recorded)
  if [[ -n $live ]]; then
    if [[ $(wc -l <<<"$live") -eq $(read_pids | wc -l) ]] && cluster_ready; then
      log "already running and ready (pids in $PIDS_FILE)"
      return 0
    fi
    log "a previous cluster of this script is running but not healthy: stopping it first"
    do_stop
  fi
  rm -f "$PIDS_FILE"

  write_config
  seed_cib
  fresh_logs

  cs=$(start_daemon corosync "$COROSYNC_OUT" corosync -f -c "$COROSYNC_CONF") || fail_start "could not start corosync"
  printf '%s\n' "$cs" >"$PIDS_FILE"
  printf '%s\n' "$NODE" >"$NODE_FILE"
  read -r name pid start <<<"$cs"
  d=$(($(now_ms) + $(ms_of "$TIMEOUT")))
  while :; do
    rc=0
    if corosync-quorumtool -s >/dev/null 2>&1; then
      reason=$(ipc_reason corosync) || rc=$?
      ((rc != 2)) || fail_start "$reason"
      ((rc != 0)) || break
    fi
    alive "$pid" "$start" || fail_start "corosync exited during start"
    (($(now_ms) < d)) || fail_start "corosync not quorate within ${TIMEOUT}s"
    sleep 0.1
  done
  log "corosync (pid $pid) quorate after $(elapsed "$t0") s"

  pm=$(start_daemon pacemakerd "$PCMK_OUT" pacemakerd) || fail_start "could not start pacemakerd"
  printf '%s\n' "$pm" >>"$PIDS_FILE"
  read -r name pid start <<<"$pm"

  while :; do
    rc=0
    reason=$(ipc_reason all) || rc=$?
    ((rc != 2)) || fail_start "$reason"
    if ((rc == 0)); then
      reason=$(not_ready_reason)
      [[ -n $reason ]] || break
    fi
    alive "$pid" "$start" || fail_start "pacemakerd exited during start"
    recorded_pid corosync >/dev/null || fail_start "corosync exited during start"
    (($(now_ms) < d)) || fail_start "cluster not ready within ${TIMEOUT}s: $reason"
    sleep 0.1
  done

  # The sub-daemons are pacemakerd's children (each in its own session):
  # record them so that stop can reach them even if pacemakerd dies.
  kids=$(child_records "$pid")
  [[ -z $kids ]] || printf '%s\n' "$kids" >>"$PIDS_FILE"
  recs=$(read_pids | wc -l)
  log "cluster '$CNAME' ready: node $NODE online with quorum, DC idle, our daemons answer ($recs daemons, pids in $PIDS_FILE)"
  log "start took $(elapsed "$t0") s"
}

do_stop() {
  local t0 recs line name pid start pm foreign all=() pms=() subs=() css=()
  need_root
  t0=$(now_ms)
  foreign=$(foreign_daemons)
  recs=$(live_recorded)
  # children pacemakerd respawned after start are not in the pid file
  if pm=$(recorded_pid pacemakerd); then recs+=$'\n'$(child_records "$pm"); fi
  mapfile -t all < <(grep -v '^[[:space:]]*$' <<<"$recs" || true)
  if ((${#all[@]} == 0)); then
    rm -f "$PIDS_FILE" "$NODE_FILE"
    log "not running"
  else
    for line in "${all[@]}"; do
      read -r name pid start <<<"$line"
      case $name in
      pacemakerd) pms+=("$pid:$start") ;;
      corosync) css+=("$pid:$start") ;;
      *) subs+=("$pid:$start") ;;
      esac
    done
    # pacemakerd stops resources, then its sub-daemons, then exits.
    stop_procs pacemakerd "$TIMEOUT" "${pms[@]}" || die "pacemakerd still alive after SIGKILL"
    # Sub-daemons that outlived pacemakerd (or whose parent was already gone).
    stop_procs "pacemaker sub-daemons" 10 "${subs[@]}" || die "pacemaker sub-daemons still alive after SIGKILL"
    stop_procs corosync 15 "${css[@]}" || die "corosync still alive after SIGKILL"
    rm -f "$PIDS_FILE" "$NODE_FILE"
    log "stopped (took $(elapsed "$t0") s)"
  fi
  if [[ -n $foreign ]]; then
    log "left running, not started by this script: $(paste -sd ';' <<<"$foreign")"
  fi
}

do_status() {
  local live n foreign reason rc=0
  live=$(live_recorded)
  n=$(read_pids | wc -l)
  foreign=$(foreign_daemons)
  if [[ -n $live ]] && [[ $(wc -l <<<"$live") -eq $n ]] && ipc_reason all >/dev/null \
    && [[ -z $(not_ready_reason) ]]; then
    say "running and ready (node $NODE; corosync pid $(recorded_pid corosync), pacemakerd pid $(recorded_pid pacemakerd) answer)"
    [[ -z $foreign ]] || say "also running, not started by this script: $(paste -sd ';' <<<"$foreign")"
    return 0
  fi
  if [[ -n $foreign ]]; then
    say "not ours: cluster daemons this script did not start run here: $(paste -sd ';' <<<"$foreign")"
    return 4
  fi
  if [[ -z $live ]]; then
    say "not running"
    return 1
  fi
  if [[ $(wc -l <<<"$live") -ne $n ]]; then
    say "degraded: $(wc -l <<<"$live") of $n recorded daemons alive"
    return 1
  fi
  reason=$(ipc_reason all) || rc=$?
  ((rc != 0)) || reason=$(not_ready_reason)
  say "running but not ready: $reason"
  return 1
}

do_wait_idle() {
  local secs=${1:-$TIMEOUT} d t0 dc st
  valid_seconds "$secs" || die "wait-idle: bad number of seconds '$secs'"
  [[ -n $(live_recorded) ]] || die "cluster not running (no daemon started by this script is alive)"
  t0=$(now_ms)
  d=$(($(now_ms) + $(ms_of "$secs")))
  while :; do
    dc=$(probe crmadmin -q -D | tr -d '[:space:]') || dc=""
    [[ -n $dc ]] || dc=$NODE
    st=$(dc_state "$dc") || st=""
    if [[ $st == S_IDLE ]]; then
      log "DC $dc is S_IDLE (waited $(elapsed "$t0") s)"
      return 0
    fi
    (($(now_ms) < d)) || die "DC ${dc} not S_IDLE within ${secs}s (state: ${st:-unknown})"
    sleep 0.1
  done
}

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}

# status and wait-idle default to the node name the running cluster was started with.
if [[ -z ${CLUSTER_NODE_NAME:-} && ${1:-} != start && -s $NODE_FILE ]]; then
  NODE=$(<"$NODE_FILE")
fi

valid_seconds "$TIMEOUT" || die "CLUSTER_TIMEOUT must be a number of seconds, not '$TIMEOUT'"

case ${1:-} in
start) do_start ;;
stop) do_stop ;;
status) do_status ;;
wait-idle) do_wait_idle "${2:-}" ;;
-h | --help | help) usage ;;
*)
  usage >&2
  exit 2
  ;;
esac
