# shellcheck shell=bash
# Process helpers of the daemon scripts (scripts/libvirt.sh, scripts/libvirt-hosts.sh,
# scripts/cluster.sh); sourced, not run. The sourcing script sets PROG (its name, for
# messages) and TIMEOUT (seconds of every bounded wait) before sourcing.
#
# One way for every daemon these scripts run:
#   - started in its own session as `setsid CMD &` (setsid, nsenter and `ip netns exec`
#     exec in place, so $! is the daemon itself once it has exec'd: spawned_as checks it);
#   - it is OURS only while the process we spawned (or the one its own pid file names,
#     checked against what we spawned) is alive AND is the process listening on the socket
#     its clients use: the kernel's SO_PEERCRED of a connection to that socket names the pid
#     that listens on it (sock_listener), so "a client reaching that socket reaches our
#     daemon" is checked, not assumed. Any other live daemon of the same kind is FOREIGN:
#     the scripts refuse to start over it, never stop it, and name its pid.

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }

# The daemons started here must not inherit a file descriptor of the caller: `flock FILE
# CMD` hands its locked file to CMD, and a libvirtd holding it would keep the lock taken
# for as long as it runs. Every descriptor above 2 is closed when this file is sourced.
close_inherited_fds() {
  local fd fds=()
  for fd in /proc/self/fd/*; do fds+=("${fd##*/}"); done
  for fd in "${fds[@]}"; do
    if ((fd > 2)); then
      eval "exec $fd>&-" 2>/dev/null || true
    fi
  done
}
close_inherited_fds
die() {
  log "ERROR: $*"
  exit 1
}
need_root() { ((EUID == 0)) || die "must run as root"; }

# ---- time ----
now_ms() {
  local t=${EPOCHREALTIME/[.,]/}
  echo $((10#$t / 1000))
}
ms_of() { # SECONDS (decimals allowed) -> milliseconds
  local i=${1%%.*} f=""
  [[ $1 == *.* ]] && f=${1#*.}
  f=${f}000
  echo $((10#${i:-0} * 1000 + 10#${f:0:3}))
}
elapsed() { # T0_MS -> seconds since then, two decimals
  local ms=$(($(now_ms) - $1))
  printf '%d.%02d\n' $((ms / 1000)) $((ms % 1000 / 10))
}

# await PID WHAT CMD...: poll CMD every 0.05 s until it succeeds (0), at most TIMEOUT seconds;
# fails with a message when PID (the daemon being started) exits first, or at the timeout.
await() {
  local pid=$1 what=$2 deadline
  shift 2
  deadline=$(($(now_ms) + $(ms_of "$TIMEOUT")))
  until "$@"; do
    if ! alive "$pid"; then
      log "$what: pid $pid exited"
      return 1
    fi
    (($(now_ms) < deadline)) || {
      log "timed out after ${TIMEOUT}s waiting for $what"
      return 1
    }
    sleep 0.05
  done
}

# ---- processes ----

# proc_stat PID: "STATE PPID STARTTIME" from /proc/PID/stat.
proc_stat() {
  local s=""
  read -r s 2>/dev/null <"/proc/$1/stat" || [[ -n $s ]] || return 1
  [[ -n $s ]] || return 1
  s=${s##*) } # comm may contain spaces and parentheses
  # shellcheck disable=SC2086
  set -- $s # after comm: 1 state, 2 ppid, ..., 20 starttime
  printf '%s %s %s\n' "$1" "$2" "${20}"
}
start_time() { local st; st=$(proc_stat "$1") || return 1; printf '%s\n' "${st##* }"; }
ppid_of() {
  local st a
  st=$(proc_stat "$1") || return 1
  read -r _ a _ <<<"$st"
  printf '%s\n' "$a"
}
comm_of() { local c=""; read -r c 2>/dev/null <"/proc/$1/comm" || true; [[ -n $c ]] && printf '%s\n' "$c"; }
exe_name() { # PID: basename of /proc/PID/exe (comm is cut at 15 characters)
  local e
  e=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
  e=${e% (deleted)}
  printf '%s\n' "${e##*/}"
}

# alive PID [STARTTIME]: running and not a zombie (and the same process as recorded, when a
# start time is given: a guard against pid reuse). Orphans are reaped by PID 1 only about once
# a second on these machines, so a stopped daemon may linger as a zombie; it holds nothing.
alive() {
  local st state start
  [[ ${1:-} =~ ^[0-9]+$ ]] || return 1
  st=$(proc_stat "$1") || return 1
  read -r state _ start <<<"$st"
  [[ $state != Z && $state != X ]] || return 1
  [[ -z ${2:-} || $start == "$2" ]]
}

# read_pid FILE [COMM]: the pid in FILE on stdout if that process is alive (and its comm is COMM:
# a guard against pid reuse).
read_pid() {
  local pid
  [[ -s $1 ]] || return 1
  pid=$(tr -dc '0-9' <"$1" 2>/dev/null) || return 1
  alive "$pid" || return 1
  if [[ -n ${2:-} ]]; then [[ $(comm_of "$pid") == "$2" ]] || return 1; fi
  echo "$pid"
}

# spawned_as PID COMM: true once PID (a `setsid ... &` just started) has exec'd COMM.
spawned_as() { [[ $(comm_of "$1") == "$2" ]]; }

# descends_from PID ANCESTOR: ANCESTOR is PID or one of its ancestors.
descends_from() {
  local p=$1 n=0
  while [[ -n $p && $p != 0 && $p != 1 ]] && ((n++ < 64)); do
    [[ $p == "$2" ]] && return 0
    p=$(ppid_of "$p") || return 1
  done
  return 1
}

# children_of PID: pids of the live children of PID.
children_of() {
  local p s="" f
  for p in /proc/[0-9]*; do
    s=""
    read -r s 2>/dev/null <"$p/stat" || true
    s=${s##*) }
    read -r -a f <<<"$s"
    [[ ${f[1]:-} == "$1" && ${f[0]:-} != Z ]] && echo "${p#/proc/}"
  done
  return 0
}

# procs_in_ns NS EXE...: "EXE PID STARTTIME" of every live process running one of the
# executables EXE in this script's namespace NS ("net", "mnt", or "net|mnt": either).
procs_in_ns() {
  local kinds=$1 p pid exe k same st state start comm
  shift
  local -A want=() short=() mine=()
  for exe in "$@"; do
    want[$exe]=1
    short[${exe:0:15}]=1 # comm: the first 15 characters of the executable's name
  done
  for k in net mnt; do mine[$k]=$(readlink "/proc/self/ns/$k"); done
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
    comm=""
    read -r comm 2>/dev/null <"$p/comm" || true
    [[ -n $comm && -n ${short[$comm]:-} ]] || continue
    exe=$(exe_name "$pid") || continue
    [[ -n ${want[$exe]:-} ]] || continue
    same=0
    for k in ${kinds//|/ }; do
      [[ $(readlink "/proc/$pid/ns/$k" 2>/dev/null) == "${mine[$k]}" ]] && same=1
    done
    ((same)) || continue
    st=$(proc_stat "$pid") || continue
    read -r state _ start <<<"$st"
    [[ $state == Z ]] || printf '%s %s %s\n' "$exe" "$pid" "$start"
  done
  return 0
}

# spec_alive PID[:STARTTIME]: alive, with the start-time guard when the spec has one.
spec_alive() { if [[ $1 == *:* ]]; then alive "${1%%:*}" "${1#*:}"; else alive "$1"; fi; }

# live_of PID[:STARTTIME]...: the pids among them still alive, space-separated (fails if none).
live_of() {
  local s out=""
  for s in "$@"; do spec_alive "$s" && out+="${out:+ }${s%%:*}"; done
  [[ -n $out ]] && echo "$out"
}

# stop_procs LABEL SECONDS PID[:STARTTIME]...: SIGTERM to each live one, a wait bounded by
# SECONDS, then SIGKILL and 5 s more. Fails only if one is still alive after that.
stop_procs() {
  local label=$1 secs=$2 deadline left
  shift 2
  left=$(live_of "$@") || return 0
  # shellcheck disable=SC2086
  kill -TERM $left 2>/dev/null || true
  deadline=$(($(now_ms) + $(ms_of "$secs")))
  while left=$(live_of "$@"); do
    if (($(now_ms) >= deadline)); then
      log "$label (pid $left) ignored SIGTERM for ${secs}s: SIGKILL"
      # shellcheck disable=SC2086
      kill -KILL $left 2>/dev/null || true
      deadline=$(($(now_ms) + 5000))
      while left=$(live_of "$@"); do
        (($(now_ms) < deadline)) || {
          log "$label (pid $left) still alive after SIGKILL"
          return 1
        }
        sleep 0.05
      done
      return 0
    fi
    sleep 0.05
  done
  return 0
}

# stop_pid PID NAME: stop_procs with TIMEOUT.
stop_pid() { stop_procs "$2" "$TIMEOUT" "$1"; }

# ---- sockets: which process answers ----

# sock_listeners SOCKET...: one line "SOCKET PID" per SOCKET that accepts a connection: PID is
# the process listening on that unix stream socket (a path, or @NAME for an abstract name),
# from the kernel's SO_PEERCRED of the connection. Connect and close: no request is sent.
# An abstract name is tried as is, then padded with NULs to the size of sun_path (libqb, and so
# corosync and pacemaker, bind their names that way: /proc/net/unix shows "@quorum@@@...").
sock_listeners() {
  timeout 5 python3 - "$@" 2>/dev/null <<'EOF'
import socket, struct, sys
for name in sys.argv[1:]:
    if name.startswith("@"):
        raw = "\0" + name[1:]
        addrs = [raw, raw.ljust(108, "\0")]
    else:
        addrs = [name]
    for addr in addrs:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(addr)
            pid, _uid, _gid = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
            print(name, pid)
            break
        except OSError:
            pass
        finally:
            s.close()
EOF
  return 0
}

# sock_listener SOCKET: the pid listening on SOCKET; fails when nothing accepts there.
sock_listener() {
  local out
  out=$(sock_listeners "$1")
  [[ -n $out ]] || return 1
  echo "${out##* }"
}

# listener_is SOCKET PID: PID is the process that listens on SOCKET.
listener_is() {
  local p
  p=$(sock_listener "$1") || return 1
  [[ $p == "$2" ]]
}

# describe_pid PID: "pid N (exe, started by PPID-exe PPID)", for messages about foreign daemons.
describe_pid() {
  local pp
  pp=$(ppid_of "$1" 2>/dev/null || echo '?')
  printf 'pid %s (%s, parent %s %s)\n' "$1" "$(exe_name "$1" 2>/dev/null || echo '?')" \
    "$pp" "$(exe_name "$pp" 2>/dev/null || echo '?')"
}
