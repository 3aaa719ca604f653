//! ocf-common: what every OCF resource agent of ocf-rs needs.
//!
//! - [`exit`]: the OCF exit codes and the error type that carries one with its reason;
//! - [`env`]: the environment (`OCF_RESKEY_*`, meta attributes, `OCF_*`, `HA_*`);
//! - [`value`]: parameter value parsing (booleans, integers, times);
//! - [`agent`]: the declarative description of an agent, and its parsed parameters;
//! - [`metadata`]: meta-data XML in OCF 1.0 and 1.1 from that description;
//! - [`dispatch`]: from `argv[1]` to an action, and from its result to an exit status;
//! - [`deadline`]: the op-timeout budget every wait honours;
//! - [`statefile`]: atomic, symlink-safe state files;
//! - [`regular_file`]: reading configured files without blocking, within a size cap;
//! - [`child`]: the one runner of child processes (bounded, drained, never left behind);
//! - [`logging`]: syslog or the journal, `HA_LOGFILE`/`HA_DEBUGLOG`, stderr and the
//!   `trace_ra` trace, tagged `AGENT(instance)[pid]` as ocf-shellfuncs does;
//! - [`docs`]: Markdown parameter tables for the README.

pub mod agent;
pub mod child;
pub mod deadline;
pub mod dispatch;
pub mod docs;
pub mod env;
pub mod exit;
pub mod logging;
pub mod metadata;
pub mod regular_file;
pub mod statefile;
pub mod value;

pub use agent::{
    ActionSpec, AgentDescription, ParamDefault, ParamType, ParameterSpec, Params, TRACE_FILE,
    TRACE_RA,
};
pub use deadline::Deadline;
pub use dispatch::{Action, Agent, Context};
pub use env::OcfEnv;
pub use exit::{ExitCode, OcfError, OcfResult};
