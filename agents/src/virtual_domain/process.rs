//! The guest's hypervisor process seen without libvirt: when libvirtd is down or hung,
//! monitor and stop still need to know whether the guest runs, and stop must end it.
//!
//! This evidence exists only where guests are local processes whose command line says
//! which guest they are: qemu's system driver ([`is_authoritative`]). A remote URI, Xen
//! or a session daemon has no such process here, so its absence proves nothing.
//!
//! A process is the guest's when what qemu was given names it: `-uuid` equal to the
//! domain's UUID (when known) and `-name guest=NAME` read as qemu reads it (`,,` is an
//! escaped comma). The binary's name is never used: emulators are symlinks or wrapper
//! scripts. libvirt's pid file (`<run>/<name>.pid`) is only the first place to look;
//! the guest is *gone* only when no process in `/proc` is the guest's and every process
//! could be read.

use std::io::ErrorKind;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::Identity;

/// Where libvirt's qemu system driver keeps its pid files.
const QEMU_RUN_DIR: &str = "/run/libvirt/qemu";

/// Whether a guest reached through `uri` (libvirt's default when `None`) is a local qemu
/// process of the system driver, so that the process's absence proves the guest stopped:
/// `qemu:///system` and `qemu+unix:///system`, with any `?options`. `Err` says why not.
pub fn is_authoritative(uri: Option<&str>) -> Result<(), String> {
    let Some(uri) = uri.map(str::trim).filter(|u| !u.is_empty()) else {
        return Err(
            "libvirt's default URI is unknown without libvirt (set hypervisor=qemu:///system)"
                .into(),
        );
    };
    let not_local = || format!("{uri} guests are not local qemu processes");
    let (scheme, rest) = uri.split_once("://").ok_or_else(not_local)?;
    if scheme != "qemu" && scheme != "qemu+unix" {
        return Err(not_local());
    }
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if !host.is_empty() || path != "/system" {
        return Err(not_local());
    }
    Ok(())
}

/// What `/proc` says about a guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// The guest's live processes (the pid file's first).
    Alive(Vec<i32>),
    /// No process of the guest exists: every process was read and none is the guest's.
    Gone,
    /// Neither can be proven; the text says why.
    Unknown(String),
}

/// How a process relates to the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Relation {
    Guest,
    Foreign,
    /// Half of the identity matches: neither ours nor provably not.
    Conflict(String),
}

/// The `-name` and `-uuid` qemu was given (the last of each, as qemu takes them).
fn qemu_identity(args: &[String]) -> (Option<String>, Option<String>) {
    let mut name = None;
    let mut uuid = None;
    for w in args.windows(2) {
        match w[0].as_str() {
            "-name" | "--name" => name = guest_name(&w[1]),
            "-uuid" | "--uuid" => uuid = Some(w[1].clone()),
            _ => {}
        }
    }
    (name, uuid)
}

/// The guest name in qemu's `-name` option value: `guest=NAME,...` or an implied
/// `NAME,...`, where `,,` stands for a comma (qemu's option syntax).
fn guest_name(value: &str) -> Option<String> {
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                field.push(',');
            } else {
                fields.push(std::mem::take(&mut field));
            }
        } else {
            field.push(c);
        }
    }
    fields.push(field);
    // qemu decides whether the first field has a key from the raw text: a '=' before
    // any ','.
    let first_has_key = value.find(['=', ',']).map(|i| value.as_bytes()[i]) == Some(b'=');
    let mut name = None;
    for (i, field) in fields.iter().enumerate() {
        match field.split_once('=') {
            Some(("guest", v)) if i > 0 || first_has_key => name = Some(v.to_string()),
            _ if i == 0 && !first_has_key => name = Some(field.clone()),
            _ => {}
        }
    }
    name
}

/// A UUID as 32 lower-case hex digits (libvirt accepts dashes anywhere and any case).
fn normalized_uuid(uuid: &str) -> Option<String> {
    let hex: String = uuid
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(hex)
}

/// Whether a process with these arguments is the guest `id`. With a known UUID both the
/// UUID and the name must match (one without the other is a conflict; another UUID is
/// another domain, as libvirt sees it); without one, the name decides.
fn relation(args: &[String], id: &Identity) -> Relation {
    let (name, uuid) = qemu_identity(args);
    let name_matches = name.as_deref() == Some(id.name.as_str());
    let Some(ours) = id.uuid.as_deref().and_then(normalized_uuid) else {
        return if name_matches {
            Relation::Guest
        } else {
            Relation::Foreign
        };
    };
    let uuid_matches = uuid.as_deref().and_then(normalized_uuid).as_deref() == Some(&ours);
    match (uuid_matches, name_matches) {
        (true, true) => Relation::Guest,
        (true, false) => Relation::Conflict(format!(
            "a process has the UUID of domain {} but the name {}",
            id.name,
            name.as_deref().unwrap_or("(none)")
        )),
        (false, _) => Relation::Foreign,
    }
}

/// A process's state as `/proc/PID` shows it.
enum Proc {
    /// No such process, or a zombie (it has exited: it holds no files any more).
    Dead,
    Live(Vec<String>),
    Unreadable(String),
}

/// The processes of a host: a `/proc` tree and libvirt's qemu run directory (both
/// parameters, so that tests use a fake tree).
#[derive(Clone, Debug)]
pub struct Processes {
    proc: PathBuf,
    run: PathBuf,
}

impl Processes {
    /// This host's `/proc` and `/run/libvirt/qemu`.
    pub fn system() -> Processes {
        Processes::at("/proc", QEMU_RUN_DIR)
    }

    pub fn at(proc: impl Into<PathBuf>, run: impl Into<PathBuf>) -> Processes {
        Processes {
            proc: proc.into(),
            run: run.into(),
        }
    }

    fn read(&self, pid: i32) -> Proc {
        let dir = self.proc.join(pid.to_string());
        let stat = match std::fs::read_to_string(dir.join("stat")) {
            Ok(s) => s,
            Err(e) if gone(&e) => return Proc::Dead,
            Err(e) => return Proc::Unreadable(format!("{}/stat: {e}", dir.display())),
        };
        // "PID (COMM) STATE ...": COMM may contain anything, so split at the last ')'.
        let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
        if state.is_some_and(|s| s.starts_with('Z') || s.starts_with('X')) {
            return Proc::Dead;
        }
        match std::fs::read(dir.join("cmdline")) {
            Ok(raw) => Proc::Live(
                raw.split(|b| *b == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            ),
            Err(e) if gone(&e) => Proc::Dead,
            Err(e) => Proc::Unreadable(format!("{}/cmdline: {e}", dir.display())),
        }
    }

    /// The network namespace of `pid` ("self" for ours), when it can be read.
    fn netns(&self, pid: &str) -> Option<PathBuf> {
        std::fs::read_link(self.proc.join(pid).join("ns/net")).ok()
    }

    /// Whether `pid` is, right now, a live process of the guest.
    fn is_guest(&self, pid: i32, id: &Identity) -> bool {
        matches!(self.read(pid), Proc::Live(args) if relation(&args, id) == Relation::Guest)
    }

    /// The pid libvirt recorded for the guest, if the file holds one. Read as a small
    /// regular file only (a FIFO or a huge file there is no pid file, and no hang).
    fn pid_file(&self, name: &str) -> Option<i32> {
        let rules = ocf_common::regular_file::Rules {
            max_bytes: 64,
            follow_symlinks: false,
        };
        let bytes =
            ocf_common::regular_file::read(&self.run.join(format!("{name}.pid")), rules).ok()??;
        std::str::from_utf8(&bytes)
            .ok()?
            .trim()
            .parse::<i32>()
            .ok()
            .filter(|p| *p > 1)
    }

    /// Whether the guest `id` has a live process here.
    pub fn find(&self, id: &Identity) -> Evidence {
        if let Some(pid) = self.pid_file(&id.name) {
            if self.is_guest(pid, id) {
                return Evidence::Alive(vec![pid]);
            }
        }
        let entries = match std::fs::read_dir(&self.proc) {
            Ok(e) => e,
            Err(e) => {
                return Evidence::Unknown(format!("cannot read {}: {e}", self.proc.display()))
            }
        };
        let mut alive = Vec::new();
        let mut doubt = None;
        // Several libvirtds may share one /proc (hosts in network namespaces on one
        // machine): a guest process of another namespace is another host's, not ours,
        // and not proof of anything either.
        let our_net = self.netns("self");
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    doubt = Some(format!("cannot read {}: {e}", self.proc.display()));
                    continue;
                }
            };
            let Some(pid) = ocf_common::child::proc_pid(&entry) else {
                continue;
            };
            match self.read(pid) {
                Proc::Dead => {}
                Proc::Unreadable(why) => doubt = Some(format!("cannot read {why}")),
                Proc::Live(args) => match relation(&args, id) {
                    Relation::Guest if self.netns(&pid.to_string()) == our_net => alive.push(pid),
                    Relation::Guest => {
                        doubt = Some(format!(
                            "a process of domain {} (pid {pid}) runs in another network namespace",
                            id.name
                        ))
                    }
                    Relation::Foreign => {}
                    Relation::Conflict(why) => doubt = Some(format!("{why} (pid {pid})")),
                },
            }
        }
        alive.sort_unstable();
        match (alive.is_empty(), doubt) {
            (false, _) => Evidence::Alive(alive),
            (true, Some(why)) => Evidence::Unknown(why),
            (true, None) => Evidence::Gone,
        }
    }

    /// Ends the guest's processes `pids`: SIGTERM, then SIGKILL halfway to `until`.
    /// A pid is signalled only while it is still the guest's (checked right before each
    /// signal), so a pid reused meanwhile is left alone. `Ok` once none is the guest's.
    pub fn terminate(&self, id: &Identity, pids: &[i32], until: Instant) -> Result<(), String> {
        let start = Instant::now();
        let kill_at = start + until.saturating_duration_since(start) / 2;
        let signal = |sig: Signal| {
            for &pid in pids {
                if self.is_guest(pid, id) {
                    let _ = kill(Pid::from_raw(pid), sig);
                }
            }
        };
        signal(Signal::SIGTERM);
        let mut killed = false;
        loop {
            let left: Vec<i32> = pids
                .iter()
                .copied()
                .filter(|p| self.is_guest(*p, id))
                .collect();
            if left.is_empty() {
                return Ok(());
            }
            let now = Instant::now();
            if !killed && now >= kill_at {
                signal(Signal::SIGKILL);
                killed = true;
            }
            if now >= until {
                return Err(format!(
                    "process {} still exists after SIGKILL",
                    join_pids(&left)
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Processes {
    /// Ends every process of the guest `id` before `until`: `Ok` with the pids ended
    /// (none: no process of the guest ran) once none is left; `Err` with the reason when
    /// that cannot be proven — a process survived, the time ran out, or `/proc` could
    /// not tell. A wrapper's qemu that shows up once the wrapper is gone is ended too.
    pub fn end_guest(&self, id: &Identity, until: Instant) -> Result<Vec<i32>, String> {
        let mut ended: Vec<i32> = Vec::new();
        loop {
            match self.find(id) {
                Evidence::Gone => return Ok(ended),
                Evidence::Unknown(why) => {
                    return Err(format!(
                        "cannot tell whether domain {} still runs: {why}",
                        id.name
                    ))
                }
                Evidence::Alive(pids) => {
                    let done = match Instant::now() >= until {
                        true => Err("no time left".to_string()),
                        false => self.terminate(id, &pids, until),
                    };
                    if let Err(why) = done {
                        return Err(format!(
                            "could not end process {} of domain {}: {why}",
                            join_pids(&pids),
                            id.name
                        ));
                    }
                    ended.extend(pids);
                }
            }
        }
    }
}

/// "123" or "123, 456".
pub fn join_pids(pids: &[i32]) -> String {
    pids.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn gone(e: &std::io::Error) -> bool {
    // ESRCH: the process exited while its files were being read.
    e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(nix::libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const UUID: &str = "6a6e4f0e-2f0a-4c5b-9f7e-00000000000a";
    const OTHER_UUID: &str = "6a6e4f0e-2f0a-4c5b-9f7e-00000000000b";

    fn id(name: &str, uuid: Option<&str>) -> Identity {
        Identity {
            name: name.into(),
            uuid: uuid.map(str::to_string),
            uuid_assigned: false,
        }
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    /// The arguments libvirt 9 gives qemu (trimmed), with the name escaped as libvirt does.
    fn qemu_args(exe: &str, name: &str, uuid: &str) -> Vec<String> {
        let escaped = name.replace(',', ",,");
        args(&[
            exe,
            "-name",
            &format!("guest={escaped},debug-threads=on"),
            "-S",
            "-machine",
            "pc,usb=off",
            "-uuid",
            uuid,
            "-no-user-config",
        ])
    }

    /// A fake /proc tree and libvirt run directory.
    struct Fake {
        dir: tempfile::TempDir,
    }

    impl Fake {
        fn new() -> Fake {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir(dir.path().join("proc")).unwrap();
            fs::create_dir(dir.path().join("run")).unwrap();
            // Entries that are not processes.
            fs::create_dir(dir.path().join("proc/self")).unwrap();
            fs::write(dir.path().join("proc/uptime"), "1.0 1.0\n").unwrap();
            Fake { dir }
        }
        fn host(&self) -> Processes {
            Processes::at(self.dir.path().join("proc"), self.dir.path().join("run"))
        }
        fn process(&self, pid: i32, state: char, argv: &[String], exe: Option<&str>) {
            let d = self.dir.path().join(format!("proc/{pid}"));
            fs::create_dir_all(&d).unwrap();
            let comm = argv
                .first()
                .map(|a| a.rsplit('/').next().unwrap().to_string())
                .unwrap_or_default();
            fs::write(
                d.join("stat"),
                format!("{pid} ({comm}) {state} 1 {pid} {pid} 0\n"),
            )
            .unwrap();
            let mut raw = Vec::new();
            for a in argv {
                raw.extend_from_slice(a.as_bytes());
                raw.push(0);
            }
            fs::write(d.join("cmdline"), raw).unwrap();
            if let Some(exe) = exe {
                std::os::unix::fs::symlink(exe, d.join("exe")).unwrap();
            }
        }
        fn exit(&self, pid: i32) {
            fs::remove_dir_all(self.dir.path().join(format!("proc/{pid}"))).unwrap();
        }
        fn pid_file(&self, name: &str, text: &str) {
            fs::write(self.dir.path().join(format!("run/{name}.pid")), text).unwrap();
        }
    }

    #[test]
    fn qemu_name_option_is_read_as_qemu_reads_it() {
        assert_eq!(
            guest_name("guest=vm1,debug-threads=on").as_deref(),
            Some("vm1")
        );
        assert_eq!(guest_name("vm1").as_deref(), Some("vm1"));
        assert_eq!(guest_name("vm1,debug-threads=on").as_deref(), Some("vm1"));
        assert_eq!(
            guest_name("guest=a,,b,debug-threads=on").as_deref(),
            Some("a,b")
        );
        assert_eq!(guest_name("guest=a,,,,b").as_deref(), Some("a,,b"));
        assert_eq!(guest_name("guest=a,,").as_deref(), Some("a,"));
        assert_eq!(guest_name("process=x,guest=vm2").as_deref(), Some("vm2"));
        assert_eq!(guest_name("a,,b=c").as_deref(), Some("a,b=c"));
        assert_eq!(guest_name("debug-threads=on"), None);
    }

    #[test]
    fn a_process_is_the_guest_by_uuid_and_escaped_name() {
        let web = id("web,db", Some(UUID));
        let argv = qemu_args("/usr/bin/qemu-system-x86_64", "web,db", UUID);
        assert_eq!(relation(&argv, &web), Relation::Guest);
        // Case and dashes of the UUID do not matter.
        let upper = id("web,db", Some(&UUID.to_uppercase().replace('-', "")));
        assert_eq!(relation(&argv, &upper), Relation::Guest);
        // Another domain whose name starts like ours is not ours ("guest=web" then "db").
        assert_eq!(relation(&argv, &id("web", None)), Relation::Foreign);
        assert_eq!(
            relation(&argv, &id("web", Some(OTHER_UUID))),
            Relation::Foreign
        );
        // Without a known UUID the name decides.
        assert_eq!(relation(&argv, &id("web,db", None)), Relation::Guest);
        // Our name with another UUID: another domain (libvirt would say the same).
        assert_eq!(
            relation(&argv, &id("web,db", Some(OTHER_UUID))),
            Relation::Foreign
        );
        // Our UUID under another name: neither provably ours nor provably not.
        let renamed = qemu_args("/usr/bin/qemu-system-x86_64", "web2", UUID);
        assert!(matches!(relation(&renamed, &web), Relation::Conflict(_)));
        // Arguments that only contain the words are not options.
        let pgrep = args(&["pgrep", "-f", "-name guest=web,,db, -uuid", UUID]);
        assert_eq!(relation(&pgrep, &id("web,db", None)), Relation::Foreign);
        assert_eq!(
            relation(&args(&["qemu", "web,db"]), &id("web,db", None)),
            Relation::Foreign
        );
    }

    #[test]
    fn uri_classification() {
        for local in [
            "qemu:///system",
            "qemu:///system?mode=direct",
            "qemu+unix:///system",
            "qemu+unix:///system?socket=/run/other/libvirt-sock",
        ] {
            assert_eq!(is_authoritative(Some(local)), Ok(()), "{local}");
        }
        for other in [
            "qemu+tcp://127.0.0.1:1/system",
            "qemu+tcp:///system",
            "qemu+ssh://root@node2/system",
            "qemu://node2/system",
            "qemu+unix://node2/system",
            "qemu:///session",
            "qemu+unix:///session",
            "qemu:///embed?root=/tmp/x",
            "qemu:///systemd",
            "xen:///system",
            "xen:///",
            "lxc:///system",
            "test:///default",
            "myalias",
            "",
        ] {
            let why = is_authoritative(Some(other)).unwrap_err();
            assert!(!why.is_empty(), "{other}");
        }
        assert!(is_authoritative(None).unwrap_err().contains("hypervisor="));
    }

    #[test]
    fn the_pid_file_process_is_found_by_its_arguments() {
        let f = Fake::new();
        let vm = id("vm1", Some(UUID));
        f.process(
            4242,
            'S',
            &qemu_args("/usr/bin/qemu-system-x86_64", "vm1", UUID),
            None,
        );
        f.pid_file("vm1", "4242\n");
        assert_eq!(f.host().find(&vm), Evidence::Alive(vec![4242]));
    }

    #[test]
    fn a_symlinked_emulator_or_an_exec_wrapper_does_not_hide_the_guest() {
        let f = Fake::new();
        let vm = id("vm1", Some(UUID));
        // <emulator>/usr/bin/kvm</emulator>, a symlink: exe is the target binary.
        f.process(
            300,
            'S',
            &qemu_args("/usr/bin/kvm", "vm1", UUID),
            Some("/usr/bin/qemu-system-x86_64"),
        );
        f.pid_file("vm1", "300");
        assert_eq!(f.host().find(&vm), Evidence::Alive(vec![300]));
        // A wrapper script that exec'd qemu after an upgrade replaced the binary.
        let f = Fake::new();
        f.process(
            301,
            'R',
            &qemu_args("/usr/local/bin/qemu-wrap", "vm1", UUID),
            Some("/usr/bin/qemu-system-x86_64 (deleted)"),
        );
        f.pid_file("vm1", "301");
        assert_eq!(f.host().find(&vm), Evidence::Alive(vec![301]));
    }

    #[test]
    fn a_wrapper_that_forks_qemu_leaves_both_found_one_after_the_other() {
        let f = Fake::new();
        let vm = id("vm1", Some(UUID));
        let mut sh = qemu_args("/usr/local/bin/qemu-wrap", "vm1", UUID);
        sh.insert(0, "/bin/sh".into());
        f.process(500, 'S', &sh, Some("/bin/dash"));
        f.process(
            501,
            'S',
            &qemu_args("/usr/bin/qemu-system-x86_64", "vm1", UUID),
            None,
        );
        f.pid_file("vm1", "500");
        assert_eq!(f.host().find(&vm), Evidence::Alive(vec![500]));
        // The wrapper ended, its qemu lives on: found without the pid file.
        f.exit(500);
        assert_eq!(f.host().find(&vm), Evidence::Alive(vec![501]));
        f.exit(501);
        assert_eq!(f.host().find(&vm), Evidence::Gone);
    }

    #[test]
    fn no_pid_file_but_a_live_guest_is_still_found() {
        let f = Fake::new();
        let vm = id("web,db", Some(UUID));
        f.process(77, 'S', &args(&["/usr/sbin/sshd", "-D"]), None);
        f.process(
            78,
            'S',
            &qemu_args("/usr/bin/qemu-system-x86_64", "web,db", UUID),
            None,
        );
        assert_eq!(f.host().find(&vm), Evidence::Alive(vec![78]));
        // By name alone when the UUID is unknown, with qemu's escaping.
        assert_eq!(
            f.host().find(&id("web,db", None)),
            Evidence::Alive(vec![78])
        );
        assert_eq!(f.host().find(&id("web", None)), Evidence::Gone);
    }

    #[test]
    fn a_fifo_or_a_huge_file_as_pid_file_is_not_read() {
        let f = Fake::new();
        let vm = id("vm1", Some(UUID));
        f.process(
            78,
            'S',
            &qemu_args("/usr/bin/qemu-system-x86_64", "vm1", UUID),
            None,
        );
        // A FIFO nobody writes would block a plain read forever.
        let pid = f.dir.path().join("run/vm1.pid");
        nix::unistd::mkfifo(&pid, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(f.host().pid_file("vm1"), None);
        assert_eq!(f.host().find(&vm), Evidence::Alive(vec![78]));
        fs::remove_file(&pid).unwrap();
        f.pid_file("vm1", &format!("78{}", " ".repeat(100)));
        assert_eq!(f.host().pid_file("vm1"), None);
        f.pid_file("vm1", "78\n");
        assert_eq!(f.host().pid_file("vm1"), Some(78));
    }

    #[test]
    fn stale_garbage_or_reused_pid_files_prove_nothing_by_themselves() {
        let vm = id("vm1", Some(UUID));
        // Absent pid file, no guest process.
        let f = Fake::new();
        f.process(10, 'S', &args(&["/sbin/init"]), None);
        assert_eq!(f.host().find(&vm), Evidence::Gone);
        // Garbage in the pid file.
        for text in ["", "abc", "-5", "1", "0", "99999999999"] {
            let f = Fake::new();
            f.pid_file("vm1", text);
            assert_eq!(f.host().find(&vm), Evidence::Gone, "pid file {text:?}");
            f.process(20, 'S', &qemu_args("qemu-system-x86_64", "vm1", UUID), None);
            assert_eq!(
                f.host().find(&vm),
                Evidence::Alive(vec![20]),
                "pid file {text:?}"
            );
        }
        // The recorded process is gone.
        let f = Fake::new();
        f.pid_file("vm1", "4242");
        assert_eq!(f.host().find(&vm), Evidence::Gone);
        // ... or a zombie (here one whose command line is still readable).
        f.process(
            4242,
            'Z',
            &qemu_args("qemu-system-x86_64", "vm1", UUID),
            None,
        );
        assert_eq!(f.host().find(&vm), Evidence::Gone);
        // ... or its pid now belongs to another program, or to another guest.
        let f = Fake::new();
        f.pid_file("vm1", "4242");
        f.process(4242, 'S', &args(&["/usr/bin/bash"]), None);
        assert_eq!(f.host().find(&vm), Evidence::Gone);
        let f = Fake::new();
        f.pid_file("vm1", "4242");
        f.process(
            4242,
            'S',
            &qemu_args("qemu-system-x86_64", "vm1", OTHER_UUID),
            None,
        );
        assert_eq!(f.host().find(&vm), Evidence::Gone);
        // A reused pid file pid does not hide the real guest elsewhere.
        f.process(
            4300,
            'S',
            &qemu_args("qemu-system-x86_64", "vm1", UUID),
            None,
        );
        assert_eq!(f.host().find(&vm), Evidence::Alive(vec![4300]));
    }

    #[test]
    fn what_cannot_be_read_or_half_matches_is_not_proof_of_absence() {
        let vm = id("vm1", Some(UUID));
        let f = Fake::new();
        let host = Processes::at(f.dir.path().join("no-proc"), f.dir.path().join("run"));
        assert!(matches!(host.find(&vm), Evidence::Unknown(w) if w.contains("no-proc")));
        // A process whose files cannot be read (a directory where the file should be).
        let d = f.dir.path().join("proc/60");
        fs::create_dir_all(d.join("stat")).unwrap();
        assert!(matches!(f.host().find(&vm), Evidence::Unknown(w) if w.contains("/60/stat")));
        // Our UUID under another name.
        let f = Fake::new();
        f.process(
            61,
            'S',
            &qemu_args("qemu-system-x86_64", "vm1-renamed", UUID),
            None,
        );
        assert!(matches!(f.host().find(&vm), Evidence::Unknown(w) if w.contains("pid 61")));
        // A live guest process still counts even when something else was unreadable.
        f.process(62, 'S', &qemu_args("qemu-system-x86_64", "vm1", UUID), None);
        assert_eq!(f.host().find(&vm), Evidence::Alive(vec![62]));
    }

    #[test]
    fn a_guest_process_of_another_network_namespace_is_not_ours_nor_proof() {
        let vm = id("vm1", Some(UUID));
        let f = Fake::new();
        let ours = f.dir.path().join("proc/self/ns");
        fs::create_dir_all(&ours).unwrap();
        std::os::unix::fs::symlink("net:[4026531840]", ours.join("net")).unwrap();
        f.process(90, 'S', &qemu_args("qemu-system-x86_64", "vm1", UUID), None);
        let ns = f.dir.path().join("proc/90/ns");
        fs::create_dir_all(&ns).unwrap();
        std::os::unix::fs::symlink("net:[4026532999]", ns.join("net")).unwrap();
        assert!(
            matches!(f.host().find(&vm), Evidence::Unknown(w) if w.contains("pid 90") && w.contains("network namespace"))
        );
        // Ours (same namespace): alive.
        fs::remove_file(ns.join("net")).unwrap();
        std::os::unix::fs::symlink("net:[4026531840]", ns.join("net")).unwrap();
        assert_eq!(f.host().find(&vm), Evidence::Alive(vec![90]));
        // Found through libvirt's own pid file, the namespace does not matter.
        fs::remove_file(ns.join("net")).unwrap();
        std::os::unix::fs::symlink("net:[4026532999]", ns.join("net")).unwrap();
        f.pid_file("vm1", "90");
        assert_eq!(f.host().find(&vm), Evidence::Alive(vec![90]));
    }

    /// A real process carrying a guest's qemu arguments (`sh -c SCRIPT ARGS...` keeps
    /// ARGS in its command line).
    fn fake_guest(script: &str, name: &str, uuid: &str) -> std::process::Child {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .args(qemu_args("qemu-system-x86_64", name, uuid))
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// A UUID of this test process: real processes are seen by every test run on the
    /// machine, and two runs must never see each other's fake guests.
    fn run_uuid(n: u16) -> String {
        format!(
            "6a6e4f0e-{:04x}-4c5b-9f7e-{:012x}",
            std::process::id() as u16,
            0xc0 + u64::from(n)
        )
    }

    fn real_host() -> (Processes, tempfile::TempDir) {
        let run = tempfile::tempdir().unwrap();
        (Processes::at("/proc", run.path()), run)
    }

    #[test]
    fn a_real_guest_process_is_found_and_terminated() {
        let (host, _run) = real_host();
        let vm = id("ocfrs-unit,a", Some(run_uuid(1).as_str()));
        let mut child = fake_guest("read x", &vm.name, vm.uuid.as_deref().unwrap());
        let pid = child.id() as i32;
        // No pid file: found by the scan of the real /proc.
        assert_eq!(host.find(&vm), Evidence::Alive(vec![pid]));
        host.terminate(&vm, &[pid], Instant::now() + Duration::from_secs(5))
            .unwrap();
        // A zombie until reaped: already gone for us.
        assert_eq!(host.find(&vm), Evidence::Gone);
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(15)
        );
    }

    #[test]
    fn a_guest_ignoring_sigterm_gets_sigkill_halfway() {
        let (host, _run) = real_host();
        let vm = id("ocfrs-unit-b", Some(run_uuid(2).as_str()));
        let mut child = fake_guest(
            "trap '' TERM; read x",
            &vm.name,
            vm.uuid.as_deref().unwrap(),
        );
        let pid = child.id() as i32;
        // Let the shell install its trap before the signal comes.
        std::thread::sleep(Duration::from_millis(200));
        let t = Instant::now();
        host.terminate(&vm, &[pid], Instant::now() + Duration::from_secs(2))
            .unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(900),
            "{:?}",
            t.elapsed()
        );
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
    }

    #[test]
    fn end_guest_ends_a_forking_wrapper_and_its_qemu_and_proves_them_gone() {
        let (host, _run) = real_host();
        let vm = id("ocfrs-unit-d,x", Some(run_uuid(3).as_str()));
        let qemu = qemu_args("qemu-system-x86_64", &vm.name, vm.uuid.as_deref().unwrap());
        // The wrapper does not exec: its child carries the same arguments.
        let inner = format!("sh -c 'read x' {}; read y", shell_words(&qemu));
        let mut wrapper = std::process::Command::new("sh")
            .arg("-c")
            .arg(&inner)
            .args(&qemu)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = wrapper.id() as i32;
        let found = wait_for(|| match host.find(&vm) {
            Evidence::Alive(p) if p.len() == 2 => Some(p),
            _ => None,
        });
        assert!(found.contains(&pid), "{found:?}");
        let ended = host
            .end_guest(&vm, Instant::now() + Duration::from_secs(5))
            .unwrap();
        assert_eq!(ended, found);
        assert_eq!(host.find(&vm), Evidence::Gone);
        wrapper.wait().unwrap();
        // Nothing of the guest: nothing to end.
        assert_eq!(
            host.end_guest(&vm, Instant::now() + Duration::from_secs(1)),
            Ok(vec![])
        );
        // No time left: never "ended".
        let mut late = fake_guest("read x", &vm.name, vm.uuid.as_deref().unwrap());
        let err = host.end_guest(&vm, Instant::now()).unwrap_err();
        assert!(err.contains("no time left"), "{err}");
        late.kill().unwrap();
        late.wait().unwrap();
    }

    fn shell_words(words: &[String]) -> String {
        words
            .iter()
            .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(Instant::now() < until, "timed out");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_pid_that_is_not_the_guest_is_never_signalled() {
        let (host, _run) = real_host();
        let vm = id("ocfrs-unit-c", Some(run_uuid(4).as_str()));
        // Another guest's process, and one without guest arguments.
        let mut other = fake_guest("read x", "ocfrs-unit-c", &run_uuid(5));
        let mut plain = std::process::Command::new("sh")
            .args(["-c", "read x"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pids = [other.id() as i32, plain.id() as i32];
        assert_eq!(host.find(&vm), Evidence::Gone);
        host.terminate(&vm, &pids, Instant::now() + Duration::from_secs(1))
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            other.try_wait().unwrap(),
            None,
            "another guest was signalled"
        );
        assert_eq!(
            plain.try_wait().unwrap(),
            None,
            "an unrelated process was signalled"
        );
        other.kill().unwrap();
        plain.kill().unwrap();
        other.wait().unwrap();
        plain.wait().unwrap();
    }
}
