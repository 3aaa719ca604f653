//! The exit codes of the OCF resource agent API, and the error type that carries one.
//!
//! Every failure of an action becomes an [`OcfError`]: an exit code plus the one-line
//! reason that Pacemaker shows next to the failed operation. The dispatcher prints that
//! reason exactly once (see [`crate::dispatch`]).

use std::fmt;

/// An OCF exit code (OCF RA API 1.1, "Return codes"), plus Pacemaker's degraded codes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ExitCode {
    /// 0: success; for monitor, "running".
    Success = 0,
    /// 1: an error not covered by a more specific code.
    ErrGeneric = 1,
    /// 2: the parameters are invalid on this host.
    ErrArgs = 2,
    /// 3: the action is not implemented.
    ErrUnimplemented = 3,
    /// 4: insufficient privilege.
    ErrPerm = 4,
    /// 5: required software is missing on this host.
    ErrInstalled = 5,
    /// 6: the parameters are invalid anywhere (Pacemaker stops the resource everywhere).
    ErrConfigured = 6,
    /// 7: cleanly stopped (monitor only; stop must return 0, never 7).
    NotRunning = 7,
    /// 8: running in the promoted role.
    RunningPromoted = 8,
    /// 9: failed in the promoted role.
    FailedPromoted = 9,
    /// 190: running, but a failure is more likely soon.
    Degraded = 190,
    /// 191: promoted and degraded.
    DegradedPromoted = 191,
}

impl ExitCode {
    /// The numeric exit status.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The name the OCF shell library uses for this code.
    pub fn name(self) -> &'static str {
        match self {
            ExitCode::Success => "OCF_SUCCESS",
            ExitCode::ErrGeneric => "OCF_ERR_GENERIC",
            ExitCode::ErrArgs => "OCF_ERR_ARGS",
            ExitCode::ErrUnimplemented => "OCF_ERR_UNIMPLEMENTED",
            ExitCode::ErrPerm => "OCF_ERR_PERM",
            ExitCode::ErrInstalled => "OCF_ERR_INSTALLED",
            ExitCode::ErrConfigured => "OCF_ERR_CONFIGURED",
            ExitCode::NotRunning => "OCF_NOT_RUNNING",
            ExitCode::RunningPromoted => "OCF_RUNNING_PROMOTED",
            ExitCode::FailedPromoted => "OCF_FAILED_PROMOTED",
            ExitCode::Degraded => "OCF_DEGRADED",
            ExitCode::DegradedPromoted => "OCF_DEGRADED_PROMOTED",
        }
    }

    /// The code for a numeric status, if the OCF API names it.
    pub fn from_code(code: i32) -> Option<ExitCode> {
        Some(match code {
            0 => ExitCode::Success,
            1 => ExitCode::ErrGeneric,
            2 => ExitCode::ErrArgs,
            3 => ExitCode::ErrUnimplemented,
            4 => ExitCode::ErrPerm,
            5 => ExitCode::ErrInstalled,
            6 => ExitCode::ErrConfigured,
            7 => ExitCode::NotRunning,
            8 => ExitCode::RunningPromoted,
            9 => ExitCode::FailedPromoted,
            190 => ExitCode::Degraded,
            191 => ExitCode::DegradedPromoted,
            _ => return None,
        })
    }
}

impl fmt::Display for ExitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

/// A failed action: the exit code and the most specific reason, one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OcfError {
    pub code: ExitCode,
    reason: String,
}

impl OcfError {
    /// An error with `code`; the reason is flattened to one line.
    pub fn new(code: ExitCode, reason: impl Into<String>) -> OcfError {
        OcfError {
            code,
            reason: one_line(&reason.into()),
        }
    }
    pub fn generic(reason: impl Into<String>) -> OcfError {
        OcfError::new(ExitCode::ErrGeneric, reason)
    }
    pub fn args(reason: impl Into<String>) -> OcfError {
        OcfError::new(ExitCode::ErrArgs, reason)
    }
    pub fn unimplemented(reason: impl Into<String>) -> OcfError {
        OcfError::new(ExitCode::ErrUnimplemented, reason)
    }
    pub fn perm(reason: impl Into<String>) -> OcfError {
        OcfError::new(ExitCode::ErrPerm, reason)
    }
    pub fn installed(reason: impl Into<String>) -> OcfError {
        OcfError::new(ExitCode::ErrInstalled, reason)
    }
    pub fn configured(reason: impl Into<String>) -> OcfError {
        OcfError::new(ExitCode::ErrConfigured, reason)
    }

    /// The one-line reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for OcfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for OcfError {}

/// What an action returns: an exit code that needs no reason (success, or "not running"
/// from a monitor), or an error with its reason.
pub type OcfResult<T = ExitCode> = Result<T, OcfError>;

/// Pacemaker keeps the text up to the end of the line: newlines and other control
/// characters inside a reason would cut it, so they become spaces.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last_space = false;
    for c in text.trim().chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        out.push(c);
    }
    out
}

/// The exit-reason line as Pacemaker reads it from stderr. Pacemaker 2.1's executor keeps
/// only the first 128 characters of the reason (services_linux.c; the whole text still
/// goes to the log): agents word their reasons with what matters first.
pub fn exit_reason_line(prefix: Option<&str>, reason: &str) -> String {
    format!(
        "{}{}",
        prefix.unwrap_or(DEFAULT_EXIT_REASON_PREFIX),
        one_line(reason)
    )
}

/// The prefix used when `OCF_EXIT_REASON_PREFIX` is unset.
pub const DEFAULT_EXIT_REASON_PREFIX: &str = "ocf-exit-reason:";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_number() {
        for n in 0..=255 {
            if let Some(c) = ExitCode::from_code(n) {
                assert_eq!(c.code(), n);
            }
        }
        let named: Vec<i32> = (0..=255)
            .filter(|n| ExitCode::from_code(*n).is_some())
            .collect();
        assert_eq!(named, vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 190, 191]);
    }

    #[test]
    fn reasons_are_flattened_to_one_line() {
        let e = OcfError::configured("bad\nvalue\r\n  for\tx ");
        assert_eq!(e.reason(), "bad value for x");
        assert_eq!(e.code, ExitCode::ErrConfigured);
    }

    #[test]
    fn exit_reason_line_honours_the_prefix() {
        assert_eq!(exit_reason_line(None, "a\nb"), "ocf-exit-reason:a b");
        assert_eq!(exit_reason_line(Some("X:"), "why"), "X:why");
    }
}
