#!/usr/bin/env bash
# At cluster scale: a three-node Pacemaker cluster (ocfa, ocfb, ocfc: the hosts of
# scripts/libvirt-hosts.sh, each with its own corosync, pacemaker and libvirtd in its own
# network, mount and UTS namespaces, joined by a bridge) runs the guest-node walk-through and a
# dozen VMs, and does to them what clusters do:
#   1. the walk-through on several nodes: node attributes on the two nodes that may host
#      vm-guest1, the location rule with resource-discovery=never, the guest node made with
#      `pcs cluster node add-guest` on a CIB file; FAKE1..5 spread, FAKE2 on guest1;
#   2. the guest node live-migrates (`pcs resource move`): migrate_to + migrate_from, no start,
#      guest1 online again, no resource inside it restarted (history and state files);
#   3. drain: `pcs node standby` of the node with the most VMs: every VM leaves by live
#      migration only (several migrate_to at once from that node), then unstandby;
#   4. node loss: every process of one node killed at once (a power cut): the two survivors keep
#      quorum and restart its VMs and the guest node; every VM runs exactly once;
#   5. the drain and the node loss again with ocf:heartbeat:VirtualDomain on the same guests,
#      timings side by side.
#
# The test cluster runs with stonith-enabled=false (no fencing device exists here): a lost node
# is then taken as down, which is what lets the survivors restart its VMs. Shared storage: the
# domain XMLs and consoles live in this file's scratch directory under /tmp, which every host
# sees at the same path (the hosts bind only libvirt's, corosync's and pacemaker's own
# directories). The guests boot from kernel + initramfs: no disk to share.
# The ocf:rust guests migrate over HOST-mig (migration_network_suffix=-mig: the agent gives
# libvirt the data URI; the names resolve to the same addresses here), so the drain shows that
# concurrent migrations to one host get distinct ports. The ocf:heartbeat guests do not: that
# agent draws the port at random from 64, and six migrations to one host collide about one
# time in five (a failed migration, then a stop and start of that guest); they use libvirt's
# own data URI.
# load-threshold is raised so that Pacemaker does not throttle its jobs on this 2-core machine
# under TCG (it would serialise the migrations the drain must run at once).
#
# Environment: SCALE_VMS (number of plain guests, default 12), SCALE_VM_MEMORY (MiB, default 96),
# SCALE_KEEP_LOGS (a directory: the nodes' pacemaker and corosync logs are copied there at the end),
# SCALE_TIMINGS (where a run whose every case passed writes its timings for make bench; default
# build/scale-timings.tsv).
# Times are printed, not asserted.
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
# shellcheck source=tests/lib-guest.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib-guest.sh"
# shellcheck source=tests/lib-nodes.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib-nodes.sh"

N=${SCALE_VMS:-12}
MEM=${SCALE_VM_MEMORY:-96}
ALL=(ocfa ocfb ocfc)
SHARED=$T_TMP/shared        # configs and consoles: the same path on every host
VM_GUEST=vm-guest1          # the guest node's VirtualDomain resource (and domain)
GUEST=guest1                # the guest node
GADDR=127.0.0.5             # qemu's forward in whichever host runs the guest (loopback there)
GPORT=3121
GCMD=2323                   # the guest image's TEST-ONLY root shell
READY=$SHARED/guest-ready@$GADDR:$GPORT
ATTR=can-host-$VM_GUEST
FAKES=(FAKE1 FAKE2 FAKE3 FAKE4 FAKE5)
GUEST_DIR=$T_REPO/build/remote-guest
VMS=()
for ((i = 1; i <= N; i++)); do VMS+=("$(printf 'sc-vm%02d' "$i")"); done
declare -A TIMES=()         # "rust drain" etc. -> seconds
TIMINGS=${SCALE_TIMINGS:-$T_REPO/build/scale-timings.tsv} # what make bench reports

console() { echo "$SHARED/$1.console"; }
boots() { console_count "$(console "$1")" 0 '^GUEST-BOOT'; }

# ---- the cluster's view (one crm_mon per poll: each costs CPU the guests need) ----
MON=""
snap() { MON=$(on ocfa crm_mon -1 -r 2>/dev/null) || MON=$(on ocfb crm_mon -1 -r 2>/dev/null); }
# where RSC: the node RSC is Started on in the last snapshot ("" when not Started)
where() {
  sed -n "s/^[[:space:]]*\* $1[[:space:]]*(.*):[[:space:]]*Started \([^ ]*\).*/\1/p" <<<"$MON" | head -n 1
}
idle_on() { # HOST: the DC (asked in HOST) says S_IDLE
  local dc state
  dc=$(on "$1" crmadmin -q -D 2>&1 | awk '{ print $NF }')
  [[ -n $dc ]] || return 1
  state=$(on "$1" crmadmin -q -S "$dc" 2>&1) || return 1
  [[ $state == *S_IDLE* ]]
}
# settled [NOT-NODE] [HOST-TO-ASK]: every resource of the phase Started (on a node other than
# NOT-NODE), guest1 online, the DC idle. Polls at most every half second.
PHASE_RSCS=()
settled() {
  local r w ask=${2:-ocfa}
  sleep 0.5
  MON=$(on "$ask" crm_mon -1 -r 2>/dev/null) || return 1
  for r in "${PHASE_RSCS[@]}"; do
    w=$(where "$r")
    [[ -n $w && $w != "${1:-none}" ]] || return 1
  done
  idle_on "$ask"
}
show_mon() { t_note "crm_mon:"; sed 's/^/#   /' <<<"$MON"; }
settled_guest() { settled "$@" && guest_online; } # [NOT-NODE] [HOST-TO-ASK]: settled, guest1 online
guest_on() { settled && [[ $(where "$VM_GUEST") == "$1" ]] && guest_online; } # NODE
guest_online() { grep -Eq "GuestOnline: \[ (.* )?$GUEST(@[^ ]+)? " <<<"$MON"; }
online_nodes() { sed -n 's/^[[:space:]]*\* Online: \[ \(.*\) \]/\1/p' <<<"$MON" | head -n 1; }
all_online() { snap; [[ $(online_nodes) == "ocfa ocfb ocfc" ]] && [[ $MON == *"partition with quorum"* ]]; }
quorate_all() { local h; for h in "${ALL[@]}"; do on "$h" corosync-quorumtool -s >/dev/null 2>&1 || return 1; done; }
log_since() { # HOST MARK: HOST's pacemaker log after line MARK
  tail -n "+$(($2 + 1))" "$(plog "$1")" 2>/dev/null
}
marks() { local h; for h in "${ALL[@]}"; do printf '%s=%s ' "$h" "$(wc -l <"$(plog "$h")" 2>/dev/null || echo 0)"; done; }
logs_since() { # MARKS (from marks): every node's log since then
  local kv
  for kv in $1; do log_since "${kv%%=*}" "${kv#*=}"; done
}
# qemu_count DOMAIN: qemu processes running DOMAIN on this machine (every namespace)
qemu_count() {
  local p n=0
  for p in /proc/[0-9]*; do
    [[ $(cat "$p/comm" 2>/dev/null) == qemu-system-* ]] || continue
    tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- "-name guest=$1," && n=$((n + 1))
  done
  echo "$n"
}
# max_concurrent LOG OP: the most OP operations the log shows running at once
max_concurrent() {
  awk -v op="$2" '
    $0 ~ "Requesting local execution of " op " operation" { n++; if (n > m) m = n }
    $0 ~ "Result of " op " operation" { n-- }
    END { print m + 0 }' <<<"$1"
}
# op_times LOG OP: "RSC=TIME" for every OP the executor's log records as finished in LOG
op_times() {
  sed -n "s/.*(log_finished).*: \([^ ]*\) $2 (call [0-9]*, PID [0-9]*) exited with status [0-9]* (execution time \([0-9.]*m\{0,1\}s\).*/\1=\2/p" <<<"$1" |
    sort | tr '\n' ' '
}
# last_ops RSC...: "RSC:operation:rc-code:call-id" of each RSC's last operation in guest1's
# operation history
last_ops() {
  local r
  for r in "$@"; do
    on ocfa cibadmin -Q --xpath "//node_state[@uname='$GUEST']//lrm_rsc_op[@id='${r}_last_0']" 2>/dev/null |
      sed -n 's/.* operation="\([^"]*\)".* call-id="\([0-9]*\)".* rc-code="\([0-9]*\)".*/'"$r"':\1:\3:\2/p' | head -n 1
  done | tr '\n' ' '
}
# restarted BEFORE AFTER (last_ops outputs): prints each resource whose last operation is now
# anything but the same start or a probe that found it running (rc 0)
restarted() {
  local a r
  for a in $2; do
    r=${a%%:*}
    case $a in
      "$r":monitor:0:*) ;;
      *) [[ " $1 " == *" $a "* ]] || printf '%s ' "$a" ;;
    esac
  done
}

guest_host() { snap; where "$VM_GUEST"; }
guest_sh() { # CMD: runs CMD in the guest's test-only shell, through the host that runs it
  local h out
  h=$(guest_host)
  [[ -n $h ]] || { echo "guest not running"; return 99; }
  out=$(printf '%s\necho "GUEST-RC=$?"\nexit\n' "$1" | on "$h" timeout 15 ncat "$GADDR" "$GCMD" 2>&1)
  G_RC=$(sed -n 's/^GUEST-RC=\([0-9]*\)$/\1/p' <<<"$out" | tail -n 1)
  sed '/^GUEST-RC=/d' <<<"$out"
  return "${G_RC:-99}"
}
# fake_state_ids: "FAKEn=inode:mtime" of the Dummy state files inside the guest
fake_state_ids() { guest_sh 'for f in /var/run/Dummy-FAKE*.state; do [ -e "$f" ] && stat -c "${f##*/}=%i:%Y" "$f"; done; true' | sort | tr '\n' ' '; }

# everything the test started goes by pid: down stops every process in the hosts' namespaces
cleanup() {
  local h
  if [[ -n ${SCALE_KEEP_LOGS:-} ]]; then
    for h in "${ALL[@]}"; do mkdir -p "$SCALE_KEEP_LOGS/$h"; cp -r "$T_TMP/$h/log/." "$SCALE_KEEP_LOGS/$h/" 2>/dev/null; done
  fi
  "$NODES_SH" down 2>&1 | sed 's/^/# /'
}

# ---- the stage ----
t_begin "three-node cluster ocfa+ocfb+ocfc with three quorum votes comes up"
t_on_exit cleanup
"$NODES_SH" down >/dev/null 2>&1 || t_fail "libvirt-hosts.sh down (leftovers of an interrupted run) failed"
out=$("$T_REPO/scripts/build-guest.sh" 2>&1) || t_fail "build-guest.sh: $(_t_short "$out")"
pcmk_authkey || t_fail "the machine's $NODES_PCMK_KEY (the guest-node image carries it)"
out=$("$T_REPO/scripts/build-remote-guest.sh" "$GUEST_DIR" 2>&1) || t_fail "build-remote-guest.sh: $(_t_short "$out")"
out=$("$NODES_SH" up 2>&1) || t_fail "libvirt-hosts.sh up: $(_t_short "$out")"
((T_OPEN)) || exit 1
nodes_init ocfscale "${ALL[@]}" || t_fail "nodes_init"
for kv in stonith-enabled=false dc-deadtime=2s load-threshold=1000% node-action-limit=16; do
  seed_option "${kv%%=*}" "${kv#*=}" || t_fail "seed CIB: ${kv%%=*}"
done
seed_rsc_defaults resource-stickiness 100 || t_fail "seed CIB: resource-stickiness"
for h in "${ALL[@]}"; do node_files "$h" || t_fail "node files of $h"; done
mkdir -p "$SHARED" || t_fail "mkdir $SHARED"
install -m 0755 "$T_REPO/scripts/guest-ready.sh" "$READY" || t_fail "cp guest-ready.sh"
"$T_REPO/scripts/make-remote-domain.sh" "$VM_GUEST" "$SHARED/$VM_GUEST.xml" --addr "$GADDR" --port "$GPORT" \
  --cmd-port "$GCMD" --guest-dir "$GUEST_DIR" --console "$(console "$VM_GUEST")" || t_fail "make-remote-domain.sh"
for vm in "${VMS[@]}"; do
  "$T_REPO/scripts/make-domain.sh" "$vm" "$SHARED/$vm.xml" --memory "$MEM" --console "$(console "$vm")" \
    || t_fail "make-domain.sh $vm"
done
((T_OPEN)) || exit 1
for h in "${ALL[@]}"; do node_start "$h" || t_fail "start corosync and pacemaker in $h"; done
assert_wait 30 "corosync quorate on every node" -- quorate_all
assert_match 'Expected votes:[[:space:]]+3' "$(on ocfa corosync-quorumtool -s 2>&1)" "corosync-quorumtool: three votes expected"
assert_wait 60 "crm_mon shows ocfa ocfb ocfc online with quorum (last: '$(online_nodes)')" -- all_online
assert_wait 30 "the DC is idle" -- idle_on ocfa
t_note "$N plain guests of $MEM MiB and one guest node; cluster up in $(t_elapsed) s"
t_end
((T_NFAIL == 0)) || exit 1

# ---- 1. the walk-through on several nodes ----
t_begin "walk-through on three nodes: $VM_GUEST on a node with $ATTR=1, $GUEST added by pcs cluster node add-guest, FAKE1..5 spread, FAKE2 on $GUEST"
F=$SHARED/vm_cfg
t0=$(now)
assert_rc 0 "pcs node attribute ocfa $ATTR=1" -- on ocfa pcs node attribute ocfa "$ATTR=1"
assert_rc 0 "pcs node attribute ocfb $ATTR=1" -- on ocfa pcs node attribute ocfb "$ATTR=1"
assert_rc 0 "pcs cluster cib" -- on ocfa pcs cluster cib "$F"
assert_rc 0 "pcs -f resource create $VM_GUEST" -- on ocfa pcs -f "$F" resource create "$VM_GUEST" \
  ocf:rust:VirtualDomain hypervisor=qemu:///system config="$SHARED/$VM_GUEST.xml" migration_transport=tcp \
  monitor_scripts="$READY" meta allow-migrate=true op monitor interval=10s timeout=30s
assert_rc 0 "pcs -f constraint location rule" -- on ocfa pcs -f "$F" constraint location "$VM_GUEST" rule \
  resource-discovery=never score=-INFINITY "$ATTR" ne 1
# add-guest on a CIB file skips distributing the authkey and starting pacemaker_remote in the
# guest (pcsd): the guest image already has the cluster's authkey and starts remoted at boot
assert_rc 0 "pcs -f cluster node add-guest $GUEST $VM_GUEST" -- on ocfa pcs -f "$F" cluster node add-guest \
  "$GUEST" "$VM_GUEST" remote-addr="$GADDR" remote-port="$GPORT"
assert_rc 0 "pcs cluster cib-push --config" -- on ocfa pcs cluster cib-push "$F" --config
assert_wait 120 "$GUEST GuestOnline" -- eval 'sleep 0.5; snap; guest_online'
t_note "$GUEST online $(since "$t0") s after the push, $VM_GUEST on $(where "$VM_GUEST")"
assert_match '^ocf[ab]$' "$(where "$VM_GUEST")" "$VM_GUEST runs on a node with $ATTR=1"
assert_rc 105 "no probe of $VM_GUEST on ocfc (resource-discovery=never; cibadmin: 105 = none)" -- \
  on ocfa cibadmin -Q --xpath "//node_state[@uname='ocfc']//lrm_resource[@id='$VM_GUEST']"
for r in "${FAKES[@]}"; do
  assert_rc 0 "pcs resource create $r ocf:rust:Dummy" -- on ocfa pcs resource create "$r" ocf:rust:Dummy
done
assert_rc 0 "pcs constraint location FAKE2 prefers $GUEST" -- on ocfa pcs constraint location FAKE2 prefers "$GUEST"
PHASE_RSCS=("${FAKES[@]}" "$VM_GUEST")
assert_wait 60 "FAKE1..5 and $VM_GUEST Started, the DC idle" -- settled
assert_eq "$GUEST" "$(where FAKE2)" "FAKE2's node"
fake_nodes=$(for r in "${FAKES[@]}"; do where "$r"; done | sort -u | tr '\n' ' ')
t_note "FAKE1..5 on: $(for r in "${FAKES[@]}"; do printf '%s=%s ' "$r" "$(where "$r")"; done)"
assert_true "FAKE1..5 spread over more than one node (nodes: $fake_nodes)" -- test "$(wc -w <<<"$fake_nodes")" -ge 2
assert_eq 1 "$(boots "$VM_GUEST")" "GUEST-BOOT lines of $VM_GUEST"
TIMES[walkthrough]=$(since "$t0")
t_end
((T_NFAIL == 0)) || exit 1

# ---- 2. the guest node live-migrates ----
t_begin "the guest node live-migrates: pcs resource move $VM_GUEST, no start, $GUEST back online, nothing inside restarted"
from=$(guest_host)
to=ocfa
if [[ $from == ocfa ]]; then to=ocfb; fi
inside=$(for r in "${FAKES[@]}"; do if [[ $(where "$r") == "$GUEST" ]]; then echo "$r"; fi; done | tr '\n' ' ')
ids=$(fake_state_ids)
# shellcheck disable=SC2086 # one word per resource
hist=$(last_ops $inside)
t_note "resources on $GUEST: $inside; state files: $ids; last operations: $hist"
assert_match "^FAKE[0-9]:start:0:" "$hist" "the last operations of the resources on $GUEST are their starts"
assert_match "Dummy-FAKE2.state=" "$ids" "FAKE2's state file inside $GUEST"
m=$(marks)
t0=$(now)
assert_rc 0 "pcs resource move $VM_GUEST $to" -- on ocfa pcs resource move "$VM_GUEST" "$to"
assert_wait 120 "$VM_GUEST on $to and everything Started" -- guest_on "$to"
TIMES[guest-move]=$(since "$t0")
t_note "$VM_GUEST moved $from -> $to, $GUEST online, in ${TIMES[guest-move]} s"
log=$(logs_since "$m")
assert_match "Result of migrate_to operation for $VM_GUEST on $from: ok" "$log" "migrate_to of $VM_GUEST on $from"
assert_match "Result of migrate_from operation for $VM_GUEST on $to: ok" "$log" "migrate_from of $VM_GUEST on $to"
assert_no_match "Result of start operation for $VM_GUEST" "$log" "no start of $VM_GUEST"
assert_no_match "Result of (start|stop) operation for FAKE[0-9] on $GUEST" "$log" "no start or stop of a resource inside $GUEST"
assert_eq "$ids" "$(fake_state_ids)" "the Dummy state files inside $GUEST (inode:mtime) after the move"
# shellcheck disable=SC2086 # one word per resource
after=$(last_ops $inside)
t_note "last operations after the move: $after (Pacemaker probes a guest node's resources again when its connection moves)"
assert_eq "$(wc -w <<<"$hist")" "$(wc -w <<<"$after")" "resources on $GUEST with an operation history, before and after the move"
assert_eq "" "$(restarted "$hist" "$after")" "resources on $GUEST whose last operation is neither the same start nor a probe that found them running"
assert_eq 1 "$(boots "$VM_GUEST")" "GUEST-BOOT lines of $VM_GUEST (it must not reboot)"
assert_eq 1 "$(qemu_count "$VM_GUEST")" "qemu processes of $VM_GUEST"
assert_rc 0 "pcs resource clear $VM_GUEST" -- on ocfa pcs resource clear "$VM_GUEST"
t_end

# ---- 3.-5. a dozen VMs: drain and node loss, with each agent set ----

# create_vms PROVIDER PREFIX [NAME=VALUE...]: the N guests as ocf:PROVIDER:VirtualDomain
# resources PREFIX-vmNN (domains sc-vmNN) with these extra parameters, pushed in one CIB update
create_vms() {
  local f=$SHARED/vms-$2 vm p=$1 x=$2
  shift 2
  on ocfa pcs cluster cib "$f" || return 1
  for vm in "${VMS[@]}"; do
    on ocfa pcs -f "$f" resource create "$x-${vm#sc-}" "ocf:$p:VirtualDomain" hypervisor=qemu:///system \
      config="$SHARED/$vm.xml" migration_transport=tcp "$@" meta allow-migrate=true \
      op monitor interval=10s timeout=30s >/dev/null || return 1
  done
  on ocfa pcs cluster cib-push "$f" --config
}
# delete_vms PREFIX: the phase's resources removed in one CIB update (Pacemaker stops them)
delete_vms() {
  local f=$SHARED/del-$1 vm
  on ocfa pcs cluster cib "$f" || return 1
  for vm in "${VMS[@]}"; do on ocfa pcs -f "$f" resource delete "$1-${vm#sc-}" >/dev/null 2>&1 || return 1; done
  on ocfa pcs cluster cib-push "$f" --config
}
no_vm_runs() { local vm; for vm in "${VMS[@]}"; do (($(qemu_count "$vm") == 0)) || return 1; done; }
# once_each: prints the domains that do not run exactly once (nothing when all do)
once_each() {
  local vm n
  for vm in "${VMS[@]}" "$VM_GUEST"; do
    n=$(qemu_count "$vm")
    ((n == 1)) || printf '%s:%s ' "$vm" "$n"
  done
}
# busiest PREFIX: the node with the most of the phase's VMs (vm-guest1 counted)
busiest() {
  local h best="" n max=-1 r
  for h in "${ALL[@]}"; do
    n=0
    for r in "${PHASE_RSCS[@]}"; do
      if [[ $r == "$1"-* || $r == "$VM_GUEST" ]] && [[ $(where "$r") == "$h" ]]; then n=$((n + 1)); fi
    done
    if ((n > max)); then max=$n; best=$h; fi
  done
  echo "$best"
}
dom_of() { if [[ $1 == "$VM_GUEST" ]]; then echo "$1"; else echo "sc-${1#*-}"; fi; } # RSC -> domain

phase() { # PROVIDER PREFIX [NAME=VALUE...]: extra parameters of the VMs
  local p=$1 x=$2 r rscs=() moved=() m t0 log hlog h lost survivor d breaks conc
  declare -A cmark=() hb=()
  shift 2
  for vm in "${VMS[@]}"; do rscs+=("$x-${vm#sc-}"); done
  PHASE_RSCS=("${FAKES[@]}" "$VM_GUEST" "${rscs[@]}")

  t_begin "ocf:$p:VirtualDomain: $N guests created at once, all Started, each running once"
  for vm in "${VMS[@]}"; do cmark[$vm]=$(console_size "$(console "$vm")"); done
  t0=$(now)
  assert_rc 0 "create $N ocf:$p:VirtualDomain resources $* (pcs -f, one cib-push)" -- create_vms "$p" "$x" "$@"
  assert_wait 300 "every resource Started, the DC idle" -- settled
  TIMES[$p create]=$(since "$t0")
  t_note "$N guests Started in ${TIMES[$p create]} s; VMs per node: $(spread_of "$x")"
  assert_eq "" "$(once_each)" "domains not running exactly once (domain:qemu processes)"
  for vm in "${VMS[@]}"; do
    assert_wait 60 "GUEST-READY of $vm" -- console_has "$(console "$vm")" "${cmark[$vm]}" '^GUEST-READY'
  done
  t_end
  ((T_NFAIL == 0)) || return 1

  t_begin "ocf:$p:VirtualDomain: drain: pcs node standby of the busiest node, every VM leaves by live migration"
  snap
  h=$(busiest "$x")
  for r in "${rscs[@]}" "$VM_GUEST"; do if [[ $(where "$r") == "$h" ]]; then moved+=("$r"); fi; done
  t_note "draining $h (${#moved[@]} VMs: ${moved[*]}); VMs per node: $(spread_of "$x")"
  assert_true "$h holds at least two VMs" -- test "${#moved[@]}" -ge 2
  for r in "${moved[@]}"; do hb[$r]=$(console_heartbeat "$(console "$(dom_of "$r")")" 0); done
  for vm in "${VMS[@]}"; do cmark[$vm]=$(console_size "$(console "$vm")"); done
  m=$(marks)
  t0=$(now)
  assert_rc 0 "pcs node standby $h" -- on ocfa pcs node standby "$h"
  assert_wait 300 "every resource Started off $h, the DC idle" -- settled "$h" || show_mon
  TIMES[$p drain]=$(since "$t0")
  log=$(logs_since "$m")
  hlog=$(log_since "$h" "$(sed -n "s/.*$h=\([0-9]*\).*/\1/p" <<<"$m")")
  conc=$(max_concurrent "$hlog" migrate_to)
  t_note "$h drained in ${TIMES[$p drain]} s; migrate_to at once on $h: up to $conc; each took: $(op_times "$hlog" migrate_to)"
  TIMES[$p concurrent]=$conc
  assert_true "several migrate_to ran at once on $h (at most $conc)" -- test "$conc" -ge 2
  for r in "${moved[@]}"; do
    assert_match "Result of migrate_to operation for $r on $h: ok" "$log" "migrate_to of $r on $h"
    assert_match "Result of migrate_from operation for $r on (ocfa|ocfb|ocfc): ok" "$log" "migrate_from of $r"
    d=$(dom_of "$r")
    assert_wait 10 "$d's heartbeat goes on after ${hb[$r]}" -- console_heartbeat_above "$(console "$d")" 0 "${hb[$r]}"
  done
  assert_no_match "Result of start operation for ($x-vm[0-9]+|$VM_GUEST) " "$log" "no start of any VM during the drain"
  assert_no_match "Result of migrate_to operation for [^ ]+ on [^ ]+: [^o]" "$log" "every migrate_to succeeded"
  for vm in "${VMS[@]}"; do
    assert_eq 0 "$(console_count "$(console "$vm")" "${cmark[$vm]}" '^GUEST-BOOT')" "$vm rebooted during the drain (GUEST-BOOT lines)"
  done
  breaks=""
  for vm in "${VMS[@]}"; do
    d=$(console_heartbeat_breaks "$(console "$vm")" "${cmark[$vm]}")
    [[ -z $d ]] || breaks+="$vm: $d "
  done
  assert_eq "" "$breaks" "console heartbeat counters continuous"
  assert_eq "" "$(once_each)" "domains not running exactly once after the drain"
  assert_rc 0 "pcs node unstandby --wait=60 $h" -- on ocfa pcs node unstandby --wait=60 "$h"
  assert_wait 60 "every resource Started, the DC idle" -- settled
  assert_eq 0 "$(count_on_of "$x" "$h")" "VMs that moved back to $h after unstandby"
  t_end
  ((T_NFAIL == 0)) || return 1 # (a failed drain may have left its node in standby)

  t_begin "ocf:$p:VirtualDomain: node loss: every process of a node killed at once, the survivors keep quorum and restart its VMs once"
  snap
  lost=$(where "$VM_GUEST")
  if [[ $p != rust ]]; then lost=$(busiest "$x"); fi
  survivor=ocfa
  if [[ $lost == ocfa ]]; then survivor=ocfb; fi
  moved=()
  for r in "${rscs[@]}" "$VM_GUEST"; do if [[ $(where "$r") == "$lost" ]]; then moved+=("$r"); fi; done
  t_note "power cut of $lost (${#moved[@]} VMs: ${moved[*]}, $GUEST's host: $(where "$VM_GUEST"))"
  m=$(marks)
  t0=$(now)
  assert_rc 0 "libvirt-hosts.sh kill $lost" -- "$NODES_SH" kill "$lost"
  assert_wait 300 "every resource Started off $lost, $GUEST online, the DC idle (asked on $survivor)" -- \
    settled_guest "$lost" "$survivor" || show_mon
  TIMES[$p node-loss]=$(since "$t0")
  t_note "${#moved[@]} VMs of $lost Started elsewhere in ${TIMES[$p node-loss]} s; VMs per node: $(spread_of "$x")"
  assert_match "Quorate:[[:space:]]+Yes" "$(on "$survivor" corosync-quorumtool -s 2>&1)" "quorum on $survivor"
  assert_match "OFFLINE: \[ $lost \]" "$MON" "crm_mon shows $lost offline"
  assert_eq "" "$(once_each)" "domains not running exactly once after the node loss"
  assert_no_match "Result of migrate_(to|from) operation" "$(logs_since "$m")" "no migration tried from a dead node"
  t_note "bringing $lost back"
  assert_rc 0 "libvirt-hosts.sh up $lost" -- "$NODES_SH" up "$lost"
  assert_rc 0 "node files of $lost" -- node_files "$lost"
  assert_rc 0 "start corosync and pacemaker in $lost" -- node_start "$lost"
  assert_wait 90 "ocfa ocfb ocfc online again" -- all_online
  assert_wait 90 "every resource Started, the DC idle" -- settled
  assert_eq "" "$(once_each)" "domains not running exactly once after $lost rejoined"
  t_end
}
spread_of() { local h out=(); for h in "${ALL[@]}"; do out+=("$h:$(count_on_of "$1" "$h")"); done; echo "${out[*]}"; }
count_on_of() { # PREFIX NODE: the phase's VMs on NODE (vm-guest1 not counted)
  local vm n=0
  for vm in "${VMS[@]}"; do if [[ $(where "$1-${vm#sc-}") == "$2" ]]; then n=$((n + 1)); fi; done
  echo "$n"
}

phase rust rs migration_network_suffix=-mig || exit 1
((T_NFAIL == 0)) || exit 1

t_begin "switch agent sets: the ocf:rust guests deleted at once, none left running"
assert_rc 0 "delete the rust VM resources (pcs -f, one cib-push)" -- delete_vms rs
assert_wait 120 "no qemu of sc-vm01..$N left" -- no_vm_runs
t_end
((T_NFAIL == 0)) || exit 1

phase heartbeat hb

ACCEL=TCG
if grep -q "<domain type='kvm'" "$SHARED/${VMS[0]}.xml" 2>/dev/null; then ACCEL=KVM; fi
t_note "timings (s), $ACCEL, $N guests of $MEM MiB on 3 nodes:"
t_note "$(printf '%-12s %10s %10s' step rust heartbeat)"
for s in create drain node-loss; do
  t_note "$(printf '%-12s %10s %10s' "$s" "${TIMES[rust $s]:-n/a}" "${TIMES[heartbeat $s]:-n/a}")"
done
t_note "$(printf '%-12s %10s %10s' "migrate_to at once" "${TIMES[rust concurrent]:-n/a}" "${TIMES[heartbeat concurrent]:-n/a}")"
# A run in which every case passed leaves its timings for make bench (bench/bench.py).
if ((T_NFAIL == 0)); then
  {
    printf '# tests/scale/cluster.sh %s: %s guests of %s MiB, 3 nodes, %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" "$N" "$MEM" "$ACCEL"
    printf 'step\trust\theartbeat\n'
    for s in create drain node-loss concurrent; do
      printf '%s\t%s\t%s\n' "$s" "${TIMES[rust $s]:-}" "${TIMES[heartbeat $s]:-}"
    done
  } >"$TIMINGS.tmp.$$"
  mv -f "$TIMINGS.tmp.$$" "$TIMINGS"
  t_note "timings written to $TIMINGS"
fi
