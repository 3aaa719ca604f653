//! migrate_to (on the source) and migrate_from (on the target): live migration through
//! libvirt's migration API, watched and aborted before the deadline so that a migration
//! that does not converge fails cleanly with the guest still running on the source.

use std::time::{Duration, Instant};

use ocf_common::{Context, ExitCode};
use virt::sys;

use super::error::Error;
use super::hypervisor::{Found, Host, Hypervisor, Migration};
use super::libvirt::bounded;
use super::monitor::{state_check, wait_until_healthy};
use super::params::{MigrateOptions, Params};
use super::{start, stop, Answer, Resource};

/// `node.example.com` with suffix `-mig` → `node-mig.example.com`.
pub fn with_suffix(node: &str, suffix: Option<&str>) -> String {
    match suffix {
        None | Some("") => node.to_string(),
        Some(s) => match node.split_once('.') {
            Some((first, rest)) => format!("{first}{s}.{rest}"),
            None => format!("{node}{s}"),
        },
    }
}

/// The target host's libvirt URI: `remoteuri` (with %n), or the local URI with the
/// target's host (suffix, user) and migration_transport in its scheme.
pub fn remote_uri(p: &Params, local_uri: &str, target: &str) -> String {
    if let Some(r) = &p.remoteuri {
        return r.replace("%n", target);
    }
    let host = with_suffix(target, p.migration_network_suffix.as_deref());
    let host = match &p.migration_user {
        Some(u) => format!("{u}@{host}"),
        None => host,
    };
    let (scheme, rest) = local_uri
        .split_once("://")
        .unwrap_or((local_uri, "/system"));
    let scheme = scheme.split('+').next().unwrap_or(scheme);
    let scheme = match &p.migration_transport {
        Some(t) => format!("{scheme}+{t}"),
        None => scheme.to_string(),
    };
    // Keep the local URI's port and path: authority is up to the first '/'.
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let port = authority
        .rsplit_once(':')
        .filter(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .map(|(_, p)| format!(":{p}"))
        .unwrap_or_default();
    format!("{scheme}://{host}{port}/{path}")
}

/// The URI of the migration data stream, if one is chosen here: `migrateuri` (with %n),
/// else --migrateuri in migrate_options, else with migration_network_suffix for qemu
/// `tcp:HOST:PORT` (PORT: migrateport, or random in 49152-49215) and for xen `HOST`.
pub fn migrate_uri(p: &Params, local_uri: &str, target: &str) -> Option<String> {
    migrate_uri_with(p, local_uri, target, || {
        (49152 + u32::from(random_u8() % 64)).to_string()
    })
}

/// [`migrate_uri`] with the port used when migrateport is unset coming from `any_port`
/// (validate-all shows the range instead of drawing one).
fn migrate_uri_with(
    p: &Params,
    local_uri: &str,
    target: &str,
    any_port: impl FnOnce() -> String,
) -> Option<String> {
    let opts: &MigrateOptions = &p.migrate_options;
    if let Some(u) = p.migrateuri.as_deref().or(opts.migrateuri.as_deref()) {
        return Some(u.replace("%n", target));
    }
    let suffix = p.migration_network_suffix.as_deref()?;
    let host = with_suffix(target, Some(suffix));
    if local_uri.starts_with("qemu") {
        let port = p
            .migrateport
            .map(|n| n.to_string())
            .unwrap_or_else(any_port);
        Some(format!("tcp:{host}:{port}"))
    } else if local_uri.starts_with("xen") {
        Some(host)
    } else {
        tracing::warn!("migration_network_suffix is only used with qemu and xen URIs");
        None
    }
}

/// What migrate_to would use, for validate-all: the target's libvirt URI and the data
/// URI (None: libvirt chooses). The target is CRM_meta_migrate_target when set, else `%n`
/// (the target node's name); `local_uri` is the hypervisor's URI.
pub fn planned_uris(p: &Params, target: Option<&str>, local_uri: &str) -> (String, Option<String>) {
    let target = target.unwrap_or("%n");
    (
        remote_uri(p, local_uri, target),
        migrate_uri_with(p, local_uri, target, || {
            "<random port in 49152-49215>".into()
        }),
    )
}

fn random_u8() -> u8 {
    let mut b = [0u8; 1];
    let _ = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b));
    b[0]
}

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
    tracing::info!(domain = %id.name, target, remote_uri = %dest, migrate_uri = ?data_uri, "migrating");

    if p.save_config {
        stop::save_config(&res, &hv, guest, until);
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
        start::start_resources(&dconn, &res, abort_at)?;
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
    let job = Migration {
        dest_uri: dest.clone(),
        data_uri,
        bandwidth: (speed > 0).then_some(speed),
        flags,
        p2p: p.migrate_options.p2p(),
    };
    let rx = hv.migrate(guest, &dconn, job)?;

    let downtime = p.migration_downtime;
    let mut downtime_set = downtime == 0;
    let mut last_log = Instant::now();
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
            tracing::info!(downtime_ms = downtime, effective = ?now.ok(), "migration downtime set");
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
            stop::save_config(&res, &hv, g, until);
        }
    }
    tracing::info!(domain = %id.name, source = ctx.env.migrate_source().unwrap_or("?"), "migration received");
    Ok(ExitCode::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> Params {
        let env = ocf_common::OcfEnv::from_pairs(pairs.iter().map(|(k, v)| (*k, *v)));
        Params::parse(&ocf_common::Params::parse(&super::super::DESCRIPTION, &env))
    }

    #[test]
    fn uris_from_the_parameters() {
        let c = ctx(&[
            ("OCF_RESKEY_migration_transport", "tcp"),
            ("OCF_RESKEY_migration_user", "root"),
            ("OCF_RESKEY_migration_network_suffix", "-mig"),
            ("OCF_RESKEY_migrateport", "49201"),
        ]);
        assert_eq!(
            remote_uri(&c, "qemu:///system", "node2.example.com"),
            "qemu+tcp://root@node2-mig.example.com/system"
        );
        assert_eq!(
            planned_uris(&c, Some("node2.example.com"), "qemu:///system"),
            (
                "qemu+tcp://root@node2-mig.example.com/system".to_string(),
                Some("tcp:node2-mig.example.com:49201".to_string())
            )
        );
        // without a target (validate-all outside a migration): %n, and the port range
        let c = ctx(&[("OCF_RESKEY_migration_network_suffix", "-mig")]);
        let (remote, data) = planned_uris(&c, None, "qemu+ssh://a:2222/system");
        assert_eq!(remote, "qemu://%n-mig:2222/system");
        assert_eq!(data.unwrap(), "tcp:%n-mig:<random port in 49152-49215>");
        let port = migrate_uri(&c, "qemu:///system", "b").unwrap();
        let port: u32 = port.strip_prefix("tcp:b-mig:").unwrap().parse().unwrap();
        assert!((49152..49216).contains(&port));
        // remoteuri and migrateuri win, with %n
        let c = ctx(&[
            ("OCF_RESKEY_remoteuri", "qemu+ssh://%n/system"),
            ("OCF_RESKEY_migrateuri", "tcp://%n-data"),
            ("OCF_RESKEY_migrate_options", "--migrateuri tcp://ignored"),
            ("OCF_RESKEY_migration_network_suffix", "-mig"),
        ]);
        assert_eq!(remote_uri(&c, "qemu:///system", "b"), "qemu+ssh://b/system");
        assert_eq!(
            migrate_uri(&c, "qemu:///system", "b").as_deref(),
            Some("tcp://b-data")
        );
        // no suffix, no migrateuri: libvirt chooses
        let c = ctx(&[("OCF_RESKEY_migration_transport", "tcp")]);
        assert_eq!(planned_uris(&c, None, "qemu:///system").1, None);
    }

    #[test]
    fn suffix_goes_after_the_first_label() {
        assert_eq!(
            with_suffix("node2.example.com", Some("-mig")),
            "node2-mig.example.com"
        );
        assert_eq!(with_suffix("node2", Some("-mig")), "node2-mig");
        assert_eq!(with_suffix("node2", None), "node2");
    }
}
