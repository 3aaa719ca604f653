#!/usr/bin/env bash
# The Debian packages (make deb) as an administrator uses them: lintian finds no error;
# ocf-rs installed with apt-get works (ocf-tester, pcs, man) and its removal leaves no
# file; ocf-rs-heartbeat diverts the shell agents, survives a reinstall of resource-agents,
# and gives them back on removal; make install never overwrites a package's file.
# Installs and removes packages on this machine: run alone, and last (it puts the
# `make install` agents back at the end).
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
# shellcheck source=tests/lib-guest.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib-guest.sh" # not

REPO=${T_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
HB=/usr/lib/ocf/resource.d/heartbeat
RUST=/usr/lib/ocf/resource.d/rust
export DEBIAN_FRONTEND=noninteractive

installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }

# Whatever happens, leave the machine as make install left it.
restore() {
  apt-get purge -y -q ocf-rs-heartbeat ocf-rs >/dev/null 2>&1 || true
  make -C "$REPO" install >/dev/null 2>&1 || true
}
t_on_exit restore
# A previous run that died midway: start clean.
if installed ocf-rs-heartbeat || installed ocf-rs; then
  apt-get purge -y -q ocf-rs-heartbeat ocf-rs >/dev/null
fi
make -C "$REPO" uninstall >/dev/null

t_begin "make deb builds ocf-rs and ocf-rs-heartbeat at the workspace's version"
assert_rc 0 "make deb" -- make -C "$REPO" deb
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -n1)
assert_match '^[0-9]+\.[0-9]+\.[0-9]+' "$version" "the workspace version"
assert_eq "$version" "$(cd "$REPO" && dpkg-parsechangelog -S Version)" "debian/changelog's version"
DEB=$(ls "$REPO"/dist/ocf-rs_"$version"_*.deb)
HBDEB=$REPO/dist/ocf-rs-heartbeat_${version}_all.deb
assert_true "no $HBDEB" -- test -f "$HBDEB"
control=$(dpkg-deb -f "$DEB")
assert_match 'Depends: [^'$'\n'']*libc6' "$control" "Depends computed by dpkg-shlibdeps"
assert_true "libvirt0 in Depends: a node without a hypervisor could not install it" -- \
  not grep -q '^Depends:.*libvirt0' <<<"$control"
assert_match 'Recommends: [^'$'\n'']*libvirt0' "$control" "libvirt0 recommended (VirtualDomain's plugin needs it)"
assert_match 'Section: admin' "$control" "section"
assert_match 'Priority: optional' "$control" "priority"
contents=$(dpkg-deb -c "$DEB")
for f in usr/share/doc/ocf-rs/copyright usr/share/doc/ocf-rs/changelog.gz \
  usr/share/man/man7/ocf_rust_VirtualDomain.7.gz usr/lib/ocf/resource.d/rust/VirtualDomain \
  usr/lib/ocf-rs/libocf_agents.so; do
  assert_match " \./$f\b" "$contents" "$f in the package"
done
t_end

t_begin "lintian finds no error in either package"
lint=$(lintian --tag-display-limit 0 "$DEB" "$HBDEB" 2>&1 | grep -v 'root privileges' || true)
t_note "lintian: ${lint:-no tags}"
assert_true "lintian errors: $lint" -- not grep -q '^E:' <<<"$lint"
t_end

t_begin "apt-get install ./ocf-rs_*.deb: the agents work (ocf-tester, pcs describe, man -w)"
assert_rc 0 "apt-get install ocf-rs" -- apt-get install -y -q "$DEB"
assert_true "ocf-rs is not installed" -- installed ocf-rs
assert_rc 0 "ocf-tester on the packaged Dummy" -- timeout 120 ocf-tester -n pkg1 -o "state=$T_TMP/pkg1.state" "$RUST/Dummy"
assert_match 'passed all tests' "$T_OUT" "ocf-tester verdict"
assert_rc 0 "pcs resource describe" -- pcs resource describe ocf:rust:VirtualDomain
assert_match 'config' "$T_OUT" "pcs lists the parameters"
assert_rc 0 "man -w" -- man -w ocf_rust_VirtualDomain
assert_match '/usr/share/man/man7/ocf_rust_VirtualDomain\.7\.gz' "$T_OUT" "the packaged manual page"
assert_rc 0 "dpkg --verify ocf-rs" -- dpkg --verify ocf-rs
assert_eq "" "$T_OUT" "dpkg --verify output"
t_end

t_begin "make install refuses to overwrite the package's files, and changes nothing"
before=$(sha256sum "$RUST/VirtualDomain")
assert_rc 2 "make install over the package" -- make -C "$REPO" install
assert_match "belongs to the package ocf-rs" "$T_OUT" "the refusal names the package"
assert_eq "$before" "$(sha256sum "$RUST/VirtualDomain")" "the packaged agent"
t_end

t_begin "ocf-rs-heartbeat diverts the shell agents: ocf:heartbeat:VirtualDomain and Dummy run ours"
shell_sum=$(sha256sum <"$HB/VirtualDomain")
assert_rc 0 "apt-get install ocf-rs-heartbeat" -- apt-get install -y -q "$HBDEB"
diversions=$(dpkg-divert --list)
assert_match "diversion of $HB/VirtualDomain to $HB/\.VirtualDomain\.distrib by ocf-rs-heartbeat" "$diversions" "dpkg-divert --list"
assert_match "diversion of $HB/Dummy to $HB/\.Dummy\.distrib by ocf-rs-heartbeat" "$diversions" "dpkg-divert --list"
assert_rc 0 "heartbeat/VirtualDomain --version" -- "$HB/VirtualDomain" --version
assert_match '^VirtualDomain \(ocf-rs\)' "$T_OUT" "what runs as ocf:heartbeat:VirtualDomain"
assert_eq "$shell_sum" "$(sha256sum <"$HB/.VirtualDomain.distrib")" "the shell agent kept aside"
assert_rc 0 "crm_resource --list-agents ocf:heartbeat" -- crm_resource --list-agents ocf:heartbeat
assert_true "the diverted shell agent is listed as an agent" -- not grep -q 'distrib' <<<"$T_OUT"
assert_rc 2 "make install PROVIDER=heartbeat while diverted" -- make -C "$REPO" install PROVIDER=heartbeat
assert_match "ocf-rs-heartbeat" "$T_OUT" "the refusal names the package that owns it"
t_end

t_begin "apt-get install --reinstall resource-agents leaves our agent in place"
assert_rc 0 "reinstall resource-agents" -- apt-get install -y -q --reinstall resource-agents
assert_rc 0 "heartbeat/VirtualDomain --version" -- "$HB/VirtualDomain" --version
assert_match '^VirtualDomain \(ocf-rs\)' "$T_OUT" "ocf:heartbeat:VirtualDomain after the reinstall"
assert_eq "$shell_sum" "$(sha256sum <"$HB/.VirtualDomain.distrib")" "the reinstalled shell agent went aside"
t_end

t_begin "removing ocf-rs-heartbeat gives the shell agents back; purging ocf-rs leaves no file"
files=$(dpkg -L ocf-rs)
assert_rc 0 "apt-get remove ocf-rs-heartbeat" -- apt-get remove -y -q ocf-rs-heartbeat
assert_eq "$shell_sum" "$(sha256sum <"$HB/VirtualDomain")" "heartbeat/VirtualDomain is the shell agent again"
assert_true "the diversion is still listed" -- not grep -q 'ocf-rs-heartbeat' <<<"$(dpkg-divert --list)"
assert_true "the kept-aside copy is still there" -- not test -e "$HB/.VirtualDomain.distrib"
assert_rc 0 "dpkg --verify resource-agents" -- dpkg --verify resource-agents
assert_eq "" "$T_OUT" "dpkg --verify resource-agents output"
assert_rc 0 "apt-get purge ocf-rs" -- apt-get purge -y -q ocf-rs
left=()
while read -r f; do
  if [[ -f $f || -L $f ]]; then left+=("$f"); fi
done <<<"$files"
assert_eq "" "${left[*]}" "files of ocf-rs left after the purge"
t_end

t_begin "make install works again once the package is gone; make uninstall removes only its files, and not another provider's"
assert_rc 0 "make install" -- make -C "$REPO" install
assert_true "no $RUST/VirtualDomain" -- test -x "$RUST/VirtualDomain"
assert_rc 0 "make uninstall PROVIDER=heartbeat (nothing installed there)" -- make -C "$REPO" uninstall PROVIDER=heartbeat
assert_eq "$shell_sum" "$(sha256sum <"$HB/VirtualDomain")" "the shell agent after make uninstall PROVIDER=heartbeat"
# A second provider shares the manual pages: its uninstall removes its agents, not them.
assert_rc 0 "make install PROVIDER=ocfrstest" -- make -C "$REPO" install PROVIDER=ocfrstest
assert_rc 0 "make uninstall PROVIDER=ocfrstest" -- make -C "$REPO" uninstall PROVIDER=ocfrstest
assert_true "ocfrstest's VirtualDomain left behind" -- not test -e /usr/lib/ocf/resource.d/ocfrstest/VirtualDomain
assert_true "the rust provider's manual page went with ocfrstest's uninstall" -- \
  test -f /usr/share/man/man7/ocf_rust_VirtualDomain.7
assert_true "the rust provider's VirtualDomain went with ocfrstest's uninstall" -- test -x "$RUST/VirtualDomain"
rmdir /usr/lib/ocf/resource.d/ocfrstest 2>/dev/null || true
t_end
