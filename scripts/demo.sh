#!/usr/bin/env bash
# The first command for a new user: on a fresh Debian 12 machine, as root, from a
# clone of this repository:
#
#   ./scripts/demo.sh
#
# 1. installs the Debian packages (scripts/install-deps.sh) and, when `cargo` is
#    missing, Rust through rustup (minimal profile);
# 2. builds and installs the agents (make install: /usr/lib/ocf/resource.d/rust/);
# 3. starts libvirtd (scripts/libvirt.sh) and a one-node corosync + pacemaker cluster
#    (scripts/cluster.sh, node1);
# 4. builds the guest of Pacemaker's Guest Node walk-through (scripts/build-remote-guest.sh:
#    a kernel and a busybox initramfs with pacemaker-remoted, ocf:rust:Dummy and the
#    cluster's authkey) and writes its domain XML (scripts/make-remote-domain.sh: qemu user
#    networking, pacemaker-remoted forwarded to 127.0.0.5:3121 only);
# 5. creates vm-guest1 (ocf:rust:VirtualDomain, meta remote-node=guest1: the guest becomes
#    the guest node guest1 once its start has seen pacemaker-remoted answer) and FAKE1..FAKE5
#    (ocf:rust:Dummy, FAKE2 preferring guest1), waits until guest1 is online and all are
#    Started, and prints `crm_mon -1`.
#
# Re-runnable: every step skips what is already done; resources that exist with
# the right agent and parameters are kept (and enabled), others of the same name
# are replaced. Stop everything with: scripts/cluster.sh stop; scripts/libvirt.sh stop
#
# Environment: DEMO_TIMEOUT  seconds to wait for the resources (default 120)
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
cd "$ROOT"

URI=qemu:///system
VM_RSC=vm-guest1
VM_NAME=vm-guest1
GUEST=guest1
GUEST_ADDR=127.0.0.5
VM_DIR=/var/lib/ocf-rs-demo
VM_XML=$VM_DIR/$VM_NAME.xml
READY=$VM_DIR/guest-ready@$GUEST_ADDR:3121 # monitor_scripts: start waits for remoted
FAKES=(FAKE1 FAKE2 FAKE3 FAKE4 FAKE5)
TIMEOUT=${DEMO_TIMEOUT:-120}
T0=$EPOCHREALTIME

step() { printf '\n==> %s\n' "$*"; }
log() { printf 'demo.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
elapsed() { awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

[[ $(id -u) == 0 ]] || die "run me as root (sudo $0): I install packages and start a cluster"
[[ -r /etc/debian_version ]] || log "warning: this is not Debian; the packages are Debian 12's"

# ---- 1. packages and Rust ----

step "Debian packages (scripts/install-deps.sh)"
scripts/install-deps.sh

rust_help() {
  cat >&2 <<'EOF'
demo.sh: ERROR: cargo (Rust) is not installed and rustup could not install it.
  Install Rust yourself, then run this script again, e.g.:
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    source "$HOME/.cargo/env"
  (see https://rustup.rs; Debian's own rustc is too old for this project)
EOF
  exit 1
}

step "Rust toolchain"
if ! command -v cargo >/dev/null 2>&1 && [[ -r $HOME/.cargo/env ]]; then
  # shellcheck source=/dev/null
  source "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
  command -v curl >/dev/null 2>&1 || apt-get install -y -q --no-install-recommends curl ca-certificates >/dev/null 2>&1 || true
  command -v curl >/dev/null 2>&1 || rust_help
  log "cargo not found: installing Rust with rustup (profile minimal)"
  if curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal; then
    # shellcheck source=/dev/null
    source "$HOME/.cargo/env" || rust_help
  fi
  command -v cargo >/dev/null 2>&1 || rust_help
fi
cargo --version

# ---- 2. the agents ----

step "build and install the agents (make install)"
make install

# ---- 3. libvirtd, the guest, its domain XML ----

step "libvirtd (scripts/libvirt.sh start)"
scripts/libvirt.sh start

step "one-node cluster (scripts/cluster.sh start)"
scripts/cluster.sh start

# ---- 4. the guest node's image and domain ----

step "the guest node's image (scripts/build-remote-guest.sh)"
scripts/build-remote-guest.sh

step "domain XML of $VM_NAME ($VM_XML)"
mkdir -p "$VM_DIR"
install -m 0755 scripts/guest-ready.sh "$READY"
# Written once: a running guest keeps its config (make-domain.sh draws a new UUID
# each time, and the agent identifies the running domain by the one it saw). No test
# command channel in the demo (--cmd-port 0).
kernel=$(sed -n 's|.*<kernel>\(.*\)</kernel>.*|\1|p' "$VM_XML" 2>/dev/null || true)
if [[ -s $VM_XML && -n $kernel && -s $kernel ]] && grep -q "$GUEST_ADDR:3121" "$VM_XML"; then
  echo "keeping $VM_XML"
else
  scripts/make-remote-domain.sh "$VM_NAME" "$VM_XML" --addr "$GUEST_ADDR" --cmd-port 0
  echo "wrote $VM_XML"
fi

# ---- 5. resources ----

# has_primitive ID TYPE [PARAM VALUE]: ID exists as ocf:rust:TYPE (with PARAM=VALUE).
has_primitive() {
  local xp="//primitive[@id='$1' and @class='ocf' and @provider='rust' and @type='$2']"
  (($# >= 4)) && xp+="[instance_attributes/nvpair[@name='$3' and @value='$4']]"
  cibadmin -Q --xpath "$xp" >/dev/null 2>&1
}
exists() { cibadmin -Q --xpath "//*[@id='$1']" >/dev/null 2>&1; }

# Deletes ID (whatever it is), bounded.
remove() {
  log "replacing $1 (not ocf:rust:$2 with the expected parameters)"
  timeout 60 pcs resource delete "$1" >/dev/null 2>&1 || timeout 60 pcs resource delete "$1" --force
  local i
  for ((i = 0; i < 200; i++)); do exists "$1" || return 0; sleep 0.1; done
  die "could not delete $1"
}

# ensure ID TYPE [PARAM=VALUE...]: create, keep or replace.
ensure() {
  local id=$1 type=$2
  shift 2
  local check=("$id" "$type")
  if (($#)); then check+=("${1%%=*}" "${1#*=}"); fi
  if has_primitive "${check[@]}"; then
    echo "$id exists: kept"
    pcs resource enable "$id"
    return 0
  fi
  exists "$id" && remove "$id" "$type"
  pcs resource create "$id" "ocf:rust:$type" "$@"
  echo "$id created"
}

step "resources: $VM_RSC (ocf:rust:VirtualDomain, guest node $GUEST) and ${FAKES[*]} (ocf:rust:Dummy)"
ensure "$VM_RSC" VirtualDomain config="$VM_XML" hypervisor="$URI" monitor_scripts="$READY"
# The walk-through's manual path (pcs cluster node add-guest needs pcsd): the meta
# attributes that make the VM's guest a node.
pcs resource update "$VM_RSC" meta remote-node="$GUEST" remote-addr="$GUEST_ADDR" remote-port=3121 --force
for r in "${FAKES[@]}"; do ensure "$r" Dummy; done
pcs constraint location FAKE2 prefers "$GUEST" >/dev/null 2>&1 || true
# Failures of an earlier run would keep a resource stopped: forget them.
crm_resource --cleanup >/dev/null 2>&1 || true

started() { # ID: "Started" (not Starting, not FAILED) in crm_mon
  grep -Eq "^[[:space:]]*\* $1[[:space:]]+\([^)]*\):[[:space:]]+Started " <<<"$mon"
}
all_started() {
  local r
  mon=$(crm_mon -1 -r 2>/dev/null) || return 1
  grep -Eq "GuestOnline: \[ (.* )?$GUEST(@[^ ]+)? " <<<"$mon" || return 1
  for r in "$VM_RSC" "${FAKES[@]}"; do started "$r" || return 1; done
}

step "waiting (at most ${TIMEOUT}s) until $GUEST is online and all resources are Started"
mon=""
deadline=$((SECONDS + TIMEOUT))
until all_started; do
  if ((SECONDS >= deadline)); then
    crm_mon -1 -r || true
    die "not all resources Started within ${TIMEOUT}s (see above and /var/log/ocf-rs-cluster/pacemaker.log)"
  fi
  sleep 0.2
done
echo "all Started ($(elapsed) s since the demo began)"

step "crm_mon -1"
crm_mon -1

cat <<EOF

The demo runs: a one-node cluster (node1) with the VirtualDomain resource $VM_RSC (the
guest "$VM_NAME", console in /var/log/ocf-rs-guests/$VM_NAME.console), whose guest is the
guest node $GUEST (pacemaker-remoted on $GUEST_ADDR:3121), and five Dummy resources, some
of them on $GUEST. Try for example:
  pcs constraint location FAKE4 prefers $GUEST; crm_mon -1
  kill -9 \$(cat /run/libvirt/qemu/$VM_NAME.pid)   # the cluster recovers the guest and its resources
  pcs resource disable $VM_RSC --wait; pcs resource cleanup $GUEST; pcs resource enable $VM_RSC
Stop the demo before running the test suite (it uses the same cluster and names).

To stop everything:
  scripts/cluster.sh stop; scripts/libvirt.sh stop
EOF
