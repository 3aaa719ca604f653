#!/usr/bin/env bash
# Conformance of the INSTALLED ocf:rust:Dummy (`make install`) with what
# ocf-tester, crm_resource and pcs check. Needs no running cluster:
# crm_resource --show-metadata/--validate and pcs resource describe run locally.
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
# shellcheck source=tests/lib-guest.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib-guest.sh" # xmllint_dtd

AGENT=${OCF_ROOT:-/usr/lib/ocf}/resource.d/rust/Dummy
RNG_10=/usr/share/pcs/data/ocf-1.0.rng
RNG_11=/usr/share/pcs/data/ocf-1.1.rng
VALIDATE=(crm_resource --validate --class ocf --provider rust --agent Dummy)

# Nothing here may depend on (or disturb) a running cluster.
unset CIB_file CIB_shadow

t_begin "the agent is installed and executable"
assert_true "$AGENT is not an executable file (run make install)" -- test -x "$AGENT"
t_end

t_begin "ocf-tester passes all tests"
assert_rc 0 "ocf-tester" -- timeout 120 ocf-tester -n t1 -o "state=$T_TMP/t1.state" "$AGENT"
assert_match 'passed all tests' "$T_OUT" "ocf-tester verdict"
t_end

t_begin "meta-data runs as user nobody"
assert_rc 0 "meta-data as nobody" -- su nobody -s /bin/sh -c "$AGENT meta-data"
assert_match '^<\?xml' "$T_OUT" "meta-data as nobody prints XML"
assert_match '<resource-agent name="Dummy"' "$T_OUT" "meta-data as nobody is the Dummy's"
t_end

t_begin "meta-data runs with an empty environment and is deterministic"
rc1=0
md_empty_1=$(env -i "$AGENT" meta-data 2>/dev/null) || rc1=$?
assert_eq 0 "$rc1" "rc of env -i meta-data"
md_empty_2=$(env -i "$AGENT" meta-data 2>/dev/null)
md_normal=$("$AGENT" meta-data 2>/dev/null)
assert_match '<resource-agent name="Dummy"' "$md_empty_1" "env -i meta-data content"
assert_eq "$md_empty_1" "$md_empty_2" "two env -i runs differ"
assert_eq "$md_empty_1" "$md_normal" "env -i and normal environment renderings differ"
t_end

t_begin "OCF 1.0 meta-data is valid against ra-api-1.dtd (as ocf-tester checks it)"
md10=$(env -i "$AGENT" meta-data 2>/dev/null)
assert_match '<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">' "$md10" "1.0 DOCTYPE"
assert_rc 0 "xmllint --valid (in /usr/share/resource-agents)" -- xmllint_dtd "$md10"
assert_no_match 'reloadable=|<action name="reload-agent"|unique-group=' "$md10" "1.0 rendering must not carry OCF 1.1 markup"
t_end

t_begin "OCF 1.0 meta-data is valid against pcs' ocf-1.0.rng"
md10=$(env -i "$AGENT" meta-data 2>/dev/null)
assert_match '<resource-agent name="Dummy"' "$md10" "the document validated"
assert_rc 0 "xmllint --relaxng $RNG_10" -- xmllint --noout --relaxng "$RNG_10" - <<<"$md10"
t_end

t_begin "OCF 1.1 meta-data (OCF_RA_VERSION_MINOR=1) is valid against pcs' ocf-1.1.rng"
md11=$(env -i OCF_RA_VERSION_MAJOR=1 OCF_RA_VERSION_MINOR=1 "$AGENT" meta-data 2>/dev/null)
assert_match '<version>1\.1</version>' "$md11" "1.1 version element"
assert_rc 0 "xmllint --relaxng $RNG_11" -- xmllint --noout --relaxng "$RNG_11" - <<<"$md11"
assert_match '<action name="reload-agent"' "$md11" "1.1 advertises reload-agent"
assert_match '<parameter name="fake"[^>]*reloadable="1"' "$md11" "fake is reloadable"
t_end

t_begin "crm_resource --show-metadata ocf:rust:Dummy gives OCF 1.1"
assert_rc 0 "crm_resource --show-metadata" -- crm_resource --show-metadata ocf:rust:Dummy
assert_match '<version>1\.1</version>' "$T_OUT" "version seen by crm_resource"
assert_match 'reload-agent' "$T_OUT" "reload-agent seen by crm_resource"
t_end

t_begin "pcs resource describe ocf:rust:Dummy lists the parameters"
assert_rc 0 "pcs resource describe" -- pcs resource describe ocf:rust:Dummy
assert_match '(^|[[:space:]])state( |:)' "$T_OUT" "state listed"
assert_match '(^|[[:space:]])fake:' "$T_OUT" "fake listed"
assert_match '(^|[[:space:]])op_sleep:' "$T_OUT" "op_sleep listed"
assert_match 'reload-agent:' "$T_OUT" "reload-agent operation listed"
assert_no_match '[Ww]arning|[Ee]rror' "$T_OUT" "pcs complains"
t_end

t_begin "crm_resource --validate accepts a valid configuration"
assert_rc 0 "validate state=$T_TMP/x" -- "${VALIDATE[@]}" --option "state=$T_TMP/x"
assert_match 'returned 0' "$T_OUT" "validate result"
t_end

t_begin "a successful validate prints nothing on stderr (pcs would show it as a warning)"
assert_rc 0 "validate --output-as xml" -- "${VALIDATE[@]}" --option "state=$T_TMP/x" --output-as xml
assert_match '<agent-status code="0"' "$T_OUT" "the agent ran and answered 0"
assert_no_match 'source="stderr"' "$T_OUT" "stderr output"
t_end

t_begin "crm_resource --validate rejects op_sleep=abc (OCF_ERR_CONFIGURED) with a reason"
assert_rc 6 "validate op_sleep=abc" -- "${VALIDATE[@]}" --option op_sleep=abc --output-as xml
assert_match '<agent-status code="6"' "$T_OUT" "agent exit code in XML"
assert_match 'reason="[^"]*op_sleep[^"]*"' "$T_OUT" "exit reason names op_sleep"
t_end

t_begin "crm_resource --validate=10 rejects a state file in a missing directory (OCF_ERR_ARGS)"
# crm_resource maps the agent's OCF_ERR_ARGS (2) to CRM_EX_INVALID_PARAM, also 2.
assert_rc 2 "validate=10 state=/nonexistent-dir/x" -- \
  crm_resource --validate=10 --class ocf --provider rust --agent Dummy \
  --option state=/nonexistent-dir/x --output-as xml
assert_match '<agent-status code="2"' "$T_OUT" "agent exit code in XML"
assert_match 'reason="[^"]*state[^"]*"' "$T_OUT" "exit reason names state"
t_end

t_begin "crm_resource --validate (depth 0) does not check the state directory"
assert_true "/nonexistent-dir exists: this case would prove nothing" -- not test -e /nonexistent-dir
assert_rc 0 "validate state=/nonexistent-dir/x" -- "${VALIDATE[@]}" --option state=/nonexistent-dir/x --output-as xml
assert_match '<agent-status code="0"' "$T_OUT" "the agent ran and answered 0"
t_end

# The swap from a shell Dummy: one started by the shell agent is found, and stopped, by
# ours under the same provider name (its default state file is the provider's).
# swap_case PROVIDER STATE-DIR-VAR: the shell agent of PROVIDER starts d-swap, ours finds it
swap_case() {
  local provider=$1 var=$2 dir
  dir=$T_TMP/swap-$provider
  mkdir -p "$dir"
  local env=(env "OCF_ROOT=${OCF_ROOT:-/usr/lib/ocf}" OCF_RESOURCE_INSTANCE=d-swap
    "OCF_RESOURCE_PROVIDER=$provider" "$var=$dir")
  assert_rc 0 "$provider's shell Dummy start" -- "${env[@]}" "/usr/lib/ocf/resource.d/$provider/Dummy" start
  assert_true "the shell agent wrote $dir/Dummy-d-swap.state" -- test -f "$dir/Dummy-d-swap.state"
  assert_rc 0 "our probe, as $provider" -- "${env[@]}" "$AGENT" monitor
  assert_rc 0 "our stop, as $provider" -- "${env[@]}" "$AGENT" stop
  assert_true "our stop removed the shell agent's state file" -- not test -e "$dir/Dummy-d-swap.state"
  assert_rc 7 "our probe after the stop" -- "${env[@]}" "$AGENT" monitor
}

t_begin "installed as heartbeat, a Dummy the shell agent started (HA_RSCTMP) is found and stopped"
swap_case heartbeat HA_RSCTMP
t_end

t_begin "installed as pacemaker, a Dummy the shell agent started (HA_VARRUN) is found and stopped"
swap_case pacemaker HA_VARRUN
t_end
