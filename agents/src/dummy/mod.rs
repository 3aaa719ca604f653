//! Dummy: a resource that only keeps a state file, for testing clusters.
//!
//! The union of ocf:heartbeat:Dummy and ocf:pacemaker:Dummy; where they disagree it
//! behaves as pacemaker's (shared/notes/decisions.md): state under HA_VARRUN with the
//! clone suffix stripped for anonymous clones, monitor check levels 10/20/30/40,
//! reload-agent = start, validate-all at level 10 checks the directories. It keeps
//! heartbeat's `reload` action too.

mod description;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ocf_common::statefile;
use ocf_common::{Action, Agent, AgentDescription, Context, ExitCode, OcfError, OcfResult};

pub use description::{DESCRIPTION, MAN};

/// The Dummy agent.
pub struct Dummy;

impl Agent for Dummy {
    fn description(&self) -> &'static AgentDescription {
        &DESCRIPTION
    }

    fn run(&self, ctx: &Context) -> OcfResult {
        dump_env(ctx);
        let state = match state_path(ctx) {
            Some(p) => p,
            // Without a state file name there is nothing we could have started.
            None if ctx.action == Action::Stop => return Ok(ExitCode::Success),
            None if ctx.is_probe() => return Ok(ExitCode::NotRunning),
            None => {
                return Err(OcfError::configured(
                    "neither parameter 'state' nor OCF_RESOURCE_INSTANCE is set",
                ))
            }
        };
        let dummy = Instance { ctx, state };
        match ctx.action {
            Action::Start => dummy.start(),
            Action::Stop => dummy.stop(),
            Action::Monitor => dummy.monitor(Serialize::Check),
            Action::MigrateTo => {
                tracing::info!(
                    "migrating {} to {}",
                    ctx.instance(),
                    ctx.env.migrate_target().unwrap_or("?")
                );
                dummy.stop()
            }
            Action::MigrateFrom => {
                tracing::info!(
                    "migrating {} from {}",
                    ctx.instance(),
                    ctx.env.migrate_source().unwrap_or("?")
                );
                dummy.start()
            }
            Action::Reload => {
                tracing::info!("reloading {} (service)", ctx.instance());
                Ok(ExitCode::Success)
            }
            Action::ReloadAgent => {
                tracing::info!(
                    "reloading {} (agent): fake={}",
                    ctx.instance(),
                    ctx.params.str("fake").unwrap_or("")
                );
                dummy.start()
            }
            Action::ValidateAll => dummy.validate(),
            other => Err(OcfError::unimplemented(format!(
                "{} is not implemented",
                other.name()
            ))),
        }
    }
}

/// `state`, or the default of the provider the cluster names in
/// `OCF_RESOURCE_PROVIDER`, so that a Dummy the shell agent started is still found after
/// the swap: heartbeat's `${HA_RSCTMP}/Dummy-<instance>.state`, else pacemaker's
/// `${HA_VARRUN}/Dummy-<instance>.state` (clone suffix stripped for anonymous clones).
pub fn state_path(ctx: &Context) -> Option<PathBuf> {
    if let Some(s) = ctx.params.str("state") {
        return Some(PathBuf::from(s));
    }
    if ctx.env.var("OCF_RESOURCE_PROVIDER") == Some("heartbeat") {
        let instance = ctx.env.instance()?;
        return Some(ctx.env.rsctmp().join(format!("Dummy-{instance}.state")));
    }
    let instance = ctx.env.instance_for_state()?;
    Some(ctx.env.varrun().join(format!("Dummy-{instance}.state")))
}

#[derive(Copy, Clone, PartialEq, Eq)]
enum Serialize {
    /// A monitor requested by the caller: overlapping monitors are an error.
    Check,
    /// A monitor made on behalf of stop: never refused.
    Force,
}

struct Instance<'a> {
    ctx: &'a Context,
    state: PathBuf,
}

impl Instance<'_> {
    fn serialized_marker(&self) -> PathBuf {
        let mut s = self.state.clone().into_os_string();
        s.push(".serialized");
        PathBuf::from(s)
    }

    fn fails_start_here(&self) -> bool {
        let Some(target) = self.ctx.params.str("fail_start_on") else {
            return false;
        };
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        host == target || self.ctx.env.on_node() == Some(target)
    }

    fn start(&self) -> OcfResult {
        if self.monitor(Serialize::Check)? != ExitCode::Success {
            statefile::write_atomic(&self.state, b"", statefile::STATE_FILE_MODE).map_err(|e| {
                OcfError::generic(format!(
                    "cannot create state file {}: {e}",
                    self.state.display()
                ))
            })?;
        }
        if self.fails_start_here() {
            return Err(OcfError::generic(format!(
                "start fails on this node as asked by fail_start_on={}",
                self.ctx.params.str("fail_start_on").unwrap_or("")
            )));
        }
        Ok(ExitCode::Success)
    }

    fn stop(&self) -> OcfResult {
        // A stop is never refused for an overlapping monitor: it must always succeed.
        let _ = self.monitor(Serialize::Force);
        for path in [&self.state, &self.serialized_marker()] {
            statefile::remove(path)
                .map_err(|e| OcfError::generic(format!("cannot remove {}: {e}", path.display())))?;
        }
        Ok(ExitCode::Success)
    }

    /// Sleeps `op_sleep`, within the deadline; detects overlapping monitors through a
    /// marker file as pacemaker's Dummy does (Pacemaker must never run two at once).
    fn op_sleep(&self, mode: Serialize) -> OcfResult<()> {
        let sleep = op_sleep(self.ctx);
        if sleep.is_zero() {
            return Ok(());
        }
        let marker = self.serialized_marker();
        if mode == Serialize::Check && statefile::is_present(&marker) {
            return Err(OcfError::generic(format!(
                "alternate universe collision: {} exists, another monitor is running",
                marker.display()
            )));
        }
        let _ = statefile::write_atomic(&marker, b"", statefile::STATE_FILE_MODE);
        let slept = self.sleep_within_deadline(sleep, "op_sleep");
        let _ = statefile::remove(&marker);
        slept
    }

    fn sleep_within_deadline(&self, length: Duration, what: &str) -> OcfResult<()> {
        let deadline = self.ctx.deadline;
        if length > deadline.remaining() {
            deadline.sleep(deadline.remaining());
            return Err(OcfError::generic(format!(
                "{what} of {:.1}s does not fit in the {}s operation timeout",
                length.as_secs_f64(),
                deadline.timeout().as_secs()
            )));
        }
        std::thread::sleep(length);
        Ok(())
    }

    fn monitor(&self, mode: Serialize) -> OcfResult {
        self.op_sleep(mode)?;
        if !statefile::is_present(&self.state) {
            if !self.ctx.is_probe() && self.ctx.action == Action::Monitor {
                tracing::info!("no state file {}: not running", self.state.display());
            }
            return Ok(ExitCode::NotRunning);
        }
        // Check levels only apply to a monitor the caller asked for.
        if self.ctx.action != Action::Monitor {
            return Ok(ExitCode::Success);
        }
        match self.ctx.env.check_level() {
            10 => {
                // A slow monitor, for testing timeouts.
                self.sleep_within_deadline(Duration::from_secs(30), "the level-10 monitor delay")?;
                Ok(ExitCode::Success)
            }
            20 if random_byte() % 5 == 1 => Err(OcfError::generic("smoke detected near CPU fan")),
            30 => Err(OcfError::generic("hyperdrive quota reached")),
            40 => self.code_from_state_file(),
            _ => Ok(ExitCode::Success),
        }
    }

    /// Level 40: the state file holds the exit code the monitor returns.
    fn code_from_state_file(&self) -> OcfResult {
        let text = statefile::read_string(&self.state)
            .map_err(|e| OcfError::generic(format!("cannot read {}: {e}", self.state.display())))?
            .unwrap_or_default();
        let text = text.trim();
        if text.is_empty() {
            return Ok(ExitCode::Success);
        }
        let code = text
            .parse::<i32>()
            .ok()
            .and_then(ExitCode::from_code)
            .ok_or_else(|| {
                OcfError::generic(format!("state file holds '{text}', not an OCF exit code"))
            })?;
        match code {
            ExitCode::Success | ExitCode::NotRunning => Ok(code),
            _ => Err(OcfError::new(
                code,
                format!("CPU ejected. Observed leaving the Kronosnet galaxy at {text} times the speed of light."),
            )),
        }
    }

    fn validate(&self) -> OcfResult {
        // Parameter types (op_sleep included) were checked before the action ran.
        if self.ctx.env.check_level() >= 10 {
            usable_dir_of(&self.state, "state")?;
            if let Some(envfile) = self.ctx.params.str("envfile") {
                usable_dir_of(Path::new(envfile), "envfile")?;
            }
        }
        Ok(ExitCode::Success)
    }
}

/// The directory of `file` exists and this user can create files in it (else 2: the
/// parameter is wrong for this host).
fn usable_dir_of(file: &Path, param: &str) -> OcfResult<()> {
    use nix::unistd::{access, AccessFlags};
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(OcfError::args(format!(
            "parameter '{param}': directory {} does not exist",
            dir.display()
        )));
    }
    access(dir, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|e| {
        OcfError::args(format!(
            "parameter '{param}': directory {} is not writable: {e}",
            dir.display()
        ))
    })
}

/// `op_sleep` as a duration (validated by the parameter's type; 0 when unset).
fn op_sleep(ctx: &Context) -> Duration {
    ctx.params.time("op_sleep").unwrap_or_default()
}

fn random_byte() -> u8 {
    let mut b = [0u8; 1];
    match std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
    {
        Ok(()) => b[0],
        Err(_) => {
            (SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .subsec_nanos()
                & 0xff) as u8
        }
    }
}

/// `envfile`: append the action and the sorted environment, for tests that need to see
/// what the cluster passed.
fn dump_env(ctx: &Context) {
    let Some(path) = ctx.params.str("envfile") else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut text = format!(
        "### {} @ {}.{:03} ###\n",
        ctx.action.name(),
        now.as_secs(),
        now.subsec_millis()
    );
    for (k, v) in ctx.env.all() {
        text.push_str(&format!("{k}={v}\n"));
    }
    text.push_str("###\n");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()));
    if let Err(e) = written {
        tracing::warn!("cannot append to envfile {path}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocf_common::{Action, Deadline, OcfEnv, Params};

    fn path(pairs: &[(&str, &str)]) -> Option<PathBuf> {
        let env = OcfEnv::from_pairs(pairs.iter().copied());
        let params = Params::parse(&DESCRIPTION, &env);
        let deadline = Deadline::new(std::time::Instant::now(), Duration::from_secs(20));
        state_path(&Context::new(Action::Monitor, env, params, deadline))
    }

    #[test]
    fn the_default_state_file_is_the_one_of_the_provider_the_cluster_names() {
        let base = [
            ("OCF_RESOURCE_INSTANCE", "d1:2"),
            ("OCF_RESKEY_CRM_meta_globally_unique", "false"),
            ("HA_RSCTMP", "/run/ra"),
            ("HA_VARRUN", "/var/run"),
        ];
        // pacemaker's Dummy (and any other provider name): HA_VARRUN, clone suffix off.
        for provider in [None, Some("pacemaker"), Some("rust")] {
            let mut pairs = base.to_vec();
            if let Some(p) = provider {
                pairs.push(("OCF_RESOURCE_PROVIDER", p));
            }
            assert_eq!(
                path(&pairs),
                Some(PathBuf::from("/var/run/Dummy-d1.state")),
                "{provider:?}"
            );
        }
        // heartbeat's Dummy: HA_RSCTMP and the instance as given.
        let mut pairs = base.to_vec();
        pairs.push(("OCF_RESOURCE_PROVIDER", "heartbeat"));
        assert_eq!(
            path(&pairs),
            Some(PathBuf::from("/run/ra/Dummy-d1:2.state"))
        );
        // An explicit state wins for every provider.
        pairs.push(("OCF_RESKEY_state", "/tmp/s"));
        assert_eq!(path(&pairs), Some(PathBuf::from("/tmp/s")));
    }
}
