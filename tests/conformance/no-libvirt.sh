#!/usr/bin/env bash
# The INSTALLED ocf:rust:VirtualDomain on a node without libvirt (a quorum or storage
# node): every action runs in a private mount namespace in which libvirt's client library
# does not exist (an overlay over the library directory whites out libvirt.so*; virsh
# cannot start there). What Pacemaker must hear is "not installed" (5), and 0 for stop,
# never a generic error that ends in fencing. Also: with libvirt there but the agent's
# plugin hidden, stop answers 1 (whether a domain runs cannot be known). Needs no libvirtd.
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

AGENT=${OCF_ROOT:-/usr/lib/ocf}/resource.d/rust/VirtualDomain
LIBDIR=${OCF_RS_LIBDIR:-/usr/lib/ocf-rs}
PLUGIN=$LIBDIR/libocf_agents.so
# The directory of libvirt's client library as the loader finds it (its real file).
LIBVIRT_SO=$(ldconfig -p | awk '$1 == "libvirt.so.0" && !found { print $NF; found = 1 }')
LIBVIRT_DIR=$(dirname "$(readlink -f "${LIBVIRT_SO:-/nonexistent/libvirt.so.0}")")

# without_libvirt CMD...: runs CMD where libvirt.so* does not exist: a private mount
# namespace with an overlay over libvirt's directory whose upper layer whites those files
# out (a character device 0:0); the mounts end with the namespace. Exits 99 when the namespace cannot be set up, 98 when
# libvirt.so.0 is still there.
without_libvirt() {
  unshare -m --propagation private -- bash -c '
    dir=$1 tmp=$2; shift 2
    up=$(mktemp -d "$tmp/nolibvirt.XXXXXX") || exit 99
    mount -t tmpfs -o mode=0755 tmpfs "$up" || exit 99
    mkdir "$up/u" "$up/w" || exit 99
    for f in "$dir"/libvirt.so*; do mknod "$up/u/${f##*/}" c 0 0 || exit 99; done
    mount -t overlay overlay -o "lowerdir=$dir,upperdir=$up/u,workdir=$up/w" "$dir" || exit 99
    test ! -e "$dir/libvirt.so.0" || exit 98
    exec "$@"' \
    bash "$LIBVIRT_DIR" "$T_TMP" "$@"
}

# without_plugin CMD...: runs CMD with libvirt in place but an empty directory over the
# plugin's (98: the plugin is still there).
without_plugin() {
  unshare -m --propagation private -- bash -c '
    mount -t tmpfs -o mode=0755 tmpfs "$1" || exit 99
    test ! -e "$1/libocf_agents.so" || exit 98
    shift; exec "$@"' \
    bash "$LIBDIR" "$@"
}

# The one exit-reason line of an agent's output.
reason() { grep '^ocf-exit-reason:' <<<"$1" || true; }

CONFIG=$T_TMP/vm-none.xml
cat >"$CONFIG" <<'EOF'
<domain type='qemu'><name>ocf-rs-nolibvirt</name><uuid>0c5e4a6f-2b0e-4d2b-8d6c-5e0000000a01</uuid><memory>65536</memory><os><type>hvm</type></os></domain>
EOF
RSCTMP=$T_TMP/rsctmp
mkdir -m 0755 "$RSCTMP"
# ra ACTION [VAR=VALUE...]: the agent's environment for resource vm-none.
ra_env=(env -i PATH="$PATH" OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=vm-none HA_RSCTMP="$RSCTMP"
  OCF_RESKEY_config="$CONFIG" OCF_RESKEY_hypervisor=qemu:///system OCF_RESKEY_CRM_meta_timeout=20000)

t_begin "the installed VirtualDomain links no libvirt; its plugin does, outside the provider directory"
assert_true "$AGENT is not an executable file (run make install)" -- test -x "$AGENT"
assert_true "$PLUGIN is not installed (run make install)" -- test -f "$PLUGIN"
assert_rc 0 "ldd $AGENT" -- ldd "$AGENT"
assert_no_match 'libvirt' "$T_OUT" "libraries of the agent's binary"
assert_rc 0 "ldd $PLUGIN" -- ldd "$PLUGIN"
assert_match 'libvirt\.so\.0 => /' "$T_OUT" "libraries of the plugin"
so=$(find "$(dirname "$AGENT")" -maxdepth 1 -name '*.so*' -print)
assert_eq "" "$so" "shared objects in the provider directory (pcs and crm list it)"
t_end

t_begin "the hidden libvirt is gone for the dynamic loader: virsh cannot start, ldd of the plugin says so"
assert_true "no libvirt.so.0 found by ldconfig -p" -- test -n "$LIBVIRT_SO"
assert_rc 127 "virsh --version without libvirt" -- without_libvirt virsh --version
assert_match 'libvirt\.so\.0: cannot open shared object file' "$T_OUT" "the loader's complaint"
assert_rc 0 "ldd of the plugin without libvirt" -- without_libvirt ldd "$PLUGIN"
assert_match 'libvirt\.so\.0 => not found' "$T_OUT" "ldd of the plugin"
t_end

t_begin "without libvirt: meta-data answers 0 with the same document, usage 0"
md=$(env -i "$AGENT" meta-data 2>/dev/null)
rc=0
md_hidden=$(without_libvirt env -i "$AGENT" meta-data 2>/dev/null) || rc=$?
assert_eq 0 "$rc" "rc of meta-data without libvirt"
assert_match '<resource-agent name="VirtualDomain"' "$md_hidden" "meta-data content"
assert_eq "$md" "$md_hidden" "meta-data with and without libvirt"
rc=0
md11=$(without_libvirt env -i OCF_RA_VERSION_MINOR=1 "$AGENT" meta-data 2>/dev/null) || rc=$?
assert_eq 0 "$rc" "rc of OCF 1.1 meta-data without libvirt"
assert_match '<action name="reload-agent"' "$md11" "OCF 1.1 rendering"
assert_rc 0 "usage without libvirt" -- without_libvirt "$AGENT" usage
assert_match '^usage: VirtualDomain \{' "$T_OUT" "usage line"
t_end

t_begin "without libvirt: validate-all checks the parameters at level 0 (0, or 6 naming one), 5 naming libvirt at level 10"
assert_rc 0 "validate-all (level 0), valid configuration" -- without_libvirt "${ra_env[@]}" "$AGENT" validate-all
assert_eq "" "$T_OUT" "output of a passing validate-all (pcs shows any as a warning)"
assert_rc 6 "validate-all (level 0), force_stop=maybe" -- without_libvirt "${ra_env[@]}" OCF_RESKEY_force_stop=maybe "$AGENT" validate-all
assert_match "^ocf-exit-reason:.*force_stop" "$(reason "$T_OUT")" "exit reason"
assert_rc 0 "reload-agent" -- without_libvirt "${ra_env[@]}" "$AGENT" reload-agent
assert_rc 5 "validate-all OCF_CHECK_LEVEL=10" -- without_libvirt "${ra_env[@]}" OCF_CHECK_LEVEL=10 "$AGENT" validate-all
assert_match '^ocf-exit-reason:libvirt is not installed on this node: .*libvirt\.so\.0' "$(reason "$T_OUT")" "exit reason"
assert_eq 1 "$(grep -c '^ocf-exit-reason:' <<<"$T_OUT")" "exit-reason lines"
t_end

t_begin "without libvirt: start, probe, recurring monitor, migrate_to and migrate_from answer 5 naming libvirt; stop 0"
assert_rc 5 "start" -- without_libvirt "${ra_env[@]}" "$AGENT" start
assert_match '^ocf-exit-reason:libvirt is not installed on this node: .*libvirt\.so\.0' "$(reason "$T_OUT")" "start's exit reason"
assert_rc 5 "probe" -- without_libvirt "${ra_env[@]}" OCF_RESKEY_CRM_meta_interval=0 "$AGENT" monitor
assert_match 'libvirt is not installed' "$(reason "$T_OUT")" "the probe's exit reason"
assert_rc 5 "recurring monitor" -- without_libvirt "${ra_env[@]}" OCF_RESKEY_CRM_meta_interval=10000 "$AGENT" monitor
assert_match 'libvirt is not installed' "$(reason "$T_OUT")" "the monitor's exit reason"
assert_rc 5 "migrate_to" -- without_libvirt "${ra_env[@]}" OCF_RESKEY_CRM_meta_migrate_target=node2 "$AGENT" migrate_to
assert_match 'libvirt is not installed' "$(reason "$T_OUT")" "migrate_to's exit reason"
assert_rc 5 "migrate_from" -- without_libvirt "${ra_env[@]}" OCF_RESKEY_CRM_meta_migrate_source=node2 "$AGENT" migrate_from
assert_rc 0 "stop" -- without_libvirt "${ra_env[@]}" "$AGENT" stop
assert_match '^ocf-exit-reason:libvirt is not installed on this node: .*no domain runs on this node' "$(reason "$T_OUT")" "stop says why"
assert_rc 0 "stop with a bad value and no config file" -- without_libvirt "${ra_env[@]}" OCF_RESKEY_config=/nonexistent/x.xml OCF_RESKEY_force_stop=maybe "$AGENT" stop
t_end

t_begin "without libvirt, a hypervisor URI naming another host: stop, probe and monitor answer 1 (never 0 or 7), start 5"
remote=(OCF_RESKEY_hypervisor=qemu+ssh://root@elsewhere/system)
assert_rc 1 "stop" -- without_libvirt "${ra_env[@]}" "${remote[@]}" "$AGENT" stop
assert_match '^ocf-exit-reason:whether the domain runs on root@elsewhere cannot be known here: libvirt is not installed' \
  "$(reason "$T_OUT")" "stop says why"
assert_rc 1 "probe" -- without_libvirt "${ra_env[@]}" "${remote[@]}" OCF_RESKEY_CRM_meta_interval=0 "$AGENT" monitor
assert_rc 1 "recurring monitor" -- without_libvirt "${ra_env[@]}" "${remote[@]}" OCF_RESKEY_CRM_meta_interval=10000 "$AGENT" monitor
assert_rc 5 "start" -- without_libvirt "${ra_env[@]}" "${remote[@]}" "$AGENT" start
t_end

t_begin "libvirt there but the plugin hidden: stop and probe answer 1 naming the plugin, start 5, validate-all level 0 still 0"
assert_rc 1 "stop without the plugin" -- without_plugin "${ra_env[@]}" "$AGENT" stop
assert_match "^ocf-exit-reason:the agent's plugin $PLUGIN is not installed" "$(reason "$T_OUT")" "stop's exit reason"
assert_rc 1 "probe without the plugin" -- without_plugin "${ra_env[@]}" OCF_RESKEY_CRM_meta_interval=0 "$AGENT" monitor
assert_match "plugin $PLUGIN" "$(reason "$T_OUT")" "the probe's exit reason"
assert_rc 5 "start without the plugin" -- without_plugin "${ra_env[@]}" "$AGENT" start
assert_match "plugin $PLUGIN" "$(reason "$T_OUT")" "start's exit reason"
assert_rc 0 "validate-all (level 0) without the plugin" -- without_plugin "${ra_env[@]}" "$AGENT" validate-all
t_end

t_begin "with libvirt and the plugin, the actions run in the plugin: a probe of a config file that is gone answers 7"
assert_rc 7 "probe, config missing, nothing cached" -- "${ra_env[@]}" OCF_RESKEY_config=/nonexistent/x.xml OCF_RESKEY_CRM_meta_interval=0 "$AGENT" monitor
assert_rc 0 "stop, config missing, nothing cached" -- "${ra_env[@]}" OCF_RESKEY_config=/nonexistent/x.xml "$AGENT" stop
t_end
