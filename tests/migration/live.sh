#!/usr/bin/env bash
# Live migration with ocf:rust:VirtualDomain between two libvirt hosts on this machine
# (scripts/libvirt-hosts.sh: ocfa and ocfb, each in its own network, mount and UTS namespace).
#
# The agent runs like Pacemaker runs it: migrate_to inside the source host's namespaces, then
# migrate_from inside the target's, then stop on the source, with OCF_RESKEY_hypervisor=
# qemu:///system (each host's own libvirtd), CRM_meta_migrate_target/_source, CRM_meta_timeout
# and a per-host HA_RSCTMP. One tiny guest travels back and forth through every mode; its
# console file (same path on both hosts, append='on') must show one boot only and a heartbeat
# counter that goes up by one each line across every migration. Then the failure paths: a
# migration aborted at the deadline, unreachable targets, migrate_from with nothing arrived.
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
# shellcheck source=tests/lib-guest.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib-guest.sh"

HOSTS=$T_REPO/scripts/libvirt-hosts.sh
AGENT=${OCF_RS_VD_AGENT:-/usr/lib/ocf/resource.d/rust/VirtualDomain}
VM=ocfrs-mig-vm
XML=$T_TMP/$VM.xml
CONSOLE=$T_TMP/$VM.console
HOSTS_DIR=${OCF_RS_HOSTS_DIR:-/run/ocf-rs-hosts}
declare -A HOST_URI # HOST -> its libvirtd's root-namespace URI

# ---- helpers ----

# hvirsh HOST ARGS...: virsh against HOST's libvirtd (lib-guest.sh's virsh_, bounded). Refuses
# to run before the host's URI is known (an empty URI would be libvirt's default one).
hvirsh() {
  local h=$1
  shift
  [[ -n ${HOST_URI[$h]:-} ]] || return 1
  URI=${HOST_URI[$h]} virsh_ "$@"
}
# dom_state HOST [DOMAIN]: lib-guest.sh's domain_state on HOST ("running", "absent", "error: ...")
dom_state() { URI=${HOST_URI[$1]:-unknown-host:///} domain_state "${2:-$VM}"; }
running_on() { [[ $(dom_state "$1" "${2:-$VM}") == running ]]; } # HOST [DOMAIN]
absent_on() { [[ $(dom_state "$1" "${2:-$VM}") == absent ]]; }   # HOST [DOMAIN]: libvirt answered
off_on() { URI=${HOST_URI[$1]:-unknown-host:///} domain_off "${2:-$VM}"; } # HOST [DOMAIN]: shut off or absent
persistent_is() { # HOST yes|no [DOMAIN]: libvirt answered, and says so
  local info
  info=$(hvirsh "$1" dominfo "${3:-$VM}" 2>/dev/null) || return 1
  [[ $info =~ Persistent:[[:space:]]+$2 ]]
}
job_info() { hvirsh "$1" domjobinfo "${2:-$VM}" 2>&1; } # HOST [DOMAIN]
answers() { hvirsh "$1" version >/dev/null 2>&1; }       # HOST: its libvirtd answers

# agent HOST ACTION [NAME=VALUE...]: runs the agent inside HOST with Pacemaker's environment;
# NAME=VALUE pairs (OCF_RESKEY_..., HA_..., OCF_RESOURCE_INSTANCE) replace or add to it: every
# variable is passed once. Output in $A_OUT: stdout and stderr (warnings and errors), then
# the call's HA_LOGFILE (its info records: progress, URIs), unless the caller gives its own
# HA_LOGFILE. rc in $A_RC, duration in $A_MS. Returns 0 (the caller checks $A_RC), 1 for a
# malformed NAME=VALUE.
A_OUT="" A_RC=0 A_MS=0
agent() {
  local host=$1 action=$2 t0 kv k src=ocfa dst=ocfb
  shift 2
  if [[ $host == ocfb && $action == migrate_to ]] || [[ $host == ocfa && $action == migrate_from ]]; then
    src=ocfb dst=ocfa
  fi
  local -A env=(
    [PATH]=/usr/sbin:/usr/bin:/sbin:/bin [LANG]=C.UTF-8 [OCF_ROOT]=/usr/lib/ocf
    [OCF_RESOURCE_INSTANCE]=vm [OCF_RESOURCE_TYPE]=VirtualDomain [OCF_RESOURCE_PROVIDER]=rust
    [OCF_RA_VERSION_MAJOR]=1 [OCF_RA_VERSION_MINOR]=1
    [OCF_RESKEY_config]="$XML" [OCF_RESKEY_hypervisor]=qemu:///system
    [OCF_RESKEY_CRM_meta_migrate_source]="$src" [OCF_RESKEY_CRM_meta_migrate_target]="$dst"
    [OCF_RESKEY_CRM_meta_timeout]=30000 [OCF_RESKEY_CRM_meta_on_node]="$host"
    [HA_RSCTMP]="$T_TMP/rsctmp-$host"
  )
  local log
  log=$(mktemp "$T_TMP/agent-log.XXXXXX") || return 1
  env[HA_LOGFILE]=$log
  for kv in "$@"; do
    if [[ ! $kv =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; then
      A_OUT="agent: not NAME=VALUE: '$kv'" A_RC=none A_MS=0
      return 1
    fi
    env[${kv%%=*}]=${kv#*=}
  done
  local vars=()
  for k in "${!env[@]}"; do vars+=("$k=${env[$k]}"); done
  t0=$(now)
  A_OUT=$("$HOSTS" exec "$host" env -i "${vars[@]}" "$AGENT" "$action" 2>&1)
  A_RC=$?
  A_MS=$(ms_since "$t0")
  if [[ -s $log ]]; then A_OUT+=$'\n'$(<"$log"); fi
  rm -f -- "$log"
  return 0
}

reason() { sed -n 's/^ocf-exit-reason://p' <<<"$A_OUT" | tail -n 1; } # of the last agent call

# assert_agent RC WHAT HOST ACTION [NAME=VALUE...]: an assertion: runs the agent (not once the
# case has failed) and checks its exit code; $A_OUT, $A_RC, $A_MS as after `agent`.
assert_agent() {
  local rc=$1 what=$2
  shift 2
  ((T_OPEN)) || return 1
  t_assertion
  agent "$@"
  [[ $A_RC == "$rc" ]] && return 0
  t_fail "$what: expected rc $rc, got $A_RC after ${A_MS} ms; output: $(_t_short "$A_OUT")"
}

# expect_rc RC WHAT: an assertion on the exit code of the last agent call (e.g. one in the
# background, collected by agent_wait)
expect_rc() {
  ((T_OPEN)) || return 1
  t_assertion
  [[ $A_RC == "$1" ]] && return 0
  t_fail "$2: expected rc $1, got $A_RC after ${A_MS} ms; output: $(_t_short "$A_OUT")"
}

# agent_bg TAG HOST ACTION [NAME=VALUE...]: the agent in the background (pid in $BG);
# agent_wait TAG: waits for it and loads its $A_RC ("none" when it left no result), $A_MS, $A_OUT.
BG=""
agent_bg() {
  local tag=$1
  shift
  rm -f -- "$T_TMP/$tag.rc" "$T_TMP/$tag.out"
  (
    agent "$@"
    printf '%s\n' "$A_OUT" >"$T_TMP/$tag.out"
    printf '%s %s\n' "$A_RC" "$A_MS" >"$T_TMP/$tag.rc"
  ) &
  BG=$!
}
agent_wait() {
  [[ -n $BG ]] && wait "$BG"
  BG=""
  A_RC=none A_MS=0 A_OUT=""
  if [[ -s $T_TMP/$1.rc ]]; then read -r A_RC A_MS <"$T_TMP/$1.rc"; fi
  if [[ -e $T_TMP/$1.out ]]; then A_OUT=$(<"$T_TMP/$1.out"); fi
  return 0
}
bg_running() { [[ -n $BG ]] && kill -0 "$BG" 2>/dev/null; }

boots() { console_count "$CONSOLE" 0 '^GUEST-BOOT'; } # GUEST-BOOT lines on the console (prints 0 when none)
heartbeat() { console_heartbeat "$CONSOLE" 0; }       # the guest's counter now (0 before the first)
heartbeat_above() { console_heartbeat_above "$CONSOLE" 0 "$1"; }
# assert_guest_alive HB WHAT: the guest's counter goes on past HB, it booted once, and every
# heartbeat line on its console (all migrations so far) is the one before plus one
assert_guest_alive() {
  assert_wait 8 "$2: heartbeat continues after $1" -- heartbeat_above "$1" || return 1
  assert_eq 1 "$(boots)" "$2: GUEST-BOOT lines on the console (the guest must not reboot)" || return 1
  assert_eq "" "$(console_heartbeat_breaks "$CONSOLE" 0)" "$2: the heartbeat counter goes up by one each line"
}

ns_pids() { "$HOSTS" pids "$1" | sort -n | tr '\n' ' '; }

log_lines() { # HOST: number of lines in HOST's libvirtd.log now
  wc -l <"$HOSTS_DIR/$1/log/libvirtd.log" 2>/dev/null || echo 0
}
log_since() { # HOST LINE: HOST's libvirtd.log after line LINE
  tail -n +"$(($2 + 1))" "$HOSTS_DIR/$1/log/libvirtd.log" 2>/dev/null
}

# finish_migration SRC DST HB [NAME=VALUE...]: after migrate_to SRC -> DST returned 0, the rest
# of Pacemaker's sequence, checked step by step; HB is the guest's counter before migrate_to.
finish_migration() {
  local src=$1 dst=$2 hb=$3
  shift 3
  assert_true "domain runs on $dst after migrate_to (state there: '$(dom_state "$dst")')" -- running_on "$dst" || return 1
  assert_true "domain shut off or gone on $src after migrate_to (state there: '$(dom_state "$src")')" -- \
    off_on "$src" || return 1
  assert_agent 0 "migrate_from on $dst" "$dst" migrate_from "$@" || return 1
  t_note "migrate_from on $dst: ${A_MS} ms"
  assert_agent 0 "stop on $src" "$src" stop "$@" || return 1
  assert_agent 0 "monitor on $dst" "$dst" monitor "$@" || return 1
  assert_agent 7 "monitor on $src" "$src" monitor "$@" || return 1
  assert_guest_alive "$hb" "on $dst"
}

# migrate SRC DST [NAME=VALUE...]: the full Pacemaker sequence, checked step by step.
# migrate_to's output is left in $MIG_OUT.
MIG_OUT=""
migrate() {
  local src=$1 dst=$2 hb
  shift 2
  assert_true "domain runs on $src before the migration (state there: '$(dom_state "$src")')" -- running_on "$src" || return 1
  hb=$(heartbeat)
  assert_agent 0 "migrate_to on $src" "$src" migrate_to "$@" || return 1
  MIG_OUT=$A_OUT
  t_note "migrate_to $src -> $dst: ${A_MS} ms"
  finish_migration "$src" "$dst" "$hb" "$@"
}

cleanup() {
  "$HOSTS" down 2>&1 | sed 's/^/# /'
}

# ---- set-up ----

t_begin "two libvirt hosts come up and the guest boots on ocfa"
t_on_exit cleanup
T0=$(now)
out=$("$T_REPO/scripts/build-guest.sh" 2>&1) || t_fail "build-guest.sh failed: $(_t_short "$out")"
"$HOSTS" down >/dev/null 2>&1 || t_fail "libvirt-hosts.sh down (leftovers of an interrupted run) failed"
out=$("$HOSTS" up 2>&1) || t_fail "libvirt-hosts.sh up failed: $(_t_short "$out")"
for h in ocfa ocfb; do
  HOST_URI[$h]=$("$HOSTS" uri "$h")
  mkdir -p "$T_TMP/rsctmp-$h"
  assert_rc 0 "virsh version on $h (${HOST_URI[$h]})" -- hvirsh "$h" version
done
"$T_REPO/scripts/make-domain.sh" "$VM" "$XML" --console "$CONSOLE" || t_fail "make-domain.sh failed"
assert_true "$VM not defined on ocfa before (state: '$(dom_state ocfa)')" -- absent_on ocfa
assert_true "$VM not defined on ocfb before (state: '$(dom_state ocfb)')" -- absent_on ocfb
assert_rc 0 "virsh create on ocfa" -- hvirsh ocfa create "$XML"
assert_true "domain runs on ocfa (state: '$(dom_state ocfa)')" -- running_on ocfa
assert_wait 30 "GUEST-READY on the console" -- console_has "$CONSOLE" 0 '^GUEST-READY'
assert_wait 5 "first heartbeat" -- heartbeat_above 0
assert_eq 1 "$(boots)" "GUEST-BOOT lines on the console"
t_note "hosts up and guest ready in $(t_elapsed) s"
t_end
((T_NFAIL == 0)) || exit 1

# ---- live migrations that must succeed ----

t_begin "migration_transport=tcp: ocfa -> ocfb through qemu+tcp://ocfb/system"
migrate ocfa ocfb OCF_RESKEY_migration_transport=tcp
assert_match 'remote_uri=qemu\+tcp://ocfb/system' "$MIG_OUT" "migrate_to's log"
t_end

t_begin "remoteuri=qemu+tcp://%n/system: ocfb -> ocfa"
migrate ocfb ocfa 'OCF_RESKEY_remoteuri=qemu+tcp://%n/system'
assert_match 'remote_uri=qemu\+tcp://ocfa/system' "$MIG_OUT" "migrate_to's log: %n replaced by the target"
t_end

t_begin "migrate_options=--p2p: ocfa -> ocfb"
n=$(log_lines ocfa)
migrate ocfa ocfb OCF_RESKEY_migration_transport=tcp OCF_RESKEY_migrate_options=--p2p
assert_match 'qemuMigrationSrcPerformPeer2Peer' "$(log_since ocfa "$n")" "ocfa's libvirtd did a peer-to-peer migration"
t_end

t_begin "migrate_options=--p2p --tunnelled: ocfb -> ocfa"
n=$(log_lines ocfb)
migrate ocfb ocfa OCF_RESKEY_migration_transport=tcp 'OCF_RESKEY_migrate_options=--p2p --tunnelled'
qmp=$(log_since ocfb "$n" | grep -F '"execute":"migrate"' || true)
assert_match '"uri":"fd:' "$qmp" "tunnelled data through a file descriptor (ocfb's QMP migrate command)"
t_end

t_begin "migrate_options=--persistent --undefinesource: persistent on ocfb, gone from ocfa"
assert_true "transient on ocfa before" -- persistent_is ocfa no
assert_rc 0 "virsh define on ocfa (make the source domain persistent)" -- hvirsh ocfa define "$XML"
assert_true "persistent on ocfa before" -- persistent_is ocfa yes
assert_true "not defined on ocfb before (state: '$(dom_state ocfb)')" -- absent_on ocfb
migrate ocfa ocfb OCF_RESKEY_migration_transport=tcp 'OCF_RESKEY_migrate_options=--persistent --undefinesource'
assert_true "persistent on ocfb after" -- persistent_is ocfb yes
assert_true "undefined on ocfa after (state: '$(dom_state ocfa)')" -- absent_on ocfa
t_end

t_begin "migrateuri=tcp://%n:49200: ocfb -> ocfa, data on port 49200"
n=$(log_lines ocfa)
migrate ocfb ocfa OCF_RESKEY_migration_transport=tcp 'OCF_RESKEY_migrateuri=tcp://%n:49200'
assert_match '"execute":"migrate-incoming","arguments":\{"uri":"tcp:[^"]*:49200"' "$(log_since ocfa "$n")" \
  "ocfa's qemu listened on 49200"
t_end

t_begin "migrate_options=--migrateuri tcp:%n:49202: ocfa -> ocfb, data on port 49202"
n=$(log_lines ocfb)
migrate ocfa ocfb OCF_RESKEY_migration_transport=tcp 'OCF_RESKEY_migrate_options=--migrateuri tcp:%n:49202'
assert_match '"execute":"migrate-incoming","arguments":\{"uri":"tcp:[^"]*:49202"' "$(log_since ocfb "$n")" \
  "ocfb's qemu listened on 49202"
t_end

t_begin "migration_network_suffix=-mig, migrateport=49201: ocfb -> ocfa via ocfa-mig"
n=$(log_lines ocfb)
m=$(log_lines ocfa)
migrate ocfb ocfa OCF_RESKEY_migration_transport=tcp OCF_RESKEY_migration_network_suffix=-mig OCF_RESKEY_migrateport=49201
data_uri=$(log_since ocfb "$n" | grep -m1 -o 'uri=tcp:[^ ,]*' || true)
assert_match 'uri=tcp:ocfa-mig:49201' "$data_uri" "ocfb's libvirtd migrated to the suffixed data URI"
assert_match '"execute":"migrate-incoming","arguments":\{"uri":"tcp:[^"]*:49201"' "$(log_since ocfa "$m")" \
  "ocfa's qemu listened on 49201"
t_end

t_begin "migration_network_suffix=-mig without migrateport: ocfa -> ocfb -> ocfa via HOST-mig, the port chosen by the target's libvirt"
for hop in "ocfa ocfb" "ocfb ocfa"; do
  read -r src dst <<<"$hop"
  n=$(log_lines "$src")
  m=$(log_lines "$dst")
  migrate "$src" "$dst" OCF_RESKEY_migration_transport=tcp OCF_RESKEY_migration_network_suffix=-mig
  assert_match "migrate_uri=tcp://$dst-mig([] ]|\$)" "$MIG_OUT" "migrate_to's log: the data URI names no port"
  data_uri=$(log_since "$src" "$n" | grep -m1 -o 'uri=tcp:[^ ,]*' || true)
  assert_match "^uri=tcp://$dst-mig:[0-9]+$" "$data_uri" "$src's libvirtd got the port from $dst's libvirt"
  assert_match '"execute":"migrate-incoming","arguments":\{"uri":"tcp:[^"]*:(49(1(5[2-9]|[6-9][0-9])|20[0-9]|21[0-5]))"' \
    "$(log_since "$dst" "$m")" "$dst's qemu listened on a port of its libvirt's migration range (49152-49215)"
done
t_end

# speed_seen: one poll of ocfa during the job; SEEN_ALL is set once a single poll saw the job
# running with speed 5 MiB/s and downtime 100 ms (what was seen last is kept for the reason)
SEEN_JOB="" SEEN_SPEED="" SEEN_DOWN="" SEEN_ALL=0
speed_seen() {
  local j s d
  j=$(hvirsh ocfa domjobinfo "$VM" 2>&1) || j=""
  s=$(hvirsh ocfa migrate-getspeed "$VM" 2>&1) || s=""
  d=$(hvirsh ocfa migrate-getmaxdowntime "$VM" 2>&1) || d=""
  if [[ $j =~ Job\ type:[[:space:]]+Unbounded ]]; then
    SEEN_JOB=Unbounded SEEN_SPEED=$s SEEN_DOWN=$d
    [[ $s == 5 && $d == 100 ]] && SEEN_ALL=1
  fi
  ((SEEN_ALL)) || ! bg_running
}
t_begin "migration_speed=5 and migration_downtime=100 are in force during the job"
assert_true "domain on ocfa (state: '$(dom_state ocfa)')" -- running_on ocfa
speed0=$(hvirsh ocfa migrate-getspeed "$VM")
down0=$(hvirsh ocfa migrate-getmaxdowntime "$VM")
assert_true "speed on ocfa before the migration is not already 5 ('$speed0')" -- test "$speed0" != 5
assert_true "max downtime on ocfa before the migration is not already 100 ('$down0')" -- test "$down0" != 100
hb=$(heartbeat)
n=$(log_lines ocfa)
agent_bg speed ocfa migrate_to OCF_RESKEY_migration_transport=tcp OCF_RESKEY_migration_speed=5 \
  OCF_RESKEY_migration_downtime=100
wait_until 10 speed_seen || true # the assertions below say what was missing
# finish the job quickly now (at 5 MiB/s the ~75 MiB this guest sends would take 15 s); this
# fails only when the job is over already (which the assertions below report)
hvirsh ocfa migrate-setspeed "$VM" 8000 >/dev/null 2>&1 || true
agent_wait speed
t_note "migrate_to with speed 5, downtime 100: rc $A_RC after ${A_MS} ms"
assert_eq Unbounded "$SEEN_JOB" "virsh domjobinfo on ocfa during migrate_to"
assert_eq 1 "$SEEN_ALL" "one poll during the job saw speed 5 MiB/s and max downtime 100 ms (last seen: '$SEEN_SPEED', '$SEEN_DOWN')"
expect_rc 0 "migrate_to with migration_speed=5 migration_downtime=100"
assert_match 'migration downtime set.*downtime_ms=100' "$A_OUT" "migrate_to logged the downtime it set"
qmp=$(log_since ocfa "$n" | grep -oE '"(max-bandwidth|downtime-limit)":[0-9]+' | sort -u | tr '\n' ' ' || true)
t_note "QMP migration parameters on ocfa during the job: $qmp"
assert_match '"max-bandwidth":5242880' "$qmp" "ocfa's qemu got the 5 MiB/s bandwidth (QMP)"
assert_match '"downtime-limit":100' "$qmp" "ocfa's qemu got the 100 ms downtime limit (QMP)"
finish_migration ocfa ocfb "$hb" OCF_RESKEY_migration_transport=tcp
t_end

# The guest is on ocfb now; bring it back to ocfa for the failure cases.
# (tcp with auth_tcp=none ignores the user; the URI shows it reached libvirt)
t_begin "migration_user=root: ocfb -> ocfa through qemu+tcp://root@ocfa/system"
migrate ocfb ocfa OCF_RESKEY_migration_transport=tcp OCF_RESKEY_migration_user=root
assert_match 'remote_uri=qemu\+tcp://root@ocfa/system' "$MIG_OUT" "migrate_to's log"
t_end

# (a passing validate-all keeps stderr for problems, pcs reads it: the URIs are in the log file)
t_begin "validate-all shows the URIs migrate_to would use"
VLOG=$T_TMP/validate.log
: >"$VLOG"
assert_agent 0 "validate-all" ocfa validate-all HA_LOGFILE="$VLOG" OCF_RESKEY_migration_transport=tcp \
  OCF_RESKEY_migration_user=root OCF_RESKEY_migration_network_suffix=-mig OCF_RESKEY_migrateport=49201
assert_match 'remote_uri=qemu\+tcp://root@ocfb-mig/system migrate_uri=tcp:ocfb-mig:49201' "$(<"$VLOG")" \
  "validate-all with CRM_meta_migrate_target=ocfb, in HA_LOGFILE"
: >"$VLOG"
assert_agent 0 "validate-all without a target" ocfa validate-all HA_LOGFILE="$VLOG" \
  OCF_RESKEY_migration_transport=tcp OCF_RESKEY_CRM_meta_migrate_target= 'OCF_RESKEY_migrateuri=tcp://%n-mig:49300'
assert_match 'remote_uri=qemu\+tcp://%n/system migrate_uri=tcp://%n-mig:49300' "$(<"$VLOG")" \
  "validate-all without CRM_meta_migrate_target shows %n, in HA_LOGFILE"
t_end

# ---- failures: the guest must stay where it is ----

t_begin "abort at the deadline: migration_speed=1, CRM_meta_timeout=8000 -> rc 1 before 8 s, guest stays on ocfa"
assert_true "domain on ocfa (state: '$(dom_state ocfa)')" -- running_on ocfa
before=$(ns_pids ocfa)
hb=$(heartbeat)
assert_agent 1 "migrate_to with a migration that cannot finish in time" ocfa migrate_to \
  OCF_RESKEY_migration_transport=tcp OCF_RESKEY_migration_speed=1 OCF_RESKEY_CRM_meta_timeout=8000
t_note "aborted migrate_to: rc $A_RC after ${A_MS} ms: $(reason)"
assert_lt "$A_MS" 8000 "returned before the 8 s timeout (ms)"
assert_match 'aborted.*keeps running here' "$(reason)" "the exit reason says the migration was aborted"
assert_true "domain still runs on ocfa (state: '$(dom_state ocfa)')" -- running_on ocfa
assert_true "domain shut off or gone on ocfb (state: '$(dom_state ocfb)')" -- off_on ocfb
assert_match 'Job type:[[:space:]]+None' "$(job_info ocfa)" "no job left on ocfa"
assert_eq "$before" "$(ns_pids ocfa)" "processes in ocfa's namespaces (the agent left no child)"
assert_agent 0 "monitor on ocfa after the abort" ocfa monitor
assert_guest_alive "$hb" "on ocfa after the abort"
# Later migrations of this domain would run at the 1 MiB/s it keeps from here: raise it
# (also when the case failed: the cases after it need it).
hvirsh ocfa migrate-setspeed "$VM" 8000
assert_eq 8000 "$(hvirsh ocfa migrate-getspeed "$VM")" "migration speed of $VM on ocfa raised again (MiB/s)"
t_end

t_begin "target that does not resolve (CRM_meta_migrate_target=nohost) -> rc 1 quickly, guest stays"
before=$(ns_pids ocfa)
assert_agent 1 "migrate_to to nohost" ocfa migrate_to OCF_RESKEY_migration_transport=tcp \
  OCF_RESKEY_CRM_meta_migrate_target=nohost
t_note "rc $A_RC after ${A_MS} ms: $(reason)"
assert_lt "$A_MS" 3000 "returned within 3 s (ms)"
assert_match 'nohost' "$(reason)" "the exit reason names the target"
assert_true "domain still runs on ocfa (state: '$(dom_state ocfa)')" -- running_on ocfa
assert_match 'Job type:[[:space:]]+None' "$(job_info ocfa)" "no job left on ocfa"
assert_eq "$before" "$(ns_pids ocfa)" "processes in ocfa's namespaces (the agent left no child)"
t_end

# ocfb drops its answers to ocfa (a blackhole route for ocfa's address inside ocfb's namespace):
# connections from ocfa hang as with a dead host or a dropping firewall, until TCP gives up (~2 min)
blackhole() { "$HOSTS" exec ocfb ip route "$1" blackhole 10.213.99.1/32; }
ocfb_from_ocfa() { "$HOSTS" exec ocfa timeout 3 virsh -q -c qemu+tcp://ocfb/system version >/dev/null 2>&1; }
t_begin "target unreachable (packets dropped) -> rc 1 before the 8 s timeout, guest stays, no job (with and without --p2p)"
blackhole add
assert_true "ocfb's libvirtd does not answer ocfa any more (blackhole route)" -- not ocfb_from_ocfa
for opt in "" --p2p; do
  before=$(ns_pids ocfa)
  assert_agent 1 "migrate_to ${opt:-direct} to an unreachable ocfb" ocfa migrate_to \
    OCF_RESKEY_migration_transport=tcp OCF_RESKEY_CRM_meta_timeout=8000 OCF_RESKEY_migrate_options="$opt"
  t_note "${opt:-direct}: rc $A_RC after ${A_MS} ms: $(reason)"
  assert_lt "$A_MS" 8000 "${opt:-direct}: returned before the 8 s timeout (ms)"
  assert_match 'ocfb' "$(reason)" "${opt:-direct}: the exit reason names the target"
  assert_true "${opt:-direct}: domain still runs on ocfa (state: '$(dom_state ocfa)')" -- running_on ocfa
  assert_match 'Job type:[[:space:]]+None' "$(job_info ocfa)" "${opt:-direct}: no job left on ocfa"
  assert_eq "$before" "$(ns_pids ocfa)" "${opt:-direct}: processes in ocfa's namespaces (the agent left no child)"
done
blackhole del # also when the case failed
assert_true "ocfb's libvirtd answers ocfa again (blackhole route removed)" -- ocfb_from_ocfa
t_end

t_begin "target whose libvirtd is stopped -> rc 1 quickly, guest stays (with and without --p2p)"
out=$("$HOSTS" stop-libvirtd ocfb 2>&1) || t_fail "stopping ocfb's libvirtd: $(_t_short "$out")"
assert_true "ocfb's libvirtd does not answer" -- not answers ocfb
for opt in "" --p2p; do
  before=$(ns_pids ocfa)
  assert_agent 1 "migrate_to ${opt:-direct} to ocfb without libvirtd" ocfa migrate_to \
    OCF_RESKEY_migration_transport=tcp OCF_RESKEY_migrate_options="$opt"
  t_note "${opt:-direct}: rc $A_RC after ${A_MS} ms: $(reason)"
  assert_lt "$A_MS" 3000 "${opt:-direct}: returned within 3 s (ms)"
  assert_match 'ocfb' "$(reason)" "${opt:-direct}: the exit reason names the target"
  assert_true "${opt:-direct}: domain still runs on ocfa (state: '$(dom_state ocfa)')" -- running_on ocfa
  assert_match 'Job type:[[:space:]]+None' "$(job_info ocfa)" "${opt:-direct}: no job left on ocfa"
  assert_eq "$before" "$(ns_pids ocfa)" "${opt:-direct}: processes in ocfa's namespaces (the agent left no child)"
done
out=$("$HOSTS" up ocfb 2>&1) || t_fail "restarting ocfb's libvirtd: $(_t_short "$out")" # also when the case failed
assert_true "ocfb's libvirtd answers again" -- answers ocfb
t_end

t_begin "migrate_from on ocfb when nothing arrived -> rc 1 in < 2 s"
assert_true "domain shut off or gone on ocfb before (state: '$(dom_state ocfb)')" -- off_on ocfb
assert_agent 1 "migrate_from without an incoming domain" ocfb migrate_from
t_note "rc $A_RC after ${A_MS} ms: $(reason)"
assert_lt "$A_MS" 2000 "returned within 2 s (ms)"
assert_match 'not running here' "$(reason)" "the exit reason"
assert_true "domain still runs on ocfa (state: '$(dom_state ocfa)')" -- running_on ocfa
t_end

t_begin "after all that the guest still migrates (ocfa -> ocfb) and never rebooted"
migrate ocfa ocfb OCF_RESKEY_migration_transport=tcp
t_note "console: $(boots) boot, heartbeat up to $(heartbeat); total $(since "$T0") s"
t_end

# ---- start_resources: the storage pool a second domain uses is started on the target ----

VM2=ocfrs-mig-pool
XML2=$T_TMP/$VM2.xml
POOL=ocfrs-mig-pool
pool_state() { hvirsh "$1" pool-info "$POOL" 2>/dev/null | sed -n 's/^State:[[:space:]]*//p'; }
vm2() { agent "$@" OCF_RESKEY_config="$XML2" OCF_RESOURCE_INSTANCE=vm2 OCF_RESKEY_migration_transport=tcp; }
assert_vm2() { # RC WHAT HOST ACTION [NAME=VALUE...]
  local rc=$1 what=$2
  shift 2
  assert_agent "$rc" "$what" "$@" OCF_RESKEY_config="$XML2" OCF_RESOURCE_INSTANCE=vm2 OCF_RESKEY_migration_transport=tcp
}
t_begin "start_resources=true: migrate_to starts the domain's storage pool on the target"
mkdir -p "$T_TMP/pool"
truncate -s 1M "$T_TMP/pool/ro.img"
"$T_REPO/scripts/make-domain.sh" "$VM2" "$XML2" --console "$T_TMP/$VM2.console"
# a read-only CD-ROM from the pool: the target must resolve the volume, no storage is copied
sed -i "s|</devices>|  <disk type='volume' device='cdrom'>\n      <driver name='qemu' type='raw'/>\n      <source pool='$POOL' volume='ro.img'/>\n      <target dev='hdc' bus='ide'/>\n      <readonly/>\n    </disk>\n  </devices>|" "$XML2"
assert_match "<source pool='$POOL' volume='ro.img'/>" "$(<"$XML2")" "$VM2's config uses a volume of $POOL"
for h in ocfa ocfb; do
  assert_rc 0 "virsh pool-define-as on $h" -- hvirsh "$h" pool-define-as "$POOL" dir --target "$T_TMP/pool"
  assert_eq inactive "$(pool_state "$h")" "pool state on $h before"
done
assert_vm2 0 "start of $VM2 on ocfa with start_resources=true" ocfa start OCF_RESKEY_start_resources=true
assert_eq running "$(pool_state ocfa)" "pool state on ocfa after start"
assert_eq running "$(dom_state ocfa "$VM2")" "$VM2 on ocfa after start"
assert_eq inactive "$(pool_state ocfb)" "pool state on ocfb before the migration"
assert_vm2 1 "migrate_to without start_resources (pool inactive on ocfb)" ocfa migrate_to
t_note "without start_resources: rc $A_RC after ${A_MS} ms: $(reason)"
assert_match "$POOL" "$(reason)" "the exit reason names the pool"
assert_eq inactive "$(pool_state ocfb)" "pool state on ocfb after migrate_to without start_resources"
assert_eq running "$(dom_state ocfa "$VM2")" "$VM2 on ocfa after the failed migration"
assert_eq absent "$(dom_state ocfb "$VM2")" "$VM2 on ocfb after the failed migration"
assert_vm2 0 "migrate_to with start_resources=true" ocfa migrate_to OCF_RESKEY_start_resources=true
t_note "with start_resources: rc $A_RC after ${A_MS} ms"
assert_eq running "$(pool_state ocfb)" "pool state on ocfb"
assert_eq running "$(dom_state ocfb "$VM2")" "$VM2 on ocfb"
assert_vm2 0 "migrate_from on ocfb" ocfb migrate_from
assert_vm2 0 "stop on ocfa" ocfa stop
assert_eq absent "$(dom_state ocfa "$VM2")" "$VM2 on ocfa"
assert_vm2 0 "monitor on ocfb" ocfb monitor
# clean up (also when the case failed): neither host keeps it running
vm2 ocfb stop OCF_RESKEY_force_stop=true
vm2 ocfa stop OCF_RESKEY_force_stop=true
assert_true "$VM2 shut off or gone on ocfa after the forced stops (state: '$(dom_state ocfa "$VM2")')" -- off_on ocfa "$VM2"
assert_true "$VM2 shut off or gone on ocfb after the forced stops (state: '$(dom_state ocfb "$VM2")')" -- off_on ocfb "$VM2"
t_end

# ---- backingfile: start defines the domain persistently; a migration keeps it so ----

VM3=ocfrs-mig-bf
XML3=$T_TMP/$VM3.xml
vm3() { agent "$@" OCF_RESKEY_config="$XML3" OCF_RESOURCE_INSTANCE=vm3 OCF_RESKEY_migration_transport=tcp \
  OCF_RESKEY_backingfile="$T_TMP/base.img"; }
assert_vm3() { # RC WHAT HOST ACTION [NAME=VALUE...]
  local rc=$1 what=$2
  shift 2
  assert_agent "$rc" "$what" "$@" OCF_RESKEY_config="$XML3" OCF_RESOURCE_INSTANCE=vm3 \
    OCF_RESKEY_migration_transport=tcp OCF_RESKEY_backingfile="$T_TMP/base.img"
}
t_begin "backingfile: the domain start defined persistently on ocfa is persistent on ocfb after the migration, undefined on ocfa"
qemu-img create -q -f raw "$T_TMP/base.img" 8M
"$T_REPO/scripts/make-domain.sh" "$VM3" "$XML3" --console "$T_TMP/$VM3.console"
# the overlay is a local file both hosts see at the same path: libvirt cannot tell it is shared (--unsafe)
sed -i "s|</devices>|  <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      <source file='$T_TMP/$VM3.qcow2'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n  </devices>|" "$XML3"
assert_match "<source file='$T_TMP/$VM3.qcow2'/>" "$(<"$XML3")" "$VM3's config uses the overlay"
assert_vm3 0 "start with backingfile on ocfa" ocfa start
assert_eq running "$(dom_state ocfa "$VM3")" "$VM3 on ocfa after start"
assert_true "persistent on ocfa after start" -- persistent_is ocfa yes "$VM3"
overlay=$(qemu-img info -U "$T_TMP/$VM3.qcow2" 2>&1 || true)
assert_match "backing file: $T_TMP/base.img" "$overlay" "start made the qcow2 overlay over the backing file"
assert_vm3 0 "migrate_to with backingfile" ocfa migrate_to OCF_RESKEY_migrate_options=--unsafe
t_note "rc $A_RC after ${A_MS} ms"
assert_eq running "$(dom_state ocfb "$VM3")" "$VM3 on ocfb"
assert_true "persistent on ocfb" -- persistent_is ocfb yes "$VM3"
assert_eq absent "$(dom_state ocfa "$VM3")" "$VM3 on ocfa (no definition left)"
assert_vm3 0 "migrate_from on ocfb" ocfb migrate_from
assert_vm3 0 "stop on ocfa" ocfa stop
assert_vm3 0 "monitor on ocfb" ocfb monitor
# clean up (also when the case failed)
vm3 ocfb stop OCF_RESKEY_force_stop=true
vm3 ocfa stop OCF_RESKEY_force_stop=true
assert_true "$VM3 shut off or gone on ocfa after the forced stops (state: '$(dom_state ocfa "$VM3")')" -- off_on ocfa "$VM3"
assert_true "$VM3 shut off or gone on ocfb after the forced stops (state: '$(dom_state ocfb "$VM3")')" -- off_on ocfb "$VM3"
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
  echo '::once:/bin/ocfguest-dirty' >>"$r/etc/inittab" || return 1
  cat >"$r/bin/ocfguest-dirty" <<'SH' || return 1
#!/bin/sh
dd if=/dev/urandom of=/tmp/dirty.src bs=1M count=8 2>/dev/null
echo "GUEST-DIRTYING" >/dev/console
while :; do cp /tmp/dirty.src /tmp/dirty.dst; done
SH
  chmod 0755 "$r/bin/ocfguest-dirty" || return 1
  (cd "$r" && find bin etc | cpio -o --quiet -H newc -R 0:0 | gzip) >"$d/extra.cpio.gz" || return 1
  cat "$g/initrd.img" "$d/extra.cpio.gz" >"$d/initrd.img" && ln -sf "$(readlink -f "$g/vmlinuz")" "$d/vmlinuz"
}
vm4() { agent "$@" OCF_RESKEY_config="$XML4" OCF_RESOURCE_INSTANCE=vm4 OCF_RESKEY_migration_transport=tcp; }
assert_vm4() { # RC WHAT HOST ACTION [NAME=VALUE...]
  local rc=$1 what=$2
  shift 2
  assert_agent "$rc" "$what" "$@" OCF_RESKEY_config="$XML4" OCF_RESOURCE_INSTANCE=vm4 OCF_RESKEY_migration_transport=tcp
}
# job_seen: one poll of the dirtying guest's job on ocfa; true once migrate_to has returned.
# libvirt's iteration counter: past 1, the first copy of all memory is done and what is left
# is memory the guest dirtied again since
ITERATION=0 DIRTY_RATE="" REMAINING=""
job_seen() {
  local j n
  j=$(hvirsh ocfa domjobinfo "$VM4" 2>/dev/null) || j=""
  n=$(sed -n 's/^Iteration:[[:space:]]*\([0-9]*\).*/\1/p' <<<"$j")
  if [[ -n $n ]] && ((n > ITERATION)); then
    ITERATION=$n
    DIRTY_RATE=$(sed -n 's/^Dirty rate:[[:space:]]*\([0-9]*\).*/\1/p' <<<"$j")
    REMAINING=$(sed -n 's/^Data remaining:[[:space:]]*//p' <<<"$j")
  fi
  ! bg_running
}
t_begin "abort at the deadline: a guest re-dirtying 8 MiB faster than migration_speed=6 sends it -> rc 1 before the 24 s timeout, guest stays"
dirty_guest "$T_TMP/dirty" || t_fail "cannot make the dirtying guest's initramfs"
"$T_REPO/scripts/make-domain.sh" "$VM4" "$XML4" --guest-dir "$T_TMP/dirty" --console "$CONSOLE4"
assert_vm4 0 "start of $VM4 on ocfa" ocfa start
assert_eq running "$(dom_state ocfa "$VM4")" "$VM4 on ocfa after start"
assert_wait 30 "GUEST-DIRTYING on its console" -- console_has "$CONSOLE4" 0 '^GUEST-DIRTYING'
before=$(ns_pids ocfa)
hb4=$(console_heartbeat "$CONSOLE4" 0)
if ((T_OPEN)); then # a 24 s migration attempt only for a guest that is dirtying its memory
  agent_bg dirty ocfa migrate_to OCF_RESKEY_config="$XML4" OCF_RESOURCE_INSTANCE=vm4 OCF_RESKEY_migration_transport=tcp \
    OCF_RESKEY_migration_speed=6 OCF_RESKEY_migration_downtime=50 OCF_RESKEY_CRM_meta_timeout=24000
  wait_until 30 job_seen || true # the background job ends within its 24 s: agent_wait below
fi
agent_wait dirty
t_note "rc $A_RC after ${A_MS} ms; libvirt's last iteration seen $ITERATION, dirty rate ${DIRTY_RATE:-?} pages/s, data remaining ${REMAINING:-?}: $(reason)"
expect_rc 1 "migrate_to of a guest that dirties memory faster than the cap"
assert_lt "$A_MS" 24000 "returned before the 24 s timeout (ms)"
assert_true "libvirt iterated over re-dirtied memory (iteration $ITERATION > 1)" -- test "$ITERATION" -gt 1
assert_match '^[0-9.]+ (MiB|GiB)$' "$REMAINING" "data remaining after the first pass (a converging guest shrinks toward 0)"
assert_match 'migration in progress.*remaining_mib=' "$A_OUT" "migrate_to logged its progress"
assert_match 'aborted.*keeps running here' "$(reason)" "the exit reason says the migration was aborted"
assert_eq running "$(dom_state ocfa "$VM4")" "$VM4 on ocfa"
assert_true "$VM4 shut off or gone on ocfb (state: '$(dom_state ocfb "$VM4")')" -- off_on ocfb "$VM4"
assert_match 'Job type:[[:space:]]+None' "$(job_info ocfa "$VM4")" "no job left on ocfa"
assert_eq "$before" "$(ns_pids ocfa)" "processes in ocfa's namespaces (the agent left no child)"
assert_wait 8 "its heartbeat continues on ocfa after $(console_heartbeat "$CONSOLE4" 0)" -- \
  console_heartbeat_above "$CONSOLE4" 0 "$(console_heartbeat "$CONSOLE4" 0)"
assert_true "its counter went on during the attempt (was $hb4)" -- console_heartbeat_above "$CONSOLE4" 0 "$hb4"
assert_eq 1 "$(console_count "$CONSOLE4" 0 '^GUEST-BOOT')" "GUEST-BOOT lines of $VM4"
assert_eq "" "$(console_heartbeat_breaks "$CONSOLE4" 0)" "$VM4's heartbeat counter goes up by one each line"
# clean up (also when the case failed)
vm4 ocfa stop OCF_RESKEY_force_stop=true
vm4 ocfb stop OCF_RESKEY_force_stop=true
assert_true "$VM4 shut off or gone on ocfa after the forced stops (state: '$(dom_state ocfa "$VM4")')" -- off_on ocfa "$VM4"
assert_true "$VM4 shut off or gone on ocfb after the forced stops (state: '$(dom_state ocfb "$VM4")')" -- off_on ocfb "$VM4"
t_end
