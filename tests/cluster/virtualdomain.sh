#!/usr/bin/env bash
# ocf:rust:VirtualDomain under the running one-node cluster (started by tests/run.sh,
# which also starts libvirtd and builds the tiny guest): a real TCG guest "vm1" is
# started, its utilization published, a reloadable parameter changed without a
# restart, disabled (graceful ACPI shutdown) and enabled, killed (kill -9 of qemu)
# and recovered by the recurring monitor, cleaned up, deleted and re-created under
# the same name, and finally deleted. Leaves no resource, domain or file behind.
#
# Evidence comes from three independent sources: the cluster (crm_mon, crm_resource,
# the pacemaker log), libvirt (virsh domstate/domid, the qemu pid file) and the
# guest's serial console (GUEST-BOOT, GUEST-READY, GUEST-HEARTBEAT n, GUEST-POWEROFF).
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
URI=qemu:///system
# shellcheck source=tests/lib-guest.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib-guest.sh"

RSC=vm1                                   # resource and domain name (ours alone)
VM_MEM=96                                 # MiB, written into the XML
VM_DIR=/var/lib/ocf-rs-test               # stable: Pacemaker reads the config long after create
VM_XML=$VM_DIR/$RSC.xml
MON_SCRIPT=$VM_DIR/$RSC-monitor-script    # a monitor_scripts value that leaves a trace
MON_TRACE=$VM_DIR/$RSC-monitor-script.trace
CONSOLE=/var/log/ocf-rs-guests/$RSC.console
QEMU_PIDFILE=/run/libvirt/qemu/$RSC.pid
AGENT_STATE=${HA_RSCTMP:-/run/resource-agents}/VirtualDomain-$RSC.state
GUEST_DIR=${OCF_RS_GUEST_DIR:-$T_REPO/build/guest}
BOOT_TIMEOUT=${VD_BOOT_TIMEOUT:-60}       # TCG guest: ~2 s alone, more on a busy machine

# ---- helpers ----

vm_running() { [[ $(domain_state "$RSC") == running ]]; }
vm_off() { domain_off "$RSC"; }           # shut off or undefined, libvirt answering
vm_undefined() { [[ $(domain_state "$RSC") == absent ]]; }
vm_domid() { virsh_ domid "$RSC" | sed '/^$/d'; }
pidfile_qemu_pid() { [[ -s $QEMU_PIDFILE ]] && tr -d '[:space:]' <"$QEMU_PIDFILE"; } # as libvirt recorded it
vm_heartbeat_above() { console_heartbeat_above "$CONSOLE" "$1" "$2"; } # MARK N

utilization() { crm_resource -r "$RSC" -z -g "$1" -Q 2>/dev/null; }
utilization_is() { [[ $(utilization "$1") == "$2" ]]; }
vm_up() { rsc_is_started "$RSC" && vm_running; }            # cluster and libvirt agree
trace_lines() { if [[ -e $MON_TRACE ]]; then wc -l <"$MON_TRACE"; else echo 0; fi; }
traced_twice() { (($(trace_lines) >= 2)); }

create_vm() {
  pcs resource create "$RSC" ocf:rust:VirtualDomain config="$VM_XML" hypervisor="$URI" \
    op monitor interval=2s
}

# Deletes the resource, bounded: disable (graceful stop), wait, delete.
delete_vm() {
  rsc_is_gone "$RSC" && return 0
  timeout 30 pcs resource disable "$RSC" >/dev/null 2>&1
  wait_stopped "$RSC" 60
  timeout 60 pcs resource delete "$RSC" >/dev/null 2>&1
  wait_gone "$RSC" 20
}

# The domain, should anything be left of it (only our own name).
remove_domain() {
  vm_undefined && return 0
  virsh_ destroy "$RSC" >/dev/null 2>&1
  virsh_ undefine "$RSC" >/dev/null 2>&1
  wait_until 10 vm_undefined
}

vd_cleanup() {
  delete_vm
  remove_domain
  rm -f -- "$VM_XML" "$MON_SCRIPT" "$MON_TRACE" "$AGENT_STATE"
  rmdir -- "$VM_DIR" 2>/dev/null
  ((T_NFAIL == 0)) && rm -f -- "$CONSOLE"
  return 0
}
t_on_exit vd_cleanup

# ---- cases ----

t_begin "setup: cluster running, libvirtd answering, guest built, no $RSC left over"
assert_true "cluster not running (scripts/cluster.sh status)" -- cluster_running
assert_rc 0 "libvirtd does not answer on $URI" -- virsh_ version
assert_true "no guest in $GUEST_DIR (run scripts/build-guest.sh)" -- test -s "$GUEST_DIR/vmlinuz"
assert_true "a resource $RSC is left over and could not be deleted" -- delete_vm
assert_true "a domain $RSC is left over and could not be removed" -- remove_domain
assert_true "cannot create $VM_DIR" -- mkdir -p "$VM_DIR"
assert_rc 0 "scripts/make-domain.sh" -- "$T_REPO/scripts/make-domain.sh" "$RSC" "$VM_XML" \
  --memory "$VM_MEM" --guest-dir "$GUEST_DIR" --console "$CONSOLE"
assert_match "<memory unit='MiB'>$VM_MEM</memory>" "$(cat "$VM_XML")" "memory in $VM_XML"
assert_true "cannot reset $CONSOLE" -- truncate -s 0 "$CONSOLE"
# A state file from an earlier run of this test (same resource name) would be read
# by the agent; a later case checks that situation on purpose.
assert_true "cannot remove $AGENT_STATE" -- rm -f -- "$AGENT_STATE"
t_end

t_begin "pcs resource create $RSC: Started on $T_NODE, domain running, GUEST-READY on the console"
t0=$(now)
lmark=$(pcmk_log_mark)
assert_rc 0 "pcs resource create $RSC" -- create_vm
assert_started "$RSC" "$T_NODE" 60
t_started=$(since "$t0")
assert_eq running "$(domain_state "$RSC")" "virsh domstate $RSC"
assert_true "no successful start of $RSC in the pacemaker log" -- \
  pcmk_log_has "$lmark" "Result of start operation for $RSC on $T_NODE: ok"
assert_wait "$BOOT_TIMEOUT" "no GUEST-READY on $CONSOLE" -- console_has "$CONSOLE" 0 GUEST-READY
assert_eq 1 "$(console_count "$CONSOLE" 0 GUEST-BOOT)" "GUEST-BOOT lines on the console"
assert_true "cluster not idle after the start" -- cluster_idle 30
assert_true "$RSC not Started once the cluster is idle" -- rsc_is_started "$RSC"
assert_eq 0 "$(failcount "$RSC")" "failcount"
t_note "Started $t_started s after create, guest ready $(since "$t0") s after create"
t_end

t_begin "utilization of $RSC: cpu 1, hv_memory and host_memory $VM_MEM (MiB of the XML)"
assert_wait 5 "utilization cpu of $RSC is not 1" -- utilization_is cpu 1
assert_eq "$VM_MEM" "$(utilization hv_memory)" "utilization hv_memory"
assert_eq "$VM_MEM" "$(utilization host_memory)" "utilization host_memory"
t_end

t_begin "pcs resource update $RSC monitor_scripts=...: reload-agent, no restart, the guest keeps running"
# The script stands for /bin/true (exit 0) but leaves a trace, which shows that the
# next monitors run it, i.e. that the reload took effect.
printf '#!/bin/sh\necho "$$" >>%q\nexit 0\n' "$MON_TRACE" >"$MON_SCRIPT"
chmod 0755 "$MON_SCRIPT"
rm -f -- "$MON_TRACE"
assert_true "cluster not idle before the update" -- cluster_idle 30
assert_true "$RSC not running before the update" -- vm_up
assert_wait 10 "no GUEST-HEARTBEAT before the update" -- vm_heartbeat_above 0 0
assert_eq "" "$(crm_resource -r "$RSC" -g monitor_scripts -Q 2>/dev/null || true)" "monitor_scripts set before the update"
id_before=$(vm_domid)
pid_before=$(pidfile_qemu_pid || true)
assert_match '^[0-9]+$' "$pid_before" "qemu pid from $QEMU_PIDFILE before the update"
cmark=$(console_size "$CONSOLE")
hb_before=$(console_heartbeat "$CONSOLE" 0)
lmark=$(pcmk_log_mark)
t0=$(now)
assert_rc 0 "pcs resource update $RSC monitor_scripts=$MON_SCRIPT" -- \
  pcs resource update "$RSC" monitor_scripts="$MON_SCRIPT"
assert_wait 20 "no successful $RSC reload-agent in $T_PCMK_LOG" -- \
  pcmk_log_has "$lmark" "Result of reload-agent operation for $RSC on $T_NODE: ok"
t_note "reload-agent done $(since "$t0") s after the update"
assert_true "cluster not idle after the update" -- cluster_idle 30
assert_match "Initiating reload-agent operation ${RSC}_reload-agent_0" "$(pcmk_log_since "$lmark")" \
  "pacemaker log"
assert_eq "$MON_SCRIPT" "$(crm_resource -r "$RSC" -g monitor_scripts -Q 2>/dev/null)" \
  "monitor_scripts in the CIB"
assert_wait 10 "the recurring monitor did not run the new monitor_scripts twice" -- traced_twice
assert_eq "$id_before" "$(vm_domid)" "domain id after reload"
assert_eq "$pid_before" "$(pidfile_qemu_pid)" "qemu pid after reload"
assert_wait 10 "heartbeat stopped after $hb_before" -- vm_heartbeat_above 0 "$hb_before"
assert_eq 0 "$(console_count "$CONSOLE" "$cmark" GUEST-BOOT)" "GUEST-BOOT lines since the update"
assert_no_match "Initiating (stop|start) operation ${RSC}_(stop|start)_0" "$(pcmk_log_since "$lmark")" \
  "$RSC was restarted instead of reloaded"
assert_true "$RSC not Started after the reload (state: '$(rsc_state "$RSC")')" -- vm_up
assert_eq 0 "$(failcount "$RSC")" "failcount after the reload"
t_note "heartbeat $hb_before before the update, $(console_heartbeat "$CONSOLE" 0) now; qemu pid $pid_before kept"
t_end

t_begin "pcs resource disable $RSC: Stopped, domain shut off or gone, graceful GUEST-POWEROFF"
cmark=$(console_size "$CONSOLE")
lmark=$(pcmk_log_mark)
t0=$(now)
assert_true "$RSC not running before disable" -- vm_up
assert_rc 0 "pcs resource disable $RSC" -- pcs resource disable "$RSC"
assert_stopped "$RSC" 60
t_note "Stopped $(since "$t0") s after disable"
assert_match '^Stopped \(disabled\)' "$(rsc_state "$RSC")" "crm_mon state"
assert_true "no successful stop of $RSC in the pacemaker log" -- \
  pcmk_log_has "$lmark" "Result of stop operation for $RSC on $T_NODE: ok"
assert_wait 5 "domain still '$(domain_state "$RSC")' in virsh" -- vm_off
assert_wait 5 "no GUEST-POWEROFF on the console: not a graceful shutdown" -- console_has "$CONSOLE" "$cmark" GUEST-POWEROFF
assert_eq 0 "$(failcount "$RSC")" "failcount after disable"
t_end

t_begin "pcs resource enable $RSC: Started again, the guest boots"
cmark=$(console_size "$CONSOLE")
t0=$(now)
assert_rc 0 "pcs resource enable $RSC" -- pcs resource enable "$RSC"
assert_started "$RSC" "$T_NODE" 60
t_note "Started $(since "$t0") s after enable"
assert_eq running "$(domain_state "$RSC")" "virsh domstate $RSC"
assert_wait "$BOOT_TIMEOUT" "no GUEST-READY after enable" -- console_has "$CONSOLE" "$cmark" GUEST-READY
assert_eq 1 "$(console_count "$CONSOLE" "$cmark" GUEST-BOOT)" "GUEST-BOOT lines since enable"
t_end

t_begin "kill -9 of $RSC's qemu: the monitor notices (failcount 1), the cluster restarts the guest"
cmark=$(console_size "$CONSOLE")
lmark=$(pcmk_log_mark)
assert_true "cluster not idle before the kill" -- cluster_idle 30
assert_true "$RSC not running before the kill" -- vm_up
assert_eq 0 "$(failcount "$RSC")" "failcount before the kill"
assert_wait 10 "no heartbeat before the kill" -- console_has "$CONSOLE" "$cmark" GUEST-HEARTBEAT
pid=$(pidfile_qemu_pid || true)
assert_match '^[0-9]+$' "$pid" "qemu pid from $QEMU_PIDFILE"
assert_match '^qemu-system' "$(cat "/proc/$pid/comm" 2>&1)" "process $pid named in $QEMU_PIDFILE"
t0=$(now)
assert_true "kill -9 $pid failed" -- kill -9 "$pid"
assert_wait 15 "failcount of $RSC never became 1 (monitor failure not seen)" -- failcount_is 1 "$RSC"
t_detect=$(since "$t0")
assert_wait 60 "$RSC not Started and running again within 60s" -- vm_up
t_recover=$(since "$t0")
assert_wait "$BOOT_TIMEOUT" "no GUEST-BOOT/GUEST-READY after the recovery" -- console_has "$CONSOLE" "$cmark" GUEST-READY
t_note "failcount 1 after $t_detect s, Started and running again after $t_recover s, guest ready after $(since "$t0") s (from kill -9)"
assert_eq 1 "$(console_count "$CONSOLE" "$cmark" GUEST-BOOT)" "GUEST-BOOT lines since the kill"
new_pid=$(pidfile_qemu_pid || true)
assert_match '^[0-9]+$' "$new_pid" "qemu pid from $QEMU_PIDFILE after the recovery"
assert_true "pid file still names the killed qemu $pid" -- test "$new_pid" != "$pid"
assert_true "cluster not idle after the recovery" -- cluster_idle 30
assert_eq 1 "$(failcount "$RSC")" "failcount after the recovery"
assert_true "no failed $RSC monitor in crm_mon -1: $(failed_actions)" -- \
  failed_action_shown "$RSC 2s-interval monitor on $T_NODE returned 'not running'"
assert_true "no successful start of $RSC since the kill in the pacemaker log" -- \
  pcmk_log_has "$lmark" "Result of start operation for $RSC on $T_NODE: ok"
assert_true "$RSC not Started after the recovery" -- vm_up
t_end

t_begin "pcs resource cleanup $RSC: failcount 0, no failed action, still running"
pid=$(pidfile_qemu_pid || true)
assert_match '^[0-9]+$' "$pid" "qemu pid from $QEMU_PIDFILE before the cleanup"
assert_true "no failed $RSC action before the cleanup: nothing to clean" -- failed_action_shown "^[[:space:]]*\* $RSC "
assert_rc 0 "pcs resource cleanup $RSC" -- pcs resource cleanup "$RSC"
assert_wait 10 "failcount of $RSC not 0 10s after cleanup" -- failcount_is 0 "$RSC"
assert_wait 10 "crm_mon -1 still shows a failed $RSC action (or does not answer)" -- no_failed_action "^[[:space:]]*\* $RSC "
assert_true "cluster not idle after cleanup" -- cluster_idle 30
assert_true "$RSC not Started after cleanup" -- vm_up
assert_eq "$pid" "$(pidfile_qemu_pid)" "qemu pid (the cleanup's probe must not restart the guest)"
t_end

# The agent remembers the utilization it published in its state file (to fork
# crm_resource only on change). A new resource of the same name starts with no
# utilization in the CIB, whatever an earlier one left in that file.
t_begin "$RSC deleted and created again under the same name: utilization published again"
t0=$(now)
assert_true "pcs resource delete $RSC did not finish" -- delete_vm
t_note "deleted $(since "$t0") s after the delete began"
assert_wait 10 "domain $RSC still '$(domain_state "$RSC")' after delete" -- vm_off
# The situation this case is about: the deleted resource's state file still says what
# it published.
assert_match '(^|'$'\n'')utilization_cpu=1('$'\n''|$)' "$(cat "$AGENT_STATE" 2>&1)" \
  "the earlier $RSC's state file $AGENT_STATE (the stale cache this case is about)"
cmark=$(console_size "$CONSOLE")
assert_rc 0 "pcs resource create $RSC (again)" -- create_vm
assert_started "$RSC" "$T_NODE" 60
assert_true "cluster not idle after the start" -- cluster_idle 30
assert_wait 5 "utilization cpu of the new $RSC is not 1 (state file $AGENT_STATE: $(tr '\n' ' ' <"$AGENT_STATE" 2>/dev/null))" -- \
  utilization_is cpu 1
assert_eq "$VM_MEM" "$(utilization hv_memory)" "utilization hv_memory of the new $RSC"
assert_eq "$VM_MEM" "$(utilization host_memory)" "utilization host_memory of the new $RSC"
assert_wait "$BOOT_TIMEOUT" "no GUEST-READY after the new create" -- console_has "$CONSOLE" "$cmark" GUEST-READY
t_end

t_begin "pcs resource delete $RSC: no resource, no domain left"
t0=$(now)
assert_true "delete of $RSC did not finish" -- delete_vm
t_note "deleted $(since "$t0") s after the delete began"
assert_match 'No resources' "$(crm_mon -1 -r)" "crm_mon -1 -r after delete"
assert_wait 10 "domain $RSC still '$(domain_state "$RSC")' in virsh after delete" -- vm_off
assert_true "domain $RSC left defined in libvirt ('$(domain_state "$RSC")')" -- vm_undefined
t_end
