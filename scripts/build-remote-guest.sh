#!/usr/bin/env bash
# Builds the tiny guest of the Guest Node walk-through: the busybox guest of
# scripts/build-guest.sh plus a network and pacemaker-remoted, so that it can join the cluster
# as guest node guest1 (pacemaker remote, TCP 3121 through qemu user networking).
#
#   scripts/build-remote-guest.sh [OUTDIR]       (default OUTDIR: build/remote-guest)
#
# Outputs OUTDIR/vmlinuz, OUTDIR/initrd.img and OUTDIR/stamp (also OUTDIR/base: the plain
# guest, built by scripts/build-guest.sh into that private directory, and OUTDIR/debs: the
# downloaded packages). Cached by content: a rerun is a no-op while this script, the base
# guest, the cluster's authkey, the installed ocf:rust:Dummy, the host's ocf:heartbeat:Dummy and
# the shell library it sources, the host's crm_mon/crm_attribute/crm_node and their libraries,
# and the hacluster/haclient ids are unchanged.
# OCF_RS_GUEST_REBUILD=1 forces a rebuild (of both layers).
#
# On top of the base guest (GUEST-BOOT, GUEST-READY, GUEST-HEARTBEAT n, ACPI power button):
#   - virtio-net (virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
#     failover net_failover virtio_net, from the same kernel package), eth0 = 10.0.2.15/24,
#     gateway 10.0.2.2 (qemu user networking), hostname guest1 (ocfguest.hostname=NAME
#     on the kernel command line overrides it)
#   - pacemaker-remoted from the pacemaker-remote .deb (apt-get download + dpkg-deb -x, never
#     installed on the host: it conflicts with pacemaker) with every library ldd lists,
#     /usr/share/pacemaker, users hacluster/haclient with the host's ids, /etc/pacemaker/authkey
#     copied from the host (OCF_RS_AUTHKEY overrides the path), /etc/default/pacemaker with
#     PCMK_dh_max_bits=1024 (2048-bit DH parameters take 4-13 s under TCG)
#   - ocf:rust:Dummy (the host's /usr/lib/ocf/resource.d/rust/Dummy, from `make install`)
#   - ocf:heartbeat:Dummy and the files of /usr/lib/ocf/lib/heartbeat it sources (ocf-shellfuncs,
#     ocf-binaries, ocf-returncodes, ocf-directories, ocf-rarun, ocf-distro), from the host's
#     resource-agents package, run by the guest's busybox sh: the shell agent set of make bench
#   - crm_mon, crm_attribute, crm_node from the host, with their libraries
#   - TEST ONLY: a root shell on TCP 2323 (busybox nc -ll -e /bin/sh). Anyone who can reach the
#     forwarded port gets root in the guest: forward it to loopback, and only in tests.
# More console lines:
#   GUEST-NET up 10.0.2.15           eth0 configured
#   GUEST-REMOTED-LISTENING          pacemaker-remoted listens on TCP 3121
# Guest memory: the initramfs unpacks to ~60 MB of RAM; 256 MiB boots (see make-remote-domain.sh).
set -euo pipefail

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
ROOT=$(cd "$(dirname "$SCRIPT")/.." && pwd)
OUTDIR=${1:-$ROOT/build/remote-guest}
case $OUTDIR in /*) ;; *) OUTDIR=$PWD/$OUTDIR ;; esac
AUTHKEY=${OCF_RS_AUTHKEY:-/etc/pacemaker/authkey}
DUMMY=${OCF_RS_DUMMY:-/usr/lib/ocf/resource.d/rust/Dummy}
HB_DUMMY=${OCF_RS_HB_DUMMY:-/usr/lib/ocf/resource.d/heartbeat/Dummy}
HB_LIB=/usr/lib/ocf/lib/heartbeat
HB_FILES=(ocf-shellfuncs ocf-binaries ocf-returncodes ocf-directories ocf-rarun ocf-distro)
TOOLS=(/usr/sbin/crm_mon /usr/sbin/crm_attribute /usr/sbin/crm_node)
MODULES=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net)

log() { printf 'build-remote-guest.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (device nodes and ownership in the initramfs)"
for t in apt-get dpkg-deb cpio gzip ldd sha256sum getent; do
  command -v "$t" >/dev/null 2>&1 || die "missing host tool: $t"
done
[[ -s $AUTHKEY ]] || die "no $AUTHKEY: start the cluster first (scripts/cluster.sh start creates it)"
[[ -x $DUMMY ]] || die "no $DUMMY: run 'make install' first"
[[ -x $HB_DUMMY ]] || die "no $HB_DUMMY (resource-agents)"
for f in "${HB_FILES[@]}"; do [[ -r $HB_LIB/$f ]] || die "no $HB_LIB/$f (resource-agents)"; done
for t in "${TOOLS[@]}"; do [[ -x $t ]] || die "no $t (pacemaker-cli-utils)"; done
HAUSER=$(getent passwd hacluster) || die "no user hacluster on the host (install pacemaker)"
HAGROUP=$(getent group haclient) || die "no group haclient on the host (install pacemaker)"
HA_UID=$(cut -d: -f3 <<<"$HAUSER")
HA_GID=$(cut -d: -f3 <<<"$HAGROUP")

T0=$(date +%s%N)
# --- the base guest (its own cache) ----------------------------------------------------------
"$ROOT/scripts/build-guest.sh" "$OUTDIR/base" || die "scripts/build-guest.sh $OUTDIR/base failed"
KPKG=$(sed -n 's/^kernel=//p' "$OUTDIR/base/stamp")
KVER=$(sed -n 's/^kver=//p' "$OUTDIR/base/stamp")
[[ -n $KPKG && -n $KVER ]] || die "no kernel= / kver= in $OUTDIR/base/stamp"

# --- cache key: everything the image is made of ---------------------------------------------
libs_of() { # FILE... -> absolute paths of the libraries ldd lists (interpreter included)
  ldd "$@" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\) (0x.*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (0x.*/\1/p' | LC_ALL=C sort -u
}
KEY=$( {
  sha256sum "$SCRIPT" "$OUTDIR/base/stamp" "$AUTHKEY" "$DUMMY" "${TOOLS[@]}" "$HB_DUMMY" "${HB_FILES[@]/#/$HB_LIB/}"
  # shellcheck disable=SC2046 # one path per word
  sha256sum $(libs_of "$DUMMY" "${TOOLS[@]}")
  echo "ids=$HA_UID:$HA_GID"
  apt-cache policy pacemaker-remote 2>/dev/null | sed -n 's/^ *Candidate: //p'
} | sha256sum | cut -d' ' -f1)
if [[ ${OCF_RS_GUEST_REBUILD:-0} != 1 && -s $OUTDIR/vmlinuz && -s $OUTDIR/initrd.img && -s $OUTDIR/stamp ]] \
  && [[ $(sed -n 's/^key=//p' "$OUTDIR/stamp") == "$KEY" ]]; then
  log "up to date: $OUTDIR ($(sed -n 's/^size=//p' "$OUTDIR/stamp") bytes initrd)"
  exit 0
fi

WORK=$(mktemp -d /tmp/ocf-rs-remote-guest.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"

# --- packages (downloaded once into OUTDIR/debs) --------------------------------------------
DEBS=$OUTDIR/debs
mkdir -p "$DEBS"
fetch() { # PACKAGE -> path of its .deb in DEBS (downloads the candidate version if missing)
  local pkg=$1 ver f
  ver=$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')
  [[ -n $ver && $ver != "(none)" ]] || die "apt does not know $pkg (apt-get update?)"
  f=$(find "$DEBS" -maxdepth 1 -name "${pkg}_${ver//:/%3a}_*.deb" | head -n1)
  if [[ -z $f ]]; then
    (cd "$DEBS" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$ver" >&2) || die "apt-get download $pkg=$ver failed"
    f=$(find "$DEBS" -maxdepth 1 -name "${pkg}_${ver//:/%3a}_*.deb" | head -n1)
  fi
  [[ -n $f ]] || die "no .deb for $pkg in $DEBS"
  printf '%s\n' "$f"
}
KDEB=$(fetch "$KPKG")
RDEB=$(fetch pacemaker-remote)
dpkg-deb -x "$KDEB" "$WORK/kernel"
dpkg-deb -x "$RDEB" "$WORK/remote"
RVER=$(dpkg-deb -f "$RDEB" Version)
HOSTVER=$(dpkg-query -W -f '${Version}' libcrmcommon34 2>/dev/null || true)
[[ -z $HOSTVER || $HOSTVER == "$RVER" ]] || log "warning: pacemaker-remote $RVER, host libcrmcommon34 $HOSTVER"
REMOTED=$WORK/remote/usr/sbin/pacemaker-remoted
[[ -x $REMOTED ]] || die "no usr/sbin/pacemaker-remoted in $RDEB"

# --- the tree: the base initramfs, then our layer --------------------------------------------
R=$WORK/root
mkdir -p "$R"
(cd "$R" && gzip -dc "$OUTDIR/base/initrd.img" | cpio --quiet -idm) || die "cannot unpack $OUTDIR/base/initrd.img"
[[ -x $R/bin/busybox && -f $R/lib/modules/load-order && -f $R/etc/inittab ]] \
  || die "the base initramfs does not look like scripts/build-guest.sh's"

# Kernel modules: the virtio-net chain, in this order (dependencies checked, not guessed).
MODDIR=$WORK/kernel/lib/modules/$KVER
[[ -d $MODDIR ]] || die "$KDEB has no lib/modules/$KVER"
for m in "${MODULES[@]}"; do
  if grep -qE "/(${m//[-_]/[-_]})\.ko$" "$MODDIR/modules.builtin" 2>/dev/null; then
    log "module $m is built in"; continue
  fi
  src=$(find "$MODDIR/kernel" \( -name "$m.ko*" -o -name "${m//_/-}.ko*" \) -print | LC_ALL=C sort | head -n1)
  [[ -n $src ]] || die "module $m not found in $KPKG"
  case $src in
    *.ko) cp "$src" "$R/lib/modules/$m.ko" ;;
    *.ko.xz) xz -dc "$src" >"$R/lib/modules/$m.ko" ;;
    *.ko.gz) gzip -dc "$src" >"$R/lib/modules/$m.ko" ;;
    *.ko.zst) zstd -qdc "$src" >"$R/lib/modules/$m.ko" ;;
    *) die "unknown module format: $src" ;;
  esac
  deps=$(tr '\0' '\n' <"$R/lib/modules/$m.ko" | sed -n 's/^depends=//p' | head -n1)
  for d in ${deps//,/ }; do
    grep -qx "$d" "$R/lib/modules/load-order" || die "module $m needs $d, which is not loaded before it"
  done
  grep -qx "$m" "$R/lib/modules/load-order" || echo "$m" >>"$R/lib/modules/load-order"
done

# Executables and every library ldd lists, at the paths ldd prints (the loader's defaults).
install_exe() { # SRC DEST (DEST inside the tree)
  mkdir -p "$(dirname "$R$2")"
  cp -L "$1" "$R$2"
  chmod 755 "$R$2"
}
install_exe "$REMOTED" /usr/sbin/pacemaker-remoted
ln -sf pacemaker-remoted "$R/usr/sbin/pacemaker_remoted"
for t in "${TOOLS[@]}"; do install_exe "$t" "$t"; done
mkdir -p "$R/usr/lib/ocf/resource.d/rust" "$R/usr/lib/ocf/lib/heartbeat"
install_exe "$DUMMY" /usr/lib/ocf/resource.d/rust/Dummy
mkdir -p "$R/usr/lib/ocf/resource.d/heartbeat"
install_exe "$HB_DUMMY" /usr/lib/ocf/resource.d/heartbeat/Dummy
for f in "${HB_FILES[@]}"; do install -m 0644 "$HB_LIB/$f" "$R$HB_LIB/$f"; done
nlibs=0
while read -r lib; do
  [[ -n $lib ]] || continue
  mkdir -p "$(dirname "$R$lib")"
  cp -L "$lib" "$R$lib"
  nlibs=$((nlibs + 1))
done < <(libs_of "$REMOTED" "${TOOLS[@]}" "$DUMMY")
# Check inside the tree that nothing is missing: every executable loads with the tree's libraries only.
for exe in /usr/sbin/pacemaker-remoted "${TOOLS[@]}" /usr/lib/ocf/resource.d/rust/Dummy; do
  out=$(chroot "$R" /lib64/ld-linux-x86-64.so.2 --list "$exe" 2>&1) || die "$exe does not load in the guest tree: $out"
  missing=$(grep 'not found' <<<"$out" || true)
  [[ -z $missing ]] || die "$exe in the guest: $missing"
done
# The shell Dummy runs with the guest's busybox: its meta-data must come out whole in the tree.
out=$(chroot "$R" /bin/sh -c 'env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin OCF_ROOT=/usr/lib/ocf \
  /usr/lib/ocf/resource.d/heartbeat/Dummy meta-data' 2>&1) || die "ocf:heartbeat:Dummy meta-data in the guest tree: $out"
grep -q '</resource-agent>' <<<"$out" || die "ocf:heartbeat:Dummy meta-data in the guest tree is cut short: $out"
mkdir -p "$R/usr/share"
cp -a /usr/share/pacemaker "$R/usr/share/pacemaker"

# Users, groups, name service (files only; glibc 2.36 has the files backend built in).
cat >"$R/etc/passwd" <<EOF
root:x:0:0:root:/root:/bin/sh
hacluster:x:$HA_UID:$HA_GID:cluster user:/var/lib/pacemaker:/bin/false
EOF
cat >"$R/etc/group" <<EOF
root:x:0:
haclient:x:$HA_GID:hacluster
EOF
printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files\n' >"$R/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n10.0.2.15 guest1\n' >"$R/etc/hosts"
mkdir -p "$R/root"

# The cluster's key, and remoted's environment (the unit's EnvironmentFile).
mkdir -p "$R/etc/pacemaker" "$R/etc/default"
cp "$AUTHKEY" "$R/etc/pacemaker/authkey"
chown "0:$HA_GID" "$R/etc/pacemaker/authkey"
chmod 640 "$R/etc/pacemaker/authkey"
cat >"$R/etc/default/pacemaker" <<'EOF'
PCMK_logfile=/var/log/pacemaker/pacemaker.log
PCMK_logfacility=none
PCMK_dh_max_bits=1024
EOF

# Runtime directories.
mkdir -p "$R"/var/lib/pacemaker/{cib,pengine,blackbox,cores} "$R/var/log/pacemaker" "$R/var/lib/heartbeat" \
  "$R/run/pacemaker" "$R/run/resource-agents" "$R/var/lock" "$R/dev/shm"
chown -R "$HA_UID:$HA_GID" "$R/var/lib/pacemaker" "$R/var/log/pacemaker" "$R/run/pacemaker"
chmod 770 "$R/var/log/pacemaker"
[[ -e $R/var/run ]] || ln -s ../run "$R/var/run"
chmod 1777 "$R/tmp"

# Boot-time set-up, remoted, its readiness line, the test command channel.
cat >"$R/bin/ocfguest-remote-setup" <<'EOF'
#!/bin/sh
# busybox init sysinit step: runs before every other inittab entry.
name=guest1
for w in $(cat /proc/cmdline); do
  case $w in ocfguest.hostname=*) name=${w#ocfguest.hostname=} ;; esac
done
hostname "$name"
# /dev is a devtmpfs (mounted by the base guest's /init): it has neither shm nor pts.
# libqb's IPC (crm_mon, crm_attribute through pacemaker-remoted) needs /dev/shm.
mkdir -p /dev/shm /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm || echo "GUEST-SETUP no /dev/shm" >/dev/console
mount -t devpts devpts /dev/pts 2>/dev/null
ip link set lo up
i=0
while ! ip link show eth0 >/dev/null 2>&1; do
  i=$((i + 1)); [ $i -ge 100 ] && { echo "GUEST-NET no eth0" >/dev/console; exit 0; }
  sleep 0.05
done
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
ip route add default via 10.0.2.2
echo "GUEST-NET up 10.0.2.15" >/dev/console
EOF
cat >"$R/bin/ocfguest-remoted" <<'EOF'
#!/bin/sh
# pacemaker-remoted in the foreground (inittab "once": a killed remoted stays dead, as the
# walk-through's recovery test expects; the cluster then recovers the whole guest).
set -a
. /etc/default/pacemaker
set +a
exec /usr/sbin/pacemaker-remoted >>/var/log/pacemaker/remoted.out 2>&1
EOF
cat >"$R/bin/ocfguest-remote-watch" <<'EOF'
#!/bin/sh
# Prints GUEST-REMOTED-LISTENING once something listens on TCP 3121 (0C31, state 0A).
while :; do
  if grep -qE '^ *[0-9]+: [0-9A-F]+:0C31 [0-9A-F]+:[0-9A-F]+ 0A ' /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
    echo "GUEST-REMOTED-LISTENING" >/dev/console
    exit 0
  fi
  sleep 0.05
done
EOF
cat >"$R/bin/ocfguest-cmd" <<'EOF'
#!/bin/sh
# TEST ONLY: a root shell for every connection to TCP 2323.
exec nc -ll -p 2323 -e /bin/sh
EOF
chmod 755 "$R/bin/ocfguest-remote-setup" "$R/bin/ocfguest-remoted" "$R/bin/ocfguest-remote-watch" "$R/bin/ocfguest-cmd"
{
  echo "::sysinit:/bin/ocfguest-remote-setup"
  cat "$R/etc/inittab"
  echo "::once:/bin/ocfguest-remoted"
  echo "::once:/bin/ocfguest-remote-watch"
  echo "::respawn:/bin/ocfguest-cmd"
} >"$R/etc/inittab.new"
mv "$R/etc/inittab.new" "$R/etc/inittab"

# --- pack (reproducible: fixed times, sorted names, owners as in the tree) -------------------
EPOCH=${SOURCE_DATE_EPOCH:-0}
find "$R" -exec touch -h -d "@$EPOCH" {} +
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc --reproducible) \
  | gzip -n -6 >"$WORK/initrd.img"
UNPACKED=$(du -sb "$R" | cut -f1)
mkdir -p "$OUTDIR"
rm -f "$OUTDIR/stamp"
cp "$OUTDIR/base/vmlinuz" "$WORK/vmlinuz"
mv -f "$WORK/vmlinuz" "$OUTDIR/vmlinuz"
mv -f "$WORK/initrd.img" "$OUTDIR/initrd.img"
chmod 644 "$OUTDIR/vmlinuz" "$OUTDIR/initrd.img"
SIZE=$(stat -c %s "$OUTDIR/initrd.img")
{
  echo "key=$KEY"
  echo "kernel=$KPKG"
  echo "pacemaker_remote=$RVER"
  echo "authkey_sha256=$(sha256sum "$AUTHKEY" | cut -d' ' -f1)"
  echo "libraries=$nlibs"
  echo "size=$SIZE"
  echo "unpacked=$UNPACKED"
  echo "initrd_sha256=$(sha256sum "$OUTDIR/initrd.img" | cut -d' ' -f1)"
} >"$OUTDIR/stamp"
log "built $OUTDIR (initrd $SIZE bytes, $UNPACKED unpacked, $nlibs libraries, $(($(($(date +%s%N) - T0)) / 1000000)) ms)"
