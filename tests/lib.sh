# shellcheck shell=bash
# Tiny test library, sourced by every tests/<layer>/*.sh file.
#
# A test case:
#   t_begin "monitor fails when the state file is gone"
#   assert_eq 1 "$(failcount FAKE1)" "failcount" || true
#   t_end                         # "ok - NAME" unless an assertion failed
#
# Each case prints exactly one TAP-like line: "ok - NAME", "not ok - NAME: REASON"
# or "ok - NAME # SKIP REASON", and appends "pass|fail|skip<TAB>FILE<TAB>NAME" to
# $T_RESULTS (set by tests/run.sh; a private file when a test file runs alone).
# The first failed assertion decides the verdict and closes the case; later
# assertions of that case return 1 without running, so `a && b && c` and
# `a || true; b || true` both report the first reason only.
# Files exit 1 if any of their cases failed, 0 otherwise.

set -u -o pipefail

T_FILE=${T_FILE:-${0##*/}}
T_REPO=${T_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
T_RESULTS=${T_RESULTS:-}
T_NAME=""      # the open case, "" when none
T_OPEN=0       # 1 while a case awaits its verdict
T_NFAIL=0      # failures in this file
T_CLEANUPS=()  # commands run at exit, last registered first

if [[ -z $T_RESULTS ]]; then
  T_RESULTS=$(mktemp /tmp/ocf-rs-results.XXXXXX)
  T_OWN_RESULTS=1
else
  T_OWN_RESULTS=0
fi

# Per-file scratch directory; removed at exit.
T_TMP=$(mktemp -d /tmp/ocf-rs-test.XXXXXX)

t_note() { printf '# %s\n' "$*"; }

_t_record() { # VERDICT
  printf '%s\t%s\t%s\n' "$1" "$T_FILE" "$T_NAME" >>"$T_RESULTS"
}

t_begin() {
  if ((T_OPEN)); then
    t_fail "test case ended without a verdict (no t_end)"
  fi
  T_NAME=$1
  T_OPEN=1
  T_CASE_START=$EPOCHREALTIME
}

t_pass() {
  ((T_OPEN)) || return 0
  printf 'ok - %s\n' "$T_NAME"
  _t_record pass
  T_OPEN=0
}

# t_fail REASON: closes the open case as failed. Returns 1 so it can end an && chain.
t_fail() {
  ((T_OPEN)) || return 1
  local reason=${1:-failed}
  reason=${reason//$'\n'/ | }
  printf 'not ok - %s: %s\n' "$T_NAME" "$reason"
  _t_record fail
  T_OPEN=0
  T_NFAIL=$((T_NFAIL + 1))
  return 1
}

t_skip() {
  ((T_OPEN)) || return 0
  printf 'ok - %s # SKIP %s\n' "$T_NAME" "${1:-}"
  _t_record skip
  T_OPEN=0
}

# t_end: passes the open case unless an assertion already failed it.
t_end() { t_pass; }

# Seconds since t_begin, e.g. for notes about timings.
t_elapsed() { awk -v a="$T_CASE_START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

# t_on_exit CMD...: run CMD at exit of the test file (even after a failure).
t_on_exit() { T_CLEANUPS+=("$(printf '%q ' "$@")"); }

_t_exit() {
  local rc=$? i
  for ((i = ${#T_CLEANUPS[@]} - 1; i >= 0; i--)); do
    eval "${T_CLEANUPS[i]}" || true
  done
  if ((T_OPEN)); then
    t_fail "test file exited (rc $rc) before the case reached a verdict"
  fi
  rm -rf -- "$T_TMP"
  ((T_OWN_RESULTS)) && rm -f -- "$T_RESULTS"
  ((T_NFAIL == 0 && rc == 0)) && exit 0
  exit 1
}
trap _t_exit EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# ---- assertions: return 0 on success; on failure fail the case and return 1 ----

_t_short() { # TEXT -> at most 300 characters on one line
  local s=${1//$'\n'/ | }
  ((${#s} > 300)) && s="${s:0:300}..."
  printf '%s' "$s"
}

assert_eq() { # EXPECTED ACTUAL MSG
  ((T_OPEN)) || return 1
  [[ $1 == "$2" ]] && return 0
  t_fail "${3:-assert_eq}: expected '$(_t_short "$1")', got '$(_t_short "$2")'"
}

assert_match() { # REGEX TEXT MSG   (bash ERE)
  ((T_OPEN)) || return 1
  [[ $2 =~ $1 ]] && return 0
  t_fail "${3:-assert_match}: /$1/ not found in '$(_t_short "$2")'"
}

assert_no_match() { # REGEX TEXT MSG
  ((T_OPEN)) || return 1
  [[ $2 =~ $1 ]] || return 0
  t_fail "${3:-assert_no_match}: /$1/ unexpectedly matched '$(_t_short "${BASH_REMATCH[0]}")'"
}

# assert_rc EXPECTED MSG -- CMD...: runs CMD, output in $T_OUT (stdout+stderr), rc in $T_RC.
T_OUT=""
T_RC=0
assert_rc() {
  local expected=$1 msg=$2
  shift 2
  [[ ${1:-} == -- ]] && shift
  ((T_OPEN)) || return 1
  T_OUT=$("$@" 2>&1)
  T_RC=$?
  [[ $T_RC == "$expected" ]] && return 0
  t_fail "$msg: expected rc $expected, got $T_RC; output: $(_t_short "$T_OUT")"
}

# assert_true MSG -- CMD...: CMD must succeed (its output is not captured).
assert_true() {
  local msg=$1
  shift
  [[ ${1:-} == -- ]] && shift
  ((T_OPEN)) || return 1
  "$@" && return 0
  t_fail "$msg"
}

# assert_wait TIMEOUT MSG -- CMD...: CMD must succeed within TIMEOUT seconds.
assert_wait() {
  local timeout=$1 msg=$2
  shift 2
  [[ ${1:-} == -- ]] && shift
  ((T_OPEN)) || return 1
  wait_until "$timeout" "$@" && return 0
  t_fail "$msg (not within ${timeout}s)"
}

# ---- polling ----

# wait_until TIMEOUT_S CMD...: runs CMD every 0.05 s until it succeeds (0) or
# TIMEOUT_S seconds have passed (1). CMD runs at least once, and once more at
# the deadline, so a slow poll never loses the last chance.
wait_until() {
  local timeout=$1
  shift
  local deadline
  deadline=$(awk -v n="$EPOCHREALTIME" -v t="$timeout" 'BEGIN { printf "%.3f", n + t }')
  while :; do
    "$@" && return 0
    awk -v n="$EPOCHREALTIME" -v d="$deadline" 'BEGIN { exit !(n < d) }' || break
    sleep 0.05
  done
  return 1
}

# ---- cluster helpers (one-node cluster started by tests/run.sh) ----

T_NODE=${CLUSTER_NODE_NAME:-node1}

# rsc_state RSC: prints what `crm_mon -1 -r` says about RSC after "(class:provider:type):",
# e.g. "Started node1", "Stopped (disabled)", "FAILED node1", "Starting node1".
# Prints nothing and returns 1 when the resource is not in the status.
rsc_state() {
  local out line
  out=$(crm_mon -1 -r 2>/dev/null) || return 1
  line=$(grep -E "^[[:space:]]*\* $1[[:space:]]+\(" <<<"$out" | head -n 1)
  [[ -n $line ]] || return 1
  line=${line#*):}
  line=${line#"${line%%[![:space:]]*}"}
  printf '%s\n' "$line"
}

# rsc_location RSC: the node(s) `crm_resource --locate` reports RSC running on, or nothing.
rsc_location() {
  crm_resource --locate -r "$1" 2>/dev/null | sed -n 's/^resource .* is running on: \([^ ]*\).*/\1/p'
}

rsc_is_started() { # RSC [NODE]
  local node=${2:-$T_NODE}
  [[ $(rsc_state "$1") == "Started $node" ]] && [[ $(rsc_location "$1") == "$node" ]]
}

rsc_is_stopped() { # RSC
  local s
  s=$(rsc_state "$1") || return 1
  [[ $s == Stopped* ]] && [[ -z $(rsc_location "$1") ]]
}

rsc_is_gone() { # RSC: not in the configuration (cibadmin: 105 = no such object) nor in the status
  cibadmin -Q --xpath "//primitive[@id='$1']" >/dev/null 2>&1
  [[ $? == 105 ]] && crm_mon -1 >/dev/null 2>&1 && ! rsc_state "$1" >/dev/null
}

# wait_started RSC [NODE] [TIMEOUT]; wait_stopped RSC [TIMEOUT]; wait_gone RSC [TIMEOUT]
wait_started() { wait_until "${3:-30}" rsc_is_started "$1" "${2:-$T_NODE}"; }
wait_stopped() { wait_until "${2:-30}" rsc_is_stopped "$1"; }
wait_gone() { wait_until "${2:-30}" rsc_is_gone "$1"; }

# failcount RSC [NODE]: the fail count as a number (0 when none).
failcount() {
  local v
  v=$(crm_failcount -G -Q -r "$1" -N "${2:-$T_NODE}" 2>/dev/null) || return 1
  printf '%s\n' "${v:-0}"
}

failcount_is() { [[ $(failcount "$2" "${3:-$T_NODE}") == "$1" ]]; } # N RSC [NODE]

cluster_running() { "$T_REPO/scripts/cluster.sh" status >/dev/null 2>&1; }
cluster_idle() { "$T_REPO/scripts/cluster.sh" wait-idle "${1:-30}" >/dev/null 2>&1; }
