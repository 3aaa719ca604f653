#!/usr/bin/env bash
# VirtualDomain parameters and interfaces: validate-all (levels 0 and 10), config unset,
# no forks on the monitor path, ocf-tester, migrate_to/migrate_from without a peer.
# shellcheck source=tests/libvirt/lib-vm.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-vm.sh"

M=$(vm_name 1) # the running guest of the strace and migration checks
T=$(vm_name 2) # ocf-tester's; never started before ocf-tester
vm_make "$M"
vm_make "$T"
UNREACHABLE='qemu:///system?socket=/nonexistent'

# $M boots while validate-all is checked.
t_begin "start of the guest of the monitor and migration checks: 0, running"
assert_ra 0 "start $M" "$M" start
assert_eq running "$(domain_state "$M")" "virsh domstate $M"
assert_true "no qemu process of $M" -- vm_has_qemu "$M"
t_end

# ---- validate-all, OCF_CHECK_LEVEL 0: parameter values and combinations → 6 ----
# bad_param NAME-IN-REASON KEY=VALUE...: validate-all 6, the exit reason names NAME-IN-REASON
bad_param() {
  local want=$1
  shift
  assert_ra 6 "validate-all $*" "$M" validate-all "$@" || return 1
  assert_match "$want" "$RA_REASON" "exit reason for $*"
}

t_begin "validate-all level 0 accepts a valid configuration (and does not look at the host)"
assert_ra 0 "validate-all" "$M" validate-all
assert_ra 0 "validate-all, config file missing" "$M" validate-all "config=$T_TMP/missing.xml"
assert_ra 0 "validate-all, libvirt unreachable" "$M" validate-all "hypervisor=$UNREACHABLE"
t_end

t_begin "validate-all level 0: force_stop with snapshot → 6"
bad_param 'force_stop' force_stop=1 snapshot=/x
assert_match 'snapshot' "$RA_REASON" "exit reason"
t_end
t_begin "validate-all level 0: stateless without backingfile → 6"
bad_param 'stateless' stateless=1
assert_match 'backingfile' "$RA_REASON" "exit reason"
t_end
t_begin "validate-all level 0: migration_speed=abc (type) → 6"
bad_param 'migration_speed' migration_speed=abc
t_end
t_begin "validate-all level 0: migration_downtime=-1 → 6"
bad_param 'migration_downtime' migration_downtime=-1
t_end
t_begin "validate-all level 0: shutdown_mode=bogus → 6"
bad_param 'shutdown_mode' shutdown_mode=bogus
t_end
t_begin "validate-all level 0: migrate_options=--bogus → 6"
bad_param 'migrate_options' migrate_options=--bogus
assert_match -- '--bogus' "$RA_REASON" "exit reason"
t_end
t_begin "validate-all level 0: migrateport=70000 → 6"
bad_param 'migrateport' migrateport=70000
t_end
t_begin "validate-all level 0: force_stop=maybe (type) → 6"
bad_param 'force_stop' force_stop=maybe
t_end
t_begin "validate-all level 0: config relative path → 6"
bad_param 'config' config=vm.xml
t_end

# ---- validate-all, OCF_CHECK_LEVEL 10: this host ----
t_begin "validate-all level 10: a valid configuration → 0"
assert_ra 0 "validate-all" "$M" validate-all OCF_CHECK_LEVEL=10
assert_eq "" "$RA_REASON" "exit reason"
t_end

t_begin "validate-all level 10: config file missing → 5"
assert_ra 5 "validate-all" "$M" validate-all OCF_CHECK_LEVEL=10 "config=$T_TMP/missing.xml"
assert_match 'missing\.xml' "$RA_REASON" "exit reason"
t_end

t_begin "validate-all level 10: copyindirs without virt-copy-in → 5 naming virt-copy-in"
if have virt-copy-in; then
  t_skip "virt-copy-in is installed here"
else
  assert_ra 5 "validate-all" "$M" validate-all OCF_CHECK_LEVEL=10 "copyindirs=$T_TMP"
  assert_match 'virt-copy-in' "$RA_REASON" "exit reason"
fi
t_end

t_begin "validate-all level 10: snapshot directory missing → 2"
assert_true "$T_TMP/nosnap exists" -- not test -e "$T_TMP/nosnap"
assert_ra 2 "validate-all" "$M" validate-all OCF_CHECK_LEVEL=10 "snapshot=$T_TMP/nosnap"
assert_match 'snapshot' "$RA_REASON" "exit reason"
t_end

t_begin "validate-all level 10: libvirt unreachable → 1, as in every action (5 would say it cannot run here)"
assert_ra 1 "validate-all" "$M" validate-all OCF_CHECK_LEVEL=10 "hypervisor=$UNREACHABLE"
assert_lt "$RA_SECS" 5 "validate-all time"
assert_match 'nonexistent|reach|connect' "$RA_REASON" "exit reason"
t_end

t_begin "config unset: stop 0, probe 7 (no exit reason), start 6, validate-all 6"
assert_ra 0 "stop" unset stop -config
assert_ra 7 "probe" unset monitor -config
assert_eq "" "$RA_REASON" "exit reason of the probe"
assert_ra 6 "start" unset start -config
assert_match 'config' "$RA_REASON" "exit reason of start"
assert_ra 6 "validate-all" unset validate-all -config
assert_match 'config' "$RA_REASON" "exit reason of validate-all"
t_end

# ---- no forks on the monitor path ----
# strace_monitor OUT [KEY=VALUE...]: a recurring monitor of $M under strace -f.
strace_monitor() {
  local out=$1 rc=0
  shift
  rm -f -- "$out"
  RA_WRAP=(/usr/bin/strace -f -qq -e trace=execve,clone,clone3,fork,vfork -o "$out")
  ra "$M" monitor CRM_meta_interval=10000 "$@" || rc=1
  RA_WRAP=()
  return "$rc"
}
execs() { grep -c 'execve(' "$1" || true; } # STRACE-OUT -> N
# process creations: fork/vfork, or clone without CLONE_THREAD (threads are fine)
forks() {
  local calls
  calls=$(grep -E '(^|[[:space:]])(fork|vfork|clone3?)\(' "$1" || true)
  grep -vc 'CLONE_THREAD' <<<"$calls" || true
}
traced_calls() { grep -E 'execve\(|fork|clone' "$1" | grep -v CLONE_THREAD || true; } # for messages

t_begin "monitor outside a cluster forks nothing: one execve (the agent), no child process"
assert_true "libvirt does not run $M" -- dom_is "$M" running
strace_monitor "$T_TMP/st1"
assert_true "no strace output" -- test -s "$T_TMP/st1"
assert_eq 0 "$RA_RC" "monitor rc (stderr: $(_t_short "$RA_ERR"))"
assert_eq 1 "$(execs "$T_TMP/st1")" "execve calls: $(_t_short "$(traced_calls "$T_TMP/st1")")"
assert_eq 0 "$(forks "$T_TMP/st1")" "process creations: $(_t_short "$(traced_calls "$T_TMP/st1")")"
t_note "threads created: $(grep -c CLONE_THREAD "$T_TMP/st1" || true)"
t_end

# In a cluster (crm_feature_set set) utilization goes through crm_resource, only on change.
mkdir -p "$T_TMP/bin"
cat >"$T_TMP/bin/crm_resource" <<EOS
#!/bin/sh
echo "\$*" >>"$T_TMP/crm_resource.calls"
EOS
chmod 755 "$T_TMP/bin/crm_resource"
crm_calls() { cat "$T_TMP/crm_resource.calls" 2>/dev/null || true; }

t_begin "monitor in a cluster: crm_resource on the first monitor, nothing on the next one"
assert_true "libvirt does not run $M" -- dom_is "$M" running
rm -f -- "$T_TMP/crm_resource.calls"
strace_monitor "$T_TMP/st2" crm_feature_set=3.16.2 "PATH=$T_TMP/bin:$PATH"
assert_eq 0 "$RA_RC" "first monitor rc"
assert_match '-z -p cpu -v 1' "$(crm_calls)" "crm_resource calls"
assert_match '-z -p hv_memory -v 96' "$(crm_calls)" "crm_resource calls"
assert_match '-z -p host_memory -v 96' "$(crm_calls)" "crm_resource calls"
rm -f -- "$T_TMP/crm_resource.calls"
strace_monitor "$T_TMP/st3" crm_feature_set=3.16.2 "PATH=$T_TMP/bin:$PATH"
assert_eq 0 "$RA_RC" "second monitor rc"
assert_true "crm_resource ran again: $(crm_calls)" -- not test -e "$T_TMP/crm_resource.calls"
assert_true "no strace output of the second monitor" -- test -s "$T_TMP/st3"
assert_eq 1 "$(execs "$T_TMP/st3")" "execve calls of the second monitor"
assert_eq 0 "$(forks "$T_TMP/st3")" "process creations of the second monitor"
t_end

t_begin "monitor with monitor_scripts forks exactly the scripts"
assert_true "libvirt does not run $M" -- dom_is "$M" running
strace_monitor "$T_TMP/st4" "monitor_scripts=/bin/true /bin/true"
assert_eq 0 "$RA_RC" "monitor rc"
assert_eq 3 "$(execs "$T_TMP/st4")" "execve calls (agent + 2 scripts): $(_t_short "$(traced_calls "$T_TMP/st4")")"
assert_eq 2 "$(forks "$T_TMP/st4")" "process creations (2 scripts): $(_t_short "$(traced_calls "$T_TMP/st4")")"
t_end

# ---- migration without a peer ----
t_begin "migrate_from when nothing arrived: 1 quickly, with a reason"
assert_eq absent "$(domain_state "$T")" "virsh domstate of $T (nothing may have arrived)"
assert_ra 1 "migrate_from" nothing migrate_from "config=$T_TMP/$T.xml" \
  CRM_meta_migrate_source=node2 CRM_meta_migrate_target=node1
assert_lt "$RA_SECS" 2 "migrate_from time"
assert_match 'not running here' "$RA_REASON" "exit reason"
assert_eq absent "$(domain_state "$T")" "virsh domstate of $T after migrate_from"
t_end

# ---- an existing configuration keeps its meaning (a swap must not stop VMs) ----
t_begin "a running VM whose values monitor does not need are wrong: monitor and probe 0, start 6 naming them"
for bad in force_stop=enabled force_stop=Yes migration_speed=fast shutdown_mode=bogus; do
  assert_ra 0 "monitor with $bad" "$M" monitor CRM_meta_interval=10000 "$bad"
  assert_eq "" "$RA_REASON" "exit reason of the monitor with $bad"
  assert_match "${bad%%=*}.*goes on" "$RA_ERR" "the warning (stderr: no journald here) for $bad"
  assert_ra 0 "probe with $bad" "$M" monitor "$bad"
done
assert_ra 6 "start with force_stop=Yes (false for the shell agent, true for a reader)" "$M" start force_stop=Yes
assert_match "force_stop" "$RA_REASON" "exit reason names the parameter"
assert_match "true: yes true 1 YES TRUE True ja on ON" "$RA_REASON" "exit reason lists the spellings"
assert_eq running "$(domain_state "$M")" "virsh domstate"
t_end

t_begin "migrate_to of a stopped domain: 1 'Not active locally'"
assert_eq absent "$(domain_state "$T")" "virsh domstate of $T"
assert_ra 1 "migrate_to" "$T" migrate_to CRM_meta_migrate_source=node1 CRM_meta_migrate_target=node2
assert_match 'Not active locally' "$RA_REASON" "exit reason"
t_end

t_begin "migrate_to an unreachable node: 1 with a reason, the domain keeps running here"
id1=$(dom_id "$M")
assert_match '^[0-9]+$' "$id1" "virsh domid of $M before"
assert_ra 1 "migrate_to" "$M" migrate_to CRM_meta_timeout=10000 \
  CRM_meta_migrate_source=node1 CRM_meta_migrate_target=nonexistent.invalid
assert_lt "$RA_SECS" 10 "migrate_to time"
assert_match 'nonexistent\.invalid' "$RA_REASON" "exit reason"
assert_eq running "$(domain_state "$M")" "virsh domstate"
assert_eq "$id1" "$(dom_id "$M")" "virsh domid of $M after (restarted?)"
t_end

t_begin "stop with a value it does not need (force_stop=enabled) still stops the VM"
assert_ra 0 "stop force_stop=enabled" "$M" stop force_stop=enabled
assert_match 'absent|shut off' "$(domain_state "$M")" "virsh domstate after the stop"
t_end

# ---- ocf-tester ----
rm -f -- "/run/resource-agents/VirtualDomain-$T.state"
VM_EXTRA_CLEANUP+=("rm -f /run/resource-agents/VirtualDomain-$T.state")
t_begin "ocf-tester passes and finishes"
assert_eq absent "$(domain_state "$T")" "virsh domstate before ocf-tester"
t0=$(now)
assert_rc 0 "ocf-tester" -- timeout 300 ocf-tester -n "$T" -o "config=$T_TMP/$T.xml" \
  -o hypervisor=qemu:///system "$AGENT"
t_note "ocf-tester took $(since "$t0")s"
assert_match 'passed all tests' "$T_OUT" "ocf-tester verdict"
assert_eq absent "$(domain_state "$T")" "virsh domstate after ocf-tester"
t_end
