//! The seam between the actions and libvirt: what an action may ask of a hypervisor
//! ([`Hypervisor`]) and of the host it runs on ([`Host`]: connections, and the guests'
//! processes for the fallback without libvirt).
//!
//! The agent uses the bounded libvirt implementation ([`super::libvirt::LibvirtHost`]);
//! the unit tests run every action against a fake that hangs, is unreachable, restarts
//! mid-call, holds a foreign domain of our name, or loses the domain between two calls.
//! Every call takes the instant by which it must have returned, and an implementation
//! never blocks past it.

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::time::Instant;

use ocf_common::exit::quoted;

use super::migrate_options::MigrateOptions;
use super::process::Processes;
use super::Identity;

/// Why a hypervisor interaction failed.
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
                write!(f, "cannot reach libvirt at {uri}: {}", quoted(message))
            }
            LibvirtError::Hung { op, waited_ms } => {
                write!(f, "libvirt did not answer {op} within {waited_ms} ms")
            }
            LibvirtError::OutOfTime { op } => {
                write!(f, "no time was left for {op} within the operation timeout")
            }
            LibvirtError::Failed {
                op, code, message, ..
            } if message.is_empty() => {
                write!(f, "{op} failed ({code})")
            }
            // libvirt's message once; its code is in the log record of the failed call.
            LibvirtError::Failed { op, message, .. } => {
                write!(f, "{op} failed: {}", quoted(message))
            }
        }
    }
}

/// A UUID as libvirt prints it.
pub type Uuid = String;

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
    /// From virDomainState's number.
    pub fn from_raw(state: i32) -> DomainState {
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

/// What libvirt holds under a domain identity.
#[derive(Clone)]
pub enum Found<G> {
    /// Our domain: matched by UUID when one is known, else by name.
    Ours(G),
    /// libvirt knows no domain of that UUID or name.
    Absent,
    /// A domain of our name with another UUID: not ours, never touched.
    Foreign { uuid: Uuid },
}

/// Our domain and its state, as one lookup sees it.
#[derive(Clone)]
pub enum Seen<G> {
    Ours(G, DomainState),
    Absent,
    Foreign { uuid: Uuid },
}

/// The lifecycle event that says a domain stopped (virDomainEventType
/// VIR_DOMAIN_EVENT_STOPPED).
pub const EVENT_STOPPED: i32 = 5;

/// What a live migration is given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Migration {
    /// The target's libvirt URI.
    pub dest_uri: String,
    /// The data stream's URI (`None`: libvirt chooses).
    pub data_uri: Option<String>,
    /// MiB/s (`None`: unlimited).
    pub bandwidth: Option<u64>,
    /// virDomainMigrateFlags.
    pub flags: u32,
    /// Peer to peer: the source's libvirtd talks to the target itself.
    pub p2p: bool,
    /// The typed parameters of migrate_options (its flags are in `flags` already).
    pub options: MigrateOptions,
}

/// A running migration job's progress.
#[derive(Clone, Copy, Debug, Default)]
pub struct JobProgress {
    pub remaining_bytes: u64,
    pub total_bytes: u64,
    pub elapsed_ms: u64,
    /// Passes over the guest's memory so far.
    pub iteration: u64,
}

/// One open connection to a hypervisor. Every call returns by `until`.
pub trait Hypervisor: Sized {
    /// A domain handle on this connection.
    type Guest: Copy + Send + 'static;

    /// The connection's URI as the hypervisor reports it.
    fn uri(&self) -> &str;

    /// The domain named `name`, or `None` when libvirt does not know it.
    fn lookup_name(&self, name: &str, until: Instant) -> Result<Option<Self::Guest>, LibvirtError>;
    /// The domain of UUID `uuid`, or `None` when libvirt does not know it.
    fn lookup_uuid(&self, uuid: &str, until: Instant) -> Result<Option<Self::Guest>, LibvirtError>;
    /// A domain's name and UUID as libvirt reports them.
    fn name_of(&self, g: Self::Guest, until: Instant) -> Result<String, LibvirtError>;
    fn uuid_of(&self, g: Self::Guest, until: Instant) -> Result<Uuid, LibvirtError>;
    /// A domain's state; a domain that vanished meanwhile is [`DomainState::Absent`].
    fn state(&self, g: Self::Guest, until: Instant) -> Result<DomainState, LibvirtError>;
    /// Registers for the domain's lifecycle events (virDomainEventType numbers).
    fn watch_lifecycle(
        &self,
        g: Self::Guest,
        until: Instant,
    ) -> Result<Receiver<i32>, LibvirtError>;
    /// Asks the guest to shut down (virDomainShutdownFlags).
    fn shutdown(&self, g: Self::Guest, flags: u32, until: Instant) -> Result<(), LibvirtError>;
    /// Destroys the domain: `graceful` sends SIGTERM only (VIR_DOMAIN_DESTROY_GRACEFUL).
    fn destroy(&self, g: Self::Guest, graceful: bool, until: Instant) -> Result<(), LibvirtError>;
    /// Saves the memory image to `path` (the domain stops).
    fn save(&self, g: Self::Guest, path: &str, until: Instant) -> Result<(), LibvirtError>;
    /// Restores a saved memory image.
    fn restore(&self, path: &str, until: Instant) -> Result<(), LibvirtError>;
    /// The inactive definition, secure fields included.
    fn inactive_xml(&self, g: Self::Guest, until: Instant) -> Result<String, LibvirtError>;
    /// Creates and starts a transient domain.
    fn create_xml(&self, xml: &str, until: Instant) -> Result<Self::Guest, LibvirtError>;
    /// Defines a persistent domain.
    fn define_xml(&self, xml: &str, until: Instant) -> Result<Self::Guest, LibvirtError>;
    /// Starts a defined domain.
    fn create(&self, g: Self::Guest, until: Instant) -> Result<(), LibvirtError>;
    /// Removes a persistent definition (NVRAM kept, managed save removed).
    fn undefine(&self, g: Self::Guest, until: Instant) -> Result<(), LibvirtError>;
    /// Starts the storage pool (an active one is refreshed).
    fn start_pool(&self, name: &str, until: Instant) -> Result<(), LibvirtError>;
    /// Starts the network unless it is active.
    fn start_network(&self, name: &str, until: Instant) -> Result<(), LibvirtError>;
    /// The domain's virtual CPUs and maximum memory (KiB).
    fn size(&self, g: Self::Guest, until: Instant) -> Result<(u32, u64), LibvirtError>;
    /// Caps the bandwidth of this domain's migrations (MiB/s).
    fn set_migration_speed(
        &self,
        g: Self::Guest,
        mib_s: u64,
        until: Instant,
    ) -> Result<(), LibvirtError>;
    /// Sets the longest pause the running migration may make (ms).
    fn set_migration_downtime(
        &self,
        g: Self::Guest,
        ms: u64,
        until: Instant,
    ) -> Result<(), LibvirtError>;
    fn migration_downtime(&self, g: Self::Guest, until: Instant) -> Result<u64, LibvirtError>;
    fn job_progress(&self, g: Self::Guest, until: Instant) -> Result<JobProgress, LibvirtError>;
    fn abort_job(&self, g: Self::Guest, until: Instant) -> Result<(), LibvirtError>;
    /// Pauses the guest (a migration that outlasts `--timeout` then completes).
    fn suspend(&self, g: Self::Guest, until: Instant) -> Result<(), LibvirtError>;
    /// Resumes a paused guest.
    fn resume(&self, g: Self::Guest, until: Instant) -> Result<(), LibvirtError>;
    /// Switches the running migration to post-copy.
    fn start_postcopy(&self, g: Self::Guest, until: Instant) -> Result<(), LibvirtError>;
    /// Starts a live migration to `dest` (a connection to the target) and returns at
    /// once; the migration's result arrives on the receiver.
    fn migrate(
        &self,
        g: Self::Guest,
        dest: &Self,
        m: Migration,
    ) -> Result<Receiver<Result<(), String>>, LibvirtError>;

    /// What libvirt holds under our identity: by UUID whenever one is known (a domain
    /// of our name with another UUID is someone else's), else by name.
    fn find(&self, id: &Identity, until: Instant) -> Result<Found<Self::Guest>, LibvirtError> {
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
    fn state_of(&self, id: &Identity, until: Instant) -> Result<Seen<Self::Guest>, LibvirtError> {
        match self.find(id, until)? {
            Found::Ours(g) => match self.state(g, until)? {
                DomainState::Absent => Ok(Seen::Absent),
                s => Ok(Seen::Ours(g, s)),
            },
            Found::Absent => Ok(Seen::Absent),
            Found::Foreign { uuid } => Ok(Seen::Foreign { uuid }),
        }
    }
}

/// Runs `f` on a new thread and waits for it until `until` (a libvirt call, or anything
/// else that may block: reading `/proc`, waiting for a migration's end). A call that does
/// not return is abandoned ([`LibvirtError::Hung`]); the process ends soon after.
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

/// The host an action runs on: how it reaches hypervisors, and where the guests'
/// processes are seen when libvirt cannot be.
pub trait Host {
    type Hv: Hypervisor;
    /// Opens `uri` (libvirt's default when `None`), giving up at `until`.
    fn connect(&self, uri: Option<&str>, until: Instant) -> Result<Self::Hv, LibvirtError>;
    /// This host's processes (`/proc` and libvirt's run directory).
    fn processes(&self) -> Processes;
}
