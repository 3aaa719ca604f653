#!/usr/bin/env bash
# Live migration with ocf:rust:VirtualDomain between two libvirt hosts on this machine
# (scripts/libvirt-hosts.sh: ocfa and ocfb, each in its own network, mount and UTS namespace).
#
# The agent runs like Pacemaker runs it: migrate_to inside the source host's namespaces, then
# migrate_from inside the target's, then stop on the source, with OCF_RESKEY_hypervisor=
# qemu:///system (each host's own libvirtd), CRM_meta_migrate_target/_source, CRM_meta_timeout
# and a per-host HA_RSCTMP. One tiny guest travels back and forth through every mode; its
# console file (same path on both hosts, append='on') must show one boot only and a heartbeat
# counter that keeps increasing across every migration. Then the failure paths: a migration
# aborted at the deadline, unreachable targets, migrate_from with nothing arrived.
# shellcheck source=tests/lib.sh
# shellcheck disable=SC2015 # `a && b && c || true`: lib.sh's assertions close the case themselves
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

HOSTS=$T_REPO/scripts/libvirt-hosts.sh
AGENT=${OCF_RS_VD_AGENT:-/usr/lib/ocf/resource.d/rust/VirtualDomain}
VM=ocfrs-mig-vm
XML=$T_TMP/$VM.xml
CONSOLE=$T_TMP/$VM.console
HOSTS_DIR=${OCF_RS_HOSTS_DIR:-/run/ocf-rs-hosts}
declare -A URI

# ---- helpers ----

now() { echo "$EPOCHREALTIME"; }
ms_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", (b - a) * 1000 }'; }

# agent HOST ACTION [NAME=VALUE...]: runs the agent inside HOST with Pacemaker's environment;
# NAME=VALUE pairs (OCF_RESKEY_..., HA_...) add to or override it. Output in $A_OUT, rc in
# $A_RC, duration in $A_MS.
A_OUT="" A_RC=0 A_MS=0
agent() {
  local host=$1 action=$2 t0
  shift 2
  local src=ocfa dst=ocfb
  [[ $host == ocfb && $action == migrate_to ]] && src=ocfb dst=ocfa
  [[ $host == ocfa && $action == migrate_from ]] && src=ocfb dst=ocfa
  t0=$(now)
  A_OUT=$("$HOSTS" exec "$host" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=vm OCF_RESOURCE_TYPE=VirtualDomain \
    OCF_RESOURCE_PROVIDER=rust OCF_RA_VERSION_MAJOR=1 OCF_RA_VERSION_MINOR=1 \
    OCF_RESKEY_config="$XML" OCF_RESKEY_hypervisor=qemu:///system \
    OCF_RESKEY_CRM_meta_migrate_source=$src OCF_RESKEY_CRM_meta_migrate_target=$dst \
    OCF_RESKEY_CRM_meta_timeout=30000 OCF_RESKEY_CRM_meta_on_node="$host" \
    HA_RSCTMP="$T_TMP/rsctmp-$host" "$@" "$AGENT" "$action" 2>&1)
  A_RC=$?
  A_MS=$(ms_since "$t0")
}

reason() { sed -n 's/^ocf-exit-reason://p' <<<"$A_OUT" | tail -n 1; } # of the last agent call

# expect_rc EXPECTED WHAT: the last agent call's rc
expect_rc() {
  [[ $A_RC == "$1" ]] && return 0
  t_fail "$2: expected rc $1, got $A_RC after ${A_MS} ms; output: $(_t_short "$A_OUT")"
}

state_on() { # HOST: the domain's state on HOST ("" when unknown there)
  local s
  s=$(virsh -q -c "${URI[$1]}" domstate "$VM" 2>/dev/null) || true
  printf '%s\n' "${s%%$'\n'*}"
}
running_on() { [[ $(state_on "$1") == running ]]; }
absent_on() { [[ -z $(state_on "$1") ]]; }
persistent_on() {
  local info
  info=$(virsh -q -c "${URI[$1]}" dominfo "$VM" 2>/dev/null) || return 1
  [[ $info =~ Persistent:[[:space:]]+yes ]]
}

boots() { grep -c '^GUEST-BOOT' "$CONSOLE" 2>/dev/null || true; }
heartbeat() { # the last heartbeat number on the console (0 when none yet)
  local n
  n=$(sed -n 's/^GUEST-HEARTBEAT \([0-9][0-9]*\).*/\1/p' "$CONSOLE" 2>/dev/null | tail -n 1)
  echo "${n:-0}"
}
heartbeat_above() { (($(heartbeat) > $1)); }
# heartbeats_increase: every heartbeat line is the one before plus one
heartbeats_increase() {
  sed -n 's/^GUEST-HEARTBEAT \([0-9][0-9]*\).*/\1/p' "$CONSOLE" \
    | awk 'NR > 1 && $1 != prev + 1 { print "after " prev " came " $1; bad = 1 } { prev = $1 } END { exit bad }'
}

ns_pids() { "$HOSTS" pids "$1" | sort -n | tr '\n' ' '; }

log_lines() { # HOST: number of lines in HOST's libvirtd.log now
  wc -l <"$HOSTS_DIR/$1/log/libvirtd.log" 2>/dev/null || echo 0
}
log_since() { # HOST LINE: HOST's libvirtd.log after line LINE
  tail -n +"$(($2 + 1))" "$HOSTS_DIR/$1/log/libvirtd.log" 2>/dev/null
}

# migrate SRC DST [NAME=VALUE...]: the full Pacemaker sequence, checked step by step.
# migrate_to's output is left in $MIG_OUT.
MIG_OUT=""
migrate() {
  local src=$1 dst=$2 hb
  shift 2
  ((T_OPEN)) || return 1
  assert_true "domain runs on $src before the migration" -- running_on "$src" || return 1
  hb=$(heartbeat)
  agent "$src" migrate_to "$@"
  expect_rc 0 "migrate_to on $src" || return 1
  MIG_OUT=$A_OUT
  t_note "migrate_to $src -> $dst: ${A_MS} ms"
  assert_true "domain runs on $dst after migrate_to (state there: '$(state_on "$dst")')" -- running_on "$dst" || return 1
  assert_true "domain gone from $src after migrate_to (state there: '$(state_on "$src")')" -- eval '! running_on '"$src" || return 1
  agent "$dst" migrate_from "$@"
  expect_rc 0 "migrate_from on $dst" || return 1
  t_note "migrate_from on $dst: ${A_MS} ms"
  agent "$src" stop "$@"
  expect_rc 0 "stop on $src" || return 1
  agent "$dst" monitor "$@"
  expect_rc 0 "monitor on $dst" || return 1
  agent "$src" monitor "$@"
  expect_rc 7 "monitor on $src" || return 1
  assert_wait 8 "heartbeat continues after $hb on $dst" -- heartbeat_above "$hb" || return 1
  assert_eq 1 "$(boots)" "GUEST-BOOT lines on the console (the guest must not reboot)" || return 1
  assert_true "heartbeat counter increases by one each line: $(heartbeats_increase)" -- heartbeats_increase
}

cleanup() {
  "$HOSTS" down 2>&1 | sed 's/^/# /'
}

# ---- set-up ----

t_begin "two libvirt hosts come up and the guest boots on ocfa"
t_on_exit cleanup
T0=$(now)
if ! out=$("$T_REPO/scripts/build-guest.sh" 2>&1); then
  t_fail "build-guest.sh failed: $(_t_short "$out")"
  exit 1
fi
"$HOSTS" down >/dev/null 2>&1 # leftovers of an interrupted run
if ! out=$("$HOSTS" up 2>&1); then
  t_fail "libvirt-hosts.sh up failed: $(_t_short "$out")"
  exit 1
fi
for h in ocfa ocfb; do
  URI[$h]=$("$HOSTS" uri "$h")
  mkdir -p "$T_TMP/rsctmp-$h"
done
"$T_REPO/scripts/make-domain.sh" "$VM" "$XML" --console "$CONSOLE" || t_fail "make-domain.sh failed"
assert_rc 0 "virsh create on ocfa" -- virsh -c "${URI[ocfa]}" create "$XML" \
  && assert_wait 30 "GUEST-READY on the console" -- grep -q '^GUEST-READY' "$CONSOLE" \
  && assert_wait 5 "first heartbeat" -- heartbeat_above 0
t_note "hosts up and guest ready in $(t_elapsed) s"
t_end
((T_NFAIL == 0)) || exit 1

# ---- live migrations that must succeed ----

t_begin "migration_transport=tcp: ocfa -> ocfb through qemu+tcp://ocfb/system"
migrate ocfa ocfb OCF_RESKEY_migration_transport=tcp \
  && assert_match 'remote_uri=qemu\+tcp://ocfb/system' "$MIG_OUT" "migrate_to's log" || true
t_end

t_begin "remoteuri=qemu+tcp://%n/system: ocfb -> ocfa"
migrate ocfb ocfa 'OCF_RESKEY_remoteuri=qemu+tcp://%n/system' || true
t_end

t_begin "migrate_options=--p2p: ocfa -> ocfb"
n=$(log_lines ocfa)
migrate ocfa ocfb OCF_RESKEY_migration_transport=tcp OCF_RESKEY_migrate_options=--p2p \
  && assert_match 'qemuMigrationSrcPerformPeer2Peer' "$(log_since ocfa "$n")" "ocfa's libvirtd did a peer-to-peer migration" || true
t_end

t_begin "migrate_options=--p2p --tunnelled: ocfb -> ocfa"
n=$(log_lines ocfb)
migrate ocfb ocfa OCF_RESKEY_migration_transport=tcp 'OCF_RESKEY_migrate_options=--p2p --tunnelled' \
  && assert_match '"uri":"fd:' "$(log_since ocfb "$n" | grep '"execute":"migrate"')" "tunnelled data through a file descriptor" || true
t_end

t_begin "migrate_options=--persistent --undefinesource: persistent on ocfb, gone from ocfa"
assert_rc 0 "virsh define on ocfa (make the source domain persistent)" -- virsh -c "${URI[ocfa]}" define "$XML" \
  && assert_true "persistent on ocfa before" -- persistent_on ocfa \
  && assert_true "not defined on ocfb before" -- absent_on ocfb \
  && migrate ocfa ocfb OCF_RESKEY_migration_transport=tcp 'OCF_RESKEY_migrate_options=--persistent --undefinesource' \
  && assert_true "persistent on ocfb after" -- persistent_on ocfb \
  && assert_true "undefined on ocfa after (state: '$(state_on ocfa)')" -- absent_on ocfa || true
t_end

t_begin "migrateuri=tcp://%n:49200: ocfb -> ocfa, data on port 49200"
n=$(log_lines ocfa)
migrate ocfb ocfa OCF_RESKEY_migration_transport=tcp 'OCF_RESKEY_migrateuri=tcp://%n:49200' \
  && assert_match '"execute":"migrate-incoming","arguments":\{"uri":"tcp:[^"]*:49200"' "$(log_since ocfa "$n")" \
    "ocfa's qemu listened on 49200" || true
t_end

t_begin "migrate_options=--migrateuri tcp:%n:49202: ocfa -> ocfb, data on port 49202"
n=$(log_lines ocfb)
migrate ocfa ocfb OCF_RESKEY_migration_transport=tcp 'OCF_RESKEY_migrate_options=--migrateuri tcp:%n:49202' \
  && assert_match '"execute":"migrate-incoming","arguments":\{"uri":"tcp:[^"]*:49202"' "$(log_since ocfb "$n")" \
    "ocfb's qemu listened on 49202" || true
t_end

t_begin "migration_network_suffix=-mig, migrateport=49201: ocfb -> ocfa via ocfa-mig"
n=$(log_lines ocfb)
m=$(log_lines ocfa)
migrate ocfb ocfa OCF_RESKEY_migration_transport=tcp OCF_RESKEY_migration_network_suffix=-mig OCF_RESKEY_migrateport=49201 \
  && assert_match 'uri=tcp:ocfa-mig:49201' "$(log_since ocfb "$n" | grep -m1 -o 'uri=tcp:[^ ,]*')" \
    "ocfb's libvirtd migrated to the suffixed data URI" \
  && assert_match '"execute":"migrate-incoming","arguments":\{"uri":"tcp:[^"]*:49201"' "$(log_since ocfa "$m")" \
    "ocfa's qemu listened on 49201" || true
t_end

t_begin "migration_speed=5 and migration_downtime=100 are in force during the job"
assert_true "domain on ocfa" -- running_on ocfa
if ((T_OPEN)); then
  hb=$(heartbeat)
  {
    agent ocfa migrate_to OCF_RESKEY_migration_transport=tcp OCF_RESKEY_migration_speed=5 \
      OCF_RESKEY_migration_downtime=100
    printf '%s\n' "$A_OUT"
    exit "$A_RC"
  } >"$T_TMP/speed.out" 2>&1 &
  bg=$!
  seen_job="" seen_speed="" seen_down=""
  saw_all() {
    local j
    j=$(virsh -c "${URI[ocfa]}" domjobinfo "$VM" 2>/dev/null)
    [[ $j =~ Job\ type:[[:space:]]+Unbounded ]] && seen_job=$j
    [[ $(virsh -q -c "${URI[ocfa]}" migrate-getspeed "$VM" 2>/dev/null) == 5 ]] && seen_speed=5
    [[ $(virsh -q -c "${URI[ocfa]}" migrate-getmaxdowntime "$VM" 2>/dev/null) == 100 ]] && seen_down=100
    [[ -n $seen_job && -n $seen_speed && -n $seen_down ]]
  }
  wait_until 10 saw_all
  # finish the job quickly now (at 5 MiB/s the ~75 MiB this guest sends would take 15 s)
  virsh -q -c "${URI[ocfa]}" migrate-setspeed "$VM" 8000 >/dev/null 2>&1
  wait "$bg"
  bg_rc=$?
  assert_match 'Unbounded' "$seen_job" "virsh domjobinfo on ocfa during migrate_to" \
    && assert_eq 5 "$seen_speed" "virsh migrate-getspeed during migrate_to (MiB/s)" \
    && assert_eq 100 "$seen_down" "virsh migrate-getmaxdowntime during migrate_to (ms)" \
    && assert_eq 0 "$bg_rc" "migrate_to exit code (output: $(_t_short "$(cat "$T_TMP/speed.out")"))" \
    && assert_true "domain runs on ocfb" -- running_on ocfb
  if ((T_OPEN)); then
    agent ocfb migrate_from
    expect_rc 0 "migrate_from on ocfb" && agent ocfa stop && expect_rc 0 "stop on ocfa" \
      && assert_wait 8 "heartbeat continues" -- heartbeat_above "$hb" \
      && assert_eq 1 "$(boots)" "GUEST-BOOT lines"
  fi
fi
t_end

# The guest is on ocfb now; bring it back to ocfa for the failure cases.
# (tcp with auth_tcp=none ignores the user; the URI shows it reached libvirt)
t_begin "migration_user=root: ocfb -> ocfa through qemu+tcp://root@ocfa/system"
migrate ocfb ocfa OCF_RESKEY_migration_transport=tcp OCF_RESKEY_migration_user=root \
  && assert_match 'remote_uri=qemu\+tcp://root@ocfa/system' "$MIG_OUT" "migrate_to's log" || true
t_end

# (a passing validate-all keeps stderr for problems, pcs reads it: the URIs are in the log file)
t_begin "validate-all shows the URIs migrate_to would use"
VLOG=$T_TMP/validate.log
agent ocfa validate-all HA_LOGFILE="$VLOG" OCF_RESKEY_migration_transport=tcp OCF_RESKEY_migration_user=root \
  OCF_RESKEY_migration_network_suffix=-mig OCF_RESKEY_migrateport=49201
expect_rc 0 "validate-all" \
  && assert_match 'remote_uri=qemu\+tcp://root@ocfb-mig/system migrate_uri=tcp:ocfb-mig:49201' "$(cat "$VLOG" 2>&1)" \
    "validate-all with CRM_meta_migrate_target=ocfb, in HA_LOGFILE"
if ((T_OPEN)); then
  : >"$VLOG"
  agent ocfa validate-all HA_LOGFILE="$VLOG" OCF_RESKEY_migration_transport=tcp OCF_RESKEY_CRM_meta_migrate_target= \
    'OCF_RESKEY_migrateuri=tcp://%n-mig:49300'
  expect_rc 0 "validate-all without a target" \
    && assert_match 'remote_uri=qemu\+tcp://%n/system migrate_uri=tcp://%n-mig:49300' "$(cat "$VLOG" 2>&1)" \
      "validate-all without CRM_meta_migrate_target shows %n, in HA_LOGFILE"
fi
t_end

# ---- failures: the guest must stay where it is ----

t_begin "abort at the deadline: migration_speed=1, CRM_meta_timeout=8000 -> rc 1 before 8 s, guest stays on ocfa"
before=$(ns_pids ocfa)
agent ocfa migrate_to OCF_RESKEY_migration_transport=tcp OCF_RESKEY_migration_speed=1 OCF_RESKEY_CRM_meta_timeout=8000
t_note "aborted migrate_to: rc $A_RC after ${A_MS} ms: $(grep -m1 -iE 'error|abort' <<<"$A_OUT")"
expect_rc 1 "migrate_to with a migration that cannot finish in time" \
  && assert_true "returned before the 8 s timeout (${A_MS} ms)" -- test "$A_MS" -lt 8000 \
  && assert_match 'aborted.*keeps running here' "$(reason)" "the exit reason says the migration was aborted" \
  && assert_true "domain still runs on ocfa (state: '$(state_on ocfa)')" -- running_on ocfa \
  && assert_true "domain not running on ocfb (state: '$(state_on ocfb)')" -- eval '! running_on ocfb' \
  && assert_match 'Job type:[[:space:]]+None' "$(virsh -c "${URI[ocfa]}" domjobinfo "$VM" 2>&1)" "no job left on ocfa" \
  && assert_eq "$before" "$(ns_pids ocfa)" "processes in ocfa's namespaces (the agent left no child)" \
  && { agent ocfa monitor; expect_rc 0 "monitor on ocfa after the abort"; } \
  && assert_wait 8 "heartbeat continues on ocfa" -- heartbeat_above "$(heartbeat)"
t_end
# Later migrations of this domain would run at the 1 MiB/s it keeps from here: raise it.
virsh -q -c "${URI[ocfa]}" migrate-setspeed "$VM" 8000 >/dev/null 2>&1 || true

t_begin "target that does not resolve (CRM_meta_migrate_target=nohost) -> rc 1 quickly, guest stays"
agent ocfa migrate_to OCF_RESKEY_migration_transport=tcp OCF_RESKEY_CRM_meta_migrate_target=nohost
t_note "rc $A_RC after ${A_MS} ms: $(grep -m1 -iE 'error|nohost' <<<"$A_OUT")"
expect_rc 1 "migrate_to to nohost" \
  && assert_true "within 3 s (${A_MS} ms)" -- test "$A_MS" -lt 3000 \
  && assert_match 'nohost' "$A_OUT" "the reason names the target" \
  && assert_true "domain still runs on ocfa" -- running_on ocfa \
  && assert_match 'Job type:[[:space:]]+None' "$(virsh -c "${URI[ocfa]}" domjobinfo "$VM" 2>&1)" "no job left"
t_end

# ocfb drops its answers to ocfa (a blackhole route for ocfa's address inside ocfb's namespace):
# connections from ocfa hang as with a dead host or a dropping firewall, until TCP gives up (~2 min)
blackhole() { "$HOSTS" exec ocfb ip route "$1" blackhole 10.213.99.1/32; }
t_begin "target unreachable (packets dropped) -> rc 1 before the 8 s timeout, guest stays, no job (with and without --p2p)"
if ! blackhole add; then
  t_fail "cannot add the blackhole route in ocfb"
fi
for opt in "" --p2p; do
  ((T_OPEN)) || break
  before=$(ns_pids ocfa)
  agent ocfa migrate_to OCF_RESKEY_migration_transport=tcp OCF_RESKEY_CRM_meta_timeout=8000 \
    OCF_RESKEY_migrate_options="$opt"
  t_note "${opt:-direct}: rc $A_RC after ${A_MS} ms: $(reason)"
  expect_rc 1 "migrate_to ${opt:-direct} to an unreachable ocfb" \
    && assert_true "returned before the 8 s timeout (${A_MS} ms)" -- test "$A_MS" -lt 8000 \
    && assert_match 'ocfb' "$(reason)" "the exit reason names the target" \
    && assert_true "domain still runs on ocfa (state: '$(state_on ocfa)')" -- running_on ocfa \
    && assert_match 'Job type:[[:space:]]+None' "$(virsh -c "${URI[ocfa]}" domjobinfo "$VM" 2>&1)" "no job left on ocfa" \
    && assert_eq "$before" "$(ns_pids ocfa)" "processes in ocfa's namespaces (the agent left no child)"
done
blackhole del || t_fail "cannot remove the blackhole route in ocfb"
t_end

t_begin "target whose libvirtd is stopped -> rc 1 quickly, guest stays (with and without --p2p)"
"$HOSTS" stop-libvirtd ocfb >/dev/null 2>&1
agent ocfa migrate_to OCF_RESKEY_migration_transport=tcp
t_note "rc $A_RC after ${A_MS} ms: $(grep -m1 -iE 'error' <<<"$A_OUT")"
expect_rc 1 "migrate_to to ocfb without libvirtd" \
  && assert_true "within 3 s (${A_MS} ms)" -- test "$A_MS" -lt 3000 \
  && assert_match 'ocfb' "$A_OUT" "the reason names the target" \
  && assert_true "domain still runs on ocfa" -- running_on ocfa
if ((T_OPEN)); then
  agent ocfa migrate_to OCF_RESKEY_migration_transport=tcp OCF_RESKEY_migrate_options=--p2p
  t_note "--p2p: rc $A_RC after ${A_MS} ms: $(grep -m1 -iE 'error' <<<"$A_OUT")"
  expect_rc 1 "migrate_to --p2p to ocfb without libvirtd" \
    && assert_true "within 3 s (${A_MS} ms)" -- test "$A_MS" -lt 3000 \
    && assert_true "domain still runs on ocfa" -- running_on ocfa \
    && assert_match 'Job type:[[:space:]]+None' "$(virsh -c "${URI[ocfa]}" domjobinfo "$VM" 2>&1)" "no job left"
fi
out=$("$HOSTS" up ocfb 2>&1) || t_fail "restarting ocfb's libvirtd: $(_t_short "$out")"
t_end

t_begin "migrate_from on ocfb when nothing arrived -> rc 1 in < 2 s"
agent ocfb migrate_from
t_note "rc $A_RC after ${A_MS} ms: $(grep -m1 -iE 'error' <<<"$A_OUT")"
expect_rc 1 "migrate_from without an incoming domain" \
  && assert_true "within 2 s (${A_MS} ms)" -- test "$A_MS" -lt 2000 \
  && assert_match 'not running here' "$A_OUT" "reason" \
  && assert_true "domain still runs on ocfa" -- running_on ocfa
t_end

t_begin "after all that the guest still migrates (ocfa -> ocfb) and never rebooted"
migrate ocfa ocfb OCF_RESKEY_migration_transport=tcp || true
t_note "console: $(boots) boot, heartbeat up to $(heartbeat); total $(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"
t_end

# ---- start_resources: the storage pool a second domain uses is started on the target ----

VM2=ocfrs-mig-pool
XML2=$T_TMP/$VM2.xml
POOL=ocfrs-mig-pool
pool_state() { virsh -c "${URI[$1]}" pool-info "$POOL" 2>/dev/null | sed -n 's/^State:[[:space:]]*//p'; }
vm2_state() { local s; s=$(virsh -q -c "${URI[$1]}" domstate "$VM2" 2>/dev/null) || true; printf '%s\n' "${s%%$'\n'*}"; }
vm2() { agent "$@" OCF_RESKEY_config="$XML2" OCF_RESOURCE_INSTANCE=vm2 OCF_RESKEY_migration_transport=tcp; }
t_begin "start_resources=true: migrate_to starts the domain's storage pool on the target"
mkdir -p "$T_TMP/pool" && truncate -s 1M "$T_TMP/pool/ro.img"
"$T_REPO/scripts/make-domain.sh" "$VM2" "$XML2" --console "$T_TMP/$VM2.console" || t_fail "make-domain.sh failed"
# a read-only CD-ROM from the pool: the target must resolve the volume, no storage is copied
sed -i "s|</devices>|  <disk type='volume' device='cdrom'>\n      <driver name='qemu' type='raw'/>\n      <source pool='$POOL' volume='ro.img'/>\n      <target dev='hdc' bus='ide'/>\n      <readonly/>\n    </disk>\n  </devices>|" "$XML2"
for h in ocfa ocfb; do
  assert_rc 0 "virsh pool-define-as on $h" -- virsh -c "${URI[$h]}" pool-define-as "$POOL" dir --target "$T_TMP/pool" \
    && assert_eq inactive "$(pool_state "$h")" "pool state on $h before"
done
if ((T_OPEN)); then
  vm2 ocfa start OCF_RESKEY_start_resources=true
  expect_rc 0 "start of $VM2 on ocfa with start_resources=true" \
    && assert_eq running "$(pool_state ocfa)" "pool state on ocfa after start" \
    && assert_eq inactive "$(pool_state ocfb)" "pool state on ocfb before the migration"
fi
if ((T_OPEN)); then
  vm2 ocfa migrate_to
  t_note "without start_resources: rc $A_RC after ${A_MS} ms: $(reason)"
  expect_rc 1 "migrate_to without start_resources (pool inactive on ocfb)" \
    && assert_match "$POOL" "$(reason)" "the exit reason names the pool" \
    && assert_eq running "$(vm2_state ocfa)" "$VM2 on ocfa after the failed migration" \
    && assert_eq "" "$(vm2_state ocfb)" "$VM2 on ocfb after the failed migration"
fi
if ((T_OPEN)); then
  vm2 ocfa migrate_to OCF_RESKEY_start_resources=true
  t_note "with start_resources: rc $A_RC after ${A_MS} ms"
  expect_rc 0 "migrate_to with start_resources=true" \
    && assert_eq running "$(pool_state ocfb)" "pool state on ocfb" \
    && assert_eq running "$(vm2_state ocfb)" "$VM2 on ocfb" \
    && { vm2 ocfb migrate_from; expect_rc 0 "migrate_from on ocfb"; } \
    && { vm2 ocfa stop; expect_rc 0 "stop on ocfa"; } \
    && assert_eq "" "$(vm2_state ocfa)" "$VM2 on ocfa"
fi
vm2 ocfb stop OCF_RESKEY_force_stop=true >/dev/null 2>&1
vm2 ocfa stop OCF_RESKEY_force_stop=true >/dev/null 2>&1
t_end

# ---- backingfile: start defines the domain persistently; a migration keeps it so ----

VM3=ocfrs-mig-bf
XML3=$T_TMP/$VM3.xml
vm3() { agent "$@" OCF_RESKEY_config="$XML3" OCF_RESOURCE_INSTANCE=vm3 OCF_RESKEY_migration_transport=tcp \
  OCF_RESKEY_backingfile="$T_TMP/base.img"; }
vm3_persistent() { [[ $(virsh -q -c "${URI[$1]}" dominfo "$VM3" 2>/dev/null) =~ Persistent:[[:space:]]+yes ]]; }
vm3_state() { local s; s=$(virsh -q -c "${URI[$1]}" domstate "$VM3" 2>/dev/null) || true; printf '%s\n' "${s%%$'\n'*}"; }
t_begin "backingfile: the domain start defined persistently on ocfa is persistent on ocfb after the migration, undefined on ocfa"
qemu-img create -q -f raw "$T_TMP/base.img" 8M || t_fail "qemu-img create"
"$T_REPO/scripts/make-domain.sh" "$VM3" "$XML3" --console "$T_TMP/$VM3.console" || t_fail "make-domain.sh failed"
# the overlay is a local file both hosts see at the same path: libvirt cannot tell it is shared (--unsafe)
sed -i "s|</devices>|  <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      <source file='$T_TMP/$VM3.qcow2'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n  </devices>|" "$XML3"
if ((T_OPEN)); then
  vm3 ocfa start
  expect_rc 0 "start with backingfile on ocfa" \
    && assert_true "persistent on ocfa after start" -- vm3_persistent ocfa
fi
if ((T_OPEN)); then
  vm3 ocfa migrate_to OCF_RESKEY_migrate_options=--unsafe
  t_note "rc $A_RC after ${A_MS} ms"
  expect_rc 0 "migrate_to with backingfile" \
    && assert_eq running "$(vm3_state ocfb)" "$VM3 on ocfb" \
    && assert_true "persistent on ocfb" -- vm3_persistent ocfb \
    && assert_eq "" "$(vm3_state ocfa)" "$VM3 on ocfa (no definition left)" \
    && { vm3 ocfb migrate_from; expect_rc 0 "migrate_from on ocfb"; } \
    && { vm3 ocfa stop; expect_rc 0 "stop on ocfa"; }
fi
vm3 ocfb stop OCF_RESKEY_force_stop=true >/dev/null 2>&1
vm3 ocfa stop OCF_RESKEY_force_stop=true >/dev/null 2>&1
t_end

# ---- abort at the deadline: a guest that dirties memory faster than the bandwidth cap ----

# The same guest plus an appended initramfs archive (the kernel unpacks them in order, later
# files win): inittab gains a job that rewrites 8 MiB of random data in RAM in a loop.
VM4=ocfrs-mig-dirty
XML4=$T_TMP/$VM4.xml
CONSOLE4=$T_TMP/$VM4.console
dirty_guest() { # DIR: vmlinuz + initrd.img of the dirtying guest
  local d=$1 r=$1/root g=${OCF_RS_GUEST_DIR:-$T_REPO/build/guest}
  mkdir -p "$r/bin" "$r/etc" || return 1
  zcat "$g/initrd.img" 2>/dev/null | cpio -i --quiet --to-stdout etc/inittab >"$r/etc/inittab" 2>/dev/null
  grep -q ocfguest-ready "$r/etc/inittab" || return 1
  echo '::once:/bin/ocfguest-dirty' >>"$r/etc/inittab"
  cat >"$r/bin/ocfguest-dirty" <<'SH'
#!/bin/sh
dd if=/dev/urandom of=/tmp/dirty.src bs=1M count=8 2>/dev/null
echo "GUEST-DIRTYING" >/dev/console
while :; do cp /tmp/dirty.src /tmp/dirty.dst; done
SH
  chmod 0755 "$r/bin/ocfguest-dirty"
  (cd "$r" && find bin etc | cpio -o --quiet -H newc -R 0:0 | gzip) >"$d/extra.cpio.gz" || return 1
  cat "$g/initrd.img" "$d/extra.cpio.gz" >"$d/initrd.img" && ln -sf "$(readlink -f "$g/vmlinuz")" "$d/vmlinuz"
}
vm4() { agent "$@" OCF_RESKEY_config="$XML4" OCF_RESOURCE_INSTANCE=vm4 OCF_RESKEY_migration_transport=tcp; }
vm4_state() { local s; s=$(virsh -q -c "${URI[$1]}" domstate "$VM4" 2>/dev/null) || true; printf '%s\n' "${s%%$'\n'*}"; }
vm4_heartbeat() {
  local n
  n=$(sed -n 's/^GUEST-HEARTBEAT \([0-9][0-9]*\).*/\1/p' "$CONSOLE4" 2>/dev/null | tail -n 1)
  echo "${n:-0}"
}
vm4_heartbeat_above() { (($(vm4_heartbeat) > $1)); }
t_begin "abort at the deadline: a guest re-dirtying 8 MiB faster than migration_speed=6 sends it -> rc 1 before the 24 s timeout, guest stays"
dirty_guest "$T_TMP/dirty" || t_fail "cannot make the dirtying guest's initramfs"
"$T_REPO/scripts/make-domain.sh" "$VM4" "$XML4" --guest-dir "$T_TMP/dirty" --console "$CONSOLE4" || t_fail "make-domain.sh failed"
if ((T_OPEN)); then
  vm4 ocfa start
  expect_rc 0 "start of $VM4 on ocfa" \
    && assert_wait 30 "GUEST-DIRTYING on its console" -- grep -q '^GUEST-DIRTYING' "$CONSOLE4"
fi
if ((T_OPEN)); then
  before=$(ns_pids ocfa)
  {
    vm4 ocfa migrate_to OCF_RESKEY_migration_speed=6 OCF_RESKEY_migration_downtime=50 OCF_RESKEY_CRM_meta_timeout=24000
    printf '%s\n' "$A_OUT" >"$T_TMP/dirty.out"
    echo "$A_RC $A_MS" >"$T_TMP/dirty.rc"
  } &
  bg=$!
  # libvirt's iteration counter: past 1, the first copy of all memory is done and what is left
  # is memory the guest dirtied again since
  iteration=0 dirty_rate=0 remaining=""
  job_seen() {
    local j n
    j=$(virsh -c "${URI[ocfa]}" domjobinfo "$VM4" 2>/dev/null)
    n=$(sed -n 's/^Iteration:[[:space:]]*\([0-9]*\).*/\1/p' <<<"$j")
    if [[ -n $n ]] && ((n > iteration)); then
      iteration=$n
      dirty_rate=$(sed -n 's/^Dirty rate:[[:space:]]*\([0-9]*\).*/\1/p' <<<"$j")
      remaining=$(sed -n 's/^Data remaining:[[:space:]]*//p' <<<"$j")
    fi
    ! kill -0 "$bg" 2>/dev/null
  }
  wait_until 30 job_seen
  wait "$bg"
  read -r A_RC A_MS <"$T_TMP/dirty.rc" 2>/dev/null || { A_RC=none A_MS=0; }
  A_OUT=$(cat "$T_TMP/dirty.out" 2>/dev/null)
  t_note "rc $A_RC after ${A_MS} ms; libvirt's last iteration seen $iteration, dirty rate ${dirty_rate:-?} pages/s, data remaining ${remaining:-?}: $(reason)"
  expect_rc 1 "migrate_to of a guest that dirties memory faster than the cap" \
    && assert_true "returned before the 24 s timeout (${A_MS} ms)" -- test "$A_MS" -lt 24000 \
    && assert_true "libvirt iterated over re-dirtied memory (iteration $iteration > 1)" -- test "$iteration" -gt 1 \
    && assert_match '^[0-9.]+ (MiB|GiB)$' "$remaining" "data remaining after the first pass (a converging guest shrinks toward 0)" \
    && assert_match 'migration in progress.*remaining_mib=' "$A_OUT" "migrate_to logged its progress" \
    && assert_match 'aborted.*keeps running here' "$(reason)" "the exit reason says the migration was aborted" \
    && assert_eq running "$(vm4_state ocfa)" "$VM4 on ocfa" \
    && assert_true "$VM4 not running on ocfb (state: '$(vm4_state ocfb)')" -- test "$(vm4_state ocfb)" != running \
    && assert_match 'Job type:[[:space:]]+None' "$(virsh -c "${URI[ocfa]}" domjobinfo "$VM4" 2>&1)" "no job left on ocfa" \
    && assert_eq "$before" "$(ns_pids ocfa)" "processes in ocfa's namespaces (the agent left no child)" \
    && assert_wait 8 "its heartbeat continues on ocfa" -- vm4_heartbeat_above "$(vm4_heartbeat)" \
    && assert_eq 1 "$(grep -c '^GUEST-BOOT' "$CONSOLE4")" "GUEST-BOOT lines of $VM4"
fi
vm4 ocfa stop OCF_RESKEY_force_stop=true >/dev/null 2>&1
vm4 ocfb stop OCF_RESKEY_force_stop=true >/dev/null 2>&1
t_end
