//! The guest's hypervisor process seen without libvirt: when libvirtd is down or hung,
//! monitor and stop still need to know whether the guest runs, and stop must end it.
//!
//! libvirt writes the pid of each running guest's process to
//! `/run/libvirt/<driver>/<name>.pid`; the pid is trusted only if `/proc/<pid>` is a
//! live process whose command line names the domain (and, when known, whose binary is
//! the domain's emulator), so a stale file or a reused pid is never taken for the guest.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The directories libvirt's system daemons keep pid files in.
const RUN_DIRS: &[&str] = &[
    "/run/libvirt/qemu",
    "/run/libvirt/lxc",
    "/run/libvirt/libxl",
];

fn pid_files(name: &str) -> impl Iterator<Item = PathBuf> + '_ {
    RUN_DIRS
        .iter()
        .map(move |d| Path::new(d).join(format!("{name}.pid")))
}

fn cmdline(pid: i32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

/// Whether `pid` is a zombie or gone.
fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => true,
    }
}

/// Whether a process's arguments name the domain: qemu's `-name guest=NAME,...` or
/// `-name NAME`, or libvirt_lxc's `--name NAME`.
fn names_domain(args: &[String], name: &str) -> bool {
    args.windows(2).any(|w| {
        (w[0] == "-name" || w[0] == "--name")
            && (w[1] == name
                || w[1]
                    .split(',')
                    .any(|part| part.strip_prefix("guest=") == Some(name)))
    })
}

/// The pid of the domain's running hypervisor process, if there is one.
pub fn find(name: &str, emulator: Option<&str>) -> Option<i32> {
    for file in pid_files(name) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let Ok(pid) = text.trim().parse::<i32>() else {
            continue;
        };
        if pid <= 1 || is_dead(pid) {
            continue;
        }
        let Some(args) = cmdline(pid) else { continue };
        if !names_domain(&args, name) {
            continue;
        }
        if let Some(emu) = emulator {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            let base = |p: &Path| p.file_name().map(|f| f.to_string_lossy().into_owned());
            let want = base(Path::new(emu));
            let have = exe.as_deref().and_then(base);
            // Compare binaries by name: the file may have been replaced by an upgrade.
            if have.is_some()
                && want.is_some()
                && have.as_deref().map(|h| h.trim_end_matches(" (deleted)")) != want.as_deref()
            {
                continue;
            }
        }
        return Some(pid);
    }
    None
}

/// Ends process `pid`: SIGTERM, then SIGKILL halfway to `until`; `Ok` once it is gone.
pub fn terminate(pid: i32, until: Instant) -> Result<(), String> {
    let p = Pid::from_raw(pid);
    let start = Instant::now();
    let kill_at = start + until.saturating_duration_since(start) / 2;
    let _ = kill(p, Signal::SIGTERM);
    let mut killed = false;
    loop {
        if is_dead(pid) {
            return Ok(());
        }
        let now = Instant::now();
        if !killed && now >= kill_at {
            let _ = kill(p, Signal::SIGKILL);
            killed = true;
        }
        if now >= until {
            return Err(format!("process {pid} still exists after SIGKILL"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_lines_that_name_the_domain() {
        assert!(names_domain(
            &args(&["qemu", "-name", "guest=vm1,debug-threads=on"]),
            "vm1"
        ));
        assert!(names_domain(&args(&["qemu", "-name", "vm1"]), "vm1"));
        assert!(names_domain(&args(&["libvirt_lxc", "--name", "c1"]), "c1"));
        assert!(!names_domain(
            &args(&["qemu", "-name", "guest=vm10"]),
            "vm1"
        ));
        assert!(!names_domain(&args(&["qemu", "vm1"]), "vm1"));
    }

    #[test]
    fn a_real_child_is_terminated() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        assert!(!is_dead(pid));
        // The child becomes a zombie until reaped, which counts as dead.
        terminate(pid, Instant::now() + Duration::from_secs(5)).unwrap();
        assert!(is_dead(pid));
        assert!(!child.wait().unwrap().success());
    }

    #[test]
    fn no_pid_file_means_no_process() {
        assert_eq!(find("no-such-domain-ocf-rs-test", None), None);
    }
}
