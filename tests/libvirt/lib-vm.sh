# shellcheck shell=bash
# Helpers for tests/libvirt/*.sh: the INSTALLED ocf:rust:VirtualDomain run the way
# Pacemaker's executor runs it (clean environment, OCF_RESKEY_* parameters, CRM_meta_*),
# against the test libvirtd (qemu:///system) and the tiny guest of scripts/build-guest.sh.
#
#   vm_make NAME [make-domain.sh options]   $T_TMP/NAME.xml, console $T_TMP/NAME.console;
#                                           NAME is destroyed/undefined at exit
#   ra NAME ACTION [KEY=VALUE | -KEY]...    runs the agent for resource NAME: RA_RC, RA_OUT,
#                                           RA_ERR, RA_REASON (last exit reason), RA_SECS
#   assert_ra RC MSG NAME ACTION [...]      ra + rc check
#
# KEY is a parameter (config, force_stop, CRM_meta_timeout, ...) unless it starts with
# OCF_ or HA_ (or is PATH); -KEY removes it from the defaults (config, hypervisor, CRM_meta_timeout).
# Not a test file itself (run.sh runs *.sh: this one defines no case and sources lib.sh
# only through the test files).
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

AGENT=/usr/lib/ocf/resource.d/rust/VirtualDomain
URI=qemu:///system
LIBVIRT_SH=$T_REPO/scripts/libvirt.sh
MAKE_DOMAIN=$T_REPO/scripts/make-domain.sh
RSCTMP=$T_TMP/rsctmp
mkdir -p "$RSCTMP"
_VM_BASE=${T_FILE##*/}
_VM_BASE=${_VM_BASE%.sh}
VM_NAMES=()
VM_EXTRA_CLEANUP=() # commands (strings) run before the domains are removed

vm_name() { printf 'ocfrs-t-%s-%s\n' "$_VM_BASE" "$1"; } # N -> unique domain name

virsh_() { timeout 20 virsh -q -c "$URI" "$@"; }

# ---- elapsed time / numbers ----
now() { printf '%s\n' "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }
not() { ! "$@"; } # for assert_true MSG -- not CMD...
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; } # A < B (decimals)

assert_lt() { # VALUE LIMIT MSG
  ((T_OPEN)) || return 1
  lt "$1" "$2" && return 0
  t_fail "${3:-assert_lt}: $1 is not below $2"
}

# ---- running the agent ----
RA_WRAP=() # a command (e.g. strace ...) the agent runs under, inside the clean environment
RA_RC=0 RA_OUT="" RA_ERR="" RA_REASON="" RA_SECS=0
ra() { # NAME ACTION [KEY=VALUE | -KEY]...
  local name=$1 action=$2 arg key t0
  shift 2
  local -A env=(
    [OCF_ROOT]=/usr/lib/ocf
    [OCF_RESOURCE_INSTANCE]=$name
    [OCF_RESKEY_config]=$T_TMP/$name.xml
    [OCF_RESKEY_hypervisor]=$URI
    [OCF_RESKEY_CRM_meta_timeout]=30000
    [HA_RSCTMP]=$RSCTMP
    [PATH]=$PATH
  )
  for arg in "$@"; do
    if [[ $arg == -* ]]; then
      key=${arg#-}
      [[ $key == OCF_* || $key == HA_* || $key == PATH ]] || key=OCF_RESKEY_$key
      unset "env[$key]"
    else
      key=${arg%%=*}
      [[ $key == OCF_* || $key == HA_* || $key == PATH ]] || key=OCF_RESKEY_$key
      env[$key]=${arg#*=}
    fi
  done
  local -a list=()
  for key in "${!env[@]}"; do list+=("$key=${env[$key]}"); done
  t0=$EPOCHREALTIME
  env -i "${list[@]}" "${RA_WRAP[@]}" "$AGENT" "$action" >"$T_TMP/ra.out" 2>"$T_TMP/ra.err" </dev/null
  RA_RC=$?
  RA_SECS=$(since "$t0")
  RA_OUT=$(cat "$T_TMP/ra.out")
  RA_ERR=$(cat "$T_TMP/ra.err")
  RA_REASON=$(sed -n 's/^ocf-exit-reason://p' "$T_TMP/ra.err" | tail -n 1)
  return 0
}

assert_ra() { # EXPECTED_RC MSG NAME ACTION [KEY=VALUE | -KEY]...
  ((T_OPEN)) || return 1
  local expected=$1 msg=$2
  shift 2
  ra "$@"
  [[ $RA_RC == "$expected" ]] && return 0
  t_fail "$msg: expected rc $expected, got $RA_RC after ${RA_SECS}s; stderr: $(_t_short "$RA_ERR")"
}

# ---- domains ----

# dom_state NAME: virsh domstate, "absent" when libvirt knows no such domain, "error: ..." else.
dom_state() {
  local out
  if out=$(virsh_ domstate "$1" 2>&1); then
    printf '%s\n' "${out%%$'\n'*}"
  elif [[ $out == *"ailed to get domain"* || $out == *"not found"* ]]; then
    echo absent
  else
    printf 'error: %s\n' "${out//$'\n'/ }"
  fi
}
dom_is() { [[ $(dom_state "$1") == "$2" ]]; } # NAME STATE
dom_id() { virsh_ domid "$1" 2>/dev/null; }

# qemu_pid NAME: the live qemu process of domain NAME (by its command line), if any.
qemu_pid() {
  local p
  for p in $(pgrep -f -- "-name guest=$1,"); do
    [[ $(cat "/proc/$p/comm" 2>/dev/null) == qemu-system* ]] || continue
    grep -q '^State:[[:space:]]*Z' "/proc/$p/status" 2>/dev/null && continue
    echo "$p"
    return 0
  done
  return 1
}

has_qemu() { qemu_pid "$1" >/dev/null; } # NAME

console() { printf '%s\n' "$T_TMP/$1.console"; }
console_has() { grep -qE -- "$2" "$(console "$1")" 2>/dev/null; } # NAME REGEX
console_count() { grep -cE -- "$2" "$(console "$1")" 2>/dev/null; } # NAME REGEX
wait_ready() { wait_until "${2:-60}" console_has "$1" '^GUEST-READY'; } # NAME [TIMEOUT]
last_heartbeat() { # NAME -> the last GUEST-HEARTBEAT number (0 if none)
  local n
  n=$(sed -n 's/^GUEST-HEARTBEAT \([0-9]*\).*/\1/p' "$(console "$1")" 2>/dev/null | tail -n 1)
  echo "${n:-0}"
}
heartbeat_over() { (($(last_heartbeat "$1") > $2)); } # NAME N
qemu_log() { printf '/var/log/libvirt/qemu/%s.log\n' "$1"; }
qemu_log_lines() { local n; n=$(wc -l <"$(qemu_log "$1")" 2>/dev/null) || n=0; echo "${n:-0}"; }
qemu_log_since() { tail -n +"$(($2 + 1))" "$(qemu_log "$1")" 2>/dev/null; } # NAME LINES

_vm_forget() { # NAME: no domain, definition, process, console or log left
  local name=$1 pid
  virsh_ destroy "$name" >/dev/null 2>&1
  virsh_ undefine --managed-save --snapshots-metadata --nvram "$name" >/dev/null 2>&1 ||
    virsh_ undefine "$name" >/dev/null 2>&1
  if pid=$(qemu_pid "$name"); then
    kill -KILL "$pid" 2>/dev/null
    t_note "cleanup: killed a stray qemu ($pid) of $name"
  fi
  rm -f -- "$(console "$name")" "$(qemu_log "$name")"
  return 0
}

# vm_make NAME [make-domain.sh options]: writes $T_TMP/NAME.xml (console $T_TMP/NAME.console)
# after removing any leftover domain of that name.
vm_make() {
  local name=$1
  shift
  _vm_forget "$name"
  VM_NAMES+=("$name")
  "$MAKE_DOMAIN" "$name" "$T_TMP/$name.xml" --console "$(console "$name")" "$@" >/dev/null
}

# libvirtd: made to answer again (SIGCONT if stopped, started if gone).
libvirtd_pid() {
  local p
  p=$(tr -dc '0-9' </run/ocf-rs-libvirt/libvirtd.pid 2>/dev/null)
  if [[ -n $p && $(cat "/proc/$p/comm" 2>/dev/null) == libvirtd ]]; then echo "$p"; return 0; fi
  pgrep -x libvirtd | head -n 1
}
libvirtd_restore() {
  local p
  for p in $(pgrep -x libvirtd); do kill -CONT "$p" 2>/dev/null; done
  "$LIBVIRT_SH" status >/dev/null 2>&1 && return 0
  sleep 0.5
  "$LIBVIRT_SH" status >/dev/null 2>&1 && return 0
  t_note "restarting libvirtd"
  "$LIBVIRT_SH" start 2>&1 | sed 's/^/# /'
}

_vm_cleanup_all() {
  local c name
  for c in "${VM_EXTRA_CLEANUP[@]}"; do eval "$c" || true; done
  libvirtd_restore
  for name in "${VM_NAMES[@]}"; do _vm_forget "$name"; done
}
t_on_exit _vm_cleanup_all

# Run directly (tests/run.sh runs every tests/libvirt/*.sh), this file checks what the
# other files need: the installed agent, a libvirtd that answers, the guest, the tools.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  t_begin "preflight: agent installed, libvirtd answers, guest built, tools present"
  assert_true "$AGENT is not executable (make install)" -- test -x "$AGENT" &&
    assert_true "libvirtd does not answer at $URI" -- virsh_ version &&
    assert_true "no guest in $T_REPO/build/guest (scripts/build-guest.sh)" -- \
      test -s "$T_REPO/build/guest/vmlinuz" -a -s "$T_REPO/build/guest/initrd.img" &&
    assert_true "qemu-img, strace or ocf-tester missing" -- \
      command -v qemu-img strace ocf-tester >/dev/null
  t_end
fi
