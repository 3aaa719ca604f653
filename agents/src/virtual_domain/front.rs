//! The `VirtualDomain` binary ("the front"): it links no libvirt. It answers meta-data,
//! usage, reload-agent and validate-all below OCF_CHECK_LEVEL 10 itself (they need only
//! the parameters), and for every other action loads libvirt's client library and then
//! the agent's plugin ([`super::plugin`], `libocf_agents.so`), which runs the action.
//!
//! On a node without libvirt's client library (a quorum or storage node), what Pacemaker
//! must hear is "not installed here", never a generic error that ends in fencing:
//! start, validate-all (level 10), migrate_to, migrate_from, probes and monitors answer 5
//! naming libvirt, and stop answers 0 (without libvirt no domain runs here). A hypervisor
//! URI that names a host (`qemu+ssh://host/system`) is the exception: that guest runs
//! elsewhere, where this node cannot look, so stop, probes and monitors answer 1. With libvirt
//! there but the plugin missing or broken (a broken installation), the agent cannot tell
//! whether the domain runs: start, validate-all and the migrations answer 5, but stop,
//! probes and monitors answer 1, naming the plugin's path.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ocf_common::{dispatch, Action, Agent, AgentDescription, Context, ExitCode, OcfEnv};
use ocf_common::{OcfError, OcfResult};

use super::error::Error;
use super::{dl, plugin, validate, Answer, DESCRIPTION};

/// libvirt's client library, as programs linked against it name it.
pub const LIBVIRT: &str = "libvirt.so.0";

/// The plugin's file name (the crate's `cdylib`).
pub const PLUGIN_FILE: &str = "libocf_agents.so";

/// Where `make install` puts the plugin: `OCF_RS_LIBDIR` at build time, else
/// `/usr/lib/ocf-rs`. Never the OCF provider directory, which pcs and crm list.
pub const LIBDIR: &str = match option_env!("OCF_RS_LIBDIR") {
    Some(dir) => dir,
    None => "/usr/lib/ocf-rs",
};

/// How the front answers the actions it runs itself.
#[derive(Clone, Debug)]
pub enum Mode {
    /// An action that needs no libvirt.
    Local,
    /// libvirt's client library cannot be loaded (why).
    NoLibvirt(String),
    /// libvirt loads, but the plugin cannot be found or loaded (why).
    NoPlugin(String),
}

/// The agent as the front runs it, with the one description of VirtualDomain.
pub struct Front(pub Mode);

impl Agent for Front {
    fn description(&self) -> &'static AgentDescription {
        &DESCRIPTION
    }

    fn run(&self, ctx: &Context) -> OcfResult {
        answer(&self.0, ctx).map_err(OcfError::from)
    }
}

/// Whether `action` (at `check_level`) needs libvirt, so the plugin. meta-data, usage,
/// actions VirtualDomain does not have (3) and unknown ones are answered by the front.
pub fn needs_libvirt(action: Option<Action>, check_level: u32) -> bool {
    match action {
        None | Some(Action::MetaData | Action::Usage | Action::ReloadAgent) => false,
        Some(Action::ValidateAll) => check_level >= 10,
        Some(a) => DESCRIPTION.advertises(a.name()),
    }
}

fn answer(mode: &Mode, ctx: &Context) -> Answer {
    match (mode, ctx.action) {
        (_, Action::ValidateAll) if ctx.env.check_level() < 10 => {
            validate::validate_parameters(ctx)
        }
        (_, Action::ReloadAgent) => validate::reload_agent(ctx),
        (Mode::Local, a) => Err(Error::Failed(format!(
            "internal error: {} needs libvirt",
            a.name()
        ))),
        (Mode::NoLibvirt(why), Action::Stop | Action::Monitor | Action::Status)
            if remote_host(ctx).is_some() =>
        {
            let host = remote_host(ctx).unwrap_or_default();
            Err(Error::Failed(format!(
                "whether the domain runs on {host} cannot be known here: {why}"
            )))
        }
        (Mode::NoLibvirt(why), Action::Stop) => {
            ctx.note_reason(format!("{why}; no domain runs on this node: stopped"));
            Ok(ExitCode::Success)
        }
        (Mode::NoLibvirt(why), _) => Err(Error::Missing(why.clone())),
        (
            Mode::NoPlugin(why),
            Action::Start | Action::ValidateAll | Action::MigrateTo | Action::MigrateFrom,
        ) => Err(Error::Missing(why.clone())),
        (Mode::NoPlugin(why), _) => Err(Error::Failed(format!(
            "{why}; whether the domain runs here cannot be known"
        ))),
    }
}

/// The host that the hypervisor URI (the parameter, else `LIBVIRT_DEFAULT_URI`) names, as
/// in `qemu+ssh://host/system`; `None` for a local URI (`qemu:///system`) or none at all.
fn remote_host(ctx: &Context) -> Option<String> {
    let uri = super::params::Params::parse(&ctx.params)
        .hypervisor
        .or_else(|| ctx.env.var("LIBVIRT_DEFAULT_URI").map(str::to_string))?;
    let (_, rest) = uri.trim().split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    (!authority.is_empty()).then(|| authority.to_string())
}

/// Where the plugin is looked for, in order: next to the binary or in its `deps/` (a
/// cargo build tree: `target/release/VirtualDomain`, and the binary `cargo test` runs),
/// then [`LIBDIR`].
pub fn plugin_candidates(exe: Option<&Path>) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(dir) = exe.and_then(Path::parent) {
        paths.push(dir.join(PLUGIN_FILE));
        paths.push(dir.join("deps").join(PLUGIN_FILE));
    }
    let installed = Path::new(LIBDIR).join(PLUGIN_FILE);
    if !paths.contains(&installed) {
        paths.push(installed);
    }
    paths
}

/// Loads libvirt, then the plugin, and returns its entry point; `Err`: how to answer.
fn load() -> Result<dl::Entry, Mode> {
    dl::open(LIBVIRT, true).map_err(|e| {
        Mode::NoLibvirt(format!(
            "libvirt is not installed on this node: its client library {LIBVIRT} cannot be loaded ({})",
            ocf_common::exit::quoted(&e.to_string())
        ))
    })?;
    let exe = std::fs::read_link("/proc/self/exe").ok();
    let candidates = plugin_candidates(exe.as_deref());
    let Some(path) = candidates.iter().find(|p| p.exists()) else {
        return Err(Mode::NoPlugin(format!(
            "the agent's plugin {} is not installed",
            Path::new(LIBDIR).join(PLUGIN_FILE).display()
        )));
    };
    let broken = |e: String| {
        Mode::NoPlugin(format!(
            "the agent's plugin {} cannot be loaded ({})",
            path.display(),
            ocf_common::exit::quoted(&e)
        ))
    };
    let library = dl::open(&path.to_string_lossy(), false).map_err(broken)?;
    library.entry(plugin::ENTRY).map_err(broken)
}

/// The `main` of the VirtualDomain binary.
pub fn main() -> ! {
    let started = Instant::now();
    let action = std::env::args().nth(1);
    let action = action.as_deref().and_then(Action::parse);
    let level = OcfEnv::from_process().check_level();
    let mode = if needs_libvirt(action, level) {
        match load() {
            Ok(entry) => {
                let elapsed_us = started.elapsed().as_micros() as u64;
                std::process::exit(entry(elapsed_us))
            }
            Err(mode) => mode,
        }
    } else {
        Mode::Local
    };
    std::process::exit(dispatch::run_process(&Front(mode), started))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mode: Mode, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        dispatch::execute_captured(&Front(mode), args, env)
    }

    const CONFIG: (&str, &str) = ("OCF_RESKEY_config", "/nonexistent/vm1.xml");
    const RECURRING: (&str, &str) = ("OCF_RESKEY_CRM_meta_interval", "10000");
    const LEVEL10: (&str, &str) = ("OCF_CHECK_LEVEL", "10");

    fn no_libvirt() -> Mode {
        Mode::NoLibvirt("libvirt is not installed on this node (test)".into())
    }

    fn no_plugin() -> Mode {
        Mode::NoPlugin("the agent's plugin /x/libocf_agents.so is not installed".into())
    }

    #[test]
    fn only_actions_that_need_libvirt_load_it() {
        let p = |name: &str| Action::parse(name);
        for (name, level, needs) in [
            ("meta-data", 0, false),
            ("usage", 0, false),
            ("help", 0, false),
            ("reload-agent", 0, false),
            ("validate-all", 0, false),
            ("validate-all", 9, false),
            ("validate-all", 10, true),
            ("start", 0, true),
            ("stop", 0, true),
            ("monitor", 0, true),
            ("status", 0, true),
            ("migrate_to", 0, true),
            ("migrate_from", 0, true),
            // Not VirtualDomain's: the front answers 3.
            ("reload", 0, false),
            ("promote", 0, false),
        ] {
            assert_eq!(needs_libvirt(p(name), level), needs, "{name} level {level}");
        }
        assert!(!needs_libvirt(None, 0));
    }

    #[test]
    fn without_libvirt_stop_succeeds_and_everything_else_is_not_installed() {
        let (code, _, err) = run(no_libvirt(), &["VirtualDomain", "stop"], &[CONFIG]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(err.matches("ocf-exit-reason:").count(), 1, "{err}");
        assert!(err.contains("libvirt is not installed"), "{err}");
        for (action, env) in [
            ("start", &[CONFIG][..]),
            ("monitor", &[CONFIG]),
            ("monitor", &[CONFIG, RECURRING]),
            ("status", &[CONFIG]),
            ("migrate_to", &[CONFIG]),
            ("migrate_from", &[CONFIG]),
            ("validate-all", &[CONFIG, LEVEL10]),
        ] {
            let (code, _, err) = run(no_libvirt(), &["VirtualDomain", action], env);
            assert_eq!(code, 5, "{action} {env:?}: {err}");
            assert_eq!(
                err.trim(),
                "ocf-exit-reason:libvirt is not installed on this node (test)",
                "{action}"
            );
        }
    }

    #[test]
    fn without_libvirt_a_guest_on_another_host_is_never_reported_stopped() {
        for uri in ["qemu+ssh://root@h2/system", "qemu+tcp://h2:16509/system"] {
            let env = [CONFIG, ("OCF_RESKEY_hypervisor", uri)];
            for action in ["stop", "monitor", "status"] {
                let (code, _, err) = run(no_libvirt(), &["VirtualDomain", action], &env);
                assert_eq!(code, 1, "{action} {uri}: {err}");
                assert!(err.contains("cannot be known here"), "{err}");
                assert!(err.contains("h2"), "{err}");
            }
            let (code, _, _) = run(no_libvirt(), &["VirtualDomain", "start"], &env);
            assert_eq!(code, 5, "start {uri}");
        }
        // libvirt's default URI, when it names a host, counts too
        let env = [CONFIG, ("LIBVIRT_DEFAULT_URI", "qemu+ssh://h3/system")];
        let (code, _, err) = run(no_libvirt(), &["VirtualDomain", "stop"], &env);
        assert_eq!(code, 1, "{err}");
        // local URIs: nothing runs here without libvirt
        for uri in [
            "qemu:///system",
            "qemu+unix:///system?socket=/run/x",
            "xen:///",
        ] {
            let env = [CONFIG, ("OCF_RESKEY_hypervisor", uri)];
            let (code, _, err) = run(no_libvirt(), &["VirtualDomain", "stop"], &env);
            assert_eq!(code, 0, "stop {uri}: {err}");
        }
    }

    #[test]
    fn without_libvirt_parameter_checks_still_answer() {
        let (code, _, err) = run(no_libvirt(), &["VirtualDomain", "validate-all"], &[CONFIG]);
        assert_eq!((code, err.as_str()), (0, ""));
        let (code, _, err) = run(no_libvirt(), &["VirtualDomain", "reload-agent"], &[CONFIG]);
        assert_eq!(code, 0, "{err}");
        let bad = [CONFIG, ("OCF_RESKEY_force_stop", "maybe")];
        let (code, _, err) = run(no_libvirt(), &["VirtualDomain", "validate-all"], &bad);
        assert_eq!(code, 6, "{err}");
        assert!(err.contains("force_stop"), "{err}");
        let (code, _, _) = run(no_libvirt(), &["VirtualDomain", "start"], &bad);
        assert_eq!(code, 6);
        // A bad value never fails a stop.
        let (code, _, _) = run(no_libvirt(), &["VirtualDomain", "stop"], &bad);
        assert_eq!(code, 0);
    }

    #[test]
    fn with_a_missing_plugin_stop_and_monitors_fail_and_the_rest_is_not_installed() {
        for (action, env, expected) in [
            ("stop", &[CONFIG][..], 1),
            ("monitor", &[CONFIG], 1),
            ("monitor", &[CONFIG, RECURRING], 1),
            ("start", &[CONFIG], 5),
            ("migrate_to", &[CONFIG], 5),
            ("migrate_from", &[CONFIG], 5),
            ("validate-all", &[CONFIG, LEVEL10], 5),
            ("validate-all", &[CONFIG], 0),
        ] {
            let (code, _, err) = run(no_plugin(), &["VirtualDomain", action], env);
            assert_eq!(code, expected, "{action} {env:?}: {err}");
            if expected != 0 {
                assert!(err.contains("/x/libocf_agents.so"), "{action}: {err}");
            }
        }
    }

    #[test]
    fn the_plugin_is_looked_for_next_to_the_binary_then_in_the_library_directory() {
        let found = plugin_candidates(Some(Path::new("/build/target/release/VirtualDomain")));
        assert_eq!(
            found,
            [
                PathBuf::from("/build/target/release/libocf_agents.so"),
                PathBuf::from("/build/target/release/deps/libocf_agents.so"),
                Path::new(LIBDIR).join(PLUGIN_FILE)
            ]
        );
        assert_eq!(
            plugin_candidates(None),
            [Path::new(LIBDIR).join(PLUGIN_FILE)]
        );
    }
}
