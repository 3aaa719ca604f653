//! Action dispatch: from `argv[1]` and the environment to one call of the agent, and
//! from its result to the exit status and the single `ocf-exit-reason:` line.
//!
//! Rules (OCF spec, plus shared/notes/decisions.md):
//! - no action, an unknown action or one the agent does not advertise: usage on stderr,
//!   exit 3; arguments after the action are ignored;
//! - `meta-data`, `usage`/`help` and `version`/`--version` need nothing from the
//!   environment;
//! - invalid parameters fail every action with their code and reason, except stop and
//!   probes, which the agent still runs (with defaults in place of the bad values), so a
//!   resource that cannot be configured can still be found and stopped, and recurring
//!   monitors, which run despite a value that does not parse (not without a required
//!   parameter): a monitor's 6 would make Pacemaker stop the resource on every node;
//! - a failed action prints exactly one exit-reason line, the most specific one;
//! - a stop never reports "not running" (7): stopped is success.

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::agent::{AgentDescription, Params};
use crate::deadline::Deadline;
use crate::env::OcfEnv;
use crate::exit::{exit_reason_line, ExitCode, OcfError, OcfResult};
use crate::metadata::{render, OcfVersion};

/// Every action name the OCF API and Pacemaker use.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Start,
    Stop,
    Monitor,
    Status,
    MigrateTo,
    MigrateFrom,
    Reload,
    ReloadAgent,
    ValidateAll,
    MetaData,
    Usage,
    Promote,
    Demote,
    Notify,
}

impl Action {
    pub const ALL: &'static [Action] = &[
        Action::Start,
        Action::Stop,
        Action::Monitor,
        Action::Status,
        Action::MigrateTo,
        Action::MigrateFrom,
        Action::Reload,
        Action::ReloadAgent,
        Action::ValidateAll,
        Action::MetaData,
        Action::Usage,
        Action::Promote,
        Action::Demote,
        Action::Notify,
    ];

    /// The action's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Monitor => "monitor",
            Action::Status => "status",
            Action::MigrateTo => "migrate_to",
            Action::MigrateFrom => "migrate_from",
            Action::Reload => "reload",
            Action::ReloadAgent => "reload-agent",
            Action::ValidateAll => "validate-all",
            Action::MetaData => "meta-data",
            Action::Usage => "usage",
            Action::Promote => "promote",
            Action::Demote => "demote",
            Action::Notify => "notify",
        }
    }

    /// The action named `name` (`help` is `usage`); exact spelling only.
    pub fn parse(name: &str) -> Option<Action> {
        if name == "help" {
            return Some(Action::Usage);
        }
        Action::ALL.iter().copied().find(|a| a.name() == name)
    }
}

/// What an agent's action gets to work with.
pub struct Context {
    pub action: Action,
    pub env: OcfEnv,
    pub params: Params,
    pub deadline: Deadline,
    /// A reason to report even though the action succeeded (for example a stop that had
    /// to kill the guest's process because libvirtd did not answer).
    note: std::sync::Mutex<Option<String>>,
}

impl Context {
    /// Builds a context (the dispatcher does this; tests of agents may too).
    pub fn new(action: Action, env: OcfEnv, params: Params, deadline: Deadline) -> Context {
        Context {
            action,
            env,
            params,
            deadline,
            note: std::sync::Mutex::new(None),
        }
    }

    /// Reports `reason` in the exit-reason line although the action succeeds. The last
    /// note wins; a failure's own reason replaces it.
    pub fn note_reason(&self, reason: impl Into<String>) {
        let reason = reason.into();
        // On stderr it is the exit-reason line; the log gets it as a warning.
        tracing::warn!(target: crate::logging::EXIT_REASON_TARGET, "{reason}");
        if let Ok(mut n) = self.note.lock() {
            *n = Some(reason);
        }
    }

    /// A probe: a monitor (or status) with interval 0 or none, which Pacemaker runs to
    /// find out whether the resource is active; "not running" is its normal answer.
    pub fn is_probe(&self) -> bool {
        matches!(self.action, Action::Monitor | Action::Status) && self.env.interval_ms() == 0
    }

    /// The resource instance name (`OCF_RESOURCE_INSTANCE`), or "" when not given.
    pub fn instance(&self) -> &str {
        self.env.instance().unwrap_or("")
    }
}

/// An OCF resource agent: its description and its actions.
pub trait Agent {
    fn description(&self) -> &'static AgentDescription;

    /// Runs one advertised action other than meta-data and usage. `Ok` codes print no
    /// reason (success, or "not running" from a monitor); `Err` prints its reason.
    fn run(&self, ctx: &Context) -> OcfResult;
}

/// The operation timeout used when Pacemaker gives none: the action's advertised one,
/// else 20 s (Pacemaker's default).
fn default_timeout(desc: &AgentDescription, action: Action) -> Duration {
    let s = desc
        .action(action.name())
        .map(|a| a.timeout_s)
        .unwrap_or(20);
    Duration::from_secs(u64::from(s))
}

/// Logs the whole reason (an error record that stderr does not repeat) and prints the
/// exit-reason line, shortened to what Pacemaker keeps.
fn fail(env: &OcfEnv, stderr: &mut dyn Write, e: &OcfError) -> i32 {
    tracing::error!(target: crate::logging::EXIT_REASON_TARGET, "{}", e.reason());
    let _ = writeln!(
        stderr,
        "{}",
        exit_reason_line(env.exit_reason_prefix(), e.exit_reason())
    );
    e.code.code()
}

/// Runs the action named in `args[1]` and returns the exit status. Output goes to the
/// given writers so that tests can inspect it; [`main`] passes stdout and stderr.
pub fn execute(
    agent: &dyn Agent,
    args: &[String],
    env: OcfEnv,
    started: Instant,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let desc = agent.description();
    let requested = args.get(1).map(String::as_str);
    if matches!(requested, Some("--version" | "version")) {
        let _ = writeln!(stdout, "{} (ocf-rs) {}", desc.name, desc.version);
        return ExitCode::Success.code();
    }
    let action = match requested.map(Action::parse) {
        Some(Some(Action::Usage)) => {
            let _ = writeln!(stdout, "{}", desc.usage());
            return ExitCode::Success.code();
        }
        Some(Some(Action::MetaData)) => {
            let version = OcfVersion::for_minor(env.ra_version_minor());
            let _ = stdout.write_all(render(desc, version).as_bytes());
            return ExitCode::Success.code();
        }
        Some(Some(a)) if desc.advertises(a.name()) => a,
        other => {
            let _ = writeln!(stderr, "{}", desc.usage());
            let why = match (requested, other) {
                (None, _) => "no action given".to_string(),
                (Some(name), Some(Some(_))) => {
                    format!("action '{name}' is not supported by {}", desc.name)
                }
                (Some(name), _) => format!("unknown action '{}'", crate::exit::one_line(name)),
            };
            return fail(&env, stderr, &OcfError::unimplemented(why));
        }
    };

    let timeout = env
        .timeout()
        .unwrap_or_else(|| default_timeout(desc, action));
    let deadline = Deadline::new(started, timeout);
    let params = Params::parse(desc, &env);
    let ctx = Context::new(action, env, params, deadline);
    if let Some(first) = ctx.params.errors().first() {
        // stop and probes run whatever the configuration (a resource that cannot be
        // configured must still be found and stopped); a recurring monitor runs despite
        // values that do not parse (a 6 from a monitor makes Pacemaker stop the resource
        // everywhere), but not without a required parameter.
        let lenient = action == Action::Stop
            || ctx.is_probe()
            || (matches!(action, Action::Monitor | Action::Status) && !ctx.params.lacks_required());
        if lenient {
            for e in ctx.params.errors() {
                tracing::warn!("{}; {} goes on with the default", e.reason(), action.name());
            }
        } else {
            return fail(&ctx.env, stderr, first);
        }
    }

    let result = catch_unwind(AssertUnwindSafe(|| agent.run(&ctx))).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        Err(OcfError::generic(format!(
            "internal error in {}: {what}",
            action.name()
        )))
    });
    let elapsed_ms = ctx.deadline.elapsed().as_millis() as u64;
    if result.is_ok() {
        if let Some(note) = ctx.note.lock().ok().and_then(|mut n| n.take()) {
            let _ = writeln!(
                stderr,
                "{}",
                exit_reason_line(ctx.env.exit_reason_prefix(), &note)
            );
        }
    }
    match result {
        Ok(ExitCode::NotRunning) if action == Action::Stop => {
            tracing::info!(elapsed_ms, "stop: already stopped");
            ExitCode::Success.code()
        }
        // Monitors run every few seconds for the life of a resource, and pcs shows any
        // stderr of a successful validate-all as a warning: their routine outcomes are
        // logged at debug level only.
        Ok(code)
            if matches!(
                action,
                Action::Monitor | Action::Status | Action::ValidateAll
            ) =>
        {
            tracing::debug!(
                elapsed_ms,
                rc = code.code(),
                "{} finished: {}",
                action.name(),
                code.name()
            );
            code.code()
        }
        Ok(code) => {
            tracing::info!(
                elapsed_ms,
                rc = code.code(),
                "{} finished: {}",
                action.name(),
                code.name()
            );
            code.code()
        }
        Err(e) => {
            tracing::info!(elapsed_ms, rc = e.code.code(), "{} failed", action.name());
            fail(&ctx.env, stderr, &e)
        }
    }
}

/// Runs `args` (program name, action, ...) with the environment `pairs`, as
/// [`execute`] does, and returns the exit status, stdout and stderr: for the tests of an
/// agent and of the dispatcher.
pub fn execute_captured(
    agent: &dyn Agent,
    args: &[&str],
    pairs: &[(&str, &str)],
) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let env = OcfEnv::from_pairs(pairs.iter().copied());
    let code = execute(agent, &args, env, Instant::now(), &mut out, &mut err);
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

/// The whole `main` of an agent binary: reads the process's arguments and environment,
/// sets up logging, runs the action and exits with its status.
pub fn main(agent: &dyn Agent) -> ! {
    let code = run_process(agent, Instant::now());
    std::process::exit(code)
}

/// [`main`] without the exit, for an agent run from a plugin that the binary loaded: the
/// action's deadline counts from `started` (when the process began), and the caller exits
/// with the status returned. Everything is written and flushed before it returns.
pub fn run_process(agent: &dyn Agent, started: Instant) -> i32 {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let env = OcfEnv::from_process();
    let action = args.get(1).map(String::as_str).unwrap_or("");
    // meta-data and usage must be quick and work for any user: no logging set-up.
    let _log = match Action::parse(action) {
        Some(Action::MetaData) | Some(Action::Usage) => None,
        _ => Some(crate::logging::init(agent.description().name, action, &env)),
    };
    let code = execute(
        agent,
        &args,
        env,
        started,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    let _ = std::io::stdout().flush();
    // Nothing a child of the agent started outlives it.
    crate::child::end_leftovers();
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{ActionSpec, ParamType, ParameterSpec};

    const DESC: AgentDescription = AgentDescription {
        name: "T",
        version: "1",
        shortdesc: "test",
        longdesc: "test",
        parameters: &[ParameterSpec::new("n", ParamType::Integer)],
        actions: &[
            ActionSpec::new("start", 20),
            ActionSpec::new("stop", 20),
            ActionSpec::recurring("monitor", 20, 10, 0),
            ActionSpec::new("meta-data", 5),
        ],
    };

    /// Returns fixed results, or panics on start when n=13.
    struct T;
    impl Agent for T {
        fn description(&self) -> &'static AgentDescription {
            &DESC
        }
        fn run(&self, ctx: &Context) -> OcfResult {
            match ctx.action {
                Action::Start if ctx.params.int("n") == Some(13) => panic!("unlucky"),
                Action::Start => {
                    ctx.note_reason("noted");
                    Err(OcfError::installed("first\nsecond"))
                }
                Action::Monitor if ctx.params.int("n") == Some(8) => Err(OcfError::generic(
                    format!("own words: {}", crate::exit::quoted(&"x".repeat(300))),
                )),
                Action::Monitor if ctx.params.int("n") == Some(7) => {
                    ctx.note_reason("noted");
                    Ok(ExitCode::Success)
                }
                Action::Stop => Ok(ExitCode::NotRunning),
                Action::Monitor if ctx.is_probe() => Ok(ExitCode::NotRunning),
                _ => Ok(ExitCode::Success),
            }
        }
    }

    fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        execute_captured(&T, args, env)
    }

    #[test]
    fn no_action_or_unknown_action_is_unimplemented_with_usage() {
        for args in [
            &["T"][..],
            &["T", "bogus"],
            &["T", "--help"],
            &["T", "promote"],
            &["T", "migrate-to"],
        ] {
            let (code, out, err) = run(args, &[]);
            assert_eq!(code, 3, "{args:?}");
            assert!(out.is_empty());
            assert!(
                err.starts_with("usage: T {start|stop|monitor|meta-data|usage|help}"),
                "{err}"
            );
            assert_eq!(err.matches("ocf-exit-reason:").count(), 1, "{err}");
        }
    }

    #[test]
    fn extra_arguments_are_ignored() {
        let (code, _, _) = run(
            &["T", "monitor", "extra", "args"],
            &[("OCF_RESKEY_CRM_meta_interval", "10000")],
        );
        assert_eq!(code, 0);
    }

    #[test]
    fn usage_and_meta_data_need_no_environment() {
        let (code, out, _) = run(&["T", "usage"], &[]);
        assert_eq!(code, 0);
        assert!(out.starts_with("usage: T"));
        let (code, out, _) = run(&["T", "help"], &[]);
        assert_eq!((code, out.starts_with("usage: T")), (0, true));
        let (code, out, err) = run(&["T", "meta-data"], &[]);
        assert_eq!(code, 0);
        assert!(out.contains("<version>1.0</version>"));
        assert!(err.is_empty());
        let (_, out, _) = run(&["T", "meta-data"], &[("OCF_RA_VERSION_MINOR", "1")]);
        assert!(out.contains("<version>1.1</version>"));
    }

    #[test]
    fn a_failure_prints_exactly_one_flattened_reason_with_the_prefix() {
        let (code, _, err) = run(&["T", "start"], &[]);
        assert_eq!(code, 5);
        assert_eq!(err, "ocf-exit-reason:first second\n");
        let (_, _, err) = run(&["T", "start"], &[("OCF_EXIT_REASON_PREFIX", "WHY:")]);
        assert_eq!(err, "WHY:first second\n");
    }

    #[test]
    fn bad_parameters_fail_actions_but_not_stop_probe_or_monitor() {
        let bad = [("OCF_RESKEY_n", "many")];
        let (code, _, err) = run(&["T", "start"], &bad);
        assert_eq!(code, 6);
        assert_eq!(
            err.trim(),
            "ocf-exit-reason:parameter 'n': 'many' is not an integer"
        );
        let (code, _, err) = run(&["T", "stop"], &bad);
        assert_eq!((code, err.as_str()), (0, ""));
        let (code, _, err) = run(&["T", "monitor"], &bad);
        assert_eq!((code, err.as_str()), (7, ""));
        // A recurring monitor runs too (a 6 would stop the resource on every node), with
        // the problem in the log only.
        let (code, _, err) = run(
            &["T", "monitor"],
            &[bad[0], ("OCF_RESKEY_CRM_meta_interval", "10000")],
        );
        assert_eq!((code, err.as_str()), (0, ""));
    }

    #[test]
    fn a_recurring_monitor_without_a_required_parameter_fails() {
        const REQ: AgentDescription = AgentDescription {
            parameters: &[ParameterSpec {
                required: true,
                ..ParameterSpec::new("r", ParamType::String)
            }],
            ..DESC
        };
        struct R;
        impl Agent for R {
            fn description(&self) -> &'static AgentDescription {
                &REQ
            }
            fn run(&self, _: &Context) -> OcfResult {
                Ok(ExitCode::Success)
            }
        }
        let go = |env: &[(&str, &str)]| {
            let (code, _, err) = execute_captured(&R, &["R", "monitor"], env);
            (code, err)
        };
        let (code, err) = go(&[("OCF_RESKEY_CRM_meta_interval", "10000")]);
        assert_eq!(code, 6);
        assert_eq!(
            err.trim(),
            "ocf-exit-reason:parameter 'r' is required but not set"
        );
        // A probe still runs.
        assert_eq!(go(&[]).0, 0);
    }

    #[test]
    fn a_note_is_reported_once_on_success_and_replaced_by_a_failure_reason() {
        let (code, _, err) = run(
            &["T", "monitor"],
            &[
                ("OCF_RESKEY_CRM_meta_interval", "1000"),
                ("OCF_RESKEY_n", "7"),
            ],
        );
        assert_eq!(code, 0);
        assert_eq!(err, "ocf-exit-reason:noted\n");
        let (code, _, err) = run(&["T", "start"], &[("OCF_RESKEY_n", "7")]);
        assert_eq!(code, 5);
        assert_eq!(err, "ocf-exit-reason:first second\n");
    }

    #[test]
    fn version_prints_the_agent_and_its_version() {
        for arg in ["--version", "version"] {
            let (code, out, err) = run(&["T", arg], &[]);
            assert_eq!(
                (code, out.as_str(), err.as_str()),
                (0, "T (ocf-rs) 1\n", "")
            );
        }
    }

    #[test]
    fn a_long_reason_is_shortened_to_what_pacemaker_keeps() {
        let (code, _, err) = run(
            &["T", "monitor"],
            &[
                ("OCF_RESKEY_CRM_meta_interval", "1000"),
                ("OCF_RESKEY_n", "8"),
            ],
        );
        assert_eq!(code, 1);
        let reason = err.trim_end().strip_prefix("ocf-exit-reason:").unwrap();
        assert_eq!(reason.len(), crate::exit::EXIT_REASON_MAX, "{reason}");
        assert!(reason.starts_with("own words: xxx"), "{reason}");
        assert!(reason.ends_with("x..."), "{reason}");
    }

    #[test]
    fn stop_never_reports_not_running() {
        assert_eq!(run(&["T", "stop"], &[]).0, 0);
    }

    #[test]
    fn a_panic_becomes_a_generic_error_with_a_reason() {
        let (code, _, err) = run(&["T", "start"], &[("OCF_RESKEY_n", "13")]);
        assert_eq!(code, 1);
        assert!(
            err.contains("ocf-exit-reason:internal error in start: unlucky"),
            "{err}"
        );
    }

    #[test]
    fn actions_parse_by_exact_name() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.name()), Some(*a));
        }
        assert_eq!(Action::parse("help"), Some(Action::Usage));
        assert_eq!(Action::parse("migrate-to"), None);
        assert_eq!(Action::parse("START"), None);
    }
}
