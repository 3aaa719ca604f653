//! One libvirt connection per invocation, and every call on it bounded in time.
//!
//! libvirt calls can block forever (a hung or SIGSTOPped libvirtd blocks even
//! `virConnectOpen`). Each call therefore runs on its own short-lived thread while the
//! caller waits at most until the given instant; a call that does not return is
//! abandoned (the process exits soon after) and reported as [`LibvirtError::Hung`].
//! Connections and domain handles are leaked on purpose: virt 0.5 panics in `Drop` when
//! libvirt reports a failure to close, and the process ends right after the action.

use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::sync::Once;
use std::time::Instant;

use virt::connect::Connect;
use virt::domain::Domain;
use virt::error::{Error, ErrorDomain, ErrorNumber};

use super::{raw, Identity};

/// Why a libvirt interaction failed.
#[derive(Clone, Debug)]
pub enum LibvirtError {
    /// libvirt could not be reached: daemon down, socket missing, authentication failed,
    /// or the connection broke.
    Unreachable { uri: String, message: String },
    /// The call did not return in the time it was given (libvirtd hung or overloaded).
    Hung { op: &'static str, waited_ms: u64 },
    /// The action's own budget for this call was used up before it could be made: says
    /// nothing about libvirt, so it is never taken for an unreachable daemon.
    OutOfTime { op: &'static str },
    /// The call returned an error.
    Failed {
        op: &'static str,
        code: String,
        message: String,
        no_domain: bool,
    },
}

impl LibvirtError {
    /// Whether libvirt could not be used at all (as opposed to refusing one request).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            LibvirtError::Unreachable { .. } | LibvirtError::Hung { .. }
        )
    }
    /// Whether libvirt said the domain does not exist.
    pub fn is_no_domain(&self) -> bool {
        matches!(
            self,
            LibvirtError::Failed {
                no_domain: true,
                ..
            }
        )
    }
}

impl std::fmt::Display for LibvirtError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LibvirtError::Unreachable { uri, message } => {
                write!(f, "cannot reach libvirt at {uri}: {message}")
            }
            LibvirtError::Hung { op, waited_ms } => {
                write!(f, "libvirt did not answer {op} within {waited_ms} ms")
            }
            LibvirtError::OutOfTime { op } => {
                write!(f, "no time was left for {op} within the operation timeout")
            }
            LibvirtError::Failed {
                op, code, message, ..
            } => {
                write!(f, "{op} failed: {message} ({code})")
            }
        }
    }
}

fn is_connection_failure(e: &Error) -> bool {
    e.code().is_known_and(|c| {
        matches!(
            c,
            ErrorNumber::SystemError
                | ErrorNumber::NoConnect
                | ErrorNumber::InvalidConn
                | ErrorNumber::AuthFailed
                | ErrorNumber::AuthUnavailable
                | ErrorNumber::Rpc
        )
    }) || e
        .domain()
        .is_known_and(|d| matches!(d, ErrorDomain::Rpc | ErrorDomain::Remote))
}

/// Runs `f` on a new thread and waits for it until `until`.
pub fn bounded<T: Send + 'static>(
    until: Instant,
    op: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, LibvirtError> {
    let budget = until.saturating_duration_since(Instant::now());
    if budget.is_zero() {
        tracing::warn!(op, "no time left for the libvirt call");
        return Err(LibvirtError::OutOfTime { op });
    }
    let (tx, rx) = sync_channel(1);
    std::thread::Builder::new()
        .name(op.into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| LibvirtError::Failed {
            op,
            code: "thread".into(),
            message: format!("cannot start a thread: {e}"),
            no_domain: false,
        })?;
    match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
        Ok(v) => Ok(v),
        Err(RecvTimeoutError::Timeout) => {
            let waited_ms = budget.as_millis() as u64;
            tracing::warn!(
                op,
                waited_ms,
                "libvirt call did not return in time; abandoned"
            );
            Err(LibvirtError::Hung { op, waited_ms })
        }
        Err(RecvTimeoutError::Disconnected) => Err(LibvirtError::Failed {
            op,
            code: "panic".into(),
            message: "the call panicked".into(),
            no_domain: false,
        }),
    }
}

static EVENT_LOOP: Once = Once::new();

/// An open connection to one hypervisor.
#[derive(Clone)]
pub struct Hypervisor {
    conn: &'static Connect,
    uri: String,
}

/// A domain handle on that connection.
#[derive(Clone, Copy)]
pub struct Guest {
    pub dom: &'static Domain,
}

/// What libvirt holds under a domain identity.
#[derive(Clone)]
pub enum Found {
    /// Our domain: matched by UUID when one is known, else by name.
    Ours(Guest),
    /// libvirt knows no domain of that UUID or name.
    Absent,
    /// A domain of our name with another UUID: not ours, never touched.
    Foreign { uuid: Uuid },
}

/// A UUID as libvirt prints it.
pub type Uuid = String;

/// Our domain and its state, as one lookup sees it.
#[derive(Clone)]
pub enum Seen {
    Ours(Guest, DomainState),
    Absent,
    Foreign { uuid: Uuid },
}

/// Whether two spellings are the same UUID (libvirt accepts upper case, and the hex
/// digits with or without dashes).
pub fn same_uuid(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .map(|c| c.to_ascii_lowercase())
            .collect::<String>()
    };
    norm(a) == norm(b)
}

/// A domain's state as libvirt reports it (virDomainState), or its absence.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DomainState {
    Absent,
    NoState,
    Running,
    Blocked,
    Paused,
    ShuttingDown,
    ShutOff,
    Crashed,
    PmSuspended,
    Other(i32),
}

impl DomainState {
    fn from_raw(state: i32) -> DomainState {
        match state {
            0 => DomainState::NoState,
            1 => DomainState::Running,
            2 => DomainState::Blocked,
            3 => DomainState::Paused,
            4 => DomainState::ShuttingDown,
            5 => DomainState::ShutOff,
            6 => DomainState::Crashed,
            7 => DomainState::PmSuspended,
            other => DomainState::Other(other),
        }
    }

    /// The name virsh domstate prints.
    pub fn describe(self) -> String {
        match self {
            DomainState::Absent => "absent".into(),
            DomainState::NoState => "no state".into(),
            DomainState::Running => "running".into(),
            DomainState::Blocked => "blocked".into(),
            DomainState::Paused => "paused".into(),
            DomainState::ShuttingDown => "in shutdown".into(),
            DomainState::ShutOff => "shut off".into(),
            DomainState::Crashed => "crashed".into(),
            DomainState::PmSuspended => "pmsuspended".into(),
            DomainState::Other(n) => format!("unknown state {n}"),
        }
    }

    /// Whether the guest's hypervisor process is up (running, idle, paused or shutting down).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            DomainState::Running
                | DomainState::Blocked
                | DomainState::Paused
                | DomainState::ShuttingDown
        )
    }
}

impl Hypervisor {
    /// Opens `uri` (libvirt's default when `None`), giving up at `until`. The default
    /// event loop is registered first and runs on a background thread, so that lifecycle
    /// events and keepalive work.
    pub fn open(uri: Option<&str>, until: Instant) -> Result<Hypervisor, LibvirtError> {
        EVENT_LOOP.call_once(|| {
            virt::error::clear_error_callback();
            if virt::event::event_register_default_impl().is_ok() {
                let _ = std::thread::Builder::new()
                    .name("libvirt-events".into())
                    .spawn(|| loop {
                        if virt::event::event_run_default_impl().is_err() {
                            std::thread::sleep(std::time::Duration::from_millis(50));
                        }
                    });
            }
        });
        let shown = uri.unwrap_or("the default URI").to_string();
        let owned = uri.map(str::to_string);
        let opened = bounded(until, "virConnectOpen", move || {
            Connect::open(owned.as_deref())
        })
        .map_err(|e| match e {
            LibvirtError::Hung { .. } => LibvirtError::Unreachable {
                uri: shown.clone(),
                message: "libvirtd did not answer (hung?)".into(),
            },
            other => other,
        })?;
        let conn = opened.map_err(|e| {
            tracing::warn!(uri = %shown, code = ?e.code(), "virConnectOpen failed: {}", e.message());
            LibvirtError::Unreachable {
                uri: shown.clone(),
                message: e.message().to_string(),
            }
        })?;
        let conn: &'static Connect = Box::leak(Box::new(conn));
        let uri = conn.uri().unwrap_or(shown);
        Ok(Hypervisor { conn, uri })
    }

    /// The underlying connection (for calls that take a second connection).
    pub fn connection(&self) -> &'static Connect {
        self.conn
    }

    /// The connection's URI as libvirt reports it.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Runs one libvirt call on the connection, bounded by `until`. Failures are logged
    /// with libvirt's code and message.
    pub fn call<T: Send + 'static>(
        &self,
        op: &'static str,
        until: Instant,
        f: impl FnOnce(&'static Connect) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, LibvirtError> {
        let conn = self.conn;
        let uri = self.uri.clone();
        bounded(until, op, move || f(conn))?.map_err(|e| {
            let no_domain = e.code().is_known_and(|c| c == ErrorNumber::NoDomain);
            if !no_domain {
                tracing::warn!(op, code = ?e.code(), domain = ?e.domain(), "libvirt call failed: {}", e.message());
            }
            // The error's class does not tell a dead connection from a healthy daemon
            // refusing one request: a system error is also what a save to a full disk
            // gives, an RPC error what a too large message gives. Only a connection that
            // is really gone makes libvirt unreachable.
            let gone = is_connection_failure(&e)
                && !matches!(
                    bounded(until, "virConnectIsAlive", move || conn.is_alive()),
                    Ok(Ok(true))
                );
            if gone {
                LibvirtError::Unreachable {
                    uri,
                    message: e.message().to_string(),
                }
            } else {
                LibvirtError::Failed {
                    op,
                    code: format!("{:?}", e.code()),
                    message: e.message().to_string(),
                    no_domain,
                }
            }
        })
    }

    /// The domain named `name`, or `None` when libvirt does not know it.
    pub fn lookup_name(&self, name: &str, until: Instant) -> Result<Option<Guest>, LibvirtError> {
        let name = name.to_string();
        self.found(self.call("virDomainLookupByName", until, move |c| {
            c.lookup_domain_by_name(&name)
        }))
    }

    /// The domain of UUID `uuid`, or `None` when libvirt does not know it.
    pub fn lookup_uuid(&self, uuid: &str, until: Instant) -> Result<Option<Guest>, LibvirtError> {
        let uuid = uuid.to_string();
        self.found(self.call("virDomainLookupByUUIDString", until, move |c| {
            c.lookup_domain_by_uuid_string(&uuid)
        }))
    }

    fn found(&self, r: Result<Domain, LibvirtError>) -> Result<Option<Guest>, LibvirtError> {
        match r {
            Ok(dom) => Ok(Some(Guest {
                dom: Box::leak(Box::new(dom)),
            })),
            Err(e) if e.is_no_domain() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A domain's UUID as libvirt reports it.
    pub fn uuid_of(&self, guest: Guest, until: Instant) -> Result<String, LibvirtError> {
        self.on(guest, "virDomainGetUUIDString", until, |d| d.uuid_string())
    }

    /// What libvirt holds under our identity: by UUID whenever one is known (a domain
    /// of our name with another UUID is someone else's), else by name.
    pub fn find(&self, id: &Identity, until: Instant) -> Result<Found, LibvirtError> {
        let Some(uuid) = &id.uuid else {
            return Ok(match self.lookup_name(&id.name, until)? {
                Some(g) => Found::Ours(g),
                None => Found::Absent,
            });
        };
        if let Some(g) = self.lookup_uuid(uuid, until)? {
            return Ok(Found::Ours(g));
        }
        let Some(g) = self.lookup_name(&id.name, until)? else {
            return Ok(Found::Absent);
        };
        match self.uuid_of(g, until) {
            // Gone between the two lookups, or ours after all (it appeared meanwhile).
            Err(e) if e.is_no_domain() => Ok(Found::Absent),
            Err(e) => Err(e),
            Ok(other) if same_uuid(&other, uuid) => Ok(Found::Ours(g)),
            Ok(other) => Ok(Found::Foreign { uuid: other }),
        }
    }

    /// The state of our domain ([`Seen::Absent`] when libvirt knows no such domain,
    /// [`Seen::Foreign`] when the name belongs to a domain with another UUID).
    pub fn state_of(&self, id: &Identity, until: Instant) -> Result<Seen, LibvirtError> {
        match self.find(id, until)? {
            Found::Ours(g) => match self.state(g, until)? {
                DomainState::Absent => Ok(Seen::Absent),
                s => Ok(Seen::Ours(g, s)),
            },
            Found::Absent => Ok(Seen::Absent),
            Found::Foreign { uuid } => Ok(Seen::Foreign { uuid }),
        }
    }

    /// The state of a domain; a domain that vanished meanwhile is [`DomainState::Absent`].
    pub fn state(&self, guest: Guest, until: Instant) -> Result<DomainState, LibvirtError> {
        let dom = guest.dom;
        match self.call("virDomainGetState", until, move |_| raw::domain_state(dom)) {
            Ok((s, _reason)) => Ok(DomainState::from_raw(s)),
            Err(e) if e.is_no_domain() => Ok(DomainState::Absent),
            Err(e) => Err(e),
        }
    }

    /// Registers for the domain's lifecycle events.
    pub fn watch_lifecycle(
        &self,
        guest: Guest,
        until: Instant,
    ) -> Result<raw::LifecycleEvents, LibvirtError> {
        let dom = guest.dom;
        self.call("virConnectDomainEventRegisterAny", until, move |c| {
            raw::watch_lifecycle(c, dom)
        })
    }

    /// Runs a call on a domain handle.
    pub fn on<T: Send + 'static>(
        &self,
        guest: Guest,
        op: &'static str,
        until: Instant,
        f: impl FnOnce(&'static Domain) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, LibvirtError> {
        let dom = guest.dom;
        self.call(op, until, move |_| f(dom))
    }
}
