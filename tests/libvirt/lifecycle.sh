#!/usr/bin/env bash
# VirtualDomain lifecycle against a real libvirtd and guest: probe, start, monitor, stop
# (graceful, a guest that ignores ACPI, force_stop), each answer checked against virsh and
# the guest's own console and qemu process.
# shellcheck source=tests/libvirt/lib-vm.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-vm.sh"

A=$(vm_name 1) # normal guest
I=$(vm_name 2) # ignores the ACPI power button
F=$(vm_name 3) # normal guest, stopped with force_stop
vm_make "$A"
vm_make "$I" --ignore-acpi
vm_make "$F"

t_begin "probe of a stopped domain: 7, no exit reason"
assert_ra 7 "probe" "$A" monitor
assert_eq "" "$RA_REASON" "exit reason of the probe"
assert_eq absent "$(domain_state "$A")" "virsh domstate"
t_end

t_begin "recurring monitor of a stopped domain: 7; stop of a never started domain: 0"
assert_ra 7 "recurring monitor" "$A" monitor CRM_meta_interval=10000
assert_ra 0 "stop" "$A" stop
assert_eq absent "$(domain_state "$A")" "virsh domstate"
t_end

t_begin "start: 0, virsh says running, its qemu runs and the guest boots"
assert_ra 0 "start" "$A" start
t_note "start took ${RA_SECS}s"
assert_eq running "$(domain_state "$A")" "virsh domstate after start"
assert_true "no qemu process of $A" -- vm_has_qemu "$A"
assert_wait 30 "no GUEST-BOOT on the console of $A" -- vm_console_has "$A" '^GUEST-BOOT'
t_end

# The other two guests boot meanwhile (the graceful cases need GUEST-READY).
t_begin "start of the ACPI-ignoring guest and of the force_stop guest: 0, running"
assert_ra 0 "start $I" "$I" start
assert_ra 0 "start $F" "$F" start
assert_eq running "$(domain_state "$I")" "virsh domstate $I"
assert_eq running "$(domain_state "$F")" "virsh domstate $F"
t_end

t_begin "start of a running domain: 0, the same domain keeps running"
id1=$(dom_id "$A")
assert_match '^[0-9]+$' "$id1" "virsh domid before the second start"
assert_ra 0 "second start" "$A" start
assert_eq running "$(domain_state "$A")" "virsh domstate"
assert_eq "$id1" "$(dom_id "$A")" "domain id changed (restarted?)"
t_end

t_begin "monitor (recurring) and probe of a running domain: 0"
assert_ra 0 "recurring monitor" "$A" monitor CRM_meta_interval=10000
assert_eq "" "$RA_REASON" "exit reason"
assert_ra 0 "probe" "$A" monitor
assert_eq "" "$RA_REASON" "exit reason of the probe"
assert_eq running "$(domain_state "$A")" "virsh domstate"
t_end

t_begin "graceful stop: the guest powers itself off (ACPI), rc 0, domain gone"
assert_true "guest $A printed no GUEST-READY within 60 s (or no qemu of it runs)" -- vm_wait_ready "$A"
log0=$(qemu_log_lines "$A")
assert_ra 0 "stop" "$A" stop
t_note "graceful stop took ${RA_SECS}s"
assert_eq absent "$(domain_state "$A")" "virsh domstate after stop"
assert_true "console shows no GUEST-POWERBUTTON poweroff" -- vm_console_has "$A" '^GUEST-POWERBUTTON poweroff'
assert_true "console shows no GUEST-POWEROFF" -- vm_console_has "$A" '^GUEST-POWEROFF'
assert_match 'reason=shutdown' "$(qemu_log_since "$A" "$log0")" "libvirt's qemu log (not destroyed)"
assert_true "a qemu of $A still runs" -- not vm_has_qemu "$A"
assert_lt "$RA_SECS" 10 "graceful stop time"
assert_eq 1 "$(vm_console_count "$A" '^GUEST-BOOT')" "GUEST-BOOT lines (restarted by the second start?)"
t_end

t_begin "stop of a stopped domain: 0; probe: 7 without exit reason; monitor: 7"
assert_ra 0 "second stop" "$A" stop
assert_ra 7 "probe" "$A" monitor
assert_eq "" "$RA_REASON" "exit reason of the probe"
assert_ra 7 "recurring monitor" "$A" monitor CRM_meta_interval=10000
assert_eq absent "$(domain_state "$A")" "virsh domstate"
t_end

t_begin "guest ignoring ACPI, CRM_meta_timeout=8000: stop 0 in < 8 s, destroyed"
assert_true "guest $I printed no GUEST-READY within 60 s (or no qemu of it runs)" -- vm_wait_ready "$I"
assert_eq running "$(domain_state "$I")" "virsh domstate before stop"
log0=$(qemu_log_lines "$I")
assert_ra 0 "stop" "$I" stop CRM_meta_timeout=8000
t_note "stop of the ACPI-ignoring guest took ${RA_SECS}s (timeout 8 s)"
assert_lt "$RA_SECS" 8 "stop time"
assert_eq absent "$(domain_state "$I")" "virsh domstate after stop"
assert_true "the guest never saw the power button" -- vm_console_has "$I" '^GUEST-POWERBUTTON ignored'
assert_true "the guest powered off by itself?" -- not vm_console_has "$I" '^GUEST-POWEROFF'
assert_no_match 'did not answer|ended the hypervisor process' "$RA_REASON" "exit reason with libvirtd healthy"
assert_match 'reason=destroyed' "$(qemu_log_since "$I" "$log0")" "libvirt's qemu log (destroyed by libvirt)"
assert_true "a qemu of $I still runs" -- not vm_has_qemu "$I"
t_end

t_begin "force_stop=true: destroyed at once, no power button, fast"
assert_true "guest $F printed no GUEST-READY within 60 s (or no qemu of it runs)" -- vm_wait_ready "$F"
assert_eq running "$(domain_state "$F")" "virsh domstate before stop"
log0=$(qemu_log_lines "$F")
assert_ra 0 "stop" "$F" stop force_stop=true
t_note "force_stop took ${RA_SECS}s"
assert_lt "$RA_SECS" 3 "force_stop time"
assert_eq absent "$(domain_state "$F")" "virsh domstate after stop"
assert_true "the guest got a power button press" -- not vm_console_has "$F" 'GUEST-POWERBUTTON'
assert_match 'reason=destroyed' "$(qemu_log_since "$F" "$log0")" "libvirt's qemu log"
assert_true "a qemu of $F still runs" -- not vm_has_qemu "$F"
t_end
