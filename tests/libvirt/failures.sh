#!/usr/bin/env bash
# VirtualDomain when things go wrong: the config file vanishes, libvirtd dies or hangs
# (before and during a stop), the guest is paused or crashed.
# shellcheck source=tests/libvirt/lib-vm.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-vm.sh"

C=$(vm_name 1) # config removed while running
L=$(vm_name 2) # libvirtd killed / stopped under it
P=$(vm_name 3) # paused, then crashed
D=$(vm_name 4) # ignores ACPI: libvirtd killed while its stop waits for the shutdown
vm_make "$C"
vm_make "$L"
vm_make "$P"
vm_make "$D" --ignore-acpi
# A real "crashed" state needs a panic device and on_crash=preserve.
sed -i -e 's|<on_crash>destroy</on_crash>|<on_crash>preserve</on_crash>|' \
  -e "s|<memballoon model='none'/>|<memballoon model='none'/>\n    <panic model='isa'/>|" "$T_TMP/$P.xml"
grep -q "<on_crash>preserve</on_crash>" "$T_TMP/$P.xml"
grep -q "<panic model='isa'/>" "$T_TMP/$P.xml"

# libvirtd, once this file killed or stopped it, is made to answer again at exit, before
# the domains are removed.
LIBVIRTD_TOUCHED=0
VM_EXTRA_CLEANUP+=('((LIBVIRTD_TOUCHED == 0)) || libvirtd_restore')

# libvirtd_gone PID: the (killed) libvirtd PID has exited.
libvirtd_gone() { [[ ! -d /proc/$1/fd ]]; }

t_begin "probe and monitor with the config file missing and nothing cached: 7; stop: 0"
assert_true "$T_TMP/missing.xml exists" -- not test -e "$T_TMP/missing.xml"
assert_true "an identity of nocache is cached" -- not test -e "$RSCTMP/VirtualDomain-nocache.state"
assert_ra 7 "probe" nocache monitor "config=$T_TMP/missing.xml"
assert_eq "" "$RA_REASON" "exit reason of the probe"
assert_ra 7 "recurring monitor" nocache monitor "config=$T_TMP/missing.xml" CRM_meta_interval=10000
assert_ra 0 "stop" nocache stop "config=$T_TMP/missing.xml"
t_end

t_begin "start of the four guests: 0, running, each with its qemu"
for vm in "$C" "$L" "$P" "$D"; do
  assert_ra 0 "start $vm" "$vm" start
  assert_eq running "$(domain_state "$vm")" "virsh domstate $vm"
  assert_true "no qemu process of $vm" -- vm_has_qemu "$vm"
done
t_end

t_begin "config removed while running: monitor and probe 0 by the cached identity"
rm -- "$T_TMP/$C.xml"
assert_true "$T_TMP/$C.xml is still there" -- not test -e "$T_TMP/$C.xml"
assert_ra 0 "recurring monitor" "$C" monitor CRM_meta_interval=10000
assert_ra 0 "probe" "$C" monitor
assert_eq running "$(domain_state "$C")" "virsh domstate"
t_end

t_begin "config still missing: stop by the cached identity, 0, domain gone"
assert_true "$T_TMP/$C.xml is back" -- not test -e "$T_TMP/$C.xml"
assert_true "guest $C printed no GUEST-READY within 60 s (or no qemu of it runs)" -- vm_wait_ready "$C"
assert_ra 0 "stop" "$C" stop
assert_true "the guest did not power itself off" -- vm_console_has "$C" '^GUEST-POWEROFF'
assert_eq absent "$(domain_state "$C")" "virsh domstate after stop"
assert_true "a qemu of $C still runs" -- not vm_has_qemu "$C"
assert_ra 7 "probe after the stop" "$C" monitor
t_end

t_begin "libvirtd killed (SIGKILL), guest running: monitor 0 with a warning, qemu untouched"
lpid=$(libvirtd_pid)
qpid=$(vm_qemu_pid "$L")
assert_match '^[0-9]+$' "$lpid" "libvirtd pid"
assert_match '^[0-9]+$' "$qpid" "qemu pid of $L"
LIBVIRTD_TOUCHED=1
assert_true "kill -9 libvirtd $lpid" -- kill -KILL "$lpid"
assert_wait 5 "libvirtd $lpid did not die" -- libvirtd_gone "$lpid"
assert_ra 0 "recurring monitor" "$L" monitor CRM_meta_interval=10000 CRM_meta_timeout=5000
assert_match 'WARN' "$RA_ERR" "warning on stderr"
assert_match 'alive' "$RA_ERR" "the warning says the process is alive"
assert_ra 0 "probe" "$L" monitor CRM_meta_timeout=5000
assert_eq "$qpid" "$(vm_qemu_pid "$L")" "the guest's qemu process"
libvirtd_restore
t_end

t_begin "libvirtd restarted: it finds the guest still running"
assert_true "libvirtd is not back" -- eval '"$LIBVIRT_SH" status >/dev/null'
assert_wait 10 "virsh does not see $L running" -- dom_is "$L" running
assert_ra 0 "monitor" "$L" monitor CRM_meta_interval=10000
assert_eq "" "$RA_REASON" "exit reason"
t_end

t_begin "libvirtd hung (SIGSTOP): monitor answers 0 within its 5 s timeout"
lpid=$(libvirtd_pid)
assert_match '^[0-9]+$' "$lpid" "libvirtd pid"
LIBVIRTD_TOUCHED=1
assert_true "kill -STOP libvirtd $lpid" -- kill -STOP "$lpid"
assert_wait 2 "libvirtd $lpid not stopped" -- libvirtd_is_stopped "$lpid"
assert_ra 0 "recurring monitor" "$L" monitor CRM_meta_interval=10000 CRM_meta_timeout=5000
t_note "monitor with a hung libvirtd took ${RA_SECS}s (timeout 5 s)"
assert_lt "$RA_SECS" 5 "monitor time"
assert_match 'alive' "$RA_ERR" "the warning says the process is alive"
t_end

t_begin "libvirtd hung: stop ends the qemu process itself, 0 in < 10 s"
assert_true "libvirtd $lpid is not stopped (SIGSTOP)" -- libvirtd_is_stopped "$lpid"
qpid=$(vm_qemu_pid "$L")
assert_match '^[0-9]+$' "$qpid" "qemu pid of $L"
assert_ra 0 "stop" "$L" stop CRM_meta_timeout=10000
t_note "stop with a hung libvirtd took ${RA_SECS}s (timeout 10 s)"
assert_lt "$RA_SECS" 10 "stop time"
assert_wait 2 "qemu $qpid still alive" -- not vm_has_qemu "$L"
assert_match "ended the hypervisor process $qpid" "$RA_REASON" "exit reason"
t_end

t_begin "libvirtd hung, guest process gone: monitor 1 (never 7) within its timeout"
assert_true "libvirtd $lpid is not stopped (SIGSTOP)" -- libvirtd_is_stopped "$lpid"
assert_true "a qemu of $L runs" -- not vm_has_qemu "$L"
assert_ra 1 "recurring monitor" "$L" monitor CRM_meta_interval=10000 CRM_meta_timeout=5000
assert_lt "$RA_SECS" 5 "monitor time"
assert_match 'no running hypervisor process' "$RA_REASON" "exit reason"
t_end
libvirtd_restore

t_begin "libvirtd back: the domain stopped behind its back is gone"
assert_wait 10 "virsh still lists $L" -- dom_is "$L" absent
assert_ra 7 "probe" "$L" monitor
t_end

t_begin "libvirtd killed (SIGKILL) before a stop: the qemu process is ended directly, 0"
assert_ra 0 "start $L again" "$L" start
assert_true "guest $L printed no GUEST-READY within 60 s (or no qemu of it runs)" -- vm_wait_ready "$L"
qpid=$(vm_qemu_pid "$L")
lpid=$(libvirtd_pid)
assert_match '^[0-9]+$' "$qpid" "qemu pid of $L"
assert_match '^[0-9]+$' "$lpid" "libvirtd pid"
LIBVIRTD_TOUCHED=1
assert_true "kill -9 libvirtd $lpid" -- kill -KILL "$lpid"
assert_wait 5 "libvirtd $lpid did not die" -- libvirtd_gone "$lpid"
assert_ra 0 "stop" "$L" stop CRM_meta_timeout=10000
assert_lt "$RA_SECS" 10 "stop time"
assert_wait 2 "qemu $qpid still alive" -- not vm_has_qemu "$L"
assert_match "cannot reach libvirt.*ended the hypervisor process $qpid" "$RA_REASON" "exit reason"
assert_true "the guest powered off by itself (no ACPI expected)" -- not vm_console_has "$L" '^GUEST-POWEROFF'
libvirtd_restore
assert_wait 10 "libvirtd back: virsh still lists $L" -- dom_is "$L" absent
t_end

# The stop of $D (ignoring ACPI) sends the power button and waits for a shutdown that never
# comes; libvirtd is killed during that wait: the broken connection must not fail the stop.
t_begin "libvirtd killed (SIGKILL) during a graceful stop: the qemu process is ended directly, 0"
assert_true "guest $D printed no GUEST-READY within 60 s (or no qemu of it runs)" -- vm_wait_ready "$D"
qpid=$(vm_qemu_pid "$D")
lpid=$(libvirtd_pid)
assert_match '^[0-9]+$' "$qpid" "qemu pid of $D"
assert_match '^[0-9]+$' "$lpid" "libvirtd pid"
cmark=$(console_size "$(vm_console "$D")")
rm -f -- "$T_TMP/bgstop"
(
  ra "$D" stop CRM_meta_timeout=20000
  printf '%s\n%s\n%s\n' "$RA_RC" "$RA_SECS" "$RA_REASON" >"$T_TMP/bgstop"
) &
bgstop=$!
assert_wait 10 "the stop pressed no power button" -- \
  console_has "$(vm_console "$D")" "$cmark" '^GUEST-POWERBUTTON ignored'
assert_true "the stop ended before libvirtd was killed" -- kill -0 "$bgstop"
LIBVIRTD_TOUCHED=1
assert_true "kill -9 libvirtd $lpid" -- kill -KILL "$lpid"
wait "$bgstop"
mapfile -t bg <"$T_TMP/bgstop"
t_note "stop with libvirtd killed during the shutdown took ${bg[1]:-?}s (timeout 20 s)"
assert_eq 0 "${bg[0]:-}" "stop rc (exit reason: ${bg[2]:-})"
assert_lt "${bg[1]:-99}" 20 "stop time"
assert_match "ended the hypervisor process $qpid" "${bg[2]:-}" "exit reason"
assert_wait 2 "qemu $qpid still alive" -- not vm_has_qemu "$D"
assert_true "the guest powered off by itself" -- not vm_console_has "$D" '^GUEST-POWEROFF'
libvirtd_restore
assert_wait 10 "libvirtd back: virsh still lists $D" -- dom_is "$D" absent
t_end

t_begin "paused guest (virsh suspend): monitor and probe 0; resumed: running"
assert_true "virsh suspend" -- eval 'virsh_ suspend "$P" >/dev/null'
assert_eq paused "$(domain_state "$P")" "virsh domstate"
assert_ra 0 "recurring monitor" "$P" monitor CRM_meta_interval=10000
assert_ra 0 "probe" "$P" monitor
assert_true "virsh resume" -- eval 'virsh_ resume "$P" >/dev/null'
assert_eq running "$(domain_state "$P")" "virsh domstate after resume"
t_end

# The guest kernel's own panic does not reach libvirt: the tiny guest has no pvpanic
# driver (pvpanic-mmio is a module not in its initramfs), so inject-nmi with
# unknown_nmi_panic=1 panics and reboots it (panic=-1), and it stays "running". The
# pvpanic device is written from QEMU's monitor instead (HMP `o 0x505 1`, what the guest
# driver does on panic): QEMU emits GUEST_PANICKED and libvirt, on_crash=preserve, makes
# the domain "crashed (panicked)".
t_begin "crashed guest (pvpanic): monitor 1 naming the state; stop 0 and gone"
assert_true "virsh qemu-monitor-command o 0x505 1" -- \
  eval 'virsh_ qemu-monitor-command --hmp "$P" "o /b 0x505 1" >/dev/null'
assert_wait 5 "domain never became crashed" -- dom_is "$P" crashed
assert_ra 1 "recurring monitor" "$P" monitor CRM_meta_interval=10000
assert_match 'crashed' "$RA_REASON" "exit reason"
assert_ra 1 "probe" "$P" monitor
assert_match 'crashed' "$RA_REASON" "exit reason of the probe"
assert_ra 0 "stop" "$P" stop CRM_meta_timeout=10000
assert_lt "$RA_SECS" 5 "stop of a crashed guest"
assert_eq absent "$(domain_state "$P")" "virsh domstate after stop"
assert_true "a qemu of $P still runs" -- not vm_has_qemu "$P"
t_end
