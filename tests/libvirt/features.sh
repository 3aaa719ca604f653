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
cat >"$T_TMP/fail.sh" <<'EOS'
#!/bin/sh
echo "guest says no"
exit 1
EOS
cat >"$T_TMP/hang.sh" <<EOS
#!/bin/sh
echo \$\$ >"$T_TMP/hang.pid"
exec sleep 60
EOS
cat >"$T_TMP/pass.sh" <<EOS
#!/bin/sh
echo \$\$ >>"$T_TMP/pass.runs"
grep -q '^GUEST-HEARTBEAT' "$(vm_console "$S")"
EOS
cat >"$T_TMP/late.sh" <<EOS
#!/bin/sh
echo x >>"$T_TMP/late.runs"
if [ "\$(wc -l <"$T_TMP/late.runs")" -ge 4 ]; then exit 0; fi
echo "guest not ready"
exit 1
EOS
chmod 755 "$T_TMP/fail.sh" "$T_TMP/hang.sh" "$T_TMP/pass.sh" "$T_TMP/late.sh"

# heartbeats_continuous NAME: the heartbeat numbers in the console are 1, 2, ..., N (no
# restart from 1, no gap larger than 2 from a save/restore pause).
heartbeats_continuous() {
  local hb
  hb=$(console_since "$(vm_console "$1")" 0 | sed -n 's/^GUEST-HEARTBEAT \([0-9]*\).*/\1/p')
  awk 'NR == 1 && $1 != 1 { exit 1 } NR > 1 && ($1 <= prev || $1 > prev + 2) { exit 1 } { prev = $1 } END { exit NR == 0 }' <<<"$hb"
}
heartbeats() { console_since "$(vm_console "$1")" 0 | sed -n 's/^GUEST-HEARTBEAT //p' | tr '\n' ' '; } # NAME
runs_of() { if [[ -e $1 ]]; then wc -l <"$1"; else echo 0; fi; } # FILE: lines (script runs)

t_begin "start two guests (snapshot, save_config_on_stop)"
sed -i '/<uuid>/d' "$T_TMP/$V.xml"
mv "$T_TMP/$V.xml" "$T_TMP/cfg/$V.xml"
chmod 640 "$T_TMP/cfg/$V.xml"
assert_true "the config of $V still has a uuid" -- not grep -q '<uuid>' "$T_TMP/cfg/$V.xml"
assert_ra 0 "start $S" "$S" start
assert_ra 0 "start $V" "$V" start "config=$T_TMP/cfg/$V.xml"
assert_eq running "$(domain_state "$S")" "virsh domstate $S"
assert_eq running "$(domain_state "$V")" "virsh domstate $V"
assert_true "no qemu process of $S" -- vm_has_qemu "$S"
assert_true "no qemu process of $V" -- vm_has_qemu "$V"
t_end

t_begin "snapshot: stop saves NAME.state and the domain is gone"
assert_true "guest $S printed no GUEST-READY within 60 s (or no qemu of it runs)" -- vm_wait_ready "$S"
assert_wait 15 "no second heartbeat" -- vm_heartbeat_over "$S" 1
assert_ra 0 "stop" "$S" stop "snapshot=$T_TMP/snap"
t_note "snapshot stop took ${RA_SECS}s"
assert_true "no $T_TMP/snap/$S.state" -- test -s "$T_TMP/snap/$S.state"
assert_eq absent "$(domain_state "$S")" "virsh domstate after stop"
assert_true "a qemu of $S still runs" -- not vm_has_qemu "$S"
assert_true "the guest was shut down, not saved" -- not vm_console_has "$S" 'GUEST-POWERBUTTON'
t_end

t_begin "snapshot: start restores it (heartbeat continues, no new boot), .state removed"
hb_saved=$(vm_last_heartbeat "$S")
assert_match '^[1-9][0-9]*$' "$hb_saved" "last heartbeat before the restore"
assert_true "no $T_TMP/snap/$S.state to restore" -- test -s "$T_TMP/snap/$S.state"
assert_ra 0 "start" "$S" start "snapshot=$T_TMP/snap"
t_note "snapshot restore took ${RA_SECS}s"
assert_eq running "$(domain_state "$S")" "virsh domstate after start"
assert_true "$T_TMP/snap/$S.state still there" -- not test -e "$T_TMP/snap/$S.state"
assert_wait 10 "no heartbeat after the restore" -- vm_heartbeat_over "$S" "$hb_saved"
assert_eq 1 "$(vm_console_count "$S" '^GUEST-BOOT')" "GUEST-BOOT lines (rebooted instead of restored?)"
assert_true "heartbeats restarted or jumped: $(heartbeats "$S")" -- heartbeats_continuous "$S"
t_end

t_begin "monitor_scripts: a failing script fails the monitor with its output"
assert_eq running "$(domain_state "$S")" "virsh domstate (the failure must come from the script)"
assert_ra 1 "recurring monitor" "$S" monitor CRM_meta_interval=10000 "monitor_scripts=$T_TMP/fail.sh"
assert_match 'guest says no' "$RA_REASON" "exit reason"
assert_match 'fail\.sh' "$RA_REASON" "exit reason names the script"
t_end

t_begin "monitor_scripts: a hanging script, CRM_meta_timeout=3000: rc 1 in < 3 s, script killed"
rm -f -- "$T_TMP/hang.pid"
assert_ra 1 "recurring monitor" "$S" monitor CRM_meta_interval=10000 CRM_meta_timeout=3000 \
  "monitor_scripts=$T_TMP/pass.sh $T_TMP/hang.sh"
t_note "monitor with a hanging script took ${RA_SECS}s (timeout 3 s)"
assert_lt "$RA_SECS" 3 "monitor time"
assert_match 'hang\.sh' "$RA_REASON" "exit reason names the script"
assert_true "hang.sh never ran" -- test -s "$T_TMP/hang.pid"
hang_pid=$(cat "$T_TMP/hang.pid" 2>/dev/null || true)
assert_match '^[0-9]+$' "$hang_pid" "pid of hang.sh"
assert_wait 2 "hang.sh ($hang_pid) still runs" -- not kill -0 "$hang_pid" 2>/dev/null
t_end

t_begin "monitor_scripts: passing scripts: 0, each script ran"
runs0=$(runs_of "$T_TMP/pass.runs")
assert_ra 0 "recurring monitor" "$S" monitor CRM_meta_interval=10000 \
  "monitor_scripts=$T_TMP/pass.sh /bin/true"
assert_eq "" "$RA_REASON" "exit reason"
assert_eq $((runs0 + 1)) "$(runs_of "$T_TMP/pass.runs")" "runs of pass.sh"
t_end

t_begin "reload-agent with a changed monitor_scripts: 0, the domain is not restarted"
id1=$(dom_id "$S")
hb1=$(vm_last_heartbeat "$S")
assert_match '^[0-9]+$' "$id1" "virsh domid before"
assert_ra 0 "reload-agent" "$S" reload-agent "monitor_scripts=$T_TMP/pass.sh"
runs0=$(runs_of "$T_TMP/pass.runs")
assert_ra 0 "monitor with the new parameter" "$S" monitor CRM_meta_interval=10000 "monitor_scripts=$T_TMP/pass.sh"
assert_eq $((runs0 + 1)) "$(runs_of "$T_TMP/pass.runs")" "runs of pass.sh by the monitor"
assert_eq "$id1" "$(dom_id "$S")" "virsh domid"
assert_wait 6 "heartbeat did not continue" -- vm_heartbeat_over "$S" "$hb1"
assert_true "heartbeats restarted: $(heartbeats "$S")" -- heartbeats_continuous "$S"
t_end

t_begin "monitor_scripts: start with a failing script, CRM_meta_timeout=6000: rc 1 in < 6 s"
assert_ra 0 "stop before the start" "$S" stop force_stop=true
assert_eq absent "$(domain_state "$S")" "virsh domstate before the start"
assert_ra 1 "start" "$S" start CRM_meta_timeout=6000 "monitor_scripts=$T_TMP/fail.sh"
t_note "start with a failing monitor script took ${RA_SECS}s (timeout 6 s)"
assert_lt "$RA_SECS" 6 "start time"
assert_match '^start timed out: monitor_scripts: .*fail\.sh exited 1: guest says no$' "$RA_REASON" "exit reason"
assert_lt "${#RA_REASON}" 129 "length of the exit reason (Pacemaker keeps 128 characters)"
assert_eq running "$(domain_state "$S")" "virsh domstate (the domain was started, the script failed)"
t_end

t_begin "monitor_scripts: start waits for a script that passes at its 4th run: 0, 'not ready yet' logged once, no warning per attempt"
assert_ra 0 "stop before the start" "$S" stop force_stop=true
rm -f -- "$T_TMP/late.runs" "$T_TMP/late.log"
assert_ra 0 "start" "$S" start "monitor_scripts=$T_TMP/late.sh" "HA_LOGFILE=$T_TMP/late.log"
assert_eq 4 "$(runs_of "$T_TMP/late.runs")" "runs of late.sh"
log=$(cat "$T_TMP/late.log")
assert_eq 1 "$(grep -c 'INFO: start: not ready yet: monitor_scripts: .*late\.sh exited 1: guest not ready' <<<"$log" || true)" \
  "'not ready yet' records of late.sh in the log: $(_t_short "$log")"
assert_no_match 'WARNING|ERROR' "$log" "warnings in the log of a start that waited for its guest"
assert_no_match 'WARNING|ERROR' "$RA_ERR" "warnings on stderr"
t_end
ra "$S" stop force_stop=true

t_begin "save_config_on_stop: the uuid libvirt assigned is written to the config"
cfg=$T_TMP/cfg/$V.xml
uuid=$(virsh_ domuuid "$V" 2>/dev/null)
assert_match '^[0-9a-f-]{36}$' "$uuid" "virsh domuuid"
assert_true "no config $cfg" -- test -s "$cfg"
assert_true "the config already has a uuid" -- not grep -q '<uuid>' "$cfg"
assert_true "guest $V printed no GUEST-READY within 60 s (or no qemu of it runs)" -- vm_wait_ready "$V"
assert_ra 0 "stop" "$V" stop "config=$cfg" save_config_on_stop=true
assert_eq absent "$(domain_state "$V")" "virsh domstate after stop"
assert_true "no <uuid>$uuid</uuid> in the config: $(_t_short "$(cat "$cfg")")" -- grep -q "<uuid>$uuid</uuid>" "$cfg"
assert_rc 0 "virt-xml-validate" -- virt-xml-validate "$cfg" domain
assert_eq 640 "$(stat -c %a "$cfg")" "permissions of the rewritten config"
assert_eq "$V.xml" "$(ls -A "$T_TMP/cfg")" "files in the config's directory"
assert_match "<name>$V</name>" "$(cat "$cfg")" "name in the saved config"
t_end

t_begin "save_config_on_stop: the saved config starts the same domain again"
assert_ra 0 "start" "$V" start "config=$cfg"
assert_eq running "$(domain_state "$V")" "virsh domstate after the start"
assert_eq "$uuid" "$(virsh_ domuuid "$V" 2>/dev/null)" "uuid after the restart"
assert_ra 0 "stop" "$V" stop "config=$cfg" force_stop=true
assert_eq absent "$(domain_state "$V")" "virsh domstate after the stop"
t_end

# ---- backingfile + stateless ----
vm_make "$B"
qemu-img create -q -f raw "$T_TMP/base.img" 8M
sed -i "s|</devices>|  <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      <source file='$T_TMP/$B.qcow2'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n  </devices>|" "$T_TMP/$B.xml"
grep -q "<source file='$T_TMP/$B.qcow2'/>" "$T_TMP/$B.xml"
ovl=$T_TMP/$B.qcow2
# has_pattern IMAGE: the overlay holds the 0xab pattern written below (not the base's zeros):
# qemu-io read the 64 KiB, and its pattern check passed (it exits 1 and says "Pattern
# verification failed" otherwise, after "read 65536/65536" all the same).
# lacks_pattern IMAGE: qemu-io read the 64 KiB and found other data there.
qio_read_pattern() { # IMAGE -> QIO_OUT, QIO_RC
  QIO_OUT=$(qemu-io -r -U -f qcow2 -c 'read -P 0xab 0 64k' "$1" 2>&1)
  QIO_RC=$?
}
has_pattern() {
  qio_read_pattern "$1"
  ((QIO_RC == 0)) && grep -q '^read 65536/65536' <<<"$QIO_OUT" && ! grep -q 'Pattern verification failed' <<<"$QIO_OUT"
}
lacks_pattern() {
  qio_read_pattern "$1"
  grep -q '^read 65536/65536' <<<"$QIO_OUT" && grep -q 'Pattern verification failed' <<<"$QIO_OUT"
}
# overlay_info IMAGE: qemu-img info of the overlay (fails when qemu-img does).
overlay_info() { qemu-img info -U "$1" 2>&1; }

t_begin "backingfile: start creates the qcow2 overlay on the base, domain persistent"
assert_true "$ovl exists before the start" -- not test -e "$ovl"
assert_ra 0 "start" "$B" start "backingfile=$T_TMP/base.img"
t_note "start with a new overlay took ${RA_SECS}s"
assert_eq running "$(domain_state "$B")" "virsh domstate"
assert_true "no overlay $ovl" -- test -s "$ovl"
assert_rc 0 "qemu-img info of the overlay" -- overlay_info "$ovl"
info=$T_OUT
assert_match 'file format: qcow2' "$info" "qemu-img info format"
assert_match "backing file: $T_TMP/base.img" "$info" "qemu-img info backing file"
assert_match 'backing file format: raw' "$info" "qemu-img info backing format"
assert_rc 0 "virsh dominfo" -- virsh_ dominfo "$B"
assert_match 'Persistent:[[:space:]]+yes' "$T_OUT" "virsh dominfo"
t_end

t_begin "backingfile: stop leaves the definition shut off; probe 7; start reuses the overlay"
assert_ra 0 "stop" "$B" stop force_stop=true "backingfile=$T_TMP/base.img"
assert_eq "shut off" "$(domain_state "$B")" "virsh domstate after stop"
assert_ra 7 "probe" "$B" monitor "backingfile=$T_TMP/base.img"
assert_eq "" "$RA_REASON" "exit reason of the probe"
assert_rc 0 "qemu-io write a pattern to the overlay" -- qemu-io -f qcow2 -c 'write -P 0xab 0 64k' "$ovl"
assert_true "qemu-io cannot read the pattern back" -- has_pattern "$ovl"
assert_ra 0 "start again (not stateless)" "$B" start "backingfile=$T_TMP/base.img"
assert_eq running "$(domain_state "$B")" "virsh domstate"
assert_true "the overlay was recreated although stateless is unset" -- has_pattern "$ovl"
t_end

t_begin "stateless=true: start recreates the overlay"
assert_ra 0 "stop before the stateless start" "$B" stop force_stop=true "backingfile=$T_TMP/base.img"
assert_eq "shut off" "$(domain_state "$B")" "virsh domstate before the stateless start"
before=$(stat -c 'inode %i mtime %y' "$ovl")
assert_true "the pattern written into the overlay is missing before the start" -- has_pattern "$ovl"
assert_ra 0 "start" "$B" start "backingfile=$T_TMP/base.img" stateless=true
assert_eq running "$(domain_state "$B")" "virsh domstate"
assert_rc 0 "qemu-img info of the new overlay" -- overlay_info "$ovl"
assert_match 'file format: qcow2' "$T_OUT" "qemu-img info format"
assert_match "backing file: $T_TMP/base.img" "$T_OUT" "qemu-img info backing file"
assert_match 'backing file format: raw' "$T_OUT" "qemu-img info backing format"
assert_true "overlay not recreated: it still holds the data written into it" -- lacks_pattern "$ovl"
after=$(stat -c 'inode %i mtime %y' "$ovl")
assert_true "overlay not recreated: inode and mtime unchanged ($before)" -- test "$after" != "$before"
t_note "overlay $before -> $after"
t_end
ra "$B" stop force_stop=true "backingfile=$T_TMP/base.img"

# ---- start_resources ----
vm_make "$R"
VM_EXTRA_CLEANUP+=("virsh_ pool-destroy $POOL >/dev/null 2>&1; virsh_ pool-undefine $POOL >/dev/null 2>&1")
VM_EXTRA_CLEANUP+=("virsh_ net-destroy $NET >/dev/null 2>&1; virsh_ net-undefine $NET >/dev/null 2>&1")
virsh_ pool-destroy "$POOL" >/dev/null 2>&1 || true # leftovers of an earlier run
virsh_ pool-undefine "$POOL" >/dev/null 2>&1 || true
qemu-img create -q -f raw "$T_TMP/pool/v.img" 1M
sed -i "s|</devices>|  <disk type='volume' device='disk'>\n      <driver name='qemu' type='raw'/>\n      <source pool='$POOL' volume='v.img'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n  </devices>|" "$T_TMP/$R.xml"
grep -q "<source pool='$POOL' volume='v.img'/>" "$T_TMP/$R.xml"
libvirt_pool_state() { virsh_ pool-info "$POOL" 2>/dev/null | sed -n 's/^State:[[:space:]]*//p'; }
libvirt_net_active() { virsh_ net-info "$NET" 2>/dev/null | sed -n 's/^Active:[[:space:]]*//p'; }

t_begin "start_resources unset, storage pool inactive: start 1 with a reason"
assert_true "virsh pool-define-as" -- eval 'virsh_ pool-define-as "$POOL" dir --target "$T_TMP/pool" >/dev/null'
assert_eq inactive "$(libvirt_pool_state)" "pool state before"
assert_ra 1 "start" "$R" start
assert_match "$POOL|pool" "$RA_REASON" "exit reason"
assert_eq inactive "$(libvirt_pool_state)" "pool state after"
assert_true "a qemu of $R runs" -- not vm_has_qemu "$R"
assert_true "libvirt runs $R" -- not dom_is "$R" running
t_end

t_begin "start_resources=true: the pool is started, then the domain"
assert_ra 0 "start" "$R" start start_resources=true
assert_eq running "$(libvirt_pool_state)" "pool state"
assert_eq running "$(domain_state "$R")" "virsh domstate"
assert_true "no qemu process of $R" -- vm_has_qemu "$R"
t_end
ra "$R" stop force_stop=true

t_begin "start_resources=true with an isolated network"
assert_true "$R still runs" -- not vm_has_qemu "$R"
if ! virsh_ net-define <(printf "<network><name>%s</name><bridge name='ocfrst%s'/></network>\n" "$NET" "$$") >/dev/null 2>&1; then
  t_fail "virsh net-define failed"
elif ! err=$(virsh_ net-start "$NET" 2>&1); then
  t_fail "virsh net-start (iptables is installed by scripts/install-deps.sh): $(_t_short "$err")"
else
  virsh_ net-destroy "$NET" >/dev/null 2>&1
  sed -i "s|</devices>|  <interface type='network'><source network='$NET'/><model type='virtio'/></interface>\n  </devices>|" "$T_TMP/$R.xml"
  grep -q "<source network='$NET'/>" "$T_TMP/$R.xml"
  assert_eq no "$(libvirt_net_active)" "network active before the start"
  assert_ra 1 "start without start_resources" "$R" start
  assert_match "$NET|network" "$RA_REASON" "exit reason of the start without start_resources"
  assert_eq no "$(libvirt_net_active)" "network active after the start without start_resources"
  assert_true "a qemu of $R runs after the start without start_resources" -- not vm_has_qemu "$R"
  assert_ra 0 "start" "$R" start start_resources=true
  assert_eq yes "$(libvirt_net_active)" "network active after the start"
  assert_eq running "$(domain_state "$R")" "virsh domstate"
  assert_ra 0 "stop" "$R" stop force_stop=true
  assert_eq absent "$(domain_state "$R")" "virsh domstate after the stop"
fi
t_end
