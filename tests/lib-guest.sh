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

# domain_state DOMAIN     libvirt's state of DOMAIN ("running", "shut off", ...), "absent" when
#                         libvirt has no such domain, "error: ..." when libvirt does not answer
# domain_off DOMAIN       DOMAIN is shut off or absent (and libvirt answered)
domain_state() {
  local out
  if out=$(virsh_ domstate "$1" 2>&1); then
    printf '%s\n' "${out%%$'\n'*}"
  elif [[ $out == *"ailed to get domain"* || $out == *"omain not found"* ]]; then
    echo absent
  else
    printf 'error: %s\n' "${out//$'\n'/ }"
  fi
}
domain_off() { local s; s=$(domain_state "$1"); [[ $s == absent || $s == "shut off" ]]; }

# xmllint_dtd XML         XML is valid against ra-api-1.dtd, found the way ocf-tester finds it
#                         (relative to the working directory /usr/share/resource-agents)
xmllint_dtd() { (cd /usr/share/resource-agents && xmllint --noout --valid -) <<<"$1"; }

# The guest's console counter (scripts/build-guest.sh: "GUEST-HEARTBEAT n" every 2 s, n = 1, 2, ...):
#   console_heartbeat FILE MARK           the last heartbeat number after MARK (0 when none)
#   console_heartbeat_above FILE MARK N   that number is above N (the guest is still counting)
#   console_heartbeat_breaks FILE MARK    prints what is wrong with the counter after MARK: "no
#                                         heartbeat", or each line that is not the one before plus
#                                         one ("after 22 came 1": the guest rebooted); nothing when
#                                         it counted up by one (assert_eq "" "$(...)" MSG)
console_heartbeat() {
  local n
  n=$(sed -n 's/^GUEST-HEARTBEAT \([0-9][0-9]*\).*/\1/p' <<<"$(console_since "$1" "$2")" | tail -n 1)
  printf '%s\n' "${n:-0}"
}
console_heartbeat_above() { (($(console_heartbeat "$1" "$2") > $3)); }
console_heartbeat_breaks() {
  sed -n 's/^GUEST-HEARTBEAT \([0-9][0-9]*\).*/\1/p' <<<"$(console_since "$1" "$2")" |
    awk 'NR > 1 && $1 != prev + 1 { printf "after %s came %s; ", prev, $1 } { prev = $1 }
      END { if (NR == 0) printf "no heartbeat" }'
}
