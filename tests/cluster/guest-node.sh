#!/usr/bin/env bash
# Pacemaker's "Guest Node Walk-through", step by step, with ocf:rust:VirtualDomain and
# ocf:rust:Dummy under the running one-node cluster (started by tests/run.sh, which also
# starts libvirtd): a TCG guest built by scripts/build-remote-guest.sh (pacemaker-remoted,
# our Dummy, the cluster's authkey, hostname guest1) becomes guest node guest1, FAKE1..5 run
# on it, a kill -9 of pacemaker-remoted in the guest makes the cluster recover the guest, the
# failed action is cleaned up, the cluster tools work inside the guest, and the troubleshooting
# connection check tells a listening remoted from a dead one.
#
# Network: qemu user networking, restricted to the forwarded ports, on a loopback address
# only: 127.0.0.5:3121 -> remoted, 127.0.0.5:2323 -> a TEST-ONLY root shell in the guest
# (the walk-through's "[root@guest1 ~]#" commands). Readiness: vm-guest1's monitor_scripts
# run scripts/guest-ready.sh (a TLS handshake with remoted), so start returns only once
# Pacemaker can connect. Recovery times are printed, not asserted.
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
URI=qemu:///system
# shellcheck source=tests/lib-guest.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib-guest.sh"

VM_RSC=vm-guest1                     # the VirtualDomain resource (and the libvirt domain)
GUEST=guest1                         # the guest node's name (remote-node)
ADDR=127.0.0.5                       # loopback address qemu forwards on
PORT=3121                            # pacemaker-remoted
CMD_PORT=2323                        # the test-only shell in the guest
VM_DIR=/var/lib/ocf-rs-test
VM_XML=$VM_DIR/$VM_RSC.xml
READY=$VM_DIR/guest-ready@$ADDR:$PORT # monitor_scripts: a copy of scripts/guest-ready.sh
CONSOLE=/var/log/ocf-rs-guests/$VM_RSC.console
GUEST_DIR=$T_REPO/build/remote-guest
FAKES=(FAKE1 FAKE2 FAKE3 FAKE4 FAKE5)
ATTR=can-host-$VM_RSC
GUEST_ATTR=ocfrs-walkthrough         # the node attribute step 6 writes from inside the guest
BOOT_TIMEOUT=${VD_BOOT_TIMEOUT:-90}

# ---- helpers ----

# connection_started_first_time MARK: since MARK Pacemaker started its connection to the guest
# node, and every such start succeeded. When vm-guest1's start returns before pacemaker-remoted
# listens, the connection's TLS handshake fails and that start is an error ("Key was rejected
# by service"): this is what the readiness wait (monitor_scripts) prevents.
connection_started_first_time() {
  local all ok
  all=$(pcmk_log_count "$1" "Result of start operation for $GUEST on $T_NODE: ")
  ok=$(pcmk_log_count "$1" "Result of start operation for $GUEST on $T_NODE: ok")
  ((all >= 1 && all == ok))
}

mon() { crm_mon -1 2>/dev/null; }
mon_lines() { grep -E -- "$1" <<<"$(mon)" | tr '\n' ' '; } # REGEX: the matching crm_mon lines, one line
guest_online() { grep -Eq "GuestOnline: \[ (.* )?$GUEST(@[^ ]+)? " <<<"$(mon)"; }
guest_failed_action_shown() { failed_action_shown "$GUEST.*Lost connection to remote executor"; }
started_on() { rsc_is_started "$1" "$2"; } # RSC NODE
all_fakes_started() { # every FAKE Started on some node
  local r s
  for r in "${FAKES[@]}"; do
    s=$(rsc_state "$r") || return 1
    [[ $s == "Started $T_NODE" || $s == "Started $GUEST" ]] || return 1
  done
}
fakes_on_guest() { # the FAKE resources Started on the guest, one line
  local r out=()
  for r in "${FAKES[@]}"; do [[ $(rsc_state "$r") == "Started $GUEST" ]] && out+=("$r"); done
  echo "${out[*]}"
}
everything_back() { guest_online && all_fakes_started && started_on FAKE2 "$GUEST"; }
nothing_left() { # no resource of this file in the CIB or the status
  local r
  for r in "${FAKES[@]}" "$VM_RSC"; do rsc_is_gone "$r" || return 1; done
}

# guest_sh CMD: runs CMD in the guest's root shell (the walk-through's [root@guest1 ~]#);
# prints its output (also kept in $G_OUT) and returns its exit code (also in $G_RC; 99: the
# channel did not answer). Under assert_rc (a subshell) the output is in $T_OUT.
G_OUT="" G_RC=0
guest_sh() {
  local out
  out=$(printf '%s\necho "GUEST-RC=$?"\nexit\n' "$1" | timeout 15 ncat "$ADDR" "$CMD_PORT" 2>&1)
  G_RC=$(sed -n 's/^GUEST-RC=\([0-9]*\)$/\1/p' <<<"$out" | tail -n 1)
  G_OUT=$(sed '/^GUEST-RC=/d' <<<"$out")
  [[ -n $G_RC ]] || { G_RC=99; G_OUT="no answer from the guest's command channel: $out"; }
  printf '%s\n' "$G_OUT"
  return "$G_RC"
}
remoted_pid() { guest_sh 'pidof pacemaker-remoted' >/dev/null && [[ $G_OUT =~ ^[0-9]+$ ]] && echo "$G_OUT"; }
ready() { "$READY" >/dev/null 2>&1; }

delete_rsc() { # RSC: bounded delete (stop first)
  rsc_is_gone "$1" && return 0
  timeout 60 pcs resource delete "$1" --force >/dev/null 2>&1
  wait_gone "$1" 90
}

gn_cleanup() {
  local r
  for r in "${FAKES[@]}"; do delete_rsc "$r"; done
  if ! rsc_is_gone "$VM_RSC"; then
    timeout 30 pcs resource disable "$VM_RSC" >/dev/null 2>&1
    wait_stopped "$VM_RSC" 100
    delete_rsc "$VM_RSC"
  fi
  crm_attribute -N "$T_NODE" -n "$ATTR" -D >/dev/null 2>&1
  crm_attribute -N "$GUEST" -n "$GUEST_ATTR" -D >/dev/null 2>&1
  crm_resource --cleanup >/dev/null 2>&1
  virsh_ destroy "$VM_RSC" >/dev/null 2>&1
  virsh_ undefine "$VM_RSC" >/dev/null 2>&1
  rm -f -- "$VM_XML" "$READY" "${HA_RSCTMP:-/run/resource-agents}/VirtualDomain-$VM_RSC.state"
  rmdir -- "$VM_DIR" 2>/dev/null
  ((T_NFAIL == 0)) && rm -f -- "$CONSOLE"
  return 0
}
t_on_exit gn_cleanup

# ---- set-up ----

t_begin "set-up: cluster running, guest-node image built, domain XML written, nothing left over"
gn_cleanup
assert_true "the one-node cluster is not running" -- cluster_running
assert_true "resources of an earlier run left over (FAKE1..5, $VM_RSC)" -- nothing_left
assert_eq absent "$(domain_state "$VM_RSC")" "domain $VM_RSC before the test"
assert_eq "" "$(crm_attribute -N "$T_NODE" -n "$ATTR" -G -q 2>/dev/null || true)" "node attribute $ATTR of $T_NODE left over"
assert_true "cannot create $VM_DIR" -- mkdir -p "$VM_DIR"
assert_true "cannot remove $CONSOLE" -- rm -f -- "$CONSOLE"
assert_rc 0 "scripts/build-remote-guest.sh" -- "$T_REPO/scripts/build-remote-guest.sh" "$GUEST_DIR"
assert_rc 0 "scripts/make-remote-domain.sh" -- "$T_REPO/scripts/make-remote-domain.sh" "$VM_RSC" "$VM_XML" \
  --addr "$ADDR" --port "$PORT" --cmd-port "$CMD_PORT" --guest-dir "$GUEST_DIR" --console "$CONSOLE"
assert_match "hostfwd=tcp:$ADDR:$PORT-:$PORT" "$(cat "$VM_XML")" "the port forward in $VM_XML"
assert_true "cp guest-ready.sh" -- install -m 0755 "$T_REPO/scripts/guest-ready.sh" "$READY"
assert_true "nothing may answer on $ADDR:$PORT before the guest runs" -- not ready
t_end

# ---- 1. the VM resource, its node attribute and location rule, from a CIB file ----

t_begin "step 1: node attribute, $VM_RSC and its location rule pushed together from a CIB file: Started, remoted ready"
F=$T_TMP/vm_cfg
RULE="//rsc_location[@rsc='$VM_RSC'][@resource-discovery='never']/rule[@score='-INFINITY']"
RULE+="/expression[@attribute='$ATTR'][@operation='ne'][@value='1']"
cmark=$(console_size "$CONSOLE")
t0=$(now)
assert_rc 0 "pcs cluster cib" -- pcs cluster cib "$F"
assert_rc 0 "pcs -f node attribute" -- pcs -f "$F" node attribute "$T_NODE" "$ATTR=1"
assert_rc 0 "pcs -f resource create $VM_RSC" -- pcs -f "$F" resource create "$VM_RSC" ocf:rust:VirtualDomain \
  hypervisor="$URI" config="$VM_XML" monitor_scripts="$READY"
assert_rc 0 "pcs -f constraint location rule" -- pcs -f "$F" constraint location "$VM_RSC" rule \
  resource-discovery=never score=-INFINITY "$ATTR" ne 1
assert_rc 105 "$VM_RSC in the live CIB before the push (cibadmin: 105 = no such object)" -- \
  cibadmin -Q --xpath "//primitive[@id='$VM_RSC']"
assert_rc 0 "pcs cluster cib-push --config --wait" -- timeout 150 pcs cluster cib-push --config "$F" --wait=120
t_note "cib-push --wait returned $(since "$t0") s after the push began"
assert_match "$VM_RSC[[:space:]]+\(ocf:rust:VirtualDomain\):[[:space:]]+Started $T_NODE" \
  "$(pcs resource status 2>&1)" "pcs resource status"
assert_true "$VM_RSC not Started on $T_NODE (crm_mon and crm_resource --locate)" -- started_on "$VM_RSC" "$T_NODE"
assert_eq 1 "$(crm_attribute -N "$T_NODE" -n "$ATTR" -G -q 2>/dev/null)" "node attribute $ATTR of $T_NODE"
assert_rc 0 "the location rule in the live CIB ($RULE)" -- cibadmin -Q --xpath "$RULE"
assert_eq running "$(domain_state "$VM_RSC")" "virsh domstate $VM_RSC"
assert_true "no GUEST-REMOTED-LISTENING on the console when Started" -- \
  console_has "$CONSOLE" "$cmark" GUEST-REMOTED-LISTENING
assert_true "guest-ready.sh fails once Started" -- ready
t_end

# ---- 2. the guest becomes a guest node ----

t_begin "step 2: meta remote-node=$GUEST remote-addr=$ADDR remote-port=$PORT: $GUEST GuestOnline"
lmark=$(pcmk_log_mark)
t0=$(now)
assert_rc 0 "pcs resource update $VM_RSC meta ... --force" -- pcs resource update "$VM_RSC" meta \
  remote-node="$GUEST" remote-addr="$ADDR" remote-port="$PORT" --force
assert_wait 60 "$GUEST not GuestOnline in crm_mon" -- guest_online || t_note "crm_mon: $(mon_lines 'nline|ffline')"
t_note "GuestOnline $(since "$t0") s after the update"
assert_wait 15 "the connection to $GUEST did not start at the first attempt" -- connection_started_first_time "$lmark"
assert_true "$VM_RSC no longer Started on $T_NODE" -- started_on "$VM_RSC" "$T_NODE"
assert_eq 1 "$(console_count "$CONSOLE" 0 GUEST-BOOT)" "GUEST-BOOT lines (the meta update must not restart the VM)"
t_end

# ---- 3. resources on the guest node ----

t_begin "step 3: FAKE1..5 (ocf:rust:Dummy) created: all Started, some on $GUEST"
t0=$(now)
for r in "${FAKES[@]}"; do
  assert_rc 0 "pcs resource create $r" -- pcs resource create "$r" ocf:rust:Dummy || break
done
assert_wait 60 "not all FAKE Started" -- all_fakes_started || t_note "crm_mon: $(mon_lines FAKE)"
t_note "all Started $(since "$t0") s after the first create; on $GUEST: $(fakes_on_guest)"
assert_true "no FAKE resource runs on $GUEST" -- test -n "$(fakes_on_guest)"
t_end

t_begin "step 3: pcs constraint location FAKE2 prefers $GUEST: FAKE2 Started on $GUEST, its state file in the guest"
assert_rc 0 "pcs constraint location FAKE2 prefers $GUEST" -- pcs constraint location FAKE2 prefers "$GUEST"
assert_wait 30 "FAKE2 not Started on $GUEST" -- started_on FAKE2 "$GUEST" || t_note "FAKE2: '$(rsc_state FAKE2)'"
assert_true "cluster not idle with FAKE2 on $GUEST" -- cluster_idle 30
assert_rc 0 "FAKE2's state file in the guest" -- guest_sh 'test -f /var/run/Dummy-FAKE2.state'
assert_true "FAKE2's state file on the host: it runs here?" -- not test -e /var/run/Dummy-FAKE2.state
on_guest=$(fakes_on_guest)
assert_match '(^| )FAKE2( |$)' "$on_guest" "the FAKE resources Started on $GUEST"
assert_rc 0 "the Dummy state files in the guest are those of '$on_guest' only" -- guest_sh \
  "cd /var/run && test \"\$(ls Dummy-FAKE*.state | sed 's/^Dummy-//; s/\\.state\$//' | tr '\\n' ' ' | sed 's/ \$//')\" = '$on_guest'"
t_end

# ---- 4. kill -9 of pacemaker-remoted in the guest: the cluster recovers the guest ----

t_begin "step 4: kill -9 of pacemaker-remoted in the guest: monitor failure, guest recovered (stop + start), all back"
lmark=$(pcmk_log_mark)
cmark=$(console_size "$CONSOLE")
assert_true "not everything Started before the kill" -- everything_back
pid=$(remoted_pid || true)
assert_match '^[0-9]+$' "$pid" "pidof pacemaker-remoted in the guest"
t0=$(now)
assert_rc 0 "kill -9 $pid (pacemaker-remoted) in the guest" -- guest_sh "kill -9 $pid"
assert_wait 30 "'Lost connection to remote executor' not in the pacemaker log" -- \
  pcmk_log_has "$lmark" 'Lost connection to remote executor'
assert_wait 30 "no failed action for $GUEST in crm_mon (Failed Resource Actions)" -- guest_failed_action_shown
assert_wait 30 "the cluster did not decide to recover the guest" -- \
  pcmk_log_has "$lmark" "Guest node $GUEST will be fenced"
assert_wait "$BOOT_TIMEOUT" "the guest did not boot again" -- console_has "$CONSOLE" "$cmark" GUEST-BOOT
assert_wait "$BOOT_TIMEOUT" "not everything back (guest online, FAKE Started, FAKE2 on $GUEST)" -- everything_back ||
  t_note "crm_mon: $(mon_lines 'Guest|FAKE|vm-')"
assert_wait 15 "the connection to $GUEST failed to start after the recovery (vm-guest1 started before remoted was ready?)" -- \
  connection_started_first_time "$lmark"
t_note "recovery time (kill -9 of remoted -> $GUEST GuestOnline, all FAKE Started): $(since "$t0") s"
assert_true "VirtualDomain stop of $VM_RSC not in the log" -- \
  pcmk_log_has "$lmark" "Result of stop operation for $VM_RSC on $T_NODE: ok"
assert_true "VirtualDomain start of $VM_RSC not in the log" -- \
  pcmk_log_has "$lmark" "Result of start operation for $VM_RSC on $T_NODE: ok"
assert_eq 1 "$(console_count "$CONSOLE" "$cmark" GUEST-BOOT)" "boots since the kill (one recovery)"
new_pid=$(remoted_pid || true)
assert_match '^[0-9]+$' "$new_pid" "pacemaker-remoted runs again in the guest"
assert_true "the failure is still recorded after the recovery" -- guest_failed_action_shown
t_end

# ---- 5. clearing the failed action, as documented ----

t_begin "step 5: disable $VM_RSC --wait; cleanup $GUEST; enable $VM_RSC: failed action gone, all back"
lmark=$(pcmk_log_mark)
t0=$(now)
assert_true "no failed action for $GUEST before the cleanup: nothing to clear" -- guest_failed_action_shown
assert_rc 0 "pcs resource disable $VM_RSC --wait" -- timeout 150 pcs resource disable "$VM_RSC" --wait=120
assert_true "$VM_RSC not Stopped after disable --wait" -- rsc_is_stopped "$VM_RSC"
assert_true "domain still '$(domain_state "$VM_RSC")' after disable" -- domain_off "$VM_RSC"
assert_rc 0 "pcs resource cleanup $GUEST" -- timeout 60 pcs resource cleanup "$GUEST"
assert_wait 30 "Failed Resource Actions still shown after cleanup (or crm_mon does not answer)" -- no_failed_action
assert_rc 0 "pcs resource enable $VM_RSC" -- pcs resource enable "$VM_RSC"
assert_wait "$BOOT_TIMEOUT" "not everything back after enable" -- everything_back ||
  t_note "crm_mon: $(mon_lines 'Guest|FAKE|vm-')"
assert_wait 15 "the connection to $GUEST failed to start after enable (vm-guest1 started before remoted was ready?)" -- \
  connection_started_first_time "$lmark"
t_note "everything back $(since "$t0") s after disable"
assert_true "a failed action came back (or crm_mon does not answer)" -- no_failed_action
t_end

# ---- 6. the cluster tools inside the guest ----

t_begin "step 6: crm_mon -1 and crm_attribute inside the guest, through pacemaker_remote"
value=from-guest-$$
assert_rc 0 "crm_mon -1 in the guest" -- guest_sh 'crm_mon -1'
assert_match "$VM_RSC[[:space:]]+\(ocf:rust:VirtualDomain\):[[:space:]]+Started $T_NODE" "$T_OUT" "crm_mon -1 in the guest"
assert_match "FAKE2[[:space:]]+\(ocf:rust:Dummy\):[[:space:]]+Started $GUEST" "$T_OUT" "crm_mon -1 in the guest"
assert_rc 0 "crm_attribute --update in the guest" -- guest_sh "crm_attribute -N $GUEST -n $GUEST_ATTR -v $value"
assert_eq "$value" "$(crm_attribute -N "$GUEST" -n "$GUEST_ATTR" -G -q 2>/dev/null)" \
  "the attribute written in the guest, read on $T_NODE"
assert_rc 0 "crm_attribute --query in the guest" -- guest_sh "crm_attribute -N $GUEST -n $GUEST_ATTR -G -q"
assert_eq "$value" "$T_OUT" "the attribute read in the guest"
assert_rc 0 "crm_attribute --delete on $T_NODE" -- crm_attribute -N "$GUEST" -n "$GUEST_ATTR" -D
t_end

# ---- the shell agent set's Dummy in the guest (make bench runs its FAKEs as ocf:heartbeat:Dummy) ----

t_begin "ocf:heartbeat:Dummy in the guest (busybox sh): meta-data, then start, monitor, stop, monitor by hand"
HB="env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=hb-check /usr/lib/ocf/resource.d/heartbeat/Dummy"
assert_rc 0 "ocf:heartbeat:Dummy meta-data in the guest" -- guest_sh "$HB meta-data"
assert_match '<resource-agent name="Dummy"' "$T_OUT" "the shell Dummy's meta-data in the guest"
assert_match '</resource-agent>' "$T_OUT" "the shell Dummy's meta-data in the guest (whole)"
assert_rc 0 "ocf:heartbeat:Dummy start in the guest" -- guest_sh "$HB start"
assert_rc 0 "ocf:heartbeat:Dummy monitor in the guest, started" -- guest_sh "$HB monitor"
assert_rc 0 "ocf:heartbeat:Dummy stop in the guest" -- guest_sh "$HB stop"
assert_rc 7 "ocf:heartbeat:Dummy monitor in the guest, stopped" -- guest_sh "$HB monitor"
t_end

# ---- 7. the troubleshooting connection check ----

# With a bridge, `nc guest1 3121` is refused once remoted is gone. Behind qemu's port forward
# the host side accepts every connection while the VM runs, so a connect alone proves nothing:
# the check that tells the two apart is the TLS handshake (scripts/guest-ready.sh). This runs
# on a guest outside the cluster's control, so that nothing recovers it meanwhile.
t_begin "step 7: connection check to $ADDR:$PORT: passes while remoted runs, fails (handshake) once it is killed"
for r in "${FAKES[@]}"; do
  assert_true "pcs resource delete $r did not finish" -- delete_rsc "$r" || break
done
assert_rc 0 "pcs resource disable $VM_RSC" -- timeout 30 pcs resource disable "$VM_RSC"
assert_stopped "$VM_RSC" 100
assert_true "pcs resource delete $VM_RSC did not finish" -- delete_rsc "$VM_RSC"
assert_true "$VM_RSC's domain still '$(domain_state "$VM_RSC")' once deleted" -- domain_off "$VM_RSC"
cmark=$(console_size "$CONSOLE")
assert_rc 0 "virsh create $VM_XML (outside the cluster)" -- virsh_ create "$VM_XML"
assert_wait "$BOOT_TIMEOUT" "no GUEST-REMOTED-LISTENING" -- console_has "$CONSOLE" "$cmark" GUEST-REMOTED-LISTENING
assert_rc 0 "nc $ADDR $PORT --sh-exec /bin/true (remoted running)" -- timeout 10 ncat "$ADDR" "$PORT" --sh-exec /bin/true
assert_wait 10 "handshake check fails with remoted running" -- ready
pid=$(remoted_pid || true)
assert_match '^[0-9]+$' "$pid" "pidof pacemaker-remoted in the guest"
assert_rc 0 "kill -9 $pid (pacemaker-remoted) in the guest" -- guest_sh "kill -9 $pid"
assert_rc 1 "handshake check with remoted killed" -- "$READY"
assert_match "closed the connection|no TLS answer" "$T_OUT" "the check's reason"
rc_nc=0
timeout 10 ncat "$ADDR" "$PORT" --sh-exec /bin/true >/dev/null 2>&1 || rc_nc=$?
t_note "behind the port forward, nc --sh-exec /bin/true after the kill: rc $rc_nc (a bridge would refuse)"
assert_rc 0 "virsh destroy" -- virsh_ destroy "$VM_RSC"
assert_rc 1 "handshake check with the guest gone" -- "$READY"
assert_rc 1 "nc $ADDR $PORT with the guest gone" -- timeout 10 ncat "$ADDR" "$PORT" --sh-exec /bin/true
t_end
