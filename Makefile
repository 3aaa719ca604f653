# ocf-rs: build, install and test the Rust OCF resource agents.
#   make                 build the agents (release)
#   make install         install them as $(OCF_ROOT)/resource.d/$(PROVIDER)/<Agent>, and
#                        VirtualDomain's plugin as $(LIBDIR)/libocf_agents.so
#   make test            the whole test suite (unit, conformance, real cluster)
#   make demo            one-node cluster with the agents' resources, shown by crm_mon -1

PREFIX   ?= /usr
OCF_ROOT ?= $(PREFIX)/lib/ocf
PROVIDER ?= rust
# VirtualDomain's plugin (the agent linked against libvirt, loaded by the VirtualDomain
# binary when an action needs libvirt): never in the provider directory, which pcs and crm
# list. The binary looks for it here (compiled in), or next to itself (a build tree).
LIBDIR   ?= $(PREFIX)/lib/ocf-rs
PLUGIN   := libocf_agents.so
DESTDIR  ?=
CARGO    ?= cargo
AGENTS   := Dummy VirtualDomain

FORCE    ?= 0
# Only a non-default LIBDIR is passed to the build (an unchanged environment keeps
# cargo's build of `cargo build --release` valid).
LIBDIR_ENV := $(if $(filter-out /usr/lib/ocf-rs,$(LIBDIR)),OCF_RS_LIBDIR=$(LIBDIR))

.PHONY: all build deb install uninstall test test-unit test-conformance test-libvirt test-cluster test-migration test-scale test-package test-mutants lint fmt metadata demo bench clean

all: build

build:
	$(LIBDIR_ENV) $(CARGO) build --release --locked --lib $(addprefix --bin ,$(AGENTS))

# Never over a file a Debian package owns (FORCE=1 to insist); uninstall removes only what
# install put there (scripts/install.sh).
INSTALL_ENV := DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" OCF_ROOT="$(OCF_ROOT)" \
	PROVIDER="$(PROVIDER)" AGENTS="$(AGENTS)" FORCE="$(FORCE)" LIBDIR="$(LIBDIR)" \
	PLUGIN="$(PLUGIN)"

install: build
	$(INSTALL_ENV) scripts/install.sh install

uninstall:
	$(INSTALL_ENV) scripts/install.sh uninstall

# Regenerate the committed meta-data (both OCF renderings), the manual pages and the
# README tables.
metadata:
	$(CARGO) run --quiet --locked --bin ocf-rs-gen -- .

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt --all

# Unit and library tests, plus the agents run as processes (no daemons needed), and the
# self-test of the shell test harness (it must fail closed).
test-unit:
	$(CARGO) test --workspace --locked
	tests/selftest.sh

# ocf-tester, crm_resource and pcs against the installed agents.
test-conformance: install
	tests/run.sh conformance

# VirtualDomain against a real libvirtd with a tiny guest (TCG unless KVM works).
test-libvirt: install
	tests/run.sh libvirt

# The agents under a real one-node corosync + pacemaker cluster.
test-cluster: install
	tests/run.sh cluster

# Live migration between two libvirt hosts in network namespaces (scripts/libvirt-hosts.sh):
# the agent's migrate_to/migrate_from directly, and a two-node cluster moving a guest.
test-migration: install
	tests/run.sh migration

# A three-node cluster (each node its own namespaces, corosync, pacemaker and libvirtd): the
# walk-through on several nodes, a guest node that live-migrates, a node drained of a dozen VMs
# and a node lost, with ocf:rust and then ocf:heartbeat VirtualDomain (tests/scale/cluster.sh).
test-scale: install
	tests/run.sh scale

# Mutation check of the libvirt layer: it must fail against a VirtualDomain whose stop,
# monitor or start does nothing (tests/mutants.sh; about 4 layer runs, not part of `make test`).
test-mutants: install
	tests/mutants.sh

# Everything, in the order CI runs it.
test: lint test-unit install
	tests/run.sh conformance libvirt cluster migration scale package

# The Debian packages installed, used and removed on this machine (make deb; last, as it
# uninstalls and reinstalls the agents).
test-package: install
	tests/run.sh package

demo: install
	scripts/demo.sh

# ocf:rust against the shell agents on the same libvirtd and guests, and under a one-node
# cluster that bench.py starts and stops itself (bench/RESULTS.md).
bench: install
	scripts/build-guest.sh
	scripts/libvirt.sh start
	python3 bench/bench.py

clean:
	$(CARGO) clean

# The Debian 12 packages (dpkg-buildpackage over debian/, with this toolchain): dist/
# gets ocf-rs_<version>_<arch>.deb and ocf-rs-heartbeat_<version>_all.deb.
deb:
	dpkg-buildpackage -b -us -uc --no-check-builddeps
	mkdir -p dist
	v=$$(dpkg-parsechangelog -S Version); \
	  mv -f ../ocf-rs_$${v}_*.deb ../ocf-rs-heartbeat_$${v}_all.deb ../ocf-rs_$${v}_*.buildinfo ../ocf-rs_$${v}_*.changes dist/
