#!/usr/bin/env bash
# Builds a tiny test guest (kernel + busybox initramfs) from Debian packages only.
#
#   scripts/build-guest.sh [OUTDIR]        (default OUTDIR: build/guest under the repo root)
#
# Outputs OUTDIR/vmlinuz, OUTDIR/initrd.img and OUTDIR/stamp. A rerun whose outputs exist and
# whose stamp matches this script is a no-op (cache); OCF_RS_GUEST_REBUILD=1 forces a rebuild.
# OCF_RS_GUEST_KERNEL_PKG=linux-image-<ver>-cloud-amd64 pins the kernel package.
#
# Packages (downloaded with `apt-get download`, unpacked with `dpkg-deb -x`, never installed):
#   linux-image-<ver>-cloud-amd64 (resolved from linux-image-cloud-amd64), busybox-static.
# Host tools: apt-get, apt-cache, dpkg-deb, cpio, gzip (xz/zstd only for compressed modules).
#
# The guest (serial console ttyS0) prints:
#   GUEST-BOOT                       init started
#   GUEST-READY                      acpid has the power button open: an ACPI shutdown now works
#   GUEST-HEARTBEAT n                every 2 s, n = 1, 2, 3, ...
#   GUEST-POWERBUTTON ignored|delay=N|poweroff   when the ACPI power button is pressed
#   GUEST-POWEROFF                   just before `poweroff -f`
# Kernel command-line switches read at run time:
#   ocfguest.acpi=ignore             ignore the power button entirely
#   ocfguest.shutdown_delay=N        wait N seconds after the power button before powering off
set -euo pipefail

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
ROOT=$(cd "$(dirname "$SCRIPT")/.." && pwd)
OUTDIR=${1:-$ROOT/build/guest}
case $OUTDIR in /*) ;; *) OUTDIR=$PWD/$OUTDIR ;; esac

log() { printf 'build-guest.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

SCRIPT_SUM=$(sha256sum "$SCRIPT" | cut -d' ' -f1)
if [[ ${OCF_RS_GUEST_REBUILD:-0} != 1 && -s $OUTDIR/vmlinuz && -s $OUTDIR/initrd.img && -s $OUTDIR/stamp ]] \
  && [[ $(sed -n 's/^script=//p' "$OUTDIR/stamp") == "$SCRIPT_SUM" ]]; then
  log "up to date: $OUTDIR ($(sed -n 's/^kernel=//p' "$OUTDIR/stamp"))"
  exit 0
fi

[[ $(id -u) -eq 0 ]] || die "must run as root (mknod /dev/console in the initramfs)"
for t in apt-get apt-cache dpkg-deb cpio gzip; do
  command -v "$t" >/dev/null 2>&1 || die "missing host tool: $t"
done

T0=$(date +%s%N)
WORK=$(mktemp -d /tmp/ocf-rs-guest.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"

# --- resolve and fetch packages ------------------------------------------------------------
resolve_kernel() {
  apt-cache depends linux-image-cloud-amd64 2>/dev/null \
    | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' | head -n1
}
KPKG=${OCF_RS_GUEST_KERNEL_PKG:-}
if [[ -z $KPKG ]]; then
  KPKG=$(resolve_kernel)
  if [[ -z $KPKG ]]; then
    log "apt lists do not know linux-image-cloud-amd64: apt-get update"
    apt-get update -q >&2
    KPKG=$(resolve_kernel)
  fi
fi
[[ -n $KPKG ]] || die "cannot resolve linux-image-cloud-amd64 to a concrete kernel package"
log "kernel package: $KPKG"

(cd "$WORK" && apt-get download -q -o APT::Sandbox::User=root "$KPKG" busybox-static >&2) \
  || die "apt-get download $KPKG busybox-static failed"
dpkg-deb -x "$WORK"/linux-image-*.deb "$WORK/kernel"
dpkg-deb -x "$WORK"/busybox-static_*.deb "$WORK/busybox"

KVER=$(find "$WORK/kernel/lib/modules" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | LC_ALL=C sort | head -n1)
[[ -n $KVER && -f $WORK/kernel/boot/vmlinuz-$KVER ]] || die "no boot/vmlinuz-* in $KPKG"
MODDIR=$WORK/kernel/lib/modules/$KVER
BB=$WORK/busybox/bin/busybox
[[ -x $BB ]] || die "no bin/busybox in busybox-static"

# --- initramfs tree ------------------------------------------------------------------------
R=$WORK/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,etc/acpi/PWRF,var/log,lib/modules}
cp "$BB" "$R/bin/busybox"
# Applet links made at build time (deterministic), relative so they work inside the guest.
while read -r applet; do
  [[ -n $applet && $applet != busybox ]] || continue
  [[ -e $R/bin/$applet ]] || ln -s busybox "$R/bin/$applet"
done < <("$BB" --list)
ln -sf ../bin/busybox "$R/sbin/init"
mknod -m 600 "$R/dev/console" c 5 1
mknod -m 666 "$R/dev/null" c 1 3

# Modules: evdev (input events) and button (ACPI power button), with their dependencies.
# The .deb ships no modules.dep (depmod runs at install), so read each module's depends= field.
find_module() { # NAME -> path of NAME.ko[.xz|.gz|.zst] under MODDIR/kernel
  local n=$1 alt=${1//_/-} alt2=${1//-/_}
  find "$MODDIR/kernel" \( -name "$n.ko*" -o -name "$alt.ko*" -o -name "$alt2.ko*" \) -print | LC_ALL=C sort | head -n1
}
is_builtin() { grep -qE "/(${1//[-_]/[-_]})\.ko$" "$MODDIR/modules.builtin" 2>/dev/null; }
LOAD_ORDER=()
add_module() { # NAME: append deps first, then NAME (skipping built-ins and duplicates)
  local name=$1 src plain dep deps
  local m
  for m in "${LOAD_ORDER[@]}"; do [[ $m == "$name" ]] && return 0; done
  if is_builtin "$name"; then log "module $name is built in"; return 0; fi
  src=$(find_module "$name")
  [[ -n $src ]] || die "module $name not found in $KPKG"
  plain=$WORK/mod/$name.ko
  mkdir -p "$WORK/mod"
  case $src in
    *.ko) cp "$src" "$plain" ;;
    *.ko.xz) xz -dc "$src" >"$plain" 2>/dev/null || "$BB" xzcat "$src" >"$plain" ;;
    *.ko.gz) gzip -dc "$src" >"$plain" ;;
    *.ko.zst) command -v zstd >/dev/null 2>&1 || die "zstd needed for $src"; zstd -qdc "$src" >"$plain" ;;
    *) die "unknown module format: $src" ;;
  esac
  deps=$(tr '\0' '\n' <"$plain" | sed -n 's/^depends=//p' | head -n1)
  for dep in ${deps//,/ }; do add_module "$dep"; done
  cp "$plain" "$R/lib/modules/$name.ko"
  LOAD_ORDER+=("$name")
}
add_module evdev
add_module button
printf '%s\n' "${LOAD_ORDER[@]}" >"$R/lib/modules/load-order"
log "modules: ${LOAD_ORDER[*]:-none} (kernel $KVER)"

cat >"$R/init" <<'EOF'
#!/bin/sh
# ocf-rs tiny guest: set up, then hand over to busybox init (PID 1 stays busybox init).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || true
[ -e /dev/console ] || mknod -m 600 /dev/console c 5 1
echo "GUEST-BOOT" >/dev/console

acpi=normal
delay=0
for w in $(cat /proc/cmdline); do
  case $w in
    ocfguest.acpi=*) acpi=${w#ocfguest.acpi=} ;;
    ocfguest.shutdown_delay=*) delay=${w#ocfguest.shutdown_delay=} ;;
  esac
done
case $delay in ''|*[!0-9]*) delay=0 ;; esac
printf 'OCFGUEST_ACPI=%s\nOCFGUEST_SHUTDOWN_DELAY=%s\n' "$acpi" "$delay" >/etc/ocfguest.conf

while read -r m; do
  [ -n "$m" ] && insmod "/lib/modules/$m.ko"
done </lib/modules/load-order

exec /sbin/init
EOF

cat >"$R/etc/inittab" <<'EOF'
::respawn:/bin/ocfguest-acpid
::once:/bin/ocfguest-ready
::ctrlaltdel:/bin/poweroff -f
EOF

cat >"$R/bin/ocfguest-acpid" <<'EOF'
#!/bin/sh
# busybox acpid opens /dev/input/event0, 1, ... once at start: wait for the power button first.
i=0
while ! grep -q 'Power Button' /proc/bus/input/devices 2>/dev/null; do
  i=$((i + 1)); [ $i -ge 200 ] && break; sleep 0.05
done
exec acpid -f -c /etc/acpi -l /var/log/acpid.log
EOF

cat >"$R/bin/ocfguest-ready" <<'EOF'
#!/bin/sh
# Prints GUEST-READY once acpid has an input event device open, then a heartbeat every 2 s.
while :; do
  for p in $(pidof acpid); do
    for fd in /proc/$p/fd/*; do
      case $(readlink "$fd" 2>/dev/null) in /dev/input/event*) break 3 ;; esac
    done
  done
  sleep 0.05
done
echo "GUEST-READY" >/dev/console
n=0
while :; do
  sleep 2
  n=$((n + 1))
  echo "GUEST-HEARTBEAT $n" >/dev/console
done
EOF

cat >"$R/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
# Run by busybox acpid for the ACPI power button (virsh shutdown --mode acpi).
. /etc/ocfguest.conf
if [ "$OCFGUEST_ACPI" = ignore ]; then
  echo "GUEST-POWERBUTTON ignored" >/dev/console
  exit 0
fi
if [ "$OCFGUEST_SHUTDOWN_DELAY" -gt 0 ]; then
  echo "GUEST-POWERBUTTON delay=$OCFGUEST_SHUTDOWN_DELAY" >/dev/console
  sleep "$OCFGUEST_SHUTDOWN_DELAY"
else
  echo "GUEST-POWERBUTTON poweroff" >/dev/console
fi
echo "GUEST-POWEROFF" >/dev/console
sync
poweroff -f
EOF
chmod 755 "$R/init" "$R/bin/ocfguest-acpid" "$R/bin/ocfguest-ready" "$R/etc/acpi/PWRF/00000080"

# --- pack reproducibly ---------------------------------------------------------------------
# Fixed timestamps, sorted names, root ownership, no gzip name/time.
EPOCH=${SOURCE_DATE_EPOCH:-0}
find "$R" -exec touch -h -d "@$EPOCH" {} +
mkdir -p "$OUTDIR"
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort \
  | cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -n -9 >"$WORK/initrd.img"
cp "$WORK/kernel/boot/vmlinuz-$KVER" "$WORK/vmlinuz"

rm -f "$OUTDIR/stamp"
mv -f "$WORK/vmlinuz" "$OUTDIR/vmlinuz"
mv -f "$WORK/initrd.img" "$OUTDIR/initrd.img"
chmod 644 "$OUTDIR/vmlinuz" "$OUTDIR/initrd.img"
{
  echo "script=$SCRIPT_SUM"
  echo "kernel=$KPKG"
  echo "kver=$KVER"
  echo "busybox=$(dpkg-deb -f "$WORK"/busybox-static_*.deb Version)"
  echo "initrd_sha256=$(sha256sum "$OUTDIR/initrd.img" | cut -d' ' -f1)"
} >"$OUTDIR/stamp"
log "built $OUTDIR/vmlinuz and $OUTDIR/initrd.img ($(($(($(date +%s%N) - T0)) / 1000000)) ms)"
