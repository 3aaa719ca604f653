# shellcheck shell=bash
# libvirt helpers of scripts/libvirt.sh and scripts/libvirt-hosts.sh; sourced after
# scripts/lib-proc.sh, not run.

# virsh_ok URI: a libvirtd answers at URI (bounded).
virsh_ok() { timeout 5 virsh -q -c "$1" version >/dev/null 2>&1; }

# The qemu driver looks these accounts up even when it runs qemu as root (without them
# libvirtd exits: "Failed to parse user 'libvirt-qemu'").
ensure_accounts() {
  getent group kvm >/dev/null || groupadd --system kvm
  getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
  getent passwd libvirt-qemu >/dev/null || useradd --system --gid libvirt-qemu --groups kvm \
    --no-create-home --home-dir /var/lib/libvirt --shell /usr/sbin/nologin libvirt-qemu
}

# our_libvirtd TINI_PIDFILE LIBVIRTD_PIDFILE SOCKET: prints the pid of OUR libvirtd: the tini
# we spawned (its pid in TINI_PIDFILE) is alive, the libvirtd its pid file names is alive and
# tini's child, and it is the process listening on SOCKET (so virsh reaches it there).
our_libvirtd() {
  local tini pid
  tini=$(read_pid "$1" tini) || return 1
  pid=$(read_pid "$2" libvirtd) || return 1
  [[ $(ppid_of "$pid") == "$tini" ]] || return 1
  listener_is "$3" "$pid" || return 1
  echo "$pid"
}

# our_virtlogd PIDFILE SOCKET: prints the pid of OUR virtlogd: the one its pid file names,
# alive, listening on SOCKET.
our_virtlogd() {
  local pid
  pid=$(read_pid "$1" virtlogd) || return 1
  listener_is "$2" "$pid" || return 1
  echo "$pid"
}

# foreign_listener SOCKET OURPID: prints the pid listening on SOCKET when it is not OURPID
# (OURPID may be empty: then any listener is foreign).
foreign_listener() {
  local p
  p=$(sock_listener "$1") || return 1
  [[ $p != "${2:-}" ]] || return 1
  echo "$p"
}
