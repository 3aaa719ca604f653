#!/usr/bin/env bash
# Conformance of the INSTALLED ocf:rust:VirtualDomain (`make install`) with what
# crm_resource, pcs and ocf-tester's meta-data checks expect. Needs no running cluster
# and no libvirtd (ocf-tester against a real domain runs in tests/libvirt/params.sh).
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
# shellcheck source=tests/lib-guest.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib-guest.sh" # xmllint_dtd, not

AGENT=${OCF_ROOT:-/usr/lib/ocf}/resource.d/rust/VirtualDomain
SHELL_AGENT=${OCF_ROOT:-/usr/lib/ocf}/resource.d/heartbeat/VirtualDomain
RNG_10=/usr/share/pcs/data/ocf-1.0.rng
RNG_11=/usr/share/pcs/data/ocf-1.1.rng
VALIDATE=(crm_resource --validate --class ocf --provider rust --agent VirtualDomain)

# The parameter names of a meta-data document, sorted, one per line.
param_names() { grep -o '<parameter name="[^"]*"' <<<"$1" | sed 's/.*name="//; s/"$//' | LC_ALL=C sort; }

# meta_data_without_libvirtd CMD...: runs CMD where no libvirtd can be reached, whatever runs
# on this machine: a private mount namespace with an empty tmpfs over /run/libvirt (the
# sockets of qemu:///system and of the other local drivers; without it no libvirtd ran).
meta_data_without_libvirtd() {
  unshare -m --propagation private -- bash -c \
    'if [ -d /run/libvirt ]; then mount -t tmpfs -o mode=0755 tmpfs /run/libvirt || exit 99; fi
     test ! -e /run/libvirt/libvirt-sock || exit 98
     exec "$@"' \
    bash "$@"
}

unset CIB_file CIB_shadow

t_begin "the agent is installed and executable"
assert_true "$AGENT is not an executable file (run make install)" -- test -x "$AGENT"
t_end

t_begin "meta-data as user nobody, with an empty environment, without libvirtd: the same document"
rc=0
md_nobody=$(meta_data_without_libvirtd su nobody -s /bin/sh -c "env -i $AGENT meta-data" 2>/dev/null) || rc=$?
assert_eq 0 "$rc" "rc of meta-data as nobody without libvirtd (99/98: the namespace could not be set up)"
md_empty=$(env -i "$AGENT" meta-data 2>/dev/null)
assert_match '<resource-agent name="VirtualDomain"' "$md_nobody" "meta-data content"
assert_eq "$md_empty" "$md_nobody" "as root and as nobody"
t_end

t_begin "OCF 1.0 meta-data is valid against ra-api-1.dtd and pcs' ocf-1.0.rng"
md10=$(env -i "$AGENT" meta-data 2>/dev/null)
assert_match '<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">' "$md10" "1.0 DOCTYPE"
assert_rc 0 "xmllint --valid (in /usr/share/resource-agents)" -- xmllint_dtd "$md10"
assert_rc 0 "xmllint --relaxng $RNG_10" -- xmllint --noout --relaxng "$RNG_10" - <<<"$md10"
assert_no_match 'reloadable=|<action name="reload-agent"' "$md10" "1.0 rendering must not carry OCF 1.1 markup"
t_end

t_begin "OCF 1.1 meta-data is valid against pcs' ocf-1.1.rng and advertises reload-agent"
md11=$(env -i OCF_RA_VERSION_MAJOR=1 OCF_RA_VERSION_MINOR=1 "$AGENT" meta-data 2>/dev/null)
assert_match '<version>1\.1</version>' "$md11" "1.1 version element"
assert_rc 0 "xmllint --relaxng $RNG_11" -- xmllint --noout --relaxng "$RNG_11" - <<<"$md11"
assert_match '<action name="reload-agent"' "$md11" "reload-agent action"
assert_match '<parameter name="monitor_scripts"[^>]*reloadable="1"' "$md11" "monitor_scripts reloadable"
assert_match '<parameter name="config"' "$md11" "config is a parameter"
assert_no_match '<parameter name="config"[^>]*reloadable="1"' "$md11" "config must not be reloadable"
t_end

t_begin "every parameter of the shell agent (resource-agents) has the same name here"
assert_true "$SHELL_AGENT missing (resource-agents is installed by scripts/install-deps.sh)" -- test -x "$SHELL_AGENT"
shell_md=$(env -i OCF_ROOT=/usr/lib/ocf "$SHELL_AGENT" meta-data 2>/dev/null)
md11=$(env -i OCF_RA_VERSION_MAJOR=1 OCF_RA_VERSION_MINOR=1 "$AGENT" meta-data 2>/dev/null)
shell_params=$(param_names "$shell_md")
assert_match '(^|'$'\n'')config('$'\n''|$)' "$shell_params" "the shell agent's meta-data lists its parameters"
missing=$(LC_ALL=C comm -23 <(printf '%s\n' "$shell_params") <(param_names "$md11") | tr '\n' ' ')
assert_eq "" "$missing" "parameters of the shell agent missing from ours"
t_note "$(wc -l <<<"$shell_params") parameters of the shell agent, all present"
t_end

t_begin "crm_resource --show-metadata ocf:rust:VirtualDomain gives OCF 1.1"
assert_rc 0 "crm_resource --show-metadata" -- crm_resource --show-metadata ocf:rust:VirtualDomain
assert_match '<version>1\.1</version>' "$T_OUT" "version seen by crm_resource"
assert_match '<action name="reload-agent"' "$T_OUT" "reload-agent seen by crm_resource"
t_end

t_begin "pcs resource describe ocf:rust:VirtualDomain lists the parameters and operations"
assert_rc 0 "pcs resource describe" -- pcs resource describe ocf:rust:VirtualDomain
assert_match '(^|[[:space:]])config \(required\)' "$T_OUT" "config listed as required"
assert_match '(^|[[:space:]])migration_transport:' "$T_OUT" "migration_transport listed"
assert_match 'migrate_to:' "$T_OUT" "migrate_to operation"
assert_match 'reload-agent:' "$T_OUT" "reload-agent operation"
assert_no_match '(^|'$'\n'')(Warning|Error):' "$T_OUT" "pcs complains"
t_end

t_begin "crm_resource --validate accepts a valid configuration, silently"
assert_rc 0 "validate config=/etc/x.xml" -- "${VALIDATE[@]}" --option config=/etc/x.xml --output-as xml
assert_match '<agent-status code="0"' "$T_OUT" "agent exit code"
assert_no_match 'source="stderr"' "$T_OUT" "stderr output"
t_end

t_begin "crm_resource --validate rejects a missing config (required) with a reason naming it"
assert_rc 6 "validate without config" -- "${VALIDATE[@]}" --output-as xml
assert_match '<agent-status code="6"' "$T_OUT" "the agent's own answer (OCF_ERR_CONFIGURED)"
assert_match 'reason="[^"]*config[^"]*"' "$T_OUT" "exit reason names config"
t_end

t_begin "crm_resource --validate rejects migration_speed=fast (OCF_ERR_CONFIGURED) naming it"
assert_rc 6 "validate migration_speed=fast" -- "${VALIDATE[@]}" --option config=/etc/x.xml \
  --option migration_speed=fast --output-as xml
assert_match '<agent-status code="6"' "$T_OUT" "agent exit code"
assert_match 'reason="[^"]*migration_speed[^"]*"' "$T_OUT" "exit reason names migration_speed"
t_end

t_begin "pcs -f resource create: valid parameters accepted with the advertised operations, unknown refused"
cib=$T_TMP/cib.xml
cibadmin --empty >"$cib"
assert_true "cibadmin --empty wrote no CIB" -- test -s "$cib"
assert_rc 0 "pcs -f resource create (valid)" -- pcs -f "$cib" resource create vmc ocf:rust:VirtualDomain \
  config=/etc/x.xml hypervisor=qemu:///system meta allow-migrate=true
prim=$(CIB_file=$cib cibadmin -Q --xpath "//primitive[@id='vmc']")
assert_match '^<primitive [^>]*class="ocf"' "$prim" "the primitive's class"
assert_match '^<primitive [^>]*provider="rust"' "$prim" "the primitive's provider"
assert_match '^<primitive [^>]*type="VirtualDomain"' "$prim" "the primitive's type"
assert_match 'name="config" value="/etc/x\.xml"' "$prim" "config in the instance attributes"
assert_match 'name="hypervisor" value="qemu:///system"' "$prim" "hypervisor in the instance attributes"
assert_match 'name="allow-migrate" value="true"' "$prim" "allow-migrate in the meta attributes"
assert_match 'name="migrate_from"' "$prim" "operations pcs copied from the meta-data"
assert_match 'name="migrate_to"' "$prim" "operations pcs copied from the meta-data"
assert_match 'name="reload-agent"' "$prim" "operations pcs copied from the meta-data"
assert_rc 1 "pcs -f resource create (bogus parameter)" -- pcs -f "$cib" resource create vmd ocf:rust:VirtualDomain \
  config=/etc/x.xml bogus_param=1
assert_match 'bogus_param' "$T_OUT" "pcs names the unknown parameter"
assert_rc 105 "vmd is in the CIB file although pcs refused it (cibadmin: 105 = no such object)" -- \
  env CIB_file="$cib" cibadmin -Q --xpath "//primitive[@id='vmd']"
t_end

t_begin "OCF 1.1 meta-data keeps unique=\"1\" beside unique-group on config (crmsh reads only unique)"
md11=$(OCF_RA_VERSION_MINOR=1 "$AGENT" meta-data)
assert_match '<parameter name="config" unique-group="config" unique="1"' "$md11" "config's attributes"
t_end

t_begin "crmsh warns when two VirtualDomain resources share a config, as with the shell agent"
cib=$T_TMP/cib-crm.xml
cibadmin --empty >"$cib"
assert_rc 0 "crm configure property" -- env CIB_file="$cib" timeout 60 crm configure property stonith-enabled=false
assert_rc 0 "crm configure primitive v1" -- env CIB_file="$cib" timeout 60 \
  crm configure primitive v1 ocf:rust:VirtualDomain params config=/etc/shared.xml
# With the warning crm commits nothing and exits 1, as it does for the shell agent.
assert_rc 1 "crm configure primitive v2 (same config)" -- env CIB_file="$cib" timeout 60 \
  crm configure primitive v2 ocf:rust:VirtualDomain params config=/etc/shared.xml
assert_match 'v1,v2 violate uniqueness for parameter "config"' "$T_OUT" "crmsh's uniqueness warning"
assert_rc 105 "v2 is not in the CIB (cibadmin: 105 = no such object)" -- \
  env CIB_file="$cib" cibadmin -Q --xpath "//primitive[@id='v2']"
t_end
