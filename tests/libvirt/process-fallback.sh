#!/usr/bin/env bash
# VirtualDomain without libvirtd (issue #11): the answer comes from the guest's own qemu
# process only for a local qemu:///system guest, and the process is found by what qemu
# was given (-uuid, -name guest=NAME with qemu's ",," escaping), not by the binary's name.
# 0 from stop, or 7, only on proof; otherwise 1 with a reason.
#   A  named "NAME,x" (a comma), emulator a symlink to qemu: libvirtd SIGKILLed
#   W  emulator a wrapper script that execs qemu: libvirtd SIGSTOPped
#   G  guest killed behind libvirt's back, its pid file pointing at a decoy process
#   R  running locally, managed through an unreachable qemu+tcp:// URI
# shellcheck source=tests/libvirt/lib-vm.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-vm.sh"

QEMU=/usr/bin/qemu-system-x86_64
QEMU_RUN=/run/libvirt/qemu
A=$(vm_name 1)
W=$(vm_name 2)
G=$(vm_name 3)
R=$(vm_name 4)
DA="$A,x" # the domain name of resource A
UNREACHABLE=qemu+tcp://127.0.0.1:1/system

# ---- helpers of this file ----

pf_uuid() { sed -n 's|.*<uuid>\(.*\)</uuid>.*|\1|p' "$1"; } # XML -> UUID

# pf_qemu_pid UUID: the live process running $QEMU that was given -uuid UUID; 1 if none.
pf_qemu_pid() {
  local p out
  out=$(pgrep -f -- "-uuid $1( |$)") || return 1
  for p in $out; do
    [[ $(readlink "/proc/$p/exe" 2>/dev/null) == "$QEMU" ]] || continue
    grep -q '^State:[[:space:]]*Z' "/proc/$p/status" 2>/dev/null && continue
    echo "$p"
    return 0
  done
  return 1
}
pf_has_qemu() { pf_qemu_pid "$1" >/dev/null; } # UUID
pf_alive() { [[ $1 =~ ^[0-9]+$ && -d /proc/$1 ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; } # PID
# pf_arg PID N: the Nth argument (0 = the program) of process PID.
pf_arg() { tr '\0' '\n' <"/proc/$1/cmdline" | sed -n "$(($2 + 1))p"; }
# pf_args_after PID OPT: the argument after OPT in process PID's command line.
pf_args_after() { tr '\0' '\n' <"/proc/$1/cmdline" | sed -n "/^$2\$/{n;p;q}"; }
# pf_signal SIG PID: signals PID only if it is a number above 1 (never an empty or broadcast pid).
pf_signal() { [[ $2 =~ ^[0-9]+$ ]] && (($2 > 1)) && kill "-$1" "$2"; }
pf_dead() { [[ $1 =~ ^[0-9]+$ ]] && ! [[ -d /proc/$1/fd ]]; } # PID
# pf_kill_libvirtd SIG: SIGKILL (waits until it is gone) or SIGSTOP the test libvirtd.
pf_kill_libvirtd() {
  local p
  p=$(libvirtd_pid) || return 1
  [[ -n $p ]] || return 1
  pf_signal "$1" "$p" || return 1
  if [[ $1 == STOP ]]; then
    wait_until 2 libvirtd_is_stopped "$p"
    return
  fi
  wait_until 5 pf_dead "$p"
}
# pf_forget UUID: no domain and no qemu process of that UUID left (the domain name of A has
# a comma, which lib-vm.sh's cleanup does not know).
pf_forget() {
  local p
  [[ -n $1 ]] || return 0
  virsh_ destroy "$1" >/dev/null 2>&1
  if p=$(pf_qemu_pid "$1"); then
    pf_signal KILL "$p"
    t_note "cleanup: killed a stray qemu ($p) of UUID $1"
  fi
  return 0
}
# pf_fake_pid_file NAME PID: libvirt's pid file of domain NAME now names PID (only while no
# libvirtd runs, and only over a pid file the dead libvirtd left).
pf_fake_pid_file() {
  if pgrep -x libvirtd >/dev/null; then return 1; fi
  [[ -s $QEMU_RUN/$1.pid ]] || return 1
  printf '%s\n' "$2" >"$QEMU_RUN/$1.pid"
}
DECOY=""
pf_cleanup() {
  local e
  if [[ -n $DECOY ]]; then pf_signal KILL "$DECOY" 2>/dev/null; fi
  libvirtd_restore
  pf_forget "$UA"
  pf_forget "$UW"
  pf_forget "$UG"
  pf_forget "$UR"
  # libvirt's cached capabilities of this file's emulators (named after their path).
  for e in "$T_TMP/qemu-link" "$T_TMP/qemu-wrapper"; do
    rm -f "/var/cache/libvirt/qemu/capabilities/$(printf '%s' "$e" | sha256sum | cut -d' ' -f1).xml"
  done
  return 0
}

# ---- set-up ----
vm_make "$A"
vm_make "$W"
vm_make "$G"
vm_make "$R"
UA=$(pf_uuid "$T_TMP/$A.xml")
UW=$(pf_uuid "$T_TMP/$W.xml")
UG=$(pf_uuid "$T_TMP/$G.xml")
UR=$(pf_uuid "$T_TMP/$R.xml")
t_on_exit pf_cleanup
ln -s "$QEMU" "$T_TMP/qemu-link"
printf '#!/bin/sh\nexec %s "$@"\n' "$QEMU" >"$T_TMP/qemu-wrapper"
chmod 0755 "$T_TMP/qemu-wrapper"
sed -i -e "s|<name>$A</name>|<name>$DA</name>|" \
  -e "s|<devices>|<devices>\n    <emulator>$T_TMP/qemu-link</emulator>|" "$T_TMP/$A.xml"
sed -i -e "s|<devices>|<devices>\n    <emulator>$T_TMP/qemu-wrapper</emulator>|" "$T_TMP/$W.xml"

t_begin "start of a guest named with a comma, emulator a symlink: qemu is given guest=NAME,,x"
assert_ra 0 "start $DA" "$A" start
assert_eq running "$(domain_state "$UA")" "virsh domstate $DA"
qa=$(pf_qemu_pid "$UA")
assert_eq "guest=$A,,x,debug-threads=on" "$(pf_args_after "$qa" -name)" "qemu's -name argument"
assert_eq "$T_TMP/qemu-link" "$(pf_arg "$qa" 0)" "qemu's program name (the symlink)"
assert_true "a pid file for $DA in $QEMU_RUN" -- test -s "$QEMU_RUN/$DA.pid"
t_end

t_begin "libvirtd SIGKILLed: monitor and probe of the comma-named guest 0 from its process"
assert_true "SIGKILL libvirtd" -- pf_kill_libvirtd KILL
assert_ra 0 "recurring monitor" "$A" monitor CRM_meta_interval=10000 CRM_meta_timeout=5000
assert_match 'WARN' "$RA_ERR" "warning on stderr"
assert_match "process $qa is alive" "$RA_ERR" "the warning names the guest's process"
assert_ra 0 "probe" "$A" monitor CRM_meta_timeout=5000
assert_true "qemu $qa of $DA is not running" -- pf_alive "$qa"
t_end

t_begin "libvirtd down, hypervisor unset: monitor and stop 1 (the default URI is unknown), guest untouched"
assert_ra 1 "recurring monitor" "$A" monitor -hypervisor CRM_meta_interval=10000 CRM_meta_timeout=5000
assert_match 'default URI' "$RA_REASON" "exit reason of the monitor"
assert_ra 1 "stop" "$A" stop -hypervisor CRM_meta_timeout=10000
assert_match 'default URI' "$RA_REASON" "exit reason of the stop"
assert_true "qemu $qa of $DA was ended" -- pf_alive "$qa"
RA_WRAP=(env LIBVIRT_DEFAULT_URI=qemu:///system)
assert_ra 0 "recurring monitor with LIBVIRT_DEFAULT_URI=qemu:///system" "$A" monitor -hypervisor CRM_meta_interval=10000 CRM_meta_timeout=5000
RA_WRAP=()
t_end

t_begin "libvirtd down: stop of the comma-named guest ends its qemu itself, 0, process gone"
assert_ra 0 "stop" "$A" stop CRM_meta_timeout=10000
assert_lt "$RA_SECS" 10 "stop time"
assert_match "cannot reach libvirt.*ended the hypervisor process $qa of domain $DA" "$RA_REASON" "exit reason"
assert_true "qemu $qa of $DA still alive" -- not pf_alive "$qa"
assert_true "a qemu of $DA still runs" -- not pf_has_qemu "$UA"
t_end

t_begin "libvirtd back: the comma-named guest is gone for libvirt too; probe 7"
libvirtd_restore
assert_wait 10 "virsh still lists $DA" -- dom_is "$UA" absent
assert_ra 7 "probe" "$A" monitor
t_end

t_begin "emulator a wrapper script, libvirtd SIGSTOPped: monitor 0 within 5 s, stop ends qemu, 0"
assert_ra 0 "start $W" "$W" start
qw=$(pf_qemu_pid "$UW")
assert_eq "$QEMU" "$(readlink "/proc/$qw/exe")" "the wrapper exec'd qemu"
assert_true "SIGSTOP libvirtd" -- pf_kill_libvirtd STOP
assert_ra 0 "recurring monitor" "$W" monitor CRM_meta_interval=10000 CRM_meta_timeout=5000
assert_lt "$RA_SECS" 5 "monitor time"
assert_match "process $qw is alive" "$RA_ERR" "the warning names the guest's process"
assert_ra 0 "stop" "$W" stop CRM_meta_timeout=10000
assert_lt "$RA_SECS" 10 "stop time"
assert_match "ended the hypervisor process $qw of domain $W" "$RA_REASON" "exit reason"
assert_true "qemu $qw of $W still alive" -- not pf_alive "$qw"
libvirtd_restore
assert_wait 10 "virsh still lists $W" -- dom_is "$UW" absent
t_end

# A decoy: a live process whose pid now is in the guest's pid file, given the guest's name
# (another UUID), as a reused pid or another guest of the same name would be.
t_begin "guest killed with libvirtd down, pid file pointing at a decoy: monitor 1 (never 7), stop 0, decoy untouched"
assert_ra 0 "start $G" "$G" start
qg=$(pf_qemu_pid "$UG")
assert_true "SIGKILL libvirtd" -- pf_kill_libvirtd KILL
assert_true "SIGKILL qemu $qg" -- pf_signal KILL "$qg"
assert_wait 5 "qemu $qg did not die" -- not pf_alive "$qg"
sh -c 'while :; do sleep 1; done' qemu-system-x86_64 -name "guest=$G,debug-threads=on" -uuid 00000000-0000-4000-8000-000000000001 &
DECOY=$!
disown "$DECOY"
assert_true "no pid file of $G left by the dead libvirtd" -- test -s "$QEMU_RUN/$G.pid"
pf_fake_pid_file "$G" "$DECOY"
assert_ra 1 "recurring monitor" "$G" monitor CRM_meta_interval=10000 CRM_meta_timeout=5000
assert_match 'no running hypervisor process' "$RA_REASON" "exit reason of the monitor"
assert_ra 1 "probe" "$G" monitor CRM_meta_timeout=5000
assert_ra 0 "stop" "$G" stop CRM_meta_timeout=10000
assert_no_match 'ended the hypervisor process' "$RA_REASON" "exit reason of the stop"
assert_true "the decoy $DECOY was signalled" -- pf_alive "$DECOY"
pf_signal KILL "$DECOY"
DECOY=""
libvirtd_restore
assert_wait 10 "virsh still lists $G" -- dom_is "$UG" absent
t_end

t_begin "unreachable $UNREACHABLE, the guest running locally: monitor, probe and stop 1, never 0/7; guest untouched"
assert_ra 0 "start $R (qemu:///system)" "$R" start
qr=$(pf_qemu_pid "$UR")
assert_ra 1 "recurring monitor" "$R" monitor "hypervisor=$UNREACHABLE" CRM_meta_interval=10000 CRM_meta_timeout=5000
assert_match 'not local qemu processes' "$RA_REASON" "exit reason of the monitor"
assert_ra 1 "probe" "$R" monitor "hypervisor=$UNREACHABLE" CRM_meta_timeout=5000
assert_ra 1 "stop" "$R" stop "hypervisor=$UNREACHABLE" CRM_meta_timeout=10000
# What cannot be done comes first: it survives Pacemaker's 128 characters (the cause,
# "cannot reach libvirt at URI: <libvirt's message>", follows as far as it fits).
assert_match "^cannot stop [^ ]+: ${UNREACHABLE//+/[+]} guests are not local qemu processes" "$RA_REASON" "exit reason of the stop"
assert_true "the stop's exit reason is longer than Pacemaker keeps: ${#RA_REASON} characters" -- test "${#RA_REASON}" -le 128
assert_true "qemu $qr of $R was touched" -- pf_alive "$qr"
assert_eq running "$(domain_state "$UR")" "virsh domstate $R"
assert_ra 0 "stop through qemu:///system" "$R" stop
assert_eq absent "$(domain_state "$UR")" "virsh domstate $R after the stop"
t_end
