# shellcheck shell=bash
# Helpers shared by the test files that drive libvirt guests (tests/libvirt, tests/cluster,
# tests/migration). Sourced after tests/lib.sh; defines functions only.
#
#   virsh_ ARGS...          virsh against $URI (default qemu:///system), bounded to 20 s
#   now; since T0           $EPOCHREALTIME; seconds since T0 (two decimals)
#   ms_since T0             milliseconds since T0
#   lt A B                  A < B (decimals)
#   not CMD...              CMD fails (for assert_true MSG -- not CMD...)
#   assert_lt VALUE LIMIT MSG
#   console_size FILE       bytes in FILE (0 when missing): a mark
#   console_since FILE MARK what FILE got after MARK, carriage returns removed
#   console_has FILE MARK REGEX; console_count FILE MARK REGEX   (extended regex)
#
# Text is captured before grep reads it: with pipefail, `producer | grep -q` fails when grep
# exits at an early match and the producer dies of SIGPIPE.

URI=${URI:-qemu:///system}

virsh_() { timeout 20 virsh -q -c "$URI" "$@"; }
now() { printf '%s\n' "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }
ms_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", (b - a) * 1000 }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
not() { ! "$@"; }

assert_lt() { # VALUE LIMIT MSG
  ((T_OPEN)) || return 1
  t_assertion
  lt "$1" "$2" && return 0
  t_fail "${3:-assert_lt}: $1 is not below $2"
}

console_size() { if [[ -e $1 ]]; then stat -c %s "$1"; else echo 0; fi; }
console_since() { [[ -e $1 ]] || return 0; tail -c "+$(($2 + 1))" "$1" | tr -d '\r'; }
console_has() { grep -qE -- "$3" <<<"$(console_since "$1" "$2")"; }
console_count() { grep -cE -- "$3" <<<"$(console_since "$1" "$2")"; }
