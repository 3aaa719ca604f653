//! What Dummy declares: the parameters of both shell Dummies and their actions.

use ocf_common::{
    ActionSpec, AgentDescription, ParamDefault, ParamType, ParameterSpec, TRACE_FILE, TRACE_RA,
};

pub static DESCRIPTION: AgentDescription = AgentDescription {
    name: "Dummy",
    version: env!("CARGO_PKG_VERSION"),
    shortdesc: "Example stateless resource agent",
    longdesc: "This is a dummy OCF resource agent. It does absolutely nothing except keep track \
of whether it is running or not, and can be configured so that actions fail or take a long time. \
Its purpose is primarily for testing, and to serve as a template for resource agent writers.",
    parameters: &[
        ParameterSpec {
            shortdesc: "State file",
            longdesc: "Location to store the resource state in. By default \
${HA_VARRUN}/Dummy-<resource instance>.state (/var/run/...), without the clone number for \
anonymous clones, as ocf:pacemaker:Dummy; installed as the heartbeat provider \
(OCF_RESOURCE_PROVIDER=heartbeat), ${HA_RSCTMP}/Dummy-<resource instance>.state \
(/run/resource-agents/...), as ocf:heartbeat:Dummy.",
            default: ParamDefault::Computed("/var/run/Dummy-RESOURCE_ID.state"),
            unique: true,
            ..ParameterSpec::new("state", ParamType::String)
        },
        ParameterSpec {
            shortdesc: "Password",
            longdesc: "Fake password field (Pacemaker keeps parameters with this name out of \
logs and digests).",
            reloadable: true,
            ..ParameterSpec::new("passwd", ParamType::String)
        },
        ParameterSpec {
            shortdesc: "Fake attribute that can be changed to cause a reload",
            longdesc: "Fake attribute that can be changed to cause an agent reload \
(reload-agent) instead of a restart.",
            default: ParamDefault::Value("dummy"),
            reloadable: true,
            ..ParameterSpec::new("fake", ParamType::String)
        },
        ParameterSpec {
            shortdesc: "Operation sleep duration in seconds.",
            longdesc: "Number of seconds to sleep during operations (a Pacemaker time \
such as 2, 2s or 500ms). This can be used to test how the cluster reacts to slow operations; \
an action whose sleep would outlast its timeout fails just before the timeout.",
            default: ParamDefault::Value("0"),
            reloadable: true,
            ..ParameterSpec::new("op_sleep", ParamType::Time)
        },
        ParameterSpec {
            shortdesc: "Report bogus start failure on specified host",
            longdesc: "Start, migrate_from, and reload-agent actions will return failure if \
running on the host specified here (its host name or its Pacemaker node name), but the resource \
will run successfully anyway (future monitor calls will find it running). This can be used to \
test on-fail=ignore.",
            reloadable: true,
            ..ParameterSpec::new("fail_start_on", ParamType::String)
        },
        ParameterSpec {
            shortdesc: "Environment dump file",
            longdesc: "If this is set, the environment will be appended to this file for \
every call.",
            reloadable: true,
            ..ParameterSpec::new("envfile", ParamType::String)
        },
        TRACE_RA,
        TRACE_FILE,
    ],
    actions: &[
        ActionSpec::new("start", 20),
        ActionSpec::new("stop", 20),
        ActionSpec::recurring("monitor", 20, 10, 0),
        ActionSpec::new("reload", 20),
        ActionSpec::new("reload-agent", 20),
        ActionSpec::new("migrate_to", 20),
        ActionSpec::new("migrate_from", 20),
        ActionSpec::new("validate-all", 20),
        ActionSpec::new("meta-data", 5),
    ],
};

/// What Dummy's manual page says beyond the description.
pub static MAN: ocf_common::docs::ManPage = ocf_common::docs::ManPage {
    pcs_example: "pcs resource create FAKE1 ocf:rust:Dummy \\
    op monitor interval=10s",
    crm_example: "crm configure primitive FAKE1 ocf:rust:Dummy \\
    op monitor interval=10s",
    exit_codes: &[
        ("0 (OCF_SUCCESS)", "The resource runs (its state file exists), or a stop removed it."),
        ("1 (OCF_ERR_GENERIC)", "fail_start_on names this host (start, migrate_from, reload-agent), two monitors overlap while op_sleep is set, or a monitor at OCF_CHECK_LEVEL 20/30 reports its test failure."),
        ("2 (OCF_ERR_ARGS)", "validate-all at OCF_CHECK_LEVEL=10: the state file's (or envfile's) directory does not exist or cannot be written."),
        ("6 (OCF_ERR_CONFIGURED)", "A parameter value that does not parse (op_sleep=abc), naming the parameter (monitor, probe and stop log a warning and go on)."),
        ("7 (OCF_NOT_RUNNING)", "monitor: no state file."),
    ],
    deviations: &[
        "The union of ocf:heartbeat:Dummy and ocf:pacemaker:Dummy: pacemaker's parameters, checks and reload-agent, heartbeat's reload action.",
        "The default state file follows the provider named in OCF_RESOURCE_PROVIDER: ${HA_RSCTMP}/Dummy-<instance>.state for heartbeat, ${HA_VARRUN}/Dummy-<instance>.state (clone suffix stripped for anonymous clones) otherwise, so a Dummy started by the shell agent is found after the swap.",
        "op_sleep is a Pacemaker time (2, 2s, 500ms); a sleep that would outlast the operation's timeout ends just before it.",
        "Exactly one exit reason, the most specific one.",
    ],
    see_also: "ocf_rust_VirtualDomain(7), ocf_heartbeat_Dummy(7), crm_resource(8), pcs(8); the README of ocf-rs.",
};
