# shellcheck shell=bash
# Process helpers shared by scripts/libvirt.sh and scripts/libvirt-hosts.sh (sourced, not run).
# The sourcing script defines log() and TIMEOUT (seconds of every bounded wait).

now_ms() { local s; s=$(date +%s%N); echo $((s / 1000000)); }

# alive PID: running and not a zombie. Orphans are reaped by PID 1 only about once a second on
# these machines, so a stopped daemon may linger as a zombie; it holds nothing any more.
alive() {
  local st
  [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null || return 1
  st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
  [[ -n $st && $st != Z && $st != X ]]
}

# read_pid FILE [COMM]: the pid in FILE on stdout if that process is alive (and its comm is COMM:
# a guard against pid reuse).
read_pid() {
  local pid
  [[ -s $1 ]] || return 1
  pid=$(tr -dc '0-9' <"$1")
  alive "$pid" || return 1
  if [[ -n ${2:-} ]]; then [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] || return 1; fi
  echo "$pid"
}

# stop_pid PID NAME: SIGTERM, a wait bounded by TIMEOUT, then SIGKILL.
stop_pid() {
  local pid=$1 name=$2 deadline
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$(($(now_ms) + TIMEOUT * 1000))
  while alive "$pid"; do
    if (($(now_ms) >= deadline)); then
      log "$name (pid $pid) ignored SIGTERM for ${TIMEOUT}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.1
      break
    fi
    sleep 0.05
  done
}
