#!/usr/bin/env bash
# Writes a libvirt domain XML for the guest-node image of scripts/build-remote-guest.sh:
# the domain of scripts/make-domain.sh (KVM where it really works, else TCG; direct
# kernel boot, serial console to a file) plus a NIC on qemu's own user networking.
#
#   scripts/make-remote-domain.sh NAME OUTFILE [--addr A] [--port P] [--cmd-port C]
#                                              [--memory MiB] [--guest-dir DIR] [--console FILE]
#                                              [--hostname H]
#
#   --addr A        host address qemu listens on for the forwards (default 127.0.0.5; keep it
#                   a loopback address: the command channel is a root shell)
#   --port P        host port forwarded to pacemaker-remoted's 3121 in the guest (default 3121)
#   --cmd-port C    host port forwarded to the TEST-ONLY root shell on 2323 (default 2323;
#                   0 = no forward)
#   --memory MiB    default 256. The initramfs (~24 MB gzip) unpacks to ~60 MB; at 160 MiB the
#                   kernel failed "Initramfs unpacking failed: write error" (6.1.0-57 cloud kernel).
#   --guest-dir DIR default build/remote-guest
#   --console FILE  default /var/log/ocf-rs-guests/NAME.console (appended)
#   --hostname H    guest host name (default guest1)
#
# libvirt 9.0 rejects <interface type='user'> with the passt backend, and its slirp
# <interface type='user'> cannot forward ports: the NIC is given to qemu directly through
# <qemu:commandline>: -netdev user,id=n0,restrict=on,hostfwd=... -device virtio-net-pci,netdev=n0.
# restrict=on cuts the guest off from everything but the forwarded connections.
set -euo pipefail

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
ROOT=$(cd "$(dirname "$SCRIPT")/.." && pwd)

log() { printf 'make-remote-domain.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() {
  echo "usage: $0 NAME OUTFILE [--addr A] [--port P] [--cmd-port C] [--memory MiB] [--guest-dir DIR] [--console FILE] [--hostname H]" >&2
  exit 2
}

(($# >= 2)) || usage
NAME=$1 OUTFILE=$2
shift 2
ADDR=127.0.0.5 PORT=3121 CMD_PORT=2323 MEMORY=256 HOSTNAME_=""
GUEST_DIR=$ROOT/build/remote-guest
CONSOLE_ARGS=()
while (($#)); do
  case $1 in
    --addr) (($# >= 2)) || usage; ADDR=$2; shift ;;
    --port) (($# >= 2)) || usage; PORT=$2; shift ;;
    --cmd-port) (($# >= 2)) || usage; CMD_PORT=$2; shift ;;
    --memory) (($# >= 2)) || usage; MEMORY=$2; shift ;;
    --guest-dir) (($# >= 2)) || usage; GUEST_DIR=$2; shift ;;
    --console) (($# >= 2)) || usage; CONSOLE_ARGS=(--console "$2"); shift ;;
    --hostname) (($# >= 2)) || usage; HOSTNAME_=$2; shift ;;
    -h | --help) usage ;;
    *) log "unknown argument: $1"; usage ;;
  esac
  shift
done
[[ $ADDR =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "--addr must be a loopback IPv4 address (127.x.y.z)"
valid_port() { [[ $1 =~ ^[0-9]+$ ]] && (($1 < 65536)); }
if ! valid_port "$PORT" || ((PORT == 0)); then die "bad --port $PORT"; fi
valid_port "$CMD_PORT" || die "bad --cmd-port $CMD_PORT"
[[ -z $HOSTNAME_ || $HOSTNAME_ =~ ^[A-Za-z0-9][A-Za-z0-9-]*$ ]] || die "bad --hostname"

TMP=$OUTFILE.tmp.$$
trap 'rm -f "$TMP"' EXIT
"$ROOT/scripts/make-domain.sh" "$NAME" "$TMP" --memory "$MEMORY" --guest-dir "$GUEST_DIR" "${CONSOLE_ARGS[@]}"

FWD="hostfwd=tcp:$ADDR:$PORT-:3121"
((CMD_PORT == 0)) || FWD+=",hostfwd=tcp:$ADDR:$CMD_PORT-:2323"
QEMU_NS=http://libvirt.org/schemas/domain/qemu/1.0
# The qemu namespace on the root element, the NIC before </domain>, the host name on the
# kernel command line.
sed -i \
  -e "s|^<domain type='\([a-z]*\)'>|<domain type='\1' xmlns:qemu='$QEMU_NS'>|" \
  -e "s|^</domain>|  <qemu:commandline>\n    <qemu:arg value='-netdev'/>\n    <qemu:arg value='user,id=n0,restrict=on,$FWD'/>\n    <qemu:arg value='-device'/>\n    <qemu:arg value='virtio-net-pci,netdev=n0'/>\n  </qemu:commandline>\n</domain>|" \
  "$TMP"
if [[ -n $HOSTNAME_ ]]; then
  sed -i -e "s|<cmdline>\(.*\)</cmdline>|<cmdline>\1 ocfguest.hostname=$HOSTNAME_</cmdline>|" "$TMP"
fi
if ! grep -q "xmlns:qemu='$QEMU_NS'" "$TMP" || ! grep -q '<qemu:commandline>' "$TMP"; then
  die "could not add the qemu command line to the domain of make-domain.sh"
fi
if command -v xmllint >/dev/null 2>&1; then
  xmllint --noout "$TMP" || die "the domain XML is not well-formed"
fi
mv -f "$TMP" "$OUTFILE"
