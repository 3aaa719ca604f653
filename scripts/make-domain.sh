#!/usr/bin/env bash
# Writes a libvirt domain XML for the tiny guest built by scripts/build-guest.sh.
#
#   scripts/make-domain.sh NAME OUTFILE [--ignore-acpi] [--shutdown-delay N] [--memory MiB]
#                                       [--guest-dir DIR] [--console FILE]
#
#   NAME               domain name ([A-Za-z0-9_.-]+); a fresh UUID is generated each time
#   --ignore-acpi      the guest ignores the ACPI power button (virsh shutdown does nothing)
#   --shutdown-delay N the guest powers off N seconds after the power button
#   --memory MiB       guest memory, default 96. With linux-image-6.1.0-56-cloud-amd64, 72 MiB
#                      panicked with "System is deadlocked on memory" in 3 of 4 boots (panic=-1 +
#                      on_reboot=restart then reboots it); 80 and 88 MiB booted every time.
#   --guest-dir DIR    where vmlinuz and initrd.img are (default: $OCF_RS_GUEST_DIR or
#                      build/guest under the repo root)
#   --console FILE     serial console log (default /var/log/ocf-rs-guests/NAME.console, appended)
#
# Domain type: KVM where it really works, TCG (<domain type='qemu'>) otherwise. With
# OCF_RS_VIRT_TYPE=auto (the default) the guest is booted once with qemu -enable-kvm (no libvirt)
# and kvm is used only if it prints GUEST-READY within OCF_RS_KVM_PROBE_TIMEOUT seconds (default
# 10); the answer is cached in /run/ocf-rs-libvirt/kvm-works (until the next boot). The nested
# kvm-pvm /dev/kvm of the dev machines reports KVM but boots no stock kernel: the probe gives TCG
# there. OCF_RS_VIRT_TYPE=qemu or kvm forces the choice.
set -euo pipefail

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
ROOT=$(cd "$(dirname "$SCRIPT")/.." && pwd)

log() { printf 'make-domain.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() {
  echo "usage: $0 NAME OUTFILE [--ignore-acpi] [--shutdown-delay N] [--memory MiB] [--guest-dir DIR] [--console FILE]" >&2
  exit 2
}

(($# >= 2)) || usage
NAME=$1 OUTFILE=$2
shift 2
IGNORE_ACPI=0 DELAY=0 MEMORY=96
GUEST_DIR=${OCF_RS_GUEST_DIR:-$ROOT/build/guest}
CONSOLE=""
while (($#)); do
  case $1 in
    --ignore-acpi) IGNORE_ACPI=1 ;;
    --shutdown-delay) (($# >= 2)) || usage; DELAY=$2; shift ;;
    --memory) (($# >= 2)) || usage; MEMORY=$2; shift ;;
    --guest-dir) (($# >= 2)) || usage; GUEST_DIR=$2; shift ;;
    --console) (($# >= 2)) || usage; CONSOLE=$2; shift ;;
    -h | --help) usage ;;
    *) log "unknown argument: $1"; usage ;;
  esac
  shift
done

[[ $NAME =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]] || die "bad domain name '$NAME' (use [A-Za-z0-9_.-])"
[[ $DELAY =~ ^[0-9]+$ ]] || die "--shutdown-delay needs a whole number of seconds"
[[ $MEMORY =~ ^[0-9]+$ ]] || die "--memory needs a whole number of MiB"
((MEMORY >= 80)) || log "warning: ${MEMORY} MiB is below 80 MiB; the guest kernel may run out of memory while booting"

GUEST_DIR=$(readlink -f "$GUEST_DIR") || die "guest dir not found"
KERNEL=$GUEST_DIR/vmlinuz
INITRD=$GUEST_DIR/initrd.img
[[ -s $KERNEL && -s $INITRD ]] || die "no $KERNEL / $INITRD: run scripts/build-guest.sh first"
CONSOLE=${CONSOLE:-/var/log/ocf-rs-guests/$NAME.console}
case $CONSOLE in /*) ;; *) CONSOLE=$PWD/$CONSOLE ;; esac
[[ $CONSOLE != *[\'\"\<\>\&]* ]] || die "console path must not contain quotes, <, > or &"
[[ $GUEST_DIR != *[\'\"\<\>\&]* ]] || die "guest dir must not contain quotes, <, > or &"
mkdir -p "$(dirname "$CONSOLE")"

CMDLINE="console=ttyS0 panic=-1 quiet"
((IGNORE_ACPI)) && CMDLINE+=" ocfguest.acpi=ignore"
((DELAY > 0)) && CMDLINE+=" ocfguest.shutdown_delay=$DELAY"

kvm_probe() { # boots the guest once under qemu -enable-kvm; true if it gets to GUEST-READY
  local out pid i deadline ok=1
  [[ -c /dev/kvm && -w /dev/kvm ]] || return 1
  command -v qemu-system-x86_64 >/dev/null 2>&1 || return 1
  out=$(mktemp)
  qemu-system-x86_64 -machine pc,accel=kvm -m "$MEMORY" -nodefaults -nographic -no-reboot \
    -kernel "$KERNEL" -initrd "$INITRD" -append "console=ttyS0 panic=-1 quiet" \
    -serial "file:$out" -monitor none </dev/null >/dev/null 2>&1 &
  pid=$!
  deadline=$(( ${OCF_RS_KVM_PROBE_TIMEOUT:-10} * 10 ))
  for ((i = 0; i < deadline; i++)); do
    if grep -q GUEST-READY "$out" 2>/dev/null; then ok=0; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$out"
  return $ok
}

VIRT_TYPE=${OCF_RS_VIRT_TYPE:-auto}
case $VIRT_TYPE in
  qemu | tcg) VIRT_TYPE=qemu ;;
  kvm) ;;
  auto)
    cache=/run/ocf-rs-libvirt/kvm-works
    if [[ -s $cache ]]; then
      VIRT_TYPE=$(cat "$cache")
    else
      if kvm_probe; then VIRT_TYPE=kvm; else VIRT_TYPE=qemu; fi
      { mkdir -p "$(dirname "$cache")" && echo "$VIRT_TYPE" >"$cache"; } 2>/dev/null || true
      log "KVM probe: using $VIRT_TYPE"
    fi
    ;;
  *) die "OCF_RS_VIRT_TYPE must be qemu, kvm or auto" ;;
esac

UUID=$(cat /proc/sys/kernel/random/uuid)
TCG=""
if [[ $VIRT_TYPE == qemu ]]; then
  TCG="
    <tcg>
      <tb-cache unit='MiB'>32</tb-cache>
    </tcg>"
fi

TMP=$OUTFILE.tmp.$$
cat >"$TMP" <<EOF
<domain type='$VIRT_TYPE'>
  <name>$NAME</name>
  <uuid>$UUID</uuid>
  <memory unit='MiB'>$MEMORY</memory>
  <currentMemory unit='MiB'>$MEMORY</currentMemory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$KERNEL</kernel>
    <initrd>$INITRD</initrd>
    <cmdline>$CMDLINE</cmdline>
  </os>
  <features>
    <acpi/>$TCG
  </features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <controller type='usb' model='none'/>
    <serial type='file'>
      <source path='$CONSOLE' append='on'/>
      <target port='0'/>
    </serial>
    <console type='file'>
      <source path='$CONSOLE' append='on'/>
      <target type='serial' port='0'/>
    </console>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
mv -f "$TMP" "$OUTFILE"
