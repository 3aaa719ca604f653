//! The one way an agent runs another program (monitor scripts, qemu-img, csync2,
//! crm_resource): bounded in time and in memory, and never outliving the agent.
//!
//! - No shell: the program and its arguments are given as they are.
//! - stdin is /dev/null; stdout and stderr are pipes, drained while the child runs (a
//!   child that prints more than a pipe holds never blocks), of which the first and the
//!   last [`KEEP`]`/2` bytes of each are kept, and the number of bytes left out counted.
//! - At the deadline the child and every descendant of it are stopped (SIGSTOP, so none
//!   can fork or exit meanwhile), then killed (SIGKILL) and reaped.
//! - The child stays in the agent's process group: when Pacemaker's executor kills the
//!   agent's group at an operation timeout, the child and what it started go with it.
//!   The child also gets SIGKILL when the agent dies alone (PR_SET_PDEATHSIG).
//! - The agent becomes a child subreaper before its first child: what a child leaves
//!   behind (a background process, a double fork) stays the agent's descendant instead of
//!   going to init, and [`end_leftovers`] ends those still in the agent's process group
//!   when the agent exits (the dispatcher calls it), as the executor's kill would.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

/// Bytes of each output stream kept (half from its start, half from its end).
pub const KEEP: usize = 4096;

/// The longest excerpt of a child's output put into an exit reason (Pacemaker keeps 128
/// characters of a reason; the kept output goes to the log).
pub const REASON_EXCERPT: usize = 160;

/// How often a child that keeps its pipes open is checked for having exited.
const STEP: Duration = Duration::from_millis(10);

/// Whether this process ever started a child (only then is there anything to end).
static SPAWNED: AtomicBool = AtomicBool::new(false);

/// What was kept of one output stream.
#[derive(Clone, Debug, Default)]
pub struct Captured {
    head: Vec<u8>,
    tail: Vec<u8>,
    total: u64,
}

impl Captured {
    fn push(&mut self, mut bytes: &[u8]) {
        const HALF: usize = KEEP / 2;
        self.total += bytes.len() as u64;
        let room = HALF - self.head.len();
        let take = room.min(bytes.len());
        self.head.extend_from_slice(&bytes[..take]);
        bytes = &bytes[take..];
        if bytes.len() >= HALF {
            self.tail.clear();
            self.tail.extend_from_slice(&bytes[bytes.len() - HALF..]);
        } else {
            self.tail.extend_from_slice(bytes);
            if self.tail.len() > HALF {
                let excess = self.tail.len() - HALF;
                self.tail.drain(..excess);
            }
        }
    }

    /// Bytes the stream carried in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes carried but not kept.
    pub fn left_out(&self) -> u64 {
        self.total - (self.head.len() + self.tail.len()) as u64
    }

    /// The kept text (invalid UTF-8 replaced), with a marker where bytes were left out.
    pub fn text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.head).into_owned();
        if self.left_out() > 0 {
            s.push_str(&format!(" [... {} bytes left out ...] ", self.left_out()));
        }
        s.push_str(&String::from_utf8_lossy(&self.tail));
        s
    }
}

/// A child that exited by itself.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Captured,
    pub stderr: Captured,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// What the child printed (kept part of stdout, then of stderr), trimmed.
    pub fn output(&self) -> String {
        joined(&self.stdout, &self.stderr)
    }

    /// "exited 3", "was killed by SIGSEGV".
    pub fn how(&self) -> String {
        describe(self.status)
    }
}

fn joined(out: &Captured, err: &Captured) -> String {
    let (o, e) = (out.text(), err.text());
    match (o.trim(), e.trim()) {
        ("", e) => e.to_string(),
        (o, "") => o.to_string(),
        (o, e) => format!("{o}\n{e}"),
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited {c}"),
        (None, Some(s)) => match Signal::try_from(s) {
            Ok(sig) => format!("was killed by {}", sig.as_str()),
            Err(_) => format!("was killed by signal {s}"),
        },
        _ => format!("ended ({status})"),
    }
}

/// Why a child did not finish by itself.
#[derive(Debug)]
pub enum RunError {
    /// It could not be started (missing, not executable, ...).
    Spawn(io::Error),
    /// Waiting for it or reading its output failed (it was killed).
    Io(io::Error),
    /// It was still running at the deadline: it and its descendants were killed.
    TimedOut {
        stdout: Captured,
        stderr: Captured,
        /// How many processes were killed (the child included).
        killed: usize,
    },
}

impl RunError {
    /// What the child printed before it was killed (empty for Spawn and Io).
    pub fn output(&self) -> String {
        match self {
            RunError::TimedOut { stdout, stderr, .. } => joined(stdout, stderr),
            _ => String::new(),
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Spawn(e) => write!(f, "cannot be run: {e}"),
            RunError::Io(e) => write!(f, "failed: {e}"),
            RunError::TimedOut { .. } => f.write_str("did not finish within the operation timeout"),
        }
    }
}

/// At most `max` characters of `text` on one line, "..." marking a cut.
pub fn excerpt(text: &str, max: usize) -> String {
    let line = crate::exit::one_line(text);
    match line.char_indices().nth(max) {
        None => line,
        Some((cut, _)) => format!("{}...", line[..cut].trim_end()),
    }
}

/// Runs `program` with `args` (no shell) until it exits or `until` passes.
pub fn run<S: AsRef<OsStr>>(
    program: impl AsRef<OsStr>,
    args: &[S],
    until: Instant,
) -> Result<Finished, RunError> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tie_to_this_process(&mut cmd);
    if !SPAWNED.swap(true, Ordering::SeqCst) {
        // Orphans of our children are reparented to us, not to init: they stay findable.
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            tracing::warn!("cannot become a child subreaper: {e}");
        }
    }
    let mut child = cmd.spawn().map_err(RunError::Spawn)?;
    let mut pipes = Pipes {
        out: child.stdout.take(),
        err: child.stderr.take(),
        stdout: Captured::default(),
        stderr: Captured::default(),
    };
    loop {
        let wait = until.saturating_duration_since(Instant::now()).min(STEP);
        if let Err(e) = pipes.pump(wait) {
            end_child(&mut child);
            return Err(RunError::Io(e));
        }
        match child.try_wait() {
            Ok(Some(status)) => {
                // What it wrote before exiting; a descendant that keeps the pipes open
                // is not waited for.
                for _ in 0..64 {
                    if !matches!(pipes.pump(Duration::ZERO), Ok(true)) {
                        break;
                    }
                }
                return Ok(Finished {
                    status,
                    stdout: pipes.stdout,
                    stderr: pipes.stderr,
                });
            }
            Ok(None) if Instant::now() >= until => {
                let killed = end_child(&mut child);
                return Err(RunError::TimedOut {
                    stdout: pipes.stdout,
                    stderr: pipes.stderr,
                    killed,
                });
            }
            Ok(None) => {}
            Err(e) => {
                end_child(&mut child);
                return Err(RunError::Io(e));
            }
        }
    }
}

/// The child gets SIGKILL when the thread that started it ends (the agent's main thread:
/// when the agent dies), and is never left running if the agent died before that was set.
fn tie_to_this_process(cmd: &mut Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: it makes two system calls (prctl, getppid)
    // through nix wrappers that neither allocate nor lock, and builds its error from a
    // raw errno (no allocation). The parent-death signal fires when the forking THREAD
    // exits: run() waits for the child on the thread that forked it, so that thread
    // outlives the child.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
                .map_err(|e| io::Error::from_raw_os_error(e as i32))?;
            if nix::unistd::getppid() != parent {
                // The agent died before the signal was armed.
                return Err(io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            Ok(())
        });
    }
}

struct Pipes {
    out: Option<ChildStdout>,
    err: Option<ChildStderr>,
    stdout: Captured,
    stderr: Captured,
}

impl Pipes {
    /// Waits up to `wait` for output and reads what is there; true if anything was read.
    fn pump(&mut self, wait: Duration) -> io::Result<bool> {
        let ready = {
            let mut fds = Vec::with_capacity(2);
            let mut which = Vec::with_capacity(2);
            if let Some(o) = &self.out {
                fds.push(PollFd::new(o.as_fd(), PollFlags::POLLIN));
                which.push(0);
            }
            if let Some(e) = &self.err {
                fds.push(PollFd::new(e.as_fd(), PollFlags::POLLIN));
                which.push(1);
            }
            if fds.is_empty() {
                std::thread::sleep(wait);
                return Ok(false);
            }
            let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
            fds.iter()
                .zip(which)
                .filter(|(fd, _)| fd.any().unwrap_or(false))
                .map(|(_, w)| w)
                .collect::<Vec<_>>()
        };
        let mut buf = [0u8; 65536];
        let mut got = false;
        for w in ready {
            let (pipe, keep): (&mut dyn Read, &mut Captured) = match w {
                0 => match self.out.as_mut() {
                    Some(p) => (p, &mut self.stdout),
                    None => continue,
                },
                _ => match self.err.as_mut() {
                    Some(p) => (p, &mut self.stderr),
                    None => continue,
                },
            };
            match pipe.read(&mut buf) {
                Ok(0) => {
                    // End of the stream: close our end.
                    if w == 0 {
                        self.out = None;
                    } else {
                        self.err = None;
                    }
                }
                Ok(n) => {
                    keep.push(&buf[..n]);
                    got = true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(got)
    }
}

/// Kills the child and its descendants and reaps the child; how many were killed.
fn end_child(child: &mut Child) -> usize {
    let pid = child.id() as i32;
    let killed = end_processes(&[pid], |_| true);
    let _ = child.wait();
    reap(&killed, pid);
    killed.len()
}

/// Ends what this agent's children left behind: every descendant of this process that is
/// still in its process group (those the executor's kill of the group would end). Does
/// nothing unless a child was ever started. Called by the dispatcher before exiting.
pub fn end_leftovers() {
    if !SPAWNED.load(Ordering::SeqCst) {
        return;
    }
    let me = std::process::id() as i32;
    let group = nix::unistd::getpgrp().as_raw();
    let table = processes();
    let roots: Vec<i32> = table
        .values()
        .filter(|p| p.ppid == me && p.pgrp == group && !p.zombie)
        .map(|p| p.pid)
        .collect();
    if roots.is_empty() {
        return;
    }
    let killed = end_processes(&roots, |p| p.pgrp == group);
    let pids: Vec<String> = killed.iter().map(|p| p.to_string()).collect();
    tracing::warn!(
        count = killed.len(),
        "ended processes left behind by the agent's children: {}",
        pids.join(", ")
    );
}

#[derive(Clone, Debug)]
struct Proc {
    pid: i32,
    ppid: i32,
    pgrp: i32,
    zombie: bool,
}

/// The pid a /proc directory entry stands for (`None` for `self`, `sys` and the like).
pub fn proc_pid(entry: &std::fs::DirEntry) -> Option<i32> {
    entry.file_name().to_str()?.parse().ok()
}

/// The process table from /proc (pid, parent, process group, zombie or not).
fn processes() -> BTreeMap<i32, Proc> {
    let mut table = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return table;
    };
    for entry in dir.flatten() {
        let Some(pid) = proc_pid(&entry) else {
            continue;
        };
        if let Some(p) = stat(pid) {
            table.insert(pid, p);
        }
    }
    table
}

fn stat(pid: i32) -> Option<Proc> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let state = f.next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgrp = f.next()?.parse().ok()?;
    Some(Proc {
        pid,
        ppid,
        pgrp,
        zombie: state == "Z" || state == "X",
    })
}

/// Stops `roots` and, repeatedly, every descendant of theirs that `within` accepts,
/// until no new one appears; then kills them all. Returns the pids killed.
fn end_processes(roots: &[i32], within: impl Fn(&Proc) -> bool) -> Vec<i32> {
    let mut stopped: BTreeSet<i32> = BTreeSet::new();
    for &r in roots {
        let _ = kill(Pid::from_raw(r), Signal::SIGSTOP);
        stopped.insert(r);
    }
    for _ in 0..100 {
        let table = processes();
        let fresh: Vec<i32> = table
            .values()
            .filter(|p| stopped.contains(&p.ppid) && !stopped.contains(&p.pid))
            .filter(|p| !p.zombie && within(p))
            .map(|p| p.pid)
            .collect();
        if fresh.is_empty() {
            break;
        }
        for pid in fresh {
            let _ = kill(Pid::from_raw(pid), Signal::SIGSTOP);
            stopped.insert(pid);
        }
    }
    for &pid in &stopped {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    stopped.into_iter().collect()
}

/// Waits (briefly) until the killed processes are gone, reaping those that became our
/// own children when their parents died (we are their subreaper).
fn reap(killed: &[i32], except: i32) {
    let me = std::process::id() as i32;
    let until = Instant::now() + Duration::from_millis(500);
    let mut left: Vec<i32> = killed.iter().copied().filter(|&p| p != except).collect();
    while !left.is_empty() && Instant::now() < until {
        left.retain(|&pid| match stat(pid) {
            None => false,
            Some(p) if p.ppid == me => {
                let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
                stat(pid).is_some()
            }
            Some(p) => !p.zombie,
        });
        if !left.is_empty() {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::Mutex;

    /// The tests run one at a time: end_leftovers ends every child of this process.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

    fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
        ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    /// Alive: present in /proc and not a zombie.
    fn alive(pid: i32) -> bool {
        stat(pid).is_some_and(|p| !p.zombie)
    }

    fn wait_for_file(p: &Path) -> String {
        let t = Instant::now();
        loop {
            if let Ok(s) = std::fs::read_to_string(p) {
                if s.ends_with('\n') {
                    return s;
                }
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "{} never written",
                p.display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn exit_status_and_output() {
        let _serial = one_at_a_time();
        let f = run("/bin/sh", &["-c", "echo out; echo err >&2; exit 3"], soon()).unwrap();
        assert!(!f.success());
        assert_eq!(f.status.code(), Some(3));
        assert_eq!(f.how(), "exited 3");
        assert_eq!(f.output(), "out\nerr");
        let f = run("/bin/true", &[] as &[&str], soon()).unwrap();
        assert!(f.success());
        assert_eq!(f.output(), "");
        let f = run("/bin/sh", &["-c", "kill -SEGV $$"], soon()).unwrap();
        assert_eq!(f.how(), "was killed by SIGSEGV");
        let e = run("/nonexistent/tool", &[] as &[&str], soon()).unwrap_err();
        assert!(matches!(e, RunError::Spawn(_)), "{e:?}");
        assert!(e.to_string().starts_with("cannot be run: "), "{e}");
    }

    #[test]
    fn stdin_is_closed() {
        let _serial = one_at_a_time();
        // cat ends at once on an empty stdin instead of waiting for input.
        let t = Instant::now();
        let f = run("/bin/cat", &[] as &[&str], soon()).unwrap();
        assert!(f.success());
        assert_eq!(f.output(), "");
        assert!(t.elapsed() < Duration::from_secs(2));
        let f = run("/bin/sh", &["-c", "read line; echo rc=$?"], soon()).unwrap();
        assert_eq!(f.output(), "rc=1");
    }

    #[test]
    fn output_beyond_a_pipe_is_drained_and_capped() {
        let _serial = one_at_a_time();
        // 1 MiB on stdout and 200 KiB on stderr, ending with a mark: far more than a pipe
        // holds (64 KiB), so an undrained pipe would block the child forever.
        let t = Instant::now();
        let f = run(
            "/bin/sh",
            &[
                "-c",
                "head -c 1048576 /dev/zero | tr '\\0' a; echo END-OF-OUT; \
                 head -c 204800 /dev/zero | tr '\\0' b >&2; echo END-OF-ERR >&2",
            ],
            Instant::now() + Duration::from_secs(20),
        )
        .unwrap();
        assert!(f.success(), "{:?}", f.status);
        assert!(t.elapsed() < Duration::from_secs(10));
        assert_eq!(f.stdout.total(), 1048576 + 11);
        assert_eq!(f.stderr.total(), 204800 + 11);
        let out = f.stdout.text();
        assert!(out.len() < KEEP + 100, "{}", out.len());
        assert!(out.starts_with("aaaa"));
        assert!(out.trim_end().ends_with("aaaaEND-OF-OUT"), "{out}");
        assert!(out.contains(&format!(
            " [... {} bytes left out ...] ",
            1048587 - KEEP as u64
        )));
        let all = f.output();
        assert!(all.len() < 2 * KEEP + 200);
        assert!(all.trim_end().ends_with("END-OF-ERR"));
        // A short output is kept whole.
        let mut c = Captured::default();
        c.push(b"abc");
        c.push(b"def");
        assert_eq!((c.text().as_str(), c.left_out()), ("abcdef", 0));
    }

    #[test]
    fn a_child_and_its_descendants_are_killed_at_the_deadline() {
        let _serial = one_at_a_time();
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        // The child starts a background grandchild (which starts its own child) and
        // hangs; one of them leaves the process group; all hold the pipes open.
        let script = format!(
            "sh -c 'sleep 300 & echo $! > {p}.g2; setsid sleep 300 & echo $! > {p}.g3; wait' & \
             echo $! > {p}.g1; echo $$ > {p}.c; echo started; sleep 300",
            p = pids.display()
        );
        let t = Instant::now();
        let e = run("/bin/sh", &["-c", &script], t + Duration::from_millis(700)).unwrap_err();
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(690), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        let RunError::TimedOut { killed, .. } = &e else {
            panic!("{e:?}");
        };
        assert!(*killed >= 5, "killed {killed}");
        assert_eq!(e.output(), "started");
        assert_eq!(e.to_string(), "did not finish within the operation timeout");
        for name in ["c", "g1", "g2", "g3"] {
            let pid: i32 = wait_for_file(&dir.path().join(format!("pids.{name}")))
                .trim()
                .parse()
                .unwrap();
            assert!(!alive(pid), "{name} ({pid}) still runs");
        }
    }

    #[test]
    fn a_child_that_exits_is_not_held_up_by_a_descendant_keeping_its_pipes() {
        let _serial = one_at_a_time();
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("bg");
        let t = Instant::now();
        let f = run(
            "/bin/sh",
            &[
                "-c",
                &format!("sleep 300 & echo $! > {}; echo done", pid_file.display()),
            ],
            Instant::now() + Duration::from_secs(20),
        )
        .unwrap();
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(f.success());
        assert_eq!(f.output(), "done");
        // The leftover is this process's descendant, in its process group: it is ended
        // with the agent (end_leftovers, as the executor's kill of the group would).
        let pid: i32 = wait_for_file(&pid_file).trim().parse().unwrap();
        let p = stat(pid).unwrap();
        assert_eq!(p.pgrp, nix::unistd::getpgrp().as_raw());
        assert_eq!(p.ppid, std::process::id() as i32, "reparented to us");
        end_leftovers();
        reap(&[pid], 0);
        assert!(!alive(pid), "leftover {pid} still runs");
    }

    #[test]
    fn excerpts_are_one_line_and_cut_at_a_character() {
        assert_eq!(excerpt("a\nb", 10), "a b");
        assert_eq!(excerpt("éééé", 2), "éé...");
        assert_eq!(excerpt(&"x".repeat(1000), 5), "xxxxx...");
    }
}
