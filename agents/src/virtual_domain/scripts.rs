//! monitor_scripts: commands that check the guest from the host. Each whitespace-separated
//! word is one command (as the shell agent runs them), run without a shell, one after the
//! other, all within the monitor's deadline.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use ocf_common::OcfError;

/// Runs every script; the first that fails (or does not finish by `until`) fails the
/// monitor with its output in the reason.
pub fn run_all(list: &str, domain: &str, until: Instant) -> Result<(), OcfError> {
    for script in list.split_whitespace() {
        run_one(script, domain, until)?;
    }
    Ok(())
}

fn run_one(script: &str, domain: &str, until: Instant) -> Result<(), OcfError> {
    let child = Command::new(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| {
            OcfError::generic(format!(
                "monitor_scripts: cannot run {script} (domain {domain}): {e}"
            ))
        })?;
    let pid = child.id() as i32;
    let (tx, rx) = sync_channel(1);
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
        Ok(out) => {
            out.map_err(|e| OcfError::generic(format!("monitor_scripts: {script} failed: {e}")))?
        }
        Err(_) => {
            // Kill the script and whatever it started (its own process group).
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            return Err(OcfError::generic(format!(
                "monitor_scripts: {script} did not finish within the operation timeout (domain {domain})"
            )));
        }
    };
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    let rc = output
        .status
        .code()
        .map(|c| c.to_string())
        .unwrap_or_else(|| "a signal".into());
    Err(OcfError::generic(format!(
        "monitor_scripts: {script} exited {rc}: {}",
        text.trim()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn passing_failing_and_hanging_scripts() {
        let soon = Instant::now() + Duration::from_secs(5);
        run_all("/bin/true /bin/true", "d", soon).unwrap();
        let e = run_all("/bin/true /bin/false", "d", soon).unwrap_err();
        assert_eq!(e.reason(), "monitor_scripts: /bin/false exited 1:");
        let e = run_all("/nonexistent-script", "d", soon).unwrap_err();
        assert!(e.reason().contains("cannot run"), "{}", e.reason());
        let dir = tempfile::tempdir().unwrap();
        let hang = dir.path().join("hang");
        std::fs::write(&hang, "#!/bin/sh\necho partial\nsleep 30\n").unwrap();
        std::os::unix::fs::PermissionsExt::set_mode(
            &mut std::fs::metadata(&hang).unwrap().permissions(),
            0o755,
        );
        std::fs::set_permissions(&hang, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let t = Instant::now();
        let e = run_all(
            hang.to_str().unwrap(),
            "d",
            Instant::now() + Duration::from_millis(500),
        )
        .unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(e.reason().contains("did not finish"), "{}", e.reason());
        let out = dir.path().join("out");
        std::fs::write(&out, "#!/bin/sh\necho guest not ready\nexit 3\n").unwrap();
        std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let e = run_all(out.to_str().unwrap(), "d", soon).unwrap_err();
        assert!(
            e.reason().ends_with("exited 3: guest not ready"),
            "{}",
            e.reason()
        );
    }
}
