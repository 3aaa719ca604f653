# shellcheck shell=bash
# Tiny test library, sourced by every tests/<layer>/*.sh file. It fails closed.
#
# A test case, one command per line:
#   t_begin "monitor fails when the state file is gone"
#   rm "$state"                              # setup: must succeed
#   assert_ra 7 "monitor after rm" FAKE1 monitor
#   t_end
#
# A case passes only when
#   - at least one assertion (assert_*) ran in it: t_end fails it with "no assertion ran"
#     otherwise;
#   - no assertion failed (the first failure decides the reason; later assertions of the
#     case return 1 without running);
#   - every other command at the case's own level succeeded: an ERR trap fails the case
#     with the command, its status and its line. A command that may fail says so
#     (`cmd || true`, or an `if`). Bash does not report a failure inside an `a && b`
#     list except in its last command, so cases never chain commands with `&&`
#     (tests/harness/selftest.sh checks every test file for that).
# A command that fails outside any case (file set-up) is reported as a failed case of
# its own ("set-up command failed at FILE:LINE").
# t_skip REASON closes a case as skipped; a skip without a reason is a failure.
#
# Each case prints exactly one TAP-like line: "ok - NAME", "not ok - NAME: REASON"
# or "ok - NAME # SKIP REASON", and appends "pass|fail|skip<TAB>FILE<TAB>NAME[<TAB>REASON]"
# to $T_RESULTS (set by tests/run.sh; a private file when a test file runs alone).
# Files exit 1 if any of their cases failed, 0 otherwise.

set -u -o pipefail -o errtrace # errtrace: the ERR trap also covers cases written in functions

T_FILE=${T_FILE:-${0##*/}}
T_REPO=${T_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
T_RESULTS=${T_RESULTS:-}
T_NAME=""      # the current case, "" when none
T_OPEN=0       # 1 while the current case awaits its verdict
T_INCASE=0     # 1 from t_begin to t_end (also after the verdict, e.g. a failed assertion)
T_NASSERT=0    # assertions run in the current case
T_DEPTH=0      # function depth of the current case's own commands
T_NFAIL=0      # failures in this file
T_EXITING=0    # 1 once the file is exiting (cleanups may fail quietly)
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

_t_record() { # VERDICT [REASON]
  local reason=${2:-}
  printf '%s\t%s\t%s\t%s\n' "$1" "$T_FILE" "$T_NAME" "${reason//$'\t'/ }" >>"$T_RESULTS"
}

t_begin() {
  if ((T_OPEN)); then
    t_fail "test case ended without a verdict (no t_end)"
  fi
  T_NAME=$1
  T_OPEN=1
  T_INCASE=1
  T_NASSERT=0
  T_DEPTH=$((${#FUNCNAME[@]} - 1))
  T_CASE_START=$EPOCHREALTIME
}

# t_assertion: counts one assertion of the open case (every assert_* calls it; so must a
# test file's own assertion helpers).
t_assertion() { ((T_OPEN)) && T_NASSERT=$((T_NASSERT + 1)); return 0; }

# t_fail REASON: closes the open case as failed. Returns 1 so it can end an || list.
t_fail() {
  ((T_OPEN)) || return 1
  local reason=${1:-failed}
  reason=${reason//$'\n'/ | }
  printf 'not ok - %s: %s\n' "$T_NAME" "$reason"
  _t_record fail "$reason"
  T_OPEN=0
  T_NFAIL=$((T_NFAIL + 1))
  return 1
}

# t_skip REASON: closes the open case as skipped; the reason is required.
t_skip() {
  ((T_OPEN)) || return 0
  local reason=${1:-}
  if [[ -z ${reason//[[:space:]]/} ]]; then
    t_fail "skipped without a reason"
    return 0
  fi
  reason=${reason//$'\n'/ | }
  printf 'ok - %s # SKIP %s\n' "$T_NAME" "$reason"
  _t_record skip "$reason"
  T_OPEN=0
}

# t_end: the verdict of the open case: pass unless it failed, or ran no assertion.
t_end() {
  T_INCASE=0
  ((T_OPEN)) || return 0
  if ((T_NASSERT == 0)); then
    t_fail "no assertion ran"
    return 0
  fi
  printf 'ok - %s\n' "$T_NAME"
  _t_record pass
  T_OPEN=0
}

# The ERR trap: a command that failed at the level of the case's own commands fails the
# case (helpers' inner commands are judged by their status at the call site; command
# substitutions and subshells by theirs, in the parent). Outside a case, a failing set-up
# command at the file's top level is a failed case of its own.
_t_on_err() { # STATUS LINE COMMAND
  local rc=$1 line=$2 cmd=$3 depth=$((${#FUNCNAME[@]} - 1)) i
  ((T_EXITING)) && return 0
  ((BASH_SUBSHELL == 0)) || return 0
  cmd=$(_t_short "$cmd")
  if ((T_INCASE)); then
    ((T_OPEN)) || return 0 # the case already has its verdict
    ((depth == T_DEPTH)) || return 0
    t_fail "command failed (rc $rc) at ${BASH_SOURCE[1]##*/}:$line: $cmd"
    return 0
  fi
  for ((i = 1; i < ${#FUNCNAME[@]}; i++)); do
    [[ ${FUNCNAME[i]} == source || ${FUNCNAME[i]} == main ]] || return 0
  done
  T_NAME="set-up command failed at ${BASH_SOURCE[1]##*/}:$line"
  T_OPEN=1
  t_fail "rc $rc: $cmd"
}
trap '_t_on_err "$?" "$LINENO" "$BASH_COMMAND"' ERR

# Seconds since t_begin, e.g. for notes about timings.
t_elapsed() { awk -v a="$T_CASE_START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

# t_on_exit CMD...: run CMD at exit of the test file (even after a failure).
t_on_exit() { T_CLEANUPS+=("$(printf '%q ' "$@")"); }

_t_exit() {
  local rc=$? i
  T_EXITING=1
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
  t_assertion
  [[ $1 == "$2" ]] && return 0
  t_fail "${3:-assert_eq}: expected '$(_t_short "$1")', got '$(_t_short "$2")'"
}

assert_match() { # REGEX TEXT MSG   (bash ERE)
  ((T_OPEN)) || return 1
  t_assertion
  [[ $2 =~ $1 ]] && return 0
  t_fail "${3:-assert_match}: /$1/ not found in '$(_t_short "$2")'"
}

assert_no_match() { # REGEX TEXT MSG
  ((T_OPEN)) || return 1
  t_assertion
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
  t_assertion
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
  t_assertion
  "$@" && return 0
  t_fail "$msg"
}

# assert_wait TIMEOUT MSG -- CMD...: CMD must succeed within TIMEOUT seconds.
assert_wait() {
  local timeout=$1 msg=$2
  shift 2
  [[ ${1:-} == -- ]] && shift
  ((T_OPEN)) || return 1
  t_assertion
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

# assert_started RSC [NODE] [TIMEOUT]: an assertion: RSC Started on NODE (default $T_NODE)
# within TIMEOUT (default 30) seconds; the reason gives the state seen at the deadline.
assert_started() {
  local node=${2:-$T_NODE} timeout=${3:-30}
  ((T_OPEN)) || return 1
  t_assertion
  wait_started "$1" "$node" "$timeout" && return 0
  t_fail "$1 not Started on $node within ${timeout}s (crm_mon: '$(rsc_state "$1")', located on: '$(rsc_location "$1")')"
}

# assert_stopped RSC [TIMEOUT]: an assertion: RSC Stopped (and located nowhere) within
# TIMEOUT (default 30) seconds.
assert_stopped() {
  local timeout=${2:-30}
  ((T_OPEN)) || return 1
  t_assertion
  wait_stopped "$1" "$timeout" && return 0
  t_fail "$1 not Stopped within ${timeout}s (crm_mon: '$(rsc_state "$1")', located on: '$(rsc_location "$1")')"
}

# failed_actions: the "Failed Resource Actions" lines of `crm_mon -1` (nothing when there
# are none); returns 1 when crm_mon does not answer, so that "no failed action" is never
# concluded from a silent crm_mon.
failed_actions() {
  local out
  out=$(crm_mon -1 2>/dev/null) || return 1
  [[ $out == *"Node List:"* ]] || return 1
  sed -n '/^Failed Resource Actions:/,/^[^[:space:]*]/{/^[[:space:]]*\*/p}' <<<"$out"
}
failed_action_shown() { # REGEX (extended): a failed action matching REGEX is shown
  local f
  f=$(failed_actions) || return 1
  grep -qE -- "$1" <<<"$f"
}
no_failed_action() { # [REGEX]: crm_mon answers and shows no failed action (matching REGEX)
  local f
  f=$(failed_actions) || return 1
  ! grep -qE -- "${1:-.}" <<<"$f"
}

# The pacemaker log of the cluster started by scripts/cluster.sh, read from a mark on.
T_PCMK_LOG=${CLUSTER_LOG_DIR:-/var/log/ocf-rs-cluster}/pacemaker.log
pcmk_log_mark() { wc -l <"$T_PCMK_LOG"; }                   # the number of lines now
pcmk_log_since() { tail -n "+$(($1 + 1))" "$T_PCMK_LOG"; }  # MARK: the lines written after MARK
pcmk_log_has() { grep -qE -- "$2" <<<"$(pcmk_log_since "$1")"; }   # MARK REGEX (extended)
pcmk_log_count() { grep -cE -- "$2" <<<"$(pcmk_log_since "$1")"; } # MARK REGEX: prints the count
