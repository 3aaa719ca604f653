#!/usr/bin/env bash
# VirtualDomain against a real libvirtd: which domain is this resource's. A domain of our
# name with another UUID is never adopted (probe 7, start 1 naming both UUIDs, stop leaves
# it running); a config without <uuid> keeps the UUID libvirt assigned at start; a state
# file left for another config is not believed; the domain name is read as libvirt reads it.
# shellcheck source=tests/libvirt/lib-vm.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-vm.sh"

D=$(vm_name 1) # the resource's domain
N=$(vm_name 2) # config without <uuid>
S=$(vm_name 3) # state file of another config
X=$(vm_name 4) # namespaced decoy name
vm_make "$D"
vm_make "$N"
vm_make "$S"
vm_make "$X"
OURS=6a6e4f0e-2f0a-4c5b-9f7e-0000000000a1
OTHER=6a6e4f0e-2f0a-4c5b-9f7e-0000000000b2

# with_uuid FILE UUID: FILE's <uuid> replaced by (or set to) UUID.
with_uuid() {
  sed -i '/<uuid>/d' "$1"
  sed -i "0,/<\/name>/s||</name>\n  <uuid>$2</uuid>|" "$1"
}
dom_uuid() { virsh_ domuuid "$1" | sed '/^$/d'; }
state_file() { printf '%s\n' "$RSCTMP/VirtualDomain-$1.state"; }

t_begin "a running domain of our name with another UUID: probe 7, start 1 naming both, stop leaves it running"
with_uuid "$T_TMP/$D.xml" "$OURS"
cp "$T_TMP/$D.xml" "$T_TMP/$D-other.xml"
with_uuid "$T_TMP/$D-other.xml" "$OTHER"
virsh_ create "$T_TMP/$D-other.xml" >/dev/null
assert_eq "$OTHER" "$(dom_uuid "$D")" "UUID of the other domain"
assert_ra 7 "probe" "$D" monitor
assert_ra 7 "recurring monitor" "$D" monitor CRM_meta_interval=10000
assert_ra 1 "start" "$D" start
assert_match "$OTHER" "$RA_REASON" "start's reason names the other UUID"
assert_match "$OURS" "$RA_REASON" "start's reason names ours"
assert_ra 0 "stop" "$D" stop force_stop=true
assert_eq running "$(domain_state "$D")" "the other domain after our stop"
assert_eq "$OTHER" "$(dom_uuid "$D")" "UUID of the running domain after our stop"
t_end

t_begin "an inactive definition of our name with another UUID is not undefined by start"
virsh_ destroy "$D" >/dev/null
virsh_ define "$T_TMP/$D-other.xml" >/dev/null
assert_ra 1 "start" "$D" start
assert_eq "shut off" "$(domain_state "$D")" "the other domain's definition after our start"
assert_eq "$OTHER" "$(dom_uuid "$D")" "UUID of the defined domain"
virsh_ undefine "$D" >/dev/null
t_end

t_begin "config without <uuid>: the UUID libvirt assigned at start is kept; a re-created domain of that name is not ours"
sed -i '/<uuid>/d' "$T_TMP/$N.xml"
assert_ra 0 "start" "$N" start
assigned=$(dom_uuid "$N")
assert_match '^[0-9a-f-]{36}$' "$assigned" "UUID libvirt assigned"
assert_ra 0 "monitor" "$N" monitor CRM_meta_interval=10000
assert_match "uuid=$assigned" "$(cat "$(state_file "$N")")" "state file keeps the assigned UUID after a monitor"
virsh_ destroy "$N" >/dev/null
virsh_ create "$T_TMP/$N.xml" >/dev/null
assert_no_match "$assigned" "$(dom_uuid "$N")" "the re-created domain's UUID"
assert_ra 7 "probe" "$N" monitor
assert_ra 0 "stop" "$N" stop force_stop=true
assert_eq running "$(domain_state "$N")" "the re-created domain after our stop"
virsh_ destroy "$N" >/dev/null
t_end

t_begin "config without <uuid>: stop forgets the assigned UUID, the next start gets and keeps a new one"
assert_ra 0 "start" "$N" start
first=$(dom_uuid "$N")
assert_ra 0 "stop" "$N" stop force_stop=true
assert_eq absent "$(domain_state "$N")" "after stop"
assert_no_match "uuid=" "$(cat "$(state_file "$N")")" "state file after stop"
assert_ra 0 "start again" "$N" start
second=$(dom_uuid "$N")
assert_no_match "$first" "$second" "a new incarnation, a new UUID"
assert_ra 0 "monitor" "$N" monitor CRM_meta_interval=10000
assert_ra 0 "stop" "$N" stop force_stop=true
assert_eq absent "$(domain_state "$N")" "after the last stop"
t_end

t_begin "a state file written for another config: with the config gone, probe 7 and stop leaves the domain running"
assert_ra 0 "start" "$S" start
assert_match "config=$T_TMP/$S.xml" "$(cat "$(state_file "$S")")" "state file names the config"
# Another resource of the same id, whose config is missing, must not take this domain.
assert_ra 7 "probe with another config" "$S" monitor "config=$T_TMP/missing/$S.xml"
assert_ra 0 "stop with another config" "$S" stop "config=$T_TMP/missing/$S.xml" force_stop=true
assert_eq running "$(domain_state "$S")" "the domain after the other resource's stop"
# Its own resource, config gone (unmounted storage), still finds it.
mv "$T_TMP/$S.xml" "$T_TMP/$S.xml.away"
assert_ra 0 "probe of its own resource, config gone" "$S" monitor
mv "$T_TMP/$S.xml.away" "$T_TMP/$S.xml"
assert_ra 0 "stop" "$S" stop force_stop=true
assert_eq absent "$(domain_state "$S")" "after its own stop"
t_end

t_begin "a namespaced decoy <name> in the config: start runs and monitors the domain libvirt reads"
sed -i "0,/<\/name>/s||</name>\n  <x:name xmlns:x='urn:ocf-rs-test'>decoy-$X</x:name>|" "$T_TMP/$X.xml"
assert_match "decoy-$X" "$(cat "$T_TMP/$X.xml")" "decoy in the config"
assert_ra 0 "start" "$X" start
assert_eq running "$(domain_state "$X")" "the domain libvirt created"
assert_ra 0 "monitor" "$X" monitor CRM_meta_interval=10000
assert_ra 0 "stop" "$X" stop force_stop=true
assert_eq absent "$(domain_state "$X")" "after stop"
t_end

t_begin "a config with two <name> elements is refused, nothing is started"
sed -i "0,/<\/name>/s||</name>\n  <name>second-$X</name>|" "$T_TMP/$X.xml"
assert_ra 5 "start" "$X" start
assert_match "more than one <name>" "$RA_REASON" "exit reason"
assert_eq absent "$(domain_state "$X")" "first name"
assert_eq absent "$(domain_state "second-$X")" "second name"
t_end
