//! monitor (and status): is the domain running here, and healthy?
//!
//! running, idle (blocked), paused, in shutdown → 0; shut off or unknown to libvirt → 7;
//! crashed, pmsuspended → 1 with the state in the reason. Then the monitor_scripts, and
//! the utilization published when it changed. When libvirt cannot be reached the
//! guest's own process answers, for a local qemu:///system guest only: alive → 0 (with a
//! warning); gone, undecidable, or another kind of URI → 1 with the reason; never 7.

use std::time::Duration;

use ocf_common::{Context, ExitCode};

use super::error::Error;
use super::health::full_check;
use super::hypervisor::{bounded, Host, LibvirtError};
use super::process::{self, Evidence};
use super::{scripts, Answer, ConfigProblem, Identity, Resource};

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
                    tracing::warn!("{problem} and no cached identity: not running");
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
    match full_check(&res, &hv, &id, until, scripts::Failure::Warn) {
        Err(Error::Libvirt { doing: None, error }) if error.is_unreachable() => {
            from_process(host, &res, &id, error)
        }
        other => other,
    }
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
