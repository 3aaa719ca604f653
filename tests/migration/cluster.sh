#!/usr/bin/env bash
# A two-node Pacemaker cluster (ocfa, ocfb: the hosts of scripts/libvirt-hosts.sh, each running
# corosync + pacemaker in its own namespaces) live-migrates a guest managed by
# ocf:rust:VirtualDomain (migration_transport=tcp, meta allow-migrate=true): after
# `pcs resource move`, `crm_resource --move` and `pcs node standby` of the holder, Pacemaker must
# have run migrate_to on the source and migrate_from on the target (no stop/start of the guest),
# and the guest's console shows one boot only and a heartbeat that keeps counting.
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
# shellcheck source=tests/lib-guest.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib-guest.sh"

# shellcheck source=tests/lib-nodes.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib-nodes.sh"

HOSTS=$NODES_SH
VM=ocfrs-cl-vm
XML=$T_TMP/$VM.xml
CONSOLE=$T_TMP/$VM.console
other() { if [[ $1 == ocfa ]]; then echo ocfb; else echo ocfa; fi; }

boots() { console_count "$CONSOLE" 0 '^GUEST-BOOT'; } # GUEST-BOOT lines on the console (prints 0 when none)
heartbeat() { console_heartbeat "$CONSOLE" 0; }       # the guest's counter now (0 before the first)
heartbeat_above() { console_heartbeat_above "$CONSOLE" 0 "$1"; }

# dom_state HOST: libvirt's state of the guest in HOST's own libvirtd ("running", "absent", ...)
dom_state() {
  local uri
  uri=$("$HOSTS" uri "$1") || { echo "error: no URI for $1"; return 0; }
  URI=$uri domain_state "$VM"
}

cleanup() {
  nodes_stop_all
  "$HOSTS" down 2>&1 | sed 's/^/# /'
}

quorate_both() { on ocfa corosync-quorumtool -s >/dev/null 2>&1 && on ocfb corosync-quorumtool -s >/dev/null 2>&1; }
online_both() {
  local out
  out=$(on ocfa crm_mon -1 2>/dev/null) || return 1
  [[ $out =~ Online:\ \[\ ocfa\ ocfb\ \] ]] && [[ $out =~ partition\ with\ quorum ]]
}
located() { # RSC -> node it runs on
  on ocfa crm_resource --locate -r "$1" 2>/dev/null | sed -n 's/^resource .* is running on: \([^ ]*\).*/\1/p'
}
idle() { # the DC says S_IDLE
  local dc state
  dc=$(on ocfa crmadmin -q -D 2>&1 | awk '{ print $NF }')
  [[ -n $dc ]] || return 1
  state=$(on ocfa crmadmin -q -S "$dc" 2>&1) || return 1
  [[ $state == *S_IDLE* ]]
}
runs_on() { [[ $(located vm) == "$1" ]] && idle; } # NODE: vm runs there only, and the DC is idle
placed() { [[ -n $(located vm) ]] && idle; }         # vm runs somewhere, and the DC is idle
off_on() { [[ $(dom_state "$1") == @(absent|shut off) ]]; } # HOST: the guest does not run in HOST's libvirtd
# cli_constraints: the ids of the location constraints crm_resource --move/--ban and pcs resource
# move create (nothing when there are none; says so when the CIB cannot be read)
cli_constraints() {
  local c
  c=$(on ocfa cibadmin -Q -o constraints 2>&1) || { echo "cibadmin failed: $(_t_short "$c")"; return 0; }
  grep -oE 'id="cli-(prefer|ban)-[^"]*"' <<<"$c" || true
}

# ---- set-up ----
t_begin "two-node cluster ocfa+ocfb with a VirtualDomain resource (allow-migrate) comes up"
t_on_exit cleanup
"$HOSTS" down >/dev/null 2>&1 || t_fail "libvirt-hosts.sh down (leftovers of an interrupted run) failed"
out=$("$T_REPO/scripts/build-guest.sh" 2>&1) || t_fail "build-guest.sh: $(_t_short "$out")"
out=$("$HOSTS" up 2>&1) || t_fail "libvirt-hosts.sh up: $(_t_short "$out")"
((T_OPEN)) || exit 1
nodes_init ocfmig ocfa ocfb || t_fail "nodes_init: authkeys, seed CIB"
for kv in dc-deadtime=100ms stonith-enabled=false no-quorum-policy=ignore; do
  seed_option "${kv%%=*}" "${kv#*=}" || t_fail "seed CIB: ${kv%%=*}"
done
# the guest stays where it is once a node leaves standby (no move back on a tie)
seed_rsc_defaults resource-stickiness 100 || t_fail "seed CIB: resource-stickiness"
for h in ocfa ocfb; do node_files "$h" || t_fail "node files of $h"; done
"$T_REPO/scripts/make-domain.sh" "$VM" "$XML" --console "$CONSOLE" || t_fail "make-domain.sh"
((T_OPEN)) || exit 1
for h in ocfa ocfb; do node_start "$h" || t_fail "start corosync and pacemaker in $h"; done
assert_wait 20 "corosync quorate on both" -- quorate_both
assert_wait 40 "crm_mon shows ocfa and ocfb online with quorum" -- online_both
assert_wait 20 "the DC is idle" -- idle
assert_eq absent "$(dom_state ocfa)" "$VM in ocfa's libvirtd before the resource exists"
assert_eq absent "$(dom_state ocfb)" "$VM in ocfb's libvirtd before the resource exists"
assert_rc 0 "pcs resource create vm ocf:rust:VirtualDomain" -- on ocfa pcs resource create vm \
  ocf:rust:VirtualDomain config="$XML" hypervisor=qemu:///system migration_transport=tcp \
  meta allow-migrate=true op monitor interval=5s timeout=30s
assert_wait 40 "vm started (located on one node, the DC idle)" -- placed
first=$(located vm)
assert_match '^ocf[ab]$' "$first" "the node vm runs on (crm_resource --locate)"
second=$(other "$first")
assert_eq running "$(dom_state "$first")" "$VM in $first's libvirtd"
assert_eq absent "$(dom_state "$second")" "$VM in $second's libvirtd"
assert_wait 30 "GUEST-READY on the console" -- console_has "$CONSOLE" 0 '^GUEST-READY'
assert_wait 5 "first heartbeat" -- heartbeat_above 0
assert_eq 1 "$(boots)" "GUEST-BOOT lines on the console"
t_note "cluster up, vm on $first, in $(t_elapsed) s"
t_end
((T_NFAIL == 0)) || exit 1

# check_move FROM TO HOW (pcs|crm_resource|standby): moves vm and checks that Pacemaker migrated
# it (migrate_to, migrate_from, then stop of the source; no start, no migration back), that the
# guest moved between the libvirtds and kept running (one boot, its counter goes on up by one),
# and that no move constraint is left behind.
check_move() {
  local from=$1 to=$2 how=$3 hb na nb log t0
  assert_true "vm runs on $from before the move (located: '$(located vm)')" -- runs_on "$from" || return 1
  assert_eq "" "$(cli_constraints)" "move constraints before the move" || return 1
  assert_true "pacemaker logs of $from and $to are there" -- test -r "$(plog "$from")" -a -r "$(plog "$to")" || return 1
  hb=$(heartbeat)
  na=$(wc -l <"$(plog "$from")")
  nb=$(wc -l <"$(plog "$to")")
  t0=$(now)
  case $how in
    pcs) assert_rc 0 "pcs resource move vm $to" -- on ocfa pcs resource move vm "$to" || return 1 ;;
    crm_resource) assert_rc 0 "crm_resource --move -r vm -N $to" -- on ocfa crm_resource --move -r vm -N "$to" || return 1 ;;
    standby) assert_rc 0 "pcs node standby $from" -- on ocfa pcs node standby "$from" || return 1 ;;
    *) t_fail "check_move: unknown way to move: $how"; return 1 ;;
  esac
  assert_wait 40 "vm runs on $to" -- runs_on "$to" || return 1
  t_note "moved $from -> $to with $how in $(since "$t0") s"
  case $how in
    crm_resource)
      assert_rc 0 "crm_resource --clear -r vm" -- on ocfa crm_resource --clear -r vm || return 1
      ;;
    standby)
      # --wait: pcs returns once the cluster has settled, so a move back would be over by then
      assert_rc 0 "pcs node unstandby --wait=30 $from" -- on ocfa pcs node unstandby --wait=30 "$from" || return 1
      assert_true "$from and $to online again" -- online_both || return 1
      assert_true "vm stays on $to after $from left standby (located: '$(located vm)')" -- runs_on "$to" || return 1
      ;;
  esac
  assert_eq "" "$(cli_constraints)" "move constraints left after the move" || return 1
  assert_eq running "$(dom_state "$to")" "$VM in $to's libvirtd" || return 1
  assert_true "$VM shut off or gone in $from's libvirtd (state: '$(dom_state "$from")')" -- off_on "$from" || return 1
  log=$(tail -n +"$((na + 1))" "$(plog "$from")"; tail -n +"$((nb + 1))" "$(plog "$to")")
  assert_match "Result of migrate_to operation for vm on $from: ok" "$log" "migrate_to on $from in the pacemaker log" || return 1
  assert_match "Result of migrate_from operation for vm on $to: ok" "$log" "migrate_from on $to in the pacemaker log" || return 1
  assert_match "Result of stop operation for vm on $from: ok" "$log" "stop of vm on $from in the pacemaker log" || return 1
  assert_no_match "Result of start operation for vm" "$log" "no start of vm during the move" || return 1
  assert_no_match "Result of migrate_to operation for vm on $to" "$log" "no migration back from $to" || return 1
  assert_wait 8 "heartbeat continues after $hb" -- heartbeat_above "$hb" || return 1
  assert_eq 1 "$(boots)" "GUEST-BOOT lines (the guest must not reboot)" || return 1
  assert_eq "" "$(console_heartbeat_breaks "$CONSOLE" 0)" "the heartbeat counter goes up by one each line"
}

t_begin "pcs resource move vm $second: live migration by Pacemaker"
check_move "$first" "$second" pcs
t_end

t_begin "crm_resource --move back to $first: live migration again"
check_move "$second" "$first" crm_resource
t_end

t_begin "pcs node standby $first: the guest migrates away to $second"
check_move "$first" "$second" standby
t_note "console: $(boots) boot, heartbeat up to $(heartbeat)"
t_end
