//! monitor (and status): is the domain running here, and healthy?
//!
//! running, idle (blocked), paused, in shutdown → 0; shut off or unknown to libvirt → 7;
//! crashed, pmsuspended → 1 with the state in the reason. Then the monitor_scripts, and
//! the utilization published when it changed. When libvirt cannot be reached the
//! guest's own process answers, for a local qemu:///system guest only: alive → 0 (with a
//! warning); gone, undecidable, or another kind of URI → 1 with the reason; never 7.

use std::time::{Duration, Instant};

use ocf_common::{Context, ExitCode, OcfError, OcfResult};

use super::libvirt::{bounded, DomainState, Guest, Hypervisor, LibvirtError, Seen};
use super::process::{self, Evidence};
use super::{libvirt_error, scripts, utilization, ConfigProblem, Identity, Resource};

/// Time kept at the end of a monitor for the process fallback and the reply: 1.5 s, or a
/// quarter of a shorter timeout (libvirt is always asked first).
fn fallback_reserve(span: Duration) -> Duration {
    (span / 4).min(Duration::from_millis(1500))
}

pub fn monitor(ctx: &Context) -> OcfResult {
    let res = Resource::load(ctx);
    let Some(id) = res.identity.clone() else {
        // Nothing was ever started here that we could name.
        return match &res.config {
            Err(ConfigProblem::Invalid(why)) if !ctx.is_probe() => {
                Err(OcfError::installed(why.clone()))
            }
            Err(problem) => {
                if !ctx.is_probe() {
                    tracing::warn!("{problem:?} and no cached identity: not running");
                }
                Ok(ExitCode::NotRunning)
            }
            Ok(_) => unreachable_identity(),
        };
    };
    let until = ctx
        .deadline
        .reserving(fallback_reserve(ctx.deadline.span()))
        .end();
    let hv = match res.connect(until) {
        Ok(hv) => hv,
        Err(e) if e.is_unreachable() => return from_process(&res, &id, e),
        Err(e) => return Err(libvirt_error(e)),
    };
    match full_check(&res, &hv, &id, until) {
        Err(Failure::Libvirt(e)) if e.is_unreachable() => from_process(&res, &id, e),
        Err(Failure::Libvirt(e)) => Err(libvirt_error(e)),
        Err(Failure::Ocf(e)) => Err(e),
        Ok(code) => Ok(code),
    }
}

/// The identity is always known when the config parsed: this is never reached.
fn unreachable_identity() -> OcfResult {
    Err(OcfError::generic(
        "internal error: config parsed without an identity",
    ))
}

/// What can stop a check.
pub enum Failure {
    Libvirt(LibvirtError),
    Ocf(OcfError),
}

impl From<LibvirtError> for Failure {
    fn from(e: LibvirtError) -> Failure {
        Failure::Libvirt(e)
    }
}

/// The domain's state mapped to the monitor's answer (`Ok(Some(guest))`: running).
pub fn state_check(
    hv: &Hypervisor,
    id: &Identity,
    until: Instant,
    probe: bool,
) -> Result<Result<Guest, ExitCode>, Failure> {
    match hv.state_of(id, until)? {
        Seen::Ours(g, s) if s.is_active() => Ok(Ok(g)),
        Seen::Ours(_, DomainState::ShutOff) | Seen::Absent => {
            if !probe {
                tracing::info!(domain = %id.name, "domain is not running");
            }
            Ok(Err(ExitCode::NotRunning))
        }
        Seen::Foreign { uuid } => {
            tracing::warn!(
                domain = %id.name,
                "libvirt's domain {} has UUID {uuid}, not this resource's {}: not ours, so ours is not running",
                id.name,
                id.uuid.as_deref().unwrap_or("?")
            );
            Ok(Err(ExitCode::NotRunning))
        }
        Seen::Ours(_, s) => Err(Failure::Ocf(OcfError::generic(format!(
            "domain {} is {}",
            id.name,
            s.describe()
        )))),
    }
}

/// The whole monitor against an open connection: state, monitor_scripts, utilization,
/// identity cache. Shared by monitor, start and migrate_from.
pub fn full_check(
    res: &Resource,
    hv: &Hypervisor,
    id: &Identity,
    until: Instant,
) -> Result<ExitCode, Failure> {
    let guest = match state_check(hv, id, until, res.ctx.is_probe())? {
        Ok(g) => g,
        Err(code) => return Ok(code),
    };
    if let Some(list) = res.ctx.params.str("monitor_scripts") {
        scripts::run_all(list, &id.name, until).map_err(Failure::Ocf)?;
    }
    let published = utilization::update(res, hv, guest, until);
    res.remember(|c| {
        for (k, v) in published {
            c.set(&k, v.as_deref());
        }
    });
    Ok(ExitCode::Success)
}

/// libvirt cannot answer: the guest's own process does, where it can be authoritative.
/// Never 7: without libvirt, "not running" is not known, only "no process" (an error).
fn from_process(res: &Resource, id: &Identity, e: LibvirtError) -> OcfResult {
    let host = res
        .processes()
        .map_err(|why| OcfError::generic(format!("{e}; {why}")))?;
    // Reading a process's command line can block (a process stuck with its memory map
    // locked): the scan is bounded like a libvirt call, by the action's deadline (the
    // reserve kept for the fallback is for this).
    let (guest, until) = (id.clone(), res.ctx.deadline.end());
    let found = bounded(until, "scan /proc", move || host.find(&guest))
        .unwrap_or_else(|_| Evidence::Unknown("reading /proc did not finish in time".into()));
    match found {
        Evidence::Alive(pids) => {
            let pids = process::join_pids(&pids);
            tracing::warn!(domain = %id.name, pid = %pids, "{e}; its hypervisor process {pids} is alive: reporting it running");
            Ok(ExitCode::Success)
        }
        Evidence::Gone => Err(OcfError::generic(format!(
            "{e}; no running hypervisor process found for domain {}",
            id.name
        ))),
        Evidence::Unknown(why) => Err(OcfError::generic(format!(
            "{e}; cannot tell whether domain {} runs: {why}",
            id.name
        ))),
    }
}

/// Repeats the full check until it succeeds or `until` passes (start, migrate_from).
/// A connection that broke (libvirtd restarted) is opened anew and the wait goes on.
pub fn wait_until_healthy(
    res: &Resource,
    hv: &mut Hypervisor,
    id: &Identity,
    until: Instant,
    what: &str,
) -> OcfResult {
    let mut last = String::new();
    loop {
        let why = match full_check(res, hv, id, until) {
            Ok(ExitCode::Success) => return Ok(ExitCode::Success),
            Ok(code) => format!("domain {} is not running ({})", id.name, code.name()),
            Err(Failure::Ocf(e)) => e.reason().to_string(),
            Err(Failure::Libvirt(e)) if e.is_unreachable() => {
                tracing::warn!(domain = %id.name, "{e}; reconnecting");
                match res.connect(until) {
                    Ok(fresh) => {
                        *hv = fresh;
                        e.to_string()
                    }
                    Err(again) => again.to_string(),
                }
            }
            Err(Failure::Libvirt(e)) => e.to_string(),
        };
        // A check cut short by the deadline says less than the last complete one
        // (a failing monitor script would be reported as merely "did not finish").
        if last.is_empty() || Instant::now() < until {
            last = why;
        }
        if Instant::now() + Duration::from_millis(200) >= until {
            return Err(OcfError::generic(format!("{what} timed out: {last}")));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
