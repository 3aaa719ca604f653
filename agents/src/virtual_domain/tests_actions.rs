//! Every action against the fake hypervisor ([`super::fake`]): one test (or more) per
//! defect class of the safety rule — an answer of 0 (stopped) or 7 (not running) only on
//! proof, never a VM that is not ours touched, every action within its deadline.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ocf_common::{Action, Context, Deadline, ExitCode, OcfEnv};

use super::error::Error;
use super::fake::{Daemon, FakeHost, Shutdown};
use super::hypervisor::DomainState;
use super::{act, Answer};

const UUID: &str = "6a6e4f0e-2f0a-4c5b-9f7e-0000000000d1";
const OTHER: &str = "6a6e4f0e-2f0a-4c5b-9f7e-0000000000d2";
// The tests that look at this machine's /proc run in parallel, and other test runs may
// run beside them: each such test has its own domain name and a UUID of this process, so
// that no fake qemu is ever another test's (a process with our UUID and another name
// makes /proc undecidable, rightly).
fn uuid(n: u16) -> String {
    format!(
        "6a6e4f0e-{:04x}-4c5b-9f7e-{:012x}",
        std::process::id() as u16,
        0x1e0 + u64::from(n)
    )
}

/// One resource: its config file, state directory and libvirt run directory in a
/// temporary directory, and the fake host.
struct Case {
    dir: tempfile::TempDir,
    host: FakeHost,
    name: String,
    uuid: Option<String>,
    hypervisor: String,
}

impl Case {
    /// A resource of domain `name` whose config has `uuid` (none: libvirt assigns one).
    fn new(name: &str, uuid: Option<&str>) -> Case {
        let dir = tempfile::tempdir().unwrap();
        for d in ["state", "run"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        let host = FakeHost::new(&dir.path().join("run"));
        let case = Case {
            dir,
            host,
            name: name.into(),
            uuid: uuid.map(str::to_string),
            hypervisor: "qemu:///system".into(),
        };
        case.write_config(&case.config());
        case
    }

    fn xml(&self) -> String {
        let uuid = self
            .uuid
            .as_ref()
            .map(|u| format!("<uuid>{u}</uuid>"))
            .unwrap_or_default();
        let name = self.name.replace('&', "&amp;");
        format!("<domain type='qemu'><name>{name}</name>{uuid}<memory>131072</memory></domain>")
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("vm.xml")
    }

    fn write_config(&self, path: &Path) {
        std::fs::write(path, self.xml()).unwrap();
    }

    fn state_file(&self) -> PathBuf {
        self.dir.path().join("state/VirtualDomain-vm.state")
    }

    fn cached(&self) -> String {
        std::fs::read_to_string(self.state_file()).unwrap_or_default()
    }

    /// The context of `action` with the resource's parameters, then `extra` pairs
    /// (`OCF_RESKEY_` added to parameters and `CRM_meta_` keys), and a timeout of `timeout_ms`.
    fn ctx(&self, action: Action, extra: &[(&str, &str)], timeout_ms: u64) -> Context {
        let mut pairs: Vec<(String, String)> = vec![
            ("OCF_RESOURCE_INSTANCE".into(), "vm".into()),
            (
                "HA_RSCTMP".into(),
                self.dir.path().join("state").display().to_string(),
            ),
            (
                "OCF_RESKEY_config".into(),
                self.config().display().to_string(),
            ),
            ("OCF_RESKEY_hypervisor".into(), self.hypervisor.clone()),
            ("OCF_RESKEY_CRM_meta_timeout".into(), timeout_ms.to_string()),
        ];
        for (k, v) in extra {
            let key = match k.chars().next() {
                Some(c) if c.is_ascii_lowercase() || k.starts_with("CRM_meta_") => {
                    format!("OCF_RESKEY_{k}")
                }
                _ => k.to_string(),
            };
            pairs.retain(|(p, _)| *p != key);
            pairs.push((key, v.to_string()));
        }
        let env = OcfEnv::from_pairs(pairs);
        let params = ocf_common::Params::parse(&super::DESCRIPTION, &env);
        let deadline = Deadline::new(Instant::now(), Duration::from_millis(timeout_ms));
        Context::new(action, env, params, deadline)
    }

    /// Runs `action`; the answer, and how long it took.
    fn run_timed(
        &self,
        action: Action,
        extra: &[(&str, &str)],
        timeout_ms: u64,
    ) -> (Answer, Duration) {
        let ctx = self.ctx(action, extra, timeout_ms);
        let t = Instant::now();
        let answer = act(&self.host, &ctx);
        (answer, t.elapsed())
    }

    fn run(&self, action: Action, extra: &[(&str, &str)]) -> Answer {
        let (answer, took) = self.run_timed(action, extra, 20_000);
        assert!(took < Duration::from_secs(20), "{action:?} took {took:?}");
        answer
    }

    fn probe(&self) -> Answer {
        self.run(Action::Monitor, &[])
    }

    fn monitor(&self) -> Answer {
        self.run(Action::Monitor, &[("CRM_meta_interval", "10000")])
    }

    /// Adds our domain, running, to the fake libvirt.
    fn running(&self) -> u64 {
        let uuid = self.uuid.clone().unwrap_or_else(|| OTHER.to_string());
        self.host.world().add(&self.name, &uuid)
    }

    /// A process that looks like this domain's qemu (libvirt's arguments, the name
    /// escaped as libvirt escapes it), run through a symlinked emulator, waiting on
    /// stdin; killed when the returned guard is dropped.
    fn fake_qemu(&self, uuid: &str) -> Qemu {
        let emulator = self.dir.path().join("qemu-system-x86_64");
        if !emulator.exists() {
            std::os::unix::fs::symlink("/bin/sh", &emulator).unwrap();
        }
        let child = std::process::Command::new(&emulator)
            .arg("-c")
            .arg("read x")
            .arg(emulator.display().to_string())
            .args([
                "-name",
                &format!("guest={},debug-threads=on", self.name.replace(',', ",,")),
            ])
            .args(["-uuid", uuid, "-no-user-config"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The process shows its arguments once it runs.
        let t = Instant::now();
        let cmdline = format!("/proc/{}/cmdline", child.id());
        while !std::fs::read(&cmdline).is_ok_and(|c| c.windows(5).any(|w| w == b"-uuid")) {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "the fake qemu did not start"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        Qemu(child)
    }
}

struct Qemu(std::process::Child);

impl Qemu {
    /// Whether it still runs (not yet reaped counts as ended once it exited).
    fn alive(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn code(a: &Answer) -> ExitCode {
    match a {
        Ok(c) => *c,
        Err(e) => e.code(),
    }
}

/// Asserts that the answer's reason contains `needle`, showing the reason otherwise.
fn says(a: &Answer, needle: &str) {
    let why = reason(a);
    assert!(why.contains(needle), "{why:?} does not say {needle:?}");
}

fn reason(a: &Answer) -> String {
    match a {
        Ok(_) => String::new(),
        Err(e) => e.reason(),
    }
}

// ---- 1. libvirtd down: 0 from stop only once the guest's own process is gone ----

#[test]
fn stop_with_libvirtd_down_ends_the_guests_qemu_behind_a_symlinked_emulator_then_answers_0() {
    let case = Case::new("web,db", Some(uuid(1).as_str()));
    let mut qemu = case.fake_qemu(&uuid(1));
    case.host.world().daemon = Daemon::Down;
    let (answer, took) = case.run_timed(Action::Stop, &[], 10_000);
    assert_eq!(code(&answer), ExitCode::Success, "{}", reason(&answer));
    let t = Instant::now();
    while qemu.alive() && t.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !qemu.alive(),
        "stop answered 0 with the guest's qemu running"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn stop_with_libvirtd_down_and_a_guest_of_another_uuid_running_leaves_it_alone() {
    // A process of our name with another UUID is another VM: not ours to kill, and no
    // process has our UUID: ours is stopped.
    let case = Case::new("vm-ocfrs-fake-1", Some(uuid(2).as_str()));
    let mut other = case.fake_qemu(OTHER);
    case.host.world().daemon = Daemon::Down;
    let answer = case.run(Action::Stop, &[]);
    assert!(
        other.alive(),
        "stop killed a process that is not the guest's"
    );
    assert_eq!(code(&answer), ExitCode::Success, "{}", reason(&answer));
}

#[test]
fn stop_with_libvirtd_down_and_no_guest_process_answers_0_without_waiting_for_libvirtd() {
    let case = Case::new("vm-ocfrs-fake-6", Some(uuid(6).as_str()));
    case.host.world().daemon = Daemon::Down;
    let (answer, took) = case.run_timed(Action::Stop, &[], 20_000);
    assert_eq!(code(&answer), ExitCode::Success, "{}", reason(&answer));
    // The process is provably gone: no reason to keep reconnecting for 16 s.
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn monitor_with_libvirtd_down_answers_from_the_guests_process_and_never_7() {
    let case = Case::new("vm-ocfrs-fake-2", Some(uuid(3).as_str()));
    case.host.world().daemon = Daemon::Down;
    // No process: not proof that it is stopped, since libvirt could not be asked.
    for answer in [case.probe(), case.monitor()] {
        assert_eq!(code(&answer), ExitCode::ErrGeneric, "{}", reason(&answer));
        assert!(reason(&answer).contains("no running hypervisor process"));
    }
    let _qemu = case.fake_qemu(&uuid(3));
    assert_eq!(code(&case.monitor()), ExitCode::Success);
}

// ---- 2. URIs whose guests are not local processes ----

#[test]
fn an_unreachable_remote_hypervisor_is_never_stopped_or_not_running() {
    for uri in [
        "qemu+tcp://192.0.2.1/system",
        "qemu+ssh://host/system",
        "qemu:///session",
        "xen:///system",
    ] {
        let mut case = Case::new("vm-ocfrs-fake-3", Some(uuid(7).as_str()));
        case.hypervisor = uri.into();
        case.host.world().daemon = Daemon::Down;
        // stop keeps trying to reach libvirt until the last sixth of its timeout: 3 s.
        let (stop, _) = case.run_timed(Action::Stop, &[], 3000);
        for (what, answer) in [
            ("stop", stop),
            ("probe", case.probe()),
            ("monitor", case.monitor()),
        ] {
            assert_eq!(code(&answer), ExitCode::ErrGeneric, "{uri} {what}");
            assert!(
                reason(&answer).contains("not local qemu processes"),
                "{uri} {what}: {}",
                reason(&answer)
            );
        }
    }
}

// ---- 3. identity by UUID ----

#[test]
fn a_domain_of_our_name_with_another_uuid_is_never_adopted_started_over_or_stopped() {
    let case = Case::new("vm1", Some(UUID));
    case.host.world().add("vm1", OTHER);
    assert_eq!(code(&case.probe()), ExitCode::NotRunning);
    assert_eq!(code(&case.monitor()), ExitCode::NotRunning);
    let start = case.run(Action::Start, &[]);
    assert_eq!(code(&start), ExitCode::ErrGeneric);
    says(&start, UUID);
    says(&start, OTHER);
    assert_eq!(code(&case.run(Action::Stop, &[])), ExitCode::Success);
    let w = case.host.world();
    assert_eq!(w.dom("vm1").map(|d| d.state), Some(DomainState::Running));
    for op in [
        "virDomainShutdownFlags",
        "virDomainDestroy",
        "virDomainDestroyFlags(GRACEFUL)",
        "virDomainUndefineFlags",
        "virDomainCreateXML",
    ] {
        assert!(
            !w.called(op),
            "{op} was called on a domain that is not ours"
        );
    }
}

#[test]
fn a_foreign_inactive_definition_of_our_name_is_not_undefined_by_start() {
    let case = Case::new("vm1", Some(UUID));
    case.host
        .world()
        .add_dom("vm1", OTHER, DomainState::ShutOff, true);
    assert_eq!(code(&case.run(Action::Start, &[])), ExitCode::ErrGeneric);
    let w = case.host.world();
    assert!(!w.called("virDomainUndefineFlags"));
    assert_eq!(w.dom("vm1").map(|d| d.uuid.as_str()), Some(OTHER));
}

#[test]
fn the_uuid_libvirt_assigned_at_start_is_kept_by_monitors_and_forgotten_by_stop() {
    let case = Case::new("vm1", None);
    assert_eq!(code(&case.run(Action::Start, &[])), ExitCode::Success);
    let assigned = case.host.world().dom("vm1").unwrap().uuid.clone();
    assert!(case.cached().contains(&format!("uuid={assigned}")));
    assert_eq!(code(&case.monitor()), ExitCode::Success);
    assert!(
        case.cached().contains(&format!("uuid={assigned}")),
        "the first monitor erased the assigned UUID: {}",
        case.cached()
    );
    // Replaced behind our back by a VM of the same name: not ours.
    {
        let mut w = case.host.world();
        w.domains.clear();
        w.add("vm1", OTHER);
    }
    assert_eq!(code(&case.monitor()), ExitCode::NotRunning);
    assert_eq!(code(&case.run(Action::Stop, &[])), ExitCode::Success);
    assert!(!case.host.world().called("virDomainShutdownFlags"));
    assert!(!case.cached().contains("uuid="), "{}", case.cached());
}

// ---- 4. a cached identity is used only when it is this resource's ----

#[test]
fn a_state_file_written_for_another_config_is_not_believed() {
    let case = Case::new("vm1", Some(UUID));
    case.running();
    assert_eq!(code(&case.monitor()), ExitCode::Success);
    assert!(case.cached().contains("name=vm1"));
    // The resource now names another config, which cannot be read.
    let other = case.dir.path().join("missing.xml");
    let other = other.to_str().unwrap();
    let probe = case.run(Action::Monitor, &[("config", other)]);
    assert_eq!(code(&probe), ExitCode::NotRunning, "{}", reason(&probe));
    assert_eq!(
        code(&case.run(Action::Stop, &[("config", other)])),
        ExitCode::Success
    );
    assert_eq!(
        case.host.world().dom("vm1").map(|d| d.state),
        Some(DomainState::Running),
        "stop touched the VM of another resource's cache"
    );
}

#[test]
fn an_unreadable_config_falls_back_to_the_identity_cached_for_it() {
    let case = Case::new("vm1", Some(UUID));
    case.running();
    assert_eq!(code(&case.monitor()), ExitCode::Success);
    std::fs::remove_file(case.config()).unwrap();
    // A VM that runs is never reported stopped because its file went away.
    assert_eq!(code(&case.probe()), ExitCode::Success);
    assert_eq!(code(&case.run(Action::Stop, &[])), ExitCode::Success);
    assert!(case.host.world().dom("vm1").is_none(), "not stopped");
}

// ---- 5. what libvirt created is what the config describes ----

#[test]
fn a_created_domain_of_another_name_is_destroyed_and_start_fails_at_once() {
    let case = Case::new("vm1", Some(UUID));
    // libvirt reads the definition differently from us: it creates "vm1-other".
    case.host.world().before("virDomainGetName", |w| {
        if let Some(d) = w.dom_mut("vm1") {
            d.name = "vm1-other".into();
        }
    });
    let (answer, took) = case.run_timed(Action::Start, &[], 20_000);
    assert_eq!(code(&answer), ExitCode::ErrGeneric);
    says(&answer, "vm1-other");
    assert!(took < Duration::from_secs(2), "start waited {took:?}");
    assert!(
        case.host.world().domains.is_empty(),
        "left running unmanaged"
    );
}

// ---- 6. a broken connection is not a dead libvirtd ----

#[test]
fn a_libvirtd_restart_during_a_graceful_stop_reconnects_and_lets_the_guest_shut_down() {
    let case = Case::new("vm-ocfrs-fake-4", Some(uuid(4).as_str()));
    let h = case.running();
    let mut qemu = case.fake_qemu(&uuid(4));
    {
        let mut w = case.host.world();
        w.domains
            .iter_mut()
            .find(|d| d.handle == h)
            .unwrap()
            .shutdown = Shutdown::After(Duration::from_millis(1500));
        // libvirtd restarts while the guest shuts down (at the first state poll after
        // the request): the open connection breaks.
        w.before("virDomainShutdownFlags", |w| {
            w.before("virDomainGetState", |w| w.restart())
        });
    }
    let answer = case.run(Action::Stop, &[]);
    assert_eq!(code(&answer), ExitCode::Success, "{}", reason(&answer));
    assert!(
        qemu.alive(),
        "the guest's qemu was killed although libvirtd came back"
    );
    let w = case.host.world();
    assert!(w.connects >= 2, "no reconnect");
    assert!(!w.called("virDomainDestroy"));
}

#[test]
fn a_libvirtd_restart_during_start_reconnects_and_the_start_succeeds() {
    let case = Case::new("vm1", Some(UUID));
    // libvirtd restarts once the domain is created, as start waits for it to run.
    case.host.world().before("virDomainCreateXML", |w| {
        w.before("virDomainGetState", |w| w.restart())
    });
    let answer = case.run(Action::Start, &[]);
    assert_eq!(code(&answer), ExitCode::Success, "{}", reason(&answer));
    assert!(case.host.world().connects >= 2);
}

#[test]
fn a_hung_libvirtd_during_stop_ends_the_guests_process_within_the_timeout() {
    let case = Case::new("vm-ocfrs-fake-5", Some(uuid(5).as_str()));
    case.running();
    let mut qemu = case.fake_qemu(&uuid(5));
    case.host.world().daemon = Daemon::Hung;
    let (answer, took) = case.run_timed(Action::Stop, &[], 6_000);
    assert_eq!(code(&answer), ExitCode::Success, "{}", reason(&answer));
    assert!(took < Duration::from_secs(6), "{took:?}");
    std::thread::sleep(Duration::from_millis(100));
    assert!(!qemu.alive());
}

// ---- 7. bounded reads ----

#[test]
fn a_fifo_config_does_not_block_stop_which_uses_the_cached_identity() {
    let case = Case::new("vm1", Some(UUID));
    case.running();
    assert_eq!(code(&case.monitor()), ExitCode::Success);
    std::fs::remove_file(case.config()).unwrap();
    nix::unistd::mkfifo(
        &case.config(),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let (answer, took) = case.run_timed(Action::Stop, &[], 10_000);
    assert_eq!(code(&answer), ExitCode::Success, "{}", reason(&answer));
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(case.host.world().dom("vm1").is_none());
}

// ---- 8. children within the deadline ----

#[test]
fn a_hanging_monitor_script_fails_the_monitor_within_its_timeout() {
    let case = Case::new("vm1", Some(UUID));
    case.running();
    let script = case.dir.path().join("hang.sh");
    std::fs::write(&script, "#!/bin/sh\nsleep 30\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (answer, took) = case.run_timed(
        Action::Monitor,
        &[
            ("CRM_meta_interval", "10000"),
            ("monitor_scripts", script.to_str().unwrap()),
        ],
        3_000,
    );
    assert_eq!(code(&answer), ExitCode::ErrGeneric);
    says(&answer, "monitor_scripts");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

// ---- 9. short timeouts: every phase gets a real attempt ----

#[test]
fn a_probe_of_an_absent_domain_with_a_short_timeout_is_7() {
    let case = Case::new("vm1", Some(UUID));
    for ms in [500, 1000, 2000] {
        let (answer, _) = case.run_timed(Action::Monitor, &[], ms);
        assert_eq!(
            code(&answer),
            ExitCode::NotRunning,
            "{ms} ms: {}",
            reason(&answer)
        );
    }
}

#[test]
fn a_stop_with_a_short_timeout_asks_libvirt_first() {
    for ms in [500, 1000, 3000] {
        let case = Case::new("vm1", Some(UUID));
        let h = case.running();
        case.host
            .world()
            .domains
            .iter_mut()
            .find(|d| d.handle == h)
            .unwrap()
            .shutdown = Shutdown::Ignores;
        let (answer, took) = case.run_timed(Action::Stop, &[], ms);
        assert_eq!(
            code(&answer),
            ExitCode::Success,
            "{ms} ms: {}",
            reason(&answer)
        );
        assert!(took < Duration::from_millis(ms), "{ms} ms: took {took:?}");
        let w = case.host.world();
        assert!(
            w.called("virDomainShutdownFlags"),
            "{ms} ms: no graceful attempt"
        );
        assert!(w.dom("vm1").is_none(), "{ms} ms: still running");
    }
}

// ---- vanishing domains ----

#[test]
fn a_domain_that_vanishes_between_lookup_and_state_is_not_running_and_stopped() {
    let case = Case::new("vm1", Some(UUID));
    case.running();
    case.host
        .world()
        .before("virDomainGetState", |w| w.domains.clear());
    assert_eq!(code(&case.probe()), ExitCode::NotRunning);
    case.running();
    case.host
        .world()
        .before("virDomainGetState", |w| w.domains.clear());
    assert_eq!(code(&case.run(Action::Stop, &[])), ExitCode::Success);
}

// ---- 10. smaller ----

#[test]
fn save_config_on_stop_keeps_a_symlinked_config_a_link_with_its_mode() {
    let case = Case::new("vm1", Some(UUID));
    let h = case.running();
    let target = case.dir.path().join("shared.xml");
    std::fs::rename(case.config(), &target).unwrap();
    std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::os::unix::fs::symlink(&target, case.config()).unwrap();
    let changed = format!(
        "<domain type='qemu'><name>vm1</name><uuid>{UUID}</uuid><memory>262144</memory></domain>"
    );
    case.host
        .world()
        .domains
        .iter_mut()
        .find(|d| d.handle == h)
        .unwrap()
        .xml = changed.clone();
    let answer = case.run(Action::Stop, &[("save_config_on_stop", "true")]);
    assert_eq!(code(&answer), ExitCode::Success, "{}", reason(&answer));
    let link = std::fs::symlink_metadata(case.config()).unwrap();
    assert!(link.file_type().is_symlink(), "the symlink was replaced");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), changed);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&target).unwrap().permissions());
    assert_eq!(mode & 0o7777, 0o644);
}

#[test]
fn an_invalid_utf8_config_fails_start_as_not_installed_saying_so() {
    let case = Case::new("vm1", Some(UUID));
    std::fs::write(case.config(), b"<domain><name>caf\xe9</name></domain>").unwrap();
    let answer = case.run(Action::Start, &[]);
    assert_eq!(code(&answer), ExitCode::ErrInstalled);
    says(&answer, "not valid UTF-8");
}

#[test]
fn an_unreachable_libvirtd_is_1_in_every_action_that_needs_it() {
    let case = Case::new("vm1", Some(UUID));
    case.host.world().daemon = Daemon::Down;
    for (action, extra) in [
        (Action::Start, vec![]),
        (Action::ValidateAll, vec![("OCF_CHECK_LEVEL", "10")]),
        (
            Action::MigrateTo,
            vec![("CRM_meta_migrate_target", "node2")],
        ),
        (Action::MigrateFrom, vec![]),
    ] {
        let answer = case.run(action, &extra);
        assert_eq!(
            code(&answer),
            ExitCode::ErrGeneric,
            "{action:?}: {}",
            reason(&answer)
        );
        says(&answer, "cannot reach libvirt");
    }
}

#[test]
fn start_stop_and_monitor_of_a_healthy_domain() {
    let case = Case::new("vm1", Some(UUID));
    assert_eq!(code(&case.probe()), ExitCode::NotRunning);
    assert_eq!(code(&case.run(Action::Start, &[])), ExitCode::Success);
    assert_eq!(code(&case.monitor()), ExitCode::Success);
    // Already running: 0 without a second create.
    assert_eq!(code(&case.run(Action::Start, &[])), ExitCode::Success);
    assert_eq!(
        case.host
            .world()
            .calls
            .iter()
            .filter(|c| **c == "virDomainCreateXML")
            .count(),
        1
    );
    assert_eq!(code(&case.run(Action::Stop, &[])), ExitCode::Success);
    assert!(case.host.world().called("virDomainShutdownFlags"));
    assert_eq!(code(&case.probe()), ExitCode::NotRunning);
    // A crashed domain is an error for monitor, not "not running".
    case.host
        .world()
        .add_dom("vm1", UUID, DomainState::Crashed, true);
    let crashed = case.monitor();
    assert_eq!(code(&crashed), ExitCode::ErrGeneric);
    assert_eq!(reason(&crashed), "domain vm1 is crashed");
    // A wrong parameter fails start with 6 naming it, and nothing is created.
    let bad = case.run(Action::Start, &[("shutdown_mode", "reboot")]);
    assert!(matches!(
        bad,
        Err(Error::Parameter {
            name: "shutdown_mode",
            ..
        })
    ));
}

// ---- migrate_options that need the agent's own work ----

fn migrate_to(case: &Case, options: &str, timeout_ms: u64) -> (Answer, Duration) {
    case.run_timed(
        Action::MigrateTo,
        &[
            ("CRM_meta_migrate_target", "node2"),
            ("migrate_options", options),
        ],
        timeout_ms,
    )
}

#[test]
fn migrate_options_timeout_pauses_the_guest_so_the_migration_finishes() {
    let case = Case::new("vm1", Some(UUID));
    case.running();
    case.host.world().migration_takes = Some(Duration::from_secs(60));
    let (answer, took) = migrate_to(&case, "--timeout 1", 20_000);
    assert_eq!(code(&answer), ExitCode::Success, "{}", reason(&answer));
    assert!(case.host.world().called("virDomainSuspend"));
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn migrate_options_timeout_postcopy_switches_to_post_copy() {
    let case = Case::new("vm1", Some(UUID));
    case.running();
    case.host.world().migration_takes = Some(Duration::from_secs(60));
    let (answer, _) = migrate_to(&case, "--postcopy --timeout=1 --timeout-postcopy", 20_000);
    assert_eq!(code(&answer), ExitCode::Success, "{}", reason(&answer));
    let w = case.host.world();
    assert!(w.postcopy && !w.called("virDomainSuspend"));
}

#[test]
fn a_migration_aborted_at_the_deadline_resumes_a_guest_paused_for_it() {
    let case = Case::new("vm1", Some(UUID));
    case.running();
    // A migration that never finishes, not even with the guest paused by --timeout.
    {
        let mut w = case.host.world();
        w.migration_takes = Some(Duration::from_secs(600));
        w.pause_finishes_migration = false;
    }
    let (answer, took) = migrate_to(&case, "--timeout 1", 6_000);
    assert_eq!(code(&answer), ExitCode::ErrGeneric);
    says(&answer, "did not finish");
    assert!(took < Duration::from_secs(6), "{took:?}");
    let w = case.host.world();
    assert!(w.aborted && w.called("virDomainSuspend"));
    assert_eq!(
        w.dom("vm1").map(|d| d.state),
        Some(DomainState::Running),
        "left paused"
    );
}

#[test]
fn a_refused_migrate_option_fails_migrate_to_with_6_naming_it_and_nothing_moves() {
    let case = Case::new("vm1", Some(UUID));
    case.running();
    let (answer, _) = migrate_to(&case, "--dname vm2", 20_000);
    assert_eq!(code(&answer), ExitCode::ErrConfigured);
    says(&answer, "'--dname'");
    assert!(!case.host.world().called("virDomainMigrate3"));
}
