#!/usr/bin/env bash
# Runs the test files of the given layers: tests/run.sh LAYER...
#
#   tests/run.sh conformance           ocf-tester, crm_resource, pcs against the installed agents
#   tests/run.sh cluster               the agents under a real one-node cluster
#   tests/run.sh conformance cluster   both, in that order
#   tests/run.sh migration             live migration between two libvirt hosts in namespaces
#   tests/run.sh scale                 a three-node cluster in namespaces: a dozen VMs, a guest
#                                      node, drain and node loss, with both agent sets
#
# Every tests/<layer>/*.sh runs in its own bash process under `timeout`
# (TEST_FILE_TIMEOUT seconds, default 600; the scale layer's files TEST_SCALE_TIMEOUT, default
# 900) and prints TAP-like lines
# ("ok - NAME", "not ok - NAME: REASON"). The `cluster` layer gets one fresh
# cluster (scripts/cluster.sh start) before its first file; it is stopped after
# the layer, also on failure or interrupt, and the tail of the pacemaker log is
# printed when a cluster test failed. A cluster that was already running
# before this script is used as is and left running. The `migration` and `scale` layers
# need only the guests: their files start their own libvirt hosts in network
# namespaces (scripts/libvirt-hosts.sh), which are taken down after the layer
# and at exit, also when a file was killed before it could clean up.
#
# A layer fails when it ran no case, or skipped every case it ran (a layer that is
# asked for must prove something); the reasons of all skips are listed at the end.
# Ends with one line "N passed, N failed, N skipped"; exits 1 if anything failed.
set -u -o pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TESTS=${TESTS_DIR:-$REPO/tests} # TESTS_DIR: another tree of <layer>/*.sh (to test this runner)
FILE_TIMEOUT=${TEST_FILE_TIMEOUT:-600}
SCALE_TIMEOUT=${TEST_SCALE_TIMEOUT:-900}
PCMK_LOG=${CLUSTER_LOG_DIR:-/var/log/ocf-rs-cluster}/pacemaker.log
CLUSTER=$REPO/scripts/cluster.sh

usage() {
  sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
  exit "${1:-0}"
}
(($#)) || usage 2
case $1 in -h | --help) usage 0 ;; esac
for layer in "$@"; do
  [[ -d $TESTS/$layer ]] || {
    echo "run.sh: no such test layer: $layer (no directory $TESTS/$layer)" >&2
    exit 2
  }
done

RESULTS=$(mktemp /tmp/ocf-rs-results.XXXXXX)
CLUSTER_OURS=0
LIBVIRT=$REPO/scripts/libvirt.sh
LIBVIRT_OURS=0
note() { printf '# %s\n' "$*"; }
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }
count() { grep -c "^$1"$'\t' "$RESULTS"; } # pass|fail|skip
count_layer() { grep -cE "^$1"$'\t'"$2(/|"$'\t'")" "$RESULTS"; } # pass|fail|skip LAYER
record_fail() { # FILE NAME REASON
  printf 'not ok - %s: %s\n' "$2" "$3"
  printf 'fail\t%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RESULTS"
}

cluster_start() {
  if "$CLUSTER" status >/dev/null 2>&1; then
    note "cluster already running: using it as is and leaving it running"
    return 0
  fi
  local t0=$EPOCHREALTIME
  CLUSTER_OURS=1 # from now on, stop it whatever happens
  if ! "$CLUSTER" start 2>&1 | sed 's/^/# /'; then
    return 1
  fi
  note "cluster started in $(elapsed "$t0") s"
}

cluster_stop() {
  ((CLUSTER_OURS)) || return 0
  CLUSTER_OURS=0
  local t0=$EPOCHREALTIME
  "$CLUSTER" stop 2>&1 | sed 's/^/# /'
  note "cluster stopped in $(elapsed "$t0") s"
}

# The libvirt and cluster layers need libvirtd and the tiny guest (built once per run;
# build-guest.sh keeps it while its inputs are unchanged).
libvirt_start() {
  if ! "$REPO/scripts/build-guest.sh" 2>&1 | sed 's/^/# /'; then
    return 1
  fi
  if "$LIBVIRT" status >/dev/null 2>&1; then
    return 0
  fi
  local t0=$EPOCHREALTIME
  LIBVIRT_OURS=1
  "$LIBVIRT" start 2>&1 | sed 's/^/# /' || return 1
  "$LIBVIRT" status >/dev/null 2>&1 || return 1
  note "libvirtd started in $(elapsed "$t0") s"
}

HOSTS_UP=0
hosts_down() {
  ((HOSTS_UP)) || return 0
  HOSTS_UP=0
  "$REPO/scripts/libvirt-hosts.sh" down 2>&1 | sed 's/^/# /'
}

libvirt_stop() {
  ((LIBVIRT_OURS)) || return 0
  LIBVIRT_OURS=0
  "$LIBVIRT" stop 2>&1 | sed 's/^/# /'
}

dump_pacemaker_log() {
  [[ -r $PCMK_LOG ]] || return 0
  note "---- last 80 lines of $PCMK_LOG ----"
  tail -n 80 "$PCMK_LOG" | sed 's/^/#   /'
  note "---- end of $PCMK_LOG ----"
}

finish() {
  hosts_down
  cluster_stop
  libvirt_stop
  rm -f -- "$RESULTS"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

run_file() { # LAYER FILE
  local layer=$1 file=$2 rel=$1/${2##*/} before after rc t0 limit=$FILE_TIMEOUT
  [[ $layer == scale ]] && limit=$SCALE_TIMEOUT
  before=$(wc -l <"$RESULTS")
  t0=$EPOCHREALTIME
  note "$rel"
  T_RESULTS=$RESULTS T_FILE=$rel T_REPO=$REPO \
    timeout --kill-after=10 "$limit" bash "$file"
  rc=$?
  after=$(wc -l <"$RESULTS")
  if ((rc == 124 || rc == 137)); then
    record_fail "$rel" "$rel" "timed out after ${limit}s"
  elif ((after == before)); then
    record_fail "$rel" "$rel" "ran no test case (exit code $rc)"
  elif ((rc != 0)) && ! tail -n +"$((before + 1))" "$RESULTS" | grep -q $'^fail\t'; then
    record_fail "$rel" "$rel" "exited with code $rc although no case failed"
  fi
  note "$rel took $(elapsed "$t0") s"
}

T0=$EPOCHREALTIME
for layer in "$@"; do
  files=("$TESTS/$layer"/*.sh)
  [[ -e ${files[0]} ]] || {
    record_fail "$layer" "layer $layer" "no test files in $TESTS/$layer"
    continue
  }
  fails_before=$(count fail)
  if [[ $layer == cluster || $layer == libvirt ]]; then
    if ! libvirt_start; then
      record_fail "$layer" "start libvirtd for layer $layer" "scripts/libvirt.sh start failed"
      continue
    fi
  fi
  if [[ $layer == migration || $layer == scale ]]; then
    if ! "$REPO/scripts/build-guest.sh" 2>&1 | sed 's/^/# /'; then
      record_fail "$layer" "build the guest for layer $layer" "scripts/build-guest.sh failed"
      continue
    fi
    HOSTS_UP=1
  fi
  if [[ $layer == cluster ]]; then
    if ! cluster_start; then
      record_fail "$layer" "start the cluster for layer $layer" "scripts/cluster.sh start failed"
      dump_pacemaker_log
      cluster_stop
      continue
    fi
  fi
  for f in "${files[@]}"; do
    run_file "$layer" "$f"
  done
  if [[ $layer == cluster ]]; then
    (($(count fail) > fails_before)) && dump_pacemaker_log
    cluster_stop
  fi
  [[ $layer == migration || $layer == scale ]] && hosts_down
  passed=$(count_layer pass "$layer")
  skipped=$(count_layer skip "$layer")
  if (($(count_layer fail "$layer") == 0 && passed == 0)); then
    record_fail "$layer" "layer $layer" "no case passed ($skipped skipped): a layer that runs must prove something"
  fi
done

passed=$(count pass)
failed=$(count fail)
skipped=$(count skip)
if ((skipped > 0)); then
  note "skipped cases and their reasons:"
  awk -F'\t' '$1 == "skip" { printf "#   %s: %s: %s\n", $2, $3, $4 }' "$RESULTS"
fi
note "total time $(elapsed "$T0") s"
echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0 && passed > 0))
