//! migrate_to (on the source) and migrate_from (on the target): live migration through
//! libvirt's migration API, watched and aborted before the deadline so that a migration
//! that does not converge fails cleanly with the guest still running on the source.

use std::time::{Duration, Instant};

use ocf_common::{Context, ExitCode};
use virt::sys;

use super::error::Error;
use super::health::{state_check, wait_until_healthy};
use super::hypervisor::{bounded, Found, Host, Hypervisor, Migration};
use super::migrate_options::OnTimeout;
use super::uris::{migrate_uri, remote_uri};
use super::{definition, Answer, Resource};

/// Time kept at the end of migrate_to to abort the job and report it.
fn abort_budget(timeout: Duration) -> Duration {
    (timeout / 10).clamp(Duration::from_secs(2), Duration::from_secs(10))
}

pub fn migrate_to<H: Host>(host: &H, ctx: &Context) -> Answer {
    let t = Instant::now();
    let res = Resource::load(ctx);
    res.params.check()?;
    let p = &res.params;
    let id = res.require_identity()?;
    let target = ctx.env.migrate_target().ok_or_else(|| {
        Error::Failed("migrate_to: no target node (CRM_meta_migrate_target is not set)".into())
    })?;
    let deadline = ctx.deadline;
    let until = deadline.end();
    let hv = res.connect(host, until)?;
    let guest = match state_check(&hv, &id, until, false)? {
        Ok(g) => g,
        Err(_) => {
            return Err(Error::Failed(format!(
                "{}: migrate_to: Not active locally!",
                id.name
            )))
        }
    };
    let local_uri = p.hypervisor.as_deref().unwrap_or(hv.uri()).to_string();
    let dest = remote_uri(p, &local_uri, target);
    let data_uri = migrate_uri(p, &local_uri, target);
    tracing::info!(domain = %id.name, target, remote_uri = %dest, migrate_uri = data_uri.as_deref().unwrap_or("libvirt's choice"), "migrating");

    if p.save_config {
        definition::save_config(&res, &hv, guest, until);
    }
    let abort_at = deadline.reserving(abort_budget(deadline.timeout())).end();
    // Without --p2p this process talks to the target itself. With --p2p libvirtd does,
    // but the target is reached from here first all the same: libvirtd's own connect has
    // no timeout, and a target that drops packets would hold the job (which cannot be
    // aborted while it connects) for minutes after this action gave up.
    let dconn = host
        .connect(Some(&dest), abort_at)
        .map_err(|e| Error::libvirt(format!("live migration of {} to {target}", id.name), e))?;
    if p.start_resources {
        definition::start_resources(&dconn, &res, abort_at)?;
    }
    let speed = p.migration_speed;
    if speed > 0 {
        hv.set_migration_speed(guest, speed, until)?;
    }
    let mut flags = sys::VIR_MIGRATE_LIVE | p.migrate_options.flags;
    if p.backingfile.is_some() {
        // start defines the domain persistently in this mode: the migration does the same
        // on the target, and the source keeps no definition of a domain running elsewhere.
        flags |= sys::VIR_MIGRATE_PERSIST_DEST | sys::VIR_MIGRATE_UNDEFINE_SOURCE;
    }
    tracing::debug!(flags, "migration flags");
    let opts = &p.migrate_options;
    let job = Migration {
        dest_uri: dest.clone(),
        data_uri,
        // migration_speed wins over --bandwidth, as it caps the domain's speed too.
        bandwidth: (speed > 0).then_some(speed).or(opts.bandwidth),
        flags,
        p2p: opts.p2p(),
        options: opts.clone(),
    };
    let job_started = Instant::now();
    let rx = hv.migrate(guest, &dconn, job)?;

    let downtime = p.migration_downtime;
    let mut downtime_set = downtime == 0;
    let mut last_log = Instant::now();
    // --timeout: the guest paused (or post-copy started) once, when the time is up;
    // --postcopy-after-precopy: post-copy once the first pass over memory is done.
    let mut timed_out = false;
    let mut suspended = false;
    let mut postcopy_started = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(Ok(())) => break,
            Ok(Err(msg)) => {
                return Err(Error::Failed(format!(
                    "live migration of {} to {target} failed: {msg}",
                    id.name
                )))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::Failed(format!(
                    "live migration of {} to {target} ended without a result",
                    id.name
                )))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if !downtime_set && hv.set_migration_downtime(guest, downtime, until).is_ok() {
            downtime_set = true;
            let now = hv.migration_downtime(guest, until);
            match now {
                Ok(effective_ms) => {
                    tracing::info!(
                        downtime_ms = downtime,
                        effective_ms,
                        "migration downtime set"
                    )
                }
                Err(_) => tracing::info!(downtime_ms = downtime, "migration downtime set"),
            }
        }
        if let Some((after, action)) = opts.timeout {
            if !timed_out && job_started.elapsed() >= after {
                timed_out = true;
                let done = match action {
                    OnTimeout::Suspend => hv.suspend(guest, until).map(|()| suspended = true),
                    OnTimeout::Postcopy => hv.start_postcopy(guest, until),
                };
                match done {
                    Ok(()) => {
                        tracing::warn!(domain = %id.name, "migration still running after {}s (--timeout): {}", after.as_secs(), match action { OnTimeout::Suspend => "guest paused to let it finish", OnTimeout::Postcopy => "switched to post-copy" })
                    }
                    Err(e) => tracing::warn!(domain = %id.name, "--timeout: {e}"),
                }
            }
        }
        if opts.postcopy_after_precopy && !postcopy_started {
            if let Ok(job) = hv.job_progress(guest, until) {
                if job.iteration >= 1 {
                    postcopy_started = true;
                    match hv.start_postcopy(guest, until) {
                        Ok(()) => {
                            tracing::info!(domain = %id.name, "first pass done: switched to post-copy")
                        }
                        Err(e) => {
                            tracing::warn!(domain = %id.name, "--postcopy-after-precopy: {e}")
                        }
                    }
                }
            }
        }
        if last_log.elapsed() >= Duration::from_secs(2) {
            last_log = Instant::now();
            if let Ok(job) = hv.job_progress(guest, until) {
                tracing::info!(
                    remaining_mib = job.remaining_bytes >> 20,
                    total_mib = job.total_bytes >> 20,
                    elapsed_ms = job.elapsed_ms,
                    "migration in progress"
                );
            }
        }
        if Instant::now() >= abort_at {
            tracing::warn!(domain = %id.name, "migration did not finish in time; aborting it");
            let aborted = hv.abort_job(guest, until);
            // The job ends once aborted and its thread reports how. Half of what is left
            // goes to that wait, the rest to asking where the domain runs now.
            let settle = Instant::now() + until.saturating_duration_since(Instant::now()) / 2;
            let ended = bounded(settle, "migration end", move || rx.recv());
            if let Ok(Ok(Ok(()))) = ended {
                // The abort came too late: the domain is on the target, as asked.
                tracing::warn!(domain = %id.name, target, "the migration completed as it was being aborted");
                return Ok(ExitCode::Success);
            }
            if suspended {
                // Paused by --timeout for a migration that did not happen: running again.
                if let Err(e) = hv.resume(guest, until) {
                    tracing::warn!(domain = %id.name, "cannot resume the guest paused for the migration: {e}");
                }
            }
            let here = match state_check(&hv, &id, until, false) {
                Ok(Ok(_)) => "keeps running here",
                Ok(Err(_)) => "is not running here any more",
                Err(_) => "is in an unknown state here",
            };
            return Err(Error::Failed(format!(
                "live migration of {} to {target} did not finish within the {}s timeout and was {}; the domain {here}",
                id.name,
                deadline.timeout().as_secs(),
                if aborted.is_ok() { "aborted" } else { "asked to abort" },
            )));
        }
    }
    tracing::info!(domain = %id.name, target, ms = t.elapsed().as_millis() as u64, "live migration done");
    Ok(ExitCode::Success)
}

pub fn migrate_from<H: Host>(host: &H, ctx: &Context) -> Answer {
    let mut res = Resource::load(ctx);
    let mut id = res.require_identity()?;
    let until = ctx.deadline.end();
    let mut hv = res.connect(host, until)?;
    if id.uuid_assigned {
        // Whatever this node remembers is older than the domain that just arrived: it
        // is the one the source ran, under the UUID libvirt gave it there.
        id.uuid = None;
    }
    match state_check(&hv, &id, until, false)? {
        Ok(g) => {
            if id.uuid.is_none() {
                id.uuid = Some(hv.uuid_of(g, until)?);
                id.uuid_assigned = true;
            }
            res.identity = Some(id.clone());
        }
        Err(_) => {
            return Err(Error::Failed(format!(
                "migrate_from: domain {} is not running here after a migration from {}",
                id.name,
                ctx.env.migrate_source().unwrap_or("?")
            )))
        }
    }
    wait_until_healthy(host, &res, &mut hv, &id, until, "migrate_from")?;
    if res.params.save_config {
        if let Ok(Found::Ours(g)) = hv.find(&id, until) {
            definition::save_config(&res, &hv, g, until);
        }
    }
    tracing::info!(domain = %id.name, source = ctx.env.migrate_source().unwrap_or("?"), "migration received");
    Ok(ExitCode::Success)
}
