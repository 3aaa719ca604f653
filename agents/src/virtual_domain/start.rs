//! start: make the domain run here, and return once a full monitor (monitor_scripts
//! included) passes, within the deadline.
//!
//! Already running → success at once. A saved snapshot is restored. Otherwise the
//! domain is created from the config (transient), or, with backingfile, defined
//! persistently over a qcow2 overlay and started. The user's config file is never
//! deleted or rewritten here: a stale persistent definition libvirt holds is removed,
//! and should that remove the file too (it lives in libvirt's directory), the file is
//! written back from memory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ocf_common::{regular_file, statefile, Context, ExitCode};

use super::definition::start_resources;
use super::error::Error;
use super::health::wait_until_healthy;
use super::hypervisor::{same_uuid, DomainState, Found, Host, Hypervisor, Seen};
use super::params::Params;
use super::tools::run_tool;
use super::{utilization, validate, Answer, Identity, Resource};

pub fn start<H: Host>(host: &H, ctx: &Context) -> Answer {
    let t = Instant::now();
    let mut res = Resource::load(ctx);
    res.params.check()?;
    validate::local(&res)?;
    let (xml_text, _) = res.require_config()?.clone();
    let mut id = res.require_identity()?;
    let until = ctx.deadline.end();
    let mut hv = res.connect(host, until)?;

    match hv.state_of(&id, until)? {
        Seen::Foreign { uuid } => {
            return Err(Error::NotOurs {
                name: id.name.clone(),
                ours: id.uuid.clone(),
                theirs: uuid,
                doing: "",
            })
        }
        Seen::Ours(_, s) if s.is_active() => {
            tracing::info!(domain = %id.name, "already running");
            res.remember(|_| {});
            return Ok(ExitCode::Success);
        }
        // Crashed or suspended: it is not running; clear it away before starting anew.
        Seen::Ours(g, s) if s != DomainState::ShutOff => {
            tracing::warn!(domain = %id.name, "domain is {}; destroying it before the start", s.describe());
            let _ = hv.destroy(g, false, until);
        }
        Seen::Ours(..) | Seen::Absent => {}
    }
    if id.uuid_assigned {
        // The UUID libvirt gave an earlier incarnation: this one gets its own.
        id.uuid = None;
        id.uuid_assigned = false;
    }

    let restored = restore_snapshot(&res.params, &hv, &id, until)?;
    let mut created = None;
    if !restored {
        if res.params.start_resources {
            start_resources(&hv, &res, until)?;
        }
        if res.params.backingfile.is_some() {
            created = Some(start_over_backing_file(
                &res.params,
                &hv,
                &id,
                &xml_text,
                until,
            )?);
        } else {
            remove_stale_definition(
                &hv,
                &id,
                &xml_text,
                res.params.config.as_deref().unwrap_or(""),
                until,
            )?;
            let dom = hv.create_xml(&xml_text, until).map_err(|e| {
                Error::libvirt(format!("Failed to start virtual domain {}", id.name), e)
            })?;
            created = Some(dom);
        }
    }
    // What runs now is what libvirt says it created: its name and UUID, not our reading
    // of the file, are what every later action looks for.
    let guest = match created {
        Some(g) => g,
        None => match hv.find(&id, until)? {
            Found::Ours(g) => g,
            Found::Absent => {
                return Err(Error::Failed(format!(
                    "domain {} is not known to libvirt after its start",
                    id.name
                )))
            }
            Found::Foreign { uuid } => {
                return Err(Error::NotOurs {
                    name: id.name.clone(),
                    ours: id.uuid.clone(),
                    theirs: uuid,
                    doing: " as restored",
                })
            }
        },
    };
    id = check_created(&hv, guest, id, until)?;
    res.identity = Some(id.clone());
    res.remember(utilization::forget_published);
    utilization::forget_published(&mut res.cached);
    wait_until_healthy(host, &res, &mut hv, &id, until, "start")?;
    tracing::info!(domain = %id.name, ms = t.elapsed().as_millis() as u64, "domain started");
    Ok(ExitCode::Success)
}

/// The identity of the domain libvirt created: its name and UUID as libvirt reports them.
/// A domain that is not the one the config describes (another name, or another UUID than
/// the config's) is destroyed at once: nothing would ever monitor or stop it.
fn check_created<V: Hypervisor>(
    hv: &V,
    guest: V::Guest,
    id: Identity,
    until: Instant,
) -> Result<Identity, Error> {
    let name = hv.name_of(guest, until)?;
    let uuid = hv.uuid_of(guest, until)?;
    let wrong = if name != id.name {
        Some(format!("is named {name}, not {}", id.name))
    } else {
        match &id.uuid {
            Some(ours) if !same_uuid(ours, &uuid) => Some(format!("has UUID {uuid}, not {ours}")),
            _ => None,
        }
    };
    if let Some(wrong) = wrong {
        let destroyed = hv.destroy(guest, false, until);
        return Err(Error::Failed(format!(
            "the domain libvirt started {wrong} as read from the config; {}",
            if destroyed.is_ok() {
                "destroyed it"
            } else {
                "could not destroy it"
            }
        )));
    }
    Ok(Identity {
        uuid_assigned: id.uuid.is_none(),
        uuid: Some(uuid),
        ..id
    })
}

/// Restores a saved memory image if there is one; the image is removed once restored.
fn restore_snapshot<V: Hypervisor>(
    p: &Params,
    hv: &V,
    id: &Identity,
    until: Instant,
) -> Result<bool, Error> {
    let Some(path) = p.snapshot_image(&id.name) else {
        return Ok(false);
    };
    // The image may sit on storage that hangs: asked within the deadline.
    match regular_file::metadata_within(&path, true, super::config_read_until(until)) {
        Ok(Some(m)) if m.is_file() => {}
        Ok(_) => return Ok(false),
        Err(e) => {
            return Err(Error::Failed(format!(
                "snapshot image {} {e}",
                path.display()
            )))
        }
    }
    hv.restore(&path.to_string_lossy(), until).map_err(|e| {
        Error::libvirt(
            format!("Failed to restore {} from {}", id.name, path.display()),
            e,
        )
    })?;
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!("restored, but cannot remove {}: {e}", path.display());
    }
    tracing::info!(domain = %id.name, "restored from {}", path.display());
    Ok(true)
}

/// A persistent definition of the domain that is not running would make the transient
/// create fail: undefine it. If that removed the config file (it lived in libvirt's own
/// directory), write the file back.
fn remove_stale_definition<V: Hypervisor>(
    hv: &V,
    id: &Identity,
    xml: &str,
    config: &str,
    until: Instant,
) -> Result<(), Error> {
    let Found::Ours(g) = hv.find(id, until)? else {
        return Ok(());
    };
    if hv.state(g, until)? == DomainState::Absent {
        return Ok(());
    }
    tracing::info!(domain = %id.name, "undefining its inactive persistent definition before a transient start");
    // Should undefine take the config file with it, it is written back as it was.
    let mode = std::fs::metadata(config)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
        .unwrap_or(0o600);
    hv.undefine(g, until).map_err(|e| {
        Error::libvirt(
            format!("cannot undefine the stale definition of {}", id.name),
            e,
        )
    })?;
    if !config.is_empty() && !Path::new(config).exists() {
        tracing::warn!("undefine removed {config}; writing it back");
        statefile::write_atomic(Path::new(config), xml.as_bytes(), mode)
            .map_err(|e| Error::Failed(format!("cannot restore {config} after undefine: {e}")))?;
    }
    Ok(())
}

/// The qcow2 overlay of backingfile mode: the config's path with `.qcow2` for its
/// extension (`/srv/vm.d/a.xml` → `/srv/vm.d/a.qcow2`).
pub fn overlay_path(config: &str) -> PathBuf {
    Path::new(config).with_extension("qcow2")
}

/// The backing image's format, from its first bytes (qcow2 images start with "QFI\xfb"),
/// read without blocking and within `until` (images live on shared storage).
fn image_format(path: &Path, until: Instant) -> Result<&'static str, Error> {
    match regular_file::head_within(path, 4, true, until) {
        Ok(Some(magic)) if magic == b"QFI\xfb" => Ok("qcow2"),
        Ok(Some(_)) => Ok("raw"),
        Ok(None) => Err(Error::Missing(format!(
            "parameter 'backingfile': {} does not exist",
            path.display()
        ))),
        Err(e) => Err(Error::Failed(format!(
            "parameter 'backingfile': {} {e}",
            path.display()
        ))),
    }
}

fn start_over_backing_file<V: Hypervisor>(
    p: &Params,
    hv: &V,
    id: &Identity,
    xml: &str,
    until: Instant,
) -> Result<V::Guest, Error> {
    let backing = p.backingfile.as_deref().unwrap_or_default();
    let config = p.config.as_deref().unwrap_or_default();
    let overlay = overlay_path(config);
    let look_until = super::config_read_until(until);
    let empty = match regular_file::metadata_within(&overlay, true, look_until) {
        Ok(m) => m.is_none_or(|m| m.len() == 0),
        Err(e) => return Err(Error::Failed(format!("overlay {} {e}", overlay.display()))),
    };
    let fresh = p.stateless || empty;
    if fresh {
        let _ = std::fs::remove_file(&overlay);
        let args: Vec<String> = vec![
            "create".into(),
            "-q".into(),
            "-f".into(),
            "qcow2".into(),
            "-F".into(),
            image_format(Path::new(backing), look_until)?.into(),
            "-b".into(),
            backing.into(),
            overlay.to_string_lossy().into_owned(),
        ];
        run_tool("qemu-img", &args, until)?;
    }
    let guest = hv
        .define_xml(xml, until)
        .map_err(|e| Error::libvirt(format!("Failed to define virtual domain {}", id.name), e))?;
    if fresh && !p.copyindirs.is_empty() {
        let mut args = vec!["-d".to_string(), id.name.clone()];
        args.extend(p.copyindirs.iter().cloned());
        args.push("/".into());
        run_tool("virt-copy-in", &args, until)?;
    }
    hv.create(guest, until)
        .map_err(|e| Error::libvirt(format!("Failed to start virtual domain {}", id.name), e))?;
    Ok(guest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_sits_next_to_the_config() {
        assert_eq!(
            overlay_path("/srv/vm.d/a.xml"),
            PathBuf::from("/srv/vm.d/a.qcow2")
        );
        assert_eq!(overlay_path("/etc/vm"), PathBuf::from("/etc/vm.qcow2"));
    }

    #[test]
    fn image_formats_by_magic() {
        let dir = tempfile::tempdir().unwrap();
        let q = dir.path().join("q");
        std::fs::write(&q, b"QFI\xfb\0\0\0\x03rest").unwrap();
        let r = dir.path().join("r");
        std::fs::write(&r, b"\0\0\0\0").unwrap();
        let until = Instant::now() + std::time::Duration::from_secs(5);
        assert_eq!(image_format(&q, until).unwrap(), "qcow2");
        assert_eq!(image_format(&r, until).unwrap(), "raw");
        let missing = image_format(&dir.path().join("missing"), until).unwrap_err();
        assert_eq!(missing.code(), ocf_common::ExitCode::ErrInstalled);
        // A FIFO in place of the image answers at once instead of blocking the start.
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = image_format(&fifo, until).unwrap_err();
        assert!(e.reason().contains("FIFO"), "{}", e.reason());
    }
}
