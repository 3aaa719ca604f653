//! State files that are never half-written and never followed through a planted symlink.
//!
//! A write goes to a new temporary file in the same directory (created exclusively, not
//! following symlinks, mode 0600 unless told otherwise), is fsynced, renamed over the
//! target (which replaces a symlink rather than writing through it), and the directory
//! is fsynced. Reads refuse symlinks and anything but a regular file, never block (a FIFO
//! at the path is refused at once), and refuse a file larger than [`MAX_STATE_FILE_BYTES`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Mode of state files unless the caller asks otherwise.
pub const STATE_FILE_MODE: u32 = 0o600;
/// The largest state file read: they hold a few short lines.
pub const MAX_STATE_FILE_BYTES: u64 = 16 * 1024;
/// Mode of directories this module creates.
pub const STATE_DIR_MODE: u32 = 0o755;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Creates `dir` and its missing parents (mode 0755, like the shell library's state dir).
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(STATE_DIR_MODE)
        .create(dir)
}

fn parent_of(path: &Path) -> io::Result<&Path> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => Ok(p),
        Some(_) => Ok(Path::new(".")),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no parent directory", path.display()),
        )),
    }
}

/// Replaces `path` atomically with `contents` (mode `mode`), creating its directory if
/// missing. Readers see the old content or the new one, never a mixture, even if the
/// process is killed midway.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent_of(path)?;
    ensure_dir(dir)?;
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "state path has no file name")
    })?;
    let (tmp_path, mut tmp) = loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut name = std::ffi::OsString::from(".");
        name.push(file_name);
        name.push(format!(".tmp.{}.{n}", std::process::id()));
        let candidate: PathBuf = dir.join(name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&candidate)
        {
            Ok(f) => break (candidate, f),
            // Someone planted a file or link at that name: pick another name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    };
    let result = (|| {
        // The mode given to open() is filtered by the umask; set it exactly.
        tmp.set_permissions(fs::Permissions::from_mode(mode))?;
        tmp.write_all(contents)?;
        tmp.sync_all()?;
        fs::rename(&tmp_path, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp_path);
    }
    result
}

/// Reads `path`; `Ok(None)` when it does not exist. A symlink, a FIFO, a directory or a
/// device is refused, and so is a file larger than [`MAX_STATE_FILE_BYTES`].
pub fn read(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let rules = crate::regular_file::Rules {
        max_bytes: MAX_STATE_FILE_BYTES,
        follow_symlinks: false,
    };
    Ok(crate::regular_file::read(path, rules)?)
}

/// Reads `path` as UTF-8 text (lossily); `Ok(None)` when it does not exist.
pub fn read_string(path: &Path) -> io::Result<Option<String>> {
    Ok(read(path)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// Whether `path` is a regular file (a symlink, even to a file, is not a state file).
pub fn is_present(path: &Path) -> bool {
    fs::symlink_metadata(path)
        .map(|m| m.file_type().is_file())
        .unwrap_or(false)
}

/// Removes `path` (the link itself if it is a symlink). `Ok(false)` when it was absent.
pub fn remove(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn write_creates_directory_and_file_with_a_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/state");
        write_atomic(&path, b"one", STATE_FILE_MODE).unwrap();
        assert_eq!(read(&path).unwrap().as_deref(), Some(&b"one"[..]));
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        write_atomic(&path, b"two", 0o644).unwrap();
        assert_eq!(read_string(&path).unwrap().as_deref(), Some("two"));
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path().join("a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state")]);
    }

    #[test]
    fn a_planted_symlink_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let path = dir.path().join("state");
        symlink(&victim, &path).unwrap();
        // Reading through the link is refused...
        assert!(read(&path).is_err());
        assert!(!is_present(&path));
        // ...and writing replaces the link itself.
        write_atomic(&path, b"ours", STATE_FILE_MODE).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert!(fs::symlink_metadata(&path).unwrap().file_type().is_file());
        assert_eq!(fs::read(&path).unwrap(), b"ours");
    }

    #[test]
    fn planted_temporary_names_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let path = dir.path().join("state");
        // Plant links at the next few temporary names this process would use.
        let next = COUNTER.load(Ordering::Relaxed);
        for n in next..next + 8 {
            let tmp = dir
                .path()
                .join(format!(".state.tmp.{}.{n}", std::process::id()));
            symlink(&victim, &tmp).unwrap();
        }
        write_atomic(&path, b"ours", STATE_FILE_MODE).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert_eq!(fs::read(&path).unwrap(), b"ours");
    }

    #[test]
    fn absent_files_read_as_none_and_remove_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nothing");
        assert_eq!(read(&path).unwrap(), None);
        assert!(!is_present(&path));
        assert!(!remove(&path).unwrap());
        write_atomic(&path, b"", STATE_FILE_MODE).unwrap();
        assert!(is_present(&path));
        assert!(remove(&path).unwrap());
        assert!(!is_present(&path));
    }

    #[test]
    fn a_failed_write_leaves_the_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_atomic(&path, b"old", STATE_FILE_MODE).unwrap();
        // A directory where the file should be makes the rename fail.
        let blocked = dir.path().join("blocked");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("keep"), b"x").unwrap();
        assert!(write_atomic(&blocked, b"new", STATE_FILE_MODE).is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        let leftovers = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".tmp.")
            })
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn fifos_and_oversized_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = read(&fifo).unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
        let big = dir.path().join("big");
        File::create(&big).unwrap().set_len(10 << 30).unwrap();
        let e = read_string(&big).unwrap_err();
        assert!(e.to_string().starts_with("is larger than 16 KiB"), "{e}");
        assert!(read(dir.path()).is_err());
    }
}
