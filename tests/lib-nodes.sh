# shellcheck shell=bash
# Cluster nodes made of the hosts of scripts/libvirt-hosts.sh (ocfa, ocfb, ocfc: each its own
# network, mount and UTS namespace with its own libvirtd), each running its own corosync and
# pacemaker: the multi-node clusters of the migration and scale layers. Sourced after
# tests/lib.sh and tests/lib-guest.sh.
#
#   pcmk_authkey                 the machine's /etc/pacemaker/authkey, created as scripts/cluster.sh
#                                does when absent (before scripts/build-remote-guest.sh copies it)
#   nodes_init CLUSTER NODE...   the nodes and the cluster name; writes the corosync authkey
#                                and an empty seed CIB into $T_TMP (seed_option adds to it)
#   seed_option NAME VALUE       a cluster option in the seed CIB
#   seed_rsc_defaults NAME VALUE the resource default in the seed CIB (one only)
#   node_files HOST              private corosync/pacemaker directories bound over the standard
#                                paths inside HOST (after `libvirt-hosts.sh up HOST`)
#   node_start HOST              corosync, then pacemakerd, each in its own session inside HOST
#   node_stop HOST               pacemakerd (bounded wait), then corosync
#   on HOST CMD...               CMD inside HOST with a clean environment
#   plog HOST                    HOST's pacemaker.log
#   pid_in HOST COMM             the pid of the process named COMM inside HOST
#
# Every node has the same /etc/pacemaker/authkey (the one of the machine, which the guest-node
# image of scripts/build-remote-guest.sh carries; created as scripts/cluster.sh does when absent).
# Two nodes get votequorum's two_node; more get plain majority quorum.

NODES_SH=$T_REPO/scripts/libvirt-hosts.sh
NODES=()
NODES_CLUSTER=""
CLEAN_PATH=/usr/sbin:/usr/bin:/sbin:/bin
declare -A NODE_ADDR=([ocfa]=10.213.99.1 [ocfb]=10.213.99.2 [ocfc]=10.213.99.3)
NODES_PCMK_KEY=/etc/pacemaker/authkey

on() { local h=$1; shift; "$NODES_SH" exec "$h" env -i PATH=$CLEAN_PATH LANG=C.UTF-8 "$@"; }
plog() { echo "$T_TMP/$1/log/pacemaker.log"; }

pid_in() { # HOST COMM: pid of the process named COMM inside HOST's namespaces
  local p
  for p in $("$NODES_SH" pids "$1" 2>/dev/null); do
    [[ $(cat "/proc/$p/comm" 2>/dev/null) == "$2" ]] && { echo "$p"; return 0; }
  done
  return 1
}

_nodes_stop_in() { # HOST COMM TIMEOUT: SIGTERM the process, wait (bounded)
  local p
  p=$(pid_in "$1" "$2") || return 0
  kill -TERM "$p" 2>/dev/null || true
  wait_until "$3" eval "! kill -0 $p 2>/dev/null || grep -q '^State:.*Z' /proc/$p/status 2>/dev/null"
}

pcmk_authkey() {
  [[ -s $NODES_PCMK_KEY ]] && return 0
  install -d -m 0750 -g haclient "$(dirname "$NODES_PCMK_KEY")" || return 1
  (umask 027; dd if=/dev/urandom of="$NODES_PCMK_KEY" bs=4096 count=1 status=none) || return 1
  chgrp haclient "$NODES_PCMK_KEY"
}

nodes_init() { # CLUSTER NODE...
  NODES_CLUSTER=$1
  shift
  NODES=("$@")
  chmod 0755 "$T_TMP" || return 1 # pacemaker's daemons run as hacluster
  corosync-keygen -l -k "$T_TMP/authkey" >/dev/null 2>&1 || return 1
  pcmk_authkey || return 1
  cibadmin --empty >"$T_TMP/cib.xml"
}

seed_option() { CIB_file=$T_TMP/cib.xml crm_attribute --type crm_config --name "$1" --update "$2" >/dev/null; }
seed_rsc_defaults() {
  CIB_file=$T_TMP/cib.xml cibadmin --create -o configuration --xml-text \
    "<rsc_defaults><meta_attributes id=\"rsc-options\"><nvpair id=\"rsc-options-$1\" name=\"$1\" value=\"$2\"/></meta_attributes></rsc_defaults>"
}

node_files() { # HOST
  local h=$1 d=$T_TMP/$1 n i=0 nodelist="" quorum=""
  mkdir -p "$d"/{etc-corosync,lib-corosync,etc-pacemaker,log} "$d"/lib-pacemaker/{cib,pengine,blackbox,cores} || return 1
  chown -R hacluster:haclient "$d/lib-pacemaker" "$d/log" || return 1
  chmod 0770 "$d/log" || return 1
  cp "$T_TMP/authkey" "$d/etc-corosync/authkey" || return 1
  chmod 0400 "$d/etc-corosync/authkey" || return 1
  cp -p "$NODES_PCMK_KEY" "$d/etc-pacemaker/authkey" || return 1
  for n in "${NODES[@]}"; do
    i=$((i + 1))
    nodelist+="    node {
        name: $n
        nodeid: $i
        ring0_addr: ${NODE_ADDR[$n]}
    }
"
  done
  ((${#NODES[@]} == 2)) && quorum="    two_node: 1"
  cat >"$d/etc-corosync/corosync.conf" <<EOF || return 1
totem {
    version: 2
    cluster_name: $NODES_CLUSTER
    transport: knet
    crypto_cipher: aes256
    crypto_hash: sha256
    token: 1000
}
nodelist {
$nodelist}
quorum {
    provider: corosync_votequorum
$quorum
}
logging {
    to_stderr: no
    to_syslog: no
    to_logfile: yes
    logfile: /var/log/pacemaker/corosync.log
    timestamp: on
}
EOF
  if [[ ! -e $d/lib-pacemaker/cib/cib.xml ]]; then
    cp "$T_TMP/cib.xml" "$d/lib-pacemaker/cib/cib.xml" || return 1
    chown hacluster:haclient "$d/lib-pacemaker/cib/cib.xml" || return 1
    chmod 0600 "$d/lib-pacemaker/cib/cib.xml" || return 1
  fi
  "$NODES_SH" exec "$h" sh -ec "
    mount --bind '$d/etc-corosync' /etc/corosync
    mount --bind '$d/lib-corosync' /var/lib/corosync
    mount --bind '$d/etc-pacemaker' /etc/pacemaker
    mount --bind '$d/lib-pacemaker' /var/lib/pacemaker
    mount --bind '$d/log' /var/log/pacemaker
    mount -t tmpfs -o mode=1777 tmpfs /dev/shm
  "
}

node_start() { # HOST
  "$NODES_SH" exec "$1" setsid -f corosync -f -c /etc/corosync/corosync.conf </dev/null >/dev/null 2>&1 || return 1
  "$NODES_SH" exec "$1" env -i PATH=$CLEAN_PATH LANG=C.UTF-8 PCMK_logfile=/var/log/pacemaker/pacemaker.log \
    PCMK_logfacility=none setsid -f pacemakerd </dev/null >/dev/null 2>&1
}

node_stop() { # HOST
  _nodes_stop_in "$1" pacemakerd 30
  _nodes_stop_in "$1" corosync 10
}

nodes_stop_all() { # pacemaker of every node at once (bounded), then corosync
  local h pids=()
  for h in "${NODES[@]}"; do
    _nodes_stop_in "$h" pacemakerd 30 &
    pids+=($!)
  done
  wait "${pids[@]}"
  for h in "${NODES[@]}"; do _nodes_stop_in "$h" corosync 10; done
}
