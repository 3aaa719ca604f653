#!/usr/bin/env bash
# VirtualDomain features: snapshot, monitor_scripts, reload-agent, save_config_on_stop,
# backingfile + stateless, start_resources (storage pool, network).
# shellcheck source=tests/libvirt/lib-vm.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-vm.sh"

S=$(vm_name 1) # snapshot, monitor_scripts, reload-agent
V=$(vm_name 2) # save_config_on_stop
B=$(vm_name 3) # backingfile, stateless
R=$(vm_name 4) # start_resources
POOL=$(vm_name pool)
NET=$(vm_name net)
vm_make "$S"
vm_make "$V"
mkdir -p "$T_TMP/cfg" "$T_TMP/snap" "$T_TMP/pool"

# ---- monitor scripts ----
cat >"$T_TMP/fail.sh" <<'EOF'
#!/bin/sh
echo "guest says no"
exit 1
EOF
cat >"$T_TMP/hang.sh" <<EOF
#!/bin/sh
echo \$\$ >"$T_TMP/hang.pid"
exec sleep 60
EOF
cat >"$T_TMP/pass.sh" <<EOF
#!/bin/sh
grep -q '^GUEST-HEARTBEAT' "$(console "$S")"
EOF
chmod 755 "$T_TMP/fail.sh" "$T_TMP/hang.sh" "$T_TMP/pass.sh"

# heartbeats_continuous NAME: the heartbeat numbers in the console are 1, 2, ..., N (no
# restart from 1, no gap larger than 2 from a save/restore pause).
heartbeats_continuous() {
  sed -n 's/^GUEST-HEARTBEAT \([0-9]*\).*/\1/p' "$(console "$1")" |
    awk 'NR == 1 && $1 != 1 { exit 1 } NR > 1 && ($1 <= prev || $1 > prev + 2) { exit 1 } { prev = $1 } END { exit NR == 0 }'
}

t_begin "start two guests (snapshot, save_config_on_stop)"
sed -i '/<uuid>/d' "$T_TMP/$V.xml"
mv "$T_TMP/$V.xml" "$T_TMP/cfg/$V.xml"
chmod 640 "$T_TMP/cfg/$V.xml"
assert_ra 0 "start $S" "$S" start &&
  assert_ra 0 "start $V" "$V" start "config=$T_TMP/cfg/$V.xml" &&
  assert_eq running "$(dom_state "$S")" "virsh domstate $S" &&
  assert_eq running "$(dom_state "$V")" "virsh domstate $V"
t_end

t_begin "snapshot: stop saves NAME.state and the domain is gone"
assert_wait 60 "guest $S printed no GUEST-READY" -- wait_ready "$S" &&
  assert_wait 15 "no second heartbeat" -- heartbeat_over "$S" 1 &&
  assert_ra 0 "stop" "$S" stop "snapshot=$T_TMP/snap" &&
  t_note "snapshot stop took ${RA_SECS}s" &&
  assert_true "no $T_TMP/snap/$S.state" -- test -s "$T_TMP/snap/$S.state" &&
  assert_eq absent "$(dom_state "$S")" "virsh domstate after stop" &&
  assert_true "the guest was shut down, not saved" -- not console_has "$S" 'GUEST-POWERBUTTON'
t_end
hb_saved=$(last_heartbeat "$S")

t_begin "snapshot: start restores it (heartbeat continues, no new boot), .state removed"
assert_ra 0 "start" "$S" start "snapshot=$T_TMP/snap" &&
  t_note "snapshot restore took ${RA_SECS}s" &&
  assert_eq running "$(dom_state "$S")" "virsh domstate after start" &&
  assert_true "$T_TMP/snap/$S.state still there" -- not test -e "$T_TMP/snap/$S.state" &&
  assert_wait 10 "no heartbeat after the restore" -- heartbeat_over "$S" "$hb_saved" &&
  assert_eq 1 "$(console_count "$S" '^GUEST-BOOT')" "GUEST-BOOT lines (rebooted instead of restored?)" &&
  assert_true "heartbeats restarted or jumped: $(sed -n 's/^GUEST-HEARTBEAT //p' "$(console "$S")" | tr '\n' ' ')" -- \
    heartbeats_continuous "$S"
t_end

t_begin "monitor_scripts: a failing script fails the monitor with its output"
assert_ra 1 "recurring monitor" "$S" monitor CRM_meta_interval=10000 "monitor_scripts=$T_TMP/fail.sh" &&
  assert_match 'guest says no' "$RA_REASON" "exit reason" &&
  assert_match 'fail\.sh' "$RA_REASON" "exit reason names the script"
t_end

t_begin "monitor_scripts: a hanging script, CRM_meta_timeout=3000: rc 1 in < 3 s, script killed"
rm -f "$T_TMP/hang.pid"
assert_ra 1 "recurring monitor" "$S" monitor CRM_meta_interval=10000 CRM_meta_timeout=3000 \
  "monitor_scripts=$T_TMP/pass.sh $T_TMP/hang.sh" &&
  t_note "monitor with a hanging script took ${RA_SECS}s (timeout 3 s)" &&
  assert_lt "$RA_SECS" 3 "monitor time" &&
  assert_match 'hang\.sh' "$RA_REASON" "exit reason names the script" &&
  assert_true "hang.sh never ran" -- test -s "$T_TMP/hang.pid" &&
  assert_wait 2 "hang.sh ($(cat "$T_TMP/hang.pid" 2>/dev/null)) still runs" -- \
    not kill -0 "$(cat "$T_TMP/hang.pid" 2>/dev/null)" 2>/dev/null
t_end

t_begin "monitor_scripts: passing scripts: 0"
assert_ra 0 "recurring monitor" "$S" monitor CRM_meta_interval=10000 \
  "monitor_scripts=$T_TMP/pass.sh /bin/true" &&
  assert_eq "" "$RA_REASON" "exit reason"
t_end

t_begin "reload-agent with a changed monitor_scripts: 0, the domain is not restarted"
id1=$(dom_id "$S")
hb1=$(last_heartbeat "$S")
assert_ra 0 "reload-agent" "$S" reload-agent "monitor_scripts=$T_TMP/pass.sh" &&
  assert_ra 0 "monitor with the new parameter" "$S" monitor CRM_meta_interval=10000 "monitor_scripts=$T_TMP/pass.sh" &&
  assert_eq "$id1" "$(dom_id "$S")" "virsh domid" &&
  assert_wait 6 "heartbeat did not continue" -- heartbeat_over "$S" "$hb1" &&
  assert_true "heartbeats restarted" -- heartbeats_continuous "$S"
t_end

t_begin "monitor_scripts: start with a failing script, CRM_meta_timeout=6000: rc 1 in < 6 s"
ra "$S" stop force_stop=true
assert_eq 0 "$RA_RC" "stop before the start" &&
  assert_ra 1 "start" "$S" start CRM_meta_timeout=6000 "monitor_scripts=$T_TMP/fail.sh" &&
  t_note "start with a failing monitor script took ${RA_SECS}s (timeout 6 s)" &&
  assert_lt "$RA_SECS" 6 "start time" &&
  assert_match '^start timed out: monitor_scripts: .*fail\.sh exited 1: guest says no$' "$RA_REASON" "exit reason" &&
  assert_lt "${#RA_REASON}" 129 "length of the exit reason (Pacemaker keeps 128 characters)"
t_end
ra "$S" stop force_stop=true

t_begin "save_config_on_stop: the uuid libvirt assigned is written to the config"
cfg=$T_TMP/cfg/$V.xml
uuid=$(virsh_ domuuid "$V" 2>/dev/null)
assert_match '^[0-9a-f-]{36}$' "$uuid" "virsh domuuid" &&
  assert_true "the config already has a uuid" -- not grep -q '<uuid>' "$cfg" &&
  assert_wait 60 "guest $V printed no GUEST-READY" -- wait_ready "$V" &&
  assert_ra 0 "stop" "$V" stop "config=$cfg" save_config_on_stop=true &&
  assert_eq absent "$(dom_state "$V")" "virsh domstate after stop" &&
  assert_true "no <uuid>$uuid</uuid> in the config: $(_t_short "$(cat "$cfg")")" -- grep -q "<uuid>$uuid</uuid>" "$cfg" &&
  assert_rc 0 "virt-xml-validate" -- virt-xml-validate "$cfg" domain &&
  assert_eq 640 "$(stat -c %a "$cfg")" "permissions of the rewritten config" &&
  assert_eq "$V.xml" "$(ls -A "$T_TMP/cfg")" "files in the config's directory" &&
  assert_match "<name>$V</name>" "$(cat "$cfg")" "name in the saved config"
t_end

t_begin "save_config_on_stop: the saved config starts the same domain again"
assert_ra 0 "start" "$V" start "config=$cfg" &&
  assert_eq "$uuid" "$(virsh_ domuuid "$V" 2>/dev/null)" "uuid after the restart" &&
  assert_ra 0 "stop" "$V" stop "config=$cfg" force_stop=true
t_end

# ---- backingfile + stateless ----
vm_make "$B"
qemu-img create -q -f raw "$T_TMP/base.img" 8M
sed -i "s|</devices>|  <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      <source file='$T_TMP/$B.qcow2'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n  </devices>|" "$T_TMP/$B.xml"
ovl=$T_TMP/$B.qcow2

t_begin "backingfile: start creates the qcow2 overlay on the base, domain persistent"
assert_ra 0 "start" "$B" start "backingfile=$T_TMP/base.img" &&
  t_note "start with a new overlay took ${RA_SECS}s" &&
  assert_eq running "$(dom_state "$B")" "virsh domstate" &&
  assert_true "no overlay $ovl" -- test -s "$ovl" &&
  info=$(qemu-img info -U "$ovl" 2>&1) &&
  assert_match 'file format: qcow2' "$info" "qemu-img info format" &&
  assert_match "backing file: $T_TMP/base.img" "$info" "qemu-img info backing file" &&
  assert_match 'backing file format: raw' "$info" "qemu-img info backing format" &&
  assert_match 'Persistent:[[:space:]]+yes' "$(virsh_ dominfo "$B" 2>&1)" "virsh dominfo"
t_end
# has_pattern IMAGE: the overlay holds the 0xab pattern written below (not the base's zeros).
has_pattern() { qemu-io -r -U -f qcow2 -c 'read -P 0xab 0 64k' "$1" 2>&1 | grep -q '^read 65536/65536'; }

t_begin "backingfile: stop leaves the definition shut off; probe 7; start reuses the overlay"
assert_ra 0 "stop" "$B" stop force_stop=true "backingfile=$T_TMP/base.img" &&
  assert_eq "shut off" "$(dom_state "$B")" "virsh domstate after stop" &&
  assert_ra 7 "probe" "$B" monitor "backingfile=$T_TMP/base.img" &&
  assert_eq "" "$RA_REASON" "exit reason of the probe" &&
  assert_rc 0 "qemu-io write a pattern to the overlay" -- qemu-io -f qcow2 -c 'write -P 0xab 0 64k' "$ovl" &&
  assert_true "qemu-io cannot read the pattern back" -- has_pattern "$ovl" &&
  assert_ra 0 "start again (not stateless)" "$B" start "backingfile=$T_TMP/base.img" &&
  assert_eq running "$(dom_state "$B")" "virsh domstate" &&
  assert_true "the overlay was recreated although stateless is unset" -- has_pattern "$ovl"
t_end

t_begin "stateless=true: start recreates the overlay"
ra "$B" stop force_stop=true "backingfile=$T_TMP/base.img"
before=$(stat -c 'inode %i mtime %y' "$ovl")
assert_eq 0 "$RA_RC" "stop before the stateless start" &&
  assert_true "the pattern written into the overlay is missing before the start" -- has_pattern "$ovl" &&
  assert_ra 0 "start" "$B" start "backingfile=$T_TMP/base.img" stateless=true &&
  assert_eq running "$(dom_state "$B")" "virsh domstate" &&
  assert_match "backing file: $T_TMP/base.img" "$(qemu-img info -U "$ovl" 2>&1)" "qemu-img info backing file" &&
  assert_true "overlay not recreated: it still holds the data written into it" -- not has_pattern "$ovl" &&
  assert_true "overlay not recreated: inode and mtime unchanged ($before)" -- \
    test "$(stat -c 'inode %i mtime %y' "$ovl")" != "$before" &&
  t_note "overlay $before -> $(stat -c 'inode %i mtime %y' "$ovl")"
t_end
ra "$B" stop force_stop=true "backingfile=$T_TMP/base.img"

# ---- start_resources ----
vm_make "$R"
VM_EXTRA_CLEANUP+=("virsh_ pool-destroy $POOL >/dev/null 2>&1; virsh_ pool-undefine $POOL >/dev/null 2>&1")
VM_EXTRA_CLEANUP+=("virsh_ net-destroy $NET >/dev/null 2>&1; virsh_ net-undefine $NET >/dev/null 2>&1")
virsh_ pool-destroy "$POOL" >/dev/null 2>&1
virsh_ pool-undefine "$POOL" >/dev/null 2>&1
qemu-img create -q -f raw "$T_TMP/pool/v.img" 1M
sed -i "s|</devices>|  <disk type='volume' device='disk'>\n      <driver name='qemu' type='raw'/>\n      <source pool='$POOL' volume='v.img'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n  </devices>|" "$T_TMP/$R.xml"
pool_state() { virsh_ pool-info "$POOL" 2>/dev/null | sed -n 's/^State:[[:space:]]*//p'; }

t_begin "start_resources unset, storage pool inactive: start 1 with a reason"
assert_true "virsh pool-define-as" -- eval 'virsh_ pool-define-as "$POOL" dir --target "$T_TMP/pool" >/dev/null' &&
  assert_eq inactive "$(pool_state)" "pool state before" &&
  assert_ra 1 "start" "$R" start &&
  assert_match "$POOL|pool" "$RA_REASON" "exit reason" &&
  assert_eq inactive "$(pool_state)" "pool state after" &&
  assert_true "a qemu of $R runs" -- not has_qemu "$R"
t_end

t_begin "start_resources=true: the pool is started, then the domain"
assert_ra 0 "start" "$R" start start_resources=true &&
  assert_eq running "$(pool_state)" "pool state" &&
  assert_eq running "$(dom_state "$R")" "virsh domstate"
t_end
ra "$R" stop force_stop=true

t_begin "start_resources=true with an isolated network"
if ! virsh_ net-define <(printf "<network><name>%s</name><bridge name='ocfrst%s'/></network>\n" "$NET" "$$") >/dev/null 2>&1; then
  t_fail "virsh net-define failed"
elif ! err=$(virsh_ net-start "$NET" 2>&1); then
  t_fail "virsh net-start (iptables is installed by scripts/install-deps.sh): $(_t_short "$err")"
else
  virsh_ net-destroy "$NET" >/dev/null 2>&1
  sed -i "s|</devices>|  <interface type='network'><source network='$NET'/><model type='virtio'/></interface>\n  </devices>|" "$T_TMP/$R.xml"
  assert_ra 1 "start without start_resources" "$R" start &&
    assert_ra 0 "start" "$R" start start_resources=true &&
    assert_match 'Active:[[:space:]]+yes' "$(virsh_ net-info "$NET" 2>&1)" "virsh net-info" &&
    assert_eq running "$(dom_state "$R")" "virsh domstate"
  ra "$R" stop force_stop=true
fi
t_end
