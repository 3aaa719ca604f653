#!/usr/bin/env bash
# A two-node Pacemaker cluster (ocfa, ocfb: the hosts of scripts/libvirt-hosts.sh, each running
# corosync + pacemaker in its own namespaces) live-migrates a guest managed by
# ocf:rust:VirtualDomain (migration_transport=tcp, meta allow-migrate=true): after
# `pcs resource move`, `crm_resource --move` and `pcs node standby` of the holder, Pacemaker must
# have run migrate_to on the source and migrate_from on the target (no stop/start of the guest),
# and the guest's console shows one boot only and a heartbeat that keeps counting.
# shellcheck disable=SC2015 # `a && b && c || true`: lib.sh's assertions close the case themselves
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

HOSTS=$T_REPO/scripts/libvirt-hosts.sh
VM=ocfrs-cl-vm
XML=$T_TMP/$VM.xml
CONSOLE=$T_TMP/$VM.console
CLEAN_PATH=/usr/sbin:/usr/bin:/sbin:/bin
declare -A ADDR=([ocfa]=10.213.99.1 [ocfb]=10.213.99.2)

on() { local h=$1; shift; "$HOSTS" exec "$h" env -i PATH=$CLEAN_PATH LANG=C.UTF-8 "$@"; }
plog() { echo "$T_TMP/$1/log/pacemaker.log"; }
other() { if [[ $1 == ocfa ]]; then echo ocfb; else echo ocfa; fi; }

boots() { grep -c '^GUEST-BOOT' "$CONSOLE" 2>/dev/null || true; }
heartbeat() {
  local n
  n=$(sed -n 's/^GUEST-HEARTBEAT \([0-9][0-9]*\).*/\1/p' "$CONSOLE" 2>/dev/null | tail -n 1)
  echo "${n:-0}"
}
heartbeat_above() { (($(heartbeat) > $1)); }

pid_in() { # HOST COMM: pid of the process named COMM inside HOST's namespaces
  local p
  for p in $("$HOSTS" pids "$1" 2>/dev/null); do
    [[ $(cat "/proc/$p/comm" 2>/dev/null) == "$2" ]] && { echo "$p"; return 0; }
  done
  return 1
}

stop_in() { # HOST COMM TIMEOUT: SIGTERM the process, wait (bounded)
  local p
  p=$(pid_in "$1" "$2") || return 0
  kill -TERM "$p" 2>/dev/null || true
  wait_until "$3" eval "! kill -0 $p 2>/dev/null || grep -q '^State:.*Z' /proc/$p/status 2>/dev/null"
}

cleanup() {
  local h pids=()
  for h in ocfa ocfb; do
    stop_in "$h" pacemakerd 30 &
    pids+=($!)
  done
  wait "${pids[@]}"
  for h in ocfa ocfb; do stop_in "$h" corosync 10; done
  "$HOSTS" down 2>&1 | sed 's/^/# /'
}

node_files() { # HOST: private cluster directories, bound over the standard paths inside HOST
  local h=$1 d=$T_TMP/$1
  mkdir -p "$d"/{etc-corosync,lib-corosync,etc-pacemaker,log} "$d"/lib-pacemaker/{cib,pengine,blackbox,cores}
  chown -R hacluster:haclient "$d/lib-pacemaker" "$d/log"
  chmod 0770 "$d/log"
  cp "$T_TMP/authkey" "$d/etc-corosync/authkey"
  chmod 0400 "$d/etc-corosync/authkey"
  cat >"$d/etc-corosync/corosync.conf" <<EOF
totem {
    version: 2
    cluster_name: ocfmig
    transport: knet
    crypto_cipher: aes256
    crypto_hash: sha256
    token: 1000
}
nodelist {
    node {
        name: ocfa
        nodeid: 1
        ring0_addr: ${ADDR[ocfa]}
    }
    node {
        name: ocfb
        nodeid: 2
        ring0_addr: ${ADDR[ocfb]}
    }
}
quorum {
    provider: corosync_votequorum
    two_node: 1
}
logging {
    to_stderr: no
    to_syslog: no
    to_logfile: yes
    logfile: /var/log/pacemaker/corosync.log
    timestamp: on
}
EOF
  cp "$T_TMP/cib.xml" "$d/lib-pacemaker/cib/cib.xml"
  chown hacluster:haclient "$d/lib-pacemaker/cib/cib.xml"
  chmod 0600 "$d/lib-pacemaker/cib/cib.xml"
  "$HOSTS" exec "$h" sh -ec "
    mount --bind '$d/etc-corosync' /etc/corosync
    mount --bind '$d/lib-corosync' /var/lib/corosync
    mount --bind '$d/etc-pacemaker' /etc/pacemaker
    mount --bind '$d/lib-pacemaker' /var/lib/pacemaker
    mount --bind '$d/log' /var/log/pacemaker
    mount -t tmpfs -o mode=1777 tmpfs /dev/shm
  "
}

online_both() {
  local out
  out=$(on ocfa crm_mon -1 2>/dev/null) || return 1
  [[ $out =~ Online:\ \[\ ocfa\ ocfb\ \] ]] && [[ $out =~ partition\ with\ quorum ]]
}
located() { # RSC -> node it runs on
  on ocfa crm_resource --locate -r "$1" 2>/dev/null | sed -n 's/^resource .* is running on: \([^ ]*\).*/\1/p'
}
runs_on() { [[ $(located vm) == "$1" ]] && idle; }
idle() { on ocfa crmadmin -q -S "$(on ocfa crmadmin -q -D 2>&1 | awk '{ print $NF }')" 2>&1 | grep -q S_IDLE; }

# ---- set-up ----
t_begin "two-node cluster ocfa+ocfb with a VirtualDomain resource (allow-migrate) comes up"
t_on_exit cleanup
"$HOSTS" down >/dev/null 2>&1
out=$("$T_REPO/scripts/build-guest.sh" 2>&1) || t_fail "build-guest.sh: $(_t_short "$out")"
out=$("$HOSTS" up 2>&1) || t_fail "libvirt-hosts.sh up: $(_t_short "$out")"
((T_OPEN)) || exit 1
chmod 0755 "$T_TMP" # pacemaker's daemons run as hacluster
corosync-keygen -l -k "$T_TMP/authkey" >/dev/null 2>&1 || t_fail "corosync-keygen"
cibadmin --empty >"$T_TMP/cib.xml"
for kv in dc-deadtime=100ms stonith-enabled=false no-quorum-policy=ignore; do
  CIB_file=$T_TMP/cib.xml crm_attribute --type crm_config --name "${kv%%=*}" --update "${kv#*=}" >/dev/null \
    || t_fail "seed CIB: ${kv%%=*}"
done
# the guest stays where it is once a node leaves standby (no move back on a tie)
CIB_file=$T_TMP/cib.xml cibadmin --create -o configuration --xml-text \
  '<rsc_defaults><meta_attributes id="rsc-options"><nvpair id="rsc-options-resource-stickiness" name="resource-stickiness" value="100"/></meta_attributes></rsc_defaults>' \
  || t_fail "seed CIB: resource-stickiness"
for h in ocfa ocfb; do node_files "$h" || t_fail "node files of $h"; done
"$T_REPO/scripts/make-domain.sh" "$VM" "$XML" --console "$CONSOLE" || t_fail "make-domain.sh"
((T_OPEN)) || exit 1
for h in ocfa ocfb; do
  "$HOSTS" exec "$h" setsid -f corosync -f -c /etc/corosync/corosync.conf </dev/null >/dev/null 2>&1
done
assert_wait 20 "corosync quorate on both" -- eval 'on ocfa corosync-quorumtool -s >/dev/null 2>&1 && on ocfb corosync-quorumtool -s >/dev/null 2>&1'
for h in ocfa ocfb; do
  "$HOSTS" exec "$h" env -i PATH=$CLEAN_PATH LANG=C.UTF-8 PCMK_logfile=/var/log/pacemaker/pacemaker.log \
    PCMK_logfacility=none setsid -f pacemakerd </dev/null >/dev/null 2>&1
done
assert_wait 40 "crm_mon shows ocfa and ocfb online with quorum" -- online_both \
  && assert_wait 20 "the DC is idle" -- idle \
  && assert_rc 0 "pcs resource create vm ocf:rust:VirtualDomain" -- on ocfa pcs resource create vm \
    ocf:rust:VirtualDomain config="$XML" hypervisor=qemu:///system migration_transport=tcp \
    meta allow-migrate=true op monitor interval=5s timeout=30s \
  && assert_wait 40 "vm started" -- eval '[[ -n $(located vm) ]] && idle' \
  && assert_wait 30 "GUEST-READY on the console" -- grep -q '^GUEST-READY' "$CONSOLE" \
  && assert_wait 5 "first heartbeat" -- heartbeat_above 0
t_note "cluster up, vm on $(located vm), in $(t_elapsed) s"
t_end
((T_NFAIL == 0)) || exit 1

# check_move FROM TO HOW (pcs|crm_resource): moves vm and checks Pacemaker migrated it (no stop/start)
check_move() {
  local from=$1 to=$2 how=$3 hb na nb log
  hb=$(heartbeat)
  na=$(wc -l <"$(plog "$from")")
  nb=$(wc -l <"$(plog "$to")")
  local t0=$EPOCHREALTIME
  case $how in
    pcs) assert_rc 0 "pcs resource move vm $to" -- on ocfa pcs resource move vm "$to" || return 1 ;;
    crm_resource) assert_rc 0 "crm_resource --move -r vm -N $to" -- on ocfa crm_resource --move -r vm -N "$to" || return 1 ;;
    standby) assert_rc 0 "pcs node standby $from" -- on ocfa pcs node standby "$from" || return 1 ;;
  esac
  assert_wait 40 "vm runs on $to" -- runs_on "$to" || return 1
  t_note "moved $from -> $to with $how in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s"
  case $how in
    crm_resource) on ocfa crm_resource --clear -r vm >/dev/null 2>&1 ;;
    standby)
      assert_rc 0 "pcs node unstandby $from" -- on ocfa pcs node unstandby "$from" \
        && assert_wait 20 "vm stays on $to after $from left standby" -- runs_on "$to" || return 1
      ;;
  esac
  log=$(tail -n +"$((na + 1))" "$(plog "$from")"; tail -n +"$((nb + 1))" "$(plog "$to")")
  assert_match "Result of migrate_to operation for vm on $from: ok" "$log" "migrate_to on $from in the pacemaker log" \
    && assert_match "Result of migrate_from operation for vm on $to: ok" "$log" "migrate_from on $to in the pacemaker log" \
    && assert_no_match "Result of start operation for vm" "$log" "no start of vm during the move" \
    && assert_wait 8 "heartbeat continues after $hb" -- heartbeat_above "$hb" \
    && assert_eq 1 "$(boots)" "GUEST-BOOT lines (the guest must not reboot)"
}

first=$(located vm)
second=$(other "$first")
t_begin "pcs resource move vm $second: live migration by Pacemaker"
check_move "$first" "$second" pcs || true
t_end

t_begin "crm_resource --move back to $first: live migration again"
check_move "$second" "$first" crm_resource || true
t_end

t_begin "pcs node standby $first: the guest migrates away to $second"
check_move "$first" "$second" standby || true
t_note "console: $(boots) boot, heartbeat up to $(heartbeat)"
t_end
