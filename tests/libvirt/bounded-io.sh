#!/usr/bin/env bash
# VirtualDomain never hangs on a file it is pointed at, and leaves no process behind:
# the config replaced by a FIFO (stop, monitor, probe, start answer within
# CRM_meta_timeout), a huge sparse state file, monitor_scripts that leave background
# processes (also out of the process group, also when the executor kills the agent's
# group, or the agent alone), and a script that prints 10 MB (short exit reason, small
# log, in time).
# Every agent run is wrapped in `timeout -s KILL`, so an agent that blocks fails its case
# instead of hanging the file.
# shellcheck source=tests/libvirt/lib-vm.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-vm.sh"

D=$(vm_name 1)
vm_make "$D"
CFG=$T_TMP/$D.xml
cp -- "$CFG" "$T_TMP/$D.xml.orig"
STATE=$RSCTMP/VirtualDomain-$D.state
LOG=$T_TMP/ha.log
SCRIPTS=$T_TMP/scripts
mkdir -p "$SCRIPTS"
# Every agent run is killed after 40 s (all timeouts given below are shorter).
RA_WRAP=(timeout -s KILL 40)

# ---- process helpers ----

# proc_alive PID: PID is a process that has not exited (a zombie counts as gone).
proc_alive() {
  local s
  [[ $1 =~ ^[0-9]+$ ]] || return 1
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  [[ ${s:0:1} != Z ]]
}
# proc_field PID N: field N of /proc/PID/stat counted after the command name (1: state,
# 2: ppid, 3: process group).
proc_field() {
  local s f
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  read -r -a f <<<"$s"
  printf '%s\n' "${f[$(($2 - 1))]}"
}
# pid_from FILE: the pid written to FILE (empty when not written yet).
pid_from() { tr -dc '0-9' 2>/dev/null <"$1" || true; }
has_pid() { [[ -n $(pid_from "$1") ]]; } # FILE
# none_alive FILE...: no pid written to the FILEs is proc_alive (a missing pid is a failure).
none_alive() {
  local f p
  for f in "$@"; do
    p=$(pid_from "$f")
    [[ -n $p ]] || return 1
    proc_alive "$p" && return 1
  done
  return 0
}
# alive_list FILE...: "name=pid" of those still proc_alive, for messages.
alive_list() {
  local f p out=""
  for f in "$@"; do
    p=$(pid_from "$f")
    if [[ -n $p ]] && proc_alive "$p"; then out+="${f##*/}=$p($(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)) "; fi
  done
  printf '%s\n' "${out:-none}"
}
# Whatever a failed case left behind (pids from our own files only).
_kill_leftovers() {
  local f p
  for f in "$SCRIPTS"/*.pid; do
    [[ -e $f ]] || continue
    p=$(pid_from "$f")
    [[ -n $p ]] || continue
    proc_alive "$p" || continue
    kill -KILL "$p" 2>/dev/null || true
  done
  return 0
}
VM_EXTRA_CLEANUP+=(_kill_leftovers)

# is_agent PID: PID is a VirtualDomain agent (not init, not this shell): only then may it
# be killed.
is_agent() {
  [[ $1 =~ ^[0-9]+$ ]] || return 1
  (($1 > 1 && $1 != $$)) || return 1
  [[ $(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") == *VirtualDomain* ]]
}
# leads_agent_group PID: is_agent PID, and PID leads its own process group (only then may
# its group be killed).
leads_agent_group() { is_agent "$1" && [[ $(proc_field "$1" 3) == "$1" ]]; }


# ---- monitor scripts ----
# quiet.sh: leaves a background sleeper that does not hold the output pipes; exits 0.
cat >"$SCRIPTS/quiet.sh" <<EOF
#!/bin/sh
sleep 300 </dev/null >/dev/null 2>&1 &
echo \$! >"$SCRIPTS/quiet-bg.pid"
exit 0
EOF
# holder.sh: leaves a background sleeper that keeps stdout and stderr open; exits 0.
cat >"$SCRIPTS/holder.sh" <<EOF
#!/bin/sh
sleep 300 &
echo \$! >"$SCRIPTS/holder-bg.pid"
echo checked
exit 0
EOF
# hang.sh: starts a background sleeper in its group and one in a new session, then hangs.
# (The scripts end in exec: every process they leave has its pid in a file, for the
# checks and the cleanup.)
cat >"$SCRIPTS/hang.sh" <<EOF
#!/bin/sh
echo \$\$ >"$SCRIPTS/hang.pid"
sleep 300 &
echo \$! >"$SCRIPTS/hang-bg.pid"
setsid sleep 300 &
echo \$! >"$SCRIPTS/hang-sid.pid"
echo started
exec sleep 300
EOF
# grouphang.sh: a background sleeper in its group, then hangs (for the executor's kill).
cat >"$SCRIPTS/grouphang.sh" <<EOF
#!/bin/sh
echo \$\$ >"$SCRIPTS/grouphang.pid"
sleep 300 &
echo \$! >"$SCRIPTS/grouphang-bg.pid"
exec sleep 300
EOF
# lonehang.sh: hangs (for a kill of the agent alone).
cat >"$SCRIPTS/lonehang.sh" <<EOF
#!/bin/sh
echo \$\$ >"$SCRIPTS/lonehang.pid"
exec sleep 300
EOF
# big.sh: 10 MiB on stdout, then a last line; fails.
cat >"$SCRIPTS/big.sh" <<'EOF'
#!/bin/sh
head -c 10485760 /dev/zero | tr '\0' x
echo
echo LAST-LINE
exit 1
EOF
chmod 755 "$SCRIPTS"/*.sh

# ---- the cases ----

t_begin "start the guest with a regular config"
assert_ra 0 "start" "$D" start
assert_eq running "$(domain_state "$D")" "virsh domstate after start"
t_end

t_begin "config replaced by a FIFO: recurring monitor 0 within CRM_meta_timeout=10000, from the cached identity"
rm -f -- "$CFG"
mkfifo -m 600 -- "$CFG"
rm -f -- "$LOG"
assert_ra 0 "recurring monitor" "$D" monitor CRM_meta_interval=10000 CRM_meta_timeout=10000 "HA_LOGFILE=$LOG"
t_note "monitor with a FIFO config took ${RA_SECS}s"
assert_lt "$RA_SECS" 10 "monitor time (CRM_meta_timeout 10 s)"
assert_match "is a FIFO, not a regular file" "$(cat "$LOG" 2>/dev/null)" "the log says why the config is unusable"
t_end

t_begin "config is a FIFO: probe 0 within CRM_meta_timeout=10000"
assert_ra 0 "probe" "$D" monitor CRM_meta_timeout=10000
assert_lt "$RA_SECS" 10 "probe time (CRM_meta_timeout 10 s)"
assert_true "the FIFO was replaced" -- test -p "$CFG"
t_end

t_begin "config is a FIFO and nothing cached: probe 7, start 5 naming the FIFO, both within CRM_meta_timeout=10000"
assert_ra 7 "probe" "$D-nocache" monitor "config=$CFG" CRM_meta_timeout=10000
assert_lt "$RA_SECS" 10 "probe time"
assert_ra 5 "start" "$D-nocache" start "config=$CFG" CRM_meta_timeout=10000
assert_lt "$RA_SECS" 10 "start time"
assert_eq "Configuration file $CFG is a FIFO, not a regular file" "$RA_REASON" "exit reason of the start"
t_end

t_begin "config is a FIFO: stop 0 within CRM_meta_timeout=10000, the guest is gone"
assert_ra 0 "stop" "$D" stop CRM_meta_timeout=10000
t_note "stop with a FIFO config took ${RA_SECS}s"
assert_lt "$RA_SECS" 10 "stop time (CRM_meta_timeout 10 s)"
assert_eq absent "$(domain_state "$D")" "virsh domstate after the stop"
t_end
rm -f -- "$CFG"
cp -- "$T_TMP/$D.xml.orig" "$CFG"

t_begin "a 1 GiB sparse state file: monitor 0 in time without reading it, and the state file is rewritten small"
assert_ra 0 "start" "$D" start
assert_true "no state file $STATE after the start" -- test -s "$STATE"
truncate -s 1G -- "$STATE"
assert_eq 1073741824 "$(console_size "$STATE")" "size of the planted state file"
RA_WRAP=(timeout -s KILL 40 /usr/bin/time -f 'peak-rss-kb=%M' -o "$T_TMP/time.out")
assert_ra 0 "recurring monitor" "$D" monitor CRM_meta_interval=10000 CRM_meta_timeout=10000
RA_WRAP=(timeout -s KILL 40)
assert_lt "$RA_SECS" 10 "monitor time (CRM_meta_timeout 10 s)"
rss=$(sed -n 's/^peak-rss-kb=//p' "$T_TMP/time.out")
t_note "monitor with a 1 GiB state file: ${RA_SECS}s, peak RSS ${rss} KiB"
assert_match '^[0-9]+$' "$rss" "peak RSS measured"
assert_lt "$rss" 102400 "peak RSS in KiB (the state file must not be read)"
assert_lt "$(console_size "$STATE")" 16385 "size of the state file after the monitor"
assert_eq "name=$D" "$(grep '^name=' "$STATE")" "the rewritten state file names the domain"
t_end

t_begin "monitor_scripts: a script leaving a quiet background process: 0 at once, the process ended with the agent"
rm -f -- "$SCRIPTS/quiet-bg.pid"
assert_ra 0 "recurring monitor" "$D" monitor CRM_meta_interval=10000 CRM_meta_timeout=10000 "monitor_scripts=$SCRIPTS/quiet.sh"
assert_lt "$RA_SECS" 3 "monitor time"
assert_true "quiet.sh never started its background process" -- has_pid "$SCRIPTS/quiet-bg.pid"
assert_wait 2 "left running after the agent: $(alive_list "$SCRIPTS/quiet-bg.pid")" -- none_alive "$SCRIPTS/quiet-bg.pid"
t_end

t_begin "monitor_scripts: a script whose background process keeps its output open: 0 at once, nothing left"
rm -f -- "$SCRIPTS/holder-bg.pid"
assert_ra 0 "recurring monitor" "$D" monitor CRM_meta_interval=10000 CRM_meta_timeout=10000 "monitor_scripts=$SCRIPTS/holder.sh"
assert_lt "$RA_SECS" 3 "monitor time (the agent must not wait for the pipe's end)"
assert_true "holder.sh never started its background process" -- has_pid "$SCRIPTS/holder-bg.pid"
assert_wait 2 "left running after the agent: $(alive_list "$SCRIPTS/holder-bg.pid")" -- none_alive "$SCRIPTS/holder-bg.pid"
t_end

t_begin "monitor_scripts: a hanging script and its descendants (one in a new session) are killed at the agent's timeout"
rm -f -- "$SCRIPTS"/hang*.pid
# CRM_meta_timeout=5000: the scripts get until 3 s (the margin and the process fallback's
# reserve come off), enough for the connection on a loaded machine.
assert_ra 1 "recurring monitor" "$D" monitor CRM_meta_interval=10000 CRM_meta_timeout=5000 "monitor_scripts=$SCRIPTS/hang.sh"
t_note "monitor with a hanging script took ${RA_SECS}s (timeout 5 s)"
assert_lt "$RA_SECS" 5 "monitor time"
assert_eq "monitor_scripts: $SCRIPTS/hang.sh did not finish within the operation timeout" "$RA_REASON" "exit reason"
hang_pids=("$SCRIPTS/hang.pid" "$SCRIPTS/hang-bg.pid" "$SCRIPTS/hang-sid.pid")
assert_true "hang.sh did not start all its processes" -- has_pid "$SCRIPTS/hang-sid.pid"
assert_wait 2 "left running after the agent: $(alive_list "${hang_pids[@]}")" -- none_alive "${hang_pids[@]}"
t_end

t_begin "monitor_scripts: the executor's SIGKILL of the agent's process group ends the script and its background process"
rm -f -- "$SCRIPTS"/grouphang*.pid
# The agent leads its own process group, as under pacemaker-execd; CRM_meta_timeout is
# long, so it is still waiting for the script when the group is killed.
(
  RA_WRAP=(timeout -s KILL 40 setsid) # timeout leads a group of its own: setsid after it
  ra "$D" monitor CRM_meta_interval=10000 CRM_meta_timeout=30000 "monitor_scripts=$SCRIPTS/grouphang.sh"
) 2>/dev/null & # (its shell reports the kill of the agent)
bg=$!
assert_wait 10 "grouphang.sh did not start its background process" -- has_pid "$SCRIPTS/grouphang-bg.pid"
script_pid=$(pid_from "$SCRIPTS/grouphang.pid")
agent_pid=$(proc_field "$script_pid" 2)
assert_match '^[0-9]+$' "$agent_pid" "the agent's pid (the script's parent)"
assert_true "the script's parent $agent_pid is not a VirtualDomain leading its process group" -- leads_agent_group "$agent_pid"
if leads_agent_group "$agent_pid"; then
  kill -KILL -- "-$agent_pid"
fi
wait "$bg" || true
assert_wait 2 "the agent $agent_pid survived the kill of its group" -- not proc_alive "$agent_pid"
gh_pids=("$SCRIPTS/grouphang.pid" "$SCRIPTS/grouphang-bg.pid")
assert_wait 2 "left running after the agent's group was killed: $(alive_list "${gh_pids[@]}")" -- none_alive "${gh_pids[@]}"
t_end

t_begin "monitor_scripts: SIGKILL of the agent alone ends its script too (parent-death signal)"
rm -f -- "$SCRIPTS"/lonehang*.pid
(
  ra "$D" monitor CRM_meta_interval=10000 CRM_meta_timeout=30000 "monitor_scripts=$SCRIPTS/lonehang.sh"
) 2>/dev/null & # (its shell reports the kill of the agent)
bg=$!
assert_wait 10 "lonehang.sh did not start" -- has_pid "$SCRIPTS/lonehang.pid"
script_pid=$(pid_from "$SCRIPTS/lonehang.pid")
agent_pid=$(proc_field "$script_pid" 2)
assert_true "the script's parent $agent_pid is not a VirtualDomain" -- is_agent "$agent_pid"
if is_agent "$agent_pid"; then
  kill -KILL "$agent_pid"
fi
wait "$bg" || true
assert_wait 2 "the agent $agent_pid survived SIGKILL" -- not proc_alive "$agent_pid"
assert_wait 2 "the script outlived the agent: $(alive_list "$SCRIPTS/lonehang.pid")" -- none_alive "$SCRIPTS/lonehang.pid"
t_end

t_begin "monitor_scripts: a script printing 10 MiB fails the monitor in time with a short exit reason and a small log"
rm -f -- "$LOG"
assert_ra 1 "recurring monitor" "$D" monitor CRM_meta_interval=10000 CRM_meta_timeout=10000 "monitor_scripts=$SCRIPTS/big.sh" "HA_LOGFILE=$LOG"
t_note "monitor with 10 MiB of script output took ${RA_SECS}s; reason ${#RA_REASON} characters, stderr ${#RA_ERR}, log $(console_size "$LOG") bytes"
assert_lt "$RA_SECS" 10 "monitor time (CRM_meta_timeout 10 s)"
assert_match "^monitor_scripts: $SCRIPTS/big\\.sh exited 1: xxxx" "$RA_REASON" "exit reason"
assert_lt "${#RA_REASON}" 300 "length of the exit reason"
assert_lt "${#RA_ERR}" 20000 "bytes on stderr"
assert_lt "$(console_size "$LOG")" 20000 "bytes in the log"
assert_match "LAST-LINE" "$(cat "$LOG")" "the log keeps the end of the output"
t_end

t_begin "stop: 0, the guest is gone"
assert_ra 0 "stop" "$D" stop
assert_eq absent "$(domain_state "$D")" "virsh domstate after the stop"
t_end
