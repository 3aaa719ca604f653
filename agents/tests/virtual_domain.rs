//! VirtualDomain run as a process against libvirt's in-process test driver
//! (`test:///FILE`, re-read on every connection; no daemon):
//! - which domain is its own: looked up by UUID whenever one is known, a domain of our
//!   name with another UUID is never taken for ours, and a remembered identity is used
//!   only when it is this resource's (against a real libvirtd: tests/libvirt/identity.sh);
//! - short operation timeouts still ask libvirt before anything else.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const AGENT: &str = env!("CARGO_BIN_EXE_VirtualDomain");
const OURS: &str = "6a6e4f0e-2f0a-4c5b-9f7e-00000000000a";
const OTHER: &str = "6a6e4f0e-2f0a-4c5b-9f7e-00000000000b";

struct Run {
    code: i32,
    stderr: String,
}

impl Run {
    fn reason(&self) -> String {
        self.stderr
            .lines()
            .filter_map(|l| l.strip_prefix("ocf-exit-reason:"))
            .next_back()
            .unwrap_or("")
            .to_string()
    }
}

/// A test-driver node holding one running domain `vm-a` whose UUID is `uuid`, a state
/// directory, and a config path.
struct Fixture {
    dir: tempfile::TempDir,
    node: PathBuf,
    config: PathBuf,
    rsctmp: PathBuf,
}

impl Fixture {
    fn new(uuid: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("node.xml");
        std::fs::write(
            &node,
            format!(
                "<node><domain type='test'><name>vm-a</name><uuid>{uuid}</uuid>\
                 <memory>65536</memory><os><type>hvm</type></os></domain></node>"
            ),
        )
        .unwrap();
        let rsctmp = dir.path().join("rsctmp");
        std::fs::create_dir(&rsctmp).unwrap();
        std::fs::set_permissions(&rsctmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = dir.path().join("vm-a.xml");
        Fixture {
            dir,
            node,
            config,
            rsctmp,
        }
    }

    /// Writes the resource's config: domain `vm-a`, with `uuid` if given.
    fn config(&self, uuid: Option<&str>) {
        let uuid = uuid
            .map(|u| format!("<uuid>{u}</uuid>"))
            .unwrap_or_default();
        std::fs::write(
            &self.config,
            format!(
                "<domain type='test'><name>vm-a</name>{uuid}<memory>65536</memory>\
                 <os><type>hvm</type></os></domain>"
            ),
        )
        .unwrap();
    }

    fn state_file(&self) -> PathBuf {
        self.rsctmp.join("VirtualDomain-vm1.state")
    }

    /// Writes the state file as an earlier start would have.
    fn remember(&self, config: &Path, uuid: &str, assigned: bool) {
        let mut text = format!("config={}\nname=vm-a\nuuid={uuid}\n", config.display());
        if assigned {
            text.push_str("uuid_assigned=1\n");
        }
        std::fs::write(self.state_file(), text).unwrap();
        std::fs::set_permissions(self.state_file(), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }

    fn run(&self, action: &str, extra: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(AGENT);
        cmd.arg(action)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("OCF_ROOT", "/usr/lib/ocf")
            .env("OCF_RESOURCE_INSTANCE", "vm1")
            .env("HA_RSCTMP", &self.rsctmp)
            .env("HA_LOGFACILITY", "none")
            .env("OCF_RESKEY_config", &self.config)
            .env(
                "OCF_RESKEY_hypervisor",
                format!("test://{}", self.node.display()),
            )
            .env("OCF_RESKEY_autoset_utilization_cpu", "false")
            .env("OCF_RESKEY_autoset_utilization_hv_memory", "false")
            .env("OCF_RESKEY_autoset_utilization_host_memory", "false")
            .env("OCF_RESKEY_CRM_meta_timeout", "20000");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run VirtualDomain");
        let _ = &self.dir;
        Run {
            code: out.status.code().expect("exited"),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

const RECURRING: (&str, &str) = ("OCF_RESKEY_CRM_meta_interval", "10000");

#[test]
fn the_domain_with_the_configs_uuid_is_ours() {
    let f = Fixture::new(OURS);
    f.config(Some(OURS));
    let probe = f.run("monitor", &[]);
    assert_eq!(probe.code, 0, "probe: {}", probe.stderr);
    let start = f.run("start", &[]);
    assert_eq!(start.code, 0, "start of a running domain: {}", start.stderr);
}

#[test]
fn a_domain_of_our_name_with_another_uuid_is_not_ours() {
    let f = Fixture::new(OTHER);
    f.config(Some(OURS));
    let probe = f.run("monitor", &[]);
    assert_eq!(probe.code, 7, "probe: {}", probe.stderr);
    let monitor = f.run("monitor", &[RECURRING]);
    assert_eq!(monitor.code, 7, "monitor: {}", monitor.stderr);
    assert!(
        monitor.stderr.contains(OTHER),
        "monitor says why: {}",
        monitor.stderr
    );

    let start = f.run("start", &[]);
    assert_eq!(start.code, 1, "start: {}", start.stderr);
    let reason = start.reason();
    assert!(
        reason.contains(OURS) && reason.contains(OTHER),
        "start names both UUIDs: {reason}"
    );

    let stop = f.run("stop", &[]);
    assert_eq!(stop.code, 0, "stop: {}", stop.stderr);
    assert!(
        stop.stderr.contains("left alone"),
        "stop says it left the other domain alone: {}",
        stop.stderr
    );
}

#[test]
fn the_uuid_libvirt_assigned_at_start_is_kept_for_a_config_without_one() {
    let f = Fixture::new(OTHER);
    f.config(None);
    // Our earlier start got OURS from libvirt; what runs now under our name is not it.
    f.remember(&f.config, OURS, true);
    let probe = f.run("monitor", &[]);
    assert_eq!(probe.code, 7, "probe: {}", probe.stderr);
    // The monitor must not have forgotten it either.
    let monitor = f.run("monitor", &[RECURRING]);
    assert_eq!(monitor.code, 7, "monitor: {}", monitor.stderr);
    let state = std::fs::read_to_string(f.state_file()).unwrap();
    assert!(
        state.contains(&format!("uuid={OURS}")),
        "state file: {state}"
    );

    // When the cached UUID is that of the running domain, it is ours, and stays cached.
    let f = Fixture::new(OURS);
    f.config(None);
    f.remember(&f.config, OURS, true);
    let monitor = f.run("monitor", &[RECURRING]);
    assert_eq!(monitor.code, 0, "monitor: {}", monitor.stderr);
    let state = std::fs::read_to_string(f.state_file()).unwrap();
    assert!(
        state.contains(&format!("uuid={OURS}")),
        "state file: {state}"
    );
}

#[test]
fn a_state_file_of_another_config_is_not_this_resources() {
    let f = Fixture::new(OTHER);
    f.config(None);
    // Left by an earlier resource of the same id with another config: ignored, so the
    // domain is looked up by name as for a config without a UUID.
    f.remember(Path::new("/elsewhere/vm-a.xml"), OURS, true);
    let probe = f.run("monitor", &[]);
    assert_eq!(probe.code, 0, "probe: {}", probe.stderr);

    // With the config gone, that state file names nothing of ours: not running, and
    // stop does not touch vm-a.
    std::fs::remove_file(&f.config).unwrap();
    f.remember(Path::new("/elsewhere/vm-a.xml"), OTHER, false);
    let probe = f.run("monitor", &[]);
    assert_eq!(probe.code, 7, "probe: {}", probe.stderr);
    let stop = f.run("stop", &[]);
    assert_eq!(stop.code, 0, "stop: {}", stop.stderr);
    assert!(
        stop.stderr.contains("not used"),
        "stop says it ignored the state file: {}",
        stop.stderr
    );
}

#[test]
fn a_missing_config_uses_the_identity_cached_for_it() {
    let f = Fixture::new(OURS);
    f.remember(&f.config, OURS, false);
    // The config is gone (unmounted storage): the cached identity still finds vm-a.
    let probe = f.run("monitor", &[]);
    assert_eq!(probe.code, 0, "probe: {}", probe.stderr);
}

#[test]
fn a_state_file_others_could_write_is_not_believed() {
    let f = Fixture::new(OURS);
    f.remember(&f.config, OURS, false);
    std::fs::set_permissions(&f.rsctmp, std::fs::Permissions::from_mode(0o777)).unwrap();
    let probe = f.run("monitor", &[]);
    assert_eq!(probe.code, 7, "probe: {}", probe.stderr);
    assert!(
        probe.stderr.contains("written by others"),
        "says why the cache was not used: {}",
        probe.stderr
    );
}

/// What an agent says when it did not get to ask libvirt, or blamed libvirt for our budget.
const NOT_ASKED: [&str; 4] = [
    "did not answer",
    "no time was left",
    "cannot reach",
    "no hypervisor process",
];

fn asked_libvirt(run: &Run) -> bool {
    !NOT_ASKED.iter().any(|s| run.stderr.contains(s))
}

#[test]
fn a_probe_with_a_short_timeout_asks_libvirt() {
    let f = Fixture::new(OTHER);
    f.config(Some(OURS)); // not running: only vm-a of another UUID exists
    for ms in ["500", "1000", "2000"] {
        let probe = f.run("monitor", &[("OCF_RESKEY_CRM_meta_timeout", ms)]);
        assert_eq!(probe.code, 7, "probe at {ms} ms: {}", probe.stderr);
        assert!(asked_libvirt(&probe), "probe at {ms} ms: {}", probe.stderr);
    }
}

#[test]
fn a_stop_with_a_short_timeout_asks_libvirt_first() {
    let f = Fixture::new(OURS);
    f.config(Some(OURS));
    for ms in ["500", "1000", "3000"] {
        let stop = f.run("stop", &[("OCF_RESKEY_CRM_meta_timeout", ms)]);
        assert_eq!(stop.code, 0, "stop at {ms} ms: {}", stop.stderr);
        assert!(asked_libvirt(&stop), "stop at {ms} ms: {}", stop.stderr);
    }
}

#[test]
fn a_state_directory_that_cannot_be_written_is_reported() {
    let f = Fixture::new(OURS);
    f.config(Some(OURS));
    // HA_RSCTMP below a regular file: no state file can ever be written there.
    let blocked = f.dir.path().join("a-file");
    std::fs::write(&blocked, "").unwrap();
    let rsctmp = blocked.join("rsctmp");
    let rsctmp = rsctmp.to_str().unwrap();

    let validate = f.run(
        "validate-all",
        &[("OCF_CHECK_LEVEL", "10"), ("HA_RSCTMP", rsctmp)],
    );
    assert_eq!(validate.code, 1, "validate-all: {}", validate.stderr);
    assert!(
        validate.reason().contains("cannot be written"),
        "validate-all says why: {}",
        validate.reason()
    );
    let level0 = f.run("validate-all", &[("HA_RSCTMP", rsctmp)]);
    assert_eq!(level0.code, 0, "validate-all at level 0: {}", level0.stderr);

    // start (of the running vm-a: already running) says so in its log.
    let start = f.run("start", &[("HA_RSCTMP", rsctmp)]);
    assert_eq!(start.code, 0, "start: {}", start.stderr);
    assert!(
        start.stderr.contains("not remembered"),
        "start warns: {}",
        start.stderr
    );
}
