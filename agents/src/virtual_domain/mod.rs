//! VirtualDomain: a libvirt domain as a cluster resource.
//!
//! A drop-in for ocf:heartbeat:VirtualDomain (same parameters, actions and exit codes;
//! the README lists where it deliberately differs). One libvirt connection per
//! invocation, every libvirt call bounded by the operation's deadline, and a fallback to
//! the guest's own process when libvirtd cannot be reached.
//!
//! Layers, each using only the ones below it:
//! - the actions: `start`, `stop`, `monitor`, `migrate` (migrate_to, migrate_from),
//!   `validate` (validate-all, reload-agent, and the host checks start makes);
//! - what several actions share: `health` (is our domain running and healthy),
//!   `definition` (config write-back, pools and networks), `uris` (migration URIs),
//!   `tools` (helper programs), `scripts` (monitor_scripts), `utilization`;
//! - [`Resource`] (this module): the typed parameters ([`params`]), the config file read
//!   within the deadline, and the domain's identity (from the config, else the state
//!   file of `identity` when it is this resource's);
//! - the seam: [`hypervisor`] (what an action may ask of libvirt and of the host), with
//!   the bounded libvirt implementation in [`libvirt`] and the guests' processes in
//!   [`process`]; the unit tests put a fake behind it;
//! - [`error`]: every failure, and the one conversion into an exit code and a reason.

mod definition;
mod description;
mod dl;
pub mod domain_xml;
pub mod error;
#[cfg(test)]
mod fake;
pub mod front;
mod health;
pub mod hypervisor;
mod identity;
pub mod libvirt;
mod migrate;
mod migrate_options;
mod monitor;
pub mod params;
pub mod plugin;
pub mod process;
mod raw;
mod scripts;
mod start;
mod stop;
#[cfg(test)]
mod tests_actions;
mod tools;
mod uris;
mod utilization;
mod validate;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ocf_common::regular_file::{self, ReadError};
use ocf_common::{Action, Agent, AgentDescription, Context, ExitCode, OcfError, OcfResult};

pub use description::{DESCRIPTION, MAN};
use domain_xml::DomainXml;
use error::Error;
use hypervisor::{Host, Hypervisor, LibvirtError};
use identity::Cached;
use params::Params;

/// What an action answers: an exit code, or the failure that [`Error`] turns into one.
pub type Answer = Result<ExitCode, Error>;

/// The VirtualDomain agent.
pub struct VirtualDomain;

impl Agent for VirtualDomain {
    fn description(&self) -> &'static AgentDescription {
        &DESCRIPTION
    }

    fn run(&self, ctx: &Context) -> OcfResult {
        act(&libvirt::LibvirtHost, ctx).map_err(OcfError::from)
    }
}

/// Runs one action on `host` (the real one, or a fake in the unit tests).
pub fn act<H: Host>(host: &H, ctx: &Context) -> Answer {
    match ctx.action {
        Action::Start => start::start(host, ctx),
        Action::Stop => stop::stop(host, ctx),
        Action::Monitor | Action::Status => monitor::monitor(host, ctx),
        Action::MigrateTo => migrate::migrate_to(host, ctx),
        Action::MigrateFrom => migrate::migrate_from(host, ctx),
        Action::ValidateAll => validate::validate_all(host, ctx),
        Action::ReloadAgent => validate::reload_agent(ctx),
        other => Err(Error::Unimplemented(other.name())),
    }
}

/// Why the config file could not be used.
#[derive(Clone, Debug)]
pub enum ConfigProblem {
    /// `config` is not set.
    Unset,
    /// The file cannot be read (missing, permissions, unmounted storage).
    Unreadable(String),
    /// The file is not a domain definition.
    Invalid(String),
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigProblem::Unset => f.write_str("parameter 'config' is not set"),
            ConfigProblem::Unreadable(why) | ConfigProblem::Invalid(why) => f.write_str(why),
        }
    }
}

/// The domain's identity: what libvirt knows it by (and what its qemu process is given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    /// Lookups go by this UUID whenever it is known: a domain of our name with another
    /// UUID is not ours.
    pub uuid: Option<String>,
    /// The UUID is the one libvirt assigned at start (the config has none), remembered in
    /// the state file; stop forgets it, since the next start gets a new one.
    pub uuid_assigned: bool,
}

/// Everything an action knows about its resource before talking to libvirt.
pub struct Resource<'a> {
    pub ctx: &'a Context,
    /// The parameters, typed.
    pub params: Params,
    /// The config file's text and what was read from it, when usable.
    pub config: Result<(String, DomainXml), ConfigProblem>,
    /// From the config, else from the state file.
    pub identity: Option<Identity>,
    pub state_path: Option<PathBuf>,
    pub cached: Cached,
}

impl<'a> Resource<'a> {
    pub fn load(ctx: &'a Context) -> Resource<'a> {
        let params = Params::parse(&ctx.params);
        if matches!(ctx.action, Action::Stop | Action::Monitor | Action::Status) {
            // Values these actions do not need never fail them (a monitor's 6 would stop
            // the resource everywhere); start, migrate_* and validate-all refuse them.
            for p in &params.problems {
                tracing::warn!("{}; {} goes on without it", p.reason(), ctx.action.name());
            }
        }
        let config = read_config(ctx, params.config.as_deref());
        let state_path = identity::path(ctx, params.config.as_deref());
        let cached = state_path
            .as_deref()
            .map(identity::load)
            .unwrap_or_default();
        let believable = believable(params.config.as_deref(), state_path.as_deref(), &cached);
        let identity = match &config {
            Ok((_, xml)) => {
                // A config without <uuid>: the UUID libvirt gave the domain at start,
                // if the cache is this resource's and names the same domain.
                let assigned = match (&xml.uuid, &believable) {
                    (None, Ok(())) if cached.get("name") == Some(xml.name.as_str()) => {
                        cached.get("uuid").map(str::to_string)
                    }
                    _ => None,
                };
                Some(Identity {
                    name: xml.name.clone(),
                    uuid_assigned: assigned.is_some(),
                    uuid: xml.uuid.clone().or(assigned),
                })
            }
            Err(problem) => match &believable {
                Ok(()) => cached.get("name").map(|name| {
                    tracing::warn!(domain = %name, "config unusable ({problem}); using the identity cached at start");
                    Identity {
                        name: name.to_string(),
                        uuid: cached.get("uuid").map(str::to_string),
                        uuid_assigned: cached.get("uuid_assigned") == Some("1"),
                    }
                }),
                Err(why) => {
                    if cached.get("name").is_some() {
                        tracing::warn!("config unusable ({problem}); the cached identity is not used: {why}");
                    }
                    None
                }
            },
        };
        Resource {
            ctx,
            params,
            config,
            identity,
            state_path,
            cached,
        }
    }

    /// The config, or the error an action that needs it returns: 5 (not installed
    /// here), as the shell agent answers for a missing or nameless config; 6 when it is
    /// not set at all.
    pub fn require_config(&self) -> Result<&(String, DomainXml), Error> {
        self.config.as_ref().map_err(|p| Error::Config(p.clone()))
    }

    /// The identity of an action that needs one: from the config, else the config's
    /// problem.
    pub fn require_identity(&self) -> Result<Identity, Error> {
        match &self.identity {
            Some(id) => Ok(id.clone()),
            None => Err(self
                .require_config()
                .err()
                .unwrap_or_else(|| Error::Failed("internal error: no domain identity".into()))),
        }
    }

    /// The hypervisor URI parameter (`None`: libvirt's default).
    pub fn uri(&self) -> Option<&str> {
        self.params.hypervisor.as_deref()
    }

    /// The URI libvirt is asked for: the parameter, else `LIBVIRT_DEFAULT_URI` (`None`:
    /// libvirt's own choice, unknown to us).
    pub fn effective_uri(&self) -> Option<&str> {
        self.uri()
            .or_else(|| self.ctx.env.var("LIBVIRT_DEFAULT_URI"))
            .filter(|u| !u.trim().is_empty())
    }

    /// Whether libvirt's answer may be replaced by the guest's own process, and the
    /// process evidence of this host if so (`Err`: why there is none).
    pub fn processes<H: Host>(&self, host: &H) -> Result<process::Processes, String> {
        process::is_authoritative(self.effective_uri())?;
        Ok(host.processes())
    }

    /// Opens the hypervisor connection, bounded by `until`.
    pub fn connect<H: Host>(&self, host: &H, until: Instant) -> Result<H::Hv, LibvirtError> {
        let t = Instant::now();
        let hv = host.connect(self.uri(), until)?;
        tracing::debug!(
            uri = hv.uri(),
            ms = t.elapsed().as_millis() as u64,
            "connected"
        );
        Ok(hv)
    }

    /// Remembers `identity` (and anything else in `update`) in the state file.
    pub fn remember(&self, update: impl FnOnce(&mut Cached)) {
        let Some(path) = &self.state_path else { return };
        let mut new = self.cached.clone();
        if let Some(id) = &self.identity {
            new.set("name", Some(&id.name));
            new.set("uuid", id.uuid.as_deref());
            new.set("uuid_assigned", id.uuid_assigned.then_some("1"));
            // Written by older versions; the process fallback no longer uses it.
            new.set("emulator", None);
        }
        if let Some(cfg) = &self.params.config {
            new.set("config", Some(cfg));
        }
        update(&mut new);
        identity::store(path, &self.cached, &new);
    }
}

/// Whether the state file's identity belongs to this resource as configured now: written
/// for the same `config` path, and in a place only this user could have written it.
fn believable(
    config: Option<&str>,
    state_path: Option<&std::path::Path>,
    cached: &Cached,
) -> Result<(), String> {
    let path = state_path.ok_or("no state file")?;
    identity::trusted(path)?;
    let config = config.unwrap_or("");
    match cached.get("config") {
        Some(c) if c == config => Ok(()),
        Some(c) => Err(format!(
            "it was written for config {c}, not {config} (another resource of the same name?)"
        )),
        None => Err("it names no config".into()),
    }
}

/// The largest config file read: a domain definition is a few KiB.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// How the config file is read: a symlink is followed (configs often live on shared
/// storage behind one), but only a regular file of at most [`MAX_CONFIG_BYTES`] is read.
pub const CONFIG_RULES: regular_file::Rules = regular_file::Rules {
    max_bytes: MAX_CONFIG_BYTES,
    follow_symlinks: true,
};

/// The longest wait for the config file: it may sit on storage that hangs (NFS), and the
/// action must keep most of its time for the domain (a stop goes on with the cached
/// identity).
const CONFIG_READ_BUDGET: Duration = Duration::from_secs(5);

/// When to stop waiting for the config file in an action that must be done by `until`.
pub fn config_read_until(until: Instant) -> Instant {
    let now = Instant::now();
    now + CONFIG_READ_BUDGET.min(until.saturating_duration_since(now) / 4)
}

fn read_config(ctx: &Context, path: Option<&str>) -> Result<(String, DomainXml), ConfigProblem> {
    let path = path.ok_or(ConfigProblem::Unset)?;
    let until = config_read_until(ctx.deadline.end());
    let bytes = match regular_file::read_within(Path::new(path), CONFIG_RULES, until) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            return Err(ConfigProblem::Unreadable(format!(
                "Configuration file {path} does not exist"
            )))
        }
        Err(e @ (ReadError::Io(_) | ReadError::TimedOut { .. })) => {
            return Err(ConfigProblem::Unreadable(format!(
                "Configuration file {path} {e}"
            )))
        }
        Err(e @ (ReadError::NotRegular { .. } | ReadError::TooLarge { .. })) => {
            return Err(ConfigProblem::Invalid(format!(
                "Configuration file {path} {e}"
            )))
        }
    };
    let text = String::from_utf8(bytes).map_err(|e| {
        ConfigProblem::Invalid(format!(
            "Configuration file {path} is not valid UTF-8 (at byte {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    let xml = domain_xml::parse(&text).map_err(|why| {
        ConfigProblem::Invalid(format!(
            "Configuration file {path} is not a usable domain definition: {why}"
        ))
    })?;
    Ok((text, xml))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ctx(config: &Path) -> Context {
        let env = ocf_common::OcfEnv::from_pairs([("OCF_RESKEY_config", config.to_str().unwrap())]);
        let params = ocf_common::Params::parse(&DESCRIPTION, &env);
        let deadline = ocf_common::Deadline::new(Instant::now(), Duration::from_secs(20));
        Context::new(Action::Monitor, env, params, deadline)
    }

    fn read(config: &Path) -> Result<(String, DomainXml), ConfigProblem> {
        read_config(&ctx(config), config.to_str())
    }

    fn problem(config: &Path) -> ConfigProblem {
        read(config).expect_err("the config must be refused")
    }

    const XML: &str = "<domain type='qemu'><name>vm1</name></domain>";

    #[test]
    fn a_usable_config_is_read_also_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vm1.xml");
        std::fs::write(&file, XML).unwrap();
        let (text, xml) = read(&file).unwrap();
        assert_eq!((text.as_str(), xml.name.as_str()), (XML, "vm1"));
        let link = dir.path().join("link.xml");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read(&link).unwrap().1.name, "vm1");
    }

    #[test]
    fn a_missing_config_does_not_exist() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("none.xml");
        let ConfigProblem::Unreadable(why) = problem(&p) else {
            panic!("not Unreadable");
        };
        assert_eq!(
            why,
            format!("Configuration file {} does not exist", p.display())
        );
    }

    #[test]
    fn a_fifo_config_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fifo.xml");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let t = Instant::now();
        let ConfigProblem::Invalid(why) = problem(&p) else {
            panic!("not Invalid");
        };
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert_eq!(
            why,
            format!(
                "Configuration file {} is a FIFO, not a regular file",
                p.display()
            )
        );
    }

    #[test]
    fn a_directory_or_an_oversized_config_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ConfigProblem::Invalid(why) = problem(dir.path()) else {
            panic!("not Invalid");
        };
        assert!(why.ends_with("is a directory, not a regular file"), "{why}");
        let big = dir.path().join("big.xml");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_CONFIG_BYTES + 1)
            .unwrap();
        let ConfigProblem::Invalid(why) = problem(&big) else {
            panic!("not Invalid");
        };
        assert!(
            why.ends_with(&format!(
                "is larger than 4 MiB ({} bytes)",
                MAX_CONFIG_BYTES + 1
            )),
            "{why}"
        );
    }

    #[test]
    fn an_invalid_utf8_config_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("latin1.xml");
        std::fs::write(&p, b"<domain><name>caf\xe9</name></domain>").unwrap();
        let ConfigProblem::Invalid(why) = problem(&p) else {
            panic!("not Invalid");
        };
        assert_eq!(
            why,
            format!(
                "Configuration file {} is not valid UTF-8 (at byte 17)",
                p.display()
            )
        );
        // It fails the actions that need the file with ERR_INSTALLED, as a bad file does.
        assert_eq!(
            Error::Config(ConfigProblem::Invalid(why)).code(),
            ExitCode::ErrInstalled
        );
    }

    #[test]
    fn the_config_read_keeps_most_of_the_time_for_the_action() {
        let now = Instant::now();
        let end = config_read_until(now + Duration::from_secs(8));
        assert!(end <= now + Duration::from_secs(2) + Duration::from_millis(50));
        let end = config_read_until(Instant::now() + Duration::from_secs(100));
        assert!(end <= Instant::now() + CONFIG_READ_BUDGET);
    }
}
