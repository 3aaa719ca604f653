#!/usr/bin/env bash
# The INSTALLED manual pages (`make install`) of every agent: found by man, rendered by
# groff without a warning, naming every parameter of the agent's meta-data; and each
# agent's --version, which is its meta-data's version.
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

AGENT_DIR=${OCF_ROOT:-/usr/lib/ocf}/resource.d/rust

for agent in Dummy VirtualDomain; do
  t_begin "man -w finds ocf_rust_$agent(7) installed"
  assert_rc 0 "man -w ocf_rust_$agent" -- man -w ocf_rust_$agent
  assert_match "/man7/ocf_rust_$agent\.7" "$T_OUT" "the page's path"
  t_end

  t_begin "ocf_rust_$agent(7) renders without a groff warning and names every parameter"
  page=$(man -w ocf_rust_$agent 2>/dev/null || true)
  assert_rc 0 "groff -ww" -- groff -ww -mandoc -Tutf8 -z "$page"
  assert_eq "" "$T_OUT" "groff -ww output (warnings)"
  text=$(MANWIDTH=200 man -l "$page" 2>&1)
  nl=$'\n'
  assert_match "${nl}NAME${nl}" "$text" "the rendered page"
  md=$("$AGENT_DIR/$agent" meta-data)
  for p in $(grep -o '<parameter name="[^"]*"' <<<"$md" | sed 's/.*name="//; s/"$//'); do
    assert_match "${nl} +$p${nl}" "$text" "parameter $p in the page"
  done
  for section in "EXIT STATUS" "EXAMPLE PCS USAGE" "EXAMPLE CRM SHELL" "DIFFERENCES FROM THE SHELL AGENT"; do
    assert_match "${nl}$section${nl}" "$text" "section $section"
  done
  t_end

  t_begin "$agent --version and version print the meta-data's version"
  md=$("$AGENT_DIR/$agent" meta-data)
  version=$(grep -o '<resource-agent name="[^"]*" version="[^"]*"' <<<"$md" | sed 's/.*version="//; s/"$//')
  assert_match '^[0-9]+\.[0-9]+\.[0-9]+' "$version" "the meta-data's version"
  for arg in --version version; do
    assert_rc 0 "$agent $arg" -- "$AGENT_DIR/$agent" "$arg"
    assert_eq "$agent (ocf-rs) $version" "$T_OUT" "$agent $arg"
  done
  t_end
done
