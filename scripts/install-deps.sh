#!/usr/bin/env bash
# Installs the Debian 12 packages ocf-rs needs to build, test and run its demo.
# Idempotent: packages already present are skipped by apt. Needs root.
set -euo pipefail

packages=(
  # build
  build-essential pkg-config libvirt-dev
  # cluster
  pacemaker pacemaker-cli-utils corosync pcs crmsh resource-agents
  # libvirt + qemu (TCG or KVM)
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86
  # libvirt's virtual networks (start_resources) need its firewall backend
  iptables
  # guest image, namespaces, checks, benchmarks
  busybox-static cpio tini iproute2 libxml2-utils ncat hyperfine time strace gnuplot-nox
  # the daemon scripts ask the kernel which pid listens on a socket (scripts/lib-proc.sh)
  python3
  # the Debian package (make deb), its lint, and the manual pages' checks
  dpkg-dev fakeroot lintian man-db groff-base
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done

# Debian 12's qemu-system-x86 is 7.2; a newer qemu-utils from backports breaks it,
# so pin qemu-utils to the 7.2 build of the same archive.
qemu_utils_installed=$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)
need_qemu_utils=0
case "$qemu_utils_installed" in 1:7.2*) ;; *) need_qemu_utils=1 ;; esac

if ((${#missing[@]} == 0 && need_qemu_utils == 0)); then
  echo "install-deps: all packages present"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
args=("${missing[@]}")
if ((need_qemu_utils)); then
  v=$(apt-cache madison qemu-utils | awk -F'|' '{gsub(/ /,"",$2); print $2}' | grep '^1:7\.2' | sort -V | tail -n1)
  [ -n "$v" ] || { echo "install-deps: no qemu-utils 7.2 in the archive" >&2; exit 1; }
  args+=("qemu-utils=$v")
fi
apt-get install -y -q --no-install-recommends --allow-downgrades "${args[@]}" qemu-block-extra- 
