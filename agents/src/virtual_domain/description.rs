//! What VirtualDomain declares: the 27 parameters of ocf:heartbeat:VirtualDomain (same
//! names, types and defaults) and its actions with the same advertised timeouts, plus
//! reload-agent.

use ocf_common::{
    ActionSpec, AgentDescription, ParamDefault, ParamType, ParameterSpec, TRACE_FILE, TRACE_RA,
};

const fn string(
    name: &'static str,
    shortdesc: &'static str,
    longdesc: &'static str,
) -> ParameterSpec {
    ParameterSpec {
        shortdesc,
        longdesc,
        ..ParameterSpec::new(name, ParamType::String)
    }
}

const fn boolean(
    name: &'static str,
    default: &'static str,
    shortdesc: &'static str,
    longdesc: &'static str,
) -> ParameterSpec {
    ParameterSpec {
        shortdesc,
        longdesc,
        default: ParamDefault::Value(default),
        reloadable: true,
        ..ParameterSpec::new(name, ParamType::Boolean)
    }
}

/// Parameters that change how the agent acts without touching the running guest; a
/// change is applied by reload-agent instead of a restart.
const fn reloadable(p: ParameterSpec) -> ParameterSpec {
    ParameterSpec {
        reloadable: true,
        ..p
    }
}

const fn with_default(p: ParameterSpec, d: &'static str) -> ParameterSpec {
    ParameterSpec {
        default: ParamDefault::Value(d),
        ..p
    }
}

pub static DESCRIPTION: AgentDescription = AgentDescription {
    name: "VirtualDomain",
    version: env!("CARGO_PKG_VERSION"),
    shortdesc: "Manages virtual domains through the libvirt virtualization framework",
    longdesc: "Starts, stops, monitors and live-migrates a libvirt domain (a KVM/QEMU, Xen or LXC \
virtual machine) described by a domain XML file. A drop-in replacement for \
ocf:heartbeat:VirtualDomain with the same parameters, talking to libvirt directly (one \
connection, no virsh), bounded by each operation's timeout.",
    parameters: &[
        ParameterSpec {
            required: true,
            unique: true,
            default: ParamDefault::Value(""),
            ..string(
                "config",
                "Virtual domain configuration file",
                "Absolute path to the libvirt domain XML file of this virtual domain. The domain's \
name and UUID are read from it and remembered, so that a domain whose file has become \
unreadable is still found.",
            )
        },
        string(
            "hypervisor",
            "Hypervisor URI",
            "libvirt connection URI of the hypervisor, e.g. qemu:///system. When unset, libvirt's \
default URI is used (LIBVIRT_DEFAULT_URI or its own choice).",
        ),
        ParameterSpec {
            default: ParamDefault::Value("0"),
            reloadable: true,
            shortdesc: "Always force shutdown on stop",
            longdesc: "Never try a graceful shutdown on stop: destroy the domain at once. Do not \
use it with snapshot.",
            ..ParameterSpec::new("force_stop", ParamType::Boolean)
        },
        reloadable(with_default(
            string(
                "migration_transport",
                "Remote hypervisor transport",
                "Transport used to reach the target host's libvirt during a live migration, put in \
the hypervisor URI's scheme in place of its own (e.g. ssh gives qemu+ssh://TARGET/system); \
unset, the hypervisor URI's transport is kept. Not used when remoteuri is set.",
            ),
            "",
        )),
        reloadable(string(
            "migration_user",
            "Remote hypervisor user",
            "User to connect to the target host's libvirt as (user@TARGET in the derived URI); it \
must look like a login name. Not used when remoteuri is set.",
        )),
        ParameterSpec {
            default: ParamDefault::Value("0"),
            reloadable: true,
            shortdesc: "Live migration downtime",
            longdesc: "Maximum downtime of a live migration in milliseconds (0: libvirt's default).",
            ..ParameterSpec::new("migration_downtime", ParamType::Integer)
        },
        ParameterSpec {
            default: ParamDefault::Value("0"),
            reloadable: true,
            shortdesc: "Live migration speed limit",
            longdesc: "Maximum bandwidth of a live migration in MiB/s (0: no limit).",
            ..ParameterSpec::new("migration_speed", ParamType::Integer)
        },
        reloadable(with_default(
            string(
                "migration_network_suffix",
                "Migration network host name suffix",
                "Suffix added to the first label of the target node's name to form the host name \
used for migration traffic (e.g. -mig turns node2.example.com into node2-mig.example.com), so \
that migrations use a dedicated network. Also used for the remote libvirt URI.",
            ),
            "",
        )),
        reloadable(string(
            "migrateuri",
            "Custom migrateuri for migration state transfer",
            "Migration URI for the migration data stream, e.g. tcp://%n-mig:49152; %n is replaced \
by the target node's name. Takes precedence over --migrateuri in migrate_options and over the \
URI derived from migration_network_suffix.",
        )),
        reloadable(string(
            "migrate_options",
            "Extra virsh-style options for live migration",
            "Extra options for the live migration, in virsh migrate syntax (--opt VALUE or \
--opt=VALUE), mapped to libvirt's flags and migration parameters. Flags: --live, --verbose, --p2p, \
--tunnelled, --persistent, --undefinesource, --unsafe, --compressed, --auto-converge, --postcopy, \
--postcopy-after-precopy, --copy-storage-all, --copy-storage-inc, \
--copy-storage-synchronous-writes, --abort-on-error, --change-protection, --rdma-pin-all, --tls, \
--parallel, --zerocopy. With a value: --migrateuri, --bandwidth, --postcopy-bandwidth, \
--migrate-disks, --disks-port, --disks-uri, --parallel-connections, --comp-methods (one method), \
--comp-mt-level, --comp-mt-threads, --comp-mt-dthreads, --comp-xbzrle-cache, --comp-zlib-level, \
--comp-zstd-level, --auto-converge-initial, --auto-converge-increment, --listen-address, \
--graphicsuri, --tls-destination, --timeout SECONDS (then the guest is paused, or with \
--timeout-postcopy switched to post-copy). Anything else is refused, naming the option (--dname, \
--xml, --offline and --suspend would break the cluster's view of the domain).",
        )),
        reloadable(with_default(
            string(
                "monitor_scripts",
                "Scripts to monitor the guest",
                "Space-separated list of commands run after the domain is found running; each must \
exit 0 for the monitor to succeed. They run without a shell, within the operation's timeout, \
and their output is reported when they fail. start and migrate_from return only once they pass \
(use them to wait for a service in the guest).",
            ),
            "",
        )),
        boolean(
            "autoset_utilization_cpu",
            "true",
            "Set the cpu utilization from the domain",
            "Publish the domain's number of virtual CPUs as the resource's cpu utilization.",
        ),
        boolean(
            "autoset_utilization_host_memory",
            "true",
            "Set the host_memory utilization from the domain",
            "Publish the domain's maximum memory (MiB) as the resource's host_memory utilization.",
        ),
        boolean(
            "autoset_utilization_hv_memory",
            "true",
            "Set the hv_memory utilization from the domain",
            "Publish the domain's maximum memory (MiB) as the resource's hv_memory utilization.",
        ),
        boolean(
            "unset_utilization_cpu",
            "false",
            "Remove the cpu utilization",
            "Remove the resource's cpu utilization. Only applies when autoset_utilization_cpu is \
false.",
        ),
        boolean(
            "unset_utilization_host_memory",
            "false",
            "Remove the host_memory utilization",
            "Remove the resource's host_memory utilization. Only applies when \
autoset_utilization_host_memory is false.",
        ),
        boolean(
            "unset_utilization_hv_memory",
            "false",
            "Remove the hv_memory utilization",
            "Remove the resource's hv_memory utilization. Only applies when \
autoset_utilization_hv_memory is false.",
        ),
        ParameterSpec {
            reloadable: true,
            shortdesc: "Port for migrateuri",
            longdesc: "Port of the migration URI derived from migration_network_suffix (qemu \
only). When unset, the target's libvirt picks a free port of its migration port range \
(qemu.conf migration_port_min..migration_port_max, 49152-49215 by default), so that concurrent \
migrations to one host never collide (the shell agent draws one at random).",
            ..ParameterSpec::new("migrateport", ParamType::Integer)
        },
        reloadable(string(
            "remoteuri",
            "Custom remoteuri to communicate with the target host",
            "libvirt URI of the target host for live migration, e.g. qemu+ssh://%n/system; %n is \
replaced by the target node's name. When set, migration_transport, migration_user and \
migration_network_suffix are not used for it.",
        )),
        ParameterSpec {
            reloadable: true,
            shortdesc: "Save running domain configuration to the config file on stop",
            longdesc: "On stop and on migration, write the domain's current (inactive) definition \
back to the config file when it differs, atomically.",
            ..ParameterSpec::new("save_config_on_stop", ParamType::Boolean)
        },
        ParameterSpec {
            reloadable: true,
            shortdesc: "Save and sync the config file on stop",
            longdesc: "Like save_config_on_stop (which it implies), then synchronize the file to \
the other nodes with csync2 -x.",
            ..ParameterSpec::new("sync_config_on_stop", ParamType::Boolean)
        },
        with_default(
            string(
                "snapshot",
                "Directory for domain snapshots",
                "Directory where the domain's memory state is saved on stop (NAME.state) and \
restored from on the next start, instead of a shutdown and a boot.",
            ),
            "",
        ),
        with_default(
            string(
                "backingfile",
                "Backing image for a qcow2 overlay",
                "Disk image used as the backing file of a qcow2 overlay placed next to the config \
file (its name with .qcow2 instead of its extension). The overlay is created when missing (or \
on every start with stateless) and the domain is defined persistently; a live migration keeps \
it defined on the target and undefines it here (the overlay must be on shared storage).",
            ),
            "",
        ),
        ParameterSpec {
            default: ParamDefault::Value("false"),
            shortdesc: "Recreate the overlay on every start",
            longdesc: "Recreate the qcow2 overlay from backingfile on every start, so the domain \
starts from a clean disk. Needs backingfile.",
            ..ParameterSpec::new("stateless", ParamType::Boolean)
        },
        with_default(
            string(
                "copyindirs",
                "Directories copied into a new overlay",
                "Space-separated list of host directories copied into the root of the domain's \
disk (with virt-copy-in from libguestfs) whenever the overlay is created.",
            ),
            "",
        ),
        reloadable(with_default(
            string(
                "shutdown_mode",
                "How the guest is asked to shut down",
                "Comma-separated shutdown methods passed to libvirt on stop: acpi, agent, initctl, \
signal, paravirt. Empty: the hypervisor's default.",
            ),
            "",
        )),
        ParameterSpec {
            default: ParamDefault::Value("false"),
            reloadable: true,
            shortdesc: "Start the domain's storage pools and networks",
            longdesc: "Before start (and on the target before a migration), start the storage \
pools and virtual networks the config refers to if they are inactive (refresh active pools).",
            ..ParameterSpec::new("start_resources", ParamType::Boolean)
        },
        TRACE_RA,
        TRACE_FILE,
    ],
    actions: &[
        ActionSpec::new("start", 90),
        ActionSpec::new("stop", 90),
        ActionSpec::recurring("status", 30, 10, 0),
        ActionSpec::recurring("monitor", 30, 10, 0),
        ActionSpec::new("migrate_from", 60),
        ActionSpec::new("migrate_to", 120),
        ActionSpec::new("reload-agent", 30),
        ActionSpec::new("meta-data", 5),
        ActionSpec::new("validate-all", 5),
    ],
};

/// What VirtualDomain's manual page says beyond the description.
pub static MAN: ocf_common::docs::ManPage = ocf_common::docs::ManPage {
    pcs_example: "pcs resource create vm1 ocf:rust:VirtualDomain \\
    config=/etc/libvirt/qemu/vm1.xml hypervisor=qemu:///system \\
    meta allow-migrate=true \\
    op monitor interval=10s timeout=30s",
    crm_example: "crm configure primitive vm1 ocf:rust:VirtualDomain \\
    params config=/etc/libvirt/qemu/vm1.xml hypervisor=qemu:///system \\
    meta allow-migrate=true \\
    op monitor interval=10s timeout=30s",
    exit_codes: &[
        ("0 (OCF_SUCCESS)", "The domain runs here (monitor, start, migrate_from), or it does not run here any more (stop). A stop answers 0 without libvirtd only when the guest's own qemu process is provably gone, or after ending it itself, and on a node where libvirt's client library is not installed (for a local hypervisor URI)."),
        ("1 (OCF_ERR_GENERIC)", "libvirt could not be reached or refused the request, the domain is crashed or suspended, a domain of the same name with another UUID exists (start), the deadline passed, or, without libvirtd, the domain's state cannot be proven; stop, probe and monitor when libvirt is installed but the agent's plugin is missing or cannot be loaded, or when libvirt is not installed and the hypervisor URI names another host. An unreachable or hung libvirtd is 1 in every action: nothing is guessed."),
        ("2 (OCF_ERR_ARGS)", "validate-all at OCF_CHECK_LEVEL=10: the snapshot directory does not exist."),
        ("4 (OCF_ERR_PERM)", "validate-all at OCF_CHECK_LEVEL=10: the state directory cannot be written."),
        ("5 (OCF_ERR_INSTALLED)", "What this host lacks: the config file is missing, unreadable or not a domain definition (start, migrate_*, a recurring monitor of a broken file), the emulator, or a tool a parameter needs (qemu-img, virt-copy-in, csync2); libvirt's client library itself (libvirt.so.0, every action but meta-data, usage, reload-agent, validate-all below level 10 and stop), or the agent's plugin (start, migrate_*, validate-all)."),
        ("6 (OCF_ERR_CONFIGURED)", "A parameter value or combination that is wrong everywhere, naming the parameter (start, migrate_*, validate-all, reload-agent; monitor, probe and stop log a warning and go on); config unset (all actions but stop and probe)."),
        ("7 (OCF_NOT_RUNNING)", "monitor: libvirt says the domain is shut off or does not exist, or the only domain of that name is another VM (another UUID). Never answered when libvirt cannot be asked."),
    ],
    deviations: &[
        "Talks to libvirt directly, one connection per invocation, every call bounded by the operation's timeout (no virsh, no shell, no fork on the monitor path).",
        "The domain is identified by its UUID (the config's, or the one libvirt assigned at start, kept in the state file); a domain of the same name with another UUID is never adopted, undefined or stopped. The name is read from the config as libvirt reads it.",
        "A probe or monitor whose config file disappeared asks libvirt by the identity cached at start, so a running VM is never reported stopped because its file went away; the shell agent answers from the missing file alone.",
        "With libvirtd down or hung, monitor answers from the guest's qemu process for qemu:///system (alive: 0; otherwise 1, never 7), and stop ends that process itself before its deadline; for any other URI both answer 1.",
        "Stop escalates in time: shutdown (shutdown_mode is applied, the shell agent ignores it), then destroy within a budget kept at the end of the timeout.",
        "start and migrate_from return once a full monitor passes (monitor_scripts included); migrate_to watches the migration and aborts it before the deadline so the guest stays healthy on the source.",
        "Booleans are exactly ocf_is_true's spellings; other text (Yes, y, On) is refused rather than read as false. A recurring monitor does not fail over a value it does not need.",
        "A node without libvirt's client library (a quorum or storage node) answers 5 naming libvirt, and stop 0 (1 for a hypervisor URI that names another host: that guest may run there), instead of failing every action: the binary links no libvirt and loads the agent's plugin (libocf_agents.so, installed under /usr/lib/ocf-rs) only for the actions that need it.",
        "config unset: stop answers 0 and a probe 7 (the shell agent answers 6 to every action, so a stop fails).",
        "Exactly one exit reason, the most specific one. reload-agent applies reloadable parameters without restarting the VM.",
        "backingfile/stateless give qemu-img the backing format, so they work with current qemu-img.",
    ],
    see_also: "ocf_rust_Dummy(7), ocf_heartbeat_VirtualDomain(7), virsh(1), crm_resource(8), pcs(8); the README of ocf-rs.",
};
