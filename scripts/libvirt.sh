#!/usr/bin/env bash
# Runs a test libvirtd (qemu:///system) on a machine WITHOUT systemd.
#
#   scripts/libvirt.sh start    write config, start virtlogd + libvirtd, wait until OUR libvirtd
#                               answers; refuses (exit 1) when a libvirtd or virtlogd it did not
#                               start runs here, and leaves that one alone
#   scripts/libvirt.sh stop     destroy running domains, stop libvirtd + virtlogd, leave no process
#                               of ours; never stops a daemon it did not start (says so)
#   scripts/libvirt.sh status   exit 0 if our daemons run and answer, 3 if nothing runs, 4 if a
#                               libvirtd or virtlogd this script did not start runs or answers
#                               here, 1 if ours are half-running or not answering
#   scripts/libvirt.sh restart
#
# Ours means (scripts/lib-proc.sh): the tini this script spawned is alive, the libvirtd its pid
# file names is tini's child, and that libvirtd is the process listening on
# /run/libvirt/libvirt-sock (SO_PEERCRED), where virsh -c qemu:///system connects; virtlogd
# likewise for /run/libvirt/virtlogd-sock. "virsh answers" alone is no proof: another libvirtd
# may be the one answering.
#
# libvirtd runs in the foreground of `tini -s` (a child subreaper) in its own session, so qemu
# processes that libvirt double-forks are reaped the moment they exit (PID 1 here reaps orphans
# only about once a second, which libvirt would see as a qemu still alive).
#
# Idempotent: `start` on a running stack only re-checks it; `stop` on a stopped one does nothing.
# Needs root. Config written to /etc/libvirt (originals backed up once as *.ocf-rs-orig),
# logs in /var/log/libvirt, pids in /run/ocf-rs-libvirt.
#
# Environment:
#   OCF_RS_LIBVIRT_TIMEOUT    seconds to wait for start/stop (default 30)
#   OCF_RS_LIBVIRT_LOG_LEVEL  libvirt log level 1 (debug) .. 4 (error) for the log files (default 3)
#   OCF_RS_LIBVIRT_WAIT_REAPED=1  `stop` also waits (up to 5 s) until PID 1 has reaped the
#                             daemons' zombies (PID 1 here reaps about once a second), so that
#                             not even a zombie shows in ps/pgrep afterwards
set -euo pipefail

RUN_DIR=/run/ocf-rs-libvirt
LOG_DIR=/var/log/libvirt
CONF_DIR=/etc/libvirt
URI=qemu:///system
TIMEOUT=${OCF_RS_LIBVIRT_TIMEOUT:-30}
LOG_LEVEL=${OCF_RS_LIBVIRT_LOG_LEVEL:-3}
MARKER="# written by ocf-rs scripts/libvirt.sh"

LIBVIRTD_PIDFILE=$RUN_DIR/libvirtd.pid   # written by libvirtd itself
TINI_PIDFILE=$RUN_DIR/tini.pid           # the subreaper wrapping libvirtd
VIRTLOGD_PIDFILE=$RUN_DIR/virtlogd.pid   # written by virtlogd itself

LIBVIRTD_SOCK=/run/libvirt/libvirt-sock  # where virsh -c qemu:///system connects (as root)
VIRTLOGD_SOCK=/run/libvirt/virtlogd-sock # where libvirtd's qemu driver connects

PROG=libvirt.sh
LIB_DIR=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
# shellcheck source=scripts/lib-proc.sh
source "$LIB_DIR/lib-proc.sh"
# shellcheck source=scripts/lib-libvirt.sh
source "$LIB_DIR/lib-libvirt.sh"

ensure_machine_id() {
  [[ -s /etc/machine-id ]] && grep -qE '^[0-9a-f]{32}$' /etc/machine-id && return 0
  if command -v systemd-machine-id-setup >/dev/null 2>&1 && systemd-machine-id-setup >/dev/null 2>&1 \
    && [[ -s /etc/machine-id ]]; then
    return 0
  fi
  if command -v dbus-uuidgen >/dev/null 2>&1; then
    dbus-uuidgen >/etc/machine-id
  else
    od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >/etc/machine-id
    echo >>/etc/machine-id
  fi
}

write_conf() { # FILE CONTENT: back up a foreign original once, then write if changed
  local f=$1 content=$2
  if [[ -e $f && ! -e $f.ocf-rs-orig ]] && ! grep -qF "$MARKER" "$f"; then
    cp -a "$f" "$f.ocf-rs-orig"
    log "backed up $f to $f.ocf-rs-orig"
  fi
  if [[ ! -e $f ]] || [[ $(cat "$f") != "$content" ]]; then
    printf '%s\n' "$content" >"$f.tmp.$$"
    mv -f "$f.tmp.$$" "$f"
  fi
}

write_configs() {
  mkdir -p "$CONF_DIR" "$LOG_DIR" "$RUN_DIR" /var/log/ocf-rs-guests
  write_conf "$CONF_DIR/qemu.conf" "$MARKER
user = \"root\"
group = \"root\"
security_driver = \"none\"
dynamic_ownership = 0
remember_owner = 0"
  write_conf "$CONF_DIR/libvirtd.conf" "$MARKER
log_outputs = \"$LOG_LEVEL:file:$LOG_DIR/libvirtd.log\"
host_uuid_source = \"machine-id\""
  write_conf "$CONF_DIR/virtlogd.conf" "$MARKER
log_outputs = \"$LOG_LEVEL:file:$LOG_DIR/virtlogd.log\""
}

# foreign_report EXE SOCKET OURPID: one line per daemon EXE that this script did not start:
# a process listening on SOCKET that is not OURPID, and live EXE processes in this mount
# namespace (they share /run/libvirt and its driver locks) other than OURPID and its children.
foreign_report() {
  local exe=$1 sock=$2 ours=${3:-} l="" pid
  if l=$(foreign_listener "$sock" "$ours"); then
    if [[ -z $ours ]] || ! descends_from "$l" "$ours"; then echo "$(describe_pid "$l") listens on $sock"; fi
  fi
  while read -r _ pid _; do
    [[ -n $pid && $pid != "$l" ]] || continue
    if [[ -n $ours ]] && descends_from "$pid" "$ours"; then continue; fi
    echo "$(describe_pid "$pid") runs in this mount namespace"
  done < <(procs_in_ns mnt "$exe")
  return 0
}

refuse_foreign() { # EXE SOCKET [OURPID]: die when a daemon EXE this script did not start is running
  local f
  f=$(foreign_report "$1" "$2" "${3:-}")
  [[ -z $f ]] && return 0
  die "refusing to start $1: a $1 this script did not start is running: $(echo "$f" | paste -sd ';' -)." \
    "It is left alone (this script stops only what it started): stop it, then run $0 start again"
}

# end_libvirtd PID: stops our libvirtd PID. When another process listens on the socket path,
# ours gets SIGKILL: a libvirtd that exits cleanly unlinks its socket paths, which are now the
# other daemon's (that is how a second libvirtd dying at start-up takes the first one's socket).
end_libvirtd() {
  local l
  if l=$(sock_listener "$LIBVIRTD_SOCK") && [[ $l != "$1" ]] && ! descends_from "$l" "$1"; then
    log "$LIBVIRTD_SOCK belongs to pid $l: SIGKILL to our libvirtd (pid $1), so that it leaves that socket alone"
    kill -KILL "$1" 2>/dev/null || true
    stop_procs libvirtd 5 "$1"
  else
    stop_pid "$1" libvirtd
  fi
}

virtlogd_ready() { # PID: our pid file names PID, and PID listens on the socket
  [[ $(read_pid "$VIRTLOGD_PIDFILE" virtlogd) == "$1" ]] && listener_is "$VIRTLOGD_SOCK" "$1"
}

start_virtlogd() {
  local pid
  if pid=$(our_virtlogd "$VIRTLOGD_PIDFILE" "$VIRTLOGD_SOCK"); then return 0; fi
  if pid=$(read_pid "$VIRTLOGD_PIDFILE" virtlogd); then
    refuse_foreign virtlogd "$VIRTLOGD_SOCK" "$pid"
    log "our virtlogd (pid $pid) does not listen on $VIRTLOGD_SOCK: restarting it"
    stop_pid "$pid" virtlogd || die "cannot stop virtlogd pid $pid"
  fi
  refuse_foreign virtlogd "$VIRTLOGD_SOCK"
  rm -f "$VIRTLOGD_PIDFILE"
  # In the foreground of its own session: $! is virtlogd, which writes its pid file and
  # listens itself; both are checked against $!.
  setsid virtlogd -f "$CONF_DIR/virtlogd.conf" -p "$VIRTLOGD_PIDFILE" \
    </dev/null >>"$LOG_DIR/virtlogd.stdout" 2>&1 &
  pid=$!
  if ! await "$pid" "virtlogd (pid $pid) listening on $VIRTLOGD_SOCK" virtlogd_ready "$pid"; then
    tail -n 20 "$LOG_DIR/virtlogd.stdout" "$LOG_DIR/virtlogd.log" >&2 2>/dev/null || true
    stop_pid "$pid" virtlogd || true
    die "virtlogd failed to start (see $LOG_DIR/virtlogd.*)"
  fi
}

libvirtd_ready() { our_libvirtd "$TINI_PIDFILE" "$LIBVIRTD_PIDFILE" "$LIBVIRTD_SOCK" >/dev/null && virsh_ok "$URI"; }

start_libvirtd() {
  local tini pid f spawned=0
  if pid=$(our_libvirtd "$TINI_PIDFILE" "$LIBVIRTD_PIDFILE" "$LIBVIRTD_SOCK") && virsh_ok "$URI"; then
    log "libvirtd already running (pid $pid under tini pid $(read_pid "$TINI_PIDFILE" tini))"
    return 0
  fi
  if tini=$(read_pid "$TINI_PIDFILE" tini); then
    log "libvirtd of this script (tini pid $tini) not answering yet: waiting"
  else
    if pid=$(read_pid "$LIBVIRTD_PIDFILE" libvirtd); then
      log "libvirtd pid $pid (named by $LIBVIRTD_PIDFILE) lost its tini: stopping it"
      end_libvirtd "$pid" || die "cannot stop libvirtd pid $pid"
    fi
    refuse_foreign libvirtd "$LIBVIRTD_SOCK"
    rm -f "$TINI_PIDFILE" "$LIBVIRTD_PIDFILE"
    command -v tini >/dev/null 2>&1 || die "tini not found (apt-get install -y tini)"
    # tini -s: child subreaper; tini forwards SIGTERM to libvirtd and exits with it.
    setsid tini -s -- libvirtd -f "$CONF_DIR/libvirtd.conf" -p "$LIBVIRTD_PIDFILE" \
      </dev/null >>"$LOG_DIR/libvirtd.stdout" 2>&1 &
    tini=$!
    spawned=1
    echo "$tini" >"$TINI_PIDFILE"
    await "$tini" "tini (pid $tini) to exec" spawned_as "$tini" tini || die "tini failed to start"
  fi
  local deadline=$(($(now_ms) + TIMEOUT * 1000)) l why=""
  until libvirtd_ready; do
    if ! alive "$tini"; then
      why="libvirtd exited during start-up"
    elif l=$(sock_listener "$LIBVIRTD_SOCK") && ! descends_from "$l" "$tini"; then
      why="the libvirtd answering on $LIBVIRTD_SOCK is not ours (under tini pid $tini) but $(describe_pid "$l")"
    elif (($(now_ms) >= deadline)); then
      why="libvirtd (tini pid $tini) did not answer on $LIBVIRTD_SOCK within ${TIMEOUT}s"
    fi
    if [[ -n $why ]]; then
      tail -n 20 "$LOG_DIR/libvirtd.stdout" "$LOG_DIR/libvirtd.log" >&2 2>/dev/null || true
      pid=$(read_pid "$LIBVIRTD_PIDFILE" libvirtd || true)
      f=$(foreign_report libvirtd "$LIBVIRTD_SOCK" "${pid:-$tini}")
      [[ -z $f ]] || log "a libvirtd this script did not start is running: $(echo "$f" | paste -sd ';' -)"
      if ((spawned)); then
        # started by this call and unreachable: stop it (never the other one)
        if [[ -n $pid ]] && [[ $(ppid_of "$pid") == "$tini" ]]; then end_libvirtd "$pid" || true; fi
        stop_pid "$tini" tini || true
        rm -f "$TINI_PIDFILE"
      elif ! alive "$tini"; then
        rm -f "$TINI_PIDFILE"
      fi
      die "$why"
    fi
    sleep 0.1
  done
}

do_start() {
  need_root
  local t0; t0=$(now_ms)
  # Before anything is written or started: never beside daemons this script did not start
  # (unless ours already run: then start only re-checks them).
  if ! read_pid "$VIRTLOGD_PIDFILE" virtlogd >/dev/null; then refuse_foreign virtlogd "$VIRTLOGD_SOCK"; fi
  if ! read_pid "$TINI_PIDFILE" tini >/dev/null && ! read_pid "$LIBVIRTD_PIDFILE" libvirtd >/dev/null; then
    refuse_foreign libvirtd "$LIBVIRTD_SOCK"
  fi
  ensure_accounts
  ensure_machine_id
  write_configs
  start_virtlogd
  start_libvirtd
  log "running ($URI answered after $(($(now_ms) - t0)) ms)"
}

qemu_pids() { # pids of qemu processes libvirt started (from its pid files)
  local f pid
  for f in /run/libvirt/qemu/*.pid; do
    [[ -e $f ]] || continue
    pid=$(tr -dc '0-9' <"$f")
    if alive "$pid" && [[ $(comm_of "$pid") == qemu-system-* ]]; then echo "$pid"; fi
  done
  return 0
}

do_stop() {
  need_root
  local t0 pid tini lv vl dom qpids="" zombies="" foreign
  t0=$(now_ms)
  tini=$(read_pid "$TINI_PIDFILE" tini || true)
  lv=$(read_pid "$LIBVIRTD_PIDFILE" libvirtd || true)
  vl=$(read_pid "$VIRTLOGD_PIDFILE" virtlogd || true)
  zombies="$tini $lv $vl"
  foreign=$(foreign_report libvirtd "$LIBVIRTD_SOCK" "$lv"; foreign_report virtlogd "$VIRTLOGD_SOCK" "$vl")
  if [[ -n $foreign ]]; then
    log "not stopping what this script did not start: $(echo "$foreign" | paste -sd ';' -)"
  fi
  if [[ -n $(foreign_report libvirtd "$LIBVIRTD_SOCK" "$lv") ]]; then
    log "leaving /run/libvirt/qemu alone: its domains belong to that libvirtd"
  else
    qpids=$(qemu_pids)
  fi
  if [[ -n $lv ]] && listener_is "$LIBVIRTD_SOCK" "$lv" && virsh_ok "$URI"; then
    # Leave no guest behind: destroy every running domain (transient ones vanish).
    while read -r dom; do
      if [[ -n $dom ]]; then timeout 10 virsh -q -c "$URI" destroy "$dom" >/dev/null 2>&1 || true; fi
    done < <(timeout 5 virsh -q -c "$URI" list --name 2>/dev/null || true)
  fi
  if [[ -n $lv ]]; then end_libvirtd "$lv" || true; fi
  if [[ -n $tini ]]; then stop_pid "$tini" tini || true; fi
  # qemu that survived (libvirtd was not answering): kill it by the pid libvirt recorded.
  for pid in $qpids; do
    if alive "$pid" && [[ $(comm_of "$pid") == qemu-system-* ]]; then stop_pid "$pid" qemu || true; fi
  done
  if [[ -n $vl ]]; then stop_pid "$vl" virtlogd || true; fi
  rm -f "$TINI_PIDFILE" "$LIBVIRTD_PIDFILE" "$VIRTLOGD_PIDFILE"
  if [[ ${OCF_RS_LIBVIRT_WAIT_REAPED:-0} == 1 ]]; then
    # The stopped daemons are already dead; PID 1 here removes their zombies about once a
    # second. Wait (bounded) until even the zombies are gone, for tests that pgrep.
    local deadline=$(($(now_ms) + 5000))
    for pid in $zombies; do
      while [[ -e /proc/$pid ]] && (($(now_ms) < deadline)); do sleep 0.05; done
    done
  fi
  pid=$(live_of $tini $lv $vl || true)
  [[ -z $pid ]] || die "still alive after stop: pid $pid"
  log "stopped ($(($(now_ms) - t0)) ms)"
}

do_status() {
  local tini lv vl foreign ourlv ourvl parts=""
  tini=$(read_pid "$TINI_PIDFILE" tini || true)
  lv=$(read_pid "$LIBVIRTD_PIDFILE" libvirtd || true)
  vl=$(read_pid "$VIRTLOGD_PIDFILE" virtlogd || true)
  foreign=$(foreign_report libvirtd "$LIBVIRTD_SOCK" "$lv"; foreign_report virtlogd "$VIRTLOGD_SOCK" "$vl")
  if ourvl=$(our_virtlogd "$VIRTLOGD_PIDFILE" "$VIRTLOGD_SOCK") \
    && ourlv=$(our_libvirtd "$TINI_PIDFILE" "$LIBVIRTD_PIDFILE" "$LIBVIRTD_SOCK") && virsh_ok "$URI"; then
    echo "running: virtlogd pid $ourvl, libvirtd pid $ourlv under tini pid $tini (our libvirtd answers on $LIBVIRTD_SOCK)"
    [[ -z $foreign ]] || echo "also running, not started by this script: $(echo "$foreign" | paste -sd ';' -)"
    return 0
  fi
  [[ -z $vl ]] || parts+=" virtlogd pid $vl"
  [[ -z $tini ]] || parts+=" tini pid $tini"
  [[ -z $lv ]] || parts+=" libvirtd pid $lv"
  if [[ -n $foreign ]]; then
    echo "not ours: a daemon this script did not start runs here: $(echo "$foreign" | paste -sd ';' -) (ours:${parts:- none})"
    return 4
  fi
  if [[ -z $parts ]]; then
    echo "stopped"
    return 3
  fi
  echo "partly running (ours:$parts) or not answering"
  return 1
}

case ${1:-} in
  start) do_start ;;
  stop) do_stop ;;
  restart) do_stop; do_start ;;
  status) do_status ;;
  *) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac
