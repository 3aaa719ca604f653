//! Logging through `tracing`: to the journal when its socket answers, otherwise to
//! stderr (which Pacemaker's executor records); also appended to `HA_LOGFILE` and, at
//! debug level, `HA_DEBUGLOG` when they are set. Every record carries the resource
//! instance and the action: as journal fields `OCF_RESOURCE_INSTANCE`/`OCF_ACTION`, and
//! as the `ocf{...}` span on text outputs.

use std::fs::OpenOptions;
use std::sync::Arc;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{fmt, Layer, Registry};

use crate::env::OcfEnv;

/// Where the log goes, as decided by [`init`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogTargets {
    pub journal: bool,
    pub stderr: bool,
    pub logfile: bool,
    pub debuglog: bool,
}

/// Installs the global subscriber for one agent invocation and enters the span that
/// tags every record. Returns the span guard's owner (keep it alive for the action).
pub fn init(agent: &str, action: &str, env: &OcfEnv) -> (LogTargets, tracing::span::EnteredSpan) {
    let level = if env.debug() {
        LevelFilter::DEBUG
    } else {
        LevelFilter::INFO
    };
    let instance = env.instance().unwrap_or("").to_string();

    let journald = tracing_journald::layer().ok().map(|l| {
        l.with_syslog_identifier(agent.to_string())
            .with_custom_fields([
                ("OCF_RESOURCE_INSTANCE", instance.as_bytes()),
                ("OCF_ACTION", action.as_bytes()),
            ])
            .with_filter(level)
    });
    // validate-all's stderr is read by pcs (through `crm_resource --validate`) as the
    // agent's verdict: anything there turns a passing validation into a warning for the
    // user. Only problems go there; the log file still gets the informational records.
    let stderr_level = if action == "validate-all" && !env.debug() {
        LevelFilter::WARN
    } else {
        level
    };
    let stderr = journald.is_none().then(|| {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_target(false)
            .without_time()
            .with_filter(stderr_level)
    });
    let open = |p: std::path::PathBuf| OpenOptions::new().create(true).append(true).open(p).ok();
    let logfile = env.logfile().and_then(open).map(|f| {
        fmt::layer()
            .with_writer(Arc::new(f))
            .with_ansi(false)
            .with_target(false)
            .with_filter(level)
    });
    let debuglog = env.debuglog().and_then(open).map(|f| {
        fmt::layer()
            .with_writer(Arc::new(f))
            .with_ansi(false)
            .with_target(false)
            .with_filter(LevelFilter::DEBUG)
    });
    let targets = LogTargets {
        journal: journald.is_some(),
        stderr: stderr.is_some(),
        logfile: logfile.is_some(),
        debuglog: debuglog.is_some(),
    };
    let subscriber = Registry::default()
        .with(journald)
        .with(stderr)
        .with(logfile)
        .with(debuglog);
    // Only fails if a subscriber is already installed (a second init in one process).
    let _ = tracing::subscriber::set_global_default(subscriber);
    let span = tracing::info_span!("ocf", agent, instance = %instance, action).entered();
    (targets, span)
}
