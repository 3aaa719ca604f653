#!/usr/bin/env bash
# Readiness check of a guest node: exits 0 only when pacemaker-remoted in the guest really
# listens and answers TLS. Meant for VirtualDomain's monitor_scripts (commands without
# arguments), so that start returns only once Pacemaker can connect.
#
#   scripts/guest-ready.sh [ADDR [PORT]]
#
# Address: the arguments, else GUEST_READY_ADDR / GUEST_READY_PORT, else a name of the form
# guest-ready@ADDR:PORT (a symlink to this script, for monitor_scripts), else 127.0.0.5:3121.
# GUEST_READY_TIMEOUT (seconds, default 1) bounds the wait for the answer.
#
# Why not just connect: behind qemu's user-network port forward the host side ALWAYS accepts.
# When nothing listens in the guest, qemu closes the connection right away; before the guest's
# NIC is up it keeps it open (retrying towards the guest), exactly like a listening remoted
# waiting for a ClientHello. So this sends a TLS 1.2 ClientHello offering the (DHE-)PSK
# suites pacemaker-remoted accepts and requires a TLS record back (a ServerHello, or an alert).
# Pacemaker connecting before that point fails its handshake ("Key was rejected by service"),
# which it treats as a hard failure.
# Exit codes: 0 ready; 1 not ready (reason on stdout).
set -u

addr=${GUEST_READY_ADDR:-127.0.0.5}
port=${GUEST_READY_PORT:-3121}
me=${0##*/}
if [[ $me == *@*:* ]]; then
  spec=${me#*@}
  addr=${spec%:*}
  port=${spec##*:}
fi
(($# >= 1)) && addr=$1
(($# >= 2)) && port=$2
limit=${GUEST_READY_TIMEOUT:-1}

[[ $addr =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ && $port =~ ^[0-9]+$ ]] || {
  echo "guest-ready: bad address '$addr:$port'"
  exit 1
}

# Bound the whole check (a connect to an address that drops packets would hang): run again
# under timeout, with room for the connect and the answer.
if [[ -z ${GUEST_READY_BOUNDED:-} ]]; then
  GUEST_READY_BOUNDED=1 timeout -k 1 "$(awk -v l="$limit" 'BEGIN { print 2 * l + 1 }')" "$0" "$addr" "$port"
  rc=$?
  ((rc == 124 || rc == 137)) && echo "guest-ready: no answer from $addr:$port in time"
  ((rc == 0 || rc == 1 || rc == 124 || rc == 137)) || echo "guest-ready: the check of $addr:$port ended with status $rc"
  ((rc == 0)) || exit 1
  exit 0
fi

# A peer that closes at once must make the write fail (EPIPE), not kill us silently (SIGPIPE).
trap '' PIPE
exec 3<>"/dev/tcp/$addr/$port" 2>/dev/null || {
  echo "guest-ready: no TCP connection to $addr:$port (guest not running?)"
  exit 1
}

# ClientHello: record(handshake, TLS 1.0 framing, 55 bytes) { client_hello(51 bytes) {
# version 1.2, 32 random bytes, no session, 6 suites: DHE-PSK-AES128-GCM-SHA256,
# DHE-PSK-AES256-GCM-SHA384, DHE-PSK-AES128-CBC-SHA256, DHE-PSK-AES128-CBC-SHA,
# PSK-AES128-CBC-SHA, EMPTY_RENEGOTIATION_INFO_SCSV; null compression; no extensions } }
random=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n' | sed 's/../\\x&/g')
hello='\x16\x03\x01\x00\x37'
hello+='\x01\x00\x00\x33\x03\x03'"$random"'\x00'
hello+='\x00\x0c\x00\xaa\x00\xab\x00\xb2\x00\x90\x00\x8c\x00\xff\x01\x00'
# shellcheck disable=SC2059 # the format is the byte string
printf "$hello" >&3 2>/dev/null || {
  exec 3<&-
  echo "guest-ready: $addr:$port closed the connection at once (nothing listens in the guest)"
  exit 1
}

LC_ALL=C IFS= read -r -d '' -N 2 -t "$limit" -u 3 reply
rc=$?
exec 3<&- 3>&-
if ((rc > 128)); then
  echo "guest-ready: $addr:$port accepted but sent no TLS answer within ${limit}s (guest network or pacemaker-remoted not up yet)"
  exit 1
fi
if [[ ${#reply} -lt 2 ]]; then
  echo "guest-ready: $addr:$port closed the connection without a TLS answer (pacemaker-remoted not listening in the guest)"
  exit 1
fi
b0=$(printf '%d' "'${reply:0:1}")
b1=$(printf '%d' "'${reply:1:1}")
if ((b0 == 0x16 || b0 == 0x15)) && ((b1 == 3)); then
  exit 0
fi
echo "guest-ready: $addr:$port answered, but not with TLS (first bytes $b0 $b1)"
exit 1
