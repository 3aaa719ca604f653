#!/usr/bin/env bash
# Three extra libvirt "hosts", ocfa, ocfb and ocfc, on this machine, for live-migration and
# cluster-scale tests.
#
#   scripts/libvirt-hosts.sh up [HOST...]      start every (or the named) host; idempotent: parts
#                                             already running are kept, missing ones started.
#                                             Prints one line per host: NAME ROOT-NS-URI PEER-URI
#   scripts/libvirt-hosts.sh down             stop everything of every host (by pid), remove the
#                                             namespaces and state; idempotent, bounded waits.
#                                             The namespaces are this script's own: every process
#                                             in them is stopped, whoever started it
#   scripts/libvirt-hosts.sh status           exit 0 if all answer (our daemons), 3 if nothing
#                                             runs, 4 if a libvirtd/virtlogd this script did not
#                                             start runs or answers in a host, 1 if partly
#   scripts/libvirt-hosts.sh uri HOST         the root-namespace URI of HOST's libvirtd
#   scripts/libvirt-hosts.sh exec HOST CMD... run CMD inside HOST's network, mount and UTS
#                                             namespaces (keeps the caller's environment)
#   scripts/libvirt-hosts.sh pids HOST        pids of every process inside HOST's namespaces
#   scripts/libvirt-hosts.sh stop-libvirtd HOST   stop only HOST's libvirtd (`up` restarts it)
#   scripts/libvirt-hosts.sh kill HOST        a power cut: SIGKILL to every process in HOST's
#                                             namespaces at once (keeper included), then what
#                                             lived in HOST's /run is gone; its /var/lib/libvirt
#                                             stays. `up HOST` boots it again
#
# Each host has:
#   - a network namespace ocf-rs-HOST, loopback up, and a veth pair from it to a bridge in the
#     namespace ocf-rs-lan (the hosts' LAN: ocfa 10.213.99.1/24, ocfb 10.213.99.2/24, ocfc
#     10.213.99.3/24; addresses exist only inside these namespaces);
#   - its own mount and UTS namespace (hostname = HOST), held open by a keeper process
#     (`sleep infinity` started by `ip netns exec NS unshare --mount --uts --propagation private`);
#     everything else is entered into it with nsenter;
#   - private directories from $OCF_RS_HOSTS_DIR/HOST (default /run/ocf-rs-hosts/HOST) bound over
#     /etc/libvirt, /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt, /etc/hosts,
#     /etc/resolv.conf (no nameserver) and /run
#     (bound last; so the agent's qemu:///system and its default HA_RSCTMP are private too). The
#     private /etc/hosts names localhost, every host and its alias HOST-mig (same address: for
#     migration_network_suffix=-mig). Everything else (the repository, /tmp, /var/tmp) is the
#     machine's, seen by every host at the same path: the hosts' shared storage;
#   - its own virtlogd and a libvirtd --listen under `tini -s` (a child subreaper): distinct
#     host_uuid, listen_tcp=1, auth_tcp=none, listen_tls=0, listen_addr = its address; qemu.conf
#     runs qemu as root without security driver, cgroup_controllers = [ ], migration_address and
#     migration_host = its address. libvirtd.log records the QMP traffic and the migration
#     steps (log_filters 1:qemu.qemu_monitor 1:qemu.qemu_migration), so tests can see which
#     migrate URI, port, speed and downtime reached libvirt and qemu.
#
# A host's daemon is ours (scripts/lib-proc.sh) when the process its pid file names is alive, is
# the one this script spawned (libvirtd: the child of our tini), and is the process listening on
# the host's socket (SO_PEERCRED). `up` refuses to start a daemon over one it did not start in a
# host (and stops nothing of it); `status` says which pid answers.
#
# URIs: from the root namespace qemu+unix:///system?socket=$OCF_RS_HOSTS_DIR/HOST/run/libvirt/libvirt-sock;
# inside any host qemu+tcp://HOST/system (ocfa, ocfb, ocfc), and qemu:///system
# for the host's own libvirtd.
#
# Environment: OCF_RS_HOSTS_DIR (state root, default /run/ocf-rs-hosts), OCF_RS_HOSTS_TIMEOUT
# (seconds for each bounded wait, default 20). Needs root, iproute2, util-linux, tini, libvirtd.
set -euo pipefail

BASE=${OCF_RS_HOSTS_DIR:-/run/ocf-rs-hosts}
TIMEOUT=${OCF_RS_HOSTS_TIMEOUT:-20}
HOSTS=(ocfa ocfb ocfc)
declare -A ADDR=([ocfa]=10.213.99.1 [ocfb]=10.213.99.2 [ocfc]=10.213.99.3)
declare -A UUID=([ocfa]=0cfa0000-0000-4000-8000-00000000000a [ocfb]=0cfb0000-0000-4000-8000-00000000000b
  [ocfc]=0cfc0000-0000-4000-8000-00000000000c)
LAN=ocf-rs-lan # the namespace of the hosts' bridge
BRIDGE=br0

PROG=libvirt-hosts.sh
LIB_DIR=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
# shellcheck source=scripts/lib-proc.sh
source "$LIB_DIR/lib-proc.sh"
# shellcheck source=scripts/lib-libvirt.sh
source "$LIB_DIR/lib-libvirt.sh"

known_host() { [[ -n ${ADDR[$1]:-} ]] || die "unknown host '$1' (one of ${HOSTS[*]})"; }
netns() { echo "ocf-rs-$1"; }
dir() { echo "$BASE/$1"; }
sock() { echo "$BASE/$1/run/libvirt/libvirt-sock"; }
logsock() { echo "$BASE/$1/run/libvirt/virtlogd-sock"; }
uri() { echo "qemu+unix:///system?socket=$(sock "$1")"; }

keeper_pid() { read_pid "$(dir "$1")/keeper.pid" sleep; }

in_host() { # HOST CMD...: run CMD in HOST's namespaces
  local h=$1 k
  shift
  k=$(keeper_pid "$h") || die "host $h is not up"
  nsenter -t "$k" -n -m -u -- "$@"
}

host_virsh_ok() { virsh_ok "$(uri "$1")"; }

write_files() { # HOST
  local h=$1 d a
  d=$(dir "$h")
  a=${ADDR[$h]}
  mkdir -p "$d"/{etc-libvirt,lib,log,cache,run} "$d/lib/qemu" "$d/log/qemu"
  cat >"$d/etc-libvirt/libvirtd.conf" <<EOF
# written by ocf-rs scripts/libvirt-hosts.sh for host $h
listen_tls = 0
listen_tcp = 1
auth_tcp = "none"
listen_addr = "$a"
host_uuid = "${UUID[$h]}"
log_level = 3
log_filters = "1:qemu.qemu_monitor 1:qemu.qemu_migration"
log_outputs = "1:file:/var/log/libvirt/libvirtd.log"
EOF
  cat >"$d/etc-libvirt/qemu.conf" <<EOF
# written by ocf-rs scripts/libvirt-hosts.sh for host $h
user = "root"
group = "root"
security_driver = "none"
dynamic_ownership = 0
remember_owner = 0
cgroup_controllers = [ ]
migration_address = "$a"
migration_host = "$a"
EOF
  cat >"$d/etc-libvirt/virtlogd.conf" <<EOF
# written by ocf-rs scripts/libvirt-hosts.sh for host $h
log_outputs = "3:file:/var/log/libvirt/virtlogd.log"
EOF
  # no nameserver: names outside /etc/hosts fail at once (glibc then asks 127.0.0.1 of the
  # namespace, where nothing listens); nothing leaves the namespaces anyway (no route out)
  printf '# written by ocf-rs scripts/libvirt-hosts.sh: no DNS inside the test hosts\n' >"$d/resolv.conf"
  {
    echo "127.0.0.1 localhost"
    for a in "${HOSTS[@]}"; do echo "${ADDR[$a]} $a $a-mig"; done
  } >"$d/hosts"
}

ensure_netns() { # every host's namespace and its link to the LAN bridge
  local h
  [[ -e /run/netns/$LAN ]] || ip netns add "$LAN"
  ip -n "$LAN" link show "$BRIDGE" >/dev/null 2>&1 || ip -n "$LAN" link add "$BRIDGE" type bridge
  ip -n "$LAN" link set "$BRIDGE" up
  for h in "${HOSTS[@]}"; do
    [[ -e /run/netns/$(netns "$h") ]] || ip netns add "$(netns "$h")"
    ip -n "$(netns "$h")" link set lo up
    # veth vHOST0 in the host, its peer vHOST1 on the bridge
    if ! ip -n "$(netns "$h")" link show "v${h}0" >/dev/null 2>&1; then
      # a half-made pair (one end left) goes with the namespace it is in
      ip -n "$LAN" link del "v${h}1" >/dev/null 2>&1 || true
      ip link add "v${h}0" netns "$(netns "$h")" type veth peer name "v${h}1" netns "$LAN"
    fi
    ip -n "$LAN" link set "v${h}1" master "$BRIDGE" up
    ip -n "$(netns "$h")" addr replace "${ADDR[$h]}/24" dev "v${h}0"
    ip -n "$(netns "$h")" link set "v${h}0" up
  done
}

start_keeper() { # HOST: the process that holds the mount + UTS namespace, with the mounts made
  local h=$1 d k
  d=$(dir "$h")
  keeper_pid "$h" >/dev/null && return 0
  rm -f "$d/keeper.pid"
  setsid ip netns exec "$(netns "$h")" unshare --mount --uts --propagation private -- sleep infinity \
    </dev/null >/dev/null 2>&1 &
  k=$!
  # ip netns exec and unshare exec in place: $! becomes `sleep` once the namespaces exist
  await "$k" "the keeper of $h (pid $k)" spawned_as "$k" sleep \
    || { kill -KILL "$k" 2>/dev/null || true; die "keeper of $h did not start"; }
  echo "$k" >"$d/keeper.pid"
  nsenter -t "$k" -n -m -u -- sh -ec "
    hostname $h
    mount --bind '$d/etc-libvirt' /etc/libvirt
    mkdir -p /var/lib/libvirt /var/log/libvirt /var/cache/libvirt
    mount --bind '$d/lib' /var/lib/libvirt
    mount --bind '$d/log' /var/log/libvirt
    mount --bind '$d/cache' /var/cache/libvirt
    mount --bind '$d/hosts' /etc/hosts
    mount --bind '$d/resolv.conf' /etc/resolv.conf
    mount --bind '$d/run' /run
    mkdir -p /run/libvirt /run/lock
  " || die "cannot set up the mounts of $h"
}

our_host_libvirtd() { our_libvirtd "$(dir "$1")/tini.pid" "$(dir "$1")/run/libvirtd.pid" "$(sock "$1")"; }
our_host_virtlogd() { our_virtlogd "$(dir "$1")/run/virtlogd.pid" "$(logsock "$1")"; }

# host_foreign HOST EXE SOCKET OURPID: one line per EXE in HOST that this script did not
# start: a process listening on SOCKET other than OURPID (and its children), and EXE
# processes in HOST's namespaces other than OURPID and its children.
host_foreign() {
  local h=$1 exe=$2 socket=$3 ours=${4:-} l="" pid
  if l=$(foreign_listener "$socket" "$ours"); then
    if [[ -z $ours ]] || ! descends_from "$l" "$ours"; then echo "$(describe_pid "$l") listens on $socket"; fi
  fi
  for pid in $(ns_pids "$h"); do
    [[ $pid != "$l" && $(exe_name "$pid" 2>/dev/null) == "$exe" ]] || continue
    if [[ -n $ours ]] && descends_from "$pid" "$ours"; then continue; fi
    echo "$(describe_pid "$pid") runs in host $h"
  done
  return 0
}

refuse_foreign() { # HOST EXE SOCKET [OURPID]
  local f
  f=$(host_foreign "$1" "$2" "$3" "${4:-}")
  [[ -z $f ]] && return 0
  die "refusing to start $2 of $1: a $2 this script did not start is running: $(echo "$f" | paste -sd ';' -)." \
    "It is left alone: stop it (or run $0 down), then $0 up again"
}

host_virtlogd_ready() { # HOST PID
  [[ $(read_pid "$(dir "$1")/run/virtlogd.pid" virtlogd) == "$2" ]] && listener_is "$(logsock "$1")" "$2"
}
host_libvirtd_ready() { our_host_libvirtd "$1" >/dev/null && host_virsh_ok "$1"; }

start_daemons() { # HOST
  local h=$1 d tini k pid l why="" deadline spawned=0
  d=$(dir "$h")
  k=$(keeper_pid "$h") || die "host $h is not up"
  if ! our_host_virtlogd "$h" >/dev/null; then
    if pid=$(read_pid "$d/run/virtlogd.pid" virtlogd); then
      refuse_foreign "$h" virtlogd "$(logsock "$h")" "$pid"
      log "virtlogd of $h (pid $pid) does not listen on $(logsock "$h"): restarting it"
      stop_pid "$pid" "virtlogd of $h" || die "cannot stop virtlogd of $h"
    fi
    refuse_foreign "$h" virtlogd "$(logsock "$h")"
    rm -f "$d/run/virtlogd.pid"
    # In the foreground of its own session; setsid and nsenter exec in place: $! is virtlogd.
    setsid nsenter -t "$k" -n -m -u -- virtlogd -f /etc/libvirt/virtlogd.conf -p /run/virtlogd.pid \
      </dev/null >>"$d/log/virtlogd.stdout" 2>&1 &
    pid=$!
    if ! await "$pid" "virtlogd of $h (pid $pid) listening" host_virtlogd_ready "$h" "$pid"; then
      tail -n 20 "$d/log/virtlogd.stdout" "$d/log/virtlogd.log" >&2 2>/dev/null || true
      stop_pid "$pid" "virtlogd of $h" || true
      die "virtlogd of $h did not come up"
    fi
  fi
  if our_host_libvirtd "$h" >/dev/null && host_virsh_ok "$h"; then return 0; fi
  if ! tini=$(read_pid "$d/tini.pid" tini); then
    if pid=$(read_pid "$d/run/libvirtd.pid" libvirtd); then
      log "libvirtd of $h (pid $pid) lost its tini: stopping it"
      stop_pid "$pid" "libvirtd of $h" || die "cannot stop libvirtd of $h"
    fi
    refuse_foreign "$h" libvirtd "$(sock "$h")"
    rm -f "$d/tini.pid" "$d/run/libvirtd.pid"
    command -v tini >/dev/null 2>&1 || die "tini not found (apt-get install -y tini)"
    # setsid and nsenter exec in place: $! is tini once it has exec'd (checked)
    setsid nsenter -t "$k" -n -m -u -- tini -s -- libvirtd --listen -f /etc/libvirt/libvirtd.conf \
      -p /run/libvirtd.pid </dev/null >>"$d/log/libvirtd.stdout" 2>&1 &
    tini=$!
    spawned=1
    echo "$tini" >"$d/tini.pid"
    await "$tini" "tini of $h (pid $tini) to exec" spawned_as "$tini" tini || die "tini of $h failed to start"
  fi
  deadline=$(($(now_ms) + TIMEOUT * 1000))
  until host_libvirtd_ready "$h"; do
    if ! alive "$tini"; then
      why="libvirtd of $h exited during start-up"
    elif l=$(sock_listener "$(sock "$h")") && ! descends_from "$l" "$tini"; then
      why="the libvirtd answering on $(sock "$h") is not ours (under tini pid $tini) but $(describe_pid "$l")"
    elif (($(now_ms) >= deadline)); then
      why="libvirtd of $h (tini pid $tini) did not answer within ${TIMEOUT}s"
    fi
    if [[ -n $why ]]; then
      tail -n 20 "$d/log/libvirtd.stdout" "$d/log/libvirtd.log" >&2 2>/dev/null || true
      # started by this call and unreachable: stop it (never the other one)
      if ((spawned)); then stop_libvirtd "$h" || true; fi
      die "$why"
    fi
    sleep 0.05
  done
}

do_up() {
  need_root
  local hosts=("$@") h t0
  ((${#hosts[@]})) || hosts=("${HOSTS[@]}")
  for h in "${hosts[@]}"; do known_host "$h"; done
  t0=$(now_ms)
  ensure_accounts
  ensure_netns
  for h in "${hosts[@]}"; do
    write_files "$h"
    start_keeper "$h"
  done
  for h in "${hosts[@]}"; do start_daemons "$h"; done
  log "up in $(($(now_ms) - t0)) ms"
  for h in "${hosts[@]}"; do
    printf '%s %s qemu+tcp://%s/system\n' "$h" "$(uri "$h")" "$h"
  done
}

ns_pids() { # HOST: every process in HOST's network namespace or keeper's mount namespace
  local h=$1 net="" mnt="" k p ino
  if [[ -e /run/netns/$(netns "$h") ]]; then
    ino=$(stat -L -c %i "/run/netns/$(netns "$h")" 2>/dev/null) && net="net:[$ino]"
  fi
  if k=$(keeper_pid "$h"); then mnt=$(readlink "/proc/$k/ns/mnt" 2>/dev/null || true); fi
  [[ -n $net || -n $mnt ]] || return 0
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [[ $p == "$$" || $p == "$BASHPID" ]] && continue
    if [[ -n $net && $(readlink "/proc/$p/ns/net" 2>/dev/null) == "$net" ]] \
      || [[ -n $mnt && $(readlink "/proc/$p/ns/mnt" 2>/dev/null) == "$mnt" ]]; then
      alive "$p" && echo "$p"
    fi
  done
  return 0
}

stop_libvirtd() { # HOST: ours only (the pid files of this script); fails if one survived
  local h=$1 d pid l rc=0
  d=$(dir "$h")
  if pid=$(read_pid "$d/run/libvirtd.pid" libvirtd); then
    if l=$(sock_listener "$(sock "$h")") && [[ $l != "$pid" ]] && ! descends_from "$l" "$pid"; then
      # a libvirtd that exits cleanly unlinks its socket path, now the other one's
      log "$(sock "$h") belongs to pid $l: SIGKILL to the libvirtd of $h (pid $pid), so that it leaves that socket alone"
      kill -KILL "$pid" 2>/dev/null || true
      stop_procs "libvirtd of $h" 5 "$pid" || rc=1
    else
      stop_pid "$pid" "libvirtd of $h" || rc=1
    fi
  fi
  if pid=$(read_pid "$d/tini.pid" tini); then stop_pid "$pid" "tini of $h" || rc=1; fi
  rm -f "$d/tini.pid"
  return "$rc"
}

down_host() { # HOST
  local h=$1 d pid f dom k
  d=$(dir "$h")
  if our_host_libvirtd "$h" >/dev/null && host_virsh_ok "$h"; then
    while read -r dom; do
      if [[ -n $dom ]]; then timeout 10 virsh -q -c "$(uri "$h")" destroy "$dom" >/dev/null 2>&1 || true; fi
    done < <(timeout 5 virsh -q -c "$(uri "$h")" list --name 2>/dev/null || true)
  fi
  stop_libvirtd "$h" || true
  for f in "$d"/run/libvirt/qemu/*.pid; do
    [[ -e $f ]] || continue
    pid=$(read_pid "$f" 2>/dev/null) || continue
    if [[ $(comm_of "$pid") == qemu-system-* ]]; then stop_pid "$pid" "qemu of $h" || true; fi
  done
  if pid=$(read_pid "$d/run/virtlogd.pid" virtlogd); then stop_pid "$pid" "virtlogd of $h" || true; fi
  # Whatever else was started inside (agents, corosync, pacemaker, ...), keeper last.
  k=$(keeper_pid "$h" || true)
  for pid in $(ns_pids "$h"); do
    [[ $pid == "$k" ]] || kill -TERM "$pid" 2>/dev/null || true
  done
  local deadline=$(($(now_ms) + TIMEOUT * 1000)) left
  while left=$(ns_pids "$h" | grep -vx "${k:-none}") && [[ -n $left ]]; do
    if (($(now_ms) >= deadline)); then
      log "processes left in $h after ${TIMEOUT}s: SIGKILL $(echo "$left" | tr '\n' ' ')"
      for pid in $left; do kill -KILL "$pid" 2>/dev/null || true; done
      sleep 0.1
      break
    fi
    sleep 0.05
  done
  if [[ -n $k ]]; then stop_pid "$k" "keeper of $h" || true; fi
  rm -f "$d/keeper.pid"
}

do_kill() { # HOST
  need_root
  local h=$1 pids left deadline
  pids=$(ns_pids "$h")
  # shellcheck disable=SC2086 # one word per pid
  [[ -z $pids ]] || kill -KILL $pids 2>/dev/null || true
  deadline=$(($(now_ms) + TIMEOUT * 1000))
  while left=$(for p in $pids; do alive "$p" && echo "$p"; done) && [[ -n $left ]]; do
    (($(now_ms) < deadline)) || die "processes of $h still alive ${TIMEOUT}s after SIGKILL: $(echo "$left" | tr '\n' ' ')"
    sleep 0.02
  done
  rm -rf -- "$(dir "$h")/run" "$(dir "$h")/keeper.pid" "$(dir "$h")/tini.pid"
  log "killed $(wc -w <<<"$pids") processes of $h"
}

do_down() {
  need_root
  local h t0
  t0=$(now_ms)
  for h in "${HOSTS[@]}"; do down_host "$h"; done
  for h in "${HOSTS[@]}" lan; do
    [[ -e /run/netns/$(netns "$h") ]] && ip netns del "$(netns "$h")"
  done
  # The private mounts lived in the keepers' mount namespaces and went with them.
  for h in "${HOSTS[@]}"; do rm -rf -- "$(dir "$h")"; done
  rmdir "$BASE" 2>/dev/null || true
  log "down in $(($(now_ms) - t0)) ms"
}

do_status() {
  local h up=0 parts=0 foreign=0 d s f
  for h in "${HOSTS[@]}"; do
    d=$(dir "$h")
    s=""
    if keeper_pid "$h" >/dev/null; then s+=" keeper"; parts=$((parts + 1)); fi
    if read_pid "$d/run/virtlogd.pid" virtlogd >/dev/null; then s+=" virtlogd"; parts=$((parts + 1)); fi
    if read_pid "$d/tini.pid" tini >/dev/null; then s+=" libvirtd"; parts=$((parts + 1)); fi
    if [[ -e /run/netns/$(netns "$h") ]]; then s+=" netns"; parts=$((parts + 1)); fi
    f=$(
      host_foreign "$h" libvirtd "$(sock "$h")" "$(read_pid "$d/run/libvirtd.pid" libvirtd || true)"
      host_foreign "$h" virtlogd "$(logsock "$h")" "$(read_pid "$d/run/virtlogd.pid" virtlogd || true)"
    )
    if our_host_virtlogd "$h" >/dev/null && our_host_libvirtd "$h" >/dev/null && host_virsh_ok "$h"; then
      up=$((up + 1))
      echo "$h: running ($s ) $(uri "$h") qemu+tcp://$h/system"
    elif [[ -n $f ]]; then
      foreign=$((foreign + 1))
      echo "$h: not ours: $(echo "$f" | paste -sd ';' -) (ours:${s:- nothing} )"
    else
      echo "$h: not answering (${s:- nothing} )"
    fi
  done
  ((foreign == 0)) || return 4
  ((up == ${#HOSTS[@]})) && return 0
  ((parts == 0)) && return 3
  return 1
}

case ${1:-} in
  up) shift; do_up "$@" ;;
  down) do_down ;;
  status) do_status ;;
  uri) (($# == 2)) || die "usage: $0 uri HOST"; known_host "$2"; uri "$2" ;;
  exec) (($# >= 3)) || die "usage: $0 exec HOST CMD..."; known_host "$2"; h=$2; shift 2; in_host "$h" "$@" ;;
  pids) (($# == 2)) || die "usage: $0 pids HOST"; known_host "$2"; ns_pids "$2" ;;
  stop-libvirtd) (($# == 2)) || die "usage: $0 stop-libvirtd HOST"; known_host "$2"; stop_libvirtd "$2" ;;
  kill) (($# == 2)) || die "usage: $0 kill HOST"; known_host "$2"; do_kill "$2" ;;
  *) echo "usage: $0 up [HOST...]|down|status|uri HOST|exec HOST CMD...|pids HOST|stop-libvirtd HOST|kill HOST" >&2; exit 2 ;;
esac
