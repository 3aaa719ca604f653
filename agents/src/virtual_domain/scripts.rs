//! monitor_scripts: commands that check the guest from the host. Each whitespace-separated
//! word is one command (as the shell agent runs them), run without a shell, one after the
//! other, all within the monitor's deadline, through the agent's one child runner
//! ([`ocf_common::child`]: output drained and capped, the script and everything it started
//! killed at the deadline, nothing left running after the agent).

use std::time::Instant;

use ocf_common::child::{self, RunError, REASON_EXCERPT};

use super::error::Error;

/// How a failing script is logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// A warning: the monitor fails with it.
    Warn,
    /// A debug record: start or migrate_from waiting for the guest to become ready,
    /// which says what it waits for itself (one record per distinct reason).
    Expected,
}

/// Runs every script; the first that fails (or does not finish by `until`) fails the
/// monitor with (the start of) its output in the reason; what was kept of the output
/// goes to the log.
pub fn run_all(
    list: &[String],
    domain: &str,
    until: Instant,
    failure: Failure,
) -> Result<(), Error> {
    for script in list {
        run_one(script, domain, until, failure)?;
    }
    Ok(())
}

fn run_one(script: &str, domain: &str, until: Instant, failure: Failure) -> Result<(), Error> {
    let done = match child::run(script, &[] as &[&str], until) {
        Ok(done) => done,
        Err(e @ RunError::TimedOut { .. }) => {
            tracing::warn!(
                domain,
                "monitor_scripts: {script} {e}; its output: {}",
                e.output()
            );
            return Err(Error::Tool(format!("monitor_scripts: {script} {e}")));
        }
        Err(e) => return Err(Error::Tool(format!("monitor_scripts: {script} {e}"))),
    };
    if done.success() {
        return Ok(());
    }
    let output = done.output();
    let bytes = done.stdout.total() + done.stderr.total();
    let text = format!("monitor_scripts: {script} {}: {output}", done.how());
    match failure {
        Failure::Warn => tracing::warn!(domain, bytes, "{text}"),
        Failure::Expected => tracing::debug!(domain, bytes, "{text}"),
    }
    Err(Error::Tool(format!(
        "monitor_scripts: {script} {}: {}",
        done.how(),
        ocf_common::exit::quoted(&child::excerpt(&output, REASON_EXCERPT))
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn list(words: &str) -> Vec<String> {
        words.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn passing_failing_and_hanging_scripts() {
        let soon = Instant::now() + Duration::from_secs(5);
        run_all(&list("/bin/true /bin/true"), "d", soon, Failure::Warn).unwrap();
        let e = run_all(&list("/bin/true /bin/false"), "d", soon, Failure::Warn).unwrap_err();
        assert_eq!(
            ocf_common::OcfError::from(e).reason(),
            "monitor_scripts: /bin/false exited 1:"
        );
        let e = run_all(&list("/nonexistent-script"), "d", soon, Failure::Warn).unwrap_err();
        assert!(
            e.reason()
                .starts_with("monitor_scripts: /nonexistent-script cannot be run: "),
            "{}",
            e.reason()
        );
        let dir = tempfile::tempdir().unwrap();
        let hang = dir.path().join("hang");
        std::fs::write(&hang, "#!/bin/sh\necho partial\nsleep 30\n").unwrap();
        std::fs::set_permissions(&hang, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let t = Instant::now();
        let e = run_all(
            &list(hang.to_str().unwrap()),
            "d",
            Instant::now() + Duration::from_millis(500),
            Failure::Warn,
        )
        .unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(
            e.reason(),
            format!(
                "monitor_scripts: {} did not finish within the operation timeout",
                hang.display()
            )
        );
        let out = dir.path().join("out");
        std::fs::write(&out, "#!/bin/sh\necho guest not ready\nexit 3\n").unwrap();
        std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let e = run_all(&list(out.to_str().unwrap()), "d", soon, Failure::Warn).unwrap_err();
        let reason = ocf_common::exit::plain(&e.reason());
        assert!(reason.ends_with("exited 3: guest not ready"), "{reason}");
    }

    #[test]
    fn ten_megabytes_of_output_make_a_short_reason_in_time() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(
            &big,
            "#!/bin/sh\nhead -c 10485760 /dev/zero | tr '\\0' x\necho LAST-LINE\nexit 2\n",
        )
        .unwrap();
        std::fs::set_permissions(&big, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let t = Instant::now();
        let e = run_all(
            &list(big.to_str().unwrap()),
            "d",
            Instant::now() + Duration::from_secs(20),
            Failure::Warn,
        )
        .unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        let reason = ocf_common::exit::plain(&e.reason());
        let prefix = format!("monitor_scripts: {} exited 2: xxxx", big.display());
        assert!(reason.starts_with(&prefix), "{}", reason);
        assert!(reason.ends_with("x..."), "{}", reason);
        assert!(
            reason.len() <= prefix.len() + REASON_EXCERPT,
            "{} bytes",
            reason.len()
        );
    }
}
