#!/usr/bin/env bash
# Runs a one-node corosync + pacemaker cluster on this machine without systemd.
#
# Usage: scripts/cluster.sh start | stop | status | wait-idle [SECONDS]
#
#   start      write the corosync config and keys if needed, wipe old cluster
#              state (a fresh CIB every start), start corosync and pacemakerd,
#              record their pids and wait until the cluster is ready. If a
#              cluster started by this script is already running and ready,
#              say so and exit 0.
#   stop       stop what start started, by pid (SIGTERM, bounded wait, SIGKILL).
#              Exits 0 when nothing runs.
#   status     exit 0 if the cluster runs and is ready, 1 otherwise.
#   wait-idle  wait until the DC is S_IDLE (no transition in progress).
#
# Ready means: `crm_mon -1` shows "Online: [ NODE ]" and "partition with
# quorum", and `crmadmin -q -S NODE` reports S_IDLE.
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

# Executables of the daemons this script starts; used only by `stop` when the
# pid file is missing, and only within this script's own namespaces.
DAEMON_EXES=(pacemakerd pacemaker-controld pacemaker-schedulerd pacemaker-attrd
  pacemaker-execd pacemaker-fenced pacemaker-based corosync)

# Our own probes must talk to the live cluster, not a file or a shadow CIB.
unset CIB_file CIB_shadow CIB_port CIB_server CIB_user CIB_passwd 2>/dev/null || true

prog=${0##*/}
log() { printf '%s: %s\n' "$prog" "$*"; }
die() {
  printf '%s: error: %s\n' "$prog" "$*" >&2
  exit 1
}

now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

valid_seconds() { [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]]; }
deadline_in() { awk -v n="$(now)" -v t="$1" 'BEGIN { printf "%.3f", n + t }'; }
before() { awk -v n="$(now)" -v d="$1" 'BEGIN { exit !(n < d) }'; }

# ---- processes ------------------------------------------------------------

# Prints "STATE STARTTIME PPID" of a pid from /proc/PID/stat, or fails.
proc_stat() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) } # the comm field may contain spaces and parentheses
  # shellcheck disable=SC2086
  set -- $s
  # after comm: 1 state, 2 ppid, ..., 20 starttime
  printf '%s %s %s\n' "$1" "${20}" "$2"
}

# alive PID STARTTIME: the process exists, is not a zombie, and is the same
# process that was recorded (start time guards against pid reuse). PID 1 here
# reaps orphans only about once a second, so a zombie counts as dead.
alive() {
  local st state start _
  st=$(proc_stat "$1") || return 1
  read -r state start _ <<<"$st"
  [[ $state != Z && $start == "$2" ]]
}

same_ns() {
  local n
  for n in net mnt; do
    [[ $(readlink "/proc/$1/ns/$n" 2>/dev/null) == "$(readlink "/proc/self/ns/$n")" ]] || return 1
  done
}

exe_name() {
  local e
  e=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
  e=${e% (deleted)}
  printf '%s\n' "${e##*/}"
}

# Lines "NAME PID STARTTIME" from the pid file.
read_pids() { if [[ -s $PIDS_FILE ]]; then cat "$PIDS_FILE"; fi; }

# Recorded processes still alive (lines "NAME PID STARTTIME").
live_recorded() {
  local name pid start
  read_pids | while read -r name pid start; do
    [[ -n $pid ]] && alive "$pid" "$start" && printf '%s %s %s\n' "$name" "$pid" "$start"
  done
  return 0
}

# Daemons of ours found by executable name in this namespace (no pid file).
find_by_name() {
  local p pid exe st state start _ d
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    exe=$(exe_name "$pid") || continue
    for d in "${DAEMON_EXES[@]}"; do
      if [[ $exe == "$d" ]] && same_ns "$pid"; then
        st=$(proc_stat "$pid") || continue
        read -r state start _ <<<"$st"
        [[ $state == Z ]] || printf '%s %s %s\n' "$exe" "$pid" "$start"
      fi
    done
  done
}

# Children of a pid (lines "NAME PID STARTTIME"), by scanning /proc.
children_of() {
  local p pid st state start ppid
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    st=$(proc_stat "$pid") || continue
    read -r state start ppid <<<"$st"
    if [[ $ppid == "$1" && $state != Z ]]; then
      printf '%s %s %s\n' "$(exe_name "$pid" || echo '?')" "$pid" "$start"
    fi
  done
}

# wait_gone SECONDS LINES...: wait until none of the "NAME PID START" is alive.
wait_gone() {
  local secs=$1 d line name pid start any
  shift
  d=$(deadline_in "$secs")
  while :; do
    any=0
    for line in "$@"; do
      read -r name pid start <<<"$line"
      if alive "$pid" "$start"; then any=1; break; fi
    done
    ((any)) || return 0
    before "$d" || return 1
    sleep 0.1
  done
}

# signal_all SIG LINES...
signal_all() {
  local sig=$1 line name pid start
  shift
  for line in "$@"; do
    read -r name pid start <<<"$line"
    if alive "$pid" "$start"; then kill "-$sig" "$pid" 2>/dev/null || true; fi
  done
}

# stop_group LABEL SECONDS LINES...: SIGTERM, bounded wait, then SIGKILL.
stop_group() {
  local label=$1 secs=$2
  shift 2
  (($# > 0)) || return 0
  signal_all TERM "$@"
  if ! wait_gone "$secs" "$@"; then
    log "$label did not stop within ${secs}s: sending SIGKILL"
    signal_all KILL "$@"
    wait_gone 5 "$@" || die "$label still alive after SIGKILL"
  fi
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

need_root() { ((EUID == 0)) || die "must run as root"; }

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

start_daemon() { # NAME COMMAND...: prints "NAME PID STARTTIME" once exec'd
  local name=$1 out=$2 pid d st state start _
  shift 2
  env -i PATH="$CLEAN_PATH" LANG=C.UTF-8 PCMK_logfile="$PCMK_LOG" PCMK_logfacility=none \
    setsid "$@" </dev/null >>"$out" 2>&1 &
  pid=$!
  d=$(deadline_in 5)
  until [[ $(exe_name "$pid" 2>/dev/null) == "$name" ]]; do
    before "$d" || die "$name (pid $pid) did not start"
    sleep 0.02
  done
  st=$(proc_stat "$pid") || die "$name (pid $pid) exited at once"
  read -r state start _ <<<"$st"
  printf '%s %s %s\n' "$name" "$pid" "$start"
}

fail_start() {
  local name pid start
  printf '%s: error: %s\n' "$prog" "$*" >&2
  show_logs
  # Record pacemakerd's children too, so that stop reaches them by pid even
  # if pacemakerd itself does not stop them.
  read -r name pid start < <(grep '^pacemakerd ' "$PIDS_FILE" 2>/dev/null || true) || true
  if [[ -n ${pid:-} ]] && alive "$pid" "$start"; then
    children_of "$pid" >>"$PIDS_FILE"
  fi
  do_stop >/dev/null 2>&1 || true
  printf '%s: start failed; stopped what was started\n' "$prog" >&2
  exit 1
}

do_start() {
  local t0 recs live name pid start d reason cs pm kids cspid csstart
  need_root
  need_tools
  t0=$(now)
  mkdir -p "$RUN_DIR"

  live=$(live_recorded)
  if [[ -n $live ]]; then
    if [[ $(wc -l <<<"$live") -eq $(read_pids | wc -l) ]] && ready; then
      log "already running and ready (pids in $PIDS_FILE)"
      return 0
    fi
    log "a previous cluster is running but not healthy: stopping it first"
    do_stop
  elif [[ -n $(find_by_name) ]]; then
    die "corosync/pacemaker processes run that this script did not record (no $PIDS_FILE); run '$prog stop' first"
  fi
  rm -f "$PIDS_FILE"

  write_config
  seed_cib
  fresh_logs

  cs=$(start_daemon corosync "$COROSYNC_OUT" corosync -f -c "$COROSYNC_CONF") || fail_start "could not start corosync"
  printf '%s\n' "$cs" >"$PIDS_FILE"
  printf '%s\n' "$NODE" >"$NODE_FILE"
  read -r name pid start <<<"$cs"
  d=$(deadline_in "$TIMEOUT")
  until corosync-quorumtool -s >/dev/null 2>&1; do
    alive "$pid" "$start" || fail_start "corosync exited during start"
    before "$d" || fail_start "corosync not quorate within ${TIMEOUT}s"
    sleep 0.1
  done
  log "corosync quorate after $(elapsed "$t0") s"

  pm=$(start_daemon pacemakerd "$PCMK_OUT" pacemakerd) || fail_start "could not start pacemakerd"
  printf '%s\n' "$pm" >>"$PIDS_FILE"
  read -r name pid start <<<"$pm"

  while reason=$(not_ready_reason) && [[ -n $reason ]]; do
    alive "$pid" "$start" || fail_start "pacemakerd exited during start"
    read -r _ cspid csstart <<<"$cs"
    alive "$cspid" "$csstart" || fail_start "corosync exited during start"
    before "$d" || fail_start "cluster not ready within ${TIMEOUT}s: $reason"
    sleep 0.1
  done

  # The sub-daemons are pacemakerd's children (each in its own session):
  # record them so that stop can reach them even if pacemakerd dies.
  kids=$(children_of "$pid")
  [[ -n $kids ]] && printf '%s\n' "$kids" >>"$PIDS_FILE"
  recs=$(read_pids | wc -l)
  log "cluster '$CNAME' ready: node $NODE online with quorum, DC idle ($recs daemons, pids in $PIDS_FILE)"
  log "start took $(elapsed "$t0") s"
}

do_stop() {
  local t0 recs line name all=() pm=() subs=() cs=()
  need_root
  t0=$(now)
  if [[ -s $PIDS_FILE ]]; then
    recs=$(live_recorded)
  else
    recs=$(find_by_name)
    [[ -z $recs ]] || log "no $PIDS_FILE: stopping the cluster daemons found by name in this namespace"
  fi
  if [[ -z $recs ]]; then
    rm -f "$PIDS_FILE" "$NODE_FILE"
    log "not running"
    return 0
  fi
  mapfile -t all <<<"$recs"
  for line in "${all[@]}"; do
    read -r name _ <<<"$line"
    case $name in
    pacemakerd) pm+=("$line") ;;
    corosync) cs+=("$line") ;;
    *) subs+=("$line") ;;
    esac
  done
  # pacemakerd stops resources, then its sub-daemons, then exits.
  stop_group pacemakerd "$TIMEOUT" "${pm[@]}"
  # Sub-daemons that outlived pacemakerd (or whose parent was already gone).
  stop_group "pacemaker sub-daemons" 10 "${subs[@]}"
  stop_group corosync 15 "${cs[@]}"
  rm -f "$PIDS_FILE" "$NODE_FILE"
  log "stopped (took $(elapsed "$t0") s)"
}

do_status() {
  local live n reason
  live=$(live_recorded)
  n=$(read_pids | wc -l)
  if [[ -z $live ]]; then
    if [[ -n $(find_by_name) ]] && ready; then
      log "running and ready, but not started by this script (no $PIDS_FILE)"
      return 0
    fi
    log "not running"
    return 1
  fi
  if [[ $(wc -l <<<"$live") -ne $n ]]; then
    log "degraded: $(wc -l <<<"$live") of $n recorded daemons alive"
    return 1
  fi
  reason=$(not_ready_reason)
  if [[ -n $reason ]]; then
    log "running but not ready: $reason"
    return 1
  fi
  log "running and ready (node $NODE)"
}

do_wait_idle() {
  local secs=${1:-$TIMEOUT} d t0 dc st
  valid_seconds "$secs" || die "wait-idle: bad number of seconds '$secs'"
  [[ -n $(live_recorded) || -n $(find_by_name) ]] || die "cluster not running"
  t0=$(now)
  d=$(deadline_in "$secs")
  while :; do
    dc=$(probe crmadmin -q -D | tr -d '[:space:]') || dc=""
    [[ -n $dc ]] || dc=$NODE
    st=$(dc_state "$dc") || st=""
    if [[ $st == S_IDLE ]]; then
      log "DC $dc is S_IDLE (waited $(elapsed "$t0") s)"
      return 0
    fi
    before "$d" || die "DC ${dc} not S_IDLE within ${secs}s (state: ${st:-unknown})"
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
