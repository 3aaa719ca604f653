//! The Dummy binary run as a process, the way Pacemaker runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const DUMMY: &str = env!("CARGO_BIN_EXE_Dummy");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn dummy(action: &str, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(DUMMY);
    // stdin is not a terminal under Pacemaker (with one, stderr would get every record).
    cmd.arg(action)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run Dummy");
    Run {
        code: status.code().expect("exited"),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

fn reasons(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("ocf-exit-reason:"))
        .collect()
}

/// An environment with a state file in a fresh temporary directory.
struct Fixture {
    dir: tempfile::TempDir,
    state: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("d.state");
        Fixture { dir, state }
    }
    fn run(&self, action: &str, extra: &[(&str, &str)]) -> Run {
        let state = self.state.to_str().unwrap().to_string();
        let mut env: Vec<(&str, &str)> = vec![
            ("OCF_RESOURCE_INSTANCE", "d1"),
            ("OCF_RESKEY_state", &state),
            ("OCF_RESKEY_CRM_meta_timeout", "20000"),
        ];
        env.extend_from_slice(extra);
        dummy(action, &env)
    }
}

const RECURRING: (&str, &str) = ("OCF_RESKEY_CRM_meta_interval", "10000");

#[test]
fn start_monitor_stop_round_trip_is_idempotent() {
    let f = Fixture::new();
    let probe = f.run("monitor", &[]);
    assert_eq!(probe.code, 7, "probe of a stopped resource");
    assert!(
        reasons(&probe.stderr).is_empty(),
        "a probe that finds it stopped gives no reason"
    );
    assert!(
        probe.stderr.is_empty(),
        "and logs nothing at info level: {}",
        probe.stderr
    );
    assert_eq!(f.run("stop", &[]).code, 0, "stop of a stopped resource");
    assert_eq!(f.run("start", &[]).code, 0);
    assert!(f.state.is_file());
    assert_eq!(f.run("start", &[]).code, 0, "second start");
    assert_eq!(f.run("monitor", &[RECURRING]).code, 0);
    assert_eq!(f.run("monitor", &[]).code, 0, "probe of a running resource");
    assert_eq!(f.run("stop", &[]).code, 0);
    assert!(!f.state.exists());
    assert_eq!(f.run("stop", &[]).code, 0, "second stop");
    assert_eq!(f.run("monitor", &[RECURRING]).code, 7);
}

#[test]
fn default_state_file_lives_in_ha_varrun_without_the_anonymous_clone_suffix() {
    let dir = tempfile::tempdir().unwrap();
    let varrun = dir.path().to_str().unwrap();
    let env = [
        ("OCF_RESOURCE_INSTANCE", "web:2"),
        ("HA_VARRUN", varrun),
        ("OCF_RESKEY_CRM_meta_globally_unique", "false"),
    ];
    assert_eq!(dummy("start", &env).code, 0);
    assert!(dir.path().join("Dummy-web.state").is_file());
    let unique = [
        ("OCF_RESOURCE_INSTANCE", "web:2"),
        ("HA_VARRUN", varrun),
        ("OCF_RESKEY_CRM_meta_globally_unique", "true"),
    ];
    assert_eq!(dummy("start", &unique).code, 0);
    assert!(dir.path().join("Dummy-web:2.state").is_file());
}

#[test]
fn without_state_or_instance_stop_succeeds_probe_is_stopped_start_is_misconfigured() {
    assert_eq!(dummy("stop", &[]).code, 0);
    assert_eq!(dummy("monitor", &[]).code, 7);
    let start = dummy("start", &[]);
    assert_eq!(start.code, 6);
    assert_eq!(
        reasons(&start.stderr),
        ["neither parameter 'state' nor OCF_RESOURCE_INSTANCE is set"]
    );
}

#[test]
fn check_levels_30_and_40() {
    let f = Fixture::new();
    assert_eq!(f.run("start", &[]).code, 0);
    let l30 = f.run("monitor", &[RECURRING, ("OCF_CHECK_LEVEL", "30")]);
    assert_eq!(l30.code, 1);
    assert_eq!(reasons(&l30.stderr), ["hyperdrive quota reached"]);
    std::fs::write(&f.state, "6\n").unwrap();
    let l40 = f.run("monitor", &[RECURRING, ("OCF_CHECK_LEVEL", "40")]);
    assert_eq!(l40.code, 6);
    assert_eq!(reasons(&l40.stderr).len(), 1);
    std::fs::write(&f.state, "").unwrap();
    assert_eq!(
        f.run("monitor", &[RECURRING, ("OCF_CHECK_LEVEL", "40")])
            .code,
        0
    );
    // Levels apply to monitors only: stop still works.
    assert_eq!(f.run("stop", &[("OCF_CHECK_LEVEL", "30")]).code, 0);
}

#[test]
fn check_level_20_fails_sometimes_but_not_always() {
    let f = Fixture::new();
    assert_eq!(f.run("start", &[]).code, 0);
    let codes: Vec<i32> = (0..60)
        .map(|_| {
            f.run("monitor", &[RECURRING, ("OCF_CHECK_LEVEL", "20")])
                .code
        })
        .collect();
    assert!(codes.contains(&0) && codes.contains(&1), "{codes:?}");
    assert!(codes.iter().all(|c| *c == 0 || *c == 1));
}

#[test]
fn a_bad_op_sleep_is_a_configuration_error_naming_the_parameter() {
    let f = Fixture::new();
    for action in ["validate-all", "start"] {
        let r = f.run(action, &[("OCF_RESKEY_op_sleep", "abc")]);
        assert_eq!(r.code, 6, "{action}");
        let rs = reasons(&r.stderr);
        assert_eq!(rs.len(), 1, "{}", r.stderr);
        assert!(
            rs[0].starts_with("parameter 'op_sleep': 'abc'"),
            "{}",
            rs[0]
        );
    }
    // stop and probes still act, with the default in place of the bad value.
    assert_eq!(f.run("stop", &[("OCF_RESKEY_op_sleep", "abc")]).code, 0);
    assert_eq!(f.run("monitor", &[("OCF_RESKEY_op_sleep", "abc")]).code, 7);
}

#[test]
fn op_sleep_sleeps_and_never_outlives_the_timeout() {
    let f = Fixture::new();
    let t = Instant::now();
    assert_eq!(f.run("start", &[("OCF_RESKEY_op_sleep", "300ms")]).code, 0);
    assert!(t.elapsed() >= Duration::from_millis(300));
    // A 30 s sleep under a 2 s timeout: fails before the timeout, with a reason.
    let t = Instant::now();
    let r = f.run(
        "monitor",
        &[
            RECURRING,
            ("OCF_RESKEY_op_sleep", "30"),
            ("OCF_RESKEY_CRM_meta_timeout", "2000"),
        ],
    );
    let took = t.elapsed();
    assert_eq!(r.code, 1);
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(took >= Duration::from_millis(1000), "{took:?}");
    assert!(
        reasons(&r.stderr)[0].contains("does not fit in the 2s operation timeout"),
        "{}",
        r.stderr
    );
    // The serialization marker is cleaned up.
    assert!(!f.dir.path().join("d.state.serialized").exists());
}

#[test]
fn overlapping_monitors_are_detected() {
    let f = Fixture::new();
    assert_eq!(f.run("start", &[]).code, 0);
    std::fs::write(f.dir.path().join("d.state.serialized"), "").unwrap();
    let r = f.run("monitor", &[RECURRING, ("OCF_RESKEY_op_sleep", "1")]);
    assert_eq!(r.code, 1);
    assert!(reasons(&r.stderr)[0].starts_with("alternate universe collision"));
    // stop is never refused, and clears the marker.
    assert_eq!(f.run("stop", &[("OCF_RESKEY_op_sleep", "100ms")]).code, 0);
    assert!(!f.dir.path().join("d.state.serialized").exists());
}

#[test]
fn fail_start_on_this_node_fails_start_but_leaves_it_running() {
    let f = Fixture::new();
    let env = [
        ("OCF_RESKEY_fail_start_on", "nodeX"),
        ("OCF_RESKEY_CRM_meta_on_node", "nodeX"),
    ];
    let r = f.run("start", &env);
    assert_eq!(r.code, 1);
    assert_eq!(reasons(&r.stderr).len(), 1);
    assert_eq!(f.run("monitor", &[RECURRING]).code, 0);
    assert_eq!(f.run("reload-agent", &env).code, 1);
    assert_eq!(f.run("migrate_from", &env).code, 1);
    // Another node's name does not matter.
    assert_eq!(
        f.run("start", &[("OCF_RESKEY_fail_start_on", "elsewhere")])
            .code,
        0
    );
}

#[test]
fn migrate_reload_and_reload_agent() {
    let f = Fixture::new();
    assert_eq!(
        f.run(
            "migrate_from",
            &[("OCF_RESKEY_CRM_meta_migrate_source", "a")]
        )
        .code,
        0
    );
    assert!(f.state.is_file());
    assert_eq!(f.run("reload", &[]).code, 0);
    assert_eq!(f.run("reload-agent", &[("OCF_RESKEY_fake", "new")]).code, 0);
    assert!(f.state.is_file());
    assert_eq!(
        f.run("migrate_to", &[("OCF_RESKEY_CRM_meta_migrate_target", "b")])
            .code,
        0
    );
    assert!(!f.state.exists());
    // reload-agent of a stopped resource starts it, as pacemaker's Dummy does.
    assert_eq!(f.run("reload-agent", &[]).code, 0);
    assert!(f.state.is_file());
}

#[test]
fn validate_all_at_level_10_checks_the_directories() {
    let f = Fixture::new();
    assert_eq!(f.run("validate-all", &[]).code, 0);
    assert_eq!(f.run("validate-all", &[("OCF_CHECK_LEVEL", "10")]).code, 0);
    let missing = [
        ("OCF_RESKEY_state", "/nonexistent-dir/x.state"),
        ("OCF_CHECK_LEVEL", "10"),
    ];
    let r = dummy("validate-all", &missing);
    assert_eq!(r.code, 2);
    assert_eq!(
        reasons(&r.stderr),
        ["parameter 'state': directory /nonexistent-dir does not exist"]
    );
    // At level 0 only the parameters themselves are checked.
    assert_eq!(
        dummy(
            "validate-all",
            &[("OCF_RESKEY_state", "/nonexistent-dir/x.state")]
        )
        .code,
        0
    );
    let envfile = [
        ("OCF_RESKEY_envfile", "/nonexistent-dir/env"),
        ("OCF_CHECK_LEVEL", "10"),
    ];
    let r = f.run("validate-all", &envfile);
    assert_eq!(r.code, 2);
    assert!(reasons(&r.stderr)[0].starts_with("parameter 'envfile'"));
}

#[test]
fn envfile_records_every_action_with_its_environment() {
    let f = Fixture::new();
    let envfile = f.dir.path().join("env.log");
    let e = envfile.to_str().unwrap();
    f.run("start", &[("OCF_RESKEY_envfile", e)]);
    f.run("monitor", &[("OCF_RESKEY_envfile", e), RECURRING]);
    let text = std::fs::read_to_string(&envfile).unwrap();
    let headers: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("### ") && l.len() > 4)
        .collect();
    assert_eq!(headers.len(), 2, "{text}");
    assert!(headers[0].starts_with("### start @ "));
    assert!(headers[1].starts_with("### monitor @ "));
    assert!(text.contains("OCF_RESOURCE_INSTANCE=d1"));
}

#[test]
fn a_planted_symlink_at_the_state_path_is_not_followed() {
    let f = Fixture::new();
    let victim = f.dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, &f.state).unwrap();
    // A symlink is not our state file: not running.
    assert_eq!(f.run("monitor", &[RECURRING]).code, 7);
    assert_eq!(f.run("start", &[]).code, 0);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(std::fs::symlink_metadata(&f.state)
        .unwrap()
        .file_type()
        .is_file());
}

#[test]
fn usage_meta_data_and_unsupported_actions() {
    let u = dummy("usage", &[]);
    assert_eq!(u.code, 0);
    assert!(u.stdout.starts_with(
        "usage: Dummy {start|stop|monitor|reload|reload-agent|migrate_to|migrate_from|validate-all|meta-data|usage|help}"
    ));
    for bad in ["status", "promote", "bogus", ""] {
        let r = dummy(bad, &[]);
        assert_eq!(r.code, 3, "{bad}");
        assert_eq!(reasons(&r.stderr).len(), 1, "{bad}: {}", r.stderr);
    }
    let none = Command::new(DUMMY).env_clear().output().unwrap();
    assert_eq!(none.status.code(), Some(3));
    let md = dummy("meta-data", &[]);
    assert_eq!((md.code, md.stderr.as_str()), (0, ""));
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../metadata/Dummy-ocf-1.0.xml");
    assert_eq!(md.stdout, std::fs::read_to_string(committed).unwrap());
    let md11 = dummy(
        "meta-data",
        &[
            ("OCF_RA_VERSION_MINOR", "1"),
            ("OCF_RESOURCE_INSTANCE", "Dummy"),
        ],
    );
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../metadata/Dummy-ocf-1.1.xml");
    assert_eq!(md11.stdout, std::fs::read_to_string(committed).unwrap());
}

#[test]
fn logs_go_to_ha_logfile_with_instance_and_action() {
    let f = Fixture::new();
    let log = f.dir.path().join("ha.log");
    let l = log.to_str().unwrap();
    f.run("start", &[("HA_LOGFILE", l)]);
    let r = f.run(
        "monitor",
        &[("HA_LOGFILE", l), RECURRING, ("OCF_CHECK_LEVEL", "30")],
    );
    assert_eq!(r.code, 1);
    let text = std::fs::read_to_string(&log).unwrap();
    let failure = text
        .lines()
        .find(|l| l.contains("hyperdrive quota reached"))
        .expect("reason logged");
    // `<HA_DATEFMT date> Dummy(d1)[PID]:    ERROR: text`, as ocf-shellfuncs writes it.
    let (date, rest) = failure.split_once("  Dummy(d1)[").expect(failure);
    assert_eq!(date.len(), "Dec 01 09:05:07".len(), "{failure}");
    let (pid, text) = rest.split_once("]:    ").expect(failure);
    assert!(pid.parse::<u32>().is_ok(), "{failure}");
    assert_eq!(text, "ERROR: hyperdrive quota reached");
    assert!(
        text_has(&text_of(&log), "INFO: start finished: OCF_SUCCESS"),
        "{}",
        text_of(&log)
    );
    // stderr: the exit reason, and no informational record, no repeat of the failure.
    assert_eq!(r.stderr, "ocf-exit-reason:hyperdrive quota reached\n");
}

fn text_of(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn text_has(text: &str, what: &str) -> bool {
    text.lines().any(|l| l.contains(what))
}

#[test]
fn stderr_gets_warnings_and_errors_only_and_no_rust_debug_text() {
    let f = Fixture::new();
    // No log configured at all: informational records go nowhere, not to stderr.
    let r = f.run("start", &[]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    // A warning (a bad value a stop goes on without) is on stderr, in the shell layout.
    let r = f.run("stop", &[("OCF_RESKEY_op_sleep", "soon")]);
    assert_eq!(r.code, 0);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", r.stderr);
    assert!(
        lines[0].starts_with("WARNING: parameter 'op_sleep'"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("Known(") && !r.stderr.contains("Some("));
}
