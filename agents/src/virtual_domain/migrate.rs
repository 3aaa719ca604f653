//! migrate_to (on the source) and migrate_from (on the target): live migration through
//! libvirt's migration API, watched and aborted before the deadline so that a migration
//! that does not converge fails cleanly with the guest still running on the source.

use std::time::{Duration, Instant};

use ocf_common::{Context, ExitCode, OcfError, OcfResult};
use virt::domain::MigrateParameters;
use virt::sys;

use super::libvirt::{bounded, Found, Hypervisor};
use super::monitor::{state_check, wait_until_healthy, Failure};
use super::{libvirt_error, raw, start, stop, validate, Resource};

/// Extra migration options in virsh syntax, as libvirt flags.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MigrateOptions {
    pub flags: u32,
    pub migrateuri: Option<String>,
}

impl MigrateOptions {
    pub fn p2p(&self) -> bool {
        self.flags & sys::VIR_MIGRATE_PEER2PEER != 0
    }
}

/// Parses `migrate_options`. Options that change nothing here (--live, --verbose) are
/// accepted; anything unknown is refused rather than silently ignored.
pub fn parse_options(text: &str) -> Result<MigrateOptions, String> {
    let mut o = MigrateOptions::default();
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        let flag = match w {
            "--live" | "--verbose" => 0,
            "--p2p" => sys::VIR_MIGRATE_PEER2PEER,
            "--tunnelled" | "--tunneled" => sys::VIR_MIGRATE_TUNNELLED | sys::VIR_MIGRATE_PEER2PEER,
            "--persistent" => sys::VIR_MIGRATE_PERSIST_DEST,
            "--undefinesource" => sys::VIR_MIGRATE_UNDEFINE_SOURCE,
            "--unsafe" => sys::VIR_MIGRATE_UNSAFE,
            "--compressed" => sys::VIR_MIGRATE_COMPRESSED,
            "--auto-converge" => sys::VIR_MIGRATE_AUTO_CONVERGE,
            "--postcopy" => sys::VIR_MIGRATE_POSTCOPY,
            "--copy-storage-all" => sys::VIR_MIGRATE_NON_SHARED_DISK,
            "--copy-storage-inc" => sys::VIR_MIGRATE_NON_SHARED_INC,
            "--abort-on-error" => sys::VIR_MIGRATE_ABORT_ON_ERROR,
            "--migrateuri" => {
                o.migrateuri = Some(
                    words
                        .next()
                        .ok_or("--migrateuri needs a value")?
                        .to_string(),
                );
                0
            }
            other => match other.strip_prefix("--migrateuri=") {
                Some(uri) if !uri.is_empty() => {
                    o.migrateuri = Some(uri.to_string());
                    0
                }
                _ => return Err(format!("'{other}' is not a supported migration option")),
            },
        };
        o.flags |= flag;
    }
    Ok(o)
}

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
pub fn remote_uri(ctx: &Context, local_uri: &str, target: &str) -> String {
    let p = &ctx.params;
    if let Some(r) = p.str("remoteuri") {
        return r.replace("%n", target);
    }
    let host = with_suffix(target, p.str("migration_network_suffix"));
    let host = match p.str("migration_user") {
        Some(u) => format!("{u}@{host}"),
        None => host,
    };
    let (scheme, rest) = local_uri
        .split_once("://")
        .unwrap_or((local_uri, "/system"));
    let scheme = scheme.split('+').next().unwrap_or(scheme);
    let scheme = match p.str("migration_transport") {
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
pub fn migrate_uri(
    ctx: &Context,
    local_uri: &str,
    target: &str,
    opts: &MigrateOptions,
) -> Option<String> {
    migrate_uri_with(ctx, local_uri, target, opts, || {
        (49152 + u32::from(random_u8() % 64)).to_string()
    })
}

/// [`migrate_uri`] with the port used when migrateport is unset coming from `any_port`
/// (validate-all shows the range instead of drawing one).
fn migrate_uri_with(
    ctx: &Context,
    local_uri: &str,
    target: &str,
    opts: &MigrateOptions,
    any_port: impl FnOnce() -> String,
) -> Option<String> {
    let p = &ctx.params;
    if let Some(u) = p.str("migrateuri").or(opts.migrateuri.as_deref()) {
        return Some(u.replace("%n", target));
    }
    let suffix = p.str("migration_network_suffix")?;
    let host = with_suffix(target, Some(suffix));
    if local_uri.starts_with("qemu") {
        let port = p
            .int("migrateport")
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
pub fn planned_uris(ctx: &Context, local_uri: &str) -> Result<(String, Option<String>), String> {
    let target = ctx.env.migrate_target().unwrap_or("%n");
    let opts = parse_options(ctx.params.str("migrate_options").unwrap_or(""))?;
    Ok((
        remote_uri(ctx, local_uri, target),
        migrate_uri_with(ctx, local_uri, target, &opts, || {
            "<random port in 49152-49215>".into()
        }),
    ))
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

pub fn migrate_to(ctx: &Context) -> OcfResult {
    let t = Instant::now();
    validate::parameters(ctx)?;
    let res = Resource::load(ctx);
    let Some(id) = res.identity.clone() else {
        return Err(res
            .require_config()
            .err()
            .unwrap_or_else(|| OcfError::generic("no domain")));
    };
    let target = ctx.env.migrate_target().ok_or_else(|| {
        OcfError::generic("migrate_to: no target node (CRM_meta_migrate_target is not set)")
    })?;
    let deadline = ctx.deadline;
    let until = deadline.end();
    let hv = res.connect(until).map_err(libvirt_error)?;
    let guest = match state_check(&hv, &id, until, false) {
        Ok(Ok(g)) => g,
        Ok(Err(_)) => {
            return Err(OcfError::generic(format!(
                "{}: migrate_to: Not active locally!",
                id.name
            )))
        }
        Err(Failure::Ocf(e)) => return Err(e),
        Err(Failure::Libvirt(e)) => return Err(libvirt_error(e)),
    };
    let opts = parse_options(ctx.params.str("migrate_options").unwrap_or(""))
        .map_err(|e| OcfError::configured(format!("parameter 'migrate_options': {e}")))?;
    let local_uri = ctx.params.str("hypervisor").unwrap_or(hv.uri()).to_string();
    let dest = remote_uri(ctx, &local_uri, target);
    let data_uri = migrate_uri(ctx, &local_uri, target, &opts);
    tracing::info!(domain = %id.name, target, remote_uri = %dest, migrate_uri = ?data_uri, "migrating");

    if ctx.params.bool("save_config_on_stop") || ctx.params.bool("sync_config_on_stop") {
        stop::save_config(&res, &hv, guest, until);
    }
    let abort_at = deadline.reserving(abort_budget(deadline.timeout())).end();
    // Without --p2p this process talks to the target itself. With --p2p libvirtd does,
    // but the target is reached from here first all the same: libvirtd's own connect has
    // no timeout, and a target that drops packets would hold the job (which cannot be
    // aborted while it connects) for minutes after this action gave up.
    let dconn = Hypervisor::open(Some(&dest), abort_at).map_err(|e| {
        OcfError::generic(format!("live migration of {} to {target}: {e}", id.name))
    })?;
    if ctx.params.bool("start_resources") {
        start::start_resources(&dconn, &res, abort_at)?;
    }
    let speed = ctx.params.int("migration_speed").unwrap_or(0);
    if speed > 0 {
        let s = speed as u64;
        hv.on(guest, "virDomainMigrateSetMaxSpeed", until, move |d| {
            d.migrate_set_max_speed(s, 0)
        })
        .map_err(libvirt_error)?;
    }
    let params = MigrateParameters {
        uri: data_uri,
        bandwidth: (speed > 0).then_some(speed as u64),
        ..Default::default()
    };
    let mut flags = sys::VIR_MIGRATE_LIVE | opts.flags;
    if ctx.params.str("backingfile").is_some() {
        // start defines the domain persistently in this mode: the migration does the same
        // on the target, and the source keeps no definition of a domain running elsewhere.
        flags |= sys::VIR_MIGRATE_PERSIST_DEST | sys::VIR_MIGRATE_UNDEFINE_SOURCE;
    }
    tracing::debug!(flags, "migration flags");
    let dom = guest.dom;
    let dest_for_job = dest.clone();
    let dest_conn = dconn.clone();
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("migration".into())
        .spawn(move || {
            let r = if opts.p2p() {
                dom.migrate_to_uri3(Some(&dest_for_job), params, flags)
            } else {
                dom.migrate3(dest_conn.connection(), params, flags)
                    .map(std::mem::forget)
            };
            let _ = tx.send(r.map_err(|e| e.message().to_string()));
        })
        .map_err(|e| OcfError::generic(format!("cannot start the migration: {e}")))?;

    let downtime = ctx.params.int("migration_downtime").unwrap_or(0);
    let mut downtime_set = downtime <= 0;
    let mut last_log = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(Ok(())) => break,
            Ok(Err(msg)) => {
                return Err(OcfError::generic(format!(
                    "live migration of {} to {target} failed: {msg}",
                    id.name
                )))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(OcfError::generic(format!(
                    "live migration of {} to {target} ended without a result",
                    id.name
                )))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if !downtime_set {
            let ms = downtime as u64;
            if hv
                .on(guest, "virDomainMigrateSetMaxDowntime", until, move |d| {
                    d.migrate_set_max_downtime(ms, 0)
                })
                .is_ok()
            {
                downtime_set = true;
                let now = hv.on(guest, "virDomainMigrateGetMaxDowntime", until, |d| {
                    raw::migrate_max_downtime(d)
                });
                tracing::info!(downtime_ms = ms, effective = ?now.ok(), "migration downtime set");
            }
        }
        if last_log.elapsed() >= Duration::from_secs(2) {
            last_log = Instant::now();
            if let Ok(stats) = hv.on(guest, "virDomainGetJobStats", until, |d| d.job_stats(0)) {
                tracing::info!(
                    remaining_mib = stats.data_remaining.unwrap_or(0) >> 20,
                    total_mib = stats.data_total.unwrap_or(0) >> 20,
                    elapsed_ms = stats.time_elapsed.unwrap_or(0),
                    "migration in progress"
                );
            }
        }
        if Instant::now() >= abort_at {
            tracing::warn!(domain = %id.name, "migration did not finish in time; aborting it");
            let aborted = hv.on(guest, "virDomainAbortJob", until, raw::abort_job);
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
            return Err(OcfError::generic(format!(
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

pub fn migrate_from(ctx: &Context) -> OcfResult {
    let mut res = Resource::load(ctx);
    let Some(mut id) = res.identity.clone() else {
        return Err(res
            .require_config()
            .err()
            .unwrap_or_else(|| OcfError::generic("no domain")));
    };
    let until = ctx.deadline.end();
    let mut hv = res.connect(until).map_err(libvirt_error)?;
    if id.uuid_assigned {
        // Whatever this node remembers is older than the domain that just arrived: it
        // is the one the source ran, under the UUID libvirt gave it there.
        id.uuid = None;
    }
    match state_check(&hv, &id, until, false) {
        Ok(Ok(g)) => {
            if id.uuid.is_none() {
                id.uuid = Some(hv.uuid_of(g, until).map_err(libvirt_error)?);
                id.uuid_assigned = true;
            }
            res.identity = Some(id.clone());
        }
        Ok(Err(_)) => {
            return Err(OcfError::generic(format!(
                "migrate_from: domain {} is not running here after a migration from {}",
                id.name,
                ctx.env.migrate_source().unwrap_or("?")
            )))
        }
        Err(Failure::Ocf(e)) => return Err(e),
        Err(Failure::Libvirt(e)) => return Err(libvirt_error(e)),
    }
    wait_until_healthy(&res, &mut hv, &id, until, "migrate_from")?;
    if ctx.params.bool("save_config_on_stop") || ctx.params.bool("sync_config_on_stop") {
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

    #[test]
    fn options_map_to_flags() {
        let o = parse_options(
            "--live --p2p --tunnelled --persistent --undefinesource --migrateuri=tcp://x",
        )
        .unwrap();
        assert!(o.p2p());
        assert_eq!(o.migrateuri.as_deref(), Some("tcp://x"));
        assert_ne!(o.flags & sys::VIR_MIGRATE_TUNNELLED, 0);
        assert_ne!(o.flags & sys::VIR_MIGRATE_PERSIST_DEST, 0);
        assert_ne!(o.flags & sys::VIR_MIGRATE_UNDEFINE_SOURCE, 0);
        assert_eq!(
            parse_options("--migrateuri tcp://y")
                .unwrap()
                .migrateuri
                .as_deref(),
            Some("tcp://y")
        );
        assert_eq!(parse_options("").unwrap(), MigrateOptions::default());
        assert!(parse_options("--bogus").unwrap_err().contains("'--bogus'"));
        assert!(parse_options("--migrateuri").is_err());
    }

    fn ctx(pairs: &[(&str, &str)]) -> Context {
        let env = ocf_common::OcfEnv::from_pairs(pairs.iter().map(|(k, v)| (*k, *v)));
        let params = ocf_common::Params::parse(&super::super::DESCRIPTION, &env);
        let deadline = ocf_common::Deadline::new(Instant::now(), Duration::from_secs(20));
        Context::new(ocf_common::Action::ValidateAll, env, params, deadline)
    }

    #[test]
    fn uris_from_the_parameters() {
        let c = ctx(&[
            ("OCF_RESKEY_migration_transport", "tcp"),
            ("OCF_RESKEY_migration_user", "root"),
            ("OCF_RESKEY_migration_network_suffix", "-mig"),
            ("OCF_RESKEY_migrateport", "49201"),
            ("OCF_RESKEY_CRM_meta_migrate_target", "node2.example.com"),
        ]);
        assert_eq!(
            remote_uri(&c, "qemu:///system", "node2.example.com"),
            "qemu+tcp://root@node2-mig.example.com/system"
        );
        assert_eq!(
            planned_uris(&c, "qemu:///system").unwrap(),
            (
                "qemu+tcp://root@node2-mig.example.com/system".to_string(),
                Some("tcp:node2-mig.example.com:49201".to_string())
            )
        );
        // without a target (validate-all outside a migration): %n, and the port range
        let c = ctx(&[("OCF_RESKEY_migration_network_suffix", "-mig")]);
        let (remote, data) = planned_uris(&c, "qemu+ssh://a:2222/system").unwrap();
        assert_eq!(remote, "qemu://%n-mig:2222/system");
        assert_eq!(data.unwrap(), "tcp:%n-mig:<random port in 49152-49215>");
        let port = migrate_uri(&c, "qemu:///system", "b", &MigrateOptions::default()).unwrap();
        let port: u32 = port.strip_prefix("tcp:b-mig:").unwrap().parse().unwrap();
        assert!((49152..49216).contains(&port));
        // remoteuri and migrateuri win, with %n
        let c = ctx(&[
            ("OCF_RESKEY_remoteuri", "qemu+ssh://%n/system"),
            ("OCF_RESKEY_migrateuri", "tcp://%n-data"),
            ("OCF_RESKEY_migrate_options", "--migrateuri tcp://ignored"),
            ("OCF_RESKEY_migration_network_suffix", "-mig"),
        ]);
        let opts = parse_options("--migrateuri tcp://ignored").unwrap();
        assert_eq!(remote_uri(&c, "qemu:///system", "b"), "qemu+ssh://b/system");
        assert_eq!(
            migrate_uri(&c, "qemu:///system", "b", &opts).as_deref(),
            Some("tcp://b-data")
        );
        // no suffix, no migrateuri: libvirt chooses
        let c = ctx(&[("OCF_RESKEY_migration_transport", "tcp")]);
        assert_eq!(planned_uris(&c, "qemu:///system").unwrap().1, None);
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
