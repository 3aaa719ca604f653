//! Whether our domain runs and is healthy: the check behind monitor, and the wait of
//! start and migrate_from for it to pass.

use std::time::{Duration, Instant};

use ocf_common::ExitCode;

use super::error::Error;
use super::hypervisor::{DomainState, Host, Hypervisor, Seen};
use super::{scripts, utilization, Answer, Identity, Resource};

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
/// identity cache. Shared by monitor, start and migrate_from (`failure`: how a failing
/// monitor script is logged).
pub fn full_check<V: Hypervisor>(
    res: &Resource,
    hv: &V,
    id: &Identity,
    until: Instant,
    failure: scripts::Failure,
) -> Answer {
    let guest = match state_check(hv, id, until, res.ctx.is_probe())? {
        Ok(g) => g,
        Err(code) => return Ok(code),
    };
    scripts::run_all(&res.params.monitor_scripts, &id.name, until, failure)?;
    let published = utilization::update(res, hv, guest, until);
    res.remember(|c| {
        for (k, v) in published {
            c.set(&k, v.as_deref());
        }
    });
    Ok(ExitCode::Success)
}

/// Repeats the full check until it succeeds or `until` passes (start, migrate_from).
/// A connection that broke (libvirtd restarted) is opened anew and the wait goes on.
/// A guest that is not ready yet is normal here: each distinct reason is logged once, as
/// information, and only the last one is the answer when the deadline passes.
pub fn wait_until_healthy<H: Host>(
    host: &H,
    res: &Resource,
    hv: &mut H::Hv,
    id: &Identity,
    until: Instant,
    action: &'static str,
) -> Answer {
    let mut last = String::new();
    let mut logged = String::new();
    loop {
        let why = match full_check(res, hv, id, until, scripts::Failure::Expected) {
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
        if why != logged {
            tracing::info!(domain = %id.name, "{action}: not ready yet: {why}");
            logged.clone_from(&why);
        }
        if last.is_empty() || Instant::now() < until {
            last = why;
        }
        if Instant::now() + Duration::from_millis(200) >= until {
            return Err(Error::TimedOut { action, last });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
