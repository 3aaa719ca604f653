//! Logging where admins look for it, as ocf-shellfuncs does (the interface: tag, line
//! layouts, environment variables, facility and levels; the code is ours).
//!
//! Every record is tagged `AGENT(instance)[pid]` (`AGENT[pid]` without an instance) and
//! goes to:
//! - syslog, when `HA_LOGFACILITY` names a facility (pacemakerd sets it from
//!   `PCMK_logfacility`; unset, empty or `none`: no syslog). When journald's socket
//!   answers, the record is sent to it natively, with `SYSLOG_IDENTIFIER=AGENT(instance)`
//!   (`journalctl -t 'AGENT(instance)'`), the facility, the priority and the fields
//!   `OCF_RESOURCE_TYPE`, `OCF_RESOURCE_INSTANCE`, `OCF_ACTION`; otherwise as an
//!   RFC 3164 datagram to `/dev/log`, `<PRI>Mmm dd hh:mm:ss AGENT(instance)[pid]: LEVEL: text`,
//!   as logger(1) writes it for the shell agents. Levels: err, warning, info, debug;
//! - `HA_LOGFILE`: `<date> AGENT(instance)[pid]:    LEVEL: text`, everything but debug;
//! - `HA_DEBUGLOG`: `AGENT(instance)[pid]:\t<date>LEVEL: text`, debug records (when
//!   `HA_debug` is on) and, when it is not the same file as `HA_LOGFILE`, the others;
//! - stderr: warnings and errors only (`LEVEL: text`), which Pacemaker copies into its own
//!   log for the operation; the failure that becomes the exit reason is not repeated
//!   there. When stdin is a terminal (an admin running the agent by hand) stderr gets
//!   every record of the log level;
//! - the trace file, with `trace_ra=1` (see [`trace_target`]): every record, debug and
//!   trace included, of the whole action.
//!
//! `<date>` is local time in `HA_DATEFMT` (strftime; default `%b %d %T `, as `hadate`
//! prints it). Levels are spelled `ERROR`, `WARNING`, `INFO`, `DEBUG`. The log level is
//! info, or debug when `HA_debug` (or `PCMK_debug`) is true.
//!
//! Nothing here may fail or slow an action: a destination that cannot be opened or
//! written is skipped, sockets are non-blocking (a full or stuck syslog drops records),
//! files are opened non-blocking (a FIFO without reader is skipped) and only when a record
//! is written to them, and nothing is forked.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chrono::{DateTime, Local};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::{Layer, Registry};

use crate::env::OcfEnv;
use crate::exit::plain;
use crate::value::parse_bool;

/// The target of the record that carries a failed action's reason: it is already on
/// stderr as the exit-reason line, so stderr does not get it a second time.
pub const EXIT_REASON_TARGET: &str = "ocf::exit_reason";

/// `HA_DATEFMT`'s default in the OCF shell library (ocf-directories).
pub const DEFAULT_DATEFMT: &str = "%b %d %T ";
/// `HA_VARLIB`'s default in the OCF shell library.
pub const DEFAULT_VARLIB: &str = "/var/lib/heartbeat";
/// The syslog socket.
pub const DEV_LOG: &str = "/dev/log";
/// journald's native socket.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// The largest syslog datagram sent (rsyslog's default message size); longer text is cut.
const SYSLOG_MAX: usize = 8192;
/// The largest journal message sent (well within a datagram's limit).
const JOURNAL_MAX: usize = 48 * 1024;

/// A record's level, as the OCF shell library names it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
    Info,
    Debug,
}

impl Level {
    fn of(level: &tracing::Level) -> Level {
        match *level {
            tracing::Level::ERROR => Level::Error,
            tracing::Level::WARN => Level::Warning,
            tracing::Level::INFO => Level::Info,
            _ => Level::Debug,
        }
    }

    /// The word ocf_log puts before the text.
    pub fn word(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warning => "WARNING",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }

    /// The syslog severity the shell agents use for it (err, warning, info, debug).
    pub fn severity(self) -> u8 {
        match self {
            Level::Error => 3,
            Level::Warning => 4,
            Level::Info => 6,
            Level::Debug => 7,
        }
    }
}

/// A syslog facility's number from its name, as logger(1) and Pacemaker accept them.
pub fn facility_code(name: &str) -> Option<u8> {
    const NAMES: &[(&str, u8)] = &[
        ("kern", 0),
        ("user", 1),
        ("mail", 2),
        ("daemon", 3),
        ("auth", 4),
        ("security", 4),
        ("syslog", 5),
        ("lpr", 6),
        ("news", 7),
        ("uucp", 8),
        ("cron", 9),
        ("authpriv", 10),
        ("ftp", 11),
        ("local0", 16),
        ("local1", 17),
        ("local2", 18),
        ("local3", 19),
        ("local4", 20),
        ("local5", 21),
        ("local6", 22),
        ("local7", 23),
    ];
    let name = name.trim();
    NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, c)| *c)
}

/// The log identifier: `AGENT(instance)`, or `AGENT` without an instance.
pub fn identifier(agent: &str, instance: Option<&str>) -> String {
    match instance {
        Some(i) => format!("{agent}({i})"),
        None => agent.to_string(),
    }
}

/// The tag of every record: the identifier and the process id, `AGENT(instance)[pid]`.
pub fn tag(identifier: &str, pid: u32) -> String {
    format!("{identifier}[{pid}]")
}

/// `now` in `format` (strftime, as date(1) reads `HA_DATEFMT`); an invalid format gives
/// the default one.
pub fn hadate(format: &str, now: &DateTime<Local>) -> String {
    let mut out = String::new();
    if write!(out, "{}", now.format(format)).is_err() {
        out.clear();
        let _ = write!(out, "{}", now.format(DEFAULT_DATEFMT));
    }
    out
}

/// A `HA_LOGFILE` line.
pub fn logfile_line(date: &str, tag: &str, level: Level, text: &str) -> String {
    format!("{date} {tag}:    {}: {text}\n", level.word())
}

/// A `HA_DEBUGLOG` line.
pub fn debuglog_line(date: &str, tag: &str, level: Level, text: &str) -> String {
    format!("{tag}:\t{date}{}: {text}\n", level.word())
}

/// An RFC 3164 datagram for `/dev/log`, as logger(1) sends it (no host name).
pub fn syslog_datagram(
    facility: u8,
    now: &DateTime<Local>,
    tag: &str,
    level: Level,
    text: &str,
) -> String {
    let pri = u32::from(facility) * 8 + u32::from(level.severity());
    let mut out = format!(
        "<{pri}>{} {tag}: {}: {text}",
        now.format("%b %e %T"),
        level.word()
    );
    truncate(&mut out, SYSLOG_MAX);
    out
}

/// A stderr line.
pub fn stderr_line(level: Level, text: &str) -> String {
    format!("{}: {text}\n", level.word())
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// A native journal datagram: `FIELD=value` lines, or the length-prefixed form for a
/// value with a newline.
pub fn journal_datagram(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        if value.contains('\n') {
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        } else {
            out.push(b'=');
        }
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    out
}

/// A tracing field's name as a journal field: upper case, `[A-Z0-9_]`, prefixed `F_`.
fn journal_field_name(name: &str) -> String {
    let mut out = String::from("F_");
    out.extend(name.chars().map(|c| match c {
        'a'..='z' => c.to_ascii_uppercase(),
        'A'..='Z' | '0'..='9' => c,
        _ => '_',
    }));
    truncate(&mut out, 64);
    out
}

/// Where `trace_ra` sends the trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceTarget {
    /// An open file descriptor, 3 to 9 (`OCF_TRACE_FILE=3`..`9`), reopened through /dev/fd.
    Fd(u8),
    /// A file appended to.
    File(PathBuf),
}

/// Whether tracing is on and where it goes, as ocf-shellfuncs decides it:
/// `OCF_TRACE_RA` (set by `crm_resource -VV`) or else the `trace_ra` parameter turns it on
/// (true as ocf_is_true reads it); `OCF_TRACE_FILE` (a descriptor 3-9 or an absolute
/// path) or else the `trace_file` parameter (an absolute path) names the destination,
/// which is by default `${trace_dir:-$HA_VARLIB/trace_ra}/<type>/<instance>.<action>.<date>`
/// (`HA_VARLIB=/var/lib/heartbeat`, date as `date +%F.%T`). The second value is a warning
/// to log (a destination that cannot be used).
pub fn trace_target(
    env: &OcfEnv,
    agent: &str,
    action: &str,
    now: &DateTime<Local>,
) -> (Option<TraceTarget>, Option<String>) {
    let on = match env.var("OCF_TRACE_RA").filter(|v| !v.is_empty()) {
        Some(v) => parse_bool(v) == Ok(true),
        None => env
            .param("trace_ra")
            .is_some_and(|v| parse_bool(v) == Ok(true)),
    };
    if !on {
        return (None, None);
    }
    let mut warning = None;
    if let Some(f) = env.var("OCF_TRACE_FILE").filter(|v| !v.is_empty()) {
        if f.len() == 1 && (b'3'..=b'9').contains(&f.as_bytes()[0]) {
            return (Some(TraceTarget::Fd(f.as_bytes()[0] - b'0')), None);
        }
        if f.starts_with('/') && f[1..].contains('/') {
            return (Some(TraceTarget::File(PathBuf::from(f))), None);
        }
        warning = Some(format!(
            "OCF_TRACE_FILE must be set to either FD (open for writing) or absolute file path, not '{f}'"
        ));
    } else if let Some(f) = env.param("trace_file") {
        if f.starts_with('/') {
            return (Some(TraceTarget::File(PathBuf::from(f))), None);
        }
        warning = Some(format!(
            "trace_file must be an absolute path, not '{f}': tracing to the default place"
        ));
    }
    let Some(instance) = env.instance() else {
        return (None, warning);
    };
    let dir = match env.param("trace_dir") {
        Some(d) => PathBuf::from(d),
        None => Path::new(
            env.var("HA_VARLIB")
                .filter(|v| !v.is_empty())
                .unwrap_or(DEFAULT_VARLIB),
        )
        .join("trace_ra"),
    };
    let kind = env
        .var("OCF_RESOURCE_TYPE")
        .filter(|v| !v.is_empty() && !v.contains('/'))
        .unwrap_or(agent);
    let name = format!(
        "{}.{action}.{}",
        instance.replace('/', "_"),
        now.format("%F.%T")
    );
    (Some(TraceTarget::File(dir.join(kind).join(name))), warning)
}

/// What one invocation logs where, decided from its environment.
#[derive(Clone, Debug)]
pub struct Settings {
    pub agent: String,
    pub action: String,
    pub instance: String,
    /// `AGENT(instance)`.
    pub identifier: String,
    /// `AGENT(instance)[pid]`.
    pub tag: String,
    pub pid: u32,
    /// The syslog facility (`HA_LOGFACILITY`).
    pub facility: Option<u8>,
    pub logfile: Option<PathBuf>,
    pub debuglog: Option<PathBuf>,
    /// Debug records are logged (`HA_debug`).
    pub debug: bool,
    pub datefmt: String,
    /// stderr is a person's: stdin is a terminal.
    pub interactive: bool,
    pub trace: Option<TraceTarget>,
    /// A warning about the trace destination, logged once logging is set up.
    pub trace_warning: Option<String>,
}

impl Settings {
    pub fn from_env(agent: &str, action: &str, env: &OcfEnv, pid: u32) -> Settings {
        let identifier = identifier(agent, env.instance());
        let facility = env
            .var("HA_LOGFACILITY")
            .filter(|f| !f.trim().is_empty() && !f.trim().eq_ignore_ascii_case("none"))
            .and_then(facility_code);
        let (trace, trace_warning) = trace_target(env, agent, action, &Local::now());
        Settings {
            agent: agent.to_string(),
            action: action.to_string(),
            instance: env.instance().unwrap_or("").to_string(),
            tag: tag(&identifier, pid),
            identifier,
            pid,
            facility,
            logfile: env.logfile(),
            debuglog: env.debuglog().filter(|p| p != Path::new("/dev/null")),
            debug: env.debug() || debug_list(env.var("HA_debug")),
            datefmt: env
                .var("HA_DATEFMT")
                .filter(|f| !f.is_empty())
                .unwrap_or(DEFAULT_DATEFMT)
                .to_string(),
            interactive: nix::unistd::isatty(std::io::stdin()).unwrap_or(false),
            trace,
            trace_warning,
        }
    }

    fn level(&self) -> Level {
        if self.debug {
            Level::Debug
        } else {
            Level::Info
        }
    }
}

/// `HA_debug` as ocf-shellfuncs reads it, beyond a plain true: Pacemaker copies
/// `PCMK_debug` there, which may be a list of daemons (`pacemaker-execd,...`); anything
/// set but `0` and the false words turns debug records on.
fn debug_list(value: Option<&str>) -> bool {
    value.is_some_and(|v| !v.trim().is_empty() && v.trim() != "0" && parse_bool(v).is_err())
}

/// Where syslog records go.
enum Syslog {
    Journal(UnixDatagram),
    DevLog(UnixDatagram),
}

fn connect(path: &str) -> Option<UnixDatagram> {
    let s = UnixDatagram::unbound().ok()?;
    s.set_nonblocking(true).ok()?;
    s.connect(path).ok()?;
    Some(s)
}

/// A file opened when the first record is written to it.
struct LazyFile {
    path: PathBuf,
    /// The mode of a file it creates (before the umask).
    mode: u32,
    file: OnceLock<Option<File>>,
}

impl LazyFile {
    fn new(path: PathBuf) -> LazyFile {
        LazyFile {
            path,
            mode: 0o644,
            file: OnceLock::new(),
        }
    }

    /// A file only its owner may read: a trace holds the whole environment.
    fn private(path: PathBuf) -> LazyFile {
        LazyFile {
            mode: 0o600,
            ..LazyFile::new(path)
        }
    }

    /// Opens the file now (creating its directory), or says why it cannot be written.
    fn open_now(&self) -> Result<(), String> {
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        self.write("");
        match self.file.get() {
            Some(Some(_)) => Ok(()),
            _ => Err(format!(
                "{} not writable, trace not going to happen",
                self.path.display()
            )),
        }
    }

    fn write(&self, line: &str) {
        let file = self.file.get_or_init(|| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .custom_flags(nix::libc::O_NONBLOCK)
                .mode(self.mode)
                .open(&self.path)
                .ok()
        });
        if let Some(mut f) = file.as_ref() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// The layer that writes every destination of [`Settings`].
struct OcfLayer {
    s: Settings,
    syslog: Option<Syslog>,
    logfile: Option<LazyFile>,
    debuglog: Option<LazyFile>,
    /// HA_DEBUGLOG is HA_LOGFILE: only debug records go to it as the debug log.
    debuglog_is_logfile: bool,
    trace: Option<LazyFile>,
}

/// A record's text: its message, then its other fields as `[name=value ...]`, without the
/// marks of quoted text.
#[derive(Default)]
struct Text {
    message: String,
    fields: String,
    journal: Vec<(String, String)>,
}

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.add(field, value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // `%x` fields and the message (fmt::Arguments) format through Display here.
        self.add(field, format!("{value:?}")); // not debug text: Display of `%` fields
    }
}

impl Text {
    fn add(&mut self, field: &Field, value: String) {
        let value = plain(&value);
        if field.name() == "message" {
            self.message = value;
            return;
        }
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
        let _ = write!(self.fields, "{}={value}", field.name());
        self.journal.push((journal_field_name(field.name()), value));
    }

    fn line(&self) -> String {
        if self.fields.is_empty() {
            self.message.clone()
        } else {
            format!("{} [{}]", self.message, self.fields)
        }
    }
}

impl OcfLayer {
    fn new(s: Settings) -> OcfLayer {
        let syslog = s.facility.and_then(|_| {
            connect(JOURNAL_SOCKET)
                .map(Syslog::Journal)
                .or_else(|| connect(DEV_LOG).map(Syslog::DevLog))
        });
        let debuglog_is_logfile = s.debuglog.is_some() && s.debuglog == s.logfile;
        OcfLayer {
            syslog,
            logfile: s.logfile.clone().map(LazyFile::new),
            debuglog: s.debuglog.clone().map(LazyFile::new),
            debuglog_is_logfile,
            trace: match &s.trace {
                Some(TraceTarget::File(p)) => Some(LazyFile::private(p.clone())),
                Some(TraceTarget::Fd(n)) => {
                    Some(LazyFile::new(PathBuf::from(format!("/dev/fd/{n}"))))
                }
                None => None,
            },
            s,
        }
    }

    /// The most verbose level any destination takes.
    fn max_level(&self) -> LevelFilter {
        if self.trace.is_some() {
            LevelFilter::TRACE
        } else if self.s.debug {
            LevelFilter::DEBUG
        } else {
            LevelFilter::INFO
        }
    }

    fn send_syslog(&self, level: Level, now: &DateTime<Local>, text: &Text) {
        let (Some(sock), Some(facility)) = (&self.syslog, self.s.facility) else {
            return;
        };
        match sock {
            Syslog::DevLog(sock) => {
                let d = syslog_datagram(facility, now, &self.s.tag, level, &text.line());
                let _ = sock.send(d.as_bytes());
            }
            Syslog::Journal(sock) => {
                let mut message = format!("{}: {}", level.word(), text.line());
                truncate(&mut message, JOURNAL_MAX);
                let priority = level.severity().to_string();
                let facility = facility.to_string();
                let pid = self.s.pid.to_string();
                let mut fields: Vec<(&str, &str)> = vec![
                    ("MESSAGE", &message),
                    ("PRIORITY", &priority),
                    ("SYSLOG_FACILITY", &facility),
                    ("SYSLOG_IDENTIFIER", &self.s.identifier),
                    ("SYSLOG_PID", &pid),
                    ("OCF_RESOURCE_TYPE", &self.s.agent),
                    ("OCF_RESOURCE_INSTANCE", &self.s.instance),
                    ("OCF_ACTION", &self.s.action),
                ];
                for (k, v) in &text.journal {
                    fields.push((k, v));
                }
                let _ = sock.send(&journal_datagram(&fields));
            }
        }
    }
}

impl<S: Subscriber> Layer<S> for OcfLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level = Level::of(meta.level());
        let is_debug = level == Level::Debug;
        let logged = level <= self.s.level();
        let to_stderr = meta.target() != EXIT_REASON_TARGET
            && (level <= Level::Warning || (self.s.interactive && logged));
        if !logged && !to_stderr && self.trace.is_none() {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        let now = Local::now();
        if let Some(trace) = &self.trace {
            trace.write(&format!(
                "{} {}: {}\n",
                now.format("%T%.6f"),
                level.word(),
                text.line()
            ));
        }
        if to_stderr {
            let line = stderr_line(level, &text.line());
            let _ = nix::unistd::write(std::io::stderr(), line.as_bytes());
        }
        if !logged {
            return;
        }
        self.send_syslog(level, &now, &text);
        let needs_date = self.logfile.is_some() || self.debuglog.is_some();
        let date = if needs_date {
            hadate(&self.s.datefmt, &now)
        } else {
            String::new()
        };
        if !is_debug {
            if let Some(f) = &self.logfile {
                f.write(&logfile_line(&date, &self.s.tag, level, &text.line()));
            }
        }
        if let Some(f) = &self.debuglog {
            if is_debug || !self.debuglog_is_logfile {
                f.write(&debuglog_line(&date, &self.s.tag, level, &text.line()));
            }
        }
    }
}

/// Installs the global subscriber for one agent invocation. Returns the settings it
/// used. With tracing on, the trace starts with the action and the environment (the
/// values of parameters named like passwords left out).
pub fn init(agent: &str, action: &str, env: &OcfEnv) -> Settings {
    let settings = Settings::from_env(agent, action, env, std::process::id());
    let mut layer = OcfLayer::new(settings.clone());
    let mut trace_warning = settings.trace_warning.clone();
    if let Some(trace) = &layer.trace {
        match trace.open_now() {
            Ok(()) => trace.write(&trace_header(&settings, env)),
            Err(why) => {
                trace_warning = Some(why);
                layer.trace = None;
            }
        }
    }
    let filter = layer.max_level();
    let traced = layer.trace.is_some();
    let subscriber = Registry::default().with(layer.with_filter(filter));
    // Only fails if a subscriber is already installed (a second init in one process).
    let _ = tracing::subscriber::set_global_default(subscriber);
    if let Some(w) = &trace_warning {
        tracing::warn!("{w}");
    }
    if traced {
        tracing::debug!("tracing {action} of {}", settings.identifier);
    }
    settings
}

/// The start of a trace: what runs, and its environment, sorted.
fn trace_header(s: &Settings, env: &OcfEnv) -> String {
    let mut out = format!(
        "# {} {} pid {} at {}\n",
        s.identifier,
        s.action,
        s.pid,
        Local::now().format("%F %T%.6f %z")
    );
    for (k, v) in env.all() {
        let secret = {
            let k = k.to_ascii_lowercase();
            k.starts_with("ocf_reskey_") && (k.contains("passw") || k.contains("secret"))
        };
        let v = if secret { "(not shown)" } else { v };
        let _ = writeln!(out, "# {k}={v}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Local> {
        Local
            .with_ymd_and_hms(2026, 12, 1, 9, 5, 7)
            .single()
            .unwrap()
    }

    #[test]
    fn the_tag_and_identifier_are_the_shell_agents() {
        let id = identifier("VirtualDomain", Some("vm1"));
        assert_eq!(id, "VirtualDomain(vm1)");
        assert_eq!(tag(&id, 4242), "VirtualDomain(vm1)[4242]");
        assert_eq!(tag(&identifier("Dummy", None), 7), "Dummy[7]");
        let env = OcfEnv::from_pairs([("OCF_RESOURCE_INSTANCE", "web:2")]);
        let s = Settings::from_env("Dummy", "start", &env, 99);
        assert_eq!(s.tag, "Dummy(web:2)[99]");
        assert_eq!(s.identifier, "Dummy(web:2)");
    }

    #[test]
    fn file_lines_have_the_shell_agents_layout() {
        let date = hadate(DEFAULT_DATEFMT, &at());
        assert_eq!(date, "Dec 01 09:05:07 ");
        assert_eq!(
            logfile_line(&date, "VirtualDomain(vm1)[12]", Level::Error, "it failed"),
            "Dec 01 09:05:07  VirtualDomain(vm1)[12]:    ERROR: it failed\n"
        );
        assert_eq!(
            debuglog_line(&date, "Dummy(d)[3]", Level::Debug, "x"),
            "Dummy(d)[3]:\tDec 01 09:05:07 DEBUG: x\n"
        );
        assert_eq!(stderr_line(Level::Warning, "w"), "WARNING: w\n");
        assert_eq!(hadate("%Y/%m/%d_%T", &at()), "2026/12/01_09:05:07");
        // An invalid format falls back to the default instead of failing.
        assert_eq!(hadate("%Q %", &at()), "Dec 01 09:05:07 ");
    }

    #[test]
    fn syslog_datagrams_are_what_logger_sends() {
        let daemon = facility_code("daemon").unwrap();
        assert_eq!(
            syslog_datagram(daemon, &at(), "Dummy(d1)[5]", Level::Error, "boom"),
            "<27>Dec  1 09:05:07 Dummy(d1)[5]: ERROR: boom"
        );
        let local7 = facility_code("LOCAL7").unwrap();
        assert!(syslog_datagram(local7, &at(), "t[1]", Level::Info, "i").starts_with("<190>"));
        assert_eq!(facility_code("none"), None);
        assert_eq!(facility_code("bogus"), None);
        let long = "x".repeat(20_000);
        assert_eq!(
            syslog_datagram(daemon, &at(), "t[1]", Level::Debug, &long).len(),
            SYSLOG_MAX
        );
    }

    #[test]
    fn levels_map_to_the_shell_agents_words_and_severities() {
        let all = [Level::Error, Level::Warning, Level::Info, Level::Debug];
        let words: Vec<_> = all.iter().map(|l| l.word()).collect();
        assert_eq!(words, ["ERROR", "WARNING", "INFO", "DEBUG"]);
        let sev: Vec<_> = all.iter().map(|l| l.severity()).collect();
        assert_eq!(sev, [3, 4, 6, 7]);
    }

    #[test]
    fn facility_none_or_unset_means_no_syslog() {
        let s = |v: Option<&str>| {
            let mut pairs = vec![("OCF_RESOURCE_INSTANCE", "r")];
            if let Some(v) = v {
                pairs.push(("HA_LOGFACILITY", v));
            }
            Settings::from_env("Dummy", "start", &OcfEnv::from_pairs(pairs), 1).facility
        };
        assert_eq!(s(None), None);
        assert_eq!(s(Some("none")), None);
        assert_eq!(s(Some("")), None);
        assert_eq!(s(Some("daemon")), Some(3));
        assert_eq!(s(Some("local0")), Some(16));
    }

    #[test]
    fn debug_is_on_for_a_true_flag_or_a_list_of_daemons() {
        let debug = |v: &str| {
            let env = OcfEnv::from_pairs([("HA_debug", v)]);
            Settings::from_env("Dummy", "monitor", &env, 1).debug
        };
        assert!(debug("1"));
        assert!(debug("pacemaker-execd,pacemaker-controld"));
        assert!(!debug("0"));
        assert!(!debug(""));
        assert!(!debug("no"));
    }

    #[test]
    fn journal_datagrams_use_the_binary_form_for_newlines() {
        let d = journal_datagram(&[("MESSAGE", "a"), ("F_OUT", "x\ny")]);
        let mut want = b"MESSAGE=a\nF_OUT\n".to_vec();
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(b"x\ny\n");
        assert_eq!(d, want);
        assert_eq!(journal_field_name("remote-uri"), "F_REMOTE_URI");
    }

    #[test]
    fn trace_goes_where_ocf_shellfuncs_puts_it() {
        let env = |pairs: &[(&str, &str)]| {
            let mut v = vec![("OCF_RESOURCE_INSTANCE", "vm1")];
            v.extend_from_slice(pairs);
            OcfEnv::from_pairs(v)
        };
        let target =
            |pairs: &[(&str, &str)]| trace_target(&env(pairs), "VirtualDomain", "start", &at());
        assert_eq!(target(&[]), (None, None));
        assert_eq!(target(&[("OCF_RESKEY_trace_ra", "0")]).0, None);
        assert_eq!(
            target(&[("OCF_RESKEY_trace_ra", "1")]).0,
            Some(TraceTarget::File(PathBuf::from(
                "/var/lib/heartbeat/trace_ra/VirtualDomain/vm1.start.2026-12-01.09:05:07"
            )))
        );
        assert_eq!(
            target(&[
                ("OCF_RESKEY_trace_ra", "yes"),
                ("HA_VARLIB", "/tmp/v"),
                ("OCF_RESOURCE_TYPE", "VD")
            ])
            .0,
            Some(TraceTarget::File(PathBuf::from(
                "/tmp/v/trace_ra/VD/vm1.start.2026-12-01.09:05:07"
            )))
        );
        assert_eq!(
            target(&[("OCF_RESKEY_trace_ra", "1"), ("OCF_RESKEY_trace_dir", "/t")]).0,
            Some(TraceTarget::File(PathBuf::from(
                "/t/VirtualDomain/vm1.start.2026-12-01.09:05:07"
            )))
        );
        assert_eq!(
            target(&[
                ("OCF_RESKEY_trace_ra", "1"),
                ("OCF_RESKEY_trace_file", "/tmp/t.log")
            ])
            .0,
            Some(TraceTarget::File(PathBuf::from("/tmp/t.log")))
        );
        // The environment of crm_resource -VV wins over the parameters.
        assert_eq!(
            target(&[
                ("OCF_RESKEY_trace_ra", "0"),
                ("OCF_TRACE_RA", "1"),
                ("OCF_TRACE_FILE", "/dev/stderr"),
                ("OCF_RESKEY_trace_file", "/tmp/t.log")
            ])
            .0,
            Some(TraceTarget::File(PathBuf::from("/dev/stderr")))
        );
        assert_eq!(
            target(&[("OCF_TRACE_RA", "1"), ("OCF_TRACE_FILE", "5")]).0,
            Some(TraceTarget::Fd(5))
        );
        let (t, warning) = target(&[("OCF_TRACE_RA", "1"), ("OCF_TRACE_FILE", "rel/x")]);
        assert!(matches!(t, Some(TraceTarget::File(_))));
        assert!(warning.unwrap().contains("OCF_TRACE_FILE"));
        let (t, warning) = target(&[("OCF_RESKEY_trace_ra", "1"), ("OCF_RESKEY_trace_file", "x")]);
        assert!(
            matches!(t, Some(TraceTarget::File(p)) if p.starts_with("/var/lib/heartbeat/trace_ra"))
        );
        assert!(warning.unwrap().contains("trace_file"));
    }
}
