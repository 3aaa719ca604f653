//! Reading the files an agent is pointed at (its config, its state file) without ever
//! blocking on them and without reading more than such a file can hold.
//!
//! A file is opened non-blocking, so a FIFO at the path answers at once instead of
//! waiting for a writer; only a regular file is read (a FIFO, a directory, a device or a
//! socket is refused by its kind); its size is checked against a cap before and while
//! reading, so a huge (or sparse) file costs nothing. Storage that does not answer at all
//! (a hung NFS mount blocks `open` and `stat` in the kernel) is handled by
//! [`read_within`]: the read runs on its own thread and the caller stops waiting at its
//! deadline; the abandoned thread ends with the process.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How a file may be read.
#[derive(Copy, Clone, Debug)]
pub struct Rules {
    /// The largest size accepted, in bytes.
    pub max_bytes: u64,
    /// Whether a symbolic link at the path is followed (to a regular file) or refused.
    pub follow_symlinks: bool,
}

/// Why a file was not read.
#[derive(Debug)]
pub enum ReadError {
    /// Something other than a regular file is at the path ("a FIFO", "a directory", ...).
    NotRegular { kind: &'static str },
    /// The file is larger than the cap.
    TooLarge { size: u64, max: u64 },
    /// The read did not finish by the deadline (unresponsive storage).
    TimedOut { after: Duration },
    /// open or read failed (permissions, I/O error, ...).
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NotRegular { kind } => write!(f, "is {kind}, not a regular file"),
            ReadError::TooLarge { size, max } => {
                write!(f, "is larger than {} ({size} bytes)", human_size(*max))
            }
            ReadError::TimedOut { after } => write!(
                f,
                "could not be read within {:.1} s (unresponsive storage?)",
                after.as_secs_f64()
            ),
            ReadError::Io(e) => write!(f, "cannot be read: {e}"),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<ReadError> for io::Error {
    fn from(e: ReadError) -> io::Error {
        match e {
            ReadError::Io(e) => e,
            ReadError::TimedOut { .. } => io::Error::new(io::ErrorKind::TimedOut, e.to_string()),
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

fn human_size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes & ((1 << 20) - 1) == 0 {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes & ((1 << 10) - 1) == 0 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a file"
    }
}

/// Reads the regular file at `path` under `rules`; `Ok(None)` when nothing is there.
pub fn read(path: &Path, rules: Rules) -> Result<Option<Vec<u8>>, ReadError> {
    match open_regular(path, rules.follow_symlinks)? {
        Some(file) => read_open(file, rules.max_bytes).map(Some),
        None => Ok(None),
    }
}

/// The first `n` bytes of the regular file at `path` (fewer when it is shorter), whatever
/// its size; `Ok(None)` when nothing is there.
pub fn head(path: &Path, n: usize, follow_symlinks: bool) -> Result<Option<Vec<u8>>, ReadError> {
    let Some(file) = open_regular(path, follow_symlinks)? else {
        return Ok(None);
    };
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular {
            kind: kind_of(meta.file_type()),
        });
    }
    let mut buf = Vec::with_capacity(n);
    file.take(n as u64)
        .read_to_end(&mut buf)
        .map_err(ReadError::Io)?;
    Ok(Some(buf))
}

/// [`head`] on its own thread, waiting for it until `until`.
pub fn head_within(
    path: &Path,
    n: usize,
    follow_symlinks: bool,
    until: Instant,
) -> Result<Option<Vec<u8>>, ReadError> {
    let owned: PathBuf = path.to_path_buf();
    within(until, move || head(&owned, n, follow_symlinks))
}

/// The metadata of whatever is at `path` (`Ok(None)`: nothing), on its own thread and
/// waited for until `until`: a `stat` on storage that hangs gives
/// [`ReadError::TimedOut`] instead of a hung action.
pub fn metadata_within(
    path: &Path,
    follow_symlinks: bool,
    until: Instant,
) -> Result<Option<std::fs::Metadata>, ReadError> {
    let owned: PathBuf = path.to_path_buf();
    within(until, move || {
        let m = match follow_symlinks {
            true => std::fs::metadata(&owned),
            false => std::fs::symlink_metadata(&owned),
        };
        match m {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ReadError::Io(e)),
        }
    })
}

/// Opens the regular file at `path` non-blocking; `Ok(None)` when nothing is there.
fn open_regular(path: &Path, follow_symlinks: bool) -> Result<Option<File>, ReadError> {
    let mut flags = nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY | nix::libc::O_CLOEXEC;
    if !follow_symlinks {
        flags |= nix::libc::O_NOFOLLOW;
    }
    // Look before opening, so that a device is never opened (an open can have effects);
    // the opened file is checked again, as the path may have changed in between.
    let before = if follow_symlinks {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    };
    match before {
        Ok(m) if !m.file_type().is_file() => {
            return Err(ReadError::NotRegular {
                kind: kind_of(m.file_type()),
            })
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReadError::Io(e)),
    }
    match OpenOptions::new().read(true).custom_flags(flags).open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        // O_NOFOLLOW on a link that appeared since the look.
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => Err(ReadError::NotRegular {
            kind: "a symbolic link",
        }),
        Err(e) => Err(ReadError::Io(e)),
    }
}

fn read_open(file: File, max: u64) -> Result<Vec<u8>, ReadError> {
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular {
            kind: kind_of(meta.file_type()),
        });
    }
    if meta.len() > max {
        return Err(ReadError::TooLarge {
            size: meta.len(),
            max,
        });
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    // One byte more than the cap tells a file that grew since fstat.
    file.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(ReadError::Io)?;
    if buf.len() as u64 > max {
        return Err(ReadError::TooLarge {
            size: buf.len() as u64,
            max,
        });
    }
    Ok(buf)
}

/// [`read`] on its own thread, waiting for it until `until`: storage that hangs gives
/// [`ReadError::TimedOut`] instead of a hung action.
pub fn read_within(
    path: &Path,
    rules: Rules,
    until: Instant,
) -> Result<Option<Vec<u8>>, ReadError> {
    let owned: PathBuf = path.to_path_buf();
    within(until, move || read(&owned, rules))
}

/// Runs `work` on its own thread and waits for its answer until `until`.
fn within<T: Send + 'static>(
    until: Instant,
    work: impl FnOnce() -> Result<T, ReadError> + Send + 'static,
) -> Result<T, ReadError> {
    let started = Instant::now();
    let (tx, rx) = sync_channel(1);
    std::thread::Builder::new()
        .name("read file".into())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(ReadError::Io)?;
    match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
        Ok(result) => result,
        Err(RecvTimeoutError::Timeout) => Err(ReadError::TimedOut {
            after: started.elapsed(),
        }),
        Err(RecvTimeoutError::Disconnected) => Err(ReadError::Io(io::Error::other(
            "the reading thread ended without an answer",
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_reads_the_start_of_a_file_of_any_size_and_never_a_fifo() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("disk.img");
        let f = File::create(&big).unwrap();
        f.set_len(1 << 40).unwrap();
        drop(f);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&big)
            .and_then(|mut f| io::Write::write_all(&mut f, b"QFI\xfbrest"))
            .unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        assert_eq!(
            head_within(&big, 4, true, until).unwrap().unwrap(),
            b"QFI\xfb"
        );
        let short = dir.path().join("short");
        std::fs::write(&short, b"ab").unwrap();
        assert_eq!(head(&short, 4, true).unwrap().unwrap(), b"ab");
        assert!(head(&dir.path().join("none"), 4, true).unwrap().is_none());
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let t = Instant::now();
        assert!(matches!(
            head_within(&fifo, 4, true, until),
            Err(ReadError::NotRegular { kind: "a FIFO" })
        ));
        assert!(t.elapsed() < Duration::from_secs(1));
        assert!(metadata_within(&fifo, true, until).unwrap().is_some());
        assert!(metadata_within(&dir.path().join("none"), true, until)
            .unwrap()
            .is_none());
    }
    use std::os::unix::fs::symlink;

    const RULES: Rules = Rules {
        max_bytes: 16,
        follow_symlinks: false,
    };

    #[test]
    fn a_regular_file_within_the_cap_is_read_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789abcdef").unwrap();
        assert_eq!(read(&p, RULES).unwrap().unwrap(), b"0123456789abcdef");
        assert!(read(&dir.path().join("none"), RULES).unwrap().is_none());
    }

    #[test]
    fn a_fifo_is_refused_at_once_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fifo");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let t = Instant::now();
        let e = read(&p, RULES).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(1));
        assert!(
            matches!(e, ReadError::NotRegular { kind: "a FIFO" }),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "is a FIFO, not a regular file");
        // Also when the look before the open is passed: the open itself must not block.
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&p)
            .unwrap();
        let e = read_open(f, 16).unwrap_err();
        assert!(
            matches!(e, ReadError::NotRegular { kind: "a FIFO" }),
            "{e:?}"
        );
    }

    #[test]
    fn directories_and_devices_are_refused_by_their_kind() {
        let dir = tempfile::tempdir().unwrap();
        let e = read(dir.path(), RULES).unwrap_err();
        assert_eq!(e.to_string(), "is a directory, not a regular file");
        let e = read(Path::new("/dev/zero"), RULES).unwrap_err();
        assert_eq!(e.to_string(), "is a character device, not a regular file");
    }

    #[test]
    fn an_oversized_file_is_refused_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        std::fs::write(&p, [b'x'; 17]).unwrap();
        let e = read(&p, RULES).unwrap_err();
        assert!(
            matches!(e, ReadError::TooLarge { size: 17, max: 16 }),
            "{e:?}"
        );
        // A sparse file of 1 TiB: refused from its size, at once.
        let sparse = dir.path().join("sparse");
        File::create(&sparse).unwrap().set_len(1 << 40).unwrap();
        let t = Instant::now();
        let e = read(
            &sparse,
            Rules {
                max_bytes: 4 << 20,
                follow_symlinks: true,
            },
        )
        .unwrap_err();
        assert!(t.elapsed() < Duration::from_millis(500));
        assert_eq!(e.to_string(), "is larger than 4 MiB (1099511627776 bytes)");
    }

    #[test]
    fn symlinks_are_followed_or_refused_as_the_rules_say() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"text").unwrap();
        let link = dir.path().join("link");
        symlink(&target, &link).unwrap();
        let e = read(&link, RULES).unwrap_err();
        assert!(
            matches!(
                e,
                ReadError::NotRegular {
                    kind: "a symbolic link"
                }
            ),
            "{e:?}"
        );
        let follow = Rules {
            follow_symlinks: true,
            ..RULES
        };
        assert_eq!(read(&link, follow).unwrap().unwrap(), b"text");
        // A link to a FIFO is judged by what it points to.
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let to_fifo = dir.path().join("to-fifo");
        symlink(&fifo, &to_fifo).unwrap();
        assert!(matches!(
            read(&to_fifo, follow).unwrap_err(),
            ReadError::NotRegular { kind: "a FIFO" }
        ));
    }

    #[test]
    fn read_within_answers_and_gives_up_on_hung_storage_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"ok").unwrap();
        let soon = Instant::now() + Duration::from_secs(5);
        assert_eq!(read_within(&p, RULES, soon).unwrap().unwrap(), b"ok");
        // A read that never returns (as open(2) on a hung NFS mount).
        let t = Instant::now();
        let e = within(t + Duration::from_millis(200), || {
            std::thread::sleep(Duration::from_secs(30));
            Ok(())
        })
        .unwrap_err();
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(190), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert!(matches!(e, ReadError::TimedOut { .. }), "{e:?}");
        assert!(
            e.to_string().starts_with("could not be read within 0."),
            "{e}"
        );
    }
}
