//! stop: the domain is not running here when this returns 0.
//!
//! Already stopped or unknown → 0. `force_stop` → destroy at once. `snapshot` → save the
//! memory image (which stops it). Otherwise ask the guest to shut down (shutdown_mode
//! applied), wait for libvirt's STOPPED lifecycle event, and leave an explicit budget
//! at the end of the timeout for the escalation: destroy (graceful, then forced), and,
//! if libvirt does not answer, the guest's process is ended directly.

use std::time::{Duration, Instant};

use ocf_common::{Context, Deadline, ExitCode};

use super::definition::save_config;
use super::error::Error;
use super::hypervisor::{
    bounded, DomainState, Host, Hypervisor, LibvirtError, Seen, EVENT_STOPPED,
};
use super::process;
use super::{Answer, Identity, Resource};

/// The part of a stop's libvirt time kept for destroying the domain after a graceful
/// shutdown did not finish: a third of it, at most 20 seconds (libvirt's own destroy may
/// take over 10 s for a busy guest). A share, not a fixed amount: however short the
/// timeout, the graceful phase before it gets a real attempt.
pub fn destroy_budget(span: Duration) -> Duration {
    (span / 3).min(Duration::from_secs(20))
}

/// The part kept for ending the guest's process ourselves when libvirt hangs: a sixth of
/// the stop's time, at most 5 s, so that libvirt is always asked first.
fn kill_budget(span: Duration) -> Duration {
    (span / 6).min(Duration::from_secs(5))
}

/// Pause between attempts to reach a libvirtd that went away.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

pub fn stop<H: Host>(host: &H, ctx: &Context) -> Answer {
    let t = Instant::now();
    let mut res = Resource::load(ctx);
    let Some(id) = res.identity.clone() else {
        tracing::info!("no usable config and no cached identity: nothing of ours can be running");
        return Ok(ExitCode::Success);
    };
    let deadline = ctx.deadline;
    // Every libvirt call of the stop ends early enough to kill the process ourselves.
    let libvirt_until = deadline.reserving(kill_budget(deadline.span()));
    let mut lost: Option<LibvirtError> = None;
    let result = loop {
        let attempt = match res.connect(host, libvirt_until.end()) {
            Ok(hv) => stop_with_libvirt(&res, &hv, &id, libvirt_until),
            Err(e) => Err(e),
        };
        match attempt {
            // libvirtd restarting, or its connection broke: connect again and carry on
            // (a graceful shutdown in progress keeps its own deadline). Only a libvirt
            // unreachable into the kill budget makes us end the process ourselves; a
            // guest whose process is provably gone is stopped whatever libvirtd does.
            Err(e) if e.is_unreachable() => {
                if process_gone(host, &res, &id, libvirt_until.end())
                    || !libvirt_until.sleep(RECONNECT_PAUSE)
                {
                    break Err(e);
                }
                tracing::warn!(domain = %id.name, "{e}; connecting again");
                lost = Some(e);
            }
            // The libvirt time ran out while reconnecting: libvirt stayed unreachable.
            Err(LibvirtError::OutOfTime { op }) => {
                break Err(lost.take().unwrap_or(LibvirtError::OutOfTime { op }))
            }
            other => break other,
        }
    };
    match result {
        Ok(()) => {
            if id.uuid_assigned {
                // The next start creates the domain anew, under a new UUID.
                res.identity = Some(Identity {
                    uuid: None,
                    uuid_assigned: false,
                    ..id.clone()
                });
                res.remember(|_| {});
            }
            tracing::info!(domain = %id.name, ms = t.elapsed().as_millis() as u64, "domain stopped");
            Ok(ExitCode::Success)
        }
        Err(e) if e.is_unreachable() => stop_without_libvirt(host, &res, &id, e, deadline),
        Err(e) => Err(Error::libvirt(
            format!("forced stop of {} failed", id.name),
            e,
        )),
    }
}

fn stop_with_libvirt<V: Hypervisor>(
    res: &Resource,
    hv: &V,
    id: &Identity,
    deadline: Deadline,
) -> Result<(), LibvirtError> {
    let p = &res.params;
    let until = deadline.end();
    let (guest, state) = match hv.state_of(id, until)? {
        Seen::Ours(g, s) => (g, s),
        Seen::Absent => {
            tracing::info!(domain = %id.name, "already stopped (unknown to libvirt)");
            return Ok(());
        }
        Seen::Foreign { uuid } => {
            tracing::warn!(
                domain = %id.name,
                "libvirt's domain {} has UUID {uuid}, not this resource's {}: not ours, left alone; ours is not running",
                id.name,
                id.uuid.as_deref().unwrap_or("?")
            );
            return Ok(());
        }
    };
    // A crashed or suspended guest may still have its process: it cannot shut down.
    if matches!(state, DomainState::Crashed | DomainState::PmSuspended)
        || (state.is_active() && p.force_stop)
    {
        return destroy(hv, guest, id, deadline);
    }
    if !state.is_active() {
        tracing::info!(domain = %id.name, "already stopped ({})", state.describe());
        return Ok(());
    }
    let graceful = deadline.reserving(destroy_budget(deadline.span()));
    if let Some(path) = p.snapshot_image(&id.name) {
        match hv.save(guest, &path.to_string_lossy(), graceful.end()) {
            Ok(()) => {
                tracing::info!(domain = %id.name, "saved to {}", path.display());
                return Ok(());
            }
            Err(e) if e.is_unreachable() => return Err(e),
            Err(e) => {
                tracing::warn!(domain = %id.name, "snapshot to {} failed ({e}); shutting down instead", path.display())
            }
        }
    }
    if p.save_config {
        save_config(res, hv, guest, graceful.end());
    }
    match shutdown_and_wait(res, hv, guest, id, graceful, until) {
        Ok(true) => return Ok(()),
        Ok(false) => {
            tracing::warn!(domain = %id.name, "did not shut down within {:.1}s; destroying it", graceful.elapsed().as_secs_f64())
        }
        Err(e) if e.is_unreachable() => return Err(e),
        Err(e) => {
            tracing::warn!(domain = %id.name, "graceful shutdown failed ({e}); destroying it")
        }
    }
    destroy(hv, guest, id, deadline)
}

/// Asks the guest to shut down and waits for it to be off, until `graceful` ends.
/// Completion comes from libvirt's lifecycle events (with a slow state poll as a
/// safety net). `Ok(false)`: still running at the end. Each libvirt call is bounded by
/// `calls_until` (the whole libvirt budget), not by `graceful`: a state check made just
/// as the graceful wait ends must not be mistaken for a hung libvirtd.
fn shutdown_and_wait<V: Hypervisor>(
    res: &Resource,
    hv: &V,
    guest: V::Guest,
    id: &Identity,
    graceful: Deadline,
    calls_until: Instant,
) -> Result<bool, LibvirtError> {
    let until = calls_until;
    let events = match hv.watch_lifecycle(guest, until) {
        Ok(ev) => Some(ev),
        Err(e) if e.is_unreachable() => return Err(e),
        Err(e) => {
            tracing::warn!("no lifecycle events ({e}); polling the state instead");
            None
        }
    };
    // Checked after registering, so a stop that happens now is not missed.
    if !hv.state(guest, until)?.is_active() {
        return Ok(true);
    }
    let p = &res.params;
    tracing::info!(domain = %id.name, mode = p.shutdown_mode.as_deref().unwrap_or("default"), "requesting shutdown");
    hv.shutdown(guest, p.shutdown_flags, graceful.end())?;
    loop {
        let poll = Duration::from_millis(if events.is_some() { 1000 } else { 100 });
        let wait = poll.min(graceful.remaining());
        if wait.is_zero() {
            return Ok(false);
        }
        if let Some(ev) = &events {
            match ev.recv_timeout(wait) {
                Ok(EVENT_STOPPED) => return Ok(true),
                Ok(_) => continue,
                Err(_) => {}
            }
        } else {
            std::thread::sleep(wait);
        }
        if !hv.state(guest, until)?.is_active() {
            return Ok(true);
        }
    }
}

/// Destroys the domain: a graceful destroy (SIGTERM) first, a forced one after.
fn destroy<V: Hypervisor>(
    hv: &V,
    guest: V::Guest,
    id: &Identity,
    deadline: Deadline,
) -> Result<(), LibvirtError> {
    let until = deadline.end();
    let graceful_until = deadline.reserving(deadline.remaining() / 2).end();
    let first = hv.destroy(guest, true, graceful_until);
    match first {
        Ok(()) => {}
        Err(e) if e.is_no_domain() => return Ok(()),
        Err(e) => {
            tracing::info!(domain = %id.name, "graceful destroy did not do it ({e}); forcing");
            match hv.destroy(guest, false, until) {
                Ok(()) => {}
                Err(e) if e.is_no_domain() => return Ok(()),
                Err(e) if e.is_unreachable() => return Err(e),
                // "domain is not running": it stopped meanwhile.
                Err(e) => {
                    if hv.state(guest, until)?.is_active() {
                        return Err(e);
                    }
                }
            }
        }
    }
    match hv.state(guest, until)? {
        s if s.is_active() => Err(LibvirtError::Failed {
            op: "virDomainDestroy",
            code: "still running".into(),
            message: format!("domain {} is still {}", id.name, s.describe()),
            no_domain: false,
        }),
        _ => Ok(()),
    }
}

/// libvirt is down or hung: end the guest's process ourselves, before the deadline.
/// 0 only when the guest's process is provably gone (it was never found, or we ended
/// it); for a URI whose guests are not local processes, or when `/proc` cannot tell,
/// 1 with the reason.
fn stop_without_libvirt<H: Host>(
    host: &H,
    res: &Resource,
    id: &Identity,
    e: LibvirtError,
    deadline: Deadline,
) -> Answer {
    let procs = res.processes(host).map_err(|why| Error::Unproven {
        error: e.clone(),
        why: format!("cannot stop {}: {why}", id.name),
    })?;
    // Bounded like a libvirt call: reading a process's command line can block.
    let (guest, until) = (id.clone(), deadline.end());
    let ended = bounded(until, "end the guest's processes", move || {
        procs.end_guest(&guest, until)
    })
    .unwrap_or_else(|_| Err("ending its processes did not finish in time".into()));
    match ended {
        Ok(ended) if ended.is_empty() => {
            tracing::warn!(domain = %id.name, "{e}; no hypervisor process of the domain runs: it is stopped");
            Ok(ExitCode::Success)
        }
        Ok(ended) => {
            res.ctx.note_reason(format!(
                "{e}; ended the hypervisor process {} of domain {} directly",
                process::join_pids(&ended),
                id.name
            ));
            Ok(ExitCode::Success)
        }
        Err(why) => Err(Error::Unproven { error: e, why }),
    }
}

/// Whether the guest's process is provably gone (for a URI whose guests are local
/// processes; otherwise nothing is proven), the scan bounded by `until`.
fn process_gone<H: Host>(host: &H, res: &Resource, id: &Identity, until: Instant) -> bool {
    let Ok(procs) = res.processes(host) else {
        return false;
    };
    let guest = id.clone();
    matches!(
        bounded(until, "scan /proc", move || procs.find(&guest)),
        Ok(process::Evidence::Gone)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets() {
        assert_eq!(
            destroy_budget(Duration::from_secs(90)),
            Duration::from_secs(20)
        );
        assert_eq!(
            destroy_budget(Duration::from_secs(30)),
            Duration::from_secs(10)
        );
        assert_eq!(kill_budget(Duration::from_secs(90)), Duration::from_secs(5));
        assert_eq!(kill_budget(Duration::from_secs(12)), Duration::from_secs(2));
    }

    #[test]
    fn every_phase_of_a_stop_gets_time_however_short_the_timeout() {
        let t0 = Instant::now();
        for ms in [200, 500, 1000, 2000, 3000, 10_000, 30_000, 90_000, 600_000] {
            let deadline = Deadline::new(t0, Duration::from_millis(ms));
            let kill = kill_budget(deadline.span());
            let libvirt = deadline.reserving(kill);
            let destroy = destroy_budget(libvirt.span());
            let graceful = libvirt.reserving(destroy);
            assert!(!kill.is_zero(), "{ms} ms: no time to end the process");
            assert!(!destroy.is_zero(), "{ms} ms: no time to destroy");
            assert!(
                graceful.span() >= libvirt.span() / 2,
                "{ms} ms: graceful {:?} of {:?}",
                graceful.span(),
                libvirt.span()
            );
            assert!(
                libvirt.span() > kill,
                "{ms} ms: libvirt {:?}",
                libvirt.span()
            );
            assert!(
                graceful.end() > t0,
                "{ms} ms: the graceful phase has expired at once"
            );
        }
    }
}
