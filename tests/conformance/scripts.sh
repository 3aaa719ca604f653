#!/usr/bin/env bash
# The daemon scripts start only their own daemons, stop only those, and their `status`
# tells "our daemon answers" from "some daemon answers" (issue #10). Needs root. It runs in
# the conformance layer, where tests/run.sh starts no libvirtd and no cluster: the daemons
# "not started by the script" are started here by hand, and everything started here is
# stopped at exit (also after a failure), leaving the machine as it was.
#   - libvirtd started by hand on /run/libvirt/libvirt-sock: scripts/libvirt.sh start
#     refuses (exit 1, names its pid, starts nothing of its own), status exits 4 naming it,
#     stop leaves it running;
#   - with that one gone, libvirt.sh start runs its own: status 0 names the pid that really
#     listens on the socket (checked here through SO_PEERCRED, independently of the script);
#   - our libvirtd running, a second libvirtd (driver state on private tmpfs, so it does
#     not die on the driver locks) takes over the socket: virsh answers, but status exits 4
#     naming the other pid, start fails, stop stops only ours;
#   - libvirt-hosts.sh: a second libvirtd taking over the socket of host ocfa's own: status
#     exits 4 naming it, up fails naming it (the host's own libvirtd is left as it was), down
#     stops every process of the host's namespaces (they are the script's own);
#   - corosync started by hand: scripts/cluster.sh start refuses before writing any file
#     (corosync.conf and the CIB directory unchanged, no pacemakerd), status exits 4, stop
#     leaves it running.
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
# shellcheck source=tests/lib-guest.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib-guest.sh"

LIBVIRT_SH=$T_REPO/scripts/libvirt.sh
CLUSTER_SH=$T_REPO/scripts/cluster.sh
HOSTS_SH=$T_REPO/scripts/libvirt-hosts.sh
HOSTS_DIR=${OCF_RS_HOSTS_DIR:-/run/ocf-rs-hosts}
SOCK=/run/libvirt/libvirt-sock
LV_RUN=/run/ocf-rs-libvirt

# listener_of SOCKET: the pid listening on the unix socket SOCKET (a path, or @NAME for an
# abstract name as libqb binds it: padded with NULs to the size of sun_path), from the
# kernel's SO_PEERCRED; prints nothing when nothing accepts.
listener_of() {
  timeout 5 python3 -c '
import socket, struct, sys
name = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(("\0" + name[1:]).ljust(108, "\0") if name.startswith("@") else name)
    print(struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0])
except OSError:
    pass
' "$1"
  return 0
}
listener_is() { [[ $(listener_of "$1") == "$2" ]]; } # SOCKET PID
virsh_answers() { timeout 5 virsh -q -c "qemu+unix:///system?socket=$1" version >/dev/null 2>&1; } # SOCKET

pid_alive() { # PID: exists and is not a zombie
  local st
  [[ ${1:-} =~ ^[0-9]+$ ]] || return 1
  st=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null) || return 1
  [[ -n $st && $st != Z && $st != X ]]
}
pid_runs() { pid_alive "$1" && [[ $(cat "/proc/$1/comm" 2>/dev/null) == "$2" ]]; } # PID COMM

# stop_by_pid PID COMM: stops PID (SIGTERM, SIGKILL after 10 s) only when it is alive and
# still runs COMM: never a pid that is empty, gone, or reused.
stop_by_pid() {
  pid_runs "$1" "$2" || return 0
  kill -TERM "$1" 2>/dev/null || true
  wait_until 10 not pid_alive "$1" && return 0
  kill -KILL "$1" 2>/dev/null || true
  wait_until 5 not pid_alive "$1"
}

# ours_alive: the live processes named by scripts/libvirt.sh's pid files ("" when none).
ours_alive() {
  local f pid out=""
  for f in tini libvirtd virtlogd; do
    pid=""
    if [[ -s $LV_RUN/$f.pid ]]; then pid=$(tr -dc '0-9' <"$LV_RUN/$f.pid" || true); fi
    if pid_alive "$pid"; then out+="$f:$pid "; fi
  done
  printf '%s' "$out"
}

# assert_listens SECONDS SOCKET PID OUT: PID listens on SOCKET within SECONDS; else the case
# fails, with the tail of the daemon's output file OUT.
assert_listens() {
  ((T_OPEN)) || return 1
  t_assertion
  wait_until "$1" listener_is "$2" "$3" && return 0
  t_fail "pid $3 does not listen on $2 (not within $1 s; listening: '$(listener_of "$2")'); its output: $(_t_short "$(tail -n 5 "$4" 2>/dev/null)")"
}

# busy NS NAME...: "PID NAME" of the processes called NAME in this namespace NS (net or mnt)
busy() {
  local ns=$1 n
  shift
  for n in "$@"; do pgrep --ns $$ --nslist "$ns" -a -x "$n" || true; done
}

# md5 of FILE, or "absent"; a listing (path, size, mtime) of the files under DIR
file_sum() { if [[ -e $1 ]]; then md5sum <"$1"; else echo absent; fi; }
tree_list() { if [[ -d $1 ]]; then find "$1" -printf '%p %s %T@\n' | sort; else echo absent; fi; }

HAND="" OURS="" OTHER="" CS="" # pids of the daemons of the cases below
HAND_PIDS=()   # "PID COMM" of every daemon started by hand here, stopped at exit
OURS_STARTED=0 # 1 once this file ran libvirt.sh start
HOSTS_UP=0     # 1 once this file ran libvirt-hosts.sh up
stop_hand_started() {
  local spec
  for spec in "${HAND_PIDS[@]}"; do
    # shellcheck disable=SC2086
    stop_by_pid $spec || true
  done
  if ((OURS_STARTED)); then "$LIBVIRT_SH" stop >/dev/null 2>&1 || true; fi
  if ((HOSTS_UP)); then "$HOSTS_SH" down >/dev/null 2>&1 || true; fi
}
t_on_exit stop_hand_started

# spawn COMM OUT CMD...: starts CMD in its own session (setsid, unshare and exec keep the
# pid), waits until it has exec'd COMM; the pid in SPAWNED.
SPAWNED=""
spawn() {
  local comm=$1 out=$2
  shift 2
  setsid "$@" </dev/null >"$out" 2>&1 &
  SPAWNED=$!
  HAND_PIDS+=("$SPAWNED $comm")
  wait_until 10 pid_runs "$SPAWNED" "$comm"
}

# What already runs here (in this mount or network namespace): then the cases that need a
# clean machine are skipped with the reason, and nothing is touched.
BUSY_LIBVIRT=$(busy mnt libvirtd virtlogd tini)
BUSY_CLUSTER=$(busy net corosync pacemakerd)
BUSY_HOSTS=""
if [[ -e $HOSTS_DIR || -e /run/netns/ocf-rs-ocfa || -e /run/netns/ocf-rs-ocfb ]]; then
  BUSY_HOSTS="the hosts of libvirt-hosts.sh exist ($HOSTS_DIR, /run/netns/ocf-rs-*)"
fi

cat >"$T_TMP/hand-libvirtd.conf" <<EOF
log_outputs = "3:file:$T_TMP/hand-libvirtd.log"
host_uuid_source = "machine-id"
EOF

t_begin "libvirt.sh start refuses over a libvirtd it did not start: exit 1, names its pid, starts nothing"
if [[ -n $BUSY_LIBVIRT ]]; then
  t_skip "libvirt daemons already run here, not touching them: ${BUSY_LIBVIRT//$'\n'/; }"
else
  spawn libvirtd "$T_TMP/hand-libvirtd.out" libvirtd -f "$T_TMP/hand-libvirtd.conf" -p "$T_TMP/hand-libvirtd.pid"
  HAND=$SPAWNED
  assert_listens 30 "$SOCK" "$HAND" "$T_TMP/hand-libvirtd.out"
  assert_rc 0 "virsh does not answer through the hand-started libvirtd" -- virsh_ version
  assert_rc 1 "libvirt.sh start beside it" -- "$LIBVIRT_SH" start
  assert_match "refusing to start libvirtd: .*pid $HAND " "$T_OUT" "the refusal names the other libvirtd"
  assert_true "the hand-started libvirtd (pid $HAND) did not survive the refused start" -- pid_runs "$HAND" libvirtd
  assert_eq "$HAND" "$(listener_of "$SOCK")" "the pid listening on $SOCK after the refused start"
  assert_eq "" "$(ours_alive)" "daemons of libvirt.sh running after the refused start"
fi
t_end

t_begin "libvirt.sh status exits 4 while a libvirtd it did not start answers, and names its pid"
if [[ -n $BUSY_LIBVIRT ]]; then
  t_skip "libvirt daemons already run here, not touching them"
else
  assert_true "the hand-started libvirtd (pid $HAND) is gone" -- pid_runs "$HAND" libvirtd
  assert_rc 4 "libvirt.sh status" -- "$LIBVIRT_SH" status
  assert_match "^not ours: .*pid $HAND .*listens on $SOCK" "$T_OUT" "status names the libvirtd that answers"
fi
t_end

t_begin "libvirt.sh stop leaves a libvirtd it did not start running, and says so"
if [[ -n $BUSY_LIBVIRT ]]; then
  t_skip "libvirt daemons already run here, not touching them"
else
  assert_rc 0 "libvirt.sh stop" -- "$LIBVIRT_SH" stop
  assert_match "not stopping what this script did not start: .*pid $HAND " "$T_OUT" "stop names what it leaves"
  assert_true "stop ended the hand-started libvirtd (pid $HAND)" -- pid_runs "$HAND" libvirtd
  assert_eq "$HAND" "$(listener_of "$SOCK")" "the pid listening on $SOCK after stop"
  stop_by_pid "$HAND" libvirtd
  assert_wait 10 "the hand-started libvirtd (pid $HAND) did not stop" -- not pid_alive "$HAND"
fi
t_end

t_begin "libvirt.sh status 0 only for its own libvirtd: the pid it names is the one listening; its daemons keep no lock of the caller"
if [[ -n $BUSY_LIBVIRT ]]; then
  t_skip "libvirt daemons already run here, not touching them"
else
  assert_true "the hand-started libvirtd (pid $HAND) still runs" -- not pid_alive "$HAND"
  assert_eq "" "$(busy mnt libvirtd virtlogd tini)" "libvirt daemons running before libvirt.sh start"
  assert_rc 3 "libvirt.sh status with nothing running" -- "$LIBVIRT_SH" status
  OURS_STARTED=1
  # Started under a lock, as the tests take the stack's: the daemons must not keep it.
  assert_rc 0 "libvirt.sh start (under flock)" -- flock "$T_TMP/stack.lock" "$LIBVIRT_SH" start
  assert_rc 0 "the lock is free once libvirt.sh start returned" -- flock -n "$T_TMP/stack.lock" true
  assert_rc 0 "libvirt.sh status" -- "$LIBVIRT_SH" status
  OURS=$(tr -dc '0-9' <"$LV_RUN/libvirtd.pid")
  assert_match "^running: .*libvirtd pid $OURS under tini pid [0-9]+" "$T_OUT" "status names its libvirtd"
  assert_eq "$OURS" "$(listener_of "$SOCK")" "the pid listening on $SOCK"
  assert_eq "tini" "$(cat "/proc/$(awk '/^PPid:/ { print $2 }' "/proc/$OURS/status")/comm")" "the parent of libvirtd $OURS"
fi
t_end

t_begin "another libvirtd takes over the socket of ours: virsh answers, yet status 4 names it, start fails, stop stops only ours"
if [[ -n $BUSY_LIBVIRT ]]; then
  t_skip "libvirt daemons already run here, not touching them"
else
  mkdir -p "$T_TMP/shared-sockdir"
  cat >"$T_TMP/other-libvirtd.conf" <<EOF
unix_sock_dir = "$T_TMP/shared-sockdir"
log_outputs = "3:file:$T_TMP/other-libvirtd.log"
host_uuid_source = "machine-id"
EOF
  # Its driver state (and driver locks) on private tmpfs, its sockets in the real
  # /run/libvirt (bound to shared-sockdir before /run/libvirt is covered).
  spawn libvirtd "$T_TMP/other-libvirtd.out" unshare -m --propagation private sh -ec "
    mount --bind /run/libvirt '$T_TMP/shared-sockdir'
    mount -t tmpfs tmpfs /run/libvirt
    mount -t tmpfs tmpfs /var/lib/libvirt
    mount -t tmpfs tmpfs /var/cache/libvirt
    exec libvirtd -f '$T_TMP/other-libvirtd.conf' -p '$T_TMP/other-libvirtd.pid'"
  OTHER=$SPAWNED
  assert_listens 30 "$SOCK" "$OTHER" "$T_TMP/other-libvirtd.out"
  assert_rc 0 "virsh -c $URI does not answer (through the other libvirtd)" -- virsh_ version
  assert_true "our libvirtd (pid $OURS) died" -- pid_runs "$OURS" libvirtd
  assert_rc 4 "libvirt.sh status" -- "$LIBVIRT_SH" status
  assert_match "^not ours: .*pid $OTHER .*listens on $SOCK" "$T_OUT" "status names the libvirtd that answers"
  assert_rc 1 "libvirt.sh start" -- "$LIBVIRT_SH" start
  assert_match "is not ours .* but pid $OTHER " "$T_OUT" "start names the libvirtd that answers"
  assert_true "start ended the other libvirtd (pid $OTHER)" -- pid_runs "$OTHER" libvirtd
  assert_rc 0 "libvirt.sh stop" -- "$LIBVIRT_SH" stop
  assert_true "stop ended the other libvirtd (pid $OTHER)" -- pid_runs "$OTHER" libvirtd
  assert_eq "$OTHER" "$(listener_of "$SOCK")" "the pid listening on $SOCK after stop"
  assert_eq "" "$(ours_alive)" "daemons of libvirt.sh left after stop"
  stop_by_pid "$OTHER" libvirtd
  assert_wait 10 "the other libvirtd (pid $OTHER) did not stop" -- not pid_alive "$OTHER"
fi
t_end

cat >"$T_TMP/hand-corosync.conf" <<EOF
totem {
    version: 2
    cluster_name: handmade
    transport: knet
    crypto_cipher: none
    crypto_hash: none
}
nodelist {
    node {
        name: handmade1
        nodeid: 1
        ring0_addr: 127.0.0.1
    }
}
quorum {
    provider: corosync_votequorum
}
logging {
    to_stderr: yes
    to_logfile: no
    to_syslog: no
}
EOF

t_begin "cluster.sh start refuses over a corosync it did not start, before writing any file; status 4; stop leaves it"
if [[ -n $BUSY_CLUSTER ]]; then
  t_skip "cluster daemons already run here, not touching them: ${BUSY_CLUSTER//$'\n'/; }"
else
  spawn corosync "$T_TMP/hand-corosync.out" corosync -f -c "$T_TMP/hand-corosync.conf"
  CS=$SPAWNED
  assert_listens 20 @quorum "$CS" "$T_TMP/hand-corosync.out"
  conf_before=$(file_sum /etc/corosync/corosync.conf)
  cib_before=$(tree_list /var/lib/pacemaker/cib)
  assert_rc 1 "cluster.sh start beside it" -- "$CLUSTER_SH" start
  assert_match "refusing to start: .*corosync pid $CS " "$T_OUT" "the refusal names the other corosync"
  assert_eq "$conf_before" "$(file_sum /etc/corosync/corosync.conf)" "/etc/corosync/corosync.conf after the refused start"
  assert_eq "$cib_before" "$(tree_list /var/lib/pacemaker/cib)" "/var/lib/pacemaker/cib after the refused start"
  assert_eq "" "$(pgrep --ns $$ --nslist net -x pacemakerd || true)" "pacemakerd running after the refused start"
  assert_true "the hand-started corosync (pid $CS) did not survive the refused start" -- pid_runs "$CS" corosync
  assert_eq "$CS" "$(listener_of @quorum)" "the pid listening on @quorum"
  assert_rc 4 "cluster.sh status" -- "$CLUSTER_SH" status
  assert_match "not ours: .*corosync pid $CS " "$T_OUT" "status names the other corosync"
  assert_rc 0 "cluster.sh stop" -- "$CLUSTER_SH" stop
  assert_match "left running, not started by this script: .*corosync pid $CS " "$T_OUT" "stop names what it leaves"
  assert_true "cluster.sh stop ended the hand-started corosync (pid $CS)" -- pid_runs "$CS" corosync
  stop_by_pid "$CS" corosync
  assert_wait 15 "the hand-started corosync (pid $CS) did not stop" -- not pid_alive "$CS"
fi
t_end

t_begin "libvirt-hosts.sh: another libvirtd answering in host ocfa: status 4 names it, up fails naming it, down ends the host"
if [[ -n $BUSY_HOSTS ]]; then
  t_skip "$BUSY_HOSTS: not touching them"
else
  HOSTS_UP=1
  assert_rc 0 "libvirt-hosts.sh up ocfa" -- "$HOSTS_SH" up ocfa
  HSOCK=$HOSTS_DIR/ocfa/run/libvirt/libvirt-sock
  HLV=$(tr -dc '0-9' <"$HOSTS_DIR/ocfa/run/libvirtd.pid")
  KEEPER=$(tr -dc '0-9' <"$HOSTS_DIR/ocfa/keeper.pid")
  assert_rc 1 "libvirt-hosts.sh status with ocfa up, ocfb not" -- "$HOSTS_SH" status
  assert_match "(^| [|] )ocfa: running " "$T_OUT" "status of ocfa (its own libvirtd)"
  assert_eq "$HLV" "$(listener_of "$HSOCK")" "the pid listening on ocfa's socket after up"
  assert_true "the keeper of ocfa (pid $KEEPER) is not running" -- pid_runs "$KEEPER" sleep
  mkdir -p "$T_TMP/host-sockdir"
  cat >"$T_TMP/host-other.conf" <<EOF
unix_sock_dir = "$T_TMP/host-sockdir"
log_outputs = "3:file:$T_TMP/host-other.log"
host_uuid = "0cfa0000-0000-4000-8000-0000000000ff"
EOF
  # In ocfa's namespaces, its driver state on private tmpfs, its sockets in ocfa's /run/libvirt.
  spawn libvirtd "$T_TMP/host-other.out" nsenter -t "$KEEPER" -n -m -u -- unshare -m --propagation private sh -ec "
    mount --bind /run/libvirt '$T_TMP/host-sockdir'
    mount -t tmpfs tmpfs /run/libvirt
    mount -t tmpfs tmpfs /var/lib/libvirt
    mount -t tmpfs tmpfs /var/cache/libvirt
    exec libvirtd -f '$T_TMP/host-other.conf' -p '$T_TMP/host-other.pid'"
  HOTHER=$SPAWNED
  assert_listens 30 "$HSOCK" "$HOTHER" "$T_TMP/host-other.out"
  assert_wait 20 "virsh does not answer on ocfa's socket (through the other libvirtd)" -- virsh_answers "$HSOCK"
  assert_rc 4 "libvirt-hosts.sh status" -- "$HOSTS_SH" status
  assert_match "ocfa: not ours: .*pid $HOTHER .*listens on $HSOCK" "$T_OUT" "status names the libvirtd that answers in ocfa"
  assert_rc 1 "libvirt-hosts.sh up ocfa" -- "$HOSTS_SH" up ocfa
  assert_match "is not ours .* but pid $HOTHER " "$T_OUT" "up names the libvirtd that answers"
  assert_true "up ended the other libvirtd (pid $HOTHER)" -- pid_runs "$HOTHER" libvirtd
  assert_true "up ended ocfa's own libvirtd (pid $HLV)" -- pid_runs "$HLV" libvirtd
  assert_eq "$HOTHER" "$(listener_of "$HSOCK")" "the pid listening on ocfa's socket after the failed up"
  assert_rc 0 "libvirt-hosts.sh down" -- "$HOSTS_SH" down
  assert_true "down left the other libvirtd (pid $HOTHER) in ocfa's namespaces" -- not pid_alive "$HOTHER"
  assert_true "down left ocfa's keeper (pid $KEEPER)" -- not pid_alive "$KEEPER"
  assert_true "down left $HOSTS_DIR" -- not test -e "$HOSTS_DIR"
fi
t_end
