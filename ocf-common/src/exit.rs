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
    /// The whole reason, for the log.
    reason: String,
    /// The reason as Pacemaker gets it: at most [`EXIT_REASON_MAX`] bytes, external
    /// text ([`quoted`]) cut first.
    short: String,
}

impl OcfError {
    /// An error with `code`; the reason is flattened to one line. Parts of it made with
    /// [`quoted`] are the first to be shortened in the exit reason.
    pub fn new(code: ExitCode, reason: impl Into<String>) -> OcfError {
        let marked = one_line(&reason.into());
        OcfError {
            code,
            reason: plain(&marked),
            short: shorten(&marked, EXIT_REASON_MAX),
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

    /// The whole one-line reason (what the log gets).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The reason as the exit-reason line carries it: within Pacemaker's limit.
    pub fn exit_reason(&self) -> &str {
        &self.short
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
/// only the first 128 characters (bytes) of the reason (`EXIT_REASON_MAX_LEN` in
/// services_linux.c): a longer reason is shortened here, cutting text from outside the
/// agent ([`quoted`]) first, so that the agent's own words, which name the failure,
/// survive. The whole text goes to the log.
pub fn exit_reason_line(prefix: Option<&str>, reason: &str) -> String {
    format!(
        "{}{}",
        prefix.unwrap_or(DEFAULT_EXIT_REASON_PREFIX),
        shorten(&one_line(reason), EXIT_REASON_MAX)
    )
}

/// The prefix used when `OCF_EXIT_REASON_PREFIX` is unset.
pub const DEFAULT_EXIT_REASON_PREFIX: &str = "ocf-exit-reason:";

/// The longest exit reason Pacemaker 2.1 keeps, in bytes.
pub const EXIT_REASON_MAX: usize = 128;

/// What replaces the text cut from a reason.
const ELLIPSIS: &str = "...";
const QUOTE_OPEN: char = '\u{E000}';
const QUOTE_CLOSE: char = '\u{E001}';

/// Marks `text` as coming from outside the agent (libvirt's message, a tool's output)
/// when it is put into a reason or a log message: an exit reason too long for
/// Pacemaker is shortened there first. The marks are private-use characters that every
/// output removes ([`plain`]).
pub fn quoted(text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    let mut out = String::with_capacity(text.len() + 6);
    out.push(QUOTE_OPEN);
    out.extend(text.chars().filter(|c| !is_mark(*c)));
    out.push(QUOTE_CLOSE);
    out
}

fn is_mark(c: char) -> bool {
    c == QUOTE_OPEN || c == QUOTE_CLOSE
}

/// `text` without the marks of [`quoted`].
pub fn plain(text: &str) -> String {
    if text.contains(is_mark) {
        text.chars().filter(|c| !is_mark(*c)).collect()
    } else {
        text.to_string()
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn prefix_within(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `marked` (a reason that may hold [`quoted`] parts) in at most `max` bytes, without
/// the marks: the quoted parts are cut first (the longest first, each keeping its
/// beginning followed by "..."); only when the agent's own words alone are too long is
/// the end of the whole cut.
pub fn shorten(marked: &str, max: usize) -> String {
    // (text, quoted) in order.
    let mut parts: Vec<(String, bool)> = Vec::new();
    let mut quoted_part = false;
    let mut cur = String::new();
    for c in marked.chars() {
        if c == QUOTE_OPEN || c == QUOTE_CLOSE {
            if !cur.is_empty() {
                parts.push((std::mem::take(&mut cur), quoted_part));
            }
            quoted_part = c == QUOTE_OPEN;
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        parts.push((cur, quoted_part));
    }
    let total = |parts: &[(String, bool)]| parts.iter().map(|(t, _)| t.len()).sum::<usize>();
    let mut excess = total(&parts).saturating_sub(max);
    while excess > 0 {
        // The longest quoted part that can still give something up.
        let Some(i) = (0..parts.len())
            .filter(|i| parts[*i].1 && parts[*i].0.len() > ELLIPSIS.len())
            .max_by_key(|i| parts[*i].0.len())
        else {
            break;
        };
        let text = &parts[i].0;
        let keep = text.len().saturating_sub(excess + ELLIPSIS.len());
        let kept = prefix_within(text, keep).trim_end();
        let new = format!("{kept}{ELLIPSIS}");
        excess = excess.saturating_sub(text.len().saturating_sub(new.len()));
        parts[i] = (new, false);
    }
    let whole: String = parts.into_iter().map(|(t, _)| t).collect();
    if whole.len() <= max {
        return whole;
    }
    let kept = prefix_within(&whole, max.saturating_sub(ELLIPSIS.len())).trim_end();
    format!("{kept}{ELLIPSIS}")
}

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
    fn a_long_reason_keeps_the_agents_words_and_cuts_the_quoted_text() {
        let libvirt = "unable to connect to server at '127.0.0.1:1': Connection refused, and then a great deal more that libvirt says about it";
        let reason = format!(
            "cannot reach libvirt at qemu+tcp://127.0.0.1:1/system: {}; cannot stop vm1: its guests are not local qemu processes",
            quoted(libvirt)
        );
        let e = OcfError::generic(&reason);
        assert_eq!(e.reason(), reason.replace(['\u{E000}', '\u{E001}'], ""));
        let short = e.exit_reason();
        assert!(
            short.len() <= EXIT_REASON_MAX,
            "{} bytes: {short}",
            short.len()
        );
        assert!(
            short.starts_with("cannot reach libvirt at qemu+tcp://127.0.0.1:1/system: unable"),
            "{short}"
        );
        assert!(
            short.ends_with("...; cannot stop vm1: its guests are not local qemu processes"),
            "{short}"
        );
        let line = exit_reason_line(None, &reason);
        assert_eq!(line, format!("ocf-exit-reason:{short}"));
    }

    #[test]
    fn a_reason_within_the_limit_is_left_whole_and_the_marks_never_show() {
        let reason = format!("virDomainCreateXML failed: {}", quoted("internal error"));
        let e = OcfError::generic(reason);
        assert_eq!(e.reason(), "virDomainCreateXML failed: internal error");
        assert_eq!(e.exit_reason(), e.reason());
        assert_eq!(plain(&quoted("a\u{E000}b")), "ab");
    }

    #[test]
    fn too_long_own_words_are_cut_at_the_end_on_a_character_boundary() {
        let reason = "é".repeat(100);
        let short = shorten(&reason, EXIT_REASON_MAX);
        assert!(short.len() <= EXIT_REASON_MAX);
        assert!(short.ends_with("é..."), "{short}");
        // 166 characters of libvirt's, as in the issue: the agent's words come out whole.
        let msg = "x".repeat(166);
        let short = shorten(
            &format!("Failed to start virtual domain vm1: {}", quoted(&msg)),
            EXIT_REASON_MAX,
        );
        assert_eq!(short.len(), EXIT_REASON_MAX, "{short}");
        assert!(short.starts_with("Failed to start virtual domain vm1: xxx"));
        assert!(short.ends_with("x..."));
    }

    #[test]
    fn exit_reason_line_honours_the_prefix() {
        assert_eq!(exit_reason_line(None, "a\nb"), "ocf-exit-reason:a b");
        assert_eq!(exit_reason_line(Some("X:"), "why"), "X:why");
    }
}
