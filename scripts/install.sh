#!/usr/bin/env bash
# make install / make uninstall: the built agents as $OCF_ROOT/resource.d/$PROVIDER/<Agent>
# and their manual pages, installed safely next to the distribution's packages.
#
#   scripts/install.sh install | uninstall
#   environment: DESTDIR PREFIX OCF_ROOT PROVIDER AGENTS LIBDIR PLUGIN FORCE (as the Makefile
#   passes them)
#
# install refuses to overwrite a file that a Debian package owns (resource-agents' own
# heartbeat/VirtualDomain, say, or our .deb's files): the next upgrade of that package
# would silently put its file back, and dpkg --verify flags it. FORCE=1 overrides. For a
# real install (no DESTDIR) the files installed are recorded, with their checksums, in
# $PREFIX/share/ocf-rs/installed-$PROVIDER.list; uninstall removes only the files that
# list names and that are still what was installed, then the list. Without a list it
# removes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr}
OCF_ROOT=${OCF_ROOT:-$PREFIX/lib/ocf}
PROVIDER=${PROVIDER:-rust}
AGENTS=${AGENTS:-Dummy VirtualDomain}
LIBDIR=${LIBDIR:-$PREFIX/lib/ocf-rs}
PLUGIN=${PLUGIN:-libocf_agents.so}
FORCE=${FORCE:-0}

agent_dir=$DESTDIR$OCF_ROOT/resource.d/$PROVIDER
man_dir=$DESTDIR$PREFIX/share/man/man7
list=$PREFIX/share/ocf-rs/installed-$PROVIDER.list

say() { echo "install.sh: $*" >&2; }

# What is installed: SOURCE DESTINATION MODE, one per line.
files() {
  local a
  for a in $AGENTS; do
    echo "target/release/$a $agent_dir/$a 0755"
    echo "man/ocf_rust_$a.7 $man_dir/ocf_rust_$a.7 0644"
  done
  # VirtualDomain's plugin: the agent linked against libvirt, which the VirtualDomain
  # binary loads when an action needs libvirt. Never in the provider directory (pcs and
  # crm list it).
  case " $AGENTS " in
    *" VirtualDomain "*) echo "target/release/$PLUGIN $DESTDIR$LIBDIR/$PLUGIN 0644" ;;
  esac
}

# owner PATH: the package that owns PATH (or diverts it), empty when none; never fails.
owner() {
  command -v dpkg-query >/dev/null 2>&1 || return 0
  local out
  out=$(dpkg-query -S "$1" 2>/dev/null) || return 0
  sed -n 's/^diversion by \([^ ]*\) .*/\1/p; s/^\([^:]*\): .*/\1/p' <<<"$out" | head -n1
}

install_files() {
  local src dst mode pkg refused=0
  if [[ -z $DESTDIR ]] && ((FORCE != 1)); then
    while read -r src dst mode; do
      pkg=$(owner "$dst")
      if [[ -n $pkg ]]; then
        say "refusing to overwrite $dst: it belongs to the package $pkg (its next upgrade would put it back; use the ocf-rs-heartbeat package for a drop-in, or FORCE=1)"
        refused=1
      fi
    done < <(files)
    ((refused == 0)) || exit 1
  fi
  local record=()
  while read -r src dst mode; do
    [[ -f $src ]] || { say "$src is missing (run make build / make metadata)"; exit 1; }
    install -D -m "$mode" "$src" "$dst"
    record+=("$(sha256sum "$dst" | cut -d' ' -f1) $dst")
  done < <(files)
  if [[ -z $DESTDIR ]]; then
    install -d -m 0755 "$(dirname "$list")"
    # Earlier installs of this provider stay listed until uninstall (this one's first,
    # so that its checksums win).
    { printf '%s\n' "${record[@]}"; if [[ -f $list ]]; then cat "$list"; fi; } |
      awk '!seen[$2]++' >"$list.new"
    mv -f "$list.new" "$list"
  fi
}

# also_installed PATH: another provider's list names PATH too (the manual pages are the
# same file for every provider).
also_installed() {
  local other
  for other in "$(dirname "$list")"/installed-*.list; do
    [[ -f $other && $other != "$list" ]] || continue
    if awk -v p="$1" '$2 == p { found = 1 } END { exit !found }' "$other"; then return 0; fi
  done
  return 1
}

uninstall_files() {
  local sum path now
  if [[ -n $DESTDIR ]]; then
    files | while read -r _ path _; do rm -f "$path"; done
    return 0
  fi
  if [[ ! -f $list ]]; then
    say "nothing to uninstall: $list does not exist (nothing was installed by make install for provider $PROVIDER)"
    return 0
  fi
  while read -r sum path; do
    [[ -n $path ]] || continue
    if [[ ! -e $path ]]; then
      continue
    fi
    if also_installed "$path"; then
      say "leaving $path: make install also installed it for another provider"
      continue
    fi
    now=$(sha256sum "$path" | cut -d' ' -f1)
    if [[ $now != "$sum" ]]; then
      say "leaving $path: it changed since make install put it there (a package's file now?)"
      continue
    fi
    rm -f "$path"
  done <"$list"
  rm -f "$list"
  rmdir --ignore-fail-on-non-empty "$(dirname "$list")" "$LIBDIR" 2>/dev/null || true
}

case "${1:-}" in
  install) install_files ;;
  uninstall) uninstall_files ;;
  *) say "usage: $0 install|uninstall"; exit 3 ;;
esac
