//! The per-resource state file: the domain's identity as last read from its config
//! (so a domain whose config became unreadable is still found), and the utilization
//! values last published to the CIB (so the monitor forks crm_resource only on change).
//!
//! `${HA_RSCTMP}/VirtualDomain-<instance>.state`, lines of `key=value`, written
//! atomically and only when the content changes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ocf_common::statefile;
use ocf_common::Context;

/// What is remembered about a resource between invocations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cached {
    pub values: BTreeMap<String, String>,
}

impl Cached {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Sets `key` (`None` removes it). Values are kept on one line.
    pub fn set(&mut self, key: &str, value: Option<&str>) {
        match value {
            Some(v) => {
                self.values
                    .insert(key.to_string(), ocf_common::exit::one_line(v));
            }
            None => {
                self.values.remove(key);
            }
        }
    }

    fn parse(text: &str) -> Cached {
        let values = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Cached { values }
    }

    fn render(&self) -> String {
        self.values
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect()
    }
}

/// The state file of this resource: named after the resource instance (clone suffix
/// stripped for anonymous clones), or after the config path when run by hand.
pub fn path(ctx: &Context, config: Option<&str>) -> Option<PathBuf> {
    let key = match ctx.env.instance_for_state() {
        Some(i) => i,
        None => config?.to_string(),
    };
    let safe: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.:@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    Some(ctx.env.rsctmp().join(format!("VirtualDomain-{safe}.state")))
}

/// Whether the state file can be believed about which domain is ours: a regular file (not
/// a symlink) owned by the user the agent runs as (root, under Pacemaker), in a directory
/// (not a symlink) of that user that nobody else can write. Anyone else able to plant or
/// change it could make a probe report their VM as ours, or a stop destroy it.
/// `Err` says why not. A missing file is not trusted either (there is nothing to trust).
pub fn trusted(path: &std::path::Path) -> Result<(), String> {
    trusted_for(path, nix::unistd::geteuid().as_raw())
}

fn trusted_for(path: &std::path::Path, me: u32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let file = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !file.file_type().is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if file.uid() != me {
        return Err(format!(
            "{} belongs to uid {}, not {me}",
            path.display(),
            file.uid()
        ));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !meta.file_type().is_dir() {
        return Err(format!("{} is not a directory (a symlink?)", dir.display()));
    }
    if meta.uid() != me {
        return Err(format!(
            "{} belongs to uid {}, not {me}",
            dir.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} can be written by others (mode {:o})",
            dir.display(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Reads the state file; a missing or unreadable one is empty.
pub fn load(path: &std::path::Path) -> Cached {
    match statefile::read_string(path) {
        Ok(Some(text)) => Cached::parse(&text),
        Ok(None) => Cached::default(),
        Err(e) => {
            tracing::warn!("cannot read state file {}: {e}", path.display());
            Cached::default()
        }
    }
}

/// Writes the state file if `new` differs from `old`.
pub fn store(path: &std::path::Path, old: &Cached, new: &Cached) {
    if old == new {
        return;
    }
    if let Err(e) =
        statefile::write_atomic(path, new.render().as_bytes(), statefile::STATE_FILE_MODE)
    {
        tracing::warn!(
            "cannot write state file {}: {e}; the domain's identity is not remembered, so              should its config become unreadable, a probe could not find it",
            path.display()
        );
    }
}

/// Whether state files can be written next to `path` (validate-all at level 10): a file
/// is written there and removed. `Err` says what is wrong.
pub fn check_writable(path: &std::path::Path) -> std::io::Result<()> {
    let mut probe = path.as_os_str().to_owned();
    probe.push(".validate");
    let probe = std::path::PathBuf::from(probe);
    statefile::write_atomic(&probe, b"validate-all\n", statefile::STATE_FILE_MODE)?;
    statefile::remove(&probe).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ocf-identity-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        d
    }

    #[test]
    fn trusted_only_a_private_regular_file_of_ours() {
        let d = scratch("trust");
        let f = d.join("VirtualDomain-vm.state");
        assert!(trusted(&f).is_err(), "a missing file is not trusted");
        std::fs::write(&f, "name=vm\n").unwrap();
        assert_eq!(trusted(&f), Ok(()));

        // A directory others can write: anyone could have planted the file.
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(trusted(&f).unwrap_err().contains("written by others"));
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o775)).unwrap();
        assert!(trusted(&f).unwrap_err().contains("written by others"));
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();

        // A symlink, to the file or to its directory, is not the state file.
        let link = d.join("link.state");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert!(trusted(&link).unwrap_err().contains("not a regular file"));
        let dir_link = d.with_extension("link");
        let _ = std::fs::remove_file(&dir_link);
        std::os::unix::fs::symlink(&d, &dir_link).unwrap();
        assert!(trusted(&dir_link.join("VirtualDomain-vm.state"))
            .unwrap_err()
            .contains("not a directory"));
        std::fs::remove_file(&dir_link).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn trusted_refuses_a_file_or_directory_of_another_user() {
        let d = scratch("owner");
        let f = d.join("VirtualDomain-vm.state");
        std::fs::write(&f, "name=vm\n").unwrap();
        let me = nix::unistd::geteuid().as_raw();
        assert_eq!(trusted_for(&f, me), Ok(()));
        // Seen by another user, the same file and directory are someone else's.
        let other = me.wrapping_add(1);
        assert!(trusted_for(&f, other)
            .unwrap_err()
            .contains(&format!("belongs to uid {me}, not {other}")));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn round_trip_keeps_values_on_one_line() {
        let mut c = Cached::default();
        c.set("name", Some("vm1"));
        c.set("uuid", Some("u-1"));
        c.set("odd", Some("a\nb=c"));
        let back = Cached::parse(&c.render());
        assert_eq!(back, c);
        assert_eq!(back.get("odd"), Some("a b=c"));
        c.set("uuid", None);
        assert_eq!(c.get("uuid"), None);
        assert_eq!(Cached::parse("garbage\nname=x\n").get("name"), Some("x"));
    }
}
