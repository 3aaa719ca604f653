//! validate-all, and the checks start and migrate_to make before acting.
//!
//! OCF_CHECK_LEVEL 0: the parameters themselves (types were checked before any action
//! ran; here, values and combinations) → 6. Level 10 and up: this host — the config file
//! (5 when missing or not a domain), the tools some parameters need (5), the snapshot
//! directory (2), and libvirt answering (5).

use ocf_common::{Context, ExitCode, OcfError, OcfResult};

use super::{identity, migrate, stop, Resource};

/// Checks of values and combinations that are wrong on every host (exit 6).
pub fn parameters(ctx: &Context) -> OcfResult<()> {
    let p = &ctx.params;
    if p.bool("force_stop") && p.str("snapshot").is_some() {
        return Err(OcfError::configured(
            "parameters 'force_stop' and 'snapshot' cannot be used together",
        ));
    }
    if p.bool("stateless") && p.str("backingfile").is_none() {
        return Err(OcfError::configured(
            "parameter 'stateless' needs 'backingfile'",
        ));
    }
    for name in ["migration_speed", "migration_downtime"] {
        if p.int(name).is_some_and(|v| v < 0) {
            return Err(OcfError::configured(format!(
                "parameter '{name}' must not be negative"
            )));
        }
    }
    if let Some(port) = p.int("migrateport") {
        if !(1..=65535).contains(&port) {
            return Err(OcfError::configured(format!(
                "parameter 'migrateport': {port} is not a TCP port"
            )));
        }
    }
    if let Some(user) = p.str("migration_user") {
        let ok = user.starts_with(|c: char| c.is_ascii_lowercase())
            && user
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            return Err(OcfError::configured(format!(
                "parameter 'migration_user': '{user}' is not a user name"
            )));
        }
    }
    stop::shutdown_flags(p.str("shutdown_mode"))
        .map_err(|e| OcfError::configured(format!("parameter 'shutdown_mode': {e}")))?;
    migrate::parse_options(p.str("migrate_options").unwrap_or(""))
        .map_err(|e| OcfError::configured(format!("parameter 'migrate_options': {e}")))?;
    if let Some(cfg) = p.str("config") {
        if !cfg.starts_with('/') {
            return Err(OcfError::configured(format!(
                "parameter 'config': '{cfg}' is not an absolute path"
            )));
        }
    }
    Ok(())
}

fn have_program(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths).any(|d| {
                let f = d.join(name);
                nix::unistd::access(&f, nix::unistd::AccessFlags::X_OK).is_ok() && f.is_file()
            })
        })
        .unwrap_or(false)
}

/// Checks of this host that need no libvirt (5 for missing things, 2 for unusable ones).
pub fn local(res: &Resource) -> OcfResult<()> {
    let p = &res.ctx.params;
    let (_, xml) = res.require_config()?;
    if let Some(emu) = &xml.emulator {
        if nix::unistd::access(emu.as_str(), nix::unistd::AccessFlags::X_OK).is_err() {
            return Err(OcfError::installed(format!(
                "emulator {emu} of domain {} is not installed",
                xml.name
            )));
        }
    }
    if let Some(b) = p.str("backingfile") {
        if !std::path::Path::new(b).is_file() {
            return Err(OcfError::installed(format!(
                "parameter 'backingfile': {b} does not exist"
            )));
        }
        if !have_program("qemu-img") {
            return Err(OcfError::installed(
                "parameter 'backingfile' needs qemu-img, which is not installed",
            ));
        }
    }
    if p.str("copyindirs").is_some() && !have_program("virt-copy-in") {
        return Err(OcfError::installed(
            "parameter 'copyindirs' needs virt-copy-in (libguestfs-tools), which is not installed",
        ));
    }
    if p.bool("sync_config_on_stop") && !have_program("csync2") {
        return Err(OcfError::installed(
            "parameter 'sync_config_on_stop' needs csync2, which is not installed",
        ));
    }
    if let Some(dir) = p.str("snapshot") {
        if !std::path::Path::new(dir).is_dir() {
            return Err(OcfError::args(format!(
                "parameter 'snapshot': directory {dir} does not exist"
            )));
        }
    }
    Ok(())
}

pub fn validate_all(ctx: &Context) -> OcfResult {
    parameters(ctx)?;
    let mut local_uri = ctx.params.str("hypervisor").map(str::to_string);
    if ctx.env.check_level() >= 10 {
        let res = Resource::load(ctx);
        local(&res)?;
        if let Some(path) = &res.state_path {
            identity::check_writable(path).map_err(|e| {
                let why = format!(
                    "state directory {} cannot be written ({e}): the domain's identity would                      not be remembered, and a probe with its config unreadable could not find it",
                    path.parent().unwrap_or(path).display()
                );
                match e.raw_os_error() {
                    Some(nix::libc::EACCES | nix::libc::EPERM | nix::libc::EROFS) => {
                        OcfError::perm(why)
                    }
                    _ => OcfError::generic(why),
                }
            })?;
        }
        let hv = res
            .connect(ctx.deadline.end())
            .map_err(|e| OcfError::installed(e.to_string()))?;
        tracing::debug!(uri = hv.uri(), "hypervisor reachable");
        local_uri.get_or_insert_with(|| hv.uri().to_string());
    }
    show_migration_uris(ctx, local_uri.as_deref());
    Ok(ExitCode::Success)
}

/// Logs the URIs a live migration would use (the target: CRM_meta_migrate_target, else
/// `%n`). Both derive from the local hypervisor URI: without `hypervisor` at level 0,
/// libvirt's default, which only a connection tells.
fn show_migration_uris(ctx: &Context, local_uri: Option<&str>) {
    let Some(local_uri) = local_uri else {
        tracing::info!(
            "live migration URIs derive from libvirt's default URI: set 'hypervisor', or run \
             validate-all with OCF_CHECK_LEVEL=10 to see them"
        );
        return;
    };
    if let Ok((remote, data)) = migrate::planned_uris(ctx, local_uri) {
        let data = data.unwrap_or_else(|| "chosen by libvirt".into());
        tracing::info!(remote_uri = %remote, migrate_uri = %data, "live migration URIs");
    }
}

/// reload-agent: every reloadable parameter is read afresh by each action, so applying
/// them only needs them to be valid.
pub fn reload_agent(ctx: &Context) -> OcfResult {
    parameters(ctx)?;
    tracing::info!("reloaded parameters; the domain keeps running");
    Ok(ExitCode::Success)
}
