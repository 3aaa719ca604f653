#!/usr/bin/env bash
# Runs a test libvirtd (qemu:///system) on a machine WITHOUT systemd.
#
#   scripts/libvirt.sh start    write config, start virtlogd + libvirtd, wait until virsh answers
#   scripts/libvirt.sh stop     destroy running domains, stop libvirtd + virtlogd, leave no process
#   scripts/libvirt.sh status   exit 0 if running and answering, 3 if stopped, 1 if half-running
#   scripts/libvirt.sh restart
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

log() { printf 'libvirt.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# shellcheck source=scripts/lib-proc.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib-proc.sh"

pid_is() { # PID NAME: true if /proc/PID/comm is NAME (guards against pid reuse)
  [[ -r /proc/$1/comm ]] && [[ $(cat "/proc/$1/comm" 2>/dev/null) == "$2" ]]
}

virsh_ok() { timeout 5 virsh -q -c "$URI" version >/dev/null 2>&1; }

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root"; }

ensure_accounts() {
  getent group kvm >/dev/null || groupadd --system kvm
  getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
  if ! getent passwd libvirt-qemu >/dev/null; then
    useradd --system --gid libvirt-qemu --groups kvm --no-create-home \
      --home-dir /var/lib/libvirt --shell /usr/sbin/nologin libvirt-qemu
  fi
}

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

start_virtlogd() {
  if read_pid "$VIRTLOGD_PIDFILE" >/dev/null; then return 0; fi
  rm -f "$VIRTLOGD_PIDFILE"
  # -d daemonizes (and writes the pid file) only once its socket is listening.
  virtlogd -d -f "$CONF_DIR/virtlogd.conf" -p "$VIRTLOGD_PIDFILE" \
    </dev/null >>"$LOG_DIR/virtlogd.stdout" 2>&1 || die "virtlogd failed to start (see $LOG_DIR/virtlogd.*)"
  local deadline=$(($(now_ms) + TIMEOUT * 1000))
  until read_pid "$VIRTLOGD_PIDFILE" >/dev/null && [[ -S /run/libvirt/virtlogd-sock ]]; do
    (($(now_ms) < deadline)) || die "virtlogd did not come up in ${TIMEOUT}s"
    sleep 0.1
  done
}

start_libvirtd() {
  local tini_pid
  if tini_pid=$(read_pid "$TINI_PIDFILE"); then
    log "libvirtd already started (tini pid $tini_pid)"
  else
    rm -f "$TINI_PIDFILE" "$LIBVIRTD_PIDFILE"
    command -v tini >/dev/null 2>&1 || die "tini not found (apt-get install -y tini)"
    # tini -s: child subreaper; tini forwards SIGTERM to libvirtd and exits with it.
    setsid tini -s -- libvirtd -f "$CONF_DIR/libvirtd.conf" -p "$LIBVIRTD_PIDFILE" \
      </dev/null >>"$LOG_DIR/libvirtd.stdout" 2>&1 &
    tini_pid=$!
    echo "$tini_pid" >"$TINI_PIDFILE"
  fi
  local deadline=$(($(now_ms) + TIMEOUT * 1000))
  until virsh_ok; do
    if ! alive "$tini_pid"; then
      tail -n 20 "$LOG_DIR/libvirtd.stdout" "$LOG_DIR/libvirtd.log" >&2 2>/dev/null || true
      rm -f "$TINI_PIDFILE"
      die "libvirtd exited during start-up"
    fi
    (($(now_ms) < deadline)) || die "libvirtd did not answer within ${TIMEOUT}s"
    sleep 0.1
  done
}

do_start() {
  need_root
  local t0; t0=$(now_ms)
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
    [[ -n $pid ]] && [[ -r /proc/$pid/comm ]] && [[ $(cat "/proc/$pid/comm") == qemu-system-* ]] && echo "$pid"
  done
  return 0
}

do_stop() {
  need_root
  local t0 pid tini_pid dom qpids zombies f
  t0=$(now_ms)
  qpids=$(qemu_pids)
  zombies=""
  for f in "$TINI_PIDFILE" "$LIBVIRTD_PIDFILE" "$VIRTLOGD_PIDFILE"; do
    pid=$(read_pid "$f") && zombies+=" $pid"
  done
  if virsh_ok; then
    # Leave no guest behind: destroy every running domain (transient ones vanish).
    while read -r dom; do
      if [[ -n $dom ]]; then timeout 10 virsh -q -c "$URI" destroy "$dom" >/dev/null 2>&1 || true; fi
    done < <(timeout 5 virsh -q -c "$URI" list --name 2>/dev/null)
  fi
  if tini_pid=$(read_pid "$TINI_PIDFILE"); then
    if pid=$(read_pid "$LIBVIRTD_PIDFILE") && pid_is "$pid" libvirtd; then
      stop_pid "$pid" libvirtd
    fi
    stop_pid "$tini_pid" tini
  elif pid=$(read_pid "$LIBVIRTD_PIDFILE") && pid_is "$pid" libvirtd; then
    stop_pid "$pid" libvirtd
  fi
  # qemu that survived (libvirtd was not answering): kill it by the pid libvirt recorded.
  for pid in $qpids; do
    [[ -r /proc/$pid/comm ]] && [[ $(cat "/proc/$pid/comm") == qemu-system-* ]] && stop_pid "$pid" qemu
  done
  if pid=$(read_pid "$VIRTLOGD_PIDFILE") && pid_is "$pid" virtlogd; then
    stop_pid "$pid" virtlogd
  fi
  rm -f "$TINI_PIDFILE" "$LIBVIRTD_PIDFILE" "$VIRTLOGD_PIDFILE"
  if [[ ${OCF_RS_LIBVIRT_WAIT_REAPED:-0} == 1 ]]; then
    # The stopped daemons are already dead; PID 1 here removes their zombies about once a
    # second. Wait (bounded) until even the zombies are gone, for tests that pgrep.
    local deadline=$(($(now_ms) + 5000))
    for pid in $zombies; do
      while [[ -e /proc/$pid ]] && (($(now_ms) < deadline)); do sleep 0.05; done
    done
  fi
  log "stopped ($(($(now_ms) - t0)) ms)"
}

do_status() {
  local up=0 parts=0
  if read_pid "$VIRTLOGD_PIDFILE" >/dev/null; then up=$((up + 1)); parts="${parts}+virtlogd"; fi
  if read_pid "$TINI_PIDFILE" >/dev/null || read_pid "$LIBVIRTD_PIDFILE" >/dev/null; then
    up=$((up + 1)); parts="${parts}+libvirtd"
  fi
  if ((up == 2)) && virsh_ok; then
    echo "running: virtlogd pid $(cat "$VIRTLOGD_PIDFILE"), libvirtd pid $(cat "$LIBVIRTD_PIDFILE" 2>/dev/null || echo '?') under tini pid $(cat "$TINI_PIDFILE" 2>/dev/null || echo '?')"
    return 0
  elif ((up == 0)); then
    echo "stopped"
    return 3
  fi
  echo "partly running (${parts#0+}) or not answering"
  return 1
}

case ${1:-} in
  start) do_start ;;
  stop) do_stop ;;
  restart) do_stop; do_start ;;
  status) do_status ;;
  *) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac
