#!/usr/bin/env bash
# Self-test of the test harness (tests/lib.sh, tests/run.sh): it must fail closed.
# Runs without root and without daemons (part of `make test-unit`).
#
#   1. Cases that must be reported as failures: a failing set-up command (plain and
#      inside a function), a case with no assertion (also the `v=$(false) && assert`
#      shape), a skip without a reason, a failing command outside any case, a case
#      left open at exit; and an all-skipped layer, a layer whose files run no case, a
#      layer without files. Cases that must pass: real assertions, a command allowed to
#      fail (`|| true`, `if`), a helper whose inner commands fail but which returns 0.
#   2. Every test file under tests/<layer>/ writes one command per line inside its
#      cases: no `&&` list (bash reports no failure of a command that is not the last
#      of an `&&` list, so such a chain could hide a failed set-up step).
#
# Prints "ok - ..."/"not ok - ..." per check; exits 1 if any check failed.
set -u -o pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TMP=$(mktemp -d /tmp/ocf-rs-selftest.XXXXXX)
trap 'rm -rf -- "$TMP"' EXIT
NFAIL=0
NPASS=0

check() { # NAME CONDITION-CMD...
  local name=$1
  shift
  if "$@"; then
    printf 'ok - %s\n' "$name"
    NPASS=$((NPASS + 1))
  else
    printf 'not ok - %s\n' "$name"
    NFAIL=$((NFAIL + 1))
  fi
}
has_line() { grep -qxF -- "$2" <<<"$1"; }        # OUTPUT LINE (the whole line)
has_match() { grep -qE -- "$2" <<<"$1"; }         # OUTPUT REGEX

# ---- 1. the harness's verdicts, through tests/run.sh ----
mk() { # LAYER/FILE.sh BODY
  mkdir -p "$TMP/tests/${1%/*}"
  printf 'source %q\n%s\n' "$REPO/tests/lib.sh" "$2" >"$TMP/tests/$1"
}

mk mixed/cases.sh '
t_begin "an assertion that holds"
assert_eq 1 1 "one"
t_end

t_begin "a failing set-up command"
v=$(false)
assert_eq 1 1 "never reached as proof"
t_end

t_begin "a failing set-up command ahead of an && chain"
v=$(false) && assert_eq 1 2 "never runs"
t_end

t_begin "no assertion at all"
true
t_end

t_begin "a failed assertion, later commands do not change the verdict"
assert_eq 1 2 "two"
assert_eq 1 1 "one"
false
t_end

in_function() {
  t_begin "a failing command in a case written in a function"
  grep -q never-there /dev/null
  assert_eq 1 1 "one"
  t_end
}
in_function

helper() { grep -q never-there /dev/null; return 0; }
t_begin "commands allowed to fail, and a helper that returns 0"
false || true
if false; then :; fi
helper
x=$(false; echo fine)
assert_eq fine "$x" "command substitution result"
t_end

t_begin "a skip without a reason"
t_skip
t_end

t_begin "a skip with a reason"
t_skip "the reason"
t_end

false

t_begin "left open when the file exits"
assert_eq 1 1 "one"
'

mk allskip/skips.sh '
t_begin "skipped one"
t_skip "not here"
t_end
t_begin "skipped two"
t_skip "not here either"
t_end
'

mk nocase/empty.sh 'true'
mkdir -p "$TMP/tests/nofiles"

out=$(TESTS_DIR=$TMP/tests "$REPO/tests/run.sh" mixed allskip nocase nofiles 2>&1)
rc=$?

check "run.sh exits non-zero" test "$rc" -ne 0
check "a passing case passes" has_line "$out" "ok - an assertion that holds"
check "a failing set-up command fails the case, naming it and its line" \
  has_match "$out" '^not ok - a failing set-up command: command failed \(rc 1\) at cases\.sh:[0-9]+: v=\$\(false\)$'
check "v=\$(false) && assert... fails: no assertion ran" \
  has_line "$out" "not ok - a failing set-up command ahead of an && chain: no assertion ran"
check "a case with no assertion fails" has_line "$out" "not ok - no assertion at all: no assertion ran"
check "the first failed assertion gives the reason" \
  has_line "$out" "not ok - a failed assertion, later commands do not change the verdict: two: expected '1', got '2'"
check "a failing command in a case inside a function fails it" \
  has_match "$out" '^not ok - a failing command in a case written in a function: command failed \(rc 1\) at cases\.sh:[0-9]+: grep -q never-there /dev/null$'
check "commands allowed to fail and helpers returning 0 do not fail a case" \
  has_line "$out" "ok - commands allowed to fail, and a helper that returns 0"
check "a skip without a reason fails" has_line "$out" "not ok - a skip without a reason: skipped without a reason"
check "a skip with a reason is a skip" has_line "$out" "ok - a skip with a reason # SKIP the reason"
check "a failing command outside any case is a failure" \
  has_match "$out" '^not ok - set-up command failed at cases\.sh:[0-9]+: rc 1: false$'
check "a case left open at exit fails" \
  has_match "$out" '^not ok - left open when the file exits: test file exited \(rc [0-9]+\) before the case reached a verdict$'
check "a layer that skipped every case fails" \
  has_line "$out" "not ok - layer allskip: no case passed (2 skipped): a layer that runs must prove something"
check "the reasons of the skips are listed" has_match "$out" '^#   allskip/skips\.sh: skipped two: not here either$'
check "a test file that ran no case fails" has_match "$out" '^not ok - nocase/empty\.sh: ran no test case'
check "a layer without test files fails" has_match "$out" '^not ok - layer nofiles: no test files in '
check "the summary counts the failures" has_line "$out" "2 passed, 11 failed, 3 skipped"

# A layer whose cases all pass: run.sh exits 0.
mk good/fine.sh '
t_begin "fine"
assert_true "true is true" -- true
t_end
'
out_good=$(TESTS_DIR=$TMP/tests "$REPO/tests/run.sh" good 2>&1)
check "a layer whose cases pass exits 0" test $? -eq 0
check "  ... and says so" has_line "$out_good" "1 passed, 0 failed, 0 skipped"

# ---- 2. no && lists inside the cases of the real test files ----
# Inside a case (t_begin .. t_end), a line that ends with && or that has && outside
# [[ ]] and outside quotes is refused. Helper functions (outside cases) may use &&.
chains=$(
  for f in "$REPO"/tests/*/*.sh; do
    awk -v f="${f#"$REPO"/}" '
      /^[[:space:]]*t_begin[[:space:]]/ { incase = 1 }
      incase {
        line = $0
        sub(/[[:space:]]#.*$/, "", line)                 # trailing comment
        gsub(/"([^"\\]|\\.)*"/, "\"\"", line)             # double-quoted strings
        gsub(/\047[^\047]*\047/, "\047\047", line)        # single-quoted strings
        gsub(/\[\[[^]]*\]\]/, "[[]]", line)               # [[ ... ]]
        if (line ~ /&&/) printf "%s:%d: %s\n", f, NR, $0
      }
      /^[[:space:]]*t_end([[:space:]]|$)/ { incase = 0 }
    ' "$f"
  done
)
check "test cases chain no commands with && (one command per line)" test -z "$chains"
[[ -z $chains ]] || sed 's/^/#   /' <<<"$chains"

printf '%d passed, %d failed\n' "$NPASS" "$NFAIL"
((NFAIL == 0))
