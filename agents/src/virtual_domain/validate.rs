//! validate-all, and the checks start and migrate_to make before acting.
//!
//! OCF_CHECK_LEVEL 0: the parameters themselves (types were checked before any action
//! ran; here, values and combinations) → 6. Level 10 and up: this host — the config file
//! (5 when missing or not a domain), the tools some parameters need (5), the snapshot
//! directory (2), and libvirt answering (5).

use ocf_common::{regular_file, Context, ExitCode};

use super::error::Error;
use super::hypervisor::{Host, Hypervisor};
use super::{identity, uris, Answer, Resource};

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
pub fn local(res: &Resource) -> Result<(), Error> {
    let p = &res.params;
    let (_, xml) = res.require_config()?;
    if let Some(emu) = &xml.emulator {
        if nix::unistd::access(emu.as_str(), nix::unistd::AccessFlags::X_OK).is_err() {
            return Err(Error::Missing(format!(
                "emulator {emu} of domain {} is not installed",
                xml.name
            )));
        }
    }
    // Images and snapshots live on shared storage, which may hang: each look is bounded.
    let until = super::config_read_until(res.ctx.deadline.end());
    let look = |path: &str| {
        regular_file::metadata_within(std::path::Path::new(path), true, until)
            .map_err(|e| Error::Failed(format!("{path} {e}")))
    };
    if let Some(b) = &p.backingfile {
        if !look(b)?.is_some_and(|m| m.is_file()) {
            return Err(Error::Missing(format!(
                "parameter 'backingfile': {b} does not exist"
            )));
        }
        if !have_program("qemu-img") {
            return Err(Error::Missing(
                "parameter 'backingfile' needs qemu-img, which is not installed".into(),
            ));
        }
    }
    if !p.copyindirs.is_empty() && !have_program("virt-copy-in") {
        return Err(Error::Missing(
            "parameter 'copyindirs' needs virt-copy-in (libguestfs-tools), which is not installed"
                .into(),
        ));
    }
    if p.sync_config && !have_program("csync2") {
        return Err(Error::Missing(
            "parameter 'sync_config_on_stop' needs csync2, which is not installed".into(),
        ));
    }
    if let Some(dir) = &p.snapshot {
        if !look(dir)?.is_some_and(|m| m.is_dir()) {
            return Err(Error::Unusable(format!(
                "parameter 'snapshot': directory {dir} does not exist"
            )));
        }
    }
    Ok(())
}

/// validate-all below OCF_CHECK_LEVEL 10: the parameters alone, nothing of this host
/// (no libvirt either: the agent's binary answers it without loading libvirt).
pub fn validate_parameters(ctx: &Context) -> Answer {
    let params = super::params::Params::parse(&ctx.params);
    params.check()?;
    show_migration_uris(ctx, &params, params.hypervisor.as_deref());
    Ok(ExitCode::Success)
}

pub fn validate_all<H: Host>(host: &H, ctx: &Context) -> Answer {
    if ctx.env.check_level() < 10 {
        return validate_parameters(ctx);
    }
    let params = super::params::Params::parse(&ctx.params);
    params.check()?;
    let res = Resource::load(ctx);
    local(&res)?;
    if let Some(path) = &res.state_path {
        identity::check_writable(path).map_err(|e| {
            let why = format!(
                "state directory {} cannot be written ({e}): the domain's identity would \
                 not be remembered, and a probe with its config unreadable could not find it",
                path.parent().unwrap_or(path).display()
            );
            match e.raw_os_error() {
                Some(nix::libc::EACCES | nix::libc::EPERM | nix::libc::EROFS) => {
                    Error::Permission(why)
                }
                _ => Error::Failed(why),
            }
        })?;
    }
    let hv = res.connect(host, ctx.deadline.end())?;
    tracing::debug!(uri = hv.uri(), "hypervisor reachable");
    let local_uri = params.hypervisor.as_deref().unwrap_or(hv.uri());
    show_migration_uris(ctx, &params, Some(local_uri));
    Ok(ExitCode::Success)
}

/// Logs the URIs a live migration would use (the target: CRM_meta_migrate_target, else
/// `%n`). Both derive from the local hypervisor URI: without `hypervisor` at level 0,
/// libvirt's default, which only a connection tells.
fn show_migration_uris(ctx: &Context, p: &super::params::Params, local_uri: Option<&str>) {
    let Some(local_uri) = local_uri else {
        tracing::info!(
            "live migration URIs derive from libvirt's default URI: set 'hypervisor', or run \
             validate-all with OCF_CHECK_LEVEL=10 to see them"
        );
        return;
    };
    let (remote, data) = uris::planned_uris(p, ctx.env.migrate_target(), local_uri);
    let data = data.unwrap_or_else(|| "chosen by libvirt".into());
    tracing::info!(remote_uri = %remote, migrate_uri = %data, "live migration URIs");
}

/// reload-agent: every reloadable parameter is read afresh by each action, so applying
/// them only needs them to be valid.
pub fn reload_agent(ctx: &Context) -> Answer {
    super::params::Params::parse(&ctx.params).check()?;
    tracing::info!("reloaded parameters; the domain keeps running");
    Ok(ExitCode::Success)
}
