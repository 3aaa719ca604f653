# shellcheck shell=bash
# Helpers for tests/libvirt/*.sh: ocf:rust:VirtualDomain run the way Pacemaker's executor
# runs it (clean environment, OCF_RESKEY_* parameters, CRM_meta_*), against the test
# libvirtd (qemu:///system) and the tiny guest of scripts/build-guest.sh.
#
#   AGENT                                   the agent under test: $OCF_RS_VD_AGENT, default the
#                                           installed /usr/lib/ocf/resource.d/rust/VirtualDomain
#                                           (tests/mutants.sh points it at broken wrappers)
#   vm_make NAME [make-domain.sh options]   $T_TMP/NAME.xml, console $T_TMP/NAME.console;
#                                           NAME is destroyed/undefined at exit
#   ra NAME ACTION [KEY=VALUE | -KEY]...    runs the agent for resource NAME: RA_RC, RA_OUT,
#                                           RA_ERR, RA_REASON (last exit reason), RA_SECS.
#                                           Returns 0; 1 (and fails the case) when a KEY is
#                                           given twice
#   assert_ra RC MSG NAME ACTION [...]      ra + rc check (an assertion)
#   vm_console NAME; vm_console_has NAME REGEX; vm_console_count NAME REGEX
#   vm_wait_ready NAME [TIMEOUT]            GUEST-READY on the console (gives up at once when
#                                           no qemu of NAME runs)
#   vm_qemu_pid NAME; vm_has_qemu NAME; dom_is NAME STATE; dom_id NAME
#   vm_last_heartbeat NAME; vm_heartbeat_over NAME N
#
# KEY is a parameter (config, force_stop, CRM_meta_timeout, ...) unless it starts with
# OCF_ or HA_ (or is PATH); -KEY removes it from the defaults (config, hypervisor, CRM_meta_timeout).
# virsh_, now, since, lt, not, assert_lt, domain_state and the console_* helpers come
# from tests/lib-guest.sh. Run by tests/run.sh like the other files, this file is the layer's
# preflight (see the end).
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
URI=qemu:///system
# shellcheck source=tests/lib-guest.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib-guest.sh"

AGENT=${OCF_RS_VD_AGENT:-/usr/lib/ocf/resource.d/rust/VirtualDomain}
LIBVIRT_SH=$T_REPO/scripts/libvirt.sh
MAKE_DOMAIN=$T_REPO/scripts/make-domain.sh
RSCTMP=$T_TMP/rsctmp
mkdir -p "$RSCTMP"
_VM_BASE=${T_FILE##*/}
_VM_BASE=${_VM_BASE%.sh}
VM_NAMES=()
VM_EXTRA_CLEANUP=() # commands (strings) run before the domains are removed

vm_name() { printf 'ocfrs-t-%s-%s\n' "$_VM_BASE" "$1"; } # N -> unique domain name

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
  local -A given=() # a KEY given twice is a mistake of the test (which one wins?)
  for arg in "$@"; do
    if [[ $arg == -* ]]; then
      key=${arg#-}
    else
      key=${arg%%=*}
    fi
    [[ $key == OCF_* || $key == HA_* || $key == PATH ]] || key=OCF_RESKEY_$key
    if [[ -n ${given[$key]:-} ]]; then
      RA_RC=-1 RA_OUT="" RA_ERR="" RA_REASON="" RA_SECS=0
      t_fail "ra $name $action: $key given twice ($*)"
      return 1
    fi
    given[$key]=1
    if [[ $arg == -* ]]; then
      unset "env[$key]"
    else
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
  t_assertion
  local expected=$1 msg=$2
  shift 2
  ra "$@" || return 1
  [[ $RA_RC == "$expected" ]] && return 0
  t_fail "$msg: expected rc $expected, got $RA_RC after ${RA_SECS}s; stderr: $(_t_short "$RA_ERR")"
}

# ---- domains ----

dom_is() { [[ $(domain_state "$1") == "$2" ]]; } # NAME STATE (lib-guest.sh's domain_state)
dom_id() { virsh_ domid "$1" 2>/dev/null; }

# vm_qemu_pid NAME: the live qemu process of domain NAME (by its command line); 1 if none.
vm_qemu_pid() {
  local p
  for p in $(pgrep -f -- "-name guest=$1,"); do
    [[ $(cat "/proc/$p/comm" 2>/dev/null) == qemu-system* ]] || continue
    grep -q '^State:[[:space:]]*Z' "/proc/$p/status" 2>/dev/null && continue
    echo "$p"
    return 0
  done
  return 1
}
vm_has_qemu() { vm_qemu_pid "$1" >/dev/null; } # NAME

# The guest's serial console, through lib-guest.sh's helpers (mark 0: the whole file,
# carriage returns removed).
vm_console() { printf '%s\n' "$T_TMP/$1.console"; }                       # NAME -> FILE
vm_console_has() { console_has "$(vm_console "$1")" 0 "$2"; }             # NAME REGEX
vm_console_count() { console_count "$(vm_console "$1")" 0 "$2" || true; } # NAME REGEX -> N (0 too)
vm_ready() { vm_console_has "$1" '^GUEST-READY'; }
_vm_ready_or_dead() { vm_ready "$1" || ! vm_has_qemu "$1"; }
# vm_wait_ready NAME [TIMEOUT]: GUEST-READY within TIMEOUT s (default 60); fails at once when
# no qemu of NAME runs (a start that did not start must not cost the whole timeout).
vm_wait_ready() { wait_until "${2:-60}" _vm_ready_or_dead "$1" && vm_ready "$1"; }
vm_last_heartbeat() { console_heartbeat "$(vm_console "$1")" 0; }          # NAME -> N (0: none)
vm_heartbeat_over() { console_heartbeat_above "$(vm_console "$1")" 0 "$2"; } # NAME N
qemu_log() { printf '/var/log/libvirt/qemu/%s.log\n' "$1"; }
qemu_log_lines() { local n; n=$(wc -l <"$(qemu_log "$1")" 2>/dev/null) || n=0; echo "${n:-0}"; }
qemu_log_since() { tail -n +"$(($2 + 1))" "$(qemu_log "$1")" 2>/dev/null || true; } # NAME LINES

_vm_forget() { # NAME: no domain, definition, process, console or log left
  local name=$1 pid
  virsh_ destroy "$name" >/dev/null 2>&1
  virsh_ undefine --managed-save --snapshots-metadata --nvram "$name" >/dev/null 2>&1 ||
    virsh_ undefine "$name" >/dev/null 2>&1
  if pid=$(vm_qemu_pid "$name"); then
    kill -KILL "$pid" 2>/dev/null
    t_note "cleanup: killed a stray qemu ($pid) of $name"
  fi
  rm -f -- "$(vm_console "$name")" "$(qemu_log "$name")"
  return 0
}

# vm_make NAME [make-domain.sh options]: writes $T_TMP/NAME.xml (console $T_TMP/NAME.console)
# after removing any leftover domain of that name.
vm_make() {
  local name=$1
  shift
  _vm_forget "$name"
  VM_NAMES+=("$name")
  "$MAKE_DOMAIN" "$name" "$T_TMP/$name.xml" --console "$(vm_console "$name")" "$@" >/dev/null
}

have() { command -v "$1" >/dev/null; } # TOOL: on the PATH

# libvirtd: made to answer again (SIGCONT if stopped, started if gone); 1 if it does not.
# The test libvirtd's pid (scripts/libvirt.sh's pid file, checked against /proc); 1 if none.
# Never a libvirtd found by name: that may be another one's (the migration hosts', a user's).
libvirtd_pid() {
  local p
  p=$(tr -dc '0-9' </run/ocf-rs-libvirt/libvirtd.pid 2>/dev/null) || return 1
  [[ -n $p && $(cat "/proc/$p/comm" 2>/dev/null) == libvirtd ]] || return 1
  echo "$p"
}
libvirtd_is_stopped() { grep -q '^State:[[:space:]]*T' "/proc/$1/status" 2>/dev/null; } # PID (SIGSTOP)
# libvirtd_restore: libvirtd made to answer again (SIGCONT if stopped, started if gone);
# 1 if it does not.
libvirtd_restore() {
  local p
  if p=$(libvirtd_pid); then kill -CONT "$p" 2>/dev/null || true; fi
  "$LIBVIRT_SH" status >/dev/null 2>&1 && return 0
  sleep 0.5
  "$LIBVIRT_SH" status >/dev/null 2>&1 && return 0
  t_note "restarting libvirtd"
  "$LIBVIRT_SH" start 2>&1 | sed 's/^/# /'
  "$LIBVIRT_SH" status >/dev/null 2>&1
}

# At exit: the file's own cleanups (failures.sh, which kills and stops libvirtd, adds
# libvirtd_restore there: a file that did not touch libvirtd never starts one), then the domains.
_vm_cleanup_all() {
  local c name
  for c in "${VM_EXTRA_CLEANUP[@]}"; do eval "$c" || true; done
  for name in "${VM_NAMES[@]}"; do _vm_forget "$name"; done
}
t_on_exit _vm_cleanup_all

# Run directly (tests/run.sh runs every tests/libvirt/*.sh), this file checks what the
# other files need: the agent, a libvirtd that answers, the guest, each tool.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  t_begin "preflight: agent installed, libvirtd answers, guest built, tools present"
  assert_true "$AGENT is not executable (make install)" -- test -x "$AGENT"
  assert_true "libvirtd does not answer at $URI" -- eval 'virsh_ version >/dev/null'
  assert_true "no kernel in $T_REPO/build/guest (scripts/build-guest.sh)" -- test -s "$T_REPO/build/guest/vmlinuz"
  assert_true "no initramfs in $T_REPO/build/guest (scripts/build-guest.sh)" -- test -s "$T_REPO/build/guest/initrd.img"
  for tool in qemu-img qemu-io strace ocf-tester virt-xml-validate; do
    assert_true "$tool missing (scripts/install-deps.sh)" -- have "$tool"
  done
  t_end
fi
