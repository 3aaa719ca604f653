#!/usr/bin/env bash
# Mutation check of the libvirt test layer: it must notice a broken VirtualDomain.
#
#   tests/mutants.sh                          as root, with what `tests/run.sh libvirt` needs
#   MUTANTS=stop,monitor tests/mutants.sh     only these mutants
#
# Each mutant is a small wrapper executable in a temporary directory (a test-only artifact:
# the installed agent is not touched) that handles one action wrongly itself and execs the
# real agent for every other action:
#   stop      stop exits 0 without doing anything
#   monitor   monitor and status always exit 0
#   start     start exits 0 without starting anything
# The libvirt layer (tests/run.sh libvirt) runs once per mutant with OCF_RS_VD_AGENT set to
# the wrapper (tests/libvirt/lib-vm.sh runs $OCF_RS_VD_AGENT).
#
# First, unless CONTROL=0, the layer runs with a control wrapper that execs the real agent for
# every action: a wrapper is itself visible to a few checks (the monitor's execve count under
# strace), so a mutant counts as killed only by cases that PASS with the control. A mutant is
# killed when run.sh exits non-zero, prints at least one "not ok", and at least one of those
# failures is a case that passed with the control (with CONTROL=0: any failed case).
#
# Environment:
#   MUTANTS      comma-separated list from stop,monitor,start (default: all three)
#   CONTROL      1 (default) or 0
#   REAL_AGENT   the agent the wrappers exec (default $OCF_RS_VD_AGENT, else the installed
#                /usr/lib/ocf/resource.d/rust/VirtualDomain)
#   STACK_LOCK   a file to hold with flock(1) during each layer run (machines shared with
#                other users of the same libvirtd); unset: no lock
#   MUTANTS_LOG  directory for the layer outputs (default: a new /tmp/ocf-rs-mutants.XXXXXX,
#                kept, its path printed); TESTS_DIR and TEST_FILE_TIMEOUT go to run.sh as usual
#
# Prints one line per run and a summary; exits 0 when every mutant was killed, 1 when one
# survived (or the control passed no case), 2 on bad usage.
set -u -o pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REAL_AGENT=${REAL_AGENT:-${OCF_RS_VD_AGENT:-/usr/lib/ocf/resource.d/rust/VirtualDomain}}
MUTANTS=${MUTANTS:-stop,monitor,start}
CONTROL=${CONTROL:-1}
STACK_LOCK=${STACK_LOCK:-}

usage() {
  sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
  exit "${1:-0}"
}
case ${1:-} in -h | --help) usage 0 ;; "") ;; *) usage 2 ;; esac
((EUID == 0)) || { echo "mutants.sh: run as root (the libvirt layer needs it)" >&2; exit 2; }
[[ -x $REAL_AGENT ]] || { echo "mutants.sh: $REAL_AGENT is not executable (make install)" >&2; exit 2; }
[[ $CONTROL == 0 || $CONTROL == 1 ]] || { echo "mutants.sh: CONTROL must be 0 or 1" >&2; exit 2; }
IFS=, read -r -a LIST <<<"$MUTANTS"
((${#LIST[@]})) || usage 2
for m in "${LIST[@]}"; do
  case $m in stop | monitor | start) ;; *) echo "mutants.sh: unknown mutant '$m' (stop, monitor, start)" >&2; exit 2 ;; esac
done

WRAPDIR=$(mktemp -d /tmp/ocf-rs-mutant-agents.XXXXXX)
chmod 755 "$WRAPDIR" # ocf-tester refuses an agent that not everyone can reach
CHILD=""
stop_child() { # the layer run in progress, and its children (by parent pid)
  [[ -n $CHILD ]] || return 0
  pkill -TERM -P "$CHILD" 2>/dev/null
  kill -TERM "$CHILD" 2>/dev/null
  wait "$CHILD" 2>/dev/null
  CHILD=""
}
trap 'stop_child; rm -rf -- "$WRAPDIR"' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
if [[ -n ${MUTANTS_LOG:-} ]]; then
  LOGDIR=$MUTANTS_LOG
  mkdir -p "$LOGDIR"
else
  LOGDIR=$(mktemp -d /tmp/ocf-rs-mutants.XXXXXX)
fi

# make_wrapper NAME CASE-ARM: $WRAPDIR/NAME/VirtualDomain; CASE-ARM is a sh case arm (or "").
make_wrapper() {
  mkdir -p "$WRAPDIR/$1"
  {
    printf '#!/bin/sh\n# mutant %s of VirtualDomain (tests/mutants.sh): a test-only wrapper\n' "$1"
    printf 'case $1 in\n%s\nesac\n' "$2"
    printf 'exec %q "$@"\n' "$REAL_AGENT"
  } >"$WRAPDIR/$1/VirtualDomain"
  chmod 755 "$WRAPDIR/$1/VirtualDomain"
}
make_wrapper control ""
make_wrapper stop '  stop) exit 0 ;;'
make_wrapper monitor '  monitor | status) exit 0 ;;'
make_wrapper start '  start) exit 0 ;;'

# run_layer NAME: the libvirt layer with the wrapper NAME; output in $LOGDIR/NAME.log, rc in
# RC, the sha256 of the agent the wrapper execs (read when the run starts, under the lock) in
# $LOGDIR/NAME.agent.
RC=0
run_layer() {
  local -a cmd=(bash -c 'sha256sum "$1" >"$2"; shift 2; exec "$@"' run_layer
    "$REAL_AGENT" "$LOGDIR/$1.agent"
    env "OCF_RS_VD_AGENT=$WRAPDIR/$1/VirtualDomain" "$REPO/tests/run.sh" libvirt)
  if [[ -n $STACK_LOCK ]]; then
    cmd=(flock "$STACK_LOCK" "${cmd[@]}")
  fi
  "${cmd[@]}" >"$LOGDIR/$1.log" 2>&1 &
  CHILD=$!
  wait "$CHILD"
  RC=$?
  CHILD=""
}
layer_secs() { sed -n 's/^# total time \(.*\) s$/\1/p' "$1" | tail -n 1; } # LOG
agent_sum() { cut -c1-12 "$LOGDIR/$1.agent" 2>/dev/null || echo '?'; }      # NAME
summary_of() { grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$1" | tail -n 1 || true; } # LOG
# failed_lines LOG: the lines "not ok - NAME: REASON" without the "not ok - " prefix
failed_lines() { sed -n 's/^not ok - //p' "$1"; }
# passed_names LOG: names of the cases that passed (skips excluded)
passed_names() { grep '^ok - ' "$1" | grep -v ' # SKIP ' | sed 's/^ok - //' || true; }
# killing LOG: the failed lines of LOG whose case passed with the control (all with CONTROL=0)
killing() {
  if ((CONTROL == 0)); then
    failed_lines "$1"
    return 0
  fi
  awk 'NR == FNR { pass[++n] = $0; next }
       { for (i = 1; i <= n; i++) if (index($0, pass[i] ": ") == 1) { print; break } }' \
    <(passed_names "$LOGDIR/control.log") <(failed_lines "$1")
}

echo "# layer outputs in $LOGDIR; wrappers exec $REAL_AGENT"
SURVIVED=0
if ((CONTROL)); then
  run_layer control
  cpass=$(passed_names "$LOGDIR/control.log" | wc -l)
  cfail=$(failed_lines "$LOGDIR/control.log")
  echo "control (every action passed through): run.sh rc $RC, layer $(layer_secs "$LOGDIR/control.log")s, agent $(agent_sum control): $(summary_of "$LOGDIR/control.log")"
  [[ -z $cfail ]] || cut -c1-220 <<<"$cfail" | sed 's/^/#   fails with any wrapper (not counted below): /' 
  if ((cpass == 0)); then
    echo "control: no case passed: no mutant can be judged" >&2
    exit 1
  fi
fi

declare -A VERDICT=()
for m in "${LIST[@]}"; do
  run_layer "$m"
  log=$LOGDIR/$m.log
  nfail=$(failed_lines "$log" | wc -l)
  kills=$(killing "$log")
  nkill=0
  [[ -z $kills ]] || nkill=$(wc -l <<<"$kills")
  if ((RC != 0 && nfail > 0 && nkill > 0)); then
    VERDICT[$m]="killed: $nkill case(s) failed that pass with the control ($nfail failed in all)"
  else
    VERDICT[$m]="SURVIVED: run.sh rc $RC, $nfail failed, $nkill of them beyond the control"
    SURVIVED=1
  fi
  echo "mutant $m: run.sh rc $RC, layer $(layer_secs "$log")s, agent $(agent_sum "$m"): $(summary_of "$log"): ${VERDICT[$m]}"
  [[ -z $kills ]] || cut -c1-220 <<<"$kills" | sed 's/^/#   not ok - /' 
done

echo "# summary"
for m in "${LIST[@]}"; do echo "#   $m: ${VERDICT[$m]}"; done
((SURVIVED == 0))
