#!/usr/bin/env bash
# VirtualDomain against a real libvirtd that restarts in the middle of an action: a broken
# connection is not a dead libvirtd. stop connects again and lets a graceful shutdown finish
# (the guest's qemu is never signalled by the agent); start connects again and finishes its
# wait for the guest's readiness.
# shellcheck source=tests/libvirt/lib-vm.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-vm.sh"

G=$(vm_name 1) # powers off 6 s after the ACPI button
W=$(vm_name 2) # start waits on a flag file (monitor_scripts)
vm_make "$G" --shutdown-delay 6
vm_make "$W"
VM_EXTRA_CLEANUP+=(libvirtd_restore)

# ra_background NAME ACTION [ARGS]: ra in the background; ra_collect then sets RA_RC/RA_ERR.
BG_PID=""
ra_background() {
  (
    ra "$@"
    printf '%s\n' "$RA_RC" >"$T_TMP/bg.rc"
    printf '%s\n' "$RA_ERR" >"$T_TMP/bg.err"
  ) &
  BG_PID=$!
}
ra_collect() {
  wait "$BG_PID" || true
  RA_RC=$(cat "$T_TMP/bg.rc")
  RA_ERR=$(cat "$T_TMP/bg.err")
  RA_REASON=$(sed -n 's/^ocf-exit-reason://p' "$T_TMP/bg.err" | tail -n 1)
}

# restart_libvirtd: SIGTERM to the test libvirtd (its guests keep running), then started
# again by scripts/libvirt.sh; fails unless a new libvirtd answers.
restart_libvirtd() {
  local old
  old=$(libvirtd_pid) || return 1
  kill -TERM "$old"
  wait_until 15 not test -d "/proc/$old/fd" || return 1
  "$LIBVIRT_SH" start 2>&1 | sed 's/^/# /'
  "$LIBVIRT_SH" status >/dev/null 2>&1
}

t_begin "libvirtd restarted during a graceful stop: stop waits for the guest's own power-off, qemu is not signalled, 0"
assert_ra 0 "start" "$G" start
assert_wait 60 "guest $G printed no GUEST-READY" -- vm_wait_ready "$G"
qpid=$(vm_qemu_pid "$G")
log_mark=$(qemu_log_lines "$G")
ra_background "$G" stop CRM_meta_timeout=30000
assert_wait 10 "the guest never saw the power button" -- vm_console_has "$G" '^GUEST-POWERBUTTON delay=6'
restart_libvirtd
ra_collect
assert_eq 0 "$RA_RC" "stop's exit code (stderr: $(_t_short "$RA_ERR"))"
assert_no_match "ended the hypervisor process" "$RA_ERR" "stop ended qemu itself"
assert_true "the guest never powered off by itself" -- vm_console_has "$G" '^GUEST-POWEROFF'
# libvirt itself ends qemu once the guest is off (on_poweroff=destroy): a signal from anyone
# else is the agent's.
signals=$(grep 'terminating on signal' <<<"$(qemu_log_since "$G" "$log_mark")" | grep -v '(libvirtd)$' || true)
assert_eq "" "$signals" "qemu's log: signals from anyone but libvirtd"
assert_wait 5 "qemu $qpid still runs" -- not test -d "/proc/$qpid/fd"
assert_eq absent "$(domain_state "$G")" "virsh domstate after stop"
t_end

t_begin "libvirtd restarted while start waits for readiness: start connects again and returns 0"
flag=$T_TMP/ready.flag
printf '#!/bin/sh\ntest -e %q\n' "$flag" >"$T_TMP/ready.sh"
chmod 755 "$T_TMP/ready.sh"
rm -f "$flag"
ra_background "$W" start CRM_meta_timeout=25000 "monitor_scripts=$T_TMP/ready.sh"
assert_wait 15 "the domain was never created" -- dom_is "$W" running
restart_libvirtd
touch "$flag"
ra_collect
assert_eq 0 "$RA_RC" "start's exit code (reason: $RA_REASON)"
assert_eq running "$(domain_state "$W")" "virsh domstate after start"
assert_ra 0 "monitor" "$W" monitor CRM_meta_interval=10000 "monitor_scripts=$T_TMP/ready.sh"
assert_ra 0 "stop" "$W" stop force_stop=true
t_end
