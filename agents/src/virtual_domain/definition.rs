//! What the domain's definition ties it to outside libvirt: the config file it is
//! written back to (save_config_on_stop, sync_config_on_stop), and the storage pools and
//! networks it uses (start_resources).

use std::time::Instant;

use ocf_common::{regular_file, statefile};

use super::error::Error;
use super::hypervisor::Hypervisor;
use super::{tools, Resource};

/// save_config_on_stop: the domain's inactive definition written back to the config
/// file when it changed, atomically; with sync_config_on_stop, then `csync2 -x` it.
pub fn save_config<V: Hypervisor>(res: &Resource, hv: &V, guest: V::Guest, until: Instant) {
    let Some(path) = res.params.config.as_deref() else {
        return;
    };
    let xml = match hv.inactive_xml(guest, until) {
        Ok(x) if !x.trim().is_empty() => x,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!("cannot read the domain definition to save it: {e}");
            return;
        }
    };
    // The file as it is now (it may have been replaced since the start); never a read
    // that can block or that is larger than a config can be.
    let current = match regular_file::read_within(
        std::path::Path::new(path),
        super::CONFIG_RULES,
        super::config_read_until(until),
    ) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::warn!("{path} {e}: the domain definition is not saved to it");
            return;
        }
    };
    if current == xml.as_bytes() {
        return;
    }
    if super::domain_xml::parse(&xml).is_err() {
        tracing::warn!("libvirt returned a definition that does not parse; {path} left alone");
        return;
    }
    // A config that is a symlink (to shared storage, say) stays one: the file it points
    // to is replaced, with its mode.
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.into());
    let mode = std::fs::metadata(&target)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
        .unwrap_or(0o600);
    match statefile::write_atomic(&target, xml.as_bytes(), mode) {
        Ok(()) => tracing::info!("saved the domain definition to {path}"),
        Err(e) => {
            tracing::warn!("cannot save the domain definition to {path}: {e}");
            return;
        }
    }
    if res.params.sync_config {
        if let Err(e) = tools::run_tool("csync2", &["-x".to_string(), path.to_string()], until) {
            tracing::warn!("{}", e.reason());
        }
    }
}

/// start_resources: the storage pools and networks the config uses, started (active
/// pools refreshed). Used on this host by start and on the target by migrate_to.
pub fn start_resources<V: Hypervisor>(hv: &V, res: &Resource, until: Instant) -> Result<(), Error> {
    let Ok((_, xml)) = &res.config else {
        return Ok(());
    };
    for pool in &xml.pools {
        hv.start_pool(pool, until)
            .map_err(|e| Error::libvirt(format!("Failed to start storage pool {pool}"), e))?;
    }
    for net in &xml.networks {
        hv.start_network(net, until)
            .map_err(|e| Error::libvirt(format!("Failed to start network {net}"), e))?;
    }
    Ok(())
}
