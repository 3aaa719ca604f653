//! monitor (and status): is the domain running here, and healthy?
//!
//! running, idle (blocked), paused, in shutdown → 0; shut off or unknown to libvirt → 7;
//! crashed, pmsuspended → 1 with the state in the reason. Then the monitor_scripts, and
//! the utilization published when it changed. When libvirt cannot be reached the
//! guest's own process answers, for a local qemu:///system guest only: alive → 0 (with a
//! warning); gone, undecidable, or another kind of URI → 1 with the reason; never 7.

use std::time::{Duration, Instant};

use ocf_common::{Context, ExitCode};

use super::error::Error;
use super::hypervisor::{DomainState, Host, Hypervisor, LibvirtError, Seen};
use super::libvirt::bounded;
use super::process::{self, Evidence};
use super::{scripts, utilization, Answer, ConfigProblem, Identity, Resource};

/// Time kept at the end of a monitor for the process fallback and the reply: 1.5 s, or a
/// quarter of a shorter timeout (libvirt is always asked first).
fn fallback_reserve(span: Duration) -> Duration {
    (span / 4).min(Duration::from_millis(1500))
}

pub fn monitor<H: Host>(host: &H, ctx: &Context) -> Answer {
    let res = Resource::load(ctx);
    let Some(id) = res.identity.clone() else {
        // Nothing was ever started here that we could name.
        return match &res.config {
            Err(ConfigProblem::Invalid(why)) if !ctx.is_probe() => {
                Err(Error::Config(ConfigProblem::Invalid(why.clone())))
            }
            Err(problem) => {
                if !ctx.is_probe() {
                    tracing::warn!("{problem:?} and no cached identity: not running");
                }
                Ok(ExitCode::NotRunning)
            }
            Ok(_) => Err(Error::Failed(
                "internal error: config parsed without an identity".into(),
            )),
        };
    };
    let until = ctx
        .deadline
        .reserving(fallback_reserve(ctx.deadline.span()))
        .end();
    let hv = match res.connect(host, until) {
        Ok(hv) => hv,
        Err(e) if e.is_unreachable() => return from_process(host, &res, &id, e),
        Err(e) => return Err(e.into()),
    };
    match full_check(&res, &hv, &id, until) {
        Err(Error::Libvirt { doing: None, error }) if error.is_unreachable() => {
            from_process(host, &res, &id, error)
        }
        other => other,
    }
}

/// The domain's state mapped to the monitor's answer (`Ok(Ok(guest))`: running).
pub fn state_check<V: Hypervisor>(
    hv: &V,
    id: &Identity,
    until: Instant,
    probe: bool,
) -> Result<Result<V::Guest, ExitCode>, Error> {
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
        Seen::Ours(_, state) => Err(Error::State {
            name: id.name.clone(),
            state,
        }),
    }
}

/// The whole monitor against an open connection: state, monitor_scripts, utilization,
/// identity cache. Shared by monitor, start and migrate_from.
pub fn full_check<V: Hypervisor>(res: &Resource, hv: &V, id: &Identity, until: Instant) -> Answer {
    let guest = match state_check(hv, id, until, res.ctx.is_probe())? {
        Ok(g) => g,
        Err(code) => return Ok(code),
    };
    scripts::run_all(&res.params.monitor_scripts, &id.name, until)?;
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
fn from_process<H: Host>(host: &H, res: &Resource, id: &Identity, e: LibvirtError) -> Answer {
    let procs = res.processes(host).map_err(|why| Error::Unproven {
        error: e.clone(),
        why,
    })?;
    // Reading a process's command line can block (a process stuck with its memory map
    // locked): the scan is bounded like a libvirt call, by the action's deadline (the
    // reserve kept for the fallback is for this).
    let (guest, until) = (id.clone(), res.ctx.deadline.end());
    let found = bounded(until, "scan /proc", move || procs.find(&guest))
        .unwrap_or_else(|_| Evidence::Unknown("reading /proc did not finish in time".into()));
    match found {
        Evidence::Alive(pids) => {
            let pids = process::join_pids(&pids);
            tracing::warn!(domain = %id.name, pid = %pids, "{e}; its hypervisor process {pids} is alive: reporting it running");
            Ok(ExitCode::Success)
        }
        Evidence::Gone => Err(Error::Unproven {
            error: e,
            why: format!("no running hypervisor process found for domain {}", id.name),
        }),
        Evidence::Unknown(why) => Err(Error::Unproven {
            error: e,
            why: format!("cannot tell whether domain {} runs: {why}", id.name),
        }),
    }
}

/// Repeats the full check until it succeeds or `until` passes (start, migrate_from).
/// A connection that broke (libvirtd restarted) is opened anew and the wait goes on.
pub fn wait_until_healthy<H: Host>(
    host: &H,
    res: &Resource,
    hv: &mut H::Hv,
    id: &Identity,
    until: Instant,
    action: &'static str,
) -> Answer {
    let mut last = String::new();
    loop {
        let why = match full_check(res, hv, id, until) {
            Ok(ExitCode::Success) => return Ok(ExitCode::Success),
            Ok(code) => format!("domain {} is not running ({})", id.name, code.name()),
            Err(Error::Libvirt { error, .. }) if error.is_unreachable() => {
                tracing::warn!(domain = %id.name, "{error}; reconnecting");
                match res.connect(host, until) {
                    Ok(fresh) => {
                        *hv = fresh;
                        error.to_string()
                    }
                    Err(again) => again.to_string(),
                }
            }
            Err(e) => e.reason(),
        };
        // A check cut short by the deadline says less than the last complete one
        // (a failing monitor script would be reported as merely "did not finish").
        if last.is_empty() || Instant::now() < until {
            last = why;
        }
        if Instant::now() + Duration::from_millis(200) >= until {
            return Err(Error::TimedOut { action, last });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
