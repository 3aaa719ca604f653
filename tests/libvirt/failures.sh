#!/usr/bin/env bash
# VirtualDomain when things go wrong: the config file vanishes, libvirtd dies or hangs,
# the guest is paused or crashed.
# shellcheck source=tests/libvirt/lib-vm.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-vm.sh"

C=$(vm_name 1) # config removed while running
L=$(vm_name 2) # libvirtd killed / stopped under it
P=$(vm_name 3) # paused, then crashed
vm_make "$C"
vm_make "$L"
vm_make "$P"
# A real "crashed" state needs a panic device and on_crash=preserve.
sed -i -e 's|<on_crash>destroy</on_crash>|<on_crash>preserve</on_crash>|' \
  -e "s|<memballoon model='none'/>|<memballoon model='none'/>\n    <panic model='isa'/>|" "$T_TMP/$P.xml"

# libvirtd is always made to answer again, before the domains are removed.
VM_EXTRA_CLEANUP+=(libvirtd_restore)

t_begin "probe and monitor with the config file missing and nothing cached: 7"
assert_ra 7 "probe" nocache monitor "config=$T_TMP/missing.xml" &&
  assert_eq "" "$RA_REASON" "exit reason of the probe" &&
  assert_ra 7 "recurring monitor" nocache monitor "config=$T_TMP/missing.xml" CRM_meta_interval=10000 &&
  assert_ra 0 "stop" nocache stop "config=$T_TMP/missing.xml"
t_end

t_begin "start of the three guests"
assert_ra 0 "start $C" "$C" start &&
  assert_ra 0 "start $L" "$L" start &&
  assert_ra 0 "start $P" "$P" start &&
  assert_eq running "$(dom_state "$C")" "virsh domstate $C" &&
  assert_eq running "$(dom_state "$L")" "virsh domstate $L" &&
  assert_eq running "$(dom_state "$P")" "virsh domstate $P"
t_end

t_begin "config removed while running: monitor and probe 0 by the cached identity"
rm -f -- "$T_TMP/$C.xml"
assert_ra 0 "recurring monitor" "$C" monitor CRM_meta_interval=10000 &&
  assert_ra 0 "probe" "$C" monitor &&
  assert_eq running "$(dom_state "$C")" "virsh domstate"
t_end

t_begin "config still missing: stop by the cached identity, 0, domain gone"
assert_wait 60 "guest $C printed no GUEST-READY" -- wait_ready "$C" &&
  assert_ra 0 "stop" "$C" stop &&
  assert_true "the guest did not power itself off" -- console_has "$C" '^GUEST-POWEROFF' &&
  assert_eq absent "$(dom_state "$C")" "virsh domstate after stop" &&
  assert_true "a qemu of $C still runs" -- not has_qemu "$C" &&
  assert_ra 7 "probe after the stop" "$C" monitor
t_end

t_begin "libvirtd killed (SIGKILL), guest running: monitor 0 with a warning"
lpid=$(libvirtd_pid)
assert_true "no libvirtd pid" -- test -n "$lpid" &&
  assert_true "no qemu process for $L" -- has_qemu "$L" &&
  assert_true "kill -9 libvirtd" -- kill -KILL "$lpid" &&
  assert_wait 5 "libvirtd $lpid did not die" -- not test -d "/proc/$lpid/fd" &&
  assert_ra 0 "recurring monitor" "$L" monitor CRM_meta_interval=10000 CRM_meta_timeout=5000 &&
  assert_match 'WARN' "$RA_ERR" "warning on stderr" &&
  assert_match 'alive' "$RA_ERR" "the warning says the process is alive" &&
  assert_ra 0 "probe" "$L" monitor CRM_meta_timeout=5000
libvirtd_restore
t_end

t_begin "libvirtd restarted: it finds the guest still running"
assert_true "libvirtd is not back" -- eval '"$LIBVIRT_SH" status >/dev/null' &&
  assert_wait 10 "virsh does not see $L running" -- dom_is "$L" running &&
  assert_ra 0 "monitor" "$L" monitor CRM_meta_interval=10000
t_end

t_begin "libvirtd hung (SIGSTOP): monitor answers 0 within its 5 s timeout"
lpid=$(libvirtd_pid)
assert_true "no libvirtd pid" -- test -n "$lpid" &&
  assert_true "kill -STOP libvirtd" -- kill -STOP "$lpid" &&
  assert_ra 0 "recurring monitor" "$L" monitor CRM_meta_interval=10000 CRM_meta_timeout=5000 &&
  t_note "monitor with a hung libvirtd took ${RA_SECS}s (timeout 5 s)" &&
  assert_lt "$RA_SECS" 5 "monitor time" &&
  assert_match 'alive' "$RA_ERR" "the warning says the process is alive"
t_end

t_begin "libvirtd hung: stop ends the qemu process itself, 0 in < 10 s"
qpid=$(qemu_pid "$L")
assert_true "no qemu process for $L" -- test -n "$qpid" &&
  assert_ra 0 "stop" "$L" stop CRM_meta_timeout=10000 &&
  t_note "stop with a hung libvirtd took ${RA_SECS}s (timeout 10 s)" &&
  assert_lt "$RA_SECS" 10 "stop time" &&
  assert_wait 2 "qemu $qpid still alive" -- not has_qemu "$L" &&
  assert_match "ended the hypervisor process $qpid" "$RA_REASON" "exit reason"
t_end

t_begin "libvirtd hung, guest process gone: monitor 1 (never 7) within its timeout"
assert_ra 1 "recurring monitor" "$L" monitor CRM_meta_interval=10000 CRM_meta_timeout=5000 &&
  assert_lt "$RA_SECS" 5 "monitor time" &&
  assert_match 'no running hypervisor process' "$RA_REASON" "exit reason"
t_end
libvirtd_restore

t_begin "libvirtd back: the domain stopped behind its back is gone"
assert_wait 10 "virsh still lists $L" -- dom_is "$L" absent &&
  assert_ra 7 "probe" "$L" monitor
t_end

t_begin "libvirtd stopped (SIGKILL) during a stop: the qemu process is ended directly, 0"
assert_ra 0 "start $L again" "$L" start &&
  assert_wait 60 "guest $L printed no GUEST-READY" -- wait_ready "$L" &&
  qpid=$(qemu_pid "$L") &&
  lpid=$(libvirtd_pid) &&
  assert_true "no qemu / libvirtd pid" -- test -n "$qpid" -a -n "$lpid" &&
  assert_true "kill -9 libvirtd" -- kill -KILL "$lpid" &&
  assert_wait 5 "libvirtd $lpid did not die" -- not test -d "/proc/$lpid/fd" &&
  assert_ra 0 "stop" "$L" stop CRM_meta_timeout=10000 &&
  assert_lt "$RA_SECS" 10 "stop time" &&
  assert_wait 2 "qemu $qpid still alive" -- not has_qemu "$L" &&
  assert_match "cannot reach libvirt.*ended the hypervisor process $qpid" "$RA_REASON" "exit reason"
libvirtd_restore
assert_wait 10 "libvirtd back: virsh still lists $L" -- dom_is "$L" absent
t_end

t_begin "paused guest (virsh suspend): monitor and probe 0"
assert_true "virsh suspend" -- virsh_ suspend "$P" >/dev/null &&
  assert_eq paused "$(dom_state "$P")" "virsh domstate" &&
  assert_ra 0 "recurring monitor" "$P" monitor CRM_meta_interval=10000 &&
  assert_ra 0 "probe" "$P" monitor &&
  assert_true "virsh resume" -- virsh_ resume "$P" >/dev/null
t_end

# The guest kernel's own panic does not reach libvirt: the tiny guest has no pvpanic
# driver (pvpanic-mmio is a module not in its initramfs), so inject-nmi with
# unknown_nmi_panic=1 panics and reboots it (panic=-1), and it stays "running". The
# pvpanic device is written from QEMU's monitor instead (HMP `o 0x505 1`, what the guest
# driver does on panic): QEMU emits GUEST_PANICKED and libvirt, on_crash=preserve, makes
# the domain "crashed (panicked)".
t_begin "crashed guest (pvpanic): monitor 1 naming the state; stop 0 and gone"
assert_true "virsh qemu-monitor-command o 0x505 1" -- \
  virsh_ qemu-monitor-command --hmp "$P" 'o /b 0x505 1' >/dev/null &&
  assert_wait 5 "domain never became crashed: $(dom_state "$P")" -- dom_is "$P" crashed &&
  assert_ra 1 "recurring monitor" "$P" monitor CRM_meta_interval=10000 &&
  assert_match 'crashed' "$RA_REASON" "exit reason" &&
  assert_ra 1 "probe" "$P" monitor &&
  assert_ra 0 "stop" "$P" stop CRM_meta_timeout=10000 &&
  assert_lt "$RA_SECS" 5 "stop of a crashed guest" &&
  assert_eq absent "$(dom_state "$P")" "virsh domstate after stop" &&
  assert_true "a qemu of $P still runs" -- not has_qemu "$P"
t_end
