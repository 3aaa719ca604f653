#!/usr/bin/env bash
# VirtualDomain against a real libvirtd: the user's config file keeps what it is. A config
# that is a symlink stays a symlink when save_config_on_stop writes the definition back (its
# target is replaced, with its mode); a config in libvirt's own directory, removed by the
# undefine before a transient start, is written back with its mode.
# shellcheck source=tests/libvirt/lib-vm.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-vm.sh"

L=$(vm_name 1) # config reached through a symlink
U=$(vm_name 2) # config in /etc/libvirt/qemu, persistently defined
vm_make "$L"
vm_make "$U"

t_begin "save_config_on_stop through a symlinked config: the link stays, its target gets the definition and keeps its mode"
mkdir -p "$T_TMP/shared" "$T_TMP/links"
mv "$T_TMP/$L.xml" "$T_TMP/shared/$L.xml"
chmod 640 "$T_TMP/shared/$L.xml"
ln -s "$T_TMP/shared/$L.xml" "$T_TMP/links/$L.xml"
before=$(sha256sum <"$T_TMP/shared/$L.xml")
assert_ra 0 "start" "$L" start "config=$T_TMP/links/$L.xml"
assert_wait 60 "guest $L printed no GUEST-READY" -- vm_wait_ready "$L"
# A graceful stop saves the definition first (a forced one has nothing to save).
assert_ra 0 "stop" "$L" stop "config=$T_TMP/links/$L.xml" save_config_on_stop=true
assert_true "$T_TMP/links/$L.xml is no longer a symlink" -- test -L "$T_TMP/links/$L.xml"
assert_eq "$T_TMP/shared/$L.xml" "$(readlink "$T_TMP/links/$L.xml")" "the link's target"
assert_no_match "^$before\$" "$(sha256sum <"$T_TMP/shared/$L.xml")" "the target's content (not written back?)"
assert_eq 640 "$(stat -c %a "$T_TMP/shared/$L.xml")" "mode of the target"
assert_match "<name>$L</name>" "$(cat "$T_TMP/shared/$L.xml")" "the target holds the definition"
assert_eq absent "$(domain_state "$L")" "after stop"
t_end

t_begin "a config in libvirt's directory, removed by the undefine before a transient start, is written back with its mode"
cfg=/etc/libvirt/qemu/$U.xml
virsh_ define "$T_TMP/$U.xml" >/dev/null
t_on_exit rm -f -- "$cfg"
assert_true "virsh define wrote no $cfg" -- test -s "$cfg"
chmod 644 "$cfg"
assert_ra 0 "start" "$U" start "config=$cfg"
assert_true "$cfg is gone after start" -- test -s "$cfg"
assert_eq 644 "$(stat -c %a "$cfg")" "mode of the config written back"
assert_eq running "$(domain_state "$U")" "after start"
assert_ra 0 "stop" "$U" stop "config=$cfg" force_stop=true
assert_eq absent "$(domain_state "$U")" "after stop (transient: no definition left)"
t_end
