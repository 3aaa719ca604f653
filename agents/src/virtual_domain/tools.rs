//! The helper programs some parameters need (qemu-img, virt-copy-in, csync2), run
//! without a shell through the agent's one child runner.

use std::time::Instant;

use ocf_common::child;

use super::error::Error;

/// Runs a helper program (no shell) through the agent's child runner (output drained
/// and capped, the program and its descendants killed at `until`); fails with the start
/// of its output in the reason, what was kept of it in the log.
pub fn run_tool(program: &str, args: &[String], until: Instant) -> Result<(), Error> {
    let command = format!("{program} {}", args.join(" "));
    let done = child::run(program, args, until).map_err(|e| {
        if matches!(e, child::RunError::TimedOut { .. }) {
            tracing::warn!("{command} {e}; its output: {}", e.output());
        }
        Error::Tool(format!("{program} {e}"))
    })?;
    if done.success() {
        return Ok(());
    }
    let output = done.output();
    tracing::warn!("{command} {}: {output}", done.how());
    Err(Error::Tool(format!(
        "{command} failed ({}): {}",
        done.how(),
        ocf_common::exit::quoted(&child::excerpt(&output, child::REASON_EXCERPT))
    )))
}
